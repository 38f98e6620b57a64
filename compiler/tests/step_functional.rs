//! The compiled training step computes the right numbers: a tiny Linear + ReLU + Linear +
//! softmax cross-entropy model, compiled for the `tiny` machine and run functionally on the
//! simulator, gives the loss and updated master weights of a straightforward f64 computation
//! of the same step (with FP16 rounding where the hardware rounds) within FP16 tolerance, under
//! every schedule; and the pre-generated FF and BP copies of a conv whose BP is a transposed
//! conv follow the N:M rule in their (flipped) layouts.

use half::f16;
use satkit_compiler::model::{Layer, LayerKind, Method, Model, Shape, SparsityPolicy, MODEL_INPUT};
use satkit_compiler::step::{self, StepOptions};
use satkit_hw::ArchConfig;
use satkit_sim::{Machine, Mode};

const BATCH: usize = 8;
const IN: usize = 16;
const HIDDEN: usize = 12;
const CLASSES: usize = 5;
const HYPER: [f32; 4] = [0.5, 0.9, 0.01, 0.0];

fn linear(name: &str, input: &str, out: u64) -> Layer {
    Layer {
        name: name.into(),
        kind: LayerKind::Linear { out_features: out, bias: false },
        inputs: vec![input.into()],
        sparsity: None,
    }
}

fn model() -> Model {
    let layers = vec![
        linear("fc1", MODEL_INPUT, HIDDEN as u64),
        Layer { name: "relu".into(), kind: LayerKind::Relu, inputs: vec!["fc1".into()], sparsity: None },
        linear("fc2", "relu", CLASSES as u64),
        Layer { name: "loss".into(), kind: LayerKind::SoftmaxCrossEntropy, inputs: vec!["fc2".into()], sparsity: None },
    ];
    Model { name: "tiny-mlp".into(), input: Shape::Flat(IN as u64), classes: Some(CLASSES as u64), layers }
}

/// Deterministic values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn h(x: f64) -> f64 {
    f16::from_f64(x).to_f64()
}

fn f16_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|&x| f16::from_f64(x).to_le_bytes()).collect()
}

fn f32_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect()
}

fn read_f32(m: &Machine, addr: u64, n: usize) -> Vec<f64> {
    m.read_dram(addr, n * 4).unwrap().chunks(4).map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()
}

/// `out[r][c] = sum_k a[r][k] * b[c][k]` (`b` stored one row per output column).
fn matmul_bt(a: &[f64], b: &[f64], rows: usize, cols: usize, depth: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] = (0..depth).map(|k| a[r * depth + k] * b[c * depth + k]).sum();
        }
    }
    out
}

fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

struct Reference {
    loss: f64,
    w1: Vec<f64>,
    w2: Vec<f64>,
    dw1: Vec<f64>,
    dw2: Vec<f64>,
}

