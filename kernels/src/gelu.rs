//! GELU forward and backward, exact (erf) and tanh forms, and fused bias + GELU.
//!
//! erf form: `gelu(x) = x·Φ(x) = 0.5·x·(1 + erf(x/√2))`, `gelu'(x) = Φ(x) + x·φ(x)`.
//! tanh form: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
//! The scalar reference computes erf and tanh in f64 through `libm`.
//!
//! The erf form on the vector paths, per vector of 16 (AVX-512) or 8/4 lanes:
//! - AVX-512 (one-instruction 32-entry lookups, `vpermt2ps`): `Φ` and `gelu'` each as a
//!   degree-6 polynomial on 32 intervals of width ½ over [−8, 8) (`simd::phi_pw`,
//!   `simd::dgelu_pw`): 7 operations of range reduction, 7 lookups, 6 FMAs, one multiply; absolute
//!   error ≤ 6e-8 for `Φ`, ≤ 1.1e-7 for `gelu'` (measured over a dense grid, rounding included).
//! - AVX2, portable, NEON: `Φ = 1/(1 + 2^(x·s(x²)))` (`simd::phi_logistic_e`): a degree-10
//!   polynomial by Estrin (10 FMAs + 3 multiplies), a degree-6 `2ᵗ` (6 FMAs + 2 multiplies), one
//!   division; absolute error in `Φ` below 1e-7. `gelu' = Φ + x·φ` with `φ` from `exp`.
//!
//! (Before: `simd::phi`, both an erf polynomial and an exp-based erfc for every lane, 24 FMAs
//! and about 45 operations per vector.)
//!
//! The tanh form is computed without cancellation as `x·σ(2u)` (`½(1 + tanh u) = σ(2u)`), with
//! its derivative `σ + 2x·σ(1−σ)·u'`. Calls that move at least [`simd::STREAM_MIN_BYTES`]
//! write their output with streaming stores. Inputs of at least [`simd::PAR_MIN_ELEMS`] elements are
//! split over rayon in fixed chunks (each element computed once, by the same code whatever the
//! pool size).

use crate::dispatch::{active, Isa};
use crate::simd::{
    self, dispatch, load_or_pad, map1, map2, store_part, vec_loop, Kernel, Map1, Map2, Simd,
};
use rayon::prelude::*;

/// Which GELU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeluKind {
    /// `0.5·x·(1 + erf(x/√2))`: the published BERT checkpoints and HF `gelu`.
    Erf,
    /// `0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))`: HF `gelu_new`.
    Tanh,
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const INV_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Scalar GELU of one value (reference).
pub fn gelu_scalar(kind: GeluKind, x: f32) -> f32 {
    let x = x as f64;
    let y = match kind {
        GeluKind::Erf => 0.5 * x * (1.0 + libm::erf(x * INV_SQRT_2)),
        GeluKind::Tanh => 0.5 * x * (1.0 + libm::tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))),
    };
    y as f32
}

/// Scalar derivative of GELU at one value (reference).
pub fn gelu_grad_scalar(kind: GeluKind, x: f32) -> f32 {
    let x = x as f64;
    let d = match kind {
        GeluKind::Erf => {
            let cdf = 0.5 * (1.0 + libm::erf(x * INV_SQRT_2));
            let pdf = INV_SQRT_2PI * (-0.5 * x * x).exp();
            cdf + x * pdf
        }
        GeluKind::Tanh => {
            let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
            let t = libm::tanh(u);
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
        }
    };
    d as f32
}

/// `y[i] = gelu(x[i])`.
pub fn forward(kind: GeluKind, x: &[f32], y: &mut [f32]) {
    forward_with(active(), kind, x, y)
}

/// [`forward`] on a chosen path.
pub fn forward_with(isa: Isa, kind: GeluKind, x: &[f32], y: &mut [f32]) {
    assert_eq!(
        x.len(),
        y.len(),
        "gelu forward: x has {} elements, y {}",
        x.len(),
        y.len()
    );
    if isa == Isa::Scalar {
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = gelu_scalar(kind, xi);
        }
        return;
    }
    let stream = simd::stream_output(x.len(), y.len());
    if simd::parallel(x.len()) {
        x.par_chunks(simd::PAR_CHUNK_ELEMS)
            .zip(y.par_chunks_mut(simd::PAR_CHUNK_ELEMS))
            .for_each(|(x, y)| forward_chunk(isa, kind, x, y, stream));
    } else {
        forward_chunk(isa, kind, x, y, stream);
    }
}

fn forward_chunk(isa: Isa, kind: GeluKind, x: &[f32], y: &mut [f32], stream: bool) {
    if let Err(k) = dispatch(isa, Fwd { kind, stream, x, y }) {
        for (yi, &xi) in k.y.iter_mut().zip(k.x) {
            *yi = gelu_scalar(kind, xi);
        }
    }
}

const C_TANH: f32 = SQRT_2_OVER_PI as f32;
const C_TANH3: f32 = (SQRT_2_OVER_PI * 0.044715) as f32;
const C_TANH3D: f32 = (SQRT_2_OVER_PI * 3.0 * 0.044715) as f32;

