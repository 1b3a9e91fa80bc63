//! A full, resumable training run: the stages in order, periodic atomic checkpoints holding
//! everything needed to continue bit-exactly (live and EMA weights, Adam state, step, RNG and
//! batch-order state), a CSV loss log, and the final model file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::TensorData;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::{
    AuxModel, AuxStage, Epochs, FmPrior, FmStage, ImageKey, LatentPool, LatentProbe, LatentStage, StageSteps,
    TrainConfig, Trainable, encode_dataset,
};
use crate::checkpoint::{self, ModelMeta, write_atomic};
use crate::config::{ModelConfig, PriorKind};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{AuxDecoder, AuxEncoder, LatentFlowNet, Networks, VelocityNet};
use crate::rng::{Purpose, Rng};

/// The three stages, in training order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Aux,
    Latent,
    Fm,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Aux => "aux",
            Stage::Latent => "latent",
            Stage::Fm => "fm",
        }
    }
}

/// Everything that defines a run. Stored in every checkpoint; `--resume` refuses a different one,
/// except that step counts may grow (see [`RunSpec::check_resume`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub steps: StageSteps,
    /// Random horizontal flips of training images.
    pub hflip: bool,
    /// Steps between checkpoints (0 = only at stage ends and on interruption).
    pub checkpoint_every: usize,
    /// Free-form description of the data (for the model file's provenance).
    pub data: serde_json::Value,
    /// Fine-tuning: every stage starts from this model file's network instead of random
    /// weights, and a stage with 0 steps keeps the file's network as it is. Only the image-flow
    /// network's shape (`model.dit`) may differ from the file's: that network then starts from
    /// random weights (a larger velocity network on the file's prior), except where only a
    /// per-pixel head is added (`dit.pixel_head`, which the file's network lacks): the file's
    /// network keeps its weights and gains the head ([`InitFrom::fresh_velocity`] overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitFrom>,
}

/// The model file a fine-tuning run starts from (`lediflow train --init`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitFrom {
    pub path: PathBuf,
    /// FNV-1a 64 of the file's bytes, in hex: a run (and `--resume`) refuses a file that
    /// changed after the run started.
    pub fnv64: String,
    /// Start the image flow from random weights even where the file's has the same shape (a
    /// new image flow on the file's prior, e.g. a from-scratch control run).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh_velocity: bool,
    /// Start the latent flow from random weights (a latent flow retrained on the file's
    /// encoder; the file's one may have memorised its training latents).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh_latent: bool,
}

impl InitFrom {
    /// Records `path` and the hash of its current contents.
    pub fn new(path: &Path) -> Result<Self> {
        Self::read(path).map(|(init, _)| init)
    }

    /// [`InitFrom::new`], also returning the file's metadata (its network config and prior),
    /// from the same single read of the file.
    pub fn read(path: &Path) -> Result<(Self, ModelMeta)> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::InvalidArgument(format!("--init: cannot read {}: {e}", path.display())))?;
        let meta = checkpoint::read_meta(&bytes)
            .map_err(|e| Error::InvalidArgument(format!("--init: {}: {e}", path.display())))?;
        Ok((
            Self { path: path.to_path_buf(), fnv64: fnv64_hex(&bytes), fresh_velocity: false, fresh_latent: false },
            meta,
        ))
    }

    /// Loads the file's networks onto `device`, checking that it is still the file recorded
    /// and that its networks are the ones `model` describes (the velocity network aside).
    /// Returns how the image flow starts from the file's velocity network.
    fn load<B: Backend>(&self, model: &ModelConfig, device: &B::Device) -> Result<(Networks<B>, VelocityStart)> {
        let path = self.path.display();
        let bytes = std::fs::read(&self.path)
            .map_err(|e| Error::InvalidArgument(format!("--init: cannot read {path}: {e}")))?;
        if fnv64_hex(&bytes) != self.fnv64 {
            return Err(Error::InvalidArgument(format!(
                "--init: {path} changed since this run started (its hash differs from the one recorded)"
            )));
        }
        let (nets, meta) = checkpoint::from_bytes::<B>(&bytes, device)?;
        let same_but_velocity = ModelConfig { dit: model.dit.clone(), ..meta.config.clone() } == *model;
        if !same_but_velocity {
            return Err(Error::InvalidArgument(format!(
                "--init: {path} holds different networks from the ones this run trains \
                 ({} vs {}); a fine-tuning run keeps the file's network config (only `dit` may change)",
                serde_json::to_string(&meta.config).unwrap_or_default(),
                serde_json::to_string(model).unwrap_or_default()
            )));
        }
        let with_head = crate::config::DitConfig {
            pixel_head: model.dit.pixel_head,
            pixel_head_time: model.dit.pixel_head_time,
            ..meta.config.dit.clone()
        };
        let start = if self.fresh_velocity {
            VelocityStart::Fresh
        } else if meta.config.dit == model.dit {
            VelocityStart::File
        } else if meta.config.dit.pixel_head == 0 && with_head == model.dit {
            VelocityStart::FileWithNewHead
        } else {
            VelocityStart::Fresh
        };
        Ok((nets, start))
    }
}

