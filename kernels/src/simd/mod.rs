//! A small SIMD abstraction so each element-wise and row kernel is written once and compiled for
//! every instruction set.
//!
//! `Simd` is implemented by zero-sized tokens for AVX-512F, AVX2+FMA, the `wide` crate
//! (portable) and NEON. Its methods are `#[inline(always)] unsafe fn`s: they are only sound to
//! call from code compiled with the token's CPU features, on a CPU that has them. Generic kernel
//! bodies (also `#[inline(always)] unsafe fn`) are instantiated inside one
//! `#[target_feature]` entry point per instruction set by `dispatch`, which is the only place
//! that decides, after checking [`Isa::is_supported`], that a token may be used.
//!
//! The vector math here (`exp`, `erf`, the normal CDF `phi`) is shared by all paths, so every path
//! computes the same approximation; only the rounding of fused multiply-adds and the order of
//! horizontal reductions differ between instruction sets.

use crate::dispatch::Isa;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
pub(crate) mod portable;

/// The widest vector of any token, in f32 lanes (for tail buffers).
pub(crate) const MAX_LANES: usize = 16;

/// One instruction set's f32 vector operations.
///
/// # Safety
/// Every method may only be called from code compiled with the implementing token's target
/// features, running on a CPU that has them. Pointer arguments must be valid for `LANES` f32.
pub(crate) unsafe trait Simd: Copy {
    /// A vector of `LANES` f32.
    type V: Copy;
    /// Lanes per vector.
    const LANES: usize;

    unsafe fn splat(x: f32) -> Self::V;
    /// Unaligned load of `LANES` values.
    unsafe fn load(p: *const f32) -> Self::V;
    /// Unaligned store of `LANES` values.
    unsafe fn store(p: *mut f32, v: Self::V);
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c` (fused where the ISA has FMA; the portable path on SSE2 rounds twice).
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lane maximum; which operand wins when one is NaN is unspecified.
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// Lane minimum; which operand wins when one is NaN is unspecified.
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sqrt(a: Self::V) -> Self::V;
    unsafe fn abs(a: Self::V) -> Self::V;
    /// Round to the nearest integer, ties to even.
    unsafe fn round(a: Self::V) -> Self::V;
    /// `2ⁿ` for lanes holding integers `n` in `-126..=127` (anything else gives an unspecified
    /// finite, infinite or NaN value).
    unsafe fn pow2i(n: Self::V) -> Self::V;
    /// `a > b ? t : f` per lane (ordered: NaN compares false).
    unsafe fn select_gt(a: Self::V, b: Self::V, t: Self::V, f: Self::V) -> Self::V;
    /// `a < b ? t : f` per lane (ordered: NaN compares false).
    unsafe fn select_lt(a: Self::V, b: Self::V, t: Self::V, f: Self::V) -> Self::V;
    /// Sum of the lanes (a fixed order per ISA).
    unsafe fn reduce_sum(a: Self::V) -> f32;
    /// Maximum of the lanes (NaN lanes may be ignored or propagated).
    unsafe fn reduce_max(a: Self::V) -> f32;
    /// `eˣ` per lane (see [`exp`]); a token may replace the generic version.
    #[inline(always)]
    unsafe fn exp(x: Self::V) -> Self::V {
        exp_generic::<Self>(x)
    }
}

/// A kernel body generic over the instruction set; [`dispatch`] runs it on one.
pub(crate) trait Kernel {
    type Out;
    /// Runs the body with token `S`.
    ///
    /// # Safety
    /// Only from inside a `#[target_feature]` function enabling `S`'s features, on a CPU that
    /// has them ([`dispatch`] is that function).
    unsafe fn run<S: Simd>(self) -> Self::Out;
}

