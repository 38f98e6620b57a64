//! Program and machine utilities: `satkit asm`, `disasm`, `run`, `arch` and `isa`.

use anyhow::{Context, Result};
use satkit_hw::isa::{layouts, Program, HEADER_BITS, PROGRAM_MAGIC, SEMAPHORE_BITS};
use satkit_hw::ArchConfig;
use satkit_sim::{Machine, Mode};
use satkit_train::output::write_atomic;
use std::path::{Path, PathBuf};

/// Arguments of `satkit asm`.
#[derive(clap::Args, Debug)]
pub struct AsmArgs {
    /// Text program.
    pub input: PathBuf,
    /// Binary output.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Arguments of `satkit disasm`.
#[derive(clap::Args, Debug)]
pub struct DisasmArgs {
    /// Binary program.
    pub input: PathBuf,
}

/// Arguments of `satkit run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Program, binary or text (detected from its first bytes).
    pub program: PathBuf,
    /// Architecture: a preset or a TOML file.
    #[arg(long, default_value = "tiny")]
    pub arch: String,
    /// Where to run it: `sim` (the cycle-level simulator) or `rtl` (the generated Verilog,
    /// Verilated, with DRAM served by the host; needs a build with `--features rtl`).
    #[arg(long, default_value = "sim")]
    pub device: String,
    /// Skip the functional model (timing, traffic and energy only).
    #[arg(long)]
    pub timing_only: bool,
    /// Print the report (with per-instruction records) as JSON.
    #[arg(long)]
    pub json: bool,
    /// DRAM contents before the run: a raw byte image loaded at address 0 (for a compiled
    /// step, its inputs, labels and weights at the addresses of its manifest.json).
    #[arg(long, value_name = "IMAGE")]
    pub dram: Option<PathBuf>,
    /// After the run, write DRAM bytes `[0, N)` to this file, N from `--dram-bytes` or else the
    /// `--dram` image's length. With `--device rtl` the RTL's bytes, checked against the
    /// simulator's.
    #[arg(long, value_name = "FILE")]
    pub dram_out: Option<PathBuf>,
    /// Bytes of DRAM that `--dram-out` writes (and `--device rtl` compares).
    #[arg(long, value_name = "N")]
    pub dram_bytes: Option<u64>,
    /// With `--device rtl`: profile every operand's elements per cycle against buffers banked
    /// by the low address bits, and write bank_profile.csv and bank_profile.png into DIR.
    #[arg(long, value_name = "DIR")]
    pub bank_profile: Option<PathBuf>,
    /// Bank counts of `--bank-profile` (powers of two).
    #[arg(long, value_name = "B,B,...", value_delimiter = ',', default_value = "4,8,16,32,64")]
    pub banks: Vec<u64>,
}

impl RunArgs {
    /// The `--dram` image (empty without one).
    fn dram_image(&self) -> Result<Vec<u8>> {
        match &self.dram {
            Some(path) => std::fs::read(path).with_context(|| format!("--dram {}: cannot read the DRAM image", path.display())),
            None => Ok(Vec::new()),
        }
    }

    /// The DRAM bytes written out and compared: `--dram-bytes`, else the image's length.
    fn dram_extent(&self, image: &[u8]) -> Result<usize> {
        let n = self.dram_bytes.map_or(image.len() as u64, |n| n);
        if self.dram_out.is_some() && n == 0 {
            anyhow::bail!("--dram-out needs --dram-bytes N or a non-empty --dram image");
        }
        usize::try_from(n).with_context(|| format!("--dram-bytes {n} is too large"))
    }
}

/// Arguments of `satkit arch`.
#[derive(clap::Args, Debug)]
pub struct ArchArgs {
    /// A preset (vcu1525, tiny, systolic) or a TOML file.
    #[arg(default_value = "vcu1525")]
    pub arch: String,
}

/// Reads a program file, binary or text.
fn load_program(path: &Path) -> Result<Program> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let parsed = if bytes.starts_with(PROGRAM_MAGIC) {
        Program::from_binary(&bytes)
    } else {
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("{}: neither a binary program nor UTF-8 text", path.display()))?;
        Program::parse_text(&text)
    };
    parsed.with_context(|| path.display().to_string())
}

/// `satkit asm`.
pub fn asm(a: &AsmArgs) -> Result<()> {
    let program = load_program(&a.input)?;
    write_atomic(&a.output, &program.to_binary()?)?;
    println!("{} instructions -> {}", program.insns.len(), a.output.display());
    Ok(())
}

/// `satkit disasm`.
pub fn disasm(a: &DisasmArgs) -> Result<()> {
    print!("{}", load_program(&a.input)?.to_text());
    Ok(())
}

