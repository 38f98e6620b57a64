//! Co-simulation of the generated RTL: the Verilog of the SAT machine
//! (`satkit_hw::rtl::machine::generate`: controller, tensor unit, DMA engines, SORE, WUVE,
//! vector unit, buffers) for one
//! architecture (`tiny` unless `SATKIT_COSIM_ARCH` was set at build time), verilated into C++ by
//! `build.rs` and driven here through a small C ABI, so that programs run on the RTL can be
//! compared bit for bit and cycle for cycle with the simulator.
//!
//! - [`VerilatedModel`]: the Verilated model itself (ports by name, eval, clock ticks);
//! - [`CosimMachine`]: the machine with its DRAM served by the host, as VTA's tsim serves it:
//!   contents in a [`DramStorage`], timing from the simulator's DRAM model ([`DramBus`]), which
//!   plays the DRAM and its controller; programs run through [`CosimMachine::run`], buffers and
//!   DRAM are read and written from the host;
//! - [`BankProfile`]: what each operand of each unit reads and writes per cycle, and how those
//!   elements would collide in banked buffers ([`CosimMachine::run_profiled`]).
//!
//! **What the RTL implements** (hw/src/rtl/machine.rs): `load`, `store`, `prune` (both
//! orders), `update`, every `vec` op, and `gemm` in the OS dataflow with any interleave the
//! machine allows (1 to the accumulator latency) and in WS, dense and N:M, accumulating or not,
//! with either operand transposed. Programs with GEMMs in IS, pooling gradients over
//! overlapping windows taller or planes wider than the vector unit's line buffer
//! (`vector.pool_line_rows` and `pool_line_cols`), normalizations of zero rows, or statistics on a vector unit too narrow
//! for them (the list is `satkit_hw::rtl::unsupported`) are refused with
//! [`Error::Unsupported`].

use half::f16;
use satkit_hw::isa::{Buffer, Field, Op, Program, Unit, WORD_BITS};
use satkit_hw::rtl::machine::DRAM_ADDRESS_BITS;
use satkit_hw::ArchConfig;
use satkit_sim::dram::{DramBus, DramStorage, TransferShape};
use satkit_sim::{Machine, Mode, SimReport};
use std::ptr::NonNull;

/// One port of the Verilated top module (generated from `RtlDesign::ports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortInfo {
    /// Verilog name (`act$0` is element 0 of the `act` vector).
    pub name: &'static str,
    /// True for inputs.
    pub input: bool,
    /// Width in bits.
    pub width: usize,
}

mod generated {
    use super::PortInfo;
    include!(concat!(env!("OUT_DIR"), "/ports.rs"));
}
pub use generated::{BUILT_ARCH, PORTS, PROBES, TOP};

mod banks;
pub use banks::{BankProfile, BankRow, BankTally, JointWriteRow};

