//! Fashion-MNIST (or any MNIST-format copy) from IDX files, gzip-compressed or raw.
//!
//! IDX layout: a big-endian magic `0x0000_08_NN` (`08` = unsigned bytes, `NN` = number of
//! dimensions), one big-endian u32 per dimension, then the bytes. Images are
//! `train-images-idx3-ubyte` / `t10k-images-idx3-ubyte` (`N x 28 x 28`) and labels
//! `*-labels-idx1-ubyte` (`N`). Pixels are scaled to `[0, 1]` and standardized with the
//! Fashion-MNIST training mean 0.2860 and deviation 0.3530.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const DEFAULT_DATASET_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Pixel mean used for standardization.
pub const PIXEL_MEAN: f32 = 0.2860;
/// Pixel deviation used for standardization.
pub const PIXEL_STD: f32 = 0.3530;

/// Which half of the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training images (`train-*`).
    Train,
    /// The test images (`t10k-*`).
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Labelled images held in memory as standardized FP32.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `len * rows * cols` standardized pixels, image after image.
    pub pixels: Vec<f32>,
    /// One class per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there is no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images at `indices` as a `[len, 1, rows, cols]` tensor with their labels.
    pub fn batch(&self, indices: &[usize]) -> (Tensor, Vec<u8>) {
        let sz = self.rows * self.cols;
        let mut data = Vec::with_capacity(indices.len() * sz);
        for &i in indices {
            data.extend_from_slice(&self.pixels[i * sz..(i + 1) * sz]);
        }
        let x = Tensor { shape: vec![indices.len(), 1, self.rows, self.cols], data };
        (x, indices.iter().map(|&i| self.labels[i]).collect())
    }

    /// Loads one split from `dir`, reading `<prefix>-images-idx3-ubyte.gz` (or the file
    /// without `.gz`) and the matching labels.
    pub fn load(dir: &Path, split: Split) -> Result<Self> {
        let images = find(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?;
        let labels = find(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
        let (dims, pixels) = read_idx(&images, 3)?;
        let (ldims, labs) = read_idx(&labels, 1)?;
        if dims[0] != ldims[0] {
            return Err(Error::CountMismatch { images, n_images: dims[0], labels, n_labels: ldims[0] });
        }
        if let Some(&bad) = labs.iter().find(|&&l| l > 9) {
            return Err(Error::BadIdx { path: labels, reason: format!("label {bad} is outside 0..=9") });
        }
        let pixels = pixels.iter().map(|&p| (f32::from(p) / 255.0 - PIXEL_MEAN) / PIXEL_STD).collect();
        Ok(Self { pixels, labels: labs, rows: dims[1], cols: dims[2] })
    }
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{stem}.gz"));
    let raw = dir.join(stem);
    if gz.is_file() {
        Ok(gz)
    } else if raw.is_file() {
        Ok(raw)
    } else {
        Err(Error::DatasetMissing { path: gz })
    }
}

/// Reads an unsigned-byte IDX file with `ndims` dimensions (gunzipping when the name ends in
/// `.gz`); returns the dimensions and the data.
pub fn read_idx(path: &Path, ndims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let read_err = |source| Error::DatasetRead { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::DatasetMissing { path: path.to_path_buf() }
        } else {
            read_err(e)
        }
    })?;
    let mut bytes = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file).read_to_end(&mut bytes).map_err(read_err)?;
    } else {
        std::io::BufReader::new(file).read_to_end(&mut bytes).map_err(read_err)?;
    }
    let bad = |reason: String| Error::BadIdx { path: path.to_path_buf(), reason };
    if bytes.len() < 4 {
        return Err(bad(format!("{} bytes, shorter than the 4-byte magic number", bytes.len())));
    }
    let word = |i: usize| u32::from_be_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
    let expected_magic = 0x0800 | ndims as u32;
    if word(0) != expected_magic {
        return Err(bad(format!("magic number {:#010x}, expected {expected_magic:#010x}", word(0))));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(bad(format!("{} bytes, shorter than the {header}-byte header", bytes.len())));
    }
    let dims: Vec<usize> = (1..=ndims).map(|i| word(i) as usize).collect();
    let len =
        dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let body = bytes.len() - header;
    if body != len {
        let what = if body < len { "truncated" } else { "trailing bytes" };
        return Err(bad(format!("{what}: dimensions {dims:?} need {len} data bytes, found {body}")));
    }
    bytes.drain(..header);
    Ok((dims, bytes))
}
