//! Lowering of the training step's pieces into fragment steps ([`super::engine`]): tiled GEMMs
//! (FF, BP, WU) with im2col addressing, the fused BP+WU fragment of interleave mapping, vector
//! streams for non-GEMM work, the WUVE update and the weight pre-generation (SORE prune).
//!
//! **im2col by DMA addressing.** A convolution's im2col matrix is never built on the host: a
//! tile of it is loaded with one 2-D DMA per kernel position it covers, whose rows are output
//! pixels at the conv's pixel stride (`stride * C_in` elements apart) and whose columns are
//! input channels. The addresses follow the first row's pixel; row wrap-around at image edges
//! and zero padding at borders are not modelled in the addresses (their burst counts are), so
//! only the timing of convs with `k > 1` or stride > 1 is claimed, not their functional data.
//!
//! **Tiling search.** Candidates are the maximal tilings (each dimension a power of two times
//! the array's extent, or the whole dimension, none able to grow and still fit double-buffered
//! in its region) for every dataflow and both loop orders. An analytic estimate (exact GEMM
//! cycles from `pe_array::gemm_timing` against DRAM bytes over peak bandwidth) ranks them and the
//! best [`SIMULATED_CANDIDATES`] are simulated exactly; the fastest wins. Without offline
//! scheduling, the first maximal WS tiling in `n, m, k` order is used, with no search.

use super::engine::{self, Compute, Emitted, InUse, OutDecl, OutUse, Owner, Sems, SetDecl, SetRef, Step, Xfer};
use crate::gemm::{candidates, LoopOrder, Tiling, FIELD16};
use crate::{Error, Result};
use satkit_hw::isa::{Buffer, Instruction, Op, PruneOrder, VecOp, WeightFormat, COUNT_LIMIT};
use satkit_hw::{ArchConfig, Dataflow};
use satkit_sim::pe_array::{gemm_timing, GemmShape};
use satkit_sim::{Machine, Mode};

/// Candidates simulated exactly after the analytic ranking.
pub const SIMULATED_CANDIDATES: usize = 2;

/// A region of a buffer, in elements.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    pub base: u64,
    pub size: u64,
}

/// The buffer regions a pipeline may use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub act: Region,
    pub wgt: Region,
    pub acc: Region,
    pub master: Region,
}

/// What the lowering needs to know about the machine and the options, and the schedules
/// searched so far.
pub(crate) struct Ctx<'a> {
    pub arch: &'a ArchConfig,
    pub search: bool,
    pub interleave: bool,
    /// Searched schedules by GEMM shape: a layer shape that repeats (ResNet's blocks) is
    /// searched once. The key is the job with its DRAM addresses and owner cleared, and the
    /// budget; the value the chosen tiling, or the fused `(tn, pc, dataflows)`.
    pub searched: std::cell::RefCell<std::collections::HashMap<String, Searched>>,
}

/// A search result in [`Ctx::searched`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Searched {
    Gemm(Tiling),
    Fused(u64, u64, Dataflow, Dataflow),
}

impl Ctx<'_> {
    /// A search's result for `key`, searching with `search` on a miss.
    fn cached(&self, key: String, search: impl FnOnce() -> Result<Searched>) -> Result<Searched> {
        if let Some(hit) = self.searched.borrow().get(&key) {
            return Ok(*hit);
        }
        let found = search()?;
        self.searched.borrow_mut().insert(key, found);
        Ok(found)
    }
}

/// Geometry of an im2col operand: a conv, or a plain row-major matrix (`1 x 1` kernel).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conv {
    pub images: u64,
    pub h: u64,
    pub w: u64,
    pub c_in: u64,
    pub oh: u64,
    pub ow: u64,
    pub kh: u64,
    pub kw: u64,
    pub stride: u64,
    pub pad: u64,
    /// Channels per pixel in DRAM: `c_in`, or the whole tensor's channels when this is one
    /// group of a grouped conv (or one head's columns of a wider matrix).
    pub ld: u64,
}

impl Conv {
    /// A row-major `rows x cols` matrix seen as a 1x1 conv.
    pub fn matrix(rows: u64, cols: u64) -> Conv {
        Conv::columns(rows, cols, cols)
    }

    /// `cols` columns of a row-major matrix whose rows are `ld` elements long.
    pub fn columns(rows: u64, cols: u64, ld: u64) -> Conv {
        Conv { images: rows, h: 1, w: 1, c_in: cols, oh: 1, ow: 1, kh: 1, kw: 1, stride: 1, pad: 0, ld }
    }

    /// True when the im2col matrix is the input itself.
    pub fn is_identity(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }

    /// The backward-data pass of a stride-1 conv as a conv of its own: `dX` is `dY`
    /// (`oh x ow x c_out`) convolved with the kernel flipped in both directions, transposed in
    /// its channels, at padding `k - 1 - pad`. Its reduction runs over (kernel position,
    /// `C_out`), so BP's N:M groups stay along `C_out`, and it writes `dX` directly (no
    /// im2col-space gradient, no col2im). Only for "same" convs (stride 1, output as large as
    /// the input), whose transposed conv does exactly the analytical BP MACs; `None` for
    /// identity, strided and shrinking convs (a valid conv's transposed conv would also
    /// multiply its zero border).
    pub fn transposed(&self, c_out: u64) -> Option<Conv> {
        let ok = !self.is_identity()
            && self.stride == 1
            && self.kh == self.kw
            && self.oh == self.h
            && self.ow == self.w
            && self.ld == self.c_in;
        ok.then_some(Conv {
            images: self.images,
            h: self.oh,
            w: self.ow,
            c_in: c_out,
            oh: self.h,
            ow: self.w,
            kh: self.kh,
            kw: self.kw,
            stride: 1,
            pad: self.kh - 1 - self.pad,
            ld: c_out,
        })
    }

    /// DMAs loading rows `p0..p0+np` (output pixels), columns `k0..k0+nk` of the im2col
    /// matrix into a slot laid out with `sram_row_stride`.
    #[allow(clippy::too_many_arguments)]
    pub fn xfers(
        &self,
        base: u64,
        p0: u64,
        np: u64,
        k0: u64,
        nk: u64,
        buf: Buffer,
        sram_row_stride: u64,
        owner: Owner,
    ) -> Vec<Xfer> {
        let cin = self.c_in;
        let (b, rem) = (p0 / (self.oh * self.ow), p0 % (self.oh * self.ow));
        let (oy, ox) = (rem / self.ow, rem % self.ow);
        let row_stride = self.stride * self.ld;
        let total = self.images * self.h * self.w;
        (k0 / cin..=(k0 + nk - 1) / cin)
            .map(|kp| {
                let (i, j) = (kp / self.kw, kp % self.kw);
                let (c_lo, c_hi) = (k0.max(kp * cin) - kp * cin, (k0 + nk).min((kp + 1) * cin) - kp * cin);
                let iy = (oy * self.stride + i).saturating_sub(self.pad).min(self.h - 1);
                let ix = (ox * self.stride + j).saturating_sub(self.pad).min(self.w - 1);
                let mut pix = (b * self.h + iy) * self.w + ix;
                // Keep the whole transfer inside the tensor.
                let span = (np - 1) * self.stride + 1;
                if pix + span > total {
                    pix = total.saturating_sub(span);
                }
                Xfer {
                    buf,
                    off: kp * cin + c_lo - k0,
                    dram: base + (pix * self.ld + c_lo) * 2,
                    rows: np,
                    cols: c_hi - c_lo,
                    dram_row_stride: row_stride,
                    sram_row_stride,
                    owner,
                }
            })
            .collect()
    }
}

