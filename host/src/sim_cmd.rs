//! `satkit sim`: compiles one training iteration of a model onto SAT, simulates it (timing
//! only) and prints a per-layer, per-phase table, or JSON with `--json`.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use satkit_compiler::model::{self, zoo, Method, Model, SparsityPolicy};
use satkit_compiler::step::{self, StepOptions, StepReport};
use satkit_hw::{ArchConfig, NmRatio};
use std::path::Path;

/// Arguments of `satkit sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// A zoo model name or a model file (.toml or .json).
    #[arg(long)]
    pub model: String,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch: u64,
    /// Training method: dense, srste or bdwp.
    #[arg(long, default_value = "bdwp")]
    pub method: String,
    /// N:M ratio of pruned layers.
    #[arg(long, default_value = "2:8")]
    pub nm: String,
    /// Architecture: a preset (vcu1525, tiny, systolic) or a TOML file.
    #[arg(long, default_value = "vcu1525")]
    pub arch: String,
    /// Turn off interleave mapping (OS accumulator interleave and fused BP+WU).
    #[arg(long)]
    pub no_interleave: bool,
    /// Turn off pre-generation (prunes run before each layer's FF, on the critical path).
    #[arg(long)]
    pub no_pregen: bool,
    /// Turn off offline scheduling (fixed default tiling, no search).
    #[arg(long)]
    pub no_offline_schedule: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A validated run configuration.
pub struct RunConfig {
    /// Machine.
    pub arch: ArchConfig,
    /// Model.
    pub model: Model,
    /// Batch.
    pub batch: u64,
    /// Policy.
    pub policy: SparsityPolicy,
    /// Optimizations.
    pub options: StepOptions,
}

/// Loads a zoo model or a model file.
pub fn load_model(name: &str) -> Result<Model> {
    if zoo::NAMES.contains(&name) {
        return Ok(zoo::get(name)?);
    }
    let path = Path::new(name);
    if path.exists() {
        return Ok(model::load(path)?);
    }
    Ok(zoo::get(name)?)
}

impl SimArgs {
    /// Validates the arguments.
    pub fn config(&self) -> Result<RunConfig> {
        let arch = ArchConfig::resolve(&self.arch)?;
        let model = load_model(&self.model)?;
        let method: Method = self.method.parse()?;
        let nm: NmRatio = self.nm.parse().with_context(|| format!("--nm `{}` is not N:M", self.nm))?;
        Ok(RunConfig {
            arch,
            model,
            batch: self.batch,
            policy: SparsityPolicy::new(method, nm),
            options: StepOptions {
                interleave: !self.no_interleave,
                pregen: !self.no_pregen,
                offline_schedule: !self.no_offline_schedule,
            },
        })
    }
}

/// Compiles and simulates one configuration, with a progress bar on stderr.
pub fn compile_and_simulate(c: &RunConfig, label: &str) -> Result<(step::CompiledStep, StepReport)> {
    let bar = ProgressBar::new(1);
    bar.set_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}").expect("valid template"));
    bar.set_message(format!("compiling {label}"));
    let compiled = step::compile(&c.arch, &c.model, c.batch, &c.policy, &c.options, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.set_message(format!("simulating {label} ({} instructions)", compiled.program.insns.len()));
    let report = step::simulate(&c.arch, &compiled)?;
    bar.finish_and_clear();
    Ok((compiled, report))
}

/// Prints the per-layer, per-phase table.
pub fn print_table(r: &StepReport) {
    println!("{} batch {} {}: {} cycles, {:.6} s, {:.1} dense-equivalent GOPS, {:.3} mJ", r.model, r.batch, r.method, r.total_cycles, r.seconds, r.throughput_gops, r.energy_pj / 1e9);
    let p = &r.phases;
    println!("phases (cycles): ff {} bp {} wu {} update {} prune {} vector {}", p.ff, p.bp, p.wu, p.update, p.prune, p.vector);
    println!("{:<28} {:<7} {:>12} {:>7} {:>14} {:>14}", "layer", "phase", "cycles", "util", "dram_bytes", "energy_pj");
    for l in &r.layers {
        println!("{:<28} {:<7} {:>12} {:>6.1}% {:>14} {:>14.0}", l.name, l.phase, l.cycles, 100.0 * l.utilization, l.dram_bytes, l.energy_pj);
    }
}

/// Runs `satkit sim`.
pub fn run(a: &SimArgs) -> Result<()> {
    let c = a.config()?;
    let (_, report) = compile_and_simulate(&c, &a.model)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}
