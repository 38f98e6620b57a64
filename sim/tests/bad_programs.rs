//! Bad programs are refused with an error, never a panic.
//!
//! Every error raised while decoding or running a program must name the instruction's index
//! and (when it decodes at all) its mnemonic. Covered: undecodable binary words, DMA addresses
//! past a buffer's or DRAM's capacity, GEMM operands overflowing `act`/`wgt`/`acc`, N:M ratios
//! and dataflows the machine lacks, sparse depths that are not a multiple of M, bad in-group
//! weight indices, prune shapes that do not split into groups, bad pool geometry, bad softmax
//! labels, an interleave of 0 or above the accumulator latency, and deadlocks. Each refusal sits next to a passing "just fits"
//! neighbour where one exists, so an off-by-one in a bound check fails the test. A property
//! test runs random decodable programs on `tiny` and requires `run` to return (Ok or Err).

mod common;
use common::vec_op;
use proptest::prelude::*;
use satkit_hw::isa::{Buffer, Instruction, Op, Program, PruneOrder, VecOp, WeightFormat, Word, HEADER_BITS};
use satkit_hw::{ArchConfig, Dataflow, NmRatio};
use satkit_sim::{Machine, Mode};

// ---------------------------------------------------------------------------------------------
// Helpers

fn nm(n: u32, m: u32) -> WeightFormat {
    WeightFormat::Sparse(NmRatio::new(n, m).unwrap())
}

#[allow(clippy::too_many_arguments)]
fn load(buf: Buffer, sram: u32, dram: u32, rows: u32, cols: u32, row_stride: u32, col_stride: u32, sram_stride: u32) -> Op {
    Op::Load {
        buf,
        sram,
        dram: dram.into(),
        rows,
        cols,
        dram_row_stride: row_stride,
        dram_col_stride: col_stride,
        sram_row_stride: sram_stride,
    }
}

/// A one-row load of `cols` contiguous elements.
fn load_row(buf: Buffer, sram: u32, dram: u32, cols: u32) -> Op {
    load(buf, sram, dram, 1, cols, cols, 1, cols)
}

/// A one-row store of `cols` contiguous elements.
fn store_row(buf: Buffer, sram: u32, dram: u32, cols: u32) -> Op {
    Op::Store { buf, sram, dram: dram.into(), rows: 1, cols, dram_row_stride: cols, dram_col_stride: 1, sram_row_stride: cols }
}

#[allow(clippy::too_many_arguments)]
fn gemm(
    dataflow: Dataflow,
    weights: WeightFormat,
    interleave: u32,
    rows: u32,
    cols: u32,
    depth: u32,
    input: u32,
    weight: u32,
    output: u32,
) -> Op {
    Op::Gemm {
        dataflow,
        weights,
        accumulate: false,
        interleave,
        rows,
        cols,
        depth,
        input,
        weight,
        output,
        input_t: false,
        weight_t: false,
    }
}

fn prune(order: PruneOrder, ratio: WeightFormat, rows: u32, cols: u32) -> Op {
    Op::Prune { order, nm: ratio, rows, cols, src: 0, dst: 0, write_mask: true, mask: 0 }
}

fn pool(op: VecOp, h: u32, w: u32, k: u32, s: u32) -> Op {
    vec_op(op, 1, (Buffer::Acc, 4096), (Buffer::Acc, 0), (Buffer::Acc, 8192), [h, w, k, s])
}

/// An instruction that is always fine on `tiny`: a 4-element relu in `acc`.
fn filler() -> Instruction {
    Instruction::new(vec_op(VecOp::Relu, 4, (Buffer::Acc, 100), (Buffer::Acc, 0), (Buffer::Acc, 0), [0; 4]))
}

fn program(insns: Vec<Instruction>) -> Program {
    Program { insns }
}

/// `filler`, then `op` at index 1.
fn with_filler(op: Op) -> Program {
    program(vec![filler(), Instruction::new(op)])
}

/// Runs on a fresh functional and timing-only machine; both must agree on Ok vs Err.
/// Returns the functional result's error text, if any.
fn run_both(arch: &ArchConfig, p: &Program) -> Option<String> {
    let f = Machine::new(arch, Mode::Functional).run(p);
    let t = Machine::new(arch, Mode::TimingOnly).run(p);
    assert_eq!(f.is_ok(), t.is_ok(), "functional {f:?} vs timing-only {t:?}");
    f.err().map(|e| e.to_string())
}

/// Asserts that `p` fails on `arch` in both modes, naming instruction `index` (`mnemonic`) and
/// every fragment of `needles`.
fn assert_refused(arch: &ArchConfig, p: &Program, index: usize, mnemonic: &str, needles: &[&str]) {
    let e = run_both(arch, p).unwrap_or_else(|| panic!("{} ran without error on {}", p.to_text(), arch.name));
    let head = format!("instruction {index} ({mnemonic})");
    assert!(e.contains(&head), "error does not name `{head}`: {e}");
    for n in needles {
        assert!(e.contains(n), "error lacks `{n}`: {e}");
    }
}

