//! Game-asset sampling: seamless tiles (`tileable`) and variations of given images, through
//! `lediflow::Model` (the layer every front end calls).

mod common;

use burn::prelude::*;
use burn::tensor::TensorData;
use common::{B, random_pipeline, tiny_config, train_run};
use lediflow::eval::seam_stats;
use lediflow::pipeline::{MAX_COUNT, MAX_VARIATIONS};
use lediflow::train::{OptimConfig, StageSteps, TrainConfig};
use lediflow::{Error, Interpolation, Model, ModelMeta, Pipeline, PriorKind, SampleOptions};

fn model(prior: PriorKind) -> Model {
    Model::from_pipeline(random_pipeline(4, 16, prior, 3))
}

fn opts(seed: u64, batch_size: usize, tileable: bool) -> SampleOptions {
    SampleOptions { seed, steps: 3, latent_steps: 2, inpaint_candidates: 2, batch_size, tileable, ..Default::default() }
}

/// Mean absolute difference per byte.
fn distance(a: &[u8], b: &[u8]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as f64).sum::<f64>() / a.len() as f64
}

#[test]
fn tileable_calls_keep_every_promise_of_plain_ones() {
    for prior in [PriorKind::Learned, PriorKind::Gaussian] {
        let m = model(prior);
        let info = m.info();
        let per = info.image_bytes();
        let whole = m.sample(5, &opts(9, 0, true)).unwrap();
        // Batching and first_index change nothing (the shifts depend on the seed and the solver
        // time, never on the batch).
        for batch in [1, 2] {
            assert_eq!(m.sample(5, &opts(9, batch, true)).unwrap(), whole, "{prior:?} batch {batch}");
        }
        let tail = m.sample(2, &SampleOptions { first_index: 3, ..opts(9, 0, true) }).unwrap();
        assert_eq!(tail, whole[3 * per..], "{prior:?} first_index");
        assert_ne!(m.sample(5, &opts(9, 0, false)).unwrap(), whole, "{prior:?}: tileable changed nothing");

        // Inpainting keeps the known pixels exactly; interpolation between seeds runs.
        let mask: Vec<u8> = (0..info.mask_bytes()).map(|p| u8::from(p % 16 < 8)).collect();
        let filled = m.inpaint(&whole[..per], &mask, &opts(1, 0, true)).unwrap();
        for (p, &keep) in mask.iter().enumerate() {
            if keep == 1 {
                assert_eq!(filled[p * 4..p * 4 + 4], whole[p * 4..p * 4 + 4], "{prior:?} kept pixel {p}");
            }
        }
        assert_eq!(m.interpolate_seeds(1, 2, 3, &opts(0, 0, true)).unwrap().len(), 3 * per);
        if prior == PriorKind::Learned {
            let z = m.sample_latents(2, &opts(0, 0, true)).unwrap();
            let d = info.latent_dim;
            assert_eq!(m.generate(&z, &opts(0, 0, true)).unwrap().len(), 2 * per);
            let frames = m.interpolate(&z[..d], &z[d..], 3, Interpolation::Linear, &opts(0, 0, true)).unwrap();
            assert_eq!(frames.len(), 3 * per);
        }
    }
}

/// Ramps whose bright end meets their dark end across the wrap: a model trained on them draws
/// the same hard seam, and tileable sampling has to join the edges on its own.
fn ramps(count: usize, size: usize) -> Tensor<B, 4> {
    let c = 3;
    let mut data = vec![0f32; count * c * size * size];
    for n in 0..count {
        for ch in 0..c {
            for y in 0..size {
                for x in 0..size {
                    let along = if n % 2 == 0 { x } else { y } as f32 / (size - 1) as f32;
                    let tint = ((n + ch) % 3) as f32 * 0.3;
                    data[((n * c + ch) * size + y) * size + x] = (along * 1.6 - 0.8 + tint - 0.3).clamp(-1.0, 1.0);
                }
            }
        }
    }
    common::quantized(Tensor::from_data(TensorData::new(data, [count, c, size, size]), &Default::default()))
}

#[test]
fn tileable_sampling_joins_the_edges_of_a_model_trained_on_seams() {
    let (n, s) = (6, 16);
    let images = ramps(n, s);
    let adam =
        OptimConfig { lr: 2e-3, warmup_steps: 20, grad_clip: 1.0, ema_decay: 0.99, decay_steps: 0, weight_decay: 0.0 };
    let train = TrainConfig { batch_size: n, fm: adam, seed: 3, ..TrainConfig::default() };
    let cfg = tiny_config(3, s, PriorKind::Gaussian);
    let (nets, _) = train_run(&cfg, &train, &images, StageSteps { aux: 0, latent: 0, fm: 500 });
    let m =
        Model::from_pipeline(Pipeline::new(nets, ModelMeta::new(cfg, serde_json::json!("ramps")), Default::default()));
    let ratio = |tileable: bool| {
        let px = m.sample(64, &SampleOptions { seed: 1, steps: 4, tileable, ..Default::default() }).unwrap();
        seam_stats(&px, s, s, 3).unwrap().ratio()
    };
    let (plain, tiled) = (ratio(false), ratio(true));
    eprintln!("seam ratio: plain {plain:.2}, tileable {tiled:.2}");
    assert!(plain > 3.0, "the model did not learn the seam (ratio {plain:.2}): the test proves nothing");
    assert!(tiled < 1.6, "tileable samples keep a seam: ratio {tiled:.2} (plain {plain:.2})");
}