/// Where a fine-tuning run's image flow starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VelocityStart {
    /// Random weights (`--fresh-velocity`, or a `dit` shape the file's network cannot give).
    Fresh,
    /// The file's velocity network.
    File,
    /// The file's velocity network plus a new per-pixel head (`dit.pixel_head`, which the file's
    /// network lacks): the head's last convolution starts at zero, so the network starts out
    /// computing exactly the file's velocity.
    FileWithNewHead,
}

/// FNV-1a of `bytes` as 16 hex digits: a cheap fingerprint of a file or of training pixels.
pub fn fnv64_hex(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Key of the training pixels' fingerprint ([`fnv64_hex`]) in [`RunSpec::data`]: a folder
/// whose images changed but not their number must not pass `--resume` as the same run.
pub const DATA_FINGERPRINT: &str = "pixels_fnv64";

impl RunSpec {
    pub fn stages(&self) -> Vec<(Stage, usize)> {
        match self.model.prior {
            PriorKind::Learned => {
                vec![(Stage::Aux, self.steps.aux), (Stage::Latent, self.steps.latent), (Stage::Fm, self.steps.fm)]
            }
            PriorKind::Gaussian => vec![(Stage::Fm, self.steps.fm)],
        }
    }

    /// Whether a checkpoint made with `saved` at `step` of `stage` can continue under `self`.
    /// Everything must match, except that the step counts of `stage` and of the stages after it
    /// may differ as long as `stage` has not already run past its new count: this extends a
    /// finished or running run with more steps, and the extended run equals one started with
    /// the larger count. With a learning-rate decay (`decay_steps`) the count of `stage` can
    /// change only while no step has yet been taken at a decayed rate under either count.
    pub fn check_resume(&self, saved: &RunSpec, stage: Stage, step: usize) -> Result<()> {
        let mut a = self.clone();
        let mut b = saved.clone();
        // Runs checkpointed before the data's fingerprint was recorded resume on the rest of
        // the data's description.
        if b.data.get(DATA_FINGERPRINT).is_none()
            && let Some(d) = a.data.as_object_mut()
        {
            d.remove(DATA_FINGERPRINT);
        }
        if a.data != b.data {
            return Err(Error::InvalidArgument(format!(
                "--resume: the training data differ from the checkpoint's (now {}, then {}); \
                 resuming would not continue the same run",
                a.data, b.data
            )));
        }
        a.steps = StageSteps { aux: 0, latent: 0, fm: 0 };
        b.steps = a.steps;
        // The learning-rate decay of the current and later stages may change too (checked below).
        for st in [Stage::Aux, Stage::Latent, Stage::Fm].into_iter().filter(|s| *s >= stage) {
            a.train.optim_mut(st).decay_steps = 0;
            b.train.optim_mut(st).decay_steps = 0;
        }
        if a != b {
            let mut diffs = Vec::new();
            let value = |s: &RunSpec| serde_json::to_value(s).unwrap_or_default();
            json_diff(&value(&a), &value(&b), "", &mut diffs);
            return Err(Error::InvalidArgument(format!(
                "--resume: the checkpoint was made with different settings: {}; use the same command line \
                 (--set KEY=VALUE for a setting whose default changed since), or a new --run-dir",
                diffs.join(", ")
            )));
        }
        for ((st, new), (_, old)) in self.stages().into_iter().zip(saved.stages()) {
            if st < stage && new != old {
                return Err(Error::InvalidArgument(format!(
                    "--resume: stage {} is finished with {old} steps; it cannot change to {new} \
                     (only the current stage {} and later ones can get more steps)",
                    st.name(),
                    stage.name()
                )));
            }
            if st == stage && new < step {
                return Err(Error::InvalidArgument(format!(
                    "--resume: stage {} is already at step {step}; it cannot stop at {new}",
                    st.name()
                )));
            }
            // Steps before a decay starts see the same learning rate under any count and decay,
            // so the schedule can change until a step was taken at a decayed rate under either.
            let (now, then) = (self.train.optim(st), saved.train.optim(st));
            let changed = new != old || now.decay_steps != then.decay_steps;
            if st == stage && changed && step > now.decay_start(new).min(then.decay_start(old)) {
                return Err(Error::InvalidArgument(format!(
                    "--resume: stage {} is at step {step}, inside its learning-rate decay (the last {} of \
                     {old} steps); its step count and decay cannot change to {new} and {} any more",
                    st.name(),
                    then.decay_steps,
                    now.decay_steps
                )));
            }
        }
        Ok(())
    }
}

/// Where two JSON documents differ: "key.path (now X, checkpoint Y)" for every differing leaf,
/// with the model config's keys written as `--set` takes them (no `model.` prefix).
fn json_diff(now: &serde_json::Value, then: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value;
    match (now, then) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                // The model config's children sit at the top level, as `--set` names them.
                let sub = match (path, k.as_str()) {
                    ("", "model") => String::new(),
                    ("", _) => k.clone(),
                    _ => format!("{path}.{k}"),
                };
                json_diff(a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null), &sub, out);
            }
        }
        _ if now != then => out.push(format!("{path} (now {now}, checkpoint {then})")),
        _ => {}
    }
}

