//! Per-action energy tables and the two documented technology presets.
//!
//! Energy = sum over actions of (count x energy per action) + static power x time.
//!
//! **ASIC 45 nm** (`asic-45nm`), from Horowitz, "Computing's energy problem", ISSCC 2014
//! (45 nm, 0.9 V): FP16 mult 1.1 pJ, FP32 add 0.9 pJ, so one mixed-precision MAC (FP16
//! multiply + FP32 add) is 2.0 pJ; FP32 mult 3.7 pJ; SRAM per 64-bit access 10 pJ (8 KB),
//! 20 pJ (32 KB), 100 pJ (1 MB), interpolated linearly in log2(bank size) and clamped at the
//! ends; DRAM 1,300-2,600 pJ per 64-bit access: we take the midpoint, 1,950 pJ. Ours
//! (estimates, documented as such): an N:M operand-select mux costs 0.05 pJ per selected
//! operand; a SORE element (one insertion into a top-N stack: N FP32 compares) costs
//! 0.9 pJ x N; a WUVE element (4 FP32 mults, 4 FP32 adds) 18.4 pJ; a vector-unit element
//! 1.0 pJ; no static power.
//!
//! **FPGA UltraScale+** (`fpga-ultrascale-plus`), an estimate for an XCVU9P at the
//! design's clock (ours, to be replaced by measured board power): dynamic energies 8x the
//! ASIC values for logic (FPGA fabric is commonly measured at roughly an order of magnitude
//! above ASIC), on-chip RAM as 36 Kb BRAM / 288 Kb URAM at 2.5x the ASIC SRAM figure per
//! access, the same DRAM energy as the ASIC preset (the DDR4 devices and PHY are the same),
//! and 5 W of static power for the device and its platform shell.

use crate::stats::{Cost, Energy};
use satkit_hw::isa::Buffer;
use satkit_hw::{ArchConfig, Technology};

/// Energy per action, pJ.
#[derive(Debug, Clone, PartialEq)]
pub struct EnergyTable {
    /// One multiply-accumulate (operand mult + FP32 add).
    pub mac: f64,
    /// Selecting one operand out of an N:M window.
    pub sparse_select: f64,
    /// One byte read or written, per buffer (act, wgt, idx, acc, master, mask).
    pub sram_per_byte: [f64; 6],
    /// One DRAM byte.
    pub dram_per_byte: f64,
    /// One SORE element per kept slot N.
    pub sore_per_element_per_n: f64,
    /// One WUVE element update.
    pub wuve_per_element: f64,
    /// One vector-unit element.
    pub vector_per_element: f64,
    /// Static energy per core cycle.
    pub static_per_cycle: f64,
}

/// Horowitz SRAM energy per 64-bit access for a bank of `bytes`, interpolated in log2 size.
fn sram_pj_per_64bit(bytes: f64) -> f64 {
    const POINTS: [(f64, f64); 3] = [(8.0 * 1024.0, 10.0), (32.0 * 1024.0, 20.0), (1024.0 * 1024.0, 100.0)];
    let x = bytes.log2();
    if x <= POINTS[0].0.log2() {
        return POINTS[0].1;
    }
    for w in POINTS.windows(2) {
        let (x0, x1) = (w[0].0.log2(), w[1].0.log2());
        if x <= x1 {
            return w[0].1 + (w[1].1 - w[0].1) * (x - x0) / (x1 - x0);
        }
    }
    POINTS[2].1
}

impl EnergyTable {
    /// The table for `arch`'s technology, with SRAM energies from its bank sizes.
    pub fn for_arch(arch: &ArchConfig) -> Self {
        let bank = |buf: Buffer| f64::from(arch.buffer_kib(buf)) * 1024.0 / arch.banks(buf) as f64;
        let (logic, sram_scale, static_watts) = match arch.technology {
            Technology::Asic45nm => (1.0, 1.0, 0.0),
            Technology::FpgaUltrascalePlus => (8.0, 2.5, 5.0),
        };
        let mut sram_per_byte = [0.0; 6];
        for &buf in Buffer::ALL {
            sram_per_byte[buf as usize] = sram_scale * sram_pj_per_64bit(bank(buf)) / 8.0;
        }
        EnergyTable {
            mac: logic * 2.0,
            sparse_select: logic * 0.05,
            sram_per_byte,
            dram_per_byte: 1950.0 / 8.0,
            sore_per_element_per_n: logic * 0.9,
            wuve_per_element: logic * (4.0 * 3.7 + 4.0 * 0.9),
            vector_per_element: logic * 1.0,
            static_per_cycle: static_watts * arch.seconds_per_cycle() * 1e12,
        }
    }

    /// Fills in `cost.energy` from its action counts. `sparse_n` is the N of a sparse GEMM
    /// or prune, `None` otherwise; `unit` picks which engine the elements belong to.
    pub fn charge(&self, cost: &mut Cost, unit: satkit_hw::isa::Unit, sparse_n: Option<u32>) {
        use satkit_hw::isa::Unit;
        let mut e = Energy { dram_pj: (cost.dram_read + cost.dram_write) as f64 * self.dram_per_byte, ..Energy::default() };
        for i in 0..6 {
            e.sram_pj += (cost.sram.read[i] + cost.sram.write[i]) as f64 * self.sram_per_byte[i];
        }
        let elements = cost.elements as f64;
        match unit {
            Unit::Tensor => {
                e.tensor_pj = cost.macs_performed as f64 * (self.mac + if sparse_n.is_some() { self.sparse_select } else { 0.0 });
            }
            Unit::Sore => e.sore_pj = elements * self.sore_per_element_per_n * f64::from(sparse_n.unwrap_or(1)),
            Unit::Wuve => e.wuve_pj = elements * self.wuve_per_element,
            Unit::Vector => e.vector_pj = elements * self.vector_per_element,
            Unit::Load | Unit::Store => {}
        }
        cost.energy = e;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sram_interpolation_hits_the_published_points() {
        assert!((sram_pj_per_64bit(8192.0) - 10.0).abs() < 1e-9);
        assert!((sram_pj_per_64bit(32768.0) - 20.0).abs() < 1e-9);
        assert!((sram_pj_per_64bit(1048576.0) - 100.0).abs() < 1e-9);
        assert!((sram_pj_per_64bit(1024.0) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn asic_mac_is_two_picojoules() {
        let t = EnergyTable::for_arch(&ArchConfig::tiny());
        assert_eq!(t.mac, 2.0);
        assert_eq!(t.static_per_cycle, 0.0);
        let f = EnergyTable::for_arch(&ArchConfig::vcu1525());
        // 5 W at 200 MHz = 25 nJ per cycle.
        assert!((f.static_per_cycle - 25_000.0).abs() < 1e-6);
    }
}
