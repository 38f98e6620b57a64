//! The sparse online reduction engine (SORE): N:M pruning of dense FP32 weights.
//!
//! Each lane streams one group of `M` elements, one element per cycle, inserting it into a
//! top-N register stack (the mask rule of `satkit_hw::nm`: largest magnitude, ties to the
//! earlier index), and writes the group's N kept values (rounded to the operand type, in
//! increasing index order) with their in-group indices. **Cycles:**
//! `ceil(groups / lanes) * M + 3`: two to start reading (the instruction's fields are
//! registered, then the master buffer reads synchronously) and the final write-back, as the
//! RTL's SORE sequencer does (`hw/src/rtl/machine.rs`). FF order reads groups along rows and
//! writes `rows` compressed rows; BP order reads groups down columns and writes `cols`
//! compressed rows, the transposed copy for the backward-data GEMM.

use crate::scratchpad::Scratchpads;
use crate::stats::Cost;
use satkit_hw::isa::{Buffer, PruneOrder};
use satkit_hw::nm::{mask_along_cols, mask_along_rows, NmRatio};
use satkit_hw::ArchConfig;

/// A prune as an instruction gives it.
#[derive(Debug, Clone, Copy)]
pub struct Prune {
    /// Traversal order.
    pub order: PruneOrder,
    /// The ratio.
    pub ratio: NmRatio,
    /// Dense rows.
    pub rows: u64,
    /// Dense columns.
    pub cols: u64,
    /// Source in `master`.
    pub src: u64,
    /// Destination in `wgt` / `idx`.
    pub dst: u64,
    /// Mask destination in `mask`, when written.
    pub mask: Option<u64>,
}

impl Prune {
    /// Entries written to the weight buffer.
    pub fn compressed_entries(&self) -> u64 {
        self.rows * self.cols / u64::from(self.ratio.m) * u64::from(self.ratio.n)
    }

    /// Checks the shape against the ratio (the machine checks the address ranges,
    /// `Op::operands`).
    pub fn check(&self) -> Result<(), String> {
        let (grouped, name) = match self.order {
            PruneOrder::Ff => (self.cols, "cols"),
            PruneOrder::Bp => (self.rows, "rows"),
        };
        if !self.ratio.fits(grouped as usize) {
            return Err(format!(
                "{name} = {grouped} is not a multiple of M = {} ({} order groups along {name})",
                self.ratio.m, self.order
            ));
        }
        Ok(())
    }
}

/// Cost of a prune.
pub fn cost(arch: &ArchConfig, p: &Prune) -> Cost {
    let elements = p.rows * p.cols;
    let groups = elements / u64::from(p.ratio.m);
    let mut cost =
        Cost { cycles: groups.div_ceil(u64::from(arch.sore.lanes)) * u64::from(p.ratio.m) + 3, elements, ..Cost::default() };
    let entries = p.compressed_entries();
    cost.sram.read(Buffer::Master, elements * 4);
    cost.sram.write(Buffer::Wgt, entries * arch.operand_bytes());
    cost.sram.write(Buffer::Idx, entries);
    if p.mask.is_some() {
        cost.sram.write(Buffer::Mask, elements);
    }
    cost
}

/// Performs the prune on the buffers.
pub fn execute(s: &mut Scratchpads, p: &Prune) {
    let (rows, cols) = (p.rows as usize, p.cols as usize);
    let dense = s.values(Buffer::Master)[p.src as usize..p.src as usize + rows * cols].to_vec();
    let (mask, out_rows, out_len) = match p.order {
        PruneOrder::Ff => (mask_along_rows(&dense, rows, cols, p.ratio), rows, cols),
        PruneOrder::Bp => (mask_along_cols(&dense, rows, cols, p.ratio), cols, rows),
    };
    let stored = p.ratio.compressed_len(out_len);
    let m = p.ratio.m as usize;
    for out_row in 0..out_rows {
        let mut written = 0;
        for pos in 0..out_len {
            let (r, c) = match p.order {
                PruneOrder::Ff => (out_row, pos),
                PruneOrder::Bp => (pos, out_row),
            };
            if mask[r * cols + c] == 1 {
                let at = p.dst as usize + out_row * stored + written;
                s.store_value(Buffer::Wgt, at, dense[r * cols + c]);
                s.bytes_mut(Buffer::Idx)[at] = (pos % m) as u8;
                written += 1;
            }
        }
    }
    if let Some(at) = p.mask {
        s.bytes_mut(Buffer::Mask)[at as usize..at as usize + rows * cols].copy_from_slice(&mask);
    }
}
