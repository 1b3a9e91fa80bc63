//! Autodiff ops for CPU training (`Autodiff<Flex>`) where burn-flex's own are slow.
//!
//! - GELU: burn-flex evaluates libm's scalar `erff` per element in the forward pass and again
//!   (plus an `exp`) in the backward pass: 11% of a training step of the dim-192 velocity
//!   network (perf, BENCHMARKS.md). [`gelu`] computes the same exact (erf) GELU and its
//!   derivative with [`erf_f32`] and [`exp_f32`] in loops the compiler vectorises, and keeps
//!   the input for the backward pass as burn's own GELU op does.
//! - Permute into a contiguous tensor: burn-flex makes permuted views contiguous through a
//!   generic element-by-element strided iterator (17% of a dim-192 step, for the attention's
//!   layout swaps). [`permute`] copies whole innermost runs instead, in both passes.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::tensor::{DType, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;

use super::{exp_f32, gelu_in_place};
use crate::model::erf_f32;
use crate::{CpuBackend, CpuTrainBackend};

multiversion! {
    /// g *= GELU'(x) = Phi(x) + x phi(x), element by element.
    fn gelu_grad_in_place(g: &mut [f32], x: &[f32]) {
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        for (g, &x) in g.iter_mut().zip(x) {
            let cdf = 0.5 * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
            let pdf = INV_SQRT_2PI * exp_f32(-0.5 * x * x);
            *g *= cdf + x * pdf;
        }
    }
}

/// The contiguous f32 values of `t` (a view when it already is contiguous, else a copy).
fn contiguous(t: &FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() { t.clone() } else { t.to_contiguous() }
}

fn gelu_forward(x: &FlexTensor) -> FlexTensor {
    let x = contiguous(x);
    let mut out = x.as_slice::<f32>().expect("contiguous f32").to_vec();
    gelu_in_place(&mut out);
    FlexTensor::from_data(TensorData::new(out, x.layout().shape().clone()))
}

fn gelu_backward(x: &FlexTensor, grad: FlexTensor) -> FlexTensor {
    let x = contiguous(x);
    let xs = x.as_slice::<f32>().expect("contiguous f32");
    // `storage_mut` is the whole buffer: only a gradient that is exactly its buffer is used in
    // place (copy-on-write if shared); views (offset, strided, part of a buffer) are copied.
    let l = grad.layout();
    let exact = l.is_contiguous() && l.start_offset() == 0 && grad.bytes().len() == l.num_elements() * 4;
    let mut grad = if exact { grad } else { grad.to_contiguous() };
    gelu_grad_in_place(grad.storage_mut::<f32>(), xs);
    grad
}

#[derive(Debug)]
struct Gelu;

impl Backward<CpuBackend, 1> for Gelu {
    /// The op's input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<CpuBackend, _>(ops.parents, ops.node, grads, |grad| gelu_backward(&x, grad));
    }
}

