//! The `lediflow` command-line tool: train models, sample from them, inspect model files and
//! look at training data.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod bench;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use lediflow::data::{self, Dataset};
use lediflow::train::run::{InitFrom, RunControl, RunOutcome, RunSpec, Stage};
use lediflow::train::{StageSteps, TrainConfig};
use lediflow::{CpuBackend, CpuTrainBackend, Model, ModelConfig, Pipeline, PriorKind, SampleOptions, Solver};

#[global_allocator]
static ALLOC: bench::CountingAlloc = bench::CountingAlloc;

#[derive(Parser)]
#[command(name = "lediflow", version, about = "LeDiFlow image generation: train, sample, inspect")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a LeDiFlow model (auxiliary, latent flow, image FM) or its Gaussian-prior baseline.
    Train(TrainArgs),
    /// Sample images from a model file into a PNG grid and/or individual PNGs.
    Sample(SampleArgs),
    /// Frames between two images (encoded) or two seeds, as a PNG strip and/or individual PNGs.
    Interpolate(InterpolateArgs),
    /// Fill a region of an image: the masked-out part is generated, the rest kept exactly.
    Inpaint(InpaintArgs),
    /// Measure sample quality against the held-out split (SWD, KID, precision/recall, memorisation).
    Eval(EvalArgs),
    /// Retrain a LeDiFlow model's latent flow on its encoder's latents of the training data (the
    /// encoder, decoder and image flow stay as they are) and write a new model file.
    RetrainLatent(RetrainLatentArgs),
    /// Sampling speed and peak memory per batch size, FM forward GFLOP/s (a benchmark, not a test).
    Bench(bench::BenchArgs),
    /// Print a model file's metadata.
    Info {
        #[arg(long)]
        model: PathBuf,
    },
    /// Rewrite a model file, optionally with f16 tensors (half the size).
    Convert {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        fp16: bool,
        /// Record this solver-grid shift as the model's recommendation: sampling calls that
        /// leave the shift to the model (the CLI without --time-shift, the C ABI's 0, Python's
        /// None) use it.
        #[arg(long)]
        time_shift: Option<f32>,
    },
    /// Write a model file from a training run's latest checkpoint (its image flow's EMA weights at
    /// that step), to sample or evaluate a long run before it ends; the run may keep running.
    Export {
        /// The run's folder (`train --run-dir`).
        #[arg(long)]
        run_dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        fp16: bool,
    },
    /// Load a data set the way `train` does and write a contact sheet of it.
    Data {
        #[command(flatten)]
        data: DataArgs,
        /// Where to write the contact sheet (PNG).
        #[arg(long)]
        sheet: PathBuf,
        /// Show at most this many images.
        #[arg(long, default_value_t = 1024)]
        max: usize,
        #[arg(long, default_value_t = 32)]
        columns: usize,
    },
}

#[derive(Args, Clone)]
struct DataArgs {
    /// A folder of PNG/JPEG images (searched recursively).
    #[arg(long, conflicts_with = "dcss")]
    data: Option<PathBuf>,
    /// Use the Dungeon Crawl Stone Soup tile atlases (apt-get install crawl-tiles-data).
    #[arg(long)]
    dcss: bool,
    /// Folder of the DCSS atlases.
    #[arg(long, default_value = data::DCSS_TILE_DIR)]
    dcss_dir: PathBuf,
    /// Channels: 1 (grey), 3 (RGB) or 4 (RGBA).
    #[arg(long, default_value_t = 4)]
    channels: usize,
    /// Image size: 16, 32 or 64 (DCSS tiles are 32).
    #[arg(long, default_value_t = 32)]
    size: usize,
    /// Hold out every N-th image for validation (0 = none).
    #[arg(long, default_value_t = 10)]
    val_every: usize,
}

impl DataArgs {
    fn load(&self) -> lediflow::Result<(Dataset, serde_json::Value)> {
        let ds = if self.dcss {
            if self.size != 32 {
                return Err(lediflow::Error::InvalidArgument("DCSS tiles are 32x32: use --size 32".into()));
            }
            data::load_dcss(&self.dcss_dir, self.channels)?
        } else if let Some(dir) = &self.data {
            data::load_folder(dir, self.size, self.channels)?
        } else {
            return Err(lediflow::Error::InvalidArgument("give --data <folder> or --dcss".into()));
        };
        let desc = serde_json::json!({
            "source": if self.dcss { format!("dcss:{}", self.dcss_dir.display()) } else { format!("{}", self.data.as_ref().unwrap().display()) },
            "images": ds.len(),
            "size": self.size,
            "channels": self.channels,
            "validation": format!("every {}th image held out", self.val_every),
            lediflow::train::run::DATA_FINGERPRINT: lediflow::train::run::fnv64_hex(&ds.pixels),
        });
        Ok((ds, desc))
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum PriorArg {
    Learned,
    Gaussian,
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Network size preset: tiny, small, base [default: small].
    #[arg(long, conflicts_with = "init")]
    preset: Option<String>,
    /// learned = LeDiFlow; gaussian = the baseline (same FM network and budget, x0 ~ N(0, I))
    /// [default: learned, or the --init file's].
    #[arg(long, value_enum)]
    prior: Option<PriorArg>,
    /// Fine-tune: start every stage from this model file's networks instead of random weights
    /// (network config and prior come from the file; --size and --channels must match it). A
    /// stage given 0 steps keeps the file's network unchanged, e.g. --steps-aux 0
    /// --steps-latent 0 trains only the image flow on new data. `--set dit.KEY=VALUE` gives the
    /// image flow another shape: it then trains from random weights on the file's prior
    /// (`--set dit.pixel_head=N` alone adds a per-pixel head to the file's image flow instead).
    #[arg(long, value_name = "MODEL")]
    init: Option<PathBuf>,
    /// With --init: train the image flow from random weights even if its shape is the file's
    /// (or the file's plus a new per-pixel head, which otherwise keeps the file's weights).
    #[arg(long, requires = "init")]
    fresh_velocity: bool,
    /// With --init: train the latent flow from random weights on the file's encoder (with
    /// --steps-latent N; --steps-aux 0 --steps-fm 0 retrains only the latent flow).
    #[arg(long, requires = "init")]
    fresh_latent: bool,
    /// Override any config field: --set dit.depth=6 --set train.beta_kl=0.01 --set train.fm.lr=2e-4
    /// --set train.fm.decay_steps=4000 (linear learning-rate decay to 0 over a stage's last steps;
    /// keys under `train.` address the training config, the rest the model config).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Images per step of the auxiliary model and the image flow. The latent flow steps on
    /// `train.latent_batch` stored latents (default 256; the encoder's latents of the training
    /// images, computed once when that stage starts).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Steps of the auxiliary encoder/decoder (LeDiFlow only; 0 with --init keeps the file's).
    #[arg(long, default_value_t = 20_000)]
    steps_aux: usize,
    /// Steps of the latent flow (LeDiFlow only; 0 with --init keeps the file's).
    #[arg(long, default_value_t = 30_000)]
    steps_latent: usize,
    /// Steps of the image flow.
    #[arg(long, default_value_t = 60_000)]
    steps_fm: usize,
    /// Random horizontal flips (the latent flow also learns the mirrors' latents).
    #[arg(long)]
    hflip: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = 1000)]
    checkpoint_every: usize,
    /// Folder for checkpoints and losses.csv.
    #[arg(long)]
    run_dir: PathBuf,
    /// The model file to write at the end.
    #[arg(long)]
    out: PathBuf,
    /// Continue from the run folder's last checkpoint (same command line; the current and later
    /// stages may get more steps, which also extends a finished run).
    #[arg(long)]
    resume: bool,
    /// cpu, cuda or cuda:N (CUDA needs a build with --features cuda and an NVIDIA driver).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Wall-clock budget for this invocation, in seconds: at the first step after it (counted
    /// from the start, data loading included) save a checkpoint and exit with status 124;
    /// --resume continues. For time-limited batch slots and lent machines.
    #[arg(long, value_name = "SECONDS")]
    time_limit: Option<f64>,
}

