//! The latent flow network theta_L for CPU inference. Its matrices are small (latent_dim and a
//! few hundred hidden units), so as burn ops a sampling call's 16 Midpoint steps (32
//! evaluations) cost about as much as the image flow's 8: the time went to per-op overhead and
//! scalar exp in SiLU, not to the products.

use std::cell::RefCell;

use super::{
    ClassRows, Dense, TIME_FREQ_DIM, mean_inv_std, rows_matmul_acc, silu_in_place, time_features, with_buffers,
};
use crate::model::LatentFlowNet;

thread_local! {
    /// Per-thread activation buffers (the latent flow runs once per latent solver step).
    static WORKSPACE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// theta_L's layer norms (parameter-free), as in `LatentFlowNet::forward`.
const LN_EPS: f32 = 1e-5;

struct Block {
    fc1: Dense,
    time: Dense,
    fc2: Dense,
}

/// A [`LatentFlowNet`]'s weights with its forward pass.
pub struct CpuLatentFlow {
    input: Dense,
    time1: Dense,
    time2: Dense,
    blocks: Vec<Block>,
    output: Dense,
    classes: Option<ClassRows>,
}

impl std::fmt::Debug for CpuLatentFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuLatentFlow {{ hidden: {}, blocks: {} }}", self.input.output, self.blocks.len())
    }
}

/// rows of x -> layer_norm(x) into out.
fn layer_norm(x: &[f32], out: &mut [f32], d: usize) {
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let (mean, inv) = mean_inv_std(xr, LN_EPS);
        for (o, v) in or.iter_mut().zip(xr) {
            *o = (v - mean) * inv;
        }
    }
}

/// out += x W for the rows of x, row by row independently (see [`rows_matmul_acc`]): a
/// latent's velocity must not depend on the other latents of the batch.
fn product(l: &Dense, x: &[f32], rows: usize, out: &mut [f32]) {
    rows_matmul_acc(x, &l.w, out, rows, l.input, l.output);
}

/// Every row of out = bias (or the sum of two biases).
fn fill_bias(out: &mut [f32], width: usize, a: &[f32], b: Option<&[f32]>) {
    for r in out.chunks_exact_mut(width) {
        r.copy_from_slice(a);
        if let Some(b) = b {
            for (x, y) in r.iter_mut().zip(b) {
                *x += y;
            }
        }
    }
}

/// Adds bias to every row of out.
fn fill_bias_add(out: &mut [f32], width: usize, bias: &[f32]) {
    for r in out.chunks_exact_mut(width) {
        for (x, y) in r.iter_mut().zip(bias) {
            *x += y;
        }
    }
}

impl CpuLatentFlow {
    pub fn from_net<B: burn::prelude::Backend>(net: &LatentFlowNet<B>) -> Self {
        Self {
            input: Dense::from_linear(&net.input),
            time1: Dense::from_linear(&net.time1),
            time2: Dense::from_linear(&net.time2),
            blocks: net
                .blocks
                .iter()
                .map(|b| Block {
                    fc1: Dense::from_linear(&b.fc1),
                    time: Dense::from_linear(&b.time),
                    fc2: Dense::from_linear(&b.fc2),
                })
                .collect(),
            output: Dense::from_linear(&net.output),
            classes: ClassRows::from_table(&net.class_table),
        }
    }

    /// Velocity at (z_t, t): z [n, latent_dim], t [n] as flat arrays -> [n, latent_dim] (a
    /// class-conditional network's unconditional branch).
    pub fn forward(&self, z: &[f32], t: &[f32]) -> Vec<f32> {
        self.forward_class(z, t, None)
    }

