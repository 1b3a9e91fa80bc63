//! Quality sweeps: a model sampled over a grid of solvers, step counts, prior scales, solver-grid
//! shifts and seeds, every point scored against a data set's held-out split, with the real-data
//! floor (training images scored like samples) and the memorisation reference.

use std::time::Instant;

use super::{EvalConfig, Images, Report, evaluate, nearest_train_distance};
use crate::config::PriorKind;
use crate::data::Dataset;
use crate::error::{Result, invalid};
use crate::flow::Solver;
use crate::pipeline::{Model, SampleOptions, check_count};

/// Where LeDiFlow's latents come from in a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LatentSource {
    /// The latent flow, as in sampling.
    Flow,
    /// The encoder's means of training images spread over the training split: a diagnostic that
    /// takes the latent flow out of the measurement.
    Train,
}

/// The grid of a sweep. Every combination of `prior_scales` x `time_shifts` x `solvers` x
/// `steps` is one point; each point draws one sample set of `count` images per seed.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    pub count: usize,
    pub steps: Vec<usize>,
    pub solvers: Vec<Solver>,
    pub seeds: Vec<u64>,
    pub prior_scales: Vec<f32>,
    pub time_shifts: Vec<f32>,
    pub latent_steps: usize,
    pub latents: LatentSource,
    /// Sample seamless tiles ([`SampleOptions::tileable`]).
    pub tileable: bool,
    pub metrics: EvalConfig,
}

impl SweepConfig {
    /// Checks every setting before any sampling starts (not when its turn comes).
    pub fn validate(&self, prior: PriorKind) -> Result<()> {
        check_count(self.count, "count")?;
        for (what, empty) in [
            ("steps", self.steps.is_empty()),
            ("solvers", self.solvers.is_empty()),
            ("seeds", self.seeds.is_empty()),
            ("prior scales", self.prior_scales.is_empty()),
            ("time shifts", self.time_shifts.is_empty()),
        ] {
            if empty {
                return invalid(format!("a sweep needs at least one of its {what}"));
            }
        }
        for &steps in &self.steps {
            SampleOptions { steps, ..Default::default() }.validate()?;
        }
        for &prior_scale in &self.prior_scales {
            SampleOptions { prior_scale, ..Default::default() }.validate()?;
        }
        for &t in &self.time_shifts {
            SampleOptions { time_shift: Some(t), ..Default::default() }.validate()?;
        }
        SampleOptions { latent_steps: self.latent_steps, ..Default::default() }.validate()?;
        if prior == PriorKind::Gaussian && self.prior_scales.len() > 1 {
            return invalid("a prior-scale sweep needs a learned-prior model (a Gaussian prior ignores the scale)");
        }
        if prior == PriorKind::Gaussian && self.latents == LatentSource::Train {
            return invalid("training latents need a learned-prior model (a Gaussian prior has no latents)");
        }
        Ok(())
    }
}

/// One seed's sample set at one point.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SeedResult {
    pub seed: u64,
    pub report: Report,
    pub sampling_s: f64,
    pub metrics_s: f64,
}

/// One point of the grid: the mean and spread of its seeds' reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SweepPoint {
    pub solver: Solver,
    pub steps: usize,
    pub nfe: usize,
    pub prior_scale: f32,
    pub time_shift: f32,
    pub mean: Report,
    /// Sample standard deviation over the seeds (zero for one seed).
    pub sd: Report,
    pub per_seed: Vec<SeedResult>,
}

/// What a sweep reports as it goes.
pub enum SweepEvent<'a> {
    /// One seed of the point (solver, steps) is scored.
    Seed { solver: Solver, steps: usize, result: &'a SeedResult },
    /// A point is complete.
    Point(&'a SweepPoint),
}

/// A whole sweep.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SweepOutcome {
    pub points: Vec<SweepPoint>,
    pub reference_images: usize,
    pub train_images: usize,
    /// Training images (as many as samples, spread over the split) scored like samples: a
    /// model at this row is as close to the held-out images as the training data itself.
    pub real_floor: Report,
    pub real_floor_images: usize,
    /// Mean RMS distance of the held-out images to their nearest training image: samples far
    /// below it copy the training set.
    pub held_out_nearest_train: f64,
}

