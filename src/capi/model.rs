//! `LdfModel` and the generation calls. Large requests run in batches (the pipeline's noise
//! streams are indexed per image, so batching never changes the result) and write straight into
//! the caller's buffer, so memory stays bounded whatever the count.

use std::ffi::{CStr, c_char};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::TensorData;

use super::params::{CallOptions, LDF_PRIOR_GAUSSIAN, LDF_PRIOR_LEARNED, LdfModelInfo, LdfSampleParams};
use super::{LDF_DEVICE_CPU, LDF_DEVICE_CUDA, LdfDevice, LdfStatus, guard};
use crate::config::{ModelConfig, PriorKind};
use crate::error::{Error, Result, invalid};
use crate::image;
use crate::pipeline::Pipeline;
use crate::{CpuBackend, device};

enum Engine {
    Cpu(Pipeline<CpuBackend>),
    #[cfg(feature = "cuda")]
    Cuda(Pipeline<device::CudaBackend>),
}

/// A loaded model: its weights on one device. Read-only after loading, so one model may serve
/// several threads at once; each call keeps its own state.
pub struct LdfModel {
    engine: Engine,
    /// Working-memory limit per call in bytes (0 = none); see `ldf_model_set_memory_limit`.
    memory_limit: AtomicUsize,
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

pub(crate) fn check_device(device: LdfDevice) -> Result<()> {
    match device {
        LDF_DEVICE_CPU => Ok(()),
        LDF_DEVICE_CUDA => device::cuda_device_count().map(|_| ()),
        other => invalid(format!("device {other} is not an LdfDevice (0 = CPU, 1 = CUDA)")),
    }
}

fn load_engine(device: LdfDevice, load: impl FnOnce(Target) -> Result<Engine>) -> Result<Engine> {
    check_device(device)?;
    match device {
        LDF_DEVICE_CPU => load(Target::Cpu),
        #[cfg(feature = "cuda")]
        LDF_DEVICE_CUDA => load(Target::Cuda(device::cuda_device(0)?)),
        _ => Err(Error::Unsupported("CUDA support is not compiled into this build".into())),
    }
}

enum Target {
    Cpu,
    #[cfg(feature = "cuda")]
    Cuda(burn::backend::cuda::CudaDevice),
}

fn engine_from_bytes(bytes: &[u8], target: Target) -> Result<Engine> {
    Ok(match target {
        Target::Cpu => Engine::Cpu(Pipeline::from_bytes(bytes, &Default::default())?),
        #[cfg(feature = "cuda")]
        Target::Cuda(d) => Engine::Cuda(Pipeline::from_bytes(bytes, &d)?),
    })
}

/// # Safety
/// `out` must be NULL or writable.
unsafe fn store_model(out: *mut *mut LdfModel, engine: Engine) {
    let model = Box::new(LdfModel { engine, memory_limit: AtomicUsize::new(0) });
    with_pipeline!(model, p => {
        let i = p.info();
        log::info!(
            "loaded a {}x{}x{} {:?}-prior model ({} parameters)",
            i.width, i.height, i.channels, i.prior, i.parameters
        );
    });
    // SAFETY: the caller checked `out`.
    unsafe { *out = Box::into_raw(model) };
}

fn path_of(path: *const c_char) -> Result<std::path::PathBuf> {
    if path.is_null() {
        return invalid("path is NULL");
    }
    // SAFETY: non-null; the caller guarantees a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    if bytes.is_empty() {
        return invalid("path is empty");
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(std::ffi::OsStr::from_bytes(bytes).into())
    }
    #[cfg(not(unix))]
    {
        Ok(std::str::from_utf8(bytes).map_err(|_| Error::InvalidArgument("path is not UTF-8".into()))?.into())
    }
}

/// # Safety
/// `out` must be NULL or point to writable storage for one pointer.
unsafe fn clear_out(out: *mut *mut LdfModel) -> Result<()> {
    if out.is_null() {
        return invalid("out is NULL");
    }
    // SAFETY: checked non-null.
    unsafe { *out = std::ptr::null_mut() };
    Ok(())
}

