//! Cycle counts derived by hand from the documented timing models.
//!
//! Every expected number below is worked out in a comment from the formulas in the module docs
//! (`pe_array` for GEMMs, `dram`/`dma` for transfers, `controller` for dispatch, queues and
//! semaphores) and the preset parameters in `hw/src/arch.rs`; none is copied from a run. Covered:
//! single GEMM tiles (WS, OS with and without interleave, IS, sparse), bandwidth-bound and
//! strided DMA, DRAM bus contention between the load and store units, semaphore chains versus
//! overlap, dispatch stalls behind a full queue, and waits for a buffer partition's readers and
//! writers.
//!
//! Controller rules used throughout: one instruction is dispatched per cycle from cycle 0; an
//! instruction dispatched at cycle `d` can start at `d + 1` at the earliest; a unit starts its
//! queue head once idle and its semaphores are positive; `total_cycles` is the last end.

use satkit_hw::arch::{BufferConfig, ControlConfig};
use satkit_hw::isa::{Buffer, Instruction, Op, Phase, Program, VecOp, WeightFormat};
use satkit_hw::{ArchConfig, Dataflow, NmRatio};
use satkit_sim::stats::{InsnRecord, Stalls, UnitStats};
use satkit_sim::{Machine, Mode, SimReport};

// ---------------------------------------------------------------------------------------------
// Helpers

fn run_in(arch: &ArchConfig, mode: Mode, insns: Vec<Instruction>) -> SimReport {
    let mut m = Machine::new(arch, mode);
    m.record_instructions(true);
    m.run(&Program { insns }).unwrap()
}

fn run(arch: &ArchConfig, insns: Vec<Instruction>) -> SimReport {
    run_in(arch, Mode::TimingOnly, insns)
}

fn unit<'a>(r: &'a SimReport, name: &str) -> &'a UnitStats {
    r.units.iter().find(|u| u.unit == name).unwrap_or_else(|| panic!("no unit {name} in {:?}", r.units))
}

fn rec(r: &SimReport, index: usize) -> &InsnRecord {
    let rec = &r.instructions[index];
    assert_eq!(rec.index, index);
    rec
}

/// (dispatched, start, end) of instruction `index`.
fn times(r: &SimReport, index: usize) -> (u64, u64, u64) {
    let x = rec(r, index);
    (x.dispatched, x.start, x.end)
}

#[allow(clippy::too_many_arguments)]
fn gemm(dataflow: Dataflow, weights: WeightFormat, interleave: u32, rows: u32, cols: u32, depth: u32) -> Instruction {
    Instruction::new(Op::Gemm {
        dataflow,
        weights,
        accumulate: false,
        interleave,
        rows,
        cols,
        depth,
        input: 0,
        weight: 0,
        output: 0,
        input_t: false,
        weight_t: false,
    })
}

fn dense(dataflow: Dataflow, interleave: u32, rows: u32, cols: u32, depth: u32) -> Instruction {
    gemm(dataflow, WeightFormat::Dense, interleave, rows, cols, depth)
}

#[allow(clippy::too_many_arguments)]
fn transfer(
    load: bool,
    buf: Buffer,
    sram: u32,
    dram: u32,
    rows: u32,
    cols: u32,
    row_stride: u32,
    col_stride: u32,
) -> Instruction {
    let (dram_row_stride, dram_col_stride, sram_row_stride) = (row_stride, col_stride, cols);
    Instruction::new(if load {
        Op::Load { buf, sram, dram: dram.into(), rows, cols, dram_row_stride, dram_col_stride, sram_row_stride }
    } else {
        Op::Store { buf, sram, dram: dram.into(), rows, cols, dram_row_stride, dram_col_stride, sram_row_stride }
    })
}

/// A contiguous one-row load of `cols` elements.
fn load_row(buf: Buffer, dram: u32, cols: u32) -> Instruction {
    transfer(true, buf, 0, dram, 1, cols, cols, 1)
}

/// A contiguous one-row store of `cols` elements.
fn store_row(buf: Buffer, dram: u32, cols: u32) -> Instruction {
    transfer(false, buf, 0, dram, 1, cols, cols, 1)
}

fn stalls(dependency: u64, fill_drain: u64, accumulator_hazard: u64, dram_latency: u64, dram_contention: u64) -> Stalls {
    Stalls { dependency, fill_drain, accumulator_hazard, dram_latency, dram_contention, buffer_access: 0 }
}

// tiny: 4 x 4 PEs, n_max 2, accumulator latency L = 2; DRAM 1 channel of 1.6 GB/s at 200 MHz
// = 8 bytes/cycle, 50 ns = 10 cycles of latency, 16-byte bursts; queues 4 deep; two readers
// and one writer per partition, two partitions per buffer.
#[test]
fn tiny_parameters_are_what_the_derivations_assume() {
    let a = ArchConfig::tiny();
    assert_eq!((a.array.rows, a.array.cols, a.array.n_max, a.array.accumulator_latency), (4, 4, 2, 2));
    assert_eq!(a.dram_bytes_per_cycle_per_channel(), 8.0);
    assert_eq!((a.dram_latency_cycles(), a.dram.burst_bytes, a.dram.channels), (10, 16, 1));
    assert_eq!(a.control.queue_depth, 4);
    assert_eq!((a.buffers.readers, a.buffers.writers, a.buffers.partitions), (2, 1, 2));
}

