//! Mask invariants on random weights, checked against an independent statement of the rule:
//! every group of M consecutive elements along the grouped dimension (K for FF, C_out for
//! BP) keeps exactly N, those of largest magnitude, ties going to the earlier index. The
//! masks themselves come from `satkit_hw::nm` through `NmWeight`.

use proptest::prelude::*;
use satkit_hw::nm::NmRatio;
use satkit_train::model::{Model, SparsityConfig};
use satkit_train::{model_spec, BpMaskSource, LayerSparsity, Method, NmWeight};

/// Checks one group: exactly `n` kept, and every kept element beats every dropped one
/// (strictly when the dropped one comes first).
fn check_group(vals: &[(usize, f32)], mask: &[u8], n: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(mask.iter().filter(|&&b| b == 1).count(), n);
    for (a, &(ia, va)) in vals.iter().enumerate() {
        for (b, &(ib, vb)) in vals.iter().enumerate() {
            if mask[a] == 1 && mask[b] == 0 {
                let wins = va.abs() > vb.abs() || (va.abs() == vb.abs() && ia < ib);
                prop_assert!(wins, "kept {} (|{}|) but dropped {} (|{}|)", ia, va, ib, vb);
            }
        }
    }
    Ok(())
}

fn ratio_strategy() -> impl Strategy<Value = NmRatio> {
    prop_oneof![Just((1u32, 4u32)), Just((2, 4)), Just((1, 8)), Just((2, 8)), Just((4, 8))]
        .prop_map(|(n, m)| NmRatio::new(n, m).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ff_and_bp_masks_follow_the_rule(
        ratio in ratio_strategy(), rg in 1usize..4, cg in 1usize..4,
        raw in proptest::collection::vec(-3i8..=3, 12 * 12 * 8 * 8),
        src in prop_oneof![Just(BpMaskSource::Dense), Just(BpMaskSource::ForwardMasked)],
    ) {
        let m = ratio.m as usize;
        let (c_out, k) = (rg * m, cg * m);
        // Small integers make ties frequent.
        let w: Vec<f32> = raw[..c_out * k].iter().map(|&v| f32::from(v) * 0.25).collect();
        let s = LayerSparsity { method: Method::Bdwp, ratio, lambda: 2e-4, bp_mask_source: src };
        let nm = NmWeight::new("test", "w", c_out, k, w.clone(), s).unwrap();
        let ff = nm.mask_ff().unwrap();
        let bp = nm.mask_bp().unwrap();
        for r in 0..c_out {
            for g in (0..k).step_by(m) {
                let vals: Vec<(usize, f32)> = (g..g + m).map(|c| (c, w[r * k + c])).collect();
                check_group(&vals, &ff[r * k + g..r * k + g + m], ratio.n as usize)?;
            }
        }
        let wff: Vec<f32> = w.iter().zip(ff).map(|(&v, &b)| if b == 1 { v } else { 0.0 }).collect();
        for c in 0..k {
            for g in (0..c_out).step_by(m) {
                let col: Vec<u8> = (g..g + m).map(|r| bp[r * k + c]).collect();
                match src {
                    BpMaskSource::Dense => {
                        let vals: Vec<(usize, f32)> = (g..g + m).map(|r| (r, w[r * k + c])).collect();
                        check_group(&vals, &col, ratio.n as usize)?;
                    }
                    BpMaskSource::ForwardMasked => {
                        // At most N, all inside the FF mask, the largest of W_ff.
                        prop_assert!(col.iter().filter(|&&b| b == 1).count() <= ratio.n as usize);
                        for (i, r) in (g..g + m).enumerate() {
                            prop_assert!(col[i] <= ff[r * k + c]);
                        }
                        let kept_min = (g..g + m).filter(|&r| bp[r * k + c] == 1).map(|r| wff[r * k + c].abs()).fold(f32::INFINITY, f32::min);
                        let dropped_max = (g..g + m).filter(|&r| bp[r * k + c] == 0).map(|r| wff[r * k + c].abs()).fold(0.0, f32::max);
                        prop_assert!(kept_min >= dropped_max);
                    }
                }
            }
        }
    }
}

#[test]
fn ties_go_to_the_earlier_index_along_k_and_c_out() {
    let ratio = NmRatio::new(2, 4).unwrap();
    let s = LayerSparsity { method: Method::Bdwp, ratio, lambda: 0.0, bp_mask_source: BpMaskSource::Dense };
    let nm = NmWeight::new("test", "w", 4, 4, vec![1.0; 16], s).unwrap();
    assert_eq!(nm.mask_ff().unwrap(), &[1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0]);
    assert_eq!(nm.mask_bp().unwrap(), &[1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn default_plan_keeps_first_and_last_layer_dense() {
    for name in satkit_train::MODEL_NAMES {
        let spec = model_spec(name).unwrap();
        let model = Model::new(&spec, &SparsityConfig::new(Method::Bdwp, NmRatio::new(2, 8).unwrap()), 0).unwrap();
        let plan = model.sparsity();
        assert!(plan.len() >= 3, "{name}");
        assert!(plan[0].1.is_dense() && plan.last().unwrap().1.is_dense(), "{name}");
        assert!(plan[1..plan.len() - 1].iter().all(|(_, s)| !s.is_dense()), "{name}");
        for l in &model.layers {
            if let Some(w) = l.weight() {
                assert_eq!(w.mask_ff().is_some(), !w.sparsity().is_dense(), "{name} {}", l.name());
                assert_eq!(w.mask_bp().is_some(), !w.sparsity().is_dense(), "{name} {}", l.name());
            }
        }
    }
}
