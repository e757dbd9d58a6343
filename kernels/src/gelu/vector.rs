//! GELU's vector kernels: `gelu` and `gelu'` on one vector, as [`Map1`]/[`Map2`] ops, and the
//! [`Kernel`]s that [`forward_with`](super::forward_with) and friends dispatch.

use super::phi;
use super::{GeluKind, INV_SQRT_2PI, SQRT_2_OVER_PI};
use crate::simd::{self, load_or_pad, map1, map2, store_part, vec_loop, Kernel, Map1, Map2, Simd};

const C_TANH: f32 = SQRT_2_OVER_PI as f32;
const C_TANH3: f32 = (SQRT_2_OVER_PI * 0.044715) as f32;
const C_TANH3D: f32 = (SQRT_2_OVER_PI * 3.0 * 0.044715) as f32;

/// `gelu(x)` on one vector.
#[inline(always)]
unsafe fn gelu_v<S: Simd>(kind: GeluKind, x: S::V) -> S::V {
    match kind {
        // x·Φ(x) by the piecewise table where lookups are one instruction, else
        // x·Φ(x) = x / (1 + 2^(x·s(x²)·log₂e)).
        GeluKind::Erf if S::FAST_LUT32 => S::mul(x, phi::phi_pw::<S>(x)),
        GeluKind::Erf if S::FAST_LUT8 => S::mul(x, phi::phi_pw8::<S>(x)),
        GeluKind::Erf => S::div(x, S::add(S::splat(1.0), phi::phi_logistic_e::<S>(x))),
        GeluKind::Tanh => {
            // u = √(2/π)(x + 0.044715x³); gelu = x·σ(2u) = x / (1 + e^(−2u)).
            let x2 = S::mul(x, x);
            let u = S::mul(x, S::fma(x2, S::splat(C_TANH3), S::splat(C_TANH)));
            let e = simd::exp::<S>(S::mul(u, S::splat(-2.0)));
            S::div(x, S::add(S::splat(1.0), e))
        }
    }
}

/// `gelu'(x)` on one vector.
#[inline(always)]
unsafe fn gelu_grad_v<S: Simd>(kind: GeluKind, x: S::V) -> S::V {
    match kind {
        GeluKind::Erf if S::FAST_LUT32 => phi::dgelu_pw::<S>(x),
        GeluKind::Erf if S::FAST_LUT8 => phi::dgelu_pw8::<S>(x),
        GeluKind::Erf => {
            // Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π).
            let pdf = S::mul(
                simd::exp::<S>(S::mul(S::mul(x, x), S::splat(-0.5))),
                S::splat(INV_SQRT_2PI as f32),
            );
            let phi = S::div(
                S::splat(1.0),
                S::add(S::splat(1.0), phi::phi_logistic_e::<S>(x)),
            );
            S::fma(x, pdf, phi)
        }
        GeluKind::Tanh => {
            // Beyond |x| = 30, gelu' is exactly 1 or 0 in f32; clamping keeps x²·u' finite (no
            // 0·∞). Selects, not min/max, so NaN passes through.
            let lim = S::splat(30.0);
            let x = S::select_gt(x, lim, lim, x);
            let x = S::select_lt(x, S::sub(S::splat(0.0), lim), S::sub(S::splat(0.0), lim), x);
            let x2 = S::mul(x, x);
            let u = S::mul(x, S::fma(x2, S::splat(C_TANH3), S::splat(C_TANH)));
            let du = S::fma(x2, S::splat(C_TANH3D), S::splat(C_TANH));
            let e = simd::exp::<S>(S::mul(u, S::splat(-2.0)));
            let one = S::splat(1.0);
            let s = S::div(one, S::add(one, e));
            // σ + 2x·σ(1−σ)·u'
            let t = S::mul(S::mul(S::add(x, x), s), S::sub(one, s));
            S::fma(t, du, s)
        }
    }
}

/// `gelu` as a [`Map1`]; the match on the kind folds away in each monomorphised loop above.
#[derive(Clone, Copy)]
struct FwdOp(GeluKind);

impl Map1 for FwdOp {
    #[inline(always)]
    unsafe fn f<S: Simd>(self, x: S::V) -> S::V {
        gelu_v::<S>(self.0, x)
    }
}

/// `dy·gelu'(x)` as a [`Map2`].
#[derive(Clone, Copy)]
struct BwdOp(GeluKind);

impl Map2 for BwdOp {
    #[inline(always)]
    unsafe fn f<S: Simd>(self, x: S::V, dy: S::V) -> S::V {
        S::mul(dy, gelu_grad_v::<S>(self.0, x))
    }
}

pub(super) struct Fwd<'a> {
    pub(super) kind: GeluKind,
    /// Streaming stores for `y` (the whole output, not this chunk, is larger than L2).
    pub(super) stream: bool,
    pub(super) x: &'a [f32],
    pub(super) y: &'a mut [f32],
}

impl Kernel for Fwd<'_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        match self.kind {
            GeluKind::Erf => map1::<S, _>(self.x, self.y, FwdOp(GeluKind::Erf), self.stream),
            GeluKind::Tanh => map1::<S, _>(self.x, self.y, FwdOp(GeluKind::Tanh), self.stream),
        }
    }
}

pub(super) struct Bwd<'a> {
    pub(super) kind: GeluKind,
    /// Streaming stores for `dx` (as in [`Fwd`]).
    pub(super) stream: bool,
    pub(super) x: &'a [f32],
    pub(super) dy: &'a [f32],
    pub(super) dx: &'a mut [f32],
}

impl Kernel for Bwd<'_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        match self.kind {
            GeluKind::Erf => {
                map2::<S, _>(self.x, self.dy, self.dx, BwdOp(GeluKind::Erf), self.stream)
            }
            GeluKind::Tanh => {
                map2::<S, _>(self.x, self.dy, self.dx, BwdOp(GeluKind::Tanh), self.stream)
            }
        }
    }
}

pub(super) struct BiasFwd<'a> {
    pub(super) kind: GeluKind,
    pub(super) x: &'a [f32],
    pub(super) bias: &'a [f32],
    pub(super) pre: &'a mut [f32],
    pub(super) y: &'a mut [f32],
}

impl Kernel for BiasFwd<'_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        let n = self.bias.len();
        let rows = self.x.chunks_exact(n);
        let pres = self.pre.chunks_exact_mut(n);
        let ys = self.y.chunks_exact_mut(n);
        for ((xr, pr), yr) in rows.zip(pres).zip(ys) {
            vec_loop!(j in n, S::LANES => {
                let p = S::add(
                    load_or_pad::<S>(xr, j, 0.0),
                    load_or_pad::<S>(self.bias, j, 0.0),
                );
                store_part::<S>(pr, j, p);
                store_part::<S>(yr, j, gelu_v::<S>(self.kind, p));
            });
        }
    }
}
