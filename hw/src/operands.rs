//! What each instruction reads and writes: its operands' element ranges (which the simulator
//! checks against the buffers), the vector ops' geometry (element counts and lane passes, which
//! the simulator's cost and the RTL's vector unit follow), and the buffer use the controller
//! accounts for when `buffers.readers` or `buffers.writers` limit it.
//!
//! **Buffer use.** Each buffer is `buffers.partitions` equal memories (address ranges). An
//! operand a unit reads counts as one reader of every partition its element range overlaps,
//! and a buffer an instruction writes takes the writer of every partition its written range
//! overlaps (an empty range counts at its first element). An operand read once and kept in
//! registers ([`Operand::kept`]: `update`'s four hyperparameters, beside its weight and momentum
//! in `master`) takes a reader only of a partition that none of the instruction's other read
//! operands of that buffer covers. A GEMM reads `acc` when it accumulates or when
//! its dataflow is not OS (WS adds each reduction fold to the last one's partial sums), and
//! `idx` when its weights are sparse; `norm_grad_apply` reads `x` from its destination.

use crate::arch::{ArchConfig, Dataflow};
use crate::isa::{Buffer, Op, VecOp};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

/// The most partitions a buffer may have (`buffers.partitions`).
pub const MAX_PARTITIONS: usize = 16;

/// Buffers, in [`Buffer::ALL`] order.
pub const BUFFERS: usize = Buffer::ALL.len();

/// Which of a `vec` instruction's operands its op reads: `a`, `b`, and the destination
/// (`norm_grad_apply` reads `x` there before writing `dx` over it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VecOperands {
    /// Reads `a`.
    pub a: bool,
    /// Reads `b`.
    pub b: bool,
    /// Reads the destination.
    pub dst: bool,
}

impl VecOp {
    /// The operands this op reads (every op writes its destination).
    pub fn operands(self) -> VecOperands {
        use VecOp::*;
        VecOperands {
            a: !matches!(self, AvgPoolGrad),
            b: matches!(
                self,
                Add | ReluGrad
                    | GeluGrad
                    | MaxPoolGrad
                    | AvgPoolGrad
                    | SoftmaxXent
                    | SoftmaxGrad
                    | NormApply
                    | NormGradStats
                    | NormGradApply
            ),
            dst: matches!(self, NormGradApply),
        }
    }
}

/// A pooling op's planes: `h x w`, window `k`, stride `s`, output `oh x ow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolDims {
    /// Plane height (`p0`).
    pub h: u64,
    /// Plane width (`p1`).
    pub w: u64,
    /// Window (`p2`).
    pub k: u64,
    /// Stride (`p3`).
    pub s: u64,
    /// Output rows.
    pub oh: u64,
    /// Output columns.
    pub ow: u64,
}

