//! The architecture description: every parameter of a SAT machine, in one serde type.
//!
//! [`ArchConfig`] is the single source of sizes for the simulator, the compiler, the RTL
//! generator and the host. It loads from TOML (optionally on top of a named preset with
//! `base = "tiny"`), is checked once by [`ArchConfig::validate`], and offers derived values
//! (bytes per element, DRAM bytes per cycle, buffer capacities) as methods so nothing keeps a
//! second copy. Presets: `vcu1525` (default; the paper's board, SAT.md section 3), `tiny` (4x4,
//! for tests and RTL) and `systolic` (a plain dense systolic array, the machine SCALE-Sim models).
//! Every value marked "ours" in SAT.md is a parameter here, never a hidden constant.

use crate::isa::Buffer;
use crate::nm::NmRatio;
use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// Largest `array.n_max` (multipliers per PE) a description may ask for; the RTL's weight
/// buses are this wide.
pub const N_MAX_LIMIT: u32 = 8;
/// Largest `array.m_max` (N:M group size) a description may ask for; the RTL's activation
/// buses are this wide.
pub const M_MAX_LIMIT: u32 = 16;

/// Systolic dataflows. SAT switches between OS and WS per GEMM; IS exists for the plain
/// systolic preset so SCALE-Sim's three dataflows can be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataflow {
    /// Output stationary: each PE owns outputs and streams the reduction dimension.
    Os,
    /// Weight stationary: each PE holds weights; inputs stream through, partial sums flow down.
    Ws,
    /// Input stationary: each PE holds inputs; weights stream through.
    Is,
}

impl Dataflow {
    /// All dataflows, in encoding order.
    pub const ALL: [Dataflow; 3] = [Dataflow::Os, Dataflow::Ws, Dataflow::Is];
    /// Lower-case name as used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Dataflow::Os => "os",
            Dataflow::Ws => "ws",
            Dataflow::Is => "is",
        }
    }
}

impl fmt::Display for Dataflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dataflow {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Dataflow::ALL.into_iter().find(|d| d.name().eq_ignore_ascii_case(s.trim())).ok_or_else(|| Error::UnknownName {
            what: "dataflow",
            name: s.to_string(),
            expected: "os, ws, is",
        })
    }
}

/// Floating-point storage types of on-chip data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// IEEE binary16.
    Fp16,
    /// IEEE binary32.
    Fp32,
}

impl DataType {
    /// Size of one element in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            DataType::Fp16 => 2,
            DataType::Fp32 => 4,
        }
    }
}

/// Energy technology preset used by the simulator's per-action energy table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Technology {
    /// ASIC at 45 nm, 0.9 V, from Horowitz (ISSCC 2014).
    Asic45nm,
    /// Xilinx UltraScale+ FPGA estimate (static power plus per-action dynamic energy).
    FpgaUltrascalePlus,
}

/// The sparse tensor engine: a `rows x cols` systolic array of PEs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrayConfig {
    /// PE rows.
    pub rows: u32,
    /// PE columns.
    pub cols: u32,
    /// Multipliers per PE (N_max). In dense mode a PE covers `n_max` consecutive reduction
    /// elements per step; in N:M mode it covers one group of M with N <= n_max multipliers.
    pub n_max: u32,
    /// Activation window per PE (M_max): the largest group an N:M weight may use.
    pub m_max: u32,
    /// N:M ratios the engine runs in sparse mode (dense is always supported).
    pub supported_nm: Vec<NmRatio>,
    /// Dataflows the flexible interconnect can switch between.
    pub dataflows: Vec<Dataflow>,
    /// Pipeline latency of the FP32 accumulator adder, in cycles (ours: 4 on vcu1525).
    pub accumulator_latency: u32,
}

/// Number formats of the datapath.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrecisionConfig {
    /// GEMM operand type (activations, gradients, compressed weights).
    pub operand: DataType,
    /// Accumulator, partial-sum, master-weight and optimizer-state type.
    pub accumulator: DataType,
}

/// On-chip buffers. Each buffer is addressed in elements of its own type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Activation / gradient buffer (operand type), KiB.
    pub act_kib: u32,
    /// Banks of the activation buffer.
    pub act_banks: u32,
    /// Compressed weight value buffer (operand type), KiB. Each entry has a parallel
    /// in-group index of one byte in the index plane.
    pub wgt_kib: u32,
    /// Banks of the weight buffer.
    pub wgt_banks: u32,
    /// Partial-sum / accumulator buffer (FP32), KiB.
    pub acc_kib: u32,
    /// Banks of the accumulator buffer.
    pub acc_banks: u32,
    /// FP32 master weights, momentum and optimizer hyperparameters, KiB. Each entry has a
    /// parallel one-byte mask entry in the mask plane.
    pub master_kib: u32,
    /// Banks of the master buffer (and of its mask plane). Every buffer's banks cover its
    /// widest run ([`ArchConfig::min_banks`]); here that includes `3 wuve.lanes`, so that an
    /// update's run of new weights and run of new momenta, written in one cycle, can always lie
    /// on distinct banks ([`ArchConfig::wuve_momentum_delay`]).
    pub master_banks: u32,
    /// Instructions that may read one buffer partition at the same time, each operand an
    /// instruction reads from it counting once (see [`crate::operands::BufferUse`]); 0: no
    /// limit, every unit with ports of its own (the simulator only: the RTL's block-RAM buffers
    /// need a limit). A block-RAM memory has one replica per reader, each replica's read port
    /// serving one reader (`satkit_hw::rtl::buffer`).
    #[serde(default)]
    pub readers: u32,
    /// Instructions that may write one buffer partition at the same time; 0: no limit.
    #[serde(default)]
    pub writers: u32,
    /// Equal address ranges each buffer is split into, each its own memory: `readers` and
    /// `writers` limit each partition, and an operand counts in every partition its range
    /// overlaps (1: the buffer is one memory).
    #[serde(default = "default_partitions")]
    pub partitions: u32,
}

/// One partition per buffer, for descriptions that do not name `buffers.partitions`.
pub fn default_partitions() -> u32 {
    1
}

impl BufferConfig {
    /// Whether the readers or writers of a buffer are limited (the controller then starts an
    /// instruction only when its buffer use fits next to the running instructions').
    pub fn limits_access(&self) -> bool {
        self.readers != 0 || self.writers != 0
    }
}

