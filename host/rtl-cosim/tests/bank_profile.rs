//! The bank profile counts, per cycle, exactly the elements each operand bus enables, with the
//! collisions worked out by hand: dense OS and WS GEMMs (plain and transposed) on `tiny` (4 x 4 array, 2 multipliers
//! per PE, accumulator latency 2) whose rows sit 16 elements apart, a vector `add` over contiguous
//! elements of three buffers, and DMA transfers whose rows lie apart in the buffer (which never
//! put two of a cycle's elements in one of `ArchConfig::dma_banks`), and a pooling walk over
//! windows whose rows meet in a bank (which takes, each cycle, only elements on distinct banks).

use satkit_hw::isa::{Buffer, Instruction, Op, Program, Unit, VecOp, WeightFormat};
use satkit_hw::Dataflow;
use satkit_rtl_cosim::{BankProfile, BankTally, CosimMachine};

const BANKS: [u64; 5] = [4, 8, 16, 32, 64];

fn tally(cycles: u64, elements: u64, widest: u64, conflicted: [u64; 5], extra: [u64; 5]) -> BankTally {
    BankTally { cycles, elements, widest, conflicted: conflicted.to_vec(), extra: extra.to_vec() }
}

/// `tiny`'s machine with 64 values at the start of `act` and `wgt`, and the values.
fn tiny_with_operands() -> (CosimMachine, Vec<f32>) {
    let mut machine = CosimMachine::new().unwrap();
    assert_eq!(machine.arch().name, "tiny", "the hand-worked counts are tiny's");
    let values: Vec<f32> = (0..64).map(|i| (i % 7) as f32 / 4.0).collect();
    machine.write_buffer(Buffer::Act, 0, &values).unwrap();
    machine.write_buffer(Buffer::Wgt, 0, &values).unwrap();
    (machine, values)
}

/// A dense GEMM of 4 rows, 4 columns and depth 16 over those operands, its output at 0.
fn dense_gemm_4x4x16(dataflow: Dataflow) -> Op {
    Op::Gemm {
        dataflow,
        weights: WeightFormat::Dense,
        accumulate: false,
        interleave: 1,
        rows: 4,
        cols: 4,
        depth: 16,
        input: 0,
        weight: 0,
        output: 0,
        input_t: false,
        weight_t: false,
    }
}

/// An element-wise `vec` op over `count` elements, its operands as `(buffer, address)` pairs.
fn vec_insn(op: VecOp, count: u32, dst: (Buffer, u32), a: (Buffer, u32), b: (Buffer, u32), p: [u32; 4]) -> Op {
    let [p0, p1, p2, p3] = p;
    Op::Vec { op, count, dst_buf: dst.0, dst: dst.1, a_buf: a.0, a: a.1, b_buf: b.0, b: b.1, p0, p1, p2, p3 }
}

fn elementwise(op: VecOp, count: u32, dst: (Buffer, u32), a: (Buffer, u32), b: (Buffer, u32)) -> Op {
    vec_insn(op, count, dst, a, b, [0; 4])
}

#[test]
fn os_gemm_operands_are_fetched_as_runs() {
    let (mut machine, values) = tiny_with_operands();
    machine.write_buffer(Buffer::Master, 100, &values[..10]).unwrap();
    let gemm = dense_gemm_4x4x16(Dataflow::Os);
    let add = elementwise(VecOp::Add, 10, (Buffer::Acc, 200), (Buffer::Act, 20), (Buffer::Master, 100));
    let program = Program { insns: vec![Instruction::new(gemm), Instruction::new(add)] };
    let mut profile = BankProfile::new(&machine, &BANKS).unwrap();
    machine.run_profiled(&program, &mut profile).unwrap();
    let rows: Vec<(String, Unit, &str, bool, Buffer, BankTally)> =
        profile.rows().into_iter().map(|r| (r.kind, r.unit, r.operand, r.write, r.buffer, r.tally)).collect();
    // The GEMM: 8 steps of 2 elements, one every max(I, L) = 2 cycles. Its input and weight
    // rows lie 16 apart, but they are fetched one run a cycle: the input G = ceil(R / L) = 2
    // steps of a row, rows in turn (16 runs of 4 elements, which collide in no bank count), the
    // weight C = 4 steps of a column, columns in turn (8 runs of 8 elements: 2 in each of 4
    // banks). Each output row is 4 elements.
    let fetched = tally(16, 64, 4, [0; 5], [0; 5]);
    let long_runs = tally(8, 64, 8, [8, 0, 0, 0, 0], [8, 0, 0, 0, 0]);
    // The add: 10 elements on 4 lanes, 3 cycles of contiguous elements on each operand.
    let contiguous = tally(3, 10, 4, [0; 5], [0; 5]);
    let expected = vec![
        ("gemm os".to_string(), Unit::Tensor, "input", false, Buffer::Act, fetched),
        ("gemm os".to_string(), Unit::Tensor, "weight", false, Buffer::Wgt, long_runs),
        ("gemm os".to_string(), Unit::Tensor, "output", true, Buffer::Acc, tally(4, 16, 4, [0; 5], [0; 5])),
        ("vec add".to_string(), Unit::Vector, "a", false, Buffer::Act, contiguous.clone()),
        ("vec add".to_string(), Unit::Vector, "b", false, Buffer::Master, contiguous.clone()),
        ("vec add".to_string(), Unit::Vector, "destination", true, Buffer::Acc, contiguous),
    ];
    assert_eq!(rows, expected);
}

