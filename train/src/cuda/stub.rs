//! The CUDA API in a build without the `cuda` feature: [`CudaDevice::open`] returns
//! [`Error::CudaNotCompiled`], so no device, model or run can exist and the other functions
//! are unreachable by construction (they take a device or a model that cannot be built).

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::optim::Sgd;
use crate::tensor::Tensor;
use crate::trainer::{Progress, TrainConfig, TrainReport};
use std::convert::Infallible;

/// A CUDA device; cannot be opened in this build.
#[derive(Debug)]
pub struct CudaDevice {
    never: Infallible,
}

impl CudaDevice {
    /// Always [`Error::CudaNotCompiled`] in a build without the `cuda` feature.
    pub fn open(_ordinal: usize) -> Result<Self> {
        Err(Error::CudaNotCompiled)
    }

    /// A one-line description of the device.
    pub fn describe(&self) -> String {
        match self.never {}
    }
}

/// The masks of one weight layer as read back from the GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightMasks {
    /// Layer name.
    pub name: String,
    /// FF mask, `None` for a dense layer.
    pub ff: Option<Vec<u8>>,
    /// BP mask, `Some` for BDWP layers.
    pub bp: Option<Vec<u8>>,
}

/// A model on the GPU; cannot exist in this build.
#[derive(Debug)]
pub struct CudaModel {
    never: Infallible,
}

impl CudaModel {
    /// Uploads `model`; unreachable without a device.
    pub fn new(dev: &CudaDevice, _model: &Model) -> Result<Self> {
        match dev.never {}
    }

    /// One training step; unreachable.
    pub fn train_step(&mut self, _x: &Tensor, _labels: &[u8], _sgd: &Sgd, _lr: f32) -> Result<f64> {
        match self.never {}
    }

    /// Copies the parameters back; unreachable.
    pub fn download(&self, _model: &mut Model) -> Result<()> {
        match self.never {}
    }

    /// Reads the masks back; unreachable.
    pub fn masks(&self) -> Result<Vec<WeightMasks>> {
        match self.never {}
    }
}

/// Trains on the GPU; unreachable without a device.
pub fn train(
    dev: &CudaDevice,
    _cfg: &TrainConfig,
    _train_set: &Dataset,
    _test_set: &Dataset,
    _progress: &mut dyn FnMut(Progress),
) -> Result<(Model, TrainReport)> {
    match dev.never {}
}