/// Sparse online reduction engine: produces N:M pruned weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoreConfig {
    /// Lanes; each takes one element per cycle and finishes a group of M in M cycles.
    pub lanes: u32,
}

/// Weight-update vector engine: FP32 SGD with momentum, weight decay and the SR-STE term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WuveConfig {
    /// Lanes; each updates one weight per cycle once its pipeline is full.
    pub lanes: u32,
    /// Pipeline depth of one lane, in cycles.
    pub pipeline_latency: u32,
}

/// Vector unit for non-GEMM work (activations, pooling, loss, conversions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorConfig {
    /// Lanes; each produces one element per cycle.
    pub lanes: u32,
    /// Pipeline depth, in cycles.
    pub pipeline_latency: u32,
    /// Rows of the line buffer that holds the FP32 partial sums of a pooling gradient over
    /// overlapping windows (stride below the window), a power of two: the RTL runs such
    /// gradients for windows of at most this many rows. The simulator's timing does not depend
    /// on it (the buffer is read and written in the cycle of each window element). 0 (here or
    /// in `pool_line_cols`) leaves the line buffer out, and the RTL refuses such gradients.
    #[serde(default = "default_pool_line_rows")]
    pub pool_line_rows: u32,
    /// Columns of that line buffer: the widest plane such a gradient may have on the RTL.
    #[serde(default = "default_pool_line_cols")]
    pub pool_line_cols: u32,
}

impl VectorConfig {
    /// Whether the vector unit has the pooling gradients' line buffer (neither size is 0).
    pub fn has_pool_line_buffer(&self) -> bool {
        self.pool_line_rows > 0 && self.pool_line_cols > 0
    }
}

/// `vcu1525`'s line buffer rows, for a description that does not name them.
fn default_pool_line_rows() -> u32 {
    4
}

/// `vcu1525`'s line buffer columns (the ImageNet ResNets' stem pool has planes 112 wide), for a
/// description that does not name them.
fn default_pool_line_cols() -> u32 {
    128
}

/// Off-chip memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DramConfig {
    /// Independent channels; consecutive bursts interleave across them.
    pub channels: u32,
    /// Peak bandwidth of one channel, GB/s (1e9 bytes per second).
    pub channel_gbps: f64,
    /// Latency from request to first data, ns.
    pub latency_ns: f64,
    /// Burst size in bytes: every row of a transfer is rounded up to whole bursts.
    pub burst_bytes: u32,
    /// Capacity in MiB; DMA addresses must stay below it.
    pub capacity_mib: u32,
}

/// Instruction fetch and queues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Depth of each unit's instruction queue; dispatch stalls when the target queue is full.
    pub queue_depth: u32,
}

/// The whole machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchConfig {
    /// Short name of this design point.
    pub name: String,
    /// Target board.
    pub board: String,
    /// Core clock, MHz.
    pub clock_mhz: f64,
    /// Energy technology preset.
    pub technology: Technology,
    /// Sparse tensor engine.
    pub array: ArrayConfig,
    /// Number formats.
    pub precision: PrecisionConfig,
    /// On-chip buffers.
    pub buffers: BufferConfig,
    /// Sparse online reduction engine.
    pub sore: SoreConfig,
    /// Weight-update vector engine.
    pub wuve: WuveConfig,
    /// Vector unit.
    pub vector: VectorConfig,
    /// Off-chip DRAM.
    pub dram: DramConfig,
    /// Instruction queues.
    pub control: ControlConfig,
}

/// Names of the built-in presets.
pub const PRESETS: [&str; 3] = ["vcu1525", "tiny", "systolic"];

fn ratios(list: &[(u32, u32)]) -> Vec<NmRatio> {
    list.iter().map(|&(n, m)| NmRatio { n, m }).collect()
}

impl Default for ArchConfig {
    fn default() -> Self {
        Self::vcu1525()
    }
}

impl ArchConfig {
    /// The paper's board: Xilinx VCU1525 (XCVU9P), 32x32 PEs with 2 multipliers and an
    /// 8-wide activation window, 200 MHz, 4 x DDR4-2400. Sizes marked "ours" in SAT.md. Its
    /// buffers are block RAM's: each of four partitions has two read replicas and one write
    /// port, and 512 banks (ours; BENCHMARKS.md, "Buffers with two readers and one writer").
    pub fn vcu1525() -> Self {
        ArchConfig {
            name: "vcu1525".into(),
            board: "xilinx-vcu1525".into(),
            clock_mhz: 200.0,
            technology: Technology::FpgaUltrascalePlus,
            array: ArrayConfig {
                rows: 32,
                cols: 32,
                n_max: 2,
                m_max: 8,
                supported_nm: ratios(&[(1, 4), (2, 4), (1, 8), (2, 8)]),
                dataflows: vec![Dataflow::Os, Dataflow::Ws],
                accumulator_latency: 4,
            },
            precision: PrecisionConfig { operand: DataType::Fp16, accumulator: DataType::Fp32 },
            buffers: BufferConfig {
                act_kib: 4096,
                act_banks: 512,
                wgt_kib: 2048,
                wgt_banks: 512,
                acc_kib: 2048,
                acc_banks: 512,
                master_kib: 4096,
                master_banks: 512,
                readers: 2,
                writers: 1,
                partitions: 4,
            },
            sore: SoreConfig { lanes: 32 },
            wuve: WuveConfig { lanes: 32, pipeline_latency: 12 },
            vector: VectorConfig {
                lanes: 64,
                pipeline_latency: 6,
                pool_line_rows: default_pool_line_rows(),
                pool_line_cols: default_pool_line_cols(),
            },
            dram: DramConfig { channels: 4, channel_gbps: 19.2, latency_ns: 100.0, burst_bytes: 64, capacity_mib: 65536 },
            control: ControlConfig { queue_depth: 16 },
        }
    }

