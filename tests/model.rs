//! `lediflow::Model`, the layer every front end calls: 8-bit buffers, batching, the count limit
//! and the memory limit behave the same whatever the batch, and bad calls write nothing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::random_pipeline;
use lediflow::pipeline::MAX_COUNT;
use lediflow::{CancelToken, Error, Interpolation, Model, Precision, PriorKind, SampleOptions};

fn model(prior: PriorKind) -> Model {
    Model::from_pipeline(random_pipeline(4, 16, prior, 3))
}

fn opts(seed: u64, batch_size: usize) -> SampleOptions {
    SampleOptions { seed, steps: 2, latent_steps: 2, inpaint_candidates: 2, batch_size, ..Default::default() }
}

#[test]
fn batches_and_memory_limits_never_change_the_images() {
    let m = model(PriorKind::Learned);
    let per = m.info().image_bytes();
    let whole = m.sample(5, &opts(7, 0)).unwrap();
    assert_eq!(whole.len(), 5 * per);
    for batch in [1, 2, 5] {
        assert_eq!(m.sample(5, &opts(7, batch)).unwrap(), whole, "batch {batch}");
    }
    // The pipeline's own sampling agrees with the 8-bit call.
    let p = m.cpu_pipeline().unwrap();
    let direct = lediflow::image::to_u8(p.sample(5, &opts(7, 0)).unwrap()).unwrap();
    assert_eq!(direct, whole);
    // A memory limit that fits two images makes batches of two, with the same result.
    let two = lediflow::pipeline::bytes_per_image(m.config(), 0) * 2;
    m.set_memory_limit(two);
    assert_eq!(m.batch_size(&opts(7, 0), 0).unwrap(), 2);
    assert_eq!(m.sample(5, &opts(7, 0)).unwrap(), whole);
    // One that fits no image is refused before anything is written.
    m.set_memory_limit(1);
    let mut out = vec![0xAB; 5 * per];
    assert!(matches!(m.sample_into(5, &opts(7, 0), &mut out), Err(Error::OutOfMemory(_))));
    assert!(out.iter().all(|&b| b == 0xAB));
    m.set_memory_limit(0);
}

#[test]
fn counts_beyond_the_limit_are_refused_before_anything_is_written() {
    let m = model(PriorKind::Learned);
    let info = m.info();
    let mut out = vec![0xAB; 4 * info.image_bytes()];
    for count in [0, MAX_COUNT + 1, u32::MAX as usize, usize::MAX] {
        let e = m.sample_into(count, &opts(0, 0), &mut out).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{count}: {e}");
        assert!(m.sample(count, &opts(0, 0)).is_err());
        assert!(m.sample_latents(count, &opts(0, 0)).is_err());
        assert!(m.interpolate_seeds(1, 2, count, &opts(0, 0)).is_err());
    }
    assert!(out.iter().all(|&b| b == 0xAB));
    // A short buffer, a latent of the wrong size, pixels that are not whole images.
    assert!(m.sample_into(5, &opts(0, 0), &mut out).is_err());
    let z = vec![0.0; info.latent_dim];
    assert!(m.interpolate(&z, &z[1..], 2, Interpolation::Linear, &opts(0, 0)).is_err());
    assert!(m.encode(&out[1..]).is_err());
    assert!(m.generate(&z[1..], &opts(0, 0)).is_err());
    assert!(out.iter().all(|&b| b == 0xAB));
    // A NaN in the last latent of a call longer than one batch: refused before the first batch.
    let mut z = m.sample_latents(3, &opts(0, 0)).unwrap();
    *z.last_mut().unwrap() = f32::NAN;
    let mut images = vec![0xAB; 3 * info.image_bytes()];
    assert!(matches!(m.generate_into(&z, &opts(0, 1), &mut images), Err(Error::InvalidArgument(_))));
    assert!(images.iter().all(|&b| b == 0xAB));
    // The batch size has a documented maximum too.
    assert!(m.sample(1, &opts(0, lediflow::pipeline::MAX_BATCH + 1)).is_err());
}

#[test]
fn every_call_agrees_with_its_batched_self() {
    let m = model(PriorKind::Learned);
    let (per, d) = (m.info().image_bytes(), m.info().latent_dim);
    let z = m.sample_latents(3, &opts(4, 0)).unwrap();
    assert_eq!(z.len(), 3 * d);
    assert_eq!(m.sample_latents(3, &opts(4, 1)).unwrap(), z);
    let images = m.generate(&z, &opts(4, 0)).unwrap();
    assert_eq!(m.generate(&z, &opts(4, 2)).unwrap(), images);
    assert_eq!(images, m.sample(3, &opts(4, 0)).unwrap());
    let enc = m.encode(&images).unwrap();
    let mut enc1 = vec![0.0; 3 * d];
    m.encode_into(&images, &opts(0, 1), &mut enc1).unwrap();
    assert_eq!(enc, enc1);
    let frames = m.interpolate(&enc[..d], &enc[d..2 * d], 4, Interpolation::Spherical, &opts(4, 0)).unwrap();
    assert_eq!(m.interpolate(&enc[..d], &enc[d..2 * d], 4, Interpolation::Spherical, &opts(4, 3)).unwrap(), frames);
    let seeds = m.interpolate_seeds(1, 2, 5, &opts(4, 0)).unwrap();
    assert_eq!(m.interpolate_seeds(1, 2, 5, &opts(4, 2)).unwrap(), seeds);
    // Inpainting: in place, into another buffer and batched all agree, and keep the known pixels.
    let mut masks = vec![1u8; 3 * m.info().mask_bytes()];
    for mask in masks.chunks_mut(m.info().mask_bytes()) {
        mask[..40].fill(0);
    }
    let filled = m.inpaint(&images, &masks, &opts(9, 0)).unwrap();
    let mut into = vec![0; 3 * per];
    m.inpaint_into(&images, &masks, &opts(9, 1), &mut into).unwrap();
    assert_eq!(filled, into);
    let c = m.info().channels;
    for (i, &keep) in masks.iter().enumerate() {
        let px = (i / m.info().mask_bytes()) * per + (i % m.info().mask_bytes()) * c;
        if keep != 0 {
            assert_eq!(filled[px..px + c], images[px..px + c]);
        }
    }
}

