//! Image velocity network theta_FM: a DiT (Peebles & Xie 2023) with patch tokens, fixed 2-D
//! sin-cos positions and adaLN-Zero time conditioning. Zero-initialised modulation and output
//! make every block start as the identity and the initial velocity zero.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::{
    ClassTable, TIME_FREQ_DIM, as_cpu_train, conv2d_wrap, from_cpu_train, gelu, layer_norm, linear_tokens, permute,
    silu, softmax_last, time_embedding, with_classes,
};
use crate::config::ModelConfig;

pub(super) const LN_EPS: f64 = 1e-6;

#[derive(Module, Debug)]
pub struct DitBlock<B: Backend> {
    pub(super) modulation: Linear<B>,
    pub(super) qkv: Linear<B>,
    pub(super) proj: Linear<B>,
    pub(super) fc1: Linear<B>,
    pub(super) fc2: Linear<B>,
    pub(super) heads: usize,
}

/// The optional per-pixel head (`dit.pixel_head` hidden channels, H): the DiT's final tokens
/// projected to H features per pixel (H*p*p per token, unpatchified), added to a 3x3 conv of
/// x_t, GELU, another 3x3 conv, GELU, and a zero-initialised 3x3 conv to the image channels
/// whose output is added to the DiT's velocity (so a new head starts as the plain DiT).
#[derive(Module, Debug)]
pub struct PixelHead<B: Backend> {
    pub(super) features: Linear<B>,
    pub(super) conv_in: Conv2d<B>,
    pub(super) conv_mid: Conv2d<B>,
    pub(super) conv_out: Conv2d<B>,
    /// `dit.pixel_head_time`: time conditioning -> (shift, scale) per hidden channel of
    /// conv_in's output, zero-initialised.
    pub(super) modulation: Option<Linear<B>>,
    pub(super) hidden: usize,
}

