//! The sparse online reduction engine (SORE): streaming N:M selection, bit for bit the mask rule
//! of [`crate::nm`] and the timing of `sim::sore`.
//!
//! - [`SoreLane`]: one lane. It consumes one FP32 value per cycle and inserts it into a top-N
//!   register stack ordered by decreasing magnitude, a value going below every kept value of
//!   equal magnitude, so ties go to the earlier index (the streaming form of
//!   `nm::keep_in_group`). After the M-th value of a group it presents the group's kept values
//!   and their in-group indices in increasing index order, and the group's mask.
//!   The kept values and indices leave on packed buses ([`KeptBus`], the PE's `IdxBus`), placed
//!   there by one [`SlotPlacer`] per slot.
//! - [`SoreUnit`]: `arch.sore.lanes` lanes side by side, each taking its own group; [`generate`]
//!   emits it as Verilog.
//!
//! **FF and BP order** are the same lane fed in a different order: the data provider (the
//! master-buffer read side, not generated yet) streams a group's M values in increasing
//! in-group index, reading `w[row][g*M + i]` (along a row) for FF order and `w[g*M + i][col]`
//! (down a column) for BP order, for `i = 0..M`. The lane sees only the stream, so both orders
//! select with the same rule; only the provider's addresses and the write-back row differ.
//!
//! **Magnitude.** The lane compares a 32-bit key: `|x|`'s bits (bits 30..0) plus one, and 0
//! for NaN. For non-NaN values the order of `|x|` is the unsigned order of bits 30..0, so the
//! key orders exactly as `nm` compares `f64::from(|x|)`, `+0` and `-0` tie, and NaN sits below
//! every number (`nm` reads a NaN magnitude as `-inf`).
//!
//! **Timing.** A lane takes one value per cycle and finishes a group in M cycles: the value
//! consumed at the M-th clock edge completes the stack, and during the next cycle `done` is high
//! and the outputs hold the group, for the write-back of the compressed values, indices and
//! mask. That write-back cycle overlaps the first cycle of the lane's next group (the stack
//! registers change only at the edge that ends it), so `ceil(groups / lanes)` groups per lane
//! take `ceil(groups / lanes) * M` cycles plus one for the last write-back: the simulator's
//! `ceil(groups / lanes) * M + 1`.
//!
//! The kept values leave the lane as FP32; rounding them to the operand type is the weight
//! buffer's write port's job (`sim::scratchpad::Scratchpads::store_value`), not the lane's.

use super::pe::{IdxBus, WGT_BUS_LANES};
use super::verilog::deduplicate;
use super::RtlDesign;
use crate::{ArchConfig, Error};
use rust_hdl::prelude::*;

/// Mask bits of the lane's mask output: the largest group (M) an N:M ratio may use.
pub const MASK_BITS: usize = 16;

/// The kept-value bus: [`WGT_BUS_LANES`] binary32 values (the largest `array.n_max`), slot `r`
/// in bits `32r..32r+32`. Its index companion is the PE's [`IdxBus`] (4 bits per slot).
pub type KeptBus = Bits<{ 32 * WGT_BUS_LANES }>;

/// Places one kept value and its index at slot `slot` of the [`KeptBus`] and the [`IdxBus`]
/// (zero elsewhere), so a lane can OR its ranks onto the buses. (Buses rather than vectors of
/// signals because rust-hdl 0.46 emits broken Verilog for `unit.lane[l].output[r]`: it resolves
/// only the first index.)
#[derive(LogicBlock, Default)]
pub struct SlotPlacer {
    /// The value, binary32 bits.
    pub value: Signal<In, Bits<32>>,
    /// Its in-group index.
    pub index: Signal<In, Bits<4>>,
    /// The bus slot to place them at.
    pub slot: Signal<In, Bits<4>>,
    /// `value` at bits `32 slot..32 slot + 32`.
    pub value_on_bus: Signal<Out, KeptBus>,
    /// `index` at bits `4 slot..4 slot + 4`.
    pub index_on_bus: Signal<Out, IdxBus>,
    value_shift: Signal<Local, Bits<16>>,
    index_shift: Signal<Local, Bits<16>>,
}