/// Solver settings shared by every generating subcommand.
#[derive(Args)]
struct GenArgs {
    #[arg(long)]
    model: PathBuf,
    /// Image-flow solver steps (NFE = steps x evaluations per step of the solver).
    #[arg(long, default_value_t = 4)]
    steps: usize,
    /// euler, midpoint, heun or rk4.
    #[arg(long, default_value = "midpoint")]
    solver: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Scale of the learned prior's noise (0 = start from the prior mean).
    #[arg(long, default_value_t = 1.0)]
    prior_scale: f32,
    /// Timestep shift of the solver grid (1 = equal steps; > 1 shorter steps near the prior:
    /// about 3 suits the Gaussian baseline at 4 Midpoint steps) [default: the model file's
    /// recommendation (`info` shows it), else 1].
    #[arg(long)]
    time_shift: Option<f32>,
    /// Midpoint steps of LeDiFlow's latent flow (an MLP: cheap next to the image flow;
    /// ignored by Gaussian-prior models).
    #[arg(long, default_value_t = 16)]
    latent_steps: usize,
    /// cpu, cuda or cuda:N (CUDA needs a build with --features cuda and an NVIDIA driver).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Cap on the working memory of one call, in MB: the images then run in smaller batches
    /// [default: none].
    #[arg(long, value_name = "MB")]
    memory_limit: Option<f64>,
}

impl GenArgs {
    fn load(&self) -> Result<(Model, SampleOptions), String> {
        let device = lediflow::Device::parse(&self.device).map_err(|e| e.to_string())?;
        let p = Model::load(&self.model, device).map_err(|e| format!("{}: {e}", self.model.display()))?;
        if let Some(mb) = self.memory_limit {
            if !mb.is_finite() || mb <= 0.0 {
                return Err(format!("--memory-limit must be a positive number of MB, got {mb}"));
            }
            p.set_memory_limit((mb * 1e6) as usize);
        }
        let opts = SampleOptions {
            seed: self.seed,
            steps: self.steps,
            solver: Solver::parse(&self.solver).map_err(|e| e.to_string())?,
            prior_scale: self.prior_scale,
            time_shift: self.time_shift,
            latent_steps: self.latent_steps,
            ..Default::default()
        };
        opts.validate().map_err(|e| e.to_string())?;
        Ok((p, opts))
    }
}

/// Where generated images go.
#[derive(Args)]
struct OutArgs {
    /// PNG grid of all images (alpha kept).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Folder for one PNG per image.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Grid columns (default: 8, or one row for interpolation).
    #[arg(long)]
    columns: Option<usize>,
    /// Show transparency in the grid as a grey checkerboard.
    #[arg(long)]
    checker: bool,
}

impl OutArgs {
    fn check(&self) -> Result<(), String> {
        if self.out.is_none() && self.out_dir.is_none() {
            return Err("give --out <grid.png> and/or --out-dir <folder>".into());
        }
        Ok(())
    }

    /// Writes 8-bit images of `model` as a grid and/or single PNGs named `{stem}_{i}.png`.
    fn write(&self, model: &Model, pixels: Vec<u8>, stem: &str, columns: usize) -> Result<(), String> {
        let info = model.info();
        let mut ds = Dataset::new(info.width, info.channels);
        let n = pixels.len() / info.image_bytes();
        ds.pixels = pixels;
        ds.sources = (0..n).map(|i| format!("{stem} {i}")).collect();
        if let Some(out) = &self.out {
            data::write_grid(out, &ds, self.columns.unwrap_or(columns), self.checker).map_err(|e| e.to_string())?;
            eprintln!("wrote {}", out.display());
        }
        if let Some(dir) = &self.out_dir {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for i in 0..ds.len() {
                let mut one = Dataset::new(ds.size, ds.channels);
                one.pixels = ds.image(i).to_vec();
                one.sources = vec![String::new()];
                let path = dir.join(format!("{stem}_{i:04}.png"));
                write_single(&path, &one).map_err(|e| e.to_string())?;
            }
            eprintln!("wrote {} PNGs to {}", ds.len(), dir.display());
        }
        Ok(())
    }
}

#[derive(Args)]
struct SampleArgs {
    #[command(flatten)]
    gen_args: GenArgs,
    #[arg(long, default_value_t = 64)]
    count: usize,
    #[command(flatten)]
    out: OutArgs,
}

#[derive(Args)]
struct InterpolateArgs {
    #[command(flatten)]
    gen_args: GenArgs,
    /// Number of frames, both ends included.
    #[arg(long, default_value_t = 8)]
    frames: usize,
    /// Start image (PNG/JPEG; encoded to its latent). Give --from and --to, or --from-seed and --to-seed.
    #[arg(long, requires = "to", conflicts_with_all = ["from_seed", "to_seed"])]
    from: Option<PathBuf>,
    #[arg(long, requires = "from")]
    to: Option<PathBuf>,
    /// Start seed: walk between the latent noises of two seeds (any model).
    #[arg(long, requires = "to_seed")]
    from_seed: Option<u64>,
    #[arg(long, requires = "from_seed")]
    to_seed: Option<u64>,
    /// Path between two latents: linear or spherical.
    #[arg(long, value_enum, default_value_t = InterpMode::Linear)]
    mode: InterpMode,
    #[command(flatten)]
    out: OutArgs,
}

