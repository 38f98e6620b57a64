//! The model IR: a [`Model`] is a list of named [`Layer`]s in execution order, each naming its
//! inputs, and [`Model::infer`] walks it once to check it and to compute, for a batch, every
//! layer's shapes, parameter count and training-phase GEMMs ([`LayerInfo`]).
//!
//! The GEMM convention and the parameter-count rules are in the [parent module](super).

use crate::{Error, Result};
use satkit_hw::isa::WeightFormat;
use std::collections::HashMap;
use std::fmt;

/// The name by which a layer's `inputs` refer to the model input; no layer may take it.
pub const MODEL_INPUT: &str = "input";

/// A per-sample tensor shape (the batch is a separate factor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A feature map `[C, H, W]`.
    Image {
        /// Channels.
        c: u64,
        /// Height.
        h: u64,
        /// Width.
        w: u64,
    },
    /// A token sequence `[T, D]`.
    Tokens {
        /// Tokens.
        t: u64,
        /// Features per token.
        d: u64,
    },
    /// Flat features `[F]`.
    Flat(u64),
    /// Attention scores `[heads, T_q, T_k]`.
    Scores {
        /// Heads.
        heads: u64,
        /// Queries.
        t_q: u64,
        /// Keys.
        t_k: u64,
    },
}

impl Shape {
    /// Elements per sample.
    pub fn elements(self) -> u64 {
        self.dims().iter().product()
    }

    /// The dimensions, outermost first.
    pub fn dims(self) -> Vec<u64> {
        match self {
            Shape::Image { c, h, w } => vec![c, h, w],
            Shape::Tokens { t, d } => vec![t, d],
            Shape::Flat(f) => vec![f],
            Shape::Scores { heads, t_q, t_k } => vec![heads, t_q, t_k],
        }
    }

    /// The shape of a model input or `input` layer from its dimensions: `[C, H, W]` is an image,
    /// `[T, D]` a token sequence, `[F]` flat features; `None` for other ranks or a zero.
    pub fn from_dims(dims: &[u64]) -> Option<Shape> {
        if dims.contains(&0) {
            return None;
        }
        match *dims {
            [c, h, w] => Some(Shape::Image { c, h, w }),
            [t, d] => Some(Shape::Tokens { t, d }),
            [f] => Some(Shape::Flat(f)),
            _ => None,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.dims().iter().map(u64::to_string).collect();
        let what = match self {
            Shape::Image { .. } => "image",
            Shape::Tokens { .. } => "tokens",
            Shape::Flat(_) => "flat",
            Shape::Scores { .. } => "scores",
        };
        write!(f, "{what} [{}]", dims.join(", "))
    }
}

/// What a layer computes. Layers without a GEMM run on the vector unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerKind {
    /// A fresh tensor produced by nothing (an independent layer's input, as in a SCALE-Sim
    /// topology); takes no inputs and does no work.
    Input {
        /// Its per-sample shape.
        shape: Shape,
    },
    /// 2-D convolution on an image; `groups == C_in > 1` is depthwise.
    Conv2d {
        /// Output channels.
        out_channels: u64,
        /// Kernel `(kh, kw)`.
        kernel: (u64, u64),
        /// Stride in both directions.
        stride: u64,
        /// Zero padding on every side.
        padding: u64,
        /// Groups; divides `C_in` and `out_channels`.
        groups: u64,
        /// Whether it has a bias (a vector op, `C_out` parameters).
        bias: bool,
        /// Count a partial window at the bottom and right edges (PyTorch's pooling
        /// `ceil_mode`; SCALE-Sim's convention for its topology rows).
        ceil_mode: bool,
    },
    /// Fully connected on flat features, or on every token of a sequence.
    Linear {
        /// Output features.
        out_features: u64,
        /// Whether it has a bias.
        bias: bool,
    },
    /// ReLU.
    Relu,
    /// GELU.
    Gelu,
    /// Max pooling on an image, square window.
    MaxPool {
        /// Window.
        kernel: u64,
        /// Stride.
        stride: u64,
        /// Padding on every side (at most half the window).
        padding: u64,
    },
    /// Average pooling on an image, square window, no padding.
    AvgPool {
        /// Window.
        kernel: u64,
        /// Stride.
        stride: u64,
    },
    /// Average over all pixels: `[C, H, W]` to `[C, 1, 1]`.
    GlobalAvgPool,
    /// Batch normalization over the channels of an image or the features of a flat input.
    BatchNorm,
    /// Layer normalization over the features of each token (or of a flat input).
    LayerNorm,
    /// Elementwise sum of two inputs of the same shape (a residual connection).
    Add,
    /// An image or token sequence to flat features.
    Flatten,
    /// An image `[C, H, W]` to the token sequence `[H*W, C]` (ViT patch tokens).
    ToTokens,
    /// Prepends a learned class token and adds a learned position embedding:
    /// `[T, D]` to `[T+1, D]`, `D + (T+1)*D` parameters.
    ClassToken,
    /// Keeps the class token (token 0): `[T, D]` to `[D]`.
    TakeClassToken,
    /// Attention scores `S = Q . K^T` per head, from `inputs = [q, k]`; an activation GEMM.
    AttentionScores {
        /// Heads; divides the feature width.
        heads: u64,
    },
    /// Softmax over the keys of attention scores, with the `1/sqrt(dh)` scaling folded in.
    AttentionSoftmax,
    /// Attention output `O = P . V` per head (heads concatenated), from
    /// `inputs = [probabilities, v]`; an activation GEMM.
    AttentionValues,
    /// Softmax and cross-entropy against the labels: the loss, last layer, `[classes]` to `[1]`.
    SoftmaxCrossEntropy,
}

