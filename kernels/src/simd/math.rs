//! Vector math shared by every path: `eˣ` and `2ᵗ` from the [`Simd`] primitives.
//!
//! (erf and the erf-based normal CDF, which no kernel uses since GELU has its own `Φ` forms in
//! `gelu::phi`, are in `math::erf`, compiled with the accuracy test hooks.)

use super::Simd;

#[cfg(feature = "test-hooks")]
pub(crate) mod erf;

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

/// `2ᶠ` on `|f| ≤ ½`: degree-6 fit of the relative error (Lawson, f64; coefficients rounded to
/// f32, lowest degree first): max relative error 1.6e-8.
const EXP2_P: [f32; 7] = [
    1.0,
    std::f32::consts::LN_2,
    0.24022646,
    0.055503286,
    0.009618489,
    0.0013399932,
    0.00015345811,
];

/// `(n, 2ᶠ)` with `t = n + f`, `n = round(t)`, `|f| ≤ ½` (`f` exact), the polynomial by
/// Estrin's scheme (chain of 4 operations after the reduction).
#[inline(always)]
pub(crate) unsafe fn exp2_reduced<S: Simd>(t: S::V) -> (S::V, S::V) {
    let n = S::round(t);
    let f = S::sub(t, n);
    let k = |i: usize| S::splat(EXP2_P[i]);
    let f2 = S::mul(f, f);
    let f4 = S::mul(f2, f2);
    let p01 = S::fma(k(1), f, k(0));
    let p23 = S::fma(k(3), f, k(2));
    let p45 = S::fma(k(5), f, k(4));
    let q1 = S::fma(k(6), f2, p45);
    let q0 = S::fma(p23, f2, p01);
    (n, S::fma(q1, f4, q0))
}

/// Largest `t` for which the generic [`exp2`](Simd::exp2) scales by `2ⁿ` directly.
const EXP2_HI: f32 = 126.0;

/// `2ᵗ`: `t` clamped to `±126` for the reduction, `+∞` above 126, and below −126 a value at most
/// `2⁻¹²⁶` (not the true tiny or zero result: callers only add it to 1). NaN gives an
/// unspecified value (callers combine it with the NaN input elsewhere).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn exp2_generic<S: Simd>(t: S::V) -> S::V {
    let hi = S::splat(EXP2_HI);
    let tc = S::max(S::min(t, hi), S::splat(-EXP2_HI));
    let (n, p) = exp2_reduced::<S>(tc);
    S::select_gt(t, hi, S::splat(f32::INFINITY), S::mul(p, S::pow2i(n)))
}
