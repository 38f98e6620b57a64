//! Simulating a compiled training step and attributing the result to layers and phases.
//!
//! The program runs on the simulator in timing-only mode with per-instruction records; each
//! record goes to its (layer, phase) through the compiler's owner map. A layer-phase's
//! cycles are the union of its instructions' intervals; its utilization is performed MACs
//! over the array's multiplier slots in those cycles. Whole-step phase cycles are unions over
//! all layers. The gap causes of a sparse step against the ideal are computed from the same
//! records (see [`StepReport::gap_causes`]).

use super::engine::Owner;
use super::CompiledStep;
use crate::Result;
use satkit_hw::isa::{Phase, Unit};
use satkit_hw::ArchConfig;
use satkit_sim::{Machine, Mode};
use serde::Serialize;
use std::collections::BTreeMap;

/// Cycles of each phase over the whole step (union of its instructions' intervals).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PhaseCycles {
    /// Forward GEMMs.
    pub ff: u64,
    /// Backward-data GEMMs.
    pub bp: u64,
    /// Backward-weight GEMMs.
    pub wu: u64,
    /// WUVE updates.
    pub update: u64,
    /// Pre-generation (SORE prune, dense copies).
    pub prune: u64,
    /// Non-GEMM vector work.
    pub vector: u64,
}

/// One layer and phase.
#[derive(Debug, Clone, Serialize)]
pub struct LayerPhaseStats {
    /// Layer index.
    pub layer: usize,
    /// Layer name.
    pub name: String,
    /// Phase.
    pub phase: &'static str,
    /// Union of its instructions' intervals.
    pub cycles: u64,
    /// Performed MACs over multiplier slots in `cycles`.
    pub utilization: f64,
    /// Dense-equivalent MACs.
    pub macs_dense: u64,
    /// DRAM bytes moved.
    pub dram_bytes: u64,
    /// Dynamic energy, pJ.
    pub energy_pj: f64,
    /// Tensor-engine busy cycles.
    pub tensor_cycles: u64,
    /// Fill/drain cycles inside its GEMMs.
    pub fill_drain: u64,
    /// Instructions.
    pub instructions: u64,
}

/// The result of one simulated training step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Model.
    pub model: String,
    /// Batch.
    pub batch: u64,
    /// Method and N:M.
    pub method: String,
    /// Cycles of the step.
    pub total_cycles: u64,
    /// Seconds at the machine's clock.
    pub seconds: f64,
    /// Per-phase cycles.
    pub phases: PhaseCycles,
    /// Per layer and phase.
    pub layers: Vec<LayerPhaseStats>,
    /// Total energy, pJ (static included).
    pub energy_pj: f64,
    /// Energy by component, pJ.
    pub energy: satkit_sim::stats::Energy,
    /// Dense-equivalent GOPS (2 ops per dense MAC).
    pub throughput_gops: f64,
    /// Dense-equivalent MACs.
    pub macs_dense: u64,
    /// Tensor-engine busy cycles.
    pub tensor_cycles: u64,
    /// Instructions.
    pub instructions: usize,
    /// DRAM bytes read and written.
    pub dram_bytes: u64,
    /// Cycles during which the pre-generation runs alone (exposed, not hidden).
    pub prune_exposed: u64,
    /// Vector-phase cycles during which no GEMM phase runs.
    pub vector_exposed: u64,
    /// Update-phase cycles during which no GEMM phase runs.
    pub update_exposed: u64,
    /// GEMM-phase cycles of layers with dense FF weights.
    pub dense_layer_cycles: u64,
    /// Sum of fill/drain cycles of all GEMMs.
    pub fill_drain: u64,
    /// GEMM-phase cycles during which the tensor engine is idle (DRAM or dependency bound).
    pub gemm_idle: u64,
}

