//! The weight-update vector engine (WUVE): FP32 SGD with momentum, weight decay and the
//! SR-STE decay term, one element per lane per cycle.
//!
//! Per element, with `[lr, mu, wd, lambda]` read from the master buffer and one FP32 rounding
//! per operation in this order:
//! `g = grad + wd*w`; if the SR-STE term is on and the forward mask is 0, `g = g + lambda*w`;
//! `v = mu*v + g`; `w = w - lr*v`. This is PyTorch's SGD (no dampening, no Nesterov) on the
//! SR-STE gradient. **Cycles:** `ceil(count / lanes) + pipeline_latency + 2 + j`: two to start
//! reading (the instruction's fields are registered, then the buffers read synchronously), as
//! the RTL's WUVE sequencer does (`hw/src/rtl/sequencers.rs`); the write-back of an element ends
//! its pipeline. Each cycle writes a run of new weights and one of new momenta into `master`;
//! the momenta are written `j = ArchConfig::wuve_momentum_delay` (0 to 2) cycles late, so
//! that the two runs never share a bank of `master`.

use crate::scratchpad::Scratchpads;
use crate::stats::Cost;
use satkit_hw::isa::Buffer;
use satkit_hw::ArchConfig;

/// An update as an instruction gives it.
#[derive(Debug, Clone, Copy)]
pub struct Update {
    /// Elements.
    pub count: u64,
    /// Master weights in `master`.
    pub weight: u64,
    /// Momentum in `master`.
    pub momentum: u64,
    /// Gradient in `acc`.
    pub grad: u64,
    /// Forward mask in `mask`, when the SR-STE term is on.
    pub mask: Option<u64>,
    /// Hyperparameters in `master`.
    pub hyper: u64,
}

/// Cost of an update.
pub fn cost(arch: &ArchConfig, u: &Update) -> Cost {
    let mut cost = Cost {
        cycles: u.count.div_ceil(u64::from(arch.wuve.lanes))
            + u64::from(arch.wuve.pipeline_latency)
            + 2
            + if u.count == 0 { 0 } else { arch.wuve_momentum_delay(u.weight, u.momentum) },
        elements: u.count,
        ..Cost::default()
    };
    cost.sram.read(Buffer::Master, u.count * 8 + 16);
    cost.sram.write(Buffer::Master, u.count * 8);
    cost.sram.read(Buffer::Acc, u.count * 4);
    if u.mask.is_some() {
        cost.sram.read(Buffer::Mask, u.count);
    }
    cost
}

/// Performs the update on the buffers.
pub fn execute(s: &mut Scratchpads, u: &Update) {
    let h = u.hyper as usize;
    let hyper: Vec<f32> = s.values(Buffer::Master)[h..h + 4].to_vec();
    let (lr, mu, wd, lambda) = (hyper[0], hyper[1], hyper[2], hyper[3]);
    for i in 0..u.count as usize {
        let grad = s.values(Buffer::Acc)[u.grad as usize + i];
        let pruned = u.mask.is_some_and(|m| s.bytes(Buffer::Mask)[m as usize + i] == 0);
        let master = s.values_mut(Buffer::Master);
        let (wi, vi) = (u.weight as usize + i, u.momentum as usize + i);
        let w = master[wi];
        let mut g = grad + wd * w;
        if pruned {
            g += lambda * w;
        }
        let v = mu * master[vi] + g;
        master[vi] = v;
        master[wi] = w - lr * v;
    }
}
