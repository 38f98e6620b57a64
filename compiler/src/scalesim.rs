//! SCALE-Sim v3 compatibility: its config file and topology CSVs as inputs, its
//! `COMPUTE_REPORT.csv` as output, with our simulator doing the work on a plain dense
//! systolic array.
//!
//! Conventions taken from SCALE-Sim v3.0.0 (`scalesim/topology_utils.py`,
//! `scale_config.py`, `compute/systolic_compute_*.py`, `memory/double_buffered_scratchpad_mem.py`):
//! - a GEMM row `name, M, N, K,` is the operand matrices ifmap `M x K`, filter `K x N`;
//! - a conv row `name, H, W, Fh, Fw, C, NumFilter, Stride,` becomes `M = Eh * Ew` with
//!   `Eh = ceil((H - Fh) / S) + 1` (a partial window at the edge counts), `N = NumFilter`,
//!   `K = Fh * Fw * C`; no padding, batch 1;
//! - the first topology line is a header and is skipped; every row ends with a comma;
//! - "Total Cycles" is the 0-based index of the last cycle, i.e. our cycle count minus one;
//!   SCALE-Sim does not count a layer's write-back after its last fold, nor our operands'
//!   first fetches, so our GEMMs' once-per-instruction write-back and fill
//!   (`pe_array::os_writeback` and `os_fill`, `pe_array::ws_drain` and `ArchConfig::ws_fill`) are left out
//!   of that column;
//! - with `InterfaceBandwidth: CALC` memory never stalls, so "Stall Cycles" is 0 and the
//!   layer's time is the array's compute time. That is the mode in which our totals equal
//!   SCALE-Sim's; in `USER` mode SCALE-Sim's prefetch model adds stalls we do not reproduce.
//!
//! Our "Total Cycles (incl. prefetch)" column is **ours**, not SCALE-Sim's: the cycles of the
//! complete tiled program (DMA loads, compute, stores) on our machine with the config's array
//! and our DRAM model; SCALE-Sim's value depends on its own prefetch heuristics.

use crate::gemm::{self, DataflowChoice, GemmLayout, GemmOptions, GemmProblem};
use crate::{Error, Result};
use satkit_hw::arch::BufferConfig;
use satkit_hw::isa::{Buffer, Instruction, Op, Program, WeightFormat};
use satkit_hw::nm::NmRatio;
use satkit_hw::{ArchConfig, Dataflow};
use satkit_sim::{Machine, Mode};
use std::collections::BTreeMap;

/// Whether memory bandwidth is computed (never stalls) or given by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterfaceBandwidth {
    /// SCALE-Sim computes the bandwidth needed: no memory stalls.
    Calc,
    /// User-given bandwidth (SCALE-Sim's stall model is not reproduced).
    User,
}

/// The parts of a SCALE-Sim config file that determine compute cycles.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleSimConfig {
    /// `[general] run_name`: the report folder's name.
    pub run_name: String,
    /// `ArrayHeight`.
    pub array_rows: u32,
    /// `ArrayWidth`.
    pub array_cols: u32,
    /// `Dataflow`.
    pub dataflow: Dataflow,
    /// `IfmapSramSzkB`, `FilterSramSzkB`, `OfmapSramSzkB`.
    pub sram_kib: [u32; 3],
    /// `[run_presets] InterfaceBandwidth`.
    pub bandwidth: InterfaceBandwidth,
}

fn config_error(path: &str, message: String) -> Error {
    Error::Input(format!("{path}: {message}"))
}

