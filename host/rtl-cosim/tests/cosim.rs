//! Co-simulation tests of single `gemm` instructions (OS and WS): run on the Verilated machine (the
//! generated RTL of the preset the crate was built for, `tiny` by default) and on the simulator
//! (`satkit_sim::Machine`), from the same buffer contents, compared element by element bit for
//! bit (outputs and the accumulator words around them) and cycle for cycle (each instruction's
//! start and end). A mismatch names the first differing element (buffer address, output row and
//! column, both values) or the first differing cycle.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use satkit_hw::isa::{Buffer, Instruction, Op, Program, WeightFormat};
use satkit_hw::{ArchConfig, Dataflow, NmRatio};
use satkit_rtl_cosim::{CosimMachine, Error};
use satkit_sim::{Machine, Mode};

/// One `gemm` with its operands in the simulator's buffer layouts.
#[derive(Debug, Clone)]
struct Case {
    insn: Op,
    input: Vec<f32>,
    weight: Vec<f32>,
    idx: Vec<f32>,
    /// The accumulator words the output region and its margins start with.
    acc: Vec<f32>,
}

/// Accumulator words compared on each side of the output region.
const MARGIN: u64 = 8;

/// Outputs (with margins) and instruction timing of one side.
#[derive(Debug)]
struct Outcome {
    acc: Vec<f32>,
    /// (start, end) of the GEMM and the program's total cycles.
    timing: (u64, u64, u64),
}

fn sparse(text: &str) -> WeightFormat {
    WeightFormat::Sparse(text.parse::<NmRatio>().expect("a valid N:M ratio"))
}

/// An FP16 value as f32: mostly moderate magnitudes, with `specials` the probability of a
/// signed zero, subnormal, extreme normal or infinity.
fn value(rng: &mut ChaCha8Rng, specials: f64) -> f32 {
    if rng.gen_bool(specials) {
        // +0, -0, the smallest subnormal, -(the largest subnormal), +-65504 (the largest normal), +-inf
        let pick = [0x0000u16, 0x8000, 0x0001, 0x83ff, 0x7bff, 0xfbff, 0x7c00, 0xfc00].map(|b| half::f16::from_bits(b).to_f32());
        return pick[rng.gen_range(0..pick.len())];
    }
    half::f16::from_f32(rng.gen_range(-8.0f32..8.0)).to_f32()
}

/// Shape and options of a case.
#[derive(Debug, Clone, Copy)]
struct Shape {
    m: usize,
    n: usize,
    k: usize,
    weights: WeightFormat,
    accumulate: bool,
    input_t: bool,
    weight_t: bool,
    interleave: u32,
    dataflow: Dataflow,
}

impl Shape {
    fn new(m: usize, n: usize, k: usize, weights: WeightFormat) -> Shape {
        Shape { m, n, k, weights, accumulate: false, input_t: false, weight_t: false, interleave: 1, dataflow: Dataflow::Os }
    }

    fn ws(self) -> Shape {
        Shape { dataflow: Dataflow::Ws, ..self }
    }
}

/// Random operands at random buffer addresses; N:M weights keep `n` sorted in-group indices
/// per group.
fn case(seed: u64, s: Shape, specials: f64) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let stored = s.weights.stored_len(s.k);
    let input = (0..s.m * s.k).map(|_| value(&mut rng, specials)).collect();
    let weight = (0..s.n * stored).map(|_| value(&mut rng, specials)).collect();
    let mut idx = vec![0f32; s.n * stored];
    if let Some(r) = s.weights.ratio() {
        let (nn, mm) = (r.n as usize, r.m as usize);
        for group in idx.chunks_mut(nn) {
            let mut chosen: Vec<u8> = (0..mm as u8).collect();
            for i in 0..nn {
                let j = rng.gen_range(i..mm);
                chosen.swap(i, j);
            }
            let mut kept = chosen[..nn].to_vec();
            kept.sort_unstable();
            for (slot, i) in group.iter_mut().zip(kept) {
                *slot = f32::from(i);
            }
        }
    }
    let acc = (0..s.m * s.n + 2 * MARGIN as usize).map(|_| rng.gen_range(-64.0f32..64.0)).collect();
    let insn = Op::Gemm {
        dataflow: s.dataflow,
        weights: s.weights,
        accumulate: s.accumulate,
        interleave: s.interleave,
        rows: s.m as u32,
        cols: s.n as u32,
        depth: s.k as u32,
        input: rng.gen_range(0..64),
        weight: rng.gen_range(0..64),
        output: MARGIN as u32 + rng.gen_range(0..64),
        input_t: s.input_t,
        weight_t: s.weight_t,
    };
    Case { insn, input, weight, idx, acc }
}

