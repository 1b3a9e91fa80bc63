//! Model hyperparameters with named presets. Everything that shapes a tensor lives here, and
//! the whole struct is stored as JSON inside every model file, so a file describes itself.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which distribution the image flow starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PriorKind {
    /// LeDiFlow: a per-image Gaussian from the auxiliary decoder, fed by the latent flow model.
    Learned,
    /// The baseline: x0 ~ N(0, I).
    Gaussian,
}

impl PriorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PriorKind::Learned => "learned",
            PriorKind::Gaussian => "gaussian",
        }
    }
}

/// Image geometry: square images of `size` pixels with `channels` channels (1, 3 or 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSpec {
    pub channels: usize,
    pub size: usize,
}

impl ImageSpec {
    pub fn pixels(&self) -> usize {
        self.size * self.size
    }
    pub fn numel(&self) -> usize {
        self.channels * self.pixels()
    }
}

/// Auxiliary encoder/decoder (the learned prior).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuxConfig {
    pub latent_dim: usize,
    /// Channels of the first conv stage; doubled at every downsampling, capped at 4x.
    pub base_channels: usize,
    /// Decoder log-variance is squashed into [logvar_min, logvar_max] (smoothly, with a sigmoid).
    pub logvar_min: f32,
    pub logvar_max: f32,
}

/// Latent flow model: time-conditioned residual MLP on R^latent_dim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentFlowConfig {
    pub hidden: usize,
    pub blocks: usize,
}

/// DiT-style image velocity network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DitConfig {
    pub patch_size: usize,
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub mlp_ratio: usize,
    /// What the network outputs (absent in files written before it existed: velocity).
    #[serde(default)]
    pub prediction: Prediction,
    /// Hidden channels of an optional per-pixel head (0 = none, the plain DiT; absent in files
    /// written before it existed). The DiT works on patch tokens, and its output for a patch is
    /// one linear map of one token, so fine per-pixel structure inside a patch is hard for it to
    /// draw. The head (in the spirit of U-ViT's output conv and DeCo's pixel decoder) adds
    /// 3x3 convolutions at full resolution over x_t, conditioned on the DiT's final tokens,
    /// and adds their output to the DiT's.
    #[serde(default)]
    pub pixel_head: usize,
    /// Whether the per-pixel head's first features are scaled and shifted per channel by the
    /// flow time (adaLN-style, from the DiT's time conditioning, zero-initialised). The velocity
    /// holds x_t with a gain that depends on t; an unmodulated head can only add t-dependent
    /// features to its conv of x_t. Needs `pixel_head` > 0.
    #[serde(default)]
    pub pixel_head_time: bool,
}

/// What the image network's output means; sampling and training turn it into the velocity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prediction {
    /// The velocity x1 - x0 itself.
    #[default]
    Velocity,
    /// The clean image x1 ("x-prediction", Li & He 2025, "Back to Basics: Let Denoising
    /// Generative Models Denoise"): velocity = (x1_hat - x_t) / max(1 - t, 0.05). A clean image
    /// is easier to emit through a narrow patch token than per-pixel noise is.
    Data,
}

/// Class conditioning. No names: an unconditional model (every file written before it existed).
///
/// A conditional network adds a learned vector per class to its time conditioning, plus one more
/// for "no class" (the unconditional branch that classifier-free guidance needs and that
/// class-dropout training fills). The vectors start at zero, so a conditional network
/// initialised from an unconditional one starts out computing exactly what it did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassConfig {
    /// Class names; a class id is an index into them.
    pub names: Vec<String>,
    /// Whether a learned-prior model's image flow sees the class too (its latent flow always
    /// does). A Gaussian-prior model's image flow always does: it has nothing else to condition.
    #[serde(default)]
    pub image_flow: bool,
}

/// Most classes a model may have.
pub const MAX_CLASSES: usize = 1024;

impl ClassConfig {
    pub fn is_unconditional(&self) -> bool {
        self.names.is_empty()
    }
}

/// Everything needed to build the networks of one pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub image: ImageSpec,
    pub prior: PriorKind,
    pub aux: AuxConfig,
    pub latent: LatentFlowConfig,
    pub dit: DitConfig,
    /// Absent in unconditional models' files (so their configs read and write as before).
    #[serde(default, skip_serializing_if = "ClassConfig::is_unconditional")]
    pub classes: ClassConfig,
}

/// Names accepted by [`ModelConfig::preset`].
pub const PRESETS: &[&str] = &["tiny", "small", "base"];

