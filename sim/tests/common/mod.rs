//! Helpers shared by the simulator's integration tests.

use satkit_hw::isa::{Buffer, Op, VecOp};

/// A `vec` operation with its operands given as `(buffer, address)` pairs.
pub fn vec_op(op: VecOp, count: u32, dst: (Buffer, u32), a: (Buffer, u32), b: (Buffer, u32), p: [u32; 4]) -> Op {
    Op::Vec {
        op,
        count,
        dst_buf: dst.0,
        dst: dst.1,
        a_buf: a.0,
        a: a.1,
        b_buf: b.0,
        b: b.1,
        p0: p[0],
        p1: p[1],
        p2: p[2],
        p3: p[3],
    }
}
