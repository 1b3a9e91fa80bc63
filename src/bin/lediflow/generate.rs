//! `sample`, `interpolate`, `inpaint` and `vary`: generation through [`lediflow::Model`], written as PNGs.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use lediflow::data;
use lediflow::{Model, SampleOptions};

use crate::args::{GenArgs, OutArgs};

#[derive(Args)]
pub struct SampleArgs {
    #[command(flatten)]
    pub gen_args: GenArgs,
    #[arg(long, default_value_t = 64)]
    pub count: usize,
    #[command(flatten)]
    pub out: OutArgs,
}

#[derive(Args)]
pub struct InterpolateArgs {
    #[command(flatten)]
    pub gen_args: GenArgs,
    /// Number of frames, both ends included.
    #[arg(long, default_value_t = 8)]
    pub frames: usize,
    /// Start image (PNG/JPEG; encoded to its latent). Give --from and --to, or --from-seed and --to-seed.
    #[arg(long, requires = "to", conflicts_with_all = ["from_seed", "to_seed"])]
    pub from: Option<PathBuf>,
    #[arg(long, requires = "from")]
    pub to: Option<PathBuf>,
    /// Start seed: walk between the latent noises of two seeds (any model).
    #[arg(long, requires = "to_seed")]
    pub from_seed: Option<u64>,
    #[arg(long, requires = "from_seed")]
    pub to_seed: Option<u64>,
    /// Path between two latents: linear or spherical.
    #[arg(long, value_enum, default_value_t = InterpMode::Linear)]
    pub mode: InterpMode,
    #[command(flatten)]
    pub out: OutArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum InterpMode {
    Linear,
    Spherical,
}

#[derive(Args)]
pub struct InpaintArgs {
    #[command(flatten)]
    pub gen_args: GenArgs,
    /// The image to complete (PNG/JPEG, cropped and resized to the model size).
    #[arg(long)]
    pub image: PathBuf,
    /// Mask image of the same framing: dark (< 128) = generate, light = keep.
    #[arg(long, conflicts_with = "region")]
    pub mask: Option<PathBuf>,
    /// Rectangle to generate instead of a mask: x,y,w,h in model pixels.
    #[arg(long)]
    pub region: Option<String>,
    /// Number of different completions (completion i draws its noise from stream (seed, i)).
    #[arg(long, default_value_t = 8)]
    pub count: usize,
    #[command(flatten)]
    pub out: OutArgs,
}

#[derive(Args)]
pub struct VaryArgs {
    #[command(flatten)]
    pub gen_args: GenArgs,
    /// The image to vary (PNG/JPEG, cropped and resized to the model size); repeat the flag for
    /// several images (the grid then has one row per image).
    #[arg(long, required = true)]
    pub image: Vec<PathBuf>,
    /// Variations per image (variation j of image i draws its noise from (seed, i, j)).
    #[arg(long, default_value_t = 8)]
    pub count: usize,
    /// How far a variation may move from the image, 0..=1: 0 returns it, 1 keeps only what its
    /// latent carries (a fresh draw from its own learned prior); in between the flow starts
    /// part-way from the image.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub strength: f32,
    #[command(flatten)]
    pub out: OutArgs,
}

pub fn report(what: &str, n: usize, opts: &SampleOptions, t: std::time::Instant) {
    eprintln!(
        "{n} {what}, {} {} steps ({} NFE), {:.2} s",
        opts.steps,
        opts.solver,
        opts.steps * opts.solver.evals_per_step(),
        t.elapsed().as_secs_f64()
    );
}

pub fn sample(a: SampleArgs) -> Result<(), String> {
    a.out.check()?;
    let (p, opts) = a.gen_args.load()?;
    let t = std::time::Instant::now();
    let images = p.sample(a.count, &opts).map_err(|e| e.to_string())?;
    report("images", a.count, &opts, t);
    a.out.write(&p, images, "sample", 8)
}

/// One image file as 8-bit pixels at the model's size.
pub fn image_pixels(p: &Model, path: &Path) -> Result<Vec<u8>, String> {
    let i = p.info();
    Ok(data::load_image(path, i.width, i.channels).map_err(|e| e.to_string())?.pixels)
}

pub fn interpolate(a: InterpolateArgs) -> Result<(), String> {
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
pub fn region_mask(spec: &str, size: usize) -> Result<Vec<u8>, String> {
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

pub fn inpaint(a: InpaintArgs) -> Result<(), String> {
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
    lediflow::pipeline::check_count(a.count, "--count").map_err(|e| e.to_string())?;
    let t = std::time::Instant::now();
    let image = image_pixels(&p, &a.image)?.repeat(a.count);
    let masks = keep.repeat(a.count);
    let filled = p.inpaint(&image, &masks, &opts).map_err(|e| e.to_string())?;
    report("completions", a.count, &opts, t);
    a.out.write(&p, filled, "inpaint", 8)
}

pub fn vary(a: VaryArgs) -> Result<(), String> {
    a.out.check()?;
    let (p, opts) = a.gen_args.load()?;
    // Checked before any image is read or anything runs.
    lediflow::pipeline::check_strength(a.strength).map_err(|e| format!("--strength: {e}"))?;
    lediflow::pipeline::check_variations(a.count).map_err(|e| format!("--count: {e}"))?;
    lediflow::pipeline::check_count(a.image.len() * a.count, "images x --count").map_err(|e| e.to_string())?;
    let mut pixels = Vec::new();
    for path in &a.image {
        pixels.extend(image_pixels(&p, path)?);
    }
    let t = std::time::Instant::now();
    let out = p.vary(&pixels, a.count, a.strength, &opts).map_err(|e| e.to_string())?;
    report("variations", a.image.len() * a.count, &opts, t);
    a.out.write(&p, out, "vary", a.count)
}
