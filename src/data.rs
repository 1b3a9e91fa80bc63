//! Training data: folders of PNG/JPEG images and the Dungeon Crawl Stone Soup tile atlases
//! (Debian's `crawl-tiles-data`), as 8-bit interleaved images of one size and channel count.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView, ImageReader, Limits, RgbaImage};

use crate::error::{Error, Result, invalid};

/// The classes the tile loaders label with: DCSS by atlas, Angband by its pref files.
pub const TILE_CLASSES: &[&str] = &["floor", "wall", "feature", "item", "creature"];
const FLOOR: u32 = 0;
const WALL: u32 = 1;
const FEATURE: u32 = 2;
const ITEM: u32 = 3;
const CREATURE: u32 = 4;

/// Where Debian's `angband-data` puts David Gervais' 32x32 tiles (CC-BY-3.0).
pub const ANGBAND_GRAF_DIR: &str = "/usr/share/angband/xtra/graf";
/// Where Debian's `angband` puts the pref files that map monsters, objects and features to tiles.
pub const ANGBAND_PREF_DIR: &str = "/etc/angband/pref";

/// Where Debian's `crawl-tiles-data` puts the atlases.
pub const DCSS_TILE_DIR: &str = "/usr/share/crawl/dat/tiles";
/// The in-game sprite atlases (GUI, logo and title art are left out).
pub const DCSS_ATLASES: &[&str] = &["main.png", "player.png", "floor.png", "wall.png", "feat.png"];

/// Widest and tallest image file the loaders decode (pixels per side): a larger one, or a file
/// whose header claims one, is refused before its pixels are allocated.
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// Most bytes an image decoder may hold at once (the decoded pixels included).
pub const MAX_DECODE_BYTES: u64 = 256 << 20;

/// Images of one geometry, 8-bit, interleaved, row-major, back to back.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub size: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
    /// Where each image came from (file, and cell or sprite position for atlases).
    pub sources: Vec<String>,
    /// Class names of a labelled set (empty: unlabelled).
    pub classes: Vec<String>,
    /// Each image's index into `classes`: one per image in a labelled set, empty otherwise.
    pub labels: Vec<u32>,
}

impl Dataset {
    pub fn new(size: usize, channels: usize) -> Self {
        Self { size, channels, pixels: Vec::new(), sources: Vec::new(), classes: Vec::new(), labels: Vec::new() }
    }

    /// An empty set of this one's geometry and classes.
    pub fn empty_like(&self) -> Self {
        Self { classes: self.classes.clone(), ..Self::new(self.size, self.channels) }
    }

    /// Image i's class index (0 in an unlabelled set).
    pub fn label(&self, i: usize) -> u32 {
        self.labels.get(i).copied().unwrap_or(0)
    }

    /// Appends image i of `other` (same geometry and classes), with its source and label.
    pub fn push_from(&mut self, other: &Dataset, i: usize) {
        self.pixels.extend_from_slice(other.image(i));
        self.sources.push(other.sources[i].clone());
        if !other.labels.is_empty() {
            self.labels.push(other.labels[i]);
        }
    }

