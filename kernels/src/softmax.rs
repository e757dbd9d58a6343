//! Row softmax, log-softmax and their backward passes, and cross-entropy from logits fused
//! with its gradient.
//!
//! Every row is shifted by its maximum before `exp`, so large logits give no overflow.
//!
//! The vector paths keep row sums in f32 vector accumulators (relative error about
//! `(cols/lanes + log₂ lanes)·2⁻²⁴`) and use `simd::exp`; per-row scalars (`ln` of the
//! sum, the loss) are formed in f64. Inputs of at least [`simd::PAR_MIN_ELEMS`] elements are split
//! over rayon in fixed chunks of rows; the cross-entropy loss is summed per chunk and the chunk
//! sums added in chunk order, so results do not depend on the pool size.
//!
//! The vector cross-entropy pipelines its rows (see `Ce`): one pass per row sums `e^(x−m)` of
//! the current row from cache into a scratch row, takes the maximum of the next row while it
//! arrives from memory (prefetched 16 KiB ahead) and writes the previous row's gradient from its
//! scratch row (streaming stores when [`simd::stream_output`] says so, like the other
//! kernels). Each row is read from memory once and `exp` runs once per element, overlapped with
//! the memory traffic.

use crate::dispatch::{active, Isa};
use crate::simd::{self, dispatch, load_or_pad, store_part, vec_loop, Kernel, Simd};
use rayon::prelude::*;

/// Which row operation a [`Rows`] kernel applies.
#[derive(Clone, Copy)]
enum RowOp {
    Softmax,
    LogSoftmax,
    SoftmaxBwd,
    LogSoftmaxBwd,
}

/// A row kernel over `a` (and `b` for the backward passes) writing `out`.
struct Rows<'a> {
    op: RowOp,
    cols: usize,
    a: &'a [f32],
    b: &'a [f32],
    out: &'a mut [f32],
}

impl Kernel for Rows<'_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        let cols = self.cols;
        let l = S::LANES;
        for (r, out) in self.out.chunks_exact_mut(cols).enumerate() {
            let a = &self.a[r * cols..(r + 1) * cols];
            match self.op {
                RowOp::Softmax | RowOp::LogSoftmax => {
                    let m = simd::max::<S>(a);
                    let mv = S::splat(m);
                    // Σ e^(x−m), storing e^(x−m) for softmax.
                    let mut acc = S::splat(0.0);
                    vec_loop!(j in cols, l => {
                        let e = simd::exp::<S>(S::sub(load_or_pad::<S>(a, j, m), mv));
                        let e = if j + l > cols {
                            // Padded lanes hold e⁰ = 1: zero them before summing.
                            let mut b = [0.0f32; simd::MAX_LANES];
                            S::store(b.as_mut_ptr(), e);
                            b[cols - j..].fill(0.0);
                            S::load(b.as_ptr())
                        } else {
                            e
                        };
                        if let RowOp::Softmax = self.op {
                            store_part::<S>(out, j, e);
                        }
                        acc = S::add(acc, e);
                    });
                    let s = S::reduce_sum(acc);
                    if let RowOp::Softmax = self.op {
                        let inv = S::splat(1.0 / s);
                        vec_loop!(j in cols, l => {
                            store_part::<S>(out, j, S::mul(load_or_pad::<S>(out, j, 0.0), inv));
                        });
                    } else {
                        let lse = S::splat((m as f64 + (s as f64).ln()) as f32);
                        vec_loop!(j in cols, l => {
                            store_part::<S>(out, j, S::sub(load_or_pad::<S>(a, j, 0.0), lse));
                        });
                    }
                }
                RowOp::SoftmaxBwd => {
                    // a = y, b = dy: dx = y·(dy − Σ dy·y).
                    let b = &self.b[r * cols..(r + 1) * cols];
                    let mut acc = S::splat(0.0);
                    vec_loop!(j in cols, l => {
                        let p = S::mul(load_or_pad::<S>(a, j, 0.0), load_or_pad::<S>(b, j, 0.0));
                        acc = S::add(acc, p);
                    });
                    let dot = S::splat(S::reduce_sum(acc));
                    vec_loop!(j in cols, l => {
                        let y = load_or_pad::<S>(a, j, 0.0);
                        let d = S::sub(load_or_pad::<S>(b, j, 0.0), dot);
                        store_part::<S>(out, j, S::mul(y, d));
                    });
                }
                RowOp::LogSoftmaxBwd => {
                    // a = y, b = dy: dx = dy − e^y·Σ dy.
                    let b = &self.b[r * cols..(r + 1) * cols];
                    let s = S::splat(simd::sum::<S>(b));
                    vec_loop!(j in cols, l => {
                        let e = simd::exp::<S>(load_or_pad::<S>(a, j, 0.0));
                        let d = load_or_pad::<S>(b, j, 0.0);
                        store_part::<S>(out, j, S::sub(d, S::mul(e, s)));
                    });
                }
            }
        }
    }
}

