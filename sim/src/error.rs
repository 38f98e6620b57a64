//! The `sim` crate's one error type. Every error raised while running a program names the
//! instruction (its index and mnemonic) and what is wrong with it.

/// Everything that can go wrong while simulating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An instruction that cannot run on this machine or with these operands.
    #[error("instruction {index} ({mnemonic}): {message}")]
    Program {
        /// Position in the program.
        index: usize,
        /// Its mnemonic.
        mnemonic: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The program can make no progress: every pending instruction waits on a semaphore that
    /// nothing will signal.
    #[error("deadlock at cycle {cycle}: instruction {index} ({mnemonic}) waits on semaphore(s) {semaphores:?}, which no running or queued instruction will signal")]
    Deadlock {
        /// Cycle at which progress stopped.
        cycle: u64,
        /// The oldest blocked instruction.
        index: usize,
        /// Its mnemonic.
        mnemonic: &'static str,
        /// The semaphores it waits on.
        semaphores: Vec<u8>,
    },
    /// Host access to simulated DRAM outside its capacity.
    #[error("DRAM access of {len} bytes at {addr:#x} is beyond the capacity of {capacity} bytes")]
    DramRange {
        /// First byte.
        addr: u64,
        /// Length.
        len: u64,
        /// Capacity in bytes.
        capacity: u64,
    },
    /// Host access to an on-chip buffer outside its capacity.
    #[error("{buffer} access of {len} elements at {addr} is beyond its capacity of {capacity} elements")]
    BufferRange {
        /// The buffer's name.
        buffer: &'static str,
        /// First element.
        addr: u64,
        /// Length.
        len: u64,
        /// Capacity in elements.
        capacity: u64,
    },
    /// Host access to buffer contents of a machine simulating timing only.
    #[error("{buffer} holds no data: the machine simulates timing only (use Mode::Functional)")]
    NoData {
        /// The buffer's name.
        buffer: &'static str,
    },
    /// An invalid machine description or program encoding.
    #[error(transparent)]
    Hw(#[from] satkit_hw::Error),
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, Error>;
