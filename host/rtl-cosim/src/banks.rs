//! The bank profile of a program on the RTL: in every cycle, which elements each operand of
//! each unit reads or writes (the machine's operand buses, `satkit_hw::rtl::machine::
//! operand_buses`, probed inside the Verilated model), and what a buffer split into `B` banks by
//! its low address bits (element `e` in bank `e mod B`, one element per bank and cycle) would
//! make of them: an operand whose distinct elements in one cycle put at most one in each bank
//! is served in that cycle; otherwise it needs as many cycles as its fullest bank has elements.
//!
//! This is the measurement behind the choice of a block-RAM organization for the buffers (see
//! the module documentation of `satkit_hw::rtl`): it counts, per instruction kind and operand,
//! the cycles that would conflict and the cycles the conflicts would add if a unit waited for
//! them. The machine itself does not wait; its buffers serve every port in every cycle.
//!
//! A buffer's replicas can give each reading operand a read port of its own, but every write
//! reaches every replica: so it also counts the cycles in which several operands write one
//! buffer together ([`JointWriteRow`]), with each of the buffer's `buffers.partitions` its own
//! `B` banks (element `e` of a partition of `P` elements in bank `(e / P, e mod B)`).

use crate::{CosimMachine, Error, Port, VerilatedModel};
use satkit_hw::isa::{Buffer, Field, Op, Program, Unit};
use satkit_hw::rtl::machine::{operand_buses, BusBuffer, OperandBus};
use std::collections::BTreeMap;

/// One operand bus with its probes resolved.
struct ProbedBus {
    bus: OperandBus,
    enable: usize,
    addr: usize,
    buffer: Option<usize>,
}

/// The counts of one operand of one instruction kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BankTally {
    /// Cycles in which the operand touched at least one element.
    pub cycles: u64,
    /// Distinct elements touched, summed over those cycles.
    pub elements: u64,
    /// The most distinct elements touched in one cycle.
    pub widest: u64,
    /// Per bank count (in [`BankProfile::banks`] order): cycles in which one bank would hold
    /// two or more of the cycle's distinct elements.
    pub conflicted: Vec<u64>,
    /// Per bank count: the cycles the conflicts would add, the sum over cycles of the fullest
    /// bank's distinct elements minus one.
    pub extra: Vec<u64>,
}

/// One row of a [`BankProfile`]: an operand of an instruction kind on one buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankRow {
    /// The instruction kind: the mnemonic, with a GEMM's dataflow, a prune's order or a vector
    /// op's name (`gemm os`, `prune bp`, `vec relu`).
    pub kind: String,
    /// The unit.
    pub unit: Unit,
    /// The operand.
    pub operand: &'static str,
    /// A write (else a read).
    pub write: bool,
    /// The buffer.
    pub buffer: Buffer,
    /// The counts.
    pub tally: BankTally,
}

/// The cycles in which two or more operands write one buffer together: their elements taken
/// together, as one operand's in a [`BankRow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JointWriteRow {
    /// The writing operands, `unit operand` joined by ` + ` in the machine's bus order.
    pub writers: String,
    /// The buffer.
    pub buffer: Buffer,
    /// The counts (a bank is a partition's bank).
    pub tally: BankTally,
}

/// Per-cycle bank counts of every operand, accumulated over the runs it observes (see the
/// module documentation).
pub struct BankProfile {
    banks: Vec<u64>,
    buses: Vec<ProbedBus>,
    probes: Vec<(Port, Vec<u32>)>,
    tallies: BTreeMap<(String, usize, Buffer), BankTally>,
    /// Elements of one partition of each buffer, in `Buffer::ALL` order.
    partition_elements: Vec<u64>,
    joint_writes: BTreeMap<(String, Buffer), BankTally>,
}

