//! `satkit-train`: the CPU reference trainer for N:M sparse training (SAT.md section 2).
//!
//! It trains the zoo models ([`zoo`]) on Fashion-MNIST ([`data`]) with dense training,
//! SR-STE or BDWP ([`sparse`]), using FP32 throughout on the CPU: the hardware computes its
//! GEMMs on FP16 operands with FP32 accumulation, which this reference does not emulate.
//! The N:M mask rule itself lives in [`satkit_hw::nm`] and is only called from here.
//! Runs are deterministic for a given seed, whatever the number of threads.
//!
//! Entry points: [`trainer::train`] for one run, [`sweep::run_sweep`] for the accuracy table,
//! [`output::write_run`] and [`checkpoint`] for results on disk.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod cuda;
pub mod data;
pub mod error;
pub mod gemm;
pub mod layers;
pub mod model;
pub mod optim;
pub mod output;
pub mod rng;
pub mod sparse;
pub mod sweep;
pub mod tensor;
pub mod trainer;
pub mod zoo;

pub use error::{Error, Result};
pub use model::{Model, SparsityConfig};
pub use sparse::{BpMaskSource, LayerSparsity, Method, NmWeight};
pub use tensor::Tensor;
pub use trainer::{train, TrainConfig, TrainReport};
pub use zoo::{model_spec, LayerKind, LayerSpec, ModelSpec, MODEL_NAMES};