impl LayerKind {
    /// The `kind` keyword of model files.
    pub fn keyword(&self) -> &'static str {
        match self {
            LayerKind::Input { .. } => "input",
            LayerKind::Conv2d { .. } => "conv2d",
            LayerKind::Linear { .. } => "linear",
            LayerKind::Relu => "relu",
            LayerKind::Gelu => "gelu",
            LayerKind::MaxPool { .. } => "max_pool",
            LayerKind::AvgPool { .. } => "avg_pool",
            LayerKind::GlobalAvgPool => "global_avg_pool",
            LayerKind::BatchNorm => "batch_norm",
            LayerKind::LayerNorm => "layer_norm",
            LayerKind::Add => "add",
            LayerKind::Flatten => "flatten",
            LayerKind::ToTokens => "to_tokens",
            LayerKind::ClassToken => "class_token",
            LayerKind::TakeClassToken => "take_class_token",
            LayerKind::AttentionScores { .. } => "attention_scores",
            LayerKind::AttentionSoftmax => "attention_softmax",
            LayerKind::AttentionValues => "attention_values",
            LayerKind::SoftmaxCrossEntropy => "softmax_cross_entropy",
        }
    }

    /// True for the layers with a weight GEMM (conv, linear): the ones a sparsity policy prunes.
    pub fn has_weights(&self) -> bool {
        matches!(self, LayerKind::Conv2d { .. } | LayerKind::Linear { .. })
    }

    /// True for the layers that run GEMMs: weight layers and attention's activation GEMMs.
    pub fn is_gemm(&self) -> bool {
        self.has_weights() || matches!(self, LayerKind::AttentionScores { .. } | LayerKind::AttentionValues)
    }

    fn arity(&self) -> usize {
        match self {
            LayerKind::Input { .. } => 0,
            LayerKind::Add | LayerKind::AttentionScores { .. } | LayerKind::AttentionValues => 2,
            _ => 1,
        }
    }
}

/// One layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Unique name within the model (not [`MODEL_INPUT`]).
    pub name: String,
    /// What it computes.
    pub kind: LayerKind,
    /// Producers of its inputs, by layer name or [`MODEL_INPUT`], all earlier in the list:
    /// none for `Input`, two for `Add` and the attention GEMMs, one otherwise.
    pub inputs: Vec<String>,
    /// Per-layer sparsity fixed by the model (weight layers only): `Dense` keeps the layer dense
    /// under every policy, `Sparse(r)` uses `r` instead of the policy's ratio; `None` follows
    /// the policy.
    pub sparsity: Option<WeightFormat>,
}

/// A model: its input, classes and layers in execution order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// Name (zoo name or file stem).
    pub name: String,
    /// Per-sample shape of the model input.
    pub input: Shape,
    /// Number of classes: the model then ends in [`LayerKind::SoftmaxCrossEntropy`] on
    /// `[classes]` features. `None` for a model without a loss (a SCALE-Sim topology).
    pub classes: Option<u64>,
    /// Layers in execution order.
    pub layers: Vec<Layer>,
}

