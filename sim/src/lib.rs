//! `satkit-sim`: the cycle-level simulator of a SAT machine.
//!
//! A [`Machine`] is built from an [`ArchConfig`] and runs a [`Program`]. It computes both
//! - **functional** results, with the arithmetic of [`numerics`] (FP16 operands through the
//!   `half` crate, FP32 accumulation in a documented order: the spec the RTL follows), and
//! - **timing**: every instruction's exact cycle cost from its unit's model
//!   ([`pe_array`], [`dma`]/[`dram`], [`sore`], [`wuve`], [`vector`]), queue and semaphore
//!   dependencies from the [`controller`], stalls by cause, traffic and energy ([`energy`]).
//!
//! Time advances by events (a tile, a transfer, an instruction), never one PE per cycle, so
//! whole networks simulate in seconds. In timing-only mode no data is stored or computed.
//!
//! ```
//! use satkit_hw::{ArchConfig, isa::{Program, Instruction, Op, Buffer, VecOp}};
//! let arch = ArchConfig::tiny();
//! let mut m = satkit_sim::Machine::new(&arch, satkit_sim::Mode::Functional);
//! m.write_buffer(Buffer::Acc, 0, &[1.0, -2.0]).unwrap();
//! let relu = Op::Vec { op: VecOp::Relu, count: 2, dst_buf: Buffer::Acc, dst: 2, a_buf: Buffer::Acc, a: 0,
//!                      b_buf: Buffer::Acc, b: 0, p0: 0, p1: 0, p2: 0, p3: 0 };
//! let report = m.run(&Program { insns: vec![Instruction::new(relu)] }).unwrap();
//! assert_eq!(m.read_buffer(Buffer::Acc, 2, 2).unwrap(), vec![1.0, 0.0]);
//! assert!(report.total_cycles > 0);
//! ```

pub mod controller;
pub mod dma;
pub mod dram;
pub mod energy;
mod error;
pub mod numerics;
pub mod pe_array;
pub mod scratchpad;
pub mod sore;
pub mod stats;
pub mod vector;
pub mod wuve;

pub use error::{Error, Result};
pub use stats::SimReport;

use dram::{DramBus, DramStorage};
use energy::EnergyTable;
use satkit_hw::isa::{Buffer, Instruction, Op, Program, WeightFormat};
use satkit_hw::ArchConfig;
use scratchpad::Scratchpads;
use stats::{Collector, Cost};

/// What the simulator computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Data and timing.
    Functional,
    /// Timing, traffic and energy only; buffers and DRAM hold no data.
    TimingOnly,
}

/// One simulated SAT machine: its buffers, DRAM and energy table.
#[derive(Debug)]
pub struct Machine {
    arch: ArchConfig,
    mode: Mode,
    scratch: Scratchpads,
    dram: DramStorage,
    bus: DramBus,
    energy: EnergyTable,
    record_instructions: bool,
}

impl Machine {
    /// A machine for a validated `arch`.
    pub fn new(arch: &ArchConfig, mode: Mode) -> Self {
        Machine {
            arch: arch.clone(),
            mode,
            scratch: Scratchpads::new(arch, mode == Mode::Functional),
            dram: DramStorage::default(),
            bus: DramBus::new(arch),
            energy: EnergyTable::for_arch(arch),
            record_instructions: false,
        }
    }

    /// Keep a record per instruction in the report.
    pub fn record_instructions(&mut self, on: bool) {
        self.record_instructions = on;
    }

    /// The machine's description.
    pub fn arch(&self) -> &ArchConfig {
        &self.arch
    }

    /// Writes bytes into DRAM (host side).
    pub fn write_dram(&mut self, addr: u64, data: &[u8]) -> Result<()> {
        self.check_dram(addr, data.len() as u64)?;
        self.dram.write(addr, data);
        Ok(())
    }

    /// Reads bytes from DRAM (host side).
    pub fn read_dram(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        self.check_dram(addr, len as u64)?;
        let mut out = vec![0; len];
        self.dram.read(addr, &mut out);
        Ok(out)
    }

