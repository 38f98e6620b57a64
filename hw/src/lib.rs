//! `satkit-hw`: the SAT machine as data.
//!
//! - [`arch`]: the architecture description ([`ArchConfig`]), the one source of every size;
//! - [`board`]: the FPGA boards a description may name, with their device's resources, and
//!   the block-RAM plan of a description's buffers;
//! - [`nm`]: the N:M sparsity rule shared by training, simulator and RTL;
//! - [`isa`]: the instruction set, defined once in a table from which the encoder, decoder,
//!   assembler, disassembler and layout listing are all generated;
//! - [`operands`]: what each instruction reads and writes (element ranges, vector geometry,
//!   buffer use);
//! - [`numerics`]: the constants of the arithmetic specification that hardware builds in.

pub mod arch;
pub mod board;
mod error;
pub mod isa;
pub mod nm;
pub mod numerics;
pub mod operands;
pub mod rtl;

pub use arch::{ArchConfig, DataType, Dataflow, Technology};
pub use error::Error;
pub use nm::NmRatio;
