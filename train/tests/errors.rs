//! Bad input gives a clear error naming the file, layer or value at fault, never a panic:
//! missing or malformed IDX files, layers that do not split into N:M groups, unknown names,
//! out-of-range settings.

use satkit_hw::nm::NmRatio;
use satkit_train::data::{read_idx, Dataset, Split};
use satkit_train::model::{Model, SparsityConfig};
use satkit_train::trainer::TrainConfig;
use satkit_train::{model_spec, Error, Method};
use std::io::Write;
use std::path::PathBuf;

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("satkit-train-err-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gz(path: &PathBuf, bytes: &[u8]) {
    let mut e = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap();
}

#[test]
fn missing_dataset_names_the_path_and_the_package() {
    let dir = tmp_dir("missing");
    let msg = Dataset::load(&dir, Split::Train).unwrap_err().to_string();
    assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
    assert!(msg.contains("apt-get install -y dataset-fashion-mnist"), "{msg}");
    assert!(msg.contains("--dataset-dir"), "{msg}");
}

#[test]
fn bad_idx_files_name_the_file() {
    let dir = tmp_dir("bad");
    let p = dir.join("x-images-idx3-ubyte.gz");
    gz(&p, &[0, 0, 8, 1, 0, 0, 0, 1]);
    let msg = read_idx(&p, 3).unwrap_err().to_string();
    assert!(msg.contains("x-images-idx3-ubyte.gz") && msg.contains("magic"), "{msg}");
    // Right magic, header says 2 images of 2x2, only 5 data bytes.
    let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
    bytes.extend([1, 2, 3, 4, 5]);
    gz(&p, &bytes);
    let msg = read_idx(&p, 3).unwrap_err().to_string();
    assert!(msg.contains("truncated") && msg.contains("x-images"), "{msg}");
    // Shorter than the header.
    gz(&p, &[0, 0, 8]);
    assert!(matches!(read_idx(&p, 3), Err(Error::BadIdx { .. })));
    // Not gzip at all.
    std::fs::write(&p, b"plain text").unwrap();
    assert!(matches!(read_idx(&p, 3), Err(Error::DatasetRead { .. })));
    // Raw (not gzipped) files are accepted.
    let raw = dir.join("y-labels-idx1-ubyte");
    std::fs::write(&raw, [0, 0, 8, 1, 0, 0, 0, 2, 3, 4]).unwrap();
    assert_eq!(read_idx(&raw, 1).unwrap(), (vec![2], vec![3, 4]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ungroupable_sparse_layer_is_refused_with_its_name() {
    let spec = model_spec("lenet5").unwrap();
    let mut s = SparsityConfig::new(Method::Bdwp, NmRatio::new(2, 8).unwrap());
    s.dense_layers = Some(vec!["fc3".into()]);
    let msg = Model::new(&spec, &s, 0).unwrap_err().to_string();
    assert!(msg.contains("conv1") && msg.contains("K = 25") && msg.contains("M = 8"), "{msg}");
    // The classifier has C_out = 10: BDWP's BP groups do not fit, SR-STE's FF groups of 4 do not either (K = 80 fits 8).
    s.dense_layers = Some(vec!["conv1".into()]);
    let msg = Model::new(&spec, &s, 0).unwrap_err().to_string();
    assert!(msg.contains("fc3") && msg.contains("C_out = 10"), "{msg}");
    // Dense layers are never checked.
    s.method = Method::Dense;
    s.dense_layers = Some(Vec::new());
    Model::new(&spec, &s, 0).unwrap();
}

#[test]
fn unknown_names_are_refused() {
    let spec = model_spec("lenet5").unwrap();
    let mut s = SparsityConfig::new(Method::Bdwp, NmRatio::new(2, 8).unwrap());
    s.dense_layers = Some(vec!["conv9".into()]);
    let msg = s.plan(&spec).unwrap_err().to_string();
    assert!(msg.contains("conv9") && msg.contains("conv1, conv2, fc1, fc2, fc3"), "{msg}");
    assert!(model_spec("resnet").unwrap_err().to_string().contains("mlp, lenet5, vgg-small"));
    // The vocabulary is satkit_hw's; its parse errors convert into the crate's error and name
    // the accepted values.
    let e: Error = "sparse".parse::<Method>().unwrap_err().into();
    assert!(matches!(e, Error::Hw(satkit_hw::Error::UnknownName { .. })), "{e:?}");
    assert!(e.to_string().contains("`sparse`") && e.to_string().contains("dense, srste, bdwp"), "{e}");
    let e: Error = "both".parse::<satkit_train::BpMaskSource>().unwrap_err().into();
    assert!(e.to_string().contains("`both`") && e.to_string().contains("dense, forward_masked"), "{e}");
    assert_eq!("forward-masked".parse::<satkit_train::BpMaskSource>().unwrap(), satkit_train::BpMaskSource::ForwardMasked);
    assert_eq!("sr-ste".parse::<Method>().unwrap(), Method::Srste);
}

#[test]
fn bad_settings_are_refused() {
    for cfg in [
        TrainConfig { epochs: 0, ..TrainConfig::default() },
        TrainConfig { batch: 0, ..TrainConfig::default() },
        TrainConfig { lr: f32::NAN, ..TrainConfig::default() },
        TrainConfig { momentum: 1.0, ..TrainConfig::default() },
        TrainConfig { train_limit: Some(0), ..TrainConfig::default() },
    ] {
        assert!(matches!(cfg.validate(), Err(Error::BadSetting { .. })), "{cfg:?}");
    }
}

#[test]
fn wrong_input_shapes_are_errors() {
    let spec = model_spec("lenet5").unwrap();
    let mut model = Model::new(&spec, &SparsityConfig::new(Method::Dense, NmRatio::new(2, 8).unwrap()), 0).unwrap();
    let x = satkit_train::Tensor::zeros(&[2, 3, 28, 28]);
    let msg = model.forward(&x, true).unwrap_err().to_string();
    assert!(msg.contains("conv1"), "{msg}");
    let msg = model.backward(&satkit_train::Tensor::zeros(&[2, 10])).unwrap_err().to_string();
    assert!(msg.contains("without a preceding forward") || msg.contains("shape"), "{msg}");
}
