//! Co-simulation of whole programs: DMA loads and stores of every buffer, compiled tiled GEMM
//! programs (DRAM to DRAM, double-buffered, synchronized by semaphores) and random programs of
//! independent load/GEMM/store chains, run on the Verilated machine with its host-served DRAM
//! and on the simulator from the same DRAM and buffer contents. Compared: every DRAM byte the
//! program writes and the buffers it fills, bit for bit, and every instruction's start and end
//! cycle. A mismatch names the first differing byte, element or instruction.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use satkit_compiler::gemm::{self, DataflowChoice, GemmLayout, GemmOptions, GemmProblem};
use satkit_compiler::gemm_data::{write_operands, GemmData};
use satkit_hw::isa::{Buffer, Instruction, Op, Phase, Program, WeightFormat};
use satkit_hw::{ArchConfig, Dataflow};
use satkit_rtl_cosim::{CosimMachine, RtlRun};
use satkit_sim::{Machine, Mode, SimReport};

/// Every instruction's (start, end) and the total: the first difference, if any.
fn compare_timing(sim: &SimReport, rtl: &RtlRun, program: &Program) -> Result<(), String> {
    let mut records = sim.instructions.clone();
    records.sort_by_key(|r| r.index);
    for (s, r) in records.iter().zip(&rtl.instructions) {
        if (s.start, s.end) != (r.start, r.end) {
            return Err(format!(
                "instruction {} (`{}`): RTL started at cycle {} and ended at {}, the simulator {} and {}",
                s.index, program.insns[s.index], r.start, r.end, s.start, s.end
            ));
        }
    }
    if sim.total_cycles != rtl.total_cycles {
        return Err(format!("program: RTL {} cycles, the simulator {}", rtl.total_cycles, sim.total_cycles));
    }
    Ok(())
}

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
/// `[0, dram_end)`, the buffer regions `buffers` and the timing.
fn check(
    rtl: &mut CosimMachine,
    program: &Program,
    dram: &[u8],
    dram_end: u64,
    buffers: &[(Buffer, u64, usize)],
) -> Result<(), String> {
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
    compare_timing(&report, &run, program)
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

/// A chain of instructions on regions of its own: either one DMA round trip, or load the
/// operands, GEMM, store the output, synchronized by fresh semaphores.
#[derive(Debug, Clone)]
enum Job {
    RoundTrip { buf: Buffer, rows: u32, cols: u32, strides: (u32, u32, u32) },
    Gemm { m: u32, n: u32, k: u32, interleave: u32, accumulate: bool },
}

fn job() -> impl Strategy<Value = Job> {
    prop_oneof![
        (0usize..6, 1u32..6, 1u32..20, 0u32..30, 1u32..4, 0u32..8).prop_map(|(b, rows, cols, drs, dcs, pad)| Job::RoundTrip {
            buf: Buffer::ALL[b],
            rows,
            cols,
            strides: (drs, dcs, cols + pad),
        }),
        (1u32..10, 1u32..10, 1u32..20, 1u32..3, any::<bool>()).prop_map(|(m, n, k, interleave, accumulate)| Job::Gemm {
            m,
            n,
            k,
            interleave,
            accumulate
        }),
    ]
}

/// The program of `jobs` in order, each on fresh buffer regions, DRAM regions and semaphores
/// (at most 30 semaphores: ten chains of at most three).
fn program_of(arch: &ArchConfig, jobs: &[Job]) -> Program {
    let mut insns = Vec::new();
    let (mut sram, mut dram, mut sem) = ([0u32; 6], 1u64 << 12, 0u8);
    let mut next_sem = || {
        sem += 1;
        assert!(usize::from(sem) < satkit_hw::isa::SEMAPHORES, "more chains than semaphores");
        sem
    };
    let latency = arch.array.accumulator_latency;
    for j in jobs {
        match *j {
            Job::RoundTrip { buf, rows, cols, strides } => {
                let at = sram[buf as usize];
                let span = (rows - 1) * strides.2 + cols;
                sram[buf as usize] += span;
                let bytes = arch.dram_element_bytes(buf);
                let extent = (u64::from(rows) * u64::from(strides.0) + u64::from(cols) * u64::from(strides.1) + 1) * bytes;
                let s = next_sem();
                insns.push(Instruction::new(dma(true, buf, at, dram, rows, cols, strides)).signal(s));
                insns.push(Instruction::new(dma(false, buf, at, dram + extent, rows, cols, strides)).wait(s));
                dram += 2 * extent + 64;
            }
            Job::Gemm { m, n, k, interleave, accumulate } => {
                let (input, weight, output) = (sram[0], sram[1], sram[3]);
                sram[0] += m * k;
                sram[1] += n * k;
                sram[3] += m * n;
                let (sa, sw, sg) = (next_sem(), next_sem(), next_sem());
                let row = |elements: u32| (1, elements, (elements, 1, elements));
                let (r, c, st) = row(m * k);
                insns.push(Instruction::new(dma(true, Buffer::Act, input, dram, r, c, st)).signal(sa));
                dram += u64::from(m * k) * 2 + 64;
                let (r, c, st) = row(n * k);
                insns.push(Instruction::new(dma(true, Buffer::Wgt, weight, dram, r, c, st)).signal(sw));
                dram += u64::from(n * k) * 2 + 64;
                let gemm = Op::Gemm {
                    dataflow: Dataflow::Os,
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
                insns.push(Instruction::new(gemm).wait(sa).wait(sw).signal(sg));
                let (r, c, st) = row(m * n);
                insns.push(Instruction::new(dma(false, Buffer::Acc, output, dram, r, c, st)).wait(sg));
                dram += u64::from(m * n) * 4 + 64;
            }
        }
    }
    Program { insns }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Random programs of up to ten independent chains: their loads, GEMMs and stores overlap
    /// on the units as the queues and semaphores allow. RTL = simulator, bytes and cycles.
    #[test]
    fn random_programs_of_independent_chains(jobs in proptest::collection::vec(job(), 1..=10), seed in any::<u64>()) {
        let mut rtl = new_machine();
        let arch = rtl.arch().clone();
        let program = program_of(&arch, &jobs);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dram = random_dram(&mut rng, 1 << 16);
        if let Err(e) = check(&mut rtl, &program, &dram, 1 << 16, &[(Buffer::Acc, 0, 1024), (Buffer::Mask, 0, 256)]) {
            prop_assert!(false, "{}\n{}", e, program.to_text());
        }
    }
}
