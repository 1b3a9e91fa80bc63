//! Seeded random numbers owned by the caller, not by the backend.
//!
//! burn's backend RNG is global state: two models or two threads would disturb each other's
//! draws. Every draw here comes from an explicit stream (seed, index, purpose), so results are
//! reproducible, independent of batch composition (image i of a batch gets the same noise as
//! the same image alone), and the state can be saved for an exact training resume.

use burn::prelude::*;
use burn::tensor::TensorData;

/// What a stream of noise is for; keeps the streams of one seed independent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// w ~ N(0, I) fed to the latent flow model.
    LatentNoise = 1,
    /// eps in x0 = mu_P + s * sigma_P * eps (or the Gaussian baseline's x0).
    PriorNoise = 2,
    /// Candidate latents tried by inpainting.
    InpaintCandidates = 3,
    /// Training draws.
    Training = 4,
    /// Evaluation: metric projections, random feature weights, patch positions.
    Evaluation = 5,
    /// The circular shifts of tileable sampling (one stream per solver time).
    TileShift = 6,
    /// Variations: the fresh prior draw of each (image, variation).
    Variation = 7,
}

/// xoshiro256++ seeded through SplitMix64: small, fast, and identical on every platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        Self { s: [splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm)] }
    }

    /// An independent stream for item `index` of a call seeded with `seed`, for `purpose`.
    pub fn stream(seed: u64, index: u64, purpose: Purpose) -> Self {
        let mut sm = seed ^ 0x5DEE_CE66_D1A4_F87D;
        let a = splitmix64(&mut sm);
        let mut sm2 = a ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((purpose as u64) << 56);
        Self::new(splitmix64(&mut sm2))
    }

    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    pub fn from_state(s: [u64; 4]) -> Self {
        Self { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Standard normal draws (Box-Muller in f64, both outputs used).
    pub fn fill_normal(&mut self, out: &mut [f32]) {
        let mut i = 0;
        while i < out.len() {
            let u1 = 1.0 - self.uniform(); // (0, 1]: log is finite
            let u2 = self.uniform();
            let r = (-2.0 * u1.ln()).sqrt();
            let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
            out[i] = (r * c) as f32;
            if i + 1 < out.len() {
                out[i + 1] = (r * s) as f32;
            }
            i += 2;
        }
    }

    pub fn normal_vec(&mut self, n: usize) -> Vec<f32> {
        let mut v = vec![0.0; n];
        self.fill_normal(&mut v);
        v
    }
}

/// A [count, rest...] tensor of standard normals where row i comes from stream (seed, first + i).
pub fn normal_rows<B: Backend, const D: usize>(
    seed: u64,
    first: u64,
    purpose: Purpose,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    let per_row: usize = shape[1..].iter().product();
    let mut data = vec![0.0f32; shape[0] * per_row];
    for (i, row) in data.chunks_mut(per_row.max(1)).enumerate() {
        Rng::stream(seed, first + i as u64, purpose).fill_normal(row);
    }
    Tensor::from_data(TensorData::new(data, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_have_unit_moments() {
        let v = Rng::new(7).normal_vec(200_000);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "var {var}");
    }

    #[test]
    fn streams_are_distinct_and_reproducible() {
        let a = Rng::stream(1, 0, Purpose::PriorNoise).next_u64();
        assert_eq!(a, Rng::stream(1, 0, Purpose::PriorNoise).next_u64());
        assert_ne!(a, Rng::stream(1, 1, Purpose::PriorNoise).next_u64());
        assert_ne!(a, Rng::stream(1, 0, Purpose::LatentNoise).next_u64());
        assert_ne!(a, Rng::stream(2, 0, Purpose::PriorNoise).next_u64());
    }
}
