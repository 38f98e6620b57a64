//! The fragment engine: turns a list of pipeline steps (loads, compute, stores) into
//! instructions with the semaphores that make them overlap safely.
//!
//! A **fragment** is a sequence of [`Step`]s over a fixed set of double-buffered regions
//! ("sets"). An *input* set holds tiles that are loaded and then read; an *output* set holds
//! tiles that computes write (optionally after a preload) and that stores drain, optionally
//! through an FP32 -> FP16 `copy` epilogue on the vector unit into a staging slot.
//! Tile `t` of a set lives in slot `t % 2`.
//!
//! **Synchronization** (one semaphore per role, from a [`Sems`] allocation):
//! - `loaded`: a step's last load signals it; the step's first compute waits on it (one
//!   semaphore per compute unit); computes of one step run on one unit, so its queue orders them;
//! - `in_free[s]`: the last compute reading a tile of input set `s` signals it, only when tile
//!   `t + 2` of that set is loaded later in the fragment, whose first load waits on it;
//! - `out_ready[o]` / `staged[o]` / `out_free[o]`: the last compute writing an output tile
//!   signals `ready`; the epilogue copy waits `ready` and signals `staged`; the tile's first
//!   store waits on the latest of those; its last store signals `free` when tile `t + 2`
//!   exists, whose first preload or first compute waits on it. A tile without stores is freed
//!   by its last compute.
//! - `fence`: the fragment's first load waits on the previous fragment's last store (which
//!   completes after every instruction of that fragment, since every compute's result reaches
//!   a store through in-order queues).
//!
//! Every signal is consumed by exactly one later wait and every wait refers to an earlier
//! signal, so tokens balance within each fragment and no program built from fragments can
//! deadlock: [`check_sync`] verifies both properties on a whole program.

use satkit_hw::isa::{Buffer, Instruction, Op, Phase, Program, Unit, SEMAPHORES};

/// Who an instruction works for: a layer and a phase of the training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// Index of the layer in the model.
    pub layer: u32,
    /// Phase tag.
    pub phase: Phase,
}

/// One DMA transfer, with the buffer address relative to its set's current slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Xfer {
    pub buf: Buffer,
    pub off: u64,
    pub dram: u64,
    pub rows: u64,
    pub cols: u64,
    pub dram_row_stride: u64,
    pub sram_row_stride: u64,
    pub owner: Owner,
}

/// Where a compute operand lives: the current slot of a set.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SetRef {
    In(usize),
    Out(usize),
}

/// Current slot bases, by set.
pub(crate) struct Bases {
    ins: Vec<u64>,
    outs: Vec<u64>,
}

impl Bases {
    /// Base of a set's current slot.
    pub fn at(&self, r: SetRef) -> u64 {
        match r {
            SetRef::In(i) => self.ins[i],
            SetRef::Out(o) => self.outs[o],
        }
    }
}

/// An operation whose addresses depend on the slots in use.
pub(crate) type MakeOp = Box<dyn Fn(&Bases) -> Op>;

/// One compute of a step.
pub(crate) struct Compute {
    pub reads: Vec<usize>,
    pub writes: Vec<usize>,
    pub make: MakeOp,
    pub owner: Owner,
}

/// A tile of an input set used by a step.
pub(crate) struct InUse {
    pub key: u64,
    pub loads: Vec<Xfer>,
}

/// A tile of an output set written by a step.
pub(crate) struct OutUse {
    pub key: u64,
    /// Loads into the tile before its first write (only on its first step).
    pub preload: Vec<Xfer>,
    /// Stores when the tile completes (on its last step).
    pub stores: Vec<Xfer>,
    /// Elements the epilogue converts (output sets with an epilogue).
    pub epilogue_count: u64,
    /// Owner of the epilogue copy.
    pub owner: Owner,
}

/// One pipeline step.
pub(crate) struct Step {
    pub ins: Vec<Option<InUse>>,
    pub outs: Vec<Option<OutUse>>,
    pub computes: Vec<Compute>,
}

/// A double-buffered region: two slots of `slot` elements from `base`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetDecl {
    pub base: u64,
    pub slot: u64,
}

/// An output set, with an optional FP16 staging region for the epilogue copy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutDecl {
    pub buf: Buffer,
    pub set: SetDecl,
    pub stage: Option<(Buffer, SetDecl)>,
}

/// The semaphores a fragment uses. `loaded` has one semaphore per consuming unit, so a token
/// meant for one unit's queue head is never taken by another unit's; the SORE's is shared by
/// the two pipelines because only one of them runs SORE work (pre-generation on: only the
/// pre-generation pipeline; off: only the main one).
#[derive(Debug, Clone)]
pub(crate) struct Sems {
    pub fence: Option<u8>,
    pub pool: Vec<u8>,
}

