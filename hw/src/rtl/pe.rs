//! One processing element (PE) of the sparse tensor engine, output or weight stationary.
//!
//! **Function** (as `sim::pe_array`): the PE has `n_max` FP16 x FP16 -> FP32 multipliers. Slot
//! `j` multiplies weight `j` by the activation that its in-group index selects among the
//! `m_max` activation lanes: dense, the feeder sets index `j` (the PE covers `n_max`
//! consecutive reduction elements); N:M, the feeder sends a group's N kept weights with their
//! in-group indices and the group's M activations. The products enter a **chain** of FP32
//! adders in slot order (increasing reduction index), starting from the accumulator: `acc +
//! p0 + p1 + ...`, each addition rounded. A slot whose enable bit is clear is skipped (not
//! added as a zero), so padding never touches the sum.
//!
//! **Timing.** Operands are registered and forwarded (activations with the step's valid,
//! first and slot fields to the right, weights, indices and enables downwards), one hop per
//! cycle. The chain's result passes `accumulator_latency - 1` pipeline registers before it
//! reaches its accumulator register, so one accumulator may take a new step only every
//! `accumulator_latency` cycles: the accumulator hazard of the simulator's OS formula.
//!
//! **Interleave.** The PE holds `L = accumulator_latency` accumulators, one per interleave
//! slot (the most the ISA's `interleave` may use on this array: more would not hide more
//! latency). A sub-step names its slot (`slot_in`); the chain starts from that slot's
//! accumulator and the pipeline writes the result back to it `L` cycles later, so `I <= L`
//! outputs round-robin with a sub-step every cycle as long as each slot is revisited no
//! sooner than every `L` cycles.
//!
//! **Fold boundaries.** The first step of a fold (each of its slots' sub-steps) carries
//! `first_in`. On it the adder chain starts from `init_in` (the array selects the slot's
//! initial-value bus: +0, or the old output when accumulating) instead of the accumulator, and
//! `result_out` shows the slot's accumulator, which then holds the previous fold's final sum,
//! with `result_slot` naming the slot; on every other cycle `result_out` is zero, so the array
//! ORs a column's PEs into one result bus per slot. A `first_in` without `valid_in` (the flush
//! after a GEMM's last fold) only shows the result. Folds therefore follow each other with no
//! drain in between: the previous fold's sums leave as the next fold's first step arrives.
//!
//! **Weight stationary** (`ws` high for the whole GEMM). The weight, index and enable
//! forwarding registers become the PE's stationary operands: while `shift` is high they take
//! the PE above's (so a column's weights shift down into place, one row per cycle), and
//! otherwise they hold. The multipliers use the held operands, and the adder chain starts from
//! `psum_in`, the partial sum of the PE above; the chain's result passes the same
//! `accumulator_latency` pipeline into the first accumulator, which drives `psum_out` for the
//! PE below. Steps past the reduction have their enables clear, so their PEs pass the partial
//! sum on unchanged.
//!
//! Lane buses have the widest sizes `ArchConfig::validate` allows ([`ACT_BUS_LANES`],
//! [`WGT_BUS_LANES`]); a PE uses only its configuration's lanes and forwards only those: its
//! forwarding registers take the bus ANDed with a constant mask of the configuration's lanes
//! ([`lane_mask`]), so synthesis removes the other lanes' registers even when the PE is
//! synthesized as a module of its own (hierarchically), where its inputs are not known to be
//! zero.

use super::fp::{Fp16Mul, Fp32Add};
use crate::ArchConfig;
use rust_hdl::prelude::*;

/// Activation lanes of the PE bus: the largest `array.m_max` that validation accepts.
pub const ACT_BUS_LANES: usize = crate::arch::M_MAX_LIMIT as usize;
/// Weight slots of the PE bus: the largest `array.n_max` that validation accepts.
pub const WGT_BUS_LANES: usize = crate::arch::N_MAX_LIMIT as usize;

