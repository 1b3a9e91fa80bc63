//! The generation pipeline on any burn backend: sample, sample latents, generate from latents,
//! encode, decode the prior, interpolate and inpaint (METHOD.md). Images are [N, C, H, W]
//! tensors in [-1, 1]; see [`crate::image`] for 8-bit conversion.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::checkpoint::{self, ModelMeta};
use crate::config::{ModelConfig, Prediction, PriorKind};
use crate::error::{Error, Result, invalid};
use crate::flow::{Solver, VelocityField, output_to_velocity};
use crate::model::cpu::decoder::CpuDecoder;
use crate::model::cpu::dit::CpuDit;
use crate::model::cpu::encoder::CpuEncoder;
use crate::model::cpu::latent::CpuLatentFlow;
use crate::model::{LatentFlowNet, Networks, VelocityNet};
use crate::rng::{Purpose, Rng, normal_rows};

/// Progress callback: (step done, total steps) -> keep going? Returning false cancels the call.
pub type ProgressFn = Arc<dyn Fn(usize, usize) -> bool + Send + Sync>;

/// Most images one CPU forward pass takes in [`Pipeline::sample`]; larger calls are cut up.
pub const CPU_CHUNK: usize = 16;

/// How a CPU sampling call of `count` images is split: (worker threads, images per chunk), or
/// None to run it as one batch (one worker and one chunk, or a non-CPU backend such as CUDA,
/// which wants the whole batch at once).
fn cpu_split<B: Backend>(count: usize) -> Option<(usize, usize)> {
    if std::any::TypeId::of::<B>() != std::any::TypeId::of::<crate::CpuBackend>() {
        return None;
    }
    let threads = all_threads();
    let chunk = count.div_ceil(threads).clamp(1, CPU_CHUNK);
    let workers = threads.min(count.div_ceil(chunk));
    (count > chunk).then_some((workers, chunk))
}

fn all_threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Largest batch one call accepts: beyond it a typo (or a negative number cast to unsigned)
/// would try to allocate far more memory than any machine has.
pub const MAX_COUNT: usize = 1 << 16;
/// Largest `first_index`: with up to [`MAX_COUNT`] images and 4096 inpainting candidates per
/// image, every noise stream index (first_index + i, and (first_index + i) x candidates) stays
/// far from u64's end, so no index can wrap around onto another image's stream.
pub(crate) const MAX_FIRST_INDEX: u64 = 1 << 48;
/// Largest step count one call accepts.
pub const MAX_STEPS: usize = 10_000;

/// Parameters of one generation call.
#[derive(Clone)]
pub struct SampleOptions {
    /// Seed of every random draw in the call.
    pub seed: u64,
    /// Image-flow solver steps (NFE = steps * solver.evals_per_step()).
    pub steps: usize,
    pub solver: Solver,
    /// s in x0 = mu_P + s * sigma_P * eps. 0 starts from the prior mean. Ignored by Gaussian-prior models.
    pub prior_scale: f32,
    /// Timestep shift of the image flow's solver grid ([`crate::flow::time_grid`]): 1 = equal
    /// steps; > 1 shorter steps near the prior. Gaussian-prior flows need it at few steps.
    /// None (the default) = the model file's recommendation ([`Pipeline::time_shift`]).
    pub time_shift: Option<f32>,
    /// Latent-flow solver steps (cheap: an MLP on latent_dim numbers).
    pub latent_steps: usize,
    pub latent_solver: Solver,
    /// Candidate latents drawn by inpainting besides the encoder's guess (best-of-K).
    pub inpaint_candidates: usize,
    /// Index of the call's first image in the seed's streams: image i of the call draws its noise
    /// from (seed, first_index + i), so a large request split into several calls (or batches)
    /// gives exactly the images of one big call. At most 2^48 (larger values are refused).
    pub first_index: u64,
    pub progress: Option<ProgressFn>,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            steps: 4,
            solver: Solver::Midpoint,
            prior_scale: 1.0,
            time_shift: None,
            latent_steps: 16,
            latent_solver: Solver::Midpoint,
            inpaint_candidates: 16,
            first_index: 0,
            progress: None,
        }
    }
}

