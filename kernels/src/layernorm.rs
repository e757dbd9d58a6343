//! LayerNorm over the last axis: `y = (x − mean)·rstd·gamma + beta`, `rstd = 1/√(var + eps)`
//! with the biased variance (as BERT, PyTorch and TF compute it).
//!
//! The forward saves `mean` and `rstd` per row for the backward. The backward writes the input
//! gradient and the weight and bias gradients summed over rows.
//!
//! Vector paths: the row mean and variance come from a corrected two-pass scheme in f32
//! (`μ₀ = Σx/n`, then `d = x − μ₀`, `μ = μ₀ + Σd/n`, `var = max(Σd²/n − (Σd/n)², 0)`), so a
//! constant row gets exactly `x − μ = 0` (and `y = beta`, never NaN). The backward accumulates
//! `dgamma`, `dbeta` per fixed chunk of rows ([`simd::rows_per_chunk`]) and adds the chunk
//! partials in chunk order, so the result does not depend on the number of threads.

use crate::dispatch::{active, Isa};
use crate::simd::{self, dispatch, load_or_pad, store_part, vec_loop, vec_loop_out, Kernel, Simd};
use rayon::prelude::*;

/// LayerNorm forward over a block of rows (optionally adding `residual` first, into `sum`).
struct Fwd<'a> {
    x: &'a [f32],
    residual: Option<(&'a [f32], &'a mut [f32])>,
    gamma: &'a [f32],
    beta: &'a [f32],
    eps: f32,
    /// Streaming stores for `y` (the whole output is larger than L2).
    stream: bool,
    y: &'a mut [f32],
    mean: &'a mut [f32],
    rstd: &'a mut [f32],
}

impl Kernel for Fwd<'_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        let cols = self.gamma.len();
        let l = S::LANES;
        let mut residual = self.residual;
        for (r, yr) in self.y.chunks_exact_mut(cols).enumerate() {
            let span = r * cols..(r + 1) * cols;
            // The row to normalise: x, or x + residual written to `sum`.
            let xr: &[f32] = match residual.as_mut() {
                Some((res, sum)) => {
                    let (xr, rr) = (&self.x[span.clone()], &res[span.clone()]);
                    let sr = &mut sum[span.clone()];
                    vec_loop!(j in cols, l => {
                        let v = S::add(load_or_pad::<S>(xr, j, 0.0), load_or_pad::<S>(rr, j, 0.0));
                        store_part::<S>(sr, j, v);
                    });
                    &sum[span]
                }
                None => &self.x[span],
            };
            let inv_n = 1.0 / cols as f32;
            let mu0 = simd::sum::<S>(xr) * inv_n;
            // Four accumulators each (tail padded with μ₀, so d = 0 there).
            let (sd, sdd) = simd::sum_dev::<S>(xr, mu0);
            let md = sd * inv_n;
            let mu = mu0 + md;
            let var = (sdd * inv_n - md * md).max(0.0);
            let rs = (1.0 / (var as f64 + self.eps as f64).sqrt()) as f32;
            self.mean[r] = mu;
            self.rstd[r] = rs;
            let (muv, rsv) = (S::splat(mu), S::splat(rs));
            // The input two rows ahead, fetched while this row is written (a line per vector).
            let ax = self.x.get((r + 2) * cols..(r + 3) * cols).unwrap_or(&[]);
            vec_loop_out!(S, j in yr, self.stream => {
                simd::prefetch_at::<S>(ax, j);
                let xh = S::mul(S::sub(load_or_pad::<S>(xr, j, 0.0), muv), rsv);
                let g = load_or_pad::<S>(self.gamma, j, 0.0);
                let b = load_or_pad::<S>(self.beta, j, 0.0);
                S::fma(xh, g, b)
            });
        }
        if self.stream {
            S::fence();
        }
    }
}

