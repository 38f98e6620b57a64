//! The SAT instruction set, defined once.
//!
//! Every instruction is a 256-bit word. Bits 0..38 are a common header:
//! opcode (5 bits), phase tag (3), three semaphores to wait on (5 bits each) and three to
//! signal (5 each); semaphore 0 means "none". The operation's fields follow from bit 38 upwards in the
//! order listed in [`isa_table!`]'s invocation below, each with its stated width. That one
//! table generates the [`Op`] enum, the binary encoder and decoder, the text assembler and
//! disassembler, and [`layouts`] (the bit map the RTL decoder and any exported header use), so
//! no opcode or bit position is ever typed twice.
//!
//! Execution model (the simulator and the RTL implement exactly this): instructions are
//! dispatched in program order, one per cycle, into one in-order queue per unit ([`Unit`]).
//! An instruction starts when it heads its queue, its unit is idle and every semaphore it waits
//! on is positive; starting decrements those semaphores. When it finishes, it increments the
//! semaphores it signals. Semaphores are counters starting at zero. This is how loads overlap
//! compute and stores: the compiler places `signal`/`wait` pairs between the queues. On a
//! machine that limits the instructions reading or writing one buffer partition at once
//! (`buffers.readers`, `buffers.writers`), an instruction also waits until its buffer use
//! ([`crate::operands::BufferUse`]) fits next to the running instructions'; units start in
//! [`Unit::ALL`] order within a cycle.
//!
//! Data layouts (element addresses within a buffer, see [`Buffer`]):
//! - GEMM `out[rows x cols] (+)= in[rows x depth] . W[depth x cols]`: `in` is row-major in the
//!   activation buffer (or, with `input_t`, its `depth x rows` transpose is); `W` is stored
//!   transposed, one row of `depth` reduction elements per output column (`cols` rows), and
//!   for an N:M weight each row holds only the kept values, `depth / M * N` of them, with
//!   each value's in-group index at the same address of the index plane (or, with `weight_t`
//!   and a dense weight, `W` is row-major `depth x cols`); `out` is row-major FP32 in the
//!   accumulator buffer. The transpose flags pick the edge of the array an
//!   operand enters from; they change addressing only, not timing.
//! - PRUNE reads a dense row-major FP32 `rows x cols` weight (a layer's `C_out x K`) from the
//!   master buffer. FF order groups along each row and writes `rows` compressed rows; BP order
//!   groups down each column and writes `cols` compressed rows (the transposed copy the
//!   backward-data GEMM consumes), so no run-time transpose is ever needed.

use crate::arch::Dataflow;
use crate::nm::NmRatio;
use crate::Error;
use std::collections::BTreeMap;
use std::fmt;

/// Bits in one instruction word.
pub const WORD_BITS: u32 = 256;
/// Bits of one semaphore number in the header.
pub const SEMAPHORE_BITS: u32 = 5;
/// Bits of the common header (opcode 5, tag 3, three waits and three signals).
pub const HEADER_BITS: u32 = 8 + 6 * SEMAPHORE_BITS;
/// Largest value of the 16-bit extent fields: GEMM `rows`/`cols`/`depth` and DMA `rows`/`cols`
/// (a test checks it against the table's widths).
pub const EXTENT_MAX: u64 = 0xffff;
/// Exclusive bound of the 24-bit fields that hold buffer element addresses and element counts
/// (`vec` and `update` counts; a test checks it against the table's widths).
pub const COUNT_LIMIT: u64 = 1 << 24;
/// Number of semaphores, including the reserved "none" at index 0.
pub const SEMAPHORES: usize = 1 << SEMAPHORE_BITS;

/// One 256-bit instruction word, least significant 64 bits first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Word(pub [u64; 4]);

impl Word {
    /// Reads `width` (<= 64) bits starting at bit `lo`.
    pub fn get(&self, lo: u32, width: u32) -> u64 {
        let mut value = 0u64;
        for i in 0..width {
            let bit = lo + i;
            value |= ((self.0[(bit / 64) as usize] >> (bit % 64)) & 1) << i;
        }
        value
    }

    /// Writes the low `width` bits of `value` at bit `lo`.
    pub fn set(&mut self, lo: u32, width: u32, value: u64) {
        for i in 0..width {
            let bit = lo + i;
            let (w, b) = ((bit / 64) as usize, bit % 64);
            self.0[w] = (self.0[w] & !(1 << b)) | (((value >> i) & 1) << b);
        }
    }

    /// Little-endian bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, w) in out.chunks_mut(8).zip(self.0) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// From little-endian bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Word {
        let mut w = [0u64; 4];
        for (i, chunk) in bytes.chunks(8).enumerate() {
            w[i] = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
        }
        Word(w)
    }
}

/// A value that occupies a bit field of an instruction and has a text form.
pub trait Field: Sized + Copy {
    /// The raw bits.
    fn to_bits(self) -> u64;
    /// Decodes raw bits; `None` when they encode no value.
    fn from_bits(bits: u64) -> Option<Self>;
    /// Parses the text form.
    fn parse_text(text: &str) -> Option<Self>;
    /// The text form.
    fn text(self) -> String;
}

