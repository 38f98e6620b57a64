//! Functional results against independent computations in the test.
//!
//! - SORE prune, FF and BP orders: compressed values (rounded to FP16), in-group indices and the
//!   dense 0/1 mask plane against a straightforward top-N selection written here (largest
//!   magnitude, ties to the earlier index), including BP's transposed output layout;
//! - WUVE update against the documented per-element formula evaluated in FP32 in the same order
//!   (bit-exact), with and without the SR-STE mask term;
//! - the vector unit: copy (FP32 to FP16 rounds to nearest even, checked through `half` and by
//!   hand), add, relu, relu_grad, max/avg pooling and their gradients on hand-computed planes,
//!   softmax cross-entropy gradient and loss against an f64 computation (tolerance 1e-6);
//! - GEMM, dense and N:M sparse after a prune, against a sequential FP32 sum;
//! - DMA: FP16/FP32/byte-plane round trips between DRAM and the buffers, with 2-D strides.

mod common;
use half::f16;
use satkit_hw::isa::{Buffer, Instruction, Op, Program, PruneOrder, VecOp, WeightFormat};
use satkit_hw::{ArchConfig, Dataflow, NmRatio};
use satkit_sim::{Machine, Mode, SimReport};

// ---------------------------------------------------------------------------------------------
// Helpers

fn machine() -> Machine {
    Machine::new(&ArchConfig::tiny(), Mode::Functional)
}

fn run(m: &mut Machine, insns: Vec<Instruction>) -> SimReport {
    m.run(&Program { insns }).unwrap()
}

fn fp16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// Bitwise equality of two FP32 slices, with a readable message.
fn assert_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.to_bits() == w.to_bits(), "{what}[{i}]: got {g:e} ({:#x}), want {w:e} ({:#x})", g.to_bits(), w.to_bits());
    }
}

fn vec_op(op: VecOp, count: u32, dst: (Buffer, u32), a: (Buffer, u32), b: (Buffer, u32), p: [u32; 4]) -> Instruction {
    Instruction::new(common::vec_op(op, count, dst, a, b, p))
}

/// A seeded generator for test data (ChaCha8 through `rand`).
struct Rng(rand_chacha::ChaCha8Rng);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(rand::SeedableRng::seed_from_u64(seed))
    }
    fn next(&mut self) -> u64 {
        rand::RngCore::next_u64(&mut self.0)
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        rand::Rng::gen_range(&mut self.0, -1.0f32..1.0)
    }
}

// ---------------------------------------------------------------------------------------------
// SORE

/// Indices (ascending) of the `n` largest magnitudes of `group`, ties to the earlier index:
/// pick the first strictly largest remaining entry, `n` times.
fn top_n(group: &[f32], n: usize) -> Vec<usize> {
    let mut taken = vec![false; group.len()];
    for _ in 0..n {
        let mut best: Option<usize> = None;
        for i in 0..group.len() {
            if !taken[i] && best.is_none_or(|b| group[i].abs() > group[b].abs()) {
                best = Some(i);
            }
        }
        taken[best.unwrap()] = true;
    }
    (0..group.len()).filter(|&i| taken[i]).collect()
}

/// Expected compressed values, indices and dense mask of a prune of the row-major
/// `rows x cols` weight `w`.
fn prune_reference(w: &[f32], rows: usize, cols: usize, n: usize, m: usize, bp: bool) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mut vals, mut idx, mut mask) = (Vec::new(), Vec::new(), vec![0f32; rows * cols]);
    // FF: one compressed row per dense row, groups along it. BP: one per dense column, groups down it.
    let (out_rows, out_len) = if bp { (cols, rows) } else { (rows, cols) };
    for o in 0..out_rows {
        let at = |pos: usize| if bp { pos * cols + o } else { o * cols + pos };
        for g in 0..out_len / m {
            let group: Vec<f32> = (0..m).map(|i| w[at(g * m + i)]).collect();
            for i in top_n(&group, n) {
                vals.push(fp16(group[i]));
                idx.push(i as f32);
                mask[at(g * m + i)] = 1.0;
            }
        }
    }
    (vals, idx, mask)
}

/// A weight with many exact magnitude ties (values k / 8 for small k, both signs, and zeros) and
/// values FP16 cannot hold exactly.
fn prune_weight(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..rows * cols)
        .map(|i| match rng.next() % 4 {
            0 => ((rng.next() % 7) as f32 - 3.0) / 8.0,
            1 => 0.0,
            _ => rng.unit() * 3.0,
        } + if i % 11 == 0 { 1e-4 } else { 0.0 })
        .collect()
}