/// Runs a [`Rows`] kernel on a vector path, over fixed row chunks in parallel when large.
fn rows_simd(isa: Isa, op: RowOp, cols: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
    let run = |a: &[f32], b: &[f32], out: &mut [f32]| {
        if dispatch(
            isa,
            Rows {
                op,
                cols,
                a,
                b,
                out,
            },
        )
        .is_err()
        {
            unreachable!("scalar is handled by the callers");
        }
    };
    let has_b = !b.is_empty();
    if simd::parallel(a.len()) {
        let c = simd::rows_per_chunk(cols) * cols;
        if has_b {
            a.par_chunks(c)
                .zip(b.par_chunks(c))
                .zip(out.par_chunks_mut(c))
                .for_each(|((a, b), o)| run(a, b, o));
        } else {
            a.par_chunks(c)
                .zip(out.par_chunks_mut(c))
                .for_each(|(a, o)| run(a, &[], o));
        }
    } else {
        run(a, b, out);
    }
}

fn check_rows(len: usize, cols: usize, what: &str) -> usize {
    assert!(cols > 0, "{what}: zero columns");
    assert!(
        len.is_multiple_of(cols),
        "{what}: {len} elements are not whole rows of {cols}"
    );
    len / cols
}

/// `y = softmax(x)` per row of `cols`.
pub fn softmax_rows(x: &[f32], cols: usize, y: &mut [f32]) {
    softmax_rows_with(active(), x, cols, y)
}

/// [`softmax_rows`] on a chosen path.
pub fn softmax_rows_with(isa: Isa, x: &[f32], cols: usize, y: &mut [f32]) {
    let rows = check_rows(x.len(), cols, "softmax");
    assert_eq!(
        x.len(),
        y.len(),
        "softmax: x {} elements, y {}",
        x.len(),
        y.len()
    );
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
    let rows = check_rows(x.len(), cols, "log_softmax");
    assert_eq!(
        x.len(),
        y.len(),
        "log_softmax: x {} elements, y {}",
        x.len(),
        y.len()
    );
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
    let rows = check_rows(y.len(), cols, "softmax backward");
    assert!(
        dy.len() == y.len() && dx.len() == y.len(),
        "softmax backward: y {}, dy {}, dx {} elements",
        y.len(),
        dy.len(),
        dx.len()
    );
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
    let rows = check_rows(y.len(), cols, "log_softmax backward");
    assert!(
        dy.len() == y.len() && dx.len() == y.len(),
        "log_softmax backward: y {}, dy {}, dx {} elements",
        y.len(),
        dy.len(),
        dx.len()
    );
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

/// What [`cross_entropy`] returns: the summed loss over counted rows, and how many rows counted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropy {
    /// Σ over counted rows of `−log softmax(logits)[label]`.
    pub loss_sum: f64,
    /// Rows whose label was not `ignore_index`.
    pub count: usize,
}

