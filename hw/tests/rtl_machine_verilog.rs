//! The machine's Verilog passes Verilator's lint for `tiny` and for `tiny` with `vcu1525`'s
//! DRAM (384 DMA lanes: loops over hundreds of buffer ports and lanes), and its sizes come from
//! the description: one DMA lane per byte of DRAM bandwidth per cycle, one accumulator buffer
//! port per array column and interleave slot; and yosys elaborates it (what synthesis reads
//! first: Verilator accepts some constructs that synthesis refuses) with the instances of every
//! module that the design declares. Without the pooling gradients' line buffer it lints too.

use satkit_hw::arch::BufferConfig;
use satkit_hw::isa::{Buffer, Op, VecOp};
use satkit_hw::rtl::machine::{generate, TOP_MODULE};
use satkit_hw::ArchConfig;

#[test]
fn tiny_machine_lints_and_takes_its_sizes_from_the_description() {
    let arch = ArchConfig::tiny();
    let design = generate(&arch).unwrap();
    assert_eq!(design.top, TOP_MODULE);
    // One channel of 1.6 GB/s at 200 MHz: 8 bytes, so 8 one-byte elements, a cycle.
    let lanes = arch.dma_lanes() as usize;
    assert_eq!(lanes, 8);
    let valid = design.ports.iter().find(|p| p.name == "load_valid").unwrap();
    assert_eq!(valid.width, lanes);
    let acc_ports = (arch.array.cols * arch.array.accumulator_latency) as usize;
    assert!(design.verilog.contains(&format!("wire [{}*{}-1:0] t_acc_we;", arch.array.cols, arch.array.accumulator_latency)));
    assert_eq!(acc_ports, 8);
    satkit_hw::rtl::lint_text(&design.verilog, TOP_MODULE).unwrap();
}

/// Without the pooling gradients' line buffer (`vector.pool_line_rows = 0`), the machine lints
/// and refuses those gradients.
#[test]
fn a_machine_without_the_line_buffer_lints_and_refuses_overlapping_pooling_gradients() {
    let mut arch = ArchConfig::tiny();
    arch.vector.pool_line_rows = 0;
    arch.validate().unwrap();
    let design = generate(&arch).unwrap();
    assert!(design.verilog.contains("localparam LINE_ON = 0, LR = 1, LC = 1"));
    satkit_hw::rtl::lint_text(&design.verilog, TOP_MODULE).unwrap();
    let gradient = |stride| Op::Vec {
        op: VecOp::MaxPoolGrad,
        count: 1,
        dst_buf: Buffer::Acc,
        dst: 0,
        a_buf: Buffer::Acc,
        a: 100,
        b_buf: Buffer::Acc,
        b: 200,
        p0: 5,
        p1: 5,
        p2: 3,
        p3: stride,
    };
    let why = satkit_hw::rtl::unsupported(&arch, &gradient(2)).unwrap();
    assert!(why.contains("no line buffer"), "{why}");
    assert!(satkit_hw::rtl::unsupported(&arch, &gradient(3)).is_none());
}

#[test]
fn a_machine_with_hundreds_of_dma_lanes_lints() {
    let tiny = ArchConfig::tiny();
    // A DMA cycle's 384 elements need 512 banks in every buffer.
    let buffers = BufferConfig { act_banks: 512, wgt_banks: 512, acc_banks: 512, master_banks: 512, ..tiny.buffers.clone() };
    let arch = ArchConfig { name: "tiny-wide-dram".into(), dram: ArchConfig::vcu1525().dram, buffers, ..tiny };
    assert_eq!(arch.dma_lanes(), 384);
    let design = generate(&arch).unwrap();
    satkit_hw::rtl::lint_text(&design.verilog, TOP_MODULE).unwrap();
}

#[test]
fn the_tiny_machine_elaborates_in_yosys_with_the_instances_it_declares() {
    let design = generate(&ArchConfig::tiny()).unwrap();
    let path = std::env::temp_dir().join(format!("satkit_elaborate_{}.v", std::process::id()));
    std::fs::write(&path, &design.verilog).unwrap();
    let elaborated = satkit_hw::rtl::elaborate(&path, TOP_MODULE);
    let _ = std::fs::remove_file(&path);
    let instances = elaborated.unwrap();
    // Every module's instance count (the FP blocks' of the vector unit's lanes are written in
    // machine.rs) is what yosys finds in the elaborated hierarchy.
    for module in design.modules.iter().filter(|m| m.name != TOP_MODULE) {
        assert_eq!(instances.get(&module.name).copied().unwrap_or(0), module.instances, "instances of `{}`", module.name);
    }
    assert!(instances["sat_fp32_add"] > 100, "{instances:?}");
}

#[test]
fn partitions_that_are_not_powers_of_two_are_refused() {
    let mut arch = ArchConfig::tiny();
    arch.buffers.act_kib = 48;
    arch.validate().unwrap();
    let error = generate(&arch).unwrap_err().to_string();
    assert!(error.contains("a partition of buffer act holds 12288 elements"), "{error}");
}

/// Every operand bus that `operand_buses` lists (what co-simulation probes) is wired to the
/// buffers it names: its enables and addresses appear in those buffers' instances.
#[test]
fn the_operand_buses_are_the_buffers_ports() {
    use satkit_hw::rtl::machine::{operand_buses, BusBuffer};
    let arch = ArchConfig::tiny();
    let design = generate(&arch).unwrap();
    let instance = |b: Buffer| {
        let start = design.verilog.find(&format!(") {}_buffer (", b.name())).unwrap_or_else(|| panic!("no {} buffer", b.name()));
        let end = start + design.verilog[start..].find(");").unwrap();
        &design.verilog[start..end]
    };
    let buses = operand_buses(&arch);
    for bus in &buses {
        let buffers = match bus.buffer {
            BusBuffer::Fixed(b) => vec![b],
            BusBuffer::Wire(wire) => {
                assert!(design.verilog.contains(&format!("{wire} ==")), "{wire} selects no buffer");
                Buffer::ALL.to_vec()
            }
        };
        for b in buffers {
            let text = instance(b);
            for wire in [bus.enable, bus.addr] {
                assert!(
                    text.contains(wire),
                    "{} {}: `{wire}` is not a port of the {} buffer",
                    bus.unit.name(),
                    bus.operand,
                    b.name()
                );
            }
        }
    }
}
