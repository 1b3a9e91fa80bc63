//! Latent flow model theta_L: a time-conditioned residual MLP velocity field on R^latent_dim.

use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;

use super::{ClassTable, TIME_FREQ_DIM, layer_norm, silu, time_embedding, with_classes};
use crate::config::ModelConfig;

#[derive(Module, Debug)]
pub struct ResBlock<B: Backend> {
    pub(crate) fc1: Linear<B>,
    pub(crate) time: Linear<B>,
    pub(crate) fc2: Linear<B>,
}

#[derive(Module, Debug)]
pub struct LatentFlowNet<B: Backend> {
    pub(crate) input: Linear<B>,
    pub(crate) time1: Linear<B>,
    pub(crate) time2: Linear<B>,
    pub(crate) blocks: Vec<ResBlock<B>>,
    pub(crate) output: Linear<B>,
    /// Class vectors of a class-conditional model.
    pub(crate) class_table: Option<ClassTable<B>>,
}

impl<B: Backend> LatentFlowNet<B> {
    pub fn new(cfg: &ModelConfig, device: &B::Device) -> Self {
        let d = cfg.aux.latent_dim;
        let h = cfg.latent.hidden;
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        let zero = |i, o| LinearConfig::new(i, o).with_initializer(Initializer::Zeros).init(device);
        Self {
            input: lin(d, h),
            time1: lin(TIME_FREQ_DIM, h),
            time2: lin(h, h),
            blocks: (0..cfg.latent.blocks)
                .map(|_| ResBlock { fc1: lin(h, h), time: lin(h, h), fc2: zero(h, h) })
                .collect(),
            output: zero(h, d),
            class_table: (cfg.latent_classes() > 0).then(|| ClassTable::new(cfg.latent_classes(), h, device)),
        }
    }

    /// Velocity at (z_t, t): z [B, latent_dim], t [B] -> [B, latent_dim] (a class-conditional
    /// network's unconditional branch).
    pub fn forward(&self, z: Tensor<B, 2>, t: Tensor<B, 1>) -> Tensor<B, 2> {
        self.forward_class(z, t, None)
    }

    /// [`Self::forward`] for the classes `y` ([B] class ids; None: no class). An unconditional
    /// network ignores them.
    pub fn forward_class(&self, z: Tensor<B, 2>, t: Tensor<B, 1>, y: Option<Tensor<B, 1, Int>>) -> Tensor<B, 2> {
        let temb = self.time2.forward(silu(self.time1.forward(time_embedding(t, TIME_FREQ_DIM))));
        let temb = silu(with_classes(&self.class_table, temb, y));
        let mut h = self.input.forward(z);
        for blk in &self.blocks {
            let a = blk.fc1.forward(layer_norm(h.clone(), 1e-5)) + blk.time.forward(temb.clone());
            h = h + blk.fc2.forward(silu(a));
        }
        self.output.forward(silu(layer_norm(h, 1e-5)))
    }
}
