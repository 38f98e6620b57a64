//! The RTL generator: SAT's blocks sized only by an [`ArchConfig`], as rust-hdl (the datapaths)
//! and as Verilog text (the sequencers and buffers, whose sizes rust-hdl cannot take from a
//! description read at run time). [`generate`] emits the PE array alone (what `satkit rtl
//! --synth` synthesizes); [`machine::generate`] the whole machine.
//!
//! - [`controller`]: in-order dispatch into per-unit queues, the semaphores and the unit
//!   starts, cycle for cycle as the simulator's controller;
//! - [`fp`]: the floating-point blocks (exact FP16 x FP16 -> FP32 multiply, FP32 multiply and
//!   add with round to nearest even), bit for bit `sim::numerics`;
//! - [`pe`]: one PE (selection of activations by in-group index, multipliers, adder chain,
//!   one accumulator per interleave slot, the fold boundary's initial value and result);
//! - [`array`]: the `rows x cols` output- or weight-stationary array with its edge skew and
//!   result buses;
//! - [`tensor`]: the tensor unit (the `gemm` operand sequencer around the array);
//! - [`buffer`]: the on-chip buffers as banked block RAM (partitions x replicas x banks of
//!   one-read, one-write memories, with the crossbar that routes the units' lanes to them);
//! - [`sore`], [`wuve`]: the SORE lanes (streaming top-N selection per group of M) and the WUVE
//!   lanes (FP32 SGD with momentum, weight decay and the SR-STE term);
//! - [`sequencers`]: the SORE's, WUVE's and vector unit's operand sequencers and the
//!   conversions between the buffers' types;
//! - [`vector_math`]: the vector unit's FP32 division, square root, comparison, `exp` and `ln`;
//! - [`machine`]: the top: controller, units, DMA engines with the memory port, buffers and
//!   control/status registers;
//! - [`verilog`]: turns rust-hdl's one-module-per-instance output into one module per distinct
//!   block with readable names, and joins separately generated designs.
//!
//! Not generated yet: the array's IS dataflow (with the other instructions [`unsupported`]
//! lists, such as pooling gradients over overlapping windows larger than the vector unit's
//! line buffer).
//!
//! **Block-RAM buffers.** A block RAM serves one read and one write per cycle.
//! - *Between operands:* the controller already holds instructions back by the readers and
//!   writers of the buffers' partitions (`buffers.readers`, `buffers.writers`,
//!   `buffers.partitions`). So each partition can be `readers` replicas, one per reading
//!   operand, that every write updates.
//! - *Within an operand:* a unit touches many elements per cycle, through one operand bus per
//!   operand ([`machine::operand_buses`]; every read port has an enable, so a bus shows exactly
//!   the elements its unit uses). A replica must therefore be split into banks.
//!
//! With `B` banks interleaved by the low address bits, a run of up to `B` consecutive elements
//! never collides, wherever it starts. The co-simulation's bank profile (`satkit-rtl-cosim`,
//! BENCHMARKS.md) measured every bus on compiled training steps:
//! - *Runs of consecutive elements:* the GEMM's initial sums and output rows, the WUVE's
//!   operands, and the vector unit's element-wise and softmax operands. These are served by
//!   `B` at least the bus's width.
//! - *The SORE:* in FF order a cycle's reads lie within `lanes M` consecutive elements and a
//!   round's writes are one run; in BP order the lanes walk adjacent columns (a cycle reads one
//!   run across them) and a round's write-back drains one lane's kept values (and one row of
//!   the mask) a cycle, which the simulator's prune cost shares (`sim::sore`).
//! - *The DMA:* its lanes take whole rows of a transfer only as many as fall on distinct banks
//!   of [`ArchConfig::dma_banks`] ([`ArchConfig::dma_stream_cycles`], which the simulator's
//!   transfer cost shares), so any program's transfers are served by that many banks.
//! - *The normalizations:* per column (batch norm) the lanes take adjacent channels, each
//!   summing its own in row order; per row (layer norm) they walk a row. Their statistics are
//!   read and written one run a cycle, for blocks of adjacent channels or rows (`norm_stats`
//!   per row writes a row's mean and its rstd in different cycles) ([`sequencers`],
//!   `VecGeometry`).
//! - *The GEMM's operands:* in OS staged per array row and per column of the fold and
//!   fetched one run a cycle: a row's next `G = ceil(R / L)` steps, a column's next `C` steps,
//!   or with a transposed operand one element of every row or column ([`tensor`]; the
//!   simulator's GEMM cost has the fill, `sim::pe_array::os_fill`). In WS an input row's steps
//!   of a fold are read together, one run, and reach the lower array rows through delay lines
//!   (no cost), and a column's steps of a fold are staged, a column a cycle, the first fold's
//!   before it starts ([`ArchConfig::ws_fill`]); a transposed weight (`weight_t`) is staged
//!   likewise, one reduction element of the fold's columns a cycle. A transposed WS input
//!   (`input_t`, its steps `rows` apart) goes through a corner turn: each of the fold's
//!   reduction elements stages its next `X` rows, one run a cycle
//!   ([`ArchConfig::ws_input_chunk`]; dense folds only, the others are [`unsupported`]).
//! - *The pooling windows:* strided, their rows a plane's width apart, so they collide where
//!   the width is a multiple of the banks or near one. The walk takes, each cycle, the longest
//!   prefix of its lanes' elements that falls on distinct banks of the buffer it walks, and the
//!   simulator charges the same cycles ([`crate::operands::PoolDims::walk_cycles`]): on
//!   `vcu1525` the zoo's windows never collide at its 512 banks. `maxpool_grad` writes each
//!   window's gradient at the window's maximum, which the data chooses: its walk takes the
//!   fewer banks of its input's and destination's, and a cycle of it that started inside a
//!   window ends with that window when another whole window could end after it, so the
//!   windows that end in one cycle are that one alone or windows whose elements the cycle read
//!   (on distinct banks).
//! - *Several operands writing one buffer:* every write reaches every replica, so a cycle's
//!   writes must fall on distinct banks together (the bank profile counts them too). Different
//!   instructions write different partitions where `buffers.writers` is 1. One instruction
//!   writes two runs a cycle: the update's new weights and new momenta, whose new momenta go
//!   `j` cycles late onto other banks of `buffers.master_banks`
//!   ([`ArchConfig::wuve_momentum_delay`]).
//!
//! Each buffer's banks cover every unit's widest run on it ([`ArchConfig::min_banks`],
//! validated): `vcu1525`'s DMA alone needs [`ArchConfig::dma_banks`] = 512 in every buffer.
//!
//! So every operand of every instruction falls on distinct banks, whatever the data, and
//! [`buffer`] builds each buffer from such memories: each cycle, each memory's replicas go to
//! the buses that read it, in bus order, and every write reaches every replica. A buffer
//! raises its conflict bit when a cycle breaks these rules; the co-simulation fails any
//! program that does (none of its tests does).
//!
//! What remains is the routing's size: [`buffer`]'s crossbar takes every lane to every memory
//! (lanes x memories multiplexers), which `tiny` affords but `vcu1525` (hundreds of lanes and
//! 2,048 memories a buffer) does not. A run needs only a rotation by its first bank (`log2 B`
//! multiplexer stages per lane); the streams that are not runs (the DMA's rows a cycle, the
//! SORE's and the normalizations' blocks, the pooling walk) would need their own, smaller
//! networks.