impl PoolDims {
    /// The cycles in which `lanes` lanes walk the window elements of `planes` planes from a
    /// buffer of `banks` banks (element `e` in bank `e mod banks`), in the simulator's order
    /// (planes, output rows, output columns, then each window row-major). Each cycle takes the
    /// longest prefix of the next `lanes` elements whose distinct elements fall on distinct
    /// banks (one element read or written twice in a cycle is one access), so that a banked
    /// buffer serves every cycle. The RTL's walker does the same (`hw/src/rtl/sequencers.rs`).
    /// With windows whose rows are `w` apart, a multiple of `banks` or near one, a cycle ends
    /// where a row of a window would meet the one above it.
    ///
    /// With `argmax_writes` (`maxpool_grad`, which writes each window's gradient at the
    /// window's maximum when the window ends), a cycle that starts inside a window also ends
    /// with that window when another whole window could still end after it in the cycle. So
    /// the windows that end in one cycle are either that one window alone, or windows read
    /// whole in the cycle, whose maxima are among the cycle's elements, on distinct banks
    /// whatever the data (the walk's banks are then the fewer of the input's and the
    /// destination's). So that cycles seldom start inside a window, a cycle that starts at a
    /// window's start and would end inside a later one ends at its last window end instead
    /// (`floor(lanes / (k k))` whole windows a cycle where nothing collides).
    ///
    /// Which bank an element takes does not depend on the operand's first element (two
    /// elements share a bank exactly when their distance is a multiple of `banks`), so the
    /// count depends only on the geometry; each distinct one is walked once (a walk is linear
    /// in its elements) and remembered.
    pub fn walk_cycles(&self, planes: u64, lanes: u64, banks: u64, argmax_writes: bool) -> u64 {
        type Walk = (PoolDims, u64, u64, u64, bool);
        static WALKS: OnceLock<Mutex<HashMap<Walk, u64>>> = OnceLock::new();
        let key = (*self, planes, lanes, banks, argmax_writes);
        let walks = WALKS.get_or_init(Default::default);
        if let Some(&cycles) = walks.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return cycles;
        }
        let cycles = self.walk(planes, lanes.max(1), banks.max(1), argmax_writes);
        walks.lock().unwrap_or_else(PoisonError::into_inner).insert(key, cycles);
        cycles
    }

    fn walk(&self, planes: u64, lanes: u64, banks: u64, argmax_writes: bool) -> u64 {
        let PoolDims { h, w, k, s, oh, ow } = *self;
        // The element each bank holds in the current cycle, by the cycle's number.
        let mut held = vec![(0u64, 0u64); banks as usize];
        // The walker: plane, output row and column, window row and column.
        let advance = |(plane, orow, ocol, dr, dc): (u64, u64, u64, u64, u64)| {
            if dc + 1 < k {
                (plane, orow, ocol, dr, dc + 1)
            } else if dr + 1 < k {
                (plane, orow, ocol, dr + 1, 0)
            } else if ocol + 1 < ow {
                (plane, orow, ocol + 1, 0, 0)
            } else if orow + 1 < oh {
                (plane, orow + 1, 0, 0, 0)
            } else {
                (plane + 1, 0, 0, 0, 0)
            }
        };
        let inside = |(_, _, _, dr, dc): (u64, u64, u64, u64, u64)| (dr, dc) != (0, 0);
        let (mut at, mut cycles) = ((0, 0, 0, 0, 0), 0);
        while at.0 < planes {
            cycles += 1;
            let started_inside = inside(at);
            // The walker after the last window end of the cycle.
            let mut after_last_end = None;
            for lane in 0..lanes {
                let (plane, orow, ocol, dr, dc) = at;
                let element = plane * h * w + (orow * s + dr) * w + ocol * s + dc;
                let bank = &mut held[(element % banks) as usize];
                if bank.0 == cycles && bank.1 != element {
                    break;
                }
                *bank = (cycles, element);
                let window_end = dc + 1 == k && dr + 1 == k;
                at = advance(at);
                if window_end {
                    after_last_end = Some(at);
                    // The first window end of a cycle that started inside that window.
                    if argmax_writes && started_inside && lanes - 1 - lane >= k * k {
                        break;
                    }
                }
                if at.0 == planes {
                    break;
                }
            }
            // A cycle that started at a window's start and would end inside a later one ends
            // at its last window end instead.
            if let Some(end) = after_last_end.filter(|_| argmax_writes && !started_inside && inside(at)) {
                at = end;
            }
        }
        cycles
    }
}

/// A normalization's `rows x cols` matrix and the length of its statistics (`p1` picks the
/// axis: per column, or per row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormDims {
    /// Rows (`count`).
    pub rows: u64,
    /// Columns (`p0`).
    pub cols: u64,
    /// Statistics per block: `cols` per column, `rows` per row.
    pub len: u64,
}

