//! `train`: the loss log, fine-tuning, time limits and the arguments it refuses.

use crate::{fixture, lediflow, ok, refused, stderr, write_images};

#[test]
fn training_logs_every_step_and_the_held_out_latent_score() {
    let f = fixture();
    assert!(f.train_stderr.contains("6 images (4 for training, 2 held out)"), "{}", f.train_stderr);
    let csv = std::fs::read_to_string(f.run.join("losses.csv")).unwrap();
    // Every step, plus the latent flow's score on the held-out images' latents at its last step.
    assert_eq!(csv.lines().count(), 1 + 9 + 1, "{csv}");
    let held: Vec<&str> = csv.lines().filter(|l| l.starts_with("latent_held_out,")).collect();
    assert_eq!(held.len(), 1, "{csv}");
    assert!(held[0].starts_with("latent_held_out,3,"), "{csv}");
    assert!(held[0].split(',').nth(2).unwrap().parse::<f64>().unwrap().is_finite(), "{csv}");
    assert!(f.train_stderr.contains("latent step 3: flow loss on the held-out images' latents"));
}

#[test]
fn fine_tuning_starts_from_the_file_and_keeps_its_network_config() {
    let f = fixture();
    let dir = f.scratch("tune");
    let tuned = dir.join("tuned.safetensors");
    let finetune = |extra: &[&str], out: &std::path::Path| {
        let mut c = lediflow();
        c.args(["train", "--data"])
            .arg(&f.eval_data)
            .args(["--size", "16", "--batch", "4", "--steps-aux", "0", "--steps-latent", "0", "--steps-fm", "2"])
            .arg("--init")
            .arg(&f.model)
            .args(extra)
            .arg("--run-dir")
            .arg(dir.join("run"))
            .arg("--out")
            .arg(out);
        c
    };
    ok(&mut finetune(&["--set", "train.fm.lr=1e-4"], &tuned));
    let meta = lediflow::checkpoint::read_meta(&std::fs::read(&tuned).unwrap()).unwrap();
    assert_eq!(meta.config.dit.depth, 1);
    assert!(meta.provenance.training["run"]["init"]["path"].as_str().unwrap().ends_with("m.safetensors"));
    // Network config and prior come from the file: another prior, a preset or a model key is refused.
    let never = dir.join("never.safetensors");
    for (extra, msg) in [
        (&["--prior", "gaussian"][..], "has a Learned prior"),
        (&["--preset", "tiny"][..], "cannot be used with"),
        (&["--set", "aux.latent_dim=4"][..], "keeps the model file's network config"),
    ] {
        refused(&mut finetune(extra, &never), msg);
    }
    assert!(!never.exists());
    // Only the velocity network's shape may change; it then trains from scratch (a new run:
    // the folder of the one above is cleared first, or the run would be refused).
    std::fs::remove_dir_all(dir.join("run")).unwrap();
    ok(&mut finetune(&["--set", "dit.depth=2"], &tuned));
    assert_eq!(lediflow::checkpoint::read_meta(&std::fs::read(&tuned).unwrap()).unwrap().config.dit.depth, 2);
    // A latent-flow key only with a fresh latent flow.
    refused(&mut finetune(&["--set", "latent.hidden=16"], &never), "latent.* with --fresh-latent");
    // Retraining only the latent flow: the one way is `train --init --fresh-latent`, which may
    // also give it another shape.
    std::fs::remove_dir_all(dir.join("run")).unwrap();
    let relatent = dir.join("relatent.safetensors");
    let mut c = lediflow();
    c.args(["train", "--data"])
        .arg(&f.eval_data)
        .args(["--size", "16", "--steps-aux", "0", "--steps-latent", "4", "--steps-fm", "0", "--fresh-latent"])
        .args(["--set", "train.latent_batch=8", "--set", "latent.hidden=24", "--init"])
        .arg(&f.model)
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--out")
        .arg(&relatent);
    ok(&mut c);
    let m = lediflow::Pipeline::<lediflow::CpuBackend>::load(&relatent, &Default::default()).unwrap();
    assert_eq!(m.meta().config.latent.hidden, 24);
    let o = lediflow::SampleOptions { steps: 1, ..Default::default() };
    assert_eq!(m.sample(2, &o).unwrap().dims(), [2, 4, 16, 16]);
}

