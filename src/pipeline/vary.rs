//! Variations of given images: new images that keep what the image's latent carries (LeDiFlow),
//! more or less of the image itself by the strength.

use burn::prelude::*;
use burn::tensor::TensorData;

use super::Pipeline;
use super::base::all_threads;
use super::options::{SampleOptions, check_strength, variation_start};
use crate::config::PriorKind;
use crate::error::{Result, invalid};
use crate::rng::{Purpose, Rng};

impl<B: Backend> Pipeline<B> {
    /// One variation per row of `images` [N, C, H, W] in [-1, 1]; row k's noise comes from
    /// stream `streams[k]` ([`super::options::variation_stream`] gives one per (image,
    /// variation) pair, so a variation never depends on the rest of the call).
    ///
    /// `strength` s in [0, 1]: the flow starts at t0 = 1 - s from the point (1 - t0) x0 + t0 y
    /// of the straight path between a prior draw x0 and the image y, the path the flow was
    /// trained on. s = 0 returns the images exactly; s = 1 is a fresh draw x0 from the image's
    /// own learned prior N(mu_P(z), sigma_P(z)^2), z its encoding, carried by the whole flow:
    /// only what the latent carries is kept. A Gaussian-prior model draws x0 from N(0, I), so
    /// s = 1 there is an unrelated sample. `opts.steps` solver steps cover [t0, 1].
    pub fn vary(
        &self,
        images: Tensor<B, 4>,
        streams: &[u64],
        strength: f32,
        opts: &SampleOptions,
    ) -> Result<Tensor<B, 4>> {
        opts.validate_for(&self.meta.config)?;
        check_strength(strength)?;
        self.check_images(&images)?;
        let shape = images.dims();
        if streams.len() != shape[0] {
            return invalid(format!("{} noise streams for {} images", streams.len(), shape[0]));
        }
        let Some(start) = variation_start(strength) else {
            return Ok(images);
        };
        let per: usize = shape[1..].iter().product();
        let mut eps = vec![0f32; shape[0] * per];
        for (row, &k) in eps.chunks_exact_mut(per).zip(streams) {
            Rng::stream(opts.seed, k, Purpose::Variation).fill_normal(row);
        }
        let eps = Tensor::<B, 4>::from_data(TensorData::new(eps, shape), &self.device);
        let x0 = match self.meta.config.prior {
            PriorKind::Gaussian => eps,
            PriorKind::Learned => {
                let z = self.encode(images.clone())?;
                self.prior_draw(z, eps, opts)?.0
            }
        };
        let x = x0 * strength + images * start;
        self.solve_images_from(x, start, opts, all_threads(), |_, x| x)
    }
}
