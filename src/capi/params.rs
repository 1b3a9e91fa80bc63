//! The C parameter and info structs, and their translation to [`SampleOptions`].
//!
//! Both structs begin with `uint32_t struct_size` (the caller's `sizeof`), so later versions can
//! append fields: the library reads (or writes) only the prefix the caller knows and uses
//! defaults for the rest.

use std::ffi::c_void;
use std::sync::Arc;

use super::{LdfCancel, LdfStatus};
use crate::error::{Result, invalid};
use crate::flow::Solver;
use crate::pipeline::{Interpolation, Precision, ProgressFn, SampleOptions};

/// ODE solver of the image flow. NFE per step: Euler 1, Midpoint 2, Heun 2, RK4 4.
pub type LdfSolver = u32;
pub const LDF_SOLVER_EULER: LdfSolver = 0;
pub const LDF_SOLVER_MIDPOINT: LdfSolver = 1;
pub const LDF_SOLVER_HEUN: LdfSolver = 2;
pub const LDF_SOLVER_RK4: LdfSolver = 3;

/// How `ldf_interpolate` walks from one latent to the other.
pub type LdfInterpolation = u32;
/// Straight line (the default: latents are posterior means, not unit-norm noise).
pub const LDF_INTERPOLATION_LINEAR: LdfInterpolation = 0;
/// Great circle (slerp), keeps the norm.
pub const LDF_INTERPOLATION_SPHERICAL: LdfInterpolation = 1;

/// What a model's x0 is drawn from.
pub type LdfPrior = u32;
/// LeDiFlow: a per-image Gaussian from the auxiliary decoder; the model has a latent space.
pub const LDF_PRIOR_LEARNED: LdfPrior = 0;
/// The baseline: N(0, I). No latent space (latent calls return `LDF_ERR_UNSUPPORTED`).
pub const LDF_PRIOR_GAUSSIAN: LdfPrior = 1;

/// Called after every image-flow solver step with (steps done, total steps) counted over the
/// whole call (all batches; the count may repeat a value but never goes back). Return false to
/// cancel. The latent flow's steps (cheap) report nothing: `ldf_sample_latents` checks the
/// cancel token only between batches. Runs on the thread that made the call. Must not unwind
/// (throw) into the library.
pub type LdfProgressFn = Option<unsafe extern "C" fn(step: u32, total: u32, user_data: *mut c_void) -> bool>;