/// Exact GELU on the CPU training backend; `Err(x)` (the caller falls back to burn's GELU) for
/// tensors that are not f32.
pub(crate) fn gelu<const D: usize>(
    x: burn::tensor::Tensor<CpuTrainBackend, D>,
) -> Result<burn::tensor::Tensor<CpuTrainBackend, D>, burn::tensor::Tensor<CpuTrainBackend, D>> {
    if x.dtype() != DType::F32 {
        return Err(x);
    }
    let x = x.into_primitive().tensor();
    if x.primitive.dtype() != DType::F32 || x.primitive.layout().shape().num_elements() == 0 {
        return Err(burn::tensor::Tensor::from_primitive(TensorPrimitive::Float(x)));
    }
    let out = match Gelu.prepare::<NoCheckpointing>([x.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let y = gelu_forward(&x.primitive);
            prep.finish(x.primitive, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(gelu_forward(&x.primitive)),
    };
    Ok(burn::tensor::Tensor::from_primitive(TensorPrimitive::Float(out)))
}

/// A contiguous copy of any strided f32 view: innermost runs as slice copies when their stride
/// is 1, an indexed gather otherwise.
fn contiguous_copy(t: &FlexTensor) -> FlexTensor {
    let layout = t.layout();
    let shape = layout.shape().to_vec();
    let strides = layout.strides().to_vec();
    let n: usize = shape.iter().product();
    let src = t.storage::<f32>();
    let mut out = Vec::with_capacity(n);
    let d = shape.len();
    if d == 0 || n == 0 {
        out.extend((0..n).map(|_| src[layout.start_offset()]));
        return FlexTensor::from_data(TensorData::new(out, shape));
    }
    let (last, ls) = (shape[d - 1], strides[d - 1]);
    let mut idx = vec![0usize; d - 1];
    let mut base = layout.start_offset() as isize;
    for _ in 0..n / last {
        if ls == 1 {
            out.extend_from_slice(&src[base as usize..base as usize + last]);
        } else {
            out.extend((0..last as isize).map(|j| src[(base + j * ls) as usize]));
        }
        // Next row: an odometer over the outer dimensions.
        for k in (0..d - 1).rev() {
            idx[k] += 1;
            base += strides[k];
            if idx[k] < shape[k] {
                break;
            }
            base -= strides[k] * shape[k] as isize;
            idx[k] = 0;
        }
    }
    FlexTensor::from_data(TensorData::new(out, shape))
}

#[derive(Debug)]
struct Permute;

impl Backward<CpuBackend, 1> for Permute {
    /// The inverse permutation.
    type State = Vec<usize>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let inverse = ops.state;
        unary::<CpuBackend, _>(ops.parents, ops.node, grads, |grad| {
            let view = grad.layout().permute(&inverse);
            contiguous_copy(&grad.clone().with_layout(view))
        });
    }
}

/// `x.permute(axes)` as a contiguous tensor on the CPU training backend; `Err(x)` (the caller
/// falls back to burn's permute) for tensors that are not f32.
pub(crate) fn permute<const D: usize>(
    x: burn::tensor::Tensor<CpuTrainBackend, D>,
    axes: [usize; D],
) -> Result<burn::tensor::Tensor<CpuTrainBackend, D>, burn::tensor::Tensor<CpuTrainBackend, D>> {
    if x.dtype() != DType::F32 {
        return Err(x);
    }
    let x = x.into_primitive().tensor();
    let mut inverse = vec![0; D];
    for (i, &a) in axes.iter().enumerate() {
        inverse[a] = i;
    }
    let forward = |p: &FlexTensor| contiguous_copy(&p.clone().with_layout(p.layout().permute(&axes)));
    let out = match Permute.prepare::<NoCheckpointing>([x.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let y = forward(&x.primitive);
            prep.finish(inverse, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(&x.primitive)),
    };
    Ok(burn::tensor::Tensor::from_primitive(TensorPrimitive::Float(out)))
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    use crate::CpuTrainBackend;

    /// Value and gradient against burn's own GELU on the same inputs, including a
    /// non-contiguous (transposed) input and a use of the input elsewhere in the graph.
    #[test]
    fn matches_burns_gelu_and_its_gradient() {
        let device = Default::default();
        let v: Vec<f32> = (-3000..3000).map(|i| i as f32 * 3e-3 + 1e-4).collect();
        let run = |ours: bool| {
            let x = Tensor::<CpuTrainBackend, 1>::from_floats(v.as_slice(), &device).reshape([60, 100]).require_grad();
            let w = Tensor::<CpuTrainBackend, 1>::from_floats(
                (0..6000).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect::<Vec<_>>().as_slice(),
                &device,
            )
            .reshape([100, 60]);
            let xt = x.clone().transpose();
            let y = if ours {
                super::gelu(xt).map_err(|_| "fell back").unwrap()
            } else {
                burn::tensor::activation::gelu(xt)
            };
            let loss = (y.clone() * w).sum() + x.clone().sum() * 0.5;
            let grads = loss.backward();
            (y.inner().into_data(), x.grad(&grads).unwrap().into_data())
        };
        let (y_ours, g_ours) = run(true);
        let (y_burn, g_burn) = run(false);
        y_ours.assert_approx_eq::<f32>(&y_burn, burn::tensor::Tolerance::rel_abs(1e-6, 1e-6));
        g_ours.assert_approx_eq::<f32>(&g_burn, burn::tensor::Tolerance::rel_abs(1e-6, 1e-6));
    }

    /// Values and gradients equal burn's permute exactly, for a strided (sliced, swapped)
    /// input and a gradient that arrives through a later layout swap.
    #[test]
    fn permute_matches_burns_permute_and_its_gradient() {
        let device = Default::default();
        let run = |ours: bool| {
            let x = Tensor::<CpuTrainBackend, 1>::from_floats(
                (0..2 * 3 * 5 * 7).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>().as_slice(),
                &device,
            )
            .reshape([2, 3, 5, 7])
            .require_grad();
            let v = x.clone().slice([0..2, 0..3, 1..5, 0..7]).swap_dims(0, 1);
            let axes = [2, 0, 3, 1];
            let y = if ours { super::permute(v, axes).map_err(|_| "fell back").unwrap() } else { v.permute(axes) };
            let w = Tensor::<CpuTrainBackend, 1>::from_floats(
                (0..4 * 3 * 7 * 2).map(|i| (i % 11) as f32 - 5.0).collect::<Vec<_>>().as_slice(),
                &device,
            )
            .reshape([4, 7, 3, 2])
            .swap_dims(1, 2);
            let loss = (y.clone() * w).sum();
            let grads = loss.backward();
            (y.inner().into_data(), x.grad(&grads).unwrap().into_data())
        };
        let (y_ours, g_ours) = run(true);
        let (y_burn, g_burn) = run(false);
        y_ours.assert_eq(&y_burn, true);
        g_ours.assert_eq(&g_burn, true);
    }
}