/// Runs [`Fwd`] on a vector path, over fixed row chunks in parallel when large.
#[allow(clippy::too_many_arguments)]
fn forward_simd(
    isa: Isa,
    x: &[f32],
    residual: Option<(&[f32], &mut [f32])>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    let cols = gamma.len();
    // x (and the residual) read, y (and the sum) written.
    let io = if residual.is_some() { 2 } else { 1 } * y.len();
    let stream = simd::stream_output(io, io);
    let run = |x: &[f32], residual, y: &mut [f32], mean: &mut [f32], rstd: &mut [f32]| {
        let k = Fwd {
            x,
            residual,
            gamma,
            beta,
            eps,
            stream,
            y,
            mean,
            rstd,
        };
        if dispatch(isa, k).is_err() {
            unreachable!("scalar is handled by the callers");
        }
    };
    if !simd::parallel(x.len()) {
        return run(x, residual, y, mean, rstd);
    }
    let rpc = simd::rows_per_chunk(cols);
    let c = rpc * cols;
    let stats = mean.par_chunks_mut(rpc).zip(rstd.par_chunks_mut(rpc));
    match residual {
        Some((res, sum)) => x
            .par_chunks(c)
            .zip(res.par_chunks(c))
            .zip(sum.par_chunks_mut(c))
            .zip(y.par_chunks_mut(c))
            .zip(stats)
            .for_each(|((((x, res), sum), y), (m, r))| run(x, Some((res, sum)), y, m, r)),
        None => x
            .par_chunks(c)
            .zip(y.par_chunks_mut(c))
            .zip(stats)
            .for_each(|((x, y), (m, r))| run(x, None, y, m, r)),
    }
}

/// LayerNorm backward over a block of rows; `dgamma`, `dbeta` receive this block's sums.
struct Bwd<'a> {
    dy: &'a [f32],
    x: &'a [f32],
    gamma: &'a [f32],
    mean: &'a [f32],
    rstd: &'a [f32],
    /// Streaming stores for `dx` (as in [`Fwd`]).
    stream: bool,
    dx: &'a mut [f32],
    dgamma: &'a mut [f32],
    dbeta: &'a mut [f32],
}

impl Kernel for Bwd<'_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        let cols = self.gamma.len();
        let l = S::LANES;
        self.dgamma.fill(0.0);
        self.dbeta.fill(0.0);
        for (r, dxr) in self.dx.chunks_exact_mut(cols).enumerate() {
            let xr = &self.x[r * cols..(r + 1) * cols];
            let dyr = &self.dy[r * cols..(r + 1) * cols];
            let (muv, rsv) = (S::splat(self.mean[r]), S::splat(self.rstd[r]));
            let (mut sg, mut sgx) = (S::splat(0.0), S::splat(0.0));
            // dy and x two rows ahead, fetched while this row is computed (a line per vector).
            let ahead = (r + 2) * cols..(r + 3) * cols;
            let ax = self.x.get(ahead.clone()).unwrap_or(&[]);
            let ady = self.dy.get(ahead).unwrap_or(&[]);
            vec_loop!(j in cols, l => {
                simd::prefetch_at::<S>(ax, j);
                simd::prefetch_at::<S>(ady, j);
                // Tail lanes: dy = 0 makes g = 0 and adds nothing to any sum.
                let xh = S::mul(S::sub(load_or_pad::<S>(xr, j, 0.0), muv), rsv);
                let dy = load_or_pad::<S>(dyr, j, 0.0);
                let g = S::mul(dy, load_or_pad::<S>(self.gamma, j, 0.0));
                sg = S::add(sg, g);
                sgx = S::fma(g, xh, sgx);
                let dgv = S::fma(dy, xh, load_or_pad::<S>(self.dgamma, j, 0.0));
                store_part::<S>(self.dgamma, j, dgv);
                let dbv = S::add(dy, load_or_pad::<S>(self.dbeta, j, 0.0));
                store_part::<S>(self.dbeta, j, dbv);
            });
            let inv_n = 1.0 / cols as f32;
            let mg = S::splat(S::reduce_sum(sg) * inv_n);
            let mgx = S::splat(S::reduce_sum(sgx) * inv_n);
            vec_loop_out!(S, j in dxr, self.stream => {
                let xh = S::mul(S::sub(load_or_pad::<S>(xr, j, 0.0), muv), rsv);
                let g = S::mul(
                    load_or_pad::<S>(dyr, j, 0.0),
                    load_or_pad::<S>(self.gamma, j, 0.0),
                );
                // rs·(g − mean(g) − x̂·mean(g·x̂))
                let t = S::sub(S::sub(g, mg), S::mul(xh, mgx));
                S::mul(rsv, t)
            });
        }
        if self.stream {
            S::fence();
        }
    }
}