/// Cross-entropy of each row of `logits` (`cols` classes) against `labels` (one per row); rows
/// whose label equals `ignore_index` are skipped. If `dlogits` is given it receives the gradient
/// of `loss_sum`: `softmax(row) − onehot(label)` for counted rows, zeros for ignored rows.
///
/// # Panics
/// If a label is neither `ignore_index` nor in `0..cols` (the engine checks before calling).
pub fn cross_entropy(
    logits: &[f32],
    cols: usize,
    labels: &[i32],
    ignore_index: i32,
    dlogits: Option<&mut [f32]>,
) -> CrossEntropy {
    cross_entropy_with(active(), logits, cols, labels, ignore_index, dlogits)
}

/// [`cross_entropy`] on a chosen path.
pub fn cross_entropy_with(
    isa: Isa,
    logits: &[f32],
    cols: usize,
    labels: &[i32],
    ignore_index: i32,
    mut dlogits: Option<&mut [f32]>,
) -> CrossEntropy {
    let rows = check_rows(logits.len(), cols, "cross_entropy");
    assert_eq!(
        labels.len(),
        rows,
        "cross_entropy: {} labels for {rows} rows",
        labels.len()
    );
    if let Some(d) = dlogits.as_deref() {
        assert_eq!(
            d.len(),
            logits.len(),
            "cross_entropy: dlogits length differs from logits"
        );
    }
    for (r, &label) in labels.iter().enumerate() {
        assert!(
            label == ignore_index || (label >= 0 && (label as usize) < cols),
            "cross_entropy: label {label} at row {r} is outside 0..{cols} and is not ignore_index {ignore_index}"
        );
    }
    if isa != Isa::Scalar {
        let stream = dlogits
            .as_deref()
            .is_some_and(|d| simd::stream_output(logits.len(), d.len()));
        return cross_entropy_simd(isa, logits, cols, labels, ignore_index, dlogits, stream);
    }
    let mut out = CrossEntropy {
        loss_sum: 0.0,
        count: 0,
    };
    for r in 0..rows {
        let xr = &logits[r * cols..(r + 1) * cols];
        let label = labels[r];
        if label == ignore_index {
            if let Some(d) = dlogits.as_deref_mut() {
                d[r * cols..(r + 1) * cols].fill(0.0);
            }
            continue;
        }
        let lse = logsumexp(xr);
        out.loss_sum += lse - xr[label as usize] as f64;
        out.count += 1;
        if let Some(d) = dlogits.as_deref_mut() {
            let dr = &mut d[r * cols..(r + 1) * cols];
            for j in 0..cols {
                dr[j] = (xr[j] as f64 - lse).exp() as f32;
            }
            dr[label as usize] -= 1.0;
        }
    }
    out
}

/// How far ahead (in elements) the fused pass prefetches the next row's logits: 16 KiB, so the
/// reads from memory are in flight while the current row's `exp` runs from cache.
const PREFETCH_X: usize = 4096;
/// How far ahead the gradient row is prefetched when it is written with ordinary stores (the
/// read-for-ownership of each line then overlaps the computation too).
const PREFETCH_D: usize = 1024;

/// Rows per parallel task of [`cross_entropy`] for `cols` columns: a multiple of
/// [`simd::rows_per_chunk`] of about 2¹⁹ elements, so the row pipeline of [`Ce`] runs over many
/// rows. Fixed for a given `cols` (every row is computed the same way in any case).
fn ce_block_rows(cols: usize) -> usize {
    let rpc = simd::rows_per_chunk(cols);
    rpc * ((1usize << 19) / (rpc * cols.max(1))).max(1)
}

/// `max(x)` of one row, one vector accumulator in element order, tail padded with −∞: the same
/// operations as the max part of [`ce_pass`], so a row's maximum does not depend on which of the
/// two computed it.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
unsafe fn ce_row_max<S: Simd>(x: &[f32]) -> f32 {
    let mut mx = S::splat(f32::NEG_INFINITY);
    vec_loop!(j in x.len(), S::LANES => {
        mx = S::max(mx, load_or_pad::<S>(x, j, f32::NEG_INFINITY));
    });
    S::reduce_max(mx)
}

/// The finished gradient of a row, written by [`ce_pass`]: `out = e·inv − onehot(label)`.
struct CeOut<'a, S: Simd> {
    /// The row's gradient and the rest of the block after it (prefetched).
    out: &'a mut [f32],
    /// `e^(x−m)` of the row (cached scratch).
    e: &'a [f32],
    inv: S::V,
    label: usize,
}

