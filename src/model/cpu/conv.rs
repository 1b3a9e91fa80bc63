//! Square convolutions and transposed convolutions on NCHW f32 buffers, forward and backward,
//! for training the auxiliary model on the CPU (`autodiff::conv2d`, `autodiff::conv_transpose2d`).
//!
//! burn's autodiff computes a convolution's weight gradient as a convolution of dimension-
//! swapped tensors, which burn-flex first copies into a contiguous layout through a generic
//! element-by-element iterator, and its transposed convolution runs as direct loops: together
//! about a third of an auxiliary-model training step (measured with perf). Here every pass is
//! im2col/col2im (plain loops, contiguous row copies where the stride is 1) plus one matrix
//! product per image, with the weight gradient summed over fixed chunks of the batch so a run
//! with a given thread count is deterministic.

use rayon::prelude::*;

use super::matmul;

/// The geometry of a k x k convolution with stride s and symmetric zero padding p over a
/// c x h x w input; its output is oh x ow. im2col rows are ordered (c, ky, kx), matching
/// burn's weight layouts ([c_out, c_in, k, k] for a convolution, [c_in, c_out, k, k] for a
/// transposed one, whose output is this geometry's input).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Geom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub s: usize,
    pub p: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geom {
    /// `None` when the kernel does not fit the padded input or a size is zero.
    pub(crate) fn new(c: usize, h: usize, w: usize, k: usize, s: usize, p: usize) -> Option<Self> {
        if c == 0 || k == 0 || s == 0 || h + 2 * p < k || w + 2 * p < k || p >= k {
            return None;
        }
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        Some(Self { c, h, w, k, s, p, oh, ow })
    }

    /// Rows of the im2col matrix: c * k * k.
    pub(crate) fn rows(&self) -> usize {
        self.c * self.k * self.k
    }

    /// Output positions: oh * ow.
    pub(crate) fn positions(&self) -> usize {
        self.oh * self.ow
    }

    fn input_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// For kernel column kx: the output columns [lo, hi) whose input column ox*s + kx - p lies
    /// inside the image.
    fn valid_cols(&self, kx: usize) -> (usize, usize) {
        let lo = if kx < self.p { (self.p - kx).div_ceil(self.s) } else { 0 };
        let hi = if self.w + self.p > kx { ((self.w - 1 + self.p - kx) / self.s + 1).min(self.ow) } else { 0 };
        (lo.min(hi), hi)
    }

    /// Walks every (im2col row segment, input row) pair: f(row segment range in cols, input
    /// row offset or None for a padding row, kx).
    fn for_each_segment(&self, mut f: impl FnMut(usize, Option<usize>, usize)) {
        let l = self.positions();
        for c in 0..self.c {
            for ky in 0..self.k {
                for kx in 0..self.k {
                    let row = ((c * self.k + ky) * self.k + kx) * l;
                    for oy in 0..self.oh {
                        let iy = (oy * self.s + ky) as isize - self.p as isize;
                        let src = (iy >= 0 && (iy as usize) < self.h).then(|| (c * self.h + iy as usize) * self.w);
                        f(row + oy * self.ow, src, kx);
                    }
                }
            }
        }
    }

    /// cols [rows, positions] <- the input patches of x [c, h, w] (zeros for padding).
    pub(crate) fn im2col(&self, x: &[f32], cols: &mut [f32]) {
        let (ow, s, p) = (self.ow, self.s, self.p);
        self.for_each_segment(|at, src, kx| {
            let seg = &mut cols[at..at + ow];
            let Some(src) = src else {
                seg.fill(0.0);
                return;
            };
            let src = &x[src..src + self.w];
            let (lo, hi) = self.valid_cols(kx);
            seg[..lo].fill(0.0);
            seg[hi..].fill(0.0);
            if s == 1 {
                let start = lo + kx - p;
                seg[lo..hi].copy_from_slice(&src[start..start + hi - lo]);
            } else {
                for (ox, v) in seg[lo..hi].iter_mut().enumerate() {
                    *v = src[(lo + ox) * s + kx - p];
                }
            }
        });
    }

    /// x [c, h, w] += the patches in cols scattered back (the adjoint of `im2col`).
    pub(crate) fn col2im(&self, cols: &[f32], x: &mut [f32]) {
        let (ow, s, p) = (self.ow, self.s, self.p);
        self.for_each_segment(|at, src, kx| {
            let Some(src) = src else { return };
            let seg = &cols[at..at + ow];
            let dst = &mut x[src..src + self.w];
            let (lo, hi) = self.valid_cols(kx);
            if s == 1 {
                let start = lo + kx - p;
                for (d, v) in dst[start..start + hi - lo].iter_mut().zip(&seg[lo..hi]) {
                    *d += v;
                }
            } else {
                for (ox, v) in seg[lo..hi].iter().enumerate() {
                    dst[(lo + ox) * s + kx - p] += v;
                }
            }
        });
    }
}