/// Loads a model file on `device` into `*out` (set to NULL on failure).
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_model_load(path: *const c_char, device: LdfDevice, out: *mut *mut LdfModel) -> LdfStatus {
    guard("ldf_model_load", || {
        // SAFETY: caller's contract.
        unsafe { clear_out(out)? };
        let path = path_of(path)?;
        let engine = load_engine(device, |t| {
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::Io(std::io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))))?;
            engine_from_bytes(&bytes, t)
        })?;
        // SAFETY: checked by clear_out.
        unsafe { store_model(out, engine) };
        Ok(())
    })
}

/// Loads a model from `len` bytes of a model file in memory (copied; the buffer may be freed
/// after the call) into `*out` (set to NULL on failure).
///
/// # Safety
/// `data` must be NULL or point to `len` readable bytes; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_model_load_from_memory(
    data: *const u8,
    len: usize,
    device: LdfDevice,
    out: *mut *mut LdfModel,
) -> LdfStatus {
    guard("ldf_model_load_from_memory", || {
        // SAFETY: caller's contract.
        unsafe { clear_out(out)? };
        if data.is_null() {
            return invalid("data is NULL");
        }
        if len == 0 {
            return invalid("len is 0");
        }
        // SAFETY: the caller guarantees len readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        let engine = load_engine(device, |t| engine_from_bytes(bytes, t))?;
        // SAFETY: checked by clear_out.
        unsafe { store_model(out, engine) };
        Ok(())
    })
}

/// Frees a model (NULL is a no-op). No call may be using it.
///
/// # Safety
/// `model` must be NULL or a model from `ldf_model_load*` not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_model_free(model: *mut LdfModel) {
    if model.is_null() {
        return;
    }
    // A panic in a destructor must not reach the host either.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: from Box::into_raw in store_model, freed once (caller's contract).
        drop(unsafe { Box::from_raw(model) });
    }));
}

fn model_ref<'a>(model: *const LdfModel) -> Result<&'a LdfModel> {
    // SAFETY: NULL or a live model (caller's contract).
    unsafe { model.as_ref() }.ok_or_else(|| Error::InvalidArgument("model is NULL".into()))
}

fn info_of<B: Backend>(p: &Pipeline<B>) -> LdfModelInfo {
    let i = p.info();
    LdfModelInfo {
        struct_size: size_of::<LdfModelInfo>() as u32,
        width: i.width as u32,
        height: i.height as u32,
        channels: i.channels as u32,
        latent_dim: i.latent_dim as u32,
        prior: match i.prior {
            PriorKind::Learned => LDF_PRIOR_LEARNED,
            PriorKind::Gaussian => LDF_PRIOR_GAUSSIAN,
        },
        format_version: i.format_version,
        image_bytes: i.width * i.height * i.channels,
        latent_bytes: i.latent_dim * size_of::<f32>(),
        mask_bytes: i.width * i.height,
        parameters: i.parameters as u64,
        time_shift: p.time_shift(&crate::SampleOptions::default()) as f64,
    }
}

/// Describes `model` in `*info`. Set `info->struct_size = sizeof(LdfModelInfo)` first.
///
/// # Safety
/// `model` NULL or live; `info` NULL or writable for its `struct_size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_model_info(model: *const LdfModel, info: *mut LdfModelInfo) -> LdfStatus {
    guard("ldf_model_info", || {
        let m = model_ref(model)?;
        if info.is_null() {
            return invalid("info is NULL");
        }
        let value = with_pipeline!(m, p => info_of(p));
        // SAFETY: non-null; the caller guarantees struct_size writable bytes.
        unsafe { super::params::write_info(info, value) }
    })
}

/// Caps the working memory (bytes) one call on `model` may use, 0 for no cap (the default).
/// Calls then run in smaller batches; a call that cannot fit even one image returns
/// `LDF_ERR_OUT_OF_MEMORY` before allocating. The estimate covers activations and solver
/// state, not the weights or the caller's buffers.
///
/// # Safety
/// `model` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_model_set_memory_limit(model: *mut LdfModel, bytes: usize) -> LdfStatus {
    guard("ldf_model_set_memory_limit", || {
        model_ref(model)?.memory_limit.store(bytes, Ordering::Relaxed);
        Ok(())
    })
}

