//! The FP32 multiplier against Rust's own `f32` multiplication: edge-value pairs and seeded
//! random pairs biased towards subnormal results, exact ties and overflow, bit for bit (NaN
//! results compare as "both NaN", and the block's NaN is the canonical quiet NaN).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_hdl::prelude::*;
use satkit_hw::rtl::fp::{Fp32Mul, QUIET_NAN};
use satkit_hw::rtl::settle;

fn mul(block: &mut Fp32Mul, a: u32, b: u32) -> u32 {
    block.a.next = u64::from(a).into();
    block.b.next = u64::from(b).into();
    settle(block);
    block.product.val().to_u64() as u32
}

const F32_EDGES: [u32; 20] = [
    0x0000_0000,
    0x8000_0000,
    0x0000_0001, // smallest subnormal
    0x8000_0001,
    0x0040_0000, // 2^-127
    0x007f_ffff, // largest subnormal
    0x0080_0000, // smallest normal
    0x3f00_0000, // 0.5
    0x3f80_0000, // 1
    0xbf80_0000,
    0x3f80_0001, // 1 + 2^-23
    0x3fff_ffff, // just below 2
    0x4000_0000, // 2
    0x5f00_0000, // 2^63
    0x2000_0000, // 2^-63
    0x7f7f_ffff, // largest finite
    0xff7f_ffff,
    0x7f80_0000,
    0xff80_0000,
    0x7fc0_0000,
];

/// How a random pair is drawn.
fn random_pair(rng: &mut ChaCha8Rng) -> (u32, u32) {
    let sign = |rng: &mut ChaCha8Rng| if rng.gen() { 0x8000_0000u32 } else { 0 };
    let pack = |sign: u32, exp: i32, frac: u32| sign | ((exp.clamp(0, 254) as u32) << 23) | (frac & 0x7f_ffff);
    match rng.gen_range(0..7) {
        // Any bit patterns, some edges.
        0 => (rng.gen(), F32_EDGES[rng.gen_range(0..F32_EDGES.len())]),
        1 => (rng.gen(), rng.gen()),
        // Exponents summing near the subnormal range (biased sum around 127 - 24..127).
        2 => {
            let exp_a = rng.gen_range(0..=254);
            let exp_b = 127 - exp_a + rng.gen_range(-30..=3);
            (pack(sign(rng), exp_a, rng.gen()), pack(sign(rng), exp_b, rng.gen()))
        }
        // One significand 1.5 or 1.25, or both with few bits set: exact products and exact
        // ties (a product needing one or two bits more than the 24 kept) are common.
        3 | 4 => {
            let sparse_frac = |rng: &mut ChaCha8Rng| (rng.gen_range(0..8u32) << 20) | rng.gen_range(0..2u32);
            let frac_a = if rng.gen() { rng.gen() } else { sparse_frac(rng) };
            let frac_b = [0x40_0000, 0x20_0000, sparse_frac(rng)][rng.gen_range(0..3)];
            let exp_a = rng.gen_range(1..=254);
            let exp_b = match rng.gen_range(0..4) {
                0 => 381 - exp_a + rng.gen_range(-2..=2),
                1 => 127 - exp_a + rng.gen_range(-26..=2),
                _ => 254 - exp_a + rng.gen_range(-60..=60),
            };
            (pack(sign(rng), exp_a, frac_a), pack(sign(rng), exp_b, frac_b))
        }
        // A subnormal of any width times a normal: the product normalizes left by up to 24
        // bits, or as far as the exponent allows.
        5 => {
            let subnormal = rng.gen_range(1..0x80_0000u32) >> rng.gen_range(0..23);
            let exp_b = rng.gen_range(100..=254);
            (pack(sign(rng), 0, subnormal.max(1)), pack(sign(rng), exp_b, rng.gen()))
        }
        // Exponents summing near the overflow threshold (biased sum around 254 + 127).
        _ => {
            let exp_a = rng.gen_range(127..=254);
            let exp_b = 381 - exp_a + rng.gen_range(-2..=2);
            (pack(sign(rng), exp_a, rng.gen()), pack(sign(rng), exp_b, rng.gen()))
        }
    }
}

/// What a finite, nonzero-operand product exercises, from the exact product in f64 (a 24 x
/// 24-bit product is exact there).
#[derive(Default, Debug)]
struct Coverage {
    subnormal: usize,
    ties: usize,
    overflow: usize,
    rounded_up: usize,
}

