//! GELU forward and backward, exact (erf) and tanh forms, and fused bias + GELU.
//!
//! erf form: `gelu(x) = x·Φ(x) = 0.5·x·(1 + erf(x/√2))`, `gelu'(x) = Φ(x) + x·φ(x)`.
//! tanh form: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
//! The scalar reference computes erf and tanh in f64 through `libm`.
//!
//! The erf form on the vector paths, per vector of 16 (AVX-512) or 8/4 lanes:
//! - AVX-512 (one-instruction 32-entry lookups, `vpermt2ps`): `Φ` and `gelu'` each as a
//!   degree-6 polynomial on 32 intervals of width ½ over [−8, 8) (`phi::phi_pw`,
//!   `phi::dgelu_pw`, tables in `tables`): 7 operations of range reduction, 7 lookups, 6 FMAs,
//!   one multiply; absolute error ≤ 6e-8 for `Φ`, ≤ 1.1e-7 for `gelu'` (measured over a dense
//!   grid, rounding included).
//! - AVX2, portable, NEON: `Φ = 1/(1 + 2^(x·s(x²)))` (`phi::phi_logistic_e`): a degree-10
//!   polynomial by Estrin (10 FMAs + 3 multiplies), a degree-6 `2ᵗ` (6 FMAs + 2 multiplies), one
//!   division; absolute error in `Φ` below 1e-7. `gelu' = Φ + x·φ` with `φ` from `exp`.
//!
//! (Before: the erf-based `Φ` of the vector math, both an erf polynomial and an exp-based erfc
//! for every lane, 24 FMAs and about 45 operations per vector.)
//!
//! The tanh form is computed without cancellation as `x·σ(2u)` (`½(1 + tanh u) = σ(2u)`), with
//! its derivative `σ + 2x·σ(1−σ)·u'`. Calls that move at least [`simd::STREAM_MIN_BYTES`]
//! write their output with streaming stores. Inputs of at least [`simd::PAR_MIN_ELEMS`] elements are
//! split over rayon in fixed chunks (each element computed once, by the same code whatever the
//! pool size).
//!
//! This file holds the API and the scalar reference; the vector kernels are in `vector`, the
//! vector `Φ` forms in `phi`.

mod phi;
mod tables;
mod vector;

use crate::dispatch::{active, Isa};
use crate::simd::{self, dispatch};
use rayon::prelude::*;
use vector::{BiasFwd, Bwd, Fwd};

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
