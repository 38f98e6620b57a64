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
//! With limited readers or writers per buffer (`buffers.readers`, `buffers.writers`), a unit
//! in (2) also needs its head's buffer use to fit next to the running instructions' (those not
//! completing in (1)) and the use of the units started before it in the cycle, as the
//! simulator's controller rules; a started instruction holds its use until it completes. The
//! head's use comes decoded from outside on `head_reads` and `head_writes`
//! ([`buffer_use_module`] decodes the instruction words, `issue_word` being each queue's head
//! in every cycle).
//!
//! Units report completion on `unit_done`; the simulator's cost model says when (the units'
//! RTL will). Semaphore counts are 16 bits wide: `overflow` rises, and stays, when one nears
//! that (the simulator's are unbounded); `bad_opcode` rises, and dispatch stops, on a word
//! whose opcode names no instruction.

use super::verilog::deduplicate;
use super::RtlDesign;
use crate::isa::{layouts, Buffer, Unit, VecOp, HEADER_BITS, SEMAPHORES, SEMAPHORE_BITS, WORD_BITS};
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
/// Buffers, in `Buffer::ALL` order.
pub const BUFFERS: usize = Buffer::ALL.len();
// rust-hdl's kernels need literal loop bounds: `0..6` units, `0..6` buffers and `0..32`
// semaphores below.
const _: () = assert!(UNITS == 6 && BUFFERS == 6);

