//! What one generation call is asked to do: [`SampleOptions`], its limits, progress and
//! cancellation. Every front end (Rust, C, Python, CLI) builds these and the pipeline checks them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::PriorKind;
use crate::error::{Result, invalid};
use crate::flow::Solver;
pub use crate::model::cpu::Kernels;

/// Progress callback: (step done, total steps) -> keep going? Returning false cancels the call.
/// A batched call ([`crate::Model`]) counts steps over all its batches.
pub type ProgressFn = Arc<dyn Fn(usize, usize) -> bool + Send + Sync>;

/// Most images (or frames, latents) one call takes. Beyond it a typo, or a negative number cast
/// to unsigned, would ask for more memory than any machine has; larger jobs are several calls
/// with consecutive [`SampleOptions::first_index`].
pub const MAX_COUNT: usize = 1 << 16;
/// Largest step count (image flow and latent flow) one call accepts.
pub const MAX_STEPS: usize = 10_000;
/// Largest [`SampleOptions::batch_size`].
pub const MAX_BATCH: usize = 4096;
/// Largest [`SampleOptions::inpaint_candidates`].
pub const MAX_INPAINT_CANDIDATES: usize = 4096;
/// Images per network batch when [`SampleOptions::batch_size`] is 0.
pub const DEFAULT_BATCH: usize = 32;
/// Most variations per image one call takes ([`crate::Model::vary`]).
pub const MAX_VARIATIONS: usize = 4096;
/// Largest `first_index`: with up to [`MAX_COUNT`] images and [`MAX_INPAINT_CANDIDATES`]
/// candidates per image, every noise stream index (first_index + i, and (first_index + i) x
/// candidates) stays far from u64's end, so no index can wrap around onto another image's stream.
pub const MAX_FIRST_INDEX: u64 = 1 << 48;

/// A flag another thread may raise to stop a running call (cheap to clone; clones share it).
/// A raised token stays raised, and stops every call that uses it, until [`Self::reset`].
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn reset(&self) {
        self.0.store(false, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Parameters of one generation call.
#[derive(Clone)]
pub struct SampleOptions {
    /// Seed of every random draw in the call.
    pub seed: u64,
    /// Image-flow solver steps (NFE = steps * solver.evals_per_step()).
    pub steps: usize,
    pub solver: Solver,
    /// s in x0 = mu_P + s * sigma_P * eps. 0 starts from the prior mean. Ignored by Gaussian-prior models.
    pub prior_scale: f32,
    /// Timestep shift of the image flow's solver grid ([`crate::flow::time_grid`]): 1 = equal
    /// steps; > 1 shorter steps near the prior. Gaussian-prior flows need it at few steps.
    /// None (the default) = the model file's recommendation ([`crate::Pipeline::time_shift`]).
    pub time_shift: Option<f32>,
    /// Latent-flow solver steps (cheap: an MLP on latent_dim numbers).
    pub latent_steps: usize,
    pub latent_solver: Solver,
    /// Candidate latents drawn by inpainting besides the encoder's guess (best-of-K).
    pub inpaint_candidates: usize,
    /// Index of the call's first image in the seed's streams: image i of the call draws its noise
    /// from (seed, first_index + i), so a large request split into several calls (or batches)
    /// gives exactly the images of one big call. At most [`MAX_FIRST_INDEX`].
    pub first_index: u64,
    /// Images per network batch of a [`crate::Model`] call, 1..=[`MAX_BATCH`], or 0 for
    /// [`DEFAULT_BATCH`]; shrunk further to fit the model's memory limit. Results do not depend on it.
    pub batch_size: usize,
    /// Seamless tiles: every image wraps around (its right edge continues into its left edge, its
    /// bottom into its top, in every channel). The prior decoder and the per-pixel head pad their
    /// convolutions circularly, and before each network evaluation the image is rolled by an
    /// offset drawn from (seed, solver time), so no place stays the transformer's border.
    pub tileable: bool,
    /// The class to generate, for a class-conditional model (None: unconditional, which a
    /// conditional model also supports: its "no class" branch).
    pub class: Option<u32>,
    /// Classifier-free guidance scale g for `class`: velocity v(none) + g (v(class) - v(none)).
    /// 1 (the default) is the plain conditional flow; above 1 follows the class more closely
    /// at the price of an extra network evaluation per step of each conditioned flow; 0 is
    /// the unconditional flow. Finite, in [0, 100].
    pub guidance: f32,
    /// For a LeDiFlow model whose image flow is class-conditioned too: whether that flow gets
    /// `class` (true, the default) or its "no class" branch, the latent flow alone following
    /// the class (its prior). Measures what conditioning the image flow adds; ignored otherwise.
    pub class_in_image_flow: bool,
    /// Arithmetic of the velocity network's and the prior decoder's matrix products on the CPU
    /// ([`Precision`]; default fp32).
    pub precision: Precision,
    pub progress: Option<ProgressFn>,
    pub cancel: Option<CancelToken>,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            steps: 4,
            solver: Solver::Midpoint,
            prior_scale: 1.0,
            time_shift: None,
            latent_steps: 16,
            latent_solver: Solver::Midpoint,
            inpaint_candidates: 16,
            first_index: 0,
            batch_size: 0,
            tileable: false,
            class: None,
            guidance: 1.0,
            class_in_image_flow: true,
            precision: Precision::Fp32,
            progress: None,
            cancel: None,
        }
    }
}

