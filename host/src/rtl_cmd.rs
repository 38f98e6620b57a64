//! `satkit rtl`: generates the Verilog of an architecture's PE array (`satkit_hw::rtl`) and,
//! beside it, of the whole machine (controller, tensor unit, SORE, WUVE and vector units, DMA
//! engines, buffers and control/status registers: what the co-simulation runs), and of the
//! controller and the SORE and WUVE lanes on their own, checks each with
//! `verilator --lint-only`, and writes them with `manifest.json` (modules, top ports, the
//! ArchConfig parameters they were built from, and the block-RAM plan of the buffers,
//! `satkit_hw::board::memory_plan`, which it also prints). With `--synth` yosys first elaborates every
//! block beside the array (`satkit_hw::rtl::elaborate`: what synthesis reads, which Verilator's
//! lint does not fully check), then runs `synth_xilinx` for UltraScale+ on the array, or with
//! `--synth-top machine` on the machine with its buffers left as black boxes, hierarchically
//! (each distinct block synthesized once, counted per instance), and writes `resources.json`
//! (LUT, FF, DSP, BRAM, carry, every cell type, each module's own cells, the bits of the
//! buffers left out, and the share of the board's device when `satkit_hw::board` knows it) plus
//! a table.
//! Each file is written whole or not at all: the Verilog only once it lints.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use satkit_hw::board::{self, Device, MemoryPlan};
use satkit_hw::isa::Buffer;
use satkit_hw::rtl::{self, pe, RtlDesign};
use satkit_hw::ArchConfig;
use satkit_train::output::write_atomic;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `synth_xilinx -family`: UltraScale+, the family of the VCU1525's XCVU9P (DSP48E2, RAMB36E2).
const SYNTH_FAMILY: &str = "xcup";

/// `synth_xilinx` mapping options besides the family. `-nowidelut` maps multiplexers into
/// LUT6s only: with the slice's wide multiplexers (MUXF7/F8/F9) yosys 0.23 puts a LUT1 in front
/// of most of their inputs, which Vivado would pack into the LUTs that feed them. On `tiny`'s
/// array this option counts 22 % fewer LUTs (BENCHMARKS.md), so the LUT count is not inflated
/// by a mapping artifact; it still cannot use the MUXF resources Vivado would.
const SYNTH_OPTIONS: &str = "-nowidelut";

/// Arguments of `satkit rtl`.
#[derive(clap::Args, Debug)]
pub struct RtlArgs {
    /// Architecture: a preset (vcu1525, tiny, systolic) or a TOML file.
    #[arg(long, default_value = "tiny")]
    pub arch: String,
    /// Output directory.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also synthesize with yosys (`synth_xilinx`, hierarchically: each distinct block once)
    /// and report the resources, after yosys has elaborated every block.
    #[arg(long)]
    pub synth: bool,
    /// What `--synth` maps: the PE array, or the whole machine with its buffers left as black
    /// boxes (banked block RAM and their crossbars, counted apart in BENCHMARKS.md;
    /// resources.json gives their bits). At `tiny` yosys takes about 20 min on the machine,
    /// against 30 s on the array.
    #[arg(long, value_enum, default_value = "array")]
    pub synth_top: SynthTop,
}

/// What `satkit rtl --synth` maps.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynthTop {
    /// The PE array (`sat_pe_array`).
    Array,
    /// The machine (`sat_machine`) without its buffers.
    Machine,
}

/// `manifest.json`: what was generated, from which parameters.
#[derive(Serialize)]
struct Manifest<'a> {
    arch: &'a str,
    top: &'a str,
    verilog: String,
    parameters: Parameters,
    modules: &'a [rtl::RtlModule],
    ports: &'a [rtl::RtlPort],
    /// The blocks generated and linted beside the array: the machine, and the controller and
    /// the SORE and WUVE lanes on their own.
    blocks: Vec<Block>,
    /// The block-RAM plan of the buffers (`satkit_hw::board::memory_plan`): the machine's
    /// `sat_buffer_bank` memories, costed in the board's block RAM and UltraRAM.
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_plan: Option<MemoryPlan>,
    /// Why there is no plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    no_memory_plan: Option<String>,
}

