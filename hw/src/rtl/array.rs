//! The sparse tensor engine's datapath as RTL: a `rows x cols` output- or weight-stationary array of
//! [`Pe`]s with its edge skew registers, sized only by an [`ArchConfig`]. The tensor unit
//! ([`super::tensor`]) sequences it.
//!
//! **Dataflow.** Output stationary with interleave `I <= L = array.accumulator_latency`: PE
//! `(r, c)` owns `I` outputs of row `r` of the fold, one per interleave slot. Row `r`'s
//! activation lanes (with the sub-step's `valid`, `first` and `slot` fields) enter at the left
//! edge through `r` skew registers and move right one PE per cycle; column `c`'s weights,
//! indices and slot enables enter at the top through `c` skew registers and move down one PE
//! per cycle. A sub-step fed at cycle `t` therefore reaches PE `(r, c)` at cycle `t + r + c`.
//! Column `c` has one initial-value bus per slot `j`, delayed `c + j` cycles and broadcast down
//! the column; a PE takes the bus of the slot it works on.
//!
//! **Timing.** A step is `I` sub-steps (slots `0..I`) on consecutive cycles, one every
//! `Q = max(I, L)` cycles, so each accumulator is revisited no sooner than its `L`-cycle
//! pipeline allows. A fold of `S` steps fed from cycle `T` holds its final sums from cycle
//! `T + (S - 1) Q + L + j + r + c` on, so the next fold's first step may be fed at `T + S Q +
//! R + C - 2` (the simulator's per-fold `S * max(I, L) + R + C - 2`): no PE sees it before its
//! sums are final.
//!
//! **Results.** On a first sub-step PE `(r, c)` shows its slot's previous-fold sum (see
//! [`Pe`]); each column ORs its PEs into one bus per slot, and de-skew lines of `C - 1 - c + L -
//! 1 - j` registers align the buses, so the unit reads row `r` of the previous fold, every
//! column and slot at once, at cycle `t + r + C + L - 2` for a first step fed from `t`, with the
//! matching initial values fed on the slot-`j` bus at `t + r` (delayed `c + j` inside).

//! **Weight stationary** (`ws`; see [`Pe`]). PE `(r, c)` holds reduction step `r` of output
//! column `c`. A column's weights enter at the top as in OS (delayed `c`) with the `shift`
//! enable (delayed `c` too) and shift down one row per cycle, so `R` shifting cycles put the
//! first-fed step in the bottom row. Input row `m`'s step-`r` lanes enter row `r` (delayed
//! `r`, then one PE per cycle to the right); its partial sum enters column `c` on the slot-0
//! initial-value bus (delayed `c`) and leaves the bottom row `R L` cycles after it entered, onto
//! the slot-0 result bus (de-skewed as in OS). The tensor unit feeds row `r` `r (L - 1)` cycles
//! after row 0, so each row's lanes meet the partial sum coming down.
//!
//! **Bus widths.** The edge buses have the widest lane counts (see [`super::pe`]); the edges
//! mask them to the configuration's lanes before the skew registers, so the unused lanes'
//! registers are constant and synthesis removes them.

use super::pe::{lane_mask, ActBus, EnBus, IdxBus, Pe, Slot, WgtBus};
use crate::ArchConfig;
use rust_hdl::prelude::*;

/// A chain of `depth` registers (`depth = 0` is a wire): the skew of one array edge lane.
#[derive(LogicBlock)]
pub struct DelayLine<T: Synth> {
    /// Core clock.
    pub clock: Signal<In, Clock>,
    /// Value entering the line.
    pub data_in: Signal<In, T>,
    /// `data_in`, `depth` cycles later.
    pub data_out: Signal<Out, T>,
    stages: Vec<DFF<T>>,
    _depth: usize,
    _has_stage: usize,
    _last: usize,
}