    /// How many images each class has (in `classes` order).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut n = vec![0; self.classes.len()];
        for &l in &self.labels {
            n[l as usize] += 1;
        }
        n
    }

    /// Relabels a labelled set with `names` as its class list (e.g. a model's classes, in the
    /// model's order): every class of the set must be one of them; classes of `names` the set
    /// lacks get no images. An error names the classes that are not in `names`.
    pub fn relabel(&mut self, names: &[String]) -> Result<()> {
        let to: Vec<Option<u32>> =
            self.classes.iter().map(|c| names.iter().position(|n| n == c).map(|k| k as u32)).collect();
        let unknown: Vec<&str> =
            self.classes.iter().zip(&to).filter(|(_, k)| k.is_none()).map(|(c, _)| c.as_str()).collect();
        if !unknown.is_empty() {
            return invalid(format!("the data's classes {} are not among {}", unknown.join(", "), names.join(", ")));
        }
        for l in &mut self.labels {
            *l = to[*l as usize].expect("every class maps (checked above)");
        }
        self.classes = names.to_vec();
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    pub fn image_bytes(&self) -> usize {
        self.size * self.size * self.channels
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_bytes();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Appends an RGBA image of the dataset's size, converted to its channel count.
    pub fn push_rgba(&mut self, img: &RgbaImage, source: String) {
        debug_assert_eq!((img.width() as usize, img.height() as usize), (self.size, self.size));
        for p in img.pixels() {
            let [r, g, b, a] = p.0;
            match self.channels {
                4 => self.pixels.extend_from_slice(&[r, g, b, a]),
                3 => self.pixels.extend_from_slice(&[r, g, b]),
                _ => self.pixels.push(luma(r, g, b)),
            }
        }
        self.sources.push(source);
    }

    /// [`Self::push_rgba`] for a labelled set: the image's class index too.
    pub fn push_labelled(&mut self, img: &RgbaImage, source: String, label: u32) {
        debug_assert!((label as usize) < self.classes.len());
        self.push_rgba(img, source);
        self.labels.push(label);
    }

    /// Drops exact duplicate images (atlases repeat tiles), keeping the first of each.
    pub fn dedup(&mut self) -> usize {
        let mut seen = HashSet::new();
        let mut kept = self.empty_like();
        for i in 0..self.len() {
            if seen.insert(self.image(i).to_vec()) {
                kept.push_from(self, i);
            }
        }
        let removed = self.len() - kept.len();
        *self = kept;
        removed
    }

    /// Deterministic split: every `every`-th image (index % every == every - 1) is held out for
    /// validation. Run after `dedup`, the two parts share no image.
    pub fn split(&self, every: usize) -> (Dataset, Dataset) {
        let (mut train, mut val) = (self.empty_like(), self.empty_like());
        for i in 0..self.len() {
            let part = if every > 0 && i % every == every - 1 { &mut val } else { &mut train };
            part.push_from(self, i);
        }
        (train, val)
    }

    /// Deterministic split within each group of images sharing a source (the text of
    /// `sources[i]` before its first space: the atlas or file) and a class: the `every`-th image
    /// of every group is held out, so each source and class keeps its share of held-out images.
    pub fn split_per_group(&self, every: usize) -> (Dataset, Dataset) {
        let mut seen: std::collections::HashMap<(&str, u32), usize> = std::collections::HashMap::new();
        let (mut train, mut val) = (self.empty_like(), self.empty_like());
        for i in 0..self.len() {
            let source = self.sources[i].split(' ').next().unwrap_or("");
            let k = seen.entry((source, self.label(i))).or_insert(0);
            *k += 1;
            let part = if every > 0 && (*k).is_multiple_of(every) { &mut val } else { &mut train };
            part.push_from(self, i);
        }
        (train, val)
    }

    /// The images followed by their horizontal mirrors (twice the length; a mirror's source
    /// is its original's with ` (mirrored)` appended).
    pub fn with_mirrors(&self) -> Dataset {
        let (s, c) = (self.size, self.channels);
        let mut out = self.clone();
        for i in 0..self.len() {
            let img = self.image(i);
            for y in 0..s {
                for x in (0..s).rev() {
                    out.pixels.extend_from_slice(&img[(y * s + x) * c..(y * s + x + 1) * c]);
                }
            }
            out.sources.push(format!("{} (mirrored)", self.sources[i]));
            if !self.labels.is_empty() {
                out.labels.push(self.labels[i]);
            }
        }
        out
    }
}

/// ITU-R BT.601 luma.
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000) as u8
}

fn is_image_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

/// The image files under `dir`, recursively, in path order. Symbolic links are followed, but
/// each folder is read once (by its resolved path): a link back up the tree would otherwise
/// load the same images over and over (and two such links, exponentially often).
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    collect_files_once(dir, out, &mut std::collections::HashSet::new())
}

