//! Kernel-level lowering of one GEMM `out[M x N] = in[M x K] . W[K x N]` onto a SAT machine.
//!
//! The weight operand is dense or N:M sparse along K (the reduction dimension). In DRAM the
//! input is row-major FP16 `M x K`, the weight is stored transposed (`N` rows of `K`, a
//! layer's `C_out x K`): dense values, or N:M compressed values (`N` rows of `K/M*N`) with a
//! parallel one-byte index array, and the output is row-major FP32 `M x N`.
//!
//! **Tiling.** The GEMM is cut into `tm x tn x tk` steps walked in one of two loop orders
//! (`n, m, k` or `m, n, k`, reduction innermost). Input and weight tiles are double-buffered
//! in their buffers and accumulator tiles too, so loads, compute and stores overlap. A tile
//! that the next step uses again (the whole reduction fits one `tk`) is not reloaded.
//!
//! With [`GemmOptions::input_t`] the input is stored as its `K x M` transpose (DRAM and
//! buffer) and the GEMMs set `input_t`.
//!
//! **Synchronization.** Five semaphores order the queues: `LOADED` (a step's last load done),
//! `IN_FREE` / `W_FREE` (a tile slot's last GEMM done, so the slot may be overwritten),
//! `OUT_READY` (an output tile complete) and `ACC_FREE` (its store done). Every dependency
//! points to an earlier instruction, so no program this module emits can deadlock.
//!
//! **Choice.** [`plan`] emits every candidate (each allowed dataflow, both loop orders, and
//! every maximal tiling: tile sizes from powers of two times the array's extent, such that no
//! dimension can grow to its next size and still fit double-buffered) and keeps the one the
//! simulator, in timing-only mode, finds fastest: the cost model is the simulator itself.

use crate::{Error, Result};
use satkit_hw::isa::{Buffer, Instruction, Op, Phase, Program, WeightFormat};
use satkit_hw::{ArchConfig, Dataflow};
use satkit_sim::{Machine, Mode};
use serde::Serialize;

const LOADED: u8 = 1;
const IN_FREE: u8 = 2;
const W_FREE: u8 = 3;
const OUT_READY: u8 = 4;
const ACC_FREE: u8 = 5;
/// Largest tile extent an instruction can encode (the ISA's 16-bit extent fields).
pub(crate) const FIELD16: u64 = satkit_hw::isa::EXTENT_MAX;

/// One GEMM to run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GemmProblem {
    /// Output rows (M).
    pub m: u64,
    /// Output columns (N).
    pub n: u64,
    /// Reduction depth (K).
    pub k: u64,
    /// Weight format.
    #[serde(serialize_with = "serialize_format")]
    pub weights: WeightFormat,
}

fn serialize_format<S: serde::Serializer>(w: &WeightFormat, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&match w.ratio() {
        None => "dense".to_string(),
        Some(r) => r.to_string(),
    })
}

/// Which dataflow to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataflowChoice {
    /// This one.
    Fixed(Dataflow),
    /// The fastest the machine supports.
    Auto,
}

/// Lowering options.
#[derive(Debug, Clone, Copy)]
pub struct GemmOptions {
    /// Dataflow.
    pub dataflow: DataflowChoice,
    /// Round-robin `accumulator_latency` outputs per PE in OS (interleave mapping, mechanism a).
    pub interleave: bool,
    /// Phase tag for the emitted instructions.
    pub phase: Phase,
    /// The input is read as its stored transpose (`K x M` in DRAM and in the buffer; GEMM
    /// `input_t`), as the weight-gradient GEMM reads `dY`.
    pub input_t: bool,
}

impl Default for GemmOptions {
    fn default() -> Self {
        GemmOptions { dataflow: DataflowChoice::Auto, interleave: true, phase: Phase::None, input_t: false }
    }
}

/// DRAM byte addresses of the operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GemmLayout {
    /// Input `M x K`.
    pub input: u64,
    /// Weight values.
    pub weight: u64,
    /// Weight indices (sparse only).
    pub index: u64,
    /// Output `M x N` FP32.
    pub output: u64,
}

impl GemmLayout {
    /// Operands packed one after another from `base`, each aligned to 4 KiB.
    pub fn packed(arch: &ArchConfig, p: &GemmProblem, base: u64) -> Self {
        let align = |x: u64| x.div_ceil(4096) * 4096;
        let stored = p.weights.stored_len(p.k as usize) as u64;
        let input = align(base);
        let weight = align(input + p.m * p.k * arch.operand_bytes());
        let index = align(weight + p.n * stored * arch.operand_bytes());
        let output = align(index + if p.weights.ratio().is_some() { p.n * stored } else { 0 });
        GemmLayout { input, weight, index, output }
    }

