//! Argument groups and helpers shared by several subcommands.

use std::path::{Path, PathBuf};

use clap::Args;
use lediflow::data::{self, Dataset};
use lediflow::{CpuBackend, Model, Precision, SampleOptions, Solver};

#[derive(Args, Clone)]
pub struct DataArgs {
    /// A folder of PNG/JPEG images (searched recursively).
    #[arg(long, conflicts_with = "dcss")]
    pub data: Option<PathBuf>,
    /// Use the Dungeon Crawl Stone Soup tile atlases (apt-get install crawl-tiles-data).
    #[arg(long)]
    pub dcss: bool,
    /// Folder of the DCSS atlases.
    #[arg(long, default_value = data::DCSS_TILE_DIR)]
    pub dcss_dir: PathBuf,
    /// With --dcss: leave out the creature atlas's parts (demon body parts, tentacle segments,
    /// the player doll's bases and equipment overlays) and keep whole sprites.
    #[arg(long, requires = "dcss")]
    pub whole: bool,
    /// Add David Gervais' 32x32 Angband tiles (apt-get install angband-data angband; CC-BY-3.0),
    /// labelled like the DCSS tiles.
    #[arg(long, conflicts_with = "data")]
    pub angband: bool,
    /// With --angband: also take the drawn cells no pref line names in the atlas rows whose named
    /// cells are all creatures, as creatures (about 340 more monsters; the pref-file tiles keep
    /// their held-out split).
    #[arg(long, requires = "angband")]
    pub angband_creature_rows: bool,
    /// Folder of the Angband tile images.
    #[arg(long, default_value = data::ANGBAND_GRAF_DIR)]
    pub angband_graf: PathBuf,
    /// Folder of the Angband pref files.
    #[arg(long, default_value = data::ANGBAND_PREF_DIR)]
    pub angband_pref: PathBuf,
    /// Channels: 1 (grey), 3 (RGB) or 4 (RGBA).
    #[arg(long, default_value_t = 4)]
    pub channels: usize,
    /// Image size: 16, 32 or 64 (DCSS tiles are 32).
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Hold out every N-th image for validation (0 = none).
    #[arg(long, default_value_t = 10)]
    pub val_every: usize,
}

impl DataArgs {
    pub fn load(&self) -> lediflow::Result<(Dataset, serde_json::Value)> {
        let (ds, _, desc) = self.load_with_dropped()?;
        Ok((ds, desc))
    }

    /// The data set, the images `--whole` left out, and the description recorded in a model.
    pub fn load_with_dropped(&self) -> lediflow::Result<(Dataset, Dataset, serde_json::Value)> {
        if (self.dcss || self.angband) && self.size != 32 {
            return Err(lediflow::Error::InvalidArgument("DCSS and Angband tiles are 32x32: use --size 32".into()));
        }
        let mut sources = Vec::new();
        let (mut ds, dropped) = if self.dcss {
            sources.push(format!(
                "dcss{}:{}",
                if self.whole { " (whole sprites)" } else { "" },
                self.dcss_dir.display()
            ));
            if self.whole {
                data::load_dcss_whole(&self.dcss_dir, self.channels)?
            } else {
                let ds = data::load_dcss(&self.dcss_dir, self.channels)?;
                let none = ds.empty_like();
                (ds, none)
            }
        } else if let Some(dir) = &self.data {
            sources.push(format!("{}", dir.display()));
            let ds = data::load_folder(dir, self.size, self.channels)?;
            let none = ds.empty_like();
            (ds, none)
        } else if self.angband {
            let ds = Dataset::new(32, self.channels);
            (ds.clone(), ds)
        } else {
            return Err(lediflow::Error::InvalidArgument("give --data <folder>, --dcss or --angband".into()));
        };
        if self.angband {
            sources.push(format!("angband:{}", self.angband_graf.display()));
            if self.angband_creature_rows {
                sources.push(format!("angband creature rows:{}", self.angband_graf.display()));
            }
            let extra = data::load_angband_with(
                &self.angband_graf,
                &self.angband_pref,
                self.channels,
                self.angband_creature_rows,
            )?;
            if ds.is_empty() {
                ds.classes = extra.classes.clone();
            }
            for i in 0..extra.len() {
                ds.push_from(&extra, i);
            }
            ds.dedup();
        }
        let per_class: serde_json::Map<String, serde_json::Value> =
            ds.classes.iter().zip(ds.class_counts()).map(|(c, n)| (c.clone(), n.into())).collect();
        let desc = serde_json::json!({
            "source": sources.join(" + "),
            "images": ds.len(),
            "size": self.size,
            "channels": self.channels,
            "validation": if self.per_group_split() {
                format!("every {}th image of each source and class held out", self.val_every)
            } else {
                format!("every {}th image held out", self.val_every)
            },
            "classes": per_class,
            lediflow::train::run::DATA_FINGERPRINT: lediflow::train::run::fnv64_hex(&ds.pixels),
        });
        Ok((ds, dropped, desc))
    }

    /// Sets built from several sources or with fragments dropped split per source and class;
    /// the plain DCSS and folder sets keep the split their models were measured with.
    fn per_group_split(&self) -> bool {
        self.whole || self.angband
    }

    /// The training and held-out parts.
    pub fn split(&self, ds: &Dataset) -> (Dataset, Dataset) {
        if self.per_group_split() { ds.split_per_group(self.val_every) } else { ds.split(self.val_every) }
    }
}