/// Name of the buffer-use decoder of [`buffer_use_module`].
pub const BUFFER_USE_MODULE: &str = "sat_buffer_use";

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
    /// Per unit and buffer (`u * 6 + b`): operands its queue head reads from the buffer.
    pub head_reads: Vec<Signal<In, Bits<4>>>,
    /// Per unit and buffer: its queue head writes the buffer.
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
    /// completions, over units `0..u` (`u * 6 + b`).
    held_reads: Vec<Signal<Local, Bits<4>>>,
    held_writes: Vec<Signal<Local, Bits<4>>>,
    /// Reads and writes held after the starts of units `0..u` (`u * 6 + b`).
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
            head_reads: signals(UNITS * BUFFERS),
            head_writes: signals(UNITS * BUFFERS),
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
            running_reads: (0..UNITS * BUFFERS).map(|_| DFF::default()).collect(),
            running_writes: (0..UNITS * BUFFERS).map(|_| DFF::default()).collect(),
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
            held_reads: signals((UNITS + 1) * BUFFERS),
            held_writes: signals((UNITS + 1) * BUFFERS),
            taken_reads: signals((UNITS + 1) * BUFFERS),
            taken_writes: signals((UNITS + 1) * BUFFERS),
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
            for b in 0..6 {
                self.running_reads[u * 6 + b].clock.next = self.clock.val();
                self.running_reads[u * 6 + b].d.next = self.running_reads[u * 6 + b].q.val();
                self.running_writes[u * 6 + b].clock.next = self.clock.val();
                self.running_writes[u * 6 + b].d.next = self.running_writes[u * 6 + b].q.val();
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
        for b in 0..6 {
            self.held_reads[b].next = 0.into();
            self.held_writes[b].next = 0.into();
        }
        for u in 0..6 {
            for b in 0..6 {
                self.held_reads[(u + 1) * 6 + b].next = self.held_reads[u * 6 + b].val();
                self.held_writes[(u + 1) * 6 + b].next = self.held_writes[u * 6 + b].val();
                if self.running[u].q.val() && !self.completing[u].val() {
                    self.held_reads[(u + 1) * 6 + b].next =
                        self.held_reads[u * 6 + b].val() + self.running_reads[u * 6 + b].q.val();
                    if self.running_writes[u * 6 + b].q.val() {
                        self.held_writes[(u + 1) * 6 + b].next = self.held_writes[u * 6 + b].val() + 1;
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
        for b in 0..6 {
            self.taken_reads[b].next = self.held_reads[6 * 6 + b].val();
            self.taken_writes[b].next = self.held_writes[6 * 6 + b].val();
        }
        for u in 0..6 {
            self.covered[u].next = true;
            for s in 0..32 {
                if self.after_start[u * 32 + s].val() < self.demand[u * 32 + s].val() {
                    self.covered[u].next = false;
                }
            }
            self.fits[u].next = true;
            for b in 0..6 {
                if self.readers.val() != 0
                    && self.taken_reads[u * 6 + b].val() + self.head_reads[u * 6 + b].val() > self.readers.val()
                {
                    self.fits[u].next = false;
                }
                if self.writers.val() != 0
                    && self.head_writes[u * 6 + b].val()
                    && self.taken_writes[u * 6 + b].val() + 1 > self.writers.val()
                {
                    self.fits[u].next = false;
                }
            }
            self.starts[u].next = self.active.q.val()
                && self.idle[u].val()
                && self.queue_len[u].q.val() != 0
                && self.covered[u].val()
                && self.fits[u].val();
            for b in 0..6 {
                self.taken_reads[(u + 1) * 6 + b].next = self.taken_reads[u * 6 + b].val();
                self.taken_writes[(u + 1) * 6 + b].next = self.taken_writes[u * 6 + b].val();
                if self.starts[u].val() {
                    self.taken_reads[(u + 1) * 6 + b].next = self.taken_reads[u * 6 + b].val() + self.head_reads[u * 6 + b].val();
                    self.running_reads[u * 6 + b].d.next = self.head_reads[u * 6 + b].val();
                    self.running_writes[u * 6 + b].d.next = self.head_writes[u * 6 + b].val();
                    if self.head_writes[u * 6 + b].val() {
                        self.taken_writes[(u + 1) * 6 + b].next = self.taken_writes[u * 6 + b].val() + 1;
                    }
                }
            }
            for s in 0..32 {
                if self.starts[u].val() {
                    self.after_start[(u + 1) * 32 + s].next = self.after_start[u * 32 + s].val() - self.demand[u * 32 + s].val();
                } else {
                    self.after_start[(u + 1) * 32 + s].next = self.after_start[u * 32 + s].val();
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

/// The buffer-use decoder: from an instruction word, per buffer (`Buffer::ALL` order) the
/// operands it reads from the buffer (`reads`, 4 bits each) and whether it writes it
/// (`writes`), as `Op::buffer_use` rules for buffers of one partition (a test compares the two over every opcode,
/// buffer field and flag). Words of an unknown opcode use nothing.
pub fn buffer_use_module() -> Result<String, Error> {
    let layouts = layouts();
    let field = |mnemonic: &str, name: &str| -> Result<String, Error> {
        let layout = layouts.iter().find(|l| l.mnemonic == mnemonic);
        let f = layout
            .and_then(|l| l.fields.iter().find(|f| f.name == name))
            .ok_or_else(|| Error::RtlVerilog { message: format!("the ISA table has no field `{name}` in `{mnemonic}`") })?;
        Ok(format!("word[{} +: {}]", f.lo, f.width))
    };
    let opcode = |mnemonic: &str| -> Result<u32, Error> {
        layouts
            .iter()
            .find(|l| l.mnemonic == mnemonic)
            .map(|l| l.opcode)
            .ok_or_else(|| Error::RtlVerilog { message: format!("the ISA table has no `{mnemonic}`") })
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"
// Buffer use of an instruction word (see satkit's hw/src/rtl/controller.rs).
module {BUFFER_USE_MODULE} (input [{word_hi}:0] word, output [{reads_hi}:0] reads, output [{writes_hi}:0] writes);
    wire [4:0] opcode = word[4:0];
    wire is_load = opcode == 5'd{load}, is_store = opcode == 5'd{store}, is_gemm = opcode == 5'd{gemm};
    wire is_prune = opcode == 5'd{prune}, is_update = opcode == 5'd{update}, is_vec = opcode == 5'd{vec};
    wire [2:0] load_buf = {load_buf}, store_buf = {store_buf};
    wire gemm_sparse = {weights} != 0, gemm_acc_read = {accumulate} != 0 || {dataflow} != 0;
    wire prune_mask = {write_mask} != 0, update_mask = {use_mask} != 0;
    wire [4:0] vec_op = {vec_op};
    wire [2:0] dst_buf = {dst_buf}, a_buf = {a_buf}, b_buf = {b_buf};
    // The operands each vector op reads: a, b, the destination.
    reg reads_a, reads_b, reads_dst;
    always @* begin
        {{reads_a, reads_b, reads_dst}} = 3'b000;
        case (vec_op)
"#,
        word_hi = WORD_BITS - 1,
        reads_hi = 4 * BUFFERS - 1,
        writes_hi = BUFFERS - 1,
        load = opcode("load")?,
        store = opcode("store")?,
        gemm = opcode("gemm")?,
        prune = opcode("prune")?,
        update = opcode("update")?,
        vec = opcode("vec")?,
        load_buf = field("load", "buf")?,
        store_buf = field("store", "buf")?,
        weights = field("gemm", "weights")?,
        accumulate = field("gemm", "accumulate")?,
        dataflow = field("gemm", "dataflow")?,
        write_mask = field("prune", "write_mask")?,
        use_mask = field("update", "use_mask")?,
        vec_op = field("vec", "op")?,
        dst_buf = field("vec", "dst_buf")?,
        a_buf = field("vec", "a_buf")?,
        b_buf = field("vec", "b_buf")?,
    );
    for &op in VecOp::ALL {
        let o = op.operands();
        let _ = writeln!(
            s,
            "            5'd{}: {{reads_a, reads_b, reads_dst}} = 3'b{}{}{}; // {op}",
            crate::isa::Field::to_bits(op),
            u8::from(o.a),
            u8::from(o.b),
            u8::from(o.dst)
        );
    }
    s.push_str("            default: ;\n        endcase\n    end\n");
    for &b in Buffer::ALL {
        let code = crate::isa::Field::to_bits(b);
        let mut reads = vec![
            format!("(is_store && store_buf == 3'd{code})"),
            format!("(is_vec && reads_a && a_buf == 3'd{code})"),
            format!("(is_vec && reads_b && b_buf == 3'd{code})"),
            format!("(is_vec && reads_dst && dst_buf == 3'd{code})"),
        ];
        let mut writes = vec![format!("(is_load && load_buf == 3'd{code})"), format!("(is_vec && dst_buf == 3'd{code})")];
        match b {
            Buffer::Act => reads.push("is_gemm".into()),
            Buffer::Wgt => {
                reads.push("is_gemm".into());
                writes.push("is_prune".into());
            }
            Buffer::Idx => {
                reads.push("(is_gemm && gemm_sparse)".into());
                writes.push("is_prune".into());
            }
            Buffer::Acc => {
                reads.push("(is_gemm && gemm_acc_read)".into());
                reads.push("is_update".into());
                writes.push("is_gemm".into());
            }
            Buffer::Master => {
                reads.push("is_prune".into());
                // weight and momentum: two operands
                reads.push("is_update".into());
                reads.push("is_update".into());
                writes.push("is_update".into());
            }
            Buffer::Mask => {
                reads.push("(is_update && update_mask)".into());
                writes.push("(is_prune && prune_mask)".into());
            }
        }
        let terms: Vec<String> = reads.iter().map(|t| format!("{{3'b000, {t}}}")).collect();
        let _ = writeln!(s, "    // {b}");
        let _ = writeln!(s, "    assign reads[{} +: 4] = {};", 4 * code, terms.join(" + "));
        let _ = writeln!(s, "    assign writes[{code}] = {};", writes.join(" || "));
    }
    s.push_str("endmodule\n");
    Ok(s)
}
