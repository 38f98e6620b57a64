//! The weight-update vector engine (WUVE): FP32 SGD with momentum, weight decay and the SR-STE
//! term, bit for bit `sim::wuve` (the `update` instruction).
//!
//! - [`WuveLane`]: one lane, one element per cycle, pipelined to exactly
//!   `arch.wuve.pipeline_latency` cycles.
//! - [`WuveUnit`]: `arch.wuve.lanes` lanes side by side sharing the hyperparameters.
//! - [`StageRegister`]: a pipeline boundary that is either a register or a wire, fixed when the
//!   lane is built.
//!
//! **Function.** Per element, with the hyperparameters `lr`, `mu`, `wd`, `lambda` and one FP32
//! rounding per operation, in the simulator's order (no fused multiply-add):
//!
//! | level | operation | block |
//! |---|---|---|
//! | 0 | `wd*w`, `lambda*w`, `mu*v` | three [`Fp32Mul`] |
//! | 1 | `g = grad + wd*w` | [`Fp32Add`] |
//! | 2 | `g = g + lambda*w` when `pruned` (SR-STE term on, forward mask 0), else `g` unchanged | [`Fp32Add`] + mux |
//! | 3 | `v' = mu*v + g` | [`Fp32Add`] |
//! | 4 | `lr*v'` | [`Fp32Mul`] |
//! | 5 | `w' = w - lr*v'` as `w + (-(lr*v'))` (the sign flip is exact: one rounding, the subtraction's) | [`Fp32Add`] |
//!
//! The lane returns `w'` and `v'`. Operand order within each operation is the simulator's;
//! FP32 addition and multiplication are commutative bit for bit anyway, NaNs aside, and every
//! NaN here is the canonical [`QUIET_NAN`](super::fp::QUIET_NAN).
//!
//! **Latency.** The six levels are separated by six boundaries (after levels 0 to 5). With
//! `L = arch.wuve.pipeline_latency` and `S = min(L, 6)`, `S` of them are registers, spread
//! evenly (for `k = 0..S`, the boundary after level `floor((k + 1) * 6 / S) - 1`, so the last
//! one is a register whenever `L > 0`), and `L - 6` more output registers follow when `L > 6`.
//! An element entering with `valid` leaves exactly `L` clock edges later (`L = 0`: the lane is
//! combinational) and the lane accepts one element per cycle, so an update of `count` elements
//! on `lanes` lanes takes the simulator's `ceil(count / lanes) + L` cycles. With `L < 6`
//! several levels share a cycle (the clock must allow it); with `L > 6` the extra output
//! registers are there for a synthesis tool's retiming to move into the multipliers and adders.
//!
//! The hyperparameters are inputs held for the whole update, drain included (the unit loads
//! them once per `update` from the master buffer, as the simulator reads them once).

use super::fp::{Fp32Add, Fp32Mul};
use super::verilog::deduplicate;
use super::RtlDesign;
use crate::{ArchConfig, Error};
use rust_hdl::prelude::*;

/// Operation levels of the lane (the table of the module documentation).
pub const LEVELS: usize = 6;

/// Whether the boundary after each level is a register, for a lane of `latency` cycles (see
/// the module documentation).
pub fn registered_boundaries(latency: usize) -> [bool; LEVELS] {
    let mut registered = [false; LEVELS];
    let stages = latency.min(LEVELS);
    for k in 0..stages {
        registered[(k + 1) * LEVELS / stages - 1] = true;
    }
    registered
}

/// A pipeline boundary: `q` is `d` registered, or `d` itself, as chosen at construction.
#[derive(LogicBlock)]
pub struct StageRegister<T: Synth> {
    /// Core clock.
    pub clock: Signal<In, Clock>,
    /// Value entering the boundary.
    pub d: Signal<In, T>,
    /// Value leaving it.
    pub q: Signal<Out, T>,
    register: DFF<T>,
    registered: Constant<Bit>,
}

impl<T: Synth> StageRegister<T> {
    /// A register when `registered`, a wire otherwise.
    pub fn new(registered: bool) -> StageRegister<T> {
        StageRegister {
            clock: Default::default(),
            d: Default::default(),
            q: Default::default(),
            register: Default::default(),
            registered: Constant::new(registered),
        }
    }
}

impl<T: Synth> Logic for StageRegister<T> {
    #[hdl_gen]
    fn update(&mut self) {
        self.register.clock.next = self.clock.val();
        self.register.d.next = self.d.val();
        if self.registered.val() {
            self.q.next = self.register.q.val();
        } else {
            self.q.next = self.d.val();
        }
    }
}