/// The pooling geometry of `count` planes with parameters `p`.
pub fn pool_dims(count: u64, p: [u64; 4]) -> Result<PoolDims, String> {
    let [h, w, k, s] = p;
    if k == 0 || s == 0 {
        return Err(format!("pool window p2 = {k} and stride p3 = {s} must be positive"));
    }
    if k > h || k > w {
        return Err(format!("pool window p2 = {k} exceeds the plane {h} x {w}"));
    }
    let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
    // Every count derived from the geometry must fit in 64 bits.
    let work = [count, h, w, k, k].iter().try_fold(1u64, |acc, &x| acc.checked_mul(x.max(1)));
    if work.and_then(|w| w.checked_mul(oh * ow)).is_none() {
        return Err(format!("{count} planes of {h} x {w} with window {k} describe more work than the unit can count"));
    }
    Ok(PoolDims { h, w, k, s, oh, ow })
}

/// The normalization geometry of `op` over `count` rows with parameters `p`.
pub fn norm_dims(op: VecOp, count: u64, p: [u64; 4]) -> Result<NormDims, String> {
    let (rows, cols) = (count, p[0]);
    if cols == 0 {
        return Err(format!("{op} needs p0 (columns) >= 1"));
    }
    match p[1] {
        0 => Ok(NormDims { rows, cols, len: cols }),
        1 => Ok(NormDims { rows, cols, len: rows }),
        other => Err(format!("{op}: p1 = {other} must be 0 (per column) or 1 (per row)")),
    }
}

/// A pooling op's walk over the windows of its planes ([`PoolDims::walk_cycles`]). Its banks
/// are those of the buffer it reads (`a`), or of the one it writes at every window element
/// (`avgpool_grad`'s destination), or of both (`maxpool_grad`, which reads `a` and writes its
/// destination at the windows' maxima: the fewer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolWalk {
    /// The planes' geometry.
    pub dims: PoolDims,
    /// The planes.
    pub planes: u64,
    /// Whether the op writes at each window's maximum (`maxpool_grad`).
    pub argmax_writes: bool,
}

impl PoolWalk {
    /// The banks the walk keeps a cycle's elements apart in: `a`'s buffer's, `avgpool_grad`'s
    /// destination's, or for `maxpool_grad` the fewer of both (distinct in the fewer banks, a
    /// divisor of the other count, is distinct in both).
    pub fn banks(op: VecOp, arch: &ArchConfig, a: Buffer, dst: Buffer) -> u64 {
        match op {
            VecOp::AvgPoolGrad => arch.banks(dst),
            VecOp::MaxPoolGrad => arch.banks(a).min(arch.banks(dst)),
            _ => arch.banks(a),
        }
    }
}

/// A vector op's element counts and lane passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VecGeometry {
    /// Elements read from `a`.
    pub elements_in: u64,
    /// Elements read from `b`.
    pub elements_b: u64,
    /// Elements written to the destination.
    pub elements_out: u64,
    /// Work items (element operations) the op counts.
    pub work: u64,
    /// The lanes' passes as `(repetitions, elements)`: each repetition of a pass takes
    /// `ceil(elements / lanes)` cycles (see the simulator's vector unit).
    pub passes: [(u64, u64); 3],
    /// A pooling op's walk over its windows, after the passes.
    pub walk: Option<PoolWalk>,
}

impl VecGeometry {
    /// One pass over the `work` items.
    fn flat(elements_in: u64, elements_b: u64, elements_out: u64, work: u64) -> VecGeometry {
        VecGeometry { elements_in, elements_b, elements_out, work, passes: [(1, work), (0, 0), (0, 0)], walk: None }
    }

