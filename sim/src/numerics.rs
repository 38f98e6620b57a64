//! The arithmetic specification every SAT implementation follows bit for bit.
//!
//! - Storage: operand buffers (`act`, `wgt`) hold values of the machine's operand type; writing
//!   an FP32 value into an FP16 buffer rounds to nearest, ties to even ([`round_operand`]),
//!   with subnormals kept and overflow to infinity. `acc` and `master` hold FP32.
//! - GEMM: each product of two operands is computed exactly in FP32 (an FP16 x FP16 product
//!   always fits), and each output is the **sequential** FP32 sum, in increasing reduction
//!   index, of its products, each addition rounded to nearest even (no fused multiply-add). The
//!   sum starts at +0 (overwrite) or at the accumulator's current value (accumulate). The order
//!   is the same for every dataflow and tiling: a PE's multipliers feed a chain of adders
//!   (not a tree) and partial sums re-enter the chain from the accumulator buffer. An N:M
//!   GEMM adds only the products of its kept weights (a pruned position is no addition at
//!   all, as the PE's multiplier slots only hold kept weights); on finite operands this
//!   equals the dense GEMM on the zero-filled weight bit for bit, except that a sum that
//!   starts at -0 (accumulate) stays -0 where the dense GEMM's +0 products would make it +0.
//! - WUVE, vector unit: FP32, one rounding per operation in the order written in each
//!   operation's documentation; no fused multiply-add.
//! - `exp` and `ln` in softmax cross-entropy use [`exp_spec`] and [`ln_spec`]: fixed sequences of
//!   FP32 operations (range reduction and a polynomial), so hardware can reproduce them exactly.

use satkit_hw::numerics::{EXP_HORNER, EXP_INV_LN2, EXP_LN2_HI, EXP_LN2_LO, EXP_OVERFLOW, EXP_UNDERFLOW, LN_HORNER};
use satkit_hw::DataType;

/// Rounds an FP32 value to the operand type (identity for FP32).
pub fn round_operand(value: f32, operand: DataType) -> f32 {
    match operand {
        DataType::Fp16 => half::f16::from_f32(value).to_f32(),
        DataType::Fp32 => value,
    }
}

/// `e^x` as a fixed sequence of FP32 operations: `x = k ln2 + r` with `k = round(x / ln2)`,
/// `r` from a two-constant Cody-Waite reduction, `e^r` by a degree-7 Taylor polynomial in Horner
/// form, then scaling by `2^k` (exact, through the exponent bits). Results below 2^-126 flush to
/// +0; above the FP32 range, +inf. Relative error below 1e-6 over the whole range.
pub fn exp_spec(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > EXP_OVERFLOW {
        return f32::INFINITY;
    }
    if x < EXP_UNDERFLOW {
        return 0.0;
    }
    let k = (x * EXP_INV_LN2).round();
    let r = (x - k * EXP_LN2_HI) - k * EXP_LN2_LO;
    let mut p = EXP_HORNER[0];
    for c in &EXP_HORNER[1..] {
        p = p * r + c;
    }
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// Natural logarithm as a fixed sequence of FP32 operations: `x = 2^e m` with `m` in
/// [sqrt(1/2), sqrt(2)), `t = (m - 1) / (m + 1)`, `ln m = 2 (t + t^3/3 + ... + t^9/9)`, result
/// `e ln2 + ln m`. Defined for positive normal `x`; `x <= 0` gives -inf, NaN stays NaN.
pub fn ln_spec(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x <= 0.0 || x < f32::MIN_POSITIVE {
        return f32::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | (127 << 23));
    if m > std::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let mut s = LN_HORNER[0];
    for c in &LN_HORNER[1..] {
        s = s * t2 + c;
    }
    e as f32 * std::f32::consts::LN_2 + 2.0 * t * s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_ln_are_accurate() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let (got, want) = (f64::from(exp_spec(x)), f64::from(x).exp());
            assert!(((got - want) / want).abs() < 1e-6, "exp({x}) = {got}, want {want}");
            x += 0.173;
        }
        let mut y = 1e-30f32;
        while y < 1e30 {
            let (got, want) = (f64::from(ln_spec(y)), f64::from(y).ln());
            assert!((got - want).abs() < 1e-6 * want.abs().max(1.0), "ln({y}) = {got}, want {want}");
            y *= 1.37;
        }
    }

    #[test]
    fn operand_rounding_is_nearest_even() {
        // 1 + 2^-11 is halfway between two FP16 values: ties to even gives 1.
        assert_eq!(round_operand(1.0 + 2f32.powi(-11), DataType::Fp16), 1.0);
        assert_eq!(round_operand(1.0 + 3.0 * 2f32.powi(-11), DataType::Fp16), 1.0 + 2f32.powi(-9));
        assert_eq!(round_operand(1e6, DataType::Fp16), f32::INFINITY);
    }
}
