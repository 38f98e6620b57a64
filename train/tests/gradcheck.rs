//! Finite-difference gradient checks of every layer's backward pass against its forward
//! pass, in FP32 with f64 loss accumulation: the loss is `L = sum(r * layer(x))` for a fixed
//! random `r`, and each analytic gradient is compared with the central difference
//! `(L(v + eps) - L(v - eps)) / (2 eps)`.

use satkit_train::layers::{softmax_cross_entropy, BatchNorm, Conv2d, ConvGeom, Flatten, Layer, Linear, Pool2d, PoolKind, Relu};
use satkit_train::rng::Rng;
use satkit_train::{LayerSparsity, NmWeight, Tensor};

const EPS: f32 = 1e-2;

fn random(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| rng.normal() as f32).collect()).unwrap()
}

fn dot(a: &Tensor, r: &Tensor) -> f64 {
    a.data.iter().zip(&r.data).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
}

fn close(num: f64, ana: f64, what: &str) {
    assert!((num - ana).abs() <= 3e-3 + 1e-2 * ana.abs(), "{what}: numeric {num} vs analytic {ana}");
}

/// A layer's parameters as `(name, values, gradient)`.
type Params<'a> = Vec<(&'static str, &'a mut Vec<f32>, &'a mut Vec<f32>)>;

/// Checks dL/dx of `layer` at `x`, and dL/dp for every parameter exposed by `param`.
fn check(layer: &mut Layer, x: &Tensor, param: fn(&mut Layer) -> Params<'_>) {
    let mut rng = Rng::new(99);
    let y = layer.forward(x, true).unwrap();
    let r = random(&y.shape, &mut rng);
    let dx = layer.backward(&r).unwrap();
    let loss = |layer: &mut Layer, x: &Tensor| dot(&layer.forward(x, true).unwrap(), &r);
    for i in 0..x.len() {
        let mut xp = x.clone();
        xp.data[i] += EPS;
        let lp = loss(layer, &xp);
        xp.data[i] -= 2.0 * EPS;
        let lm = loss(layer, &xp);
        close((lp - lm) / (2.0 * f64::from(EPS)), f64::from(dx.data[i]), &format!("{} dx[{i}]", layer.name()));
    }
    let grads: Vec<(&str, Vec<f32>)> = param(layer).into_iter().map(|(n, _, g)| (n, g.clone())).collect();
    for (pi, (pname, grad)) in grads.iter().enumerate() {
        for (i, &g) in grad.iter().enumerate() {
            let mut l = [0.0; 2];
            for (s, sign) in [1.0f32, -1.0].iter().enumerate() {
                param(layer)[pi].1[i] += sign * EPS;
                l[s] = loss(layer, x);
                param(layer)[pi].1[i] -= sign * EPS;
            }
            close((l[0] - l[1]) / (2.0 * f64::from(EPS)), f64::from(g), &format!("{} d{pname}[{i}]", layer.name()));
        }
    }
}

fn weight_params(l: &mut Layer) -> Params<'_> {
    match l {
        Layer::Linear(l) => {
            vec![("W", &mut l.weight.param.value, &mut l.weight.param.grad), ("b", &mut l.bias.value, &mut l.bias.grad)]
        }
        Layer::Conv2d(l) => {
            vec![("W", &mut l.weight.param.value, &mut l.weight.param.grad), ("b", &mut l.bias.value, &mut l.bias.grad)]
        }
        Layer::BatchNorm(l) => {
            vec![("gamma", &mut l.gamma.value, &mut l.gamma.grad), ("beta", &mut l.beta.value, &mut l.beta.grad)]
        }
        _ => Vec::new(),
    }
}

fn dense_weight(c_out: usize, k: usize, seed: u64) -> NmWeight {
    let mut rng = Rng::new(seed);
    let v = (0..c_out * k).map(|_| (rng.normal() * 0.5) as f32).collect();
    NmWeight::new("test", "w", c_out, k, v, LayerSparsity::dense()).unwrap()
}

