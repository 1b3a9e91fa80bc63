//! Seamless tiles, measured: the seam ratio of a model's samples with and without `tileable`
//! (mean |difference| of the pixel pairs that neighbour only across the wrap, over the same mean
//! inside the images; about 1 means the opposite edges join like any two neighbouring rows).
//!
//!     cargo run --release --example tiling -- [--count 512] [--steps 4] [--seed 0]
//!         [--preview OUT.png] MODEL.safetensors...
//!
//! Prints one markdown row per model and setting. `--textures` (needs Debian's crawl-tiles-data)
//! also scores the opaque samples (floor and wall tiles, what tiling is for) against the opaque
//! held-out DCSS tiles, tileable and not, over seeds 0..4: SWD and pixel KID (x1e3), mean ± sd.
//! `--preview` also writes a picture of the first model: the first eight opaque samples among the `--count` (floor and wall tiles: DCSS sprites
//! of other kinds are transparent around the figure), each repeated 3x3, the plain sample on the
//! left and the tileable one of the same seed and index on the right.

use lediflow::data::{self, Dataset};
use lediflow::eval::seam_stats;
use lediflow::{Device, Model, SampleOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut count, mut steps, mut seed, mut preview, mut models) = (512usize, 4usize, 0u64, None, Vec::new());
    let mut textures = false;
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--count" => count = value().parse().expect("--count"),
            "--steps" => steps = value().parse().expect("--steps"),
            "--seed" => seed = value().parse().expect("--seed"),
            "--preview" => preview = Some(value()),
            "--textures" => textures = true,
            _ => models.push(a),
        }
    }
    assert!(!models.is_empty(), "usage: tiling [--count N] [--steps S] [--seed S] [--preview OUT.png] MODEL...");
    println!("| model | tileable | across the wrap | interior | seam ratio |");
    println!("|---|---|---:|---:|---:|");
    for (k, path) in models.iter().enumerate() {
        let model = Model::load(path, Device::Cpu).unwrap_or_else(|e| panic!("{path}: {e}"));
        let info = model.info();
        let mut both = Vec::new();
        for tileable in [false, true] {
            let opts = SampleOptions { seed, steps, tileable, ..Default::default() };
            let px = model.sample(count, &opts).expect("sampling");
            let s = seam_stats(&px, info.width, info.height, info.channels).unwrap();
            let name = std::path::Path::new(path).file_name().unwrap().to_string_lossy();
            println!(
                "| {name} | {} | {:.2} | {:.2} | {:.3} |",
                if tileable { "yes" } else { "no" },
                s.across_wrap,
                s.interior,
                s.ratio()
            );
            both.push(px);
        }
        if let (0, Some(out)) = (k, &preview) {
            write_preview(out, &both[0], &both[1], info.width, info.channels);
        }
    }
    if textures {
        texture_quality(&models, count, steps);
    }
}

/// Whether an 8-bit image is opaque: nearly every pixel's alpha above 240 (samples are rarely
/// exactly 255 everywhere). Images without alpha always are.
fn opaque(img: &[u8], channels: usize) -> bool {
    channels != 4 || img.chunks_exact(4).filter(|p| p[3] > 240).count() * 100 >= 99 * (img.len() / 4)
}

/// The opaque images of `pixels`, back to back, and how many there are.
fn opaque_only(pixels: &[u8], per: usize, channels: usize) -> (Vec<u8>, usize) {
    let kept: Vec<&[u8]> = pixels.chunks_exact(per).filter(|i| opaque(i, channels)).collect();
    (kept.concat(), kept.len())
}

