//! Fully connected layer `Y = X . W_ff^T + b` on `[batch, K]` inputs, `W` of shape
//! `C_out x K`. Backward: `dX = dY . W_bp` (the BP operand of [`NmWeight`]), dense
//! `dW = dY^T . X`, `db = sum_batch dY`.

use crate::error::{Error, Result};
use crate::gemm::{sgemm, Op};
use crate::optim::Param;
use crate::sparse::NmWeight;
use crate::tensor::Tensor;

/// A linear layer with an N:M-capable weight.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Layer name, used in errors and checkpoints.
    pub name: String,
    /// Weight `C_out x K` with its masks.
    pub weight: NmWeight,
    /// Bias, `C_out` values.
    pub bias: Param,
    input: Option<Tensor>,
}

impl Linear {
    /// A layer from an initialized weight and a zero bias.
    pub fn new(name: &str, weight: NmWeight) -> Self {
        let c_out = weight.c_out;
        Self { name: name.to_string(), weight, bias: Param::new(vec![0.0; c_out], false), input: None }
    }

    /// Forward pass; caches the input when `train` is set.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (k, c_out) = (self.weight.k, self.weight.c_out);
        if x.shape.len() != 2 || x.shape[1] != k {
            return Err(Error::Shape { layer: self.name.clone(), got: x.shape.clone(), expected: format!("[batch, {k}]") });
        }
        let b = x.shape[0];
        let mut y = Tensor::zeros(&[b, c_out]);
        for row in y.data.chunks_mut(c_out) {
            row.copy_from_slice(&self.bias.value);
        }
        sgemm(b, k, c_out, &x.data, Op::N, self.weight.forward_operand(), Op::T, 1.0, &mut y.data);
        self.input = train.then(|| x.clone());
        Ok(y)
    }

    /// Backward pass: accumulates `dW`, `db` and returns `dX`.
    pub fn backward(&mut self, dy: &Tensor) -> Result<Tensor> {
        let x = self.input.take().ok_or_else(|| Error::NoForward { layer: self.name.clone() })?;
        let (k, c_out, b) = (self.weight.k, self.weight.c_out, x.shape[0]);
        if dy.shape != [b, c_out] {
            return Err(Error::Shape {
                layer: self.name.clone(),
                got: dy.shape.clone(),
                expected: format!("gradient [{b}, {c_out}]"),
            });
        }
        sgemm(c_out, b, k, &dy.data, Op::T, &x.data, Op::N, 1.0, &mut self.weight.param.grad);
        for row in dy.data.chunks(c_out) {
            for (g, &d) in self.bias.grad.iter_mut().zip(row) {
                *g += d;
            }
        }
        let mut dx = Tensor::zeros(&[b, k]);
        sgemm(b, c_out, k, &dy.data, Op::N, self.weight.backward_operand(), Op::N, 0.0, &mut dx.data);
        Ok(dx)
    }
}
