//! The controller as RTL: in-order dispatch of a program into one queue per unit, the counting
//! semaphores, and the start of each unit's queue head, cycle for cycle as the simulator's
//! controller (`sim/src/controller.rs`, whose rules the ISA module documents).
//!
//! Each cycle `t` (counted from the cycle after `start`):
//! 1. every unit whose `unit_done` is high completes its running instruction: the semaphores
//!    it signals count up, and the unit is idle again within the same cycle;
//! 2. each idle unit, in `Unit::ALL` order, starts the head of its queue when every semaphore
//!    the head waits on holds at least as many tokens as the head names it (a semaphore named
//!    twice needs two); starting takes them, so a later unit in the order sees what is left.
//!    `issue[u]` is high for that cycle with the instruction's word and program index;
//! 3. the dispatcher moves the instruction at `next` into its unit's queue unless that queue
//!    holds `control.queue_depth` instructions (after this cycle's starts): one per cycle. An
//!    instruction dispatched in cycle `t` can start from cycle `t + 1`.
//!
//! Instruction memory is synchronous: `imem_addr` is the address read at the clock edge, and
//! `imem_data` holds its word in the next cycle. The `start` cycle reads address 0, so the
//! first instruction dispatches at cycle 0 as in the simulator.
//!
//! With limited readers or writers per buffer partition (`buffers.readers`, `buffers.writers`,
//! `buffers.partitions`), a unit in (2) also needs its head's buffer use to fit next to the
//! running instructions' (those not completing in (1)) and the use of the units started before
//! it in the cycle, as the simulator's controller rules; a started instruction holds its use
//! until it completes. The head's use, per partition, comes decoded from outside on
//! `head_reads` and `head_writes` ([`buffer_use_module`] decodes the instruction words, from
//! the operands' ranges, `issue_word` being each queue's head in every cycle). The decoders
//! are combinational from the queue heads to the starts: a long path (multiplications for the
//! operands' sizes) that a board build at the target clock would register.
//!
//! Units report completion on `unit_done`; the simulator's cost model says when (the units'
//! RTL will). Semaphore counts are 16 bits wide: `overflow` rises, and stays, when one nears
//! that (the simulator's are unbounded); `bad_opcode` rises, and dispatch stops, on a word
//! whose opcode names no instruction.

use super::verilog::deduplicate;
use super::RtlDesign;
use crate::isa::{layouts, Buffer, Unit, VecOp, HEADER_BITS, SEMAPHORES, SEMAPHORE_BITS, WORD_BITS};
use crate::operands::BUFFERS;
use crate::{ArchConfig, Error};
use rust_hdl::prelude::*;
use std::fmt::Write as _;

/// Name of the top Verilog module of [`generate`].
pub const TOP_MODULE: &str = "sat_controller";

/// The header layout the block's bit slices assume: 5-bit opcode, 3-bit tag, then three wait
/// and three signal semaphore numbers of 5 bits (a change to the ISA fails to compile here).
const _: () = assert!(SEMAPHORE_BITS == 5 && SEMAPHORES == 32 && HEADER_BITS == 38 && WORD_BITS == 256);

/// Units, in start order.
pub const UNITS: usize = Unit::ALL.len();
// rust-hdl's kernels need literal loop bounds (or fields): `0..6` units and `0..32` semaphores
// below.
const _: () = assert!(UNITS == 6);

/// Name stem of the buffer-use decoders of [`buffer_use_module`].
pub const BUFFER_USE_MODULE: &str = "sat_buffer_use";

/// Buffer partitions the controller accounts for: `buffers.partitions` per buffer.
pub fn slots(arch: &ArchConfig) -> usize {
    BUFFERS * arch.buffers.partitions as usize
}

/// One instruction word.
pub type InsnWord = Bits<256>;
/// One semaphore's token count.
pub type Tokens = Bits<16>;

