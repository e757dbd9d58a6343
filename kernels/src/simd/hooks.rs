//! Test hooks (feature `test-hooks`): the vector math applied to slices, so the integration
//! tests can measure its accuracy on every path.

use super::math::erf::{erf, phi};
use super::{dispatch, exp, map1, Kernel, Map1, Simd};
use crate::dispatch::Isa;

/// Applies a vector function to a slice.
struct MapFn<'a> {
    pub x: &'a [f32],
    pub y: &'a mut [f32],
    pub which: MathFn,
}

/// Which vector function [`math_with`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MathFn {
    /// `eˣ` (the vector `exp` of `simd::math`).
    Exp,
    /// `erf(x)`.
    Erf,
    /// The standard normal CDF `Φ(x) = ½(1 + erf(x/√2))`.
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
            MathFn::Exp => map1::<S, _>(self.x, self.y, MathFn::Exp, false),
            MathFn::Erf => map1::<S, _>(self.x, self.y, MathFn::Erf, false),
            MathFn::Phi => map1::<S, _>(self.x, self.y, MathFn::Phi, false),
        }
    }
}

/// The vector `exp`, `erf` or `Φ` applied to `x` on `isa` (exposed for accuracy tests; the scalar
/// path uses `libm` in f64).
pub fn math_with(isa: Isa, f: MathFn, x: &[f32], y: &mut [f32]) {
    assert_eq!(
        x.len(),
        y.len(),
        "math_with: x {} elements, y {}",
        x.len(),
        y.len()
    );
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
