//! `satkit scalesim -c CONFIG -t TOPOLOGY [-i gemm|conv] -p OUTDIR`: SCALE-Sim v3's inputs,
//! our simulator, SCALE-Sim's `COMPUTE_REPORT.csv` (in `OUTDIR/<run_name>/`, as SCALE-Sim
//! writes it). See `satkit_compiler::scalesim` for the conventions followed.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use satkit_compiler::scalesim::{self, InterfaceBandwidth, ScaleSimConfig, TopologyKind};
use satkit_train::output::write_atomic;
use std::path::PathBuf;

/// Arguments of `satkit scalesim` (SCALE-Sim's own flag names).
#[derive(clap::Args, Debug)]
pub struct ScalesimArgs {
    /// SCALE-Sim config file (INI).
    #[arg(short = 'c', long = "config")]
    pub config: PathBuf,
    /// Topology CSV.
    #[arg(short = 't', long = "topology")]
    pub topology: PathBuf,
    /// Topology form: conv or gemm.
    #[arg(short = 'i', long = "input-type", default_value = "conv")]
    pub input_type: String,
    /// Output directory; the report goes to OUTDIR/<run_name>/COMPUTE_REPORT.csv.
    #[arg(short = 'p', long = "path", default_value = "out/scalesim")]
    pub path: PathBuf,
}

/// Runs `satkit scalesim`.
pub fn run(a: &ScalesimArgs) -> Result<()> {
    let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()));
    let config = ScaleSimConfig::parse(&read(&a.config)?, &a.config.display().to_string())?;
    let kind = match a.input_type.as_str() {
        "conv" => TopologyKind::Conv,
        "gemm" => TopologyKind::Gemm,
        other => anyhow::bail!("-i {other}: expected conv or gemm"),
    };
    let layers = scalesim::parse_topology(&read(&a.topology)?, kind, &a.topology.display().to_string())?;
    if config.bandwidth == InterfaceBandwidth::User {
        eprintln!("satkit: note: InterfaceBandwidth is USER; our cycles equal SCALE-Sim's only in CALC mode (its USER stall model is not reproduced)");
    }
    let bar = ProgressBar::new(layers.len() as u64)
        .with_style(ProgressStyle::with_template("{bar:40} {pos}/{len} layers {elapsed}").expect("valid template"));
    let rows = scalesim::run(&config, &layers, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    let path = a.path.join(&config.run_name).join("COMPUTE_REPORT.csv");
    write_atomic(&path, scalesim::compute_report_csv(&rows).as_bytes())?;
    println!("{:<24} {:>14} {:>10} {:>12}", "layer", "total cycles", "util %", "mapping %");
    for (layer, row) in layers.iter().zip(&rows) {
        println!(
            "{:<24} {:>14} {:>10.2} {:>12.2}",
            layer.name, row.total_cycles, row.overall_util_pct, row.mapping_efficiency_pct
        );
    }
    println!("wrote {}", path.display());
    Ok(())
}
