//! `satkit run PROGRAM --dram IMAGE --dram-out FILE` on the simulator: the image is DRAM before
//! the run, the output file DRAM after it; a missing image, one too large for the machine and
//! `--dram-out` without an extent are refused with a message naming the problem. And `satkit
//! compile --dram-image` writes an image a compiled step runs from.

mod common;
use common::{gemm_image, gemm_program, satkit, temp};

#[test]
fn the_image_goes_in_and_the_results_come_out() {
    let (program, image, out) = (temp("p.s"), temp("in.img"), temp("out.img"));
    std::fs::write(&program, gemm_program("ws")).unwrap();
    // Input row r is all r + 1, every weight 0.25: output (r, c) = 16 * (r + 1) / 4.
    let bytes = gemm_image(|r| (r + 1) as f32, 0.25);
    std::fs::write(&image, &bytes).unwrap();
    let (p, i, o) = (program.to_str().unwrap(), image.to_str().unwrap(), out.to_str().unwrap());
    let (ok, _, err) = satkit(&["run", p, "--dram", i, "--dram-out", o, "--dram-bytes", "8320"]);
    assert!(ok, "{err}");
    let result = std::fs::read(&out).unwrap();
    assert_eq!(result.len(), 8320);
    assert_eq!(&result[..bytes.len()], &bytes[..], "the inputs stay");
    for r in 0..4 {
        for c in 0..8 {
            let at = 8192 + 4 * (r * 8 + c);
            assert_eq!(f32::from_le_bytes(result[at..at + 4].try_into().unwrap()), 4.0 * (r + 1) as f32, "output ({r}, {c})");
        }
    }
    // Without --dram-bytes, --dram-out writes as many bytes as the image had.
    let (ok, _, err) = satkit(&["run", p, "--dram", i, "--dram-out", o]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&out).unwrap().len(), bytes.len());
    for f in [program, image, out] {
        std::fs::remove_file(f).ok();
    }
}

#[test]
fn bad_images_and_extents_are_refused() {
    let (program, image, out) = (temp("bad.s"), temp("big.img"), temp("bad.out"));
    std::fs::write(&program, gemm_program("ws")).unwrap();
    let p = program.to_str().unwrap();
    let missing = temp("missing.img");
    let (ok, _, err) = satkit(&["run", p, "--dram", missing.to_str().unwrap()]);
    assert!(!ok && err.contains("missing.img") && err.contains("cannot read"), "{err}");
    // One MiB more than tiny's DRAM.
    let capacity = (satkit_hw::ArchConfig::tiny().dram.capacity_mib as usize) << 20;
    std::fs::write(&image, vec![0u8; capacity + (1 << 20)]).unwrap();
    let (ok, _, err) = satkit(&["run", p, "--dram", image.to_str().unwrap()]);
    assert!(!ok && err.contains("does not fit"), "{err}");
    let (ok, _, err) = satkit(&["run", p, "--dram-out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("--dram-bytes"), "{err}");
    assert!(!out.exists(), "no partial output");
    for f in [program, image] {
        std::fs::remove_file(f).ok();
    }
}

#[test]
fn a_compiled_step_runs_from_its_dram_image() {
    let dir = temp("step");
    let d = dir.to_str().unwrap();
    let (ok, out, err) = satkit(&["compile", "--model", "mlp", "--arch", "tiny", "--batch", "4", "-o", d, "--dram-image"]);
    assert!(ok, "{err}");
    assert!(out.contains("dram.bin"), "{out}");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let (bytes, loss_at) = (manifest["dram_bytes"].as_u64().unwrap() as usize, manifest["loss"].as_u64().unwrap() as usize);
    let image = std::fs::read(dir.join("dram.bin")).unwrap();
    assert_eq!(image.len(), bytes);
    let loss = |img: &[u8]| half::f16::from_le_bytes([img[loss_at], img[loss_at + 1]]).to_f32();
    // The warm-up step's loss: ten classes, small random weights.
    assert!((loss(&image) - 10f32.ln()).abs() < 0.5, "warm-up loss {}", loss(&image));
    let after = dir.join("after.bin");
    let (p, i, o) = (dir.join("program.bin"), dir.join("dram.bin"), after.clone());
    let (ok, _, err) = satkit(&["run", p.to_str().unwrap(), "--dram", i.to_str().unwrap(), "--dram-out", o.to_str().unwrap()]);
    assert!(ok, "{err}");
    let next = std::fs::read(&after).unwrap();
    assert!(loss(&next).is_finite() && next != image, "the step trained: loss {}", loss(&next));
    std::fs::remove_dir_all(dir).ok();
}
