//! SCALE-Sim topology CSVs as models, read by [`crate::scalesim::parse_topology`].
//!
//! Each row becomes one weight layer whose FF GEMM at batch 1 is SCALE-Sim's `(M, N, K)`
//! (ifmap `M x K`, filter `K x N`), so BP and WU follow from the usual convention and the batch
//! scales `M` (FF, BP) and the WU reduction:
//! - a GEMM row `name, M, N, K` is a linear layer without bias on `M` tokens of `K` features,
//!   `N` outputs;
//! - a conv row `name, H, W, Fh, Fw, C, NumFilter, S` is a conv without bias or padding, with
//!   SCALE-Sim's partial edge windows (`ceil_mode`), on an `[C, H, W]` image: it keeps the
//!   geometry, so activation sizes and col2im are those of the conv.
//!
//! Simplifications: rows are independent (every row after the first reads an `input` layer
//! named `<row>.input` of its own shape; the first reads the model input), there is no loss
//! (`classes` is `None`) and no non-GEMM work. An N:M column becomes the layer's fixed
//! sparsity, so its `M` must divide both `K` and `N` (the FF and BP reductions).

use super::ir::{Layer, LayerKind, Model, ModelError, Shape, MODEL_INPUT};
use crate::scalesim::{parse_topology, TopologyKind};
use crate::{Error, Result};
use satkit_hw::isa::WeightFormat;
use std::path::Path;

/// The model of a SCALE-Sim topology CSV of the given form (`path` names it in errors; its
/// stem names the model).
pub fn from_topology(text: &str, kind: TopologyKind, path: &str) -> Result<Model> {
    let rows = parse_topology(text, kind, path)?;
    let lines: Vec<&str> = text.lines().collect();
    let mut layers = Vec::new();
    let mut row_of_layer = Vec::new();
    let mut input = None;
    for (r, row) in rows.iter().enumerate() {
        let (shape, layer_kind) = match kind {
            TopologyKind::Gemm => (Shape::Tokens { t: row.m, d: row.k }, LayerKind::Linear { out_features: row.n, bias: false }),
            TopologyKind::Conv => {
                // parse_topology accepted this row, so its seven numbers are positive integers.
                let v: Vec<u64> = lines[row.line - 1]
                    .split(',')
                    .skip(1)
                    .take(7)
                    .map(|f| f.trim().parse().expect("parse_topology checked the conv fields"))
                    .collect();
                let conv = LayerKind::Conv2d {
                    out_channels: v[5],
                    kernel: (v[2], v[3]),
                    stride: v[6],
                    padding: 0,
                    groups: 1,
                    bias: false,
                    ceil_mode: true,
                };
                (Shape::Image { c: v[4], h: v[0], w: v[1] }, conv)
            }
        };
        let source = if r == 0 {
            input = Some(shape);
            MODEL_INPUT.to_string()
        } else {
            let name = format!("{}.input", row.name);
            layers.push(Layer { name: name.clone(), kind: LayerKind::Input { shape }, inputs: Vec::new(), sparsity: None });
            row_of_layer.push(r);
            name
        };
        let sparsity = row.sparsity.map(|r| if r.is_dense() { WeightFormat::Dense } else { WeightFormat::Sparse(r) });
        layers.push(Layer { name: row.name.clone(), kind: layer_kind, inputs: vec![source], sparsity });
        row_of_layer.push(r);
    }
    let name = Path::new(path).file_stem().map_or_else(|| path.to_string(), |s| s.to_string_lossy().into_owned());
    let model = Model { name, input: input.expect("parse_topology returns at least one row"), classes: None, layers };
    model.check(1).map_err(|ModelError { layer, message }| {
        Error::Input(match layer {
            Some(i) => format!("{path}:{}: layer `{}`: {message}", rows[row_of_layer[i]].line, model.layers[i].name),
            None => format!("{path}: {message}"),
        })
    })?;
    Ok(model)
}
