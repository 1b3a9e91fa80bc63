//! Autodiff ops for CPU training (`Autodiff<Flex>`) where burn-flex's own are slow, built on the
//! CPU kernels of [`super::cpu`]; inference never uses them.
//!
//! - GELU: burn-flex evaluates libm's scalar `erff` per element in the forward pass and again
//!   (plus an `exp`) in the backward pass: 11% of a training step of the dim-192 velocity
//!   network (measured with perf). [`gelu`] computes the same exact (erf) GELU and its
//!   derivative with [`erf_f32`] and [`exp_f32`] in loops the compiler vectorises, and keeps
//!   the input for the backward pass as burn's own GELU op does. [`silu`] likewise (burn's is
//!   a chain of ops with a scalar `expf`: 18% of an auxiliary-model step).
//! - Permute into a contiguous tensor: burn-flex makes permuted views contiguous through a
//!   generic element-by-element strided iterator (17% of a dim-192 step, for the attention's
//!   layout swaps). [`permute`] copies whole innermost runs instead, in both passes.
//! - Convolutions and transposed convolutions of the auxiliary model ([`conv2d`],
//!   [`conv_transpose2d`]): im2col and matrix products in both passes (`super::cpu::conv`).

// These ops return `Err(input)` when they do not apply, so the caller can fall back to burn's
// op with the same tensor: the large "error" is the input handed back, not an error value.
#![allow(clippy::result_large_err)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::tensor::{DType, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;

use super::cpu::conv::{Conv, ConvT, Geom};
use super::cpu::{exp_f32, gelu_in_place, silu_in_place};
use super::cpu::{multiversion, rowops};
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

multiversion! {
    /// g *= SiLU'(x) = s (1 + x (1 - s)) with s = sigmoid(x), element by element.
    fn silu_grad_in_place(g: &mut [f32], x: &[f32]) {
        for (g, &x) in g.iter_mut().zip(x) {
            let s = 1.0 / (1.0 + exp_f32(-x));
            *g *= s * (1.0 + x * (1.0 - s));
        }
    }
}

/// An element-wise activation: the function in place, and its derivative multiplied into a
/// gradient in place given the input.
#[derive(Clone, Copy, Debug)]
struct Pointwise {
    f: fn(&mut [f32]),
    df: fn(&mut [f32], &[f32]),
}

const GELU: Pointwise = Pointwise { f: gelu_in_place, df: gelu_grad_in_place };
const SILU: Pointwise = Pointwise { f: silu_in_place, df: silu_grad_in_place };

impl Pointwise {
    fn forward(&self, x: &FlexTensor) -> FlexTensor {
        let x = contiguous(x);
        let mut out = x.as_slice::<f32>().expect("contiguous f32").to_vec();
        (self.f)(&mut out);
        FlexTensor::from_data(TensorData::new(out, x.layout().shape().clone()))
    }

    fn grad(&self, x: &FlexTensor, grad: FlexTensor) -> FlexTensor {
        let x = contiguous(x);
        let xs = x.as_slice::<f32>().expect("contiguous f32");
        // `storage_mut` is the whole buffer: `to_contiguous` keeps a gradient that is exactly its
        // buffer (used in place, copy-on-write if shared) and copies views.
        let mut grad = grad.to_contiguous();
        (self.df)(grad.storage_mut::<f32>(), xs);
        grad
    }

