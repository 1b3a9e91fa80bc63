//! Optimisation plumbing shared by every training stage: Adam, global-norm gradient clipping
//! and an exponential moving average of the weights (what sampling uses).

use std::collections::HashMap;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::ElementConversion;
use burn::tensor::backend::AutodiffBackend;

/// Squared L2 norm of all gradients of a module (computed on the device, read back once).
struct GradNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let s = g.powi_scalar(2).sum();
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
}

/// Multiplies every gradient by `scale`.
struct GradScale<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    scale: f32,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradScale<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads.register::<B::InnerBackend, D>(param.id, g * self.scale);
        }
    }
}

/// Clips the global gradient norm to `max_norm` (0 disables) and returns the norm before clipping.
pub fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f32,
) -> f32 {
    let mut v = GradNorm::<B> { grads, sum: None };
    module.visit(&mut v);
    let norm = v.sum.map(|s| s.into_scalar().elem::<f32>().sqrt()).unwrap_or(0.0);
    if max_norm > 0.0 && norm > max_norm && norm.is_finite() {
        let mut s = GradScale::<B> { grads, scale: max_norm / norm, _b: std::marker::PhantomData };
        module.visit(&mut s);
    }
    norm
}

/// Flattened copies of every float parameter, keyed by module path.
struct Snapshot<B: Backend> {
    path: Vec<String>,
    out: HashMap<String, Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Snapshot<B> {
    fn enter_module(&mut self, name: &str, _c: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _c: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.out.insert(self.path.join("."), t.reshape([n]));
    }
}

/// ema <- decay * ema + (1 - decay) * current, parameter by parameter.
struct EmaUpdate<B: Backend> {
    path: Vec<String>,
    current: HashMap<String, Tensor<B, 1>>,
    decay: f32,
}

impl<B: Backend> ModuleMapper<B> for EmaUpdate<B> {
    fn enter_module(&mut self, name: &str, _c: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _c: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, ema, mapper) = param.consume();
        let key = self.path.join(".");
        let new = match self.current.remove(&key) {
            Some(cur) => ema.clone() * self.decay + cur.reshape(ema.dims()) * (1.0 - self.decay),
            None => ema,
        };
        Param::from_mapped_value(id, new, mapper)
    }
}

/// Hyperparameters of one stage's optimiser.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimConfig {
    pub lr: f64,
    /// Linear warm-up from 0 over this many steps.
    pub warmup_steps: usize,
    /// Global gradient-norm clip (0 = off).
    pub grad_clip: f32,
    /// EMA decay of the sampling weights (0 = EMA equals the live weights).
    pub ema_decay: f32,
    /// Linear decay of the learning rate to 0 over the last this many steps of the stage
    /// (a cool-down; 0 = constant after the warm-up). Files and checkpoints written before
    /// this option existed read as 0.
    #[serde(default)]
    pub decay_steps: usize,
    /// Decoupled weight decay (AdamW): after each step every weight matrix is multiplied by
    /// 1 - lr * weight_decay (biases and 1-D parameters are left alone; 0 = off). A
    /// regulariser for networks that memorise a small training set. Files and checkpoints
    /// written before this option existed read as 0.
    #[serde(default)]
    pub weight_decay: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self { lr: 3e-4, warmup_steps: 200, grad_clip: 1.0, ema_decay: 0.999, decay_steps: 0, weight_decay: 0.0 }
    }
}

impl OptimConfig {
    /// Rejects settings that cannot train: a learning rate that is not positive and finite,
    /// an EMA decay outside [0, 1), a negative weight decay or one that would flip the weights'
    /// sign in a step (lr * weight_decay >= 1).
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("lr must be positive and finite, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(format!("ema_decay must be in [0, 1), got {}", self.ema_decay));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay * self.lr < 1.0) {
            return Err(format!("weight_decay must be at least 0 and below 1 / lr, got {}", self.weight_decay));
        }
        Ok(())
    }

    /// The learning rate of the step taken at `step` (0-based) of a stage of `total` steps
    /// (`total` 0 = unknown: no decay). Warm-up and decay multiply where they overlap.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        let w = self.warmup_steps;
        let warm = if w == 0 || step >= w { 1.0 } else { (step + 1) as f64 / w as f64 };
        let d = self.decay_steps;
        let left = total.saturating_sub(step);
        let cool = if d == 0 || total == 0 || left >= d { 1.0 } else { left as f64 / d as f64 };
        self.lr * warm * cool
    }

    /// The first step whose learning rate the decay lowers, in a stage of `total` steps
    /// (`total` when there is no decay).
    pub fn decay_start(&self, total: usize) -> usize {
        if self.decay_steps == 0 { total } else { total.saturating_sub(self.decay_steps - 1) }
    }
}

