//! Sample-quality metrics that need no downloaded network (docs/METHOD.md): sliced
//! Wasserstein distance on Laplacian-pyramid patches, KID-style unbiased MMD² on pixels and on a
//! fixed random conv feature net, k-NN precision/recall, and distance to the nearest training
//! image (memorisation). Plain Rust on f32 slices: deterministic, no backend needed.
//!
//! Alpha is part of the image for RGBA models: every metric sees all channels. [`sweep`] scores a
//! model over a grid of sampling settings; [`report`] writes such a sweep as markdown and JSON.

mod features;
pub mod report;
mod swd;
pub mod sweep;
mod tiling;

pub use features::RandomConvFeatures;
pub use swd::{SwdConfig, sliced_wasserstein};
pub use tiling::{SeamStats, seam_stats};

use crate::error::{Result, invalid};
use crate::rng::{Purpose, Rng};

/// A set of images, [N, C, H, W] row-major, values in [-1, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    pub count: usize,
    pub channels: usize,
    pub size: usize,
    pub data: Vec<f32>,
}

impl Images {
    pub fn new(count: usize, channels: usize, size: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != count * channels * size * size {
            return invalid(format!("{} values for {count} images of {channels}x{size}x{size}", data.len()));
        }
        Ok(Self { count, channels, size, data })
    }

    /// From 8-bit interleaved pixels (the data set and C ABI layout).
    pub fn from_u8(pixels: &[u8], count: usize, channels: usize, size: usize) -> Result<Self> {
        let plane = size * size;
        if pixels.len() != count * plane * channels {
            return invalid(format!("{} bytes for {count} images of {size}x{size}x{channels}", pixels.len()));
        }
        let mut data = vec![0.0; pixels.len()];
        for n in 0..count {
            let base = n * plane * channels;
            for p in 0..plane {
                for c in 0..channels {
                    data[base + c * plane + p] = pixels[base + p * channels + c] as f32 / 127.5 - 1.0;
                }
            }
        }
        Ok(Self { count, channels, size, data })
    }

    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.channels * self.size * self.size;
        &self.data[i * n..(i + 1) * n]
    }

    pub fn dim(&self) -> usize {
        self.channels * self.size * self.size
    }

    fn check_pair(&self, other: &Images) -> Result<()> {
        if (self.channels, self.size) != (other.channels, other.size) {
            return invalid(format!(
                "image sets differ in shape: {}x{}x{} vs {}x{}x{}",
                self.channels, self.size, self.size, other.channels, other.size, other.size
            ));
        }
        if self.count < 2 || other.count < 2 {
            return invalid("each image set needs at least 2 images");
        }
        Ok(())
    }
}