impl Field for u32 {
    fn to_bits(self) -> u64 {
        u64::from(self)
    }
    fn from_bits(bits: u64) -> Option<Self> {
        u32::try_from(bits).ok()
    }
    fn parse_text(text: &str) -> Option<Self> {
        match text.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => text.parse().ok(),
        }
    }
    fn text(self) -> String {
        self.to_string()
    }
}

impl Field for u64 {
    fn to_bits(self) -> u64 {
        self
    }
    fn from_bits(bits: u64) -> Option<Self> {
        Some(bits)
    }
    fn parse_text(text: &str) -> Option<Self> {
        match text.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => text.parse().ok(),
        }
    }
    fn text(self) -> String {
        self.to_string()
    }
}

impl Field for bool {
    fn to_bits(self) -> u64 {
        u64::from(self)
    }
    fn from_bits(bits: u64) -> Option<Self> {
        match bits {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn parse_text(text: &str) -> Option<Self> {
        match text {
            "0" | "false" => Some(false),
            "1" | "true" => Some(true),
            _ => None,
        }
    }
    fn text(self) -> String {
        u8::from(self).to_string()
    }
}

/// Declares a field enum with its codes and text names.
macro_rules! field_enum {
    ($(#[doc = $doc:literal])* $name:ident { $( $(#[doc = $vdoc:literal])* $variant:ident = $code:literal, $text:literal ),* $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $( $(#[doc = $vdoc])* $variant ),* }
        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// The text name.
            pub fn name(self) -> &'static str { match self { $($name::$variant => $text),* } }
        }
        impl Field for $name {
            fn to_bits(self) -> u64 { match self { $($name::$variant => $code),* } }
            fn from_bits(bits: u64) -> Option<Self> { match bits { $($code => Some($name::$variant),)* _ => None } }
            fn parse_text(text: &str) -> Option<Self> { match text { $($text => Some($name::$variant),)* _ => None } }
            fn text(self) -> String { self.name().to_string() }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.name()) }
        }
    };
}

field_enum! {
    /// On-chip buffers. Addresses count elements of the buffer's own type.
    Buffer {
        /// Activations and gradients, operand type (FP16).
        Act = 0, "act",
        /// Compressed or dense weight values, operand type.
        Wgt = 1, "wgt",
        /// In-group indices of the weight values, one byte each, same addresses as `wgt`.
        Idx = 2, "idx",
        /// FP32 accumulators and partial sums.
        Acc = 3, "acc",
        /// FP32 master weights, momentum, labels and hyperparameters.
        Master = 4, "master",
        /// 0/1 masks, one byte each, same addresses as `master`.
        Mask = 5, "mask",
    }
}

field_enum! {
    /// The phase of the training step an instruction belongs to, for statistics only.
    Phase {
        /// Untagged.
        None = 0, "none",
        /// Forward pass.
        Ff = 1, "ff",
        /// Backward pass, data gradient.
        Bp = 2, "bp",
        /// Backward pass, weight gradient.
        Wu = 3, "wu",
        /// Weight update (WUVE).
        Update = 4, "update",
        /// N:M pruning (SORE).
        Prune = 5, "prune",
        /// Non-GEMM vector work.
        Vector = 6, "vector",
    }
}

field_enum! {
    /// SORE traversal order.
    PruneOrder {
        /// Groups along each row (along K for a `C_out x K` weight): forward copy.
        Ff = 0, "ff",
        /// Groups down each column (along C_out): transposed backward copy.
        Bp = 1, "bp",
    }
}

