//! The bank profile counts, per cycle, exactly the elements each operand bus enables, with the
//! collisions worked out by hand: a dense OS GEMM on `tiny` (4 x 4 array, 2 multipliers per PE,
//! accumulator latency 2) whose rows sit 16 elements apart, and a vector `add` over contiguous
//! elements of three buffers.

use satkit_hw::isa::{Buffer, Instruction, Op, Program, Unit, VecOp, WeightFormat};
use satkit_hw::Dataflow;
use satkit_rtl_cosim::{BankProfile, BankTally, CosimMachine};

const BANKS: [u64; 5] = [4, 8, 16, 32, 64];

fn tally(cycles: u64, elements: u64, widest: u64, conflicted: [u64; 5], extra: [u64; 5]) -> BankTally {
    BankTally { cycles, elements, widest, conflicted: conflicted.to_vec(), extra: extra.to_vec() }
}

#[test]
fn strided_gemm_rows_collide_and_contiguous_lanes_do_not() {
    let mut machine = CosimMachine::new().unwrap();
    assert_eq!(machine.arch().name, "tiny", "the hand-worked counts are tiny's");
    let values: Vec<f32> = (0..64).map(|i| (i % 7) as f32 / 4.0).collect();
    machine.write_buffer(Buffer::Act, 0, &values).unwrap();
    machine.write_buffer(Buffer::Wgt, 0, &values).unwrap();
    machine.write_buffer(Buffer::Master, 100, &values[..10]).unwrap();
    let gemm = Op::Gemm {
        dataflow: Dataflow::Os,
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
    };
    let add = Op::Vec {
        op: VecOp::Add,
        count: 10,
        dst_buf: Buffer::Acc,
        dst: 200,
        a_buf: Buffer::Act,
        a: 20,
        b_buf: Buffer::Master,
        b: 100,
        p0: 0,
        p1: 0,
        p2: 0,
        p3: 0,
    };
    let program = Program { insns: vec![Instruction::new(gemm), Instruction::new(add)] };
    let mut profile = BankProfile::new(&machine, &BANKS).unwrap();
    machine.run_profiled(&program, &mut profile).unwrap();
    let rows: Vec<(String, Unit, &str, bool, Buffer, BankTally)> =
        profile.rows().into_iter().map(|r| (r.kind, r.unit, r.operand, r.write, r.buffer, r.tally)).collect();
    // The GEMM: 8 steps of 2 elements, one every max(I, L) = 2 cycles. Step s reads elements
    // 16 r + 2 s + j of the input (rows r < 4, j < 2) and 16 n + 2 s + j of the weight (columns
    // n < 4): four elements in each of two banks when 16 is a multiple of the bank count, two
    // with 32 banks (rows 0 and 2 meet, 1 and 3), none with 64. Each output row is 4 elements.
    let strided = tally(8, 64, 8, [8, 8, 8, 8, 0], [24, 24, 24, 8, 0]);
    // The add: 10 elements on 4 lanes, 3 cycles of contiguous elements on each operand.
    let contiguous = tally(3, 10, 4, [0; 5], [0; 5]);
    let expected = vec![
        ("gemm os".to_string(), Unit::Tensor, "input", false, Buffer::Act, strided.clone()),
        ("gemm os".to_string(), Unit::Tensor, "weight", false, Buffer::Wgt, strided),
        ("gemm os".to_string(), Unit::Tensor, "output", true, Buffer::Acc, tally(4, 16, 4, [0; 5], [0; 5])),
        ("vec add".to_string(), Unit::Vector, "a", false, Buffer::Act, contiguous.clone()),
        ("vec add".to_string(), Unit::Vector, "b", false, Buffer::Master, contiguous.clone()),
        ("vec add".to_string(), Unit::Vector, "destination", true, Buffer::Acc, contiguous),
    ];
    assert_eq!(rows, expected);
}

#[test]
fn bank_counts_must_be_powers_of_two_and_may_be_large() {
    let mut machine = CosimMachine::new().unwrap();
    let error = BankProfile::new(&machine, &[4, 12]).err().expect("12 banks are refused");
    assert!(error.to_string().contains("12 banks"), "{error}");
    // 2^40 banks: every distinct element in its own bank, and no table of banks allocated.
    let mut profile = BankProfile::new(&machine, &[1 << 40]).unwrap();
    let copy = Op::Vec {
        op: VecOp::Copy,
        count: 8,
        dst_buf: Buffer::Acc,
        dst: 0,
        a_buf: Buffer::Acc,
        a: 100,
        b_buf: Buffer::Acc,
        b: 0,
        p0: 0,
        p1: 0,
        p2: 0,
        p3: 0,
    };
    machine.run_profiled(&Program { insns: vec![Instruction::new(copy)] }, &mut profile).unwrap();
    let rows = profile.rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.tally.cycles == 2 && r.tally.extra == [0]), "{rows:?}");
}