fn check_prune(order: PruneOrder, n: u32, m: u32, rows: u32, cols: u32, seed: u64) {
    let bp = order == PruneOrder::Bp;
    let (src, dst, mask_at) = (37u32, 101u32, 211u32);
    let w = prune_weight(rows as usize, cols as usize, seed);
    let (vals, idx, mask) = prune_reference(&w, rows as usize, cols as usize, n as usize, m as usize, bp);
    let entries = (rows * cols / m * n) as usize;
    assert_eq!(vals.len(), entries);
    let mut mach = machine();
    mach.write_buffer(Buffer::Master, u64::from(src), &w).unwrap();
    // Sentinels around the outputs: nothing outside them may change.
    mach.write_buffer(Buffer::Wgt, u64::from(dst) - 1, &[7.0]).unwrap();
    mach.write_buffer(Buffer::Wgt, u64::from(dst) + entries as u64, &[7.0]).unwrap();
    mach.write_buffer(Buffer::Mask, u64::from(mask_at) + u64::from(rows * cols), &[9.0]).unwrap();
    let op = Op::Prune {
        order,
        nm: WeightFormat::Sparse(NmRatio::new(n, m).unwrap()),
        rows,
        cols,
        src,
        dst,
        write_mask: true,
        mask: mask_at,
    };
    run(&mut mach, vec![Instruction::new(op)]);
    let what = format!("{order} {n}:{m} {rows}x{cols}");
    assert_bits(&mach.read_buffer(Buffer::Wgt, u64::from(dst), entries).unwrap(), &vals, &format!("{what} values"));
    assert_eq!(mach.read_buffer(Buffer::Idx, u64::from(dst), entries).unwrap(), idx, "{what} indices");
    assert_eq!(mach.read_buffer(Buffer::Mask, u64::from(mask_at), (rows * cols) as usize).unwrap(), mask, "{what} mask");
    assert_eq!(mach.read_buffer(Buffer::Wgt, u64::from(dst) - 1, 1).unwrap(), vec![7.0], "{what}: wrote before dst");
    assert_eq!(
        mach.read_buffer(Buffer::Wgt, u64::from(dst) + entries as u64, 1).unwrap(),
        vec![7.0],
        "{what}: wrote past the end"
    );
    assert_eq!(mach.read_buffer(Buffer::Mask, u64::from(mask_at + rows * cols), 1).unwrap(), vec![9.0], "{what}: mask overrun");
}

#[test]
fn top_n_reference_breaks_ties_to_the_earlier_index() {
    // The reference itself, by hand.
    assert_eq!(top_n(&[1.0, -1.0, 1.0, 0.5], 2), vec![0, 1]);
    assert_eq!(top_n(&[0.5, -3.0, 3.0, 2.0], 2), vec![1, 2]);
    assert_eq!(top_n(&[0.0; 8], 2), vec![0, 1]);
    assert_eq!(top_n(&[0.1, 0.2, -0.3, 0.0, 0.3, 0.0, 0.0, 0.0], 1), vec![2]);
}

#[test]
fn prune_ff_by_hand() {
    // 2 x 8 weight, 2:4 along rows.
    let w = [
        0.5, -3.0, 3.0, 2.0, /* */ 1.0, 1.0, -1.0, 0.0, /* row 1 */ 0.0, 0.0, 0.0, 0.0, /* */ 0.1, -0.2, 0.2, 0.3,
    ];
    let mut mach = machine();
    mach.write_buffer(Buffer::Master, 0, &w).unwrap();
    let ratio = WeightFormat::Sparse(NmRatio::new(2, 4).unwrap());
    let op = Op::Prune { order: PruneOrder::Ff, nm: ratio, rows: 2, cols: 8, src: 0, dst: 0, write_mask: true, mask: 0 };
    run(&mut mach, vec![Instruction::new(op)]);
    // Row 0: {-3, 3} at 1, 2; {1, 1} at 0, 1 (tie with -1 at 2 goes to the earlier). Row 1: {0, 0}
    // at 0, 1; {0.3, -0.2} at 1, 3 (|-0.2| = |0.2|: the earlier, index 1, wins).
    let vals = mach.read_buffer(Buffer::Wgt, 0, 8).unwrap();
    assert_bits(&vals, &[-3.0, 3.0, 1.0, 1.0, 0.0, 0.0, fp16(-0.2), fp16(0.3)], "values");
    assert_eq!(mach.read_buffer(Buffer::Idx, 0, 8).unwrap(), vec![1.0, 2.0, 0.0, 1.0, 0.0, 1.0, 1.0, 3.0]);
    let mask = mach.read_buffer(Buffer::Mask, 0, 16).unwrap();
    assert_eq!(mask, vec![0., 1., 1., 0., 1., 1., 0., 0., 1., 1., 0., 0., 0., 1., 0., 1.]);
}

#[test]
fn prune_bp_by_hand() {
    // 4 x 2 weight, 1:4 down each column (the nm.rs example): column 0 {1, 5, -7, 2} keeps -7 at
    // row 2; column 1 {9, 0, 3, 3} keeps 9 at row 0. Output: one compressed row per column.
    let w = [1.0, 9.0, 5.0, 0.0, -7.0, 3.0, 2.0, 3.0];
    let mut mach = machine();
    mach.write_buffer(Buffer::Master, 0, &w).unwrap();
    let ratio = WeightFormat::Sparse(NmRatio::new(1, 4).unwrap());
    let op = Op::Prune { order: PruneOrder::Bp, nm: ratio, rows: 4, cols: 2, src: 0, dst: 0, write_mask: true, mask: 0 };
    run(&mut mach, vec![Instruction::new(op)]);
    assert_eq!(mach.read_buffer(Buffer::Wgt, 0, 2).unwrap(), vec![-7.0, 9.0]);
    assert_eq!(mach.read_buffer(Buffer::Idx, 0, 2).unwrap(), vec![2.0, 0.0]);
    assert_eq!(mach.read_buffer(Buffer::Mask, 0, 8).unwrap(), vec![0., 1., 0., 0., 1., 0., 0., 0.]);
}

