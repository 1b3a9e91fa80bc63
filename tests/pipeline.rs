//! Pipeline behaviour on tiny random-weight models: shapes, determinism, interpolation
//! endpoints, inpainting guarantees, cancellation and argument checks.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::prelude::*;
use common::*;
use lediflow::image::{from_u8, mask_from_u8, to_u8};
use lediflow::{Error, Interpolation, PriorKind, SampleOptions, Solver};

fn opts(seed: u64) -> SampleOptions {
    SampleOptions { seed, steps: 3, solver: Solver::Midpoint, ..Default::default() }
}

#[test]
fn shapes_for_every_channel_count_and_size() {
    for c in [1, 3, 4] {
        for s in [16, 32] {
            let p = random_pipeline(c, s, PriorKind::Learned, 1);
            let img = p.sample(2, &opts(0)).unwrap();
            assert_eq!(img.dims(), [2, c, s, s]);
            let z = p.encode(img.clone()).unwrap();
            assert_eq!(z.dims(), [2, p.config().aux.latent_dim]);
            let (mu, lv) = p.decode_prior(z).unwrap();
            assert_eq!(mu.dims(), [2, c, s, s]);
            assert_eq!(lv.dims(), [2, c, s, s]);
            let info = p.info();
            assert_eq!((info.channels, info.width, info.height), (c, s, s));
            assert_eq!(to_u8(img).unwrap().len(), 2 * c * s * s);
        }
    }
    let g = random_pipeline(4, 64, PriorKind::Gaussian, 1);
    assert_eq!(g.sample(1, &opts(0)).unwrap().dims(), [1, 4, 64, 64]);
    assert_eq!(g.info().latent_dim, 0);
}

#[test]
fn same_seed_same_output_and_seeds_differ() {
    for prior in [PriorKind::Learned, PriorKind::Gaussian] {
        let p = random_pipeline(3, 16, prior, 2);
        for solver in lediflow::flow::solver::ALL_SOLVERS {
            let o = SampleOptions { solver, ..opts(11) };
            let a = to_vec(p.sample(3, &o).unwrap());
            let b = to_vec(p.sample(3, &o).unwrap());
            assert_eq!(a, b, "{solver:?} not deterministic");
            let c = to_vec(p.sample(3, &SampleOptions { seed: 12, ..o.clone() }).unwrap());
            assert!(max_abs_diff(&a, &c) > 1e-3, "different seeds gave the same images");
        }
    }
}

#[test]
fn image_i_does_not_depend_on_batch_size() {
    let p = random_pipeline(3, 16, PriorKind::Learned, 3);
    let four = to_vec(p.sample(4, &opts(5)).unwrap());
    let one = to_vec(p.sample(1, &opts(5)).unwrap());
    assert_eq!(&four[..one.len()], &one[..]);
}

#[test]
fn generate_from_sampled_latents_equals_sample() {
    let p = random_pipeline(4, 16, PriorKind::Learned, 4);
    let z = p.sample_latents(2, &opts(9)).unwrap();
    let a = to_vec(p.generate(z, &opts(9)).unwrap());
    let b = to_vec(p.sample(2, &opts(9)).unwrap());
    assert_eq!(a, b);
}

#[test]
fn interpolation_endpoints_equal_generation() {
    let p = random_pipeline(3, 16, PriorKind::Learned, 5);
    let o = opts(21);
    let za = p.sample_latents(1, &opts(100)).unwrap();
    let zb = p.sample_latents(1, &opts(200)).unwrap();
    let ga = to_vec(p.generate(za.clone(), &o).unwrap());
    let gb = to_vec(p.generate(zb.clone(), &o).unwrap());
    let n = ga.len();
    for mode in [Interpolation::Linear, Interpolation::Spherical] {
        let frames = to_vec(p.interpolate_latents(za.clone(), zb.clone(), 5, mode, &o).unwrap());
        assert_eq!(frames.len(), 5 * n);
        assert!(max_abs_diff(&frames[..n], &ga) < 1e-4, "{mode:?} first frame");
        assert!(max_abs_diff(&frames[4 * n..], &gb) < 1e-4, "{mode:?} last frame");
        // Middle frames differ from both ends.
        assert!(max_abs_diff(&frames[2 * n..3 * n], &ga) > 1e-3);
    }
    // Seed interpolation: endpoints are the latents of the two seeds, noise from opts.seed.
    let frames = to_vec(p.interpolate_seeds(100, 200, 4, &o).unwrap());
    assert!(max_abs_diff(&frames[..n], &ga) < 1e-4);
    assert!(max_abs_diff(&frames[3 * n..], &gb) < 1e-4);
    // Gaussian-prior models interpolate their image noise.
    let g = random_pipeline(3, 16, PriorKind::Gaussian, 5);
    let frames = to_vec(g.interpolate_seeds(100, 200, 3, &o).unwrap());
    let sa = to_vec(g.sample(1, &opts(100)).unwrap());
    assert!(max_abs_diff(&frames[..n], &sa) < 1e-4);
}

