//! Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, ProGAN's
//! protocol): per pyramid level, random 7x7 patches of every image, each set of descriptors
//! normalised per channel by its own mean and standard deviation, then the mean over random unit
//! projections of the 1-D Wasserstein-1 distance between the sorted projected values.

use super::{Images, normals};
use crate::error::{Result, invalid};
use crate::rng::{Purpose, Rng};

/// The protocol's settings (defaults: ProGAN's, with 16x16 as the coarsest level).
#[derive(Clone, Debug)]
pub struct SwdConfig {
    pub patch_size: usize,
    pub patches_per_image: usize,
    pub projections: usize,
    /// Coarsest pyramid level kept (a 32x32 image gives levels 32 and 16).
    pub min_resolution: usize,
    pub seed: u64,
}

impl Default for SwdConfig {
    fn default() -> Self {
        Self { patch_size: 7, patches_per_image: 64, projections: 512, min_resolution: 16, seed: 0 }
    }
}

const BINOMIAL: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];

/// Index `i` reflected into 0..n (the mirror excludes the edge pixel, as in numpy's "reflect").
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let i = if i < 0 { -i } else { i };
    (if i >= n { 2 * n - 2 - i } else { i }).clamp(0, n - 1) as usize
}

/// 5x5 binomial blur (reflected borders), then every second pixel.
fn downsample(plane: &[f32], s: usize) -> Vec<f32> {
    let h = s / 2;
    let mut out = vec![0.0; h * h];
    for y in 0..h {
        for x in 0..h {
            let mut acc = 0.0;
            for (dy, wy) in BINOMIAL.iter().enumerate() {
                for (dx, wx) in BINOMIAL.iter().enumerate() {
                    let yy = reflect(2 * y as isize + dy as isize - 2, s);
                    let xx = reflect(2 * x as isize + dx as isize - 2, s);
                    acc += wy * wx * plane[yy * s + xx];
                }
            }
            out[y * h + x] = acc;
        }
    }
    out
}

/// Nearest-neighbour 2x upsampling followed by the same binomial blur (times 4 to keep the level).
fn upsample(plane: &[f32], h: usize) -> Vec<f32> {
    let s = 2 * h;
    let mut up = vec![0.0; s * s];
    for y in 0..h {
        for x in 0..h {
            up[2 * y * s + 2 * x] = 4.0 * plane[y * h + x];
        }
    }
    let mut out = vec![0.0; s * s];
    for y in 0..s {
        for x in 0..s {
            let mut acc = 0.0;
            for (dy, wy) in BINOMIAL.iter().enumerate() {
                for (dx, wx) in BINOMIAL.iter().enumerate() {
                    acc += wy
                        * wx
                        * up[reflect(y as isize + dy as isize - 2, s) * s + reflect(x as isize + dx as isize - 2, s)];
                }
            }
            out[y * s + x] = acc;
        }
    }
    out
}

/// Laplacian pyramid of one image (channels as planes): finest level first, the coarsest is
/// the Gaussian level itself. Each level: (size, C planes).
fn pyramid(image: &[f32], channels: usize, size: usize, min_res: usize) -> Vec<(usize, Vec<Vec<f32>>)> {
    let mut gauss: Vec<(usize, Vec<Vec<f32>>)> =
        vec![(size, image.chunks(size * size).map(|p| p.to_vec()).collect::<Vec<_>>())];
    while gauss.last().unwrap().0 / 2 >= min_res && gauss.last().unwrap().0 >= 4 {
        let (s, planes) = gauss.last().unwrap();
        let next: Vec<Vec<f32>> = planes.iter().map(|p| downsample(p, *s)).collect();
        gauss.push((s / 2, next));
    }
    debug_assert_eq!(gauss[0].1.len(), channels);
    let mut levels = Vec::with_capacity(gauss.len());
    for k in 0..gauss.len() {
        let (s, planes) = &gauss[k];
        if k + 1 < gauss.len() {
            let coarse = &gauss[k + 1].1;
            let lap = planes
                .iter()
                .zip(coarse)
                .map(|(p, c)| p.iter().zip(upsample(c, s / 2)).map(|(a, b)| a - b).collect())
                .collect();
            levels.push((*s, lap));
        } else {
            levels.push((*s, planes.clone()));
        }
    }
    levels
}