impl<T: Synth> DelayLine<T> {
    /// A line of `depth` registers.
    pub fn new(depth: usize) -> Self {
        DelayLine {
            clock: Default::default(),
            data_in: Default::default(),
            data_out: Default::default(),
            stages: (0..depth).map(|_| DFF::default()).collect(),
            _depth: depth,
            _has_stage: depth.min(1),
            _last: depth.saturating_sub(1),
        }
    }
}

impl<T: Synth> Logic for DelayLine<T> {
    #[hdl_gen]
    fn update(&mut self) {
        for i in 0..self._depth {
            self.stages[i].clock.next = self.clock.val();
        }
        for i in 0..self._has_stage {
            self.stages[i].d.next = self.data_in.val();
        }
        for i in 1..self._depth {
            self.stages[i].d.next = self.stages[i - 1].q.val();
        }
        self.data_out.next = self.data_in.val();
        for i in self._last..self._depth {
            self.data_out.next = self.stages[i].q.val();
        }
    }
}

/// The PE array with its edges (see the module documentation).
#[derive(LogicBlock)]
pub struct PeArray {
    /// Core clock.
    pub clock: Signal<In, Clock>,
    // Operand edges
    /// High when the edge inputs hold a (sub-)step.
    pub valid: Signal<In, Bit>,
    /// High on a fold's first step and on the flush after a GEMM's last fold.
    pub first: Signal<In, Bit>,
    /// The interleave slot of the sub-step.
    pub slot: Signal<In, Slot>,
    /// Activation lanes of each row.
    pub act: Vec<Signal<In, ActBus>>,
    /// Weights of each column.
    pub wgt: Vec<Signal<In, WgtBus>>,
    /// In-group indices of each column's weights.
    pub idx: Vec<Signal<In, IdxBus>>,
    /// Slot enables of each column.
    pub en: Vec<Signal<In, EnBus>>,
    /// Initial values, `init[c * L + j]` for column `c`, interleave slot `j` (see the module
    /// documentation for the timing).
    pub init: Vec<Signal<In, Bits<32>>>,
    /// Result buses, `result[c * L + j]`, de-skewed.
    pub result: Vec<Signal<Out, Bits<32>>>,
    /// High for a WS GEMM (see the module documentation).
    pub ws: Signal<In, Bit>,
    /// WS: high while weights shift down into place (skewed per column like the weights).
    pub shift: Signal<In, Bit>,
    act_skew: Vec<DelayLine<ActBus>>,
    valid_skew: Vec<DelayLine<Bit>>,
    first_skew: Vec<DelayLine<Bit>>,
    slot_skew: Vec<DelayLine<Slot>>,
    wgt_skew: Vec<DelayLine<WgtBus>>,
    idx_skew: Vec<DelayLine<IdxBus>>,
    en_skew: Vec<DelayLine<EnBus>>,
    shift_skew: Vec<DelayLine<Bit>>,
    init_skew: Vec<DelayLine<Bits<32>>>,
    result_deskew: Vec<DelayLine<Bits<32>>>,
    /// The OR of PE `(r, c)`'s slot-`j` result and the ones above it: `column_or[(r * cols + c)
    /// * L + j]`.
    column_or: Vec<Signal<Local, Bits<32>>>,
    act_lanes: Constant<ActBus>,
    wgt_lanes: Constant<WgtBus>,
    idx_lanes: Constant<IdxBus>,
    en_lanes: Constant<EnBus>,
    /// PEs in row-major order: PE `(r, c)` is `pes[r * cols + c]`.
    pes: Vec<Pe>,
    _rows: usize,
    _cols: usize,
    _slots: usize,
    _pes: usize,
    _buses: usize,
    _last_row_start: usize,
}

