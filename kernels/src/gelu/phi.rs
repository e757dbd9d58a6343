//! GELU's `Φ(x)` and `gelu'(x)` on the vector paths: the logistic form `σ(x·s(x²))` for every
//! token, and the piecewise tables of [`tables`](super::tables) where a 32-entry lookup is one
//! instruction ([`Simd::FAST_LUT32`]).

use super::tables;
use crate::simd::Simd;

/// `Φ(x)` is written as a logistic `σ(x·s(x²))`, `s(x²) = logit(Φ(x))/x`, which is smooth and
/// even; this is `−s·log₂e` as a polynomial in `w = x²` on `|x| ≤ 5.6` (weighted Lawson fit in
/// f64 minimising the absolute error of `Φ`, times log₂e, coefficients rounded to f32; highest
/// degree first). Max fit error in `Φ` 1.4e-8; in f32 arithmetic (with a correctly rounded
/// exp) 5e-8.
const PHI_NEG_S_LOG2E: [f32; 11] = [
    6.597516e-15,
    -9.740212e-13,
    5.904599e-11,
    -1.8242252e-09,
    2.58413e-08,
    8.6482316e-08,
    -9.859083e-06,
    0.000155015,
    0.00010055298,
    -0.10483892,
    -2.3022087,
];
/// `w = x²` is clamped to `GELU_X²` for the polynomial: beyond, `σ(x·s(GELU_X²))` stays
/// between `Φ(±GELU_X)` and `0`/`1`, and `Φ(−5.6) = 1.1e-8`.
const PHI_W_CLAMP: f32 = 5.6 * 5.6;

/// A degree-10 polynomial (coefficients highest first) by Estrin's scheme:
/// the same 10 fused multiply-adds plus 3 multiplies for the powers of `t`, but a dependency
/// chain of 5 operations instead of 10, so the vectors of an unrolled loop overlap better.
#[inline(always)]
unsafe fn estrin10<S: Simd>(c: &[f32; 11], t: S::V) -> S::V {
    let k = |i: usize| S::splat(c[10 - i]);
    let t2 = S::mul(t, t);
    let t4 = S::mul(t2, t2);
    let t8 = S::mul(t4, t4);
    let p01 = S::fma(k(1), t, k(0));
    let p23 = S::fma(k(3), t, k(2));
    let p45 = S::fma(k(5), t, k(4));
    let p67 = S::fma(k(7), t, k(6));
    let p89 = S::fma(k(9), t, k(8));
    let q0 = S::fma(p23, t2, p01);
    let q1 = S::fma(p67, t2, p45);
    let q2 = S::fma(k(10), t2, p89);
    S::fma(q2, t8, S::fma(q1, t4, q0))
}

/// `e^(−x·s(x²))` with `Φ(x) = 1/(1 + e^(−x·s(x²)))`: the logistic form of `Φ` used by GELU,
/// cheaper than [`phi`] (one `2ᵗ` and 16 fused multiply-adds, no second branch). Its absolute
/// error in `Φ` is below 1e-7 on every path: fit plus evaluation 5e-8, and the `2ᵗ`'s relative
/// error (≤ 1.6e-8 plus 2 roundings) enters scaled by `σ(1−σ) ≤ ¼`. It is only an absolute bound: the lower tail has no relative accuracy
/// (`Φ` for `x < −5.6` is below 1.1e-8 and returned as something between that and 0).
/// `x = −∞` gives `+∞` (so `x·Φ = −∞/∞` is NaN, as the reference's `−∞·0`), `+∞` gives 0,
/// NaN gives NaN.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn phi_logistic_e<S: Simd>(x: S::V) -> S::V {
    // NaN in w may become the clamp value; x·(…) below is NaN anyway.
    let w = S::min(S::mul(x, x), S::splat(PHI_W_CLAMP));
    let ns = estrin10::<S>(&PHI_NEG_S_LOG2E, w);
    S::exp2(S::mul(x, ns))
}

