//! Training of the three LeDiFlow stages and the Gaussian-prior baseline (METHOD.md).
//!
//! Order: the auxiliary model first; then, with it frozen, the latent flow model and the image
//! FM model (independent of each other). The baseline trains only the image FM model from
//! x0 ~ N(0, I) with the same network and budget. Every random draw comes from a stage-owned
//! [`Rng`], so a run is reproducible from its seed.

pub mod optim;
pub mod run;

use std::collections::HashMap;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, TensorData};
use serde::{Deserialize, Serialize};

pub use optim::{OptimConfig, SeededInit, Trainable};

use crate::config::ModelConfig;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::flow::{output_to_velocity, path_point};
use crate::loss::{PriorLoss, aux_loss, fm_loss};
use crate::model::cpu::decoder::CpuDecoder;
use crate::model::cpu::encoder::CpuEncoder;
use crate::model::{AuxDecoder, AuxEncoder, LatentFlowNet, VelocityNet};
use crate::rng::Rng;

/// Which latent the latent flow model learns to produce.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatentTarget {
    /// The posterior mean mu_E(y) (default: a sharper target).
    Mean,
    /// A posterior sample mu_E + sigma_E * eps.
    Sample,
}

/// How flow time t is drawn during FM training.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TimeSampling {
    Uniform,
    /// t = sigmoid(m + s * n), n ~ N(0, 1) (SD3's logit-normal).
    LogitNormal {
        mean: f32,
        std: f32,
    },
}

impl TimeSampling {
    fn draw(self, rng: &mut Rng, n: usize) -> Vec<f32> {
        match self {
            TimeSampling::Uniform => (0..n).map(|_| rng.uniform() as f32).collect(),
            TimeSampling::LogitNormal { mean, std } => {
                rng.normal_vec(n).into_iter().map(|e| 1.0 / (1.0 + (-(mean + std * e)).exp())).collect()
            }
        }
    }
}

/// Training hyperparameters (everything but the network shapes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub batch_size: usize,
    pub prior_loss: PriorLoss,
    pub beta_kl: f32,
    /// s used to draw x0 from the learned prior while training the image model.
    pub prior_noise_scale: f32,
    pub latent_target: LatentTarget,
    pub time_sampling: TimeSampling,
    pub aux: OptimConfig,
    pub latent: OptimConfig,
    pub fm: OptimConfig,
    pub seed: u64,
    /// Latents per latent-flow step. The frozen encoder's posterior of every training image
    /// (and of its mirror when training flips) is computed once when the stage starts; a step
    /// draws this many of those latents and costs only the latent flow's MLP. 0: every step
    /// encodes a batch of `batch_size` images instead (what runs did before this setting).
    #[serde(default)]
    pub latent_batch: usize,
    /// Share of a class-conditional model's training images whose class is replaced by "no
    /// class", so the networks also learn the unconditional flow that guidance needs.
    #[serde(default = "default_class_dropout")]
    pub class_dropout: f32,
}

fn default_class_dropout() -> f32 {
    0.1
}

/// The class ids a conditioned network trains on for one batch: each image's label, replaced by
/// the "no class" id (`classes`) with probability `dropout`. None when the network has no
/// classes or the batch has no labels (the rng is then left untouched, so unconditional runs
/// draw exactly what they always did).
fn class_ids<B: Backend>(
    rng: &mut Rng,
    labels: Option<&[u32]>,
    classes: usize,
    dropout: f32,
    device: &B::Device,
) -> Option<Tensor<B, 1, Int>> {
    let labels = labels.filter(|_| classes > 0)?;
    let ids: Vec<i64> = labels
        .iter()
        .map(|&l| if rng.uniform() < f64::from(dropout) || l as usize >= classes { classes as i64 } else { l as i64 })
        .collect();
    Some(Tensor::from_data(TensorData::new(ids, [labels.len()]), device))
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            prior_loss: PriorLoss::Vgl,
            beta_kl: 0.05,
            prior_noise_scale: 1.0,
            latent_target: LatentTarget::Mean,
            time_sampling: TimeSampling::Uniform,
            aux: OptimConfig { lr: 1e-3, ..OptimConfig::default() },
            // Batches of 256 stored latents with weight decay 1: on the DCSS tiles it keeps
            // improving on held-out latents for 30000 steps, where smaller batches or no decay
            // memorise the training latents (docs/TRAINING.md).
            latent: OptimConfig { lr: 1e-3, weight_decay: 1.0, ..OptimConfig::default() },
            fm: OptimConfig::default(),
            seed: 0,
            latent_batch: 256,
            class_dropout: default_class_dropout(),
        }
    }
}