fn collect_files_once(dir: &Path, out: &mut Vec<PathBuf>, seen: &mut std::collections::HashSet<PathBuf>) -> Result<()> {
    let io = |e: std::io::Error| Error::Io(std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())));
    if !seen.insert(dir.canonicalize().map_err(io)?) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_files_once(&p, out, seen)?;
        } else if is_image_file(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Centre-crops to a square and resizes to `size` (nearest for integer upscales of pixel art,
/// a triangle filter otherwise).
pub fn fit_square(img: &DynamicImage, size: u32) -> RgbaImage {
    let (w, h) = img.dimensions();
    let side = w.min(h);
    let cropped = img.crop_imm((w - side) / 2, (h - side) / 2, side, side).to_rgba8();
    if side == size {
        return cropped;
    }
    let filter = if size > side && size.is_multiple_of(side) { FilterType::Nearest } else { FilterType::Triangle };
    image::imageops::resize(&cropped, size, size, filter)
}

/// Every PNG/JPEG under `dir` (recursively, in path order), centre-cropped and resized. When
/// every image sits in a subfolder of `dir` (none directly in it), the set is labelled: one class
/// per subfolder, named after it, in name order (the image-folder convention).
pub fn load_folder(dir: &Path, size: usize, channels: usize) -> Result<Dataset> {
    check_geometry(size, channels)?;
    if !dir.is_dir() {
        return invalid(format!("{} is not a folder", dir.display()));
    }
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    if files.is_empty() {
        return invalid(format!("no PNG or JPEG images under {}", dir.display()));
    }
    // The first folder under `dir` of each image (None: directly in it).
    let class_of = |f: &Path| {
        let rel = f.strip_prefix(dir).ok()?;
        let mut parts = rel.components();
        let first = parts.next()?;
        parts.next().map(|_| first.as_os_str().to_string_lossy().into_owned())
    };
    let folders: Option<Vec<String>> = files.iter().map(|f| class_of(f)).collect();
    let mut ds = Dataset::new(size, channels);
    if let Some(folders) = &folders {
        let mut names = folders.clone();
        names.sort();
        names.dedup();
        ds.classes = names;
    }
    for (i, f) in files.iter().enumerate() {
        let img = fit_square(&open_image(f)?, size as u32);
        match &folders {
            Some(folders) => {
                let label = ds.classes.iter().position(|c| *c == folders[i]).unwrap_or(0) as u32;
                ds.push_labelled(&img, f.display().to_string(), label);
            }
            None => ds.push_rgba(&img, f.display().to_string()),
        }
    }
    Ok(ds)
}

/// One PNG/JPEG file, centre-cropped and resized like the folder loader does.
pub fn load_image(path: &Path, size: usize, channels: usize) -> Result<Dataset> {
    check_geometry(size, channels)?;
    let mut ds = Dataset::new(size, channels);
    ds.push_rgba(&fit_square(&open_image(path)?, size as u32), path.display().to_string());
    Ok(ds)
}

/// A PNG or JPEG file's bytes as one `size` x `size` image of `channels` (centre-cropped and
/// resized like the loaders do), 8-bit interleaved: what the command line feeds to encode,
/// inpaint and vary. Images larger than `MAX_IMAGE_SIDE` per side are refused before decoding.
pub fn decode_image(bytes: &[u8], size: usize, channels: usize) -> Result<Vec<u8>> {
    check_geometry(size, channels)?;
    let img = decode_bounded(bytes).map_err(|e| Error::InvalidArgument(format!("cannot read image: {e}")))?;
    let mut ds = Dataset::new(size, channels);
    ds.push_rgba(&fit_square(&img, size as u32), String::new());
    Ok(ds.pixels)
}

fn open_image(path: &Path) -> Result<DynamicImage> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::InvalidArgument(format!("cannot read image {}: {e}", path.display())))?;
    decode_bounded(&bytes).map_err(|e| Error::InvalidArgument(format!("cannot read image {}: {e}", path.display())))
}

/// Decodes PNG or JPEG within `MAX_IMAGE_SIDE` and `MAX_DECODE_BYTES`.
fn decode_bounded(bytes: &[u8]) -> std::result::Result<DynamicImage, String> {
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| e.to_string())?;
    if img.width() == 0 || img.height() == 0 {
        return Err("the image is empty (0 pixels wide or tall)".into());
    }
    Ok(img)
}