    /// The geometry of `op` over `count` elements, rows or planes with parameters `p`.
    pub fn of(op: VecOp, count: u64, p: [u64; 4]) -> Result<VecGeometry, String> {
        let n = count;
        Ok(match op {
            VecOp::Copy | VecOp::Relu | VecOp::Gelu => VecGeometry::flat(n, 0, n, n),
            VecOp::Add | VecOp::ReluGrad | VecOp::GeluGrad => VecGeometry::flat(n, n, n, n),
            VecOp::MaxPool | VecOp::AvgPool => {
                let d = pool_dims(n, p)?;
                let flat = VecGeometry::flat(n * d.h * d.w, 0, n * d.oh * d.ow, n * d.oh * d.ow * d.k * d.k);
                VecGeometry { passes: [(0, 0); 3], walk: Some(PoolWalk { dims: d, planes: n, argmax_writes: false }), ..flat }
            }
            // The gradient planes are zeroed first, then the windows add to them.
            VecOp::MaxPoolGrad | VecOp::AvgPoolGrad => {
                let d = pool_dims(n, p)?;
                let elements_in = if op == VecOp::MaxPoolGrad { n * d.h * d.w } else { 0 };
                let (planes, work) = (n * d.h * d.w, n * d.oh * d.ow * d.k * d.k);
                VecGeometry {
                    passes: [(1, planes), (0, 0), (0, 0)],
                    walk: Some(PoolWalk { dims: d, planes: n, argmax_writes: op == VecOp::MaxPoolGrad }),
                    ..VecGeometry::flat(elements_in, n * d.oh * d.ow, planes, work)
                }
            }
            // Three passes per row, and one cycle for the mean loss.
            VecOp::SoftmaxXent => {
                let classes = p[0];
                if classes == 0 {
                    return Err("softmax_xent needs p0 (classes) >= 1".into());
                }
                let flat = VecGeometry::flat(n * classes, n, n * classes + 1, 3 * n * classes);
                VecGeometry { passes: [(3 * n, classes), (1, 1), (0, 0)], ..flat }
            }
            // Three passes per row; the gradient two.
            VecOp::Softmax | VecOp::SoftmaxGrad => {
                let cols = p[0];
                if cols == 0 {
                    return Err(format!("{op} needs p0 (row length) >= 1"));
                }
                let (b, passes) = if op == VecOp::SoftmaxGrad { (n * cols, 2) } else { (0, 3) };
                VecGeometry {
                    passes: [(passes * n, cols), (0, 0), (0, 0)],
                    ..VecGeometry::flat(n * cols, b, n * cols, 3 * n * cols)
                }
            }
            // Per row (`p1 = 1`): a batch walks `lanes` consecutive elements of one row;
            // norm_stats makes two passes per row and writes the mean after the first, the rstd
            // after the second. The others take blocks of `lanes` rows (the last `L'`), read and
            // write their statistics one run a cycle, and walk the block's rows: norm_apply
            // reads two runs, then walks; norm_grad_stats walks, then writes two runs;
            // norm_grad_apply reads four runs, computes one row's terms a cycle, then walks.
            // Per column: the lanes take `lanes` adjacent columns and walk them down a row a
            // cycle (so a cycle's elements are consecutive), each block of columns with its
            // statistics one run a cycle and computed one column a cycle: norm_stats two
            // passes and a cycle per column after each (mean, then rstd); norm_apply two
            // cycles for its statistics; norm_grad_stats two to write its own; norm_grad_apply
            // four, and a cycle per column for its terms.
            VecOp::NormStats | VecOp::NormApply | VecOp::NormGradStats | VecOp::NormGradApply => {
                let NormDims { rows, cols, len } = norm_dims(op, n, p)?;
                let all = rows * cols;
                let per_row = p[1] == 1;
                let (passes_stats, passes_one, passes_grad_apply) = if all == 0 {
                    ([(0, 0); 3], [(0, 0); 3], [(0, 0); 3])
                } else if per_row {
                    ([(2 * len, cols), (0, 0), (0, 0)], [(len, cols), (2, len), (0, 0)], [(len, cols), (4, len), (len, 1)])
                } else {
                    (
                        [(2 * rows, len), (2 * len, 1), (0, 0)],
                        [(rows + 2, len), (0, 0), (0, 0)],
                        [(rows + 4, len), (len, 1), (0, 0)],
                    )
                };
                match op {
                    VecOp::NormStats => VecGeometry { passes: passes_stats, ..VecGeometry::flat(all, 0, 2 * len, 2 * all) },
                    VecOp::NormApply => VecGeometry { passes: passes_one, ..VecGeometry::flat(all, 2 * len, all, all) },
                    VecOp::NormGradStats => VecGeometry { passes: passes_one, ..VecGeometry::flat(all, all, 2 * len, all) },
                    _ => VecGeometry { passes: passes_grad_apply, ..VecGeometry::flat(all, 4 * len, all, 2 * all) },
                }
            }
        })
    }

