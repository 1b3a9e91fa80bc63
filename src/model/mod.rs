//! The networks of a LeDiFlow pipeline. Each module holds one network; shared building
//! blocks (time embedding, parameter-free layer norm, 2-D linear) live here.

pub mod aux;
pub mod dit;
pub mod latent_flow;

use burn::nn::Linear;
use burn::prelude::*;

pub use aux::{AuxDecoder, AuxEncoder};
pub use dit::VelocityNet;
pub use latent_flow::LatentFlowNet;

/// Applies a linear layer to a [batch, tokens, features] tensor as one 2-D matmul.
/// burn runs a 3-D input as many small batched matmuls; flattening first is about 2x faster.
pub(crate) fn linear_tokens<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, n, d] = x.dims();
    let y = layer.forward(x.reshape([b * n, d]));
    let out = y.dims()[1];
    y.reshape([b, n, out])
}

/// Layer norm over the last dimension without learned affine parameters (adaLN supplies them).
pub(crate) fn layer_norm<B: Backend, const D: usize>(x: Tensor<B, D>, eps: f64) -> Tensor<B, D> {
    let (var, mean) = x.clone().var_mean_bias(D - 1);
    (x - mean) / (var + eps).sqrt()
}

/// Sinusoidal embedding of flow time t in [0, 1] (scaled by 1000 as in DiT), [batch] -> [batch, dim].
pub(crate) fn time_embedding<B: Backend>(t: Tensor<B, 1>, dim: usize) -> Tensor<B, 2> {
    let half = dim / 2;
    let device = t.device();
    let freqs: Vec<f32> = (0..half).map(|i| (-(10_000f32.ln()) * i as f32 / half as f32).exp()).collect();
    let freqs = Tensor::<B, 1>::from_floats(freqs.as_slice(), &device).reshape([1, half]);
    let n = t.dims()[0];
    let args = (t * 1000.0).reshape([n, 1]) * freqs;
    Tensor::cat(vec![args.clone().cos(), args.sin()], 1)
}

/// Width of the sinusoidal time features fed to the time MLPs.
pub(crate) const TIME_FREQ_DIM: usize = 256;

use crate::config::{ModelConfig, PriorKind};

/// Every network of one pipeline. A Gaussian-prior (baseline) pipeline has only `velocity`.
#[derive(Module, Debug)]
pub struct Networks<B: Backend> {
    pub encoder: Option<AuxEncoder<B>>,
    pub decoder: Option<AuxDecoder<B>>,
    pub latent: Option<LatentFlowNet<B>>,
    pub velocity: VelocityNet<B>,
}

impl<B: Backend> Networks<B> {
    /// Freshly initialised networks for `cfg` (parameters initialise lazily on first use).
    pub fn new(cfg: &ModelConfig, device: &B::Device) -> Self {
        let learned = cfg.prior == PriorKind::Learned;
        Self {
            encoder: learned.then(|| AuxEncoder::new(cfg, device)),
            decoder: learned.then(|| AuxDecoder::new(cfg, device)),
            latent: learned.then(|| LatentFlowNet::new(cfg, device)),
            velocity: VelocityNet::new(cfg, device),
        }
    }
}