fn addresses(op: &Op) -> (u64, u64, u64, u64) {
    match *op {
        Op::Gemm { input, weight, output, rows, cols, .. } => {
            (input.into(), weight.into(), u64::from(output) - MARGIN, u64::from(rows) * u64::from(cols))
        }
        _ => unreachable!("cases are GEMMs"),
    }
}

/// The simulator's result: the one-instruction program on a functional machine.
fn simulate(arch: &ArchConfig, c: &Case) -> Outcome {
    let mut machine = Machine::new(arch, Mode::Functional);
    let (input, weight, acc_base, _) = addresses(&c.insn);
    machine.write_buffer(Buffer::Act, input, &c.input).unwrap();
    machine.write_buffer(Buffer::Wgt, weight, &c.weight).unwrap();
    machine.write_buffer(Buffer::Idx, weight, &c.idx).unwrap();
    machine.write_buffer(Buffer::Acc, acc_base, &c.acc).unwrap();
    machine.record_instructions(true);
    let report = machine.run(&Program { insns: vec![Instruction::new(c.insn)] }).expect("the simulator runs the GEMM");
    let r = &report.instructions[0];
    Outcome {
        acc: machine.read_buffer(Buffer::Acc, acc_base, c.acc.len()).unwrap(),
        timing: (r.start, r.end, report.total_cycles),
    }
}

/// The RTL's result on the Verilated machine (whose buffers may hold earlier cases' data).
fn cosimulate(unit: &mut CosimMachine, c: &Case) -> Outcome {
    let (input, weight, acc_base, _) = addresses(&c.insn);
    unit.write_buffer(Buffer::Act, input, &c.input).unwrap();
    unit.write_buffer(Buffer::Wgt, weight, &c.weight).unwrap();
    unit.write_buffer(Buffer::Idx, weight, &c.idx).unwrap();
    unit.write_buffer(Buffer::Acc, acc_base, &c.acc).unwrap();
    let run = unit.run(&Program { insns: vec![Instruction::new(c.insn)] }).expect("the RTL runs the GEMM");
    let r = run.instructions[0];
    Outcome { acc: unit.read_buffer(Buffer::Acc, acc_base, c.acc.len()).unwrap(), timing: (r.start, r.end, run.total_cycles) }
}

/// `Ok` when both sides agree bit for bit (any two NaNs count as equal: the RTL returns the
/// canonical quiet NaN, Rust's NaN bits are platform-defined) and cycle for cycle; otherwise
/// the first differing element or the two cycle counts.
fn compare(c: &Case, rtl: &Outcome, sim: &Outcome) -> Result<(), String> {
    let Op::Gemm { rows, cols, depth, weights, accumulate, input_t, weight_t, interleave, .. } = c.insn else { unreachable!() };
    let what = format!(
        "gemm {rows}x{cols}x{depth} {weights:?} interleave={interleave} accumulate={accumulate} input_t={input_t} weight_t={weight_t}"
    );
    let (_, _, acc_base, outputs) = addresses(&c.insn);
    for (i, (r, s)) in rtl.acc.iter().zip(&sim.acc).enumerate() {
        if r.to_bits() != s.to_bits() && !(r.is_nan() && s.is_nan()) {
            let at = i as u64;
            let place = if (MARGIN..MARGIN + outputs).contains(&at) {
                let o = at - MARGIN;
                format!("output ({}, {})", o / u64::from(cols), o % u64::from(cols))
            } else {
                "a word outside the output".to_string()
            };
            return Err(format!(
                "{what}: first differing acc element {} = {place}: RTL {r:e} ({:#010x}), simulator {s:e} ({:#010x})",
                acc_base + at,
                r.to_bits(),
                s.to_bits()
            ));
        }
    }
    if rtl.timing != sim.timing {
        let ((rs, re, rt), (ss, se, st)) = (rtl.timing, sim.timing);
        return Err(format!(
            "{what}: RTL started at cycle {rs}, ended at {re} ({} cycles), program {rt} cycles; \
             the simulator {ss}, {se} ({} cycles), {st}",
            re - rs,
            se - ss
        ));
    }
    Ok(())
}