impl Logic for SlotPlacer {
    #[hdl_gen]
    fn update(&mut self) {
        self.value_shift.next = bit_cast::<16, 4>(self.slot.val()) << 5;
        self.index_shift.next = bit_cast::<16, 4>(self.slot.val()) << 2;
        self.value_on_bus.next = bit_cast::<{ 32 * WGT_BUS_LANES }, 32>(self.value.val()) << self.value_shift.val();
        self.index_on_bus.next = bit_cast::<{ 4 * WGT_BUS_LANES }, 4>(self.index.val()) << self.index_shift.val();
    }
}

/// One SORE lane: streaming top-N selection over groups of M (see the module documentation).
///
/// The stack has `array.n_max` slots (the largest N the engine runs); a prune with a smaller N
/// uses the first N. Inputs `keep` (N) and `group_size` (M) must be held while the prune's
/// values stream in; the outputs depend only on the lane's registers, so the next prune may
/// start (with another N and M) in the write-back cycle of the previous one.
#[derive(LogicBlock)]
pub struct SoreLane {
    /// Core clock.
    pub clock: Signal<In, Clock>,
    // Configuration of the prune
    /// Values kept per group (N), between 1 and `array.n_max`.
    pub keep: Signal<In, Bits<4>>,
    /// Group size (M), between `keep` and 16.
    pub group_size: Signal<In, Bits<5>>,
    // The stream
    /// High when `value` is the first value of a prune: it restarts the in-group count.
    pub start: Signal<In, Bit>,
    /// High when `value` holds the next value of the group.
    pub valid: Signal<In, Bit>,
    /// The value, binary32 bits (the dense master weight).
    pub value: Signal<In, Bits<32>>,
    // The group's result
    /// High for the one cycle after a group's last value was consumed: the outputs hold that group.
    pub done: Signal<Out, Bit>,
    /// Kept values in increasing in-group index order; slots beyond the prune's N read 0.
    pub kept_values: Signal<Out, KeptBus>,
    /// In-group index of each kept value; slots beyond the prune's N read 0.
    pub kept_indices: Signal<Out, IdxBus>,
    /// Bit `i` set when element `i` of the group is kept.
    pub mask: Signal<Out, Bits<MASK_BITS>>,
    // Stream position
    position: DFF<Bits<4>>,
    done_reg: DFF<Bit>,
    /// In-group index of `value`: 0 when `start` is high.
    value_index: Signal<Local, Bits<4>>,
    group_start: Signal<Local, Bit>,
    group_end: Signal<Local, Bit>,
    value_key: Signal<Local, Bits<32>>,
    // The stack, slot 0 the largest magnitude
    slot_value: Vec<DFF<Bits<32>>>,
    slot_index: Vec<DFF<Bits<4>>>,
    slot_occupied: Vec<DFF<Bit>>,
    slot_key: Vec<Signal<Local, Bits<32>>>,
    /// Slot holds an element of the group `value` belongs to.
    slot_live: Vec<Signal<Local, Bit>>,
    /// Slot is empty or holds a strictly smaller magnitude than `value`.
    slot_below: Vec<Signal<Local, Bit>>,
    // Output ordering: the rank of a kept slot is the number of kept elements with a smaller index.
    /// `mask_chain[j]`: the mask of slots `0..j`.
    mask_chain: Vec<Signal<Local, Bits<MASK_BITS>>>,
    /// `kept_before[i]`: kept elements with in-group index below `i`.
    kept_before: Vec<Signal<Local, Bits<5>>>,
    slot_rank: Vec<Signal<Local, Bits<5>>>,
    /// `ordered_value[r]`: the kept value of rank `r`.
    ordered_value: Vec<Signal<Local, Bits<32>>>,
    ordered_index: Vec<Signal<Local, Bits<4>>>,
    placer: Vec<SlotPlacer>,
    /// `values_chain[r]`: the bus with ranks `0..r` placed.
    values_chain: Vec<Signal<Local, KeptBus>>,
    indices_chain: Vec<Signal<Local, IdxBus>>,
    // Sizes from the ArchConfig (not signals)
    _slots: usize,
}