    fn check_dram(&self, addr: u64, len: u64) -> Result<()> {
        let capacity = self.arch.dram_bytes();
        if addr.checked_add(len).is_none_or(|end| end > capacity) {
            return Err(Error::DramRange { addr, len, capacity });
        }
        Ok(())
    }

    fn check_buffer(&self, buffer: Buffer, addr: u64, len: u64) -> Result<()> {
        if self.mode == Mode::TimingOnly {
            return Err(Error::NoData { buffer: buffer.name() });
        }
        let capacity = self.scratch.capacity(buffer);
        if addr.checked_add(len).is_none_or(|end| end > capacity) {
            return Err(Error::BufferRange { buffer: buffer.name(), addr, len, capacity });
        }
        Ok(())
    }

    /// Writes values into an on-chip buffer (host side, for tests and co-simulation),
    /// rounding to the buffer's type.
    pub fn write_buffer(&mut self, buffer: Buffer, addr: u64, values: &[f32]) -> Result<()> {
        self.check_buffer(buffer, addr, values.len() as u64)?;
        for (i, &v) in values.iter().enumerate() {
            self.scratch.store_value(buffer, addr as usize + i, v);
        }
        Ok(())
    }

    /// Reads values from an on-chip buffer.
    pub fn read_buffer(&self, buffer: Buffer, addr: u64, len: usize) -> Result<Vec<f32>> {
        self.check_buffer(buffer, addr, len as u64)?;
        Ok((0..len).map(|i| self.scratch.read(buffer, addr as usize + i)).collect())
    }

    /// Runs a program from cycle 0 and reports its statistics. Buffers and DRAM keep their
    /// contents between runs; the DRAM bus starts idle.
    pub fn run(&mut self, program: &Program) -> Result<SimReport> {
        self.bus = DramBus::new(&self.arch);
        let mut collector = Collector::new(self.record_instructions);
        let mut totals = Cost::default();
        let end = controller::run(self, program, &mut collector, &mut totals)?;
        Ok(collector.finish(&self.arch, end, self.energy.static_per_cycle, totals))
    }

    /// Checks that every operand of `op` lies inside its buffer.
    fn check_operands(&self, op: &Op) -> std::result::Result<(), String> {
        op.operands()?.iter().try_for_each(|o| self.scratch.check(o.buffer, o.start, o.len))
    }

