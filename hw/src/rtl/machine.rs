//! The SAT machine as RTL (`sat_machine`): the controller ([`super::controller`]) with the units
//! built so far in RTL, the on-chip buffers, the memory port to a host-served DRAM and the
//! control/status registers, cycle for cycle and bit for bit the simulator's `Machine` on the
//! instructions those units run.
//!
//! **Units.** `load` and `store` are DMA engines (`sat_dma`, below); `gemm` runs on the tensor
//! unit ([`super::tensor`]); `prune` and `update` on the SORE and WUVE lanes with their
//! sequencers, and every `vec` op on the vector unit ([`super::sequencers`], with the FP32
//! functions of [`super::vector_math`]), except what [`super::unsupported`] lists (such as
//! pooling gradients over overlapping windows larger than the vector unit's line buffer),
//! which the host refuses before running.
//!
//! **DMA (`sat_dma`).** Moves a 2-D block as the ISA defines it, `W` elements per cycle, where
//! `W` = the DRAM's bytes per core cycle over all channels, rounded up
//! ([`ArchConfig::dma_lanes`]): as many one-byte elements as the bus can deliver. No two of a
//! cycle's elements fall on one bank of a buffer interleaved over [`ArchConfig::dma_banks`]
//! banks by the low address bits ([`ArchConfig::dma_stream_cycles`]): when the block's rows lie
//! back to back in the buffer (`sram_row_stride == cols`, or one row), lane `j` walks elements
//! `j, j + W, ...` in row-major order across rows; rows of at most `W` elements move `k` whole
//! rows a cycle ([`ArchConfig::dma_bank_rows`]); longer rows each start a new cycle, lane `j`
//! taking column `j, j + W, ...` of it. In the issue cycle the unit
//! presents the transfer on its request port (DRAM base, rows, columns, byte strides, element
//! bytes), which the DRAM controller (served by the host, as VTA's tsim serves DRAM) schedules
//! on the shared bus; `mem_done` comes back in the cycle the DRAM finishes, and the unit raises
//! `done` in the first cycle in which both the DRAM and its element stream have finished (the
//! simulator's cost of a transfer is the later of the two). A load asks for each element's
//! little-endian bytes at `d_addr` and writes the buffer in the same cycle; a store reads the
//! buffer (synchronously) and presents the bytes a cycle later.
//!
//! **Buffers.** `act`, `wgt`, `idx`, `acc`, `master` and `mask`, each a `sat_buffer`: banked
//! block RAM ([`super::buffer`]) with the lanes its users need in one cycle: the tensor unit's
//! (see [`super::tensor`]), the SORE's, WUVE's and vector unit's (see [`super::sequencers`]) and
//! `W` DMA lanes each way. Every read lane has an enable, high exactly when its unit uses the
//! data (the parameter `POISON_UNREAD` makes the buffers return all ones to a lane read without
//! it, which the co-simulation sets). A host port reads (with `host_re`) and writes any buffer
//! (for tests and debugging, while the machine is idle), reading synchronously as the other
//! lanes do: `host_rdata` is the element at `host_addr` of the buffer `host_buf` names, as it
//! was at the last clock edge. [`operand_buses`] lists each unit operand's enables, addresses
//! and data as wires of the top; the lanes of the buses on one fixed buffer are wired from that
//! list, each bus a bus of its buffer's crossbar. The controller holds instructions back by
//! their buffer use, per partition (`buffers.readers`, `buffers.writers`, one
//! `sat_buffer_use_<unit>` decoder per queue head), which is what lets each partition be
//! `readers` replicas with one write port: the RTL refuses descriptions without those limits.
//! `bank_conflict` (a bit per buffer, in `Buffer::ALL` order) keeps, from `start`, every cycle
//! in which a buffer's banks could not serve its lanes.
//!
//! **Control/status.** `start` (one cycle) clears the controller and runs the program of
//! `length` instructions at DRAM byte address `program_address`; `busy` stays high until every
//! instruction has completed, and `done` pulses for one cycle when it falls; `cycle` counts
//! cycles from the cycle after `start`; `bad_opcode`, `overflow` (a semaphore neared its
//! 16-bit limit), `unsupported` (the tensor unit got a GEMM, or the vector unit an op, it
//! cannot run) and `bad_label` (a `softmax_xent` label is not a class index) report errors.
//! Instructions are fetched from DRAM through `fetch_addr` (instruction `i` at
//! `program_address + i * word bytes`) and `fetch_data`, one word per cycle with the word of the previous cycle's
//! address: the never-missing instruction fetch the simulator assumes (the host's DRAM
//! controller serves this port apart from the DMA traffic, which the simulator's DRAM model
//! carries alone). `trace_issue`, `trace_index` and `trace_done`
//! show every unit's starts and completions, for comparing instruction timing.

use super::buffer::{self, BANK_MODULE, BUFFER_MODULE};
use super::sequencers::{
    conversion_modules, sore_unit_module, to_fp16_module, vector_unit_module, wuve_unit_module, SORE_UNIT_MODULE,
    VECTOR_UNIT_MODULE, WUVE_UNIT_MODULE,
};
use super::tensor::{address_bits, array_design, fetch_module, sram_address_bits, unit_module, FETCH_MODULE, UNIT_MODULE};
use super::vector_lane::{FunctionKind, LaneDatapath};
use super::verilog::merge;
use super::{controller, sore, vector_math, wuve, PortDirection, RtlDesign, RtlModule, RtlPort};
use crate::isa::{Buffer, Field, Unit, WORD_BITS};
use crate::numerics::{EXP_HORNER, LN_HORNER};
use crate::{ArchConfig, DataType, Error};
use std::fmt::Write as _;

/// Name of the top module of [`generate`].
pub const TOP_MODULE: &str = "sat_machine";
/// Name of the DMA module.
pub const DMA_MODULE: &str = "sat_dma";
/// Bits of a DRAM byte address on the memory port (the ISA's `dram` field).
pub const DRAM_ADDRESS_BITS: usize = 40;

/// Bits of one element of a buffer in the machine: FP16 activations and weights, byte indices
/// and masks, FP32 accumulators and master weights.
pub fn buffer_width(buffer: Buffer) -> usize {
    match buffer {
        Buffer::Act | Buffer::Wgt => 16,
        Buffer::Idx | Buffer::Mask => 8,
        Buffer::Acc | Buffer::Master => 32,
    }
}

/// The buffer an operand bus reaches: always one, or the one a 3-bit wire of `sat_machine`
/// names in the same cycle (the ISA's buffer code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusBuffer {
    /// This buffer.
    Fixed(Buffer),
    /// The buffer this wire's code names.
    Wire(&'static str),
}