    /// A 4x4 SAT for tests and RTL co-simulation, with a 2-cycle accumulator so hazards show,
    /// and buffers of two partitions with two readers and one writer each (block RAM's
    /// replicas) so their waits show.
    pub fn tiny() -> Self {
        let base = Self::vcu1525();
        ArchConfig {
            name: "tiny".into(),
            board: "none".into(),
            technology: Technology::Asic45nm,
            array: ArrayConfig { rows: 4, cols: 4, accumulator_latency: 2, ..base.array },
            buffers: BufferConfig {
                act_kib: 64,
                act_banks: 32,
                wgt_kib: 32,
                wgt_banks: 8,
                acc_kib: 64,
                acc_banks: 8,
                master_kib: 64,
                master_banks: 32,
                readers: 2,
                writers: 1,
                partitions: 2,
            },
            sore: SoreConfig { lanes: 4 },
            wuve: WuveConfig { lanes: 4, pipeline_latency: 4 },
            vector: VectorConfig { lanes: 4, pipeline_latency: 2, pool_line_cols: 16, ..base.vector },
            dram: DramConfig { channels: 1, channel_gbps: 1.6, latency_ns: 50.0, burst_bytes: 16, capacity_mib: 16 },
            control: ControlConfig { queue_depth: 4 },
            ..base
        }
    }

    /// A plain dense 32x32 systolic array: one multiplier per PE, no sparsity, all three
    /// dataflows, single-cycle accumulation. This is the machine SCALE-Sim models.
    pub fn systolic() -> Self {
        let base = Self::vcu1525();
        ArchConfig {
            name: "systolic".into(),
            board: "none".into(),
            technology: Technology::Asic45nm,
            array: ArrayConfig {
                rows: 32,
                cols: 32,
                n_max: 1,
                m_max: 1,
                supported_nm: Vec::new(),
                dataflows: Dataflow::ALL.to_vec(),
                accumulator_latency: 1,
            },
            ..base
        }
    }

    /// A built-in preset by name (see [`PRESETS`]).
    pub fn preset(name: &str) -> Result<Self, Error> {
        match name {
            "vcu1525" => Ok(Self::vcu1525()),
            "tiny" => Ok(Self::tiny()),
            "systolic" => Ok(Self::systolic()),
            _ => Err(Error::UnknownName { what: "architecture preset", name: name.into(), expected: "vcu1525, tiny, systolic" }),
        }
    }

    /// A preset name or the path of a TOML file, validated.
    pub fn resolve(preset_or_path: &str) -> Result<Self, Error> {
        if PRESETS.contains(&preset_or_path) {
            return Self::preset(preset_or_path);
        }
        let path = Path::new(preset_or_path);
        if !path.exists() {
            return Err(Error::UnknownName {
                what: "architecture (neither a preset nor an existing file)",
                name: preset_or_path.into(),
                expected: "vcu1525, tiny, systolic, or a path to a .toml file",
            });
        }
        Self::load(path)
    }