/// Parameters of a generation call. Fill with `ldf_sample_params_init`, then change fields.
/// Passing NULL instead of a params pointer means the defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LdfSampleParams {
    /// sizeof(LdfSampleParams) as the caller compiled it (set by `ldf_sample_params_init`).
    pub struct_size: u32,
    /// Image-flow solver steps, 1..=10000 (default 4). NFE = steps x the solver's evaluations.
    pub steps: u32,
    /// Seed of every random draw. Image i of a call depends only on (seed, first_index + i).
    pub seed: u64,
    /// Index of the call's first image in the seed's streams (default 0): calls with
    /// first_index 0 and count 8, and with first_index 8 and count 8, give the 16 images of one
    /// call with count 16. At most 2^48.
    pub first_index: u64,
    /// `LDF_SOLVER_*` (default `LDF_SOLVER_MIDPOINT`).
    pub solver: LdfSolver,
    /// Scale s of the prior noise, x0 = mu + s * sigma * eps, in [0, 100] (default 1; 0 starts
    /// from the prior mean). Ignored by Gaussian-prior models.
    pub prior_scale: f32,
    /// Optional progress callback (NULL: none).
    pub progress: LdfProgressFn,
    /// Passed unchanged to `progress`.
    pub user_data: *mut c_void,
    /// Optional cancel token another thread may raise (NULL: none).
    pub cancel: *const LdfCancel,
    /// Latent-flow solver steps, 1..=10000 (default 16; cheap: an MLP on latent_dim numbers).
    pub latent_steps: u32,
    /// `LDF_SOLVER_*` for the latent flow (default `LDF_SOLVER_MIDPOINT`).
    pub latent_solver: LdfSolver,
    /// Candidate latents inpainting scores besides the encoder's guess, 0..=4096 (default 16).
    pub inpaint_candidates: u32,
    /// `LDF_INTERPOLATION_*` for `ldf_interpolate` (default `LDF_INTERPOLATION_LINEAR`).
    pub interpolation: LdfInterpolation,
    /// Images per network batch, 1..=4096, or 0 for the library's choice (default 0: 32 images,
    /// fewer if the model's memory limit needs it). Results do not depend on it.
    pub batch_size: u32,
    /// Timestep shift of the image flow's solver grid, in [0.01, 100], or 0 (the default) for the
    /// model file's recommendation (1 = equal steps where the file has none). Values above 1
    /// take shorter steps near the prior and longer ones near the data (Stable Diffusion 3's
    /// shift): Gaussian-prior models need about 3 at 4 Midpoint steps. Added after the first
    /// release: a caller whose `struct_size` ends before it gets the default.
    pub time_shift: f64,
    /// Non-zero: seamless tiles. Every image wraps around (its right edge continues into its
    /// left edge, its bottom into its top, in every channel), for every generation call and both
    /// kinds of model. Default 0. Added after the first release: a caller whose `struct_size`
    /// ends before it gets 0.
    pub tileable: u32,
    /// Ignored (set to 0 by `ldf_sample_params_init`). It keeps the struct free of trailing
    /// padding, so a later field never lands in bytes an older caller's `struct_size` covers.
    pub reserved: u32,
    /// The class to generate, `0..class_count` of a class-conditional model (names from
    /// `ldf_model_class_name`), or `LDF_CLASS_NONE` (the default): unconditional. A class the
    /// model does not have is `LDF_ERR_INVALID_ARGUMENT`, with the valid classes in the message.
    /// Added after the first release, like `guidance`: a caller whose `struct_size` ends before
    /// them gets unconditional images.
    pub class_id: u32,
    /// Classifier-free guidance scale for `class_id`, finite, in [0, 100] (default 1: the plain
    /// conditional flow). Above 1 follows the class more closely and costs one more network
    /// evaluation per step of each conditioned flow; 0 is the unconditional flow.
    pub guidance: f32,
    /// `LDF_PRECISION_*` of the CPU passes' matrix products (default `LDF_PRECISION_FP32`).
    /// `LDF_PRECISION_BF16` on a CPU without AVX512-BF16, or on CUDA, is `LDF_ERR_UNSUPPORTED`;
    /// `LDF_PRECISION_AUTO` runs bf16 where the CPU has it (`LdfModelInfo.cpu_features`) and
    /// fp32 elsewhere. Within one precision image i still depends only on (seed, index); bf16
    /// images differ from fp32's by a few 8-bit levels in places. Added after the first
    /// release: a caller whose `struct_size` ends before it gets fp32.
    pub precision: LdfPrecision,
    /// Set to 0 (by `ldf_sample_params_init`); keeps the struct free of trailing padding.
    pub reserved2: u32,
}

/// Arithmetic of the CPU passes' matrix products (`LdfSampleParams.precision`).
pub type LdfPrecision = u32;
/// fp32 throughout (the default).
pub const LDF_PRECISION_FP32: LdfPrecision = 0;
/// Weights and activations rounded to bfloat16, sums in fp32 (AVX512-BF16 CPUs only).
pub const LDF_PRECISION_BF16: LdfPrecision = 1;
/// bf16 where the CPU has it, fp32 everywhere else.
pub const LDF_PRECISION_AUTO: LdfPrecision = 2;

/// `LdfModelInfo.cpu_features` bit: AVX-512F with AVX512-BF16 (the bf16 kernels run).
pub const LDF_CPU_AVX512_BF16: u32 = 1;
/// `LdfModelInfo.cpu_features` bit: AMX tiles with AMX-BF16 (reported; the kernels use
/// AVX512-BF16, which such CPUs have as well).
pub const LDF_CPU_AMX_BF16: u32 = 2;

