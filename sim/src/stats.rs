//! Typed statistics: per instruction, per unit and per phase, plus traffic and energy.
//!
//! [`Cost`] is what executing one instruction costs (cycles, stalls by cause, MACs, bytes);
//! the controller adds the dependency wait and timestamps to make an [`InsnRecord`], and
//! [`SimReport`] aggregates them. Every type serializes to JSON with its field names.

use satkit_hw::isa::{Buffer, Phase, Unit};
use serde::Serialize;
use std::collections::BTreeMap;

/// Cycles lost to each cause. Stalls inside an instruction's duration (fill/drain,
/// accumulator hazards, DRAM latency and contention) are part of its cycles; `dependency` and
/// `buffer_access` are time spent at the head of its queue before it starts, waiting for
/// semaphores and for a buffer's readers or writers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stalls {
    /// Waiting at the queue head for a semaphore (data dependency).
    pub dependency: u64,
    /// Systolic fill, drain and weight preload: the array not in steady state.
    pub fill_drain: u64,
    /// A PE waiting for its own accumulator (accumulator latency above the interleave).
    pub accumulator_hazard: u64,
    /// Waiting for DRAM's first data.
    pub dram_latency: u64,
    /// Waiting for another transfer to release the DRAM bus.
    pub dram_contention: u64,
    /// Waiting at the queue head, semaphores held, for running instructions to release a
    /// buffer's readers or writers (`buffers.readers`, `buffers.writers`).
    pub buffer_access: u64,
}

impl Stalls {
    /// Adds another record's stalls.
    pub fn add(&mut self, o: &Stalls) {
        self.dependency += o.dependency;
        self.fill_drain += o.fill_drain;
        self.accumulator_hazard += o.accumulator_hazard;
        self.dram_latency += o.dram_latency;
        self.dram_contention += o.dram_contention;
        self.buffer_access += o.buffer_access;
    }
    /// Sum of every cause.
    pub fn total(&self) -> u64 {
        self.dependency
            + self.fill_drain
            + self.accumulator_hazard
            + self.dram_latency
            + self.dram_contention
            + self.buffer_access
    }
}

/// Bytes read and written per on-chip buffer, indexed by [`Buffer`] order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SramTraffic {
    /// Bytes read per buffer (act, wgt, idx, acc, master, mask).
    pub read: [u64; 6],
    /// Bytes written per buffer.
    pub write: [u64; 6],
}

impl SramTraffic {
    /// Counts a read.
    pub fn read(&mut self, b: Buffer, bytes: u64) {
        self.read[b as usize] += bytes;
    }
    /// Counts a write.
    pub fn write(&mut self, b: Buffer, bytes: u64) {
        self.write[b as usize] += bytes;
    }
    /// Adds another record's traffic.
    pub fn add(&mut self, o: &SramTraffic) {
        for i in 0..6 {
            self.read[i] += o.read[i];
            self.write[i] += o.write[i];
        }
    }
    /// All bytes.
    pub fn total(&self) -> u64 {
        self.read.iter().chain(&self.write).sum()
    }
}

/// Energy by component, pJ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Energy {
    /// Multiply-accumulates and sparse operand selection in the tensor engine.
    pub tensor_pj: f64,
    /// On-chip buffer accesses.
    pub sram_pj: f64,
    /// DRAM transfers.
    pub dram_pj: f64,
    /// SORE pruning.
    pub sore_pj: f64,
    /// WUVE updates.
    pub wuve_pj: f64,
    /// Vector unit.
    pub vector_pj: f64,
    /// Static (leakage / idle) power over the run.
    pub static_pj: f64,
}

impl Energy {
    /// Adds another record's energy.
    pub fn add(&mut self, o: &Energy) {
        self.tensor_pj += o.tensor_pj;
        self.sram_pj += o.sram_pj;
        self.dram_pj += o.dram_pj;
        self.sore_pj += o.sore_pj;
        self.wuve_pj += o.wuve_pj;
        self.vector_pj += o.vector_pj;
        self.static_pj += o.static_pj;
    }
    /// Sum of every component.
    pub fn total_pj(&self) -> f64 {
        self.tensor_pj + self.sram_pj + self.dram_pj + self.sore_pj + self.wuve_pj + self.vector_pj + self.static_pj
    }
}

