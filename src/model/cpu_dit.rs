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

use burn::nn::Linear;
use burn::prelude::*;

use super::dit::{LN_EPS, VelocityNet};
use super::{TIME_FREQ_DIM, erf_f32};

/// A linear layer's parameters, y = x W + b with W row-major [input, output].
struct Dense {
    w: Vec<f32>,
    b: Vec<f32>,
    input: usize,
    output: usize,
}

fn floats<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().expect("f32 data after convert")
}

impl Dense {
    fn from_linear<B: Backend>(l: &Linear<B>) -> Self {
        let [input, output] = l.weight.dims();
        let b = l.bias.as_ref().map(|b| floats(b.val())).unwrap_or_else(|| vec![0.0; output]);
        Self { w: floats(l.weight.val()), b, input, output }
    }
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
}

/// Rows (images x tokens) one pass works on at a time: the activations of a 1024-row slab of
/// the `small` network fit in L2; larger batches are run slab by slab.
const SLAB_ROWS: usize = 1024;

impl std::fmt::Debug for CpuDit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuDit {{ dim: {}, depth: {}, tokens: {} }}", self.dim, self.blocks.len(), self.tokens)
    }
}

/// dst[m x n] (+)= beta * lhs[m x k] * rhs[k x n], all row-major with the given row strides
/// (lhs and rhs may be read transposed through their strides). Checked so the unsafe call can
/// never touch memory outside the slices.
#[allow(clippy::too_many_arguments)]
fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, rs: usize, cols: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(dst_rs >= n && last(m, dst_rs, n, 1) < dst.len(), "matmul: dst out of bounds");
    if k > 0 {
        assert!(last(m, lhs_rs, k, lhs_cs) < lhs.len(), "matmul: lhs out of bounds");
        assert!(last(k, rhs_rs, n, rhs_cs) < rhs.len(), "matmul: rhs out of bounds");
    }
    // SAFETY: the asserts above keep every element gemm reads or writes inside the slices; dst
    // does not alias lhs or rhs (a &mut and two & borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            beta,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// x W + b for the rows of x (row-major [rows, input]) into out [rows, output].
fn dense(l: &Dense, x: &[f32], rows: usize, out: &mut [f32]) {
    for r in out[..rows * l.output].chunks_exact_mut(l.output) {
        r.copy_from_slice(&l.b);
    }
    matmul((rows, l.output, l.input), out, l.output, true, x, (l.input, 1), &l.w, (l.output, 1), 1.0);
}

