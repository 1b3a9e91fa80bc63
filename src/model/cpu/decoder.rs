//! The auxiliary decoder (latent -> learned prior mean and log-variance) for CPU inference.
//!
//! As a chain of burn convolutions the decoder cost about three velocity-network forwards per
//! image (its ~100 MFLOP run at ~30 GFLOP/s), which made LeDiFlow's prior a large share of a
//! 4-step sampling call. Here each image runs channels-last: a 3x3 convolution is an im2col
//! copy plus one matrix product, a 4x4 stride-2 transposed convolution is one matrix product
//! plus a scatter-add of its 16 taps, and SiLU is one vectorised pass.

use std::cell::RefCell;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::prelude::*;

use std::sync::OnceLock;

use super::bf16::{PackedBf16, gemm, to_pairs};
use super::{Dense, Kernels, bias_or_zeros, floats, matmul, product, silu_in_place, with_pairs};
use crate::model::AuxDecoder;
use crate::model::aux::DEC_LOGVAR_OFFSET;

/// A 3x3, padding-1 convolution of stride 1 or 2 (stride 2 halves even heights and widths);
/// weight rows ordered (ky, kx, c_in), columns c_out. Also used by the CPU encoder.
pub(super) struct Conv3 {
    w: Vec<f32>,
    b: Vec<f32>,
    pub(super) cin: usize,
    pub(super) cout: usize,
    pub(super) stride: usize,
    /// For [`Kernels::Bf16`]: the weight rows of each kernel row ky ([3 cin, cout]) packed,
    /// made on first use.
    packed: OnceLock<[PackedBf16; 3]>,
}

impl Conv3 {
    pub(super) fn from_conv<B: Backend>(c: &Conv2d<B>) -> Self {
        let [cout, cin, kh, kw] = c.weight.dims();
        let stride = c.stride[0];
        assert!(
            kh == 3
                && kw == 3
                && (stride == 1 || stride == 2)
                && c.stride == [stride, stride]
                && c.dilation == [1, 1]
                && c.groups == 1
                && matches!(c.padding, PaddingConfig2d::Explicit(1, 1, 1, 1)),
            "the CPU passes expect 3x3 padding-1 convolutions of stride 1 or 2"
        );
        let src = floats(c.weight.val());
        let mut w = vec![0f32; 9 * cin * cout];
        for co in 0..cout {
            for ci in 0..cin {
                for k in 0..9 {
                    w[(k * cin + ci) * cout + co] = src[(co * cin + ci) * 9 + k];
                }
            }
        }
        Self::new(w, bias_or_zeros(&c.bias, cout), cin, cout, stride)
    }

    /// Weights w [(ky, kx, cin), cout] and bias b [cout].
    pub(super) fn new(w: Vec<f32>, b: Vec<f32>, cin: usize, cout: usize, stride: usize) -> Self {
        assert!(w.len() == 9 * cin * cout && b.len() == cout, "Conv3: weights do not match {cin} -> {cout}");
        Self { w, b, cin, cout, stride, packed: OnceLock::new() }
    }

    /// x [h*w, cin] (channels last) -> out [oh*ow, cout] with (oh, ow) = (h, w) / stride;
    /// `col` is scratch for the im2col rows. `wrap`: circular padding (the map's opposite
    /// edges are neighbours, as on a torus) instead of zeros.
    pub(super) fn forward(&self, x: &[f32], h: usize, w: usize, wrap: bool, col: &mut Vec<f32>, out: &mut [f32]) {
        self.forward_with(Kernels::Fp32, x, h, w, wrap, col, out)
    }

