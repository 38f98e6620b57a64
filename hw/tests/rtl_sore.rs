//! The SORE lane in rust-hdl simulation against the project's mask rule (`satkit_hw::nm`):
//! random groups full of ties, signed zeros, subnormals and NaN for the presets' N:M ratios
//! (1:4, 2:4, 1:8, 2:8) and wider stacks, the kept values and indices in increasing index
//! order, the mask, and the timing (a group every M cycles, its result the cycle after).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_hdl::prelude::*;
use satkit_hw::nm::{keep_in_group, mask_along_cols, mask_along_rows, NmRatio};
use satkit_hw::rtl::pe::WGT_BUS_LANES;
use satkit_hw::rtl::settle;
use satkit_hw::rtl::sore::{generate, SoreLane, SoreUnit, TOP_MODULE};
use satkit_hw::ArchConfig;

fn tick(lane: &mut SoreLane) {
    lane.clock.next = Clock { clk: true };
    settle(lane);
    lane.clock.next = Clock { clk: false };
    settle(lane);
}

/// A value drawn so that equal magnitudes are frequent.
fn random_value(rng: &mut ChaCha8Rng) -> f32 {
    const POOL: [f32; 10] = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.0, 3.0, -3.0, 1.0e-40];
    match rng.gen_range(0..10) {
        0 => f32::from_bits(rng.gen()),
        1 => f32::NAN,
        _ => POOL[rng.gen_range(0..POOL.len())],
    }
}

/// What the lane must present after a group: kept values and indices in index order, the mask.
fn expected(group: &[f32], n: usize) -> (Vec<u32>, Vec<u64>, u64) {
    let kept = keep_in_group(group, n, |w| f64::from(w.abs()));
    let values = kept.iter().map(|&i| group[i].to_bits()).collect();
    let indices = kept.iter().map(|&i| i as u64).collect();
    let mask = kept.iter().map(|&i| 1u64 << i).sum();
    (values, indices, mask)
}

/// One prune: its ratio and its groups, in stream order.
type Prune = (NmRatio, Vec<Vec<f32>>);

/// Streams `prunes` through `lane` back to back (each prune's first value, with `start`, in the
/// cycle after the previous prune's last value), one value per cycle except where `bubble`
/// says to hold `valid` low; checks every group's result on the cycle after its last value and
/// returns the cycles from the first value to the last result, inclusive.
fn run_prunes(lane: &mut SoreLane, prunes: &[Prune], bubble: &mut dyn FnMut() -> bool) -> u64 {
    // (prune, group, value) in stream order.
    let stream: Vec<(usize, usize, f32)> = prunes
        .iter()
        .enumerate()
        .flat_map(|(p, (_, groups))| groups.iter().enumerate().flat_map(move |(g, group)| group.iter().map(move |&v| (p, g, v))))
        .collect();
    let total_groups: usize = prunes.iter().map(|(_, groups)| groups.len()).sum();
    let (mut fed, mut checked, mut cycles) = (0usize, 0usize, 0u64);
    let mut last_group_fed: Option<(usize, usize)> = None;
    while checked < total_groups {
        let next = stream.get(fed).copied();
        let first_of_prune = next.is_some_and(|(p, _, _)| fed == 0 || stream[fed - 1].0 != p);
        let feed = next.is_some() && (first_of_prune || !bubble());
        if let Some((p, _, v)) = next.filter(|_| feed) {
            lane.keep.next = u64::from(prunes[p].0.n).into();
            lane.group_size.next = u64::from(prunes[p].0.m).into();
            lane.value.next = u64::from(v.to_bits()).into();
        }
        lane.start.next = feed && first_of_prune;
        lane.valid.next = feed;
        settle(lane);
        // A result shows exactly on the cycle after a group's last value.
        assert_eq!(lane.done.val(), last_group_fed.is_some(), "done on cycle {cycles}, result {checked}");
        if let Some((p, g)) = last_group_fed.take() {
            let (ratio, group) = (prunes[p].0, &prunes[p].1[g]);
            let n = ratio.n as usize;
            let (values, indices, mask) = expected(group, n);
            for slot in 0..WGT_BUS_LANES {
                let (want_value, want_index) = if slot < n { (values[slot], indices[slot]) } else { (0, 0) };
                let got_value = lane.kept_values.val().get_bits::<32>(32 * slot).to_u64() as u32;
                let got_index = lane.kept_indices.val().get_bits::<4>(4 * slot).to_u64();
                assert_eq!(
                    (got_value, got_index),
                    (want_value, want_index),
                    "{ratio} group {group:?} slot {slot}: got {:?} at {got_index}, want {:?} at {want_index}",
                    f32::from_bits(got_value),
                    f32::from_bits(want_value)
                );
            }
            assert_eq!(lane.mask.val().to_u64(), mask, "{ratio} group {group:?}: mask");
            checked += 1;
        }
        if feed {
            let (p, g, _) = stream[fed];
            fed += 1;
            if stream.get(fed).is_none_or(|&(q, h, _)| (q, h) != (p, g)) {
                last_group_fed = Some((p, g));
            }
        }
        tick(lane);
        cycles += 1;
        assert!(cycles < 100_000, "the lane never finished");
    }
    cycles
}

