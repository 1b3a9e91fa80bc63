//! A full, resumable training run: the stages in order, periodic atomic checkpoints holding
//! everything needed to continue bit-exactly (live and EMA weights, Adam state, step, RNG and
//! batch-order state), a CSV loss log, and the final model file.
//!
//! [`run`] is the one training loop: `lediflow train` and the tests drive it through
//! [`RunSpec`] and [`RunControl`].

mod batcher;
mod driver;
mod export;
mod folder;
mod init;
mod log;
mod spec;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::Dataset;

pub use batcher::DataBatcher;
pub use driver::run;
pub use export::{ExportedAt, export};
pub use init::InitFrom;
pub use spec::{DATA_FINGERPRINT, RunSpec, fnv64_hex};

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
pub(super) const HELD_OUT_EVERY: usize = 500;

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
