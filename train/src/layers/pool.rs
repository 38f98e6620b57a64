//! Max and average pooling over `[batch, C, H, W]`, square window `k`, stride `s`, no
//! padding (output `(H - k) / s + 1`). Max pooling routes the gradient to the first maximum
//! of each window (earliest in row-major order); average pooling spreads it evenly.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Which reduction a pooling layer applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// Maximum of the window.
    Max,
    /// Mean of the window.
    Avg,
}

/// A pooling layer.
#[derive(Debug, Clone)]
pub struct Pool2d {
    /// Layer name, used in errors.
    pub name: String,
    /// Max or average.
    pub kind: PoolKind,
    /// Window size.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    input_shape: Option<Vec<usize>>,
    argmax: Vec<u32>,
}

impl Pool2d {
    /// A pooling layer with window `k` and stride `stride`.
    pub fn new(name: &str, kind: PoolKind, k: usize, stride: usize) -> Self {
        Self { name: name.to_string(), kind, k, stride, input_shape: None, argmax: Vec::new() }
    }

    fn out_hw(&self, shape: &[usize]) -> Result<(usize, usize)> {
        if shape.len() != 4 || shape[2] < self.k || shape[3] < self.k || self.k == 0 || self.stride == 0 {
            return Err(Error::Shape {
                layer: self.name.clone(),
                got: shape.to_vec(),
                expected: format!("[batch, C, H, W] with H, W >= {}", self.k),
            });
        }
        Ok(((shape[2] - self.k) / self.stride + 1, (shape[3] - self.k) / self.stride + 1))
    }

    /// Forward pass; remembers what backward needs when `train` is set.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (oh, ow) = self.out_hw(&x.shape)?;
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let mut y = Tensor::zeros(&[n, c, oh, ow]);
        if train && self.kind == PoolKind::Max {
            self.argmax = vec![0; y.len()];
        }
        let inv = 1.0 / (self.k * self.k) as f32;
        for plane in 0..n * c {
            let src = &x.data[plane * h * w..(plane + 1) * h * w];
            for oy in 0..oh {
                for ox in 0..ow {
                    let o = plane * oh * ow + oy * ow + ox;
                    let (y0, x0) = (oy * self.stride, ox * self.stride);
                    match self.kind {
                        PoolKind::Max => {
                            let (mut best, mut at) = (f32::NEG_INFINITY, y0 * w + x0);
                            for i in 0..self.k {
                                for j in 0..self.k {
                                    let idx = (y0 + i) * w + x0 + j;
                                    if src[idx] > best {
                                        best = src[idx];
                                        at = idx;
                                    }
                                }
                            }
                            y.data[o] = best;
                            if train {
                                self.argmax[o] = at as u32;
                            }
                        }
                        PoolKind::Avg => {
                            let mut s = 0.0;
                            for i in 0..self.k {
                                s += src[(y0 + i) * w + x0..][..self.k].iter().sum::<f32>();
                            }
                            y.data[o] = s * inv;
                        }
                    }
                }
            }
        }
        self.input_shape = train.then(|| x.shape.clone());
        Ok(y)
    }

    /// Backward pass: returns `dX`.
    pub fn backward(&mut self, dy: &Tensor) -> Result<Tensor> {
        let shape = self.input_shape.take().ok_or_else(|| Error::NoForward { layer: self.name.clone() })?;
        let (oh, ow) = self.out_hw(&shape)?;
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
        if dy.shape != [n, c, oh, ow] {
            return Err(Error::Shape {
                layer: self.name.clone(),
                got: dy.shape.clone(),
                expected: format!("gradient [{n}, {c}, {oh}, {ow}]"),
            });
        }
        let mut dx = Tensor::zeros(&shape);
        let inv = 1.0 / (self.k * self.k) as f32;
        for plane in 0..n * c {
            let dst = &mut dx.data[plane * h * w..(plane + 1) * h * w];
            for oy in 0..oh {
                for ox in 0..ow {
                    let o = plane * oh * ow + oy * ow + ox;
                    match self.kind {
                        PoolKind::Max => dst[self.argmax[o] as usize] += dy.data[o],
                        PoolKind::Avg => {
                            let (y0, x0) = (oy * self.stride, ox * self.stride);
                            for i in 0..self.k {
                                for d in &mut dst[(y0 + i) * w + x0..][..self.k] {
                                    *d += dy.data[o] * inv;
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(dx)
    }
}