    /// First byte after the output.
    pub fn end(&self, p: &GemmProblem) -> u64 {
        self.output + p.m * p.n * 4
    }
}

/// Loop order of the tiled GEMM (reduction always innermost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoopOrder {
    /// Output-column tiles outermost: weight tiles stay while input tiles stream.
    Nmk,
    /// Output-row tiles outermost: input tiles stay while weight tiles stream.
    Mnk,
}

/// A complete tiling decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tiling {
    /// Dataflow.
    #[serde(serialize_with = "serialize_dataflow")]
    pub dataflow: Dataflow,
    /// Output rows per step.
    pub tm: u64,
    /// Output columns per step.
    pub tn: u64,
    /// Reduction elements per step.
    pub tk: u64,
    /// Loop order.
    pub order: LoopOrder,
    /// OS interleave factor.
    pub interleave: u64,
}

fn serialize_dataflow<S: serde::Serializer>(d: &Dataflow, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(d.name())
}

/// A lowered GEMM: its program, the tiling chosen and where its operands live.
#[derive(Debug, Clone)]
pub struct GemmKernel {
    /// The instruction stream.
    pub program: Program,
    /// The tiling.
    pub tiling: Tiling,
    /// DRAM layout.
    pub layout: GemmLayout,
}

/// Checks a problem against the machine.
pub fn check(arch: &ArchConfig, p: &GemmProblem) -> Result<()> {
    if p.m == 0 || p.n == 0 || p.k == 0 {
        return Err(Error::Unsupported(format!("GEMM {}x{}x{}: every dimension must be at least 1", p.m, p.n, p.k)));
    }
    if let Some(r) = p.weights.ratio() {
        if !arch.supports_nm(r) {
            let list: Vec<String> = arch.array.supported_nm.iter().map(|r| r.to_string()).collect();
            return Err(Error::Unsupported(format!(
                "N:M {r} is not supported by {} (it runs dense and [{}])",
                arch.name,
                list.join(", ")
            )));
        }
        if !r.fits(p.k as usize) {
            return Err(Error::Unsupported(format!("K = {} is not a multiple of M = {} for N:M {r}", p.k, r.m)));
        }
    }
    Ok(())
}

/// Candidate sizes for one tile dimension: `unit` times powers of two below `full`, and
/// `full` itself, none above `limit`, in increasing order.
pub(crate) fn candidates(full: u64, unit: u64, limit: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut size = unit;
    while size < full && size <= limit {
        out.push(size);
        size *= 2;
    }
    if full <= limit {
        out.push(full);
    }
    out
}

/// Whether a tiling fits the buffers with double buffering.
fn fits(arch: &ArchConfig, p: &GemmProblem, tm: u64, tn: u64, tk: u64) -> bool {
    let stk = p.weights.stored_len(tk as usize) as u64;
    2 * tm * tk <= arch.buffer_elements(Buffer::Act)
        && 2 * tn * stk <= arch.buffer_elements(Buffer::Wgt)
        && 2 * tm * tn <= arch.buffer_elements(Buffer::Acc)
        && tm <= FIELD16
        && tn <= FIELD16
        && tk <= FIELD16
        && stk <= FIELD16
}

