//! `satkit run PROGRAM --device rtl` (built with `--features rtl`): a load/GEMM/store program
//! runs on the Verilated machine with the simulator's cycles, from a `--dram` image to the
//! `--dram-out` results, with `--bank-profile` its operands' bank profile, and what the RTL
//! cannot run yet is refused with a message and a non-zero exit.
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
fn the_bank_profile_comes_as_csv_and_chart() {
    let path = program_file("banks", &gemm_program("os"));
    let p = path.to_str().unwrap();
    let dir = temp("bank-profile");
    let d = dir.to_str().unwrap();
    let (ok, out, err) = satkit(&["run", p, "--device", "rtl", "--arch", "tiny", "--bank-profile", d, "--banks", "4,64"]);
    assert!(ok, "{err}");
    assert!(out.contains("B=64") && out.contains("every instruction starts and ends in the same cycle"), "{out}");
    let csv = std::fs::read_to_string(dir.join("bank_profile.csv")).unwrap();
    assert!(
        csv.starts_with("kind,unit,operand,access,buffer,cycles,elements,widest,conflicted_4,extra_4,conflicted_64,extra_64\n"),
        "{csv}"
    );
    for row in ["gemm os,tensor,input,read,act,", "gemm os,tensor,output,write,acc,", "load,load,destination,write,act,"] {
        assert!(csv.contains(row), "no `{row}` row in\n{csv}");
    }
    assert!(std::fs::metadata(dir.join("bank_profile.png")).unwrap().len() > 0);
    let (ok, _, err) = satkit(&["run", p, "--device", "rtl", "--arch", "tiny", "--bank-profile", d, "--banks", "12"]);
    assert!(!ok && err.contains("12 banks"), "{err}");
    let (ok, _, err) = satkit(&["run", p, "--arch", "tiny", "--bank-profile", d]);
    assert!(!ok && err.contains("--device rtl"), "{err}");
    std::fs::remove_dir_all(dir).ok();
    std::fs::remove_file(path).ok();
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