/// One operand's lanes on the buffers, as wires of `sat_machine`: in each cycle, port `p` of
/// `first .. first + ports` reads (or writes) element `addr[p]` when `enable[p]` is high. Every
/// element a unit reads or writes goes through one of these buses; co-simulation probes them
/// to see which addresses one operand touches in one cycle (`satkit-rtl-cosim`'s bank
/// profile), which is what banking a buffer must serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperandBus {
    /// The unit.
    pub unit: Unit,
    /// The operand, in the instruction's terms.
    pub operand: &'static str,
    /// A write (else a read).
    pub write: bool,
    /// The buffer.
    pub buffer: BusBuffer,
    /// The enable wire, one bit per port.
    pub enable: &'static str,
    /// The address wire, `address_bits` per port.
    pub addr: &'static str,
    /// The data wire, in the buffer's element format, of a bus on one fixed buffer (the
    /// machine wires those ports from this list); `None` where the machine converts the data
    /// per buffer (the vector unit's and the DMA's lanes).
    pub data: Option<&'static str>,
    /// Bits of one port's address in `addr`.
    pub address_bits: usize,
    /// The operand's first port in both wires.
    pub first: usize,
    /// Its ports.
    pub ports: usize,
    /// Whether the bus reads in its unit's issue cycle (the update's hyperparameters, read
    /// before any batch); every other bus accesses its buffer only from the cycle after.
    pub at_issue: bool,
}

/// Every operand bus of the machine of `arch` (see [`OperandBus`]).
pub fn operand_buses(arch: &ArchConfig) -> Vec<OperandBus> {
    let a = &arch.array;
    let (r, c, l, n_max, m_max) =
        (a.rows as usize, a.cols as usize, a.accumulator_latency as usize, a.n_max as usize, a.m_max as usize);
    let (sl, wl, vl, w) =
        (arch.sore.lanes as usize, arch.wuve.lanes as usize, arch.vector.lanes as usize, arch.dma_lanes() as usize);
    let bits = |b: Buffer| address_bits(arch.buffer_elements(b));
    let t_wgt_lanes = arch.tensor_weight_lanes() as usize;
    let aw = sram_address_bits(arch);
    let bus = |unit, operand, write, buffer: BusBuffer, (enable, addr, data), address_bits, first, ports| OperandBus {
        unit,
        operand,
        write,
        buffer,
        enable,
        addr,
        data,
        address_bits,
        first,
        ports,
        at_issue: operand == "hyperparameters",
    };
    use BusBuffer::{Fixed, Wire};
    use Unit::{Load, Sore, Store, Tensor, Vector, Wuve};
    // One bus per line: unit, operand, write, buffer, (enable, address, data) wires, address
    // bits per port, first port, ports.
    #[rustfmt::skip]
    let buses = vec![
        bus(Load, "destination", true, Wire("l_buf"), ("l_we", "l_addr", None), aw, 0, w),
        bus(Tensor, "input", false, Fixed(Buffer::Act), ("t_act_re", "t_act_raddr", Some("t_act_rdata")), bits(Buffer::Act), 0, r * m_max),
        bus(Tensor, "weight", false, Fixed(Buffer::Wgt), ("t_wgt_re", "t_wgt_raddr", Some("t_wgt_rdata")), bits(Buffer::Wgt), 0, t_wgt_lanes),
        bus(Tensor, "index", false, Fixed(Buffer::Idx), ("t_idx_re", "t_wgt_raddr", Some("t_idx_rdata")), bits(Buffer::Wgt), 0, t_wgt_lanes),
        bus(Tensor, "initial sums", false, Fixed(Buffer::Acc), ("t_acc_re", "t_acc_raddr", Some("t_acc_rdata")), bits(Buffer::Acc), 0, c * l),
        bus(Tensor, "output", true, Fixed(Buffer::Acc), ("t_acc_we", "t_acc_waddr", Some("t_acc_wdata")), bits(Buffer::Acc), 0, c * l),
        bus(Sore, "dense weight", false, Fixed(Buffer::Master), ("s_m_re", "s_m_raddr", Some("s_m_rdata")), bits(Buffer::Master), 0, sl),
        bus(Sore, "kept values", true, Fixed(Buffer::Wgt), ("s_w_we", "s_w_waddr", Some("s_w_wdata")), bits(Buffer::Wgt), 0, sl * n_max),
        bus(Sore, "kept indices", true, Fixed(Buffer::Idx), ("s_w_we", "s_w_waddr", Some("s_i_wdata")), bits(Buffer::Wgt), 0, sl * n_max),
        bus(Sore, "mask", true, Fixed(Buffer::Mask), ("s_k_we", "s_k_waddr", Some("s_k_wdata")), bits(Buffer::Mask), 0, sl * m_max),
        bus(Wuve, "weight", false, Fixed(Buffer::Master), ("u_m_re", "u_m_raddr", Some("u_m_rdata")), bits(Buffer::Master), 0, wl),
        bus(Wuve, "momentum", false, Fixed(Buffer::Master), ("u_m_re", "u_m_raddr", Some("u_m_rdata")), bits(Buffer::Master), wl, wl),
        bus(Wuve, "hyperparameters", false, Fixed(Buffer::Master), ("u_m_re", "u_m_raddr", Some("u_m_rdata")), bits(Buffer::Master), 2 * wl, 4),
        bus(Wuve, "gradient", false, Fixed(Buffer::Acc), ("u_g_re", "u_g_raddr", Some("u_g_rdata")), bits(Buffer::Acc), 0, wl),
        bus(Wuve, "mask", false, Fixed(Buffer::Mask), ("u_k_re", "u_k_raddr", Some("u_k_rdata")), bits(Buffer::Mask), 0, wl),
        bus(Wuve, "new weight", true, Fixed(Buffer::Master), ("u_m_we", "u_m_waddr", Some("u_m_wdata")), bits(Buffer::Master), 0, wl),
        bus(Wuve, "new momentum", true, Fixed(Buffer::Master), ("u_m_we", "u_m_waddr", Some("u_m_wdata")), bits(Buffer::Master), wl, wl),
        bus(Vector, "a", false, Wire("v_a_rbuf"), ("v_re", "v_raddr", None), aw, 0, vl),
        bus(Vector, "b", false, Wire("v_b_rbuf"), ("v_re", "v_raddr", None), aw, vl, vl),
        bus(Vector, "destination", true, Wire("v_wbuf"), ("v_we", "v_waddr", None), aw, 0, vl),
        bus(Store, "source", false, Wire("s_buf"), ("s_re", "s_addr", None), aw, 0, w),
    ];
    buses
}