// ---------------------------------------------------------------------------------------------
// (a) GEMM tiles

#[test]
fn one_dense_ws_tile() {
    // Dense WS, M = 6 rows, N = 4 cols, K = 8: S = ceil(8 / n_max 2) = 4 steps.
    // Folds ceil(S / R) * ceil(N / C) = 1 * 1 = 1; the weights' first fetches take C = 4
    // cycles, and the last (here only) fold runs to its write-back:
    // R + M + R L + L + C = 4 + 6 + 8 + 2 + 4 = 24 cycles; 28 in all, of which 28 - M = 22 are
    // fill/drain. Dispatched at 0, starts at 1, ends at 29.
    let r = run(&ArchConfig::tiny(), vec![dense(Dataflow::Ws, 1, 6, 4, 8).tag(Phase::Ff)]);
    assert_eq!(times(&r, 0), (0, 1, 29));
    assert_eq!(r.total_cycles, 29);
    assert_eq!(r.compute_cycles, 28);
    assert_eq!(r.stall_cycles, 1);
    assert_eq!(rec(&r, 0).cost.cycles, 28);
    assert_eq!(rec(&r, 0).cost.stalls, stalls(0, 22, 0, 0, 0));
    let t = unit(&r, "tensor");
    assert_eq!((t.instructions, t.busy_cycles), (1, 28));
    assert_eq!(t.stalls, stalls(0, 22, 0, 0, 0));
    // MACs: 6 * 4 * 8 = 192, dense, so performed = dense-equivalent. Slots: 4 * 4 PEs * 2
    // multipliers = 32 per cycle; the tensor unit has 28 * 32 = 896 slots while busy, and the
    // report divides by all 29 cycles.
    assert_eq!((r.macs_dense, r.macs_performed), (192, 192));
    assert!((t.utilization - 192.0 / 896.0).abs() < 1e-12, "{}", t.utilization);
    assert!((r.utilization - 192.0 / 928.0).abs() < 1e-12, "{}", r.utilization);
    let ff = r.phases.iter().find(|p| p.phase == "ff").unwrap();
    assert_eq!((ff.instructions, ff.active_cycles, ff.busy_cycles), (1, 28, 28));
}

#[test]
fn ws_folds_multiply() {
    // M = 6, N = 8, K = 16: S = 8 steps; folds ceil(8 / 4) * ceil(8 / 4) = 4: the first
    // weight fetches 4, three folds of R + M + (R - 1) L + C - 1 = 19 cycles and the last of
    // 24 (see one_dense_ws_tile) = 85 (the fold cost depends on M only), fill/drain
    // 85 - 4 * 6 = 61. Ends at 1 + 85 = 86.
    let r = run(&ArchConfig::tiny(), vec![dense(Dataflow::Ws, 1, 6, 8, 16)]);
    assert_eq!(times(&r, 0), (0, 1, 86));
    assert_eq!(rec(&r, 0).cost.stalls, stalls(0, 61, 0, 0, 0));
    // A partial fold costs a whole one: N = 5 needs ceil(5 / 4) = 2 column folds, as N = 8.
    let r = run(&ArchConfig::tiny(), vec![dense(Dataflow::Ws, 1, 6, 5, 16)]);
    assert_eq!(r.total_cycles, 86);
}

#[test]
fn sparse_ws_covers_a_group_per_step() {
    // 2:8 WS, M = 6, N = 4, K = 64: a PE covers one group of 8 per step, S = 8; folds
    // ceil(8 / 4) * 1 = 2, 4 (the first weight fetches) + 19 + 24 = 47. The dense GEMM of the
    // same shape has S = 32, 8 folds, 4 + 7 * 19 + 24 = 161.
    let arch = ArchConfig::tiny();
    let sparse = run(&arch, vec![gemm(Dataflow::Ws, WeightFormat::Sparse(NmRatio::new(2, 8).unwrap()), 1, 6, 4, 64)]);
    assert_eq!(sparse.total_cycles, 1 + 47);
    // MACs: dense-equivalent 6 * 4 * 64 = 1536; performed on the 64 / 8 * 2 = 16 kept entries, 384.
    assert_eq!((sparse.macs_dense, sparse.macs_performed), (1536, 384));
    let dense = run(&arch, vec![dense(Dataflow::Ws, 1, 6, 4, 64)]);
    assert_eq!(dense.total_cycles, 1 + 161);
    assert_eq!((dense.macs_dense, dense.macs_performed), (1536, 1536));
}

