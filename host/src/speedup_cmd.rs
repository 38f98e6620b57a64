//! `satkit speedup`: one model under dense, SR-STE and BDWP training at one N:M, and BDWP
//! with each optimization switched off alone: the speedup and ablation tables (or JSON), with
//! the gap between BDWP's speedup and its ideal split into named, computed causes.

use crate::sim_cmd::{compile_and_simulate, SimArgs};
use anyhow::Result;
use serde::Serialize;

/// Arguments of `satkit speedup`.
#[derive(clap::Args, Debug)]
pub struct SpeedupArgs {
    /// A zoo model name or a model file.
    #[arg(long, default_value = "resnet18-cifar10")]
    pub model: String,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch: u64,
    /// N:M ratio.
    #[arg(long, default_value = "2:8")]
    pub nm: String,
    /// Architecture preset or TOML file.
    #[arg(long, default_value = "vcu1525")]
    pub arch: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Row {
    config: String,
    total_cycles: u64,
    speedup_vs_dense: f64,
    phases: satkit_compiler::step::PhaseCycles,
}

#[derive(Serialize)]
struct Ablation {
    optimization: &'static str,
    cycles_with: u64,
    cycles_without: u64,
    cost_cycles: i64,
    cost_percent: f64,
}

#[derive(Serialize)]
struct Output {
    model: String,
    batch: u64,
    nm: String,
    ideal_bdwp: f64,
    ideal_srste: f64,
    methods: Vec<Row>,
    ablation: Vec<Ablation>,
    gap_causes: Vec<(String, u64)>,
}

/// Runs `satkit speedup`.
pub fn run(a: &SpeedupArgs) -> Result<()> {
    let base = SimArgs {
        model: a.model.clone(),
        batch: a.batch,
        method: "dense".into(),
        nm: a.nm.clone(),
        arch: a.arch.clone(),
        no_interleave: false,
        no_pregen: false,
        no_offline_schedule: false,
        json: false,
        report: None,
    };
    let run = |args: SimArgs, label: &str| -> Result<satkit_compiler::step::StepReport> {
        Ok(compile_and_simulate(&args.config()?, label)?.1)
    };
    let dense = run(base.clone(), "dense")?;
    let srste = run(SimArgs { method: "srste".into(), ..base.clone() }, "srste")?;
    let bdwp_args = SimArgs { method: "bdwp".into(), ..base.clone() };
    let bdwp = run(bdwp_args.clone(), "bdwp")?;
    let no_il = run(SimArgs { no_interleave: true, ..bdwp_args.clone() }, "bdwp --no-interleave")?;
    let no_pg = run(SimArgs { no_pregen: true, ..bdwp_args.clone() }, "bdwp --no-pregen")?;
    let no_os = run(SimArgs { no_offline_schedule: true, ..bdwp_args.clone() }, "bdwp --no-offline-schedule")?;
    let nm: satkit_hw::NmRatio = a.nm.parse()?;
    let d = f64::from(nm.n) / f64::from(nm.m);
    let row = |config: &str, r: &satkit_compiler::step::StepReport| Row {
        config: config.into(),
        total_cycles: r.total_cycles,
        speedup_vs_dense: dense.total_cycles as f64 / r.total_cycles as f64,
        phases: r.phases,
    };
    let ab = |optimization, r: &satkit_compiler::step::StepReport| Ablation {
        optimization,
        cycles_with: bdwp.total_cycles,
        cycles_without: r.total_cycles,
        cost_cycles: r.total_cycles as i64 - bdwp.total_cycles as i64,
        cost_percent: 100.0 * (r.total_cycles as f64 / bdwp.total_cycles as f64 - 1.0),
    };
    let out = Output {
        model: a.model.clone(),
        batch: a.batch,
        nm: a.nm.clone(),
        ideal_bdwp: 3.0 / (2.0 * d + 1.0),
        ideal_srste: 3.0 / (d + 2.0),
        methods: vec![row("dense", &dense), row("srste", &srste), row("bdwp", &bdwp)],
        ablation: vec![ab("interleave mapping", &no_il), ab("pre-generation", &no_pg), ab("offline scheduling", &no_os)],
        gap_causes: bdwp.gap_causes(&dense).into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{} batch {} at {} (ideal: BDWP {:.3}x, SR-STE {:.3}x)",
        out.model, out.batch, out.nm, out.ideal_bdwp, out.ideal_srste
    );
    println!(
        "{:<8} {:>14} {:>9} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10}",
        "method", "cycles", "speedup", "ff", "bp", "wu", "update", "prune", "vector"
    );
    for r in &out.methods {
        let p = &r.phases;
        println!(
            "{:<8} {:>14} {:>8.3}x {:>12} {:>12} {:>12} {:>10} {:>10} {:>10}",
            r.config, r.total_cycles, r.speedup_vs_dense, p.ff, p.bp, p.wu, p.update, p.prune, p.vector
        );
    }
    println!("\nablation (BDWP, one optimization off):");
    for a in &out.ablation {
        println!("  {:<20} {:>14} -> {:>14} cycles ({:+.1} %)", a.optimization, a.cycles_with, a.cycles_without, a.cost_percent);
    }
    println!("\ngap of BDWP to the ideal, causes in BDWP cycles (of {}):", bdwp.total_cycles);
    for (k, v) in &out.gap_causes {
        println!("  {:<60} {:>12} ({:.1} %)", k, v, 100.0 * *v as f64 / bdwp.total_cycles as f64);
    }
    Ok(())
}