/// Defines `fn $name(args)` that runs its body compiled for AVX-512 or AVX2+FMA when the CPU
/// has them (checked at run time; the std check is a cached load) and for the build's baseline
/// otherwise. The crate builds for plain x86-64 (SSE2), so without this the element-wise loops
/// below would use 4-wide vectors on a CPU with 16-wide ones.
macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn imp($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) { imp($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) { imp($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl") {
                    // SAFETY: the CPU has the features v4 is compiled for (checked just above).
                    return unsafe { v4($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: as above, for v3's features.
                    return unsafe { v3($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}

/// Sum of a slice with 8 independent accumulators (a plain float sum cannot be vectorised: its
/// order of additions is fixed).
#[inline(always)]
fn sum8(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    let tail: f32 = it.remainder().iter().sum();
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn max8(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for i in 0..8 {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    it.remainder().iter().chain(acc.iter()).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// e^x for x <= 0 (softmax after subtracting the row maximum), Cephes' expf polynomial after
/// the usual range reduction x = n ln2 + r. Only multiplies, adds and integer bit moves, so a
/// loop of it vectorises; relative error ~2e-7. Underflows to 0 below -87.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Round to nearest without a rounding instruction: adding 1.5 * 2^23 leaves the integer part.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.max(-87.0);
    let k = x * LOG2E + MAGIC;
    let n = k - MAGIC;
    // k and MAGIC share their exponent, so their bit patterns differ by exactly the integer n:
    // 2^n without a float-to-int conversion (Rust's saturating `as` would not vectorise).
    let pow2n = f32::from_bits(((k.to_bits() as i32 - MAGIC.to_bits() as i32 + 127) << 23) as u32);
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * pow2n
}

multiversion! {
    /// In-place softmax of each row of `rows` (rows of length `n`).
    fn softmax_rows(rows: &mut [f32], n: usize) {
        for row in rows.chunks_exact_mut(n) {
            let m = max8(row);
            for v in row.iter_mut() {
                *v = exp_nonpositive(*v - m);
            }
            let inv = 1.0 / sum8(row);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

multiversion! {
/// out = layer_norm(x) * (1 + scale) + shift for each row of x; row r belongs to image r / tokens.
fn norm_modulate(x: &[f32], out: &mut [f32], d: usize, tokens: usize, shift: &[f32], scale: &[f32], mod_stride: usize) {
    for (r, (xr, or)) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
        let img = r / tokens;
        let sh = &shift[img * mod_stride..][..d];
        let sc = &scale[img * mod_stride..][..d];
        let mean = sum8(xr) / d as f32;
        let mut sq = [0f32; 8];
        let mut it = xr.chunks_exact(8);
        for c in &mut it {
            for i in 0..8 {
                let v = c[i] - mean;
                sq[i] += v * v;
            }
        }
        let var = (sq.iter().sum::<f32>() + it.remainder().iter().map(|v| (v - mean) * (v - mean)).sum::<f32>())
            / d as f32;
        let inv = 1.0 / (var + LN_EPS as f32).sqrt();
        for j in 0..d {
            or[j] = (xr[j] - mean) * inv * (1.0 + sc[j]) + sh[j];
        }
    }
}
}

multiversion! {
/// h += gate * (y + bias), row r of h and y belonging to image r / tokens.
fn gated_residual(h: &mut [f32], y: &[f32], bias: &[f32], d: usize, tokens: usize, gate: &[f32], mod_stride: usize) {
    for (r, (hr, yr)) in h.chunks_exact_mut(d).zip(y.chunks_exact(d)).enumerate() {
        let g = &gate[(r / tokens) * mod_stride..][..d];
        for j in 0..d {
            hr[j] += g[j] * (yr[j] + bias[j]);
        }
    }
}
}

fn silu(v: &mut [f32]) {
    for x in v {
        *x /= 1.0 + (-*x).exp();
    }
}

multiversion! {
    fn gelu_in_place(v: &mut [f32]) {
        for x in v {
            *x = 0.5 * *x * (1.0 + erf_f32(*x * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

thread_local! {
    /// Per-thread activation buffers, reused across calls (sampling calls the network once per
    /// NFE with the same batch).
    static WORKSPACE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
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
            pos: super::dit::pos_embedding_2d(g, net.dim),
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
        }
    }

    fn image_len(&self) -> usize {
        self.channels * self.size * self.size
    }

    /// Velocity at (x_t, t): x [n, C, H, W] and t [n] as flat row-major arrays -> [n, C, H, W].
    /// Runs slabs of images on up to `threads` threads of rayon's pool (1: this thread only).
    /// Every image's result is independent of the others and of how the batch is cut.
    pub fn forward(&self, x: &[f32], t: &[f32], threads: usize) -> Vec<f32> {
        let n = t.len();
        let len = self.image_len();
        assert_eq!(x.len(), n * len, "CpuDit::forward: x holds {} numbers for {n} images", x.len());
        let mut out = vec![0f32; x.len()];
        let slab = (SLAB_ROWS / self.tokens).max(1);
        let per = if threads > 1 { n.div_ceil(threads).clamp(1, slab) } else { slab };
        let run = |(i, o): (usize, &mut [f32])| {
            let imgs = o.len() / len;
            self.forward_slab(&x[i * per * len..][..imgs * len], &t[i * per..][..imgs], o);
        };
        if threads > 1 && n > per {
            use rayon::prelude::*;
            out.par_chunks_mut(per * len).enumerate().for_each(run);
        } else {
            out.chunks_mut(per * len).enumerate().for_each(run);
        }
        out
    }

    fn forward_slab(&self, x: &[f32], t: &[f32], out: &mut [f32]) {
        let b = t.len();
        let (d, n, heads) = (self.dim, self.tokens, self.heads);
        let hd = d / heads;
        let rows = b * n;
        let pdim = self.patch_embed.input;
        let hidden = self.blocks.first().map_or(0, |bl| bl.fc1.output);
        let wide = (3 * d).max(hidden);
        let sizes = [
            rows * d,           // h: the residual stream
            rows * d.max(pdim), // a: normed input of a layer, attention output
            rows * d.max(pdim), // y: a layer's output before bias/gate, final projection
            rows * wide,        // qkv, then the MLP hidden layer
            n * n,              // one head's attention scores
            b * TIME_FREQ_DIM,  // time features
            b * d,              // time MLP hidden
            b * d,              // conditioning vector c
            b * 6 * d,          // a block's modulation
        ];
        WORKSPACE.with(|ws| {
            let mut ws = ws.borrow_mut();
            let total: usize = sizes.iter().sum();
            if ws.len() < total {
                ws.resize(total, 0.0);
            }
            let mut rest = &mut ws[..total];
            let mut bufs: Vec<&mut [f32]> = Vec::with_capacity(sizes.len());
            for s in sizes {
                let (head, tail) = rest.split_at_mut(s);
                bufs.push(head);
                rest = tail;
            }
            let [h, a, y, wide_buf, scores, temb, t_hidden, cond, mods] = <[&mut [f32]; 9]>::try_from(bufs).unwrap();

            // Patch tokens [rows, C*p*p], then h = tokens W + b + position.
            self.patchify(x, b, a);
            dense(&self.patch_embed, a, rows, h);
            for img in h.chunks_exact_mut(n * d) {
                for (v, p) in img.iter_mut().zip(&self.pos) {
                    *v += p;
                }
            }

            // Conditioning c = silu(W2 silu(W1 temb(t))): sinusoidal features as in `time_embedding`.
            let half = TIME_FREQ_DIM / 2;
            for (row, &ti) in temb.chunks_exact_mut(TIME_FREQ_DIM).zip(t) {
                for i in 0..half {
                    let freq = (-(10_000f32.ln()) * i as f32 / half as f32).exp();
                    let arg = ti * 1000.0 * freq;
                    row[i] = arg.cos();
                    row[half + i] = arg.sin();
                }
            }
            dense(&self.time1, temb, b, t_hidden);
            silu(t_hidden);
            dense(&self.time2, t_hidden, b, cond);
            silu(cond);

            let scale = 1.0 / (hd as f32).sqrt();
            for blk in &self.blocks {
                dense(&blk.modulation, cond, b, mods);
                let m = |k: usize| &mods[k * d..];
                let ms = 6 * d;
                // Attention branch.
                norm_modulate(h, a, d, n, m(0), m(1), ms);
                let qkv = &mut wide_buf[..rows * 3 * d];
                dense(&blk.qkv, a, rows, qkv);
                for img in 0..b {
                    let base = img * n * 3 * d;
                    for head in 0..heads {
                        let q = &qkv[base + head * hd..];
                        let k = &qkv[base + d + head * hd..];
                        let v = &qkv[base + 2 * d + head * hd..];
                        // scores = scale * Q K^T: K read transposed through its strides.
                        matmul((n, n, hd), scores, n, false, q, (3 * d, 1), k, (1, 3 * d), scale);
                        softmax_rows(scores, n);
                        let o = &mut a[img * n * d + head * hd..];
                        matmul((n, hd, n), o, d, false, scores, (n, 1), v, (3 * d, 1), 1.0);
                    }
                }
                matmul((rows, d, d), y, d, false, a, (d, 1), &blk.proj.w, (d, 1), 1.0);
                gated_residual(h, y, &blk.proj.b, d, n, m(2), ms);
                // MLP branch.
                norm_modulate(h, a, d, n, m(3), m(4), ms);
                let mlp = &mut wide_buf[..rows * hidden];
                dense(&blk.fc1, a, rows, mlp);
                gelu_in_place(mlp);
                matmul((rows, d, hidden), y, d, false, mlp, (hidden, 1), &blk.fc2.w, (d, 1), 1.0);
                gated_residual(h, y, &blk.fc2.b, d, n, m(5), ms);
            }

            // Final layer: adaLN (shift, scale), projection back to patches.
            dense(&self.final_modulation, cond, b, mods);
            norm_modulate(h, a, d, n, &mods[..], &mods[d..], 2 * d);
            dense(&self.final_proj, a, rows, y);
            self.unpatchify(y, b, out);
        });
    }

    /// [b, C, H, W] -> tokens [b * g * g, C * p * p], tokens in row-major patch order.
    fn patchify(&self, x: &[f32], b: usize, tokens: &mut [f32]) {
        let (c, p, s) = (self.channels, self.patch, self.size);
        let g = s / p;
        let pd = c * p * p;
        for img in 0..b {
            for gy in 0..g {
                for gx in 0..g {
                    let tok = &mut tokens[((img * g + gy) * g + gx) * pd..][..pd];
                    for ch in 0..c {
                        for py in 0..p {
                            let src = &x[((img * c + ch) * s + gy * p + py) * s + gx * p..][..p];
                            tok[(ch * p + py) * p..][..p].copy_from_slice(src);
                        }
                    }
                }
            }
        }
    }

    fn unpatchify(&self, tokens: &[f32], b: usize, x: &mut [f32]) {
        let (c, p, s) = (self.channels, self.patch, self.size);
        let g = s / p;
        let pd = c * p * p;
        for img in 0..b {
            for gy in 0..g {
                for gx in 0..g {
                    let tok = &tokens[((img * g + gy) * g + gx) * pd..][..pd];
                    for ch in 0..c {
                        for py in 0..p {
                            let dst = &mut x[((img * c + ch) * s + gy * p + py) * s + gx * p..][..p];
                            dst.copy_from_slice(&tok[(ch * p + py) * p..][..p]);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;
    use crate::config::{ModelConfig, PriorKind};
    use burn::module::{Module, Param};
    use burn::tensor::TensorData;

    /// Replaces every parameter by N(0, 0.1^2) draws: a fresh network has zero modulation and
    /// output layers, which would hide most of the forward pass from the comparison.
    struct Randomize(crate::rng::Rng);

    impl<Bk: Backend> burn::module::ModuleMapper<Bk> for Randomize {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<Bk, D>>) -> Param<Tensor<Bk, D>> {
            let (id, t, mapper) = param.consume();
            let shape = t.dims();
            let v: Vec<f32> = self.0.normal_vec(shape.iter().product()).into_iter().map(|x| x * 0.1).collect();
            Param::from_mapped_value(id, Tensor::from_data(TensorData::new(v, shape), &t.device()), mapper)
        }
    }

    fn random_net(preset: &str, channels: usize, size: usize) -> VelocityNet<CpuBackend> {
        let cfg = ModelConfig::preset(preset, channels, size, PriorKind::Learned).unwrap();
        VelocityNet::<CpuBackend>::new(&cfg, &Default::default()).map(&mut Randomize(crate::rng::Rng::new(7)))
    }

    fn compare(preset: &str, channels: usize, size: usize, batch: usize, threads: usize) {
        let net = random_net(preset, channels, size);
        let fast = CpuDit::from_net(&net);
        let device = Default::default();
        let xs = crate::rng::Rng::new(11).normal_vec(batch * channels * size * size);
        let x = Tensor::<CpuBackend, 4>::from_data(TensorData::new(xs, [batch, channels, size, size]), &device);
        let ts: Vec<f32> = (0..batch).map(|i| (i as f32 + 0.5) / batch as f32).collect();
        let t = Tensor::<CpuBackend, 1>::from_data(TensorData::new(ts.clone(), [batch]), &device);
        let want = floats(net.forward(x.clone(), t));
        let got = fast.forward(&floats(x), &ts, threads);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = want.iter().zip(&got).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 0.1, "{preset}: the reference output is ~0 ({scale}); the test would prove nothing");
        assert!(
            worst <= 1e-4 * scale.max(1.0),
            "{preset} b{batch} t{threads}: max |diff| {worst} (output scale {scale})"
        );
    }

    #[test]
    fn matches_the_burn_forward() {
        compare("tiny", 4, 16, 3, 1);
        compare("tiny", 3, 16, 5, 2);
        compare("tiny", 1, 16, 2, 1);
        compare("small", 4, 32, 2, 1);
    }

    /// Slabs and threads only regroup images: each image's numbers stay the same up to the
    /// rounding of matrix products of a different height.
    #[test]
    fn batch_split_does_not_change_an_image() {
        let net = random_net("tiny", 4, 16);
        let fast = CpuDit::from_net(&net);
        let len = 4 * 16 * 16;
        let n = 70; // more than one slab of the tiny net's 16 tokens (1024 / 16 = 64 images)
        let x: Vec<f32> = (0..n * len).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
        let t: Vec<f32> = (0..n).map(|i| i as f32 / n as f32).collect();
        let all = fast.forward(&x, &t, 1);
        let threaded = fast.forward(&x, &t, 3);
        let close = |a: &[f32], b: &[f32]| {
            let scale = a.iter().fold(1f32, |m, v| m.max(v.abs()));
            a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5 * scale)
        };
        for i in [0, 5, 63, 64, 69] {
            let one = fast.forward(&x[i * len..(i + 1) * len], &t[i..i + 1], 1);
            assert!(close(&all[i * len..(i + 1) * len], &one), "image {i}");
        }
        assert!(close(&all, &threaded));
        // Repeatable: the same call gives the same numbers.
        assert_eq!(all, fast.forward(&x, &t, 1));
    }

    #[test]
    fn exp_matches_std() {
        let mut worst = 0f32;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let (a, b) = (exp_nonpositive(x), x.exp());
            worst = worst.max(((a - b) / b.max(f32::MIN_POSITIVE)).abs());
        }
        assert!(worst < 1e-6, "max relative error {worst}");
        assert!((0.0..1e-37).contains(&exp_nonpositive(-1000.0)));
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }
}