/// Solver settings shared by every generating subcommand.
#[derive(Args)]
pub struct GenArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Image-flow solver steps (NFE = steps x evaluations per step of the solver).
    #[arg(long, default_value_t = 4)]
    pub steps: usize,
    /// euler, midpoint, heun or rk4.
    #[arg(long, default_value = "midpoint")]
    pub solver: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Scale of the learned prior's noise (0 = start from the prior mean).
    #[arg(long, default_value_t = 1.0)]
    pub prior_scale: f32,
    /// Timestep shift of the solver grid (1 = equal steps; > 1 shorter steps near the prior:
    /// about 3 suits the Gaussian baseline at 4 Midpoint steps) [default: the model file's
    /// recommendation (`info` shows it), else 1].
    #[arg(long)]
    pub time_shift: Option<f32>,
    /// Midpoint steps of LeDiFlow's latent flow (an MLP: cheap next to the image flow;
    /// ignored by Gaussian-prior models).
    #[arg(long, default_value_t = 16)]
    pub latent_steps: usize,
    /// cpu, cuda or cuda:N (CUDA needs a build with --features cuda and an NVIDIA driver).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Cap on the working memory of one call, in MB: the images then run in smaller batches
    /// [default: none].
    #[arg(long, value_name = "MB")]
    pub memory_limit: Option<f64>,
    /// Seamless tiles: every image wraps around (right edge into left, bottom into top), for
    /// floor and wall textures that repeat without a seam. `--repeat 3` shows them repeated.
    #[arg(long)]
    pub tileable: bool,
    /// The class to generate, by name or index, for a class-conditional model (`info` lists
    /// its classes) [default: unconditional].
    #[arg(long)]
    pub class: Option<String>,
    /// Classifier-free guidance scale for --class: 1 = the plain conditional flow, above 1
    /// follows the class more closely (one more network evaluation per step), 0 = unconditional.
    #[arg(long, default_value_t = 1.0)]
    pub guidance: f32,
    /// Arithmetic of the CPU's matrix products: fp32, bf16 (CPUs with AVX512-BF16: faster,
    /// images within a few 8-bit levels of fp32's) or auto (bf16 where the CPU has it; `info`
    /// shows what this CPU offers).
    #[arg(long, default_value = "fp32")]
    pub precision: String,
}

/// A class given by name or index, checked against the model's classes.
pub fn class_id(model: &Model, class: &str) -> Result<u32, String> {
    let names = &model.config().classes.names;
    if names.is_empty() {
        return Err(format!("--class {class}: the model has no classes (it is unconditional)"));
    }
    if let Some(i) = names.iter().position(|n| n == class) {
        return Ok(i as u32);
    }
    match class.parse::<usize>() {
        Ok(i) if i < names.len() => Ok(i as u32),
        _ => Err(format!("--class {class}: not one of the model's classes: {}", lediflow::pipeline::class_list(names))),
    }
}

impl GenArgs {
    pub fn load(&self) -> Result<(Model, SampleOptions), String> {
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
            tileable: self.tileable,
            class: self.class.as_deref().map(|c| class_id(&p, c)).transpose()?,
            guidance: self.guidance,
            precision: Precision::parse(&self.precision).map_err(|e| format!("--precision: {e}"))?,
            ..Default::default()
        };
        opts.validate_for(p.config()).map_err(|e| e.to_string())?;
        Ok((p, opts))
    }
}

/// Where generated images go.
#[derive(Args)]
pub struct OutArgs {
    /// PNG grid of all images (alpha kept).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Folder for one PNG per image.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Grid columns (default: 8, or one row for interpolation).
    #[arg(long)]
    pub columns: Option<usize>,
    /// Show transparency in the grid as a grey checkerboard.
    #[arg(long)]
    pub checker: bool,
    /// Show each image of the grid repeated N x N times (to see whether tiles join seamlessly).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub repeat: u16,
}

impl OutArgs {
    pub fn check(&self) -> Result<(), String> {
        if self.out.is_none() && self.out_dir.is_none() {
            return Err("give --out <grid.png> and/or --out-dir <folder>".into());
        }
        Ok(())
    }

    /// Writes 8-bit images of `model` as a grid and/or single PNGs named `{stem}_{i}.png`.
    pub fn write(&self, model: &Model, pixels: Vec<u8>, stem: &str, columns: usize) -> Result<(), String> {
        let info = model.info();
        let mut ds = Dataset::new(info.width, info.channels);
        let n = pixels.len() / info.image_bytes();
        ds.pixels = pixels;
        ds.sources = (0..n).map(|i| format!("{stem} {i}")).collect();
        if let Some(out) = &self.out {
            let shown = data::repeat_tiles(&ds, self.repeat as usize);
            data::write_grid(out, &shown, self.columns.unwrap_or(columns), self.checker).map_err(|e| e.to_string())?;
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

pub fn write_single(path: &Path, one: &Dataset) -> lediflow::Result<()> {
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

/// A flag's comma-separated list of numbers ("1,2,4").
pub fn comma_list<T: std::str::FromStr>(spec: &str, flag: &str) -> Result<Vec<T>, String> {
    spec.split(',').map(|x| x.trim().parse().map_err(|_| format!("bad {flag} {x:?}"))).collect()
}

/// Loads a model and the data set it was trained on, checking that their image shapes agree.
pub fn model_and_data(model: &Path, data: &DataArgs, device: &str) -> Result<(Model, Dataset), String> {
    let device = lediflow::Device::parse(device).map_err(|e| e.to_string())?;
    let p = Model::load(model, device).map_err(|e| format!("{}: {e}", model.display()))?;
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

/// Writes a model file atomically, with f16 or f32 tensors.
pub fn write_model(
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

/// Whether two paths name one file (the same path, or both existing and resolving alike).
pub fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}
