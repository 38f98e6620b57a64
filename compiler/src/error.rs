//! The `compiler` crate's one error type.

/// Everything that can go wrong while lowering work onto a machine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem the machine cannot run as asked (unsupported N:M or dataflow, bad shape).
    #[error("{0}")]
    Unsupported(String),
    /// Bad user input (a topology or config file); the message names the file and line.
    #[error("{0}")]
    Input(String),
    /// No tiling fits the machine's buffers.
    #[error("no tiling of {what} fits the buffers of {arch}: {reason}")]
    NoTiling {
        /// The work being tiled.
        what: String,
        /// The machine.
        arch: String,
        /// Why.
        reason: String,
    },
    /// The simulator refused a generated program (a compiler bug) or host data.
    #[error(transparent)]
    Sim(#[from] satkit_sim::Error),
    /// An ISA encoding error.
    #[error(transparent)]
    Hw(#[from] satkit_hw::Error),
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, Error>;
