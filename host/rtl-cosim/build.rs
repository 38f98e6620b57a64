//! Build script of the co-simulation crate: generates the machine RTL of one architecture
//! (`satkit_hw::rtl::machine::generate`; the `tiny` preset unless `SATKIT_COSIM_ARCH` names another
//! preset or an absolute path to a TOML file), verilates it into C++ with the read ports
//! poisoned (`POISON_UNREAD`: a read without its enable returns all ones), writes a C-ABI shim
//! whose port accessors are generated from the design's port list (`RtlDesign::ports`) and
//! whose probes read the operand buses' internal wires (`rtl::machine::operand_buses`, kept
//! readable by a Verilator configuration file), compiles all of it with `cc`, and writes the
//! matching Rust port and probe tables (`ports.rs`) that `src/lib.rs` includes.
//!
//! There is no fallback: without Verilator the build fails with a message saying so, so the
//! co-simulation tests can never be skipped silently.

use satkit_hw::rtl::{self, PortDirection, RtlDesign, RtlPort};
use satkit_hw::ArchConfig;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Verilator warnings waived, as `satkit rtl`'s lint waives them (see `host/src/rtl_cmd.rs`).
const WAIVERS: [&str; 3] = ["-Wno-DECLFILENAME", "-Wno-WIDTH", "-Wno-UNOPTFLAT"];
/// Prefix of the Verilated model's C++ class.
const PREFIX: &str = "Vsat";

fn main() {
    if let Err(message) = build() {
        eprintln!("error: satkit-rtl-cosim: {message}");
        std::process::exit(1);
    }
}

fn build() -> Result<(), String> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SATKIT_COSIM_ARCH");
    println!("cargo:rerun-if-env-changed=VERILATOR_ROOT");
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?);
    let arch_name = std::env::var("SATKIT_COSIM_ARCH").unwrap_or_else(|_| "tiny".to_string());
    if Path::new(&arch_name).is_file() {
        println!("cargo:rerun-if-changed={arch_name}");
    }
    let arch = ArchConfig::resolve(&arch_name).map_err(|e| format!("SATKIT_COSIM_ARCH={arch_name}: {e}"))?;
    let design = rtl::machine::generate(&arch).map_err(|e| format!("generating the RTL of `{}`: {e}", arch.name))?;
    let verilog = out.join(format!("{}.v", design.top));
    write(&verilog, &design.verilog)?;

    let probes = probes(&arch);
    let config = out.join("probes.vlt");
    write(&config, &probe_config(&design.top, &probes))?;

    let root = verilator_root()?;
    let obj_dir = out.join("obj_dir");
    if obj_dir.exists() {
        std::fs::remove_dir_all(&obj_dir).map_err(|e| format!("cannot remove stale {}: {e}", obj_dir.display()))?;
    }
    let status = Command::new("verilator")
        .args(["--cc", "-O3", "--x-assign", "fast", "--x-initial", "fast", "--prefix", PREFIX, "--top-module", &design.top])
        .args(WAIVERS)
        .args(rtl::VERILATOR_OPTIONS)
        // A read port without its enable returns all ones, so a unit that uses data it did
        // not enable computes NaNs and the comparison with the simulator fails.
        .arg("-GPOISON_UNREAD=1")
        .arg("-Mdir")
        .arg(&obj_dir)
        .arg(&config)
        .arg(&verilog)
        .output()
        .map_err(|e| format!("cannot run verilator: {e}"))?;
    if !status.status.success() {
        return Err(format!(
            "verilator --cc {} failed:\n{}",
            verilog.display(),
            String::from_utf8_lossy(&status.stderr).trim_end()
        ));
    }

    let shim = out.join("shim.cpp");
    write(&shim, &shim_source(&design, &probes)?)?;
    write(&out.join("ports.rs"), &rust_ports(&arch_name, &design, &probes))?;

    let include = root.join("include");
    let mut sources: Vec<PathBuf> = vec![include.join("verilated.cpp"), include.join("verilated_threads.cpp")];
    let mut generated: Vec<PathBuf> = std::fs::read_dir(&obj_dir)
        .map_err(|e| format!("{}: {e}", obj_dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cpp"))
        .collect();
    generated.sort();
    if generated.is_empty() {
        return Err(format!("verilator wrote no C++ into {}", obj_dir.display()));
    }
    sources.extend(generated);
    sources.push(shim);
    for source in &sources {
        if !source.exists() {
            return Err(format!("{} does not exist (is VERILATOR_ROOT = {} right?)", source.display(), root.display()));
        }
    }
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .opt_level(2)
        .define("VL_TIME_CONTEXT", None)
        .include(&include)
        .include(include.join("vltstd"))
        .include(&obj_dir)
        .warnings(false)
        .flag_if_supported("-fno-strict-aliasing")
        .files(&sources)
        .try_compile("satkit_rtl_cosim")
        .map_err(|e| format!("compiling the Verilated model: {e}"))?;
    Ok(())
}

/// `$VERILATOR_ROOT`, asked of `verilator --getenv VERILATOR_ROOT`.
fn verilator_root() -> Result<PathBuf, String> {
    let out = Command::new("verilator").args(["--getenv", "VERILATOR_ROOT"]).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "verilator not found on PATH: the co-simulation needs Verilator 5 (`apt-get install verilator`); \
             the tests are never skipped without it"
                .to_string()
        } else {
            format!("cannot run verilator: {e}")
        }
    })?;
    if !out.status.success() {
        return Err(format!("verilator --getenv VERILATOR_ROOT failed: {}", String::from_utf8_lossy(&out.stderr).trim_end()));
    }
    let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !root.join("include").join("verilated.h").exists() {
        return Err(format!("VERILATOR_ROOT {} has no include/verilated.h", root.display()));
    }
    Ok(root)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The C++ member Verilator names a port by: every character outside `[A-Za-z0-9_]` becomes
