//! Co-simulation tests: GEMM tiles run on the Verilated PE array (the generated RTL of the
//! preset the crate was built for, `tiny` by default) and on the simulator
//! (`satkit_sim::pe_array::gemm_execute` / `gemm_timing`, OS dataflow, interleave 1), compared
//! output by output bit for bit and cycle count for cycle count. A mismatch names the first
//! differing element (row, column, both values) or both cycle counts.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use satkit_hw::isa::{Buffer, WeightFormat};
use satkit_hw::{ArchConfig, Dataflow, NmRatio};
use satkit_rtl_cosim::{CosimArray, GemmTile};
use satkit_sim::pe_array::{gemm_execute, gemm_timing, GemmOperands, GemmShape};
use satkit_sim::scratchpad::Scratchpads;

/// Operands of one tile in the simulator's buffer layouts.
#[derive(Debug, Clone)]
struct Operands {
    tile: GemmTile,
    input: Vec<f32>,
    weight: Vec<f32>,
    idx: Vec<u8>,
    init: Option<Vec<f32>>,
}

/// Outputs and cycles of one side.
#[derive(Debug)]
struct Outcome {
    out: Vec<f32>,
    cycles: u64,
    folds: u64,
}

fn sparse(text: &str) -> WeightFormat {
    WeightFormat::Sparse(text.parse::<NmRatio>().expect("a valid N:M ratio"))
}

/// An FP16 value as f32: mostly moderate magnitudes, with `specials` the probability of a
/// signed zero, subnormal, extreme normal or infinity.
fn value(rng: &mut ChaCha8Rng, specials: f64) -> f32 {
    if rng.gen_bool(specials) {
        // +0, -0, the smallest subnormal, -(the largest subnormal), +-65504 (the largest normal), +-inf
        let pick = [0x0000u16, 0x8000, 0x0001, 0x83ff, 0x7bff, 0xfbff, 0x7c00, 0xfc00].map(|b| half::f16::from_bits(b).to_f32());
        return pick[rng.gen_range(0..pick.len())];
    }
    half::f16::from_f32(rng.gen_range(-8.0f32..8.0)).to_f32()
}

/// Random operands of an `m x n x k` tile; N:M weights keep `n` sorted in-group indices per group.
fn operands(seed: u64, m: usize, n: usize, k: usize, weights: WeightFormat, accumulate: bool, specials: f64) -> Operands {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let stored = weights.stored_len(k);
    let input = (0..m * k).map(|_| value(&mut rng, specials)).collect();
    let weight = (0..n * stored).map(|_| value(&mut rng, specials)).collect();
    let mut idx = vec![0u8; n * stored];
    if let Some(r) = weights.ratio() {
        let (nn, mm) = (r.n as usize, r.m as usize);
        for group in idx.chunks_mut(nn) {
            let mut chosen: Vec<u8> = (0..mm as u8).collect();
            for i in 0..nn {
                let j = rng.gen_range(i..mm);
                chosen.swap(i, j);
            }
            let mut kept = chosen[..nn].to_vec();
            kept.sort_unstable();
            group.copy_from_slice(&kept);
        }
    }
    let init = accumulate.then(|| (0..m * n).map(|_| rng.gen_range(-64.0f32..64.0)).collect());
    Operands { tile: GemmTile { rows: m, cols: n, depth: k, weights }, input, weight, idx, init }
}

fn shape(tile: &GemmTile) -> GemmShape {
    GemmShape {
        dataflow: Dataflow::Os,
        weights: tile.weights,
        rows: tile.rows as u64,
        cols: tile.cols as u64,
        depth: tile.depth as u64,
        interleave: 1,
    }
}

/// The simulator's result: `gemm_execute` on scratchpads holding the operands, `gemm_timing` OS.
fn simulate(arch: &ArchConfig, o: &Operands) -> Outcome {
    let mut pads = Scratchpads::new(arch, true);
    pads.values_mut(Buffer::Act)[..o.input.len()].copy_from_slice(&o.input);
    pads.values_mut(Buffer::Wgt)[..o.weight.len()].copy_from_slice(&o.weight);
    pads.bytes_mut(Buffer::Idx)[..o.idx.len()].copy_from_slice(&o.idx);
    let len = o.tile.rows * o.tile.cols;
    if let Some(init) = &o.init {
        pads.values_mut(Buffer::Acc)[..len].copy_from_slice(init);
    }
    let s = shape(&o.tile);
    let ops = GemmOperands { input: 0, weight: 0, output: 0, accumulate: o.init.is_some(), input_t: false, weight_t: false };
    gemm_execute(&mut pads, &s, &ops).expect("the simulator runs the tile");
    let t = gemm_timing(arch, &s);
    Outcome { out: pads.values(Buffer::Acc)[..len].to_vec(), cycles: t.cycles, folds: t.folds }
}