    /// Cycles of the passes and the walk on `lanes` lanes, the walk over a buffer of
    /// `walk_banks` banks.
    pub fn issue_cycles(&self, lanes: u64, walk_banks: u64) -> u64 {
        let passes: u64 = self.passes.iter().map(|&(repetitions, elements)| repetitions * elements.div_ceil(lanes)).sum();
        passes + self.walk.map_or(0, |w| w.dims.walk_cycles(w.planes, lanes, walk_banks, w.argmax_writes))
    }
}

/// One operand of an instruction: `len` elements of `buffer` from `start`, read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operand {
    /// The buffer.
    pub buffer: Buffer,
    /// Written (else read).
    pub write: bool,
    /// Read once, when the instruction starts, and kept in registers: it shares the reader of
    /// any other operand of the instruction that reads the same partition.
    pub kept: bool,
    /// First element.
    pub start: u64,
    /// Elements from `start` the operand spans (a 2-D transfer's gaps included).
    pub len: u64,
}

impl Op {
    /// The operands this instruction reads and writes, in a fixed order per instruction (see
    /// the module documentation for which). Errors name a vector op's invalid geometry, or a
    /// prune whose ratio is dense.
    pub fn operands(&self) -> Result<Vec<Operand>, String> {
        let read = |buffer, start: u32, len| Operand { buffer, write: false, kept: false, start: start.into(), len };
        let write = |buffer, start: u32, len| Operand { buffer, write: true, kept: false, start: start.into(), len };
        Ok(match *self {
            Op::Load { buf, sram, rows, cols, sram_row_stride, .. }
            | Op::Store { buf, sram, rows, cols, sram_row_stride, .. } => {
                let len =
                    if rows == 0 || cols == 0 { 0 } else { u64::from(rows - 1) * u64::from(sram_row_stride) + u64::from(cols) };
                vec![if matches!(self, Op::Load { .. }) { write(buf, sram, len) } else { read(buf, sram, len) }]
            }
            Op::Gemm { dataflow, weights, accumulate, rows, cols, depth, input, weight, output, .. } => {
                let (rows, cols) = (u64::from(rows), u64::from(cols));
                let stored = cols * weights.stored_len(depth as usize) as u64;
                let mut v = vec![read(Buffer::Act, input, rows * u64::from(depth)), read(Buffer::Wgt, weight, stored)];
                if weights.ratio().is_some() {
                    v.push(read(Buffer::Idx, weight, stored));
                }
                if accumulate || dataflow != Dataflow::Os {
                    v.push(read(Buffer::Acc, output, rows * cols));
                }
                v.push(write(Buffer::Acc, output, rows * cols));
                v
            }
            Op::Prune { nm, rows, cols, src, dst, write_mask, mask, .. } => {
                let ratio = nm.ratio().ok_or("nm must be a sparse ratio N:M, not dense")?;
                let dense = u64::from(rows) * u64::from(cols);
                let compressed = dense / u64::from(ratio.m) * u64::from(ratio.n);
                let mut v = vec![
                    read(Buffer::Master, src, dense),
                    write(Buffer::Wgt, dst, compressed),
                    write(Buffer::Idx, dst, compressed),
                ];
                if write_mask {
                    v.push(write(Buffer::Mask, mask, dense));
                }
                v
            }
            Op::Update { count, weight, momentum, grad, use_mask, mask, hyper } => {
                let n = u64::from(count);
                let mut v = vec![
                    read(Buffer::Master, weight, n),
                    read(Buffer::Master, momentum, n),
                    Operand { kept: true, ..read(Buffer::Master, hyper, 4) },
                    read(Buffer::Acc, grad, n),
                ];
                if use_mask {
                    v.push(read(Buffer::Mask, mask, n));
                }
                v.push(write(Buffer::Master, weight, n));
                v.push(write(Buffer::Master, momentum, n));
                v
            }
            Op::Vec { op, count, dst_buf, dst, a_buf, a, b_buf, b, p0, p1, p2, p3 } => {
                let g = VecGeometry::of(op, count.into(), [p0, p1, p2, p3].map(u64::from))?;
                let reads = op.operands();
                let mut v = Vec::new();
                if reads.a {
                    v.push(read(a_buf, a, g.elements_in));
                }
                if reads.b {
                    v.push(read(b_buf, b, g.elements_b));
                }
                if reads.dst {
                    v.push(read(dst_buf, dst, g.elements_out));
                }
                v.push(write(dst_buf, dst, g.elements_out));
                v
            }
        })
    }

