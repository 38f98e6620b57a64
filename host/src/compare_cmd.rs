//! `satkit compare --model M --nm N:M --gpu RESULTS.json`: the measured GPU training run beside
//! the simulated SAT run of the same model, method and batch.
//!
//! `RESULTS.json` is what `train/scripts/gpu/bench_vs_torch.py` writes: a `batch`, an `nm`, and
//! `runs`, each with `impl` (`satkit` for our CUDA path, `pytorch`), `model`, `method`,
//! `time_per_iter_ms`, `images_per_second`, `test_accuracy` and, where NVML answered,
//! `energy_per_iter_mj`. The SAT side is compiled and simulated here (`satkit sim` with the
//! same model, method, N:M and batch). SAT trains the same algorithm, so its accuracy column
//! is the accuracy of that method from the GPU training run, and says so.

use crate::plot::{bar_chart, BarChart};
use crate::sim_cmd::{compile_and_simulate, load_model, RunConfig};
use anyhow::{bail, Context, Result};
use satkit_compiler::model::{Method, SparsityPolicy};
use satkit_compiler::step::StepOptions;
use satkit_hw::{ArchConfig, NmRatio};
use satkit_train::output::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Arguments of `satkit compare`.
#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Model (a zoo name shared by the trainer and the compiler, e.g. lenet5, vgg-small).
    #[arg(long, default_value = "lenet5")]
    pub model: String,
    /// N:M ratio of the sparse method.
    #[arg(long, default_value = "2:8")]
    pub nm: String,
    /// Training method compared: dense, srste or bdwp.
    #[arg(long, default_value = "bdwp")]
    pub method: String,
    /// Results of `train/scripts/gpu/bench_vs_torch.py`.
    #[arg(long, default_value = "train/scripts/gpu/results/gpu_bench_h200.json")]
    pub gpu: PathBuf,
    /// SAT architecture: a preset or a TOML file.
    #[arg(long, default_value = "vcu1525")]
    pub arch: String,
    /// Directory for compare.json, compare.csv and compare.png.
    #[arg(long, default_value = "out/compare")]
    pub out: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Deserialize)]
struct GpuResults {
    batch: u64,
    nm: String,
    runs: Vec<GpuRun>,
}

#[derive(Deserialize)]
struct GpuRun {
    #[serde(rename = "impl")]
    implementation: String,
    model: String,
    method: String,
    time_per_iter_ms: f64,
    images_per_second: f64,
    test_accuracy: Option<f64>,
    energy_per_iter_mj: Option<f64>,
}

/// One platform's row.
#[derive(Serialize)]
struct Row {
    platform: String,
    source: &'static str,
    time_per_iter_ms: f64,
    images_per_second: f64,
    energy_per_iter_mj: Option<f64>,
    test_accuracy: Option<f64>,
}

/// Runs `satkit compare`.
pub fn run(a: &CompareArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.gpu).with_context(|| format!("cannot read {}", a.gpu.display()))?;
    let gpu: GpuResults =
        serde_json::from_str(&text).with_context(|| format!("{}: not a bench_vs_torch.py result file", a.gpu.display()))?;
    let method: Method = a.method.parse()?;
    let nm: NmRatio = a.nm.parse().with_context(|| format!("--nm `{}` is not N:M", a.nm))?;
    if method != Method::Dense && gpu.nm != nm.to_string() {
        bail!("{} holds runs at N:M {}, not {nm}", a.gpu.display(), gpu.nm);
    }
    let find = |implementation: &str| {
        gpu.runs.iter().find(|r| r.implementation == implementation && r.model == a.model && r.method == method.to_string())
    };
    let ours = find("satkit");
    let torch = find("pytorch");
    if ours.is_none() && torch.is_none() {
        bail!("{} has no run of model {} with method {method}", a.gpu.display(), a.model);
    }
    let config = RunConfig {
        arch: ArchConfig::resolve(&a.arch)?,
        model: load_model(&a.model)?,
        batch: gpu.batch,
        policy: SparsityPolicy::new(method, nm),
        options: StepOptions { interleave: true, pregen: true, offline_schedule: true },
    };
    let (_, sat) = compile_and_simulate(&config, &a.model)?;
    let label = if method == Method::Dense { method.to_string() } else { format!("{method} {nm}") };
    let accuracy = ours.or(torch).and_then(|r| r.test_accuracy);
    let mut rows = vec![Row {
        platform: format!("SAT on {} (simulated)", config.arch.name),
        source: "satkit sim; accuracy of the method from the GPU training run",
        time_per_iter_ms: sat.seconds * 1e3,
        images_per_second: gpu.batch as f64 / sat.seconds,
        energy_per_iter_mj: Some(sat.energy_pj / 1e9),
        test_accuracy: accuracy,
    }];
    for (run, platform) in [(ours, "H200, satkit CUDA (measured)"), (torch, "H200, PyTorch (measured)")] {
        if let Some(r) = run {
            rows.push(Row {
                platform: platform.into(),
                source: "bench_vs_torch.py",
                time_per_iter_ms: r.time_per_iter_ms,
                images_per_second: r.images_per_second,
                energy_per_iter_mj: r.energy_per_iter_mj,
                test_accuracy: r.test_accuracy,
            });
        }
    }
    let report = serde_json::json!({ "model": a.model, "method": method.to_string(), "nm": nm.to_string(), "batch": gpu.batch, "rows": rows });
    write_atomic(&a.out.join("compare.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    write_atomic(&a.out.join("compare.csv"), satkit_train::output::csv_bytes(&rows)?.as_slice())?;
    let chart = BarChart {
        title: format!("{} {label}, batch {}: training throughput", a.model, gpu.batch),
        y_label: "images / s".into(),
        categories: rows.iter().map(|r| r.platform.clone()).collect(),
        series: vec![("images / s".into(), rows.iter().map(|r| r.images_per_second).collect())],
    };
    bar_chart(&a.out.join("compare.png"), &chart)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("{} {label}, batch {}", a.model, gpu.batch);
    println!("{:<34} {:>12} {:>12} {:>14} {:>10}", "platform", "ms / iter", "images/s", "mJ / iter", "accuracy");
    for r in &rows {
        let energy = r.energy_per_iter_mj.map_or("-".into(), |e| format!("{e:.3}"));
        let acc = r.test_accuracy.map_or("-".into(), |t| format!("{:.2} %", 100.0 * t));
        println!("{:<34} {:>12.4} {:>12.0} {:>14} {:>10}", r.platform, r.time_per_iter_ms, r.images_per_second, energy, acc);
    }
    println!("wrote {}", a.out.join("compare.json").display());
    Ok(())
}
