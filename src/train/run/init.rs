//! The model file a fine-tuning run starts from.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::spec::*;
use crate::checkpoint::{self, ModelMeta};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model::Networks;

/// The model file a fine-tuning run starts from (`lediflow train --init`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitFrom {
    pub path: PathBuf,
    /// FNV-1a 64 of the file's bytes, in hex: a run (and `--resume`) refuses a file that
    /// changed after the run started.
    pub fnv64: String,
    /// Start the image flow from random weights even where the file's has the same shape (a
    /// new image flow on the file's prior, e.g. a from-scratch control run).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh_velocity: bool,
    /// Start the latent flow from random weights (a latent flow retrained on the file's
    /// encoder; the file's one may have memorised its training latents).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh_latent: bool,
}

impl InitFrom {
    /// Records `path` and the hash of its current contents.
    pub fn new(path: &Path) -> Result<Self> {
        Self::read(path).map(|(init, _)| init)
    }

    /// [`InitFrom::new`], also returning the file's metadata (its network config and prior),
    /// from the same single read of the file.
    pub fn read(path: &Path) -> Result<(Self, ModelMeta)> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::InvalidArgument(format!("starting model {}: cannot read it: {e}", path.display())))?;
        let meta = checkpoint::read_meta(&bytes)
            .map_err(|e| Error::InvalidArgument(format!("starting model {}: {e}", path.display())))?;
        Ok((
            Self { path: path.to_path_buf(), fnv64: fnv64_hex(&bytes), fresh_velocity: false, fresh_latent: false },
            meta,
        ))
    }

    /// Loads the file's networks onto `device`, checking that it is still the file recorded
    /// and that its networks are the ones `model` describes (the velocity network aside).
    /// Returns how the image flow starts from the file's velocity network.
    pub(super) fn load<B: Backend>(
        &self,
        model: &ModelConfig,
        device: &B::Device,
    ) -> Result<(Networks<B>, VelocityStart)> {
        let path = self.path.display();
        let bytes = std::fs::read(&self.path)
            .map_err(|e| Error::InvalidArgument(format!("starting model {path}: cannot read it: {e}")))?;
        if fnv64_hex(&bytes) != self.fnv64 {
            return Err(Error::InvalidArgument(format!(
                "starting model {path} changed since this run started (its hash differs from the one recorded)"
            )));
        }
        let (mut nets, meta) = checkpoint::from_bytes::<B>(&bytes, device)?;
        // An unconditional file may start a class-conditional run: its networks get class
        // tables of zeros, so they start out computing what the file's did.
        let classes = if meta.config.classes.is_unconditional() { &model.classes } else { &meta.config.classes };
        // A fresh latent flow (`fresh_latent`) may take another shape (`latent`) too.
        let latent = if self.fresh_latent { model.latent.clone() } else { meta.config.latent.clone() };
        let same_but_velocity =
            ModelConfig { dit: model.dit.clone(), classes: classes.clone(), latent, ..meta.config.clone() } == *model;
        if !same_but_velocity {
            return Err(Error::InvalidArgument(format!(
                "starting model {path} holds different networks from the ones this run trains \
                 ({} vs {}); a fine-tuning run keeps the file's network config (only `dit` may change, \
                 `latent` with a fresh latent flow, and an unconditional file may gain classes)",
                serde_json::to_string(&meta.config).unwrap_or_default(),
                serde_json::to_string(model).unwrap_or_default()
            )));
        }
        nets.add_class_tables(model, device);
        let with_head = crate::config::DitConfig {
            pixel_head: model.dit.pixel_head,
            pixel_head_time: model.dit.pixel_head_time,
            ..meta.config.dit.clone()
        };
        let start = if self.fresh_velocity {
            VelocityStart::Fresh
        } else if meta.config.dit == model.dit {
            VelocityStart::File
        } else if meta.config.dit.pixel_head == 0 && with_head == model.dit {
            VelocityStart::FileWithNewHead
        } else {
            VelocityStart::Fresh
        };
        Ok((nets, start))
    }
}

/// Where a fine-tuning run's image flow starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum VelocityStart {
    /// Random weights (`--fresh-velocity`, or a `dit` shape the file's network cannot give).
    Fresh,
    /// The file's velocity network.
    File,
    /// The file's velocity network plus a new per-pixel head (`dit.pixel_head`, which the file's
    /// network lacks): the head's last convolution starts at zero, so the network starts out
    /// computing exactly the file's velocity.
    FileWithNewHead,
}