/// One separately generated block.
#[derive(Serialize)]
struct Block {
    top: String,
    verilog: String,
    modules: Vec<rtl::RtlModule>,
    ports: Vec<rtl::RtlPort>,
}

/// The ArchConfig fields the generated RTL depends on, and the bus sizes derived from them.
#[derive(Serialize)]
struct Parameters {
    rows: u32,
    cols: u32,
    n_max: u32,
    m_max: u32,
    accumulator_latency: u32,
    supported_nm: Vec<String>,
    /// The architecture's dataflows that the RTL runs.
    dataflows: Vec<&'static str>,
    /// The largest OS interleave: a PE holds `accumulator_latency` accumulators.
    os_max_interleave: u32,
    act_bus_lanes: usize,
    wgt_bus_lanes: usize,
    clock_mhz: f64,
    /// The machine's other fields.
    machine: MachineParameters,
}

/// The ArchConfig fields the machine's other blocks depend on, and the sizes derived from them.
#[derive(Serialize)]
struct MachineParameters {
    /// Elements of each buffer (`ArchConfig::buffer_elements`), by buffer name.
    buffer_elements: BTreeMap<String, u64>,
    /// Elements per cycle each way of each DMA engine (`ArchConfig::dma_lanes`).
    dma_lanes: usize,
    /// Instructions that may read (write) one buffer partition at once; 0: no limit.
    buffer_readers: u32,
    buffer_writers: u32,
    /// Memories each buffer is split into.
    buffer_partitions: u32,
    queue_depth: u32,
    sore_lanes: u32,
    wuve_lanes: u32,
    wuve_pipeline_latency: u32,
    vector_lanes: u32,
    vector_pipeline_latency: u32,
    /// The vector unit's line buffer for pooling gradients over overlapping windows.
    pool_line_rows: u32,
    pool_line_cols: u32,
}

impl MachineParameters {
    fn of(arch: &ArchConfig) -> MachineParameters {
        MachineParameters {
            buffer_elements: Buffer::ALL.iter().map(|&b| (b.to_string(), arch.buffer_elements(b))).collect(),
            dma_lanes: arch.dma_lanes() as usize,
            buffer_readers: arch.buffers.readers,
            buffer_writers: arch.buffers.writers,
            buffer_partitions: arch.buffers.partitions,
            queue_depth: arch.control.queue_depth,
            sore_lanes: arch.sore.lanes,
            wuve_lanes: arch.wuve.lanes,
            wuve_pipeline_latency: arch.wuve.pipeline_latency,
            vector_lanes: arch.vector.lanes,
            vector_pipeline_latency: arch.vector.pipeline_latency,
            pool_line_rows: arch.vector.pool_line_rows,
            pool_line_cols: arch.vector.pool_line_cols,
        }
    }
}

/// `resources.json`: yosys `synth_xilinx` cell counts.
#[derive(Serialize, Debug)]
struct Resources {
    arch: String,
    top: String,
    /// yosys `synth_xilinx -family`.
    family: &'static str,
    /// The other `synth_xilinx` mapping options.
    options: &'static str,
    /// LUTs as logic: `LUT1`..`LUT6` and `INV` (yosys keeps inverters as cells of their own; each
    /// takes a LUT1 on the device unless placement folds it into a neighbour).
    lut: u64,
    /// LUTs as shift registers (`SRL16E`, `SRLC32E`: yosys maps the edge skew lines to them).
    srl: u64,
    ff: u64,
    dsp: u64,
    bram: u64,
    carry: u64,
    synth_seconds: f64,
    /// The machine's buffers, left out of the synthesis as black boxes (`--synth-top machine`):
    /// their bits, which the counts above do not include.
    #[serde(skip_serializing_if = "Option::is_none")]
    buffer_bits_not_synthesized: Option<u64>,
    /// Primitive cells of the whole design (every module times its instances).
    cells_by_type: BTreeMap<String, u64>,
    /// Each synthesized module's own cells (submodule instances by module name).
    cells_by_module: BTreeMap<String, BTreeMap<String, u64>>,
    /// The share of the board's device the counts take (`satkit_hw::board`); absent for a
    /// board without a known device.
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<DeviceShare>,
}

