//! The banked buffer (`sat_buffer`, from `satkit_hw::rtl::buffer`) against a reference written
//! from its rules, in Icarus Verilog: a small buffer of two partitions x two replicas x four
//! banks, three read buses of two lanes, three write lanes and the host port, driven with random
//! accesses that both keep and break the bank rules. Every cycle's `conflict` must equal the
//! reference's, and every lane's data, after a cycle without conflict, the element it read
//! (all ones for a lane read without its enable), as a multi-port memory would return it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use satkit_hw::rtl::buffer::{bus_table, modules, BUFFER_MODULE};
use satkit_hw::rtl::run_icarus;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

const WIDTH: usize = 16;
const AW: usize = 8;
const BANKS: u64 = 4;
const PARTS: u64 = 2;
const ROWS: u64 = 32;
const READERS: usize = 2;
const ELEMENTS: u64 = BANKS * PARTS * ROWS;
/// Read lanes per bus.
const BUS_LANES: [usize; 3] = [2, 2, 2];
const RPORTS: usize = 6;
const WPORTS: usize = 3;

/// One cycle's inputs.
#[derive(Clone, Default)]
struct Cycle {
    reads: Vec<Option<u64>>,
    writes: Vec<Option<(u64, u16)>>,
    host_read: Option<u64>,
    host_write: Option<(u64, u16)>,
}

/// The memory (partition, bank) of an element and its row in it.
fn memory(a: u64) -> (u64, u64) {
    let row = a / BANKS;
    ((row / ROWS) * BANKS + a % BANKS, row % ROWS)
}

fn bus_of(lane: usize) -> usize {
    let mut first = 0;
    for (bus, &n) in BUS_LANES.iter().enumerate() {
        if lane < first + n {
            return bus;
        }
        first += n;
    }
    unreachable!("lane {lane} beyond the buses")
}

/// Whether a cycle breaks the bank rules: two rows of one memory for one bus, more than
/// `READERS` buses (the host one of them) on one memory, or two rows written in one memory.
fn conflicts(c: &Cycle) -> bool {
    let mut rows_of: BTreeMap<(usize, u64), BTreeSet<u64>> = BTreeMap::new();
    for (lane, a) in c.reads.iter().enumerate() {
        if let Some(a) = a {
            let (m, row) = memory(*a);
            rows_of.entry((bus_of(lane), m)).or_default().insert(row);
        }
    }
    if let Some(a) = c.host_read {
        let (m, row) = memory(a);
        rows_of.entry((BUS_LANES.len(), m)).or_default().insert(row);
    }
    let mut buses_on: BTreeMap<u64, usize> = BTreeMap::new();
    for ((_, m), rows) in &rows_of {
        *buses_on.entry(*m).or_default() += 1;
        if rows.len() > 1 {
            return true;
        }
    }
    let mut written: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for &(a, _) in c.writes.iter().flatten().chain(c.host_write.iter()) {
        let (m, row) = memory(a);
        written.entry(m).or_default().insert(row);
    }
    buses_on.values().any(|&n| n > READERS) || written.values().any(|rows| rows.len() > 1)
}

/// A random cycle: addresses drawn from a few rows, so elements repeat and banks meet.
fn random_cycle(rng: &mut ChaCha8Rng) -> Cycle {
    let base = rng.gen_range(0..ELEMENTS - 8);
    let mut pick = |p: f64| rng.gen_bool(p).then(|| (base + rng.gen_range(0..8)) % ELEMENTS);
    let reads = (0..RPORTS).map(|_| pick(0.5)).collect();
    let host_read = pick(0.15);
    let mut writes: Vec<Option<(u64, u16)>> = (0..WPORTS).map(|_| pick(0.3).map(|a| (a, 0))).collect();
    let host_write = pick(0.1).map(|a| (a, 0));
    let mut data = || rng.gen::<u16>();
    for w in writes.iter_mut().flatten() {
        w.1 = data();
    }
    Cycle { reads, writes, host_read, host_write: host_write.map(|(a, _)| (a, data())) }
}

