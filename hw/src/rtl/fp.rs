//! Floating-point datapath blocks of the PE, bit for bit the arithmetic of `sim::numerics`.
//!
//! - [`Fp16Mul`]: IEEE binary16 x binary16 -> binary32, **exact**. Two 11-bit significands give
//!   a 22-bit product and the exponent range of two FP16 values (subnormals included) always
//!   lands in the FP32 normal range, so no rounding ever happens: the result equals
//!   `f32::from(a) * f32::from(b)` in Rust.
//! - [`Fp32Add`]: IEEE binary32 addition, round to nearest, ties to even, with subnormal
//!   inputs and outputs, signed zeros (`x + -x = +0`, `-0 + -0 = -0`), infinities and overflow
//!   to infinity. Every non-NaN result equals Rust's `a + b` on `f32`.
//! - [`Fp32Mul`]: IEEE binary32 multiplication, round to nearest, ties to even, with the same
//!   subnormal, zero, infinity and overflow handling; every non-NaN result equals Rust's `a * b`.
//!
//! **NaN rule** (all three blocks): a NaN input, `inf x 0` or `inf - inf` gives the canonical quiet
//! NaN [`QUIET_NAN`] (`0x7fc0_0000`); NaN payloads and signs are not propagated. Rust's NaN bits
//! differ from platform to platform, so tests compare NaN results as "both NaN".
//!
//! All three blocks are purely combinational (one `#[hdl_gen]` kernel, no clock): the PE decides
//! where registers go. Every intermediate value is a named local signal of an explicit width,
//! so the emitted Verilog computes each step in the width the Rust simulation uses (no
//! context-dependent widening).

use rust_hdl::prelude::*;

/// The canonical quiet NaN every block returns for every NaN result.
pub const QUIET_NAN: u32 = 0x7fc0_0000;

/// Exact FP16 x FP16 -> FP32 multiplier (combinational).
#[derive(LogicBlock, Default)]
pub struct Fp16Mul {
    // Operands
    /// First factor, binary16 bits.
    pub a: Signal<In, Bits<16>>,
    /// Second factor, binary16 bits.
    pub b: Signal<In, Bits<16>>,
    // Result
    /// The exact product, binary32 bits.
    pub product: Signal<Out, Bits<32>>,
    // Unpacked operands
    exp_a: Signal<Local, Bits<5>>,
    exp_b: Signal<Local, Bits<5>>,
    a_is_zero: Signal<Local, Bit>,
    b_is_zero: Signal<Local, Bit>,
    a_is_inf: Signal<Local, Bit>,
    b_is_inf: Signal<Local, Bit>,
    a_is_nan: Signal<Local, Bit>,
    b_is_nan: Signal<Local, Bit>,
    /// Significands with the hidden bit, widened to the 16-bit multiplier.
    sig_a: Signal<Local, Bits<16>>,
    sig_b: Signal<Local, Bits<16>>,
    /// Exponents with subnormals read as exponent 1 (bias 15).
    eff_exp_a: Signal<Local, Bits<8>>,
    eff_exp_b: Signal<Local, Bits<8>>,
    // Product
    sign_mask: Signal<Local, Bits<32>>,
    sig_product: Signal<Local, Bits<32>>,
    /// The 22-bit product at bits 23..2 of a 24-bit word, to be normalized so that its leading
    /// one reaches bit 23 by staged left shifts (16, 8, 4, 2, 1), each taken while the word's
    /// top bits of that width are zero: `norm_k` is the word after the stages down to 2^k.
    norm_32: Signal<Local, Bits<24>>,
    norm_16: Signal<Local, Bits<24>>,
    norm_8: Signal<Local, Bits<24>>,
    norm_4: Signal<Local, Bits<24>>,
    norm_2: Signal<Local, Bits<24>>,
    norm_1: Signal<Local, Bits<24>>,
    /// Biased FP32 exponent along the stages: a leading one at bit `p` of the product is worth
    /// `2^(p - 20 + eff_exp_a + eff_exp_b - 30)`, so before any stage (the leading one taken at
    /// bit 21 of the product, bit 23 of the word) the field is `eff_exp_a + eff_exp_b + 98`, and
    /// every stage's shift takes its width off.
    exp_32: Signal<Local, Bits<8>>,
    exp_16: Signal<Local, Bits<8>>,
    exp_8: Signal<Local, Bits<8>>,
    exp_4: Signal<Local, Bits<8>>,
    exp_2: Signal<Local, Bits<8>>,
    exp_1: Signal<Local, Bits<8>>,
}

