//! The vector unit: element-wise ops, pooling and softmax cross-entropy in FP32.
//!
//! Operands are read from any buffer and converted to FP32; results are written with one
//! rounding to the destination's type. Semantics per [`VecOp`] (see its documentation) with
//! these orders, which the RTL follows:
//! - pooling planes are `p0 x p1`, window `p2`, stride `p3`, output `((p0-p2)/p3+1) x
//!   ((p1-p2)/p3+1)`; windows are scanned row-major; max pool keeps the first maximum;
//!   average pool sums sequentially then divides by `p2*p2`;
//! - pooling gradients accumulate into an FP32 copy of each input plane, starting from zero,
//!   visiting outputs row-major (max: to the first maximum; average: `dy / (p2*p2)` to every
//!   window element), then write the plane once;
//! - softmax cross-entropy per row: `mx` = sequential max; `e_c = exp_spec(x_c - mx)`;
//!   `s` = sequential sum; gradient `(e_c / s - [c = label]) / rows`; row loss
//!   `ln_spec(s) + mx - x_label`; mean loss = sequential sum of row losses / rows.
//!
//! **Cycles:** `ceil(work / lanes) + pipeline_latency`, where work is the element count for
//! element-wise ops, `outputs * p2 * p2` for pooling and its gradient, and `3 * rows * p0` for
//! softmax cross-entropy (max, exponentials, normalization).

use crate::numerics::{exp_spec, ln_spec};
use crate::scratchpad::{is_byte_plane, Scratchpads};
use crate::stats::Cost;
use satkit_hw::isa::{Buffer, VecOp};
use satkit_hw::ArchConfig;

/// A vector instruction's operands.
#[derive(Debug, Clone, Copy)]
pub struct VecInsn {
    /// Operation.
    pub op: VecOp,
    /// Elements, rows or planes.
    pub count: u64,
    /// Destination.
    pub dst: (Buffer, u64),
    /// First operand.
    pub a: (Buffer, u64),
    /// Second operand.
    pub b: (Buffer, u64),
    /// Parameters p0..p3.
    pub p: [u64; 4],
}

struct Geometry {
    elements_in: u64,
    elements_b: u64,
    elements_out: u64,
    work: u64,
}

impl VecInsn {
    fn pool_dims(&self) -> Result<(u64, u64, u64, u64, u64, u64), String> {
        let [h, w, k, s] = self.p;
        if k == 0 || s == 0 {
            return Err(format!("pool window p2 = {k} and stride p3 = {s} must be positive"));
        }
        if k > h || k > w {
            return Err(format!("pool window p2 = {k} exceeds the plane {h} x {w}"));
        }
        let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
        // Every count derived from the geometry must fit in 64 bits.
        let work = [self.count, h, w, k, k].iter().try_fold(1u64, |acc, &x| acc.checked_mul(x.max(1)));
        if work.and_then(|w| w.checked_mul(oh * ow)).is_none() {
            return Err(format!("{} planes of {h} x {w} with window {k} describe more work than the unit can count", self.count));
        }
        Ok((h, w, k, s, oh, ow))
    }

    fn geometry(&self) -> Result<Geometry, String> {
        let n = self.count;
        Ok(match self.op {
            VecOp::Copy | VecOp::Relu => Geometry { elements_in: n, elements_b: 0, elements_out: n, work: n },
            VecOp::Add | VecOp::ReluGrad => Geometry { elements_in: n, elements_b: n, elements_out: n, work: n },
            VecOp::MaxPool | VecOp::AvgPool => {
                let (h, w, k, _, oh, ow) = self.pool_dims()?;
                Geometry { elements_in: n * h * w, elements_b: 0, elements_out: n * oh * ow, work: n * oh * ow * k * k }
            }
            VecOp::MaxPoolGrad => {
                let (h, w, k, _, oh, ow) = self.pool_dims()?;
                Geometry { elements_in: n * h * w, elements_b: n * oh * ow, elements_out: n * h * w, work: n * oh * ow * k * k }
            }
            VecOp::AvgPoolGrad => {
                let (h, w, k, _, oh, ow) = self.pool_dims()?;
                Geometry { elements_in: 0, elements_b: n * oh * ow, elements_out: n * h * w, work: n * oh * ow * k * k }
            }
            VecOp::SoftmaxXent => {
                let classes = self.p[0];
                if classes == 0 {
                    return Err("softmax_xent needs p0 (classes) >= 1".into());
                }
                Geometry { elements_in: n * classes, elements_b: n, elements_out: n * classes + 1, work: 3 * n * classes }
            }
        })
    }

    /// Checks parameters and address ranges.
    pub fn check(&self, s: &Scratchpads) -> Result<(), String> {
        let g = self.geometry()?;
        s.check(self.a.0, self.a.1, g.elements_in)?;
        s.check(self.b.0, self.b.1, g.elements_b)?;
        s.check(self.dst.0, self.dst.1, g.elements_out)?;
        Ok(())
    }
}