pub mod array;
pub mod buffer;
pub mod controller;
pub mod fp;
pub mod machine;
pub mod pe;
pub mod sequencers;
pub mod sore;
pub mod tensor;
mod vector_lane;
pub mod vector_math;
pub mod verilog;
pub mod wuve;

use crate::isa::{Op, VecOp, WeightFormat};
use crate::{ArchConfig, Dataflow, Error};
use rust_hdl::prelude::{check_all, generate_verilog_unchecked, Block};
use serde::Serialize;
use std::collections::BTreeMap;

/// The dataflows the generated array runs (an architecture's others are refused, see
/// [`unsupported`]).
pub const DATAFLOWS: [Dataflow; 2] = [Dataflow::Os, Dataflow::Ws];

/// Why the generated machine of `arch` cannot run `op`, or `None` when it can: the one list of
/// the RTL's limits. The units raise the machine's `unsupported` flag on exactly these
/// instructions (the tensor unit on the GEMMs, the vector unit on the others) and complete
/// them without touching the buffers; the co-simulation refuses a program that holds one
/// before running it.
pub fn unsupported(arch: &ArchConfig, op: &Op) -> Option<String> {
    match *op {
        Op::Gemm { dataflow, .. } if !DATAFLOWS.contains(&dataflow) => {
            Some(format!("dataflow {dataflow}: the RTL tensor unit runs {}", DATAFLOWS.map(Dataflow::name).join(" and ")))
        }
        Op::Vec { op: VecOp::MaxPoolGrad | VecOp::AvgPoolGrad, p2, p3, .. } if p3 < p2 && !arch.vector.has_pool_line_buffer() => {
            Some(format!(
                "a pooling gradient over overlapping windows (window {p2}, stride {p3}): this machine has no line buffer for \
                 them (vector.pool_line_rows and pool_line_cols must not be 0)"
            ))
        }
        Op::Vec { op: VecOp::MaxPoolGrad | VecOp::AvgPoolGrad, p1, p2, p3, .. }
            if p3 < p2 && (p2 > arch.vector.pool_line_rows || p1 > arch.vector.pool_line_cols) =>
        {
            Some(format!(
                "a pooling gradient over overlapping windows (window {p2}, stride {p3}) on planes {p1} wide: the RTL's line \
                 buffer holds windows of up to vector.pool_line_rows = {} rows and planes up to vector.pool_line_cols = {} wide",
                arch.vector.pool_line_rows, arch.vector.pool_line_cols
            ))
        }
        Op::Gemm { dataflow: Dataflow::Ws, input_t: true, weights: WeightFormat::Sparse(ratio), .. } => Some(format!(
            "a WS GEMM with a transposed input and {ratio} sparse weights: the tensor unit's corner turn stages the {} reduction \
             elements of a dense fold",
            arch.array.rows * arch.array.n_max
        )),
        Op::Gemm { dataflow: Dataflow::Ws, input_t: true, .. } if !ws_corner_turn_fits(arch) => Some(format!(
            "a WS GEMM with a transposed input: its runs of {} rows are wider than the input bus's {} lanes",
            arch.ws_input_chunk(u64::from(arch.array.n_max)),
            arch.array.rows * arch.array.m_max
        )),
        Op::Vec { op: VecOp::NormStats | VecOp::NormApply | VecOp::NormGradStats | VecOp::NormGradApply, count: 0, .. } => {
            Some("a normalization of zero rows".into())
        }
        _ => None,
    }
}

