//! The WUVE lane in rust-hdl simulation against the simulator's update formula (`sim::wuve`,
//! re-implemented here because satkit-hw's tests cannot depend on satkit-sim): random and edge
//! values, bit for bit, streamed one element per cycle with bubbles, and the latency against
//! `arch.wuve.pipeline_latency` for the presets and for latencies below, at and above the lane's
//! six operation levels.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_hdl::prelude::*;
use satkit_hw::rtl::fp::QUIET_NAN;
use satkit_hw::rtl::settle;
use satkit_hw::rtl::wuve::{generate, registered_boundaries, WuveLane, WuveUnit, LEVELS, TOP_MODULE};
use satkit_hw::ArchConfig;

/// `[lr, mu, wd, lambda]` as the update reads them from the master buffer.
type Hyper = [f32; 4];

/// One element of an update.
#[derive(Debug, Clone, Copy)]
struct Element {
    weight: f32,
    momentum: f32,
    grad: f32,
    pruned: bool,
}

/// `sim::wuve::execute` for one element: one rounding per operation, in its order.
fn reference(hyper: Hyper, e: Element) -> (f32, f32) {
    let [lr, mu, wd, lambda] = hyper;
    let w = e.weight;
    let mut g = e.grad + wd * w;
    if e.pruned {
        g += lambda * w;
    }
    let v = mu * e.momentum + g;
    (w - lr * v, v)
}

/// The bits the lane must produce for the reference result `x`: NaN is the canonical quiet NaN.
fn expected_bits(x: f32) -> u32 {
    if x.is_nan() {
        QUIET_NAN
    } else {
        x.to_bits()
    }
}

fn tick(lane: &mut WuveLane) {
    lane.clock.next = Clock { clk: true };
    settle(lane);
    lane.clock.next = Clock { clk: false };
    settle(lane);
}

fn bits(x: f32) -> Bits<32> {
    u64::from(x.to_bits()).into()
}

const EDGES: [u32; 12] = [
    0x0000_0000,
    0x8000_0000,
    0x0000_0001,
    0x807f_ffff,
    0x0080_0000,
    0x3f80_0000,
    0xbf80_0000,
    0x7f7f_ffff,
    0xff7f_ffff,
    0x7f80_0000,
    0xff80_0000,
    0x7fc0_0000,
];

/// Training-like values most of the time, edges and raw bit patterns otherwise.
fn random_value(rng: &mut ChaCha8Rng, scale: f32) -> f32 {
    match rng.gen_range(0..10) {
        0 => f32::from_bits(EDGES[rng.gen_range(0..EDGES.len())]),
        1 => f32::from_bits(rng.gen()),
        _ => scale * rng.gen_range(-1.0f32..1.0),
    }
}

fn random_element(rng: &mut ChaCha8Rng) -> Element {
    Element {
        weight: random_value(rng, 0.5),
        momentum: random_value(rng, 0.05),
        grad: random_value(rng, 0.01),
        pruned: rng.gen(),
    }
}

