//! `eval`: sample-quality sweeps against a data set's held-out split.

use std::path::PathBuf;

use clap::Args;
use lediflow::data::Dataset;
use lediflow::{PriorKind, SampleOptions, Solver};

use crate::args::{DataArgs, comma_list, model_and_data};

#[derive(Args)]
pub struct EvalArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// The data the model was trained on: its held-out split is the reference, its training
    /// split the memorisation check.
    #[command(flatten)]
    pub data: DataArgs,
    /// Samples to draw (default: as many as held-out images).
    #[arg(long)]
    pub count: Option<usize>,
    /// Solver steps; a comma list sweeps them (e.g. 1,2,4,8,16,32).
    #[arg(long, default_value = "4")]
    pub steps: String,
    /// Solvers; a comma list sweeps them (euler,midpoint,heun,rk4).
    #[arg(long, default_value = "midpoint")]
    pub solver: String,
    /// Sampling seeds; a comma list (e.g. 0,1,2) draws one sample set per seed and reports each
    /// metric as mean ± standard deviation over them. With a few hundred samples the draw alone
    /// moves SWD and KID by more than many differences between models.
    #[arg(long, default_value = "0")]
    pub seed: String,
    /// Also write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where LeDiFlow's latents come from: `flow` (the latent flow, as in sampling) or `train`
    /// (the encoder's means of training tiles spread over the split: a diagnostic that takes
    /// the latent flow out of the measurement).
    #[arg(long, default_value = "flow")]
    pub latents: String,
    /// LeDiFlow prior noise scales; a comma list sweeps them (0 = start from the prior mean;
    /// ignored by Gaussian-prior models).
    #[arg(long, default_value = "1")]
    pub prior_scale: String,
    /// Timestep shifts of the solver grid; a comma list sweeps them (1 = equal steps; > 1
    /// shorter steps near the prior; `model` = the model file's recommendation, else 1).
    #[arg(long, default_value = "model")]
    pub time_shift: String,
    /// Midpoint steps of LeDiFlow's latent flow (ignored by Gaussian-prior models).
    #[arg(long, default_value_t = 16)]
    pub latent_steps: usize,
}