    /// [`Self::forward`] with the chosen kernels. bf16 runs the stride-1 padded path on maps at
    /// least 16 wide with an even cin (its kernel-row products read bf16 pairs straight out of
    /// the padded map); any other convolution stays fp32.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_with(
        &self,
        kernels: Kernels,
        x: &[f32],
        h: usize,
        w: usize,
        wrap: bool,
        col: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        // On small maps the padding columns cost more than im2col's copies save (measured).
        if self.stride == 1 && w >= 16 {
            let bf16 = kernels == Kernels::Bf16 && self.cin.is_multiple_of(2);
            self.forward_padded(if bf16 { Kernels::Bf16 } else { Kernels::Fp32 }, x, h, w, wrap, col, out)
        } else {
            self.forward_im2col(x, h, w, wrap, col, out)
        }
    }

    fn packed(&self) -> &[PackedBf16; 3] {
        let rows = 3 * self.cin * self.cout;
        self.packed.get_or_init(|| {
            std::array::from_fn(|ky| PackedBf16::pack(&self.w[ky * rows..][..rows], 3 * self.cin, self.cout))
        })
    }

    /// Any stride: one im2col matrix [oh*ow, 9 cin], one matrix product.
    fn forward_im2col(&self, x: &[f32], h: usize, w: usize, wrap: bool, col: &mut Vec<f32>, out: &mut [f32]) {
        let (cin, k, s) = (self.cin, 9 * self.cin, self.stride);
        let (oh, ow) = (h / s, w / s);
        if col.len() < oh * ow * k {
            col.resize(oh * ow * k, 0.0);
        }
        for y in 0..oh {
            for xx in 0..ow {
                let row = &mut col[(y * ow + xx) * k..][..k];
                for ky in 0..3 {
                    let sy = (y * s + ky) as isize - 1;
                    for kx in 0..3 {
                        let sx = (xx * s + kx) as isize - 1;
                        let tap = &mut row[(ky * 3 + kx) * cin..][..cin];
                        if wrap {
                            let (sy, sx) = (sy.rem_euclid(h as isize) as usize, sx.rem_euclid(w as isize) as usize);
                            tap.copy_from_slice(&x[(sy * w + sx) * cin..][..cin]);
                        } else if sy < 0 || sy >= h as isize || sx < 0 || sx >= w as isize {
                            tap.fill(0.0); // zero padding
                        } else {
                            tap.copy_from_slice(&x[(sy as usize * w + sx as usize) * cin..][..cin]);
                        }
                    }
                }
            }
        }
        for r in out[..oh * ow * self.cout].chunks_exact_mut(self.cout) {
            r.copy_from_slice(&self.b);
        }
        matmul((oh * ow, self.cout, k), out, self.cout, true, col, (k, 1), &self.w, (self.cout, 1), 1.0);
    }

    /// Stride 1 without im2col: x is copied once into a zero-bordered (h+2) x (w+2) map, flat
    /// (with `wrap`, the border holds the opposite edges instead: row -1 is row h-1, and so on).
    /// Output pixel (y, x) at flat row q = y (w+2) + x reads tap (ky, kx) at padded row
    /// q + ky (w+2) + kx, so for each ky the three kx taps are 3 cin consecutive numbers and
    /// the whole convolution is three matrix products over overlapping rows of the padded map
    /// (2 of every w+2 rows are padding columns whose results are dropped). The im2col matrix
    /// this avoids is 9x the input and, at 32x32x32, larger than the cache.
    /// With bf16 kernels (cin even) the padded map is converted to bf16 pairs once and each
    /// product reads its rows from there.
    #[allow(clippy::too_many_arguments)]
    fn forward_padded(
        &self,
        kernels: Kernels,
        x: &[f32],
        h: usize,
        w: usize,
        wrap: bool,
        col: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        let (cin, cout, pw) = (self.cin, self.cout, w + 2);
        let padded = (h + 2) * pw * cin;
        let rows = h * pw - 2; // q = 0 ..= (h-1) (w+2) + (w-1)
        if col.len() < padded + rows * cout {
            col.resize(padded + rows * cout, 0.0);
        }
        let (xp, acc) = col.split_at_mut(padded);
        let acc = &mut acc[..rows * cout];
        if wrap {
            // Padded row py holds image row py - 1 (mod h), its columns w-1, 0..w, 0.
            for py in 0..h + 2 {
                let src = &x[((py + h - 1) % h) * w * cin..][..w * cin];
                let dst = &mut xp[py * pw * cin..][..pw * cin];
                dst[..cin].copy_from_slice(&src[(w - 1) * cin..]);
                dst[cin..(w + 1) * cin].copy_from_slice(src);
                dst[(w + 1) * cin..].copy_from_slice(&src[..cin]);
            }
        } else {
            xp.fill(0.0);
            for y in 0..h {
                xp[((y + 1) * pw + 1) * cin..][..w * cin].copy_from_slice(&x[y * w * cin..][..w * cin]);
            }
        }
        for r in acc.chunks_exact_mut(cout) {
            r.copy_from_slice(&self.b);
        }
        if kernels == Kernels::Bf16 {
            debug_assert!(cin.is_multiple_of(2), "bf16 rows of the padded map need an even cin");
            let packed = self.packed();
            with_pairs(|pairs| {
                to_pairs(xp, 1, padded, padded, pairs);
                for (ky, wk) in packed.iter().enumerate() {
                    gemm(rows, &pairs[ky * pw * cin / 2..], cin / 2, wk, acc, cout, true);
                }
            });
        } else {
            for ky in 0..3 {
                let (a, b) = (&xp[ky * pw * cin..], &self.w[ky * 3 * cin * cout..]);
                matmul((rows, cout, 3 * cin), acc, cout, true, a, (cin, 1), b, (cout, 1), 1.0);
            }
        }
        for y in 0..h {
            out[y * w * cout..][..w * cout].copy_from_slice(&acc[y * pw * cout..][..w * cout]);
        }
    }
}

