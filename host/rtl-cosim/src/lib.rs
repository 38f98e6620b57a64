//! Co-simulation of the generated PE array RTL: the Verilog that `satkit_hw::rtl::generate`
//! emits for one architecture (`tiny` unless `SATKIT_COSIM_ARCH` was set at build time),
//! verilated into C++ by `build.rs` and driven here through a small C ABI, so that the RTL can
//! be compared bit for bit and cycle for cycle with the simulator (`satkit_sim::pe_array`).
//!
//! - [`VerilatedArray`]: the Verilated model itself (ports by name, eval, clock ticks);
//! - [`CosimArray`]: runs one output-stationary fold ([`CosimArray::run_fold`]) or a whole
//!   GEMM tile fold by fold ([`CosimArray::run_gemm`]), taking its operands in the simulator's
//!   buffer layouts and returning the outputs and the cycles from `start` to `done` of each fold.
//!
//! **What the RTL implements** (hw/src/rtl/array.rs): dataflow OS with interleave 1; a fold
//! takes `S * L + R + C - 2` cycles from the cycle after `start` to `done`; results then leave
//! through `R` shift cycles, which also load the next fold's initial accumulator values. The
//! simulator's OS formula counts the former; [`GemmRun::io_cycles`] reports the latter apart.

use half::f16;
use satkit_hw::isa::WeightFormat;
use satkit_hw::ArchConfig;
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
    /// A GEMM tile or fold the array cannot run.
    #[error("{0}")]
    Unsupported(String),
    /// Operands that do not match the tile's shape or format.
    #[error("operand `{operand}`: {message}")]
    Operand {
        /// Which operand.
        operand: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The array never raised `done`.
    #[error("fold of {steps} steps: no `done` after {cycles} cycles")]
    Hang {
        /// Steps of the fold.
        steps: usize,
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

/// A port of [`VerilatedArray`], resolved once by name.
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

/// The Verilated PE array (one model instance; state starts at reset values, all zeros).
pub struct VerilatedArray {
    raw: NonNull<RawModel>,
    cycles: u64,
}

// The model is plain C++ state owned by this value; nothing in it is tied to a thread.
unsafe impl Send for VerilatedArray {}

impl VerilatedArray {
    /// A fresh model.
    pub fn new() -> VerilatedArray {
        // SAFETY: `sat_cosim_new` allocates a model (C++ `new` aborts rather than return null).
        let raw = unsafe { sat_cosim_new() };
        VerilatedArray { raw: NonNull::new(raw).expect("sat_cosim_new returned null"), cycles: 0 }
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

impl Default for VerilatedArray {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for VerilatedArray {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `sat_cosim_new` and is freed once.
        unsafe { sat_cosim_delete(self.raw.as_ptr()) }
    }
}

/// One reduction step of a fold at the array's edges, as FP16 bit patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Per array row, the activation lanes (at most `m_max`; missing lanes are +0).
    pub act: Vec<Vec<u16>>,
    /// Per array column, the weight slots as (value, in-group index); at most `n_max`; a
    /// missing slot is disabled (its product is skipped, not added).
    pub wgt: Vec<Vec<(u16, u8)>>,
}

/// Result of one fold.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldResult {
    /// The `rows x cols` accumulators, row-major.
    pub out: Vec<f32>,
    /// Cycles from the cycle after `start` to `done` (the simulator's per-fold OS cycles).
    pub cycles: u64,
}

/// A GEMM tile in the simulator's terms: `out[M x N] (+)= in[M x K] . W[K x N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmTile {
    /// Output rows M.
    pub rows: usize,
    /// Output columns N.
    pub cols: usize,
    /// Dense reduction depth K.
    pub depth: usize,
    /// Dense or N:M sparse weights.
    pub weights: WeightFormat,
}

/// Result of a GEMM tile run fold by fold.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmRun {
    /// The `M x N` outputs, row-major.
    pub out: Vec<f32>,
    /// Sum over folds of the cycles from `start` to `done` (compare with `gemm_timing`).
    pub cycles: u64,
    /// Folds run.
    pub folds: u64,
    /// Cycles spent shifting results out and initial values in (`R` per fold, plus `R` per
    /// fold when accumulating).
    pub io_cycles: u64,
}

/// The Verilated PE array with its sequencer protocol (see the crate documentation).
pub struct CosimArray {
    model: VerilatedArray,
    arch: ArchConfig,
    rows: usize,
    cols: usize,
    n_max: usize,
    m_max: usize,
    start: Port,
    steps: Port,
    feed: Port,
    done: Port,
    shift: Port,
    act: Vec<Port>,
    wgt: Vec<Port>,
    idx: Vec<Port>,
    en: Vec<Port>,
    load: Vec<Port>,
    result: Vec<Port>,
}

