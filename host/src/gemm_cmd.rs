//! `satkit gemm`: lowers one GEMM with the compiler's kernel lowering, simulates it and prints
//! a table (or JSON). With `--check` it also computes the result functionally and compares it
//! with an f64 reference, exiting non-zero when the error is out of tolerance.

use anyhow::{bail, Context, Result};
use satkit_compiler::gemm::{self, DataflowChoice, GemmLayout, GemmOptions, GemmProblem, Tiling};
use satkit_compiler::gemm_data::{check_against_f64, read_output, write_operands, Accuracy, GemmData};
use satkit_hw::isa::{Phase, WeightFormat};
use satkit_hw::{ArchConfig, NmRatio};
use satkit_sim::{Machine, Mode, SimReport};
use serde::Serialize;

/// Arguments of `satkit gemm`.
#[derive(clap::Args, Debug)]
pub struct GemmArgs {
    /// Output rows (batch x output pixels).
    #[arg(long, default_value_t = 1024)]
    pub m: u64,
    /// Output columns (output channels).
    #[arg(long, default_value_t = 1024)]
    pub n: u64,
    /// Reduction depth (input channels x kernel size).
    #[arg(long, default_value_t = 1024)]
    pub k: u64,
    /// Architecture: a preset (vcu1525, tiny, systolic) or a TOML file.
    #[arg(long, default_value = "vcu1525")]
    pub arch: String,
    /// Weight sparsity: dense, or N:M along the reduction dimension.
    #[arg(long, default_value = "2:8")]
    pub sparsity: String,
    /// Dataflow: os, ws or auto (the fastest the machine supports).
    #[arg(long, default_value = "auto")]
    pub dataflow: String,
    /// Turn off accumulator interleave in OS (interleave mapping, mechanism a).
    #[arg(long)]
    pub no_interleave: bool,
    /// Also compute the result and compare it with an f64 reference.
    #[arg(long)]
    pub check: bool,
    /// Seed of the random operands used by --check.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct GemmOutput {
    arch: String,
    problem: GemmProblem,
    tiling: Tiling,
    instructions: usize,
    total_cycles: u64,
    compute_cycles: u64,
    stall_cycles: u64,
    seconds: f64,
    macs_dense_equivalent: u64,
    macs_performed: u64,
    utilization: f64,
    dram_bytes: u64,
    sram_bytes: u64,
    energy_pj: f64,
    energy: satkit_sim::stats::Energy,
    throughput_gops: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    check: Option<Accuracy>,
    units: Vec<satkit_sim::stats::UnitStats>,
}

fn parse_sparsity(text: &str) -> Result<WeightFormat> {
    if text == "dense" {
        return Ok(WeightFormat::Dense);
    }
    let r: NmRatio = text.parse().with_context(|| "--sparsity takes `dense` or N:M")?;
    Ok(if r.is_dense() { WeightFormat::Dense } else { WeightFormat::Sparse(r) })
}

fn parse_dataflow(text: &str) -> Result<DataflowChoice> {
    Ok(match text {
        "auto" => DataflowChoice::Auto,
        other => DataflowChoice::Fixed(other.parse().with_context(|| "--dataflow takes os, ws, is or auto")?),
    })
}

/// Runs `satkit gemm`.
pub fn run(a: &GemmArgs) -> Result<()> {
    let arch = ArchConfig::resolve(&a.arch).with_context(|| format!("--arch {}", a.arch))?;
    let problem = GemmProblem { m: a.m, n: a.n, k: a.k, weights: parse_sparsity(&a.sparsity)? };
    let options =
        GemmOptions { dataflow: parse_dataflow(&a.dataflow)?, interleave: !a.no_interleave, phase: Phase::Ff, input_t: false };
    let layout = GemmLayout::packed(&arch, &problem, 0);
    if layout.end(&problem) > (1u64 << 40) || layout.end(&problem) > arch.dram_bytes() {
        bail!(
            "GEMM {}x{}x{} needs {} bytes of DRAM, beyond the 40-bit DMA address space or the machine's DRAM",
            a.m,
            a.n,
            a.k,
            layout.end(&problem)
        );
    }
    let kernel = gemm::plan(&arch, &problem, &options, layout)?;
    let mode = if a.check { Mode::Functional } else { Mode::TimingOnly };
    let mut machine = Machine::new(&arch, mode);
    let mut data = None;
    if a.check {
        let d = GemmData::random(&arch, &problem, a.seed);
        write_operands(&mut machine, &problem, &layout, &d)?;
        data = Some(d);
    }
    let report = machine.run(&kernel.program)?;
    let check = match data {
        Some(d) => Some(check_against_f64(&problem, &d, &read_output(&machine, &problem, &layout)?)),
        None => None,
    };
    let out = output(&arch, &problem, &kernel.tiling, kernel.program.insns.len(), &report, check);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_table(&out);
    }
    if let Some(c) = check {
        if !c.ok {
            bail!(
                "functional check failed: max relative error {:.3e} exceeds the tolerance {:.3e}",
                c.max_rel_error,
                c.tolerance
            );
        }
    }
    Ok(())
}