fn rows_of(x: usize, cols: usize, what: &str) -> usize {
    assert!(cols > 0, "{what}: zero columns");
    assert!(
        x.is_multiple_of(cols),
        "{what}: {x} elements are not whole rows of {cols}"
    );
    x / cols
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
    let rows = rows_of(x.len(), cols, "layernorm forward");
    assert!(
        beta.len() == cols && y.len() == x.len() && mean.len() == rows && rstd.len() == rows,
        "layernorm forward: beta {}, y {}, mean {}, rstd {} do not fit {rows} rows of {cols}",
        beta.len(),
        y.len(),
        mean.len(),
        rstd.len()
    );
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
    let cols = gamma.len();
    let rows = rows_of(x.len(), cols, "residual layernorm");
    assert!(
        beta.len() == cols && y.len() == x.len() && mean.len() == rows && rstd.len() == rows,
        "residual layernorm: beta {}, y {}, mean {}, rstd {} do not fit {rows} rows of {cols}",
        beta.len(),
        y.len(),
        mean.len(),
        rstd.len()
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

/// One chunk of the backward's inputs as the zipped iterators yield it:
/// `(((((dy, x), mean), rstd), dx), [dgamma | dbeta] partial)`.
type BwdChunk<'a> = (
    (
        (((&'a [f32], &'a [f32]), &'a [f32]), &'a [f32]),
        &'a mut [f32],
    ),
    &'a mut [f32],
);

/// Runs [`Bwd`] over fixed chunks of rows (in parallel when large) and adds the chunks'
/// `dgamma`/`dbeta` partials in chunk order.
#[allow(clippy::too_many_arguments)]
fn backward_simd(
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
    let rows = mean.len();
    let rpc = simd::rows_per_chunk(cols);
    let c = rpc * cols;
    let chunks = rows.div_ceil(rpc);
    // dy and x read, dx written.
    let stream = simd::stream_output(2 * dx.len(), dx.len());
    // Per chunk: [dgamma | dbeta].
    let mut parts = vec![0.0f32; chunks * 2 * cols];
    let run = |(((((dy, x), m), r), dx), p): BwdChunk<'_>| {
        let (dgamma, dbeta) = p.split_at_mut(cols);
        let k = Bwd {
            dy,
            x,
            gamma,
            mean: m,
            rstd: r,
            stream,
            dx,
            dgamma,
            dbeta,
        };
        if dispatch(isa, k).is_err() {
            unreachable!("scalar is handled by the caller");
        }
    };
    if simd::parallel(x.len()) {
        dy.par_chunks(c)
            .zip(x.par_chunks(c))
            .zip(mean.par_chunks(rpc))
            .zip(rstd.par_chunks(rpc))
            .zip(dx.par_chunks_mut(c))
            .zip(parts.par_chunks_mut(2 * cols))
            .for_each(run);
    } else {
        dy.chunks(c)
            .zip(x.chunks(c))
            .zip(mean.chunks(rpc))
            .zip(rstd.chunks(rpc))
            .zip(dx.chunks_mut(c))
            .zip(parts.chunks_mut(2 * cols))
            .for_each(run);
    }
    dgamma.fill(0.0);
    dbeta.fill(0.0);
    for p in parts.chunks_exact(2 * cols) {
        for j in 0..cols {
            dgamma[j] += p[j];
            dbeta[j] += p[cols + j];
        }
    }
}