    /// The activation on the CPU training backend; `Err(x)` (the caller falls back to burn's)
    /// for tensors that are not f32.
    fn apply<const D: usize>(
        self,
        x: burn::tensor::Tensor<CpuTrainBackend, D>,
    ) -> Result<burn::tensor::Tensor<CpuTrainBackend, D>, burn::tensor::Tensor<CpuTrainBackend, D>> {
        if x.dtype() != DType::F32 {
            return Err(x);
        }
        let x = x.into_primitive().tensor();
        if x.primitive.dtype() != DType::F32 || x.primitive.layout().shape().num_elements() == 0 {
            return Err(burn::tensor::Tensor::from_primitive(TensorPrimitive::Float(x)));
        }
        let out = match self.prepare::<NoCheckpointing>([x.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = self.forward(&x.primitive);
                prep.finish(x.primitive, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(self.forward(&x.primitive)),
        };
        Ok(burn::tensor::Tensor::from_primitive(TensorPrimitive::Float(out)))
    }
}

impl Backward<CpuBackend, 1> for Pointwise {
    /// The op's input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<CpuBackend, _>(ops.parents, ops.node, grads, |grad| self.grad(&x, grad));
    }
}

/// Exact GELU on the CPU training backend; `Err(x)` (the caller falls back to burn's GELU) for
/// tensors that are not f32.
pub(crate) fn gelu<const D: usize>(
    x: burn::tensor::Tensor<CpuTrainBackend, D>,
) -> Result<burn::tensor::Tensor<CpuTrainBackend, D>, burn::tensor::Tensor<CpuTrainBackend, D>> {
    GELU.apply(x)
}

/// SiLU on the CPU training backend; `Err(x)` for tensors that are not f32.
pub(crate) fn silu<const D: usize>(
    x: burn::tensor::Tensor<CpuTrainBackend, D>,
) -> Result<burn::tensor::Tensor<CpuTrainBackend, D>, burn::tensor::Tensor<CpuTrainBackend, D>> {
    SILU.apply(x)
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

/// Which of the two convolution kinds a [`ConvOp`] runs, with its geometry (see `conv::Geom`:
/// a transposed convolution's geometry is that of the convolution it is the adjoint of).
#[derive(Clone, Copy, Debug)]
enum ConvKind {
    /// Weight [cout, c, k, k].
    Conv { g: Geom, cout: usize },
    /// Weight [cin, c, k, k].
    Transposed { g: Geom, cin: usize },
}

impl ConvKind {
    fn forward(&self, x: &[f32], w: &[f32], b: &[f32], n: usize) -> Vec<f32> {
        match *self {
            Self::Conv { g, cout } => Conv { g, cout, w, b }.forward(x, n),
            Self::Transposed { g, cin } => ConvT { g, cin, w, b }.forward(x, n),
        }
    }

    fn output_shape(&self, n: usize) -> Vec<usize> {
        match *self {
            Self::Conv { g, cout } => vec![n, cout, g.oh, g.ow],
            Self::Transposed { g, .. } => vec![n, g.c, g.h, g.w],
        }
    }
}

#[derive(Debug)]
struct ConvOp;

impl Backward<CpuBackend, 3> for ConvOp {
    /// The input and the weight (contiguous), the geometry and the batch size.
    type State = (FlexTensor, FlexTensor, ConvKind, usize);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let gy = contiguous(&grads.consume::<CpuBackend>(&ops.node));
        let (x, w, kind, n) = ops.state;
        let (xs, ws, gys) = (f32s(&x), f32s(&w), f32s(&gy));
        // Only the gradients some parent asks for (a frozen layer's weights have no node).
        let want_wb = node_w.is_some() || node_b.is_some();
        let (gx, gwb) = match kind {
            ConvKind::Conv { g, cout } => {
                let op = Conv { g, cout, w: ws, b: &[] };
                (node_x.as_ref().map(|_| op.grad_x(gys, n)), want_wb.then(|| op.grad_w_b(xs, gys, n)))
            }
            ConvKind::Transposed { g, cin } => {
                let op = ConvT { g, cin, w: ws, b: &[] };
                (node_x.as_ref().map(|_| op.grad_x(gys, n)), want_wb.then(|| op.grad_w_b(xs, gys, n)))
            }
        };
        if let (Some(node), Some(gx)) = (node_x, gx) {
            grads.register::<CpuBackend>(node.id, tensor_of(gx, x.layout().shape()));
        }
        let Some((gw, gb)) = gwb else { return };
        if let Some(node) = node_w {
            grads.register::<CpuBackend>(node.id, tensor_of(gw, w.layout().shape()));
        }
        if let Some(node) = node_b {
            let len = gb.len();
            grads.register::<CpuBackend>(node.id, tensor_of(gb, &[len]));
        }
    }
}

fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous f32")
}

type Train4 = burn::tensor::Tensor<CpuTrainBackend, 4>;