/// Everything that can go wrong in a co-simulation run. Messages name the operand or port.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The architecture the model was built from cannot be loaded.
    #[error("architecture `{name}` of the Verilated model: {message}")]
    ArchConfig {
        /// The preset or file name.
        name: String,
        /// Why it cannot be loaded.
        message: String,
    },
    /// A port the wrapper needs is not in the generated design, or has another shape.
    #[error("Verilated `{top}` has no {what} port `{name}`")]
    NoPort {
        /// Top module.
        top: &'static str,
        /// Direction and width expected.
        what: String,
        /// The port name.
        name: String,
    },
    /// The shim refused a port access (wrong port number, direction or word count).
    #[error("shim: {op} of port `{name}` failed with code {code}")]
    Shim {
        /// `set` or `get`.
        op: &'static str,
        /// The port.
        name: &'static str,
        /// The shim's return code.
        code: i32,
    },
    /// An instruction the RTL does not implement yet.
    #[error("{0}")]
    Unsupported(String),
    /// A buffer access outside the buffer, or to a buffer the model does not hold.
    #[error("buffer `{buffer}`: {message}")]
    Buffer {
        /// The buffer.
        buffer: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An instruction that does not encode into a word.
    #[error("encoding `{mnemonic}`: {message}")]
    Encode {
        /// The instruction.
        mnemonic: &'static str,
        /// Why.
        message: String,
    },
    /// The program is not valid for this machine (the simulator's checks refuse it).
    #[error("the program: {0}")]
    Program(#[from] satkit_sim::Error),
    /// A DRAM access outside the DRAM.
    #[error("DRAM bytes {addr:#x}..+{len}: beyond the capacity of {capacity:#x} bytes")]
    Dram {
        /// First byte.
        addr: u64,
        /// Bytes.
        len: u64,
        /// Capacity in bytes.
        capacity: u64,
    },
    /// The machine raised an error flag or did not finish.
    #[error("RTL at cycle {cycle}: {message}")]
    Machine {
        /// Cycle (counted from the cycle after `start`).
        cycle: u64,
        /// What happened.
        message: String,
    },
}

#[repr(C)]
struct RawModel {
    _private: [u8; 0],
}

extern "C" {
    fn sat_cosim_new() -> *mut RawModel;
    fn sat_cosim_delete(m: *mut RawModel);
    fn sat_cosim_eval(m: *mut RawModel);
    fn sat_cosim_tick(m: *mut RawModel, n: u64);
    fn sat_cosim_set(m: *mut RawModel, port: u32, words: *const u32, n: u32) -> i32;
    fn sat_cosim_get(m: *mut RawModel, port: u32, words: *mut u32, n: u32) -> i32;
    fn sat_cosim_probe(m: *mut RawModel, probe: u32, words: *mut u32, n: u32) -> i32;
}

/// A port of [`VerilatedModel`], resolved once by name.
#[derive(Debug, Clone, Copy)]
pub struct Port {
    index: u32,
    info: PortInfo,
}

impl Port {
    /// The port's description.
    pub fn info(&self) -> PortInfo {
        self.info
    }

    /// 32-bit words of the port's value.
    pub fn words(&self) -> usize {
        self.info.width.div_ceil(32)
    }
}

/// The Verilated model (one instance; state starts at reset values, all zeros).
pub struct VerilatedModel {
    raw: NonNull<RawModel>,
    cycles: u64,
}

// The model is plain C++ state owned by this value; nothing in it is tied to a thread.
unsafe impl Send for VerilatedModel {}

impl VerilatedModel {
    /// A fresh model.
    pub fn new() -> VerilatedModel {
        // SAFETY: `sat_cosim_new` allocates a model (C++ `new` aborts rather than return null).
        let raw = unsafe { sat_cosim_new() };
        VerilatedModel { raw: NonNull::new(raw).expect("sat_cosim_new returned null"), cycles: 0 }
    }

    /// The port called `name`, checked to be an input (`input`) or any port, of `width` bits
    /// (`None`: any width).
    pub fn port(&self, name: &str, input: bool, width: Option<usize>) -> Result<Port, Error> {
        PORTS
            .iter()
            .enumerate()
            .find(|(_, p)| p.name == name && (!input || p.input) && width.is_none_or(|w| w == p.width))
            .map(|(i, p)| Port { index: i as u32, info: *p })
            .ok_or_else(|| Error::NoPort {
                top: TOP,
                what: format!(
                    "{}{}",
                    if input { "input " } else { "" },
                    width.map(|w| format!("{w}-bit")).unwrap_or_else(|| "any-width".into())
                ),
                name: name.to_string(),
            })
    }

    /// Sets input `port` from its value's 32-bit words, least significant first.
    pub fn set(&mut self, port: Port, words: &[u32]) -> Result<(), Error> {
        // SAFETY: the shim reads exactly `words.len()` words and checks the count and port.
        let code = unsafe { sat_cosim_set(self.raw.as_ptr(), port.index, words.as_ptr(), words.len() as u32) };
        if code != 0 {
            return Err(Error::Shim { op: "set", name: port.info.name, code });
        }
        Ok(())
    }

    /// Sets an input of at most 32 bits.
    pub fn set_u32(&mut self, port: Port, value: u32) -> Result<(), Error> {
        self.set(port, &[value])
    }

    /// Reads `port` into `words` (least significant first; `words.len()` must be its word count).
    pub fn get(&mut self, port: Port, words: &mut [u32]) -> Result<(), Error> {
        // SAFETY: the shim writes exactly `words.len()` words and checks the count and port.
        let code = unsafe { sat_cosim_get(self.raw.as_ptr(), port.index, words.as_mut_ptr(), words.len() as u32) };
        if code != 0 {
            return Err(Error::Shim { op: "get", name: port.info.name, code });
        }
        Ok(())
    }

    /// The probed internal wire called `name` (one of [`PROBES`]).
    pub fn probe(&self, name: &str) -> Result<Port, Error> {
        PROBES
            .iter()
            .enumerate()
            .find(|(_, p)| p.name == name)
            .map(|(i, p)| Port { index: i as u32, info: *p })
            .ok_or_else(|| Error::NoPort { top: TOP, what: "probed internal".into(), name: name.to_string() })
    }

    /// Reads the probed wire `probe` into `words` (least significant first; `words.len()` must
    /// be its word count).
    pub fn read_probe(&mut self, probe: Port, words: &mut [u32]) -> Result<(), Error> {
        // SAFETY: the shim writes exactly `words.len()` words and checks the count and probe.
        let code = unsafe { sat_cosim_probe(self.raw.as_ptr(), probe.index, words.as_mut_ptr(), words.len() as u32) };
        if code != 0 {
            return Err(Error::Shim { op: "probe", name: probe.info.name, code });
        }
        Ok(())
    }

    /// Reads a port of at most 32 bits.
    pub fn get_u32(&mut self, port: Port) -> Result<u32, Error> {
        let mut w = [0u32];
        self.get(port, &mut w)?;
        Ok(w[0])
    }

    /// Evaluates the combinational logic after input changes.
    pub fn eval(&mut self) {
        // SAFETY: `raw` is a live model owned by `self`.
        unsafe { sat_cosim_eval(self.raw.as_ptr()) }
    }

    /// `n` clock cycles (rising edge, eval, falling edge, eval).
    pub fn tick(&mut self, n: u64) {
        // SAFETY: `raw` is a live model owned by `self`.
        unsafe { sat_cosim_tick(self.raw.as_ptr(), n) }
        self.cycles += n;
    }

    /// Clock cycles run since the model was made.
    pub fn cycles(&self) -> u64 {
        self.cycles
    }
}

impl Default for VerilatedModel {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for VerilatedModel {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `sat_cosim_new` and is freed once.
        unsafe { sat_cosim_delete(self.raw.as_ptr()) }
    }
}

/// Start and end cycle of one instruction, as the simulator's records count them (cycle 0 is
/// the first dispatch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsnTiming {
    /// Program index.
    pub index: usize,
    /// Cycle the instruction started on its unit.
    pub start: u64,
    /// Cycle it completed.
    pub end: u64,
}