/// The input operand of a GEMM.
#[derive(Debug, Clone, Copy)]
pub(crate) enum InSrc {
    /// im2col rows (or a plain matrix), `M x K`.
    Im2col { conv: Conv, base: u64 },
    /// `input_t`: element `(m, k)` at `base + k*ld + m` (a row-major `K x M` matrix, as `dY`).
    Transposed { base: u64, ld: u64 },
}

/// The weight operand of a GEMM.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WSrc {
    /// `N` rows of stored K (compressed or dense), with indices when sparse.
    Stored { vals: u64, idx: u64, row_len: u64 },
    /// `weight_t`: element `(k, n)` at `base + k*ld + n`.
    DenseT { base: u64, ld: u64 },
    /// `weight_t` on an im2col matrix (rows = K of this GEMM).
    Im2colT { conv: Conv, base: u64 },
}

/// Where a GEMM's output goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OutDst {
    /// FP16 through the epilogue copy, row-major with leading dimension `ld`.
    Fp16 { base: u64, ld: u64 },
    /// FP32 straight from the accumulators.
    Fp32 { base: u64, ld: u64 },
}

impl OutDst {
    /// The store of output tile `(m0, n0)`, `rows x cols`, from its (staging or accumulator) slot.
    fn store(self, m0: u64, n0: u64, rows: u64, cols: u64, owner: Owner) -> Xfer {
        let (buf, base, ld, bytes) = match self {
            OutDst::Fp16 { base, ld } => (Buffer::Act, base, ld, 2),
            OutDst::Fp32 { base, ld } => (Buffer::Acc, base, ld, 4),
        };
        Xfer { buf, off: 0, dram: base + (m0 * ld + n0) * bytes, rows, cols, dram_row_stride: ld, sram_row_stride: cols, owner }
    }

    /// The same destination without its DRAM address (for schedule-cache keys).
    fn shape(self) -> OutDst {
        match self {
            OutDst::Fp16 { ld, .. } => OutDst::Fp16 { base: 0, ld },
            OutDst::Fp32 { ld, .. } => OutDst::Fp32 { base: 0, ld },
        }
    }
}

impl InSrc {
    /// The same operand without its DRAM address (for schedule-cache keys).
    fn shape(self) -> InSrc {
        match self {
            InSrc::Im2col { conv, .. } => InSrc::Im2col { conv, base: 0 },
            InSrc::Transposed { ld, .. } => InSrc::Transposed { base: 0, ld },
        }
    }
}

impl WSrc {
    /// The same operand without its DRAM addresses (for schedule-cache keys).
    fn shape(self) -> WSrc {
        match self {
            WSrc::Stored { row_len, .. } => WSrc::Stored { vals: 0, idx: 0, row_len },
            WSrc::DenseT { ld, .. } => WSrc::DenseT { base: 0, ld },
            WSrc::Im2colT { conv, .. } => WSrc::Im2colT { conv, base: 0 },
        }
    }
}

/// Independent GEMMs of one shape at regular DRAM offsets: `images x heads` of them (the
/// attention GEMMs, one per image and head; a grouped conv's groups as heads), group `(b, h)`
/// offset by `b * per_image[i] + h * per_head[i]` elements, `i` = input, weight, output (an
/// offset moves a sparse weight's values and indices alike).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Groups {
    pub images: u64,
    pub heads: u64,
    pub per_image: [u64; 3],
    pub per_head: [u64; 3],
}

impl Groups {
    /// A single GEMM.
    pub const ONE: Groups = Groups { images: 1, heads: 1, per_image: [0; 3], per_head: [0; 3] };

    fn count(&self) -> u64 {
        self.images * self.heads
    }

    /// Element offsets of group `g`'s input, weight and output.
    fn offsets(&self, g: u64) -> [u64; 3] {
        let (b, h) = (g / self.heads, g % self.heads);
        [0, 1, 2].map(|i| b * self.per_image[i] + h * self.per_head[i])
    }
}

/// One GEMM of the training step (or a group of equal ones, see [`Groups`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GemmJob {
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub weights: WeightFormat,
    pub input: InSrc,
    pub weight: WSrc,
    pub out: OutDst,
    pub groups: Groups,
    pub owner: Owner,
}

fn stored(w: WeightFormat, k: u64) -> u64 {
    w.stored_len(k as usize) as u64
}

fn key(a: u64, b: u64) -> u64 {
    (a << 32) | b
}

/// A tile key within group `g` of a grouped GEMM (tile coordinates stay below 2^24).
fn group_key(g: u64, a: u64, b: u64) -> u64 {
    key(a, b) ^ (g << 56)
}

fn interleave_for(ctx: &Ctx, d: Dataflow) -> u64 {
    if d == Dataflow::Os && ctx.interleave {
        u64::from(ctx.arch.array.accumulator_latency)
    } else {
        1
    }
}

impl GemmJob {
    /// The schedule-cache key: everything but DRAM addresses and the owner.
    fn shape_key(&self, budget: &Budget) -> String {
        let (input, weight, out) = (self.input.shape(), self.weight.shape(), self.out.shape());
        let owner = Owner { layer: 0, ..self.owner };
        format!("{:?} {budget:?}", GemmJob { input, weight, out, owner, ..*self })
    }

    fn weight_slot(&self, tn: u64, tk: u64) -> u64 {
        match self.weight {
            WSrc::Stored { .. } => tn * stored(self.weights, tk),
            _ => tn * tk,
        }
    }

    fn fits(&self, budget: &Budget, tm: u64, tn: u64, tk: u64) -> bool {
        let stage = if matches!(self.out, OutDst::Fp16 { .. }) { 2 * tm * tn } else { 0 };
        2 * tm * tk + stage <= budget.act.size
            && 2 * self.weight_slot(tn, tk) <= budget.wgt.size
            && 2 * tm * tn <= budget.acc.size
            && tm.max(tn).max(tk) <= FIELD16
    }