/// The RTL's result on the Verilated array.
fn cosimulate(array: &mut CosimArray, o: &Operands) -> Outcome {
    let run = array.run_gemm(&o.tile, &o.input, &o.weight, &o.idx, o.init.as_deref()).expect("the RTL runs the tile");
    Outcome { out: run.out, cycles: run.cycles, folds: run.folds }
}

/// `Ok` when both sides agree bit for bit (any two NaNs count as equal: the RTL returns the
/// canonical quiet NaN, Rust's NaN bits are platform-defined) and cycle for cycle; otherwise
/// the first differing element or the two cycle counts.
fn compare(tile: &GemmTile, rtl: &Outcome, sim: &Outcome) -> Result<(), String> {
    let what = format!("{}x{}x{} {:?}", tile.rows, tile.cols, tile.depth, tile.weights);
    if rtl.out.len() != sim.out.len() {
        return Err(format!("{what}: RTL gave {} outputs, the simulator {}", rtl.out.len(), sim.out.len()));
    }
    for (i, (r, s)) in rtl.out.iter().zip(&sim.out).enumerate() {
        if r.to_bits() != s.to_bits() && !(r.is_nan() && s.is_nan()) {
            return Err(format!(
                "{what}: first differing output ({}, {}): RTL {r:e} ({:#010x}), simulator {s:e} ({:#010x})",
                i / tile.cols,
                i % tile.cols,
                r.to_bits(),
                s.to_bits()
            ));
        }
    }
    if (rtl.cycles, rtl.folds) != (sim.cycles, sim.folds) {
        return Err(format!(
            "{what}: RTL took {} cycles in {} folds, the simulator's OS formula {} cycles in {} folds",
            rtl.cycles, rtl.folds, sim.cycles, sim.folds
        ));
    }
    Ok(())
}

/// Runs `o` on both sides and compares; returns the number of outputs compared.
fn check(array: &mut CosimArray, o: &Operands) -> Result<usize, String> {
    let sim = simulate(array.arch(), o);
    let rtl = cosimulate(array, o);
    compare(&o.tile, &rtl, &sim)?;
    Ok(rtl.out.len())
}

fn new_array() -> CosimArray {
    CosimArray::new().expect("the Verilated array resolves its ports")
}