impl CosimArray {
    /// A fresh Verilated array of [`BUILT_ARCH`] with every port it drives resolved.
    pub fn new() -> Result<CosimArray, Error> {
        let arch =
            ArchConfig::resolve(BUILT_ARCH).map_err(|e| Error::Arch { name: BUILT_ARCH.to_string(), message: e.to_string() })?;
        let model = VerilatedArray::new();
        let (rows, cols) = (arch.array.rows as usize, arch.array.cols as usize);
        let vec_ports = |name: &str, n: usize, input: bool| -> Result<Vec<Port>, Error> {
            (0..n).map(|i| model.port(&format!("{name}${i}"), input, None)).collect()
        };
        let act = vec_ports("act", rows, true)?;
        let wgt = vec_ports("wgt", cols, true)?;
        let idx = vec_ports("idx", cols, true)?;
        let en = vec_ports("en", cols, true)?;
        let load = vec_ports("load", cols, true)?;
        let result = vec_ports("result", cols, false)?;
        let (n_max, m_max) = (arch.array.n_max as usize, arch.array.m_max as usize);
        // The buses must hold the configuration's lanes.
        let too_narrow = |ports: &[Port], bits: usize, what: &str| -> Result<(), Error> {
            match ports.iter().find(|p| p.info.width < bits) {
                Some(p) => Err(Error::Unsupported(format!(
                    "port `{}` has {} bits, fewer than the {bits} of {what}",
                    p.info.name, p.info.width
                ))),
                None => Ok(()),
            }
        };
        too_narrow(&act, 16 * m_max, "m_max FP16 lanes")?;
        too_narrow(&wgt, 16 * n_max, "n_max FP16 weights")?;
        too_narrow(&idx, 4 * n_max, "n_max 4-bit indices")?;
        too_narrow(&en, n_max, "n_max enables")?;
        too_narrow(&load, 32, "an FP32 value")?;
        too_narrow(&result, 32, "an FP32 value")?;
        Ok(CosimArray {
            start: model.port("start", true, Some(1))?,
            steps: model.port("steps", true, Some(16))?,
            feed: model.port("feed", false, Some(1))?,
            done: model.port("done", false, Some(1))?,
            shift: model.port("shift", true, Some(1))?,
            model,
            arch,
            rows,
            cols,
            n_max,
            m_max,
            act,
            wgt,
            idx,
            en,
            load,
            result,
        })
    }

    /// The architecture of the Verilated array.
    pub fn arch(&self) -> &ArchConfig {
        &self.arch
    }

    /// Clock cycles the model has run (folds, shifts and all).
    pub fn total_cycles(&self) -> u64 {
        self.model.cycles()
    }

    fn put_step(&mut self, step: &Step) -> Result<(), Error> {
        let widest = self.act.iter().chain(&self.wgt).map(Port::words).max().unwrap_or(1);
        let mut buf = vec![0u32; widest];
        for r in 0..self.rows {
            let port = self.act[r];
            let words = &mut buf[..port.words()];
            words.fill(0);
            for (k, &v) in step.act[r].iter().enumerate() {
                words[k / 2] |= u32::from(v) << (16 * (k % 2));
            }
            self.model.set(port, words)?;
        }
        for c in 0..self.cols {
            let slots = &step.wgt[c];
            let port = self.wgt[c];
            let words = &mut buf[..port.words()];
            words.fill(0);
            let (mut idx, mut en) = (0u32, 0u32);
            for (j, &(v, i)) in slots.iter().enumerate() {
                words[j / 2] |= u32::from(v) << (16 * (j % 2));
                idx |= u32::from(i) << (4 * j);
                en |= 1 << j;
            }
            self.model.set(port, words)?;
            self.model.set_u32(self.idx[c], idx)?;
            self.model.set_u32(self.en[c], en)?;
        }
        Ok(())
    }

    fn check_step(&self, s: usize, step: &Step) -> Result<(), Error> {
        let bad = |message: String| Err(Error::Operand { operand: "step", message: format!("step {s}: {message}") });
        if step.act.len() != self.rows || step.wgt.len() != self.cols {
            return bad(format!(
                "{} activation rows and {} weight columns for a {}x{} array",
                step.act.len(),
                step.wgt.len(),
                self.rows,
                self.cols
            ));
        }
        if let Some(r) = step.act.iter().position(|a| a.len() > self.m_max) {
            return bad(format!("row {r} has {} lanes, more than m_max = {}", step.act[r].len(), self.m_max));
        }
        for (c, slots) in step.wgt.iter().enumerate() {
            if slots.len() > self.n_max {
                return bad(format!("column {c} has {} weights, more than n_max = {}", slots.len(), self.n_max));
            }
            if let Some(&(_, i)) = slots.iter().find(|&&(_, i)| usize::from(i) >= self.m_max) {
                return bad(format!("column {c} has in-group index {i}, not below m_max = {}", self.m_max));
            }
        }
        Ok(())
    }