/// Working memory of one image in one network batch, generously estimated: the DiT's widest
/// activations (attention scores, MLP hidden) kept for a forward pass, the per-pixel head's
/// full-resolution maps (`dit.pixel_head` channels: about six of them plus a 9x unfolded
/// convolution input where a backend uses im2col), the auxiliary decoder's feature maps, and six
/// image-sized solver tensors (RK4's stages). Inpainting with K
/// `candidates` decodes K + 1 latents per image at once: per candidate, the decoder's maps and
/// four image-sized tensors (prior mean and log-variance, the masked error and its square).
fn bytes_per_image(cfg: &ModelConfig, candidates: usize) -> usize {
    let s = cfg.image.size;
    let c = cfg.image.channels;
    let tokens = (s / cfg.dit.patch_size).pow(2);
    let d = cfg.dit.dim;
    let hidden = d * cfg.dit.mlp_ratio;
    let dit = tokens * (8 * d + 2 * hidden) + 3 * cfg.dit.heads * tokens * tokens;
    let head = (6 + 9) * cfg.dit.pixel_head * s * s;
    let decoder = if cfg.prior == PriorKind::Learned { 8 * cfg.aux.base_channels * s * s } else { 0 };
    let solver = 6 * c * s * s;
    let decoded = if candidates > 0 { (candidates + 1) * (decoder + 4 * c * s * s) } else { 0 };
    (dit + head + decoder + solver + decoded) * size_of::<f32>()
}

impl LdfModel {
    fn config(&self) -> &ModelConfig {
        with_pipeline!(self, p => p.config())
    }

    /// The batch size a call uses: the requested one, shrunk to fit the memory limit
    /// (`candidates`: inpainting's best-of-K, 0 for every other call).
    fn batch_for(&self, requested: usize, candidates: usize) -> Result<usize> {
        let limit = self.memory_limit.load(Ordering::Relaxed);
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

    fn info(&self) -> LdfModelInfo {
        with_pipeline!(self, p => info_of(p))
    }
}

/// `count` items of `unit` bytes (or floats): the total, refusing overflow and short buffers.
fn need(count: u32, unit: usize, have: usize, what: &str) -> Result<usize> {
    if count == 0 {
        return invalid("count must be at least 1");
    }
    let n =
        (count as usize).checked_mul(unit).ok_or_else(|| Error::InvalidArgument(format!("{what}: size overflows")))?;
    if have < n {
        return invalid(format!("{what} is {have} bytes, {count} x {unit} = {n} bytes are needed"));
    }
    Ok(n)
}

fn check_ptr<T>(ptr: *const T, what: &str) -> Result<()> {
    if ptr.is_null() {
        return invalid(format!("{what} is NULL"));
    }
    if !(ptr as usize).is_multiple_of(align_of::<T>()) {
        return invalid(format!("{what} is not aligned to {} bytes", align_of::<T>()));
    }
    Ok(())
}

fn tensor_floats<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    t.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| Error::Internal(format!("reading a tensor: {e:?}")))
}

/// Runs `f(batch options, start, n)` over `count` items in batches and times the call.
fn in_batches(
    m: &LdfModel,
    call: &CallOptions,
    count: usize,
    what: &str,
    f: impl FnMut(&crate::SampleOptions, usize, usize) -> Result<()>,
) -> Result<()> {
    in_batches_sized(m, call, count, what, 0, f)
}

/// [`in_batches`] for a call that decodes `candidates` + 1 latents per item (inpainting).
fn in_batches_sized(
    m: &LdfModel,
    call: &CallOptions,
    count: usize,
    what: &str,
    candidates: usize,
    mut f: impl FnMut(&crate::SampleOptions, usize, usize) -> Result<()>,
) -> Result<()> {
    let batch = m.batch_for(call.batch_size, candidates)?;
    let batches = count.div_ceil(batch);
    let clock = Instant::now();
    for (index, start) in (0..count).step_by(batch).enumerate() {
        if call.host.cancelled() {
            return Err(Error::Cancelled);
        }
        let n = batch.min(count - start);
        f(&call.for_batch(start, index, batches), start, n)?;
    }
    log::debug!("{what}: {count} items in {batches} batches of up to {batch}, {:.3} s", clock.elapsed().as_secs_f64());
    Ok(())
}