/// Whether a transposed WS input's runs ([`ArchConfig::ws_input_chunk`] rows, dense) fit the
/// tensor unit's input bus of `R m_max` lanes.
fn ws_corner_turn_fits(arch: &ArchConfig) -> bool {
    arch.ws_input_chunk(u64::from(arch.array.n_max)) <= u64::from(arch.array.rows * arch.array.m_max)
}

/// Name of the top Verilog module of [`generate`].
pub const TOP_MODULE: &str = "sat_pe_array";

/// One Verilog module of a generated design.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RtlModule {
    /// Module name.
    pub name: String,
    /// How many instances of it the design holds.
    pub instances: usize,
    /// True for registers and delay lines: hierarchical synthesis flattens them into their
    /// parent (where constant, unused bus lanes then disappear); every other module is
    /// synthesized once and counted per instance.
    pub flatten: bool,
}

/// Direction of a top-level port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortDirection {
    /// Driven from outside.
    Input,
    /// Driven by the design.
    Output,
}

/// One port of the top module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RtlPort {
    /// Verilog name (rust-hdl writes vector elements as `name$index`).
    pub name: String,
    /// Direction.
    pub direction: PortDirection,
    /// Width in bits.
    pub width: usize,
}

/// A generated design: Verilog text plus what a manifest or a co-simulation shim needs.
#[derive(Debug, Clone)]
pub struct RtlDesign {
    /// Name of the top module.
    pub top: String,
    /// The whole design, one Verilog file.
    pub verilog: String,
    /// Every module, leaves first, the top last.
    pub modules: Vec<RtlModule>,
    /// The top module's ports in declaration order.
    pub ports: Vec<RtlPort>,
}

/// Generates the PE array of `arch` (see [`array`]).
pub fn generate(arch: &ArchConfig) -> Result<RtlDesign, Error> {
    arch.validate()?;
    let mut top = array::PeArray::new(arch);
    top.connect_all();
    check_all(&top).map_err(|e| Error::RtlCheck { arch: arch.name.clone(), message: format!("{e:?}") })?;
    verilog::deduplicate(&generate_verilog_unchecked(&top), TOP_MODULE)
}

