//! The vector unit's FP32 functions as Verilog text, bit for bit the simulator's arithmetic
//! (`satkit_sim::numerics`), all combinational:
//!
//! - `sat_fp32_div`: IEEE binary32 division, round to nearest even, with subnormal inputs and
//!   outputs, signed zeros and infinities; every non-NaN result equals Rust's `a / b` on `f32`.
//!   A NaN input, `0 / 0` or `inf / inf` gives the quiet NaN `0x7fc00000`, the NaN rule of
//!   [`super::fp`]. The significands are normalized, their quotient (restoring long
//!   division, 28 steps of a 25-bit subtraction, not a synthesized `/`) keeps three bits
//!   beyond the rounding bit, and the remainder is the sticky bit;
//! - `sat_fp32_sqrt`: IEEE binary32 square root, round to nearest even (a digit-by-digit
//!   integer root of the significand with three extra bits and the remainder as sticky bit);
//!   every non-NaN result equals Rust's `f32::sqrt`, negative inputs give the quiet NaN;
//! - `sat_fp32_greater`: `a > b` (false when either is NaN; `+0` and `-0` are equal);
//! - `sat_u24_to_f32`: an unsigned 24-bit integer to FP32 (exact);
//! - `sat_fp32_exp`, `sat_fp32_ln`: `exp_spec` and `ln_spec`, each FP32 operation of the
//!   specification one `sat_fp32_mul`, `sat_fp32_add` or `sat_fp32_div` in the same order, with
//!   the constants taken from [`crate::numerics`]; `round` (half away from zero) and the
//!   exponent manipulations are exact bit operations, as in the specification.
//!
//! The exponential is a chain of 19 FP32 operations in one cycle: correct, but a long path for
//! an FPGA clock (a pipelined version would add a latency the simulator's cost does not have).

use crate::numerics::{EXP_HORNER, EXP_INV_LN2, EXP_LN2_HI, EXP_LN2_LO, EXP_OVERFLOW, EXP_UNDERFLOW, LN_HORNER};
use std::fmt::Write as _;

/// `32'hXXXXXXXX`, a constant's bits.
pub(super) fn bits(value: f32) -> String {
    format!("32'h{:08x}", value.to_bits())
}

/// A Horner chain `p = c[0]; p = p * x + c[i]` over instances, ending in wire `{name}{n-1}`.
fn horner(name: &str, x: &str, coefficients: &[f32]) -> String {
    let mut s = format!("    wire [31:0] {name}0 = {};\n", bits(coefficients[0]));
    for (i, &c) in coefficients.iter().enumerate().skip(1) {
        let _ = writeln!(
            s,
            "    wire [31:0] {name}m{i}, {name}{i};\n    \
             sat_fp32_mul {name}_mul{i} (.a({name}{prev}), .b({x}), .product({name}m{i}));\n    \
             sat_fp32_add {name}_add{i} (.a({name}m{i}), .b({c}), .sum({name}{i}));",
            prev = i - 1,
            c = bits(c),
        );
    }
    s
}

/// A Verilog function, `{left shift, significand}`: `m` shifted left by 16, 8, 4, 2 and 1
/// while its top bits of that width are zero, so that a nonzero `m` ends with its leading one
/// at bit 23. Verilog functions belong to their module, so each module that normalizes gets
/// this one text.
const NORMALIZE_SIGNIFICAND: &str = r#"    function [28:0] normalize_significand(input [23:0] m);
        reg [23:0] v;
        reg [4:0] s;
        begin
            v = m;
            s = 5'd0;
            if (v[23:8] == 0) begin v = v << 16; s = s + 5'd16; end
            if (v[23:16] == 0) begin v = v << 8; s = s + 5'd8; end
            if (v[23:20] == 0) begin v = v << 4; s = s + 5'd4; end
            if (v[23:22] == 0) begin v = v << 2; s = s + 5'd2; end
            if (!v[23]) begin v = v << 1; s = s + 5'd1; end
            normalize_significand = {s, v};
        end
    endfunction
"#;

