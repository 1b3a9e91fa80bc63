//! The generation pipeline: sample, sample latents, generate from latents, encode, decode the
//! prior, interpolate, inpaint and vary (docs/METHOD.md).
//!
//! [`Pipeline`] runs on any burn backend with [N, C, H, W] tensors in [-1, 1] ([`crate::image`]
//! converts 8-bit pixels). [`Model`] is what hosts call: 8-bit buffers, the device chosen at load
//! time, batching, the per-call limits and the memory limit, shared by every front end.

mod base;
mod edit;
mod fields;
mod memory;
mod model;
mod options;
mod sample;
mod vary;

pub use base::Pipeline;
pub use fields::slerp;
pub use memory::bytes_per_image;
pub use model::Model;
pub(crate) use options::valid_time_shift;
pub use options::{
    ALL_PRECISIONS, BF16_ENV, CancelToken, CpuSupport, DEFAULT_BATCH, Interpolation, Kernels, MAX_BATCH, MAX_COUNT,
    MAX_FIRST_INDEX, MAX_GUIDANCE, MAX_INPAINT_CANDIDATES, MAX_STEPS, MAX_VARIATIONS, ModelInfo, Precision, ProgressFn,
    SampleOptions,
};
pub use options::{check_count, check_strength, check_variations, class_list, variation_stream};
pub use sample::CPU_CHUNK;