/// Rows of `dim` features each.
#[derive(Clone, Debug)]
pub struct Features {
    pub rows: usize,
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Features {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Centred on `reference`'s per-dimension mean and divided by its overall RMS (one scalar):
    /// the cubic kernel then sees inputs of unit scale, while dimensions keep their relative
    /// weight (per-dimension z-scores would blow up nearly dead random units).
    pub fn normalized_by(&self, reference: &Features) -> Features {
        let n = reference.rows as f64;
        let mean: Vec<f64> =
            (0..self.dim).map(|j| (0..reference.rows).map(|i| reference.row(i)[j] as f64).sum::<f64>() / n).collect();
        let ms = (0..reference.rows)
            .flat_map(|i| reference.row(i).iter().zip(&mean).map(|(v, m)| (*v as f64 - m).powi(2)))
            .sum::<f64>()
            / (n * self.dim as f64);
        let scale = 1.0 / ms.sqrt().max(1e-12);
        let data = self
            .data
            .chunks(self.dim)
            .flat_map(|r| r.iter().zip(&mean).map(|(v, m)| ((*v as f64 - m) * scale) as f32))
            .collect();
        Features { rows: self.rows, dim: self.dim, data }
    }

    /// Raw pixels as features (for KID on pixels).
    pub fn pixels(images: &Images) -> Self {
        Self { rows: images.count, dim: images.dim(), data: images.data.clone() }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
}

/// KID: the unbiased estimate of MMD² with the cubic kernel k(x, y) = (x.y / d + 1)³ (Bińkowski
/// et al. 2018). Near 0 (it can go slightly negative) when both sets come from one distribution.
pub fn kid(x: &Features, y: &Features) -> Result<f64> {
    if x.dim != y.dim || x.rows < 2 || y.rows < 2 {
        return invalid("kid needs two feature sets of equal width with at least 2 rows each");
    }
    let d = x.dim as f64;
    let k = |a: &[f32], b: &[f32]| (dot(a, b) / d + 1.0).powi(3);
    let within = |f: &Features| {
        let mut s = 0.0;
        for i in 0..f.rows {
            for j in i + 1..f.rows {
                s += k(f.row(i), f.row(j));
            }
        }
        2.0 * s / (f.rows * (f.rows - 1)) as f64
    };
    let mut cross = 0.0;
    for i in 0..x.rows {
        for j in 0..y.rows {
            cross += k(x.row(i), y.row(j));
        }
    }
    Ok(within(x) + within(y) - 2.0 * cross / (x.rows * y.rows) as f64)
}

/// Distance from each row of `a` to its k-th nearest row of `b` (excluding itself when `a` is
/// `b`), Euclidean.
fn kth_nn(a: &Features, b: &Features, k: usize, same: bool) -> Vec<f64> {
    (0..a.rows)
        .map(|i| {
            let mut d: Vec<f64> =
                (0..b.rows).filter(|&j| !(same && i == j)).map(|j| sq_dist(a.row(i), b.row(j))).collect();
            let k = k.min(d.len()).max(1);
            d.select_nth_unstable_by(k - 1, |p, q| p.total_cmp(q));
            d[k - 1].sqrt()
        })
        .collect()
}

/// Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls in feature space:
/// precision = share of generated rows inside some real row's ball (radius: its k-th nearest
/// real neighbour), recall = share of real rows inside some generated row's ball.
pub fn precision_recall(real: &Features, fake: &Features, k: usize) -> Result<(f64, f64)> {
    if real.dim != fake.dim || real.rows <= k || fake.rows <= k || k == 0 {
        return invalid(format!("precision/recall needs more than k = {k} rows in each set, and equal widths"));
    }
    let covered = |manifold: &Features, probe: &Features| {
        let radii = kth_nn(manifold, manifold, k, true);
        let inside = (0..probe.rows)
            .filter(|&i| (0..manifold.rows).any(|j| sq_dist(probe.row(i), manifold.row(j)).sqrt() <= radii[j]))
            .count();
        inside as f64 / probe.rows as f64
    };
    Ok((covered(real, fake), covered(fake, real)))
}

/// Mean RMS pixel distance from each image of `samples` to its nearest image of `train`.
/// Compare it with the same number for held-out real images: much smaller means copying.
pub fn nearest_train_distance(samples: &Images, train: &Images) -> Result<f64> {
    samples.check_pair(train)?;
    let d = samples.dim() as f64;
    let total: f64 = (0..samples.count)
        .map(|i| {
            let best =
                (0..train.count).map(|j| sq_dist(samples.image(i), train.image(j))).fold(f64::INFINITY, f64::min);
            (best / d).sqrt()
        })
        .sum();
    Ok(total / samples.count as f64)
}

/// Every metric of one image set against the reference (held-out) set.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// SWD x 1e3, mean over pyramid levels.
    pub swd: f64,
    /// SWD x 1e3 per pyramid level, finest first.
    pub swd_levels: Vec<f64>,
    /// KID (x 1e3) on raw pixels.
    pub kid_pixels: f64,
    /// KID (x 1e3) on the random conv features.
    pub kid_features: f64,
    pub precision: f64,
    pub recall: f64,
    /// Mean RMS distance of samples to their nearest training image (None without a training set).
    pub nearest_train: Option<f64>,
    /// Class-conditional sets: per class, the share of its images whose nearest reference image
    /// (random conv features) has the same class ([`nearest_class_accuracy`]); empty otherwise.
    pub class_accuracy: Vec<f64>,
}

impl Report {
    /// The mean of [`Report::class_accuracy`] over the classes (None for an unlabelled set).
    pub fn mean_class_accuracy(&self) -> Option<f64> {
        let a = &self.class_accuracy;
        (!a.is_empty()).then(|| a.iter().sum::<f64>() / a.len() as f64)
    }
}

impl Report {
    /// The mean report over several independent sample sets (for example one per sampling seed)
    /// and the sample standard deviation of each metric (`swd_levels` of the spread left empty;
    /// all zero for a single report). With a few hundred samples the sample draw moves the
    /// metrics by more than many differences between models: compare means over seeds.
    pub fn mean_and_sd(reports: &[Report]) -> Result<(Report, Report)> {
        let n = reports.len();
        if n == 0 {
            return invalid("no reports to average");
        }
        let mean_sd = |f: &dyn Fn(&Report) -> f64| {
            let m = reports.iter().map(f).sum::<f64>() / n as f64;
            let var =
                if n > 1 { reports.iter().map(|r| (f(r) - m).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
            (m, var.sqrt())
        };
        let levels = reports[0].swd_levels.len();
        let classes = reports[0].class_accuracy.len();
        if reports.iter().any(|r| {
            r.swd_levels.len() != levels
                || r.nearest_train.is_some() != reports[0].nearest_train.is_some()
                || r.class_accuracy.len() != classes
        }) {
            return invalid("reports of different shapes cannot be averaged");
        }
        let (swd, swd_sd) = mean_sd(&|r| r.swd);
        let (kid_pixels, kid_pixels_sd) = mean_sd(&|r| r.kid_pixels);
        let (kid_features, kid_features_sd) = mean_sd(&|r| r.kid_features);
        let (precision, precision_sd) = mean_sd(&|r| r.precision);
        let (recall, recall_sd) = mean_sd(&|r| r.recall);
        let nearest = reports[0].nearest_train.map(|_| mean_sd(&|r| r.nearest_train.unwrap_or(0.0)));
        let mean = Report {
            swd,
            swd_levels: (0..levels).map(|l| mean_sd(&|r| r.swd_levels[l]).0).collect(),
            kid_pixels,
            kid_features,
            precision,
            recall,
            nearest_train: nearest.map(|v| v.0),
            class_accuracy: (0..classes).map(|c| mean_sd(&|r| r.class_accuracy[c]).0).collect(),
        };
        let sd = Report {
            swd: swd_sd,
            swd_levels: Vec::new(),
            kid_pixels: kid_pixels_sd,
            kid_features: kid_features_sd,
            precision: precision_sd,
            recall: recall_sd,
            nearest_train: nearest.map(|v| v.1),
            class_accuracy: (0..classes).map(|c| mean_sd(&|r| r.class_accuracy[c]).1).collect(),
        };
        Ok((mean, sd))
    }
}

/// Settings of [`evaluate`]; the defaults are the documented protocol.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    pub swd: SwdConfig,
    /// k of the k-NN precision/recall.
    pub k: usize,
    /// Seed of the random conv feature net.
    pub feature_seed: u64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self { swd: SwdConfig::default(), k: 3, feature_seed: 0 }
    }
}

pub fn evaluate(samples: &Images, reference: &Images, train: Option<&Images>, cfg: &EvalConfig) -> Result<Report> {
    evaluate_with(samples, reference, train, None, cfg)
}

/// Class labels of a sample set and of its reference set, for [`evaluate_classes`].
#[derive(Clone, Copy, Debug)]
pub struct Labels<'a> {
    pub samples: &'a [u32],
    pub reference: &'a [u32],
    pub classes: usize,
}