impl TrainConfig {
    /// The optimiser settings of `stage`.
    pub fn optim(&self, stage: run::Stage) -> &OptimConfig {
        match stage {
            run::Stage::Aux => &self.aux,
            run::Stage::Latent => &self.latent,
            run::Stage::Fm => &self.fm,
        }
    }

    pub fn optim_mut(&mut self, stage: run::Stage) -> &mut OptimConfig {
        match stage {
            run::Stage::Aux => &mut self.aux,
            run::Stage::Latent => &mut self.latent,
            run::Stage::Fm => &mut self.fm,
        }
    }
}

/// The auxiliary model trained as one unit.
#[derive(Module, Debug)]
pub struct AuxModel<B: Backend> {
    pub encoder: AuxEncoder<B>,
    pub decoder: AuxDecoder<B>,
}

fn normal<B: Backend, const D: usize>(rng: &mut Rng, shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(rng.normal_vec(n), shape), device)
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f32 {
    t.into_scalar().elem()
}

/// Losses of one auxiliary step.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct AuxLosses {
    pub total: f32,
    pub mse: f32,
    pub kl: f32,
}

/// Stage 1: auxiliary encoder/decoder with VGL (or beta-NLL) + KL.
pub struct AuxStage<B: AutodiffBackend> {
    pub net: Trainable<B, AuxModel<B>>,
    pub rng: Rng,
    pub prior_loss: PriorLoss,
    pub beta_kl: f32,
}

impl<B: AutodiffBackend> AuxStage<B> {
    pub fn new(cfg: &ModelConfig, train: &TrainConfig, device: &B::Device) -> Self {
        let model = AuxModel { encoder: AuxEncoder::new(cfg, device), decoder: AuxDecoder::new(cfg, device) };
        let model = SeededInit::apply(model, train.seed ^ 0xA0);
        Self {
            net: Trainable::new(model, train.aux.clone()),
            rng: Rng::stream(train.seed, 1, crate::rng::Purpose::Training),
            prior_loss: train.prior_loss,
            beta_kl: train.beta_kl,
        }
    }

    pub fn step(&mut self, y: Tensor<B, 4>) -> AuxLosses {
        let m = self.net.model();
        let (mu_e, logvar_e) = m.encoder.forward(y.clone());
        let eps = normal::<B, 2>(&mut self.rng, mu_e.dims(), &y.device());
        let z = mu_e.clone() + (logvar_e.clone() * 0.5).exp() * eps;
        let (mu_p, logvar_p) = m.decoder.forward(z);
        let parts = aux_loss(y, mu_p, logvar_p, mu_e, logvar_e, self.prior_loss, self.beta_kl);
        let out = AuxLosses { total: scalar(parts.total.clone()), mse: scalar(parts.mse), kl: scalar(parts.kl) };
        self.net.apply(parts.total);
        out
    }
}

/// Stage 2: latent flow model, FM from w ~ N(0, I) to z from the frozen encoder.
pub struct LatentStage<B: AutodiffBackend> {
    pub net: Trainable<B, LatentFlowNet<B>>,
    pub encoder: AuxEncoder<B::InnerBackend>,
    pub rng: Rng,
    pub target: LatentTarget,
    pub time_sampling: TimeSampling,
    /// Classes the latent flow is conditioned on (0: none) and the class dropout.
    pub classes: usize,
    pub class_dropout: f32,
}

impl<B: AutodiffBackend> LatentStage<B> {
    pub fn new(
        cfg: &ModelConfig,
        train: &TrainConfig,
        encoder: AuxEncoder<B::InnerBackend>,
        device: &B::Device,
    ) -> Self {
        Self {
            net: Trainable::new(
                SeededInit::apply(LatentFlowNet::new(cfg, device), train.seed ^ 0xB0),
                train.latent.clone(),
            ),
            encoder,
            rng: Rng::stream(train.seed, 2, crate::rng::Purpose::Training),
            target: train.latent_target,
            time_sampling: train.time_sampling,
            classes: cfg.latent_classes(),
            class_dropout: train.class_dropout,
        }
    }

