//! The controller's RTL (`satkit_hw::rtl::controller`), simulated in rust-hdl, starts every
//! instruction in the cycle the simulator's controller does: tiled GEMM programs from the
//! compiler and random multi-unit programs with random semaphores, each unit finishing when
//! the simulator's cost model says, and each queue head's buffer use given as the machine's
//! decoders give it (tiny's buffers have two partitions of two readers and one writer). A
//! mismatch names the first instruction that starts in a different cycle.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_hdl::prelude::*;
use satkit_compiler::gemm::{plan, GemmLayout, GemmOptions, GemmProblem};
use satkit_hw::isa::{Buffer, Instruction, Op, Program, PruneOrder, Unit, VecOp, WeightFormat};
use satkit_hw::operands::BUFFERS;
use satkit_hw::rtl::controller::{slots, Controller, UNITS};
use satkit_hw::rtl::settle;
use satkit_hw::ArchConfig;
use satkit_sim::{Machine, Mode};

fn tick(c: &mut Controller) {
    c.clock.next = Clock { clk: true };
    settle(c);
    c.clock.next = Clock { clk: false };
    settle(c);
}

fn word_bits(insn: &Instruction) -> Bits<256> {
    let w = insn.encode().unwrap().0;
    let mut bits = Bits::<256>::default();
    for (i, limb) in w.iter().enumerate() {
        for b in 0..64 {
            bits = bits.replace_bit(64 * i + b, (limb >> b) & 1 == 1);
        }
    }
    bits
}

/// Start cycle of every instruction in the simulator, and how long each runs.
fn simulated(arch: &ArchConfig, program: &Program) -> Option<Vec<(u64, u64)>> {
    let mut m = Machine::new(arch, Mode::TimingOnly);
    m.record_instructions(true);
    let report = m.run(program).ok()?;
    let mut out = vec![(0, 0); program.insns.len()];
    for r in &report.instructions {
        out[r.index] = (r.start, r.end - r.start);
    }
    Some(out)
}

/// Runs `program` on the controller RTL, units finishing after the given durations; returns
/// the start cycle of every instruction.
fn on_rtl(arch: &ArchConfig, program: &Program, durations: &[u64]) -> Vec<Option<u64>> {
    let words: Vec<Bits<256>> = program.insns.iter().map(word_bits).collect();
    let mut c = Controller::new(arch);
    c.connect_all();
    let (slots, parts) = (slots(arch), arch.buffers.partitions as usize);
    c.length.next = (program.insns.len() as u64).into();
    c.start.next = true;
    settle(&mut c);
    let mut fetched = words[c.imem_addr.val().index()];
    tick(&mut c);
    c.start.next = false;
    let mut starts = vec![None; program.insns.len()];
    let mut ends: [Option<u64>; UNITS] = [None; UNITS];
    let limit = 20 * durations.iter().sum::<u64>() + 1000;
    for t in 0..limit {
        c.imem_data.next = fetched;
        for (done, end) in c.unit_done.iter_mut().zip(&ends) {
            done.next = *end == Some(t);
        }
        settle(&mut c);
        // Each queue head's buffer use, as the machine's decoders give it (`issue_index` names
        // the head in every cycle; `rtl_buffer_use` checks the decoders against this).
        for u in 0..UNITS {
            let head = &program.insns[c.issue_index[u].val().index().min(program.insns.len() - 1)].op;
            let used = head.buffer_use(arch).unwrap_or_default();
            for b in 0..BUFFERS {
                for p in 0..parts {
                    let k = u * slots + b * parts + p;
                    c.head_reads[k].next = u64::from(used.reads[b][p]).into();
                    c.head_writes[k].next = used.writes[b][p] == 1;
                }
            }
        }
        settle(&mut c);
        assert!(!c.bad_opcode.val() && !c.overflow.val(), "cycle {t}: the controller stopped");
        assert_eq!(c.cycle.val().to_u64(), t, "cycle counter");
        if !c.busy.val() {
            break;
        }
        for (u, end) in ends.iter_mut().enumerate() {
            if c.issue[u].val() {
                let index = c.issue_index[u].val().index();
                assert_eq!(c.issue_word[u].val(), words[index], "instruction {index}: issued word");
                assert_eq!(program.insns[index].op.unit(), Unit::ALL[u], "instruction {index}: issued on unit {u}");
                assert!(starts[index].is_none(), "instruction {index} issued twice");
                starts[index] = Some(t);
                *end = Some(t + durations[index]);
            }
        }
        let addr = c.imem_addr.val().index();
        fetched = words.get(addr).copied().unwrap_or_default();
        tick(&mut c);
    }
    starts
}

