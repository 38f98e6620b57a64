//! The on-chip buffers as banked block RAM: each buffer is `buffers.partitions` partitions x
//! `buffers.readers` replicas x its banks ([`ArchConfig::banks`]) memories of one read and one
//! write port, which synthesis maps onto block RAM (the `sat_buffer_bank` template, marked
//! `ram_style = "block"`; [`crate::board::memory_plan`] counts them for a board).
//!
//! **Addresses.** Element `a` lies in bank `a mod B` (`B` banks), row `a div B` of the buffer;
//! the rows are split into the partitions' equal ranges, so a memory holds `elements /
//! (partitions B)` rows of one bank of one partition.
//!
//! **Reads.** The machine's units read a buffer through operand buses
//! ([`super::machine::operand_buses`]): many lanes, each with an enable and an address. The
//! simulator's cost model keeps every bus on distinct banks: in each cycle a bus reads at most
//! one element of each memory (lanes may repeat an element). The controller keeps at most
//! `buffers.readers` operands on a partition at once. So in every cycle each memory is read by
//! at most `readers` buses, and each bus takes the next replica of the memory, in bus order
//! (every replica holds the same data): a crossbar routes each memory's row from its bus's lane
//! and each lane's data back from its memory's replica a cycle later. The host port is the
//! last bus (for tests and debugging, while the machine is idle).
//!
//! **Writes.** Every write reaches every replica of its memory. The controller lets one
//! instruction write a partition at a time (`buffers.writers = 1`), whose lanes the simulator's
//! cost keeps on distinct banks (an update's two write runs, [`ArchConfig::wuve_momentum_delay`]),
//! so each memory takes at most one element a cycle; lanes writing the same element keep the
//! last lane's value, as the host port's write does after them.
//!
//! **Conflicts.** A cycle in which two distinct elements of one memory are wanted by one read
//! bus, or by more than `readers` buses, or by two writes, raises `conflict` in the next cycle
//! (the machine's `bank_conflict` keeps it): that cycle's data is wrong. The co-simulation fails
//! any program that raises it, so every test checks the cost model's bank rules on the RTL.

use crate::isa::Buffer;
use crate::{ArchConfig, Error};

/// Name of the buffer module.
pub const BUFFER_MODULE: &str = "sat_buffer";
/// Name of one bank memory's module.
pub const BANK_MODULE: &str = "sat_buffer_bank";

/// Bits that number the read buses of one buffer in the buffer's `RBUS` parameter (two hex
/// digits in [`bus_table`]).
pub const BUS_BITS: usize = 8;
const _: () = assert!(BUS_BITS == 8);

/// Refuses descriptions whose buffers have no banked form: a memory has one write port, and a
/// replica per reader.
pub fn check_limits(arch: &ArchConfig) -> Result<(), Error> {
    let b = &arch.buffers;
    let bad =
        |field: &'static str, value: u32, rule: &'static str| Err(Error::InvalidArch { field, value: value.to_string(), rule });
    if b.readers == 0 {
        return bad("buffers.readers", b.readers, "the RTL's block-RAM buffers need a replica per reader: set 1 or more");
    }
    if b.writers != 1 {
        return bad("buffers.writers", b.writers, "the RTL's block-RAM buffers have one write port per memory: set 1");
    }
    if let Some(&buffer) = Buffer::ALL.iter().find(|&&x| !arch.partition_elements(x).is_multiple_of(arch.banks(x))) {
        return Err(Error::RtlVerilog {
            message: format!(
                "{}: a partition of {} ({} elements) is not whole rows of its {} banks",
                arch.name,
                buffer.name(),
                arch.partition_elements(buffer),
                arch.banks(buffer)
            ),
        });
    }
    Ok(())
}

/// The `#(...)` parameters of `buffer`'s instance, besides its ports' counts and bus table.
pub fn geometry_parameters(arch: &ArchConfig, buffer: Buffer) -> String {
    let rows = arch.bank_rows(buffer);
    format!(
        ".BANKS({}), .PARTS({}), .ROWS({rows}), .RW({}), .READERS({})",
        arch.banks(buffer),
        arch.buffers.partitions,
        super::tensor::address_bits(rows),
        arch.buffers.readers
    )
}