/// A 4x4, stride-2, padding-1 transposed convolution (doubles height and width); weight rows
/// c_in, columns ordered (ky, kx, c_out).
struct ConvT4 {
    /// The 16 taps' weights as one layer [cin, (ky, kx, cout)] (its own bias zero).
    taps: Dense,
    b: Vec<f32>,
    cin: usize,
    cout: usize,
}

impl ConvT4 {
    fn from_conv<B: Backend>(c: &ConvTranspose2d<B>) -> Self {
        let [cin, cout, kh, kw] = c.weight.dims();
        assert!(
            kh == 4
                && kw == 4
                && c.stride == [2, 2]
                && c.padding == [1, 1]
                && c.padding_out == [0, 0]
                && c.dilation == [1, 1]
                && c.groups == 1,
            "the CPU decoder expects 4x4 stride-2 padding-1 transposed convolutions"
        );
        let src = floats(c.weight.val());
        let mut w = vec![0f32; cin * 16 * cout];
        for ci in 0..cin {
            for co in 0..cout {
                for k in 0..16 {
                    w[ci * 16 * cout + k * cout + co] = src[(ci * cout + co) * 16 + k];
                }
            }
        }
        Self::new(w, bias_or_zeros(&c.bias, cout), cin, cout)
    }

    fn new(w: Vec<f32>, b: Vec<f32>, cin: usize, cout: usize) -> Self {
        Self { taps: Dense::new(w, vec![0.0; 16 * cout], cin, 16 * cout), b, cin, cout }
    }

    /// x [h*w, cin] -> out [2h*2w, cout]; `taps` is scratch for the [h*w, 16*cout] products.
    /// `wrap`: taps that fall off one edge land on the opposite one (circular padding).
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        kernels: Kernels,
        x: &[f32],
        h: usize,
        w: usize,
        wrap: bool,
        taps: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        let (cout, n) = (self.cout, 16 * self.cout);
        if taps.len() < h * w * n {
            taps.resize(h * w * n, 0.0);
        }
        product(kernels, &self.taps, &x[..h * w * self.cin], h * w, taps, false);
        let (oh, ow) = (2 * h, 2 * w);
        let out = &mut out[..oh * ow * cout];
        for r in out.chunks_exact_mut(cout) {
            r.copy_from_slice(&self.b);
        }
        // Output pixel (2 iy - 1 + ky, 2 ix - 1 + kx) gets tap (ky, kx) of input pixel (iy, ix).
        for iy in 0..h {
            for ix in 0..w {
                let t = &taps[(iy * w + ix) * n..][..n];
                for ky in 0..4 {
                    let mut oy = (2 * iy + ky) as isize - 1;
                    if wrap {
                        oy = oy.rem_euclid(oh as isize);
                    } else if oy < 0 || oy >= oh as isize {
                        continue;
                    }
                    for kx in 0..4 {
                        let mut ox = (2 * ix + kx) as isize - 1;
                        if wrap {
                            ox = ox.rem_euclid(ow as isize);
                        } else if ox < 0 || ox >= ow as isize {
                            continue;
                        }
                        let o = &mut out[(oy as usize * ow + ox as usize) * cout..][..cout];
                        for (a, v) in o.iter_mut().zip(&t[(ky * 4 + kx) * cout..][..cout]) {
                            *a += v;
                        }
                    }
                }
            }
        }
    }
}