/// Evaluates one of the [`tables`](super::tables) piecewise polynomials: `x` clamped to `[−8, 8)`,
/// interval `i = ⌊2x + 16⌋`, local variable `g = 2x + 16 − i` formed with one rounding (`2x` and
/// `16 − i` are exact), then a degree-6 Horner in `g ∈ [0, 1)` with the coefficients looked up
/// per lane. 7 operations for the reduction, 7 lookups and 6 fused multiply-adds. NaN gives an
/// unspecified value (callers multiply by the NaN input).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
unsafe fn pw_poly<S: Simd>(x: S::V, c: &[[f32; 32]; 7]) -> S::V {
    // 8 − 2 ulp: 2x + 16 then stays below 32 after rounding.
    let xc = S::max(S::splat(-8.0), S::min(S::splat(7.999_999), x));
    let two = S::splat(2.0);
    let i = S::floor(S::fma(xc, two, S::splat(16.0)));
    let g = S::fma(xc, two, S::sub(S::splat(16.0), i));
    let mut acc = S::lut32(i, &c[6]);
    for k in (0..6).rev() {
        acc = S::fma(acc, g, S::lut32(i, &c[k]));
    }
    acc
}

/// The 8-interval tables' polynomial (see [`tables::PHI_PW8`]) at `|x|` clamped to `[0, 8)`:
/// interval `i = ⌊|x|⌋`, `g = |x| − (i + ½)`, a degree-7 Horner with one 8-entry lookup per
/// coefficient, then `1 − p` for negative `x` (both tabled functions satisfy
/// `f(−x) = 1 − f(x)`). 6 operations of reduction, 8 lookups, 7 fused multiply-adds and 3 for
/// the sign. NaN gives NaN (with x86 `min`, which returns its second operand when one is NaN).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
unsafe fn pw8_sym<S: Simd>(x: S::V, c: &[[f32; 8]; 8]) -> S::V {
    // 8 − 1 ulp: the interval index stays below 8. (Operands in this order so a NaN `x` stays
    // NaN through `g`, and the result with it.)
    let a = S::min(S::splat(7.999_999_5), S::abs(x));
    let i = S::floor(a);
    let g = S::sub(a, S::add(i, S::splat(0.5)));
    let idx = S::lut8_index(i);
    let mut acc = S::lut8(idx, &c[7]);
    for k in (0..7).rev() {
        acc = S::fma(acc, g, S::lut8(idx, &c[k]));
    }
    let zero = S::splat(0.0);
    S::select_lt(x, zero, S::sub(S::splat(1.0), acc), acc)
}

/// `Φ(x)` from [`tables::PHI_PW8`]: absolute error ≤ 5.2e-8 (measured, see there), exactly 0
/// for `x ≤ −7` and 1 for `x ≥ 7`. Only fast where [`Simd::FAST_LUT8`].
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn phi_pw8<S: Simd>(x: S::V) -> S::V {
    pw8_sym::<S>(x, &tables::PHI_PW8)
}

/// `gelu'(x)` from [`tables::DGELU_PW8`]: absolute error ≤ 1.7e-7 (measured, see there), exactly
/// 0 for `x ≤ −7` and 1 for `x ≥ 7`. Only fast where [`Simd::FAST_LUT8`].
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn dgelu_pw8<S: Simd>(x: S::V) -> S::V {
    pw8_sym::<S>(x, &tables::DGELU_PW8)
}

/// `Φ(x)` from [`tables::PHI_PW`]: absolute error ≤ 6e-8 (measured, see there), exactly 0
/// for `x ≤ −8` (so `x·Φ(x)` is NaN at `−∞` like the reference's `−∞·0`) and 1 for `x ≥ 8`.
/// Only fast where [`Simd::FAST_LUT32`].
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn phi_pw<S: Simd>(x: S::V) -> S::V {
    pw_poly::<S>(x, &tables::PHI_PW)
}

/// `Φ(x) + x·φ(x)` (GELU's derivative) from [`tables::DGELU_PW`]: absolute error ≤ 1.1e-7
/// (measured, see there), exactly 0 for `x ≤ −8` and 1 for `x ≥ 8`. Only fast where
/// [`Simd::FAST_LUT32`].
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn dgelu_pw<S: Simd>(x: S::V) -> S::V {
    pw_poly::<S>(x, &tables::DGELU_PW)
}
