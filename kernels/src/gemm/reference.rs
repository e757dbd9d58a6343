//! The scalar GEMM every fast path is tested against: one dot product per output element,
//! accumulated in order along k.

use super::Gemm;

/// Reference `C = alpha·op(A)·op(B) + beta·C`. Lengths must already be checked.
pub fn gemm(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    for i in 0..g.m {
        for j in 0..g.n {
            let mut acc = 0.0f32;
            for p in 0..g.k {
                let av = if g.trans_a {
                    a[p * g.lda + i]
                } else {
                    a[i * g.lda + p]
                };
                let bv = if g.trans_b {
                    b[j * g.ldb + p]
                } else {
                    b[p * g.ldb + j]
                };
                acc += av * bv;
            }
            let cij = &mut c[i * g.ldc + j];
            *cij = if g.beta == 0.0 {
                g.alpha * acc
            } else {
                g.alpha * acc + g.beta * *cij
            };
        }
    }
}