/// `LdfSampleParams.class_id` for unconditional generation.
pub const LDF_CLASS_NONE: u32 = u32::MAX;

/// What a loaded model is. Set `struct_size = sizeof(LdfModelInfo)` before `ldf_model_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LdfModelInfo {
    pub struct_size: u32,
    /// Image width and height in pixels.
    pub width: u32,
    pub height: u32,
    /// Bytes per pixel: 1 (grey), 3 (RGB) or 4 (RGBA).
    pub channels: u32,
    /// Floats per latent; 0 for Gaussian-prior models.
    pub latent_dim: u32,
    /// `LDF_PRIOR_*`.
    pub prior: LdfPrior,
    /// Version of the model file format.
    pub format_version: u32,
    /// Bytes of one image: width * height * channels.
    pub image_bytes: usize,
    /// Bytes of one latent: latent_dim * sizeof(float).
    pub latent_bytes: usize,
    /// Bytes of one inpainting mask: width * height.
    pub mask_bytes: usize,
    /// Number of network parameters.
    pub parameters: u64,
    /// The solver-grid shift a call gets with `time_shift = 0`: the model file's recommendation,
    /// or 1 (equal steps) where it has none. Added after the first release: a caller whose
    /// `struct_size` ends before it does not get it.
    pub time_shift: f64,
    /// Number of classes of a class-conditional model (0: unconditional); their names come from
    /// `ldf_model_class_name`. Added after the first release.
    pub class_count: u32,
    /// Set to 0; keeps the struct free of trailing padding.
    pub reserved: u32,
    /// What this CPU offers for bf16 inference: `LDF_CPU_*` bits (0 on other CPUs, or with the
    /// environment variable `LEDIFLOW_CPU_BF16=0`). Added after the first release.
    pub cpu_features: u32,
    /// The `LDF_PRECISION_*` that `LDF_PRECISION_AUTO` runs for this model here (fp32 or bf16).
    pub auto_precision: LdfPrecision,
}

/// Smallest `struct_size` accepted: the size of the first published version of each struct
/// (`LdfSampleParams` ended with `batch_size`, `LdfModelInfo` with `parameters`; the `time_shift`
/// added to each starts exactly where it ended). Fields added later start exactly where the
/// previous version's struct ended, so a caller's `struct_size` says which fields it knows.
const SAMPLE_PARAMS_V1: usize = std::mem::offset_of!(LdfSampleParams, time_shift);
const MODEL_INFO_V1: usize = std::mem::offset_of!(LdfModelInfo, time_shift);

impl Default for LdfSampleParams {
    fn default() -> Self {
        let o = SampleOptions::default();
        Self {
            struct_size: size_of::<Self>() as u32,
            steps: o.steps as u32,
            seed: o.seed,
            first_index: o.first_index,
            solver: solver_code(o.solver),
            prior_scale: o.prior_scale,
            progress: None,
            user_data: std::ptr::null_mut(),
            cancel: std::ptr::null(),
            latent_steps: o.latent_steps as u32,
            latent_solver: solver_code(o.latent_solver),
            inpaint_candidates: o.inpaint_candidates as u32,
            interpolation: LDF_INTERPOLATION_LINEAR,
            batch_size: 0,
            time_shift: o.time_shift.map_or(0.0, f64::from),
            tileable: o.tileable as u32,
            reserved: 0,
            class_id: o.class.unwrap_or(LDF_CLASS_NONE),
            guidance: o.guidance,
            precision: precision_code(o.precision),
            reserved2: 0,
        }
    }
}

pub(crate) fn precision_code(p: Precision) -> LdfPrecision {
    match p {
        Precision::Fp32 => LDF_PRECISION_FP32,
        Precision::Bf16 => LDF_PRECISION_BF16,
        Precision::Auto => LDF_PRECISION_AUTO,
    }
}

fn precision_of(code: LdfPrecision) -> Result<Precision> {
    Ok(match code {
        LDF_PRECISION_FP32 => Precision::Fp32,
        LDF_PRECISION_BF16 => Precision::Bf16,
        LDF_PRECISION_AUTO => Precision::Auto,
        other => return invalid(format!("precision {other} is not an LdfPrecision (0..=2)")),
    })
}

