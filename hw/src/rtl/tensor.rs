//! The tensor unit as RTL: the `gemm` instruction's operand sequencer around the PE array
//! ([`super::array`]), and the on-chip buffers it reads and writes, cycle for cycle and bit for
//! bit the simulator's `pe_array` (output stationary with interleave `1 <= I <= L`, and weight
//! stationary).
//!
//! These blocks are emitted as Verilog-2001 text, every size a `localparam` taken from the
//! [`ArchConfig`] when the text is generated: rust-hdl 0.46 sizes a memory by a const-generic
//! address width, so it cannot build buffers whose capacities come from a description read at
//! run time. The PE array inside stays rust-hdl ([`super::array::PeArray`]).
//!
//! **`sat_tensor_unit`.** Takes the `gemm` word the controller issues (field positions from
//! the ISA table, [`layouts`]). **OS:** runs the GEMM as `F = ceil(rows / R) * ceil(cols /
//! (C I))` folds (row tiles inner, within each block of `C I` columns) and raises `done` for
//! one cycle. A fold's step is `I` sub-steps on consecutive cycles, sub-step `i` on the fold's
//! output columns `i C .. (i + 1) C`, one step every `Q` cycles (`ArchConfig::os_step_period`:
//! `max(I, L)`, and at least `m` with a transposed operand). With `t0` the issue cycle, `S`
//! the reduction steps, `P` the fold period (`ArchConfig::os_fold_period`: `S Q + R + C - 2`,
//! or the weights' fetch windows when longer, see below) and `W` the fill
//! (`ArchConfig::os_fill`: the longer of the input's `min(R, rows)` and the weights' `min(C I,
//! cols)`, `m` for a transposed operand), a fold's cycles count from `t_f = t0 + 1 + W + f P`:
//! - cycle `t_f + s Q + i` presents fold `f`'s step `s`, sub-step `i`: the operands' staging
//!   positions. The array takes it one cycle later (as it took the buffers' data);
//! - cycles `t_f + k` (`k < R`) read row `k` of fold `f`'s initial sums, every slot (the old
//!   outputs when accumulating, else +0);
//! - a flush (`I` sub-steps without data) follows the last fold at `t0 + 1 + W + F P`; each
//!   first step (and the flush) brings the previous fold's sums out, row `k`, every column and
//!   slot, written to the accumulator buffer `C + L - 1 + k` cycles after its first sub-step's
//!   addresses;
//! - `done` is high at `t0 + W + F P + R + C + L`, the cycle after the last write: the
//!   simulator's `folds * P + R + C + L + W` (`sim::pe_array::os_writeback`, `os_fill`).
//!
//! The OS operands reach the array through staging registers, filled from the buffers one run
//! a cycle, so that buffers banked by the low address bits serve them. Each operand's fetches
//! (`sat_tensor_fetch`) run its own fill (`min(R, rows)`, `min(C I, cols)` or `m`) ahead of
//! the steps, on the same fold period. The input has two slots per row of `G m_max` elements,
//! `G = ceil(R / L)` (`ArchConfig::os_fetch_steps`):
//! - untransposed, a group of `G` steps is fetched in the `R' = min(R, rows)` cycles from
//!   `t_f + j G Q - R'`: row `r`'s `G m` consecutive elements (steps `j G .. j G + G`) at
//!   `t_f + j G Q - R' + r`, into that row's slot for the group. The `G Q >= R` cycles of a
//!   group leave room for the next group's fetches before a slot is reused;
//! - transposed (`input_t`), a group is one step: element `e` of step `s` of every row (a run
//!   of `R` across the rows, as a `K x M` input stores them) at `t_f + s Q - m + e`, which
//!   needs `Q >= m`.
//!
//! The weights likewise, per virtual column `v = i C + c` of the fold (array column `c`,
//! sub-step `i`), two slots of `C n_max` elements (values and indices): untransposed, a group
//! of `C` steps is fetched in the `V = min(C I, cols)` cycles from `t_f + j C Q - V`, column
//! `v`'s compressed positions of those steps (or dense elements) at `t_f + j C Q - V + v`, and
//! `C Q >= C I`; transposed (`weight_t`, dense `K x N`), element `e` of step `s` of every
//! column of the fold (a run of `C I`) at `t_f + s Q - m + e`. The weight and index buses
//! therefore have `C max(n_max, L)` lanes ([`ArchConfig::tensor_weight_lanes`]).
//!
//! Slots alternate per group through the folds, so a fold's first fetches never overwrite
//! the previous fold's last group. With more than `C` steps, the next fold's first weight
//! window follows this fold's last one, so a fold lasts at least `(ceil(S / C) - 1) C Q + V`
//! cycles: a fold whose last group is short (fewer than `V / Q` steps, as on `vcu1525` with
//! `C I = 128`) stretches. With at most `C` steps (one group, `reuse`), the row folds of a
//! column block keep the weights its first fold fetched (the weight sequencer takes the
//! block's `ceil(rows / R)` folds as one, and the slot changes with the column block), so
//! those folds last at least `V` cycles together (`ArchConfig::os_fold_period`).
//!
//! **WS** (see [`super::array`]): folds of `R` reduction steps x `C` columns, reduction folds
//! inner, one every `P = WS_OVERHEAD + M'` cycles (`WS_OVERHEAD = R + (R - 1) L + C - 1`,
//! `M'` the streamed rows, `ArchConfig::ws_stream`) from `t0 + 1 + W`, `W` the fill
//! (`ArchConfig::ws_fill`). Relative to a fold's start:
//! - cycles `0 .. R` present the weights of steps `k0 + R - 1` down to `k0` (the bottom row's
//!   first), which the array shifts down while `shift` is high. They come from staging
//!   registers, two slots of `R n_max` elements per column, filled one buffer run a cycle:
//!   untransposed, a column's `R` steps of the fold (`C` fetches); transposed (`weight_t`,
//!   dense), one reduction element of the fold's `C` columns (`R m` fetches). Fold 0's are
//!   fetched in the last cycles of the fill, the next fold's in a fold's first cycles;
//! - cycle `R + m` presents input row `m`'s partial sums for the fold's columns (the old
//!   outputs on the first reduction fold when accumulating, else +0; on later folds what the
//!   previous fold wrote) on the slot-0 initial-value buses, and array row `r` takes row `m`'s
//!   step-`k0 + r` activations as presented at `R + m + r (L - 1)`. Untransposed, cycle `R + m`
//!   reads them for all the fold's steps (one run of `R m` consecutive elements) and row `r`'s
//!   pass `r (L - 1)` delay stages. Transposed (`input_t`, dense: a row's steps lie `rows`
//!   apart), a corner turn: each of the fold's `Q = R n_max` reduction elements has two slots
//!   of `X` rows (`ArchConfig::ws_input_chunk`), and its next `X` rows are one run of the
//!   buffer. A window of `Q` cycles fetches them, element `q` at `R - Q + j X + q` for rows
//!   `j X ..`, so each fold's first window starts before it (the fill covers `Q - R`), and
//!   each array row takes its elements from the slots at its own cycle;
//! - row `m`'s sums reach the slot-0 result buses `R L + L + C - 1` cycles after its partial
//!   sums' addresses (a delay line carries the row and column to that write-back).
//!
//! `done` is high the cycle after the last fold's last write-back, at
//! `t0 + W + (F - 1) P + R + rows + R L + L + C`: the simulator's WS cost. The fold period keeps
//! a reduction fold's partial-sum reads after the previous fold's writes, and the next fold's
//! weight fetches and the transposed input's windows within the fold (`ArchConfig::ws_stream`).
//!
//! Operand addressing follows the ISA module's layouts, including `input_t` and `weight_t`.
//! Rows past `rows` read no activations (their sums are not written), columns past `cols`
//! enable no slot, and a dense step past `depth` (or a sparse one past the steps) disables its
//! slots, as the simulator's numerics add only the products that exist. An instruction the
//! unit cannot run (IS dataflow, OS interleave above `L`, a WS GEMM whose transposed input the
//! corner turn does not take: N:M weights, or runs wider than the input bus) raises
//! `unsupported` and completes
//! without touching the buffers; the host refuses such programs before running them.
//!
//! **`sat_buffer`.** One on-chip buffer: `DEPTH` elements of `WIDTH` bits with `RPORTS`
//! synchronous read ports, each with a read enable, and `WPORTS` write ports (a later port wins
//! on the same address), plus a host port for co-simulation that writes, and reads
//! synchronously like the others (its data a cycle after its address).
//! A read port without its enable keeps its last data, as block RAM does. With the
//! `POISON_UNREAD` parameter (the co-simulation sets it) it returns all ones instead, so a unit
//! that uses data it did not enable computes NaNs and fails the comparison with the simulator.
//! The unit's enables are exactly its lanes' reads: this unit's `ok` lanes (the lanes the array
//! takes), and its initial sums only when it adds to them.
//!
//! The unit gets as many ports as one cycle's operands need (`R m_max` on `act` for the WS
//! input, of which an OS fetch uses the first `max(G m_max, R)`, `C n_max` on `wgt` and `idx`,
//! `C L` reads and writes on `acc`); such a buffer maps to distributed RAM and registers, not
//! block RAM (see the module documentation of [`super`]).
//!
//! The machine ([`super::machine`]) instantiates the unit and the buffers.

