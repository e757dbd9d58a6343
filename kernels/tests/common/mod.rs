//! The harness every kernel test file shares: the case table (awkward sizes, special values,
//! shapes), one seeded RNG, the loops over instruction sets, `assert_close` against a reference
//! with an element-wise tolerance, and the 1-vs-2-thread bit-identity check.
//!
//! Tolerances are written where they are used, each derived from the operation count and the
//! error bounds stated here (the unit roundoff [`U`] and the documented accuracy of the vector
//! math, which `tests/simd.rs` asserts).

// Each test file uses part of the harness.
#![allow(dead_code)]

pub mod attention;

use cloze_kernels::dispatch::{supported, Isa};
use cloze_kernels::simd;
use proptest::test_runner::Config as ProptestConfig;
use rand::{Rng as _, SeedableRng};

// ---------------------------------------------------------------------------------------------
// Stated error bounds.

/// The f32 unit roundoff 2⁻²⁴.
pub const U: f64 = 1.0 / 16_777_216.0;
/// The vector `exp`'s relative error on normal results: 3 ulp (asserted in `tests/simd.rs`).
pub const EXP_REL: f64 = 6.0 * U;
/// The vector `erf`'s absolute error (asserted in `tests/simd.rs`).
pub const ERF_ABS: f64 = 1e-7;
/// The absolute error of GELU's vector `Φ` forms, table and logistic (see `gelu::phi`).
pub const GELU_PHI_ABS: f64 = 1e-7;

// ---------------------------------------------------------------------------------------------
// The case table.

/// Lengths and row widths around every vector width (4, 8, 16 lanes, unrolled by 2 and 4).
pub const AWKWARD: [usize; 10] = [1, 3, 7, 15, 17, 31, 33, 127, 129, 257];
/// BERT's vocabulary: the width of the cross-entropy rows.
pub const VOCAB: usize = 30522;
/// Sequence lengths of the attention tests (around the 64-key tiles and the vector widths).
pub const SEQ_LENS: [usize; 9] = [1, 3, 7, 15, 17, 31, 33, 127, 129];
/// Head dimensions of the attention tests.
pub const HEAD_DIMS: [usize; 6] = [1, 3, 8, 17, 32, 64];
/// `(Tq, Tk)` pairs with different query and key lengths (bottom-right aligned when causal;
/// `Tq > Tk` hides every key from the early rows).
pub const QK_LENS: [(usize, usize); 6] = [(5, 70), (70, 5), (65, 129), (129, 64), (1, 17), (17, 1)];

/// f32 values at the edges of the element-wise kernels: zeros of both signs, tiny and huge
/// magnitudes, the ends of the polynomial ranges (±8 for the `Φ` tables, 30 for tanh's clamp),
/// infinities and NaN.
pub const SPECIALS: [f32; 17] = [
    0.0,
    -0.0,
    1e-30,
    -1e-30,
    1e-8,
    3.0,
    -3.0,
    -5.0,
    -8.0,
    -9.5,
    -20.0,
    30.0,
    1e30,
    -1e30,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
];

/// f32 bit patterns at the edges of the 16-bit conversions.
pub const CONVERT_SPECIAL_BITS: [u32; 23] = [
    0,
    0x8000_0000,
    0x7F80_0000,
    0xFF80_0000,
    0x7FC0_0000,
    0x7F80_0001,
    0xFF80_0001,
    0x7FFF_FFFF,
    0x0000_0001,
    0x8000_0001,
    0x007F_FFFF,
    0x7F7F_FFFF,
    0xFF7F_FFFF,
    // bf16 ties: exactly half-way, even and odd
    0x3F80_8000,
    0x3F81_8000,
    0x3F80_8001,
    0x3F80_7FFF,
    // f16 overflow edge, subnormals, ties
    0x477F_F000,
    0x477F_EFFF,
    0x4780_0000,
    0x3380_0000,
    0x3300_0000,
    0x3880_1000,
];

/// Elements above the parallel threshold (2¹⁷) and not a multiple of the chunk size.
pub const PARALLEL_LEN: usize = (1 << 18) + 77;
/// The row width of the row kernels' thread-count tests (a multiple of no vector width).
pub const PARALLEL_COLS: usize = 769;
/// The rows of [`PARALLEL_COLS`] that fit in [`PARALLEL_LEN`].
pub const PARALLEL_ROWS: usize = PARALLEL_LEN / PARALLEL_COLS;

/// The fewest elements `n` for which a call reading and writing `n` each streams its output.
pub fn stream_len() -> usize {
    let n = simd::STREAM_MIN_BYTES / 8;
    assert!(simd::stream_output(n, n) && !simd::stream_output(n - 1, n - 1));
    n
}

