//! The auxiliary encoder (image -> posterior mean and log-variance) for the CPU backend.
//!
//! LeDiFlow's FM training encodes every batch with the frozen encoder, and `encode`,
//! interpolation between images and inpainting encode images too. Like the decoder pass, each
//! image runs channels-last: a 3x3 convolution (stride 1 or 2) is an im2col copy plus one
//! matrix product, SiLU one vectorised pass.

use std::cell::RefCell;

use burn::prelude::*;

use super::decoder::Conv3;
use super::{Dense, matmul, silu_in_place};
use crate::model::AuxEncoder;
use crate::model::aux::{ENC_LOGVAR_MAX, ENC_LOGVAR_MIN, ENC_LOGVAR_OFFSET};

/// An [`AuxEncoder`]'s weights in channels-last layouts, with its forward pass.
pub struct CpuEncoder {
    conv_in: Conv3,
    stages: Vec<(Conv3, Conv3)>,
    /// The 4x4 top feature map -> (mu, raw logvar), rows reordered to channels-last.
    head: Dense,
    latent_dim: usize,
}

impl std::fmt::Debug for CpuEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuEncoder {{ stages: {}, latent_dim: {} }}", self.stages.len(), self.latent_dim)
    }
}

thread_local! {
    /// Per-thread feature maps and im2col scratch.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

impl CpuEncoder {
    pub fn from_net<B: Backend>(enc: &AuxEncoder<B>) -> Self {
        let conv_in = Conv3::from_conv(&enc.conv_in);
        let stages: Vec<(Conv3, Conv3)> =
            enc.stages.iter().map(|s| (Conv3::from_conv(&s.down), Conv3::from_conv(&s.conv))).collect();
        assert!(stages.iter().all(|(d, c)| d.stride == 2 && c.stride == 1), "encoder stages: stride 2, then 1");
        let top = stages.last().map_or(conv_in.cout, |(_, c)| c.cout);
        let mut head = Dense::from_linear(&enc.head);
        // burn flattens the top map channels-first: input row c*16 + p -> p*top + c.
        let (rows, cols) = (head.input, head.output);
        assert_eq!(rows, 16 * top, "the encoder head reads a 4x4 map of {top} channels");
        let mut w = vec![0f32; rows * cols];
        for c in 0..top {
            for p in 0..16 {
                w[(p * top + c) * cols..][..cols].copy_from_slice(&head.w[(c * 16 + p) * cols..][..cols]);
            }
        }
        head.w = w;
        Self { conv_in, stages, head, latent_dim: enc.latent_dim }
    }

    /// Images [n, C, H, W] (flat, H = W = 4 * 2^stages) -> (mu, logvar), each [n, latent_dim].
    pub fn forward(&self, images: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let c = self.conv_in.cin;
        let side = 4usize << self.stages.len();
        let plane = side * side;
        assert!(
            images.len().is_multiple_of(c * plane),
            "CpuEncoder::forward: {} numbers are not whole {c}x{side}x{side} images",
            images.len()
        );
        let n = images.len() / (c * plane);
        let d = self.latent_dim;
        let (mut mu, mut logvar) = (vec![0f32; n * d], vec![0f32; n * d]);
        let largest =
            self.stages.iter().map(|(_, conv)| conv.cout).chain([self.conv_in.cout, c]).max().unwrap_or(0) * plane;
        let mut out = vec![0f32; 2 * d];
        SCRATCH.with(|s| {
            let (a, b, col) = &mut *s.borrow_mut();
            a.resize(largest.max(a.len()), 0.0);
            b.resize(largest.max(b.len()), 0.0);
            for (i, img) in images.chunks_exact(c * plane).enumerate() {
                // Channels-first -> channels-last.
                for ch in 0..c {
                    for p in 0..plane {
                        b[p * c + ch] = img[ch * plane + p];
                    }
                }
                self.conv_in.forward(b, side, side, false, col, a);
                silu_in_place(&mut a[..plane * self.conv_in.cout]);
                let mut hw = side;
                for (down, conv) in &self.stages {
                    down.forward(a, hw, hw, false, col, b);
                    hw /= 2;
                    silu_in_place(&mut b[..hw * hw * down.cout]);
                    conv.forward(b, hw, hw, false, col, a);
                    silu_in_place(&mut a[..hw * hw * conv.cout]);
                }
                out.copy_from_slice(&self.head.b);
                let k = self.head.input;
                matmul((1, 2 * d, k), &mut out, 2 * d, true, &a[..k], (k, 1), &self.head.w, (2 * d, 1), 1.0);
                mu[i * d..][..d].copy_from_slice(&out[..d]);
                for (l, raw) in logvar[i * d..][..d].iter_mut().zip(&out[d..]) {
                    *l = (raw + ENC_LOGVAR_OFFSET).clamp(ENC_LOGVAR_MIN, ENC_LOGVAR_MAX);
                }
            }
        });
        (mu, logvar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;
    use crate::config::{ModelConfig, PriorKind};
    use crate::model::cpu::floats;
    use crate::model::cpu::test_util::{max_rel_diff, randomized};
    use burn::tensor::TensorData;

    #[test]
    fn matches_the_burn_encoder() {
        for (preset, channels, size, n) in
            [("tiny", 4, 16, 3), ("tiny", 1, 32, 2), ("small", 4, 32, 2), ("tiny", 3, 64, 1)]
        {
            let cfg = ModelConfig::preset(preset, channels, size, PriorKind::Learned).unwrap();
            let enc = randomized(AuxEncoder::<CpuBackend>::new(&cfg, &Default::default()), 3);
            let fast = CpuEncoder::from_net(&enc);
            let xs = crate::rng::Rng::new(5).normal_vec(n * channels * size * size);
            let x = Tensor::<CpuBackend, 4>::from_data(
                TensorData::new(xs.clone(), [n, channels, size, size]),
                &Default::default(),
            );
            let (mu, logvar) = enc.forward(x);
            let (fmu, flogvar) = fast.forward(&xs);
            assert!(max_rel_diff(&floats(mu), &fmu) < 1e-4, "{preset} {channels}x{size} mu");
            assert!(max_rel_diff(&floats(logvar), &flogvar) < 1e-4, "{preset} {channels}x{size} logvar");
        }
    }
}
