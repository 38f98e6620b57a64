//! The SORE's, the WUVE's and the vector unit's operand sequencers as Verilog text (see
//! [`super::tensor`] for why text): they decode `prune`, `update` and `vec`, stream the buffers
//! through the lanes (the rust-hdl [`super::sore::SoreUnit`] and [`super::wuve::WuveUnit`], the
//! vector unit's own with the circuits of [`super::vector_math`]) and write the results back,
//! cycle for cycle the simulator's `sore`, `wuve` and `vector` costs. Also the conversions
//! between FP32 and the buffers' types.
//!
//! **`sat_sore_unit`** (`prune`). Group `g` of the `rows x cols` master weight has `M`
//! elements: FF order along a row (output row `g / (cols / M)`), BP order down a column
//! (output row = the column). `L = sore.lanes` lanes each take a group per round of `M` cycles
//! (cycle `i` of a round reads element `i` of the lanes' groups, the lanes take it a cycle
//! later); a round's results (the kept values rounded to FP16, their in-group indices and,
//! with `write_mask`, the group's mask bytes) are written from the second cycle after its last
//! read, while the next round reads. So that a buffer banked by the low address bits serves
//! every cycle without conflict (`sim::sore`):
//! - FF order: lane `l` takes groups `l, l + L, ...`: a cycle's reads lie within `L M`
//!   consecutive elements, and a round's write-back is one cycle of consecutive elements;
//! - BP order: the lanes take `L` adjacent columns and walk their groups down together, so a
//!   cycle reads one run across the columns. The compressed rows of those columns are `stored`
//!   apart, so the write-back drains one lane's kept values a cycle (and the mask one row of
//!   the groups a cycle, a run across the columns): `max(L', M)` cycles with the mask, `L'`
//!   without, for a round of `L'` active lanes. A round with `L' > M` waits for its drain
//!   before the next one reads (`L' - M` idle cycles).
//!
//! With `t0` the issue cycle, reading starts at `t0 + 1`, and `done` is high the cycle after
//! the last round's write-back: the simulator's `ceil(groups / L) M + 3` in FF order.
//!
//! **`sat_wuve_unit`** (`update`). `L = wuve.lanes` lanes take elements `l, l + L, ...`; cycle
//! `t0 + 1 + b` reads batch `b` (weight and momentum from `master`, the gradient from `acc`, the
//! mask byte from `mask`). The four hyperparameters are read in the issue cycle, before any
//! batch, and kept: so in no cycle do they meet a batch's reads on the banks of `master`, which
//! lets them share the reader of the weights' partition (`Operand::kept`). A batch enters the lanes a cycle later and leaves `P = wuve.pipeline_latency`
//! cycles after that, when the new weights are written; its new momenta are written `j` cycles
//! later (`ArchConfig::wuve_momentum_delay`, 0 to 2, through two registered stages), so that
//! a cycle's two write runs lie on distinct banks of `master`: `done` is high at
//! `t0 + ceil(count / L) + P + 2 + j`, the simulator's cost.
//!
//! **`sat_vector_unit`** (`vec`: every op of the ISA). The element-wise ops (`copy`, `add`,
//! `relu`, `relu_grad`): `L = vector.lanes` lanes take elements `l, l + L, ...`; cycle
//! `t0 + 1 + b` reads batch `b` of `a` and `b` from the buffers the instruction names,
//! converted to FP32 (FP16 exactly, a byte plane's bytes as integers), the lane computes in
//! FP32 (`add` with the bit-exact [`super::fp::Fp32Add`]) and converts to the destination's
//! type (FP16 rounded to nearest even, a byte saturated to 0..=255 and truncated, NaN to 0),
//! and the result is written `P = vector.pipeline_latency` cycles after the batch entered:
//! `done` is high at `t0 + ceil(count / L) + P + 2`, the simulator's cost.
//!
//! **`softmax_xent`** on the same lanes, ports and write pipeline. Each row of `p0` classes
//! takes three passes of `B = ceil(p0 / L)` batches, lane `l` of batch `j` on class `j L + l`,
//! and every read's data is used in the cycle it arrives: pass 0 chains the lanes' comparisons
//! into the row maximum `mx` (a lane replaces it when greater) and picks the label's logit;
//! pass 1 chains `exp_spec(x - mx)` into the row sum in class order; pass 2 recomputes the
//! exponentials and writes the gradient `(e / sum - [class = label]) / rows`, and in its first
//! cycle adds the row's loss `ln_spec(sum) + mx - x_label` to the running loss. The label is
//! read on `b`'s lane 0 all through the row and must be an integral value below `p0`, else
//! `bad_label` is raised. One last step writes the mean loss (loss / rows) after the
//! gradient: `done` is high at `t0 + 3 rows B + 1 + P + 2`, the simulator's cost. The
//! functions are [`super::vector_math`]'s, in one cycle.
//!
//! **Pooling** (`maxpool`, `avgpool`, `maxpool_grad`, `avgpool_grad`). The lanes take the
//! window elements in the simulator's order (planes, output rows, output columns, then the
//! window row-major), up to `L` consecutive elements per cycle from `t0 + 1`: a walker (plane,
//! output row and column, window row and column, and the offsets they give) steps through a
//! chain of `L` mixed-radix increments per cycle. A cycle takes the longest prefix of its `L`
//! elements whose distinct elements fall on distinct banks of the buffer walked (`a`'s, or
//! `avgpool_grad`'s destination): every pair of lanes compares its elements' bank bits, and the
//! walker's next state is the chain's tap after the prefix (`PoolDims::walk_cycles`, the
//! simulator's count). `maxpool_grad` walks the fewer banks of `a`'s and its destination's, and
//! a cycle of it that started inside a window ends with that window when another whole window
//! could end after it, so that its writes at the windows' maxima fall on distinct banks too;
//! a cycle of it that started at a window's start ends at its last window end rather than
//! inside a later window.
//! In the data cycle the lanes chain the window's maximum
//! (a lane replaces it when greater, so the first maximum and its position are kept) and sum
//! (from +0) across lanes and, through registers, across cycles; the lane holding a window's
//! last element writes the output (`avgpool`: the sum divided by `p2 p2`). A gradient first
//! writes zeros over its planes, `L` per cycle, then walks the windows: `maxpool_grad` adds
//! `dy` at each window's maximum, `avgpool_grad` `dy / (p2 p2)` at every window element, to
//! the element's FP32 partial sum, and writes the new sum (in the destination's type). When
//! the windows do not overlap (stride `>= p2`) every element gets at most one share, added to
//! `+0`. When they overlap, the partial sums live in a line buffer of
//! `vector.pool_line_rows` rows (a power of two) by `vector.pool_line_cols` columns: element
//! `(r, c)` at slot `(r mod rows) cols + c`. Each row of slots belongs to one row of one plane
//! (its owner, one register per row of slots), and a slot is valid once written for its
//! owner by the instruction. A share adds to the latest earlier lane's sum for the same
//! element in the cycle, else to the slot's when the slot is valid and its row's owner is the
//! element's, else to `+0` (the element's first share); the slot takes the lanes' new sums, a
//! later lane's winning. So every element's shares add up in the simulator's order (windows in
//! walk order) in FP32, and its last write is the simulator's sum, rounded once. A row `rows`
//! further down (or a later plane's) takes over a row of slots only after the last share of
//! its owner, since a window spans at most `rows` rows; on a takeover the row's slots are
//! valid only where the new owner's lanes write. Windows taller than the line buffer's rows,
//! or planes wider than its columns, are flagged `unsupported` when they overlap, and all
//! overlapping ones when either size is 0 (no line buffer).
//! `done` is high at `t0 + Z + ceil(outputs p2 p2 / L) + P + 2`, with `Z` the zeroing cycles
//! (`ceil(planes p0 p1 / L)` for a gradient, else 0): the simulator's cost.
//!
//! Writes leave through a `P`-stage pipeline of per-lane enables, offsets and values. The
//! ops' FP32 operations share each lane's function units ([`super::vector_lane`]).
//!
//! **`softmax`** runs `softmax_xent`'s passes and writes `e / sum` in the third;
//! **`softmax_grad`** makes two passes per row: the dot product of `y` and `dy` chained across
//! the lanes, then `y (dy - dot)`. **`gelu`** and **`gelu_grad`** are element-wise, each lane
//! the simulator's sequence of FP32 operations (with the exponential of [`super::vector_math`]).
//!
//! **Normalizations.** Per row (`p1 = 1`), each row is walked `L` elements per cycle, lane `l`
//! at offset `base + i + l`, its sums chained across the lanes. `norm_stats` chains the sum
//! (pass 0; the mean is the sum divided by the length) and the squared deviations (pass 1),
//! and in each pass's last cycle writes on lane 0: the mean, then `1 / sqrt(var + epsilon)`.
//! The other ops take blocks of `L'` rows (`L` but in the last block), whose statistics are
//! consecutive, and keep row `k`'s in slot `k` of the block's registers: `norm_apply` reads the
//! means' run, then the rstds', then walks the rows writing `(x - mean) rstd`;
//! `norm_grad_stats` walks the rows chaining the sums of `dy` and `dy x`, then writes the two
//! sums' runs; `norm_grad_apply` reads its four statistics' runs, computes one row's terms a
//! cycle, then walks the rows, reading `x` from the destination on `b`'s lanes while writing
//! `dx` there.
//! Per column (`p1 = 0`, batch norm), the lanes take the `L'` adjacent columns of a block and
//! walk them down one row a cycle (so a cycle's elements are consecutive), lane `l` keeping its
//! own column's running sums (in row order, the simulator's order) and statistics in slot `l`.
//! A block is a list of steps: `norm_stats` walks, computes one column's mean a cycle on the
//! shared divider (and writes it), walks again for the squared deviations, and computes and
//! writes one column's `rstd` a cycle; the others as per row. So a cycle reads, and writes,
//! one run of each operand.
//! Zero rows are refused. `done` is high at `t0 + C + P + 2`, with `C` the
//! simulator's cycles of the passes and steps (`VecGeometry`).
//!
//! **Conversions.** `sat_f32_to_f16`: round to nearest even with subnormals, overflow to
//! infinity, signed zeros, and NaN kept a (quiet) NaN with the top mantissa bits: the `half`
//! crate's `f16::from_f32`, which the simulator's buffers use. `sat_f16_to_f32` (exact; a NaN
//! gets the quiet bit, as `f16::to_f32`), `sat_u8_to_f32` and `sat_f32_to_u8` (the simulator's
//! `value.clamp(0.0, 255.0) as u8`).

use super::tensor::{address_bits, sram_address_bits};
use super::vector_lane::LaneDatapath;
use super::vector_math::bits;
use crate::isa::{layouts, Buffer, Field, PruneOrder, VecOp, WORD_BITS};
use crate::numerics::NORM_EPSILON;
use crate::{ArchConfig, Error};
use std::fmt::Write as _;

