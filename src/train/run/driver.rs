//! The training loop: the stages in order, checkpoints, interruptions and the final model file.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use super::batcher::*;
use super::folder::*;
use super::init::*;
use super::log::*;
use super::spec::*;
use super::*;
use crate::checkpoint::{self, ModelMeta};
use crate::config::PriorKind;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{LatentFlowNet, Networks};
use crate::rng::Rng;
use crate::train::{
    AuxModel, AuxStage, FmPrior, FmStage, ImageKey, LatentPool, LatentProbe, LatentStage, encode_dataset,
};

/// Largest training batch (a typo such as --batch 100000000 would otherwise try to allocate
/// the batch before failing).
pub(super) const MAX_BATCH: usize = 1 << 16;

/// Finished-stage outputs needed by later stages and the model file.
pub(super) struct Done<B: Backend> {
    pub(super) aux: Option<AuxModel<B>>,
    pub(super) latent: Option<LatentFlowNet<B>>,
}

/// The stage being trained (one per run at a time, so the variants' sizes do not matter).
#[allow(clippy::large_enum_variant)]
pub(super) enum Active<B: AutodiffBackend> {
    Aux(AuxStage<B>),
    Latent(LatentStage<B>),
    Fm(FmStage<B>),
}

impl<B: AutodiffBackend> Active<B> {
    /// One step on a batch of images (`keys` name them, `labels` give their classes when the
    /// data set is labelled).
    fn step(&mut self, stage: Stage, y: Tensor<B, 4>, keys: &[ImageKey], labels: Option<&[u32]>) -> StepLog {
        match self {
            Active::Aux(st) => {
                let l = st.step(y);
                StepLog { stage, step: 0, loss: l.total, mse: l.mse, kl: l.kl }
            }
            Active::Latent(st) => StepLog { stage, step: 0, loss: st.step_labelled(y, labels), mse: 0.0, kl: 0.0 },
            Active::Fm(st) => {
                StepLog { stage, step: 0, loss: st.step_keyed_labelled(y, Some(keys), labels), mse: 0.0, kl: 0.0 }
            }
        }
    }

    /// Tells the stage's optimiser how many steps the stage has (for the learning-rate decay).
    fn set_total(&mut self, total: usize) {
        match self {
            Active::Aux(st) => st.net.total_steps = total,
            Active::Latent(st) => st.net.total_steps = total,
            Active::Fm(st) => st.net.total_steps = total,
        }
    }

    fn rng(&mut self) -> &mut Rng {
        match self {
            Active::Aux(st) => &mut st.rng,
            Active::Latent(st) => &mut st.rng,
            Active::Fm(st) => &mut st.rng,
        }
    }

    fn restore(&mut self, dir: &Path, device: &B::Device) -> Result<()> {
        match self {
            Active::Aux(st) => restore(&mut st.net, dir, device),
            Active::Latent(st) => restore(&mut st.net, dir, device),
            Active::Fm(st) => restore(&mut st.net, dir, device),
        }
    }

    fn files(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        match self {
            Active::Aux(st) => net_files(&st.net),
            Active::Latent(st) => net_files(&st.net),
            Active::Fm(st) => net_files(&st.net),
        }
    }
}

