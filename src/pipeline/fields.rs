//! The two velocity fields the solvers integrate (image flow, latent flow), each through the
//! fused CPU pass when the pipeline has one, and the interpolation helpers.

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::config::Prediction;
use crate::flow::{VelocityField, output_to_velocity};
use crate::model::cpu::Kernels;
use crate::model::cpu::dit::CpuDit;
use crate::model::cpu::latent::CpuLatentFlow;
use crate::model::{LatentFlowNet, VelocityNet};
use crate::rng::{Purpose, Rng};

use super::options::Condition;

/// Classifier-free guidance: v(none) + g (v(class) - v(none)), from the two branches.
fn guide<B: Backend, const D: usize>(uncond: Tensor<B, D>, cond: Tensor<B, D>, g: f32) -> Tensor<B, D> {
    uncond.clone() + (cond - uncond) * g
}

/// The image velocity field: the fused CPU forward pass when the pipeline has one (CPU
/// backend), burn's forward otherwise.
pub(super) struct ImageField<'a, B: Backend> {
    pub net: &'a VelocityNet<B>,
    /// The fused pass and the kernels it multiplies with.
    pub fast: Option<(&'a CpuDit, Kernels)>,
    pub prediction: Prediction,
    /// Threads the fused pass may spread one call's images over.
    pub threads: usize,
    /// Tileable sampling: Some(seed of the call's circular shifts).
    pub wrap: Option<u64>,
    /// The class (and guidance) every image of the call is drawn with.
    pub condition: Condition,
}

/// Velocity of `net` at (x, t) with t given per image, through `fast` (with its kernels) when
/// present; a data-predicting network's output is turned into the velocity it stands for. `wrap`: the
/// per-pixel head pads circularly. `condition`: the class of every image, with guidance.
#[allow(clippy::too_many_arguments)]
pub(super) fn velocity_at<B: Backend>(
    net: &VelocityNet<B>,
    fast: Option<(&CpuDit, Kernels)>,
    prediction: Prediction,
    threads: usize,
    wrap: bool,
    condition: Condition,
    x: Tensor<B, 4>,
    t: Tensor<B, 1>,
) -> Tensor<B, 4> {
    let branch = |class: Option<u32>| {
        let (dims, device) = (x.dims(), x.device());
        let floats = |d: TensorData| d.convert::<f32>().into_vec::<f32>();
        let out = match fast.map(|f| (f, floats(x.clone().into_data()), floats(t.clone().into_data()))) {
            Some(((fast, kernels), Ok(xs), Ok(ts))) => Tensor::from_data(
                TensorData::new(fast.forward_with(kernels, &xs, &ts, threads, wrap, class), dims),
                &device,
            ),
            _ => {
                let y = class.map(|c| Tensor::<B, 1, Int>::full([dims[0]], c as i64, &device));
                net.forward_class(x.clone(), t.clone(), wrap, y)
            }
        };
        output_to_velocity(prediction, out, x.clone(), t.clone())
    };
    let v = branch(condition.class);
    if condition.guided() { guide(branch(None), v, condition.guidance) } else { v }
}

/// The circular shift (rows, columns) of tileable sampling's evaluation at solver time `t`:
/// uniform over the image's pixels, the same for every image of the call (so an image's result
/// does not depend on its batch), drawn from (seed, t).
///
/// Single pixels rather than whole patches: shifts by whole patches keep the transformer's
/// patch grid lined up with the wrap, so no token ever straddles it, and left the baseline's
/// seam ratio at up to 1.15 over three seeds (single pixels: at most 1.03), for a lower pixel KID
/// on floor and wall tiles (46 against 55 for LeDiFlow).
pub(super) fn tile_shift(seed: u64, t: f32, height: usize, width: usize) -> (usize, usize) {
    let mut rng = Rng::stream(seed, t.to_bits() as u64, Purpose::TileShift);
    (rng.below(height), rng.below(width))
}

impl<B: Backend> VelocityField<B, 4> for ImageField<'_, B> {
    fn velocity(&self, x: Tensor<B, 4>, t: f32) -> Tensor<B, 4> {
        let [n, _, h, w] = x.dims();
        let tt = Tensor::<B, 1>::full([n], t, &x.device());
        let Some(seed) = self.wrap else {
            return velocity_at(self.net, self.fast, self.prediction, self.threads, false, self.condition, x, tt);
        };
        // The network sees the image rolled so that its own borders (where the transformer has
        // learned that an image ends) fall somewhere new at every evaluation; the velocity is
        // rolled back. Each place is in the interior most of the time, so the flow joins the
        // opposite edges as it joins any neighbouring pixels.
        let (dy, dx) = tile_shift(seed, t, h, w);
        // out[y][x] = x[y - dy][x - dx] (burn's roll), and back.
        let rolled = x.roll(&[dy as i64, dx as i64], &[2, 3]);
        let v = velocity_at(self.net, self.fast, self.prediction, self.threads, true, self.condition, rolled, tt);
        v.roll(&[-(dy as i64), -(dx as i64)], &[2, 3])
    }
}

/// The latent velocity field (through the fused pass when present), with the call's class.
pub(super) struct LatentField<'a, B: Backend>(pub &'a LatentFlowNet<B>, pub Option<&'a CpuLatentFlow>, pub Condition);

impl<B: Backend> VelocityField<B, 2> for LatentField<'_, B> {
    fn velocity(&self, z: Tensor<B, 2>, t: f32) -> Tensor<B, 2> {
        let n = z.dims()[0];
        let branch = |class: Option<u32>| {
            if let Some(fast) = self.1
                && let Ok(zs) = z.clone().into_data().convert::<f32>().into_vec::<f32>()
            {
                let v = fast.forward_class(&zs, &vec![t; n], class);
                return Tensor::from_data(TensorData::new(v, z.dims()), &z.device());
            }
            let tt = Tensor::<B, 1>::full([n], t, &z.device());
            let y = class.map(|c| Tensor::<B, 1, Int>::full([n], c as i64, &z.device()));
            self.0.forward_class(z.clone(), tt, y)
        };
        let v = branch(self.2.class);
        if self.2.guided() { guide(branch(None), v, self.2.guidance) } else { v }
    }
}

/// Spherical interpolation between two vectors, falling back to linear when nearly parallel.
pub fn slerp(a: &[f32], b: &[f32], lambda: f32) -> Vec<f32> {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let cos = if na > 0.0 && nb > 0.0 { (dot / (na * nb)).clamp(-1.0, 1.0) } else { 1.0 };
    let omega = cos.acos();
    let l = lambda as f64;
    let (wa, wb) = if omega.sin().abs() < 1e-6 {
        (1.0 - l, l)
    } else {
        (((1.0 - l) * omega).sin() / omega.sin(), (l * omega).sin() / omega.sin())
    };
    a.iter().zip(b).map(|(x, y)| (wa * *x as f64 + wb * *y as f64) as f32).collect()
}

/// The interpolation weight of frame `i` of `frames` (both ends included).
pub(super) fn lambda(i: usize, frames: usize) -> f32 {
    if frames == 1 { 0.0 } else { i as f32 / (frames - 1) as f32 }
}
