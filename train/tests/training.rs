//! End-to-end behaviour on the committed Fashion-MNIST subset (train/data): a short run's
//! loss falls, a run is a pure function of its seed (also across thread counts), and the
//! checkpoint holds each layer's weight and masks.

use satkit_hw::nm::NmRatio;
use satkit_train::checkpoint::{self, TensorData};
use satkit_train::data::{Dataset, Split};
use satkit_train::model::{Model, SparsityConfig};
use satkit_train::trainer::{Progress, TrainConfig};
use satkit_train::{model_spec, train, Method, Tensor, MODEL_NAMES};
use std::path::PathBuf;

fn subset() -> (Dataset, Dataset) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist-subset");
    (Dataset::load(&dir, Split::Train).unwrap(), Dataset::load(&dir, Split::Test).unwrap())
}

fn config(method: Method, epochs: usize, limit: usize) -> TrainConfig {
    TrainConfig {
        sparsity: SparsityConfig::new(method, NmRatio::new(2, 8).unwrap()),
        epochs,
        train_limit: Some(limit),
        ..TrainConfig::default()
    }
}

#[test]
fn subset_has_the_committed_sizes() {
    let (tr, te) = subset();
    assert_eq!((tr.len(), te.len(), tr.rows, tr.cols), (2000, 500, 28, 28));
}

#[test]
fn loss_falls_on_the_subset() {
    let (tr, te) = subset();
    for method in [Method::Dense, Method::Srste, Method::Bdwp] {
        let mut steps = Vec::new();
        let (_, report) = train(&config(method, 3, 2000), &tr, &te, &mut |p| {
            if let Progress::Step { loss, .. } = p {
                steps.push(loss)
            }
        })
        .unwrap();
        let h = &report.history;
        assert!(h[2].train_loss < h[0].train_loss, "{method}: {h:?}");
        assert!(steps[0] > 2.0 && h[2].train_loss < 1.0, "{method}: first step {} last epoch {}", steps[0], h[2].train_loss);
        assert!(report.test_accuracy > 0.6, "{method}: test accuracy {}", report.test_accuracy);
    }
}

#[test]
fn same_seed_gives_identical_weights_on_any_thread_count() {
    let (tr, te) = subset();
    let cfg = config(Method::Bdwp, 1, 300);
    let run = |threads: usize, cfg: &TrainConfig| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (model, _) = pool.install(|| train(cfg, &tr, &te, &mut |_| {})).unwrap();
        checkpoint::to_bytes(&model).unwrap()
    };
    let a = run(2, &cfg);
    assert!(a == run(2, &cfg), "two runs with one seed differ");
    assert!(a == run(1, &cfg), "one thread and two threads differ");
    assert!(a != run(2, &TrainConfig { seed: 1, ..cfg.clone() }), "the seed has no effect");
}

#[test]
fn checkpoint_holds_weights_and_masks() {
    let (tr, te) = subset();
    let (model, _) = train(&config(Method::Bdwp, 1, 128), &tr, &te, &mut |_| {}).unwrap();
    let dir = std::env::temp_dir().join(format!("satkit-train-ckpt-{}", std::process::id()));
    let paths = satkit_train::output::write_run(
        &dir,
        &model,
        &satkit_train::train(&config(Method::Bdwp, 1, 64), &tr, &te, &mut |_| {}).unwrap().1,
    )
    .unwrap();
    assert!(paths.iter().all(|p| p.is_file()));
    let path = dir.join("model.safetensors");
    checkpoint::save(&model, &path).unwrap();
    let tensors = checkpoint::load(&path).unwrap();
    let get = |n: &str| tensors.iter().find(|t| t.name == n).unwrap_or_else(|| panic!("{n} missing"));
    assert_eq!(get("conv2.weight").shape, vec![16, 5, 5, 8], "[C_out, kh, kw, C_in]: K in (kh, kw, c_in) order");
    assert_eq!(get("conv2.mask_ff").shape, vec![16, 5, 5, 8]);
    assert_eq!(get("fc1.mask_bp").shape, vec![120, 400]);
    assert!(tensors.iter().all(|t| !t.name.starts_with("conv1.mask") && !t.name.starts_with("fc3.mask")));
    let w = match &get("fc2.weight").data {
        TensorData::F32(v) => v.clone(),
        TensorData::U8(_) => panic!("weights are F32"),
    };
    let fc2 = model.layers.iter().find(|l| l.name() == "fc2").unwrap().weight().unwrap();
    assert_eq!(w, fc2.param.value);
    match &get("fc2.mask_bp").data {
        TensorData::U8(m) => assert_eq!(&m[..], fc2.mask_bp().unwrap()),
        TensorData::F32(_) => panic!("masks are U8"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_zoo_model_trains_a_step_under_every_method() {
    let (tr, _) = subset();
    let (x, y) = tr.batch(&[0, 1, 2, 3]);
    for name in MODEL_NAMES {
        let spec = model_spec(name).unwrap();
        for method in [Method::Dense, Method::Srste, Method::Bdwp] {
            for ratio in ["2:4", "2:8", "1:8"] {
                let mut model = Model::new(&spec, &SparsityConfig::new(method, ratio.parse().unwrap()), 0).unwrap();
                let logits = model.forward(&x, true).unwrap();
                assert_eq!(logits.shape, vec![4, 10], "{name}");
                let out = satkit_train::layers::softmax_cross_entropy(&logits, &y).unwrap();
                let dx: Tensor = model.backward(&out.grad).unwrap();
                assert_eq!(dx.shape, x.shape);
                model.step(&satkit_train::optim::Sgd { momentum: 0.9, weight_decay: 5e-4 }, 0.01);
            }
        }
        // Spec shapes chain: each layer's input is the previous output.
        for pair in spec.layers.windows(2) {
            assert_eq!(pair[0].output, pair[1].input, "{name}: {} -> {}", pair[0].name, pair[1].name);
        }
    }
}