impl std::fmt::Debug for SampleOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleOptions")
            .field("seed", &self.seed)
            .field("steps", &self.steps)
            .field("solver", &self.solver)
            .field("prior_scale", &self.prior_scale)
            .field("time_shift", &self.time_shift)
            .field("latent_steps", &self.latent_steps)
            .field("latent_solver", &self.latent_solver)
            .field("inpaint_candidates", &self.inpaint_candidates)
            .field("first_index", &self.first_index)
            .field("batch_size", &self.batch_size)
            .field("tileable", &self.tileable)
            .field("class", &self.class)
            .field("guidance", &self.guidance)
            .field("class_in_image_flow", &self.class_in_image_flow)
            .field("precision", &self.precision)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

/// Arithmetic of the fused CPU passes' matrix products: the velocity network's token layers,
/// its per-pixel head and the prior decoder. Layer norms, softmax, attention's products of
/// activations and the solver's state are fp32 in every mode; an image's result depends only
/// on (seed, index) within one mode, as in fp32. Ignored on CUDA except that `Bf16` is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// fp32 throughout (the default).
    #[default]
    Fp32,
    /// Weights and activations rounded to bfloat16 for the products, sums in fp32 (AVX512-BF16).
    /// About 3 significant digits per input: images differ from fp32's by a few 8-bit levels
    /// in places (BENCHMARKS.md, "Precision"). A CPU without the instructions is
    /// [`crate::Error::Unsupported`].
    Bf16,
    /// `Bf16` where the CPU has it, `Fp32` everywhere else (and on CUDA).
    Auto,
}

/// Every [`Precision`], in the order of its C values (`LDF_PRECISION_*`).
pub const ALL_PRECISIONS: [Precision; 3] = [Precision::Fp32, Precision::Bf16, Precision::Auto];

/// The environment variable that, set to 0, hides this CPU's bf16 instructions from the library:
/// `auto` then picks fp32 and `bf16` is refused, as on a CPU without them.
pub const BF16_ENV: &str = "LEDIFLOW_CPU_BF16";

/// What the CPU offers for bf16 inference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSupport {
    /// AVX-512F with AVX512-BF16: the bf16 kernels run.
    pub avx512_bf16: bool,
    /// AMX tiles with AMX-BF16 (reported; the kernels use AVX512-BF16, which such CPUs have).
    pub amx_bf16: bool,
}