pub fn eval(a: EvalArgs) -> Result<(), String> {
    use lediflow::eval::{EvalConfig, Images, Report, evaluate};
    let (p, ds) = model_and_data(&a.model, &a.data)?;
    let info = p.info();
    let (train_set, held_out) = ds.split(a.data.val_every);
    if held_out.len() < 4 {
        return Err("the held-out split has fewer than 4 images: lower --val-every".into());
    }
    if train_set.len() < 2 {
        return Err("the training split has fewer than 2 images (memorisation is measured against it): \
                    raise --val-every"
            .into());
    }
    let as_images = |d: &Dataset| Images::from_u8(&d.pixels, d.len(), d.channels, d.size).map_err(|e| e.to_string());
    let (reference, train) = (as_images(&held_out)?, as_images(&train_set)?);
    let count = a.count.unwrap_or(held_out.len());
    lediflow::pipeline::check_count(count, "--count").map_err(|e| e.to_string())?;
    let steps: Vec<usize> = comma_list(&a.steps, "--steps")?;
    let solvers: Vec<Solver> =
        a.solver.split(',').map(|x| Solver::parse(x.trim()).map_err(|e| e.to_string())).collect::<Result<_, _>>()?;
    let scales: Vec<f32> = comma_list(&a.prior_scale, "--prior-scale")?;
    let seeds: Vec<u64> = comma_list(&a.seed, "--seed")?;
    let shifts: Vec<f32> = if a.time_shift == "model" {
        vec![p.time_shift(&SampleOptions::default())]
    } else {
        comma_list(&a.time_shift, "--time-shift")?
    };
    // Every scale and shift checked before any sampling, not when its turn comes.
    for &prior_scale in &scales {
        SampleOptions { prior_scale, ..Default::default() }.validate().map_err(|e| e.to_string())?;
    }
    for &time_shift in &shifts {
        SampleOptions { time_shift: Some(time_shift), ..Default::default() }.validate().map_err(|e| e.to_string())?;
    }
    SampleOptions { latent_steps: a.latent_steps, ..Default::default() }.validate().map_err(|e| e.to_string())?;
    if info.prior == PriorKind::Gaussian && scales.len() > 1 {
        return Err("--prior-scale sweeps need a LeDiFlow model (a Gaussian prior ignores the scale)".into());
    }
    let train_latents = match a.latents.as_str() {
        "flow" => None,
        "train" => {
            // The encoder's means of `count` training tiles spread over the split.
            let mut picked = Vec::with_capacity(count * info.width * info.height * info.channels);
            for j in 0..count {
                picked.extend_from_slice(train_set.image(j * train_set.len() / count));
            }
            let x = lediflow::image::from_u8(&picked, count, info.channels, info.height, info.width, p.device())
                .map_err(|e| e.to_string())?;
            Some(p.encode(x).map_err(|e| e.to_string())?)
        }
        other => return Err(format!("--latents must be flow or train, got '{other}'")),
    };
    eprintln!(
        "reference: {} held-out images; memorisation against {} training images; {count} samples, seed {}{}",
        reference.count,
        train.count,
        a.seed,
        if seeds.len() > 1 { " (metrics: mean ± sd over the seeds' sample sets)" } else { "" }
    );
    println!(
        "| solver | steps | NFE | SWD x1e3 | KID pixels x1e3 | KID random-conv x1e3 | precision | recall | nearest train (RMS) | prior scale | time shift |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for (&prior_scale, &time_shift) in scales.iter().flat_map(|s| shifts.iter().map(move |t| (s, t))) {
        for solver in &solvers {
            for &st in &steps {
                let mut reports = Vec::with_capacity(seeds.len());
                for &seed in &seeds {
                    let opts = SampleOptions {
                        seed,
                        steps: st,
                        solver: *solver,
                        prior_scale,
                        time_shift: Some(time_shift),
                        latent_steps: a.latent_steps,
                        ..Default::default()
                    };
                    let t = std::time::Instant::now();
                    let mut pixels = Vec::with_capacity(count * info.width * info.height * info.channels);
                    for start in (0..count).step_by(64) {
                        let n = 64.min(count - start);
                        let o = SampleOptions { first_index: start as u64, ..opts.clone() };
                        let images = match &train_latents {
                            None => p.sample(n, &o),
                            Some(z) => p.generate(z.clone().slice([start..start + n]), &o),
                        };
                        pixels.extend(
                            lediflow::image::to_u8(images.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?,
                        );
                    }
                    let sampled = t.elapsed().as_secs_f64();
                    let samples =
                        Images::from_u8(&pixels, count, info.channels, info.width).map_err(|e| e.to_string())?;
                    reports.push(
                        evaluate(&samples, &reference, Some(&train), &EvalConfig::default())
                            .map_err(|e| e.to_string())?,
                    );
                    eprintln!(
                        "  {solver} {st} steps, seed {seed}: sampling {sampled:.1} s, metrics {:.1} s",
                        t.elapsed().as_secs_f64() - sampled
                    );
                }
                let (r, sd) = Report::mean_and_sd(&reports).map_err(|e| e.to_string())?;
                let nfe = st * solver.evals_per_step();
                // One seed: plain values; several: mean ± sd.
                let cell = |m: f64, s: f64, digits: usize| {
                    if seeds.len() > 1 { format!("{m:.digits$} ± {s:.digits$}") } else { format!("{m:.digits$}") }
                };
                println!(
                    "| {solver} | {st} | {nfe} | {} | {} | {} | {} | {} | {} | {prior_scale} | {time_shift} |",
                    cell(r.swd, sd.swd, 2),
                    cell(r.kid_pixels, sd.kid_pixels, 3),
                    cell(r.kid_features, sd.kid_features, 3),
                    cell(r.precision, sd.precision, 3),
                    cell(r.recall, sd.recall, 3),
                    cell(r.nearest_train.unwrap_or(f64::NAN), sd.nearest_train.unwrap_or(f64::NAN), 4)
                );
                let mut row = serde_json::json!({"solver": solver.name(), "steps": st, "nfe": nfe,
                    "prior_scale": prior_scale, "time_shift": time_shift, "report": r});
                if seeds.len() > 1 {
                    row["sd"] = serde_json::json!(sd);
                    row["per_seed"] = serde_json::json!(
                        seeds
                            .iter()
                            .zip(&reports)
                            .map(|(s, r)| serde_json::json!({"seed": s, "report": r}))
                            .collect::<Vec<_>>()
                    );
                }
                rows.push(row);
            }
        }
    }
    // The floor: real training tiles (as many as samples, spread over the training split)
    // scored exactly like samples. Finite-sample metrics are not 0 even here; a model at this
    // row is as close to the held-out tiles as the training data itself.
    let k = count.min(train.count);
    let mut subset = Dataset::new(held_out.size, held_out.channels);
    for j in 0..k {
        subset.pixels.extend_from_slice(train_set.image(j * train_set.len() / k));
    }
    let subset = Images::from_u8(&subset.pixels, k, info.channels, info.width).map_err(|e| e.to_string())?;
    let real = evaluate(&subset, &reference, None, &EvalConfig::default()).map_err(|e| e.to_string())?;
    // The memorisation reference: held-out real images against the training split.
    let floor = lediflow::eval::nearest_train_distance(&reference, &train).map_err(|e| e.to_string())?;
    println!(
        "| real training tiles ({k}) | - | - | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | {floor:.4} (held-out) | - | - |",
        real.swd, real.kid_pixels, real.kid_features, real.precision, real.recall
    );
    println!(
        "\nheld-out real images: nearest training image at RMS {floor:.4} (samples far below this copy the training set)"
    );
    if let Some(path) = &a.json {
        let doc = serde_json::json!({"model": a.model.display().to_string(), "count": count, "seeds": seeds,
            "latents": a.latents, "latent_steps": a.latent_steps,
            "reference_images": reference.count, "held_out_nearest_train": floor,
            "real_floor": {"images": k, "report": real}, "results": rows});
        lediflow::checkpoint::write_atomic(path, serde_json::to_string_pretty(&doc).unwrap().as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