/// `satkit run`.
pub fn run(a: &RunArgs) -> Result<()> {
    let arch = ArchConfig::resolve(&a.arch).with_context(|| format!("--arch {}", a.arch))?;
    let program = load_program(&a.program)?;
    if a.bank_profile.is_some() && a.device != "rtl" {
        anyhow::bail!("--bank-profile probes the RTL: add --device rtl");
    }
    match a.device.as_str() {
        "sim" => run_sim(a, &arch, &program),
        "rtl" => run_rtl(a, &arch, &program),
        other => anyhow::bail!("--device {other}: the devices are `sim` and `rtl`"),
    }
}

/// Loads the `--dram` image into a machine; errors name the image.
fn load_dram(a: &RunArgs, image: &[u8], write: impl FnOnce(&[u8]) -> Result<()>) -> Result<()> {
    if let Some(path) = &a.dram {
        write(image).with_context(|| format!("--dram {}: the image does not fit this machine's DRAM", path.display()))?;
    }
    Ok(())
}

/// Writes the `--dram-out` file (whole or not at all).
fn save_dram(a: &RunArgs, bytes: &[u8]) -> Result<()> {
    if let Some(path) = &a.dram_out {
        write_atomic(path, bytes).with_context(|| format!("--dram-out {}", path.display()))?;
    }
    Ok(())
}

fn run_sim(a: &RunArgs, arch: &ArchConfig, program: &Program) -> Result<()> {
    let mut machine = Machine::new(arch, if a.timing_only { Mode::TimingOnly } else { Mode::Functional });
    machine.record_instructions(a.json);
    let image = a.dram_image()?;
    let extent = a.dram_extent(&image)?;
    if a.timing_only && (a.dram.is_some() || a.dram_out.is_some()) {
        anyhow::bail!("--timing-only keeps no data: drop --dram and --dram-out");
    }
    load_dram(a, &image, |bytes| Ok(machine.write_dram(0, bytes)?))?;
    let report = machine.run(program).with_context(|| a.program.display().to_string())?;
    if a.dram_out.is_some() {
        save_dram(a, &machine.read_dram(0, extent).context("--dram-bytes: beyond this machine's DRAM")?)?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} instructions on {}: {} cycles ({:.3} us), energy {:.3} nJ",
        program.insns.len(),
        arch.name,
        report.total_cycles,
        report.seconds * 1e6,
        report.energy_pj / 1e3
    );
    println!("  {:<8} {:>6} {:>10} {:>10} {:>10}", "unit", "insns", "busy", "stalls", "dram B");
    for u in &report.units {
        println!("  {:<8} {:>6} {:>10} {:>10} {:>10}", u.unit, u.instructions, u.busy_cycles, u.stalls.total(), u.dram_bytes);
    }
    Ok(())
}