#[test]
fn os_accumulator_hazard_and_interleave() {
    let arch = ArchConfig::tiny();
    // OS, I = 1, M = 8, N = 4, K = 16: S = 8. Folds ceil(8 / R) * ceil(4 / (C * 1)) = 2 * 1 = 2,
    // each S * max(I, L) = 8 * 2 = 16 plus R + C - 2 = 6 of skew = 22, and once the input's
    // first fetches R = 4 and the write-back R + C + L = 10; 58 in all. The hazard is
    // S * (L - I) = 8 per fold: 16; fill/drain 2 * 6 + 4 + 10 = 26.
    let r = run(&arch, vec![dense(Dataflow::Os, 1, 8, 4, 16).tag(Phase::Ff)]);
    assert_eq!(times(&r, 0), (0, 1, 59));
    assert_eq!(rec(&r, 0).cost.stalls, stalls(0, 26, 16, 0, 0));
    assert_eq!(unit(&r, "tensor").stalls.accumulator_hazard, 16);
    let ff = r.phases.iter().find(|p| p.phase == "ff").unwrap();
    assert_eq!(ff.stalls, stalls(0, 26, 16, 0, 0));
    assert_eq!(ff.active_cycles, 58);

    // I = 1 with N = 8: column folds ceil(8 / 4) = 2, so 4 folds of 22 = 88 + 4 + 10, hazard 32.
    let r = run(&arch, vec![dense(Dataflow::Os, 1, 8, 8, 16)]);
    assert_eq!(r.total_cycles, 1 + 88 + 4 + 10);
    assert_eq!(unit(&r, "tensor").stalls.accumulator_hazard, 32);

    // I = 2 = L with N = 8: each PE round-robins 2 outputs, folds ceil(8 / 4) * ceil(8 / 8) = 2,
    // each 8 * max(2, 2) + 6 = 22: the same 44 cycles of folds as N = 4 without interleave,
    // and no hazard; the first fetches take C I = 8 cycles (the fold's 8 columns), then the
    // write-back 10.
    let r = run(&arch, vec![dense(Dataflow::Os, 2, 8, 8, 16).tag(Phase::Ff)]);
    assert_eq!(times(&r, 0), (0, 1, 63));
    assert_eq!(rec(&r, 0).cost.stalls, stalls(0, 30, 0, 0, 0));
    let ff = r.phases.iter().find(|p| p.phase == "ff").unwrap();
    assert_eq!(ff.stalls.accumulator_hazard, 0);

    // I = 3 > L: a PE holds only L = 2 accumulators, so the machine refuses it.
    let e = Machine::new(&arch, Mode::TimingOnly).run(&Program { insns: vec![dense(Dataflow::Os, 3, 8, 12, 16)] }).unwrap_err();
    assert!(e.to_string().contains("interleave 3 must be between 1 and the accumulator latency 2"), "{e}");
}

#[test]
fn is_on_the_plain_systolic_array() {
    // systolic: 32 x 32, n_max 1, L = 1. IS, M = 40, N = 10, K = 64: S = 64.
    // Folds ceil(S / R) * ceil(M / C) = 2 * 2 = 4, each R + N + (R - 1) L + C - 1
    // = 32 + 10 + 31 + 31 = 104: 416 cycles, fill/drain 4 * (104 - 10) = 376.
    let r = run(&ArchConfig::systolic(), vec![dense(Dataflow::Is, 1, 40, 10, 64)]);
    assert_eq!(times(&r, 0), (0, 1, 417));
    assert_eq!(rec(&r, 0).cost.stalls, stalls(0, 376, 0, 0, 0));
}

#[test]
fn timing_does_not_depend_on_the_mode() {
    let arch = ArchConfig::tiny();
    let p =
        || vec![load_row(Buffer::Act, 0, 48).signal(1), dense(Dataflow::Os, 1, 8, 4, 6).wait(1), store_row(Buffer::Acc, 64, 32)];
    let (f, t) = (run_in(&arch, Mode::Functional, p()), run_in(&arch, Mode::TimingOnly, p()));
    assert_eq!(f.total_cycles, t.total_cycles);
    for i in 0..3 {
        assert_eq!(times(&f, i), times(&t, i));
    }
}

// ---------------------------------------------------------------------------------------------
// (b) DMA

#[test]
fn bandwidth_bound_load() {
    // 1 row of 1024 FP16 = 2048 bytes from byte 0 = 128 bursts of 16 bytes: 128 * 16 / 8 = 256
    // data cycles after 10 of latency. Starts at 1, ends at 1 + 10 + 256 = 267.
    let r = run(&ArchConfig::tiny(), vec![load_row(Buffer::Act, 0, 1024)]);
    assert_eq!(times(&r, 0), (0, 1, 267));
    assert_eq!(r.total_cycles, 267);
    assert_eq!((r.dram_read_bytes, r.dram_write_bytes), (2048, 0));
    assert_eq!(rec(&r, 0).cost.stalls, stalls(0, 0, 0, 10, 0));
    assert_eq!(unit(&r, "load").dram_bytes, 2048);
    // The mirror store costs the same.
    let r = run(&ArchConfig::tiny(), vec![store_row(Buffer::Act, 0, 1024)]);
    assert_eq!(times(&r, 0), (0, 1, 267));
    assert_eq!((r.dram_read_bytes, r.dram_write_bytes), (0, 2048));
}

