//! 2-D convolution by im2col + GEMM on `[batch, C_in, H, W]` inputs. The weight is stored
//! `C_out x K` with `K = kh*kw*C_in` in the order `(kh, kw, c_in)`: weight element
//! `(co, (i*kw + j)*c_in + c)` multiplies input channel `c` at kernel position `(i, j)`. This
//! is the hardware's (and the compiler's) K order, so a group of M consecutive `K` elements,
//! the unit of the FF N:M mask (SAT.md section 2, "along K (input channels)"), holds M input
//! channels at one kernel position; the masks of [`NmWeight`] group `C_out x K` directly.
//! Per image: `cols = im2col(x)` (`K x P`, `P = OH*OW`, row `(i*kw + j)*c_in + c`),
//! `Y = W_ff . cols + b`; backward `dW += dY . cols^T`, `dcols = W_bp^T . dY`,
//! `dX = col2im(dcols)`.
//!
//! Images are processed in parallel (rayon) in fixed chunks of [`CHUNK`] images; each chunk
//! accumulates its own `dW` and the chunks are summed in index order, so results do not
//! depend on the thread count.

use crate::error::{Error, Result};
use crate::gemm::{sgemm, Op};
use crate::optim::Param;
use crate::sparse::NmWeight;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Images per parallel work item; fixed so the reduction order is fixed.
pub const CHUNK: usize = 4;

/// Convolution geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    /// Input channels.
    pub c_in: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both directions).
    pub stride: usize,
    /// Zero padding (all sides).
    pub pad: usize,
}

impl ConvGeom {
    /// Output height and width for an `h x w` input; `None` when the kernel does not fit.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let (hp, wp) = (h + 2 * self.pad, w + 2 * self.pad);
        if hp < self.kh || wp < self.kw || self.stride == 0 {
            return None;
        }
        Some(((hp - self.kh) / self.stride + 1, (wp - self.kw) / self.stride + 1))
    }

    /// `K = kh*kw*C_in`.
    pub fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// The `K` index (column of the weight, row of `cols`) of input channel `c` at kernel
    /// position `(i, j)`: `(i*kw + j)*c_in + c`.
    pub fn k_index(&self, c: usize, i: usize, j: usize) -> usize {
        (i * self.kw + j) * self.c_in + c
    }
}

/// A convolution layer with an N:M-capable weight.
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// Layer name, used in errors and checkpoints.
    pub name: String,
    /// Kernel, stride, padding and input channels.
    pub geom: ConvGeom,
    /// Weight `C_out x K`, `K` in `(kh, kw, c_in)` order, with its masks.
    pub weight: NmWeight,
    /// Bias, `C_out` values.
    pub bias: Param,
    input: Option<Tensor>,
}

