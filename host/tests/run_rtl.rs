//! `satkit run PROGRAM --device rtl` (built with `--features rtl`): a load/GEMM/store program
//! runs on the Verilated machine with the simulator's cycles, from a `--dram` image to the
//! `--dram-out` results, and what the RTL cannot run yet is refused with a message and a
//! non-zero exit.
#![cfg(feature = "rtl")]

use std::process::Command;

fn satkit(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_satkit")).args(args).output().expect("satkit runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn program_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("satkit_run_rtl_{}_{name}.s", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

const PROGRAM: &str = "\
load buf=act sram=0 dram=0 rows=4 cols=16 dram_row_stride=16 dram_col_stride=1 sram_row_stride=16 signal=1
load buf=wgt sram=0 dram=4096 rows=8 cols=16 dram_row_stride=16 dram_col_stride=1 sram_row_stride=16 signal=2
gemm dataflow=os weights=dense accumulate=0 interleave=2 rows=4 cols=8 depth=16 input=0 weight=0 output=0 input_t=0 weight_t=0 wait=1,2 signal=3
store buf=acc sram=0 dram=8192 rows=4 cols=8 dram_row_stride=8 dram_col_stride=1 sram_row_stride=8 wait=3
";

#[test]
fn a_program_runs_on_the_rtl_with_the_simulators_cycles() {
    let path = program_file("ok", PROGRAM);
    let p = path.to_str().unwrap();
    let (ok, out, err) = satkit(&["run", p, "--device", "rtl", "--arch", "tiny"]);
    assert!(ok, "{err}");
    assert!(out.contains("every instruction starts and ends in the same cycle"), "{out}");
    let (ok, json, err) = satkit(&["run", p, "--device", "rtl", "--arch", "tiny", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["total_cycles"], v["simulator_total_cycles"]);
    assert!(v["timing_difference"].is_null(), "{json}");
    assert_eq!(v["instructions"].as_array().map(Vec::len), Some(4));
    std::fs::remove_file(path).ok();
}

#[test]
fn a_dram_image_goes_in_and_the_results_come_out() {
    let path = program_file("dram", PROGRAM);
    let dir = std::env::temp_dir();
    let (image, out) = (
        dir.join(format!("satkit_run_rtl_{}.img", std::process::id())),
        dir.join(format!("satkit_run_rtl_{}.out", std::process::id())),
    );
    // Inputs and weights all FP16 1.0 and 0.5: each output is 16 * 0.5 = 8.
    let mut bytes = vec![0u8; 8192 + 128];
    for i in 0..64 {
        bytes[2 * i..2 * i + 2].copy_from_slice(&half::f16::from_f32(1.0).to_le_bytes());
    }
    for i in 0..128 {
        bytes[4096 + 2 * i..4096 + 2 * i + 2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
    }
    std::fs::write(&image, &bytes).unwrap();
    let args = ["run", path.to_str().unwrap(), "--device", "rtl", "--arch", "tiny", "--dram", image.to_str().unwrap()];
    let (ok, stdout, err) = satkit(&[&args[..], &["--dram-out", out.to_str().unwrap()]].concat());
    assert!(ok, "{err}");
    assert!(stdout.contains("DRAM bytes [0, 0x2080) are equal"), "{stdout}");
    let result = std::fs::read(&out).unwrap();
    assert_eq!(result.len(), bytes.len());
    for o in 0..32 {
        let at = 8192 + 4 * o;
        assert_eq!(f32::from_le_bytes(result[at..at + 4].try_into().unwrap()), 8.0, "output {o}");
    }
    for f in [path, image, out] {
        std::fs::remove_file(f).ok();
    }
}

#[test]
fn what_the_rtl_cannot_run_is_refused() {
    let vec =
        program_file("vec", "vec op=maxpool_grad count=1 dst_buf=acc dst=100 a_buf=acc a=0 b_buf=acc b=50 p0=5 p1=5 p2=3 p3=2\n");
    let (ok, _, err) = satkit(&["run", vec.to_str().unwrap(), "--device", "rtl", "--arch", "tiny"]);
    assert!(!ok && err.contains("overlapping"), "{err}");
    let ok_program = program_file("arch", PROGRAM);
    let (ok, _, err) = satkit(&["run", ok_program.to_str().unwrap(), "--device", "rtl", "--arch", "vcu1525"]);
    assert!(!ok && err.contains("SATKIT_COSIM_ARCH"), "{err}");
    let (ok, _, err) = satkit(&["run", ok_program.to_str().unwrap(), "--device", "board"]);
    assert!(!ok && err.contains("--device board"), "{err}");
    std::fs::remove_file(vec).ok();
    std::fs::remove_file(ok_program).ok();
}
