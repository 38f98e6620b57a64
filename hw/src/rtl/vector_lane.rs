//! The vector unit's lane datapath: every `vec` op's sequence of FP32 operations, bound to one
//! shared set of function units per lane.
//!
//! A lane runs one op at a time (the op of the running instruction), so an adder that `gelu`
//! needs can serve `softmax` too. Each op is listed as a [`Group`] of [`Operation`]s in the
//! simulator's order; [`LaneDatapath::new`] binds every operation to a unit of its kind, and
//! the lane gets as many units of a kind as the op that needs the most (`gelu_grad`'s 14
//! multipliers and 7 adders, `softmax_xent`'s 2 dividers, one exponential), where one unit per
//! operation would need 23 multipliers, 22 adders, 5 dividers and 2 exponentials. A unit's
//! operands are multiplexed by the op; the results are bit for bit those of separate units.
//!
//! The units lie in one order, and an operation is bound to a unit that comes after the units
//! of the results it reads: no path, whatever the op, leads from a unit's output back to its
//! own input, so the shared datapath has no combinational loop, not even a false one (yosys'
//! `check -assert` refuses those).

use super::vector_math::bits;
use crate::numerics::{GELU_CUBIC, GELU_SCALE};
use std::fmt::Write as _;

/// The kinds of function unit in a lane.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum FunctionKind {
    /// `sat_fp32_add`.
    Add,
    /// `sat_fp32_mul`.
    Mul,
    /// `sat_fp32_div`.
    Div,
    /// `sat_fp32_exp` (one operand).
    Exp,
}

impl FunctionKind {
    /// The Verilog module, its two operand ports (the second `None` for one operand) and its
    /// result port.
    fn ports(self) -> (&'static str, &'static str, Option<&'static str>, &'static str) {
        match self {
            FunctionKind::Add => ("sat_fp32_add", "a", Some("b"), "sum"),
            FunctionKind::Mul => ("sat_fp32_mul", "a", Some("b"), "product"),
            FunctionKind::Div => ("sat_fp32_div", "a", Some("b"), "q"),
            FunctionKind::Exp => ("sat_fp32_exp", "x", None, "y"),
        }
    }

    /// The prefix of its units' names (`fadd0`, `fmul3`, ...).
    fn prefix(self) -> &'static str {
        match self {
            FunctionKind::Add => "fadd",
            FunctionKind::Mul => "fmul",
            FunctionKind::Div => "fdiv",
            FunctionKind::Exp => "fexp",
        }
    }
}

/// One FP32 operation of an op: its result's name and its operands, Verilog expressions over
/// the lane's wires and the earlier operations' results.
struct Operation {
    kind: FunctionKind,
    name: &'static str,
    a: String,
    b: String,
}

/// The operations of the ops that share a condition on `op`, in the order they compute.
struct Group {
    condition: &'static str,
    operations: Vec<Operation>,
}

/// The results used outside the lane datapath (the write value mux and the cross-lane chains).
const RESULTS: &[&str] = &[
    "sum",
    "accumulated",
    "share",
    "gradient_value",
    "y_times",
    "pool_added",
    "average",
    "dy_plus",
    "share_plus",
    "nm_sum_a",
    "nm_sum_b",
    "nm_applied",
    "gx_dx",
    "gelu",
    "gelu_grad",
];

/// The lane's units, in their order, and every operation's unit (an index into it).
pub(super) struct LaneDatapath {
    groups: Vec<Group>,
    units: Vec<FunctionKind>,
    bindings: Vec<Vec<usize>>,
}

/// `-x` of a result or register named `x` (the sign bit flipped).
fn negated(x: &str) -> String {
    format!("{{~{x}[31], {x}[30:0]}}")
}

fn op(kind: FunctionKind, name: &'static str, a: impl Into<String>, b: impl Into<String>) -> Operation {
    Operation { kind, name, a: a.into(), b: b.into() }
}

/// The identifiers of a Verilog expression.
fn identifiers(expression: &str) -> impl Iterator<Item = &str> {
    expression.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|t| !t.is_empty())
}

/// `expression` with every identifier that `rename` maps replaced.
fn renamed(expression: &str, rename: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut token = String::new();
    for c in expression.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            token.push(c);
        } else {
            if !token.is_empty() {
                out.push_str(&rename(&token).unwrap_or_else(|| token.clone()));
                token.clear();
            }
            out.push(c);
        }
    }
    out.pop();
    out
}