/// The controller (see the module documentation).
#[derive(LogicBlock)]
pub struct Controller {
    /// Core clock.
    pub clock: Signal<In, Clock>,
    /// Starts the program (held for one cycle): clears the state and reads instruction 0.
    pub start: Signal<In, Bit>,
    /// Instructions in the program.
    pub length: Signal<In, Bits<32>>,
    /// Address of the instruction word read at the clock edge.
    pub imem_addr: Signal<Out, Bits<32>>,
    /// The word at the address of the previous cycle.
    pub imem_data: Signal<In, InsnWord>,
    /// Per unit (`Unit::ALL` order): its queue's head starts this cycle.
    pub issue: Vec<Signal<Out, Bit>>,
    /// Per unit: the starting instruction's word.
    pub issue_word: Vec<Signal<Out, InsnWord>>,
    /// Per unit: the starting instruction's index in the program.
    pub issue_index: Vec<Signal<Out, Bits<32>>>,
    /// Per unit: its running instruction completes this cycle.
    pub unit_done: Vec<Signal<In, Bit>>,
    /// Per unit and buffer partition (`u * slots + b * partitions + p`, see [`slots`]):
    /// operands its queue head reads from the partition.
    pub head_reads: Vec<Signal<In, Bits<4>>>,
    /// Per unit and buffer partition: its queue head writes the partition.
    pub head_writes: Vec<Signal<In, Bit>>,
    /// Instructions are left to dispatch, queued or running.
    pub busy: Signal<Out, Bit>,
    /// Cycles since the cycle after `start`.
    pub cycle: Signal<Out, Bits<64>>,
    /// A dispatched word's opcode names no instruction (dispatch stopped).
    pub bad_opcode: Signal<Out, Bit>,
    /// A semaphore count neared its 16-bit limit.
    pub overflow: Signal<Out, Bit>,
    // State
    active: DFF<Bit>,
    next: DFF<Bits<32>>,
    cycles: DFF<Bits<64>>,
    halted: DFF<Bit>,
    saturated: DFF<Bit>,
    sems: Vec<DFF<Tokens>>,
    running: Vec<DFF<Bit>>,
    running_signals: Vec<DFF<Bits<15>>>,
    queue_word: Vec<DFF<InsnWord>>,
    queue_index: Vec<DFF<Bits<32>>>,
    queue_len: Vec<DFF<Bits<16>>>,
    running_reads: Vec<DFF<Bits<4>>>,
    running_writes: Vec<DFF<Bit>>,
    // The ISA's opcode -> unit table
    op_code: Vec<Constant<Bits<5>>>,
    op_unit: Vec<Constant<Bits<3>>>,
    depth: Constant<Bits<16>>,
    /// `buffers.readers` and `buffers.writers` (0: no limit).
    readers: Constant<Bits<4>>,
    writers: Constant<Bits<4>>,
    // Combinational
    completing: Vec<Signal<Local, Bit>>,
    idle: Vec<Signal<Local, Bit>>,
    /// Tokens after the completions of units `0..u` (`u * 32 + s`).
    after_done: Vec<Signal<Local, Tokens>>,
    /// Tokens the head of unit `u` takes from semaphore `s` (`u * 32 + s`).
    demand: Vec<Signal<Local, Tokens>>,
    /// Tokens left after the starts of units `0..u` (`u * 32 + s`).
    after_start: Vec<Signal<Local, Tokens>>,
    covered: Vec<Signal<Local, Bit>>,
    /// Reads and writes of each buffer held by the instructions running on after the
    /// completions, over units `0..u` (`u * slots + slot`).
    held_reads: Vec<Signal<Local, Bits<4>>>,
    held_writes: Vec<Signal<Local, Bits<4>>>,
    /// Reads and writes held after the starts of units `0..u` (`u * slots + slot`).
    taken_reads: Vec<Signal<Local, Bits<4>>>,
    taken_writes: Vec<Signal<Local, Bits<4>>>,
    fits: Vec<Signal<Local, Bit>>,
    starts: Vec<Signal<Local, Bit>>,
    len_after_pop: Vec<Signal<Local, Bits<16>>>,
    fetch_unit: Signal<Local, Bits<3>>,
    fetch_known: Signal<Local, Bit>,
    fetch_valid: Signal<Local, Bit>,
    push: Vec<Signal<Local, Bit>>,
    dispatch: Signal<Local, Bit>,
    any_left: Signal<Local, Bit>,
    _depth: usize,
    _slots: usize,
    _last_entry: usize,
    _ops: usize,
}

/// `n` signals.
fn signals<D: Direction, T: Synth>(n: usize) -> Vec<Signal<D, T>> {
    (0..n).map(|_| Signal::default()).collect()
}

impl Controller {
    /// The controller of `arch` (`control.queue_depth` entries per unit queue).
    pub fn new(arch: &ArchConfig) -> Self {
        let depth = arch.control.queue_depth as usize;
        let ops = layouts();
        Controller {
            clock: Default::default(),
            start: Default::default(),
            length: Default::default(),
            imem_addr: Default::default(),
            imem_data: Default::default(),
            issue: signals(UNITS),
            issue_word: signals(UNITS),
            issue_index: signals(UNITS),
            unit_done: signals(UNITS),
            head_reads: signals(UNITS * slots(arch)),
            head_writes: signals(UNITS * slots(arch)),
            busy: Default::default(),
            cycle: Default::default(),
            bad_opcode: Default::default(),
            overflow: Default::default(),
            active: Default::default(),
            next: Default::default(),
            cycles: Default::default(),
            halted: Default::default(),
            saturated: Default::default(),
            sems: (0..SEMAPHORES).map(|_| DFF::default()).collect(),
            running: (0..UNITS).map(|_| DFF::default()).collect(),
            running_signals: (0..UNITS).map(|_| DFF::default()).collect(),
            queue_word: (0..UNITS * depth).map(|_| DFF::default()).collect(),
            queue_index: (0..UNITS * depth).map(|_| DFF::default()).collect(),
            queue_len: (0..UNITS).map(|_| DFF::default()).collect(),
            running_reads: (0..UNITS * slots(arch)).map(|_| DFF::default()).collect(),
            running_writes: (0..UNITS * slots(arch)).map(|_| DFF::default()).collect(),
            op_code: ops.iter().map(|l| Constant::new(u64::from(l.opcode).to_bits())).collect(),
            op_unit: ops.iter().map(|l| Constant::new((l.unit.index() as u64).to_bits())).collect(),
            depth: Constant::new((depth as u64).to_bits()),
            readers: Constant::new(u64::from(arch.buffers.readers).to_bits()),
            writers: Constant::new(u64::from(arch.buffers.writers).to_bits()),
            completing: signals(UNITS),
            idle: signals(UNITS),
            after_done: signals((UNITS + 1) * SEMAPHORES),
            demand: signals(UNITS * SEMAPHORES),
            after_start: signals((UNITS + 1) * SEMAPHORES),
            covered: signals(UNITS),
            held_reads: signals((UNITS + 1) * slots(arch)),
            held_writes: signals((UNITS + 1) * slots(arch)),
            taken_reads: signals((UNITS + 1) * slots(arch)),
            taken_writes: signals((UNITS + 1) * slots(arch)),
            fits: signals(UNITS),
            starts: signals(UNITS),
            len_after_pop: signals(UNITS),
            fetch_unit: Default::default(),
            fetch_known: Default::default(),
            fetch_valid: Default::default(),
            push: signals(UNITS),
            dispatch: Default::default(),
            any_left: Default::default(),
            _depth: depth,
            _slots: slots(arch),
            _last_entry: depth - 1,
            _ops: ops.len(),
        }
    }
}

