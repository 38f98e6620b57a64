//! The three training methods do what SAT.md section 2 says, checked exactly: integer-valued
//! weights and activations make every FP32 product and sum exact, so `dX` can be compared
//! bit for bit with the GEMM on the expected operand. The weights are chosen so that the FF
//! mask (groups along `K`) and the BP mask (groups along `C_out`) differ; a backward pass
//! that used the FF mask, or no mask, fails these tests.

use satkit_hw::nm::{mask_along_cols, mask_along_rows, NmRatio};
use satkit_train::layers::{Conv2d, ConvGeom, Linear};
use satkit_train::optim::Sgd;
use satkit_train::rng::Rng;
use satkit_train::{BpMaskSource, LayerSparsity, Method, NmWeight, Tensor};

const C_OUT: usize = 8;
const K: usize = 8;

fn ratio() -> NmRatio {
    NmRatio::new(2, 4).unwrap()
}

/// Distinct magnitudes 1..=64 in a seeded order with seeded signs.
fn weights(seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut v: Vec<f32> = (1..=(C_OUT * K) as i32).map(|i| i as f32).collect();
    rng.shuffle(&mut v);
    v.iter().map(|&x| if rng.below(2) == 0 { x } else { -x }).collect()
}

fn ints(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| rng.below(7) as f32 - 3.0).collect()).unwrap()
}

fn sparsity(method: Method, src: BpMaskSource) -> LayerSparsity {
    LayerSparsity { method, ratio: ratio(), lambda: 2e-4, bp_mask_source: src }
}

fn masked(w: &[f32], m: &[u8]) -> Vec<f32> {
    w.iter().zip(m).map(|(&v, &b)| if b == 1 { v } else { 0.0 }).collect()
}

fn linear(method: Method, w: Vec<f32>) -> Linear {
    Linear::new("fc", NmWeight::new("test", "fc", C_OUT, K, w, sparsity(method, BpMaskSource::Dense)).unwrap())
}

fn dense_linear(w: Vec<f32>) -> Linear {
    Linear::new("ref", NmWeight::new("test", "ref", C_OUT, K, w, LayerSparsity::dense()).unwrap())
}

/// (y, dx, dW) of a linear layer on fixed integer data.
fn run(l: &mut Linear) -> (Tensor, Tensor, Vec<f32>) {
    let y = l.forward(&ints(&[3, K], 1), true).unwrap();
    let dx = l.backward(&ints(&[3, C_OUT], 2)).unwrap();
    (y, dx, l.weight.param.grad.clone())
}

fn seed_with_distinct_masks() -> u64 {
    (0..100)
        .find(|&s| {
            let w = weights(s);
            mask_along_rows(&w, C_OUT, K, ratio()) != mask_along_cols(&w, C_OUT, K, ratio())
        })
        .expect("some seed gives distinct FF and BP masks")
}

#[test]
fn bdwp_backward_uses_the_bp_mask() {
    let w = weights(seed_with_distinct_masks());
    let ff = mask_along_rows(&w, C_OUT, K, ratio());
    let bp = mask_along_cols(&w, C_OUT, K, ratio());
    let (y, dx, dw) = run(&mut linear(Method::Bdwp, w.clone()));
    let (y_ff, _, dw_dense) = run(&mut dense_linear(masked(&w, &ff)));
    let (_, dx_bp, _) = run(&mut dense_linear(masked(&w, &bp)));
    let (_, dx_ffmask, _) = run(&mut dense_linear(masked(&w, &ff)));
    let (_, dx_nomask, _) = run(&mut dense_linear(w.clone()));
    assert_eq!(y, y_ff, "forward must use W * mask_ff");
    assert_eq!(dx, dx_bp, "backward-data must use W * mask_bp");
    assert_ne!(dx, dx_ffmask, "the FF mask would give a different dX");
    assert_ne!(dx, dx_nomask, "no mask would give a different dX");
    assert_eq!(dw, dw_dense, "the weight gradient is dense dY^T X");
}

#[test]
fn srste_backward_is_dense() {
    let w = weights(seed_with_distinct_masks());
    let ff = mask_along_rows(&w, C_OUT, K, ratio());
    let (y, dx, dw) = run(&mut linear(Method::Srste, w.clone()));
    let (y_ff, _, _) = run(&mut dense_linear(masked(&w, &ff)));
    let (_, dx_dense, dw_dense) = run(&mut dense_linear(w.clone()));
    assert_eq!(y, y_ff, "forward must use W * mask_ff");
    assert_eq!(dx, dx_dense, "SR-STE backward-data uses dense W");
    assert_eq!(dw, dw_dense);
    assert!(linear(Method::Srste, w).weight.mask_bp().is_none());
}

#[test]
fn bdwp_conv_backward_uses_the_bp_mask() {
    // 2x2 kernel x c_in 2: K = 8 in (kh, kw, c_in) order.
    let geom = ConvGeom { c_in: 2, kh: 2, kw: 2, stride: 1, pad: 1 };
    let w = weights(seed_with_distinct_masks());
    let ff = mask_along_rows(&w, C_OUT, K, ratio());
    let bp = mask_along_cols(&w, C_OUT, K, ratio());
    let conv = |weight: Vec<f32>, s: LayerSparsity| {
        Conv2d::new("conv", geom, NmWeight::new("test", "conv", C_OUT, K, weight, s).unwrap())
    };
    let x = ints(&[5, 2, 4, 3], 3);
    let dy = ints(&[5, C_OUT, 5, 4], 4);
    let go = |mut c: Conv2d| {
        let y = c.forward(&x, true).unwrap();
        (y, c.backward(&dy).unwrap())
    };
    let (y, dx) = go(conv(w.clone(), sparsity(Method::Bdwp, BpMaskSource::Dense)));
    let (y_ff, dx_ff) = go(conv(masked(&w, &ff), LayerSparsity::dense()));
    let (_, dx_bp) = go(conv(masked(&w, &bp), LayerSparsity::dense()));
    assert_eq!(y, y_ff);
    assert_eq!(dx, dx_bp);
    assert_ne!(dx, dx_ff);
}

