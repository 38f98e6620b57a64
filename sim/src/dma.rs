//! The DMA engines: `load` (DRAM to buffer) and `store` (buffer to DRAM) of 2-D blocks.
//!
//! Element `(r, c)` of a transfer lives at DRAM byte `dram + (r * dram_row_stride +
//! c * dram_col_stride) * e` (with `e` the element's DRAM size: 2 bytes for FP16 operands, 4
//! for FP32, 1 for indices and masks, little-endian) and at buffer element
//! `sram + r * sram_row_stride + c`. Timing comes from [`crate::dram::DramBus`]: the load and
//! store units share one bus, so their transfers serialize. A transfer ends when both the DRAM
//! and its element stream on the buffer side have finished
//! ([`satkit_hw::ArchConfig::dma_stream_cycles`]: rows that are not back to back in the buffer
//! move only as many a cycle as fall on distinct banks, so short rows far apart can make the
//! stream the longer of the two).

use crate::dram::{DramBus, DramStorage, TransferShape};
use crate::scratchpad::{is_byte_plane, Scratchpads};
use crate::stats::{Cost, Stalls};
use satkit_hw::isa::Buffer;
use satkit_hw::{ArchConfig, DataType};

/// A 2-D transfer as an instruction gives it.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// On-chip buffer.
    pub buf: Buffer,
    /// First buffer element.
    pub sram: u64,
    /// DRAM byte address.
    pub dram: u64,
    /// Rows.
    pub rows: u64,
    /// Elements per row.
    pub cols: u64,
    /// DRAM elements between rows.
    pub dram_row_stride: u64,
    /// DRAM elements between columns.
    pub dram_col_stride: u64,
    /// Buffer elements between rows.
    pub sram_row_stride: u64,
}

impl Transfer {
    fn shape(&self, e: u64) -> TransferShape {
        TransferShape {
            base: self.dram,
            rows: self.rows,
            cols: self.cols,
            element_bytes: e,
            row_stride: self.dram_row_stride * e,
            col_stride: self.dram_col_stride * e,
        }
    }

    /// Checks the DRAM range (the machine checks the buffer's, `Op::operands`).
    pub fn check(&self, arch: &ArchConfig) -> Result<(), String> {
        if self.rows == 0 || self.cols == 0 {
            return Ok(());
        }
        let end = self.shape(arch.dram_element_bytes(self.buf)).end();
        if end > arch.dram_bytes() {
            return Err(format!(
                "DRAM bytes {:#x}..{end:#x} reach beyond the DRAM capacity of {:#x} bytes",
                self.dram,
                arch.dram_bytes()
            ));
        }
        Ok(())
    }
}

fn decode_element(bytes: &[u8], buf: Buffer, operand: DataType) -> f32 {
    match (is_byte_plane(buf), bytes.len(), operand) {
        (true, _, _) => f32::from(bytes[0]),
        (false, 2, _) => half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32(),
        _ => f32::from_le_bytes(bytes.try_into().expect("4-byte element")),
    }
}

fn encode_element(value: f32, e: usize, out: &mut [u8]) {
    match e {
        1 => out[0] = value as u8,
        2 => out.copy_from_slice(&half::f16::from_f32(value).to_le_bytes()),
        _ => out.copy_from_slice(&value.to_le_bytes()),
    }
}

/// Runs a transfer: moves the data when `storage` is given and returns the cost.
pub fn execute(
    arch: &ArchConfig,
    t: &Transfer,
    is_load: bool,
    start: u64,
    bus: &mut DramBus,
    s: &mut Scratchpads,
    storage: Option<&mut DramStorage>,
) -> Cost {
    let e = arch.dram_element_bytes(t.buf);
    if let Some(dram) = storage {
        let mut element = vec![0u8; e as usize];
        for r in 0..t.rows {
            for c in 0..t.cols {
                let byte = t.dram + (r * t.dram_row_stride + c * t.dram_col_stride) * e;
                let addr = (t.sram + r * t.sram_row_stride + c) as usize;
                if is_load {
                    dram.read(byte, &mut element);
                    s.store_value(t.buf, addr, decode_element(&element, t.buf, arch.precision.operand));
                } else {
                    encode_element(s.read(t.buf, addr), e as usize, &mut element);
                    dram.write(byte, &element);
                }
            }
        }
    }
    let timing = bus.transfer(start, &t.shape(e));
    let on_chip_bytes = t.rows * t.cols * if is_byte_plane(t.buf) { 1 } else { s.value_type(t.buf).bytes() };
    // The element stream starts the cycle after the issue; a store's last bytes leave a cycle
    // after their (synchronous) buffer read.
    let stream = match t.rows * t.cols {
        0 => 0,
        _ => arch.dma_stream_cycles(t.rows, t.cols, t.sram_row_stride) + if is_load { 1 } else { 2 },
    };
    let mut cost = Cost {
        cycles: (timing.end - start).max(1).max(stream),
        stalls: Stalls { dram_latency: timing.latency, dram_contention: timing.contention, ..Stalls::default() },
        ..Cost::default()
    };
    if is_load {
        cost.dram_read = timing.bytes;
        cost.sram.write(t.buf, on_chip_bytes);
    } else {
        cost.dram_write = timing.bytes;
        cost.sram.read(t.buf, on_chip_bytes);
    }
    cost
}