/// Every tiling [`plan`] considers.
pub fn tilings(arch: &ArchConfig, p: &GemmProblem, options: &GemmOptions) -> Result<Vec<Tiling>> {
    check(arch, p)?;
    let dataflows: Vec<Dataflow> = match options.dataflow {
        DataflowChoice::Fixed(d) if arch.supports_dataflow(d) => vec![d],
        DataflowChoice::Fixed(d) => {
            return Err(Error::Unsupported(format!(
                "dataflow {d} is not supported by {} (it has {})",
                arch.name,
                arch.array.dataflows.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")
            )))
        }
        DataflowChoice::Auto => arch.array.dataflows.clone(),
    };
    let (r, c) = (u64::from(arch.array.rows), u64::from(arch.array.cols));
    let k_unit = r * arch.reduction_per_pe_step(p.weights.ratio());
    let mut out = Vec::new();
    for &dataflow in &dataflows {
        let interleave =
            if dataflow == Dataflow::Os && options.interleave { u64::from(arch.array.accumulator_latency) } else { 1 };
        let (m_unit, n_unit) = match dataflow {
            Dataflow::Os => (r, c * interleave),
            Dataflow::Ws => (r, c),
            Dataflow::Is => (c, r),
        };
        let (ks, ns, ms) = (candidates(p.k, k_unit, FIELD16), candidates(p.n, n_unit, FIELD16), candidates(p.m, m_unit, FIELD16));
        // Keep only maximal tilings: growing any one dimension to its next candidate overflows.
        let grows = |list: &[u64], i: usize| list.get(i + 1).copied();
        for (ki, &tk) in ks.iter().enumerate() {
            for (ni, &tn) in ns.iter().enumerate() {
                for (mi, &tm) in ms.iter().enumerate() {
                    let maximal = grows(&ks, ki).is_none_or(|k| !fits(arch, p, tm, tn, k))
                        && grows(&ns, ni).is_none_or(|n| !fits(arch, p, tm, n, tk))
                        && grows(&ms, mi).is_none_or(|m| !fits(arch, p, m, tn, tk));
                    if maximal && fits(arch, p, tm, tn, tk) {
                        for order in [LoopOrder::Nmk, LoopOrder::Mnk] {
                            out.push(Tiling { dataflow, tm, tn, tk, order, interleave });
                        }
                    }
                }
            }
        }
    }
    if out.is_empty() {
        return Err(Error::NoTiling {
            what: format!("GEMM {}x{}x{}", p.m, p.n, p.k),
            arch: arch.name.clone(),
            reason: format!("even one {k_unit}-deep reduction step with one array of outputs overflows a double-buffered buffer"),
        });
    }
    Ok(out)
}

/// Chooses the tiling with the fewest simulated cycles and emits its program.
pub fn plan(arch: &ArchConfig, p: &GemmProblem, options: &GemmOptions, layout: GemmLayout) -> Result<GemmKernel> {
    let mut best: Option<(u64, GemmKernel)> = None;
    for tiling in tilings(arch, p, options)? {
        let program = emit_with(arch, p, &tiling, &layout, options);
        let cycles = Machine::new(arch, Mode::TimingOnly).run(&program)?.total_cycles;
        if best.as_ref().is_none_or(|(b, _)| cycles < *b) {
            best = Some((cycles, GemmKernel { program, tiling, layout }));
        }
    }
    Ok(best.expect("tilings() returns at least one candidate").1)
}

/// One step of the tiled loop nest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    m0: u64,
    n0: u64,
    k0: u64,
}

fn starts(full: u64, tile: u64) -> impl Iterator<Item = u64> {
    (0..full.div_ceil(tile)).map(move |i| i * tile)
}

/// Emits the program for one tiling.
pub fn emit(arch: &ArchConfig, p: &GemmProblem, t: &Tiling, layout: &GemmLayout, phase: Phase) -> Program {
    emit_with(arch, p, t, layout, &GemmOptions { phase, ..GemmOptions::default() })
}