/// One WUVE lane (see the module documentation).
#[derive(LogicBlock)]
pub struct WuveLane {
    /// Core clock.
    pub clock: Signal<In, Clock>,
    // Hyperparameters, binary32 bits, held for the whole update
    /// Learning rate `lr`.
    pub learning_rate: Signal<In, Bits<32>>,
    /// Momentum factor `mu`.
    pub momentum_factor: Signal<In, Bits<32>>,
    /// Weight decay `wd`.
    pub weight_decay: Signal<In, Bits<32>>,
    /// SR-STE decay `lambda`.
    pub srste_decay: Signal<In, Bits<32>>,
    // One element per cycle
    /// High when the element inputs hold an element.
    pub valid: Signal<In, Bit>,
    /// Master weight `w`.
    pub weight: Signal<In, Bits<32>>,
    /// Momentum `v`.
    pub momentum: Signal<In, Bits<32>>,
    /// Weight gradient.
    pub grad: Signal<In, Bits<32>>,
    /// Apply the SR-STE term (the update uses a mask and this element's forward mask is 0).
    pub pruned: Signal<In, Bit>,
    // The element `pipeline_latency` cycles later
    /// High when the outputs hold an updated element.
    pub out_valid: Signal<Out, Bit>,
    /// Updated master weight `w'`.
    pub new_weight: Signal<Out, Bits<32>>,
    /// Updated momentum `v'`.
    pub new_momentum: Signal<Out, Bits<32>>,
    // Arithmetic, in vectors so that the Verilog modules are named `sat_fp32_mul` and
    // `sat_fp32_add` after these fields (HDL kernels index them with literals)
    /// `[wd*w, lambda*w, mu*v, lr*v']`.
    fp32_mul: Vec<Fp32Mul>,
    /// `[grad + wd*w, g + lambda*w, mu*v + g, w - lr*v']`.
    adders: Vec<Fp32Add>,
    // Boundary after level 0: the three products
    b0_valid: StageRegister<Bit>,
    b0_pruned: StageRegister<Bit>,
    b0_weight: StageRegister<Bits<32>>,
    b0_grad: StageRegister<Bits<32>>,
    b0_decay_term: StageRegister<Bits<32>>,
    b0_srste_term: StageRegister<Bits<32>>,
    b0_momentum_term: StageRegister<Bits<32>>,
    // After level 1: grad + wd*w
    b1_valid: StageRegister<Bit>,
    b1_pruned: StageRegister<Bit>,
    b1_weight: StageRegister<Bits<32>>,
    b1_srste_term: StageRegister<Bits<32>>,
    b1_momentum_term: StageRegister<Bits<32>>,
    b1_decayed_grad: StageRegister<Bits<32>>,
    // After level 2: the SR-STE term
    b2_valid: StageRegister<Bit>,
    b2_weight: StageRegister<Bits<32>>,
    b2_momentum_term: StageRegister<Bits<32>>,
    b2_total_grad: StageRegister<Bits<32>>,
    // After level 3: the new momentum
    b3_valid: StageRegister<Bit>,
    b3_weight: StageRegister<Bits<32>>,
    b3_momentum: StageRegister<Bits<32>>,
    // After level 4: lr * v'
    b4_valid: StageRegister<Bit>,
    b4_weight: StageRegister<Bits<32>>,
    b4_momentum: StageRegister<Bits<32>>,
    b4_step: StageRegister<Bits<32>>,
    // After level 5: the new weight
    b5_valid: StageRegister<Bit>,
    b5_weight: StageRegister<Bits<32>>,
    b5_momentum: StageRegister<Bits<32>>,
    /// `lr * v'` with its sign flipped.
    negated_step: Signal<Local, Bits<32>>,
    // Output registers beyond the six boundaries (pipeline_latency > 6)
    tail_valid: Vec<DFF<Bit>>,
    tail_weight: Vec<DFF<Bits<32>>>,
    tail_momentum: Vec<DFF<Bits<32>>>,
    tail_stage_valid: Vec<Signal<Local, Bit>>,
    tail_stage_weight: Vec<Signal<Local, Bits<32>>>,
    tail_stage_momentum: Vec<Signal<Local, Bits<32>>>,
    // Sizes from the ArchConfig (not signals)
    _tail_len: usize,
}