/// A square convolution (groups 1, dilation 1, symmetric zero padding, with bias) on the CPU
/// training backend; `None` when the tensors or the geometry are outside what `conv` covers
/// (the caller then uses burn's).
fn conv_op(
    x: &Train4,
    w: &Train4,
    b: &burn::tensor::Tensor<CpuTrainBackend, 1>,
    kind: impl FnOnce([usize; 4], [usize; 4]) -> Option<ConvKind>,
) -> Option<Train4> {
    if [x.dtype(), w.dtype(), b.dtype()] != [DType::F32; 3] {
        return None;
    }
    let kind = kind(x.dims(), w.dims())?;
    let bias_len = match kind {
        ConvKind::Conv { cout, .. } => cout,
        ConvKind::Transposed { g, .. } => g.c,
    };
    if b.dims() != [bias_len] {
        return None;
    }
    let n = x.dims()[0];
    let (x, w, b) =
        (x.clone().into_primitive().tensor(), w.clone().into_primitive().tensor(), b.clone().into_primitive().tensor());
    if n == 0 || [&x, &w, &b].iter().any(|t| t.primitive.dtype() != DType::F32) {
        return None;
    }
    let (xc, wc, bc) = (contiguous(&x.primitive), contiguous(&w.primitive), contiguous(&b.primitive));
    let y = tensor_of(kind.forward(f32s(&xc), f32s(&wc), f32s(&bc), n), &kind.output_shape(n));
    let out = match ConvOp
        .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), b.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((xc, wc, kind, n), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(burn::tensor::Tensor::from_primitive(TensorPrimitive::Float(out)))
}

/// `x` [n, c, h, w] through a k x k convolution with weight [cout, c, k, k], bias [cout],
/// stride `s` and zero padding `p` on every side.
pub(crate) fn conv2d(
    x: &Train4,
    w: &Train4,
    b: &burn::tensor::Tensor<CpuTrainBackend, 1>,
    s: usize,
    p: usize,
) -> Option<Train4> {
    conv_op(x, w, b, |[_, c, h, wd], [cout, wc, k, k2]| {
        (wc == c && k == k2).then_some(())?;
        Some(ConvKind::Conv { g: Geom::new(c, h, wd, k, s, p)?, cout })
    })
}

/// `x` [n, cin, h, w] through a k x k transposed convolution with weight [cin, cout, k, k],
/// bias [cout], stride `s`, padding `p` and no output padding: output (h - 1) s - 2p + k.
pub(crate) fn conv_transpose2d(
    x: &Train4,
    w: &Train4,
    b: &burn::tensor::Tensor<CpuTrainBackend, 1>,
    s: usize,
    p: usize,
) -> Option<Train4> {
    conv_op(x, w, b, |[_, cin, h, wd], [wc, cout, k, k2]| {
        (wc == cin && k == k2 && s > 0 && h > 0 && wd > 0).then_some(())?;
        let (oh, ow) = (((h - 1) * s + k).checked_sub(2 * p)?, ((wd - 1) * s + k).checked_sub(2 * p)?);
        let g = Geom::new(cout, oh, ow, k, s, p)?;
        // The adjoint convolution must map the output back onto exactly this input.
        (g.oh == h && g.ow == wd).then_some(ConvKind::Transposed { g, cin })
    })
}

type Train<const D: usize> = burn::tensor::Tensor<CpuTrainBackend, D>;

/// A contiguous f32 tensor of `shape` from its values.
fn tensor_of(v: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape.to_vec()))
}

/// What the adaLN gradient needs: layer_norm(x), each row's 1 / std, the scale rows and
/// [images, tokens, width].
#[derive(Clone, Debug)]
struct AdaLnState {
    xhat: FlexTensor,
    rstd: FlexTensor,
    scale: FlexTensor,
    dims: [usize; 3],
}

#[derive(Debug)]
struct AdaLn;