    /// Every maximal tiling, in a fixed order (WS first when the machine has it).
    pub fn tilings(&self, ctx: &Ctx, budget: &Budget) -> Result<Vec<Tiling>> {
        let arch = ctx.arch;
        let (r, c) = (u64::from(arch.array.rows), u64::from(arch.array.cols));
        let k_unit = r * arch.reduction_per_pe_step(self.weights.ratio());
        let mut dataflows: Vec<Dataflow> = arch.array.dataflows.iter().copied().filter(|&d| d != Dataflow::Is).collect();
        dataflows.sort_by_key(|&d| d != Dataflow::Ws);
        let mut out = Vec::new();
        for dataflow in dataflows {
            let interleave = interleave_for(ctx, dataflow);
            let n_unit = if dataflow == Dataflow::Os { c * interleave } else { c };
            let (ks, ns, ms) =
                (candidates(self.k, k_unit, FIELD16), candidates(self.n, n_unit, FIELD16), candidates(self.m, r, FIELD16));
            let grows = |list: &[u64], i: usize| list.get(i + 1).copied();
            for (ki, &tk) in ks.iter().enumerate() {
                for (ni, &tn) in ns.iter().enumerate() {
                    for (mi, &tm) in ms.iter().enumerate() {
                        let maximal = grows(&ks, ki).is_none_or(|k| !self.fits(budget, tm, tn, k))
                            && grows(&ns, ni).is_none_or(|n| !self.fits(budget, tm, n, tk))
                            && grows(&ms, mi).is_none_or(|m| !self.fits(budget, m, tn, tk));
                        if maximal && self.fits(budget, tm, tn, tk) {
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
                what: format!("GEMM {}x{}x{}", self.m, self.n, self.k),
                arch: arch.name.clone(),
                reason: "not even one array-sized tile fits its double-buffered regions".into(),
            });
        }
        Ok(out)
    }

    /// The pipeline steps of one tiling, with the region declarations.
    pub fn steps(&self, ctx: &Ctx, budget: &Budget, t: &Tiling) -> (Vec<SetDecl>, Vec<OutDecl>, Vec<Step>) {
        let (tm0, tn0, tk0) = (t.tm, t.tn, t.tk);
        let in_set = SetDecl { base: budget.act.base, slot: tm0 * tk0 };
        let w_set = SetDecl { base: budget.wgt.base, slot: self.weight_slot(tn0, tk0) };
        let stage = match self.out {
            OutDst::Fp16 { .. } => Some((Buffer::Act, SetDecl { base: budget.act.base + 2 * tm0 * tk0, slot: tm0 * tn0 })),
            OutDst::Fp32 { .. } => None,
        };
        let out_decl = OutDecl { buf: Buffer::Acc, set: SetDecl { base: budget.acc.base, slot: tm0 * tn0 }, stage };
        let mut tiles = Vec::new();
        let starts = |full: u64, tile: u64| (0..full.div_ceil(tile)).map(move |i| i * tile);
        let (outer, middle) = match t.order {
            LoopOrder::Nmk => ((self.n, tn0), (self.m, tm0)),
            LoopOrder::Mnk => ((self.m, tm0), (self.n, tn0)),
        };
        for g in 0..self.groups.count() {
            for o in starts(outer.0, outer.1) {
                for mid in starts(middle.0, middle.1) {
                    for k0 in starts(self.k, tk0) {
                        let (m0, n0) = if t.order == LoopOrder::Nmk { (mid, o) } else { (o, mid) };
                        tiles.push((g, m0, n0, k0));
                    }
                }
            }
        }
        let owner = self.owner;
        let job = *self;
        let steps = tiles
            .iter()
            .map(|&(g, m0, n0, k0)| {
                let (tm, tn, tk) = ((self.m - m0).min(tm0), (self.n - n0).min(tn0), (self.k - k0).min(tk0));
                let offsets = self.groups.offsets(g);
                let shift = |xfers: Vec<Xfer>, by: u64| -> Vec<Xfer> {
                    xfers.into_iter().map(|x| Xfer { dram: x.dram + by * elem_bytes(x.buf), ..x }).collect()
                };
                let loads_in = match self.input {
                    InSrc::Im2col { conv, base } => conv.xfers(base, m0, tm, k0, tk, Buffer::Act, tk, owner),
                    InSrc::Transposed { base, ld } => vec![Xfer {
                        buf: Buffer::Act,
                        off: 0,
                        dram: base + (k0 * ld + m0) * 2,
                        rows: tk,
                        cols: tm,
                        dram_row_stride: ld,
                        sram_row_stride: tm,
                        owner,
                    }],
                };
                let loads_w = match self.weight {
                    WSrc::Stored { vals, idx, row_len } => {
                        let stk = stored(self.weights, tk);
                        let at = n0 * row_len + stored(self.weights, k0);
                        let x = Xfer {
                            buf: Buffer::Wgt,
                            off: 0,
                            dram: vals + at * 2,
                            rows: tn,
                            cols: stk,
                            dram_row_stride: row_len,
                            sram_row_stride: stk,
                            owner,
                        };
                        let mut v = vec![x];
                        if self.weights.ratio().is_some() {
                            v.push(Xfer { buf: Buffer::Idx, dram: idx + at, ..x });
                        }
                        v
                    }
                    WSrc::DenseT { base, ld } => vec![Xfer {
                        buf: Buffer::Wgt,
                        off: 0,
                        dram: base + (k0 * ld + n0) * 2,
                        rows: tk,
                        cols: tn,
                        dram_row_stride: ld,
                        sram_row_stride: tn,
                        owner,
                    }],
                    WSrc::Im2colT { conv, base } => conv.xfers(base, k0, tk, n0, tn, Buffer::Wgt, tn, owner),
                };
                let (loads_in, loads_w) = (shift(loads_in, offsets[0]), shift(loads_w, offsets[1]));
                let last_k = k0 + tk0 >= self.k;
                let stores = if last_k { vec![self.out.store(m0, n0, tm, tn, owner)] } else { Vec::new() };
                let stores = shift(stores, offsets[2]);
                let t = *t;
                let make = Box::new(move |b: &engine::Bases| Op::Gemm {
                    dataflow: t.dataflow,
                    weights: job.weights,
                    accumulate: k0 > 0,
                    interleave: t.interleave as u32,
                    rows: tm as u32,
                    cols: tn as u32,
                    depth: tk as u32,
                    input: b.at(SetRef::In(0)) as u32,
                    weight: b.at(SetRef::In(1)) as u32,
                    output: b.at(SetRef::Out(0)) as u32,
                    input_t: matches!(job.input, InSrc::Transposed { .. }),
                    weight_t: matches!(job.weight, WSrc::DenseT { .. } | WSrc::Im2colT { .. }),
                });
                Step {
                    ins: vec![
                        Some(InUse { key: group_key(g, m0, k0), loads: loads_in }),
                        Some(InUse { key: group_key(g, n0, k0), loads: loads_w }),
                    ],
                    outs: vec![Some(OutUse {
                        key: group_key(g, m0, n0),
                        preload: Vec::new(),
                        stores,
                        epilogue_count: tm * tn,
                        owner,
                    })],
                    computes: vec![Compute { reads: vec![0, 1], writes: vec![0], make, owner }],
                }
            })
            .collect();
        let _ = ctx;
        (vec![in_set, w_set], vec![out_decl], steps)
    }

    /// Analytic estimate of a tiling: the larger of exact GEMM cycles and DRAM time.
    fn estimate(&self, ctx: &Ctx, t: &Tiling) -> f64 {
        let arch = ctx.arch;
        let tiles = |full: u64, tile: u64| full.div_ceil(tile);
        let (mt, nt, kt) = (tiles(self.m, t.tm), tiles(self.n, t.tn), tiles(self.k, t.tk));
        let g = GemmShape {
            dataflow: t.dataflow,
            weights: self.weights,
            rows: t.tm,
            cols: t.tn,
            depth: t.tk,
            interleave: t.interleave,
            input_t: matches!(self.input, InSrc::Transposed { .. }),
            weight_t: matches!(self.weight, WSrc::DenseT { .. } | WSrc::Im2colT { .. }),
        };
        let compute = gemm_timing(arch, &g).cycles * mt * nt * kt;
        let in_bytes = self.m * self.k * 2;
        let w_bytes = self.n * stored(self.weights, self.k) * if self.weights.ratio().is_some() { 3 } else { 2 };
        let reuse_in = if kt == 1 && t.order == LoopOrder::Mnk { 1 } else { nt };
        let reuse_w = if kt == 1 && t.order == LoopOrder::Nmk { 1 } else { mt };
        let out_bytes = self.m * self.n * if matches!(self.out, OutDst::Fp16 { .. }) { 2 } else { 4 };
        let bytes = in_bytes * reuse_in + w_bytes * reuse_w + out_bytes;
        let per_cycle = arch.dram_bytes_per_cycle_per_channel() * f64::from(arch.dram.channels);
        (compute as f64).max(bytes as f64 / per_cycle)
    }
}

/// Simulated cycles of a lone fragment (timing only).
fn simulate(arch: &ArchConfig, emitted: &Emitted) -> Result<u64> {
    let insns: Vec<Instruction> = emitted.iter().flatten().map(|(i, _)| *i).collect();
    Ok(Machine::new(arch, Mode::TimingOnly).run(&satkit_hw::isa::Program { insns })?.total_cycles)
}

/// Picks a tiling (search or default) and emits the GEMM fragment.
pub(crate) fn lower_gemm(ctx: &Ctx, budget: &Budget, job: &GemmJob, fenced: bool) -> Result<(Emitted, Tiling)> {
    let all = job.tilings(ctx, budget)?;
    let chosen = if ctx.search {
        let search = || {
            let mut ranked: Vec<(f64, Tiling)> = all.iter().map(|t| (job.estimate(ctx, t), *t)).collect();
            ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut best: Option<(u64, Tiling)> = None;
            // Every group has the same shape: time one.
            let one = GemmJob { groups: Groups::ONE, ..*job };
            for (_, t) in ranked.into_iter().take(SIMULATED_CANDIDATES) {
                let (ins, outs, steps) = one.steps(ctx, budget, &t);
                let cycles = simulate(ctx.arch, &engine::emit(&ins, &outs, &steps, &Sems::main(), false, false))?;
                if best.is_none_or(|(b, _)| cycles < b) {
                    best = Some((cycles, t));
                }
            }
            Ok(Searched::Gemm(best.expect("at least one candidate").1))
        };
        match ctx.cached(job.shape_key(budget), search)? {
            Searched::Gemm(t) => t,
            Searched::Fused(..) => unreachable!("GEMM keys hold GEMM tilings"),
        }
    } else {
        // No offline scheduling: a fixed schedule, the WS dataflow in NMK order with the
        // maximal tile that streams the most rows per stationary weight tile (WS amortizes
        // each weight preload and the array fill over `tm` rows), then the largest weight tile.
        let ws: Vec<Tiling> = all.iter().copied().filter(|t| t.dataflow == Dataflow::Ws && t.order == LoopOrder::Nmk).collect();
        ws.iter().copied().max_by_key(|t| (t.tm, t.tn * t.tk)).unwrap_or(all[0])
    };
    let (ins, outs, steps) = job.steps(ctx, budget, &chosen);
    Ok((engine::emit(&ins, &outs, &steps, &Sems::main(), fenced, true), chosen))
}

/// The fused BP+WU fragment of a weight layer (interleave mapping, mechanism b): for each
/// tile of `tn` reduction columns (K), P is walked in chunks of `pc` rows; each `dY` chunk is
/// loaded once and feeds both the BP GEMM (as input) and the WU GEMM (as `input_t`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FusedJob {
    pub p: u64,
    pub c_out: u64,
    pub k: u64,
    pub bp_weights: WeightFormat,
    pub dy: u64,
    pub w_bp: WSrc,
    pub x: InSrc,
    pub dx: OutDst,
    pub dw: OutDst,
    pub bp_owner: Owner,
    pub wu_owner: Owner,
}

impl FusedJob {
    /// The schedule-cache key: everything but DRAM addresses and the owners.
    fn shape_key(&self, budget: &Budget) -> String {
        let (w_bp, x, dx, dw) = (self.w_bp.shape(), self.x.shape(), self.dx.shape(), self.dw.shape());
        let (bp_owner, wu_owner) = (Owner { layer: 0, ..self.bp_owner }, Owner { layer: 0, ..self.wu_owner });
        format!("{:?} {budget:?}", FusedJob { dy: 0, w_bp, x, dx, dw, bp_owner, wu_owner, ..*self })
    }

