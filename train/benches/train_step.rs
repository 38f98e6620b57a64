//! Criterion benchmarks of the CPU trainer: one lenet5 training step (forward, loss,
//! backward, SGD update with mask recomputation) at batch 64 per method, and the N:M mask
//! refresh of the largest lenet5 weight (fc1, 120 x 400) alone.
//! Run: `cargo bench -p satkit-train --bench train_step`.

use criterion::{criterion_group, criterion_main, Criterion};
use satkit_hw::nm::NmRatio;
use satkit_train::data::{Dataset, Split};
use satkit_train::layers::softmax_cross_entropy;
use satkit_train::model::{Model, SparsityConfig};
use satkit_train::optim::Sgd;
use satkit_train::rng::Rng;
use satkit_train::{model_spec, BpMaskSource, LayerSparsity, Method, NmWeight};
use std::path::PathBuf;

fn train_step(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist-subset");
    let data = Dataset::load(&dir, Split::Train).expect("committed subset");
    let (x, y) = data.batch(&(0..64).collect::<Vec<_>>());
    let spec = model_spec("lenet5").expect("zoo model");
    let sgd = Sgd { momentum: 0.9, weight_decay: 5e-4 };
    let mut group = c.benchmark_group("lenet5_step_batch64");
    group.sample_size(20);
    for method in [Method::Dense, Method::Srste, Method::Bdwp] {
        let mut model = Model::new(&spec, &SparsityConfig::new(method, NmRatio { n: 2, m: 8 }), 0).expect("valid plan");
        group.bench_function(method.to_string(), |b| {
            b.iter(|| {
                let logits = model.forward(&x, true).expect("shapes");
                let out = softmax_cross_entropy(&logits, &y).expect("labels");
                model.backward(&out.grad).expect("shapes");
                model.step(&sgd, 0.01);
            })
        });
    }
    group.finish();
}

fn mask_refresh(c: &mut Criterion) {
    let mut rng = Rng::new(0);
    let w: Vec<f32> = (0..120 * 400).map(|_| rng.normal() as f32).collect();
    let s =
        LayerSparsity { method: Method::Bdwp, ratio: NmRatio { n: 2, m: 8 }, lambda: 2e-4, bp_mask_source: BpMaskSource::Dense };
    let mut nm = NmWeight::new("lenet5", "fc1", 120, 400, w, s).expect("groupable");
    c.bench_function("bdwp_mask_refresh_120x400_2of8", |b| b.iter(|| nm.refresh()));
}

criterion_group!(benches, train_step, mask_refresh);
criterion_main!(benches);