/// What one instruction costs once it starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Cost {
    /// Cycles from start to completion.
    pub cycles: u64,
    /// Stalls inside those cycles.
    pub stalls: Stalls,
    /// Dense-equivalent multiply-accumulates.
    pub macs_dense: u64,
    /// Multiply-accumulates performed by multipliers.
    pub macs_performed: u64,
    /// Multiplier slots available during the instruction (for utilization).
    pub mac_slots: u64,
    /// Bytes read from DRAM (whole bursts).
    pub dram_read: u64,
    /// Bytes written to DRAM (whole bursts).
    pub dram_write: u64,
    /// On-chip traffic.
    pub sram: SramTraffic,
    /// Elements handled by the SORE, WUVE or vector unit.
    pub elements: u64,
    /// Dynamic energy.
    pub energy: Energy,
}

impl Cost {
    /// Adds another cost's counts (cycles add as busy time).
    pub fn add(&mut self, o: &Cost) {
        self.cycles += o.cycles;
        self.stalls.add(&o.stalls);
        self.macs_dense += o.macs_dense;
        self.macs_performed += o.macs_performed;
        self.mac_slots += o.mac_slots;
        self.dram_read += o.dram_read;
        self.dram_write += o.dram_write;
        self.sram.add(&o.sram);
        self.elements += o.elements;
        self.energy.add(&o.energy);
    }
}

/// One executed instruction.
#[derive(Debug, Clone, Serialize)]
pub struct InsnRecord {
    /// Position in the program.
    pub index: usize,
    /// Mnemonic.
    pub mnemonic: &'static str,
    /// Executing unit.
    pub unit: &'static str,
    /// Phase tag.
    pub phase: &'static str,
    /// Cycle it entered its queue.
    pub dispatched: u64,
    /// Cycle it started.
    pub start: u64,
    /// Cycle it completed.
    pub end: u64,
    /// Its cost (stalls include the dependency wait before `start`).
    pub cost: Cost,
}

/// Totals for one unit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnitStats {
    /// Unit name.
    pub unit: &'static str,
    /// Instructions executed.
    pub instructions: u64,
    /// Cycles executing instructions (including their internal stalls).
    pub busy_cycles: u64,
    /// Stalls by cause.
    pub stalls: Stalls,
    /// Dense-equivalent MACs (tensor engine).
    pub macs_dense: u64,
    /// Performed MACs (tensor engine).
    pub macs_performed: u64,
    /// Fraction of the unit's multiplier slots used while busy (tensor engine).
    pub utilization: f64,
    /// DRAM bytes moved.
    pub dram_bytes: u64,
    /// Dynamic energy, pJ.
    pub energy_pj: f64,
}

/// Totals for one phase tag.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseStats {
    /// Phase name.
    pub phase: &'static str,
    /// Instructions with this tag.
    pub instructions: u64,
    /// Cycles during which at least one instruction with this tag runs.
    pub active_cycles: u64,
    /// Sum of the durations of its instructions.
    pub busy_cycles: u64,
    /// Stalls by cause.
    pub stalls: Stalls,
    /// Dense-equivalent MACs.
    pub macs_dense: u64,
    /// Performed MACs.
    pub macs_performed: u64,
    /// DRAM bytes.
    pub dram_bytes: u64,
    /// On-chip bytes.
    pub sram_bytes: u64,
    /// Dynamic energy, pJ.
    pub energy_pj: f64,
}

/// The result of simulating one program.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Machine name.
    pub arch: String,
    /// Cycles until the last instruction completes.
    pub total_cycles: u64,
    /// Wall time on the machine at its clock.
    pub seconds: f64,
    /// Cycles the tensor engine executes GEMMs.
    pub compute_cycles: u64,
    /// `total_cycles - compute_cycles`: time not covered by the tensor engine.
    pub stall_cycles: u64,
    /// Dense-equivalent MACs.
    pub macs_dense: u64,
    /// Performed MACs.
    pub macs_performed: u64,
    /// Performed MACs over the array's multiplier slots in `total_cycles`.
    pub utilization: f64,
    /// DRAM bytes read.
    pub dram_read_bytes: u64,
    /// DRAM bytes written.
    pub dram_write_bytes: u64,
    /// On-chip traffic per buffer.
    pub sram: SramTraffic,
    /// Energy by component, including static energy over `total_cycles`.
    pub energy: Energy,
    /// Total energy, pJ.
    pub energy_pj: f64,
    /// Per unit.
    pub units: Vec<UnitStats>,
    /// Per phase tag (only tags that occur).
    pub phases: Vec<PhaseStats>,
    /// Per instruction, when recorded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instructions: Vec<InsnRecord>,
}