/// The `ready` semaphore of an output set with an epilogue (consumed by the vector unit).
const EPILOGUE_READY: u8 = 13;

/// `loaded` semaphore of the unit that runs a step's first compute.
fn loaded(unit: Unit) -> u8 {
    match unit {
        Unit::Tensor => 2,
        Unit::Vector => 3,
        Unit::Wuve => 4,
        Unit::Sore => 5,
        Unit::Load | Unit::Store => unreachable!("computes run on compute units"),
    }
}

impl Sems {
    /// The main pipeline: `fence` 1, `loaded` 2 to 5, the epilogue's `ready` 13 (the only
    /// `ready` a vector copy consumes, so no store-side token can reach it), roles 6 to 12.
    pub fn main() -> Self {
        Sems { fence: Some(1), pool: (6..=12).collect() }
    }
    /// The pre-generation pipeline (SORE only), disjoint from [`Sems::main`]: roles 14, 15.
    pub fn pregen() -> Self {
        Sems { fence: None, pool: vec![14, 15] }
    }
}

fn add_wait(i: Instruction, s: u8) -> Instruction {
    assert!(i.header.wait.contains(&0), "compiler bug: more than three waits on {i}");
    i.wait(s)
}

fn add_signal(i: Instruction, s: u8) -> Instruction {
    assert!(i.header.signal.contains(&0), "compiler bug: more than three signals on {i}");
    i.signal(s)
}

fn xfer_op(x: &Xfer, base: u64, load: bool) -> Instruction {
    let (buf, sram, dram, rows, cols) = (x.buf, (base + x.off) as u32, x.dram, x.rows as u32, x.cols as u32);
    let (dram_row_stride, dram_col_stride, sram_row_stride) = (x.dram_row_stride as u32, 1, x.sram_row_stride as u32);
    let op = if load {
        Op::Load { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride }
    } else {
        Op::Store { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride }
    };
    Instruction::new(op).tag(x.owner.phase)
}

/// The emitted instructions of one fragment, grouped by step.
pub(crate) type Emitted = Vec<Vec<(Instruction, Owner)>>;

