//! Interpolation (between two latents, or between two seeds' noise) and inpainting.

use std::ops::Range;

use burn::prelude::*;
use burn::tensor::TensorData;

use super::Pipeline;
use super::base::{all_threads, floats};
use super::fields::{lambda, slerp};
use super::options::{Interpolation, SampleOptions, check_count};
use crate::config::PriorKind;
use crate::error::{Result, invalid};
use crate::rng::{Purpose, Rng, normal_rows};

impl<B: Backend> Pipeline<B> {
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
        opts.validate_for(&self.meta.config)?;
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
        check_count(frames, "frames")?;
        self.learned("interpolate_latents")?;
        for z in [&z_from, &z_to] {
            if z.dims()[0] != 1 {
                return invalid("interpolation endpoints must be single latents [1, latent_dim]");
            }
            self.check_latents(z)?;
        }
        let (a, b) = (floats(z_from)?, floats(z_to)?);
        let d = a.len();
        let mut rows = Vec::with_capacity(frames * d);
        for l in (0..frames).map(|i| lambda(i, frames)) {
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
        opts.validate_for(&self.meta.config)?;
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
        let (x0, _) = self.prior_draw(z, self.shared_eps(n, opts.seed), opts)?;
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
        self.interpolate_seeds_frames(seed_from, seed_to, frames, 0..frames, opts)
    }

    /// Frames `range` of [`Self::interpolate_seeds`] (a batch of a long animation).
    pub fn interpolate_seeds_frames(
        &self,
        seed_from: u64,
        seed_to: u64,
        frames: usize,
        range: Range<usize>,
        opts: &SampleOptions,
    ) -> Result<Tensor<B, 4>> {
        opts.validate_for(&self.meta.config)?;
        check_count(frames, "frames")?;
        if range.is_empty() || range.end > frames {
            return invalid(format!("frame range {range:?} is empty or beyond {frames} frames"));
        }
        let (purpose, shape) = match self.meta.config.prior {
            PriorKind::Learned => (Purpose::LatentNoise, vec![self.meta.config.aux.latent_dim]),
            PriorKind::Gaussian => (Purpose::PriorNoise, self.image_shape(1)[1..].to_vec()),
        };
        let per: usize = shape.iter().product();
        let wa = Rng::stream(seed_from, 0, purpose).normal_vec(per);
        let wb = Rng::stream(seed_to, 0, purpose).normal_vec(per);
        let n = range.len();
        let rows: Vec<f32> = range.flat_map(|i| slerp(&wa, &wb, lambda(i, frames))).collect();
        match self.meta.config.prior {
            PriorKind::Learned => {
                let (_, latent) = self.learned("interpolate_seeds")?;
                let w = Tensor::<B, 2>::from_data(TensorData::new(rows, [n, per]), &self.device);
                let z = self.latents_from_noise(latent, w, opts)?;
                self.generate_shared_noise(z, opts)
            }
            PriorKind::Gaussian => {
                let x0 = Tensor::<B, 4>::from_data(TensorData::new(rows, self.image_shape(n)), &self.device);
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
        opts.validate_for(&self.meta.config)?;
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
                self.prior_draw(z, eps, opts)?.0
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
        let (mu, _) = self.decode(flat, opts.tileable, self.kernels(opts)?)?;
        let mu = mu.reshape([n, k + 1, c, h, w]);
        let y = images.clone().unsqueeze_dim::<5>(1);
        let mm = m.clone().unsqueeze_dim::<5>(1);
        let err = ((mu - y) * mm).powi_scalar(2).sum_dim(2).sum_dim(3).sum_dim(4).reshape([n, k + 1]);
        let best = err.argmin(1); // [n, 1]
        let idx = best.reshape([n, 1, 1]).expand([n, 1, d]);
        Ok(cands.gather(1, idx).reshape([n, d]))
    }
}