/// Every op's operations, the simulator's order of FP32 operations (`satkit_sim::vector`).
fn groups() -> Vec<Group> {
    use FunctionKind::{Add, Div, Exp, Mul};
    let (one, two, half) = ("32'h3f800000", "32'h40000000", "32'h3f000000");
    let (gelu_a, gelu_c, gelu_3a) = (bits(GELU_CUBIC), bits(GELU_SCALE), bits(3.0 * GELU_CUBIC));
    // GELU (tanh form): 0.5 x (1 + tanh(c (x + a x^3))), tanh(t) = 1 - 2 / (exp(2 t) + 1).
    let gelu = || {
        vec![
            op(Mul, "ax", gelu_a.clone(), "a"),
            op(Mul, "axx", "ax", "a"),
            op(Mul, "axxx", "axx", "a"),
            op(Add, "inner", "a", "axxx"),
            op(Mul, "t", gelu_c.clone(), "inner"),
            op(Mul, "two_t", two, "t"),
            op(Exp, "e2t", "two_t", ""),
            op(Add, "e2t_plus", "e2t", one),
            op(Div, "ratio", two, "e2t_plus"),
            op(Add, "tanh", one, negated("ratio")),
            op(Mul, "half_x", half, "a"),
            op(Add, "one_plus", one, "tanh"),
        ]
    };
    let mut gelu_grad = gelu();
    gelu_grad.extend([
        op(Mul, "half_one_plus", half, "one_plus"),
        op(Mul, "tanh2", "tanh", "tanh"),
        op(Add, "one_minus", one, negated("tanh2")),
        op(Mul, "d1", "half_x", "one_minus"),
        op(Mul, "d2", "d1", gelu_c.clone()),
        op(Mul, "a3x", gelu_3a, "a"),
        op(Mul, "a3xx", "a3x", "a"),
        op(Add, "poly", one, "a3xx"),
        op(Mul, "d3", "d2", "poly"),
        op(Add, "slope", "half_one_plus", "d3"),
        // dy times the slope
        op(Mul, "gelu_grad", "b", "slope"),
    ]);
    let mut gelu_forward = gelu();
    gelu_forward.push(op(Mul, "gelu", "half_x", "one_plus"));
    // The largest op first: it lays out the units the others reuse.
    vec![
        Group { condition: "op == OP_GELU_GRAD", operations: gelu_grad },
        Group { condition: "op == OP_GELU", operations: gelu_forward },
        // softmax_xent and softmax: e = exp(x - mx) into the row sum; (e / sum - [class =
        // label]) / rows.
        Group {
            condition: "op == OP_SOFTMAX_XENT || op == OP_SOFTMAX",
            operations: vec![
                op(Add, "shifted", "a", negated("mx")),
                op(Exp, "exponential", "shifted", ""),
                op(Add, "accumulated", "sum_chain[g]", "exponential"),
                op(Div, "share", "exponential", "row_sum"),
                op(Add, "centered", "share", "class_index == label ? 32'hbf800000 : 32'h80000000"),
                op(Div, "gradient_value", "centered", "rows_f"),
            ],
        },
        // softmax_grad: y dy into the dot product; then y (dy - dot).
        Group {
            condition: "op == OP_SOFTMAX_GRAD",
            operations: vec![
                op(Mul, "y_dy", "a", "b"),
                op(Add, "dy_minus_dot", "b", negated("row_sum")),
                op(Mul, "y_times", "a", "dy_minus_dot"),
                op(Add, "accumulated", "sum_chain[g]", "y_dy"),
            ],
        },
        Group { condition: "op == OP_ADD", operations: vec![op(Add, "sum", "a", "b")] },
        // Pooling: the window's sum from +0 (its first element restarts the chain) and its
        // average; the gradients add dy at the maximum, dy / (k k) everywhere, to the element's
        // partial sum `pg_base` (+0 unless windows overlap, see the vector unit).
        Group {
            condition: "op == OP_AVGPOOL",
            operations: vec![
                op(Add, "pool_added", "pl_start ? 32'h0 : pool_sum_chain[g]", "a"),
                op(Div, "average", "pl_valid ? pool_added : pool_sum_chain[g]", "window_f"),
            ],
        },
        Group { condition: "op == OP_MAXPOOL_GRAD", operations: vec![op(Add, "dy_plus", "pg_base", "b")] },
        Group {
            condition: "op == OP_AVGPOOL_GRAD",
            operations: vec![op(Div, "dy_share", "b", "window_f"), op(Add, "share_plus", "pg_base", "dy_share")],
        },
        // Normalizations: the statistics' sums of x (first pass) or (x - mean)^2 (second), and
        // of dy and dy x; (x - mean) rstd; rstd ((dy - sum_dy / n) - xhat (sum_dyxhat / n)), x
        // on b's lanes. The running sums, means and statistics are the lane's inputs `nm_*_in`,
        // `ap_*` and `ga_*_in`: the chain across the lanes and the row's statistics per row,
        // the lane's own column's per column (sequencers.rs).
        Group {
            condition: "op == OP_NORM_STATS",
            operations: vec![
                op(Add, "nm_centered", "a", negated("nm_mean_in")),
                op(Mul, "nm_square", "nm_centered", "nm_centered"),
                op(Add, "nm_sum_a", "nm_a_in", "nm_deviations ? nm_square : a"),
            ],
        },
        Group {
            condition: "op == OP_NORM_GRAD_STATS",
            operations: vec![
                op(Add, "nm_sum_a", "nm_a_in", "a"),
                op(Mul, "nm_xy", "a", "b"),
                op(Add, "nm_sum_b", "nm_b_in", "nm_xy"),
            ],
        },
        Group {
            condition: "op == OP_NORM_APPLY",
            operations: vec![op(Add, "ap_centered", "a", negated("ap_mean")), op(Mul, "nm_applied", "ap_centered", "ap_rstd")],
        },
        Group {
            condition: "op == OP_NORM_GRAD_APPLY",
            operations: vec![
                op(Add, "gx_centered", "b", negated("ga_mean_in")),
                op(Mul, "gx_hat", "gx_centered", "ga_rstd_in"),
                op(Add, "gx_t1", "a", negated("ga_dy_n_in")),
                op(Mul, "gx_t2", "gx_hat", "ga_h_n_in"),
                op(Add, "gx_t3", "gx_t1", negated("gx_t2")),
                op(Mul, "gx_dx", "ga_rstd_in", "gx_t3"),
            ],
        },
    ]
}