use super::array::PeArray;
use super::verilog::deduplicate;
use super::RtlDesign;
use crate::isa::{Buffer, Field, WORD_BITS};
use crate::{ArchConfig, Dataflow, Error};
use rust_hdl::prelude::{check_all, generate_verilog_unchecked, Block};
use std::fmt::Write as _;

/// Name of the operand sequencer module.
pub const UNIT_MODULE: &str = "sat_tensor_unit";
/// Name the PE array takes inside this design.
pub(super) const ARRAY_MODULE: &str = "sat_pe_array";

/// Bits of an address into a buffer of `elements` elements.
pub fn address_bits(elements: u64) -> usize {
    (64 - elements.saturating_sub(1).leading_zeros()).max(1) as usize
}

/// The widest address of any buffer.
pub(super) fn sram_address_bits(arch: &ArchConfig) -> usize {
    Buffer::ALL.iter().map(|&b| address_bits(arch.buffer_elements(b))).max().unwrap_or(1)
}

/// The PE array of `arch` as its own design, its top module named `sat_pe_array`.
pub(super) fn array_design(arch: &ArchConfig) -> Result<RtlDesign, Error> {
    let mut array = PeArray::new(arch);
    array.connect_all();
    check_all(&array).map_err(|e| Error::RtlCheck { arch: arch.name.clone(), message: format!("{e:?}") })?;
    deduplicate(&generate_verilog_unchecked(&array), ARRAY_MODULE)
}

/// Name of the OS operand fetch sequencer module.
pub const FETCH_MODULE: &str = "sat_tensor_fetch";

/// The operand fetch sequencer (three per tensor unit: the OS input and weights, and the
/// transposed WS input).
pub(super) fn fetch_module() -> String {
    format!(
        r#"
// One GEMM operand's fetch sequence (see satkit's hw/src/rtl/tensor.rs): from `lead` cycles
// after the issue, the folds (`fold_rows` of `rows` outer, `fold_cols` of `cols` inner) with
// the fold period; each group of `group_steps` steps opens a window of `group_period` cycles
// whose first `window` cycles fetch (`now`, cycle `in_group` of the window), into slots that
// alternate per group.
module {FETCH_MODULE} (
    input clock,
    input issue,
    input runs,
    input [15:0] lead,
    input [31:0] fold_period,
    input [31:0] group_period,
    input [31:0] window,
    input [15:0] group_steps,
    input [15:0] steps,
    input [15:0] rows,
    input [15:0] cols,
    input [15:0] fold_rows,
    input [15:0] fold_cols,
    output now,
    output reg slot,
    output reg [31:0] in_group,
    output reg [31:0] step,
    output reg [15:0] row0,
    output reg [15:0] col0
);
    reg running;
    reg [15:0] wait_left;
    reg [31:0] phase;
    wire last_fold = row0 + fold_rows >= rows && col0 + fold_cols >= cols;
    assign now = running && wait_left == 0 && step < steps && in_group < window;
    always @(posedge clock) begin
        if (issue) begin
            running <= runs; wait_left <= lead;
            phase <= 0; in_group <= 0; step <= 0; slot <= 0; row0 <= 0; col0 <= 0;
        end else if (running) begin
            if (wait_left != 0) wait_left <= wait_left - 1;
            else if (phase == fold_period - 1) begin
                phase <= 0; in_group <= 0; step <= 0;
                if (step < steps) slot <= ~slot;
                if (last_fold) running <= 0;
                else if (col0 + fold_cols >= cols) begin col0 <= 0; row0 <= row0 + fold_rows; end
                else col0 <= col0 + fold_cols;
            end else begin
                phase <= phase + 1;
                if (in_group == group_period - 1) begin
                    in_group <= 0;
                    if (step < steps) begin slot <= ~slot; step <= step + group_steps; end
                end else in_group <= in_group + 1;
            end
        end
    end
endmodule
"#
    )
}