    /// One step on a batch of images, encoded by the frozen encoder.
    pub fn step(&mut self, y: Tensor<B, 4>) -> f32 {
        self.step_labelled(y, None)
    }

    /// [`Self::step`] for images of the classes `labels` (one per image; None: unlabelled).
    pub fn step_labelled(&mut self, y: Tensor<B, 4>, labels: Option<&[u32]>) -> f32 {
        let (mu, logvar) = self.encoder.forward(y.inner());
        self.step_posterior_labelled(mu, logvar, labels)
    }

    /// One step towards the latents of a batch of encoder posteriors (means and log-variances,
    /// [N, latent_dim]): the means, or a draw from each with [`LatentTarget::Sample`].
    pub fn step_posterior(&mut self, mu: Tensor<B::InnerBackend, 2>, logvar: Tensor<B::InnerBackend, 2>) -> f32 {
        self.step_posterior_labelled(mu, logvar, None)
    }

    /// [`Self::step_posterior`] for latents of the classes `labels`.
    pub fn step_posterior_labelled(
        &mut self,
        mu: Tensor<B::InnerBackend, 2>,
        logvar: Tensor<B::InnerBackend, 2>,
        labels: Option<&[u32]>,
    ) -> f32 {
        let [n, d] = mu.dims();
        let z = match self.target {
            LatentTarget::Mean => mu,
            LatentTarget::Sample => {
                let eps = normal::<B::InnerBackend, 2>(&mut self.rng, [n, d], &mu.device());
                mu + (logvar * 0.5).exp() * eps
            }
        };
        self.step_latents_labelled(z, labels)
    }

    /// One FM step of the latent flow towards given target latents [N, latent_dim] (the
    /// encoder's output for a batch; precomputed when the encoder is frozen and the target is
    /// the mean, which makes a step cost only the MLP).
    pub fn step_latents(&mut self, z: Tensor<B::InnerBackend, 2>) -> f32 {
        self.step_latents_labelled(z, None)
    }

    /// [`Self::step_latents`] for latents of the classes `labels`.
    pub fn step_latents_labelled(&mut self, z: Tensor<B::InnerBackend, 2>, labels: Option<&[u32]>) -> f32 {
        let [n, d] = z.dims();
        let device = z.device();
        let z = Tensor::<B, 2>::from_inner(z);
        let w = normal::<B, 2>(&mut self.rng, [n, d], &device);
        let t = Tensor::<B, 1>::from_floats(self.time_sampling.draw(&mut self.rng, n).as_slice(), &device);
        let y = class_ids::<B>(&mut self.rng, labels, self.classes, self.class_dropout, &device);
        let tc = t.clone().reshape([n, 1]);
        let zt = w.clone() + (z.clone() - w.clone()) * tc;
        let loss = fm_loss(self.net.model().forward_class(zt, t, y), z - w);
        let v = scalar(loss.clone());
        self.net.apply(loss);
        v
    }
}

/// The latent flow's flow-matching loss on a fixed set of latents with fixed draws: `draws`
/// noise draws and times per latent, made once from `seed`, so two calls differ only by the
/// weights. On latents the flow never trained on this measures how well it generalises; its
/// training loss keeps falling while it memorises the training latents, this one turns up.
pub struct LatentProbe<B: Backend> {
    zt: Tensor<B, 2>,
    t: Tensor<B, 1>,
    target: Tensor<B, 2>,
}

impl<B: Backend> LatentProbe<B> {
    /// Rows evaluated at once by [`LatentProbe::loss`] (bounds the memory of a large probe).
    const CHUNK: usize = 4096;
    /// Draws per latent of [`LatentProbe::held_out`].
    pub const DRAWS: usize = 16;
    /// Seed of [`LatentProbe::held_out`]'s draws: the same for every run, so that runs compare.
    const SEED: u64 = 0x9E0B;

