//! End-to-end GEMM lowering: functional results against f64, N:M against zero-filled dense
//! bit for bit, every dataflow and loop order, and the 2:8 compute-cycle ratio.

use satkit_compiler::gemm::{self, DataflowChoice, GemmLayout, GemmOptions, GemmProblem, Tiling};
use satkit_compiler::gemm_data::{check_against_f64, read_output, write_operands, GemmData};
use satkit_hw::isa::{Phase, WeightFormat};
use satkit_hw::{ArchConfig, Dataflow};
use satkit_sim::{Machine, Mode, SimReport};

fn run(
    arch: &ArchConfig,
    p: &GemmProblem,
    data: &GemmData,
    tiling: Option<Tiling>,
    dataflow: DataflowChoice,
) -> (Vec<f32>, SimReport) {
    let layout = GemmLayout::packed(arch, p, 0);
    let options = GemmOptions { dataflow, interleave: true, phase: Phase::Ff, input_t: false };
    let program = match tiling {
        Some(t) => gemm::emit(arch, p, &t, &layout, Phase::Ff),
        None => gemm::plan(arch, p, &options, layout).unwrap().program,
    };
    let mut m = Machine::new(arch, Mode::Functional);
    write_operands(&mut m, p, &layout, data).unwrap();
    let report = m.run(&program).unwrap();
    (read_output(&m, p, &layout).unwrap(), report)
}

#[test]
fn every_tiling_matches_f64_and_each_other_bit_for_bit() {
    let arch = ArchConfig::tiny();
    for weights in
        [WeightFormat::Dense, WeightFormat::Sparse("2:8".parse().unwrap()), WeightFormat::Sparse("1:4".parse().unwrap())]
    {
        let p = GemmProblem { m: 37, n: 19, k: 96, weights };
        let data = GemmData::random(&arch, &p, 7);
        let options = GemmOptions { dataflow: DataflowChoice::Auto, interleave: true, phase: Phase::Ff, input_t: false };
        let mut first: Option<Vec<f32>> = None;
        for t in gemm::tilings(&arch, &p, &options).unwrap() {
            let (out, _) = run(&arch, &p, &data, Some(t), DataflowChoice::Auto);
            let acc = check_against_f64(&p, &data, &out);
            assert!(acc.ok, "{weights:?} {t:?}: {acc:?}");
            match &first {
                None => first = Some(out),
                Some(f) => assert!(f.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()), "{t:?} differs"),
            }
        }
    }
}

#[test]
fn sparse_equals_dense_with_zero_filled_weight_bit_for_bit() {
    let arch = ArchConfig::tiny();
    for ratio in ["1:4", "2:4", "1:8", "2:8"] {
        let sparse = GemmProblem { m: 24, n: 12, k: 64, weights: WeightFormat::Sparse(ratio.parse().unwrap()) };
        let data = GemmData::random(&arch, &sparse, 3);
        let dense = GemmProblem { weights: WeightFormat::Dense, ..sparse };
        for d in [Dataflow::Os, Dataflow::Ws] {
            let (a, _) = run(&arch, &sparse, &data, None, DataflowChoice::Fixed(d));
            let (b, _) = run(&arch, &dense, &data, None, DataflowChoice::Fixed(d));
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{ratio} {d}");
        }
    }
}

#[test]
fn compute_bound_2_8_takes_a_quarter_of_dense_compute() {
    let arch = ArchConfig::vcu1525();
    let dense = GemmProblem { m: 2048, n: 1024, k: 4096, weights: WeightFormat::Dense };
    let sparse = GemmProblem { weights: WeightFormat::Sparse("2:8".parse().unwrap()), ..dense };
    let options = GemmOptions::default();
    let cycles = |p: &GemmProblem| {
        let k = gemm::plan(&arch, p, &options, GemmLayout::packed(&arch, p, 0)).unwrap();
        Machine::new(&arch, Mode::TimingOnly).run(&k.program).unwrap().compute_cycles as f64
    };
    let ratio = cycles(&sparse) / cycles(&dense);
    assert!((0.23..0.30).contains(&ratio), "2:8 / dense compute cycles = {ratio}");
}

#[test]
fn unsupported_requests_are_refused() {
    let sys = ArchConfig::systolic();
    let p = GemmProblem { m: 8, n: 8, k: 16, weights: WeightFormat::Sparse("2:8".parse().unwrap()) };
    let e = gemm::plan(&sys, &p, &GemmOptions::default(), GemmLayout::packed(&sys, &p, 0)).unwrap_err();
    assert!(e.to_string().contains("2:8") && e.to_string().contains("systolic"), "{e}");
    let tiny = ArchConfig::tiny();
    let p = GemmProblem { m: 8, n: 8, k: 12, weights: WeightFormat::Sparse("2:8".parse().unwrap()) };
    assert!(gemm::plan(&tiny, &p, &GemmOptions::default(), GemmLayout::packed(&tiny, &p, 0)).is_err());
    let p = GemmProblem { weights: WeightFormat::Dense, ..p };
    let o = GemmOptions { dataflow: DataflowChoice::Fixed(Dataflow::Is), ..GemmOptions::default() };
    assert!(gemm::plan(&tiny, &p, &o, GemmLayout::packed(&tiny, &p, 0)).unwrap_err().to_string().contains("is"));
}
