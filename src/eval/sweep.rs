//! Quality sweeps: a model sampled over a grid of solvers, step counts, prior scales, solver-grid
//! shifts and seeds, every point scored against a data set's held-out split, with the real-data
//! floor (training images scored like samples) and the memorisation reference.

use std::time::Instant;

use super::{EvalConfig, Images, Labels, Report, evaluate, evaluate_classes, nearest_train_distance};
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
    /// Which classes the samples are drawn with.
    pub classes: ClassMix,
    /// Classifier-free guidance scales ([`SampleOptions::guidance`]); more than 1 value, or one
    /// other than 1, needs [`ClassMix::HeldOut`].
    pub guidances: Vec<f32>,
    /// [`SampleOptions::class_in_image_flow`].
    pub class_in_image_flow: bool,
    /// [`SampleOptions::precision`] of every sample.
    pub precision: crate::Precision,
    pub metrics: EvalConfig,
}

/// The classes a sweep samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassMix {
    /// No class: the unconditional flow (the only choice for an unconditional model).
    None,
    /// Every class in its share of the held-out split (largest remainders), each class's
    /// samples drawn by their own call with `class` set, and scored per class by
    /// nearest-class accuracy against the held-out labels.
    HeldOut,
}

/// How many of `count` samples each class gets: proportional to `counts` (largest remainders,
/// ties to the lower class).
pub fn class_shares(counts: &[usize], count: usize) -> Vec<usize> {
    let total: usize = counts.iter().sum();
    if total == 0 {
        return vec![0; counts.len()];
    }
    let mut shares: Vec<usize> = counts.iter().map(|&c| c * count / total).collect();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by_key(|&k| (std::cmp::Reverse(counts[k] * count % total), k));
    let left = count - shares.iter().sum::<usize>();
    for &k in order.iter().take(left) {
        shares[k] += 1;
    }
    shares
}