impl Logic for Controller {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, active, next, cycles, halted, saturated);
        for s in 0..32 {
            self.sems[s].clock.next = self.clock.val();
            self.sems[s].d.next = self.sems[s].q.val();
        }
        for u in 0..6 {
            self.running[u].clock.next = self.clock.val();
            self.running[u].d.next = self.running[u].q.val();
            self.running_signals[u].clock.next = self.clock.val();
            self.running_signals[u].d.next = self.running_signals[u].q.val();
            self.queue_len[u].clock.next = self.clock.val();
            self.queue_len[u].d.next = self.queue_len[u].q.val();
        }
        for sl in self._slots..(self._slots + 1usize) {
            for u in 0..6 {
                for b in 0..self._slots {
                    self.running_reads[u * sl + b].clock.next = self.clock.val();
                    self.running_reads[u * sl + b].d.next = self.running_reads[u * sl + b].q.val();
                    self.running_writes[u * sl + b].clock.next = self.clock.val();
                    self.running_writes[u * sl + b].d.next = self.running_writes[u * sl + b].q.val();
                }
            }
        }
        for d in self._depth..(self._depth + 1usize) {
            for u in 0..6 {
                for i in 0..self._depth {
                    self.queue_word[u * d + i].clock.next = self.clock.val();
                    self.queue_word[u * d + i].d.next = self.queue_word[u * d + i].q.val();
                    self.queue_index[u * d + i].clock.next = self.clock.val();
                    self.queue_index[u * d + i].d.next = self.queue_index[u * d + i].q.val();
                }
            }
        }
        // (1) Completions: each completing unit adds one token per semaphore it signals.
        for u in 0..6 {
            self.completing[u].next = self.active.q.val() && self.running[u].q.val() && self.unit_done[u].val();
            self.idle[u].next = !self.running[u].q.val() || self.unit_done[u].val();
        }
        for s in 0..32 {
            self.after_done[s].next = self.sems[s].q.val();
        }
        for u in 0..6 {
            for s in 0..32 {
                self.after_done[(u + 1) * 32 + s].next = self.after_done[u * 32 + s].val();
                if self.completing[u].val() && s != 0 {
                    if self.running_signals[u].q.val().get_bits::<5>(0) == s.to_bits() {
                        if self.running_signals[u].q.val().get_bits::<5>(5) == s.to_bits() {
                            if self.running_signals[u].q.val().get_bits::<5>(10) == s.to_bits() {
                                self.after_done[(u + 1) * 32 + s].next = self.after_done[u * 32 + s].val() + 3;
                            } else {
                                self.after_done[(u + 1) * 32 + s].next = self.after_done[u * 32 + s].val() + 2;
                            }
                        } else if self.running_signals[u].q.val().get_bits::<5>(10) == s.to_bits() {
                            self.after_done[(u + 1) * 32 + s].next = self.after_done[u * 32 + s].val() + 2;
                        } else {
                            self.after_done[(u + 1) * 32 + s].next = self.after_done[u * 32 + s].val() + 1;
                        }
                    } else if self.running_signals[u].q.val().get_bits::<5>(5) == s.to_bits() {
                        if self.running_signals[u].q.val().get_bits::<5>(10) == s.to_bits() {
                            self.after_done[(u + 1) * 32 + s].next = self.after_done[u * 32 + s].val() + 2;
                        } else {
                            self.after_done[(u + 1) * 32 + s].next = self.after_done[u * 32 + s].val() + 1;
                        }
                    } else if self.running_signals[u].q.val().get_bits::<5>(10) == s.to_bits() {
                        self.after_done[(u + 1) * 32 + s].next = self.after_done[u * 32 + s].val() + 1;
                    }
                }
            }
        }
        // The buffer use of the instructions that run on.
        for b in 0..self._slots {
            self.held_reads[b].next = 0.into();
            self.held_writes[b].next = 0.into();
        }
        for sl in self._slots..(self._slots + 1usize) {
            for u in 0..6 {
                for b in 0..self._slots {
                    self.held_reads[(u + 1) * sl + b].next = self.held_reads[u * sl + b].val();
                    self.held_writes[(u + 1) * sl + b].next = self.held_writes[u * sl + b].val();
                    if self.running[u].q.val() && !self.completing[u].val() {
                        self.held_reads[(u + 1) * sl + b].next =
                            self.held_reads[u * sl + b].val() + self.running_reads[u * sl + b].q.val();
                        if self.running_writes[u * sl + b].q.val() {
                            self.held_writes[(u + 1) * sl + b].next = self.held_writes[u * sl + b].val() + 1;
                        }
                    }
                }
            }
        }
        // (2) Starts, in unit order, each taking its head's tokens and buffer use.
        for d in self._depth..(self._depth + 1usize) {
            for u in 0..6 {
                for s in 0..32 {
                    self.demand[u * 32 + s].next = 0.into();
                    if s != 0 {
                        if self.queue_word[u * d].q.val().get_bits::<5>(8) == s.to_bits() {
                            if self.queue_word[u * d].q.val().get_bits::<5>(13) == s.to_bits() {
                                if self.queue_word[u * d].q.val().get_bits::<5>(18) == s.to_bits() {
                                    self.demand[u * 32 + s].next = 3.into();
                                } else {
                                    self.demand[u * 32 + s].next = 2.into();
                                }
                            } else if self.queue_word[u * d].q.val().get_bits::<5>(18) == s.to_bits() {
                                self.demand[u * 32 + s].next = 2.into();
                            } else {
                                self.demand[u * 32 + s].next = 1.into();
                            }
                        } else if self.queue_word[u * d].q.val().get_bits::<5>(13) == s.to_bits() {
                            if self.queue_word[u * d].q.val().get_bits::<5>(18) == s.to_bits() {
                                self.demand[u * 32 + s].next = 2.into();
                            } else {
                                self.demand[u * 32 + s].next = 1.into();
                            }
                        } else if self.queue_word[u * d].q.val().get_bits::<5>(18) == s.to_bits() {
                            self.demand[u * 32 + s].next = 1.into();
                        }
                    }
                }
            }
        }
        for s in 0..32 {
            self.after_start[s].next = self.after_done[6 * 32 + s].val();
        }
        for sl in self._slots..(self._slots + 1usize) {
            for b in 0..self._slots {
                self.taken_reads[b].next = self.held_reads[6 * sl + b].val();
                self.taken_writes[b].next = self.held_writes[6 * sl + b].val();
            }
            for u in 0..6 {
                self.covered[u].next = true;
                for s in 0..32 {
                    if self.after_start[u * 32 + s].val() < self.demand[u * 32 + s].val() {
                        self.covered[u].next = false;
                    }
                }
                self.fits[u].next = true;
                for b in 0..self._slots {
                    if self.readers.val() != 0
                        && self.taken_reads[u * sl + b].val() + self.head_reads[u * sl + b].val() > self.readers.val()
                    {
                        self.fits[u].next = false;
                    }
                    if self.writers.val() != 0
                        && self.head_writes[u * sl + b].val()
                        && self.taken_writes[u * sl + b].val() + 1 > self.writers.val()
                    {
                        self.fits[u].next = false;
                    }
                }
                self.starts[u].next = self.active.q.val()
                    && self.idle[u].val()
                    && self.queue_len[u].q.val() != 0
                    && self.covered[u].val()
                    && self.fits[u].val();
                for b in 0..self._slots {
                    self.taken_reads[(u + 1) * sl + b].next = self.taken_reads[u * sl + b].val();
                    self.taken_writes[(u + 1) * sl + b].next = self.taken_writes[u * sl + b].val();
                    if self.starts[u].val() {
                        self.taken_reads[(u + 1) * sl + b].next =
                            self.taken_reads[u * sl + b].val() + self.head_reads[u * sl + b].val();
                        self.running_reads[u * sl + b].d.next = self.head_reads[u * sl + b].val();
                        self.running_writes[u * sl + b].d.next = self.head_writes[u * sl + b].val();
                        if self.head_writes[u * sl + b].val() {
                            self.taken_writes[(u + 1) * sl + b].next = self.taken_writes[u * sl + b].val() + 1;
                        }
                    }
                }
                for s in 0..32 {
                    if self.starts[u].val() {
                        self.after_start[(u + 1) * 32 + s].next =
                            self.after_start[u * 32 + s].val() - self.demand[u * 32 + s].val();
                    } else {
                        self.after_start[(u + 1) * 32 + s].next = self.after_start[u * 32 + s].val();
                    }
                }
            }
        }
        for s in 0..32 {
            self.sems[s].d.next = self.after_start[6 * 32 + s].val();
            if self.sems[s].q.val() >= 0xfff0 {
                self.saturated.d.next = true;
            }
        }
        for d in self._depth..(self._depth + 1usize) {
            for u in 0..6 {
                self.issue[u].next = self.starts[u].val();
                self.issue_word[u].next = self.queue_word[u * d].q.val();
                self.issue_index[u].next = self.queue_index[u * d].q.val();
                if self.starts[u].val() {
                    self.running[u].d.next = true;
                    self.running_signals[u].d.next = self.queue_word[u * d].q.val().get_bits::<15>(23);
                    self.len_after_pop[u].next = self.queue_len[u].q.val() - 1;
                } else {
                    if self.completing[u].val() {
                        self.running[u].d.next = false;
                    }
                    self.len_after_pop[u].next = self.queue_len[u].q.val();
                }
            }
        }
        // (3) Dispatch of the fetched word into its unit's queue.
        self.fetch_valid.next = self.active.q.val() && !self.halted.q.val() && (self.next.q.val() < self.length.val());
        self.fetch_known.next = false;
        self.fetch_unit.next = 0.into();
        for i in 0..self._ops {
            if self.imem_data.val().get_bits::<5>(0) == self.op_code[i].val() {
                self.fetch_known.next = true;
                self.fetch_unit.next = self.op_unit[i].val();
            }
        }
        if self.fetch_valid.val() && !self.fetch_known.val() {
            self.halted.d.next = true;
        }
        self.dispatch.next = false;
        for u in 0..6 {
            self.push[u].next = self.fetch_valid.val()
                && self.fetch_known.val()
                && self.fetch_unit.val() == u.to_bits()
                && self.len_after_pop[u].val() < self.depth.val();
            if self.push[u].val() {
                self.dispatch.next = true;
                self.queue_len[u].d.next = self.len_after_pop[u].val() + 1;
            } else {
                self.queue_len[u].d.next = self.len_after_pop[u].val();
            }
        }
        for d in self._depth..(self._depth + 1usize) {
            for u in 0..6 {
                // A start shifts the queue up by one entry; a push then writes behind the rest.
                for i in 0..self._last_entry {
                    if self.starts[u].val() {
                        self.queue_word[u * d + i].d.next = self.queue_word[u * d + i + 1].q.val();
                        self.queue_index[u * d + i].d.next = self.queue_index[u * d + i + 1].q.val();
                    }
                }
                for i in 0..self._depth {
                    if self.push[u].val() && self.len_after_pop[u].val() == i.to_bits() {
                        self.queue_word[u * d + i].d.next = self.imem_data.val();
                        self.queue_index[u * d + i].d.next = self.next.q.val();
                    }
                }
            }
        }
        if self.dispatch.val() {
            self.next.d.next = self.next.q.val() + 1;
            self.imem_addr.next = self.next.q.val() + 1;
        } else {
            self.imem_addr.next = self.next.q.val();
        }
        // Progress.
        self.any_left.next = self.next.q.val() < self.length.val();
        for u in 0..6 {
            if self.queue_len[u].q.val() != 0 || self.running[u].q.val() {
                self.any_left.next = true;
            }
        }
        self.busy.next = self.active.q.val() && self.any_left.val() && !self.halted.q.val();
        if self.active.q.val() {
            self.cycles.d.next = self.cycles.q.val() + 1;
        }
        // A start clears everything and reads instruction 0.
        if self.start.val() {
            self.active.d.next = true;
            self.next.d.next = 0.into();
            self.cycles.d.next = 0.into();
            self.halted.d.next = false;
            self.saturated.d.next = false;
            self.imem_addr.next = 0.into();
            for s in 0..32 {
                self.sems[s].d.next = 0.into();
            }
            for u in 0..6 {
                self.running[u].d.next = false;
                self.queue_len[u].d.next = 0.into();
            }
        }
        self.cycle.next = self.cycles.q.val();
        self.bad_opcode.next = self.halted.q.val();
        self.overflow.next = self.saturated.q.val();
    }
}