impl SoreLane {
    /// A lane of `arch`: a stack of `array.n_max` slots.
    pub fn new(arch: &ArchConfig) -> SoreLane {
        let slots = arch.array.n_max as usize;
        SoreLane {
            clock: Default::default(),
            keep: Default::default(),
            group_size: Default::default(),
            start: Default::default(),
            valid: Default::default(),
            value: Default::default(),
            done: Default::default(),
            kept_values: Default::default(),
            kept_indices: Default::default(),
            mask: Default::default(),
            position: Default::default(),
            done_reg: Default::default(),
            value_index: Default::default(),
            group_start: Default::default(),
            group_end: Default::default(),
            value_key: Default::default(),
            slot_value: (0..slots).map(|_| DFF::default()).collect(),
            slot_index: (0..slots).map(|_| DFF::default()).collect(),
            slot_occupied: (0..slots).map(|_| DFF::default()).collect(),
            slot_key: (0..slots).map(|_| Signal::default()).collect(),
            slot_live: (0..slots).map(|_| Signal::default()).collect(),
            slot_below: (0..slots).map(|_| Signal::default()).collect(),
            mask_chain: (0..=slots).map(|_| Signal::default()).collect(),
            kept_before: (0..MASK_BITS).map(|_| Signal::default()).collect(),
            slot_rank: (0..slots).map(|_| Signal::default()).collect(),
            ordered_value: (0..slots).map(|_| Signal::default()).collect(),
            ordered_index: (0..slots).map(|_| Signal::default()).collect(),
            placer: (0..slots).map(|_| SlotPlacer::default()).collect(),
            values_chain: (0..=slots).map(|_| Signal::default()).collect(),
            indices_chain: (0..=slots).map(|_| Signal::default()).collect(),
            _slots: slots,
        }
    }
}