#[test]
fn strided_load_pays_a_burst_per_element() {
    // 64 FP16 with a column stride of 16 elements = 32 bytes >= the 16-byte burst: each element
    // is its own burst, 64 bursts = 1024 bytes on the bus, 64 * 16 / 8 = 128 data cycles.
    let r = run(&ArchConfig::tiny(), vec![transfer(true, Buffer::Act, 0, 0, 1, 64, 0, 16)]);
    assert_eq!(times(&r, 0), (0, 1, 1 + 10 + 128));
    assert_eq!(r.dram_read_bytes, 1024);
    // Column stride 4 elements = 8 bytes: two elements share each burst; 64 elements span bytes
    // 0 ..= 63 * 8 + 1 = 505, bursts 0 ..= 31: 32 bursts, 64 data cycles, 512 bytes.
    let r = run(&ArchConfig::tiny(), vec![transfer(true, Buffer::Act, 0, 0, 1, 64, 0, 4)]);
    assert_eq!(times(&r, 0), (0, 1, 1 + 10 + 64));
    assert_eq!(r.dram_read_bytes, 512);
}

#[test]
fn rows_and_alignment_round_to_bursts() {
    let arch = ArchConfig::tiny();
    // 8 FP16 (16 bytes) at byte 8 straddle bursts 0 and 1: 2 bursts, 4 data cycles, 32 bytes.
    let r = run(&arch, vec![load_row(Buffer::Act, 8, 8)]);
    assert_eq!((times(&r, 0), r.dram_read_bytes), ((0, 1, 15), 32));
    // 4 rows of 8 FP16 (16 bytes) 32 bytes apart: one burst each, 4 bursts, 8 data cycles.
    let r = run(&arch, vec![transfer(true, Buffer::Act, 0, 0, 4, 8, 16, 1)]);
    assert_eq!((times(&r, 0), r.dram_read_bytes), ((0, 1, 19), 64));
    // Rows 24 bytes apart: row 0 at bytes 0..16 (burst 0), row 1 at 24..40 (bursts 1, 2),
    // row 2 at 48..64 (burst 3), row 3 at 72..88 (bursts 4, 5): 6 bursts, 12 data cycles.
    let r = run(&arch, vec![transfer(true, Buffer::Act, 0, 0, 4, 8, 12, 1)]);
    assert_eq!((times(&r, 0), r.dram_read_bytes), ((0, 1, 23), 96));
    // FP32 accumulators are 4 bytes in DRAM: 12 of them = 48 bytes = 3 bursts, 6 data cycles.
    let r = run(&arch, vec![load_row(Buffer::Acc, 0, 12)]);
    assert_eq!((times(&r, 0), r.dram_read_bytes), ((0, 1, 17), 48));
    // Index bytes are 1 byte each: 40 of them = bytes 0..40 = 3 bursts.
    let r = run(&arch, vec![load_row(Buffer::Idx, 0, 40)]);
    assert_eq!((times(&r, 0), r.dram_read_bytes), ((0, 1, 17), 48));
}

