//! The FPGA boards an architecture description may name (`ArchConfig::board`) and the
//! resources of their device, so that a synthesis report can say what share of the device a
//! design takes. Figures from the device family's data sheet (Xilinx DS890, *UltraScale
//! Architecture and Product Data Sheet: Overview*, the Virtex UltraScale+ table).

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ArchConfig;

    #[test]
    fn the_vcu1525_preset_names_the_xcvu9p() {
        assert_eq!(device(&ArchConfig::vcu1525().board), Some(XCVU9P));
        assert_eq!(device(&ArchConfig::tiny().board), None);
    }
}
