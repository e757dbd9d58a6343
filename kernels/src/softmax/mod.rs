//! Row softmax, log-softmax and their backward passes.
//!
//! Every row is shifted by its maximum before `exp`, so large logits give no overflow.
//!
//! The vector paths keep row sums in f32 vector accumulators (relative error about
//! `(cols/lanes + log₂ lanes)·2⁻²⁴`) and use `simd::exp`; per-row scalars (`ln` of the
//! sum) are formed in f64. Inputs of at least
//! [`simd::PAR_MIN_ELEMS`](crate::simd::PAR_MIN_ELEMS) elements are split over rayon in fixed
//! chunks of rows, so results do not depend on the pool size.
//!
//! This file holds the API and the f64 scalar reference; the vector kernels are in `vector`.
//! Cross-entropy from logits, which shares [`logsumexp`], is in [`crate::cross_entropy`].

mod vector;

use crate::dispatch::{active, Isa};
use vector::{rows_simd, RowOp};

pub(crate) fn check_rows(len: usize, cols: usize, what: &str) -> usize {
    assert!(cols > 0, "{what}: zero columns");
    assert!(
        len.is_multiple_of(cols),
        "{what}: {len} elements are not whole rows of {cols}"
    );
    len / cols
}

/// The forward's checks (`x` whole rows of `cols`, `y` as long); returns the rows.
fn check_xy(x: &[f32], cols: usize, y: &[f32], what: &str) -> usize {
    let rows = check_rows(x.len(), cols, what);
    assert_eq!(
        x.len(),
        y.len(),
        "{what}: x {} elements, y {}",
        x.len(),
        y.len()
    );
    rows
}

/// The backward's checks (`y` whole rows of `cols`, `dy` and `dx` as long); returns the rows.
fn check_backward(y: &[f32], dy: &[f32], cols: usize, dx: &[f32], what: &str) -> usize {
    let rows = check_rows(y.len(), cols, what);
    assert!(
        dy.len() == y.len() && dx.len() == y.len(),
        "{what}: y {}, dy {}, dx {} elements",
        y.len(),
        dy.len(),
        dx.len()
    );
    rows
}

/// `y = softmax(x)` per row of `cols`.
pub fn softmax_rows(x: &[f32], cols: usize, y: &mut [f32]) {
    softmax_rows_with(active(), x, cols, y)
}

/// [`softmax_rows`] on a chosen path.
pub fn softmax_rows_with(isa: Isa, x: &[f32], cols: usize, y: &mut [f32]) {
    let rows = check_xy(x, cols, y, "softmax");
    if isa != Isa::Scalar {
        return rows_simd(isa, RowOp::Softmax, cols, x, &[], y);
    }
    for r in 0..rows {
        let xr = &x[r * cols..(r + 1) * cols];
        let yr = &mut y[r * cols..(r + 1) * cols];
        let m = xr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0.0f64;
        for j in 0..cols {
            let e = ((xr[j] - m) as f64).exp();
            yr[j] = e as f32;
            s += e;
        }
        let inv = 1.0 / s;
        for v in yr.iter_mut() {
            *v = (*v as f64 * inv) as f32;
        }
    }
}

/// `y = log_softmax(x)` per row of `cols`.
pub fn log_softmax_rows(x: &[f32], cols: usize, y: &mut [f32]) {
    log_softmax_rows_with(active(), x, cols, y)
}

/// [`log_softmax_rows`] on a chosen path.
pub fn log_softmax_rows_with(isa: Isa, x: &[f32], cols: usize, y: &mut [f32]) {
    let rows = check_xy(x, cols, y, "log_softmax");
    if isa != Isa::Scalar {
        return rows_simd(isa, RowOp::LogSoftmax, cols, x, &[], y);
    }
    for r in 0..rows {
        let xr = &x[r * cols..(r + 1) * cols];
        let lse = logsumexp(xr);
        for j in 0..cols {
            y[r * cols + j] = (xr[j] as f64 - lse) as f32;
        }
    }
}

/// log Σ exp(x) of one row, in f64 (reference).
pub fn logsumexp(x: &[f32]) -> f64 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if m == f64::NEG_INFINITY {
        return m;
    }
    let s: f64 = x.iter().map(|&v| (v as f64 - m).exp()).sum();
    m + s.ln()
}

/// Softmax backward per row: `dx = y ⊙ (dy − Σ dy⊙y)`.
pub fn softmax_backward_rows(y: &[f32], dy: &[f32], cols: usize, dx: &mut [f32]) {
    softmax_backward_rows_with(active(), y, dy, cols, dx)
}

/// [`softmax_backward_rows`] on a chosen path.
pub fn softmax_backward_rows_with(isa: Isa, y: &[f32], dy: &[f32], cols: usize, dx: &mut [f32]) {
    let rows = check_backward(y, dy, cols, dx, "softmax backward");
    if isa != Isa::Scalar {
        return rows_simd(isa, RowOp::SoftmaxBwd, cols, y, dy, dx);
    }
    for r in 0..rows {
        let s = r * cols;
        let dot: f64 = (0..cols).map(|j| dy[s + j] as f64 * y[s + j] as f64).sum();
        for j in 0..cols {
            dx[s + j] = (y[s + j] as f64 * (dy[s + j] as f64 - dot)) as f32;
        }
    }
}

/// Log-softmax backward per row, from its output `y`: `dx = dy − exp(y)·Σ dy`.
pub fn log_softmax_backward_rows(y: &[f32], dy: &[f32], cols: usize, dx: &mut [f32]) {
    log_softmax_backward_rows_with(active(), y, dy, cols, dx)
}

/// [`log_softmax_backward_rows`] on a chosen path.
pub fn log_softmax_backward_rows_with(
    isa: Isa,
    y: &[f32],
    dy: &[f32],
    cols: usize,
    dx: &mut [f32],
) {
    let rows = check_backward(y, dy, cols, dx, "log_softmax backward");
    if isa != Isa::Scalar {
        return rows_simd(isa, RowOp::LogSoftmaxBwd, cols, y, dy, dx);
    }
    for r in 0..rows {
        let s = r * cols;
        let sum: f64 = dy[s..s + cols].iter().map(|&v| v as f64).sum();
        for j in 0..cols {
            dx[s + j] = (dy[s + j] as f64 - (y[s + j] as f64).exp() * sum) as f32;
        }
    }
}