fn check_geometry(size: usize, channels: usize) -> Result<()> {
    if ![1, 3, 4].contains(&channels) || ![16, 32, 64].contains(&size) {
        return invalid(format!("unsupported geometry {size}x{size}x{channels} (sizes 16/32/64, channels 1/3/4)"));
    }
    Ok(())
}

/// Alpha above this counts as part of a sprite.
const ALPHA_ON: u8 = 16;
/// Cells with fewer opaque pixels than this fraction are (almost) empty and dropped.
const MIN_COVERAGE: f32 = 0.04;

/// 8-connected components of opaque pixels: per pixel a component id (u32::MAX = transparent)
/// and per component its bounding box (x0, y0, x1, y1), inclusive.
fn components(img: &RgbaImage) -> (Vec<u32>, Vec<[u32; 4]>) {
    let (w, h) = img.dimensions();
    let mut label = vec![u32::MAX; (w * h) as usize];
    let mut boxes = Vec::new();
    let mut stack = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) as usize;
            if label[i] != u32::MAX || img.get_pixel(x, y).0[3] <= ALPHA_ON {
                continue;
            }
            let id = boxes.len() as u32;
            let mut bb = [x, y, x, y];
            label[i] = id;
            stack.push((x, y));
            while let Some((cx, cy)) = stack.pop() {
                bb = [bb[0].min(cx), bb[1].min(cy), bb[2].max(cx), bb[3].max(cy)];
                for dy in -1i32..=1 {
                    for dx in -1i32..=1 {
                        let (nx, ny) = (cx as i32 + dx, cy as i32 + dy);
                        if nx < 0 || ny < 0 || nx >= w as i32 || ny >= h as i32 {
                            continue;
                        }
                        let j = (ny as u32 * w + nx as u32) as usize;
                        if label[j] == u32::MAX && img.get_pixel(nx as u32, ny as u32).0[3] > ALPHA_ON {
                            label[j] = id;
                            stack.push((nx as u32, ny as u32));
                        }
                    }
                }
            }
            boxes.push(bb);
        }
    }
    (label, boxes)
}

fn coverage(img: &RgbaImage) -> f32 {
    let on = img.pixels().filter(|p| p.0[3] > ALPHA_ON).count();
    on as f32 / (img.width() * img.height()) as f32
}

