//! The sparse tensor engine: a `rows x cols` systolic array of PEs running one GEMM
//! `out[M x N] (+)= in[M x K] . W[K x N]` per instruction, dense or N:M sparse, OS, WS or IS.
//!
//! **PE.** A PE has `n_max` multipliers. Dense, it covers `n_max` consecutive reduction
//! elements per step; N:M sparse, it covers one whole group of `M` (it receives the group's N
//! kept weights with their in-group indices and the group's M activations, and selects the N
//! matching activations), so a step does `M` dense-equivalent MACs. `S = ceil(K / r)` steps
//! cover the reduction, with `r = n_max` (dense) or `M` (sparse).
//!
//! **Cycles** (exact; `R x C` the array, `L` the accumulator latency, `I` the OS interleave):
//! - WS: weights of `R` steps x `C` output columns stay in the array; `M` input rows stream
//!   through. Folds `ceil(S / R) * ceil(N / C)` (reduction folds inner), each `R` (weight
//!   preload) `+ M'` (inputs) `+ (R - 1) L` (partial sums descending through `R` adders of
//!   latency `L`) `+ C - 1` (skew across columns), where `M'` ([`ArchConfig::ws_stream`]) is
//!   `M` padded for the accumulator hazard (a reduction fold's partial-sum reads wait for the
//!   previous fold's writes; this padding counts as accumulator-hazard stalls) and for the
//!   operand fetches a fold must hold. The last fold runs to its last write-back:
//!   `R + M + R L + L + C` (two cycles to start reading, each row's sum leaving the bottom row
//!   and the de-skew of the columns), so a GEMM takes
//!   `W + (folds - 1) (R + M' + (R - 1) L + C - 1) + R + M + R L + L + C`, as the RTL tensor
//!   unit does (`hw/src/rtl/tensor.rs`), cycle for cycle. The operands are staged, one buffer
//!   run a cycle, the first fold's in `W` cycles before it starts ([`ArchConfig::ws_fill`]):
//!   the weights a column's `R` steps of the fold a cycle (`C` runs), or transposed
//!   (`weight_t`) one reduction element of the fold's `C` columns a cycle (`R m` runs),
//!   the next fold's during a fold; a transposed input (`input_t`) one reduction element's
//!   next `X` rows a cycle ([`ArchConfig::ws_input_chunk`]). An untransposed input row's
//!   steps of a fold are one run, read as the row streams in.
//! - IS: with inputs stationary and the `N` weight columns streaming: folds
//!   `ceil(S / R) * ceil(M / C)`, each `R + N + (R - 1) L + C - 1` (SCALE-Sim's form; the RTL
//!   has no IS yet).
//! - OS: each PE owns `I` outputs of one row, round-robin; folds `ceil(M / R) * ceil(N / (C I))`,
//!   each `S * Q` with `Q = max(I, L)` (a PE may add to one accumulator only every `L` cycles,
//!   so with `I < L` it waits `L - I` cycles per round: the accumulator hazard that interleave
//!   mapping removes) `+ R + C - 2` (skew in over rows and columns), back to back: a fold's
//!   sums leave the array while the next fold runs. Once per GEMM, `+ R + C + L`
//!   ([`os_writeback`]): two cycles to start reading operands (the instruction's fields are
//!   registered, then the buffers read synchronously) and `R + C + L - 2` for the last fold's
//!   sums to leave the array (down the columns, and through the de-skew of the columns and of
//!   the `L` interleave slots) and reach the accumulator buffer. A PE holds `L` accumulators,
//!   so `1 <= I <= L`. This is what the RTL tensor unit does (`hw/src/rtl/tensor.rs`), cycle
//!   for cycle.
//!
//!   The operands reach the rows and columns through staging registers that the buffers fill
//!   one run a cycle (so that banked buffers can serve them): each row's next
//!   `G = ceil(R / L)` steps (`ArchConfig::os_fetch_steps`), row after row, `min(R, M)` cycles
//!   ahead of their first step, and each of the fold's `C I` columns' next `C` steps (its
//!   compressed positions when sparse), column after column, `min(C I, N)` cycles ahead. So
//!   the GEMM starts the longer of the two later ([`os_fill`]). A transposed operand
//!   (`input_t`, `weight_t`) is fetched one reduction element of every row or column a cycle
//!   (a run across them), `m` cycles ahead (`m` = `n_max` dense, `M` sparse), and a step lasts
//!   at least `m` cycles: `Q = max(I, L, m)` (`ArchConfig::os_step_period`; the cycles above
//!   `max(I, L)` count as fill/drain stalls). Folds walk the rows inside each block of
//!   columns, and last at least their weight fetches (`ArchConfig::os_fold_period`; the
//!   stretch counts as fill/drain stalls): with more than `C` steps every fold fetches its
//!   groups again, so a fold whose last group of `C` steps is short stretches to
//!   `(ceil(S / C) - 1) C Q + min(C I, N)` cycles; with at most `C` steps the row folds of a
//!   column block keep its weights, fetched once in their `ceil(M / R)` folds.
//!
//! With `L = I = 1` the per-fold costs are SCALE-Sim v3's (`scalesim/compute/
//! systolic_compute_{os,ws,is}.py`: OS `R + C + T - 2`, WS and IS `2R + C + T - 2`). Partial folds cost as much as full
//! ones (the skew registers span the whole array). Cycles outside the steady state
//! (`M`, `N` or `S*I` per fold) count as fill/drain stalls.
//!
//! **Function.** See [`crate::numerics`]: each output is the sequential FP32 sum of its
//! products in increasing reduction index, independent of dataflow and tiling.
//!
//! **Transposed operands.** `input_t` / `weight_t` make an operand enter the array from its
//! other edge (the input as a stored `K x M` matrix, a dense weight as a stored `K x N`
//! matrix, as the weight-gradient GEMM reads `dY` and `X`). Each PE still receives the same
//! operand stream, so traffic and numerics are those of the untransposed GEMM, and so are the
//! cycles but for the operands' fetches (above).

