//! Co-simulation speed of the Verilated PE array (the preset the crate was built for, `tiny`
//! by default): simulated clock cycles per wall-clock second, measured two ways:
//!
//! - **GEMM**: dense and 2:8 GEMM tiles through [`CosimArray::run_gemm`], operand set-up, edge
//!   feeding, fold sequencing and result drain included (what the co-simulation tests do);
//! - **clock only**: [`VerilatedArray::tick`] on an idle array, the model's bare evaluation rate.
//!
//! Run: `cargo run --release -p satkit-rtl-cosim --example cosim_speed [SECONDS]` (default 2 s
//! per measurement).

use satkit_hw::isa::WeightFormat;
use satkit_rtl_cosim::{CosimArray, GemmTile, VerilatedArray, BUILT_ARCH};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Runs `tile` repeatedly for at least `budget`; returns (cycles simulated, seconds).
fn measure_gemm(array: &mut CosimArray, tile: &GemmTile, budget: Duration) -> Result<(u64, f64), String> {
    let stored = tile.weights.stored_len(tile.depth);
    // Small FP16 values with a period, so nothing overflows and nothing is all zero.
    let input: Vec<f32> = (0..tile.rows * tile.depth).map(|i| ((i % 13) as f32 - 6.0) / 8.0).collect();
    let weight: Vec<f32> = (0..tile.cols * stored).map(|i| ((i % 11) as f32 - 5.0) / 16.0).collect();
    let idx: Vec<u8> = match tile.weights.ratio() {
        Some(r) => (0..tile.cols * stored).map(|e| ((e % r.n as usize) * (r.m / r.n) as usize) as u8).collect(),
        None => Vec::new(),
    };
    let start_cycles = array.total_cycles();
    let started = Instant::now();
    while started.elapsed() < budget {
        array.run_gemm(tile, &input, &weight, &idx, None).map_err(|e| e.to_string())?;
    }
    Ok((array.total_cycles() - start_cycles, started.elapsed().as_secs_f64()))
}

fn run() -> Result<(), String> {
    let seconds: f64 = match std::env::args().nth(1) {
        Some(s) => s.parse().map_err(|_| format!("SECONDS must be a number, not `{s}`"))?,
        None => 2.0,
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("SECONDS must be positive, not {seconds}"));
    }
    let budget = Duration::from_secs_f64(seconds);
    let mut array = CosimArray::new().map_err(|e| e.to_string())?;
    let arch = array.arch().clone();
    let (r, c) = (arch.array.rows as usize, arch.array.cols as usize);
    println!("Verilated PE array of `{BUILT_ARCH}` ({r}x{c} PEs, n_max {}, m_max {})", arch.array.n_max, arch.array.m_max);
    println!("{:<44} {:>14} {:>10} {:>14}", "workload", "cycles", "seconds", "cycles/s");
    let mut tiles =
        vec![("dense 2 folds x 1024 steps", GemmTile { rows: 2 * r, cols: c, depth: 2048, weights: WeightFormat::Dense })];
    if let Some(ratio) = arch.array.supported_nm.iter().find(|q| q.n == 2 && q.m == 8).or(arch.array.supported_nm.first()) {
        let depth = 1024 * ratio.m as usize;
        tiles.push(("N:M 2 folds x 1024 steps", GemmTile { rows: r, cols: 2 * c, depth, weights: WeightFormat::Sparse(*ratio) }));
    }
    for (name, tile) in &tiles {
        let (cycles, secs) = measure_gemm(&mut array, tile, budget)?;
        let label = format!("{name} ({:?})", tile.weights);
        println!("{label:<44} {cycles:>14} {secs:>10.3} {:>14.3e}", cycles as f64 / secs);
    }
    let mut bare = VerilatedArray::new();
    let started = Instant::now();
    let mut cycles = 0u64;
    while started.elapsed() < budget {
        bare.tick(100_000);
        cycles += 100_000;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{:<44} {cycles:>14} {secs:>10.3} {:>14.3e}", "clock only (idle array)", cycles as f64 / secs);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cosim_speed: {e}");
            ExitCode::FAILURE
        }
    }
}