/// [`evaluate`] plus, per class, [`nearest_class_accuracy`] in the random conv features
/// (normalised by the reference, as for precision and recall).
pub fn evaluate_classes(
    samples: &Images,
    reference: &Images,
    train: Option<&Images>,
    labels: Labels,
    cfg: &EvalConfig,
) -> Result<Report> {
    evaluate_with(samples, reference, train, Some(labels), cfg)
}

/// Every metric, the features extracted once for all that use them.
fn evaluate_with(
    samples: &Images,
    reference: &Images,
    train: Option<&Images>,
    labels: Option<Labels>,
    cfg: &EvalConfig,
) -> Result<Report> {
    samples.check_pair(reference)?;
    let swd_levels = sliced_wasserstein(samples, reference, &cfg.swd)?;
    let swd = swd_levels.iter().sum::<f64>() / swd_levels.len() as f64;
    let net = RandomConvFeatures::new(samples.channels, cfg.feature_seed);
    let fr_raw = net.extract(reference);
    let (fs, fr) = (net.extract(samples).normalized_by(&fr_raw), fr_raw.normalized_by(&fr_raw));
    let (precision, recall) = precision_recall(&fr, &fs, cfg.k)?;
    Ok(Report {
        swd,
        swd_levels,
        kid_pixels: 1e3 * kid(&Features::pixels(samples), &Features::pixels(reference))?,
        kid_features: 1e3 * kid(&fs, &fr)?,
        precision,
        recall,
        nearest_train: train.map(|t| nearest_train_distance(samples, t)).transpose()?,
        class_accuracy: labels.map(|l| nearest_class_accuracy(&fs, &fr, l)).transpose()?.unwrap_or_default(),
    })
}