impl ScaleSimConfig {
    /// Parses the INI text of a SCALE-Sim config (`path` names it in errors). Section names
    /// are case-sensitive, keys are not; `:` or `=` separate them; lines starting with `#` or
    /// `;` are comments.
    pub fn parse(text: &str, path: &str) -> Result<Self> {
        let mut sections: BTreeMap<String, BTreeMap<String, (String, usize)>> = BTreeMap::new();
        let mut current: Option<String> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = Some(name.trim().to_string());
                sections.entry(name.trim().to_string()).or_default();
                continue;
            }
            let sep = line
                .find([':', '='])
                .ok_or_else(|| config_error(path, format!("line {}: expected `key: value`, found `{line}`", n + 1)))?;
            let section =
                current.clone().ok_or_else(|| config_error(path, format!("line {}: key outside any [section]", n + 1)))?;
            let key = line[..sep].trim().to_ascii_lowercase();
            let value = line[sep + 1..].trim().to_string();
            if sections.entry(section.clone()).or_default().insert(key.clone(), (value, n + 1)).is_some() {
                return Err(config_error(path, format!("line {}: key `{key}` appears twice in [{section}]", n + 1)));
            }
        }
        let get = |section: &str, key: &str| -> Result<(String, usize)> {
            sections
                .get(section)
                .and_then(|s| s.get(&key.to_ascii_lowercase()))
                .cloned()
                .ok_or_else(|| config_error(path, format!("missing `{key}` in section [{section}]")))
        };
        let number = |section: &str, key: &str| -> Result<u32> {
            let (v, line) = get(section, key)?;
            v.parse::<u32>()
                .ok()
                .filter(|&x| x > 0)
                .ok_or_else(|| config_error(path, format!("line {line}: {key} = `{v}` is not a positive whole number")))
        };
        let (dataflow_text, line) = get("architecture_presets", "Dataflow")?;
        let dataflow = match dataflow_text.as_str() {
            "os" => Dataflow::Os,
            "ws" => Dataflow::Ws,
            "is" => Dataflow::Is,
            other => {
                return Err(config_error(
                    path,
                    format!("line {line}: Dataflow = `{other}` is not one of os, ws, is (lower case, as SCALE-Sim reads it)"),
                ))
            }
        };
        let bandwidth = match get("run_presets", "InterfaceBandwidth") {
            Ok((v, _)) if v == "CALC" => InterfaceBandwidth::Calc,
            Ok((v, _)) if v == "USER" => InterfaceBandwidth::User,
            Ok((v, line)) => {
                return Err(config_error(path, format!("line {line}: InterfaceBandwidth = `{v}` is not CALC or USER")))
            }
            Err(e) => return Err(e),
        };
        Ok(ScaleSimConfig {
            run_name: get("general", "run_name")?.0,
            array_rows: number("architecture_presets", "ArrayHeight")?,
            array_cols: number("architecture_presets", "ArrayWidth")?,
            dataflow,
            sram_kib: [
                number("architecture_presets", "IfmapSramSzkB")?,
                number("architecture_presets", "FilterSramSzkB")?,
                number("architecture_presets", "OfmapSramSzkB")?,
            ],
            bandwidth,
        })
    }

    /// Our plain systolic machine with this config's array and dataflow.
    pub fn machine(&self) -> Result<ArchConfig> {
        let base = ArchConfig::systolic();
        let mut arch = ArchConfig {
            name: format!("scalesim-{}x{}", self.array_rows, self.array_cols),
            array: satkit_hw::arch::ArrayConfig { rows: self.array_rows, cols: self.array_cols, ..base.array.clone() },
            ..base
        };
        // Our buffers hold FP16 operands and FP32 sums; SCALE-Sim counts 1-byte words. Keep at
        // least the config's capacity in elements.
        let [i, f, o] = self.sram_kib;
        arch.buffers =
            BufferConfig { act_kib: (2 * i).max(64), wgt_kib: (2 * f).max(64), acc_kib: (4 * o).max(64), ..arch.buffers };
        arch.validate().map_err(|e| Error::Input(format!("the config's machine is invalid: {e}")))?;
        Ok(arch)
    }
}

/// Which topology form a CSV uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyKind {
    /// `Layer, M, N, K,`.
    Gemm,
    /// `Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,`.
    Conv,
}

/// One layer of a topology, reduced to its GEMM.
#[derive(Debug, Clone, PartialEq)]
pub struct TopologyLayer {
    /// Layer name.
    pub name: String,
    /// Line in the CSV.
    pub line: usize,
    /// Ifmap rows (output pixels), M.
    pub m: u64,
    /// Filters, N.
    pub n: u64,
    /// Reduction, K.
    pub k: u64,
    /// Optional N:M sparsity column.
    pub sparsity: Option<NmRatio>,
}