/// Runs `c` on both sides and compares.
fn check(unit: &mut CosimMachine, c: &Case) -> Result<(), String> {
    let sim = simulate(unit.arch(), c);
    let rtl = cosimulate(unit, c);
    compare(c, &rtl, &sim)
}

fn new_unit() -> CosimMachine {
    CosimMachine::new().expect("the Verilated machine resolves its ports")
}

fn array(unit: &CosimMachine) -> (usize, usize) {
    (unit.arch().array.rows as usize, unit.arch().array.cols as usize)
}

#[test]
fn dense_single_folds_of_every_depth() {
    let mut unit = new_unit();
    let (r, c) = array(&unit);
    for k in 1..=24 {
        check(&mut unit, &case(k as u64, Shape::new(r, c, k, WeightFormat::Dense), 0.0)).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn dense_multi_fold_gemms_with_partial_folds() {
    let mut unit = new_unit();
    let (r, c) = array(&unit);
    for (seed, (m, n, k)) in
        [(1, 1, 1), (2 * r + 1, c + 2, 7), (r - 1, 3 * c, 16), (3 * r, c - 1, 33), (2, 2, 64)].into_iter().enumerate()
    {
        check(&mut unit, &case(100 + seed as u64, Shape::new(m, n, k, WeightFormat::Dense), 0.0))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn every_supported_nm_ratio_single_and_multi_fold() {
    let mut unit = new_unit();
    let arch = unit.arch().clone();
    let (r, c) = array(&unit);
    assert!(!arch.array.supported_nm.is_empty(), "{} supports no N:M ratio", arch.name);
    for ratio in &arch.array.supported_nm {
        let weights = WeightFormat::Sparse(*ratio);
        for (seed, (m, n, groups)) in [(r, c, 1), (r, c, 5), (2 * r + 1, c + 1, 3), (r - 1, 2 * c, 7)].into_iter().enumerate() {
            let s = Shape::new(m, n, groups * ratio.m as usize, weights);
            check(&mut unit, &case(200 + seed as u64 + 10 * u64::from(ratio.m), s, 0.0))
                .unwrap_or_else(|e| panic!("{ratio}: {e}"));
        }
    }
}

#[test]
fn accumulate_starts_from_the_old_outputs() {
    let mut unit = new_unit();
    let (r, c) = array(&unit);
    for (seed, weights) in [WeightFormat::Dense, sparse("2:4"), sparse("2:8")].into_iter().enumerate() {
        let s = Shape { accumulate: true, ..Shape::new(2 * r + 2, 2 * c - 1, 16, weights) };
        check(&mut unit, &case(400 + seed as u64, s, 0.0)).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn transposed_inputs_and_weights() {
    let mut unit = new_unit();
    let (r, c) = array(&unit);
    let shapes = [
        Shape { input_t: true, ..Shape::new(r + 3, c, 9, WeightFormat::Dense) },
        Shape { weight_t: true, ..Shape::new(r, 2 * c + 1, 11, WeightFormat::Dense) },
        Shape { input_t: true, weight_t: true, accumulate: true, ..Shape::new(2 * r - 1, c + 1, 6, WeightFormat::Dense) },
        Shape { input_t: true, ..Shape::new(r + 1, c + 2, 16, sparse("2:8")) },
    ];
    for (seed, s) in shapes.into_iter().enumerate() {
        check(&mut unit, &case(450 + seed as u64, s, 0.0)).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn interleave_up_to_the_accumulator_latency() {
    let mut unit = new_unit();
    let (r, c) = array(&unit);
    let latency = unit.arch().array.accumulator_latency;
    assert!(latency > 1, "interleave needs an accumulator latency above 1 to be tested");
    for interleave in 1..=latency {
        let width = c * interleave as usize;
        let shapes = [
            Shape::new(r, width, 12, WeightFormat::Dense),
            Shape::new(2 * r + 1, 2 * width + 1, 7, WeightFormat::Dense),
            Shape { accumulate: true, ..Shape::new(r + 1, width - 1, 16, sparse("2:8")) },
            Shape { input_t: true, weight_t: true, ..Shape::new(r - 1, 3 * width, 9, WeightFormat::Dense) },
            Shape::new(3, width + 2, 24, sparse("1:4")),
        ];
        for (seed, s) in shapes.into_iter().enumerate() {
            let s = Shape { interleave, ..s };
            check(&mut unit, &case(480 + seed as u64 + 10 * u64::from(interleave), s, 0.05)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn signed_zeros_subnormals_infinities_and_nan() {
    let mut unit = new_unit();
    let (r, c) = array(&unit);
    for (seed, weights) in [WeightFormat::Dense, sparse("2:4"), sparse("2:8")].into_iter().enumerate() {
        for round in 0..8u64 {
            let s = Shape { accumulate: round % 2 == 1, ..Shape::new(r, c, 16, weights) };
            check(&mut unit, &case(500 + 16 * seed as u64 + round, s, 0.3)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// The comparison catches a one-ulp difference, a NaN against a number, a write outside the
/// output and a cycle off by one.
#[test]
fn a_broken_result_is_reported_with_its_position() {
    let mut unit = new_unit();
    let (r, c) = array(&unit);
    let k = case(600, Shape::new(r, c, 8, sparse("2:4")), 0.0);
    let sim = simulate(unit.arch(), &k);
    let rtl = cosimulate(&mut unit, &k);
    compare(&k, &rtl, &sim).unwrap_or_else(|e| panic!("{e}"));
    let at = MARGIN as usize + r * c - 2;
    let mut off = Outcome { acc: rtl.acc.clone(), timing: rtl.timing };
    off.acc[at] = f32::from_bits(off.acc[at].to_bits() ^ 1);
    let e = compare(&k, &off, &sim).unwrap_err();
    assert!(e.contains(&format!("output ({}, {})", (r * c - 2) / c, (r * c - 2) % c)), "{e}");
    off.acc[at] = f32::NAN;
    assert!(compare(&k, &off, &sim).is_err());
    let mut outside = Outcome { acc: rtl.acc.clone(), timing: rtl.timing };
    outside.acc[0] += 1.0;
    assert!(compare(&k, &outside, &sim).unwrap_err().contains("outside the output"));
    let (s0, e0, t0) = rtl.timing;
    let late = Outcome { acc: rtl.acc.clone(), timing: (s0, e0 + 1, t0 + 1) };
    let e = compare(&k, &late, &sim).unwrap_err();
    assert!(e.contains(&format!("ended at {}", e0 + 1)) && e.contains(&format!("{}, {}", s0, e0)), "{e}");
}

#[test]
fn weight_stationary_gemms() {
    let mut unit = new_unit();
    let arch = unit.arch().clone();
    let (r, c) = array(&unit);
    let mut shapes = vec![
        // One fold, one input row, many rows; reduction folds and column folds; partial ones.
        Shape::new(r, c, 2 * r, WeightFormat::Dense),
        Shape::new(1, 1, 1, WeightFormat::Dense),
        Shape::new(1, c, 3 * 2 * r, WeightFormat::Dense),
        Shape::new(13, 2 * c + 1, 5 * r + 3, WeightFormat::Dense),
        Shape::new(2 * r + 3, c - 1, 7, WeightFormat::Dense),
        Shape { accumulate: true, ..Shape::new(9, c + 2, 4 * r, WeightFormat::Dense) },
        Shape { input_t: true, ..Shape::new(r + 3, c, 9, WeightFormat::Dense) },
        Shape { weight_t: true, accumulate: true, ..Shape::new(5, 2 * c + 1, 3 * r + 1, WeightFormat::Dense) },
        Shape { input_t: true, weight_t: true, ..Shape::new(2 * r - 1, c + 1, 6, WeightFormat::Dense) },
    ];
    // A transposed input's corner turn: windows of X rows, whole and partial, over several
    // reduction and column folds, and a single row.
    let x = arch.ws_input_chunk(u64::from(arch.array.n_max)) as usize;
    shapes.extend([
        Shape { input_t: true, ..Shape::new(2 * x + 3, 2 * c + 1, 5 * r + 3, WeightFormat::Dense) },
        Shape { input_t: true, accumulate: true, ..Shape::new(2 * x, c, 4 * r, WeightFormat::Dense) },
        Shape { input_t: true, weight_t: true, ..Shape::new(x + 1, c - 1, 2 * r + 1, WeightFormat::Dense) },
        Shape { input_t: true, ..Shape::new(1, c, 3 * r, WeightFormat::Dense) },
    ]);
    for ratio in &arch.array.supported_nm {
        let m = ratio.m as usize;
        let weights = WeightFormat::Sparse(*ratio);
        shapes.push(Shape::new(r, c, m, weights));
        shapes.push(Shape::new(11, c + 3, (2 * r + 1) * m, weights));
        shapes.push(Shape { accumulate: true, ..Shape::new(3, 2 * c, r * m, weights) });
    }
    for (seed, s) in shapes.into_iter().enumerate() {
        check(&mut unit, &case(800 + seed as u64, s.ws(), 0.0)).unwrap_or_else(|e| panic!("{s:?}: {e}"));
    }
    // Special values, and an OS GEMM between WS ones on the same array.
    for round in 0..6u64 {
        let s = Shape { accumulate: round % 2 == 1, ..Shape::new(r + 1, c, 4 * r, sparse("2:8")) };
        let s = if round % 3 == 2 { s } else { s.ws() };
        check(&mut unit, &case(850 + round, s, 0.3)).unwrap_or_else(|e| panic!("{s:?}: {e}"));
    }
}

#[test]
fn what_the_rtl_does_not_implement_is_refused() {
    let mut unit = new_unit();
    let mut is = case(700, Shape::new(2, 2, 8, WeightFormat::Dense), 0.0).insn;
    if let Op::Gemm { dataflow, .. } = &mut is {
        *dataflow = Dataflow::Is;
    }
    let e = unit.run(&Program { insns: vec![Instruction::new(is)] }).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains("is"), "{e}");
    // The corner turn stages dense folds only.
    let s = Shape { input_t: true, ..Shape::new(3, 2, 16, sparse("2:8")) }.ws();
    let e = unit.run(&Program { insns: vec![Instruction::new(case(703, s, 0.0).insn)] }).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains("transposed input"), "{e}");
    // The simulator's own checks come first: too much interleave is a bad program.
    let too_interleaved = unit.arch().array.accumulator_latency + 1;
    let s = Shape { interleave: too_interleaved, ..Shape::new(2, 2, 8, WeightFormat::Dense) };
    let e = unit.run(&Program { insns: vec![Instruction::new(case(701, s, 0.0).insn)] }).unwrap_err();
    assert!(matches!(e, Error::Program(_)) && e.to_string().contains("interleave"), "{e}");
    let capacity = unit.arch().buffer_elements(Buffer::Acc);
    assert!(unit.read_buffer(Buffer::Acc, capacity - 1, 2).is_err());
    // The machine still works after refusing.
    check(&mut unit, &case(702, Shape::new(2, 2, 8, sparse("2:4")), 0.0)).unwrap_or_else(|e| panic!("{e}"));
}

fn formats() -> Vec<WeightFormat> {
    let arch = ArchConfig::resolve(satkit_rtl_cosim::BUILT_ARCH).expect("the built architecture resolves");
    std::iter::once(WeightFormat::Dense).chain(arch.array.supported_nm.iter().map(|&r| WeightFormat::Sparse(r))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Three GEMMs in a row on one unit (so no state carries over wrongly), OS and WS mixed,
    /// each of any shape up to three folds each way, any supported format, any interleave the
    /// machine allows, accumulating or not, transposed operands (dense weights only, and a
    /// transposed input with sparse weights in OS only), values
    /// with occasional specials: RTL = simulator.
    #[test]
    fn rtl_equals_simulator_on_random_gemms(
        seeds in proptest::collection::vec(any::<u64>(), 3),
        m in 1usize..13,
        n in 1usize..13,
        steps in 1usize..9,
        format in 0usize..16,
        flags in 0u8..16,
        interleave in 1u32..16,
        specials in prop_oneof![Just(0.0f64), Just(0.1f64)],
    ) {
        let formats = formats();
        let mut unit = new_unit();
        let slots = unit.arch().array.accumulator_latency;
        for (i, &seed) in seeds.iter().enumerate() {
            let weights = formats[(format + i) % formats.len()];
            let k = match weights {
                WeightFormat::Dense => steps * 2 - (seed % 2) as usize, // odd depths too
                WeightFormat::Sparse(r) => steps * r.m as usize,
            };
            let (mm, nn) = ((m + 3 * i) % 13 + 1, (n + 5 * i) % 13 + 1);
            let dataflow = if (flags >> 3) & 1 == (i % 2) as u8 { Dataflow::Ws } else { Dataflow::Os };
            let dense = weights == WeightFormat::Dense;
            let s = Shape {
                accumulate: flags & 1 == 1,
                // The WS corner turn takes dense folds only (the RTL refuses the others).
                input_t: flags & 2 == 2 && (dense || dataflow == Dataflow::Os),
                weight_t: flags & 4 == 4 && dense,
                interleave: (interleave + i as u32 - 1) % slots + 1,
                dataflow,
                ..Shape::new(mm, nn, k, weights)
            };
            if let Err(e) = check(&mut unit, &case(seed, s, specials)) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