    /// Checks one instruction against this machine, executes it (functional mode) and
    /// returns its cost when started at cycle `start`.
    fn execute(&mut self, insn: &Instruction, index: usize, start: u64) -> Result<Cost> {
        let fail = |message: String| Error::Program { index, mnemonic: insn.op.mnemonic(), message };
        let functional = self.mode == Mode::Functional;
        let arch = &self.arch;
        let (mut cost, sparse_n) = match insn.op {
            Op::Load { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride }
            | Op::Store { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride } => {
                let t = dma::Transfer {
                    buf,
                    sram: sram.into(),
                    dram,
                    rows: rows.into(),
                    cols: cols.into(),
                    dram_row_stride: dram_row_stride.into(),
                    dram_col_stride: dram_col_stride.into(),
                    sram_row_stride: sram_row_stride.into(),
                };
                // An empty transfer touches no element, wherever it starts.
                if rows > 0 && cols > 0 {
                    self.check_operands(&insn.op).map_err(fail)?;
                }
                t.check(arch).map_err(fail)?;
                let is_load = matches!(insn.op, Op::Load { .. });
                let storage = functional.then_some(&mut self.dram);
                (dma::execute(arch, &t, is_load, start, &mut self.bus, &mut self.scratch, storage), None)
            }
            Op::Gemm {
                dataflow,
                weights,
                accumulate,
                interleave,
                rows,
                cols,
                depth,
                input,
                weight,
                output,
                input_t,
                weight_t,
            } => {
                if !arch.supports_dataflow(dataflow) {
                    return Err(fail(format!(
                        "dataflow {dataflow} is not supported by {} (it has {:?})",
                        arch.name, arch.array.dataflows
                    )));
                }
                if let WeightFormat::Sparse(r) = weights {
                    if !arch.supports_nm(r) {
                        return Err(fail(format!(
                            "N:M {r} is not supported by {} (it runs {:?})",
                            arch.name,
                            arch.array.supported_nm.iter().map(|r| r.to_string()).collect::<Vec<_>>()
                        )));
                    }
                    if !r.fits(depth as usize) {
                        return Err(fail(format!("depth {depth} is not a multiple of M = {}", r.m)));
                    }
                }
                if interleave == 0 || interleave > arch.array.accumulator_latency {
                    return Err(fail(format!(
                        "interleave {interleave} must be between 1 and the accumulator latency {} (a PE holds that many accumulators)",
                        arch.array.accumulator_latency
                    )));
                }
                if let (true, Some(r)) = (weight_t, weights.ratio()) {
                    return Err(fail(format!("weight_t applies to dense weights only, not to N:M {r}")));
                }
                let shape = pe_array::GemmShape {
                    dataflow,
                    weights,
                    rows: rows.into(),
                    cols: cols.into(),
                    depth: depth.into(),
                    interleave: interleave.into(),
                    input_t,
                    weight_t,
                };
                self.check_operands(&insn.op).map_err(fail)?;
                if functional {
                    let ops = pe_array::GemmOperands {
                        input: input as usize,
                        weight: weight as usize,
                        output: output as usize,
                        accumulate,
                    };
                    pe_array::gemm_execute(&mut self.scratch, &shape, &ops).map_err(fail)?;
                }
                (pe_array::gemm_cost(arch, &shape, accumulate), weights.ratio().map(|r| r.n))
            }
            Op::Prune { order, nm, rows, cols, src, dst, write_mask, mask } => {
                let ratio = nm.ratio().ok_or_else(|| fail("nm must be a sparse ratio N:M, not dense".into()))?;
                if !arch.supports_nm(ratio) {
                    return Err(fail(format!("N:M {ratio} is not supported by {}", arch.name)));
                }
                let p = sore::Prune {
                    order,
                    ratio,
                    rows: rows.into(),
                    cols: cols.into(),
                    src: src.into(),
                    dst: dst.into(),
                    mask: write_mask.then_some(mask.into()),
                };
                p.check().map_err(fail)?;
                self.check_operands(&insn.op).map_err(fail)?;
                if functional {
                    sore::execute(&mut self.scratch, &p);
                }
                (sore::cost(arch, &p), Some(ratio.n))
            }
            Op::Update { count, weight, momentum, grad, use_mask, mask, hyper } => {
                let u = wuve::Update {
                    count: count.into(),
                    weight: weight.into(),
                    momentum: momentum.into(),
                    grad: grad.into(),
                    mask: use_mask.then_some(mask.into()),
                    hyper: hyper.into(),
                };
                self.check_operands(&insn.op).map_err(fail)?;
                if functional {
                    wuve::execute(&mut self.scratch, &u);
                }
                (wuve::cost(arch, &u), None)
            }
            Op::Vec { op, count, dst_buf, dst, a_buf, a, b_buf, b, p0, p1, p2, p3 } => {
                let v = vector::VecInsn {
                    op,
                    count: count.into(),
                    dst: (dst_buf, dst.into()),
                    a: (a_buf, a.into()),
                    b: (b_buf, b.into()),
                    p: [p0.into(), p1.into(), p2.into(), p3.into()],
                };
                v.check().map_err(fail)?;
                self.check_operands(&insn.op).map_err(fail)?;
                if functional {
                    vector::execute(&mut self.scratch, &v).map_err(fail)?;
                }
                (vector::cost(arch, &self.scratch, &v), None)
            }
        };
        self.energy.charge(&mut cost, insn.op.unit(), sparse_n);
        Ok(cost)
    }
}