field_enum! {
    /// Vector-unit operations. All compute in FP32; reads and writes convert to and from
    /// the buffers' element types (FP16 buffers round to nearest even on write).
    VecOp {
        /// `dst[i] = a[i]` (FP16<->FP32 conversion when the buffers' types differ).
        Copy = 0, "copy",
        /// `dst[i] = a[i] + b[i]`.
        Add = 1, "add",
        /// `dst[i] = max(a[i], 0)`.
        Relu = 2, "relu",
        /// `dst[i] = a[i] > 0 ? b[i] : 0` (a = forward input, b = output gradient).
        ReluGrad = 3, "relu_grad",
        /// Max pool over `count` planes of `p0 x p1`, window `p2`, stride `p3`.
        MaxPool = 4, "maxpool",
        /// Max-pool gradient: a = forward input planes, b = output gradient, dst = input gradient.
        MaxPoolGrad = 5, "maxpool_grad",
        /// Average pool, same geometry as `maxpool`.
        AvgPool = 6, "avgpool",
        /// Average-pool gradient: b = output gradient, dst = input gradient.
        AvgPoolGrad = 7, "avgpool_grad",
        /// Softmax cross-entropy over `count` rows of `p0` logits (a) with integer labels
        /// stored as FP32 (b): dst = (softmax - onehot) / count, then the mean loss at
        /// `dst + count * p0`.
        SoftmaxXent = 8, "softmax_xent",
        /// Normalization statistics of a `count x p0` matrix (a): per column (`p1 = 0`, batch
        /// norm over rows) or per row (`p1 = 1`, layer norm over columns): dst = the means, then
        /// the reciprocal standard deviations `1 / sqrt(var + 1e-5)` (biased variance).
        NormStats = 9, "norm_stats",
        /// Normalize (a) with the statistics at b (means, then reciprocal deviations, as
        /// `norm_stats` writes them; `p1` picks the axis): dst = (a - mean) * rstd.
        NormApply = 10, "norm_apply",
        /// Gradient sums of a normalization: a = output gradient dy, b = forward input x; dst =
        /// sums of dy, then sums of dy * x, per column (`p1 = 0`) or row (`p1 = 1`).
        NormGradStats = 11, "norm_grad_stats",
        /// Input gradient of a normalization: a = dy, b = [mean, rstd, sum dy, sum dy*x] as the
        /// two ops above write them (each block `p0` or `count` long), dst holds x on entry and
        /// dx on exit: `dx = rstd * (dy - sum_dy / n - xhat * sum_dyxhat / n)`, with
        /// `xhat = (x - mean) * rstd`, `sum_dyxhat = rstd * (sum_dyx - mean * sum_dy)`, `n` the
        /// length of the normalized axis.
        NormGradApply = 12, "norm_grad_apply",
        /// `dst = 0.5 a (1 + tanh(0.7978845608 (a + 0.044715 a^3)))`, tanh from `exp_spec`.
        Gelu = 13, "gelu",
        /// GELU gradient: a = forward input, b = output gradient, dst = b * gelu'(a).
        GeluGrad = 14, "gelu_grad",
        /// Row softmax of a `count x p0` matrix: dst = exp(a - max) / sum, as in softmax_xent.
        Softmax = 15, "softmax",
        /// Row softmax gradient: a = softmax output y, b = dy: dst = y * (dy - sum(y * dy)).
        SoftmaxGrad = 16, "softmax_grad",
    }
}

impl Field for Dataflow {
    fn to_bits(self) -> u64 {
        match self {
            Dataflow::Os => 0,
            Dataflow::Ws => 1,
            Dataflow::Is => 2,
        }
    }
    fn from_bits(bits: u64) -> Option<Self> {
        Dataflow::ALL.get(usize::try_from(bits).ok()?).copied()
    }
    fn parse_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
    fn text(self) -> String {
        self.name().to_string()
    }
}

/// The weight operand of a GEMM: dense, or N:M compressed along the reduction dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    /// Every reduction element stored.
    Dense,
    /// N kept values (with in-group indices) per group of M.
    Sparse(NmRatio),
}

impl WeightFormat {
    /// The ratio, when sparse.
    pub fn ratio(self) -> Option<NmRatio> {
        match self {
            WeightFormat::Dense => None,
            WeightFormat::Sparse(r) => Some(r),
        }
    }
    /// Stored entries per weight row for a reduction depth of `depth`.
    pub fn stored_len(self, depth: usize) -> usize {
        match self {
            WeightFormat::Dense => depth,
            WeightFormat::Sparse(r) => r.compressed_len(depth),
        }
    }
}

/// Encoded as `n` in bits 0..4 and `m` in bits 4..9; `0:0` is dense.
impl Field for WeightFormat {
    fn to_bits(self) -> u64 {
        match self {
            WeightFormat::Dense => 0,
            WeightFormat::Sparse(r) => u64::from(r.n) | (u64::from(r.m) << 4),
        }
    }
    fn from_bits(bits: u64) -> Option<Self> {
        if bits == 0 {
            return Some(WeightFormat::Dense);
        }
        let (n, m) = ((bits & 0xf) as u32, (bits >> 4) as u32);
        let r = NmRatio::new(n, m).ok()?;
        (!r.is_dense()).then_some(WeightFormat::Sparse(r))
    }
    fn parse_text(text: &str) -> Option<Self> {
        if text == "dense" {
            return Some(WeightFormat::Dense);
        }
        let r: NmRatio = text.parse().ok()?;
        (!r.is_dense()).then_some(WeightFormat::Sparse(r))
    }
    fn text(self) -> String {
        match self {
            WeightFormat::Dense => "dense".into(),
            WeightFormat::Sparse(r) => r.to_string(),
        }
    }
}

/// The unit (and so the in-order queue) that executes an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    /// DMA from DRAM into on-chip buffers.
    Load,
    /// Sparse tensor engine (systolic array).
    Tensor,
    /// Sparse online reduction engine.
    Sore,
    /// Weight-update vector engine.
    Wuve,
    /// Vector unit.
    Vector,
    /// DMA from on-chip buffers to DRAM.
    Store,
}

impl Unit {
    /// All units; also the order in which ready instructions start within one cycle.
    pub const ALL: [Unit; 6] = [Unit::Load, Unit::Tensor, Unit::Sore, Unit::Wuve, Unit::Vector, Unit::Store];
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Load => "load",
            Unit::Tensor => "tensor",
            Unit::Sore => "sore",
            Unit::Wuve => "wuve",
            Unit::Vector => "vector",
            Unit::Store => "store",
        }
    }
    /// Index into per-unit arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where a field sits in the instruction word.