/// The step in f64: operands rounded to FP16 where the machine stores FP16, products and sums
/// exact, weight gradients and the update in full precision.
fn reference(x: &[f64], labels: &[usize], w1: &[f64], w2: &[f64], v1: &[f64], v2: &[f64]) -> Reference {
    let (w1h, w2h): (Vec<f64>, Vec<f64>) = (w1.iter().map(|&w| h(w)).collect(), w2.iter().map(|&w| h(w)).collect());
    let a1: Vec<f64> = matmul_bt(x, &w1h, BATCH, HIDDEN, IN).into_iter().map(h).collect();
    let r1: Vec<f64> = a1.iter().map(|&v| v.max(0.0)).collect();
    let logits: Vec<f64> = matmul_bt(&r1, &w2h, BATCH, CLASSES, HIDDEN).into_iter().map(h).collect();
    let mut loss = 0.0;
    let mut dlogits = vec![0.0; BATCH * CLASSES];
    for b in 0..BATCH {
        let row = &logits[b * CLASSES..(b + 1) * CLASSES];
        let max = row.iter().cloned().fold(f64::MIN, f64::max);
        let sum: f64 = row.iter().map(|&z| (z - max).exp()).sum();
        loss += -(row[labels[b]] - max - sum.ln());
        for c in 0..CLASSES {
            let p = (row[c] - max).exp() / sum;
            dlogits[b * CLASSES + c] = h((p - f64::from(u8::from(c == labels[b]))) / BATCH as f64);
        }
    }
    loss /= BATCH as f64;
    // fc2: dW2 = dlogits^T . r1 (C_out x K); dr1 = dlogits . W2.
    let dw2 = matmul_bt(&transpose(&dlogits, BATCH, CLASSES), &transpose(&r1, BATCH, HIDDEN), CLASSES, HIDDEN, BATCH);
    let dr1: Vec<f64> =
        matmul_bt(&dlogits, &transpose(&w2h, CLASSES, HIDDEN), BATCH, HIDDEN, CLASSES).into_iter().map(h).collect();
    let da1: Vec<f64> = dr1.iter().zip(&a1).map(|(&g, &a)| if a > 0.0 { g } else { 0.0 }).collect();
    let dw1 = matmul_bt(&transpose(&da1, BATCH, HIDDEN), &transpose(x, BATCH, IN), HIDDEN, IN, BATCH);
    let [lr, mu, wd, _] = HYPER.map(f64::from);
    let update = |w: &[f64], v: &[f64], g: &[f64]| -> Vec<f64> {
        w.iter().zip(v).zip(g).map(|((&w, &v), &g)| w - lr * (mu * v + g + wd * w)).collect()
    };
    Reference { loss, w1: update(w1, v1, &dw1), w2: update(w2, v2, &dw2), dw1, dw2 }
}

/// `|got - want| <= rel * max|want| + 1e-6`, element-wise, with a message naming the tensor.
fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    let scale = want.iter().fold(0f64, |a, &b| a.max(b.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rel * scale + 1e-6, "{what}[{i}]: simulator {g}, reference {w} (scale {scale})");
    }
}

/// What one simulated step leaves in DRAM: the loss, both weight gradients, both updated
/// masters and the next step's FF copy of fc1.
#[derive(Debug, PartialEq)]
struct StepResult {
    loss: f64,
    dw1: Vec<f64>,
    dw2: Vec<f64>,
    w1: Vec<f64>,
    w2: Vec<f64>,
    ff1: Vec<u8>,
}

fn run_step(options: &StepOptions, x: &[f64], labels: &[usize], w: [&[f64]; 4]) -> StepResult {
    let [w1, w2, v1, v2] = w;
    let arch = ArchConfig::tiny();
    let policy = SparsityPolicy::new(Method::Dense, "2:8".parse().unwrap());
    let c = step::compile(&arch, &model(), BATCH as u64, &policy, options, &mut |_, _| {}).unwrap();
    let m = &c.manifest;
    let map = |name: &str| m.layers.iter().find(|l| l.name == name).and_then(|l| l.weights).unwrap();
    let (map1, map2) = (map("fc1"), map("fc2"));
    let mut sim = Machine::new(&arch, Mode::Functional);
    sim.write_dram(m.input, &f16_bytes(x)).unwrap();
    sim.write_dram(m.labels, &f32_bytes(&labels.iter().map(|&l| l as f64).collect::<Vec<_>>())).unwrap();
    sim.write_dram(m.hyper, &f32_bytes(&HYPER.map(f64::from))).unwrap();
    for (wm, w, v) in [(map1, w1, v1), (map2, w2, v2)] {
        sim.write_dram(wm.master, &f32_bytes(w)).unwrap();
        sim.write_dram(wm.momentum, &f32_bytes(v)).unwrap();
        // Dense layers: the FF copy is the FP16 master the previous step's pre-generation wrote.
        sim.write_dram(wm.ff_vals, &f16_bytes(w)).unwrap();
        if wm.dense != 0 && wm.dense != wm.ff_vals {
            sim.write_dram(wm.dense, &f16_bytes(w)).unwrap();
        }
    }
    sim.run(&c.program).unwrap_or_else(|e| panic!("{options:?}: {e}"));
    let loss_bytes = sim.read_dram(m.loss, 2).unwrap();
    StepResult {
        loss: f16::from_le_bytes([loss_bytes[0], loss_bytes[1]]).to_f64(),
        dw1: read_f32(&sim, map1.grad, HIDDEN * IN),
        dw2: read_f32(&sim, map2.grad, CLASSES * HIDDEN),
        w1: read_f32(&sim, map1.master, HIDDEN * IN),
        w2: read_f32(&sim, map2.master, CLASSES * HIDDEN),
        ff1: sim.read_dram(map1.ff_vals, HIDDEN * IN * 2).unwrap(),
    }
}

