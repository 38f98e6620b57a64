//! Batch normalization over the channel dimension of `[batch, C]` or `[batch, C, H, W]`
//! inputs. Training mode normalizes with the batch statistics (biased variance) and updates
//! running estimates (`momentum` 0.1, unbiased variance, as PyTorch); evaluation mode uses
//! the running estimates. Sums are taken in f64, channel by channel, in a fixed order.

use crate::error::{Error, Result};
use crate::optim::Param;
use crate::tensor::Tensor;

/// Batch normalization with learned scale `gamma` and shift `beta`.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    /// Layer name, used in errors and checkpoints.
    pub name: String,
    /// Channels.
    pub channels: usize,
    /// Scale, one per channel (starts at 1).
    pub gamma: Param,
    /// Shift, one per channel (starts at 0).
    pub beta: Param,
    /// Running mean for evaluation.
    pub running_mean: Vec<f32>,
    /// Running (unbiased) variance for evaluation.
    pub running_var: Vec<f32>,
    /// Added to the variance before the square root.
    pub eps: f32,
    /// Weight of the newest batch in the running estimates.
    pub momentum: f32,
    cache: Option<(Vec<f32>, Vec<f32>, Vec<usize>)>,
}

impl BatchNorm {
    /// A batch-norm layer over `channels` channels.
    pub fn new(name: &str, channels: usize) -> Self {
        Self {
            name: name.to_string(),
            channels,
            gamma: Param::new(vec![1.0; channels], false),
            beta: Param::new(vec![0.0; channels], false),
            running_mean: vec![0.0; channels],
            running_var: vec![1.0; channels],
            eps: 1e-5,
            momentum: 0.1,
            cache: None,
        }
    }

    fn spatial(&self, shape: &[usize]) -> Result<usize> {
        if (shape.len() != 2 && shape.len() != 4) || shape[1] != self.channels || shape[0] == 0 {
            return Err(Error::Shape {
                layer: self.name.clone(),
                got: shape.to_vec(),
                expected: format!("[batch >= 1, {}] or [batch >= 1, {}, H, W]", self.channels, self.channels),
            });
        }
        Ok(shape[2..].iter().product())
    }

    /// Forward pass; caches the normalized input when `train` is set.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor> {
        let s = self.spatial(&x.shape)?;
        let (n, c) = (x.shape[0], self.channels);
        let count = (n * s) as f64;
        let mut y = Tensor::zeros(&x.shape);
        let mut inv_std = vec![0.0f32; c];
        for (ch, inv) in inv_std.iter_mut().enumerate() {
            let (mean, var) = if train {
                let mut sum = 0.0f64;
                for b in 0..n {
                    sum += x.data[(b * c + ch) * s..][..s].iter().map(|&v| f64::from(v)).sum::<f64>();
                }
                let mean = sum / count;
                let mut sq = 0.0f64;
                for b in 0..n {
                    sq += x.data[(b * c + ch) * s..][..s].iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>();
                }
                let var = sq / count;
                let unbiased = if count > 1.0 { sq / (count - 1.0) } else { var };
                let mo = f64::from(self.momentum);
                self.running_mean[ch] = ((1.0 - mo) * f64::from(self.running_mean[ch]) + mo * mean) as f32;
                self.running_var[ch] = ((1.0 - mo) * f64::from(self.running_var[ch]) + mo * unbiased) as f32;
                (mean as f32, var as f32)
            } else {
                (self.running_mean[ch], self.running_var[ch])
            };
            let is = 1.0 / (var + self.eps).sqrt();
            *inv = is;
            for b in 0..n {
                let off = (b * c + ch) * s;
                for (o, &v) in y.data[off..off + s].iter_mut().zip(&x.data[off..off + s]) {
                    *o = (v - mean) * is;
                }
            }
        }
        // y holds x_hat here; cache it, then scale and shift.
        self.cache = train.then(|| (y.data.clone(), inv_std, x.shape.clone()));
        for b in 0..n {
            for ch in 0..c {
                let (g, bt) = (self.gamma.value[ch], self.beta.value[ch]);
                for o in &mut y.data[(b * c + ch) * s..][..s] {
                    *o = *o * g + bt;
                }
            }
        }
        Ok(y)
    }

    /// Backward pass: accumulates `dgamma`, `dbeta` and returns `dX`.
    pub fn backward(&mut self, dy: &Tensor) -> Result<Tensor> {
        let (xhat, inv_std, shape) = self.cache.take().ok_or_else(|| Error::NoForward { layer: self.name.clone() })?;
        if dy.shape != shape {
            return Err(Error::Shape {
                layer: self.name.clone(),
                got: dy.shape.clone(),
                expected: format!("gradient {shape:?}"),
            });
        }
        let s = self.spatial(&shape)?;
        let (n, c) = (shape[0], self.channels);
        let count = (n * s) as f64;
        let mut dx = Tensor::zeros(&shape);
        for (ch, &inv) in inv_std.iter().enumerate() {
            let (mut sum_dy, mut sum_dy_xhat) = (0.0f64, 0.0f64);
            for b in 0..n {
                let off = (b * c + ch) * s;
                for (&d, &xh) in dy.data[off..off + s].iter().zip(&xhat[off..off + s]) {
                    sum_dy += f64::from(d);
                    sum_dy_xhat += f64::from(d) * f64::from(xh);
                }
            }
            self.gamma.grad[ch] += sum_dy_xhat as f32;
            self.beta.grad[ch] += sum_dy as f32;
            let g = self.gamma.value[ch];
            let scale = g * inv;
            let (m_dy, m_dyx) = ((sum_dy / count) as f32, (sum_dy_xhat / count) as f32);
            for b in 0..n {
                let off = (b * c + ch) * s;
                for ((o, &d), &xh) in dx.data[off..off + s].iter_mut().zip(&dy.data[off..off + s]).zip(&xhat[off..off + s]) {
                    *o = scale * (d - m_dy - xh * m_dyx);
                }
            }
        }
        Ok(dx)
    }
}
