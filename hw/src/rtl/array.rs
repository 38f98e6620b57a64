//! The sparse tensor engine as RTL: a `rows x cols` output-stationary array of [`Pe`]s with its
//! edge skew registers and a step sequencer, sized only by an [`ArchConfig`].
//!
//! **Dataflow.** Output stationary, interleave `I = 1`: PE `(r, c)` owns output `(r, c)` of
//! the fold. Row `r`'s activation lanes enter at the left edge through `r` skew registers and
//! move right one PE per cycle; column `c`'s weights, indices and slot enables enter at the
//! top through `c` skew registers and move down one PE per cycle. Step `s` fed at cycle `t`
//! therefore reaches PE `(r, c)` at cycle `t + r + c`.
//!
//! **Timing** (cycle for cycle `sim::pe_array::gemm_timing` for OS with `I = 1`): after the
//! cycle that samples `start`, the sequencer raises `feed` at cycles `0, L, 2L, ...,
//! (S - 1) L` (`S` = `steps`, `L` = `array.accumulator_latency`: a PE takes a step only once
//! its previous sum has left the `L`-cycle accumulator path) and raises `done` for one cycle
//! at cycle `S L + R + C - 2`, the first cycle at which every accumulator holds its final
//! value: the simulator's per-fold `S * max(I, L) + R + C - 2`. Interleave `I > 1` (several
//! outputs per PE) is not implemented.
//!
//! **Results.** With `shift` high, every column's accumulators move down one PE per cycle:
//! `result[c]` shows the bottom PE's accumulator (row `R - 1` first) and `load[c]` enters at
//! the top, so `R` shift cycles read the fold out and leave the next fold's initial values
//! (+0 for overwrite, the old outputs for accumulate) in place.
//!
//! **Bus widths.** The edge buses have the widest lane counts (see [`super::pe`]); the edges
//! mask them to the configuration's lanes before the skew registers, so the unused lanes'
//! registers are constant and synthesis removes them.

use super::pe::{lane_mask, ActBus, EnBus, IdxBus, Pe, WgtBus};
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

/// The step sequencer of one fold (timing in the module documentation).
#[derive(LogicBlock)]
pub struct Sequencer {
    /// Core clock.
    pub clock: Signal<In, Clock>,
    // Control
    /// Start a fold (sampled while idle).
    pub start: Signal<In, Bit>,
    /// Reduction steps `S` of the fold.
    pub steps: Signal<In, Bits<16>>,
    /// High on the cycles at which the array edges take a step.
    pub feed: Signal<Out, Bit>,
    /// High for one cycle once every accumulator holds its final value.
    pub done: Signal<Out, Bit>,
    running: DFF<Bit>,
    phase: DFF<Bits<4>>,
    steps_left: DFF<Bits<16>>,
    tail_count: DFF<Bits<16>>,
    /// `L - 1`: the last phase of a step.
    last_phase: Constant<Bits<4>>,
    /// `R + C - 2`: cycles from the end of the last step to the last PE's final sum.
    tail: Constant<Bits<16>>,
}

impl Sequencer {
    /// The sequencer of `arch`'s array.
    pub fn new(arch: &ArchConfig) -> Self {
        let a = &arch.array;
        Sequencer {
            clock: Default::default(),
            start: Default::default(),
            steps: Default::default(),
            feed: Default::default(),
            done: Default::default(),
            running: Default::default(),
            phase: Default::default(),
            steps_left: Default::default(),
            tail_count: Default::default(),
            last_phase: Constant::new(u64::from(a.accumulator_latency - 1).into()),
            tail: Constant::new(u64::from(a.rows + a.cols - 2).into()),
        }
    }
}

impl Logic for Sequencer {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, running, phase, steps_left, tail_count);
        self.feed.next = self.running.q.val() && (self.steps_left.q.val() != 0) && (self.phase.q.val() == 0);
        self.done.next = self.running.q.val() && (self.steps_left.q.val() == 0) && (self.tail_count.q.val() == self.tail.val());
        if self.running.q.val() {
            if self.steps_left.q.val() != 0 {
                if self.phase.q.val() == self.last_phase.val() {
                    self.phase.d.next = 0.into();
                    self.steps_left.d.next = self.steps_left.q.val() - 1;
                } else {
                    self.phase.d.next = self.phase.q.val() + 1;
                }
            } else if self.tail_count.q.val() == self.tail.val() {
                self.running.d.next = false;
            } else {
                self.tail_count.d.next = self.tail_count.q.val() + 1;
            }
        } else if self.start.val() {
            self.running.d.next = true;
            self.steps_left.d.next = self.steps.val();
            self.phase.d.next = 0.into();
            self.tail_count.d.next = 0.into();
        }
    }
}

/// The PE array with its edges (see the module documentation).
#[derive(LogicBlock)]
pub struct PeArray {
    /// Core clock.
    pub clock: Signal<In, Clock>,
    // Control
    /// Start a fold.
    pub start: Signal<In, Bit>,
    /// Reduction steps of the fold.
    pub steps: Signal<In, Bits<16>>,
    /// High when the edge inputs are taken as the next step.
    pub feed: Signal<Out, Bit>,
    /// High for one cycle when the fold's sums are final.
    pub done: Signal<Out, Bit>,
    // Operand edges
    /// Activation lanes of each row.
    pub act: Vec<Signal<In, ActBus>>,
    /// Weights of each column.
    pub wgt: Vec<Signal<In, WgtBus>>,
    /// In-group indices of each column's weights.
    pub idx: Vec<Signal<In, IdxBus>>,
    /// Slot enables of each column.
    pub en: Vec<Signal<In, EnBus>>,
    // Drain and load
    /// Shift every column's accumulators down by one PE.
    pub shift: Signal<In, Bit>,
    /// Value entering each column's top accumulator on a shift.
    pub load: Vec<Signal<In, Bits<32>>>,
    /// Each column's bottom accumulator.
    pub result: Vec<Signal<Out, Bits<32>>>,
    sequencer: Sequencer,
    act_skew: Vec<DelayLine<ActBus>>,
    valid_skew: Vec<DelayLine<Bit>>,
    wgt_skew: Vec<DelayLine<WgtBus>>,
    idx_skew: Vec<DelayLine<IdxBus>>,
    en_skew: Vec<DelayLine<EnBus>>,
    act_lanes: Constant<ActBus>,
    wgt_lanes: Constant<WgtBus>,
    idx_lanes: Constant<IdxBus>,
    en_lanes: Constant<EnBus>,
    /// PEs in row-major order: PE `(r, c)` is `pes[r * cols + c]`.
    pes: Vec<Pe>,
    _rows: usize,
    _cols: usize,
    _pes: usize,
    _last_row_start: usize,
}