/// Streams `elements` (a `None` is a bubble) through a fresh lane of `arch` with `hyper`;
/// checks each output against [`reference`] and that it leaves exactly `pipeline_latency`
/// cycles after it entered. Returns the cycles from the first input to the last output.
fn run_update(arch: &ArchConfig, hyper: Hyper, elements: &[Option<Element>]) -> u64 {
    let latency = arch.wuve.pipeline_latency as usize;
    let mut lane = WuveLane::new(arch);
    lane.connect_all();
    lane.learning_rate.next = bits(hyper[0]);
    lane.momentum_factor.next = bits(hyper[1]);
    lane.weight_decay.next = bits(hyper[2]);
    lane.srste_decay.next = bits(hyper[3]);
    let mut cycle = 0usize;
    let mut last_output = 0u64;
    while cycle < elements.len() + latency {
        let input = elements.get(cycle).copied().flatten();
        lane.valid.next = input.is_some();
        let e = input.unwrap_or(Element { weight: 0.0, momentum: 0.0, grad: 0.0, pruned: false });
        lane.weight.next = bits(e.weight);
        lane.momentum.next = bits(e.momentum);
        lane.grad.next = bits(e.grad);
        lane.pruned.next = e.pruned;
        settle(&mut lane);
        let entered = cycle.checked_sub(latency).and_then(|c| elements[c]);
        assert_eq!(lane.out_valid.val(), entered.is_some(), "out_valid on cycle {cycle} (latency {latency})");
        if let Some(e) = entered {
            let (want_w, want_v) = reference(hyper, e);
            let got_w = lane.new_weight.val().to_u64() as u32;
            let got_v = lane.new_momentum.val().to_u64() as u32;
            assert_eq!(
                (got_w, got_v),
                (expected_bits(want_w), expected_bits(want_v)),
                "{e:?} with {hyper:?}: got w {:e} v {:e}, want w {want_w:e} v {want_v:e}",
                f32::from_bits(got_w),
                f32::from_bits(got_v)
            );
            last_output = cycle as u64;
        }
        tick(&mut lane);
        cycle += 1;
    }
    last_output + 1
}

fn with_latency(latency: u32) -> ArchConfig {
    let mut arch = ArchConfig::tiny();
    arch.wuve.pipeline_latency = latency;
    arch
}

#[test]
fn lane_matches_the_simulator_formula_on_random_and_edge_values() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x00e_5a7);
    let training: Hyper = [0.05, 0.9, 5.0e-4, 2.0e-4];
    for arch in [ArchConfig::tiny(), ArchConfig::vcu1525(), with_latency(1), with_latency(LEVELS as u32)] {
        for round in 0..3 {
            // Training hyperparameters, then random ones (edges included) to reach every corner.
            let hyper = if round == 0 { training } else { [(); 4].map(|_| random_value(&mut rng, 1.0)) };
            let elements: Vec<Option<Element>> =
                (0..120).map(|_| if rng.gen_range(0..8) == 0 { None } else { Some(random_element(&mut rng)) }).collect();
            run_update(&arch, hyper, &elements);
        }
    }
}

#[test]
fn lane_signed_zeros_and_the_srste_term_only_where_pruned() {
    let arch = ArchConfig::tiny();
    // With lambda = -1, lambda*w = +0 turns g = -0 into +0: adding it to an unpruned element
    // (instead of skipping the addition) would change the momentum's sign.
    let hyper: Hyper = [0.0, 0.0, 0.0, -1.0];
    let neg_zero = Element { weight: -0.0, momentum: -0.0, grad: -0.0, pruned: false };
    let elements = [Some(neg_zero), Some(Element { pruned: true, ..neg_zero }), Some(Element { weight: -1.0, ..neg_zero })];
    run_update(&arch, hyper, &elements);
    assert_eq!(reference(hyper, neg_zero).1.to_bits(), 0x8000_0000, "the unpruned momentum stays -0");
    assert_eq!(reference(hyper, Element { pruned: true, ..neg_zero }).1.to_bits(), 0, "the pruned momentum is +0");
}

#[test]
fn lane_latency_is_the_configured_pipeline_latency() {
    // A full stream of `count` elements on one lane takes `count + pipeline_latency` cycles,
    // the simulator's `ceil(count / lanes) + pipeline_latency` with one lane.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for latency in [0, 1, 2, 3, 4, 5, 6, 7, 12] {
        let arch = with_latency(latency);
        let registered = registered_boundaries(latency as usize);
        assert_eq!(registered.iter().filter(|&&r| r).count(), (latency as usize).min(LEVELS));
        assert_eq!(registered[LEVELS - 1], latency > 0, "the lane's output is registered unless it is combinational");
        let elements: Vec<Option<Element>> = (0..10).map(|_| Some(random_element(&mut rng))).collect();
        assert_eq!(run_update(&arch, [0.1, 0.9, 1.0e-4, 2.0e-4], &elements), 10 + u64::from(latency));
    }
}