fn solver_code(s: Solver) -> LdfSolver {
    match s {
        Solver::Euler => LDF_SOLVER_EULER,
        Solver::Midpoint => LDF_SOLVER_MIDPOINT,
        Solver::Heun => LDF_SOLVER_HEUN,
        Solver::Rk4 => LDF_SOLVER_RK4,
    }
}

fn solver_of(code: LdfSolver, field: &str) -> Result<Solver> {
    Ok(match code {
        LDF_SOLVER_EULER => Solver::Euler,
        LDF_SOLVER_MIDPOINT => Solver::Midpoint,
        LDF_SOLVER_HEUN => Solver::Heun,
        LDF_SOLVER_RK4 => Solver::Rk4,
        other => return invalid(format!("{field} {other} is not an LdfSolver (0..=3)")),
    })
}

/// Fills the first `size` bytes of `params` with the defaults (4 Midpoint steps, seed 0, prior
/// scale 1, no callback) and sets `struct_size` to `size`: pass `sizeof(LdfSampleParams)` as the
/// caller was compiled (the header's `ldf_sample_params_init(p)` macro does), so the library never
/// writes past a struct from an older header. `LDF_ERR_INVALID_ARGUMENT` for NULL or a size
/// outside the layouts this library knows (nothing written).
///
/// # Safety
/// `params` must be NULL or point to `size` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_sample_params_init_sized(params: *mut LdfSampleParams, size: usize) -> LdfStatus {
    super::guard("ldf_sample_params_init_sized", || {
        if params.is_null() {
            return invalid("params is NULL");
        }
        check_size(size, SAMPLE_PARAMS_V1, size_of::<LdfSampleParams>(), "LdfSampleParams")?;
        let value = LdfSampleParams { struct_size: size as u32, ..LdfSampleParams::default() };
        // SAFETY: non-null, `size` writable bytes (the caller's contract), within the struct.
        unsafe {
            std::ptr::copy_nonoverlapping((&value as *const LdfSampleParams).cast::<u8>(), params.cast::<u8>(), size)
        };
        Ok(())
    })
}

/// The function behind the `ldf_sample_params_init(p)` macro of older headers: fills the first
/// published layout (the fields up to `batch_size`) with the defaults and sets `struct_size` to
/// its size, so a host compiled against the first header, whose struct is that small, is never
/// written past. Fields added later keep their values (and a `struct_size` this small tells the
/// library to ignore them): use `ldf_sample_params_init_sized`, which the header's macro of this
/// name calls. NULL is ignored.
///
/// # Safety
/// `params` must be NULL or point to writable storage for at least the first published layout.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_sample_params_init(params: *mut LdfSampleParams) {
    if !params.is_null() {
        // SAFETY: as ldf_sample_params_init_sized with the smallest size; cannot fail.
        let _ = unsafe { ldf_sample_params_init_sized(params, SAMPLE_PARAMS_V1) };
    }
}

/// Copies the caller's struct (of its own `struct_size`) over `defaults`.
///
/// # Safety
/// `ptr` must be non-null and point to at least `struct_size` readable bytes, `struct_size` being
/// its first field.
unsafe fn read_versioned<T: Copy>(ptr: *const T, defaults: T, v1: usize, name: &str) -> Result<T> {
    // SAFETY: every versioned struct starts with a u32 struct_size (caller's contract).
    let size = unsafe { ptr.cast::<u32>().read_unaligned() } as usize;
    check_size(size, v1, size_of::<T>(), name)?;
    let mut out = defaults;
    // SAFETY: size is within both structs; both are plain repr(C) data.
    unsafe { std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&mut out as *mut T).cast::<u8>(), size) };
    Ok(out)
}

fn check_size(size: usize, v1: usize, current: usize, name: &str) -> Result<()> {
    if size < v1 || size > current {
        return invalid(format!(
            "{name}.struct_size is {size}, this library expects {current} (set it to sizeof({name}){})",
            if name == "LdfSampleParams" { " or call ldf_sample_params_init" } else { "" }
        ));
    }
    Ok(())
}

