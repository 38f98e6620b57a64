//! The controller's Verilog for the `tiny` preset passes rust-hdl's structural checks and Verilator's lint, and
//! holds one queue register per unit and entry of the description's `queue_depth`.

use satkit_hw::rtl::controller::{generate, TOP_MODULE};
use satkit_hw::ArchConfig;

#[test]
fn controller_verilog_is_generated_from_the_description() {
    let arch = ArchConfig::tiny();
    let design = generate(&arch).unwrap();
    let verilog = &design.verilog;
    assert_eq!(design.top, TOP_MODULE);
    let depth = arch.control.queue_depth as usize;
    for entry in 0..6 * depth {
        assert!(verilog.contains(&format!("queue_word${entry}$q")), "queue entry {entry} missing");
    }
    assert!(!verilog.contains(&format!("queue_word${}$q", 6 * depth)), "more queue entries than the description holds");
    satkit_hw::rtl::lint_text(verilog, TOP_MODULE).unwrap();
}