    /// The buffer use of this instruction on `arch` (see the module documentation); errors as
    /// [`Op::operands`].
    pub fn buffer_use(&self, arch: &ArchConfig) -> Result<BufferUse, String> {
        let mut u = BufferUse::default();
        let operands = self.operands()?;
        let spans: Vec<(Buffer, bool, std::ops::RangeInclusive<usize>)> =
            operands.iter().map(|o| (o.buffer, o.write, partitions(arch, o))).collect();
        // Whether a read operand that is not kept covers partition `p` of `buffer`.
        let read_there = |buffer: Buffer, p: usize| {
            operands
                .iter()
                .zip(&spans)
                .any(|(o, (_, _, covered))| !o.write && !o.kept && o.buffer == buffer && covered.contains(&p))
        };
        for (o, (buffer, write, parts)) in operands.iter().zip(&spans) {
            let b = *buffer as usize;
            for p in parts.clone() {
                if *write {
                    u.writes[b][p] = 1;
                } else if !o.kept || !read_there(*buffer, p) {
                    u.reads[b][p] += 1;
                }
            }
        }
        Ok(u)
    }
}

/// The partitions of its buffer that `o` overlaps (an empty range: its first element's).
fn partitions(arch: &ArchConfig, o: &Operand) -> std::ops::RangeInclusive<usize> {
    let size = arch.partition_elements(o.buffer).max(1);
    let last_partition = arch.buffers.partitions.max(1) as usize - 1;
    let part = |element: u64| ((element / size) as usize).min(last_partition);
    part(o.start)..=part(o.start.saturating_add(o.len.max(1) - 1))
}

/// The buffers an instruction reads and writes while it runs, per buffer (in [`Buffer::ALL`]
/// order) and partition: how many of its operands read the partition, and whether it writes it.
/// On a machine whose `buffers.readers` or `buffers.writers` are limited, the controller starts
/// an instruction only when its use fits next to the running instructions'
/// ([`BufferUse::fits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BufferUse {
    /// Operands reading each buffer's partitions.
    pub reads: [[u8; MAX_PARTITIONS]; BUFFERS],
    /// Whether each buffer's partitions are written (0 or 1).
    pub writes: [[u8; MAX_PARTITIONS]; BUFFERS],
}

impl BufferUse {
    /// `(buffer, partition)` pairs, with their reads and writes.
    fn slots(&self) -> impl Iterator<Item = (usize, usize)> {
        (0..BUFFERS).flat_map(|b| (0..MAX_PARTITIONS).map(move |p| (b, p)))
    }

