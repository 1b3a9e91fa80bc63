//! The velocity network's forward pass for CPU inference, fused by hand.
//!
//! burn runs the DiT as a chain of tensor operations, each writing a fresh tensor: on the CPU
//! that spends more time allocating, copying and walking memory than multiplying (the matrix
//! products reach ~165 GFLOP/s on one core with the `gemm` crate that burn's CPU backend uses,
//! the whole forward ~55). This module runs the same network on plain f32 buffers: the same
//! `gemm` kernels write straight into reused buffers (strided views for the attention heads,
//! bias rows pre-filled so the product accumulates onto them), and each element-wise stage is a
//! single pass — layer norm fused with the adaLN shift/scale, bias + GELU, bias + gate +
//! residual, softmax in place with a vectorisable exp. Training, CUDA and every other network
//! stay on burn; `tests` below check this pass against [`VelocityNet::forward`].

use std::cell::RefCell;

use burn::prelude::*;

use super::decoder::Conv3;
use super::{
    ClassRows, Dense, Kernels, dense, dense_with, gelu_in_place, matmul, mean_inv_std, product, silu_in_place,
    softmax_rows, time_features, with_buffers,
};
use crate::model::TIME_FREQ_DIM;
use crate::model::dit::{LN_EPS, VelocityNet};

/// The per-pixel head ([`crate::model::dit::PixelHead`]), channels last.
struct Head {
    features: Dense,
    conv_in: Conv3,
    conv_mid: Conv3,
    conv_out: Conv3,
    /// Time conditioning -> (shift, scale) per hidden channel (`dit.pixel_head_time`).
    modulation: Option<Dense>,
    hidden: usize,
}

struct Block {
    modulation: Dense,
    qkv: Dense,
    proj: Dense,
    fc1: Dense,
    fc2: Dense,
}

/// A [`VelocityNet`]'s weights as f32 arrays, with the fused forward pass. Built once per
/// loaded model (see `Pipeline`); shareable across threads.
pub struct CpuDit {
    channels: usize,
    size: usize,
    patch: usize,
    dim: usize,
    heads: usize,
    tokens: usize,
    pos: Vec<f32>,
    patch_embed: Dense,
    time1: Dense,
    time2: Dense,
    blocks: Vec<Block>,
    final_modulation: Dense,
    final_proj: Dense,
    head: Option<Head>,
    classes: Option<ClassRows>,
}

impl std::fmt::Debug for CpuDit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuDit {{ dim: {}, depth: {}, tokens: {} }}", self.dim, self.blocks.len(), self.tokens)
    }
}

multiversion! {
/// out = layer_norm(x) * (1 + scale) + shift for each row of x.
fn norm_modulate(x: &[f32], out: &mut [f32], d: usize, shift: &[f32], scale: &[f32]) {
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let (mean, inv) = mean_inv_std(xr, LN_EPS as f32);
        for j in 0..d {
            or[j] = (xr[j] - mean) * inv * (1.0 + scale[j]) + shift[j];
        }
    }
}
}

multiversion! {
/// h += gate * (y + bias) for each row of h and y.
fn gated_residual(h: &mut [f32], y: &[f32], bias: &[f32], d: usize, gate: &[f32]) {
    for (hr, yr) in h.chunks_exact_mut(d).zip(y.chunks_exact(d)) {
        for j in 0..d {
            hr[j] += gate[j] * (yr[j] + bias[j]);
        }
    }
}
}