impl Logic for Fp16Mul {
    #[hdl_gen]
    fn update(&mut self) {
        self.exp_a.next = self.a.val().get_bits::<5>(10);
        self.exp_b.next = self.b.val().get_bits::<5>(10);
        self.a_is_zero.next = (self.exp_a.val() == 0) && (self.a.val().get_bits::<10>(0) == 0);
        self.b_is_zero.next = (self.exp_b.val() == 0) && (self.b.val().get_bits::<10>(0) == 0);
        self.a_is_inf.next = (self.exp_a.val() == 0x1f) && (self.a.val().get_bits::<10>(0) == 0);
        self.b_is_inf.next = (self.exp_b.val() == 0x1f) && (self.b.val().get_bits::<10>(0) == 0);
        self.a_is_nan.next = (self.exp_a.val() == 0x1f) && (self.a.val().get_bits::<10>(0) != 0);
        self.b_is_nan.next = (self.exp_b.val() == 0x1f) && (self.b.val().get_bits::<10>(0) != 0);
        if self.exp_a.val() == 0 {
            self.sig_a.next = bit_cast::<16, 10>(self.a.val().get_bits::<10>(0));
            self.eff_exp_a.next = 1.into();
        } else {
            self.sig_a.next = bit_cast::<16, 10>(self.a.val().get_bits::<10>(0)) | 0x400;
            self.eff_exp_a.next = bit_cast::<8, 5>(self.exp_a.val());
        }
        if self.exp_b.val() == 0 {
            self.sig_b.next = bit_cast::<16, 10>(self.b.val().get_bits::<10>(0));
            self.eff_exp_b.next = 1.into();
        } else {
            self.sig_b.next = bit_cast::<16, 10>(self.b.val().get_bits::<10>(0)) | 0x400;
            self.eff_exp_b.next = bit_cast::<8, 5>(self.exp_b.val());
        }
        if self.a.val().get_bit(15) ^ self.b.val().get_bit(15) {
            self.sign_mask.next = 0x8000_0000_u64.into();
        } else {
            self.sign_mask.next = 0.into();
        }
        self.sig_product.next = self.sig_a.val() * self.sig_b.val();
        self.norm_32.next = bit_cast::<24, 22>(self.sig_product.val().get_bits::<22>(0)) << 2;
        self.exp_32.next = self.eff_exp_a.val() + self.eff_exp_b.val() + 98;
        if self.norm_32.val().get_bits::<16>(8) == 0 {
            self.norm_16.next = self.norm_32.val() << 16;
            self.exp_16.next = self.exp_32.val() - 16;
        } else {
            self.norm_16.next = self.norm_32.val();
            self.exp_16.next = self.exp_32.val();
        }
        if self.norm_16.val().get_bits::<8>(16) == 0 {
            self.norm_8.next = self.norm_16.val() << 8;
            self.exp_8.next = self.exp_16.val() - 8;
        } else {
            self.norm_8.next = self.norm_16.val();
            self.exp_8.next = self.exp_16.val();
        }
        if self.norm_8.val().get_bits::<4>(20) == 0 {
            self.norm_4.next = self.norm_8.val() << 4;
            self.exp_4.next = self.exp_8.val() - 4;
        } else {
            self.norm_4.next = self.norm_8.val();
            self.exp_4.next = self.exp_8.val();
        }
        if self.norm_4.val().get_bits::<2>(22) == 0 {
            self.norm_2.next = self.norm_4.val() << 2;
            self.exp_2.next = self.exp_4.val() - 2;
        } else {
            self.norm_2.next = self.norm_4.val();
            self.exp_2.next = self.exp_4.val();
        }
        if !self.norm_2.val().get_bit(23) {
            self.norm_1.next = self.norm_2.val() << 1;
            self.exp_1.next = self.exp_2.val() - 1;
        } else {
            self.norm_1.next = self.norm_2.val();
            self.exp_1.next = self.exp_2.val();
        }
        if self.a_is_nan.val()
            || self.b_is_nan.val()
            || (self.a_is_inf.val() && self.b_is_zero.val())
            || (self.a_is_zero.val() && self.b_is_inf.val())
        {
            self.product.next = 0x7fc0_0000.into(); // QUIET_NAN
        } else if self.a_is_inf.val() || self.b_is_inf.val() {
            self.product.next = self.sign_mask.val() | 0x7f80_0000;
        } else if self.a_is_zero.val() || self.b_is_zero.val() {
            self.product.next = self.sign_mask.val();
        } else {
            self.product.next = self.sign_mask.val()
                | (bit_cast::<32, 8>(self.exp_1.val()) << 23)
                | bit_cast::<32, 23>(self.norm_1.val().get_bits::<23>(0));
        }
    }
}

