//! The networks of a LeDiFlow pipeline. Each module holds one network; shared building
//! blocks (time embedding, parameter-free layer norm, 2-D linear) live here.

pub mod aux;
pub mod cpu;
pub(crate) mod cpu_autodiff;
pub mod dit;
pub mod latent_flow;

use burn::nn::Linear;
use burn::prelude::*;

pub use aux::{AuxDecoder, AuxEncoder};
pub use dit::VelocityNet;
pub use latent_flow::LatentFlowNet;

/// Applies a linear layer to a [batch, tokens, features] tensor as one 2-D matmul.
/// burn runs a 3-D input as many small batched matmuls; flattening first is about 2x faster.
pub(crate) fn linear_tokens<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, n, d] = x.dims();
    let y = layer.forward(x.reshape([b * n, d]));
    let out = y.dims()[1];
    y.reshape([b, n, out])
}

/// Layer norm over the last dimension without learned affine parameters (adaLN supplies them).
pub(crate) fn layer_norm<B: Backend, const D: usize>(x: Tensor<B, D>, eps: f64) -> Tensor<B, D> {
    let (var, mean) = x.clone().var_mean_bias(D - 1);
    (x - mean) / (var + eps).sqrt()
}

/// Sinusoidal embedding of flow time t in [0, 1] (scaled by 1000 as in DiT), [batch] -> [batch, dim].
pub(crate) fn time_embedding<B: Backend>(t: Tensor<B, 1>, dim: usize) -> Tensor<B, 2> {
    let half = dim / 2;
    let device = t.device();
    let freqs: Vec<f32> = (0..half).map(|i| (-(10_000f32.ln()) * i as f32 / half as f32).exp()).collect();
    let freqs = Tensor::<B, 1>::from_floats(freqs.as_slice(), &device).reshape([1, half]);
    let n = t.dims()[0];
    let args = (t * 1000.0).reshape([n, 1]) * freqs;
    Tensor::cat(vec![args.clone().cos(), args.sin()], 1)
}

/// erf(x) for f32 as a rational function of x (the minimax approximation Eigen and XLA use):
/// only multiplies, adds, one division and a clamp, so the compiler vectorises a loop of it
/// (plain `*` and `+`: without the `fma` target feature `mul_add` calls libm's `fmaf`).
/// Agrees with a correctly rounded erf to about 1e-7 (tested against libm below).
#[inline(always)]
pub(crate) fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_600_1e-3;
    p = x2 * p + -1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_473_9e-2;
    x * p / q
}

/// GELU (exact, erf form). On the CPU backends the erf runs as a vectorised loop over the
/// tensor's memory: burn's element-wise erf calls scalar libm erff, which was a quarter of the
/// velocity network's forward time, and 11% of a training step (`cpu::autodiff` for
/// training). Other backends (CUDA) use burn's own GELU.
pub(crate) fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let x = match on_cpu_train(x, |x| cpu_autodiff::gelu(x).unwrap_or_else(burn::tensor::activation::gelu)) {
        Ok(y) => return y,
        Err(x) => x,
    };
    if std::any::TypeId::of::<B>() != std::any::TypeId::of::<crate::CpuBackend>() {
        return burn::tensor::activation::gelu(x);
    }
    let device = x.device();
    let mut data = x.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(v) => {
            cpu::gelu_in_place(v);
            Tensor::from_data(data, &device)
        }
        Err(_) => burn::tensor::activation::gelu(Tensor::from_data(data, &device)),
    }
}

/// A class-conditional network's class vectors: one learned row per class and a last one for
/// "no class" (the unconditional branch), added to the network's time conditioning. Zero at
/// first, so a conditional network initialised from an unconditional one computes what it did.
#[derive(Module, Debug)]
pub struct ClassTable<B: Backend> {
    pub(crate) weight: burn::module::Param<Tensor<B, 2>>,
}

impl<B: Backend> ClassTable<B> {
    pub fn new(classes: usize, width: usize, device: &B::Device) -> Self {
        Self { weight: burn::module::Param::from_tensor(Tensor::zeros([classes + 1, width], device)) }
    }

    /// The number of classes (the "no class" row not counted).
    pub fn classes(&self) -> usize {
        self.weight.dims()[0] - 1
    }