#[derive(Debug, Clone)]
pub struct FieldLayout {
    /// Field name.
    pub name: &'static str,
    /// Lowest bit.
    pub lo: u32,
    /// Width in bits.
    pub width: u32,
    /// Whether given raw bits encode a legal value of the field.
    pub accepts: fn(u64) -> bool,
}

/// The bit map of one instruction.
#[derive(Debug, Clone)]
pub struct InsnLayout {
    /// Opcode.
    pub opcode: u32,
    /// Assembly mnemonic.
    pub mnemonic: &'static str,
    /// Executing unit.
    pub unit: Unit,
    /// One-line description.
    pub doc: &'static str,
    /// Fields after the header, in bit order.
    pub fields: Vec<FieldLayout>,
}

fn put_field(
    w: &mut Word,
    pos: &mut u32,
    width: u32,
    value: u64,
    mnemonic: &'static str,
    field: &'static str,
) -> Result<(), Error> {
    if width < 64 && value >> width != 0 {
        return Err(Error::FieldTooWide { mnemonic, field, value, width });
    }
    w.set(*pos, width, value);
    *pos += width;
    Ok(())
}

fn take_field<T: Field>(w: &Word, pos: &mut u32, width: u32, field: &'static str) -> Result<T, String> {
    let bits = w.get(*pos, width);
    *pos += width;
    T::from_bits(bits).ok_or_else(|| format!("field `{field}` holds {bits}, which encodes no value"))
}

fn parse_field<T: Field>(
    pairs: &mut BTreeMap<String, String>,
    mnemonic: &str,
    field: &'static str,
    width: u32,
) -> Result<T, String> {
    let text = pairs.remove(field).ok_or_else(|| format!("{mnemonic}: missing field `{field}`"))?;
    let value = T::parse_text(&text).ok_or_else(|| format!("{mnemonic}: field `{field}` = `{text}` is not a valid value"))?;
    if width < 64 && value.to_bits() >> width != 0 {
        return Err(format!("{mnemonic}: field `{field}` = {text} does not fit in {width} bits"));
    }
    Ok(value)
}