/// `e·inv` for `out[k..k+LANES]`, with 1 subtracted in the label's lane (the same rounding as
/// subtracting it from the stored value afterwards).
///
/// # Safety
/// As for [`Simd`] methods; `k < e.len()`.
#[inline(always)]
unsafe fn ce_grad_vec<S: Simd>(e: &[f32], k: usize, inv: S::V, label: usize) -> S::V {
    let v = S::mul(load_or_pad::<S>(e, k, 0.0), inv);
    if label.wrapping_sub(k) < S::LANES {
        let mut b = [0.0f32; simd::MAX_LANES];
        S::store(b.as_mut_ptr(), v);
        b[label - k] -= 1.0;
        S::load(b.as_ptr())
    } else {
        v
    }
}

/// The main loop of [`ce_pass`] over the full vectors `j` in `j0..j1` (`j0`, `j1` multiples of
/// `LANES`): `max` of the next row into `mx`, `Σ e^(x−m)` of the current row into `acc` (kept in
/// `keep` when `KEEP`), and with `GRAD` the gradient vector at `k = j + shift` (`e·inv`, no label
/// correction: the caller keeps the label's vector out of the range).
///
/// # Safety
/// As for [`Simd`] methods; `x`, `nx`, `keep` valid for `j1` elements, `e` and `out` for
/// `j1 + shift` (`out` for `out_len ≥ j1 + shift`), `out` aligned to the vector width when
/// `stream` and `GRAD`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn ce_fused<S: Simd, const KEEP: bool, const GRAD: bool>(
    (x, nx, ahead): (*const f32, *const f32, &[f32]),
    keep: *mut f32,
    (e, out, out_len, inv, shift): (*const f32, *mut f32, usize, S::V, usize),
    mv: S::V,
    (j0, j1): (usize, usize),
    stream: bool,
    acc: &mut S::V,
    mx: &mut S::V,
) {
    let l = S::LANES;
    let (mut a, mut m) = (*acc, *mx);
    let mut j = j0;
    while j < j1 {
        simd::prefetch_at::<S>(ahead, j + PREFETCH_X);
        m = S::max(m, S::load(nx.add(j)));
        let v = simd::exp::<S>(S::sub(S::load(x.add(j)), mv));
        if KEEP {
            S::store(keep.add(j), v);
        }
        a = S::add(a, v);
        if GRAD {
            let k = j + shift;
            if !stream && k + PREFETCH_D < out_len {
                S::prefetch(out.add(k + PREFETCH_D));
            }
            simd::put::<S>(out.add(k), S::mul(S::load(e.add(k)), inv), stream);
        }
        j += l;
    }
    (*acc, *mx) = (a, m);
}