/// The sampling seed of class `class`'s call in a [`ClassMix::HeldOut`] set drawn with `seed`:
/// each class its own noise, so classes are not drawn from one shared start.
pub fn class_seed(seed: u64, class: usize) -> u64 {
    seed ^ ((class as u64 + 1) << 40)
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
        SampleOptions { precision: self.precision, ..Default::default() }.validate()?;
        if self.guidances.is_empty() {
            return invalid("a sweep needs at least one guidance scale");
        }
        for &guidance in &self.guidances {
            SampleOptions { guidance, ..Default::default() }.validate()?;
            if guidance != 1.0 && self.classes == ClassMix::None {
                return invalid("guidance other than 1 needs class-conditioned samples (the held-out classes)");
            }
        }
        if prior == PriorKind::Gaussian && self.prior_scales.len() > 1 {
            return invalid("a prior-scale sweep needs a learned-prior model (a Gaussian prior ignores the scale)");
        }
        if self.classes == ClassMix::HeldOut && self.latents == LatentSource::Train {
            return invalid("training latents have no classes to sample: sample from the latent flow");
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
    pub guidance: f32,
    /// Image-flow network evaluations per image: `nfe`, twice that where guidance runs the
    /// image flow's class and "no class" branches.
    pub image_flow_evals: usize,
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
    let config = model.config();
    let classes = config.classes.names.len();
    let held_out_labels = match cfg.classes {
        ClassMix::None => None,
        ClassMix::HeldOut => {
            let names = &config.classes.names;
            if names.is_empty() {
                return invalid("the model is unconditional: it has no classes to sample");
            }
            if held_out.classes != *names {
                return invalid(format!(
                    "the data's classes ({}) are not the model's ({})",
                    held_out.classes.join(", "),
                    names.join(", ")
                ));
            }
            Some(held_out.labels.clone())
        }
    };
    let shares = held_out_labels.as_ref().map(|_| class_shares(&held_out.class_counts(), count));
    let image_flow_classed =
        config.image_classes() > 0 && (cfg.class_in_image_flow || info.prior == PriorKind::Gaussian);
    let image_flow_guided = |g: f32| shares.is_some() && image_flow_classed && g != 1.0;
    let mut points = Vec::new();
    for &guidance in &cfg.guidances {
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
                                guidance,
                                class_in_image_flow: cfg.class_in_image_flow,
                                precision: cfg.precision,
                                ..Default::default()
                            };
                            let t = Instant::now();
                            let (pixels, labels) = match (&train_latents, &shares) {
                                (None, None) => (model.sample(count, &opts)?, Vec::new()),
                                (Some(z), None) => (model.generate(z, &opts)?, Vec::new()),
                                (_, Some(shares)) => {
                                    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
                                    for (class, &n) in shares.iter().enumerate().filter(|(_, n)| **n > 0) {
                                        let opts = SampleOptions {
                                            class: Some(class as u32),
                                            seed: class_seed(seed, class),
                                            ..opts.clone()
                                        };
                                        pixels.extend(model.sample(n, &opts)?);
                                        labels.extend(std::iter::repeat_n(class as u32, n));
                                    }
                                    (pixels, labels)
                                }
                            };
                            let sampling_s = t.elapsed().as_secs_f64();
                            let samples = Images::from_u8(&pixels, count, info.channels, info.width)?;
                            let report = match &held_out_labels {
                                None => evaluate(&samples, &reference, Some(&train_images), &cfg.metrics)?,
                                Some(reference_labels) => {
                                    let labels = Labels { samples: &labels, reference: reference_labels, classes };
                                    evaluate_classes(&samples, &reference, Some(&train_images), labels, &cfg.metrics)?
                                }
                            };
                            let result = SeedResult {
                                seed,
                                report,
                                sampling_s,
                                metrics_s: t.elapsed().as_secs_f64() - sampling_s,
                            };
                            on_event(SweepEvent::Seed { solver, steps, result: &result });
                            per_seed.push(result);
                        }
                        let reports: Vec<Report> = per_seed.iter().map(|r| r.report.clone()).collect();
                        let (mean, sd) = Report::mean_and_sd(&reports)?;
                        let nfe = steps * solver.evals_per_step();
                        let image_flow_evals = if image_flow_guided(guidance) { 2 * nfe } else { nfe };
                        let point = SweepPoint {
                            solver,
                            steps,
                            nfe,
                            prior_scale,
                            time_shift,
                            guidance,
                            image_flow_evals,
                            mean,
                            sd,
                            per_seed,
                        };
                        on_event(SweepEvent::Point(&point));
                        points.push(point);
                    }
                }
            }
        }
    }
    let k = count.min(train_images.count);
    let subset = Images::from_u8(&spread(train, k), k, info.channels, info.width)?;
    let real_floor = match &held_out_labels {
        None => evaluate(&subset, &reference, None, &cfg.metrics)?,
        Some(reference_labels) => {
            let floor_labels: Vec<u32> = (0..k).map(|j| train.label(j * train.len() / k)).collect();
            let labels = Labels { samples: &floor_labels, reference: reference_labels, classes };
            evaluate_classes(&subset, &reference, None, labels, &cfg.metrics)?
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_shares_follow_the_counts_and_sum_to_the_count() {
        assert_eq!(class_shares(&[50, 30, 20], 10), vec![5, 3, 2]);
        // 7 * (1/3) each: remainders tie, the lower classes get the extra ones.
        assert_eq!(class_shares(&[1, 1, 1], 7), vec![3, 2, 2]);
        // Largest remainder first: 10 * 0.45 = 4.5 and 10 * 0.05 = 0.5 tie below 10 * 0.5 = 5.
        assert_eq!(class_shares(&[45, 50, 5], 10), vec![5, 5, 0]);
        assert_eq!(class_shares(&[0, 4], 3), vec![0, 3]);
        assert_eq!(class_shares(&[0, 0], 3), vec![0, 0]);
        assert_ne!(class_seed(7, 0), class_seed(7, 1));
        assert_ne!(class_seed(7, 0), 7);
    }
}