/// FP32 + FP32 adder, round to nearest even (combinational).
///
/// Method: order the operands by magnitude, align the smaller significand with three extra
/// bits (guard, round, sticky), add or subtract in 28 bits, normalize (one right shift on
/// carry-out, or a left shift limited so the exponent stays >= 1, which produces subnormals),
/// round, and repack with the carry of rounding propagating into the exponent field.
///
/// Both shifts are staged (16, 8, 4, 2, 1), which is what keeps the block small on an FPGA:
/// - the alignment shifts right by the exponent difference one stage per bit of it, and each
///   stage ORs the bits it drops into the sticky bit (a difference of 32 or more drops
///   everything);
/// - the normalization shifts left by 2^k while the top 2^k bits of the sum are zero and the
///   exponent can still fall by 2^k: the greedy stages find `min(leading zeros, exponent - 1)`
///   bit by bit, and the bits they chose are the shift, so no separate leading-zero counter
///   or barrel shifter is needed.
#[derive(LogicBlock, Default)]
pub struct Fp32Add {
    // Operands
    /// First addend, binary32 bits.
    pub a: Signal<In, Bits<32>>,
    /// Second addend, binary32 bits.
    pub b: Signal<In, Bits<32>>,
    // Result
    /// The rounded sum, binary32 bits.
    pub sum: Signal<Out, Bits<32>>,
    // Classification
    a_is_inf: Signal<Local, Bit>,
    b_is_inf: Signal<Local, Bit>,
    a_is_nan: Signal<Local, Bit>,
    b_is_nan: Signal<Local, Bit>,
    subtract: Signal<Local, Bit>,
    // Operands ordered by magnitude
    larger: Signal<Local, Bits<32>>,
    smaller: Signal<Local, Bits<32>>,
    big_exp: Signal<Local, Bits<8>>,
    small_exp: Signal<Local, Bits<8>>,
    /// Significands with hidden bit, shifted left by 3 (guard, round, sticky), in 28 bits.
    big_sig: Signal<Local, Bits<28>>,
    small_sig: Signal<Local, Bits<28>>,
    // Alignment: `align_k` is the significand after the stages down to 2^k, `dropped_k` the
    // OR of every bit those stages shifted out.
    exp_diff: Signal<Local, Bits<8>>,
    align_16: Signal<Local, Bits<28>>,
    align_8: Signal<Local, Bits<28>>,
    align_4: Signal<Local, Bits<28>>,
    align_2: Signal<Local, Bits<28>>,
    align_1: Signal<Local, Bits<28>>,
    dropped_16: Signal<Local, Bit>,
    dropped_8: Signal<Local, Bit>,
    dropped_4: Signal<Local, Bit>,
    dropped_2: Signal<Local, Bit>,
    dropped_1: Signal<Local, Bit>,
    small_sticky: Signal<Local, Bits<28>>,
    // Sum and normalization: `norm_k` is the sum after the stages down to 2^k, `room_k` how
    // far the exponent may still fall after them (`room_32` before any).
    raw_sum: Signal<Local, Bits<28>>,
    room_32: Signal<Local, Bits<8>>,
    norm_16: Signal<Local, Bits<28>>,
    norm_8: Signal<Local, Bits<28>>,
    norm_4: Signal<Local, Bits<28>>,
    norm_2: Signal<Local, Bits<28>>,
    norm_1: Signal<Local, Bits<28>>,
    room_16: Signal<Local, Bits<8>>,
    room_8: Signal<Local, Bits<8>>,
    room_4: Signal<Local, Bits<8>>,
    room_2: Signal<Local, Bits<8>>,
    room_1: Signal<Local, Bits<8>>,
    normalized: Signal<Local, Bits<28>>,
    norm_exp: Signal<Local, Bits<10>>,
    // Rounding and packing
    round_up: Signal<Local, Bits<25>>,
    rounded: Signal<Local, Bits<25>>,
    repacked: Signal<Local, Bits<33>>,
    sign_mask: Signal<Local, Bits<32>>,
}