#[test]
fn rows_apart_in_the_buffer_stream_as_many_rows_as_the_window_spans() {
    // 40 mask bytes, one per row: on `tiny` each row is a 16-byte burst, 2 cycles, so the DRAM
    // always outlasts the element stream. With 4-byte bursts (half a cycle) a row-per-cycle
    // stream can outlast it: 40 bursts = 160 bytes, 20 data cycles after 10 of latency. With
    // the rows back to back in the buffer, the 8 lanes (8 bytes a cycle) stream them in 5
    // cycles, within the DRAM's time: ends at 1 + 10 + 20 = 31.
    let mut arch = ArchConfig::tiny();
    arch.dram.burst_bytes = 4;
    assert_eq!((arch.dma_lanes(), arch.dma_banks()), (8, 8));
    let op = |load: bool, sram_row_stride: u32| {
        let (buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride) = (Buffer::Mask, 0, 0, 40, 1, 1, 1);
        Instruction::new(if load {
            Op::Load { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride }
        } else {
            Op::Store { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride }
        })
    };
    let r = run(&arch, vec![op(true, 1)]);
    assert_eq!((times(&r, 0), r.dram_read_bytes), ((0, 1, 31), 160));
    // Two elements apart in the buffer, a cycle's rows must fall on distinct banks of 8: 4 rows
    // a cycle (the even banks), 10 cycles, still within the DRAM's time. Three apart, all 8
    // banks: 5 cycles.
    assert_eq!((arch.dma_bank_rows(1, 2), arch.dma_stream_cycles(40, 1, 2)), (4, 10));
    assert_eq!((arch.dma_bank_rows(1, 3), arch.dma_stream_cycles(40, 1, 3)), (8, 5));
    let r = run(&arch, vec![op(true, 2)]);
    assert_eq!(times(&r, 0), (0, 1, 31));
    // Eight apart, all in one bank, each row takes a cycle of its own: 40 cycles of stream from
    // the cycle after the start, so the load ends at 1 + 40 + 1 = 42, the DRAM's bytes unchanged.
    assert_eq!(arch.dma_stream_cycles(40, 1, 8), 40);
    let r = run(&arch, vec![op(true, 8)]);
    assert_eq!((times(&r, 0), r.dram_read_bytes), ((0, 1, 42), 160));
    assert_eq!(rec(&r, 0).cost.stalls, stalls(0, 0, 0, 10, 0));
    // A store's last bytes leave a cycle after their buffer read: 43.
    let r = run(&arch, vec![op(false, 8)]);
    assert_eq!((times(&r, 0), r.dram_write_bytes), ((0, 1, 43), 160));
    // Rows of 3, 5 apart: as many as the lanes hold is 2, on banks 0-2 and 5-7; 6 apart only 1
    // (the second row's third element is on bank 0). Rows of 2, 12 apart: 2 a cycle (banks 0, 1,
    // 4, 5). Overlapping rows (1 apart) take a cycle each. Rows longer than
    // the lanes take a cycle per 8 of their elements each: 3 rows of 20 are 3 x 3 cycles, and
    // 60 back to back are 8.
    assert_eq!((arch.dma_stream_cycles(12, 3, 5), arch.dma_stream_cycles(12, 3, 6), arch.dma_stream_cycles(5, 4, 1)), (6, 12, 5));
    assert_eq!(arch.dma_stream_cycles(10, 2, 12), 5);
    assert_eq!((arch.dma_stream_cycles(3, 20, 32), arch.dma_stream_cycles(3, 20, 20)), (9, 8));
    assert_eq!((arch.dma_stream_cycles(0, 20, 32), arch.dma_stream_cycles(1, 20, 0)), (0, 3));
    // vcu1525: 384 lanes, 512 banks. Rows of 64 elements 72 apart: 7 fall on distinct banks
    // (the eighth starts at 504, 8 banks before the first), but the lanes hold 6. The compiler's
    // transposing loads: single elements 25 apart fall on all 512 banks (384 a cycle, as the
    // lanes hold), and rows of 8 elements 200 apart (200 = 8 x 25) on 64 multiples of 8 (48 a
    // cycle). The stem convolution's im2col rows of 3 channels 147 apart: 101 (101 x 147 =
    // 29 x 512 - 1, one bank before the first row).
    let vcu = ArchConfig::vcu1525();
    assert_eq!((vcu.dma_lanes(), vcu.dma_banks(), vcu.dma_stream_cycles(60, 64, 72)), (384, 512, 10));
    assert_eq!((vcu.dma_bank_rows(1, 25), vcu.dma_stream_cycles(16384, 1, 25)), (512, 43));
    assert_eq!((vcu.dma_bank_rows(8, 200), vcu.dma_stream_cycles(512, 8, 200)), (64, 11));
    assert_eq!((vcu.dma_bank_rows(64, 72), vcu.dma_bank_rows(3, 147)), (7, 101));
}

#[test]
fn channels_share_the_bursts() {
    // vcu1525: 4 channels of 19.2 GB/s at 200 MHz = 96 bytes/cycle each, 64-byte bursts,
    // 100 ns = 20 cycles. 4096 FP16 = 8192 bytes = 128 bursts, 32 per channel:
    // ceil(32 * 64 / 96) = ceil(21.33) = 22 data cycles. Ends at 1 + 20 + 22 = 43.
    let r = run(&ArchConfig::vcu1525(), vec![load_row(Buffer::Act, 0, 4096)]);
    assert_eq!(times(&r, 0), (0, 1, 43));
    assert_eq!(r.dram_read_bytes, 8192);
}

// ---------------------------------------------------------------------------------------------
// (c) Contention

#[test]
fn loads_and_a_store_share_the_bus() {
    // 0: load 1024 FP16 (128 bursts, 256 data cycles): dispatched 0, starts 1, first data at
    //    11, holds the bus 11..267, ends 267.
    // 1: load 16 FP16 (32 bytes, 2 bursts, 4 data cycles): dispatched 1; the load unit is busy,
    //    so it starts at 267, wants data at 277.
    // 2: store 64 FP16 (128 bytes, 8 bursts, 16 data cycles): dispatched 2, starts 3 on the idle
    //    store unit, wants data at 13 but the bus is held until 267: contention 254, data
    //    267..283, ends 283.
    //    Back to 1: the store holds the bus until 283: contention 283 - 277 = 6, data 283..287.
    let r = run(
        &ArchConfig::tiny(),
        vec![load_row(Buffer::Act, 0, 1024), load_row(Buffer::Act, 4096, 16), store_row(Buffer::Act, 8192, 64)],
    );
    assert_eq!(times(&r, 0), (0, 1, 267));
    assert_eq!(times(&r, 1), (1, 267, 287));
    assert_eq!(times(&r, 2), (2, 3, 283));
    assert_eq!(r.total_cycles, 287);
    assert_eq!(rec(&r, 0).cost.stalls, stalls(0, 0, 0, 10, 0));
    assert_eq!(rec(&r, 1).cost.stalls, stalls(0, 0, 0, 10, 6));
    assert_eq!(rec(&r, 2).cost.stalls, stalls(0, 0, 0, 10, 254));
    assert_eq!(unit(&r, "load").stalls, stalls(0, 0, 0, 20, 6));
    assert_eq!(unit(&r, "store").stalls, stalls(0, 0, 0, 10, 254));
    assert_eq!((r.dram_read_bytes, r.dram_write_bytes), (2048 + 32, 128));
    assert_eq!(unit(&r, "load").busy_cycles, 266 + 20);
    assert_eq!(unit(&r, "store").busy_cycles, 280);
}