/// Images per chunk of a batch of n: one chunk per thread, fixed for a given thread count.
fn chunk_images(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads().max(1)).max(1)
}

/// Sums per-chunk weight-gradient partials in chunk order.
fn sum_partials(parts: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut total = vec![0f32; len];
    for part in parts {
        for (t, v) in total.iter_mut().zip(&part) {
            *t += v;
        }
    }
    total
}

/// Per-channel sums of g [n, c, l].
fn bias_grad(g: &[f32], c: usize, l: usize) -> Vec<f32> {
    let mut out = vec![0f32; c];
    for img in g.chunks_exact(c * l) {
        for (o, ch) in out.iter_mut().zip(img.chunks_exact(l)) {
            *o += ch.iter().sum::<f32>();
        }
    }
    out
}

/// The weight gradient [m, g.rows()] summed over a batch: for each image, the im2col of its
/// `patches` (g's input shape) against its `other` [m, g.positions()] rows: gW += other cols^T.
/// For a convolution, patches = x and other = gy; for a transposed one, the reverse.
fn weight_grad(g: Geom, patches: &[f32], other: &[f32], m: usize, n: usize) -> Vec<f32> {
    let (kk, l) = (g.rows(), g.positions());
    let per = chunk_images(n);
    let parts: Vec<Vec<f32>> = patches
        .par_chunks(per * g.input_len())
        .zip(other.par_chunks(per * m * l))
        .map(|(patches, other)| {
            let (mut cols, mut gw) = (vec![0f32; kk * l], vec![0f32; m * kk]);
            for (p, o) in patches.chunks_exact(g.input_len()).zip(other.chunks_exact(m * l)) {
                g.im2col(p, &mut cols);
                matmul((m, kk, l), &mut gw, kk, true, o, (l, 1), &cols, (1, l), 1.0);
            }
            gw
        })
        .collect();
    sum_partials(parts, m * kk)
}

/// A convolution: geometry `g` of its input, weight [cout, g.rows()] and bias [cout].
pub(crate) struct Conv<'a> {
    pub g: Geom,
    pub cout: usize,
    pub w: &'a [f32],
    pub b: &'a [f32],
}

impl Conv<'_> {
    /// x [n, c, h, w] -> y [n, cout, oh, ow].
    pub(crate) fn forward(&self, x: &[f32], n: usize) -> Vec<f32> {
        let (g, co, kk, l) = (self.g, self.cout, self.g.rows(), self.g.positions());
        let mut y = vec![0f32; n * co * l];
        y.par_chunks_mut(co * l).zip(x.par_chunks(g.input_len())).for_each_init(
            || vec![0f32; kk * l],
            |cols, (y, x)| {
                g.im2col(x, cols);
                for (row, &b) in y.chunks_exact_mut(l).zip(self.b) {
                    row.fill(b);
                }
                matmul((co, l, kk), y, l, true, self.w, (kk, 1), cols, (l, 1), 1.0);
            },
        );
        y
    }

    /// The input's gradient from the output's gy [n, cout, oh, ow].
    pub(crate) fn grad_x(&self, gy: &[f32], n: usize) -> Vec<f32> {
        let (g, co, kk, l) = (self.g, self.cout, self.g.rows(), self.g.positions());
        let mut gx = vec![0f32; n * g.input_len()];
        gx.par_chunks_mut(g.input_len()).zip(gy.par_chunks(co * l)).for_each_init(
            || vec![0f32; kk * l],
            |cols, (gx, gy)| {
                // cols = W^T gy, then scattered back onto the input.
                matmul((kk, l, co), cols, l, false, self.w, (1, kk), gy, (l, 1), 1.0);
                g.col2im(cols, gx);
            },
        );
        gx
    }

    /// (weight gradient [cout, rows], bias gradient [cout]) from x and gy.
    pub(crate) fn grad_w_b(&self, x: &[f32], gy: &[f32], n: usize) -> (Vec<f32>, Vec<f32>) {
        (weight_grad(self.g, x, gy, self.cout, n), bias_grad(gy, self.cout, self.g.positions()))
    }
}