/// Emits a fragment. `fenced` makes its first load wait on the fence (the previous fragment's
/// last store signals it when `fence_next` held there); `fence_next` makes its last store
/// signal the fence for the next fragment.
pub(crate) fn emit(ins: &[SetDecl], outs: &[OutDecl], steps: &[Step], sems: &Sems, fenced: bool, fence_next: bool) -> Emitted {
    // Semaphore roles.
    let mut pool = sems.pool.iter().copied();
    let mut take = || pool.next().expect("compiler bug: a fragment needs more semaphores than its allocation");
    let in_free: Vec<u8> = ins.iter().map(|_| take()).collect();
    let out_free: Vec<u8> = outs.iter().map(|_| take()).collect();
    assert!(outs.iter().filter(|o| o.stage.is_some()).count() <= 1, "compiler bug: one epilogue per fragment");
    let out_ready: Vec<u8> = outs.iter().map(|o| if o.stage.is_some() { EPILOGUE_READY } else { take() }).collect();
    let staged: Vec<Option<u8>> = outs.iter().map(|o| o.stage.map(|_| take())).collect();
    // Tile numbering: a new tile whenever the key changes from the set's previous use.
    let (mut in_tiles, mut out_tiles) = (vec![Vec::new(); ins.len()], vec![Vec::new(); outs.len()]);
    let (mut in_count, mut out_count) = (vec![0u64; ins.len()], vec![0u64; outs.len()]);
    let (mut in_last_key, mut out_last_key) = (vec![None; ins.len()], vec![None; outs.len()]);
    for step in steps {
        for (s, u) in step.ins.iter().enumerate() {
            in_tiles[s].push(u.as_ref().map(|u| {
                let new = in_last_key[s] != Some(u.key);
                if new {
                    in_count[s] += 1;
                    in_last_key[s] = Some(u.key);
                }
                (in_count[s] - 1, new)
            }));
        }
        for (o, u) in step.outs.iter().enumerate() {
            out_tiles[o].push(u.as_ref().map(|u| {
                let new = out_last_key[o] != Some(u.key);
                if new {
                    out_count[o] += 1;
                    out_last_key[o] = Some(u.key);
                }
                (out_count[o] - 1, new)
            }));
        }
    }
    // Last use of a tile: no later step uses the same tile number.
    let last_use =
        |tiles: &Vec<Option<(u64, bool)>>, i: usize, t: u64| tiles[i + 1..].iter().flatten().next().is_none_or(|&(n, _)| n != t);
    let mut out = Vec::with_capacity(steps.len());
    let mut first_load = fenced && sems.fence.is_some();
    let total_steps = steps.len();
    let mut last_store: Option<(usize, usize)> = None;
    for (i, step) in steps.iter().enumerate() {
        let mut insns: Vec<(Instruction, Owner)> = Vec::new();
        let bases = Bases {
            ins: ins.iter().enumerate().map(|(s, d)| in_tiles[s][i].map_or(0, |(t, _)| d.base + (t % 2) * d.slot)).collect(),
            outs: outs
                .iter()
                .enumerate()
                .map(|(o, d)| out_tiles[o][i].map_or(0, |(t, _)| d.set.base + (t % 2) * d.set.slot))
                .collect(),
        };
        // Loads.
        let mut out_free_waited = vec![false; outs.len()];
        for (s, u) in step.ins.iter().enumerate() {
            let (Some(u), Some((t, true))) = (u, in_tiles[s][i]) else { continue };
            for (j, x) in u.loads.iter().enumerate() {
                let mut insn = xfer_op(x, bases.ins[s], true);
                if j == 0 && t >= 2 {
                    insn = add_wait(insn, in_free[s]);
                }
                if first_load {
                    insn = add_wait(insn, sems.fence.expect("checked"));
                    first_load = false;
                }
                insns.push((insn, x.owner));
            }
        }
        for (o, u) in step.outs.iter().enumerate() {
            let (Some(u), Some((t, true))) = (u, out_tiles[o][i]) else { continue };
            for (j, x) in u.preload.iter().enumerate() {
                let mut insn = xfer_op(x, bases.outs[o], true);
                if j == 0 && t >= 2 {
                    insn = add_wait(insn, out_free[o]);
                    out_free_waited[o] = true;
                }
                if first_load {
                    insn = add_wait(insn, sems.fence.expect("checked"));
                    first_load = false;
                }
                insns.push((insn, x.owner));
            }
        }
        let had_loads = !insns.is_empty();
        let first_unit = step.computes.first().map(|c| (c.make)(&bases).unit());
        if let (Some((last, _)), Some(unit)) = (insns.last_mut(), first_unit) {
            *last = add_signal(*last, loaded(unit));
        }
        // Computes.
        for (c, comp) in step.computes.iter().enumerate() {
            let mut insn = Instruction::new((comp.make)(&bases)).tag(comp.owner.phase);
            if c == 0 && had_loads {
                insn = add_wait(insn, loaded(insn.op.unit()));
            }
            for &o in &comp.writes {
                let first_writer = step.computes[..c].iter().all(|p| !p.writes.contains(&o));
                if let Some((t, true)) = out_tiles[o][i] {
                    if first_writer && t >= 2 && !out_free_waited[o] {
                        insn = add_wait(insn, out_free[o]);
                        out_free_waited[o] = true;
                    }
                }
            }
            for &s in &comp.reads {
                let last_reader = step.computes[c + 1..].iter().all(|p| !p.reads.contains(&s));
                let (t, _) = in_tiles[s][i].expect("a compute reads a set its step uses");
                if last_reader && last_use(&in_tiles[s], i, t) && t + 2 < in_count[s] {
                    insn = add_signal(insn, in_free[s]);
                }
            }
            for &o in &comp.writes {
                let last_writer = step.computes[c + 1..].iter().all(|p| !p.writes.contains(&o));
                let (t, _) = out_tiles[o][i].expect("a compute writes a set its step uses");
                if last_writer && last_use(&out_tiles[o], i, t) {
                    let stores = step.outs[o].as_ref().is_some_and(|u| !u.stores.is_empty());
                    if stores {
                        insn = add_signal(insn, out_ready[o]);
                    } else if t + 2 < out_count[o] {
                        insn = add_signal(insn, out_free[o]);
                    }
                }
            }
            insns.push((insn, comp.owner));
        }
        // Epilogues and stores of completed tiles.
        for (o, u) in step.outs.iter().enumerate() {
            let (Some(u), Some((t, _))) = (u, out_tiles[o][i]) else { continue };
            if u.stores.is_empty() || !last_use(&out_tiles[o], i, t) {
                continue;
            }
            let mut ready = out_ready[o];
            let mut store_base = bases.outs[o];
            if let (Some((stage_buf, stage)), Some(staged_sem)) = (outs[o].stage, staged[o]) {
                let stage_addr = stage.base + (t % 2) * stage.slot;
                let copy = Op::Vec {
                    op: satkit_hw::isa::VecOp::Copy,
                    count: u.epilogue_count as u32,
                    dst_buf: stage_buf,
                    dst: stage_addr as u32,
                    a_buf: outs[o].buf,
                    a: bases.outs[o] as u32,
                    b_buf: outs[o].buf,
                    b: bases.outs[o] as u32,
                    p0: 0,
                    p1: 0,
                    p2: 0,
                    p3: 0,
                };
                let insn = Instruction::new(copy).tag(u.owner.phase).wait(ready).signal(staged_sem);
                insns.push((insn, u.owner));
                ready = staged_sem;
                store_base = stage_addr;
            }
            let k = u.stores.len();
            for (j, x) in u.stores.iter().enumerate() {
                let mut insn = xfer_op(x, store_base, false);
                if j == 0 {
                    insn = add_wait(insn, ready);
                }
                if j + 1 == k && t + 2 < out_count[o] {
                    insn = add_signal(insn, out_free[o]);
                }
                last_store = Some((i, insns.len()));
                insns.push((insn, x.owner));
            }
        }
        out.push(insns);
    }
    if fence_next {
        let (i, j) = last_store.expect("compiler bug: a fragment that fences the next one has no store");
        let fence = sems.fence.expect("fence_next needs a fence semaphore");
        out[i][j].0 = add_signal(out[i][j].0, fence);
    }
    debug_assert_eq!(out.len(), total_steps);
    out
}