/// Runs `k` on `isa`. Returns `Err(k)` for [`Isa::Scalar`] (the caller runs its own reference).
///
/// # Panics
/// If `isa` is not supported by this CPU (or not compiled for this architecture).
pub(crate) fn dispatch<K: Kernel>(isa: Isa, k: K) -> Result<K::Out, K> {
    assert!(
        isa.is_supported(),
        "kernel path {isa} is not supported on this CPU"
    );
    match isa {
        Isa::Scalar => Err(k),
        // SAFETY: `wide` compiles to the baseline target features, which every CPU running this
        // binary has; the portable token needs nothing more.
        Isa::Portable => Ok(unsafe { k.run::<portable::Portable>() }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn go<K: Kernel>(k: K) -> K::Out {
                k.run::<avx2::Avx2>()
            }
            // SAFETY: `is_supported` checked avx2 and fma above; `go` enables exactly them.
            Ok(unsafe { go(k) })
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn go<K: Kernel>(k: K) -> K::Out {
                k.run::<avx512::Avx512>()
            }
            // SAFETY: `is_supported` checked avx512f, avx2 and fma above; `go` enables them.
            Ok(unsafe { go(k) })
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => {
            #[target_feature(enable = "neon")]
            unsafe fn go<K: Kernel>(k: K) -> K::Out {
                k.run::<neon::Neon>()
            }
            // SAFETY: `is_supported` checked neon above; `go` enables it.
            Ok(unsafe { go(k) })
        }
        #[allow(unreachable_patterns)]
        other => unreachable!("{other} passed is_supported on an architecture without it"),
    }
}

// ---------------------------------------------------------------------------------------------
// Threading over fixed chunks.

/// Element-wise kernels split inputs of at least this many elements across rayon tasks.
pub const PAR_MIN_ELEMS: usize = 1 << 17;
/// Fixed chunk size (elements) of those tasks: independent of the number of threads, so every
/// element is computed by the same code whatever the pool size.
pub const PAR_CHUNK_ELEMS: usize = 1 << 15;

/// Rows per task for a row kernel with `cols` columns (fixed for a given `cols`).
pub fn rows_per_chunk(cols: usize) -> usize {
    (PAR_CHUNK_ELEMS / cols.max(1)).max(1)
}

/// Whether a kernel over `elems` elements should use rayon.
pub(crate) fn parallel(elems: usize) -> bool {
    elems >= PAR_MIN_ELEMS && rayon::current_num_threads() > 1
}

// ---------------------------------------------------------------------------------------------
// Loops with tails.

/// A one-input vector function for [`map1`]. A trait rather than a closure so that its body is
/// inlined into the `#[target_feature]` entry point (a closure would be compiled as its own
/// function without the CPU features, turning every intrinsic into a call).
pub(crate) trait Map1: Copy {
    /// # Safety
    /// As for [`Simd`] methods.
    unsafe fn f<S: Simd>(self, x: S::V) -> S::V;
}

/// A two-input vector function for [`map2`] (see [`Map1`]).
pub(crate) trait Map2: Copy {
    /// # Safety
    /// As for [`Simd`] methods.
    unsafe fn f<S: Simd>(self, a: S::V, b: S::V) -> S::V;
}

/// Applies `op` to each vector of `x` into `y`, handling the tail through a padded buffer so the
/// tail goes through the same vector code as the body.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn map1<S: Simd, F: Map1>(x: &[f32], y: &mut [f32], op: F) {
    debug_assert_eq!(x.len(), y.len());
    let n = x.len().min(y.len());
    let l = S::LANES;
    let body = n - n % l;
    let mut i = 0;
    // Four independent vectors per step: the polynomial chains are latency-bound.
    while i + 4 * l <= body {
        let (p, q) = (x.as_ptr().add(i), y.as_mut_ptr().add(i));
        let r0 = op.f::<S>(S::load(p));
        let r1 = op.f::<S>(S::load(p.add(l)));
        let r2 = op.f::<S>(S::load(p.add(2 * l)));
        let r3 = op.f::<S>(S::load(p.add(3 * l)));
        S::store(q, r0);
        S::store(q.add(l), r1);
        S::store(q.add(2 * l), r2);
        S::store(q.add(3 * l), r3);
        i += 4 * l;
    }
    while i < body {
        S::store(y.as_mut_ptr().add(i), op.f::<S>(S::load(x.as_ptr().add(i))));
        i += l;
    }
    if body < n {
        let mut bx = [0.0f32; MAX_LANES];
        bx[..n - body].copy_from_slice(&x[body..n]);
        let r = op.f::<S>(S::load(bx.as_ptr()));
        S::store(bx.as_mut_ptr(), r);
        y[body..n].copy_from_slice(&bx[..n - body]);
    }
}