fn conv3<B: Backend>(c_in: usize, c_out: usize, zero: bool, device: &B::Device) -> Conv2d<B> {
    let cfg = Conv2dConfig::new([c_in, c_out], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
    if zero { cfg.with_initializer(Initializer::Zeros) } else { cfg }.init(device)
}

#[derive(Module, Debug)]
pub struct VelocityNet<B: Backend> {
    pub(super) patch_embed: Linear<B>,
    pub(super) time1: Linear<B>,
    pub(super) time2: Linear<B>,
    pub(super) blocks: Vec<DitBlock<B>>,
    pub(super) final_modulation: Linear<B>,
    pub(super) final_proj: Linear<B>,
    pub(super) pixel_head: Option<PixelHead<B>>,
    /// Class vectors of a model whose image flow is class-conditional.
    pub(super) class_table: Option<ClassTable<B>>,
    pub(super) channels: usize,
    pub(super) size: usize,
    pub(super) patch: usize,
    pub(super) dim: usize,
}

/// [B, dim] -> [B, tokens, dim], copied out along the tokens. A [B, 1, dim] broadcast would
/// read the same, but the flex CPU backend has fast kernels only for rows shared by the whole
/// tensor or one scalar per row; a per-image row made every adaLN multiply and add walk the
/// tensor element by element (a third of the forward time). One contiguous copy is far cheaper.
fn per_token<B: Backend>(m: Tensor<B, 2>, tokens: usize) -> Tensor<B, 3> {
    m.unsqueeze_dim::<3>(1).repeat_dim(1, tokens)
}

/// [B, C] -> [B, C, S, S], each value copied over its channel's plane (a contiguous copy, for
/// the same reason as [`per_token`]).
fn per_pixel<B: Backend>(m: Tensor<B, 2>, size: usize) -> Tensor<B, 4> {
    let [b, c] = m.dims();
    m.reshape([b, c, 1]).repeat_dim(2, size * size).reshape([b, c, size, size])
}

/// layer_norm(x) * (1 + scale) + shift for tokens x [B, N, D] and per-image shift, scale
/// [B, D]. On the CPU training backend one fused op each way (`cpu_autodiff::adaln`: the
/// chain of burn ops below, with its copies along the tokens and their backward passes, was a
/// large part of a training step).
fn modulate<B: Backend>(x: Tensor<B, 3>, shift: Tensor<B, 2>, scale: Tensor<B, 2>) -> Tensor<B, 3> {
    if let (Some(xt), Some(st), Some(ct)) = (as_cpu_train(&x), as_cpu_train(&shift), as_cpu_train(&scale))
        && let Some(y) = super::cpu_autodiff::adaln(xt, st, ct, LN_EPS)
    {
        return from_cpu_train(y);
    }
    let n = x.dims()[1];
    layer_norm(x, LN_EPS) * (per_token(scale, n) + 1.0) + per_token(shift, n)
}

/// x + h * gate for tokens x, h [B, N, D] and a per-image gate [B, D] (adaLN-Zero's gated
/// residual); one fused op each way on the CPU training backend (`cpu_autodiff::gate`).
fn gated<B: Backend>(x: Tensor<B, 3>, h: Tensor<B, 3>, gate: Tensor<B, 2>) -> Tensor<B, 3> {
    if let (Some(xt), Some(ht), Some(gt)) = (as_cpu_train(&x), as_cpu_train(&h), as_cpu_train(&gate))
        && let Some(y) = super::cpu_autodiff::gate(xt, ht, gt)
    {
        return from_cpu_train(y);
    }
    let n = x.dims()[1];
    x + h * per_token(gate, n)
}

impl<B: Backend> DitBlock<B> {
    fn forward(&self, x: Tensor<B, 3>, c: Tensor<B, 2>) -> Tensor<B, 3> {
        let m = self.modulation.forward(c).chunk(6, 1);
        let [shift1, scale1, gate1, shift2, scale2, gate2] = <[_; 6]>::try_from(m).unwrap();
        let h = modulate(x.clone(), shift1, scale1);
        let x = gated(x, self.attention(h), gate1);
        let h = modulate(x.clone(), shift2, scale2);
        let h = linear_tokens(&self.fc2, gelu(linear_tokens(&self.fc1, h)));
        gated(x, h, gate2)
    }

    /// Multi-head self-attention, one head at a time on column slices of the qkv projection.
    /// The slices are strided views that the matmuls read in place; the usual split into a
    /// [B, H, N, Dh] tensor (and the merge back) made the CPU backend copy q, k, v and the output
    /// element by element, which cost more than the attention itself. Same numbers as
    /// `burn::tensor::module::attention` on the CPU backend (bitwise in the forward benchmark).
    ///
    /// Under autodiff (training) the heads run as one batched product instead
    /// ([`Self::attention_batched`]): the backward pass of each column slice is a zero tensor
    /// of the whole qkv shape with the slice's gradient written into it, all summed up again,
    /// which for 3 x heads slices per block moved more memory than the whole rest of a step.
    fn attention(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        if B::ad_enabled(&h.device()) {
            return self.attention_batched(h);
        }
        let [b, n, d] = h.dims();
        let hd = d / self.heads;
        let qkv = linear_tokens(&self.qkv, h);
        let scale = 1.0 / (hd as f64).sqrt();
        // Columns of head i in part j (0 = q, 1 = k, 2 = v): [B, N, Dh].
        let part = |j: usize, i: usize| qkv.clone().slice([0..b, 0..n, j * d + i * hd..j * d + (i + 1) * hd]);
        let heads: Vec<Tensor<B, 3>> = (0..self.heads)
            .map(|i| {
                let scores = part(0, i).matmul(part(1, i).swap_dims(1, 2)) * scale;
                softmax(scores, 2).matmul(part(2, i))
            })
            .collect();
        linear_tokens(&self.proj, Tensor::cat(heads, 2))
    }

    /// The same attention with q, k, v as contiguous [B, H, N, Dh] tensors (k as [B, H, Dh, N])
    /// and one batched product per step for all heads. q, k and v come from column slices of
    /// the qkv *weights* (small, so their backward zero-fills are cheap), and the layout swaps
    /// run through [`permute`] (a fast contiguous copy in training on the CPU).
    fn attention_batched(&self, h: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, n, d] = h.dims();
        let (heads, hd) = (self.heads, d / self.heads);
        let x = h.reshape([b * n, d]);
        let w = self.qkv.weight.val();
        let bias = self.qkv.bias.as_ref().map(|p| p.val());
        let part = |j: usize| {
            let y = x.clone().matmul(w.clone().slice([0..d, j * d..(j + 1) * d]));
            let y = match &bias {
                Some(bias) => y + bias.clone().slice([j * d..(j + 1) * d]).unsqueeze::<2>(),
                None => y,
            };
            y.reshape([b, n, heads, hd])
        };
        let q = permute(part(0), [0, 2, 1, 3]);
        let k_t = permute(part(1), [0, 2, 3, 1]);
        let v = permute(part(2), [0, 2, 1, 3]);
        let scores = q.matmul(k_t) * (1.0 / (hd as f64).sqrt());
        let out = permute(softmax_last(scores).matmul(v), [0, 2, 1, 3]).reshape([b, n, d]);
        linear_tokens(&self.proj, out)
    }
}

