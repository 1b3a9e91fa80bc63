//! `LdfModel` and the generation calls: each export checks the raw pointers and lengths, builds
//! slices and calls [`crate::Model`], which checks the rest, batches and writes into the slices.

use std::ffi::{CStr, c_char};

use super::params::{
    LDF_CPU_AMX_BF16, LDF_CPU_AVX512_BF16, LDF_PRIOR_GAUSSIAN, LDF_PRIOR_LEARNED, LdfModelInfo, LdfSampleParams,
    call_options, precision_code,
};
use super::{LDF_DEVICE_CPU, LDF_DEVICE_CUDA, LdfDevice, LdfStatus, guard};
use crate::config::PriorKind;
use crate::device::Device;
use crate::error::{Error, Result, invalid};
use crate::pipeline::{Model, SampleOptions, check_count};

/// A loaded model: its weights on one device. Read-only after loading (its memory limit aside),
/// so one model may serve several threads at once; each call keeps its own state.
pub struct LdfModel {
    model: Model,
    /// The class names as C strings, for `ldf_model_class_name`.
    class_names: Vec<std::ffi::CString>,
}

fn device_of(device: LdfDevice) -> Result<Device> {
    match device {
        LDF_DEVICE_CPU => Ok(Device::Cpu),
        LDF_DEVICE_CUDA => Ok(Device::Cuda(0)),
        other => invalid(format!("device {other} is not an LdfDevice (0 = CPU, 1 = CUDA)")),
    }
}

pub(crate) fn check_device(device: LdfDevice) -> Result<()> {
    device_of(device)?.check()
}

/// # Safety
/// `out` must be non-null and writable (checked by [`clear_out`]).
unsafe fn store_model(out: *mut *mut LdfModel, model: Model) {
    // Names were checked free of NUL when the model file was validated.
    let class_names =
        model.config().classes.names.iter().filter_map(|n| std::ffi::CString::new(n.as_bytes()).ok()).collect();
    // SAFETY: the caller checked `out`.
    unsafe { *out = Box::into_raw(Box::new(LdfModel { model, class_names })) };
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
        let model = Model::load(&path, device_of(device)?)?;
        // SAFETY: checked by clear_out.
        unsafe { store_model(out, model) };
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
        let model = Model::from_bytes(bytes, device_of(device)?)?;
        // SAFETY: checked by clear_out.
        unsafe { store_model(out, model) };
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

fn model_ref<'a>(model: *const LdfModel) -> Result<&'a Model> {
    // SAFETY: NULL or a live model (caller's contract).
    unsafe { model.as_ref() }.map(|m| &m.model).ok_or_else(|| Error::InvalidArgument("model is NULL".into()))
}

fn info_of(model: &Model) -> LdfModelInfo {
    let i = model.info();
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
        image_bytes: i.image_bytes(),
        latent_bytes: i.latent_dim * size_of::<f32>(),
        mask_bytes: i.mask_bytes(),
        parameters: i.parameters as u64,
        time_shift: i.time_shift as f64,
        class_count: model.config().classes.names.len() as u32,
        reserved: 0,
        cpu_features: if i.cpu.avx512_bf16 { LDF_CPU_AVX512_BF16 } else { 0 }
            | if i.cpu.amx_bf16 { LDF_CPU_AMX_BF16 } else { 0 },
        auto_precision: precision_code(i.auto_precision),
    }
}

/// The name of class `index` of a class-conditional model (`0..class_count`), for example
/// "creature": valid as long as the model, NUL-terminated UTF-8. NULL for a NULL model or an
/// index out of range (an unconditional model has no classes). Does not change
/// `ldf_last_error()`.
///
/// # Safety
/// `model` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_model_class_name(model: *const LdfModel, index: u32) -> *const c_char {
    // SAFETY: NULL or a live model (the caller's contract).
    match unsafe { model.as_ref() } {
        Some(m) => m.class_names.get(index as usize).map_or(std::ptr::null(), |n| n.as_ptr()),
        None => std::ptr::null(),
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
        // SAFETY: non-null; the caller guarantees struct_size writable bytes.
        unsafe { super::params::write_info(info, info_of(m)) }
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
        model_ref(model)?.set_memory_limit(bytes);
        Ok(())
    })
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