thread_local! {
    /// Per-thread activation buffers, reused across calls (sampling calls the network once per
    /// NFE with the same batch).
    static WORKSPACE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The per-pixel head's feature maps (channels last) and im2col scratch.
    static HEAD_WORKSPACE: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// The head's token-feature layer with its outputs reordered from the network's (h, py, px)
/// (unpatchify's channel-first order) to (py, px, h): each pixel's H features consecutive.
fn pixel_major(l: Dense, hid: usize, p: usize) -> Dense {
    let new_of = |old: usize| {
        let (h, pix) = (old / (p * p), old % (p * p));
        pix * hid + h
    };
    let (mut w, mut b) = (vec![0f32; l.w.len()], vec![0f32; l.output]);
    for (old, v) in l.b.iter().enumerate() {
        b[new_of(old)] = *v;
    }
    for (row, new_row) in l.w.chunks_exact(l.output).zip(w.chunks_exact_mut(l.output)) {
        for (old, v) in row.iter().enumerate() {
            new_row[new_of(old)] = *v;
        }
    }
    Dense::new(w, b, l.input, l.output)
}

impl CpuDit {
    pub fn from_net<B: Backend>(net: &VelocityNet<B>) -> Self {
        let g = net.size / net.patch;
        Self {
            channels: net.channels,
            size: net.size,
            patch: net.patch,
            dim: net.dim,
            heads: net.blocks.first().map_or(1, |b| b.heads),
            tokens: g * g,
            pos: crate::model::dit::pos_embedding_2d(g, net.dim),
            patch_embed: Dense::from_linear(&net.patch_embed),
            time1: Dense::from_linear(&net.time1),
            time2: Dense::from_linear(&net.time2),
            blocks: net
                .blocks
                .iter()
                .map(|b| Block {
                    modulation: Dense::from_linear(&b.modulation),
                    qkv: Dense::from_linear(&b.qkv),
                    proj: Dense::from_linear(&b.proj),
                    fc1: Dense::from_linear(&b.fc1),
                    fc2: Dense::from_linear(&b.fc2),
                })
                .collect(),
            final_modulation: Dense::from_linear(&net.final_modulation),
            final_proj: Dense::from_linear(&net.final_proj),
            head: net.pixel_head.as_ref().map(|h| Head {
                features: pixel_major(Dense::from_linear(&h.features), h.hidden, net.patch),
                conv_in: Conv3::from_conv(&h.conv_in),
                conv_mid: Conv3::from_conv(&h.conv_mid),
                conv_out: Conv3::from_conv(&h.conv_out),
                modulation: h.modulation.as_ref().map(Dense::from_linear),
                hidden: h.hidden,
            }),
            classes: ClassRows::from_table(&net.class_table),
        }
    }

    fn image_len(&self) -> usize {
        self.channels * self.size * self.size
    }

    /// Velocity at (x_t, t): x [n, C, H, W] and t [n] as flat row-major arrays -> [n, C, H, W].
    ///
    /// Images run one at a time (split into contiguous runs over up to `threads` threads of
    /// rayon's pool; 1: this thread only), each with exactly the same sequence of operations and
    /// matrix shapes whatever the batch: an image's result is bitwise independent of the other
    /// images, of the batch size and of the thread count. (gemm's blocking depends on a
    /// product's height, so stacking images into taller products would round differently per
    /// batch size; one image is 64 rows for the `small` network, already gemm's full tile
    /// height, and costs a few percent of throughput against 1024-row products.)
    ///
    /// `wrap`: the per-pixel head's convolutions pad circularly (for tileable images).
    pub fn forward(&self, x: &[f32], t: &[f32], threads: usize, wrap: bool) -> Vec<f32> {
        self.forward_class(x, t, threads, wrap, None)
    }

    /// [`Self::forward`] with every image of class `class` (None: no class, the unconditional
    /// branch of a class-conditional network).
    pub fn forward_class(&self, x: &[f32], t: &[f32], threads: usize, wrap: bool, class: Option<u32>) -> Vec<f32> {
        self.forward_with(Kernels::Fp32, x, t, threads, wrap, class)
    }

    /// [`Self::forward_class`] with the chosen kernels for the products of weights: the token
    /// layers (patch embedding, attention in/out projections, MLP, final projection), the
    /// per-pixel head's feature layer and its convolutions. The time-conditioning layers (one
    /// row per call) and attention's products of activations stay fp32. Panics if `Bf16` is
    /// asked for on a CPU without AVX512-BF16 ([`super::bf16::cpu_has_avx512_bf16`]).
    pub fn forward_with(
        &self,
        kernels: Kernels,
        x: &[f32],
        t: &[f32],
        threads: usize,
        wrap: bool,
        class: Option<u32>,
    ) -> Vec<f32> {
        let n = t.len();
        let len = self.image_len();
        assert_eq!(x.len(), n * len, "CpuDit::forward: x holds {} numbers for {n} images", x.len());
        let mut out = vec![0f32; x.len()];
        if n == 0 {
            return out;
        }
        let per = if threads > 1 { n.div_ceil(threads) } else { n };
        let run = |(i, o): (usize, &mut [f32])| {
            // A solver step gives every image the same t: its modulation vectors are computed
            // once per run of images and reused while t stays the same.
            let mut mods = Vec::new();
            let mut mods_t = None;
            for (j, oi) in o.chunks_exact_mut(len).enumerate() {
                let k = i * per + j;
                if mods_t != Some(t[k].to_bits()) {
                    self.modulations(t[k], class, &mut mods);
                    mods_t = Some(t[k].to_bits());
                }
                self.forward_image(kernels, &x[k * len..][..len], &mods, wrap, oi);
            }
        };
        if threads > 1 && n > per {
            use rayon::prelude::*;
            out.par_chunks_mut(per * len).enumerate().for_each(run);
        } else {
            out.chunks_mut(per * len).enumerate().for_each(run);
        }
        out
    }

    /// The adaLN modulation vectors for time t, c = silu(W2 silu(W1 temb(t))) through each
    /// block's modulation layer: 6 * dim per block (shift, scale, gate for attention and MLP),
    /// then 2 * dim (shift, scale) for the final layer, then 2 * H (shift, scale) for a
    /// time-modulated per-pixel head.
    fn modulations(&self, t: f32, class: Option<u32>, out: &mut Vec<f32>) {
        let d = self.dim;
        let mut temb = vec![0f32; TIME_FREQ_DIM];
        time_features(&[t], &mut temb);
        let mut hidden = vec![0f32; d];
        dense(&self.time1, &temb, 1, &mut hidden);
        silu_in_place(&mut hidden);
        let mut cond = vec![0f32; d];
        dense(&self.time2, &hidden, 1, &mut cond);
        if let Some(c) = &self.classes {
            c.add(&mut cond, class);
        }
        silu_in_place(&mut cond);
        out.clear();
        let head_mod = self.head.as_ref().and_then(|h| h.modulation.as_ref());
        out.resize(self.blocks.len() * 6 * d + 2 * d + head_mod.map_or(0, |m| m.output), 0.0);
        let (per_block, last) = out.split_at_mut(self.blocks.len() * 6 * d);
        for (blk, m) in self.blocks.iter().zip(per_block.chunks_exact_mut(6 * d)) {
            dense(&blk.modulation, &cond, 1, m);
        }
        let (last, head) = last.split_at_mut(2 * d);
        dense(&self.final_modulation, &cond, 1, last);
        if let Some(m) = head_mod {
            dense(m, &cond, 1, head);
        }
    }

    /// One image x [C, H, W] with its modulation vectors -> velocity [C, H, W] into out.
    fn forward_image(&self, kernels: Kernels, x: &[f32], mods: &[f32], wrap: bool, out: &mut [f32]) {
        let (d, n, heads) = (self.dim, self.tokens, self.heads);
        let hd = d / heads;
        let pdim = self.patch_embed.input;
        let hidden = self.blocks.first().map_or(0, |bl| bl.fc1.output);
        let head_features = self.head.as_ref().map_or(0, |h| h.features.output);
        let sizes = [
            n * d,                                      // h: the residual stream
            n * d.max(pdim),                            // a: normed input of a layer, attention output
            n * d.max(pdim),                            // y: a layer's output before bias/gate, final projection
            n * (3 * d).max(hidden).max(head_features), // qkv, MLP hidden layer, head features
            n * n,                                      // one head's attention scores
        ];
        with_buffers(&WORKSPACE, sizes, |[h, a, y, wide_buf, scores]| {
            // Patch tokens [n, C*p*p], then h = tokens W + b + position.
            self.patchify(x, a);
            dense_with(kernels, &self.patch_embed, a, n, h);
            for (v, p) in h.iter_mut().zip(&self.pos) {
                *v += p;
            }

            let scale = 1.0 / (hd as f32).sqrt();
            for (blk, m) in self.blocks.iter().zip(mods.chunks_exact(6 * d)) {
                let m = |k: usize| &m[k * d..(k + 1) * d];
                // Attention branch.
                norm_modulate(h, a, d, m(0), m(1));
                let qkv = &mut wide_buf[..n * 3 * d];
                dense_with(kernels, &blk.qkv, a, n, qkv);
                for head in 0..heads {
                    let q = &qkv[head * hd..];
                    let k = &qkv[d + head * hd..];
                    let v = &qkv[2 * d + head * hd..];
                    // scores = scale * Q K^T: K read transposed through its strides.
                    matmul((n, n, hd), scores, n, false, q, (3 * d, 1), k, (1, 3 * d), scale);
                    softmax_rows(scores, n);
                    matmul((n, hd, n), &mut a[head * hd..], d, false, scores, (n, 1), v, (3 * d, 1), 1.0);
                }
                product(kernels, &blk.proj, a, n, y, false);
                gated_residual(h, y, &blk.proj.b, d, m(2));
                // MLP branch.
                norm_modulate(h, a, d, m(3), m(4));
                let mlp = &mut wide_buf[..n * hidden];
                dense_with(kernels, &blk.fc1, a, n, mlp);
                gelu_in_place(mlp);
                product(kernels, &blk.fc2, mlp, n, y, false);
                gated_residual(h, y, &blk.fc2.b, d, m(5));
            }

            // Final layer: adaLN (shift, scale), projection back to patches.
            let last = &mods[self.blocks.len() * 6 * d..];
            norm_modulate(h, a, d, &last[..d], &last[d..2 * d]);
            dense_with(kernels, &self.final_proj, a, n, y);
            self.unpatchify(y, out);
            if let Some(head) = &self.head {
                // The head's token features [n, H*p*p] (a still holds the final normed tokens).
                let feats = &mut wide_buf[..n * head.features.output];
                dense_with(kernels, &head.features, a, n, feats);
                self.pixel_head(kernels, head, x, feats, &mods[self.blocks.len() * 6 * d + 2 * d..], wrap, out);
            }
        });
    }

    /// out += the per-pixel head of image x [C, H, W] with token features `feats` and (for a
    /// time-modulated head) its shift and scale `mods` [2 * H]; `wrap`: circular padding.
    #[allow(clippy::too_many_arguments)]
    fn pixel_head(
        &self,
        kernels: Kernels,
        head: &Head,
        x: &[f32],
        feats: &[f32],
        mods: &[f32],
        wrap: bool,
        out: &mut [f32],
    ) {
        let (c, hid, s) = (self.channels, head.hidden, self.size);
        let plane = s * s;
        HEAD_WORKSPACE.with(|w| {
            let (maps, col) = &mut *w.borrow_mut();
            // xc holds x and then the head's output, channels last (c each); m1, m2 hid each.
            maps.resize(plane * (c + 2 * hid), 0.0);
            let (xc, rest) = maps.split_at_mut(plane * c);
            let (m1, m2) = rest.split_at_mut(plane * hid);
            // x to channels last.
            for ch in 0..c {
                for (p, v) in x[ch * plane..][..plane].iter().enumerate() {
                    xc[p * c + ch] = *v;
                }
            }
            head.conv_in.forward_with(kernels, xc, s, s, wrap, col, m1);
            if head.modulation.is_some() {
                let (shift, scale) = mods.split_at(hid);
                for px in m1[..plane * hid].chunks_exact_mut(hid) {
                    for h in 0..hid {
                        px[h] = px[h] * (1.0 + scale[h]) + shift[h];
                    }
                }
            }
            // + the token features, unpatchified to channels last: token (gy, gx) holds feature
            // h of pixel (py, px) at (py * p + px) * H + h ([`pixel_major`]), so each patch row
            // is p * H consecutive numbers in both.
            let (p, g) = (self.patch, s / self.patch);
            for (tok, f) in feats.chunks_exact(hid * p * p).enumerate() {
                let (gy, gx) = (tok / g, tok % g);
                for (py, src) in f.chunks_exact(p * hid).enumerate() {
                    let dst = &mut m1[((gy * p + py) * s + gx * p) * hid..][..p * hid];
                    for (d, v) in dst.iter_mut().zip(src) {
                        *d += v;
                    }
                }
            }
            gelu_in_place(&mut m1[..plane * hid]);
            head.conv_mid.forward_with(kernels, m1, s, s, wrap, col, m2);
            gelu_in_place(&mut m2[..plane * hid]);
            head.conv_out.forward_with(kernels, m2, s, s, wrap, col, xc);
            for ch in 0..c {
                for (p, o) in out[ch * plane..][..plane].iter_mut().enumerate() {
                    *o += xc[p * c + ch];
                }
            }
        });
    }

    /// Calls f(pixel offset, token offset) for every run of `patch` pixels of one image
    /// [C, H, W] and where it sits in the image's patch tokens [g * g, C * p * p] (tokens in
    /// row-major patch order, each token's numbers ordered channel, row, column).
    fn patch_runs(&self, mut f: impl FnMut(usize, usize)) {
        let (c, p, s) = (self.channels, self.patch, self.size);
        let g = s / p;
        for gy in 0..g {
            for gx in 0..g {
                for ch in 0..c {
                    for py in 0..p {
                        f((ch * s + gy * p + py) * s + gx * p, ((gy * g + gx) * c + ch) * p * p + py * p);
                    }
                }
            }
        }
    }

    fn patchify(&self, x: &[f32], tokens: &mut [f32]) {
        let p = self.patch;
        self.patch_runs(|i, t| tokens[t..t + p].copy_from_slice(&x[i..i + p]));
    }

    fn unpatchify(&self, tokens: &[f32], x: &mut [f32]) {
        let p = self.patch;
        self.patch_runs(|i, t| x[i..i + p].copy_from_slice(&tokens[t..t + p]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;
    use crate::config::{ModelConfig, PriorKind};
    use crate::model::cpu::bf16::cpu_has_avx512_bf16;
    use crate::model::cpu::floats;
    use crate::model::cpu::test_util::{max_rel_diff, randomized};
    use burn::tensor::TensorData;

    /// `pixel_head` hidden channels (0 = none); a negative value: that many, time-modulated.
    fn random_net(preset: &str, channels: usize, size: usize, pixel_head: isize) -> VelocityNet<CpuBackend> {
        let mut cfg = ModelConfig::preset(preset, channels, size, PriorKind::Learned).unwrap();
        cfg.dit.pixel_head = pixel_head.unsigned_abs();
        cfg.dit.pixel_head_time = pixel_head < 0;
        randomized(VelocityNet::<CpuBackend>::new(&cfg, &Default::default()), 7)
    }

    fn compare(preset: &str, channels: usize, size: usize, batch: usize, threads: usize) {
        compare_with_head(preset, channels, size, batch, threads, 0);
    }

    fn compare_with_head(preset: &str, channels: usize, size: usize, batch: usize, threads: usize, head: isize) {
        let net = random_net(preset, channels, size, head);
        let fast = CpuDit::from_net(&net);
        let device = Default::default();
        let xs = crate::rng::Rng::new(11).normal_vec(batch * channels * size * size);
        let x = Tensor::<CpuBackend, 4>::from_data(TensorData::new(xs, [batch, channels, size, size]), &device);
        let ts: Vec<f32> = (0..batch).map(|i| (i as f32 + 0.5) / batch as f32).collect();
        let t = Tensor::<CpuBackend, 1>::from_data(TensorData::new(ts.clone(), [batch]), &device);
        for wrap in [false, true] {
            let want = floats(net.forward_wrap(x.clone(), t.clone(), wrap));
            let got = fast.forward(&floats(x.clone()), &ts, threads, wrap);
            let diff = max_rel_diff(&want, &got);
            assert!(diff <= 1e-4, "{preset} head {head} b{batch} t{threads} wrap {wrap}: max |diff| {diff}");
        }
    }

    #[test]
    fn matches_the_burn_forward() {
        compare("tiny", 4, 16, 3, 1);
        compare("tiny", 3, 16, 5, 2);
        compare("tiny", 1, 16, 2, 1);
        compare("small", 4, 32, 2, 1);
        // With the per-pixel head.
        compare_with_head("tiny", 4, 16, 3, 2, 8);
        compare_with_head("tiny", 1, 16, 2, 1, 5);
        compare_with_head("small", 4, 32, 2, 1, 32);
        compare_with_head("tiny", 4, 16, 3, 2, -8);
        compare_with_head("tiny", 4, 16, 2, 1, 2); // fewer hidden channels than image channels
        compare_with_head("small", 4, 32, 3, 1, -32);
    }

    /// A class-conditional network: the fused pass adds the same class vector as burn's.
    #[test]
    fn matches_the_burn_forward_with_classes() {
        let mut cfg = ModelConfig::preset("tiny", 4, 16, PriorKind::Gaussian).unwrap();
        cfg.classes.names = vec!["a".into(), "b".into(), "c".into()];
        let net = randomized(VelocityNet::<CpuBackend>::new(&cfg, &Default::default()), 3);
        let fast = CpuDit::from_net(&net);
        let device = Default::default();
        let xs = crate::rng::Rng::new(2).normal_vec(2 * 4 * 16 * 16);
        let x = Tensor::<CpuBackend, 4>::from_data(TensorData::new(xs.clone(), [2, 4, 16, 16]), &device);
        let t = Tensor::<CpuBackend, 1>::from_data(TensorData::new(vec![0.4f32; 2], [2]), &device);
        for class in [None, Some(0), Some(2)] {
            let y = class.map(|c| Tensor::<CpuBackend, 1, Int>::full([2], c as i64, &device));
            let want = floats(net.forward_class(x.clone(), t.clone(), false, y));
            let got = fast.forward_class(&xs, &[0.4, 0.4], 1, false, class);
            let diff = max_rel_diff(&want, &got);
            assert!(diff <= 1e-4, "class {class:?}: max |diff| {diff}");
        }
        assert!(fast.forward_class(&xs, &[0.4, 0.4], 1, false, Some(1)) != fast.forward(&xs, &[0.4, 0.4], 1, false));
    }

    /// With circular padding the head's convolutions wrap around: an image's head output differs
    /// from the zero-padded one only near the borders, never in the interior.
    #[test]
    fn wrapping_changes_only_the_borders() {
        let net = random_net("tiny", 4, 16, -8);
        let fast = CpuDit::from_net(&net);
        let (c, s) = (4, 16);
        let x = crate::rng::Rng::new(4).normal_vec(c * s * s);
        let plain = fast.forward(&x, &[0.3], 1, false);
        let wrapped = fast.forward(&x, &[0.3], 1, true);
        let border = |i: usize| {
            let (y, xx) = ((i / s) % s, i % s);
            // Three 3x3 convolutions reach 3 pixels.
            y < 3 || y >= s - 3 || xx < 3 || xx >= s - 3
        };
        let mut differ = 0;
        for (i, (a, b)) in plain.iter().zip(&wrapped).enumerate() {
            if border(i) {
                differ += (a != b) as usize;
            } else {
                assert_eq!(a, b, "interior value {i}");
            }
        }
        assert!(differ > 0, "circular padding changed nothing at the borders");
    }

    /// Batching and threads only regroup images: each image's numbers are bitwise the same as
    /// when it runs alone (the C ABI promises results independent of count and batch size), in
    /// each precision.
    #[test]
    fn an_image_does_not_depend_on_its_batch() {
        let net = random_net("small", 4, 32, -16);
        let fast = CpuDit::from_net(&net);
        let len = 4 * 32 * 32;
        let n = 19;
        let x = crate::rng::Rng::new(3).normal_vec(n * len);
        // Mixed times: some runs of equal t (modulations reused), some changes.
        let t: Vec<f32> = (0..n).map(|i| [0.1, 0.1, 0.5, 0.9][i % 4]).collect();
        let mut kernels = vec![Kernels::Fp32];
        if cpu_has_avx512_bf16() {
            kernels.push(Kernels::Bf16);
        } else {
            eprintln!("bf16 part skipped: this CPU has no AVX512-BF16");
        }
        for k in kernels {
            let all = fast.forward_with(k, &x, &t, 1, false, None);
            for threads in [2, 3] {
                assert_eq!(all, fast.forward_with(k, &x, &t, threads, false, None), "{k:?}, {threads} threads");
            }
            for i in 0..n {
                let one = fast.forward_with(k, &x[i * len..(i + 1) * len], &t[i..i + 1], 1, false, None);
                assert_eq!(&all[i * len..(i + 1) * len], &one[..], "{k:?}, image {i}");
            }
        }
    }

    /// The bf16 forward against the fp32 one on random weights and inputs, every layer kind
    /// (per-pixel head with odd and even convolution inputs, wrapping, classes): bf16 keeps 8
    /// bits of each input's mantissa, so through 4 blocks of ~0.1-scale random weights the
    /// velocity moves by well under 2% of its range, and never bitwise nowhere.
    #[test]
    fn bf16_forward_is_close_to_fp32() {
        if !cpu_has_avx512_bf16() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        for (preset, c, size, head) in [("small", 4, 32, -32), ("small", 3, 32, 32), ("tiny", 1, 16, -8)] {
            let fast = CpuDit::from_net(&random_net(preset, c, size, head));
            let x = crate::rng::Rng::new(8).normal_vec(3 * c * size * size);
            let t = [0.2, 0.6, 0.9];
            for wrap in [false, true] {
                let want = fast.forward_with(Kernels::Fp32, &x, &t, 1, wrap, None);
                let got = fast.forward_with(Kernels::Bf16, &x, &t, 1, wrap, None);
                let diff = max_rel_diff(&want, &got);
                assert!(diff < 0.02, "{preset} c{c} head {head} wrap {wrap}: bf16 max rel diff {diff}");
                assert!(diff > 0.0, "bf16 gave fp32's numbers: the bf16 kernels did not run");
            }
        }
    }
}