#[test]
fn dense_single_folds_of_every_depth() {
    let mut array = new_array();
    let (r, c) = (array.arch().array.rows as usize, array.arch().array.cols as usize);
    let mut compared = 0;
    for k in 1..=24 {
        let o = operands(k as u64, r, c, k, WeightFormat::Dense, false, 0.0);
        compared += check(&mut array, &o).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(compared, 24 * r * c);
}

#[test]
fn dense_multi_fold_tiles_with_partial_folds() {
    let mut array = new_array();
    let (r, c) = (array.arch().array.rows as usize, array.arch().array.cols as usize);
    for (seed, (m, n, k)) in
        [(1, 1, 1), (2 * r + 1, c + 2, 7), (r - 1, 3 * c, 16), (3 * r, c - 1, 33), (2, 2, 64)].into_iter().enumerate()
    {
        let o = operands(100 + seed as u64, m, n, k, WeightFormat::Dense, false, 0.0);
        check(&mut array, &o).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn every_supported_nm_ratio_single_and_multi_fold() {
    let mut array = new_array();
    let arch = array.arch().clone();
    let (r, c) = (arch.array.rows as usize, arch.array.cols as usize);
    assert!(!arch.array.supported_nm.is_empty(), "{} supports no N:M ratio", arch.name);
    for ratio in &arch.array.supported_nm {
        let weights = WeightFormat::Sparse(*ratio);
        let m = ratio.m as usize;
        for (seed, (rows, cols, groups)) in
            [(r, c, 1), (r, c, 5), (2 * r + 1, c + 1, 3), (r - 1, 2 * c, 7)].into_iter().enumerate()
        {
            let o = operands(200 + seed as u64 + 10 * u64::from(ratio.m), rows, cols, groups * m, weights, false, 0.0);
            check(&mut array, &o).unwrap_or_else(|e| panic!("{ratio}: {e}"));
        }
    }
}

#[test]
fn two_four_and_two_eight_tiles() {
    let mut array = new_array();
    let (r, c) = (array.arch().array.rows as usize, array.arch().array.cols as usize);
    for (seed, ratio) in ["2:4", "2:8"].into_iter().enumerate() {
        let o = operands(300 + seed as u64, 3 * r, 2 * c, 64, sparse(ratio), false, 0.0);
        check(&mut array, &o).unwrap_or_else(|e| panic!("{ratio}: {e}"));
    }
}

#[test]
fn accumulate_starts_from_the_loaded_outputs() {
    let mut array = new_array();
    let (r, c) = (array.arch().array.rows as usize, array.arch().array.cols as usize);
    for (seed, weights) in [WeightFormat::Dense, sparse("2:4"), sparse("2:8")].into_iter().enumerate() {
        let o = operands(400 + seed as u64, r + 2, 2 * c - 1, 16, weights, true, 0.0);
        check(&mut array, &o).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn signed_zeros_subnormals_infinities_and_nan() {
    let mut array = new_array();
    let (r, c) = (array.arch().array.rows as usize, array.arch().array.cols as usize);
    for (seed, weights) in [WeightFormat::Dense, sparse("2:4"), sparse("2:8")].into_iter().enumerate() {
        for round in 0..8u64 {
            let o = operands(500 + 16 * seed as u64 + round, r, c, 16, weights, round % 2 == 1, 0.3);
            check(&mut array, &o).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// The comparison catches a one-ulp difference, a NaN against a number, and a cycle off by one.
#[test]
fn a_broken_result_is_reported_with_its_position() {
    let mut array = new_array();
    let (r, c) = (array.arch().array.rows as usize, array.arch().array.cols as usize);
    let o = operands(600, r, c, 8, sparse("2:4"), false, 0.0);
    let sim = simulate(array.arch(), &o);
    let rtl = cosimulate(&mut array, &o);
    compare(&o.tile, &rtl, &sim).unwrap_or_else(|e| panic!("{e}"));
    let at = r * c - 2;
    let mut off = Outcome { out: rtl.out.clone(), cycles: rtl.cycles, folds: rtl.folds };
    off.out[at] = f32::from_bits(off.out[at].to_bits() ^ 1);
    let e = compare(&o.tile, &off, &sim).unwrap_err();
    assert!(e.contains(&format!("output ({}, {})", at / c, at % c)), "{e}");
    off.out[at] = f32::NAN;
    assert!(compare(&o.tile, &off, &sim).is_err());
    let late = Outcome { out: rtl.out.clone(), cycles: rtl.cycles + 1, folds: rtl.folds };
    let e = compare(&o.tile, &late, &sim).unwrap_err();
    assert!(e.contains(&format!("{} cycles", sim.cycles + 1)) && e.contains(&format!("{} cycles", sim.cycles)), "{e}");
}

#[test]
fn bad_operands_are_refused_with_a_message() {
    let mut array = new_array();
    let tile = GemmTile { rows: 2, cols: 2, depth: 8, weights: sparse("2:4") };
    let mut o = operands(700, 2, 2, 8, sparse("2:4"), false, 0.0);
    o.input[3] = 0.1; // not an FP16 value
    let e = array.run_gemm(&tile, &o.input, &o.weight, &o.idx, None).unwrap_err().to_string();
    assert!(e.contains("input") && e.contains("element 3"), "{e}");
    let mut o = operands(701, 2, 2, 8, sparse("2:4"), false, 0.0);
    o.idx.swap(0, 1); // indices decreasing within a group
    let e = array.run_gemm(&tile, &o.input, &o.weight, &o.idx, None).unwrap_err().to_string();
    assert!(e.contains("idx"), "{e}");
    let e = array.run_gemm(&tile, &o.input[1..], &o.weight, &o.idx, None).unwrap_err().to_string();
    assert!(e.contains("input") && e.contains("needs 16"), "{e}");
    let wide = GemmTile { rows: 2, cols: 2, depth: 32, weights: sparse("2:16") };
    let e = array.run_gemm(&wide, &[0.0; 64], &[0.0; 8], &[0; 8], None).unwrap_err().to_string();
    assert!(e.contains("2:16"), "{e}");
    // The array still works after refusing.
    check(&mut array, &operands(702, 2, 2, 8, sparse("2:4"), false, 0.0)).unwrap_or_else(|e| panic!("{e}"));
}

fn formats() -> Vec<WeightFormat> {
    let arch = ArchConfig::resolve(satkit_rtl_cosim::BUILT_ARCH).expect("the built architecture resolves");
    std::iter::once(WeightFormat::Dense).chain(arch.array.supported_nm.iter().map(|&r| WeightFormat::Sparse(r))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// Any shape up to three folds each way, any supported format, with or without
    /// accumulation, values with occasional specials: RTL = simulator.
    #[test]
    fn rtl_equals_simulator_on_random_tiles(
        seed in any::<u64>(),
        m in 1usize..13,
        n in 1usize..13,
        steps in 1usize..9,
        format in 0usize..16,
        accumulate in any::<bool>(),
        specials in prop_oneof![Just(0.0f64), Just(0.1f64)],
    ) {
        let formats = formats();
        let weights = formats[format % formats.len()];
        let k = match weights {
            WeightFormat::Dense => steps * 2 - (seed % 2) as usize, // odd depths too
            WeightFormat::Sparse(r) => steps * r.m as usize,
        };
        let o = operands(seed, m, n, k, weights, accumulate, specials);
        let mut array = new_array();
        if let Err(e) = check(&mut array, &o) {
            prop_assert!(false, "{}", e);
        }
    }
}