    fn wbp_slot(&self, tn: u64) -> u64 {
        match self.w_bp {
            WSrc::Stored { .. } => tn * stored(self.bp_weights, self.c_out),
            _ => tn * self.c_out,
        }
    }

    fn fits(&self, budget: &Budget, tn: u64, pc: u64) -> bool {
        2 * pc * self.c_out + 2 * pc * tn <= budget.act.size
            && 2 * self.wbp_slot(tn) + 2 * pc * tn <= budget.wgt.size
            && 2 * pc * tn + 2 * self.c_out * tn <= budget.acc.size
            && tn.max(pc).max(self.c_out) <= FIELD16
    }

    fn steps(
        &self,
        budget: &Budget,
        tn0: u64,
        pc0: u64,
        dfs: (Dataflow, Dataflow),
        ils: (u64, u64),
    ) -> (Vec<SetDecl>, Vec<OutDecl>, Vec<Step>) {
        let act = budget.act.base;
        let ins = vec![
            SetDecl { base: act, slot: pc0 * self.c_out },
            SetDecl { base: budget.wgt.base, slot: self.wbp_slot(tn0) },
            SetDecl { base: budget.wgt.base + 2 * self.wbp_slot(tn0), slot: pc0 * tn0 },
        ];
        let outs = vec![
            OutDecl {
                buf: Buffer::Acc,
                set: SetDecl { base: budget.acc.base, slot: pc0 * tn0 },
                stage: Some((Buffer::Act, SetDecl { base: act + 2 * pc0 * self.c_out, slot: pc0 * tn0 })),
            },
            OutDecl {
                buf: Buffer::Acc,
                set: SetDecl { base: budget.acc.base + 2 * pc0 * tn0, slot: self.c_out * tn0 },
                stage: None,
            },
        ];
        let (bo, wo) = (self.bp_owner, self.wu_owner);
        let dy_conv = Conv::matrix(self.p, self.c_out);
        let mut steps = Vec::new();
        let job = *self;
        for n0 in (0..self.k.div_ceil(tn0)).map(|i| i * tn0) {
            let tn = (self.k - n0).min(tn0);
            for p0 in (0..self.p.div_ceil(pc0)).map(|i| i * pc0) {
                let pc = (self.p - p0).min(pc0);
                let last_p = p0 + pc0 >= self.p;
                let dy_loads = dy_conv.xfers(self.dy, p0, pc, 0, self.c_out, Buffer::Act, self.c_out, bo);
                let w_loads = match self.w_bp {
                    WSrc::Stored { vals, idx, row_len } => {
                        let x = Xfer {
                            buf: Buffer::Wgt,
                            off: 0,
                            dram: vals + n0 * row_len * 2,
                            rows: tn,
                            cols: row_len,
                            dram_row_stride: row_len,
                            sram_row_stride: row_len,
                            owner: bo,
                        };
                        let mut v = vec![x];
                        if self.bp_weights.ratio().is_some() {
                            v.push(Xfer { buf: Buffer::Idx, dram: idx + n0 * row_len, ..x });
                        }
                        v
                    }
                    WSrc::DenseT { base, ld } => vec![Xfer {
                        buf: Buffer::Wgt,
                        off: 0,
                        dram: base + n0 * 2,
                        rows: self.c_out,
                        cols: tn,
                        dram_row_stride: ld,
                        sram_row_stride: tn,
                        owner: bo,
                    }],
                    WSrc::Im2colT { .. } => unreachable!("the BP weight is a stored copy"),
                };
                let x_loads = match self.x {
                    InSrc::Im2col { conv, base } => conv.xfers(base, p0, pc, n0, tn, Buffer::Wgt, tn, wo),
                    InSrc::Transposed { .. } => unreachable!("X is an im2col operand"),
                };
                let store = |o: OutDst, m0: u64, rows: u64, owner: Owner| o.store(m0, n0, rows, tn, owner);
                let bp = Box::new(move |b: &engine::Bases| Op::Gemm {
                    dataflow: dfs.0,
                    weights: job.bp_weights,
                    accumulate: false,
                    interleave: ils.0 as u32,
                    rows: pc as u32,
                    cols: tn as u32,
                    depth: job.c_out as u32,
                    input: b.at(SetRef::In(0)) as u32,
                    weight: b.at(SetRef::In(1)) as u32,
                    output: b.at(SetRef::Out(0)) as u32,
                    input_t: false,
                    weight_t: matches!(job.w_bp, WSrc::DenseT { .. }),
                });
                let wu = Box::new(move |b: &engine::Bases| Op::Gemm {
                    dataflow: dfs.1,
                    weights: WeightFormat::Dense,
                    accumulate: p0 > 0,
                    interleave: ils.1 as u32,
                    rows: job.c_out as u32,
                    cols: tn as u32,
                    depth: pc as u32,
                    input: b.at(SetRef::In(0)) as u32,
                    weight: b.at(SetRef::In(2)) as u32,
                    output: b.at(SetRef::Out(1)) as u32,
                    input_t: true,
                    weight_t: true,
                });
                steps.push(Step {
                    ins: vec![
                        Some(InUse { key: key(n0, p0), loads: dy_loads }),
                        Some(InUse { key: n0, loads: w_loads }),
                        Some(InUse { key: key(n0, p0), loads: x_loads }),
                    ],
                    outs: vec![
                        Some(OutUse {
                            key: key(n0, p0),
                            preload: Vec::new(),
                            stores: vec![store(self.dx, p0, pc, bo)],
                            epilogue_count: pc * tn,
                            owner: bo,
                        }),
                        Some(OutUse {
                            key: n0,
                            preload: Vec::new(),
                            stores: if last_p { vec![store(self.dw, 0, self.c_out, wo)] } else { Vec::new() },
                            epilogue_count: 0,
                            owner: wo,
                        }),
                    ],
                    computes: vec![
                        Compute { reads: vec![0, 1], writes: vec![0], make: bp, owner: bo },
                        Compute { reads: vec![0, 2], writes: vec![1], make: wu, owner: wo },
                    ],
                });
            }
        }
        (ins, outs, steps)
    }
}

/// Lowers a fused BP+WU fragment, searching `(tn, pc)` and the dataflows when offline
/// scheduling is on. `None` when no tiling fits (the caller then lowers BP and WU apart).
pub(crate) fn lower_fused(ctx: &Ctx, budget: &Budget, job: &FusedJob, fenced: bool) -> Result<Option<Emitted>> {
    let arch = ctx.arch;
    let (r, c) = (u64::from(arch.array.rows), u64::from(arch.array.cols));
    let tns = candidates(job.k, c, FIELD16);
    let pcs = candidates(job.p, r * u64::from(arch.array.n_max), FIELD16);
    let mut shapes = Vec::new();
    for (i, &tn) in tns.iter().enumerate() {
        for (j, &pc) in pcs.iter().enumerate() {
            let maximal = tns.get(i + 1).is_none_or(|&n| !job.fits(budget, n, pc))
                && pcs.get(j + 1).is_none_or(|&p| !job.fits(budget, tn, p));
            if maximal && job.fits(budget, tn, pc) {
                shapes.push((tn, pc));
            }
        }
    }
    if shapes.is_empty() {
        return Ok(None);
    }
    let dfs: Vec<Dataflow> = arch.array.dataflows.iter().copied().filter(|&d| d != Dataflow::Is).collect();
    let mut options = Vec::new();
    for &(tn, pc) in &shapes {
        for &a in &dfs {
            for &b in &dfs {
                options.push((tn, pc, a, b));
            }
        }
    }
    let pick = if ctx.search {
        let search = || {
            let est = |&(tn, pc, a, b): &(u64, u64, Dataflow, Dataflow)| {
                let bp = GemmShape {
                    dataflow: a,
                    weights: job.bp_weights,
                    rows: pc,
                    cols: tn,
                    depth: job.c_out,
                    interleave: interleave_for(ctx, a),
                    input_t: false,
                    weight_t: matches!(job.w_bp, WSrc::DenseT { .. }),
                };
                let wu = GemmShape {
                    dataflow: b,
                    weights: WeightFormat::Dense,
                    rows: job.c_out,
                    cols: tn,
                    depth: pc,
                    interleave: interleave_for(ctx, b),
                    input_t: true,
                    weight_t: true,
                };
                let steps = job.k.div_ceil(tn) * job.p.div_ceil(pc);
                (gemm_timing(arch, &bp).cycles + gemm_timing(arch, &wu).cycles) * steps
            };
            let mut ranked = options.clone();
            ranked.sort_by_key(est);
            let mut best: Option<(u64, (u64, u64, Dataflow, Dataflow))> = None;
            for o in ranked.into_iter().take(SIMULATED_CANDIDATES) {
                let (ins, outs, steps) =
                    job.steps(budget, o.0, o.1, (o.2, o.3), (interleave_for(ctx, o.2), interleave_for(ctx, o.3)));
                let cycles = simulate(arch, &engine::emit(&ins, &outs, &steps, &Sems::main(), false, false))?;
                if best.is_none_or(|(b, _)| cycles < b) {
                    best = Some((cycles, o));
                }
            }
            let (tn, pc, a, b) = best.expect("a candidate").1;
            Ok(Searched::Fused(tn, pc, a, b))
        };
        match ctx.cached(job.shape_key(budget), search)? {
            Searched::Fused(tn, pc, a, b) => (tn, pc, a, b),
            Searched::Gemm(_) => unreachable!("fused keys hold fused schedules"),
        }
    } else {
        // No offline scheduling: both GEMMs in WS with the maximal `(tn, pc)` block that
        // streams the most BP rows (`pc`) per stationary weight tile.
        options
            .iter()
            .copied()
            .filter(|o| o.2 == Dataflow::Ws && o.3 == Dataflow::Ws)
            .max_by_key(|o| (o.1, o.0))
            .unwrap_or(options[0])
    };
    let (ins, outs, steps) =
        job.steps(budget, pick.0, pick.1, (pick.2, pick.3), (interleave_for(ctx, pick.2), interleave_for(ctx, pick.3)));
    Ok(Some(engine::emit(&ins, &outs, &steps, &Sems::main(), fenced, true)))
}

/// Where a vector operand lives within a stream step.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Loc {
    /// Input set `i`.
    In(usize),
    /// The output set.
    Out,
    /// The fixed scratch region in `acc`, at this offset.
    Scratch(u64),
}