impl Backward<CpuBackend, 3> for AdaLn {
    type State = AdaLnState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_shift, node_scale] = ops.parents;
        let g = contiguous(&grads.consume::<CpuBackend>(&ops.node));
        let AdaLnState { xhat, rstd, scale, dims: [b, n, d] } = ops.state;
        let mut gx = node_x.as_ref().map(|_| vec![0f32; b * n * d]);
        let mut gmod = (node_shift.is_some() || node_scale.is_some()).then(|| (vec![0f32; b * d], vec![0f32; b * d]));
        rowops::adaln_backward(
            f32s(&g),
            f32s(&xhat),
            f32s(&rstd),
            f32s(&scale),
            n,
            d,
            gx.as_deref_mut(),
            gmod.as_mut().map(|(s, c)| (s.as_mut_slice(), c.as_mut_slice())),
        );
        if let (Some(node), Some(gx)) = (node_x, gx) {
            grads.register::<CpuBackend>(node.id, tensor_of(gx, &[b, n, d]));
        }
        let Some((gshift, gscale)) = gmod else { return };
        for (node, v) in [(node_shift, gshift), (node_scale, gscale)] {
            if let Some(node) = node {
                grads.register::<CpuBackend>(node.id, tensor_of(v, &[b, d]));
            }
        }
    }
}

/// layer_norm(x) * (1 + scale) + shift for x [B, N, D] (layer norm over D without affine
/// parameters, biased variance) and per-image shift, scale [B, D]: adaLN's modulation in one
/// pass each way, without copying the modulation out along the tokens. `None` (the caller uses
/// burn's ops) unless all three are f32 with matching shapes.
pub(crate) fn adaln(x: Train<3>, shift: Train<2>, scale: Train<2>, eps: f64) -> Option<Train<3>> {
    let [b, n, d] = x.dims();
    if [x.dtype(), shift.dtype(), scale.dtype()] != [DType::F32; 3] || shift.dims() != [b, d] || scale.dims() != [b, d]
    {
        return None;
    }
    if b * n * d == 0 {
        return None;
    }
    let (x, shift, scale) =
        (x.into_primitive().tensor(), shift.into_primitive().tensor(), scale.into_primitive().tensor());
    let (xc, sh, sc) = (contiguous(&x.primitive), contiguous(&shift.primitive), contiguous(&scale.primitive));
    let (mut y, mut xhat, mut rstd) = (vec![0f32; b * n * d], vec![0f32; b * n * d], vec![0f32; b * n]);
    rowops::adaln_forward(f32s(&xc), f32s(&sh), f32s(&sc), n, d, eps as f32, &mut y, &mut xhat, &mut rstd);
    let y = tensor_of(y, &[b, n, d]);
    let out = match AdaLn.prepare::<NoCheckpointing>([x.node, shift.node, scale.node]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let state = AdaLnState {
                xhat: tensor_of(xhat, &[b * n * d]),
                rstd: tensor_of(rstd, &[b * n]),
                scale: sc,
                dims: [b, n, d],
            };
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(burn::tensor::Tensor::from_primitive(TensorPrimitive::Float(out)))
}

#[derive(Debug)]
struct Gate;

impl Backward<CpuBackend, 3> for Gate {
    /// h, gate (contiguous) and [images, tokens, width].
    type State = (FlexTensor, FlexTensor, [usize; 3]);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_h, node_gate] = ops.parents;
        let g = contiguous(&grads.consume::<CpuBackend>(&ops.node));
        let (h, gate, [b, n, d]) = ops.state;
        let mut gh = node_h.as_ref().map(|_| vec![0f32; b * n * d]);
        let mut ggate = node_gate.as_ref().map(|_| vec![0f32; b * d]);
        rowops::gate_backward(f32s(&g), f32s(&h), f32s(&gate), n, d, gh.as_deref_mut(), ggate.as_deref_mut());
        if let (Some(node), Some(v)) = (node_h, gh) {
            grads.register::<CpuBackend>(node.id, tensor_of(v, &[b, n, d]));
        }
        if let (Some(node), Some(v)) = (node_gate, ggate) {
            grads.register::<CpuBackend>(node.id, tensor_of(v, &[b, d]));
        }
        if let Some(node) = node_x {
            grads.register::<CpuBackend>(node.id, g);
        }
    }
}