/// Name of the SORE sequencer module.
pub const SORE_UNIT_MODULE: &str = "sat_sore_unit";
/// Name of the WUVE sequencer module.
pub const WUVE_UNIT_MODULE: &str = "sat_wuve_unit";
/// Name of the FP32 to FP16 rounding module.
pub const TO_FP16_MODULE: &str = "sat_f32_to_f16";
/// Name of the vector unit's sequencer and lanes.
pub const VECTOR_UNIT_MODULE: &str = "sat_vector_unit";

/// `wire` declarations of instruction `mnemonic`'s fields, from the ISA table.
pub(super) fn field_wires(mnemonic: &str) -> Result<String, Error> {
    let layout = layouts()
        .into_iter()
        .find(|l| l.mnemonic == mnemonic)
        .ok_or_else(|| Error::RtlVerilog { message: format!("the ISA table has no `{mnemonic}`") })?;
    let mut s = String::new();
    for f in &layout.fields {
        let _ = writeln!(s, "    wire [{}:0] f_{} = issue_word[{} +: {}];", f.width - 1, f.name, f.lo, f.width);
    }
    Ok(s)
}

/// FP32 to FP16, round to nearest even (see the module documentation).
pub(super) fn to_fp16_module() -> String {
    format!(
        r#"
// FP32 -> FP16, round to nearest even (the `half` crate's f16::from_f32).
module {TO_FP16_MODULE} (input [31:0] f, output reg [15:0] h);
    wire sign = f[31];
    wire [7:0] e = f[30:23];
    wire [22:0] m = f[22:0];
    // FP16 exponent field e - 127 + 15, as a signed value.
    wire signed [9:0] he = $signed({{2'b00, e}}) - 10'sd112;
    wire [9:0] shift = 10'sd14 - he;
    wire [47:0] sub = {{1'b1, m, 24'b0}} >> shift;
    always @* begin
        if (e == 8'hff)
            h = {{sign, 5'h1f, m != 0, m[21:13]}} | {{6'b0, m[22], 9'b0}};
        else if (he >= 31)
            h = {{sign, 15'h7c00}};
        else if (he <= 0) begin
            if (shift > 24) h = {{sign, 15'h0}};
            else h = {{sign, 5'h0, sub[33:24]}} + (sub[23] && (sub[22:0] != 0 || sub[24]));
        end else
            h = {{sign, he[4:0], m[22:13]}} + (m[12] && (m[11:0] != 0 || m[13]));
    end
endmodule
"#
    )
}

/// The SORE sequencer around `sat_sore` (see the module documentation).
pub(super) fn sore_unit_module(arch: &ArchConfig) -> Result<String, Error> {
    let lanes = arch.sore.lanes as usize;
    let (n_max, m_max) = (arch.array.n_max as usize, arch.array.m_max as usize);
    let maw = address_bits(arch.buffer_elements(Buffer::Master));
    let waw = address_bits(arch.buffer_elements(Buffer::Wgt));
    let kaw = address_bits(arch.buffer_elements(Buffer::Mask));
    let kept_bus = 32 * super::pe::WGT_BUS_LANES;
    let idx_bus = 4 * super::pe::WGT_BUS_LANES;
    let mask_bits = super::sore::MASK_BITS;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"
// The SORE's sequencer (see satkit's hw/src/rtl/sequencers.rs).
module {SORE_UNIT_MODULE} (
    input clock,
    input issue,
    input [{word_hi}:0] issue_word,
    output reg done,
    output [{lanes}-1:0] m_re,
    output [{lanes}*{maw}-1:0] m_raddr,
    input [{lanes}*32-1:0] m_rdata,
    output [{lanes}*{n_max}-1:0] w_we,
    output [{lanes}*{n_max}*{waw}-1:0] w_waddr,
    output [{lanes}*{n_max}*16-1:0] w_wdata,
    output [{lanes}*{n_max}*8-1:0] i_wdata,
    output [{lanes}*{m_max}-1:0] k_we,
    output [{lanes}*{m_max}*{kaw}-1:0] k_waddr,
    output [{lanes}*{m_max}*8-1:0] k_wdata
);
    localparam LANES = {lanes}, NMAX = {n_max}, MMAX = {m_max};
{fields}    wire f_bp = f_order == {bp};
    wire [4:0] f_m = f_nm[8:4];
    wire [15:0] f_out_rows = f_bp ? f_cols : f_rows;
    wire [15:0] f_per_row = f_m == 0 ? 0 : (f_bp ? f_rows : f_cols) / f_m;
    wire [31:0] f_groups = f_out_rows * f_per_row;
    // Rounds: of L consecutive groups in FF order, of L adjacent columns' next groups in BP.
    wire [31:0] f_rounds = f_bp ? (f_cols + LANES - 1) / LANES * f_per_row : (f_groups + LANES - 1) / LANES;

    reg bp, write_mask, streaming;
    reg [3:0] keep;
    reg [4:0] group;
    reg [15:0] rows, cols, per_row, q, rem, gap;
    reg [31:0] groups, stored_row, round_left, rounds;
    reg [23:0] src, dst, mask_base;
    reg [4:0] i;
    reg [15:0] row [0:LANES-1];
    reg [15:0] gi [0:LANES-1];
    // Empty prunes finish three cycles after the issue, as the simulator's cost says.
    reg empty1, empty2;
    // Write-back pipeline: a round's positions, two cycles after its last read.
    reg wb1, wb2, last1, last2;
    reg [LANES-1:0] act1, act2;
    reg [15:0] wrow1 [0:LANES-1];
    reg [15:0] wgi1 [0:LANES-1];
    reg [15:0] wrow2 [0:LANES-1];
    reg [15:0] wgi2 [0:LANES-1];
    reg [15:0] lanes1, lanes2;
    // The lanes' stream
    reg first_d;
    reg [LANES-1:0] valid_d;

    // BP order: the lanes take adjacent columns (out rows) and walk their groups down together;
    // a round's active lanes, and the cycles its write-back drains (a lane's kept values, and a
    // row of the group's mask, per cycle). FF order writes back in one cycle.
    wire [15:0] out_rows = bp ? cols : rows;
    wire [15:0] round_lanes = out_rows - row[0] < LANES ? out_rows - row[0] : LANES;
    wire [15:0] drain2 = !bp ? 16'd1 : lanes2 > group || !write_mask ? lanes2 : {{11'd0, group}};
    wire round_end = streaming && gap == 0 && i == group - 1;
    // The write-back: cycle 0 (wb2) writes the lanes' outputs as they are, later cycles of a
    // BP drain what was latched then.
    reg [15:0] drain_step, drain_len;
    reg drain_last;
    reg [LANES-1:0] dact;
    reg [15:0] drow [0:LANES-1];
    reg [15:0] dgi [0:LANES-1];
    reg [{kept_bus}-1:0] dvalues [0:LANES-1];
    reg [{idx_bus}-1:0] dindices [0:LANES-1];
    reg [{mask_bits}-1:0] dmask [0:LANES-1];
    wire draining = wb2 || drain_step != 0;
    wire [15:0] step = wb2 ? 16'd0 : drain_step;
    wire [15:0] step_len = wb2 ? drain2 : drain_len;
    // The last round's write-back ends the prune.
    wire drain_done = draining && step + 1 == step_len && (wb2 ? last2 : drain_last);
    integer l;
    always @(posedge clock) begin
        done <= 0;
        empty1 <= 0;
        empty2 <= empty1;
        if (empty2 || drain_done) done <= 1;
        if (issue) begin
            bp <= f_bp; write_mask <= f_write_mask; keep <= f_nm[3:0]; group <= f_m;
            rows <= f_rows; cols <= f_cols; per_row <= f_per_row; groups <= f_groups;
            stored_row <= f_per_row * f_nm[3:0];
            src <= f_src; dst <= f_dst; mask_base <= f_mask;
            q <= f_per_row == 0 ? 0 : LANES / f_per_row;
            rem <= f_per_row == 0 ? 0 : LANES % f_per_row;
            round_left <= f_rounds;
            rounds <= f_rounds;
            streaming <= f_groups != 0;
            empty1 <= f_groups == 0;
            i <= 0;
            gap <= 0;
            for (l = 0; l < LANES; l = l + 1) begin
                row[l] <= f_bp ? l : f_per_row == 0 ? 0 : l / f_per_row;
                gi[l] <= f_bp || f_per_row == 0 ? 0 : l % f_per_row;
            end
        end else if (streaming) begin
            if (gap != 0) gap <= gap - 1;
            else if (round_end) begin
                i <= 0;
                round_left <= round_left - 1;
                if (round_left == 1) streaming <= 0;
                // A BP round with more lanes than M waits for its write-back to drain.
                gap <= bp && round_left != 1 && round_lanes > group ? round_lanes - group : 0;
                for (l = 0; l < LANES; l = l + 1)
                    if (bp) begin
                        if (gi[l] + 1 == per_row) begin
                            gi[l] <= 0;
                            row[l] <= row[l] + LANES;
                        end else gi[l] <= gi[l] + 1;
                    end else if (gi[l] + rem >= per_row) begin
                        gi[l] <= gi[l] + rem - per_row;
                        row[l] <= row[l] + q + 1;
                    end else begin
                        gi[l] <= gi[l] + rem;
                        row[l] <= row[l] + q;
                    end
            end else i <= i + 1;
        end
        wb1 <= round_end;
        last1 <= round_end && round_left == 1;
        lanes1 <= round_lanes;
        wb2 <= wb1;
        last2 <= last1;
        lanes2 <= lanes1;
        for (l = 0; l < LANES; l = l + 1) begin
            wrow1[l] <= row[l]; wgi1[l] <= gi[l];
            wrow2[l] <= wrow1[l]; wgi2[l] <= wgi1[l];
        end
        act2 <= act1;
        first_d <= issue ? 0 : (streaming && gap == 0 && i == 0 && round_left == rounds);
    end

    wire [{kept_bus}-1:0] kept_values [0:LANES-1];
    wire [{idx_bus}-1:0] kept_indices [0:LANES-1];
    wire [{mask_bits}-1:0] kept_mask [0:LANES-1];
    integer dl;
    always @(posedge clock) begin
        if (issue) drain_step <= 0;
        else if (wb2) begin
            drain_step <= drain2 > 1 ? 16'd1 : 16'd0;
            drain_len <= drain2;
            drain_last <= last2;
            dact <= act2;
            for (dl = 0; dl < LANES; dl = dl + 1) begin
                drow[dl] <= wrow2[dl]; dgi[dl] <= wgi2[dl];
                dvalues[dl] <= kept_values[dl]; dindices[dl] <= kept_indices[dl]; dmask[dl] <= kept_mask[dl];
            end
        end else if (drain_step != 0) drain_step <= drain_step + 1 == drain_len ? 16'd0 : drain_step + 1;
    end
    genvar g, j;
    generate
        for (g = 0; g < LANES; g = g + 1) begin : lane
            wire [31:0] group_index = row[g] * per_row + gi[g];
            wire active = streaming && gap == 0 && row[g] < (bp ? cols : rows) && group_index < groups;
            wire [23:0] element = bp ? src + (gi[g] * group + i) * cols + row[g] : src + row[g] * cols + gi[g] * group + i;
            assign m_re[g] = active;
            assign m_raddr[g*{maw} +: {maw}] = element;
            always @(posedge clock) begin
                valid_d[g] <= active;
                if (round_end) act1[g] <= active;
            end
            // The lane's write-back, live in its first cycle and latched after
            wire w_act = wb2 ? act2[g] : dact[g];
            wire [15:0] w_row = wb2 ? wrow2[g] : drow[g];
            wire [15:0] w_gi = wb2 ? wgi2[g] : dgi[g];
            wire [{kept_bus}-1:0] w_values = wb2 ? kept_values[g] : dvalues[g];
            wire [{idx_bus}-1:0] w_indices = wb2 ? kept_indices[g] : dindices[g];
            wire [{mask_bits}-1:0] w_mask = wb2 ? kept_mask[g] : dmask[g];
            for (j = 0; j < NMAX; j = j + 1) begin : slots
                wire [15:0] rounded;
                {TO_FP16_MODULE} round_kept (.f(w_values[j*32 +: 32]), .h(rounded));
                assign w_we[g*NMAX+j] = draining && w_act && j < keep && (!bp || step == g);
                assign w_waddr[(g*NMAX+j)*{waw} +: {waw}] = dst + w_row * stored_row + w_gi * keep + j;
                assign w_wdata[(g*NMAX+j)*16 +: 16] = rounded;
                assign i_wdata[(g*NMAX+j)*8 +: 8] = {{4'h0, w_indices[j*4 +: 4]}};
            end
            for (j = 0; j < MMAX; j = j + 1) begin : mask_bytes
                assign k_we[g*MMAX+j] = draining && w_act && write_mask && j < group && (!bp || step == j);
                assign k_waddr[(g*MMAX+j)*{kaw} +: {kaw}] =
                    bp ? mask_base + (w_gi * group + j) * cols + w_row : mask_base + w_row * cols + w_gi * group + j;
                assign k_wdata[(g*MMAX+j)*8 +: 8] = {{7'h0, w_mask[j]}};
            end
        end
    endgenerate

    sat_sore sore (
        .clock(clock), .keep(keep), .group_size(group), .start(first_d),
{lane_ports}
    );
endmodule
"#,
        word_hi = WORD_BITS - 1,
        fields = field_wires("prune")?,
        bp = PruneOrder::Bp.to_bits(),
        lane_ports = (0..lanes)
            .map(|l| format!(
                "        .valid${l}(valid_d[{l}]), .value${l}(m_rdata[{l}*32 +: 32]), .done${l}(), .kept_values${l}(kept_values[{l}]), \
                 .kept_indices${l}(kept_indices[{l}]), .mask${l}(kept_mask[{l}])"
            ))
            .collect::<Vec<_>>()
            .join(",\n"),
    );
    Ok(s)
}

/// The WUVE sequencer around `sat_wuve` (see the module documentation).
pub(super) fn wuve_unit_module(arch: &ArchConfig) -> Result<String, Error> {
    let lanes = arch.wuve.lanes as usize;
    let latency = arch.wuve.pipeline_latency as usize;
    let maw = address_bits(arch.buffer_elements(Buffer::Master));
    let aaw = address_bits(arch.buffer_elements(Buffer::Acc));
    let kaw = address_bits(arch.buffer_elements(Buffer::Mask));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"
// The WUVE's sequencer (see satkit's hw/src/rtl/sequencers.rs).
module {WUVE_UNIT_MODULE} (
    input clock,
    input issue,
    input [{word_hi}:0] issue_word,
    output reg done,
    // master: per lane weight then momentum, then the four hyperparameters
    output [2*{lanes}+3:0] m_re,
    output [(2*{lanes}+4)*{maw}-1:0] m_raddr,
    input [(2*{lanes}+4)*32-1:0] m_rdata,
    output [{lanes}-1:0] g_re,
    output [{lanes}*{aaw}-1:0] g_raddr,
    input [{lanes}*32-1:0] g_rdata,
    output [{lanes}-1:0] k_re,
    output [{lanes}*{kaw}-1:0] k_raddr,
    input [{lanes}*8-1:0] k_rdata,
    output [2*{lanes}-1:0] m_we,
    output [2*{lanes}*{maw}-1:0] m_waddr,
    output [2*{lanes}*32-1:0] m_wdata
);
    localparam LANES = {lanes}, P = {latency}, MASTER_BANKS = {master_banks};
{fields}
    reg running, use_mask, first1;
    // The momenta's delay behind the weights (ArchConfig::wuve_momentum_delay): the least j
    // whose runs start (momentum - weight - j LANES) mod MASTER_BANKS apart, within
    // [LANES, MASTER_BANKS - LANES].
    function apart_ok(input [23:0] d);
        apart_ok = d % MASTER_BANKS >= LANES && d % MASTER_BANKS <= MASTER_BANKS - LANES;
    endfunction
    wire [23:0] f_apart = f_momentum - f_weight;
    wire [1:0] f_delay = apart_ok(f_apart) ? 2'd0 : apart_ok(f_apart - LANES) ? 2'd1 : 2'd2;
    reg [1:0] delay;
    // The momenta's writes one and two cycles late: valid per lane, the batch base, the data.
    reg [LANES-1:0] late1_valid, late2_valid;
    reg [23:0] late1_base, late2_base;
    reg [LANES*32-1:0] late1_data, late2_data;
    reg late1_last, late2_last;
    wire [LANES*32-1:0] momentum_out;
    reg [23:0] count, weight, momentum, grad, mask_base;
    reg [23:0] batch, left;
    reg [3*32+31:0] hyper_kept;
    // Empty updates finish P + 2 cycles after the issue.
    reg [P:0] empty;
    // The batch base of each pipeline stage: [0] is the batch in the lanes' first cycle.
    reg [23:0] base [0:P];
    reg [P:0] last;
    reg [LANES-1:0] valid_d;
    wire [LANES-1:0] out_valid;

    always @(posedge clock) begin
        done <= 0;
        empty <= (empty << 1) | (issue && f_count == 0);
        if (empty[P]) done <= 1;
        if (issue) begin
            use_mask <= f_use_mask; count <= f_count; weight <= f_weight; momentum <= f_momentum;
            grad <= f_grad; mask_base <= f_mask; delay <= f_delay;
            batch <= 0; left <= (f_count + LANES - 1) / LANES; running <= f_count != 0;
        end else if (running) begin
            batch <= batch + LANES;
            left <= left - 1;
            if (left == 1) running <= 0;
        end
        first1 <= issue;
        if (first1) hyper_kept <= m_rdata[2*LANES*32 +: 4*32];
        base[0] <= batch;
        last[0] <= running && left == 1;
        late1_base <= base[P]; late1_data <= momentum_out; late2_base <= late1_base; late2_data <= late1_data;
        // An update with no delay leaves its last batch in the stages: the next issue drops it.
        late1_valid <= issue ? {{LANES{{1'b0}}}} : out_valid;
        late2_valid <= issue ? {{LANES{{1'b0}}}} : late1_valid;
        late1_last <= !issue && last[P] && |out_valid;
        late2_last <= !issue && late1_last;
        // Done after the last momenta's write.
        if (delay == 0 ? last[P] && |out_valid : delay == 1 ? late1_last : late2_last) done <= 1;
    end
    // The momenta's write, `delay` cycles behind the weights'.
    wire [LANES-1:0] momentum_we = delay == 0 ? out_valid : delay == 1 ? late1_valid : late2_valid;
    wire [23:0] momentum_base = delay == 0 ? base[P] : delay == 1 ? late1_base : late2_base;
    wire [LANES*32-1:0] momentum_data = delay == 0 ? momentum_out : delay == 1 ? late1_data : late2_data;
    genvar g;
    generate
        for (g = 1; g <= P; g = g + 1) begin : stages
            always @(posedge clock) begin
                base[g] <= base[g-1];
                last[g] <= last[g-1];
            end
        end
    endgenerate

    wire [31:0] new_weight [0:LANES-1];
    wire [31:0] new_momentum [0:LANES-1];
    generate
        for (g = 0; g < 4; g = g + 1) begin : hyper_reads
            // Read once, in the issue cycle, and kept from the next cycle on.
            assign m_re[2*LANES+g] = issue && f_count != 0;
            assign m_raddr[(2*LANES+g)*{maw} +: {maw}] = f_hyper + g;
        end
        for (g = 0; g < LANES; g = g + 1) begin : lane
            wire [23:0] e = batch + g;
            wire active = running && e < count;
            assign m_re[g] = active;
            assign m_re[LANES+g] = active;
            assign g_re[g] = active;
            assign k_re[g] = active && use_mask;
            assign m_raddr[g*{maw} +: {maw}] = weight + e;
            assign m_raddr[(LANES+g)*{maw} +: {maw}] = momentum + e;
            assign g_raddr[g*{aaw} +: {aaw}] = grad + e;
            assign k_raddr[g*{kaw} +: {kaw}] = mask_base + e;
            always @(posedge clock) valid_d[g] <= active;
            wire [23:0] out_e = base[P] + g;
            assign m_we[g] = out_valid[g];
            assign m_we[LANES+g] = momentum_we[g];
            assign m_waddr[g*{maw} +: {maw}] = weight + out_e;
            wire [23:0] momentum_e = momentum_base + g;
            assign m_waddr[(LANES+g)*{maw} +: {maw}] = momentum + momentum_e;
            assign m_wdata[g*32 +: 32] = new_weight[g];
            assign momentum_out[g*32 +: 32] = new_momentum[g];
            assign m_wdata[(LANES+g)*32 +: 32] = momentum_data[g*32 +: 32];
        end
    endgenerate

    sat_wuve wuve (
        .clock(clock),
        .learning_rate(hyper_kept[0 +: 32]), .momentum_factor(hyper_kept[32 +: 32]),
        .weight_decay(hyper_kept[64 +: 32]), .srste_decay(hyper_kept[96 +: 32]),
{lane_ports}
    );
endmodule
"#,
        word_hi = WORD_BITS - 1,
        fields = field_wires("update")?,
        master_banks = arch.buffers.master_banks,
        lane_ports = (0..lanes)
            .map(|l| format!(
                "        .valid${l}(valid_d[{l}]), .weight${l}(m_rdata[{l}*32 +: 32]), .momentum${l}(m_rdata[({lanes}+{l})*32 +: 32]), \
                 .grad${l}(g_rdata[{l}*32 +: 32]), .pruned${l}(use_mask && k_rdata[{l}*8 +: 8] == 0), .out_valid${l}(out_valid[{l}]), \
                 .new_weight${l}(new_weight[{l}]), .new_momentum${l}(new_momentum[{l}])"
            ))
            .collect::<Vec<_>>()
            .join(",\n"),
    );
    Ok(s)
}

/// The conversions between the buffers' element types and FP32 (besides [`to_fp16_module`]).
pub(super) fn conversion_modules() -> String {
    r#"
// FP16 -> FP32, exact (a NaN gets the quiet bit, as the `half` crate's f16::to_f32).
module sat_f16_to_f32 (input [15:0] h, output reg [31:0] f);
    wire [4:0] e = h[14:10];
    wire [9:0] m = h[9:0];
    integer lz, step;
    reg [9:0] norm;
    always @* begin
        // Shift the leading one to bit 9 (ten steps at most, a constant bound for synthesis).
        lz = 0;
        norm = m;
        for (step = 0; step < 10; step = step + 1)
            if (!norm[9]) begin
                norm = norm << 1;
                lz = lz + 1;
            end
        if (e == 5'h1f)
            f = {h[15], 8'hff, m != 0, m[8:0], 13'h0} | {9'h0, m[9], 22'h0};
        else if (e == 0 && m == 0)
            f = {h[15], 31'h0};
        else if (e == 0)
            // 0.m x 2^-14: the leading one of m moves to the hidden bit.
            f = {h[15], 8'd112 - lz[7:0], norm[8:0], 14'h0};
        else
            f = {h[15], {3'h0, e} + 8'd112, m, 13'h0};
    end
endmodule

// A byte read as an integer, to FP32 (exact).
module sat_u8_to_f32 (input [7:0] u, output reg [31:0] f);
    integer p, step;
    reg [7:0] norm;
    always @* begin
        // Shift the leading one to bit 7 (seven steps at most, a constant bound for synthesis).
        p = 7;
        norm = u;
        for (step = 0; step < 7; step = step + 1)
            if (!norm[7]) begin
                norm = norm << 1;
                p = p - 1;
            end
        f = u == 0 ? 32'h0 : {1'b0, 8'd127 + p[7:0], norm[6:0], 16'h0};
    end
endmodule

// FP32 to a byte: clamp to 0..=255, truncate toward zero, NaN to 0.
module sat_f32_to_u8 (input [31:0] f, output reg [7:0] u);
    wire [7:0] e = f[30:23];
    wire [23:0] m = {1'b1, f[22:0]};
    always @* begin
        if (e == 8'hff && f[22:0] != 0) u = 0;       // NaN
        else if (f[31]) u = 0;                       // negative, -0, -inf
        else if (e >= 8'd135) u = 8'hff;             // 256 and above, +inf
        else if (e < 8'd127) u = 0;                  // below 1
        else u = m >> (8'd150 - e);                  // 2^(e-127) <= f < 256
    end
endmodule
"#
    .to_string()
}

/// `localparam`s of every vector op's and buffer's code (`OP_COPY`, `BUF_ACT`, ...), from the
/// ISA's tables.
fn code_params() -> String {
    let op = VecOp::ALL.iter().map(|o| format!("OP_{} = {}", o.name().to_uppercase(), o.to_bits()));
    let buffer = Buffer::ALL.iter().map(|b| format!("BUF_{} = {}", b.name().to_uppercase(), b.to_bits()));
    format!("    localparam {};\n", op.chain(buffer).collect::<Vec<_>>().join(", "))
}

/// A Verilog expression for the bank mask (banks - 1) of the buffer the 3-bit wire `buffer`
/// names.
fn bank_mask(arch: &ArchConfig, buffer: &str) -> String {
    let (others, last) = Buffer::ALL.split_at(Buffer::ALL.len() - 1);
    others.iter().rev().fold(format!("24'd{}", arch.banks(last[0]) - 1), |rest, &b| {
        format!("{buffer} == BUF_{} ? 24'd{} : {rest}", b.name().to_uppercase(), arch.banks(b) - 1)
    })
}

/// The vector unit (see the module documentation).
pub(super) fn vector_unit_module(arch: &ArchConfig) -> Result<String, Error> {
    let lanes = arch.vector.lanes as usize;
    let latency = arch.vector.pipeline_latency as usize;
    let aw = sram_address_bits(arch);
    let line_on = arch.vector.has_pool_line_buffer();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"
// The vector unit (see satkit's hw/src/rtl/sequencers.rs): every vec op.
module {VECTOR_UNIT_MODULE} (
    input clock,
    input issue,
    input [{word_hi}:0] issue_word,
    output reg done,
    output reg unsupported,
    output reg bad_label,
    // Reads: a then b, each {lanes} lanes, on every buffer (the enables on a_rbuf's and
    // b_rbuf's only); each buffer's data in its format
    output [2:0] a_rbuf,
    output [2:0] b_rbuf,
    output [2*{lanes}-1:0] re,
    output [2*{lanes}*{aw}-1:0] raddr,
    input [2*{lanes}*16-1:0] act_rdata,
    input [2*{lanes}*16-1:0] wgt_rdata,
    input [2*{lanes}*8-1:0] idx_rdata,
    input [2*{lanes}*32-1:0] acc_rdata,
    input [2*{lanes}*32-1:0] master_rdata,
    input [2*{lanes}*8-1:0] mask_rdata,
    // Writes, in the destination's format
    output [2:0] wbuf,
    output [{lanes}-1:0] we,
    output [{lanes}*{aw}-1:0] waddr,
    output [{lanes}*32-1:0] wdata
);
    localparam LANES = {lanes}, P = {latency};
    // The pooling gradients' line buffer: LR rows (a power of two) of LC FP32 partial sums,
    // if LINE_ON (without it, one slot that nothing uses).
    localparam LINE_ON = {line_on}, LR = {line_rows}, LC = {line_cols}, LINE = LR * LC;
{codes}{fields}    // The row ops: softmax_xent, softmax (three passes per row) and softmax_grad (two).
    wire f_softmax = f_op == OP_SOFTMAX_XENT || f_op == OP_SOFTMAX || f_op == OP_SOFTMAX_GRAD;
    wire f_xent = f_op == OP_SOFTMAX_XENT;
    wire f_pool = f_op == OP_MAXPOOL || f_op == OP_AVGPOOL || f_op == OP_MAXPOOL_GRAD || f_op == OP_AVGPOOL_GRAD;
    wire f_pool_grad = f_op == OP_MAXPOOL_GRAD || f_op == OP_AVGPOOL_GRAD;
    // Pooling gradients over overlapping windows only for windows and planes the line buffer holds.
    // Normalizations (of one row or more).
    wire f_norm = f_op == OP_NORM_STATS || f_op == OP_NORM_APPLY || f_op == OP_NORM_GRAD_STATS || f_op == OP_NORM_GRAD_APPLY;
    wire f_norm_runs = f_norm && f_count != 0 && f_p1 <= 1;
    wire f_runs = f_op == OP_COPY || f_op == OP_ADD || f_op == OP_RELU || f_op == OP_RELU_GRAD || f_softmax
                  || f_op == OP_GELU || f_op == OP_GELU_GRAD || f_norm_runs
                  || (f_pool && (!f_pool_grad || f_p3 >= f_p2 || (LINE_ON && f_p2 <= LR && f_p1 <= LC)));

    reg running;
    reg [4:0] op;
    reg [2:0] a_buf, b_buf, dst_buf;
    reg [23:0] count, a_base, b_base, dst_base, batch, left;
    reg [2:0] a_buf_d, b_buf_d;
    // Unsupported or empty instructions finish P + 2 cycles after the issue.
    reg [P:0] idle;
    // The last address cycle, through the pipeline.
    reg [P:0] last;
    // Element-wise and softmax_xent: the write offset of lane 0 and the lanes' enables, known
    // when the addresses go out and used when the data is in.
    reg [23:0] base0;
    reg [LANES-1:0] valid0;

    // softmax_xent: the step whose addresses are out (row, pass, j = first class of the batch,
    // the mean loss's step) and the step whose data is in (*_d).
    reg sm_running, sm_loss_step, sm_d, sm_first_d, sm_loss_d;
    reg [1:0] sm_pass, sm_pass_d, sm_last_pass;
    reg [23:0] sm_row, sm_row_base, sm_j, sm_j_d;
    reg [15:0] classes;
    // Per row: the maximum, the label's logit and the sum of exponentials; the loss's sum.
    reg [31:0] mx, xl, row_sum, loss;

    // Pooling: planes of ph x pw, window pk, stride ps, outputs poh x pow. A gradient first
    // writes zeros over its planes (z counts them), then walks the windows. The walker is the
    // position of the batch's first element: plane, output row and column, window row and
    // column, and the offsets they give (plane base, output row's top-left row, window's
    // top-left, window row, output index).
    reg pl_zeroing, pl_walking, pl_d, pl_zero_d;
    reg [15:0] ph, pw, poh, pow;
    reg [7:0] pk, ps;
    reg [23:0] pn, plane_size, stride_rows, z, z_total, z_d;
    reg [23:0] w_plane, w_pbase, w_rowb, w_win, w_row_off, w_out;
    reg [15:0] w_orow, w_ocol, w_wr, w_wc;
    reg [7:0] w_dr, w_dc;
    // Normalizations: vector j (nm_vec) of nm_len; per row, the row's elements i of nm_axis at
    // offsets nm_vec_base + i, the batch's first element i and offset (nm_i, nm_off).
    reg nm_running, nm_d, nm_first_d, nm_last_d;
    reg [1:0] nm_pass, nm_pass_d, nm_last_pass;
    reg [23:0] nm_vec, nm_vec_d, nm_i, nm_len, nm_axis, nm_cols, nm_vec_base, nm_off, nm_off_d;
    // The row chains' running sums, the row's mean.
    reg [31:0] nm_acc_a, nm_acc_b, nm_mean;
    wire nm_row_end = nm_i + LANES >= nm_axis;
    // In blocks (nm_blk: all but norm_stats per row): the nc_lanes columns (nm_col) or rows
    // from nm_vec. A block is a list of steps (nm_pass): walks (NC_WALK: per column, the rows
    // one a cycle, lane g on column g; per row, the block's rows one after the other), reads of
    // one run of statistics a cycle (NC_STAT), one column's or row's statistics a cycle on the
    // shared units (NC_SERIAL), and writes of one run of statistics a cycle (NC_WRITE). Slot k
    // of the registers below holds column or row k's running sums and statistics: the mean and
    // rstd, and in norm_grad_apply sum dy and sum dy x, then the terms sum_dy / n and
    // sum_dyxhat / n in their place.
    localparam NC_WALK = 2'd0, NC_STAT = 2'd1, NC_SERIAL = 2'd2, NC_WRITE = 2'd3;
    reg nm_col, nm_blk, nc_first_d;
    reg [1:0] nc_kind_d;
    reg [23:0] nc_k, nc_k_d, nc_lanes, nc_lanes_d, nc_stat_off;
    reg [31:0] col_acc_a [0:LANES-1];
    reg [31:0] col_acc_b [0:LANES-1];
    reg [31:0] col_mean [0:LANES-1];
    reg [31:0] col_rstd [0:LANES-1];
    wire [1:0] nc_kind = op == OP_NORM_STATS ? (nm_pass[0] ? NC_SERIAL : NC_WALK)
                       : op == OP_NORM_APPLY ? (nm_pass == 0 ? NC_STAT : NC_WALK)
                       : op == OP_NORM_GRAD_STATS ? (nm_pass == 0 ? NC_WALK : NC_WRITE)
                       : nm_pass == 0 ? NC_STAT : nm_pass == 1 ? NC_SERIAL : NC_WALK;
    wire [23:0] nc_step = nc_kind == NC_WALK && nm_col ? nm_axis : nc_kind == NC_WALK || nc_kind == NC_SERIAL ? nc_lanes
                        : nc_kind == NC_WRITE || op == OP_NORM_APPLY ? 24'd2 : 24'd4;
    // A walk per row moves to the block's next row at each row's end.
    wire nc_row_walk = !nm_col && nc_kind == NC_WALK;
    // norm_stats' second walk sums (x - mean)^2.
    wire nm_deviations = nm_col ? nm_pass_d == 2 : nm_pass_d == 1;
    // The running window maximum (value, offset in the plane, row and column) and sum across
    // cycles.
    reg [31:0] best, window_sum;
    reg [23:0] best_pos;
    reg [15:0] best_r, best_c;
    // A gradient over overlapping windows (pl_overlap) adds each share to the element's FP32
    // partial sum in the line buffer: element (r, c) at slot (r mod LR) LC + c. Each of the LR
    // rows of slots belongs to one row of one plane (its owner); a slot is valid once written
    // for its row's owner in this instruction.
    reg pl_overlap;
    reg [31:0] line [0:LINE-1];
    reg [39:0] line_owner [0:LR-1];
    reg [LINE-1:0] line_valid;
    wire [23:0] f_oh = (f_p0 - f_p2) / f_p3 + 1;
    wire [23:0] f_ow = (f_p1 - f_p2) / f_p3 + 1;

    // The walker of each lane: [g] is lane g's element, [LANES] the next batch's first.
    wire [23:0] t_plane [0:LANES];
    wire [23:0] t_pbase [0:LANES];
    wire [23:0] t_rowb [0:LANES];
    wire [23:0] t_win [0:LANES];
    wire [23:0] t_row_off [0:LANES];
    wire [23:0] t_out [0:LANES];
    wire [15:0] t_orow [0:LANES];
    wire [15:0] t_ocol [0:LANES];
    wire [7:0] t_dr [0:LANES];
    wire [7:0] t_dc [0:LANES];
    // The window's top row and left column in the plane
    wire [15:0] t_wr [0:LANES];
    wire [15:0] t_wc [0:LANES];
    assign t_plane[0] = w_plane; assign t_pbase[0] = w_pbase; assign t_rowb[0] = w_rowb;
    assign t_win[0] = w_win; assign t_row_off[0] = w_row_off; assign t_out[0] = w_out;
    assign t_orow[0] = w_orow; assign t_ocol[0] = w_ocol; assign t_dr[0] = w_dr; assign t_dc[0] = w_dc;
    assign t_wr[0] = w_wr; assign t_wc[0] = w_wc;
    // The prefix walk: a lane takes its element only when no earlier lane's different element
    // of the cycle falls on its bank of the buffer walked (a's; avgpool_grad's destination,
    // which it writes at every element; for maxpool_grad the fewer banks of both), and the
    // walker moves on by the lanes taken, walk_step (the simulator's PoolDims::walk_cycles).
    // Two elements share a bank when their offsets agree in the bank bits, wherever the operand
    // starts. maxpool_grad writes at each window's maximum when the window ends: a cycle that
    // started inside a window ends with it when another whole window could end after it, so
    // the windows ending in a cycle are that one alone or windows read whole in the cycle; and
    // so that cycles seldom start inside a window, one that started at a window's start ends
    // at its last window end rather than inside a later window.
    wire [23:0] a_bank_mask = {a_bank_mask};
    wire [23:0] dst_bank_mask = {dst_bank_mask};
    wire [23:0] walk_bank_mask = op == OP_AVGPOOL_GRAD ? dst_bank_mask
                               : op == OP_MAXPOOL_GRAD ? a_bank_mask & dst_bank_mask : a_bank_mask;
    wire [23:0] t_elem [0:LANES-1];
    wire [LANES-1:0] walk_clash;
    // Lane g's element is the last of its window.
    wire [LANES-1:0] window_last;
    wire inside_a_window = w_dr != 8'd0 || w_dc != 8'd0;
    // The window's element count.
    wire [15:0] window_elements = {{8'h0, pk}} * {{8'h0, pk}};
    localparam [15:0] ALL_LANES = LANES;
    reg [15:0] walk_step, first_end, last_end;
    integer wl;
    always @* begin
        walk_step = ALL_LANES;
        for (wl = LANES - 1; wl >= 1; wl = wl - 1) if (walk_clash[wl]) walk_step = wl[15:0];
        first_end = ALL_LANES;
        for (wl = LANES - 1; wl >= 0; wl = wl - 1) if (window_last[wl]) first_end = wl[15:0];
        // The last window end among the lanes taken (ALL_LANES: none).
        last_end = ALL_LANES;
        for (wl = 0; wl < LANES; wl = wl + 1) if (window_last[wl] && wl[15:0] < walk_step) last_end = wl[15:0];
        if (op == OP_MAXPOOL_GRAD && inside_a_window) begin
            if (first_end != ALL_LANES && ALL_LANES - 16'd1 - first_end >= window_elements && first_end + 16'd1 < walk_step)
                walk_step = first_end + 16'd1;
        end else if (op == OP_MAXPOOL_GRAD && last_end != ALL_LANES && !window_last[walk_step - 16'd1])
            // A cycle that started at a window's start and would end inside a later one ends at
            // its last window end instead.
            walk_step = last_end + 16'd1;
    end

    assign wbuf = dst_buf;
    assign a_rbuf = a_buf;
    // norm_grad_apply reads x from the destination on b's lanes.
    assign b_rbuf = nm_running && op == OP_NORM_GRAD_APPLY && nc_kind == NC_WALK ? dst_buf : b_buf;
    always @(posedge clock) begin
        done <= 0;
        idle <= (idle << 1) | (issue && (!f_runs || (f_count == 0 && !f_xent)));
        if (idle[P] || last[P]) done <= 1;
        last[0] <= 0;
        if (issue) begin
            unsupported <= !f_runs;
            op <= f_op; a_buf <= f_a_buf; b_buf <= f_b_buf; dst_buf <= f_dst_buf;
            count <= f_count; a_base <= f_a; b_base <= f_b; dst_base <= f_dst;
            batch <= 0; left <= (f_count + LANES - 1) / LANES;
            running <= f_runs && !f_softmax && !f_pool && !f_norm && f_count != 0;
            sm_running <= f_runs && f_softmax && (f_xent || f_count != 0); sm_loss_step <= f_count == 0;
            sm_pass <= 0; sm_last_pass <= f_op == OP_SOFTMAX_GRAD ? 2'd1 : 2'd2; sm_row <= 0; sm_row_base <= 0;
            sm_j <= 0; classes <= f_p0;
            pl_zeroing <= f_runs && f_pool_grad && f_count != 0; pl_walking <= f_runs && f_pool && !f_pool_grad && f_count != 0;
            ph <= f_p0; pw <= f_p1; pk <= f_p2; ps <= f_p3; poh <= f_oh[15:0]; pow <= f_ow[15:0]; pn <= f_count;
            plane_size <= f_p0 * f_p1; stride_rows <= f_p3 * f_p1; z <= 0; z_total <= f_count * f_p0 * f_p1;
            w_plane <= 0; w_pbase <= 0; w_rowb <= 0; w_win <= 0; w_row_off <= 0; w_out <= 0;
            w_orow <= 0; w_ocol <= 0; w_dr <= 0; w_dc <= 0; w_wr <= 0; w_wc <= 0;
            pl_overlap <= LINE_ON && f_pool_grad && f_p3 < f_p2;
            nm_running <= f_norm_runs; nm_cols <= f_p0;
            nm_len <= f_p1[0] ? f_count : {{8'h0, f_p0}}; nm_axis <= f_p1[0] ? {{8'h0, f_p0}} : f_count;
            nm_vec <= 0; nm_i <= 0; nm_pass <= 0; nm_vec_base <= 0; nm_off <= 0;
            nm_col <= f_norm && !f_p1[0]; nm_blk <= f_norm && !(f_p1[0] && f_op == OP_NORM_STATS);
            nc_k <= 0; nc_stat_off <= 0;
            nc_lanes <= f_p1[0] ? (f_count < LANES ? f_count : LANES) : f_p0 < LANES ? {{8'h0, f_p0}} : LANES;
            nm_last_pass <= f_op == OP_NORM_STATS ? (f_p1[0] ? 2'd1 : 2'd3) : f_op == OP_NORM_GRAD_APPLY ? 2'd2 : 2'd1;
        end else if (nm_running && nm_blk) begin
            if (nc_row_walk && !nm_row_end) begin
                // The row's next batch.
                nm_i <= nm_i + LANES;
                nm_off <= nm_off + LANES;
            end else if (nc_k + 1 == nc_step) begin
                // The step's last cycle. A walk per row leaves nm_vec_base at the next block's
                // first row.
                nc_k <= 0;
                nm_i <= 0;
                nm_off <= nm_col ? nm_vec : nc_row_walk ? nm_vec_base + nm_cols : nm_vec_base;
                if (nc_row_walk) nm_vec_base <= nm_vec_base + nm_cols;
                nc_stat_off <= nm_vec;
                if (nm_pass != nm_last_pass) nm_pass <= nm_pass + 1;
                else begin
                    nm_pass <= 0;
                    nm_vec <= nm_vec + LANES;
                    if (nm_col) nm_off <= nm_vec + LANES;
                    nc_stat_off <= nm_vec + LANES;
                    nc_lanes <= nm_len - nm_vec - LANES < LANES ? nm_len - nm_vec - LANES : LANES;
                    if (nm_vec + LANES >= nm_len) begin nm_running <= 0; last[0] <= 1; end
                end
            end else begin
                // The next row of a walk, the next run of statistics.
                nc_k <= nc_k + 1;
                nm_i <= 0;
                if (nm_col) nm_off <= nm_off + nm_cols;
                if (nc_row_walk) begin nm_off <= nm_vec_base + nm_cols; nm_vec_base <= nm_vec_base + nm_cols; end
                nc_stat_off <= nc_stat_off + nm_len;
            end
        end else if (nm_running) begin
            // norm_stats per row: two passes over each row.
            if (nm_row_end) begin
                nm_i <= 0;
                nm_off <= nm_vec_base;
                if (nm_pass != nm_last_pass) nm_pass <= nm_pass + 1;
                else begin
                    nm_pass <= 0;
                    nm_vec <= nm_vec + 1;
                    nm_vec_base <= nm_vec_base + nm_cols;
                    nm_off <= nm_vec_base + nm_cols;
                    if (nm_vec + 1 == nm_len) begin nm_running <= 0; last[0] <= 1; end
                end
            end else begin
                nm_i <= nm_i + LANES;
                nm_off <= nm_off + LANES;
            end
        end else if (running) begin
            batch <= batch + LANES;
            left <= left - 1;
            if (left == 1) begin running <= 0; last[0] <= 1; end
        end else if (sm_running) begin
            if (sm_loss_step) begin sm_running <= 0; last[0] <= 1; end
            else if (sm_j + LANES < {{8'h0, classes}}) sm_j <= sm_j + LANES;
            else begin
                sm_j <= 0;
                if (sm_pass != sm_last_pass) sm_pass <= sm_pass + 1;
                else begin
                    sm_pass <= 0;
                    sm_row <= sm_row + 1;
                    sm_row_base <= sm_row_base + {{8'h0, classes}};
                    // softmax_xent ends with its mean loss's step, the others with the last row.
                    if (sm_row + 1 == count) begin
                        if (op == OP_SOFTMAX_XENT) sm_loss_step <= 1;
                        else begin sm_running <= 0; last[0] <= 1; end
                    end
                end
            end
        end else if (pl_zeroing) begin
            z <= z + LANES;
            if (z + LANES >= z_total) begin pl_zeroing <= 0; pl_walking <= 1; end
        end else if (pl_walking) begin
            w_plane <= t_plane[walk_step]; w_pbase <= t_pbase[walk_step]; w_rowb <= t_rowb[walk_step];
            w_win <= t_win[walk_step]; w_row_off <= t_row_off[walk_step]; w_out <= t_out[walk_step];
            w_orow <= t_orow[walk_step]; w_ocol <= t_ocol[walk_step]; w_dr <= t_dr[walk_step]; w_dc <= t_dc[walk_step];
            w_wr <= t_wr[walk_step]; w_wc <= t_wc[walk_step];
            if (t_plane[walk_step] >= pn) begin pl_walking <= 0; last[0] <= 1; end
        end
        a_buf_d <= a_buf;
        b_buf_d <= b_rbuf;
        nm_d <= nm_running; nm_pass_d <= nm_pass; nm_vec_d <= nm_vec; nm_first_d <= nm_i == 0;
        nm_last_d <= nm_row_end; nm_off_d <= nm_off;
        nc_kind_d <= nc_kind; nc_k_d <= nc_k; nc_lanes_d <= nc_lanes; nc_first_d <= nc_k == 0;
        base0 <= sm_running ? sm_row_base + sm_j : batch;
        sm_d <= sm_running; sm_pass_d <= sm_pass; sm_j_d <= sm_j; sm_first_d <= sm_j == 0; sm_loss_d <= sm_loss_step;
        pl_d <= pl_walking; pl_zero_d <= pl_zeroing; z_d <= z;
    end
    genvar g, h;
    generate
        for (g = 1; g <= P; g = g + 1) begin : stages
            always @(posedge clock) last[g] <= last[g-1];
        end
    endgenerate

    // Operands in FP32, per lane
    wire [31:0] a_val [0:LANES-1];
    wire [31:0] b_val [0:LANES-1];
    // softmax_xent's per-lane results and chains across the lanes (in class order)
    wire [31:0] gradient [0:LANES-1];
    wire [31:0] mx_chain [0:LANES];
    wire [31:0] sum_chain [0:LANES];
    wire [31:0] xl_chain [0:LANES];
    // Pooling's chains across the lanes (in element order): window maximum, its offset, sum
    wire [31:0] best_chain [0:LANES];
    wire [23:0] best_pos_chain [0:LANES];
    wire [15:0] best_r_chain [0:LANES];
    wire [15:0] best_c_chain [0:LANES];
    // Each lane's share of a gradient: whether it adds one, the element (plane, row, column),
    // its line slot, and the new partial sum
    wire [LANES-1:0] pg_hit;
    wire [55:0] pg_key [0:LANES-1];
    wire [31:0] pg_slot [0:LANES-1];
    wire [15:0] pg_line_row [0:LANES-1];
    wire [31:0] pg_new [0:LANES-1];
    wire [31:0] pool_sum_chain [0:LANES];
    // Each lane's write in the data cycle, and through the pipeline ([0] is the data cycle)
    wire [LANES-1:0] lane_we;
    wire [23:0] lane_off [0:LANES-1];
    wire [31:0] result [0:LANES-1];
    reg [LANES-1:0] we_stage [0:P];
    reg [23:0] off_stage [0:P][0:LANES-1];
    reg [31:0] stage [0:P][0:LANES-1];

    // The row's label, from b's lane 0: a class index if it is an integral value in 0..classes.
    wire [31:0] label_f = b_val[0];
    wire [7:0] label_e = label_f[30:23];
    wire [23:0] label_m = {{1'b1, label_f[22:0]}};
    wire [23:0] label_fraction = label_m & (24'hffffff >> (label_e - 8'd126));
    wire label_zero = label_f[30:0] == 0;
    wire [23:0] label = label_zero || label_e < 8'd127 || label_e > 8'd150 ? 24'h0 : label_m >> (8'd150 - label_e);
    wire label_ok = label_zero
        || (!label_f[31] && label_e >= 8'd127 && label_e <= 8'd150 && label_fraction == 0 && label < {{8'h0, classes}});
    // rows as FP32; the row's loss ln(sum) + mx - x_label; the mean loss
    wire [31:0] rows_f, ln_sum, ln_plus_mx, row_loss, new_loss, mean_loss;
    sat_u24_to_f32 rows_to_float (.u(count), .f(rows_f));
    sat_fp32_ln ln (.x(row_sum), .y(ln_sum));
    sat_fp32_add plus_mx (.a(ln_sum), .b(mx), .sum(ln_plus_mx));
    sat_fp32_add minus_label (.a(ln_plus_mx), .b({{~xl[31], xl[30:0]}}), .sum(row_loss));
    sat_fp32_add add_loss (.a(loss), .b(row_loss), .sum(new_loss));
    sat_fp32_div mean (.a(loss), .b(rows_f), .q(mean_loss));
    assign mx_chain[0] = sm_first_d ? 32'hff800000 : mx;
    assign sum_chain[0] = sm_first_d ? 32'h0 : row_sum;
    assign xl_chain[0] = xl;
    // The window's element count as FP32 (exact)
    wire [31:0] window_f;
    sat_u24_to_f32 window_to_float (.u({{8'h0, window_elements}}), .f(window_f));
    // Normalizations' chains across the lanes (in element order): sums of x or (x - mean)^2,
    // and of x b; the mean, then the variance, and the reciprocal square root.
    wire [31:0] nm_a_chain [0:LANES];
    wire [31:0] nm_b_chain [0:LANES];
    assign nm_a_chain[0] = nm_first_d ? 32'h0 : nm_acc_a;
    assign nm_b_chain[0] = nm_first_d ? 32'h0 : nm_acc_b;
    wire [31:0] axis_f, nm_quotient, var_eps, nm_root, nm_rstd;
    sat_u24_to_f32 axis_to_float (.u(nm_axis), .f(axis_f));
    sat_fp32_div nm_divide (.a(nm_col ? col_acc_a[nc_k_d] : nm_a_chain[LANES]), .b(axis_f), .q(nm_quotient));
    sat_fp32_add nm_eps (.a(nm_quotient), .b({norm_eps}), .sum(var_eps));
    sat_fp32_sqrt nm_sqrt (.a(var_eps), .q(nm_root));
    sat_fp32_div nm_reciprocal (.a(32'h3f800000), .b(nm_root), .q(nm_rstd));
    // The statistics of the block's column or row of the cycle (slot nc_k_d): a serial
    // step's, and a walk's per row; norm_grad_apply's terms.
    wire [31:0] stat0, stat1, stat2, stat3, ga_m_sdy, ga_diff, ga_sdxh, ga_dy_n_now, ga_h_n_now;
    assign stat0 = col_mean[nc_k_d];
    assign stat1 = col_rstd[nc_k_d];
    assign stat2 = col_acc_a[nc_k_d];
    assign stat3 = col_acc_b[nc_k_d];
    sat_fp32_mul ga_mean_sum_dy (.a(stat0), .b(stat2), .product(ga_m_sdy));
    sat_fp32_add ga_minus (.a(stat3), .b({{~ga_m_sdy[31], ga_m_sdy[30:0]}}), .sum(ga_diff));
    sat_fp32_mul ga_times_rstd (.a(stat1), .b(ga_diff), .product(ga_sdxh));
    sat_fp32_div ga_dy_per_n (.a(stat2), .b(axis_f), .q(ga_dy_n_now));
    sat_fp32_div ga_h_per_n (.a(ga_sdxh), .b(axis_f), .q(ga_h_n_now));
    always @(posedge clock) begin
        if (nm_d) begin
            nm_acc_a <= nm_a_chain[LANES];
            nm_acc_b <= nm_b_chain[LANES];
            if (op == OP_NORM_STATS && nm_pass_d == 0 && nm_last_d) nm_mean <= nm_quotient;
        end
    end
    assign best_chain[0] = best;
    assign best_pos_chain[0] = best_pos;
    assign best_r_chain[0] = best_r;
    assign best_c_chain[0] = best_c;
    assign pool_sum_chain[0] = window_sum;
    // The line buffer takes the lanes' new partial sums (a later lane's wins on one slot: it is
    // the later share, or a row LR further down whose first share follows the last of the
    // row it replaces). A row of slots passes to the row (plane, r) of the last lane that
    // writes it in the cycle when that is not its owner: every share of the owner came before
    // (lanes are in walk order), so the row's slots are then valid only where that new owner's
    // lanes write. An instruction starts with no valid slot.
    wire [LR-1:0] line_takeover;
    wire [39:0] line_next_owner [0:LR-1];
    genvar lr;
    generate
        for (lr = 0; lr < LR; lr = lr + 1) begin : line_rows
            reg [39:0] last_owner;
            integer q;
            always @* begin
                last_owner = line_owner[lr];
                for (q = 0; q < LANES; q = q + 1)
                    if (pg_hit[q] && pg_line_row[q] == lr) last_owner = pg_key[q][55:16];
            end
            assign line_takeover[lr] = last_owner != line_owner[lr];
            assign line_next_owner[lr] = last_owner;
        end
    endgenerate
    integer pg;
    always @(posedge clock) begin
        if (issue) line_valid <= 0;
        else begin
            for (pg = 0; pg < LR; pg = pg + 1)
                if (line_takeover[pg]) begin
                    line_owner[pg] <= line_next_owner[pg];
                    line_valid[pg*LC +: LC] <= 0;
                end
            for (pg = 0; pg < LANES; pg = pg + 1)
                if (pg_hit[pg]) begin
                    line[pg_slot[pg]] <= pg_new[pg];
                    if (pg_key[pg][55:16] == line_next_owner[pg_line_row[pg]]) line_valid[pg_slot[pg]] <= 1'b1;
                end
        end
    end
    always @(posedge clock) begin
        if (issue) begin
            loss <= 0;
            bad_label <= 0;
        end else if (sm_d && !sm_loss_d) begin
            if (!label_ok && op == OP_SOFTMAX_XENT) bad_label <= 1;
            if (sm_pass_d == 0) begin mx <= mx_chain[LANES]; xl <= xl_chain[LANES]; end
            // The row sum: of the exponentials (pass 1), or softmax_grad's dot product (pass 0).
            if (sm_pass_d == (op == OP_SOFTMAX_GRAD ? 2'd0 : 2'd1)) row_sum <= sum_chain[LANES];
            if (sm_pass_d == 2 && sm_first_d) loss <= new_loss;
        end
        if (pl_d) begin
            best <= best_chain[LANES];
            best_pos <= best_pos_chain[LANES];
            best_r <= best_r_chain[LANES];
            best_c <= best_c_chain[LANES];
            window_sum <= pool_sum_chain[LANES];
        end
    end

    generate
        for (g = 0; g < LANES; g = g + 1) begin : lane
            wire [23:0] e = batch + g;
            always @(posedge clock) valid0[g] <= sm_running ? (sm_loss_step ? g == 0 : sm_pass == sm_last_pass && sm_j + g < {{8'h0, classes}})
                                                           : running && e < count;
            // The pooling walker: this element and the next
            wire dc_wrap = t_dc[g] + 8'd1 == pk;
            wire dr_wrap = t_dr[g] + 8'd1 == pk;
            wire col_wrap = t_ocol[g] + 16'd1 == pow;
            wire row_wrap = t_orow[g] + 16'd1 == poh;
            wire next_window = dc_wrap && dr_wrap;
            assign window_last[g] = next_window;
            wire next_row = next_window && col_wrap;
            wire next_plane = next_row && row_wrap;
            assign t_dc[g+1] = dc_wrap ? 8'd0 : t_dc[g] + 8'd1;
            assign t_dr[g+1] = dc_wrap ? (dr_wrap ? 8'd0 : t_dr[g] + 8'd1) : t_dr[g];
            assign t_row_off[g+1] = dc_wrap ? (dr_wrap ? 24'd0 : t_row_off[g] + pw) : t_row_off[g];
            assign t_ocol[g+1] = next_window ? (col_wrap ? 16'd0 : t_ocol[g] + 16'd1) : t_ocol[g];
            assign t_orow[g+1] = next_row ? (row_wrap ? 16'd0 : t_orow[g] + 16'd1) : t_orow[g];
            assign t_rowb[g+1] = next_row ? (row_wrap ? 24'd0 : t_rowb[g] + stride_rows) : t_rowb[g];
            assign t_win[g+1] = next_window ? (col_wrap ? (row_wrap ? 24'd0 : t_rowb[g] + stride_rows) : t_win[g] + ps) : t_win[g];
            assign t_plane[g+1] = next_plane ? t_plane[g] + 24'd1 : t_plane[g];
            assign t_pbase[g+1] = next_plane ? t_pbase[g] + plane_size : t_pbase[g];
            assign t_out[g+1] = next_window ? t_out[g] + 24'd1 : t_out[g];
            assign t_wr[g+1] = next_row ? (row_wrap ? 16'd0 : t_wr[g] + ps) : t_wr[g];
            assign t_wc[g+1] = next_window ? (col_wrap ? 16'd0 : t_wc[g] + ps) : t_wc[g];
            wire [23:0] pos = t_win[g] + t_row_off[g] + t_dc[g];
            assign t_elem[g] = t_pbase[g] + pos;
            wire [LANES-1:0] meets;
            for (h = 0; h < LANES; h = h + 1) begin : earlier
                if (h < g) begin : pair
                    assign meets[h] = ((t_elem[h] ^ t_elem[g]) & walk_bank_mask) == 24'd0 && t_elem[h] != t_elem[g];
                end else begin : later
                    assign meets[h] = 1'b0;
                end
            end
            assign walk_clash[g] = |meets;
            reg pl_valid, pl_start, pl_end, z_valid;
            reg [23:0] pl_pos, pl_pbase, pl_out, pl_plane;
            reg [15:0] pl_r, pl_c;
            always @(posedge clock) begin
                pl_valid <= pl_walking && t_plane[g] < pn && g < walk_step;
                pl_start <= t_dc[g] == 0 && t_dr[g] == 0;
                pl_end <= next_window;
                pl_pos <= pos; pl_pbase <= t_pbase[g]; pl_out <= t_out[g];
                pl_r <= t_wr[g] + t_dr[g]; pl_c <= t_wc[g] + t_dc[g]; pl_plane <= t_plane[g];
                z_valid <= pl_zeroing && z + g < z_total;
            end
            wire [23:0] nm_lane_off = nm_off + g;
            reg nm_lane_valid;
            always @(posedge clock) nm_lane_valid <= nm_running && nm_i + g < nm_axis;
            wire nm_valid = nm_d && nm_lane_valid;
            // In blocks: this lane reads in a walk (its column is in the block, or its element
            // in the row), and its slot is in the block (a step's data).
            wire nc_walk_on = nm_running && nm_blk && nc_kind == NC_WALK && (nm_col ? g < nc_lanes : nm_i + g < nm_axis);
            wire nc_data = nm_d && nm_blk && g < nc_lanes_d;
            // Which lanes read, by the op's operands: a everywhere but in avgpool_grad and
            // norm_grad_apply's statistics cycle; b in the binary element-wise ops, the
            // gradients, softmax_xent's label (lane 0) and the normalizations' statistics.
            assign re[g] = running ? e < count
                         : sm_running ? !sm_loss_step && sm_j + g < {{8'h0, classes}}
                         : pl_walking ? t_plane[g] < pn && g < walk_step && op != OP_AVGPOOL_GRAD
                         : nm_blk ? nc_walk_on
                         : nm_running && nm_i + g < nm_axis;
            assign re[LANES+g] =
                running ? e < count && (op == OP_ADD || op == OP_RELU_GRAD || op == OP_GELU_GRAD)
                : sm_running ? !sm_loss_step && (op == OP_SOFTMAX_XENT ? g == 0 : op == OP_SOFTMAX_GRAD && sm_j + g < {{8'h0, classes}})
                : pl_walking ? t_plane[g] < pn && g < walk_step && (op == OP_MAXPOOL_GRAD || op == OP_AVGPOOL_GRAD)
                : nm_blk ? (nm_running && nc_kind == NC_STAT && g < nc_lanes)
                           || (nc_walk_on && (op == OP_NORM_GRAD_STATS || op == OP_NORM_GRAD_APPLY))
                : 1'b0;
            assign raddr[g*{aw} +: {aw}] =
                a_base + (sm_running ? sm_row_base + sm_j + g : pl_walking ? t_pbase[g] + pos : nm_running ? nm_lane_off : e);
            assign raddr[(LANES+g)*{aw} +: {aw}] =
                nm_running && nm_blk && nc_kind == NC_STAT ? b_base + nc_stat_off + g
                : nm_running && op == OP_NORM_GRAD_APPLY ? dst_base + nm_lane_off
                : b_base + (sm_running ? (op == OP_SOFTMAX_GRAD ? sm_row_base + sm_j + g : sm_row) : pl_walking ? t_out[g]
                            : nm_running ? nm_lane_off : e);
            // Operands to FP32
            wire [31:0] a_act, a_wgt, a_idx, a_mask, b_act, b_wgt, b_idx, b_mask;
            sat_f16_to_f32 a_act_f (.h(act_rdata[g*16 +: 16]), .f(a_act));
            sat_f16_to_f32 a_wgt_f (.h(wgt_rdata[g*16 +: 16]), .f(a_wgt));
            sat_u8_to_f32 a_idx_f (.u(idx_rdata[g*8 +: 8]), .f(a_idx));
            sat_u8_to_f32 a_mask_f (.u(mask_rdata[g*8 +: 8]), .f(a_mask));
            sat_f16_to_f32 b_act_f (.h(act_rdata[(LANES+g)*16 +: 16]), .f(b_act));
            sat_f16_to_f32 b_wgt_f (.h(wgt_rdata[(LANES+g)*16 +: 16]), .f(b_wgt));
            sat_u8_to_f32 b_idx_f (.u(idx_rdata[(LANES+g)*8 +: 8]), .f(b_idx));
            sat_u8_to_f32 b_mask_f (.u(mask_rdata[(LANES+g)*8 +: 8]), .f(b_mask));
            wire [31:0] a = a_buf_d == BUF_ACT ? a_act : a_buf_d == BUF_WGT ? a_wgt : a_buf_d == BUF_IDX ? a_idx
                          : a_buf_d == BUF_ACC ? acc_rdata[g*32 +: 32] : a_buf_d == BUF_MASTER ? master_rdata[g*32 +: 32] : a_mask;
            wire [31:0] b = b_buf_d == BUF_ACT ? b_act : b_buf_d == BUF_WGT ? b_wgt : b_buf_d == BUF_IDX ? b_idx
                          : b_buf_d == BUF_ACC ? acc_rdata[(LANES+g)*32 +: 32] : b_buf_d == BUF_MASTER ? master_rdata[(LANES+g)*32 +: 32] : b_mask;
            assign a_val[g] = a;
            assign b_val[g] = b;
            // softmax_xent: the class's lane takes part in the row's chains
            wire [23:0] class_index = sm_j_d + g;
            wire in_row = class_index < {{8'h0, classes}};
            // A pooling gradient's partial sum that this lane's share adds to (below)
            reg [31:0] pg_base;
            // The normalizations' inputs: per row the chain and the row's statistics, per
            // column the lane's own.
            wire [31:0] nm_a_in = nm_col ? (nc_first_d ? 32'h0 : col_acc_a[g]) : nm_a_chain[g];
            wire [31:0] nm_b_in = nm_col ? (nc_first_d ? 32'h0 : col_acc_b[g]) : nm_b_chain[g];
            wire [31:0] nm_mean_in = nm_col ? col_mean[g] : nm_mean;
            wire [31:0] ap_mean = nm_col ? col_mean[g] : stat0;
            wire [31:0] ap_rstd = nm_col ? col_rstd[g] : stat1;
            wire [31:0] ga_mean_in = nm_col ? col_mean[g] : stat0;
            wire [31:0] ga_rstd_in = nm_col ? col_rstd[g] : stat1;
            wire [31:0] ga_dy_n_in = nm_col ? col_acc_a[g] : stat2;
            wire [31:0] ga_h_n_in = nm_col ? col_acc_b[g] : stat3;
            // The ops' FP32 operations on the lane's shared function units (vector_lane.rs)
{lane_datapath}            wire a_nan = a[30:23] == 8'hff && a[22:0] != 0;
            wire a_positive = !a[31] && !a_nan && a[30:0] != 0;
            // relu: NaN and negatives to +0, +-0 and positives kept (the simulator's rule).
            wire [31:0] relu = (a_nan || (a[31] && a[30:0] != 0)) ? 32'h0 : a;
            wire greater;
            sat_fp32_greater is_max (.a(a), .b(mx_chain[g]), .greater(greater));
            assign mx_chain[g+1] = in_row && greater ? a : mx_chain[g];
            assign xl_chain[g+1] = in_row && class_index == label ? a : xl_chain[g];
            assign sum_chain[g+1] = in_row ? accumulated : sum_chain[g];
            assign gradient[g] = gradient_value;
            // Pooling: a lane replaces the window's maximum when greater (so the first maximum
            // is kept). Gradients: each element gets at most one share (the windows do not
            // overlap).
            wire pool_greater;
            sat_fp32_greater is_window_max (.a(a), .b(best_chain[g]), .greater(pool_greater));
            wire take = pl_valid && (pl_start || pool_greater);
            assign best_chain[g+1] = take ? a : best_chain[g];
            assign best_pos_chain[g+1] = take ? pl_pos : best_pos_chain[g];
            assign best_r_chain[g+1] = take ? pl_r : best_r_chain[g];
            assign best_c_chain[g+1] = take ? pl_c : best_c_chain[g];
            assign pool_sum_chain[g+1] = pl_valid ? pool_added : pool_sum_chain[g];
            wire window_done = pl_valid && pl_end;
            // A gradient's share: maxpool_grad's at the window's maximum when the window ends,
            // avgpool_grad's at every element. Over overlapping windows it adds to the partial
            // sum of an earlier lane's share to the same element in this cycle (the latest), or
            // else to the line buffer's, or to +0 (the element's first share); otherwise to +0.
            wire [15:0] pg_r = op == OP_MAXPOOL_GRAD ? best_r_chain[g+1] : pl_r;
            wire [15:0] pg_c = op == OP_MAXPOOL_GRAD ? best_c_chain[g+1] : pl_c;
            assign pg_hit[g] = pl_overlap && (op == OP_MAXPOOL_GRAD ? window_done : pl_valid);
            assign pg_key[g] = {{pl_plane, pg_r, pg_c}};
            assign pg_line_row[g] = pg_r & (LR - 1);
            assign pg_slot[g] = pg_line_row[g] * LC + pg_c;
            integer q;
            always @* begin
                pg_base = pl_overlap && line_valid[pg_slot[g]] && line_owner[pg_line_row[g]] == {{pl_plane, pg_r}}
                          ? line[pg_slot[g]] : 32'h0;
                for (q = 0; q < g; q = q + 1)
                    if (pg_hit[q] && pg_key[q] == pg_key[g]) pg_base = pg_new[q];
            end
            assign pg_new[g] = op == OP_MAXPOOL_GRAD ? dy_plus : share_plus;
            // Normalizations' chains
            assign nm_a_chain[g+1] = nm_valid ? nm_sum_a : nm_a_chain[g];
            assign nm_b_chain[g+1] = nm_valid ? nm_sum_b : nm_b_chain[g];
            // In blocks: the walks' sums (per column each cycle, per row at the end of row g),
            // the statistics read, and slot g's cycle of a serial step (norm_stats' mean;
            // norm_grad_apply's terms).
            always @(posedge clock) if (nc_data) begin
                if (nc_kind_d == NC_WALK && nm_col && (op == OP_NORM_STATS || op == OP_NORM_GRAD_STATS)) begin
                    col_acc_a[g] <= nm_sum_a;
                    col_acc_b[g] <= nm_sum_b;
                end
                if (nc_kind_d == NC_WALK && !nm_col && op == OP_NORM_GRAD_STATS && nm_last_d && nc_k_d == g) begin
                    col_acc_a[g] <= nm_a_chain[LANES];
                    col_acc_b[g] <= nm_b_chain[LANES];
                end
                if (nc_kind_d == NC_STAT) begin
                    if (nc_k_d == 0) col_mean[g] <= b;
                    if (nc_k_d == 1) col_rstd[g] <= b;
                    if (nc_k_d == 2) col_acc_a[g] <= b;
                    if (nc_k_d == 3) col_acc_b[g] <= b;
                end
                if (nc_kind_d == NC_SERIAL && nc_k_d == g) begin
                    if (op == OP_NORM_STATS && nm_pass_d == 1) col_mean[g] <= nm_quotient;
                    if (op == OP_NORM_GRAD_APPLY) begin
                        col_acc_a[g] <= ga_dy_n_now;
                        col_acc_b[g] <= ga_h_n_now;
                    end
                end
            end
            // norm_stats per row: the mean after the first pass, the rstd after the second.
            wire stats_write = nm_d && nm_last_d && g == 0;
            wire [31:0] value = op == OP_SOFTMAX_XENT ? (sm_loss_d ? mean_loss : gradient[g])
                              : op == OP_SOFTMAX ? share : op == OP_SOFTMAX_GRAD ? y_times
                              : op == OP_GELU ? gelu : op == OP_GELU_GRAD ? gelu_grad
                              : op == OP_NORM_STATS ? ((nm_col ? nm_pass_d == 1 : nm_pass_d == 0) ? nm_quotient : nm_rstd)
                              : op == OP_NORM_GRAD_STATS ? (nc_k_d == 0 ? col_acc_a[g] : col_acc_b[g])
                              : op == OP_NORM_APPLY ? nm_applied : op == OP_NORM_GRAD_APPLY ? gx_dx
                              : pl_zero_d ? 32'h0
                              : op == OP_MAXPOOL ? best_chain[g+1] : op == OP_AVGPOOL ? average
                              : op == OP_MAXPOOL_GRAD ? dy_plus : op == OP_AVGPOOL_GRAD ? share_plus
                              : op == OP_ADD ? sum : op == OP_RELU ? relu : op == OP_RELU_GRAD ? (a_positive ? b : 32'h0) : a;
            assign lane_we[g] = nm_blk ? nm_d && (nc_kind_d == NC_WALK ? (op == OP_NORM_APPLY || op == OP_NORM_GRAD_APPLY)
                                                                         && (nm_col ? nc_data : nm_valid)
                                                 : nc_data && (nc_kind_d == NC_WRITE
                                                               || (nc_kind_d == NC_SERIAL && op == OP_NORM_STATS && g == 0)))
                              : op == OP_NORM_STATS ? stats_write
                              : pl_zero_d ? z_valid
                              : op == OP_MAXPOOL || op == OP_AVGPOOL || op == OP_MAXPOOL_GRAD ? window_done
                              : op == OP_AVGPOOL_GRAD ? pl_valid : valid0[g];
            assign lane_off[g] = nm_blk ? (nc_kind_d == NC_WALK ? nm_off_d + g
                                           : nc_kind_d == NC_WRITE ? (nc_k_d == 0 ? 24'd0 : nm_len) + nm_vec_d + g
                                           : (nm_pass_d == 1 ? 24'd0 : nm_len) + nm_vec_d + nc_k_d)
                               : op == OP_NORM_STATS ? (nm_pass_d == 0 ? 24'd0 : nm_len) + nm_vec_d
                               : pl_zero_d ? z_d + g
                               : op == OP_MAXPOOL || op == OP_AVGPOOL ? pl_out
                               : op == OP_MAXPOOL_GRAD ? pl_pbase + best_pos_chain[g+1]
                               : op == OP_AVGPOOL_GRAD ? pl_pbase + pl_pos : base0 + g;
            // To the destination's type
            wire [15:0] as_f16;
            wire [7:0] as_u8;
            sat_f32_to_f16 to_f16 (.f(value), .h(as_f16));
            sat_f32_to_u8 to_u8 (.f(value), .u(as_u8));
            assign result[g] = (dst_buf == BUF_ACT || dst_buf == BUF_WGT) ? {{16'h0, as_f16}}
                             : (dst_buf == BUF_IDX || dst_buf == BUF_MASK) ? {{24'h0, as_u8}} : value;
            assign we[g] = P == 0 ? lane_we[g] : we_stage[P][g];
            assign waddr[g*{aw} +: {aw}] = dst_base + (P == 0 ? lane_off[g] : off_stage[P][g]);
            assign wdata[g*32 +: 32] = P == 0 ? result[g] : stage[P][g];
        end
        for (g = 1; g <= P; g = g + 1) begin : result_stages
            genvar k;
            always @(posedge clock) we_stage[g] <= g == 1 ? lane_we : we_stage[g-1];
            for (k = 0; k < LANES; k = k + 1) begin : lanes_
                always @(posedge clock) begin
                    stage[g][k] <= g == 1 ? result[k] : stage[g-1][k];
                    off_stage[g][k] <= g == 1 ? lane_off[k] : off_stage[g-1][k];
                end
            end
        end
    endgenerate
endmodule
"#,
        word_hi = WORD_BITS - 1,
        fields = field_wires("vec")?,
        codes = code_params(),
        norm_eps = bits(NORM_EPSILON),
        lane_datapath = LaneDatapath::new().verilog(),
        line_on = u32::from(line_on),
        a_bank_mask = bank_mask(arch, "a_buf"),
        dst_bank_mask = bank_mask(arch, "dst_buf"),
        line_rows = if line_on { arch.vector.pool_line_rows } else { 1 },
        line_cols = if line_on { arch.vector.pool_line_cols } else { 1 },
    );
    Ok(s)
}