/// Checks a whole program's synchronization: every wait is covered by signals of earlier
/// instructions not yet consumed (so waits never refer to later instructions, which is what
/// rules out deadlock with in-order queues), and no semaphore ends with unconsumed tokens
/// except those listed in `leftover_ok`. Returns the first violation.
pub fn check_sync(program: &Program, leftover_ok: &[u8]) -> Result<(), String> {
    let mut tokens = [0i64; SEMAPHORES];
    for (i, insn) in program.insns.iter().enumerate() {
        for &s in insn.header.wait.iter().filter(|&&s| s != 0) {
            tokens[usize::from(s)] -= 1;
            if tokens[usize::from(s)] < 0 {
                return Err(format!("instruction {i} ({insn}) waits on semaphore {s} that no earlier instruction signals"));
            }
        }
        for &s in insn.header.signal.iter().filter(|&&s| s != 0) {
            tokens[usize::from(s)] += 1;
        }
    }
    for (s, &t) in tokens.iter().enumerate() {
        if t != 0 && !leftover_ok.contains(&(s as u8)) {
            return Err(format!("semaphore {s} ends with {t} unconsumed token(s)"));
        }
    }
    Ok(())
}

/// The side pipeline's fence. The side pipeline runs a backward layer's WU, update and dense
/// BP copy next to the main pipeline's vector work (see the step module); its fragments are
/// emitted on [`Sems::main`] and renamed by [`to_side`]: fence 1 -> 23, roles 6..=12 ->
/// 16..=22. `loaded` (2 to 5) and the epilogue's `ready` (13, unused on the side) are shared:
/// fragments are spliced whole steps at a time, so each unit still consumes the `loaded`
/// tokens in the order its loads produce them.
pub(crate) const SIDE_FENCE: u8 = 23;
/// Main -> side: the main fragment that completes a layer's BP signals it on its last store;
/// the layer's first side fragment waits on it with its first load.
pub(crate) const BP_DONE: u8 = 24;
/// Side -> pre-generation: a pre-generated layer's update signals it on its last store; the
/// layer's first prune load waits on it.
pub(crate) const UPDATED: u8 = 25;

/// Renames a fragment emitted on [`Sems::main`] onto the side pipeline's semaphores.
pub(crate) fn to_side(e: Emitted) -> Emitted {
    let main = Sems::main();
    let rename = |s: u8| {
        if main.fence == Some(s) {
            SIDE_FENCE
        } else if let Some(i) = main.pool.iter().position(|&p| p == s) {
            16 + i as u8
        } else {
            s
        }
    };
    e.into_iter()
        .map(|step| {
            step.into_iter()
                .map(|(mut insn, owner)| {
                    for s in insn.header.wait.iter_mut().chain(insn.header.signal.iter_mut()) {
                        *s = rename(*s);
                    }
                    (insn, owner)
                })
                .collect()
        })
        .collect()
}

/// Adds a signal on `sem` to the last store of `blocks` (a fragment's last store, which
/// completes after every other instruction of its fragment).
pub(crate) fn signal_on_last_store(blocks: &mut [Vec<(Instruction, Owner)>], sem: u8) {
    let (insn, _) = blocks
        .iter_mut()
        .flatten()
        .rev()
        .find(|(i, _)| matches!(i.op, Op::Store { .. }))
        .expect("compiler bug: a fragment without a store");
    *insn = add_signal(*insn, sem);
}

/// Adds a wait on `sem` to the first load of `blocks`, which every later load, and so every
/// compute and store of its fragment, follows.
pub(crate) fn wait_on_first_load(blocks: &mut [Vec<(Instruction, Owner)>], sem: u8) {
    let (insn, _) = blocks
        .iter_mut()
        .flatten()
        .find(|(i, _)| matches!(i.op, Op::Load { .. }))
        .expect("compiler bug: a fragment without a load");
    *insn = add_wait(*insn, sem);
}