fn output(
    arch: &ArchConfig,
    p: &GemmProblem,
    t: &Tiling,
    instructions: usize,
    r: &SimReport,
    check: Option<Accuracy>,
) -> GemmOutput {
    GemmOutput {
        arch: arch.name.clone(),
        problem: *p,
        tiling: *t,
        instructions,
        total_cycles: r.total_cycles,
        compute_cycles: r.compute_cycles,
        stall_cycles: r.stall_cycles,
        seconds: r.seconds,
        macs_dense_equivalent: r.macs_dense,
        macs_performed: r.macs_performed,
        utilization: r.utilization,
        dram_bytes: r.dram_read_bytes + r.dram_write_bytes,
        sram_bytes: r.sram.total(),
        energy_pj: r.energy_pj,
        energy: r.energy,
        throughput_gops: 2.0 * r.macs_dense as f64 / r.seconds / 1e9,
        check,
        units: r.units.clone(),
    }
}

fn print_table(o: &GemmOutput) {
    let t = &o.tiling;
    println!("GEMM {}x{}x{} ({}) on {}", o.problem.m, o.problem.n, o.problem.k, sparsity_name(o.problem.weights), o.arch);
    println!(
        "tiling: dataflow {}, tiles {}x{}x{}, loop order {:?}, interleave {}, {} instructions",
        t.dataflow, t.tm, t.tn, t.tk, t.order, t.interleave, o.instructions
    );
    let rows: Vec<(&str, String)> = vec![
        ("total cycles", o.total_cycles.to_string()),
        ("compute cycles (tensor engine busy)", o.compute_cycles.to_string()),
        ("stall cycles (total - compute)", o.stall_cycles.to_string()),
        ("time", format!("{:.3} ms", o.seconds * 1e3)),
        ("dense-equivalent MACs", o.macs_dense_equivalent.to_string()),
        ("performed MACs", o.macs_performed.to_string()),
        ("multiplier utilization", format!("{:.1} %", 100.0 * o.utilization)),
        ("dense-equivalent throughput", format!("{:.1} GOP/s", o.throughput_gops)),
        ("DRAM bytes", o.dram_bytes.to_string()),
        ("SRAM bytes", o.sram_bytes.to_string()),
        ("energy", format!("{:.3} uJ", o.energy_pj / 1e6)),
    ];
    for (k, v) in rows {
        println!("  {k:<38} {v:>16}");
    }
    println!(
        "  {:<10} {:>8} {:>12} {:>10} {:>12} {:>12} {:>14} {:>14} {:>12}",
        "unit", "insns", "busy", "dep wait", "buffer wait", "fill/drain", "acc hazard", "dram wait", "energy uJ"
    );
    for u in &o.units {
        let s = &u.stalls;
        println!(
            "  {:<10} {:>8} {:>12} {:>10} {:>12} {:>12} {:>14} {:>14} {:>12.3}",
            u.unit,
            u.instructions,
            u.busy_cycles,
            s.dependency,
            s.buffer_access,
            s.fill_drain,
            s.accumulator_hazard,
            s.dram_latency + s.dram_contention,
            u.energy_pj / 1e6
        );
    }
    if let Some(c) = &o.check {
        println!(
            "  check: max relative error {:.3e} (tolerance {:.3e}): {}",
            c.max_rel_error,
            c.tolerance,
            if c.ok { "ok" } else { "FAILED" }
        );
    }
}

fn sparsity_name(w: WeightFormat) -> String {
    match w.ratio() {
        None => "dense".into(),
        Some(r) => format!("{r} sparse"),
    }
}
