//! Co-simulation of whole programs: DMA loads and stores of every buffer, compiled tiled GEMM
//! programs (DRAM to DRAM, double-buffered, synchronized by semaphores), random programs of
//! independent chains over every unit, and complete compiled training steps (`mlp`, `lenet5`,
//! and a small CNN with a 3x3/2 max pool), run on the Verilated machine with its host-served DRAM
//! and on the simulator from the same DRAM and buffer contents. Compared: every DRAM byte the
//! program writes and the buffers it fills, bit for bit, and every instruction's start and end
//! cycle. A mismatch names the first differing byte, element or instruction.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use satkit_compiler::gemm::{self, DataflowChoice, GemmLayout, GemmOptions, GemmProblem};
use satkit_compiler::gemm_data::{write_operands, GemmData};
use satkit_hw::isa::{Buffer, Instruction, Op, Phase, Program, PruneOrder, VecOp, WeightFormat};
use satkit_hw::{ArchConfig, Dataflow};
use satkit_rtl_cosim::{compare_timing, CosimMachine};
use satkit_sim::{Machine, Mode};

/// The first differing byte of two DRAM images.
fn compare_bytes(what: &str, base: u64, rtl: &[u8], sim: &[u8]) -> Result<(), String> {
    match rtl.iter().zip(sim).position(|(a, b)| a != b) {
        Some(i) => Err(format!(
            "{what}: first differing DRAM byte {:#x}: RTL {:#04x}, simulator {:#04x}",
            base + i as u64,
            rtl[i],
            sim[i]
        )),
        None => Ok(()),
    }
}

/// The first differing element of a buffer region (bit for bit).
fn compare_buffer(buffer: Buffer, base: u64, rtl: &[f32], sim: &[f32]) -> Result<(), String> {
    match rtl.iter().zip(sim).position(|(a, b)| a.to_bits() != b.to_bits()) {
        Some(i) => Err(format!("{buffer} element {}: RTL {:e}, simulator {:e}", base + i as u64, rtl[i], sim[i])),
        None => Ok(()),
    }
}

/// Runs `program` on both sides from `dram` (written at 0) and compares the DRAM bytes
/// `[0, dram_end)`, the buffer regions `buffers` and the timing; returns the program's cycles.
fn check(
    rtl: &mut CosimMachine,
    program: &Program,
    dram: &[u8],
    dram_end: u64,
    buffers: &[(Buffer, u64, usize)],
) -> Result<u64, String> {
    let arch = rtl.arch().clone();
    let mut sim = Machine::new(&arch, Mode::Functional);
    sim.record_instructions(true);
    sim.write_dram(0, dram).unwrap();
    rtl.write_dram(0, dram).unwrap();
    // Both sides start from the same buffer contents: the RTL's current ones.
    for &(b, addr, len) in buffers {
        let now = rtl.read_buffer(b, addr, len).unwrap();
        sim.write_buffer(b, addr, &now).unwrap();
    }
    let report = sim.run(program).map_err(|e| format!("simulator: {e}"))?;
    let run = rtl.run(program).map_err(|e| format!("RTL: {e}"))?;
    let (a, b) = (rtl.read_dram(0, dram_end as usize).unwrap(), sim.read_dram(0, dram_end as usize).unwrap());
    compare_bytes("DRAM", 0, &a, &b)?;
    for &(buf, addr, len) in buffers {
        compare_buffer(buf, addr, &rtl.read_buffer(buf, addr, len).unwrap(), &sim.read_buffer(buf, addr, len).unwrap())?;
    }
    compare_timing(&report, &run, program)?;
    Ok(run.total_cycles)
}

fn new_machine() -> CosimMachine {
    CosimMachine::new().expect("the Verilated machine resolves its ports")
}

/// Random bytes that decode to finite, moderate values in every buffer format (FP16 and FP32
/// words of small magnitude; bytes below 16 for index planes).
fn random_dram(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    (0..len).map(|i| if i % 2 == 1 { rng.gen_range(0x30..0x3c) } else { rng.gen_range(0..16) }).collect()
}

