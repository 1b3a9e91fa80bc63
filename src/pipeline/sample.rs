//! Sampling: latents from the latent flow, images from latents, and whole samples, split over
//! worker threads on the CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::prelude::*;

use super::Pipeline;
use super::base::{all_threads, is_cpu};
use super::options::{ProgressFn, SampleOptions, check_count};
use crate::config::PriorKind;
use crate::error::{Error, Result};
use crate::rng::{Purpose, normal_rows};

/// Most images one CPU forward pass takes in [`Pipeline::sample`]; larger calls are cut up.
pub const CPU_CHUNK: usize = 16;

/// How a CPU sampling call of `count` images is split: (worker threads, images per chunk), or
/// None to run it as one batch (one worker and one chunk, or a non-CPU backend such as CUDA,
/// which wants the whole batch at once).
fn cpu_split<B: Backend>(count: usize) -> Option<(usize, usize)> {
    if !is_cpu::<B>() {
        return None;
    }
    let threads = all_threads();
    let chunk = count.div_ceil(threads).clamp(1, CPU_CHUNK);
    let workers = threads.min(count.div_ceil(chunk));
    (count > chunk).then_some((workers, chunk))
}

impl<B: Backend> Pipeline<B> {
    /// Draws `count` latents: w ~ N(0, I) from (seed, i), carried through theta_L from t=0 to 1.
    pub fn sample_latents(&self, count: usize, opts: &SampleOptions) -> Result<Tensor<B, 2>> {
        opts.validate_for(&self.meta.config)?;
        check_count(count, "count")?;
        let (_, latent) = self.learned("sample_latents")?;
        let d = self.meta.config.aux.latent_dim;
        let w = normal_rows::<B, 2>(opts.seed, opts.first_index, Purpose::LatentNoise, [count, d], &self.device);
        self.latents_from_noise(latent, w, opts)
    }

    /// Generates one image per latent row: x0 ~ learned prior of z (eps from (seed, i)), then the flow.
    pub fn generate(&self, z: Tensor<B, 2>, opts: &SampleOptions) -> Result<Tensor<B, 4>> {
        self.generate_on(z, opts, all_threads())
    }

    fn generate_on(&self, z: Tensor<B, 2>, opts: &SampleOptions, threads: usize) -> Result<Tensor<B, 4>> {
        opts.validate_for(&self.meta.config)?;
        self.check_latents(&z)?;
        let n = z.dims()[0];
        let eps =
            normal_rows::<B, 4>(opts.seed, opts.first_index, Purpose::PriorNoise, self.image_shape(n), &self.device);
        let (x0, _) = self.prior_draw(z, eps, opts)?;
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
        opts.validate_for(&self.meta.config)?;
        check_count(count, "count")?;
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
}
