//! Model files: the TOML format of the [module documentation](super) and the same structure in
//! JSON, read into a checked [`Model`]. Errors name the file, the line (the layer's line in
//! TOML; the parser's line for syntax and type errors in both), the layer and the problem.

use super::ir::{Layer, LayerKind, Model, ModelError, Shape, MODEL_INPUT};
use crate::{Error, Result};
use satkit_hw::isa::WeightFormat;
use satkit_hw::nm::NmRatio;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::Path;

/// The syntax of a model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// TOML (`.toml`).
    Toml,
    /// JSON (`.json`).
    Json,
}

impl ModelFormat {
    /// The format named by a file's extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Ok(ModelFormat::Toml),
            Some("json") => Ok(ModelFormat::Json),
            _ => Err(Error::Input(format!(
                "{}: a model file ends in .toml or .json (SCALE-Sim topologies are read as CSV)",
                path.display()
            ))),
        }
    }
}

/// Reads and checks the model file at `path`, its format chosen by extension; the model's
/// default name is the file stem.
pub fn load(path: &Path) -> Result<Model> {
    let format = ModelFormat::from_path(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| Error::Input(format!("{}: cannot read: {e}", path.display())))?;
    parse(&text, format, &path.display().to_string())
}

/// Parses and checks a model file's text; `path` names it in errors and its stem is the default
/// model name.
pub fn parse(text: &str, format: ModelFormat, path: &str) -> Result<Model> {
    let file = match format {
        ModelFormat::Toml => {
            let raw: TomlFile = toml::from_str(text).map_err(|e| {
                let message = e.message().trim().replace('\n', "; ");
                Error::Input(match e.span() {
                    Some(span) => format!("{path}:{}: {message}", line_of(text, span.start)),
                    None => format!("{path}: {message}"),
                })
            })?;
            let layers = raw
                .layers
                .into_iter()
                .map(|spanned| {
                    let line = line_of(text, spanned.span().start);
                    let fields = serde_json::to_value(spanned.into_inner())
                        .map_err(|e| Error::Input(format!("{path}:{line}: a layer value has no JSON equivalent: {e}")))?;
                    match fields {
                        Value::Object(map) => Ok(RawLayer { line: Some(line), fields: map }),
                        _ => Err(Error::Input(format!("{path}:{line}: a layer is not a table"))),
                    }
                })
                .collect::<Result<_>>()?;
            RawFile { name: raw.name, input: raw.input, classes: raw.classes, layers }
        }
        ModelFormat::Json => {
            let raw: JsonFile = serde_json::from_str(text).map_err(|e| Error::Input(format!("{path}:{}: {e}", e.line())))?;
            let layers = raw.layers.into_iter().map(|fields| RawLayer { line: None, fields }).collect();
            RawFile { name: raw.name, input: raw.input, classes: raw.classes, layers }
        }
    };
    build(file, path)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    name: Option<String>,
    input: Vec<u64>,
    classes: Option<u64>,
    layers: Vec<toml::Spanned<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFile {
    name: Option<String>,
    input: Vec<u64>,
    classes: Option<u64>,
    layers: Vec<Map<String, Value>>,
}

/// A file after syntax, before meaning.
struct RawFile {
    name: Option<String>,
    input: Vec<u64>,
    classes: Option<u64>,
    layers: Vec<RawLayer>,
}

struct RawLayer {
    /// Line of the layer's header (TOML only).
    line: Option<usize>,
    fields: Map<String, Value>,
}

/// 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

/// `path:line: layer #i `name`` (the line and name when known).
fn at_layer(path: &str, raw: &RawLayer, i: usize) -> String {
    let name = raw.fields.get("name").and_then(Value::as_str).map_or(String::new(), |n| format!(" `{n}`"));
    match raw.line {
        Some(line) => format!("{path}:{line}: layer #{i}{name}"),
        None => format!("{path}: layer #{i}{name}"),
    }
}

fn build(file: RawFile, path: &str) -> Result<Model> {
    let input = Shape::from_dims(&file.input).ok_or_else(|| {
        Error::Input(format!("{path}: input = {:?} is not [C, H, W], [T, D] or [F] of positive sizes", file.input))
    })?;
    let name = file
        .name
        .clone()
        .unwrap_or_else(|| Path::new(path).file_stem().map_or_else(|| path.to_string(), |s| s.to_string_lossy().into_owned()));
    let mut layers: Vec<Layer> = Vec::new();
    for (i, raw) in file.layers.iter().enumerate() {
        let mut fields = Fields(raw.fields.clone());
        let layer = fields
            .layer(layers.last().map_or(MODEL_INPUT, |l| l.name.as_str()))
            .map_err(|message| Error::Input(format!("{}: {message}", at_layer(path, &file.layers[i], i))))?;
        layers.push(layer);
    }
    let model = Model { name, input, classes: file.classes, layers };
    model.check(1).map_err(|ModelError { layer, message }| {
        Error::Input(match layer {
            Some(i) => format!("{}: {message}", at_layer(path, &file.layers[i], i)),
            None => format!("{path}: {message}"),
        })
    })?;
    Ok(model)
}

/// A square kernel `k` or `[kh, kw]`, positive.
fn kernel_size(v: &Value) -> Option<(u64, u64)> {
    let (kh, kw) = match v {
        Value::Array(a) if a.len() == 2 => (a[0].as_u64()?, a[1].as_u64()?),
        _ => (v.as_u64()?, v.as_u64()?),
    };
    (kh > 0 && kw > 0).then_some((kh, kw))
}

/// A layer's fields, consumed as they are read so that leftovers are unknown fields.
struct Fields(Map<String, Value>);

type Field<T> = std::result::Result<T, String>;

impl Fields {
    /// The layer, its inputs defaulting to `previous`.
    fn layer(&mut self, previous: &str) -> Field<Layer> {
        let name = self.string("name")?.ok_or("missing field `name`")?;
        let keyword = self.string("kind")?.ok_or("missing field `kind`")?;
        let kind = self.kind(&keyword)?;
        let inputs = match self.0.remove("inputs") {
            None if matches!(kind, LayerKind::Input { .. }) => Vec::new(),
            None => vec![previous.to_string()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| format!("inputs: `{v}` is not a layer name")))
                .collect::<Field<_>>()?,
            Some(other) => return Err(format!("inputs = {other} is not a list of layer names")),
        };
        let sparsity = match self.string("sparsity")? {
            None => None,
            Some(text) if text == "dense" => Some(WeightFormat::Dense),
            Some(text) => {
                let r: NmRatio = text.parse().map_err(|e| format!("sparsity: {e} (or \"dense\")"))?;
                Some(if r.is_dense() { WeightFormat::Dense } else { WeightFormat::Sparse(r) })
            }
        };
        if let Some(key) = self.0.keys().next() {
            return Err(format!("unknown field `{key}` for a {keyword} layer"));
        }
        Ok(Layer { name, kind, inputs, sparsity })
    }

    fn kind(&mut self, keyword: &str) -> Field<LayerKind> {
        Ok(match keyword {
            "input" => {
                let dims = match self.0.remove("shape") {
                    Some(Value::Array(items)) => items.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>(),
                    Some(_) => None,
                    None => return Err("missing field `shape`".into()),
                };
                let shape = dims.as_deref().and_then(Shape::from_dims);
                LayerKind::Input { shape: shape.ok_or("shape is not [C, H, W], [T, D] or [F] of positive sizes")? }
            }
            "conv2d" => {
                let kernel = match self.0.remove("kernel") {
                    None => return Err("missing field `kernel`".into()),
                    Some(v) => kernel_size(&v).ok_or_else(|| format!("kernel = {v} is not a positive size or [kh, kw]"))?,
                };
                LayerKind::Conv2d {
                    out_channels: self.positive("out_channels")?,
                    kernel,
                    stride: self.positive_or("stride", 1)?,
                    padding: self.count("padding")?.unwrap_or(0),
                    groups: self.positive_or("groups", 1)?,
                    bias: self.boolean("bias")?.unwrap_or(true),
                    ceil_mode: self.boolean("ceil_mode")?.unwrap_or(false),
                }
            }
            "linear" => {
                LayerKind::Linear { out_features: self.positive("out_features")?, bias: self.boolean("bias")?.unwrap_or(true) }
            }
            "max_pool" => {
                let kernel = self.positive("kernel")?;
                LayerKind::MaxPool {
                    kernel,
                    stride: self.positive_or("stride", kernel)?,
                    padding: self.count("padding")?.unwrap_or(0),
                }
            }
            "avg_pool" => {
                let kernel = self.positive("kernel")?;
                LayerKind::AvgPool { kernel, stride: self.positive_or("stride", kernel)? }
            }
            "attention_scores" => LayerKind::AttentionScores { heads: self.positive("heads")? },
            "relu" => LayerKind::Relu,
            "gelu" => LayerKind::Gelu,
            "global_avg_pool" => LayerKind::GlobalAvgPool,
            "batch_norm" => LayerKind::BatchNorm,
            "layer_norm" => LayerKind::LayerNorm,
            "add" => LayerKind::Add,
            "flatten" => LayerKind::Flatten,
            "to_tokens" => LayerKind::ToTokens,
            "class_token" => LayerKind::ClassToken,
            "take_class_token" => LayerKind::TakeClassToken,
            "attention_softmax" => LayerKind::AttentionSoftmax,
            "attention_values" => LayerKind::AttentionValues,
            "softmax_cross_entropy" => LayerKind::SoftmaxCrossEntropy,
            other => return Err(format!("unknown layer kind `{other}`")),
        })
    }

    fn string(&mut self, key: &str) -> Field<Option<String>> {
        match self.0.remove(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(format!("{key} = {v} is not a string")),
        }
    }

    fn boolean(&mut self, key: &str) -> Field<Option<bool>> {
        match self.0.remove(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(v) => Err(format!("{key} = {v} is not true or false")),
        }
    }

    /// An optional whole number (zero allowed).
    fn count(&mut self, key: &str) -> Field<Option<u64>> {
        match self.0.remove(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| format!("{key} = {v} is not a whole number")),
        }
    }

    fn positive_or(&mut self, key: &str, default: u64) -> Field<u64> {
        match self.count(key)? {
            None => Ok(default),
            Some(0) => Err(format!("{key} = 0 must be at least 1")),
            Some(v) => Ok(v),
        }
    }

    fn positive(&mut self, key: &str) -> Field<u64> {
        if !self.0.contains_key(key) {
            return Err(format!("missing field `{key}`"));
        }
        self.positive_or(key, 0)
    }
}