/// Slices an atlas into `cell`-pixel tiles, handling packed regions.
///
/// Most of an atlas is a grid of `cell`-sized tiles: either opaque tiles touching each other
/// (floors, walls: components much larger than a cell) or sprites that sit inside their cell.
/// Some regions (the lower part of player.png, say) pack smaller sprites off the grid; cutting
/// those on the grid would halve them. A cell is taken from the grid when no small component
/// (bounding box within one cell) crosses its border. Small components that do cross a border
/// are sprites off the grid: each is cut out by its bounding box (components whose boxes touch
/// are merged while the union still fits a cell) and centred on a transparent cell. Anything
/// larger than a cell that is not grid tiling is left out, as are (almost) empty cells.
pub fn slice_atlas(img: &RgbaImage, cell: u32) -> Vec<(RgbaImage, String)> {
    let (w, h) = img.dimensions();
    let (label, boxes) = components(img);
    let fits = |b: &[u32; 4]| b[2] - b[0] < cell && b[3] - b[1] < cell;
    let crosses_grid = |b: &[u32; 4]| b[0] / cell != b[2] / cell || b[1] / cell != b[3] / cell;
    let mut out = Vec::new();
    let mut off_grid: Vec<usize> = Vec::new();
    let mut taken = vec![false; boxes.len()];
    for cy in 0..h / cell {
        for cx in 0..w / cell {
            let label = &label;
            let cell_labels = || {
                (cy * cell..(cy + 1) * cell)
                    .flat_map(move |y| (cx * cell..(cx + 1) * cell).map(move |x| label[(y * w + x) as usize]))
                    .filter(|&l| l != u32::MAX)
            };
            let clean = cell_labels().all(|l| !(fits(&boxes[l as usize]) && crosses_grid(&boxes[l as usize])));
            if clean {
                let tile = image::imageops::crop_imm(img, cx * cell, cy * cell, cell, cell).to_image();
                if coverage(&tile) >= MIN_COVERAGE {
                    out.push((tile, format!("cell {cx},{cy}")));
                }
            } else {
                // A packed cell: every sprite-sized component in it is cut out on its own.
                for l in cell_labels() {
                    if fits(&boxes[l as usize]) && !taken[l as usize] {
                        taken[l as usize] = true;
                        off_grid.push(l as usize);
                    }
                }
            }
        }
    }
    // Off-grid sprites: merge touching boxes while the union still fits one cell.
    let mut groups: Vec<[u32; 4]> = off_grid.iter().map(|&i| boxes[i]).collect();
    let touch =
        |a: &[u32; 4], b: &[u32; 4]| a[0] <= b[2] + 1 && b[0] <= a[2] + 1 && a[1] <= b[3] + 1 && b[1] <= a[3] + 1;
    // Passes of pairwise merging until nothing changes; each pass may merge many pairs.
    loop {
        let mut changed = false;
        let mut i = 0;
        while i < groups.len() {
            let mut j = i + 1;
            while j < groups.len() {
                let (a, b) = (groups[i], groups[j]);
                let u = [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])];
                if touch(&a, &b) && fits(&u) {
                    groups[i] = u;
                    groups.swap_remove(j);
                    changed = true;
                } else {
                    j += 1;
                }
            }
            i += 1;
        }
        if !changed {
            break;
        }
    }
    groups.sort_by_key(|b| (b[1], b[0]));
    for b in groups {
        let (bw, bh) = (b[2] - b[0] + 1, b[3] - b[1] + 1);
        let mut tile = RgbaImage::new(cell, cell);
        let (ox, oy) = ((cell - bw) / 2, (cell - bh) / 2);
        for y in 0..bh {
            for x in 0..bw {
                let (sx, sy) = (b[0] + x, b[1] + y);
                // Only pixels of components inside this box: a neighbour's pixels poking into
                // the box stay out.
                let l = label[(sy * w + sx) as usize];
                if l != u32::MAX && {
                    let lb = &boxes[l as usize];
                    lb[0] >= b[0] && lb[1] >= b[1] && lb[2] <= b[2] && lb[3] <= b[3]
                } {
                    tile.put_pixel(ox + x, oy + y, *img.get_pixel(sx, sy));
                }
            }
        }
        if coverage(&tile) >= MIN_COVERAGE {
            out.push((tile, format!("sprite at {},{} ({bw}x{bh})", b[0], b[1])));
        }
    }
    out
}

/// The DCSS tiles from `dir` (normally [`DCSS_TILE_DIR`]) as `channels`-channel 32x32 images,
/// exact duplicates removed, in a fixed order.
/// The class of a DCSS atlas's tiles: items in `main.png`, monsters (and the player doll's parts)
/// in `player.png`, the dungeon's floors, walls and features in their own atlases.
fn dcss_class(atlas: &str) -> u32 {
    match atlas {
        "floor.png" => FLOOR,
        "wall.png" => WALL,
        "feat.png" => FEATURE,
        "main.png" => ITEM,
        _ => CREATURE,
    }
}

/// Where `player.png` of crawl-tiles-data 0.28 (1024x2083 pixels) keeps parts rather than whole
/// creatures: ranges of tile centres as (cell row, cell column), in reading order, the end
/// excluded. Found by looking at every row of the sliced atlas; the atlas holds no names, and the
/// parts share their neighbours' colours and outlines, so no pixel rule told them apart without
/// also dropping whole sprites.
const PLAYER_PARTS: &[(CellPos, CellPos, &str)] = &[
    ((0, 0), (19, 25), "Pandemonium demons' headless bodies, heads and wings"),
    ((24, 21), (31, 11), "segments of tentacles, worms and vines"),
    ((50, 0), (u32::MAX, 0), "player-doll bases and equipment overlays, packed off the 32-pixel grid"),
];
/// A tile centre's (cell row, cell column) in an atlas.
type CellPos = (u32, u32);
/// The `player.png` that [`PLAYER_PARTS`] describes.
const PLAYER_ATLAS_SIZE: (u32, u32) = (1024, 2083);

