//! Class-conditional models: classes and guidance through sampling (fused CPU passes and burn's
//! alike), the model file, validation, and a short conditional training run whose classes come
//! out apart.

mod common;

use common::*;
use lediflow::checkpoint::{from_bytes, to_bytes};
use lediflow::config::ClassConfig;
use lediflow::data::Dataset;
use lediflow::train::{StageSteps, TrainConfig};
use lediflow::{Error, Model, ModelMeta, Pipeline, PriorKind, SampleOptions};

fn conditional(prior: PriorKind, image_flow: bool) -> Model {
    let mut cfg = tiny_config(4, 16, prior);
    cfg.classes = ClassConfig { names: vec!["floor".into(), "item".into(), "creature".into()], image_flow };
    cfg.validate().unwrap();
    // Random weights everywhere, the class tables included (they start at zero in training).
    let nets = random_networks(&cfg, 5);
    let p = Pipeline::new(nets, ModelMeta::new(cfg, serde_json::json!({"test": true})), Default::default());
    Model::from_pipeline(p)
}

fn opts(class: Option<u32>, guidance: f32) -> SampleOptions {
    SampleOptions { seed: 3, steps: 2, latent_steps: 2, class, guidance, ..Default::default() }
}

#[test]
fn classes_and_guidance_change_samples_and_keep_batch_independence() {
    for (prior, image_flow) in [(PriorKind::Learned, false), (PriorKind::Learned, true), (PriorKind::Gaussian, false)] {
        let m = conditional(prior, image_flow);
        let what = format!("{prior:?} image_flow={image_flow}");
        let none = m.sample(3, &opts(None, 1.0)).unwrap();
        let a = m.sample(3, &opts(Some(0), 1.0)).unwrap();
        let b = m.sample(3, &opts(Some(1), 1.0)).unwrap();
        assert!(a != b, "{what}: two classes gave the same images");
        assert!(a != none, "{what}: a class gave the unconditional images");
        let guided = m.sample(3, &opts(Some(0), 2.5)).unwrap();
        assert!(guided != a, "{what}: guidance changed nothing");
        // Guidance 0 is the unconditional flow, exactly.
        assert!(m.sample(3, &opts(Some(0), 0.0)).unwrap() == none, "{what}: guidance 0 is not unconditional");
        // Image i depends only on (seed, i), with a class and guidance too.
        let one = m.sample(1, &SampleOptions { first_index: 2, ..opts(Some(0), 2.5) }).unwrap();
        assert!(one[..] == guided[2 * 1024..], "{what}: image 2 depends on its batch");
        // Every generation call takes the class.
        let inpainted = m.inpaint(&a, &vec![1u8; 3 * 256], &opts(Some(2), 1.5)).unwrap();
        assert!(inpainted == a, "{what}: kept pixels changed");
        let walk0 = m.interpolate_seeds(3, 4, 2, &opts(Some(0), 1.0)).unwrap();
        assert!(walk0[..1024] == a[..1024], "{what}: frame 0 is not seed 3's class-0 image 0");
        // Variations start from the image's own prior: only a conditioned image flow sees the class.
        let v = m.vary(&a[..1024], 2, 0.7, &opts(Some(1), 1.0)).unwrap();
        let v0 = m.vary(&a[..1024], 2, 0.7, &opts(Some(0), 1.0)).unwrap();
        let image_conditioned = image_flow || prior == PriorKind::Gaussian;
        assert_eq!(v != v0, image_conditioned, "{what}: vary and the class");
        // The latent flow alone following the class: only LeDiFlow's conditioned image flow
        // notices (a Gaussian-prior model's image flow is its only conditioned flow).
        let prior_only = m.sample(3, &SampleOptions { class_in_image_flow: false, ..opts(Some(0), 1.0) }).unwrap();
        assert_eq!(prior_only != a, image_flow && prior == PriorKind::Learned, "{what}: class_in_image_flow");
    }
}

