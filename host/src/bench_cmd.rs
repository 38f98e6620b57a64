//! `satkit bench`: measures the simulator's speed. It times (1) timing-only simulation of a
//! large GEMM on `vcu1525`, dense and 2:8, reporting simulated cycles and instructions per
//! wall-clock second, and (2) `satkit scalesim` on a topology, next to SCALE-Sim v3 itself on
//! the same files when `--scalesim-python` names a Python that has `scalesim` installed, so
//! the ratio comes from one run on one machine.

use anyhow::{Context, Result};
use satkit_compiler::gemm::{self, GemmLayout, GemmOptions, GemmProblem};
use satkit_compiler::scalesim::{self, ScaleSimConfig, TopologyKind};
use satkit_hw::isa::WeightFormat;
use satkit_hw::ArchConfig;
use satkit_sim::{Machine, Mode};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `satkit bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Size of the square GEMM simulated.
    #[arg(long, default_value_t = 8192)]
    pub size: u64,
    /// SCALE-Sim config for the comparison.
    #[arg(long, default_value = "tests/scalesim/example.cfg")]
    pub config: PathBuf,
    /// SCALE-Sim GEMM topology for the comparison.
    #[arg(long, default_value = "tests/scalesim/gemm_peers.csv")]
    pub topology: PathBuf,
    /// A Python interpreter with `scalesim` installed; when given, SCALE-Sim runs too.
    #[arg(long)]
    pub scalesim_python: Option<PathBuf>,
}

#[derive(Serialize)]
struct GemmBench {
    problem: String,
    instructions: usize,
    simulated_cycles: u64,
    plan_seconds: f64,
    simulate_seconds: f64,
    simulated_cycles_per_second: f64,
    instructions_per_second: f64,
}

#[derive(Serialize)]
struct ScalesimBench {
    topology: String,
    layers: usize,
    satkit_seconds: f64,
    scalesim_seconds: Option<f64>,
    speedup: Option<f64>,
}

/// Runs `satkit bench`.
pub fn run(a: &BenchArgs) -> Result<()> {
    let arch = ArchConfig::vcu1525();
    let mut gemms = Vec::new();
    for weights in [WeightFormat::Dense, WeightFormat::Sparse("2:8".parse().expect("valid ratio"))] {
        let p = GemmProblem { m: a.size, n: a.size, k: a.size, weights };
        let t0 = Instant::now();
        let kernel = gemm::plan(&arch, &p, &GemmOptions::default(), GemmLayout::packed(&arch, &p, 0))?;
        let plan_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let report = Machine::new(&arch, Mode::TimingOnly).run(&kernel.program)?;
        let simulate_seconds = t1.elapsed().as_secs_f64();
        gemms.push(GemmBench {
            problem: format!("{0}x{0}x{0} {1}", a.size, weights.ratio().map_or("dense".into(), |r| r.to_string())),
            instructions: kernel.program.insns.len(),
            simulated_cycles: report.total_cycles,
            plan_seconds,
            simulate_seconds,
            simulated_cycles_per_second: report.total_cycles as f64 / simulate_seconds,
            instructions_per_second: kernel.program.insns.len() as f64 / simulate_seconds,
        });
    }
    let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()));
    let config = ScaleSimConfig::parse(&read(&a.config)?, &a.config.display().to_string())?;
    let layers = scalesim::parse_topology(&read(&a.topology)?, TopologyKind::Gemm, &a.topology.display().to_string())?;
    let t0 = Instant::now();
    scalesim::run(&config, &layers, |_| {})?;
    let satkit_seconds = t0.elapsed().as_secs_f64();
    let scalesim_seconds = match &a.scalesim_python {
        None => None,
        Some(python) => Some(time_scalesim(python, a)?),
    };
    let out = serde_json::json!({
        "gemm": gemms,
        "scalesim": ScalesimBench {
            topology: a.topology.display().to_string(),
            layers: layers.len(),
            satkit_seconds,
            scalesim_seconds,
            speedup: scalesim_seconds.map(|s| s / satkit_seconds),
        },
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Runs SCALE-Sim v3's command line on the same files and returns its wall time.
fn time_scalesim(python: &PathBuf, a: &BenchArgs) -> Result<f64> {
    let dir = std::env::temp_dir().join(format!("satkit-bench-scalesim-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // SCALE-Sim's CLI insists on a layout file; a header-only one means "no custom layout".
    let layout = dir.join("layout.csv");
    std::fs::write(
        &layout,
        "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n",
    )?;
    let t0 = Instant::now();
    let status = std::process::Command::new(python)
        .args(["-m", "scalesim.scale", "-c"])
        .arg(&a.config)
        .arg("-t")
        .arg(&a.topology)
        .args(["-i", "gemm", "-l"])
        .arg(&layout)
        .arg("-p")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot start {}", python.display()))?;
    let seconds = t0.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(status.success(), "SCALE-Sim exited with {status}");
    Ok(seconds)
}
