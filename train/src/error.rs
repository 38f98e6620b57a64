//! The one error type of the `train` crate, grouped by topic: data files, model and sparsity
//! configuration, tensor shapes, and output files. Every message names the file, layer or
//! value at fault and, where there is one, the fix.

use std::path::PathBuf;

/// Everything that can go wrong while loading data, building a model, training or writing
/// results.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- data ---
    /// A dataset file is absent.
    #[error(
        "dataset file {path} not found: install Fashion-MNIST with \
         `apt-get update && apt-get install -y dataset-fashion-mnist`, \
         or pass --dataset-dir DIR holding {{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte[.gz]"
    )]
    DatasetMissing {
        /// The path looked for.
        path: PathBuf,
    },
    /// A dataset file could not be read or decompressed.
    #[error("reading {path}: {source}")]
    DatasetRead {
        /// The file.
        path: PathBuf,
        /// The underlying I/O or gzip error.
        source: std::io::Error,
    },
    /// A file is not a valid IDX file of the expected kind.
    #[error("{path}: not a valid IDX file: {reason}")]
    BadIdx {
        /// The file.
        path: PathBuf,
        /// What is wrong (magic number, header, length).
        reason: String,
    },
    /// Image and label files disagree.
    #[error("{images} has {n_images} images but {labels} has {n_labels} labels")]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// Images it holds.
        n_images: usize,
        /// The label file.
        labels: PathBuf,
        /// Labels it holds.
        n_labels: usize,
    },

    // --- configuration ---
    /// A model name that the zoo does not know.
    #[error("unknown model `{name}`: expected one of {known}")]
    UnknownModel {
        /// The name given.
        name: String,
        /// The known names, comma separated.
        known: String,
    },
    /// A name or setting refused by `satkit_hw` (e.g. an unknown training method or BP-mask
    /// source: [`satkit_hw::Error::UnknownName`], whose message lists the accepted names).
    #[error(transparent)]
    Hw(#[from] satkit_hw::Error),
    /// A learning-rate schedule name that is not known.
    #[error("unknown learning-rate schedule `{name}`: expected constant or cosine")]
    UnknownSchedule {
        /// The name given.
        name: String,
    },
    /// A layer named in the dense overrides does not exist or has no weight.
    #[error("model `{model}`: --dense-layers names `{layer}`, which is not a weight layer; weight layers are {known}")]
    UnknownLayer {
        /// The model.
        model: String,
        /// The name given.
        layer: String,
        /// The weight layers of the model, comma separated.
        known: String,
    },
    /// A sparse layer whose grouped dimension does not split into groups of M.
    #[error(
        "model `{model}`: layer `{layer}`: {dim} = {len} is not a multiple of M = {m} \
         ({phase} groups); make it dense with --dense-layers or pick another N:M"
    )]
    NotGroupable {
        /// The model.
        model: String,
        /// The layer.
        layer: String,
        /// `K` (FF groups) or `C_out` (BP groups).
        dim: &'static str,
        /// Its length.
        len: usize,
        /// The group size.
        m: u32,
        /// `FF` or `BP`.
        phase: &'static str,
    },
    /// A numeric training setting out of range.
    #[error("{name} = {value}: {rule}")]
    BadSetting {
        /// The setting.
        name: &'static str,
        /// Its value as given.
        value: String,
        /// The rule broken.
        rule: &'static str,
    },

    // --- training ---
    /// The loss stopped being a finite number.
    #[error("training diverged at epoch {epoch}, step {step}: loss = {loss}; lower --lr")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// Steps done in the run.
        step: usize,
        /// The loss value.
        loss: f64,
    },

    // --- shapes ---
    /// A tensor reached a layer with the wrong shape.
    #[error("layer `{layer}`: input shape {got:?} does not match the expected {expected}")]
    Shape {
        /// The layer.
        layer: String,
        /// The shape received.
        got: Vec<usize>,
        /// The shape expected, in words.
        expected: String,
    },
    /// `backward` was called before `forward` cached its inputs.
    #[error("layer `{layer}`: backward called without a preceding forward in training mode")]
    NoForward {
        /// The layer.
        layer: String,
    },

    // --- output ---
    /// Writing an output file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Reading a checkpoint failed.
    #[error("reading checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Serializing a report failed.
    #[error("serializing {what}: {reason}")]
    Serialize {
        /// The report or file kind.
        what: &'static str,
        /// The serializer's message.
        reason: String,
    },

    // --- CUDA ---
    /// `--device cuda` asked of a binary built without the `cuda` feature.
    #[error("this binary was built without CUDA support: rebuild with `--features cuda`, or rerun with --device cpu")]
    CudaNotCompiled,
    /// The CUDA device could not be opened at startup (no driver, no device, no NVRTC or cuBLAS).
    #[error("no CUDA device {ordinal}: {reason}; rerun with --device cpu")]
    CudaUnavailable {
        /// The device ordinal asked for.
        ordinal: usize,
        /// What is missing or what the driver said.
        reason: String,
    },
    /// A CUDA operation failed after the device was opened.
    #[error("CUDA {op}: {reason}")]
    Cuda {
        /// The operation (kernel, GEMM, copy).
        op: String,
        /// The driver's, NVRTC's or cuBLAS's message.
        reason: String,
    },
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