/// Runs (or resumes) training on `data` into `run_dir`, writing the model to `output` at the end.
pub fn run<B: AutodiffBackend>(
    spec: &RunSpec,
    data: &Dataset,
    run_dir: &Path,
    output: &Path,
    resume: bool,
    mut control: RunControl,
    device: &B::Device,
) -> Result<RunOutcome> {
    spec.model.validate()?;
    if data.is_empty() {
        return Err(Error::InvalidArgument("the training set is empty".into()));
    }
    if (data.size, data.channels) != (spec.model.image.size, spec.model.image.channels) {
        return Err(Error::InvalidArgument(format!(
            "data is {0}x{0}x{1}, the model wants {2}x{2}x{3}",
            data.size, data.channels, spec.model.image.size, spec.model.image.channels
        )));
    }
    if spec.train.batch_size == 0 || spec.train.batch_size > MAX_BATCH {
        return Err(Error::InvalidArgument(format!(
            "batch size must be in 1..={MAX_BATCH}, got {}",
            spec.train.batch_size
        )));
    }
    if spec.train.latent_batch > MAX_BATCH {
        return Err(Error::InvalidArgument(format!(
            "train.latent_batch must be at most {MAX_BATCH} (0: batches of images through the encoder), got {}",
            spec.train.latent_batch
        )));
    }
    let stages = spec.stages();
    // The starting weights of a fine-tuning run (autodiff parameters, like a fresh network's).
    let (init, velocity_start) = match &spec.init {
        Some(i) => i.load::<B>(&spec.model, device).map(|(n, start)| (Some(n), start))?,
        None => (None, VelocityStart::Fresh),
    };
    if init.is_none()
        && let Some((stage, _)) = stages.iter().find(|(_, n)| *n == 0)
    {
        return Err(Error::InvalidArgument(format!(
            "stage {} has 0 steps: only a run that starts from a model file (a fine-tuning run) can keep a network without training it",
            stage.name()
        )));
    }
    if spec.init.as_ref().is_some_and(|i| i.fresh_latent) && spec.steps.latent == 0 {
        return Err(Error::InvalidArgument("stage latent has 0 steps, but a fresh latent flow must be trained".into()));
    }
    if init.is_some() && velocity_start != VelocityStart::File && spec.steps.fm == 0 {
        return Err(Error::InvalidArgument(
            "stage fm has 0 steps, but the starting model's velocity network has another shape (dit): \
             a new velocity network must be trained"
                .into(),
        ));
    }
    for (stage, _) in &stages {
        spec.train
            .optim(*stage)
            .validate()
            .map_err(|e| Error::InvalidArgument(format!("train.{}: {e}", stage.name())))?;
    }
    let want = (spec.model.image.size, spec.model.image.channels);
    if let Some(images) = control.held_out.as_deref().filter(|h| !h.is_empty() && (h.size, h.channels) != want) {
        return Err(Error::InvalidArgument(format!(
            "held-out images are {0}x{0} with {1} channels; the model takes {2}x{2} with {3}",
            images.size, images.channels, want.0, want.1
        )));
    }
    std::fs::create_dir_all(run_dir)?;
    let _lock = lock_run_dir(run_dir)?;
    // What a killed run left half-written (its targets are whole): the folder is ours now.
    for dir in [run_dir.to_path_buf(), run_dir.join("ckpt"), run_dir.join("ckpt.new"), run_dir.join("ckpt.old")] {
        checkpoint::remove_stale_temp_files(&dir, None);
    }
    if let (Some(dir), Some(name)) = (output.parent(), output.file_name()) {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        checkpoint::remove_stale_temp_files(dir, Some(&name.to_string_lossy()));
    }
    let order: Vec<Stage> = stages.iter().map(|s| s.0).collect();

    let resumed: Option<(RunState, PathBuf)> = if resume {
        let dir = find_checkpoint(run_dir)
            .ok_or_else(|| Error::InvalidArgument(format!("cannot resume: no checkpoint in {}", run_dir.display())))?;
        let state = parse_state(&read(&dir, "state.json")?)?;
        spec.check_resume(&state.spec, state.stage, state.step)?;
        Some((state, dir))
    } else if find_checkpoint(run_dir).is_some() {
        // A fresh run would truncate the folder's loss log and replace its checkpoint at the
        // first save (a Ctrl-C included): an earlier run is never overwritten silently.
        return Err(Error::InvalidArgument(format!(
            "{} holds another run's checkpoint: resume it, or start over in a new run folder (or delete \
             that one)",
            run_dir.display()
        )));
    } else {
        None
    };
    let mut log = Log::open(&run_dir.join("losses.csv"), resumed.as_ref().map(|(s, _)| (s.stage, s.step)), &order)?;
    let start_elapsed = resumed.as_ref().map(|(s, _)| s.elapsed_s).unwrap_or(0.0);
    let clock = Instant::now();

    let idev = device.clone();
    let mut done = Done::<B::InnerBackend> { aux: None, latent: None };
    let first_stage = resumed.as_ref().map(|(s, _)| s.stage).unwrap_or(order[0]);
    // Finished stages of a resumed run come back from their saved EMA weights.
    if let Some((_, dir)) = &resumed {
        for st in order.iter().take_while(|s| **s != first_stage) {
            match st {
                Stage::Aux => done.aux = Some(load_done_aux(dir, &spec.model, &idev)?),
                Stage::Latent => done.latent = Some(load_done_latent(dir, &spec.model, &idev)?),
                Stage::Fm => {}
            }
        }
    }
    let mut final_losses = resumed.as_ref().map(|(s, _)| s.final_losses.clone()).unwrap_or_default();
    let mut steps_this_call = 0usize;
    let mut resumed = resumed;
    for (stage, total) in stages.iter().copied().skip_while(|(s, _)| *s != first_stage) {
        let from = resumed.take().filter(|(s, _)| s.stage == stage);
        let frozen_aux = || done.aux.clone().ok_or_else(|| Error::Internal("aux stage missing".into()));
        let missing = |what: &str| Error::Internal(format!("the starting model file has no {what}"));
        let mut active = match stage {
            Stage::Aux => {
                let mut st = AuxStage::<B>::new(&spec.model, &spec.train, device);
                if let Some(n) = &init {
                    st.net.start_from(AuxModel {
                        encoder: n.encoder.clone().ok_or_else(|| missing("encoder"))?,
                        decoder: n.decoder.clone().ok_or_else(|| missing("decoder"))?,
                    });
                }
                Active::Aux(st)
            }
            Stage::Latent => {
                let mut st = LatentStage::<B>::new(&spec.model, &spec.train, frozen_aux()?.encoder, device);
                if let Some(n) = init.as_ref().filter(|_| !spec.init.as_ref().is_some_and(|i| i.fresh_latent)) {
                    st.net.start_from(n.latent.clone().ok_or_else(|| missing("latent flow"))?);
                }
                Active::Latent(st)
            }
            Stage::Fm => {
                let prior = match spec.model.prior {
                    PriorKind::Gaussian => FmPrior::Gaussian,
                    PriorKind::Learned => {
                        let a = frozen_aux()?;
                        FmPrior::Learned {
                            encoder: Box::new(a.encoder),
                            decoder: Box::new(a.decoder),
                            noise_scale: spec.train.prior_noise_scale,
                        }
                    }
                };
                let mut st = FmStage::<B>::new(&spec.model, &spec.train, prior, device);
                match (init.as_ref(), velocity_start) {
                    (Some(n), VelocityStart::File) => st.net.start_from(n.velocity.clone()),
                    (Some(n), VelocityStart::FileWithNewHead) => {
                        // The file's tensors, plus the fresh (seeded) network's head.
                        let fresh = st.net.model().clone();
                        let mut tensors: crate::checkpoint::NamedTensors =
                            checkpoint::parameter_values(&n.velocity).into_iter().collect();
                        tensors.extend(
                            checkpoint::parameter_values(&fresh)
                                .into_iter()
                                .filter(|(k, _)| k.starts_with("pixel_head.")),
                        );
                        st.net.start_from(checkpoint::load_into(fresh, &tensors));
                    }
                    _ => {}
                }
                Active::Fm(st)
            }
        };
        active.set_total(total);
        // The held-out latents of the latent stage (the frozen encoder's means, fixed draws).
        let probe = match (&active, control.held_out.as_deref()) {
            (Active::Latent(st), Some(images)) if !images.is_empty() => {
                let (mu, _) = encode_dataset(&st.encoder, images, device)?;
                Some(LatentProbe::held_out(mu, spec.train.time_sampling)?)
            }
            _ => None,
        };
        // A latent stage on stored latents: the frozen encoder's posteriors of the training
        // images and, with flips, of their mirrors (recomputed on resume: the encoder is frozen).
        let pool = match &active {
            Active::Latent(st) if stored_latents(spec, stage) => {
                let mirrored;
                let set = if spec.hflip {
                    mirrored = data.with_mirrors();
                    &mirrored
                } else {
                    data
                };
                Some(LatentPool::encode(&st.encoder, set, device)?)
            }
            _ => None,
        };
        let mut ctx = StageCtx::new(spec, stage, &from, data.len());
        // A checkpoint at step 0 marks a stage boundary: the stage starts fresh.
        if let Some((state, dir)) = from.as_ref().filter(|(s, _)| s.step > 0) {
            active.restore(dir, device)?;
            *active.rng() = Rng::from_state(state.stage_rng);
        }
        if let Some(f) = control.on_stage.as_mut() {
            f(stage, ctx.step, total);
        }
        let save = |active: &mut Active<B>,
                    ctx: &StageCtx,
                    done: &Done<B::InnerBackend>,
                    final_losses: &serde_json::Map<String, serde_json::Value>|
         -> Result<()> {
            let mut files = active.files()?;
            if let Some(a) = &done.aux {
                files.push(("aux.done.mpk", record_bytes(a)?));
            }
            if let Some(l) = &done.latent {
                files.push(("latent.done.mpk", record_bytes(l)?));
            }
            let state = RunState {
                spec: ctx.spec.clone(),
                stage: ctx.stage,
                step: ctx.step,
                stage_rng: active.rng().state(),
                batcher: ctx.batcher.clone(),
                elapsed_s: start_elapsed + clock.elapsed().as_secs_f64(),
                final_losses: final_losses.clone(),
                recent: ctx.recent.clone(),
            };
            write_checkpoint(run_dir, &files, &state)
        };
        while ctx.step < total {
            let stop_requested = control.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
                || control.stop_after.is_some_and(|n| steps_this_call >= n)
                || control.deadline.is_some_and(|d| Instant::now() >= d);
            if stop_requested {
                save(&mut active, &ctx, &done, &final_losses)?;
                return Ok(RunOutcome::Interrupted { stage, step: ctx.step });
            }
            let mut l = match (&pool, &mut active) {
                (Some(pool), Active::Latent(st)) => {
                    let indices = ctx.batcher.next_indices(spec.train.latent_batch);
                    // The pool holds the training images, then (with flips) their mirrors.
                    let labels = labels_of(data, indices.iter().map(|&i| i % data.len()));
                    let (mu, logvar) = pool.rows(&indices);
                    let loss = st.step_posterior_labelled(mu, logvar, labels.as_deref());
                    StepLog { stage, step: 0, loss, mse: 0.0, kl: 0.0 }
                }
                _ => {
                    let (y, keys) = ctx.batcher.next::<B>(data, spec.train.batch_size, device);
                    let labels = labels_of(data, keys.iter().map(|k| k.0));
                    active.step(stage, y, &keys, labels.as_deref())
                }
            };
            ctx.step += 1;
            steps_this_call += 1;
            l.step = ctx.step;
            if !l.loss.is_finite() {
                return Err(Error::Internal(format!(
                    "{} loss became {} at step {}: the last checkpoint holds the weights from before it; train again with a lower learning rate",
                    stage.name(),
                    l.loss,
                    ctx.step
                )));
            }
            ctx.recent.push(l.loss);
            if ctx.recent.len() > 100 {
                ctx.recent.remove(0);
            }
            let t = start_elapsed + clock.elapsed().as_secs_f64();
            log.row(&l, t)?;
            if let (Some(probe), Active::Latent(st)) = (&probe, &active)
                && (ctx.step.is_multiple_of(HELD_OUT_EVERY) || ctx.step == total)
            {
                let held = probe.loss(st.net.ema());
                log.held_out_row(ctx.step, held, t)?;
                if let Some(f) = control.on_held_out.as_mut() {
                    f(ctx.step, held);
                }
            }
            if let Some(f) = control.on_step.as_mut() {
                f(&l, t);
            }
            let every = spec.checkpoint_every;
            if every > 0 && ctx.step.is_multiple_of(every) && ctx.step < total {
                save(&mut active, &ctx, &done, &final_losses)?;
            }
        }
        if stage == *order.last().expect("at least one stage") {
            // The last stage ends with a checkpoint too, so a finished run can be extended with
            // more steps (`--resume` with a larger count).
            save(&mut active, &ctx, &done, &final_losses)?;
        }
        // A stage that ran no steps (taken from the starting model file) has no loss to report.
        if !ctx.recent.is_empty() {
            final_losses.insert(stage.name().into(), ctx.mean_recent().into());
        }
        match active {
            Active::Aux(st) => done.aux = Some(st.net.ema().clone()),
            Active::Latent(st) => done.latent = Some(st.net.ema().clone()),
            Active::Fm(st) => {
                let nets = Networks {
                    encoder: done.aux.as_ref().map(|a| a.encoder.clone()),
                    decoder: done.aux.as_ref().map(|a| a.decoder.clone()),
                    latent: done.latent.clone(),
                    velocity: st.net.ema().clone(),
                };
                let seconds = start_elapsed + clock.elapsed().as_secs_f64();
                let training = serde_json::json!({
                    "run": spec,
                    "wall_seconds": seconds,
                    "final_losses_mean_of_last_100_steps": final_losses,
                });
                checkpoint::save(output, &nets, &ModelMeta::new(spec.model.clone(), training))?;
                return Ok(RunOutcome::Finished { model: output.to_path_buf(), seconds });
            }
        }
        // Stage boundary: checkpoint so a resume never redoes a finished stage.
        if let Some(next) = order.iter().skip_while(|s| **s != stage).nth(1) {
            let next_ctx = StageCtx::new(spec, *next, &None, data.len());
            let files: Vec<(&str, Vec<u8>)> = [
                done.aux.as_ref().map(|a| record_bytes(a).map(|b| ("aux.done.mpk", b))),
                done.latent.as_ref().map(|l| record_bytes(l).map(|b| ("latent.done.mpk", b))),
            ]
            .into_iter()
            .flatten()
            .collect::<Result<_>>()?;
            let state = RunState {
                spec: spec.clone(),
                stage: *next,
                step: 0,
                stage_rng: [0; 4],
                batcher: next_ctx.batcher,
                elapsed_s: start_elapsed + clock.elapsed().as_secs_f64(),
                final_losses: final_losses.clone(),
                recent: Vec::new(),
            };
            write_checkpoint(run_dir, &files, &state)?;
        }
    }
    Err(Error::Internal("no stage ran".into()))
}

