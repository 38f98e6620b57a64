//! CUDA against the CPU reference (issue 6): from the same initial model and the same batch,
//! two training steps on the GPU (`satkit_train::cuda`) and on the CPU give the same loss,
//! weights, biases, momentum and batch-norm state within FP32 tolerance, and identical N:M
//! masks, for dense, SR-STE and BDWP (both BP-mask sources) on `mlp`, `lenet5` and
//! `vgg-small`.
//!
//! Where no GPU can be opened, each test instead checks the refusal: without the `cuda`
//! feature `Error::CudaNotCompiled`, with it `Error::CudaUnavailable` naming device 0 and
//! telling the user to rerun with `--device cpu`. So a test never passes as a silent no-op;
//! set `SATKIT_REQUIRE_GPU=1` to make a missing GPU a failure (as on the GPU machine).

use satkit_hw::nm::NmRatio;
use satkit_train::cuda::{CudaDevice, CudaModel};
use satkit_train::layers::{softmax_cross_entropy, Layer};
use satkit_train::optim::Sgd;
use satkit_train::{model_spec, BpMaskSource, Error, Method, Model, SparsityConfig, Tensor};

/// Opens GPU 0, or checks that the refusal is the clean one and returns `None`.
fn device() -> Option<CudaDevice> {
    match CudaDevice::open(0) {
        Ok(d) => Some(d),
        Err(e) => {
            let msg = e.to_string();
            if satkit_train::cuda::COMPILED {
                assert!(matches!(e, Error::CudaUnavailable { ordinal: 0, .. }), "unexpected error: {msg}");
                assert!(msg.starts_with("no CUDA device 0: ") && msg.ends_with("; rerun with --device cpu"), "{msg}");
            } else {
                assert!(matches!(e, Error::CudaNotCompiled), "unexpected error: {msg}");
                assert!(msg.contains("built without CUDA support"), "{msg}");
            }
            assert!(std::env::var_os("SATKIT_REQUIRE_GPU").is_none(), "SATKIT_REQUIRE_GPU is set but: {msg}");
            eprintln!("no GPU, refusal checked: {msg}");
            None
        }
    }
}

/// A seeded batch of `b` inputs of `len` values in about [-2, 2] with labels 0..10
/// (a local generator, so the test depends on nothing but its seed).
fn batch(b: usize, shape: &[usize], seed: u64) -> (Tensor, Vec<u8>) {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as u32
    };
    let mut full = vec![b];
    full.extend_from_slice(shape);
    let n: usize = full.iter().product();
    let data = (0..n).map(|_| (next() % 4001) as f32 / 1000.0 - 2.0).collect();
    let labels = (0..b).map(|_| (next() % 10) as u8).collect();
    (Tensor::from_vec(&full, data).unwrap(), labels)
}

fn close(what: &str, layer: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{layer} {what}: lengths differ");
    let mut worst = (0.0f32, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() - rtol * w.abs();
        if err > worst.0 {
            worst = (err, i);
        }
    }
    let i = worst.1;
    assert!(worst.0 <= atol, "{layer} {what}[{i}]: GPU {} vs CPU {} (beyond {atol} + {rtol}*|CPU|)", got[i], want[i]);
}