/// Parses a topology CSV (`path` names it in errors).
pub fn parse_topology(text: &str, kind: TopologyKind, path: &str) -> Result<Vec<TopologyLayer>> {
    let mut layers = Vec::new();
    for (n, raw) in text.lines().enumerate().skip(1) {
        let line = n + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let mut fields: Vec<&str> = raw.split(',').map(str::trim).collect();
        if fields.last() == Some(&"") {
            fields.pop();
        }
        let numbers = match kind {
            TopologyKind::Gemm => 3,
            TopologyKind::Conv => 7,
        };
        if fields.len() != numbers + 1 && fields.len() != numbers + 2 {
            return Err(Error::Input(format!(
                "{path}:{line}: expected a name, {numbers} numbers and an optional N:M column, found {} fields",
                fields.len()
            )));
        }
        let int =
            |i: usize, what: &str| -> Result<u64> {
                fields[i].parse::<u64>().ok().filter(|&v| v > 0).ok_or_else(|| {
                    Error::Input(format!("{path}:{line}: {what} = `{}` is not a positive whole number", fields[i]))
                })
            };
        let (m, nn, k) = match kind {
            TopologyKind::Gemm => (int(1, "M")?, int(2, "N")?, int(3, "K")?),
            TopologyKind::Conv => {
                let (h, w, fh, fw, c, filters, s) = (
                    int(1, "IFMAP Height")?,
                    int(2, "IFMAP Width")?,
                    int(3, "Filter Height")?,
                    int(4, "Filter Width")?,
                    int(5, "Channels")?,
                    int(6, "Num Filter")?,
                    int(7, "Strides")?,
                );
                if fh > h || fw > w {
                    return Err(Error::Input(format!("{path}:{line}: filter {fh}x{fw} is larger than the ifmap {h}x{w}")));
                }
                let (eh, ew) = ((h - fh).div_ceil(s) + 1, (w - fw).div_ceil(s) + 1);
                (eh * ew, filters, fh * fw * c)
            }
        };
        let sparsity = match fields.get(numbers + 1) {
            None => None,
            Some(t) => Some(t.parse::<NmRatio>().map_err(|e| Error::Input(format!("{path}:{line}: {e}")))?),
        };
        layers.push(TopologyLayer { name: fields[0].to_string(), line, m, n: nn, k, sparsity });
    }
    if layers.is_empty() {
        return Err(Error::Input(format!("{path}: no layers after the header line")));
    }
    Ok(layers)
}

/// One row of `COMPUTE_REPORT.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputeRow {
    /// Layer index.
    pub layer_id: usize,
    /// Our full-program cycles, DMA included (see the module documentation).
    pub total_cycles_with_memory: u64,
    /// SCALE-Sim's "Total Cycles": compute cycles minus one.
    pub total_cycles: u64,
    /// Memory stall cycles (0 in CALC mode).
    pub stall_cycles: u64,
    /// `M N K * 100 / (Total * R * C)`.
    pub overall_util_pct: f64,
    /// Average fraction of PEs mapped per fold, %.
    pub mapping_efficiency_pct: f64,
    /// Average fraction of PE-cycles computing per fold, %.
    pub compute_util_pct: f64,
}

/// The `(Sr, Sc, T)` operand dimensions of a dataflow: spread over rows, over columns, streamed.
fn operand_dims(d: Dataflow, m: u64, n: u64, k: u64) -> (u64, u64, u64) {
    match d {
        Dataflow::Os => (m, n, k),
        Dataflow::Ws => (k, n, m),
        Dataflow::Is => (k, m, n),
    }
}

