//! Sparsity policies: which weight operand format every GEMM layer uses in FF and BP, under
//! dense training, SR-STE or BDWP (SAT.md section 2).
//!
//! The rules are documented on [`resolve`].

use super::ir::{is_depthwise, Model};
use crate::{Error, Result};
use satkit_hw::isa::WeightFormat;
use satkit_hw::nm::NmRatio;
pub use satkit_hw::nm::{BpMaskSource, Method};

/// How a model is pruned for training.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparsityPolicy {
    /// The method.
    pub method: Method,
    /// The ratio of pruned layers (a model's per-layer N:M overrides it).
    pub nm: NmRatio,
    /// Weight layers kept dense, by name.
    pub dense_layers: Vec<String>,
    /// Keep the first and last weight layers dense (default true).
    pub first_and_last_dense: bool,
    /// BDWP's BP mask source (default dense).
    pub bp_mask_source: BpMaskSource,
}

impl SparsityPolicy {
    /// `method` at `nm`, with the defaults: first and last dense, BP mask from dense weights.
    pub fn new(method: Method, nm: NmRatio) -> Self {
        SparsityPolicy { method, nm, dense_layers: Vec::new(), first_and_last_dense: true, bp_mask_source: BpMaskSource::Dense }
    }
}

/// The weight formats of one GEMM layer; WU is always dense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFormats {
    /// Index of the layer in [`Model::layers`].
    pub index: usize,
    /// Its name.
    pub name: String,
    /// FF weight operand (groups along `K`).
    pub ff: WeightFormat,
    /// BP weight operand (groups along `C_out`).
    pub bp: WeightFormat,
}

/// The FF and BP weight formats of every GEMM layer of `model`, in layer order. Errors name the
/// layer that cannot take the ratio, or a `dense_layers` entry that is not a weight layer.
///
/// | method | FF weights | BP weights | WU |
/// |---|---|---|---|
/// | `dense` | dense | dense | dense |
/// | `srste` | N:M along `K` | dense | dense |
/// | `bdwp` | N:M along `K` | N:M along `C_out` | dense |
///
/// Per weight layer (conv, linear), in this order:
/// 1. dense when the method is `dense`, the layer is in `dense_layers`, the model fixes it
///    dense, it is depthwise, or it is the first or last weight layer and
///    `first_and_last_dense` holds;
/// 2. otherwise the ratio is the model's per-layer N:M if it has one, else the policy's; a dense
///    ratio (`n == m`) means dense;
/// 3. a layer whose FF `K` (or, for BDWP, whose `C_out` per group) is not a multiple of `M`
///    stays dense when it is the first or last weight layer, and is an error otherwise.
///
/// Attention's activation GEMMs have no weights: both their operands are always dense.
/// `bp_mask_source` does not change any format; it tells the SORE which weights BP groups
/// rank (the dense master weights or the FF-pruned ones).
pub fn resolve(model: &Model, policy: &SparsityPolicy) -> Result<Vec<LayerFormats>> {
    let infos = model.infer(1)?;
    let fail = |message: String| Error::Input(format!("model `{}`: {message}", model.name));
    for name in &policy.dense_layers {
        if !model.layers.iter().any(|l| &l.name == name && l.kind.has_weights()) {
            return Err(fail(format!("dense_layers names `{name}`, which is not a conv2d or linear layer of the model")));
        }
    }
    let weighted: Vec<usize> = model.layers.iter().enumerate().filter(|(_, l)| l.kind.has_weights()).map(|(i, _)| i).collect();
    let mut out = Vec::new();
    for info in infos.iter().filter(|i| model.layers[i.index].kind.is_gemm()) {
        let layer = &model.layers[info.index];
        let dense =
            LayerFormats { index: info.index, name: layer.name.clone(), ff: WeightFormat::Dense, bp: WeightFormat::Dense };
        let (Some(gemms), true) = (&info.gemms, layer.kind.has_weights()) else {
            out.push(dense);
            continue;
        };
        let edge = weighted.first() == Some(&info.index) || weighted.last() == Some(&info.index);
        let ratio = match layer.sparsity {
            Some(WeightFormat::Sparse(r)) => r,
            _ => policy.nm,
        };
        if policy.method == Method::Dense
            || policy.dense_layers.contains(&layer.name)
            || layer.sparsity == Some(WeightFormat::Dense)
            || is_depthwise(&layer.kind, info.input_shapes[0])
            || (policy.first_and_last_dense && edge)
            || ratio.is_dense()
        {
            out.push(dense);
            continue;
        }
        let m = u64::from(ratio.m);
        let misfit = if gemms.ff.k % m != 0 {
            Some(format!("its FF reduction K = {}", gemms.ff.k))
        } else if policy.method == Method::Bdwp && gemms.bp[0].k % m != 0 {
            Some(format!("its BP reduction C_out = {} (per group)", gemms.bp[0].k))
        } else {
            None
        };
        match misfit {
            Some(_) if edge => out.push(dense),
            Some(what) => {
                return Err(fail(format!(
                    "layer #{} `{}`: {method} at {ratio}: {what} is not a multiple of M = {m}; list it in dense_layers or pick another N:M",
                    info.index,
                    layer.name,
                    method = policy.method
                )))
            }
            None => {
                let sparse = WeightFormat::Sparse(ratio);
                let bp = if policy.method == Method::Bdwp { sparse } else { WeightFormat::Dense };
                out.push(LayerFormats { ff: sparse, bp, ..dense });
            }
        }
    }
    Ok(out)
}