#[derive(Args)]
struct EvalArgs {
    #[arg(long)]
    model: PathBuf,
    /// The data the model was trained on: its held-out split is the reference, its training
    /// split the memorisation check.
    #[command(flatten)]
    data: DataArgs,
    /// Samples to draw (default: as many as held-out images).
    #[arg(long)]
    count: Option<usize>,
    /// Solver steps; a comma list sweeps them (e.g. 1,2,4,8,16,32).
    #[arg(long, default_value = "4")]
    steps: String,
    /// Solvers; a comma list sweeps them (euler,midpoint,heun,rk4).
    #[arg(long, default_value = "midpoint")]
    solver: String,
    /// Sampling seeds; a comma list (e.g. 0,1,2) draws one sample set per seed and reports each
    /// metric as mean ± standard deviation over them. With a few hundred samples the draw alone
    /// moves SWD and KID by more than many differences between models.
    #[arg(long, default_value = "0")]
    seed: String,
    /// Also write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where LeDiFlow's latents come from: `flow` (the latent flow, as in sampling) or `train`
    /// (the encoder's means of training tiles spread over the split: a diagnostic that takes
    /// the latent flow out of the measurement).
    #[arg(long, default_value = "flow")]
    latents: String,
    /// LeDiFlow prior noise scales; a comma list sweeps them (0 = start from the prior mean;
    /// ignored by Gaussian-prior models).
    #[arg(long, default_value = "1")]
    prior_scale: String,
    /// Timestep shifts of the solver grid; a comma list sweeps them (1 = equal steps; > 1
    /// shorter steps near the prior; `model` = the model file's recommendation, else 1).
    #[arg(long, default_value = "model")]
    time_shift: String,
    /// Midpoint steps of LeDiFlow's latent flow (ignored by Gaussian-prior models).
    #[arg(long, default_value_t = 16)]
    latent_steps: usize,
}

#[derive(Args)]
struct RetrainLatentArgs {
    #[arg(long)]
    model: PathBuf,
    /// The data the model was trained on (its training split is used).
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, default_value_t = 20_000)]
    steps: usize,
    #[arg(long, default_value_t = 256)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Linear decay of the learning rate to 0 over the last this many steps (a cool-down;
    /// 0 = constant after the warm-up).
    #[arg(long, default_value_t = 0)]
    decay_steps: usize,
    /// Decoupled (AdamW) weight decay of the latent flow's weight matrices (0 = off).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Hidden width of the new latent flow (default: the model's own).
    #[arg(long)]
    hidden: Option<usize>,
    /// Residual blocks of the new latent flow (default: the model's own).
    #[arg(long)]
    blocks: Option<usize>,
    /// Latents to imitate: `mean` (the encoder's posterior means, as `train` does) or `sample`
    /// (a fresh posterior draw mu + sigma * eps for every step: noisier targets, a smoother
    /// latent distribution).
    #[arg(long, default_value = "mean")]
    target: String,
    /// Also imitate the latents of the training images' horizontal mirrors (twice the
    /// latents; for models whose auxiliary model and image flow were trained with `--hflip`).
    #[arg(long)]
    hflip: bool,
    /// Every this many steps, score the EMA weights by their flow-matching loss on latents
    /// they never trained on (the data's validation split, and the `--holdout-every` part) and
    /// on as many training latents, with fixed draws (0 = never). The training loss keeps
    /// falling while the flow memorises its 5000-odd latents; the held-out loss turns up.
    #[arg(long, default_value_t = 500)]
    monitor_every: usize,
    /// Also leave every this many-th training image out of the latent flow's training and
    /// score the flow on its latents (0 = none). Choosing the step count by this loss never
    /// looks at the validation split, which `eval` scores.
    #[arg(long, default_value_t = 0)]
    holdout_every: usize,
    /// Write the EMA weights of the monitor point with the lowest held-out loss (the
    /// `--holdout-every` part if given, else the validation split) instead of the last ones:
    /// early stopping.
    #[arg(long)]
    keep_best: bool,
    /// CSV file for the monitor rows (step, mean training loss since the last row, probe losses).
    #[arg(long)]
    log: Option<PathBuf>,
    /// The model file to write (never the input file in place).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum InterpMode {
    Linear,
    Spherical,
}

#[derive(Args)]
struct InpaintArgs {
    #[command(flatten)]
    gen_args: GenArgs,
    /// The image to complete (PNG/JPEG, cropped and resized to the model size).
    #[arg(long)]
    image: PathBuf,
    /// Mask image of the same framing: dark (< 128) = generate, light = keep.
    #[arg(long, conflicts_with = "region")]
    mask: Option<PathBuf>,
    /// Rectangle to generate instead of a mask: x,y,w,h in model pixels.
    #[arg(long)]
    region: Option<String>,
    /// Number of different completions (completion i draws its noise from stream (seed, i)).
    #[arg(long, default_value_t = 8)]
    count: usize,
    #[command(flatten)]
    out: OutArgs,
}

fn set_path(v: &mut serde_json::Value, key: &str, raw: &str) -> Result<(), String> {
    let mut cur = v;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        let obj =
            cur.as_object_mut().ok_or_else(|| format!("--set {key}: '{}' is not a section", parts[..i].join(".")))?;
        if !obj.contains_key(*p) {
            let known: Vec<&String> = obj.keys().collect();
            return Err(format!("--set {key}: unknown key '{p}' (known here: {known:?})"));
        }
        cur = obj.get_mut(*p).unwrap();
    }
    *cur = serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.to_string()));
    Ok(())
}