fn dma(load: bool, buf: Buffer, sram: u32, dram: u64, rows: u32, cols: u32, strides: (u32, u32, u32)) -> Op {
    let (dram_row_stride, dram_col_stride, sram_row_stride) = strides;
    if load {
        Op::Load { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride }
    } else {
        Op::Store { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride }
    }
}

#[test]
fn loads_and_stores_of_every_buffer_with_strides() {
    let mut rtl = new_machine();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let dram = random_dram(&mut rng, 1 << 16);
    for &buf in Buffer::ALL {
        for (seed, (rows, cols, strides)) in [
            (1, 1, (0, 1, 1)),
            (3, 17, (17, 1, 17)),
            (5, 7, (40, 3, 9)),
            (16, 1, (1, 1, 2)),
            (2, 33, (100, 2, 40)),
            (0, 5, (5, 1, 5)),
            // Rows apart in the buffer (`ArchConfig::dma_stream_cycles`): as many whole rows a
            // cycle as fall on distinct banks of 8 (4, 8, 1, 2, 2 and 1 rows), the 40 rows a
            // cycle each outlasting the DRAM with 4-byte bursts (`tiny-vector8`); overlapping
            // rows (later ones win), a cycle each; rows longer than the 8 lanes, 3 cycles each.
            (40, 1, (1, 1, 2)),
            (40, 1, (1, 1, 3)),
            (40, 1, (1, 1, 8)),
            (12, 3, (3, 1, 5)),
            (10, 2, (2, 1, 12)),
            (12, 3, (3, 1, 6)),
            (5, 4, (4, 1, 1)),
            (3, 20, (20, 1, 23)),
        ]
        .into_iter()
        .enumerate()
        {
            // Load, then store the same block (after the load: semaphore 1) to a fresh region.
            let sram = 3 + seed as u32;
            let load = Instruction::new(dma(true, buf, sram, 64 + 8 * seed as u64, rows, cols, strides)).signal(1);
            let store = Instruction::new(dma(false, buf, sram, 40_000 + 64 * seed as u64, rows, cols, strides)).wait(1);
            let program = Program { insns: vec![load, store] };
            let span = (rows as usize) * (strides.2 as usize).max(cols as usize) + cols as usize + 8;
            check(&mut rtl, &program, &dram, 1 << 16, &[(buf, 0, span)])
                .unwrap_or_else(|e| panic!("{buf} {rows}x{cols} {strides:?}: {e}"));
        }
    }
}

/// Tiled GEMM programs as `satkit gemm` compiles them (OS, with and without interleave; the
/// searched tiling and every other OS tiling), from the operands in DRAM to the output in DRAM.
#[test]
fn compiled_gemm_programs_from_dram_to_dram() {
    let arch = ArchConfig::resolve(satkit_rtl_cosim::BUILT_ARCH).unwrap();
    let mut rtl = new_machine();
    let problems = [
        GemmProblem { m: 13, n: 9, k: 24, weights: WeightFormat::Dense },
        GemmProblem { m: 20, n: 11, k: 64, weights: WeightFormat::Sparse("2:8".parse().unwrap()) },
        GemmProblem { m: 9, n: 17, k: 32, weights: WeightFormat::Sparse("1:4".parse().unwrap()) },
    ];
    let mut programs = 0;
    for (seed, p) in problems.iter().enumerate() {
        let layout = GemmLayout::packed(&arch, p, 0);
        let data = GemmData::random(&arch, p, seed as u64);
        let mut staging = Machine::new(&arch, Mode::Functional);
        write_operands(&mut staging, p, &layout, &data).unwrap();
        let end = layout.end(p);
        let dram = staging.read_dram(0, end as usize).unwrap();
        for interleave in [true, false] {
            let options =
                GemmOptions { dataflow: DataflowChoice::Fixed(Dataflow::Os), interleave, phase: Phase::Ff, input_t: false };
            let mut candidates = vec![gemm::plan(&arch, p, &options, layout).unwrap().program];
            for t in gemm::tilings(&arch, p, &options).unwrap().into_iter().take(6) {
                candidates.push(gemm::emit(&arch, p, &t, &layout, Phase::Ff));
            }
            for program in candidates {
                check(&mut rtl, &program, &dram, end, &[]).unwrap_or_else(|e| panic!("{p:?} interleave {interleave}: {e}"));
                programs += 1;
            }
        }
    }
    assert!(programs >= 12, "only {programs} programs");
}

