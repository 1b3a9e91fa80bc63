//! The run folder: its lock, checkpoints (network records and state) written atomically, and reading them back.

use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::batcher::*;
use super::spec::*;
use super::*;
use crate::checkpoint::write_atomic;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::{AuxDecoder, AuxEncoder, LatentFlowNet};
use crate::train::{AuxModel, Trainable};

/// What a checkpoint's state.json holds besides the tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct RunState {
    pub(super) spec: RunSpec,
    pub(super) stage: Stage,
    /// Steps done in `stage`.
    pub(super) step: usize,
    pub(super) stage_rng: [u64; 4],
    pub(super) batcher: DataBatcher,
    pub(super) elapsed_s: f64,
    /// Mean loss of the last 100 steps of each finished stage, and the last (up to) 100 losses
    /// of the current one, so a resumed run reports the same final losses.
    #[serde(default)]
    pub(super) final_losses: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub(super) recent: Vec<f32>,
}

pub(super) type Rec = NamedMpkBytesRecorder<FullPrecisionSettings>;

pub(super) fn record_bytes<B: Backend, M: Module<B>>(m: &M) -> Result<Vec<u8>> {
    Rec::default().record(m.clone().into_record(), ()).map_err(|e| Error::Internal(format!("record: {e}")))
}

pub(super) fn load_module<B: Backend, M: Module<B>>(m: M, bytes: Vec<u8>, device: &B::Device) -> Result<M> {
    let rec = Rec::default().load(bytes, device).map_err(|e| Error::Format(format!("checkpoint record: {e}")))?;
    Ok(m.load_record(rec))
}

pub(super) fn read(dir: &Path, name: &str) -> Result<Vec<u8>> {
    std::fs::read(dir.join(name))
        .map_err(|e| Error::Io(std::io::Error::new(e.kind(), format!("{}: {e}", dir.join(name).display()))))
}

/// A finished auxiliary stage's saved (EMA) networks.
pub(super) fn load_done_aux<B: Backend>(dir: &Path, cfg: &ModelConfig, device: &B::Device) -> Result<AuxModel<B>> {
    let m = AuxModel { encoder: AuxEncoder::new(cfg, device), decoder: AuxDecoder::new(cfg, device) };
    load_module(m, read(dir, "aux.done.mpk")?, device)
}

/// A finished latent-flow stage's saved (EMA) network.
pub(super) fn load_done_latent<B: Backend>(
    dir: &Path,
    cfg: &ModelConfig,
    device: &B::Device,
) -> Result<LatentFlowNet<B>> {
    load_module(LatentFlowNet::new(cfg, device), read(dir, "latent.done.mpk")?, device)
}

pub(super) fn parse_state(bytes: &[u8]) -> Result<RunState> {
    serde_json::from_slice(bytes).map_err(|e| Error::Format(format!("checkpoint state.json: {e}")))
}

/// An exclusive lock on `run_dir/lock` for as long as the returned file lives (the OS drops it
/// when the process ends, however it ends): two `train` processes on one folder would write
/// their checkpoints through the same `ckpt.new` and could leave a mix of both runs.
pub(super) fn lock_run_dir(run_dir: &Path) -> Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(run_dir.join("lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::InvalidArgument(format!(
            "{} is in use by another training process (wait for it, or use another run folder)",
            run_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// The checkpoint folder to resume from: `ckpt`, else a complete `ckpt.new` (a crash between
/// the two renames), else `ckpt.old`.
pub(super) fn find_checkpoint(run_dir: &Path) -> Option<PathBuf> {
    ["ckpt", "ckpt.new", "ckpt.old"].iter().map(|n| run_dir.join(n)).find(|d| d.join("state.json").is_file())
}

/// Writes a checkpoint folder and swaps it in; state.json is written last, so a folder
/// without it is incomplete and never used.
pub(super) fn write_checkpoint(run_dir: &Path, files: &[(&str, Vec<u8>)], state: &RunState) -> Result<()> {
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

pub(super) fn net_files<B: AutodiffBackend, M: AutodiffModule<B>>(
    net: &Trainable<B, M>,
) -> Result<Vec<(&'static str, Vec<u8>)>> {
    Ok(vec![
        ("live.mpk", record_bytes(net.model())?),
        ("ema.mpk", record_bytes(net.ema())?),
        ("optim.mpk", Rec::default().record(net.optim.to_record(), ()).map_err(|e| Error::Internal(e.to_string()))?),
    ])
}

/// Restores a stage's live weights, EMA and Adam state from a checkpoint folder.
pub(super) fn restore<B: AutodiffBackend, M: AutodiffModule<B>>(
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