/// Generates the machine (see the module documentation).
pub fn generate(arch: &ArchConfig) -> Result<RtlDesign, Error> {
    arch.validate()?;
    if arch.precision.operand != DataType::Fp16 || arch.precision.accumulator != DataType::Fp32 {
        return Err(Error::RtlVerilog {
            message: format!(
                "{}: the RTL datapath is FP16 operands with FP32 accumulation, not {:?}/{:?}",
                arch.name, arch.precision.operand, arch.precision.accumulator
            ),
        });
    }
    buffer::check_limits(arch)?;
    let array = array_design(arch)?;
    let control = controller::generate(arch)?;
    let sore_lanes = sore::generate(arch)?;
    let wuve_lanes = wuve::generate(arch)?;
    let (mut verilog, mut modules) = merge(&[&array, &control, &sore_lanes, &wuve_lanes])?;
    verilog.push_str(&buffer::modules());
    verilog.push_str(&controller::buffer_use_module(arch)?);
    verilog.push_str(&fetch_module());
    verilog.push_str(&unit_module(arch)?);
    verilog.push_str(&to_fp16_module());
    verilog.push_str(&sore_unit_module(arch)?);
    verilog.push_str(&wuve_unit_module(arch)?);
    verilog.push_str(&conversion_modules());
    verilog.push_str(&vector_math::modules());
    verilog.push_str(&vector_unit_module(arch)?);
    verilog.push_str(&dma_module(arch)?);
    let (top, ports) = top_module(arch);
    verilog.push_str(&top);
    // The instances of the Verilog-text units' blocks, counted here from their generate loops
    // (a test checks every count against yosys' elaboration of the design).
    let vector_lanes = arch.vector.lanes as usize;
    let to_fp16 = (arch.sore.lanes * arch.array.n_max) as usize + vector_lanes;
    // The vector unit's FP32 adders and multipliers are the rust-hdl modules too: per lane its
    // shared function units (each exponential with its own), once the logarithm's, the row
    // loss's three and the normalizations' two adders, and the logarithm's and the
    // normalizations' two multipliers.
    let lane = LaneDatapath::new();
    let lane_exps = lane.units(FunctionKind::Exp);
    let (exp_adds, exp_muls) = (2 + (EXP_HORNER.len() - 1), 4 + (EXP_HORNER.len() - 1));
    let (ln_adds, ln_muls) = (3 + (LN_HORNER.len() - 1), 4 + (LN_HORNER.len() - 1));
    for (name, extra) in [
        ("sat_fp32_add", vector_lanes * (lane.units(FunctionKind::Add) + lane_exps * exp_adds) + ln_adds + 5),
        ("sat_fp32_mul", vector_lanes * (lane.units(FunctionKind::Mul) + lane_exps * exp_muls) + ln_muls + 2),
    ] {
        if let Some(module) = modules.iter_mut().find(|m| m.name == name) {
            module.instances += extra;
        }
    }
    for (name, instances) in [
        (BUFFER_MODULE, Buffer::ALL.len()),
        (BANK_MODULE, Buffer::ALL.iter().map(|&b| arch.buffer_memories(b) as usize).sum()),
        (UNIT_MODULE, 1),
        (FETCH_MODULE, 3),
        (super::sequencers::TO_FP16_MODULE, to_fp16),
        (SORE_UNIT_MODULE, 1),
        (WUVE_UNIT_MODULE, 1),
        (VECTOR_UNIT_MODULE, 1),
        ("sat_f16_to_f32", 4 * vector_lanes),
        ("sat_u8_to_f32", 4 * vector_lanes),
        ("sat_f32_to_u8", vector_lanes),
        ("sat_fp32_exp", lane_exps * vector_lanes),
        ("sat_fp32_ln", 1),
        ("sat_fp32_sqrt", 1),
        // The lanes' shared ones; once the mean loss's, the logarithm's and the
        // normalizations' four
        ("sat_fp32_div", lane.units(FunctionKind::Div) * vector_lanes + 6),
        // Two per lane and two in each exponential
        ("sat_fp32_greater", (2 + 2 * lane_exps) * vector_lanes),
        // The exponentials', the logarithm's, and the row count's, window size's and axis's
        ("sat_u24_to_f32", lane_exps * vector_lanes + 4),
        (DMA_MODULE, 2),
        (TOP_MODULE, 1),
    ] {
        modules.push(RtlModule { name: name.into(), instances, flatten: false });
    }
    for &unit in Unit::ALL.iter() {
        modules.push(RtlModule { name: controller::buffer_use_module_name(unit), instances: 1, flatten: false });
    }
    Ok(RtlDesign { top: TOP_MODULE.into(), verilog, modules, ports })
}

/// The DMA engine; `LOAD` picks the direction. `load` and `store` have the same fields.
fn dma_module(arch: &ArchConfig) -> Result<String, Error> {
    let w = arch.dma_lanes() as usize;
    let aw = sram_address_bits(arch);
    let da = DRAM_ADDRESS_BITS;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"
// A DMA engine (see satkit's hw/src/rtl/machine.rs): W = {w} lanes, row-major element order.
module {DMA_MODULE} #(parameter LOAD = 1) (
    input clock,
    input issue,
    input [{word_hi}:0] issue_word,
    output done,
    // Request port: the transfer, presented in the issue cycle.
    output req,
    output [{da_hi}:0] req_dram,
    output [15:0] req_rows,
    output [15:0] req_cols,
    output [31:0] req_row_stride,
    output [31:0] req_col_stride,
    output [2:0] req_element_bytes,
    input mem_done,
    // Element lanes to DRAM
    output [{w}*{da}-1:0] d_addr,
    output [{w}-1:0] d_valid,
    input [{w}*32-1:0] d_rdata,
    output [{w}*32-1:0] d_wdata,
    // Element lanes to the buffers
    output reg [2:0] s_buf,
    output [{w}-1:0] s_we,
    output [{w}-1:0] s_re,
    output [{w}*{aw}-1:0] s_addr,
    output [{w}*32-1:0] s_wdata,
    input [{w}*32-1:0] s_rdata
);
    localparam W = {w};