#[test]
fn a_ws_gemm_reads_each_input_row_and_weight_column_of_a_fold_as_one_run() {
    let (mut machine, _) = tiny_with_operands();
    let gemm = dense_gemm_4x4x16(Dataflow::Ws);
    let mut profile = BankProfile::new(&machine, &BANKS).unwrap();
    machine.run_profiled(&Program { insns: vec![Instruction::new(gemm)] }, &mut profile).unwrap();
    let rows: Vec<(&str, BankTally)> = profile.rows().into_iter().map(|r| (r.operand, r.tally)).collect();
    // 8 steps of 2 elements: two reduction folds of R = 4 steps. A fold reads each of the 4
    // input rows once, its 4 steps together: a run of 8 elements (2 in each of 4 banks, none
    // from 8 on). The weights are staged a column a cycle, its 4 steps of a fold together (8
    // runs of 8 elements, 2 in each of 4 banks). The second fold reads the first's partial
    // sums; both write theirs, a row of 4 a cycle.
    let expected = vec![
        ("input", tally(8, 64, 8, [8, 0, 0, 0, 0], [8, 0, 0, 0, 0])),
        ("weight", tally(8, 64, 8, [8, 0, 0, 0, 0], [8, 0, 0, 0, 0])),
        ("initial sums", tally(4, 16, 4, [0; 5], [0; 5])),
        ("output", tally(8, 32, 4, [0; 5], [0; 5])),
    ];
    assert_eq!(rows, expected);
}

#[test]
fn transposed_ws_operands_are_staged_one_run_a_cycle() {
    let (mut machine, _) = tiny_with_operands();
    let mut gemm = dense_gemm_4x4x16(Dataflow::Ws);
    if let Op::Gemm { input_t, weight_t, .. } = &mut gemm {
        (*input_t, *weight_t) = (true, true);
    }
    let mut profile = BankProfile::new(&machine, &BANKS).unwrap();
    machine.run_profiled(&Program { insns: vec![Instruction::new(gemm)] }, &mut profile).unwrap();
    let tally_of = |operand: &str| profile.rows().into_iter().find(|r| r.operand == operand).expect(operand).tally;
    // The input is a 16 x 4 matrix, element (m, k) at 4 k + m. A fold's Q = R n_max = 8
    // reduction elements each fetch their next X = 8 rows (the 4 there are) as one run, one
    // element a cycle: 2 folds, 16 cycles of 4 contiguous elements, which no bank count splits.
    assert_eq!(tally_of("input"), tally(16, 64, 4, [0; 5], [0; 5]));
    // The weights, element (k, n) at 4 k + n, likewise: the fold's 8 reduction elements, each
    // a run of the 4 columns.
    assert_eq!(tally_of("weight"), tally(16, 64, 4, [0; 5], [0; 5]));
}

#[test]
fn bank_counts_must_be_powers_of_two_and_may_be_large() {
    let mut machine = CosimMachine::new().unwrap();
    let error = BankProfile::new(&machine, &[4, 12]).err().expect("12 banks are refused");
    assert!(error.to_string().contains("12 banks"), "{error}");
    // 2^40 banks: every distinct element in its own bank, and no table of banks allocated.
    let mut profile = BankProfile::new(&machine, &[1 << 40]).unwrap();
    let copy = elementwise(VecOp::Copy, 8, (Buffer::Acc, 0), (Buffer::Acc, 100), (Buffer::Acc, 0));
    machine.run_profiled(&Program { insns: vec![Instruction::new(copy)] }, &mut profile).unwrap();
    let rows = profile.rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.tally.cycles == 2 && r.tally.extra == [0]), "{rows:?}");
}