/// Generates the ISA from its table: see the invocation below for the instructions.
macro_rules! isa_table {
    ($( $(#[doc = $doc:literal])* $name:ident = $opcode:literal, $mnemonic:literal, $unit:ident {
        $( $(#[doc = $fdoc:literal])* $field:ident : $ty:ty = $width:literal ),* $(,)?
    } )*) => {
        /// An operation with its fields (the part of an instruction after the header).
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub enum Op {
            $( $(#[doc = $doc])* $name { $( $(#[doc = $fdoc])* $field: $ty ),* } ),*
        }

        impl Op {
            /// The opcode.
            pub fn opcode(&self) -> u32 { match self { $( Op::$name { .. } => $opcode ),* } }
            /// The assembly mnemonic.
            pub fn mnemonic(&self) -> &'static str { match self { $( Op::$name { .. } => $mnemonic ),* } }
            /// The unit that executes it.
            pub fn unit(&self) -> Unit { match self { $( Op::$name { .. } => Unit::$unit ),* } }

            fn encode_fields(&self, w: &mut Word) -> Result<(), Error> {
                let mut pos = HEADER_BITS;
                match *self {
                    $( Op::$name { $($field),* } => {
                        $( put_field(w, &mut pos, $width, Field::to_bits($field), $mnemonic, stringify!($field))?; )*
                    } )*
                }
                let _ = pos;
                Ok(())
            }

            fn decode_fields(opcode: u64, w: &Word) -> Result<(Op, u32), String> {
                let mut pos = HEADER_BITS;
                let op = match opcode {
                    $( $opcode => {
                        $( let $field: $ty = take_field(w, &mut pos, $width, stringify!($field))?; )*
                        Op::$name { $($field),* }
                    } )*
                    _ => return Err(format!("opcode {opcode} is not an instruction")),
                };
                Ok((op, pos))
            }

            fn fields_text(&self) -> Vec<(&'static str, String)> {
                match *self {
                    $( Op::$name { $($field),* } => vec![ $( (stringify!($field), Field::text($field)) ),* ] ),*
                }
            }

            fn parse_fields(mnemonic: &str, pairs: &mut BTreeMap<String, String>) -> Result<Op, String> {
                match mnemonic {
                    $( $mnemonic => {
                        $( let $field: $ty = parse_field(pairs, $mnemonic, stringify!($field), $width)?; )*
                        Ok(Op::$name { $($field),* })
                    } )*
                    _ => Err(format!("unknown mnemonic `{mnemonic}`")),
                }
            }
        }

        /// The bit map of every instruction, generated from the table.
        pub fn layouts() -> Vec<InsnLayout> {
            vec![ $( {
                let mut fields = Vec::new();
                let mut lo = HEADER_BITS;
                $(
                    fields.push(FieldLayout { name: stringify!($field), lo, width: $width, accepts: |b| <$ty as Field>::from_bits(b).is_some() });
                    lo += $width;
                )*
                let _ = lo;
                InsnLayout { opcode: $opcode, mnemonic: $mnemonic, unit: Unit::$unit, doc: concat!($($doc),*).trim(), fields }
            } ),* ]
        }
    };
}

isa_table! {
    /// Copy a 2-D block from DRAM into a buffer: element (r, c) moves from byte
    /// `dram + (r * dram_row_stride + c * dram_col_stride) * element_bytes` to element
    /// `sram + r * sram_row_stride + c`. Column strides other than 1 express im2col reads.
    Load = 1, "load", Load {
        /// Destination buffer.
        buf: Buffer = 3,
        /// First destination element.
        sram: u32 = 24,
        /// DRAM byte address of element (0, 0); 40 bits (1 TiB), so large models' training
        /// steps (resnet50 at batch 256 needs more than 4 GiB) are addressable.
        dram: u64 = 40,
        /// Rows moved.
        rows: u32 = 16,
        /// Elements per row.
        cols: u32 = 16,
        /// DRAM elements between consecutive rows.
        dram_row_stride: u32 = 24,
        /// DRAM elements between consecutive columns.
        dram_col_stride: u32 = 8,
        /// Buffer elements between consecutive rows.
        sram_row_stride: u32 = 24,
    }
    /// Copy a 2-D block from a buffer to DRAM (the mirror of `load`).
    Store = 2, "store", Store {
        /// Source buffer.
        buf: Buffer = 3,
        /// First source element.
        sram: u32 = 24,
        /// DRAM byte address of element (0, 0); 40 bits (1 TiB), so large models' training
        /// steps (resnet50 at batch 256 needs more than 4 GiB) are addressable.
        dram: u64 = 40,
        /// Rows moved.
        rows: u32 = 16,
        /// Elements per row.
        cols: u32 = 16,
        /// DRAM elements between consecutive rows.
        dram_row_stride: u32 = 24,
        /// DRAM elements between consecutive columns.
        dram_col_stride: u32 = 8,
        /// Buffer elements between consecutive rows.
        sram_row_stride: u32 = 24,
    }
    /// `acc[out] (+)= act[input] . W`, dense or N:M sparse, on the systolic array.
    Gemm = 3, "gemm", Tensor {
        /// Dataflow the interconnect uses for this GEMM.
        dataflow: Dataflow = 2,
        /// Weight operand format.
        weights: WeightFormat = 9,
        /// Add to the accumulator buffer's contents instead of overwriting them.
        accumulate: bool = 1,
        /// Independent outputs each PE round-robins in OS (interleave mapping); 1 = none.
        interleave: u32 = 4,
        /// Output rows (M).
        rows: u32 = 16,
        /// Output columns (N).
        cols: u32 = 16,
        /// Dense-equivalent reduction depth (K).
        depth: u32 = 16,
        /// First element of the row-major `rows x depth` input in the activation buffer.
        input: u32 = 24,
        /// First element of the transposed, possibly compressed weight in the weight buffer.
        weight: u32 = 24,
        /// First element of the row-major `rows x cols` output in the accumulator buffer.
        output: u32 = 24,
        /// The input enters from the array's other edge: element `(m, k)` is read at
        /// `input + k * rows + m` (the activation buffer holds the `depth x rows` transpose).
        input_t: bool = 1,
        /// The dense weight enters from the array's other edge: element `(k, n)` is read at
        /// `weight + k * cols + n` (a row-major `depth x cols` weight); dense weights only.
        weight_t: bool = 1,
    }
    /// N:M-prune a dense FP32 weight on the SORE into compressed values and indices.
    Prune = 4, "prune", Sore {
        /// FF (groups along rows) or BP (groups down columns, transposed output).
        order: PruneOrder = 1,
        /// The ratio.
        nm: WeightFormat = 9,
        /// Rows of the dense weight (C_out).
        rows: u32 = 16,
        /// Columns of the dense weight (K).
        cols: u32 = 16,
        /// First element of the dense row-major weight in the master buffer.
        src: u32 = 24,
        /// First element of the compressed output in the weight buffer and index plane.
        dst: u32 = 24,
        /// Also write the dense 0/1 mask into the mask plane.
        write_mask: bool = 1,
        /// First element of the mask output in the mask plane.
        mask: u32 = 24,
    }
    /// SGD with momentum, weight decay and the SR-STE decay term on the WUVE, per element:
    /// `g = grad + wd*w (+ lambda*w where mask = 0); v = mu*v + g; w = w - lr*v`.
    Update = 5, "update", Wuve {
        /// Elements updated.
        count: u32 = 24,
        /// First FP32 master weight in the master buffer.
        weight: u32 = 24,
        /// First FP32 momentum value in the master buffer.
        momentum: u32 = 24,
        /// First FP32 weight gradient in the accumulator buffer.
        grad: u32 = 24,
        /// Apply the SR-STE term using the forward mask at `mask`.
        use_mask: bool = 1,
        /// First mask entry in the mask plane.
        mask: u32 = 24,
        /// Address in the master buffer of [lr, mu, wd, lambda] as FP32.
        hyper: u32 = 24,
    }
    /// A vector-unit operation (see [`VecOp`]).
    Vec = 6, "vec", Vector {
        /// The operation.
        op: VecOp = 5,
        /// Elements, rows or planes, as the operation defines.
        count: u32 = 24,
        /// Destination buffer.
        dst_buf: Buffer = 3,
        /// First destination element.
        dst: u32 = 24,
        /// First operand's buffer.
        a_buf: Buffer = 3,
        /// First operand's first element.
        a: u32 = 24,
        /// Second operand's buffer.
        b_buf: Buffer = 3,
        /// Second operand's first element.
        b: u32 = 24,
        /// Parameter 0 (plane height, or classes).
        p0: u32 = 16,
        /// Parameter 1 (plane width).
        p1: u32 = 16,
        /// Parameter 2 (window).
        p2: u32 = 8,
        /// Parameter 3 (stride).
        p3: u32 = 8,
    }
}

/// Header fields shared by every instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Phase tag for statistics.
    pub tag: PhaseTag,
    /// Semaphores waited on (0 = none).
    pub wait: [u8; 3],
    /// Semaphores signalled on completion (0 = none).
    pub signal: [u8; 3],
}

/// A [`Phase`] with a default of [`Phase::None`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseTag(pub Phase);

impl Default for PhaseTag {
    fn default() -> Self {
        PhaseTag(Phase::None)
    }
}

/// One instruction: header plus operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Instruction {
    /// Tag and dependencies.
    pub header: Header,
    /// What to do.
    pub op: Op,
}

impl Instruction {
    /// An instruction with no tag and no dependencies.
    pub fn new(op: Op) -> Self {
        Instruction { header: Header::default(), op }
    }

    /// Sets the phase tag.
    pub fn tag(mut self, phase: Phase) -> Self {
        self.header.tag = PhaseTag(phase);
        self
    }

    /// Adds a semaphore to wait on (up to three; 0 is ignored).
    pub fn wait(mut self, sem: u8) -> Self {
        if let Some(slot) = self.header.wait.iter_mut().find(|s| **s == 0) {
            *slot = sem;
        }
        self
    }

    /// Adds a semaphore to signal (up to three; 0 is ignored).
    pub fn signal(mut self, sem: u8) -> Self {
        if let Some(slot) = self.header.signal.iter_mut().find(|s| **s == 0) {
            *slot = sem;
        }
        self
    }

    /// Binary encoding.
    pub fn encode(&self) -> Result<Word, Error> {
        let mut w = Word::default();
        let h = &self.header;
        w.set(0, 5, u64::from(self.op.opcode()));
        w.set(5, 3, h.tag.0.to_bits());
        for (i, &s) in h.wait.iter().chain(&h.signal).enumerate() {
            if usize::from(s) >= SEMAPHORES {
                return Err(Error::FieldTooWide {
                    mnemonic: self.op.mnemonic(),
                    field: "semaphore",
                    value: u64::from(s),
                    width: SEMAPHORE_BITS,
                });
            }
            w.set(8 + SEMAPHORE_BITS * i as u32, SEMAPHORE_BITS, u64::from(s));
        }
        self.op.encode_fields(&mut w)?;
        Ok(w)
    }

    /// Decodes a word; `index` is the position in the program, for the error message.
    pub fn decode(word: &Word, index: usize) -> Result<Instruction, Error> {
        let fail = |reason: String| Error::Decode { index, reason };
        let tag = Phase::from_bits(word.get(5, 3)).ok_or_else(|| fail(format!("phase tag {} is not a phase", word.get(5, 3))))?;
        let sem = |i: u32| word.get(8 + SEMAPHORE_BITS * i, SEMAPHORE_BITS) as u8;
        let header = Header { tag: PhaseTag(tag), wait: [sem(0), sem(1), sem(2)], signal: [sem(3), sem(4), sem(5)] };
        let (op, end) = Op::decode_fields(word.get(0, 5), word).map_err(fail)?;
        for bit in end..WORD_BITS {
            if word.get(bit, 1) != 0 {
                return Err(fail(format!("{}: reserved bit {bit} is set", op.mnemonic())));
            }
        }
        Ok(Instruction { header, op })
    }

    /// Parses one line of assembly (no comment): `mnemonic key=value ...`, where the header
    /// keys `tag=PHASE`, `wait=S[,S[,S]]` and `signal=S[,S[,S]]` are optional and every field is required.
    pub fn parse(line: &str) -> Result<Instruction, String> {
        let mut words = line.split_whitespace();
        let mnemonic = words.next().ok_or("empty instruction")?;
        let mut pairs = BTreeMap::new();
        for word in words {
            let (k, v) = word.split_once('=').ok_or_else(|| format!("`{word}` is not key=value"))?;
            if pairs.insert(k.to_string(), v.to_string()).is_some() {
                return Err(format!("field `{k}` given twice"));
            }
        }
        let mut header = Header::default();
        if let Some(tag) = pairs.remove("tag") {
            header.tag = PhaseTag(Phase::parse_text(&tag).ok_or_else(|| format!("tag `{tag}` is not a phase"))?);
        }
        for (key, slots) in [("wait", &mut header.wait), ("signal", &mut header.signal)] {
            if let Some(list) = pairs.remove(key) {
                let sems: Vec<&str> = list.split(',').collect();
                if sems.len() > 3 {
                    return Err(format!("`{key}` takes at most three semaphores"));
                }
                for (slot, s) in slots.iter_mut().zip(sems) {
                    *slot = s
                        .parse::<u8>()
                        .ok()
                        .filter(|&v| usize::from(v) < SEMAPHORES)
                        .ok_or_else(|| format!("`{key}` semaphore `{s}` must be 0..{}", SEMAPHORES - 1))?;
                }
            }
        }
        let op = Op::parse_fields(mnemonic, &mut pairs)?;
        if let Some(extra) = pairs.keys().next() {
            return Err(format!("{mnemonic}: unknown field `{extra}`"));
        }
        Ok(Instruction { header, op })
    }
}

impl fmt::Display for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.op.mnemonic())?;
        for (k, v) in self.op.fields_text() {
            write!(f, " {k}={v}")?;
        }
        let h = &self.header;
        if h.tag.0 != Phase::None {
            write!(f, " tag={}", h.tag.0)?;
        }
        for (key, sems) in [("wait", h.wait), ("signal", h.signal)] {
            // Slots keep their positions: print up to the last used one.
            let used = sems.iter().rposition(|&s| s != 0).map_or(0, |i| i + 1);
            let list: Vec<String> = sems[..used].iter().map(|s| s.to_string()).collect();
            if !list.is_empty() {
                write!(f, " {key}={}", list.join(","))?;
            }
        }
        Ok(())
    }
}

