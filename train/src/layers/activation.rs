//! Shape-only and elementwise layers: ReLU (`max(x, 0)`, gradient 0 at 0) and flatten
//! (`[batch, ...] -> [batch, features]`).

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Rectified linear unit.
#[derive(Debug, Clone)]
pub struct Relu {
    /// Layer name, used in errors.
    pub name: String,
    positive: Option<Vec<bool>>,
}

impl Relu {
    /// A ReLU layer.
    pub fn new(name: &str) -> Self {
        Self { name: name.to_string(), positive: None }
    }

    /// Forward pass; remembers which inputs were positive when `train` is set.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Tensor {
        self.positive = train.then(|| x.data.iter().map(|&v| v > 0.0).collect());
        Tensor { shape: x.shape.clone(), data: x.data.iter().map(|&v| v.max(0.0)).collect() }
    }

    /// Backward pass: returns `dX`.
    pub fn backward(&mut self, dy: &Tensor) -> Result<Tensor> {
        let pos = self.positive.take().ok_or_else(|| Error::NoForward { layer: self.name.clone() })?;
        if pos.len() != dy.len() {
            return Err(Error::Shape {
                layer: self.name.clone(),
                got: dy.shape.clone(),
                expected: format!("{} elements", pos.len()),
            });
        }
        Ok(Tensor { shape: dy.shape.clone(), data: dy.data.iter().zip(&pos).map(|(&d, &p)| if p { d } else { 0.0 }).collect() })
    }
}

/// Flattens everything after the batch dimension.
#[derive(Debug, Clone)]
pub struct Flatten {
    /// Layer name, used in errors.
    pub name: String,
    input_shape: Option<Vec<usize>>,
}

impl Flatten {
    /// A flatten layer.
    pub fn new(name: &str) -> Self {
        Self { name: name.to_string(), input_shape: None }
    }

    /// Forward pass.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Tensor {
        self.input_shape = train.then(|| x.shape.clone());
        let b = x.batch();
        Tensor { shape: vec![b, x.len().checked_div(b).unwrap_or(0)], data: x.data.clone() }
    }

    /// Backward pass: restores the input shape.
    pub fn backward(&mut self, dy: &Tensor) -> Result<Tensor> {
        let shape = self.input_shape.take().ok_or_else(|| Error::NoForward { layer: self.name.clone() })?;
        Tensor::from_vec(&shape, dy.data.clone()).ok_or_else(|| Error::Shape {
            layer: self.name.clone(),
            got: dy.shape.clone(),
            expected: format!("{shape:?} flattened"),
        })
    }
}