/// One fused pass over the columns for three rows in flight:
/// - the current row `x`: `Σ e^(x−m)` (one vector accumulator in element order, tail padded
///   with −∞), storing `e^(x−m)` into `keep` when given;
/// - the next row `next` (and the rest of the block from it, `ahead`, for prefetching): its
///   maximum, returned (−∞ without a next row);
/// - the previous row's gradient `grad`, written with streaming stores when `stream`.
///
/// The next row is read from memory while the current row's `exp` runs on cached data, which is
/// what lets the pass approach the speed of a copy. Returns `(Σ, max(next))`.
///
/// # Safety
/// As for [`Simd`] methods; `next`, `keep` and `grad`'s rows have `x.len()` elements.
#[inline(always)]
unsafe fn ce_pass<S: Simd>(
    x: &[f32],
    m: f32,
    next: Option<(&[f32], &[f32])>,
    keep: Option<&mut [f32]>,
    grad: Option<CeOut<'_, S>>,
    stream: bool,
) -> (f32, f32) {
    let cols = x.len();
    let l = S::LANES;
    let full = cols / l * l;
    let mv = S::splat(m);
    let mut acc = S::splat(0.0);
    let mut mx = S::splat(f32::NEG_INFINITY);
    // Without a next row the max part reads the current row (and its result is not used).
    let (nx, ahead) = next.unwrap_or((x, &[]));
    let xs = (x.as_ptr(), nx.as_ptr(), ahead);
    let none = (std::ptr::null(), std::ptr::null_mut(), 0, mv, 0);
    // The partial last vector's e^(x−m) (added to the sum last, in element order).
    let mut keep = keep;
    let tail = if full < cols {
        let e = simd::exp::<S>(S::sub(load_or_pad::<S>(x, full, f32::NEG_INFINITY), mv));
        if let Some(kp) = keep.as_deref_mut() {
            store_part::<S>(kp, full, e);
        }
        Some(e)
    } else {
        None
    };
    match (keep, grad) {
        (None, _) => {
            ce_fused::<S, false, false>(
                xs,
                std::ptr::null_mut(),
                none,
                mv,
                (0, full),
                stream,
                &mut acc,
                &mut mx,
            );
        }
        (Some(kp), None) => {
            ce_fused::<S, true, false>(
                xs,
                kp.as_mut_ptr(),
                none,
                mv,
                (0, full),
                stream,
                &mut acc,
                &mut mx,
            );
        }
        (Some(kp), Some(g)) => {
            let kp = kp.as_mut_ptr();
            // Gradient vectors start at `head` (the output's alignment when streaming; the
            // elements before it are stored from the vector at 0) and run in step with `j`
            // at `k = j + head`; `jg` ends the full ones.
            let head = if stream {
                simd::misalign::<S>(g.out.as_ptr()).min(cols)
            } else {
                0
            };
            if head > 0 {
                simd::store_first::<S>(g.out, head, ce_grad_vec::<S>(g.e, 0, g.inv, g.label));
            }
            let jg = (cols - head) / l * l;
            let gp = (g.e.as_ptr(), g.out.as_mut_ptr(), g.out.len(), g.inv, head);
            // The label's vector, if it is a full one, is written apart with its correction.
            let jl = if g.label >= head && g.label - head < jg {
                (g.label - head) / l * l
            } else {
                jg
            };
            ce_fused::<S, true, true>(xs, kp, gp, mv, (0, jl), stream, &mut acc, &mut mx);
            if jl < jg {
                ce_fused::<S, true, false>(xs, kp, gp, mv, (jl, jl + l), stream, &mut acc, &mut mx);
                let v = ce_grad_vec::<S>(g.e, jl + head, g.inv, g.label);
                simd::put::<S>(g.out.as_mut_ptr().add(jl + head), v, stream);
                ce_fused::<S, true, true>(xs, kp, gp, mv, (jl + l, jg), stream, &mut acc, &mut mx);
            }
            ce_fused::<S, true, false>(xs, kp, gp, mv, (jg, full), stream, &mut acc, &mut mx);
            // The gradient's last, partial vector.
            if head + jg < cols {
                let v = ce_grad_vec::<S>(g.e, head + jg, g.inv, g.label);
                store_part::<S>(&mut g.out[..cols], head + jg, v);
            }
        }
    }
    // The partial last vector of the current and next rows.
    if let Some(e) = tail {
        mx = S::max(mx, load_or_pad::<S>(nx, full, f32::NEG_INFINITY));
        acc = S::add(acc, e);
    }
    (S::reduce_sum(acc), S::reduce_max(mx))
}

/// Cross-entropy over a block of rows on one vector path, each row's loss into `losses` (0 for
/// ignored rows).
///
/// The counted rows run as a pipeline: pass `t` sums `e^(x−m)` of row `t` (keeping it in a
/// cached scratch row), finds the maximum of row `t+1` and writes the gradient of row `t−1` from
/// its scratch row, so each row is read from memory once, in the pass before its own.
struct Ce<'a> {
    cols: usize,
    logits: &'a [f32],
    labels: &'a [i32],
    ignore_index: i32,
    dlogits: Option<&'a mut [f32]>,
    stream: bool,
    losses: &'a mut [f64],
}