/// Descriptors of one level for a whole image set: rows of patch*patch*C values.
fn descriptors(images: &Images, level: usize, cfg: &SwdConfig, set: u64) -> Result<(usize, Vec<f32>)> {
    let p = cfg.patch_size;
    let c = images.channels;
    let mut out = Vec::new();
    let mut rows = 0;
    for i in 0..images.count {
        let levels = pyramid(images.image(i), c, images.size, cfg.min_resolution.min(images.size));
        let (s, planes) = &levels[level];
        if *s < p {
            return invalid(format!("pyramid level {s}x{s} is smaller than the {p}x{p} patches"));
        }
        let mut rng =
            Rng::stream(cfg.seed ^ set.wrapping_mul(0x9E37_79B9), (i * 16 + level) as u64, Purpose::Evaluation);
        for _ in 0..cfg.patches_per_image {
            let (y0, x0) = (rng.below(s - p + 1), rng.below(s - p + 1));
            for plane in planes {
                for y in y0..y0 + p {
                    out.extend_from_slice(&plane[y * s + x0..y * s + x0 + p]);
                }
            }
            rows += 1;
        }
    }
    // Per-channel normalisation by this set's own statistics (ProGAN's finalize_descriptors).
    let per = p * p;
    for ch in 0..c {
        let vals = || out.chunks(per * c).flat_map(|r| r[ch * per..(ch + 1) * per].iter());
        let n = (rows * per) as f64;
        let mean = vals().map(|v| *v as f64).sum::<f64>() / n;
        let var = vals().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
        let std = var.sqrt().max(1e-8);
        for r in out.chunks_mut(per * c) {
            for v in &mut r[ch * per..(ch + 1) * per] {
                *v = ((*v as f64 - mean) / std) as f32;
            }
        }
    }
    Ok((rows, out))
}

/// SWD x 1e3 per pyramid level (finest first) between two image sets.
pub fn sliced_wasserstein(a: &Images, b: &Images, cfg: &SwdConfig) -> Result<Vec<f64>> {
    a.check_pair(b)?;
    if cfg.projections == 0 || cfg.patches_per_image == 0 || cfg.patch_size == 0 {
        return invalid("SWD needs projections, patches and a patch size above 0");
    }
    let levels = pyramid(a.image(0), a.channels, a.size, cfg.min_resolution.min(a.size)).len();
    let dim = cfg.patch_size * cfg.patch_size * a.channels;
    let mut result = Vec::with_capacity(levels);
    for level in 0..levels {
        let (na, da) = descriptors(a, level, cfg, 1)?;
        let (nb, db) = descriptors(b, level, cfg, 2)?;
        let m = na.min(nb);
        let mut total = 0.0;
        for j in 0..cfg.projections {
            let mut dir = normals(cfg.seed, 1000 + j as u64, dim);
            let norm = dir.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            dir.iter_mut().for_each(|v| *v /= norm);
            let project = |d: &[f32], n: usize| {
                let mut v: Vec<f32> = d.chunks(dim).map(|r| r.iter().zip(&dir).map(|(x, w)| x * w).sum()).collect();
                v.sort_unstable_by(|p, q| p.total_cmp(q));
                // Equal-size quantile grids when the sets differ in size.
                (0..m).map(|q| v[q * n / m]).collect::<Vec<f32>>()
            };
            let (pa, pb) = (project(&da, na), project(&db, nb));
            total += pa.iter().zip(&pb).map(|(x, y)| (x - y).abs() as f64).sum::<f64>() / m as f64;
        }
        result.push(1e3 * total / cfg.projections as f64);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyramid_levels_and_reconstruction() {
        let img = crate::eval::tests::blobs(1, 32, 3);
        let lv = pyramid(img.image(0), 4, 32, 16);
        assert_eq!(lv.iter().map(|l| l.0).collect::<Vec<_>>(), vec![32, 16]);
        // Laplacian + upsampled coarse level gives the image back.
        for ch in 0..4 {
            let up = upsample(&lv[1].1[ch], 16);
            for (k, v) in lv[0].1[ch].iter().zip(up).map(|(l, u)| l + u).enumerate() {
                assert!((v - img.image(0)[ch * 1024 + k]).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn a_constant_image_has_a_flat_laplacian() {
        let lv = pyramid(&vec![0.3; 4 * 32 * 32], 4, 32, 16);
        assert!(lv[0].1.iter().flatten().all(|v| v.abs() < 1e-5));
        assert!(lv[1].1.iter().flatten().all(|v| (v - 0.3).abs() < 1e-5));
    }
}