/// Per class c (0..labels.classes): the share of the sample rows labelled c whose nearest
/// reference row (Euclidean) is labelled c too. A class-conditional model whose class-c samples
/// look like class c scores near the real images' own accuracy; one that ignores the class
/// scores about the reference's share of the nearest class. A class without samples scores 0.
pub fn nearest_class_accuracy(samples: &Features, reference: &Features, labels: Labels) -> Result<Vec<f64>> {
    if samples.rows != labels.samples.len() || reference.rows != labels.reference.len() {
        return invalid(format!(
            "{} and {} labels for {} samples and {} reference rows",
            labels.samples.len(),
            labels.reference.len(),
            samples.rows,
            reference.rows
        ));
    }
    if samples.dim != reference.dim || reference.rows == 0 {
        return invalid("nearest-class accuracy needs a non-empty reference of the samples' width");
    }
    if let Some(&l) = labels.samples.iter().chain(labels.reference).find(|&&l| l as usize >= labels.classes) {
        return invalid(format!("label {l} is not one of {} classes", labels.classes));
    }
    let (mut hits, mut total) = (vec![0usize; labels.classes], vec![0usize; labels.classes]);
    for i in 0..samples.rows {
        let nearest = (0..reference.rows)
            .map(|j| (sq_dist(samples.row(i), reference.row(j)), j))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, j)| j)
            .unwrap_or(0);
        let c = labels.samples[i] as usize;
        total[c] += 1;
        hits[c] += usize::from(labels.reference[nearest] as usize == c);
    }
    Ok(hits.iter().zip(&total).map(|(&h, &n)| if n == 0 { 0.0 } else { h as f64 / n as f64 }).collect())
}

