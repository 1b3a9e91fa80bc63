//! Batches of training images (or stored latents) in a resumable order.

use burn::prelude::*;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::rng::{Purpose, Rng};
use crate::train::{Epochs, ImageKey};

/// Batches from an in-memory [`Dataset`]: shuffled epochs and optional flips, all from one rng
/// whose state is part of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataBatcher {
    #[serde(flatten)]
    epochs: Epochs,
    rng: [u64; 4],
    hflip: bool,
}

impl DataBatcher {
    pub fn new(len: usize, seed: u64, hflip: bool) -> Self {
        Self { epochs: Epochs::new(len), rng: Rng::stream(seed, 0, Purpose::Training).state(), hflip }
    }

    /// The indices of the next batch of `batch` items (no mirroring: for stored latents).
    pub fn next_indices(&mut self, batch: usize) -> Vec<usize> {
        let mut rng = Rng::from_state(self.rng);
        let idx = (0..batch).map(|_| self.epochs.next_index(&mut rng)).collect();
        self.rng = rng.state();
        idx
    }

    /// The next batch, with the dataset index and mirroring of each of its images.
    pub fn next<B: Backend>(
        &mut self,
        data: &Dataset,
        batch: usize,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Vec<ImageKey>) {
        let mut rng = Rng::from_state(self.rng);
        let (s, c) = (data.size, data.channels);
        let plane = s * s;
        let mut out = vec![0f32; batch * c * plane];
        let mut keys = Vec::with_capacity(batch);
        for b in 0..batch {
            let index = self.epochs.next_index(&mut rng);
            let img = data.image(index);
            let flip = self.hflip && rng.below(2) == 1;
            keys.push((index, flip));
            let dst = &mut out[b * c * plane..(b + 1) * c * plane];
            for y in 0..s {
                for x in 0..s {
                    let sx = if flip { s - 1 - x } else { x };
                    for ch in 0..c {
                        dst[ch * plane + y * s + x] = img[(y * s + sx) * c + ch] as f32 / 127.5 - 1.0;
                    }
                }
            }
        }
        self.rng = rng.state();
        (Tensor::from_data(TensorData::new(out, [batch, c, s, s]), device), keys)
    }
}
