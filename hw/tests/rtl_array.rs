//! The generated PE array of the `tiny` preset, simulated in rust-hdl: dense and 2:4 GEMM
//! tiles against the sequential FP32 sum of exact products (the `sim::numerics` rule), folds
//! fed back to back every `S * L + R + C - 2` cycles with their initial sums, and the emitted
//! module structure.

use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_hdl::prelude::*;
use satkit_hw::rtl::array::PeArray;
use satkit_hw::rtl::{generate, settle, TOP_MODULE};
use satkit_hw::ArchConfig;

/// One reduction step at the array's edges: per row the activation lanes, per column the
/// weight slots as (value, in-group index).
struct Step {
    act: Vec<Vec<f16>>,
    wgt: Vec<Vec<(f16, u8)>>,
}

fn tick(array: &mut PeArray) {
    array.clock.next = Clock { clk: true };
    settle(array);
    array.clock.next = Clock { clk: false };
    settle(array);
}

fn pack<const N: usize>(values: impl Iterator<Item = u64>, width: usize) -> Bits<N> {
    let mut bus = Bits::<N>::default();
    for (i, v) in values.enumerate() {
        for b in 0..width {
            bus = bus.replace_bit(i * width + b, (v >> b) & 1 == 1);
        }
    }
    bus
}

/// Runs folds back to back as the tensor unit does (fold `f`'s step `s` fed at `f * P + s *
/// L` with `P = S L + R + C - 2`, then a flush), each starting from its `init` sums; returns
/// every fold's outputs (row-major) as read from the result buses.
fn run_folds(arch: &ArchConfig, folds: &[(Vec<Step>, Vec<f32>)]) -> Vec<Vec<f32>> {
    let (rows, cols) = (arch.array.rows as usize, arch.array.cols as usize);
    let l = arch.array.accumulator_latency as usize;
    let slots = l;
    let mut array = PeArray::new(arch);
    array.connect_all();
    let steps = folds[0].0.len();
    let period = steps * l + rows + cols - 2;
    let mut out = vec![vec![0f32; rows * cols]; folds.len()];
    for t in 0..=folds.len() * period + rows + cols + slots {
        let (f, phase) = (t / period, t % period);
        let feed = phase % l == 0 && phase / l < steps && f < folds.len();
        array.valid.next = feed;
        array.first.next = (feed || f == folds.len()) && phase == 0;
        if feed {
            let step = &folds[f].0[phase / l];
            for r in 0..rows {
                array.act[r].next = pack(step.act[r].iter().map(|v| u64::from(v.to_bits())), 16);
            }
            for c in 0..cols {
                array.wgt[c].next = pack(step.wgt[c].iter().map(|(v, _)| u64::from(v.to_bits())), 16);
                array.idx[c].next = pack(step.wgt[c].iter().map(|&(_, i)| u64::from(i)), 4);
                array.en[c].next = pack(step.wgt[c].iter().map(|_| 1), 1);
            }
        }
        // Row `phase` of fold f's initial values enters the columns at cycle T_f + phase.
        if phase < rows && f < folds.len() {
            for c in 0..cols {
                array.init[c * slots].next = u64::from(folds[f].1[phase * cols + c].to_bits()).into();
            }
        }
        settle(&mut array);
        // Row k of fold f - 1 leaves at T_f + k + C + L - 2 (slot 0: no interleave).
        let delay = cols + slots - 2;
        if f >= 1 && (delay..delay + rows).contains(&phase) {
            let k = phase - delay;
            for c in 0..cols {
                out[f - 1][k * cols + c] = f32::from_bits(array.result[c * slots].val().to_u64() as u32);
            }
        }
        tick(&mut array);
    }
    out
}

fn random_f16(rng: &mut ChaCha8Rng) -> f16 {
    f16::from_f32(rng.gen_range(-4.0f32..4.0))
}

/// Sequential FP32 sum from `init` over the dense (zero-filled) reduction, as
/// `sim::pe_array::gemm_execute`.
fn reference(init: &[f32], input: &[Vec<f16>], dense_weight: &[Vec<f16>]) -> Vec<f32> {
    let (m, n) = (input.len(), dense_weight[0].len());
    let mut out = init.to_vec();
    for r in 0..m {
        for c in 0..n {
            for (k, x) in input[r].iter().enumerate() {
                out[r * n + c] += x.to_f32() * dense_weight[k][c].to_f32();
            }
        }
    }
    out
}