/// A whole program: a static instruction stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Program {
    /// The instructions in dispatch order.
    pub insns: Vec<Instruction>,
}

/// First bytes of a binary program file; the digit is the word format's version (2: 5-bit
/// semaphore numbers, a 38-bit header), so a file of another format is refused, not misread.
pub const PROGRAM_MAGIC: &[u8; 8] = b"SATKPRG2";

impl Program {
    /// Binary form: [`PROGRAM_MAGIC`], a little-endian u64 instruction count, then 32 bytes
    /// per instruction.
    pub fn to_binary(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(16 + 32 * self.insns.len());
        out.extend_from_slice(PROGRAM_MAGIC);
        out.extend_from_slice(&(self.insns.len() as u64).to_le_bytes());
        for insn in &self.insns {
            out.extend_from_slice(&insn.encode()?.to_bytes());
        }
        Ok(out)
    }

    /// Parses the binary form.
    pub fn from_binary(bytes: &[u8]) -> Result<Program, Error> {
        let bad = |reason: String| Error::ProgramFormat { reason };
        if bytes.len() < 16 || &bytes[..8] != PROGRAM_MAGIC {
            return Err(bad(format!("missing the header `{}`", String::from_utf8_lossy(PROGRAM_MAGIC))));
        }
        let count = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let body = &bytes[16..];
        if body.len() as u64 != count.saturating_mul(32) {
            return Err(bad(format!("header says {count} instructions but {} bytes follow (32 per instruction)", body.len())));
        }
        let insns = body
            .chunks(32)
            .enumerate()
            .map(|(i, chunk)| Instruction::decode(&Word::from_bytes(chunk.try_into().expect("32 bytes")), i))
            .collect::<Result<_, _>>()?;
        Ok(Program { insns })
    }

