//! A training run interrupted and resumed produces exactly the losses and weights of an
//! uninterrupted run with the same seed.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use lediflow::checkpoint::parameter_values;
use lediflow::data::Dataset;
use lediflow::train::run::{InitFrom, RunControl, RunOutcome, RunSpec, StepLog, run};
use lediflow::train::{OptimConfig, StageSteps, TrainConfig};
use lediflow::{CpuTrainBackend, Pipeline, PriorKind};

fn dataset() -> Dataset {
    let imgs = synthetic_images(6, 4, 16);
    let mut ds = Dataset::new(16, 4);
    ds.pixels = lediflow::image::to_u8(imgs).unwrap();
    ds.sources = (0..6).map(|i| format!("synthetic {i}")).collect();
    ds
}

fn spec(prior: PriorKind) -> RunSpec {
    RunSpec {
        model: tiny_config(4, 16, prior),
        train: TrainConfig {
            batch_size: 4,
            aux: OptimConfig { warmup_steps: 3, ..OptimConfig::default() },
            latent: OptimConfig { warmup_steps: 3, ..OptimConfig::default() },
            fm: OptimConfig { warmup_steps: 3, ..OptimConfig::default() },
            seed: 5,
            ..TrainConfig::default()
        },
        steps: StageSteps { aux: 7, latent: 5, fm: 6 },
        hflip: true,
        checkpoint_every: 3,
        data: serde_json::json!("synthetic"),
        init: None,
    }
}

fn recorder() -> (Rc<RefCell<Vec<StepLog>>>, RunControl) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l2 = log.clone();
    let control = RunControl { on_step: Some(Box::new(move |s, _| l2.borrow_mut().push(*s))), ..Default::default() };
    (log, control)
}

/// Runs `spec` with its run folder `dir/run_name` and model file `dir/m.safetensors`.
fn go(
    spec: &RunSpec,
    data: &Dataset,
    dir: &std::path::Path,
    run_name: &str,
    resume: bool,
    control: RunControl,
) -> lediflow::Result<RunOutcome> {
    run::<CpuTrainBackend>(
        spec,
        data,
        &dir.join(run_name),
        &dir.join("m.safetensors"),
        resume,
        control,
        &Default::default(),
    )
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lediflow-resume-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn interrupted_and_resumed_equals_uninterrupted() {
    let data = dataset();
    // The latent flow on stored latents (the default), and on images through the encoder.
    let cases = [
        (PriorKind::Learned, 256, vec![9usize, 1, 3]),
        (PriorKind::Learned, 0, vec![9]),
        (PriorKind::Gaussian, 256, vec![4]),
    ];
    for (prior, latent_batch, stops) in cases {
        let mut spec = spec(prior);
        spec.train.latent_batch = latent_batch;
        // A learning-rate decay over the stages' last steps, stopped inside it, resumes exactly too.
        spec.train.aux.decay_steps = 3;
        spec.train.fm.decay_steps = 4;
        let dir = tmp(&format!("{prior:?}-{latent_batch}-full"));
        let (full_log, mut control) = recorder();
        // The latent stage's held-out scores (here at its last step) resume exactly too.
        let held_out = std::sync::Arc::new(dataset());
        control.held_out = Some(held_out.clone());
        let out = go(&spec, &data, &dir, "run", false, control).unwrap();
        assert!(matches!(out, RunOutcome::Finished { .. }));

        // The same run, stopped several times (mid-stage, right after a checkpoint, at a stage
        // boundary) and resumed each time.
        let dir2 = tmp(&format!("{prior:?}-{latent_batch}-parts"));
        let parts_log = Rc::new(RefCell::new(Vec::new()));
        let mut resume = false;
        let mut stops = stops.into_iter();
        loop {
            let l2 = parts_log.clone();
            let control = RunControl {
                on_step: Some(Box::new(move |s, _| l2.borrow_mut().push(*s))),
                stop_after: stops.next(),
                held_out: Some(held_out.clone()),
                ..Default::default()
            };
            let out = go(&spec, &data, &dir2, "run", resume, control).unwrap();
            resume = true;
            if matches!(out, RunOutcome::Finished { .. }) {
                break;
            }
        }
        let full = full_log.borrow();
        let parts = parts_log.borrow();
        assert_eq!(full.len(), parts.len(), "{prior:?}: step counts differ");
        for (a, b) in full.iter().zip(parts.iter()) {
            assert_eq!((a.stage, a.step), (b.stage, b.step));
            assert_eq!(a.loss.to_bits(), b.loss.to_bits(), "{prior:?}: loss differs at {:?} step {}", a.stage, a.step);
        }
        let p1 = Pipeline::<B>::load(dir.join("m.safetensors"), &Default::default()).unwrap();
        let p2 = Pipeline::<B>::load(dir2.join("m.safetensors"), &Default::default()).unwrap();
        assert_eq!(parameter_values(p1.networks()), parameter_values(p2.networks()));
        // The CSV log has each step exactly once, and the same held-out rows (LeDiFlow only).
        let csv = std::fs::read_to_string(dir2.join("run/losses.csv")).unwrap();
        let held = |csv: &str| -> Vec<String> {
            csv.lines()
                .filter(|l| l.starts_with("latent_held_out,"))
                .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
                .collect()
        };
        let held_full = held(&std::fs::read_to_string(dir.join("run/losses.csv")).unwrap());
        assert_eq!(held_full.len(), usize::from(prior == PriorKind::Learned), "{csv}");
        assert_eq!(held(&csv), held_full);
        assert_eq!(csv.lines().count(), 1 + full.len() + held_full.len());
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&dir2);
    }
}