/// Instructions of every unit, without semaphores, on disjoint regions, that meet the limits of
/// `tiny`'s buffers (two partitions, two readers and one writer each): at the start the store
/// and the WS GEMM read `acc`'s first partition, so the copy out of it waits, while the copy out
/// of the second partition does not, and the copy whose range straddles both waits; the copy into
/// `act` waits for the load writing it; `update` reads `master` twice (weight and momentum), so
/// `prune` waits for it, and the store of `master` for both. The RTL's controller must hold
/// every instruction back exactly as long.
#[test]
fn buffer_readers_and_writers_wait_as_the_simulators() {
    let arch = ArchConfig::resolve(satkit_rtl_cosim::BUILT_ARCH).unwrap();
    assert_eq!(
        (arch.buffers.readers, arch.buffers.writers, arch.buffers.partitions),
        (2, 1, 2),
        "the directed waits below assume tiny's limits"
    );
    assert_eq!(arch.partition_elements(Buffer::Acc), 8192);
    let mut rtl = new_machine();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let dram = random_dram(&mut rng, 1 << 14);
    let copy = |a_buf: Buffer, a: u32, dst_buf: Buffer, dst: u32| {
        Instruction::new(Op::Vec {
            op: VecOp::Copy,
            count: 8,
            dst_buf,
            dst,
            a_buf,
            a,
            b_buf: a_buf,
            b: a,
            p0: 0,
            p1: 0,
            p2: 0,
            p3: 0,
        })
    };
    let insns = vec![
        Instruction::new(dma(false, Buffer::Acc, 0, 8192, 1, 24, (24, 1, 24))),
        Instruction::new(Op::Gemm {
            dataflow: Dataflow::Ws,
            weights: WeightFormat::Dense,
            accumulate: false,
            interleave: 1,
            rows: 6,
            cols: 4,
            depth: 8,
            input: 0,
            weight: 0,
            output: 1024,
            input_t: false,
            weight_t: false,
        }),
        copy(Buffer::Acc, 9000, Buffer::Mask, 2000),
        copy(Buffer::Acc, 2048, Buffer::Master, 0),
        copy(Buffer::Acc, 8188, Buffer::Mask, 3000),
        Instruction::new(dma(true, Buffer::Act, 4096, 0, 1, 64, (64, 1, 64))),
        copy(Buffer::Master, 100, Buffer::Act, 8192),
        Instruction::new(Op::Update { count: 8, weight: 200, momentum: 300, grad: 3000, use_mask: true, mask: 200, hyper: 400 }),
        Instruction::new(Op::Prune {
            order: PruneOrder::Ff,
            nm: WeightFormat::Sparse("2:4".parse().unwrap()),
            rows: 2,
            cols: 8,
            src: 500,
            dst: 1000,
            write_mask: true,
            mask: 1000,
        }),
        Instruction::new(dma(false, Buffer::Master, 600, 9000, 1, 8, (8, 1, 8))),
    ];
    let program = Program { insns };
    let regions = [
        (Buffer::Act, 0, 8200),
        (Buffer::Wgt, 0, 1100),
        (Buffer::Idx, 0, 1100),
        (Buffer::Acc, 0, 9100),
        (Buffer::Master, 0, 700),
        (Buffer::Mask, 0, 3100),
    ];
    // Moderate hyperparameters (lr, mu, wd, lambda) so the update stays finite.
    rtl.write_buffer(Buffer::Master, 400, &[0.01, 0.9, 1e-4, 2e-4]).unwrap();
    let mut sim = Machine::new(&arch, Mode::TimingOnly);
    sim.record_instructions(true);
    let report = sim.run(&program).unwrap();
    let waited: u64 = report.instructions.iter().map(|r| r.cost.stalls.buffer_access).sum();
    assert!(waited > 0, "the program does not wait for a buffer");
    check(&mut rtl, &program, &dram, 1 << 14, &regions).unwrap_or_else(|e| panic!("{e}"));
}

