//! Single-precision GEMM on the CPU through `matrixmultiply::sgemm` (single-threaded, so the
//! summation order and hence the result are fixed). Operands are row-major slices; a
//! transposed operand is expressed through strides, never copied.

/// Whether a row-major operand is used as stored or transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Use the matrix as stored.
    N,
    /// Use its transpose.
    T,
}

/// `C = op(A) . op(B) + beta * C`, with `op(A)` of shape `m x k`, `op(B)` of shape `k x n` and
/// `C` of shape `m x n`, all row-major. `beta` is 0 (overwrite) or 1 (accumulate).
///
/// Panics if a slice is shorter than its shape requires (a programming error inside this
/// crate, never a consequence of user input: callers check shapes first).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(m: usize, k: usize, n: usize, a: &[f32], op_a: Op, b: &[f32], op_b: Op, beta: f32, c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "sgemm: operand too short");
    if m == 0 || n == 0 {
        return;
    }
    let (rsa, csa) = match op_a {
        Op::N => (k as isize, 1),
        Op::T => (1, m as isize),
    };
    let (rsb, csb) = match op_b {
        Op::N => (n as isize, 1),
        Op::T => (1, k as isize),
    };
    // SAFETY: the assert above guarantees every index the strides reach lies inside the slices.
    unsafe {
        matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, c.as_mut_ptr(), n as isize, 1);
    }
}
