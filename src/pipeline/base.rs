//! [`Pipeline`]: a loaded model's networks on one burn backend, and the steps every generation
//! call shares (checks, encoder, prior decoder, the image-flow solve).

use std::path::Path;

use burn::prelude::*;
use burn::tensor::TensorData;

use super::fields::{ImageField, LatentField, velocity_at};
use super::options::{CpuSupport, Kernels, ModelInfo, Precision, SampleOptions, check_count};
use crate::checkpoint::{self, ModelMeta};
use crate::config::{ModelConfig, PriorKind};
use crate::error::{Error, Result, invalid};
use crate::model::cpu::decoder::CpuDecoder;
use crate::model::cpu::dit::CpuDit;
use crate::model::cpu::encoder::CpuEncoder;
use crate::model::cpu::latent::CpuLatentFlow;
use crate::model::{AuxDecoder, LatentFlowNet, Networks};

/// A loaded LeDiFlow (or Gaussian-baseline) pipeline on backend `B`: tensors in, tensors out.
/// [`crate::Model`] wraps it for 8-bit buffers, batching, limits and the choice of device.
#[derive(Debug)]
pub struct Pipeline<B: Backend> {
    pub(super) nets: Networks<B>,
    pub(super) meta: ModelMeta,
    pub(super) device: B::Device,
    /// The weights of the velocity network, the decoder, the encoder and the latent flow for
    /// the fused CPU passes (`model::cpu`; CPU backend only).
    pub(super) fast: Option<CpuDit>,
    fast_decoder: Option<CpuDecoder>,
    fast_encoder: Option<CpuEncoder>,
    pub(super) fast_latent: Option<CpuLatentFlow>,
}

/// Whether `B` is the CPU backend the fused passes are built for.
pub(super) fn is_cpu<B: Backend>() -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<crate::CpuBackend>()
}

pub(super) fn all_threads() -> usize {
    rayon::current_num_threads().max(1)
}

pub(super) fn floats<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    t.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| Error::Internal(format!("reading a tensor: {e:?}")))
}

impl<B: Backend> Pipeline<B> {
    pub fn new(nets: Networks<B>, meta: ModelMeta, device: B::Device) -> Self {
        let cpu = is_cpu::<B>();
        let fast = cpu.then(|| CpuDit::from_net(&nets.velocity));
        let fast_decoder = nets.decoder.as_ref().filter(|_| cpu).map(CpuDecoder::from_net);
        let fast_encoder = nets.encoder.as_ref().filter(|_| cpu).map(CpuEncoder::from_net);
        let fast_latent = nets.latent.as_ref().filter(|_| cpu).map(CpuLatentFlow::from_net);
        Self { nets, meta, device, fast, fast_decoder, fast_encoder, fast_latent }
    }

    pub fn load(path: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let (nets, meta) = checkpoint::load(path.as_ref(), device)?;
        Ok(Self::new(nets, meta, device.clone()))
    }