/// Two steps on both devices from the same model and batches; compares everything.
fn agree(model: &str, method: Method, nm: (u32, u32), source: BpMaskSource, b: usize) {
    let Some(dev) = device() else { return };
    let spec = model_spec(model).unwrap();
    let mut sparsity = SparsityConfig::new(method, NmRatio::new(nm.0, nm.1).unwrap());
    sparsity.bp_mask_source = source;
    let mut cpu = Model::new(&spec, &sparsity, 7).unwrap();
    let mut gpu = CudaModel::new(&dev, &cpu).unwrap();
    let sgd = Sgd { momentum: 0.9, weight_decay: 5e-4 };
    for (step, lr) in [(0u64, 0.05f32), (1, 0.04)] {
        let (x, y) = batch(b, &spec.input, 100 + step);
        let logits = cpu.forward(&x, true).unwrap();
        let out = softmax_cross_entropy(&logits, &y).unwrap();
        cpu.backward(&out.grad).unwrap();
        cpu.step(&sgd, lr);
        let loss = gpu.train_step(&x, &y, &sgd, lr).unwrap();
        assert!(
            (loss - out.loss).abs() <= 1e-5 * out.loss.abs().max(1.0),
            "{model} step {step}: loss GPU {loss} vs CPU {}",
            out.loss
        );
    }
    let mut back = Model::new(&spec, &sparsity, 7).unwrap();
    gpu.download(&mut back).unwrap();
    let masks = gpu.masks().unwrap();
    let mut checked = 0;
    for (c, g) in cpu.layers.iter().zip(&back.layers) {
        let name = c.name();
        match (c, g) {
            (Layer::Linear(c), Layer::Linear(g)) => {
                close("weight", name, &g.weight.param.value, &c.weight.param.value, 2e-6, 1e-4);
                close("velocity", name, &g.weight.param.velocity, &c.weight.param.velocity, 2e-4, 1e-3);
                close("bias", name, &g.bias.value, &c.bias.value, 2e-6, 1e-4);
            }
            (Layer::Conv2d(c), Layer::Conv2d(g)) => {
                close("weight", name, &g.weight.param.value, &c.weight.param.value, 2e-6, 1e-4);
                close("velocity", name, &g.weight.param.velocity, &c.weight.param.velocity, 2e-4, 1e-3);
                close("bias", name, &g.bias.value, &c.bias.value, 2e-6, 1e-4);
            }
            (Layer::BatchNorm(c), Layer::BatchNorm(g)) => {
                close("gamma", name, &g.gamma.value, &c.gamma.value, 2e-6, 1e-4);
                close("beta", name, &g.beta.value, &c.beta.value, 2e-6, 1e-4);
                close("running mean", name, &g.running_mean, &c.running_mean, 1e-5, 1e-4);
                close("running var", name, &g.running_var, &c.running_var, 1e-5, 1e-4);
            }
            _ => continue,
        }
        if let Some(w) = c.weight() {
            let m = masks.iter().find(|m| m.name == name).expect("a mask entry per weight layer");
            assert_eq!(m.ff.as_deref(), w.mask_ff(), "{model} {name}: FF masks differ");
            assert_eq!(m.bp.as_deref(), w.mask_bp(), "{model} {name}: BP masks differ");
            if !w.sparsity().is_dense() {
                checked += 1;
            }
        }
    }
    if method != Method::Dense {
        assert!(checked > 0, "{model}: no sparse layer was compared");
    }
}

#[test]
fn mlp_bdwp_2_4() {
    agree("mlp", Method::Bdwp, (2, 4), BpMaskSource::Dense, 32);
}

#[test]
fn lenet5_dense() {
    agree("lenet5", Method::Dense, (2, 8), BpMaskSource::Dense, 64);
}

#[test]
fn lenet5_srste_2_8() {
    agree("lenet5", Method::Srste, (2, 8), BpMaskSource::Dense, 64);
}

#[test]
fn lenet5_bdwp_2_8() {
    agree("lenet5", Method::Bdwp, (2, 8), BpMaskSource::Dense, 64);
}

#[test]
fn lenet5_bdwp_1_8_forward_masked() {
    agree("lenet5", Method::Bdwp, (1, 8), BpMaskSource::ForwardMasked, 33);
}

#[test]
fn vgg_small_dense() {
    agree("vgg-small", Method::Dense, (2, 8), BpMaskSource::Dense, 16);
}

#[test]
fn vgg_small_bdwp_2_8() {
    agree("vgg-small", Method::Bdwp, (2, 8), BpMaskSource::Dense, 16);
}

#[test]
fn vgg_small_bdwp_2_8_forward_masked() {
    agree("vgg-small", Method::Bdwp, (2, 8), BpMaskSource::ForwardMasked, 16);
}

/// `satkit train --device cuda` end to end is the host's; here the library entry point refuses
/// or trains: a short run on synthetic data must learn (loss falls) when a GPU is present.
#[test]
fn short_training_run_learns() {
    let Some(dev) = device() else { return };
    let spec = model_spec("lenet5").unwrap();
    let sparsity = SparsityConfig::new(Method::Bdwp, NmRatio::new(2, 8).unwrap());
    let cpu = Model::new(&spec, &sparsity, 3).unwrap();
    let mut gpu = CudaModel::new(&dev, &cpu).unwrap();
    let sgd = Sgd { momentum: 0.9, weight_decay: 5e-4 };
    let (x, y) = batch(64, &spec.input, 5);
    let first = gpu.train_step(&x, &y, &sgd, 0.02).unwrap();
    let mut last = first;
    for _ in 0..30 {
        last = gpu.train_step(&x, &y, &sgd, 0.02).unwrap();
    }
    assert!(last < 0.5 * first, "loss on a repeated batch went from {first} to {last}");
}