/// Emits the program for one tiling with the given options (phase tag, transposed input).
pub fn emit_with(arch: &ArchConfig, p: &GemmProblem, t: &Tiling, layout: &GemmLayout, options: &GemmOptions) -> Program {
    let phase = options.phase;
    let mut steps = Vec::new();
    let (outer, middle) = match t.order {
        LoopOrder::Nmk => ((p.n, t.tn), (p.m, t.tm)),
        LoopOrder::Mnk => ((p.m, t.tm), (p.n, t.tn)),
    };
    for o in starts(outer.0, outer.1) {
        for mid in starts(middle.0, middle.1) {
            for k0 in starts(p.k, t.tk) {
                let (m0, n0) = if t.order == LoopOrder::Nmk { (mid, o) } else { (o, mid) };
                steps.push(Step { m0, n0, k0 });
            }
        }
    }
    let op_bytes = arch.operand_bytes();
    let stored_k = p.weights.stored_len(p.k as usize) as u64;
    let compressed = |k: u64| p.weights.stored_len(k as usize) as u64;
    let (in_slot, w_slot, acc_slot) = (t.tm * t.tk, t.tn * compressed(t.tk), t.tm * t.tn);
    let (mut in_loads, mut w_loads, mut out_tiles) = (0u64, 0u64, 0u64);
    let mut insns = Vec::new();
    let tagged = |op: Op| Instruction::new(op).tag(phase);
    for (i, s) in steps.iter().enumerate() {
        let (tm, tn, tk) = ((p.m - s.m0).min(t.tm), (p.n - s.n0).min(t.tn), (p.k - s.k0).min(t.tk));
        let stk = compressed(tk);
        let prev = i.checked_sub(1).map(|j| steps[j]);
        let next = steps.get(i + 1);
        let need_w = prev.is_none_or(|q| (q.n0, q.k0) != (s.n0, s.k0));
        let need_in = prev.is_none_or(|q| (q.m0, q.k0) != (s.m0, s.k0));
        let last_w_use = next.is_none_or(|q| (q.n0, q.k0) != (s.n0, s.k0));
        let last_in_use = next.is_none_or(|q| (q.m0, q.k0) != (s.m0, s.k0));
        let first_k = s.k0 == 0;
        let last_k = s.k0 + t.tk >= p.k;
        let mut loads = Vec::new();
        let w_addr = (w_loads % 2) * w_slot;
        if need_w {
            let wait = if w_loads >= 2 { W_FREE } else { 0 };
            let row = |base: u64, e: u64| base + (s.n0 * stored_k + compressed(s.k0)) * e;
            let load = |buf, dram| Op::Load {
                buf,
                sram: w_addr as u32,
                dram,
                rows: tn as u32,
                cols: stk as u32,
                dram_row_stride: stored_k as u32,
                dram_col_stride: 1,
                sram_row_stride: stk as u32,
            };
            loads.push(tagged(load(Buffer::Wgt, row(layout.weight, op_bytes))).wait(wait));
            if p.weights.ratio().is_some() {
                loads.push(tagged(load(Buffer::Idx, row(layout.index, 1))));
            }
            w_loads += 1;
        }
        let w_addr = ((w_loads + 1) % 2) * w_slot;
        let in_addr = (in_loads % 2) * in_slot;
        if need_in {
            let wait = if in_loads >= 2 { IN_FREE } else { 0 };
            // Transposed input: rows of K, each `M` long in DRAM and `tm` long in the slot.
            let (dram, rows, cols, dram_row_stride) = if options.input_t {
                (layout.input + (s.k0 * p.m + s.m0) * op_bytes, tk, tm, p.m)
            } else {
                (layout.input + (s.m0 * p.k + s.k0) * op_bytes, tm, tk, p.k)
            };
            loads.push(
                tagged(Op::Load {
                    buf: Buffer::Act,
                    sram: in_addr as u32,
                    dram,
                    rows: rows as u32,
                    cols: cols as u32,
                    dram_row_stride: dram_row_stride as u32,
                    dram_col_stride: 1,
                    sram_row_stride: cols as u32,
                })
                .wait(wait),
            );
            in_loads += 1;
        }
        let in_addr = ((in_loads + 1) % 2) * in_slot;
        let had_loads = !loads.is_empty();
        if let Some(last) = loads.last_mut() {
            *last = last.signal(LOADED);
        }
        insns.extend(loads);
        let acc_addr = (out_tiles % 2) * acc_slot;
        let mut gemm = tagged(Op::Gemm {
            dataflow: t.dataflow,
            weights: p.weights,
            accumulate: !first_k,
            interleave: t.interleave as u32,
            rows: tm as u32,
            cols: tn as u32,
            depth: tk as u32,
            input: in_addr as u32,
            weight: w_addr as u32,
            output: acc_addr as u32,
            input_t: options.input_t,
            weight_t: false,
        });
        if had_loads {
            gemm = gemm.wait(LOADED);
        }
        if first_k && out_tiles >= 2 {
            gemm = gemm.wait(ACC_FREE);
        }
        if last_in_use {
            gemm = gemm.signal(IN_FREE);
        }
        if last_w_use {
            gemm = gemm.signal(W_FREE);
        }
        if last_k {
            gemm = gemm.signal(OUT_READY);
        }
        insns.push(gemm);
        if last_k {
            insns.push(
                tagged(Op::Store {
                    buf: Buffer::Acc,
                    sram: acc_addr as u32,
                    dram: layout.output + (s.m0 * p.n + s.n0) * 4,
                    rows: tm as u32,
                    cols: tn as u32,
                    dram_row_stride: p.n as u32,
                    dram_col_stride: 1,
                    sram_row_stride: tn as u32,
                })
                .wait(OUT_READY)
                .signal(ACC_FREE),
            );
            out_tiles += 1;
        }
    }
    Program { insns }
}
