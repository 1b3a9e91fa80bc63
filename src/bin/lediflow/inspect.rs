//! `info`, `convert`, `export` and `data`: look at and rewrite model files, runs and data sets.

use std::path::PathBuf;

use clap::Args;
use lediflow::data::{self, Dataset};
use lediflow::{CpuBackend, Pipeline};

use crate::args::{DataArgs, write_model};

#[derive(Args)]
pub struct InfoArgs {
    #[arg(long)]
    pub model: PathBuf,
}

#[derive(Args)]
pub struct ConvertArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub fp16: bool,
    /// Record this solver-grid shift as the model's recommendation: sampling calls that
    /// leave the shift to the model (the CLI without --time-shift, the C ABI's 0, Python's
    /// None) use it.
    #[arg(long)]
    pub time_shift: Option<f32>,
}

#[derive(Args)]
pub struct ExportArgs {
    /// The run's folder (`train --run-dir`).
    #[arg(long)]
    pub run_dir: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub fp16: bool,
}

#[derive(Args)]
pub struct DataSheetArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to write the contact sheet (PNG).
    #[arg(long)]
    pub sheet: PathBuf,
    /// Show at most this many images.
    #[arg(long, default_value_t = 1024)]
    pub max: usize,
    #[arg(long, default_value_t = 32)]
    pub columns: usize,
    /// Also write one sheet per class into this folder (CLASS.png, every image of the class),
    /// dropped.png with what --whole left out and creature-rows.png with what
    /// --angband-creature-rows adds.
    #[arg(long)]
    pub by_class: Option<PathBuf>,
    /// With --by-class: at most this many images per class sheet, spread over the class.
    #[arg(long, requires = "by_class")]
    pub per_class: Option<usize>,
    /// Show only the held-out split (the images `eval` compares samples with).
    #[arg(long)]
    pub held_out: bool,
}

pub fn info(a: InfoArgs) -> Result<(), String> {
    let model = &a.model;
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
    let classes = &meta.config.classes;
    if classes.is_unconditional() {
        println!("classes:        none (unconditional)");
    } else {
        let flows = if meta.config.image_classes() > 0 && meta.config.latent_classes() > 0 {
            "latent and image flows"
        } else if meta.config.latent_classes() > 0 {
            "latent flow"
        } else {
            "image flow"
        };
        println!("classes:        {} ({flows}; --class NAME)", lediflow::pipeline::class_list(&classes.names));
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "this CPU:       AVX512-BF16 {}, AMX-BF16 {}; --precision auto runs {}",
        yes(i.cpu.avx512_bf16),
        yes(i.cpu.amx_bf16),
        i.auto_precision
    );
    println!("written by:     lediflow {}", meta.provenance.library_version);
    match meta.sampling.time_shift {
        Some(t) => println!("time shift:     {t} (recommended; sampling uses it unless given --time-shift)"),
        None => println!("time shift:     1 (no recommendation: equal steps)"),
    }
    println!("metadata:\n{}", serde_json::to_string_pretty(&meta).unwrap());
    Ok(())
}

pub fn convert(a: ConvertArgs) -> Result<(), String> {
    let mut p = Pipeline::<CpuBackend>::load(&a.model, &Default::default())
        .map_err(|e| format!("{}: {e}", a.model.display()))?;
    if let Some(t) = a.time_shift {
        let sampling = lediflow::checkpoint::SamplingDefaults { time_shift: Some(t) };
        p.set_sampling_defaults(sampling).map_err(|e| format!("--time-shift: {e}"))?;
    }
    write_model(&a.out, p.networks(), p.meta(), a.fp16)
}

pub fn export(a: ExportArgs) -> Result<(), String> {
    let (nets, meta, at) = lediflow::train::run::export::<CpuBackend>(&a.run_dir, &Default::default())
        .map_err(|e| format!("{}: {e}", a.run_dir.display()))?;
    write_model(&a.out, &nets, &meta, a.fp16)?;
    eprintln!("(image flow at step {} of {}, EMA weights)", at.step, at.steps);
    Ok(())
}

/// At most `n` images spread evenly over `ds`.
fn spread(ds: &Dataset, n: usize) -> Dataset {
    let n = ds.len().min(n);
    let mut out = ds.empty_like();
    for k in 0..n {
        out.push_from(ds, k * ds.len() / n);
    }
    out
}

pub fn data_sheet(a: DataSheetArgs) -> Result<(), String> {
    let (ds, dropped, _) = a.data.load_with_dropped().map_err(|e| e.to_string())?;
    let (tr, va) = a.data.split(&ds);
    eprintln!("{} images ({} training, {} validation)", ds.len(), tr.len(), va.len());
    let ds = if a.held_out { va } else { ds };
    for (c, n) in ds.classes.iter().zip(ds.class_counts()) {
        eprintln!("  {c}: {n}");
    }
    if let Some(dir) = &a.by_class {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut sheets: Vec<(String, Dataset)> = ds.classes.iter().map(|c| (c.clone(), ds.empty_like())).collect();
        for i in 0..ds.len() {
            sheets[ds.label(i) as usize].1.push_from(&ds, i);
        }
        if !dropped.is_empty() || a.data.whole {
            sheets.push(("dropped".into(), dropped.clone()));
        }
        if a.data.angband_creature_rows {
            let mut rows = ds.empty_like();
            for i in (0..ds.len()).filter(|&i| ds.sources[i].ends_with(data::ANGBAND_ROW_LABEL)) {
                rows.push_from(&ds, i);
            }
            sheets.push(("creature-rows".into(), rows));
        }
        for (name, set) in sheets {
            let set = match a.per_class {
                Some(n) if name != "dropped" && name != "creature-rows" => spread(&set, n),
                _ => set,
            };
            let path = dir.join(format!("{name}.png"));
            if !set.is_empty() {
                data::write_grid(&path, &set, a.columns, true).map_err(|e| e.to_string())?;
                eprintln!("wrote {} ({} images)", path.display(), set.len());
            }
        }
    }
    data::write_grid(&a.sheet, &spread(&ds, a.max), a.columns, true).map_err(|e| e.to_string())?;
    eprintln!("wrote {}", a.sheet.display());
    Ok(())
}
