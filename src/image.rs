//! Conversion between 8-bit interleaved pixels (the C ABI and file layout: N images, row-major,
//! `channels` bytes per pixel) and [N, C, H, W] tensors in [-1, 1].

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::error::{Error, Result, invalid};

/// u8 -> [-1, 1]: v / 127.5 - 1. Its inverse below recovers every byte exactly.
pub fn from_u8<B: Backend>(
    pixels: &[u8],
    count: usize,
    channels: usize,
    height: usize,
    width: usize,
    device: &B::Device,
) -> Result<Tensor<B, 4>> {
    let need = count * channels * height * width;
    if pixels.len() != need {
        return invalid(format!("expected {need} bytes for {count}x{height}x{width}x{channels}, got {}", pixels.len()));
    }
    let mut data = vec![0.0f32; need];
    let plane = height * width;
    for n in 0..count {
        let img = &pixels[n * plane * channels..(n + 1) * plane * channels];
        let out = &mut data[n * plane * channels..(n + 1) * plane * channels];
        for p in 0..plane {
            for c in 0..channels {
                out[c * plane + p] = img[p * channels + c] as f32 / 127.5 - 1.0;
            }
        }
    }
    Ok(Tensor::from_data(TensorData::new(data, [count, channels, height, width]), device))
}

/// [N, C, H, W] in [-1, 1] -> interleaved u8 (values outside [-1, 1] saturate).
pub fn to_u8<B: Backend>(images: Tensor<B, 4>) -> Result<Vec<u8>> {
    let [count, channels, height, width] = images.dims();
    let data = images
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| Error::Internal(format!("reading images back: {e:?}")))?;
    let plane = height * width;
    let mut out = vec![0u8; data.len()];
    for n in 0..count {
        let src = &data[n * plane * channels..(n + 1) * plane * channels];
        let dst = &mut out[n * plane * channels..(n + 1) * plane * channels];
        for c in 0..channels {
            for p in 0..plane {
                let v = src[c * plane + p];
                let q = if v.is_nan() { 127.5 } else { ((v + 1.0) * 127.5).round() };
                dst[p * channels + c] = q.clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(out)
}

/// One byte per pixel (non-zero = keep) -> [N, 1, H, W] of 0.0 / 1.0.
pub fn mask_from_u8<B: Backend>(
    mask: &[u8],
    count: usize,
    height: usize,
    width: usize,
    device: &B::Device,
) -> Result<Tensor<B, 4>> {
    let need = count * height * width;
    if mask.len() != need {
        return invalid(format!("expected {need} mask bytes, got {}", mask.len()));
    }
    let data: Vec<f32> = mask.iter().map(|&m| if m != 0 { 1.0 } else { 0.0 }).collect();
    Ok(Tensor::from_data(TensorData::new(data, [count, 1, height, width]), device))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend as B;

    #[test]
    fn every_byte_round_trips() {
        let px: Vec<u8> = (0..=255u8).cycle().take(2 * 4 * 8 * 8).collect();
        let t = from_u8::<B>(&px, 2, 4, 8, 8, &Default::default()).unwrap();
        assert_eq!(to_u8(t).unwrap(), px);
    }

    #[test]
    fn wrong_length_is_rejected() {
        assert!(from_u8::<B>(&[0; 10], 1, 3, 2, 2, &Default::default()).is_err());
    }
}