    /// Shifts every column's accumulators down `rows` times: reads the current ones out
    /// (row-major) and leaves `init` (row-major `rows x cols`, `None`: +0) in place.
    fn shift_through(&mut self, init: Option<&[f32]>) -> Result<Vec<f32>, Error> {
        let (rows, cols) = (self.rows, self.cols);
        let mut out = vec![0f32; rows * cols];
        self.model.set_u32(self.shift, 1)?;
        for k in 0..rows {
            let row_in = rows - 1 - k;
            for c in 0..cols {
                let v = init.map_or(0, |i| i[row_in * cols + c].to_bits());
                self.model.set_u32(self.load[c], v)?;
            }
            self.model.eval();
            for c in 0..cols {
                out[(rows - 1 - k) * cols + c] = f32::from_bits(self.model.get_u32(self.result[c])?);
            }
            self.model.tick(1);
        }
        self.model.set_u32(self.shift, 0)?;
        self.model.eval();
        Ok(out)
    }

    /// Loads `init` (row-major `rows x cols`) into the accumulators, discarding what they held.
    pub fn load(&mut self, init: &[f32]) -> Result<(), Error> {
        if init.len() != self.rows * self.cols {
            return Err(Error::Operand {
                operand: "init",
                message: format!("{} values for a {}x{} array", init.len(), self.rows, self.cols),
            });
        }
        self.shift_through(Some(init)).map(|_| ())
    }

    /// Runs one fold of `steps` from the accumulators' current values (+0 after construction
    /// and after every [`CosimArray::run_fold`]); returns the sums, read out by `rows` shift
    /// cycles that leave +0 behind, and the cycles from `start` to `done`.
    pub fn run_fold(&mut self, steps: &[Step]) -> Result<FoldResult, Error> {
        if steps.is_empty() || steps.len() > usize::from(u16::MAX) {
            return Err(Error::Unsupported(format!("a fold of {} steps (the array takes 1 to 65535)", steps.len())));
        }
        for (s, step) in steps.iter().enumerate() {
            self.check_step(s, step)?;
        }
        let limit = (steps.len() * self.arch.array.accumulator_latency as usize + self.rows + self.cols) as u64 * 2 + 16;
        self.model.set_u32(self.steps, steps.len() as u32)?;
        self.model.set_u32(self.start, 1)?;
        self.model.eval();
        self.model.tick(1);
        self.model.set_u32(self.start, 0)?;
        self.model.eval();
        let (mut cycles, mut fed) = (0u64, 0usize);
        // Each tick ends with an eval, so `done` and `feed` are current at the top of the loop.
        loop {
            if self.model.get_u32(self.done)? != 0 {
                break;
            }
            if self.model.get_u32(self.feed)? != 0 {
                let step = steps.get(fed).ok_or_else(|| {
                    Error::Unsupported(format!("the sequencer asked for step {fed} of a {}-step fold", steps.len()))
                })?;
                self.put_step(step)?;
                fed += 1;
                // No eval here: the rising edge's eval settles the new inputs (Verilator evaluates
                // input-driven logic before the clocked logic).
            }
            self.model.tick(1);
            cycles += 1;
            if cycles > limit {
                return Err(Error::Hang { steps: steps.len(), cycles });
            }
        }
        if fed != steps.len() {
            return Err(Error::Unsupported(format!("the sequencer fed {fed} of {} steps before done", steps.len())));
        }
        let out = self.shift_through(None)?;
        Ok(FoldResult { out, cycles })
    }