/// What share of a device a synthesized design takes, in percent.
#[derive(Serialize, Debug)]
struct DeviceShare {
    device: Device,
    /// LUTs as logic and as shift registers.
    lut_percent: f64,
    ff_percent: f64,
    dsp_percent: f64,
    /// Block RAM cells (a RAMB18 counts as half a RAMB36).
    bram36_percent: f64,
}

impl DeviceShare {
    fn of(r: &Resources, device: Device) -> DeviceShare {
        let percent = |used: f64, available: u64| 100.0 * used / available as f64;
        let bram36 = r.cells_by_type.iter().map(|(kind, &n)| match kind.as_str() {
            k if k.starts_with("RAMB36") => n as f64,
            k if k.starts_with("RAMB18") => n as f64 / 2.0,
            _ => 0.0,
        });
        DeviceShare {
            device,
            lut_percent: percent((r.lut + r.srl) as f64, device.luts),
            ff_percent: percent(r.ff as f64, device.flip_flops),
            dsp_percent: percent(r.dsp as f64, device.dsps),
            bram36_percent: percent(bram36.sum(), device.bram36),
        }
    }
}

/// Runs `satkit rtl`.
pub fn run(a: &RtlArgs) -> Result<()> {
    let arch = ArchConfig::resolve(&a.arch)?;
    let design = rtl::generate(&arch).with_context(|| format!("generating the RTL of `{}`", arch.name))?;
    let dir = &a.output;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let verilog_name = format!("{}.v", design.top);
    let verilog_path = dir.join(&verilog_name);
    write_linted_verilog(&design, &verilog_path)?;
    let mut blocks = Vec::new();
    for generate in [rtl::machine::generate, rtl::controller::generate, rtl::sore::generate, rtl::wuve::generate] {
        let block = generate(&arch).with_context(|| format!("generating the RTL of `{}`", arch.name))?;
        let verilog = format!("{}.v", block.top);
        write_linted_verilog(&block, &dir.join(&verilog))?;
        blocks.push(Block { top: block.top, verilog, modules: block.modules, ports: block.ports });
    }
    let params = Parameters {
        rows: arch.array.rows,
        cols: arch.array.cols,
        n_max: arch.array.n_max,
        m_max: arch.array.m_max,
        accumulator_latency: arch.array.accumulator_latency,
        supported_nm: arch.array.supported_nm.iter().map(|r| r.to_string()).collect(),
        dataflows: arch.array.dataflows.iter().filter(|d| rtl::DATAFLOWS.contains(d)).map(|d| d.name()).collect(),
        os_max_interleave: arch.array.accumulator_latency,
        act_bus_lanes: pe::ACT_BUS_LANES,
        wgt_bus_lanes: pe::WGT_BUS_LANES,
        clock_mhz: arch.clock_mhz,
        machine: MachineParameters::of(&arch),
    };
    let plan = board::memory_plan(&arch);
    let manifest = Manifest {
        arch: &arch.name,
        top: &design.top,
        verilog: verilog_name,
        parameters: params,
        modules: &design.modules,
        ports: &design.ports,
        blocks,
        memory_plan: plan.as_ref().ok().cloned(),
        no_memory_plan: plan.as_ref().err().cloned(),
    };
    write_atomic(&dir.join("manifest.json"), &serde_json::to_vec_pretty(&manifest)?)?;
    let block_files: Vec<&str> = manifest.blocks.iter().map(|b| b.verilog.as_str()).collect();
    println!(
        "{}: {} modules ({} PEs), lint clean -> {}/{{{},{},manifest.json}}",
        arch.name,
        design.modules.len(),
        arch.array.rows * arch.array.cols,
        dir.display(),
        manifest.verilog,
        block_files.join(",")
    );
    print_memory_plan(&arch, &plan);
    if a.synth {
        for block in &manifest.blocks {
            let started = Instant::now();
            let instances = with_spinner(format!("yosys: elaborating {}", block.verilog), || {
                Ok(rtl::elaborate(&dir.join(&block.verilog), &block.top)?)
            })?;
            for module in block.modules.iter().filter(|m| m.name != block.top) {
                let elaborated = instances.get(&module.name).copied().unwrap_or(0);
                if elaborated != module.instances {
                    bail!(
                        "{}: the manifest counts {} instances of `{}`, yosys elaborates {elaborated}",
                        block.verilog,
                        module.instances,
                        module.name
                    );
                }
            }
            println!("yosys elaborates {} as the manifest counts it ({:.1} s)", block.verilog, started.elapsed().as_secs_f64());
        }
        let resources = match a.synth_top {
            SynthTop::Array => {
                with_spinner(format!("yosys: synth_xilinx on {} (an hour for vcu1525)", manifest.verilog), || {
                    synthesize(&arch, &design.top, &design.modules, &verilog_path, None)
                })?
            }
            SynthTop::Machine => {
                let Some(machine) = manifest.blocks.iter().find(|b| b.top == rtl::machine::TOP_MODULE) else {
                    bail!("no `{}` among the generated blocks", rtl::machine::TOP_MODULE);
                };
                let buffer_bits =
                    Buffer::ALL.iter().map(|&b| arch.buffer_elements(b) * rtl::machine::buffer_width(b) as u64).sum();
                with_spinner(format!("yosys: synth_xilinx on {} without its buffers", machine.verilog), || {
                    let path = dir.join(&machine.verilog);
                    synthesize(&arch, &machine.top, &machine.modules, &path, Some((rtl::buffer::BUFFER_MODULE, buffer_bits)))
                })?
            }
        };
        write_atomic(&dir.join("resources.json"), &serde_json::to_vec_pretty(&resources)?)?;
        let share = resources.device.as_ref();
        match share {
            Some(s) => println!("{:<12} {:>10} {:>12}", "resource", "count", format!("% of {}", s.device.part)),
            None => println!("{:<12} {:>10}", "resource", "count"),
        }
        for (name, count, percent) in [
            ("LUT", resources.lut, share.map(|s| s.lut_percent)),
            ("LUT as SRL", resources.srl, None),
            ("FF", resources.ff, share.map(|s| s.ff_percent)),
            ("DSP", resources.dsp, share.map(|s| s.dsp_percent)),
            ("BRAM", resources.bram, share.map(|s| s.bram36_percent)),
            ("CARRY", resources.carry, None),
        ] {
            match percent {
                Some(p) => println!("{name:<12} {count:>10} {p:>11.1}%"),
                None => println!("{name:<12} {count:>10}"),
            }
        }
        if let Some(bits) = resources.buffer_bits_not_synthesized {
            println!("{:<12} {:>10} (the banked buffers, left out)", "buffer bits", bits);
        }
        println!("yosys synth_xilinx: {:.1} s -> {}", resources.synth_seconds, dir.join("resources.json").display());
    }
    Ok(())
}