impl BankProfile {
    /// A profile of `machine`'s operands, for buffers of each bank count in `banks` (powers of
    /// two).
    pub fn new(machine: &CosimMachine, banks: &[u64]) -> Result<BankProfile, Error> {
        let model = &machine.model;
        if let Some(b) = banks.iter().find(|b| !b.is_power_of_two()) {
            return Err(Error::Unsupported(format!("{b} banks: the profile takes powers of two")));
        }
        let mut probes: Vec<(Port, Vec<u32>)> = Vec::new();
        let mut resolve = |name: &str| -> Result<usize, Error> {
            if let Some(i) = probes.iter().position(|(p, _)| p.info().name == name) {
                return Ok(i);
            }
            let probe = model.probe(name)?;
            probes.push((probe, vec![0; probe.words()]));
            Ok(probes.len() - 1)
        };
        let buses = operand_buses(&machine.arch)
            .into_iter()
            .map(|bus| {
                Ok(ProbedBus {
                    enable: resolve(bus.enable)?,
                    addr: resolve(bus.addr)?,
                    buffer: match bus.buffer {
                        BusBuffer::Fixed(_) => None,
                        BusBuffer::Wire(wire) => Some(resolve(wire)?),
                    },
                    bus,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let partition_elements = Buffer::ALL.iter().map(|&b| machine.arch.partition_elements(b)).collect();
        Ok(BankProfile {
            banks: banks.to_vec(),
            buses,
            probes,
            tallies: BTreeMap::new(),
            partition_elements,
            joint_writes: BTreeMap::new(),
        })
    }

    /// The bank counts, in the order of [`BankTally::conflicted`] and [`BankTally::extra`].
    pub fn banks(&self) -> &[u64] {
        &self.banks
    }

    /// Tallies the current cycle: each bus's enabled ports, for the instruction its unit
    /// started before this cycle (`started`, by unit index), or, for a bus that reads in the
    /// issue cycle ([`OperandBus::at_issue`]), the one it starts in this cycle (`issuing`).
    pub(crate) fn observe(
        &mut self,
        model: &mut VerilatedModel,
        program: &Program,
        started: &[Option<usize>],
        issuing: &[Option<usize>],
    ) -> Result<(), Error> {
        for (probe, words) in &mut self.probes {
            model.read_probe(*probe, words)?;
        }
        let (mut elements, mut banks_of): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
        // Each buffer's writing operands in this cycle, and their elements.
        let mut writes: Vec<(Vec<&OperandBus>, Vec<u64>)> = vec![(Vec::new(), Vec::new()); Buffer::ALL.len()];
        for (index, probed) in self.buses.iter().enumerate() {
            let bus = &probed.bus;
            let enable = &self.probes[probed.enable].1;
            let addr = &self.probes[probed.addr].1;
            elements.clear();
            for port in bus.first..bus.first + bus.ports {
                if bits(enable, port, 1) == 1 {
                    elements.push(bits(addr, port * bus.address_bits, bus.address_bits));
                }
            }
            if elements.is_empty() {
                continue;
            }
            let buffer = match (bus.buffer, probed.buffer) {
                (BusBuffer::Fixed(b), _) => b,
                (BusBuffer::Wire(wire), Some(p)) => {
                    let code = bits(&self.probes[p].1, 0, 3);
                    Buffer::from_bits(code).ok_or_else(|| Error::Machine {
                        cycle: model.cycles(),
                        message: format!(
                            "{wire} = {code} names no buffer while {} {} accesses one",
                            bus.unit.name(),
                            bus.operand
                        ),
                    })?
                }
                (BusBuffer::Wire(_), None) => unreachable!("every wire bus has its buffer probe"),
            };
            let owner = if bus.at_issue { issuing } else { started };
            let kind = match owner[bus.unit.index()] {
                Some(i) => kind(&program.insns[i].op),
                None => {
                    return Err(Error::Machine {
                        cycle: model.cycles(),
                        message: format!(
                            "{} {} accesses {} outside the instructions its unit runs",
                            bus.unit.name(),
                            bus.operand,
                            buffer.name()
                        ),
                    })
                }
            };
            elements.sort_unstable();
            elements.dedup();
            if bus.write {
                let (writers, written) = &mut writes[buffer as usize];
                writers.push(bus);
                written.extend_from_slice(&elements);
            }
            let tally = self.tallies.entry((kind, index, buffer)).or_insert_with(|| new_tally(self.banks.len()));
            count(tally, &self.banks, &elements, &mut banks_of, u64::MAX);
        }
        for (&buffer, (writers, written)) in Buffer::ALL.iter().zip(&mut writes) {
            if writers.len() < 2 {
                continue;
            }
            written.sort_unstable();
            written.dedup();
            let label: Vec<String> = writers.iter().map(|bus| format!("{} {}", bus.unit.name(), bus.operand)).collect();
            let tally = self.joint_writes.entry((label.join(" + "), buffer)).or_insert_with(|| new_tally(self.banks.len()));
            count(tally, &self.banks, written, &mut banks_of, self.partition_elements[buffer as usize]);
        }
        Ok(())
    }

    /// The cycles in which several operands wrote one buffer together, by writers and buffer.
    pub fn joint_write_rows(&self) -> Vec<JointWriteRow> {
        self.joint_writes
            .iter()
            .map(|((writers, buffer), tally)| JointWriteRow { writers: writers.clone(), buffer: *buffer, tally: tally.clone() })
            .collect()
    }

    /// The tallies, by instruction kind, then in the machine's bus order and by buffer.
    pub fn rows(&self) -> Vec<BankRow> {
        self.tallies
            .iter()
            .map(|((kind, index, buffer), tally)| {
                let bus = &self.buses[*index].bus;
                BankRow {
                    kind: kind.clone(),
                    unit: bus.unit,
                    operand: bus.operand,
                    write: bus.write,
                    buffer: *buffer,
                    tally: tally.clone(),
                }
            })
            .collect()
    }
}

impl BankTally {
    /// The slowdown waiting for the conflicts would cause per bank count: `(cycles + extra) /
    /// cycles`.
    pub fn slowdowns(&self) -> Vec<f64> {
        self.extra.iter().map(|e| (self.cycles + e) as f64 / self.cycles.max(1) as f64).collect()
    }
}

impl BankRow {
    /// The slowdown waiting for the conflicts would cause per bank count (see
    /// [`BankTally::slowdowns`]).
    pub fn slowdowns(&self) -> Vec<f64> {
        self.tally.slowdowns()
    }

    /// Whether the operand conflicts with as many banks as it touches elements in one cycle,
    /// or more: conflicts that a wider interleave does not remove.
    pub fn conflicts_when_wide_enough(&self, banks: &[u64]) -> bool {
        banks.iter().zip(&self.tally.extra).any(|(&b, &e)| b >= self.tally.widest && e > 0)
    }

    /// `unit operand`, with ` (w)` for a write.
    pub fn operand_label(&self) -> String {
        format!("{} {}{}", self.unit.name(), self.operand, if self.write { " (w)" } else { "" })
    }
}

impl BankProfile {
    /// Every row as CSV: kind, unit, operand, access, buffer, cycles, elements, and per bank
    /// count `B` the columns `conflicted_B` and `extra_B`.
    pub fn csv(&self) -> String {
        let mut csv = String::from("kind,unit,operand,access,buffer,cycles,elements,widest");
        for b in &self.banks {
            csv.push_str(&format!(",conflicted_{b},extra_{b}"));
        }
        csv.push('\n');
        for row in self.rows() {
            let access = if row.write { "write" } else { "read" };
            csv_line(&mut csv, [&row.kind, row.unit.name(), row.operand, access, row.buffer.name()], &row.tally);
        }
        // The joint writes: kind `writes together`, unit `several`, the writers as the operand.
        for row in self.joint_write_rows() {
            csv_line(&mut csv, ["writes together", "several", &row.writers, "write", row.buffer.name()], &row.tally);
        }
        csv
    }

    /// A text table of the rows with more than one element per cycle: elements per cycle, and
    /// per bank count the share of conflicting cycles and the slowdown.
    pub fn table(&self) -> String {
        let mut out = format!("{:<22} {:<26} {:<6} {:>9} {:>6}", "kind", "operand", "buffer", "cycles", "el/cyc");
        for b in &self.banks {
            out.push_str(&format!(" {:>13}", format!("B={b}")));
        }
        out.push('\n');
        for row in self.rows().iter().filter(|r| r.tally.elements > r.tally.cycles) {
            let t = &row.tally;
            out.push_str(&format!(
                "{:<22} {:<26} {:<6} {:>9} {:>6.1}",
                row.kind,
                row.operand_label(),
                row.buffer.name(),
                t.cycles,
                t.elements as f64 / t.cycles as f64
            ));
            out.push_str(&conflict_columns(t));
            out.push('\n');
        }
        let joint = self.joint_write_rows();
        if !joint.is_empty() {
            out.push_str("operands that write one buffer in the same cycle (a bank is a partition's):\n");
            for row in joint {
                let t = &row.tally;
                out.push_str(&format!(
                    "  {:<47} {:<6} {:>9} {:>6.1}",
                    row.writers,
                    row.buffer.name(),
                    t.cycles,
                    t.elements as f64 / t.cycles as f64
                ));
                out.push_str(&conflict_columns(t));
                out.push('\n');
            }
        }
        out
    }
}

/// One CSV line: the labels (kind, unit, operand, access, buffer), then `t`'s cycles, elements,
/// widest cycle and per bank count its conflicting and added cycles.
fn csv_line(csv: &mut String, labels: [&str; 5], t: &BankTally) {
    csv.push_str(&labels.join(","));
    csv.push_str(&format!(",{},{},{}", t.cycles, t.elements, t.widest));
    for (c, e) in t.conflicted.iter().zip(&t.extra) {
        csv.push_str(&format!(",{c},{e}"));
    }
    csv.push('\n');
}

/// Per bank count: the share of `t`'s cycles that conflict, and the slowdown waiting for them.
fn conflict_columns(t: &BankTally) -> String {
    let mut out = String::new();
    for (c, slowdown) in t.conflicted.iter().zip(t.slowdowns()) {
        let share = 100.0 * *c as f64 / t.cycles as f64;
        out.push_str(&format!(" {:>13}", format!("{share:.0}% x{slowdown:.2}")));
    }
    out
}

/// A tally with no cycles, for `banks` bank counts.
fn new_tally(banks: usize) -> BankTally {
    BankTally { conflicted: vec![0; banks], extra: vec![0; banks], ..BankTally::default() }
}

/// Adds one cycle's distinct `elements` to `tally`: for each bank count `B` of `banks`, the
/// fullest bank, with element `e` in bank `(e / partition, e mod B)`.
fn count(tally: &mut BankTally, banks: &[u64], elements: &[u64], banks_of: &mut Vec<u64>, partition: u64) {
    tally.cycles += 1;
    tally.elements += elements.len() as u64;
    tally.widest = tally.widest.max(elements.len() as u64);
    for (k, &b) in banks.iter().enumerate() {
        // The fullest bank: the longest run of equal banks among the sorted banks of the
        // (distinct) elements.
        banks_of.clear();
        banks_of.extend(elements.iter().map(|e| (e / partition) * b + (e & (b - 1))));
        banks_of.sort_unstable();
        let most = banks_of.chunk_by(|x, y| x == y).map(|run| run.len() as u64).max().unwrap_or(0);
        if most > 1 {
            tally.conflicted[k] += 1;
            tally.extra[k] += most - 1;
        }
    }
}

/// `width` bits of `words` from bit `lo` (at most 64).
fn bits(words: &[u32], lo: usize, width: usize) -> u64 {
    let mut value = 0u64;
    for k in 0..width {
        let bit = lo + k;
        value |= u64::from((words[bit / 32] >> (bit % 32)) & 1) << k;
    }
    value
}

/// The instruction kind of `op` (see [`BankRow::kind`]).
fn kind(op: &Op) -> String {
    match op {
        Op::Gemm { dataflow, .. } => format!("gemm {dataflow}"),
        Op::Prune { order, .. } => format!("prune {}", order.name()),
        Op::Vec { op, .. } => format!("vec {}", op.name()),
        other => other.mnemonic().to_string(),
    }
}