/// # Safety
/// `ptr` must point to `len` writable elements (checked non-null and aligned by the caller).
unsafe fn out_slice<'a, T>(ptr: *mut T, len: usize) -> &'a mut [T] {
    // SAFETY: caller's contract.
    unsafe { std::slice::from_raw_parts_mut(ptr, len) }
}

/// # Safety
/// `ptr` must point to `len` readable elements (checked non-null and aligned by the caller).
unsafe fn in_slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    // SAFETY: caller's contract.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

fn float_count(bytes: usize) -> usize {
    bytes / size_of::<f32>()
}

fn latents_tensor<B: Backend>(rows: &[f32], n: usize, d: usize, device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(rows.to_vec(), [n, d]), device)
}

/// Samples `count` images into `out` (`count * image_bytes` bytes, 8-bit interleaved, row-major).
/// Image i depends only on (seed, first_index + i): not on count or batch_size.
///
/// # Safety
/// `model` NULL or live; `params` NULL or valid for its `struct_size`; `out` NULL or writable for
/// `out_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_sample(
    model: *mut LdfModel,
    count: u32,
    params: *const LdfSampleParams,
    out: *mut u8,
    out_len: usize,
) -> LdfStatus {
    guard("ldf_sample", || {
        let m = model_ref(model)?;
        // SAFETY: caller's contract.
        let call = unsafe { super::params::call_options(params)? };
        check_ptr(out, "out")?;
        let per = m.info().image_bytes;
        let total = need(count, per, out_len, "out_len")?;
        // SAFETY: checked non-null and long enough.
        let out = unsafe { out_slice(out, total) };
        with_pipeline!(m, p => in_batches(m, &call, count as usize, "ldf_sample", |o, start, n| {
            let px = image::to_u8(p.sample(n, o)?)?;
            out[start * per..(start + n) * per].copy_from_slice(&px);
            Ok(())
        }))
    })
}

/// Samples `count` latents (learned-prior models) into `out`: `count * latent_dim` floats,
/// `out_len` in bytes. Latent i depends only on (seed, first_index + i).
///
/// # Safety
/// As `ldf_sample`; `out` must be aligned for float.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_sample_latents(
    model: *mut LdfModel,
    count: u32,
    params: *const LdfSampleParams,
    out: *mut f32,
    out_len: usize,
) -> LdfStatus {
    guard("ldf_sample_latents", || {
        let m = model_ref(model)?;
        let info = m.info();
        learned_only(&info, "ldf_sample_latents")?;
        // SAFETY: caller's contract.
        let call = unsafe { super::params::call_options(params)? };
        check_ptr(out, "out")?;
        let total = need(count, info.latent_bytes, out_len, "out_len")?;
        let d = info.latent_dim as usize;
        // SAFETY: checked non-null, aligned and long enough.
        let out = unsafe { out_slice(out, float_count(total)) };
        with_pipeline!(m, p => in_batches(m, &call, count as usize, "ldf_sample_latents", |o, start, n| {
            let z = tensor_floats(p.sample_latents(n, o)?)?;
            out[start * d..(start + n) * d].copy_from_slice(&z);
            Ok(())
        }))
    })
}

fn learned_only(info: &LdfModelInfo, what: &str) -> Result<()> {
    if info.prior != LDF_PRIOR_LEARNED {
        return Err(Error::Unsupported(format!("{what} needs a learned-prior model; this one has a Gaussian prior")));
    }
    Ok(())
}