    /// The rows of `n` images' classes ([n] class ids; None: all "no class"), [n, width].
    pub fn rows(&self, y: Option<Tensor<B, 1, Int>>, n: usize, device: &B::Device) -> Tensor<B, 2> {
        let none = self.classes() as i64;
        let y = y.unwrap_or_else(|| Tensor::<B, 1, Int>::full([n], none, device));
        self.weight.val().select(0, y)
    }
}

/// The time conditioning `pre` ([n, width], before its SiLU) plus the class rows of `y`, for a
/// network with a class table; `pre` unchanged otherwise.
pub(crate) fn with_classes<B: Backend>(
    table: &Option<ClassTable<B>>,
    pre: Tensor<B, 2>,
    y: Option<Tensor<B, 1, Int>>,
) -> Tensor<B, 2> {
    match table {
        Some(t) => {
            let (n, device) = (pre.dims()[0], pre.device());
            pre + t.rows(y, n, &device)
        }
        None => pre,
    }
}

/// SiLU; on the CPU training backend a vectorised op (`cpu_autodiff::silu`), elsewhere burn's.
pub(crate) fn silu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    use burn::tensor::activation::silu;
    on_cpu_train(x, |x| cpu_autodiff::silu(x).unwrap_or_else(silu)).unwrap_or_else(silu)
}

/// `x.permute(axes)`, made contiguous at once by a fast copy on the CPU training backend
/// (`cpu_autodiff::permute`); elsewhere burn's permuted view.
pub(crate) fn permute<B: Backend, const D: usize>(x: Tensor<B, D>, axes: [usize; D]) -> Tensor<B, D> {
    on_cpu_train(x, |x| cpu_autodiff::permute(x, axes).unwrap_or_else(|x| x.permute(axes)))
        .unwrap_or_else(|x| x.permute(axes))
}

/// `c.forward(x)`; on the CPU training backend through `cpu_autodiff::conv2d` (im2col and
/// matrix products in both passes, see `cpu::conv`) when the layer is one it covers.
pub(crate) fn conv2d<B: Backend>(c: &burn::nn::conv::Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    use burn::nn::PaddingConfig2d;
    let Some(t) = (c as &dyn std::any::Any).downcast_ref::<burn::nn::conv::Conv2d<crate::CpuTrainBackend>>() else {
        return c.forward(x);
    };
    let (Some(bias), PaddingConfig2d::Explicit(p, p1, p2, p3)) = (&t.bias, &t.padding) else {
        return c.forward(x);
    };
    let [s, s1] = t.stride;
    if [*p1, *p2, *p3] != [*p; 3] || s1 != s || t.dilation != [1, 1] || t.groups != 1 {
        return c.forward(x);
    }
    on_cpu_train(x, |x| cpu_autodiff::conv2d(&x, &t.weight.val(), &bias.val(), s, *p).unwrap_or_else(|| t.forward(x)))
        .unwrap_or_else(|x| c.forward(x))
}

/// `c.forward(x)`; on the CPU training backend through `cpu_autodiff::conv_transpose2d` when
/// the layer is one it covers.
pub(crate) fn conv_transpose2d<B: Backend>(c: &burn::nn::conv::ConvTranspose2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let Some(t) = (c as &dyn std::any::Any).downcast_ref::<burn::nn::conv::ConvTranspose2d<crate::CpuTrainBackend>>()
    else {
        return c.forward(x);
    };
    let ([s, s1], [p, p1]) = (t.stride, t.padding);
    let Some(bias) = &t.bias else { return c.forward(x) };
    if s1 != s || p1 != p || t.padding_out != [0, 0] || t.dilation != [1, 1] || t.groups != 1 {
        return c.forward(x);
    }
    on_cpu_train(x, |x| {
        cpu_autodiff::conv_transpose2d(&x, &t.weight.val(), &bias.val(), s, p).unwrap_or_else(|| t.forward(x))
    })
    .unwrap_or_else(|x| c.forward(x))
}

/// x [N, C, H, W] padded circularly by `p` on both spatial axes ([N, C, H + 2p, W + 2p]):
/// row -1 is row H-1, column W is column 0, as on a torus.
pub(crate) fn pad_circular<B: Backend>(x: Tensor<B, 4>, p: usize) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    if p == 0 {
        return x;
    }
    let top = x.clone().slice([0..n, 0..c, h - p..h, 0..w]);
    let bottom = x.clone().slice([0..n, 0..c, 0..p, 0..w]);
    let rows = Tensor::cat(vec![top, x, bottom], 2);
    let h = h + 2 * p;
    let left = rows.clone().slice([0..n, 0..c, 0..h, w - p..w]);
    let right = rows.clone().slice([0..n, 0..c, 0..h, 0..p]);
    Tensor::cat(vec![left, rows, right], 3)
}

