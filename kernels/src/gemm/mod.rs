//! f32 GEMM: `C = alpha * op(A) * op(B) + beta * C`, row-major, `op` = identity or transpose.
//!
//! [`Gemm`] describes one product (sizes, transposes, leading dimensions, alpha, beta);
//! [`Gemm::run`] computes it on the active instruction set, [`Gemm::run_batched`] computes a
//! strided batch of equal-shaped products (attention's per-head products). `beta == 0` means C
//! is overwritten, whatever it held (NaN included), as in BLAS.
//!
//! Every product is computed with a fixed order of accumulation along k for each output
//! element, so results do not depend on the number of threads.

pub mod reference;

use crate::dispatch::{active, Isa};

/// One GEMM problem. Build with [`Gemm::new`] and the setters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    /// Rows of op(A) and C.
    pub m: usize,
    /// Columns of op(B) and C.
    pub n: usize,
    /// Columns of op(A), rows of op(B).
    pub k: usize,
    /// A is stored transposed (k×m).
    pub trans_a: bool,
    /// B is stored transposed (n×k).
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
    /// Row stride of A as stored.
    pub lda: usize,
    /// Row stride of B as stored.
    pub ldb: usize,
    /// Row stride of C.
    pub ldc: usize,
}

impl Gemm {
    /// `C = A·B` with contiguous row-major operands, alpha 1, beta 0.
    pub fn new(m: usize, n: usize, k: usize) -> Gemm {
        Gemm {
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
            lda: k,
            ldb: n,
            ldc: n,
        }
    }

    /// Sets the transposes and resets lda/ldb to the contiguous strides for them.
    pub fn transposes(mut self, trans_a: bool, trans_b: bool) -> Gemm {
        self.trans_a = trans_a;
        self.trans_b = trans_b;
        self.lda = if trans_a { self.m } else { self.k };
        self.ldb = if trans_b { self.k } else { self.n };
        self
    }

    pub fn alpha(mut self, alpha: f32) -> Gemm {
        self.alpha = alpha;
        self
    }

    pub fn beta(mut self, beta: f32) -> Gemm {
        self.beta = beta;
        self
    }

    /// Sets all three leading dimensions.
    pub fn strides(mut self, lda: usize, ldb: usize, ldc: usize) -> Gemm {
        self.lda = lda;
        self.ldb = ldb;
        self.ldc = ldc;
        self
    }

    /// (rows, cols) of A as stored.
    pub fn a_stored(&self) -> (usize, usize) {
        if self.trans_a {
            (self.k, self.m)
        } else {
            (self.m, self.k)
        }
    }

    /// (rows, cols) of B as stored.
    pub fn b_stored(&self) -> (usize, usize) {
        if self.trans_b {
            (self.n, self.k)
        } else {
            (self.k, self.n)
        }
    }

    /// Smallest slice lengths of A, B and C this problem reads or writes.
    pub fn min_lens(&self) -> (usize, usize, usize) {
        fn need(rows: usize, cols: usize, ld: usize) -> usize {
            if rows == 0 || cols == 0 {
                0
            } else {
                (rows - 1) * ld + cols
            }
        }
        let (ar, ac) = self.a_stored();
        let (br, bc) = self.b_stored();
        (
            need(ar, ac, self.lda),
            need(br, bc, self.ldb),
            need(self.m, self.n, self.ldc),
        )
    }

    /// Panics with a message naming the bad value unless strides and lengths fit.
    pub fn check(&self, a: &[f32], b: &[f32], c: &[f32]) {
        let (_, ac) = self.a_stored();
        let (_, bc) = self.b_stored();
        assert!(
            self.lda >= ac.max(1),
            "gemm: lda {} < {} columns of A",
            self.lda,
            ac
        );
        assert!(
            self.ldb >= bc.max(1),
            "gemm: ldb {} < {} columns of B",
            self.ldb,
            bc
        );
        assert!(
            self.ldc >= self.n.max(1),
            "gemm: ldc {} < n {}",
            self.ldc,
            self.n
        );
        let (la, lb, lc) = self.min_lens();
        assert!(
            a.len() >= la,
            "gemm: A has {} elements, needs {la}",
            a.len()
        );
        assert!(
            b.len() >= lb,
            "gemm: B has {} elements, needs {lb}",
            b.len()
        );
        assert!(
            c.len() >= lc,
            "gemm: C has {} elements, needs {lc}",
            c.len()
        );
    }

    /// Runs on the process's active instruction set.
    pub fn run(&self, a: &[f32], b: &[f32], c: &mut [f32]) {
        self.run_with(active(), a, b, c)
    }

    /// Runs on a chosen instruction set (tests and benches use this to reach every path).
    pub fn run_with(&self, isa: Isa, a: &[f32], b: &[f32], c: &mut [f32]) {
        self.check(a, b, c);
        match isa {
            // Fast paths are added per ISA; until one exists the reference runs.
            _ => reference::gemm(self, a, b, c),
        }
    }

    /// `batch` products; the i-th reads A at `i*stride_a`, B at `i*stride_b`, writes C at
    /// `i*stride_c`.
    #[allow(clippy::too_many_arguments)]
    pub fn run_batched(
        &self,
        batch: usize,
        a: &[f32],
        stride_a: usize,
        b: &[f32],
        stride_b: usize,
        c: &mut [f32],
        stride_c: usize,
    ) {
        self.run_batched_with(active(), batch, a, stride_a, b, stride_b, c, stride_c)
    }

    /// [`Gemm::run_batched`] on a chosen instruction set.
    #[allow(clippy::too_many_arguments)]
    pub fn run_batched_with(
        &self,
        isa: Isa,
        batch: usize,
        a: &[f32],
        stride_a: usize,
        b: &[f32],
        stride_b: usize,
        c: &mut [f32],
        stride_c: usize,
    ) {
        if batch == 0 {
            return;
        }
        let (la, lb, lc) = self.min_lens();
        assert!(
            a.len() >= (batch - 1) * stride_a + la,
            "gemm batched: A has {} elements, needs {}",
            a.len(),
            (batch - 1) * stride_a + la
        );
        assert!(
            b.len() >= (batch - 1) * stride_b + lb,
            "gemm batched: B has {} elements, needs {}",
            b.len(),
            (batch - 1) * stride_b + lb
        );
        assert!(
            c.len() >= (batch - 1) * stride_c + lc,
            "gemm batched: C has {} elements, needs {}",
            c.len(),
            (batch - 1) * stride_c + lc
        );
        assert!(
            batch == 1 || stride_c >= lc,
            "gemm batched: stride_c {stride_c} < {lc} makes outputs overlap"
        );
        for i in 0..batch {
            let c_i = &mut c[i * stride_c..];
            self.run_with(isa, &a[i * stride_a..], &b[i * stride_b..], c_i);
        }
    }
}