fn assert_same_bits(got: &[f32], want: &[f32], cols: usize) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "output ({}, {}): RTL {g:e}, reference {w:e}", i / cols, i % cols);
    }
}

#[test]
fn tiny_dense_folds_back_to_back_match_the_sequential_sum_from_their_initial_values() {
    let arch = ArchConfig::tiny();
    let (rows, cols, n_max) = (arch.array.rows as usize, arch.array.cols as usize, arch.array.n_max as usize);
    let depth = 5 * n_max;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let input: Vec<Vec<f16>> = (0..rows).map(|_| (0..depth).map(|_| random_f16(&mut rng)).collect()).collect();
    let weight: Vec<Vec<f16>> = (0..depth).map(|_| (0..cols).map(|_| random_f16(&mut rng)).collect()).collect();
    let steps: Vec<Step> = (0..depth / n_max)
        .map(|s| Step {
            act: input.iter().map(|row| row[s * n_max..(s + 1) * n_max].to_vec()).collect(),
            wgt: (0..cols).map(|c| (0..n_max).map(|j| (weight[s * n_max + j][c], j as u8)).collect()).collect(),
        })
        .collect();
    // The same operands twice: from +0, then (back to back) from random initial sums.
    let init: Vec<f32> = (0..rows * cols).map(|_| random_f16(&mut rng).to_f32()).collect();
    let zero = vec![0f32; rows * cols];
    let steps_again: Vec<Step> = steps.iter().map(|s| Step { act: s.act.clone(), wgt: s.wgt.clone() }).collect();
    let out = run_folds(&arch, &[(steps, zero.clone()), (steps_again, init.clone())]);
    assert_same_bits(&out[0], &reference(&zero, &input, &weight), cols);
    assert_same_bits(&out[1], &reference(&init, &input, &weight), cols);
}

#[test]
fn tiny_2_4_fold_matches_the_zero_filled_dense_sum() {
    let arch = ArchConfig::tiny();
    let (rows, cols) = (arch.array.rows as usize, arch.array.cols as usize);
    let (n, m, groups) = (2usize, 4usize, 3usize);
    let depth = groups * m;
    let mut rng = ChaCha8Rng::seed_from_u64(24);
    let input: Vec<Vec<f16>> = (0..rows).map(|_| (0..depth).map(|_| random_f16(&mut rng)).collect()).collect();
    let mut dense = vec![vec![f16::ZERO; cols]; depth];
    // kept[c][g] = the N (value, in-group index) pairs of column c, group g, indices increasing.
    let kept: Vec<Vec<Vec<(f16, u8)>>> = (0..cols)
        .map(|c| {
            (0..groups)
                .map(|g| {
                    let first = rng.gen_range(0..m - 1);
                    let second = rng.gen_range(first + 1..m);
                    [first, second]
                        .iter()
                        .map(|&i| {
                            let v = random_f16(&mut rng);
                            dense[g * m + i][c] = v;
                            (v, i as u8)
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .collect();
    assert_eq!(kept[0][0].len(), n);
    let steps: Vec<Step> = (0..groups)
        .map(|g| Step {
            act: input.iter().map(|row| row[g * m..(g + 1) * m].to_vec()).collect(),
            wgt: (0..cols).map(|c| kept[c][g].clone()).collect(),
        })
        .collect();
    let zero = vec![0f32; rows * cols];
    let out = run_folds(&arch, &[(steps, zero.clone())]);
    assert_same_bits(&out[0], &reference(&zero, &input, &dense), cols);
}

#[test]
fn emitted_verilog_has_one_module_per_block() {
    let arch = ArchConfig::tiny();
    let design = generate(&arch).unwrap();
    let count = |name: &str| design.modules.iter().find(|m| m.name == name).map(|m| m.instances);
    assert_eq!(count("sat_pe"), Some((arch.array.rows * arch.array.cols) as usize));
    assert_eq!(count("sat_fp32_add"), Some((arch.array.rows * arch.array.cols * arch.array.n_max) as usize));
    assert_eq!(design.modules.last().map(|m| m.name.as_str()), Some(TOP_MODULE));
    assert_eq!(
        design.verilog.matches("\nmodule ").count() + usize::from(design.verilog.starts_with("module ")),
        design.modules.len()
    );
    let results = design.ports.iter().filter(|p| p.name.starts_with("result$")).count();
    assert_eq!(results, (arch.array.cols * arch.array.accumulator_latency) as usize);
}