    /// The probe the training loop scores held-out latents with: [`Self::DRAWS`]
    /// draws per latent from a fixed seed.
    pub fn held_out(z: Tensor<B, 2>, time_sampling: TimeSampling) -> Result<Self> {
        Self::new(z, Self::DRAWS, time_sampling, Self::SEED)
    }

    /// Probes for latents `z` [N, latent_dim]; times drawn as in training (`time_sampling`).
    pub fn new(z: Tensor<B, 2>, draws: usize, time_sampling: TimeSampling, seed: u64) -> Result<Self> {
        let [n, d] = z.dims();
        if n == 0 || draws == 0 {
            return Err(Error::InvalidArgument("a latent probe needs at least one latent and one draw".into()));
        }
        let device = z.device();
        let mut rng = Rng::stream(seed, 7, crate::rng::Purpose::Training);
        let z = z.repeat_dim(0, draws);
        let w = normal::<B, 2>(&mut rng, [n * draws, d], &device);
        let t = Tensor::<B, 1>::from_floats(time_sampling.draw(&mut rng, n * draws).as_slice(), &device);
        let zt = w.clone() + (z.clone() - w.clone()) * t.clone().reshape([n * draws, 1]);
        Ok(Self { zt, t, target: z - w })
    }

    /// Number of (latent, draw) pairs.
    pub fn len(&self) -> usize {
        self.t.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Mean squared velocity error of `net` over all probes (the training loss's estimator).
    pub fn loss(&self, net: &LatentFlowNet<B>) -> f64 {
        let n = self.len();
        let mut sum = 0.0f64;
        for start in (0..n).step_by(Self::CHUNK) {
            let end = (start + Self::CHUNK).min(n);
            let pred = net.forward(self.zt.clone().slice([start..end]), self.t.clone().slice([start..end]));
            let err: f32 = (pred - self.target.clone().slice([start..end])).powi_scalar(2).sum().into_scalar().elem();
            sum += err as f64;
        }
        sum / (n * self.target.dims()[1]) as f64
    }
}

/// The encoder's posterior of every image of `set` (means and log-variances, [N, latent_dim]),
/// in batches of 256 images.
pub fn encode_dataset<B: Backend>(
    encoder: &AuxEncoder<B>,
    set: &Dataset,
    device: &B::Device,
) -> Result<(Tensor<B, 2>, Tensor<B, 2>)> {
    if set.is_empty() {
        return Err(Error::InvalidArgument("no images to encode".into()));
    }
    let (mut mus, mut logvars) = (Vec::new(), Vec::new());
    for start in (0..set.len()).step_by(256) {
        let n = 256.min(set.len() - start);
        let px = &set.pixels[start * set.image_bytes()..(start + n) * set.image_bytes()];
        let x = crate::image::from_u8::<B>(px, n, set.channels, set.size, set.size, device)?;
        let (mu, logvar) = encoder.forward(x);
        mus.push(mu);
        logvars.push(logvar);
    }
    Ok((Tensor::cat(mus, 0), Tensor::cat(logvars, 0)))
}

/// The frozen encoder's posteriors of a whole training set (means and log-variances,
/// [N, latent_dim]): what the latent-flow stage draws its batches from when it steps on stored
/// latents ([`TrainConfig::latent_batch`]).
pub struct LatentPool<B: Backend> {
    mu: Tensor<B, 2>,
    logvar: Tensor<B, 2>,
}

impl<B: Backend> LatentPool<B> {
    pub fn new(mu: Tensor<B, 2>, logvar: Tensor<B, 2>) -> Self {
        Self { mu, logvar }
    }

    /// The posteriors of every image of `set` ([`encode_dataset`]).
    pub fn encode(encoder: &AuxEncoder<B>, set: &Dataset, device: &B::Device) -> Result<Self> {
        let (mu, logvar) = encode_dataset(encoder, set, device)?;
        Ok(Self { mu, logvar })
    }

    pub fn len(&self) -> usize {
        self.mu.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The posteriors at `indices` (a batch for [`LatentStage::step_posterior`]).
    pub fn rows(&self, indices: &[usize]) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<B, 1, Int>::from_ints(idx.as_slice(), &self.mu.device());
        (self.mu.clone().select(0, idx.clone()), self.logvar.clone().select(0, idx))
    }
}

/// Where the image FM model's x0 comes from while training.
pub enum FmPrior<B: Backend> {
    /// LeDiFlow: x0 = mu_P(z) + s * sigma_P(z) * eps with z ~ q(z | y) (frozen aux model).
    Learned { encoder: Box<AuxEncoder<B>>, decoder: Box<AuxDecoder<B>>, noise_scale: f32 },
    /// Baseline: x0 ~ N(0, I).
    Gaussian,
}

/// Stage 3: image velocity network, FM from the prior draw x0 to the image y.
pub struct FmStage<B: AutodiffBackend> {
    pub net: Trainable<B, VelocityNet<B>>,
    pub prior: FmPrior<B::InnerBackend>,
    pub rng: Rng,
    pub time_sampling: TimeSampling,
    /// What the network's output means (the loss is on the velocity either way).
    pub prediction: crate::config::Prediction,
    /// The frozen encoder and decoder as fused CPU passes (`model::cpu`), on the CPU backend:
    /// the prior draw through burn's ops took a sixth of a learned-prior training step.
    fast_prior: Option<(CpuEncoder, CpuDecoder)>,
    /// The fused encoder's (mu_E, logvar_E) of the training images seen so far, by
    /// [`ImageKey`]: the encoder is frozen and its fused pass works image by image, so a
    /// cached output is bitwise what it would compute again (tested), and after the first
    /// epoch a step runs only the decoder of the prior draw.
    encoded: EncoderCache,
    /// Classes the image flow is conditioned on (0: none) and the class dropout.
    pub classes: usize,
    pub class_dropout: f32,
}

/// Which training image a batch row holds: its dataset index and whether it is mirrored.
pub type ImageKey = (usize, bool);

/// The frozen encoder's (mu_E, logvar_E) per training image.
type EncoderCache = HashMap<ImageKey, (Box<[f32]>, Box<[f32]>)>;

/// At most this many cached encoder numbers (256 MB; a data set of millions of images caches
/// its first part and encodes the rest at every step).
const MAX_CACHED_ENCODER_FLOATS: usize = 1 << 26;

/// mu_E and logvar_E of each image of `images` (keyed by `keys`), from `cache` where present,
/// else from the encoder (and then cached while there is room).
fn encode_cached(
    enc: &CpuEncoder,
    cache: &mut EncoderCache,
    images: &[f32],
    keys: &[ImageKey],
) -> (Vec<f32>, Vec<f32>) {
    let per = images.len() / keys.len().max(1);
    let missing: Vec<usize> = (0..keys.len()).filter(|i| !cache.contains_key(&keys[*i])).collect();
    let batch: Vec<f32> = missing.iter().flat_map(|&i| images[i * per..(i + 1) * per].iter().copied()).collect();
    let (fresh_mu, fresh_logvar) = if missing.is_empty() { Default::default() } else { enc.forward(&batch) };
    let d = fresh_mu.len() / missing.len().max(1);
    let (mut mu, mut logvar) = (Vec::with_capacity(keys.len() * d), Vec::with_capacity(keys.len() * d));
    // missing is ascending: j counts the fresh rows used so far.
    let mut j = 0;
    for (i, k) in keys.iter().enumerate() {
        if missing.get(j) == Some(&i) {
            mu.extend_from_slice(&fresh_mu[j * d..(j + 1) * d]);
            logvar.extend_from_slice(&fresh_logvar[j * d..(j + 1) * d]);
            j += 1;
        } else {
            let (m, l) = &cache[k];
            mu.extend_from_slice(m);
            logvar.extend_from_slice(l);
        }
    }
    if (cache.len() + missing.len()) * 2 * d <= MAX_CACHED_ENCODER_FLOATS {
        for (j, &i) in missing.iter().enumerate() {
            cache.insert(keys[i], (fresh_mu[j * d..(j + 1) * d].into(), fresh_logvar[j * d..(j + 1) * d].into()));
        }
    }
    (mu, logvar)
}

impl<B: AutodiffBackend> FmStage<B> {
    pub fn new(cfg: &ModelConfig, train: &TrainConfig, prior: FmPrior<B::InnerBackend>, device: &B::Device) -> Self {
        let cpu = std::any::TypeId::of::<B::InnerBackend>() == std::any::TypeId::of::<crate::CpuBackend>();
        let fast_prior = match &prior {
            FmPrior::Learned { encoder, decoder, .. } if cpu => {
                Some((CpuEncoder::from_net(encoder.as_ref()), CpuDecoder::from_net(decoder.as_ref())))
            }
            _ => None,
        };
        Self {
            net: Trainable::new(SeededInit::apply(VelocityNet::new(cfg, device), train.seed ^ 0xC0), train.fm.clone()),
            prior,
            rng: Rng::stream(train.seed, 3, crate::rng::Purpose::Training),
            time_sampling: train.time_sampling,
            prediction: cfg.dit.prediction,
            fast_prior,
            encoded: HashMap::new(),
            classes: cfg.image_classes(),
            class_dropout: train.class_dropout,
        }
    }

    /// The prior draw x0 paired with each image of the batch; `keys` (one per image) name the
    /// training images so that the frozen encoder's outputs can be reused.
    pub fn draw_x0(&mut self, y: &Tensor<B, 4>, keys: Option<&[ImageKey]>) -> Tensor<B, 4> {
        let shape = y.dims();
        match &self.prior {
            FmPrior::Gaussian => normal::<B, 4>(&mut self.rng, shape, &y.device()),
            FmPrior::Learned { encoder, decoder, noise_scale } => {
                if let Some((fast_enc, fast_dec)) = &self.fast_prior {
                    // The same draws in the same order as the burn path below.
                    let ys = y.clone().inner().into_data().convert::<f32>().into_vec::<f32>().expect("f32 images");
                    let (mut z, logvar_e) = match keys {
                        Some(keys) if keys.len() == shape[0] => encode_cached(fast_enc, &mut self.encoded, &ys, keys),
                        _ => fast_enc.forward(&ys),
                    };
                    let e1 = self.rng.normal_vec(z.len());
                    for ((z, lv), e) in z.iter_mut().zip(&logvar_e).zip(&e1) {
                        *z += (lv * 0.5).exp() * e;
                    }
                    let (mut x0, logvar_p) = fast_dec.forward(&z, false);
                    let e2 = self.rng.normal_vec(x0.len());
                    for ((x, lv), e) in x0.iter_mut().zip(&logvar_p).zip(&e2) {
                        *x += (lv * 0.5).exp() * e * *noise_scale;
                    }
                    return Tensor::from_data(TensorData::new(x0, shape), &y.device());
                }
                let (mu_e, logvar_e) = encoder.forward(y.clone().inner());
                let e1 = normal::<B::InnerBackend, 2>(&mut self.rng, mu_e.dims(), &mu_e.device());
                let z = mu_e + (logvar_e * 0.5).exp() * e1;
                let (mu_p, logvar_p) = decoder.forward(z);
                let e2 = normal::<B::InnerBackend, 4>(&mut self.rng, shape, &mu_p.device());
                Tensor::from_inner(mu_p + (logvar_p * 0.5).exp() * e2 * *noise_scale)
            }
        }
    }

    pub fn step(&mut self, y: Tensor<B, 4>) -> f32 {
        self.step_keyed(y, None)
    }

    /// [`Self::step`] for a batch whose images are named by `keys` (see [`Self::draw_x0`]).
    pub fn step_keyed(&mut self, y: Tensor<B, 4>, keys: Option<&[ImageKey]>) -> f32 {
        self.step_keyed_labelled(y, keys, None)
    }

    /// [`Self::step_keyed`] for images of the classes `labels` (one per image).
    pub fn step_keyed_labelled(&mut self, y: Tensor<B, 4>, keys: Option<&[ImageKey]>, labels: Option<&[u32]>) -> f32 {
        let device = y.device();
        let n = y.dims()[0];
        let x0 = self.draw_x0(&y, keys);
        let t = Tensor::<B, 1>::from_floats(self.time_sampling.draw(&mut self.rng, n).as_slice(), &device);
        let classes = class_ids::<B>(&mut self.rng, labels, self.classes, self.class_dropout, &device);
        let xt = path_point(x0.clone(), y.clone(), t.clone());
        let out = self.net.model().forward_class(xt.clone(), t.clone(), false, classes);
        let loss = fm_loss(output_to_velocity(self.prediction, out, xt, t), y - x0);
        let v = scalar(loss.clone());
        self.net.apply(loss);
        v
    }
}

/// Shuffled epochs over `len` items: hands out indices and reshuffles (Fisher-Yates, with the
/// caller's rng) whenever an epoch ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Epochs {
    order: Vec<usize>,
    pos: usize,
}

impl Epochs {
    pub fn new(len: usize) -> Self {
        Self { order: (0..len).collect(), pos: len }
    }