    /// [`Self::forward`] with every latent of class `class` (None: no class).
    pub fn forward_class(&self, z: &[f32], t: &[f32], class: Option<u32>) -> Vec<f32> {
        let n = t.len();
        let (d, h) = (self.input.input, self.input.output);
        assert_eq!(z.len(), n * d, "CpuLatentFlow::forward: z holds {} numbers for {n} latents", z.len());
        // The time path depends on t alone: a solver step gives every row the same t, so it is
        // computed once and its per-block contributions added like a bias (nt = 1).
        let shared = t.iter().all(|&v| v == t[0]);
        let nt = if shared { 1.min(n) } else { n };
        let sizes = [nt * TIME_FREQ_DIM, nt * h, nt * h, nt * h, n * h, n * h, n * h];
        let mut out = vec![0f32; n * d];
        with_buffers(&WORKSPACE, sizes, |[temb, th, cond, tcontrib, x, normed, a]| {
            time_features(&t[..nt], temb);
            fill_bias(th, h, &self.time1.b, None);
            product(&self.time1, temb, nt, th);
            silu_in_place(th);
            fill_bias(cond, h, &self.time2.b, None);
            product(&self.time2, th, nt, cond);
            if let Some(c) = &self.classes {
                c.add(cond, class);
            }
            silu_in_place(cond);

            fill_bias(x, h, &self.input.b, None);
            product(&self.input, z, n, x);
            for blk in &self.blocks {
                // x += fc2(silu(fc1(ln(x)) + time(cond)))
                layer_norm(x, normed, h);
                fill_bias(tcontrib, h, &blk.time.b, None);
                product(&blk.time, cond, nt, tcontrib);
                if shared {
                    fill_bias(a, h, &blk.fc1.b, Some(tcontrib));
                } else {
                    a.copy_from_slice(tcontrib);
                    fill_bias_add(a, h, &blk.fc1.b);
                }
                product(&blk.fc1, normed, n, a);
                silu_in_place(a);
                fill_bias_add(x, h, &blk.fc2.b);
                product(&blk.fc2, a, n, x);
            }
            layer_norm(x, normed, h);
            silu_in_place(normed);
            fill_bias(&mut out, d, &self.output.b, None);
            product(&self.output, normed, n, &mut out);
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;
    use crate::config::{ModelConfig, PriorKind};
    use crate::model::cpu::floats;
    use crate::model::cpu::test_util::{max_rel_diff, randomized};
    use burn::prelude::*;
    use burn::tensor::TensorData;

    #[test]
    fn matches_the_burn_latent_flow_with_classes() {
        let mut cfg = ModelConfig::preset("tiny", 4, 32, PriorKind::Learned).unwrap();
        cfg.classes.names = vec!["a".into(), "b".into()];
        let net = randomized(LatentFlowNet::<CpuBackend>::new(&cfg, &Default::default()), 4);
        let fast = CpuLatentFlow::from_net(&net);
        let (n, d) = (3, cfg.aux.latent_dim);
        let zs = crate::rng::Rng::new(5).normal_vec(n * d);
        let device = Default::default();
        let z = Tensor::<CpuBackend, 2>::from_data(TensorData::new(zs.clone(), [n, d]), &device);
        let t = Tensor::<CpuBackend, 1>::from_data(TensorData::new(vec![0.6f32; n], [n]), &device);
        for class in [None, Some(0), Some(1)] {
            let y = class.map(|c| Tensor::<CpuBackend, 1, Int>::full([n], c as i64, &device));
            let want = floats(net.forward_class(z.clone(), t.clone(), y));
            let diff = max_rel_diff(&want, &fast.forward_class(&zs, &[0.6; 3], class));
            assert!(diff < 1e-4, "class {class:?}: {diff}");
        }
    }

    #[test]
    fn matches_the_burn_latent_flow() {
        for (preset, n) in [("tiny", 5), ("small", 3)] {
            let cfg = ModelConfig::preset(preset, 4, 32, PriorKind::Learned).unwrap();
            let net = randomized(LatentFlowNet::<CpuBackend>::new(&cfg, &Default::default()), 9);
            let fast = CpuLatentFlow::from_net(&net);
            let d = cfg.aux.latent_dim;
            let zs = crate::rng::Rng::new(2).normal_vec(n * d);
            // One t per row, and one t for all rows (a solver step; computed once).
            for ts in [(0..n).map(|i| i as f32 / n as f32).collect::<Vec<_>>(), vec![0.3; n]] {
                let device = Default::default();
                let z = Tensor::<CpuBackend, 2>::from_data(TensorData::new(zs.clone(), [n, d]), &device);
                let t = Tensor::<CpuBackend, 1>::from_data(TensorData::new(ts.clone(), [n]), &device);
                let want = floats(net.forward(z, t));
                let diff = max_rel_diff(&want, &fast.forward(&zs, &ts));
                assert!(diff < 1e-4, "{preset} t {ts:?}: {diff}");
                // Each latent bitwise as when it runs alone.
                let all = fast.forward(&zs, &ts);
                for i in 0..n {
                    assert_eq!(&all[i * d..(i + 1) * d], &fast.forward(&zs[i * d..(i + 1) * d], &ts[i..i + 1])[..]);
                }
            }
        }
    }
}