impl WuveLane {
    /// A lane of `arch`, `arch.wuve.pipeline_latency` cycles deep.
    pub fn new(arch: &ArchConfig) -> WuveLane {
        let latency = arch.wuve.pipeline_latency as usize;
        let [r0, r1, r2, r3, r4, r5] = registered_boundaries(latency);
        let tail_len = latency.saturating_sub(LEVELS);
        WuveLane {
            clock: Default::default(),
            learning_rate: Default::default(),
            momentum_factor: Default::default(),
            weight_decay: Default::default(),
            srste_decay: Default::default(),
            valid: Default::default(),
            weight: Default::default(),
            momentum: Default::default(),
            grad: Default::default(),
            pruned: Default::default(),
            out_valid: Default::default(),
            new_weight: Default::default(),
            new_momentum: Default::default(),
            fp32_mul: (0..4).map(|_| Fp32Mul::default()).collect(),
            adders: (0..4).map(|_| Fp32Add::default()).collect(),
            b0_valid: StageRegister::new(r0),
            b0_pruned: StageRegister::new(r0),
            b0_weight: StageRegister::new(r0),
            b0_grad: StageRegister::new(r0),
            b0_decay_term: StageRegister::new(r0),
            b0_srste_term: StageRegister::new(r0),
            b0_momentum_term: StageRegister::new(r0),
            b1_valid: StageRegister::new(r1),
            b1_pruned: StageRegister::new(r1),
            b1_weight: StageRegister::new(r1),
            b1_srste_term: StageRegister::new(r1),
            b1_momentum_term: StageRegister::new(r1),
            b1_decayed_grad: StageRegister::new(r1),
            b2_valid: StageRegister::new(r2),
            b2_weight: StageRegister::new(r2),
            b2_momentum_term: StageRegister::new(r2),
            b2_total_grad: StageRegister::new(r2),
            b3_valid: StageRegister::new(r3),
            b3_weight: StageRegister::new(r3),
            b3_momentum: StageRegister::new(r3),
            b4_valid: StageRegister::new(r4),
            b4_weight: StageRegister::new(r4),
            b4_momentum: StageRegister::new(r4),
            b4_step: StageRegister::new(r4),
            b5_valid: StageRegister::new(r5),
            b5_weight: StageRegister::new(r5),
            b5_momentum: StageRegister::new(r5),
            negated_step: Default::default(),
            tail_valid: (0..tail_len).map(|_| DFF::default()).collect(),
            tail_weight: (0..tail_len).map(|_| DFF::default()).collect(),
            tail_momentum: (0..tail_len).map(|_| DFF::default()).collect(),
            tail_stage_valid: (0..=tail_len).map(|_| Signal::default()).collect(),
            tail_stage_weight: (0..=tail_len).map(|_| Signal::default()).collect(),
            tail_stage_momentum: (0..=tail_len).map(|_| Signal::default()).collect(),
            _tail_len: tail_len,
        }
    }
}