/// Generates the controller of `arch` as one Verilog file, top module [`TOP_MODULE`].
pub fn generate(arch: &ArchConfig) -> Result<RtlDesign, Error> {
    arch.validate()?;
    let mut top = Controller::new(arch);
    top.connect_all();
    check_all(&top).map_err(|e| Error::RtlCheck { arch: arch.name.clone(), message: format!("{e:?}") })?;
    deduplicate(&generate_verilog_unchecked(&top), TOP_MODULE)
}

/// Name of unit `unit`'s buffer-use decoder of [`buffer_use_module`].
pub fn buffer_use_module_name(unit: Unit) -> String {
    format!("{BUFFER_USE_MODULE}_{}", unit.name())
}

/// One operand in the decoder: Verilog expressions of when it exists, its buffer code, its
/// first element and its length, whether it is written, and whether it is read once and kept
/// (`Operand::kept`).
struct DecodedOperand {
    valid: String,
    buffer: String,
    start: String,
    len: String,
    write: bool,
    kept: bool,
}

/// The buffer-use decoders, one module per unit (`sat_buffer_use_<unit>`, which only decodes
/// its unit's instructions): from an instruction word, per buffer (`Buffer::ALL` order) and
/// partition (slot `b * partitions + p`), the operands that read it (`reads`, 4 bits each) and
/// whether it is written (`writes`), by `Op::buffer_use`'s rules (the module documentation of
/// `crate::operands`; a test compares the two in Icarus Verilog). Each operand's range is
/// computed from the word (transfer spans, GEMM and prune sizes, the vector ops' geometry) and
/// its partitions are its first and last elements shifted by the partition size, a power of
/// two. Words of another unit's opcodes use nothing.
pub fn buffer_use_module(arch: &ArchConfig) -> Result<String, Error> {
    let parts = arch.buffers.partitions as usize;
    let layouts = layouts();
    let locate = |mnemonic: &str, name: &str| -> Result<(u32, u32), Error> {
        let layout = layouts.iter().find(|l| l.mnemonic == mnemonic);
        let f = layout
            .and_then(|l| l.fields.iter().find(|f| f.name == name))
            .ok_or_else(|| Error::RtlVerilog { message: format!("the ISA table has no field `{name}` in `{mnemonic}`") })?;
        Ok((f.lo, f.width))
    };
    // A field as it is (buffer codes, the vector op), and zero-extended to the decoder's 64-bit
    // arithmetic.
    let raw = |mnemonic: &str, name: &str| locate(mnemonic, name).map(|(lo, width)| format!("word[{lo} +: {width}]"));
    let field = |mnemonic: &str, name: &str| {
        locate(mnemonic, name).map(|(lo, width)| format!("{{{}'d0, word[{lo} +: {width}]}}", 64 - width))
    };
    let opcode = |mnemonic: &str| -> Result<u32, Error> {
        layouts
            .iter()
            .find(|l| l.mnemonic == mnemonic)
            .map(|l| l.opcode)
            .ok_or_else(|| Error::RtlVerilog { message: format!("the ISA table has no `{mnemonic}`") })
    };
    // The entries an N:M format keeps of `value` elements, `value / M * N`, from the format's
    // field `ratio` (N in bits 0..4, M in bits 4..9, a power of two the simulator checks).
    let kept = |value: &str, ratio: &str| {
        let by_m: Vec<String> = [16, 8, 4, 2]
            .iter()
            .map(|m: &u32| format!("{ratio}[8:4] == {m} ? ({value} >> {}) * {ratio}[3:0] : ", m.trailing_zeros()))
            .collect();
        format!("{}{value} * {ratio}[3:0]", by_m.concat())
    };
    // Partition of an element of each buffer: its index shifted by the partition size.
    let mut shifts = Vec::new();
    for &b in Buffer::ALL {
        let size = arch.partition_elements(b);
        if parts > 1 && !size.is_power_of_two() {
            return Err(Error::RtlVerilog {
                message: format!(
                    "{}: a partition of buffer {b} holds {size} elements; the RTL needs a power of two when buffers.partitions > 1",
                    arch.name
                ),
            });
        }
        shifts.push(size.trailing_zeros());
    }
    let mut s = String::new();
    for &unit in Unit::ALL.iter() {
        let name = buffer_use_module_name(unit);
        let code = |b: Buffer| format!("3'd{}", crate::isa::Field::to_bits(b));
        let d = |valid: String, buffer: String, start: String, len: String, write: bool| DecodedOperand {
            valid,
            buffer,
            start,
            len,
            write,
            kept: false,
        };
        let mut body = String::new();
        let mut operands = Vec::new();
        match unit {
            Unit::Load | Unit::Store => {
                let m = if unit == Unit::Load { "load" } else { "store" };
                let _ = writeln!(
                    body,
                    "    wire op = opcode == 5'd{op};\n    wire [63:0] rows = {rows}, cols = {cols}, srs = {srs}, sram = {sram};\n    \
                     wire [63:0] span = (rows == 0 || cols == 0) ? 64'd0 : (rows - 1) * srs + cols;",
                    op = opcode(m)?,
                    rows = field(m, "rows")?,
                    cols = field(m, "cols")?,
                    srs = field(m, "sram_row_stride")?,
                    sram = field(m, "sram")?,
                );
                let _ = writeln!(body, "    wire [2:0] buf_code = {};", raw(m, "buf")?);
                let buf = "buf_code".to_string();
                operands.push(d("op".into(), buf, "sram".into(), "span".into(), unit == Unit::Load));
            }
            Unit::Tensor => {
                let _ = writeln!(
                    body,
                    "    wire op = opcode == 5'd{op};\n    wire [63:0] weights = {weights}, rows = {rows}, cols = {cols}, depth = {depth};\n    \
                     wire [63:0] input_at = {input}, weight_at = {weight}, output_at = {output};\n    \
                     wire sparse = weights != 0, acc_read = {accumulate} != 0 || {dataflow} != 0;\n    \
                     // Stored entries per weight row: depth, or depth / M * N.\n    \
                     wire [63:0] stored = !sparse ? depth : {kept_of_depth};",
                    op = opcode("gemm")?,
                    kept_of_depth = kept("depth", "weights"),
                    weights = field("gemm", "weights")?,
                    rows = field("gemm", "rows")?,
                    cols = field("gemm", "cols")?,
                    depth = field("gemm", "depth")?,
                    input = field("gemm", "input")?,
                    weight = field("gemm", "weight")?,
                    output = field("gemm", "output")?,
                    accumulate = field("gemm", "accumulate")?,
                    dataflow = field("gemm", "dataflow")?,
                );
                operands.push(d("op".into(), code(Buffer::Act), "input_at".into(), "rows * depth".into(), false));
                operands.push(d("op".into(), code(Buffer::Wgt), "weight_at".into(), "cols * stored".into(), false));
                operands.push(d("op && sparse".into(), code(Buffer::Idx), "weight_at".into(), "cols * stored".into(), false));
                operands.push(d("op && acc_read".into(), code(Buffer::Acc), "output_at".into(), "rows * cols".into(), false));
                operands.push(d("op".into(), code(Buffer::Acc), "output_at".into(), "rows * cols".into(), true));
            }
            Unit::Sore => {
                let _ = writeln!(
                    body,
                    "    wire op = opcode == 5'd{op};\n    wire [63:0] nm = {nm}, dense = {rows} * {cols};\n    \
                     wire [63:0] src = {src}, dst = {dst}, mask = {mask};\n    wire write_mask = {write_mask} != 0;\n    \
                     wire [63:0] compressed = {kept_of_dense};",
                    op = opcode("prune")?,
                    kept_of_dense = kept("dense", "nm"),
                    nm = field("prune", "nm")?,
                    rows = field("prune", "rows")?,
                    cols = field("prune", "cols")?,
                    src = field("prune", "src")?,
                    dst = field("prune", "dst")?,
                    mask = field("prune", "mask")?,
                    write_mask = field("prune", "write_mask")?,
                );
                operands.push(d("op".into(), code(Buffer::Master), "src".into(), "dense".into(), false));
                operands.push(d("op".into(), code(Buffer::Wgt), "dst".into(), "compressed".into(), true));
                operands.push(d("op".into(), code(Buffer::Idx), "dst".into(), "compressed".into(), true));
                operands.push(d("op && write_mask".into(), code(Buffer::Mask), "mask".into(), "dense".into(), true));
            }
            Unit::Wuve => {
                let _ = writeln!(
                    body,
                    "    wire op = opcode == 5'd{op};\n    wire [63:0] count = {count}, weight = {weight}, momentum = {momentum};\n    \
                     wire [63:0] grad = {grad}, mask = {mask}, hyper = {hyper};\n    wire use_mask = {use_mask} != 0;",
                    op = opcode("update")?,
                    count = field("update", "count")?,
                    weight = field("update", "weight")?,
                    momentum = field("update", "momentum")?,
                    grad = field("update", "grad")?,
                    mask = field("update", "mask")?,
                    hyper = field("update", "hyper")?,
                    use_mask = field("update", "use_mask")?,
                );
                operands.push(d("op".into(), code(Buffer::Master), "weight".into(), "count".into(), false));
                operands.push(d("op".into(), code(Buffer::Master), "momentum".into(), "count".into(), false));
                operands.push(DecodedOperand {
                    kept: true,
                    ..d("op".into(), code(Buffer::Master), "hyper".into(), "64'd4".into(), false)
                });
                operands.push(d("op".into(), code(Buffer::Acc), "grad".into(), "count".into(), false));
                operands.push(d("op && use_mask".into(), code(Buffer::Mask), "mask".into(), "count".into(), false));
                operands.push(d("op".into(), code(Buffer::Master), "weight".into(), "count".into(), true));
                operands.push(d("op".into(), code(Buffer::Master), "momentum".into(), "count".into(), true));
            }
            Unit::Vector => {
                let _ = writeln!(
                    body,
                    "    wire op = opcode == 5'd{op};\n    wire [4:0] vec_op = {vec_op};\n    \
                     wire [63:0] n = {count}, p0 = {p0}, p1 = {p1}, p2 = {p2}, p3 = {p3};\n    \
                     wire [63:0] a = {a}, b = {b}, dst = {dst};\n    wire [2:0] a_buf = {a_buf}, b_buf = {b_buf}, dst_buf = {dst_buf};\n    \
                     // The geometry of crate::operands::VecGeometry: elements of a, b and the destination.\n    \
                     wire [63:0] planes_in = n * p0 * p1;\n    \
                     wire [63:0] pooled = (p3 == 0 || p2 > p0 || p2 > p1) ? 64'd0 : n * ((p0 - p2) / p3 + 1) * ((p1 - p2) / p3 + 1);\n    \
                     wire [63:0] rows_len = n * p0, stats = p1 == 1 ? n : p0;\n    \
                     reg [63:0] e_in, e_b, e_out;\n    reg reads_a, reads_b, reads_dst;\n    always @* begin\n        \
                     e_in = n; e_b = 64'd0; e_out = n;\n        {{reads_a, reads_b, reads_dst}} = 3'b000;\n        case (vec_op)",
                    op = opcode("vec")?,
                    vec_op = raw("vec", "op")?,
                    count = field("vec", "count")?,
                    p0 = field("vec", "p0")?,
                    p1 = field("vec", "p1")?,
                    p2 = field("vec", "p2")?,
                    p3 = field("vec", "p3")?,
                    a = field("vec", "a")?,
                    b = field("vec", "b")?,
                    dst = field("vec", "dst")?,
                    a_buf = raw("vec", "a_buf")?,
                    b_buf = raw("vec", "b_buf")?,
                    dst_buf = raw("vec", "dst_buf")?,
                );
                for &op in VecOp::ALL {
                    let reads = op.operands();
                    let (e_in, e_b, e_out) = match op {
                        VecOp::Copy | VecOp::Relu | VecOp::Gelu => ("n", "64'd0", "n"),
                        VecOp::Add | VecOp::ReluGrad | VecOp::GeluGrad => ("n", "n", "n"),
                        VecOp::MaxPool | VecOp::AvgPool => ("planes_in", "64'd0", "pooled"),
                        VecOp::MaxPoolGrad => ("planes_in", "pooled", "planes_in"),
                        VecOp::AvgPoolGrad => ("64'd0", "pooled", "planes_in"),
                        VecOp::SoftmaxXent => ("rows_len", "n", "rows_len + 64'd1"),
                        VecOp::Softmax => ("rows_len", "64'd0", "rows_len"),
                        VecOp::SoftmaxGrad => ("rows_len", "rows_len", "rows_len"),
                        VecOp::NormStats => ("rows_len", "64'd0", "stats << 1"),
                        VecOp::NormApply => ("rows_len", "stats << 1", "rows_len"),
                        VecOp::NormGradStats => ("rows_len", "rows_len", "stats << 1"),
                        VecOp::NormGradApply => ("rows_len", "stats << 2", "rows_len"),
                    };
                    let _ = writeln!(
                        body,
                        "            5'd{}: begin e_in = {e_in}; e_b = {e_b}; e_out = {e_out}; {{reads_a, reads_b, reads_dst}} = 3'b{}{}{}; end // {op}",
                        crate::isa::Field::to_bits(op),
                        u8::from(reads.a),
                        u8::from(reads.b),
                        u8::from(reads.dst)
                    );
                }
                body.push_str("            default: ;\n        endcase\n    end\n");
                operands.push(d("op && reads_a".into(), "a_buf".into(), "a".into(), "e_in".into(), false));
                operands.push(d("op && reads_b".into(), "b_buf".into(), "b".into(), "e_b".into(), false));
                operands.push(d("op && reads_dst".into(), "dst_buf".into(), "dst".into(), "e_out".into(), false));
                operands.push(d("op".into(), "dst_buf".into(), "dst".into(), "e_out".into(), true));
            }
        }
        let _ = write!(
            s,
            r#"
// Unit {unit_name}'s buffer use of an instruction word (see satkit's hw/src/rtl/controller.rs).
module {name} (input [{word_hi}:0] word, output [{reads_hi}:0] reads, output [{writes_hi}:0] writes);
    localparam PARTS = {parts};
    wire [4:0] opcode = word[4:0];
    // Partition of element `e` of buffer `b` (the last one for elements past the end).
    function [7:0] part(input [2:0] b, input [63:0] e);
        reg [63:0] p;
        begin
            case (b)
{shift_cases}                default: p = 0;
            endcase
            part = p > PARTS - 1 ? PARTS - 1 : p[7:0];
        end
    endfunction
{body}"#,
            unit_name = unit.name(),
            word_hi = WORD_BITS - 1,
            reads_hi = 4 * BUFFERS * parts - 1,
            writes_hi = BUFFERS * parts - 1,
            shift_cases = Buffer::ALL
                .iter()
                .zip(&shifts)
                .map(|(&b, sh)| format!("                {}: p = e >> {sh};\n", code(b)))
                .collect::<String>(),
        );
        for (i, o) in operands.iter().enumerate() {
            let _ = writeln!(
                s,
                "    wire [7:0] lo{i} = part({buf}, {start}), hi{i} = part({buf}, {start} + ({len} == 0 ? 64'd0 : {len} - 1));\n    \
                 wire on{i} = {valid};",
                buf = o.buffer,
                start = o.start,
                len = o.len,
                valid = o.valid,
            );
        }
        for &b in Buffer::ALL {
            let bc = crate::isa::Field::to_bits(b) as usize;
            for p in 0..parts {
                let slot = bc * parts + p;
                // (Partition 0: every operand's last partition is at least 0.)
                let covers = |i: usize| match p {
                    0 => format!("on{i} && {} == {} && lo{i} == 0", operands[i].buffer, code(b)),
                    _ => format!("on{i} && {} == {} && lo{i} <= {p} && {p} <= hi{i}", operands[i].buffer, code(b)),
                };
                let mut reads = Vec::new();
                let mut writes = Vec::new();
                for (i, o) in operands.iter().enumerate() {
                    if o.write {
                        writes.push(format!("({})", covers(i)));
                    } else if o.kept {
                        // Only where no other read operand of the buffer covers the partition.
                        let others: Vec<String> = operands
                            .iter()
                            .enumerate()
                            .filter(|(_, other)| !other.write && !other.kept)
                            .map(|(j, _)| format!(" && !({})", covers(j)))
                            .collect();
                        reads.push(format!("({}{})", covers(i), others.concat()));
                    } else {
                        reads.push(format!("({})", covers(i)));
                    }
                }
                let sum = if reads.is_empty() {
                    "4'd0".to_string()
                } else {
                    reads.iter().map(|t| format!("{{3'b000, {t}}}")).collect::<Vec<_>>().join(" + ")
                };
                let any = if writes.is_empty() { "1'b0".to_string() } else { writes.join(" || ") };
                let _ = writeln!(s, "    assign reads[{} +: 4] = {sum};", 4 * slot);
                let _ = writeln!(s, "    assign writes[{slot}] = {any};");
            }
        }
        s.push_str("endmodule\n");
    }
    Ok(s)
}
