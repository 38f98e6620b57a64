//! The model zoo: the training crate's Fashion-MNIST models and the usual image-classification
//! workloads, as [`Model`]s.
//!
//! - `mlp`, `lenet5`, `vgg-small`: 28x28x1 inputs, 10 classes, the same layers, names and
//!   shapes as `satkit_train::zoo` (with biases on every conv and linear layer, as there), plus
//!   the loss `loss`.
//! - `vgg11-cifar10`, `vgg16-cifar10`: CIFAR-10 VGG with batch norm (32x32x3): 3x3 convs with
//!   bias, each followed by batch norm and ReLU, 2x2 max pools, then a 512->10 classifier
//!   (14,728,266 parameters for VGG-16).
//! - `resnet18-cifar10`: 3x3 stem conv 64, no max pool, 4 stages of 2 BasicBlocks
//!   (64/128/256/512, 1x1 stride-2 projection shortcuts with batch norm), global average pool,
//!   fc 10 (11,173,962 parameters).
//! - `resnet18-imagenet`, `resnet50-imagenet`: torchvision's ResNet-18 and ResNet-50 (v1.5:
//!   the stride sits on the bottleneck's 3x3 conv), 224x224x3, 1000 classes (11,689,512 and
//!   25,557,032 parameters; 1.82 and 4.09 GMAC forward per image).
//! - `deit-tiny`: DeiT-Ti, 224x224x3, 16x16 patches as a 16x16/16 conv, class token, 12 blocks of
//!   width 192 with 3 heads and MLP 768, 1000 classes (5,717,416 parameters). The fused QKV
//!   projection is three 192->192 linear layers (same parameters and MACs); attention is its
//!   GEMMs and vector ops; dropout and drop-path are absent (identity in MAC terms).
//!
//! ResNet convs have no bias (batch norm follows them); VGG convs, every linear layer and
//! DeiT's patch conv do. Batch norm and layer norm count 2 parameters per channel.

use super::ir::{Layer, LayerKind, Model, Shape, MODEL_INPUT};
use crate::{Error, Result};

/// Names accepted by [`get`].
pub const NAMES: [&str; 9] = [
    "mlp",
    "lenet5",
    "vgg-small",
    "vgg11-cifar10",
    "vgg16-cifar10",
    "resnet18-cifar10",
    "resnet18-imagenet",
    "resnet50-imagenet",
    "deit-tiny",
];

/// The zoo model `name` (one of [`NAMES`]).
pub fn get(name: &str) -> Result<Model> {
    let mut b = Builder { layers: Vec::new(), last: MODEL_INPUT.to_string() };
    let (input, classes) = match name {
        "mlp" => {
            b.flatten("flatten").fc("fc1", 512).relu("relu1").fc("fc2", 256).relu("relu2").fc("fc3", 10);
            (Shape::Image { c: 1, h: 28, w: 28 }, 10)
        }
        "lenet5" => {
            b.conv("conv1", 8, 5, 1, 2, true).relu("relu1").max_pool("pool1", 2, 2, 0);
            b.conv("conv2", 16, 5, 1, 0, true).relu("relu2").max_pool("pool2", 2, 2, 0);
            b.flatten("flatten").fc("fc1", 120).relu("relu3").fc("fc2", 80).relu("relu4").fc("fc3", 10);
            (Shape::Image { c: 1, h: 28, w: 28 }, 10)
        }
        "vgg-small" => {
            b.conv_bn_relu(1, 32).conv_bn_relu(2, 32).max_pool("pool1", 2, 2, 0);
            b.conv_bn_relu(3, 64).conv_bn_relu(4, 64).max_pool("pool2", 2, 2, 0);
            b.conv_bn_relu(5, 128).then("avgpool", LayerKind::AvgPool { kernel: 7, stride: 7 });
            b.flatten("flatten").fc("fc", 10);
            (Shape::Image { c: 1, h: 28, w: 28 }, 10)
        }
        "vgg11-cifar10" => {
            b.vgg(&[64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0]);
            (Shape::Image { c: 3, h: 32, w: 32 }, 10)
        }
        "vgg16-cifar10" => {
            b.vgg(&[64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0]);
            (Shape::Image { c: 3, h: 32, w: 32 }, 10)
        }
        "resnet18-cifar10" => {
            b.conv("conv1", 64, 3, 1, 1, false).bn("bn1").relu("relu1");
            b.resnet(&[2, 2, 2, 2], false, 10);
            (Shape::Image { c: 3, h: 32, w: 32 }, 10)
        }
        "resnet18-imagenet" | "resnet50-imagenet" => {
            b.conv("conv1", 64, 7, 2, 3, false).bn("bn1").relu("relu1").max_pool("maxpool", 3, 2, 1);
            if name == "resnet18-imagenet" {
                b.resnet(&[2, 2, 2, 2], false, 1000);
            } else {
                b.resnet(&[3, 4, 6, 3], true, 1000);
            }
            (Shape::Image { c: 3, h: 224, w: 224 }, 1000)
        }
        "deit-tiny" => {
            b.deit(192, 3, 768, 12, 1000);
            (Shape::Image { c: 3, h: 224, w: 224 }, 1000)
        }
        _ => return Err(Error::Input(format!("unknown model `{name}`; the zoo has {}", NAMES.join(", ")))),
    };
    b.then("loss", LayerKind::SoftmaxCrossEntropy);
    Ok(Model { name: name.to_string(), input, classes: Some(classes), layers: b.layers })
}

