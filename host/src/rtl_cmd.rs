//! `satkit rtl`: generates the Verilog of an architecture's PE array (`satkit_hw::rtl`), checks
//! it with `verilator --lint-only`, and writes it with `manifest.json` (modules, top ports and
//! the ArchConfig parameters it was built from). With `--synth` it runs yosys `synth_xilinx`
//! and writes `resources.json` (LUT, FF, DSP, BRAM, carry and every cell type) plus a table.
//! Each file is written whole or not at all: the Verilog only once it lints.

use anyhow::{bail, Context, Result};
use satkit_hw::rtl::{self, pe, RtlDesign};
use satkit_hw::ArchConfig;
use satkit_train::output::write_atomic;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Verilator warnings waived by the lint, each for a property of rust-hdl's output:
/// - `WIDTH`: rust-hdl writes literals as 32- or 64-bit constants and loop indices unsized;
///   every intermediate value is assigned to a signal of its declared width, so the
///   truncation Verilator reports is the intended (Rust `Bits`) semantics;
/// - `UNOPTFLAT`: rust-hdl writes a block's whole kernel as one `always @(*)`, so a chain that
///   passes through child modules (the PE's adder chain) looks circular at block granularity;
///   it is not a loop and Verilator evaluates it to convergence.
const LINT_WAIVERS: [&str; 2] = ["-Wno-WIDTH", "-Wno-UNOPTFLAT"];

/// Arguments of `satkit rtl`.
#[derive(clap::Args, Debug)]
pub struct RtlArgs {
    /// Architecture: a preset (vcu1525, tiny, systolic) or a TOML file.
    #[arg(long, default_value = "tiny")]
    pub arch: String,
    /// Output directory.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also synthesize with yosys (`synth_xilinx -flatten`) and report resources.
    #[arg(long)]
    pub synth: bool,
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
    dataflow: &'static str,
    os_interleave: u32,
    act_bus_lanes: usize,
    wgt_bus_lanes: usize,
    clock_mhz: f64,
}

/// `resources.json`: yosys `synth_xilinx` cell counts.
#[derive(Serialize)]
struct Resources {
    arch: String,
    top: String,
    lut: u64,
    ff: u64,
    dsp: u64,
    bram: u64,
    carry: u64,
    synth_seconds: f64,
    cells_by_type: BTreeMap<String, u64>,
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
    let params = Parameters {
        rows: arch.array.rows,
        cols: arch.array.cols,
        n_max: arch.array.n_max,
        m_max: arch.array.m_max,
        accumulator_latency: arch.array.accumulator_latency,
        supported_nm: arch.array.supported_nm.iter().map(|r| r.to_string()).collect(),
        dataflow: "os",
        os_interleave: 1,
        act_bus_lanes: pe::ACT_BUS_LANES,
        wgt_bus_lanes: pe::WGT_BUS_LANES,
        clock_mhz: arch.clock_mhz,
    };
    let manifest = Manifest {
        arch: &arch.name,
        top: &design.top,
        verilog: verilog_name,
        parameters: params,
        modules: &design.modules,
        ports: &design.ports,
    };
    write_atomic(&dir.join("manifest.json"), &serde_json::to_vec_pretty(&manifest)?)?;
    println!(
        "{}: {} modules ({} PEs), lint clean -> {}/{{{},manifest.json}}",
        arch.name,
        design.modules.len(),
        arch.array.rows * arch.array.cols,
        dir.display(),
        manifest.verilog
    );
    if a.synth {
        let resources = synthesize(&arch, &design, &verilog_path)?;
        write_atomic(&dir.join("resources.json"), &serde_json::to_vec_pretty(&resources)?)?;
        println!("{:<10} {:>10}", "resource", "count");
        for (name, count) in [
            ("LUT", resources.lut),
            ("FF", resources.ff),
            ("DSP", resources.dsp),
            ("BRAM", resources.bram),
            ("CARRY", resources.carry),
        ] {
            println!("{name:<10} {count:>10}");
        }
        println!("yosys synth_xilinx: {:.1} s -> {}", resources.synth_seconds, dir.join("resources.json").display());
    }
    Ok(())
}

/// Writes the Verilog to a temporary file, lints it, and renames it into place.
fn write_linted_verilog(design: &RtlDesign, path: &Path) -> Result<()> {
    let tmp = path.with_extension("v.tmp");
    std::fs::write(&tmp, &design.verilog).with_context(|| format!("cannot write {}", tmp.display()))?;
    let lint =
        Command::new("verilator").arg("--lint-only").args(LINT_WAIVERS).args(["--top-module", &design.top]).arg(&tmp).output();
    let cleanup = || {
        let _ = std::fs::remove_file(&tmp);
    };
    let lint = match lint {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            cleanup();
            bail!("verilator not found on PATH: `satkit rtl` lints its output with it (install it, e.g. `apt-get install verilator`)")
        }
        Err(e) => {
            cleanup();
            return Err(e).context("cannot run verilator");
        }
    };
    if !lint.status.success() {
        cleanup();
        bail!("{}: verilator --lint-only failed:\n{}", path.display(), String::from_utf8_lossy(&lint.stderr).trim_end());
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}

/// Runs yosys `synth_xilinx` on the written Verilog and counts cells by kind.
fn synthesize(arch: &ArchConfig, design: &RtlDesign, verilog: &Path) -> Result<Resources> {
    let stat_path = verilog.with_extension("stat.json.tmp");
    let script = format!(
        "read_verilog {}; synth_xilinx -flatten -top {}; tee -q -o {} stat -json",
        verilog.display(),
        design.top,
        stat_path.display()
    );
    let started = Instant::now();
    let out = match Command::new("yosys").args(["-q", "-p", &script]).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("yosys not found on PATH: --synth needs it (install it, e.g. `apt-get install yosys`)")
        }
        Err(e) => return Err(e).context("cannot run yosys"),
    };
    let synth_seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        let _ = std::fs::remove_file(&stat_path);
        bail!("{}: yosys synth_xilinx failed:\n{}", verilog.display(), String::from_utf8_lossy(&out.stderr).trim_end());
    }
    let text = std::fs::read_to_string(&stat_path).with_context(|| format!("yosys wrote no {}", stat_path.display()));
    let _ = std::fs::remove_file(&stat_path);
    let stat: serde_json::Value =
        serde_json::from_str(&text?).with_context(|| format!("{}: yosys stat output is not JSON", stat_path.display()))?;
    let Some(cells) = stat.pointer("/design/num_cells_by_type").and_then(|v| v.as_object()) else {
        bail!("{}: yosys stat output has no design.num_cells_by_type", stat_path.display());
    };
    let cells_by_type: BTreeMap<String, u64> = cells.iter().filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n))).collect();
    let sum = |pred: &dyn Fn(&str) -> bool| cells_by_type.iter().filter(|(k, _)| pred(k)).map(|(_, n)| n).sum::<u64>();
    Ok(Resources {
        arch: arch.name.clone(),
        top: design.top.clone(),
        lut: sum(&|k| k.starts_with("LUT")),
        ff: sum(&|k| k.starts_with("FD")),
        dsp: sum(&|k| k.starts_with("DSP")),
        bram: sum(&|k| k.starts_with("RAMB")),
        carry: sum(&|k| k.starts_with("CARRY")),
        synth_seconds,
        cells_by_type,
    })
}