/// A transposed convolution: the adjoint of a convolution of geometry `g` (whose input shape
/// [c, h, w] is this op's output and whose output [oh, ow] this op's input positions), with
/// weight [cin, g.rows()] and bias [g.c].
pub(crate) struct ConvT<'a> {
    pub g: Geom,
    pub cin: usize,
    pub w: &'a [f32],
    pub b: &'a [f32],
}

impl ConvT<'_> {
    /// x [n, cin, oh, ow] -> y [n, c, h, w].
    pub(crate) fn forward(&self, x: &[f32], n: usize) -> Vec<f32> {
        let (g, ci, kk, l) = (self.g, self.cin, self.g.rows(), self.g.positions());
        let mut y = vec![0f32; n * g.input_len()];
        y.par_chunks_mut(g.input_len()).zip(x.par_chunks(ci * l)).for_each_init(
            || vec![0f32; kk * l],
            |cols, (y, x)| {
                for (plane, &b) in y.chunks_exact_mut(g.h * g.w).zip(self.b) {
                    plane.fill(b);
                }
                // cols = W^T x, scattered onto the output.
                matmul((kk, l, ci), cols, l, false, self.w, (1, kk), x, (l, 1), 1.0);
                g.col2im(cols, y);
            },
        );
        y
    }

    /// The input's gradient from gy [n, c, h, w].
    pub(crate) fn grad_x(&self, gy: &[f32], n: usize) -> Vec<f32> {
        let (g, ci, kk, l) = (self.g, self.cin, self.g.rows(), self.g.positions());
        let mut gx = vec![0f32; n * ci * l];
        gx.par_chunks_mut(ci * l).zip(gy.par_chunks(g.input_len())).for_each_init(
            || vec![0f32; kk * l],
            |cols, (gx, gy)| {
                g.im2col(gy, cols);
                matmul((ci, l, kk), gx, l, false, self.w, (kk, 1), cols, (l, 1), 1.0);
            },
        );
        gx
    }

    /// (weight gradient [cin, rows], bias gradient [c]) from x and gy.
    pub(crate) fn grad_w_b(&self, x: &[f32], gy: &[f32], n: usize) -> (Vec<f32>, Vec<f32>) {
        (weight_grad(self.g, gy, x, self.cin, n), bias_grad(gy, self.g.c, self.g.h * self.g.w))
    }
}

#[cfg(test)]
mod tests {
    use super::Geom;

    /// im2col against a direct definition, and col2im as its adjoint (<A x, c> = <x, A^T c>),
    /// for strides 1 and 2, odd sizes and several paddings.
    #[test]
    fn im2col_and_its_adjoint() {
        for &(c, h, w, k, s, p) in
            &[(2, 5, 7, 3, 1, 1), (3, 6, 6, 3, 2, 1), (2, 7, 5, 3, 2, 1), (1, 8, 8, 4, 2, 1), (2, 5, 6, 3, 1, 0)]
        {
            let g = Geom::new(c, h, w, k, s, p).unwrap();
            let x: Vec<f32> = (0..c * h * w).map(|i| (i as f32 * 0.73).sin()).collect();
            let mut cols = vec![f32::NAN; g.rows() * g.positions()];
            g.im2col(&x, &mut cols);
            for ci in 0..c {
                for ky in 0..k {
                    for kx in 0..k {
                        for oy in 0..g.oh {
                            for ox in 0..g.ow {
                                let (iy, ix) =
                                    ((oy * s + ky) as isize - p as isize, (ox * s + kx) as isize - p as isize);
                                let want = if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    0.0
                                } else {
                                    x[(ci * h + iy as usize) * w + ix as usize]
                                };
                                let row = (ci * k + ky) * k + kx;
                                assert_eq!(cols[row * g.positions() + oy * g.ow + ox], want, "{g:?}");
                            }
                        }
                    }
                }
            }
            let r: Vec<f32> = (0..cols.len()).map(|i| (i as f32 * 0.31).cos()).collect();
            let mut back = vec![0f32; x.len()];
            g.col2im(&r, &mut back);
            let lhs: f64 = cols.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum();
            let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
            assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{g:?}: {lhs} vs {rhs}");
        }
        assert!(Geom::new(1, 2, 2, 5, 1, 1).is_none());
    }
}
