//! A fixed random convolutional feature net (named as such, never "FID": no pretrained network
//! can be downloaded here). Three 3x3 stride-2 convolutions with ReLU (C -> 32 -> 64 -> 128
//! channels, He-normal weights from a fixed seed, no bias), then global average and max pooling:
//! 256 features per image that respond to local structure at three scales.

use super::{Features, Images, normals};

struct Conv {
    cin: usize,
    cout: usize,
    /// [cout, cin, 3, 3]
    w: Vec<f32>,
}

pub struct RandomConvFeatures {
    layers: Vec<Conv>,
}

impl RandomConvFeatures {
    pub fn new(channels: usize, seed: u64) -> Self {
        let widths = [channels, 32, 64, 128];
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let (cin, cout) = (w[0], w[1]);
                let scale = (2.0 / (cin * 9) as f32).sqrt();
                let w = normals(seed, 100 + i as u64, cout * cin * 9).into_iter().map(|v| v * scale).collect();
                Conv { cin, cout, w }
            })
            .collect();
        Self { layers }
    }

    pub fn dim(&self) -> usize {
        2 * self.layers.last().map(|l| l.cout).unwrap_or(0)
    }

    fn forward(&self, image: &[f32], size: usize) -> Vec<f32> {
        let mut x = image.to_vec();
        let mut s = size;
        for l in &self.layers {
            let o = s.div_ceil(2);
            let mut y = vec![0.0f32; l.cout * o * o];
            for co in 0..l.cout {
                for oy in 0..o {
                    for ox in 0..o {
                        let mut acc = 0.0;
                        for ci in 0..l.cin {
                            let wk = &l.w[(co * l.cin + ci) * 9..(co * l.cin + ci + 1) * 9];
                            let plane = &x[ci * s * s..(ci + 1) * s * s];
                            for ky in 0..3 {
                                let iy = (2 * oy + ky) as isize - 1;
                                if iy < 0 || iy >= s as isize {
                                    continue;
                                }
                                for kx in 0..3 {
                                    let ix = (2 * ox + kx) as isize - 1;
                                    if ix < 0 || ix >= s as isize {
                                        continue;
                                    }
                                    acc += wk[ky * 3 + kx] * plane[iy as usize * s + ix as usize];
                                }
                            }
                        }
                        y[(co * o + oy) * o + ox] = acc.max(0.0);
                    }
                }
            }
            x = y;
            s = o;
        }
        let c = self.layers.last().map(|l| l.cout).unwrap_or(0);
        let plane = s * s;
        let mut f = Vec::with_capacity(2 * c);
        for ch in 0..c {
            f.push(x[ch * plane..(ch + 1) * plane].iter().sum::<f32>() / plane as f32);
        }
        for ch in 0..c {
            f.push(x[ch * plane..(ch + 1) * plane].iter().cloned().fold(0.0, f32::max));
        }
        f
    }

    pub fn extract(&self, images: &Images) -> Features {
        let mut data = Vec::with_capacity(images.count * self.dim());
        for i in 0..images.count {
            data.extend(self.forward(images.image(i), images.size));
        }
        Features { rows: images.count, dim: self.dim(), data }
    }
}
