//! `satkit run PROGRAM --device rtl` (built with `--features rtl`): a load/GEMM/store program
//! runs on the Verilated machine with the simulator's cycles, from a `--dram` image to the
//! `--dram-out` results, and what the RTL cannot run yet is refused with a message and a
//! non-zero exit.
#![cfg(feature = "rtl")]

mod common;
use common::{gemm_image, gemm_program, satkit, temp};

fn program_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = temp(&format!("{name}.s"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_program_runs_on_the_rtl_with_the_simulators_cycles() {
    let path = program_file("ok", &gemm_program("os"));
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
    let path = program_file("dram", &gemm_program("os"));
    let (image, out) = (temp("rtl.img"), temp("rtl.out"));
    // Inputs and weights all FP16 1.0 and 0.5: each output is 16 * 0.5 = 8.
    let mut bytes = gemm_image(|_| 1.0, 0.5);
    bytes.resize(8192 + 128, 0);
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
        program_file("vec", "vec op=maxpool_grad count=1 dst_buf=acc dst=100 a_buf=acc a=0 b_buf=acc b=50 p0=6 p1=6 p2=5 p3=1\n");
    let (ok, _, err) = satkit(&["run", vec.to_str().unwrap(), "--device", "rtl", "--arch", "tiny"]);
    assert!(!ok && err.contains("overlapping"), "{err}");
    let ok_program = program_file("arch", &gemm_program("os"));
    let (ok, _, err) = satkit(&["run", ok_program.to_str().unwrap(), "--device", "rtl", "--arch", "vcu1525"]);
    assert!(!ok && err.contains("SATKIT_COSIM_ARCH"), "{err}");
    let (ok, _, err) = satkit(&["run", ok_program.to_str().unwrap(), "--device", "board"]);
    assert!(!ok && err.contains("--device board"), "{err}");
    std::fs::remove_file(vec).ok();
    std::fs::remove_file(ok_program).ok();
}
