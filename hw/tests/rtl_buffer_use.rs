//! The controller's buffer-use decoders (`sat_buffer_use_<unit>`, from
//! `satkit_hw::rtl::controller::buffer_use_module`) against `Op::buffer_use`, in Icarus Verilog,
//! for buffers of one, two and four partitions: every transfer of every buffer, every GEMM
//! dataflow, weight format and accumulate flag, prunes and updates with and without masks, and
//! every vector op with every choice of its three buffers, at random addresses and sizes whose
//! ranges start, end and straddle anywhere in the buffers; and the Icarus runner itself.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use satkit_hw::isa::{Buffer, Instruction, Op, PruneOrder, VecOp, WeightFormat};
use satkit_hw::operands::{BufferUse, BUFFERS};
use satkit_hw::rtl::controller::{buffer_use_module, buffer_use_module_name, slots};
use satkit_hw::{ArchConfig, Dataflow};
use std::fmt::Write as _;

fn instructions(rng: &mut ChaCha8Rng) -> Vec<Op> {
    // Addresses anywhere in tiny's smallest buffer (16384 elements), sizes up to a few thousand.
    let mut at = || rng.gen_range(0..16384u32);
    let mut ops = Vec::new();
    for &buf in Buffer::ALL {
        for (rows, cols, sram_row_stride) in [(2, 3, 3), (40, 100, 130), (0, 5, 5), (1, 3000, 1)] {
            let (sram, dram, dram_row_stride, dram_col_stride) = (at(), 64, cols, 1);
            ops.push(Op::Load { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride });
            let sram = at();
            ops.push(Op::Store { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride });
        }
    }
    for dataflow in Dataflow::ALL {
        for weights in
            [WeightFormat::Dense, WeightFormat::Sparse("2:8".parse().unwrap()), WeightFormat::Sparse("1:4".parse().unwrap())]
        {
            for accumulate in [false, true] {
                ops.push(Op::Gemm {
                    dataflow,
                    weights,
                    accumulate,
                    interleave: 1,
                    rows: 40,
                    cols: 24,
                    depth: 64,
                    input: at(),
                    weight: at(),
                    output: at(),
                    input_t: false,
                    weight_t: false,
                });
            }
        }
    }
    for write_mask in [false, true] {
        for nm in ["2:4", "1:8"] {
            let nm = WeightFormat::Sparse(nm.parse().unwrap());
            ops.push(Op::Prune { order: PruneOrder::Bp, nm, rows: 64, cols: 40, src: at(), dst: at(), write_mask, mask: at() });
        }
    }
    for use_mask in [false, true] {
        for _ in 0..8 {
            let (weight, momentum, grad, mask, hyper) = (at(), at(), at(), at(), at());
            ops.push(Op::Update { count: 2000, weight, momentum, grad, use_mask, mask, hyper });
        }
    }
    for &op in VecOp::ALL {
        for &dst_buf in Buffer::ALL {
            for &a_buf in Buffer::ALL {
                for &b_buf in Buffer::ALL {
                    let [p0, p1, p2, p3] = match op {
                        VecOp::MaxPool | VecOp::AvgPool | VecOp::MaxPoolGrad | VecOp::AvgPoolGrad => [30, 20, 3, 2],
                        VecOp::NormStats | VecOp::NormApply | VecOp::NormGradStats | VecOp::NormGradApply => {
                            [30, (a_buf as u32) & 1, 0, 0]
                        }
                        _ => [30, 0, 0, 0],
                    };
                    let (dst, a, b) = (at(), at(), at());
                    ops.push(Op::Vec { op, count: 40, dst_buf, dst, a_buf, a, b_buf, b, p0, p1, p2, p3 });
                }
            }
        }
    }
    ops
}

