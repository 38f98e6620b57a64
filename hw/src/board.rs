//! The FPGA boards an architecture description may name (`ArchConfig::board`) and the
//! resources of their device, so that a synthesis report can say what share of the device a
//! design takes. Figures from the device family's data sheet (Xilinx DS890, *UltraScale
//! Architecture and Product Data Sheet: Overview*, the Virtex UltraScale+ table).
//!
//! Also the block-RAM plan of a description's buffers ([`memory_plan`]): the memories that
//! banked, replicated buffers take (see the module documentation of [`crate::rtl`]), and
//! what they would take of a device's block RAM and UltraRAM. The RTL does not generate
//! these memories yet; the plan says whether a description's buffers can fit its board.
//! Primitive shapes from Xilinx UG573 (*UltraScale Architecture Memory Resources*): a RAMB36
//! is 32K x 1 to 512 x 72, a RAMB18 (half of one) 16K x 1 to 512 x 36, an URAM288 4K x 72.

use crate::isa::Buffer;
use crate::rtl::machine::buffer_width;
use crate::ArchConfig;
use serde::Serialize;

/// One FPGA device's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Device {
    /// Part name.
    pub part: &'static str,
    /// CLB LUTs.
    pub luts: u64,
    /// CLB flip-flops.
    pub flip_flops: u64,
    /// DSP slices (DSP48E2).
    pub dsps: u64,
    /// 36 Kb block RAMs.
    pub bram36: u64,
    /// 288 Kb UltraRAMs.
    pub uram: u64,
}

/// The Xilinx VCU1525's device, the paper's board (SAT.md).
pub const XCVU9P: Device =
    Device { part: "XCVU9P", luts: 1_182_240, flip_flops: 2_364_480, dsps: 6_840, bram36: 2_160, uram: 960 };

/// The boards with a known device, by the name `ArchConfig::board` uses.
pub const BOARDS: [(&str, Device); 1] = [("xilinx-vcu1525", XCVU9P)];

/// The device of `board`, or `None` for a board this list does not know (`none`, an ASIC).
pub fn device(board: &str) -> Option<Device> {
    BOARDS.iter().find(|(name, _)| *name == board).map(|&(_, device)| device)
}

/// RAMB18 shapes (depth, width): half a RAMB36 each.
const RAMB18_SHAPES: [(u64, u64); 6] = [(16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)];
/// RAMB36 shapes (depth, width).
const RAMB36_SHAPES: [(u64, u64); 7] = [(32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72)];
/// The URAM288's one shape (depth, width).
const URAM_SHAPE: (u64, u64) = (4096, 72);

/// The RAMB36s (a RAMB18 counting half) of the cheapest tiling of a `depth x width` memory.
pub fn bram36_for(depth: u64, width: u64) -> f64 {
    let tiles = |(d, w): (u64, u64)| (depth.div_ceil(d) * width.div_ceil(w)) as f64;
    let halves = RAMB18_SHAPES.iter().map(|&shape| tiles(shape) / 2.0);
    halves.chain(RAMB36_SHAPES.iter().map(|&shape| tiles(shape))).fold(f64::INFINITY, f64::min)
}

/// The URAM288s of a `depth x width` memory.
pub fn uram_for(depth: u64, width: u64) -> u64 {
    depth.div_ceil(URAM_SHAPE.0) * width.div_ceil(URAM_SHAPE.1)
}

/// One buffer plane's memories in the plan: `buffers.partitions x buffers.readers` replicas of
/// the plane, each split into its banks, every bank a memory of `depth x width`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlaneMemories {
    /// The plane (`idx` beside `wgt`, `mask` beside `master`, each with its own memories).
    #[serde(serialize_with = "buffer_name")]
    pub buffer: Buffer,
    /// Memories: partitions x replicas x banks.
    pub memories: u64,
    /// Elements of each memory.
    pub depth: u64,
    /// Bits of each element.
    pub width: u64,
    /// RAMB36s if every memory is block RAM (a RAMB18 counting half).
    pub bram36: f64,
    /// URAM288s if every memory is UltraRAM.
    pub uram: u64,
}