#[test]
fn prune_ff_matches_the_reference() {
    for (seed, (n, m, rows, cols)) in [(2, 4, 8, 8), (1, 4, 3, 12), (1, 8, 5, 16), (2, 8, 8, 16)].into_iter().enumerate() {
        check_prune(PruneOrder::Ff, n, m, rows, cols, seed as u64 + 1);
    }
}

#[test]
fn prune_bp_matches_the_reference() {
    for (seed, (n, m, rows, cols)) in [(2, 4, 8, 8), (1, 4, 12, 3), (1, 8, 16, 5), (2, 8, 16, 8)].into_iter().enumerate() {
        check_prune(PruneOrder::Bp, n, m, rows, cols, seed as u64 + 10);
    }
}

#[test]
fn prune_without_mask_leaves_the_mask_plane() {
    let mut mach = machine();
    mach.write_buffer(Buffer::Master, 0, &prune_weight(4, 8, 3)).unwrap();
    mach.write_buffer(Buffer::Mask, 0, &[5.0; 32]).unwrap();
    let ratio = WeightFormat::Sparse(NmRatio::new(2, 4).unwrap());
    let op = Op::Prune { order: PruneOrder::Ff, nm: ratio, rows: 4, cols: 8, src: 0, dst: 0, write_mask: false, mask: 0 };
    run(&mut mach, vec![Instruction::new(op)]);
    assert_eq!(mach.read_buffer(Buffer::Mask, 0, 32).unwrap(), vec![5.0; 32]);
}

// ---------------------------------------------------------------------------------------------
// WUVE

/// The documented update, one FP32 rounding per operation:
/// g = grad + wd*w; if pruned, g = g + lambda*w; v = mu*v + g; w = w - lr*v.
fn update_reference(w: &mut [f32], v: &mut [f32], grad: &[f32], pruned: &[bool], hyper: [f32; 4]) {
    let [lr, mu, wd, lambda] = hyper;
    for i in 0..w.len() {
        let wd_w = wd * w[i];
        let mut g = grad[i] + wd_w;
        if pruned[i] {
            let l_w = lambda * w[i];
            g += l_w;
        }
        let mu_v = mu * v[i];
        v[i] = mu_v + g;
        let lr_v = lr * v[i];
        w[i] -= lr_v;
    }
}

fn check_update(use_mask: bool) {
    const N: usize = 23; // not a multiple of the 4 lanes
    let (weight, momentum, grad, mask, hyper) = (5u32, 70u32, 33u32, 150u32, 200u32);
    let mut rng = Rng::new(if use_mask { 77 } else { 78 });
    let w0: Vec<f32> = (0..N).map(|_| rng.unit() * 2.0).collect();
    let v0: Vec<f32> = (0..N).map(|_| rng.unit() * 0.3).collect();
    let g: Vec<f32> = (0..N).map(|_| rng.unit() * 0.01).collect();
    let mask_bytes: Vec<f32> = (0..N).map(|i| if i % 3 == 0 { 0.0 } else { 1.0 }).collect();
    let h = [0.0125f32, 0.9, 5e-4, 0.37];
    let mut mach = machine();
    mach.write_buffer(Buffer::Master, u64::from(weight), &w0).unwrap();
    mach.write_buffer(Buffer::Master, u64::from(momentum), &v0).unwrap();
    mach.write_buffer(Buffer::Acc, u64::from(grad), &g).unwrap();
    mach.write_buffer(Buffer::Mask, u64::from(mask), &mask_bytes).unwrap();
    mach.write_buffer(Buffer::Master, u64::from(hyper), &h).unwrap();
    // Sentinels after the weights and the momentum.
    mach.write_buffer(Buffer::Master, u64::from(weight) + N as u64, &[42.0]).unwrap();
    mach.write_buffer(Buffer::Master, u64::from(momentum) + N as u64, &[43.0]).unwrap();
    let op = Op::Update { count: N as u32, weight, momentum, grad, use_mask, mask, hyper };
    run(&mut mach, vec![Instruction::new(op)]);
    let (mut w, mut v) = (w0.clone(), v0.clone());
    let pruned: Vec<bool> = mask_bytes.iter().map(|&b| use_mask && b == 0.0).collect();
    update_reference(&mut w, &mut v, &g, &pruned, h);
    assert_bits(&mach.read_buffer(Buffer::Master, u64::from(weight), N).unwrap(), &w, "weights");
    assert_bits(&mach.read_buffer(Buffer::Master, u64::from(momentum), N).unwrap(), &v, "momentum");
    assert_eq!(mach.read_buffer(Buffer::Master, u64::from(weight) + N as u64, 1).unwrap(), vec![42.0]);
    assert_eq!(mach.read_buffer(Buffer::Master, u64::from(momentum) + N as u64, 1).unwrap(), vec![43.0]);
    // The masked term matters for this data: the other setting gives different weights.
    let (mut w_other, mut v_other) = (w0, v0);
    let other: Vec<bool> = mask_bytes.iter().map(|&b| !use_mask && b == 0.0).collect();
    update_reference(&mut w_other, &mut v_other, &g, &other, h);
    assert!(w.iter().zip(&w_other).any(|(a, b)| a != b));
}

#[test]
fn update_matches_the_formula_with_mask() {
    check_update(true);
}

#[test]
fn update_matches_the_formula_without_mask() {
    check_update(false);
}