/// Batches from an in-memory [`Dataset`]: shuffled epochs and optional flips, all from one rng
/// whose state is part of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataBatcher {
    #[serde(flatten)]
    epochs: Epochs,
    rng: [u64; 4],
    hflip: bool,
}

impl DataBatcher {
    pub fn new(len: usize, seed: u64, hflip: bool) -> Self {
        Self { epochs: Epochs::new(len), rng: Rng::stream(seed, 0, Purpose::Training).state(), hflip }
    }

    /// The indices of the next batch of `batch` items (no mirroring: for stored latents).
    pub fn next_indices(&mut self, batch: usize) -> Vec<usize> {
        let mut rng = Rng::from_state(self.rng);
        let idx = (0..batch).map(|_| self.epochs.next_index(&mut rng)).collect();
        self.rng = rng.state();
        idx
    }

    /// The next batch, with the dataset index and mirroring of each of its images.
    pub fn next<B: Backend>(
        &mut self,
        data: &Dataset,
        batch: usize,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Vec<ImageKey>) {
        let mut rng = Rng::from_state(self.rng);
        let (s, c) = (data.size, data.channels);
        let plane = s * s;
        let mut out = vec![0f32; batch * c * plane];
        let mut keys = Vec::with_capacity(batch);
        for b in 0..batch {
            let index = self.epochs.next_index(&mut rng);
            let img = data.image(index);
            let flip = self.hflip && rng.below(2) == 1;
            keys.push((index, flip));
            let dst = &mut out[b * c * plane..(b + 1) * c * plane];
            for y in 0..s {
                for x in 0..s {
                    let sx = if flip { s - 1 - x } else { x };
                    for ch in 0..c {
                        dst[ch * plane + y * s + x] = img[(y * s + sx) * c + ch] as f32 / 127.5 - 1.0;
                    }
                }
            }
        }
        self.rng = rng.state();
        (Tensor::from_data(TensorData::new(out, [batch, c, s, s]), device), keys)
    }
}

/// What a checkpoint's state.json holds besides the tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RunState {
    spec: RunSpec,
    stage: Stage,
    /// Steps done in `stage`.
    step: usize,
    stage_rng: [u64; 4],
    batcher: DataBatcher,
    elapsed_s: f64,
    /// Mean loss of the last 100 steps of each finished stage, and the last (up to) 100 losses
    /// of the current one, so a resumed run reports the same final losses.
    #[serde(default)]
    final_losses: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    recent: Vec<f32>,
}