/// A chain of instructions on regions of its own: a DMA round trip, or the loads of a unit's
/// operands, the unit's instruction and the store of its result, synchronized by fresh
/// semaphores (the loads all signal one, which the instruction waits on once per load).
#[derive(Debug, Clone)]
enum Job {
    RoundTrip { buf: Buffer, rows: u32, cols: u32, strides: (u32, u32, u32) },
    Gemm { m: u32, n: u32, k: u32, interleave: u32, accumulate: bool, ws: bool },
    Prune { bp: bool, ratio: usize, a: u32, b: u32, write_mask: bool },
    Update { count: u32, use_mask: bool },
    Vec { op: usize, count: u32, a: usize, b: usize, dst: usize },
    SoftmaxXent { rows: u32, classes: u32, a: usize, dst: usize },
    Pool { op: usize, planes: u32, h: u32, w: u32, k: u32, stride: u32, a: usize, dst: usize },
}

fn job() -> impl Strategy<Value = Job> {
    prop_oneof![
        (0usize..6, 1u32..6, 1u32..20, 0u32..30, 1u32..4, 0u32..8).prop_map(|(b, rows, cols, drs, dcs, pad)| Job::RoundTrip {
            buf: Buffer::ALL[b],
            rows,
            cols,
            strides: (drs, dcs, cols + pad),
        }),
        (1u32..10, 1u32..10, 1u32..20, 1u32..3, any::<bool>(), any::<bool>())
            .prop_map(|(m, n, k, interleave, accumulate, ws)| Job::Gemm { m, n, k, interleave, accumulate, ws }),
        (any::<bool>(), 0usize..8, 1u32..5, 1u32..4, any::<bool>()).prop_map(|(bp, ratio, a, b, write_mask)| Job::Prune {
            bp,
            ratio,
            a,
            b,
            write_mask
        }),
        (1u32..40, any::<bool>()).prop_map(|(count, use_mask)| Job::Update { count, use_mask }),
        (0usize..4, 1u32..40, 0usize..6, 0usize..6, 0usize..6).prop_map(|(op, count, a, b, dst)| Job::Vec {
            op,
            count,
            a,
            b,
            dst
        }),
        (1u32..5, 1u32..12, 0usize..6, 0usize..6).prop_map(|(rows, classes, a, dst)| Job::SoftmaxXent { rows, classes, a, dst }),
        (0usize..4, 1u32..3, 3u32..9, 3u32..9, 1u32..4, 1u32..5, 0usize..6, 0usize..6)
            .prop_map(|(op, planes, h, w, k, stride, a, dst)| Job::Pool { op, planes, h, w, k, stride, a, dst }),
    ]
}

/// Emits the instructions of `jobs` in order, each on fresh buffer regions, DRAM regions and
/// semaphores (at most 30: ten chains of at most three).
struct Emitter<'a> {
    arch: &'a ArchConfig,
    insns: Vec<Instruction>,
    sram: [u32; 6],
    dram: u64,
    sem: u8,
    /// DRAM bytes the program needs there (class labels), as `(address, bytes)`.
    labels: Vec<(u64, Vec<u8>)>,
}

