//! The CUDA training path (`satkit train --device cuda`): the same models, methods and
//! options as the CPU reference ([`crate::trainer`]), with every tensor of a training step on
//! the GPU. GEMMs run on cuBLAS (FP32); the N:M masks (FF along `K`, BP along `C_out`, the
//! rule and tie rule of [`satkit_hw::nm`]), im2col/col2im with `K` in `(kh, kw, c_in)` order,
//! element-wise ops, pooling, batch norm, the loss and the SGD/SR-STE update are NVRTC
//! kernels from `kernels/*.cu`, compiled once when the device is opened. The N:M operands
//! are dense matrices with the pruned entries zeroed (cuBLAS has no N:M GEMM), so the sparse
//! phases cost what the dense ones do: this path reproduces the training numerics, not the
//! speed-up of a sparse engine.
//!
//! Built without the `cuda` feature, the same API exists and [`CudaDevice::open`] returns
//! [`crate::Error::CudaNotCompiled`]; nothing here panics for want of a GPU. With the
//! feature, opening checks once for the driver, NVRTC and cuBLAS libraries and device
//! `ordinal`, and a missing one is [`crate::Error::CudaUnavailable`]. There is no CPU
//! fallback.

#[cfg(feature = "cuda")]
mod device;
#[cfg(feature = "cuda")]
mod model;
#[cfg(feature = "cuda")]
mod train;

#[cfg(feature = "cuda")]
pub use device::CudaDevice;
#[cfg(feature = "cuda")]
pub use model::{CudaModel, WeightMasks};
#[cfg(feature = "cuda")]
pub use train::train;

#[cfg(not(feature = "cuda"))]
mod stub;
#[cfg(not(feature = "cuda"))]
pub use stub::{train, CudaDevice, CudaModel, WeightMasks};

/// True when this build contains the CUDA path (the `cuda` feature).
pub const COMPILED: bool = cfg!(feature = "cuda");
