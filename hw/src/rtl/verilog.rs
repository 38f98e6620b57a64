//! Post-processing of rust-hdl's Verilog: one module per distinct block, readable names.
//!
//! rust-hdl 0.46 writes one module per *instance*, named by its path (`top$pes$5$adders$1`),
//! so a 32x32 array would repeat the PE 1024 times. [`deduplicate`] merges modules whose text
//! is identical once their children are merged (deepest paths first), and names each survivor
//! after the field that holds it (`sat_pe`, `sat_fp32_add`, `sat_dff_w32`, ...; variants of
//! one block that differ, such as skew lines of different depths, get `_1`, `_2`, ...). The
//! module bodies are not changed, only module names and instance kinds.

use super::{PortDirection, RtlDesign, RtlModule, RtlPort};
use crate::Error;
use std::collections::HashMap;

/// One module of rust-hdl's output.
struct ParsedModule {
    name: String,
    lines: Vec<String>,
}

fn parse_modules(text: &str) -> Result<Vec<ParsedModule>, Error> {
    let mut modules = Vec::new();
    let mut current: Option<ParsedModule> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("module ") {
            if let Some(open) = &current {
                return Err(Error::RtlVerilog { message: format!("module `{}` has no endmodule", open.name) });
            }
            let name = rest.split('(').next().unwrap_or_default().trim().to_string();
            current = Some(ParsedModule { name, lines: vec![line.to_string()] });
        } else if let Some(module) = current.as_mut() {
            module.lines.push(line.to_string());
            if trimmed.starts_with("endmodule") {
                modules.extend(current.take());
            }
        }
    }
    if let Some(open) = current {
        return Err(Error::RtlVerilog { message: format!("module `{}` has no endmodule", open.name) });
    }
    Ok(modules)
}

/// Readable module name for the block held in field `field` (the last non-numeric path
/// segment), or for a register of `width` bits.
fn base_name(field: &str, dff_width: Option<usize>) -> String {
    if let Some(width) = dff_width {
        return format!("sat_dff_w{width}");
    }
    match field {
        "pes" => "sat_pe".into(),
        "muls" => "sat_fp16_mul".into(),
        "adders" => "sat_fp32_add".into(),
        skew if skew.ends_with("_skew") => format!("sat_skew_{}", skew.trim_end_matches("_skew")),
        other => format!("sat_{other}"),
    }
}

/// Width of a rust-hdl `DFF` module (its `d` input), or `None` if `lines` is not a DFF.
fn dff_width(lines: &[String]) -> Option<usize> {
    if !lines.iter().any(|l| l.trim() == "q <= d;") {
        return None;
    }
    lines.iter().find_map(|l| {
        let decl = parse_port_decl(l)?;
        (decl.name == "d").then_some(decl.width)
    })
}

/// Parses a port declaration line (`input wire  [31:0] a;`, `output reg  q;`).
fn parse_port_decl(line: &str) -> Option<RtlPort> {
    let mut tokens = line.split_whitespace();
    let direction = match tokens.next()? {
        "input" => PortDirection::Input,
        "output" => PortDirection::Output,
        _ => return None,
    };
    let mut width = 1;
    for token in tokens {
        if let Some(range) = token.strip_prefix('[') {
            let high: usize = range.split(':').next()?.parse().ok()?;
            width = high + 1;
        } else if let Some(name) = token.strip_suffix(';') {
            return Some(RtlPort { name: name.to_string(), direction, width });
        }
    }
    None
}