fn train(args: TrainArgs) -> Result<(), String> {
    let started = std::time::Instant::now();
    let deadline = match args.time_limit {
        Some(t) if !(t.is_finite() && t >= 0.0) => {
            return Err(format!("--time-limit must be a number of seconds >= 0, got {t}"));
        }
        Some(t) => Some(started + std::time::Duration::from_secs_f64(t.min(1e9))),
        None => None,
    };
    let prior = args.prior.map(|p| match p {
        PriorArg::Learned => PriorKind::Learned,
        PriorArg::Gaussian => PriorKind::Gaussian,
    });
    let (model, init) = match &args.init {
        None => {
            let preset = args.preset.as_deref().unwrap_or("small");
            let prior = prior.unwrap_or(PriorKind::Learned);
            (ModelConfig::preset(preset, args.data.channels, args.data.size, prior).map_err(|e| e.to_string())?, None)
        }
        Some(path) => {
            // The finished run would overwrite its own init file, and `--resume` to extend the
            // run would then refuse it as changed.
            if same_file(path, &args.out) {
                return Err("--out must differ from --init".into());
            }
            let (mut init, meta) = InitFrom::read(path).map_err(|e| e.to_string())?;
            init.fresh_velocity = args.fresh_velocity;
            init.fresh_latent = args.fresh_latent;
            let model = meta.config;
            if prior.is_some_and(|p| p != model.prior) {
                return Err(format!(
                    "--init: {} has a {:?} prior; a fine-tuning run keeps it (drop --prior)",
                    path.display(),
                    model.prior
                ));
            }
            if args.fresh_latent && model.prior != PriorKind::Learned {
                return Err(format!("--fresh-latent: {} has a Gaussian prior, with no latent flow", path.display()));
            }
            let (s, c) = (model.image.size, model.image.channels);
            if (c, s) != (args.data.channels, args.data.size) {
                return Err(format!(
                    "--init: {} makes {s}x{s} images with {c} channels: pass --size {s} --channels {c}",
                    path.display()
                ));
            }
            (model, Some(init))
        }
    };
    let train = TrainConfig { batch_size: args.batch, seed: args.seed, ..TrainConfig::default() };
    let mut mv = serde_json::to_value(&model).unwrap();
    let mut tv = serde_json::to_value(&train).unwrap();
    for o in &args.overrides {
        let (k, v) = o.split_once('=').ok_or_else(|| format!("--set expects KEY=VALUE, got '{o}'"))?;
        match k.strip_prefix("train.") {
            Some(tk) => set_path(&mut tv, tk, v)?,
            None if init.is_some() && !k.starts_with("dit.") => {
                return Err(format!(
                    "--set {k}: a fine-tuning run (--init) keeps the model file's network config \
                     (only dit.* may change: a new velocity network, trained from scratch)"
                ));
            }
            None => set_path(&mut mv, k, v)?,
        }
    }
    let model: ModelConfig = serde_json::from_value(mv).map_err(|e| format!("model config: {e}"))?;
    let train: TrainConfig = serde_json::from_value(tv).map_err(|e| format!("training config: {e}"))?;
    model.validate().map_err(|e| e.to_string())?;
    let device = lediflow::Device::parse(&args.device).map_err(|e| e.to_string())?;
    // Fail before loading data or touching the run folder.
    device.check().map_err(|e| e.to_string())?;
    let (all, desc) = args.data.load().map_err(|e| e.to_string())?;
    let (train_set, val_set) = all.split(args.data.val_every);
    eprintln!("data: {} images ({} for training, {} held out)", all.len(), train_set.len(), val_set.len());
    let spec = RunSpec {
        model,
        train,
        steps: StageSteps { aux: args.steps_aux, latent: args.steps_latent, fm: args.steps_fm },
        hflip: args.hflip,
        checkpoint_every: args.checkpoint_every,
        data: desc,
        init,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    ctrlc::set_handler(move || {
        if s2.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: exiting without a checkpoint");
            // A model or checkpoint write in progress leaves no `.NAME.PID.tmp` behind.
            lediflow::checkpoint::remove_pending_temp_files();
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: saving a checkpoint, then stopping (again to exit at once)");
    })
    .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>6} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} ETA {eta} {msg}",
        )
        .unwrap(),
    );
    let b1 = bar.clone();
    let b2 = bar.clone();
    // Images (or, for a latent flow on stored latents, latents) per step.
    let (batch, latent_batch) = (spec.train.batch_size, spec.train.latent_batch);
    // Without a terminal (a background run with a log file) the bar is hidden: print lines.
    let plain = !std::io::stderr().is_terminal();
    let totals = spec.steps;
    let b3 = bar.clone();
    let control = RunControl {
        stop: Some(stop.clone()),
        stop_after: None,
        deadline,
        // The latent flow is scored on the validation split's latents as it trains.
        held_out: (!val_set.is_empty()).then(|| Arc::new(val_set.clone())),
        on_held_out: Some(Box::new(move |step, loss| {
            let line = format!("latent step {step}: flow loss on the held-out images' latents {loss:.4}");
            // A hidden bar prints nothing.
            if plain { eprintln!("{line}") } else { b3.println(line) }
        })),
        on_stage: Some(Box::new(move |stage: Stage, done, total| {
            b1.reset();
            b1.set_prefix(stage.name());
            b1.set_length(total as u64);
            b1.set_position(done as u64);
            // The jump to a resumed stage's step is not progress: record it, then restart the
            // rate estimate so steps/s and the ETA count only steps run in this call.
            b1.tick();
            b1.reset_eta();
        })),
        on_step: Some(Box::new(move |l, t| {
            b2.inc(1);
            if plain && l.step % 50 == 0 {
                let total = match l.stage {
                    Stage::Aux => totals.aux,
                    Stage::Latent => totals.latent,
                    Stage::Fm => totals.fm,
                };
                // Only the auxiliary stage has a reconstruction error to show.
                let mse = if l.stage == Stage::Aux { format!(" mse {:.5}", l.mse) } else { String::new() };
                eprintln!(
                    "{} step {}/{} loss {:.5}{mse} | {:.1} steps/s | elapsed {:.0}s | stage ETA {:.0}s",
                    l.stage.name(),
                    l.step,
                    total,
                    l.loss,
                    b2.per_sec(),
                    t,
                    (total - l.step) as f64 / b2.per_sec().max(1e-9)
                );
            }
            if l.step % 10 == 0 {
                let rate = b2.per_sec() * batch as f64;
                match l.stage {
                    Stage::Aux => b2.set_message(format!("loss {:.4} mse {:.4} | {rate:.0} img/s", l.loss, l.mse)),
                    Stage::Latent if latent_batch > 0 => b2.set_message(format!(
                        "loss {:.4} | {:.0} latents/s",
                        l.loss,
                        b2.per_sec() * latent_batch as f64
                    )),
                    _ => b2.set_message(format!("loss {:.4} | {rate:.0} img/s", l.loss)),
                }
            }
        })),
    };
    // One training loop, generic over the backend.
    macro_rules! run_on {
        ($backend:ty, $device:expr) => {
            lediflow::train::run::run::<$backend>(
                &spec,
                &train_set,
                &args.run_dir,
                &args.out,
                args.resume,
                control,
                $device,
            )
        };
    }
    let out = match device {
        lediflow::Device::Cpu => run_on!(CpuTrainBackend, &Default::default()),
        #[cfg(feature = "cuda")]
        lediflow::Device::Cuda(index) => {
            lediflow::device::cuda_device(index).and_then(|dev| run_on!(lediflow::device::CudaTrainBackend, &dev))
        }
        #[cfg(not(feature = "cuda"))]
        lediflow::Device::Cuda(_) => {
            let _ = control;
            lediflow::device::cuda_device_count()
                .and_then(|_| Err(lediflow::Error::Internal("CUDA reported in a build without it".into())))
        }
    }
    .map_err(|e| e.to_string())?;
    bar.finish();
    match out {
        RunOutcome::Finished { model, seconds } => {
            eprintln!("wrote {} after {:.0} s of training", model.display(), seconds);
            Ok(())
        }
        RunOutcome::Interrupted { stage, step } => {
            // No signal came: the time limit stopped the run.
            let timed_out = !stop.load(Ordering::SeqCst);
            let why = if timed_out { "time limit reached: " } else { "" };
            eprintln!(
                "{why}stopped in stage {} at step {step}; continue with the same command plus --resume",
                stage.name()
            );
            std::process::exit(if timed_out { 124 } else { 130 });
        }
    }
}

fn report(what: &str, n: usize, opts: &SampleOptions, t: std::time::Instant) {
    eprintln!(
        "{n} {what}, {} {} steps ({} NFE), {:.2} s",
        opts.steps,
        opts.solver,
        opts.steps * opts.solver.evals_per_step(),
        t.elapsed().as_secs_f64()
    );
}

fn sample(a: SampleArgs) -> Result<(), String> {
    a.out.check()?;
    let (p, opts) = a.gen_args.load()?;
    let t = std::time::Instant::now();
    let images = p.sample(a.count, &opts).map_err(|e| e.to_string())?;
    report("images", a.count, &opts, t);
    a.out.write(&p, images, "sample", 8)
}

