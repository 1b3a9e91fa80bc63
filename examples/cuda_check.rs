//! GPU check (run by hand on a machine with an NVIDIA GPU; CI only compiles it):
//! the same model file loaded on CPU and CUDA gives the same images for the same seed, a few
//! training steps run on CUDA, and sampling throughput on the GPU.
//!
//!     cargo run --release --features cuda --example cuda_check
//!
//! Without a GPU it prints the clear error the library returns and exits with status 2.

#[cfg(feature = "cuda")]
fn main() {
    use std::time::Instant;

    use lediflow::data::Dataset;
    use lediflow::device::{CudaBackend, CudaTrainBackend, cuda_device};
    use lediflow::model::Networks;
    use lediflow::train::run::{RunControl, RunSpec, Stage, run};
    use lediflow::train::{StageSteps, TrainConfig};
    use lediflow::{CpuBackend, ModelConfig, ModelMeta, Pipeline, PriorKind, SampleOptions, checkpoint};

    let device = match cuda_device(0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("no GPU: {e}");
            std::process::exit(2);
        }
    };
    let t0 = Instant::now();
    let stamp = |what: &str| eprintln!("[{:7.1}s] {what}", t0.elapsed().as_secs_f64());
    stamp("CUDA device found");
    // Parity first (inference only): one model file, both devices, same seed. The first CUDA
    // calls include compiling every kernel through NVRTC, which dominates the time here.
    let cfg = ModelConfig::preset("tiny", 4, 32, PriorKind::Learned).unwrap();
    let cpu_nets = Networks::<CpuBackend>::new(&cfg, &Default::default());
    let bytes = checkpoint::to_bytes(&cpu_nets, &ModelMeta::new(cfg.clone(), serde_json::Value::Null)).unwrap();
    let gpu = Pipeline::<CudaBackend>::from_bytes(&bytes, &device).unwrap();
    let cpu = Pipeline::<CpuBackend>::from_bytes(&bytes, &Default::default()).unwrap();
    stamp("model loaded on both devices");
    let opts = SampleOptions { seed: 3, ..Default::default() };
    let a: Vec<f32> = gpu.sample(4, &opts).unwrap().into_data().convert::<f32>().into_vec().unwrap();
    stamp("first CUDA sample done");
    let b: Vec<f32> = cpu.sample(4, &opts).unwrap().into_data().convert::<f32>().into_vec().unwrap();
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    println!("cpu/cuda parity (tiny, 4 images, 4 Midpoint steps): max abs diff {diff:.2e}");

    // Throughput of the small preset (random weights: speed does not depend on their values).
    let small = ModelConfig::preset("small", 4, 32, PriorKind::Learned).unwrap();
    let p = Pipeline::<CudaBackend>::new(
        Networks::new(&small, &device),
        ModelMeta::new(small, serde_json::Value::Null),
        device.clone(),
    );
    for batch in [1usize, 64, 256] {
        let _ = p.sample(batch, &opts).unwrap().into_data();
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let _ = p.sample(batch, &opts).unwrap().into_data();
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(|x, y| x.partial_cmp(y).unwrap());
        let med = times[1];
        println!(
            "cuda small RGBA32 sample batch {batch}: median {:.1} ms, {:.0} images/s",
            med * 1e3,
            batch as f64 / med
        );
    }
    stamp("throughput done; training 30 steps on CUDA");
    // The training loop `lediflow train --device cuda` runs, on random 8-bit images.
    let mut data = Dataset::new(32, 4);
    let mut rng = lediflow::rng::Rng::new(5);
    data.pixels = (0..8 * 32 * 32 * 4).map(|_| rng.below(256) as u8).collect();
    data.sources = (0..8).map(|i| format!("random {i}")).collect();
    let spec = RunSpec {
        model: cfg.clone(),
        train: TrainConfig { batch_size: 8, ..TrainConfig::default() },
        steps: StageSteps { aux: 10, latent: 10, fm: 10 },
        hflip: false,
        checkpoint_every: 0,
        data: serde_json::json!("random"),
        init: None,
    };
    let losses = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let l2 = losses.clone();
    let control = RunControl { on_step: Some(Box::new(move |s, _| l2.borrow_mut().push(*s))), ..Default::default() };
    let dir = std::env::temp_dir().join(format!("lediflow-cuda-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    run::<CudaTrainBackend>(&spec, &data, &dir.join("run"), &dir.join("m.safetensors"), false, control, &device)
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    stamp("training done");
    let losses = losses.borrow();
    let of = |stage: Stage| losses.iter().filter(|s| s.stage == stage).map(|s| (s.mse, s.loss)).collect::<Vec<_>>();
    let (aux, fm) = (of(Stage::Aux), of(Stage::Fm));
    println!("cuda training ran: aux mse {:.4} -> {:.4}, fm {:.4} -> {:.4}", aux[0].0, aux[9].0, fm[0].1, fm[9].1);
    if diff > 1e-3 {
        eprintln!("parity FAILED");
        std::process::exit(1);
    }
}

#[cfg(not(feature = "cuda"))]
fn main() {
    eprintln!("built without the `cuda` feature: cargo run --release --features cuda --example cuda_check");
    std::process::exit(2);
}
