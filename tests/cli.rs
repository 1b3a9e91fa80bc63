//! The `lediflow` binary end to end on a tiny model: train from a folder, sample a grid and
//! single PNGs, print info, and fail clearly on bad input.

use std::process::Command;

fn lediflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lediflow"))
}

#[test]
fn train_sample_info_round_trip() {
    let dir = std::env::temp_dir().join(format!("lediflow-cli-{}", std::process::id()));
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..6u8 {
        let img = image::RgbaImage::from_fn(16, 16, |x, y| image::Rgba([i * 40, (x * 16) as u8, (y * 16) as u8, 255]));
        img.save(data.join(format!("{i}.png"))).unwrap();
    }
    let model = dir.join("m.safetensors");
    let out = lediflow()
        .args(["train", "--data"])
        .arg(&data)
        .args(["--size", "16", "--channels", "4", "--preset", "tiny", "--batch", "4"])
        .args(["--steps-aux", "3", "--steps-latent", "3", "--steps-fm", "3", "--val-every", "3"])
        .args(["--set", "dit.depth=1", "--set", "train.beta_kl=0.01", "--run-dir"])
        .arg(dir.join("run"))
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "train failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("6 images (4 for training, 2 held out)"));
    let csv = std::fs::read_to_string(dir.join("run/losses.csv")).unwrap();
    // Every step, plus the latent flow's score on the held-out images' latents at its last step.
    assert_eq!(csv.lines().count(), 1 + 9 + 1, "{csv}");
    let held: Vec<&str> = csv.lines().filter(|l| l.starts_with("latent_held_out,")).collect();
    assert_eq!(held.len(), 1, "{csv}");
    assert!(held[0].starts_with("latent_held_out,3,"), "{csv}");
    assert!(held[0].split(',').nth(2).unwrap().parse::<f64>().unwrap().is_finite(), "{csv}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("latent step 3: flow loss on the held-out images' latents"));

    let info = lediflow().args(["info", "--model"]).arg(&model).output().unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success());
    assert!(text.contains("prior:          learned") && text.contains("16x16, 4 channels"), "{text}");
    assert!(text.contains("\"depth\": 1") && text.contains("\"beta_kl\": 0.0099999"), "{text}");

    // The run's last checkpoint exports as a model file (f16 here) that samples like the run's own.
    let exported = dir.join("exported.safetensors");
    let out = lediflow()
        .args(["export", "--fp16", "--run-dir"])
        .arg(dir.join("run"))
        .arg("--out")
        .arg(&exported)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("image flow at step 3 of 3"));
    let info = lediflow().args(["info", "--model"]).arg(&exported).output().unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("\"fm_step\": 3"), "{text}");
    assert!(std::fs::metadata(&exported).unwrap().len() < std::fs::metadata(&model).unwrap().len());
    let out = lediflow()
        .args(["export", "--run-dir"])
        .arg(dir.join("no-run"))
        .arg("--out")
        .arg(dir.join("x.safetensors"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no checkpoint"));
    assert!(!dir.join("x.safetensors").exists());

    // convert records a recommended time shift; info shows it; sample uses it by default.
    let info = lediflow().args(["info", "--model"]).arg(&model).output().unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("time shift:     1 (no recommendation"));
    let shifted = dir.join("shifted.safetensors");
    let convert = |t: &str| {
        lediflow()
            .args(["convert", "--time-shift", t, "--model"])
            .arg(&model)
            .arg("--out")
            .arg(&shifted)
            .output()
            .unwrap()
    };
    let out = convert("1000");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("time_shift must be in [0.01, 100], got 1000"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!shifted.exists());
    assert!(convert("3").status.success());
    let info = lediflow().args(["info", "--model"]).arg(&shifted).output().unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("time shift:     3 (recommended"));
    let grid = |m: &std::path::Path, extra: &[&str]| {
        let png = dir.join("g.png");
        let out = lediflow()
            .args(["sample", "--count", "2", "--model"])
            .arg(m)
            .args(extra)
            .arg("--out")
            .arg(&png)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read(&png).unwrap()
    };
    // (This 3-step model's velocity is still close to its zero init, so only equality is
    // checked here; tests/pipeline.rs checks that the shift changes samples.)
    assert!(grid(&shifted, &[]) == grid(&model, &["--time-shift", "3"]));

    // A reader that closes the pipe early (`lediflow info | head -1`) ends the tool quietly
    // instead of making it panic.
    let mut child = lediflow()
        .args(["info", "--model"])
        .arg(&model)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() != Some(101) && !err.contains("panicked"), "{err}");

    let grid = dir.join("grid.png");
    let singles = dir.join("singles");
    let out = lediflow()
        .args(["sample", "--model"])
        .arg(&model)
        .args(["--count", "5", "--steps", "2", "--solver", "heun", "--columns", "3", "--out"])
        .arg(&grid)
        .arg("--out-dir")
        .arg(&singles)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let g = image::open(&grid).unwrap();
    assert_eq!((g.width(), g.height()), (3 * 17 + 1, 2 * 17 + 1));
    assert_eq!(std::fs::read_dir(&singles).unwrap().count(), 5);
    assert_eq!(image::open(singles.join("sample_0000.png")).unwrap().color(), image::ColorType::Rgba8);

    // Interpolation between two images (encoded) and between two seeds: one row of frames.
    let strip = dir.join("strip.png");
    let frames = dir.join("frames");
    let out = lediflow()
        .args(["interpolate", "--model"])
        .arg(&model)
        .args(["--frames", "4", "--steps", "1", "--from"])
        .arg(singles.join("sample_0000.png"))
        .arg("--to")
        .arg(singles.join("sample_0001.png"))
        .arg("--out")
        .arg(&strip)
        .arg("--out-dir")
        .arg(&frames)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let g = image::open(&strip).unwrap();
    assert_eq!((g.width(), g.height()), (4 * 17 + 1, 17 + 1));
    assert_eq!(std::fs::read_dir(&frames).unwrap().count(), 4);
    let out = lediflow()
        .args(["interpolate", "--model"])
        .arg(&model)
        .args(["--frames", "3", "--from-seed", "1", "--to-seed", "2", "--mode", "spherical", "--out"])
        .arg(&strip)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = lediflow().args(["interpolate", "--model"]).arg(&model).arg("--out").arg(&strip).output().unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--from-seed"));

    // Inpainting a rectangle: the pixels outside it come back unchanged.
    let filled = dir.join("filled");
    let src = singles.join("sample_0002.png");
    let out = lediflow()
        .args(["inpaint", "--model"])
        .arg(&model)
        .arg("--image")
        .arg(&src)
        .args(["--region", "4,4,8,8", "--count", "2", "--steps", "2", "--out-dir"])
        .arg(&filled)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = image::open(&src).unwrap().to_rgba8();
    for i in 0..2 {
        let after = image::open(filled.join(format!("inpaint_{i:04}.png"))).unwrap().to_rgba8();
        for (x, y, p) in after.enumerate_pixels() {
            let inside = (4..12).contains(&x) && (4..12).contains(&y);
            if !inside {
                assert_eq!(p, before.get_pixel(x, y), "pixel ({x}, {y}) outside the region changed");
            }
        }
    }
    let bad = lediflow()
        .args(["inpaint", "--model"])
        .arg(&model)
        .arg("--image")
        .arg(&src)
        .args(["--region", "10,10,20,20", "--out"])
        .arg(&strip)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("leaves the 16x16 image"));
    // Numbers that would wrap x + w past the check; a count beyond what sampling accepts,
    // refused before the repeated image is allocated.
    for (region, count, want) in [
        ("18446744073709551615,0,1,1", "1", "leaves the 16x16 image"),
        ("0,0,18446744073709551615,1", "1", "leaves the 16x16 image"),
        ("4,4,8,8", "100000000", "--count must be in 1..=65536"),
    ] {
        let bad = lediflow()
            .args(["inpaint", "--model"])
            .arg(&model)
            .arg("--image")
            .arg(&src)
            .args(["--region", region, "--count", count, "--out"])
            .arg(&strip)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(!bad.status.success() && err.contains(want) && !err.contains("panicked"), "{region}: {err}");
    }

    // Evaluation against a held-out split: a markdown row per (solver, steps) and a JSON file.
    let eval_data = dir.join("eval-data");
    std::fs::create_dir_all(&eval_data).unwrap();
    for i in 0..12u8 {
        let img = image::RgbaImage::from_fn(16, 16, |x, y| image::Rgba([i * 20, (x * 16) as u8, (y * 9) as u8, 200]));
        img.save(eval_data.join(format!("{i}.png"))).unwrap();
    }
    let json = dir.join("eval.json");
    let out = lediflow()
        .args(["eval", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&eval_data)
        .args(["--size", "16", "--val-every", "2", "--count", "5"])
        .args(["--steps", "1,2", "--solver", "euler,heun", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.lines().filter(|l| l.starts_with("| euler") || l.starts_with("| heun")).count(), 4, "{table}");
    assert!(table.contains("| heun | 2 | 4 |"), "{table}");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["results"].as_array().unwrap().len(), 4);
    assert!(doc["results"][0]["report"]["swd"].as_f64().unwrap() > 0.0);
    // The real-data floor: training images scored like samples, as the last row and in the JSON.
    assert!(table.contains("| real training tiles (5) |"), "{table}");
    assert_eq!(doc["real_floor"]["images"], 5);
    assert!(doc["real_floor"]["report"]["swd"].as_f64().unwrap() >= 0.0);
    // Several seeds: one sample set each, every metric as mean ± sd, each seed's report in the JSON.
    let out = lediflow()
        .args(["eval", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&eval_data)
        .args(["--size", "16", "--val-every", "2", "--count", "5", "--steps", "1", "--seed", "0,1,7", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table.lines().find(|l| l.starts_with("| midpoint | 1 | 2 |")).expect("the midpoint row");
    assert_eq!(row.matches(" ± ").count(), 6, "{row}");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["seeds"], serde_json::json!([0, 1, 7]));
    let per_seed = doc["results"][0]["per_seed"].as_array().unwrap();
    assert_eq!(per_seed.len(), 3);
    let swds: Vec<f64> = per_seed.iter().map(|r| r["report"]["swd"].as_f64().unwrap()).collect();
    let mean = swds.iter().sum::<f64>() / 3.0;
    assert!((doc["results"][0]["report"]["swd"].as_f64().unwrap() - mean).abs() < 1e-9);
    assert!(swds[0] != swds[1], "different seeds must draw different samples: {swds:?}");
    assert!(doc["results"][0]["sd"]["swd"].as_f64().unwrap() > 0.0);
    let bad = lediflow()
        .args(["eval", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&eval_data)
        .args(["--size", "16", "--val-every", "2", "--seed", "0,x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad --seed"), "{}", String::from_utf8_lossy(&bad.stderr));
    // Every image held out: no training images to draw latents from or to measure copying against.
    let bad = lediflow()
        .args(["eval", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&eval_data)
        .args(["--size", "16", "--val-every", "1", "--latents", "train"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("training split has fewer than 2 images") && !err.contains("panicked"), "{err}");
    let bad = lediflow()
        .args(["retrain-latent", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&eval_data)
        .args(["--size", "16", "--val-every", "1", "--steps", "2", "--out"])
        .arg(dir.join("retrained.safetensors"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("training split is empty") && !err.contains("panicked"), "{err}");
    // Diagnostic: the encoder's latents of training images instead of the latent flow.
    let diag = lediflow()
        .args(["eval", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&eval_data)
        .args(["--size", "16", "--val-every", "2", "--count", "5", "--latents", "train"])
        .args(["--prior-scale", "0,0.5", "--time-shift", "1,3"])
        .output()
        .unwrap();
    assert!(diag.status.success(), "{}", String::from_utf8_lossy(&diag.stderr));
    let table = String::from_utf8_lossy(&diag.stdout);
    // One row per (prior scale, time shift), those two in the last columns.
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| midpoint | 4 | 8 |")).collect();
    assert_eq!(rows.len(), 4, "{table}");
    for (row, end) in rows.iter().zip(["| 0 | 1 |", "| 0 | 3 |", "| 0.5 | 1 |", "| 0.5 | 3 |"]) {
        assert!(row.ends_with(end), "{table}");
    }
    let bad = lediflow()
        .args(["eval", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&eval_data)
        .args(["--size", "16", "--val-every", "2", "--prior-scale", "1,-1"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("prior_scale must be"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let bad = lediflow()
        .args(["eval", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&eval_data)
        .args(["--size", "16", "--val-every", "2", "--time-shift", "3,0"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("time_shift must be"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let bad = lediflow()
        .args(["eval", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&eval_data)
        .args(["--size", "16", "--val-every", "2", "--latents", "prior"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--latents must be flow or train"));

    // Retraining only the latent flow writes a new, loadable model with the record in its metadata.
    let retrained = dir.join("retrained.safetensors");
    let out = lediflow()
        .args(["retrain-latent", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&eval_data)
        .args(["--size", "16", "--val-every", "2", "--steps", "3", "--batch", "4", "--out"])
        .arg(&retrained)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&lediflow().args(["info", "--model"]).arg(&retrained).output().unwrap().stdout)
        .to_string();
    assert!(text.contains("latent_retrained"), "{text}");
    // ... also with a latent flow of another size, which the file records and loads back.
    let resized = dir.join("resized.safetensors");
    let out = lediflow()
        .args(["retrain-latent", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&eval_data)
        .args(["--size", "16", "--val-every", "2", "--steps", "2", "--batch", "4", "--hidden", "24", "--blocks", "1"])
        .args(["--target", "sample", "--hflip", "--decay-steps", "2", "--weight-decay", "0.01"])
        .arg("--out")
        .arg(&resized)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta = lediflow::checkpoint::read_meta(&std::fs::read(&resized).unwrap()).unwrap();
    assert_eq!((meta.config.latent.hidden, meta.config.latent.blocks), (24, 1));
    assert_eq!(meta.provenance.training["latent_retrained"]["target"], "sample");
    assert_eq!(meta.provenance.training["latent_retrained"]["decay_steps"], 2);
    assert_eq!(meta.provenance.training["latent_retrained"]["weight_decay"], 0.01);
    // --hflip: the training images and their mirrors.
    let plain = lediflow::checkpoint::read_meta(&std::fs::read(&retrained).unwrap()).unwrap();
    let images = |m: &lediflow::checkpoint::ModelMeta| m.provenance.training["latent_retrained"]["images"].as_u64();
    assert_eq!(images(&meta), images(&plain).map(|n| 2 * n));
    assert_eq!(meta.provenance.training["latent_retrained"]["hflip"], true);
    // Early stopping: every 3rd training image left out, the held-out flow loss logged every
    // 2 steps, and the EMA weights of the row with the lowest one written.
    // retrain-latent on the test data (size 16, every 2nd image held out) with `extra` flags.
    let retrain = |extra: &[&str], out: &std::path::Path| {
        lediflow()
            .args(["retrain-latent", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(&eval_data)
            .args(["--size", "16", "--val-every", "2"])
            .args(extra)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let stopped = dir.join("stopped.safetensors");
    let csv = dir.join("monitor.csv");
    let csv_arg = csv.to_str().unwrap();
    let early = ["--steps", "7", "--batch", "4", "--lr", "0.05", "--monitor-every", "2", "--holdout-every", "3"];
    let out = retrain(&[&early[..], &["--keep-best", "--log", csv_arg]].concat(), &stopped);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "step,train_loss,train_probe,validation_probe,holdout_probe", "{log}");
    let rows: Vec<Vec<f64>> = lines[1..].iter().map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows.iter().map(|r| r[0] as usize).collect::<Vec<_>>(), [2, 4, 6, 7], "{log}");
    assert!(rows.iter().flatten().all(|v| v.is_finite()), "{log}");
    let best = rows.iter().min_by(|a, b| a[4].total_cmp(&b[4])).unwrap();
    let record = &lediflow::checkpoint::read_meta(&std::fs::read(&stopped).unwrap()).unwrap().provenance.training["latent_retrained"];
    assert_eq!(record["kept_step"].as_u64(), Some(best[0] as u64), "{log}\n{record}");
    assert_eq!(record["holdout_every"], 3);
    assert_eq!(record["monitor"].as_array().map(|m| m.len()), Some(4));
    // A third of the training split sits out (index % 3 == 2 of the training images).
    let all = images(&plain).unwrap() as usize;
    assert_eq!(record["images"].as_u64(), Some((all - all / 3) as u64), "{record}");
    // A long monitor curve is thinned in the file (the CSV keeps every row).
    let out = retrain(&["--steps", "401", "--batch", "4", "--monitor-every", "1", "--log", csv_arg], &stopped);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 1 + 401);
    let meta = lediflow::checkpoint::read_meta(&std::fs::read(&stopped).unwrap()).unwrap();
    let rows = meta.provenance.training["latent_retrained"]["monitor"].as_array().unwrap().clone();
    assert!(rows.len() <= 201 && rows.len() >= 100, "{}", rows.len());
    assert_eq!((rows[0]["step"].as_u64(), rows.last().unwrap()["step"].as_u64()), (Some(1), Some(401)));
    for (args, msg) in [
        (&["--keep-best", "--monitor-every", "0"][..], "--keep-best and --log need --monitor-every above 0"),
        (&["--holdout-every", "1"][..], "--holdout-every 1 would leave no training image"),
        (&["--weight-decay=-1"][..], "weight_decay must be at least 0"),
        (&["--lr", "0.5", "--weight-decay", "2"][..], "weight_decay must be at least 0 and below 1 / lr"),
    ] {
        let bad = retrain(args, &dir.join("never.safetensors"));
        assert!(String::from_utf8_lossy(&bad.stderr).contains(msg), "{}", String::from_utf8_lossy(&bad.stderr));
        assert!(!dir.join("never.safetensors").exists());
    }
    let bad = retrain(&["--target", "median"], &dir.join("never.safetensors"));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--target must be mean or sample"));
    assert!(!dir.join("never.safetensors").exists());
    let bad = retrain(&["--steps", "3", "--decay-steps", "4"], &dir.join("never.safetensors"));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--decay-steps (4) cannot exceed --steps (3)"));
    assert!(!dir.join("never.safetensors").exists());
    let out = lediflow()
        .args(["sample", "--model"])
        .arg(&resized)
        .args(["--count", "2", "--out"])
        .arg(dir.join("resized.png"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = lediflow()
        .args(["retrain-latent", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(&eval_data)
        .args(["--size", "16", "--out"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--out must differ"));
    let bad = lediflow().args(["eval", "--model"]).arg(&model).arg("--data").arg(&eval_data).output().unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--size 16"), "{}", String::from_utf8_lossy(&bad.stderr));

    // Fine-tuning: start from the trained file on other images, training only the image flow.
    // Network config and prior come from the file; a different prior, a preset or a model key
    // is refused.
    let tuned = dir.join("tuned.safetensors");
    let finetune = |extra: &[&str], out: &std::path::Path| {
        lediflow()
            .args(["train", "--data"])
            .arg(&eval_data)
            .args(["--size", "16", "--batch", "4", "--steps-aux", "0", "--steps-latent", "0", "--steps-fm", "2"])
            .arg("--init")
            .arg(&model)
            .args(extra)
            .arg("--run-dir")
            .arg(dir.join("tune-run"))
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let out = finetune(&["--set", "train.fm.lr=1e-4"], &tuned);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta = lediflow::checkpoint::read_meta(&std::fs::read(&tuned).unwrap()).unwrap();
    assert_eq!(meta.config.dit.depth, 1);
    assert!(meta.provenance.training["run"]["init"]["path"].as_str().unwrap().ends_with("m.safetensors"));
    let never = dir.join("never.safetensors");
    for (extra, msg) in [
        (&["--prior", "gaussian"][..], "has a Learned prior"),
        (&["--preset", "tiny"][..], "cannot be used with"),
        (&["--set", "aux.latent_dim=4"][..], "keeps the model file's network config"),
    ] {
        let bad = finetune(extra, &never);
        assert!(String::from_utf8_lossy(&bad.stderr).contains(msg), "{}", String::from_utf8_lossy(&bad.stderr));
    }
    assert!(!never.exists());
    // Only the velocity network's shape may change; it then trains from scratch (a new run:
    // the folder of the one above is cleared first, or the run would be refused).
    std::fs::remove_dir_all(dir.join("tune-run")).unwrap();
    let out = finetune(&["--set", "dit.depth=2"], &tuned);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lediflow::checkpoint::read_meta(&std::fs::read(&tuned).unwrap()).unwrap().config.dit.depth, 2);

    // Bad input: clear messages, non-zero status.
    let bad = lediflow()
        .args(["sample", "--model"])
        .arg(dir.join("missing.safetensors"))
        .arg("--out")
        .arg(&grid)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("missing.safetensors"));
    let bad = lediflow()
        .args(["sample", "--model"])
        .arg(&model)
        .args(["--solver", "rk5", "--out"])
        .arg(&grid)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown solver"));
    let bad = lediflow()
        .args(["sample", "--model"])
        .arg(&model)
        .args(["--latent-steps", "0", "--out"])
        .arg(&grid)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("latent_steps must be in 1..="));
    // The latent flow's step count reaches the sampler: another count, other latents, other
    // images (the shipped model: a 3-step tiny one's latent flow barely moves its latents).
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/dcss-small-ledi.safetensors");
    let sample_with = |latent_steps: &str, out: &std::path::Path| {
        let o = lediflow()
            .args(["sample", "--model"])
            .arg(&shipped)
            .args(["--count", "2", "--steps", "1", "--latent-steps", latent_steps, "--out"])
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(out).unwrap()
    };
    let (one, one_again, many) = (
        sample_with("1", &dir.join("ls1.png")),
        sample_with("1", &dir.join("ls1b.png")),
        sample_with("8", &dir.join("ls8.png")),
    );
    assert_eq!(one, one_again);
    assert_ne!(one, many);
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let bad = lediflow()
        .args(["train", "--data"])
        .arg(&empty)
        .args(["--run-dir", "/tmp/x", "--out", "/tmp/x.st"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no PNG or JPEG"));
    let bad = lediflow()
        .args(["train", "--data"])
        .arg(&data)
        .args(["--set", "dit.nope=3", "--run-dir", "/tmp/x", "--out", "/tmp/x.st"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown key 'nope'"));
    let run_dir = dir.join("never-run");
    let bad = lediflow()
        .args(["train", "--data"])
        .arg(&data)
        .args(["--size", "16", "--set", "train.latent.weight_decay=-0.1", "--run-dir"])
        .arg(&run_dir)
        .args(["--out", "/tmp/x.st"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("train.latent: weight_decay must be at least 0"), "{err}");
    assert!(!run_dir.exists(), "a refused run leaves no folder behind");
    let bad = lediflow()
        .args(["train", "--data"])
        .arg(&data)
        .args(["--time-limit=-1", "--run-dir", "/tmp/x", "--out", "/tmp/x.st"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--time-limit must be"));
    let bad = lediflow()
        .args(["train", "--data"])
        .arg(&data)
        .args(["--size", "16", "--channels", "4", "--batch", "100000000", "--run-dir", "/tmp/x", "--out", "/tmp/x.st"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("batch size must be in 1..=65536"));
    // A fine-tuning run must not overwrite its own init file.
    let bad = lediflow()
        .args(["train", "--data"])
        .arg(&data)
        .args(["--size", "16", "--channels", "4", "--steps-aux", "0", "--steps-latent", "0", "--init"])
        .arg(&model)
        .arg("--out")
        .arg(&model)
        .args(["--run-dir", "/tmp/x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--out must differ from --init"));
    // A fresh run into a folder holding another run's checkpoint is refused, and that run's
    // loss log is left as it was.
    let log_before = std::fs::read_to_string(dir.join("run/losses.csv")).unwrap();
    let bad = lediflow()
        .args(["train", "--data"])
        .arg(&data)
        .args(["--size", "16", "--channels", "4", "--preset", "tiny", "--batch", "4", "--steps-fm", "3"])
        .args(["--prior", "gaussian", "--run-dir"])
        .arg(dir.join("run"))
        .arg("--out")
        .arg(dir.join("other.safetensors"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("holds another run's checkpoint: add --resume"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert_eq!(std::fs::read_to_string(dir.join("run/losses.csv")).unwrap(), log_before);

    // A time limit stops with a checkpoint and status 124; --resume finishes the run.
    let timed = |extra: &[&str]| {
        lediflow()
            .args(["train", "--data"])
            .arg(&data)
            .args(["--size", "16", "--channels", "4", "--preset", "tiny", "--batch", "4", "--prior", "gaussian"])
            .args(["--steps-fm", "3", "--val-every", "3", "--run-dir"])
            .arg(dir.join("timed"))
            .arg("--out")
            .arg(dir.join("timed.safetensors"))
            .args(extra)
            .output()
            .unwrap()
    };
    let out = timed(&["--time-limit", "0"]);
    assert_eq!(out.status.code(), Some(124), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("time limit reached: stopped in stage fm at step 0"));
    assert!(dir.join("timed/ckpt/state.json").is_file() && !dir.join("timed.safetensors").exists());
    // Same number of images, one of them changed: not the same run any more.
    let first = data.join("0.png");
    let original = std::fs::read(&first).unwrap();
    image::RgbaImage::from_pixel(16, 16, image::Rgba([1, 2, 3, 255])).save(&first).unwrap();
    let out = timed(&["--resume"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("training data differ from the checkpoint's"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&first, original).unwrap();
    let out = timed(&["--resume"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.join("timed.safetensors").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ctrl-C (SIGINT) and SIGTERM stop a training run with a checkpoint and exit status 130; the
/// same command plus `--resume` continues it, and the loss log has every step exactly once.
#[cfg(unix)]
#[test]
fn a_signal_stops_training_with_a_checkpoint_that_resumes() {
    let dir = std::env::temp_dir().join(format!("lediflow-cli-signal-{}", std::process::id()));
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..6u8 {
        let img = image::RgbaImage::from_fn(16, 16, |x, y| image::Rgba([i * 40, (x * 16) as u8, (y * 16) as u8, 255]));
        img.save(data.join(format!("{i}.png"))).unwrap();
    }
    let run = dir.join("run");
    let train = |steps: usize, resume: bool| {
        let mut c = lediflow();
        c.args(["train", "--data"])
            .arg(&data)
            .args(["--size", "16", "--channels", "4", "--preset", "tiny", "--batch", "4", "--prior", "gaussian"])
            .args(["--set", "dit.depth=1", "--checkpoint-every", "0", "--val-every", "3"])
            .args(["--steps-fm", &steps.to_string(), "--run-dir"])
            .arg(&run)
            .arg("--out")
            .arg(dir.join("m.safetensors"))
            .stderr(std::process::Stdio::piped());
        if resume {
            c.arg("--resume");
        }
        c
    };
    let fm_steps = || -> Vec<usize> {
        std::fs::read_to_string(run.join("losses.csv"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("fm,"))
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect()
    };
    let mut resume = false;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // Far more steps than it gets to: only the signal stops it.
        let child = train(1_000_000, resume).spawn().unwrap();
        let before = fm_steps().len();
        let t0 = std::time::Instant::now();
        // Wait for steps of this invocation in the log (the handler is installed by then).
        while fm_steps().len() < before + 5 {
            assert!(t0.elapsed().as_secs() < 120, "no training steps logged");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{err}");
        assert!(err.contains("saving a checkpoint") && err.contains("plus --resume"), "{err}");
        assert!(run.join("ckpt/state.json").is_file(), "no checkpoint after the signal");
        assert!(!dir.join("m.safetensors").exists());
        resume = true;
    }
    // No temporary files left behind; the resumed run finishes two steps after the stop.
    let leftovers: Vec<_> = std::fs::read_dir(run.join("ckpt"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let stopped = *fm_steps().last().unwrap();
    let out = train(stopped + 2, true).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fm_steps(), (1..=stopped + 2).collect::<Vec<_>>());
    assert!(dir.join("m.safetensors").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}
