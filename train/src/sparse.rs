//! N:M sparse training methods (SAT.md section 2) applied to one weight `W` of shape
//! `C_out x K` (row-major; for a convolution `K = kh*kw*C_in` in the order `(kh, kw, c_in)`,
//! the hardware's order, so an FF group of M consecutive `K` elements is M input channels at
//! one kernel position; see [`crate::layers::conv`]).
//!
//! | method | FF operand (`Y = W_ff X`) | BP operand (`dX = W_bp^T dY`) | WU |
//! |---|---|---|---|
//! | `dense` | `W` | `W` | dense `dW` |
//! | `srste` | `W * mask_ff` (groups along `K`) | `W` (dense) | dense `dW` + `lambda (1 - mask_ff) W` |
//! | `bdwp` | `W * mask_ff` (groups along `K`) | `W * mask_bp` (groups along `C_out`) | dense `dW` + `lambda (1 - mask_ff) W` |
//!
//! Masks come from the one rule in [`satkit_hw::nm`] and are recomputed from the FP32 master
//! weights after every update ([`NmWeight::refresh`]). With `bp_mask_source = forward_masked`
//! the BP groups are ranked on `W * mask_ff`, and the stored `mask_bp` is that selection
//! intersected with `mask_ff`, so `W_bp = W * mask_bp` holds in both modes (a column group of
//! `W_ff` with fewer than N nonzeros then keeps fewer than N).

use crate::error::{Error, Result};
use crate::optim::{Param, Sgd};
use rayon::prelude::*;
use satkit_hw::nm::{mask_along_cols, mask_along_rows, NmRatio};
use serde::{Deserialize, Serialize};

/// The training-method vocabulary is [`satkit_hw::nm`]'s, shared with the compiler and the
/// simulator (`FromStr`/`Display`/serde in snake_case; a bad name parses to
/// [`satkit_hw::Error::UnknownName`], which [`Error::Hw`] carries). Re-exported here so that
/// `satkit_train::Method` and `satkit_train::BpMaskSource` keep working.
pub use satkit_hw::nm::{BpMaskSource, Method};

/// How one weight layer is trained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerSparsity {
    /// The method; `Dense` ignores the other fields.
    pub method: Method,
    /// The N:M ratio of the sparse operands.
    pub ratio: NmRatio,
    /// SR-STE decay strength `lambda` on pruned weights.
    pub lambda: f32,
    /// BDWP's BP-mask source.
    pub bp_mask_source: BpMaskSource,
}

impl LayerSparsity {
    /// A dense layer.
    pub fn dense() -> Self {
        Self { method: Method::Dense, ratio: NmRatio { n: 1, m: 1 }, lambda: 0.0, bp_mask_source: BpMaskSource::Dense }
    }

    /// True when neither operand is pruned.
    pub fn is_dense(&self) -> bool {
        self.method == Method::Dense || self.ratio.is_dense()
    }
}

/// A `C_out x K` weight with its N:M masks and the pruned operands derived from them.
#[derive(Debug, Clone)]
pub struct NmWeight {
    /// `C_out`, the rows.
    pub c_out: usize,
    /// `K`, the columns.
    pub k: usize,
    /// The FP32 master weights and their optimizer state.
    pub param: Param,
    sparsity: LayerSparsity,
    mask_ff: Option<Vec<u8>>,
    mask_bp: Option<Vec<u8>>,
    w_ff: Vec<f32>,
    w_bp: Vec<f32>,
}

impl NmWeight {
    /// Wraps `values` (`c_out * k` of them) and computes the first masks. `layer` and `model`
    /// name the layer in errors: a sparse layer whose `K` (FF) or, for BDWP, `C_out` (BP) is
    /// not a multiple of `M` is refused.
    pub fn new(model: &str, layer: &str, c_out: usize, k: usize, values: Vec<f32>, sparsity: LayerSparsity) -> Result<Self> {
        if values.len() != c_out * k {
            return Err(Error::Shape {
                layer: layer.to_string(),
                got: vec![values.len()],
                expected: format!("{c_out} x {k} = {} weights", c_out * k),
            });
        }
        check_groupable(model, layer, c_out, k, &sparsity)?;
        let mut w = Self {
            c_out,
            k,
            param: Param::new(values, true),
            sparsity,
            mask_ff: None,
            mask_bp: None,
            w_ff: Vec::new(),
            w_bp: Vec::new(),
        };
        w.refresh();
        Ok(w)
    }

