//! `satkit-compiler`: maps work onto a SAT machine.
//!
//! - [`gemm`]: kernel-level lowering of one GEMM (tiling, double buffering, dataflow choice,
//!   semaphores, program emission), reused by every layer lowering;
//! - [`gemm_data`]: operand generation, N:M compression into the DRAM layout, and the f64 check;
//! - [`model`]: the model description (layers, shapes, training-phase GEMMs, zoo, model files,
//!   sparsity policies);
//! - [`scalesim`]: SCALE-Sim v3 configs and topologies in, its `COMPUTE_REPORT.csv` out;
//! - [`step`]: the training-step compiler (a model's whole iteration as one program) and its
//!   simulation report.

mod error;
pub mod gemm;
pub mod gemm_data;
pub mod model;
pub mod scalesim;
pub mod step;

pub use error::{Error, Result};