/// Merges identical modules of rust-hdl's output `text` and names them (see the module
/// documentation); rust-hdl's top module `top` becomes `top_name`.
pub fn deduplicate(text: &str, top_name: &str) -> Result<RtlDesign, Error> {
    let mut modules = parse_modules(text)?;
    if !modules.iter().any(|m| m.name == "top") {
        return Err(Error::RtlVerilog { message: "no module `top`".into() });
    }
    // Children have longer paths than their parents: merge deepest first.
    modules.sort_by_key(|m| std::cmp::Reverse(m.name.matches('$').count()));
    let mut canonical: HashMap<String, String> = HashMap::new();
    let mut by_body: HashMap<String, String> = HashMap::new();
    let mut variants: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut instances: HashMap<String, usize> = HashMap::new();
    let mut flatten: HashMap<String, bool> = HashMap::new();
    for module in modules {
        let old = module.name.clone();
        let mut lines = module.lines;
        for line in lines.iter_mut().skip(1) {
            let trimmed = line.trim_start();
            let Some((kind, rest)) = trimmed.split_once(' ') else { continue };
            if rest.ends_with('(') {
                if let Some(new_kind) = canonical.get(kind) {
                    let indent = &line[..line.len() - trimmed.len()];
                    *line = format!("{indent}{new_kind} {rest}");
                }
            }
        }
        let body = lines[1..lines.len() - 1].join("\n");
        let key = format!("{}\n{}", lines[0].replacen(&old, "", 1), body);
        let new_name = match by_body.get(&key) {
            Some(existing) => existing.clone(),
            None => {
                let name = if old == "top" {
                    top_name.to_string()
                } else {
                    let field = old.rsplit('$').find(|s| s.parse::<usize>().is_err()).unwrap_or("block");
                    let base = base_name(field, dff_width(&lines));
                    let seen = variants.entry(base.clone()).or_insert(0);
                    *seen += 1;
                    if *seen == 1 {
                        base
                    } else {
                        format!("{base}_{}", *seen - 1)
                    }
                };
                let field = old.rsplit('$').find(|s| s.parse::<usize>().is_err()).unwrap_or("block");
                flatten.insert(name.clone(), old != "top" && (dff_width(&lines).is_some() || field.ends_with("_skew")));
                by_body.insert(key, name.clone());
                let last = lines.len() - 1;
                lines[0] = lines[0].replacen(&old, &name, 1);
                lines[last] = format!("endmodule // {name}");
                out.push((name.clone(), lines));
                name
            }
        };
        *instances.entry(new_name.clone()).or_insert(0) += 1;
        canonical.insert(old, new_name);
    }
    let top_lines = &out.last().expect("the top module is last").1;
    let ports: Vec<RtlPort> = top_lines.iter().filter_map(|l| parse_port_decl(l)).collect();
    let mut verilog = String::new();
    for (_, lines) in &out {
        verilog.push_str(&lines.join("\n"));
        verilog.push_str("\n\n");
    }
    let modules = out
        .iter()
        .map(|(name, _)| RtlModule { name: name.clone(), instances: instances[name], flatten: flatten[name] })
        .collect();
    Ok(RtlDesign { top: top_name.to_string(), verilog, modules, ports })
}

/// Joins designs generated separately into one Verilog text: a module that two of them define
/// alike (the same register module, say) is kept once; one name with two different bodies is
/// an error.
pub fn merge(designs: &[&RtlDesign]) -> Result<(String, Vec<RtlModule>), Error> {
    let mut text = String::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut modules: Vec<RtlModule> = Vec::new();
    for design in designs {
        for module in parse_modules(&design.verilog)? {
            let body = module.lines.join("\n");
            match seen.get(&module.name) {
                Some(existing) if *existing == body => continue,
                Some(_) => {
                    return Err(Error::RtlVerilog {
                        message: format!("two generated blocks define module `{}` differently", module.name),
                    })
                }
                None => {
                    text.push_str(&body);
                    text.push('\n');
                    seen.insert(module.name.clone(), body);
                }
            }
        }
        for m in &design.modules {
            match modules.iter_mut().find(|x| x.name == m.name) {
                Some(existing) => existing.instances += m.instances,
                None => modules.push(m.clone()),
            }
        }
    }
    Ok((text, modules))
}