#[test]
fn dense_method_uses_no_mask() {
    let w = weights(0);
    let l = linear(Method::Dense, w.clone());
    assert!(l.weight.mask_ff().is_none() && l.weight.mask_bp().is_none());
    assert_eq!(l.weight.forward_operand(), &w[..]);
    assert_eq!(l.weight.backward_operand(), &w[..]);
}

#[test]
fn forward_masked_bp_source_ranks_w_ff() {
    let w = weights(seed_with_distinct_masks());
    let ff = mask_along_rows(&w, C_OUT, K, ratio());
    let nm = NmWeight::new("test", "fc", C_OUT, K, w.clone(), sparsity(Method::Bdwp, BpMaskSource::ForwardMasked)).unwrap();
    let expect: Vec<u8> = mask_along_cols(&masked(&w, &ff), C_OUT, K, ratio()).iter().zip(&ff).map(|(a, b)| a & b).collect();
    assert_eq!(nm.mask_bp().unwrap(), &expect[..]);
    assert_eq!(nm.backward_operand(), &masked(&w, &expect)[..]);
    // Never keeps a weight that the forward pass pruned.
    assert!(expect.iter().zip(&ff).all(|(&b, &f)| b <= f));
}

#[test]
fn update_adds_the_srste_decay_and_refreshes_masks() {
    for method in [Method::Srste, Method::Bdwp] {
        let w = weights(5);
        let mut nm = NmWeight::new("test", "fc", C_OUT, K, w.clone(), sparsity(method, BpMaskSource::Dense)).unwrap();
        let ff = nm.mask_ff().unwrap().to_vec();
        // Zero gradient, no momentum or weight decay, lr 1: only the SR-STE term moves W.
        nm.update(&Sgd { momentum: 0.0, weight_decay: 0.0 }, 1.0);
        for i in 0..w.len() {
            let expect = if ff[i] == 1 { w[i] } else { w[i] - 2e-4 * w[i] };
            assert_eq!(nm.param.value[i], expect, "{method} weight {i}");
        }
        assert_eq!(nm.mask_ff().unwrap(), &mask_along_rows(&nm.param.value, C_OUT, K, ratio())[..]);
    }
}

/// Direct convolution of one image with a `C_out x K` weight, `K` in `(kh, kw, c_in)` order.
fn direct_conv(x: &[f32], h: usize, w: usize, g: &ConvGeom, weight: &[f32], c_out: usize) -> Vec<f32> {
    let (oh, ow) = g.out_hw(h, w).unwrap();
    let mut y = vec![0.0; c_out * oh * ow];
    for co in 0..c_out {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0.0;
                for i in 0..g.kh {
                    for j in 0..g.kw {
                        let (iy, ix) =
                            ((oy * g.stride + i) as isize - g.pad as isize, (ox * g.stride + j) as isize - g.pad as isize);
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        for c in 0..g.c_in {
                            acc += weight[co * g.k() + (i * g.kw + j) * g.c_in + c] * x[(c * h + iy as usize) * w + ix as usize];
                        }
                    }
                }
                y[(co * oh + oy) * ow + ox] = acc;
            }
        }
    }
    y
}

#[test]
fn conv_k_order_is_kh_kw_c_in() {
    // 2x2 kernel x c_in 4: K = 16, so each FF group of 4 (2:4) is the 4 input channels at one
    // kernel position. Exact integer arithmetic: the layer must equal the direct convolution
    // that reads weight (co, (i*kw + j)*c_in + c).
    let geom = ConvGeom { c_in: 4, kh: 2, kw: 2, stride: 1, pad: 1 };
    assert_eq!(geom.k_index(3, 1, 0), 11);
    let (c_out, k) = (8, geom.k());
    let w: Vec<f32> = {
        let mut rng = Rng::new(11);
        let mut v: Vec<f32> = (1..=(c_out * k) as i32).map(|i| i as f32).collect();
        rng.shuffle(&mut v);
        v
    };
    let s = sparsity(Method::Bdwp, BpMaskSource::Dense);
    let mut conv = Conv2d::new("conv", geom, NmWeight::new("test", "conv", c_out, k, w.clone(), s).unwrap());
    let ff = conv.weight.mask_ff().unwrap().to_vec();
    assert_eq!(ff, mask_along_rows(&w, c_out, k, ratio()));
    // Each kernel position keeps exactly 2 of its 4 input channels, per output channel.
    for co in 0..c_out {
        for pos in 0..4 {
            let kept: u8 = (0..4).map(|c| ff[co * k + geom.k_index(c, pos / 2, pos % 2)]).sum();
            assert_eq!(kept, 2, "co {co} position {pos}");
        }
    }
    let (h, wd) = (4, 3);
    let x = ints(&[2, 4, h, wd], 5);
    let y = conv.forward(&x, true).unwrap();
    let wff = masked(&w, &ff);
    for b in 0..2 {
        let img = &x.data[b * 4 * h * wd..(b + 1) * 4 * h * wd];
        let expect = direct_conv(img, h, wd, &geom, &wff, c_out);
        assert_eq!(&y.data[b * expect.len()..(b + 1) * expect.len()], &expect[..], "image {b}");
    }
}