#[test]
fn a_class_model_file_round_trips_and_bad_classes_are_refused() {
    let m = conditional(PriorKind::Learned, true);
    let p = m.cpu_pipeline().unwrap();
    let bytes = to_bytes(p.networks(), p.meta()).unwrap();
    let (nets, meta) = from_bytes::<B>(&bytes, &Default::default()).unwrap();
    assert_eq!(meta.format_version, 3);
    assert_eq!(meta.config.classes.names, ["floor", "item", "creature"]);
    let again = Model::from_pipeline(Pipeline::new(nets, meta, Default::default()));
    assert_eq!(again.sample(2, &opts(Some(2), 2.0)).unwrap(), m.sample(2, &opts(Some(2), 2.0)).unwrap());
    // Unconditional models keep writing their old versions.
    let plain = random_pipeline(4, 16, PriorKind::Learned, 1);
    let (_, meta) = from_bytes::<B>(&to_bytes(plain.networks(), plain.meta()).unwrap(), &Default::default()).unwrap();
    assert_eq!(meta.format_version, 1);

    let err = |o: SampleOptions| match m.sample(1, &o) {
        Err(Error::InvalidArgument(msg)) => msg,
        other => panic!("expected InvalidArgument, got {:?}", other.map(|v| v.len())),
    };
    let msg = err(opts(Some(3), 1.0));
    assert!(msg.contains("0 floor, 1 item, 2 creature"), "{msg}");
    assert!(err(opts(Some(0), f32::NAN)).contains("guidance"));
    assert!(err(opts(Some(0), -1.0)).contains("guidance"));
    let plain = Model::from_pipeline(random_pipeline(4, 16, PriorKind::Learned, 1));
    match plain.sample(1, &opts(Some(0), 1.0)) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("no classes"), "{msg}"),
        other => panic!("{:?}", other.map(|v| v.len())),
    }
}

/// Two classes of flat images, dark and light: after a short conditional run, each class's
/// samples are nearer their own class's images than the other's.
#[test]
fn a_conditional_run_learns_its_classes() {
    let size = 16;
    let mut ds = Dataset::new(size, 4);
    ds.classes = vec!["dark".into(), "light".into()];
    for i in 0..16u8 {
        let class = u32::from(i % 2);
        let v = if class == 0 { 20 + i } else { 220 - i };
        let img = image::RgbaImage::from_pixel(size as u32, size as u32, image::Rgba([v, v, v, 255]));
        ds.push_labelled(&img, format!("synthetic {i}"), class);
    }
    let mut cfg = tiny_config(4, size, PriorKind::Gaussian);
    cfg.classes = ClassConfig { names: ds.classes.clone(), image_flow: false };
    let fm = lediflow::train::OptimConfig { lr: 2e-3, ..Default::default() };
    let train = TrainConfig { batch_size: 16, fm, ..Default::default() };
    let (nets, _) = train_run_on(&cfg, &train, &ds, StageSteps { aux: 0, latent: 0, fm: 400 });
    let m = Model::from_pipeline(Pipeline::new(nets, ModelMeta::new(cfg, serde_json::json!({})), Default::default()));
    let mean = |px: &[u8]| px.chunks(4).map(|p| p[0] as f32).sum::<f32>() / (px.len() / 4) as f32;
    let dark = mean(&m.sample(8, &opts(Some(0), 1.0)).unwrap());
    let light = mean(&m.sample(8, &opts(Some(1), 1.0)).unwrap());
    assert!(dark < 100.0 && light > 150.0, "class means after training: dark {dark}, light {light}");

    // The per-class sweep: each class's samples lie by that class's held-out images.
    use lediflow::eval::sweep::{ClassMix, LatentSource, SweepConfig, sweep};
    let (train_set, held_out) = ds.split_per_group(4);
    let cfg = SweepConfig {
        count: 8,
        steps: vec![2],
        solvers: vec![lediflow::Solver::Midpoint],
        seeds: vec![0, 1],
        prior_scales: vec![1.0],
        time_shifts: vec![1.0],
        latent_steps: 2,
        latents: LatentSource::Flow,
        tileable: false,
        classes: ClassMix::HeldOut,
        guidances: vec![1.0, 2.0],
        class_in_image_flow: true,
        precision: lediflow::Precision::Fp32,
        metrics: Default::default(),
    };
    let out = sweep(&m, &train_set, &held_out, &cfg, &mut |_| {}).unwrap();
    assert_eq!(out.points.len(), 2);
    for p in &out.points {
        assert_eq!(p.mean.class_accuracy.len(), 2);
        assert!(p.mean.mean_class_accuracy().unwrap() > 0.9, "guidance {}: {:?}", p.guidance, p.mean.class_accuracy);
    }
    assert_eq!(out.real_floor.class_accuracy, vec![1.0, 1.0]);
    // Guidance without classes, and classes the model lacks, are refused before sampling.
    let unlabelled = SweepConfig { classes: ClassMix::None, ..cfg.clone() };
    assert!(sweep(&m, &train_set, &held_out, &unlabelled, &mut |_| {}).is_err());
    let mut renamed = held_out.clone();
    renamed.classes = vec!["a".into(), "b".into()];
    let err = sweep(&m, &train_set, &renamed, &cfg, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("dark, light"), "{err}");
}