/// Generates one image per latent: `z` holds `count * latent_dim` floats (from
/// `ldf_sample_latents`, `ldf_encode` or your own edits); `out` gets `count * image_bytes`.
/// The prior noise of image i comes from (seed, first_index + i).
///
/// # Safety
/// As `ldf_sample`; `z` must point to `count * latent_dim` readable, aligned floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_generate_from_latents(
    model: *mut LdfModel,
    z: *const f32,
    count: u32,
    params: *const LdfSampleParams,
    out: *mut u8,
    out_len: usize,
) -> LdfStatus {
    guard("ldf_generate_from_latents", || {
        let m = model_ref(model)?;
        let info = m.info();
        learned_only(&info, "ldf_generate_from_latents")?;
        // SAFETY: caller's contract.
        let call = unsafe { super::params::call_options(params)? };
        check_ptr(z, "z")?;
        check_ptr(out, "out")?;
        let per = info.image_bytes;
        let total = need(count, per, out_len, "out_len")?;
        let d = info.latent_dim as usize;
        // SAFETY: checked non-null and aligned; the caller guarantees the length.
        let z = unsafe { in_slice(z, count as usize * d) };
        // SAFETY: checked non-null and long enough.
        let out = unsafe { out_slice(out, total) };
        with_pipeline!(m, p => in_batches(m, &call, count as usize, "ldf_generate_from_latents", |o, start, n| {
            let zt = latents_tensor::<_>(&z[start * d..(start + n) * d], n, d, p.device());
            let px = image::to_u8(p.generate(zt, o)?)?;
            out[start * per..(start + n) * per].copy_from_slice(&px);
            Ok(())
        }))
    })
}

/// Encodes `count` images (`count * image_bytes` bytes in the model's layout) to their latents
/// (the auxiliary encoder's posterior means): `count * latent_dim` floats into `out_latents`,
/// `out_len` in bytes. Deterministic.
///
/// # Safety
/// `model` NULL or live; `pixels` `count * image_bytes` readable bytes; `out_latents` aligned and
/// writable for `out_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_encode(
    model: *mut LdfModel,
    pixels: *const u8,
    count: u32,
    out_latents: *mut f32,
    out_len: usize,
) -> LdfStatus {
    guard("ldf_encode", || {
        let m = model_ref(model)?;
        let info = m.info();
        learned_only(&info, "ldf_encode")?;
        check_ptr(pixels, "pixels")?;
        check_ptr(out_latents, "out_latents")?;
        let total = need(count, info.latent_bytes, out_len, "out_len")?;
        let (per, d) = (info.image_bytes, info.latent_dim as usize);
        // SAFETY: checked non-null; the caller guarantees the length.
        let pixels = unsafe { in_slice(pixels, count as usize * per) };
        // SAFETY: checked non-null, aligned and long enough.
        let out = unsafe { out_slice(out_latents, float_count(total)) };
        // SAFETY: NULL params are the defaults.
        let call = unsafe { super::params::call_options(std::ptr::null())? };
        let (c, s) = (info.channels as usize, info.width as usize);
        with_pipeline!(m, p => in_batches(m, &call, count as usize, "ldf_encode", |_, start, n| {
            let x = image::from_u8(&pixels[start * per..(start + n) * per], n, c, s, s, p.device())?;
            let z = tensor_floats(p.encode(x)?)?;
            out[start * d..(start + n) * d].copy_from_slice(&z);
            Ok(())
        }))
    })
}