fn testbench(cycles: &[Cycle]) -> String {
    let mut tb = modules();
    let (table, buses) = bus_table(BUS_LANES);
    assert_eq!(buses, BUS_LANES.len());
    let _ = write!(
        tb,
        r#"
module tb;
    reg clock = 0;
    reg [{RPORTS}-1:0] re = 0;
    reg [{RPORTS}*{AW}-1:0] raddr = 0;
    wire [{RPORTS}*{WIDTH}-1:0] rdata;
    reg [{WPORTS}-1:0] we = 0;
    reg [{WPORTS}*{AW}-1:0] waddr = 0;
    reg [{WPORTS}*{WIDTH}-1:0] wdata = 0;
    reg host_re = 0, host_we = 0;
    reg [{AW}-1:0] host_addr = 0;
    reg [{WIDTH}-1:0] host_wdata = 0;
    wire [{WIDTH}-1:0] host_rdata;
    wire conflict;
    {BUFFER_MODULE} #(.WIDTH({WIDTH}), .AW({AW}), .BANKS({BANKS}), .PARTS({PARTS}), .ROWS({ROWS}), .RW(5),
        .READERS({READERS}), .RPORTS({RPORTS}), .WPORTS({WPORTS}), .RBUSES({buses}), .RBUS({table}),
        .POISON_UNREAD(1)) buffer (
        .clock(clock), .re(re), .raddr(raddr), .rdata(rdata), .we(we), .waddr(waddr), .wdata(wdata),
        .host_re(host_re), .host_we(host_we), .host_addr(host_addr), .host_wdata(host_wdata),
        .host_rdata(host_rdata), .conflict(conflict));
    initial begin
"#,
    );
    for c in cycles {
        for (lane, a) in c.reads.iter().enumerate() {
            let _ =
                writeln!(tb, "        re[{lane}] = {}; raddr[{lane}*{AW} +: {AW}] = {};", u8::from(a.is_some()), a.unwrap_or(0));
        }
        for (lane, w) in c.writes.iter().enumerate() {
            let (a, d) = w.unwrap_or((0, 0));
            let _ = writeln!(
                tb,
                "        we[{lane}] = {}; waddr[{lane}*{AW} +: {AW}] = {a}; wdata[{lane}*{WIDTH} +: {WIDTH}] = {d};",
                u8::from(w.is_some())
            );
        }
        let (ha, hd) = c.host_write.unwrap_or((c.host_read.unwrap_or(0), 0));
        let _ = writeln!(
            tb,
            "        host_re = {}; host_we = {}; host_addr = {ha}; host_wdata = {hd};",
            u8::from(c.host_read.is_some()),
            u8::from(c.host_write.is_some())
        );
        let _ = writeln!(tb, "        #1 clock = 1; #1 clock = 0;\n        $display(\"%b %h %h\", conflict, rdata, host_rdata);");
    }
    let _ = writeln!(tb, "        $finish;\n    end\nendmodule");
    tb
}

#[test]
fn the_banked_buffer_serves_every_cycle_within_its_rules_and_flags_the_others() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // First every element, through the host port; then random cycles, whose host reads and
    // writes never meet (the host port has one address).
    let mut cycles: Vec<Cycle> = (0..ELEMENTS)
        .map(|a| Cycle {
            reads: vec![None; RPORTS],
            writes: vec![None; WPORTS],
            host_write: Some((a, rng.gen())),
            ..Cycle::default()
        })
        .collect();
    while cycles.len() < 3000 {
        let mut c = random_cycle(&mut rng);
        if c.host_read.is_some() && c.host_write.is_some() {
            c.host_read = None;
        }
        cycles.push(c);
    }
    let path = std::env::temp_dir().join(format!("satkit_rtl_buffer_{}.v", std::process::id()));
    std::fs::write(&path, testbench(&cycles)).unwrap();
    let out = run_icarus(&path, "tb").unwrap();
    let _ = std::fs::remove_file(&path);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with('0') || l.starts_with('1')).collect();
    assert_eq!(lines.len(), cycles.len(), "{out}");

    // The elements as a multi-port memory holds them; None where a conflicting cycle wrote.
    let mut memory_now: Vec<Option<u16>> = vec![None; ELEMENTS as usize];
    let (mut clean, mut flagged) = (0, 0);
    for (t, (c, line)) in cycles.iter().zip(&lines).enumerate() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let conflict = parts[0] == "1";
        let expected = conflicts(c);
        assert_eq!(conflict, expected, "cycle {t}: conflict");
        let rdata = parts[1];
        let known = |a: u64| memory_now[a as usize];
        if !expected {
            clean += 1;
            for (lane, a) in c.reads.iter().enumerate() {
                let want = match a {
                    None => Some(0xffff),
                    Some(a) => known(*a),
                };
                if let Some(want) = want {
                    let hex = &rdata[rdata.len() - 4 * (lane + 1)..rdata.len() - 4 * lane];
                    assert_eq!(u16::from_str_radix(hex, 16).ok(), Some(want), "cycle {t}: lane {lane} read {a:?}");
                }
            }
            if let Some(want) = c.host_read.and_then(known) {
                assert_eq!(u16::from_str_radix(parts[2], 16).ok(), Some(want), "cycle {t}: host read");
            }
        } else {
            flagged += 1;
        }
        // Writes land after the cycle's reads, a later lane's over an earlier one's, the
        // host's last; what a conflicting cycle writes is undefined.
        for &(a, d) in c.writes.iter().flatten().chain(c.host_write.iter()) {
            memory_now[a as usize] = (!expected).then_some(d);
        }
    }
    assert!(clean > 500 && flagged > 500, "{clean} cycles within the rules, {flagged} beyond them");
}