fn random_groups(rng: &mut ChaCha8Rng, ratio: NmRatio, count: usize) -> Vec<Vec<f32>> {
    (0..count).map(|_| (0..ratio.m).map(|_| random_value(rng)).collect()).collect()
}

#[test]
fn lane_keeps_the_nm_rule_for_every_preset_ratio() {
    let arch = ArchConfig::vcu1525();
    let mut lane = SoreLane::new(&arch);
    lane.connect_all();
    let mut rng = ChaCha8Rng::seed_from_u64(0x50e);
    // Each ratio alone, then all of them back to back, each prune starting in the write-back
    // cycle of the one before: a smaller N or M after a larger one must not see stale slots.
    let mut all = Vec::new();
    for &ratio in &arch.array.supported_nm {
        let prune = (ratio, random_groups(&mut rng, ratio, 50));
        let cycles = run_prunes(&mut lane, std::slice::from_ref(&prune), &mut || false);
        // One value per cycle, a group per M cycles, the last result one cycle later:
        // the simulator's `ceil(groups / lanes) * M + 1` for one lane.
        assert_eq!(cycles, prune.1.len() as u64 * u64::from(ratio.m) + 1, "{ratio}");
        all.push(prune);
    }
    all.extend(all.clone().into_iter().rev());
    let cycles = run_prunes(&mut lane, &all, &mut || false);
    assert_eq!(cycles, all.iter().map(|(ratio, groups)| groups.len() as u64 * u64::from(ratio.m)).sum::<u64>() + 1);
}

#[test]
fn lane_with_wider_stacks_and_stalls_keeps_the_rule() {
    // A stack of 4 slots (n_max = 4) for N up to 4 and M up to 16, with random stalls in the stream.
    let mut arch = ArchConfig::tiny();
    arch.array.n_max = 4;
    let mut lane = SoreLane::new(&arch);
    lane.connect_all();
    let mut rng = ChaCha8Rng::seed_from_u64(0x50e4);
    let mut stall_rng = ChaCha8Rng::seed_from_u64(7);
    let prunes: Vec<Prune> = [(3, 8), (4, 16), (4, 4), (1, 2), (2, 16)]
        .into_iter()
        .map(|(n, m)| {
            let ratio = NmRatio::new(n, m).unwrap();
            (ratio, random_groups(&mut rng, ratio, 25))
        })
        .collect();
    run_prunes(&mut lane, &prunes, &mut || stall_rng.gen_range(0..4) == 0);
}

#[test]
fn lane_breaks_ties_towards_the_earlier_index() {
    let arch = ArchConfig::vcu1525();
    let mut lane = SoreLane::new(&arch);
    lane.connect_all();
    let ratio = NmRatio::new(2, 4).unwrap();
    let groups = vec![
        vec![1.0, -1.0, 1.0, 0.5],
        vec![0.0, -0.0, 0.0, 0.0],
        vec![f32::NAN, 0.0, f32::NAN, -0.0],
        vec![0.5, 2.0, -2.0, 2.0],
    ];
    run_prunes(&mut lane, &[(ratio, groups.clone())], &mut || false);
    // The same expectations written out, independent of `nm`.
    assert_eq!(expected(&groups[0], 2).1, vec![0, 1]);
    assert_eq!(expected(&groups[1], 2).1, vec![0, 1]);
    assert_eq!(expected(&groups[2], 2).1, vec![1, 3]);
    assert_eq!(expected(&groups[3], 2).1, vec![1, 2]);
}