#[test]
fn unit_updates_an_instruction_in_the_simulator_cycle_count() {
    // `count` elements spread over the lanes (lane `l` takes elements `l, l + lanes, ...`)
    // finish in `ceil(count / lanes) + pipeline_latency` cycles, each bit for bit.
    let arch = ArchConfig::tiny();
    let (lanes, latency) = (arch.wuve.lanes as usize, arch.wuve.pipeline_latency as usize);
    let hyper: Hyper = [0.05, 0.9, 5.0e-4, 2.0e-4];
    let mut rng = ChaCha8Rng::seed_from_u64(0x00e_417);
    let elements: Vec<Element> = (0..37).map(|_| random_element(&mut rng)).collect();
    let mut unit = WuveUnit::new(&arch);
    unit.connect_all();
    unit.learning_rate.next = bits(hyper[0]);
    unit.momentum_factor.next = bits(hyper[1]);
    unit.weight_decay.next = bits(hyper[2]);
    unit.srste_decay.next = bits(hyper[3]);
    let issue_cycles = elements.len().div_ceil(lanes);
    let (mut updated, mut last_output) = (0, 0);
    for cycle in 0..issue_cycles + latency {
        for l in 0..lanes {
            let e = elements.get(cycle * lanes + l).filter(|_| cycle < issue_cycles);
            unit.valid[l].next = e.is_some();
            let e = e.copied().unwrap_or(Element { weight: 0.0, momentum: 0.0, grad: 0.0, pruned: false });
            unit.weight[l].next = bits(e.weight);
            unit.momentum[l].next = bits(e.momentum);
            unit.grad[l].next = bits(e.grad);
            unit.pruned[l].next = e.pruned;
        }
        settle(&mut unit);
        for l in 0..lanes {
            let entered = cycle.checked_sub(latency).and_then(|c| elements.get(c * lanes + l));
            assert_eq!(unit.out_valid[l].val(), entered.is_some(), "lane {l}, cycle {cycle}");
            if let Some(&e) = entered {
                let (w, v) = reference(hyper, e);
                assert_eq!(unit.new_weight[l].val().to_u64() as u32, expected_bits(w), "{e:?}");
                assert_eq!(unit.new_momentum[l].val().to_u64() as u32, expected_bits(v), "{e:?}");
                updated += 1;
                last_output = cycle + 1;
            }
        }
        unit.clock.next = Clock { clk: true };
        settle(&mut unit);
        unit.clock.next = Clock { clk: false };
        settle(&mut unit);
    }
    assert_eq!(updated, elements.len());
    assert_eq!(last_output, issue_cycles + latency);
}

#[test]
fn emitted_wuve_is_one_module_per_block_and_lints_clean() {
    // Generating the 32-lane preset takes seconds: emit the small one, size-check the large one.
    let arch = ArchConfig::tiny();
    let design = generate(&arch).unwrap();
    let count = |name: &str| design.modules.iter().find(|m| m.name == name).map(|m| m.instances);
    let lanes = arch.wuve.lanes as usize;
    assert_eq!(count("sat_wuve_lane"), Some(lanes), "{:?}", design.modules);
    assert_eq!(count("sat_fp32_mul"), Some(4 * lanes), "{:?}", design.modules);
    assert_eq!(count("sat_fp32_add"), Some(4 * lanes), "{:?}", design.modules);
    assert_eq!(design.modules.last().map(|m| m.name.as_str()), Some(TOP_MODULE));
    let weights = design.ports.iter().filter(|p| p.name.starts_with("new_weight$")).count();
    assert_eq!(weights, lanes);
    satkit_hw::rtl::lint_text(&design.verilog, TOP_MODULE).unwrap();
    let vcu1525 = ArchConfig::vcu1525();
    assert_eq!(WuveUnit::new(&vcu1525).new_weight.len(), vcu1525.wuve.lanes as usize);
}