#[test]
#[allow(clippy::needless_range_loop)]
fn inpainting_keeps_known_pixels_exactly_and_fills_the_hole() {
    for prior in [PriorKind::Learned, PriorKind::Gaussian] {
        let p = random_pipeline(4, 16, prior, 6);
        let (n, c, s) = (2, 4, 16);
        let pixels: Vec<u8> = (0..n * s * s * c).map(|i| ((i * 37 + 11) % 256) as u8).collect();
        let mut mask = vec![1u8; n * s * s];
        for img in 0..n {
            for y in 4..12 {
                for x in 4..12 {
                    mask[img * s * s + y * s + x] = 0;
                }
            }
        }
        let dev = Default::default();
        let images = from_u8::<B>(&pixels, n, c, s, s, &dev).unwrap();
        let masks = mask_from_u8::<B>(&mask, n, s, s, &dev).unwrap();
        let out = to_u8(p.inpaint(images, masks, &opts(1)).unwrap()).unwrap();
        let mut changed = 0;
        for i in 0..n * s * s {
            for ch in 0..c {
                let k = i * c + ch;
                if mask[i] != 0 {
                    assert_eq!(out[k], pixels[k], "known pixel {i} channel {ch} changed");
                } else if out[k] != pixels[k] {
                    changed += 1;
                }
            }
        }
        assert!(changed > n * 64 * c / 2, "hole not filled ({changed} values changed)");
    }
}

#[test]
fn progress_reports_every_step_and_cancel_stops() {
    let p = random_pipeline(3, 16, PriorKind::Learned, 7);
    let seen = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    let o = SampleOptions {
        steps: 5,
        progress: Some(Arc::new(move |step, total| {
            assert_eq!(total, 5);
            s2.store(step, Ordering::SeqCst);
            true
        })),
        ..opts(0)
    };
    p.sample(1, &o).unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 5);
    let cancel = SampleOptions { progress: Some(Arc::new(|step, _| step < 2)), ..o };
    assert!(matches!(p.sample(1, &cancel), Err(Error::Cancelled)));
    // The model is still usable afterwards.
    assert_eq!(p.sample(1, &opts(0)).unwrap().dims(), [1, 3, 16, 16]);
}

#[test]
fn bad_arguments_are_errors() {
    let p = random_pipeline(3, 16, PriorKind::Learned, 8);
    let bad = |o: SampleOptions| matches!(p.sample(1, &o), Err(Error::InvalidArgument(_)));
    assert!(bad(SampleOptions { steps: 0, ..opts(0) }));
    assert!(bad(SampleOptions { prior_scale: f32::NAN, ..opts(0) }));
    assert!(bad(SampleOptions { prior_scale: -1.0, ..opts(0) }));
    assert!(bad(SampleOptions { time_shift: Some(0.0), ..opts(0) }));
    assert!(bad(SampleOptions { time_shift: Some(f32::NAN), ..opts(0) }));
    assert!(!bad(SampleOptions { time_shift: Some(3.0), ..opts(0) }));
    assert!(bad(SampleOptions { latent_steps: 0, ..opts(0) }));
    assert!(matches!(p.sample(0, &opts(0)), Err(Error::InvalidArgument(_))));
    assert!(matches!(p.sample(1 << 20, &opts(0)), Err(Error::InvalidArgument(_))));
    let dev = Default::default();
    let wrong = Tensor::<B, 4>::zeros([1, 4, 16, 16], &dev);
    assert!(matches!(p.encode(wrong), Err(Error::InvalidArgument(_))));
    let z_bad = Tensor::<B, 2>::zeros([1, 3], &dev);
    assert!(matches!(p.generate(z_bad, &opts(0)), Err(Error::InvalidArgument(_))));
    let z_nan = Tensor::<B, 2>::full([1, p.config().aux.latent_dim], f32::NAN, &dev);
    assert!(matches!(p.generate(z_nan, &opts(0)), Err(Error::InvalidArgument(_))));
    let g = random_pipeline(3, 16, PriorKind::Gaussian, 8);
    assert!(matches!(g.sample_latents(1, &opts(0)), Err(Error::Unsupported(_))));
    assert!(matches!(g.encode(Tensor::zeros([1, 3, 16, 16], &dev)), Err(Error::Unsupported(_))));
}

#[test]
fn a_pipeline_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<lediflow::Pipeline<B>>();
    let p = Arc::new(random_pipeline(3, 16, PriorKind::Learned, 9));
    let expected = to_vec(p.sample(2, &opts(4)).unwrap());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || to_vec(p.sample(2, &opts(4)).unwrap()))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), expected);
    }
}

