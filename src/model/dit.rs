//! Image velocity network theta_FM: a DiT (Peebles & Xie 2023) with patch tokens, fixed 2-D
//! sin-cos positions and adaLN-Zero time conditioning. Zero-initialised modulation and output
//! make every block start as the identity and the initial velocity zero.

use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, silu};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use super::{TIME_FREQ_DIM, layer_norm, linear_tokens, time_embedding};
use crate::config::ModelConfig;

const LN_EPS: f64 = 1e-6;

#[derive(Module, Debug)]
pub struct DitBlock<B: Backend> {
    modulation: Linear<B>,
    qkv: Linear<B>,
    proj: Linear<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
    heads: usize,
}

#[derive(Module, Debug)]
pub struct VelocityNet<B: Backend> {
    patch_embed: Linear<B>,
    time1: Linear<B>,
    time2: Linear<B>,
    blocks: Vec<DitBlock<B>>,
    final_modulation: Linear<B>,
    final_proj: Linear<B>,
    channels: usize,
    size: usize,
    patch: usize,
    dim: usize,
}

/// [B, dim] -> [B, 1, dim] so it broadcasts over tokens.
fn per_token<B: Backend>(m: Tensor<B, 2>) -> Tensor<B, 3> {
    m.unsqueeze_dim(1)
}

/// Splits a [B, k*dim] modulation vector into k broadcastable [B, 1, dim] pieces.
fn split_modulation<B: Backend>(m: Tensor<B, 2>, k: usize) -> Vec<Tensor<B, 3>> {
    m.chunk(k, 1).into_iter().map(per_token).collect()
}

fn modulate<B: Backend>(x: Tensor<B, 3>, shift: Tensor<B, 3>, scale: Tensor<B, 3>) -> Tensor<B, 3> {
    layer_norm(x, LN_EPS) * (scale + 1.0) + shift
}

impl<B: Backend> DitBlock<B> {
    fn forward(&self, x: Tensor<B, 3>, c: Tensor<B, 2>) -> Tensor<B, 3> {
        let m = split_modulation(self.modulation.forward(c), 6);
        let [shift1, scale1, gate1, shift2, scale2, gate2] = <[_; 6]>::try_from(m).unwrap();
        let h = modulate(x.clone(), shift1, scale1);
        let x = x + self.attention(h) * gate1;
        let h = modulate(x.clone(), shift2, scale2);
        let h = linear_tokens(&self.fc2, gelu(linear_tokens(&self.fc1, h)));
        x + h * gate2
    }

    fn attention(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, n, d] = h.dims();
        let hd = d / self.heads;
        let qkv = linear_tokens(&self.qkv, h);
        let head = |i: usize| {
            qkv.clone().slice([0..b, 0..n, i * d..(i + 1) * d]).reshape([b, n, self.heads, hd]).swap_dims(1, 2)
        };
        let out = attention(head(0), head(1), head(2), None, None, AttentionModuleOptions::default());
        linear_tokens(&self.proj, out.swap_dims(1, 2).reshape([b, n, d]))
    }
}

/// Fixed 2-D sin-cos position embedding: half the channels encode the row, half the column.
fn pos_embedding_2d(grid: usize, dim: usize) -> Vec<f32> {
    let quarter = dim / 4;
    let omega: Vec<f32> = (0..quarter).map(|i| 1.0 / 10_000f32.powf(i as f32 / quarter as f32)).collect();
    let mut out = Vec::with_capacity(grid * grid * dim);
    for r in 0..grid {
        for c in 0..grid {
            for pos in [r as f32, c as f32] {
                out.extend(omega.iter().map(|w| (pos * w).sin()));
                out.extend(omega.iter().map(|w| (pos * w).cos()));
            }
        }
    }
    out
}

impl<B: Backend> VelocityNet<B> {
    pub fn new(cfg: &ModelConfig, device: &B::Device) -> Self {
        let d = cfg.dit.dim;
        let p = cfg.dit.patch_size;
        let c = cfg.image.channels;
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        let zero = |i, o| LinearConfig::new(i, o).with_initializer(Initializer::Zeros).init(device);
        let blocks = (0..cfg.dit.depth)
            .map(|_| DitBlock {
                modulation: zero(d, 6 * d),
                qkv: lin(d, 3 * d),
                proj: lin(d, d),
                fc1: lin(d, d * cfg.dit.mlp_ratio),
                fc2: lin(d * cfg.dit.mlp_ratio, d),
                heads: cfg.dit.heads,
            })
            .collect();
        Self {
            patch_embed: lin(c * p * p, d),
            time1: lin(TIME_FREQ_DIM, d),
            time2: lin(d, d),
            blocks,
            final_modulation: zero(d, 2 * d),
            final_proj: zero(d, c * p * p),
            channels: c,
            size: cfg.image.size,
            patch: p,
            dim: d,
        }
    }

    /// [B, C, H, W] -> [B, N, C*p*p] with tokens in row-major patch order.
    fn patchify(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        let b = x.dims()[0];
        let (c, p, g) = (self.channels, self.patch, self.size / self.patch);
        x.reshape([b, c, g, p, g, p]).permute([0, 2, 4, 1, 3, 5]).reshape([b, g * g, c * p * p])
    }

    fn unpatchify(&self, x: Tensor<B, 3>) -> Tensor<B, 4> {
        let b = x.dims()[0];
        let (c, p, g) = (self.channels, self.patch, self.size / self.patch);
        x.reshape([b, g, g, c, p, p]).permute([0, 3, 1, 4, 2, 5]).reshape([b, c, g * p, g * p])
    }

    /// Velocity at (x_t, t): x [B, C, H, W], t [B] -> [B, C, H, W].
    pub fn forward(&self, x: Tensor<B, 4>, t: Tensor<B, 1>) -> Tensor<B, 4> {
        let device = x.device();
        let g = self.size / self.patch;
        let pos = Tensor::<B, 1>::from_floats(pos_embedding_2d(g, self.dim).as_slice(), &device).reshape([
            1,
            g * g,
            self.dim,
        ]);
        let mut h = linear_tokens(&self.patch_embed, self.patchify(x)) + pos;
        let c = silu(self.time2.forward(silu(self.time1.forward(time_embedding(t, TIME_FREQ_DIM)))));
        for blk in &self.blocks {
            h = blk.forward(h, c.clone());
        }
        let m = split_modulation(self.final_modulation.forward(c), 2);
        let [shift, scale] = <[_; 2]>::try_from(m).unwrap();
        let out = linear_tokens(&self.final_proj, modulate(h, shift, scale));
        self.unpatchify(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;
    use crate::config::PriorKind;

    #[test]
    fn patchify_round_trips() {
        let device = Default::default();
        let cfg = ModelConfig::preset("tiny", 3, 16, PriorKind::Learned).unwrap();
        let net = VelocityNet::<CpuBackend>::new(&cfg, &device);
        let x = Tensor::<CpuBackend, 4>::random([2, 3, 16, 16], burn::tensor::Distribution::Default, &device);
        let y = net.unpatchify(net.patchify(x.clone()));
        y.into_data().assert_eq(&x.into_data(), true);
    }
}