#[test]
fn resume_refuses_different_settings_and_missing_checkpoints() {
    let data = dataset();
    let s = spec(PriorKind::Gaussian);
    let dir = tmp("refuse");
    let control = RunControl { stop_after: Some(2), ..Default::default() };
    go(&s, &data, &dir, "run", false, control).unwrap();
    let mut other = s.clone();
    other.train.seed = 6;
    other.model.dit.depth += 1;
    let err = go(&other, &data, &dir, "run", true, RunControl::default()).unwrap_err();
    // The message names each differing setting the way --set takes it.
    assert!(err.to_string().contains("different settings: "), "{err}");
    assert!(err.to_string().contains("train.seed (now 6, checkpoint "), "{err}");
    let depth = s.model.dit.depth;
    assert!(err.to_string().contains(&format!("dit.depth (now {}, checkpoint {depth})", depth + 1)), "{err}");
    assert!(!err.to_string().contains("model.dit"), "{err}");
    let err = go(&s, &data, &dir, "nothing", true, RunControl::default()).unwrap_err();
    assert!(err.to_string().contains("no checkpoint"), "{err}");
    // Held-out images of another size are refused before anything is written.
    let mut small = Dataset::new(8, 4);
    small.pixels = vec![0; 8 * 8 * 4];
    small.sources = vec!["small".into()];
    let control = RunControl { held_out: Some(std::sync::Arc::new(small)), ..Default::default() };
    let err = go(&s, &data, &dir, "sized", false, control).unwrap_err();
    assert!(err.to_string().contains("held-out images are 8x8 with 4 channels; the model takes 16x16"), "{err}");
    assert!(!dir.join("sized").exists());
    assert!(!dir.join("m.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The latent stage steps on the encoder's latents of the training images and of their
/// mirrors; a checkpoint from before `train.latent_batch` existed (a latent stage on images)
/// resumes with `--set train.latent_batch=0`, and the refusal says so.
#[test]
fn stored_latents_include_mirrors_and_older_checkpoints_resume_on_images() {
    let data = dataset();
    let s = spec(PriorKind::Learned);
    let dir = tmp("latent-batch");
    let in_latent = s.steps.aux + 2;
    let control = RunControl { stop_after: Some(in_latent), ..Default::default() };
    go(&s, &data, &dir, "run", false, control).unwrap();
    let path = dir.join("run/ckpt/state.json");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(state["stage"], "latent");
    // 6 training images and their 6 mirrors, drawn without further flips.
    assert_eq!(state["batcher"]["order"].as_array().unwrap().len(), 2 * data.len(), "{state}");
    assert_eq!(state["batcher"]["hflip"], false);

    // An older run: its latent stage encoded batches of images, and its state has no latent_batch.
    let mut old = s.clone();
    old.train.latent_batch = 0;
    let (old_log, control) = recorder();
    go(&old, &data, &dir, "full", false, control).unwrap();
    let control = RunControl { stop_after: Some(in_latent), ..Default::default() };
    go(&old, &data, &dir, "old", false, control).unwrap();
    let path = dir.join("old/ckpt/state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(state["batcher"]["order"].as_array().unwrap().len(), data.len());
    state["spec"]["train"].as_object_mut().unwrap().remove("latent_batch").unwrap();
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    let err = go(&s, &data, &dir, "old", true, RunControl::default()).unwrap_err();
    assert!(err.to_string().contains("train.latent_batch (now 256, checkpoint 0)"), "{err}");
    let (log, control) = recorder();
    go(&old, &data, &dir, "old", true, control).unwrap();
    let (full, rest) = (old_log.borrow(), log.borrow());
    assert_eq!(rest.len(), full.len() - in_latent);
    for (a, b) in full[in_latent..].iter().zip(rest.iter()) {
        assert_eq!((a.stage, a.step, a.loss.to_bits()), (b.stage, b.step, b.loss.to_bits()));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_folder_in_use_is_refused() {
    let data = dataset();
    let s = spec(PriorKind::Gaussian);
    let dir = tmp("locked");
    std::fs::create_dir_all(dir.join("run")).unwrap();
    // Another process's lock, as `train` takes it.
    let other =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("run/lock")).unwrap();
    other.lock().unwrap();
    let control = RunControl { stop_after: Some(1), ..Default::default() };
    let err = go(&s, &data, &dir, "run", false, control).unwrap_err();
    assert!(err.to_string().contains("in use by another training process"), "{err}");
    assert!(!dir.join("run/losses.csv").exists());
    drop(other);
    let control = RunControl { stop_after: Some(1), ..Default::default() };
    go(&s, &data, &dir, "run", false, control).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_finished_run_extends_with_more_steps_like_a_longer_run() {
    let data = dataset();
    for prior in [PriorKind::Learned, PriorKind::Gaussian] {
        let short = spec(prior);
        let mut long = short.clone();
        long.steps.fm += 4;
        let dir = tmp(&format!("{prior:?}-long"));
        let (long_log, control) = recorder();
        go(&long, &data, &dir, "run", false, control).unwrap();

        let dir2 = tmp(&format!("{prior:?}-extended"));
        let (ext_log, control) = recorder();
        assert!(matches!(go(&short, &data, &dir2, "run", false, control).unwrap(), RunOutcome::Finished { .. }));
        // Finished stages cannot change, and the current one cannot shrink below where it is.
        if prior == PriorKind::Learned {
            let mut bad = long.clone();
            bad.steps.aux += 1;
            let err = go(&bad, &data, &dir2, "run", true, RunControl::default()).unwrap_err();
            assert!(err.to_string().contains("stage aux is finished"), "{err}");
        }
        // With a learning-rate decay the count cannot change once the decay has begun.
        let mut decayed = short.clone();
        decayed.train.fm.decay_steps = 2;
        let dir3 = tmp(&format!("{prior:?}-decayed"));
        go(&decayed, &data, &dir3, "run", false, RunControl::default()).unwrap();
        let mut longer = decayed.clone();
        longer.steps.fm += 4;
        let err = go(&longer, &data, &dir3, "run", true, RunControl::default()).unwrap_err();
        assert!(err.to_string().contains("inside its learning-rate decay"), "{err}");
        let _ = std::fs::remove_dir_all(&dir3);
        let mut shrunk = short.clone();
        shrunk.steps.fm -= 1;
        let err = go(&shrunk, &data, &dir2, "run", true, RunControl::default()).unwrap_err();
        assert!(err.to_string().contains("already at step"), "{err}");
        // Resuming with the same counts just writes the model again.
        let (none_log, control) = recorder();
        go(&short, &data, &dir2, "run", true, control).unwrap();
        assert!(none_log.borrow().is_empty());
        let l2 = ext_log.clone();
        let control =
            RunControl { on_step: Some(Box::new(move |s, _| l2.borrow_mut().push(*s))), ..Default::default() };
        go(&long, &data, &dir2, "run", true, control).unwrap();

        let a = long_log.borrow();
        let b = ext_log.borrow();
        assert_eq!(a.len(), b.len(), "{prior:?}: step counts differ");
        for (x, y) in a.iter().zip(b.iter()) {
            assert_eq!((x.stage, x.step, x.loss.to_bits()), (y.stage, y.step, y.loss.to_bits()), "{prior:?}");
        }
        let p1 = Pipeline::<B>::load(dir.join("m.safetensors"), &Default::default()).unwrap();
        let p2 = Pipeline::<B>::load(dir2.join("m.safetensors"), &Default::default()).unwrap();
        assert_eq!(parameter_values(p1.networks()), parameter_values(p2.networks()));
        // Same final-loss record in both model files.
        let loss = |p: &Pipeline<B>| p.meta().provenance.training["final_losses_mean_of_last_100_steps"].clone();
        assert_eq!(loss(&p1), loss(&p2));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&dir2);
    }
}

/// Every parameter of the model file at `path`, by name.
fn params(path: &std::path::Path) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    parameter_values(Pipeline::<B>::load(path, &Default::default()).unwrap().networks())
}

#[test]
fn fine_tuning_starts_from_the_init_file() {
    let data = dataset();
    for prior in [PriorKind::Learned, PriorKind::Gaussian] {
        let base = spec(prior);
        let dir = tmp(&format!("{prior:?}-init"));
        go(&base, &data, &dir, "base", false, RunControl::default()).unwrap();
        let init_path = dir.join("init.safetensors");
        std::fs::rename(dir.join("m.safetensors"), &init_path).unwrap();
        let init_nets = params(&init_path);

        // Every stage at 0 steps: the output holds the file's networks unchanged.
        let mut copy = base.clone();
        copy.steps = StageSteps { aux: 0, latent: 0, fm: 0 };
        copy.init = Some(InitFrom::new(&init_path).unwrap());
        go(&copy, &data, &dir, "copy", false, RunControl::default()).unwrap();
        assert_eq!(params(&dir.join("m.safetensors")), init_nets);

        // Fine-tune only the image flow: the other networks stay as they are; the velocity
        // network moves, but only by a few Adam steps away from the file's weights (a fresh
        // network would differ by the scale of its initialisation).
        let mut tune = copy.clone();
        tune.steps.fm = 4;
        let (full_log, control) = recorder();
        go(&tune, &data, &dir, "tune", false, control).unwrap();
        let tuned = params(&dir.join("m.safetensors"));
        let mut moved = 0.0f32;
        for (name, (_, v)) in &init_nets {
            let w = &tuned[name].1;
            if name.starts_with("velocity") {
                let d = v.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(d < 5e-3, "{prior:?}: {name} moved {d} in 4 fine-tuning steps");
                moved = moved.max(d);
            } else {
                assert_eq!(v, w, "{prior:?}: {name} has 0 steps and must stay as in the file");
            }
        }
        assert!(moved > 0.0, "{prior:?}: the velocity network did not train");
        // With fresh_velocity the image flow starts from random weights instead: far from the
        // file's after the same 4 steps, while the other networks still come from the file.
        let mut fresh = tune.clone();
        fresh.init.as_mut().unwrap().fresh_velocity = true;
        fresh.train.seed += 1; // (the file's network started from the same seed's weights)
        go(&fresh, &data, &dir, "fresh", false, RunControl::default()).unwrap();
        let fresh_nets = params(&dir.join("m.safetensors"));
        let far = init_nets
            .iter()
            .filter(|(name, _)| name.starts_with("velocity"))
            .map(|(name, (_, v))| v.iter().zip(&fresh_nets[name].1).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max))
            .fold(0.0, f32::max);
        assert!(far > 5e-2, "{prior:?}: a fresh velocity network ended {far} from the file's");
        for (name, (_, v)) in init_nets.iter().filter(|(name, _)| !name.starts_with("velocity")) {
            assert_eq!(v, &fresh_nets[name].1, "{prior:?}: {name}");
        }
        // With fresh_latent (LeDiFlow) the latent flow starts from random weights and trains,
        // every other network comes from the file; a fresh latent flow needs steps.
        if prior == PriorKind::Learned {
            let mut relat = copy.clone();
            relat.steps.latent = 3;
            relat.init.as_mut().unwrap().fresh_latent = true;
            relat.train.seed += 1;
            go(&relat, &data, &dir, "relat", false, RunControl::default()).unwrap();
            let nets = params(&dir.join("m.safetensors"));
            let mut far = 0.0f32;
            for (name, (_, v)) in &init_nets {
                if name.starts_with("latent") {
                    far = far.max(v.iter().zip(&nets[name].1).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max));
                } else {
                    assert_eq!(v, &nets[name].1, "{name}");
                }
            }
            assert!(far > 5e-2, "a fresh latent flow ended {far} from the file's");
            // A fresh latent flow may take another shape; the file's latent flow may not.
            let mut wide = relat.clone();
            wide.model.latent.hidden *= 2;
            go(&wide, &data, &dir, "wide", false, RunControl::default()).unwrap();
            let nets = params(&dir.join("m.safetensors"));
            let grew = init_nets.iter().filter(|(n, _)| n.starts_with("latent")).any(|(n, (s, _))| nets[n].0 != *s);
            assert!(grew, "the wider latent flow kept the file's shapes");
            for (name, (_, v)) in init_nets.iter().filter(|(n, _)| !n.starts_with("latent")) {
                assert_eq!(v, &nets[name].1, "{name}");
            }
            wide.init.as_mut().unwrap().fresh_latent = false;
            let err = go(&wide, &data, &dir, "wide0", false, RunControl::default()).unwrap_err();
            assert!(err.to_string().contains("holds different networks"), "{err}");
            relat.steps.latent = 0;
            let err = go(&relat, &data, &dir, "relat0", false, RunControl::default()).unwrap_err();
            assert!(err.to_string().contains("a fresh latent flow must be trained"), "{err}");
        }
        // A per-pixel head added in fine-tuning (dit.pixel_head, which the file's network
        // lacks): the file's velocity network plus a head whose last convolution starts at zero,
        // so the first step's loss is bitwise the plain fine-tuning run's; then the head trains.
        let mut grow = tune.clone();
        grow.model.dit.pixel_head = 4;
        let (grow_log, control) = recorder();
        go(&grow, &data, &dir, "grow", false, control).unwrap();
        assert_eq!(grow_log.borrow()[0].loss.to_bits(), full_log.borrow()[0].loss.to_bits(), "{prior:?}");
        let grown = params(&dir.join("m.safetensors"));
        for (name, (_, v)) in init_nets.iter().filter(|(name, _)| name.starts_with("velocity")) {
            let d = v.iter().zip(&grown[name].1).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(d < 5e-3, "{prior:?}: {name} moved {d} in 4 fine-tuning steps with a new head");
        }
        let head_out = &grown["velocity.pixel_head.conv_out.weight"].1;
        assert!(head_out.iter().any(|w| *w != 0.0), "{prior:?}: the new head did not train");
        // Only the stage that trained reports a final loss.
        let p = Pipeline::<B>::load(dir.join("m.safetensors"), &Default::default()).unwrap();
        let losses = p.meta().provenance.training["final_losses_mean_of_last_100_steps"].as_object().unwrap().clone();
        assert_eq!(losses.keys().collect::<Vec<_>>(), vec!["fm"], "{prior:?}");

        // Interrupted and resumed, the fine-tuning run gives the same losses.
        let control = RunControl { stop_after: Some(2), ..Default::default() };
        assert!(matches!(go(&tune, &data, &dir, "tune2", false, control).unwrap(), RunOutcome::Interrupted { .. }));
        let (rest_log, control) = recorder();
        go(&tune, &data, &dir, "tune2", true, control).unwrap();
        let full = full_log.borrow();
        let rest = rest_log.borrow();
        assert_eq!(rest.len(), 2);
        for (a, b) in full[2..].iter().zip(rest.iter()) {
            assert_eq!((a.step, a.loss.to_bits()), (b.step, b.loss.to_bits()), "{prior:?}");
        }
        assert_eq!(params(&dir.join("m.safetensors")), tuned);

        // A file that changed since the run started is refused, before anything is touched.
        let control = RunControl { stop_after: Some(1), ..Default::default() };
        go(&tune, &data, &dir, "tune3", false, control).unwrap();
        let mut bytes = std::fs::read(&init_path).unwrap();
        bytes.push(0);
        std::fs::write(&init_path, bytes).unwrap();
        let err = go(&tune, &data, &dir, "tune3", true, RunControl::default()).unwrap_err();
        assert!(err.to_string().contains("changed since this run started"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn zero_step_stages_need_an_init_file_with_the_same_networks() {
    let data = dataset();
    let dir = tmp("init-errors");
    let mut s = spec(PriorKind::Learned);
    s.steps.latent = 0;
    let err = go(&s, &data, &dir, "run", false, RunControl::default()).unwrap_err();
    assert!(err.to_string().contains("stage latent has 0 steps"), "{err}");
    assert!(!dir.join("run").exists(), "a refused run must not create its folder");

    // A Gaussian-prior file cannot start a LeDiFlow run (no auxiliary model in it).
    go(&spec(PriorKind::Gaussian), &data, &dir, "gauss", false, RunControl::default()).unwrap();
    let mut s = spec(PriorKind::Learned);
    s.init = Some(InitFrom::new(&dir.join("m.safetensors")).unwrap());
    let err = go(&s, &data, &dir, "run", false, RunControl::default()).unwrap_err();
    assert!(err.to_string().contains("different networks"), "{err}");
    let err = InitFrom::new(&dir.join("missing.safetensors")).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");

    // Another velocity network shape on a LeDiFlow file's prior: that network must train.
    go(&spec(PriorKind::Learned), &data, &dir, "ledi", false, RunControl::default()).unwrap();
    let init_path = dir.join("ledi.safetensors");
    std::fs::rename(dir.join("m.safetensors"), &init_path).unwrap();
    let mut s = spec(PriorKind::Learned);
    s.init = Some(InitFrom::new(&init_path).unwrap());
    s.model.dit.depth += 1;
    s.steps = StageSteps { aux: 0, latent: 0, fm: 0 };
    let err = go(&s, &data, &dir, "wider", false, RunControl::default()).unwrap_err();
    assert!(err.to_string().contains("another shape"), "{err}");
    assert!(!dir.join("wider").exists(), "a refused run must not create its folder");
    // Any other config change is still refused.
    let mut other = s.clone();
    other.model.latent.hidden += 8;
    other.steps.fm = 2;
    let err = go(&other, &data, &dir, "other", false, RunControl::default()).unwrap_err();
    assert!(err.to_string().contains("different networks"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn init_with_a_new_velocity_network_keeps_the_files_prior() {
    let data = dataset();
    let dir = tmp("init-new-velocity");
    go(&spec(PriorKind::Learned), &data, &dir, "base", false, RunControl::default()).unwrap();
    let init_path = dir.join("init.safetensors");
    std::fs::rename(dir.join("m.safetensors"), &init_path).unwrap();
    let init_nets = params(&init_path);

    let mut s = spec(PriorKind::Learned);
    s.init = Some(InitFrom::new(&init_path).unwrap());
    s.model.dit.depth += 1;
    s.steps = StageSteps { aux: 0, latent: 0, fm: 3 };
    go(&s, &data, &dir, "run", false, RunControl::default()).unwrap();
    let out = Pipeline::<B>::load(dir.join("m.safetensors"), &Default::default()).unwrap();
    assert_eq!(out.meta().config, s.model);
    let nets = parameter_values(out.networks());
    let mut velocity = 0;
    for (name, v) in &nets {
        if name.starts_with("velocity") {
            velocity += 1;
        } else {
            assert_eq!(&init_nets[name], v, "{name} has 0 steps and must stay as in the file");
        }
    }
    let deeper = nets.keys().filter(|n| n.starts_with("velocity")).count();
    let before = init_nets.keys().filter(|n| n.starts_with("velocity")).count();
    assert!(velocity == deeper && deeper > before, "the velocity network has {deeper} tensors, the file's {before}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn export_writes_the_model_a_run_would_end_with_at_its_checkpoint() {
    use lediflow::train::run::{ExportedAt, export};
    let data = dataset();
    for prior in [PriorKind::Learned, PriorKind::Gaussian] {
        let long = spec(prior);
        let mut short = long.clone();
        short.steps.fm = 4;
        let before_fm = if prior == PriorKind::Learned { long.steps.aux + long.steps.latent } else { 0 };
        let dir = tmp(&format!("{prior:?}-export"));

        // A run interrupted in its fm stage exports bitwise the model a run with that many fm
        // steps writes at its end.
        let control = RunControl { stop_after: Some(before_fm + 4), ..Default::default() };
        assert!(matches!(go(&long, &data, &dir, "long", false, control).unwrap(), RunOutcome::Interrupted { .. }));
        let (nets, meta, at) = export::<B>(&dir.join("long"), &Default::default()).unwrap();
        assert_eq!(at, ExportedAt { step: 4, steps: long.steps.fm });
        assert_eq!(meta.provenance.training["exported_from_checkpoint"]["fm_step"], 4);
        go(&short, &data, &dir, "short", false, RunControl::default()).unwrap();
        let finished = Pipeline::<B>::load(dir.join("m.safetensors"), &Default::default()).unwrap();
        assert_eq!(parameter_values(&nets), parameter_values(finished.networks()), "{prior:?}");
        assert_eq!(
            meta.provenance.training["final_losses_mean_of_last_100_steps"].get("aux"),
            finished.meta().provenance.training["final_losses_mean_of_last_100_steps"].get("aux")
        );

        // What it exports samples like any model file.
        let path = dir.join("exported.safetensors");
        lediflow::checkpoint::save(&path, &nets, &meta).unwrap();
        let p = Pipeline::<B>::load(&path, &Default::default()).unwrap();
        let img = p.sample(2, &lediflow::SampleOptions { steps: 2, ..Default::default() }).unwrap();
        assert!(img.into_data().to_vec::<f32>().unwrap().iter().all(|v| v.is_finite()));

        // Before the fm stage there is nothing to sample with: a clear error, no file.
        if prior == PriorKind::Learned {
            let control = RunControl { stop_after: Some(3), ..Default::default() };
            go(&long, &data, &dir, "early", false, control).unwrap();
            let err = export::<B>(&dir.join("early"), &Default::default()).unwrap_err();
            assert!(err.to_string().contains("step 3 of 7 of stage aux"), "{err}");
        }
        let err = export::<B>(&dir.join("nothing"), &Default::default()).unwrap_err();
        assert!(err.to_string().contains("no checkpoint"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_deadline_stops_with_a_checkpoint_and_a_cool_down_can_be_added_before_it_starts() {
    // The recipe for a run of unknown speed: train without a decay until a wall-clock limit,
    // then resume with the count that is left plus a decay over it. That equals a run started
    // with that count and decay.
    let data = dataset();
    let short = spec(PriorKind::Gaussian);
    let mut target = short.clone();
    target.steps.fm += 4;
    target.train.fm.decay_steps = 3;
    let dir = tmp("cool-target");
    let (target_log, control) = recorder();
    go(&target, &data, &dir, "run", false, control).unwrap();

    let dir2 = tmp("cool-added");
    let (log, _) = recorder();
    let l2 = log.clone();
    let control = RunControl {
        deadline: Some(std::time::Instant::now()),
        on_step: Some(Box::new(move |s, _| l2.borrow_mut().push(*s))),
        ..Default::default()
    };
    let out = go(&short, &data, &dir2, "run", false, control).unwrap();
    assert_eq!(out, RunOutcome::Interrupted { stage: lediflow::train::run::Stage::Fm, step: 0 });
    assert!(!dir2.join("m.safetensors").exists());
    for s in [&short, &target] {
        let l2 = log.clone();
        let control =
            RunControl { on_step: Some(Box::new(move |s, _| l2.borrow_mut().push(*s))), ..Default::default() };
        assert!(matches!(go(s, &data, &dir2, "run", true, control).unwrap(), RunOutcome::Finished { .. }));
    }
    let (a, b) = (target_log.borrow(), log.borrow());
    assert_eq!(a.len(), 10);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b.iter()) {
        assert_eq!((x.stage, x.step, x.loss.to_bits()), (y.stage, y.step, y.loss.to_bits()));
    }
    let p1 = Pipeline::<B>::load(dir.join("m.safetensors"), &Default::default()).unwrap();
    let p2 = Pipeline::<B>::load(dir2.join("m.safetensors"), &Default::default()).unwrap();
    assert_eq!(parameter_values(p1.networks()), parameter_values(p2.networks()));
    // Once a decayed step was taken, the decay cannot change any more.
    let mut other = target.clone();
    other.train.fm.decay_steps = 1;
    let err = go(&other, &data, &dir2, "run", true, RunControl::default()).unwrap_err();
    assert!(err.to_string().contains("inside its learning-rate decay"), "{err}");
    // Nor can any other training setting.
    let mut lr = target.clone();
    lr.train.fm.lr *= 2.0;
    let err = go(&lr, &data, &dir2, "run", true, RunControl::default()).unwrap_err();
    assert!(err.to_string().contains("different settings"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}
