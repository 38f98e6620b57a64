//! On-chip buffers: storage, bounds checks and access counters.
//!
//! Each [`Buffer`] is an array of elements of its own type. `act` and `wgt` store operand
//! values (kept as `f32` that are exactly representable in the operand type: writes round),
//! `acc` and `master` store FP32, and the `idx` and `mask` planes store one byte per element,
//! parallel to `wgt` and `master`. Capacities come from the architecture description. Storage
//! is allocated only in functional mode; bounds are checked in both modes. Banking is not
//! modelled as a source of conflicts: the compiler's contiguous layouts stream every bank at
//! full width, and the array is fed one operand row per cycle.

use crate::numerics::round_operand;
use satkit_hw::isa::Buffer;
use satkit_hw::{ArchConfig, DataType};

/// All on-chip buffers of one machine.
#[derive(Debug, Clone)]
pub struct Scratchpads {
    operand: DataType,
    capacity: [u64; 6],
    values: [Vec<f32>; 6],
    bytes: [Vec<u8>; 6],
}

/// True for the byte planes (`idx`, `mask`).
pub fn is_byte_plane(buffer: Buffer) -> bool {
    matches!(buffer, Buffer::Idx | Buffer::Mask)
}

impl Scratchpads {
    /// Buffers sized by `arch`; storage allocated only when `functional`.
    pub fn new(arch: &ArchConfig, functional: bool) -> Self {
        let mut capacity = [0; 6];
        let mut values: [Vec<f32>; 6] = Default::default();
        let mut bytes: [Vec<u8>; 6] = Default::default();
        for &b in Buffer::ALL {
            let i = b as usize;
            capacity[i] = arch.buffer_elements(b);
            if functional {
                if is_byte_plane(b) {
                    bytes[i] = vec![0; capacity[i] as usize];
                } else {
                    values[i] = vec![0.0; capacity[i] as usize];
                }
            }
        }
        Scratchpads { operand: arch.precision.operand, capacity, values, bytes }
    }

    /// Capacity of a buffer in elements.
    pub fn capacity(&self, buffer: Buffer) -> u64 {
        self.capacity[buffer as usize]
    }

    /// Checks that `len` elements from `addr` lie inside `buffer`; the message names both.
    pub fn check(&self, buffer: Buffer, addr: u64, len: u64) -> Result<(), String> {
        let cap = self.capacity(buffer);
        if addr.checked_add(len).is_none_or(|end| end > cap) {
            return Err(format!("{} elements at {buffer} address {addr} overflow the buffer ({cap} elements)", len));
        }
        Ok(())
    }

    /// Element type stored by a value buffer.
    pub fn value_type(&self, buffer: Buffer) -> DataType {
        match buffer {
            Buffer::Act | Buffer::Wgt => self.operand,
            _ => DataType::Fp32,
        }
    }

    /// A value buffer's elements.
    pub fn values(&self, buffer: Buffer) -> &[f32] {
        &self.values[buffer as usize]
    }

    /// A value buffer's elements, mutable. Callers must store values through
    /// [`Scratchpads::store_value`] or round them themselves.
    pub fn values_mut(&mut self, buffer: Buffer) -> &mut [f32] {
        &mut self.values[buffer as usize]
    }

    /// A byte plane's elements.
    pub fn bytes(&self, buffer: Buffer) -> &[u8] {
        &self.bytes[buffer as usize]
    }

    /// A byte plane's elements, mutable.
    pub fn bytes_mut(&mut self, buffer: Buffer) -> &mut [u8] {
        &mut self.bytes[buffer as usize]
    }

    /// Reads one element as FP32 (byte planes read as their integer value).
    pub fn read(&self, buffer: Buffer, addr: usize) -> f32 {
        if is_byte_plane(buffer) {
            f32::from(self.bytes[buffer as usize][addr])
        } else {
            self.values[buffer as usize][addr]
        }
    }

    /// Writes one element, rounding to the buffer's type (byte planes take the value as an
    /// integer, saturated to 0..=255).
    pub fn store_value(&mut self, buffer: Buffer, addr: usize, value: f32) {
        if is_byte_plane(buffer) {
            self.bytes[buffer as usize][addr] = value.clamp(0.0, 255.0) as u8;
        } else {
            let t = self.value_type(buffer);
            self.values[buffer as usize][addr] = round_operand(value, t);
        }
    }
}
