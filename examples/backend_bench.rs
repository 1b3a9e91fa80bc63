//! Compares burn's CPU backends on this project's workload (the `small` RGBA 32x32 model):
//! one velocity-network forward at batch 16, one training step of it, and a whole 4-step
//! Midpoint sample of 16 images. Medians of repeated runs, all backends in one process.
//!
//!     cargo run --release --example backend_bench                       # flex, ndarray
//!     cargo run --release --example backend_bench --features bench-candle
//!     cargo run --release --example backend_bench --features bench-openblas   # ndarray uses OpenBLAS
//!
//! The default CPU backend (`lediflow::CpuBackend`) was chosen from this; see BENCHMARKS.md.

use std::time::Instant;

use burn::backend::Autodiff;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use lediflow::model::{Networks, VelocityNet};
use lediflow::{ModelConfig, ModelMeta, Pipeline, PriorKind, SampleOptions};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn time<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f(); // warm-up
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

fn bench<B: Backend, A: AutodiffBackend<InnerBackend = B>>(name: &str, cfg: &ModelConfig) {
    let dev = B::Device::default();
    let batch = 16;
    let s = cfg.image.size;
    let c = cfg.image.channels;
    let net = VelocityNet::<B>::new(cfg, &dev);
    let x = Tensor::<B, 4>::random([batch, c, s, s], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    let t = Tensor::<B, 1>::full([batch], 0.5, &dev);
    let fwd = time(20, || {
        let _ = net.forward(x.clone(), t.clone()).into_data();
    });

    let adev = A::Device::default();
    let mut anet = VelocityNet::<A>::new(cfg, &adev);
    let mut optim = AdamConfig::new().init::<A, VelocityNet<A>>();
    let ax = Tensor::<A, 4>::random([batch, c, s, s], burn::tensor::Distribution::Normal(0.0, 1.0), &adev);
    let at = Tensor::<A, 1>::full([batch], 0.5, &adev);
    let train = time(10, || {
        let loss = (anet.clone().forward(ax.clone(), at.clone()) - ax.clone()).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &anet);
        anet = optim.step(1e-4, anet.clone(), grads);
    });

    let pipe = Pipeline::new(Networks::<B>::new(cfg, &dev), ModelMeta::new(cfg.clone(), serde_json::Value::Null), dev);
    let opts = SampleOptions::default();
    let sample = time(5, || {
        let _ = pipe.sample(batch, &opts).unwrap().into_data();
    });
    println!("| {name} | {fwd:.2} | {train:.2} | {sample:.1} |");
}

fn main() {
    let cfg = ModelConfig::preset("small", 4, 32, PriorKind::Learned).unwrap();
    println!(
        "small preset, RGBA 32x32, batch 16, threads: {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("| backend | FM forward (ms) | FM train step (ms) | sample 16 @ 4 Midpoint (ms) |");
    println!("|---|---|---|---|");
    bench::<burn::backend::Flex, Autodiff<burn::backend::Flex>>("flex", &cfg);
    bench::<burn::backend::NdArray, Autodiff<burn::backend::NdArray>>(
        if cfg!(feature = "bench-openblas") { "ndarray + openblas-system" } else { "ndarray" },
        &cfg,
    );
    #[cfg(feature = "bench-candle")]
    bench::<burn::backend::Candle, Autodiff<burn::backend::Candle>>("candle", &cfg);
}
