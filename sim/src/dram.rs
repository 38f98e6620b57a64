//! Off-chip DRAM: byte storage for the functional model and the timing of transfers.
//!
//! Timing (exact, per transfer): every row of a 2-D transfer is cut into the bursts it touches
//! (`burst_bytes`, aligned); bursts interleave over the channels, so a transfer of `B` bursts
//! occupies the shared data bus for `ceil(ceil(B / channels) * burst_bytes / bytes_per_cycle)`
//! cycles, where `bytes_per_cycle` is one channel's bandwidth per core cycle. Its data phase
//! starts `latency` cycles after the request, or later if another transfer (load or store)
//! still holds the bus: transfers are served in the order they are requested. Refresh, bank
//! conflicts and read/write turnaround are not modelled.

use std::collections::HashMap;

const PAGE: u64 = 1 << 16;

/// Simulated DRAM contents, allocated lazily in 64 KiB pages; unwritten bytes read as zero.
#[derive(Debug, Clone, Default)]
pub struct DramStorage {
    pages: HashMap<u64, Box<[u8]>>,
}

impl DramStorage {
    /// Reads `out.len()` bytes from `addr`.
    pub fn read(&self, mut addr: u64, out: &mut [u8]) {
        let mut done = 0;
        while done < out.len() {
            let (page, offset) = (addr / PAGE, (addr % PAGE) as usize);
            let n = (PAGE as usize - offset).min(out.len() - done);
            match self.pages.get(&page) {
                Some(p) => out[done..done + n].copy_from_slice(&p[offset..offset + n]),
                None => out[done..done + n].fill(0),
            }
            done += n;
            addr += n as u64;
        }
    }

    /// Writes `data` at `addr`.
    pub fn write(&mut self, mut addr: u64, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let (page, offset) = (addr / PAGE, (addr % PAGE) as usize);
            let n = (PAGE as usize - offset).min(data.len() - done);
            let p = self.pages.entry(page).or_insert_with(|| vec![0u8; PAGE as usize].into_boxed_slice());
            p[offset..offset + n].copy_from_slice(&data[done..done + n]);
            done += n;
            addr += n as u64;
        }
    }
}

/// Geometry of a 2-D transfer in DRAM, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct TransferShape {
    /// Byte address of element (0, 0).
    pub base: u64,
    /// Rows.
    pub rows: u64,
    /// Elements per row.
    pub cols: u64,
    /// Bytes per element.
    pub element_bytes: u64,
    /// Bytes between rows.
    pub row_stride: u64,
    /// Bytes between elements of a row.
    pub col_stride: u64,
}

impl TransferShape {
    /// Bursts of `burst` bytes the transfer touches (each row counted on its own).
    pub fn bursts(&self, burst: u64) -> u64 {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        let per_row = |row: u64| {
            let first = self.base + row * self.row_stride;
            if self.col_stride >= burst {
                // Every element sits in its own burst (each is at most `burst` bytes wide
                // when element_bytes <= burst, which holds for every buffer type).
                self.cols * self.element_bytes.div_ceil(burst)
            } else {
                let last = first + (self.cols - 1) * self.col_stride + self.element_bytes - 1;
                last / burst - first / burst + 1
            }
        };
        // A row's count depends only on its first byte modulo `burst`, which repeats every
        // `period` rows: count one period, then scale.
        let period = burst / gcd(self.row_stride % burst, burst);
        let in_period = |rows: u64| (0..rows).map(per_row).sum::<u64>();
        let (full, rest) = (self.rows / period, self.rows % period);
        full * in_period(period.min(self.rows)) + in_period(rest)
    }

    /// Last byte touched plus one.
    pub fn end(&self) -> u64 {
        if self.rows == 0 || self.cols == 0 {
            return self.base;
        }
        self.base + (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + self.element_bytes
    }
}

/// Greatest common divisor (`gcd(0, b) = b`).
fn gcd(a: u64, b: u64) -> u64 {
    if a == 0 {
        b
    } else {
        gcd(b % a, a)
    }
}

/// Timing of a transfer on the DRAM bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferTiming {
    /// Cycle the transfer completes.
    pub end: u64,
    /// Cycles waiting for the first data (latency).
    pub latency: u64,
    /// Cycles waiting for another transfer to release the bus.
    pub contention: u64,
    /// Cycles moving data.
    pub data: u64,
    /// Bytes moved over the bus (whole bursts).
    pub bytes: u64,
}

/// The shared DRAM data bus.
#[derive(Debug, Clone)]
pub struct DramBus {
    channels: u64,
    burst: u64,
    bytes_per_cycle: f64,
    latency: u64,
    free_at: u64,
}

impl DramBus {
    /// A bus for `arch`'s DRAM.
    pub fn new(arch: &satkit_hw::ArchConfig) -> Self {
        DramBus {
            channels: u64::from(arch.dram.channels),
            burst: u64::from(arch.dram.burst_bytes),
            bytes_per_cycle: arch.dram_bytes_per_cycle_per_channel(),
            latency: arch.dram_latency_cycles(),
            free_at: 0,
        }
    }

    /// Cycles the bus is busy moving `bursts` bursts.
    pub fn data_cycles(&self, bursts: u64) -> u64 {
        let per_channel = bursts.div_ceil(self.channels);
        ((per_channel * self.burst) as f64 / self.bytes_per_cycle).ceil() as u64
    }

    /// Schedules a transfer requested at cycle `start`.
    pub fn transfer(&mut self, start: u64, shape: &TransferShape) -> TransferTiming {
        let bursts = shape.bursts(self.burst);
        if bursts == 0 {
            return TransferTiming { end: start, latency: 0, contention: 0, data: 0, bytes: 0 };
        }
        let ready = start + self.latency;
        let data_start = ready.max(self.free_at);
        let data = self.data_cycles(bursts);
        self.free_at = data_start + data;
        TransferTiming {
            end: self.free_at,
            latency: self.latency,
            contention: data_start - ready,
            data,
            bytes: bursts * self.burst,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_spans_pages() {
        let mut d = DramStorage::default();
        let data: Vec<u8> = (0..200u8).collect();
        d.write(PAGE - 100, &data);
        let mut back = vec![0; 200];
        d.read(PAGE - 100, &mut back);
        assert_eq!(back, data);
        let mut zeros = [1u8; 4];
        d.read(10 * PAGE, &mut zeros);
        assert_eq!(zeros, [0; 4]);
    }

    #[test]
    fn bursts_per_period_equal_the_row_by_row_count() {
        for (base, rows, cols, row_stride, col_stride, elem) in
            [(2, 1000, 7, 6, 2, 2), (0, 999, 3, 100, 4, 4), (62, 77, 40, 64, 2, 2), (5, 300, 1, 24, 1, 1), (0, 5, 9, 0, 2, 2)]
        {
            let s = TransferShape { base, rows, cols, element_bytes: elem, row_stride, col_stride };
            let naive: u64 = (0..rows).map(|r| TransferShape { base: base + r * row_stride, rows: 1, ..s }.bursts(64)).sum();
            assert_eq!(s.bursts(64), naive, "{s:?}");
        }
    }

    #[test]
    fn bursts_by_layout() {
        let s = |base, cols, col_stride| TransferShape { base, rows: 1, cols, element_bytes: 2, row_stride: 0, col_stride };
        assert_eq!(s(0, 32, 2).bursts(64), 1);
        assert_eq!(s(2, 32, 2).bursts(64), 2);
        assert_eq!(s(0, 32, 4).bursts(64), 2);
        assert_eq!(s(0, 4, 128).bursts(64), 4);
    }
}