/// One network under training: live weights, Adam state, EMA weights and the step count.
pub struct Trainable<B: AutodiffBackend, M: AutodiffModule<B>> {
    // Options only so that `apply` can move the modules through burn's by-value APIs; they
    // are always Some outside `apply`.
    model: Option<M>,
    ema: Option<M::InnerModule>,
    pub optim: OptimizerAdaptor<Adam, M, B>,
    pub step: usize,
    pub config: OptimConfig,
    /// Steps of the whole stage, for the learning-rate decay (0 = unknown: no decay).
    pub total_steps: usize,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> Trainable<B, M> {
    pub fn new(model: M, config: OptimConfig) -> Self {
        let ema = model.valid();
        let optim = AdamConfig::new().with_epsilon(1e-8).init::<B, M>();
        Self { model: Some(model), ema: Some(ema), optim, step: 0, config, total_steps: 0 }
    }

    /// The live (training) weights.
    pub fn model(&self) -> &M {
        self.model.as_ref().expect("model present outside apply")
    }

    /// The EMA weights, for sampling and saving.
    pub fn ema(&self) -> &M::InnerModule {
        self.ema.as_ref().expect("ema present outside apply")
    }

    pub fn set_ema(&mut self, ema: M::InnerModule) {
        self.ema = Some(ema);
    }

    /// Starts training from `model` (fine-tuning): live and EMA weights both become `model`,
    /// the optimizer state and step count stay fresh.
    pub fn start_from(&mut self, model: M) {
        self.ema = Some(model.valid());
        self.model = Some(model);
    }

    pub fn set_model(&mut self, model: M) {
        self.model = Some(model);
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        self.config.lr_at(self.step, self.total_steps)
    }

    /// Backpropagates `loss`, clips, takes one Adam step and updates the EMA. Returns the
    /// gradient norm before clipping.
    pub fn apply(&mut self, loss: Tensor<B, 1>) -> f32 {
        let model = self.model.take().expect("model present");
        let grads = loss.backward();
        let mut grads = GradientsParams::from_grads(grads, &model);
        let norm = clip_global_norm(&model, &mut grads, self.config.grad_clip);
        let lr = self.lr();
        let mut model = self.optim.step(lr, model, grads);
        if self.config.weight_decay > 0.0 {
            model = model.map(&mut DecoupledDecay { factor: 1.0 - lr * self.config.weight_decay });
        }
        self.step += 1;
        // Warm start: early on the EMA tracks the weights closely instead of the random init.
        let decay = self.config.ema_decay.min((1.0 + self.step as f32) / (10.0 + self.step as f32));
        let mut snap = Snapshot { path: Vec::new(), out: HashMap::new() };
        model.valid().visit(&mut snap);
        let ema = self.ema.take().expect("ema present");
        self.ema = Some(ema.map(&mut EmaUpdate { path: Vec::new(), current: snap.out, decay }));
        self.model = Some(model);
        norm
    }
}

/// AdamW's decoupled weight decay: multiplies every parameter of rank 2 or more (weight
/// matrices, convolution kernels) by `factor`, outside the gradient graph.
struct DecoupledDecay {
    factor: f64,
}

impl<B: AutodiffBackend> ModuleMapper<B> for DecoupledDecay {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if D < 2 {
            return param;
        }
        let factor = self.factor;
        param.map(|t| {
            let grad = t.is_require_grad();
            let t = Tensor::<B, D>::from_inner(t.inner() * factor);
            if grad { t.require_grad() } else { t }
        })
    }
}

/// Re-initialises every parameter from our own seeded streams (one per parameter path), with
/// burn's default distribution for Linear/Conv layers: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
/// Parameters that start at exactly zero (adaLN-Zero modulation, zero output layers) stay zero.
///
/// burn's own initialisers draw from one process-wide RNG, so two trainings in one process
/// (parallel tests, a host application) would disturb each other; this makes a run depend only
/// on its seed.
pub struct SeededInit {
    path: Vec<String>,
    seed: u64,
    last_fan_in: usize,
}

impl SeededInit {
    pub fn apply<B: Backend, M: burn::module::Module<B>>(module: M, seed: u64) -> M {
        module.map(&mut SeededInit { path: Vec::new(), seed, last_fan_in: 1 })
    }
}