#[test]
fn linear() {
    let mut rng = Rng::new(1);
    let mut l = Layer::Linear(Linear::new("fc", dense_weight(5, 7, 2)));
    if let Layer::Linear(fc) = &mut l {
        fc.bias.value = vec![0.1, -0.2, 0.3, 0.0, 0.5];
    }
    check(&mut l, &random(&[3, 7], &mut rng), weight_params);
}

#[test]
fn conv2d_stride_and_padding() {
    let mut rng = Rng::new(3);
    for (stride, pad) in [(1, 0), (2, 1), (1, 2)] {
        let geom = ConvGeom { c_in: 2, kh: 3, kw: 3, stride, pad };
        let mut l = Layer::Conv2d(Conv2d::new("conv", geom, dense_weight(3, geom.k(), 4)));
        // 5 images: more than one parallel chunk, the last one partial.
        check(&mut l, &random(&[5, 2, 5, 6], &mut rng), weight_params);
    }
}

#[test]
fn relu_away_from_zero() {
    let mut rng = Rng::new(5);
    let mut x = random(&[2, 3, 4, 4], &mut rng);
    for v in &mut x.data {
        *v += 0.1f32.copysign(*v);
    }
    check(&mut Layer::Relu(Relu::new("relu")), &x, weight_params);
}

/// Distinct values spaced 0.1 apart, so no perturbation of EPS changes a window's maximum.
fn spaced(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut idx: Vec<usize> = (0..n).collect();
    Rng::new(seed).shuffle(&mut idx);
    Tensor::from_vec(shape, idx.iter().map(|&i| i as f32 * 0.1 - n as f32 * 0.05).collect()).unwrap()
}

#[test]
fn max_pool_including_overlap() {
    for (k, s) in [(2, 2), (3, 2)] {
        check(&mut Layer::Pool(Pool2d::new("pool", PoolKind::Max, k, s)), &spaced(&[2, 2, 6, 7], 6), weight_params);
    }
}

#[test]
fn avg_pool_including_overlap() {
    let mut rng = Rng::new(7);
    for (k, s) in [(2, 2), (3, 1)] {
        check(&mut Layer::Pool(Pool2d::new("pool", PoolKind::Avg, k, s)), &random(&[2, 2, 5, 6], &mut rng), weight_params);
    }
}

#[test]
fn batch_norm_4d_and_2d() {
    let mut rng = Rng::new(8);
    let mut l = Layer::BatchNorm(BatchNorm::new("bn", 3));
    if let Layer::BatchNorm(bn) = &mut l {
        bn.gamma.value = vec![1.5, -0.5, 0.8];
        bn.beta.value = vec![0.1, 0.2, -0.3];
    }
    check(&mut l, &random(&[4, 3, 3, 2], &mut rng), weight_params);
    let mut l = Layer::BatchNorm(BatchNorm::new("bn", 3));
    check(&mut l, &random(&[6, 3], &mut rng), weight_params);
}

#[test]
fn flatten_is_identity_on_data() {
    let mut rng = Rng::new(9);
    check(&mut Layer::Flatten(Flatten::new("flat")), &random(&[2, 3, 2, 2], &mut rng), weight_params);
}

#[test]
fn softmax_cross_entropy_gradient() {
    let mut rng = Rng::new(10);
    let z = random(&[4, 5], &mut rng);
    let labels = [0u8, 3, 4, 1];
    let out = softmax_cross_entropy(&z, &labels).unwrap();
    for i in 0..z.len() {
        let mut zp = z.clone();
        zp.data[i] += EPS;
        let lp = softmax_cross_entropy(&zp, &labels).unwrap().loss;
        zp.data[i] -= 2.0 * EPS;
        let lm = softmax_cross_entropy(&zp, &labels).unwrap().loss;
        close((lp - lm) / (2.0 * f64::from(EPS)), f64::from(out.grad.data[i]), &format!("dlogits[{i}]"));
    }
    // Uniform logits: loss ln(classes).
    let flat = softmax_cross_entropy(&Tensor::zeros(&[2, 5]), &[1, 2]).unwrap();
    assert!((flat.loss - 5f64.ln()).abs() < 1e-9);
}