impl Logic for Fp32Add {
    #[hdl_gen]
    fn update(&mut self) {
        self.a_is_inf.next = (self.a.val().get_bits::<8>(23) == 0xff) && (self.a.val().get_bits::<23>(0) == 0);
        self.b_is_inf.next = (self.b.val().get_bits::<8>(23) == 0xff) && (self.b.val().get_bits::<23>(0) == 0);
        self.a_is_nan.next = (self.a.val().get_bits::<8>(23) == 0xff) && (self.a.val().get_bits::<23>(0) != 0);
        self.b_is_nan.next = (self.b.val().get_bits::<8>(23) == 0xff) && (self.b.val().get_bits::<23>(0) != 0);
        self.subtract.next = self.a.val().get_bit(31) ^ self.b.val().get_bit(31);
        if self.a.val().get_bits::<31>(0) >= self.b.val().get_bits::<31>(0) {
            self.larger.next = self.a.val();
            self.smaller.next = self.b.val();
        } else {
            self.larger.next = self.b.val();
            self.smaller.next = self.a.val();
        }
        // Subnormals (exponent field 0) use exponent 1 without the hidden bit.
        if self.larger.val().get_bits::<8>(23) == 0 {
            self.big_exp.next = 1.into();
            self.big_sig.next = bit_cast::<28, 23>(self.larger.val().get_bits::<23>(0)) << 3;
        } else {
            self.big_exp.next = self.larger.val().get_bits::<8>(23);
            self.big_sig.next = (bit_cast::<28, 23>(self.larger.val().get_bits::<23>(0)) | 0x80_0000) << 3;
        }
        if self.smaller.val().get_bits::<8>(23) == 0 {
            self.small_exp.next = 1.into();
            self.small_sig.next = bit_cast::<28, 23>(self.smaller.val().get_bits::<23>(0)) << 3;
        } else {
            self.small_exp.next = self.smaller.val().get_bits::<8>(23);
            self.small_sig.next = (bit_cast::<28, 23>(self.smaller.val().get_bits::<23>(0)) | 0x80_0000) << 3;
        }
        self.exp_diff.next = self.big_exp.val() - self.small_exp.val();
        // Alignment, 16 first; a difference of 32 or more shifts everything out.
        if self.exp_diff.val().get_bits::<3>(5) != 0 {
            self.align_16.next = 0.into();
            self.dropped_16.next = self.small_sig.val() != 0;
        } else if self.exp_diff.val().get_bit(4) {
            self.align_16.next = self.small_sig.val() >> 16;
            self.dropped_16.next = self.small_sig.val().get_bits::<16>(0) != 0;
        } else {
            self.align_16.next = self.small_sig.val();
            self.dropped_16.next = false;
        }
        if self.exp_diff.val().get_bit(3) {
            self.align_8.next = self.align_16.val() >> 8;
            self.dropped_8.next = self.dropped_16.val() || (self.align_16.val().get_bits::<8>(0) != 0);
        } else {
            self.align_8.next = self.align_16.val();
            self.dropped_8.next = self.dropped_16.val();
        }
        if self.exp_diff.val().get_bit(2) {
            self.align_4.next = self.align_8.val() >> 4;
            self.dropped_4.next = self.dropped_8.val() || (self.align_8.val().get_bits::<4>(0) != 0);
        } else {
            self.align_4.next = self.align_8.val();
            self.dropped_4.next = self.dropped_8.val();
        }
        if self.exp_diff.val().get_bit(1) {
            self.align_2.next = self.align_4.val() >> 2;
            self.dropped_2.next = self.dropped_4.val() || (self.align_4.val().get_bits::<2>(0) != 0);
        } else {
            self.align_2.next = self.align_4.val();
            self.dropped_2.next = self.dropped_4.val();
        }
        if self.exp_diff.val().get_bit(0) {
            self.align_1.next = self.align_2.val() >> 1;
            self.dropped_1.next = self.dropped_2.val() || self.align_2.val().get_bit(0);
        } else {
            self.align_1.next = self.align_2.val();
            self.dropped_1.next = self.dropped_2.val();
        }
        if self.dropped_1.val() {
            self.small_sticky.next = self.align_1.val() | 1;
        } else {
            self.small_sticky.next = self.align_1.val();
        }
        if self.subtract.val() {
            self.raw_sum.next = self.big_sig.val() - self.small_sticky.val();
        } else {
            self.raw_sum.next = self.big_sig.val() + self.small_sticky.val();
        }
        // Normalization over bits 26..0 (bit 26 is the hidden-bit position), 16 first.
        self.room_32.next = self.big_exp.val() - 1;
        if (self.raw_sum.val().get_bits::<16>(11) == 0) && (self.room_32.val() >= 16) {
            self.norm_16.next = self.raw_sum.val() << 16;
            self.room_16.next = self.room_32.val() - 16;
        } else {
            self.norm_16.next = self.raw_sum.val();
            self.room_16.next = self.room_32.val();
        }
        if (self.norm_16.val().get_bits::<8>(19) == 0) && (self.room_16.val() >= 8) {
            self.norm_8.next = self.norm_16.val() << 8;
            self.room_8.next = self.room_16.val() - 8;
        } else {
            self.norm_8.next = self.norm_16.val();
            self.room_8.next = self.room_16.val();
        }
        if (self.norm_8.val().get_bits::<4>(23) == 0) && (self.room_8.val() >= 4) {
            self.norm_4.next = self.norm_8.val() << 4;
            self.room_4.next = self.room_8.val() - 4;
        } else {
            self.norm_4.next = self.norm_8.val();
            self.room_4.next = self.room_8.val();
        }
        if (self.norm_4.val().get_bits::<2>(25) == 0) && (self.room_4.val() >= 2) {
            self.norm_2.next = self.norm_4.val() << 2;
            self.room_2.next = self.room_4.val() - 2;
        } else {
            self.norm_2.next = self.norm_4.val();
            self.room_2.next = self.room_4.val();
        }
        if !self.norm_2.val().get_bit(26) && (self.room_2.val() >= 1) {
            self.norm_1.next = self.norm_2.val() << 1;
            self.room_1.next = self.room_2.val() - 1;
        } else {
            self.norm_1.next = self.norm_2.val();
            self.room_1.next = self.room_2.val();
        }
        if self.raw_sum.val().get_bit(27) {
            self.normalized.next = (self.raw_sum.val() >> 1) | (self.raw_sum.val() & 1);
            self.norm_exp.next = bit_cast::<10, 8>(self.big_exp.val()) + 1;
        } else {
            self.normalized.next = self.norm_1.val();
            // The stages took big_exp - 1 - room_1 off the exponent.
            self.norm_exp.next = bit_cast::<10, 8>(self.room_1.val()) + 1;
        }
        // Round to nearest even on guard, round | sticky and the last kept bit.
        if self.normalized.val().get_bit(2)
            && (self.normalized.val().get_bit(1) || self.normalized.val().get_bit(0) || self.normalized.val().get_bit(3))
        {
            self.round_up.next = 1.into();
        } else {
            self.round_up.next = 0.into();
        }
        self.rounded.next = bit_cast::<25, 24>(self.normalized.val().get_bits::<24>(3)) + self.round_up.val();
        // (exponent - 1) << 23 plus the significand: its hidden bit (or rounding carry)
        // completes the exponent field, and a subnormal keeps field 0.
        self.repacked.next = (bit_cast::<33, 10>(self.norm_exp.val() - 1) << 23) + bit_cast::<33, 25>(self.rounded.val());
        if self.larger.val().get_bit(31) {
            self.sign_mask.next = 0x8000_0000_u64.into();
        } else {
            self.sign_mask.next = 0.into();
        }
        if self.a_is_nan.val() || self.b_is_nan.val() || (self.a_is_inf.val() && self.b_is_inf.val() && self.subtract.val()) {
            self.sum.next = 0x7fc0_0000.into(); // QUIET_NAN
        } else if self.a_is_inf.val() {
            self.sum.next = self.a.val();
        } else if self.b_is_inf.val() {
            self.sum.next = self.b.val();
        } else if self.raw_sum.val() == 0 {
            // Exact zero: +0 under round to nearest, except -0 + -0.
            if self.subtract.val() {
                self.sum.next = 0.into();
            } else {
                self.sum.next = self.a.val() & 0x8000_0000_u64;
            }
        } else if self.repacked.val().get_bits::<10>(23) >= 0xff {
            self.sum.next = self.sign_mask.val() | 0x7f80_0000;
        } else {
            self.sum.next = self.sign_mask.val() | bit_cast::<32, 31>(self.repacked.val().get_bits::<31>(0));
        }
    }
}