fn assert_runs(arch: &ArchConfig, p: &Program) {
    if let Some(e) = run_both(arch, p) {
        panic!("{} failed on {}: {e}", p.to_text(), arch.name);
    }
}

fn tiny() -> ArchConfig {
    ArchConfig::tiny()
}

// Capacities of tiny, by hand from its buffer sizes (KiB * 1024 / element bytes).
const ACT: u32 = 64 * 1024 / 2; // FP16
const WGT: u32 = 32 * 1024 / 2; // FP16, idx plane alike
const ACC: u32 = 64 * 1024 / 4; // FP32
const MASTER: u32 = 64 * 1024 / 4; // FP32, mask plane alike
const DRAM: u32 = 16 << 20; // 16 MiB

// ---------------------------------------------------------------------------------------------
// Undecodable words

fn binary_of(p: &Program) -> Vec<u8> {
    p.to_binary().unwrap()
}

/// Replaces instruction `index`'s word in a binary program.
fn patch_word(bytes: &mut [u8], index: usize, f: impl FnOnce(&mut Word)) {
    let at = 16 + 32 * index;
    let mut w = Word::from_bytes(bytes[at..at + 32].try_into().unwrap());
    f(&mut w);
    bytes[at..at + 32].copy_from_slice(&w.to_bytes());
}

fn three_insns() -> Program {
    program(vec![filler(), filler(), Instruction::new(load_row(Buffer::Act, 0, 0, 8))])
}

#[test]
fn binary_round_trip_is_the_control() {
    let p = three_insns();
    assert_eq!(Program::from_binary(&binary_of(&p)).unwrap(), p);
}

#[test]
fn corrupted_opcode_is_refused_with_its_index() {
    for opcode in [0u64, 7, 31] {
        let mut bytes = binary_of(&three_insns());
        patch_word(&mut bytes, 2, |w| w.set(0, 5, opcode));
        let e = Program::from_binary(&bytes).unwrap_err().to_string();
        assert!(e.contains("instruction 2") && e.contains(&format!("opcode {opcode}")), "{e}");
    }
}

#[test]
fn reserved_bit_is_refused_with_index_and_mnemonic() {
    // load's fields end at bit HEADER_BITS + 3 + 24 + 40 + 16 + 16 + 24 + 8 + 24 = 193: bit 193 is reserved.
    let end = HEADER_BITS + 3 + 24 + 40 + 16 + 16 + 24 + 8 + 24;
    assert_eq!(end, 193);
    for bit in [end, 200, 255] {
        let mut bytes = binary_of(&three_insns());
        patch_word(&mut bytes, 2, |w| w.set(bit, 1, 1));
        let e = Program::from_binary(&bytes).unwrap_err().to_string();
        assert!(e.contains("instruction 2") && e.contains("load") && e.contains(&format!("reserved bit {bit}")), "{e}");
    }
    // The last field bit is not reserved: setting it changes sram_row_stride's top bit, still decodable.
    let mut bytes = binary_of(&three_insns());
    patch_word(&mut bytes, 2, |w| w.set(end - 1, 1, 1));
    let p = Program::from_binary(&bytes).unwrap();
    assert!(matches!(p.insns[2].op, Op::Load { sram_row_stride, .. } if sram_row_stride == (8 | 1 << 23)));
}