#[test]
fn update_by_hand() {
    // w = 2, v = 1, grad = 0.5, [lr, mu, wd, lambda] = [0.5, 0.5, 0.25, 1], mask 0 (pruned):
    // g = 0.5 + 0.25 * 2 = 1; + 1 * 2 = 3; v = 0.5 * 1 + 3 = 3.5; w = 2 - 0.5 * 3.5 = 0.25.
    // Element 1 is kept (mask 1): g = 1, v = 1.5, w = 2 - 0.75 = 1.25.
    let mut mach = machine();
    mach.write_buffer(Buffer::Master, 0, &[2.0, 2.0, 1.0, 1.0, 0.5, 0.5, 0.25, 1.0]).unwrap();
    mach.write_buffer(Buffer::Acc, 0, &[0.5, 0.5]).unwrap();
    mach.write_buffer(Buffer::Mask, 0, &[0.0, 1.0]).unwrap();
    let op = Op::Update { count: 2, weight: 0, momentum: 2, grad: 0, use_mask: true, mask: 0, hyper: 4 };
    run(&mut mach, vec![Instruction::new(op)]);
    assert_eq!(mach.read_buffer(Buffer::Master, 0, 4).unwrap(), vec![0.25, 1.25, 3.5, 1.5]);
}

// ---------------------------------------------------------------------------------------------
// Vector unit: element-wise

#[test]
fn copy_fp32_to_fp16_rounds_to_nearest_even() {
    let ulp = 2f32.powi(-10); // FP16 spacing just above 1
    let tiny = 2f32.powi(-24); // smallest FP16 subnormal
    let src = [
        1.0 + ulp / 2.0,    // halfway between 1 and 1 + ulp: to even, 1
        1.0 + 1.5 * ulp,    // halfway between 1 + ulp and 1 + 2 ulp: to even, 1 + 2 ulp
        1.0 + 0.5001 * ulp, // above halfway: 1 + ulp
        65519.0,            // below the halfway point to 65536: max finite 65504
        65520.0,            // halfway: to even, 65536, which overflows to infinity
        -70000.0,           // -inf
        tiny / 2.0,         // halfway between 0 and the smallest subnormal: to even, 0
        1.5 * tiny,         // halfway between 1 and 2 subnormal steps: to even, 2 steps
        0.1,                // not representable: nearest
        -1.0 / 3.0,
    ];
    let by_hand = [1.0, 1.0 + 2.0 * ulp, 1.0 + ulp, 65504.0, f32::INFINITY, f32::NEG_INFINITY, 0.0, 2.0 * tiny];
    let mut mach = machine();
    mach.write_buffer(Buffer::Acc, 0, &src).unwrap();
    run(&mut mach, vec![vec_op(VecOp::Copy, src.len() as u32, (Buffer::Act, 3), (Buffer::Acc, 0), (Buffer::Acc, 0), [0; 4])]);
    let got = mach.read_buffer(Buffer::Act, 3, src.len()).unwrap();
    assert_bits(&got[..by_hand.len()], &by_hand, "by hand");
    let via_half: Vec<f32> = src.iter().map(|&v| fp16(v)).collect();
    assert_bits(&got, &via_half, "via half");
    // Back to FP32 is exact.
    run(&mut mach, vec![vec_op(VecOp::Copy, src.len() as u32, (Buffer::Master, 0), (Buffer::Act, 3), (Buffer::Acc, 0), [0; 4])]);
    assert_bits(&mach.read_buffer(Buffer::Master, 0, src.len()).unwrap(), &via_half, "back to FP32");
}

#[test]
fn add_relu_and_relu_grad() {
    let a = [1.5f32, -2.25, 1e-8, 3e7, -0.5, 0.0, 2.0, 7.0];
    let b = [0.25f32, 2.25, 1.0, 1.0, 8.0, 6.0, -3.0, 0.125];
    let mut mach = machine();
    mach.write_buffer(Buffer::Acc, 0, &a).unwrap();
    mach.write_buffer(Buffer::Master, 0, &b).unwrap();
    let n = a.len() as u32;
    run(
        &mut mach,
        vec![
            vec_op(VecOp::Add, n, (Buffer::Acc, 100), (Buffer::Acc, 0), (Buffer::Master, 0), [0; 4]),
            vec_op(VecOp::Add, n, (Buffer::Act, 100), (Buffer::Acc, 0), (Buffer::Master, 0), [0; 4]),
            vec_op(VecOp::Relu, n, (Buffer::Acc, 200), (Buffer::Acc, 0), (Buffer::Acc, 0), [0; 4]),
            vec_op(VecOp::ReluGrad, n, (Buffer::Acc, 300), (Buffer::Acc, 0), (Buffer::Master, 0), [0; 4]),
        ],
    );
    // FP32 sums by hand: 1 + 1e-8 rounds to 1; 3e7 + 1 is a tie between 3e7 and 3e7 + 2 (spacing
    // 2 above 2^24), to even: 3e7.
    let sum = [1.75f32, 0.0, 1.0, 3e7, 7.5, 6.0, -1.0, 7.125];
    assert_bits(&mach.read_buffer(Buffer::Acc, 100, 8).unwrap(), &sum, "add");
    // Into FP16: 3e7 overflows to infinity, 7.125 is exact, the rest as above.
    let sum16 = [1.75f32, 0.0, 1.0, f32::INFINITY, 7.5, 6.0, -1.0, 7.125];
    assert_bits(&mach.read_buffer(Buffer::Act, 100, 8).unwrap(), &sum16, "add into FP16");
    assert_bits(&mach.read_buffer(Buffer::Acc, 200, 8).unwrap(), &[1.5, 0.0, 1e-8, 3e7, 0.0, 0.0, 2.0, 7.0], "relu");
    // relu_grad passes b where a > 0 (0 itself blocks).
    assert_bits(&mach.read_buffer(Buffer::Acc, 300, 8).unwrap(), &[0.25, 0.0, 1.0, 1.0, 0.0, 0.0, -3.0, 0.125], "relu_grad");
}