/// x + h * gate for x, h [B, N, D] and a per-image gate [B, D] (adaLN-Zero's gated residual)
/// in one pass each way. `None` unless all three are f32 with matching shapes.
pub(crate) fn gate(x: Train<3>, h: Train<3>, gate: Train<2>) -> Option<Train<3>> {
    let [b, n, d] = x.dims();
    if [x.dtype(), h.dtype(), gate.dtype()] != [DType::F32; 3] || h.dims() != [b, n, d] || gate.dims() != [b, d] {
        return None;
    }
    if b * n * d == 0 {
        return None;
    }
    let (x, h, gt) = (x.into_primitive().tensor(), h.into_primitive().tensor(), gate.into_primitive().tensor());
    let (xc, hc, gc) = (contiguous(&x.primitive), contiguous(&h.primitive), contiguous(&gt.primitive));
    let mut y = vec![0f32; b * n * d];
    rowops::gate_forward(f32s(&xc), f32s(&hc), f32s(&gc), n, d, &mut y);
    let y = tensor_of(y, &[b, n, d]);
    let out = match Gate.prepare::<NoCheckpointing>([x.node, h.node, gt.node]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((hc, gc, [b, n, d]), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(burn::tensor::Tensor::from_primitive(TensorPrimitive::Float(out)))
}

#[derive(Debug)]
struct Softmax;

impl Backward<CpuBackend, 1> for Softmax {
    /// The op's output (contiguous).
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let y = ops.state;
        unary::<CpuBackend, _>(ops.parents, ops.node, grads, |g| {
            let d = *y.layout().shape().last().expect("rank >= 1");
            let mut g = g.to_contiguous();
            rowops::softmax_backward(g.storage_mut::<f32>(), f32s(&y), d);
            g
        });
    }
}

/// Softmax over the last dimension in one vectorised pass each way (burn's is a chain of
/// ops with a scalar `expf`). `Err(x)` for tensors that are not f32.
pub(crate) fn softmax_last<const D: usize>(x: Train<D>) -> Result<Train<D>, Train<D>> {
    if x.dtype() != DType::F32 || x.dims().iter().product::<usize>() == 0 {
        return Err(x);
    }
    let d = x.dims()[D - 1];
    let x = x.into_primitive().tensor();
    let mut y = x.primitive.to_contiguous();
    super::cpu::softmax_rows(y.storage_mut::<f32>(), d);
    let out = match Softmax.prepare::<NoCheckpointing>([x.node]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(y.clone(), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Ok(burn::tensor::Tensor::from_primitive(TensorPrimitive::Float(out)))
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;

    use crate::CpuTrainBackend;

    type Act = fn(Tensor<CpuTrainBackend, 2>) -> Tensor<CpuTrainBackend, 2>;

    /// Value and gradient of `ours` against burn's activation on the same inputs, including a
    /// non-contiguous (transposed) input and a use of the input elsewhere in the graph.
    fn matches_burns_activation(ours: Act, burns: Act) {
        let device = Default::default();
        let v: Vec<f32> = (-3000..3000).map(|i| i as f32 * 3e-3 + 1e-4).collect();
        let run = |f: Act| {
            let x = Tensor::<CpuTrainBackend, 1>::from_floats(v.as_slice(), &device).reshape([60, 100]).require_grad();
            let w = Tensor::<CpuTrainBackend, 1>::from_floats(
                (0..6000).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect::<Vec<_>>().as_slice(),
                &device,
            )
            .reshape([100, 60]);
            let y = f(x.clone().transpose());
            let loss = (y.clone() * w).sum() + x.clone().sum() * 0.5;
            let grads = loss.backward();
            (y.inner().into_data(), x.grad(&grads).unwrap().into_data())
        };
        let (y_ours, g_ours) = run(ours);
        let (y_burn, g_burn) = run(burns);
        y_ours.assert_approx_eq::<f32>(&y_burn, burn::tensor::Tolerance::rel_abs(1e-6, 1e-6));
        g_ours.assert_approx_eq::<f32>(&g_burn, burn::tensor::Tolerance::rel_abs(1e-6, 1e-6));
    }

    #[test]
    fn matches_burns_gelu_and_its_gradient() {
        matches_burns_activation(|x| super::gelu(x).map_err(|_| "fell back").unwrap(), burn::tensor::activation::gelu);
    }

    #[test]
    fn matches_burns_silu_and_its_gradient() {
        matches_burns_activation(|x| super::silu(x).map_err(|_| "fell back").unwrap(), burn::tensor::activation::silu);
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

    /// Output and the gradients of input, weight and bias against burn's own layers, for the
    /// auxiliary model's kinds (3x3 stride 1 and 2, 4x4 stride-2 transposed) plus odd sizes,
    /// no padding and a strided input; and the geometries left to burn.
    #[test]
    fn convolutions_match_burns_and_their_gradients() {
        use burn::nn::PaddingConfig2d;
        use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
        let device = Default::default();
        let input = |n: usize, c: usize, h: usize, w: usize| {
            // Built as [n, c, w, h] and swapped: a non-contiguous input.
            Tensor::<CpuTrainBackend, 1>::from_floats(
                (0..n * c * h * w).map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0).collect::<Vec<_>>().as_slice(),
                &device,
            )
            .reshape([n, c, w, h])
            .swap_dims(2, 3)
            .require_grad()
        };
        // The output with the gradients of input, weight and bias of a loss that weighs it.
        type Param4 = burn::module::Param<Tensor<CpuTrainBackend, 4>>;
        type Bias = Option<burn::module::Param<Tensor<CpuTrainBackend, 1>>>;
        let with_grads = |x: Tensor<CpuTrainBackend, 4>, y: Tensor<CpuTrainBackend, 4>, w: &Param4, b: &Bias| {
            let wgt = y.clone().inner().cos();
            let grads = (y.clone() * Tensor::from_inner(wgt)).sum().backward();
            let g = vec![
                x.grad(&grads).unwrap().into_data(),
                w.grad(&grads).unwrap().into_data(),
                b.as_ref().unwrap().grad(&grads).unwrap().into_data(),
            ];
            (y, g)
        };
        let check = |ours: (Tensor<CpuTrainBackend, 4>, Vec<TensorData>),
                     burn: (Tensor<CpuTrainBackend, 4>, Vec<TensorData>)| {
            let tol = burn::tensor::Tolerance::rel_abs(1e-4, 1e-4);
            ours.0.into_data().assert_approx_eq::<f32>(&burn.0.into_data(), tol);
            for (a, b) in ours.1.iter().zip(&burn.1) {
                a.assert_approx_eq::<f32>(b, tol);
            }
        };
        for &(cin, cout, h, w, k, s, p) in
            &[(3, 5, 8, 8, 3, 1, 1), (4, 6, 8, 8, 3, 2, 1), (2, 3, 7, 5, 3, 2, 1), (2, 3, 6, 5, 3, 1, 0)]
        {
            let conv = Conv2dConfig::new([cin, cout], [k, k])
                .with_stride([s, s])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .init::<CpuTrainBackend>(&device);
            let run = |ours: bool| {
                let x = input(3, cin, h, w);
                let y = if ours { crate::model::conv2d(&conv, x.clone()) } else { conv.forward(x.clone()) };
                with_grads(x, y, &conv.weight, &conv.bias)
            };
            check(run(true), run(false));
        }
        for &(cin, cout, h, w, k, s, p) in &[(4, 3, 4, 4, 4, 2, 1), (3, 2, 5, 3, 4, 2, 1), (2, 2, 4, 4, 3, 1, 1)] {
            let conv = ConvTranspose2dConfig::new([cin, cout], [k, k])
                .with_stride([s, s])
                .with_padding([p, p])
                .init::<CpuTrainBackend>(&device);
            let run = |ours: bool| {
                let x = input(2, cin, h, w);
                let y = if ours { crate::model::conv_transpose2d(&conv, x.clone()) } else { conv.forward(x.clone()) };
                with_grads(x, y, &conv.weight, &conv.bias)
            };
            check(run(true), run(false));
        }
        // A frozen layer (no weight or bias gradient wanted): the input's gradient still flows.
        let frozen = Conv2dConfig::new([2, 3], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init::<CpuTrainBackend>(&device)
            .no_grad();
        let grad_x = |ours: bool| {
            let x = input(2, 2, 6, 6);
            let y = if ours { crate::model::conv2d(&frozen, x.clone()) } else { frozen.forward(x.clone()) };
            let grads = (y.clone() * y).sum().backward();
            assert!(frozen.weight.grad(&grads).is_none());
            x.grad(&grads).unwrap().into_data()
        };
        grad_x(true).assert_approx_eq::<f32>(&grad_x(false), burn::tensor::Tolerance::rel_abs(1e-4, 1e-4));
        // Geometries the fast path does not cover are burn's: output padding, dilation.
        let x = input(1, 2, 5, 5);
        let t = ConvTranspose2dConfig::new([2, 2], [3, 3])
            .with_stride([2, 2])
            .with_padding_out([1, 1])
            .init::<CpuTrainBackend>(&device);
        assert_eq!(crate::model::conv_transpose2d(&t, x.clone()).dims(), t.forward(x.clone()).dims());
        let d = Conv2dConfig::new([2, 2], [3, 3]).with_dilation([2, 2]).init::<CpuTrainBackend>(&device);
        crate::model::conv2d(&d, x.clone()).into_data().assert_eq(&d.forward(x).into_data(), true);
    }

    /// adaLN modulation, gated residual and softmax against the chains of burn ops they
    /// replace: values and the gradients of every input, with the modulation vectors as strided
    /// column chunks of one tensor (as in the network), and with frozen modulation vectors.
    #[test]
    fn adaln_gate_and_softmax_match_burns_ops_and_their_gradients() {
        use crate::model::layer_norm;
        let device = Default::default();
        let (b, n, d) = (3, 5, 12);
        let vals = |len: usize, seed: usize| -> Vec<f32> {
            (0..len).map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 400.0 - 1.25).collect()
        };
        let tensor =
            |len: usize, seed: usize| Tensor::<CpuTrainBackend, 1>::from_floats(vals(len, seed).as_slice(), &device);
        let run = |ours: bool, train_mod: bool| {
            let x = tensor(b * n * d, 1).reshape([b, n, d]).require_grad();
            let h = tensor(b * n * d, 2).reshape([b, n, d]).require_grad();
            let m = tensor(b * 3 * d, 3).reshape([b, 3 * d]);
            let m = if train_mod { m.require_grad() } else { m };
            let [shift, scale, gate] = <[_; 3]>::try_from(m.clone().chunk(3, 1)).unwrap();
            let (y, z, s) = if ours {
                let y = super::adaln(x.clone(), shift, scale, 1e-6).unwrap();
                let z = super::gate(x.clone(), y.clone() * h.clone(), gate).unwrap();
                let s = super::softmax_last(z.clone()).map_err(|_| "fell back").unwrap();
                (y, z, s)
            } else {
                let y = layer_norm(x.clone(), 1e-6) * (scale.unsqueeze_dim::<3>(1) + 1.0) + shift.unsqueeze_dim::<3>(1);
                let z = x.clone() + y.clone() * h.clone() * gate.unsqueeze_dim::<3>(1);
                let s = burn::tensor::activation::softmax(z.clone(), 2);
                (y, z, s)
            };
            let w1 = tensor(b * n * d, 4).reshape([b, n, d]);
            let w2 = tensor(b * n * d, 5).reshape([b, n, d]);
            let loss = (s.clone() * w1).sum() + (z.clone() * w2).sum() + y.clone().sum() * 0.3;
            let grads = loss.backward();
            let mut out = vec![y.inner().into_data(), z.inner().into_data(), s.inner().into_data()];
            out.push(x.grad(&grads).unwrap().into_data());
            out.push(h.grad(&grads).unwrap().into_data());
            if train_mod {
                out.push(m.grad(&grads).unwrap().into_data());
            } else {
                assert!(m.grad(&grads).is_none());
            }
            out
        };
        for train_mod in [true, false] {
            let (ours, burns) = (run(true, train_mod), run(false, train_mod));
            assert_eq!(ours.len(), burns.len());
            for (a, b) in ours.iter().zip(&burns) {
                a.assert_approx_eq::<f32>(b, burn::tensor::Tolerance::rel_abs(1e-5, 1e-5));
            }
        }
    }
}