    pub fn from_bytes(bytes: &[u8], device: &B::Device) -> Result<Self> {
        let (nets, meta) = checkpoint::from_bytes(bytes, device)?;
        Ok(Self::new(nets, meta, device.clone()))
    }

    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        checkpoint::save(path.as_ref(), &self.nets, &self.meta)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.meta.config
    }

    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// The solver-grid shift a call with `opts` uses: its own, else the model file's
    /// recommendation, else 1 (equal steps).
    pub fn time_shift(&self, opts: &SampleOptions) -> f32 {
        opts.time_shift.or(self.meta.sampling.time_shift).unwrap_or(1.0)
    }

    /// Sets the sampling settings recommended in this model's metadata (written with it by
    /// [`crate::checkpoint::save`]); validated like a loaded file's.
    pub fn set_sampling_defaults(&mut self, sampling: crate::checkpoint::SamplingDefaults) -> Result<()> {
        sampling.validate().map_err(|e| match e {
            Error::Format(m) => Error::InvalidArgument(m),
            e => e,
        })?;
        self.meta.sampling = sampling;
        Ok(())
    }

    pub fn networks(&self) -> &Networks<B> {
        &self.nets
    }

    /// One evaluation of the image velocity network: x [N, C, H, W], t [N] -> [N, C, H, W].
    /// On the CPU backend this is the fused forward pass sampling uses, spread over rayon's
    /// threads; elsewhere burn's forward.
    pub fn velocity(&self, x: Tensor<B, 4>, t: Tensor<B, 1>) -> Result<Tensor<B, 4>> {
        self.velocity_with(x, t, Precision::Fp32)
    }

    /// [`Self::velocity`] with the matrix products in `precision`.
    pub fn velocity_with(&self, x: Tensor<B, 4>, t: Tensor<B, 1>, precision: Precision) -> Result<Tensor<B, 4>> {
        let kernels = precision.kernels(is_cpu::<B>())?;
        self.check_images(&x)?;
        if t.dims()[0] != x.dims()[0] {
            return invalid(format!("t has {} entries for {} images", t.dims()[0], x.dims()[0]));
        }
        Ok(velocity_at(
            &self.nets.velocity,
            self.fast.as_ref().map(|f| (f, kernels)),
            self.config().dit.prediction,
            all_threads(),
            false,
            super::options::Condition { class: None, guidance: 1.0 },
            x,
            t,
        ))
    }

    pub fn device(&self) -> &B::Device {
        &self.device
    }

    pub fn info(&self) -> ModelInfo {
        let c = &self.meta.config;
        let cpu = CpuSupport::detect();
        ModelInfo {
            channels: c.image.channels,
            width: c.image.size,
            height: c.image.size,
            latent_dim: if c.prior == PriorKind::Learned { c.aux.latent_dim } else { 0 },
            prior: c.prior,
            format_version: self.meta.format_version,
            parameters: self.nets.num_params(),
            time_shift: self.time_shift(&SampleOptions::default()),
            cpu,
            auto_precision: Precision::auto_runs(is_cpu::<B>(), cpu),
        }
    }

    /// The kernels the fused CPU passes use for a call with `opts` (fp32 on other backends).
    pub(super) fn kernels(&self, opts: &SampleOptions) -> Result<Kernels> {
        opts.precision.kernels(is_cpu::<B>())
    }

    pub(super) fn learned(&self, what: &str) -> Result<(&AuxDecoder<B>, &LatentFlowNet<B>)> {
        match (&self.nets.decoder, &self.nets.latent) {
            (Some(d), Some(l)) => Ok((d, l)),
            _ => Err(Error::Unsupported(format!("{what} needs a learned-prior model; this one has a Gaussian prior"))),
        }
    }

    pub(super) fn check_images(&self, images: &Tensor<B, 4>) -> Result<()> {
        let [n, c, h, w] = images.dims();
        let s = self.meta.config.image;
        if c != s.channels || h != s.size || w != s.size {
            return invalid(format!("images are {c}x{h}x{w}, the model needs {}x{}x{}", s.channels, s.size, s.size));
        }
        check_count(n, "count")
    }

    pub(super) fn check_latents(&self, z: &Tensor<B, 2>) -> Result<()> {
        let [n, d] = z.dims();
        let want = self.meta.config.aux.latent_dim;
        if d != want {
            return invalid(format!("latents have dimension {d}, the model needs {want}"));
        }
        check_count(n, "count")?;
        let finite: bool = z.clone().is_finite().all().into_scalar().to_bool();
        if !finite {
            return invalid("latents contain NaN or infinity");
        }
        Ok(())
    }

    pub(super) fn image_shape(&self, n: usize) -> [usize; 4] {
        let s = self.meta.config.image;
        [n, s.channels, s.size, s.size]
    }

    /// Carries latent noise w through theta_L from t=0 to 1.
    pub(super) fn latents_from_noise(
        &self,
        latent: &LatentFlowNet<B>,
        w: Tensor<B, 2>,
        opts: &SampleOptions,
    ) -> Result<Tensor<B, 2>> {
        let field = LatentField(latent, self.fast_latent.as_ref(), opts.condition(self.config().latent_classes()));
        let sol = opts.latent_solver.solve(&field, w, opts.latent_steps, &mut |_, _, _, z| Ok(z))?;
        Ok(sol.x)
    }

    /// The learned prior N(mu_P(z), exp(logvar_P(z))) for latents z: (mu_P, logvar_P).
    pub fn decode_prior(&self, z: Tensor<B, 2>) -> Result<(Tensor<B, 4>, Tensor<B, 4>)> {
        self.decode_prior_with(z, Precision::Fp32)
    }

    /// [`Self::decode_prior`] with the decoder's convolutions in `precision`.
    pub fn decode_prior_with(&self, z: Tensor<B, 2>, precision: Precision) -> Result<(Tensor<B, 4>, Tensor<B, 4>)> {
        let kernels = precision.kernels(is_cpu::<B>())?;
        self.learned("decode_prior")?;
        self.check_latents(&z)?;
        self.decode(z, false, kernels)
    }

    /// The decoder's forward pass: the fused CPU pass (with `kernels`) when the pipeline has one.
    /// `wrap`: circular padding (tileable sampling).
    pub(super) fn decode(&self, z: Tensor<B, 2>, wrap: bool, kernels: Kernels) -> Result<(Tensor<B, 4>, Tensor<B, 4>)> {
        let (decoder, _) = self.learned("decode_prior")?;
        let Some(fast) = &self.fast_decoder else {
            return Ok(decoder.forward_wrap(z, wrap));
        };
        let (mu, logvar) = fast.forward_with(kernels, &floats(z)?, wrap);
        let shape = self.image_shape(mu.len() / self.image_shape(1).iter().product::<usize>());
        Ok((
            Tensor::from_data(TensorData::new(mu, shape), &self.device),
            Tensor::from_data(TensorData::new(logvar, shape), &self.device),
        ))
    }

    /// Encodes images to latents (the posterior mean mu_E).
    pub fn encode(&self, images: Tensor<B, 4>) -> Result<Tensor<B, 2>> {
        self.check_images(&images)?;
        let enc = self.nets.encoder.as_ref().ok_or_else(|| {
            Error::Unsupported("encode needs a learned-prior model; this one has a Gaussian prior".into())
        })?;
        let Some(fast) = &self.fast_encoder else {
            return Ok(enc.forward(images).0);
        };
        let n = images.dims()[0];
        let (mu, _) = fast.forward(&floats(images)?);
        Ok(Tensor::from_data(TensorData::new(mu, [n, self.meta.config.aux.latent_dim]), &self.device))
    }

    /// Prior draw x0 = mu_P + s sigma_P eps for latents z with the given standard-normal eps
    /// (s = `opts.prior_scale`; a tileable call decodes the prior with circular padding).
    pub(super) fn prior_draw(
        &self,
        z: Tensor<B, 2>,
        eps: Tensor<B, 4>,
        opts: &SampleOptions,
    ) -> Result<(Tensor<B, 4>, Tensor<B, 4>)> {
        self.learned("decode_prior")?;
        self.check_latents(&z)?;
        let (mu, logvar) = self.decode(z, opts.tileable, self.kernels(opts)?)?;
        let x0 = mu.clone() + (logvar * 0.5).exp() * eps * opts.prior_scale;
        Ok((x0, mu))
    }

    /// Integrates the image flow from x0, reporting progress and honouring cancellation.
    pub(super) fn solve_images(
        &self,
        x0: Tensor<B, 4>,
        opts: &SampleOptions,
        threads: usize,
        project: impl FnMut(f32, Tensor<B, 4>) -> Tensor<B, 4>,
    ) -> Result<Tensor<B, 4>> {
        self.solve_images_from(x0, 0.0, opts, threads, project)
    }

    /// [`Self::solve_images`] from the state `x` at time `start` (variations start part-way).
    pub(super) fn solve_images_from(
        &self,
        x: Tensor<B, 4>,
        start: f32,
        opts: &SampleOptions,
        threads: usize,
        mut project: impl FnMut(f32, Tensor<B, 4>) -> Tensor<B, 4>,
    ) -> Result<Tensor<B, 4>> {
        if opts.cancelled() {
            return Err(Error::Cancelled);
        }
        let progress = opts.progress.clone();
        let mut hook = |step: usize, total: usize, t: f32, x: Tensor<B, 4>| {
            let x = project(t, x);
            if opts.cancelled() || progress.as_ref().is_some_and(|p| !p(step, total)) {
                return Err(Error::Cancelled);
            }
            Ok(x)
        };
        let kernels = self.kernels(opts)?;
        let field = ImageField {
            net: &self.nets.velocity,
            fast: self.fast.as_ref().map(|f| (f, kernels)),
            prediction: self.config().dit.prediction,
            threads,
            wrap: opts.tileable.then_some(opts.seed),
            condition: if opts.class_in_image_flow || self.config().prior == PriorKind::Gaussian {
                opts.condition(self.config().image_classes())
            } else {
                opts.condition(0)
            },
        };
        let sol = opts.solver.solve_from(&field, x, start, opts.steps, self.time_shift(opts), &mut hook)?;
        Ok(sol.x.clamp(-1.0, 1.0))
    }
}