/// One vector operation of a stream step; `count = rows * per_row`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VecSpec {
    pub op: VecOp,
    pub per_row: u64,
    pub dst: Loc,
    pub a: Loc,
    pub b: Loc,
    pub p: [u64; 4],
}

/// A tensor streamed through the vector unit: `rows` rows, each `row_len` elements, rows
/// `row_stride` elements apart in DRAM (`row_len` for a dense matrix, 0 for a parameter row
/// broadcast over the batch, more for a gather of the first `row_len` elements of longer rows).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stream {
    pub buf: Buffer,
    pub base: u64,
    pub row_len: u64,
    pub row_stride: u64,
    /// Extra elements per row the slot holds beyond the loaded `row_len` (a pooling band's
    /// line-buffer rows, see `PoolBands` in the step module); not loaded.
    pub halo: u64,
}

impl Stream {
    /// A dense row-major matrix of rows of `row_len` elements.
    pub fn rows(buf: Buffer, base: u64, row_len: u64) -> Stream {
        Stream { buf, base, row_len, row_stride: row_len, halo: 0 }
    }
}

/// A vector pass over `rows` rows: load each chunk of rows of every input, run `ops`, store
/// the output chunk.
#[derive(Debug, Clone)]
pub(crate) struct StreamJob {
    pub rows: u64,
    pub inputs: Vec<Stream>,
    pub output: Stream,
    /// Scratch elements in `acc` per row of a chunk (statistics), plus a fixed part.
    pub scratch: (u64, u64),
    pub ops: Vec<VecSpec>,
    /// Output elements per row the ops write (may exceed the stored `row_len`).
    pub out_slot_row: u64,
    /// The ops write the output chunk densely (row stride `row_len`) and then one more
    /// element, stored to this DRAM address (the loss after `softmax_xent`); needs the whole
    /// pass in one chunk.
    pub tail_store: Option<u64>,
    /// Also (or only) store each output row as a weight row `C_out x K` split into one
    /// `C_out x C_in` block per flipped kernel position (the dense BP copy of a transposed-conv BP).
    pub flipped_store: Option<FlippedStore>,
    pub owner: Owner,
}