    /// Whether this use fits next to `held` under `readers` and `writers` per partition (0: no
    /// limit).
    pub fn fits(&self, held: &BufferUse, readers: u32, writers: u32) -> bool {
        let within = |want: u8, have: u8, limit: u32| limit == 0 || u32::from(want) + u32::from(have) <= limit;
        self.slots().all(|(b, p)| {
            within(self.reads[b][p], held.reads[b][p], readers) && within(self.writes[b][p], held.writes[b][p], writers)
        })
    }

    /// The first buffer this use alone overflows, with what it needs of it: an instruction
    /// that could never start.
    pub fn exceeds(&self, readers: u32, writers: u32) -> Option<(Buffer, String)> {
        self.slots().find_map(|(b, p)| {
            let buffer = Buffer::ALL[b];
            if readers != 0 && u32::from(self.reads[b][p]) > readers {
                Some((buffer, format!("{} operand reads, but buffers.readers = {readers}", self.reads[b][p])))
            } else if writers != 0 && u32::from(self.writes[b][p]) > writers {
                Some((buffer, format!("a write, but buffers.writers = {writers}")))
            } else {
                None
            }
        })
    }

    /// Adds `other`'s use (an instruction starts).
    pub fn take(&mut self, other: &BufferUse) {
        for (b, p) in other.slots() {
            self.reads[b][p] += other.reads[b][p];
            self.writes[b][p] += other.writes[b][p];
        }
    }