impl Kernel for Ce<'_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        let cols = self.cols;
        let x = self.logits;
        let stream = self.stream;
        let mut dlogits = self.dlogits;
        let losses = self.losses;
        // The counted rows, in order; ignored rows get a zero gradient and a zero loss here.
        let mut counted = Vec::with_capacity(self.labels.len());
        for (r, &label) in self.labels.iter().enumerate() {
            if label != self.ignore_index {
                counted.push(r);
                continue;
            }
            losses[r] = 0.0;
            if let Some(d) = dlogits.as_deref_mut() {
                let row = &mut d[r * cols..(r + 1) * cols];
                simd::vec_loop_out!(S, _j in row, stream => { S::splat(0.0) });
            }
        }
        let row = |r: usize| &x[r * cols..(r + 1) * cols];
        let want_grad = dlogits.is_some();
        // Two scratch rows: the current row's e^(x−m) and the previous row's.
        let mut scratch = vec![0.0f32; if want_grad { 2 * cols } else { 0 }];
        let (mut cur, mut prev) = scratch.split_at_mut(if want_grad { cols } else { 0 });
        // (row, 1/Σ) of the counted row whose gradient is still to be written.
        let mut pending: Option<(usize, f32)> = None;
        let mut m = match counted.first() {
            Some(&r) => ce_row_max::<S>(row(r)),
            None => f32::NEG_INFINITY,
        };
        for (t, &r) in counted.iter().enumerate() {
            let next = counted.get(t + 1).map(|&n| (row(n), &x[n * cols..]));
            let keep = if want_grad { Some(&mut *cur) } else { None };
            let grad = match (pending, dlogits.as_deref_mut()) {
                (Some((p, inv)), Some(d)) => Some(CeOut::<S> {
                    out: &mut d[p * cols..],
                    e: &*prev,
                    inv: S::splat(inv),
                    label: self.labels[p] as usize,
                }),
                _ => None,
            };
            let (s, m_next) = ce_pass::<S>(row(r), m, next, keep, grad, stream);
            let lab = self.labels[r] as usize;
            losses[r] = (m as f64 - x[r * cols + lab] as f64) + (s as f64).ln();
            pending = Some((r, 1.0 / s));
            std::mem::swap(&mut cur, &mut prev);
            m = m_next;
        }
        // The last counted row's gradient, from its scratch row (now `prev`).
        if let (Some((p, inv)), Some(d)) = (pending, dlogits) {
            let out = &mut d[p * cols..(p + 1) * cols];
            let (inv, label) = (S::splat(inv), self.labels[p] as usize);
            let e = &*prev;
            simd::vec_loop_out!(S, k in out, stream => { ce_grad_vec::<S>(e, k, inv, label) });
        }
        if stream {
            S::fence();
        }
    }
}

/// The vector paths of [`cross_entropy_with`], the gradient written with streaming stores when
/// `stream`.
fn cross_entropy_simd(
    isa: Isa,
    logits: &[f32],
    cols: usize,
    labels: &[i32],
    ignore_index: i32,
    dlogits: Option<&mut [f32]>,
    stream: bool,
) -> CrossEntropy {
    let rows = labels.len();
    let run = |logits: &[f32], labels: &[i32], dlogits: Option<&mut [f32]>, losses: &mut [f64]| {
        let k = Ce {
            cols,
            logits,
            labels,
            ignore_index,
            dlogits,
            stream,
            losses,
        };
        if dispatch(isa, k).is_err() {
            unreachable!("scalar is handled by the caller");
        }
    };
    // Per-row losses from blocks of rows (in parallel when large); every row is computed the
    // same way whatever the blocks.
    let mut losses = vec![0.0f64; rows];
    let br = ce_block_rows(cols);
    let c = br * cols;
    match (dlogits, simd::parallel(logits.len())) {
        (Some(d), true) => logits
            .par_chunks(c)
            .zip(labels.par_chunks(br))
            .zip(d.par_chunks_mut(c))
            .zip(losses.par_chunks_mut(br))
            .for_each(|(((x, lab), d), lo)| run(x, lab, Some(d), lo)),
        (Some(d), false) => run(logits, labels, Some(d), &mut losses),
        (None, true) => logits
            .par_chunks(c)
            .zip(labels.par_chunks(br))
            .zip(losses.par_chunks_mut(br))
            .for_each(|((x, lab), lo)| run(x, lab, None, lo)),
        (None, false) => run(logits, labels, None, &mut losses),
    }
    // Summed in fixed chunks of rows, then the chunk sums in order: independent of the pool
    // size (ignored rows add an exact 0).
    let loss_sum = losses
        .chunks(simd::rows_per_chunk(cols))
        .map(|ch| ch.iter().fold(0.0f64, |a, &v| a + v))
        .fold(0.0f64, |a, v| a + v);
    CrossEntropy {
        loss_sum,
        count: labels.iter().filter(|&&l| l != ignore_index).count(),
    }
}