impl ModelConfig {
    /// A named preset for the given image geometry and prior kind.
    ///
    /// Patch sizes scale with the image so every preset sees a fixed token grid (8x8, 16x16
    /// for `base`); a patch must not carry more numbers than the token width, or the network
    /// cannot even pass x_t through to its output.
    ///
    /// - `tiny`: a few thousand parameters per network, for tests (seconds on 2 cores).
    /// - `small`: the shipped default model's size (trainable on 2 CPU cores in an hour or two).
    /// - `base`: a larger model for a GPU.
    pub fn preset(name: &str, channels: usize, size: usize, prior: PriorKind) -> Result<Self> {
        let image = ImageSpec { channels, size };
        let cfg = match name {
            "tiny" => ModelConfig {
                image,
                prior,
                aux: AuxConfig { latent_dim: 8, base_channels: 16, logvar_min: -9.0, logvar_max: 1.0 },
                latent: LatentFlowConfig { hidden: 64, blocks: 2 },
                dit: DitConfig {
                    patch_size: size / 8,
                    dim: 32,
                    depth: 2,
                    heads: 2,
                    mlp_ratio: 2,
                    prediction: Prediction::Velocity,
                    pixel_head: 0,
                    pixel_head_time: false,
                },
                classes: ClassConfig::default(),
            },
            "small" => ModelConfig {
                image,
                prior,
                aux: AuxConfig { latent_dim: 32, base_channels: 32, logvar_min: -9.0, logvar_max: 1.0 },
                latent: LatentFlowConfig { hidden: 256, blocks: 3 },
                dit: DitConfig {
                    patch_size: size / 8,
                    dim: 128,
                    depth: 4,
                    heads: 4,
                    mlp_ratio: 4,
                    prediction: Prediction::Velocity,
                    pixel_head: 0,
                    pixel_head_time: false,
                },
                classes: ClassConfig::default(),
            },
            "base" => ModelConfig {
                image,
                prior,
                aux: AuxConfig { latent_dim: 64, base_channels: 64, logvar_min: -9.0, logvar_max: 1.0 },
                latent: LatentFlowConfig { hidden: 512, blocks: 4 },
                dit: DitConfig {
                    patch_size: size / 16,
                    dim: 384,
                    depth: 8,
                    heads: 6,
                    mlp_ratio: 4,
                    prediction: Prediction::Velocity,
                    pixel_head: 0,
                    pixel_head_time: false,
                },
                classes: ClassConfig::default(),
            },
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown preset '{other}' (known: {})",
                    PRESETS.join(", ")
                )));
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Number of stride-2 stages of the auxiliary encoder (and decoder): down to 4x4.
    pub fn aux_levels(&self) -> usize {
        (self.image.size / 4).trailing_zeros() as usize
    }

    /// Checks every field against the ranges the networks support. Model files are validated
    /// with this before any tensor is allocated, so a hostile file cannot ask for 10^12 floats.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Format(format!("invalid config: {msg}")));
        let im = &self.image;
        if ![1, 3, 4].contains(&im.channels) {
            return bad(format!("channels must be 1, 3 or 4, got {}", im.channels));
        }
        if ![16, 32, 64].contains(&im.size) {
            return bad(format!("image size must be 16, 32 or 64, got {}", im.size));
        }
        let a = &self.aux;
        if a.latent_dim == 0 || a.latent_dim > 4096 {
            return bad(format!("aux.latent_dim out of range 1..=4096: {}", a.latent_dim));
        }
        if a.base_channels == 0 || a.base_channels > 1024 {
            return bad(format!("aux.base_channels out of range 1..=1024: {}", a.base_channels));
        }
        if !(a.logvar_min.is_finite() && a.logvar_max.is_finite() && a.logvar_min < a.logvar_max)
            || a.logvar_min < -30.0
            || a.logvar_max > 10.0
        {
            return bad(format!(
                "aux log-variance range must be finite, ordered, within [-30, 10]: [{}, {}]",
                a.logvar_min, a.logvar_max
            ));
        }
        let l = &self.latent;
        if l.hidden == 0 || l.hidden > 8192 || l.blocks > 64 {
            return bad(format!("latent: hidden 1..=8192, blocks <= 64 (got {}, {})", l.hidden, l.blocks));
        }
        let d = &self.dit;
        if d.patch_size == 0 || !im.size.is_multiple_of(d.patch_size) || d.patch_size > im.size {
            return bad(format!("dit.patch_size {} must divide image size {}", d.patch_size, im.size));
        }
        if d.dim == 0 || d.dim > 4096 || d.depth == 0 || d.depth > 64 {
            return bad(format!("dit: dim 1..=4096, depth 1..=64 (got {}, {})", d.dim, d.depth));
        }
        if d.heads == 0 || !d.dim.is_multiple_of(d.heads) || !(d.dim / d.heads).is_multiple_of(2) {
            return bad(format!("dit.heads {} must divide dim {} into even head sizes", d.heads, d.dim));
        }
        if !d.dim.is_multiple_of(4) {
            return bad(format!("dit.dim {} must be a multiple of 4 (2-D sin-cos positions)", d.dim));
        }
        if d.mlp_ratio == 0 || d.mlp_ratio > 16 {
            return bad(format!("dit.mlp_ratio out of range 1..=16: {}", d.mlp_ratio));
        }
        if d.pixel_head > 1024 {
            return bad(format!("dit.pixel_head out of range 0..=1024: {}", d.pixel_head));
        }
        if d.pixel_head_time && d.pixel_head == 0 {
            return bad("dit.pixel_head_time needs a per-pixel head (dit.pixel_head > 0)".to_string());
        }
        let names = &self.classes.names;
        if names.len() > MAX_CLASSES {
            return bad(format!("{} classes; at most {MAX_CLASSES}", names.len()));
        }
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() || n.len() > 256 || n.contains('\0') || names[..i].contains(n) {
                return bad(format!("class name {n:?} must be 1..=256 bytes, without NUL, and unique"));
            }
        }
        if self.classes.image_flow && names.is_empty() {
            return bad("classes.image_flow needs class names".to_string());
        }
        Ok(())
    }

    /// Classes the latent flow is conditioned on (0: none).
    pub fn latent_classes(&self) -> usize {
        if self.prior == PriorKind::Learned { self.classes.names.len() } else { 0 }
    }

    /// Classes the image flow is conditioned on (0: none).
    pub fn image_classes(&self) -> usize {
        if self.classes.image_flow || self.prior == PriorKind::Gaussian { self.classes.names.len() } else { 0 }
    }

    pub fn tokens(&self) -> usize {
        let g = self.image.size / self.dit.patch_size;
        g * g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_for_all_geometries() {
        for name in PRESETS {
            for c in [1, 3, 4] {
                for s in [16, 32, 64] {
                    let cfg = ModelConfig::preset(name, c, s, PriorKind::Learned).unwrap();
                    assert_eq!(cfg.image.channels, c);
                }
            }
        }
    }

    #[test]
    fn configs_written_before_the_prediction_field_read_as_velocity_prediction() {
        let mut v = serde_json::to_value(ModelConfig::preset("tiny", 4, 16, PriorKind::Learned).unwrap()).unwrap();
        v["dit"].as_object_mut().unwrap().remove("prediction");
        let cfg: ModelConfig = serde_json::from_value(v).unwrap();
        assert_eq!(cfg.dit.prediction, Prediction::Velocity);
        let mut v = serde_json::to_value(&cfg).unwrap();
        v["dit"]["prediction"] = "data".into();
        assert_eq!(serde_json::from_value::<ModelConfig>(v).unwrap().dit.prediction, Prediction::Data);
    }

    #[test]
    fn configs_written_before_the_pixel_head_read_as_none_and_bad_heads_are_refused() {
        let mut v = serde_json::to_value(ModelConfig::preset("tiny", 4, 16, PriorKind::Learned).unwrap()).unwrap();
        v["dit"].as_object_mut().unwrap().remove("pixel_head");
        v["dit"].as_object_mut().unwrap().remove("pixel_head_time");
        let mut cfg: ModelConfig = serde_json::from_value(v).unwrap();
        assert_eq!((cfg.dit.pixel_head, cfg.dit.pixel_head_time), (0, false));
        cfg.dit.pixel_head_time = true;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("needs a per-pixel head"), "{err}");
        cfg.dit.pixel_head = 2000;
        assert!(cfg.validate().unwrap_err().to_string().contains("dit.pixel_head out of range"));
        cfg.dit.pixel_head = 16;
        cfg.validate().unwrap();
    }

    #[test]
    fn bad_geometry_is_rejected() {
        assert!(ModelConfig::preset("tiny", 2, 32, PriorKind::Learned).is_err());
        assert!(ModelConfig::preset("tiny", 3, 48, PriorKind::Learned).is_err());
        assert!(ModelConfig::preset("huge", 3, 32, PriorKind::Learned).is_err());
    }
}