/// One image file as 8-bit pixels at the model's size.
fn image_pixels(p: &Model, path: &Path) -> Result<Vec<u8>, String> {
    let i = p.info();
    Ok(data::load_image(path, i.width, i.channels).map_err(|e| e.to_string())?.pixels)
}

fn interpolate(a: InterpolateArgs) -> Result<(), String> {
    a.out.check()?;
    let (p, opts) = a.gen_args.load()?;
    let t = std::time::Instant::now();
    let frames = match (&a.from, &a.to, a.from_seed, a.to_seed) {
        (Some(from), Some(to), _, _) => {
            let za = p.encode(&image_pixels(&p, from)?).map_err(|e| e.to_string())?;
            let zb = p.encode(&image_pixels(&p, to)?).map_err(|e| e.to_string())?;
            let mode = match a.mode {
                InterpMode::Linear => lediflow::Interpolation::Linear,
                InterpMode::Spherical => lediflow::Interpolation::Spherical,
            };
            p.interpolate(&za, &zb, a.frames, mode, &opts)
        }
        (_, _, Some(sa), Some(sb)) => p.interpolate_seeds(sa, sb, a.frames, &opts),
        _ => return Err("give --from and --to (images), or --from-seed and --to-seed".into()),
    }
    .map_err(|e| e.to_string())?;
    report("frames", a.frames, &opts, t);
    a.out.write(&p, frames, "frame", a.frames)
}

/// "x,y,w,h" -> a keep-mask (1 = keep) with the rectangle cleared.
/// Whether two paths name one file (the same path, or both existing and resolving alike).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// A --count the pipeline accepts, checked before anything of that size is allocated.
fn check_count(count: usize) -> Result<(), String> {
    let max = lediflow::pipeline::MAX_COUNT;
    if count == 0 || count > max {
        return Err(format!("--count must be in 1..={max}, got {count}"));
    }
    Ok(())
}

fn region_mask(spec: &str, size: usize) -> Result<Vec<u8>, String> {
    let v: Vec<usize> = spec
        .split(',')
        .map(|x| x.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("--region must be x,y,w,h (non-negative integers), got {spec:?}"))?;
    let [x, y, w, h] = v[..] else { return Err(format!("--region must have 4 numbers, got {spec:?}")) };
    // Subtractions, not x + w: huge numbers would wrap past the check.
    if w == 0 || h == 0 || x >= size || y >= size || w > size - x || h > size - y {
        return Err(format!("--region {spec} is empty or leaves the {size}x{size} image"));
    }
    let mut m = vec![1u8; size * size];
    for row in y..y + h {
        m[row * size + x..row * size + x + w].fill(0);
    }
    Ok(m)
}

fn inpaint(a: InpaintArgs) -> Result<(), String> {
    a.out.check()?;
    let (p, opts) = a.gen_args.load()?;
    let i = p.info();
    let s = i.width;
    let keep = match (&a.mask, &a.region) {
        (Some(path), _) => {
            let m = data::load_image(path, s, 1).map_err(|e| e.to_string())?;
            m.pixels.iter().map(|&v| u8::from(v >= 128)).collect()
        }
        (None, Some(spec)) => region_mask(spec, s)?,
        (None, None) => return Err("give --mask <image> or --region x,y,w,h".into()),
    };
    // Before the repeated image and masks are allocated (the pipeline checks it only then).
    check_count(a.count)?;
    let t = std::time::Instant::now();
    let image = image_pixels(&p, &a.image)?.repeat(a.count);
    let masks = keep.repeat(a.count);
    let filled = p.inpaint(&image, &masks, &opts).map_err(|e| e.to_string())?;
    report("completions", a.count, &opts, t);
    a.out.write(&p, filled, "inpaint", 8)
}

fn write_single(path: &Path, one: &Dataset) -> lediflow::Result<()> {
    let s = one.size as u32;
    let img = image::RgbaImage::from_fn(s, s, |x, y| {
        let p = (y * s + x) as usize * one.channels;
        let px = &one.pixels[p..p + one.channels];
        image::Rgba(match one.channels {
            4 => [px[0], px[1], px[2], px[3]],
            3 => [px[0], px[1], px[2], 255],
            _ => [px[0], px[0], px[0], 255],
        })
    });
    data::save_png(path, &img)
}

/// Loads a model and the data set it was trained on, checking that their image shapes agree.
fn model_and_data(model: &Path, data: &DataArgs) -> Result<(Pipeline<CpuBackend>, Dataset), String> {
    let p =
        Pipeline::<CpuBackend>::load(model, &Default::default()).map_err(|e| format!("{}: {e}", model.display()))?;
    let info = p.info();
    if (data.size, data.channels) != (info.width, info.channels) {
        return Err(format!(
            "the model makes {0}x{0}x{1} images: use --size {0} --channels {1}",
            info.width, info.channels
        ));
    }
    let (ds, _) = data.load().map_err(|e| e.to_string())?;
    Ok((p, ds))
}

/// A flag's comma-separated list of numbers ("1,2,4").
fn comma_list<T: std::str::FromStr>(spec: &str, flag: &str) -> Result<Vec<T>, String> {
    spec.split(',').map(|x| x.trim().parse().map_err(|_| format!("bad {flag} {x:?}"))).collect()
}

