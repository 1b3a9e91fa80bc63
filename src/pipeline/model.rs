//! [`Model`]: a loaded model on the device the caller chose, taking and filling 8-bit image
//! buffers. Every front end (the C ABI, Python through it, the CLI, Rust hosts) calls this, so
//! they share one count limit, one batching and one memory limit.
//!
//! A call is checked whole (options, count, buffer lengths, memory) before its first batch
//! runs, then runs in batches written straight into the caller's buffer. The noise streams are
//! indexed per image, so batching never changes a result.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::TensorData;

use super::Pipeline;
use super::base::floats;
use super::memory::bytes_per_image;
use super::options::{
    CpuSupport, DEFAULT_BATCH, Interpolation, ModelInfo, Precision, SampleOptions, check_count, check_strength,
    check_variations, variation_start, variation_stream,
};
use crate::checkpoint::ModelMeta;
use crate::config::{ModelConfig, PriorKind};
use crate::device::Device;
use crate::error::{Error, Result, invalid};
use crate::{CpuBackend, image};

enum Engine {
    Cpu(Pipeline<CpuBackend>),
    #[cfg(feature = "cuda")]
    Cuda(Pipeline<crate::device::CudaBackend>),
}

/// A loaded model on one device. Read-only after loading apart from its memory limit, so one
/// model may serve several threads at once; each call keeps its own state.
pub struct Model {
    engine: Engine,
    device: Device,
    /// The loaded networks never change: what they are is read once (counting the parameters
    /// walks every tensor).
    info: ModelInfo,
    /// Working-memory limit per call in bytes (0 = none).
    memory_limit: AtomicUsize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("info", &self.info()).field("device", &self.device).finish()
    }
}

macro_rules! with_pipeline {
    ($model:expr, $p:ident => $body:expr) => {
        match &$model.engine {
            Engine::Cpu($p) => $body,
            #[cfg(feature = "cuda")]
            Engine::Cuda($p) => $body,
        }
    };
}

/// `count` items of `unit` elements: the total, refusing overflow and a short buffer.
fn need(count: usize, unit: usize, have: usize, what: &str) -> Result<usize> {
    let n = count.checked_mul(unit).ok_or_else(|| Error::InvalidArgument(format!("{what}: size overflows")))?;
    if have < n {
        return invalid(format!("{what} holds {have} elements, {count} x {unit} = {n} are needed"));
    }
    Ok(n)
}

/// How many items of `unit` elements `len` holds, refusing a remainder or an empty input.
fn items(len: usize, unit: usize, what: &str) -> Result<usize> {
    if unit == 0 || !len.is_multiple_of(unit) {
        return invalid(format!("{what} holds {len} elements, not a multiple of {unit}"));
    }
    let n = len / unit;
    check_count(n, "count")?;
    Ok(n)
}

/// Runs an `*_into` call on a new buffer of `len` elements.
fn filled<T: Clone + Default>(len: usize, f: impl FnOnce(&mut [T]) -> Result<()>) -> Result<Vec<T>> {
    let mut out = vec![T::default(); len];
    f(&mut out)?;
    Ok(out)
}

/// Latents are checked whole before the first batch, so a NaN in the last one writes nothing.
fn finite(z: &[f32], what: &str) -> Result<()> {
    match z.iter().position(|v| !v.is_finite()) {
        Some(i) => invalid(format!("{what} holds a NaN or infinity (float {i})")),
        None => Ok(()),
    }
}

fn latents_tensor<B: Backend>(rows: &[f32], d: usize, device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(rows.to_vec(), [rows.len() / d, d]), device)
}