/// Each transfer's rows of `cols` elements `sram_row_stride` apart, loaded and stored back:
/// `k` whole rows a cycle, as many as the 8 lanes hold and fall on distinct banks of 8
/// (`ArchConfig::dma_bank_rows`), so never two elements in one of the 8 banks, while 4 banks
/// collide whenever a cycle holds more than 4 elements.
#[test]
fn dma_transfers_never_put_two_elements_of_a_cycle_in_one_of_its_banks() {
    let mut machine = CosimMachine::new().unwrap();
    let arch = machine.arch().clone();
    assert_eq!((arch.dma_lanes(), arch.dma_banks()), (8, 8), "the hand-worked counts are tiny's");
    machine.write_dram(0, &(0..=255u8).cycle().take(1 << 12).collect::<Vec<u8>>()).unwrap();
    // rows, cols, sram_row_stride; rows a cycle (k) and the cycles with 4 banks that put two
    // or more elements in one bank, and the cycles they add.
    for (rows, cols, sram_row_stride, k, conflicted_4, extra_4) in [
        // Back to back: 8 lanes across rows, 5 cycles of 8 contiguous elements.
        (40, 1, 1, 8, 5, 5),
        // 2 apart: banks 0, 2, 4, 6, 4 rows a cycle; with 4 banks two of them in each even bank.
        (40, 1, 2, 4, 10, 10),
        // 3 apart (odd): all 8 banks, 8 rows a cycle; 4 banks hold two each.
        (40, 1, 3, 8, 5, 5),
        // 8 apart: all in one bank, a row a cycle.
        (40, 1, 8, 1, 0, 0),
        // Rows of 3, 5 apart: 2 a cycle on banks 0-2 and 5-7 (4 banks: 1 and 2 twice).
        (12, 3, 5, 2, 6, 6),
        // Rows of 2, 12 apart: 2 a cycle on banks 0, 1, 4, 5 (4 banks: 0 and 1 twice).
        (10, 2, 12, 2, 5, 5),
        // Rows of 3, 6 apart: the second row's third element would share bank 0, a row a cycle.
        (12, 3, 6, 1, 0, 0),
    ] {
        let op = |load: bool| {
            let (buf, sram, dram, dram_row_stride, dram_col_stride) = (Buffer::Act, 0, 0, cols, 1);
            if load {
                Op::Load { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride }
            } else {
                Op::Store { buf, sram, dram: 1 << 11, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride }
            }
        };
        let program = Program { insns: vec![Instruction::new(op(true)).signal(1), Instruction::new(op(false)).wait(1)] };
        let mut profile = BankProfile::new(&machine, &[4, 8]).unwrap();
        machine.run_profiled(&program, &mut profile).unwrap();
        let cycles = u64::from(rows).div_ceil(k);
        assert_eq!(cycles, arch.dma_stream_cycles(rows.into(), cols.into(), sram_row_stride.into()));
        let elements = u64::from(rows * cols);
        let widest = k * u64::from(cols);
        let expected = BankTally { cycles, elements, widest, conflicted: vec![conflicted_4, 0], extra: vec![extra_4, 0] };
        let rows_seen: Vec<(String, &str, bool, BankTally)> =
            profile.rows().into_iter().map(|r| (r.kind, r.operand, r.write, r.tally)).collect();
        assert_eq!(
            rows_seen,
            vec![("load".to_string(), "destination", true, expected.clone()), ("store".to_string(), "source", false, expected),],
            "{rows} rows of {cols}, {sram_row_stride} apart"
        );
    }
}

/// An update writes its new weights and momenta in the same cycle, one run of `wuve.lanes`
/// each: the profile counts the two together. With the momenta 68 elements after the weights,
/// 4 banks put a weight and a momentum in every bank, while from 8 banks on the two runs lie on
/// different banks (68 mod 8 = 4).
#[test]
fn an_updates_two_write_runs_are_counted_together() {
    let mut machine = CosimMachine::new().unwrap();
    assert_eq!(machine.arch().wuve.lanes, 4, "the hand-worked counts are tiny's");
    machine.write_buffer(Buffer::Master, 0, &[0.5; 10]).unwrap();
    machine.write_buffer(Buffer::Master, 68, &[0.25; 10]).unwrap();
    machine.write_buffer(Buffer::Master, 200, &[0.01, 0.9, 1e-4, 0.0]).unwrap();
    machine.write_buffer(Buffer::Acc, 0, &[1.0; 10]).unwrap();
    let update = Op::Update { count: 10, weight: 0, momentum: 68, grad: 0, use_mask: false, mask: 0, hyper: 200 };
    let mut profile = BankProfile::new(&machine, &BANKS).unwrap();
    machine.run_profiled(&Program { insns: vec![Instruction::new(update)] }, &mut profile).unwrap();
    // Batches of 4, 4 and 2 elements: 3 cycles of 8, 8 and 4 elements, each putting two
    // elements in some bank of 4.
    let joint: Vec<(String, Buffer, BankTally)> =
        profile.joint_write_rows().into_iter().map(|r| (r.writers, r.buffer, r.tally)).collect();
    assert_eq!(
        joint,
        vec![(
            "wuve new weight + wuve new momentum".to_string(),
            Buffer::Master,
            tally(3, 20, 8, [3, 0, 0, 0, 0], [3, 0, 0, 0, 0])
        )]
    );
    // Each write alone is a run of at most 4: no bank count splits it.
    let new_weight = profile.rows().into_iter().find(|r| r.operand == "new weight").unwrap().tally;
    assert_eq!(new_weight, tally(3, 10, 4, [0; 5], [0; 5]));
    assert!(profile.csv().contains("writes together,several,wuve new weight + wuve new momentum,write,master,3,20,8,3,3,0,0"));
}

