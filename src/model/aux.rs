//! Auxiliary model: a conv encoder y -> q(z|y) = N(mu_E, var_E) and a conv decoder
//! z -> per-pixel Gaussian prior N(mu_P, var_P) over images.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use super::{conv_transpose2d_wrap, conv2d, conv2d_wrap, silu};
use crate::config::ModelConfig;

/// Encoder log-variance clamp: keeps exp() finite without hurting any sensible posterior.
pub(crate) const ENC_LOGVAR_MIN: f32 = -14.0;
pub(crate) const ENC_LOGVAR_MAX: f32 = 4.0;
/// Added to the encoder's raw log-variance so a fresh encoder starts with posterior std ~0.14:
/// with std 1 the decoder would see mostly noise and reconstruction would stall for hundreds
/// of steps until the encoder learned to shrink it.
pub(crate) const ENC_LOGVAR_OFFSET: f32 = -4.0;
/// Added to the decoder's raw log-variance before the sigmoid squash so a fresh decoder starts
/// near var 0.4 (about the residual variance of an untrained mean) instead of mid-range.
pub(crate) const DEC_LOGVAR_OFFSET: f32 = 1.4;

fn channels_at(cfg: &ModelConfig, level: usize) -> usize {
    cfg.aux.base_channels << level.min(2)
}

fn conv3<B: Backend>(c_in: usize, c_out: usize, stride: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

#[derive(Module, Debug)]
pub struct DownStage<B: Backend> {
    pub(crate) down: Conv2d<B>,
    pub(crate) conv: Conv2d<B>,
}

#[derive(Module, Debug)]
pub struct UpStage<B: Backend> {
    pub(crate) up: ConvTranspose2d<B>,
    pub(crate) conv: Conv2d<B>,
}

#[derive(Module, Debug)]
pub struct AuxEncoder<B: Backend> {
    pub(crate) conv_in: Conv2d<B>,
    pub(crate) stages: Vec<DownStage<B>>,
    pub(crate) head: Linear<B>,
    pub(crate) latent_dim: usize,
}

impl<B: Backend> AuxEncoder<B> {
    pub fn new(cfg: &ModelConfig, device: &B::Device) -> Self {
        let levels = cfg.aux_levels();
        let conv_in = conv3(cfg.image.channels, channels_at(cfg, 0), 1, device);
        let stages = (0..levels)
            .map(|i| DownStage {
                down: conv3(channels_at(cfg, i), channels_at(cfg, i + 1), 2, device),
                conv: conv3(channels_at(cfg, i + 1), channels_at(cfg, i + 1), 1, device),
            })
            .collect();
        let flat = channels_at(cfg, levels) * 16;
        let head = LinearConfig::new(flat, 2 * cfg.aux.latent_dim).init(device);
        Self { conv_in, stages, head, latent_dim: cfg.aux.latent_dim }
    }

    /// Images [B, C, H, W] in [-1, 1] -> (mu_E, logvar_E), each [B, latent_dim].
    pub fn forward(&self, y: Tensor<B, 4>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let mut h = silu(conv2d(&self.conv_in, y));
        for s in &self.stages {
            h = silu(conv2d(&s.down, h));
            h = silu(conv2d(&s.conv, h));
        }
        let [b, c, hh, ww] = h.dims();
        let out = self.head.forward(h.reshape([b, c * hh * ww]));
        let d = self.latent_dim;
        let mu = out.clone().slice([0..b, 0..d]);
        let logvar = (out.slice([0..b, d..2 * d]) + ENC_LOGVAR_OFFSET).clamp(ENC_LOGVAR_MIN, ENC_LOGVAR_MAX);
        (mu, logvar)
    }
}

#[derive(Module, Debug)]
pub struct AuxDecoder<B: Backend> {
    pub(crate) head: Linear<B>,
    pub(crate) conv_top: Conv2d<B>,
    pub(crate) stages: Vec<UpStage<B>>,
    pub(crate) conv_out: Conv2d<B>,
    pub(crate) top_channels: usize,
    pub(crate) channels: usize,
    pub(crate) logvar_min: f32,
    pub(crate) logvar_max: f32,
}

impl<B: Backend> AuxDecoder<B> {
    pub fn new(cfg: &ModelConfig, device: &B::Device) -> Self {
        let levels = cfg.aux_levels();
        let top = channels_at(cfg, levels);
        let head = LinearConfig::new(cfg.aux.latent_dim, top * 16).init(device);
        let conv_top = conv3(top, top, 1, device);
        // Stages run from the 4x4 top back up to full resolution.
        let stages = (0..levels)
            .rev()
            .map(|i| UpStage {
                up: ConvTranspose2dConfig::new([channels_at(cfg, i + 1), channels_at(cfg, i)], [4, 4])
                    .with_stride([2, 2])
                    .with_padding([1, 1])
                    .init(device),
                conv: conv3(channels_at(cfg, i), channels_at(cfg, i), 1, device),
            })
            .collect();
        let conv_out = conv3(channels_at(cfg, 0), 2 * cfg.image.channels, 1, device);
        Self {
            head,
            conv_top,
            stages,
            conv_out,
            top_channels: top,
            channels: cfg.image.channels,
            logvar_min: cfg.aux.logvar_min,
            logvar_max: cfg.aux.logvar_max,
        }
    }

    /// Latents [B, latent_dim] -> (mu_P, logvar_P), each [B, C, H, W].
    pub fn forward(&self, z: Tensor<B, 2>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        self.forward_wrap(z, false)
    }

    /// [`Self::forward`]; `wrap`: every convolution pads circularly, so the prior continues
    /// across the image's opposite edges (tileable images).
    pub fn forward_wrap(&self, z: Tensor<B, 2>, wrap: bool) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let b = z.dims()[0];
        let h = silu(self.head.forward(z)).reshape([b, self.top_channels, 4, 4]);
        let mut h = silu(conv2d_wrap(&self.conv_top, h, wrap));
        for s in &self.stages {
            h = silu(conv_transpose2d_wrap(&s.up, h, wrap));
            h = silu(conv2d_wrap(&s.conv, h, wrap));
        }
        let out = conv2d_wrap(&self.conv_out, h, wrap);
        let [_, _, hh, ww] = out.dims();
        let c = self.channels;
        let mu = out.clone().slice([0..b, 0..c, 0..hh, 0..ww]);
        let raw = out.slice([0..b, c..2 * c, 0..hh, 0..ww]);
        // A sigmoid squash instead of a hard clamp keeps a gradient at the range ends.
        let logvar = sigmoid(raw + DEC_LOGVAR_OFFSET) * (self.logvar_max - self.logvar_min) + self.logvar_min;
        (mu, logvar)
    }
}