/// The `RBUS` and `RBUSES` parameters of a buffer whose read lanes come in buses of these
/// sizes, lowest lane first: each lane's bus number in [`BUS_BITS`] bits, as a Verilog literal,
/// and the number of buses (those without lanes are left out).
pub fn bus_table(bus_lanes: impl IntoIterator<Item = usize>) -> (String, usize) {
    let sizes: Vec<usize> = bus_lanes.into_iter().filter(|&n| n > 0).collect();
    let lanes: Vec<usize> = sizes.iter().enumerate().flat_map(|(bus, &n)| std::iter::repeat_n(bus, n)).collect();
    let digits: String = lanes.iter().rev().map(|bus| format!("{bus:02x}")).collect();
    let table = format!("{}'h{}", BUS_BITS * lanes.len().max(1), if digits.is_empty() { "0".into() } else { digits });
    (table, sizes.len())
}

/// The buffer and bank templates.
pub fn modules() -> String {
    format!(
        r#"
// One memory of a banked buffer: ROWS elements of WIDTH bits, one synchronous read port with
// its enable and one write port. A read of the element being written returns the old value.
module {BANK_MODULE} #(parameter WIDTH = 16, parameter ROWS = 512, parameter RW = 9) (
    input clock,
    input we,
    input [RW-1:0] waddr,
    input [WIDTH-1:0] wdata,
    input re,
    input [RW-1:0] raddr,
    output reg [WIDTH-1:0] rdata
);
    (* ram_style = "block" *) reg [WIDTH-1:0] mem [0:ROWS-1];
    always @(posedge clock) begin
        if (we) mem[waddr] <= wdata;
        if (re) rdata <= mem[raddr];
    end
endmodule

// One on-chip buffer (see satkit's hw/src/rtl/buffer.rs): PARTS partitions x READERS replicas x
// BANKS banks of ROWS elements of WIDTH bits. RPORTS read lanes, in RBUSES buses (RBUS: each
// lane's bus, {BUS_BITS} bits a lane), read synchronously; WPORTS write lanes; the host port reads
// (with host_re) and writes one element. A lane read without its enable returns undefined data,
// or all ones with POISON_UNREAD (co-simulation), so a unit that uses it computes NaNs and fails.
// conflict: the last cycle wanted two elements of one memory from one bus, or more than READERS
// buses on one memory, or two writes to one memory.
module {BUFFER_MODULE} #(parameter WIDTH = 16, parameter AW = 10, parameter BANKS = 8, parameter PARTS = 1,
                    parameter ROWS = 128, parameter RW = 7, parameter READERS = 1,
                    parameter RPORTS = 1, parameter WPORTS = 1, parameter RBUSES = 1,
                    parameter [{BUS_BITS}*RPORTS-1:0] RBUS = 0, parameter POISON_UNREAD = 0) (
    input clock,
    input [RPORTS-1:0] re,
    input [RPORTS*AW-1:0] raddr,
    output [RPORTS*WIDTH-1:0] rdata,
    input [WPORTS-1:0] we,
    input [WPORTS*AW-1:0] waddr,
    input [WPORTS*WIDTH-1:0] wdata,
    input host_re,
    input host_we,
    input [AW-1:0] host_addr,
    input [WIDTH-1:0] host_wdata,
    output [WIDTH-1:0] host_rdata,
    output reg conflict
);
    localparam MEMS = PARTS * BANKS, PORTS = MEMS * READERS;
    // Bits of a memory's number, of a replica's, and of a read port's (memory * READERS +
    // replica).
    localparam MW = $clog2(MEMS + 1), RK = $clog2(READERS + 1), SW = MW + RK;

    // The memory (partition * BANKS + bank) and its row of an element.
    function [MW-1:0] memory_of(input [AW-1:0] a);
        integer p;
        begin
            memory_of = 0;
            for (p = 1; p < PARTS; p = p + 1)
                if (a / BANKS >= p * ROWS) memory_of = p;
            memory_of = memory_of * BANKS + a % BANKS;
        end
    endfunction
    function [RW-1:0] row_of(input [AW-1:0] a);
        integer p;
        begin
            row_of = a / BANKS;
            for (p = 1; p < PARTS; p = p + 1)
                if (a / BANKS >= p * ROWS) row_of = a / BANKS - p * ROWS;
        end
    endfunction
    // The bus of a read lane (-1 beyond the lanes).
    function integer bus_is(input integer lane);
        if (lane < 0 || lane >= RPORTS) bus_is = -1;
        else bus_is = RBUS[{BUS_BITS}*lane +: {BUS_BITS}];
    endfunction

    genvar g, h, k2;
    // Reads. Each bus's lanes are chained (the buses' lanes are consecutive): the memories
    // the bus reads so far, one bit each, and the row it reads in each. A lane that wants
    // another row of a memory its bus already reads clashes.
    // (split_var: Verilator orders each lane's slice apart, not the chain as one loop.)
    wire [RPORTS*MEMS-1:0] hit_chain /*verilator split_var*/;
    wire [RPORTS*MEMS*RW-1:0] row_chain /*verilator split_var*/;
    wire [RPORTS*MW-1:0] read_memory;
    wire [RPORTS-1:0] lane_clash;
    wire [RBUSES*MEMS-1:0] bus_hit;
    wire [RBUSES*MEMS*RW-1:0] bus_row;
    generate
        for (g = 0; g < RPORTS; g = g + 1) begin : read_lanes
            wire [MW-1:0] memory = memory_of(raddr[g*AW +: AW]);
            wire [RW-1:0] row = row_of(raddr[g*AW +: AW]);
            wire [MEMS-1:0] hit_in;
            wire [MEMS*RW-1:0] row_in;
            if (bus_is(g) != bus_is(g - 1)) begin : first
                assign hit_in = 0;
                assign row_in = 0;
            end else begin : next
                assign hit_in = hit_chain[(g-1)*MEMS +: MEMS];
                assign row_in = row_chain[(g-1)*MEMS*RW +: MEMS*RW];
            end
            assign read_memory[g*MW +: MW] = memory;
            wire [MEMS-1:0] re_wide = re[g];
            wire [MEMS*RW-1:0] row_wide = re[g] ? row : 0;
            assign hit_chain[g*MEMS +: MEMS] = hit_in | re_wide << memory;
            assign row_chain[g*MEMS*RW +: MEMS*RW] = row_in | row_wide << (memory*RW);
            assign lane_clash[g] = re[g] && hit_in[memory] && row_in[memory*RW +: RW] != row;
            if (bus_is(g) != bus_is(g + 1)) begin : last
                assign bus_hit[bus_is(g)*MEMS +: MEMS] = hit_chain[g*MEMS +: MEMS];
                assign bus_row[bus_is(g)*MEMS*RW +: MEMS*RW] = row_chain[g*MEMS*RW +: MEMS*RW];
            end
        end
    endgenerate
    wire [MW-1:0] host_memory = memory_of(host_addr);
    wire [RW-1:0] host_row = row_of(host_addr);
    wire [MEMS*RW-1:0] host_row_wide = host_row;

    // The replicas of each memory go to the buses that read it in bus order, the host last:
    // taken[(b*READERS + r)*MEMS + m] says that a bus before b took replica r of memory m,
    // gets the same for bus b alone; a bus beyond the replicas clashes.
    wire [(RBUSES+2)*READERS*MEMS-1:0] taken /*verilator split_var*/;
    wire [(RBUSES+1)*READERS*MEMS-1:0] gets;
    wire [(RBUSES+1)*MEMS-1:0] over;
    assign taken[0 +: READERS*MEMS] = 0;
    generate
        for (g = 0; g <= RBUSES; g = g + 1) begin : buses
            wire [MEMS-1:0] want;
            if (g < RBUSES) begin : unit
                assign want = bus_hit[g*MEMS +: MEMS];
            end else begin : host
                wire [MEMS-1:0] re_wide = host_re;
                assign want = re_wide << host_memory;
            end
            for (h = 0; h < READERS; h = h + 1) begin : replicas
                wire [MEMS-1:0] free = ~taken[(g*READERS + h)*MEMS +: MEMS];
                wire [MEMS-1:0] lower;
                if (h == 0) begin : first
                    wire [MEMS-1:0] none = 0;
                    assign lower = ~none;
                end else begin : next
                    assign lower = taken[(g*READERS + h - 1)*MEMS +: MEMS];
                end
                assign gets[(g*READERS + h)*MEMS +: MEMS] = want & lower & free;
                assign taken[((g+1)*READERS + h)*MEMS +: MEMS] = ~free | (want & lower & free);
            end
            assign over[g*MEMS +: MEMS] = want & taken[(g*READERS + READERS - 1)*MEMS +: MEMS];
        end
    endgenerate

    // Each replica's read port: the row of the bus that took it. The owner's number is kept in
    // bit planes (plane k: the memories whose owner has bit k set), then gathered per memory.
    localparam BB = $clog2(RBUSES + 2);
    wire [(RBUSES+1)*MEMS*RW-1:0] rows_of_buses = {{host_row_wide << (host_memory*RW), bus_row}};
    wire [READERS*MEMS-1:0] port_re;
    wire [READERS*MEMS*RW-1:0] port_raddr;
    generate
        for (h = 0; h < READERS; h = h + 1) begin : ports
            reg [MEMS-1:0] on;
            reg [BB*MEMS-1:0] owner_planes;
            integer b, k;
            always @* begin
                on = 0;
                owner_planes = 0;
                for (b = 0; b <= RBUSES; b = b + 1) begin
                    on = on | gets[(b*READERS + h)*MEMS +: MEMS];
                    for (k = 0; k < BB; k = k + 1)
                        if (b[k]) owner_planes[k*MEMS +: MEMS] = owner_planes[k*MEMS +: MEMS] | gets[(b*READERS + h)*MEMS +: MEMS];
                end
            end
            assign port_re[h*MEMS +: MEMS] = on;
            for (g = 0; g < MEMS; g = g + 1) begin : memories
                wire [BB-1:0] owner;
                for (k2 = 0; k2 < BB; k2 = k2 + 1) begin : bits
                    assign owner[k2] = owner_planes[k2*MEMS + g];
                end
                assign port_raddr[(h*MEMS + g)*RW +: RW] = rows_of_buses[(owner*MEMS + g)*RW +: RW];
            end
        end
    endgenerate

    // Writes, chained over the lanes and the host port last: the memories written so far and
    // the number of the last lane to write each (WB bits a memory), whose row and data the
    // memory takes. A write of another row of a written memory clashes.
    localparam WB = $clog2(WPORTS + 2);
    wire [(WPORTS+1)*RW-1:0] write_rows;
    wire [(WPORTS+1)*WIDTH-1:0] write_data = {{host_wdata, wdata}};
    wire [(WPORTS+2)*MEMS-1:0] we_chain /*verilator split_var*/;
    wire [(WPORTS+2)*MEMS*WB-1:0] writer_chain /*verilator split_var*/;
    wire [WPORTS:0] write_clash;
    assign we_chain[0 +: MEMS] = 0;
    assign writer_chain[0 +: MEMS*WB] = 0;
    generate
        for (g = 0; g <= WPORTS; g = g + 1) begin : write_lanes
            wire on;
            wire [AW-1:0] addr;
            if (g < WPORTS) begin : unit
                assign on = we[g];
                assign addr = waddr[g*AW +: AW];
            end else begin : host
                assign on = host_we;
                assign addr = host_addr;
            end
            wire [MW-1:0] memory = memory_of(addr);
            wire [RW-1:0] row = row_of(addr);
            assign write_rows[g*RW +: RW] = row;
            wire [MEMS-1:0] written = we_chain[g*MEMS +: MEMS];
            wire [MEMS*WB-1:0] writers = writer_chain[g*MEMS*WB +: MEMS*WB];
            // The lane's bit and number, zero-extended to place at its memory.
            wire [MEMS-1:0] on_wide = on;
            wire [MEMS*WB-1:0] lane_wide = g, lane_ones = {{WB{{1'b1}}}};
            wire [MEMS*WB-1:0] lane_mask = on ? lane_ones << (memory*WB) : 0;
            assign we_chain[(g+1)*MEMS +: MEMS] = written | on_wide << memory;
            assign writer_chain[(g+1)*MEMS*WB +: MEMS*WB] = writers & ~lane_mask | (lane_wide << (memory*WB)) & lane_mask;
            assign write_clash[g] = on && written[memory] && write_rows[writers[memory*WB +: WB]*RW +: RW] != row;
        end
    endgenerate
    wire [MEMS-1:0] mem_we = we_chain[(WPORTS+1)*MEMS +: MEMS];
    wire [MEMS*RW-1:0] mem_waddr;
    wire [MEMS*WIDTH-1:0] mem_wdata;
    generate
        for (g = 0; g < MEMS; g = g + 1) begin : memory_writes
            wire [WB-1:0] writer = writer_chain[((WPORTS+1)*MEMS + g)*WB +: WB];
            assign mem_waddr[g*RW +: RW] = write_rows[writer*RW +: RW];
            assign mem_wdata[g*WIDTH +: WIDTH] = write_data[writer*WIDTH +: WIDTH];
        end
    endgenerate

    wire [PORTS*WIDTH-1:0] q;
    generate
        for (g = 0; g < MEMS; g = g + 1) begin : memories
            for (h = 0; h < READERS; h = h + 1) begin : replicas
                {BANK_MODULE} #(.WIDTH(WIDTH), .ROWS(ROWS), .RW(RW)) bank (
                    .clock(clock), .we(mem_we[g]), .waddr(mem_waddr[g*RW +: RW]), .wdata(mem_wdata[g*WIDTH +: WIDTH]),
                    .re(port_re[h*MEMS + g]), .raddr(port_raddr[(h*MEMS + g)*RW +: RW]),
                    .rdata(q[(g*READERS + h)*WIDTH +: WIDTH]));
            end
        end
    endgenerate

    // Each lane's read port (its memory's replica for its bus), and its data a cycle later.
    reg [RPORTS-1:0] re_d;
    reg [RPORTS*SW-1:0] port_d;
    reg [SW-1:0] host_port_d;
    generate
        for (g = 0; g < RPORTS; g = g + 1) begin : lanes
            wire [MW-1:0] memory = read_memory[g*MW +: MW];
            reg [RK-1:0] replica;
            integer r;
            always @* begin
                replica = 0;
                for (r = 1; r < READERS; r = r + 1)
                    if (gets[(bus_is(g)*READERS + r)*MEMS + memory]) replica = r;
            end
            always @(posedge clock) port_d[g*SW +: SW] <= memory * READERS + replica;
            assign rdata[g*WIDTH +: WIDTH] =
                POISON_UNREAD && !re_d[g] ? {{WIDTH{{1'b1}}}} : q[port_d[g*SW +: SW]*WIDTH +: WIDTH];
        end
    endgenerate
    reg [RK-1:0] host_replica;
    integer r;
    always @* begin
        host_replica = 0;
        for (r = 1; r < READERS; r = r + 1)
            if (gets[(RBUSES*READERS + r)*MEMS + host_memory]) host_replica = r;
    end
    always @(posedge clock) begin
        re_d <= re;
        if (host_re) host_port_d <= host_memory * READERS + host_replica;
        conflict <= |lane_clash || |over || |write_clash;
    end
    assign host_rdata = q[host_port_d*WIDTH +: WIDTH];
endmodule
"#
    )
}
