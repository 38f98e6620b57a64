//! The controller's buffer-use decoder (`sat_buffer_use`, from
//! `satkit_hw::rtl::controller::buffer_use_module`) against `Op::buffer_use` with one partition
//! per buffer, in Icarus Verilog:
//! every transfer of every buffer, every GEMM dataflow, weight format and accumulate flag, both
//! prunes and updates with and without masks, and every vector op with every choice of its
//! three buffers.

use satkit_hw::isa::{Buffer, Instruction, Op, PruneOrder, VecOp, WeightFormat};
use satkit_hw::operands::BufferUse;
use satkit_hw::rtl::controller::{buffer_use_module, BUFFER_USE_MODULE};
use satkit_hw::ArchConfig;
use satkit_hw::Dataflow;
use std::fmt::Write as _;
use std::process::Command;

fn instructions() -> Vec<Op> {
    let mut ops = Vec::new();
    for &buf in Buffer::ALL {
        let (sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride) = (5, 64, 2, 3, 3, 1, 3);
        ops.push(Op::Load { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride });
        ops.push(Op::Store { buf, sram, dram, rows, cols, dram_row_stride, dram_col_stride, sram_row_stride });
    }
    for dataflow in Dataflow::ALL {
        for weights in [WeightFormat::Dense, WeightFormat::Sparse("2:8".parse().unwrap())] {
            for accumulate in [false, true] {
                ops.push(Op::Gemm {
                    dataflow,
                    weights,
                    accumulate,
                    interleave: 1,
                    rows: 4,
                    cols: 4,
                    depth: 8,
                    input: 0,
                    weight: 0,
                    output: 0,
                    input_t: false,
                    weight_t: false,
                });
            }
        }
    }
    for write_mask in [false, true] {
        let nm = WeightFormat::Sparse("2:4".parse().unwrap());
        ops.push(Op::Prune { order: PruneOrder::Bp, nm, rows: 4, cols: 8, src: 0, dst: 0, write_mask, mask: 0 });
    }
    for use_mask in [false, true] {
        ops.push(Op::Update { count: 8, weight: 0, momentum: 8, grad: 0, use_mask, mask: 0, hyper: 16 });
    }
    for &op in VecOp::ALL {
        for &dst_buf in Buffer::ALL {
            for &a_buf in Buffer::ALL {
                for &b_buf in Buffer::ALL {
                    let [p0, p1, p2, p3] = match op {
                        VecOp::MaxPool | VecOp::AvgPool | VecOp::MaxPoolGrad | VecOp::AvgPoolGrad => [4, 4, 2, 2],
                        _ => [3, 0, 0, 0],
                    };
                    ops.push(Op::Vec { op, count: 4, dst_buf, dst: 0, a_buf, a: 0, b_buf, b: 0, p0, p1, p2, p3 });
                }
            }
        }
    }
    ops
}

#[test]
fn the_decoder_gives_every_instructions_buffer_use() {
    let dir = std::env::temp_dir().join(format!("satkit_buffer_use_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ops = instructions();
    let mut memory = String::new();
    for op in &ops {
        let word = Instruction::new(*op).encode().unwrap();
        let _ = writeln!(memory, "{:016x}{:016x}{:016x}{:016x}", word.0[3], word.0[2], word.0[1], word.0[0]);
    }
    std::fs::write(dir.join("words.hex"), memory).unwrap();
    let testbench = format!(
        r#"
module buffer_use_tb;
    reg [255:0] words [0:{last}];
    reg [255:0] word;
    wire [23:0] reads;
    wire [5:0] writes;
    {BUFFER_USE_MODULE} decoder (.word(word), .reads(reads), .writes(writes));
    integer i;
    initial begin
        $readmemh("{dir}/words.hex", words);
        for (i = 0; i <= {last}; i = i + 1) begin
            word = words[i];
            #1 $display("%h %h", reads, writes);
        end
        $finish;
    end
endmodule
"#,
        last = ops.len() - 1,
        dir = dir.display()
    );
    let source = dir.join("buffer_use.v");
    std::fs::write(&source, format!("{}{testbench}", buffer_use_module().unwrap())).unwrap();
    let binary = dir.join("buffer_use.vvp");
    let compiled = Command::new("iverilog")
        .args(["-g2005", "-s", "buffer_use_tb", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("iverilog (apt-get install iverilog) runs");
    assert!(compiled.status.success(), "iverilog: {}", String::from_utf8_lossy(&compiled.stderr));
    let run = Command::new("vvp").arg("-n").arg(&binary).output().expect("vvp runs");
    assert!(run.status.success(), "vvp: {}", String::from_utf8_lossy(&run.stderr));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let results: Vec<BufferUse> = stdout
        .lines()
        .filter(|l| l.split_whitespace().count() == 2)
        .map(|l| {
            let mut fields = l.split_whitespace().map(|w| u32::from_str_radix(w, 16).expect("hex"));
            let (reads, writes) = (fields.next().unwrap(), fields.next().unwrap());
            let mut u = BufferUse::default();
            for b in 0..6 {
                u.reads[b][0] = ((reads >> (4 * b)) & 15) as u8;
                u.writes[b][0] = ((writes >> b) & 1) as u8;
            }
            u
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(results.len(), ops.len(), "one line per instruction: {stdout:.2000}");
    // One partition per buffer, as the RTL generates.
    let arch = ArchConfig::tiny();
    assert_eq!(arch.buffers.partitions, 1);
    for (op, got) in ops.iter().zip(&results) {
        assert_eq!(*got, op.buffer_use(&arch).unwrap(), "{}", Instruction::new(*op));
    }
}