/// bf16 where the CPU has it: every call still agrees with its batched self (image i depends
/// only on (seed, index) within one precision), differs from fp32 in a few levels, and auto
/// runs it; without the instructions bf16 is refused before anything is written and auto is fp32.
#[test]
fn bf16_calls_agree_with_their_batched_selves() {
    let m = model(PriorKind::Learned);
    let info = m.info();
    let bf16 = |seed, batch| SampleOptions { precision: Precision::Bf16, ..opts(seed, batch) };
    let auto = SampleOptions { precision: Precision::Auto, ..opts(4, 0) };
    let fp32 = m.sample(3, &opts(4, 0)).unwrap();
    assert_eq!(info.auto_precision, if info.cpu.avx512_bf16 { Precision::Bf16 } else { Precision::Fp32 });
    if !info.cpu.avx512_bf16 {
        eprintln!("bf16 part skipped: this CPU has no AVX512-BF16");
        let mut out = vec![0xAB; 3 * info.image_bytes()];
        assert!(matches!(m.sample_into(3, &bf16(4, 0), &mut out), Err(Error::Unsupported(_))));
        assert!(out.iter().all(|&b| b == 0xAB));
        assert_eq!(m.sample(3, &auto).unwrap(), fp32);
        return;
    }
    let images = m.sample(3, &bf16(4, 0)).unwrap();
    assert_eq!(m.sample(3, &bf16(4, 1)).unwrap(), images);
    assert_eq!(m.sample(3, &auto).unwrap(), images);
    assert_ne!(images, fp32);
    let mean: f64 = images.iter().zip(&fp32).map(|(a, b)| a.abs_diff(*b) as f64).sum::<f64>() / images.len() as f64;
    assert!(mean < 1.0, "bf16 images are {mean} levels from fp32's on average");
    let z = m.sample_latents(3, &bf16(4, 0)).unwrap();
    assert_eq!(m.generate(&z, &bf16(4, 0)).unwrap(), m.generate(&z, &bf16(4, 2)).unwrap());
    let seeds = m.interpolate_seeds(1, 2, 5, &bf16(4, 0)).unwrap();
    assert_eq!(m.interpolate_seeds(1, 2, 5, &bf16(4, 2)).unwrap(), seeds);
    let masks = vec![1u8; 3 * info.mask_bytes()];
    let mut half = masks.clone();
    half.iter_mut().step_by(2).for_each(|k| *k = 0);
    let filled = m.inpaint(&images, &half, &bf16(9, 0)).unwrap();
    assert_eq!(m.inpaint(&images, &half, &bf16(9, 1)).unwrap(), filled);
    assert_eq!(m.inpaint(&images, &masks, &bf16(9, 0)).unwrap(), images, "a full mask keeps every pixel");
    let varied = m.vary(&images, 2, 0.5, &bf16(3, 0)).unwrap();
    assert_eq!(m.vary(&images, 2, 0.5, &bf16(3, 1)).unwrap(), varied);
    let tiles = SampleOptions { tileable: true, ..bf16(5, 0) };
    assert_eq!(m.sample(3, &tiles).unwrap(), m.sample(3, &SampleOptions { batch_size: 1, ..tiles.clone() }).unwrap());
}

#[test]
fn progress_counts_over_all_batches_and_cancel_stops() {
    let m = model(PriorKind::Gaussian);
    let calls = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(AtomicUsize::new(0));
    let (c2, l2) = (calls.clone(), last.clone());
    let o = SampleOptions {
        progress: Some(Arc::new(move |step, total| {
            assert_eq!(total, 3 * 2, "three batches of two steps");
            assert!(step >= l2.load(Ordering::Relaxed), "progress runs backwards");
            l2.store(step, Ordering::Relaxed);
            c2.fetch_add(1, Ordering::Relaxed);
            true
        })),
        ..opts(1, 1)
    };
    m.sample(3, &o).unwrap();
    assert_eq!(last.load(Ordering::Relaxed), 6);
    assert!(calls.load(Ordering::Relaxed) >= 3);
    let token = CancelToken::new();
    token.cancel();
    let o = SampleOptions { cancel: Some(token.clone()), ..opts(1, 1) };
    assert!(matches!(m.sample(3, &o), Err(Error::Cancelled)));
    token.reset();
    assert!(m.sample(3, &o).is_ok(), "the model stays usable and a reset token lets calls run");
}

#[test]
fn latent_calls_on_a_gaussian_model_are_unsupported() {
    let m = model(PriorKind::Gaussian);
    assert!(matches!(m.sample_latents(1, &opts(0, 0)), Err(Error::Unsupported(_))));
    assert!(matches!(m.encode(&vec![0; m.info().image_bytes()]), Err(Error::Unsupported(_))));
    assert!(m.interpolate_seeds(1, 2, 3, &opts(0, 0)).is_ok());
}

#[test]
fn cuda_without_the_feature_or_a_gpu_is_a_clear_error() {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/models/dcss-small-gaussian.safetensors")).unwrap();
    if let Err(e) = Model::from_bytes(&bytes, lediflow::Device::Cuda(0)) {
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
    }
}