/// The (cell row, cell column) of a sliced tile's centre in its atlas, from its position
/// ("cell X,Y" or "sprite at X,Y (WxH)").
fn tile_centre(pos: &str) -> Option<(u32, u32)> {
    if let Some(cell) = pos.strip_prefix("cell ") {
        let (x, y) = cell.split_once(',')?;
        return Some((y.parse().ok()?, x.parse().ok()?));
    }
    let (at, size) = pos.strip_prefix("sprite at ")?.split_once(' ')?;
    let (x, y) = at.split_once(',')?;
    let (w, h) = size.strip_prefix('(')?.strip_suffix(')')?.split_once('x')?;
    let (x, y, w, h): (u32, u32, u32, u32) = (x.parse().ok()?, y.parse().ok()?, w.parse().ok()?, h.parse().ok()?);
    Some(((y + h / 2) / 32, (x + w / 2) / 32))
}

/// Whether a tile sliced from `player.png` at `pos` is a part (see [`PLAYER_PARTS`]).
fn is_player_part(pos: &str) -> bool {
    tile_centre(pos).is_some_and(|c| PLAYER_PARTS.iter().any(|&(from, to, _)| from <= c && c < to))
}

/// The DCSS tiles labelled with [`TILE_CLASSES`], without the creature atlas's parts (demon body
/// parts, tentacle segments, the player doll's bases and overlays: [`PLAYER_PARTS`]): the kept set
/// and the dropped parts, each deduplicated. Another version of `player.png` than the one the
/// regions were read from is refused.
pub fn load_dcss_whole(dir: &Path, channels: usize) -> Result<(Dataset, Dataset)> {
    let all = load_dcss_atlases(dir, channels, true)?;
    let (mut kept, mut dropped) = (all.0.empty_like(), all.0.empty_like());
    for i in 0..all.0.len() {
        let part = if all.1[i] { &mut dropped } else { &mut kept };
        part.push_from(&all.0, i);
    }
    Ok((kept, dropped))
}

pub fn load_dcss(dir: &Path, channels: usize) -> Result<Dataset> {
    Ok(load_dcss_atlases(dir, channels, false)?.0)
}

/// The atlases' tiles, labelled and deduplicated, with a fragment flag per tile (all false
/// unless `find_fragments`).
fn load_dcss_atlases(dir: &Path, channels: usize, find_fragments: bool) -> Result<(Dataset, Vec<bool>)> {
    check_geometry(32, channels)?;
    let mut ds = Dataset::new(32, channels);
    ds.classes = TILE_CLASSES.iter().map(|c| c.to_string()).collect();
    let mut fragment = Vec::new();
    for name in DCSS_ATLASES {
        let path = dir.join(name);
        if !path.exists() {
            return Err(Error::InvalidArgument(format!(
                "{} not found: install the Debian package crawl-tiles-data (apt-get install crawl-tiles-data)",
                path.display()
            )));
        }
        let img = image::open(&path)
            .map_err(|e| Error::InvalidArgument(format!("cannot read atlas {}: {e}", path.display())))?
            .to_rgba8();
        let class = dcss_class(name);
        let parts = find_fragments && *name == "player.png";
        if parts && img.dimensions() != PLAYER_ATLAS_SIZE {
            return invalid(format!(
                "--whole knows the layout of player.png from crawl-tiles-data 0.28 ({}x{} pixels); {} is {}x{}",
                PLAYER_ATLAS_SIZE.0,
                PLAYER_ATLAS_SIZE.1,
                path.display(),
                img.width(),
                img.height()
            ));
        }
        for (tile, pos) in slice_atlas(&img, 32) {
            let cut = parts && is_player_part(&pos);
            ds.push_labelled(&tile, format!("{name} {pos}"), class);
            fragment.push(cut);
        }
    }
    // Deduplicate, keeping each first copy's flag.
    let mut seen = HashSet::new();
    let mut out = ds.empty_like();
    let mut flags = Vec::new();
    for (i, &cut) in fragment.iter().enumerate() {
        if seen.insert(ds.image(i).to_vec()) {
            out.push_from(&ds, i);
            flags.push(cut);
        }
    }
    if out.is_empty() {
        return invalid(format!("no tiles found in {}", dir.display()));
    }
    Ok((out, flags))
}