    /// Removes `other`'s use (an instruction completes).
    pub fn release(&mut self, other: &BufferUse) {
        for (b, p) in other.slots() {
            self.reads[b][p] -= other.reads[b][p];
            self.writes[b][p] -= other.writes[b][p];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The walk as the RTL takes it: all of a cycle's `lanes` candidate elements at once, each
    /// compared with every earlier lane's; the cycle ends at the first lane that meets an
    /// earlier lane's different element in a bank; with `argmax_writes`, after the first lane
    /// that ends a window if the cycle started inside it and `k k` lanes follow, else after the
    /// last lane that ends a window if the cycle would end inside a window.
    fn walk_by_lane_pairs(d: PoolDims, planes: u64, lanes: u64, banks: u64, argmax_writes: bool) -> u64 {
        let PoolDims { h, w, k, s, oh, ow } = d;
        let window = k * k;
        let elements: Vec<(u64, u64)> = (0..planes)
            .flat_map(|plane| (0..oh).flat_map(move |orow| (0..ow).map(move |ocol| (plane, orow, ocol))))
            .flat_map(|(plane, orow, ocol)| {
                (0..window).map(move |i| (plane * h * w + (orow * s + i / k) * w + ocol * s + i % k, i))
            })
            .collect();
        let (mut at, mut cycles) = (0, 0);
        while at < elements.len() {
            let candidates = &elements[at..elements.len().min(at + lanes as usize)];
            let meets = |g: usize| {
                (0..g).any(|e| candidates[e].0 % banks == candidates[g].0 % banks && candidates[e].0 != candidates[g].0)
            };
            let mut taken = (1..candidates.len()).find(|&g| meets(g)).unwrap_or(candidates.len());
            let ends = |g: usize| candidates[g].1 == window - 1;
            let first_end = (0..candidates.len()).find(|&g| ends(g));
            let last_end = (0..taken).rev().find(|&g| ends(g));
            let inside_a_window = candidates[0].1 != 0;
            if argmax_writes && inside_a_window {
                if let Some(end) = first_end.filter(|&end| lanes - 1 - end as u64 >= window) {
                    taken = taken.min(end + 1);
                }
            } else if argmax_writes && !ends(taken - 1) && at + taken < elements.len() {
                if let Some(end) = last_end {
                    taken = end + 1;
                }
            }
            at += taken;
            cycles += 1;
        }
        cycles
    }

    proptest! {
        /// The simulator's walk, one element at a time against the banks it holds, counts the
        /// cycles that the RTL's lane-pair comparison gives, on random geometries.
        #[test]
        fn the_walk_is_the_rtls_lane_pair_walk(
            (h, w, k) in (1u64..12, 1u64..40).prop_flat_map(|(h, w)| (Just(h), Just(w), 1..=h.min(w).min(4))),
            s in 1u64..5, planes in 0u64..4, lanes in 1u64..20, bank_bits in 0u32..6,
        ) {
            let d = pool_dims(planes, [h, w, k, s]).unwrap();
            let banks = 1u64 << bank_bits;
            for argmax_writes in [false, true] {
                prop_assert_eq!(d.walk(planes, lanes, banks, argmax_writes), walk_by_lane_pairs(d, planes, lanes, banks, argmax_writes));
            }
        }
    }

    /// Walks worked out by hand, element by element.
    #[test]
    fn the_pooling_walk_takes_the_longest_prefix_on_distinct_banks() {
        // 2x2 windows, stride 2, on a plane 8 wide: a window's rows are 8 apart, so on 8 banks
        // its third element meets its first. Cycle 1 takes the first window's top row; each
        // later cycle a window's bottom row and the next one's top row; cycle 5 the last
        // window's bottom row. On 16 banks nothing meets: 16 elements in 4 cycles.
        let d = pool_dims(1, [2, 8, 2, 2]).unwrap();
        assert_eq!(d.walk_cycles(1, 4, 8, false), 5);
        assert_eq!(d.walk_cycles(1, 4, 16, false), 4);
        // 3x3 windows, stride 1, on a 3x4 plane: two windows of 9 elements, 0-2, 4-6, 8-10
        // and 1-3, 5-7, 9-11. With 16 lanes on 16 banks the second window's elements that the
        // first one also has are the same elements, not conflicts: 18 elements in 2 cycles.
        let d = pool_dims(1, [3, 4, 3, 1]).unwrap();
        assert_eq!(d.walk_cycles(1, 16, 16, false), 2);
        // On 8 banks element 8 meets 0 (cycle 1 takes 6), the second window's 1 meets 9
        // (cycle 2 takes 8-10), its 9 meets 1 (cycle 3 takes 6) and cycle 4 the last 3.
        assert_eq!(d.walk_cycles(1, 16, 8, false), 4);
        // Four lanes on 4 banks: every window row is a cycle (3 elements, the next row's
        // first meets this row's first), 6 cycles; a second plane, 12 elements on, adds 6.
        assert_eq!(d.walk_cycles(1, 4, 4, false), 6);
        assert_eq!(d.walk_cycles(2, 4, 4, false), 12);
        // One lane takes an element a cycle, and no planes take none.
        assert_eq!(d.walk_cycles(2, 1, 4, false), 36);
        assert_eq!(d.walk_cycles(0, 4, 4, false), 0);
        // Writes at the windows' maxima: 2x2 windows, stride 2, on a plane 8 wide, 8 lanes on 8
        // banks. Each window's bottom row meets its top row, so a cycle starts inside a window
        // after each top row; it then ends with that window (6 lanes follow, room for another
        // window), and every window takes 2 cycles: 8. Without the writes, the cycles after the
        // first take a bottom row and the next window's top row: 5. With 4 lanes, no cycle has
        // room for a second window after the first one ends, and the walk is the same.
        let d = pool_dims(1, [2, 8, 2, 2]).unwrap();
        assert_eq!((d.walk_cycles(1, 8, 8, true), d.walk_cycles(1, 8, 8, false)), (8, 5));
        assert_eq!(d.walk_cycles(1, 4, 8, true), d.walk_cycles(1, 4, 8, false));
        // Where nothing collides, whole windows a cycle: four 3x3 windows of stride 3 on a
        // 3 x 12 plane, 16 lanes, one window (9 elements) a cycle: 4 cycles, against
        // ceil(36 / 16) = 3 without the writes.
        let d = pool_dims(1, [3, 12, 3, 3]).unwrap();
        assert_eq!((d.walk_cycles(1, 16, 64, true), d.walk_cycles(1, 16, 64, false)), (4, 3));
    }
}
