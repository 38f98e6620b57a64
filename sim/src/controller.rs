//! The controller: in-order dispatch into per-unit queues, semaphores, and the event loop
//! that advances time.
//!
//! Each cycle, in this order: (1) instructions whose end cycle has come complete and signal
//! their semaphores; (2) each idle unit, in [`Unit::ALL`] order, starts the head of its queue
//! if it entered the queue before this cycle and every semaphore it waits on is positive
//! (starting decrements them; waiting on the same semaphore twice needs a count of two);
//! (3) the dispatcher moves the next instruction into its unit's queue unless that queue
//! holds `queue_depth` instructions. Dispatch takes one cycle per instruction. Time jumps from
//! event to event, so the cost of a run grows with its instruction count, not its cycles.
//! Each instruction reads and writes its buffers atomically when it starts; programs order
//! conflicting accesses with semaphores.
//!
//! When the architecture limits the readers or writers of a buffer partition (`buffers.readers`,
//! `buffers.writers`, `buffers.partitions`: block-RAM memories with one replica per reader), a
//! unit in (2) also needs its head's buffer use ([`BufferUse`]) to fit next to that of the
//! instructions running after (1) and of the units started before it in the same cycle; the
//! instruction holds it until it completes. The wait counts as a `buffer_access` stall. An
//! instruction whose use alone exceeds the limits (say a `vec add` with both operands in one
//! buffer and `readers = 1`) could never start and is an error.

use crate::stats::{Collector, Cost, InsnRecord};
use crate::{Error, Machine};
use satkit_hw::isa::{Program, Unit, SEMAPHORES};
use satkit_hw::operands::BufferUse;
use std::collections::VecDeque;

#[derive(Debug, Default)]
struct UnitState {
    queue: VecDeque<(usize, u64)>,
    running: Option<Running>,
    free_at: u64,
    /// The first cycle at which the head had its semaphores but not its buffers.
    buffer_wait_since: Option<u64>,
}

#[derive(Debug)]
struct Running {
    index: usize,
    dispatched: u64,
    start: u64,
    end: u64,
    cost: Cost,
    /// Its buffer use, held while it runs (only when the buffers' access is limited).
    buffers: Option<BufferUse>,
}

/// Runs `program` to completion on `machine`, feeding every completed instruction to `collector`.
/// Returns the cycle at which the last instruction completes.
pub fn run(machine: &mut Machine, program: &Program, collector: &mut Collector, totals: &mut Cost) -> Result<u64, Error> {
    let depth = machine.arch.control.queue_depth as usize;
    let (readers, writers) = (machine.arch.buffers.readers, machine.arch.buffers.writers);
    let limited = machine.arch.buffers.limits_access();
    let mut held = BufferUse::default();
    let mut units: Vec<UnitState> = Unit::ALL.iter().map(|_| UnitState::default()).collect();
    let mut sems = [0u64; SEMAPHORES];
    let (mut t, mut next, mut next_dispatch_at, mut last_end) = (0u64, 0usize, 0u64, 0u64);
    let insns = &program.insns;
    loop {
        // (1) completions
        for u in units.iter_mut() {
            if u.running.as_ref().is_some_and(|r| r.end <= t) {
                let r = u.running.take().expect("checked");
                let insn = &insns[r.index];
                for &s in &insn.header.signal {
                    if s != 0 {
                        sems[usize::from(s)] += 1;
                    }
                }
                u.free_at = r.end;
                if let Some(used) = &r.buffers {
                    held.release(used);
                }
                last_end = last_end.max(r.end);
                totals.add(&r.cost);
                let record = InsnRecord {
                    index: r.index,
                    mnemonic: insn.op.mnemonic(),
                    unit: insn.op.unit().name(),
                    phase: insn.header.tag.0.name(),
                    dispatched: r.dispatched,
                    start: r.start,
                    end: r.end,
                    cost: r.cost,
                };
                collector.add(insn.op.unit(), insn.header.tag.0, record);
            }
        }
        // (2) starts
        for (ui, u) in units.iter_mut().enumerate() {
            if u.running.is_some() {
                continue;
            }
            let Some(&(index, ready)) = u.queue.front() else { continue };
            if ready > t {
                continue;
            }
            let waits = &insns[index].header.wait;
            let needed = |s: u8| waits.iter().filter(|&&w| w == s).count() as u64;
            if waits.iter().any(|&s| s != 0 && sems[usize::from(s)] < needed(s)) {
                u.buffer_wait_since = None;
                continue;
            }
            // Without limits no use is held, and the operands are checked when the instruction
            // executes.
            let op = &insns[index].op;
            let buffers = if !limited {
                None
            } else {
                let fail = |message| Error::Program { index, mnemonic: op.mnemonic(), message };
                let buffers = op.buffer_use(&machine.arch).map_err(fail)?;
                if let Some((buffer, need)) = buffers.exceeds(readers, writers) {
                    return Err(fail(format!("it needs {need} of buffer {buffer}, so it can never start")));
                }
                if !buffers.fits(&held, readers, writers) {
                    u.buffer_wait_since.get_or_insert(t);
                    continue;
                }
                held.take(&buffers);
                Some(buffers)
            };
            for &s in waits {
                if s != 0 {
                    sems[usize::from(s)] -= 1;
                }
            }
            u.queue.pop_front();
            let mut cost = machine.execute(&insns[index], index, t)?;
            cost.cycles = cost.cycles.max(1);
            let buffer_access = u.buffer_wait_since.take().map_or(0, |since| t - since);
            cost.stalls.buffer_access = buffer_access;
            cost.stalls.dependency = t - ready.max(u.free_at) - buffer_access;
            debug_assert_eq!(Unit::ALL[ui], insns[index].op.unit());
            u.running = Some(Running { index, dispatched: ready - 1, start: t, end: t + cost.cycles, cost, buffers });
        }
        // (3) dispatch
        if next < insns.len() && next_dispatch_at <= t {
            let q = &mut units[insns[next].op.unit().index()].queue;
            if q.len() < depth {
                q.push_back((next, t + 1));
                next += 1;
                next_dispatch_at = t + 1;
            }
        }
        // next event
        let mut candidates: Vec<u64> = units.iter().filter_map(|u| u.running.as_ref().map(|r| r.end)).collect();
        candidates.extend(
            units
                .iter()
                .filter(|u| u.running.is_none())
                .filter_map(|u| u.queue.front().map(|&(_, ready)| ready))
                .filter(|&r| r > t),
        );
        if next < insns.len() && units[insns[next].op.unit().index()].queue.len() < depth {
            candidates.push(next_dispatch_at.max(t + 1));
        }
        match candidates.into_iter().min() {
            Some(c) => t = c,
            None => {
                if next == insns.len() && units.iter().all(|u| u.queue.is_empty()) {
                    return Ok(last_end);
                }
                let (index, _) =
                    units.iter().filter_map(|u| u.queue.front()).min().copied().expect("a queue holds the blocked instruction");
                let insn = &insns[index];
                return Err(Error::Deadlock {
                    cycle: t,
                    index,
                    mnemonic: insn.op.mnemonic(),
                    semaphores: insn.header.wait.iter().copied().filter(|&s| s != 0).collect(),
                });
            }
        }
    }
}
