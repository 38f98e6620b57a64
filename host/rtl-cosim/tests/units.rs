//! Co-simulation of the SORE, the WUVE and the vector unit on the Verilated machine against the
//! simulator: `prune` in FF and BP order for every supported ratio (with and without the mask,
//! values that exercise the FP16 rounding of the kept weights: ties, subnormals, overflow,
//! NaN), `update` with and without the SR-STE term, back to back and after a prune, the
//! element-wise `vec` ops (with GELU and its gradient) between every pair of buffer types,
//! `softmax_xent`, `softmax` and `softmax_grad` for rows shorter, as long as and longer than
//! the lanes, from and to every buffer type, max and average pooling and their gradients over
//! many geometries (with windows whose rows share the banks of the buffer they walk), and the four normalization ops per column and per row; and that the machine
//! raises its `unsupported` flag on what `satkit_hw::rtl::unsupported` lists. Compared: every element of the
//! buffers, bit for bit, and every instruction's start and end cycle. A mismatch names the
//! buffer element or the instruction.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use satkit_hw::isa::{Buffer, Instruction, Op, Program, PruneOrder, VecOp, WeightFormat};
use satkit_hw::operands::pool_dims;
use satkit_hw::NmRatio;
use satkit_rtl_cosim::{compare_timing, CosimMachine};
use satkit_sim::{Machine, Mode};

/// Buffer regions the tests write and compare.
const REGION: usize = 2048;
const BUFFERS: [Buffer; 6] = [Buffer::Act, Buffer::Wgt, Buffer::Idx, Buffer::Acc, Buffer::Master, Buffer::Mask];

/// A master-weight value: mostly moderate, sometimes one that tests FP16 rounding or the
/// magnitude order (exact FP16 ties, FP16 subnormals, beyond 65504, signed zeros, equal
/// magnitudes, infinities and NaN).
fn master_value(rng: &mut ChaCha8Rng, specials: f64) -> f32 {
    if rng.gen_bool(specials) {
        let tie = f32::from_bits(0x3f80_1000); // 1 + 2^-11: halfway between two FP16 values
        let pick = [
            tie,
            -tie,
            f32::from_bits(0x3f80_3000), // halfway, rounds up to even
            3.0e-6,                      // an FP16 subnormal
            -6.0e-8,                     // below half the smallest FP16 subnormal
            65519.0,                     // rounds down to 65504
            65520.0,                     // rounds to infinity
            1.0e30,
            0.0,
            -0.0,
            2.5,
            -2.5,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        return pick[rng.gen_range(0..pick.len())];
    }
    rng.gen_range(-4.0f32..4.0)
}

/// Fills the compared regions of both sides with the same random contents.
fn fill(rtl: &mut CosimMachine, sim: &mut Machine, rng: &mut ChaCha8Rng, specials: f64) {
    for b in BUFFERS {
        let values: Vec<f32> = (0..REGION)
            .map(|_| match b {
                Buffer::Idx => rng.gen_range(0..16) as f32,
                Buffer::Mask => rng.gen_range(0..2) as f32,
                Buffer::Master | Buffer::Acc => master_value(rng, specials),
                Buffer::Act | Buffer::Wgt => rng.gen_range(-300.0f32..300.0),
            })
            .collect();
        rtl.write_buffer(b, 0, &values).unwrap();
        sim.write_buffer(b, 0, &values).unwrap();
    }
}

/// Runs `program` on both sides from the same buffers and compares buffers and timing.
fn check(rtl: &mut CosimMachine, program: &Program, seed: u64, specials: f64) -> Result<(), String> {
    check_with(rtl, program, seed, specials, &[])
}

/// [`check`], with `values` written at `(buffer, address)` after the random contents (labels).
fn check_with(
    rtl: &mut CosimMachine,
    program: &Program,
    seed: u64,
    specials: f64,
    values: &[(Buffer, u64, Vec<f32>)],
) -> Result<(), String> {
    let arch = rtl.arch().clone();
    let mut sim = Machine::new(&arch, Mode::Functional);
    sim.record_instructions(true);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    fill(rtl, &mut sim, &mut rng, specials);
    for (buffer, at, v) in values {
        rtl.write_buffer(*buffer, *at, v).unwrap();
        sim.write_buffer(*buffer, *at, v).unwrap();
    }
    let report = sim.run(program).map_err(|e| format!("simulator: {e}"))?;
    let run = rtl.run(program).map_err(|e| format!("RTL: {e}"))?;
    for b in BUFFERS {
        let (r, s) = (rtl.read_buffer(b, 0, REGION).unwrap(), sim.read_buffer(b, 0, REGION).unwrap());
        if let Some(i) = r.iter().zip(&s).position(|(x, y)| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan())) {
            return Err(format!(
                "{b} element {i}: RTL {:e} ({:#x}), simulator {:e} ({:#x})",
                r[i],
                r[i].to_bits(),
                s[i],
                s[i].to_bits()
            ));
        }
    }
    compare_timing(&report, &run, program)
}