fn path_hash(s: &str) -> u64 {
    // FNV-1a: stable across platforms and Rust versions (unlike DefaultHasher).
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

impl<B: Backend> ModuleMapper<B> for SeededInit {
    fn enter_module(&mut self, name: &str, _c: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _c: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, t, mapper) = param.consume();
        let shape = t.dims();
        let fan_in = match D {
            1 => self.last_fan_in,
            2 => shape[0],
            _ => shape[1..].iter().product(),
        };
        if D > 1 {
            self.last_fan_in = fan_in.max(1);
        }
        let all_zero: bool = t.clone().equal_elem(0.0).all().into_scalar().to_bool();
        if all_zero {
            return Param::from_mapped_value(id, t, mapper);
        }
        let n: usize = shape.iter().product();
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let mut rng =
            crate::rng::Rng::stream(self.seed, path_hash(&self.path.join(".")), crate::rng::Purpose::Training);
        let v: Vec<f32> = (0..n).map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32).collect();
        let mut new = Tensor::<B, D>::from_data(burn::tensor::TensorData::new(v, shape), &t.device());
        if t.is_require_grad() {
            new = new.require_grad();
        }
        Param::from_mapped_value(id, new, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::OptimConfig;

    #[test]
    fn learning_rate_warms_up_holds_and_decays_to_zero() {
        let c = OptimConfig { lr: 1.0, warmup_steps: 4, decay_steps: 5, ..OptimConfig::default() };
        let lrs: Vec<f64> = (0..12).map(|s| c.lr_at(s, 12)).collect();
        let want = [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2];
        for (s, (a, b)) in lrs.iter().zip(want).enumerate() {
            assert!((a - b).abs() < 1e-12, "step {s}: {a} vs {b}");
        }
        // The first decayed step is the one decay_start names.
        assert_eq!(c.decay_start(12), 8);
        assert!(c.lr_at(7, 12) == 1.0 && c.lr_at(8, 12) < 1.0);
        // Overlapping warm-up and decay multiply; no decay without a known total or with 0 steps.
        assert!((c.lr_at(0, 3) - 0.25 * 0.6).abs() < 1e-12);
        assert_eq!(c.lr_at(100, 0), 1.0);
        let flat = OptimConfig { lr: 1.0, warmup_steps: 0, ..OptimConfig::default() };
        assert_eq!(flat.lr_at(11, 12), 1.0);
        assert_eq!(flat.decay_start(12), 12);
        // Config files written before the option existed read as "no decay".
        let old = r#"{"lr":0.001,"warmup_steps":200,"grad_clip":1.0,"ema_decay":0.999}"#;
        assert_eq!(serde_json::from_str::<OptimConfig>(old).unwrap().decay_steps, 0);
        assert_eq!(serde_json::from_str::<OptimConfig>(old).unwrap().weight_decay, 0.0);
    }

    /// Decoupled weight decay scales weight matrices by 1 - lr * wd after the Adam step and
    /// leaves biases alone: with a zero gradient Adam moves nothing, so that is all that happens.
    #[test]
    fn weight_decay_shrinks_weight_matrices_only() {
        use super::Trainable;
        use crate::CpuTrainBackend as B;
        use burn::nn::{Linear, LinearConfig};
        use burn::prelude::*;
        let device = Default::default();
        let lin: Linear<B> = LinearConfig::new(3, 2).init(&device);
        let (w0, b0) = (lin.weight.val().into_data(), lin.bias.as_ref().unwrap().val().into_data());
        let c = OptimConfig { lr: 0.1, warmup_steps: 0, weight_decay: 0.5, ..OptimConfig::default() };
        let mut t = Trainable::new(lin, c);
        let x = Tensor::<B, 2>::ones([4, 3], &device);
        let loss = t.model().forward(x).sum() * 0.0;
        t.apply(loss);
        let m = t.model();
        let w1 = m.weight.val().into_data().to_vec::<f32>().unwrap();
        for (a, b) in w0.to_vec::<f32>().unwrap().iter().zip(&w1) {
            assert!((a * 0.95 - b).abs() < 1e-6, "{a} -> {b}");
        }
        assert_eq!(m.bias.as_ref().unwrap().val().into_data(), b0);
        // The decayed weights still train: a real loss has gradients for them.
        let loss = t.model().forward(Tensor::<B, 2>::ones([4, 3], &device)).powi_scalar(2).sum();
        t.apply(loss);
        assert_ne!(t.model().weight.val().into_data().to_vec::<f32>().unwrap(), w1);
    }
}