    /// Runs a GEMM tile fold by fold (OS, interleave 1), with operands in the simulator's
    /// buffer layouts: `input` row-major `M x K`; `weight` column by column, `stored` entries
    /// per column (`K` dense, `K / M * N` for N:M), `idx` parallel to it (N:M only; ignored
    /// dense); `init` row-major `M x N` initial outputs (accumulate) or `None` (+0). Every
    /// operand value must be exactly representable in FP16.
    pub fn run_gemm(
        &mut self,
        tile: &GemmTile,
        input: &[f32],
        weight: &[f32],
        idx: &[u8],
        init: Option<&[f32]>,
    ) -> Result<GemmRun, Error> {
        let GemmTile { rows: m, cols: n, depth: k, weights } = *tile;
        let stored = weights.stored_len(k);
        // (reduction per step, kept weights per step)
        let (per_step, kept) = match weights {
            WeightFormat::Dense => (self.n_max, self.n_max),
            WeightFormat::Sparse(r) => {
                let (nn, mm) = (r.n as usize, r.m as usize);
                if nn > self.n_max || mm > self.m_max || !r.fits(k) {
                    return Err(Error::Unsupported(format!(
                        "{r} with K = {k} on `{}` (n_max {}, m_max {}; K must be a multiple of M)",
                        self.arch.name, self.n_max, self.m_max
                    )));
                }
                (mm, nn)
            }
        };
        let expect = |operand: &'static str, len: usize, want: usize| {
            if len == want {
                Ok(())
            } else {
                Err(Error::Operand { operand, message: format!("{len} values, the {m}x{n}x{k} {weights:?} tile needs {want}") })
            }
        };
        expect("input", input.len(), m * k)?;
        expect("weight", weight.len(), n * stored)?;
        if weights.ratio().is_some() {
            expect("idx", idx.len(), n * stored)?;
        }
        if let Some(init) = init {
            expect("init", init.len(), m * n)?;
        }
        let to_f16 = |operand: &'static str, values: &[f32]| -> Result<Vec<u16>, Error> {
            values
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let h = f16::from_f32(v);
                    if h.to_f32().to_bits() == v.to_bits() || (v.is_nan() && h.is_nan()) {
                        Ok(h.to_bits())
                    } else {
                        Err(Error::Operand { operand, message: format!("element {i} = {v:e} is not an FP16 value") })
                    }
                })
                .collect()
        };
        let input = to_f16("input", input)?;
        let weight = to_f16("weight", weight)?;
        if let WeightFormat::Sparse(r) = weights {
            let (nn, mm) = (r.n as usize, r.m as usize);
            for col in 0..n {
                for j in 0..stored {
                    let i = idx[col * stored + j];
                    if usize::from(i) >= mm || (j % nn != 0 && i <= idx[col * stored + j - 1]) {
                        return Err(Error::Operand {
                            operand: "idx",
                            message: format!(
                                "entry {} holds in-group index {i}: indices must be below M = {mm} and increase within a group",
                                col * stored + j
                            ),
                        });
                    }
                }
            }
        }
        let n_steps = k.div_ceil(per_step);
        let (rows, cols) = (self.rows, self.cols);
        let mut out = vec![0f32; m * n];
        let mut run = GemmRun { out: Vec::new(), cycles: 0, folds: 0, io_cycles: 0 };
        if m == 0 || n == 0 || n_steps == 0 {
            run.out = init.map(<[f32]>::to_vec).unwrap_or(out);
            return Ok(run);
        }
        for rb in (0..m).step_by(rows) {
            for cb in (0..n).step_by(cols) {
                if let Some(init) = init {
                    let block: Vec<f32> = (0..rows * cols)
                        .map(|i| {
                            let (r, c) = (rb + i / cols, cb + i % cols);
                            if r < m && c < n {
                                init[r * n + c]
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    let before = self.model.cycles();
                    self.load(&block)?;
                    run.io_cycles += self.model.cycles() - before;
                }
                let steps: Vec<Step> = (0..n_steps)
                    .map(|s| Step {
                        act: (0..rows)
                            .map(|r| {
                                let row = rb + r;
                                (0..per_step)
                                    .map(|lane| {
                                        let kk = s * per_step + lane;
                                        if row < m && kk < k {
                                            input[row * k + kk]
                                        } else {
                                            0
                                        }
                                    })
                                    .collect()
                            })
                            .collect(),
                        wgt: (0..cols)
                            .map(|c| {
                                let col = cb + c;
                                if col >= n {
                                    return Vec::new();
                                }
                                match weights {
                                    WeightFormat::Dense => (0..kept)
                                        .take_while(|&j| s * per_step + j < k)
                                        .map(|j| (weight[col * stored + s * per_step + j], j as u8))
                                        .collect(),
                                    WeightFormat::Sparse(_) => (0..kept)
                                        .map(|j| {
                                            let e = col * stored + s * kept + j;
                                            (weight[e], idx[e])
                                        })
                                        .collect(),
                                }
                            })
                            .collect(),
                    })
                    .collect();
                let fold = self.run_fold(&steps)?;
                run.cycles += fold.cycles;
                run.io_cycles += rows as u64;
                run.folds += 1;
                for r in 0..rows.min(m - rb) {
                    for c in 0..cols.min(n - cb) {
                        out[(rb + r) * n + cb + c] = fold.out[r * cols + c];
                    }
                }
            }
        }
        run.out = out;
        Ok(run)
    }
}