fn element_bytes(s: &Scratchpads, b: Buffer) -> u64 {
    if is_byte_plane(b) {
        1
    } else {
        s.value_type(b).bytes()
    }
}

/// Cost of a vector instruction (call after [`VecInsn::check`]).
pub fn cost(arch: &ArchConfig, s: &Scratchpads, v: &VecInsn) -> Cost {
    let g = v.geometry().expect("checked before costing");
    let mut cost = Cost {
        cycles: g.work.div_ceil(u64::from(arch.vector.lanes)) + u64::from(arch.vector.pipeline_latency),
        elements: g.work,
        ..Cost::default()
    };
    cost.sram.read(v.a.0, g.elements_in * element_bytes(s, v.a.0));
    cost.sram.read(v.b.0, g.elements_b * element_bytes(s, v.b.0));
    cost.sram.write(v.dst.0, g.elements_out * element_bytes(s, v.dst.0));
    cost
}

/// Performs the operation on the buffers. Errors name a label out of range.
pub fn execute(s: &mut Scratchpads, v: &VecInsn) -> Result<(), String> {
    let read = |s: &Scratchpads, (buf, base): (Buffer, u64), i: u64| s.read(buf, (base + i) as usize);
    let n = v.count;
    let mut out: Vec<f32> = Vec::new();
    match v.op {
        VecOp::Copy => out.extend((0..n).map(|i| read(s, v.a, i))),
        VecOp::Add => out.extend((0..n).map(|i| read(s, v.a, i) + read(s, v.b, i))),
        VecOp::Relu => out.extend((0..n).map(|i| read(s, v.a, i).max(0.0))),
        VecOp::ReluGrad => out.extend((0..n).map(|i| if read(s, v.a, i) > 0.0 { read(s, v.b, i) } else { 0.0 })),
        VecOp::MaxPool | VecOp::AvgPool | VecOp::MaxPoolGrad | VecOp::AvgPoolGrad => {
            let (h, w, k, st, oh, ow) = v.pool_dims()?;
            for plane in 0..n {
                let x = |r: u64, c: u64| read(s, v.a, plane * h * w + r * w + c);
                let mut grad_plane = vec![0f32; (h * w) as usize];
                for orow in 0..oh {
                    for ocol in 0..ow {
                        let window = (0..k).flat_map(|dr| (0..k).map(move |dc| (orow * st + dr, ocol * st + dc)));
                        match v.op {
                            VecOp::MaxPool | VecOp::MaxPoolGrad => {
                                let (r0, c0) = (orow * st, ocol * st);
                                let mut best = (x(r0, c0), r0, c0);
                                for (r, c) in window {
                                    let val = x(r, c);
                                    if val > best.0 {
                                        best = (val, r, c);
                                    }
                                }
                                if v.op == VecOp::MaxPool {
                                    out.push(best.0);
                                } else {
                                    grad_plane[(best.1 * w + best.2) as usize] +=
                                        read(s, v.b, plane * oh * ow + orow * ow + ocol);
                                }
                            }
                            VecOp::AvgPool => {
                                let mut sum = 0f32;
                                for (r, c) in window {
                                    sum += x(r, c);
                                }
                                out.push(sum / (k * k) as f32);
                            }
                            _ => {
                                let share = read(s, v.b, plane * oh * ow + orow * ow + ocol) / (k * k) as f32;
                                for (r, c) in window {
                                    grad_plane[(r * w + c) as usize] += share;
                                }
                            }
                        }
                    }
                }
                if matches!(v.op, VecOp::MaxPoolGrad | VecOp::AvgPoolGrad) {
                    out.extend(grad_plane);
                }
            }
        }
        VecOp::SoftmaxXent => {
            let classes = v.p[0];
            let mut loss = 0f32;
            for row in 0..n {
                let logits: Vec<f32> = (0..classes).map(|c| read(s, v.a, row * classes + c)).collect();
                let label = read(s, v.b, row);
                if !(label >= 0.0 && label < classes as f32 && label.fract() == 0.0) {
                    return Err(format!("row {row}: label {label} is not a class index below {classes}"));
                }
                let label = label as usize;
                let mx = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = logits.iter().map(|&x| exp_spec(x - mx)).collect();
                let sum = e.iter().fold(0f32, |acc, &x| acc + x);
                for (c, &ec) in e.iter().enumerate() {
                    let onehot = if c == label { 1.0 } else { 0.0 };
                    out.push((ec / sum - onehot) / n as f32);
                }
                loss += ln_spec(sum) + mx - logits[label];
            }
            out.push(loss / n as f32);
        }
    }
    for (i, value) in out.into_iter().enumerate() {
        s.store_value(v.dst.0, v.dst.1 as usize + i, value);
    }
    Ok(())
}