use crate::scratchpad::Scratchpads;
use crate::stats::{Cost, Stalls};
use rayon::prelude::*;
use satkit_hw::isa::{Buffer, WeightFormat};
use satkit_hw::{ArchConfig, Dataflow};

/// Shape and mode of one GEMM instruction.
#[derive(Debug, Clone, Copy)]
pub struct GemmShape {
    /// Dataflow.
    pub dataflow: Dataflow,
    /// Weight format.
    pub weights: WeightFormat,
    /// Output rows M.
    pub rows: u64,
    /// Output columns N.
    pub cols: u64,
    /// Dense reduction depth K.
    pub depth: u64,
    /// OS interleave factor (>= 1).
    pub interleave: u64,
    /// The input is stored as its `K x M` transpose: element `(m, k)` at `input + k*M + m`
    /// (fetched differently, see the module documentation).
    pub input_t: bool,
    /// The dense weight is stored row-major `K x N`: element `(k, n)` at `weight + k*N + n`.
    pub weight_t: bool,
}

/// Cycle breakdown of one GEMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmTiming {
    /// Total cycles.
    pub cycles: u64,
    /// Folds (array passes).
    pub folds: u64,
    /// Cycles of fill, drain and preload.
    pub fill_drain: u64,
    /// Cycles lost to the accumulator hazard.
    pub accumulator_hazard: u64,
}

