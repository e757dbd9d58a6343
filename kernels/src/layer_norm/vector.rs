//! LayerNorm's vector kernels and their drivers over fixed chunks of rows (see the module doc of
//! [`layer_norm`](super)).

use crate::dispatch::Isa;
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
pub(super) fn forward_simd(
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
pub(super) fn backward_simd(
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
