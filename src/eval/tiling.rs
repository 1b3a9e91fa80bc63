//! How seamlessly images tile: the seam ratio of 8-bit images.

use crate::error::{Result, invalid};

/// Mean absolute differences between neighbouring pixels of 8-bit images (`count` images of
/// `width` x `height` x `channels`, interleaved, row-major), every channel counted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeamStats {
    /// Over the pairs that are neighbours only across the wrap: (row, W-1)-(row, 0) and
    /// (H-1, col)-(0, col).
    pub across_wrap: f64,
    /// Over the horizontally and vertically neighbouring pairs inside each image.
    pub interior: f64,
}

impl SeamStats {
    /// across_wrap / interior: about 1 when the opposite edges join like any two neighbouring
    /// rows or columns (a seamless tile), far above 1 for a visible seam. NaN for flat images.
    pub fn ratio(&self) -> f64 {
        self.across_wrap / self.interior
    }
}

/// The [`SeamStats`] of `pixels`, pooled over all its images.
pub fn seam_stats(pixels: &[u8], width: usize, height: usize, channels: usize) -> Result<SeamStats> {
    let per = width * height * channels;
    if width < 2 || height < 2 || channels == 0 || pixels.is_empty() || !pixels.len().is_multiple_of(per) {
        return invalid(format!(
            "{} bytes are not whole {width}x{height}x{channels} images of at least 2x2 pixels",
            pixels.len()
        ));
    }
    // (sum of |differences|, pairs) across the wrap and inside the image.
    let (mut wrap, mut inner) = ((0u64, 0u64), (0u64, 0u64));
    let at = |y: usize, x: usize| (y * width + x) * channels;
    for img in pixels.chunks_exact(per) {
        let mut add = |across: bool, a: usize, b: usize| {
            let d: u64 = (0..channels).map(|k| img[a + k].abs_diff(img[b + k]) as u64).sum();
            let acc = if across { &mut wrap } else { &mut inner };
            acc.0 += d;
            acc.1 += 1;
        };
        for y in 0..height {
            for x in 0..width {
                add(x + 1 == width, at(y, x), at(y, (x + 1) % width));
                add(y + 1 == height, at(y, x), at((y + 1) % height, x));
            }
        }
    }
    let c = channels as f64;
    Ok(SeamStats { across_wrap: wrap.0 as f64 / (wrap.1 as f64 * c), interior: inner.0 as f64 / (inner.1 as f64 * c) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_periodic_image_has_ratio_one_and_a_ramp_a_seam() {
        // A horizontal sine-like periodic pattern and its vertical copy: every neighbour pair,
        // across the wrap or not, differs by the same amount.
        let (w, h) = (8, 8);
        let wave = [0u8, 10, 20, 30, 40, 30, 20, 10];
        let periodic: Vec<u8> = (0..h).flat_map(|y| (0..w).map(move |x| wave[x] / 2 + wave[y] / 2)).collect();
        let s = seam_stats(&periodic, w, h, 1).unwrap();
        assert!((s.ratio() - 1.0).abs() < 0.2, "{s:?}");
        // A ramp 0..70 has steps of 10 inside and a jump of 70 across the wrap.
        let ramp: Vec<u8> = (0..h).flat_map(|_| (0..w).map(|x| (x * 10) as u8)).collect();
        let s = seam_stats(&ramp, w, h, 1).unwrap();
        assert!(s.ratio() > 5.0, "{s:?}");
        assert!(seam_stats(&ramp[..10], w, h, 1).is_err());
    }
}
