//! f32 GEMM: `C = alpha * op(A) * op(B) + beta * C`, row-major, `op` = identity or transpose.
//!
//! [`Gemm`] describes one product (sizes, transposes, leading dimensions, alpha, beta);
//! [`Gemm::run`] computes it on the active instruction set, [`Gemm::run_batched`] computes a
//! strided batch of equal-shaped products (attention's per-head products). `beta == 0` means C
//! is overwritten, whatever it held (NaN included), as in BLAS.
//!
//! Every product is computed with a fixed order of accumulation along k for each output
//! element, so results do not depend on the number of threads.
//!
//! Fast paths (see `driver`): op(B) is packed, one KC×NC block at a time, into NR-column panels
//! (the packing absorbs B's transpose); per-ISA register-blocked micro-kernels compute MR×NR
//! tiles of C (AVX-512 12×32 in 24 zmm, AVX2 6×16 in 12 ymm, portable `wide` 6×8, NEON 8×8).
//! On AVX-512 and AVX2, f32 A is read in place with its strides (a transposed A costs nothing);
//! other paths and bf16 A pack A into MR-row panels. Both have kernels for fewer rows (1–11 and
//! 1–5) for a last partial row panel (A in place, C written directly). AVX-512 reads an
//! untransposed f32 B in place when C is a single row block (batched attention products; on
//! AVX2 that lost to packing, see `driver`). Both pack B panels with vector copies, Bᵀ panels
//! with register transposes (16×16, 8×8), and a transposed A into MR-row panels when its block
//! meets 16 or more B panels (the Aᵀ·B weight gradients; on AVX2 from 2 panels when A's rows
//! are a page or more apart, prefetching rows ahead). The `vdpbf16ps`
//! kernel reads an untransposed bf16 A in place as 32-bit k pairs. k is blocked by KC (512 on AVX-512, 256 elsewhere), rows by MC (192 / 144)
//! so A's block stays in L2 while one B panel is reused across it, columns by NC = 2048. rayon splits a large C into one band per thread (rows or columns of whole tiles,
//! each band packing its own B, no barriers), or else into row blocks sharing one packed B;
//! [`Gemm::run_batched`] splits the batch over threads instead and runs each product on one
//! thread. [`Gemm::run_mixed`] takes bf16 operands (f32 accumulation): with both
//! in bf16 on the AVX-512 path of a CPU with AVX512-BF16 it runs `vdpbf16ps` on bf16 pair
//! panels, otherwise the panels are converted to f32 while packing. [`Gemm::run_bias`] adds a
//! bias to every row of C after each tile's last k block (a linear layer's `x·Wᵀ + b`); the
//! x86 kernels add it in registers as they store a whole tile.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod bf16;
#[cfg(target_arch = "x86_64")]
mod bf16dp;
mod driver;
#[cfg(feature = "bench")]
pub mod limits;
#[cfg(target_arch = "aarch64")]
mod neon;
mod pack;
mod portable;
pub mod reference;
#[cfg(target_arch = "x86_64")]
mod x86_tile;

pub use bf16::Operand;

use crate::dispatch::{active, Isa};
use driver::Batch;
use pack::Elem;

/// Runs one product (`batch == None`) or a strided batch on `isa`'s fast path; the scalar path
/// (and a path this build lacks) runs the reference. Lengths must already be checked. `bias`
/// (one product only, n values) is added to every row of C after the product.
pub(crate) fn dispatch<TA: Elem, TB: Elem>(
    isa: Isa,
    g: &Gemm,
    batch: Option<Batch>,
    a: &[TA],
    b: &[TB],
    c: &mut [f32],
    bias: Option<&[f32]>,
) {
    debug_assert!(batch.is_none() || bias.is_none());
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && TA::BF16 && TB::BF16 && bf16dp::available() {
        return go::<bf16dp::Bf16Dp, TA, TB>(g, batch, a, b, c, bias);
    }
    assert!(
        isa.is_supported(),
        "gemm: instruction set {isa} is not supported by this CPU"
    );
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => go::<avx512::Avx512, TA, TB>(g, batch, a, b, c, bias),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => go::<avx2::Avx2, TA, TB>(g, batch, a, b, c, bias),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => go::<neon::Neon, TA, TB>(g, batch, a, b, c, bias),
        Isa::Portable => go::<portable::Portable, TA, TB>(g, batch, a, b, c, bias),
        _ => {
            let a: Vec<f32> = a.iter().map(|x| x.f32()).collect();
            let b: Vec<f32> = b.iter().map(|x| x.f32()).collect();
            match batch {
                None => {
                    reference::gemm(g, &a, &b, c);
                    if let Some(bias) = bias {
                        for i in 0..g.m {
                            driver::add_bias(&mut c[i * g.ldc..][..g.n], bias);
                        }
                    }
                }
                Some(Batch { n, sa, sb, sc }) => {
                    for i in 0..n {
                        reference::gemm(g, &a[i * sa..], &b[i * sb..], &mut c[i * sc..]);
                    }
                }
            }
        }
    }
}