/// David Gervais' 32x32 Angband tiles that the pref files assign to something, labelled with
/// [`TILE_CLASSES`]: monsters and the player's race/class sprites are creatures, objects and their
/// flavours items, and the dungeon features floor, wall or feature by the pref file's own comment
/// for each (floors; walls and mineral veins; doors, stairs, shops, traps, rubble). Each tile is
/// taken once, with the class of its first assignment; duplicates are dropped.
pub fn load_angband(graf_dir: &Path, pref_dir: &Path, channels: usize) -> Result<Dataset> {
    load_angband_with(graf_dir, pref_dir, channels, false)
}

/// The source text of the tiles [`load_angband_with`] labels by their row (after the cell).
pub const ANGBAND_ROW_LABEL: &str = "(creature row)";

/// [`load_angband`], and with `creature_rows` also the drawn cells that no pref line names in the
/// atlas rows whose named cells are all creatures, labelled creature (the atlas draws monsters
/// row by row, and its creature rows hold monsters the pref files do not use). These come after
/// the pref-file tiles, with [`ANGBAND_ROW_LABEL`] at the end of their source, so
/// [`Dataset::split_per_group`] holds out the same pref-file tiles either way.
pub fn load_angband_with(graf_dir: &Path, pref_dir: &Path, channels: usize, creature_rows: bool) -> Result<Dataset> {
    check_geometry(32, channels)?;
    let atlas_path = graf_dir.join("32x32.png");
    if !atlas_path.exists() {
        return invalid(format!(
            "{} not found: install the Debian package angband-data (apt-get install angband-data)",
            atlas_path.display()
        ));
    }
    let read = |name: &str| {
        let path = pref_dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| {
            Error::InvalidArgument(format!(
                "cannot read {}: {e} (install the Debian package angband: apt-get install angband)",
                path.display()
            ))
        })
    };
    let atlas = image::open(&atlas_path)
        .map_err(|e| Error::InvalidArgument(format!("cannot read {}: {e}", atlas_path.display())))?
        .to_rgba8();
    // (row, column) of each assignment in file order, with its class.
    let mut cells: Vec<(u32, u32, u32)> = Vec::new();
    let mut push = |attr: &str, chr: &str, class: u32| {
        let num = |t: &str| u32::from_str_radix(t.trim().trim_start_matches("0x").trim_start_matches("0X"), 16).ok();
        if let (Some(a), Some(c)) = (num(attr), num(chr))
            && a & 0x80 != 0
            && c & 0x80 != 0
        {
            cells.push((a & 0x7F, c & 0x7F, class));
        }
    };
    let mut comment = String::new();
    for line in read("graf-dvg.prf")?.lines().chain(read("xtra-dvg.prf")?.lines()) {
        let f: Vec<&str> = line.split(':').collect();
        match f.first().copied() {
            Some(l) if l.starts_with('#') => comment = line.to_lowercase(),
            Some("F") if f.len() == 5 && f[1] != "0" => {
                let class = if comment.contains("floor") {
                    FLOOR
                } else if comment.contains("wall") || comment.contains("vein") {
                    WALL
                } else {
                    FEATURE
                };
                push(f[3], f[4], class);
            }
            Some("K") if f.len() == 5 => push(f[3], f[4], ITEM),
            Some("R") if f.len() == 4 => push(f[2], f[3], CREATURE),
            _ => {}
        }
    }
    for line in read("flvr-dvg.prf")?.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.first() == Some(&"L") && f.len() == 4 {
            push(f[2], f[3], ITEM);
        }
    }
    let mut ds = Dataset::new(32, channels);
    ds.classes = TILE_CLASSES.iter().map(|c| c.to_string()).collect();
    let mut taken = HashSet::new();
    let (cols, rows) = (atlas.width() / 32, atlas.height() / 32);
    let crop = |col: u32, row: u32| {
        let tile = image::imageops::crop_imm(&atlas, col * 32, row * 32, 32, 32).to_image();
        (coverage(&tile) >= MIN_COVERAGE).then_some(tile)
    };
    for &(row, col, class) in &cells {
        if row >= rows || col >= cols || !taken.insert((row, col)) {
            continue;
        }
        if let Some(tile) = crop(col, row) {
            ds.push_labelled(&tile, format!("angband cell {col},{row}"), class);
        }
    }
    if creature_rows {
        // A row qualifies when the pref files name at least MIN_NAMED of its cells and every one
        // of them is a creature (the last row, runes with a single monster, does not).
        const MIN_NAMED: usize = 8;
        let mut row_kind: HashMap<u32, (usize, bool)> = HashMap::new();
        for &(row, col, class) in &cells {
            if row < rows && col < cols {
                let kind = row_kind.entry(row).or_insert((0, true));
                *kind = (kind.0 + 1, kind.1 && class == CREATURE);
            }
        }
        let mut creature_rows: Vec<u32> =
            row_kind.into_iter().filter_map(|(r, (named, all))| (all && named >= MIN_NAMED).then_some(r)).collect();
        creature_rows.sort_unstable();
        for row in creature_rows {
            for col in 0..cols {
                if taken.contains(&(row, col)) {
                    continue;
                }
                if let Some(tile) = crop(col, row) {
                    ds.push_labelled(&tile, format!("angband cell {col},{row} {ANGBAND_ROW_LABEL}"), CREATURE);
                }
            }
        }
    }
    ds.dedup();
    if ds.is_empty() {
        return invalid(format!("no tiles found in {}", atlas_path.display()));
    }
    Ok(ds)
}