/// `__0` and its two hex digits (`act$0` -> `act__0240`), as Verilator's name encoding does.
fn cpp_member(name: &str) -> String {
    let mut s = String::new();
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() || ch == '_' {
            s.push(ch);
        } else {
            let _ = write!(s, "__0{:02x}", ch as u32);
        }
    }
    s
}

/// 32-bit words a port of `width` bits occupies.
fn words(width: usize) -> usize {
    width.div_ceil(32)
}

/// The internal wires of the top module that the shim reads (`sat_cosim_probe`), with the
/// bits used: every operand bus's enables and addresses, and the wires naming their buffers
/// ([`rtl::machine::operand_buses`]).
fn probes(arch: &satkit_hw::ArchConfig) -> Vec<RtlPort> {
    use satkit_hw::rtl::machine::{operand_buses, BusBuffer};
    let mut probes: Vec<RtlPort> = Vec::new();
    let mut need = |name: &str, width: usize| match probes.iter_mut().find(|p| p.name == name) {
        Some(p) => p.width = p.width.max(width),
        None => probes.push(RtlPort { name: name.to_string(), direction: PortDirection::Output, width }),
    };
    for bus in operand_buses(arch) {
        need(bus.enable, bus.first + bus.ports);
        need(bus.addr, (bus.first + bus.ports) * bus.address_bits);
        if let BusBuffer::Wire(wire) = bus.buffer {
            need(wire, 3);
        }
    }
    probes
}

/// A Verilator configuration file that keeps the probed wires readable.
fn probe_config(top: &str, probes: &[RtlPort]) -> String {
    let mut s = String::from("`verilator_config\n");
    for p in probes {
        let _ = writeln!(s, "public_flat_rd -module \"{top}\" -var \"{}\"", p.name);
    }
    s
}

/// The shim: a C ABI over the Verilated model; port `i` of `design.ports` is port number `i`,
/// and probe `i` of `probes` (an internal wire of the top module) probe number `i`.
fn shim_source(design: &RtlDesign, probes: &[RtlPort]) -> Result<String, String> {
    let clock = design
        .ports
        .iter()
        .find(|p| p.name == "clock" && p.direction == PortDirection::Input && p.width == 1)
        .ok_or_else(|| format!("the top module `{}` has no 1-bit input `clock`", design.top))?;
    let mut s = String::new();
    let _ = writeln!(s, "// Generated by satkit-rtl-cosim's build.rs from the port list of `{}`.", design.top);
    let _ = writeln!(
        s,
        "#include \"{PREFIX}.h\"\n#include \"{PREFIX}___024root.h\"\n#include \"verilated.h\"\n#include <cstdint>\n#include <cstring>\n"
    );
    s.push_str(
        "struct SatCosim {\n  VerilatedContext* ctx;\n  Vsat* top;\n};\n\nextern \"C\" {\n\n\
         SatCosim* sat_cosim_new() {\n  SatCosim* m = new SatCosim;\n  m->ctx = new VerilatedContext;\n  \
         m->top = new Vsat{m->ctx, \"top\"};\n  m->top->eval();\n  return m;\n}\n\n\
         void sat_cosim_delete(SatCosim* m) {\n  m->top->final();\n  delete m->top;\n  delete m->ctx;\n  delete m;\n}\n\n\
         void sat_cosim_eval(SatCosim* m) { m->top->eval(); }\n\n",
    );
    let _ = writeln!(
        s,
        "// Rising then falling edge of `{0}`, `n` times, evaluating after each.\n\
         void sat_cosim_tick(SatCosim* m, uint64_t n) {{\n  for (uint64_t i = 0; i < n; ++i) {{\n    \
         m->top->{1} = 1;\n    m->top->eval();\n    m->top->{1} = 0;\n    m->top->eval();\n  }}\n}}\n",
        clock.name,
        cpp_member(&clock.name)
    );
    s.push_str("// Writes input `port` from `n` 32-bit words (least significant first); 0 on success.\n");
    s.push_str("int sat_cosim_set(SatCosim* m, uint32_t port, const uint32_t* w, uint32_t n) {\n  switch (port) {\n");
    for (i, p) in design.ports.iter().enumerate().filter(|(_, p)| p.direction == PortDirection::Input) {
        let _ = writeln!(s, "  case {i}: // {}\n    if (n != {}) return -2;", p.name, words(p.width));
        s.push_str(&port_write(p));
        s.push_str("    return 0;\n");
    }
    s.push_str("  default:\n    return -1;\n  }\n}\n\n");
    s.push_str("// Reads `port` into `n` 32-bit words (least significant first); 0 on success.\n");
    s.push_str("int sat_cosim_get(SatCosim* m, uint32_t port, uint32_t* w, uint32_t n) {\n  switch (port) {\n");
    for (i, p) in design.ports.iter().enumerate() {
        let _ = writeln!(s, "  case {i}: // {}\n    if (n != {}) return -2;", p.name, words(p.width));
        s.push_str(&port_read(p));
        s.push_str("    return 0;\n");
    }
    s.push_str("  default:\n    return -1;\n  }\n}\n\n");
    s.push_str(
        "// Reads internal wire `probe` into `n` 32-bit words (least significant first, the wire's\n\
         // bits past them dropped); 0 on success.\n\
         int sat_cosim_probe(SatCosim* m, uint32_t probe, uint32_t* w, uint32_t n) {\n  switch (probe) {\n",
    );
    for (i, p) in probes.iter().enumerate() {
        let member = format!("m->top->rootp->{}__DOT__{}", design.top, cpp_member(&p.name));
        let _ = writeln!(
            s,
            "  case {i}: // {name}\n    if (n != {n}) return -2;\n    static_assert(sizeof({member}) >= {bytes}, \"{name} is narrower than its probe\");\n    \
             std::memset(w, 0, 4 * n);\n    std::memcpy(w, &{member}, sizeof({member}) < 4 * n ? sizeof({member}) : 4 * n);\n    return 0;",
            name = p.name,
            n = words(p.width),
            bytes = p.width.div_ceil(8),
        );
    }
    s.push_str("  default:\n    return -1;\n  }\n}\n\n}  // extern \"C\"\n");
    Ok(s)
}