/// The operand sequencer.
pub(super) fn unit_module(arch: &ArchConfig) -> Result<String, Error> {
    let a = &arch.array;
    let (r, c, l, n_max, m_max) = (a.rows, a.cols, a.accumulator_latency, a.n_max, a.m_max);
    let act_aw = address_bits(arch.buffer_elements(Buffer::Act));
    let wgt_aw = address_bits(arch.buffer_elements(Buffer::Wgt));
    let acc_aw = address_bits(arch.buffer_elements(Buffer::Acc));
    let act_bus = 16 * super::pe::ACT_BUS_LANES;
    let wgt_bus = 16 * super::pe::WGT_BUS_LANES;
    let idx_bus = 4 * super::pe::WGT_BUS_LANES;
    let en_bus = super::pe::WGT_BUS_LANES;
    let wl = arch.tensor_weight_lanes() as usize;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"
// The tensor unit's operand sequencer (see satkit's hw/src/rtl/tensor.rs for the timing).
module {UNIT_MODULE} (
    input clock,
    input issue,
    input [{word_hi}:0] issue_word,
    output reg done,
    output busy,
    output reg unsupported,
    output [{r}*{m_max}-1:0] act_re,
    output [{r}*{m_max}*{act_aw}-1:0] act_raddr,
    input [{r}*{m_max}*16-1:0] act_rdata,
    output [{wl}-1:0] wgt_re,
    output [{wl}-1:0] idx_re,
    output [{wl}*{wgt_aw}-1:0] wgt_raddr,
    input [{wl}*16-1:0] wgt_rdata,
    input [{wl}*8-1:0] idx_rdata,
    output [{c}*{l}-1:0] acc_re,
    output [{c}*{l}*{acc_aw}-1:0] acc_raddr,
    input [{c}*{l}*32-1:0] acc_rdata,
    output [{c}*{l}-1:0] acc_we,
    output [{c}*{l}*{acc_aw}-1:0] acc_waddr,
    output [{c}*{l}*32-1:0] acc_wdata
);
    localparam R = {r}, C = {c}, L = {l}, NMAX = {n_max}, MMAX = {m_max};
    // OS input staging: G steps of a row per fetch, SW elements per slot, FW fetch lanes.
    localparam G = {fetch_steps}, SW = G * MMAX, FW = SW > R ? SW : R;
    // OS weight staging: GW steps of a (virtual) column per fetch, SWW elements per slot, FWW
    // fetch lanes.
    localparam GW = C, SWW = GW * NMAX, FWW = {wl};
    // WS: a row's partial sum leaves the array R L + L + C - 1 cycles after its address (see
    // the module documentation); a fold streams at least WS_MIN_STREAM rows (the accumulator
    // hazard), and lasts WS_OVERHEAD cycles more than it streams.
    localparam WS_DELAY = {ws_delay}, WS_MIN_STREAM = {ws_min_stream}, WS_OVERHEAD = {ws_overhead};
    // WS, transposed input (dense): the fold's Q = R NMAX reduction elements, each staged in two
    // slots of its next X rows, one run a cycle in a window of Q cycles every X rows.
    // (A machine whose runs of X rows are wider than the input bus refuses such GEMMs; its
    // staging then takes the bus's lanes only, XS.)
    localparam Q = R * NMAX, X = {ws_chunk}, XS = X > R * MMAX ? R * MMAX : X;
    // The sizes as the fetch sequencers' port widths.
    wire [15:0] R16 = R, C16 = C, X16 = X;
    wire [31:0] Q32 = Q, X32 = X;
"#,
        word_hi = WORD_BITS - 1,
        ws_delay = r * l + l + c - 1,
        ws_min_stream = arch.ws_hazard_stream(),
        ws_overhead = arch.ws_fold_overhead(),
        ws_chunk = arch.ws_input_chunk(u64::from(arch.array.n_max)),
        fetch_steps = arch.os_fetch_steps(),
    );
    s.push_str(&super::sequencers::field_wires("gemm")?);
    let _ = write!(
        s,
        r#"    wire f_sparse = f_weights != 0;
    wire [4:0] f_r = f_sparse ? {{1'b0, f_weights[7:4]}} : NMAX;
    wire f_ws = f_dataflow == {ws};
    // The WS corner turn stages dense folds, in runs no wider than the input bus.
    wire f_ws_runs = f_ws && !(f_input_t && (f_sparse || X > R * MMAX));
    wire f_runs = (f_dataflow == {os} && f_interleave >= 1 && f_interleave <= L) || f_ws_runs;
    // The divisions at issue are as narrow as their operands: 17 bits by 5 and by 16.
    wire [15:0] f_steps = ({{1'b0, f_depth}} + {{12'h0, f_r}} - 17'd1) / {{12'h0, f_r}};
    wire [4:0] f_period_il = f_interleave > L ? f_interleave : L;
    wire [4:0] f_period = (f_input_t || f_weight_t) && f_r > f_period_il ? f_r : f_period_il;
    // OS fills: the input's and the weights' first fetches; the steps wait for the longer.
    wire [15:0] f_fill_in = f_input_t ? f_r : f_rows < R ? f_rows : R;
    wire [15:0] f_fill_w = f_weight_t ? f_r : f_cols < C * f_interleave ? f_cols : C * f_interleave;
    wire [15:0] f_fill = f_fill_in > f_fill_w ? f_fill_in : f_fill_w;
    // The fold period: the steps and the skew, and at least the weights' fetch windows. Folds
    // walk the rows inside each column block. With more than C steps each fold fetches its
    // groups of C steps (f_fill_w columns each), the next fold's first after the last; with
    // at most C steps (reuse) a column block's row folds keep the weights its first fetched,
    // so they last f_fill_w cycles together.
    wire f_reuse = !f_weight_t && f_steps <= C;
    wire [15:0] f_row_folds = f_rows == 0 ? 16'd1 : ({{1'b0, f_rows}} + R16 - 17'd1) / R16;
    wire [31:0] f_compute = f_steps * f_period + R + C - 2;
    wire [16:0] f_reuse_period = ({{1'b0, f_fill_w}} + {{1'b0, f_row_folds}} - 17'd1) / {{1'b0, f_row_folds}};
    wire [31:0] f_fetching = f_reuse ? {{15'h0, f_reuse_period}}
                                     : ((f_steps + C - 1) / C - 1) * C * f_period + f_fill_w;
    wire [31:0] f_fold_period = !f_weight_t && f_fetching > f_compute ? f_fetching : f_compute;
    wire f_empty = f_rows == 0 || f_cols == 0 || f_steps == 0;
    wire f_os_runs = f_runs && !f_ws && !f_empty;
    // WS: the weight fetches of a fold (a column, or a transposed reduction element, a
    // cycle), and the rows a fold streams: at least WS_MIN_STREAM, and long enough for the
    // next fold's weight fetches and the transposed input's windows of X rows.
    wire [15:0] f_ws_fetches = f_weight_t ? R * f_r : C;
    wire [31:0] f_ws_rows = {{16'h0, f_rows}} > WS_MIN_STREAM ? {{16'h0, f_rows}} : WS_MIN_STREAM;
    wire [31:0] f_ws_chunks = f_input_t ? (({{16'h0, f_rows}} + X - 1) / X) * X : 0;
    wire [31:0] f_ws_fetch_rows = f_ws_chunks > f_ws_fetches ? f_ws_chunks : f_ws_fetches;
    wire [31:0] f_ws_stream = f_ws_fetch_rows > WS_OVERHEAD + f_ws_rows ? f_ws_fetch_rows - WS_OVERHEAD : f_ws_rows;
    // The fill: the weights' fetches, or the part of a transposed input's first window before
    // the fold (its window of Q cycles ends R cycles into the fold).
    wire [15:0] f_ws_fill = f_input_t && Q > R + f_ws_fetches ? Q - R : f_ws_fetches;
    wire [15:0] ct_lead = f_ws_fill + R - Q;

    // Instruction registers
    reg [15:0] rows, cols, depth, steps;
    reg [23:0] in_base, w_base, out_base;
    reg [31:0] stored;
    reg accumulate, sparse, input_t, weight_t, reuse;
    reg [3:0] kept, slots;
    reg [4:0] per_step, step_period;
    reg [15:0] fold_cols;
    // Sequencing: `phase` counts a fold's cycles, `step` and `sub` its steps and sub-steps.
    reg running, flushing, flushed;
    reg [31:0] phase, fold_period, block_period;
    reg [15:0] step, row0, col0, prev_row0, prev_col0;
    reg [4:0] sub;
    reg has_prev;
    reg [31:0] koff;
    // The OS fill still to wait; the step's input group (its step sg of group_steps, at
    // staging offset spos in slot sslot) and weight group (wsg of wgroup_steps, wspos, wsslot),
    // each step's weight elements per column (kept, or per_step dense).
    reg [15:0] fill_wait;
    reg [15:0] group_steps, sg, spos, wgroup_steps, wsg, wspos;
    reg sslot, wsslot;
    reg [4:0] step_elements;
    // OS fetches, their fill cycles ahead of the steps (sat_tensor_fetch): each group's
    // fetch cycles (window) and period, and the fetch sequences' state.
    reg [31:0] fe_window, group_period, wf_window, wgroup_period;
    wire fe_now, fe_slot, wf_now, wf_slot;
    wire [31:0] fe_in_group, fe_step, wf_in_group, wf_step;
    wire [15:0] fe_row0, wf_col0;
    // Write-back of the previous fold
    reg wb_active, wb_last;
    reg [15:0] wb_wait, wb_k, wb_row0, wb_col0;

    // WS sequencing: `ws_phase` counts a fold's cycles; the fold works on steps
    // ws_k0 .. ws_k0 + R and columns ws_col0 .. ws_col0 + C.
    reg ws, ws_running, ws_feeding, shift_d;
    reg [31:0] ws_phase, ws_period;
    reg [15:0] ws_k0, ws_col0;
    wire ws_last_fold = ws_k0 + R >= steps && ws_col0 + C >= cols;
    // WS weights: staged in one of two slots per column, one run a cycle (ws_fetches runs a
    // fold): untransposed, a column's R steps of the fold; transposed (weight_t), one
    // reduction element of the fold's C columns. Fold 0's in the ws_fill cycles before it
    // starts, the next fold's in a fold's first ws_fetches cycles. ws_wslot is the fold's slot.
    reg [15:0] ws_fill, ws_fetches;
    reg ws_wslot;
    wire ws_next_kfold = ws_k0 + R < steps;
    wire [31:0] wsf_k0 = ws_fill != 0 ? 0 : ws_next_kfold ? ws_k0 + R : 0;
    wire [31:0] wsf_col0 = ws_fill != 0 ? 0 : ws_next_kfold ? ws_col0 : ws_col0 + C;
    wire [31:0] wsf_c = ws_fill != 0 ? ws_fetches - ws_fill : ws_phase;
    wire wsf_now = ws_running && ((ws_fill != 0 && ws_fill <= ws_fetches) || (ws_feeding && ws_phase < ws_fetches && !ws_last_fold));
    wire wsf_slot = ws_fill != 0 ? ws_wslot : ~ws_wslot;
    wire [31:0] wsf_col = wsf_col0 + wsf_c;
    wire [31:0] wsf_kk = wsf_k0 * per_step + wsf_c;
    wire [31:0] wsf_first = weight_t ? w_base + wsf_kk * cols + wsf_col0
                          : sparse ? w_base + wsf_col * stored + wsf_k0 * kept : w_base + wsf_col * depth + wsf_k0 * per_step;
    wire [31:0] wsf_lanes = weight_t ? C : R * step_elements;
    reg wsf_d, wsf_slot_d, ws_wslot_d;
    reg [31:0] wsf_c_d, ws_woff_d;
    always @(posedge clock) begin
        wsf_d <= wsf_now; wsf_slot_d <= wsf_slot; wsf_c_d <= wsf_c;
        // The preload's step of the fold, R - 1 - ws_phase, at its staged offset.
        ws_wslot_d <= ws_wslot; ws_woff_d <= (R - 1 - ws_phase) * step_elements;
    end
    // A row's partial sums leave the array WS_DELAY cycles after its psum address: this line
    // carries {{valid, last, m, col0}} of each streamed row to its write-back.
    reg [33:0] ws_line [0:WS_DELAY-1];
    wire [33:0] ws_out = ws_line[WS_DELAY-1];
    wire [31:0] ws_m = ws_phase - R;
    wire ws_row_on = ws_feeding && ws_phase >= R && ws_m < rows;

    assign busy = running || ws_running;
    wire os_on = running && fill_wait == 0;
    wire feeding = os_on && !flushing && step < steps && sub < slots;
    wire flush_now = os_on && flushing && !flushed && sub < slots;
    wire last_fold = row0 + R >= rows && col0 + fold_cols >= cols;

    // Fold sequencing
    always @(posedge clock) begin
        done <= 0;
        if (issue) begin
            unsupported <= !f_runs;
            rows <= f_rows; cols <= f_cols; depth <= f_depth; steps <= f_steps;
            in_base <= f_input; w_base <= f_weight; out_base <= f_output;
            accumulate <= f_accumulate; sparse <= f_sparse; input_t <= f_input_t; weight_t <= f_weight_t;
            reuse <= f_reuse;
            kept <= f_weights[3:0]; per_step <= f_r; slots <= f_interleave; step_period <= f_period;
            fold_cols <= C * f_interleave;
            stored <= f_sparse ? f_steps * f_weights[3:0] : f_depth;
            fold_period <= f_fold_period; block_period <= f_fold_period * f_row_folds;
            phase <= 0; step <= 0; sub <= 0; koff <= 0; row0 <= 0; col0 <= 0;
            has_prev <= 0; flushing <= 0; flushed <= 0;
            fill_wait <= f_fill;
            group_steps <= f_input_t ? 16'd1 : G; sg <= 0; spos <= 0; sslot <= 0;
            group_period <= (f_input_t ? 1 : G) * f_period; fe_window <= f_fill_in;
            wgroup_steps <= f_weight_t ? 16'd1 : GW; wsg <= 0; wspos <= 0; wsslot <= 0;
            wgroup_period <= (f_weight_t ? 1 : GW) * f_period; wf_window <= f_fill_w;
            step_elements <= f_sparse ? {{1'b0, f_weights[3:0]}} : f_r;
            running <= f_runs && !f_ws && !f_empty;
            ws <= f_ws;
            ws_running <= f_runs && f_ws && !f_empty; ws_feeding <= 0;
            ws_fill <= f_runs && f_ws && !f_empty ? f_ws_fill : 0; ws_fetches <= f_ws_fetches; ws_wslot <= 0;
            ws_phase <= 0; ws_k0 <= 0; ws_col0 <= 0;
            ws_period <= WS_OVERHEAD + f_ws_stream;
            if (!f_runs || f_empty) done <= 1;
        end else if (ws_running) begin
            if (ws_fill != 0) begin
                ws_fill <= ws_fill - 1;
                if (ws_fill == 1) ws_feeding <= 1;
            end else if (ws_feeding) begin
                if (ws_phase == ws_period - 1) begin
                    ws_phase <= 0;
                    ws_wslot <= ~ws_wslot;
                    if (ws_last_fold) ws_feeding <= 0;
                    else if (ws_k0 + R < steps) ws_k0 <= ws_k0 + R;
                    else begin ws_k0 <= 0; ws_col0 <= ws_col0 + C; end
                end else ws_phase <= ws_phase + 1;
            end
            if (ws_out[33] && ws_out[32]) begin
                ws_running <= 0;
                done <= 1;
            end
        end else if (running) begin
            if (fill_wait != 0) fill_wait <= fill_wait - 1;
            else if (flushing) begin
                if (flush_now) begin
                    if (sub == slots - 1) flushed <= 1;
                    sub <= sub + 1;
                end
                if (wb_active && wb_last && wb_wait == 0 && wb_k == R - 1) begin
                    running <= 0;
                    done <= 1;
                end
            end else if (phase == fold_period - 1) begin
                phase <= 0; step <= 0; sub <= 0; koff <= 0;
                prev_row0 <= row0; prev_col0 <= col0; has_prev <= 1;
                if (last_fold) flushing <= 1;
                else if (row0 + R >= rows) begin row0 <= 0; col0 <= col0 + fold_cols; end
                else row0 <= row0 + R;
            end else begin
                phase <= phase + 1;
                if (sub == step_period - 1) begin
                    sub <= 0;
                    if (step < steps) begin
                        step <= step + 1;
                        koff <= koff + per_step;
                        // The group's last step: the next group is in the other slot.
                        if (sg + 1 == group_steps || step + 1 == steps) begin sg <= 0; spos <= 0; sslot <= ~sslot; end
                        else begin sg <= sg + 1; spos <= spos + per_step; end
                        // With reuse, a column block's row folds keep their slot.
                        if (wsg + 1 == wgroup_steps || step + 1 == steps) begin
                            wsg <= 0; wspos <= 0;
                            if (!reuse || row0 + R >= rows) wsslot <= ~wsslot;
                        end
                        else begin wsg <= wsg + 1; wspos <= wspos + step_elements; end
                    end
                end else sub <= sub + 1;
            end
        end
    end

    // OS fetches: the input's and the weights', each its own fill ahead of the steps.
    {FETCH_MODULE} input_fetch (
        .clock(clock), .issue(issue), .runs(f_os_runs), .lead(f_fill - f_fill_in), .fold_period(fold_period),
        .group_period(group_period), .window(fe_window), .group_steps(group_steps), .steps(steps), .rows(cols),
        .cols(rows), .fold_rows(fold_cols), .fold_cols(R16), .now(fe_now), .slot(fe_slot),
        .in_group(fe_in_group), .step(fe_step), .row0(), .col0(fe_row0)
    );
    // With reuse the weights are fetched once per column block: one sequencer fold per block,
    // of the block's row folds.
    {FETCH_MODULE} weight_fetch (
        .clock(clock), .issue(issue), .runs(f_os_runs), .lead(f_fill - f_fill_w),
        .fold_period(reuse ? block_period : fold_period), .group_period(wgroup_period), .window(wf_window),
        .group_steps(wgroup_steps), .steps(steps), .rows(cols), .cols(reuse ? 16'd1 : rows), .fold_rows(fold_cols),
        .fold_cols(reuse ? 16'd1 : R16), .now(wf_now), .slot(wf_slot), .in_group(wf_in_group), .step(wf_step),
        .row0(wf_col0), .col0()
    );
    // WS, transposed input: fold (ws_k0) reduction element ct_col0 * per_step + ct_in_group's
    // rows ct_step .. ct_step + X, one run, in a window of Q cycles every X rows from R - Q
    // cycles into each fold, into that element's slot ct_slot (slots alternate per window).
    wire ct_now, ct_slot;
    wire [31:0] ct_in_group, ct_step;
    wire [15:0] ct_col0;
    {FETCH_MODULE} input_t_fetch (
        .clock(clock), .issue(issue), .runs(f_runs && f_ws && !f_empty && f_input_t), .lead(ct_lead),
        .fold_period(ws_period), .group_period(X32), .window(Q32), .group_steps(X16), .steps(rows), .rows(cols),
        .cols(steps), .fold_rows(C16), .fold_cols(R16), .now(ct_now), .slot(ct_slot), .in_group(ct_in_group),
        .step(ct_step), .row0(), .col0(ct_col0)
    );
    wire [31:0] ct_kk = ct_col0 * per_step + ct_in_group;
    wire [31:0] ct_first = in_base + ct_kk * rows + ct_step;
    reg ct_d, ct_slot_d;
    reg [31:0] ct_q_d;
    always @(posedge clock) begin ct_d <= ct_now; ct_slot_d <= ct_slot; ct_q_d <= ct_in_group; end

    // A fetch's lanes: row fe_row0 + fe_in_group's elements fe_k + q, or (input_t) element
    // fe_k + fe_in_group of rows fe_row0 + q: one run from fe_first.
    wire [31:0] fe_k = fe_step * per_step;
    wire [31:0] fe_row = fe_row0 + fe_in_group;
    wire [31:0] fe_kk = fe_k + fe_in_group;
    wire [31:0] fe_first = input_t ? in_base + fe_kk * rows + fe_row0 : in_base + fe_row * depth + fe_k;
    wire [31:0] fe_lanes = input_t ? R : group_steps * per_step;
    // A fetch's data arrive a cycle later (into each row's staging, below): a whole slot of
    // one row, or one element of every row.
    reg st_d, st_slot_d;
    reg [31:0] st_idx_d;
    always @(posedge clock) begin st_d <= fe_now; st_slot_d <= fe_slot; st_idx_d <= fe_in_group; end
    // A weight fetch's lanes: (virtual) column wf_col0 + wf_in_group's group of steps from
    // step wf_step (its compressed positions, or dense elements), or (weight_t) element
    // wf_k + wf_in_group of columns wf_col0 + q: one run from wf_first, on the index buffer too.
    wire [31:0] wf_k = wf_step * per_step;
    wire [31:0] wf_pos = wf_step * kept;
    wire [31:0] wf_col = wf_col0 + wf_in_group;
    wire [31:0] wf_kk = wf_k + wf_in_group;
    wire [31:0] wf_first = weight_t ? w_base + wf_kk * cols + wf_col0
                         : sparse ? w_base + wf_col * stored + wf_pos : w_base + wf_col * depth + wf_k;
    wire [31:0] wf_lanes = weight_t ? fold_cols : wgroup_steps * step_elements;
    // Its data a cycle later, into each array column's staging (below).
    reg stw_d, stw_slot_d;
    reg [31:0] stw_idx_d;
    always @(posedge clock) begin stw_d <= wf_now; stw_slot_d <= wf_slot; stw_idx_d <= wf_in_group; end

    // Write-back: started when a fold's first sub-step (or the flush) is presented, so it is
    // fed one cycle later and row k of the previous fold, every slot, leaves the array
    // C + L - 2 + k cycles after that.
    wire first_now = (feeding && step == 0) || flush_now;
    always @(posedge clock) begin
        if (issue) wb_active <= 0;
        else if (first_now && sub == 0 && has_prev) begin
            wb_active <= 1; wb_last <= flushing; wb_wait <= C + L - 2; wb_k <= 0;
            wb_row0 <= prev_row0; wb_col0 <= prev_col0;
        end else if (wb_active) begin
            if (wb_wait != 0) wb_wait <= wb_wait - 1;
            else if (wb_k == R - 1) wb_active <= 0;
            else wb_k <= wb_k + 1;
        end
    end

    // Array edge: the sub-step's flags and lane masks, registered to meet the buffers' data.
    reg valid_d, first_d, sslot_d, wsslot_d;
    reg [3:0] slot_d;
    reg [15:0] spos_d, wspos_d;
    reg [R*MMAX-1:0] act_ok;
    reg [C*NMAX-1:0] wgt_ok;
    wire [{act_bus}-1:0] edge_act [0:R-1];
    wire [{wgt_bus}-1:0] edge_wgt [0:C-1];
    wire [{idx_bus}-1:0] edge_idx [0:C-1];
    wire [{en_bus}-1:0] edge_en [0:C-1];
    wire [31:0] edge_init [0:C*L-1];
    wire [31:0] edge_result [0:C*L-1];
    wire init_now = os_on && !flushing && phase < R;
    always @(posedge clock) begin
        valid_d <= feeding;
        first_d <= first_now;
        slot_d <= sub[3:0];
        sslot_d <= sslot; spos_d <= spos; wsslot_d <= wsslot; wspos_d <= wspos;
        shift_d <= ws_feeding && ws_phase < R;
        ws_line[0] <= {{ws_row_on, ws_last_fold && ws_m == rows - 1, ws_m[15:0], ws_col0}};
    end
    genvar gd;
    generate
        for (gd = 1; gd < WS_DELAY; gd = gd + 1) begin : ws_delay
            always @(posedge clock) ws_line[gd] <= ws_line[gd-1];
        end
    endgenerate

    // The input bus: an untransposed WS input is read on row gr's lanes gr * MMAX + gj; OS and
    // the transposed WS input fetch runs into staging.
    wire [R*MMAX-1:0] ws_re;
    wire [R*MMAX*{act_aw}-1:0] ws_raddr;
    genvar gr, gc, gj, gq;
    generate
        for (gq = 0; gq < R * MMAX; gq = gq + 1) begin : act_lanes
            wire [31:0] row = input_t ? fe_row0 + gq : fe_row;
            wire [31:0] k = input_t ? fe_kk : fe_k + gq;
            wire fe_ok = fe_now && gq < FW && gq < fe_lanes && row < rows && k < depth;
            wire [31:0] fe_addr = fe_first + gq;
            wire ct_ok = ct_now && gq < X && ct_kk < depth && ct_step + gq < rows;
            wire [31:0] ct_addr = ct_first + gq;
            assign act_re[gq] = !ws ? fe_ok : input_t ? ct_ok : ws_re[gq];
            assign act_raddr[gq*{act_aw} +: {act_aw}] =
                !ws ? fe_addr[{act_aw}-1:0] : input_t ? ct_addr[{act_aw}-1:0] : ws_raddr[gq*{act_aw} +: {act_aw}];
        end
        for (gq = 0; gq < FWW; gq = gq + 1) begin : wgt_lanes
            wire [31:0] col = weight_t ? wf_col0 + gq : wf_col;
            wire in_group = weight_t ? wf_kk < depth : sparse ? wf_pos + gq < stored : wf_k + gq < depth;
            wire wf_ok = wf_now && gq < wf_lanes && col < cols && in_group;
            wire [31:0] wf_addr = wf_first + gq;
            // WS: a column's fold of steps, or (weight_t) a reduction element of the fold's
            // columns, into the staging.
            wire wsf_ok = wsf_now && gq < wsf_lanes
                          && (weight_t ? wsf_col0 + gq < cols && wsf_kk < depth
                                       : wsf_col < cols && (sparse ? wsf_k0 * kept + gq < stored : wsf_k0 * per_step + gq < depth));
            wire [31:0] wsf_addr = wsf_first + gq;
            assign wgt_re[gq] = ws ? wsf_ok : wf_ok;
            assign idx_re[gq] = (ws ? wsf_ok : wf_ok) && sparse;
            assign wgt_raddr[gq*{wgt_aw} +: {wgt_aw}] = ws ? wsf_addr[{wgt_aw}-1:0] : wf_addr[{wgt_aw}-1:0];
        end
        for (gr = 0; gr < R; gr = gr + 1) begin : act_rows
            // OS: the row's staged step. WS: row gr takes input row m with step ws_k0 + gr,
            // gr (L - 1) cycles after row 0. Untransposed, every row's step of input row m is
            // read when row 0 takes it (the fold's R steps of a row: one run) and passes
            // gr (L - 1) delay stages; transposed, each of the row's elements comes from its
            // staging (ct_stage), at the row's own offset ct_off and slot ct_slot in it.
            wire ws_skewed = !input_t && gr * (L - 1) != 0;
            wire [31:0] ws_row = ws_phase - R - gr * (L - 1);
            wire ws_on = ws_skewed ? ws_row_on : ws_feeding && ws_phase >= R + gr * (L - 1) && ws_row < rows;
            wire [31:0] ws_koff = (ws_k0 + gr) * per_step;
            wire [15:0] m = !ws ? row0 + gr : ws_skewed ? ws_m[15:0] : ws_row[15:0];
            wire [MMAX*16-1:0] row_data;
            // The transposed WS input's place in the row's staging: the offset in a window of X
            // rows and the slot, both advanced per row taken; a fold's first row starts a new
            // window, in the next slot when the last one was partial.
            reg [15:0] ct_off;
            reg ct_slot_r, ct_slot_rd;
            reg [15:0] ct_off_rd;
            wire ct_take = ws && input_t && ws_on;
            wire ct_fresh = ws_row == 0;
            wire [15:0] ct_at = ct_fresh ? 16'd0 : ct_off;
            wire ct_in = ct_fresh && ct_off != 0 ? ~ct_slot_r : ct_slot_r;
            always @(posedge clock) begin
                if (issue) begin ct_off <= 0; ct_slot_r <= 0; end
                else if (ct_take) begin
                    ct_off <= ct_at == X - 1 ? 16'd0 : ct_at + 1;
                    ct_slot_r <= ct_at == X - 1 ? ~ct_in : ct_in;
                end
                ct_off_rd <= ct_at; ct_slot_rd <= ct_in;
            end
            // The row's OS staging: slot sl holds elements [sl * SW, +SW), 16 bits each.
            reg [2*SW*16-1:0] stage;
            integer sl, sp;
            always @(posedge clock) if (st_d) begin
                for (sl = 0; sl < 2; sl = sl + 1)
                    for (sp = 0; sp < SW; sp = sp + 1)
                        if (st_slot_d == sl && (input_t ? st_idx_d == sp : st_idx_d == gr))
                            stage[(sl * SW + sp) * 16 +: 16] <= input_t ? act_rdata[gr*16 +: 16] : act_rdata[sp*16 +: 16];
            end
            for (gj = 0; gj < MMAX; gj = gj + 1) begin : lanes
                wire [31:0] kk = (ws ? ws_koff : koff) + gj;
                wire ok = (ws ? ws_on : feeding && m < rows) && gj < per_step && kk < depth;
                assign ws_re[gr*MMAX+gj] = ws && !input_t && ok;
                assign ws_raddr[(gr*MMAX+gj)*{act_aw} +: {act_aw}] = in_base + m * depth + kk;
                always @(posedge clock) act_ok[gr*MMAX+gj] <= ok;
                wire [15:0] staged = stage[(sslot_d * SW + spos_d + gj) * 16 +: 16];
                wire [15:0] turned;
                if (gj < NMAX) begin : corner_turn
                    // Reduction element gr NMAX + gj of the fold: two slots of X rows.
                    reg [2*X*16-1:0] ct_stage;
                    integer cs, ce;
                    always @(posedge clock) if (ct_d && ct_q_d == gr * NMAX + gj) begin
                        for (cs = 0; cs < 2; cs = cs + 1)
                            for (ce = 0; ce < XS; ce = ce + 1)
                                if (ct_slot_d == cs) ct_stage[(cs * X + ce) * 16 +: 16] <= act_rdata[ce*16 +: 16];
                    end
                    assign turned = ct_stage[(ct_slot_rd * X + ct_off_rd) * 16 +: 16];
                end else begin : no_corner_turn
                    assign turned = 16'h0;
                end
                assign row_data[gj*16 +: 16] = !act_ok[gr*MMAX+gj] ? 16'h0
                    : !ws ? staged : input_t ? turned : act_rdata[(gr*MMAX+gj)*16 +: 16];
            end
            if (gr * (L - 1) == 0) begin : no_skew
                assign edge_act[gr][MMAX*16-1:0] = row_data;
            end else begin : ws_skew
                reg [MMAX*16-1:0] skew [0:gr*(L-1)-1];
                integer d;
                always @(posedge clock) begin
                    skew[0] <= row_data;
                    for (d = 1; d < gr * (L - 1); d = d + 1) skew[d] <= skew[d-1];
                end
                assign edge_act[gr][MMAX*16-1:0] = ws && ws_skewed ? skew[gr*(L-1)-1] : row_data;
            end
            if (MMAX < {act_lanes}) begin : pad
                assign edge_act[gr][{act_bus}-1:MMAX*16] = 0;
            end
        end
        for (gc = 0; gc < C; gc = gc + 1) begin : wgt_cols
            // OS: sub-step `sub` works on the fold's column block `sub`, virtual column
            // sub C + gc, staged here. WS: preload cycle ws_phase < R sends the weights of step
            // ws_k0 + R - 1 - ws_phase (the bottom row's first), staged here.
            wire [31:0] ws_step = ws_k0 + R - 1 - ws_phase;
            wire ws_on = ws_feeding && ws_phase < R && ws_step < steps;
            wire [15:0] n = ws ? ws_col0 + gc : col0 + sub * C + gc;
            // The OS staging of virtual columns vi C + gc (vi < L): slot sl of vi holds
            // [(vi * 2 + sl) * SWW, +SWW), values of 16 bits and indices of 4. A fetch fills a
            // whole slot of one virtual column, or (weight_t) one element of every one.
            reg [L*2*SWW*16-1:0] wstage;
            reg [L*2*SWW*4-1:0] istage;
            integer vi, wl, wp;
            // The WS staging: slot sl holds the fold's R steps, [sl * R * NMAX, +R * NMAX). A
            // fetch fills a whole slot of one column, or (weight_t, dense) element wsf_c_d of
            // every column's slot.
            reg [2*R*NMAX*16-1:0] ws_wstage;
            reg [2*R*NMAX*4-1:0] ws_istage;
            integer wsl, wsp;
            always @(posedge clock) if (wsf_d && (weight_t || wsf_c_d == gc)) begin
                for (wsl = 0; wsl < 2; wsl = wsl + 1)
                    for (wsp = 0; wsp < R * NMAX; wsp = wsp + 1)
                        if (wsf_slot_d == wsl && (!weight_t || wsf_c_d == wsp)) begin
                            ws_wstage[(wsl * R * NMAX + wsp) * 16 +: 16] <= weight_t ? wgt_rdata[gc*16 +: 16] : wgt_rdata[wsp*16 +: 16];
                            ws_istage[(wsl * R * NMAX + wsp) * 4 +: 4] <= idx_rdata[wsp*8 +: 4];
                        end
            end
            always @(posedge clock) if (stw_d) begin
                for (vi = 0; vi < L; vi = vi + 1)
                    for (wl = 0; wl < 2; wl = wl + 1)
                        for (wp = 0; wp < SWW; wp = wp + 1)
                            if (stw_slot_d == wl && (weight_t ? stw_idx_d == wp : stw_idx_d == vi * C + gc)) begin
                                wstage[((vi * 2 + wl) * SWW + wp) * 16 +: 16] <=
                                    weight_t ? wgt_rdata[(vi*C+gc)*16 +: 16] : wgt_rdata[wp*16 +: 16];
                                istage[((vi * 2 + wl) * SWW + wp) * 4 +: 4] <= idx_rdata[wp*8 +: 4];
                            end
            end
            for (gj = 0; gj < NMAX; gj = gj + 1) begin : weight_slots
                wire [31:0] kk = (ws ? ws_step * per_step : koff) + gj;
                wire ok = (ws ? ws_on : feeding) && n < cols && (sparse ? gj < kept : kk < depth);
                always @(posedge clock) wgt_ok[gc*NMAX+gj] <= ok;
                wire [31:0] at = (slot_d * 2 + wsslot_d) * SWW + wspos_d + gj;
                wire [31:0] ws_at = ws_wslot_d * R * NMAX + ws_woff_d + gj;
                assign edge_wgt[gc][gj*16 +: 16] = !wgt_ok[gc*NMAX+gj] ? 16'h0
                    : !ws ? wstage[at*16 +: 16] : ws_wstage[ws_at*16 +: 16];
                assign edge_idx[gc][gj*4 +: 4] = !sparse ? gj : ws ? ws_istage[ws_at*4 +: 4] : istage[at*4 +: 4];
                assign edge_en[gc][gj] = wgt_ok[gc*NMAX+gj];
            end
            if (NMAX < {wgt_lanes}) begin : pad
                assign edge_wgt[gc][{wgt_bus}-1:NMAX*16] = 0;
                assign edge_idx[gc][{idx_bus}-1:NMAX*4] = 0;
                assign edge_en[gc][{en_bus}-1:NMAX] = 0;
            end
            for (gj = 0; gj < L; gj = gj + 1) begin : buses
                // OS: initial sums, row (phase) of this fold, slot gj, read while phase < R.
                // WS (slot 0): row ws_m's partial sum, the old output on the first k-fold
                // only when accumulating.
                wire ws_bus = ws && gj == 0;
                wire [15:0] im = ws_bus ? ws_m[15:0] : row0 + phase[15:0];
                wire [15:0] in_col = ws_bus ? ws_col0 + gc : col0 + gj * C + gc;
                assign acc_raddr[(gc*L+gj)*{acc_aw} +: {acc_aw}] = out_base + im * cols + in_col;
                wire init_read = ws_bus ? ws_row_on && in_col < cols && (ws_k0 != 0 || accumulate)
                                        : init_now && accumulate && gj < slots && im < rows && in_col < cols;
                assign acc_re[gc*L+gj] = init_read;
                reg init_ok;
                always @(posedge clock) init_ok <= init_read;
                assign edge_init[gc*L+gj] = init_ok ? acc_rdata[(gc*L+gj)*32 +: 32] : 32'h0;
                // OS: results of the previous fold, row wb_k, slot gj. WS (slot 0): the row
                // leaving the delay line.
                wire [15:0] wm = ws_bus ? ws_out[31:16] : wb_row0 + wb_k;
                wire [15:0] wn = ws_bus ? ws_out[15:0] + gc : wb_col0 + gj * C + gc;
                assign acc_we[gc*L+gj] = ws_bus ? ws_out[33] && wn < cols
                                                : wb_active && wb_wait == 0 && gj < slots && wm < rows && wn < cols;
                assign acc_waddr[(gc*L+gj)*{acc_aw} +: {acc_aw}] = out_base + wm * cols + wn;
                assign acc_wdata[(gc*L+gj)*32 +: 32] = edge_result[gc*L+gj];
            end
        end
    endgenerate

    {ARRAY_MODULE} array (
        .clock(clock),
        .valid(valid_d),
        .first(first_d),
        .slot(slot_d),
        .ws(ws),
        .shift(shift_d),
"#,
        os = Dataflow::Os.to_bits(),
        ws = Dataflow::Ws.to_bits(),
        act_lanes = super::pe::ACT_BUS_LANES,
        wgt_lanes = super::pe::WGT_BUS_LANES,
    );
    let mut connections = Vec::new();
    for i in 0..r {
        connections.push(format!("        .act${i}(edge_act[{i}])"));
    }
    for i in 0..c {
        connections.push(format!("        .wgt${i}(edge_wgt[{i}])"));
        connections.push(format!("        .idx${i}(edge_idx[{i}])"));
        connections.push(format!("        .en${i}(edge_en[{i}])"));
    }
    for i in 0..c * l {
        connections.push(format!("        .init${i}(edge_init[{i}])"));
        connections.push(format!("        .result${i}(edge_result[{i}])"));
    }
    // Verilog escapes identifiers with `$` only at their start, so `act$0` is a legal name.
    s.push_str(&connections.join(",\n"));
    s.push_str("\n    );\nendmodule\n");
    Ok(s)
}
