//! A DRAM image that a compiled training step runs from: a synthetic training state (seeded
//! inputs in [-1, 1], labels, the given hyperparameters, Kaiming-uniform master weights, zero
//! momenta, N:M copies with valid in-group indices) after one functional warm-up step on the
//! simulator, so that the N:M and FP16 weight copies are the ones the step's own
//! pre-generation writes from its master weights. `satkit compile --dram-image` writes it; the
//! RTL co-simulation's training-step tests start from it.

use super::CompiledStep;
use crate::model::Model;
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use satkit_hw::{ArchConfig, NmRatio};
use satkit_sim::{Machine, Mode};

/// The image after the warm-up step, and that step's mean loss.
#[derive(Debug, Clone)]
pub struct DramImage {
    /// DRAM bytes `[0, manifest.dram_bytes)`.
    pub bytes: Vec<u8>,
    /// The warm-up step's loss (as the step stores it, FP16).
    pub warm_up_loss: f32,
}

/// The synthetic state before the warm-up (see the module documentation).
fn seed_state(compiled: &CompiledStep, model: &Model, batch: u64, hyper: [f32; 4], seed: u64) -> Result<Vec<u8>> {
    let m = &compiled.manifest;
    let mut dram = vec![0u8; m.dram_bytes as usize];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut put = |at: u64, bytes: Vec<u8>| dram[at as usize..at as usize + bytes.len()].copy_from_slice(&bytes);
    let f16s = |v: Vec<f32>| v.into_iter().flat_map(|x| half::f16::from_f32(x).to_le_bytes()).collect::<Vec<u8>>();
    let f32s = |v: Vec<f32>| v.into_iter().flat_map(f32::to_le_bytes).collect::<Vec<u8>>();
    let classes = model.classes.ok_or_else(|| Error::Input(format!("model `{}` has no loss (no classes)", model.name)))?;
    put(m.input, f16s((0..model.input.elements() * batch).map(|_| rng.gen_range(-1.0f32..1.0)).collect()));
    put(m.labels, f32s((0..batch).map(|b| ((b * 7 + 3) % classes) as f32).collect()));
    put(m.hyper, f32s(hyper.to_vec()));
    let infos = model.infer(batch)?;
    for layer in &m.layers {
        let Some(map) = layer.weights else { continue };
        let ff = infos[layer.index]
            .gemms
            .as_ref()
            .ok_or_else(|| Error::Unsupported(format!("layer `{}` has weights but no GEMMs", layer.name)))?
            .ff;
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

/// The image of `compiled` (a step of `model` at `batch` on `arch`) with hyperparameters
/// `[learning rate, momentum, weight decay, SR-STE lambda]`, from `seed`.
pub fn dram_image(
    arch: &ArchConfig,
    compiled: &CompiledStep,
    model: &Model,
    batch: u64,
    hyper: [f32; 4],
    seed: u64,
) -> Result<DramImage> {
    let mut machine = Machine::new(arch, Mode::Functional);
    machine.write_dram(0, &seed_state(compiled, model, batch, hyper, seed)?)?;
    machine.run(&compiled.program)?;
    let m = &compiled.manifest;
    let bytes = machine.read_dram(0, m.dram_bytes as usize)?;
    let at = m.loss as usize;
    let warm_up_loss = half::f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32();
    Ok(DramImage { bytes, warm_up_loss })
}