    pub fn next_index(&mut self, rng: &mut Rng) -> usize {
        if self.pos >= self.order.len() {
            for i in (1..self.order.len()).rev() {
                let j = rng.below(i + 1);
                self.order.swap(i, j);
            }
            self.pos = 0;
        }
        self.pos += 1;
        self.order[self.pos - 1]
    }
}

/// Step counts of a training run, per stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSteps {
    pub aux: usize,
    pub latent: usize,
    pub fm: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PriorKind;
    use crate::model::cpu::test_util::{max_rel_diff, randomized};
    use crate::{CpuBackend, CpuTrainBackend};

    /// The probe loss is the plain mean squared velocity error over all (latent, draw) pairs,
    /// whatever the chunking; the same seed gives the same draws, another seed others; a flow
    /// trained on a set of latents scores lower on them than before training.
    #[test]
    fn latent_probe_is_fixed_and_exact() {
        let device = Default::default();
        let cfg = ModelConfig::preset("tiny", 4, 16, PriorKind::Learned).unwrap();
        let d = cfg.aux.latent_dim;
        let n = 300; // 300 * 16 draws = 4800 rows: two chunks
        let z = Tensor::<CpuBackend, 1>::from_floats(
            (0..n * d).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect::<Vec<_>>().as_slice(),
            &device,
        )
        .reshape([n, d]);
        let net = randomized(LatentFlowNet::<CpuBackend>::new(&cfg, &device), 3);
        let ts = TimeSampling::LogitNormal { mean: 0.0, std: 1.0 };
        let probe = LatentProbe::new(z.clone(), 16, ts, 5).unwrap();
        assert_eq!(probe.len(), n * 16);
        let whole: f32 = (net.forward(probe.zt.clone(), probe.t.clone()) - probe.target.clone())
            .powi_scalar(2)
            .mean()
            .into_scalar()
            .elem();
        let chunked = probe.loss(&net);
        assert!((chunked - whole as f64).abs() < 1e-5 * chunked, "{chunked} vs {whole}");
        assert_eq!(LatentProbe::new(z.clone(), 16, ts, 5).unwrap().loss(&net), chunked);
        assert_ne!(LatentProbe::new(z.clone(), 16, ts, 6).unwrap().loss(&net), chunked);
        assert!(LatentProbe::new(z.clone(), 0, ts, 5).is_err());

        let latent = OptimConfig { lr: 1e-2, warmup_steps: 0, ..OptimConfig::default() };
        let train = TrainConfig { seed: 1, latent, ..TrainConfig::default() };
        let encoder = AuxEncoder::new(&cfg, &device);
        let mut stage = LatentStage::<CpuTrainBackend>::new(&cfg, &train, encoder, &device);
        let small = z.slice([0..32]);
        let probe = LatentProbe::new(small.clone(), 8, ts, 5).unwrap();
        let before = probe.loss(&burn::module::AutodiffModule::valid(stage.net.model()));
        for _ in 0..60 {
            stage.step_latents(small.clone());
        }
        let after = probe.loss(&burn::module::AutodiffModule::valid(stage.net.model()));
        assert!(after < 0.8 * before, "{before} -> {after}");
    }