/// The activation bus: [`ACT_BUS_LANES`] binary16 values, lane `k` in bits `16k..16k+16`.
pub type ActBus = Bits<{ 16 * ACT_BUS_LANES }>;
/// The weight bus: [`WGT_BUS_LANES`] binary16 values, slot `j` in bits `16j..16j+16`.
pub type WgtBus = Bits<{ 16 * WGT_BUS_LANES }>;
/// The in-group index bus: 4 bits per weight slot, slot `j` in bits `4j..4j+4`.
pub type IdxBus = Bits<{ 4 * WGT_BUS_LANES }>;
/// The slot enable bus: bit `j` enables weight slot `j`.
pub type EnBus = Bits<WGT_BUS_LANES>;
/// An interleave slot number (`accumulator_latency` is at most 15).
pub type Slot = Bits<4>;

/// A bus of `N` bits whose low `lanes * width` bits are set: the mask of a configuration's
/// lanes of `width` bits each.
pub fn lane_mask<const N: usize>(lanes: usize, width: usize) -> Bits<N> {
    let mut mask = Bits::<N>::default();
    for b in 0..(lanes * width).min(N) {
        mask = mask.replace_bit(b, true);
    }
    mask
}

/// One PE (see the module documentation).
#[derive(LogicBlock)]
pub struct Pe {
    /// Core clock.
    pub clock: Signal<In, Clock>,
    // Activation interface (flows left to right)
    /// The step's activation lanes.
    pub act_in: Signal<In, ActBus>,
    /// High when `act_in` and the weight inputs hold a step.
    pub valid_in: Signal<In, Bit>,
    /// `act_in`, one cycle later, for the PE on the right.
    pub act_out: Signal<Out, ActBus>,
    /// `valid_in`, one cycle later.
    pub valid_out: Signal<Out, Bit>,
    // Weight interface (flows top to bottom)
    /// The step's weights, one per multiplier slot.
    pub wgt_in: Signal<In, WgtBus>,
    /// In-group index of each weight: the activation lane its slot multiplies.
    pub idx_in: Signal<In, IdxBus>,
    /// Slot enables: a clear bit skips the slot's product.
    pub en_in: Signal<In, EnBus>,
    /// `wgt_in`, one cycle later, for the PE below.
    pub wgt_out: Signal<Out, WgtBus>,
    /// `idx_in`, one cycle later.
    pub idx_out: Signal<Out, IdxBus>,
    /// `en_in`, one cycle later.
    pub en_out: Signal<Out, EnBus>,
    /// High on a fold's first step (and on the flush after the last fold).
    pub first_in: Signal<In, Bit>,
    /// `first_in`, one cycle later.
    pub first_out: Signal<Out, Bit>,
    /// The interleave slot (accumulator) the sub-step works on.
    pub slot_in: Signal<In, Slot>,
    /// `slot_in`, one cycle later.
    pub slot_out: Signal<Out, Slot>,
    // Fold boundary (column buses)
    /// The value a fold's sum starts from, taken on the first step.
    pub init_in: Signal<In, Bits<32>>,
    /// The slot's accumulator while `first_in` is high (the previous fold's sum), else zero.
    pub result_out: Signal<Out, Bits<32>>,
    /// `slot_in`: the slot whose sum `result_out` shows.
    pub result_slot: Signal<Out, Slot>,
    // Weight stationary (see the module documentation)
    /// High for a WS GEMM: weights are held, partial sums flow down.
    pub ws: Signal<In, Bit>,
    /// WS: high while the column's weights shift down into place; low, the PE holds them.
    pub shift: Signal<In, Bit>,
    /// WS: the partial sum from the PE above (or the column's top).
    pub psum_in: Signal<In, Bits<32>>,
    /// WS: `psum_in` plus this PE's products, `accumulator_latency` cycles later.
    pub psum_out: Signal<Out, Bits<32>>,
    // Datapath
    muls: Vec<Fp16Mul>,
    adders: Vec<Fp32Add>,
    selected: Vec<Signal<Local, Bits<16>>>,
    /// The weights, indices and enables the multipliers use: `wgt_in` (OS) or the held ones (WS).
    use_wgt: Signal<Local, WgtBus>,
    use_idx: Signal<Local, IdxBus>,
    use_en: Signal<Local, EnBus>,
    partial: Vec<Signal<Local, Bits<32>>>,
    stage_value: Vec<Signal<Local, Bits<32>>>,
    stage_valid: Vec<Signal<Local, Bit>>,
    stage_slot: Vec<Signal<Local, Slot>>,
    pipe: Vec<DFF<Bits<32>>>,
    pipe_valid: Vec<DFF<Bit>>,
    pipe_slot: Vec<DFF<Slot>>,
    /// The slot's accumulator, selected by `slot_in`.
    acc_read: Signal<Local, Bits<32>>,
    accs: Vec<DFF<Bits<32>>>,
    // Forwarding registers
    act_reg: DFF<ActBus>,
    valid_reg: DFF<Bit>,
    first_reg: DFF<Bit>,
    slot_reg: DFF<Slot>,
    wgt_reg: DFF<WgtBus>,
    idx_reg: DFF<IdxBus>,
    en_reg: DFF<EnBus>,
    // Masks of the configuration's lanes (see the module documentation)
    act_lanes: Constant<ActBus>,
    wgt_lanes: Constant<WgtBus>,
    idx_lanes: Constant<IdxBus>,
    en_lanes: Constant<EnBus>,
    // Sizes from the ArchConfig (not signals)
    _n_max: usize,
    _m_max: usize,
    _latency: usize,
    _last_stage: usize,
    _pipe_len: usize,
}