/// Appends layers, each taking the previous one unless told otherwise.
struct Builder {
    layers: Vec<Layer>,
    last: String,
}

impl Builder {
    fn add(&mut self, name: &str, kind: LayerKind, inputs: &[&str]) -> &mut Self {
        let inputs = inputs.iter().map(|s| s.to_string()).collect();
        self.layers.push(Layer { name: name.to_string(), kind, inputs, sparsity: None });
        self.last = name.to_string();
        self
    }

    fn then(&mut self, name: &str, kind: LayerKind) -> &mut Self {
        let last = self.last.clone();
        self.add(name, kind, &[&last])
    }

    fn conv(&mut self, name: &str, out: u64, kernel: u64, stride: u64, padding: u64, bias: bool) -> &mut Self {
        let kind =
            LayerKind::Conv2d { out_channels: out, kernel: (kernel, kernel), stride, padding, groups: 1, bias, ceil_mode: false };
        self.then(name, kind)
    }

    fn fc(&mut self, name: &str, out: u64) -> &mut Self {
        self.then(name, LayerKind::Linear { out_features: out, bias: true })
    }

    fn bn(&mut self, name: &str) -> &mut Self {
        self.then(name, LayerKind::BatchNorm)
    }

    fn relu(&mut self, name: &str) -> &mut Self {
        self.then(name, LayerKind::Relu)
    }

    fn flatten(&mut self, name: &str) -> &mut Self {
        self.then(name, LayerKind::Flatten)
    }

    fn max_pool(&mut self, name: &str, kernel: u64, stride: u64, padding: u64) -> &mut Self {
        self.then(name, LayerKind::MaxPool { kernel, stride, padding })
    }

    fn conv_bn_relu(&mut self, i: usize, out: u64) -> &mut Self {
        self.conv(&format!("conv{i}"), out, 3, 1, 1, true).bn(&format!("bn{i}")).relu(&format!("relu{i}"))
    }

    /// CIFAR VGG: `0` in `plan` is a 2x2 max pool, any other entry a conv-bn-relu.
    fn vgg(&mut self, plan: &[u64]) {
        let (mut conv, mut pool) = (0, 0);
        for &out in plan {
            if out == 0 {
                pool += 1;
                self.max_pool(&format!("pool{pool}"), 2, 2, 0);
            } else {
                conv += 1;
                self.conv_bn_relu(conv, out);
            }
        }
        self.flatten("flatten").fc("fc", 10);
    }