impl LaneDatapath {
    /// Binds every op's operations to the lane's units (see the module documentation).
    pub(super) fn new() -> Self {
        let groups = groups();
        let mut units: Vec<FunctionKind> = Vec::new();
        let mut bindings = Vec::new();
        for group in &groups {
            let mut bound: Vec<usize> = Vec::new();
            for operation in &group.operations {
                // After the units of the results it reads (earlier operations of the group).
                let after = identifiers(&operation.a)
                    .chain(identifiers(&operation.b))
                    .filter_map(|id| group.operations.iter().position(|o| o.name == id))
                    .map(|earlier| bound[earlier] + 1)
                    .max()
                    .unwrap_or(0);
                let free = (after..units.len()).find(|&u| units[u] == operation.kind && !bound.contains(&u));
                let unit = free.unwrap_or_else(|| {
                    units.push(operation.kind);
                    units.len() - 1
                });
                bound.push(unit);
            }
            bindings.push(bound);
        }
        LaneDatapath { groups, units, bindings }
    }

    /// The lane's units of `kind`.
    pub(super) fn units(&self, kind: FunctionKind) -> usize {
        self.units.iter().filter(|&&k| k == kind).count()
    }

    /// Unit `u`'s name: its kind's prefix and its index among the units of that kind.
    fn unit_name(&self, u: usize) -> String {
        let kind = self.units[u];
        format!("{}{}", kind.prefix(), self.units[..u].iter().filter(|&&k| k == kind).count())
    }

    /// `expression` of group `g` with its operations' results replaced by their units' outputs.
    fn bound_expression(&self, g: usize, expression: &str) -> String {
        let group = &self.groups[g];
        renamed(expression, |id| {
            group.operations.iter().position(|o| o.name == id).map(|i| format!("{}_y", self.unit_name(self.bindings[g][i])))
        })
    }

    /// A multiplexer over the groups' conditions, distinct values only, the last the default.
    fn multiplexed(choices: Vec<(&str, String)>) -> String {
        let mut distinct: Vec<(Vec<&str>, String)> = Vec::new();
        for (condition, value) in choices {
            let value = if value.contains('?') { format!("({value})") } else { value };
            match distinct.iter_mut().find(|(_, v)| *v == value) {
                Some((conditions, _)) => conditions.push(condition),
                None => distinct.push((vec![condition], value)),
            }
        }
        let (_, default) = distinct.pop().expect("a unit or result is used by at least one op");
        distinct.iter().rev().fold(default, |rest, (conditions, value)| {
            let condition = conditions.iter().map(|c| format!("({c})")).collect::<Vec<_>>().join(" || ");
            format!("{condition} ? {value}\n                : {rest}")
        })
    }