/// One logged step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    pub stage: Stage,
    pub step: usize,
    pub loss: f32,
    /// Auxiliary stage only: reconstruction MSE and KL.
    pub mse: f32,
    pub kl: f32,
}

/// Called after every step with the step's losses and the run's elapsed seconds.
pub type StepCallback = Box<dyn FnMut(&StepLog, f64)>;
/// Called when a stage starts: (stage, steps already done, total steps).
pub type StageCallback = Box<dyn FnMut(Stage, usize, usize)>;

/// Hooks a caller (the CLI, a test) can give a run.
#[derive(Default)]
pub struct RunControl {
    /// Set (e.g. by a Ctrl-C handler) to checkpoint and stop at the next step.
    pub stop: Option<Arc<AtomicBool>>,
    /// Stop (with a checkpoint) after this many steps in this invocation: simulates an interruption.
    pub stop_after: Option<usize>,
    /// Stop (with a checkpoint) at the first step boundary after this instant: a wall-clock
    /// budget for one invocation (a batch job's time slot).
    pub deadline: Option<Instant>,
    /// Called after every step.
    pub on_step: Option<StepCallback>,
    /// Called when a stage starts: (stage, steps already done, total steps).
    pub on_stage: Option<StageCallback>,
    /// Images the run never trains on (the validation split). When given, the latent-flow
    /// stage scores its EMA weights every 500 steps and at its end by the
    /// flow-matching loss on these images' encoder latents (fixed draws, [`LatentProbe`]) and
    /// logs it as `latent_held_out` rows in `losses.csv`: the latent flow memorises a small
    /// training set long before its training loss shows it.
    pub held_out: Option<Arc<Dataset>>,
    /// Called with (step, held-out loss) for each of those scores.
    pub on_held_out: Option<Box<dyn FnMut(usize, f64)>>,
}

/// Steps between the latent stage's held-out scores ([`RunControl::held_out`]; not `pub`: cbindgen
/// would put a crate-level constant into the C header).
const HELD_OUT_EVERY: usize = 500;

/// The `losses.csv` stage label of the latent stage's held-out rows.
pub const LATENT_HELD_OUT: &str = "latent_held_out";

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RunOutcome {
    /// All stages done; the model file is written.
    Finished { model: PathBuf, seconds: f64 },
    /// Stopped early with a checkpoint; `--resume` continues.
    Interrupted { stage: Stage, step: usize },
}

type Rec = NamedMpkBytesRecorder<FullPrecisionSettings>;

fn record_bytes<B: Backend, M: Module<B>>(m: &M) -> Result<Vec<u8>> {
    Rec::default().record(m.clone().into_record(), ()).map_err(|e| Error::Internal(format!("record: {e}")))
}