impl Logic for SoreLane {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, position, done_reg);
        for j in 0..self._slots {
            self.slot_value[j].clock.next = self.clock.val();
            self.slot_index[j].clock.next = self.clock.val();
            self.slot_occupied[j].clock.next = self.clock.val();
            self.slot_value[j].d.next = self.slot_value[j].q.val();
            self.slot_index[j].d.next = self.slot_index[j].q.val();
            self.slot_occupied[j].d.next = self.slot_occupied[j].q.val();
        }
        // Stream position
        if self.start.val() {
            self.value_index.next = 0.into();
        } else {
            self.value_index.next = self.position.q.val();
        }
        self.group_start.next = self.value_index.val() == 0;
        self.group_end.next = (bit_cast::<5, 4>(self.value_index.val()) + 1) == self.group_size.val();
        if self.valid.val() {
            if self.group_end.val() {
                self.position.d.next = 0.into();
            } else {
                self.position.d.next = self.value_index.val() + 1;
            }
        } else if self.start.val() {
            self.position.d.next = 0.into();
        }
        self.done_reg.d.next = self.valid.val() && self.group_end.val();
        self.done.next = self.done_reg.q.val();
        // Magnitude keys: |x| + 1, NaN 0.
        if (self.value.val().get_bits::<8>(23) == 0xff) && (self.value.val().get_bits::<23>(0) != 0) {
            self.value_key.next = 0.into();
        } else {
            self.value_key.next = (self.value.val() & 0x7fff_ffff_u64) + 1;
        }
        for j in 0..self._slots {
            if (self.slot_value[j].q.val().get_bits::<8>(23) == 0xff) && (self.slot_value[j].q.val().get_bits::<23>(0) != 0) {
                self.slot_key[j].next = 0.into();
            } else {
                self.slot_key[j].next = (self.slot_value[j].q.val() & 0x7fff_ffff_u64) + 1;
            }
            self.slot_live[j].next = self.slot_occupied[j].q.val() && !self.group_start.val();
            self.slot_below[j].next = !self.slot_live[j].val() || (self.slot_key[j].val() < self.value_key.val());
        }
        // Insertion: the first slot below the value takes it, the slots under it move down one,
        // the last of the N drops out; a value below all N slots is dropped.
        if self.valid.val() && self.slot_below[0].val() {
            self.slot_value[0].d.next = self.value.val();
            self.slot_index[0].d.next = self.value_index.val();
            self.slot_occupied[0].d.next = true;
        }
        for j in 1..self._slots {
            if self.valid.val() && self.slot_below[j].val() && (self.keep.val() > j.to_bits()) {
                if self.slot_below[j - 1].val() {
                    self.slot_value[j].d.next = self.slot_value[j - 1].q.val();
                    self.slot_index[j].d.next = self.slot_index[j - 1].q.val();
                    self.slot_occupied[j].d.next = self.slot_live[j - 1].val();
                } else {
                    self.slot_value[j].d.next = self.value.val();
                    self.slot_index[j].d.next = self.value_index.val();
                    self.slot_occupied[j].d.next = true;
                }
            } else if self.valid.val() && self.group_start.val() {
                // Slots at and above N empty at each group's start (N may have shrunk).
                self.slot_occupied[j].d.next = false;
            }
        }
        // The group's mask, then each kept slot's rank among the kept indices.
        self.mask_chain[0].next = 0.into();
        for j in 0..self._slots {
            if self.slot_occupied[j].q.val() {
                self.mask_chain[j + 1].next = self.mask_chain[j].val().replace_bit(self.slot_index[j].q.val().index(), true);
            } else {
                self.mask_chain[j + 1].next = self.mask_chain[j].val();
            }
        }
        for last in self._slots..(self._slots + 1usize) {
            self.mask.next = self.mask_chain[last].val();
        }
        self.kept_before[0].next = 0.into();
        for i in 1..MASK_BITS {
            if self.mask.val().get_bit(i - 1) {
                self.kept_before[i].next = self.kept_before[i - 1].val() + 1;
            } else {
                self.kept_before[i].next = self.kept_before[i - 1].val();
            }
        }
        for j in 0..self._slots {
            self.slot_rank[j].next = 0.into();
            for i in 0..MASK_BITS {
                if self.slot_index[j].q.val() == i.to_bits() {
                    self.slot_rank[j].next = self.kept_before[i].val();
                }
            }
        }
        for r in 0..self._slots {
            self.ordered_value[r].next = 0.into();
            self.ordered_index[r].next = 0.into();
            for j in 0..self._slots {
                if self.slot_occupied[j].q.val() && (self.slot_rank[j].val() == r.to_bits()) {
                    self.ordered_value[r].next = self.slot_value[j].q.val();
                    self.ordered_index[r].next = self.slot_index[j].q.val();
                }
            }
        }
        // Onto the buses: each rank placed at its slot, OR-ed together.
        self.values_chain[0].next = 0.into();
        self.indices_chain[0].next = 0.into();
        for r in 0..self._slots {
            self.placer[r].slot.next = r.to_bits();
            self.placer[r].value.next = self.ordered_value[r].val();
            self.placer[r].index.next = self.ordered_index[r].val();
            self.values_chain[r + 1].next = self.values_chain[r].val() | self.placer[r].value_on_bus.val();
            self.indices_chain[r + 1].next = self.indices_chain[r].val() | self.placer[r].index_on_bus.val();
        }
        for last in self._slots..(self._slots + 1usize) {
            self.kept_values.next = self.values_chain[last].val();
            self.kept_indices.next = self.indices_chain[last].val();
        }
    }
}