impl CpuSupport {
    /// This CPU, less what [`BF16_ENV`]` = 0` hides.
    pub fn detect() -> Self {
        if std::env::var(BF16_ENV).is_ok_and(|v| v.trim() == "0") {
            return Self::default();
        }
        use crate::model::cpu::bf16;
        Self { avx512_bf16: bf16::cpu_has_avx512_bf16(), amx_bf16: bf16::cpu_has_amx_bf16() }
    }
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Auto => "auto",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        ALL_PRECISIONS
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| crate::Error::InvalidArgument(format!("unknown precision '{s}' (fp32, bf16, auto)")))
    }

    /// What [`Precision::Auto`] runs on a CPU offering `support` (`cpu`: the model is on the CPU
    /// device): `Bf16` or `Fp32`.
    pub fn auto_runs(cpu: bool, support: CpuSupport) -> Precision {
        match Precision::Auto.kernels_with(cpu, support) {
            Ok(Kernels::Bf16) => Precision::Bf16,
            _ => Precision::Fp32,
        }
    }

    /// The kernels this precision runs on this CPU (`cpu`: the model is on the CPU device).
    pub fn kernels(self, cpu: bool) -> Result<Kernels> {
        self.kernels_with(cpu, CpuSupport::detect())
    }

    /// [`Self::kernels`] for a CPU offering `support`.
    pub fn kernels_with(self, cpu: bool, support: CpuSupport) -> Result<Kernels> {
        match self {
            Precision::Fp32 => Ok(Kernels::Fp32),
            Precision::Auto => Ok(if cpu && support.avx512_bf16 { Kernels::Bf16 } else { Kernels::Fp32 }),
            Precision::Bf16 if !cpu => {
                Err(crate::Error::Unsupported("precision bf16 runs on the CPU device only; use fp32 or auto".into()))
            }
            Precision::Bf16 if !support.avx512_bf16 => Err(crate::Error::Unsupported(
                "precision bf16 needs a CPU with AVX512-BF16, which this one lacks (or LEDIFLOW_CPU_BF16=0 hides); \
                 use fp32 or auto"
                    .into(),
            )),
            Precision::Bf16 => Ok(Kernels::Bf16),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Largest classifier-free guidance scale.
pub const MAX_GUIDANCE: f32 = 100.0;

/// "0 floor, 1 wall, ..." for messages.
pub fn class_list(names: &[String]) -> String {
    names.iter().enumerate().map(|(i, n)| format!("{i} {n}")).collect::<Vec<_>>().join(", ")
}

/// What one flow is conditioned on during a call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Condition {
    pub class: Option<u32>,
    pub guidance: f32,
}

impl Condition {
    /// Whether the flow needs its unconditional branch as well (guidance other than 1).
    pub fn guided(&self) -> bool {
        self.class.is_some() && self.guidance != 1.0
    }
}

/// Whether `t` is a solver-grid shift sampling accepts (finite, in [0.01, 100]); model files'
/// recommendations are held to the same range.
pub(crate) fn valid_time_shift(t: f32) -> bool {
    t.is_finite() && (0.01..=100.0).contains(&t)
}

/// Checks a count of images, frames or latents one call accepts: 1..=[`MAX_COUNT`].
pub fn check_count(count: usize, what: &str) -> Result<()> {
    if count == 0 || count > MAX_COUNT {
        return invalid(format!("{what} must be in 1..={MAX_COUNT}, got {count}"));
    }
    Ok(())
}

impl SampleOptions {
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.steps > MAX_STEPS {
            return invalid(format!("steps must be in 1..={MAX_STEPS}, got {}", self.steps));
        }
        if self.latent_steps == 0 || self.latent_steps > MAX_STEPS {
            return invalid(format!("latent_steps must be in 1..={MAX_STEPS}, got {}", self.latent_steps));
        }
        if !self.prior_scale.is_finite() || !(0.0..=100.0).contains(&self.prior_scale) {
            return invalid(format!("prior_scale must be finite and in [0, 100], got {}", self.prior_scale));
        }
        if let Some(t) = self.time_shift
            && !valid_time_shift(t)
        {
            return invalid(format!("time_shift must be finite and in [0.01, 100], got {t}"));
        }
        if self.inpaint_candidates > MAX_INPAINT_CANDIDATES {
            return invalid(format!(
                "inpaint_candidates must be <= {MAX_INPAINT_CANDIDATES}, got {}",
                self.inpaint_candidates
            ));
        }
        if self.first_index > MAX_FIRST_INDEX {
            return invalid(format!("first_index must be at most 2^48, got {}", self.first_index));
        }
        if self.batch_size > MAX_BATCH {
            return invalid(format!("batch_size must be 0 (automatic) or 1..={MAX_BATCH}, got {}", self.batch_size));
        }
        if !self.guidance.is_finite() || !(0.0..=MAX_GUIDANCE).contains(&self.guidance) {
            return invalid(format!("guidance must be finite and in [0, {MAX_GUIDANCE}], got {}", self.guidance));
        }
        self.precision.kernels(true)?;
        Ok(())
    }

    /// [`Self::validate`], and the class against `config`'s classes.
    pub fn validate_for(&self, config: &crate::config::ModelConfig) -> Result<()> {
        self.validate()?;
        if let Some(c) = self.class {
            let names = &config.classes.names;
            if names.is_empty() {
                return invalid(format!("class {c} given, but the model has no classes (it is unconditional)"));
            }
            if c as usize >= names.len() {
                return invalid(format!(
                    "class {c} is not one of the model's {} classes: {}",
                    names.len(),
                    class_list(names)
                ));
            }
        }
        Ok(())
    }

    /// The class and guidance a flow with `classes` classes sees (none for a flow without).
    pub(crate) fn condition(&self, classes: usize) -> Condition {
        match self.class {
            Some(c) if classes > 0 => Condition { class: Some(c), guidance: self.guidance },
            _ => Condition { class: None, guidance: 1.0 },
        }
    }

    /// Whether the call's cancel token has been raised.
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(CancelToken::is_cancelled)
    }
}

