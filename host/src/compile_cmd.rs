//! `satkit compile`: compiles one training step of a model onto SAT and writes the program
//! (binary `program.bin` and text `program.s`) and its manifest (`manifest.json`: layers with
//! formats, phases' MACs and DRAM addresses, buffer regions, the DRAM map), each atomically.
//!
//! With `--dram-image` it also writes `dram.bin`, a DRAM image to run the step from (`satkit
//! run program.bin --dram dram.bin`, on the simulator or the RTL): a synthetic training state
//! (seeded inputs in [-1, 1], labels, the hyperparameters of `satkit train`'s defaults,
//! Kaiming-uniform master weights, zero momenta, N:M copies with valid indices) after one
//! functional warm-up step on the simulator, so that its N:M and FP16 weight copies are the
//! ones the step's own pre-generation writes from its master weights.

use crate::sim_cmd::SimArgs;
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use satkit_compiler::model::Model;
use satkit_compiler::step;
use satkit_hw::NmRatio;
use satkit_sim::{Machine, Mode};
use satkit_train::output::write_atomic;
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

/// The synthetic state `--dram-image` starts from (see the module documentation).
fn seed_image(compiled: &step::CompiledStep, model: &Model, batch: u64, seed: u64) -> Result<Vec<u8>> {
    let m = &compiled.manifest;
    let mut dram = vec![0u8; m.dram_bytes as usize];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut put = |at: u64, bytes: Vec<u8>| dram[at as usize..at as usize + bytes.len()].copy_from_slice(&bytes);
    let f16s = |v: Vec<f32>| v.into_iter().flat_map(|x| half::f16::from_f32(x).to_le_bytes()).collect::<Vec<u8>>();
    let f32s = |v: Vec<f32>| v.into_iter().flat_map(f32::to_le_bytes).collect::<Vec<u8>>();
    let classes = model.classes.context("--dram-image: the model has no loss (no classes)")?;
    put(m.input, f16s((0..model.input.elements() * batch).map(|_| rng.gen_range(-1.0f32..1.0)).collect()));
    put(m.labels, f32s((0..batch).map(|b| ((b * 7 + 3) % classes) as f32).collect()));
    put(m.hyper, f32s(vec![0.02, 0.9, 5e-4, 2e-4]));
    let infos = model.infer(batch)?;
    for layer in &m.layers {
        let Some(map) = layer.weights else { continue };
        let ff = infos[layer.index].gemms.as_ref().context("a weight layer without GEMMs")?.ff;
        let bound = (6.0 / ff.k as f32).sqrt();
        put(map.master, f32s((0..ff.groups * ff.n * ff.k).map(|_| rng.gen_range(-bound..bound)).collect()));
        // N:M copies: each group's stored entries take in-group indices 0, 1, .. N - 1.
        for (format, values, index) in [(&layer.ff, map.ff_vals, map.ff_idx), (&layer.bp, map.bp_vals, map.bp_idx)] {
            let Some(ratio) = format.as_deref().and_then(|f| f.parse::<NmRatio>().ok()) else { continue };
            if index > values {
                let entries = (index - values) / 2;
                put(index, (0..entries).map(|j| (j % u64::from(ratio.n)) as u8).collect());
            }
        }
    }
    Ok(dram)
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
        let mut machine = Machine::new(&c.arch, Mode::Functional);
        machine.write_dram(0, &seed_image(&compiled, &c.model, c.batch, a.seed)?)?;
        machine.run(&compiled.program).context("--dram-image: the warm-up step on the simulator")?;
        let image = machine.read_dram(0, compiled.manifest.dram_bytes as usize)?;
        let loss = half::f16::from_le_bytes([image[compiled.manifest.loss as usize], image[compiled.manifest.loss as usize + 1]]);
        write_atomic(&dir.join("dram.bin"), &image)?;
        println!(
            "  dram.bin: the state after a warm-up step (loss {loss}); run it with `satkit run {0}/program.bin --arch {1} --dram {0}/dram.bin`",
            dir.display(),
            a.sim.arch
        );
    }
    Ok(())
}
