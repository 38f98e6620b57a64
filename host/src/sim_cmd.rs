//! `satkit sim`: compiles one training iteration of a model onto SAT, simulates it (timing
//! only) and prints a per-layer, per-phase table, or JSON with `--json`. With `--report DIR`
//! it also writes `report.json` and `layers.csv` (atomically) and PNG plots: per-layer cycles
//! by phase, dense vs the chosen method per layer, energy by component, and a roofline.

use crate::plot::{bar_chart, line_chart, BarChart, LineChart, Series};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use satkit_compiler::model::{self, zoo, Method, Model, SparsityPolicy};
use satkit_compiler::step::{self, StepOptions, StepReport};
use satkit_hw::{ArchConfig, NmRatio};
use satkit_train::output::write_atomic;
use std::path::{Path, PathBuf};

/// Arguments of `satkit sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// A zoo model name or a model file (.toml or .json).
    #[arg(long, default_value = "resnet18-cifar10")]
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
    /// Also write report.json, layers.csv and PNG plots into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// A validated run configuration.
#[derive(Clone)]
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
    println!(
        "{} batch {} {}: {} cycles, {:.6} s, {:.1} dense-equivalent GOPS, {:.3} mJ",
        r.model,
        r.batch,
        r.method,
        r.total_cycles,
        r.seconds,
        r.throughput_gops,
        r.energy_pj / 1e9
    );
    let p = &r.phases;
    println!("phases (cycles): ff {} bp {} wu {} update {} prune {} vector {}", p.ff, p.bp, p.wu, p.update, p.prune, p.vector);
    println!("{:<28} {:<7} {:>12} {:>7} {:>14} {:>14}", "layer", "phase", "cycles", "util", "dram_bytes", "energy_pj");
    for l in &r.layers {
        println!(
            "{:<28} {:<7} {:>12} {:>6.1}% {:>14} {:>14.0}",
            l.name,
            l.phase,
            l.cycles,
            100.0 * l.utilization,
            l.dram_bytes,
            l.energy_pj
        );
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
    if let Some(dir) = &a.report {
        // The dense baseline for the dense-vs-sparse plot (the same run when already dense).
        let dense = if c.policy.method == Method::Dense {
            report.clone()
        } else {
            let d = RunConfig { policy: SparsityPolicy::new(Method::Dense, c.policy.nm), ..c.clone() };
            compile_and_simulate(&d, &format!("{} dense", a.model))?.1
        };
        write_report(dir, &c, &report, &dense)?;
        eprintln!("report written to {}", dir.display());
    }
    Ok(())
}

/// Layer names in order of first appearance, with their total cycles per phase.
fn per_layer(r: &StepReport) -> (Vec<String>, Vec<[u64; 6]>) {
    let mut names: Vec<String> = Vec::new();
    let mut rows: Vec<[u64; 6]> = Vec::new();
    for l in &r.layers {
        let i = names.iter().position(|n| *n == l.name).unwrap_or_else(|| {
            names.push(l.name.clone());
            rows.push([0; 6]);
            names.len() - 1
        });
        let p = ["ff", "bp", "wu", "update", "prune", "vector"].iter().position(|p| *p == l.phase).unwrap_or(5);
        rows[i][p] += l.cycles;
    }
    (names, rows)
}