/// The decoders' outputs for `ops` on `arch`, each op through its unit's decoder.
fn decoded(arch: &ArchConfig, ops: &[Op]) -> Vec<BufferUse> {
    let dir = std::env::temp_dir().join(format!("satkit_buffer_use_{}_{}", std::process::id(), arch.buffers.partitions));
    std::fs::create_dir_all(&dir).unwrap();
    let mut memory = String::new();
    for op in ops {
        let word = Instruction::new(*op).encode().unwrap();
        let unit = op.unit().index();
        let _ = writeln!(memory, "{unit:02x}{:016x}{:016x}{:016x}{:016x}", word.0[3], word.0[2], word.0[1], word.0[0]);
    }
    std::fs::write(dir.join("words.hex"), memory).unwrap();
    let slots = slots(arch);
    let decoders: String = satkit_hw::isa::Unit::ALL
        .iter()
        .map(|&u| {
            format!(
                "    {name} d{i} (.word(word), .reads(reads[{i}]), .writes(writes[{i}]));\n",
                name = buffer_use_module_name(u),
                i = u.index()
            )
        })
        .collect();
    let testbench = format!(
        r#"
module buffer_use_tb;
    reg [263:0] words [0:{last}];
    reg [255:0] word;
    reg [7:0] unit;
    wire [{slots}*4-1:0] reads [0:5];
    wire [{slots}-1:0] writes [0:5];
{decoders}    integer i;
    initial begin
        $readmemh("{dir}/words.hex", words);
        for (i = 0; i <= {last}; i = i + 1) begin
            {{unit, word}} = words[i];
            #1 $display("%h %h", reads[unit], writes[unit]);
        end
        $finish;
    end
endmodule
"#,
        last = ops.len() - 1,
        dir = dir.display()
    );
    let source = dir.join("buffer_use.v");
    std::fs::write(&source, format!("{}{testbench}", buffer_use_module(arch).unwrap())).unwrap();
    let printed = satkit_hw::rtl::run_icarus(&source, "buffer_use_tb").unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let parts = arch.buffers.partitions as usize;
    let hex_bit = |text: &str, bit: usize| {
        let digit = text.len() - 1 - bit / 4;
        (u8::from_str_radix(&text[digit..digit + 1], 16).expect("hex") >> (bit % 4)) & 1
    };
    printed
        .lines()
        .filter(|l| l.split_whitespace().count() == 2)
        .map(|l| {
            let mut fields = l.split_whitespace();
            let (reads, writes) = (fields.next().unwrap(), fields.next().unwrap());
            let mut u = BufferUse::default();
            for b in 0..BUFFERS {
                for p in 0..parts {
                    let slot = b * parts + p;
                    u.reads[b][p] = (0..4).map(|k| hex_bit(reads, 4 * slot + k) << k).sum();
                    u.writes[b][p] = hex_bit(writes, slot);
                }
            }
            u
        })
        .collect()
}

#[test]
fn the_decoders_give_every_instructions_buffer_use() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for partitions in [1, 2, 4] {
        let mut arch = ArchConfig::tiny();
        arch.buffers.partitions = partitions;
        arch.validate().unwrap();
        let ops = instructions(&mut rng);
        let got = decoded(&arch, &ops);
        assert_eq!(got.len(), ops.len(), "one line per instruction");
        let mut straddling = 0;
        for (op, got) in ops.iter().zip(&got) {
            let want = op.buffer_use(&arch).unwrap();
            assert_eq!(*got, want, "{partitions} partitions: {}", Instruction::new(*op));
            straddling += usize::from(want.reads.iter().chain(&want.writes).any(|b| b.iter().filter(|&&x| x > 0).count() > 1));
        }
        if partitions > 1 {
            assert!(straddling > 50, "{partitions} partitions: only {straddling} instructions use two partitions of a buffer");
        }
    }
}

/// The Icarus runner quotes iverilog's complaint about a testbench that does not compile, and
/// returns what a good one prints.
#[test]
fn icarus_runs_a_testbench_and_reports_one_that_does_not_compile() {
    let dir = std::env::temp_dir().join(format!("satkit_icarus_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.v");
    std::fs::write(&good, "module tb; initial begin $display(\"%0d\", 6 * 7); $finish; end endmodule\n").unwrap();
    assert_eq!(satkit_hw::rtl::run_icarus(&good, "tb").unwrap().trim(), "42");
    let bad = dir.join("bad.v");
    std::fs::write(&bad, "module tb; initial begin $display(undeclared); end endmodule\n").unwrap();
    let error = satkit_hw::rtl::run_icarus(&bad, "tb").unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(error.contains("bad.v") && error.contains("iverilog") && error.contains("undeclared"), "{error}");
}