/// Like [`map1`] with two inputs.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn map2<S: Simd, F: Map2>(a: &[f32], b: &[f32], y: &mut [f32], op: F) {
    let n = a.len().min(b.len()).min(y.len());
    let l = S::LANES;
    let body = n - n % l;
    let mut i = 0;
    while i + 2 * l <= body {
        let (pa, pb, q) = (a.as_ptr().add(i), b.as_ptr().add(i), y.as_mut_ptr().add(i));
        let r0 = op.f::<S>(S::load(pa), S::load(pb));
        let r1 = op.f::<S>(S::load(pa.add(l)), S::load(pb.add(l)));
        S::store(q, r0);
        S::store(q.add(l), r1);
        i += 2 * l;
    }
    while i < body {
        let r = op.f::<S>(S::load(a.as_ptr().add(i)), S::load(b.as_ptr().add(i)));
        S::store(y.as_mut_ptr().add(i), r);
        i += l;
    }
    if body < n {
        let k = n - body;
        let mut ba = [0.0f32; MAX_LANES];
        let mut bb = [0.0f32; MAX_LANES];
        ba[..k].copy_from_slice(&a[body..n]);
        bb[..k].copy_from_slice(&b[body..n]);
        let r = op.f::<S>(S::load(ba.as_ptr()), S::load(bb.as_ptr()));
        S::store(ba.as_mut_ptr(), r);
        y[body..n].copy_from_slice(&ba[..k]);
    }
}

/// Runs `$body` for `$j` = 0, l, 2l, … below `$n`: the full vectors in one loop and the partial
/// one after it, so the length checks of [`load_or_pad`] and [`store_part`] fold away in the main
/// loop. The body is expanded twice.
macro_rules! vec_loop {
    ($j:ident in $n:expr, $l:expr => $body:block) => {{
        let (n, l) = ($n, $l);
        let mut $j = 0;
        while $j + l <= n {
            $body
            $j += l;
        }
        if $j < n $body
    }};
}
pub(crate) use vec_loop;

/// Loads `x[i..i+LANES]`, or the tail padded with `pad` when fewer remain.
///
/// # Safety
/// As for [`Simd`] methods; `i < x.len()`.
#[inline(always)]
pub(crate) unsafe fn load_or_pad<S: Simd>(x: &[f32], i: usize, pad: f32) -> S::V {
    if i + S::LANES <= x.len() {
        S::load(x.as_ptr().add(i))
    } else {
        let mut b = [pad; MAX_LANES];
        b[..x.len() - i].copy_from_slice(&x[i..]);
        S::load(b.as_ptr())
    }
}

/// Stores `v` to `y[i..i+LANES]`, or only the lanes that fit.
///
/// # Safety
/// As for [`Simd`] methods; `i < y.len()`.
#[inline(always)]
pub(crate) unsafe fn store_part<S: Simd>(y: &mut [f32], i: usize, v: S::V) {
    if i + S::LANES <= y.len() {
        S::store(y.as_mut_ptr().add(i), v)
    } else {
        let mut b = [0.0f32; MAX_LANES];
        S::store(b.as_mut_ptr(), v);
        let k = y.len() - i;
        y[i..].copy_from_slice(&b[..k]);
    }
}

/// Σ x in f32 with two vector accumulators (tail padded with 0).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn sum<S: Simd>(x: &[f32]) -> f32 {
    let l = S::LANES;
    let mut a0 = S::splat(0.0);
    let mut a1 = S::splat(0.0);
    let mut i = 0;
    while i + 2 * l <= x.len() {
        a0 = S::add(a0, S::load(x.as_ptr().add(i)));
        a1 = S::add(a1, S::load(x.as_ptr().add(i + l)));
        i += 2 * l;
    }
    while i < x.len() {
        a0 = S::add(a0, load_or_pad::<S>(x, i, 0.0));
        i += l;
    }
    S::reduce_sum(S::add(a0, a1))
}

/// max x (tail padded with −∞); −∞ for an empty slice.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn max<S: Simd>(x: &[f32]) -> f32 {
    let l = S::LANES;
    let mut a0 = S::splat(f32::NEG_INFINITY);
    let mut a1 = S::splat(f32::NEG_INFINITY);
    let mut i = 0;
    while i + 2 * l <= x.len() {
        a0 = S::max(a0, S::load(x.as_ptr().add(i)));
        a1 = S::max(a1, S::load(x.as_ptr().add(i + l)));
        i += 2 * l;
    }
    while i < x.len() {
        a0 = S::max(a0, load_or_pad::<S>(x, i, f32::NEG_INFINITY));
        i += l;
    }
    S::reduce_max(S::max(a0, a1))
}

