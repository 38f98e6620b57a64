//! Co-simulation of the generated RTL: the Verilog of the tensor unit, its PE array and its
//! buffers (`satkit_hw::rtl::tensor::generate`) for one architecture (`tiny` unless
//! `SATKIT_COSIM_ARCH` was set at build time), verilated into C++ by `build.rs` and driven here
//! through a small C ABI, so that the RTL can be compared bit for bit and cycle for cycle with
//! the simulator.
//!
//! - [`VerilatedModel`]: the Verilated model itself (ports by name, eval, clock ticks);
//! - [`CosimTensor`]: the buffers through their host ports ([`CosimTensor::write_buffer`],
//!   [`CosimTensor::read_buffer`]) and `gemm` instructions issued to the unit
//!   ([`CosimTensor::run`]), which returns the cycles from issue to `done`: the instruction's
//!   cost in the simulator's terms.
//!
//! **What the RTL implements** (hw/src/rtl/tensor.rs): `gemm` in the OS dataflow with any
//! interleave the machine allows (1 to the accumulator latency), dense and N:M, accumulating
//! or not, with either operand transposed. Other instructions, and GEMMs in WS or IS, are
//! refused with [`Error::Unsupported`].

use half::f16;
use satkit_hw::isa::{Buffer, Field, Instruction, Op};
use satkit_hw::ArchConfig;
use satkit_hw::Dataflow;
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
pub use generated::{BUILT_ARCH, PORTS, TOP};

