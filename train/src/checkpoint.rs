//! Checkpoints in safetensors format. Per weight layer: `<layer>.weight` (FP32, shape
//! `[C_out, kh, kw, C_in]` for a convolution, the memory order of `C_out x K` with `K` in
//! `(kh, kw, c_in)` order (PyTorch's `[C_out, C_in, kh, kw]` is this permuted by
//! `(0, 3, 1, 2)`), or `[C_out, K]` for a linear layer) and `<layer>.bias`;
//! for sparse layers `<layer>.mask_ff` and, for BDWP, `<layer>.mask_bp` (U8 0/1, same shape
//! as the weight). Per batch norm: `.gamma`, `.beta`, `.running_mean`, `.running_var`.
//! Metadata (one key, `satkit`) records the model name and each layer's method and ratio.

use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::model::Model;
use crate::output::write_atomic;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;

/// The values of a stored tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// FP32 values.
    F32(Vec<f32>),
    /// Unsigned bytes (masks).
    U8(Vec<u8>),
}

/// A tensor read back from a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// `<layer>.<what>`.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values.
    pub data: TensorData,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The tensors of `model` as `(name, dtype, shape, bytes)`, in layer order.
fn collect(model: &Model) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut f32t = |name: String, shape: Vec<usize>, v: &[f32]| out.push((name, Dtype::F32, shape, f32_bytes(v)));
    let mut masks = Vec::new();
    for (spec, layer) in model.spec.layers.iter().zip(&model.layers) {
        let n = &spec.name;
        let weight = match layer {
            Layer::Conv2d(c) => Some((&c.weight, &c.bias, vec![c.weight.c_out, c.geom.kh, c.geom.kw, c.geom.c_in])),
            Layer::Linear(l) => Some((&l.weight, &l.bias, vec![l.weight.c_out, l.weight.k])),
            _ => None,
        };
        if let Some((w, b, wshape)) = weight {
            f32t(format!("{n}.weight"), wshape.clone(), &w.param.value);
            f32t(format!("{n}.bias"), vec![w.c_out], &b.value);
            if let Some(m) = w.mask_ff() {
                masks.push((format!("{n}.mask_ff"), Dtype::U8, wshape.clone(), m.to_vec()));
            }
            if let Some(m) = w.mask_bp() {
                masks.push((format!("{n}.mask_bp"), Dtype::U8, wshape, m.to_vec()));
            }
        }
        match layer {
            Layer::BatchNorm(bn) => {
                let c = vec![bn.channels];
                f32t(format!("{n}.gamma"), c.clone(), &bn.gamma.value);
                f32t(format!("{n}.beta"), c.clone(), &bn.beta.value);
                f32t(format!("{n}.running_mean"), c.clone(), &bn.running_mean);
                f32t(format!("{n}.running_var"), c, &bn.running_var);
            }
            Layer::Conv2d(_) | Layer::Linear(_) | Layer::Relu(_) | Layer::Pool(_) | Layer::Flatten(_) => {}
        }
    }
    out.extend(masks);
    out
}

/// Serializes `model` to safetensors bytes.
pub fn to_bytes(model: &Model) -> Result<Vec<u8>> {
    let tensors = collect(model);
    let ser = |e: safetensors::SafeTensorError| Error::Serialize { what: "checkpoint", reason: e.to_string() };
    let views = tensors
        .iter()
        .map(|(n, d, s, b)| TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(ser)?;
    // One key per entry keeps the header deterministic (the map's iteration order is not).
    let layers: Vec<String> = model
        .sparsity()
        .into_iter()
        .map(|(name, s)| {
            if s.is_dense() {
                format!("{name}=dense")
            } else {
                format!("{name}={} {} bp_mask_source={}", s.method, s.ratio, s.bp_mask_source)
            }
        })
        .collect();
    let meta = HashMap::from([("satkit".to_string(), format!("model={}; {}", model.spec.name, layers.join("; ")))]);
    safetensors::serialize(views, &Some(meta)).map_err(ser)
}

/// Writes `model` to `path` (whole or not at all).
pub fn save(model: &Model, path: &Path) -> Result<()> {
    write_atomic(path, &to_bytes(model)?)
}

/// Reads every tensor of a checkpoint, sorted by name.
pub fn load(path: &Path) -> Result<Vec<NamedTensor>> {
    let bytes = std::fs::read(path).map_err(|e| Error::Checkpoint { path: path.to_path_buf(), reason: e.to_string() })?;
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| Error::Checkpoint { path: path.to_path_buf(), reason: e.to_string() })?;
    let mut out: Vec<NamedTensor> = st
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            let data = match v.dtype() {
                Dtype::F32 => {
                    TensorData::F32(v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
                }
                Dtype::U8 => TensorData::U8(v.data().to_vec()),
                other => {
                    return Err(Error::Checkpoint {
                        path: path.to_path_buf(),
                        reason: format!("tensor `{name}` has dtype {other:?}, expected F32 or U8"),
                    })
                }
            };
            Ok(NamedTensor { name, shape: v.shape().to_vec(), data })
        })
        .collect::<Result<_>>()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