impl std::fmt::Debug for SampleOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleOptions")
            .field("seed", &self.seed)
            .field("steps", &self.steps)
            .field("solver", &self.solver)
            .field("prior_scale", &self.prior_scale)
            .field("time_shift", &self.time_shift)
            .field("latent_steps", &self.latent_steps)
            .field("latent_solver", &self.latent_solver)
            .field("inpaint_candidates", &self.inpaint_candidates)
            .field("first_index", &self.first_index)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Whether `t` is a solver-grid shift sampling accepts (finite, in [0.01, 100]); model files'
/// recommendations are held to the same range.
pub(crate) fn valid_time_shift(t: f32) -> bool {
    t.is_finite() && (0.01..=100.0).contains(&t)
}

impl SampleOptions {
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.steps > MAX_STEPS {
            return invalid(format!("steps must be in 1..={MAX_STEPS}, got {}", self.steps));
        }
        if self.latent_steps == 0 || self.latent_steps > MAX_STEPS {
            return invalid(format!("latent_steps must be in 1..={MAX_STEPS}, got {}", self.latent_steps));
        }
        if !self.prior_scale.is_finite() || !(0.0..=100.0).contains(&self.prior_scale) {
            return invalid(format!("prior_scale must be finite and in [0, 100], got {}", self.prior_scale));
        }
        if let Some(t) = self.time_shift
            && !valid_time_shift(t)
        {
            return invalid(format!("time_shift must be finite and in [0.01, 100], got {t}"));
        }
        if self.inpaint_candidates > 4096 {
            return invalid(format!("inpaint_candidates must be <= 4096, got {}", self.inpaint_candidates));
        }
        if self.first_index > MAX_FIRST_INDEX {
            return invalid(format!("first_index must be at most 2^48, got {}", self.first_index));
        }
        Ok(())
    }
}

/// How to walk between two given latents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    Linear,
    Spherical,
}

/// What a loaded model is.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub channels: usize,
    pub width: usize,
    pub height: usize,
    /// 0 for Gaussian-prior models (they have no latent space).
    pub latent_dim: usize,
    pub prior: PriorKind,
    pub format_version: u32,
    pub parameters: usize,
}

/// The image velocity field: the fused CPU forward pass when the pipeline has one (CPU
/// backend), burn's forward otherwise.
struct ImageField<'a, B: Backend> {
    net: &'a VelocityNet<B>,
    fast: Option<&'a CpuDit>,
    prediction: Prediction,
    /// Threads the fused pass may spread one call's images over.
    threads: usize,
}

/// Velocity of `net` at (x, t) with t given per image, through `fast` when present; a
/// data-predicting network's output is turned into the velocity it stands for.
fn velocity_at<B: Backend>(
    net: &VelocityNet<B>,
    fast: Option<&CpuDit>,
    prediction: Prediction,
    threads: usize,
    x: Tensor<B, 4>,
    t: Tensor<B, 1>,
) -> Tensor<B, 4> {
    let (dims, device) = (x.dims(), x.device());
    let floats = |d: TensorData| d.convert::<f32>().into_vec::<f32>();
    let out = match fast.map(|f| (f, floats(x.clone().into_data()), floats(t.clone().into_data()))) {
        Some((fast, Ok(xs), Ok(ts))) => {
            Tensor::from_data(TensorData::new(fast.forward(&xs, &ts, threads), dims), &device)
        }
        _ => net.forward(x.clone(), t.clone()),
    };
    output_to_velocity(prediction, out, x, t)
}

impl<B: Backend> VelocityField<B, 4> for ImageField<'_, B> {
    fn velocity(&self, x: Tensor<B, 4>, t: f32) -> Tensor<B, 4> {
        let n = x.dims()[0];
        let tt = Tensor::<B, 1>::full([n], t, &x.device());
        velocity_at(self.net, self.fast, self.prediction, self.threads, x, tt)
    }
}

struct LatentField<'a, B: Backend>(&'a LatentFlowNet<B>, Option<&'a CpuLatentFlow>);