/// What a program run on the RTL gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtlRun {
    /// Cycle at which the last instruction completed (the simulator's `total_cycles`).
    pub total_cycles: u64,
    /// Every instruction's timing, in program order.
    pub instructions: Vec<InsnTiming>,
}

/// Compares an RTL run's timing with the simulator's report of the same program: `Err` names
/// the first instruction whose start or end cycle differs, or the totals.
pub fn compare_timing(report: &SimReport, run: &RtlRun, program: &Program) -> Result<(), String> {
    let mut records = report.instructions.clone();
    records.sort_by_key(|r| r.index);
    if records.len() != run.instructions.len() {
        return Err(format!("the simulator recorded {} instructions, the RTL ran {}", records.len(), run.instructions.len()));
    }
    for (s, r) in records.iter().zip(&run.instructions) {
        if (s.start, s.end) != (r.start, r.end) {
            let text = program.insns.get(s.index).map(|i| i.to_string()).unwrap_or_default();
            return Err(format!(
                "instruction {} (`{text}`): RTL started at cycle {} and ended at {}, the simulator {} and {}",
                s.index, r.start, r.end, s.start, s.end
            ));
        }
    }
    if report.total_cycles != run.total_cycles {
        return Err(format!("program: RTL {} cycles, the simulator {}", run.total_cycles, report.total_cycles));
    }
    Ok(())
}

