//! The vector unit's FP32 functions (`sat_fp32_div`, `sat_fp32_exp`, `sat_fp32_ln`,
//! `sat_fp32_sqrt`, from `hw/src/rtl/vector_math.rs`) against the simulator's arithmetic, one
//! value at a time: the generated machine's Verilog runs in Icarus Verilog with a testbench that
//! applies each input and prints the four results. Division and square root are compared with
//! Rust's `f32` operations, `exp` and `ln` with `exp_spec` and `ln_spec`; two NaNs are equal
//! (see the NaN rule of `hw/src/rtl/fp.rs`).
//! The inputs are every pair of special values, random bit patterns, and pairs picked to give
//! subnormal quotients, halfway cases and overflow.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use satkit_hw::ArchConfig;
use satkit_sim::numerics::{exp_spec, ln_spec};
use std::fmt::Write as _;

const SPECIAL: [u32; 24] = [
    0x0000_0000,
    0x8000_0000,
    0x0000_0001,
    0x8000_0001,
    0x007f_ffff,
    0x0040_0000,
    0x0080_0000,
    0x0080_0001,
    0x3f80_0000,
    0xbf80_0000,
    0x3fc0_0000,
    0x4000_0000,
    0x4040_0000,
    0x40e0_0000,
    0x3dcc_cccd,
    0x7f7f_ffff,
    0xff7f_ffff,
    0x7f80_0000,
    0xff80_0000,
    0x7fc0_0000,
    0x3fb5_04f3,
    0x3fb5_04f4,
    0x42b1_70a4,
    0xc2ae_a8f6,
];

fn same(rtl: u32, want: f32) -> bool {
    let got = f32::from_bits(rtl);
    (got.is_nan() && want.is_nan()) || rtl == want.to_bits()
}

/// The (a, b) inputs: `exp` and `ln` take `a`.
fn inputs() -> Vec<(u32, u32)> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5a7);
    let mut v: Vec<(u32, u32)> = SPECIAL.iter().flat_map(|&a| SPECIAL.iter().map(move |&b| (a, b))).collect();
    for _ in 0..4000 {
        v.push((rng.gen(), rng.gen()));
    }
    for _ in 0..3000 {
        // Quotients near and below the normal range, and powers of two (halfway cases when the
        // quotient is shifted to a subnormal).
        let a = rng.gen_range(0x0000_0001u32..0x0200_0000) | (rng.gen::<u32>() & 0x8000_0000);
        let b = if rng.gen_bool(0.5) { rng.gen_range(0x3f80_0000u32..0x4c00_0000) } else { (rng.gen_range(127u32..160)) << 23 };
        v.push((a, b));
    }
    for _ in 0..2000 {
        // Overflowing quotients, and ordinary arguments of the softmax: exp of -100..0, ln of 1..1e6.
        let big = rng.gen_range(0x7000_0000u32..0x7f80_0000);
        let small = rng.gen_range(0x0080_0000u32..0x1000_0000);
        v.push((big, small));
        v.push(((-rng.gen_range(0.0f32..100.0)).to_bits(), rng.gen_range(1.0f32..1e6).to_bits()));
        v.push((rng.gen_range(-90.0f32..90.0).to_bits(), rng.gen_range(0.5f32..2.0).to_bits()));
    }
    v
}

#[test]
fn division_exp_and_ln_match_the_simulators_arithmetic() {
    let dir = std::env::temp_dir().join(format!("satkit_vector_math_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let design = satkit_hw::rtl::machine::generate(&ArchConfig::tiny()).unwrap();
    let vectors = inputs();
    let mut memory = String::new();
    for (a, b) in &vectors {
        let _ = writeln!(memory, "{a:08x}{b:08x}");
    }
    std::fs::write(dir.join("inputs.hex"), memory).unwrap();
    let testbench = format!(
        r#"
module vector_math_tb;
    reg [63:0] inputs [0:{last}];
    reg [31:0] a, b;
    wire [31:0] quotient, exponential, logarithm, root;
    sat_fp32_div div (.a(a), .b(b), .q(quotient));
    sat_fp32_sqrt sqrt_unit (.a(a), .q(root));
    sat_fp32_exp exp_unit (.x(a), .y(exponential));
    sat_fp32_ln ln_unit (.x(a), .y(logarithm));
    integer i;
    initial begin
        $readmemh("{dir}/inputs.hex", inputs);
        for (i = 0; i <= {last}; i = i + 1) begin
            a = inputs[i][63:32];
            b = inputs[i][31:0];
            #1 $display("%h %h %h %h", quotient, exponential, logarithm, root);
        end
        $finish;
    end
endmodule
"#,
        last = vectors.len() - 1,
        dir = dir.display()
    );
    let source = dir.join("vector_math.v");
    std::fs::write(&source, format!("{}{testbench}", design.verilog)).unwrap();
    let stdout = satkit_hw::rtl::run_icarus(&source, "vector_math_tb").unwrap_or_else(|e| panic!("{e}"));
    let results: Vec<Vec<u32>> = stdout
        .lines()
        .filter(|l| l.split_whitespace().count() == 4)
        .map(|l| l.split_whitespace().map(|w| u32::from_str_radix(w, 16).expect("hex results")).collect())
        .collect();
    assert_eq!(results.len(), vectors.len(), "one line of results per input: {stdout:.2000}");
    let mut failures = Vec::new();
    for (&(a, b), r) in vectors.iter().zip(&results) {
        let (x, y) = (f32::from_bits(a), f32::from_bits(b));
        for (what, got, want) in
            [("div", r[0], x / y), ("exp", r[1], exp_spec(x)), ("ln", r[2], ln_spec(x)), ("sqrt", r[3], x.sqrt())]
        {
            if !same(got, want) {
                failures.push(format!("{what}({a:08x}, {b:08x}) = {got:08x}, want {:08x}", want.to_bits()));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} mismatches of {} inputs, first: {:?}",
        failures.len(),
        vectors.len(),
        &failures[..failures.len().min(10)]
    );
}