impl<B: Backend> VelocityField<B, 2> for LatentField<'_, B> {
    fn velocity(&self, z: Tensor<B, 2>, t: f32) -> Tensor<B, 2> {
        let n = z.dims()[0];
        if let Some(fast) = self.1
            && let Ok(zs) = z.clone().into_data().convert::<f32>().into_vec::<f32>()
        {
            return Tensor::from_data(TensorData::new(fast.forward(&zs, &vec![t; n]), z.dims()), &z.device());
        }
        let tt = Tensor::<B, 1>::full([n], t, &z.device());
        self.0.forward(z, tt)
    }
}

/// Spherical interpolation between two vectors, falling back to linear when nearly parallel.
pub fn slerp(a: &[f32], b: &[f32], lambda: f32) -> Vec<f32> {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let cos = if na > 0.0 && nb > 0.0 { (dot / (na * nb)).clamp(-1.0, 1.0) } else { 1.0 };
    let omega = cos.acos();
    let l = lambda as f64;
    let (wa, wb) = if omega.sin().abs() < 1e-6 {
        (1.0 - l, l)
    } else {
        (((1.0 - l) * omega).sin() / omega.sin(), (l * omega).sin() / omega.sin())
    };
    a.iter().zip(b).map(|(x, y)| (wa * *x as f64 + wb * *y as f64) as f32).collect()
}

fn lambdas(frames: usize) -> impl Iterator<Item = f32> {
    (0..frames).map(move |i| if frames == 1 { 0.0 } else { i as f32 / (frames - 1) as f32 })
}

/// A loaded LeDiFlow (or Gaussian-baseline) pipeline on backend `B`.
#[derive(Debug)]
pub struct Pipeline<B: Backend> {
    nets: Networks<B>,
    meta: ModelMeta,
    device: B::Device,
    /// The weights of the velocity network, the decoder, the encoder and the latent flow for
    /// the fused CPU passes (`model::cpu`; CPU backend only).
    fast: Option<CpuDit>,
    fast_decoder: Option<CpuDecoder>,
    fast_encoder: Option<CpuEncoder>,
    fast_latent: Option<CpuLatentFlow>,
}

impl<B: Backend> Pipeline<B> {
    pub fn new(nets: Networks<B>, meta: ModelMeta, device: B::Device) -> Self {
        let cpu = std::any::TypeId::of::<B>() == std::any::TypeId::of::<crate::CpuBackend>();
        let fast = cpu.then(|| CpuDit::from_net(&nets.velocity));
        let fast_decoder = nets.decoder.as_ref().filter(|_| cpu).map(CpuDecoder::from_net);
        let fast_encoder = nets.encoder.as_ref().filter(|_| cpu).map(CpuEncoder::from_net);
        let fast_latent = nets.latent.as_ref().filter(|_| cpu).map(CpuLatentFlow::from_net);
        Self { nets, meta, device, fast, fast_decoder, fast_encoder, fast_latent }
    }

    pub fn load(path: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let (nets, meta) = checkpoint::load(path.as_ref(), device)?;
        Ok(Self::new(nets, meta, device.clone()))
    }