/// Mask of the used bits of word `k` of a `width`-bit port.
fn word_mask(width: usize, k: usize) -> u32 {
    let bits = (width - 32 * k).min(32);
    if bits == 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    }
}

fn port_write(p: &RtlPort) -> String {
    let member = cpp_member(&p.name);
    match p.width {
        0 => String::new(),
        1..=32 => format!("    m->top->{member} = w[0] & 0x{:x}u;\n", word_mask(p.width, 0)),
        33..=64 => {
            format!("    m->top->{member} = (uint64_t)w[0] | ((uint64_t)(w[1] & 0x{:x}u) << 32);\n", word_mask(p.width, 1))
        }
        _ => (0..words(p.width))
            .map(|k| format!("    m->top->{member}[{k}] = w[{k}] & 0x{:x}u;\n", word_mask(p.width, k)))
            .collect(),
    }
}

fn port_read(p: &RtlPort) -> String {
    let member = cpp_member(&p.name);
    match p.width {
        0 => String::new(),
        1..=32 => format!("    w[0] = (uint32_t)m->top->{member};\n"),
        33..=64 => format!("    w[0] = (uint32_t)m->top->{member};\n    w[1] = (uint32_t)((uint64_t)m->top->{member} >> 32);\n"),
        _ => (0..words(p.width)).map(|k| format!("    w[{k}] = m->top->{member}[{k}];\n")).collect(),
    }
}

/// `ports.rs`: the port and probe tables in the shim's numbering and the architecture it was
/// built for.
fn rust_ports(arch_name: &str, design: &RtlDesign, probes: &[RtlPort]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "// Generated by satkit-rtl-cosim's build.rs from the port list of `{}`.", design.top);
    let _ = writeln!(s, "/// The architecture (preset name or TOML file) the Verilated model was generated from.");
    let _ = writeln!(s, "pub const BUILT_ARCH: &str = {arch_name:?};");
    let _ = writeln!(s, "/// Top module of the Verilated model.");
    let _ = writeln!(s, "pub const TOP: &str = {:?};", design.top);
    let _ = writeln!(s, "/// The top module's ports; index `i` is the shim's port number `i`.");
    let _ = writeln!(s, "pub const PORTS: &[PortInfo] = &[");
    for p in &design.ports {
        let _ = writeln!(
            s,
            "    PortInfo {{ name: {:?}, input: {}, width: {} }},",
            p.name,
            p.direction == PortDirection::Input,
            p.width
        );
    }
    s.push_str("];\n");
    let _ = writeln!(s, "/// The top module's probed internal wires; index `i` is the shim's probe number `i`.");
    let _ = writeln!(s, "pub const PROBES: &[PortInfo] = &[");
    for p in probes {
        let _ = writeln!(s, "    PortInfo {{ name: {:?}, input: false, width: {} }},", p.name, p.width);
    }
    s.push_str("];\n");
    s
}