#[test]
fn no_contention_when_the_bus_is_free() {
    // A store issued after a load finished waits only for latency: load 1..27 (64 FP16:
    // 8 bursts, 16 data cycles), store waits on it (semaphore 1) and starts at 27, data 37..53.
    let r = run(&ArchConfig::tiny(), vec![load_row(Buffer::Act, 0, 64).signal(1), store_row(Buffer::Act, 4096, 64).wait(1)]);
    assert_eq!(times(&r, 0), (0, 1, 27));
    assert_eq!(times(&r, 1), (1, 27, 53));
    assert_eq!(rec(&r, 1).cost.stalls, stalls(27 - 2, 0, 0, 10, 0));
}

// ---------------------------------------------------------------------------------------------
// (d) Semaphores: chains add up, independent work overlaps

#[test]
fn a_semaphore_chain_is_the_sum() {
    // 0: load 64 FP16 (128 bytes, 8 bursts): 10 + 16 = 26 cycles, 1..27, signals 1.
    // 1: WS GEMM 6 x 4 x 8 (28 cycles, see one_dense_ws_tile): ready at 2, waits for 1 until 27,
    //    runs 27..55 (dependency stall 25), signals 2.
    // 2: store 6 x 4 FP32 = 96 bytes = 6 bursts: 10 + 12 = 22 cycles; ready at 3, runs 55..77
    //    (dependency stall 52).
    // total = 1 + 26 + 28 + 22 = 77.
    let r = run(
        &ArchConfig::tiny(),
        vec![
            load_row(Buffer::Act, 0, 64).signal(1),
            dense(Dataflow::Ws, 1, 6, 4, 8).wait(1).signal(2),
            store_row(Buffer::Acc, 4096, 24).wait(2),
        ],
    );
    assert_eq!(times(&r, 0), (0, 1, 27));
    assert_eq!(times(&r, 1), (1, 27, 55));
    assert_eq!(times(&r, 2), (2, 55, 77));
    assert_eq!(r.total_cycles, 77);
    assert_eq!(rec(&r, 1).cost.stalls.dependency, 25);
    assert_eq!(rec(&r, 2).cost.stalls.dependency, 52);
    assert_eq!(unit(&r, "tensor").stalls.dependency, 25);
    assert_eq!(unit(&r, "store").stalls.dependency, 52);
    // compute_cycles counts the tensor engine only.
    assert_eq!((r.compute_cycles, r.stall_cycles), (28, 77 - 28));
}

#[test]
fn independent_load_and_gemm_overlap() {
    // Load 1..27 and an 85-cycle GEMM (6 x 8 x 16, see ws_folds_multiply) dispatched at 1, so
    // running 2..87: total max(27, 87) = 87, not 1 + 26 + 85.
    let arch = ArchConfig::tiny();
    let r = run(&arch, vec![load_row(Buffer::Act, 0, 64), dense(Dataflow::Ws, 1, 6, 8, 16)]);
    assert_eq!(times(&r, 0), (0, 1, 27));
    assert_eq!(times(&r, 1), (1, 2, 87));
    assert_eq!(r.total_cycles, 87);
    // A 28-cycle GEMM 2..30 beside the 26-cycle load: total 30.
    let r = run(&arch, vec![load_row(Buffer::Act, 0, 64), dense(Dataflow::Ws, 1, 6, 4, 8)]);
    assert_eq!(times(&r, 1), (1, 2, 30));
    assert_eq!(r.total_cycles, 30);
    // A store waiting on both (semaphores 1 and 2) starts when the later finishes, 87, and runs
    // 22 cycles (96 bytes as above): 109.
    let r = run(
        &arch,
        vec![
            load_row(Buffer::Act, 0, 64).signal(1),
            dense(Dataflow::Ws, 1, 6, 8, 16).signal(2),
            store_row(Buffer::Acc, 4096, 24).wait(1).wait(2),
        ],
    );
    assert_eq!(times(&r, 2), (2, 87, 109));
    assert_eq!(rec(&r, 2).cost.stalls.dependency, 87 - 3);
}

#[test]
fn a_signal_can_be_waited_on_ahead_of_time() {
    // Semaphores count: two loads signal 4 twice, then two GEMMs each wait once. Load A 1..27;
    // load B waits for the load unit, 27..53 (the bus is free again by then). GEMM X (28 cycles)
    // starts at 27 on A's signal, ends 55; GEMM Y has B's signal at 53 and starts when the
    // engine is free, 55..83.
    let r = run(
        &ArchConfig::tiny(),
        vec![
            load_row(Buffer::Act, 0, 64).signal(4),
            load_row(Buffer::Act, 0, 64).signal(4),
            dense(Dataflow::Ws, 1, 6, 4, 8).wait(4),
            dense(Dataflow::Ws, 1, 6, 4, 8).wait(4),
        ],
    );
    assert_eq!(times(&r, 1), (1, 27, 53));
    assert_eq!(times(&r, 2), (2, 27, 55));
    assert_eq!(times(&r, 3), (3, 55, 83));
    assert_eq!(r.total_cycles, 83);
    // Y headed its queue once X started, and its signal came before the engine was free at 55:
    // no dependency stall. X waited 27 - 3 = 24.
    assert_eq!(rec(&r, 3).cost.stalls.dependency, 0);
    assert_eq!(rec(&r, 2).cost.stalls.dependency, 24);
}