/// `count` items of `unit` bytes: the count (within the library's limit, checked before any
/// slice is formed) and the total, refusing overflow and a buffer of `have` bytes that is short.
fn need(count: u32, name: &str, unit: usize, have: usize) -> Result<(usize, usize)> {
    let count = count as usize;
    check_count(count, name)?;
    let n = count.checked_mul(unit).ok_or_else(|| Error::InvalidArgument("out_len: size overflows".into()))?;
    if have < n {
        return invalid(format!("out_len is {have} bytes, {count} x {unit} = {n} bytes are needed"));
    }
    Ok((count, n))
}

/// # Safety
/// `ptr` must point to `len` readable elements (checked non-null and aligned by the caller).
unsafe fn in_slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    // SAFETY: caller's contract.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// # Safety
/// `ptr` must point to `len` writable elements (checked non-null and aligned by the caller).
unsafe fn out_slice<'a, T>(ptr: *mut T, len: usize) -> &'a mut [T] {
    // SAFETY: caller's contract.
    unsafe { std::slice::from_raw_parts_mut(ptr, len) }
}

/// Reads `params` (NULL = the defaults) into the library's options.
///
/// # Safety
/// `params` must be NULL or valid for its `struct_size`.
unsafe fn options(params: *const LdfSampleParams) -> Result<(SampleOptions, crate::Interpolation)> {
    // SAFETY: caller's contract.
    let call = unsafe { call_options(params)? };
    Ok((call.opts, call.interpolation))
}

/// Samples `count` images into `out` (`count * image_bytes` bytes, 8-bit interleaved, row-major).
/// Image i depends only on (seed, first_index + i): not on count or batch_size. `count` is
/// 1..=`LDF_MAX_COUNT`.
///
/// # Safety
/// `model` NULL or live; `params` NULL or valid for its `struct_size`; `out` NULL or writable for
/// `out_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_sample(
    model: *const LdfModel,
    count: u32,
    params: *const LdfSampleParams,
    out: *mut u8,
    out_len: usize,
) -> LdfStatus {
    guard("ldf_sample", || {
        let m = model_ref(model)?;
        // SAFETY: caller's contract.
        let (opts, _) = unsafe { options(params)? };
        check_ptr(out, "out")?;
        let (count, total) = need(count, "count", m.info().image_bytes(), out_len)?;
        // SAFETY: checked non-null and long enough.
        m.sample_into(count, &opts, unsafe { out_slice(out, total) })
    })
}

/// Samples `count` latents (learned-prior models) into `out`: `count * latent_dim` floats,
/// `out_len` in bytes. Latent i depends only on (seed, first_index + i).
///
/// # Safety
/// As `ldf_sample`; `out` must be aligned for float.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_sample_latents(
    model: *const LdfModel,
    count: u32,
    params: *const LdfSampleParams,
    out: *mut f32,
    out_len: usize,
) -> LdfStatus {
    guard("ldf_sample_latents", || {
        let m = model_ref(model)?;
        let info = learned_only(m, "ldf_sample_latents")?;
        // SAFETY: caller's contract.
        let (opts, _) = unsafe { options(params)? };
        check_ptr(out, "out")?;
        let (count, total) = need(count, "count", info.latent_bytes, out_len)?;
        // SAFETY: checked non-null, aligned and long enough.
        m.sample_latents_into(count, &opts, unsafe { out_slice(out, total / size_of::<f32>()) })
    })
}

fn learned_only(m: &Model, what: &str) -> Result<LdfModelInfo> {
    let info = info_of(m);
    if info.prior != LDF_PRIOR_LEARNED {
        return Err(Error::Unsupported(format!("{what} needs a learned-prior model; this one has a Gaussian prior")));
    }
    Ok(info)
}