impl PeArray {
    /// The array of `arch` (`array.rows x array.cols` PEs).
    pub fn new(arch: &ArchConfig) -> Self {
        let (rows, cols) = (arch.array.rows as usize, arch.array.cols as usize);
        PeArray {
            clock: Default::default(),
            start: Default::default(),
            steps: Default::default(),
            feed: Default::default(),
            done: Default::default(),
            act: (0..rows).map(|_| Signal::default()).collect(),
            wgt: (0..cols).map(|_| Signal::default()).collect(),
            idx: (0..cols).map(|_| Signal::default()).collect(),
            en: (0..cols).map(|_| Signal::default()).collect(),
            shift: Default::default(),
            load: (0..cols).map(|_| Signal::default()).collect(),
            result: (0..cols).map(|_| Signal::default()).collect(),
            sequencer: Sequencer::new(arch),
            act_skew: (0..rows).map(DelayLine::new).collect(),
            valid_skew: (0..rows).map(DelayLine::new).collect(),
            wgt_skew: (0..cols).map(DelayLine::new).collect(),
            idx_skew: (0..cols).map(DelayLine::new).collect(),
            en_skew: (0..cols).map(DelayLine::new).collect(),
            act_lanes: Constant::new(lane_mask(arch.array.m_max as usize, 16)),
            wgt_lanes: Constant::new(lane_mask(arch.array.n_max as usize, 16)),
            idx_lanes: Constant::new(lane_mask(arch.array.n_max as usize, 4)),
            en_lanes: Constant::new(lane_mask(arch.array.n_max as usize, 1)),
            pes: (0..rows * cols).map(|_| Pe::new(arch)).collect(),
            _rows: rows,
            _cols: cols,
            _pes: rows * cols,
            _last_row_start: (rows - 1) * cols,
        }
    }
}

impl Logic for PeArray {
    #[hdl_gen]
    fn update(&mut self) {
        clock!(self, clock, sequencer);
        self.sequencer.start.next = self.start.val();
        self.sequencer.steps.next = self.steps.val();
        self.feed.next = self.sequencer.feed.val();
        self.done.next = self.sequencer.done.val();
        // Left edge: row r is delayed r cycles; the step's valid bit travels with it.
        for r in 0..self._rows {
            self.act_skew[r].clock.next = self.clock.val();
            self.valid_skew[r].clock.next = self.clock.val();
            self.act_skew[r].data_in.next = self.act[r].val() & self.act_lanes.val();
            self.valid_skew[r].data_in.next = self.sequencer.feed.val();
        }
        // Top edge: column c is delayed c cycles.
        for c in 0..self._cols {
            self.wgt_skew[c].clock.next = self.clock.val();
            self.idx_skew[c].clock.next = self.clock.val();
            self.en_skew[c].clock.next = self.clock.val();
            self.wgt_skew[c].data_in.next = self.wgt[c].val() & self.wgt_lanes.val();
            self.idx_skew[c].data_in.next = self.idx[c].val() & self.idx_lanes.val();
            self.en_skew[c].data_in.next = self.en[c].val() & self.en_lanes.val();
        }
        // `cols` as a loop variable names the row stride inside PE indices.
        for cols in self._cols..(self._cols + 1usize) {
            for r in 0..self._rows {
                self.pes[r * cols].act_in.next = self.act_skew[r].data_out.val();
                self.pes[r * cols].valid_in.next = self.valid_skew[r].data_out.val();
                for c in 1..self._cols {
                    self.pes[r * cols + c].act_in.next = self.pes[r * cols + c - 1].act_out.val();
                    self.pes[r * cols + c].valid_in.next = self.pes[r * cols + c - 1].valid_out.val();
                }
            }
            for c in 0..self._cols {
                self.pes[c].wgt_in.next = self.wgt_skew[c].data_out.val();
                self.pes[c].idx_in.next = self.idx_skew[c].data_out.val();
                self.pes[c].en_in.next = self.en_skew[c].data_out.val();
                self.pes[c].load_in.next = self.load[c].val();
            }
            for p in self._cols..self._pes {
                self.pes[p].wgt_in.next = self.pes[p - cols].wgt_out.val();
                self.pes[p].idx_in.next = self.pes[p - cols].idx_out.val();
                self.pes[p].en_in.next = self.pes[p - cols].en_out.val();
                self.pes[p].load_in.next = self.pes[p - cols].acc_out.val();
            }
        }
        for p in 0..self._pes {
            self.pes[p].clock.next = self.clock.val();
            self.pes[p].shift.next = self.shift.val();
        }
        for last_row in self._last_row_start..(self._last_row_start + 1usize) {
            for c in 0..self._cols {
                self.result[c].next = self.pes[last_row + c].acc_out.val();
            }
        }
    }
}