impl Logic for WuveLane {
    #[hdl_gen]
    fn update(&mut self) {
        self.b0_valid.clock.next = self.clock.val();
        self.b0_pruned.clock.next = self.clock.val();
        self.b0_weight.clock.next = self.clock.val();
        self.b0_grad.clock.next = self.clock.val();
        self.b0_decay_term.clock.next = self.clock.val();
        self.b0_srste_term.clock.next = self.clock.val();
        self.b0_momentum_term.clock.next = self.clock.val();
        self.b1_valid.clock.next = self.clock.val();
        self.b1_pruned.clock.next = self.clock.val();
        self.b1_weight.clock.next = self.clock.val();
        self.b1_srste_term.clock.next = self.clock.val();
        self.b1_momentum_term.clock.next = self.clock.val();
        self.b1_decayed_grad.clock.next = self.clock.val();
        self.b2_valid.clock.next = self.clock.val();
        self.b2_weight.clock.next = self.clock.val();
        self.b2_momentum_term.clock.next = self.clock.val();
        self.b2_total_grad.clock.next = self.clock.val();
        self.b3_valid.clock.next = self.clock.val();
        self.b3_weight.clock.next = self.clock.val();
        self.b3_momentum.clock.next = self.clock.val();
        self.b4_valid.clock.next = self.clock.val();
        self.b4_weight.clock.next = self.clock.val();
        self.b4_momentum.clock.next = self.clock.val();
        self.b4_step.clock.next = self.clock.val();
        self.b5_valid.clock.next = self.clock.val();
        self.b5_weight.clock.next = self.clock.val();
        self.b5_momentum.clock.next = self.clock.val();
        for i in 0..self._tail_len {
            self.tail_valid[i].clock.next = self.clock.val();
            self.tail_weight[i].clock.next = self.clock.val();
            self.tail_momentum[i].clock.next = self.clock.val();
        }
        // Level 0: wd*w, lambda*w, mu*v
        self.fp32_mul[0].a.next = self.weight_decay.val();
        self.fp32_mul[0].b.next = self.weight.val();
        self.fp32_mul[1].a.next = self.srste_decay.val();
        self.fp32_mul[1].b.next = self.weight.val();
        self.fp32_mul[2].a.next = self.momentum_factor.val();
        self.fp32_mul[2].b.next = self.momentum.val();
        self.b0_valid.d.next = self.valid.val();
        self.b0_pruned.d.next = self.pruned.val();
        self.b0_weight.d.next = self.weight.val();
        self.b0_grad.d.next = self.grad.val();
        self.b0_decay_term.d.next = self.fp32_mul[0].product.val();
        self.b0_srste_term.d.next = self.fp32_mul[1].product.val();
        self.b0_momentum_term.d.next = self.fp32_mul[2].product.val();
        // Level 1: g = grad + wd*w
        self.adders[0].a.next = self.b0_grad.q.val();
        self.adders[0].b.next = self.b0_decay_term.q.val();
        self.b1_valid.d.next = self.b0_valid.q.val();
        self.b1_pruned.d.next = self.b0_pruned.q.val();
        self.b1_weight.d.next = self.b0_weight.q.val();
        self.b1_srste_term.d.next = self.b0_srste_term.q.val();
        self.b1_momentum_term.d.next = self.b0_momentum_term.q.val();
        self.b1_decayed_grad.d.next = self.adders[0].sum.val();
        // Level 2: g = g + lambda*w for pruned elements
        self.adders[1].a.next = self.b1_decayed_grad.q.val();
        self.adders[1].b.next = self.b1_srste_term.q.val();
        self.b2_valid.d.next = self.b1_valid.q.val();
        self.b2_weight.d.next = self.b1_weight.q.val();
        self.b2_momentum_term.d.next = self.b1_momentum_term.q.val();
        if self.b1_pruned.q.val() {
            self.b2_total_grad.d.next = self.adders[1].sum.val();
        } else {
            self.b2_total_grad.d.next = self.b1_decayed_grad.q.val();
        }
        // Level 3: v' = mu*v + g
        self.adders[2].a.next = self.b2_momentum_term.q.val();
        self.adders[2].b.next = self.b2_total_grad.q.val();
        self.b3_valid.d.next = self.b2_valid.q.val();
        self.b3_weight.d.next = self.b2_weight.q.val();
        self.b3_momentum.d.next = self.adders[2].sum.val();
        // Level 4: lr*v'
        self.fp32_mul[3].a.next = self.learning_rate.val();
        self.fp32_mul[3].b.next = self.b3_momentum.q.val();
        self.b4_valid.d.next = self.b3_valid.q.val();
        self.b4_weight.d.next = self.b3_weight.q.val();
        self.b4_momentum.d.next = self.b3_momentum.q.val();
        self.b4_step.d.next = self.fp32_mul[3].product.val();
        // Level 5: w' = w - lr*v'
        self.negated_step.next = self.b4_step.q.val() ^ 0x8000_0000_u64;
        self.adders[3].a.next = self.b4_weight.q.val();
        self.adders[3].b.next = self.negated_step.val();
        self.b5_valid.d.next = self.b4_valid.q.val();
        self.b5_weight.d.next = self.adders[3].sum.val();
        self.b5_momentum.d.next = self.b4_momentum.q.val();
        // Output registers beyond the six boundaries
        self.tail_stage_valid[0].next = self.b5_valid.q.val();
        self.tail_stage_weight[0].next = self.b5_weight.q.val();
        self.tail_stage_momentum[0].next = self.b5_momentum.q.val();
        for i in 0..self._tail_len {
            self.tail_valid[i].d.next = self.tail_stage_valid[i].val();
            self.tail_weight[i].d.next = self.tail_stage_weight[i].val();
            self.tail_momentum[i].d.next = self.tail_stage_momentum[i].val();
            self.tail_stage_valid[i + 1].next = self.tail_valid[i].q.val();
            self.tail_stage_weight[i + 1].next = self.tail_weight[i].q.val();
            self.tail_stage_momentum[i + 1].next = self.tail_momentum[i].q.val();
        }
        for last in self._tail_len..(self._tail_len + 1usize) {
            self.out_valid.next = self.tail_stage_valid[last].val();
            self.new_weight.next = self.tail_stage_weight[last].val();
            self.new_momentum.next = self.tail_stage_momentum[last].val();
        }
    }
}

/// Name of the top Verilog module of [`generate`].
pub const TOP_MODULE: &str = "sat_wuve";