    /// ResNet stages after the stem: `blocks` per stage, widths 64/128/256/512, bottlenecks
    /// (expansion 4) or basic blocks, then global average pool and the classifier.
    fn resnet(&mut self, blocks: &[usize], bottleneck: bool, classes: u64) {
        let expansion = if bottleneck { 4 } else { 1 };
        let mut channels = 64;
        for (s, &count) in blocks.iter().enumerate() {
            let width = 64 << s;
            for b in 0..count {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let p = format!("layer{}.{b}", s + 1);
                let block_input = self.last.clone();
                if bottleneck {
                    self.conv(&format!("{p}.conv1"), width, 1, 1, 0, false).bn(&format!("{p}.bn1")).relu(&format!("{p}.relu1"));
                    self.conv(&format!("{p}.conv2"), width, 3, stride, 1, false)
                        .bn(&format!("{p}.bn2"))
                        .relu(&format!("{p}.relu2"));
                    self.conv(&format!("{p}.conv3"), width * 4, 1, 1, 0, false).bn(&format!("{p}.bn3"));
                } else {
                    self.conv(&format!("{p}.conv1"), width, 3, stride, 1, false)
                        .bn(&format!("{p}.bn1"))
                        .relu(&format!("{p}.relu1"));
                    self.conv(&format!("{p}.conv2"), width, 3, 1, 1, false).bn(&format!("{p}.bn2"));
                }
                let residual = self.last.clone();
                let shortcut = if stride != 1 || channels != width * expansion {
                    let conv = LayerKind::Conv2d {
                        out_channels: width * expansion,
                        kernel: (1, 1),
                        stride,
                        padding: 0,
                        groups: 1,
                        bias: false,
                        ceil_mode: false,
                    };
                    self.add(&format!("{p}.downsample.conv"), conv, &[&block_input]).bn(&format!("{p}.downsample.bn"));
                    self.last.clone()
                } else {
                    block_input
                };
                self.add(&format!("{p}.add"), LayerKind::Add, &[&residual, &shortcut]);
                self.relu(&format!("{p}.relu_out"));
                channels = width * expansion;
            }
        }
        self.then("avgpool", LayerKind::GlobalAvgPool).flatten("flatten").fc("fc", classes);
    }

    /// A ViT/DeiT encoder: patch embedding, class token, `depth` pre-norm blocks, head.
    fn deit(&mut self, dim: u64, heads: u64, mlp: u64, depth: usize, classes: u64) {
        let patch = LayerKind::Conv2d {
            out_channels: dim,
            kernel: (16, 16),
            stride: 16,
            padding: 0,
            groups: 1,
            bias: true,
            ceil_mode: false,
        };
        self.then("patch_embed", patch).then("patch_tokens", LayerKind::ToTokens).then("cls_pos", LayerKind::ClassToken);
        let linear = |out| LayerKind::Linear { out_features: out, bias: true };
        for i in 0..depth {
            let p = format!("blocks.{i}");
            let (x, norm1) = (self.last.clone(), format!("{p}.norm1"));
            self.then(&norm1, LayerKind::LayerNorm);
            for proj in ["q", "k", "v"] {
                self.add(&format!("{p}.attn.{proj}"), linear(dim), &[&norm1]);
            }
            let (q, k, v) = (format!("{p}.attn.q"), format!("{p}.attn.k"), format!("{p}.attn.v"));
            self.add(&format!("{p}.attn.scores"), LayerKind::AttentionScores { heads }, &[&q, &k]);
            self.then(&format!("{p}.attn.softmax"), LayerKind::AttentionSoftmax);
            let softmax = self.last.clone();
            self.add(&format!("{p}.attn.context"), LayerKind::AttentionValues, &[&softmax, &v]);
            self.then(&format!("{p}.attn.proj"), linear(dim));
            let proj = self.last.clone();
            self.add(&format!("{p}.add1"), LayerKind::Add, &[&x, &proj]);
            let mid = self.last.clone();
            self.then(&format!("{p}.norm2"), LayerKind::LayerNorm)
                .then(&format!("{p}.mlp.fc1"), linear(mlp))
                .then(&format!("{p}.mlp.gelu"), LayerKind::Gelu)
                .then(&format!("{p}.mlp.fc2"), linear(dim));
            let fc2 = self.last.clone();
            self.add(&format!("{p}.add2"), LayerKind::Add, &[&mid, &fc2]);
        }
        self.then("norm", LayerKind::LayerNorm).then("cls", LayerKind::TakeClassToken).then("head", linear(classes));
    }
}