    /// The layer's method and ratio.
    pub fn sparsity(&self) -> &LayerSparsity {
        &self.sparsity
    }

    /// Recomputes `mask_ff`, `mask_bp` and the pruned operands from the master weights.
    pub fn refresh(&mut self) {
        let s = self.sparsity;
        let w = &self.param.value;
        if s.is_dense() {
            self.mask_ff = None;
            self.mask_bp = None;
            return;
        }
        let ff = masks_parallel(w, self.k, 1, s.ratio, mask_along_rows);
        self.w_ff = apply(w, &ff);
        let m = s.ratio.m as usize;
        self.mask_bp = match s.method {
            Method::Bdwp => Some(match s.bp_mask_source {
                BpMaskSource::Dense => masks_parallel(w, self.k, m, s.ratio, mask_along_cols),
                BpMaskSource::ForwardMasked => masks_parallel(&self.w_ff, self.k, m, s.ratio, mask_along_cols)
                    .iter()
                    .zip(&ff)
                    .map(|(&a, &b)| a & b)
                    .collect(),
            }),
            Method::Srste | Method::Dense => None,
        };
        if let Some(bp) = &self.mask_bp {
            self.w_bp = apply(w, bp);
        }
        self.mask_ff = Some(ff);
    }

    /// The forward operand `W_ff` (`W` when the layer is dense).
    pub fn forward_operand(&self) -> &[f32] {
        if self.mask_ff.is_some() {
            &self.w_ff
        } else {
            &self.param.value
        }
    }

    /// The backward-data operand `W_bp` (`W` for dense and SR-STE layers).
    pub fn backward_operand(&self) -> &[f32] {
        if self.mask_bp.is_some() {
            &self.w_bp
        } else {
            &self.param.value
        }
    }

    /// The FF mask (groups along `K`), `None` for a dense layer.
    pub fn mask_ff(&self) -> Option<&[u8]> {
        self.mask_ff.as_deref()
    }

    /// The BP mask (groups along `C_out`), `Some` only for BDWP layers.
    pub fn mask_bp(&self) -> Option<&[u8]> {
        self.mask_bp.as_deref()
    }

    /// Adds the SR-STE term `lambda * (1 - mask_ff) * W` to the gradient, applies the SGD
    /// step and recomputes the masks from the updated master weights.
    pub fn update(&mut self, sgd: &Sgd, lr: f32) {
        if let Some(ff) = &self.mask_ff {
            let lambda = self.sparsity.lambda;
            for ((g, &w), &m) in self.param.grad.iter_mut().zip(&self.param.value).zip(ff) {
                if m == 0 {
                    *g += lambda * w;
                }
            }
        }
        sgd.update(&mut self.param, lr);
        self.refresh();
    }
}

/// Rows per parallel work item of a mask computation (rounded up to whole groups).
const MASK_ROWS_PER_TASK: usize = 16;

/// Applies `rule` (one of the `satkit_hw::nm` mask functions) to independent blocks of whole
/// rows in parallel: blocks of `unit` rows (1 for groups along rows, `M` for groups along
/// columns) never split a group, so the result equals `rule` on the whole matrix.
fn masks_parallel(
    w: &[f32],
    cols: usize,
    unit: usize,
    ratio: NmRatio,
    rule: fn(&[f32], usize, usize, NmRatio) -> Vec<u8>,
) -> Vec<u8> {
    let rows_per_task = MASK_ROWS_PER_TASK.div_ceil(unit) * unit;
    let parts: Vec<Vec<u8>> =
        w.par_chunks(rows_per_task * cols).map(|block| rule(block, block.len() / cols, cols, ratio)).collect();
    parts.concat()
}

fn apply(w: &[f32], mask: &[u8]) -> Vec<f32> {
    w.iter().zip(mask).map(|(&v, &m)| if m == 1 { v } else { 0.0 }).collect()
}

/// Checks that a sparse layer's grouped dimensions split into whole groups of `M`.
pub fn check_groupable(model: &str, layer: &str, c_out: usize, k: usize, s: &LayerSparsity) -> Result<()> {
    if s.is_dense() {
        return Ok(());
    }
    let err = |dim, len, phase| Error::NotGroupable {
        model: model.to_string(),
        layer: layer.to_string(),
        dim,
        len,
        m: s.ratio.m,
        phase,
    };
    if !s.ratio.fits(k) {
        return Err(err("K", k, "FF"));
    }
    if s.method == Method::Bdwp && !s.ratio.fits(c_out) {
        return Err(err("C_out", c_out, "BP"));
    }
    Ok(())
}