fn assert_same_cycles(arch: &ArchConfig, program: &Program, what: &str) {
    let sim = simulated(arch, program).unwrap_or_else(|| panic!("{what}: the simulator refuses the program"));
    let durations: Vec<u64> = sim.iter().map(|&(_, d)| d).collect();
    let rtl = on_rtl(arch, program, &durations);
    for (i, (&(want, _), got)) in sim.iter().zip(&rtl).enumerate() {
        assert_eq!(
            *got,
            Some(want),
            "{what}: instruction {i} ({}) starts at cycle {got:?} on the RTL, {want} in the simulator",
            program.insns[i]
        );
    }
}

#[test]
fn tiled_gemm_programs_start_every_instruction_in_the_simulators_cycle() {
    let arch = ArchConfig::tiny();
    for (m, n, k, weights) in [(8, 8, 32, WeightFormat::Dense), (12, 8, 64, WeightFormat::Sparse("2:8".parse().unwrap()))] {
        let p = GemmProblem { m, n, k, weights };
        let kernel = plan(&arch, &p, &GemmOptions::default(), GemmLayout::packed(&arch, &p, 0)).unwrap();
        assert_same_cycles(&arch, &kernel.program, &format!("gemm {m}x{n}x{k} {weights:?}"));
    }
}

/// A random program over every unit but the tensor engine: loads, stores, prunes, updates
/// and vector ops of random small sizes, each waiting on up to three semaphores
/// that earlier instructions signal and signalling up to three.
fn random_program(rng: &mut ChaCha8Rng, len: usize) -> Program {
    let mut tokens = [0u32; 8];
    let mut insns = Vec::new();
    for _ in 0..len {
        let count = rng.gen_range(1..40u32);
        let op = match rng.gen_range(0..6) {
            0 => Op::Load {
                buf: Buffer::Act,
                sram: 0,
                dram: 0,
                rows: rng.gen_range(1..4),
                cols: count,
                dram_row_stride: count,
                dram_col_stride: 1,
                sram_row_stride: count,
            },
            1 => Op::Store {
                buf: Buffer::Act,
                sram: 0,
                dram: 4096,
                rows: 1,
                cols: count,
                dram_row_stride: count,
                dram_col_stride: 1,
                sram_row_stride: count,
            },
            2 => Op::Prune {
                order: if rng.gen_bool(0.5) { PruneOrder::Ff } else { PruneOrder::Bp },
                nm: WeightFormat::Sparse("2:4".parse().unwrap()),
                rows: 4 * rng.gen_range(1..4),
                cols: 4 * rng.gen_range(1..4),
                src: 0,
                dst: 0,
                write_mask: true,
                mask: 0,
            },
            3 => Op::Update { count, weight: 0, momentum: 64, grad: 0, use_mask: false, mask: 0, hyper: 128 },
            4 => Op::Vec {
                op: VecOp::Add,
                count,
                dst_buf: Buffer::Act,
                dst: 0,
                a_buf: Buffer::Act,
                a: 64,
                b_buf: Buffer::Act,
                b: 128,
                p0: 0,
                p1: 0,
                p2: 0,
                p3: 0,
            },
            _ => Op::Vec {
                op: VecOp::Relu,
                count,
                dst_buf: Buffer::Act,
                dst: 256,
                a_buf: Buffer::Act,
                a: 256,
                b_buf: Buffer::Act,
                b: 256,
                p0: 0,
                p1: 0,
                p2: 0,
                p3: 0,
            },
        };
        let mut insn = Instruction::new(op);
        for _ in 0..rng.gen_range(0..=3) {
            let s = rng.gen_range(1..8usize);
            if tokens[s] > 0 {
                tokens[s] -= 1;
                insn = insn.wait(s as u8);
            }
        }
        for _ in 0..rng.gen_range(0..=3) {
            let s = rng.gen_range(1..8usize);
            tokens[s] += 1;
            insn = insn.signal(s as u8);
        }
        insns.push(insn);
    }
    Program { insns }
}

#[test]
fn random_programs_start_every_instruction_in_the_simulators_cycle() {
    let arch = ArchConfig::tiny();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut checked = 0;
    while checked < 12 {
        let program = random_program(&mut rng, 40);
        // Random semaphore use can deadlock when units take each other's tokens: the
        // simulator refuses such programs, and they are skipped.
        if simulated(&arch, &program).is_none() {
            continue;
        }
        assert_same_cycles(&arch, &program, &format!("random program {checked}"));
        checked += 1;
    }
}