    /// Assembly text, one instruction per line.
    pub fn to_text(&self) -> String {
        self.insns.iter().map(|i| format!("{i}\n")).collect()
    }

    /// Parses assembly text; `#` starts a comment, blank lines are ignored.
    pub fn parse_text(text: &str) -> Result<Program, Error> {
        let mut insns = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap_or("").trim();
            if code.is_empty() {
                continue;
            }
            let insn = Instruction::parse(code).map_err(|message| Error::Asm { line: n + 1, message })?;
            insn.encode().map_err(|e| Error::Asm { line: n + 1, message: e.to_string() })?;
            insns.push(insn);
        }
        Ok(Program { insns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds a random valid word for the instruction at `layout_index` from a stream of raw values.
    fn random_word(layout: &InsnLayout, raw: &[u64], header: (u64, [u64; 6])) -> Word {
        let mut w = Word::default();
        w.set(0, 5, u64::from(layout.opcode));
        w.set(5, 3, header.0 % 7);
        for (i, s) in header.1.iter().enumerate() {
            w.set(8 + 4 * i as u32, 4, s % 16);
        }
        let mut raw = raw.iter().cycle();
        for f in &layout.fields {
            let mask = if f.width == 64 { u64::MAX } else { (1 << f.width) - 1 };
            let mut v = raw.next().unwrap() & mask;
            // Small random values first; then scan upwards so sparse encodings always end.
            let mut tries = 0u64;
            while !(f.accepts)(v) {
                tries += 1;
                v = if tries < 64 { (raw.next().unwrap() & mask) % (1 << f.width.min(6)) } else { tries - 64 };
            }
            w.set(f.lo, f.width, v);
        }
        w
    }

    proptest! {
        #[test]
        fn decode_encode_round_trip(which in 0usize..6, raw in proptest::collection::vec(any::<u64>(), 64),
                                    tag in any::<u64>(), sems in any::<[u64; 6]>()) {
            let layouts = layouts();
            let layout = &layouts[which % layouts.len()];
            let word = random_word(layout, &raw, (tag, sems));
            let insn = Instruction::decode(&word, 0).unwrap();
            prop_assert_eq!(insn.encode().unwrap(), word);
            let text = insn.to_string();
            prop_assert_eq!(Instruction::parse(&text).unwrap(), insn);
        }
    }

    #[test]
    fn extent_max_matches_the_extent_fields() {
        for l in layouts().iter().filter(|l| matches!(l.mnemonic, "gemm" | "load" | "store")) {
            for f in l.fields.iter().filter(|f| matches!(f.name, "rows" | "cols" | "depth")) {
                assert_eq!((1u64 << f.width) - 1, EXTENT_MAX, "{}.{}", l.mnemonic, f.name);
            }
        }
    }

    #[test]
    fn count_limit_matches_the_count_fields() {
        for l in layouts().iter().filter(|l| matches!(l.mnemonic, "vec" | "update")) {
            let count = l.fields.iter().find(|f| f.name == "count").expect("a count field");
            assert_eq!(1u64 << count.width, COUNT_LIMIT, "{}.count", l.mnemonic);
        }
    }

    #[test]
    fn layouts_fit_the_word_and_opcodes_are_unique() {
        let layouts = layouts();
        for l in &layouts {
            let end = l.fields.last().map_or(HEADER_BITS, |f| f.lo + f.width);
            assert!(end <= WORD_BITS, "{} ends at bit {end}", l.mnemonic);
            assert!(layouts.iter().filter(|o| o.opcode == l.opcode).count() == 1);
        }
    }

    #[test]
    fn golden_bits() {
        let insn = Instruction::new(Op::Gemm {
            dataflow: Dataflow::Ws,
            weights: WeightFormat::Sparse(NmRatio { n: 2, m: 8 }),
            accumulate: true,
            interleave: 4,
            rows: 16,
            cols: 32,
            depth: 64,
            input: 1,
            weight: 2,
            output: 3,
            input_t: true,
            weight_t: false,
        })
        .tag(Phase::Ff)
        .wait(1)
        .signal(2);
        let w = insn.encode().unwrap();
        // opcode 3 | tag 1 << 5 | wait 1 << 8 | signal 2 << 23 | dataflow ws (1) << 38
        // | n=2,m=8 (0x82) << 40 | accumulate << 49 | interleave 4 << 50 | rows 16 << 54;
        // cols 32 at bits 70..86 (word 1 from bit 6).
        assert_eq!(w.0[0], 3 | 1 << 5 | 1 << 8 | 2 << 23 | 1 << 38 | 0x82 << 40 | 1 << 49 | 4 << 50 | 16 << 54);
        assert_eq!((w.0[1] >> 6) & 0xffff, 32);
        // The transpose flags follow `output` (bits 150..174): input_t at bit 174, weight_t at 175.
        assert_eq!((w.0[2] >> 46) & 0b11, 0b01);
        assert_eq!(Instruction::decode(&w, 0).unwrap(), insn);
        assert_eq!(
            insn.to_string(),
            "gemm dataflow=ws weights=2:8 accumulate=1 interleave=4 rows=16 cols=32 depth=64 input=1 weight=2 output=3 input_t=1 weight_t=0 tag=ff wait=1 signal=2"
        );
    }

    #[test]
    fn bad_words_and_text_are_refused() {
        let mut w = Word::default();
        w.set(0, 5, 31);
        assert!(Instruction::decode(&w, 7).unwrap_err().to_string().contains("instruction 7"));
        let mut w = Instruction::new(Op::Vec {
            op: VecOp::Add,
            count: 1,
            dst_buf: Buffer::Acc,
            dst: 0,
            a_buf: Buffer::Acc,
            a: 0,
            b_buf: Buffer::Acc,
            b: 0,
            p0: 0,
            p1: 0,
            p2: 0,
            p3: 0,
        })
        .encode()
        .unwrap();
        w.set(255, 1, 1);
        assert!(Instruction::decode(&w, 0).unwrap_err().to_string().contains("reserved bit 255"));
        let e = Program::parse_text("# c\n\nload buf=act sram=0 dram=0 rows=1 cols=1 dram_row_stride=1 dram_col_stride=1\n")
            .unwrap_err();
        assert!(e.to_string().contains("line 3") && e.to_string().contains("sram_row_stride"), "{e}");
        let e = Program::parse_text("gemm dataflow=xs").unwrap_err();
        assert!(e.to_string().contains("dataflow"), "{e}");
        assert!(Program::from_binary(b"nope").is_err());
    }
}
