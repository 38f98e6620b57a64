//! Co-simulation speed of the Verilated machine (the preset the crate was built for, `tiny` by
//! default): simulated clock cycles per wall-clock second, measured two ways:
//!
//! - **GEMM**: one-instruction programs of a dense and an N:M `gemm` through
//!   [`CosimMachine::run`] (fetch, dispatch, operand reads from the buffers, folds, write-back,
//!   the host's per-cycle service of the memory port and trace), operands written once;
//! - **clock only**: [`VerilatedModel::tick`] on an idle machine, the model's bare evaluation
//!   rate.
//!
//! Run: `cargo run --release -p satkit-rtl-cosim --example cosim_speed [SECONDS]` (default 2 s
//! per measurement).

use satkit_hw::isa::{Buffer, Instruction, Op, Program, WeightFormat};
use satkit_hw::Dataflow;
use satkit_rtl_cosim::{CosimMachine, VerilatedModel, BUILT_ARCH};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Runs `gemm` repeatedly for at least `budget`; returns (cycles simulated, seconds).
fn measure_gemm(unit: &mut CosimMachine, gemm: Op, budget: Duration) -> Result<(u64, f64), String> {
    let Op::Gemm { rows, cols, depth, weights, .. } = gemm else { return Err("not a gemm".into()) };
    let (rows, cols, depth) = (rows as usize, cols as usize, depth as usize);
    let stored = weights.stored_len(depth);
    // Small FP16 values with a period, so nothing overflows and nothing is all zero.
    let input: Vec<f32> = (0..rows * depth).map(|i| ((i % 13) as f32 - 6.0) / 8.0).collect();
    let weight: Vec<f32> = (0..cols * stored).map(|i| ((i % 11) as f32 - 5.0) / 16.0).collect();
    let idx: Vec<f32> = match weights.ratio() {
        Some(r) => (0..cols * stored).map(|e| ((e % r.n as usize) * (r.m / r.n) as usize) as f32).collect(),
        None => vec![0.0; cols * stored],
    };
    unit.write_buffer(Buffer::Act, 0, &input).map_err(|e| e.to_string())?;
    unit.write_buffer(Buffer::Wgt, 0, &weight).map_err(|e| e.to_string())?;
    unit.write_buffer(Buffer::Idx, 0, &idx).map_err(|e| e.to_string())?;
    let program = Program { insns: vec![Instruction::new(gemm)] };
    let (mut cycles, started) = (0, Instant::now());
    while started.elapsed() < budget {
        cycles += unit.run(&program).map_err(|e| e.to_string())?.total_cycles;
    }
    Ok((cycles, started.elapsed().as_secs_f64()))
}

fn gemm(rows: usize, cols: usize, depth: usize, weights: WeightFormat) -> Op {
    Op::Gemm {
        dataflow: Dataflow::Os,
        weights,
        accumulate: false,
        interleave: 1,
        rows: rows as u32,
        cols: cols as u32,
        depth: depth as u32,
        input: 0,
        weight: 0,
        output: 0,
        input_t: false,
        weight_t: false,
    }
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
    let mut unit = CosimMachine::new().map_err(|e| e.to_string())?;
    let arch = unit.arch().clone();
    let (r, c) = (arch.array.rows as usize, arch.array.cols as usize);
    println!("Verilated machine of `{BUILT_ARCH}` ({r}x{c} PEs, n_max {}, m_max {})", arch.array.n_max, arch.array.m_max);
    println!("{:<44} {:>14} {:>10} {:>14}", "workload", "cycles", "seconds", "cycles/s");
    let mut gemms = vec![("dense 4 folds x 512 steps", gemm(2 * r, 2 * c, 512 * arch.array.n_max as usize, WeightFormat::Dense))];
    if let Some(ratio) = arch.array.supported_nm.iter().find(|q| q.n == 2 && q.m == 8).or(arch.array.supported_nm.first()) {
        let depth = 512 * ratio.m as usize;
        gemms.push(("N:M 4 folds x 512 steps", gemm(2 * r, 2 * c, depth, WeightFormat::Sparse(*ratio))));
    }
    for (name, op) in gemms {
        let (cycles, secs) = measure_gemm(&mut unit, op, budget)?;
        let Op::Gemm { weights, .. } = op else { unreachable!("built as a gemm") };
        let label = format!("{name} ({weights:?})");
        println!("{label:<44} {cycles:>14} {secs:>10.3} {:>14.3e}", cycles as f64 / secs);
    }
    let mut bare = VerilatedModel::new();
    let started = Instant::now();
    let mut cycles = 0u64;
    while started.elapsed() < budget {
        bare.tick(100_000);
        cycles += 100_000;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{:<44} {cycles:>14} {secs:>10.3} {:>14.3e}", "clock only (idle machine)", cycles as f64 / secs);
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
