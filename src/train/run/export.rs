//! The model a run would end with, written from its latest checkpoint while it goes on.

use std::path::Path;

use burn::prelude::*;

use super::folder::*;
use super::*;
use crate::checkpoint::ModelMeta;
use crate::config::PriorKind;
use crate::error::{Error, Result};
use crate::model::{Networks, VelocityNet};

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
pub(super) fn export_from<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<Option<(Networks<B>, ModelMeta, ExportedAt)>> {
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