/// The ports of one DMA direction.
struct DmaPorts {
    req: Port,
    dram: Port,
    rows: Port,
    cols: Port,
    row_stride: Port,
    col_stride: Port,
    element_bytes: Port,
    mem_done: Port,
    addr: Port,
    valid: Port,
    data: Port,
}

impl DmaPorts {
    fn resolve(model: &VerilatedModel, dir: &str) -> Result<DmaPorts, Error> {
        let out = |name: &str| model.port(&format!("{dir}_{name}"), false, None);
        Ok(DmaPorts {
            req: out("req")?,
            dram: out("req_dram")?,
            rows: out("req_rows")?,
            cols: out("req_cols")?,
            row_stride: out("req_row_stride")?,
            col_stride: out("req_col_stride")?,
            element_bytes: out("req_element_bytes")?,
            mem_done: model.port(&format!("{dir}_mem_done"), true, Some(1))?,
            addr: out("addr")?,
            valid: out("valid")?,
            data: model.port(&format!("{dir}_data"), dir == "load", None)?,
        })
    }
}

/// A transfer the host-side DRAM is serving for one DMA engine.
#[derive(Debug, Clone, Copy, Default)]
struct Serving {
    done_at: Option<u64>,
    element_bytes: u64,
}

/// The Verilated SAT machine with its host-served DRAM (see the crate documentation).
pub struct CosimMachine {
    model: VerilatedModel,
    arch: ArchConfig,
    dram: DramStorage,
    lanes: usize,
    start: Port,
    program_address: Port,
    length: Port,
    done: Port,
    fetch_addr: Port,
    fetch_data: Port,
    flags: [(Port, &'static str); 4],
    trace_issue: Port,
    trace_index: Port,
    trace_done: Port,
    bank_conflict: Port,
    host_re: Port,
    host_we: Port,
    host_buf: Port,
    host_addr: Port,
    host_wdata: Port,
    host_rdata: Port,
    load: DmaPorts,
    store: DmaPorts,
}

impl CosimMachine {
    /// A fresh Verilated machine of [`BUILT_ARCH`], buffers and DRAM all zero.
    pub fn new() -> Result<CosimMachine, Error> {
        let arch = ArchConfig::resolve(BUILT_ARCH)
            .map_err(|e| Error::ArchConfig { name: BUILT_ARCH.to_string(), message: e.to_string() })?;
        let model = VerilatedModel::new();
        let input = |name: &str| model.port(name, true, None);
        let output = |name: &str| model.port(name, false, None);
        let valid = output("load_valid")?;
        Ok(CosimMachine {
            lanes: valid.info().width,
            start: input("start")?,
            program_address: input("program_address")?,
            length: input("length")?,
            done: output("done")?,
            fetch_addr: output("fetch_addr")?,
            fetch_data: input("fetch_data")?,
            flags: [
                (output("bad_opcode")?, "a fetched word's opcode names no instruction"),
                (output("overflow")?, "a semaphore count neared its 16-bit limit"),
                (output("unsupported")?, "a unit got an instruction it cannot run (satkit_hw::rtl::unsupported)"),
                (output("bad_label")?, "a softmax_xent label is not a class index"),
            ],
            trace_issue: output("trace_issue")?,
            trace_index: output("trace_index")?,
            trace_done: output("trace_done")?,
            bank_conflict: output("bank_conflict")?,
            host_re: input("host_re")?,
            host_we: input("host_we")?,
            host_buf: input("host_buf")?,
            host_addr: input("host_addr")?,
            host_wdata: input("host_wdata")?,
            host_rdata: output("host_rdata")?,
            load: DmaPorts::resolve(&model, "load")?,
            store: DmaPorts::resolve(&model, "store")?,
            model,
            arch,
            dram: DramStorage::default(),
        })
    }

    /// The architecture the model was generated from.
    pub fn arch(&self) -> &ArchConfig {
        &self.arch
    }

    /// Clock cycles run since the model was made.
    pub fn total_cycles(&self) -> u64 {
        self.model.cycles()
    }

    fn check(&self, buffer: Buffer, addr: u64, len: usize) -> Result<(), Error> {
        let capacity = self.arch.buffer_elements(buffer);
        if addr.checked_add(len as u64).is_none_or(|end| end > capacity) {
            return Err(Error::Buffer {
                buffer: buffer.name(),
                message: format!("{len} elements at {addr} overflow its {capacity} elements"),
            });
        }
        Ok(())
    }

    /// Writes values through the host port, in the buffer's own format: FP16 for `act` and
    /// `wgt` (rounded, as the simulator's buffers round), a byte for `idx` and `mask`
    /// (saturated to 0..=255, as the simulator's byte planes), FP32 for `acc` and `master`.
    pub fn write_buffer(&mut self, buffer: Buffer, addr: u64, values: &[f32]) -> Result<(), Error> {
        self.check(buffer, addr, values.len())?;
        self.model.set_u32(self.host_buf, buffer.to_bits() as u32)?;
        self.model.set_u32(self.host_we, 1)?;
        for (i, &v) in values.iter().enumerate() {
            let bits = match buffer {
                Buffer::Act | Buffer::Wgt => u32::from(f16::from_f32(v).to_bits()),
                Buffer::Idx | Buffer::Mask => u32::from(v.clamp(0.0, 255.0) as u8),
                Buffer::Acc | Buffer::Master => v.to_bits(),
            };
            self.model.set_u32(self.host_addr, (addr + i as u64) as u32)?;
            self.model.set_u32(self.host_wdata, bits)?;
            self.model.tick(1);
        }
        self.model.set_u32(self.host_we, 0)?;
        self.model.eval();
        Ok(())
    }

    /// Reads values through the host port (see [`CosimMachine::write_buffer`] for the formats),
    /// one a cycle: the port reads synchronously, as block RAM does.
    pub fn read_buffer(&mut self, buffer: Buffer, addr: u64, len: usize) -> Result<Vec<f32>, Error> {
        self.check(buffer, addr, len)?;
        self.model.set_u32(self.host_buf, buffer.to_bits() as u32)?;
        self.model.set_u32(self.host_re, 1)?;
        let mut out = Vec::with_capacity(len);
        for i in 0..len {
            self.model.set_u32(self.host_addr, (addr + i as u64) as u32)?;
            self.model.tick(1);
            let bits = self.model.get_u32(self.host_rdata)?;
            out.push(match buffer {
                Buffer::Act | Buffer::Wgt => f16::from_bits(bits as u16).to_f32(),
                Buffer::Idx | Buffer::Mask => f32::from(bits as u8),
                Buffer::Acc | Buffer::Master => f32::from_bits(bits),
            });
        }
        self.model.set_u32(self.host_re, 0)?;
        self.model.eval();
        Ok(out)
    }

    fn check_dram(&self, addr: u64, len: u64) -> Result<(), Error> {
        let capacity = self.arch.dram_bytes();
        if addr.checked_add(len).is_none_or(|end| end > capacity) {
            return Err(Error::Dram { addr, len, capacity });
        }
        Ok(())
    }

    /// Writes bytes into the host-served DRAM.
    pub fn write_dram(&mut self, addr: u64, data: &[u8]) -> Result<(), Error> {
        self.check_dram(addr, data.len() as u64)?;
        self.dram.write(addr, data);
        Ok(())
    }

    /// Reads bytes from the host-served DRAM.
    pub fn read_dram(&self, addr: u64, len: usize) -> Result<Vec<u8>, Error> {
        self.check_dram(addr, len as u64)?;
        let mut out = vec![0; len];
        self.dram.read(addr, &mut out);
        Ok(out)
    }

    /// Refuses what the RTL does not implement yet (see the crate documentation).
    pub fn supports(&self, program: &Program) -> Result<(), Error> {
        for (index, insn) in program.insns.iter().enumerate() {
            if let Some(why) = satkit_hw::rtl::unsupported(&self.arch, &insn.op) {
                return Err(Error::Unsupported(format!("instruction {index} (`{}`): {why}", insn.op.mnemonic())));
            }
        }
        Ok(())
    }

    /// The end of the DRAM bytes `program`'s loads and stores touch.
    fn data_end(&self, program: &Program) -> u64 {
        program
            .insns
            .iter()
            .filter_map(|i| match i.op {
                Op::Load { buf, dram, rows, cols, dram_row_stride, dram_col_stride, .. }
                | Op::Store { buf, dram, rows, cols, dram_row_stride, dram_col_stride, .. } => {
                    let e = self.arch.dram_element_bytes(buf);
                    let last = u64::from(rows.saturating_sub(1)) * u64::from(dram_row_stride)
                        + u64::from(cols.saturating_sub(1)) * u64::from(dram_col_stride);
                    Some(dram + (last + 1) * e)
                }
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Reads a port of `words` 32-bit words.
    fn words(&mut self, port: Port) -> Result<Vec<u32>, Error> {
        let mut w = vec![0u32; port.words()];
        self.model.get(port, &mut w)?;
        Ok(w)
    }

    /// Bits `[lo, lo + width)` (width <= 64) of a multi-word value.
    fn bits(words: &[u32], lo: usize, width: usize) -> u64 {
        (0..width).fold(0u64, |acc, b| acc | (u64::from((words[(lo + b) / 32] >> ((lo + b) % 32)) & 1) << b))
    }

    /// Runs `program` from its first instruction (buffers and DRAM keep their contents; the DRAM
    /// bus starts idle, as in the simulator). The program is first checked by the simulator's
    /// rules and against what the RTL implements, then written at the top of DRAM (above every
    /// byte its transfers touch; it stays there), and the machine fetches it from there. A run that
    /// outlasts twice the simulator's cycle count, raises an error flag, or whose `done` does not
    /// pulse once, after the last completion, fails with the cycle.
    pub fn run(&mut self, program: &Program) -> Result<RtlRun, Error> {
        self.supports(program)?;
        self.run_unchecked(program)
    }

    /// [`Self::run`] without refusing what the RTL does not implement: such an instruction
    /// then raises the machine's `unsupported` flag, which fails the run with its cycle. This is
    /// how the tests check that the RTL flags every instruction `satkit_hw::rtl::unsupported`
    /// names.
    pub fn run_unchecked(&mut self, program: &Program) -> Result<RtlRun, Error> {
        self.run_observed(program, None)
    }

    /// [`Self::run`], tallying every cycle's buffer accesses into `profile` (see
    /// [`BankProfile`]).
    pub fn run_profiled(&mut self, program: &Program, profile: &mut BankProfile) -> Result<RtlRun, Error> {
        self.supports(program)?;
        self.run_observed(program, Some(profile))
    }

    /// Fails with cycle `t` when the machine raises an error flag, or a buffer its bank
    /// conflict (`satkit_hw::rtl::buffer`).
    fn check_flags(&mut self, t: u64) -> Result<(), Error> {
        for (port, message) in self.flags {
            if self.model.get_u32(port)? == 1 {
                return Err(Error::Machine { cycle: t, message: message.to_string() });
            }
        }
        let conflicts = self.model.get_u32(self.bank_conflict)?;
        if let Some(buffer) = Buffer::ALL.iter().enumerate().find(|&(i, _)| (conflicts >> i) & 1 == 1).map(|(_, b)| b) {
            return Err(Error::Machine {
                cycle: t,
                message: format!(
                    "bank conflict in {} by this cycle: two elements of one bank memory wanted by one operand, by more \
                     operands than buffers.readers, or by two writes",
                    buffer.name()
                ),
            });
        }
        Ok(())
    }

    fn run_observed(&mut self, program: &Program, mut profile: Option<&mut BankProfile>) -> Result<RtlRun, Error> {
        let expected = Machine::new(&self.arch, Mode::TimingOnly).run(program)?.total_cycles;
        let limit = 2 * expected + 64;
        let length = u32::try_from(program.insns.len())
            .map_err(|_| Error::Unsupported(format!("{} instructions: the length register has 32 bits", program.insns.len())))?;
        let words: Vec<Vec<u32>> = program
            .insns
            .iter()
            .map(|i| {
                let w = i.encode().map_err(|e| Error::Encode { mnemonic: i.op.mnemonic(), message: e.to_string() })?;
                Ok(w.0.iter().flat_map(|x| [*x as u32, (*x >> 32) as u32]).collect())
            })
            .collect::<Result<_, Error>>()?;
        // The program at the top of DRAM, above every byte its transfers touch.
        let word_bytes = (WORD_BITS / 8) as usize;
        let image: Vec<u8> = words.iter().flat_map(|w| w.iter().flat_map(|x| x.to_le_bytes())).collect();
        let capacity = u64::from(self.arch.dram.capacity_mib) << 20;
        let data_end = self.data_end(program);
        let program_at = capacity.saturating_sub(image.len() as u64) / 64 * 64;
        if program_at < data_end || image.len() as u64 > capacity {
            return Err(Error::Unsupported(format!(
                "the program's {} bytes do not fit at the top of DRAM ({capacity:#x} bytes) above its data (up to {data_end:#x})",
                image.len()
            )));
        }
        self.dram.write(program_at, &image);
        self.model.set(self.program_address, &[program_at as u32, (program_at >> 32) as u32])?;
        let mut bus = DramBus::new(&self.arch);
        let (mut load, mut store) = (Serving::default(), Serving::default());
        let units = Unit::ALL.len();
        let mut running: Vec<Option<usize>> = vec![None; units];
        // The instruction each unit started before this cycle: the one whose accesses it makes
        // (only a bus marked `at_issue` touches a buffer in its unit's issue cycle, for the
        // instruction issuing).
        let mut started: Vec<Option<usize>> = vec![None; units];
        let mut timing: Vec<Option<InsnTiming>> = vec![None; program.insns.len()];
        let mut completed = 0usize;
        // The start cycle: clears the controller and fetches instruction 0.
        self.model.set_u32(self.length, length)?;
        self.model.set_u32(self.start, 1)?;
        self.model.set_u32(self.load.mem_done, 0)?;
        self.model.set_u32(self.store.mem_done, 0)?;
        self.model.eval();
        let mut fetch = Self::bits(&self.words(self.fetch_addr)?, 0, DRAM_ADDRESS_BITS);
        self.model.tick(1);
        self.model.set_u32(self.start, 0)?;
        let mut fetched = vec![0u8; word_bytes];
        let mut done_seen = false;
        let mut last_end = 0;
        let mut t = 0u64;
        while completed < program.insns.len() {
            if t > limit {
                return Err(Error::Machine {
                    cycle: t,
                    message: format!(
                        "{completed} of {} instructions completed; the simulator needs {expected} cycles",
                        program.insns.len()
                    ),
                });
            }
            self.model.set_u32(self.load.mem_done, u32::from(load.done_at == Some(t)))?;
            self.model.set_u32(self.store.mem_done, u32::from(store.done_at == Some(t)))?;
            self.dram.read(fetch, &mut fetched);
            let word: Vec<u32> = fetched.chunks(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            self.model.set(self.fetch_data, &word)?;
            self.model.eval();
            // Requests presented this cycle: the DRAM model schedules load before store, as the
            // simulator's units start in `Unit::ALL` order.
            for (dma, serving) in [(&self.load, &mut load), (&self.store, &mut store)] {
                if self.model.get_u32(dma.req)? == 1 {
                    let mut w = vec![0u32; dma.dram.words()];
                    self.model.get(dma.dram, &mut w)?;
                    let shape = TransferShape {
                        base: Self::bits(&w, 0, 64),
                        rows: self.model.get_u32(dma.rows)?.into(),
                        cols: self.model.get_u32(dma.cols)?.into(),
                        element_bytes: self.model.get_u32(dma.element_bytes)?.into(),
                        row_stride: self.model.get_u32(dma.row_stride)?.into(),
                        col_stride: self.model.get_u32(dma.col_stride)?.into(),
                    };
                    let end = bus.transfer(t, &shape).end;
                    *serving = Serving { done_at: Some(t + (end - t).max(1)), element_bytes: shape.element_bytes };
                }
            }
            // Load lanes: DRAM bytes for every valid lane's address, then settle the writes.
            let valid = self.words(self.load.valid)?;
            if valid.iter().any(|&v| v != 0) {
                let addr = self.words(self.load.addr)?;
                let mut data = vec![0u32; self.load.data.words()];
                for (lane, word) in data.iter_mut().enumerate().take(self.lanes) {
                    if Self::bits(&valid, lane, 1) == 1 {
                        let mut bytes = [0u8; 4];
                        self.dram.read(
                            Self::bits(&addr, lane * DRAM_ADDRESS_BITS, DRAM_ADDRESS_BITS),
                            &mut bytes[..load.element_bytes as usize],
                        );
                        *word = u32::from_le_bytes(bytes);
                    }
                }
                self.model.set(self.load.data, &data)?;
                self.model.eval();
            }
            // Store lanes: write every valid lane's bytes.
            let valid = self.words(self.store.valid)?;
            if valid.iter().any(|&v| v != 0) {
                let addr = self.words(self.store.addr)?;
                let data = self.words(self.store.data)?;
                for (lane, word) in data.iter().enumerate().take(self.lanes) {
                    if Self::bits(&valid, lane, 1) == 1 {
                        let bytes = word.to_le_bytes();
                        self.dram.write(
                            Self::bits(&addr, lane * DRAM_ADDRESS_BITS, DRAM_ADDRESS_BITS),
                            &bytes[..store.element_bytes as usize],
                        );
                    }
                }
            }
            self.check_flags(t)?;
            // Instruction timing from the controller's trace.
            let issue = self.model.get_u32(self.trace_issue)?;
            let done = self.model.get_u32(self.trace_done)?;
            let index = self.words(self.trace_index)?;
            for (u, unit) in running.iter_mut().enumerate() {
                if (done >> u) & 1 == 1 {
                    if let Some(i) = unit.take() {
                        if let Some(rec) = timing[i].as_mut() {
                            rec.end = t;
                        }
                        completed += 1;
                        last_end = t;
                    }
                }
            }
            for u in 0..units {
                if (issue >> u) & 1 == 1 {
                    let i = index[u] as usize;
                    running[u] = Some(i);
                    if let Some(slot) = timing.get_mut(i) {
                        *slot = Some(InsnTiming { index: i, start: t, end: t });
                    }
                }
            }
            if self.model.get_u32(self.done)? == 1 {
                if completed < words.len() {
                    return Err(Error::Machine {
                        cycle: t,
                        message: format!("`done` pulsed after {completed} of {} instructions", words.len()),
                    });
                }
                done_seen = true;
            }
            if let Some(profile) = profile.as_deref_mut() {
                let issuing: Vec<Option<usize>> =
                    (0..units).map(|u| ((issue >> u) & 1 == 1).then_some(index[u] as usize)).collect();
                profile.observe(&mut self.model, program, &started, &issuing)?;
                for (unit, now) in started.iter_mut().zip(issuing) {
                    if now.is_some() {
                        *unit = now;
                    }
                }
            }
            fetch = Self::bits(&self.words(self.fetch_addr)?, 0, DRAM_ADDRESS_BITS);
            self.model.tick(1);
            t += 1;
        }
        // `done` pulses once busy falls, within a few cycles of the last completion.
        let mut pulsed = words.is_empty() || done_seen;
        for _ in 0..4 {
            if pulsed {
                break;
            }
            self.model.eval();
            pulsed = self.model.get_u32(self.done)? == 1;
            self.model.tick(1);
        }
        if !pulsed {
            return Err(Error::Machine { cycle: t, message: "`done` did not pulse after the last instruction completed".into() });
        }
        // The last cycle's bank conflicts show a cycle later.
        self.model.eval();
        self.check_flags(t)?;
        let instructions = timing
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.ok_or(Error::Machine { cycle: t, message: format!("instruction {i} never started") }))
            .collect::<Result<_, _>>()?;
        Ok(RtlRun { total_cycles: last_end, instructions })
    }
}