impl PeArray {
    /// The array of `arch` (`array.rows x array.cols` PEs).
    pub fn new(arch: &ArchConfig) -> Self {
        let (rows, cols) = (arch.array.rows as usize, arch.array.cols as usize);
        let slots = arch.array.accumulator_latency as usize;
        PeArray {
            clock: Default::default(),
            valid: Default::default(),
            first: Default::default(),
            slot: Default::default(),
            act: (0..rows).map(|_| Signal::default()).collect(),
            wgt: (0..cols).map(|_| Signal::default()).collect(),
            idx: (0..cols).map(|_| Signal::default()).collect(),
            en: (0..cols).map(|_| Signal::default()).collect(),
            init: (0..cols * slots).map(|_| Signal::default()).collect(),
            result: (0..cols * slots).map(|_| Signal::default()).collect(),
            ws: Default::default(),
            shift: Default::default(),
            act_skew: (0..rows).map(DelayLine::new).collect(),
            valid_skew: (0..rows).map(DelayLine::new).collect(),
            first_skew: (0..rows).map(DelayLine::new).collect(),
            slot_skew: (0..rows).map(DelayLine::new).collect(),
            wgt_skew: (0..cols).map(DelayLine::new).collect(),
            idx_skew: (0..cols).map(DelayLine::new).collect(),
            en_skew: (0..cols).map(DelayLine::new).collect(),
            shift_skew: (0..cols).map(DelayLine::new).collect(),
            init_skew: (0..cols * slots).map(|b| DelayLine::new(b / slots + b % slots)).collect(),
            result_deskew: (0..cols * slots).map(|b| DelayLine::new(cols - 1 - b / slots + slots - 1 - b % slots)).collect(),
            column_or: (0..rows * cols * slots).map(|_| Signal::default()).collect(),
            act_lanes: Constant::new(lane_mask(arch.array.m_max as usize, 16)),
            wgt_lanes: Constant::new(lane_mask(arch.array.n_max as usize, 16)),
            idx_lanes: Constant::new(lane_mask(arch.array.n_max as usize, 4)),
            en_lanes: Constant::new(lane_mask(arch.array.n_max as usize, 1)),
            pes: (0..rows * cols).map(|_| Pe::new(arch)).collect(),
            _rows: rows,
            _cols: cols,
            _slots: slots,
            _pes: rows * cols,
            _buses: cols * slots,
            _last_row_start: (rows - 1) * cols,
        }
    }
}