/// The modules of this file (they instantiate `sat_fp32_add` and `sat_fp32_mul` of [`super::fp`]).
pub(super) fn modules() -> String {
    let mut s = String::from(
        r#"
// FP32 division, round to nearest even (see satkit's hw/src/rtl/vector_math.rs).
module sat_fp32_div (input [31:0] a, input [31:0] b, output reg [31:0] q);
"#,
    );
    s.push_str(NORMALIZE_SIGNIFICAND);
    s.push_str(
        r#"    wire sign = a[31] ^ b[31];
    wire a_nan = a[30:23] == 8'hff && a[22:0] != 0;
    wire b_nan = b[30:23] == 8'hff && b[22:0] != 0;
    wire a_inf = a[30:0] == 31'h7f800000;
    wire b_inf = b[30:0] == 31'h7f800000;
    wire a_zero = a[30:0] == 0;
    wire b_zero = b[30:0] == 0;
    reg [23:0] ma, mb;
    reg [4:0] shift_a, shift_b;
    reg [27:0] quotient;
    reg [24:0] remainder;
    reg [25:0] trial;
    reg [27:0] sig;
    reg [24:0] mant;
    reg sticky;
    integer xa, xb, e, shift, i;
    always @* begin
        // Significands with the leading one at bit 23 and their (unbiased + 127) exponents.
        ma = {a[30:23] != 0, a[22:0]};
        mb = {b[30:23] != 0, b[22:0]};
        xa = a[30:23] == 0 ? 1 : {24'h0, a[30:23]};
        xb = b[30:23] == 0 ? 1 : {24'h0, b[30:23]};
        // A subnormal's leading one moves to bit 23 (staged shifts), its exponent down as far.
        {shift_a, ma} = normalize_significand(ma);
        {shift_b, mb} = normalize_significand(mb);
        xa = xa - shift_a;
        xb = xb - shift_b;
        // ma / mb is in (1/2, 2): 27 fraction bits give at least 3 bits beyond the result's.
        // The quotient of ma * 2^27 by mb by restoring long division, one bit per step from
        // bit 27 (ma < 2 mb, so that bit is ma >= mb); the remainder stays below mb. (With
        // b = 0 the result is a special value whatever this computes.)
        // Each step subtracts once and keeps the difference unless it borrowed.
        quotient = 28'h0;
        remainder = {1'b0, ma};
        for (i = 27; i >= 0; i = i - 1) begin
            trial = {1'b0, remainder} - {2'b0, mb};
            if (!trial[25]) begin
                remainder = trial[24:0];
                quotient[i] = 1'b1;
            end
            if (i > 0) remainder = remainder << 1;
        end
        sig = quotient[27] ? quotient[27:0] : {quotient[26:0], 1'b0};
        e = xa - xb + (quotient[27] ? 127 : 126);
        // Below the normal range: shift to the subnormal position, keeping what falls off.
        shift = e < 1 ? 1 - e : 0;
        sticky = remainder != 0 || (shift >= 28 ? sig != 0 : (sig & ~(28'hfffffff << shift)) != 0);
        sig = shift >= 28 ? 28'h0 : sig >> shift;
        e = e < 1 ? 0 : e;
        sticky = sticky || sig[2:0] != 0;
        // Round; a carry out of the significand (mant[24]) or into the hidden bit of a
        // subnormal (mant[23] at e = 0) raises the exponent.
        mant = {1'b0, sig[27:4]} + {24'h0, sig[3] && (sticky || sig[4])};
        e = mant[24] || (e == 0 && mant[23]) ? e + 1 : e;
        if (a_nan || b_nan || (a_inf && b_inf) || (a_zero && b_zero)) q = 32'h7fc00000;
        else if (a_inf || b_zero) q = {sign, 31'h7f800000};
        else if (a_zero || b_inf) q = {sign, 31'h0};
        else if (e >= 255) q = {sign, 31'h7f800000};
        else q = {sign, e[7:0], mant[24] ? 23'h0 : mant[22:0]};
    end
endmodule

// FP32 square root, round to nearest even (see satkit's hw/src/rtl/vector_math.rs).
module sat_fp32_sqrt (input [31:0] a, output reg [31:0] q);
"#,
    );
    s.push_str(NORMALIZE_SIGNIFICAND);
    s.push_str(
        r#"    reg [23:0] m;
    reg [4:0] shift;
    reg [24:0] scaled;
    reg [53:0] radicand;
    reg [28:0] rem;
    reg [29:0] trial;
    reg [26:0] root;
    reg [24:0] mant;
    reg sticky;
    integer x, half, biased, i;
    always @* begin
        // The significand with its leading one at bit 23 (staged shifts for a subnormal), and
        // the unbiased exponent.
        {shift, m} = normalize_significand({a[30:23] != 0, a[22:0]});
        x = (a[30:23] == 0 ? 1 : {24'h0, a[30:23]}) - 127 - shift;
        // An even exponent: sqrt(scaled 2^-23) is in [1, 2), and sqrt(scaled 2^29) has its
        // leading one at bit 26, three bits beyond the result's; the remainder is the sticky bit.
        scaled = x % 2 != 0 ? {m, 1'b0} : {1'b0, m};
        half = (x % 2 != 0 ? x - 1 : x) / 2;
        radicand = {scaled, 29'h0};
        rem = 0;
        root = 0;
        for (i = 26; i >= 0; i = i - 1) begin
            rem = {rem[26:0], radicand[2*i +: 2]};
            // One subtraction: its borrow says whether rem < {root, 01}.
            trial = {1'b0, rem} - {1'b0, root[26:0], 2'b01};
            if (!trial[29]) begin rem = trial[28:0]; root = {root[25:0], 1'b1}; end
            else root = {root[25:0], 1'b0};
        end
        sticky = root[1:0] != 0 || rem != 0;
        mant = {1'b0, root[26:3]} + {24'h0, root[2] && (sticky || root[3])};
        biased = half + 127 + (mant[24] ? 1 : 0);
        if (a[30:23] == 8'hff && a[22:0] != 0) q = 32'h7fc00000;      // NaN
        else if (a[30:0] == 0) q = a;                                  // +-0
        else if (a[31]) q = 32'h7fc00000;                              // negative, -inf
        else if (a[30:23] == 8'hff) q = a;                             // +inf
        else q = {1'b0, biased[7:0], mant[24] ? 23'h0 : mant[22:0]};
    end
endmodule

// a > b on FP32 values: false when either is NaN; +0 and -0 are equal.
module sat_fp32_greater (input [31:0] a, input [31:0] b, output greater);
    wire nan = (a[30:23] == 8'hff && a[22:0] != 0) || (b[30:23] == 8'hff && b[22:0] != 0);
    wire zeros = a[30:0] == 0 && b[30:0] == 0;
    assign greater = !nan && !zeros && (a[31] != b[31] ? !a[31] : a[31] ? a[30:0] < b[30:0] : a[30:0] > b[30:0]);
endmodule

// An unsigned 24-bit integer to FP32 (exact).
module sat_u24_to_f32 (input [23:0] u, output reg [31:0] f);
"#,
    );
    s.push_str(NORMALIZE_SIGNIFICAND);
    s.push_str(
        r#"    reg [4:0] shift;
    reg [23:0] norm;
    always @* begin
        {shift, norm} = normalize_significand(u);
        f = u == 0 ? 32'h0 : {1'b0, 8'd150 - {3'h0, shift}, norm[22:0]};
    end
endmodule
"#,
    );
    // exp_spec
    let _ = write!(
        s,
        r#"
// exp_spec (see satkit's sim/src/numerics.rs): k = round(x / ln2), Cody-Waite reduction,
// degree-7 Horner polynomial, scaling by 2^k through the exponent bits.
module sat_fp32_exp (input [31:0] x, output [31:0] y);
    wire [31:0] t;
    sat_fp32_mul to_base2 (.a(x), .b({inv_ln2}), .product(t));
    // k = round(t), half away from zero, as an integer magnitude and as FP32 with t's sign.
    wire [7:0] te = t[30:23];
    wire [24:0] halfway = {{1'b0, 1'b1, t[22:0]}} + (25'd1 << (8'd149 - te));
    wire [24:0] rounded = halfway >> (8'd150 - te);
    wire [8:0] k_magnitude = te < 8'd126 || te > 8'd134 ? 9'd0 : rounded[8:0];
    wire [31:0] k_unsigned;
    sat_u24_to_f32 k_float (.u({{15'h0, k_magnitude}}), .f(k_unsigned));
    wire [31:0] k = {{t[31], k_unsigned[30:0]}};
    wire [9:0] biased = t[31] ? 10'd127 - {{1'b0, k_magnitude}} : 10'd127 + {{1'b0, k_magnitude}};
    wire [31:0] scale = {{biased[8:0], 23'h0}};
    // r = (x - k ln2_hi) - k ln2_lo
    wire [31:0] k_hi, k_lo, r_hi, r;
    sat_fp32_mul times_hi (.a(k), .b({ln2_hi}), .product(k_hi));
    sat_fp32_add minus_hi (.a(x), .b({{~k_hi[31], k_hi[30:0]}}), .sum(r_hi));
    sat_fp32_mul times_lo (.a(k), .b({ln2_lo}), .product(k_lo));
    sat_fp32_add minus_lo (.a(r_hi), .b({{~k_lo[31], k_lo[30:0]}}), .sum(r));
{poly}    wire [31:0] scaled;
    sat_fp32_mul by_scale (.a(p{last}), .b(scale), .product(scaled));
    wire nan = x[30:23] == 8'hff && x[22:0] != 0;
    wire above, below;
    sat_fp32_greater over (.a(x), .b({overflow}), .greater(above));
    sat_fp32_greater under (.a({underflow}), .b(x), .greater(below));
    assign y = nan ? x : above ? 32'h7f800000 : below ? 32'h0 : scaled;
endmodule
"#,
        inv_ln2 = bits(EXP_INV_LN2),
        ln2_hi = bits(EXP_LN2_HI),
        ln2_lo = bits(EXP_LN2_LO),
        poly = horner("p", "r", &EXP_HORNER),
        last = EXP_HORNER.len() - 1,
        overflow = bits(EXP_OVERFLOW),
        underflow = bits(EXP_UNDERFLOW),
    );
    // ln_spec
    let _ = write!(
        s,
        r#"
// ln_spec (see satkit's sim/src/numerics.rs): x = 2^e m, m in [sqrt(1/2), sqrt(2)),
// t = (m - 1) / (m + 1), ln m = 2 t (1 + t^2/3 + ... + t^8/9), result e ln2 + ln m.
module sat_fp32_ln (input [31:0] x, output [31:0] y);
    localparam [31:0] SQRT2 = {sqrt2};
    wire big = x[22:0] > SQRT2[22:0];
    wire [31:0] m = {{1'b0, big ? 8'd126 : 8'd127, x[22:0]}};
    wire [9:0] e = {{2'b0, x[30:23]}} - 10'd127 + {{9'h0, big}};
    wire [31:0] num, den, t, t2;
    sat_fp32_add minus_one (.a(m), .b(32'hbf800000), .sum(num));
    sat_fp32_add plus_one (.a(m), .b(32'h3f800000), .sum(den));
    sat_fp32_div ratio (.a(num), .b(den), .q(t));
    sat_fp32_mul square (.a(t), .b(t), .product(t2));
{series}    wire [31:0] e_unsigned, e_float, e_ln2, two_t, ln_m, sum;
    wire [9:0] e_magnitude = e[9] ? -e : e;
    sat_u24_to_f32 e_to_float (.u({{14'h0, e_magnitude}}), .f(e_unsigned));
    assign e_float = {{e[9], e_unsigned[30:0]}};
    sat_fp32_mul times_ln2 (.a(e_float), .b({ln2}), .product(e_ln2));
    sat_fp32_mul twice (.a(32'h40000000), .b(t), .product(two_t));
    sat_fp32_mul times_series (.a(two_t), .b(s{last}), .product(ln_m));
    sat_fp32_add total (.a(e_ln2), .b(ln_m), .sum(sum));
    wire nan = x[30:23] == 8'hff && x[22:0] != 0;
    wire low = x[31] || x[30:23] == 0;
    wire inf = x[30:0] == 31'h7f800000;
    assign y = nan || inf ? x : low ? 32'hff800000 : sum;
endmodule
"#,
        sqrt2 = bits(std::f32::consts::SQRT_2),
        series = horner("s", "t2", &LN_HORNER),
        last = LN_HORNER.len() - 1,
        ln2 = bits(std::f32::consts::LN_2),
    );
    s
}
