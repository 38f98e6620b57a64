//! The sparse online reduction engine (SORE): N:M pruning of dense FP32 weights.
//!
//! Each lane streams one group of `M` elements, one element per cycle, inserting it into a
//! top-N register stack (the mask rule of `satkit_hw::nm`: largest magnitude, ties to the
//! earlier index), and writes the group's N kept values (rounded to the operand type, in
//! increasing index order) with their in-group indices. A round gives each lane one group; its
//! `M` cycles of reads are followed, two cycles later, by its write-back, while the next round
//! reads (the RTL's SORE sequencer, `hw/src/rtl/sequencers.rs`).
//!
//! FF order reads groups along rows and writes `rows` compressed rows: the lanes take
//! consecutive groups (each cycle's reads lie within `lanes M` consecutive elements, the
//! writes are one run), `ceil(groups / lanes)` rounds. BP order reads groups down columns and
//! writes `cols` compressed rows, the transposed copy for the backward-data GEMM: the lanes
//! take `lanes` adjacent columns and walk their groups down together, `ceil(cols / lanes)
//! rows / M` rounds, so each cycle reads one run of consecutive elements. A BP round's
//! write-back drains one lane's kept values a cycle (and the mask one row of the group a
//! cycle), so the compressed rows, `stored` apart, are never written in one cycle; a round
//! with more active lanes `L'` than `M` waits for its drain: it takes `max(M, L')` cycles.
//!
//! **Cycles:** the rounds' periods (`M` in FF order, `max(M, L')` in BP order) but the last's,
//! plus `M + 2` for the last round's reads (the instruction's fields are registered, then the
//! master buffer reads synchronously), plus its write-back: one cycle in FF order, `max(L',
//! M if the mask is written)` in BP order. FF: `ceil(groups / lanes) M + 3`; an empty prune 3.

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

/// Cycles of a prune (see the module documentation).
pub fn cycles(arch: &ArchConfig, p: &Prune) -> u64 {
    let (lanes, m) = (u64::from(arch.sore.lanes), u64::from(p.ratio.m));
    let groups = p.rows * p.cols / m;
    if groups == 0 {
        return 3;
    }
    match p.order {
        PruneOrder::Ff => groups.div_ceil(lanes) * m + 3,
        PruneOrder::Bp => {
            // Blocks of `lanes` columns (the last one `last_lanes` wide), `rows / M` rounds each.
            let (rounds_per_block, blocks) = (p.rows / m, p.cols.div_ceil(lanes));
            let last_lanes = p.cols - (blocks - 1) * lanes;
            let period = |active: u64| active.max(m);
            let before_last = (blocks - 1) * rounds_per_block * period(lanes) + (rounds_per_block - 1) * period(last_lanes);
            let drain = last_lanes.max(if p.mask.is_some() { m } else { 0 });
            before_last + m + 2 + drain
        }
    }
}

/// Cost of a prune.
pub fn cost(arch: &ArchConfig, p: &Prune) -> Cost {
    let elements = p.rows * p.cols;
    let mut cost = Cost { cycles: cycles(arch, p), elements, ..Cost::default() };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn prune(order: PruneOrder, m: u32, rows: u64, cols: u64, mask: bool) -> Prune {
        let ratio = NmRatio::new(2, m).unwrap();
        Prune { order, ratio, rows, cols, src: 0, dst: 0, mask: mask.then_some(0) }
    }

    #[test]
    fn bp_rounds_wait_for_their_write_back_to_drain() {
        let mut arch = ArchConfig::tiny();
        // FF: 3 x 16 at M = 8 is 6 groups, 2 rounds of 4 lanes: 2 x 8 + 3.
        assert_eq!(cycles(&arch, &prune(PruneOrder::Ff, 8, 3, 16, true)), 19);
        // BP: 16 x 5 at M = 8: columns 0..4 and 4, 2 rounds each. The first three rounds take
        // max(8, 4) and max(8, 1) = 8 cycles, the last reads 8, then 2, then drains its one lane
        // (8 mask rows with the mask): 3 x 8 + 8 + 2 + 1 = 35, or 42.
        assert_eq!(cycles(&arch, &prune(PruneOrder::Bp, 8, 16, 5, false)), 35);
        assert_eq!(cycles(&arch, &prune(PruneOrder::Bp, 8, 16, 5, true)), 42);
        // 8 lanes at M = 4: 8 x 9 has columns 0..8 and 8, 2 rounds each. The full block's rounds
        // take max(4, 8) = 8, the last block's first max(4, 1) = 4; the last reads 4, then 2,
        // then drains 1 lane, or 4 mask rows: 2 x 8 + 4 + 4 + 2 + 1 = 27, or 30.
        arch.sore.lanes = 8;
        assert_eq!(cycles(&arch, &prune(PruneOrder::Bp, 4, 8, 9, false)), 27);
        assert_eq!(cycles(&arch, &prune(PruneOrder::Bp, 4, 8, 9, true)), 30);
        // One full block at M = 4: its last round drains 8 lanes: 8 + 4 + 2 + 8 = 22.
        assert_eq!(cycles(&arch, &prune(PruneOrder::Bp, 4, 8, 8, true)), 22);
        // Empty: 3.
        assert_eq!(cycles(&arch, &prune(PruneOrder::Bp, 4, 0, 8, true)), 3);
    }
}