impl Logic for PeArray {
    #[hdl_gen]
    fn update(&mut self) {
        // Left edge: row r is delayed r cycles; the step's valid, first and slot travel with it.
        for r in 0..self._rows {
            self.act_skew[r].clock.next = self.clock.val();
            self.valid_skew[r].clock.next = self.clock.val();
            self.first_skew[r].clock.next = self.clock.val();
            self.slot_skew[r].clock.next = self.clock.val();
            self.act_skew[r].data_in.next = self.act[r].val() & self.act_lanes.val();
            self.valid_skew[r].data_in.next = self.valid.val();
            self.first_skew[r].data_in.next = self.first.val();
            self.slot_skew[r].data_in.next = self.slot.val();
        }
        // Top edge: column c is delayed c cycles (its slot-j initial values c + j).
        for c in 0..self._cols {
            self.wgt_skew[c].clock.next = self.clock.val();
            self.idx_skew[c].clock.next = self.clock.val();
            self.en_skew[c].clock.next = self.clock.val();
            self.wgt_skew[c].data_in.next = self.wgt[c].val() & self.wgt_lanes.val();
            self.idx_skew[c].data_in.next = self.idx[c].val() & self.idx_lanes.val();
            self.en_skew[c].data_in.next = self.en[c].val() & self.en_lanes.val();
            self.shift_skew[c].clock.next = self.clock.val();
            self.shift_skew[c].data_in.next = self.shift.val();
        }
        for b in 0..self._buses {
            self.init_skew[b].clock.next = self.clock.val();
            self.result_deskew[b].clock.next = self.clock.val();
            self.init_skew[b].data_in.next = self.init[b].val();
        }
        // `cols` and `slots` as loop variables name strides inside indices.
        for cols in self._cols..(self._cols + 1usize) {
            for slots in self._slots..(self._slots + 1usize) {
                for r in 0..self._rows {
                    self.pes[r * cols].act_in.next = self.act_skew[r].data_out.val();
                    self.pes[r * cols].valid_in.next = self.valid_skew[r].data_out.val();
                    self.pes[r * cols].first_in.next = self.first_skew[r].data_out.val();
                    self.pes[r * cols].slot_in.next = self.slot_skew[r].data_out.val();
                    for c in 1..self._cols {
                        self.pes[r * cols + c].act_in.next = self.pes[r * cols + c - 1].act_out.val();
                        self.pes[r * cols + c].valid_in.next = self.pes[r * cols + c - 1].valid_out.val();
                        self.pes[r * cols + c].first_in.next = self.pes[r * cols + c - 1].first_out.val();
                        self.pes[r * cols + c].slot_in.next = self.pes[r * cols + c - 1].slot_out.val();
                    }
                }
                for c in 0..self._cols {
                    self.pes[c].wgt_in.next = self.wgt_skew[c].data_out.val();
                    self.pes[c].idx_in.next = self.idx_skew[c].data_out.val();
                    self.pes[c].en_in.next = self.en_skew[c].data_out.val();
                }
                for p in self._cols..self._pes {
                    self.pes[p].wgt_in.next = self.pes[p - cols].wgt_out.val();
                    self.pes[p].idx_in.next = self.pes[p - cols].idx_out.val();
                    self.pes[p].en_in.next = self.pes[p - cols].en_out.val();
                }
                // WS: column c's shift enable, and partial sums from the slot-0 initial-value
                // bus at the top down to the bottom row.
                for r in 0..self._rows {
                    for c in 0..self._cols {
                        self.pes[r * cols + c].ws.next = self.ws.val();
                        self.pes[r * cols + c].shift.next = self.shift_skew[c].data_out.val();
                    }
                }
                for c in 0..self._cols {
                    self.pes[c].psum_in.next = self.init_skew[c * slots].data_out.val();
                }
                for p in self._cols..self._pes {
                    self.pes[p].psum_in.next = self.pes[p - cols].psum_out.val();
                }
                // Each PE takes its column's initial-value bus of the slot it works on, and
                // ORs its result into that slot's result bus.
                for r in 0..self._rows {
                    for c in 0..self._cols {
                        self.pes[r * cols + c].init_in.next = self.init_skew[c * slots].data_out.val();
                        for j in 0..self._slots {
                            if self.pes[r * cols + c].result_slot.val() == j.to_bits() {
                                self.pes[r * cols + c].init_in.next = self.init_skew[c * slots + j].data_out.val();
                            }
                        }
                    }
                }
                for c in 0..self._cols {
                    for j in 0..self._slots {
                        self.column_or[c * slots + j].next = 0.into();
                        if self.pes[c].result_slot.val() == j.to_bits() {
                            self.column_or[c * slots + j].next = self.pes[c].result_out.val();
                        }
                    }
                }
                for p in self._cols..self._pes {
                    for j in 0..self._slots {
                        self.column_or[p * slots + j].next = self.column_or[(p - cols) * slots + j].val();
                        if self.pes[p].result_slot.val() == j.to_bits() {
                            self.column_or[p * slots + j].next =
                                self.column_or[(p - cols) * slots + j].val() | self.pes[p].result_out.val();
                        }
                    }
                }
                for last_row in self._last_row_start..(self._last_row_start + 1usize) {
                    for b in 0..self._buses {
                        self.result_deskew[b].data_in.next = self.column_or[last_row * slots + b].val();
                        self.result[b].next = self.result_deskew[b].data_out.val();
                    }
                    // WS: the bottom row's partial sums leave on the slot-0 result buses.
                    if self.ws.val() {
                        for c in 0..self._cols {
                            self.result_deskew[c * slots].data_in.next = self.pes[last_row + c].psum_out.val();
                        }
                    }
                }
            }
        }
        for p in 0..self._pes {
            self.pes[p].clock.next = self.clock.val();
        }
    }
}
