//! `train`: the one training loop ([`lediflow::train::run`]) with the CLI's progress bar,
//! Ctrl-C/SIGTERM checkpoints and `--time-limit`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use lediflow::train::run::{InitFrom, RunControl, RunOutcome, RunSpec, Stage};
use lediflow::train::{StageSteps, TrainConfig};
use lediflow::{CpuTrainBackend, ModelConfig, PriorKind};

use crate::args::{DataArgs, same_file};

#[derive(Clone, Copy, ValueEnum)]
pub enum PriorArg {
    Learned,
    Gaussian,
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Network size preset: tiny, small, base [default: small].
    #[arg(long, conflicts_with = "init")]
    pub preset: Option<String>,
    /// learned = LeDiFlow; gaussian = the baseline (same FM network and budget, x0 ~ N(0, I))
    /// [default: learned, or the --init file's].
    #[arg(long, value_enum)]
    pub prior: Option<PriorArg>,
    /// Fine-tune: start every stage from this model file's networks instead of random weights
    /// (network config and prior come from the file; --size and --channels must match it). A
    /// stage given 0 steps keeps the file's network unchanged, e.g. --steps-aux 0
    /// --steps-latent 0 trains only the image flow on new data. `--set dit.KEY=VALUE` gives the
    /// image flow another shape: it then trains from random weights on the file's prior
    /// (`--set dit.pixel_head=N` alone adds a per-pixel head to the file's image flow instead).
    #[arg(long, value_name = "MODEL")]
    pub init: Option<PathBuf>,
    /// With --init: train the image flow from random weights even if its shape is the file's
    /// (or the file's plus a new per-pixel head, which otherwise keeps the file's weights).
    #[arg(long, requires = "init")]
    pub fresh_velocity: bool,
    /// With --init: train the latent flow from random weights on the file's encoder (with
    /// --steps-latent N; --steps-aux 0 --steps-fm 0 retrains only the latent flow), which may
    /// take another shape: --set latent.hidden=N --set latent.blocks=N.
    #[arg(long, requires = "init")]
    pub fresh_latent: bool,
    /// Override any config field: --set dit.depth=6 --set train.beta_kl=0.01 --set train.fm.lr=2e-4
    /// --set train.fm.decay_steps=4000 (linear learning-rate decay to 0 over a stage's last steps;
    /// keys under `train.` address the training config, the rest the model config).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Images per step of the auxiliary model and the image flow. The latent flow steps on
    /// `train.latent_batch` stored latents (default 256; the encoder's latents of the training
    /// images, computed once when that stage starts).
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    pub batch: usize,
    /// Steps of the auxiliary encoder/decoder (LeDiFlow only; 0 with --init keeps the file's).
    #[arg(long, default_value_t = 20_000)]
    pub steps_aux: usize,
    /// Steps of the latent flow (LeDiFlow only; 0 with --init keeps the file's).
    #[arg(long, default_value_t = 30_000)]
    pub steps_latent: usize,
    /// Steps of the image flow.
    #[arg(long, default_value_t = 60_000)]
    pub steps_fm: usize,
    /// Random horizontal flips (the latent flow also learns the mirrors' latents).
    #[arg(long)]
    pub hflip: bool,
    /// Train a class-conditional model on the data's classes: the subfolders of --data (one
    /// per class), or the tile loaders' labels (--dcss, --angband: floor, wall, feature, item,
    /// creature). `train.class_dropout` (default 0.1) of the images train the unconditional
    /// branch that guidance needs. With --init an unconditional file gains the classes.
    #[arg(long)]
    pub classes: bool,
    /// With --classes: condition a LeDiFlow model's image flow on the class as well (its latent
    /// flow always is; a Gaussian-prior model's image flow always is).
    #[arg(long, requires = "classes")]
    pub class_image_flow: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: usize,
    /// Folder for checkpoints and losses.csv.
    #[arg(long)]
    pub run_dir: PathBuf,
    /// The model file to write at the end.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the run folder's last checkpoint (same command line; the current and later
    /// stages may get more steps, which also extends a finished run).
    #[arg(long)]
    pub resume: bool,
    /// cpu, cuda or cuda:N (CUDA needs a build with --features cuda and an NVIDIA driver).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Wall-clock budget for this invocation, in seconds: at the first step after it (counted
    /// from the start, data loading included) save a checkpoint and exit with status 124;
    /// --resume continues. For time-limited batch slots.
    #[arg(long, value_name = "SECONDS")]
    pub time_limit: Option<f64>,
}

pub fn set_path(v: &mut serde_json::Value, key: &str, raw: &str) -> Result<(), String> {
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

pub fn train(args: TrainArgs) -> Result<(), String> {
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
            let (mut init, meta) = InitFrom::read(path).map_err(flag_hints)?;
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
            None if init.is_some() && !k.starts_with("dit.") && !(args.fresh_latent && k.starts_with("latent.")) => {
                return Err(format!(
                    "--set {k}: a fine-tuning run (--init) keeps the model file's network config \
                     (only dit.* may change: a new velocity network, trained from scratch; \
                     latent.* with --fresh-latent)"
                ));
            }
            None => set_path(&mut mv, k, v)?,
        }
    }
    let mut model: ModelConfig = serde_json::from_value(mv).map_err(|e| format!("model config: {e}"))?;
    let train: TrainConfig = serde_json::from_value(tv).map_err(|e| format!("training config: {e}"))?;
    model.validate().map_err(|e| e.to_string())?;
    let device = lediflow::Device::parse(&args.device).map_err(|e| e.to_string())?;
    // Fail before loading data or touching the run folder.
    device.check().map_err(|e| e.to_string())?;
    let (mut all, desc) = args.data.load().map_err(|e| e.to_string())?;
    if !model.classes.is_unconditional() {
        if all.classes.is_empty() {
            return Err(format!(
                "the --init model is class-conditional ({}); give its data in one subfolder per class, \
                 named after them (some of them will do)",
                model.classes.names.join(", ")
            ));
        }
        // Subfolders load in name order and may hold only some classes: label them by the
        // model's class list.
        all.relabel(&model.classes.names).map_err(|e| format!("the --init model: {e}"))?;
    }
    if args.classes {
        if all.classes.is_empty() {
            return Err(
                "--classes needs a labelled data set: --data with one subfolder per class, --dcss or --angband".into(),
            );
        }
        model.classes.names = all.classes.clone();
        model.classes.image_flow |= args.class_image_flow;
        model.validate().map_err(|e| e.to_string())?;
    }
    if !model.classes.is_unconditional() {
        let counts: Vec<String> = all.classes.iter().zip(all.class_counts()).map(|(c, n)| format!("{c} {n}")).collect();
        eprintln!("classes: {}", counts.join(", "));
    }
    let (train_set, val_set) = args.data.split(&all);
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
    .map_err(flag_hints)?;
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

/// The library's message about a run, in the words of this command's flags.
fn flag_hints(e: lediflow::Error) -> String {
    let mut m = e.to_string();
    for (library, flags) in [
        ("cannot resume:", "--resume:"),
        ("resume it,", "resume it (add --resume),"),
        (
            "resume with the run's own settings (give a setting whose default changed since explicitly)",
            "use the same command line (--set KEY=VALUE for a setting whose default changed since)",
        ),
        ("a new run folder", "a new --run-dir"),
        ("another run folder", "another --run-dir"),
        ("starting model", "--init file"),
        ("a fresh latent flow must", "a fresh latent flow (--fresh-latent) must"),
    ] {
        m = m.replace(library, flags);
    }
    m
}