/// Everything that can go wrong in a co-simulation run. Messages name the operand or port.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The architecture the model was built from cannot be loaded.
    #[error("architecture `{name}` of the Verilated model: {message}")]
    Arch {
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
    /// The unit never raised `done`.
    #[error("instruction `{mnemonic}`: no `done` after {cycles} cycles")]
    Hang {
        /// The instruction.
        mnemonic: &'static str,
        /// Cycles waited.
        cycles: u64,
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

/// The Verilated tensor unit with its buffers (see the crate documentation).
pub struct CosimTensor {
    model: VerilatedModel,
    arch: ArchConfig,
    issue: Port,
    issue_word: Port,
    done: Port,
    unsupported: Port,
    host_we: Port,
    host_buf: Port,
    host_addr: Port,
    host_wdata: Port,
    host_rdata: Port,
}

impl CosimTensor {
    /// A fresh Verilated unit of [`BUILT_ARCH`], buffers all zero.
    pub fn new() -> Result<CosimTensor, Error> {
        let arch =
            ArchConfig::resolve(BUILT_ARCH).map_err(|e| Error::Arch { name: BUILT_ARCH.to_string(), message: e.to_string() })?;
        let model = VerilatedModel::new();
        let input = |name: &str| model.port(name, true, None);
        let output = |name: &str| model.port(name, false, None);
        Ok(CosimTensor {
            issue: input("issue")?,
            issue_word: input("issue_word")?,
            done: output("done")?,
            unsupported: output("unsupported")?,
            host_we: input("host_we")?,
            host_buf: input("host_buf")?,
            host_addr: input("host_addr")?,
            host_wdata: input("host_wdata")?,
            host_rdata: output("host_rdata")?,
            model,
            arch,
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
        if !matches!(buffer, Buffer::Act | Buffer::Wgt | Buffer::Idx | Buffer::Acc) {
            return Err(Error::Buffer {
                buffer: buffer.name(),
                message: "the tensor unit's co-simulation holds only act, wgt, idx and acc".into(),
            });
        }
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
    /// `wgt` (rounded, as the simulator's buffers round), a byte for `idx` (saturated to
    /// 0..=255, as the simulator's byte planes), FP32 for `acc`.
    pub fn write_buffer(&mut self, buffer: Buffer, addr: u64, values: &[f32]) -> Result<(), Error> {
        self.check(buffer, addr, values.len())?;
        self.model.set_u32(self.host_buf, buffer.to_bits() as u32)?;
        self.model.set_u32(self.host_we, 1)?;
        for (i, &v) in values.iter().enumerate() {
            let bits = match buffer {
                Buffer::Act | Buffer::Wgt => u32::from(f16::from_f32(v).to_bits()),
                Buffer::Idx => u32::from(v.clamp(0.0, 255.0) as u8),
                _ => v.to_bits(),
            };
            self.model.set_u32(self.host_addr, (addr + i as u64) as u32)?;
            self.model.set_u32(self.host_wdata, bits)?;
            self.model.tick(1);
        }
        self.model.set_u32(self.host_we, 0)?;
        self.model.eval();
        Ok(())
    }

    /// Reads values through the host port (see [`CosimTensor::write_buffer`] for the formats).
    pub fn read_buffer(&mut self, buffer: Buffer, addr: u64, len: usize) -> Result<Vec<f32>, Error> {
        self.check(buffer, addr, len)?;
        self.model.set_u32(self.host_buf, buffer.to_bits() as u32)?;
        let mut out = Vec::with_capacity(len);
        for i in 0..len {
            self.model.set_u32(self.host_addr, (addr + i as u64) as u32)?;
            self.model.eval();
            let bits = self.model.get_u32(self.host_rdata)?;
            out.push(match buffer {
                Buffer::Act | Buffer::Wgt => f16::from_bits(bits as u16).to_f32(),
                Buffer::Idx => f32::from(bits as u8),
                _ => f32::from_bits(bits),
            });
        }
        Ok(out)
    }

    /// Issues one instruction to the unit and runs the clock until `done`; returns the cycles
    /// from the issue cycle to the `done` cycle. Refuses what the RTL does not implement.
    pub fn run(&mut self, insn: &Instruction) -> Result<u64, Error> {
        let latency = self.arch.array.accumulator_latency;
        let limit = match insn.op {
            Op::Gemm { dataflow, interleave, rows, cols, depth, weights, .. }
                if dataflow == Dataflow::Os && (1..=latency).contains(&interleave) =>
            {
                // Twice the unit's own timing: a hang, not a slow unit, trips it.
                let a = &self.arch.array;
                let steps = u64::from(depth).div_ceil(self.arch.reduction_per_pe_step(weights.ratio()));
                let folds = u64::from(rows).div_ceil(a.rows.into()) * u64::from(cols).div_ceil(u64::from(a.cols * interleave));
                let period = steps * u64::from(latency) + u64::from(a.rows + a.cols);
                2 * (folds * period + u64::from(a.rows + a.cols + latency) + 2)
            }
            Op::Gemm { dataflow, interleave, .. } => {
                return Err(Error::Unsupported(format!(
                    "gemm with dataflow {dataflow} and interleave {interleave}: the RTL tensor unit runs OS with interleave 1 to {latency}"
                )))
            }
            _ => {
                return Err(Error::Unsupported(format!(
                    "`{}`: the RTL co-simulation has only the tensor unit so far",
                    insn.op.mnemonic()
                )))
            }
        };
        let word = insn.encode().map_err(|e| Error::Encode { mnemonic: insn.op.mnemonic(), message: e.to_string() })?;
        let words: Vec<u32> = word.0.iter().flat_map(|w| [*w as u32, (*w >> 32) as u32]).collect();
        self.model.set(self.issue_word, &words)?;
        self.model.set_u32(self.issue, 1)?;
        self.model.tick(1);
        self.model.set_u32(self.issue, 0)?;
        let mut cycles = 1;
        loop {
            self.model.eval();
            if self.model.get_u32(self.done)? == 1 {
                break;
            }
            if cycles >= limit {
                return Err(Error::Hang { mnemonic: insn.op.mnemonic(), cycles });
            }
            self.model.tick(1);
            cycles += 1;
        }
        if self.model.get_u32(self.unsupported)? == 1 {
            return Err(Error::Unsupported(format!("the unit flagged `{}` as unsupported", insn.op.mnemonic())));
        }
        Ok(cycles)
    }
}