/// Name of the top Verilog module of [`generate`].
pub const TOP_MODULE: &str = "sat_sore";

/// The SORE: `arch.sore.lanes` [`SoreLane`]s sharing the prune's configuration, each streaming
/// its own group (lane `l` takes groups `l`, `l + lanes`, ... of a prune).
///
#[derive(LogicBlock)]
pub struct SoreUnit {
    /// Core clock.
    pub clock: Signal<In, Clock>,
    /// Values kept per group (N), shared by all lanes.
    pub keep: Signal<In, Bits<4>>,
    /// Group size (M), shared by all lanes.
    pub group_size: Signal<In, Bits<5>>,
    /// Restarts every lane's in-group count (the first cycle of a prune).
    pub start: Signal<In, Bit>,
    /// Per lane: a value is present.
    pub valid: Vec<Signal<In, Bit>>,
    /// Per lane: the value, binary32 bits.
    pub value: Vec<Signal<In, Bits<32>>>,
    /// Per lane: the outputs hold a finished group.
    pub done: Vec<Signal<Out, Bit>>,
    /// Per lane: kept values in increasing index order.
    pub kept_values: Vec<Signal<Out, KeptBus>>,
    /// Per lane: their in-group indices.
    pub kept_indices: Vec<Signal<Out, IdxBus>>,
    /// Per lane: the group's mask.
    pub mask: Vec<Signal<Out, Bits<MASK_BITS>>>,
    sore_lane: Vec<SoreLane>,
    // Sizes from the ArchConfig (not signals)
    _lanes: usize,
}

impl SoreUnit {
    /// The SORE of `arch`: `sore.lanes` lanes of `array.n_max` slots.
    pub fn new(arch: &ArchConfig) -> SoreUnit {
        let lanes = arch.sore.lanes as usize;
        SoreUnit {
            clock: Default::default(),
            keep: Default::default(),
            group_size: Default::default(),
            start: Default::default(),
            valid: (0..lanes).map(|_| Signal::default()).collect(),
            value: (0..lanes).map(|_| Signal::default()).collect(),
            done: (0..lanes).map(|_| Signal::default()).collect(),
            kept_values: (0..lanes).map(|_| Signal::default()).collect(),
            kept_indices: (0..lanes).map(|_| Signal::default()).collect(),
            mask: (0..lanes).map(|_| Signal::default()).collect(),
            sore_lane: (0..lanes).map(|_| SoreLane::new(arch)).collect(),
            _lanes: lanes,
        }
    }
}

impl Logic for SoreUnit {
    #[hdl_gen]
    fn update(&mut self) {
        for l in 0..self._lanes {
            self.sore_lane[l].clock.next = self.clock.val();
            self.sore_lane[l].keep.next = self.keep.val();
            self.sore_lane[l].group_size.next = self.group_size.val();
            self.sore_lane[l].start.next = self.start.val();
            self.sore_lane[l].valid.next = self.valid[l].val();
            self.sore_lane[l].value.next = self.value[l].val();
            self.done[l].next = self.sore_lane[l].done.val();
            self.mask[l].next = self.sore_lane[l].mask.val();
            self.kept_values[l].next = self.sore_lane[l].kept_values.val();
            self.kept_indices[l].next = self.sore_lane[l].kept_indices.val();
        }
    }
}

/// Generates the SORE of `arch` as one Verilog file, top module [`TOP_MODULE`].
pub fn generate(arch: &ArchConfig) -> Result<RtlDesign, Error> {
    arch.validate()?;
    let mut top = SoreUnit::new(arch);
    top.connect_all();
    check_all(&top).map_err(|e| Error::RtlCheck { arch: arch.name.clone(), message: format!("{e:?}") })?;
    deduplicate(&generate_verilog_unchecked(&top), TOP_MODULE)
}