/// Runs one product or a batch with micro-kernel `K`.
fn go<K: driver::MicroKernel, TA: Elem, TB: Elem>(
    g: &Gemm,
    batch: Option<Batch>,
    a: &[TA],
    b: &[TB],
    c: &mut [f32],
    bias: Option<&[f32]>,
) {
    match batch {
        None => driver::run::<K, TA, TB>(g, a, b, c, true, bias),
        Some(batch) => driver::run_batched::<K, TA, TB>(g, batch, a, b, c),
    }
}

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
        self.check_lens(a.len(), b.len(), c.len())
    }

    /// [`Gemm::check`] on slice lengths.
    pub fn check_lens(&self, a_len: usize, b_len: usize, c_len: usize) {
        self.check_strides();
        let (la, lb, lc) = self.min_lens();
        assert!(a_len >= la, "gemm: A has {a_len} elements, needs {la}");
        assert!(b_len >= lb, "gemm: B has {b_len} elements, needs {lb}");
        assert!(c_len >= lc, "gemm: C has {c_len} elements, needs {lc}");
    }

    /// Panics with a message naming the bad leading dimension unless each covers its rows.
    pub fn check_strides(&self) {
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
    }

    /// Runs on the process's active instruction set.
    pub fn run(&self, a: &[f32], b: &[f32], c: &mut [f32]) {
        self.run_with(active(), a, b, c)
    }

    /// Runs on a chosen instruction set (tests and benches use this to reach every path).
    pub fn run_with(&self, isa: Isa, a: &[f32], b: &[f32], c: &mut [f32]) {
        self.check(a, b, c);
        dispatch(isa, self, None, a, b, c, None)
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
        self.batched(isa, batch, (a, stride_a), (b, stride_b), (c, stride_c))
    }

    /// Checks a strided batch against the slices and runs it on `isa` (any operand types).
    pub(crate) fn batched<TA: Elem, TB: Elem>(
        &self,
        isa: Isa,
        batch: usize,
        (a, sa): (&[TA], usize),
        (b, sb): (&[TB], usize),
        (c, sc): (&mut [f32], usize),
    ) {
        self.check_batched(batch, a.len(), sa, b.len(), sb, c.len(), sc);
        if batch == 0 {
            return;
        }
        let batch = Batch {
            n: batch,
            sa,
            sb,
            sc,
        };
        dispatch(isa, self, Some(batch), a, b, c, None)
    }

    /// Panics with a message naming the bad value unless a strided batch fits the slices.
    #[allow(clippy::too_many_arguments)]
    pub fn check_batched(
        &self,
        batch: usize,
        a_len: usize,
        stride_a: usize,
        b_len: usize,
        stride_b: usize,
        c_len: usize,
        stride_c: usize,
    ) {
        if batch == 0 {
            return;
        }
        self.check_strides();
        let (la, lb, lc) = self.min_lens();
        assert!(
            a_len >= (batch - 1) * stride_a + la,
            "gemm batched: A has {} elements, needs {}",
            a_len,
            (batch - 1) * stride_a + la
        );
        assert!(
            b_len >= (batch - 1) * stride_b + lb,
            "gemm batched: B has {} elements, needs {}",
            b_len,
            (batch - 1) * stride_b + lb
        );
        assert!(
            c_len >= (batch - 1) * stride_c + lc,
            "gemm batched: C has {} elements, needs {}",
            c_len,
            (batch - 1) * stride_c + lc
        );
        assert!(
            batch == 1 || stride_c >= lc,
            "gemm batched: stride_c {stride_c} < {lc} makes outputs overlap"
        );
    }
}
