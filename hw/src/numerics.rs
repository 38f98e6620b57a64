//! The constants of the arithmetic specification (`satkit_sim::numerics`) that hardware builds
//! in: the range limits, reduction constants and polynomial coefficients of `exp_spec` and
//! `ln_spec`, GELU's, and the normalizations' epsilon. The simulator's functions and the RTL generator's circuits both read them from
//! here, so the two cannot drift apart.

/// `exp_spec` returns +inf above this argument.
pub const EXP_OVERFLOW: f32 = 88.72;
/// `exp_spec` returns +0 below this argument.
pub const EXP_UNDERFLOW: f32 = -87.33;
/// `1 / ln 2`, to find `k = round(x / ln 2)`.
pub const EXP_INV_LN2: f32 = std::f32::consts::LOG2_E;
/// The high part of `ln 2` in the two-constant Cody-Waite reduction (exact in `k * LN2_HI`).
pub const EXP_LN2_HI: f32 = 0.693_145_75;
/// The low part of `ln 2` in the Cody-Waite reduction.
pub const EXP_LN2_LO: f32 = 1.428_606_8e-6;
/// `e^r`'s degree-7 Taylor polynomial in Horner order: `p = c[0]`, then `p = p r + c[i]`.
pub const EXP_HORNER: [f32; 8] = [1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0];
/// `ln`'s series in `t^2` in Horner order: `s = c[0]`, then `s = s t^2 + c[i]`.
pub const LN_HORNER: [f32; 5] = [1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0];
/// GELU's `sqrt(2 / pi)` (tanh form: `0.5 x (1 + tanh(GELU_SCALE (x + GELU_CUBIC x^3)))`).
pub const GELU_SCALE: f32 = 0.797_884_6;
/// GELU's cubic coefficient.
pub const GELU_CUBIC: f32 = 0.044715;
/// The normalizations' `epsilon`: `rstd = 1 / sqrt(var + NORM_EPSILON)`.
pub const NORM_EPSILON: f32 = 1e-5;
