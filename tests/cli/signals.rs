//! Ctrl-C and SIGTERM during `train`.

use crate::{fixture, lediflow};

/// Ctrl-C (SIGINT) and SIGTERM stop a training run with a checkpoint and exit status 130; the
/// same command plus `--resume` continues it, and the loss log has every step exactly once.
#[cfg(unix)]
#[test]
fn a_signal_stops_training_with_a_checkpoint_that_resumes() {
    let dir = fixture().scratch("signal");
    let data = fixture().data.clone();
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
}

/// SIGKILL (no handler runs) at many points of a run: during steps, checkpoint writes and the
/// final model write. After every kill each file in the run folder and the output path is a
/// complete version (nothing half-written survives: a resumed run finds a checkpoint it can
/// load, the output is absent or the finished model), and the run, resumed again and again,
/// ends with exactly the losses and the model file of an uninterrupted run.
#[cfg(unix)]
#[test]
fn sigkill_at_any_point_loses_nothing_and_resumes_to_the_same_losses() {
    use std::path::Path;
    let dir = fixture().scratch("sigkill");
    let data = fixture().data.clone();
    let steps = 200;
    let train = |run: &Path, out: &Path, resume: bool| {
        let mut c = lediflow();
        c.env("RAYON_NUM_THREADS", "1")
            .args(["train", "--data"])
            .arg(&data)
            .args(["--size", "16", "--channels", "4", "--preset", "tiny", "--batch", "4", "--prior", "gaussian"])
            .args(["--set", "dit.depth=1", "--checkpoint-every", "1", "--val-every", "3"])
            .args(["--steps-fm", &steps.to_string(), "--run-dir"])
            .arg(run)
            .arg("--out")
            .arg(out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if resume {
            c.arg("--resume");
        }
        c
    };
    let fm_rows = |run: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(run.join("losses.csv")).unwrap_or_default();
        // Step and loss (the elapsed time differs between runs).
        text.lines().filter(|l| l.starts_with("fm,")).map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
    };
    let has_checkpoint =
        |run: &Path| ["ckpt", "ckpt.new", "ckpt.old"].iter().any(|d| run.join(d).join("state.json").is_file());

    let (ref_run, ref_out) = (dir.join("reference"), dir.join("reference.safetensors"));
    let t0 = std::time::Instant::now();
    let out = train(&ref_run, &ref_out, false).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("uninterrupted run: {:.2} s", t0.elapsed().as_secs_f64());
    // A model file records when it was written: compare what the weights draw instead.
    let drawn = |model: &Path| -> Vec<u8> {
        let png = model.with_extension("png");
        let out = lediflow()
            .args(["sample", "--count", "4", "--steps", "2", "--model"])
            .arg(model)
            .arg("--out")
            .arg(&png)
            .output()
            .unwrap();
        assert!(out.status.success(), "{} does not load: {}", model.display(), String::from_utf8_lossy(&out.stderr));
        std::fs::read(&png).unwrap()
    };
    let (want_rows, want_model) = (fm_rows(&ref_run), drawn(&ref_out));
    assert_eq!(want_rows.len(), steps);

    let (run, model) = (dir.join("killed"), dir.join("killed.safetensors"));
    let (mut kills, mut cut_writes) = (0u64, 0usize);
    let temps = |dirs: &[std::path::PathBuf]| -> Vec<String> {
        dirs.iter()
            .filter(|d| d.is_dir())
            .flat_map(|d| std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()))
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    };
    let all_dirs = [run.clone(), run.join("ckpt"), run.join("ckpt.new"), dir.clone()];
    loop {
        let mut child = train(&run, &model, has_checkpoint(&run)).spawn().unwrap();
        // Kills land during start-up, steps, checkpoint writes and, near the end, the final
        // model write: a jittered delay whose floor grows, so every restart gets further.
        let delay_ms = 30 + 12 * kills + (kills * 37) % 90;
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        let status = child.wait().unwrap();
        if status.success() {
            break;
        }
        kills += 1;
        assert!(kills < 200, "the run never finished between kills");
        // A temporary file beside its target: this kill cut a write short (the next run removes it).
        cut_writes += usize::from(!temps(&all_dirs).is_empty());
        // The output is absent or whole; the checkpoint a resume would take loads (a resume
        // below fails loudly if it does not).
        if model.exists() {
            assert!(drawn(&model) == want_model, "another model file after kill {kills}");
        }
        // Every logged step is one of the reference's (a row cut off mid-write is dropped on resume).
        let rows = fm_rows(&run);
        for (got, want) in rows.iter().zip(&want_rows).take(rows.len().saturating_sub(1)) {
            assert_eq!(got, want, "after kill {kills}");
        }
    }
    eprintln!("{kills} kills before the run finished, {cut_writes} of them during a file write");
    assert!(kills >= 5, "only {kills} kills landed before the run finished: the test proves little");
    assert_eq!(fm_rows(&run), want_rows, "the killed and resumed run logged other losses");
    assert!(drawn(&model) == want_model, "the killed and resumed run wrote another model");
    let leftovers = temps(&all_dirs);
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
}
