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
//! - softmax (and its cross-entropy) per row: `mx` = sequential max from -inf, each element replacing it
//!   when greater (so NaNs are skipped and the first of equal zeros stays);
//!   `e_c = exp_spec(x_c - mx)`;
//!   `s` = sequential sum; gradient `(e_c / s - [c = label]) / rows`; row loss
//!   `ln_spec(s) + mx - x_label`; mean loss = sequential sum of row losses / rows.
//!
//! - `relu` keeps signed zeros and turns NaN into +0;
//! - normalizations (batch norm per column, layer norm per row, without affine parameters):
//!   sequential sums in index order; the mean is the sum divided by the length; the variance is
//!   the two-pass biased variance; `rstd = 1 / sqrt(var + 1e-5)` with IEEE square root.
//!
//! **Cycles:** `ceil(work / lanes) + pipeline_latency + 2` (two to start reading: the fields
//! are registered, then the buffers read synchronously, as the RTL does), where work is the
//! element count for element-wise ops, one for the others. Pooling walks its `outputs * p2 *
//! p2` window elements, each cycle the longest prefix of the next `lanes` whose distinct
//! elements fall on distinct banks of the buffer walked (`a`'s; `avgpool_grad`'s destination;
//! the fewer banks of both for `maxpool_grad`, whose cycles also end with a window that they
//! started inside when another window could end after it), so `ceil(outputs p2 p2 / lanes)`
//! cycles where no window's rows meet in a bank ([`satkit_hw::operands::PoolDims::walk_cycles`]). A pooling gradient first writes zeros
//! over its `planes * p0 * p1` outputs (`ceil(planes p0 p1 / lanes)` cycles), then walks the
//! windows. The softmaxes
//! make three passes over each row (max, exponentials and their sum, normalization), each
//! `ceil(p0 / lanes)` cycles, since a pass needs the previous one's result:
//! `3 * rows * ceil(p0 / lanes) + pipeline_latency + 2`, and `softmax_xent` one cycle more
//! for its mean loss; the softmax gradient two (the dot product, then the gradient). The
//! normalizations per row (`p1 = 1`) walk each row `lanes` elements per cycle: `rows *
//! ceil(cols / lanes)` cycles per pass. `norm_stats` makes two (sum, then squared deviations)
//! and writes each row's mean after the first, its rstd after the second. The others take
//! blocks of `lanes` rows, whose statistics are consecutive, so that they are read and written
//! one run a cycle: `norm_apply` two cycles a block (the means' run, then the rstds') before
//! its pass, `norm_grad_stats` two after it (its two sums' runs), `norm_grad_apply` four
//! before it and a cycle per row for its terms. Per column (batch norm) the lanes take `lanes` adjacent
//! columns, each summing its own column in index order, and walk them down one row a cycle,
//! so that a cycle's elements are consecutive; a block of `L'` columns takes `rows` cycles a
//! pass, and its statistics are read and written one run a cycle and computed one column a
//! cycle: `norm_stats` `2 rows + 2 L'` (a cycle per column for its mean after the first pass,
//! and for its rstd after the second), `norm_apply` and `norm_grad_stats` `rows + 2` (the two
//! statistics' runs), `norm_grad_apply` `rows + 4 + L'` (four runs, then a cycle per column
//! for its terms).

use crate::numerics::{exp_spec, ln_spec};
use crate::scratchpad::{is_byte_plane, Scratchpads};
use crate::stats::Cost;
use satkit_hw::isa::{Buffer, VecOp};
use satkit_hw::numerics::{GELU_CUBIC, GELU_SCALE, NORM_EPSILON};
use satkit_hw::operands::{norm_dims, pool_dims, NormDims, PoolDims, PoolWalk, VecGeometry};
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

impl VecInsn {
    /// The op's element counts and passes (errors name invalid parameters).
    fn geometry(&self) -> Result<VecGeometry, String> {
        VecGeometry::of(self.op, self.count, self.p)
    }

    /// Checks the parameters (the machine checks the operands' ranges, `Op::operands`).
    pub fn check(&self) -> Result<(), String> {
        self.geometry().map(|_| ())
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
    let walk_banks = PoolWalk::banks(v.op, arch, v.a.0, v.dst.0);
    let issue_cycles = g.issue_cycles(u64::from(arch.vector.lanes), walk_banks);
    let mut cost =
        Cost { cycles: issue_cycles + u64::from(arch.vector.pipeline_latency) + 2, elements: g.work, ..Cost::default() };
    cost.sram.read(v.a.0, g.elements_in * element_bytes(s, v.a.0));
    cost.sram.read(v.b.0, g.elements_b * element_bytes(s, v.b.0));
    cost.sram.write(v.dst.0, g.elements_out * element_bytes(s, v.dst.0));
    cost
}

/// `max(x, 0)` with the signed zeros kept and NaN to +0 (stated here rather than left to
/// `f32::max`, whose sign of zero the platform chooses).
fn relu(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        0.0
    } else {
        x
    }
}