/// Generates one image per latent: `z` holds `count * latent_dim` floats (from
/// `ldf_sample_latents`, `ldf_encode` or your own edits); `out` gets `count * image_bytes`.
/// The prior noise of image i comes from (seed, first_index + i).
///
/// # Safety
/// As `ldf_sample`; `z` must point to `count * latent_dim` readable, aligned floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_generate_from_latents(
    model: *const LdfModel,
    z: *const f32,
    count: u32,
    params: *const LdfSampleParams,
    out: *mut u8,
    out_len: usize,
) -> LdfStatus {
    guard("ldf_generate_from_latents", || {
        let m = model_ref(model)?;
        let info = learned_only(m, "ldf_generate_from_latents")?;
        // SAFETY: caller's contract.
        let (opts, _) = unsafe { options(params)? };
        check_ptr(z, "z")?;
        check_ptr(out, "out")?;
        let (count, total) = need(count, "count", info.image_bytes, out_len)?;
        // SAFETY: checked non-null and aligned; the caller guarantees the length.
        let z = unsafe { in_slice(z, count * info.latent_dim as usize) };
        // SAFETY: checked non-null and long enough.
        m.generate_into(z, &opts, unsafe { out_slice(out, total) })
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
    model: *const LdfModel,
    pixels: *const u8,
    count: u32,
    out_latents: *mut f32,
    out_len: usize,
) -> LdfStatus {
    guard("ldf_encode", || {
        let m = model_ref(model)?;
        let info = learned_only(m, "ldf_encode")?;
        check_ptr(pixels, "pixels")?;
        check_ptr(out_latents, "out_latents")?;
        let (count, total) = need(count, "count", info.latent_bytes, out_len)?;
        // SAFETY: checked non-null; the caller guarantees the length.
        let pixels = unsafe { in_slice(pixels, count * info.image_bytes) };
        // SAFETY: checked non-null, aligned and long enough.
        let out = unsafe { out_slice(out_latents, total / size_of::<f32>()) };
        m.encode_into(pixels, &SampleOptions::default(), out)
    })
}

/// Renders `frames` images walking from latent `z_from` to `z_to` (each `latent_dim` floats),
/// both endpoints included, in `params->interpolation` mode; every frame uses the prior noise of
/// (seed, 0), so the frames differ only through their latents. `out` gets
/// `frames * image_bytes`. `frames` is 1..=`LDF_MAX_COUNT`.
///
/// # Safety
/// As `ldf_generate_from_latents`; `z_from`, `z_to` point to `latent_dim` aligned floats each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_interpolate(
    model: *const LdfModel,
    z_from: *const f32,
    z_to: *const f32,
    frames: u32,
    params: *const LdfSampleParams,
    out: *mut u8,
    out_len: usize,
) -> LdfStatus {
    guard("ldf_interpolate", || {
        let m = model_ref(model)?;
        let info = learned_only(m, "ldf_interpolate")?;
        // SAFETY: caller's contract.
        let (opts, mode) = unsafe { options(params)? };
        check_ptr(z_from, "z_from")?;
        check_ptr(z_to, "z_to")?;
        check_ptr(out, "out")?;
        let (frames, total) = need(frames, "frames", info.image_bytes, out_len)?;
        let d = info.latent_dim as usize;
        // SAFETY: checked non-null and aligned; the caller guarantees latent_dim floats each.
        let (a, b) = unsafe { (in_slice(z_from, d), in_slice(z_to, d)) };
        // SAFETY: checked non-null and long enough.
        m.interpolate_into(a, b, frames, mode, &opts, unsafe { out_slice(out, total) })
    })
}

/// Renders `frames` images walking from the noise of `seed_from` to that of `seed_to`, both
/// endpoints included: an animation between two sprites picked by seed, for both kinds of model.
/// A learned-prior model walks the latent flow's noise along a great circle and every frame
/// shares the prior noise of (`params->seed`, 0): with `params->seed = seed_from`, frame 0 is
/// exactly image 0 of `ldf_sample` with that seed. A Gaussian-prior model walks the image noise
/// itself (frame 0 is image 0 of seed `seed_from`, the last frame image 0 of `seed_to`).
/// `first_index` is not used. `out` gets `frames * image_bytes`; `frames` is 1..=`LDF_MAX_COUNT`.
///
/// # Safety
/// `model` NULL or live; `params` NULL or valid for its `struct_size`; `out` NULL or writable for
/// `out_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_interpolate_seeds(
    model: *const LdfModel,
    seed_from: u64,
    seed_to: u64,
    frames: u32,
    params: *const LdfSampleParams,
    out: *mut u8,
    out_len: usize,
) -> LdfStatus {
    guard("ldf_interpolate_seeds", || {
        let m = model_ref(model)?;
        // SAFETY: caller's contract.
        let (opts, _) = unsafe { options(params)? };
        check_ptr(out, "out")?;
        let (frames, total) = need(frames, "frames", m.info().image_bytes(), out_len)?;
        // SAFETY: checked non-null and long enough.
        m.interpolate_seeds_into(seed_from, seed_to, frames, &opts, unsafe { out_slice(out, total) })
    })
}