#[test]
fn compiled_step_matches_an_f64_training_step() {
    let x: Vec<f64> = values(BATCH * IN, 1, 1.0).into_iter().map(h).collect();
    let labels: Vec<usize> = (0..BATCH).map(|b| (b * 3 + 1) % CLASSES).collect();
    let w1 = values(HIDDEN * IN, 2, 0.5);
    let w2 = values(CLASSES * HIDDEN, 3, 0.5);
    let v1 = values(HIDDEN * IN, 4, 0.05);
    let v2 = values(CLASSES * HIDDEN, 5, 0.05);
    let want = reference(&x, &labels, &w1, &w2, &v1, &v2);
    let on = StepOptions::default();
    let got = run_step(&on, &x, &labels, [&w1, &w2, &v1, &v2]);
    assert!(
        (got.loss - want.loss).abs() <= 2e-3 * want.loss.abs().max(1.0),
        "loss: simulator {}, reference {}",
        got.loss,
        want.loss
    );
    assert_close("dW2", &got.dw2, &want.dw2, 1e-2);
    assert_close("dW1", &got.dw1, &want.dw1, 1e-2);
    // Compare the weight change, the part the step computes, not the unchanged bulk.
    let delta = |new: &[f64], old: &[f64]| -> Vec<f64> { new.iter().zip(old).map(|(a, b)| a - b).collect() };
    assert_close("W1 change", &delta(&got.w1, &w1), &delta(&want.w1, &w1), 1e-2);
    assert_close("W2 change", &delta(&got.w2, &w2), &delta(&want.w2, &w2), 1e-2);
    // The next step's FF copies are the FP16 updated masters.
    for (i, c) in got.ff1.chunks(2).enumerate() {
        assert_eq!(f16::from_le_bytes([c[0], c[1]]), f16::from_f64(got.w1[i]), "fc1 FF copy [{i}]");
    }
    // Every schedule (the side pipeline, fused or split BP/WU, searched or fixed tilings)
    // computes the same bits: the summation order is fixed by the numerics, not the schedule.
    for options in [
        StepOptions { interleave: false, ..on },
        StepOptions { pregen: false, ..on },
        StepOptions { offline_schedule: false, ..on },
    ] {
        assert_eq!(run_step(&options, &x, &labels, [&w1, &w2, &v1, &v2]), got, "{options:?}");
    }
}

/// A small CNN whose middle conv is a "same" 3x3 conv under BDWP 2:4, so its BP is the
/// transposed conv and its BP copy uses the flipped layout.
const CNN: &str = r#"
input = [8, 4, 4]
classes = 5

[[layers]]
name = "conv1"
kind = "conv2d"
out_channels = 8
kernel = 3
padding = 1

[[layers]]
name = "conv2"
kind = "conv2d"
out_channels = 8
kernel = 3
padding = 1

[[layers]]
name = "flat"
kind = "flatten"

[[layers]]
name = "fc"
kind = "linear"
out_features = 5

[[layers]]
name = "loss"
kind = "softmax_cross_entropy"
"#;