/// The block-RAM plan of a description's buffers, and the best split between a device's block
/// RAM and UltraRAM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryPlan {
    /// Every buffer plane's memories.
    pub planes: Vec<PlaneMemories>,
    /// The board's device, when [`device`] knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceFit>,
}

/// How the plan's planes fit a device: each plane all in block RAM or all in UltraRAM, the
/// split whose fuller resource is the least full.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceFit {
    /// The device.
    pub device: Device,
    /// The planes in UltraRAM (the others in block RAM).
    #[serde(serialize_with = "buffer_names")]
    pub in_uram: Vec<Buffer>,
    /// RAMB36s the split takes.
    pub bram36: f64,
    /// URAM288s the split takes.
    pub uram: u64,
    /// The split's share of the device's RAMB36s, in percent.
    pub bram36_percent: f64,
    /// The split's share of the device's URAM288s, in percent.
    pub uram_percent: f64,
    /// Whether both shares are at most 100 %.
    pub fits: bool,
}

fn buffer_name<S: serde::Serializer>(buffer: &Buffer, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(buffer)
}

fn buffer_names<S: serde::Serializer>(buffers: &[Buffer], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(buffers.iter().map(ToString::to_string))
}

/// The memories `arch`'s buffers take as banked block-RAM replicas: for each plane,
/// `buffers.partitions` partitions of `buffers.readers` replicas (one per reader), each split
/// into the buffer's banks ([`ArchConfig::banks`]; `idx` and `mask` are byte planes of their
/// own with `wgt`'s and `master`'s banks). Errors when `buffers.readers` is 0: without a limit
/// every unit reads through ports of its own, which block RAM does not have.
pub fn memory_plan(arch: &ArchConfig) -> Result<MemoryPlan, String> {
    let b = &arch.buffers;
    if b.readers == 0 {
        return Err(format!(
            "`{}` sets no limit on a buffer's readers (buffers.readers = 0): block RAM has one read port per replica, \
             so a plan needs buffers.readers >= 1",
            arch.name
        ));
    }
    let planes: Vec<PlaneMemories> = Buffer::ALL
        .iter()
        .map(|&buffer| {
            let depth = arch.bank_rows(buffer);
            let width = buffer_width(buffer) as u64;
            let memories = arch.buffer_memories(buffer);
            PlaneMemories {
                buffer,
                memories,
                depth,
                width,
                bram36: memories as f64 * bram36_for(depth, width),
                uram: memories * uram_for(depth, width),
            }
        })
        .collect();
    let device = device(&arch.board).map(|device| best_split(&planes, device));
    Ok(MemoryPlan { planes, device })
}

