//! Row-wise kernels of the velocity network's training ops (`autodiff::adaln`,
//! `autodiff::gate`, `autodiff::softmax`): forward passes that keep what their gradients
//! need, and the gradients, over plain f32 rows of width `d`. Rows come in groups of `n`
//! (the tokens of one image) that share one per-image row of the modulation vectors.

use super::{mean_inv_std, sum8};

/// Sum of x[i] * y[i] with 8 independent accumulators (vectorisable).
#[inline(always)]
fn dot8(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (mut a, mut b) = (x.chunks_exact(8), y.chunks_exact(8));
    for (p, q) in (&mut a).zip(&mut b) {
        for i in 0..8 {
            acc[i] += p[i] * q[i];
        }
    }
    let tail: f32 = a.remainder().iter().zip(b.remainder()).map(|(p, q)| p * q).sum();
    acc.iter().sum::<f32>() + tail
}

multiversion! {
    /// y = xhat * (1 + scale) + shift with xhat = layer_norm(x) (no affine, biased variance),
    /// per row of x; also writes xhat and each row's 1 / std for the gradient.
    pub(crate) fn adaln_forward(
        x: &[f32],
        shift: &[f32],
        scale: &[f32],
        n: usize,
        d: usize,
        eps: f32,
        y: &mut [f32],
        xhat: &mut [f32],
        rstd: &mut [f32],
    ) {
        let rows = x.chunks_exact(d).zip(y.chunks_exact_mut(d)).zip(xhat.chunks_exact_mut(d));
        for (r, ((xr, yr), hr)) in rows.enumerate() {
            let img = r / n;
            let (sh, sc) = (&shift[img * d..][..d], &scale[img * d..][..d]);
            let (mean, inv) = mean_inv_std(xr, eps);
            rstd[r] = inv;
            for j in 0..d {
                let h = (xr[j] - mean) * inv;
                hr[j] = h;
                yr[j] = h * (1.0 + sc[j]) + sh[j];
            }
        }
    }
}

multiversion! {
    /// Gradients of [`adaln_forward`] for the upstream gradient `g`: gx per row (if wanted),
    /// and g summed over each image's rows into gshift, (g * xhat) into gscale (if wanted).
    /// With gy = g (1 + scale): gx = rstd (gy - mean(gy) - xhat mean(gy xhat)).
    pub(crate) fn adaln_backward(
        g: &[f32],
        xhat: &[f32],
        rstd: &[f32],
        scale: &[f32],
        n: usize,
        d: usize,
        gx: Option<&mut [f32]>,
        gmod: Option<(&mut [f32], &mut [f32])>,
    ) {
        if let Some((gshift, gscale)) = gmod {
            for (r, (gr, hr)) in g.chunks_exact(d).zip(xhat.chunks_exact(d)).enumerate() {
                let img = r / n;
                let (gs, gc) = (&mut gshift[img * d..][..d], &mut gscale[img * d..][..d]);
                for j in 0..d {
                    gs[j] += gr[j];
                    gc[j] += gr[j] * hr[j];
                }
            }
        }
        let Some(gx) = gx else { return };
        let inv_d = 1.0 / d as f32;
        let rows = g.chunks_exact(d).zip(xhat.chunks_exact(d)).zip(gx.chunks_exact_mut(d));
        for (r, ((gr, hr), out)) in rows.enumerate() {
            let sc = &scale[(r / n) * d..][..d];
            for j in 0..d {
                out[j] = gr[j] * (1.0 + sc[j]);
            }
            let m1 = sum8(out) * inv_d;
            let m2 = dot8(out, hr) * inv_d;
            let s = rstd[r];
            for j in 0..d {
                out[j] = s * (out[j] - m1 - hr[j] * m2);
            }
        }
    }
}

multiversion! {
    /// y = x + h * gate per row (gate: one row per image).
    pub(crate) fn gate_forward(x: &[f32], h: &[f32], gate: &[f32], n: usize, d: usize, y: &mut [f32]) {
        let rows = x.chunks_exact(d).zip(h.chunks_exact(d)).zip(y.chunks_exact_mut(d));
        for (r, ((xr, hr), yr)) in rows.enumerate() {
            let gt = &gate[(r / n) * d..][..d];
            for j in 0..d {
                yr[j] = xr[j] + hr[j] * gt[j];
            }
        }
    }
}

multiversion! {
    /// Gradients of [`gate_forward`] other than x's (which is g itself): gh = g * gate per row
    /// (if wanted), g * h summed over each image's rows into ggate (if wanted).
    pub(crate) fn gate_backward(
        g: &[f32],
        h: &[f32],
        gate: &[f32],
        n: usize,
        d: usize,
        gh: Option<&mut [f32]>,
        ggate: Option<&mut [f32]>,
    ) {
        if let Some(gh) = gh {
            for (r, (gr, out)) in g.chunks_exact(d).zip(gh.chunks_exact_mut(d)).enumerate() {
                let gt = &gate[(r / n) * d..][..d];
                for j in 0..d {
                    out[j] = gr[j] * gt[j];
                }
            }
        }
        if let Some(gg) = ggate {
            for (r, (gr, hr)) in g.chunks_exact(d).zip(h.chunks_exact(d)).enumerate() {
                let acc = &mut gg[(r / n) * d..][..d];
                for j in 0..d {
                    acc[j] += gr[j] * hr[j];
                }
            }
        }
    }
}

multiversion! {
    /// Gradient of a row softmax y in place of the upstream gradient g:
    /// g <- y (g - sum(g y)) per row of length `d`.
    pub(crate) fn softmax_backward(g: &mut [f32], y: &[f32], d: usize) {
        for (gr, yr) in g.chunks_exact_mut(d).zip(y.chunks_exact(d)) {
            let s = dot8(gr, yr);
            for j in 0..d {
                gr[j] = yr[j] * (gr[j] - s);
            }
        }
    }
}