/// The block-RAM plan as a table, with the best split of the board's device.
fn print_memory_plan(arch: &ArchConfig, plan: &Result<MemoryPlan, String>) {
    let plan = match plan {
        Ok(plan) => plan,
        Err(why) => return println!("no block-RAM plan of the buffers: {why}"),
    };
    let b = &arch.buffers;
    println!(
        "block-RAM plan of the buffers: {} partitions x {} replicas x banks, a memory (sat_buffer_bank) per bank",
        b.partitions, b.readers
    );
    println!("{:<8} {:>9} {:>14} {:>10} {:>9}", "plane", "memories", "depth x width", "RAMB36", "URAM288");
    for p in &plan.planes {
        println!(
            "{:<8} {:>9} {:>14} {:>10.1} {:>9}",
            p.buffer.to_string(),
            p.memories,
            format!("{} x {}", p.depth, p.width),
            p.bram36,
            p.uram
        );
    }
    if let Some(fit) = &plan.device {
        let in_uram: Vec<String> = fit.in_uram.iter().map(ToString::to_string).collect();
        println!(
            "{}: {} in URAM, the rest in block RAM: {:.1} RAMB36 ({:.1}% of {}), {} URAM288 ({:.1}% of {}): {}",
            fit.device.part,
            if in_uram.is_empty() { "none".to_string() } else { in_uram.join(", ") },
            fit.bram36,
            fit.bram36_percent,
            fit.device.bram36,
            fit.uram,
            fit.uram_percent,
            fit.device.uram,
            if fit.fits { "fits" } else { "does not fit" }
        );
    }
}