/// The compute-only program: one GEMM per chunk, chunks cut at multiples of the array so the
/// fold count (hence the cycles) equals the unchunked GEMM's, operands resident (CALC).
fn compute_program(arch: &ArchConfig, d: Dataflow, layer: &TopologyLayer) -> Result<Program> {
    let (r, c) = (u64::from(arch.array.rows), u64::from(arch.array.cols));
    let (sr, sc, t) = operand_dims(d, layer.m, layer.n, layer.k);
    const LIMIT: u64 = satkit_hw::isa::EXTENT_MAX;
    if t > LIMIT {
        return Err(Error::Input(format!("layer {}: its streamed dimension {t} exceeds {LIMIT}", layer.name)));
    }
    // Operand footprints per chunk, as (Sr-chunk, Sc-chunk) -> elements of act, wgt, acc.
    let fits = |cr: u64, cc: u64| {
        let (m, n, k) = match d {
            Dataflow::Os => (cr, cc, t),
            Dataflow::Ws => (t, cc, cr),
            Dataflow::Is => (cc, t, cr),
        };
        m * k <= arch.buffer_elements(Buffer::Act)
            && n * k <= arch.buffer_elements(Buffer::Wgt)
            && m * n <= arch.buffer_elements(Buffer::Acc)
            && m.max(n).max(k) <= LIMIT
    };
    let (mut cr, mut cc) = (sr.div_ceil(r) * r, sc.div_ceil(c) * c);
    while !fits(cr.min(sr), cc.min(sc)) {
        if cr > r && (cr >= cc || cc <= c) {
            cr = (cr / r).div_ceil(2) * r;
        } else if cc > c {
            cc = (cc / c).div_ceil(2) * c;
        } else {
            return Err(Error::Input(format!("layer {}: one array fold does not fit the machine's buffers", layer.name)));
        }
    }
    let mut insns = Vec::new();
    for r0 in (0..sr).step_by(cr as usize) {
        for c0 in (0..sc).step_by(cc as usize) {
            let (er, ec) = ((sr - r0).min(cr), (sc - c0).min(cc));
            let (rows, cols, depth) = match d {
                Dataflow::Os => (er, ec, t),
                Dataflow::Ws => (t, ec, er),
                Dataflow::Is => (ec, t, er),
            };
            insns.push(Instruction::new(Op::Gemm {
                dataflow: d,
                weights: WeightFormat::Dense,
                accumulate: false,
                interleave: 1,
                rows: rows as u32,
                cols: cols as u32,
                depth: depth as u32,
                input: 0,
                weight: 0,
                output: 0,
                input_t: false,
                weight_t: false,
            }));
        }
    }
    Ok(Program { insns })
}

/// Mapping efficiency and compute utilization, averaged per fold in SCALE-Sim's order of
/// operations (so the printed digits agree).
fn fold_averages(r: u64, c: u64, d: Dataflow, m: u64, n: u64, k: u64) -> (f64, f64) {
    let (sr, sc, t) = operand_dims(d, m, n, k);
    let used_cycles = match d {
        Dataflow::Os => r + c + t - 2,
        Dataflow::Ws | Dataflow::Is => 2 * r + 2 * c + t - 3,
    };
    let (fr, fc) = (sr.div_ceil(r), sc.div_ceil(c));
    let (mut map, mut cu) = (0f64, 0f64);
    for col_fold in 0..fc {
        for row_fold in 0..fr {
            let used = (sr - row_fold * r).min(r) * (sc - col_fold * c).min(c);
            map += used as f64 / (r * c) as f64;
            cu += (used * t) as f64 / (r * c * used_cycles) as f64;
        }
    }
    let folds = (fr * fc) as f64;
    (map / folds * 100.0, cu / folds * 100.0)
}