/// Fixed 2-D sin-cos position embedding: half the channels encode the row, half the column.
pub(super) fn pos_embedding_2d(grid: usize, dim: usize) -> Vec<f32> {
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
        let hp = cfg.dit.pixel_head;
        let pixel_head = (hp > 0).then(|| PixelHead {
            features: lin(d, hp * p * p),
            conv_in: conv3(c, hp, false, device),
            conv_mid: conv3(hp, hp, false, device),
            conv_out: conv3(hp, c, true, device),
            modulation: cfg.dit.pixel_head_time.then(|| zero(d, 2 * hp)),
            hidden: hp,
        });
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
            pixel_head,
            class_table: (cfg.image_classes() > 0).then(|| ClassTable::new(cfg.image_classes(), d, device)),
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
        permute(x.reshape([b, c, g, p, g, p]), [0, 2, 4, 1, 3, 5]).reshape([b, g * g, c * p * p])
    }

    fn unpatchify(&self, x: Tensor<B, 3>) -> Tensor<B, 4> {
        self.unpatchify_channels(x, self.channels)
    }

    /// [B, N, c*p*p] -> [B, c, H, W], the inverse of [`Self::patchify`] for `c` channels.
    fn unpatchify_channels(&self, x: Tensor<B, 3>, c: usize) -> Tensor<B, 4> {
        let b = x.dims()[0];
        let (p, g) = (self.patch, self.size / self.patch);
        permute(x.reshape([b, g, g, c, p, p]), [0, 3, 1, 4, 2, 5]).reshape([b, c, g * p, g * p])
    }

    /// Velocity at (x_t, t): x [B, C, H, W], t [B] -> [B, C, H, W].
    pub fn forward(&self, x: Tensor<B, 4>, t: Tensor<B, 1>) -> Tensor<B, 4> {
        self.forward_wrap(x, t, false)
    }

    /// [`Self::forward`]; `wrap`: the per-pixel head's convolutions pad circularly (tileable images).
    pub fn forward_wrap(&self, x: Tensor<B, 4>, t: Tensor<B, 1>, wrap: bool) -> Tensor<B, 4> {
        self.forward_class(x, t, wrap, None)
    }

    /// [`Self::forward_wrap`] for the classes `y` ([B] class ids; None: no class, the
    /// unconditional branch). A network without classes ignores them.
    pub fn forward_class(
        &self,
        x: Tensor<B, 4>,
        t: Tensor<B, 1>,
        wrap: bool,
        y: Option<Tensor<B, 1, Int>>,
    ) -> Tensor<B, 4> {
        let device = x.device();
        let g = self.size / self.patch;
        let pos = Tensor::<B, 1>::from_floats(pos_embedding_2d(g, self.dim).as_slice(), &device).reshape([
            1,
            g * g,
            self.dim,
        ]);
        let x_in = self.pixel_head.as_ref().map(|_| x.clone());
        let mut h = linear_tokens(&self.patch_embed, self.patchify(x)) + pos;
        let c = self.time2.forward(silu(self.time1.forward(time_embedding(t, TIME_FREQ_DIM))));
        let c = silu(with_classes(&self.class_table, c, y));
        for blk in &self.blocks {
            h = blk.forward(h, c.clone());
        }
        let [shift, scale] = <[_; 2]>::try_from(self.final_modulation.forward(c.clone()).chunk(2, 1)).unwrap();
        let h = modulate(h, shift, scale);
        let out = self.unpatchify(linear_tokens(&self.final_proj, h.clone()));
        match (&self.pixel_head, x_in) {
            (Some(head), Some(x)) => {
                let f = self.unpatchify_channels(linear_tokens(&head.features, h), head.hidden);
                let mut a = conv2d_wrap(&head.conv_in, x, wrap);
                if let Some(m) = &head.modulation {
                    let [shift, scale] = <[_; 2]>::try_from(m.forward(c).chunk(2, 1)).unwrap();
                    a = a * (per_pixel(scale, self.size) + 1.0) + per_pixel(shift, self.size);
                }
                let a = gelu(f + a);
                let a = gelu(conv2d_wrap(&head.conv_mid, a, wrap));
                out + conv2d_wrap(&head.conv_out, a, wrap)
            }
            _ => out,
        }
    }
}