/// Runs the program on the Verilated machine and on the simulator, and reports both: the RTL
/// is the device, the simulator the reference it must equal cycle for cycle (a difference is an
/// error, after the JSON when `--json` is given).
#[cfg(feature = "rtl")]
fn run_rtl(a: &RunArgs, arch: &ArchConfig, program: &Program) -> Result<()> {
    use satkit_rtl_cosim::{BankProfile, CosimMachine, BUILT_ARCH};
    let built = ArchConfig::resolve(BUILT_ARCH).with_context(|| format!("the RTL back-end's architecture {BUILT_ARCH}"))?;
    if *arch != built {
        anyhow::bail!(
            "--arch {}: this build's RTL back-end is the `{BUILT_ARCH}` machine; rebuild with SATKIT_COSIM_ARCH={} to run another",
            a.arch,
            a.arch
        );
    }
    if a.timing_only {
        anyhow::bail!("--timing-only: the RTL always computes the data");
    }
    let image = a.dram_image()?;
    let extent = a.dram_extent(&image)?;
    let mut machine = CosimMachine::new()?;
    load_dram(a, &image, |bytes| Ok(machine.write_dram(0, bytes)?))?;
    let mut profile = match &a.bank_profile {
        Some(_) => Some(BankProfile::new(&machine, &a.banks).context("--banks")?),
        None => None,
    };
    let started = std::time::Instant::now();
    let run = match profile.as_mut() {
        Some(profile) => machine.run_profiled(program, profile),
        None => machine.run(program),
    }
    .with_context(|| format!("{} on the RTL", a.program.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if let (Some(dir), Some(profile)) = (&a.bank_profile, &profile) {
        write_bank_profile(dir, profile)?;
    }
    let mut reference = Machine::new(arch, Mode::Functional);
    reference.record_instructions(true);
    load_dram(a, &image, |bytes| Ok(reference.write_dram(0, bytes)?))?;
    let report = reference.run(program).with_context(|| a.program.display().to_string())?;
    // Timing, then the DRAM bytes [0, extent) (the program's results there).
    let (rtl_dram, sim_dram) = (machine.read_dram(0, extent)?, reference.read_dram(0, extent)?);
    let agreement = satkit_rtl_cosim::compare_timing(&report, &run, program).and_then(|()| {
        match rtl_dram.iter().zip(&sim_dram).position(|(r, s)| r != s) {
            Some(i) => Err(format!("DRAM byte {i:#x}: RTL {:#04x}, simulator {:#04x}", rtl_dram[i], sim_dram[i])),
            None => Ok(()),
        }
    });
    if agreement.is_ok() {
        save_dram(a, &rtl_dram)?;
    }
    if a.json {
        let json = serde_json::json!({
            "device": "rtl",
            "arch": arch.name,
            "total_cycles": run.total_cycles,
            "simulator_total_cycles": report.total_cycles,
            "cosim_seconds": seconds,
            "instructions": run.instructions.iter().map(|i| serde_json::json!({"index": i.index, "start": i.start, "end": i.end})).collect::<Vec<_>>(),
            "timing_difference": agreement.as_ref().err(),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return agreement.map_err(|d| anyhow::anyhow!("the RTL and the simulator disagree: {d}"));
    }
    println!(
        "{} instructions on {} (RTL, Verilator): {} cycles in {:.3} s of co-simulation ({:.3e} cycles/s)",
        program.insns.len(),
        arch.name,
        run.total_cycles,
        seconds,
        run.total_cycles as f64 / seconds.max(1e-9)
    );
    match agreement {
        Ok(()) => {
            println!(
                "  simulator: {} cycles; every instruction starts and ends in the same cycle{}",
                report.total_cycles,
                if extent > 0 { format!(", and DRAM bytes [0, {extent:#x}) are equal") } else { String::new() }
            );
            Ok(())
        }
        Err(difference) => anyhow::bail!("the RTL and the simulator disagree (a satkit bug; please report it): {difference}"),
    }
}

/// Writes `--bank-profile`'s CSV and chart (each whole or not at all) and prints its table.
#[cfg(feature = "rtl")]
fn write_bank_profile(dir: &Path, profile: &satkit_rtl_cosim::BankProfile) -> Result<()> {
    use crate::plot::{bar_chart, BarChart};
    std::fs::create_dir_all(dir).with_context(|| format!("--bank-profile {}", dir.display()))?;
    write_atomic(&dir.join("bank_profile.csv"), profile.csv().as_bytes())?;
    // The operands that still conflict with as many banks as their elements per cycle: their
    // slowdown at each bank count.
    let rows: Vec<_> = profile.rows().into_iter().filter(|r| r.conflicts_when_wide_enough(profile.banks())).collect();
    let chart = BarChart {
        title: "Operands that collide in B banks: (cycles + added) / cycles".into(),
        y_label: "slowdown".into(),
        categories: rows.iter().map(|r| format!("{} {}", r.kind, r.operand)).collect(),
        series: profile
            .banks()
            .iter()
            .enumerate()
            .map(|(k, b)| (format!("{b} banks"), rows.iter().map(|r| r.slowdowns()[k]).collect()))
            .collect(),
    };
    bar_chart(&dir.join("bank_profile.png"), &chart)?;
    print!("{}", profile.table());
    println!("bank profile: {0}/bank_profile.csv, {0}/bank_profile.png", dir.display());
    Ok(())
}

#[cfg(not(feature = "rtl"))]
fn run_rtl(_: &RunArgs, _: &ArchConfig, _: &Program) -> Result<()> {
    anyhow::bail!(
        "--device rtl: this satkit was built without the RTL back-end; build it with `cargo build --release -p satkit --features rtl` (needs Verilator)"
    )
}

/// `satkit arch`.
pub fn arch(a: &ArchArgs) -> Result<()> {
    let arch = ArchConfig::resolve(&a.arch).with_context(|| format!("architecture {}", a.arch))?;
    print!("{}", arch.to_toml());
    Ok(())
}

/// `satkit isa`.
pub fn isa() -> Result<()> {
    let (sem, end) = (SEMAPHORE_BITS, HEADER_BITS);
    println!(
        "header: bits 0..5 opcode, 5..8 phase tag, 8..{} wait semaphores (3 x {sem}), {}..{end} signal semaphores (3 x {sem})",
        8 + 3 * sem,
        8 + 3 * sem
    );
    for l in layouts() {
        println!("\n{:>2} {:<7} unit {:<7} {}", l.opcode, l.mnemonic, l.unit.name(), l.doc.lines().next().unwrap_or(""));
        for f in &l.fields {
            println!("     {:<18} bits {:>3}..{:<3}", f.name, f.lo, f.lo + f.width);
        }
    }
    Ok(())
}
