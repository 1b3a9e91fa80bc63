//! Working-memory estimate of one image in one network batch, for a model's memory limit.

use crate::config::{ModelConfig, PriorKind};

/// Bytes of working memory one image needs in one batch, generously estimated: the DiT's widest
/// activations (attention scores, MLP hidden) kept for a forward pass, the per-pixel head's
/// full-resolution maps (`dit.pixel_head` channels: about six of them plus a 9x unfolded
/// convolution input where a backend uses im2col), the auxiliary decoder's feature maps, and six
/// image-sized solver tensors (RK4's stages). Inpainting with K `candidates` decodes K + 1
/// latents per image at once: per candidate, the decoder's maps and four image-sized tensors
/// (prior mean and log-variance, the masked error and its square).
pub fn bytes_per_image(cfg: &ModelConfig, candidates: usize) -> usize {
    let s = cfg.image.size;
    let c = cfg.image.channels;
    let tokens = (s / cfg.dit.patch_size).pow(2);
    let d = cfg.dit.dim;
    let hidden = d * cfg.dit.mlp_ratio;
    let dit = tokens * (8 * d + 2 * hidden) + 3 * cfg.dit.heads * tokens * tokens;
    let head = (6 + 9) * cfg.dit.pixel_head * s * s;
    let decoder = if cfg.prior == PriorKind::Learned { 8 * cfg.aux.base_channels * s * s } else { 0 };
    let solver = 6 * c * s * s;
    let decoded = if candidates > 0 { (candidates + 1) * (decoder + 4 * c * s * s) } else { 0 };
    (dit + head + decoder + solver + decoded) * size_of::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-pixel head works at full resolution: for the shipped geometry its maps outweigh
    /// the DiT's token activations, so a limit sized without them would let batches several
    /// times too large through.
    #[test]
    fn memory_estimate_counts_the_pixel_head() {
        let mut cfg = ModelConfig::preset("small", 4, 32, PriorKind::Gaussian).unwrap();
        let plain = bytes_per_image(&cfg, 0);
        cfg.dit.pixel_head = 32;
        let head = bytes_per_image(&cfg, 0);
        assert!(head - plain >= 15 * 32 * 32 * 32 * 4, "{plain} -> {head}");
        assert!(head > 2 * plain, "{plain} -> {head}");
    }
}