#[test]
fn variations_depend_only_on_seed_image_and_index() {
    for prior in [PriorKind::Learned, PriorKind::Gaussian] {
        let m = model(prior);
        let per = m.info().image_bytes();
        let inputs = m.sample(2, &opts(4, 0, false)).unwrap();
        let five = m.vary(&inputs, 5, 0.6, &opts(8, 0, false)).unwrap();
        assert_eq!(five.len(), 2 * 5 * per);
        // Fewer variations per image: the same first ones; a batch size changes nothing.
        let three = m.vary(&inputs, 3, 0.6, &opts(8, 2, false)).unwrap();
        for i in 0..2 {
            assert_eq!(
                three[i * 3 * per..(i * 3 + 3) * per],
                five[i * 5 * per..(i * 5 + 3) * per],
                "{prior:?} image {i}"
            );
        }
        // Image 1 alone with first_index 1 gets image 1's variations.
        let second = m.vary(&inputs[per..], 5, 0.6, &SampleOptions { first_index: 1, ..opts(8, 1, false) }).unwrap();
        assert_eq!(second, five[5 * per..]);
        // Variations of one image differ from each other; another seed gives others.
        assert_ne!(five[..per], five[per..2 * per]);
        assert_ne!(m.vary(&inputs, 5, 0.6, &opts(9, 0, false)).unwrap(), five);
        // Tileable variations are a call like any other.
        assert_eq!(m.vary(&inputs, 2, 0.6, &opts(8, 0, true)).unwrap().len(), 4 * per);
    }
}

#[test]
fn variations_move_further_from_their_image_as_strength_grows() {
    for prior in [PriorKind::Learned, PriorKind::Gaussian] {
        let m = model(prior);
        let per = m.info().image_bytes();
        let inputs = m.sample(4, &opts(2, 0, false)).unwrap();
        assert_eq!(
            m.vary(&inputs, 3, 0.0, &opts(5, 0, false)).unwrap(),
            inputs.chunks(per).flat_map(|i| i.repeat(3)).collect::<Vec<_>>(),
            "strength 0 is the input"
        );
        let mut last = 0.0;
        for strength in [0.1, 0.3, 0.5, 0.7, 1.0] {
            let v = m.vary(&inputs, 6, strength, &opts(5, 0, false)).unwrap();
            let d: f64 = v
                .chunks(per)
                .enumerate()
                .map(|(k, out)| distance(out, &inputs[(k / 6) * per..(k / 6 + 1) * per]))
                .sum::<f64>()
                / (4 * 6) as f64;
            eprintln!("{prior:?} strength {strength}: mean |difference| to the input {d:.2}");
            assert!(d > last, "{prior:?}: strength {strength} is no further from the input ({d:.2} <= {last:.2})");
            last = d;
        }
    }
}

#[test]
fn bad_variation_calls_are_refused_before_anything_is_written() {
    let m = model(PriorKind::Learned);
    let per = m.info().image_bytes();
    let inputs = m.sample(2, &opts(1, 0, false)).unwrap();
    let mut out = vec![0xAB; 2 * 4 * per];
    for strength in [f32::NAN, -0.1, 1.01, f32::INFINITY] {
        let e = m.vary_into(&inputs, 4, strength, &opts(0, 0, false), &mut out).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "strength {strength}: {e}");
    }
    for variations in [0, MAX_VARIATIONS + 1] {
        assert!(matches!(
            m.vary_into(&inputs, variations, 0.5, &opts(0, 0, false), &mut out),
            Err(Error::InvalidArgument(_))
        ));
    }
    // count x variations above the count limit; a short buffer; pixels that are not whole images.
    let many = vec![0u8; (MAX_COUNT / MAX_VARIATIONS + 1) * per];
    assert!(matches!(m.vary(&many, MAX_VARIATIONS, 0.5, &opts(0, 0, false)), Err(Error::InvalidArgument(_))));
    assert!(m.vary_into(&inputs, 5, 0.5, &opts(0, 0, false), &mut out).is_err());
    assert!(m.vary_into(&inputs[1..], 1, 0.5, &opts(0, 0, false), &mut out).is_err());
    assert!(m.vary_into(&[], 1, 0.5, &opts(0, 0, false), &mut out).is_err());
    assert!(out.iter().all(|&b| b == 0xAB), "a refused call wrote into the buffer");
}