fn prune(order: PruneOrder, ratio: NmRatio, rows: u32, cols: u32, write_mask: bool) -> Op {
    Op::Prune { order, nm: WeightFormat::Sparse(ratio), rows, cols, src: 17, dst: 5, write_mask, mask: 9 }
}

fn update(count: u32, use_mask: bool) -> Op {
    Op::Update { count, weight: 700, momentum: 1300, grad: 33, use_mask, mask: 100, hyper: 1900 }
}

/// A `vec` instruction with its operands as `(buffer, address)` pairs and parameters `p`.
fn vec_insn(op: VecOp, count: u32, dst: (Buffer, u32), a: (Buffer, u32), b: (Buffer, u32), p: [u32; 4]) -> Op {
    let [p0, p1, p2, p3] = p;
    Op::Vec { op, count, dst_buf: dst.0, dst: dst.1, a_buf: a.0, a: a.1, b_buf: b.0, b: b.1, p0, p1, p2, p3 }
}

/// An element-wise op over `count` elements.
fn vec_op(op: VecOp, count: u32, dst: (Buffer, u32), a: (Buffer, u32), b: (Buffer, u32)) -> Op {
    vec_insn(op, count, dst, a, b, [0; 4])
}

/// The element-wise vector ops.
const ELEMENTWISE: [VecOp; 6] = [VecOp::Copy, VecOp::Add, VecOp::Relu, VecOp::ReluGrad, VecOp::Gelu, VecOp::GeluGrad];

fn softmax_xent(rows: u32, classes: u32, dst: (Buffer, u32), logits: (Buffer, u32), labels: (Buffer, u32)) -> Op {
    row_op(VecOp::SoftmaxXent, rows, classes, dst, logits, labels)
}

/// A softmax-family op over `rows` rows of `cols`.
fn row_op(op: VecOp, rows: u32, cols: u32, dst: (Buffer, u32), a: (Buffer, u32), b: (Buffer, u32)) -> Op {
    vec_insn(op, rows, dst, a, b, [cols, 0, 0, 0])
}

fn machine() -> CosimMachine {
    CosimMachine::new().expect("the Verilated machine resolves its ports")
}

#[test]
fn prune_in_both_orders_for_every_supported_ratio() {
    let mut rtl = machine();
    let ratios = rtl.arch().array.supported_nm.clone();
    for (k, ratio) in ratios.iter().enumerate() {
        let m = ratio.m;
        for (order, rows, cols) in
            [(PruneOrder::Ff, 3, 2 * m), (PruneOrder::Ff, 7, m), (PruneOrder::Bp, 2 * m, 5), (PruneOrder::Bp, m, 9)]
        {
            for write_mask in [false, true] {
                let p = Program { insns: vec![Instruction::new(prune(order, *ratio, rows, cols, write_mask))] };
                check(&mut rtl, &p, 10 * k as u64 + u64::from(rows), 0.0)
                    .unwrap_or_else(|e| panic!("{ratio} {order} {rows}x{cols}: {e}"));
            }
        }
    }
}

