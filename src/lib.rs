//! # lediflow
//!
//! Image generation with LeDiFlow (learned-prior flow matching, arXiv 2505.20723): an auxiliary
//! encoder/decoder learns a per-image Gaussian prior, a latent flow model samples latents for
//! it, and a DiT velocity network carries a draw from that prior to an image in a few ODE steps.
//!
//! Layers, each calling only downward: [`model`] (networks) and [`flow`] (path, solvers) ->
//! [`pipeline`] (sample / generate / encode / interpolate / inpaint / vary; [`Model`] adds 8-bit
//! buffers, batching, limits and the device) and [`train`] -> [`checkpoint`] (one validated
//! `.safetensors` model file). [`capi`] is the C ABI on top of [`Model`] (`include/lediflow.h`).

pub mod capi;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod flow;
pub mod image;
pub mod loss;
pub mod model;
pub mod pipeline;
pub mod rng;
pub mod train;

pub use checkpoint::{FORMAT_VERSION, ModelMeta};
pub use config::{ModelConfig, PriorKind};
pub use device::Device;
pub use error::{Error, Result};
pub use flow::Solver;
pub use pipeline::{CancelToken, Interpolation, Model, ModelInfo, Pipeline, Precision, SampleOptions};

/// The default CPU backend (see README: measured against the alternatives on this workload).
pub type CpuBackend = burn::backend::Flex;
/// The CPU backend with automatic differentiation, for training.
pub type CpuTrainBackend = burn::backend::Autodiff<CpuBackend>;

/// Compiles the README's Rust examples as doc tests, so the front door cannot go stale.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