/// `groups` independent GEMMs `out[m x n] = in[m x k] . W[k x n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gemm {
    /// Output rows.
    pub m: u64,
    /// Output columns.
    pub n: u64,
    /// Reduction length.
    pub k: u64,
    /// Independent GEMMs of this shape (conv groups; batch x heads for attention).
    pub groups: u64,
}

impl Gemm {
    /// Dense multiply-accumulates, `groups*m*n*k`.
    pub fn macs(&self) -> u64 {
        self.groups * self.m * self.n * self.k
    }
}

/// Dense MAC counts of the three training phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PhaseMacs {
    /// Forward.
    pub ff: u64,
    /// Backward, data gradients.
    pub bp: u64,
    /// Backward, weight gradients.
    pub wu: u64,
}

/// The training-phase GEMMs of one GEMM layer (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerGemms {
    /// The forward GEMM; for a weight layer its `k` is the reduction the FF N:M groups run along.
    pub ff: Gemm,
    /// Data-gradient GEMMs: one (`dX`) for a weight layer, whose `k` is `C_out/groups`, the
    /// reduction the BP N:M groups run along; two for an activation GEMM, the gradient of
    /// `inputs[0]` then of `inputs[1]`.
    pub bp: Vec<Gemm>,
    /// The weight-gradient GEMM (`dW`); `None` for an activation GEMM.
    pub wu: Option<Gemm>,
}

impl LayerGemms {
    /// Dense MACs per phase.
    pub fn macs(&self) -> PhaseMacs {
        PhaseMacs { ff: self.ff.macs(), bp: self.bp.iter().map(Gemm::macs).sum(), wu: self.wu.as_ref().map_or(0, Gemm::macs) }
    }
}

/// What shape inference found for one layer at a given batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// Index of the layer in [`Model::layers`].
    pub index: usize,
    /// The producer of each input: a layer index, or `None` for the model input.
    pub inputs: Vec<Option<usize>>,
    /// Per-sample shape of each input.
    pub input_shapes: Vec<Shape>,
    /// Per-sample output shape.
    pub output: Shape,
    /// The batch it was inferred for.
    pub batch: u64,
    /// Trainable parameters.
    pub params: u64,
    /// Training-phase GEMMs, for GEMM layers.
    pub gemms: Option<LayerGemms>,
}

impl LayerInfo {
    /// Output activation elements for the whole batch.
    pub fn output_elements(&self) -> u64 {
        self.batch * self.output.elements()
    }

    /// Input activation elements for the whole batch, all inputs together.
    pub fn input_elements(&self) -> u64 {
        self.batch * self.input_shapes.iter().map(|s| s.elements()).sum::<u64>()
    }
}

/// A model problem found by [`Model::check`], tied to a layer when there is one, so that
/// each front end (zoo, model file, topology) can say where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelError {
    /// Index of the layer at fault.
    pub layer: Option<usize>,
    /// The problem.
    pub message: String,
}

/// True for a depthwise convolution (`groups == C_in > 1`): always dense.
pub(crate) fn is_depthwise(kind: &LayerKind, input: Shape) -> bool {
    matches!((kind, input), (LayerKind::Conv2d { groups, .. }, Shape::Image { c, .. }) if *groups == c && c > 1)
}

/// Output length of a window sweep, `None` when the window does not fit.
fn window_out(len: u64, kernel: u64, stride: u64, padding: u64, ceil_mode: bool) -> Option<u64> {
    let span = (len + 2 * padding).checked_sub(kernel)?;
    let out = if ceil_mode { span.div_ceil(stride) } else { span / stride } + 1;
    // PyTorch's rule: the last window must start inside the input or the leading padding.
    Some(if ceil_mode && (out - 1) * stride >= len + padding { out - 1 } else { out })
}

impl Model {
    /// Checks the model and computes every layer's shapes, parameters and GEMMs for `batch`
    /// samples. Errors name the model, the layer and the problem.
    pub fn infer(&self, batch: u64) -> Result<Vec<LayerInfo>> {
        self.check(batch).map_err(|e| {
            Error::Input(match e.layer {
                Some(i) => format!("model `{}`: layer #{i} `{}`: {}", self.name, self.layers[i].name, e.message),
                None => format!("model `{}`: {}", self.name, e.message),
            })
        })
    }

