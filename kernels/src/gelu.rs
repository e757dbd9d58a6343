//! GELU forward and backward, exact (erf) and tanh forms, and fused bias + GELU.
//!
//! erf form: `gelu(x) = x·Φ(x) = 0.5·x·(1 + erf(x/√2))`, `gelu'(x) = Φ(x) + x·φ(x)`.
//! tanh form: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
//! The scalar reference computes erf and tanh in f64 through `libm`.

use crate::dispatch::{active, Isa};

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
    match isa {
        _ => {
            for (yi, &xi) in y.iter_mut().zip(x) {
                *yi = gelu_scalar(kind, xi);
            }
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
    match isa {
        _ => {
            for i in 0..x.len() {
                dx[i] = dy[i] * gelu_grad_scalar(kind, x[i]);
            }
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
    for (r, row) in x.chunks_exact(n).enumerate() {
        for j in 0..n {
            pre[r * n + j] = row[j] + bias[j];
        }
    }
    forward_with(isa, kind, &pre[..], y);
}
