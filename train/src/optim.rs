//! Trainable parameters and the optimizer: SGD with momentum and weight decay (PyTorch
//! convention: `v = momentum * v + (g + wd * w)`, `w -= lr * v`), plus the learning-rate
//! schedules. The SR-STE decay term of sparse weights is added to `g` by
//! [`crate::sparse::NmWeight::update`] before this update runs.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One trainable FP32 tensor with its gradient and momentum buffer.
#[derive(Debug, Clone)]
pub struct Param {
    /// Master values.
    pub value: Vec<f32>,
    /// Gradient accumulated by `backward`, cleared by the update.
    pub grad: Vec<f32>,
    /// Momentum buffer.
    pub velocity: Vec<f32>,
    /// Whether weight decay applies (true for conv/linear weights, false for biases and
    /// batch-norm parameters).
    pub decay: bool,
}

impl Param {
    /// A parameter holding `value`, with zero gradient and momentum.
    pub fn new(value: Vec<f32>, decay: bool) -> Self {
        let n = value.len();
        Self { value, grad: vec![0.0; n], velocity: vec![0.0; n], decay }
    }
}

/// SGD with momentum and weight decay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sgd {
    /// Momentum factor (0 disables momentum).
    pub momentum: f32,
    /// L2 weight decay applied to parameters with `decay == true`.
    pub weight_decay: f32,
}

impl Sgd {
    /// Applies one step with learning rate `lr` to `p` and clears its gradient.
    pub fn update(&self, p: &mut Param, lr: f32) {
        let wd = if p.decay { self.weight_decay } else { 0.0 };
        for ((w, g), v) in p.value.iter_mut().zip(p.grad.iter_mut()).zip(p.velocity.iter_mut()) {
            let d = *g + wd * *w;
            *v = self.momentum * *v + d;
            *w -= lr * *v;
            *g = 0.0;
        }
    }
}

/// How the learning rate changes over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// Cosine decay from the base rate to zero over all steps.
    Cosine,
}

impl LrSchedule {
    /// The rate at `step` of `total` steps for base rate `base`.
    pub fn rate(self, base: f32, step: usize, total: usize) -> f32 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::Cosine => {
                let t = step as f64 / total.max(1) as f64;
                (f64::from(base) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
        }
    }
}

impl FromStr for LrSchedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "constant" => Ok(Self::Constant),
            "cosine" => Ok(Self::Cosine),
            _ => Err(Error::UnknownSchedule { name: s.to_string() }),
        }
    }
}

impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine => "cosine",
        })
    }
}