/// Unfolds one image `[C_in, H, W]` into `cols` (`K x P`): row `(i*kw + j)*c_in + c`, column
/// `oy*OW + ox` holds `x[c, oy*stride + i - pad, ox*stride + j - pad]` (0 outside the image).
fn im2col(x: &[f32], h: usize, w: usize, g: &ConvGeom, oh: usize, ow: usize, cols: &mut [f32]) {
    let p = oh * ow;
    for c in 0..g.c_in {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &mut cols[g.k_index(c, i, j) * p..][..p];
                for oy in 0..oh {
                    let iy = (oy * g.stride + i) as isize - g.pad as isize;
                    let out = &mut row[oy * ow..(oy + 1) * ow];
                    if iy < 0 || iy >= h as isize {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    if g.stride == 1 {
                        // Valid columns form one run: ox + j - pad in 0..w.
                        let lo = g.pad.saturating_sub(j).min(ow);
                        let hi = (w + g.pad).saturating_sub(j).clamp(lo, ow);
                        out[..lo].fill(0.0);
                        out[hi..].fill(0.0);
                        if lo < hi {
                            out[lo..hi].copy_from_slice(&src[lo + j - g.pad..hi + j - g.pad]);
                        }
                        continue;
                    }
                    for (ox, o) in out.iter_mut().enumerate() {
                        let ix = (ox * g.stride + j) as isize - g.pad as isize;
                        *o = if ix < 0 || ix >= w as isize { 0.0 } else { src[ix as usize] };
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each entry of `cols` (`K x P`, rows in `(kh, kw, c_in)`
/// order) into the input position it was read from.
fn col2im(cols: &[f32], h: usize, w: usize, g: &ConvGeom, oh: usize, ow: usize, dx: &mut [f32]) {
    let p = oh * ow;
    for c in 0..g.c_in {
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &cols[g.k_index(c, i, j) * p..][..p];
                for oy in 0..oh {
                    let iy = (oy * g.stride + i) as isize - g.pad as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * w..(iy as usize + 1) * w];
                    if g.stride == 1 {
                        let lo = g.pad.saturating_sub(j).min(ow);
                        let hi = (w + g.pad).saturating_sub(j).clamp(lo, ow);
                        if lo < hi {
                            for (d, &v) in dst[lo + j - g.pad..hi + j - g.pad].iter_mut().zip(&row[oy * ow + lo..oy * ow + hi]) {
                                *d += v;
                            }
                        }
                        continue;
                    }
                    for (ox, &v) in row[oy * ow..(oy + 1) * ow].iter().enumerate() {
                        let ix = (ox * g.stride + j) as isize - g.pad as isize;
                        if ix >= 0 && ix < w as isize {
                            dst[ix as usize] += v;
                        }
                    }
                }
            }
        }
    }
}

impl Conv2d {
    /// A layer from its geometry, an initialized weight (`C_out x K`) and a zero bias.
    pub fn new(name: &str, geom: ConvGeom, weight: NmWeight) -> Self {
        let c_out = weight.c_out;
        Self { name: name.to_string(), geom, weight, bias: Param::new(vec![0.0; c_out], false), input: None }
    }

    fn dims(&self, x: &Tensor) -> Result<(usize, usize, usize, usize, usize)> {
        let bad = || Error::Shape {
            layer: self.name.clone(),
            got: x.shape.clone(),
            expected: format!("[batch, {}, H, W] with H, W >= kernel", self.geom.c_in),
        };
        if x.shape.len() != 4 || x.shape[1] != self.geom.c_in {
            return Err(bad());
        }
        let (h, w) = (x.shape[2], x.shape[3]);
        let (oh, ow) = self.geom.out_hw(h, w).ok_or_else(bad)?;
        Ok((x.shape[0], h, w, oh, ow))
    }

    /// Forward pass; caches the input when `train` is set.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (b, h, w, oh, ow) = self.dims(x)?;
        let (c_out, k, p) = (self.weight.c_out, self.geom.k(), oh * ow);
        let mut y = Tensor::zeros(&[b, c_out, oh, ow]);
        let wff = self.weight.forward_operand();
        let (g, bias, in_sz) = (&self.geom, &self.bias.value, self.geom.c_in * h * w);
        y.data.par_chunks_mut(CHUNK * c_out * p).zip(x.data.par_chunks(CHUNK * in_sz)).for_each(|(ys, xs)| {
            let mut cols = vec![0.0f32; k * p];
            for (yi, xi) in ys.chunks_mut(c_out * p).zip(xs.chunks(in_sz)) {
                im2col(xi, h, w, g, oh, ow, &mut cols);
                for (row, &bv) in yi.chunks_mut(p).zip(bias) {
                    row.fill(bv);
                }
                sgemm(c_out, k, p, wff, Op::N, &cols, Op::N, 1.0, yi);
            }
        });
        self.input = train.then(|| x.clone());
        Ok(y)
    }

    /// Backward pass: accumulates `dW`, `db` and returns `dX`.
    pub fn backward(&mut self, dy: &Tensor) -> Result<Tensor> {
        let x = self.input.take().ok_or_else(|| Error::NoForward { layer: self.name.clone() })?;
        let (b, h, w, oh, ow) = self.dims(&x)?;
        let (c_out, k, p) = (self.weight.c_out, self.geom.k(), oh * ow);
        if dy.shape != [b, c_out, oh, ow] {
            return Err(Error::Shape {
                layer: self.name.clone(),
                got: dy.shape.clone(),
                expected: format!("gradient [{b}, {c_out}, {oh}, {ow}]"),
            });
        }
        let wbp = self.weight.backward_operand();
        let (g, in_sz) = (&self.geom, self.geom.c_in * h * w);
        let mut dx = Tensor::zeros(&x.shape);
        let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
            .data
            .par_chunks_mut(CHUNK * in_sz)
            .zip(x.data.par_chunks(CHUNK * in_sz))
            .zip(dy.data.par_chunks(CHUNK * c_out * p))
            .map(|((dxs, xs), dys)| {
                let mut cols = vec![0.0f32; k * p];
                let mut dw = vec![0.0f32; c_out * k];
                let mut db = vec![0.0f32; c_out];
                for ((dxi, xi), dyi) in dxs.chunks_mut(in_sz).zip(xs.chunks(in_sz)).zip(dys.chunks(c_out * p)) {
                    im2col(xi, h, w, g, oh, ow, &mut cols);
                    sgemm(c_out, p, k, dyi, Op::N, &cols, Op::T, 1.0, &mut dw);
                    for (d, row) in db.iter_mut().zip(dyi.chunks(p)) {
                        *d += row.iter().sum::<f32>();
                    }
                    sgemm(k, c_out, p, wbp, Op::T, dyi, Op::N, 0.0, &mut cols);
                    col2im(&cols, h, w, g, oh, ow, dxi);
                }
                (dw, db)
            })
            .collect();
        for (dw, db) in partials {
            for (a, v) in self.weight.param.grad.iter_mut().zip(dw) {
                *a += v;
            }
            for (a, v) in self.bias.grad.iter_mut().zip(db) {
                *a += v;
            }
        }
        Ok(dx)
    }
}