#[test]
fn pruned_weights_round_to_fp16_as_the_simulator_does() {
    let mut rtl = machine();
    let ratio = rtl.arch().array.supported_nm[0];
    for seed in 0..12 {
        let p = Program { insns: vec![Instruction::new(prune(PruneOrder::Ff, ratio, 16, 4 * ratio.m, true))] };
        check(&mut rtl, &p, 100 + seed, 0.5).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

#[test]
fn updates_with_and_without_the_srste_term() {
    let mut rtl = machine();
    for (seed, count) in [1u32, 3, 4, 5, 17, 64, 203].into_iter().enumerate() {
        for use_mask in [false, true] {
            let p = Program { insns: vec![Instruction::new(update(count, use_mask))] };
            check(&mut rtl, &p, 200 + seed as u64, 0.0).unwrap_or_else(|e| panic!("{count} use_mask {use_mask}: {e}"));
        }
    }
}

/// Momenta at every distance from the weights modulo `master`'s banks: the new momenta are
/// written 0, 1 or 2 cycles behind the new weights (`ArchConfig::wuve_momentum_delay`), on
/// banks apart from theirs, and the update ends that much later, in both.
#[test]
fn updates_delay_their_momenta_off_the_weights_banks() {
    let mut rtl = machine();
    let arch = rtl.arch().clone();
    let banks = arch.buffers.master_banks;
    let mut delays = Vec::new();
    for d in 0..banks {
        let (weight, momentum) = (700, 1300 + d);
        delays.push(arch.wuve_momentum_delay(weight.into(), momentum.into()));
        let upd = Op::Update { count: 17, weight, momentum, grad: 33, use_mask: d % 2 == 0, mask: 100, hyper: 1900 };
        let p = Program { insns: vec![Instruction::new(upd)] };
        check(&mut rtl, &p, 400 + u64::from(d), 0.0).unwrap_or_else(|e| panic!("momenta {d} further: {e}"));
    }
    for j in 0..=2 {
        assert!(delays.contains(&j), "no distance needs a delay of {j}: {delays:?}");
    }
}

#[test]
fn empty_prunes_and_updates_take_the_simulators_cycles() {
    let mut rtl = machine();
    let ratio = rtl.arch().array.supported_nm[0];
    let p = Program {
        insns: vec![
            Instruction::new(prune(PruneOrder::Ff, ratio, 0, ratio.m, false)),
            Instruction::new(update(0, false)),
            Instruction::new(update(2, true)),
        ],
    };
    check(&mut rtl, &p, 300, 0.0).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn prune_then_update_then_prune_synchronized() {
    let mut rtl = machine();
    let ratio = rtl.arch().array.supported_nm[0];
    let m = ratio.m;
    // Prune the master weight at 700 (FF, writing its mask at 100), update it with that mask
    // (the SR-STE term), then prune the updated weight in BP order.
    let first = Op::Prune {
        order: PruneOrder::Ff,
        nm: WeightFormat::Sparse(ratio),
        rows: 4,
        cols: 2 * m,
        src: 700,
        dst: 5,
        write_mask: true,
        mask: 100,
    };
    let upd = Op::Update { count: 8 * m, weight: 700, momentum: 1300, grad: 33, use_mask: true, mask: 100, hyper: 1900 };
    let again = Op::Prune {
        order: PruneOrder::Bp,
        nm: WeightFormat::Sparse(ratio),
        rows: 2 * m,
        cols: 4,
        src: 700,
        dst: 300,
        write_mask: false,
        mask: 0,
    };
    let p = Program {
        insns: vec![Instruction::new(first).signal(1), Instruction::new(upd).wait(1).signal(2), Instruction::new(again).wait(2)],
    };
    check(&mut rtl, &p, 400, 0.0).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn elementwise_vector_ops_between_every_pair_of_buffer_types() {
    let mut rtl = machine();
    let mut seed = 500;
    for op in ELEMENTWISE {
        for (k, &a) in BUFFERS.iter().enumerate() {
            // Each source once as `a`, paired with a rotating `b` and destination.
            let b = BUFFERS[(k + 2) % BUFFERS.len()];
            for dst in BUFFERS {
                let p = Program { insns: vec![Instruction::new(vec_op(op, 37, (dst, 1000), (a, 3), (b, 60)))] };
                seed += 1;
                check(&mut rtl, &p, seed, 0.3).unwrap_or_else(|e| panic!("{op} {a} {b} -> {dst}: {e}"));
            }
        }
    }
}

#[test]
fn vector_ops_in_place_back_to_back_and_empty() {
    let mut rtl = machine();
    let p = Program {
        insns: vec![
            Instruction::new(vec_op(VecOp::Relu, 64, (Buffer::Acc, 0), (Buffer::Acc, 0), (Buffer::Acc, 0))),
            Instruction::new(vec_op(VecOp::Add, 5, (Buffer::Act, 7), (Buffer::Acc, 0), (Buffer::Master, 9))),
            Instruction::new(vec_op(VecOp::Copy, 0, (Buffer::Act, 7), (Buffer::Acc, 0), (Buffer::Acc, 0))),
            Instruction::new(vec_op(VecOp::ReluGrad, 1, (Buffer::Mask, 4), (Buffer::Master, 2), (Buffer::Acc, 5))),
        ],
    };
    check(&mut rtl, &p, 600, 0.3).unwrap_or_else(|e| panic!("{e}"));
    let unsupported = Program {
        insns: vec![Instruction::new(row_op(VecOp::NormApply, 0, 2, (Buffer::Acc, 0), (Buffer::Acc, 0), (Buffer::Acc, 0)))],
    };
    let e = rtl.run(&unsupported).unwrap_err();
    assert!(e.to_string().contains("zero rows"), "{e}");
}

#[test]
fn softmax_cross_entropy_of_every_shape_and_buffer_type() {
    let mut rtl = machine();
    let lanes = rtl.arch().vector.lanes;
    let mut seed = 900;
    // Rows of fewer, exactly and more classes than lanes; logits from every buffer type, the
    // gradient and loss to every type; labels as bytes or FP32 values.
    for (k, &(rows, classes)) in
        [(1, 1), (3, lanes - 1), (2, lanes), (5, lanes + 1), (4, 10), (2, 3 * lanes + 2), (0, 5)].iter().enumerate()
    {
        for (j, &a) in BUFFERS.iter().enumerate() {
            let dst = BUFFERS[(j + k) % BUFFERS.len()];
            let labels = if k % 2 == 0 { Buffer::Idx } else { Buffer::Master };
            let label_values: Vec<f32> = (0..rows).map(|r| ((r * 7 + k as u32) % classes) as f32).collect();
            let p = Program { insns: vec![Instruction::new(softmax_xent(rows, classes, (dst, 1200), (a, 40), (labels, 1000)))] };
            seed += 1;
            // Logits with special values (infinities, NaN, signed zeros) in a third of the seeds.
            let specials = if seed % 3 == 0 { 0.3 } else { 0.0 };
            check_with(&mut rtl, &p, seed, specials, &[(labels, 1000, label_values)])
                .unwrap_or_else(|e| panic!("{rows} x {classes} {a} -> {dst}: {e}"));
        }
    }
}

fn pool(
    op: VecOp,
    planes: u32,
    (h, w, k, stride): (u32, u32, u32, u32),
    dst: (Buffer, u32),
    a: (Buffer, u32),
    b: (Buffer, u32),
) -> Op {
    vec_insn(op, planes, dst, a, b, [h, w, k, stride])
}

#[test]
fn pooling_and_its_gradients_of_every_geometry_and_buffer_type() {
    let mut rtl = machine();
    let mut seed = 1000;
    // Windows of 1 to 4 elements a side, strides below (overlapping windows, whose gradients
    // add up in the line buffer), equal to or beyond the window, planes that the windows cover
    // exactly or not, windows shorter than, as long as and longer than the lanes, planes taller
    // than the line buffer and as wide as it, batches across planes; inputs with specials in
    // some seeds (NaN, infinities, signed zeros, equal maxima).
    let line_cols = rtl.arch().vector.pool_line_cols;
    let geometries = [
        (4, 4, 2, 2),
        (5, 7, 2, 2),
        (6, 6, 3, 3),
        (7, 5, 1, 1),
        (9, 8, 3, 4),
        (4, 6, 2, 3),
        (3, 3, 3, 3),
        (5, 5, 3, 2),
        (9, 8, 3, 1),
        (7, line_cols, 4, 1),
        (3, 5, 3, 2),
        (8, 6, 2, 1),
        (10, 9, 4, 3),
    ];
    for (k, &geometry) in geometries.iter().enumerate() {
        for op in [VecOp::MaxPool, VecOp::AvgPool, VecOp::MaxPoolGrad, VecOp::AvgPoolGrad] {
            for planes in [1, 3, 4] {
                let a = BUFFERS[(k + planes as usize) % BUFFERS.len()];
                let b = BUFFERS[(k + 2) % BUFFERS.len()];
                let dst = BUFFERS[(k + 4 + planes as usize) % BUFFERS.len()];
                let p = Program { insns: vec![Instruction::new(pool(op, planes, geometry, (dst, 1000), (a, 20), (b, 600)))] };
                seed += 1;
                let specials = if seed % 3 == 0 { 0.3 } else { 0.0 };
                check(&mut rtl, &p, seed, specials)
                    .unwrap_or_else(|e| panic!("{op} {planes} x {geometry:?} {a} {b} -> {dst}: {e}"));
            }
        }
    }
    // Back to back, in place after a forward pool, and an empty one.
    let p = Program {
        insns: vec![
            Instruction::new(pool(VecOp::MaxPool, 2, (8, 8, 2, 2), (Buffer::Acc, 500), (Buffer::Acc, 0), (Buffer::Acc, 0))),
            Instruction::new(pool(
                VecOp::MaxPoolGrad,
                2,
                (8, 8, 2, 2),
                (Buffer::Master, 0),
                (Buffer::Acc, 0),
                (Buffer::Acc, 500),
            )),
            Instruction::new(pool(VecOp::AvgPool, 0, (8, 8, 2, 2), (Buffer::Acc, 700), (Buffer::Acc, 0), (Buffer::Acc, 0))),
            Instruction::new(pool(VecOp::AvgPoolGrad, 1, (8, 8, 4, 4), (Buffer::Act, 0), (Buffer::Act, 0), (Buffer::Master, 0))),
        ],
    };
    check(&mut rtl, &p, 1100, 0.1).unwrap_or_else(|e| panic!("{e}"));
}

/// Windows whose rows meet in a bank of the buffer walked (planes as wide as its banks, or
/// one wider, so that a window's next row starts on the same bank or one before): the walk
/// takes shorter cycles there, and the RTL's are the simulator's.
#[test]
fn pooling_windows_whose_rows_share_banks() {
    let mut rtl = machine();
    let arch = rtl.arch().clone();
    let lanes = u64::from(arch.vector.lanes);
    let mut seed = 1200;
    for walked in [Buffer::Act, Buffer::Acc, Buffer::Master] {
        let banks = arch.banks(walked) as u32;
        let other = if walked == Buffer::Acc { Buffer::Master } else { Buffer::Acc };
        for (geometry, gradients) in [((4, banks, 2, 2), true), ((5, banks + 1, 3, 3), true), ((3, 2 * banks, 3, 1), false)] {
            let (h, w, k, stride) = geometry;
            let d = pool_dims(3, [h, w, k, stride].map(u64::from)).unwrap();
            let elements = 3 * d.oh * d.ow * d.k * d.k;
            assert!(
                d.walk_cycles(3, lanes, banks.into(), false) > elements.div_ceil(lanes),
                "{walked} {geometry:?} never collides"
            );
            let ops: &[VecOp] = if gradients {
                &[VecOp::MaxPool, VecOp::AvgPool, VecOp::MaxPoolGrad, VecOp::AvgPoolGrad]
            } else {
                &[VecOp::MaxPool, VecOp::AvgPool]
            };
            for &op in ops {
                // The walk reads `a`, and avgpool_grad writes its destination along it.
                let (dst, a) = if op == VecOp::AvgPoolGrad { ((walked, 40), (other, 0)) } else { ((other, 1000), (walked, 40)) };
                let p = Program { insns: vec![Instruction::new(pool(op, 3, geometry, dst, a, (Buffer::Wgt, 600)))] };
                seed += 1;
                check(&mut rtl, &p, seed, 0.1).unwrap_or_else(|e| panic!("{op} 3 x {geometry:?} on {walked}: {e}"));
            }
        }
    }
}

#[test]
fn softmax_and_its_gradient_of_every_shape_and_buffer_type() {
    let mut rtl = machine();
    let lanes = rtl.arch().vector.lanes;
    let mut seed = 1200;
    for (k, &(rows, cols)) in [(1, 1), (3, lanes - 1), (2, lanes), (5, lanes + 1), (2, 3 * lanes + 2)].iter().enumerate() {
        for op in [VecOp::Softmax, VecOp::SoftmaxGrad] {
            for (j, &a) in BUFFERS.iter().enumerate() {
                let b = BUFFERS[(j + 1) % BUFFERS.len()];
                let dst = BUFFERS[(j + k + 2) % BUFFERS.len()];
                let p = Program { insns: vec![Instruction::new(row_op(op, rows, cols, (dst, 1200), (a, 40), (b, 400)))] };
                seed += 1;
                let specials = if seed % 3 == 0 { 0.3 } else { 0.0 };
                check(&mut rtl, &p, seed, specials).unwrap_or_else(|e| panic!("{op} {rows} x {cols} {a} {b} -> {dst}: {e}"));
            }
        }
    }
    // A softmax, its gradient from it, and an empty one, back to back.
    let p = Program {
        insns: vec![
            Instruction::new(row_op(VecOp::Softmax, 6, 7, (Buffer::Acc, 300), (Buffer::Acc, 0), (Buffer::Acc, 0))),
            Instruction::new(row_op(VecOp::SoftmaxGrad, 6, 7, (Buffer::Master, 0), (Buffer::Acc, 300), (Buffer::Acc, 100))),
            Instruction::new(row_op(VecOp::Softmax, 0, 7, (Buffer::Acc, 500), (Buffer::Acc, 0), (Buffer::Acc, 0))),
        ],
    };
    check(&mut rtl, &p, 1300, 0.0).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn normalizations_per_column_and_per_row_of_every_buffer_type() {
    let mut rtl = machine();
    let lanes = rtl.arch().vector.lanes;
    let mut seed = 1400;
    let ops = [VecOp::NormStats, VecOp::NormApply, VecOp::NormGradStats, VecOp::NormGradApply];
    for (k, &(rows, cols)) in [(1, 1), (lanes, 3), (lanes + 1, 2), (6, (lanes - 1).max(1)), (3, 2 * lanes + 1)].iter().enumerate()
    {
        for per_row in [0, 1] {
            for op in ops {
                for (j, &a) in BUFFERS.iter().enumerate().filter(|(j, _)| (j + k) % 2 == 0) {
                    let b = BUFFERS[(j + 1) % BUFFERS.len()];
                    let dst = BUFFERS[(j + k + 3) % BUFFERS.len()];
                    let insn = vec_insn(op, rows, (dst, 1200), (a, 40), (b, 400), [cols, per_row, 0, 0]);
                    let p = Program { insns: vec![Instruction::new(insn)] };
                    seed += 1;
                    let specials = if seed % 4 == 0 { 0.2 } else { 0.0 };
                    check(&mut rtl, &p, seed, specials)
                        .unwrap_or_else(|e| panic!("{op} {rows} x {cols} p1 = {per_row} {a} {b} -> {dst}: {e}"));
                }
            }
        }
    }
    // A batch norm's and a layer norm's forward and backward in a row, on FP32 buffers (the
    // layer norm's rows in blocks of lanes, lanes and 3).
    let (rows, cols) = (2 * lanes + 3, 3);
    for p1 in [0, 1] {
        let len = if p1 == 0 { cols } else { rows };
        let norm = |op, dst, a, b| Instruction::new(vec_insn(op, rows, dst, a, b, [cols, p1, 0, 0]));
        let p = Program {
            insns: vec![
                norm(VecOp::NormStats, (Buffer::Master, 1000), (Buffer::Acc, 0), (Buffer::Acc, 0)),
                norm(VecOp::NormApply, (Buffer::Acc, 500), (Buffer::Acc, 0), (Buffer::Master, 1000)),
                norm(VecOp::NormGradStats, (Buffer::Master, 1000 + 2 * len), (Buffer::Acc, 100), (Buffer::Acc, 500)),
                norm(VecOp::NormGradApply, (Buffer::Acc, 0), (Buffer::Acc, 100), (Buffer::Master, 1000)),
            ],
        };
        check(&mut rtl, &p, 1500 + u64::from(p1), 0.0).unwrap_or_else(|e| panic!("p1 = {p1}: {e}"));
    }
}

#[test]
fn softmax_cross_entropy_back_to_back_and_a_bad_label() {
    let mut rtl = machine();
    let p = Program {
        insns: vec![
            Instruction::new(softmax_xent(8, 10, (Buffer::Acc, 200), (Buffer::Acc, 0), (Buffer::Idx, 100))),
            Instruction::new(softmax_xent(8, 10, (Buffer::Acc, 300), (Buffer::Acc, 200), (Buffer::Idx, 100))),
            Instruction::new(vec_op(VecOp::Relu, 81, (Buffer::Master, 0), (Buffer::Acc, 300), (Buffer::Acc, 0))),
        ],
    };
    let labels: Vec<f32> = (0..8).map(|r| (r % 10) as f32).collect();
    check_with(&mut rtl, &p, 950, 0.0, &[(Buffer::Idx, 100, labels)]).unwrap_or_else(|e| panic!("{e}"));
    // A label equal to the class count: both sides refuse it.
    rtl.write_buffer(Buffer::Master, 500, &[0.0, 10.0]).unwrap();
    let bad = Program {
        insns: vec![Instruction::new(softmax_xent(2, 10, (Buffer::Acc, 200), (Buffer::Acc, 0), (Buffer::Master, 500)))],
    };
    let e = rtl.run(&bad).unwrap_err();
    assert!(e.to_string().contains("label"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    /// Random prunes and updates of random shapes, each on regions of its own, in one program:
    /// the SORE and the WUVE run side by side. RTL = simulator.
    #[test]
    fn random_prunes_and_updates(
        ops in proptest::collection::vec((any::<bool>(), 0usize..8, 1u32..6, 1u32..5, any::<bool>(), 1u32..90), 1..6),
        seed in any::<u64>(),
    ) {
        let mut rtl = machine();
        let ratios = rtl.arch().array.supported_nm.clone();
        let mut insns = Vec::new();
        let (mut wgt, mut mask, mut master) = (0u32, 0u32, 0u32);
        for (k, &(is_prune, r, a, b, flag, count)) in ops.iter().enumerate() {
            if is_prune {
                let ratio = ratios[r % ratios.len()];
                let order = if flag { PruneOrder::Bp } else { PruneOrder::Ff };
                let (rows, cols) = match order { PruneOrder::Ff => (a, b * ratio.m), PruneOrder::Bp => (b * ratio.m, a) };
                let elements = rows * cols;
                insns.push(Instruction::new(Op::Prune {
                    order, nm: WeightFormat::Sparse(ratio), rows, cols, src: master, dst: wgt, write_mask: k % 2 == 0, mask,
                }));
                master += elements;
                wgt += elements / ratio.m * ratio.n;
                mask += elements;
            } else {
                insns.push(Instruction::new(Op::Update {
                    count, weight: master, momentum: master + count, grad: master % 1000, use_mask: flag, mask, hyper: master + 2 * count,
                }));
                master += 2 * count + 4;
                mask += count;
            }
        }
        prop_assume!(master as usize <= REGION && mask as usize <= REGION && wgt as usize <= REGION);
        let p = Program { insns };
        if let Err(e) = check(&mut rtl, &p, seed, 0.1) {
            prop_assert!(false, "{}\n{}", e, p.to_text());
        }
    }
}

#[test]
fn the_rtl_flags_what_it_refuses() {
    let mut rtl = machine();
    let arch = rtl.arch().clone();
    // Gradients over overlapping windows taller than the line buffer, or planes wider than it.
    let (line_rows, line_cols) = (arch.vector.pool_line_rows, arch.vector.pool_line_cols);
    let mut refused: Vec<Op> = vec![
        pool(VecOp::MaxPoolGrad, 1, (8, 8, line_rows + 1, 1), (Buffer::Acc, 0), (Buffer::Acc, 100), (Buffer::Acc, 200)),
        pool(VecOp::AvgPoolGrad, 1, (3, line_cols + 1, 3, 2), (Buffer::Acc, 0), (Buffer::Acc, 100), (Buffer::Acc, 200)),
    ];
    for op in [VecOp::NormStats, VecOp::NormApply, VecOp::NormGradStats, VecOp::NormGradApply] {
        // (b in master: norm_grad_apply reads a, b and its destination, and tiny's buffers have
        // two readers)
        refused.push(row_op(op, 0, 4, (Buffer::Acc, 0), (Buffer::Acc, 100), (Buffer::Master, 200)));
    }
    // A WS GEMM whose transposed input has N:M weights: the corner turn stages dense folds.
    refused.push(Op::Gemm {
        dataflow: satkit_hw::Dataflow::Ws,
        weights: WeightFormat::Sparse(NmRatio { n: 2, m: 8 }),
        accumulate: false,
        interleave: 1,
        rows: 3,
        cols: 2,
        depth: 16,
        input: 0,
        weight: 0,
        output: 0,
        input_t: true,
        weight_t: false,
    });
    for op in refused {
        let why = satkit_hw::rtl::unsupported(&arch, &op).unwrap_or_else(|| panic!("{op:?} is on the RTL's list"));
        let program = Program { insns: vec![Instruction::new(op)] };
        let e = rtl.run(&program).unwrap_err().to_string();
        assert!(e.contains(&why), "{e}");
        // Run anyway, the RTL raises its flag.
        let e = rtl.run_unchecked(&program).unwrap_err().to_string();
        assert!(e.contains("cannot run"), "{op:?}: {e}");
    }
}