"#,
        word_hi = WORD_BITS - 1,
        da_hi = da - 1,
    );
    s.push_str(&super::sequencers::field_wires("load")?);
    let e = |b: Buffer| arch.dram_element_bytes(b);
    let _ = write!(
        s,
        r#"    // DRAM bytes of one element of each buffer
    wire [2:0] f_bytes = f_buf == {act} ? {e_act} : f_buf == {wgt} ? {e_wgt} : f_buf == {idx} ? {e_idx}
                       : f_buf == {acc} ? {e_acc} : f_buf == {master} ? {e_master} : {e_mask};
    assign req = issue;
    assign req_dram = f_dram;
    assign req_rows = f_rows;
    assign req_cols = f_cols;
    assign req_row_stride = f_dram_row_stride * f_bytes;
    assign req_col_stride = f_dram_col_stride * f_bytes;
    assign req_element_bytes = f_bytes;

    reg busy, dram_done, store_tail, by_row;
    reg [W-1:0] lane_on;
    reg [{da_hi}:0] dram;
    reg [23:0] sram;
    reg [15:0] rows, cols;
    reg [2:0] bytes;
    reg [15:0] q, rem;
    reg [15:0] lane_r [0:W-1];
    reg [15:0] lane_c [0:W-1];
    wire streaming = busy && lane_r[0] < rows;
    wire finished = !streaming && !store_tail;
    assign done = busy && (dram_done || mem_done) && finished;

    // The stream's shape (`ArchConfig::dma_stream_cycles`): rows back to back in the buffer,
    // the lanes run across rows; rows of at most W elements, `k` whole rows a cycle that fall
    // on distinct banks of BANKS (`ArchConfig::dma_bank_rows`; lanes past them idle); longer
    // rows, each from a new cycle (the positions below do not wrap, and all lanes move to the
    // next row together).
    localparam BANKS = {banks};
    wire f_across = f_rows <= 16'd1 || f_sram_row_stride == {{8'd0, f_cols}};
    wire f_by_row = !f_across && f_cols > W;
    wire f_whole = !f_across && !f_by_row;
    // Whole rows fall on distinct banks up to the first distance d whose rows start less than
    // `cols` banks apart (`ArchConfig::dma_bank_rows`); k never exceeds the W / cols rows the
    // lanes hold, so d = 1 .. W is searched: f_bank_rows[d] is the rows allowed when 1 .. d-1
    // are not such distances.
    // (One lane needs no banks: it takes one row a cycle whatever the search gives.)
    localparam BANK_BITS = {bank_bits};
    wire [BANK_BITS-1:0] bank_start [0:W];
    wire [15:0] f_bank_rows [0:W];
    assign bank_start[0] = 0;
    assign f_bank_rows[0] = 1;
    genvar b;
    generate
        for (b = 1; b <= W; b = b + 1) begin : bank_rows
            assign bank_start[b] = bank_start[b-1] + f_sram_row_stride[BANK_BITS-1:0];
            wire [BANK_BITS:0] apart = bank_start[b] < BANKS / 2 ? bank_start[b] : BANKS - bank_start[b];
            wire clear = f_bank_rows[b-1] == b && apart >= f_cols;
            assign f_bank_rows[b] = clear ? b + 1 : f_bank_rows[b-1];
        end
    endgenerate
    // Element j's row and column, j = 0..W, by counting (no division): lane j starts at
    // element j, and element W's position is the step every lane takes per cycle. Beside them
    // the element offsets r drs + c dcs in DRAM and r srs + c in the buffer, and their rows'.
    wire [15:0] first_r [0:W];
    wire [15:0] first_c [0:W];
    wire [{da_hi}:0] first_d [0:W];
    wire [{da_hi}:0] first_d_row [0:W];
    wire [31:0] first_s [0:W];
    wire [31:0] first_s_row [0:W];
    assign first_r[0] = 0;
    assign first_c[0] = 0;
    assign first_d[0] = 0;
    assign first_d_row[0] = 0;
    assign first_s[0] = 0;
    assign first_s_row[0] = 0;
    genvar k;
    generate
        for (k = 1; k <= W; k = k + 1) begin : first_positions
            wire wrap = !f_by_row && first_c[k-1] + 16'd1 == f_cols;
            assign first_r[k] = wrap ? first_r[k-1] + 16'd1 : first_r[k-1];
            assign first_c[k] = wrap ? 16'd0 : first_c[k-1] + 16'd1;
            assign first_d_row[k] = wrap ? first_d_row[k-1] + f_dram_row_stride : first_d_row[k-1];
            assign first_d[k] = wrap ? first_d_row[k-1] + f_dram_row_stride : first_d[k-1] + f_dram_col_stride;
            assign first_s_row[k] = wrap ? first_s_row[k-1] + f_sram_row_stride : first_s_row[k-1];
            assign first_s[k] = wrap ? first_s_row[k-1] + f_sram_row_stride : first_s[k-1] + 32'd1;
        end
    endgenerate
    // Whole rows: `k` a cycle, as many as the lanes hold (first_r[W]) and the banks allow.
    wire [15:0] f_k = f_bank_rows[W] < first_r[W] ? f_bank_rows[W] : first_r[W];
    // A lane's offsets grow by the step's, or, when its column wraps, by a row more and `cols`
    // columns less.
    reg [{da_hi}:0] step_d, step_d_wrap;
    reg [31:0] step_s, step_s_wrap;
    reg [{da_hi}:0] lane_d [0:W-1];
    reg [31:0] lane_s [0:W-1];
    // Longer rows: the strides to the next row, and how far the lanes have moved along this
    // one in DRAM (lane 0's column is how far in the buffer).
    reg [{da_hi}:0] row_stride_d, along_d;
    reg [31:0] row_stride_s;
    wire row_end = {{1'b0, lane_c[0]}} + W >= {{1'b0, cols}};

    integer j;
    always @(posedge clock) begin
        if (issue) begin
            busy <= 1; dram_done <= 0; store_tail <= 0;
            dram <= f_dram; sram <= f_sram; rows <= f_rows; cols <= f_cols;
            bytes <= f_bytes; s_buf <= f_buf; by_row <= f_by_row;
            row_stride_d <= f_dram_row_stride; row_stride_s <= f_sram_row_stride; along_d <= 0;
            // Whole rows step `k` rows and never wrap a column.
            q <= f_cols == 0 ? 0 : f_whole ? f_k : first_r[W];
            rem <= f_cols == 0 || f_whole ? 0 : first_c[W];
            step_d <= f_whole ? f_k * f_dram_row_stride : first_d[W];
            step_d_wrap <= first_d[W] + f_dram_row_stride - f_cols * f_dram_col_stride;
            step_s <= f_whole ? f_k * f_sram_row_stride : first_s[W];
            step_s_wrap <= first_s[W] + f_sram_row_stride - f_cols;
            for (j = 0; j < W; j = j + 1) begin
                lane_on[j] <= !f_whole || first_r[j] < f_k;
                lane_r[j] <= f_cols == 0 ? f_rows : first_r[j];
                lane_c[j] <= f_cols == 0 ? 0 : first_c[j];
                lane_d[j] <= first_d[j];
                lane_s[j] <= first_s[j];
            end
        end else if (busy) begin
            if (mem_done) dram_done <= 1;
            if (done) busy <= 0;
            store_tail <= !LOAD && streaming;
            if (streaming && by_row) begin
                along_d <= row_end ? 0 : along_d + step_d;
                for (j = 0; j < W; j = j + 1)
                    if (row_end) begin
                        lane_c[j] <= j;
                        lane_r[j] <= lane_r[j] + 1;
                        lane_d[j] <= lane_d[j] + row_stride_d - along_d;
                        lane_s[j] <= lane_s[j] + row_stride_s - lane_c[0];
                    end else begin
                        lane_c[j] <= lane_c[j] + rem;
                        lane_d[j] <= lane_d[j] + step_d;
                        lane_s[j] <= lane_s[j] + step_s;
                    end
            end else if (streaming)
                for (j = 0; j < W; j = j + 1) begin
                    if ({{1'b0, lane_c[j]}} + rem >= {{1'b0, cols}}) begin
                        lane_c[j] <= lane_c[j] + rem - cols;
                        lane_r[j] <= lane_r[j] + q + 1;
                        lane_d[j] <= lane_d[j] + step_d_wrap;
                        lane_s[j] <= lane_s[j] + step_s_wrap;
                    end else begin
                        lane_c[j] <= lane_c[j] + rem;
                        lane_r[j] <= lane_r[j] + q;
                        lane_d[j] <= lane_d[j] + step_d;
                        lane_s[j] <= lane_s[j] + step_s;
                    end
                end
        end
    end

    // A store's buffer data arrives a cycle after its address: its DRAM side is registered.
    reg [W-1:0] st_valid;
    reg [W*{da}-1:0] st_addr;
    genvar g;
    generate
        for (g = 0; g < W; g = g + 1) begin : lanes
            wire active = streaming && lane_on[g] && lane_r[g] < rows && lane_c[g] < cols;
            // An element is 1, 2 or 4 bytes.
            wire [{da_hi}:0] byte_addr = dram + (bytes == 4 ? lane_d[g] << 2 : bytes == 2 ? lane_d[g] << 1 : lane_d[g]);
            assign s_addr[g*{aw} +: {aw}] = sram + lane_s[g];
            assign s_we[g] = LOAD && active;
            assign s_re[g] = !LOAD && active;
            assign s_wdata[g*32 +: 32] = d_rdata[g*32 +: 32];
            always @(posedge clock) begin
                st_valid[g] <= !LOAD && active;
                st_addr[g*{da} +: {da}] <= byte_addr;
            end
            assign d_valid[g] = LOAD ? active : st_valid[g];
            assign d_addr[g*{da} +: {da}] = LOAD ? byte_addr : st_addr[g*{da} +: {da}];
            assign d_wdata[g*32 +: 32] = s_rdata[g*32 +: 32];
        end
    endgenerate