    /// Trainable parameters of the whole model.
    pub fn params(&self) -> Result<u64> {
        Ok(self.infer(1)?.iter().map(|l| l.params).sum())
    }

    /// Dense MACs per phase of the whole model for `batch` samples.
    pub fn macs(&self, batch: u64) -> Result<PhaseMacs> {
        let mut total = PhaseMacs::default();
        for macs in self.infer(batch)?.iter().filter_map(|l| l.gemms.as_ref()).map(LayerGemms::macs) {
            total.ff += macs.ff;
            total.bp += macs.bp;
            total.wu += macs.wu;
        }
        Ok(total)
    }

    /// [`Model::infer`] with errors tied to a layer index.
    pub(crate) fn check(&self, batch: u64) -> std::result::Result<Vec<LayerInfo>, ModelError> {
        let whole = |message: String| ModelError { layer: None, message };
        if batch == 0 {
            return Err(whole("the batch must be at least 1".into()));
        }
        if self.layers.is_empty() {
            return Err(whole("no layers".into()));
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut infos: Vec<LayerInfo> = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let at = |message: String| ModelError { layer: Some(i), message };
            if layer.name.is_empty() || layer.name == MODEL_INPUT {
                return Err(at(format!("`{}` cannot name a layer", layer.name)));
            }
            if let Some(first) = index.insert(&layer.name, i) {
                return Err(at(format!("duplicate name: layer #{first} is also `{}`", layer.name)));
            }
            let arity = layer.kind.arity();
            if layer.inputs.len() != arity {
                return Err(at(format!(
                    "{} takes {arity} input(s), got {} ({:?})",
                    layer.kind.keyword(),
                    layer.inputs.len(),
                    layer.inputs
                )));
            }
            let mut producers = Vec::with_capacity(arity);
            let mut shapes = Vec::with_capacity(arity);
            for input in &layer.inputs {
                if input == MODEL_INPUT {
                    producers.push(None);
                    shapes.push(self.input);
                } else if let Some(&j) = index.get(input.as_str()).filter(|&&j| j < i) {
                    producers.push(Some(j));
                    shapes.push(infos[j].output);
                } else if self.layers.iter().any(|l| &l.name == input) {
                    return Err(at(format!("input `{input}` is not an earlier layer (layers run in list order)")));
                } else {
                    return Err(at(format!("unknown input `{input}`")));
                }
            }
            let (output, params, gemms) = self.layer_shapes(i, &shapes, batch).map_err(at)?;
            if let Some(format) = layer.sparsity {
                check_layer_sparsity(&layer.kind, shapes[0], gemms.as_ref(), format).map_err(at)?;
            }
            infos.push(LayerInfo { index: i, inputs: producers, input_shapes: shapes, output, batch, params, gemms });
        }
        let last = self.layers.len() - 1;
        match (self.classes, &self.layers[last].kind) {
            (Some(_), LayerKind::SoftmaxCrossEntropy) | (None, _) => Ok(infos),
            (Some(classes), _) => Err(whole(format!(
                "it declares {classes} classes but its last layer `{}` is not softmax_cross_entropy",
                self.layers[last].name
            ))),
        }
    }