#[test]
fn field_without_a_value_is_refused() {
    // load's buffer field (the 3 bits after the header) holds 7: no such buffer.
    let mut bytes = binary_of(&three_insns());
    patch_word(&mut bytes, 2, |w| w.set(HEADER_BITS, 3, 7));
    let e = Program::from_binary(&bytes).unwrap_err().to_string();
    assert!(e.contains("instruction 2") && e.contains("buf"), "{e}");
    // A phase tag of 7 is not a phase.
    let mut bytes = binary_of(&three_insns());
    patch_word(&mut bytes, 1, |w| w.set(5, 3, 7));
    let e = Program::from_binary(&bytes).unwrap_err().to_string();
    assert!(e.contains("instruction 1") && e.contains("phase"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// DMA ranges

#[test]
fn load_and_store_past_a_buffer_are_refused() {
    let arch = tiny();
    for (buf, cap) in [
        (Buffer::Act, ACT),
        (Buffer::Wgt, WGT),
        (Buffer::Idx, WGT),
        (Buffer::Acc, ACC),
        (Buffer::Master, MASTER),
        (Buffer::Mask, MASTER),
    ] {
        // 16 elements ending exactly at the capacity fit; one more element does not.
        assert_runs(&arch, &with_filler(load_row(buf, cap - 16, 0, 16)));
        assert_runs(&arch, &with_filler(store_row(buf, cap - 16, 0, 16)));
        assert_refused(&arch, &with_filler(load_row(buf, cap - 15, 0, 16)), 1, "load", &["overflow", buf.name()]);
        assert_refused(&arch, &with_filler(store_row(buf, cap - 15, 0, 16)), 1, "store", &["overflow", buf.name()]);
    }
    // Through the row stride: rows at 0 and ACT - 2, two elements each, ends exactly at ACT...
    assert_runs(&arch, &with_filler(load(Buffer::Act, 0, 0, 2, 2, 2, 1, ACT - 2)));
    // ...and one element further does not fit.
    assert_refused(&arch, &with_filler(load(Buffer::Act, 0, 0, 2, 2, 2, 1, ACT - 1)), 1, "load", &["overflow"]);
}

#[test]
fn load_and_store_past_dram_are_refused() {
    let arch = tiny();
    assert_eq!(arch.dram_bytes(), u64::from(DRAM));
    // Two FP16 elements = 4 bytes ending exactly at the capacity fit.
    assert_runs(&arch, &with_filler(load_row(Buffer::Act, 0, DRAM - 4, 2)));
    assert_runs(&arch, &with_filler(store_row(Buffer::Act, 0, DRAM - 4, 2)));
    assert_refused(&arch, &with_filler(load_row(Buffer::Act, 0, DRAM - 3, 2)), 1, "load", &["DRAM"]);
    assert_refused(&arch, &with_filler(store_row(Buffer::Act, 0, DRAM - 3, 2)), 1, "store", &["DRAM"]);
    // FP32 elements are 4 bytes: one acc element at DRAM - 4 fits, at DRAM - 2 it does not.
    assert_runs(&arch, &with_filler(load_row(Buffer::Acc, 0, DRAM - 4, 1)));
    assert_refused(&arch, &with_filler(load_row(Buffer::Acc, 0, DRAM - 2, 1)), 1, "load", &["DRAM"]);
    // Through strides: rows 1 MiB apart, 17 rows reach byte 16 MiB + 2.
    assert_refused(&arch, &with_filler(load(Buffer::Act, 0, 0, 17, 1, 1 << 19, 1, 1)), 1, "load", &["DRAM"]);
    assert_runs(&arch, &with_filler(load(Buffer::Act, 0, 0, 16, 1, 1 << 19, 1, 1)));
    // Through the column stride: 2 columns 255 elements apart from DRAM - 512 end at DRAM - 0.
    assert_runs(&arch, &with_filler(load(Buffer::Act, 0, DRAM - 512, 1, 2, 0, 255, 2)));
    assert_refused(&arch, &with_filler(load(Buffer::Act, 0, DRAM - 510, 1, 2, 0, 255, 2)), 1, "load", &["DRAM"]);
}

// ---------------------------------------------------------------------------------------------
// GEMM

#[test]
fn gemm_operands_past_their_buffers_are_refused() {
    let arch = tiny();
    let ws = |rows, cols, depth, input, weight, output| {
        gemm(Dataflow::Ws, WeightFormat::Dense, 1, rows, cols, depth, input, weight, output)
    };
    // act: 4 x 8 input = 32 elements.
    assert_runs(&arch, &with_filler(ws(4, 4, 8, ACT - 32, 0, 0)));
    assert_refused(&arch, &with_filler(ws(4, 4, 8, ACT - 31, 0, 0)), 1, "gemm", &["act", "overflow"]);
    // wgt: 4 columns x 8 = 32 dense entries.
    assert_runs(&arch, &with_filler(ws(4, 4, 8, 0, WGT - 32, 0)));
    assert_refused(&arch, &with_filler(ws(4, 4, 8, 0, WGT - 31, 0)), 1, "gemm", &["wgt", "overflow"]);
    // acc: 4 x 4 output = 16 elements.
    assert_runs(&arch, &with_filler(ws(4, 4, 8, 0, 0, ACC - 16)));
    assert_refused(&arch, &with_filler(ws(4, 4, 8, 0, 0, ACC - 15)), 1, "gemm", &["acc", "overflow"]);
    // Sparse 1:4 weights store depth / 4 entries per column: 4 x 2 = 8 for depth 8.
    let sparse = |weight| gemm(Dataflow::Os, nm(1, 4), 1, 4, 4, 8, 0, weight, 0);
    assert_runs(&arch, &with_filler(sparse(WGT - 8)));
    assert_refused(&arch, &with_filler(sparse(WGT - 7)), 1, "gemm", &["wgt", "overflow"]);
    // A whole-buffer-sized input that is one row too many.
    assert_refused(&arch, &with_filler(ws(ACT / 16 + 1, 4, 16, 0, 0, 0)), 1, "gemm", &["act"]);
}

#[test]
fn unsupported_nm_is_refused() {
    let g = |w| with_filler(gemm(Dataflow::Ws, w, 1, 4, 4, 16, 0, 0, 0));
    // systolic runs no sparse ratio at all.
    let systolic = ArchConfig::systolic();
    assert_runs(&systolic, &g(WeightFormat::Dense));
    assert_refused(&systolic, &g(nm(2, 8)), 1, "gemm", &["2:8", "not supported"]);
    // tiny runs 1:4, 2:4, 1:8, 2:8 only.
    let arch = tiny();
    for ok in [nm(1, 4), nm(2, 4), nm(1, 8), nm(2, 8)] {
        // Timing-only: the zeroed index plane is not a valid 2:M weight, but no data is read.
        Machine::new(&arch, Mode::TimingOnly).run(&g(ok)).unwrap();
    }
    for (w, text) in [(nm(4, 16), "4:16"), (nm(1, 2), "1:2"), (nm(3, 8), "3:8"), (nm(1, 16), "1:16")] {
        assert_refused(&arch, &g(w), 1, "gemm", &[text, "not supported"]);
    }
    // The same for the SORE.
    assert_refused(&arch, &with_filler(prune(PruneOrder::Ff, nm(4, 16), 4, 16)), 1, "prune", &["4:16"]);
    assert_refused(&systolic, &with_filler(prune(PruneOrder::Ff, nm(2, 8), 4, 16)), 1, "prune", &["2:8"]);
    // And a dense "ratio" is no prune at all.
    assert_refused(&arch, &with_filler(prune(PruneOrder::Ff, WeightFormat::Dense, 4, 16)), 1, "prune", &["dense"]);
}

#[test]
fn unsupported_dataflow_is_refused() {
    let g = |d| with_filler(gemm(d, WeightFormat::Dense, 1, 4, 4, 8, 0, 0, 0));
    assert_refused(&tiny(), &g(Dataflow::Is), 1, "gemm", &["dataflow is", "not supported"]);
    assert_runs(&tiny(), &g(Dataflow::Os));
    assert_runs(&tiny(), &g(Dataflow::Ws));
    assert_runs(&ArchConfig::systolic(), &g(Dataflow::Is));
    assert_refused(&ArchConfig::vcu1525(), &g(Dataflow::Is), 1, "gemm", &["dataflow is"]);
}

#[test]
fn sparse_depth_must_be_a_multiple_of_m() {
    let arch = tiny();
    let g = |w, depth| with_filler(gemm(Dataflow::Ws, w, 1, 4, 4, depth, 0, 0, 0));
    assert_refused(&arch, &g(nm(2, 8), 12), 1, "gemm", &["depth 12", "M = 8"]);
    assert_refused(&arch, &g(nm(1, 4), 6), 1, "gemm", &["depth 6", "M = 4"]);
    Machine::new(&arch, Mode::TimingOnly).run(&g(nm(1, 4), 12)).unwrap();
    // Dense GEMMs take any depth, even one that is not a multiple of n_max.
    assert_runs(&arch, &g(WeightFormat::Dense, 7));
}

#[test]
fn interleave_outside_one_to_the_accumulator_latency_is_refused() {
    let arch = tiny();
    let g = |i| with_filler(gemm(Dataflow::Os, WeightFormat::Dense, i, 4, 4, 8, 0, 0, 0));
    assert_refused(&arch, &g(0), 1, "gemm", &["interleave"]);
    assert_runs(&arch, &g(1));
    // tiny's accumulator latency is 2: a PE holds two accumulators.
    assert_runs(&arch, &g(2));
    assert_refused(&arch, &g(3), 1, "gemm", &["interleave 3", "accumulator latency 2"]);
}

/// A 2:4 GEMM of one output (1 x 1, depth 8: 2 groups, 4 stored entries) whose index plane is
/// loaded from DRAM bytes `idx`.
fn sparse_gemm_with_indices(idx: [u8; 4]) -> (Machine, Program) {
    let mut m = Machine::new(&tiny(), Mode::Functional);
    m.write_dram(0x100, &idx).unwrap();
    let p = program(vec![
        Instruction::new(load_row(Buffer::Idx, 0, 0x100, 4)).signal(1),
        Instruction::new(gemm(Dataflow::Ws, nm(2, 4), 1, 1, 1, 8, 0, 0, 0)).wait(1),
    ]);
    (m, p)
}

#[test]
fn sparse_weight_index_out_of_group_is_refused() {
    let (mut m, p) = sparse_gemm_with_indices([0, 3, 1, 2]);
    m.run(&p).unwrap();
    for idx in [[0, 4, 1, 2], [0, 3, 1, 9], [200, 201, 0, 1]] {
        let (mut m, p) = sparse_gemm_with_indices(idx);
        let e = m.run(&p).unwrap_err().to_string();
        assert!(e.contains("instruction 1 (gemm)") && e.contains("not below M = 4"), "{idx:?}: {e}");
    }
}

#[test]
fn sparse_weight_indices_must_increase_within_a_group() {
    // Restarting at a group boundary is fine (entry 2 starts group 1).
    let (mut m, p) = sparse_gemm_with_indices([2, 3, 0, 1]);
    m.run(&p).unwrap();
    for idx in [[1, 1, 0, 1], [3, 2, 0, 1], [0, 1, 3, 0], [0, 1, 2, 2]] {
        let (mut m, p) = sparse_gemm_with_indices(idx);
        let e = m.run(&p).unwrap_err().to_string();
        assert!(e.contains("instruction 1 (gemm)") && e.contains("increase"), "{idx:?}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// SORE, vector unit

#[test]
fn prune_shape_must_split_into_groups() {
    let arch = tiny();
    // FF groups along each row: cols must be a multiple of M; rows are free.
    assert_runs(&arch, &with_filler(prune(PruneOrder::Ff, nm(2, 4), 3, 8)));
    assert_refused(&arch, &with_filler(prune(PruneOrder::Ff, nm(2, 4), 4, 6)), 1, "prune", &["cols = 6", "M = 4"]);
    // BP groups down each column: rows must be a multiple of M; cols are free.
    assert_runs(&arch, &with_filler(prune(PruneOrder::Bp, nm(2, 4), 8, 3)));
    assert_refused(&arch, &with_filler(prune(PruneOrder::Bp, nm(2, 8), 12, 8)), 1, "prune", &["rows = 12", "M = 8"]);
}

#[test]
fn prune_operands_past_their_buffers_are_refused() {
    let arch = tiny();
    let p =
        |src, dst, mask| Op::Prune { order: PruneOrder::Ff, nm: nm(1, 4), rows: 4, cols: 8, src, dst, write_mask: true, mask };
    // 32 dense elements, 8 compressed entries, 32 mask bytes.
    assert_runs(&arch, &with_filler(p(MASTER - 32, WGT - 8, MASTER - 32)));
    assert_refused(&arch, &with_filler(p(MASTER - 31, 0, 0)), 1, "prune", &["master"]);
    assert_refused(&arch, &with_filler(p(0, WGT - 7, 0)), 1, "prune", &["wgt"]);
    assert_refused(&arch, &with_filler(p(0, 0, MASTER - 31)), 1, "prune", &["mask"]);
}

#[test]
fn update_operands_past_their_buffers_are_refused() {
    let arch = tiny();
    let u = |weight, grad, hyper| Op::Update { count: 8, weight, momentum: 0, grad, use_mask: true, mask: MASTER - 8, hyper };
    assert_runs(&arch, &with_filler(u(MASTER - 8, ACC - 8, MASTER - 4)));
    assert_refused(&arch, &with_filler(u(MASTER - 7, 0, 16)), 1, "update", &["master"]);
    assert_refused(&arch, &with_filler(u(16, ACC - 7, 32)), 1, "update", &["acc"]);
    assert_refused(&arch, &with_filler(u(16, 0, MASTER - 3)), 1, "update", &["master"]);
}

#[test]
fn bad_pool_geometry_is_refused() {
    let arch = tiny();
    for op in [VecOp::MaxPool, VecOp::AvgPool, VecOp::MaxPoolGrad, VecOp::AvgPoolGrad] {
        assert_runs(&arch, &with_filler(pool(op, 4, 4, 2, 2)));
        assert_runs(&arch, &with_filler(pool(op, 4, 3, 3, 1)));
        assert_refused(&arch, &with_filler(pool(op, 4, 4, 0, 2)), 1, "vec", &["p2 = 0"]);
        assert_refused(&arch, &with_filler(pool(op, 4, 4, 2, 0)), 1, "vec", &["p3 = 0"]);
        // Window larger than the plane, in either dimension.
        assert_refused(&arch, &with_filler(pool(op, 4, 4, 5, 1)), 1, "vec", &["exceeds"]);
        assert_refused(&arch, &with_filler(pool(op, 2, 4, 3, 1)), 1, "vec", &["exceeds"]);
        assert_refused(&arch, &with_filler(pool(op, 4, 2, 3, 1)), 1, "vec", &["exceeds"]);
    }
    // Planes that overflow the source: 2 planes of 64 x 64 = 8192 FP32 elements from ACC - 8191.
    let big = vec_op(VecOp::MaxPool, 2, (Buffer::Acc, 0), (Buffer::Acc, ACC - 8191), (Buffer::Acc, 0), [64, 64, 2, 2]);
    assert_refused(&arch, &with_filler(big), 1, "vec", &["acc", "overflow"]);
}

/// Softmax cross-entropy over 2 rows of 3 logits at acc 0, labels at master 0.
fn softmax_with_labels(labels: [f32; 2]) -> Result<(), String> {
    let mut m = Machine::new(&tiny(), Mode::Functional);
    m.write_buffer(Buffer::Master, 0, &labels).unwrap();
    m.write_buffer(Buffer::Acc, 0, &[0.5, -1.0, 2.0, 1.0, 0.0, -3.0]).unwrap();
    let op = vec_op(VecOp::SoftmaxXent, 2, (Buffer::Acc, 64), (Buffer::Acc, 0), (Buffer::Master, 0), [3, 0, 0, 0]);
    m.run(&with_filler(op)).map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn softmax_label_out_of_range_is_refused() {
    softmax_with_labels([0.0, 2.0]).unwrap();
    for labels in [[3.0, 0.0], [0.0, -1.0], [1.5, 0.0], [f32::NAN, 0.0], [0.0, f32::INFINITY]] {
        let e = softmax_with_labels(labels).unwrap_err();
        assert!(e.contains("instruction 1 (vec)") && e.contains("label"), "{labels:?}: {e}");
    }
    // Zero classes is refused before anything runs.
    let op = vec_op(VecOp::SoftmaxXent, 2, (Buffer::Acc, 64), (Buffer::Acc, 0), (Buffer::Master, 0), [0; 4]);
    assert_refused(&tiny(), &with_filler(op), 1, "vec", &["p0"]);
}

#[test]
fn vector_operands_past_their_buffers_are_refused() {
    let arch = tiny();
    let add = |dst, a, b| vec_op(VecOp::Add, 8, (Buffer::Act, dst), (Buffer::Acc, a), (Buffer::Master, b), [0; 4]);
    assert_runs(&arch, &with_filler(add(ACT - 8, ACC - 8, MASTER - 8)));
    assert_refused(&arch, &with_filler(add(ACT - 7, 0, 0)), 1, "vec", &["act"]);
    assert_refused(&arch, &with_filler(add(0, ACC - 7, 0)), 1, "vec", &["acc"]);
    assert_refused(&arch, &with_filler(add(0, 0, MASTER - 7)), 1, "vec", &["master"]);
    // Softmax writes count * p0 + 1 elements (the loss follows the gradient).
    let sm = |dst| vec_op(VecOp::SoftmaxXent, 2, (Buffer::Acc, dst), (Buffer::Acc, 0), (Buffer::Master, 0), [3, 0, 0, 0]);
    assert_runs(&arch, &with_filler(sm(ACC - 7)));
    assert_refused(&arch, &with_filler(sm(ACC - 6)), 1, "vec", &["acc"]);
}

// ---------------------------------------------------------------------------------------------
// Deadlock

#[test]
fn wait_on_a_semaphore_nobody_signals_is_a_deadlock() {
    let p =
        program(vec![filler(), Instruction::new(gemm(Dataflow::Ws, WeightFormat::Dense, 1, 4, 4, 8, 0, 0, 0)).wait(3), filler()]);
    let e = Machine::new(&tiny(), Mode::TimingOnly).run(&p).unwrap_err().to_string();
    assert!(e.contains("deadlock") && e.contains("instruction 1 (gemm)") && e.contains("[3]"), "{e}");
    // The control: with a signal from instruction 0 it runs.
    let mut ok = p.clone();
    ok.insns[0] = filler().signal(3);
    Machine::new(&tiny(), Mode::TimingOnly).run(&ok).unwrap();
}

#[test]
fn waiting_twice_needs_two_signals() {
    let mk = |signals: usize| {
        let mut insns: Vec<Instruction> = (0..signals).map(|_| filler().signal(5)).collect();
        insns.push(Instruction::new(load_row(Buffer::Act, 0, 0, 8)).wait(5).wait(5));
        program(insns)
    };
    let e = Machine::new(&tiny(), Mode::Functional).run(&mk(1)).unwrap_err().to_string();
    assert!(e.contains("deadlock") && e.contains("instruction 1 (load)") && e.contains("[5, 5]"), "{e}");
    Machine::new(&tiny(), Mode::Functional).run(&mk(2)).unwrap();
}

#[test]
fn a_deadlock_behind_a_full_queue_is_reported_not_hung() {
    // queue_depth 4 on tiny: five vector instructions wait on semaphore 2, which only the store
    // after them would signal; the store can never be dispatched.
    let mut insns: Vec<Instruction> = (0..5).map(|_| filler().wait(2)).collect();
    insns.push(Instruction::new(store_row(Buffer::Act, 0, 0, 8)).signal(2));
    let e = Machine::new(&tiny(), Mode::TimingOnly).run(&program(insns)).unwrap_err().to_string();
    assert!(e.contains("deadlock") && e.contains("instruction 0 (vec)"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Corner cases that must not panic

/// Runs `p` on a fresh functional machine of `arch`; a panic fails the test with its message.
fn run_without_panic(arch: &ArchConfig, p: &Program) -> Result<(), String> {
    let arch = arch.clone();
    let p = p.clone();
    std::panic::catch_unwind(move || Machine::new(&arch, Mode::Functional).run(&p).map(|_| ()).map_err(|e| e.to_string()))
        .unwrap_or_else(|panic| {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("run panicked: {text}")
        })
}

#[test]
fn empty_operations_at_in_range_addresses_run() {
    // Zero rows or columns at the very end of each buffer: nothing to do, nothing to refuse.
    let arch = tiny();
    for op in [
        gemm(Dataflow::Ws, WeightFormat::Dense, 1, 0, 4, 8, ACT, WGT - 32, ACC),
        gemm(Dataflow::Os, WeightFormat::Dense, 1, 4, 0, 8, ACT - 32, WGT, ACC),
        Op::Prune {
            order: PruneOrder::Ff,
            nm: nm(2, 4),
            rows: 0,
            cols: 8,
            src: MASTER,
            dst: WGT,
            write_mask: true,
            mask: MASTER,
        },
        load_row(Buffer::Act, ACT + 1000, 0, 0),
        store_row(Buffer::Acc, ACC + 1000, 0, 0),
    ] {
        run_without_panic(&arch, &with_filler(op)).unwrap();
    }
}

#[test]
fn empty_gemm_past_the_buffer_does_not_panic() {
    // act holds 32768 elements; input = 40000 with rows = 0 means no element is read.
    let p = with_filler(gemm(Dataflow::Ws, WeightFormat::Dense, 1, 0, 4, 8, 40000, 0, 0));
    let _ = run_without_panic(&tiny(), &p);
    let p = with_filler(gemm(Dataflow::Ws, WeightFormat::Dense, 1, 4, 0, 8, 0, 20000, 20000));
    let _ = run_without_panic(&tiny(), &p);
}

#[test]
fn empty_prune_past_the_buffer_does_not_panic() {
    let p = Op::Prune { order: PruneOrder::Ff, nm: nm(2, 4), rows: 0, cols: 8, src: 20000, dst: 0, write_mask: false, mask: 0 };
    let _ = run_without_panic(&tiny(), &with_filler(p));
    let p = Op::Prune { order: PruneOrder::Ff, nm: nm(2, 4), rows: 0, cols: 8, src: 0, dst: 0, write_mask: true, mask: 20000 };
    let _ = run_without_panic(&tiny(), &with_filler(p));
}

#[test]
fn ff_prune_with_zero_cols_does_not_panic() {
    for rows in [0, 4] {
        let p = Op::Prune { order: PruneOrder::Ff, nm: nm(2, 4), rows, cols: 0, src: 0, dst: 0, write_mask: true, mask: 0 };
        let _ = run_without_panic(&tiny(), &with_filler(p));
    }
}

#[test]
fn bp_prune_with_zero_rows_or_cols_runs() {
    for (rows, cols) in [(0, 4), (4, 0), (0, 0)] {
        let p = Op::Prune { order: PruneOrder::Bp, nm: nm(2, 4), rows, cols, src: 0, dst: 0, write_mask: true, mask: 0 };
        run_without_panic(&tiny(), &with_filler(p)).unwrap();
    }
}

#[test]
fn huge_pool_geometry_is_refused_not_overflowed() {
    // count < 2^24, 65535 x 65535 planes, window 255, stride 1: the work count is about 4.6e24 > 2^64.
    let op = vec_op(VecOp::AvgPool, (1 << 24) - 1, (Buffer::Acc, 0), (Buffer::Acc, 0), (Buffer::Acc, 0), [65535, 65535, 255, 1]);
    let e = run_without_panic(&tiny(), &with_filler(op)).unwrap_err();
    assert!(e.contains("instruction 1 (vec)"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Random decodable programs never panic

fn addr(cap: u32) -> impl Strategy<Value = u32> {
    // Addresses anywhere in the buffer, including its very end (so sizes overflow it).
    prop_oneof![4 => 0..64u32, 1 => (cap - 64)..=cap]
}

fn buffer() -> impl Strategy<Value = Buffer> {
    prop::sample::select(Buffer::ALL.to_vec())
}

fn any_addr() -> impl Strategy<Value = u32> {
    // Below every buffer's capacity plus a little: tiny's smallest buffers hold 16384 elements.
    prop_oneof![4 => 0..64u32, 1 => 16300..16400u32]
}

fn weight_format() -> impl Strategy<Value = WeightFormat> {
    // Sparse formats must keep N < M to be encodable; some of these the machine lacks.
    let ratios = [(1, 2), (1, 4), (2, 4), (3, 4), (1, 8), (2, 8), (4, 8), (2, 16), (4, 16)];
    prop_oneof![1 => Just(WeightFormat::Dense), 2 => prop::sample::select(ratios.to_vec()).prop_map(|(n, m)| nm(n, m))]
}

fn dma_op() -> impl Strategy<Value = Op> {
    (
        any::<bool>(),
        buffer(),
        any_addr(),
        prop_oneof![0..4096u32, (DRAM - 4096)..DRAM],
        0..4u32,
        0..40u32,
        0..80u32,
        0..4u32,
        0..64u32,
    )
        .prop_map(|(is_load, buf, sram, dram, rows, cols, rs, cs, ss)| {
            if is_load {
                load(buf, sram, dram, rows, cols, rs, cs, ss)
            } else {
                Op::Store {
                    buf,
                    sram,
                    dram: dram.into(),
                    rows,
                    cols,
                    dram_row_stride: rs,
                    dram_col_stride: cs,
                    sram_row_stride: ss,
                }
            }
        })
}

fn gemm_op() -> impl Strategy<Value = Op> {
    (
        prop::sample::select(Dataflow::ALL.to_vec()),
        weight_format(),
        any::<bool>(),
        0..5u32,
        (0..10u32, 0..10u32, 0..33u32),
        (addr(ACT), addr(WGT), addr(ACC)),
    )
        .prop_map(|(dataflow, weights, accumulate, interleave, (rows, cols, depth), (input, weight, output))| Op::Gemm {
            dataflow,
            weights,
            accumulate,
            interleave,
            rows,
            cols,
            depth,
            input,
            weight,
            output,
            input_t: false,
            weight_t: false,
        })
}

fn prune_op() -> impl Strategy<Value = Op> {
    // cols >= 1: an FF prune with cols = 0 panics (see ff_prune_with_zero_cols_does_not_panic).
    (any::<bool>(), weight_format(), 0..10u32, 1..17u32, addr(MASTER), addr(WGT), any::<bool>(), addr(MASTER)).prop_map(
        |(bp, nm, rows, cols, src, dst, write_mask, mask)| Op::Prune {
            order: if bp { PruneOrder::Bp } else { PruneOrder::Ff },
            nm,
            rows,
            cols,
            src,
            dst,
            write_mask,
            mask,
        },
    )
}

fn update_op() -> impl Strategy<Value = Op> {
    (0..40u32, addr(MASTER), addr(MASTER), addr(ACC), any::<bool>(), addr(MASTER), addr(MASTER)).prop_map(
        |(count, weight, momentum, grad, use_mask, mask, hyper)| Op::Update {
            count,
            weight,
            momentum,
            grad,
            use_mask,
            mask,
            hyper,
        },
    )
}

fn vec_insn() -> impl Strategy<Value = Op> {
    (
        prop::sample::select(VecOp::ALL.to_vec()),
        0..5u32,
        (buffer(), any_addr()),
        (buffer(), any_addr()),
        (buffer(), any_addr()),
        (0..7u32, 0..7u32, 0..4u32, 0..3u32),
    )
        .prop_map(|(op, count, dst, a, b, (p0, p1, p2, p3))| vec_op(op, count, dst, a, b, [p0, p1, p2, p3]))
}

fn random_op() -> impl Strategy<Value = Op> {
    prop_oneof![dma_op(), gemm_op(), prune_op(), update_op(), vec_insn()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_decodable_programs_never_panic(ops in prop::collection::vec(random_op(), 1..7), seed in any::<u64>()) {
        let p = program(ops.into_iter().map(Instruction::new).collect());
        // Decodable: it survives the binary round trip.
        let back = Program::from_binary(&p.to_binary().unwrap()).unwrap();
        prop_assert_eq!(&back, &p);
        let arch = tiny();
        let mut m = Machine::new(&arch, Mode::Functional);
        // Some nonzero data, including valid-looking indices, so GEMMs and prunes do real work.
        let bytes: Vec<u8> = (0..4096u64).map(|i| (seed.rotate_left((i % 64) as u32) ^ i) as u8).collect();
        m.write_dram(0, &bytes).unwrap();
        let values: Vec<f32> = bytes.iter().map(|&b| f32::from(b) / 16.0 - 8.0).collect();
        for b in [Buffer::Act, Buffer::Wgt, Buffer::Acc, Buffer::Master] {
            m.write_buffer(b, 0, &values[..1024]).unwrap();
        }
        let idx: Vec<f32> = (0..1024).map(|i| (i % 4) as f32).collect();
        m.write_buffer(Buffer::Idx, 0, &idx).unwrap();
        // The whole program, then each instruction on its own (most programs stop at their first
        // bad instruction; alone, the good ones run too).
        let singles = p.insns.iter().map(|&i| program(vec![i]));
        for q in std::iter::once(p.clone()).chain(singles) {
            let functional = m.run(&q);
            let timing = Machine::new(&arch, Mode::TimingOnly).run(&q);
            // Whatever the outcome, an error names an instruction; whatever timing-only refuses
            // (shapes, ranges, support) functional refuses too (it may also refuse bad data).
            if let Err(e) = &functional {
                prop_assert!(e.to_string().contains("instruction "), "{}", e);
            }
            if let Err(e) = &timing {
                prop_assert!(e.to_string().contains("instruction "), "{}", e);
                prop_assert!(functional.is_err(), "timing-only refused what functional ran: {}", e);
            }
        }
    }
}