/// `gelu(x)` on one vector.
#[inline(always)]
unsafe fn gelu_v<S: Simd>(kind: GeluKind, x: S::V) -> S::V {
    match kind {
        // x·Φ(x) by the piecewise table where lookups are one instruction, else
        // x·Φ(x) = x / (1 + 2^(x·s(x²)·log₂e)).
        GeluKind::Erf if S::FAST_LUT32 => S::mul(x, simd::phi_pw::<S>(x)),
        GeluKind::Erf => S::div(x, S::add(S::splat(1.0), simd::phi_logistic_e::<S>(x))),
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
        GeluKind::Erf if S::FAST_LUT32 => simd::dgelu_pw::<S>(x),
        GeluKind::Erf => {
            // Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π).
            let pdf = S::mul(
                simd::exp::<S>(S::mul(S::mul(x, x), S::splat(-0.5))),
                S::splat(INV_SQRT_2PI as f32),
            );
            let phi = S::div(
                S::splat(1.0),
                S::add(S::splat(1.0), simd::phi_logistic_e::<S>(x)),
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

struct Fwd<'a> {
    kind: GeluKind,
    /// Streaming stores for `y` (the whole output, not this chunk, is larger than L2).
    stream: bool,
    x: &'a [f32],
    y: &'a mut [f32],
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

struct Bwd<'a> {
    kind: GeluKind,
    /// Streaming stores for `dx` (as in [`Fwd`]).
    stream: bool,
    x: &'a [f32],
    dy: &'a [f32],
    dx: &'a mut [f32],
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

struct BiasFwd<'a> {
    kind: GeluKind,
    x: &'a [f32],
    bias: &'a [f32],
    pre: &'a mut [f32],
    y: &'a mut [f32],
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

/// `dx[i] = dy[i] · gelu'(x[i])` (overwrites dx).
pub fn backward(kind: GeluKind, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    backward_with(active(), kind, x, dy, dx)
}

/// [`backward`] on a chosen path.
pub fn backward_with(isa: Isa, kind: GeluKind, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        x.len() == dy.len() && x.len() == dx.len(),
        "gelu backward: x {}, dy {}, dx {} elements",
        x.len(),
        dy.len(),
        dx.len()
    );
    if isa == Isa::Scalar {
        for i in 0..x.len() {
            dx[i] = dy[i] * gelu_grad_scalar(kind, x[i]);
        }
        return;
    }
    // x and dy read, dx written.
    let stream = simd::stream_output(2 * dx.len(), dx.len());
    if simd::parallel(x.len()) {
        let c = simd::PAR_CHUNK_ELEMS;
        x.par_chunks(c)
            .zip(dy.par_chunks(c))
            .zip(dx.par_chunks_mut(c))
            .for_each(|((x, dy), dx)| backward_chunk(isa, kind, x, dy, dx, stream));
    } else {
        backward_chunk(isa, kind, x, dy, dx, stream);
    }
}

fn backward_chunk(isa: Isa, kind: GeluKind, x: &[f32], dy: &[f32], dx: &mut [f32], stream: bool) {
    let k = Bwd {
        kind,
        stream,
        x,
        dy,
        dx,
    };
    if let Err(k) = dispatch(isa, k) {
        for i in 0..k.x.len() {
            k.dx[i] = k.dy[i] * gelu_grad_scalar(kind, k.x[i]);
        }
    }
}

/// Fused bias + GELU over rows of `bias.len()`: `pre = x + bias` (written to `pre`, which the
/// backward needs) and `y = gelu(pre)`.
pub fn bias_forward(kind: GeluKind, x: &[f32], bias: &[f32], pre: &mut [f32], y: &mut [f32]) {
    bias_forward_with(active(), kind, x, bias, pre, y)
}

/// [`bias_forward`] on a chosen path.
pub fn bias_forward_with(
    isa: Isa,
    kind: GeluKind,
    x: &[f32],
    bias: &[f32],
    pre: &mut [f32],
    y: &mut [f32],
) {
    let n = bias.len();
    assert!(
        n > 0 && x.len().is_multiple_of(n) && pre.len() == x.len() && y.len() == x.len(),
        "bias gelu: x {} elements is not rows of bias {}, or pre {} / y {} differ",
        x.len(),
        n,
        pre.len(),
        y.len()
    );
    if isa == Isa::Scalar {
        for (r, row) in x.chunks_exact(n).enumerate() {
            for j in 0..n {
                pre[r * n + j] = row[j] + bias[j];
            }
        }
        return forward_with(isa, kind, &pre[..], y);
    }
    let run = |x: &[f32], pre: &mut [f32], y: &mut [f32]| {
        let k = BiasFwd {
            kind,
            x,
            bias,
            pre,
            y,
        };
        if dispatch(isa, k).is_err() {
            unreachable!("scalar handled above");
        }
    };
    if simd::parallel(x.len()) {
        let c = simd::rows_per_chunk(n) * n;
        x.par_chunks(c)
            .zip(pre.par_chunks_mut(c))
            .zip(y.par_chunks_mut(c))
            .for_each(|((x, pre), y)| run(x, pre, y));
    } else {
        run(x, pre, y);
    }
}