/// Floating-point operations of one velocity-network forward pass for ONE image, counting each
/// multiply-add of the matrix products as 2 (linear layers, Q.K^T and attention x V). Element-wise
/// work (layer norms, GELU, softmax, adaLN modulation, time features) is left out: it is a few
/// percent of the total and not what a GFLOP/s figure measures.
pub fn forward_flops(cfg: &ModelConfig) -> u64 {
    let d = cfg.dit.dim as u64;
    let p = cfg.dit.patch_size as u64;
    let tokens = (cfg.image.size as u64 / p).pow(2);
    let patch = cfg.image.channels as u64 * p * p;
    let hidden = d * cfg.dit.mlp_ratio as u64;
    // Per-token linear layers: patch embedding and final projection.
    let mut macs = tokens * (patch * d + d * patch);
    // Time MLP and final modulation act once per image.
    macs += TIME_FREQ_DIM as u64 * d + d * d + d * 2 * d;
    let block = d * 6 * d // modulation (per image)
        + tokens * (d * 3 * d + d * d + 2 * d * hidden) // qkv, proj, fc1, fc2
        + 2 * tokens * tokens * d; // Q.K^T and attention x V over all heads
    macs += cfg.dit.depth as u64 * block;
    // The per-pixel head: token features, then three 3x3 convolutions at full resolution.
    let hp = cfg.dit.pixel_head as u64;
    if hp > 0 {
        let c = cfg.image.channels as u64;
        let pixels = (cfg.image.size as u64).pow(2);
        macs += tokens * d * hp * p * p + pixels * 9 * (c * hp + hp * hp + hp * c);
        if cfg.dit.pixel_head_time {
            macs += d * 2 * hp; // the head's modulation, once per image
        }
    }
    2 * macs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;
    use crate::config::PriorKind;
    use burn::module::AutodiffModule;

    /// The batched attention used in training computes what the per-head one does.
    #[test]
    fn batched_attention_matches_per_head_attention() {
        let device = Default::default();
        let cfg = ModelConfig::preset("small", 4, 32, PriorKind::Learned).unwrap();
        let net = crate::model::cpu::test_util::randomized(VelocityNet::<CpuBackend>::new(&cfg, &device), 7);
        let h = Tensor::<CpuBackend, 3>::random([3, 64, cfg.dit.dim], burn::tensor::Distribution::Default, &device);
        let block = &net.blocks[1];
        let a = block.attention(h.clone()).into_data().into_vec::<f32>().unwrap();
        let b = block.attention_batched(h).into_data().into_vec::<f32>().unwrap();
        let d = crate::model::cpu::test_util::max_rel_diff(&a, &b);
        assert!(d < 1e-5, "batched and per-head attention differ by {d}");

        // Under autodiff (training), with the CPU's fast permute, against the per-head forward.
        let net =
            crate::model::cpu::test_util::randomized(VelocityNet::<crate::CpuTrainBackend>::new(&cfg, &device), 7);
        let h = Tensor::<crate::CpuTrainBackend, 3>::random(
            [2, 64, cfg.dit.dim],
            burn::tensor::Distribution::Default,
            &device,
        );
        let a = net.blocks[0].attention(h.clone()).into_data().into_vec::<f32>().unwrap();
        let b = net.valid().blocks[0].attention(h.inner()).into_data().into_vec::<f32>().unwrap();
        let d = crate::model::cpu::test_util::max_rel_diff(&a, &b);
        assert!(d < 1e-5, "training attention differs from the per-head forward by {d}");
        let x =
            Tensor::<crate::CpuTrainBackend, 4>::random([2, 4, 32, 32], burn::tensor::Distribution::Default, &device);
        let y = net.unpatchify(net.patchify(x.clone()));
        y.into_data().assert_eq(&x.into_data(), true);
    }

    /// A whole training forward and backward pass with the CPU training ops (fused adaLN, gates,
    /// softmax, GELU, SiLU, permutes) against the same network on plain burn ops (another
    /// autodiff backend type, which the dispatch leaves alone): output, input gradient and
    /// weight gradients.
    #[test]
    fn training_ops_match_plain_burn_through_the_whole_network() {
        type Plain =
            burn::backend::Autodiff<CpuBackend, burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing>;
        fn run<Bk: burn::tensor::backend::AutodiffBackend>(cfg: &ModelConfig) -> Vec<Vec<f32>> {
            let device = Default::default();
            let net = crate::model::cpu::test_util::randomized(VelocityNet::<Bk>::new(cfg, &device), 11);
            let n = 2 * cfg.image.channels * cfg.image.size * cfg.image.size;
            let v: Vec<f32> = (0..n).map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0).collect();
            let x = Tensor::<Bk, 1>::from_floats(v.as_slice(), &device)
                .reshape([2, cfg.image.channels, cfg.image.size, cfg.image.size])
                .require_grad();
            let t = Tensor::<Bk, 1>::from_floats([0.2, 0.9], &device);
            let y = net.forward(x.clone(), t);
            let w = Tensor::<Bk, 4>::from_data(y.clone().inner().cos().into_data(), &device);
            let grads = (y.clone() * w).sum().backward();
            let g =
                |p: &burn::module::Param<Tensor<Bk, 2>>| p.grad(&grads).unwrap().into_data().into_vec::<f32>().unwrap();
            let mut out = vec![
                y.inner().into_data().into_vec::<f32>().unwrap(),
                x.grad(&grads).unwrap().into_data().into_vec::<f32>().unwrap(),
                g(&net.blocks[0].modulation.weight),
                g(&net.blocks[1].qkv.weight),
                g(&net.blocks[1].fc1.weight),
                g(&net.final_modulation.weight),
                g(&net.time1.weight),
            ];
            if let Some(h) = &net.pixel_head {
                out.push(g(&h.features.weight));
                if let Some(m) = &h.modulation {
                    out.push(g(&m.weight));
                }
                for c in [&h.conv_in, &h.conv_mid, &h.conv_out] {
                    out.push(c.weight.grad(&grads).unwrap().into_data().into_vec::<f32>().unwrap());
                }
            }
            out
        }
        // Also with the per-pixel head (its convolutions take the CPU's im2col path in training).
        for (pixel_head, time) in [(0, false), (8, false), (8, true)] {
            let mut cfg = ModelConfig::preset("tiny", 4, 16, PriorKind::Learned).unwrap();
            cfg.dit.pixel_head = pixel_head;
            cfg.dit.pixel_head_time = time;
            for (a, b) in run::<crate::CpuTrainBackend>(&cfg).iter().zip(&run::<Plain>(&cfg)) {
                let d = crate::model::cpu::test_util::max_rel_diff(a, b);
                assert!(d < 1e-4, "pixel head {pixel_head}: training ops differ from plain burn by {d}");
            }
        }
    }

    #[test]
    fn patchify_round_trips() {
        let device = Default::default();
        let cfg = ModelConfig::preset("tiny", 3, 16, PriorKind::Learned).unwrap();
        let net = VelocityNet::<CpuBackend>::new(&cfg, &device);
        let x = Tensor::<CpuBackend, 4>::random([2, 3, 16, 16], burn::tensor::Distribution::Default, &device);
        let y = net.unpatchify(net.patchify(x.clone()));
        y.into_data().assert_eq(&x.into_data(), true);
    }

    /// The FLOP count agrees with the network's actual weight shapes: every weight is used
    /// once per token (token-wise layers) or once per image (time and modulation layers).
    #[test]
    fn flop_count_matches_the_weight_shapes() {
        for (preset, pixel_head, time) in
            [("tiny", 0, false), ("small", 0, false), ("base", 0, false), ("small", 32, false), ("small", 32, true)]
        {
            let mut cfg = ModelConfig::preset(preset, 4, 32, PriorKind::Learned).unwrap();
            cfg.dit.pixel_head = pixel_head;
            cfg.dit.pixel_head_time = time;
            let net = VelocityNet::<CpuBackend>::new(&cfg, &Default::default());
            let w = |l: &Linear<CpuBackend>| l.weight.dims().iter().product::<usize>() as u64;
            let tokens = ((cfg.image.size / cfg.dit.patch_size) as u64).pow(2);
            let mut per_token = w(&net.patch_embed) + w(&net.final_proj);
            let mut per_image = w(&net.time1) + w(&net.time2) + w(&net.final_modulation);
            let mut attention = 0;
            for b in &net.blocks {
                per_token += w(&b.qkv) + w(&b.proj) + w(&b.fc1) + w(&b.fc2);
                per_image += w(&b.modulation);
                attention += 2 * tokens * tokens * cfg.dit.dim as u64;
            }
            // Every weight of a 3x3 convolution is used once per pixel.
            let mut per_pixel = 0;
            if let Some(h) = &net.pixel_head {
                per_token += w(&h.features);
                per_image += h.modulation.as_ref().map_or(0, w);
                for c in [&h.conv_in, &h.conv_mid, &h.conv_out] {
                    per_pixel += c.weight.dims().iter().product::<usize>() as u64;
                }
            }
            let pixels = (cfg.image.size as u64).pow(2);
            let expected = 2 * (tokens * per_token + per_image + attention + pixels * per_pixel);
            assert_eq!(forward_flops(&cfg), expected, "{preset}, pixel head {pixel_head}");
        }
        // The shipped `small` RGBA 32x32 network: 112.1 MFLOP per image.
        let small = ModelConfig::preset("small", 4, 32, PriorKind::Learned).unwrap();
        assert_eq!(forward_flops(&small), 112_099_328);
    }
}
