//! Row softmax, log-softmax and their backward passes, and cross-entropy from logits fused
//! with its gradient.
//!
//! Every row is shifted by its maximum before `exp`, so large logits give no overflow.

use crate::dispatch::{active, Isa};

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
    match isa {
        _ => {
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
    match isa {
        _ => {
            for r in 0..rows {
                let xr = &x[r * cols..(r + 1) * cols];
                let lse = logsumexp(xr);
                for j in 0..cols {
                    y[r * cols + j] = (xr[j] as f64 - lse) as f32;
                }
            }
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
    let rows = check_rows(y.len(), cols, "softmax backward");
    assert!(
        dy.len() == y.len() && dx.len() == y.len(),
        "softmax backward: lengths differ"
    );
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
    let rows = check_rows(y.len(), cols, "log_softmax backward");
    assert!(
        dy.len() == y.len() && dx.len() == y.len(),
        "log_softmax backward: lengths differ"
    );
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
    /// Σ over counted rows of −log softmax(logits)[label].
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
    let mut out = CrossEntropy {
        loss_sum: 0.0,
        count: 0,
    };
    match isa {
        _ => {
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
        }
    }
    out
}
