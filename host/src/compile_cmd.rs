//! `satkit compile`: compiles one training step of a model onto SAT and writes the program
//! (binary `program.bin` and text `program.s`) and its manifest (`manifest.json`: layers with
//! formats, phases' MACs and DRAM addresses, buffer regions, the DRAM map), each atomically.
//!
//! With `--dram-image` it also writes `dram.bin`, a DRAM image to run the step from (`satkit
//! run program.bin --dram dram.bin`, on the simulator or the RTL): `step::dram_image` with the
//! hyperparameters of `satkit train`'s defaults.

use crate::sim_cmd::SimArgs;
use anyhow::{Context, Result};
use satkit_compiler::step;
use satkit_train::model::DEFAULT_LAMBDA;
use satkit_train::output::write_atomic;
use satkit_train::TrainConfig;
use std::path::PathBuf;

/// Arguments of `satkit compile`: the model and machine options of `satkit sim` (its `--json`
/// and `--report` are refused), plus where to write.
#[derive(clap::Args, Debug)]
pub struct CompileArgs {
    #[command(flatten)]
    pub sim: SimArgs,
    /// Output directory.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also write `dram.bin`: a DRAM image to run the step from (see the module documentation).
    #[arg(long)]
    pub dram_image: bool,
    /// Seed of the `--dram-image` state.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `satkit compile`.
pub fn run(a: &CompileArgs) -> Result<()> {
    if a.sim.report.is_some() || a.sim.json {
        anyhow::bail!("--report and --json belong to `satkit sim`; `satkit compile` writes the program and manifest only");
    }
    let c = a.sim.config()?;
    let compiled = step::compile(&c.arch, &c.model, c.batch, &c.policy, &c.options, &mut |_, _| {})?;
    let dir = &a.output;
    let bin = compiled.program.to_binary()?;
    write_atomic(&dir.join("program.bin"), &bin).with_context(|| format!("writing into {}", dir.display()))?;
    write_atomic(&dir.join("program.s"), compiled.program.to_text().as_bytes())?;
    let manifest = serde_json::to_vec_pretty(&compiled.manifest)?;
    write_atomic(&dir.join("manifest.json"), &manifest)?;
    println!(
        "{} batch {}: {} instructions, {} DRAM bytes -> {}/{{program.bin,program.s,manifest.json}}",
        compiled.manifest.model,
        compiled.manifest.batch,
        compiled.manifest.instructions,
        compiled.manifest.dram_bytes,
        dir.display()
    );
    if a.dram_image {
        let train = TrainConfig::default();
        let hyper = [train.lr, train.momentum, train.weight_decay, DEFAULT_LAMBDA];
        let image = step::dram_image(&c.arch, &compiled, &c.model, c.batch, hyper, a.seed)
            .context("--dram-image: the warm-up step on the simulator")?;
        write_atomic(&dir.join("dram.bin"), &image.bytes)?;
        println!(
            "  dram.bin: the state after a warm-up step (loss {}); run it with `satkit run {1}/program.bin --arch {2} --dram {1}/dram.bin`",
            image.warm_up_loss,
            dir.display(),
            a.sim.arch
        );
    }
    Ok(())
}