/// The pre-generated copies of a transposed-conv layer, read back after a functional step:
/// the BP copy's row `ci * 9 + (8 - kpos)` holds the 2:4 pruning along `C_out` of the updated
/// master's column `kpos * C_in + ci` (values in FP16, in-group indices), and the FF copy
/// row `co` the 2:4 pruning along K of the master's row `co`.
#[test]
fn pregenerated_copies_of_a_transposed_conv_layer_use_the_flipped_layout() {
    let arch = ArchConfig::tiny();
    let model = satkit_compiler::model::parse(CNN, satkit_compiler::model::ModelFormat::Toml, "cnn.toml").unwrap();
    let policy = SparsityPolicy::new(Method::Bdwp, "2:4".parse().unwrap());
    let c = step::compile(&arch, &model, 2, &policy, &StepOptions::default(), &mut |_, _| {}).unwrap();
    let layer = c.manifest.layers.iter().find(|l| l.name == "conv2").unwrap();
    assert_eq!(layer.bp.as_deref(), Some("2:4"));
    let map = layer.weights.unwrap();
    let (c_out, c_in, positions) = (8usize, 8usize, 9usize);
    let k = c_in * positions;
    let mut sim = Machine::new(&arch, Mode::Functional);
    let w = values(c_out * k, 7, 0.5);
    sim.write_dram(map.master, &f32_bytes(&w)).unwrap();
    // The previous step's copies, which this step's FF and BP read: any valid 2:4 pattern.
    let pattern = |n: usize| -> Vec<u8> { (0..n).map(|i| (i % 2) as u8).collect() };
    sim.write_dram(map.ff_idx, &pattern(c_out * 36)).unwrap();
    sim.write_dram(map.bp_idx, &pattern(k * 4)).unwrap();
    sim.write_dram(c.manifest.hyper, &f32_bytes(&HYPER.map(f64::from))).unwrap();
    sim.run(&c.program).unwrap();
    let master = read_f32(&sim, map.master, c_out * k);
    let kept = |group: &[f64]| satkit_hw::nm::keep_in_group(group, 2, |v| v.abs());
    let f16_at = |bytes: &[u8], i: usize| f16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]);
    // BP copy: stored C_out = 4 per row, rows (ci, flipped kpos).
    let (bp_vals, bp_idx) = (sim.read_dram(map.bp_vals, k * 4 * 2).unwrap(), sim.read_dram(map.bp_idx, k * 4).unwrap());
    for kpos in 0..positions {
        for ci in 0..c_in {
            let column: Vec<f64> = (0..c_out).map(|co| master[co * k + kpos * c_in + ci]).collect();
            let row = ci * positions + (positions - 1 - kpos);
            for g in 0..c_out / 4 {
                for (slot, &i) in kept(&column[4 * g..4 * g + 4]).iter().enumerate() {
                    let at = row * 4 + 2 * g + slot;
                    assert_eq!(usize::from(bp_idx[at]), i, "BP copy index, kpos {kpos}, ci {ci}, group {g}");
                    assert_eq!(f16_at(&bp_vals, at), f16::from_f64(column[4 * g + i]), "BP copy value, kpos {kpos}, ci {ci}");
                }
            }
        }
    }
    // FF copy: stored K = 36 per row, groups along K.
    let (ff_vals, ff_idx) = (sim.read_dram(map.ff_vals, c_out * 36 * 2).unwrap(), sim.read_dram(map.ff_idx, c_out * 36).unwrap());
    for co in 0..c_out {
        for g in 0..k / 4 {
            let group = &master[co * k + 4 * g..co * k + 4 * g + 4];
            for (slot, &i) in kept(group).iter().enumerate() {
                let at = co * 36 + 2 * g + slot;
                assert_eq!(usize::from(ff_idx[at]), i, "FF copy index, row {co}, group {g}");
                assert_eq!(f16_at(&ff_vals, at), f16::from_f64(group[i]), "FF copy value, row {co}, group {g}");
            }
        }
    }
}
