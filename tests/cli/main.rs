//! The `lediflow` binary end to end on a tiny model trained once per test run: train from a
//! folder, sample, interpolate, inpaint, evaluate, inspect and rewrite model files, and fail
//! clearly on bad input.

mod eval;
mod generate;
mod inspect;
mod signals;
mod train;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn lediflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lediflow"))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `cmd` and checks that it succeeded.
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{:?} failed: {}", cmd, stderr(&out));
    out
}

/// Runs `cmd` and checks that it failed with a message containing `want` (and no panic).
pub fn refused(cmd: &mut Command, want: &str) -> Output {
    let out = cmd.output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{cmd:?} should have failed");
    assert!(err.contains(want), "{cmd:?}: wanted {want:?} in {err}");
    assert!(!err.contains("panicked"), "{cmd:?}: {err}");
    out
}

/// `count` 16x16 RGBA images in a folder, pixel (x, y) of image i being `f(i, x, y)`.
pub fn write_images(dir: &Path, count: u8, f: impl Fn(u8, u32, u32) -> [u8; 4]) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        image::RgbaImage::from_fn(16, 16, |x, y| image::Rgba(f(i, x, y))).save(dir.join(format!("{i}.png"))).unwrap();
    }
}

/// What every test shares: a temporary folder, training images, evaluation images and a tiny
/// LeDiFlow model trained on the former (3 steps per stage).
pub struct Fixture {
    pub dir: PathBuf,
    pub data: PathBuf,
    pub eval_data: PathBuf,
    pub model: PathBuf,
    /// The training run's folder and its stderr.
    pub run: PathBuf,
    pub train_stderr: String,
}

impl Fixture {
    /// A fresh folder for one test's files.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let d = self.dir.join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lediflow-cli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let data = dir.join("data");
        write_images(&data, 6, |i, x, y| [i * 40, (x * 16) as u8, (y * 16) as u8, 255]);
        let eval_data = dir.join("eval-data");
        write_images(&eval_data, 12, |i, x, y| [i * 20, (x * 16) as u8, (y * 9) as u8, 200]);
        let (model, run) = (dir.join("m.safetensors"), dir.join("run"));
        let out = ok(lediflow()
            .args(["train", "--data"])
            .arg(&data)
            .args(["--size", "16", "--channels", "4", "--preset", "tiny", "--batch", "4"])
            .args(["--steps-aux", "3", "--steps-latent", "3", "--steps-fm", "3", "--val-every", "3"])
            .args(["--set", "dit.depth=1", "--set", "train.beta_kl=0.01", "--run-dir"])
            .arg(&run)
            .arg("--out")
            .arg(&model));
        Fixture { dir, data, eval_data, model, run, train_stderr: stderr(&out) }
    })
}