impl Coverage {
    fn record(&mut self, a: f32, b: f32, want: f32) {
        if !a.is_finite() || !b.is_finite() || want.is_nan() {
            return;
        }
        if want.is_infinite() {
            self.overflow += 1;
            return;
        }
        if want.is_subnormal() {
            self.subnormal += 1;
        }
        let exact = f64::from(a) * f64::from(b);
        let error = exact - f64::from(want);
        if error != 0.0 {
            let neighbour = if error > 0.0 { want.next_up() } else { want.next_down() };
            if 2.0 * error == f64::from(neighbour) - f64::from(want) {
                self.ties += 1;
            }
            if exact.abs() < f64::from(want.abs()) {
                self.rounded_up += 1;
            }
        }
    }
}

#[test]
fn fp32_mul_rounds_like_rust_on_edges_and_biased_random_pairs() {
    let mut block = Fp32Mul::default();
    block.connect_all();
    let mut coverage = Coverage::default();
    let mut check = |a: u32, b: u32| {
        let got = mul(&mut block, a, b);
        let want = f32::from_bits(a) * f32::from_bits(b);
        if want.is_nan() {
            assert_eq!(got, QUIET_NAN, "{a:#010x} * {b:#010x}: got {got:#010x}, want the quiet NaN");
        } else {
            assert_eq!(got, want.to_bits(), "{a:#010x} * {b:#010x}: got {got:#010x}, want {:#010x} ({want:e})", want.to_bits());
        }
        coverage.record(f32::from_bits(a), f32::from_bits(b), want);
    };
    for &a in &F32_EDGES {
        for &b in &F32_EDGES {
            check(a, b);
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0x5a7_f32_u64 * 3);
    for _ in 0..100_000 {
        let (a, b) = random_pair(&mut rng);
        check(a, b);
    }
    // The biased draws must reach every rounding situation, or the test proves little.
    assert!(coverage.subnormal >= 3000, "{coverage:?}");
    assert!(coverage.ties >= 2000, "{coverage:?}");
    assert!(coverage.overflow >= 1500, "{coverage:?}");
    assert!(coverage.rounded_up >= 6000, "{coverage:?}");
}

#[test]
fn fp32_mul_signed_zeros_ties_overflow_and_nan() {
    let mut block = Fp32Mul::default();
    block.connect_all();
    assert_eq!(mul(&mut block, 0x8000_0000, 0x3f80_0000), 0x8000_0000, "-0 x 1 = -0");
    assert_eq!(mul(&mut block, 0x8000_0000, 0x8000_0000), 0x0000_0000, "-0 x -0 = +0");
    assert_eq!(mul(&mut block, 0x0000_0001, 0x3f00_0000), 0x0000_0000, "2^-149 x 0.5 is a tie: rounds to even +0");
    assert_eq!(mul(&mut block, 0x0000_0003, 0x3f00_0000), 0x0000_0002, "3 x 2^-150 is a tie: rounds to even 2^-148");
    assert_eq!(mul(&mut block, 0x0080_0000, 0x3f00_0000), 0x0040_0000, "normal x 0.5 = exact subnormal");
    assert_eq!(mul(&mut block, 0x007f_ffff, 0x4000_0000), 0x00ff_fffe, "subnormal x 2 = normal");
    assert_eq!(mul(&mut block, 0x0000_0001, 0x7f00_0000), 0x3480_0000, "2^-149 x 2^127 = 2^-22: 23 bits to the left");
    assert_eq!(mul(&mut block, 0x0000_0001, 0x4b00_0000), 0x0080_0000, "2^-149 x 2^23: normal, the room used up exactly");
    assert_eq!(mul(&mut block, 0x0000_0003, 0x4a80_0000), 0x00c0_0000, "3 x 2^-149 x 2^22 = 1.5 x 2^-126");
    // (1 + 2^-23)^2 = 1 + 2^-22 + 2^-46 rounds down; (1 + 2^-23)(1 + 2^-1) = 1.5 + 2^-23 + 2^-24 ties to even.
    assert_eq!(mul(&mut block, 0x3f80_0001, 0x3f80_0001), 0x3f80_0002);
    assert_eq!(mul(&mut block, 0x3f80_0001, 0x3fc0_0000), 0x3fc0_0002);
    assert_eq!(mul(&mut block, 0x7f7f_ffff, 0x4000_0000), 0x7f80_0000, "overflow to +inf");
    assert_eq!(mul(&mut block, 0x7f7f_ffff, 0xc000_0000), 0xff80_0000, "overflow to -inf");
    assert_eq!(mul(&mut block, 0x7f80_0000, 0x0000_0000), QUIET_NAN, "inf x 0");
    assert_eq!(mul(&mut block, 0xffc0_1234, 0x3f80_0000), QUIET_NAN, "NaN payload and sign dropped");
    assert_eq!(mul(&mut block, 0xff80_0000, 0x0000_0001), 0x7f80_0000 ^ 0x8000_0000, "-inf x subnormal = -inf");
}
