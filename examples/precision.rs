//! bf16 against fp32 on the same seeds: for each model file, the same images sampled with
//! `Precision::Fp32` and `Precision::Bf16` (unconditional, then each class of a class-conditional
//! file), compared byte by byte: the share of 8-bit values that differ at all, by more than 1
//! and by more than 8 levels (and, for RGBA, how many of those are alpha), the mean absolute
//! difference and the largest one.
//!
//!     cargo run --release --example precision -- [--count 256] [--steps 4] [--seeds 0,1,2,3,4] MODEL...
//!
//! Needs a CPU with AVX512-BF16. Prints one markdown row per model and class.

use std::path::Path;

use lediflow::{Device, Model, Precision, SampleOptions};

/// Counts of the byte differences between two runs.
#[derive(Default)]
struct Diff {
    bytes: usize,
    differ: usize,
    above1: usize,
    above8: usize,
    /// Of `above8`, those in the alpha channel (RGBA only).
    above8_alpha: usize,
    sum: u64,
    max: u8,
}

impl Diff {
    fn add(&mut self, a: &[u8], b: &[u8], channels: usize) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            let d = x.abs_diff(*y);
            self.bytes += 1;
            self.differ += usize::from(d > 0);
            self.above1 += usize::from(d > 1);
            self.above8 += usize::from(d > 8);
            self.above8_alpha += usize::from(d > 8 && channels == 4 && i % 4 == 3);
            self.sum += d as u64;
            self.max = self.max.max(d);
        }
    }

    fn row(&self, name: &str, what: &str, images: usize) -> String {
        let pct = |n: usize| 100.0 * n as f64 / self.bytes as f64;
        format!(
            "| {name} | {what} | {images} | {:.2}% | {:.2}% | {:.3}% | {:.0}% | {:.3} | {} |",
            pct(self.differ),
            pct(self.above1),
            pct(self.above8),
            100.0 * self.above8_alpha as f64 / self.above8.max(1) as f64,
            self.sum as f64 / self.bytes as f64,
            self.max
        )
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut count, mut steps, mut seeds, mut models) = (256usize, 4usize, vec![0u64, 1, 2, 3, 4], Vec::new());
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--count" => count = value().parse().expect("--count"),
            "--steps" => steps = value().parse().expect("--steps"),
            "--seeds" => seeds = value().split(',').map(|s| s.trim().parse().expect("--seeds")).collect(),
            _ => models.push(a),
        }
    }
    assert!(!models.is_empty(), "usage: precision [--count N] [--steps S] [--seeds 0,1,..] MODEL...");
    println!(
        "| model | class | images | bytes that differ | by > 1 | by > 8 | of those, alpha | mean abs diff | largest |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for path in &models {
        let model = Model::load(path, Device::Cpu).unwrap_or_else(|e| panic!("{path}: {e}"));
        let name = Path::new(path).file_stem().unwrap().to_string_lossy().into_owned();
        let classes = model.config().classes.names.clone();
        let channels = model.info().channels;
        let mut total = Diff::default();
        let mut rows = Vec::new();
        for class in std::iter::once(None).chain((0..classes.len() as u32).map(Some)) {
            let n = if class.is_some() { count / 4 } else { count };
            let mut diff = Diff::default();
            for &seed in &seeds {
                let opts = SampleOptions { seed, steps, class, ..Default::default() };
                let run = |precision| {
                    model.sample(n, &SampleOptions { precision, ..opts.clone() }).unwrap_or_else(|e| panic!("{e}"))
                };
                let (a, b) = (run(Precision::Fp32), run(Precision::Bf16));
                diff.add(&a, &b, channels);
                total.add(&a, &b, channels);
            }
            let what = class.map_or("none", |c| classes[c as usize].as_str());
            rows.push(diff.row(&name, what, n * seeds.len()));
        }
        for r in rows {
            println!("{r}");
        }
        if !classes.is_empty() {
            println!("{}", total.row(&name, "**all**", total.bytes / model.info().image_bytes()));
        }
    }
}