    /// The lane's units and [`RESULTS`] as Verilog inside the lane's generate block (`a`, `b`,
    /// the chains and the registers they read are the lane's).
    pub(super) fn verilog(&self) -> String {
        let mut s = String::new();
        for (u, &kind) in self.units.iter().enumerate() {
            let name = self.unit_name(u);
            let (module, a_port, b_port, y_port) = kind.ports();
            let operand = |pick: fn(&Operation) -> &String| {
                let choices = (0..self.groups.len())
                    .flat_map(|g| {
                        self.bindings[g].iter().enumerate().filter(move |&(_, &unit)| unit == u).map(move |(i, _)| {
                            (self.groups[g].condition, self.bound_expression(g, pick(&self.groups[g].operations[i])))
                        })
                    })
                    .collect();
                Self::multiplexed(choices)
            };
            let _ = writeln!(s, "            wire [31:0] {name}_a = {};", operand(|o| &o.a));
            let mut connections = format!(".{a_port}({name}_a)");
            if let Some(b_port) = b_port {
                let _ = writeln!(s, "            wire [31:0] {name}_b = {};", operand(|o| &o.b));
                let _ = write!(connections, ", .{b_port}({name}_b)");
            }
            let _ = writeln!(
                s,
                "            wire [31:0] {name}_y;\n            {module} {name} ({connections}, .{y_port}({name}_y));"
            );
        }
        for result in RESULTS {
            let choices = (0..self.groups.len())
                .filter_map(|g| {
                    let i = self.groups[g].operations.iter().position(|o| o.name == *result)?;
                    Some((self.groups[g].condition, format!("{}_y", self.unit_name(self.bindings[g][i]))))
                })
                .collect();
            let _ = writeln!(s, "            wire [31:0] {result} = {};", Self::multiplexed(choices));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_op_reads_only_results_computed_before_it_and_units_are_ordered() {
        let datapath = LaneDatapath::new();
        for (g, group) in datapath.groups.iter().enumerate() {
            for (i, operation) in group.operations.iter().enumerate() {
                for id in identifiers(&operation.a).chain(identifiers(&operation.b)) {
                    if let Some(j) = group.operations.iter().position(|o| o.name == id) {
                        assert!(j < i, "{}: {} reads {id}, computed later", group.condition, operation.name);
                        assert!(datapath.bindings[g][j] < datapath.bindings[g][i], "{}: {}", group.condition, operation.name);
                    }
                }
                assert_eq!(datapath.units[datapath.bindings[g][i]], operation.kind);
            }
            let mut units = datapath.bindings[g].clone();
            units.sort_unstable();
            units.dedup();
            assert_eq!(units.len(), group.operations.len(), "{}: two operations on one unit", group.condition);
        }
        for result in RESULTS {
            assert!(datapath.groups.iter().any(|g| g.operations.iter().any(|o| o.name == *result)), "{result}");
        }
    }

    #[test]
    fn the_lane_has_as_many_units_of_a_kind_as_its_greediest_op() {
        let datapath = LaneDatapath::new();
        for kind in [FunctionKind::Add, FunctionKind::Mul, FunctionKind::Div, FunctionKind::Exp] {
            let most = datapath.groups.iter().map(|g| g.operations.iter().filter(|o| o.kind == kind).count()).max();
            assert_eq!(Some(datapath.units(kind)), most, "{kind:?}");
        }
        assert_eq!(
            [FunctionKind::Add, FunctionKind::Mul, FunctionKind::Div, FunctionKind::Exp].map(|k| datapath.units(k)),
            [7, 14, 2, 1]
        );
    }

    #[test]
    fn renaming_touches_whole_names_only() {
        let out = renamed("{~gx_t2[31], gx_t2[30:0]} + gx_t20 + 32'h3f800000", |id| (id == "gx_t2").then(|| "fmul4_y".into()));
        assert_eq!(out, "{~fmul4_y[31], fmul4_y[30:0]} + gx_t20 + 32'h3f800000");
    }
}