/// Runs every layer on our simulator and returns the report rows.
pub fn run(config: &ScaleSimConfig, layers: &[TopologyLayer], mut progress: impl FnMut(usize)) -> Result<Vec<ComputeRow>> {
    let arch = config.machine()?;
    // CALC mode: operands are resident, so the compute-only program runs on the same array
    // with the largest buffers a description allows.
    let max = BufferConfig { act_kib: 65536, wgt_kib: 65536, acc_kib: 65536, master_kib: 64, ..arch.buffers.clone() };
    let resident = ArchConfig { buffers: max, ..arch.clone() };
    let d = config.dataflow;
    let (r, c) = (u64::from(config.array_rows), u64::from(config.array_cols));
    let mut rows = Vec::new();
    for (id, layer) in layers.iter().enumerate() {
        if let Some(nm) = layer.sparsity {
            return Err(Error::Input(format!(
                "layer {} (line {}): N:M {nm} asks for sparsity, which the plain systolic array of `satkit scalesim` does not have; run it with `satkit gemm --arch vcu1525 --sparsity {nm}`",
                layer.name, layer.line
            )));
        }
        let program = compute_program(&resident, d, layer)?;
        let compute = Machine::new(&resident, Mode::TimingOnly).run(&program)?;
        // SCALE-Sim counts no write-back after a layer's last fold, nor an OS input fill; ours
        // are per GEMM.
        let writeback = match d {
            Dataflow::Os => {
                let m = resident.reduction_per_pe_step(None);
                let fills: u64 = program
                    .insns
                    .iter()
                    .map(|insn| match insn.op {
                        Op::Gemm { rows, cols, .. } => resident.os_fill(rows.into(), cols.into(), 1, m, false, false),
                        _ => 0,
                    })
                    .sum();
                satkit_sim::pe_array::os_writeback(&resident) * program.insns.len() as u64 + fills
            }
            Dataflow::Ws => {
                let t = operand_dims(d, layer.m, layer.n, layer.k).2;
                let m = resident.reduction_per_pe_step(None);
                let stream = resident.ws_stream(t, false, false, m);
                (satkit_sim::pe_array::ws_drain(&resident, t, stream) + resident.ws_fill(false, false, m))
                    * program.insns.len() as u64
            }
            Dataflow::Is => 0,
        };
        let total_cycles = compute.compute_cycles - writeback - 1;
        let problem = GemmProblem { m: layer.m, n: layer.n, k: layer.k, weights: WeightFormat::Dense };
        let options = GemmOptions { dataflow: DataflowChoice::Fixed(d), interleave: false, ..GemmOptions::default() };
        let kernel = gemm::plan(&arch, &problem, &options, GemmLayout::packed(&arch, &problem, 0))?;
        let with_memory = Machine::new(&arch, Mode::TimingOnly).run(&kernel.program)?;
        let (mapping, util) = fold_averages(r, c, d, layer.m, layer.n, layer.k);
        rows.push(ComputeRow {
            layer_id: id,
            total_cycles_with_memory: with_memory.total_cycles,
            total_cycles,
            stall_cycles: 0,
            overall_util_pct: (layer.m * layer.n * layer.k * 100) as f64 / (total_cycles * r * c) as f64,
            mapping_efficiency_pct: mapping,
            compute_util_pct: util,
        });
        progress(id + 1);
    }
    Ok(rows)
}

/// Formats a float as Python's `repr` does (shortest round-trip digits; scientific notation
/// below 1e-4 and from 1e16; always a decimal point or exponent).
pub fn python_float(x: f64) -> String {
    if x == 0.0 {
        return "0.0".into();
    }
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').expect("LowerExp always has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    if (-4..16).contains(&exp) {
        let negative = mantissa.starts_with('-');
        let digits: String = mantissa.chars().filter(|ch| ch.is_ascii_digit()).collect();
        let sign = if negative { "-" } else { "" };
        let body = if exp >= 0 {
            let point = exp as usize + 1;
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        };
        format!("{sign}{body}")
    } else {
        format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// `COMPUTE_REPORT.csv` text in SCALE-Sim's format (`", "` separators, trailing comma).
pub fn compute_report_csv(rows: &[ComputeRow]) -> String {
    let mut out = String::from("LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, Overall Util %, Mapping Efficiency %, Compute Util %,\n");
    for r in rows {
        out.push_str(&format!(
            "{}, {}, {}, {}, {}, {}, {},\n",
            r.layer_id,
            r.total_cycles_with_memory,
            r.total_cycles,
            r.stall_cycles,
            python_float(r.overall_util_pct),
            python_float(r.mapping_efficiency_pct),
            python_float(r.compute_util_pct)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        assert_eq!(python_float(100.0), "100.0");
        assert_eq!(python_float(73.1461225947587), "73.1461225947587");
        assert_eq!(python_float(2.402958907480315e-05), "2.402958907480315e-05");
        assert_eq!(python_float(0.0001), "0.0001");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(0.5), "0.5");
    }

    #[test]
    fn conv_rows_reduce_to_gemms() {
        let layers =
            parse_topology("h\nc1, 12, 12, 3, 3, 8, 8, 2,\n\nfc,1,1,1,1,64,10,1\n", TopologyKind::Conv, "t.csv").unwrap();
        // Eh = ceil((12-3)/2)+1 = 6: SCALE-Sim counts the partial edge window.
        assert_eq!((layers[0].m, layers[0].n, layers[0].k), (36, 8, 72));
        assert_eq!((layers[1].m, layers[1].n, layers[1].k, layers[1].line), (1, 10, 64, 4));
        let e = parse_topology("h\nx, 1, 2,\n", TopologyKind::Gemm, "t.csv").unwrap_err().to_string();
        assert!(e.contains("t.csv:2"), "{e}");
    }
}