fn union(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn length(v: &[(u64, u64)]) -> u64 {
    v.iter().map(|(s, e)| e - s).sum()
}

/// Length of `a` not covered by `b` (both unions).
fn minus(a: &[(u64, u64)], b: &[(u64, u64)]) -> u64 {
    let mut covered = 0;
    let mut j = 0;
    for &(s, e) in a {
        while j < b.len() && b[j].1 <= s {
            j += 1;
        }
        let mut k = j;
        while k < b.len() && b[k].0 < e {
            covered += b[k].1.min(e) - b[k].0.max(s);
            k += 1;
        }
    }
    length(a) - covered
}

const PHASES: [Phase; 6] = [Phase::Ff, Phase::Bp, Phase::Wu, Phase::Update, Phase::Prune, Phase::Vector];

/// Simulates a compiled step (timing only) and attributes the records.
pub fn simulate(arch: &ArchConfig, step: &CompiledStep) -> Result<StepReport> {
    let mut m = Machine::new(arch, Mode::TimingOnly);
    m.record_instructions(true);
    let r = m.run(&step.program)?;
    let slots = u64::from(arch.array.rows) * u64::from(arch.array.cols) * u64::from(arch.array.n_max);
    #[derive(Default)]
    struct Acc {
        iv: Vec<(u64, u64)>,
        perf: u64,
        dense: u64,
        dram: u64,
        energy: f64,
        tensor: u64,
        fill: u64,
        n: u64,
    }
    let mut per: BTreeMap<Owner, Acc> = BTreeMap::new();
    let mut phase_iv: BTreeMap<Phase, Vec<(u64, u64)>> = BTreeMap::new();
    let mut tensor_iv = Vec::new();
    let mut dense_iv = Vec::new();
    for rec in &r.instructions {
        let owner = step.owners[rec.index];
        let a = per.entry(owner).or_default();
        a.iv.push((rec.start, rec.end));
        a.perf += rec.cost.macs_performed;
        a.dense += rec.cost.macs_dense;
        a.dram += rec.cost.dram_read + rec.cost.dram_write;
        a.energy += rec.cost.energy.total_pj();
        a.n += 1;
        if rec.unit == Unit::Tensor.name() {
            a.tensor += rec.end - rec.start;
            a.fill += rec.cost.stalls.fill_drain;
            tensor_iv.push((rec.start, rec.end));
        }
        phase_iv.entry(owner.phase).or_default().push((rec.start, rec.end));
        if matches!(owner.phase, Phase::Ff | Phase::Bp | Phase::Wu) && step.dense_weight_layers.contains(&(owner.layer as usize))
        {
            dense_iv.push((rec.start, rec.end));
        }
    }
    let unions: BTreeMap<Phase, Vec<(u64, u64)>> = phase_iv.into_iter().map(|(p, v)| (p, union(v))).collect();
    let get = |p: Phase| unions.get(&p).map_or(0, |v| length(v));
    let phases = PhaseCycles {
        ff: get(Phase::Ff),
        bp: get(Phase::Bp),
        wu: get(Phase::Wu),
        update: get(Phase::Update),
        prune: get(Phase::Prune),
        vector: get(Phase::Vector),
    };
    let others = union(unions.iter().filter(|(p, _)| **p != Phase::Prune).flat_map(|(_, v)| v.iter().copied()).collect());
    let prune_exposed = unions.get(&Phase::Prune).map_or(0, |p| minus(p, &others));
    let gemm = union(
        unions
            .iter()
            .filter(|(p, _)| matches!(p, Phase::Ff | Phase::Bp | Phase::Wu))
            .flat_map(|(_, v)| v.iter().copied())
            .collect(),
    );
    let gemm_idle = minus(&gemm, &union(tensor_iv));
    let exposed = |p: Phase| unions.get(&p).map_or(0, |v| minus(v, &gemm));
    let mut layers = Vec::new();
    let mut fill_drain = 0;
    for (owner, a) in per {
        let cycles = length(&union(a.iv));
        fill_drain += a.fill;
        layers.push(LayerPhaseStats {
            layer: owner.layer as usize,
            name: step.layer_names[owner.layer as usize].clone(),
            phase: owner.phase.name(),
            cycles,
            utilization: if cycles == 0 { 0.0 } else { a.perf as f64 / (cycles * slots) as f64 },
            macs_dense: a.dense,
            dram_bytes: a.dram,
            energy_pj: a.energy,
            tensor_cycles: a.tensor,
            fill_drain: a.fill,
            instructions: a.n,
        });
    }
    layers.sort_by_key(|l| (l.layer, PHASES.iter().position(|p| p.name() == l.phase)));
    Ok(StepReport {
        model: step.manifest.model.clone(),
        batch: step.manifest.batch,
        method: step.manifest.method.clone(),
        total_cycles: r.total_cycles,
        seconds: r.seconds,
        phases,
        layers,
        energy_pj: r.energy_pj,
        energy: r.energy,
        throughput_gops: if r.seconds > 0.0 { 2.0 * r.macs_dense as f64 / r.seconds / 1e9 } else { 0.0 },
        macs_dense: r.macs_dense,
        tensor_cycles: r.compute_cycles,
        instructions: step.program.insns.len(),
        dram_bytes: r.dram_read_bytes + r.dram_write_bytes,
        prune_exposed,
        vector_exposed: exposed(Phase::Vector),
        update_exposed: exposed(Phase::Update),
        dense_layer_cycles: length(&union(dense_iv)),
        fill_drain,
        gemm_idle,
    })
}

impl StepReport {
    /// Named causes of the gap between this (sparse) step's speedup over `dense` and the
    /// ideal speedup `ideal`, in cycles of this step: what the ideal assumes shrinks but does
    /// not. Each is computed from the records, not assumed.
    pub fn gap_causes(&self, dense: &StepReport) -> Vec<(&'static str, u64)> {
        vec![
            ("non-GEMM vector work not under GEMMs (does not shrink)", self.vector_exposed),
            ("WUVE update not under GEMMs (does not shrink)", self.update_exposed),
            ("exposed pre-generation (prune not hidden)", self.prune_exposed),
            ("dense first/last layers (GEMM cycles)", self.dense_layer_cycles),
            ("GEMM fill/drain and weight preload", self.fill_drain),
            ("GEMM phases with the array idle (DRAM or dependency bound)", self.gemm_idle),
            ("(dense step: same idle time)", dense.gemm_idle),
        ]
    }
}