/// Verilator warnings waived by [`lint`], each for a property of rust-hdl's output:
/// - `WIDTH`: rust-hdl writes literals as 32- or 64-bit constants and loop indices unsized;
///   every intermediate value is assigned to a signal of its declared width, so the
///   truncation Verilator reports is the intended (Rust `Bits`) semantics;
/// - `UNOPTFLAT`: rust-hdl writes a block's whole kernel as one `always @(*)`, so a chain that
///   passes through child modules (the PE's adder chain) looks circular at block granularity;
///   it is not a loop and Verilator evaluates it to convergence.
pub const LINT_WAIVERS: [&str; 2] = ["-Wno-WIDTH", "-Wno-UNOPTFLAT"];

/// Verilator options every run needs (lint and co-simulation builds): loops in the buffers and
/// DMA engines run over their ports and lanes, hundreds on a large machine, and Verilator
/// handles a delayed assignment to an array inside a loop only when it unrolls the loop.
pub const VERILATOR_OPTIONS: [&str; 4] = ["--unroll-count", "65536", "--unroll-stmts", "10000000"];

/// Runs `verilator --lint-only` (with [`LINT_WAIVERS`]) on the Verilog file at `path` whose
/// top module is `top`. Errors say when Verilator is missing and quote its complaints.
pub fn lint(path: &std::path::Path, top: &str) -> Result<(), Error> {
    let output = std::process::Command::new("verilator")
        .arg("--lint-only")
        .args(VERILATOR_OPTIONS)
        .args(LINT_WAIVERS)
        .args(["--top-module", top])
        .arg(path)
        .output()
        .map_err(|e| Error::RtlLint {
            file: path.display().to_string(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                "verilator not found on PATH (install it, e.g. `apt-get install verilator`)".into()
            } else {
                format!("cannot run verilator: {e}")
            },
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::RtlLint {
            file: path.display().to_string(),
            message: String::from_utf8_lossy(&output.stderr).trim_end().into(),
        })
    }
}

/// Runs yosys on the Verilog file `path`: `read_verilog`, then `commands` (a `;`-separated
/// script), then `stat -json`, whose statistics it returns parsed. `what` names the step in
/// errors (yosys' complaints, a missing yosys, statistics missing or not JSON).
pub fn yosys_stat(path: &std::path::Path, commands: &str, what: &str) -> Result<serde_json::Value, Error> {
    let failed = |message: String| Error::RtlYosys { file: path.display().to_string(), message };
    let stat_path = path.with_extension("stat.json.tmp");
    let script = format!("read_verilog {}; {commands}; tee -q -o {} stat -json", path.display(), stat_path.display());
    let output = std::process::Command::new("yosys").args(["-q", "-p", &script]).output().map_err(|e| {
        failed(if e.kind() == std::io::ErrorKind::NotFound {
            format!("{what} needs yosys, which is not on PATH (install it, e.g. `apt-get install yosys`)")
        } else {
            format!("cannot run yosys: {e}")
        })
    })?;
    let stat = std::fs::read_to_string(&stat_path);
    let _ = std::fs::remove_file(&stat_path);
    if !output.status.success() {
        return Err(failed(format!("{what} failed:\n{}", String::from_utf8_lossy(&output.stderr).trim_end())));
    }
    let stat = stat.map_err(|e| failed(format!("{what}: yosys wrote no statistics: {e}")))?;
    parse_yosys_stat(&stat).map_err(|e| failed(format!("{what}: yosys statistics are not JSON: {e}")))
}

/// Reads `path` into yosys and elaborates `top` (`hierarchy -check`, `proc`, `check -assert`):
/// what synthesis needs first. It refuses constructs Verilator accepts but synthesis does not
/// (a `while` loop outside a constant function, for one) and nets with several drivers.
/// Returns how many instances of each module the elaborated design holds below `top`, by the
/// module's own name (a parameterized copy counts as its module), to check a design's
/// [`RtlModule::instances`] against.
pub fn elaborate(path: &std::path::Path, top: &str) -> Result<BTreeMap<String, usize>, Error> {
    let stat = yosys_stat(path, &format!("hierarchy -check -top {top}; proc; check -assert"), "elaboration")?;
    let instances = stat_instances(&stat, top)
        .map_err(|message| Error::RtlYosys { file: path.display().to_string(), message: format!("elaboration: {message}") })?;
    let mut by_module = BTreeMap::new();
    for (module, n) in instances {
        *by_module.entry(yosys_module_name(&module).to_string()).or_insert(0) += n as usize;
    }
    Ok(by_module)
}