impl Emitter<'_> {
    fn next_sem(&mut self) -> u8 {
        self.sem += 1;
        assert!(usize::from(self.sem) < satkit_hw::isa::SEMAPHORES, "more chains than semaphores");
        self.sem
    }

    /// A fresh region of `len` elements in `buf`.
    fn region(&mut self, buf: Buffer, len: u32) -> u32 {
        let at = self.sram[buf as usize];
        self.sram[buf as usize] += len;
        at
    }

    /// A contiguous load or store of `len` elements of `buf` at `sram` through a fresh DRAM region.
    fn dma(&mut self, load: bool, buf: Buffer, sram: u32, len: u32) -> Instruction {
        let at = self.dram;
        self.dram += u64::from(len) * self.arch.dram_element_bytes(buf) + 64;
        Instruction::new(dma(load, buf, sram, at, 1, len, (len, 1, len)))
    }

    fn job(&mut self, j: &Job) {
        let latency = self.arch.array.accumulator_latency;
        match *j {
            Job::RoundTrip { buf, rows, cols, strides } => {
                let at = self.region(buf, (rows - 1) * strides.2 + cols);
                let bytes = self.arch.dram_element_bytes(buf);
                let extent = (u64::from(rows) * u64::from(strides.0) + u64::from(cols) * u64::from(strides.1) + 1) * bytes;
                let s = self.next_sem();
                let dram_at = self.dram;
                self.insns.push(Instruction::new(dma(true, buf, at, dram_at, rows, cols, strides)).signal(s));
                self.insns.push(Instruction::new(dma(false, buf, at, dram_at + extent, rows, cols, strides)).wait(s));
                self.dram += 2 * extent + 64;
            }
            Job::Gemm { m, n, k, interleave, accumulate, ws } => {
                let (input, weight, output) =
                    (self.region(Buffer::Act, m * k), self.region(Buffer::Wgt, n * k), self.region(Buffer::Acc, m * n));
                let (loaded, done) = (self.next_sem(), self.next_sem());
                let l1 = self.dma(true, Buffer::Act, input, m * k).signal(loaded);
                let l2 = self.dma(true, Buffer::Wgt, weight, n * k).signal(loaded);
                self.insns.extend([l1, l2]);
                let gemm = Op::Gemm {
                    dataflow: if ws { Dataflow::Ws } else { Dataflow::Os },
                    weights: WeightFormat::Dense,
                    accumulate,
                    interleave: (interleave - 1) % latency + 1,
                    rows: m,
                    cols: n,
                    depth: k,
                    input,
                    weight,
                    output,
                    input_t: false,
                    weight_t: false,
                };
                self.insns.push(Instruction::new(gemm).wait(loaded).wait(loaded).signal(done));
                let st = self.dma(false, Buffer::Acc, output, m * n).wait(done);
                self.insns.push(st);
            }
            Job::Prune { bp, ratio, a, b, write_mask } => {
                let ratios = &self.arch.array.supported_nm;
                let ratio = ratios[ratio % ratios.len()];
                let (rows, cols) = if bp { (b * ratio.m, a) } else { (a, b * ratio.m) };
                let elements = rows * cols;
                let kept = elements / ratio.m * ratio.n;
                let (src, mask) = (self.region(Buffer::Master, elements), self.region(Buffer::Mask, elements));
                // The kept values and their indices share addresses in `wgt` and `idx`.
                let dst = self.sram[Buffer::Wgt as usize].max(self.sram[Buffer::Idx as usize]);
                self.sram[Buffer::Wgt as usize] = dst + kept;
                self.sram[Buffer::Idx as usize] = dst + kept;
                let (loaded, done) = (self.next_sem(), self.next_sem());
                let load = self.dma(true, Buffer::Master, src, elements).signal(loaded);
                self.insns.push(load);
                let order = if bp { PruneOrder::Bp } else { PruneOrder::Ff };
                let op = Op::Prune { order, nm: WeightFormat::Sparse(ratio), rows, cols, src, dst, write_mask, mask };
                self.insns.push(Instruction::new(op).wait(loaded).signal(done).signal(done));
                let values = self.dma(false, Buffer::Wgt, dst, kept).wait(done);
                let indices = self.dma(false, Buffer::Idx, dst, kept).wait(done);
                self.insns.extend([values, indices]);
            }
            Job::Update { count, use_mask } => {
                let (state, grad, mask) = (
                    self.region(Buffer::Master, 2 * count + 4),
                    self.region(Buffer::Acc, count),
                    self.region(Buffer::Mask, count),
                );
                let (loaded, done) = (self.next_sem(), self.next_sem());
                let l1 = self.dma(true, Buffer::Master, state, 2 * count + 4).signal(loaded);
                let l2 = self.dma(true, Buffer::Acc, grad, count).signal(loaded);
                let l3 = self.dma(true, Buffer::Mask, mask, count).signal(loaded);
                self.insns.extend([l1, l2, l3]);
                let op =
                    Op::Update { count, weight: state, momentum: state + count, grad, use_mask, mask, hyper: state + 2 * count };
                self.insns.push(Instruction::new(op).wait(loaded).wait(loaded).wait(loaded).signal(done));
                let st = self.dma(false, Buffer::Master, state, 2 * count).wait(done);
                self.insns.push(st);
            }
            Job::Vec { op, count, a, b, dst } => {
                let (a, b, dst) = (Buffer::ALL[a], Buffer::ALL[b], Buffer::ALL[dst]);
                let (ra, rb, rd) = (self.region(a, count), self.region(b, count), self.region(dst, count));
                let (loaded, done) = (self.next_sem(), self.next_sem());
                let l1 = self.dma(true, a, ra, count).signal(loaded);
                let l2 = self.dma(true, b, rb, count).signal(loaded);
                self.insns.extend([l1, l2]);
                let op = [VecOp::Copy, VecOp::Add, VecOp::Relu, VecOp::ReluGrad][op];
                let v =
                    Op::Vec { op, count, dst_buf: dst, dst: rd, a_buf: a, a: ra, b_buf: b, b: rb, p0: 0, p1: 0, p2: 0, p3: 0 };
                self.insns.push(Instruction::new(v).wait(loaded).wait(loaded).signal(done));
                let st = self.dma(false, dst, rd, count).wait(done);
                self.insns.push(st);
            }
            Job::Pool { op, planes, h, w, k, stride, a, dst } => {
                let op = [VecOp::MaxPool, VecOp::AvgPool, VecOp::MaxPoolGrad, VecOp::AvgPoolGrad][op];
                let outputs = planes * ((h - k) / stride + 1) * ((w - k) / stride + 1);
                let grad = matches!(op, VecOp::MaxPoolGrad | VecOp::AvgPoolGrad);
                let (a, dst) = (Buffer::ALL[a], Buffer::ALL[dst]);
                let written = if grad { planes * h * w } else { outputs };
                let (ra, rb, rd) = (self.region(a, planes * h * w), self.region(Buffer::Acc, outputs), self.region(dst, written));
                let (loaded, done) = (self.next_sem(), self.next_sem());
                let l1 = self.dma(true, a, ra, planes * h * w).signal(loaded);
                let l2 = self.dma(true, Buffer::Acc, rb, outputs).signal(loaded);
                self.insns.extend([l1, l2]);
                let v = Op::Vec {
                    op,
                    count: planes,
                    dst_buf: dst,
                    dst: rd,
                    a_buf: a,
                    a: ra,
                    b_buf: Buffer::Acc,
                    b: rb,
                    p0: h,
                    p1: w,
                    p2: k,
                    p3: stride,
                };
                self.insns.push(Instruction::new(v).wait(loaded).wait(loaded).signal(done));
                let st = self.dma(false, dst, rd, written).wait(done);
                self.insns.push(st);
            }
            Job::SoftmaxXent { rows, classes, a, dst } => {
                let (a, dst) = (Buffer::ALL[a], Buffer::ALL[dst]);
                let (ra, rl, rd) =
                    (self.region(a, rows * classes), self.region(Buffer::Idx, rows), self.region(dst, rows * classes + 1));
                let (loaded, done) = (self.next_sem(), self.next_sem());
                let l1 = self.dma(true, a, ra, rows * classes).signal(loaded);
                // The labels, one byte each, from DRAM the test fills with class indices.
                self.labels.push((self.dram, (0..rows).map(|r| ((r * 5 + 1) % classes) as u8).collect()));
                let l2 = self.dma(true, Buffer::Idx, rl, rows).signal(loaded);
                self.insns.extend([l1, l2]);
                let v = Op::Vec {
                    op: VecOp::SoftmaxXent,
                    count: rows,
                    dst_buf: dst,
                    dst: rd,
                    a_buf: a,
                    a: ra,
                    b_buf: Buffer::Idx,
                    b: rl,
                    p0: classes,
                    p1: 0,
                    p2: 0,
                    p3: 0,
                };
                self.insns.push(Instruction::new(v).wait(loaded).wait(loaded).signal(done));
                let st = self.dma(false, dst, rd, rows * classes + 1).wait(done);
                self.insns.push(st);
            }
        }
    }
}