/// [`conv2d`], or with `wrap` the same layer with circular padding in place of its zero padding
/// (symmetric explicit padding only, as every convolution of these networks has).
pub(crate) fn conv2d_wrap<B: Backend>(c: &burn::nn::conv::Conv2d<B>, x: Tensor<B, 4>, wrap: bool) -> Tensor<B, 4> {
    use burn::nn::PaddingConfig2d;
    use burn::tensor::ops::ConvOptions;
    let PaddingConfig2d::Explicit(p, p1, p2, p3) = c.padding else {
        return conv2d(c, x);
    };
    if !wrap || [p1, p2, p3] != [p; 3] {
        return conv2d(c, x);
    }
    let options = ConvOptions::new(c.stride, [0, 0], c.dilation, c.groups);
    burn::tensor::module::conv2d(pad_circular(x, p), c.weight.val(), c.bias.as_ref().map(|b| b.val()), options)
}

/// [`conv_transpose2d`], or with `wrap` the same layer with its output taps that fall beyond one
/// edge added onto the opposite edge (the transpose of a circularly padded convolution).
pub(crate) fn conv_transpose2d_wrap<B: Backend>(
    c: &burn::nn::conv::ConvTranspose2d<B>,
    x: Tensor<B, 4>,
    wrap: bool,
) -> Tensor<B, 4> {
    use burn::tensor::ops::ConvTransposeOptions;
    let [p, p1] = c.padding;
    if !wrap || p1 != p || c.padding_out != [0, 0] {
        return conv_transpose2d(c, x);
    }
    let options = ConvTransposeOptions::new(c.stride, [0, 0], [0, 0], c.dilation, c.groups);
    // The unpadded output is the padded one with p extra rows and columns on each side.
    let full = burn::tensor::module::conv_transpose2d(x, c.weight.val(), None, options);
    let fold = |t: Tensor<B, 4>, dim: usize| -> Tensor<B, 4> {
        let len = t.dims()[dim] - 2 * p;
        let mut inner = t.clone().narrow(dim, p, len);
        if p > 0 {
            // Leading extras belong at the far end, trailing ones at the start.
            let lead = t.clone().narrow(dim, 0, p);
            let trail = t.narrow(dim, p + len, p);
            let end = inner.clone().narrow(dim, len - p, p) + lead;
            let start = inner.clone().narrow(dim, 0, p) + trail;
            inner = Tensor::cat(vec![start, inner.clone().narrow(dim, p, len - 2 * p), end], dim);
        }
        inner
    };
    let out = fold(fold(full, 2), 3);
    match &c.bias {
        Some(b) => {
            let cout = b.dims()[0];
            out + b.val().reshape([1, cout, 1, 1])
        }
        None => out,
    }
}

/// `Ok(f(x))` when `B` is the CPU training backend (`f` is written for that concrete type),
/// `Err(x)` unchanged otherwise.
fn on_cpu_train<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    f: impl FnOnce(Tensor<crate::CpuTrainBackend, D>) -> Tensor<crate::CpuTrainBackend, D>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    match as_cpu_train(&x) {
        Some(x) => Ok(from_cpu_train(f(x))),
        None => Err(x),
    }
}

/// A handle on `x` as a CPU-training-backend tensor when `B` is that backend, else `None`.
pub(crate) fn as_cpu_train<B: Backend, const D: usize>(x: &Tensor<B, D>) -> Option<Tensor<crate::CpuTrainBackend, D>> {
    let x: &dyn std::any::Any = x;
    x.downcast_ref::<Tensor<crate::CpuTrainBackend, D>>().cloned()
}

/// The inverse of [`as_cpu_train`]: only called where `B` is the CPU training backend.
pub(crate) fn from_cpu_train<B: Backend, const D: usize>(y: Tensor<crate::CpuTrainBackend, D>) -> Tensor<B, D> {
    let y: Box<dyn std::any::Any> = Box::new(y);
    *y.downcast::<Tensor<B, D>>().expect("B is CpuTrainBackend")
}