/// Checks a variation strength: finite, in [0, 1].
pub fn check_strength(strength: f32) -> Result<()> {
    if !strength.is_finite() || !(0.0..=1.0).contains(&strength) {
        return invalid(format!("strength must be in [0, 1], got {strength}"));
    }
    Ok(())
}

/// Where a variation of `strength` starts its flow: t0 = 1 - strength, or None when nothing moves
/// (strength 0, or so small that t0 rounds to 1 in f32) and the variation is the image itself.
pub(crate) fn variation_start(strength: f32) -> Option<f32> {
    let start = 1.0 - strength;
    (start < 1.0).then_some(start)
}

/// Checks a variations count: 1..=[`MAX_VARIATIONS`].
pub fn check_variations(variations: usize) -> Result<()> {
    if variations == 0 || variations > MAX_VARIATIONS {
        return invalid(format!("variations must be in 1..={MAX_VARIATIONS}, got {variations}"));
    }
    Ok(())
}

/// The noise stream of variation `j` of image `i` (counted from the call's first_index): one
/// per pair, whatever the call's count or variations, and no two pairs share one (first_index
/// <= 2^48 and j < 2^12, so the index stays below 2^61).
pub fn variation_stream(first_index: u64, i: usize, j: usize) -> u64 {
    (first_index + i as u64) * MAX_VARIATIONS as u64 + j as u64
}

/// How to walk between two given latents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    Linear,
    Spherical,
}

/// What a loaded model is.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub channels: usize,
    pub width: usize,
    pub height: usize,
    /// 0 for Gaussian-prior models (they have no latent space).
    pub latent_dim: usize,
    pub prior: PriorKind,
    pub format_version: u32,
    pub parameters: usize,
    /// The solver-grid shift a call gets without its own: the file's recommendation, else 1.
    pub time_shift: f32,
    /// What the CPU offers for bf16 inference.
    pub cpu: CpuSupport,
    /// What [`Precision::Auto`] runs for this model here: `Bf16` or `Fp32`.
    pub auto_precision: Precision,
}

impl ModelInfo {
    /// Bytes of one 8-bit image: width * height * channels.
    pub fn image_bytes(&self) -> usize {
        self.width * self.height * self.channels
    }

    /// Bytes of one inpainting mask: width * height.
    pub fn mask_bytes(&self) -> usize {
        self.width * self.height
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatcher: auto falls back to fp32 without the instructions or off the CPU, bf16 is
    /// refused there, fp32 is always fp32 (the choice forced through `kernels_with`).
    #[test]
    fn precision_picks_kernels_by_cpu() {
        let (none, bf16) = (CpuSupport::default(), CpuSupport { avx512_bf16: true, amx_bf16: false });
        assert_eq!(Precision::Auto.kernels_with(true, bf16).unwrap(), Kernels::Bf16);
        assert_eq!(Precision::Auto.kernels_with(true, none).unwrap(), Kernels::Fp32);
        assert_eq!(Precision::Auto.kernels_with(false, bf16).unwrap(), Kernels::Fp32);
        assert_eq!(Precision::Bf16.kernels_with(true, bf16).unwrap(), Kernels::Bf16);
        assert!(matches!(Precision::Bf16.kernels_with(true, none), Err(crate::Error::Unsupported(_))));
        assert!(matches!(Precision::Bf16.kernels_with(false, bf16), Err(crate::Error::Unsupported(_))));
        for s in [none, bf16] {
            for cpu in [false, true] {
                assert_eq!(Precision::Fp32.kernels_with(cpu, s).unwrap(), Kernels::Fp32);
            }
        }
        for p in ALL_PRECISIONS {
            assert_eq!(Precision::parse(&p.name().to_uppercase()).unwrap(), p);
        }
        assert!(Precision::parse("fp16").is_err());
    }
}