/// Each of the `2^planes` splits between block RAM and UltraRAM; the one whose fuller
/// resource is the least full (the first such).
fn best_split(planes: &[PlaneMemories], device: Device) -> DeviceFit {
    let split = |mask: usize| {
        let in_uram = |i: usize| mask >> i & 1 == 1;
        let bram36: f64 = planes.iter().enumerate().filter(|&(i, _)| !in_uram(i)).map(|(_, p)| p.bram36).sum();
        let uram: u64 = planes.iter().enumerate().filter(|&(i, _)| in_uram(i)).map(|(_, p)| p.uram).sum();
        let (bram36_percent, uram_percent) = (100.0 * bram36 / device.bram36 as f64, 100.0 * uram as f64 / device.uram as f64);
        DeviceFit {
            device,
            in_uram: planes.iter().enumerate().filter(|&(i, _)| in_uram(i)).map(|(_, p)| p.buffer).collect(),
            bram36,
            uram,
            bram36_percent,
            uram_percent,
            fits: bram36_percent <= 100.0 && uram_percent <= 100.0,
        }
    };
    let fuller = |fit: &DeviceFit| fit.bram36_percent.max(fit.uram_percent);
    (0..1usize << planes.len())
        .map(split)
        .reduce(|best, next| if fuller(&next) < fuller(&best) { next } else { best })
        .expect("one split at least")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tilings worked out from UG573's shapes.
    #[test]
    fn memories_take_the_cheapest_tiling_of_block_ram_and_whole_urams() {
        // 1K x 16: one RAMB18 (1K x 18); 4K x 16: two RAMB36 (2K x 18 twice, or 4K x 9 side by
        // side); 256 x 32: one RAMB18 (512 x 36); 512 x 72: one RAMB36; 32K x 1: one RAMB36.
        assert_eq!(bram36_for(1024, 16), 0.5);
        assert_eq!(bram36_for(4096, 16), 2.0);
        assert_eq!(bram36_for(256, 32), 0.5);
        assert_eq!(bram36_for(512, 72), 1.0);
        assert_eq!(bram36_for(32768, 1), 1.0);
        assert_eq!(bram36_for(16384, 2), 1.0);
        assert_eq!((uram_for(4096, 72), uram_for(1, 8), uram_for(8192, 73)), (1, 1, 4));
    }

    /// `tiny`: two partitions of two replicas; `act`'s 32768 FP16 elements in 32 banks a
    /// partition are memories of 512 x 16, one RAMB18 each (64 RAMB36 for the 128 of them).
    /// `tiny` names no device; a description with the XCVU9P gets the split.
    #[test]
    fn the_plan_counts_partitions_replicas_and_banks() {
        let tiny = ArchConfig::tiny();
        let plan = memory_plan(&tiny).unwrap();
        let act = &plan.planes[0];
        assert_eq!((act.buffer, act.memories, act.depth, act.width), (Buffer::Act, 128, 512, 16));
        assert_eq!((act.bram36, act.uram), (64.0, 128));
        assert!(plan.device.is_none());
        let on_board = ArchConfig { board: "xilinx-vcu1525".into(), ..tiny.clone() };
        let fit = memory_plan(&on_board).unwrap().device.unwrap();
        assert!(fit.fits && fit.bram36_percent <= 100.0, "{fit:?}");
        let total_bram: f64 = memory_plan(&on_board).unwrap().planes.iter().map(|p| p.bram36).sum();
        assert!(fit.bram36 <= total_bram);
        let json = serde_json::to_value(memory_plan(&on_board).unwrap()).unwrap();
        assert_eq!(json["planes"][5]["buffer"], "mask");
        assert!(json["device"]["in_uram"].is_array(), "{json}");
        let unlimited = ArchConfig { buffers: crate::arch::BufferConfig { readers: 0, ..tiny.buffers.clone() }, ..tiny };
        assert!(memory_plan(&unlimited).unwrap_err().contains("buffers.readers = 0"));
    }

    /// `vcu1525`: 4 partitions x 2 replicas x 512 banks = 4096 memories a plane, each at most
    /// a RAMB18 deep (`act`: 1024 x 16), half a RAMB36: 2048 a plane, and 4096 URAMs if in
    /// UltraRAM. Six planes take far more than the XCVU9P's 2160 RAMB36 and 960 URAMs.
    #[test]
    fn vcu1525s_buffers_do_not_fit_its_device_as_banked_replicas() {
        let plan = memory_plan(&ArchConfig::vcu1525()).unwrap();
        for p in &plan.planes {
            assert_eq!((p.memories, p.bram36, p.uram), (4096, 2048.0, 4096), "{p:?}");
        }
        let fit = plan.device.unwrap();
        assert_eq!(fit.device, XCVU9P);
        // One plane in UltraRAM (4096 > 960, but better balanced than none): 5 x 2048 RAMB36.
        assert_eq!((fit.in_uram.len(), fit.bram36, fit.uram), (1, 10240.0, 4096));
        assert!(!fit.fits);
    }

    #[test]
    fn the_vcu1525_preset_names_the_xcvu9p() {
        assert_eq!(device(&ArchConfig::vcu1525().board), Some(XCVU9P));
        assert_eq!(device(&ArchConfig::tiny().board), None);
    }
}
