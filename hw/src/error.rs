//! The `hw` crate's one error type: bad architecture descriptions, unknown names, and
//! instructions or programs that cannot be encoded, decoded or parsed.

use std::path::Path;

/// Everything that can go wrong in `hw`. Messages name the field, line or instruction at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // === Architecture descriptions ===
    /// A field of the architecture description breaks a rule.
    #[error("{field} = {value}: {rule}")]
    InvalidArch {
        /// Dotted path of the field, e.g. `array.rows`.
        field: &'static str,
        /// The value found.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// TOML that does not parse or does not match the schema.
    #[error("{}{message}", path.as_ref().map(|p| format!("{p}: ")).unwrap_or_default())]
    Toml {
        /// The file, when known.
        path: Option<String>,
        /// The parser's message (it names the line and key).
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The system error.
        source: std::io::Error,
    },
    /// A name (preset, dataflow, buffer, ...) that is not known.
    #[error("unknown {what} `{name}` (expected {expected})")]
    UnknownName {
        /// What kind of name.
        what: &'static str,
        /// The name given.
        name: String,
        /// The accepted names.
        expected: &'static str,
    },
    /// A description file failed validation; wraps the rule with the file name.
    #[error("{path}: {rule}")]
    InFile {
        /// The file.
        path: String,
        /// The underlying error, shown in this one's message (not as its source, which would
        /// repeat it in an error chain).
        rule: Box<Error>,
    },

    // === RTL generation ===
    /// rust-hdl's structural checks (undriven inputs, logic loops, written inputs) failed.
    #[error("RTL for `{arch}` fails rust-hdl's structural checks: {message}")]
    RtlCheck {
        /// The architecture's name.
        arch: String,
        /// rust-hdl's description of the fault.
        message: String,
    },
    /// `verilator --lint-only` refused generated Verilog, or could not run.
    #[error("{file}: verilator --lint-only: {message}")]
    RtlLint {
        /// The linted file.
        file: String,
        /// Verilator's complaints, or why it could not run.
        message: String,
    },
    /// yosys could not read, elaborate or synthesize generated Verilog, or could not run.
    #[error("{file}: yosys: {message}")]
    RtlYosys {
        /// The Verilog file yosys read.
        file: String,
        /// yosys' complaints, or why it could not run.
        message: String,
    },
    /// Icarus Verilog could not compile or run a testbench, or could not run at all.
    #[error("{file}: Icarus Verilog: {message}")]
    RtlIcarus {
        /// The Verilog file compiled.
        file: String,
        /// iverilog's or vvp's complaints, or why they could not run.
        message: String,
    },
    /// Emitted Verilog that the module deduplication cannot parse.
    #[error("generated Verilog: {message}")]
    RtlVerilog {
        /// What is malformed.
        message: String,
    },

    // === Instructions and programs ===
    /// A field value does not fit its bit width.
    #[error("{mnemonic}: field `{field}` = {value} does not fit in {width} bits")]
    FieldTooWide {
        /// The instruction.
        mnemonic: &'static str,
        /// The field.
        field: &'static str,
        /// The value.
        value: u64,
        /// Its width in bits.
        width: u32,
    },
    /// A binary instruction word that is not a valid instruction.
    #[error("instruction {index}: cannot decode: {reason}")]
    Decode {
        /// Position in the program.
        index: usize,
        /// What is wrong with the word.
        reason: String,
    },
    /// A program file that is not a satkit program.
    #[error("not a satkit program: {reason}")]
    ProgramFormat {
        /// What is wrong.
        reason: String,
    },
    /// A line of assembly text that does not parse.
    #[error("line {line}: {message}")]
    Asm {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// Attaches the file name to an error raised while reading that file.
    pub fn with_path(self, path: &Path) -> Error {
        match self {
            Error::Toml { message, .. } => Error::Toml { path: Some(path.display().to_string()), message },
            e @ (Error::Io { .. } | Error::InFile { .. }) => e,
            other => Error::InFile { path: path.display().to_string(), rule: Box::new(other) },
        }
    }
}