// ---------------------------------------------------------------------------------------------
// (e) Queue depth

/// Three 28-cycle GEMMs, then an independent 26-cycle load.
fn three_gemms_then_a_load() -> Vec<Instruction> {
    let g = || dense(Dataflow::Ws, 1, 6, 4, 8);
    vec![g(), g(), g(), load_row(Buffer::Act, 0, 64)]
}

#[test]
fn queue_depth_one_delays_a_later_independent_instruction() {
    // Depth 1: GEMM A dispatched 0, runs 1..29. GEMM B dispatched 1 (A left the queue when it
    // started), waits for the engine, runs 29..57. GEMM C cannot enter the full tensor queue
    // until B starts at 29: dispatched 29, runs 57..85. The load is dispatched next, at 30, and
    // runs 31..57.
    let arch = ArchConfig { control: ControlConfig { queue_depth: 1 }, ..ArchConfig::tiny() };
    let r = run(&arch, three_gemms_then_a_load());
    assert_eq!(times(&r, 0), (0, 1, 29));
    assert_eq!(times(&r, 1), (1, 29, 57));
    assert_eq!(times(&r, 2), (29, 57, 85));
    assert_eq!(times(&r, 3), (30, 31, 57));
    assert_eq!(r.total_cycles, 85);
    // Waiting for a busy unit is not a dependency stall.
    assert_eq!(rec(&r, 1).cost.stalls.dependency, 0);
}

#[test]
fn queue_depth_four_dispatches_one_per_cycle() {
    // Depth 4 (tiny's own): A, B, C, load dispatched at 0, 1, 2, 3; the load runs 4..30 while
    // the GEMMs run back to back 1..29, 29..57, 57..85.
    let r = run(&ArchConfig::tiny(), three_gemms_then_a_load());
    assert_eq!(times(&r, 0), (0, 1, 29));
    assert_eq!(times(&r, 1), (1, 29, 57));
    assert_eq!(times(&r, 2), (2, 57, 85));
    assert_eq!(times(&r, 3), (3, 4, 30));
    assert_eq!(r.total_cycles, 85);
    // Six GEMMs then the load: GEMMs 1..5 fill the 4-deep queue by cycle 4 (GEMM 0 left it at 1
    // when it started), GEMM 5 enters when GEMM 1 starts at 29, and the load is dispatched at 30.
    let g = || dense(Dataflow::Ws, 1, 6, 4, 8);
    let r = run(&ArchConfig::tiny(), vec![g(), g(), g(), g(), g(), g(), load_row(Buffer::Act, 0, 64)]);
    assert_eq!(rec(&r, 4).dispatched, 4);
    assert_eq!(times(&r, 5), (29, 1 + 5 * 28, 1 + 6 * 28));
    assert_eq!(times(&r, 6), (30, 31, 57));
}

// ---------------------------------------------------------------------------------------------
// (f) Limited readers and writers per buffer (block-RAM buffers)

/// `tiny` with at most `readers` readers and `writers` writers per buffer partition, and
/// `partitions` partitions.
fn tiny_partitioned(readers: u32, writers: u32, partitions: u32) -> ArchConfig {
    let base = ArchConfig::tiny();
    ArchConfig { buffers: BufferConfig { readers, writers, partitions, ..base.buffers.clone() }, ..base }
}

/// `tiny` with at most `readers` readers and `writers` writers per buffer.
fn tiny_limited(readers: u32, writers: u32) -> ArchConfig {
    tiny_partitioned(readers, writers, 1)
}

/// `vec copy` of `count` elements from `a` to `dst`: ceil(count / 4) + 2 + 2 cycles on tiny's
/// vector unit.
fn copy(count: u32, (a_buf, a): (Buffer, u32), (dst_buf, dst): (Buffer, u32)) -> Instruction {
    Instruction::new(Op::Vec { op: VecOp::Copy, count, dst_buf, dst, a_buf, a, b_buf: a_buf, b: a, p0: 0, p1: 0, p2: 0, p3: 0 })
}

/// `vec copy` of 4 elements (5 cycles) from the start of one buffer to the start of another.
fn copy4(from: Buffer, to: Buffer) -> Instruction {
    copy(4, (from, 0), (to, 0))
}

#[test]
fn one_writer_serializes_the_writers_of_a_buffer() {
    // The load writes act 1..27; the copy into act, ready at 2, runs 2..7 without a limit and
    // waits for the load with one writer: 27..32, 25 cycles of buffer_access and no dependency.
    let program = || vec![load_row(Buffer::Act, 0, 64), copy4(Buffer::Master, Buffer::Act)];
    let free = run(&tiny_limited(0, 0), program());
    assert_eq!(times(&free, 1), (1, 2, 7));
    let r = run(&tiny_limited(0, 1), program());
    assert_eq!(times(&r, 0), (0, 1, 27));
    assert_eq!(times(&r, 1), (1, 27, 32));
    assert_eq!(rec(&r, 1).cost.stalls, Stalls { buffer_access: 25, ..Stalls::default() });
    assert_eq!(unit(&r, "vector").stalls.buffer_access, 25);
    // A copy into another buffer overlaps the load.
    let r = run(&tiny_limited(1, 1), vec![load_row(Buffer::Act, 0, 64), copy4(Buffer::Master, Buffer::Mask)]);
    assert_eq!(times(&r, 1), (1, 2, 7));
}