/// Writes `report.json`, `layers.csv` and the four plots into `dir`.
fn write_report(dir: &Path, c: &RunConfig, r: &StepReport, dense: &StepReport) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomic(&dir.join("report.json"), serde_json::to_string_pretty(r)?.as_bytes())?;
    let mut csv = String::from("layer,name,phase,cycles,utilization,macs_dense,dram_bytes,energy_pj,fill_drain,instructions\n");
    for l in &r.layers {
        csv += &format!(
            "{},{},{},{},{:.6},{},{},{:.1},{},{}\n",
            l.layer,
            l.name,
            l.phase,
            l.cycles,
            l.utilization,
            l.macs_dense,
            l.dram_bytes,
            l.energy_pj,
            l.fill_drain,
            l.instructions
        );
    }
    write_atomic(&dir.join("layers.csv"), csv.as_bytes())?;

    let (names, rows) = per_layer(r);
    let phases = ["ff", "bp", "wu", "update", "prune", "vector"];
    let series =
        phases.iter().enumerate().map(|(p, name)| (name.to_string(), rows.iter().map(|row| row[p] as f64).collect())).collect();
    let title = format!("{} batch {} {}", r.model, r.batch, r.method);
    bar_chart(
        &dir.join("cycles_by_phase.png"),
        &BarChart { title: format!("{title}: cycles by phase"), y_label: "cycles".into(), categories: names.clone(), series },
    )?;

    let (dnames, drows) = per_layer(dense);
    let total = |names: &[String], rows: &[[u64; 6]], n: &str| {
        names.iter().position(|x| x == n).map_or(0.0, |i| rows[i].iter().sum::<u64>() as f64)
    };
    let series = vec![
        ("dense".to_string(), names.iter().map(|n| total(&dnames, &drows, n)).collect()),
        (r.method.clone(), names.iter().map(|n| total(&names, &rows, n)).collect()),
    ];
    bar_chart(
        &dir.join("dense_vs_sparse.png"),
        &BarChart {
            title: format!(
                "{} batch {}: cycles per layer, dense {} vs {} {}",
                r.model, r.batch, dense.total_cycles, r.method, r.total_cycles
            ),
            y_label: "cycles".into(),
            categories: names,
            series,
        },
    )?;

    let e = &r.energy;
    let parts = [
        ("tensor", e.tensor_pj),
        ("sram", e.sram_pj),
        ("dram", e.dram_pj),
        ("sore", e.sore_pj),
        ("wuve", e.wuve_pj),
        ("vector", e.vector_pj),
        ("static", e.static_pj),
    ];
    bar_chart(
        &dir.join("energy_by_component.png"),
        &BarChart {
            title: format!("{title}: energy by component ({:.1} mJ)", r.energy_pj / 1e9),
            y_label: "mJ".into(),
            categories: parts.iter().map(|p| p.0.to_string()).collect(),
            series: vec![("energy".into(), parts.iter().map(|p| p.1 / 1e9).collect())],
        },
    )?;

    // Roofline in dense-equivalent GOPS (2 ops per MAC): the array's dense peak and the DRAM
    // bandwidth roof, with each GEMM phase of each layer as a point.
    let hz = c.arch.clock_mhz * 1e6;
    let peak = 2.0 * f64::from(c.arch.array.rows) * f64::from(c.arch.array.cols) * hz / 1e9;
    let bw = c.arch.dram_bytes_per_cycle_per_channel() * f64::from(c.arch.dram.channels) * hz / 1e9;
    let mut points: Vec<(f64, f64)> = r
        .layers
        .iter()
        .filter(|l| l.macs_dense > 0 && l.dram_bytes > 0 && l.cycles > 0)
        .map(|l| {
            let ops = 2.0 * l.macs_dense as f64;
            ((ops / l.dram_bytes as f64).log10(), (ops / (l.cycles as f64 / hz) / 1e9).log10())
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (lo, hi) = points.iter().fold((0f64, 1f64), |(lo, hi), p| (lo.min(p.0.floor()), hi.max(p.0.ceil())));
    let roof: Vec<(f64, f64)> =
        (0..=100).map(|i| lo + (hi - lo) * f64::from(i) / 100.0).map(|x| (x, (10f64.powf(x) * bw).min(peak).log10())).collect();
    line_chart(
        &dir.join("roofline.png"),
        &LineChart {
            title: format!("{title}: roofline (peak {peak:.0} GOPS dense, {bw:.1} GB/s)"),
            x_label: "log10 operational intensity (dense-equivalent ops / DRAM byte)".into(),
            y_label: "log10 dense-equivalent GOPS".into(),
            series: vec![Series::new("roof", roof), Series::new("GEMM phases (layer x phase), sorted by intensity", points)],
        },
    )?;
    Ok(())
}