/// A class-conditional model fine-tunes on subfolders named after some of its classes, whatever
/// their order on disk; unlabelled data, or a class it lacks, is refused with its classes named.
#[test]
fn a_class_model_fine_tunes_on_some_of_its_classes() {
    let f = fixture();
    let dir = f.scratch("tune-classes");
    // A two-class model, floor and wall.
    for (k, name) in ["floor", "wall"].iter().enumerate() {
        write_images(&dir.join("data").join(name), 4, |i, x, _| [40 + 100 * k as u8 + i, x as u8, 0, 255]);
    }
    let train = |data: &std::path::Path, init: Option<&std::path::Path>, run: &str, out: &std::path::Path| {
        let mut c = lediflow();
        c.args(["train", "--data"]).arg(data).args(["--size", "16", "--batch", "4", "--val-every", "0"]);
        match init {
            Some(m) => c.args(["--steps-aux", "0", "--steps-latent", "2", "--steps-fm", "2", "--init"]).arg(m),
            None => c.args(["--classes", "--preset", "tiny", "--set", "dit.depth=1"]).args([
                "--steps-aux",
                "2",
                "--steps-latent",
                "2",
                "--steps-fm",
                "2",
            ]),
        };
        c.arg("--run-dir").arg(dir.join(run)).arg("--out").arg(out);
        c
    };
    let model = dir.join("classes.safetensors");
    ok(&mut train(&dir.join("data"), None, "run", &model));
    // Only "wall" images: labelled as the model's class 1.
    let some = dir.join("some");
    write_images(&some.join("wall"), 4, |i, x, y| [200 - i, x as u8, y as u8, 255]);
    let tuned = dir.join("tuned.safetensors");
    let out = ok(&mut train(&some, Some(&model), "run-tuned", &tuned));
    assert!(stderr(&out).contains("classes: floor 0, wall 4"), "{}", stderr(&out));
    let meta = lediflow::checkpoint::read_meta(&std::fs::read(&tuned).unwrap()).unwrap();
    assert_eq!(meta.config.classes.names, ["floor", "wall"]);
    // Unlabelled images, or a class the model lacks: refused, nothing written.
    let never = dir.join("never.safetensors");
    refused(&mut train(&f.data, Some(&model), "run-never", &never), "floor, wall");
    write_images(&some.join("zebra"), 4, |i, _, _| [i, 0, 0, 255]);
    refused(&mut train(&some, Some(&model), "run-never", &never), "zebra");
    assert!(!never.exists());
}

#[test]
fn bad_training_arguments_are_refused_before_anything_is_written() {
    let f = fixture();
    let dir = f.scratch("bad-train");
    let train = |extra: &[&str]| {
        let mut c = lediflow();
        c.args(["train", "--data"]).arg(&f.data).args(extra);
        c
    };
    let (x, x_st) = (dir.join("x"), dir.join("x.st"));
    let xs = ["--run-dir", x.to_str().unwrap(), "--out", x_st.to_str().unwrap()];
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    refused(lediflow().args(["train", "--data"]).arg(&empty).args(xs), "no PNG or JPEG");
    refused(&mut train(&[&["--set", "dit.nope=3"][..], &xs].concat()), "unknown key 'nope'");
    refused(
        &mut train(&[&["--size", "16", "--set", "train.latent.weight_decay=-0.1"][..], &xs].concat()),
        "train.latent: weight_decay must be at least 0",
    );
    refused(&mut train(&[&["--time-limit=-1"][..], &xs].concat()), "--time-limit must be");
    refused(
        &mut train(&[&["--size", "16", "--channels", "4", "--batch", "100000000"][..], &xs].concat()),
        "batch size must be in 1..=65536",
    );
    refused(&mut train(&[&["--size", "16", "--val-every", "1"][..], &xs].concat()), "the training set is empty");
    assert!(!x.exists(), "a refused run leaves no folder behind");
    // A fine-tuning run must not overwrite its own init file.
    refused(
        lediflow()
            .args(["train", "--data"])
            .arg(&f.data)
            .args(["--size", "16", "--channels", "4", "--steps-aux", "0", "--steps-latent", "0", "--init"])
            .arg(&f.model)
            .arg("--out")
            .arg(&f.model)
            .args(["--run-dir", x.to_str().unwrap()]),
        "--out must differ from --init",
    );
    // A fresh run into a folder holding another run's checkpoint is refused, and that run's
    // loss log is left as it was.
    let log_before = std::fs::read_to_string(f.run.join("losses.csv")).unwrap();
    refused(
        lediflow()
            .args(["train", "--data"])
            .arg(&f.data)
            .args(["--size", "16", "--channels", "4", "--preset", "tiny", "--batch", "4", "--steps-fm", "3"])
            .args(["--prior", "gaussian", "--run-dir"])
            .arg(&f.run)
            .arg("--out")
            .arg(dir.join("other.safetensors")),
        "holds another run's checkpoint: resume it (add --resume)",
    );
    assert_eq!(std::fs::read_to_string(f.run.join("losses.csv")).unwrap(), log_before);
}

#[test]
fn a_time_limit_stops_with_a_checkpoint_and_resume_finishes() {
    let f = fixture();
    let dir = f.scratch("timed");
    // Its own copy of the data: this test changes an image.
    let data = dir.join("data");
    write_images(&data, 6, |i, x, y| [i * 40, (x * 16) as u8, (y * 16) as u8, 255]);
    let timed = |extra: &[&str]| {
        lediflow()
            .args(["train", "--data"])
            .arg(&data)
            .args(["--size", "16", "--channels", "4", "--preset", "tiny", "--batch", "4", "--prior", "gaussian"])
            .args(["--steps-fm", "3", "--val-every", "3", "--run-dir"])
            .arg(dir.join("run"))
            .arg("--out")
            .arg(dir.join("timed.safetensors"))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = timed(&["--time-limit", "0"]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(stderr(&out).contains("time limit reached: stopped in stage fm at step 0"));
    assert!(dir.join("run/ckpt/state.json").is_file() && !dir.join("timed.safetensors").exists());
    // Same number of images, one of them changed: not the same run any more.
    let first = data.join("0.png");
    let original = std::fs::read(&first).unwrap();
    image::RgbaImage::from_pixel(16, 16, image::Rgba([1, 2, 3, 255])).save(&first).unwrap();
    let out = timed(&["--resume"]);
    assert!(stderr(&out).contains("training data differ from the checkpoint's"), "{}", stderr(&out));
    std::fs::write(&first, original).unwrap();
    let out = timed(&["--resume"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.join("timed.safetensors").is_file());
}
