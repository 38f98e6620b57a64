//! The floating-point blocks against Rust's own arithmetic: exact FP16 x FP16 -> FP32 products
//! and round-to-nearest-even FP32 sums, on edge cases and seeded random bit patterns.

use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_hdl::prelude::*;
use satkit_hw::rtl::fp::{Fp16Mul, Fp32Add, QUIET_NAN};
use satkit_hw::rtl::settle;

fn same_value(got: u32, want: f32) -> bool {
    if want.is_nan() {
        f32::from_bits(got).is_nan()
    } else {
        got == want.to_bits()
    }
}

fn mul(block: &mut Fp16Mul, a: u16, b: u16) -> u32 {
    block.a.next = u64::from(a).into();
    block.b.next = u64::from(b).into();
    settle(block);
    block.product.val().to_u64() as u32
}

fn add(block: &mut Fp32Add, a: u32, b: u32) -> u32 {
    block.a.next = u64::from(a).into();
    block.b.next = u64::from(b).into();
    settle(block);
    block.sum.val().to_u64() as u32
}

const F16_EDGES: [u16; 14] =
    [0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x0400, 0x3c00, 0xbc00, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0x3555];

const F32_EDGES: [u32; 18] = [
    0x0000_0000,
    0x8000_0000,
    0x0000_0001,
    0x8000_0001,
    0x007f_ffff,
    0x0080_0000,
    0x8080_0000,
    0x3f80_0000,
    0xbf80_0000,
    0x3f80_0001,
    0x3380_0000, // 2^-24: half an ulp of 1.0
    0x3380_0001,
    0x7f7f_ffff,
    0xff7f_ffff,
    0x7f80_0000,
    0xff80_0000,
    0x7fc0_0000,
    0x4b80_0000, // 2^24
];

fn random_f16(rng: &mut ChaCha8Rng) -> u16 {
    // Mostly finite values over the whole exponent range, some specials.
    match rng.gen_range(0..16) {
        0 => F16_EDGES[rng.gen_range(0..F16_EDGES.len())],
        _ => rng.gen(),
    }
}

fn random_f32(rng: &mut ChaCha8Rng) -> u32 {
    match rng.gen_range(0..16) {
        0 => F32_EDGES[rng.gen_range(0..F32_EDGES.len())],
        _ => rng.gen(),
    }
}

/// Random operand pairs of the multiplier test.
const MUL_SAMPLES: usize = 100_000;

#[test]
fn fp16_mul_is_exact_on_edges_and_random_patterns() {
    let mut block = Fp16Mul::default();
    block.connect_all();
    let mut check = |a: u16, b: u16| {
        let got = mul(&mut block, a, b);
        let want = f16::from_bits(a).to_f32() * f16::from_bits(b).to_f32();
        assert!(same_value(got, want), "{a:#06x} * {b:#06x}: got {got:#010x}, want {:#010x} ({want:e})", want.to_bits());
    };
    for &a in &F16_EDGES {
        for &b in &F16_EDGES {
            check(a, b);
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0x5a7_f16);
    for _ in 0..MUL_SAMPLES {
        check(random_f16(&mut rng), random_f16(&mut rng));
    }
}

#[test]
fn fp16_mul_nan_is_the_canonical_quiet_nan() {
    let mut block = Fp16Mul::default();
    block.connect_all();
    assert_eq!(mul(&mut block, 0x7c00, 0x8000), QUIET_NAN);
    assert_eq!(mul(&mut block, 0x7e01, 0x3c00), QUIET_NAN);
}

/// Random operand pairs of the adder test (each checked in both orders).
const ADD_SAMPLES: usize = 300_000;

#[test]
fn fp32_add_rounds_like_rust_on_edges_and_random_patterns() {
    let mut block = Fp32Add::default();
    block.connect_all();
    let mut check = |a: u32, b: u32| {
        let got = add(&mut block, a, b);
        let want = f32::from_bits(a) + f32::from_bits(b);
        assert!(same_value(got, want), "{a:#010x} + {b:#010x}: got {got:#010x}, want {:#010x} ({want:e})", want.to_bits());
    };
    for &a in &F32_EDGES {
        for &b in &F32_EDGES {
            check(a, b);
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0x5a7_f32);
    for _ in 0..ADD_SAMPLES {
        // Random patterns rarely have close exponents or tiny magnitudes; also draw pairs near
        // each other so cancellation, subnormal results and ties get exercised, and pairs
        // whose exponents are both within the normalization's reach of the subnormal range.
        let a = random_f32(&mut rng);
        let b = match rng.gen_range(0..4) {
            0 => random_f32(&mut rng),
            1 => (a ^ 0x8000_0000).wrapping_add(rng.gen_range(0..64)).wrapping_sub(32),
            2 => (a & 0xff80_0000).wrapping_sub(rng.gen_range(0..4) << 23) | (rng.gen::<u32>() & 0x7f_ffff),
            _ => {
                let tiny = |rng: &mut ChaCha8Rng| {
                    (rng.gen::<u32>() & 0x8000_0000) | (rng.gen_range(0..40) << 23) | (rng.gen::<u32>() & 0x7f_ffff)
                };
                let (x, y) = (tiny(&mut rng), tiny(&mut rng));
                check(x, y);
                y
            }
        };
        check(a, b);
        check(b, a);
    }
}

#[test]
fn fp32_add_signed_zeros_ties_and_nan() {
    let mut block = Fp32Add::default();
    block.connect_all();
    assert_eq!(add(&mut block, 0x3f80_0000, 0xbf80_0000), 0x0000_0000, "x + -x = +0");
    assert_eq!(add(&mut block, 0x8000_0000, 0x8000_0000), 0x8000_0000, "-0 + -0 = -0");
    assert_eq!(add(&mut block, 0x8000_0000, 0x0000_0000), 0x0000_0000, "-0 + +0 = +0");
    // 1 + 2^-24 is a tie: stays 1 (even); 1 + 3 * 2^-24 rounds up to 1 + 2^-22.
    assert_eq!(add(&mut block, 0x3f80_0000, 0x3380_0000), 0x3f80_0000);
    assert_eq!(add(&mut block, 0x3f80_0000, 0x3440_0000), 0x3f80_0002);
    assert_eq!(add(&mut block, 0x7f7f_ffff, 0x7f7f_ffff), 0x7f80_0000, "overflow to inf");
    assert_eq!(add(&mut block, 0x7f80_0000, 0xff80_0000), QUIET_NAN, "inf - inf");
}