// ---------------------------------------------------------------------------------------------
// Vector unit: pooling

/// Plane 0 (4 x 4); plane 1 is plane 0 + 10.
const PLANE: [f32; 16] = [
    9.0, 5.0, 2.0, 0.0, //
    3.0, -1.0, 5.0, 4.0, //
    0.0, 2.0, 7.0, 7.0, //
    8.0, 1.0, -2.0, 3.0,
];

fn two_planes() -> Vec<f32> {
    PLANE.iter().copied().chain(PLANE.iter().map(|v| v + 10.0)).collect()
}

/// Runs one pooling op over 2 planes of 4 x 4 at acc 0 with `dy` at acc 100; output at acc 200.
fn pool(op: VecOp, k: u32, s: u32, dy: &[f32], out_len: usize) -> Vec<f32> {
    let mut mach = machine();
    mach.write_buffer(Buffer::Acc, 0, &two_planes()).unwrap();
    mach.write_buffer(Buffer::Acc, 100, dy).unwrap();
    run(&mut mach, vec![vec_op(op, 2, (Buffer::Acc, 200), (Buffer::Acc, 0), (Buffer::Acc, 100), [4, 4, k, s])]);
    mach.read_buffer(Buffer::Acc, 200, out_len).unwrap()
}

#[test]
fn maxpool_and_its_gradient() {
    // Window 2, stride 2: windows {9,5,3,-1} -> 9 at (0,0); {2,0,5,4} -> 5 at (1,2);
    // {0,2,8,1} -> 8 at (3,0); {7,7,-2,3} -> 7, first at (2,2).
    assert_eq!(pool(VecOp::MaxPool, 2, 2, &[], 8), vec![9., 5., 8., 7., 19., 15., 18., 17.]);
    let dy = [1., 2., 3., 4., 10., 20., 30., 40.];
    let mut g = vec![0f32; 32];
    for (plane, scale) in [(0, 1.0), (1, 10.0)] {
        for (cell, d) in [(0, 1.0), (4 + 2, 2.0), (12, 3.0), (8 + 2, 4.0)] {
            g[plane * 16 + cell] = d * scale;
        }
    }
    assert_eq!(pool(VecOp::MaxPoolGrad, 2, 2, &dy, 32), g);
    // Window 3, stride 1 (output 2 x 2, overlapping windows): rows 0-2 x cols 0-2 -> 9 at (0,0);
    // rows 0-2 x cols 1-3 -> 7, first at (2,2); rows 1-3 x cols 0-2 -> 8 at (3,0);
    // rows 1-3 x cols 1-3 -> 7, first at (2,2). The gradient at (2,2) collects dy 2 + 4.
    assert_eq!(pool(VecOp::MaxPool, 3, 1, &[], 8), vec![9., 7., 8., 7., 19., 17., 18., 17.]);
    let mut g = vec![0f32; 32];
    for (plane, scale) in [(0, 1.0), (1, 10.0)] {
        g[plane * 16] = scale;
        g[plane * 16 + 10] = 6.0 * scale;
        g[plane * 16 + 12] = 3.0 * scale;
    }
    assert_eq!(pool(VecOp::MaxPoolGrad, 3, 1, &dy, 32), g);
}

#[test]
fn avgpool_and_its_gradient() {
    // Window 2, stride 2: sums 16, 11, 11, 15 over 4: 4, 2.75, 2.75, 3.75 (plane 1: + 10).
    assert_eq!(pool(VecOp::AvgPool, 2, 2, &[], 8), vec![4., 2.75, 2.75, 3.75, 14., 12.75, 12.75, 13.75]);
    // Window 3, stride 1: sums 32, 31, 23, 26 (plane 1: + 90) over 9, one FP32 division each.
    let want: Vec<f32> = [32f32, 31., 23., 26., 122., 121., 113., 116.].iter().map(|s| s / 9.0).collect();
    assert_bits(&pool(VecOp::AvgPool, 3, 1, &[], 8), &want, "avgpool 3/1");
    // Gradient, window 2 stride 2: each output's dy / 4 spreads over its own 2 x 2 block.
    let dy = [1., 2., 3., 4., 4., 8., 12., 16.];
    #[rustfmt::skip]
    let plane0 = [0.25, 0.25, 0.5, 0.5, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0, 1.0, 0.75, 0.75, 1.0, 1.0];
    let want: Vec<f32> = plane0.iter().copied().chain(plane0.iter().map(|v| v * 4.0)).collect();
    assert_eq!(pool(VecOp::AvgPoolGrad, 2, 2, &dy, 32), want);
    // Window 3, stride 1, dy = 9, 18, 27, 36 (shares 1, 2, 3, 4): each cell sums the shares of
    // the windows covering it (window (0,0) covers rows 0-2 x cols 0-2, and so on).
    let dy = [9., 18., 27., 36., 0., 0., 0., 9.];
    #[rustfmt::skip]
    let plane0 = [1., 3., 3., 2., 4., 10., 10., 6., 4., 10., 10., 6., 3., 7., 7., 4.];
    #[rustfmt::skip]
    let plane1 = [0., 0., 0., 0., 0., 1., 1., 1., 0., 1., 1., 1., 0., 1., 1., 1.];
    let want: Vec<f32> = plane0.iter().chain(&plane1).copied().collect();
    assert_eq!(pool(VecOp::AvgPoolGrad, 3, 1, &dy, 32), want);
}