endmodule
"#,
        act = Buffer::Act.to_bits(),
        wgt = Buffer::Wgt.to_bits(),
        idx = Buffer::Idx.to_bits(),
        acc = Buffer::Acc.to_bits(),
        master = Buffer::Master.to_bits(),
        e_act = e(Buffer::Act),
        e_wgt = e(Buffer::Wgt),
        e_idx = e(Buffer::Idx),
        e_acc = e(Buffer::Acc),
        e_master = e(Buffer::Master),
        e_mask = e(Buffer::Mask),
        da_hi = da - 1,
        banks = arch.dma_banks(),
        bank_bits = arch.dma_banks().trailing_zeros().max(1),
    );
    Ok(s)
}

/// A unit's read ports on a buffer: how many, and the wires of their enables, addresses and data.
struct UnitReads {
    ports: usize,
    enable: String,
    addr: String,
    data: String,
}

/// A unit's write ports on a buffer: how many, and the wires of their enables, addresses and data.
struct UnitWrites {
    ports: usize,
    enable: String,
    addr: String,
    data: String,
}

fn port(name: String, direction: PortDirection, width: usize) -> RtlPort {
    RtlPort { name, direction, width }
}

/// The top and its port list.
fn top_module(arch: &ArchConfig) -> (String, Vec<RtlPort>) {
    use PortDirection::{Input, Output};
    let a = &arch.array;
    let (r, c, l, n_max, m_max) =
        (a.rows as usize, a.cols as usize, a.accumulator_latency as usize, a.n_max as usize, a.m_max as usize);
    let w = arch.dma_lanes() as usize;
    let t_wgt_lanes = arch.tensor_weight_lanes() as usize;
    let aw = sram_address_bits(arch);
    let da = DRAM_ADDRESS_BITS;
    let units = Unit::ALL.len();
    let mut ports = vec![
        port("clock".into(), Input, 1),
        port("start".into(), Input, 1),
        port("program_address".into(), Input, da),
        port("length".into(), Input, 32),
        port("fetch_addr".into(), Output, da),
        port("fetch_data".into(), Input, WORD_BITS as usize),
        port("busy".into(), Output, 1),
        port("done".into(), Output, 1),
        port("cycle".into(), Output, 64),
        port("bad_opcode".into(), Output, 1),
        port("overflow".into(), Output, 1),
        port("unsupported".into(), Output, 1),
        port("bad_label".into(), Output, 1),
        port("trace_issue".into(), Output, units),
        port("trace_index".into(), Output, 32 * units),
        port("trace_done".into(), Output, units),
        port("bank_conflict".into(), Output, Buffer::ALL.len()),
        port("host_re".into(), Input, 1),
        port("host_we".into(), Input, 1),
        port("host_buf".into(), Input, 3),
        port("host_addr".into(), Input, aw),
        port("host_wdata".into(), Input, 32),
        port("host_rdata".into(), Output, 32),
    ];
    for dir in ["load", "store"] {
        ports.extend([
            port(format!("{dir}_req"), Output, 1),
            port(format!("{dir}_req_dram"), Output, da),
            port(format!("{dir}_req_rows"), Output, 16),
            port(format!("{dir}_req_cols"), Output, 16),
            port(format!("{dir}_req_row_stride"), Output, 32),
            port(format!("{dir}_req_col_stride"), Output, 32),
            port(format!("{dir}_req_element_bytes"), Output, 3),
            port(format!("{dir}_mem_done"), Input, 1),
            port(format!("{dir}_addr"), Output, w * da),
            port(format!("{dir}_valid"), Output, w),
        ]);
    }
    ports.push(port("load_data".into(), Input, w * 32));
    ports.push(port("store_data".into(), Output, w * 32));

    let mut s = String::new();
    let decl = |p: &RtlPort| {
        let dir = if p.direction == Input { "input" } else { "output" };
        if p.width == 1 {
            format!("    {dir} {}", p.name)
        } else {
            format!("    {dir} [{}:0] {}", p.width - 1, p.name)
        }
    };
    let _ = writeln!(
        s,
        "\n// The SAT machine (see satkit's hw/src/rtl/machine.rs). POISON_UNREAD makes the buffers'\n\
         // read ports return all ones without their enables (co-simulation; see the buffer module).\n\
         module {TOP_MODULE} #(parameter POISON_UNREAD = 0) ("
    );
    let _ = writeln!(s, "{}\n);", ports.iter().map(decl).collect::<Vec<_>>().join(",\n"));
    let load = Unit::Load.index();
    let tensor = Unit::Tensor.index();
    let store = Unit::Store.index();
    let _ = write!(
        s,
        r#"    localparam W = {w}, AW = {aw};
    // Controller
    wire [{units}-1:0] issue;
    wire [{units}*{word}-1:0] issue_word;
    wire [{units}*32-1:0] issue_index;
    wire [{units}-1:0] unit_done;
    assign trace_issue = issue;
    assign trace_index = issue_index;
    assign trace_done = unit_done;
    // Instruction i is fetched from DRAM byte address program_address + i * {word_bytes}; done pulses
    // for one cycle when busy falls.
    wire [31:0] fetch_index;
    assign fetch_addr = program_address + {{{{{da_pad}{{1'b0}}}}, fetch_index}} * {word_bytes};
    reg busy_before;
    always @(posedge clock) busy_before <= busy;
    assign done = busy_before && !busy;
    // Each queue head's buffer use (issue_word carries the heads in every cycle)
    wire [{units}*{use_reads}-1:0] head_reads;
    wire [{units}*{slots}-1:0] head_writes;
{use_decoders}
    sat_controller controller (
        .clock(clock), .start(start), .length(length), .imem_addr(fetch_index), .imem_data(fetch_data),
{controller_ports},
        .busy(busy), .cycle(cycle), .bad_opcode(bad_opcode), .overflow(overflow));

    // Tensor unit
    wire [{r}*{m_max}-1:0] t_act_re;
    wire [{t_wgt_lanes}-1:0] t_wgt_re, t_idx_re;
    wire [{c}*{l}-1:0] t_acc_re;
    wire [{r}*{m_max}*{act_aw}-1:0] t_act_raddr;
    wire [{r}*{m_max}*16-1:0] t_act_rdata;
    wire [{t_wgt_lanes}*{wgt_aw}-1:0] t_wgt_raddr;
    wire [{t_wgt_lanes}*16-1:0] t_wgt_rdata;
    wire [{t_wgt_lanes}*8-1:0] t_idx_rdata;
    wire [{c}*{l}*{acc_aw}-1:0] t_acc_raddr;
    wire [{c}*{l}*32-1:0] t_acc_rdata;
    wire [{c}*{l}-1:0] t_acc_we;
    wire [{c}*{l}*{acc_aw}-1:0] t_acc_waddr;
    wire [{c}*{l}*32-1:0] t_acc_wdata;
    {UNIT_MODULE} tensor (
        .clock(clock), .issue(issue[{tensor}]), .issue_word(issue_word[{tensor}*{word} +: {word}]),
        .done(unit_done[{tensor}]), .busy(), .unsupported(t_unsupported),
        .act_re(t_act_re), .act_raddr(t_act_raddr), .act_rdata(t_act_rdata),
        .wgt_re(t_wgt_re), .idx_re(t_idx_re), .wgt_raddr(t_wgt_raddr), .wgt_rdata(t_wgt_rdata),
        .idx_rdata(t_idx_rdata), .acc_re(t_acc_re), .acc_raddr(t_acc_raddr), .acc_rdata(t_acc_rdata),
        .acc_we(t_acc_we), .acc_waddr(t_acc_waddr), .acc_wdata(t_acc_wdata));
    // SORE and WUVE
    wire [{sl}-1:0] s_m_re;
    wire [{sl}*{master_aw}-1:0] s_m_raddr;
    wire [{sl}*32-1:0] s_m_rdata;
    wire [{sl}*{n_max}-1:0] s_w_we;
    wire [{sl}*{n_max}*{wgt_aw}-1:0] s_w_waddr;
    wire [{sl}*{n_max}*16-1:0] s_w_wdata;
    wire [{sl}*{n_max}*8-1:0] s_i_wdata;
    wire [{sl}*{m_max}-1:0] s_k_we;
    wire [{sl}*{m_max}*{mask_aw}-1:0] s_k_waddr;
    wire [{sl}*{m_max}*8-1:0] s_k_wdata;
    {SORE_UNIT_MODULE} sore (
        .clock(clock), .issue(issue[{sore}]), .issue_word(issue_word[{sore}*{word} +: {word}]), .done(unit_done[{sore}]),
        .m_re(s_m_re), .m_raddr(s_m_raddr), .m_rdata(s_m_rdata), .w_we(s_w_we), .w_waddr(s_w_waddr), .w_wdata(s_w_wdata),
        .i_wdata(s_i_wdata), .k_we(s_k_we), .k_waddr(s_k_waddr), .k_wdata(s_k_wdata));
    wire [2*{wl}+3:0] u_m_re;
    wire [{wl}-1:0] u_g_re, u_k_re;
    wire [(2*{wl}+4)*{master_aw}-1:0] u_m_raddr;
    wire [(2*{wl}+4)*32-1:0] u_m_rdata;
    wire [{wl}*{acc_aw}-1:0] u_g_raddr;
    wire [{wl}*32-1:0] u_g_rdata;
    wire [{wl}*{mask_aw}-1:0] u_k_raddr;
    wire [{wl}*8-1:0] u_k_rdata;
    wire [2*{wl}-1:0] u_m_we;
    wire [2*{wl}*{master_aw}-1:0] u_m_waddr;
    wire [2*{wl}*32-1:0] u_m_wdata;
    {WUVE_UNIT_MODULE} wuve (
        .clock(clock), .issue(issue[{wuve}]), .issue_word(issue_word[{wuve}*{word} +: {word}]), .done(unit_done[{wuve}]),
        .m_re(u_m_re), .m_raddr(u_m_raddr), .m_rdata(u_m_rdata), .g_re(u_g_re), .g_raddr(u_g_raddr), .g_rdata(u_g_rdata),
        .k_re(u_k_re), .k_raddr(u_k_raddr), .k_rdata(u_k_rdata), .m_we(u_m_we), .m_waddr(u_m_waddr), .m_wdata(u_m_wdata));
    // Vector unit
    wire [2:0] v_a_rbuf, v_b_rbuf;
    wire [2*{vl}-1:0] v_re;
    wire [2*{vl}*AW-1:0] v_raddr;
    wire [2*{vl}*16-1:0] v_act_rdata, v_wgt_rdata;
    wire [2*{vl}*8-1:0] v_idx_rdata, v_mask_rdata;
    wire [2*{vl}*32-1:0] v_acc_rdata, v_master_rdata;
    wire [2:0] v_wbuf;
    wire [{vl}-1:0] v_we;
    wire [{vl}*AW-1:0] v_waddr;
    wire [{vl}*32-1:0] v_wdata;
    wire t_unsupported, v_unsupported;
    assign unsupported = t_unsupported || v_unsupported;
    {VECTOR_UNIT_MODULE} vector (
        .clock(clock), .issue(issue[{vector}]), .issue_word(issue_word[{vector}*{word} +: {word}]), .done(unit_done[{vector}]),
        .unsupported(v_unsupported), .bad_label(bad_label), .a_rbuf(v_a_rbuf), .b_rbuf(v_b_rbuf),
        .re(v_re), .raddr(v_raddr), .act_rdata(v_act_rdata), .wgt_rdata(v_wgt_rdata),
        .idx_rdata(v_idx_rdata), .acc_rdata(v_acc_rdata), .master_rdata(v_master_rdata), .mask_rdata(v_mask_rdata),
        .wbuf(v_wbuf), .we(v_we), .waddr(v_waddr), .wdata(v_wdata));

    // DMA
    wire [2:0] l_buf, s_buf;
    wire [W-1:0] l_we, s_we_unused, s_re, l_re_unused;
    wire [W*AW-1:0] l_addr, s_addr;
    wire [W*32-1:0] l_wdata, s_wdata_unused, s_rdata;
    // The inputs a DMA direction does not use.
    wire [W*32-1:0] no_lanes = 0;
    {DMA_MODULE} #(.LOAD(1)) load_dma (
        .clock(clock), .issue(issue[{load}]), .issue_word(issue_word[{load}*{word} +: {word}]), .done(unit_done[{load}]),
        .req(load_req), .req_dram(load_req_dram), .req_rows(load_req_rows), .req_cols(load_req_cols),
        .req_row_stride(load_req_row_stride), .req_col_stride(load_req_col_stride),
        .req_element_bytes(load_req_element_bytes), .mem_done(load_mem_done),
        .d_addr(load_addr), .d_valid(load_valid), .d_rdata(load_data), .d_wdata(),
        .s_buf(l_buf), .s_we(l_we), .s_re(l_re_unused), .s_addr(l_addr), .s_wdata(l_wdata), .s_rdata(no_lanes));
    {DMA_MODULE} #(.LOAD(0)) store_dma (
        .clock(clock), .issue(issue[{store}]), .issue_word(issue_word[{store}*{word} +: {word}]), .done(unit_done[{store}]),
        .req(store_req), .req_dram(store_req_dram), .req_rows(store_req_rows), .req_cols(store_req_cols),
        .req_row_stride(store_req_row_stride), .req_col_stride(store_req_col_stride),
        .req_element_bytes(store_req_element_bytes), .mem_done(store_mem_done),
        .d_addr(store_addr), .d_valid(store_valid), .d_rdata(no_lanes), .d_wdata(store_data),
        .s_buf(s_buf), .s_we(s_we_unused), .s_re(s_re), .s_addr(s_addr), .s_wdata(s_wdata_unused), .s_rdata(s_rdata));

    // Buffers, each raising its conflict bit in the cycle after a bank conflict; bank_conflict
    // keeps them from `start` on.
    wire [{buffers}-1:0] bank_conflicts;
    reg [{buffers}-1:0] bank_conflicts_seen;
    always @(posedge clock) bank_conflicts_seen <= start ? {{{buffers}{{1'b0}}}} : bank_conflicts_seen | bank_conflicts;
    assign bank_conflict = bank_conflicts_seen | bank_conflicts;
"#,
        buffers = Buffer::ALL.len(),
        word = WORD_BITS,
        word_bytes = WORD_BITS / 8,
        da_pad = DRAM_ADDRESS_BITS - 32,
        controller_ports = (0..units)
            .map(|u| format!(
                "        .issue${u}(issue[{u}]), .issue_word${u}(issue_word[{u}*{word} +: {word}]), .issue_index${u}(issue_index[{u}*32 +: 32]), .unit_done${u}(unit_done[{u}])",
                word = WORD_BITS
            ))
            .chain((0..units * controller::slots(arch)).map(|k| format!(
                "        .head_reads${k}(head_reads[{k}*4 +: 4]), .head_writes${k}(head_writes[{k}])"
            )))
            .collect::<Vec<_>>()
            .join(",\n"),
        use_reads = 4 * controller::slots(arch),
        slots = controller::slots(arch),
        use_decoders = (0..units)
            .map(|u| format!(
                "    {use_module} use{u} (.word(issue_word[{u}*{word} +: {word}]), .reads(head_reads[{u}*{reads} +: {reads}]), .writes(head_writes[{u}*{b} +: {b}]));",
                use_module = controller::buffer_use_module_name(Unit::ALL[u]),
                word = WORD_BITS,
                reads = 4 * controller::slots(arch),
                b = controller::slots(arch),
            ))
            .collect::<Vec<_>>()
            .join("\n"),
        act_aw = address_bits(arch.buffer_elements(Buffer::Act)),
        wgt_aw = address_bits(arch.buffer_elements(Buffer::Wgt)),
        acc_aw = address_bits(arch.buffer_elements(Buffer::Acc)),
        master_aw = address_bits(arch.buffer_elements(Buffer::Master)),
        mask_aw = address_bits(arch.buffer_elements(Buffer::Mask)),
        sl = arch.sore.lanes,
        wl = arch.wuve.lanes,
        vl = arch.vector.lanes,
        sore = Unit::Sore.index(),
        wuve = Unit::Wuve.index(),
        vector = Unit::Vector.index(),
    );
    let vl = arch.vector.lanes as usize;
    let buses = operand_buses(arch);
    let mut store_mux = Vec::new();
    for (index, &b) in Buffer::ALL.iter().enumerate() {
        let code = b.to_bits();
        let name = b.name();
        let baw = address_bits(arch.buffer_elements(b));
        let width = buffer_width(b);
        // The ports of the operand buses on this buffer alone, in bus order.
        let (mut reads, mut writes) = (Vec::new(), Vec::new());
        for bus in &buses {
            let (BusBuffer::Fixed(on), Some(data)) = (bus.buffer, bus.data) else { continue };
            if on != b {
                continue;
            }
            let slice = |wire: &str, bits: usize| format!("{wire}[{} +: {}]", bus.first * bits, bus.ports * bits);
            let (ports, enable, addr, data) =
                (bus.ports, slice(bus.enable, 1), slice(bus.addr, bus.address_bits), slice(data, width));
            if bus.write {
                writes.push(UnitWrites { ports, enable, addr, data });
            } else {
                reads.push(UnitReads { ports, enable, addr, data });
            }
        }
        // The vector unit reads `a` then `b` on every buffer (two buses) and writes any of them.
        let narrowed = |bus: &str, first: usize, ports: usize| {
            let parts: Vec<String> = (first..first + ports).rev().map(|j| format!("{bus}[{j}*AW +: {baw}]")).collect();
            format!("{{{}}}", parts.join(", "))
        };
        let _ = writeln!(s, "    wire [{}:0] v_{name}_rdata_a, v_{name}_rdata_b;", vl * width - 1);
        let _ = writeln!(s, "    assign v_{name}_rdata = {{v_{name}_rdata_b, v_{name}_rdata_a}};");
        for (operand, first) in [("a", 0), ("b", vl)] {
            reads.push(UnitReads {
                ports: vl,
                enable: format!("v_re[{first} +: {vl}] & {{{vl}{{v_{operand}_rbuf == {code}}}}}"),
                addr: narrowed("v_raddr", first, vl),
                data: format!("v_{name}_rdata_{operand}"),
            });
        }
        let v_data: Vec<String> = (0..vl).rev().map(|j| format!("v_wdata[{j}*32 +: {width}]")).collect();
        writes.push(UnitWrites {
            ports: vl,
            enable: format!("v_we & {{{vl}{{v_wbuf == {code}}}}}"),
            addr: narrowed("v_waddr", 0, vl),
            data: format!("{{{}}}", v_data.join(", ")),
        });
        let unit_reads: usize = reads.iter().map(|r| r.ports).sum();
        let unit_writes: usize = writes.iter().map(|w| w.ports).sum();
        let _ = writeln!(s, "    // {name}");
        let _ = writeln!(s, "    wire [{}:0] {name}_rdata;", (unit_reads + w) * width - 1);
        let _ = writeln!(s, "    wire [{}:0] {name}_host;", width - 1);
        // Concatenations list the highest ports first: the DMA lanes (lane 0 lowest), then the
        // units in reverse.
        let dma_raddr: Vec<String> = (0..w).rev().map(|j| format!("s_addr[{j}*AW +: {baw}]")).collect();
        let dma_waddr: Vec<String> = (0..w).rev().map(|j| format!("l_addr[{j}*AW +: {baw}]")).collect();
        let dma_wdata: Vec<String> = (0..w).rev().map(|j| format!("l_wdata[{j}*32 +: {width}]")).collect();
        let mut re_bus = vec![format!("s_re & {{W{{s_buf == {code}}}}}")];
        re_bus.extend(reads.iter().rev().map(|r| r.enable.clone()));
        let mut raddr_bus = vec![format!("{{{}}}", dma_raddr.join(", "))];
        raddr_bus.extend(reads.iter().rev().map(|r| r.addr.clone()));
        let mut we_bus = vec![format!("l_we & {{W{{l_buf == {code}}}}}")];
        we_bus.extend(writes.iter().rev().map(|w| w.enable.clone()));
        let mut waddr_bus = vec![format!("{{{}}}", dma_waddr.join(", "))];
        waddr_bus.extend(writes.iter().rev().map(|w| w.addr.clone()));
        let mut wdata_bus = vec![format!("{{{}}}", dma_wdata.join(", "))];
        wdata_bus.extend(writes.iter().rev().map(|w| w.data.clone()));
        // The read buses in lane order: the units', then the DMA's.
        let bus_table = buffer::bus_table(reads.iter().map(|r| r.ports).chain([w]));
        let _ = writeln!(
            s,
            "    {BUFFER_MODULE} #(.WIDTH({width}), .AW({baw}), {geometry},\n        \
             .RPORTS({rp}), .WPORTS({wp}), .RBUSES({buses}), .RBUS({table}), .POISON_UNREAD(POISON_UNREAD)) {name}_buffer (\n        \
             .clock(clock), .re({{{re}}}), .raddr({{{raddr}}}), .rdata({name}_rdata),\n        \
             .we({{{we}}}), .waddr({{{waddr}}}), .wdata({{{wdata}}}),\n        \
             .host_re(host_re && host_buf == {code}), .host_we(host_we && host_buf == {code}),\n        \
             .host_addr(host_addr[{baw}-1:0]), .host_wdata(host_wdata[{width}-1:0]), .host_rdata({name}_host),\n        \
             .conflict(bank_conflicts[{index}]));",
            geometry = buffer::geometry_parameters(arch, b),
            buses = bus_table.1,
            table = bus_table.0,

            rp = unit_reads + w,
            wp = unit_writes + w,
            re = re_bus.join(", "),
            raddr = raddr_bus.join(", "),
            we = we_bus.join(", "),
            waddr = waddr_bus.join(", "),
            wdata = wdata_bus.join(", "),
        );
        let mut first_port = 0;
        for read in &reads {
            let _ = writeln!(
                s,
                "    assign {} = {name}_rdata[{}:{}];",
                read.data,
                (first_port + read.ports) * width - 1,
                first_port * width
            );
            first_port += read.ports;
        }
        store_mux.push((code, name, width, unit_reads));
    }
    // The store lanes read the buffer named by the running store (registered with the data).
    let _ = writeln!(s, "    reg [2:0] s_buf_d;\n    always @(posedge clock) s_buf_d <= s_buf;");
    let _ = writeln!(s, "    genvar g;\n    generate\n        for (g = 0; g < W; g = g + 1) begin : store_lanes");
    let mut expr = "32'h0".to_string();
    for (code, name, width, reads) in store_mux.iter().rev() {
        let pad = if *width == 32 { String::new() } else { format!("{}'h0, ", 32 - width) };
        expr = format!("s_buf_d == {code} ? {{{pad}{name}_rdata[({reads} + g)*{width} +: {width}]}} : {expr}");
    }
    let _ = writeln!(s, "            assign s_rdata[g*32 +: 32] = {expr};\n        end\n    endgenerate");
    let mut host = "32'h0".to_string();
    for (code, name, width, _) in store_mux.iter().rev() {
        let pad = if *width == 32 { String::new() } else { format!("{}'h0, ", 32 - width) };
        host = format!("host_buf == {code} ? {{{pad}{name}_host}} : {host}");
    }
    let _ = writeln!(s, "    assign host_rdata = {host};\nendmodule");
    (s, ports)
}
