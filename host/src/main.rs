//! `satkit`: the command line. Thin by design: it parses arguments, validates them into the
//! libraries' typed configurations, calls the libraries, and prints or writes results. Errors
//! from every layer print once here, as a chain, with a non-zero exit.

mod bench_cmd;
mod compare_cmd;
mod compile_cmd;
mod gemm_cmd;
mod plot;
mod program_cmd;
mod rtl_cmd;
mod scalesim_cmd;
mod sim_cmd;
mod speedup_cmd;
mod train_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Co-design toolkit for N:M sparse DNN training accelerators (SAT with BDWP).
#[derive(Parser, Debug)]
#[command(name = "satkit", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Tile one GEMM onto the machine, simulate it and report cycles, traffic and energy.
    Gemm(gemm_cmd::GemmArgs),
    /// Run a SCALE-Sim v3 config and topology on our simulator; write COMPUTE_REPORT.csv.
    Scalesim(scalesim_cmd::ScalesimArgs),
    /// Assemble a text program into the binary format.
    Asm(program_cmd::AsmArgs),
    /// Disassemble a binary program into text.
    Disasm(program_cmd::DisasmArgs),
    /// Simulate a program (text or binary) and report its statistics.
    Run(program_cmd::RunArgs),
    /// Print an architecture description (preset or file) as TOML.
    Arch(program_cmd::ArchArgs),
    /// Print the instruction set's bit layout.
    Isa,
    /// Measure the simulator's speed (and SCALE-Sim's, on the same topology, when available).
    Bench(bench_cmd::BenchArgs),
    /// Train a model with dense, SR-STE or BDWP N:M training on the CPU.
    Train(train_cmd::TrainArgs),
    /// Compile one training iteration of a model onto SAT, simulate it, print per-layer phases.
    Sim(sim_cmd::SimArgs),
    /// Compile one training iteration of a model onto SAT; write program.bin, program.s, manifest.json.
    Compile(compile_cmd::CompileArgs),
    /// Dense vs SR-STE vs BDWP speedups and the ablation of each optimization.
    Speedup(speedup_cmd::SpeedupArgs),
    /// Put a measured GPU training run beside the simulated SAT run of the same model.
    Compare(compare_cmd::CompareArgs),
    /// Generate the machine's Verilog, linted with Verilator; with --synth, yosys resources (PE array or machine).
    Rtl(rtl_cmd::RtlArgs),
}

fn main() -> ExitCode {
    // Like other command-line tools, end quietly when the reader of our output goes away
    // (`satkit sim | head`) instead of panicking on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default SIGPIPE action before any thread starts is sound.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Gemm(a) => gemm_cmd::run(a),
        Command::Scalesim(a) => scalesim_cmd::run(a),
        Command::Asm(a) => program_cmd::asm(a),
        Command::Disasm(a) => program_cmd::disasm(a),
        Command::Run(a) => program_cmd::run(a),
        Command::Arch(a) => program_cmd::arch(a),
        Command::Isa => program_cmd::isa(),
        Command::Bench(a) => bench_cmd::run(a),
        Command::Train(a) => train_cmd::run(a),
        Command::Sim(a) => sim_cmd::run(a),
        Command::Speedup(a) => speedup_cmd::run(a),
        Command::Compile(a) => compile_cmd::run(a),
        Command::Compare(a) => compare_cmd::run(a),
        Command::Rtl(a) => rtl_cmd::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("satkit: {e:#}");
            ExitCode::from(2)
        }
    }
}