/// Performs the operation on the buffers. Errors name a label out of range.
pub fn execute(s: &mut Scratchpads, v: &VecInsn) -> Result<(), String> {
    let read = |s: &Scratchpads, (buf, base): (Buffer, u64), i: u64| s.read(buf, (base + i) as usize);
    let n = v.count;
    let mut out: Vec<f32> = Vec::new();
    match v.op {
        VecOp::Copy => out.extend((0..n).map(|i| read(s, v.a, i))),
        VecOp::Add => out.extend((0..n).map(|i| read(s, v.a, i) + read(s, v.b, i))),
        VecOp::Relu => out.extend((0..n).map(|i| relu(read(s, v.a, i)))),
        VecOp::ReluGrad => out.extend((0..n).map(|i| if read(s, v.a, i) > 0.0 { read(s, v.b, i) } else { 0.0 })),
        VecOp::MaxPool | VecOp::AvgPool | VecOp::MaxPoolGrad | VecOp::AvgPoolGrad => {
            let PoolDims { h, w, k, s: st, oh, ow } = pool_dims(v.count, v.p)?;
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
                let mx = logits.iter().fold(f32::NEG_INFINITY, |mx, &x| if x > mx { x } else { mx });
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
        VecOp::Gelu | VecOp::GeluGrad => {
            const C: f32 = GELU_SCALE;
            for i in 0..n {
                let x = read(s, v.a, i);
                let t = C * (x + GELU_CUBIC * x * x * x);
                let tanh = 1.0 - 2.0 / (exp_spec(2.0 * t) + 1.0);
                out.push(if v.op == VecOp::Gelu {
                    0.5 * x * (1.0 + tanh)
                } else {
                    let slope = 0.5 * (1.0 + tanh) + 0.5 * x * (1.0 - tanh * tanh) * C * (1.0 + 3.0 * GELU_CUBIC * x * x);
                    read(s, v.b, i) * slope
                });
            }
        }
        VecOp::Softmax | VecOp::SoftmaxGrad => {
            let cols = v.p[0];
            for row in 0..n {
                let a: Vec<f32> = (0..cols).map(|c| read(s, v.a, row * cols + c)).collect();
                if v.op == VecOp::Softmax {
                    let mx = a.iter().fold(f32::NEG_INFINITY, |mx, &x| if x > mx { x } else { mx });
                    let e: Vec<f32> = a.iter().map(|&x| exp_spec(x - mx)).collect();
                    let sum = e.iter().fold(0f32, |acc, &x| acc + x);
                    out.extend(e.iter().map(|&x| x / sum));
                } else {
                    let dy: Vec<f32> = (0..cols).map(|c| read(s, v.b, row * cols + c)).collect();
                    let dot = a.iter().zip(&dy).fold(0f32, |acc, (&y, &g)| acc + y * g);
                    out.extend(a.iter().zip(&dy).map(|(&y, &g)| y * (g - dot)));
                }
            }
        }
        VecOp::NormStats | VecOp::NormApply | VecOp::NormGradStats | VecOp::NormGradApply => {
            let NormDims { rows, cols, len } = norm_dims(v.op, v.count, v.p)?;
            let per_row = v.p[1] == 1;
            // Element `i` of the normalized vector `j`.
            let at = |j: u64, i: u64| if per_row { j * cols + i } else { i * cols + j };
            let axis = if per_row { cols } else { rows };
            let stat = |k: u64, j: u64| read(s, v.b, k * len + j);
            let mut stats = vec![0f32; 2 * len as usize];
            let mut dx = vec![0f32; (rows * cols) as usize];
            for j in 0..len {
                let x = |i: u64| read(s, v.a, at(j, i));
                match v.op {
                    VecOp::NormStats => {
                        let mean = (0..axis).fold(0f32, |acc, i| acc + x(i)) / axis as f32;
                        let var = (0..axis).fold(0f32, |acc, i| acc + (x(i) - mean) * (x(i) - mean)) / axis as f32;
                        stats[j as usize] = mean;
                        stats[(len + j) as usize] = 1.0 / (var + NORM_EPSILON).sqrt();
                    }
                    VecOp::NormApply => {
                        for i in 0..axis {
                            dx[at(j, i) as usize] = (x(i) - stat(0, j)) * stat(1, j);
                        }
                    }
                    VecOp::NormGradStats => {
                        let xb = |i: u64| read(s, v.b, at(j, i));
                        stats[j as usize] = (0..axis).fold(0f32, |acc, i| acc + x(i));
                        stats[(len + j) as usize] = (0..axis).fold(0f32, |acc, i| acc + x(i) * xb(i));
                    }
                    _ => {
                        let (mean, rstd, sum_dy, sum_dyx) = (stat(0, j), stat(1, j), stat(2, j), stat(3, j));
                        let sum_dyxhat = rstd * (sum_dyx - mean * sum_dy);
                        let n = axis as f32;
                        for i in 0..axis {
                            let xi = read(s, v.dst, at(j, i));
                            let xhat = (xi - mean) * rstd;
                            dx[at(j, i) as usize] = rstd * ((x(i) - sum_dy / n) - xhat * (sum_dyxhat / n));
                        }
                    }
                }
            }
            out = if matches!(v.op, VecOp::NormStats | VecOp::NormGradStats) { stats } else { dx };
        }
    }
    for (i, value) in out.into_iter().enumerate() {
        s.store_value(v.dst.0, v.dst.1 as usize + i, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use satkit_hw::ArchConfig;

    fn run(s: &mut Scratchpads, op: VecOp, count: u64, dst: u64, a: u64, b: u64, p: [u64; 4]) {
        let v = VecInsn { op, count, dst: (Buffer::Master, dst), a: (Buffer::Master, a), b: (Buffer::Master, b), p };
        v.check().unwrap();
        execute(s, &v).unwrap();
    }

    fn put(s: &mut Scratchpads, at: u64, values: &[f32]) {
        for (i, &x) in values.iter().enumerate() {
            s.store_value(Buffer::Master, at as usize + i, x);
        }
    }

    fn get(s: &Scratchpads, at: u64, len: usize) -> Vec<f64> {
        (0..len).map(|i| f64::from(s.read(Buffer::Master, at as usize + i))).collect()
    }

    /// Normalization cycles before the pipeline, worked out by hand on `tiny` (4 lanes): per
    /// row in blocks of 4 rows, per column in blocks of 4 adjacent channels.
    #[test]
    fn normalizations_walk_blocks_of_rows_and_channels() {
        let arch = ArchConfig::tiny();
        assert_eq!(arch.vector.lanes, 4, "the hand-worked counts are tiny's");
        let s = Scratchpads::new(&arch, false);
        let cycles = |op, rows, cols, p1| {
            let v =
                VecInsn { op, count: rows, dst: (Buffer::Acc, 0), a: (Buffer::Acc, 0), b: (Buffer::Acc, 0), p: [cols, p1, 0, 0] };
            cost(&arch, &s, &v).cycles - u64::from(arch.vector.pipeline_latency) - 2
        };
        // 10 rows of 6 channels: blocks of 4 and 2 channels. norm_stats: 2 x 10 rows per block
        // and a cycle per channel twice: 2 x 20 + 2 x 6 = 52; norm_apply and norm_grad_stats
        // 2 x (10 + 2) = 24; norm_grad_apply 2 x (10 + 4) + 6 = 34.
        assert_eq!(cycles(VecOp::NormStats, 10, 6, 0), 52);
        assert_eq!(cycles(VecOp::NormApply, 10, 6, 0), 24);
        assert_eq!(cycles(VecOp::NormGradStats, 10, 6, 0), 24);
        assert_eq!(cycles(VecOp::NormGradApply, 10, 6, 0), 34);
        // Per row, 10 rows of 6 (ceil(6 / 4) = 2 cycles a pass) in blocks of 4, 4 and 2 rows:
        // norm_stats 2 x 10 x 2 = 40; norm_apply and norm_grad_stats 10 x 2 + 3 x 2 = 26;
        // norm_grad_apply 10 x 2 + 3 x 4 + 10 = 42.
        assert_eq!(cycles(VecOp::NormStats, 10, 6, 1), 40);
        assert_eq!(cycles(VecOp::NormApply, 10, 6, 1), 26);
        assert_eq!(cycles(VecOp::NormGradStats, 10, 6, 1), 26);
        assert_eq!(cycles(VecOp::NormGradApply, 10, 6, 1), 42);
    }

    /// The ISA's table of the operands each op reads (which the controller's buffer use and the
    /// RTL's claims follow) agrees with the elements this module reads.
    #[test]
    fn the_isa_lists_the_operands_each_op_reads() {
        for &op in VecOp::ALL {
            let p = match op {
                VecOp::MaxPool | VecOp::AvgPool | VecOp::MaxPoolGrad | VecOp::AvgPoolGrad => [4, 4, 2, 2],
                _ => [3, 0, 0, 0],
            };
            let v = VecInsn { op, count: 2, dst: (Buffer::Acc, 0), a: (Buffer::Acc, 0), b: (Buffer::Acc, 0), p };
            let g = v.geometry().unwrap();
            let operands = op.operands();
            assert_eq!((operands.a, operands.b), (g.elements_in > 0, g.elements_b > 0), "{op}");
        }
    }

    #[test]
    fn batch_norm_forward_and_backward_match_f64() {
        let mut s = Scratchpads::new(&ArchConfig::tiny(), true);
        let (rows, cols) = (6usize, 3usize);
        let x: Vec<f32> = (0..rows * cols).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3).collect();
        let dy: Vec<f32> = (0..rows * cols).map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.1).collect();
        put(&mut s, 0, &x);
        put(&mut s, 100, &dy);
        run(&mut s, VecOp::NormStats, rows as u64, 200, 0, 0, [cols as u64, 0, 0, 0]);
        run(&mut s, VecOp::NormApply, rows as u64, 300, 0, 200, [cols as u64, 0, 0, 0]);
        run(&mut s, VecOp::NormGradStats, rows as u64, 206, 100, 0, [cols as u64, 0, 0, 0]);
        put(&mut s, 400, &x);
        run(&mut s, VecOp::NormGradApply, rows as u64, 400, 100, 200, [cols as u64, 0, 0, 0]);
        let (y, dx) = (get(&s, 300, rows * cols), get(&s, 400, rows * cols));
        for c in 0..cols {
            let col: Vec<f64> = (0..rows).map(|r| f64::from(x[r * cols + c])).collect();
            let g: Vec<f64> = (0..rows).map(|r| f64::from(dy[r * cols + c])).collect();
            let n = rows as f64;
            let mean = col.iter().sum::<f64>() / n;
            let rstd = 1.0 / (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n + 1e-5).sqrt();
            let xhat: Vec<f64> = col.iter().map(|v| (v - mean) * rstd).collect();
            let (sg, sgx) = (g.iter().sum::<f64>(), g.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>());
            for r in 0..rows {
                assert!((y[r * cols + c] - xhat[r]).abs() < 1e-5);
                let want = rstd * (g[r] - sg / n - xhat[r] * sgx / n);
                assert!((dx[r * cols + c] - want).abs() < 1e-5, "dx[{r},{c}] = {} want {want}", dx[r * cols + c]);
            }
        }
    }

    #[test]
    fn softmax_gelu_and_their_gradients_match_f64() {
        let mut s = Scratchpads::new(&ArchConfig::tiny(), true);
        let x = [0.5f32, -1.25, 2.0, 0.0, 3.5, -0.75];
        let dy = [0.1f32, -0.2, 0.3, 0.4, -0.5, 0.6];
        put(&mut s, 0, &x);
        put(&mut s, 10, &dy);
        run(&mut s, VecOp::Softmax, 2, 20, 0, 0, [3, 0, 0, 0]);
        run(&mut s, VecOp::SoftmaxGrad, 2, 30, 20, 10, [3, 0, 0, 0]);
        run(&mut s, VecOp::Gelu, 6, 40, 0, 0, [0; 4]);
        run(&mut s, VecOp::GeluGrad, 6, 50, 0, 10, [0; 4]);
        let (y, dx, g, dg) = (get(&s, 20, 6), get(&s, 30, 6), get(&s, 40, 6), get(&s, 50, 6));
        for row in 0..2 {
            let e: Vec<f64> = (0..3).map(|c| f64::from(x[row * 3 + c]).exp()).collect();
            let sum: f64 = e.iter().sum();
            let p: Vec<f64> = e.iter().map(|v| v / sum).collect();
            let dot: f64 = (0..3).map(|c| p[c] * f64::from(dy[row * 3 + c])).sum();
            for c in 0..3 {
                assert!((y[row * 3 + c] - p[c]).abs() < 1e-6);
                assert!((dx[row * 3 + c] - p[c] * (f64::from(dy[row * 3 + c]) - dot)).abs() < 1e-6);
            }
        }
        let k = (2.0 / std::f64::consts::PI).sqrt();
        for i in 0..6 {
            let v = f64::from(x[i]);
            let t = (k * (v + 0.044715 * v.powi(3))).tanh();
            let slope = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * v * v);
            assert!((g[i] - 0.5 * v * (1.0 + t)).abs() < 1e-5);
            assert!((dg[i] - f64::from(dy[i]) * slope).abs() < 1e-5);
        }
    }
}