    /// A step on stored posteriors (a [`LatentPool`]'s rows) is the step on the images they
    /// came from, bit for bit, for either target; the pool hands out the rows asked for.
    #[test]
    fn a_step_on_stored_latents_is_the_step_on_their_images() {
        let device = Default::default();
        let cfg = ModelConfig::preset("tiny", 4, 16, PriorKind::Learned).unwrap();
        let encoder = randomized(AuxEncoder::<CpuBackend>::new(&cfg, &device), 4);
        let images = Tensor::<CpuTrainBackend, 4>::random(
            [5, 4, 16, 16],
            burn::tensor::Distribution::Uniform(-1.0, 1.0),
            &device,
        );
        let (mu, logvar) = encoder.forward(images.clone().inner());
        let pool = LatentPool::new(mu.clone(), logvar.clone());
        assert_eq!(pool.len(), 5);
        let order = [4, 0, 2, 2, 1];
        let (m, lv) = pool.rows(&order);
        for (row, &i) in order.iter().enumerate() {
            assert_eq!(m.clone().slice([row..row + 1]).into_data(), mu.clone().slice([i..i + 1]).into_data());
            assert_eq!(lv.clone().slice([row..row + 1]).into_data(), logvar.clone().slice([i..i + 1]).into_data());
        }
        for target in [LatentTarget::Mean, LatentTarget::Sample] {
            let train = TrainConfig { seed: 3, latent_target: target, ..TrainConfig::default() };
            let mut a = LatentStage::<CpuTrainBackend>::new(&cfg, &train, encoder.clone(), &device);
            let mut b = LatentStage::<CpuTrainBackend>::new(&cfg, &train, encoder.clone(), &device);
            let (mu, logvar) = pool.rows(&[0, 1, 2, 3, 4]);
            for _ in 0..3 {
                assert_eq!(a.step(images.clone()).to_bits(), b.step_posterior(mu.clone(), logvar.clone()).to_bits());
            }
        }
    }