/// Runs `work` under a spinner that shows `message` and the time so far (on a terminal only).
fn with_spinner<T>(message: String, work: impl FnOnce() -> Result<T>) -> Result<T> {
    let spinner = ProgressBar::new_spinner()
        .with_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]").expect("valid template"))
        .with_message(message);
    spinner.enable_steady_tick(Duration::from_millis(200));
    let result = work();
    spinner.finish_and_clear();
    result
}

/// Writes the Verilog to a temporary file, lints it, and renames it into place.
fn write_linted_verilog(design: &RtlDesign, path: &Path) -> Result<()> {
    let tmp = path.with_extension("v.tmp");
    std::fs::write(&tmp, &design.verilog).with_context(|| format!("cannot write {}", tmp.display()))?;
    if let Err(e) = satkit_hw::rtl::lint(&tmp, &design.top) {
        let _ = std::fs::remove_file(&tmp);
        bail!("{}: {e}", path.display());
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}

/// Runs yosys `synth_xilinx` hierarchically on the written Verilog of the design `top` (made
/// of `modules`) and counts cells by kind. `black_box` names a module left out, and its bits.
///
/// A flattened synthesis of even the `tiny` array grows past 13 GB, so each distinct block
/// (PE, FP multiplier, FP adder, sequencer: every module not marked `flatten`) is kept as its own
/// module (`keep_hierarchy`) and synthesized once; registers and delay lines are flattened
/// into their parents so that the constant lanes of the wide buses disappear. The totals
/// multiply each module's cells by its instance count, walking the hierarchy from the top.
fn synthesize(
    arch: &ArchConfig,
    top: &str,
    modules: &[rtl::RtlModule],
    verilog: &Path,
    black_box: Option<(&str, u64)>,
) -> Result<Resources> {
    let text = std::fs::read_to_string(verilog).with_context(|| format!("cannot read {}", verilog.display()))?;
    let left_out = black_box.map(|(module, _)| module);
    // `hierarchy` renames a module with parameters to one `$paramod\name\...` per parameter set.
    let kept: Vec<String> =
        modules
            .iter()
            .filter(|m| !m.flatten && m.name != top && Some(m.name.as_str()) != left_out)
            .map(|m| {
                if text.contains(&format!("module {} #(", m.name)) {
                    format!("$paramod\\{}\\*", m.name)
                } else {
                    m.name.clone()
                }
            })
            .collect();
    let keep = if kept.is_empty() { String::new() } else { format!("setattr -mod -set keep_hierarchy 1 {}; ", kept.join(" ")) };
    // A black box before `hierarchy`, which would otherwise derive its parameterized copies.
    let blackbox = left_out.map(|module| format!("blackbox {module}; ")).unwrap_or_default();
    let commands = format!(
        "{blackbox}hierarchy -check -top {top}; {keep}synth_xilinx -family {SYNTH_FAMILY} {SYNTH_OPTIONS} -noiopad -noclkbuf -flatten -top {top}"
    );
    let started = Instant::now();
    let stat = rtl::yosys_stat(verilog, &commands, "synth_xilinx")?;
    let synth_seconds = started.elapsed().as_secs_f64();
    let context = || format!("{}: yosys statistics", verilog.display());
    let cells_by_module = rtl::stat_cells(&stat).map_err(anyhow::Error::msg).with_context(context)?;
    let cells_by_type = hierarchy_totals(&stat, top).with_context(context)?;
    let sum = |pred: &dyn Fn(&str) -> bool| cells_by_type.iter().filter(|(k, _)| pred(k)).map(|(_, n)| n).sum::<u64>();
    let mut resources = Resources {
        arch: arch.name.clone(),
        top: top.to_string(),
        family: SYNTH_FAMILY,
        options: SYNTH_OPTIONS,
        lut: sum(&|k| k.starts_with("LUT") || k == "INV"),
        srl: sum(&|k| k.starts_with("SRL")),
        ff: sum(&|k| k.starts_with("FD")),
        dsp: sum(&|k| k.starts_with("DSP")),
        bram: sum(&|k| k.starts_with("RAMB")),
        carry: sum(&|k| k.starts_with("CARRY")),
        synth_seconds,
        buffer_bits_not_synthesized: black_box.map(|(_, bits)| bits),
        cells_by_module,
        cells_by_type,
        device: None,
    };
    resources.device = board::device(&arch.board).map(|device| DeviceShare::of(&resources, device));
    Ok(resources)
}

/// Primitive cells of the whole design: each module's own primitive cells times its instances
/// below `top` (a submodule instance is not a primitive: its cells count in its own module).
fn hierarchy_totals(stat: &serde_json::Value, top: &str) -> Result<BTreeMap<String, u64>> {
    let modules = rtl::stat_cells(stat).map_err(anyhow::Error::msg)?;
    let mut totals = BTreeMap::new();
    for (module, count) in rtl::stat_instances(stat, top).map_err(anyhow::Error::msg)? {
        for (kind, &n) in modules[&module].iter().filter(|(kind, _)| !modules.contains_key(*kind)) {
            *totals.entry(kind.clone()).or_insert(0) += count * n;
        }
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-level design as yosys 0.23 writes it, hierarchy listing lines included.
    const STAT: &str = r#"{
   "creator": "Yosys 0.23",
   "modules": {
      "\\leaf": {
         "num_cells": 3,
         "num_cells_by_type": { "DSP48E2": 1, "LUT2": 2 }
      },
      "\\mid": {
         "num_cells": 7,
         "num_cells_by_type": { "FDRE": 5, "leaf": 2 }
      },
      "\\top": {
         "num_cells": 4,
         "num_cells_by_type": { "LUT6": 1, "mid": 3 }
      }
   },
       top                           1
       mid                           3
       leaf                          6
      "design": {
         "num_cells_by_type": { "DSP48E2": 6, "FDRE": 15, "LUT2": 12, "LUT6": 1 }
      }
}"#;

    #[test]
    fn totals_multiply_each_module_by_its_instances() {
        let stat = rtl::parse_yosys_stat(STAT).unwrap();
        let totals = hierarchy_totals(&stat, "top").unwrap();
        let want: BTreeMap<String, u64> =
            [("DSP48E2", 6), ("FDRE", 15), ("LUT2", 12), ("LUT6", 1)].into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(totals, want);
        // The same as yosys' own hierarchical totals.
        let yosys: BTreeMap<String, u64> = serde_json::from_value(stat["design"]["num_cells_by_type"].clone()).unwrap();
        assert_eq!(totals, yosys);
        assert_eq!(rtl::stat_cells(&stat).unwrap()["mid"]["leaf"], 2);
    }

    #[test]
    fn a_black_box_is_left_out_of_the_counts_and_its_bits_reported() {
        // A top with two instances of a memory (the black box) and one adder block.
        let dir = std::env::temp_dir().join(format!("satkit-rtl-blackbox-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let verilog = dir.join("top.v");
        std::fs::write(
            &verilog,
            "module memory #(parameter W = 8) (input clock, input [3:0] addr, input [W-1:0] wdata, input we,
                                               output reg [W-1:0] rdata);
                 reg [W-1:0] cells [0:15];
                 always @(posedge clock) begin if (we) cells[addr] <= wdata; rdata <= cells[addr]; end
             endmodule
             module adder #(parameter W = 8) (input [W-1:0] a, input [W-1:0] b, output [W-1:0] sum);
                 assign sum = a + b;
             endmodule
             module top (input clock, input [3:0] addr, input [7:0] wdata, input we, output [7:0] out);
                 wire [7:0] x, y;
                 memory #(.W(8)) m0 (.clock(clock), .addr(addr), .wdata(wdata), .we(we), .rdata(x));
                 memory #(.W(8)) m1 (.clock(clock), .addr(~addr), .wdata(wdata), .we(we), .rdata(y));
                 adder #(.W(8)) add (.a(x), .b(y), .sum(out));
             endmodule
            ",
        )
        .unwrap();
        let module = |name: &str, instances| rtl::RtlModule { name: name.into(), instances, flatten: false };
        let modules = [module("memory", 2), module("adder", 1), module("top", 1)];
        let arch = ArchConfig::tiny();
        let with = synthesize(&arch, "top", &modules, &verilog, None).unwrap();
        let without = synthesize(&arch, "top", &modules, &verilog, Some(("memory", 2 * 16 * 8))).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(with.buffer_bits_not_synthesized, None);
        assert_eq!(without.buffer_bits_not_synthesized, Some(256));
        let boxes: u64 = without.cells_by_type.iter().filter(|(k, _)| k.contains("memory")).map(|(_, n)| n).sum();
        assert_eq!(boxes, 2, "{:?}", without.cells_by_type);
        // The parameterized adder kept its own module (its derived copy).
        assert!(without.cells_by_module.keys().any(|k| k.contains("adder")), "{:?}", without.cells_by_module.keys());
        // The memories' own cells (their registers or RAM) are gone; the adder's LUTs stay.
        assert!(with.ff + with.bram + with.lut > without.ff + without.bram + without.lut, "{with:?}\n{without:?}");
        assert_eq!(without.ff + without.bram, 0, "{without:?}");
        assert!(without.lut > 0, "{without:?}");
    }

    #[test]
    fn the_device_share_counts_luts_as_logic_and_srl_and_half_a_bram_per_ramb18() {
        let cells_by_type: BTreeMap<String, u64> =
            [("RAMB36E2".to_string(), 10), ("RAMB18E2".to_string(), 4)].into_iter().collect();
        let r = Resources {
            arch: "t".into(),
            top: "t".into(),
            family: SYNTH_FAMILY,
            options: SYNTH_OPTIONS,
            lut: 100_000,
            srl: 18_224,
            ff: 236_448,
            dsp: 684,
            bram: 14,
            carry: 0,
            synth_seconds: 0.0,
            buffer_bits_not_synthesized: None,
            cells_by_type,
            cells_by_module: BTreeMap::new(),
            device: None,
        };
        let share = DeviceShare::of(&r, board::XCVU9P);
        assert!((share.lut_percent - 10.0).abs() < 1e-9, "{share:?}");
        assert!((share.ff_percent - 10.0).abs() < 1e-9);
        assert!((share.dsp_percent - 10.0).abs() < 1e-9);
        assert!((share.bram36_percent - 100.0 * 12.0 / 2160.0).abs() < 1e-9);
    }

    #[test]
    fn the_manifest_names_the_machines_parameters() {
        let mut arch = ArchConfig::tiny();
        arch.vector.pool_line_cols = 40;
        let json = serde_json::to_value(MachineParameters::of(&arch)).unwrap();
        assert_eq!(json["pool_line_cols"], 40);
        assert_eq!(json["vector_lanes"], arch.vector.lanes);
        assert_eq!(json["dma_lanes"], arch.dma_lanes());
        assert_eq!(json["buffer_elements"]["act"], arch.buffer_elements(Buffer::Act));
        assert_eq!(json["buffer_elements"].as_object().map(|o| o.len()), Some(Buffer::ALL.len()));
    }

    #[test]
    fn a_missing_module_or_bad_json_is_an_error() {
        let stat = rtl::parse_yosys_stat(STAT).unwrap();
        let e = hierarchy_totals(&stat, "nope").unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        assert!(rtl::parse_yosys_stat("{ \"modules\": ").is_err());
    }
}
