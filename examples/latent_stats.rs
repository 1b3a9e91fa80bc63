//! Diagnostic: the latents a LeDiFlow model's latent flow draws, against the encoder latents
//! (posterior means) of the DCSS tiles it was trained to imitate. Written to explain why KID
//! on random conv features and SWD disagreed about a retrained latent flow (BENCHMARKS.md).
//!
//!     cargo run --release --example latent_stats -- MODEL.safetensors [MODEL2 ...]
//!
//! Needs crawl-tiles-data (`/usr/share/crawl/dat/tiles`). For each model: per-dimension mean and
//! spread of the flow's draws relative to the training latents, their norms, and
//! nearest-neighbour distances to the training latents, next to the same numbers for the
//! encoder latents of the held-out tiles (what "as close as real data" looks like).

use std::path::Path;

use burn::prelude::*;
use lediflow::data::{self, Dataset};
use lediflow::{CpuBackend, Pipeline, SampleOptions};

type B = CpuBackend;

fn floats<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

fn encode(p: &Pipeline<B>, ds: &Dataset) -> Vec<f32> {
    let mut out = Vec::new();
    for start in (0..ds.len()).step_by(256) {
        let n = 256.min(ds.len() - start);
        let bytes = &ds.pixels[start * ds.image_bytes()..(start + n) * ds.image_bytes()];
        let x = lediflow::image::from_u8::<B>(bytes, n, ds.channels, ds.size, ds.size, &Default::default()).unwrap();
        out.extend(floats(p.encode(x).unwrap()));
    }
    out
}

/// Per-dimension mean and standard deviation of rows of width d.
fn moments(z: &[f32], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (z.len() / d) as f64;
    let mut mean = vec![0f64; d];
    for row in z.chunks_exact(d) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += *v as f64 / n;
        }
    }
    let mut var = vec![0f64; d];
    for row in z.chunks_exact(d) {
        for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (*v as f64 - m).powi(2) / n;
        }
    }
    (mean, var.into_iter().map(f64::sqrt).collect())
}

/// Distance from each row of `q` to its nearest row of `base` (and which row that is).
fn nearest(q: &[f32], base: &[f32], d: usize) -> Vec<(f64, usize)> {
    q.chunks_exact(d)
        .map(|a| {
            base.chunks_exact(d)
                .enumerate()
                .map(|(j, b)| (a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>().sqrt(), j))
                .fold((f64::INFINITY, 0), |best, c| if c.0 < best.0 { c } else { best })
        })
        .collect()
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn summary(v: &[f64]) -> String {
    let mut v = v.to_vec();
    format!("min {:.2} median {:.2} max {:.2}", quantile(&mut v, 0.0), quantile(&mut v, 0.5), quantile(&mut v, 1.0))
}

fn main() {
    let models: Vec<String> = std::env::args().skip(1).collect();
    assert!(!models.is_empty(), "usage: latent_stats MODEL.safetensors [MODEL2 ...]");
    let ds = data::load_dcss(Path::new("/usr/share/crawl/dat/tiles"), 4).unwrap();
    let (train, held) = ds.split(10);
    for path in &models {
        let p = Pipeline::<B>::load(path, &Default::default()).unwrap();
        let d = p.info().latent_dim;
        let zt = encode(&p, &train);
        let zh = encode(&p, &held);
        let opts = SampleOptions { seed: 0, ..Default::default() };
        let zf = floats(p.sample_latents(train.len(), &opts).unwrap());
        let (mt, st) = moments(&zt, d);
        let (mf, sf) = moments(&zf, d);
        let shift: Vec<f64> = (0..d).map(|i| (mf[i] - mt[i]).abs() / st[i]).collect();
        let ratio: Vec<f64> = (0..d).map(|i| sf[i] / st[i]).collect();
        let norm = |z: &[f32]| {
            let mut v: Vec<f64> =
                z.chunks_exact(d).map(|r| r.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt()).collect();
            format!("median {:.2}, 99th pct {:.2}", quantile(&mut v, 0.5), quantile(&mut v, 0.99))
        };
        // Same number of queries for flow draws and held-out latents, so coverage compares.
        let nq = held.len();
        let nn_h = nearest(&zh, &zt, d);
        let nn_f = nearest(&zf[..nq * d], &zt, d);
        let mut dh: Vec<f64> = nn_h.iter().map(|x| x.0).collect();
        let mut df: Vec<f64> = nn_f.iter().map(|x| x.0).collect();
        let far = quantile(&mut dh.clone(), 0.95);
        let outliers = df.iter().filter(|x| **x > far).count() as f64 / nq as f64;
        let covered = |nn: &[(f64, usize)]| {
            let mut seen = vec![false; train.len()];
            nn.iter().for_each(|x| seen[x.1] = true);
            seen.iter().filter(|s| **s).count()
        };
        println!("{path} (latent_dim {d}; {} training latents, {nq} queries)", train.len());
        println!("  |mean shift| / training std per dim: {}", summary(&shift));
        println!("  std ratio flow / training per dim:   {}", summary(&ratio));
        println!("  norms: training {}; held-out {}; flow {}", norm(&zt), norm(&zh), norm(&zf));
        println!(
            "  nearest training latent: held-out median {:.2} / 95th pct {:.2}; flow median {:.2} / 95th pct {:.2}",
            quantile(&mut dh, 0.5),
            far,
            quantile(&mut df, 0.5),
            quantile(&mut df.clone(), 0.95)
        );
        println!(
            "  flow draws beyond the held-out 95th pct: {:.1}%; distinct nearest training latents: held-out {}, flow {}",
            100.0 * outliers,
            covered(&nn_h),
            covered(&nn_f)
        );
    }
}
