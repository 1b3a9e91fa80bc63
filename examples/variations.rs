//! Variations, measured on the held-out DCSS tiles: for each held-out tile, `--count`
//! variations at several strengths, and for each variation the distance (RMS over 8-bit values,
//! every channel) to its own tile and to the nearest OTHER held-out tile. A variation is "near
//! its image" when its own tile is nearer than every other one.
//!
//!     cargo run --release --example variations -- [--count 4] [--steps 4] [--seed 0] MODEL...
//!
//! Needs Debian's crawl-tiles-data. Prints one markdown row per model and strength.

use std::path::Path;

use lediflow::data;
use lediflow::{Device, Model, SampleOptions};

fn rms(a: &[u8], b: &[u8]) -> f64 {
    (a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>() / a.len() as f64).sqrt()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut count, mut steps, mut seed, mut models) = (4usize, 4usize, 0u64, Vec::new());
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--count" => count = value().parse().expect("--count"),
            "--steps" => steps = value().parse().expect("--steps"),
            "--seed" => seed = value().parse().expect("--seed"),
            _ => models.push(a),
        }
    }
    assert!(!models.is_empty(), "usage: variations [--count N] [--steps S] [--seed S] MODEL...");
    let ds = data::load_dcss(Path::new(data::DCSS_TILE_DIR), 4).expect("DCSS tiles (apt-get install crawl-tiles-data)");
    let (_, held) = ds.split(10);
    let (n, per) = (held.len(), held.size * held.size * held.channels);
    println!("| model | strength | to its own tile | to the nearest other tile | own tile nearest |");
    println!("|---|---:|---:|---:|---:|");
    for path in &models {
        let model = Model::load(path, Device::Cpu).unwrap_or_else(|e| panic!("{path}: {e}"));
        let name = Path::new(path).file_name().unwrap().to_string_lossy().into_owned();
        for strength in [0.25f32, 0.5, 0.75, 1.0] {
            let opts = SampleOptions { seed, steps, ..Default::default() };
            let out = model.vary(&held.pixels, count, strength, &opts).expect("vary");
            let (mut own, mut other, mut nearest) = (0.0, 0.0, 0usize);
            for (k, v) in out.chunks_exact(per).enumerate() {
                let i = k / count;
                let d_own = rms(v, held.image(i));
                let d_other = (0..n).filter(|&j| j != i).map(|j| rms(v, held.image(j))).fold(f64::INFINITY, f64::min);
                own += d_own;
                other += d_other;
                nearest += usize::from(d_own < d_other);
            }
            let total = (n * count) as f64;
            println!(
                "| {name} | {strength} | {:.1} | {:.1} | {:.1}% |",
                own / total,
                other / total,
                100.0 * nearest as f64 / total
            );
        }
    }
}