/// The flipped-block layout of [`StreamJob::flipped_store`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlippedStore {
    pub positions: u64,
    pub c_in: u64,
    pub c_out: u64,
    pub base: u64,
    /// Store the plain rows too (at the output stream's address).
    pub rows_too: bool,
}

/// Bytes per element of a buffer's DRAM image.
fn elem_bytes(buf: Buffer) -> u64 {
    match buf {
        Buffer::Acc | Buffer::Master => 4,
        Buffer::Mask | Buffer::Idx => 1,
        _ => 2,
    }
}

/// Splits a transfer whose rows are longer than the 16-bit `cols` field into column pieces
/// (same rows and strides, each piece at most [`FIELD16`] columns), so every DMA encodes.
fn split_cols(x: Xfer) -> Vec<Xfer> {
    let elem = elem_bytes(x.buf);
    (0..x.cols.div_ceil(FIELD16))
        .map(|i| {
            let c0 = i * FIELD16;
            Xfer { off: x.off + c0, dram: x.dram + c0 * elem, cols: (x.cols - c0).min(FIELD16), ..x }
        })
        .collect()
}

/// Lowers a vector stream; chunks are as large as the double-buffered regions allow.
pub(crate) fn lower_stream(budget: &Budget, job: &StreamJob, fenced: bool) -> Result<Emitted> {
    let per_row: u64 =
        job.inputs.iter().filter(|s| s.buf == Buffer::Act).map(|s| s.row_len + s.halo).sum::<u64>() + job.out_slot_row;
    let acc_row: u64 = job.inputs.iter().filter(|s| s.buf == Buffer::Acc).map(|s| s.row_len).sum();
    let master_row: u64 = job.inputs.iter().filter(|s| s.buf == Buffer::Master).map(|s| s.row_len).sum();
    let mut chunk = (budget.act.size / (2 * per_row)).min(FIELD16).min(job.rows).min(COUNT_LIMIT / job.out_slot_row.max(1) / 4);
    while chunk > 0
        && (2 * chunk * acc_row + job.scratch.0 * chunk + job.scratch.1 > budget.acc.size
            || 2 * chunk * master_row > budget.master.size
            || job.ops.iter().any(|o| chunk * o.per_row >= COUNT_LIMIT))
    {
        chunk /= 2;
    }
    if chunk == 0 || (job.tail_store.is_some() && chunk < job.rows) {
        return Err(Error::NoTiling {
            what: format!("a vector pass over rows of {per_row} elements"),
            arch: "this machine".into(),
            reason: "one row of every operand does not fit the double-buffered regions".into(),
        });
    }
    let mut ins = Vec::new();
    let (mut act, mut acc, mut master) = (budget.act.base, budget.acc.base, budget.master.base);
    for s in &job.inputs {
        let at = match s.buf {
            Buffer::Acc => &mut acc,
            Buffer::Master => &mut master,
            _ => &mut act,
        };
        ins.push(SetDecl { base: *at, slot: chunk * (s.row_len + s.halo) });
        *at += 2 * chunk * (s.row_len + s.halo);
    }
    let outs = vec![OutDecl { buf: Buffer::Act, set: SetDecl { base: act, slot: chunk * job.out_slot_row }, stage: None }];
    let scratch = acc;
    let owner = job.owner;
    let steps = (0..job.rows.div_ceil(chunk))
        .map(|i| {
            let r0 = i * chunk;
            let rows = (job.rows - r0).min(chunk);
            let ins = job
                .inputs
                .iter()
                .map(|s| {
                    Some(InUse {
                        key: r0,
                        loads: split_cols(Xfer {
                            buf: s.buf,
                            off: 0,
                            dram: s.base + r0 * s.row_stride * if matches!(s.buf, Buffer::Acc | Buffer::Master) { 4 } else { 2 },
                            rows,
                            cols: s.row_len,
                            dram_row_stride: s.row_stride,
                            sram_row_stride: s.row_len + s.halo,
                            owner,
                        }),
                    })
                })
                .collect();
            let o = job.output;
            let mut stores = if job.flipped_store.is_none_or(|f| f.rows_too) {
                split_cols(Xfer {
                    buf: Buffer::Act,
                    off: 0,
                    dram: o.base + r0 * o.row_len * 2,
                    rows,
                    cols: o.row_len,
                    dram_row_stride: o.row_len,
                    sram_row_stride: if job.tail_store.is_some() { o.row_len } else { job.out_slot_row },
                    owner,
                })
            } else {
                Vec::new()
            };
            if let Some(f) = job.flipped_store {
                for position in 0..f.positions {
                    stores.extend(split_cols(Xfer {
                        buf: Buffer::Act,
                        off: position * f.c_in,
                        dram: f.base + ((f.positions - 1 - position) * f.c_out + r0) * f.c_in * 2,
                        rows,
                        cols: f.c_in,
                        dram_row_stride: f.c_in,
                        sram_row_stride: job.out_slot_row,
                        owner,
                    }));
                }
            }
            if let Some(dram) = job.tail_store {
                stores.push(Xfer {
                    buf: Buffer::Act,
                    off: rows * o.row_len,
                    dram,
                    rows: 1,
                    cols: 1,
                    dram_row_stride: 1,
                    sram_row_stride: 1,
                    owner,
                });
            }
            let outs = vec![Some(OutUse { key: r0, preload: Vec::new(), stores, epilogue_count: 0, owner })];
            let n_in = job.inputs.len();
            let bufs: Vec<Buffer> = job.inputs.iter().map(|s| s.buf).collect();
            let n_ops = job.ops.len();
            let computes = job
                .ops
                .iter()
                .enumerate()
                .map(|(op_index, spec)| {
                    let spec = *spec;
                    let bufs = bufs.clone();
                    let loc = move |l: Loc, b: &engine::Bases| match l {
                        Loc::In(i) => (bufs[i], b.at(SetRef::In(i)) as u32),
                        Loc::Out => (Buffer::Act, b.at(SetRef::Out(0)) as u32),
                        Loc::Scratch(off) => (Buffer::Acc, (scratch + off) as u32),
                    };
                    let reads: Vec<usize> = [spec.a, spec.b, spec.dst]
                        .iter()
                        .filter_map(|l| if let Loc::In(i) = l { Some(*i) } else { None })
                        .collect();
                    let mut reads = reads;
                    // The step's last op releases every input slot, read or not.
                    if op_index + 1 == n_ops {
                        reads.extend(0..n_in);
                    }
                    reads.sort_unstable();
                    reads.dedup();
                    let make = Box::new(move |b: &engine::Bases| {
                        let ((dst_buf, dst), (a_buf, a), (b_buf, bb)) = (loc(spec.dst, b), loc(spec.a, b), loc(spec.b, b));
                        Op::Vec {
                            op: spec.op,
                            count: (rows * spec.per_row) as u32,
                            dst_buf,
                            dst,
                            a_buf,
                            a,
                            b_buf,
                            b: bb,
                            p0: spec.p[0] as u32,
                            p1: spec.p[1] as u32,
                            p2: spec.p[2] as u32,
                            p3: spec.p[3] as u32,
                        }
                    });
                    Compute { reads, writes: vec![0], make, owner }
                })
                .collect();
            Step { ins, outs, computes }
        })
        .collect::<Vec<_>>();
    Ok(engine::emit(&ins, &outs, &steps, &Sems::main(), fenced, true))
}