    /// Output shape, parameters and GEMMs of layer `i` given its input shapes.
    fn layer_shapes(
        &self,
        i: usize,
        inputs: &[Shape],
        batch: u64,
    ) -> std::result::Result<(Shape, u64, Option<LayerGemms>), String> {
        let kind = &self.layers[i].kind;
        let wrong = |what: &str| Err(format!("{} needs {what}, got {}", kind.keyword(), inputs[0]));
        let shape = inputs.first().copied();
        Ok(match (kind, shape) {
            (LayerKind::Input { shape }, _) => (*shape, 0, None),
            (
                &LayerKind::Conv2d { out_channels, kernel: (kh, kw), stride, padding, groups, bias, ceil_mode },
                Some(Shape::Image { c, h, w }),
            ) => {
                if c % groups != 0 || out_channels % groups != 0 {
                    return Err(format!(
                        "groups = {groups} must divide both the {c} input channels and the {out_channels} output channels"
                    ));
                }
                let (Some(oh), Some(ow)) =
                    (window_out(h, kh, stride, padding, ceil_mode), window_out(w, kw, stride, padding, ceil_mode))
                else {
                    return Err(format!("kernel {kh}x{kw} is larger than the padded input {}", inputs[0]));
                };
                let (p, ng, kg) = (batch * oh * ow, out_channels / groups, c / groups * kh * kw);
                let params = out_channels * kg + if bias { out_channels } else { 0 };
                (Shape::Image { c: out_channels, h: oh, w: ow }, params, Some(weight_gemms(p, ng, kg, groups)))
            }
            (LayerKind::Conv2d { .. }, _) => return wrong("an image [C, H, W]"),
            (&LayerKind::Linear { out_features, bias }, Some(s @ (Shape::Flat(_) | Shape::Tokens { .. }))) => {
                let (rows, features, output) = match s {
                    Shape::Tokens { t, d } => (batch * t, d, Shape::Tokens { t, d: out_features }),
                    _ => (batch, s.elements(), Shape::Flat(out_features)),
                };
                let params = out_features * features + if bias { out_features } else { 0 };
                (output, params, Some(weight_gemms(rows, out_features, features, 1)))
            }
            (LayerKind::Linear { .. }, _) => return wrong("flat features or tokens (put a flatten layer after an image)"),
            (LayerKind::Relu | LayerKind::Gelu, Some(s)) => (s, 0, None),
            (&LayerKind::MaxPool { kernel, stride, padding }, Some(Shape::Image { c, h, w })) => {
                if 2 * padding > kernel {
                    return Err(format!("padding = {padding} exceeds half the window {kernel}"));
                }
                pool(kernel, stride, padding, c, h, w, inputs[0])?
            }
            (&LayerKind::AvgPool { kernel, stride }, Some(Shape::Image { c, h, w })) => {
                pool(kernel, stride, 0, c, h, w, inputs[0])?
            }
            (LayerKind::GlobalAvgPool, Some(Shape::Image { c, .. })) => (Shape::Image { c, h: 1, w: 1 }, 0, None),
            (LayerKind::MaxPool { .. } | LayerKind::AvgPool { .. } | LayerKind::GlobalAvgPool, _) => {
                return wrong("an image [C, H, W]")
            }
            (LayerKind::BatchNorm, Some(s @ Shape::Image { c, .. })) => (s, 2 * c, None),
            (LayerKind::BatchNorm, Some(s @ Shape::Flat(f))) => (s, 2 * f, None),
            (LayerKind::BatchNorm, _) => return wrong("an image or flat features"),
            (LayerKind::LayerNorm, Some(s @ (Shape::Tokens { d: f, .. } | Shape::Flat(f)))) => (s, 2 * f, None),
            (LayerKind::LayerNorm, _) => return wrong("tokens or flat features"),
            (LayerKind::Add, Some(s)) => {
                if inputs[1] != s {
                    return Err(format!("adds inputs of different shapes, {s} and {}", inputs[1]));
                }
                (s, 0, None)
            }
            (LayerKind::Flatten, Some(s @ (Shape::Image { .. } | Shape::Tokens { .. } | Shape::Flat(_)))) => {
                (Shape::Flat(s.elements()), 0, None)
            }
            (LayerKind::Flatten, _) => return wrong("an image or tokens"),
            (LayerKind::ToTokens, Some(Shape::Image { c, h, w })) => (Shape::Tokens { t: h * w, d: c }, 0, None),
            (LayerKind::ToTokens, _) => return wrong("an image [C, H, W]"),
            (LayerKind::ClassToken, Some(Shape::Tokens { t, d })) => (Shape::Tokens { t: t + 1, d }, d + (t + 1) * d, None),
            (LayerKind::TakeClassToken, Some(Shape::Tokens { d, .. })) => (Shape::Flat(d), 0, None),
            (LayerKind::ClassToken | LayerKind::TakeClassToken, _) => return wrong("tokens [T, D]"),
            (&LayerKind::AttentionScores { heads }, Some(Shape::Tokens { t: t_q, d })) => {
                let Shape::Tokens { t: t_k, d: d_k } = inputs[1] else {
                    return Err(format!("needs tokens as its second input (keys), got {}", inputs[1]));
                };
                if d_k != d || d % heads != 0 {
                    return Err(format!(
                        "queries {} and keys {} must have the same width, a multiple of heads = {heads}",
                        inputs[0], inputs[1]
                    ));
                }
                let (dh, g) = (d / heads, batch * heads);
                let gemms = LayerGemms {
                    ff: Gemm { m: t_q, n: t_k, k: dh, groups: g },
                    bp: vec![Gemm { m: t_q, n: dh, k: t_k, groups: g }, Gemm { m: t_k, n: dh, k: t_q, groups: g }],
                    wu: None,
                };
                (Shape::Scores { heads, t_q, t_k }, 0, Some(gemms))
            }
            (LayerKind::AttentionSoftmax, Some(s @ Shape::Scores { .. })) => (s, 0, None),
            (LayerKind::AttentionValues, Some(Shape::Scores { heads, t_q, t_k })) => {
                let Shape::Tokens { t, d } = inputs[1] else {
                    return Err(format!("needs tokens as its second input (values), got {}", inputs[1]));
                };
                if t != t_k || d % heads != 0 {
                    return Err(format!(
                        "values {} must have {t_k} tokens (the keys of {}) and a width that is a multiple of {heads} heads",
                        inputs[1], inputs[0]
                    ));
                }
                let (dh, g) = (d / heads, batch * heads);
                let gemms = LayerGemms {
                    ff: Gemm { m: t_q, n: dh, k: t_k, groups: g },
                    bp: vec![Gemm { m: t_q, n: t_k, k: dh, groups: g }, Gemm { m: t_k, n: dh, k: t_q, groups: g }],
                    wu: None,
                };
                (Shape::Tokens { t: t_q, d }, 0, Some(gemms))
            }
            (LayerKind::AttentionScores { .. }, _) => return wrong("tokens (queries)"),
            (LayerKind::AttentionSoftmax | LayerKind::AttentionValues, _) => return wrong("attention scores"),
            (LayerKind::SoftmaxCrossEntropy, Some(s)) => {
                if i + 1 != self.layers.len() {
                    return Err("the loss must be the last layer".into());
                }
                match self.classes {
                    Some(classes) if s == Shape::Flat(classes) => (Shape::Flat(1), 0, None),
                    Some(classes) => return Err(format!("needs flat [{classes}] (the model's classes), got {s}")),
                    None => return Err("the model declares no classes for its loss".into()),
                }
            }
            (_, None) => unreachable!("every kind but input has an input, checked by arity"),
        })
    }
}