/// Renders `frames` images walking from latent `z_from` to `z_to` (each `latent_dim` floats),
/// both endpoints included, in `params->interpolation` mode; every frame uses the prior noise of
/// (seed, 0), so the frames differ only through their latents. `out` gets
/// `frames * image_bytes`. At most 65536 frames.
///
/// # Safety
/// As `ldf_generate_from_latents`; `z_from`, `z_to` point to `latent_dim` aligned floats each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_interpolate(
    model: *mut LdfModel,
    z_from: *const f32,
    z_to: *const f32,
    frames: u32,
    params: *const LdfSampleParams,
    out: *mut u8,
    out_len: usize,
) -> LdfStatus {
    guard("ldf_interpolate", || {
        let m = model_ref(model)?;
        let info = m.info();
        learned_only(&info, "ldf_interpolate")?;
        // SAFETY: caller's contract.
        let call = unsafe { super::params::call_options(params)? };
        check_ptr(z_from, "z_from")?;
        check_ptr(z_to, "z_to")?;
        check_ptr(out, "out")?;
        let per = info.image_bytes;
        let total = need(frames, per, out_len, "out_len")?;
        if frames as usize > crate::pipeline::MAX_COUNT {
            return invalid(format!("frames must be at most {}, got {frames}", crate::pipeline::MAX_COUNT));
        }
        let d = info.latent_dim as usize;
        // SAFETY: checked non-null and aligned; the caller guarantees latent_dim floats each.
        let (a, b) = unsafe { (in_slice(z_from, d), in_slice(z_to, d)) };
        // SAFETY: checked non-null and long enough.
        let out = unsafe { out_slice(out, total) };
        with_pipeline!(m, p => {
            let za = latents_tensor::<_>(a, 1, d, p.device());
            let zb = latents_tensor::<_>(b, 1, d, p.device());
            let path = tensor_floats(p.interpolation_path(za, zb, frames as usize, call.interpolation)?)?;
            in_batches(m, &call, frames as usize, "ldf_interpolate", |o, start, n| {
                let zt = latents_tensor::<_>(&path[start * d..(start + n) * d], n, d, p.device());
                let px = image::to_u8(p.generate_frames(zt, o)?)?;
                out[start * per..(start + n) * per].copy_from_slice(&px);
                Ok(())
            })
        })
    })
}

/// Fills in the pixels of `count` images where `mask` is 0 (one byte per pixel, `mask_bytes`
/// per image; non-zero = keep). The kept pixels come back unchanged, byte for byte. `out` gets
/// `count * image_bytes` and may be the same buffer as `pixels`.
///
/// # Safety
/// `model` NULL or live; `pixels` `count * image_bytes` readable bytes; `mask`
/// `count * mask_bytes` readable bytes; `out` writable for `out_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_inpaint(
    model: *mut LdfModel,
    pixels: *const u8,
    mask: *const u8,
    count: u32,
    params: *const LdfSampleParams,
    out: *mut u8,
    out_len: usize,
) -> LdfStatus {
    guard("ldf_inpaint", || {
        let m = model_ref(model)?;
        // SAFETY: caller's contract.
        let call = unsafe { super::params::call_options(params)? };
        check_ptr(pixels, "pixels")?;
        check_ptr(mask, "mask")?;
        check_ptr(out, "out")?;
        let info = m.info();
        let per = info.image_bytes;
        let total = need(count, per, out_len, "out_len")?;
        let mper = info.mask_bytes;
        let (c, s) = (info.channels as usize, info.width as usize);
        // The output may alias the input, so inputs are copied batch by batch before writing.
        let candidates = call.opts.inpaint_candidates;
        with_pipeline!(m, p => in_batches_sized(m, &call, count as usize, "ldf_inpaint", candidates, |o, start, n| {
            // SAFETY: the caller guarantees count * per and count * mper readable bytes.
            let (px, mk) = unsafe {
                (
                    in_slice(pixels.add(start * per), n * per).to_vec(),
                    in_slice(mask.add(start * mper), n * mper).to_vec(),
                )
            };
            let x = image::from_u8(&px, n, c, s, s, p.device())?;
            let mt = image::mask_from_u8(&mk, n, s, s, p.device())?;
            let filled = image::to_u8(p.inpaint(x, mt, o)?)?;
            // SAFETY: out has `total` writable bytes; this batch's range is inside it.
            let out = unsafe { out_slice(out, total) };
            out[start * per..(start + n) * per].copy_from_slice(&filled);
            Ok(())
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-pixel head works at full resolution: for the shipped geometry its maps outweigh
    /// the DiT's token activations, so a limit sized without them would let batches several
    /// times too large through.
    #[test]
    fn memory_estimate_counts_the_pixel_head() {
        let mut cfg = ModelConfig::preset("small", 4, 32, PriorKind::Gaussian).unwrap();
        let plain = bytes_per_image(&cfg, 0);
        cfg.dit.pixel_head = 32;
        let head = bytes_per_image(&cfg, 0);
        assert!(head - plain >= 15 * 32 * 32 * 32 * 4, "{plain} -> {head}");
        assert!(head > 2 * plain, "{plain} -> {head}");
    }
}