    /// Loads and validates a TOML description. The file may start from a preset with
    /// `base = "NAME"` and override any subset of fields; without `base` every field is needed.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        Self::from_toml_str(&text).map_err(|e| e.with_path(path))
    }

    /// Parses and validates TOML text (see [`ArchConfig::load`]).
    pub fn from_toml_str(text: &str) -> Result<Self, Error> {
        let mut doc: toml::Table =
            text.parse().map_err(|e: toml::de::Error| Error::Toml { path: None, message: e.to_string() })?;
        let merged = match doc.remove("base") {
            Some(toml::Value::String(base)) => {
                let base = Self::preset(&base)?;
                let mut table = toml::Table::try_from(&base).map_err(|e| Error::Toml { path: None, message: e.to_string() })?;
                merge_tables(&mut table, doc);
                table
            }
            Some(other) => {
                return Err(Error::Toml { path: None, message: format!("`base` must be a preset name string, found {other}") })
            }
            None => doc,
        };
        let arch: ArchConfig = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| Error::Toml { path: None, message: e.to_string() })?;
        arch.validate()?;
        Ok(arch)
    }

    /// The description as TOML text (round-trips through [`ArchConfig::from_toml_str`]).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("an ArchConfig always serializes to TOML")
    }

    /// Checks every rule; the error names the field and the rule broken.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, value: String, rule: &'static str| Err(Error::InvalidArch { field, value, rule });
        let a = &self.array;
        if !(self.clock_mhz.is_finite() && self.clock_mhz > 0.0) {
            return bad("clock_mhz", self.clock_mhz.to_string(), "must be a positive number");
        }
        if a.rows == 0 || a.rows > 1024 {
            return bad("array.rows", a.rows.to_string(), "must be between 1 and 1024");
        }
        if a.cols == 0 || a.cols > 1024 {
            return bad("array.cols", a.cols.to_string(), "must be between 1 and 1024");
        }
        if a.n_max == 0 || a.n_max > N_MAX_LIMIT {
            return bad("array.n_max", a.n_max.to_string(), "must be between 1 and 8");
        }
        if a.m_max < a.n_max || a.m_max > M_MAX_LIMIT {
            return bad("array.m_max", a.m_max.to_string(), "must be between n_max and 16");
        }
        for r in &a.supported_nm {
            if r.is_dense() {
                return bad("array.supported_nm", r.to_string(), "lists sparse ratios only (N < M); dense is always supported");
            }
            if r.n > a.n_max {
                return bad("array.supported_nm", r.to_string(), "N must not exceed array.n_max");
            }
            if r.m > a.m_max {
                return bad("array.supported_nm", r.to_string(), "M must not exceed array.m_max");
            }
            if !r.m.is_power_of_two() {
                return bad("array.supported_nm", r.to_string(), "M must be a power of two");
            }
        }
        if a.dataflows.is_empty() {
            return bad("array.dataflows", "[]".into(), "must list at least one of os, ws, is");
        }
        for (i, d) in a.dataflows.iter().enumerate() {
            if a.dataflows[..i].contains(d) {
                return bad("array.dataflows", d.to_string(), "lists a dataflow twice");
            }
        }
        if a.accumulator_latency == 0 || a.accumulator_latency > 15 {
            return bad("array.accumulator_latency", a.accumulator_latency.to_string(), "must be between 1 and 15 cycles");
        }
        if self.precision.accumulator != DataType::Fp32 {
            return bad("precision.accumulator", "fp16".into(), "must be fp32: FP16 accumulation is not modelled");
        }
        let b = &self.buffers;
        for (field, kib, banks) in [
            ("buffers.act_kib", b.act_kib, b.act_banks),
            ("buffers.wgt_kib", b.wgt_kib, b.wgt_banks),
            ("buffers.acc_kib", b.acc_kib, b.acc_banks),
            ("buffers.master_kib", b.master_kib, b.master_banks),
        ] {
            if kib == 0 || kib > 65536 {
                return bad(field, kib.to_string(), "must be between 1 and 65536 KiB");
            }
            if banks == 0 || !banks.is_power_of_two() || u64::from(banks) > u64::from(kib) * 1024 / 4 {
                return bad(
                    field,
                    format!("{kib} KiB in {banks} banks"),
                    "banks must be a power of two no larger than the buffer's 4-byte words",
                );
            }
        }
        for (field, count) in [("buffers.readers", b.readers), ("buffers.writers", b.writers)] {
            if count > 8 {
                return bad(field, count.to_string(), "must be between 0 (no limit) and 8");
            }
        }
        if b.partitions == 0 || !b.partitions.is_power_of_two() || b.partitions as usize > crate::operands::MAX_PARTITIONS {
            return bad("buffers.partitions", b.partitions.to_string(), "must be a power of two from 1 to 16");
        }
        if crate::isa::Buffer::ALL.iter().any(|&x| !self.buffer_elements(x).is_multiple_of(u64::from(b.partitions))) {
            return bad("buffers.partitions", b.partitions.to_string(), "must divide every buffer's elements");
        }
        for (field, lanes) in
            [("sore.lanes", self.sore.lanes), ("wuve.lanes", self.wuve.lanes), ("vector.lanes", self.vector.lanes)]
        {
            if lanes == 0 || lanes > 4096 {
                return bad(field, lanes.to_string(), "must be between 1 and 4096");
            }
        }
        for (field, buffer, banks) in [
            ("buffers.act_banks", Buffer::Act, b.act_banks),
            ("buffers.wgt_banks", Buffer::Wgt, b.wgt_banks),
            ("buffers.acc_banks", Buffer::Acc, b.acc_banks),
            ("buffers.master_banks", Buffer::Master, b.master_banks),
        ] {
            let (fewest, widest) = self.min_banks(buffer);
            if u64::from(banks) < fewest {
                return bad(
                    field,
                    format!("{banks}, where {widest} needs {fewest}"),
                    "must be at least the widest run of elements one unit touches on the buffer in a cycle, rounded up \
                     to a power of two, so that the run falls on distinct banks",
                );
            }
        }
        for (field, lat) in
            [("wuve.pipeline_latency", self.wuve.pipeline_latency), ("vector.pipeline_latency", self.vector.pipeline_latency)]
        {
            if lat > 64 {
                return bad(field, lat.to_string(), "must be at most 64 cycles");
            }
        }
        let v = &self.vector;
        if v.pool_line_rows != 0 && (!v.pool_line_rows.is_power_of_two() || v.pool_line_rows > 64) {
            return bad(
                "vector.pool_line_rows",
                v.pool_line_rows.to_string(),
                "must be 0 (no line buffer) or a power of two up to 64",
            );
        }
        if v.pool_line_cols > 65536 {
            return bad("vector.pool_line_cols", v.pool_line_cols.to_string(), "must be at most 65536 (0: no line buffer)");
        }
        let d = &self.dram;
        if d.channels == 0 || d.channels > 64 {
            return bad("dram.channels", d.channels.to_string(), "must be between 1 and 64");
        }
        if !(d.channel_gbps.is_finite() && d.channel_gbps > 0.0) {
            return bad("dram.channel_gbps", d.channel_gbps.to_string(), "must be a positive number");
        }
        if !(d.latency_ns.is_finite() && d.latency_ns >= 0.0) {
            return bad("dram.latency_ns", d.latency_ns.to_string(), "must be zero or positive");
        }
        if d.burst_bytes == 0 || !d.burst_bytes.is_power_of_two() || d.burst_bytes > 4096 {
            return bad("dram.burst_bytes", d.burst_bytes.to_string(), "must be a power of two up to 4096");
        }
        if d.capacity_mib == 0 || d.capacity_mib > 4096 * 1024 {
            return bad("dram.capacity_mib", d.capacity_mib.to_string(), "must be between 1 MiB and 4 TiB");
        }
        if self.control.queue_depth == 0 || self.control.queue_depth > 1024 {
            return bad("control.queue_depth", self.control.queue_depth.to_string(), "must be between 1 and 1024");
        }
        Ok(())
    }

    /// Bytes of one GEMM operand element (activations, gradients, compressed weight values).
    pub fn operand_bytes(&self) -> u64 {
        self.precision.operand.bytes()
    }

    /// Elements of one partition of a buffer (`buffers.partitions`).
    pub fn partition_elements(&self, buffer: crate::isa::Buffer) -> u64 {
        self.buffer_elements(buffer) / u64::from(self.buffers.partitions.max(1))
    }

    /// The KiB a buffer's description gives (`idx` counts in `wgt`'s, `mask` in `master`'s).
    pub fn buffer_kib(&self, buffer: Buffer) -> u32 {
        let b = &self.buffers;
        match buffer {
            Buffer::Act => b.act_kib,
            Buffer::Wgt | Buffer::Idx => b.wgt_kib,
            Buffer::Acc => b.acc_kib,
            Buffer::Master | Buffer::Mask => b.master_kib,
        }
    }

    /// Capacity of a buffer in elements of its own type.
    pub fn buffer_elements(&self, buffer: crate::isa::Buffer) -> u64 {
        use crate::isa::Buffer::*;
        let kib = self.buffer_kib(buffer);
        let value_bytes = match buffer {
            Act | Wgt | Idx => self.operand_bytes(),
            Acc | Master | Mask => 4,
        };
        u64::from(kib) * 1024 / value_bytes
    }

    /// Bytes one element of a buffer occupies in DRAM.
    pub fn dram_element_bytes(&self, buffer: crate::isa::Buffer) -> u64 {
        use crate::isa::Buffer::*;
        match buffer {
            Act | Wgt => self.operand_bytes(),
            Acc | Master => 4,
            Idx | Mask => 1,
        }
    }

    /// Sustained DRAM bytes per core cycle of one channel.
    pub fn dram_bytes_per_cycle_per_channel(&self) -> f64 {
        self.dram.channel_gbps * 1e9 / (self.clock_mhz * 1e6)
    }

    /// DMA lanes: the elements each DMA engine moves per cycle, the DRAM's bytes per core cycle
    /// over all channels, rounded up (as many one-byte elements as the bus delivers).
    pub fn dma_lanes(&self) -> u64 {
        let bytes = f64::from(self.dram.channels) * self.dram_bytes_per_cycle_per_channel();
        (bytes.ceil() as u64).max(1)
    }

    /// The cycles by which an update delays its writes of new momenta behind those of new
    /// weights, for weights at `weight` and momenta at `momentum` in `master`. Each cycle writes
    /// a run of `L = wuve.lanes` new weights and one of new momenta; with momenta `j` batches
    /// behind, the two runs start `d - j L` apart modulo `B = buffers.master_banks`
    /// (`d = momentum - weight`), on distinct banks when that is in `[L, B - L]`. This is the
    /// least such `j`: 0, 1 or 2, since `B >= 3 L` (validated).
    pub fn wuve_momentum_delay(&self, weight: u64, momentum: u64) -> u64 {
        let (lanes, banks) = (u64::from(self.wuve.lanes), u64::from(self.buffers.master_banks));
        let apart = |j: u64| (momentum.wrapping_sub(weight).wrapping_sub(j * lanes)) % banks;
        (0..2).find(|&j| (lanes..=banks - lanes).contains(&apart(j))).unwrap_or(2)
    }

    /// The banks of `buffer` (`idx` has `wgt`'s, `mask` `master`'s: their planes share the
    /// addresses).
    pub fn banks(&self, buffer: Buffer) -> u64 {
        let b = &self.buffers;
        u64::from(match buffer {
            Buffer::Act => b.act_banks,
            Buffer::Wgt | Buffer::Idx => b.wgt_banks,
            Buffer::Acc => b.acc_banks,
            Buffer::Master | Buffer::Mask => b.master_banks,
        })
    }

    /// Rows of one memory of a buffer as banked block RAM: a partition's elements over its
    /// banks (rounded up; the RTL refuses partitions that are not whole rows).
    pub fn bank_rows(&self, buffer: Buffer) -> u64 {
        self.partition_elements(buffer).div_ceil(self.banks(buffer))
    }

    /// Memories of one plane of a buffer as banked block RAM: `partitions x readers x banks`,
    /// each of one read and one write port (the RTL's `sat_buffer_bank`s).
    pub fn buffer_memories(&self, buffer: Buffer) -> u64 {
        u64::from(self.buffers.partitions) * u64::from(self.buffers.readers) * self.banks(buffer)
    }

    /// The tensor unit's weight bus lanes: `C n_max` for a step's weights of every column, `C L`
    /// for a transposed weight's element of every column of an interleaved fold, or `R n_max`
    /// for a WS fold's steps of one column (`L = array.accumulator_latency`).
    pub fn tensor_weight_lanes(&self) -> u64 {
        let a = &self.array;
        u64::from((a.cols * a.n_max.max(a.accumulator_latency)).max(a.rows * a.n_max))
    }

    /// The fewest banks `buffer` can be split into (interleaved by the low address bits) so
    /// that every unit's widest cycle on it falls on distinct banks, and that cycle. Each unit
    /// touches a buffer in runs of consecutive elements (see the module documentation of
    /// [`crate::rtl`]), which `B` banks take whole when `B` is at least the run; the pooling
    /// windows are the exception, and their walk takes what the banks allow. `idx` shares
    /// `wgt`'s banks and `mask` `master`'s, as their planes share the addresses:
    /// - every buffer: a DMA cycle ([`Self::dma_banks`]) and the vector unit's `vector.lanes`;
    /// - `act`: the tensor unit's input, up to `array.rows x array.m_max` a cycle (a WS fold's
    ///   input row);
    /// - `wgt`: the tensor unit's weights and indices ([`Self::tensor_weight_lanes`])
    ///   and a prune's kept values, `sore.lanes x array.n_max`;
    /// - `acc`: the GEMM's initial sums and output rows, `array.cols x
    ///   array.accumulator_latency`, and an update's gradients, `wuve.lanes`;
    /// - `master`: a prune's groups in FF order and its mask, `sore.lanes x array.m_max`, and an
    ///   update's new weights and new momenta, which need `3 wuve.lanes`
    ///   ([`Self::wuve_momentum_delay`]).
    pub fn min_banks(&self, buffer: Buffer) -> (u64, &'static str) {
        let a = &self.array;
        let (rows, cols, n_max, m_max) = (u64::from(a.rows), u64::from(a.cols), u64::from(a.n_max), u64::from(a.m_max));
        let (sore, wuve) = (u64::from(self.sore.lanes), u64::from(self.wuve.lanes));
        let mut widths = vec![(self.dma_banks(), "a DMA cycle"), (u64::from(self.vector.lanes), "the vector unit's lanes")];
        widths.extend(match buffer {
            Buffer::Act => vec![(rows * m_max, "the tensor unit's input (array.rows x array.m_max)")],
            Buffer::Wgt | Buffer::Idx => vec![
                (self.tensor_weight_lanes(), "the tensor unit's weights"),
                (sore * n_max, "a prune's kept values (sore.lanes x array.n_max)"),
            ],
            Buffer::Acc => vec![
                (cols * u64::from(a.accumulator_latency), "the GEMM's output rows (array.cols x array.accumulator_latency)"),
                (wuve, "an update's gradients (wuve.lanes)"),
            ],
            Buffer::Master | Buffer::Mask => vec![
                (sore * m_max, "a prune's groups in FF order (sore.lanes x array.m_max)"),
                (3 * wuve, "an update's new weights and new momenta (3 wuve.lanes)"),
            ],
        });
        let (widest, unit) = widths.into_iter().max_by_key(|&(width, _)| width).expect("every buffer has widths");
        (widest.next_power_of_two(), unit)
    }

    /// The banks that one cycle of a DMA stream never puts two elements into: [`Self::dma_lanes`]
    /// rounded up to a power of two. A buffer interleaved over that many banks by the low
    /// address bits takes any cycle's elements without conflict.
    pub fn dma_banks(&self) -> u64 {
        self.dma_lanes().next_power_of_two()
    }

    /// Consecutive rows of `cols` elements, `sram_row_stride` apart, that fall on distinct
    /// banks of [`Self::dma_banks`] (`B`): the first `d >= 1` whose rows `d` apart start less
    /// than `cols` banks apart, `min(d sram_row_stride mod B, B - d sram_row_stride mod B) <
    /// cols`. One for overlapping rows (`sram_row_stride < cols`), `B / 2^t` for single
    /// elements `2^t x odd` apart.
    pub fn dma_bank_rows(&self, cols: u64, sram_row_stride: u64) -> u64 {
        let (banks, cols) = (self.dma_banks(), cols.max(1));
        // Rows no longer than the stride's largest power-of-two factor `g` start on distinct
        // multiples of `g` until the first `d` with `d stride = 0 mod banks`.
        let g = (1u64 << sram_row_stride.trailing_zeros().min(63)).min(banks);
        if sram_row_stride >= cols && cols <= g {
            return banks / g;
        }
        let step = sram_row_stride % banks;
        let (mut d, mut start) = (1, step);
        while start.min(banks - start) >= cols {
            d += 1;
            start = (start + step) % banks;
        }
        d
    }

    /// Cycles of a DMA transfer's element stream on the buffer side: its `rows x cols` elements
    /// in row-major order, at most [`Self::dma_lanes`] a cycle, no two of a cycle's elements in
    /// one bank of [`Self::dma_banks`]:
    /// - rows back to back in the buffer (`sram_row_stride == cols`, or one row): the lanes run
    ///   across rows, `ceil(rows cols / lanes)` cycles;
    /// - otherwise, rows of at most `lanes` elements: `k` whole rows a cycle, as many as the
    ///   lanes hold and fall on distinct banks ([`Self::dma_bank_rows`]), `ceil(rows / k)`
    ///   cycles;
    /// - longer rows: each row from a new cycle, `rows ceil(cols / lanes)` cycles.
    pub fn dma_stream_cycles(&self, rows: u64, cols: u64, sram_row_stride: u64) -> u64 {
        let lanes = self.dma_lanes();
        if rows == 0 || cols == 0 {
            0
        } else if rows == 1 || sram_row_stride == cols {
            (rows * cols).div_ceil(lanes)
        } else if cols <= lanes {
            rows.div_ceil((lanes / cols).min(self.dma_bank_rows(cols, sram_row_stride)))
        } else {
            rows * cols.div_ceil(lanes)
        }
    }

    /// DRAM latency in core cycles (rounded up).
    pub fn dram_latency_cycles(&self) -> u64 {
        (self.dram.latency_ns * self.clock_mhz / 1000.0).ceil() as u64
    }

    /// DRAM capacity in bytes.
    pub fn dram_bytes(&self) -> u64 {
        u64::from(self.dram.capacity_mib) << 20
    }

    /// True when the tensor engine runs `ratio` in sparse mode.
    pub fn supports_nm(&self, ratio: NmRatio) -> bool {
        self.array.supported_nm.contains(&ratio)
    }

    /// True when the interconnect supports `dataflow`.
    pub fn supports_dataflow(&self, dataflow: Dataflow) -> bool {
        self.array.dataflows.contains(&dataflow)
    }

    /// Dense-equivalent reduction elements one PE covers per step: `n_max` when dense,
    /// `M` (one whole group) when N:M sparse.
    pub fn reduction_per_pe_step(&self, sparsity: Option<NmRatio>) -> u64 {
        match sparsity {
            None => u64::from(self.array.n_max),
            Some(r) => u64::from(r.m),
        }
    }

    /// The rows a WS fold streams (`M'`): its `rows`, and at least:
    /// - `2 L + 1 - R` ([`Self::ws_hazard_stream`]): a reduction fold reads the partial sums
    ///   the previous one wrote, and its first read must come after the previous fold's first
    ///   write, `R L + L + C - 1` cycles after that read (`sim::pe_array` counts this padding
    ///   as accumulator-hazard stalls);
    /// - the next fold's weight fetches ([`Self::ws_weight_fetches`]), which run during a
    ///   fold of `R + M' + (R - 1) L + C - 1` cycles ([`Self::ws_fold_overhead`]);
    /// - with a transposed input (`input_t`), its chunks of `X` rows ([`Self::ws_input_chunk`]):
    ///   `ceil(rows / X) X` cycles of fetch windows.
    pub fn ws_stream(&self, rows: u64, input_t: bool, weight_t: bool, step_elements: u64) -> u64 {
        let overhead = self.ws_fold_overhead();
        let weights = self.ws_weight_fetches(weight_t, step_elements).saturating_sub(overhead);
        let input = if input_t {
            let chunk = self.ws_input_chunk(step_elements);
            (rows.div_ceil(chunk) * chunk).saturating_sub(overhead)
        } else {
            0
        };
        rows.max(self.ws_hazard_stream()).max(weights).max(input)
    }

    /// The fewest input rows a WS fold streams for the accumulator hazard alone:
    /// `max(2 L + 1 - R, 0)` (see [`Self::ws_stream`]).
    pub fn ws_hazard_stream(&self) -> u64 {
        let (r, l) = (u64::from(self.array.rows), u64::from(self.array.accumulator_latency));
        (2 * l + 1).saturating_sub(r)
    }

    /// A WS fold's cycles besides its streamed rows: `R + (R - 1) L + C - 1`.
    pub fn ws_fold_overhead(&self) -> u64 {
        let (r, c) = (u64::from(self.array.rows), u64::from(self.array.cols));
        let l = u64::from(self.array.accumulator_latency);
        r + (r - 1) * l + c - 1
    }

    /// The buffer runs that stage one WS fold's weights, one a cycle: untransposed, a column's
    /// `R` steps of the fold (`C` runs); transposed (`weight_t`, a dense `K x N` matrix), one
    /// reduction element of the fold's `C` columns (`R m` runs, `m` the elements a step covers).
    pub fn ws_weight_fetches(&self, weight_t: bool, step_elements: u64) -> u64 {
        if weight_t {
            u64::from(self.array.rows) * step_elements
        } else {
            u64::from(self.array.cols)
        }
    }

    /// The input rows of one fetch of a transposed WS input (`input_t`, stored `K x M`): `X = Q +
    /// (R - 1) max(L - 1 - m, 0)`, `Q = R m` the fold's reduction elements. Each of the `Q`
    /// elements' next `X` rows is one run, fetched one a cycle into two slots per element, in a
    /// window of `Q` cycles every `X` rows (a corner turn): `X >= Q` keeps the windows apart,
    /// and the `(R - 1) (L - 1 - m)` rows more keep a fetch from overwriting the slot that a
    /// lower array row, `L - 1` cycles later per row, still reads.
    pub fn ws_input_chunk(&self, step_elements: u64) -> u64 {
        let (r, l) = (u64::from(self.array.rows), u64::from(self.array.accumulator_latency));
        r * step_elements + (r - 1) * (l - 1).saturating_sub(step_elements)
    }

    /// The reduction steps of one OS input fetch: `G = ceil(R / L)`. The tensor unit stages
    /// each array row's input in registers and fills them one buffer run a cycle: a row's next
    /// `G` steps (`G m` consecutive elements) to one row after another, so that the `R` rows'
    /// fetches fit in the `G max(I, L) >= R` cycles those steps last. (A transposed input is
    /// fetched a step at a time, see [`Self::os_step_period`]; the weights are fetched
    /// likewise, `C` steps of a column of the fold at a time, `C I` columns in `C max(I, L)`
    /// cycles.)
    pub fn os_fetch_steps(&self) -> u64 {
        u64::from(self.array.rows).div_ceil(u64::from(self.array.accumulator_latency))
    }

    /// An OS fold's cycles, `Q` its step period ([`Self::os_step_period`]): its `S` steps and
    /// the skew in over rows and columns, `S Q + R + C - 2`, and at least what the weights'
    /// fetches need. Untransposed, the weights are fetched a column of the fold a cycle, `V`
    /// columns ([`Self::os_weight_fetches`]) for each group of `C` steps, each group's in the
    /// `V` cycles before it. Folds walk the rows inside each block of columns:
    /// - with more than `C` steps (`ceil(S / C)` groups), every fold fetches its groups again,
    ///   the next fold's first after this fold's last, so a fold lasts at least
    ///   `(ceil(S / C) - 1) C Q + V` cycles (more than `S Q + R + C - 2` when its last group of
    ///   steps is short);
    /// - with at most `C` steps (one group), the row folds of a column block keep its weights,
    ///   fetched once before the block's first fold, so the block's `ceil(rows / R)` folds last
    ///   at least `V` cycles.
    ///
    /// A transposed weight's fetches (`m` a step) fit in its steps, and so do the input's.
    pub fn os_fold_period(&self, steps: u64, rows: u64, cols: u64, q: u64, interleave: u64, weight_t: bool) -> u64 {
        let (r, c) = (u64::from(self.array.rows), u64::from(self.array.cols));
        let compute = steps * q + r + c - 2;
        if weight_t {
            return compute;
        }
        let fetches = self.os_weight_fetches(cols, interleave, 0, false);
        if steps <= c {
            compute.max(fetches.div_ceil(rows.div_ceil(r).max(1)))
        } else {
            compute.max((steps.div_ceil(c) - 1) * c * q + fetches)
        }
    }

    /// The cycles of one OS input fetch window: a row of the fold a cycle, `min(R, rows)`, or
    /// with a transposed input (`input_t`) one reduction element of every row a cycle, `m`.
    pub fn os_input_fetches(&self, rows: u64, m: u64, input_t: bool) -> u64 {
        if input_t {
            m
        } else {
            u64::from(self.array.rows).min(rows)
        }
    }

    /// The cycles of one OS weight fetch window: a column of the fold a cycle, `min(C I,
    /// cols)`, or with a transposed weight (`weight_t`) one reduction element of every column a
    /// cycle, `m`.
    pub fn os_weight_fetches(&self, cols: u64, interleave: u64, m: u64, weight_t: bool) -> u64 {
        if weight_t {
            m
        } else {
            (u64::from(self.array.cols) * interleave).min(cols)
        }
    }

    /// The cycles between an OS GEMM step and the next, `Q`: `max(I, L)`, and with a transposed
    /// operand (`input_t`, an input stored `K x M`, or `weight_t`, a weight stored `K x N`) at
    /// least the `m` reduction elements of a step, since such an operand is fetched one element
    /// of every row or column (one run across them) a cycle.
    pub fn os_step_period(&self, interleave: u64, m: u64, transposed: bool) -> u64 {
        let period = interleave.max(u64::from(self.array.accumulator_latency));
        if transposed {
            period.max(m)
        } else {
            period
        }
    }

    /// The cycles an OS GEMM waits once, before its first step, for its first operand
    /// fetches, the longer of the input's ([`Self::os_input_fetches`]) and the weights'
    /// ([`Self::os_weight_fetches`]). (The last fetch's data reach the staging registers while
    /// the first step's pointers are registered, as the buffers' data did.)
    pub fn os_fill(&self, rows: u64, cols: u64, interleave: u64, m: u64, input_t: bool, weight_t: bool) -> u64 {
        self.os_input_fetches(rows, m, input_t).max(self.os_weight_fetches(cols, interleave, m, weight_t))
    }

    /// The cycles a WS GEMM waits once, before its first fold, for its first fetches: the
    /// first fold's weights ([`Self::ws_weight_fetches`]), and with a transposed input the part
    /// of its first window, `Q = R m` cycles ending `R` cycles into the fold, that comes before
    /// the fold ([`Self::ws_input_chunk`]).
    pub fn ws_fill(&self, input_t: bool, weight_t: bool, step_elements: u64) -> u64 {
        let weights = self.ws_weight_fetches(weight_t, step_elements);
        let r = u64::from(self.array.rows);
        if input_t {
            weights.max((r * step_elements).saturating_sub(r))
        } else {
            weights
        }
    }

    /// Seconds per core cycle.
    pub fn seconds_per_cycle(&self) -> f64 {
        1.0 / (self.clock_mhz * 1e6)
    }
}

