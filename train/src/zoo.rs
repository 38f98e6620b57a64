//! The model zoo for 28x28 single-channel images (Fashion-MNIST): `mlp`, `lenet5` and
//! `vgg-small`, described as plain layer lists ([`ModelSpec`]) so that other crates (the
//! compiler's workload model) can read the same shapes without the training code.
//!
//! Shapes are chosen so that every layer that is sparse by default (all weight layers but the
//! first and the last) has `K` and `C_out` divisible by 8, so 2:4, 2:8 and 1:8 all apply:
//! - `mlp`: 784-512-256-10.
//! - `lenet5`: LeNet-5 adapted to 28x28 and to groups of 8: conv 5x5 1->8 (pad 2), max pool,
//!   conv 5x5 8->16, max pool, fc 400-120-80-10 (the classic 6 and 84 become 8 and 80).
//! - `vgg-small`: conv3x3 blocks 32,32 | pool | 64,64 | pool | 128, each conv followed by
//!   batch norm and ReLU, then a 7x7 average pool and a 128->10 classifier.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Names accepted by [`model_spec`].
pub const MODEL_NAMES: [&str; 3] = ["mlp", "lenet5", "vgg-small"];

/// What a layer computes, with its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LayerKind {
    /// Convolution, weight `c_out x (kernel*kernel*c_in)`, `K` in `(kh, kw, c_in)` order.
    Conv2d {
        /// Input channels.
        c_in: usize,
        /// Output channels.
        c_out: usize,
        /// Square kernel size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        pad: usize,
    },
    /// Fully connected, weight `c_out x k`.
    Linear {
        /// Input features.
        k: usize,
        /// Output features.
        c_out: usize,
    },
    /// Batch normalization over channels.
    BatchNorm {
        /// Channels.
        channels: usize,
    },
    /// ReLU.
    Relu,
    /// Max pooling, square window, no padding.
    MaxPool {
        /// Window.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// Average pooling, square window, no padding.
    AvgPool {
        /// Window.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// Flatten `[C, H, W]` to features.
    Flatten,
}

/// One layer with its per-image input and output shapes (`[C, H, W]` or `[features]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// Unique name within the model (`conv1`, `fc2`, ...).
    pub name: String,
    /// What it computes.
    #[serde(flatten)]
    pub kind: LayerKind,
    /// Per-image input shape.
    pub input: Vec<usize>,
    /// Per-image output shape.
    pub output: Vec<usize>,
}

/// The GEMM view of a weight layer for one image (SAT.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GemmShape {
    /// Output channels / features: rows of `W`.
    pub c_out: usize,
    /// Reduction length of the forward GEMM: columns of `W`.
    pub k: usize,
    /// Output positions per image (`OH*OW`, 1 for a linear layer); `P = batch * pixels`.
    pub pixels: usize,
}

impl LayerSpec {
    /// The GEMM shape of a convolution or linear layer, `None` for other layers.
    pub fn gemm(&self) -> Option<GemmShape> {
        match self.kind {
            LayerKind::Conv2d { c_in, c_out, kernel, .. } => {
                Some(GemmShape { c_out, k: c_in * kernel * kernel, pixels: self.output[1] * self.output[2] })
            }
            LayerKind::Linear { k, c_out } => Some(GemmShape { c_out, k, pixels: 1 }),
            _ => None,
        }
    }
}

/// A model: its input, classes and layer list in execution order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Zoo name.
    pub name: String,
    /// Per-image input shape `[C, H, W]`.
    pub input: Vec<usize>,
    /// Number of classes (outputs of the last layer).
    pub classes: usize,
    /// Layers in order.
    pub layers: Vec<LayerSpec>,
}

impl ModelSpec {
    /// The convolution and linear layers, in order.
    pub fn weight_layers(&self) -> impl Iterator<Item = &LayerSpec> {
        self.layers.iter().filter(|l| l.gemm().is_some())
    }
}

struct Builder {
    layers: Vec<LayerSpec>,
    shape: Vec<usize>,
}

impl Builder {
    fn push(&mut self, name: &str, kind: LayerKind, output: Vec<usize>) -> &mut Self {
        let input = std::mem::replace(&mut self.shape, output.clone());
        self.layers.push(LayerSpec { name: name.to_string(), kind, input, output });
        self
    }
    fn conv(&mut self, name: &str, c_out: usize, kernel: usize, pad: usize) -> &mut Self {
        let (c_in, h, w) = (self.shape[0], self.shape[1], self.shape[2]);
        let out = vec![c_out, h + 2 * pad - kernel + 1, w + 2 * pad - kernel + 1];
        self.push(name, LayerKind::Conv2d { c_in, c_out, kernel, stride: 1, pad }, out)
    }
    fn pool(&mut self, name: &str, kernel: usize, max: bool) -> &mut Self {
        let out = vec![self.shape[0], self.shape[1] / kernel, self.shape[2] / kernel];
        let kind =
            if max { LayerKind::MaxPool { kernel, stride: kernel } } else { LayerKind::AvgPool { kernel, stride: kernel } };
        self.push(name, kind, out)
    }
    fn bn(&mut self, name: &str) -> &mut Self {
        let s = self.shape.clone();
        self.push(name, LayerKind::BatchNorm { channels: s[0] }, s)
    }
    fn relu(&mut self, name: &str) -> &mut Self {
        let s = self.shape.clone();
        self.push(name, LayerKind::Relu, s)
    }
    fn flatten(&mut self) -> &mut Self {
        let n = self.shape.iter().product();
        self.push("flatten", LayerKind::Flatten, vec![n])
    }
    fn fc(&mut self, name: &str, c_out: usize) -> &mut Self {
        let k = self.shape[0];
        self.push(name, LayerKind::Linear { k, c_out }, vec![c_out])
    }
    fn conv_bn_relu(&mut self, i: usize, c_out: usize) -> &mut Self {
        self.conv(&format!("conv{i}"), c_out, 3, 1).bn(&format!("bn{i}")).relu(&format!("relu{i}"))
    }
}

/// The spec of the zoo model `name` (one of [`MODEL_NAMES`]).
pub fn model_spec(name: &str) -> Result<ModelSpec> {
    let mut b = Builder { layers: Vec::new(), shape: vec![1, 28, 28] };
    match name {
        "mlp" => {
            b.flatten().fc("fc1", 512).relu("relu1").fc("fc2", 256).relu("relu2").fc("fc3", 10);
        }
        "lenet5" => {
            b.conv("conv1", 8, 5, 2).relu("relu1").pool("pool1", 2, true);
            b.conv("conv2", 16, 5, 0).relu("relu2").pool("pool2", 2, true);
            b.flatten().fc("fc1", 120).relu("relu3").fc("fc2", 80).relu("relu4").fc("fc3", 10);
        }
        "vgg-small" => {
            b.conv_bn_relu(1, 32).conv_bn_relu(2, 32).pool("pool1", 2, true);
            b.conv_bn_relu(3, 64).conv_bn_relu(4, 64).pool("pool2", 2, true);
            b.conv_bn_relu(5, 128).pool("avgpool", 7, false);
            b.flatten().fc("fc", 10);
        }
        _ => return Err(Error::UnknownModel { name: name.to_string(), known: MODEL_NAMES.join(", ") }),
    }
    Ok(ModelSpec { name: name.to_string(), input: vec![1, 28, 28], classes: 10, layers: b.layers })
}