fn load_module<B: Backend, M: Module<B>>(m: M, bytes: Vec<u8>, device: &B::Device) -> Result<M> {
    let rec = Rec::default().load(bytes, device).map_err(|e| Error::Format(format!("checkpoint record: {e}")))?;
    Ok(m.load_record(rec))
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>> {
    std::fs::read(dir.join(name))
        .map_err(|e| Error::Io(std::io::Error::new(e.kind(), format!("{}: {e}", dir.join(name).display()))))
}

/// A finished auxiliary stage's saved (EMA) networks.
fn load_done_aux<B: Backend>(dir: &Path, cfg: &ModelConfig, device: &B::Device) -> Result<AuxModel<B>> {
    let m = AuxModel { encoder: AuxEncoder::new(cfg, device), decoder: AuxDecoder::new(cfg, device) };
    load_module(m, read(dir, "aux.done.mpk")?, device)
}

/// A finished latent-flow stage's saved (EMA) network.
fn load_done_latent<B: Backend>(dir: &Path, cfg: &ModelConfig, device: &B::Device) -> Result<LatentFlowNet<B>> {
    load_module(LatentFlowNet::new(cfg, device), read(dir, "latent.done.mpk")?, device)
}

fn parse_state(bytes: &[u8]) -> Result<RunState> {
    serde_json::from_slice(bytes).map_err(|e| Error::Format(format!("checkpoint state.json: {e}")))
}

/// Largest training batch (a typo such as --batch 100000000 would otherwise try to allocate
/// the batch before failing).
const MAX_BATCH: usize = 1 << 16;

/// An exclusive lock on `run_dir/lock` for as long as the returned file lives (the OS drops it
/// when the process ends, however it ends): two `train` processes on one folder would write
/// their checkpoints through the same `ckpt.new` and could leave a mix of both runs.
fn lock_run_dir(run_dir: &Path) -> Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(run_dir.join("lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::InvalidArgument(format!(
            "{} is in use by another training process (wait for it, or use another --run-dir)",
            run_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// The checkpoint folder to resume from: `ckpt`, else a complete `ckpt.new` (a crash between
/// the two renames), else `ckpt.old`.
fn find_checkpoint(run_dir: &Path) -> Option<PathBuf> {
    ["ckpt", "ckpt.new", "ckpt.old"].iter().map(|n| run_dir.join(n)).find(|d| d.join("state.json").is_file())
}

/// Writes a checkpoint folder and swaps it in; state.json is written last, so a folder
/// without it is incomplete and never used.
fn write_checkpoint(run_dir: &Path, files: &[(&str, Vec<u8>)], state: &RunState) -> Result<()> {
    let new = run_dir.join("ckpt.new");
    let cur = run_dir.join("ckpt");
    let old = run_dir.join("ckpt.old");
    let _ = std::fs::remove_dir_all(&new);
    std::fs::create_dir_all(&new)?;
    for (name, bytes) in files {
        write_atomic(&new.join(name), bytes)?;
    }
    let json = serde_json::to_vec_pretty(state).map_err(|e| Error::Internal(e.to_string()))?;
    write_atomic(&new.join("state.json"), &json)?;
    let _ = std::fs::remove_dir_all(&old);
    if cur.exists() {
        std::fs::rename(&cur, &old)?;
    }
    std::fs::rename(&new, &cur)?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

struct Log {
    file: std::fs::File,
}

impl Log {
    /// Opens the CSV log; on resume, drops rows past the checkpoint so no step appears twice.
    fn open(path: &Path, keep_until: Option<(Stage, usize)>, order: &[Stage]) -> Result<Self> {
        let header = "stage,step,loss,mse,kl,elapsed_s";
        let mut kept = vec![header.to_string()];
        if let (Some((stage, step)), Ok(text)) = (keep_until, std::fs::read_to_string(path)) {
            // Held-out rows belong to the latent stage.
            let rank = |s: &str| {
                let s = if s == LATENT_HELD_OUT { Stage::Latent.name() } else { s };
                order.iter().position(|x| x.name() == s)
            };
            let limit = rank(stage.name()).unwrap_or(0);
            for line in text.lines().skip(1) {
                let mut parts = line.split(',');
                let (Some(s), Some(n)) = (parts.next(), parts.next().and_then(|n| n.parse::<usize>().ok())) else {
                    continue;
                };
                match rank(s) {
                    Some(r) if r < limit || (r == limit && n <= step) => kept.push(line.to_string()),
                    _ => {}
                }
            }
        }
        // Replaced in one step (a kill while rewriting must not lose a long run's history),
        // then appended to.
        write_atomic(path, format!("{}\n", kept.join("\n")).as_bytes())?;
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Self { file })
    }

    fn row(&mut self, l: &StepLog, elapsed: f64) -> Result<()> {
        writeln!(self.file, "{},{},{},{},{},{:.3}", l.stage.name(), l.step, l.loss, l.mse, l.kl, elapsed)?;
        Ok(())
    }

    fn held_out_row(&mut self, step: usize, loss: f64, elapsed: f64) -> Result<()> {
        writeln!(self.file, "{LATENT_HELD_OUT},{step},{loss},0,0,{elapsed:.3}")?;
        Ok(())
    }
}

/// Finished-stage outputs needed by later stages and the model file.
struct Done<B: Backend> {
    aux: Option<AuxModel<B>>,
    latent: Option<LatentFlowNet<B>>,
}

/// The stage being trained (one per run at a time, so the variants' sizes do not matter).
#[allow(clippy::large_enum_variant)]
enum Active<B: AutodiffBackend> {
    Aux(AuxStage<B>),
    Latent(LatentStage<B>),
    Fm(FmStage<B>),
}

impl<B: AutodiffBackend> Active<B> {
    fn step(&mut self, stage: Stage, y: Tensor<B, 4>, keys: &[ImageKey]) -> StepLog {
        match self {
            Active::Aux(st) => {
                let l = st.step(y);
                StepLog { stage, step: 0, loss: l.total, mse: l.mse, kl: l.kl }
            }
            Active::Latent(st) => StepLog { stage, step: 0, loss: st.step(y), mse: 0.0, kl: 0.0 },
            Active::Fm(st) => StepLog { stage, step: 0, loss: st.step_keyed(y, Some(keys)), mse: 0.0, kl: 0.0 },
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
            "stage {} has 0 steps: only a fine-tuning run (--init MODEL) can take a network without training it",
            stage.name()
        )));
    }
    if spec.init.as_ref().is_some_and(|i| i.fresh_latent) && spec.steps.latent == 0 {
        return Err(Error::InvalidArgument(
            "stage latent has 0 steps, but a fresh latent flow (--fresh-latent) must be trained".into(),
        ));
    }
    if init.is_some() && velocity_start != VelocityStart::File && spec.steps.fm == 0 {
        return Err(Error::InvalidArgument(
            "stage fm has 0 steps, but the --init file's velocity network has another shape (dit): \
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
    let order: Vec<Stage> = stages.iter().map(|s| s.0).collect();

    let resumed: Option<(RunState, PathBuf)> = if resume {
        let dir = find_checkpoint(run_dir)
            .ok_or_else(|| Error::InvalidArgument(format!("--resume: no checkpoint in {}", run_dir.display())))?;
        let state = parse_state(&read(&dir, "state.json")?)?;
        spec.check_resume(&state.spec, state.stage, state.step)?;
        Some((state, dir))
    } else if find_checkpoint(run_dir).is_some() {
        // A fresh run would truncate the folder's loss log and replace its checkpoint at the
        // first save (a Ctrl-C included): an earlier run is never overwritten silently.
        return Err(Error::InvalidArgument(format!(
            "{} holds another run's checkpoint: add --resume to continue it, or use a new --run-dir \
             (or delete that folder) to start over",
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
        let missing = |what: &str| Error::Internal(format!("--init: the model file has no {what}"));
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
                    let (mu, logvar) = pool.rows(&ctx.batcher.next_indices(spec.train.latent_batch));
                    StepLog { stage, step: 0, loss: st.step_posterior(mu, logvar), mse: 0.0, kl: 0.0 }
                }
                _ => {
                    let (y, keys) = ctx.batcher.next::<B>(data, spec.train.batch_size, device);
                    active.step(stage, y, &keys)
                }
            };
            ctx.step += 1;
            steps_this_call += 1;
            l.step = ctx.step;
            if !l.loss.is_finite() {
                return Err(Error::Internal(format!(
                    "{} loss became {} at step {}: lower the learning rate and --resume from the last checkpoint",
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
        // A stage that ran no steps (taken from an --init file) has no loss to report.
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

/// Where the checkpoint behind an [`export`]ed model file stood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportedAt {
    /// Image-flow (fm) steps done at the checkpoint.
    pub step: usize,
    /// The run's fm step target.
    pub steps: usize,
}

/// The model a run folder's latest checkpoint holds: the finished stages' networks and the
/// image flow's EMA weights at the checkpoint's step (what the run would write if it ended
/// there), so a long run can be sampled and evaluated before it ends, or while it runs. The run
/// must have taken at least one image-flow (fm) step: before that there is no velocity network
/// to sample with.
pub fn export<B: Backend>(run_dir: &Path, device: &B::Device) -> Result<(Networks<B>, ModelMeta, ExportedAt)> {
    // A run that is writing a checkpoint swaps folders (ckpt -> ckpt.old, ckpt.new -> ckpt):
    // read state.json before and after the weights and try again if a swap came between.
    let mut last_err = None;
    for _ in 0..5 {
        let Some(dir) = find_checkpoint(run_dir) else {
            return Err(Error::InvalidArgument(format!("no checkpoint in {}", run_dir.display())));
        };
        match export_from(&dir, device) {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => {}
            Err(e @ Error::InvalidArgument(_)) => return Err(e),
            Err(e) => last_err = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Err(last_err.unwrap_or_else(|| {
        Error::Internal(format!("{}: the checkpoint kept changing while it was read", run_dir.display()))
    }))
}

/// One attempt of [`export`]: `Ok(None)` when the checkpoint changed while it was read.
fn export_from<B: Backend>(dir: &Path, device: &B::Device) -> Result<Option<(Networks<B>, ModelMeta, ExportedAt)>> {
    let state_bytes = read(dir, "state.json")?;
    let state = parse_state(&state_bytes)?;
    let spec = &state.spec;
    if state.stage != Stage::Fm || state.step == 0 {
        let total = spec.stages().iter().find(|(s, _)| *s == state.stage).map_or(0, |s| s.1);
        return Err(Error::InvalidArgument(format!(
            "the run's checkpoint is at step {} of {} of stage {}: a model file needs the image-flow (fm) \
             stage's network, so export once the fm stage has taken a step",
            state.step,
            total,
            state.stage.name()
        )));
    }
    let cfg = &spec.model;
    let (encoder, decoder, latent) = if cfg.prior == PriorKind::Learned {
        let aux = load_done_aux(dir, cfg, device)?;
        (Some(aux.encoder), Some(aux.decoder), Some(load_done_latent(dir, cfg, device)?))
    } else {
        (None, None, None)
    };
    let velocity = load_module(VelocityNet::new(cfg, device), read(dir, "ema.mpk")?, device)?;
    if read(dir, "state.json")? != state_bytes {
        return Ok(None);
    }
    let at = ExportedAt { step: state.step, steps: spec.steps.fm };
    let recent_mean = if state.recent.is_empty() {
        serde_json::Value::Null
    } else {
        (state.recent.iter().sum::<f32>() / state.recent.len() as f32).into()
    };
    let training = serde_json::json!({
        "run": spec,
        "wall_seconds": state.elapsed_s,
        "final_losses_mean_of_last_100_steps": state.final_losses,
        "exported_from_checkpoint": {
            "fm_step": at.step,
            "fm_steps": at.steps,
            "fm_loss_mean_of_recent_steps": recent_mean,
        },
    });
    let meta = ModelMeta::new(cfg.clone(), training);
    Ok(Some((Networks { encoder, decoder, latent, velocity }, meta, at)))
}

fn net_files<B: AutodiffBackend, M: AutodiffModule<B>>(net: &Trainable<B, M>) -> Result<Vec<(&'static str, Vec<u8>)>> {
    Ok(vec![
        ("live.mpk", record_bytes(net.model())?),
        ("ema.mpk", record_bytes(net.ema())?),
        ("optim.mpk", Rec::default().record(net.optim.to_record(), ()).map_err(|e| Error::Internal(e.to_string()))?),
    ])
}

/// Per-stage bookkeeping.
struct StageCtx {
    stage: Stage,
    step: usize,
    batcher: DataBatcher,
    spec: RunSpec,
    recent: Vec<f32>,
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

/// Whether `stage` steps on stored latents ([`TrainConfig::latent_batch`]): the frozen
/// encoder's posteriors of the training images, then of their mirrors when the run flips.
fn stored_latents(spec: &RunSpec, stage: Stage) -> bool {
    stage == Stage::Latent && spec.train.latent_batch > 0
}

/// Restores a stage's live weights, EMA and Adam state from a checkpoint folder.
fn restore<B: AutodiffBackend, M: AutodiffModule<B>>(
    net: &mut Trainable<B, M>,
    dir: &Path,
    device: &B::Device,
) -> Result<()> {
    let model = load_module(net.model().clone(), read(dir, "live.mpk")?, device)?;
    let idev = device.clone();
    let ema = load_module(net.ema().clone(), read(dir, "ema.mpk")?, &idev)?;
    let optim_rec = Rec::default()
        .load(read(dir, "optim.mpk")?, device)
        .map_err(|e| Error::Format(format!("checkpoint optimizer record: {e}")))?;
    net.optim = net.optim.clone().load_record(optim_rec);
    net.set_model(model);
    net.set_ema(ema);
    let state: RunState =
        serde_json::from_slice(&read(dir, "state.json")?).map_err(|e| Error::Format(e.to_string()))?;
    net.step = state.step;
    Ok(())
}
