//! Helpers shared by the integration tests: tiny models with non-trivial random weights and
//! small synthetic image sets.
#![allow(dead_code)]

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::TensorData;
use lediflow::model::Networks;
use lediflow::rng::Rng;
use lediflow::{CpuBackend, ModelConfig, ModelMeta, Pipeline, PriorKind};

pub type B = CpuBackend;

/// Replaces every parameter by N(0, scale^2) draws, so zero-initialised output layers (adaLN-Zero)
/// do not make the networks trivially the identity / zero in tests that never train.
struct Randomize {
    rng: Rng,
    scale: f32,
}

impl<Bk: Backend> ModuleMapper<Bk> for Randomize {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<Bk, D>>) -> Param<Tensor<Bk, D>> {
        let (id, t, mapper) = param.consume();
        let shape = t.dims();
        let n: usize = shape.iter().product();
        let v: Vec<f32> = self.rng.normal_vec(n).into_iter().map(|x| x * self.scale).collect();
        let new = Tensor::from_data(TensorData::new(v, shape), &t.device());
        Param::from_mapped_value(id, new, mapper)
    }
}

pub fn random_networks(cfg: &ModelConfig, seed: u64) -> Networks<B> {
    let nets = Networks::<B>::new(cfg, &Default::default());
    nets.map(&mut Randomize { rng: Rng::new(seed), scale: 0.1 })
}

pub fn tiny_config(channels: usize, size: usize, prior: PriorKind) -> ModelConfig {
    ModelConfig::preset("tiny", channels, size, prior).unwrap()
}

pub fn random_pipeline(channels: usize, size: usize, prior: PriorKind, seed: u64) -> Pipeline<B> {
    let cfg = tiny_config(channels, size, prior);
    let nets = random_networks(&cfg, seed);
    Pipeline::new(nets, ModelMeta::new(cfg, serde_json::json!({"test": true})), Default::default())
}

/// A handful of distinct 16x16 synthetic images in [-1, 1]: flat shapes on flat backgrounds.
pub fn synthetic_images(count: usize, channels: usize, size: usize) -> Tensor<B, 4> {
    let mut data = vec![0f32; count * channels * size * size];
    let plane = size * size;
    for n in 0..count {
        for y in 0..size {
            for x in 0..size {
                let (fx, fy) = (x as f32 / size as f32, y as f32 / size as f32);
                let inside = match n % 4 {
                    0 => (0.25..0.75).contains(&fx) && (0.25..0.75).contains(&fy),
                    1 => (fx - 0.5).powi(2) + (fy - 0.5).powi(2) < 0.09,
                    2 => fy < 0.5,
                    _ => ((x / 4) + (y / 4)) % 2 == 0,
                };
                for c in 0..channels {
                    let colour = ((n * 7 + c * 3) % 5) as f32 / 2.0 - 1.0; // distinct per image
                    let v = if inside { colour } else { -colour * 0.8 };
                    data[n * channels * plane + c * plane + y * size + x] = v;
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(data, [count, channels, size, size]), &Default::default())
}

pub fn to_vec(t: Tensor<B, 4>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// `images` as the 8-bit training data the library trains on (and back, for comparisons).
pub fn dataset_of(images: &Tensor<B, 4>) -> lediflow::data::Dataset {
    let [n, c, s, _] = images.dims();
    let mut ds = lediflow::data::Dataset::new(s, c);
    ds.pixels = lediflow::image::to_u8(images.clone()).unwrap();
    ds.sources = (0..n).map(|i| format!("synthetic {i}")).collect();
    ds
}

/// `images` rounded to 8 bits, as training sees them.
pub fn quantized(images: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, s, _] = images.dims();
    let ds = dataset_of(&images);
    lediflow::image::from_u8(&ds.pixels, n, c, s, s, &Default::default()).unwrap()
}

/// Per-step losses of a training run, by stage.
#[derive(Default)]
pub struct History {
    /// The auxiliary stage's reconstruction MSE.
    pub aux_mse: Vec<f32>,
    pub latent: Vec<f32>,
    pub fm: Vec<f32>,
}

/// Trains `cfg` on `images` with `lediflow train`'s loop (a run folder in a temporary
/// directory, no checkpoints between stage ends) and loads the model file it writes.
pub fn train_run(
    cfg: &ModelConfig,
    train: &lediflow::train::TrainConfig,
    images: &Tensor<B, 4>,
    steps: lediflow::train::StageSteps,
) -> (Networks<B>, History) {
    train_run_on(cfg, train, &dataset_of(images), steps)
}

/// [`train_run`] on an 8-bit data set (labelled ones train class-conditional configs).
pub fn train_run_on(
    cfg: &ModelConfig,
    train: &lediflow::train::TrainConfig,
    data: &lediflow::data::Dataset,
    steps: lediflow::train::StageSteps,
) -> (Networks<B>, History) {
    use lediflow::train::run::{RunControl, RunOutcome, RunSpec, Stage, run};
    use std::sync::atomic::{AtomicUsize, Ordering};
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lediflow-train-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let spec = RunSpec {
        model: cfg.clone(),
        train: train.clone(),
        steps,
        hflip: false,
        checkpoint_every: 0,
        data: serde_json::json!("synthetic"),
        init: None,
    };
    let hist = std::rc::Rc::new(std::cell::RefCell::new(History::default()));
    let h2 = hist.clone();
    let control = RunControl {
        on_step: Some(Box::new(move |s, _| {
            let mut h = h2.borrow_mut();
            match s.stage {
                Stage::Aux => h.aux_mse.push(s.mse),
                Stage::Latent => h.latent.push(s.loss),
                Stage::Fm => h.fm.push(s.loss),
            }
        })),
        ..Default::default()
    };
    let out = dir.join("model.safetensors");
    let outcome =
        run::<lediflow::CpuTrainBackend>(&spec, data, &dir.join("run"), &out, false, control, &Default::default())
            .unwrap();
    assert!(matches!(outcome, RunOutcome::Finished { .. }), "{outcome:?}");
    let (nets, _) = lediflow::checkpoint::load::<B>(&out, &Default::default()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let hist = std::rc::Rc::try_unwrap(hist).ok().unwrap().into_inner();
    (nets, hist)
}