/// Each module's own cells by type in yosys `stat -json` statistics, by the module's name
/// without yosys' leading backslash (a submodule instance is a cell named after it).
pub fn stat_cells(stat: &serde_json::Value) -> Result<BTreeMap<String, BTreeMap<String, u64>>, String> {
    let Some(modules) = stat.get("modules").and_then(|v| v.as_object()) else {
        return Err("no `modules` object".into());
    };
    let public = |key: &str| key.strip_prefix('\\').unwrap_or(key).to_string();
    let mut out = BTreeMap::new();
    for (name, module) in modules {
        let Some(cells) = module.get("num_cells_by_type").and_then(|v| v.as_object()) else {
            return Err(format!("module `{name}` has no num_cells_by_type"));
        };
        out.insert(public(name), cells.iter().filter_map(|(k, v)| v.as_u64().map(|n| (public(k), n))).collect());
    }
    Ok(out)
}

/// How many instances of each module (by its [`stat_cells`] name, parameterized copies apart)
/// the design below `top` holds, multiplied down the hierarchy; `top` itself counts once.
pub fn stat_instances(stat: &serde_json::Value, top: &str) -> Result<BTreeMap<String, u64>, String> {
    let modules = stat_cells(stat)?;
    if !modules.contains_key(top) {
        return Err(format!("no statistics for module `{top}`"));
    }
    let mut instances = BTreeMap::from([(top.to_string(), 1)]);
    let mut pending = vec![(top.to_string(), 1u64)];
    while let Some((module, count)) = pending.pop() {
        for (kind, &n) in &modules[&module] {
            if modules.contains_key(kind) {
                *instances.entry(kind.clone()).or_insert(0) += count * n;
                pending.push((kind.clone(), count * n));
            }
        }
    }
    Ok(instances)
}

/// Parses yosys `stat -json` output. yosys 0.23 prints its hierarchy listing (`   sat_pe   16`)
/// into the JSON of a design with a top module; those lines are not JSON and are dropped.
pub fn parse_yosys_stat(text: &str) -> serde_json::Result<serde_json::Value> {
    let json: String = text
        .lines()
        .filter(|l| l.trim().is_empty() || l.trim_start().starts_with(['"', '{', '}', '[', ']']))
        .flat_map(|l| [l, "\n"])
        .collect();
    serde_json::from_str(&json)
}

/// The module a [`stat_cells`] name stands for: a parameterized copy (`$paramod$HASH\name` or
/// `$paramod\name\PARAM=...`) as its module, any other name as itself.
fn yosys_module_name(key: &str) -> &str {
    if key.starts_with("$paramod") {
        key.split('\\').nth(1).unwrap_or(key)
    } else {
        key
    }
}

/// [`lint`] on Verilog text, through a temporary file.
pub fn lint_text(verilog: &str, top: &str) -> Result<(), Error> {
    let path = std::env::temp_dir().join(format!("satkit_lint_{top}_{}.v", std::process::id()));
    std::fs::write(&path, verilog)
        .map_err(|e| Error::RtlLint { file: path.display().to_string(), message: format!("cannot write: {e}") })?;
    let linted = lint(&path, top);
    let _ = std::fs::remove_file(&path);
    linted
}

/// Compiles the Verilog file `path` with Icarus Verilog (`iverilog -g2012`, top module `top`,
/// a testbench) next to it and runs it (`vvp -n`); returns what it printed. Errors quote
/// iverilog's or vvp's complaints, or say that Icarus Verilog is missing.
pub fn run_icarus(path: &std::path::Path, top: &str) -> Result<String, Error> {
    let failed = |message: String| Error::RtlIcarus { file: path.display().to_string(), message };
    let run = |command: &mut std::process::Command, tool: &str| {
        let output = command.output().map_err(|e| {
            failed(if e.kind() == std::io::ErrorKind::NotFound {
                format!("{tool} not found on PATH (install Icarus Verilog, e.g. `apt-get install iverilog`)")
            } else {
                format!("cannot run {tool}: {e}")
            })
        })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(failed(format!("{tool}: {}", String::from_utf8_lossy(&output.stderr).trim_end())))
        }
    };
    let binary = path.with_extension("vvp");
    run(std::process::Command::new("iverilog").args(["-g2012", "-s", top, "-o"]).arg(&binary).arg(path), "iverilog")?;
    let printed = run(std::process::Command::new("vvp").arg("-n").arg(&binary), "vvp");
    let _ = std::fs::remove_file(&binary);
    printed
}

/// Evaluates a combinational block: propagates its inputs until no signal changes.
pub fn settle(block: &mut dyn Block) {
    loop {
        block.update_all();
        if !block.has_changed() {
            break;
        }
    }
}