/// FP32 x FP32 multiplier, round to nearest even (combinational).
///
/// Same conventions as [`Fp32Add`]: subnormal inputs and outputs, the sign of a zero product is
/// the XOR of the signs, overflow gives infinity, and the NaN rule of the module documentation
/// (a NaN input or `inf x 0` gives [`QUIET_NAN`]). Every non-NaN result equals Rust's `a * b`.
///
/// Method: the two 24-bit significands (hidden bit included, subnormals read with exponent 1)
/// are split into a low 16-bit and a high 8-bit half, and the 48-bit product is the sum of the
/// four 16 x 16-bit partial products. With `total = exp_a + exp_b` (biased, effective), a
/// leading one at bit 47 would give the biased exponent `total - 126`. When `total >= 127` the
/// product is normalized left in stages of 16, 8, 4, 2 and 1 bits, each taken only while its
/// top bits are zero and the exponent stays at least 1 (the `room`, `total - 127` to start;
/// the result's exponent is the room left plus 1, and a product still short of bit 47 is
/// subnormal). Otherwise the result is subnormal, its exponent is 1 and the product is shifted
/// right by `127 - total` in stages of 32, 16, 8, 4, 2 and 1 bits, the shifted-out bits OR-ed
/// into a sticky bit. Bits 47..24 are kept, bit 23 is the guard bit and bits 22..0 the sticky
/// bits; rounding and repacking are those of [`Fp32Add`]. No leading-one detector and no
/// barrel shifter: the stages are the only shifts.
#[derive(LogicBlock, Default)]
pub struct Fp32Mul {
    // Operands
    /// First factor, binary32 bits.
    pub a: Signal<In, Bits<32>>,
    /// Second factor, binary32 bits.
    pub b: Signal<In, Bits<32>>,
    // Result
    /// The rounded product, binary32 bits.
    pub product: Signal<Out, Bits<32>>,
    // Classification
    exp_a: Signal<Local, Bits<8>>,
    exp_b: Signal<Local, Bits<8>>,
    a_is_zero: Signal<Local, Bit>,
    b_is_zero: Signal<Local, Bit>,
    a_is_inf: Signal<Local, Bit>,
    b_is_inf: Signal<Local, Bit>,
    a_is_nan: Signal<Local, Bit>,
    b_is_nan: Signal<Local, Bit>,
    sign_mask: Signal<Local, Bits<32>>,
    // Significands (hidden bit included) and effective exponents
    sig_a: Signal<Local, Bits<24>>,
    sig_b: Signal<Local, Bits<24>>,
    /// `eff_exp_a + eff_exp_b`, subnormals counting as exponent 1.
    total_exp: Signal<Local, Bits<10>>,
    // 16-bit partial products
    sig_a_low: Signal<Local, Bits<16>>,
    sig_a_high: Signal<Local, Bits<16>>,
    sig_b_low: Signal<Local, Bits<16>>,
    sig_b_high: Signal<Local, Bits<16>>,
    partial_low_low: Signal<Local, Bits<32>>,
    partial_low_high: Signal<Local, Bits<32>>,
    partial_high_low: Signal<Local, Bits<32>>,
    partial_high_high: Signal<Local, Bits<32>>,
    sig_product: Signal<Local, Bits<48>>,
    // Normalization to the left (`total >= 127`): each stage's product and the room left
    room_in: Signal<Local, Bits<10>>,
    left_16: Signal<Local, Bits<48>>,
    room_16: Signal<Local, Bits<10>>,
    left_8: Signal<Local, Bits<48>>,
    room_8: Signal<Local, Bits<10>>,
    left_4: Signal<Local, Bits<48>>,
    room_4: Signal<Local, Bits<10>>,
    left_2: Signal<Local, Bits<48>>,
    room_2: Signal<Local, Bits<10>>,
    left_1: Signal<Local, Bits<48>>,
    room_1: Signal<Local, Bits<10>>,
    // Denormalization to the right (`total < 127`): the shift (clamped to 47, which already
    // leaves only sticky bits), each stage's product and whether it dropped a one
    right_shift: Signal<Local, Bits<6>>,
    right_32: Signal<Local, Bits<48>>,
    dropped_32: Signal<Local, Bit>,
    right_16: Signal<Local, Bits<48>>,
    dropped_16: Signal<Local, Bit>,
    right_8: Signal<Local, Bits<48>>,
    dropped_8: Signal<Local, Bit>,
    right_4: Signal<Local, Bits<48>>,
    dropped_4: Signal<Local, Bit>,
    right_2: Signal<Local, Bits<48>>,
    dropped_2: Signal<Local, Bit>,
    right_1: Signal<Local, Bits<48>>,
    dropped_1: Signal<Local, Bit>,
    normalized: Signal<Local, Bits<48>>,
    norm_exp: Signal<Local, Bits<10>>,
    // Rounding and packing
    sticky: Signal<Local, Bit>,
    round_up: Signal<Local, Bits<25>>,
    rounded: Signal<Local, Bits<25>>,
    repacked: Signal<Local, Bits<34>>,
}