/// A fixed-seed standard normal vector (projections, random weights).
pub(crate) fn normals(seed: u64, index: u64, n: usize) -> Vec<f32> {
    Rng::stream(seed, index, Purpose::Evaluation).normal_vec(n)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Images from one simple distribution: a soft disc of a random colour and place on a
    /// transparent background, so pixels, patches and structure all vary.
    pub fn blobs(count: usize, size: usize, seed: u64) -> Images {
        let mut rng = Rng::new(seed);
        let c = 4;
        let plane = size * size;
        let mut data = vec![-1.0f32; count * c * plane];
        for n in 0..count {
            let (cx, cy) = (rng.uniform() * size as f64, rng.uniform() * size as f64);
            let r = 3.0 + rng.uniform() * size as f64 / 4.0;
            let col = [rng.uniform() * 2.0 - 1.0, rng.uniform() * 2.0 - 1.0, rng.uniform() * 2.0 - 1.0];
            for y in 0..size {
                for x in 0..size {
                    let d = ((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)).sqrt();
                    let a = (1.0 - (d - r).max(0.0) / 2.0).clamp(0.0, 1.0);
                    let stripe = if (x + y) % 4 < 2 { 0.2 } else { -0.2 };
                    for (ch, v) in col.iter().enumerate() {
                        data[(n * c + ch) * plane + y * size + x] = ((v + stripe) * a) as f32;
                    }
                    data[(n * c + 3) * plane + y * size + x] = (2.0 * a - 1.0) as f32;
                }
            }
        }
        Images::new(count, c, size, data).unwrap()
    }

    pub fn add_noise(img: &Images, sigma: f32, seed: u64) -> Images {
        let noise = normals(seed, 99, img.data.len());
        let data = img.data.iter().zip(noise).map(|(v, e)| (v + sigma * e).clamp(-1.0, 1.0)).collect();
        Images { data, ..img.clone() }
    }

    /// Box blur of radius r, per channel (clamped borders).
    pub fn blur(img: &Images, r: usize) -> Images {
        let s = img.size as isize;
        let mut out = img.clone();
        let r = r as isize;
        for (plane_in, plane_out) in img.data.chunks(img.size * img.size).zip(out.data.chunks_mut(img.size * img.size))
        {
            for y in 0..s {
                for x in 0..s {
                    let mut sum = 0.0;
                    let mut n = 0.0;
                    for dy in -r..=r {
                        for dx in -r..=r {
                            let (yy, xx) = ((y + dy).clamp(0, s - 1), (x + dx).clamp(0, s - 1));
                            sum += plane_in[(yy * s + xx) as usize];
                            n += 1.0;
                        }
                    }
                    plane_out[(y * s + x) as usize] = sum / n;
                }
            }
        }
        out
    }

    #[test]
    fn nearest_class_accuracy_counts_each_class_by_its_samples_neighbours() {
        let f =
            |rows: &[[f32; 2]]| Features { rows: rows.len(), dim: 2, data: rows.iter().flatten().copied().collect() };
        let reference = f(&[[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]]);
        let samples = f(&[[0.05, 0.0], [4.9, 5.0], [0.0, 0.1], [5.0, 4.9]]);
        let labels = Labels { samples: &[0, 1, 1, 1], reference: &[0, 0, 1, 1], classes: 3 };
        // Class 0: its one sample lies by class 0; class 1: two of three by class 1; class 2: none.
        assert_eq!(nearest_class_accuracy(&samples, &reference, labels).unwrap(), vec![1.0, 2.0 / 3.0, 0.0]);
        let out_of_range = Labels { samples: &[0, 1, 3, 1], ..labels };
        assert!(
            nearest_class_accuracy(&samples, &reference, out_of_range).unwrap_err().to_string().contains("label 3")
        );
        let short = Labels { samples: &[0, 1], ..labels };
        assert!(nearest_class_accuracy(&samples, &reference, short).is_err());
    }

    #[test]
    fn mean_and_sd_of_reports() {
        let r = |swd: f64, nt: f64| Report {
            swd,
            swd_levels: vec![swd, 2.0 * swd],
            kid_pixels: 1.0,
            kid_features: -swd,
            precision: 0.5,
            recall: swd / 10.0,
            nearest_train: Some(nt),
            class_accuracy: vec![swd / 4.0],
        };
        let (m, sd) = Report::mean_and_sd(&[r(1.0, 0.2), r(3.0, 0.4)]).unwrap();
        assert!((m.swd - 2.0).abs() < 1e-12 && (sd.swd - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(m.swd_levels, vec![2.0, 4.0]);
        assert!((m.kid_features + 2.0).abs() < 1e-12 && (m.recall - 0.2).abs() < 1e-12);
        assert!(sd.kid_pixels.abs() < 1e-12 && sd.precision.abs() < 1e-12);
        assert!((m.nearest_train.unwrap() - 0.3).abs() < 1e-12);
        let (one, zero) = Report::mean_and_sd(&[r(5.0, 0.1)]).unwrap();
        assert_eq!((one.swd, zero.swd, zero.nearest_train), (5.0, 0.0, Some(0.0)));
        assert!(Report::mean_and_sd(&[]).is_err());
        let mut other = r(1.0, 0.1);
        other.nearest_train = None;
        assert!(Report::mean_and_sd(&[r(1.0, 0.1), other]).is_err());
    }

    fn increasing(v: &[f64]) -> bool {
        v.windows(2).all(|w| w[1] > w[0])
    }

    #[test]
    fn metrics_are_near_zero_for_one_distribution_and_grow_with_distortion() {
        // Fewer projections than the protocol's 512 keep the test fast; the estimate is the same.
        let cfg = EvalConfig { swd: SwdConfig { projections: 128, ..Default::default() }, ..Default::default() };
        let real = blobs(160, 16, 1);
        let same = blobs(160, 16, 2);
        let base = evaluate(&same, &real, None, &cfg).unwrap();
        let noisy: Vec<Report> =
            [0.05, 0.15, 0.4].iter().map(|&s| evaluate(&add_noise(&same, s, 3), &real, None, &cfg).unwrap()).collect();
        let blurred: Vec<Report> =
            [1, 2, 4].iter().map(|&r| evaluate(&blur(&same, r), &real, None, &cfg).unwrap()).collect();
        eprintln!("same distribution: {base:?}");
        for (what, series) in [("noise 0.05/0.15/0.4", &noisy), ("blur 1/2/4", &blurred)] {
            for r in series.iter() {
                eprintln!("{what}: {r:?}");
            }
        }
        for series in [&noisy, &blurred] {
            let mut swd = vec![base.swd];
            swd.extend(series.iter().map(|r| r.swd));
            let mut kp = vec![base.kid_pixels];
            kp.extend(series.iter().map(|r| r.kid_pixels));
            let mut kf = vec![base.kid_features];
            kf.extend(series.iter().map(|r| r.kid_features));
            assert!(increasing(&swd), "swd {swd:?}");
            assert!(increasing(&kf), "kid features {kf:?}");
            // Blur keeps the mean image, so pixel KID barely sees mild blur; noise it must see.
            if std::ptr::eq(series, &noisy) {
                assert!(increasing(&kp), "kid pixels {kp:?}");
            }
            assert!(series.last().unwrap().precision < base.precision, "precision {base:?} vs {series:?}");
        }
        // Same distribution: the smallest value (SWD keeps a finite-sample floor: 160 images of
        // 64 patches), KID near 0, precision/recall high.
        assert!(base.swd < 0.5 * noisy[2].swd, "{base:?}");
        assert!(base.kid_features.abs() < 0.1 * noisy[2].kid_features, "{base:?} vs {:?}", noisy[2]);
        assert!(base.kid_pixels.abs() < 0.1 * noisy[2].kid_pixels, "{base:?} vs {:?}", noisy[2]);
        assert!(base.precision > 0.8 && base.recall > 0.8, "{base:?}");
    }

    #[test]
    fn kid_is_unbiased_around_zero() {
        let a = Features::pixels(&blobs(200, 8, 5));
        let b = Features::pixels(&blobs(200, 8, 6));
        let same = kid(&a, &b).unwrap();
        let other = Features::pixels(&blur(&blobs(200, 8, 6), 2));
        let differ = kid(&a, &other).unwrap();
        assert!(same.abs() < 0.3 * differ, "same {same}, blurred {differ}");
    }

    #[test]
    fn copies_of_the_training_set_are_flagged() {
        let train = blobs(50, 8, 7);
        let copies = Images { count: 10, data: train.data[..10 * train.dim()].to_vec(), ..train.clone() };
        let fresh = blobs(10, 8, 8);
        assert_eq!(nearest_train_distance(&copies, &train).unwrap(), 0.0);
        assert!(nearest_train_distance(&fresh, &train).unwrap() > 0.01);
    }

    #[test]
    fn mismatched_sets_are_rejected() {
        let a = blobs(4, 8, 1);
        let b = blobs(4, 16, 1);
        assert!(evaluate(&a, &b, None, &EvalConfig::default()).is_err());
        assert!(Images::new(2, 4, 8, vec![0.0; 3]).is_err());
    }
}
