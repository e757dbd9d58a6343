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
        return cross_entropy_simd(isa, logits, cols, labels, ignore_index, dlogits);
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
        assert!(
            label >= 0 && (label as usize) < cols,
            "cross_entropy: label {label} at row {r} is outside 0..{cols}"
        );
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

/// Cross-entropy over a block of rows on one vector path.
struct Ce<'a> {
    cols: usize,
    logits: &'a [f32],
    labels: &'a [i32],
    ignore_index: i32,
    dlogits: Option<&'a mut [f32]>,
}

impl Kernel for Ce<'_> {
    type Out = CrossEntropy;
    #[inline(always)]
    unsafe fn run<S: Simd>(self) -> CrossEntropy {
        let cols = self.cols;
        let l = S::LANES;
        let mut out = CrossEntropy {
            loss_sum: 0.0,
            count: 0,
        };
        let mut dlogits = self.dlogits;
        for (r, &label) in self.labels.iter().enumerate() {
            let xr = &self.logits[r * cols..(r + 1) * cols];
            if label == self.ignore_index {
                if let Some(d) = dlogits.as_deref_mut() {
                    d[r * cols..(r + 1) * cols].fill(0.0);
                }
                continue;
            }
            let m = simd::max::<S>(xr);
            let mv = S::splat(m);
            // Σ e^(x−m) with tail lanes padded by −∞ (e^(−∞) = 0 adds nothing); with a gradient
            // wanted, e^(x−m) is stored there and scaled by 1/Σ afterwards (one exp per element).
            let mut acc = S::splat(0.0);
            let mut dr = dlogits
                .as_deref_mut()
                .map(|d| &mut d[r * cols..(r + 1) * cols]);
            vec_loop!(j in cols, l => {
                let e = simd::exp::<S>(S::sub(load_or_pad::<S>(xr, j, f32::NEG_INFINITY), mv));
                if let Some(dr) = dr.as_deref_mut() {
                    store_part::<S>(dr, j, e);
                }
                acc = S::add(acc, e);
            });
            let s = S::reduce_sum(acc);
            let lab = label as usize;
            out.loss_sum += (m as f64 - xr[lab] as f64) + (s as f64).ln();
            out.count += 1;
            if let Some(dr) = dr {
                let inv = S::splat(1.0 / s);
                vec_loop!(j in cols, l => {
                    store_part::<S>(dr, j, S::mul(load_or_pad::<S>(dr, j, 0.0), inv));
                });
                dr[lab] -= 1.0;
            }
        }
        out
    }
}

fn cross_entropy_simd(
    isa: Isa,
    logits: &[f32],
    cols: usize,
    labels: &[i32],
    ignore_index: i32,
    dlogits: Option<&mut [f32]>,
) -> CrossEntropy {
    let run = |logits: &[f32], labels: &[i32], dlogits: Option<&mut [f32]>| {
        let k = Ce {
            cols,
            logits,
            labels,
            ignore_index,
            dlogits,
        };
        match dispatch(isa, k) {
            Ok(o) => o,
            Err(_) => unreachable!("scalar is handled by the caller"),
        }
    };
    // Always the same fixed row chunks, run in parallel only when large, so the loss is summed
    // the same way whatever the pool size.
    let rpc = simd::rows_per_chunk(cols);
    let c = rpc * cols;
    let par = simd::parallel(logits.len());
    let parts: Vec<CrossEntropy> = match (dlogits, par) {
        (Some(d), true) => logits
            .par_chunks(c)
            .zip(labels.par_chunks(rpc))
            .zip(d.par_chunks_mut(c))
            .map(|((x, lab), d)| run(x, lab, Some(d)))
            .collect(),
        (Some(d), false) => logits
            .chunks(c)
            .zip(labels.chunks(rpc))
            .zip(d.chunks_mut(c))
            .map(|((x, lab), d)| run(x, lab, Some(d)))
            .collect(),
        (None, true) => logits
            .par_chunks(c)
            .zip(labels.par_chunks(rpc))
            .map(|(x, lab)| run(x, lab, None))
            .collect(),
        (None, false) => logits
            .chunks(c)
            .zip(labels.chunks(rpc))
            .map(|(x, lab)| run(x, lab, None))
            .collect(),
    };
    // Chunk sums added in chunk order: independent of the pool size.
    parts.iter().fold(
        CrossEntropy {
            loss_sum: 0.0,
            count: 0,
        },
        |a, p| CrossEntropy {
            loss_sum: a.loss_sum + p.loss_sum,
            count: a.count + p.count,
        },
    )
}