fn eval(a: EvalArgs) -> Result<(), String> {
    use lediflow::eval::{EvalConfig, Images, Report, evaluate};
    let (p, ds) = model_and_data(&a.model, &a.data)?;
    let info = p.info();
    let (train_set, held_out) = ds.split(a.data.val_every);
    if held_out.len() < 4 {
        return Err("the held-out split has fewer than 4 images: lower --val-every".into());
    }
    if train_set.len() < 2 {
        return Err("the training split has fewer than 2 images (memorisation is measured against it): \
                    raise --val-every"
            .into());
    }
    let as_images = |d: &Dataset| Images::from_u8(&d.pixels, d.len(), d.channels, d.size).map_err(|e| e.to_string());
    let (reference, train) = (as_images(&held_out)?, as_images(&train_set)?);
    let count = a.count.unwrap_or(held_out.len());
    check_count(count)?;
    let steps: Vec<usize> = comma_list(&a.steps, "--steps")?;
    let solvers: Vec<Solver> =
        a.solver.split(',').map(|x| Solver::parse(x.trim()).map_err(|e| e.to_string())).collect::<Result<_, _>>()?;
    let scales: Vec<f32> = comma_list(&a.prior_scale, "--prior-scale")?;
    let seeds: Vec<u64> = comma_list(&a.seed, "--seed")?;
    let shifts: Vec<f32> = if a.time_shift == "model" {
        vec![p.time_shift(&SampleOptions::default())]
    } else {
        comma_list(&a.time_shift, "--time-shift")?
    };
    // Every scale and shift checked before any sampling, not when its turn comes.
    for &prior_scale in &scales {
        SampleOptions { prior_scale, ..Default::default() }.validate().map_err(|e| e.to_string())?;
    }
    for &time_shift in &shifts {
        SampleOptions { time_shift: Some(time_shift), ..Default::default() }.validate().map_err(|e| e.to_string())?;
    }
    SampleOptions { latent_steps: a.latent_steps, ..Default::default() }.validate().map_err(|e| e.to_string())?;
    if info.prior == PriorKind::Gaussian && scales.len() > 1 {
        return Err("--prior-scale sweeps need a LeDiFlow model (a Gaussian prior ignores the scale)".into());
    }
    let train_latents = match a.latents.as_str() {
        "flow" => None,
        "train" => {
            // The encoder's means of `count` training tiles spread over the split.
            let mut picked = Vec::with_capacity(count * info.width * info.height * info.channels);
            for j in 0..count {
                picked.extend_from_slice(train_set.image(j * train_set.len() / count));
            }
            let x = lediflow::image::from_u8(&picked, count, info.channels, info.height, info.width, p.device())
                .map_err(|e| e.to_string())?;
            Some(p.encode(x).map_err(|e| e.to_string())?)
        }
        other => return Err(format!("--latents must be flow or train, got '{other}'")),
    };
    eprintln!(
        "reference: {} held-out images; memorisation against {} training images; {count} samples, seed {}{}",
        reference.count,
        train.count,
        a.seed,
        if seeds.len() > 1 { " (metrics: mean ± sd over the seeds' sample sets)" } else { "" }
    );
    println!(
        "| solver | steps | NFE | SWD x1e3 | KID pixels x1e3 | KID random-conv x1e3 | precision | recall | nearest train (RMS) | prior scale | time shift |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for (&prior_scale, &time_shift) in scales.iter().flat_map(|s| shifts.iter().map(move |t| (s, t))) {
        for solver in &solvers {
            for &st in &steps {
                let mut reports = Vec::with_capacity(seeds.len());
                for &seed in &seeds {
                    let opts = SampleOptions {
                        seed,
                        steps: st,
                        solver: *solver,
                        prior_scale,
                        time_shift: Some(time_shift),
                        latent_steps: a.latent_steps,
                        ..Default::default()
                    };
                    let t = std::time::Instant::now();
                    let mut pixels = Vec::with_capacity(count * info.width * info.height * info.channels);
                    for start in (0..count).step_by(64) {
                        let n = 64.min(count - start);
                        let o = SampleOptions { first_index: start as u64, ..opts.clone() };
                        let images = match &train_latents {
                            None => p.sample(n, &o),
                            Some(z) => p.generate(z.clone().slice([start..start + n]), &o),
                        };
                        pixels.extend(
                            lediflow::image::to_u8(images.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?,
                        );
                    }
                    let sampled = t.elapsed().as_secs_f64();
                    let samples =
                        Images::from_u8(&pixels, count, info.channels, info.width).map_err(|e| e.to_string())?;
                    reports.push(
                        evaluate(&samples, &reference, Some(&train), &EvalConfig::default())
                            .map_err(|e| e.to_string())?,
                    );
                    eprintln!(
                        "  {solver} {st} steps, seed {seed}: sampling {sampled:.1} s, metrics {:.1} s",
                        t.elapsed().as_secs_f64() - sampled
                    );
                }
                let (r, sd) = Report::mean_and_sd(&reports).map_err(|e| e.to_string())?;
                let nfe = st * solver.evals_per_step();
                // One seed: plain values; several: mean ± sd.
                let cell = |m: f64, s: f64, digits: usize| {
                    if seeds.len() > 1 { format!("{m:.digits$} ± {s:.digits$}") } else { format!("{m:.digits$}") }
                };
                println!(
                    "| {solver} | {st} | {nfe} | {} | {} | {} | {} | {} | {} | {prior_scale} | {time_shift} |",
                    cell(r.swd, sd.swd, 2),
                    cell(r.kid_pixels, sd.kid_pixels, 3),
                    cell(r.kid_features, sd.kid_features, 3),
                    cell(r.precision, sd.precision, 3),
                    cell(r.recall, sd.recall, 3),
                    cell(r.nearest_train.unwrap_or(f64::NAN), sd.nearest_train.unwrap_or(f64::NAN), 4)
                );
                let mut row = serde_json::json!({"solver": solver.name(), "steps": st, "nfe": nfe,
                    "prior_scale": prior_scale, "time_shift": time_shift, "report": r});
                if seeds.len() > 1 {
                    row["sd"] = serde_json::json!(sd);
                    row["per_seed"] = serde_json::json!(
                        seeds
                            .iter()
                            .zip(&reports)
                            .map(|(s, r)| serde_json::json!({"seed": s, "report": r}))
                            .collect::<Vec<_>>()
                    );
                }
                rows.push(row);
            }
        }
    }
    // The floor: real training tiles (as many as samples, spread over the training split)
    // scored exactly like samples. Finite-sample metrics are not 0 even here; a model at this
    // row is as close to the held-out tiles as the training data itself.
    let k = count.min(train.count);
    let mut subset = Dataset::new(held_out.size, held_out.channels);
    for j in 0..k {
        subset.pixels.extend_from_slice(train_set.image(j * train_set.len() / k));
    }
    let subset = Images::from_u8(&subset.pixels, k, info.channels, info.width).map_err(|e| e.to_string())?;
    let real = evaluate(&subset, &reference, None, &EvalConfig::default()).map_err(|e| e.to_string())?;
    // The memorisation reference: held-out real images against the training split.
    let floor = lediflow::eval::nearest_train_distance(&reference, &train).map_err(|e| e.to_string())?;
    println!(
        "| real training tiles ({k}) | - | - | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | {floor:.4} (held-out) | - | - |",
        real.swd, real.kid_pixels, real.kid_features, real.precision, real.recall
    );
    println!(
        "\nheld-out real images: nearest training image at RMS {floor:.4} (samples far below this copy the training set)"
    );
    if let Some(path) = &a.json {
        let doc = serde_json::json!({"model": a.model.display().to_string(), "count": count, "seeds": seeds,
            "latents": a.latents, "latent_steps": a.latent_steps,
            "reference_images": reference.count, "held_out_nearest_train": floor,
            "real_floor": {"images": k, "report": real}, "results": rows});
        lediflow::checkpoint::write_atomic(path, serde_json::to_string_pretty(&doc).unwrap().as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn retrain_latent(a: RetrainLatentArgs) -> Result<(), String> {
    use burn::tensor::{Int, Tensor};
    use lediflow::train::{Batcher, LatentProbe, LatentStage, OptimConfig};
    use std::io::Write;
    if same_file(&a.model, &a.out) {
        return Err("--out must differ from --model".into());
    }
    if a.steps == 0 || a.batch == 0 {
        return Err("--steps and --batch must be at least 1".into());
    }
    if a.decay_steps > a.steps {
        return Err(format!("--decay-steps ({}) cannot exceed --steps ({})", a.decay_steps, a.steps));
    }
    if (a.keep_best || a.log.is_some()) && a.monitor_every == 0 {
        return Err("--keep-best and --log need --monitor-every above 0".into());
    }
    if a.holdout_every == 1 {
        return Err("--holdout-every 1 would leave no training image: use 0 (none) or at least 2".into());
    }
    let sample_target = match a.target.as_str() {
        "mean" => false,
        "sample" => true,
        other => return Err(format!("--target must be mean or sample, got {other:?}")),
    };
    let (p, ds) = model_and_data(&a.model, &a.data)?;
    let encoder = p.networks().encoder.clone().ok_or("this model has a Gaussian prior: no latent flow to train")?;
    let (train_set, val_set) = ds.split(a.data.val_every);
    // The hold-out part comes out of the training split before mirroring, so no mirror of a
    // held-out image is trained on.
    let (train_set, stop_set) = train_set.split(a.holdout_every);
    if train_set.is_empty() {
        return Err("the training split is empty: raise --val-every".into());
    }
    let train_set = if a.hflip { train_set.with_mirrors() } else { train_set };
    let t0 = std::time::Instant::now();
    // The frozen encoder's posterior of a set of images.
    let encode = |set: &lediflow::data::Dataset| {
        lediflow::train::encode_dataset(&encoder, set, p.device()).map_err(|e| e.to_string())
    };
    let (z_all, logvar_all) = encode(&train_set)?;
    let sigma_all = (logvar_all * 0.5).exp();
    let n = z_all.dims()[0];
    let mean_sigma: f32 = sigma_all.clone().mean().into_scalar();
    let spread: f32 = z_all.clone().var(0).sqrt().mean().into_scalar();
    eprintln!(
        "encoded {n} training images in {:.1} s: posterior sigma {mean_sigma:.3} on average, spread of the means {spread:.3}",
        t0.elapsed().as_secs_f64()
    );
    let train = TrainConfig {
        batch_size: a.batch,
        seed: a.seed,
        latent: OptimConfig {
            lr: a.lr,
            decay_steps: a.decay_steps,
            weight_decay: a.weight_decay,
            ..OptimConfig::default()
        },
        ..TrainConfig::default()
    };
    train.latent.validate().map_err(|e| format!("--lr/--weight-decay: {e}"))?;
    // Probes with fixed draws (the same for every monitor row and every seed of the run, so
    // that two runs' rows compare): held-out latents, and as many training latents, spread
    // over the set.
    let mut probes: Vec<(&str, LatentProbe<CpuBackend>)> = Vec::new();
    if a.monitor_every > 0 {
        let probe = |z: Tensor<CpuBackend, 2>| LatentProbe::held_out(z, train.time_sampling);
        let m = if val_set.is_empty() { stop_set.len().max(512) } else { val_set.len() }.min(n);
        let idx: Vec<i64> = (0..m).map(|j| (j * n / m) as i64).collect();
        let idx = Tensor::<CpuBackend, 1, Int>::from_ints(idx.as_slice(), p.device());
        probes.push(("train", probe(z_all.clone().select(0, idx)).map_err(|e| e.to_string())?));
        if !val_set.is_empty() {
            probes.push(("validation", probe(encode(&val_set)?.0).map_err(|e| e.to_string())?));
        }
        if !stop_set.is_empty() {
            probes.push(("holdout", probe(encode(&stop_set)?.0).map_err(|e| e.to_string())?));
        }
        if a.keep_best && probes.len() == 1 {
            return Err(
                "--keep-best needs held-out latents: the validation split and --holdout-every are both empty".into()
            );
        }
        eprintln!(
            "monitor every {} steps: {}",
            a.monitor_every,
            probes
                .iter()
                .map(|(k, pr)| format!("{k} {} latents", pr.len() / LatentProbe::<CpuBackend>::DRAWS))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut log = match &a.log {
        Some(path) => {
            let mut f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let head: Vec<String> = probes.iter().map(|(k, _)| format!("{k}_probe")).collect();
            writeln!(f, "step,train_loss,{}", head.join(",")).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(f)
        }
        None => None,
    };
    // The latent flow starts afresh, so its size may change; nothing else reads its weights.
    let mut cfg = p.config().clone();
    cfg.latent.hidden = a.hidden.unwrap_or(cfg.latent.hidden);
    cfg.latent.blocks = a.blocks.unwrap_or(cfg.latent.blocks);
    cfg.validate().map_err(|e| e.to_string())?;
    let mut stage = LatentStage::<CpuTrainBackend>::new(&cfg, &train, encoder.clone(), &Default::default());
    stage.net.total_steps = a.steps;
    let mut batcher = Batcher::new(n, a.seed);
    let mut eps_rng = lediflow::rng::Rng::stream(a.seed, 0, lediflow::rng::Purpose::Training);
    let (mut recent, mut recent_n, mut last) = (0.0f64, 0usize, 0.0f64);
    let (mut best, mut curve) = (None::<(usize, f64, _)>, Vec::new());
    for step in 1..=a.steps {
        let idx: Vec<i64> = batcher.next_indices(a.batch).into_iter().map(|i| i as i64).collect();
        let idx = Tensor::<CpuBackend, 1, Int>::from_ints(idx.as_slice(), p.device());
        let mut z = z_all.clone().select(0, idx.clone());
        if sample_target {
            let shape = z.dims();
            let eps = burn::tensor::TensorData::new(eps_rng.normal_vec(shape[0] * shape[1]), shape);
            z = z + sigma_all.clone().select(0, idx) * Tensor::from_data(eps, p.device());
        }
        let loss = stage.step_latents(z) as f64;
        if !loss.is_finite() {
            return Err(format!("latent loss became {loss} at step {step}: lower --lr"));
        }
        recent += loss;
        recent_n += 1;
        let monitor = a.monitor_every > 0 && (step % a.monitor_every == 0 || step == a.steps);
        if step % 500 == 0 || step == a.steps || monitor {
            last = recent / recent_n as f64;
            let losses: Vec<f64> =
                if monitor { probes.iter().map(|(_, pr)| pr.loss(stage.net.ema())).collect() } else { vec![] };
            let shown: Vec<String> = probes.iter().zip(&losses).map(|((k, _), l)| format!(" | {k} {l:.4}")).collect();
            eprintln!(
                "latent step {step}/{} mean loss {last:.4}{} | {:.0} s",
                a.steps,
                shown.concat(),
                t0.elapsed().as_secs_f64()
            );
            if monitor {
                if let Some(f) = log.as_mut() {
                    let cols: Vec<String> = losses.iter().map(|l| format!("{l:.6}")).collect();
                    writeln!(f, "{step},{last:.6},{}", cols.join(",")).map_err(|e| format!("log: {e}"))?;
                }
                // The held-out loss early stopping watches: the hold-out part, else validation.
                if let Some(&held) = losses.last().filter(|_| probes.len() > 1) {
                    if best.as_ref().is_none_or(|b| held < b.1) {
                        best = Some((step, held, a.keep_best.then(|| stage.net.ema().clone())));
                    }
                }
                curve.push(serde_json::json!({"step": step, "train_loss": last, "probes": probes.iter().map(|(k, _)| *k).zip(&losses).map(|(k, l)| (k.to_string(), serde_json::json!(l))).collect::<serde_json::Map<_, _>>()}));
            }
            recent = 0.0;
            recent_n = 0;
        }
    }
    // The file keeps at most about 200 monitor rows (a thinned curve; --log has all of them).
    let thin = curve.len().div_ceil(200).max(1);
    let last_row = curve.len().saturating_sub(1);
    let curve: Vec<_> =
        curve.into_iter().enumerate().filter(|(i, _)| i % thin == 0 || *i == last_row).map(|(_, r)| r).collect();
    let mut nets = p.networks().clone();
    let best_json = best.as_ref().map(|b| serde_json::json!({"step": b.0, "loss": b.1}));
    let (kept_step, latent) = match best {
        Some((step, held, Some(net))) => {
            eprintln!("keeping the EMA weights of step {step} (lowest held-out loss, {held:.4})");
            (step, net)
        }
        _ => (a.steps, stage.net.ema().clone()),
    };
    nets.latent = Some(latent);
    let mut meta = p.meta().clone();
    meta.config = cfg.clone();
    if !meta.provenance.training.is_object() {
        meta.provenance.training = serde_json::json!({ "original": meta.provenance.training });
    }
    meta.provenance.training["latent_retrained"] = serde_json::json!({
        "from": a.model.display().to_string(), "steps": a.steps, "kept_step": kept_step, "batch": a.batch, "lr": a.lr,
        "decay_steps": a.decay_steps, "weight_decay": a.weight_decay, "seed": a.seed, "images": n, "hflip": a.hflip, "final_loss_mean_of_last_500_steps": last,
        "hidden": cfg.latent.hidden, "blocks": cfg.latent.blocks, "target": a.target,
        "holdout_every": a.holdout_every, "best_held_out": best_json,
        "monitor": curve, "wall_seconds": t0.elapsed().as_secs_f64(),
    });
    lediflow::checkpoint::save(&a.out, &nets, &meta).map_err(|e| e.to_string())?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

fn info(model: &Path) -> Result<(), String> {
    let bytes = std::fs::read(model).map_err(|e| format!("{}: {e}", model.display()))?;
    let meta = lediflow::checkpoint::read_meta(&bytes).map_err(|e| e.to_string())?;
    let p = Pipeline::<CpuBackend>::from_bytes(&bytes, &Default::default()).map_err(|e| e.to_string())?;
    let i = p.info();
    println!("file:           {}", model.display());
    println!("format version: {}", meta.format_version);
    println!("prior:          {}", i.prior.as_str());
    println!("image:          {}x{}, {} channels", i.width, i.height, i.channels);
    println!("latent dim:     {}", i.latent_dim);
    println!("parameters:     {}", i.parameters);
    println!("written by:     lediflow {}", meta.provenance.library_version);
    match meta.sampling.time_shift {
        Some(t) => println!("time shift:     {t} (recommended; sampling uses it unless given --time-shift)"),
        None => println!("time shift:     1 (no recommendation: equal steps)"),
    }
    println!("metadata:\n{}", serde_json::to_string_pretty(&meta).unwrap());
    Ok(())
}

/// Tells glibc's malloc to keep freed memory for reuse instead of returning it to the kernel.
///
/// Every tensor op allocates its output afresh, and the buffers of a training step (up to a few
/// MiB each) are above glibc's default mmap threshold or get trimmed off the heap top, so each
/// step mapped and zero-faulted the same pages again: 2.2 million page faults and ~18% of the
/// wall time in a 60-step FM run (BENCHMARKS.md). Only the tool does this; the library never
/// changes its host's allocator settings. An explicit `MALLOC_*_` or `GLIBC_TUNABLES`
/// environment setting wins.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let user_set = std::env::vars_os().any(|(k, _)| {
            let k = k.to_string_lossy();
            k == "GLIBC_TUNABLES" || (k.starts_with("MALLOC_") && k.ends_with('_'))
        });
        if !user_set {
            // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
            unsafe {
                // 32 MiB is the largest mmap threshold glibc accepts on 64-bit targets.
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
                libc::mallopt(libc::M_TOP_PAD, 64 << 20);
            }
        }
    }
}

/// Writes a model file atomically, with f16 or f32 tensors.
fn write_model(
    out: &Path,
    nets: &lediflow::model::Networks<CpuBackend>,
    meta: &lediflow::checkpoint::ModelMeta,
    fp16: bool,
) -> Result<(), String> {
    let dtype = if fp16 { lediflow::checkpoint::StoreDtype::F16 } else { lediflow::checkpoint::StoreDtype::F32 };
    let bytes = lediflow::checkpoint::to_bytes_as(nets, meta, dtype).map_err(|e| e.to_string())?;
    lediflow::checkpoint::write_atomic(out, &bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(())
}

fn main() {
    // Rust ignores SIGPIPE, so `lediflow info ... | head` made println! panic once the reader
    // closed the pipe. A command-line tool should end quietly there, like other Unix tools.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    keep_freed_memory();
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Train(a) => train(a),
        Command::Sample(a) => sample(a),
        Command::Interpolate(a) => interpolate(a),
        Command::Inpaint(a) => inpaint(a),
        Command::Eval(a) => eval(a),
        Command::Bench(a) => bench::bench(a),
        Command::RetrainLatent(a) => retrain_latent(a),
        Command::Info { model } => info(&model),
        Command::Convert { model, out, fp16, time_shift } => (|| {
            let mut p = Pipeline::<CpuBackend>::load(&model, &Default::default())
                .map_err(|e| format!("{}: {e}", model.display()))?;
            if let Some(t) = time_shift {
                let sampling =
                    lediflow::checkpoint::SamplingDefaults { time_shift: Some(t), ..p.meta().sampling.clone() };
                p.set_sampling_defaults(sampling).map_err(|e| format!("--time-shift: {e}"))?;
            }
            write_model(&out, p.networks(), p.meta(), fp16)
        })(),
        Command::Export { run_dir, out, fp16 } => (|| {
            let (nets, meta, at) = lediflow::train::run::export::<CpuBackend>(&run_dir, &Default::default())
                .map_err(|e| format!("{}: {e}", run_dir.display()))?;
            write_model(&out, &nets, &meta, fp16)?;
            eprintln!("(image flow at step {} of {}, EMA weights)", at.step, at.steps);
            Ok(())
        })(),
        Command::Data { data: d, sheet, max, columns } => (|| {
            let (ds, _) = d.load().map_err(|e| e.to_string())?;
            let (tr, va) = ds.split(d.val_every);
            eprintln!("{} images ({} training, {} validation)", ds.len(), tr.len(), va.len());
            let mut shown = Dataset::new(ds.size, ds.channels);
            let n = ds.len().min(max);
            // Spread the sheet over the whole set.
            for k in 0..n {
                let i = k * ds.len() / n;
                shown.pixels.extend_from_slice(ds.image(i));
                shown.sources.push(ds.sources[i].clone());
            }
            data::write_grid(&sheet, &shown, columns, true).map_err(|e| e.to_string())?;
            eprintln!("wrote {}", sheet.display());
            Ok(())
        })(),
    };
    if let Err(e) = r {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
