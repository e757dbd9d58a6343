//! NumPy broadcasting: the output shape of two operands, and the sum that maps a broadcast
//! gradient back onto an operand's shape.

use crate::error::{shape_err, Result};
use crate::tensor::{numel, Tensor};

/// The broadcast shape of `a` and `b` (trailing axes aligned; an axis of 1 stretches).
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return shape_err(
                    op,
                    format!("cannot broadcast {a:?} with {b:?} (axis {i}: {da} vs {db})"),
                )
            }
        };
    }
    Ok(out)
}

/// If `small`'s shape is a proper trailing part of `big`'s (leading 1s allowed), its element
/// count: then `big`'s elements pair with `small`'s repeating every that many.
pub(crate) fn suffix_len(small: &[usize], big: &[usize]) -> Option<usize> {
    let trimmed: &[usize] = {
        let lead = small.iter().take_while(|&&d| d == 1).count();
        &small[lead..]
    };
    if trimmed.len() > big.len() || small == big {
        return None;
    }
    let n: usize = trimmed.iter().product();
    (n > 0 && big[big.len() - trimmed.len()..] == *trimmed && big.len() >= small.len()).then_some(n)
}

/// Strides (in elements) for reading an operand of `shape` as if it had shape `out`: 0 on
/// broadcast axes.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let n = out.len();
    let mut strides = vec![0; n];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        let o = n - shape.len() + i;
        strides[o] = if shape[i] == 1 && out[o] != 1 { 0 } else { s };
        s *= shape[i];
    }
    strides
}

/// Calls `f(out_index, a_index, b_index)` for every element of the broadcast shape `out`, in
/// row-major order.
pub fn for_each_index(
    out: &[usize],
    sa: &[usize],
    sb: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    let total = numel(out);
    if total == 0 {
        return;
    }
    let n = out.len();
    if n == 0 {
        f(0, 0, 0);
        return;
    }
    let last = out[n - 1];
    let (la, lb) = (sa[n - 1], sb[n - 1]);
    let mut idx = vec![0usize; n];
    let (mut ia, mut ib) = (0usize, 0usize);
    let mut o = 0;
    while o < total {
        for j in 0..last {
            f(o + j, ia + j * la, ib + j * lb);
        }
        o += last;
        // advance the odometer over all axes but the last
        let mut ax = n - 1;
        loop {
            if ax == 0 {
                break;
            }
            ax -= 1;
            idx[ax] += 1;
            ia += sa[ax];
            ib += sb[ax];
            if idx[ax] < out[ax] {
                break;
            }
            ia -= sa[ax] * out[ax];
            ib -= sb[ax] * out[ax];
            idx[ax] = 0;
        }
    }
}

/// Sums `grad` (of the broadcast shape) over the axes that were broadcast to produce it, giving
/// a tensor of `shape`. Returns `grad` itself when no axis was broadcast.
pub fn reduce_to_shape(grad: &Tensor, shape: &[usize]) -> Tensor {
    if grad.shape() == shape {
        return grad.clone();
    }
    let out_shape = grad.shape();
    if let Some(n) = suffix_len(shape, out_shape) {
        // Every leading axis is reduced: column sums, each column added in row order by one
        // task (the same order as the general path below, so the same bits). Each task owns
        // one run of columns and walks the rows in memory order, adding a contiguous slice
        // of each row (a narrow column block per task would stride through a large gradient
        // one short piece per row).
        use rayon::prelude::*;
        let g = grad.data();
        let rows = g.len() / n;
        let mut acc = vec![0.0f32; n];
        let tasks = if rows * n >= 1 << 17 {
            rayon::current_num_threads().min(n.div_ceil(16))
        } else {
            1
        };
        let block = n.div_ceil(tasks.max(1)).next_multiple_of(16).max(1);
        acc.par_chunks_mut(block)
            .enumerate()
            .for_each(|(bi, cols)| {
                let (c0, w) = (bi * block, cols.len());
                for row in g.chunks_exact(n) {
                    for (a, &v) in cols.iter_mut().zip(&row[c0..c0 + w]) {
                        *a += v;
                    }
                }
            });
        return Tensor::from_parts(acc, shape);
    }
    let st = broadcast_strides(shape, out_shape);
    let zero = vec![0; out_shape.len()];
    let g = grad.data();
    let mut acc = vec![0.0f32; numel(shape)];
    for_each_index(out_shape, &st, &zero, |o, a, _| acc[a] += g[o]);
    Tensor::from_parts(acc, shape)
}