#[test]
fn one_reader_serializes_the_readers_in_unit_order() {
    // The store reads acc 1..23 (96 bytes, see a_semaphore_chain_is_the_sum). The WS GEMM
    // (28 cycles) reads acc too (its reduction folds add up there), ready at 2; the copy out of
    // acc, ready at 3. With two readers the GEMM runs 2..30 next to the store and the copy waits
    // for the store: 23..28.
    let program = || vec![store_row(Buffer::Acc, 4096, 24), dense(Dataflow::Ws, 1, 6, 4, 8), copy4(Buffer::Acc, Buffer::Master)];
    let r = run(&tiny_limited(2, 0), program());
    assert_eq!(times(&r, 1), (1, 2, 30));
    assert_eq!(times(&r, 2), (2, 23, 28));
    // With one reader both wait for the store; at 23 the tensor unit starts first (unit order),
    // and the copy waits for it: 51..56.
    let r = run(&tiny_limited(1, 0), program());
    assert_eq!(times(&r, 0), (0, 1, 23));
    assert_eq!(times(&r, 1), (1, 23, 51));
    assert_eq!(times(&r, 2), (2, 51, 56));
    assert_eq!(rec(&r, 1).cost.stalls.buffer_access, 23 - 2);
    assert_eq!(rec(&r, 2).cost.stalls.buffer_access, 51 - 3);
    assert_eq!(r.total_cycles, 56);
}

#[test]
fn an_instruction_that_needs_more_readers_than_a_buffer_has_is_an_error() {
    let add = Instruction::new(Op::Vec {
        op: VecOp::Add,
        count: 4,
        dst_buf: Buffer::Acc,
        dst: 0,
        a_buf: Buffer::Act,
        a: 0,
        b_buf: Buffer::Act,
        b: 8,
        p0: 0,
        p1: 0,
        p2: 0,
        p3: 0,
    });
    let error = Machine::new(&tiny_limited(1, 1), Mode::TimingOnly).run(&Program { insns: vec![add] }).unwrap_err();
    assert_eq!(
        error.to_string(),
        "instruction 0 (vec): it needs 2 operand reads, but buffers.readers = 1 of buffer act, so it can never start"
    );
    // Two readers take it.
    assert!(Machine::new(&tiny_limited(2, 1), Mode::TimingOnly).run(&Program { insns: vec![add] }).is_ok());
}

#[test]
fn partitions_limit_readers_and_writers_each() {
    // tiny's act buffer holds 32768 elements: two partitions of 16384. The store reads act
    // 0..24 from cycle 1 (48 bytes); a copy out of the other partition, ready at 2, runs next to
    // it with one reader per partition, and waits for it with one partition or when its range
    // reaches into the store's partition.
    let store = store_row(Buffer::Act, 4096, 24);
    let upper = copy(4, (Buffer::Act, 16384), (Buffer::Master, 0));
    let straddling = copy(8, (Buffer::Act, 16380), (Buffer::Master, 0));
    let r = run(&tiny_partitioned(1, 1, 2), vec![store, upper]);
    assert_eq!(times(&r, 1), (1, 2, 7));
    let one = run(&tiny_partitioned(1, 1, 1), vec![store, upper]);
    let store_end = times(&one, 0).2;
    assert!(store_end > 7, "the store must outlast the copy for the waits below to show");
    assert_eq!(times(&one, 1), (1, store_end, store_end + 5));
    let r = run(&tiny_partitioned(1, 1, 2), vec![store, straddling]);
    assert_eq!(times(&r, 1), (1, store_end, store_end + 6));
    assert_eq!(rec(&r, 1).cost.stalls.buffer_access, store_end - 2);
    // Writers likewise: the load writes act 0..64 (1..27); a copy into the upper partition
    // runs next to it.
    let load = load_row(Buffer::Act, 0, 64);
    let r = run(&tiny_partitioned(1, 1, 2), vec![load, copy(4, (Buffer::Master, 0), (Buffer::Act, 20000))]);
    assert_eq!(times(&r, 1), (1, 2, 7));
    let r = run(&tiny_partitioned(1, 1, 2), vec![load, copy(4, (Buffer::Master, 0), (Buffer::Act, 60))]);
    assert_eq!(times(&r, 1), (1, 27, 32));
}

#[test]
fn partitions_must_divide_the_buffers() {
    let mut arch = tiny_partitioned(2, 1, 3);
    assert!(arch.validate().unwrap_err().to_string().contains("buffers.partitions"));
    arch.buffers.partitions = 32;
    assert!(arch.validate().unwrap_err().to_string().contains("power of two from 1 to 16"));
}