/// DRAM addresses of a weight layer's training state.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct WeightMap {
    /// FP32 master weights, `C_out x K`.
    pub master: u64,
    /// FP32 momentum.
    pub momentum: u64,
    /// FP32 weight gradient.
    pub grad: u64,
    /// Forward mask, one byte per weight (N:M FF only).
    pub mask: u64,
    /// FF copy values (`C_out` rows of stored K) and indices.
    pub ff_vals: u64,
    /// FF copy indices.
    pub ff_idx: u64,
    /// BP copy values and indices (N:M BP only): rows of stored `C_out`, one per column of
    /// `W`, in K order (kernel position, input channel); for a layer whose BP is a transposed
    /// conv ([`Conv::transposed`]) in (input channel, flipped kernel position) order instead,
    /// so each input channel's row is the reduction of its BP GEMM column.
    pub bp_vals: u64,
    /// BP copy indices.
    pub bp_idx: u64,
    /// Dense FP16 copy read by a dense BP: `C_out x K`, or for a transposed-conv BP one
    /// `C_out x C_in` block per flipped kernel position.
    pub dense: u64,
}

/// A weight layer's update and pre-generation parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WeightJob {
    pub c_out: u64,
    pub k: u64,
    pub ff: WeightFormat,
    pub bp: WeightFormat,
    pub map: WeightMap,
    pub hyper: u64,
    /// `(kernel positions, C_in)` of a layer whose BP is a transposed conv: its BP copies use
    /// the flipped layout of [`WeightMap::bp_vals`] and [`WeightMap::dense`].
    pub bp_flip: Option<(u64, u64)>,
    pub update_owner: Owner,
    pub prune_owner: Owner,
}

impl WeightJob {
    /// True when BP reads the dense FP16 copy (a dense BP weight).
    pub fn needs_dense_copy(&self) -> bool {
        self.bp.ratio().is_none()
    }

    /// Where columns `k0..k0+tk` of `W` go as rows of the BP copy: runs of
    /// `(first column offset in the chunk, columns, first row, row step)`.
    fn bp_rows(&self, k0: u64, tk: u64) -> Vec<(u64, u64, u64, u64)> {
        let Some((positions, c_in)) = self.bp_flip else { return vec![(0, tk, k0, 1)] };
        let mut runs = Vec::new();
        let mut col = k0;
        while col < k0 + tk {
            let (position, channel) = (col / c_in, col % c_in);
            let len = (c_in - channel).min(k0 + tk - col);
            runs.push((col - k0, len, channel * positions + (positions - 1 - position), positions));
            col += len;
        }
        runs
    }
}

/// The WUVE update of one layer, streamed in chunks: load `dW` (acc), `W`, momentum and mask
/// (master), update, store `W` and momentum.
pub(crate) fn lower_update(budget: &Budget, job: &WeightJob, fenced: bool) -> Result<Emitted> {
    let total = job.c_out * job.k;
    // Master holds the double-buffered hyperparameters (8 elements) and two slots of weights
    // plus momentum (4 x chunk); acc holds two slots of dW.
    let chunk = (budget.master.size.saturating_sub(8) / 4).min(budget.acc.size / 2).min(FIELD16 * 64).min(total);
    if chunk == 0 {
        return Err(Error::NoTiling {
            what: format!("the update of a {} x {} weight", job.c_out, job.k),
            arch: "this machine".into(),
            reason: "not one element of weight, momentum and gradient fits the double-buffered regions".into(),
        });
    }
    // Chunks are whole rows of at most FIELD16 columns (and at most the chunk: a row longer
    // than the chunk is split into column tiles), so one DMA moves each operand.
    let cols = job.k.min(FIELD16).min(chunk);
    let rows_per = (chunk / cols).clamp(1, FIELD16);
    let chunk = rows_per * cols;
    let ins = vec![SetDecl { base: budget.acc.base, slot: chunk }, SetDecl { base: budget.master.base, slot: 4 }];
    let outs = vec![OutDecl { buf: Buffer::Master, set: SetDecl { base: budget.master.base + 8, slot: 2 * chunk }, stage: None }];
    let owner = job.update_owner;
    let mask = job.ff.ratio().is_some();
    let col_tiles = job.k.div_ceil(cols);
    let mut steps = Vec::new();
    for r0 in (0..job.c_out.div_ceil(rows_per)).map(|i| i * rows_per) {
        for c0 in (0..col_tiles).map(|i| i * cols) {
            let (rows, w) = ((job.c_out - r0).min(rows_per), (job.k - c0).min(cols));
            let n = rows * w;
            let at = r0 * job.k + c0;
            let x = |buf, off, base: u64, e: u64| Xfer {
                buf,
                off,
                dram: base + at * e,
                rows,
                cols: w,
                dram_row_stride: job.k,
                sram_row_stride: w,
                owner,
            };
            let mut preload = vec![x(Buffer::Master, 0, job.map.master, 4), x(Buffer::Master, chunk, job.map.momentum, 4)];
            if mask {
                preload.push(x(Buffer::Mask, 0, job.map.mask, 1));
            }
            let stores = vec![x(Buffer::Master, 0, job.map.master, 4), x(Buffer::Master, chunk, job.map.momentum, 4)];
            let hyper = Xfer {
                buf: Buffer::Master,
                off: 0,
                dram: job.hyper,
                rows: 1,
                cols: 4,
                dram_row_stride: 4,
                sram_row_stride: 4,
                owner,
            };
            let make = Box::new(move |b: &engine::Bases| {
                let io = b.at(SetRef::Out(0)) as u32;
                Op::Update {
                    count: n as u32,
                    weight: io,
                    momentum: io + chunk as u32,
                    grad: b.at(SetRef::In(0)) as u32,
                    use_mask: mask,
                    mask: io,
                    hyper: b.at(SetRef::In(1)) as u32,
                }
            });
            steps.push(Step {
                ins: vec![
                    Some(InUse { key: at, loads: vec![x(Buffer::Acc, 0, job.map.grad, 4)] }),
                    Some(InUse { key: 0, loads: vec![hyper] }),
                ],
                outs: vec![Some(OutUse { key: at, preload, stores, epilogue_count: 0, owner })],
                computes: vec![Compute { reads: vec![0, 1], writes: vec![0], make, owner }],
            });
        }
    }
    Ok(engine::emit(&ins, &outs, &steps, &Sems::main(), fenced, true))
}

