//! Diagnostic: where a LeDiFlow model loses its images. One grid, 8 columns of held-out DCSS
//! tiles per block, blocks (top to bottom):
//!
//! 1. the real held-out tiles;
//! 2. the decoder's prior mean mu_P(mu_E(x)) for their encoder latents (the auxiliary
//!    model's reconstruction);
//! 3. the full image flow started from the prior of those encoder latents (what the FM model
//!    makes of a perfect latent);
//! 4. the prior mean mu_P(z) of latents z drawn by the latent flow;
//! 5. the full sample from those latents (what `lediflow sample` draws).
//!
//!     cargo run --release --example stage_grid -- MODEL.safetensors OUT.png [STEPS]
//!
//! Pixels are drawn 3x3 in the grid.
//!
//! Needs crawl-tiles-data (`/usr/share/crawl/dat/tiles`). Uses the Midpoint solver, seed 0.

use std::path::Path;

use lediflow::data::{self, Dataset};
use lediflow::{CpuBackend, Pipeline, SampleOptions, Solver};

type B = CpuBackend;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    assert!(args.len() >= 2, "usage: stage_grid MODEL.safetensors OUT.png [STEPS]");
    let steps: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(4);
    let device = Default::default();
    let p = Pipeline::<B>::load(&args[0], &device).unwrap();
    let ds = data::load_dcss(Path::new("/usr/share/crawl/dat/tiles"), 4).unwrap();
    let (_, held) = ds.split(10);
    let (cols, blocks) = (8usize, 3usize);
    let n = cols * blocks;
    // Held-out tiles spread over the whole set (atlases are ordered by kind).
    let pick: Vec<usize> = (0..n).map(|i| i * held.len() / n).collect();
    let mut real = Vec::new();
    for &i in &pick {
        real.extend_from_slice(held.image(i));
    }
    let x = lediflow::image::from_u8::<B>(&real, n, 4, 32, 32, &device).unwrap();
    let opts = SampleOptions { steps, solver: Solver::Midpoint, seed: 0, ..Default::default() };
    let z_enc = p.encode(x.clone()).unwrap();
    let (recon, logvar) = p.decode_prior(z_enc.clone()).unwrap();
    let mse: f32 = (recon.clone() - x.clone()).powi_scalar(2).mean().into_scalar();
    let sigma: f32 = (logvar * 0.5).exp().mean().into_scalar();
    println!("held-out reconstruction: MSE of mu_P {mse:.4}, mean sigma_P {sigma:.3}");
    let flow_enc = p.generate(z_enc, &opts).unwrap();
    let z_flow = p.sample_latents(n, &opts).unwrap();
    let (prior_flow, _) = p.decode_prior(z_flow.clone()).unwrap();
    let sample = p.generate(z_flow, &opts).unwrap();
    // Pixels drawn 3x3 so that the sprites can be judged by eye.
    const ZOOM: usize = 3;
    let mut out = Dataset::new(32 * ZOOM, 4);
    let rows = [x, recon, flow_enc, prior_flow, sample];
    // Interleave so each block of rows shows the same columns through the stages.
    let rows: Vec<Vec<u8>> = rows.into_iter().map(|t| lediflow::image::to_u8(t).unwrap()).collect();
    let per = 32 * 32 * 4;
    for b in 0..blocks {
        for r in &rows {
            for img in r[b * cols * per..(b + 1) * cols * per].chunks_exact(per) {
                for y in 0..32 * ZOOM {
                    for x in 0..32 * ZOOM {
                        let p = ((y / ZOOM) * 32 + x / ZOOM) * 4;
                        out.pixels.extend_from_slice(&img[p..p + 4]);
                    }
                }
            }
        }
    }
    out.sources = vec![String::new(); rows.len() * n];
    data::write_grid(Path::new(&args[1]), &out, cols, true).unwrap();
    println!("wrote {}: per block, rows = real, recon mu_P(mu_E), flow from mu_E, mu_P(flow z), sample", args[1]);
}