#[cfg(test)]
mod tests {
    //! The row pipeline of the vector cross-entropy against the f64 scalar reference: row counts
    //! 1, 2, 3, 7 (so the first, middle and last pipeline stages all occur, alone and together),
    //! awkward widths, ignored rows anywhere, cached and streaming stores at every output
    //! alignment, and results independent of the row blocks and the pool size.
    use super::*;
    use crate::dispatch::supported;

    /// f32 unit roundoff 2⁻²⁴.
    const U: f64 = 1.0 / 16_777_216.0;
    const WIDTHS: [usize; 11] = [1, 3, 7, 15, 17, 31, 33, 127, 129, 257, 30522];
    const IGNORE: i32 = -100;

    fn fast() -> Vec<Isa> {
        supported()
            .into_iter()
            .filter(|&i| i != Isa::Scalar)
            .collect()
    }

    /// Deterministic values in `[lo, hi)` (xorshift32).
    fn values(n: usize, seed: u32, lo: f32, hi: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                lo + (hi - lo) * (s >> 8) as f32 / (1u32 << 24) as f32
            })
            .collect()
    }

    /// Label patterns over `rows` rows of `cols` classes: all counted (labels spread over the
    /// row, including 0 and `cols − 1`), alternate rows ignored both ways, first and last
    /// ignored, all ignored.
    fn label_sets(rows: usize, cols: usize) -> Vec<Vec<i32>> {
        let spread = |r: usize| match r % 4 {
            0 => 0,
            1 => cols - 1,
            2 => cols / 2,
            _ => (r * 997 + 13) % cols,
        } as i32;
        let pick = |ign: &dyn Fn(usize) -> bool| -> Vec<i32> {
            (0..rows)
                .map(|r| if ign(r) { IGNORE } else { spread(r) })
                .collect()
        };
        vec![
            pick(&|_| false),
            pick(&|r| r % 2 == 0),
            pick(&|r| r % 2 == 1),
            pick(&|r| r == 0 || r == rows - 1),
            pick(&|_| true),
        ]
    }

    /// The vector path `isa` (with `stream` as given, the gradient at element offset `off` of
    /// its buffer so every output alignment occurs) against the f64 reference.
    fn check(isa: Isa, x: &[f32], cols: usize, labels: &[i32], stream: bool, off: usize) {
        let n = x.len();
        let c = cols as f64;
        let mut d0 = vec![0.0f32; n];
        let want = cross_entropy_with(Isa::Scalar, x, cols, labels, IGNORE, Some(&mut d0));
        let mut buf = vec![f32::NAN; n + off];
        let d = &mut buf[off..];
        let got = cross_entropy_simd(isa, x, cols, labels, IGNORE, Some(d), stream);
        let no_grad = cross_entropy_simd(isa, x, cols, labels, IGNORE, None, false);
        let what = format!(
            "[{isa}] {} rows × {cols}, stream {stream}, offset {off}",
            labels.len()
        );
        assert_eq!(got, no_grad, "{what}: the gradient changed the loss");
        assert_eq!(got.count, want.count, "{what}: count");
        // Per counted row the f32 sum of `cols` exponentials (each within 3 ulp) has relative
        // error ≤ (cols + 8)·U, so its ln is off by at most that much absolutely; plus a few
        // roundings of the loss itself.
        let tol = want.count as f64 * (c + 16.0) * U + 4.0 * U * want.loss_sum.abs();
        assert!(
            (got.loss_sum - want.loss_sum).abs() <= tol,
            "{what}: loss {} vs {} (tol {tol:e})",
            got.loss_sum,
            want.loss_sum
        );
        // Gradient: e^(x−m)/Σ with the same relative error as the sum, plus one rounding of
        // order 1 at the label (ignored rows must be exactly 0).
        for (i, (&g, &w)) in buf[off..].iter().zip(&d0).enumerate() {
            let t = (c + 16.0) * U * (w as f64).abs() + U + 1e-44;
            assert!(
                (g as f64 - w as f64).abs() <= t,
                "{what}: gradient at {i}: got {g:e}, want {w:e} (tol {t:e})"
            );
            if labels[i / cols] == IGNORE {
                assert_eq!(g.to_bits(), 0, "{what}: ignored row {} at {i}", i / cols);
            }
        }
    }

    #[test]
    fn pipeline_rows_and_widths_match_reference() {
        for isa in fast() {
            for (wi, &cols) in WIDTHS.iter().enumerate() {
                for rows in [1, 2, 3, 7] {
                    if cols == 30522 && rows == 7 {
                        continue; // the vocabulary width: 1 to 3 rows are enough
                    }
                    let seed = (wi * 10 + rows) as u32;
                    let x = values(rows * cols, seed, -12.0, 12.0);
                    for (li, labels) in label_sets(rows, cols).iter().enumerate() {
                        let stream = li % 2 == 1;
                        let off = li * 3 % 16;
                        check(isa, &x, cols, labels, stream, off);
                        check(isa, &x, cols, labels, !stream, (off + 7) % 16);
                    }
                }
            }
        }
    }

    #[test]
    fn pipeline_large_and_shifted_logits() {
        // Logits near ±10⁴ (the row maximum must be subtracted) and a row whose label logit is
        // far below its maximum (loss ≈ 60, gradient at the label ≈ −1).
        for isa in fast() {
            for cols in [33, 257, 30522] {
                let mut x = values(3 * cols, 77, -3.0, 3.0);
                x[..cols].iter_mut().for_each(|v| *v += 1e4);
                x[cols..2 * cols].iter_mut().for_each(|v| *v -= 1e4);
                x[2 * cols + 1] = 60.0;
                for stream in [false, true] {
                    check(isa, &x, cols, &[5, cols as i32 - 1, 0], stream, 1);
                }
            }
        }
    }

    #[test]
    fn blocks_and_pool_size_give_identical_bits() {
        // 40 vocabulary rows: 1.2M elements, over the parallel threshold, in blocks of
        // `ce_block_rows` (17) rows on 2 threads and one block on 1 thread; ignored rows at and
        // around the block boundaries.
        let cols = 30522;
        let rows = 40;
        let br = ce_block_rows(cols);
        assert!(br < rows && rows * cols >= simd::PAR_MIN_ELEMS);
        let x = values(rows * cols, 5, -8.0, 8.0);
        let labels: Vec<i32> = (0..rows)
            .map(|r| {
                if r % 7 == 3 || r == br - 1 || r == br || r == 2 * br + 1 {
                    IGNORE
                } else {
                    ((r * 997) % cols) as i32
                }
            })
            .collect();
        let pool = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        };
        for isa in fast() {
            for stream in [false, true] {
                let run = || {
                    let mut d = vec![0.0f32; rows * cols];
                    let ce =
                        cross_entropy_simd(isa, &x, cols, &labels, IGNORE, Some(&mut d), stream);
                    (ce, d.iter().map(|v| v.to_bits()).collect::<Vec<u32>>())
                };
                let (a, da) = pool(1).install(run);
                let (b, db) = pool(2).install(run);
                assert_eq!(a.loss_sum.to_bits(), b.loss_sum.to_bits(), "[{isa}] loss");
                assert_eq!(a.count, b.count, "[{isa}] count");
                assert!(da == db, "[{isa}] stream {stream}: 1 and 2 threads differ");
                check(isa, &x, cols, &labels, stream, 0);
            }
        }
    }
}
