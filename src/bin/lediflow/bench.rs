//! `lediflow bench`: sampling throughput and peak heap memory per batch size, the fixed cost of
//! LeDiFlow's prior (latent flow + decoder), one velocity-network forward with its achieved
//! GFLOP/s (the fused CPU pass sampling uses, next to the same network run as burn tensor ops),
//! and, for `bench/torch_reference.py`, one forward pass on inputs read from a file.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use burn::prelude::*;
use clap::Args;
use lediflow::model::dit::forward_flops;
use lediflow::{CpuBackend, Pipeline, Precision, PriorKind, SampleOptions, Solver};

type B = CpuBackend;

/// The system allocator, counting live and peak heap bytes (the `bench` subcommand reads them;
/// two relaxed atomic adds per allocation are invisible next to tensor work).
pub struct CountingAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are updated around it.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

/// Peak heap bytes above the level at the start, while `f` runs.
fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let out = f();
    (out, PEAK.load(Relaxed).saturating_sub(base))
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long)]
    model: PathBuf,
    /// Batch sizes (images per sampling call).
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    batches: Vec<usize>,
    #[arg(long, default_value_t = 4)]
    steps: usize,
    #[arg(long, default_value = "midpoint")]
    solver: String,
    /// Timed repetitions per measurement (after one warm-up); medians are reported.
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// The machine's fp32 peak in GFLOP/s for the threads used, to report the fraction reached
    /// (bench/peak_flops.c measures it).
    #[arg(long)]
    peak_gflops: Option<f64>,
    /// Also write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Instead of the benchmark: run the velocity network on `x` [N, C, H, W] and `t` [N] (f32)
    /// from this safetensors file, write `v` to --forward-output, print the median time as JSON.
    #[arg(long, requires = "forward_output")]
    forward_input: Option<PathBuf>,
    #[arg(long)]
    forward_output: Option<PathBuf>,
    /// Arithmetic of the fused passes' matrix products: fp32, bf16 or auto (what auto picks
    /// on this CPU); the table's columns are the same for each.
    #[arg(long, default_value = "fp32")]
    precision: String,
}

fn median_ms(repeats: usize, mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    f()?; // warm-up
    let mut v = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Ok(v[v.len() / 2])
}

/// Forces a tensor's computation to finish (backends may be lazy).
fn sync<const D: usize>(x: Tensor<B, D>) {
    let _ = x.into_data();
}

fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn bench(a: BenchArgs) -> Result<(), String> {
    let p = Pipeline::<B>::load(&a.model, &Default::default()).map_err(|e| format!("{}: {e}", a.model.display()))?;
    let precision = Precision::parse(&a.precision).map_err(|e| e.to_string())?;
    // Refused here (a CPU without bf16) before anything is timed.
    let kernels = precision.kernels(true).map_err(|e| e.to_string())?;
    if let Some(input) = &a.forward_input {
        return forward_io(&p, input, a.forward_output.as_deref().expect("clap requires it"), a.repeats, precision);
    }
    let opts = SampleOptions {
        precision,
        steps: a.steps,
        solver: Solver::parse(&a.solver).map_err(|e| e.to_string())?,
        ..Default::default()
    };
    opts.validate().map_err(|e| e.to_string())?;
    let cfg = p.config().clone();
    let flops = forward_flops(&cfg) as f64;
    let learned = cfg.prior == PriorKind::Learned;
    let dev = *p.device();
    let (c, s) = (cfg.image.channels, cfg.image.size);
    let nfe = opts.steps * opts.solver.evals_per_step();
    eprintln!(
        "{}: {} prior, {} parameters; {} threads on {}; {} {} steps ({nfe} NFE); {:.1} MFLOP per image per forward; \
         precision {precision} ({})",
        a.model.display(),
        if learned { "learned" } else { "Gaussian" },
        p.info().parameters,
        threads(),
        cpu_name(),
        opts.steps,
        opts.solver,
        flops / 1e6,
        match kernels {
            lediflow::pipeline::Kernels::Bf16 => "bf16 products, fp32 sums",
            lediflow::pipeline::Kernels::Fp32 => "fp32",
        }
    );
    println!(
        "| batch | sample (ms) | images/s | prior: latent flow + decoder (ms, share) | peak heap (MiB) | FM forward (ms) | GFLOP/s{} | burn-op forward (ms) |",
        if a.peak_gflops.is_some() { " (of peak)" } else { "" }
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for &n in &a.batches {
        let sample_ms = median_ms(a.repeats, || p.sample(n, &opts).map(sync).map_err(|e| e.to_string()))?;
        let (_, peak) = peak_heap(|| p.sample(n, &opts).map(sync).map_err(|e| e.to_string()));
        let prior_ms = if learned {
            Some(median_ms(a.repeats, || {
                let z = p.sample_latents(n, &opts).map_err(|e| e.to_string())?;
                p.decode_prior_with(z, precision).map(|(mu, _)| sync(mu)).map_err(|e| e.to_string())
            })?)
        } else {
            None
        };
        let x = Tensor::<B, 4>::random([n, c, s, s], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let t = Tensor::<B, 1>::full([n], 0.5, &dev);
        let fwd_ms = median_ms(a.repeats, || {
            sync(p.velocity_with(x.clone(), t.clone(), precision).map_err(|e| e.to_string())?);
            Ok(())
        })?;
        let net = &p.networks().velocity;
        let burn_ms = median_ms(a.repeats, || {
            sync(net.forward(x.clone(), t.clone()));
            Ok(())
        })?;
        let gflops = flops * n as f64 / fwd_ms / 1e6;
        let of_peak = a.peak_gflops.map(|pk| format!(" ({:.0}%)", 100.0 * gflops / pk)).unwrap_or_default();
        let prior_cell = prior_ms
            .map(|m| format!("{m:.1} ({:.0}%)", 100.0 * m / sample_ms))
            .unwrap_or_else(|| "none (Gaussian)".into());
        println!(
            "| {n} | {sample_ms:.1} | {:.1} | {prior_cell} | {:.1} | {fwd_ms:.2} | {gflops:.1}{of_peak} | {burn_ms:.2} |",
            n as f64 * 1e3 / sample_ms,
            peak as f64 / (1 << 20) as f64
        );
        rows.push(serde_json::json!({
            "batch": n,
            "sample_ms": sample_ms,
            "images_per_s": n as f64 * 1e3 / sample_ms,
            "prior_ms": prior_ms,
            "peak_heap_bytes": peak,
            "forward_ms": fwd_ms,
            "forward_gflops": gflops,
            "burn_forward_ms": burn_ms,
        }));
    }
    if let Some(path) = &a.json {
        let doc = serde_json::json!({
            "model": a.model.display().to_string(),
            "cpu": cpu_name(),
            "threads": threads(),
            "precision": precision.name(),
            "kernels": format!("{kernels:?}"),
            "solver": opts.solver.to_string(),
            "steps": opts.steps,
            "nfe": nfe,
            "forward_flops_per_image": flops,
            "peak_gflops": a.peak_gflops,
            "repeats": a.repeats,
            "rows": rows,
        });
        lediflow::checkpoint::write_atomic(path, serde_json::to_string_pretty(&doc).unwrap().as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Reads f32 tensor `name` from a safetensors file.
fn read_f32(st: &safetensors::SafeTensors, name: &str) -> Result<(Vec<f32>, Vec<usize>), String> {
    let t = st.tensor(name).map_err(|e| format!("tensor '{name}': {e}"))?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(format!("tensor '{name}' must be F32, is {:?}", t.dtype()));
    }
    let v = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok((v, t.shape().to_vec()))
}

fn forward_io(
    p: &Pipeline<B>,
    input: &Path,
    output: &Path,
    repeats: usize,
    precision: Precision,
) -> Result<(), String> {
    let bytes = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| format!("{}: {e}", input.display()))?;
    let (xv, xs) = read_f32(&st, "x")?;
    let (tv, ts) = read_f32(&st, "t")?;
    let cfg = p.config();
    let want = [cfg.image.channels, cfg.image.size, cfg.image.size];
    if xs.len() != 4 || xs[1..] != want || ts != [xs[0]] {
        return Err(format!("x must be [N, {}, {}, {}] and t [N]; got {xs:?} and {ts:?}", want[0], want[1], want[2]));
    }
    let dev = p.device();
    let x = Tensor::<B, 1>::from_floats(xv.as_slice(), dev).reshape([xs[0], xs[1], xs[2], xs[3]]);
    let t = Tensor::<B, 1>::from_floats(tv.as_slice(), dev);
    let ms = median_ms(repeats, || {
        sync(p.velocity_with(x.clone(), t.clone(), precision).map_err(|e| e.to_string())?);
        Ok(())
    })?;
    let net = &p.networks().velocity;
    let burn_ms = median_ms(repeats, || {
        sync(net.forward(x.clone(), t.clone()));
        Ok(())
    })?;
    let v: Vec<f32> = p
        .velocity_with(x.clone(), t.clone(), precision)
        .map_err(|e| e.to_string())?
        .into_data()
        .to_vec()
        .map_err(|e| format!("{e:?}"))?;
    let vb: Vec<f32> = net.forward(x, t).into_data().to_vec().map_err(|e| format!("{e:?}"))?;
    let diff = v.iter().zip(&vb).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    let raw: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, xs.clone(), &raw).map_err(|e| e.to_string())?;
    let out = safetensors::serialize([("v", view)], &None).map_err(|e| e.to_string())?;
    lediflow::checkpoint::write_atomic(output, &out).map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::json!({
            "forward_ms": ms,
            "burn_forward_ms": burn_ms,
            "max_abs_diff_fused_vs_burn": diff,
            "repeats": repeats,
            "threads": threads(),
            "batch": xs[0],
            "precision": precision.name(),
        })
    );
    Ok(())
}