/// The options of the batch of items starting at `start`, batch `index` of `batches`: its noise
/// streams continue the call's, and its progress counts over the whole call.
fn batch_options(opts: &SampleOptions, start: usize, index: usize, batches: usize) -> SampleOptions {
    let steps = opts.steps;
    // The pipeline reports its own units: on the CPU the calling thread may run several chunks
    // of a batch one after the other, counting `total` = chunks x steps. Rescaled to this
    // batch's `steps`, the call's count never passes its total nor runs backwards.
    let progress = opts.progress.clone().map(|user| -> super::ProgressFn {
        Arc::new(move |step, total| {
            let done = (step.min(total) * steps).checked_div(total).unwrap_or(steps);
            user(index * steps + done, batches * steps)
        })
    });
    SampleOptions { first_index: opts.first_index.saturating_add(start as u64), progress, ..opts.clone() }
}

impl Model {
    /// Loads a model file onto `device` (CUDA is probed first: a clear error, never a panic,
    /// without the `cuda` feature, a driver or a GPU).
    pub fn load(path: impl AsRef<Path>, device: Device) -> Result<Self> {
        let path = path.as_ref();
        device.check()?;
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Io(std::io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))))?;
        Self::from_bytes(&bytes, device)
    }

    /// Loads a model from the bytes of a model file.
    pub fn from_bytes(bytes: &[u8], device: Device) -> Result<Self> {
        device.check()?;
        let engine = match device {
            Device::Cpu => Engine::Cpu(Pipeline::from_bytes(bytes, &Default::default())?),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => Engine::Cuda(Pipeline::from_bytes(bytes, &crate::device::cuda_device(i)?)?),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => return Err(Error::Unsupported("CUDA support is not compiled into this build".into())),
        };
        Ok(Self::wrap(engine, device))
    }

    /// A model around an already loaded CPU pipeline.
    pub fn from_pipeline(pipeline: Pipeline<CpuBackend>) -> Self {
        Self::wrap(Engine::Cpu(pipeline), Device::Cpu)
    }

    fn wrap(engine: Engine, device: Device) -> Self {
        let info = match &engine {
            Engine::Cpu(p) => p.info(),
            #[cfg(feature = "cuda")]
            Engine::Cuda(p) => p.info(),
        };
        let model = Self { engine, device, info, memory_limit: AtomicUsize::new(0) };
        let i = &model.info;
        log::info!(
            "loaded a {}x{}x{} {:?}-prior model ({} parameters) on {device}",
            i.width,
            i.height,
            i.channels,
            i.prior,
            i.parameters
        );
        model
    }

    /// What the model is, with what the CPU offers now (the CPU fields follow
    /// [`super::BF16_ENV`] at the time of the call, as the generation calls do).
    pub fn info(&self) -> ModelInfo {
        let cpu = CpuSupport::detect();
        let auto_precision = Precision::auto_runs(matches!(self.device, Device::Cpu), cpu);
        ModelInfo { cpu, auto_precision, ..self.info.clone() }
    }

    pub fn config(&self) -> &ModelConfig {
        with_pipeline!(self, p => p.config())
    }

    pub fn meta(&self) -> &ModelMeta {
        with_pipeline!(self, p => p.meta())
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// The CPU pipeline inside, when the model runs on the CPU.
    pub fn cpu_pipeline(&self) -> Option<&Pipeline<CpuBackend>> {
        match &self.engine {
            Engine::Cpu(p) => Some(p),
            #[cfg(feature = "cuda")]
            Engine::Cuda(_) => None,
        }
    }

    /// Caps the working memory (bytes) one call may use, 0 for no cap (the default). Calls then
    /// run in smaller batches; a call that cannot fit even one image fails with
    /// [`Error::OutOfMemory`] before anything runs. The estimate covers activations and solver
    /// state, not the weights or the caller's buffers. Other threads' calls see the new limit
    /// from their next call on.
    pub fn set_memory_limit(&self, bytes: usize) {
        self.memory_limit.store(bytes, Ordering::Relaxed);
    }

    pub fn memory_limit(&self) -> usize {
        self.memory_limit.load(Ordering::Relaxed)
    }

    /// The batch size a call with `opts` runs in: its `batch_size` (0 = [`DEFAULT_BATCH`]),
    /// shrunk to fit the memory limit (`candidates`: inpainting's best-of-K, 0 for other calls).
    pub fn batch_size(&self, opts: &SampleOptions, candidates: usize) -> Result<usize> {
        let requested = if opts.batch_size == 0 { DEFAULT_BATCH } else { opts.batch_size };
        let limit = self.memory_limit();
        if limit == 0 {
            return Ok(requested);
        }
        let per = bytes_per_image(self.config(), candidates);
        let fit = limit / per;
        if fit == 0 {
            return Err(Error::OutOfMemory(format!(
                "one image needs about {:.1} MB of working memory, the model's limit is {:.1} MB",
                per as f64 / 1e6,
                limit as f64 / 1e6
            )));
        }
        Ok(requested.min(fit))
    }

    fn require_learned(&self, what: &str) -> Result<ModelInfo> {
        let info = self.info();
        if info.prior != PriorKind::Learned {
            return Err(Error::Unsupported(format!(
                "{what} needs a learned-prior model; this one has a Gaussian prior"
            )));
        }
        Ok(info)
    }

    /// Runs `f(batch options, start, n)` over `count` items in batches, after every check.
    fn batched(
        &self,
        what: &str,
        count: usize,
        candidates: usize,
        opts: &SampleOptions,
        mut f: impl FnMut(&SampleOptions, usize, usize) -> Result<()>,
    ) -> Result<()> {
        let batch = self.batch_size(opts, candidates)?;
        let batches = count.div_ceil(batch);
        let clock = Instant::now();
        for (index, start) in (0..count).step_by(batch).enumerate() {
            if opts.cancelled() {
                return Err(Error::Cancelled);
            }
            f(&batch_options(opts, start, index, batches), start, batch.min(count - start))?;
        }
        log::debug!(
            "{what}: {count} items in {batches} batches of up to {batch}, {:.3} s",
            clock.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Samples `count` images into `out` (at least `count * image_bytes` bytes: 8-bit,
    /// interleaved, row-major). Image i depends only on (seed, first_index + i).
    pub fn sample_into(&self, count: usize, opts: &SampleOptions, out: &mut [u8]) -> Result<()> {
        opts.validate_for(self.config())?;
        check_count(count, "count")?;
        let per = self.info().image_bytes();
        need(count, per, out.len(), "out")?;
        with_pipeline!(self, p => self.batched("sample", count, 0, opts, |o, start, n| {
            let px = image::to_u8(p.sample(n, o)?)?;
            out[start * per..(start + n) * per].copy_from_slice(&px);
            Ok(())
        }))
    }

    /// [`Self::sample_into`] into a new buffer.
    pub fn sample(&self, count: usize, opts: &SampleOptions) -> Result<Vec<u8>> {
        check_count(count, "count")?;
        filled(count * self.info().image_bytes(), |out| self.sample_into(count, opts, out))
    }

    /// Samples `count` latents (learned-prior models) into `out` (at least `count * latent_dim`
    /// floats). Latent i depends only on (seed, first_index + i).
    pub fn sample_latents_into(&self, count: usize, opts: &SampleOptions, out: &mut [f32]) -> Result<()> {
        let d = self.require_learned("sample_latents")?.latent_dim;
        opts.validate_for(self.config())?;
        check_count(count, "count")?;
        need(count, d, out.len(), "out")?;
        with_pipeline!(self, p => self.batched("sample_latents", count, 0, opts, |o, start, n| {
            let z = floats(p.sample_latents(n, o)?)?;
            out[start * d..(start + n) * d].copy_from_slice(&z);
            Ok(())
        }))
    }

    /// [`Self::sample_latents_into`] into a new buffer.
    pub fn sample_latents(&self, count: usize, opts: &SampleOptions) -> Result<Vec<f32>> {
        let d = self.require_learned("sample_latents")?.latent_dim;
        check_count(count, "count")?;
        filled(count * d, |out| self.sample_latents_into(count, opts, out))
    }

    /// One image per latent of `z` (`count * latent_dim` floats) into `out`; image i's prior
    /// noise comes from (seed, first_index + i).
    pub fn generate_into(&self, z: &[f32], opts: &SampleOptions, out: &mut [u8]) -> Result<()> {
        let info = self.require_learned("generate")?;
        opts.validate_for(self.config())?;
        let d = info.latent_dim;
        let count = items(z.len(), d, "z")?;
        let per = info.image_bytes();
        need(count, per, out.len(), "out")?;
        finite(z, "z")?;
        with_pipeline!(self, p => self.batched("generate", count, 0, opts, |o, start, n| {
            let zt = latents_tensor(&z[start * d..(start + n) * d], d, p.device());
            let px = image::to_u8(p.generate(zt, o)?)?;
            out[start * per..(start + n) * per].copy_from_slice(&px);
            Ok(())
        }))
    }

    /// [`Self::generate_into`] into a new buffer.
    pub fn generate(&self, z: &[f32], opts: &SampleOptions) -> Result<Vec<u8>> {
        let info = self.require_learned("generate")?;
        let count = items(z.len(), info.latent_dim, "z")?;
        filled(count * info.image_bytes(), |out| self.generate_into(z, opts, out))
    }

    /// Encodes 8-bit images (`count * image_bytes` bytes) to their latents (the encoder's
    /// posterior means) in `out` (at least `count * latent_dim` floats). Deterministic; `opts`
    /// gives only the batch size and cancellation.
    pub fn encode_into(&self, pixels: &[u8], opts: &SampleOptions, out: &mut [f32]) -> Result<()> {
        let info = self.require_learned("encode")?;
        opts.validate_for(self.config())?;
        let (per, d, c, s) = (info.image_bytes(), info.latent_dim, info.channels, info.width);
        let count = items(pixels.len(), per, "pixels")?;
        need(count, d, out.len(), "out")?;
        with_pipeline!(self, p => self.batched("encode", count, 0, opts, |_, start, n| {
            let x = image::from_u8(&pixels[start * per..(start + n) * per], n, c, s, s, p.device())?;
            let z = floats(p.encode(x)?)?;
            out[start * d..(start + n) * d].copy_from_slice(&z);
            Ok(())
        }))
    }

    /// [`Self::encode_into`] into a new buffer.
    pub fn encode(&self, pixels: &[u8]) -> Result<Vec<f32>> {
        let info = self.require_learned("encode")?;
        let count = items(pixels.len(), info.image_bytes(), "pixels")?;
        filled(count * info.latent_dim, |out| self.encode_into(pixels, &SampleOptions::default(), out))
    }

    /// `frames` images walking from latent `z_from` to `z_to` (`latent_dim` floats each), both
    /// ends included, into `out`; every frame uses the prior noise of (seed, 0).
    pub fn interpolate_into(
        &self,
        z_from: &[f32],
        z_to: &[f32],
        frames: usize,
        mode: Interpolation,
        opts: &SampleOptions,
        out: &mut [u8],
    ) -> Result<()> {
        let info = self.require_learned("interpolate")?;
        opts.validate_for(self.config())?;
        check_count(frames, "frames")?;
        let (d, per) = (info.latent_dim, info.image_bytes());
        for (z, what) in [(z_from, "z_from"), (z_to, "z_to")] {
            if z.len() != d {
                return invalid(format!("{what} has {} floats, the model's latents have {d}", z.len()));
            }
            finite(z, what)?;
        }
        need(frames, per, out.len(), "out")?;
        with_pipeline!(self, p => {
            let (za, zb) = (latents_tensor(z_from, d, p.device()), latents_tensor(z_to, d, p.device()));
            let path = floats(p.interpolation_path(za, zb, frames, mode)?)?;
            self.batched("interpolate", frames, 0, opts, |o, start, n| {
                let zt = latents_tensor(&path[start * d..(start + n) * d], d, p.device());
                let px = image::to_u8(p.generate_frames(zt, o)?)?;
                out[start * per..(start + n) * per].copy_from_slice(&px);
                Ok(())
            })
        })
    }

    /// [`Self::interpolate_into`] into a new buffer.
    pub fn interpolate(
        &self,
        z_from: &[f32],
        z_to: &[f32],
        frames: usize,
        mode: Interpolation,
        opts: &SampleOptions,
    ) -> Result<Vec<u8>> {
        check_count(frames, "frames")?;
        filled(frames * self.info().image_bytes(), |out| self.interpolate_into(z_from, z_to, frames, mode, opts, out))
    }

    /// `frames` images between the noise draws of two seeds ([`Pipeline::interpolate_seeds`]),
    /// into `out`.
    pub fn interpolate_seeds_into(
        &self,
        seed_from: u64,
        seed_to: u64,
        frames: usize,
        opts: &SampleOptions,
        out: &mut [u8],
    ) -> Result<()> {
        opts.validate_for(self.config())?;
        check_count(frames, "frames")?;
        let per = self.info().image_bytes();
        need(frames, per, out.len(), "out")?;
        with_pipeline!(self, p => self.batched("interpolate_seeds", frames, 0, opts, |o, start, n| {
            let images = p.interpolate_seeds_frames(seed_from, seed_to, frames, start..start + n, o)?;
            out[start * per..(start + n) * per].copy_from_slice(&image::to_u8(images)?);
            Ok(())
        }))
    }

    /// [`Self::interpolate_seeds_into`] into a new buffer.
    pub fn interpolate_seeds(
        &self,
        seed_from: u64,
        seed_to: u64,
        frames: usize,
        opts: &SampleOptions,
    ) -> Result<Vec<u8>> {
        check_count(frames, "frames")?;
        filled(frames * self.info().image_bytes(), |out| {
            self.interpolate_seeds_into(seed_from, seed_to, frames, opts, out)
        })
    }

    /// Inpainting's best-of-K candidates (only learned-prior models draw them).
    fn candidates(&self, opts: &SampleOptions) -> usize {
        if self.info().prior == PriorKind::Learned { opts.inpaint_candidates } else { 0 }
    }

    /// Checks an inpainting call and returns (count, image bytes, mask bytes).
    fn inpaint_shape(&self, pixels: usize, masks: usize, opts: &SampleOptions) -> Result<(usize, usize, usize)> {
        opts.validate_for(self.config())?;
        let info = self.info();
        let (per, mper) = (info.image_bytes(), info.mask_bytes());
        let count = items(pixels, per, "pixels")?;
        // The count comes from `pixels`: masks for more images than that are a caller's mistake.
        if masks != count * mper {
            return invalid(format!(
                "masks is {masks} bytes; {count} images need {count} x {mper} = {} mask bytes",
                count * mper
            ));
        }
        Ok((count, per, mper))
    }

    /// One inpainting batch: images `start..start + n` of `pixels` with their masks.
    fn inpaint_batch<B: Backend>(
        &self,
        p: &Pipeline<B>,
        pixels: &[u8],
        masks: &[u8],
        o: &SampleOptions,
    ) -> Result<Vec<u8>> {
        let i = &self.info;
        let n = pixels.len() / i.image_bytes();
        let x = image::from_u8(pixels, n, i.channels, i.height, i.width, p.device())?;
        let m = image::mask_from_u8(masks, n, i.height, i.width, p.device())?;
        image::to_u8(p.inpaint(x, m, o)?)
    }

    /// Regenerates the pixels of `pixels` (`count * image_bytes` bytes) where `masks` (one byte
    /// per pixel, `count * mask_bytes`) is 0 and keeps the others byte for byte, into `out`.
    pub fn inpaint_into(&self, pixels: &[u8], masks: &[u8], opts: &SampleOptions, out: &mut [u8]) -> Result<()> {
        let (count, per, mper) = self.inpaint_shape(pixels.len(), masks.len(), opts)?;
        need(count, per, out.len(), "out")?;
        with_pipeline!(self, p => self.batched("inpaint", count, self.candidates(opts), opts, |o, start, n| {
            let (px, mk) = (&pixels[start * per..(start + n) * per], &masks[start * mper..(start + n) * mper]);
            out[start * per..(start + n) * per].copy_from_slice(&self.inpaint_batch(p, px, mk, o)?);
            Ok(())
        }))
    }

    /// [`Self::inpaint_into`] writing over the input images.
    pub fn inpaint_in_place(&self, pixels: &mut [u8], masks: &[u8], opts: &SampleOptions) -> Result<()> {
        let (count, per, mper) = self.inpaint_shape(pixels.len(), masks.len(), opts)?;
        with_pipeline!(self, p => self.batched("inpaint", count, self.candidates(opts), opts, |o, start, n| {
            let range = start * per..(start + n) * per;
            let filled = self.inpaint_batch(p, &pixels[range.clone()], &masks[start * mper..(start + n) * mper], o)?;
            pixels[range].copy_from_slice(&filled);
            Ok(())
        }))
    }

    /// [`Self::inpaint_into`] into a new buffer.
    pub fn inpaint(&self, pixels: &[u8], masks: &[u8], opts: &SampleOptions) -> Result<Vec<u8>> {
        let mut out = pixels.to_vec();
        self.inpaint_in_place(&mut out, masks, opts)?;
        Ok(out)
    }

    /// Checks a variations call and returns (input images, outputs, image bytes).
    fn vary_shape(
        &self,
        pixels: usize,
        variations: usize,
        strength: f32,
        opts: &SampleOptions,
    ) -> Result<(usize, usize, usize)> {
        opts.validate_for(self.config())?;
        check_strength(strength)?;
        check_variations(variations)?;
        let per = self.info().image_bytes();
        let count = items(pixels, per, "pixels")?;
        let total = count.saturating_mul(variations);
        check_count(total, "count x variations")?;
        Ok((count, total, per))
    }

    /// `variations` new images per image of `pixels` (`count * image_bytes` bytes) into `out`:
    /// image i's variations j = 0..variations-1 in order, each depending only on (seed,
    /// first_index + i, j). `strength` in [0, 1]: 0 gives the input back byte for byte, 1 keeps
    /// only what the image's latent carries ([`Pipeline::vary`]). count x variations is at
    /// most [`super::MAX_COUNT`].
    pub fn vary_into(
        &self,
        pixels: &[u8],
        variations: usize,
        strength: f32,
        opts: &SampleOptions,
        out: &mut [u8],
    ) -> Result<()> {
        let (_, total, per) = self.vary_shape(pixels.len(), variations, strength, opts)?;
        need(total, per, out.len(), "out")?;
        let i = &self.info;
        with_pipeline!(self, p => self.batched("vary", total, 0, opts, |o, start, n| {
            let (sources, streams): (Vec<usize>, Vec<u64>) = (start..start + n)
                .map(|k| (k / variations, variation_stream(opts.first_index, k / variations, k % variations)))
                .unzip();
            let dst = &mut out[start * per..(start + n) * per];
            if variation_start(strength).is_none() {
                // Nothing moves: the input bytes themselves, not a round trip through floats.
                for (d, &src) in dst.chunks_exact_mut(per).zip(&sources) {
                    d.copy_from_slice(&pixels[src * per..(src + 1) * per]);
                }
                return Ok(());
            }
            let mut batch = Vec::with_capacity(n * per);
            for &src in &sources {
                batch.extend_from_slice(&pixels[src * per..(src + 1) * per]);
            }
            let x = image::from_u8(&batch, n, i.channels, i.height, i.width, p.device())?;
            dst.copy_from_slice(&image::to_u8(p.vary(x, &streams, strength, o)?)?);
            Ok(())
        }))
    }

    /// [`Self::vary_into`] into a new buffer.
    pub fn vary(&self, pixels: &[u8], variations: usize, strength: f32, opts: &SampleOptions) -> Result<Vec<u8>> {
        let (_, total, per) = self.vary_shape(pixels.len(), variations, strength, opts)?;
        filled(total * per, |out| self.vary_into(pixels, variations, strength, opts, out))
    }
}