// ---------------------------------------------------------------------------------------------
// Vector math.

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split so that n·LN2_HI is exact for |n| ≤ 2⁹ (Cody–Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Above this `exp` overflows f32.
const EXP_HI: f32 = 88.376_26;
/// Below this `exp` is returned as 0 (the true value is below f32's smallest normal).
const EXP_LO: f32 = -87.336_54;

/// `eˣ` per lane, within about 2 ulp for normal results; +∞ above 88.376 and 0 below −103.98;
/// results in f32's subnormal range may be flushed to 0 (the generic version does so below
/// −87.337); NaN stays NaN.
///
/// `x = n·ln2 + r`, `|r| ≤ ln2/2`, `eʳ = 1 + r + r²·P(r)` with the degree-5 minimax `P` of the
/// Cephes `expf` ([`exp_reduced`]), then scaled by `2ⁿ`.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn exp<S: Simd>(x: S::V) -> S::V {
    S::exp(x)
}

/// `(n, eʳ)` with `x = n·ln2 + r`, `|r| ≤ ln2/2`: the part of [`exp`] before scaling by `2ⁿ`.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn exp_reduced<S: Simd>(x: S::V) -> (S::V, S::V) {
    let n = S::round(S::mul(x, S::splat(LOG2E)));
    let r = S::fma(n, S::splat(-LN2_HI), x);
    let r = S::fma(n, S::splat(-LN2_LO), r);
    let mut p = S::splat(1.987_569_1e-4);
    p = S::fma(p, r, S::splat(1.398_199_9e-3));
    p = S::fma(p, r, S::splat(8.333_452e-3));
    p = S::fma(p, r, S::splat(4.166_579_6e-2));
    p = S::fma(p, r, S::splat(1.666_666_5e-1));
    p = S::fma(p, r, S::splat(0.5));
    let r2 = S::mul(r, r);
    (n, S::add(S::fma(p, r2, r), S::splat(1.0)))
}

/// [`exp`] from the [`Simd`] primitives: `2ⁿ` built from exponent bits, out-of-range inputs
/// fixed by selects (which keep NaN).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn exp_generic<S: Simd>(x: S::V) -> S::V {
    let (n, e) = exp_reduced::<S>(x);
    let y = S::mul(e, S::pow2i(n));
    let y = S::select_gt(x, S::splat(EXP_HI), S::splat(f32::INFINITY), y);
    S::select_lt(x, S::splat(EXP_LO), S::splat(0.0), y)
}

/// Where erf switches from the odd polynomial to `1 − erfc`.
const ERF_SPLIT: f32 = 1.0;
/// erfc's fit covers `ERF_SPLIT..=ERFC_CLAMP`; beyond, `g` is held at its end value (erfc is
/// below 2e-17 there, so erf is exactly ±1 in f32 and only erfc's relative accuracy suffers).
const ERFC_CLAMP: f32 = 6.0;

/// `erf(z) − z` divided by `z`, as a polynomial in `w = z²` on `|z| ≤ 1` (weighted least squares
/// on Chebyshev nodes, coefficients rounded to f32; highest degree first).
const ERF_P: [f32; 7] = [
    7.889_462e-5,
    -8.020_952e-4,
    5.189_549e-3,
    -2.685_445_4e-2,
    1.128_36e-1,
    -3.761_262_6e-1,
    1.283_791_7e-1,
];

/// `g(z) = ln erfc(z) + z²` as a polynomial in `z` on `1 ≤ z ≤ 6` (same fit; highest first).
const ERFC_G: [f32; 10] = [
    -8.295_373e-8,
    3.325_018_5e-6,
    -6.042_498e-5,
    6.624_482_3e-4,
    -4.929_172_3e-3,
    2.664_831_3e-2,
    -1.101_516_5e-1,
    3.679_737_7e-1,
    -1.129_981_4,
    2.292_772_3e-4,
];