/// The program of `jobs` in order (see [`Emitter`]) and the DRAM bytes it needs.
fn program_of(arch: &ArchConfig, jobs: &[Job]) -> (Program, Vec<(u64, Vec<u8>)>) {
    let mut e = Emitter { arch, insns: Vec::new(), sram: [0; 6], dram: 1 << 12, sem: 0, labels: Vec::new() };
    for j in jobs {
        e.job(j);
    }
    (Program { insns: e.insns }, e.labels)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Random programs of up to ten independent chains over every unit the RTL has (DMA round
    /// trips, GEMMs, prunes, updates, element-wise vector ops, softmax cross-entropy, pooling): their instructions overlap on the units as
    /// the queues and semaphores allow. RTL = simulator, bytes and cycles.
    #[test]
    fn random_programs_of_independent_chains(jobs in proptest::collection::vec(job(), 1..=10), seed in any::<u64>()) {
        let mut rtl = new_machine();
        let arch = rtl.arch().clone();
        let (program, labels) = program_of(&arch, &jobs);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut dram = random_dram(&mut rng, 1 << 16);
        for (at, bytes) in labels {
            dram[at as usize..at as usize + bytes.len()].copy_from_slice(&bytes);
        }
        if let Err(e) = check(&mut rtl, &program, &dram, 1 << 16, &[(Buffer::Acc, 0, 1024), (Buffer::Mask, 0, 256)]) {
            prop_assert!(false, "{}\n{}", e, program.to_text());
        }
    }
}

/// Runs a complete compiled BDWP 2:8 training step of `model` (batch 8) for this machine on both
/// sides, each GEMM in the dataflow the compiler chose: loads, the forward pass
/// (N:M and dense GEMMs, ReLUs, pooling), the softmax cross-entropy, the backward pass, the
/// weight updates and the pre-generation of the next step's N:M copies by the SORE,
/// overlapping as the compiler scheduled them. The DRAM holds a training state after a warm-up
/// step (`step::dram_image`); the whole DRAM image, every instruction's cycles and the loss are
/// compared. Returns the program.
fn a_complete_compiled_training_step(model: &satkit_compiler::model::Model) -> Program {
    use satkit_compiler::model::{Method, SparsityPolicy};
    use satkit_compiler::step::{self, StepOptions};
    let mut rtl = new_machine();
    let arch = rtl.arch().clone();
    let policy = SparsityPolicy::new(Method::Bdwp, "2:8".parse().unwrap());
    let batch = 8u64;
    let name = &model.name;
    let compiled = step::compile(&arch, model, batch, &policy, &StepOptions::default(), &mut |_, _| {}).unwrap();
    let program = &compiled.program;
    rtl.supports(program).unwrap_or_else(|e| panic!("the RTL runs every instruction of the step: {e}"));
    let count = |m: &str| program.insns.iter().filter(|i| i.op.mnemonic() == m).count();
    let gemms = |d: Dataflow| program.insns.iter().filter(|i| matches!(i.op, Op::Gemm { dataflow, .. } if dataflow == d)).count();
    assert!(count("gemm") > 0 && count("prune") > 0 && count("update") > 0, "{} instructions", program.insns.len());
    let m = &compiled.manifest;
    let len = m.dram_bytes as usize;
    let image = step::dram_image(&arch, &compiled, model, batch, [0.05, 0.9, 5e-4, 2e-4], 8).unwrap();
    let dram = image.bytes;
    let started = std::time::Instant::now();
    let cycles = check(&mut rtl, program, &dram, len as u64, &[]).unwrap_or_else(|e| panic!("{e}"));
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{name} BDWP 2:8 step, batch {batch}: {} instructions ({} OS and {} WS GEMMs, {} vector ops), {cycles} cycles, \
         equal on RTL and simulator; {seconds:.1} s of co-simulation, {:.3e} cycles/s",
        program.insns.len(),
        gemms(Dataflow::Os),
        gemms(Dataflow::Ws),
        count("vec"),
        cycles as f64 / seconds
    );
    let loss = half::f16::from_le_bytes(rtl.read_dram(m.loss, 2).unwrap().try_into().unwrap()).to_f32();
    assert!(loss.is_finite() && loss > 0.0, "the step's loss {loss}");
    compiled.program
}

