//! Helpers shared by the `satkit run` integration tests: running the binary, temporary paths
//! and a small load/GEMM/store program.

use std::path::PathBuf;
use std::process::Command;

/// Runs `satkit` with `args`: (success, stdout, stderr).
pub fn satkit(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_satkit")).args(args).output().expect("satkit runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// A path in the temporary directory, unique to this test process.
pub fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("satkit_test_{}_{name}", std::process::id()))
}

/// Loads 4 x 16 FP16 inputs from DRAM 0 and 8 x 16 FP16 weights from 4096, multiplies them in
/// `dataflow` (`os` with interleave 2, or `ws`), and stores the 4 x 8 FP32 outputs at 8192.
pub fn gemm_program(dataflow: &str) -> String {
    let interleave = if dataflow == "os" { 2 } else { 1 };
    format!(
        "\
load buf=act sram=0 dram=0 rows=4 cols=16 dram_row_stride=16 dram_col_stride=1 sram_row_stride=16 signal=1
load buf=wgt sram=0 dram=4096 rows=8 cols=16 dram_row_stride=16 dram_col_stride=1 sram_row_stride=16 signal=2
gemm dataflow={dataflow} weights=dense accumulate=0 interleave={interleave} rows=4 cols=8 depth=16 input=0 weight=0 output=0 input_t=0 weight_t=0 wait=1,2 signal=3
store buf=acc sram=0 dram=8192 rows=4 cols=8 dram_row_stride=8 dram_col_stride=1 sram_row_stride=8 wait=3
"
    )
}

/// A DRAM image for [`gemm_program`]: input row `r` all `input(r)`, every weight `weight`.
pub fn gemm_image(input: impl Fn(usize) -> f32, weight: f32) -> Vec<u8> {
    let mut bytes = vec![0u8; 4096 + 256];
    for r in 0..4 {
        for k in 0..16 {
            let at = 2 * (r * 16 + k);
            bytes[at..at + 2].copy_from_slice(&half::f16::from_f32(input(r)).to_le_bytes());
        }
    }
    for i in 0..128 {
        bytes[4096 + 2 * i..4096 + 2 * i + 2].copy_from_slice(&half::f16::from_f32(weight).to_le_bytes());
    }
    bytes
}