impl Logic for Fp32Mul {
    #[hdl_gen]
    fn update(&mut self) {
        self.exp_a.next = self.a.val().get_bits::<8>(23);
        self.exp_b.next = self.b.val().get_bits::<8>(23);
        self.a_is_zero.next = (self.exp_a.val() == 0) && (self.a.val().get_bits::<23>(0) == 0);
        self.b_is_zero.next = (self.exp_b.val() == 0) && (self.b.val().get_bits::<23>(0) == 0);
        self.a_is_inf.next = (self.exp_a.val() == 0xff) && (self.a.val().get_bits::<23>(0) == 0);
        self.b_is_inf.next = (self.exp_b.val() == 0xff) && (self.b.val().get_bits::<23>(0) == 0);
        self.a_is_nan.next = (self.exp_a.val() == 0xff) && (self.a.val().get_bits::<23>(0) != 0);
        self.b_is_nan.next = (self.exp_b.val() == 0xff) && (self.b.val().get_bits::<23>(0) != 0);
        if self.a.val().get_bit(31) ^ self.b.val().get_bit(31) {
            self.sign_mask.next = 0x8000_0000_u64.into();
        } else {
            self.sign_mask.next = 0.into();
        }
        // Subnormals (exponent field 0) use exponent 1 without the hidden bit.
        if self.exp_a.val() == 0 {
            self.sig_a.next = bit_cast::<24, 23>(self.a.val().get_bits::<23>(0));
            if self.exp_b.val() == 0 {
                self.total_exp.next = 2.into();
            } else {
                self.total_exp.next = bit_cast::<10, 8>(self.exp_b.val()) + 1;
            }
        } else {
            self.sig_a.next = bit_cast::<24, 23>(self.a.val().get_bits::<23>(0)) | 0x80_0000;
            if self.exp_b.val() == 0 {
                self.total_exp.next = bit_cast::<10, 8>(self.exp_a.val()) + 1;
            } else {
                self.total_exp.next = bit_cast::<10, 8>(self.exp_a.val()) + bit_cast::<10, 8>(self.exp_b.val());
            }
        }
        if self.exp_b.val() == 0 {
            self.sig_b.next = bit_cast::<24, 23>(self.b.val().get_bits::<23>(0));
        } else {
            self.sig_b.next = bit_cast::<24, 23>(self.b.val().get_bits::<23>(0)) | 0x80_0000;
        }
        // 24 x 24 bits from four 16 x 16-bit products.
        self.sig_a_low.next = self.sig_a.val().get_bits::<16>(0);
        self.sig_a_high.next = bit_cast::<16, 8>(self.sig_a.val().get_bits::<8>(16));
        self.sig_b_low.next = self.sig_b.val().get_bits::<16>(0);
        self.sig_b_high.next = bit_cast::<16, 8>(self.sig_b.val().get_bits::<8>(16));
        self.partial_low_low.next = self.sig_a_low.val() * self.sig_b_low.val();
        self.partial_low_high.next = self.sig_a_low.val() * self.sig_b_high.val();
        self.partial_high_low.next = self.sig_a_high.val() * self.sig_b_low.val();
        self.partial_high_high.next = self.sig_a_high.val() * self.sig_b_high.val();
        self.sig_product.next = bit_cast::<48, 32>(self.partial_low_low.val())
            + (bit_cast::<48, 32>(self.partial_low_high.val()) << 16)
            + (bit_cast::<48, 32>(self.partial_high_low.val()) << 16)
            + (bit_cast::<48, 32>(self.partial_high_high.val()) << 32);
        // To the left, 16 first, within the room.
        self.room_in.next = self.total_exp.val() - 127;
        if (self.sig_product.val().get_bits::<16>(32) == 0) && (self.room_in.val() >= 16) {
            self.left_16.next = self.sig_product.val() << 16;
            self.room_16.next = self.room_in.val() - 16;
        } else {
            self.left_16.next = self.sig_product.val();
            self.room_16.next = self.room_in.val();
        }
        if (self.left_16.val().get_bits::<8>(40) == 0) && (self.room_16.val() >= 8) {
            self.left_8.next = self.left_16.val() << 8;
            self.room_8.next = self.room_16.val() - 8;
        } else {
            self.left_8.next = self.left_16.val();
            self.room_8.next = self.room_16.val();
        }
        if (self.left_8.val().get_bits::<4>(44) == 0) && (self.room_8.val() >= 4) {
            self.left_4.next = self.left_8.val() << 4;
            self.room_4.next = self.room_8.val() - 4;
        } else {
            self.left_4.next = self.left_8.val();
            self.room_4.next = self.room_8.val();
        }
        if (self.left_4.val().get_bits::<2>(46) == 0) && (self.room_4.val() >= 2) {
            self.left_2.next = self.left_4.val() << 2;
            self.room_2.next = self.room_4.val() - 2;
        } else {
            self.left_2.next = self.left_4.val();
            self.room_2.next = self.room_4.val();
        }
        if !self.left_2.val().get_bit(47) && (self.room_2.val() >= 1) {
            self.left_1.next = self.left_2.val() << 1;
            self.room_1.next = self.room_2.val() - 1;
        } else {
            self.left_1.next = self.left_2.val();
            self.room_1.next = self.room_2.val();
        }
        // To the right by 127 - total; for 80 <= total <= 126 that is below 48, so it is total's
        // six low bits inverted.
        if self.total_exp.val() < 80 {
            self.right_shift.next = 47.into();
        } else {
            self.right_shift.next = self.total_exp.val().get_bits::<6>(0) ^ 0x3f;
        }
        if self.right_shift.val().get_bit(5) {
            self.right_32.next = self.sig_product.val() >> 32;
            self.dropped_32.next = self.sig_product.val().get_bits::<32>(0) != 0;
        } else {
            self.right_32.next = self.sig_product.val();
            self.dropped_32.next = false;
        }
        if self.right_shift.val().get_bit(4) {
            self.right_16.next = self.right_32.val() >> 16;
            self.dropped_16.next = self.dropped_32.val() || (self.right_32.val().get_bits::<16>(0) != 0);
        } else {
            self.right_16.next = self.right_32.val();
            self.dropped_16.next = self.dropped_32.val();
        }
        if self.right_shift.val().get_bit(3) {
            self.right_8.next = self.right_16.val() >> 8;
            self.dropped_8.next = self.dropped_16.val() || (self.right_16.val().get_bits::<8>(0) != 0);
        } else {
            self.right_8.next = self.right_16.val();
            self.dropped_8.next = self.dropped_16.val();
        }
        if self.right_shift.val().get_bit(2) {
            self.right_4.next = self.right_8.val() >> 4;
            self.dropped_4.next = self.dropped_8.val() || (self.right_8.val().get_bits::<4>(0) != 0);
        } else {
            self.right_4.next = self.right_8.val();
            self.dropped_4.next = self.dropped_8.val();
        }
        if self.right_shift.val().get_bit(1) {
            self.right_2.next = self.right_4.val() >> 2;
            self.dropped_2.next = self.dropped_4.val() || (self.right_4.val().get_bits::<2>(0) != 0);
        } else {
            self.right_2.next = self.right_4.val();
            self.dropped_2.next = self.dropped_4.val();
        }
        if self.right_shift.val().get_bit(0) {
            self.right_1.next = self.right_2.val() >> 1;
            self.dropped_1.next = self.dropped_2.val() || self.right_2.val().get_bit(0);
        } else {
            self.right_1.next = self.right_2.val();
            self.dropped_1.next = self.dropped_2.val();
        }
        if self.total_exp.val() >= 127 {
            self.normalized.next = self.left_1.val();
            self.norm_exp.next = self.room_1.val() + 1;
        } else if self.dropped_1.val() {
            self.normalized.next = self.right_1.val() | 1;
            self.norm_exp.next = 1.into();
        } else {
            self.normalized.next = self.right_1.val();
            self.norm_exp.next = 1.into();
        }
        // Round to nearest even on the guard bit (23), the sticky bits (22..0) and the last kept bit (24).
        self.sticky.next = self.normalized.val().get_bits::<23>(0) != 0;
        if self.normalized.val().get_bit(23) && (self.sticky.val() || self.normalized.val().get_bit(24)) {
            self.round_up.next = 1.into();
        } else {
            self.round_up.next = 0.into();
        }
        self.rounded.next = bit_cast::<25, 24>(self.normalized.val().get_bits::<24>(24)) + self.round_up.val();
        // (exponent - 1) << 23 plus the significand: its hidden bit (or rounding carry)
        // completes the exponent field, and a subnormal keeps field 0.
        self.repacked.next = (bit_cast::<34, 10>(self.norm_exp.val() - 1) << 23) + bit_cast::<34, 25>(self.rounded.val());
        if self.a_is_nan.val()
            || self.b_is_nan.val()
            || (self.a_is_inf.val() && self.b_is_zero.val())
            || (self.a_is_zero.val() && self.b_is_inf.val())
        {
            self.product.next = 0x7fc0_0000.into(); // QUIET_NAN
        } else if self.a_is_inf.val() || self.b_is_inf.val() {
            self.product.next = self.sign_mask.val() | 0x7f80_0000;
        } else if self.a_is_zero.val() || self.b_is_zero.val() {
            self.product.next = self.sign_mask.val();
        } else if self.repacked.val().get_bits::<11>(23) >= 0xff {
            self.product.next = self.sign_mask.val() | 0x7f80_0000;
        } else {
            self.product.next = self.sign_mask.val() | bit_cast::<32, 31>(self.repacked.val().get_bits::<31>(0));
        }
    }
}