fn zoo_model(name: &str) -> satkit_compiler::model::Model {
    satkit_compiler::model::zoo::get(name).unwrap()
}

#[test]
fn a_complete_compiled_mlp_training_step() {
    let program = a_complete_compiled_training_step(&zoo_model("mlp"));
    assert!(program.insns.iter().filter(|i| i.op.mnemonic() == "gemm").count() > 200);
}

/// LeNet-5's convolutions (as GEMMs over DMA-gathered patches) and its max pooling forward and
/// backward.
#[test]
fn a_complete_compiled_lenet5_training_step() {
    let program = a_complete_compiled_training_step(&zoo_model("lenet5"));
    assert!(program.insns.iter().filter(|i| i.op.mnemonic() == "gemm").count() > 200);
}

/// A small CNN with the ImageNet ResNets' stem pooling (3x3, stride 2, padding 1): its gradient
/// adds up over overlapping windows in the vector unit's line buffer.
#[test]
fn a_complete_compiled_training_step_with_overlapping_max_pooling() {
    use satkit_compiler::model::{parse, ModelFormat};
    let text = r#"
name = "overlap-pool-cnn"
input = [1, 12, 12]
classes = 10

[[layers]]
name = "conv1"
kind = "conv2d"
out_channels = 8
kernel = 3
padding = 1
sparsity = "dense"

[[layers]]
name = "relu1"
kind = "relu"

[[layers]]
name = "pool1"
kind = "max_pool"
kernel = 3
stride = 2
padding = 1

[[layers]]
name = "flatten"
kind = "flatten"

[[layers]]
name = "fc"
kind = "linear"
out_features = 16

[[layers]]
name = "relu2"
kind = "relu"

[[layers]]
name = "classifier"
kind = "linear"
out_features = 10

[[layers]]
name = "loss"
kind = "softmax_cross_entropy"
"#;
    let model = parse(text, ModelFormat::Toml, "overlap-pool-cnn.toml").unwrap();
    let program = a_complete_compiled_training_step(&model);
    let overlapping = program.insns.iter().any(|i| matches!(i.op, Op::Vec { op: VecOp::MaxPoolGrad, p2, p3, .. } if p3 < p2));
    assert!(overlapping, "the step holds a max pooling gradient over overlapping windows");
}