/// SWD and pixel KID of the opaque samples against the opaque held-out DCSS tiles.
fn texture_quality(models: &[String], count: usize, steps: usize) {
    use lediflow::eval::{EvalConfig, Images, evaluate};
    let ds = data::load_dcss(std::path::Path::new(data::DCSS_TILE_DIR), 4).expect("DCSS tiles (crawl-tiles-data)");
    let (train, held) = ds.split(10);
    let per = held.size * held.size * held.channels;
    let (real, n_real) = opaque_only(&held.pixels, per, 4);
    let reference = Images::from_u8(&real, n_real, 4, held.size).unwrap();
    let cfg = EvalConfig::default();
    // The floor: as many opaque training tiles as there are opaque held-out ones, spread over
    // the training split (SWD and KID depend on the set sizes, so a larger set would look better).
    let (all, n_all) = opaque_only(&train.pixels, per, 4);
    let n_floor = n_real.min(n_all);
    let floor: Vec<u8> = (0..n_floor).flat_map(|k| all[(k * n_all / n_floor) * per..][..per].to_vec()).collect();
    let floor = evaluate(&Images::from_u8(&floor, n_floor, 4, held.size).unwrap(), &reference, None, &cfg).unwrap();
    println!("\nOpaque tiles (floors and walls) only: {n_real} held-out tiles as the reference.\n");
    println!("| model | tileable | opaque samples (of {count}, mean) | SWD x1e3 | KID pixels x1e3 |");
    println!("|---|---|---:|---:|---:|");
    let mean_sd = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1).max(1) as f64).sqrt();
        format!("{m:.2} ± {sd:.2}")
    };
    for path in models {
        let model = Model::load(path, Device::Cpu).unwrap_or_else(|e| panic!("{path}: {e}"));
        let name = std::path::Path::new(path).file_name().unwrap().to_string_lossy().into_owned();
        for tileable in [false, true] {
            let (mut swd, mut kid, mut kept) = (Vec::new(), Vec::new(), 0);
            for seed in 0..5 {
                let opts = SampleOptions { seed, steps, tileable, ..Default::default() };
                let (px, n) = opaque_only(&model.sample(count, &opts).expect("sampling"), per, 4);
                let r = evaluate(&Images::from_u8(&px, n, 4, held.size).unwrap(), &reference, None, &cfg).unwrap();
                swd.push(r.swd);
                kid.push(r.kid_pixels);
                kept += n;
            }
            println!(
                "| {name} | {} | {} | {} | {} |",
                if tileable { "yes" } else { "no" },
                kept / 5,
                mean_sd(&swd),
                mean_sd(&kid)
            );
        }
    }
    println!("| opaque training tiles ({n_floor}) | - | - | {:.2} | {:.2} |", floor.swd, floor.kid_pixels);
}

/// Opaque samples (every alpha 255) as pairs of 3x3 repeats: plain, tileable.
fn write_preview(out: &str, plain: &[u8], tiled: &[u8], size: usize, channels: usize) {
    let per = size * size * channels;
    let picked: Vec<usize> = (0..plain.len() / per)
        .filter(|&i| opaque(&plain[i * per..][..per], channels) && opaque(&tiled[i * per..][..per], channels))
        .take(4)
        .collect();
    assert!(!picked.is_empty(), "no opaque sample among the first ones: sample more");
    let mut ds = Dataset::new(size, channels);
    for &i in &picked {
        ds.pixels.extend_from_slice(&plain[i * per..][..per]);
        ds.pixels.extend_from_slice(&tiled[i * per..][..per]);
        ds.sources.push(format!("plain {i}"));
        ds.sources.push(format!("tileable {i}"));
    }
    // 3x3 repeats, each pixel drawn 2x2 so the tiles read at README size.
    let shown = upscale(&data::repeat_tiles(&ds, 3), 2);
    data::write_grid(std::path::Path::new(out), &shown, 4, false).unwrap();
    eprintln!("wrote {out}: samples {picked:?}, plain and tileable side by side");
}

/// Every pixel of every image drawn k x k.
fn upscale(ds: &Dataset, k: usize) -> Dataset {
    let (s, c) = (ds.size, ds.channels);
    let mut out = Dataset::new(s * k, c);
    out.sources = ds.sources.clone();
    for i in 0..ds.len() {
        let img = ds.image(i);
        for y in 0..s * k {
            for x in 0..s * k {
                out.pixels.extend_from_slice(&img[((y / k) * s + x / k) * c..][..c]);
            }
        }
    }
    out
}