/// A load into `act`'s first partition and a vector copy into its second write in the same
/// cycles (`tiny`: two partitions, one writer each). The load writes runs of 8 elements (its
/// lanes), the copy runs of 4: with 8 banks shared by the whole buffer they would collide in
/// every such cycle; with each partition its own 8 banks they never do.
#[test]
fn writes_to_different_partitions_never_share_a_bank() {
    let mut machine = CosimMachine::new().unwrap();
    let arch = machine.arch().clone();
    assert_eq!(arch.buffers.partitions, 2, "the test needs tiny's two partitions");
    let second = arch.buffer_elements(Buffer::Act) / 2;
    machine.write_dram(0, &(0..=255u8).cycle().take(2048).collect::<Vec<u8>>()).unwrap();
    machine.write_buffer(Buffer::Acc, 0, &[1.5; 512]).unwrap();
    let load = Op::Load {
        buf: Buffer::Act,
        sram: 0,
        dram: 0,
        rows: 1,
        cols: 512,
        dram_row_stride: 512,
        dram_col_stride: 1,
        sram_row_stride: 512,
    };
    let copy = elementwise(VecOp::Copy, 512, (Buffer::Act, second as u32), (Buffer::Acc, 0), (Buffer::Acc, 0));
    let mut profile = BankProfile::new(&machine, &[8, 16]).unwrap();
    machine.run_profiled(&Program { insns: vec![Instruction::new(load), Instruction::new(copy)] }, &mut profile).unwrap();
    let joint = profile.joint_write_rows();
    assert_eq!(joint.len(), 1, "{joint:?}");
    let row = &joint[0];
    assert_eq!((row.writers.as_str(), row.buffer), ("load destination + vector destination", Buffer::Act));
    assert!(row.tally.cycles > 0 && row.tally.widest == 12, "{row:?}");
    assert_eq!(row.tally.conflicted, vec![0, 0], "{row:?}");
}

/// The pooling walk over windows whose rows meet in a bank (two planes as wide as `act`'s 32
/// banks, 2x2 windows of stride 2) takes, each cycle, only lanes whose elements fall on
/// distinct banks: max pooling's reads and the average pool's gradient's writes collide
/// neither in `act`'s banks nor in twice as many, and their cycles take fewer than the 4 lanes.
#[test]
fn the_pooling_walk_never_puts_two_elements_of_a_cycle_in_one_bank() {
    let mut machine = CosimMachine::new().unwrap();
    let arch = machine.arch().clone();
    assert_eq!((arch.banks(Buffer::Act), arch.vector.lanes), (32, 4), "the test needs tiny's act banks and lanes");
    let values: Vec<f32> = (0..256).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
    machine.write_buffer(Buffer::Act, 0, &values).unwrap();
    machine.write_buffer(Buffer::Acc, 0, &values[..64]).unwrap();
    let pool = |op, dst, a, b| vec_insn(op, 2, dst, a, b, [4, 32, 2, 2]);
    let program = Program {
        insns: vec![
            Instruction::new(pool(VecOp::MaxPool, (Buffer::Acc, 100), (Buffer::Act, 0), (Buffer::Act, 0))),
            Instruction::new(pool(VecOp::AvgPoolGrad, (Buffer::Act, 512), (Buffer::Act, 0), (Buffer::Acc, 0))),
        ],
    };
    let mut profile = BankProfile::new(&machine, &[16, 32, 64]).unwrap();
    machine.run_profiled(&program, &mut profile).unwrap();
    let rows = profile.rows();
    for (kind, operand) in [("vec maxpool", "a"), ("vec avgpool_grad", "destination")] {
        let row = rows.iter().find(|r| r.kind == kind && r.operand == operand).unwrap_or_else(|| panic!("{kind}: {operand}"));
        assert_eq!(row.buffer, Buffer::Act, "{row:?}");
        assert_eq!(row.tally.conflicted[1..], [0, 0], "{row:?}");
        // 2 planes of 2 x 16 windows of 4 elements, in more than 256 / 4 cycles (the zeros
        // that the gradient writes first, a run a cycle, counted too).
        let walked = if operand == "a" { 256 } else { 256 + 256 };
        assert_eq!(row.tally.elements, walked, "{row:?}");
        assert!(row.tally.cycles > walked / 4, "{row:?}");
    }
}