/// Exact cycle count of a GEMM on `arch` (see the module documentation).
pub fn gemm_timing(arch: &ArchConfig, g: &GemmShape) -> GemmTiming {
    let (r, c) = (u64::from(arch.array.rows), u64::from(arch.array.cols));
    let l = u64::from(arch.array.accumulator_latency);
    let steps = g.depth.div_ceil(step_elements(arch, g));
    if g.rows == 0 || g.cols == 0 || steps == 0 {
        return GemmTiming { cycles: 0, folds: 0, fill_drain: 0, accumulator_hazard: 0 };
    }
    let streamed_fold = |stream: u64, folds: u64| {
        let fold = arch.ws_fold_overhead() + stream;
        GemmTiming { cycles: folds * fold, folds, fill_drain: folds * (fold - stream), accumulator_hazard: 0 }
    };
    match g.dataflow {
        Dataflow::Ws => {
            let folds = steps.div_ceil(r) * g.cols.div_ceil(c);
            let m = step_elements(arch, g);
            let fill = arch.ws_fill(g.input_t, g.weight_t, m);
            let stream = arch.ws_stream(g.rows, g.input_t, g.weight_t, m);
            let cycles = fill + (folds - 1) * (arch.ws_fold_overhead() + stream) + r + g.rows + r * l + l + c;
            let hazard = (folds - 1) * (g.rows.max(arch.ws_hazard_stream()) - g.rows);
            GemmTiming { cycles, folds, fill_drain: cycles - folds * g.rows - hazard, accumulator_hazard: hazard }
        }
        Dataflow::Is => streamed_fold(g.cols, steps.div_ceil(r) * g.rows.div_ceil(c)),
        Dataflow::Os => {
            let i = g.interleave.max(1);
            let folds = g.rows.div_ceil(r) * g.cols.div_ceil(c * i);
            let steady = steps * i;
            let hazard = steps * (i.max(l) - i);
            let q = arch.os_step_period(i, step_elements(arch, g), g.input_t || g.weight_t);
            let fold = arch.os_fold_period(steps, g.rows, g.cols, q, i, g.weight_t);
            let once = os_writeback(arch) + os_fill(arch, g);
            GemmTiming {
                cycles: folds * fold + once,
                folds,
                fill_drain: folds * (fold - steady - hazard) + once,
                accumulator_hazard: folds * hazard,
            }
        }
    }
}

/// Cycles a WS GEMM of `rows` input rows, streaming `stream` rows a fold
/// ([`ArchConfig::ws_stream`]), spends beyond `folds` times its fold period: its last fold's
/// write-back, less the padding a last fold does not need (see the module documentation).
pub fn ws_drain(arch: &ArchConfig, rows: u64, stream: u64) -> u64 {
    let l = u64::from(arch.array.accumulator_latency);
    2 * l + 1 - (stream - rows)
}

/// Cycles an OS GEMM spends once, after its folds: `R + C + L` (see the module
/// documentation).
pub fn os_writeback(arch: &ArchConfig) -> u64 {
    u64::from(arch.array.rows + arch.array.cols + arch.array.accumulator_latency)
}

/// Cycles an OS GEMM spends once, before its folds, on its first operand fetches: the longer
/// of `min(R, M)` and `min(C I, N)`, or `m` for a transposed operand (see the module
/// documentation).
pub fn os_fill(arch: &ArchConfig, g: &GemmShape) -> u64 {
    arch.os_fill(g.rows, g.cols, g.interleave.max(1), step_elements(arch, g), g.input_t, g.weight_t)
}

/// The reduction elements `m` of one PE step: `n_max` dense, `M` sparse.
fn step_elements(arch: &ArchConfig, g: &GemmShape) -> u64 {
    arch.reduction_per_pe_step(g.weights.ratio())
}

/// Cost of a GEMM: cycles, stalls, MACs and on-chip traffic.
pub fn gemm_cost(arch: &ArchConfig, g: &GemmShape, accumulate: bool) -> Cost {
    let t = gemm_timing(arch, g);
    let (r, c) = (u64::from(arch.array.rows), u64::from(arch.array.cols));
    let op = arch.operand_bytes();
    let stored = g.weights.stored_len(g.depth as usize) as u64;
    let steps = g.depth.div_ceil(step_elements(arch, g));
    let (row_folds_k, out_reads) = (steps.div_ceil(r).max(1), if accumulate { 1 } else { 0 });
    let mut cost = Cost {
        cycles: t.cycles,
        stalls: Stalls { fill_drain: t.fill_drain, accumulator_hazard: t.accumulator_hazard, ..Stalls::default() },
        macs_dense: g.rows * g.cols * g.depth,
        macs_performed: g.rows * g.cols * stored,
        mac_slots: t.cycles * r * c * u64::from(arch.array.n_max),
        ..Cost::default()
    };
    let idx_bytes = if g.weights.ratio().is_some() { 1 } else { 0 };
    let out = g.rows * g.cols * 4;
    match g.dataflow {
        Dataflow::Ws | Dataflow::Is => {
            let (input_passes, weight_passes) = match g.dataflow {
                Dataflow::Ws => (g.cols.div_ceil(c), 1),
                _ => (1, g.rows.div_ceil(c)),
            };
            cost.sram.read(Buffer::Act, g.rows * g.depth * op * input_passes);
            cost.sram.read(Buffer::Wgt, g.cols * stored * op * weight_passes);
            cost.sram.read(Buffer::Idx, g.cols * stored * idx_bytes * weight_passes);
            // Partial sums re-enter from the accumulator buffer on every reduction fold but the
            // first (and on the first too when accumulating).
            cost.sram.read(Buffer::Acc, out * (row_folds_k - 1 + out_reads));
            cost.sram.write(Buffer::Acc, out * row_folds_k);
        }
        Dataflow::Os => {
            let i = g.interleave.max(1);
            cost.sram.read(Buffer::Act, g.rows * g.depth * op * g.cols.div_ceil(c * i));
            cost.sram.read(Buffer::Wgt, g.cols * stored * op * g.rows.div_ceil(r));
            cost.sram.read(Buffer::Idx, g.cols * stored * idx_bytes * g.rows.div_ceil(r));
            cost.sram.read(Buffer::Acc, out * out_reads);
            cost.sram.write(Buffer::Acc, out);
        }
    }
    cost
}