fn union_length(mut intervals: Vec<(u64, u64)>) -> u64 {
    intervals.sort_unstable();
    let (mut total, mut cur): (u64, Option<(u64, u64)>) = (0, None);
    for (s, e) in intervals {
        match cur {
            Some((cs, ce)) if s <= ce => cur = Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                cur = Some((s, e));
            }
            None => cur = Some((s, e)),
        }
    }
    total + cur.map_or(0, |(s, e)| e - s)
}

/// Accumulates records into unit and phase totals as the run proceeds.
#[derive(Debug, Default)]
pub struct Collector {
    units: BTreeMap<Unit, UnitStats>,
    unit_slots: BTreeMap<Unit, u64>,
    phases: BTreeMap<Phase, (PhaseStats, Vec<(u64, u64)>)>,
    records: Vec<InsnRecord>,
    keep_records: bool,
}

impl Collector {
    /// A collector; per-instruction records are kept only when asked for.
    pub fn new(keep_records: bool) -> Self {
        Collector { keep_records, ..Default::default() }
    }

    /// Adds one completed instruction.
    pub fn add(&mut self, unit: Unit, phase: Phase, record: InsnRecord) {
        let c = &record.cost;
        let u = self.units.entry(unit).or_insert_with(|| UnitStats { unit: unit.name(), ..Default::default() });
        u.instructions += 1;
        u.busy_cycles += c.cycles;
        u.stalls.add(&c.stalls);
        u.macs_dense += c.macs_dense;
        u.macs_performed += c.macs_performed;
        u.dram_bytes += c.dram_read + c.dram_write;
        u.energy_pj += c.energy.total_pj();
        *self.unit_slots.entry(unit).or_default() += c.mac_slots;
        let (p, intervals) =
            self.phases.entry(phase).or_insert_with(|| (PhaseStats { phase: phase.name(), ..Default::default() }, Vec::new()));
        p.instructions += 1;
        p.busy_cycles += c.cycles;
        p.stalls.add(&c.stalls);
        p.macs_dense += c.macs_dense;
        p.macs_performed += c.macs_performed;
        p.dram_bytes += c.dram_read + c.dram_write;
        p.sram_bytes += c.sram.total();
        p.energy_pj += c.energy.total_pj();
        intervals.push((record.start, record.end));
        if self.keep_records {
            self.records.push(record);
        }
    }

    /// The final report.
    pub fn finish(
        mut self,
        arch: &satkit_hw::ArchConfig,
        total_cycles: u64,
        static_pj_per_cycle: f64,
        totals: Cost,
    ) -> SimReport {
        for (unit, u) in self.units.iter_mut() {
            let slots = self.unit_slots.get(unit).copied().unwrap_or(0);
            u.utilization = if slots == 0 { 0.0 } else { u.macs_performed as f64 / slots as f64 };
        }
        let compute_cycles = self.units.get(&Unit::Tensor).map_or(0, |u| u.busy_cycles);
        let mut energy = totals.energy;
        energy.static_pj = static_pj_per_cycle * total_cycles as f64;
        let slots_per_cycle = u64::from(arch.array.rows) * u64::from(arch.array.cols) * u64::from(arch.array.n_max);
        let phases = self
            .phases
            .into_values()
            .map(|(mut p, intervals)| {
                p.active_cycles = union_length(intervals);
                p
            })
            .collect();
        self.records.sort_by_key(|r| r.index);
        SimReport {
            arch: arch.name.clone(),
            total_cycles,
            seconds: total_cycles as f64 * arch.seconds_per_cycle(),
            compute_cycles,
            stall_cycles: total_cycles.saturating_sub(compute_cycles),
            macs_dense: totals.macs_dense,
            macs_performed: totals.macs_performed,
            utilization: if total_cycles == 0 {
                0.0
            } else {
                totals.macs_performed as f64 / (slots_per_cycle * total_cycles) as f64
            },
            dram_read_bytes: totals.dram_read,
            dram_write_bytes: totals.dram_write,
            sram: totals.sram,
            energy,
            energy_pj: energy.total_pj(),
            units: self.units.into_values().collect(),
            phases,
            instructions: self.records,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn union_merges_overlaps() {
        assert_eq!(super::union_length(vec![(0, 10), (5, 15), (20, 25)]), 20);
        assert_eq!(super::union_length(vec![]), 0);
    }
}