fn merge_tables(base: &mut toml::Table, overrides: toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_round_trip() {
        for name in PRESETS {
            let arch = ArchConfig::preset(name).unwrap();
            arch.validate().unwrap();
            let back = ArchConfig::from_toml_str(&arch.to_toml()).unwrap();
            assert_eq!(back, arch);
        }
    }

    #[test]
    fn sat_presets_run_the_issue_ratios() {
        for arch in [ArchConfig::vcu1525(), ArchConfig::tiny()] {
            for r in ["1:4", "2:4", "1:8", "2:8"] {
                assert!(arch.supports_nm(r.parse().unwrap()), "{} lacks {r}", arch.name);
            }
        }
        assert!(ArchConfig::systolic().array.supported_nm.is_empty());
    }

    #[test]
    fn base_plus_overrides() {
        let arch =
            ArchConfig::from_toml_str("base = \"tiny\"\n[array]\nrows = 8\n[buffers]\nact_banks = 64\nwgt_banks = 16\n").unwrap();
        assert_eq!(arch.array.rows, 8);
        assert_eq!(arch.buffers.act_banks, 64);
        assert_eq!(arch.buffers.acc_banks, 8);
        assert_eq!(arch.array.cols, 4);
    }

    #[test]
    fn errors_name_the_field() {
        let e = ArchConfig::from_toml_str("base = \"tiny\"\n[array]\nn_max = 0\n").unwrap_err().to_string();
        assert!(e.contains("array.n_max"), "{e}");
        let e = ArchConfig::from_toml_str("base = \"tiny\"\n[array]\nsupported_nm = [\"4:8\"]\n").unwrap_err().to_string();
        assert!(e.contains("array.supported_nm") && e.contains("4:8"), "{e}");
        let e = ArchConfig::from_toml_str("base = \"tiny\"\n[array]\nrowz = 8\n").unwrap_err().to_string();
        assert!(e.contains("rowz"), "{e}");
        let e = ArchConfig::from_toml_str("base = \"nope\"\n").unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        let e = ArchConfig::from_toml_str("base = \"tiny\"\n[vector]\npool_line_rows = 3\n").unwrap_err().to_string();
        assert!(e.contains("vector.pool_line_rows") && e.contains("power of two"), "{e}");
        let e = ArchConfig::from_toml_str("base = \"tiny\"\n[vector]\npool_line_cols = 70000\n").unwrap_err().to_string();
        assert!(e.contains("vector.pool_line_cols"), "{e}");
        assert!(ArchConfig::from_toml_str("base = \"tiny\"\n[vector]\npool_line_rows = 0\n").is_ok());
        let e = ArchConfig::from_toml_str("base = \"tiny\"\n[wuve]\nlanes = 16\n[buffers]\nacc_banks = 16\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("buffers.master_banks") && e.contains("32, where an update's new weights and new momenta"), "{e}");
        assert!(e.contains("needs 64"), "{e}");
        let e = ArchConfig::from_toml_str("base = \"tiny\"\n[array]\nrows = 8\n").unwrap_err().to_string();
        assert!(e.contains("buffers.act_banks") && e.contains("32, where the tensor unit's input"), "{e}");
        assert!(e.contains("needs 64"), "{e}");
        let e = ArchConfig::from_toml_str("base = \"tiny\"\n[vector]\nlanes = 16\n").unwrap_err().to_string();
        assert!(e.contains("buffers.wgt_banks") && e.contains("8, where the vector unit's lanes needs 16"), "{e}");
    }

    /// Every distance between an update's weights and momenta, on machines of several lane and
    /// bank counts: the delayed momenta's run never shares a bank with the weights' run.
    #[test]
    fn the_momentum_delay_separates_the_two_write_runs() {
        for (lanes, banks) in [(4, 16), (4, 32), (3, 16), (5, 16), (32, 128), (1, 4)] {
            let mut arch = ArchConfig::tiny();
            (arch.wuve.lanes, arch.buffers.master_banks) = (lanes, banks);
            assert!(banks >= 3 * lanes, "the delay's premise");
            let (lanes, banks) = (u64::from(lanes), u64::from(banks));
            for weight in [0, 5, 1000] {
                for d in 0..2 * banks {
                    let j = arch.wuve_momentum_delay(weight, weight + d);
                    assert!(j <= 2);
                    // In the cycle that writes weights w + b L .. +L, the momenta of batch b - j.
                    let b = 7;
                    let weights: Vec<u64> = (0..lanes).map(|i| (weight + b * lanes + i) % banks).collect();
                    let momenta: Vec<u64> = (0..lanes).map(|i| (weight + d + (b - j) * lanes + i) % banks).collect();
                    assert!(weights.iter().all(|x| !momenta.contains(x)), "L {lanes}, B {banks}, d {d}: j {j}");
                    // And no smaller delay would do.
                    if j > 0 {
                        let earlier: Vec<u64> = (0..lanes).map(|i| (weight + d + (b - j + 1) * lanes + i) % banks).collect();
                        assert!(weights.iter().any(|x| earlier.contains(x)), "L {lanes}, B {banks}, d {d}: j {j}");
                    }
                }
            }
        }
    }

    #[test]
    fn descriptions_without_the_line_buffer_get_its_defaults() {
        let mut table = toml::Table::try_from(ArchConfig::tiny()).unwrap();
        let vector = table.get_mut("vector").and_then(toml::Value::as_table_mut).unwrap();
        vector.remove("pool_line_rows");
        vector.remove("pool_line_cols");
        let arch = ArchConfig::from_toml_str(&toml::to_string(&table).unwrap()).unwrap();
        assert_eq!((arch.vector.pool_line_rows, arch.vector.pool_line_cols), (4, 128));
    }

    #[test]
    fn the_limits_are_the_ones_validation_enforces_and_names() {
        // With banks for the widest runs the limits allow (4 rows of 16, 4 prune lanes of 8 kept).
        let at = |field: &str, value: u32| {
            format!(
                "base = \"tiny\"\n[array]\n{field} = {value}\nsupported_nm = [\"1:4\"]\n\
                 [buffers]\nact_banks = 64\nwgt_banks = 32\nmaster_banks = 64\n"
            )
        };
        assert!(ArchConfig::from_toml_str(&at("n_max", N_MAX_LIMIT)).is_ok());
        let e = ArchConfig::from_toml_str(&at("n_max", N_MAX_LIMIT + 1)).unwrap_err().to_string();
        assert!(e.contains(&format!("between 1 and {N_MAX_LIMIT}")), "{e}");
        assert!(ArchConfig::from_toml_str(&at("m_max", M_MAX_LIMIT)).is_ok());
        let e = ArchConfig::from_toml_str(&at("m_max", M_MAX_LIMIT + 1)).unwrap_err().to_string();
        assert!(e.contains(&format!("n_max and {M_MAX_LIMIT}")), "{e}");
    }

    #[test]
    fn derived_values() {
        let arch = ArchConfig::vcu1525();
        assert!((arch.dram_bytes_per_cycle_per_channel() - 96.0).abs() < 1e-9);
        assert_eq!(arch.dram_latency_cycles(), 20);
        assert_eq!(arch.reduction_per_pe_step(Some("2:8".parse().unwrap())) / arch.reduction_per_pe_step(None), 4);
    }
}
