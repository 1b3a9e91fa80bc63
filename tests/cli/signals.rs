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