/// Runs one prune of a row-major `rows x cols` matrix through a [`SoreUnit`] as the data provider
/// would: groups listed in `groups` (each a list of element positions in in-group order), lane
/// `l` taking groups `l, l + lanes, ...`, all lanes in lockstep. Returns the mask and the cycles
/// from the first value to the last result.
fn run_unit(arch: &ArchConfig, values: &[f32], groups: &[Vec<usize>], ratio: NmRatio) -> (Vec<u8>, u64) {
    let (lanes, m) = (arch.sore.lanes as usize, ratio.m as usize);
    let mut unit = SoreUnit::new(arch);
    unit.connect_all();
    unit.keep.next = u64::from(ratio.n).into();
    unit.group_size.next = u64::from(ratio.m).into();
    let rounds = groups.len().div_ceil(lanes);
    let mut mask = vec![0u8; values.len()];
    let mut cycles = 0u64;
    for cycle in 0..=rounds * m {
        let (round, i) = (cycle / m, cycle % m);
        unit.start.next = cycle == 0;
        for l in 0..lanes {
            let group = groups.get(round * lanes + l).filter(|_| round < rounds);
            unit.valid[l].next = group.is_some();
            unit.value[l].next = u64::from(group.map_or(0, |g| values[g[i]].to_bits())).into();
        }
        settle(&mut unit);
        for l in 0..lanes {
            let finished = (cycle >= m && i == 0).then(|| groups.get((round - 1) * lanes + l)).flatten();
            assert_eq!(unit.done[l].val(), finished.is_some(), "lane {l}, cycle {cycle}");
            if let Some(group) = finished {
                let group_mask = unit.mask[l].val().to_u64();
                let kept: Vec<usize> = (0..m).filter(|&i| group_mask >> i & 1 == 1).collect();
                for (r, &i) in kept.iter().enumerate() {
                    mask[group[i]] = 1;
                    assert_eq!(unit.kept_indices[l].val().get_bits::<4>(4 * r).to_u64(), i as u64);
                    assert_eq!(unit.kept_values[l].val().get_bits::<32>(32 * r).to_u64() as u32, values[group[i]].to_bits());
                }
                cycles = cycle as u64 + 1;
            }
        }
        tick_unit(&mut unit);
    }
    (mask, cycles)
}

fn tick_unit(unit: &mut SoreUnit) {
    unit.clock.next = Clock { clk: true };
    settle(unit);
    unit.clock.next = Clock { clk: false };
    settle(unit);
}

#[test]
fn unit_prunes_in_ff_and_bp_order_like_the_mask_rule_and_the_simulator_timing() {
    let arch = ArchConfig::tiny();
    let (rows, cols) = (8, 16);
    let mut rng = ChaCha8Rng::seed_from_u64(0xff_b9);
    for &ratio in &arch.array.supported_nm {
        let m = ratio.m as usize;
        let values: Vec<f32> = (0..rows * cols).map(|_| random_value(&mut rng)).collect();
        // FF order: groups along each row; BP order: groups down each column.
        let ff: Vec<Vec<usize>> =
            (0..rows).flat_map(|r| (0..cols / m).map(move |g| (0..m).map(|i| r * cols + g * m + i).collect())).collect();
        let bp: Vec<Vec<usize>> =
            (0..cols).flat_map(|c| (0..rows / m).map(move |g| (0..m).map(|i| (g * m + i) * cols + c).collect())).collect();
        for (order, groups, want) in
            [("ff", ff, mask_along_rows(&values, rows, cols, ratio)), ("bp", bp, mask_along_cols(&values, rows, cols, ratio))]
        {
            let (mask, cycles) = run_unit(&arch, &values, &groups, ratio);
            assert_eq!(mask, want, "{order} {ratio}");
            let sim_cycles = (groups.len() as u64).div_ceil(u64::from(arch.sore.lanes)) * u64::from(ratio.m) + 1;
            assert_eq!(cycles, sim_cycles, "{order} {ratio}");
        }
    }
}

#[test]
fn emitted_sore_is_one_module_per_block_and_lints_clean() {
    // Generating the 32-lane preset takes seconds: emit the small one, size-check the large one.
    let arch = ArchConfig::tiny();
    let design = generate(&arch).unwrap();
    let count = |name: &str| design.modules.iter().find(|m| m.name == name).map(|m| m.instances);
    assert_eq!(count("sat_sore_lane"), Some(arch.sore.lanes as usize), "{:?}", design.modules);
    assert_eq!(design.modules.last().map(|m| m.name.as_str()), Some(TOP_MODULE));
    let kept = design.ports.iter().filter(|p| p.name.starts_with("kept_values$")).count();
    assert_eq!(kept, arch.sore.lanes as usize);
    satkit_hw::rtl::lint_text(&design.verilog, TOP_MODULE).unwrap();
    let vcu1525 = ArchConfig::vcu1525();
    assert_eq!(SoreUnit::new(&vcu1525).kept_values.len(), vcu1525.sore.lanes as usize);
}