/// Writes images as one PNG grid (`cols` per row, 1-pixel transparent gaps); alpha is kept.
/// With `checker`, transparent areas show a grey checkerboard (for looking at sprites).
pub fn write_grid(path: &Path, ds: &Dataset, cols: usize, checker: bool) -> Result<()> {
    if ds.is_empty() {
        return invalid("no images to write");
    }
    let s = ds.size as u32;
    let cols = cols.clamp(1, ds.len()) as u32;
    let rows = (ds.len() as u32).div_ceil(cols);
    let mut grid = RgbaImage::new(cols * (s + 1) + 1, rows * (s + 1) + 1);
    for i in 0..ds.len() {
        let (gx, gy) = (1 + (i as u32 % cols) * (s + 1), 1 + (i as u32 / cols) * (s + 1));
        let img = ds.image(i);
        for y in 0..s {
            for x in 0..s {
                let p = (y * s + x) as usize * ds.channels;
                let mut px = match ds.channels {
                    4 => [img[p], img[p + 1], img[p + 2], img[p + 3]],
                    3 => [img[p], img[p + 1], img[p + 2], 255],
                    _ => [img[p], img[p], img[p], 255],
                };
                if checker {
                    let bg = if ((x / 4) + (y / 4)) % 2 == 0 { 200.0 } else { 150.0 };
                    let a = px[3] as f32 / 255.0;
                    for v in px.iter_mut().take(3) {
                        *v = (*v as f32 * a + bg * (1.0 - a)).round() as u8;
                    }
                    px[3] = 255;
                }
                grid.put_pixel(gx + x, gy + y, image::Rgba(px));
            }
        }
    }
    save_png(path, &grid)
}

/// Each image of `ds` repeated n x n times, as a data set of (n size)-pixel images (a preview of
/// how tiles join: a seam shows as a line through every copy).
pub fn repeat_tiles(ds: &Dataset, n: usize) -> Dataset {
    if n <= 1 {
        return ds.clone();
    }
    let (s, c) = (ds.size, ds.channels);
    let mut out = Dataset::new(s * n, c);
    out.sources = ds.sources.clone();
    out.pixels.reserve(ds.len() * s * s * c * n * n);
    for i in 0..ds.len() {
        let img = ds.image(i);
        for y in 0..s * n {
            let row = &img[(y % s) * s * c..][..s * c];
            for _ in 0..n {
                out.pixels.extend_from_slice(row);
            }
        }
    }
    out
}

/// Saves a PNG atomically (temp file + rename).
pub fn save_png(path: &Path, img: &RgbaImage) -> Result<()> {
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgba8(img.clone())
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| Error::Internal(format!("PNG encoding: {e}")))?;
    crate::checkpoint::write_atomic(path, &bytes)
}