// ---------------------------------------------------------------------------------------------
// Random data.

/// The one seeded generator of the kernel tests.
pub struct Rng(rand::rngs::StdRng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(rand::rngs::StdRng::seed_from_u64(seed))
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0.random_range(lo..hi)
    }

    /// `n` values uniform in `[lo, hi)`.
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    /// Uniform integer in `lo..hi`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        self.0.random_range(lo..hi)
    }

    /// 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0.random()
    }
}

/// The data of the thread-count tests: `K` vectors of `len` values in [-6, 6), drawn in order
/// from a generator seeded with 6, and the generator for anything more.
pub fn parallel_inputs<const K: usize>(len: usize) -> (Rng, [Vec<f32>; K]) {
    let mut r = Rng::new(6);
    let v = std::array::from_fn(|_| r.vec(len, -6.0, 6.0));
    (r, v)
}

/// The cases of the row kernels' awkward-width tests: for each width of [`AWKWARD`], 1 and 3
/// rows of values in [-15, 15) drawn from a generator seeded with 3. `f` gets the generator
/// (for anything more it draws), the rows, the width and the values.
pub fn for_each_awkward_matrix(mut f: impl FnMut(&mut Rng, usize, usize, Vec<f32>)) {
    let mut r = Rng::new(3);
    for cols in AWKWARD {
        for rows in [1, 3] {
            let x = r.vec(rows * cols, -15.0, 15.0);
            f(&mut r, rows, cols, x);
        }
    }
}

/// Proptest with `cases` cases.
pub fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Instruction sets.

/// Runs `f` on every path this CPU supports, the scalar reference first.
pub fn for_each_isa(mut f: impl FnMut(Isa)) {
    for isa in supported() {
        f(isa)
    }
}

/// Runs `f` on every vector path this CPU supports (everything but the scalar reference).
pub fn for_each_vector_isa(mut f: impl FnMut(Isa)) {
    for isa in supported() {
        if isa != Isa::Scalar {
            f(isa)
        }
    }
}

/// The best path this CPU supports.
pub fn best_isa() -> Isa {
    *supported().last().expect("scalar is always supported")
}

/// A path this CPU cannot run (x86_64 lacks NEON and aarch64 lacks AVX-512).
pub fn missing_isa() -> Isa {
    Isa::ALL
        .into_iter()
        .find(|i| !i.is_supported())
        .expect("every build target lacks at least one path")
}

// ---------------------------------------------------------------------------------------------
// Comparisons.

/// Asserts `|got[i] − want[i]| ≤ tol(i)` for every element; NaN must match NaN and infinities
/// must match exactly.
pub fn assert_close(what: &str, isa: Isa, got: &[f32], want: &[f32], tol: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what} [{isa}]: lengths");
    for i in 0..got.len() {
        let (g, w) = (got[i] as f64, want[i] as f64);
        if w.is_nan() {
            assert!(g.is_nan(), "{what} [{isa}] at {i}: got {g}, want NaN");
            continue;
        }
        if w.is_infinite() || g == w {
            assert_eq!(g, w, "{what} [{isa}] at {i}");
            continue;
        }
        let t = tol(i);
        assert!(
            (g - w).abs() <= t,
            "{what} [{isa}] at {i} of {}: got {g:e}, want {w:e}, |diff| {:e} > tol {t:e}",
            got.len(),
            (g - w).abs()
        );
    }
}

/// The bits of each value.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A result whose bits can be compared.
pub trait Bits {
    fn bits(&self) -> Vec<u64>;
}

impl Bits for Vec<f32> {
    fn bits(&self) -> Vec<u64> {
        self.iter().map(|x| x.to_bits() as u64).collect()
    }
}

impl Bits for f64 {
    fn bits(&self) -> Vec<u64> {
        vec![self.to_bits()]
    }
}

impl Bits for usize {
    fn bits(&self) -> Vec<u64> {
        vec![*self as u64]
    }
}

impl<A: Bits, B: Bits> Bits for (A, B) {
    fn bits(&self) -> Vec<u64> {
        let mut v = self.0.bits();
        v.extend(self.1.bits());
        v
    }
}

/// A rayon pool of `threads` threads.
pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

/// Runs `f` in a 1-thread and a 2-thread pool and asserts that what it returns has the same bits.
pub fn same_bits_across_threads<T: Bits + Send>(what: &str, f: impl Fn() -> T + Sync + Send) {
    let a = pool(1).install(&f).bits();
    let b = pool(2).install(&f).bits();
    assert!(a == b, "{what}: 1 and 2 threads differ");
}