impl Pe {
    /// A PE of `arch` (`array.n_max` multipliers, `array.m_max` lanes, latency
    /// `array.accumulator_latency`).
    pub fn new(arch: &ArchConfig) -> Pe {
        let n_max = arch.array.n_max as usize;
        let latency = arch.array.accumulator_latency as usize;
        Pe {
            clock: Default::default(),
            act_in: Default::default(),
            valid_in: Default::default(),
            act_out: Default::default(),
            valid_out: Default::default(),
            wgt_in: Default::default(),
            idx_in: Default::default(),
            en_in: Default::default(),
            wgt_out: Default::default(),
            idx_out: Default::default(),
            en_out: Default::default(),
            first_in: Default::default(),
            first_out: Default::default(),
            slot_in: Default::default(),
            slot_out: Default::default(),
            init_in: Default::default(),
            result_out: Default::default(),
            result_slot: Default::default(),
            ws: Default::default(),
            shift: Default::default(),
            psum_in: Default::default(),
            psum_out: Default::default(),
            use_wgt: Default::default(),
            use_idx: Default::default(),
            use_en: Default::default(),
            muls: (0..n_max).map(|_| Fp16Mul::default()).collect(),
            adders: (0..n_max).map(|_| Fp32Add::default()).collect(),
            selected: (0..n_max).map(|_| Signal::default()).collect(),
            partial: (0..=n_max).map(|_| Signal::default()).collect(),
            stage_value: (0..latency).map(|_| Signal::default()).collect(),
            stage_valid: (0..latency).map(|_| Signal::default()).collect(),
            stage_slot: (0..latency).map(|_| Signal::default()).collect(),
            pipe: (1..latency).map(|_| DFF::default()).collect(),
            pipe_valid: (1..latency).map(|_| DFF::default()).collect(),
            pipe_slot: (1..latency).map(|_| DFF::default()).collect(),
            acc_read: Signal::default(),
            accs: (0..latency).map(|_| DFF::default()).collect(),
            act_reg: DFF::default(),
            valid_reg: DFF::default(),
            first_reg: DFF::default(),
            slot_reg: DFF::default(),
            wgt_reg: DFF::default(),
            idx_reg: DFF::default(),
            en_reg: DFF::default(),
            act_lanes: Constant::new(lane_mask(arch.array.m_max as usize, 16)),
            wgt_lanes: Constant::new(lane_mask(n_max, 16)),
            idx_lanes: Constant::new(lane_mask(n_max, 4)),
            en_lanes: Constant::new(lane_mask(n_max, 1)),
            _n_max: n_max,
            _m_max: arch.array.m_max as usize,
            _latency: latency,
            _last_stage: latency - 1,
            _pipe_len: latency - 1,
        }
    }
}