#[test]
fn pooling_reads_planes_as_p0_rows_of_p1() {
    // The same 8 values 1..=8 as a 2 x 4, a 4 x 2 and (first 6) a 2 x 3 plane; window 2, stride 2.
    let mut mach = machine();
    mach.write_buffer(Buffer::Acc, 0, &[1., 2., 3., 4., 5., 6., 7., 8.]).unwrap();
    let p = |op, dst, dims| vec_op(op, 1, (Buffer::Acc, dst), (Buffer::Acc, 0), (Buffer::Acc, 0), dims);
    run(
        &mut mach,
        vec![
            p(VecOp::MaxPool, 100, [2, 4, 2, 2]),
            p(VecOp::AvgPool, 110, [2, 4, 2, 2]),
            p(VecOp::MaxPool, 120, [4, 2, 2, 2]),
            p(VecOp::AvgPool, 130, [4, 2, 2, 2]),
            p(VecOp::MaxPool, 140, [2, 3, 2, 2]),
            p(VecOp::AvgPool, 150, [2, 3, 2, 2]),
        ],
    );
    // 2 x 4: rows [1 2 3 4] [5 6 7 8]; windows {1,2,5,6} and {3,4,7,8}.
    assert_eq!(mach.read_buffer(Buffer::Acc, 100, 2).unwrap(), vec![6.0, 8.0]);
    assert_eq!(mach.read_buffer(Buffer::Acc, 110, 2).unwrap(), vec![3.5, 5.5]);
    // 4 x 2: rows [1 2] [3 4] [5 6] [7 8]; windows {1,2,3,4} and {5,6,7,8}.
    assert_eq!(mach.read_buffer(Buffer::Acc, 120, 2).unwrap(), vec![4.0, 8.0]);
    assert_eq!(mach.read_buffer(Buffer::Acc, 130, 2).unwrap(), vec![2.5, 6.5]);
    // 2 x 3: rows [1 2 3] [4 5 6]; one window {1,2,4,5} (the last column is dropped); the
    // element after the 1 x 1 output stays untouched.
    assert_eq!(mach.read_buffer(Buffer::Acc, 140, 2).unwrap(), vec![5.0, 0.0]);
    assert_eq!(mach.read_buffer(Buffer::Acc, 150, 2).unwrap(), vec![3.0, 0.0]);
}

// ---------------------------------------------------------------------------------------------
// Vector unit: softmax cross-entropy

#[test]
fn softmax_xent_matches_f64() {
    let logits: [[f32; 4]; 3] = [[1.0, 2.0, 0.5, -1.0], [100.0, 80.0, 100.0, 99.0], [-3.0, -3.0, -3.0, -3.0]];
    let labels = [2usize, 0, 3];
    let (rows, classes) = (logits.len(), 4);
    let mut mach = machine();
    let flat: Vec<f32> = logits.iter().flatten().copied().collect();
    mach.write_buffer(Buffer::Acc, 10, &flat).unwrap();
    mach.write_buffer(Buffer::Master, 20, &labels.map(|l| l as f32)).unwrap();
    run(
        &mut mach,
        vec![vec_op(VecOp::SoftmaxXent, 3, (Buffer::Acc, 100), (Buffer::Acc, 10), (Buffer::Master, 20), [4, 0, 0, 0])],
    );
    let out = mach.read_buffer(Buffer::Acc, 100, rows * classes + 1).unwrap();
    let mut loss = 0f64;
    for (r, row) in logits.iter().enumerate() {
        let x: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
        let mx = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = x.iter().map(|v| (v - mx).exp()).sum();
        for c in 0..classes {
            let want = ((x[c] - mx).exp() / sum - if c == labels[r] { 1.0 } else { 0.0 }) / rows as f64;
            let got = f64::from(out[r * classes + c]);
            assert!((got - want).abs() < 1e-6, "grad[{r}][{c}] = {got}, want {want}");
        }
        loss += sum.ln() + mx - x[labels[r]];
    }
    loss /= rows as f64;
    let got = f64::from(out[rows * classes]);
    assert!((got - loss).abs() < 1e-6, "loss = {got}, want {loss}");
    // Row 2 is uniform: gradient (1/4 - onehot) / 3 exactly up to the spec's exp; loss ln 4 there.
    assert!((f64::from(out[8]) - 0.25 / 3.0).abs() < 1e-7);
}

// ---------------------------------------------------------------------------------------------
// GEMM

/// Sequential FP32 reference: out[r][c] = start + sum over k, in increasing k, of x[r][k] * w[c][k].
fn gemm_reference(x: &[f32], w_dense_t: &[f32], start: &[f32], rows: usize, cols: usize, depth: usize) -> Vec<f32> {
    let mut out = start.to_vec();
    for r in 0..rows {
        for c in 0..cols {
            let mut acc = out[r * cols + c];
            for k in 0..depth {
                let p = x[r * depth + k] * w_dense_t[c * depth + k];
                acc += p;
            }
            out[r * cols + c] = acc;
        }
    }
    out
}

