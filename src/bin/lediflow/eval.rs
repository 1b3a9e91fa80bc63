//! `eval`: sample-quality sweeps against a data set's held-out split.

use std::path::PathBuf;

use clap::Args;
use lediflow::Solver;

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
    /// cpu, cuda or cuda:N (CUDA needs a build with --features cuda and an NVIDIA driver).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Score seamless tiles (sampled with `--tileable`).
    #[arg(long)]
    pub tileable: bool,
    /// A class-conditional model: sample every class in its share of the held-out split and
    /// score, per class, how many samples have a held-out tile of their own class as nearest
    /// neighbour (the "class acc." column; the real training tiles' row is the ceiling).
    #[arg(long)]
    pub by_class: bool,
    /// Classifier-free guidance scales with --by-class; a comma list sweeps them (1 = none).
    #[arg(long, default_value = "1")]
    pub guidance: String,
    /// With --by-class, for a LeDiFlow model conditioned in both flows: give the image flow
    /// "no class", so only the latent flow (the prior) follows the class. Measures what
    /// conditioning the image flow adds.
    #[arg(long, requires = "by_class")]
    pub no_image_flow_class: bool,
    /// Arithmetic of the CPU's matrix products for the samples: fp32, bf16 or auto.
    #[arg(long, default_value = "fp32")]
    pub precision: String,
}

pub fn eval(a: EvalArgs) -> Result<(), String> {
    use lediflow::eval::report::{markdown_classes, markdown_floor, markdown_header, markdown_row, to_json};
    use lediflow::eval::sweep::{ClassMix, LatentSource, SweepConfig, SweepEvent, sweep};
    let (model, ds) = model_and_data(&a.model, &a.data, &a.device)?;
    let (train_set, held_out) = a.data.split(&ds);
    if held_out.len() < 4 {
        return Err("the held-out split has fewer than 4 images: lower --val-every".into());
    }
    if train_set.len() < 2 {
        return Err("the training split has fewer than 2 images (memorisation is measured against it): \
                    raise --val-every"
            .into());
    }
    let count = a.count.unwrap_or(held_out.len());
    lediflow::pipeline::check_count(count, "--count").map_err(|e| e.to_string())?;
    let cfg = SweepConfig {
        count,
        steps: comma_list(&a.steps, "--steps")?,
        solvers: a
            .solver
            .split(',')
            .map(|x| Solver::parse(x.trim()).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?,
        seeds: comma_list(&a.seed, "--seed")?,
        prior_scales: comma_list(&a.prior_scale, "--prior-scale")?,
        time_shifts: if a.time_shift == "model" {
            vec![model.info().time_shift]
        } else {
            comma_list(&a.time_shift, "--time-shift")?
        },
        latent_steps: a.latent_steps,
        latents: match a.latents.as_str() {
            "flow" => LatentSource::Flow,
            "train" => LatentSource::Train,
            other => return Err(format!("--latents must be flow or train, got '{other}'")),
        },
        tileable: a.tileable,
        classes: if a.by_class { ClassMix::HeldOut } else { ClassMix::None },
        guidances: comma_list(&a.guidance, "--guidance")?,
        class_in_image_flow: !a.no_image_flow_class,
        precision: lediflow::Precision::parse(&a.precision).map_err(|e| format!("--precision: {e}"))?,
        metrics: Default::default(),
    };
    cfg.validate(model.info().prior).map_err(|e| e.to_string())?;
    eprintln!(
        "reference: {} held-out images; memorisation against {} training images; {count} samples, seed {}{}",
        held_out.len(),
        train_set.len(),
        a.seed,
        if cfg.seeds.len() > 1 { " (metrics: mean ± sd over the seeds' sample sets)" } else { "" }
    );
    println!("{}", markdown_header());
    let outcome = sweep(&model, &train_set, &held_out, &cfg, &mut |event| match event {
        SweepEvent::Seed { solver, steps, result } => eprintln!(
            "  {solver} {steps} steps, seed {}: sampling {:.1} s, metrics {:.1} s",
            result.seed, result.sampling_s, result.metrics_s
        ),
        SweepEvent::Point(p) => println!("{}", markdown_row(p)),
    })
    .map_err(|e| e.to_string())?;
    println!("{}", markdown_floor(&outcome));
    if a.by_class {
        println!("\n{}", markdown_classes(&ds.classes, &outcome));
    }
    println!(
        "\nheld-out real images: nearest training image at RMS {:.4} (samples far below this copy the training set)",
        outcome.held_out_nearest_train
    );
    if let Some(path) = &a.json {
        let doc = to_json(&a.model.display().to_string(), &cfg, &outcome);
        lediflow::checkpoint::write_atomic(path, serde_json::to_string_pretty(&doc).unwrap().as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