impl Logic for Pe {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, act_reg, valid_reg, first_reg, slot_reg, wgt_reg, idx_reg, en_reg);
        for j in 0..self._latency {
            self.accs[j].clock.next = self.clock.val();
            self.accs[j].d.next = self.accs[j].q.val();
        }
        for i in 0..self._pipe_len {
            self.pipe[i].clock.next = self.clock.val();
            self.pipe_valid[i].clock.next = self.clock.val();
            self.pipe_slot[i].clock.next = self.clock.val();
        }
        // Forwarding
        self.act_reg.d.next = self.act_in.val() & self.act_lanes.val();
        self.valid_reg.d.next = self.valid_in.val();
        self.first_reg.d.next = self.first_in.val();
        self.slot_reg.d.next = self.slot_in.val();
        self.wgt_reg.d.next = self.wgt_in.val() & self.wgt_lanes.val();
        self.idx_reg.d.next = self.idx_in.val() & self.idx_lanes.val();
        self.en_reg.d.next = self.en_in.val() & self.en_lanes.val();
        self.use_wgt.next = self.wgt_in.val();
        self.use_idx.next = self.idx_in.val();
        self.use_en.next = self.en_in.val();
        if self.ws.val() {
            // WS: the forwarding registers hold the PE's weights once shifted into place.
            if !self.shift.val() {
                self.wgt_reg.d.next = self.wgt_reg.q.val();
                self.idx_reg.d.next = self.idx_reg.q.val();
                self.en_reg.d.next = self.en_reg.q.val();
            }
            self.use_wgt.next = self.wgt_reg.q.val();
            self.use_idx.next = self.idx_reg.q.val();
            self.use_en.next = self.en_reg.q.val();
        }
        self.act_out.next = self.act_reg.q.val();
        self.valid_out.next = self.valid_reg.q.val();
        self.first_out.next = self.first_reg.q.val();
        self.slot_out.next = self.slot_reg.q.val();
        self.wgt_out.next = self.wgt_reg.q.val();
        self.idx_out.next = self.idx_reg.q.val();
        self.en_out.next = self.en_reg.q.val();
        // Activation selection and products
        for j in 0..self._n_max {
            self.selected[j].next = self.act_in.val().get_bits::<16>(0);
            for k in 1..self._m_max {
                if self.use_idx.val().get_bits::<4>(j * 4) == k.to_bits() {
                    self.selected[j].next = self.act_in.val().get_bits::<16>(k * 16);
                }
            }
            self.muls[j].a.next = self.selected[j].val();
            self.muls[j].b.next = self.use_wgt.val().get_bits::<16>(j * 16);
        }
        // The adder chain, in slot order, from the slot's accumulator (from `init_in` on a
        // first step)
        self.acc_read.next = self.accs[0].q.val();
        for j in 1..self._latency {
            if self.slot_in.val() == j.to_bits() {
                self.acc_read.next = self.accs[j].q.val();
            }
        }
        self.partial[0].next = self.acc_read.val();
        self.result_out.next = 0.into();
        self.result_slot.next = self.slot_in.val();
        if self.first_in.val() {
            self.partial[0].next = self.init_in.val();
            self.result_out.next = self.acc_read.val();
        }
        if self.ws.val() {
            self.partial[0].next = self.psum_in.val();
        }
        for j in 0..self._n_max {
            self.adders[j].a.next = self.partial[j].val();
            self.adders[j].b.next = self.muls[j].product.val();
            if self.use_en.val().get_bit(j) {
                self.partial[j + 1].next = self.adders[j].sum.val();
            } else {
                self.partial[j + 1].next = self.partial[j].val();
            }
        }
        // Accumulator latency: latency - 1 pipeline registers, then the accumulator
        for last in self._n_max..(self._n_max + 1usize) {
            self.stage_value[0].next = self.partial[last].val();
        }
        self.stage_valid[0].next = self.valid_in.val();
        self.stage_slot[0].next = self.slot_in.val();
        for i in 1..self._latency {
            self.pipe[i - 1].d.next = self.stage_value[i - 1].val();
            self.pipe_valid[i - 1].d.next = self.stage_valid[i - 1].val();
            self.pipe_slot[i - 1].d.next = self.stage_slot[i - 1].val();
            self.stage_value[i].next = self.pipe[i - 1].q.val();
            self.stage_valid[i].next = self.pipe_valid[i - 1].q.val();
            self.stage_slot[i].next = self.pipe_slot[i - 1].q.val();
        }
        for last in self._last_stage..self._latency {
            for j in 0..self._latency {
                if self.stage_valid[last].val() && (self.stage_slot[last].val() == j.to_bits()) {
                    self.accs[j].d.next = self.stage_value[last].val();
                }
            }
            // WS: the first accumulator is the partial-sum output register.
            if self.ws.val() {
                self.accs[0].d.next = self.stage_value[last].val();
            }
        }
        self.psum_out.next = self.accs[0].q.val();
    }
}