/// Fills in the pixels of `count` images where `mask` is 0 (one byte per pixel, `mask_bytes`
/// per image; non-zero = keep). The kept pixels come back unchanged, byte for byte. `out` gets
/// `count * image_bytes`; it may be the same buffer as `pixels` (in place), but must not
/// otherwise overlap it.
///
/// # Safety
/// `model` NULL or live; `pixels` `count * image_bytes` readable bytes; `mask`
/// `count * mask_bytes` readable bytes; `out` writable for `out_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_inpaint(
    model: *const LdfModel,
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
        let (opts, _) = unsafe { options(params)? };
        check_ptr(pixels, "pixels")?;
        check_ptr(mask, "mask")?;
        check_ptr(out, "out")?;
        let info = m.info();
        let (count, total) = need(count, "count", info.image_bytes(), out_len)?;
        // SAFETY: checked non-null; the caller guarantees count * mask_bytes readable bytes.
        let mask = unsafe { in_slice(mask, count * info.mask_bytes()) };
        let (src, dst) = (pixels as usize, out as usize);
        if src == dst {
            // SAFETY: the one buffer is readable and writable for `total` bytes.
            return m.inpaint_in_place(unsafe { out_slice(out, total) }, mask, &opts);
        }
        if src < dst + total && dst < src + total {
            return invalid("out overlaps pixels without being the same buffer");
        }
        // SAFETY: disjoint buffers of the lengths the caller guarantees.
        let (pixels, out) = unsafe { (in_slice(pixels, total), out_slice(out, total)) };
        m.inpaint_into(pixels, mask, &opts, out)
    })
}

/// `variations` new images for each of `count` images (`count * image_bytes` bytes) into `out`
/// (`count * variations * image_bytes` bytes): image i's variations j = 0..variations-1 in
/// order, each depending only on (seed, first_index + i, j). `strength` in [0, 1]: 0 gives the
/// input back byte for byte; 1 keeps only what the image's latent carries (a fresh draw from its
/// own learned prior, through the whole image flow); in between, the flow starts part-way from
/// the image (`steps` solver steps cover what is left). A Gaussian-prior model draws from
/// N(0, I), so strength 1 there is an unrelated sample. `variations` is 1..=`LDF_MAX_VARIATIONS`
/// and count x variations at most `LDF_MAX_COUNT`; `out` must not overlap `pixels`.
///
/// # Safety
/// `model` NULL or live; `pixels` `count * image_bytes` readable bytes; `params` NULL or valid
/// for its `struct_size`; `out` writable for `out_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ldf_vary(
    model: *const LdfModel,
    pixels: *const u8,
    count: u32,
    variations: u32,
    strength: f32,
    params: *const LdfSampleParams,
    out: *mut u8,
    out_len: usize,
) -> LdfStatus {
    guard("ldf_vary", || {
        let m = model_ref(model)?;
        // SAFETY: caller's contract.
        let (opts, _) = unsafe { options(params)? };
        check_ptr(pixels, "pixels")?;
        check_ptr(out, "out")?;
        // The variations count sizes the output slice, so it is checked before that is formed;
        // everything else is Model::vary_into's.
        crate::pipeline::check_variations(variations as usize)?;
        let per = m.info().image_bytes();
        let n = count as usize;
        check_count(n, "count")?;
        let outputs = n * variations as usize;
        check_count(outputs, "count x variations")?;
        let (_, total) = need(outputs as u32, "count x variations", per, out_len)?;
        let input = n * per;
        let (src, dst) = (pixels as usize, out as usize);
        if src < dst + total && dst < src + input {
            return invalid("out overlaps pixels");
        }
        // SAFETY: checked non-null, disjoint, of the lengths the caller guarantees.
        let (pixels, out) = unsafe { (in_slice(pixels, input), out_slice(out, total)) };
        m.vary_into(pixels, variations as usize, strength, &opts, out)
    })
}