/// Operand addresses of a GEMM.
#[derive(Debug, Clone, Copy)]
pub struct GemmOperands {
    /// First input element in `act`.
    pub input: usize,
    /// First weight entry in `wgt` / `idx`.
    pub weight: usize,
    /// First output in `acc`.
    pub output: usize,
    /// Add to the existing outputs.
    pub accumulate: bool,
}

/// Computes the GEMM on the buffers. Errors name an out-of-group weight index.
pub fn gemm_execute(s: &mut Scratchpads, g: &GemmShape, o: &GemmOperands) -> Result<(), String> {
    let (m, n, k) = (g.rows as usize, g.cols as usize, g.depth as usize);
    let stored = g.weights.stored_len(k);
    let stored_input = &s.values(Buffer::Act)[o.input..o.input + m * k];
    // Gather a transposed input into row-major order; the products and their order are unchanged.
    let gathered: Vec<f32>;
    let input: &[f32] = if g.input_t {
        gathered = (0..m * k).map(|i| stored_input[(i % k) * m + i / k]).collect();
        &gathered
    } else {
        stored_input
    };
    let weights = &s.values(Buffer::Wgt)[o.weight..o.weight + n * stored];
    // Expand the weight tile to dense K x N in reduction order; for N:M, `kept` marks the
    // stored positions, the only products the sequential sum adds (numerics spec).
    let mut dense = vec![0f32; k * n];
    let mut kept: Option<Vec<bool>> = None;
    match g.weights.ratio() {
        None if g.weight_t => dense.copy_from_slice(weights),
        None => {
            for col in 0..n {
                for kk in 0..k {
                    dense[kk * n + col] = weights[col * stored + kk];
                }
            }
        }
        Some(_) if g.weight_t => return Err("weight_t applies to dense weights only".into()),
        Some(ratio) => {
            let (nn, mm) = (ratio.n as usize, ratio.m as usize);
            let idx = &s.bytes(Buffer::Idx)[o.weight..o.weight + n * stored];
            let mask = kept.insert(vec![false; k * n]);
            for col in 0..n {
                let mut last_in_group: Option<usize> = None;
                for j in 0..stored {
                    let (group, i) = (j / nn, usize::from(idx[col * stored + j]));
                    if i >= mm {
                        return Err(format!(
                            "weight entry {} holds in-group index {i}, not below M = {mm}",
                            o.weight + col * stored + j
                        ));
                    }
                    if j % nn != 0 && last_in_group.is_some_and(|p| i <= p) {
                        return Err(format!(
                            "weight entry {} holds in-group index {i}, not above the previous entry's: indices must increase within a group",
                            o.weight + col * stored + j
                        ));
                    }
                    last_in_group = Some(i);
                    dense[(group * mm + i) * n + col] = weights[col * stored + j];
                    mask[(group * mm + i) * n + col] = true;
                }
            }
        }
    }
    let mut out: Vec<f32> =
        if o.accumulate { s.values(Buffer::Acc)[o.output..o.output + m * n].to_vec() } else { vec![0.0; m * n] };
    out.par_chunks_mut(n.max(1)).enumerate().for_each(|(row, acc)| {
        let a = &input[row * k..(row + 1) * k];
        for (kk, &x) in a.iter().enumerate() {
            let w = &dense[kk * n..(kk + 1) * n];
            // One rounded FP32 addition per product, in increasing k (the product is exact).
            match &kept {
                None => {
                    for (acc_j, &w_j) in acc.iter_mut().zip(w) {
                        *acc_j += x * w_j;
                    }
                }
                Some(mask) => {
                    for ((acc_j, &w_j), &keep) in acc.iter_mut().zip(w).zip(&mask[kk * n..(kk + 1) * n]) {
                        if keep {
                            *acc_j += x * w_j;
                        }
                    }
                }
            }
        }
    });
    s.values_mut(Buffer::Acc)[o.output..o.output + m * n].copy_from_slice(&out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(dataflow: Dataflow, rows: u64, cols: u64, depth: u64) -> GemmShape {
        GemmShape { dataflow, weights: WeightFormat::Dense, rows, cols, depth, interleave: 1, input_t: false, weight_t: false }
    }

    #[test]
    fn ws_matches_scalesim_per_fold_cost() {
        // PEERS.md: 256^3 on 32x32 WS is 64 folds of 2R + C + M - 2 = 350 cycles (L = 1); the
        // last fold's write-back adds 2 L + 1, and the first fold's weight fetches C = 32.
        let arch = ArchConfig::systolic();
        assert_eq!(arch.array.accumulator_latency, 1);
        let t = gemm_timing(&arch, &shape(Dataflow::Ws, 256, 256, 256));
        assert_eq!((t.folds, t.cycles), (64, 64 * 350 + 3 + 32));
        assert_eq!(arch.ws_fill(false, false, 2), 32);
        assert_eq!(ws_drain(&arch, 256, arch.ws_stream(256, false, false, 2)), 3);
    }

    #[test]
    fn os_folds_hold_their_weight_fetches() {
        // tiny with an accumulator latency of 4 and interleave 4: Q = 4, and a group of C = 4
        // steps fetches C I = 16 weight columns, one a cycle, before it. The skew is R + C - 2 = 6
        // cycles and the write-back R + C + L = 12.
        let mut arch = ArchConfig::tiny();
        arch.array.accumulator_latency = 4;
        let os = |rows, cols, depth| GemmShape { interleave: 4, ..shape(Dataflow::Os, rows, cols, depth) };
        // One step (depth 2), one row fold: the fold would take 4 + 6 = 10 cycles, but its 16
        // columns take 16 fetches; the fill is the longer of min(R, 1) = 1 row and 16 columns.
        assert_eq!(arch.os_fold_period(1, 1, 16, 4, 4, false), 16);
        assert_eq!(gemm_timing(&arch, &os(1, 16, 2)).cycles, 16 + 16 + 12);
        // Six columns: 6 fetches, within the 10 cycles; the fill is 6.
        assert_eq!(gemm_timing(&arch, &os(1, 6, 2)).cycles, 6 + 10 + 12);
        // Three row folds keep the column block's weights, fetched once in their 3 x 10 cycles.
        assert_eq!(arch.os_fold_period(1, 12, 16, 4, 4, false), 10);
        assert_eq!(gemm_timing(&arch, &os(12, 16, 2)).cycles, 16 + 3 * 10 + 12);
        // Five steps (depth 10): two groups, fetched again by each of the 2 row folds. The
        // second group (1 step) starts 16 cycles into the fold and fetches its 16 columns
        // before, so the next fold's can start only at 16 + 16 = 32 > 5 Q + 6 = 26.
        assert_eq!(arch.os_fold_period(5, 8, 16, 4, 4, false), 32);
        assert_eq!(gemm_timing(&arch, &os(8, 16, 10)).cycles, 16 + 2 * 32 + 12);
        // Eight steps: two full groups, 32 + 6 = 38 cycles, no stretch.
        assert_eq!(arch.os_fold_period(8, 8, 16, 4, 4, false), 38);
        // A transposed weight's fetches (m = 2 a step) never stretch a fold.
        assert_eq!(arch.os_fold_period(1, 1, 16, 4, 4, true), 10);
    }

    #[test]
    fn ws_folds_hold_their_operand_fetches() {
        // tiny with 2 columns and 8 multipliers per PE: a fold's overhead is
        // R + (R - 1) L + C - 1 = 4 + 6 + 1 = 11 cycles. A dense 3 x 3 x 40 GEMM has 5 steps of 8:
        // 2 reduction x 2 column folds; its last fold takes R + M + R L + L + C = 19 cycles.
        let mut arch = ArchConfig::tiny();
        arch.array.cols = 2;
        arch.array.n_max = 8;
        assert_eq!(arch.ws_fold_overhead(), 11);
        let cycles = |input_t, weight_t| gemm_timing(&arch, &GemmShape { input_t, weight_t, ..shape(Dataflow::Ws, 3, 3, 40) });
        // Plain: the weights' C = 2 fetches before the first fold, 3 rows a fold.
        assert_eq!(cycles(false, false).cycles, 2 + 3 * (11 + 3) + 19);
        // Transposed weights: R m = 32 fetches a fold, so a fold lasts 32 cycles (21 rows).
        assert_eq!(arch.ws_stream(3, false, true, 8), 21);
        assert_eq!(cycles(false, true).cycles, 32 + 3 * 32 + 19);
        // A transposed input: windows of X = Q = 32 rows, the first of its Q = 32 cycles
        // starting Q - R = 28 cycles before the fold.
        assert_eq!((arch.ws_input_chunk(8), arch.ws_fill(true, false, 8)), (32, 28));
        assert_eq!(cycles(true, false).cycles, 28 + 3 * 32 + 19);
        assert_eq!(cycles(true, true).cycles, 32 + 3 * 32 + 19);
        // None of this padding is the accumulator hazard's.
        assert_eq!(cycles(true, true).accumulator_hazard, 0);
        // With L - 1 > m the windows grow by (R - 1) (L - 1 - m) rows: vcu1525's 32 x 32, L = 4,
        // m = 2: X = 64 + 31.
        assert_eq!(ArchConfig::vcu1525().ws_input_chunk(2), 95);
    }

    #[test]
    fn one_tile_by_hand() {
        // tiny: 4x4, n_max 2, L = 2. Dense WS, M=10, N=4, K=8: S = 4 steps = one fold, which
        // runs to its write-back after the weights' first fetches, a column a cycle:
        // 4 + preload 4 + inputs 10 + descent 4*2 + L + C = 32 cycles, 22 of fill/drain. Two
        // reduction folds (K = 16) add a fold period of 4 + 10 + (4-1)*2 + 4 - 1 = 23.
        let arch = ArchConfig::tiny();
        let t = gemm_timing(&arch, &shape(Dataflow::Ws, 10, 4, 8));
        assert_eq!(t, GemmTiming { cycles: 32, folds: 1, fill_drain: 22, accumulator_hazard: 0 });
        let t = gemm_timing(&arch, &shape(Dataflow::Ws, 10, 4, 16));
        assert_eq!(t, GemmTiming { cycles: 23 + 32, folds: 2, fill_drain: 23 + 32 - 20, accumulator_hazard: 0 });
        // OS without interleave: S = 4 steps x max(1, 2) = 8, fill 4 + 4 - 2 = 6, and once
        // per GEMM the first fetches, one per row (4) and one per column (4), and the
        // write-back 4 + 4 + 2 = 10.
        let t = gemm_timing(&arch, &shape(Dataflow::Os, 4, 4, 8));
        assert_eq!(t, GemmTiming { cycles: 28, folds: 1, fill_drain: 20, accumulator_hazard: 4 });
        // Interleave 2 hides the hazard and covers 8 output columns in one fold, whose first
        // fetches take 8 cycles.
        let t = gemm_timing(&arch, &GemmShape { interleave: 2, ..shape(Dataflow::Os, 4, 8, 8) });
        assert_eq!(t, GemmTiming { cycles: 32, folds: 1, fill_drain: 24, accumulator_hazard: 0 });
        // Two folds share the first fetches and one write-back.
        let t = gemm_timing(&arch, &shape(Dataflow::Os, 8, 4, 8));
        assert_eq!(t, GemmTiming { cycles: 2 * 14 + 14, folds: 2, fill_drain: 2 * 6 + 14, accumulator_hazard: 8 });
        // A transposed input and weight (the weight-gradient GEMM's) are fetched one reduction
        // element a cycle: their first step's m = n_max = 2 elements ahead, and with L = 1 a
        // step lasts m = 2 cycles instead of 1: 4 x 2 + 6 + 2 + (4 + 4 + 1) = 25 cycles, where
        // the untransposed operands take 4 + 6 + 4 + 9 = 23.
        let mut l1 = ArchConfig::tiny();
        l1.array.accumulator_latency = 1;
        let t = gemm_timing(&l1, &GemmShape { input_t: true, weight_t: true, ..shape(Dataflow::Os, 4, 4, 8) });
        assert_eq!(t, GemmTiming { cycles: 25, folds: 1, fill_drain: 21, accumulator_hazard: 0 });
        let t = gemm_timing(&l1, &shape(Dataflow::Os, 4, 4, 8));
        assert_eq!(t, GemmTiming { cycles: 23, folds: 1, fill_drain: 19, accumulator_hazard: 0 });
    }

    #[test]
    fn sparse_2_8_quarters_the_steps() {
        let arch = ArchConfig::vcu1525();
        let dense = gemm_timing(&arch, &shape(Dataflow::Ws, 4096, 512, 4096));
        let sparse = gemm_timing(
            &arch,
            &GemmShape { weights: WeightFormat::Sparse("2:8".parse().unwrap()), ..shape(Dataflow::Ws, 4096, 512, 4096) },
        );
        assert_eq!(dense.folds, 4 * sparse.folds);
    }

    #[test]
    fn transposed_operands_give_the_same_bits_and_cycles() {
        use crate::{Machine, Mode};
        use satkit_hw::isa::{Instruction, Op, Program};
        let arch = ArchConfig::tiny();
        let (m, n, k) = (3usize, 5usize, 7usize);
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 11) as f32 - 5.0) / 8.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 13) as f32 - 6.0) / 4.0).collect();
        let xt: Vec<f32> = (0..m * k).map(|i| x[(i % m) * k + i / m]).collect();
        let wt: Vec<f32> = (0..n * k).map(|i| w[(i % n) * k + i / n]).collect();
        let gemm = |input_t, weight_t, input, weight, output| Op::Gemm {
            dataflow: Dataflow::Ws,
            weights: WeightFormat::Dense,
            accumulate: false,
            interleave: 1,
            rows: m as u32,
            cols: n as u32,
            depth: k as u32,
            input,
            weight,
            output,
            input_t,
            weight_t,
        };
        let mut mach = Machine::new(&arch, Mode::Functional);
        mach.write_buffer(Buffer::Act, 0, &x).unwrap();
        mach.write_buffer(Buffer::Act, 100, &xt).unwrap();
        mach.write_buffer(Buffer::Wgt, 0, &w).unwrap();
        mach.write_buffer(Buffer::Wgt, 100, &wt).unwrap();
        let plain = mach.run(&Program { insns: vec![Instruction::new(gemm(false, false, 0, 0, 0))] }).unwrap();
        let flipped = mach.run(&Program { insns: vec![Instruction::new(gemm(true, true, 100, 100, 50))] }).unwrap();
        let (a, b) = (mach.read_buffer(Buffer::Acc, 0, m * n).unwrap(), mach.read_buffer(Buffer::Acc, 50, m * n).unwrap());
        assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        // Both are staged before the first fold: the plain weights a column a cycle (C = 4),
        // the transposed ones a reduction element a cycle (R n_max = 8).
        assert_eq!((arch.ws_fill(false, false, 2), arch.ws_fill(true, true, 2)), (4, 8));
        assert_eq!(plain.total_cycles + 4, flipped.total_cycles);
        let mut sparse = gemm(false, true, 0, 0, 0);
        if let Op::Gemm { weights, depth, .. } = &mut sparse {
            *weights = WeightFormat::Sparse("2:4".parse().unwrap());
            *depth = 8;
        }
        let e = mach.run(&Program { insns: vec![Instruction::new(sparse)] }).unwrap_err().to_string();
        assert!(e.contains("weight_t"), "{e}");
    }
}
