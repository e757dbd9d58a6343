//! `erf` and the normal CDF `Φ` by erf, per lane: the reference formulas of the vector math,
//! exposed for accuracy tests through [`math_with`](crate::simd::math_with) (no kernel calls
//! them; GELU uses the cheaper forms of `gelu::phi`).

use super::exp;
use crate::simd::Simd;

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
