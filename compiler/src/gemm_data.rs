//! Operand data for a GEMM: seeded random generation, N:M compression into the DRAM layout
//! of [`crate::gemm`], and the f64 reference that checks the simulator's result.
//!
//! The check measures each output's error relative to `sum_k |in[m][k] * w[k][n]|` (the scale
//! of the rounding error of any summation order) and accepts up to `K * 2^-24 * 1.01`, the
//! classical bound for a sequential FP32 sum of exact products (Higham's `gamma_K`).

use crate::gemm::{GemmLayout, GemmProblem};
use crate::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use satkit_hw::isa::WeightFormat;
use satkit_hw::nm::{mask_along_rows, NmRatio};
use satkit_hw::ArchConfig;
use satkit_sim::numerics::round_operand;
use satkit_sim::Machine;
use serde::Serialize;

/// A GEMM's operands as the host sees them.
#[derive(Debug, Clone)]
pub struct GemmData {
    /// Input `M x K`, row-major, values exact in the operand type.
    pub input: Vec<f32>,
    /// Weight stored transposed, `N x K` row-major, values exact in the operand type; for an
    /// N:M problem the pruned entries are zero (the N:M mask rule applied along K).
    pub weight: Vec<f32>,
}

impl GemmData {
    /// Uniform values in [-1, 1), rounded to the operand type, seeded; N:M problems prune
    /// the weight with the project's mask rule.
    pub fn random(arch: &ArchConfig, p: &GemmProblem, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut draw =
            |n: u64| -> Vec<f32> { (0..n).map(|_| round_operand(rng.gen_range(-1.0f32..1.0), arch.precision.operand)).collect() };
        let input = draw(p.m * p.k);
        let mut weight = draw(p.n * p.k);
        if let Some(r) = p.weights.ratio() {
            let mask = mask_along_rows(&weight, p.n as usize, p.k as usize, r);
            for (w, keep) in weight.iter_mut().zip(mask) {
                if keep == 0 {
                    *w = 0.0;
                }
            }
        }
        GemmData { input, weight }
    }
}

/// Compresses a row-major `rows x cols` matrix that already satisfies N:M along its rows into
/// kept values and in-group indices (`rows x cols/M*N` each). Groups with fewer than N
/// nonzeros keep their largest entries (zeros included), by the project's mask rule.
pub fn compress_rows(values: &[f32], rows: usize, cols: usize, ratio: NmRatio) -> (Vec<f32>, Vec<u8>) {
    let mask = mask_along_rows(values, rows, cols, ratio);
    let mut kept = Vec::with_capacity(ratio.compressed_len(rows * cols));
    let mut index = Vec::with_capacity(kept.capacity());
    for (i, (&v, &keep)) in values.iter().zip(&mask).enumerate() {
        if keep == 1 {
            kept.push(v);
            index.push(((i % cols) % ratio.m as usize) as u8);
        }
    }
    (kept, index)
}

fn encode_operands(arch: &ArchConfig, values: &[f32]) -> Vec<u8> {
    match arch.precision.operand {
        satkit_hw::DataType::Fp16 => values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
        satkit_hw::DataType::Fp32 => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
    }
}

/// Writes the operands into the machine's DRAM at `layout`.
pub fn write_operands(m: &mut Machine, p: &GemmProblem, layout: &GemmLayout, data: &GemmData) -> Result<()> {
    let arch = m.arch().clone();
    m.write_dram(layout.input, &encode_operands(&arch, &data.input))?;
    match p.weights {
        WeightFormat::Dense => m.write_dram(layout.weight, &encode_operands(&arch, &data.weight))?,
        WeightFormat::Sparse(r) => {
            let (values, index) = compress_rows(&data.weight, p.n as usize, p.k as usize, r);
            m.write_dram(layout.weight, &encode_operands(&arch, &values))?;
            m.write_dram(layout.index, &index)?;
        }
    }
    Ok(())
}

/// Reads the FP32 output `M x N` from DRAM.
pub fn read_output(m: &Machine, p: &GemmProblem, layout: &GemmLayout) -> Result<Vec<f32>> {
    let bytes = m.read_dram(layout.output, (p.m * p.n * 4) as usize)?;
    Ok(bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
}

/// Result of comparing against the f64 reference.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Accuracy {
    /// Largest error relative to the output's magnitude scale.
    pub max_rel_error: f64,
    /// The accepted bound.
    pub tolerance: f64,
    /// Whether every output is within the bound.
    pub ok: bool,
}

/// Compares `out` with the f64 product of the same operands.
pub fn check_against_f64(p: &GemmProblem, data: &GemmData, out: &[f32]) -> Accuracy {
    let (m, n, k) = (p.m as usize, p.n as usize, p.k as usize);
    let mut max_rel_error = 0f64;
    for row in 0..m {
        let a = &data.input[row * k..(row + 1) * k];
        for col in 0..n {
            let w = &data.weight[col * k..(col + 1) * k];
            let (exact, scale) = a.iter().zip(w).fold((0f64, 0f64), |(s, mag), (&x, &y)| {
                let prod = f64::from(x) * f64::from(y);
                (s + prod, mag + prod.abs())
            });
            let err = (f64::from(out[row * n + col]) - exact).abs();
            let rel = if scale == 0.0 { err } else { err / scale };
            max_rel_error = max_rel_error.max(rel);
        }
    }
    let tolerance = k as f64 * 2f64.powi(-24) * 1.01;
    Accuracy { max_rel_error, tolerance, ok: max_rel_error <= tolerance }
}