/// A large CPU call is cut into chunks run by worker threads: the images are those of
/// one-image calls, progress arrives on the calling thread only and counts that thread's
/// chunks, and a cancellation stops every worker.
#[test]
fn split_sampling_equals_single_images_and_keeps_progress_on_the_caller() {
    let n = 2 * lediflow::pipeline::CPU_CHUNK + 3;
    for prior in [PriorKind::Learned, PriorKind::Gaussian] {
        let p = random_pipeline(3, 16, prior, 11);
        let caller = std::thread::current().id();
        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = calls.clone();
        let o = SampleOptions {
            progress: Some(Arc::new(move |step, total| {
                assert_eq!(std::thread::current().id(), caller, "progress called from a worker thread");
                assert!(step >= 1 && step <= total && total % 3 == 0, "{step}/{total}");
                c2.fetch_add(1, Ordering::SeqCst);
                true
            })),
            ..opts(9)
        };
        let all = to_vec(p.sample(n, &o).unwrap());
        assert!(calls.load(Ordering::SeqCst) >= 3);
        let per = all.len() / n;
        for i in [0, 1, lediflow::pipeline::CPU_CHUNK, n - 1] {
            let single = to_vec(p.sample(1, &SampleOptions { first_index: i as u64, ..opts(9) }).unwrap());
            assert_eq!(&all[i * per..(i + 1) * per], &single[..], "{prior:?} image {i}");
        }
        let cancel = SampleOptions { progress: Some(Arc::new(|step, _| step < 4)), ..opts(9) };
        assert!(matches!(p.sample(n, &cancel), Err(Error::Cancelled)));
    }
}

/// `Pipeline::velocity` (the fused CPU pass on this backend) agrees with the burn module and
/// rejects inputs of the wrong shape with an error instead of a panic.
#[test]
fn velocity_matches_the_network_and_checks_shapes() {
    let p = random_pipeline(4, 16, PriorKind::Learned, 6);
    let device = Default::default();
    let x = synthetic_images(3, 4, 16);
    let t = Tensor::<B, 1>::from_floats([0.1, 0.5, 0.9], &device);
    let fused = to_vec(p.velocity(x.clone(), t.clone()).unwrap());
    let burn_ops = to_vec(p.networks().velocity.forward(x.clone(), t.clone()));
    assert!(burn_ops.iter().any(|v| v.abs() > 1e-3), "the reference is ~0: the check would prove nothing");
    assert!(max_abs_diff(&fused, &burn_ops) < 1e-4);
    assert!(matches!(
        p.velocity(x.clone(), Tensor::<B, 1>::from_floats([0.1, 0.5], &device)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(p.velocity(synthetic_images(3, 3, 16), t), Err(Error::InvalidArgument(_))));
}

#[test]
fn a_model_files_recommended_time_shift_is_the_default() {
    let mut p = random_pipeline(4, 16, PriorKind::Gaussian, 3);
    let px = |p: &lediflow::Pipeline<B>, t: Option<f32>| {
        to_vec(p.sample(2, &SampleOptions { time_shift: t, ..opts(1) }).unwrap())
    };
    // No recommendation: equal steps.
    assert_eq!(p.time_shift(&opts(0)), 1.0);
    assert_eq!(px(&p, None), px(&p, Some(1.0)));
    let bad = lediflow::checkpoint::SamplingDefaults { time_shift: Some(500.0) };
    assert!(p.set_sampling_defaults(bad.clone()).is_err());
    p.set_sampling_defaults(lediflow::checkpoint::SamplingDefaults { time_shift: Some(3.0) }).unwrap();
    // It travels with the file; an explicit shift still wins.
    let dir = std::env::temp_dir().join(format!("lediflow-shift-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    p.save(dir.join("m.safetensors")).unwrap();
    let q = lediflow::Pipeline::<B>::load(dir.join("m.safetensors"), &Default::default()).unwrap();
    assert_eq!(q.meta().sampling.time_shift, Some(3.0));
    assert_eq!(q.time_shift(&opts(0)), 3.0);
    assert_eq!(q.time_shift(&SampleOptions { time_shift: Some(2.0), ..opts(0) }), 2.0);
    assert_eq!(px(&q, None), px(&q, Some(3.0)));
    assert_ne!(px(&q, None), px(&q, Some(1.0)));
    // A file recommending an out-of-range shift is refused at load, like any bad metadata (and
    // the library never writes one).
    let mut meta = q.meta().clone();
    meta.sampling = bad;
    assert!(lediflow::checkpoint::save(&dir.join("bad.safetensors"), q.networks(), &meta).is_err());
    let json = serde_json::to_string(&meta).unwrap();
    let bytes = lediflow::checkpoint::to_safetensors_bytes(
        &lediflow::checkpoint::parameter_values(q.networks()),
        std::collections::HashMap::from([(lediflow::checkpoint::METADATA_KEY.to_string(), json)]),
    )
    .unwrap();
    let err = lediflow::Pipeline::<B>::from_bytes(&bytes, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("sampling.time_shift"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
