//! Cross-entropy from logits fused with its gradient.
//!
//! Every row is shifted by its maximum before `exp`, so large logits give no overflow. Per-row
//! scalars (`ln` of the sum, the loss) are formed in f64. Inputs of at least
//! [`simd::PAR_MIN_ELEMS`] elements are split over rayon in fixed blocks of rows; the loss is
//! summed per chunk and the chunk sums added in chunk order, so results do not depend on the
//! pool size.
//!
//! The vector cross-entropy pipelines its rows (see `Ce` in `vector`): one pass per row sums
//! `e^(x−m)` of the current row from cache into a scratch row, takes the maximum of the next row
//! while it arrives from memory (prefetched 16 KiB ahead) and writes the previous row's gradient
//! from its scratch row (streaming stores when [`simd::stream_output`] says so, like the other
//! kernels). Each row is read from memory once and `exp` runs once per element, overlapped with
//! the memory traffic.
//!
//! This file holds the API and the f64 scalar reference; the vector kernel is in `vector`.

mod vector;

use crate::dispatch::{active, Isa};
use crate::simd;
use crate::softmax::{check_rows, logsumexp};
use vector::cross_entropy_simd_scaled;

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
    dlogits: Option<&mut [f32]>,
) -> CrossEntropy {
    cross_entropy_scaled_with(isa, logits, cols, labels, ignore_index, dlogits, 1.0)
}

/// [`cross_entropy`] with the gradient multiplied by `scale` as it is written (a mean loss's
/// `1/n`, so the engine's backward needs no pass of its own over the gradient): each value is
/// `softmax − onehot` rounded to f32, then times `scale` rounded once, exactly what scaling the
/// finished gradient afterwards gives (ignored rows are +0 whatever the scale). `scale = 1`
/// gives [`cross_entropy`]'s gradient.
///
/// # Panics
/// As for [`cross_entropy`].
pub fn cross_entropy_scaled(
    logits: &[f32],
    cols: usize,
    labels: &[i32],
    ignore_index: i32,
    dlogits: Option<&mut [f32]>,
    scale: f32,
) -> CrossEntropy {
    cross_entropy_scaled_with(active(), logits, cols, labels, ignore_index, dlogits, scale)
}

/// [`cross_entropy_scaled`] on a chosen path.
pub fn cross_entropy_scaled_with(
    isa: Isa,
    logits: &[f32],
    cols: usize,
    labels: &[i32],
    ignore_index: i32,
    mut dlogits: Option<&mut [f32]>,
    scale: f32,
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
        return cross_entropy_simd_scaled(
            isa,
            logits,
            cols,
            labels,
            ignore_index,
            dlogits,
            scale,
            stream,
        );
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
            if scale != 1.0 {
                for v in dr.iter_mut() {
                    *v *= scale;
                }
            }
        }
    }
    out
}

/// Test hooks (feature `test-hooks`): the vector path with the choice of streaming stores made
/// by the caller, and the rows of its parallel blocks.
#[cfg(feature = "test-hooks")]
pub mod hooks {
    use super::vector;

    /// The vector path `isa` of [`cross_entropy_with`](super::cross_entropy_with) without its
    /// checks, writing the gradient with streaming stores when `stream`.
    pub use super::vector::cross_entropy_simd as vector_with;

    /// Rows per parallel block of the vector path for `cols` columns.
    pub fn block_rows(cols: usize) -> usize {
        vector::ce_block_rows(cols)
    }
}
