//! What defines a run: its specification, the resume rules and the data fingerprint.

use serde::{Deserialize, Serialize};

use super::init::*;
use super::*;
use crate::config::{ModelConfig, PriorKind};
use crate::error::{Error, Result};
use crate::train::{StageSteps, TrainConfig};

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
                "cannot resume: the training data differ from the checkpoint's (now {}, then {}); \
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
                "cannot resume: the checkpoint was made with different settings: {}; resume with the run's \
                 own settings (give a setting whose default changed since explicitly), or start a new run folder",
                diffs.join(", ")
            )));
        }
        for ((st, new), (_, old)) in self.stages().into_iter().zip(saved.stages()) {
            if st < stage && new != old {
                return Err(Error::InvalidArgument(format!(
                    "cannot resume: stage {} is finished with {old} steps; it cannot change to {new} \
                     (only the current stage {} and later ones can get more steps)",
                    st.name(),
                    stage.name()
                )));
            }
            if st == stage && new < step {
                return Err(Error::InvalidArgument(format!(
                    "cannot resume: stage {} is already at step {step}; it cannot stop at {new}",
                    st.name()
                )));
            }
            // Steps before a decay starts see the same learning rate under any count and decay,
            // so the schedule can change until a step was taken at a decayed rate under either.
            let (now, then) = (self.train.optim(st), saved.train.optim(st));
            let changed = new != old || now.decay_steps != then.decay_steps;
            if st == stage && changed && step > now.decay_start(new).min(then.decay_start(old)) {
                return Err(Error::InvalidArgument(format!(
                    "cannot resume: stage {} is at step {step}, inside its learning-rate decay (the last {} of \
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

/// Where two JSON documents differ: "key.path (now X, checkpoint Y)" for every differing leaf,
/// with the model config's keys written as `--set` takes them (no `model.` prefix).
pub(super) fn json_diff(now: &serde_json::Value, then: &serde_json::Value, path: &str, out: &mut Vec<String>) {
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