/// The pre-generation steps of one N:M layer: per chunk of `tk` columns of K, load the
/// updated FP32 weights, prune them on the SORE in FF order (writing the mask) and, for BDWP,
/// in BP order, and store the compressed copies and the mask. One output set spans the
/// master region (weights, mask) and the weight region (copies): each slot of it is an
/// offset into both, so one pair of semaphores guards both.
pub(crate) fn prune_steps(budget: &Budget, job: &WeightJob, uid: u64) -> Result<(Vec<SetDecl>, Vec<OutDecl>, Vec<Step>)> {
    let slot = (budget.master.size / 2).min(budget.wgt.size / 2);
    let m = job.ff.ratio().map_or(1, |r| u64::from(r.m));
    let bp_part = |tk: u64| if job.bp.ratio().is_some() { tk * stored(job.bp, job.c_out) } else { 0 };
    let too_big = |tk: u64| job.c_out * tk > slot || job.c_out * stored(job.ff, tk) + bp_part(tk) > slot;
    let mut tk0 = job.k.min(FIELD16);
    while tk0 > m && too_big(tk0) {
        tk0 = ((tk0 / 2).max(m) / m) * m;
    }
    // Whole columns (all C_out rows) are pruned at once: BP order groups down them.
    if too_big(tk0) {
        return Err(Error::NoTiling {
            what: format!("the pre-generation of a {} x {} weight", job.c_out, job.k),
            arch: "this machine".into(),
            reason: format!("{} whole columns of {} rows do not fit half the master or weight region", tk0, job.c_out),
        });
    }
    let (mb, wb) = (budget.master.base, budget.wgt.base);
    let owner = job.prune_owner;
    let outs = vec![OutDecl { buf: Buffer::Master, set: SetDecl { base: 0, slot }, stage: None }];
    let row_ff = stored(job.ff, job.k);
    let mut steps = Vec::new();
    for k0 in (0..job.k.div_ceil(tk0)).map(|i| i * tk0) {
        let tk = (job.k - k0).min(tk0);
        let (sff, sbp) = (stored(job.ff, tk), stored(job.bp, job.c_out));
        let fp = job.c_out * sff;
        let load = Xfer {
            buf: Buffer::Master,
            off: mb,
            dram: job.map.master + k0 * 4,
            rows: job.c_out,
            cols: tk,
            dram_row_stride: job.k,
            sram_row_stride: tk,
            owner,
        };
        let ff_store = Xfer {
            buf: Buffer::Wgt,
            off: wb,
            dram: job.map.ff_vals + stored(job.ff, k0) * 2,
            rows: job.c_out,
            cols: sff,
            dram_row_stride: row_ff,
            sram_row_stride: sff,
            owner,
        };
        let mut stores = vec![
            Xfer { buf: Buffer::Mask, dram: job.map.mask + k0, ..load },
            ff_store,
            Xfer { buf: Buffer::Idx, dram: job.map.ff_idx + stored(job.ff, k0), ..ff_store },
        ];
        if job.bp.ratio().is_some() {
            for (offset, columns, row, step) in job.bp_rows(k0, tk) {
                let bp = Xfer {
                    buf: Buffer::Wgt,
                    off: wb + fp + offset * sbp,
                    dram: job.map.bp_vals + row * sbp * 2,
                    rows: columns,
                    cols: sbp,
                    dram_row_stride: step * sbp,
                    sram_row_stride: sbp,
                    owner,
                };
                stores.push(bp);
                stores.push(Xfer { buf: Buffer::Idx, dram: job.map.bp_idx + row * sbp, ..bp });
            }
        }
        let (c_out, ffw, bpw) = (job.c_out, job.ff, job.bp);
        let mut computes = vec![Compute {
            reads: vec![],
            writes: vec![0],
            make: Box::new(move |b: &engine::Bases| Op::Prune {
                order: PruneOrder::Ff,
                nm: ffw,
                rows: c_out as u32,
                cols: tk as u32,
                src: (b.at(SetRef::Out(0)) + mb) as u32,
                dst: (b.at(SetRef::Out(0)) + wb) as u32,
                write_mask: true,
                mask: (b.at(SetRef::Out(0)) + mb) as u32,
            }),
            owner,
        }];
        if bpw.ratio().is_some() {
            computes.push(Compute {
                reads: vec![],
                writes: vec![0],
                make: Box::new(move |b: &engine::Bases| Op::Prune {
                    order: PruneOrder::Bp,
                    nm: bpw,
                    rows: c_out as u32,
                    cols: tk as u32,
                    src: (b.at(SetRef::Out(0)) + mb) as u32,
                    dst: (b.at(SetRef::Out(0)) + wb + fp) as u32,
                    write_mask: false,
                    mask: 0,
                }),
                owner,
            });
        }
        steps.push(Step {
            ins: vec![],
            outs: vec![Some(OutUse { key: key(uid, k0), preload: vec![load], stores, epilogue_count: 0, owner })],
            computes,
        });
    }
    Ok((Vec::new(), outs, steps))
}

/// Emits prune steps as one fragment on the given semaphores.
pub(crate) fn emit_prune(
    ins: &[SetDecl],
    outs: &[OutDecl],
    steps: &[Step],
    sems: &Sems,
    fenced: bool,
    fence_next: bool,
) -> Emitted {
    engine::emit(ins, outs, steps, sems, fenced, fence_next)
}