#[inline(always)]
unsafe fn horner<S: Simd>(c: &[f32], t: S::V) -> S::V {
    let mut acc = S::splat(c[0]);
    for &ci in &c[1..] {
        acc = S::fma(acc, t, S::splat(ci));
    }
    acc
}

/// erf on the small branch: `z + z·P(z²)` (odd, so correct for either sign).
#[inline(always)]
unsafe fn erf_small<S: Simd>(z: S::V) -> S::V {
    let p = horner::<S>(&ERF_P, S::mul(z, z));
    S::fma(z, p, z)
}

/// erfc(a) for `a ≥ 1`: `exp(g(min(a, 6)) − a²)`.
#[inline(always)]
unsafe fn erfc_large<S: Simd>(a: S::V) -> S::V {
    let g = horner::<S>(&ERFC_G, S::min(a, S::splat(ERFC_CLAMP)));
    exp::<S>(S::sub(g, S::mul(a, a)))
}

/// `erf(z)` per lane, absolute error below 1e-7 (measured in the `erf_accuracy` test).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn erf<S: Simd>(z: S::V) -> S::V {
    let a = S::abs(z);
    let small = erf_small::<S>(z);
    let big = S::sub(S::splat(1.0), erfc_large::<S>(a));
    let big = S::select_lt(z, S::splat(0.0), S::sub(S::splat(0.0), big), big);
    S::select_gt(a, S::splat(ERF_SPLIT), big, small)
}

/// The standard normal CDF `Φ(x) = ½(1 + erf(x/√2))`, with the lower tail computed as
/// `½·erfc(|x|/√2)` so it keeps its relative accuracy for negative `x` (down to about −8.5).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn phi<S: Simd>(x: S::V) -> S::V {
    let z = S::mul(x, S::splat(std::f32::consts::FRAC_1_SQRT_2));
    let a = S::abs(z);
    let half = S::splat(0.5);
    let small = S::fma(half, erf_small::<S>(z), half);
    let h = S::mul(half, erfc_large::<S>(a));
    let big = S::select_lt(x, S::splat(0.0), h, S::sub(S::splat(1.0), h));
    S::select_gt(a, S::splat(ERF_SPLIT), big, small)
}

/// Applies a vector function to a slice (for tests of the vector math).
pub(crate) struct MapFn<'a> {
    pub x: &'a [f32],
    pub y: &'a mut [f32],
    pub which: MathFn,
}

/// Which vector function [`MapFn`] applies.
#[derive(Clone, Copy, Debug)]
pub(crate) enum MathFn {
    Exp,
    Erf,
    Phi,
}

impl Map1 for MathFn {
    #[inline(always)]
    unsafe fn f<S: Simd>(self, v: S::V) -> S::V {
        match self {
            MathFn::Exp => exp::<S>(v),
            MathFn::Erf => erf::<S>(v),
            MathFn::Phi => phi::<S>(v),
        }
    }
}

impl Kernel for MapFn<'_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        // One instantiation per function so the match is outside the loop.
        match self.which {
            MathFn::Exp => map1::<S, _>(self.x, self.y, MathFn::Exp),
            MathFn::Erf => map1::<S, _>(self.x, self.y, MathFn::Erf),
            MathFn::Phi => map1::<S, _>(self.x, self.y, MathFn::Phi),
        }
    }
}

/// The vector `exp`, `erf` or `Φ` applied to `x` on `isa` (exposed for accuracy tests; the scalar
/// path uses `libm` in f64).
pub fn math_with(isa: Isa, which: &str, x: &[f32], y: &mut [f32]) {
    assert_eq!(
        x.len(),
        y.len(),
        "math_with: x {} elements, y {}",
        x.len(),
        y.len()
    );
    let f = match which {
        "exp" => MathFn::Exp,
        "erf" => MathFn::Erf,
        "phi" => MathFn::Phi,
        other => panic!("math_with: unknown function {other:?}; use exp, erf or phi"),
    };
    if let Err(k) = dispatch(isa, MapFn { x, y, which: f }) {
        for (yi, &xi) in k.y.iter_mut().zip(k.x) {
            let v = xi as f64;
            *yi = match f {
                MathFn::Exp => v.exp(),
                MathFn::Erf => libm::erf(v),
                MathFn::Phi => 0.5 * libm::erfc(-v * std::f64::consts::FRAC_1_SQRT_2),
            } as f32;
        }
    }
}