/// Per-stage bookkeeping.
pub(super) struct StageCtx {
    pub(super) stage: Stage,
    pub(super) step: usize,
    pub(super) batcher: DataBatcher,
    pub(super) spec: RunSpec,
    pub(super) recent: Vec<f32>,
}

impl StageCtx {
    /// A stage's loop state: resumed from `from`, or fresh over the `n` training images (or,
    /// for a latent stage on stored latents, over their latents: see [`stored_latents`]).
    fn new(spec: &RunSpec, stage: Stage, from: &Option<(RunState, PathBuf)>, n: usize) -> Self {
        let (n, hflip) = match stored_latents(spec, stage) {
            true if spec.hflip => (2 * n, false),
            true => (n, false),
            false => (n, spec.hflip),
        };
        let salt: u64 = match stage {
            Stage::Aux => 1,
            Stage::Latent => 2,
            Stage::Fm => 3,
        };
        let (step, batcher, recent) = match from {
            Some((s, _)) => (s.step, s.batcher.clone(), s.recent.clone()),
            None => (0, DataBatcher::new(n, spec.train.seed ^ (salt << 32), hflip), Vec::new()),
        };
        Self { stage, step, batcher, spec: spec.clone(), recent }
    }

    fn mean_recent(&self) -> f32 {
        self.recent.iter().sum::<f32>() / self.recent.len().max(1) as f32
    }
}

/// The classes of the images at `indices` of a labelled data set (None for an unlabelled one).
fn labels_of(data: &Dataset, indices: impl Iterator<Item = usize>) -> Option<Vec<u32>> {
    (!data.labels.is_empty()).then(|| indices.map(|i| data.label(i)).collect())
}

/// Whether `stage` steps on stored latents ([`TrainConfig::latent_batch`]): the frozen
/// encoder's posteriors of the training images, then of their mirrors when the run flips.
pub(super) fn stored_latents(spec: &RunSpec, stage: Stage) -> bool {
    stage == Stage::Latent && spec.train.latent_batch > 0
}