fn as_images(d: &Dataset) -> Result<Images> {
    Images::from_u8(&d.pixels, d.len(), d.channels, d.size)
}

/// `k` images spread evenly over `set`.
fn spread(set: &Dataset, k: usize) -> Vec<u8> {
    (0..k).flat_map(|j| set.image(j * set.len() / k).iter().copied()).collect()
}

/// Runs the sweep of `cfg` for `model` against `held_out`, with `train` (the split it was
/// trained on) for memorisation and the floor.
pub fn sweep(
    model: &Model,
    train: &Dataset,
    held_out: &Dataset,
    cfg: &SweepConfig,
    on_event: &mut dyn FnMut(SweepEvent),
) -> Result<SweepOutcome> {
    let info = model.info();
    cfg.validate(info.prior)?;
    for (set, what) in [(train, "training"), (held_out, "held-out")] {
        if (set.size, set.channels) != (info.width, info.channels) {
            return invalid(format!(
                "the {what} images are {0}x{0}x{1}, the model makes {2}x{2}x{3}",
                set.size, set.channels, info.width, info.channels
            ));
        }
    }
    if held_out.len() < 4 {
        return invalid("the held-out split has fewer than 4 images");
    }
    if train.len() < 2 {
        return invalid("the training split has fewer than 2 images (memorisation is measured against it)");
    }
    let (reference, train_images) = (as_images(held_out)?, as_images(train)?);
    let count = cfg.count;
    let train_latents = match cfg.latents {
        LatentSource::Flow => None,
        LatentSource::Train => Some(model.encode(&spread(train, count))?),
    };
    let mut points = Vec::new();
    for &prior_scale in &cfg.prior_scales {
        for &time_shift in &cfg.time_shifts {
            for &solver in &cfg.solvers {
                for &steps in &cfg.steps {
                    let mut per_seed = Vec::with_capacity(cfg.seeds.len());
                    for &seed in &cfg.seeds {
                        let opts = SampleOptions {
                            seed,
                            steps,
                            solver,
                            prior_scale,
                            time_shift: Some(time_shift),
                            latent_steps: cfg.latent_steps,
                            tileable: cfg.tileable,
                            ..Default::default()
                        };
                        let t = Instant::now();
                        let pixels = match &train_latents {
                            None => model.sample(count, &opts)?,
                            Some(z) => model.generate(z, &opts)?,
                        };
                        let sampling_s = t.elapsed().as_secs_f64();
                        let samples = Images::from_u8(&pixels, count, info.channels, info.width)?;
                        let report = evaluate(&samples, &reference, Some(&train_images), &cfg.metrics)?;
                        let result =
                            SeedResult { seed, report, sampling_s, metrics_s: t.elapsed().as_secs_f64() - sampling_s };
                        on_event(SweepEvent::Seed { solver, steps, result: &result });
                        per_seed.push(result);
                    }
                    let reports: Vec<Report> = per_seed.iter().map(|r| r.report.clone()).collect();
                    let (mean, sd) = Report::mean_and_sd(&reports)?;
                    let nfe = steps * solver.evals_per_step();
                    let point = SweepPoint { solver, steps, nfe, prior_scale, time_shift, mean, sd, per_seed };
                    on_event(SweepEvent::Point(&point));
                    points.push(point);
                }
            }
        }
    }
    let k = count.min(train_images.count);
    let subset = Images::from_u8(&spread(train, k), k, info.channels, info.width)?;
    let real_floor = evaluate(&subset, &reference, None, &cfg.metrics)?;
    let held_out_nearest_train = nearest_train_distance(&reference, &train_images)?;
    Ok(SweepOutcome {
        points,
        reference_images: reference.count,
        train_images: train_images.count,
        real_floor,
        real_floor_images: k,
        held_out_nearest_train,
    })
}
