//! The CPU layers of the reference trainer and the [`Layer`] enum that a model is a list of.
//! Each layer has `forward(x, train)` (caching what backward needs only when `train`) and
//! `backward(dy) -> dx`, which accumulates parameter gradients.

pub mod activation;
pub mod conv;
pub mod linear;
pub mod loss;
pub mod norm;
pub mod pool;

pub use activation::{Flatten, Relu};
pub use conv::{Conv2d, ConvGeom};
pub use linear::Linear;
pub use loss::{softmax_cross_entropy, LossOutput};
pub use norm::BatchNorm;
pub use pool::{Pool2d, PoolKind};

use crate::error::Result;
use crate::optim::Sgd;
use crate::sparse::NmWeight;
use crate::tensor::Tensor;

/// One layer of a model.
#[derive(Debug, Clone)]
pub enum Layer {
    /// Fully connected.
    Linear(Linear),
    /// Convolution.
    Conv2d(Conv2d),
    /// ReLU.
    Relu(Relu),
    /// Max or average pooling.
    Pool(Pool2d),
    /// Batch normalization.
    BatchNorm(BatchNorm),
    /// Flatten to `[batch, features]`.
    Flatten(Flatten),
}

impl Layer {
    /// The layer's name.
    pub fn name(&self) -> &str {
        match self {
            Layer::Linear(l) => &l.name,
            Layer::Conv2d(l) => &l.name,
            Layer::Relu(l) => &l.name,
            Layer::Pool(l) => &l.name,
            Layer::BatchNorm(l) => &l.name,
            Layer::Flatten(l) => &l.name,
        }
    }

    /// Forward pass.
    pub fn forward(&mut self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Layer::Linear(l) => l.forward(x, train),
            Layer::Conv2d(l) => l.forward(x, train),
            Layer::Relu(l) => Ok(l.forward(x, train)),
            Layer::Pool(l) => l.forward(x, train),
            Layer::BatchNorm(l) => l.forward(x, train),
            Layer::Flatten(l) => Ok(l.forward(x, train)),
        }
    }

    /// Backward pass.
    pub fn backward(&mut self, dy: &Tensor) -> Result<Tensor> {
        match self {
            Layer::Linear(l) => l.backward(dy),
            Layer::Conv2d(l) => l.backward(dy),
            Layer::Relu(l) => l.backward(dy),
            Layer::Pool(l) => l.backward(dy),
            Layer::BatchNorm(l) => l.backward(dy),
            Layer::Flatten(l) => l.backward(dy),
        }
    }

    /// The N:M-capable weight of a linear or convolution layer.
    pub fn weight(&self) -> Option<&NmWeight> {
        match self {
            Layer::Linear(l) => Some(&l.weight),
            Layer::Conv2d(l) => Some(&l.weight),
            _ => None,
        }
    }

    /// Applies one optimizer step to every parameter of the layer (weights through
    /// [`NmWeight::update`], which adds the SR-STE term and refreshes the masks).
    pub fn step(&mut self, sgd: &Sgd, lr: f32) {
        match self {
            Layer::Linear(l) => {
                l.weight.update(sgd, lr);
                sgd.update(&mut l.bias, lr);
            }
            Layer::Conv2d(l) => {
                l.weight.update(sgd, lr);
                sgd.update(&mut l.bias, lr);
            }
            Layer::BatchNorm(l) => {
                sgd.update(&mut l.gamma, lr);
                sgd.update(&mut l.beta, lr);
            }
            Layer::Relu(_) | Layer::Pool(_) | Layer::Flatten(_) => {}
        }
    }
}