/// The WUVE: `arch.wuve.lanes` [`WuveLane`]s sharing the hyperparameters; lane `l` updates
/// elements `l`, `l + lanes`, ... of an update.
#[derive(LogicBlock)]
pub struct WuveUnit {
    /// Core clock.
    pub clock: Signal<In, Clock>,
    /// Learning rate `lr`, shared by all lanes.
    pub learning_rate: Signal<In, Bits<32>>,
    /// Momentum factor `mu`, shared by all lanes.
    pub momentum_factor: Signal<In, Bits<32>>,
    /// Weight decay `wd`, shared by all lanes.
    pub weight_decay: Signal<In, Bits<32>>,
    /// SR-STE decay `lambda`, shared by all lanes.
    pub srste_decay: Signal<In, Bits<32>>,
    /// Per lane: an element is present.
    pub valid: Vec<Signal<In, Bit>>,
    /// Per lane: master weight.
    pub weight: Vec<Signal<In, Bits<32>>>,
    /// Per lane: momentum.
    pub momentum: Vec<Signal<In, Bits<32>>>,
    /// Per lane: weight gradient.
    pub grad: Vec<Signal<In, Bits<32>>>,
    /// Per lane: apply the SR-STE term.
    pub pruned: Vec<Signal<In, Bit>>,
    /// Per lane: an updated element is present.
    pub out_valid: Vec<Signal<Out, Bit>>,
    /// Per lane: updated master weight.
    pub new_weight: Vec<Signal<Out, Bits<32>>>,
    /// Per lane: updated momentum.
    pub new_momentum: Vec<Signal<Out, Bits<32>>>,
    wuve_lane: Vec<WuveLane>,
    // Sizes from the ArchConfig (not signals)
    _lanes: usize,
}

impl WuveUnit {
    /// The WUVE of `arch`: `wuve.lanes` lanes of `wuve.pipeline_latency` cycles.
    pub fn new(arch: &ArchConfig) -> WuveUnit {
        let lanes = arch.wuve.lanes as usize;
        WuveUnit {
            clock: Default::default(),
            learning_rate: Default::default(),
            momentum_factor: Default::default(),
            weight_decay: Default::default(),
            srste_decay: Default::default(),
            valid: (0..lanes).map(|_| Signal::default()).collect(),
            weight: (0..lanes).map(|_| Signal::default()).collect(),
            momentum: (0..lanes).map(|_| Signal::default()).collect(),
            grad: (0..lanes).map(|_| Signal::default()).collect(),
            pruned: (0..lanes).map(|_| Signal::default()).collect(),
            out_valid: (0..lanes).map(|_| Signal::default()).collect(),
            new_weight: (0..lanes).map(|_| Signal::default()).collect(),
            new_momentum: (0..lanes).map(|_| Signal::default()).collect(),
            wuve_lane: (0..lanes).map(|_| WuveLane::new(arch)).collect(),
            _lanes: lanes,
        }
    }
}

impl Logic for WuveUnit {
    #[hdl_gen]
    fn update(&mut self) {
        for l in 0..self._lanes {
            self.wuve_lane[l].clock.next = self.clock.val();
            self.wuve_lane[l].learning_rate.next = self.learning_rate.val();
            self.wuve_lane[l].momentum_factor.next = self.momentum_factor.val();
            self.wuve_lane[l].weight_decay.next = self.weight_decay.val();
            self.wuve_lane[l].srste_decay.next = self.srste_decay.val();
            self.wuve_lane[l].valid.next = self.valid[l].val();
            self.wuve_lane[l].weight.next = self.weight[l].val();
            self.wuve_lane[l].momentum.next = self.momentum[l].val();
            self.wuve_lane[l].grad.next = self.grad[l].val();
            self.wuve_lane[l].pruned.next = self.pruned[l].val();
            self.out_valid[l].next = self.wuve_lane[l].out_valid.val();
            self.new_weight[l].next = self.wuve_lane[l].new_weight.val();
            self.new_momentum[l].next = self.wuve_lane[l].new_momentum.val();
        }
    }
}

/// Generates the WUVE of `arch` as one Verilog file, top module [`TOP_MODULE`].
pub fn generate(arch: &ArchConfig) -> Result<RtlDesign, Error> {
    arch.validate()?;
    let mut top = WuveUnit::new(arch);
    top.connect_all();
    check_all(&top).map_err(|e| Error::RtlCheck { arch: arch.name.clone(), message: format!("{e:?}") })?;
    deduplicate(&generate_verilog_unchecked(&top), TOP_MODULE)
}