    pub fn from_bytes(bytes: &[u8], device: &B::Device) -> Result<Self> {
        let (nets, meta) = checkpoint::from_bytes(bytes, device)?;
        Ok(Self::new(nets, meta, device.clone()))
    }

    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        checkpoint::save(path.as_ref(), &self.nets, &self.meta)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.meta.config
    }

    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// The solver-grid shift a call with `opts` uses: its own, else the model file's
    /// recommendation, else 1 (equal steps).
    pub fn time_shift(&self, opts: &SampleOptions) -> f32 {
        opts.time_shift.or(self.meta.sampling.time_shift).unwrap_or(1.0)
    }

    /// Sets the sampling settings recommended in this model's metadata (written with it by
    /// [`crate::checkpoint::save`]); validated like a loaded file's.
    pub fn set_sampling_defaults(&mut self, sampling: crate::checkpoint::SamplingDefaults) -> Result<()> {
        sampling.validate().map_err(|e| match e {
            Error::Format(m) => Error::InvalidArgument(m),
            e => e,
        })?;
        self.meta.sampling = sampling;
        Ok(())
    }

    pub fn networks(&self) -> &Networks<B> {
        &self.nets
    }

    /// One evaluation of the image velocity network: x [N, C, H, W], t [N] -> [N, C, H, W].
    /// On the CPU backend this is the fused forward pass sampling uses, spread over rayon's
    /// threads; elsewhere burn's forward.
    pub fn velocity(&self, x: Tensor<B, 4>, t: Tensor<B, 1>) -> Result<Tensor<B, 4>> {
        self.check_images(&x)?;
        if t.dims()[0] != x.dims()[0] {
            return invalid(format!("t has {} entries for {} images", t.dims()[0], x.dims()[0]));
        }
        Ok(velocity_at(&self.nets.velocity, self.fast.as_ref(), self.config().dit.prediction, all_threads(), x, t))
    }

    pub fn device(&self) -> &B::Device {
        &self.device
    }

    pub fn info(&self) -> ModelInfo {
        let c = &self.meta.config;
        ModelInfo {
            channels: c.image.channels,
            width: c.image.size,
            height: c.image.size,
            latent_dim: if c.prior == PriorKind::Learned { c.aux.latent_dim } else { 0 },
            prior: c.prior,
            format_version: self.meta.format_version,
            parameters: self.nets.num_params(),
        }
    }

    fn learned(&self, what: &str) -> Result<(&crate::model::AuxDecoder<B>, &LatentFlowNet<B>)> {
        match (&self.nets.decoder, &self.nets.latent) {
            (Some(d), Some(l)) => Ok((d, l)),
            _ => Err(Error::Unsupported(format!("{what} needs a learned-prior model; this one has a Gaussian prior"))),
        }
    }

    fn check_count(count: usize) -> Result<()> {
        if count == 0 || count > MAX_COUNT {
            return invalid(format!("count must be in 1..={MAX_COUNT}, got {count}"));
        }
        Ok(())
    }

    fn check_images(&self, images: &Tensor<B, 4>) -> Result<()> {
        let [n, c, h, w] = images.dims();
        let s = self.meta.config.image;
        if c != s.channels || h != s.size || w != s.size {
            return invalid(format!("images are {c}x{h}x{w}, the model needs {}x{}x{}", s.channels, s.size, s.size));
        }
        Self::check_count(n)
    }

    fn check_latents(&self, z: &Tensor<B, 2>) -> Result<()> {
        let [n, d] = z.dims();
        let want = self.meta.config.aux.latent_dim;
        if d != want {
            return invalid(format!("latents have dimension {d}, the model needs {want}"));
        }
        Self::check_count(n)?;
        let finite: bool = z.clone().is_finite().all().into_scalar().to_bool();
        if !finite {
            return invalid("latents contain NaN or infinity");
        }
        Ok(())
    }

    fn image_shape(&self, n: usize) -> [usize; 4] {
        let s = self.meta.config.image;
        [n, s.channels, s.size, s.size]
    }

    /// Draws `count` latents: w ~ N(0, I) from (seed, i), carried through theta_L from t=0 to 1.
    pub fn sample_latents(&self, count: usize, opts: &SampleOptions) -> Result<Tensor<B, 2>> {
        opts.validate()?;
        Self::check_count(count)?;
        let (_, latent) = self.learned("sample_latents")?;
        let d = self.meta.config.aux.latent_dim;
        let w = normal_rows::<B, 2>(opts.seed, opts.first_index, Purpose::LatentNoise, [count, d], &self.device);
        self.latents_from_noise(latent, w, opts)
    }

    fn latents_from_noise(
        &self,
        latent: &LatentFlowNet<B>,
        w: Tensor<B, 2>,
        opts: &SampleOptions,
    ) -> Result<Tensor<B, 2>> {
        let field = LatentField(latent, self.fast_latent.as_ref());
        let sol = opts.latent_solver.solve(&field, w, opts.latent_steps, &mut |_, _, _, z| Ok(z))?;
        Ok(sol.x)
    }

    /// The learned prior N(mu_P(z), exp(logvar_P(z))) for latents z: (mu_P, logvar_P).
    pub fn decode_prior(&self, z: Tensor<B, 2>) -> Result<(Tensor<B, 4>, Tensor<B, 4>)> {
        self.learned("decode_prior")?;
        self.check_latents(&z)?;
        self.decode(z)
    }

    /// The decoder's forward pass: the fused CPU pass when the pipeline has one.
    fn decode(&self, z: Tensor<B, 2>) -> Result<(Tensor<B, 4>, Tensor<B, 4>)> {
        let (decoder, _) = self.learned("decode_prior")?;
        let Some(fast) = &self.fast_decoder else {
            return Ok(decoder.forward(z));
        };
        let zs = z.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| Error::Internal(format!("{e:?}")))?;
        let (mu, logvar) = fast.forward(&zs);
        let shape = self.image_shape(mu.len() / self.image_shape(1).iter().product::<usize>());
        Ok((
            Tensor::from_data(TensorData::new(mu, shape), &self.device),
            Tensor::from_data(TensorData::new(logvar, shape), &self.device),
        ))
    }

    /// Encodes images to latents (the posterior mean mu_E).
    pub fn encode(&self, images: Tensor<B, 4>) -> Result<Tensor<B, 2>> {
        self.check_images(&images)?;
        let enc = self.nets.encoder.as_ref().ok_or_else(|| {
            Error::Unsupported("encode needs a learned-prior model; this one has a Gaussian prior".into())
        })?;
        let Some(fast) = &self.fast_encoder else {
            return Ok(enc.forward(images).0);
        };
        let n = images.dims()[0];
        let xs =
            images.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| Error::Internal(format!("{e:?}")))?;
        let (mu, _) = fast.forward(&xs);
        Ok(Tensor::from_data(TensorData::new(mu, [n, self.meta.config.aux.latent_dim]), &self.device))
    }

    /// Prior draw x0 for latents z with the given standard-normal eps.
    fn prior_draw(&self, z: Tensor<B, 2>, eps: Tensor<B, 4>, scale: f32) -> Result<(Tensor<B, 4>, Tensor<B, 4>)> {
        let (mu, logvar) = self.decode_prior(z)?;
        let x0 = mu.clone() + (logvar * 0.5).exp() * eps * scale;
        Ok((x0, mu))
    }

    /// Integrates the image flow from x0, reporting progress and honouring cancellation.
    fn solve_images(
        &self,
        x0: Tensor<B, 4>,
        opts: &SampleOptions,
        threads: usize,
        mut project: impl FnMut(f32, Tensor<B, 4>) -> Tensor<B, 4>,
    ) -> Result<Tensor<B, 4>> {
        let progress = opts.progress.clone();
        let mut hook = |step: usize, total: usize, t: f32, x: Tensor<B, 4>| {
            let x = project(t, x);
            if let Some(p) = &progress
                && !p(step, total)
            {
                return Err(Error::Cancelled);
            }
            Ok(x)
        };
        let field = ImageField {
            net: &self.nets.velocity,
            fast: self.fast.as_ref(),
            prediction: self.config().dit.prediction,
            threads,
        };
        let sol = opts.solver.solve_shifted(&field, x0, opts.steps, self.time_shift(opts), &mut hook)?;
        Ok(sol.x.clamp(-1.0, 1.0))
    }

    /// Generates one image per latent row: x0 ~ learned prior of z (eps from (seed, i)), then the flow.
    pub fn generate(&self, z: Tensor<B, 2>, opts: &SampleOptions) -> Result<Tensor<B, 4>> {
        self.generate_on(z, opts, all_threads())
    }

    fn generate_on(&self, z: Tensor<B, 2>, opts: &SampleOptions, threads: usize) -> Result<Tensor<B, 4>> {
        opts.validate()?;
        self.check_latents(&z)?;
        let n = z.dims()[0];
        let eps =
            normal_rows::<B, 4>(opts.seed, opts.first_index, Purpose::PriorNoise, self.image_shape(n), &self.device);
        let (x0, _) = self.prior_draw(z, eps, opts.prior_scale)?;
        self.solve_images(x0, opts, threads, |_, x| x)
    }

    /// Samples `count` images. Image i depends only on (seed, first_index + i), not on count.
    ///
    /// On the CPU backend a call is cut into chunks of at most [`CPU_CHUNK`] images, shared out
    /// to one worker thread per core (rayon's thread count, so `RAYON_NUM_THREADS` applies), so
    /// that the whole pipeline (prior, flow steps, burn's element-wise solver updates) runs in
    /// parallel and a large call's working set stays small. The split changes nothing in the
    /// result (bitwise: each image has its own noise stream and the CPU passes compute every
    /// image alone). The progress callback is called on the calling thread only, counting the
    /// steps of the chunks that thread runs.
    pub fn sample(&self, count: usize, opts: &SampleOptions) -> Result<Tensor<B, 4>> {
        opts.validate()?;
        Self::check_count(count)?;
        let Some((workers, chunk)) = cpu_split::<B>(count) else {
            return self.sample_chunk(count, opts, all_threads());
        };
        let starts: Vec<usize> = (0..count).step_by(chunk).collect();
        let stop = Arc::new(AtomicBool::new(false));
        // Worker w runs chunks w, w + workers, ... in order; worker 0 is this thread.
        let run_worker = |w: usize| -> Vec<Result<Tensor<B, 4>>> {
            let mine: Vec<usize> = starts.iter().copied().skip(w).step_by(workers).collect();
            let mut out = Vec::with_capacity(mine.len());
            for (j, &start) in mine.iter().enumerate() {
                let stop2 = stop.clone();
                let progress: ProgressFn = match (&opts.progress, w) {
                    (Some(user), 0) => {
                        let (user, m) = (user.clone(), mine.len());
                        Arc::new(move |k, total| {
                            let go = !stop2.load(Ordering::Relaxed) && user(j * total + k, m * total);
                            if !go {
                                stop2.store(true, Ordering::Relaxed);
                            }
                            go
                        })
                    }
                    _ => Arc::new(move |_, _| !stop2.load(Ordering::Relaxed)),
                };
                let o = SampleOptions {
                    first_index: opts.first_index + start as u64,
                    progress: Some(progress),
                    ..opts.clone()
                };
                let r = self.sample_chunk(chunk.min(count - start), &o, 1);
                let failed = r.is_err();
                out.push(r);
                if failed {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
            out
        };
        let per_worker: Vec<Vec<Result<Tensor<B, 4>>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (1..workers).map(|w| s.spawn(move || run_worker(w))).collect();
            let mut all = vec![run_worker(0)];
            for h in handles {
                all.push(
                    h.join().unwrap_or_else(|_| vec![Err(Error::Internal("a sampling worker thread panicked".into()))]),
                );
            }
            all
        });
        // The first failure in image order is the result (a cancellation stops every worker).
        let mut per_worker: Vec<std::vec::IntoIter<Result<Tensor<B, 4>>>> =
            per_worker.into_iter().map(|v| v.into_iter()).collect();
        let mut parts = Vec::with_capacity(starts.len());
        for i in 0..starts.len() {
            match per_worker[i % workers].next() {
                Some(r) => parts.push(r?),
                None => return Err(Error::Internal("a sampling chunk is missing".into())),
            }
        }
        Ok(Tensor::cat(parts, 0))
    }

    /// `threads`: how many threads the image flow's forward passes may use (1 inside a worker).
    fn sample_chunk(&self, count: usize, opts: &SampleOptions, threads: usize) -> Result<Tensor<B, 4>> {
        match self.meta.config.prior {
            PriorKind::Learned => {
                let z = self.sample_latents(count, opts)?;
                self.generate_on(z, opts, threads)
            }
            PriorKind::Gaussian => {
                let x0 = normal_rows::<B, 4>(
                    opts.seed,
                    opts.first_index,
                    Purpose::PriorNoise,
                    self.image_shape(count),
                    &self.device,
                );
                self.solve_images(x0, opts, threads, |_, x| x)
            }
        }
    }

    /// Frames between two given latents (each [1, latent_dim]); every frame uses the same prior
    /// noise (from (seed, 0)), so frame 0 and the last frame equal `generate` of the two endpoints.
    pub fn interpolate_latents(
        &self,
        z_from: Tensor<B, 2>,
        z_to: Tensor<B, 2>,
        frames: usize,
        mode: Interpolation,
        opts: &SampleOptions,
    ) -> Result<Tensor<B, 4>> {
        opts.validate()?;
        let z = self.interpolation_path(z_from, z_to, frames, mode)?;
        self.generate_frames(z, opts)
    }

    /// The latents of `frames` evenly spaced frames from `z_from` to `z_to` (both [1, latent_dim]),
    /// endpoints included: [frames, latent_dim]. Cheap; pair it with [`Self::generate_frames`] to
    /// render a long animation in batches.
    pub fn interpolation_path(
        &self,
        z_from: Tensor<B, 2>,
        z_to: Tensor<B, 2>,
        frames: usize,
        mode: Interpolation,
    ) -> Result<Tensor<B, 2>> {
        Self::check_count(frames)?;
        self.learned("interpolate_latents")?;
        for z in [&z_from, &z_to] {
            if z.dims()[0] != 1 {
                return invalid("interpolation endpoints must be single latents [1, latent_dim]");
            }
            self.check_latents(z)?;
        }
        let a = z_from.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| Error::Internal(format!("{e:?}")))?;
        let b = z_to.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| Error::Internal(format!("{e:?}")))?;
        let d = a.len();
        let mut rows = Vec::with_capacity(frames * d);
        for l in lambdas(frames) {
            match mode {
                Interpolation::Linear => rows.extend(a.iter().zip(&b).map(|(x, y)| x + (y - x) * l)),
                Interpolation::Spherical => rows.extend(slerp(&a, &b, l)),
            }
        }
        Ok(Tensor::<B, 2>::from_data(TensorData::new(rows, [frames, d]), &self.device))
    }

    /// One image per latent row like [`Self::generate`], except that every row uses the same
    /// prior noise (that of (seed, 0)): the frames of an animation differ only by their latents.
    pub fn generate_frames(&self, z: Tensor<B, 2>, opts: &SampleOptions) -> Result<Tensor<B, 4>> {
        opts.validate()?;
        self.learned("generate_frames")?;
        self.check_latents(&z)?;
        self.generate_shared_noise(z, opts)
    }

    fn shared_eps(&self, frames: usize, seed: u64) -> Tensor<B, 4> {
        let one = normal_rows::<B, 4>(seed, 0, Purpose::PriorNoise, self.image_shape(1), &self.device);
        one.repeat_dim(0, frames)
    }

    fn generate_shared_noise(&self, z: Tensor<B, 2>, opts: &SampleOptions) -> Result<Tensor<B, 4>> {
        let n = z.dims()[0];
        let (x0, _) = self.prior_draw(z, self.shared_eps(n, opts.seed), opts.prior_scale)?;
        self.solve_images(x0, opts, all_threads(), |_, x| x)
    }

    /// Frames between the latent-noise draws of two seeds: w is slerped, each frame's w is
    /// carried through theta_L, and all frames share the prior noise of `opts.seed`. For a
    /// Gaussian-prior model the two seeds' image noises are slerped directly.
    pub fn interpolate_seeds(
        &self,
        seed_from: u64,
        seed_to: u64,
        frames: usize,
        opts: &SampleOptions,
    ) -> Result<Tensor<B, 4>> {
        opts.validate()?;
        Self::check_count(frames)?;
        let (purpose, shape) = match self.meta.config.prior {
            PriorKind::Learned => (Purpose::LatentNoise, vec![self.meta.config.aux.latent_dim]),
            PriorKind::Gaussian => (Purpose::PriorNoise, self.image_shape(1)[1..].to_vec()),
        };
        let per: usize = shape.iter().product();
        let wa = Rng::stream(seed_from, 0, purpose).normal_vec(per);
        let wb = Rng::stream(seed_to, 0, purpose).normal_vec(per);
        let rows: Vec<f32> = lambdas(frames).flat_map(|l| slerp(&wa, &wb, l)).collect();
        match self.meta.config.prior {
            PriorKind::Learned => {
                let (_, latent) = self.learned("interpolate_seeds")?;
                let w = Tensor::<B, 2>::from_data(TensorData::new(rows, [frames, per]), &self.device);
                let z = self.latents_from_noise(latent, w, opts)?;
                self.generate_shared_noise(z, opts)
            }
            PriorKind::Gaussian => {
                let x0 = Tensor::<B, 4>::from_data(TensorData::new(rows, self.image_shape(frames)), &self.device);
                self.solve_images(x0, opts, all_threads(), |_, x| x)
            }
        }
    }

    /// Fills the pixels where `masks` is 0 and returns the pixels where it is 1 unchanged.
    ///
    /// images [N, C, H, W] in [-1, 1]; masks [N, 1, H, W] (1 = keep, 0 = fill). The latent is
    /// chosen best-of-K: the encoding of the image with its hole filled by the mean known colour,
    /// plus `inpaint_candidates` draws from theta_L, scored by the prior mean's error on the known
    /// pixels. The flow then runs from the prior draw, and after every step the known pixels are
    /// put back on their straight path (1 - t) x0 + t y, which reaches y exactly at t = 1.
    pub fn inpaint(&self, images: Tensor<B, 4>, masks: Tensor<B, 4>, opts: &SampleOptions) -> Result<Tensor<B, 4>> {
        opts.validate()?;
        self.check_images(&images)?;
        let [n, c, h, w] = images.dims();
        if masks.dims() != [n, 1, h, w] {
            return invalid(format!("masks must be [{n}, 1, {h}, {w}], got {:?}", masks.dims()));
        }
        let keep = masks.greater_elem(0.5);
        let keep_c = keep.clone().expand([n, c, h, w]);
        let m = keep_c.clone().float();
        let eps = normal_rows::<B, 4>(opts.seed, opts.first_index, Purpose::PriorNoise, [n, c, h, w], &self.device);
        let x0 = match self.meta.config.prior {
            PriorKind::Gaussian => eps,
            PriorKind::Learned => {
                let z = self.inpaint_latents(&images, &m, opts)?;
                self.prior_draw(z, eps, opts.prior_scale)?.0
            }
        };
        let y = images.clone();
        let x0_known = x0.clone();
        let out = self.solve_images(x0, opts, all_threads(), |t, x| {
            let on_path = x0_known.clone() * (1.0 - t) + y.clone() * t;
            x.mask_where(keep_c.clone(), on_path)
        })?;
        // Exact known pixels regardless of float rounding along the path.
        Ok(out.mask_where(keep_c, images))
    }

    fn inpaint_latents(&self, images: &Tensor<B, 4>, m: &Tensor<B, 4>, opts: &SampleOptions) -> Result<Tensor<B, 2>> {
        let (_, latent) = self.learned("inpaint")?;
        let [n, c, h, w] = images.dims();
        let d = self.meta.config.aux.latent_dim;
        // Fill the hole with the mean colour of the known pixels so the encoder sees a plausible image.
        let known = m.clone().sum_dim(2).sum_dim(3).clamp_min(1.0);
        let mean = (images.clone() * m.clone()).sum_dim(2).sum_dim(3) / known;
        let filled = images.clone() * m.clone() + mean.expand([n, c, h, w]) * (m.clone().neg() + 1.0);
        let encoded = self.encode(filled)?;
        let k = opts.inpaint_candidates;
        if k == 0 {
            return Ok(encoded);
        }
        // Candidates for image i: its encoding, then k latents from theta_L (streams (seed, i*k + j)
        // with i counted from first_index).
        let first = opts.first_index.saturating_mul(k as u64);
        let noise = normal_rows::<B, 2>(opts.seed, first, Purpose::InpaintCandidates, [n * k, d], &self.device);
        let drawn = self.latents_from_noise(latent, noise, opts)?.reshape([n, k, d]);
        let cands = Tensor::cat(vec![encoded.unsqueeze_dim(1), drawn], 1); // [n, k+1, d]
        let flat = cands.clone().reshape([n * (k + 1), d]);
        let (mu, _) = self.decode(flat)?;
        let mu = mu.reshape([n, k + 1, c, h, w]);
        let y = images.clone().unsqueeze_dim::<5>(1);
        let mm = m.clone().unsqueeze_dim::<5>(1);
        let err = ((mu - y) * mm).powi_scalar(2).sum_dim(2).sum_dim(3).sum_dim(4).reshape([n, k + 1]);
        let best = err.argmin(1); // [n, 1]
        let idx = best.reshape([n, 1, 1]).expand([n, 1, d]);
        Ok(cands.gather(1, idx).reshape([n, d]))
    }
}