/// Softmax over the last dimension; on the CPU training backend one vectorised op each way
/// (`cpu_autodiff::softmax_last`), elsewhere burn's.
pub(crate) fn softmax_last<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    use burn::tensor::activation::softmax;
    on_cpu_train(x, |x| cpu_autodiff::softmax_last(x).unwrap_or_else(|x| softmax(x, D - 1)))
        .unwrap_or_else(|x| softmax(x, D - 1))
}

/// Width of the sinusoidal time features fed to the time MLPs.
pub(crate) const TIME_FREQ_DIM: usize = 256;

use crate::config::{ModelConfig, PriorKind};

/// Every network of one pipeline. A Gaussian-prior (baseline) pipeline has only `velocity`.
#[derive(Module, Debug)]
pub struct Networks<B: Backend> {
    pub encoder: Option<AuxEncoder<B>>,
    pub decoder: Option<AuxDecoder<B>>,
    pub latent: Option<LatentFlowNet<B>>,
    pub velocity: VelocityNet<B>,
}

impl<B: Backend> Networks<B> {
    /// Gives networks without class tables the zero tables `cfg` asks for (an unconditional
    /// model's networks starting a class-conditional run: they compute what they did).
    pub fn add_class_tables(&mut self, cfg: &ModelConfig, device: &B::Device) {
        if let Some(l) = self.latent.as_mut()
            && l.class_table.is_none()
            && cfg.latent_classes() > 0
        {
            l.class_table = Some(ClassTable::new(cfg.latent_classes(), cfg.latent.hidden, device));
        }
        if self.velocity.class_table.is_none() && cfg.image_classes() > 0 {
            self.velocity.class_table = Some(ClassTable::new(cfg.image_classes(), cfg.dit.dim, device));
        }
    }

    /// Freshly initialised networks for `cfg` (parameters initialise lazily on first use).
    pub fn new(cfg: &ModelConfig, device: &B::Device) -> Self {
        let learned = cfg.prior == PriorKind::Learned;
        Self {
            encoder: learned.then(|| AuxEncoder::new(cfg, device)),
            decoder: learned.then(|| AuxDecoder::new(cfg, device)),
            latent: learned.then(|| LatentFlowNet::new(cfg, device)),
            velocity: VelocityNet::new(cfg, device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;

    #[test]
    fn fast_erf_matches_libm() {
        let mut worst = 0f64;
        for i in -600_000..=600_000 {
            let x = i as f32 * 1e-5;
            let exact = libm_erf(x as f64);
            worst = worst.max((erf_f32(x) as f64 - exact).abs());
        }
        assert!(worst < 5e-7, "max |erf error| {worst}");
        // Saturates at the clamp: erf(4) = 1 - 1.5e-8.
        assert!((erf_f32(f32::INFINITY) - 1.0).abs() < 2e-7);
        assert!((erf_f32(f32::NEG_INFINITY) + 1.0).abs() < 2e-7);
        assert!(erf_f32(f32::NAN).is_nan());
    }

    /// erf in f64 from its Taylor series (|x| < 3) or the continued fraction of erfc: an
    /// independent reference for the test, accurate far beyond f32.
    fn libm_erf(x: f64) -> f64 {
        let a = x.abs();
        let r = if a < 3.0 {
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(a) = exp(-a^2)/sqrt(pi) * 1/(a + 1/2/(a + 1/(a + 3/2/(a + 2/(a + ...)))))
            let mut f = a;
            for k in (1..60).rev() {
                f = a + (k as f64 / 2.0) / f;
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
        };
        r.copysign(x)
    }

    #[test]
    fn cpu_gelu_matches_burn_gelu() {
        let device = Default::default();
        let v: Vec<f32> = (-4000..4000).map(|i| i as f32 * 2.5e-3).collect();
        let x = Tensor::<CpuBackend, 1>::from_floats(v.as_slice(), &device).reshape([4, 2000]);
        let ours = gelu(x.clone()).into_data();
        let theirs = burn::tensor::activation::gelu(x.clone()).into_data();
        ours.assert_approx_eq::<f32>(&theirs, burn::tensor::Tolerance::absolute(1e-6));
        // The training backend's dispatch (value here; the op's gradient is tested in cpu::autodiff).
        let ours = gelu(Tensor::<crate::CpuTrainBackend, 2>::from_inner(x)).inner().into_data();
        ours.assert_approx_eq::<f32>(&theirs, burn::tensor::Tolerance::rel_abs(1e-6, 1e-6));
    }
}
