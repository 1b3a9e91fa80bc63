//! Diagnostic: per-pixel statistics of samples against the held-out DCSS tiles, to find what
//! `lediflow eval`'s KID on pixels sees (LeDiFlow's stays at 3-4 x1e-3 from 8 NFE on while the
//! baseline's falls to 0). For the held-out tiles, then for each model and step count, samples of
//! the same number (Midpoint, seed 0, the file's time shift) are summarised:
//!
//! - alpha: share of pixels fully transparent (< 2/255), fully opaque (> 253/255), in between;
//! - on pixels with alpha > 1/2: mean R, G, B, saturation (max - min of R, G, B) and the
//!   standard deviation of the luminance inside one image (contrast), averaged over images;
//! - sharpness: mean |difference| of R, G, B between horizontal neighbours that are both opaque.
//!
//! For a LeDiFlow model a row "own latents" also runs the image flow from the held-out tiles'
//! encoder latents (what it makes of a perfect latent).
//!
//!     cargo run --release --example pixel_stats -- STEPS[,STEPS..] MODEL.safetensors [MODEL..]
//!
//! Needs crawl-tiles-data (`/usr/share/crawl/dat/tiles`). Values are in [0, 1].

use std::path::Path;

use lediflow::data;
use lediflow::{CpuBackend, Pipeline, PriorKind, SampleOptions, Solver};

type B = CpuBackend;

/// Statistics of `n` RGBA 32x32 images in `px` (u8, interleaved).
fn stats(px: &[u8]) -> [f64; 9] {
    const P: usize = 32 * 32 * 4;
    let n = px.len() / P;
    let (mut transparent, mut opaque, mut total) = (0usize, 0usize, 0usize);
    let (mut rgb, mut sat, mut opaque_px) = ([0f64; 3], 0f64, 0usize);
    let (mut contrast, mut grad, mut grad_n) = (0f64, 0f64, 0usize);
    for img in px.chunks_exact(P) {
        let mut lum = Vec::new();
        for y in 0..32 {
            for x in 0..32 {
                let p = &img[(y * 32 + x) * 4..(y * 32 + x) * 4 + 4];
                let f = |v: u8| v as f64 / 255.0;
                total += 1;
                if p[3] < 2 {
                    transparent += 1;
                } else if p[3] > 253 {
                    opaque += 1;
                }
                if p[3] > 127 {
                    opaque_px += 1;
                    for c in 0..3 {
                        rgb[c] += f(p[c]);
                    }
                    let (mx, mn) = (p[..3].iter().max().unwrap(), p[..3].iter().min().unwrap());
                    sat += f(*mx) - f(*mn);
                    lum.push(0.299 * f(p[0]) + 0.587 * f(p[1]) + 0.114 * f(p[2]));
                    if x + 1 < 32 {
                        let q = &img[(y * 32 + x + 1) * 4..(y * 32 + x + 1) * 4 + 4];
                        if q[3] > 127 {
                            grad += (0..3).map(|c| (f(p[c]) - f(q[c])).abs()).sum::<f64>() / 3.0;
                            grad_n += 1;
                        }
                    }
                }
            }
        }
        if lum.len() > 1 {
            let m = lum.iter().sum::<f64>() / lum.len() as f64;
            contrast += (lum.iter().map(|l| (l - m) * (l - m)).sum::<f64>() / lum.len() as f64).sqrt();
        }
    }
    let o = opaque_px.max(1) as f64;
    [
        transparent as f64 / total as f64,
        opaque as f64 / total as f64,
        (total - transparent - opaque) as f64 / total as f64,
        rgb[0] / o,
        rgb[1] / o,
        rgb[2] / o,
        sat / o,
        contrast / n as f64,
        grad / grad_n.max(1) as f64,
    ]
}

fn row(name: &str, px: &[u8]) {
    let s = stats(px);
    let cells: Vec<String> = s.iter().map(|v| format!("{v:.3}")).collect();
    println!("| {name} | {} |", cells.join(" | "));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    assert!(args.len() >= 2, "usage: pixel_stats STEPS[,STEPS..] MODEL.safetensors [MODEL..]");
    let steps: Vec<usize> = args[0].split(',').map(|s| s.parse().expect("steps: numbers")).collect();
    let device = Default::default();
    let ds = data::load_dcss(Path::new("/usr/share/crawl/dat/tiles"), 4).unwrap();
    let (_, held) = ds.split(10);
    let n = held.len();
    println!("| images | transparent | opaque | partial alpha | R | G | B | saturation | contrast | neighbour diff |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    row(&format!("held-out tiles ({n})"), &held.pixels);
    for model in &args[1..] {
        let p = Pipeline::<B>::load(model, &device).unwrap();
        let name = Path::new(model).file_name().unwrap().to_string_lossy().to_string();
        // The held-out tiles' encoder latents, once per model (LeDiFlow only).
        let own = (p.config().prior == PriorKind::Learned).then(|| {
            let real = lediflow::image::from_u8::<B>(&held.pixels, n, 4, 32, 32, &device).unwrap();
            p.encode(real).unwrap()
        });
        for &s in &steps {
            let opts = SampleOptions { steps: s, solver: Solver::Midpoint, seed: 0, ..Default::default() };
            let x = p.sample(n, &opts).unwrap();
            row(&format!("{name}, {} NFE", 2 * s), &lediflow::image::to_u8(x).unwrap());
            if let Some(z) = &own {
                let x = p.generate(z.clone(), &opts).unwrap();
                row(&format!("{name}, own latents, {} NFE", 2 * s), &lediflow::image::to_u8(x).unwrap());
            }
        }
    }
}