/// Writes `value` into the caller's struct, only as many bytes as its `struct_size` says.
///
/// # Safety
/// `ptr` must be non-null and point to at least `struct_size` writable bytes.
pub(crate) unsafe fn write_info(ptr: *mut LdfModelInfo, mut value: LdfModelInfo) -> Result<()> {
    // SAFETY: struct_size is the first field (caller's contract).
    let size = unsafe { ptr.cast::<u32>().read_unaligned() } as usize;
    check_size(size, MODEL_INFO_V1, size_of::<LdfModelInfo>(), "LdfModelInfo")?;
    value.struct_size = size as u32;
    // SAFETY: size bytes fit in both.
    unsafe { std::ptr::copy_nonoverlapping((&value as *const LdfModelInfo).cast::<u8>(), ptr.cast::<u8>(), size) };
    Ok(())
}

/// The host's progress callback, as the pipeline's progress function.
#[derive(Clone, Copy)]
struct HostProgress {
    progress: unsafe extern "C" fn(u32, u32, *mut c_void) -> bool,
    user_data: *mut c_void,
}

// SAFETY: the pipeline calls progress only on the thread that made the call (documented), and
// the host keeps user_data valid during the call.
unsafe impl Send for HostProgress {}
unsafe impl Sync for HostProgress {}

impl HostProgress {
    fn keep_going(&self, step: usize, total: usize) -> bool {
        let clamp = |v: usize| v.min(u32::MAX as usize) as u32;
        // SAFETY: a host function of exactly this signature.
        unsafe { (self.progress)(clamp(step), clamp(total), self.user_data) }
    }
}

/// One call's options, checked.
pub(crate) struct CallOptions {
    pub opts: SampleOptions,
    pub interpolation: Interpolation,
}

/// Reads and validates `params` (NULL = defaults).
///
/// # Safety
/// `params` must be NULL or point to a struct of at least its `struct_size` bytes, whose
/// `cancel` is NULL or a live token.
pub(crate) unsafe fn call_options(params: *const LdfSampleParams) -> Result<CallOptions> {
    let p = if params.is_null() {
        LdfSampleParams::default()
    } else {
        // SAFETY: non-null, the caller's contract covers the rest.
        unsafe { read_versioned(params, LdfSampleParams::default(), SAMPLE_PARAMS_V1, "LdfSampleParams")? }
    };
    let progress = p.progress.map(|f| -> ProgressFn {
        let host = HostProgress { progress: f, user_data: p.user_data };
        Arc::new(move |step, total| host.keep_going(step, total))
    });
    let opts = SampleOptions {
        seed: p.seed,
        steps: p.steps as usize,
        solver: solver_of(p.solver, "solver")?,
        prior_scale: p.prior_scale,
        // 0 leaves it to the model; anything else (NaN, out of range) is checked by validate.
        time_shift: (p.time_shift != 0.0).then_some(p.time_shift as f32),
        latent_steps: p.latent_steps as usize,
        latent_solver: solver_of(p.latent_solver, "latent_solver")?,
        inpaint_candidates: p.inpaint_candidates as usize,
        first_index: p.first_index,
        batch_size: p.batch_size as usize,
        tileable: p.tileable != 0,
        class: (p.class_id != LDF_CLASS_NONE).then_some(p.class_id),
        guidance: p.guidance,
        class_in_image_flow: true,
        precision: precision_of(p.precision)?,
        progress,
        // SAFETY: NULL or a live token (the caller's contract).
        cancel: unsafe { p.cancel.as_ref() }.map(LdfCancel::token),
    };
    opts.validate()?;
    let interpolation = match p.interpolation {
        LDF_INTERPOLATION_LINEAR => Interpolation::Linear,
        LDF_INTERPOLATION_SPHERICAL => Interpolation::Spherical,
        other => return invalid(format!("interpolation {other} is not an LdfInterpolation (0..=1)")),
    };
    Ok(CallOptions { opts, interpolation })
}
