//! LayerNorm over the last axis: `y = (x − mean)·rstd·gamma + beta`, `rstd = 1/√(var + eps)`
//! with the biased variance (as BERT, PyTorch and TF compute it).
//!
//! The forward saves `mean` and `rstd` per row for the backward. The backward writes the input
//! gradient and the weight and bias gradients summed over rows.
//!
//! Vector paths: the row mean and variance come from a corrected two-pass scheme in f32
//! (`μ₀ = Σx/n`, then `d = x − μ₀`, `μ = μ₀ + Σd/n`, `var = max(Σd²/n − (Σd/n)², 0)`), so a
//! constant row gets exactly `x − μ = 0` (and `y = beta`, never NaN). The backward accumulates
//! `dgamma`, `dbeta` per fixed chunk of rows
//! ([`simd::rows_per_chunk`](crate::simd::rows_per_chunk)) and adds the chunk partials in chunk
//! order, so the result does not depend on the number of threads.
//!
//! This file holds the API and the f64 scalar reference; the vector kernels are in `vector`.

mod vector;

use crate::dispatch::{active, Isa};
use vector::{backward_simd, forward_simd};

fn rows_of(x: usize, cols: usize, what: &str) -> usize {
    assert!(cols > 0, "{what}: zero columns");
    assert!(
        x.is_multiple_of(cols),
        "{what}: {x} elements are not whole rows of {cols}"
    );
    x / cols
}

/// The forward's shape checks for `x` elements in rows of `cols`: returns the rows; panics
/// (naming `what`) unless `beta` has `cols`, `y` `x`, and `mean` and `rstd` one per row.
fn check_forward(
    what: &str,
    x: usize,
    cols: usize,
    beta: &[f32],
    y: &[f32],
    mean: &[f32],
    rstd: &[f32],
) -> usize {
    let rows = rows_of(x, cols, what);
    assert!(
        beta.len() == cols && y.len() == x && mean.len() == rows && rstd.len() == rows,
        "{what}: beta {}, y {}, mean {}, rstd {} do not fit {rows} rows of {cols}",
        beta.len(),
        y.len(),
        mean.len(),
        rstd.len()
    );
    rows
}

/// Forward. `gamma`, `beta`: `cols` each; `mean`, `rstd`: one per row.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    forward_with(active(), x, gamma, beta, eps, y, mean, rstd)
}

/// [`forward`] on a chosen path.
#[allow(clippy::too_many_arguments)]
pub fn forward_with(
    isa: Isa,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    let cols = gamma.len();
    let rows = check_forward("layernorm forward", x.len(), cols, beta, y, mean, rstd);
    if isa != Isa::Scalar {
        return forward_simd(isa, x, None, gamma, beta, eps, y, mean, rstd);
    }
    for r in 0..rows {
        let xr = &x[r * cols..(r + 1) * cols];
        let mut s = 0.0f64;
        for &v in xr {
            s += v as f64;
        }
        let mu = s / cols as f64;
        let mut ss = 0.0f64;
        for &v in xr {
            let d = v as f64 - mu;
            ss += d * d;
        }
        let var = ss / cols as f64;
        let rs = 1.0 / (var + eps as f64).sqrt();
        mean[r] = mu as f32;
        rstd[r] = rs as f32;
        let yr = &mut y[r * cols..(r + 1) * cols];
        for j in 0..cols {
            yr[j] = (((xr[j] as f64 - mu) * rs) as f32) * gamma[j] + beta[j];
        }
    }
}

/// Backward. Writes `dx` and overwrites `dgamma`, `dbeta` with sums over rows.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    backward_with(active(), dy, x, gamma, mean, rstd, dx, dgamma, dbeta)
}

/// [`backward`] on a chosen path.
#[allow(clippy::too_many_arguments)]
pub fn backward_with(
    isa: Isa,
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let cols = gamma.len();
    let rows = rows_of(x.len(), cols, "layernorm backward");
    assert!(
        dy.len() == x.len()
            && dx.len() == x.len()
            && mean.len() == rows
            && rstd.len() == rows
            && dgamma.len() == cols
            && dbeta.len() == cols,
        "layernorm backward: dy {}, dx {}, mean {}, rstd {}, dgamma {}, dbeta {} do not fit {rows} rows of {cols}",
        dy.len(),
        dx.len(),
        mean.len(),
        rstd.len(),
        dgamma.len(),
        dbeta.len()
    );
    if isa != Isa::Scalar {
        return backward_simd(isa, dy, x, gamma, mean, rstd, dx, dgamma, dbeta);
    }
    let mut dg = vec![0.0f64; cols];
    let mut db = vec![0.0f64; cols];
    for r in 0..rows {
        let xr = &x[r * cols..(r + 1) * cols];
        let dyr = &dy[r * cols..(r + 1) * cols];
        let mu = mean[r] as f64;
        let rs = rstd[r] as f64;
        // xhat = (x - mu) * rs; g = dy * gamma
        // dx = rs * (g - mean(g) - xhat * mean(g * xhat))
        let mut sum_g = 0.0f64;
        let mut sum_gx = 0.0f64;
        for j in 0..cols {
            let xhat = (xr[j] as f64 - mu) * rs;
            let g = dyr[j] as f64 * gamma[j] as f64;
            sum_g += g;
            sum_gx += g * xhat;
            dg[j] += dyr[j] as f64 * xhat;
            db[j] += dyr[j] as f64;
        }
        let mg = sum_g / cols as f64;
        let mgx = sum_gx / cols as f64;
        let dxr = &mut dx[r * cols..(r + 1) * cols];
        for j in 0..cols {
            let xhat = (xr[j] as f64 - mu) * rs;
            let g = dyr[j] as f64 * gamma[j] as f64;
            dxr[j] = (rs * (g - mg - xhat * mgx)) as f32;
        }
    }
    for j in 0..cols {
        dgamma[j] = dg[j] as f32;
        dbeta[j] = db[j] as f32;
    }
}

/// Residual add fused with LayerNorm (BERT's post-LN `LayerNorm(x + sublayer)`): writes
/// `sum = x + residual` (the backward's input) and `y = LayerNorm(sum)`.
#[allow(clippy::too_many_arguments)]
pub fn residual_forward(
    x: &[f32],
    residual: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    sum: &mut [f32],
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    residual_forward_with(active(), x, residual, gamma, beta, eps, sum, y, mean, rstd)
}

/// [`residual_forward`] on a chosen path.
#[allow(clippy::too_many_arguments)]
pub fn residual_forward_with(
    isa: Isa,
    x: &[f32],
    residual: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    sum: &mut [f32],
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    assert!(
        residual.len() == x.len() && sum.len() == x.len(),
        "residual layernorm: x {}, residual {}, sum {} elements",
        x.len(),
        residual.len(),
        sum.len()
    );
    if isa == Isa::Scalar {
        for i in 0..x.len() {
            sum[i] = x[i] + residual[i];
        }
        return forward_with(isa, &sum[..], gamma, beta, eps, y, mean, rstd);
    }
    check_forward(
        "residual layernorm",
        x.len(),
        gamma.len(),
        beta,
        y,
        mean,
        rstd,
    );
    forward_simd(
        isa,
        x,
        Some((residual, sum)),
        gamma,
        beta,
        eps,
        y,
        mean,
        rstd,
    )
}