#[test]
fn sparse_gemm_after_prune_is_the_masked_dense_gemm() {
    // W is C_out = 6 x K = 16; FF 2:4 prune, then out[5 x 6] = x[5 x 16] . W^T, WS and OS.
    let (rows, cols, depth) = (5usize, 6usize, 16usize);
    let mut rng = Rng::new(5);
    let w: Vec<f32> = (0..cols * depth).map(|_| rng.unit()).collect();
    let x: Vec<f32> = (0..rows * depth).map(|_| fp16(rng.unit() * 4.0)).collect();
    let start: Vec<f32> = (0..rows * cols).map(|_| rng.unit() * 100.0).collect();
    // The masked dense weight, rounded to FP16 like the compressed values.
    let (_, _, mask) = prune_reference(&w, cols, depth, 2, 4, false);
    let masked: Vec<f32> = w.iter().zip(&mask).map(|(&v, &k)| if k == 1.0 { fp16(v) } else { 0.0 }).collect();
    let ratio = WeightFormat::Sparse(NmRatio::new(2, 4).unwrap());
    for (dataflow, interleave, accumulate) in [(Dataflow::Ws, 1, false), (Dataflow::Os, 2, true), (Dataflow::Os, 1, false)] {
        let mut mach = machine();
        mach.write_buffer(Buffer::Master, 0, &w).unwrap();
        mach.write_buffer(Buffer::Act, 0, &x).unwrap();
        mach.write_buffer(Buffer::Acc, 0, &start).unwrap();
        let prune = Op::Prune {
            order: PruneOrder::Ff,
            nm: ratio,
            rows: cols as u32,
            cols: depth as u32,
            src: 0,
            dst: 0,
            write_mask: false,
            mask: 0,
        };
        let gemm = Op::Gemm {
            dataflow,
            weights: ratio,
            accumulate,
            interleave,
            rows: rows as u32,
            cols: cols as u32,
            depth: depth as u32,
            input: 0,
            weight: 0,
            output: 0,
            input_t: false,
            weight_t: false,
        };
        run(&mut mach, vec![Instruction::new(prune).signal(1), Instruction::new(gemm).wait(1)]);
        let zeros = vec![0f32; rows * cols];
        let want = gemm_reference(&x, &masked, if accumulate { &start } else { &zeros }, rows, cols, depth);
        assert_bits(&mach.read_buffer(Buffer::Acc, 0, rows * cols).unwrap(), &want, &format!("{dataflow} acc={accumulate}"));
    }
}

#[test]
fn dense_gemm_is_the_sequential_sum() {
    // Inputs chosen so the summation order matters: large and small terms alternate.
    let (rows, cols, depth) = (3usize, 5usize, 9usize);
    let mut rng = Rng::new(9);
    let x: Vec<f32> = (0..rows * depth).map(|i| fp16(if i % 2 == 0 { 1000.0 } else { 0.001 } * rng.unit())).collect();
    let w: Vec<f32> = (0..cols * depth).map(|_| fp16(rng.unit())).collect();
    let mut mach = machine();
    mach.write_buffer(Buffer::Act, 40, &x).unwrap();
    mach.write_buffer(Buffer::Wgt, 7, &w).unwrap();
    let op = Op::Gemm {
        dataflow: Dataflow::Ws,
        weights: WeightFormat::Dense,
        accumulate: false,
        interleave: 1,
        rows: rows as u32,
        cols: cols as u32,
        depth: depth as u32,
        input: 40,
        weight: 7,
        output: 3,
        input_t: false,
        weight_t: false,
    };
    mach.write_buffer(Buffer::Acc, 3, &[123.0; 15]).unwrap();
    run(&mut mach, vec![Instruction::new(op)]);
    let want = gemm_reference(&x, &w, &[0.0; 15], rows, cols, depth);
    assert_bits(&mach.read_buffer(Buffer::Acc, 3, rows * cols).unwrap(), &want, "dense gemm");
}

// ---------------------------------------------------------------------------------------------
// DMA round trips

#[test]
fn fp16_dram_round_trip() {
    let halves = [
        f16::from_f32(1.0),
        f16::from_f32(-2.5),
        f16::MAX,
        f16::NEG_INFINITY,
        f16::from_bits(0x0001), // smallest subnormal
        f16::NEG_ZERO,
        f16::from_f32(1.0 / 3.0),
        f16::from_bits(0x03ff), // largest subnormal
        f16::from_f32(-1e-3),
    ];
    let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    let n = halves.len() as u32;
    let mut mach = machine();
    mach.write_dram(0x1000, &bytes).unwrap();
    let load = Op::Load {
        buf: Buffer::Act,
        sram: 10,
        dram: 0x1000,
        rows: 1,
        cols: n,
        dram_row_stride: n,
        dram_col_stride: 1,
        sram_row_stride: n,
    };
    let store = Op::Store {
        buf: Buffer::Act,
        sram: 10,
        dram: 0x2000,
        rows: 1,
        cols: n,
        dram_row_stride: n,
        dram_col_stride: 1,
        sram_row_stride: n,
    };
    let r = run(&mut mach, vec![Instruction::new(load).signal(1), Instruction::new(store).wait(1)]);
    let want: Vec<f32> = halves.iter().map(|h| h.to_f32()).collect();
    assert_bits(&mach.read_buffer(Buffer::Act, 10, halves.len()).unwrap(), &want, "loaded");
    assert_eq!(mach.read_dram(0x2000, bytes.len()).unwrap(), bytes);
    // 18 bytes from an aligned address: 2 bursts each way.
    assert_eq!((r.dram_read_bytes, r.dram_write_bytes), (32, 32));
    // A value written by the host rounds on the way in and goes out as its FP16 bits.
    mach.write_buffer(Buffer::Act, 0, &[0.1, 65519.0]).unwrap();
    let store = Op::Store {
        buf: Buffer::Act,
        sram: 0,
        dram: 0x3000,
        rows: 1,
        cols: 2,
        dram_row_stride: 2,
        dram_col_stride: 1,
        sram_row_stride: 2,
    };
    run(&mut mach, vec![Instruction::new(store)]);
    let want: Vec<u8> = [f16::from_f32(0.1), f16::MAX].iter().flat_map(|h| h.to_le_bytes()).collect();
    assert_eq!(mach.read_dram(0x3000, 4).unwrap(), want);
}