    /// The fused encoder and decoder's prior draw equals burn's for the same random numbers.
    #[test]
    fn fused_prior_draw_matches_burns() {
        let device = Default::default();
        let cfg = ModelConfig::preset("tiny", 4, 16, PriorKind::Learned).unwrap();
        let prior = FmPrior::<CpuBackend>::Learned {
            encoder: Box::new(randomized(AuxEncoder::new(&cfg, &device), 1)),
            decoder: Box::new(randomized(AuxDecoder::new(&cfg, &device), 2)),
            noise_scale: 0.7,
        };
        let mut stage = FmStage::<CpuTrainBackend>::new(&cfg, &TrainConfig::default(), prior, &device);
        assert!(stage.fast_prior.is_some());
        let y = Tensor::<CpuTrainBackend, 1>::from_floats(
            (0..5 * 4 * 16 * 16).map(|i| ((i * 29 % 97) as f32 / 48.0) - 1.0).collect::<Vec<_>>().as_slice(),
            &device,
        )
        .reshape([5, 4, 16, 16]);
        let rng = stage.rng.clone();
        let fast = stage.draw_x0(&y, None).into_data().into_vec::<f32>().unwrap();
        // With image keys: the first draw fills the encoder cache, the second (the same images
        // in another order, one twice) reads it; both are bitwise the uncached draws.
        let keys = [(3, false), (0, true), (7, false), (1, false), (2, false)];
        stage.rng = rng.clone();
        let cached = stage.draw_x0(&y, Some(&keys)).into_data().into_vec::<f32>().unwrap();
        assert_eq!(cached, fast);
        let order = [4, 0, 2, 2, 1];
        let per = 4 * 16 * 16;
        let y2: Vec<f32> = order
            .iter()
            .flat_map(|&i| y.clone().into_data().into_vec::<f32>().unwrap()[i * per..(i + 1) * per].to_vec())
            .collect();
        let y2 = Tensor::<CpuTrainBackend, 1>::from_floats(y2.as_slice(), &device).reshape([5, 4, 16, 16]);
        let keys2: Vec<ImageKey> = order.iter().map(|&i| keys[i]).collect();
        stage.rng = rng.clone();
        let uncached = stage.draw_x0(&y2, None).into_data().into_vec::<f32>().unwrap();
        stage.rng = rng.clone();
        assert_eq!(stage.encoded.len(), 5);
        let from_cache = stage.draw_x0(&y2, Some(&keys2)).into_data().into_vec::<f32>().unwrap();
        assert_eq!(from_cache, uncached);
        stage.fast_prior = None;
        stage.rng = rng;
        let slow = stage.draw_x0(&y, None).into_data().into_vec::<f32>().unwrap();
        let d = max_rel_diff(&slow, &fast);
        assert!(d < 1e-4, "fused and burn prior draws differ by {d}");
    }
}