/// An [`AuxDecoder`]'s weights in the layouts above, with its forward pass.
pub struct CpuDecoder {
    /// Latent -> the 4x4 top feature map, columns reordered to channels-last.
    head: Dense,
    conv_top: Conv3,
    stages: Vec<(ConvT4, Conv3)>,
    conv_out: Conv3,
    top: usize,
    channels: usize,
    logvar_min: f32,
    logvar_max: f32,
}

impl std::fmt::Debug for CpuDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuDecoder {{ stages: {}, channels: {} }}", self.stages.len(), self.channels)
    }
}

thread_local! {
    /// Per-thread feature maps and scratch: (two ping-pong maps, im2col / tap scratch).
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

impl CpuDecoder {
    pub fn from_net<B: Backend>(dec: &AuxDecoder<B>) -> Self {
        let mut head = Dense::from_linear(&dec.head);
        let top = dec.top_channels;
        // burn reshapes the head's output to [top, 4, 4]: column c*16 + p -> p*top + c.
        let (rows, cols) = (head.input, head.output);
        let mut w = vec![0f32; rows * cols];
        let mut b = vec![0f32; cols];
        for c in 0..top {
            for p in 0..16 {
                let (from, to) = (c * 16 + p, p * top + c);
                b[to] = head.b[from];
                for r in 0..rows {
                    w[r * cols + to] = head.w[r * cols + from];
                }
            }
        }
        head.w = w;
        head.b = b;
        Self {
            head,
            conv_top: Conv3::from_conv(&dec.conv_top),
            stages: dec.stages.iter().map(|s| (ConvT4::from_conv(&s.up), Conv3::from_conv(&s.conv))).collect(),
            conv_out: Conv3::from_conv(&dec.conv_out),
            top,
            channels: dec.channels,
            logvar_min: dec.logvar_min,
            logvar_max: dec.logvar_max,
        }
    }

    /// Latents z [n, latent_dim] -> (mu_P, logvar_P), each [n, C, H, W] as flat arrays.
    /// Images run one after another on this thread (a decoder call is cheap next to the flow,
    /// and sampling already runs chunks of images on separate threads). `wrap`: every
    /// convolution pads circularly, so the prior is continuous across the image's opposite edges.
    pub fn forward(&self, z: &[f32], wrap: bool) -> (Vec<f32>, Vec<f32>) {
        self.forward_with(Kernels::Fp32, z, wrap)
    }

    /// [`Self::forward`] with the chosen kernels for its convolutions (the latent's head layer,
    /// one row per image, stays fp32).
    pub fn forward_with(&self, kernels: Kernels, z: &[f32], wrap: bool) -> (Vec<f32>, Vec<f32>) {
        let d = self.head.input;
        assert!(
            d > 0 && z.len().is_multiple_of(d),
            "CpuDecoder::forward: {} numbers are not whole latents of {d}",
            z.len()
        );
        let n = z.len() / d;
        let side = 4usize << self.stages.len();
        let plane = side * side;
        let c = self.channels;
        let (mut mu, mut logvar) = (vec![0f32; n * c * plane], vec![0f32; n * c * plane]);
        let largest = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, (up, _))| (4usize << (i + 1)).pow(2) * up.cout)
            .chain([16 * self.top, plane * self.conv_out.cout])
            .max()
            .unwrap_or(0);
        SCRATCH.with(|s| {
            let (a, b, scratch) = &mut *s.borrow_mut();
            a.resize(largest.max(a.len()), 0.0);
            b.resize(largest.max(b.len()), 0.0);
            for (i, zi) in z.chunks_exact(d).enumerate() {
                // Head: [1, d] x [d, 16 top] -> the 4x4 map, channels last.
                a[..16 * self.top].copy_from_slice(&self.head.b);
                matmul(
                    (1, 16 * self.top, d),
                    a,
                    16 * self.top,
                    true,
                    zi,
                    (d, 1),
                    &self.head.w,
                    (16 * self.top, 1),
                    1.0,
                );
                silu_in_place(&mut a[..16 * self.top]);
                self.conv_top.forward_with(kernels, a, 4, 4, wrap, scratch, b);
                silu_in_place(&mut b[..16 * self.top]);
                let mut hw = 4;
                for (up, conv) in &self.stages {
                    up.forward(kernels, b, hw, hw, wrap, scratch, a);
                    hw *= 2;
                    silu_in_place(&mut a[..hw * hw * up.cout]);
                    conv.forward_with(kernels, a, hw, hw, wrap, scratch, b);
                    silu_in_place(&mut b[..hw * hw * conv.cout]);
                }
                self.conv_out.forward_with(kernels, b, hw, hw, wrap, scratch, a);
                let out = &a[..plane * 2 * c];
                let span = self.logvar_max - self.logvar_min;
                for ch in 0..c {
                    let m = &mut mu[(i * c + ch) * plane..][..plane];
                    let l = &mut logvar[(i * c + ch) * plane..][..plane];
                    for p in 0..plane {
                        m[p] = out[p * 2 * c + ch];
                        let raw = out[p * 2 * c + c + ch] + DEC_LOGVAR_OFFSET;
                        l[p] = span / (1.0 + (-raw).exp()) + self.logvar_min;
                    }
                }
            }
        });
        (mu, logvar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;
    use crate::config::{ModelConfig, PriorKind};
    use crate::model::cpu::bf16::cpu_has_avx512_bf16;
    use crate::model::cpu::test_util::{max_rel_diff, randomized};
    use burn::tensor::TensorData;

    #[test]
    fn matches_the_burn_decoder() {
        for (preset, channels, size, n) in [("tiny", 4, 16, 3), ("tiny", 1, 32, 2), ("small", 4, 32, 2)] {
            let cfg = ModelConfig::preset(preset, channels, size, PriorKind::Learned).unwrap();
            let dec = randomized(AuxDecoder::<CpuBackend>::new(&cfg, &Default::default()), 3);
            let fast = CpuDecoder::from_net(&dec);
            let zs = crate::rng::Rng::new(5).normal_vec(n * cfg.aux.latent_dim);
            let z = Tensor::<CpuBackend, 2>::from_data(
                TensorData::new(zs.clone(), [n, cfg.aux.latent_dim]),
                &Default::default(),
            );
            for wrap in [false, true] {
                let (mu, logvar) = dec.forward_wrap(z.clone(), wrap);
                let (fmu, flogvar) = fast.forward(&zs, wrap);
                assert!(max_rel_diff(&floats(mu), &fmu) < 1e-4, "{preset} mu wrap {wrap}");
                assert!(max_rel_diff(&floats(logvar), &flogvar) < 1e-4, "{preset} logvar wrap {wrap}");
            }
        }
    }

    /// A circularly padded convolution commutes with rolling the map: conv(roll(x)) = roll(conv(x))
    /// for stride 1, and the transposed stride-2 convolution maps a roll by 1 to a roll by 2.
    #[test]
    fn wrapped_convolutions_commute_with_rolls() {
        let mut rng = crate::rng::Rng::new(12);
        let roll = |x: &[f32], h: usize, w: usize, c: usize, dy: usize, dx: usize| {
            let mut out = vec![0f32; x.len()];
            for y in 0..h {
                for xx in 0..w {
                    let to = (((y + dy) % h) * w + (xx + dx) % w) * c;
                    out[to..to + c].copy_from_slice(&x[(y * w + xx) * c..][..c]);
                }
            }
            out
        };
        let (cin, cout, h, w) = (3, 5, 8, 16);
        let conv = Conv3::new(rng.normal_vec(9 * cin * cout), rng.normal_vec(cout), cin, cout, 1);
        let x = rng.normal_vec(h * w * cin);
        let (mut a, mut b) = (vec![0f32; h * w * cout], vec![0f32; h * w * cout]);
        let mut col = Vec::new();
        conv.forward(&x, h, w, true, &mut col, &mut a);
        conv.forward(&roll(&x, h, w, cin, 3, 5), h, w, true, &mut col, &mut b);
        assert!(max_rel_diff(&roll(&a, h, w, cout, 3, 5), &b) < 1e-5);

        let up = ConvT4::new(rng.normal_vec(cin * 16 * cout), rng.normal_vec(cout), cin, cout);
        let (mut a, mut b) = (vec![0f32; 4 * h * w * cout], vec![0f32; 4 * h * w * cout]);
        up.forward(Kernels::Fp32, &x, h, w, true, &mut col, &mut a);
        up.forward(Kernels::Fp32, &roll(&x, h, w, cin, 1, 1), h, w, true, &mut col, &mut b);
        assert!(max_rel_diff(&roll(&a, 2 * h, 2 * w, cout, 2, 2), &b) < 1e-5);
    }

    /// A random 3x3 stride-1 convolution's two CPU paths agree (odd sizes, cin 1 to 32, 1x1).
    #[test]
    fn padded_convolution_matches_im2col() {
        let mut rng = crate::rng::Rng::new(9);
        for (cin, cout, h, w) in [(4, 32, 32, 32), (32, 4, 32, 32), (32, 32, 8, 8), (1, 3, 5, 7), (3, 2, 1, 1)] {
            let conv = Conv3::new(rng.normal_vec(9 * cin * cout), rng.normal_vec(cout), cin, cout, 1);
            let x = rng.normal_vec(h * w * cin);
            let (mut a, mut b) = (vec![0f32; h * w * cout], vec![0f32; h * w * cout]);
            let mut col = Vec::new();
            for wrap in [false, true] {
                conv.forward_im2col(&x, h, w, wrap, &mut col, &mut a);
                // A dirty scratch buffer must not leak into the result.
                col.iter_mut().for_each(|v| *v = f32::NAN);
                conv.forward_padded(Kernels::Fp32, &x, h, w, wrap, &mut col, &mut b);
                assert!(max_rel_diff(&a, &b) < 1e-5, "{cin}->{cout} at {h}x{w} wrap {wrap}");
                if cpu_has_avx512_bf16() && cin % 2 == 0 && w >= 16 {
                    // bf16 rows read out of the padded map: a sum of 9 cin products of unit
                    // normals, each input rounded to 8 bits (relative 2^-8 per product).
                    col.iter_mut().for_each(|v| *v = f32::NAN);
                    conv.forward_with(Kernels::Bf16, &x, h, w, wrap, &mut col, &mut b);
                    let worst = a.iter().zip(&b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
                    let bound = 2.0 / 256.0 * (9 * cin) as f32;
                    assert!(worst > 0.0 && worst < bound, "bf16 {cin}->{cout} wrap {wrap}: {worst} (bound {bound})");
                }
            }
        }
    }

    /// The decoder with bf16 convolutions stays close to fp32 (and is not fp32 in disguise).
    /// This random network amplifies (mu reaches ~50), and logvar's squash into
    /// [logvar_min, logvar_max] is steep in its middle, so a few pixels' logvar moves by more
    /// than mu's relative error: bounded on average and at the worst pixel separately.
    #[test]
    fn bf16_decoder_is_close_to_fp32() {
        if !cpu_has_avx512_bf16() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let cfg = ModelConfig::preset("small", 4, 32, PriorKind::Learned).unwrap();
        let dec = randomized(AuxDecoder::<CpuBackend>::new(&cfg, &Default::default()), 3);
        let fast = CpuDecoder::from_net(&dec);
        let zs = crate::rng::Rng::new(5).normal_vec(3 * cfg.aux.latent_dim);
        let span = cfg.aux.logvar_max - cfg.aux.logvar_min;
        for wrap in [false, true] {
            let (mu, logvar) = fast.forward_with(Kernels::Fp32, &zs, wrap);
            let (bmu, blogvar) = fast.forward_with(Kernels::Bf16, &zs, wrap);
            let diff = max_rel_diff(&mu, &bmu);
            assert!(diff > 0.0 && diff < 0.02, "mu wrap {wrap}: bf16 max rel diff {diff}");
            let mean = logvar.iter().zip(&blogvar).map(|(p, q)| (p - q).abs()).sum::<f32>() / logvar.len() as f32;
            let worst = logvar.iter().zip(&blogvar).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(mean < 0.005 * span && worst < 0.1 * span, "logvar wrap {wrap}: mean {mean}, worst {worst}");
        }
    }
}