#[test]
fn strided_2d_transfers() {
    // A 3 x 5 FP16 matrix M[r][c] = 10 r + c, row-major at 0x4000.
    let m: Vec<f32> = (0..15).map(|i| (10 * (i / 5) + i % 5) as f32).collect();
    let bytes: Vec<u8> = m.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect();
    let mut mach = machine();
    mach.write_dram(0x4000, &bytes).unwrap();
    mach.write_buffer(Buffer::Act, 100, &[-1.0; 12]).unwrap();
    // The 2 x 3 block at (1, 1) into act rows 4 apart from 100; then column 2 into act 120..123.
    let block = Op::Load {
        buf: Buffer::Act,
        sram: 100,
        dram: 0x4000 + (5 + 1) * 2,
        rows: 2,
        cols: 3,
        dram_row_stride: 5,
        dram_col_stride: 1,
        sram_row_stride: 4,
    };
    let column = Op::Load {
        buf: Buffer::Act,
        sram: 120,
        dram: 0x4000 + 2 * 2,
        rows: 1,
        cols: 3,
        dram_row_stride: 0,
        dram_col_stride: 5,
        sram_row_stride: 0,
    };
    // Store the block transposed: element (r, c) to DRAM element 2 c + r at 0x5000.
    let transposed = Op::Store {
        buf: Buffer::Act,
        sram: 100,
        dram: 0x5000,
        rows: 2,
        cols: 3,
        dram_row_stride: 1,
        dram_col_stride: 2,
        sram_row_stride: 4,
    };
    run(&mut mach, vec![Instruction::new(block).signal(1), Instruction::new(column), Instruction::new(transposed).wait(1)]);
    assert_eq!(mach.read_buffer(Buffer::Act, 100, 8).unwrap(), vec![11., 12., 13., -1., 21., 22., 23., -1.]);
    assert_eq!(mach.read_buffer(Buffer::Act, 120, 3).unwrap(), vec![2., 12., 22.]);
    let back = mach.read_dram(0x5000, 12).unwrap();
    let back: Vec<f32> = back.chunks(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
    assert_eq!(back, vec![11., 21., 12., 22., 13., 23.]);
}

#[test]
fn fp32_and_byte_plane_round_trips() {
    let mut mach = machine();
    // FP32 accumulators go out as 4-byte little-endian words, exactly.
    let vals = [0.1f32, -3.5e-30, 1e30, f32::MIN_POSITIVE / 4.0];
    mach.write_buffer(Buffer::Acc, 0, &vals).unwrap();
    // Byte planes: one byte per element.
    let idx = [0u8, 1, 7, 255];
    mach.write_dram(0x100, &idx).unwrap();
    let row = |load: bool, buf, sram, dram| {
        let (rows, cols, dram_row_stride, dram_col_stride, sram_row_stride) = (1, 4, 4, 1, 4);
        Instruction::new(if load {
            Op::Load { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride }
        } else {
            Op::Store { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride }
        })
    };
    let r = run(
        &mut mach,
        vec![
            row(false, Buffer::Acc, 0, 0x200).signal(3),
            row(true, Buffer::Idx, 8, 0x100).signal(1),
            row(true, Buffer::Mask, 8, 0x100).signal(2),
            row(false, Buffer::Idx, 8, 0x300).wait(1),
            row(false, Buffer::Mask, 8, 0x400).wait(2),
            row(true, Buffer::Master, 0, 0x200).wait(3),
        ],
    );
    let want: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(mach.read_dram(0x200, 16).unwrap(), want);
    assert_bits(&mach.read_buffer(Buffer::Master, 0, 4).unwrap(), &vals, "FP32 back");
    assert_eq!(mach.read_buffer(Buffer::Idx, 8, 4).unwrap(), vec![0., 1., 7., 255.]);
    assert_eq!(mach.read_buffer(Buffer::Mask, 8, 4).unwrap(), vec![0., 1., 7., 255.]);
    assert_eq!(mach.read_dram(0x300, 4).unwrap(), idx);
    assert_eq!(mach.read_dram(0x400, 4).unwrap(), idx);
    // Bus bytes: 16-byte bursts: the FP32 rows are one burst each, the byte rows one each.
    assert_eq!((r.dram_read_bytes, r.dram_write_bytes), (3 * 16, 3 * 16));
}