/// FF, BP and WU of a weight layer: `p` output rows, `ng` output channels and `kg` reduction
/// per group.
fn weight_gemms(p: u64, ng: u64, kg: u64, groups: u64) -> LayerGemms {
    LayerGemms {
        ff: Gemm { m: p, n: ng, k: kg, groups },
        bp: vec![Gemm { m: p, n: kg, k: ng, groups }],
        wu: Some(Gemm { m: ng, n: kg, k: p, groups }),
    }
}

fn pool(
    kernel: u64,
    stride: u64,
    padding: u64,
    c: u64,
    h: u64,
    w: u64,
    input: Shape,
) -> std::result::Result<(Shape, u64, Option<LayerGemms>), String> {
    match (window_out(h, kernel, stride, padding, false), window_out(w, kernel, stride, padding, false)) {
        (Some(oh), Some(ow)) => Ok((Shape::Image { c, h: oh, w: ow }, 0, None)),
        _ => Err(format!("window {kernel}x{kernel} is larger than the input {input}")),
    }
}

/// Checks a sparsity fixed by the model: only on weight layers, never depthwise, and an N:M
/// must split both reductions (FF `K`, BP `C_out` per group) into whole groups.
fn check_layer_sparsity(
    kind: &LayerKind,
    input: Shape,
    gemms: Option<&LayerGemms>,
    format: WeightFormat,
) -> std::result::Result<(), String> {
    let Some(gemms) = gemms.filter(|_| kind.has_weights()) else {
        return Err(format!("a sparsity applies to conv2d and linear layers only, not to {}", kind.keyword()));
    };
    let WeightFormat::Sparse(r) = format else { return Ok(()) };
    if is_depthwise(kind, input) {
        return Err(format!("N:M {r} on a depthwise conv: depthwise convs stay dense"));
    }
    let (m, ff_k, bp_k) = (u64::from(r.m), gemms.ff.k, gemms.bp[0].k);
    if ff_k % m != 0 {
        return Err(format!("N:M {r}: the FF reduction K = {ff_k} is not a multiple of M = {m}"));
    }
    if bp_k % m != 0 {
        return Err(format!("N:M {r}: the BP reduction C_out = {bp_k} (per group) is not a multiple of M = {m}"));
    }
    Ok(())
}
