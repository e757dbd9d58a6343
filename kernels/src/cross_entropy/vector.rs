//! The pipelined vector cross-entropy (see the module doc of
//! [`cross_entropy`](super)).

use super::CrossEntropy;
use crate::dispatch::Isa;
use crate::simd::{self, dispatch, load_or_pad, store_part, vec_loop, Kernel, Simd};
use rayon::prelude::*;

/// How far ahead (in elements) the fused pass prefetches the next row's logits: 16 KiB, so the
/// reads from memory are in flight while the current row's `exp` runs from cache.
const PREFETCH_X: usize = 4096;
/// How far ahead the gradient row is prefetched when it is written with ordinary stores (the
/// read-for-ownership of each line then overlaps the computation too).
const PREFETCH_D: usize = 1024;

/// Rows per parallel task of [`cross_entropy`] for `cols` columns: a multiple of
/// [`simd::rows_per_chunk`] of about 2¹⁹ elements, so the row pipeline of [`Ce`] runs over many
/// rows. Fixed for a given `cols` (every row is computed the same way in any case).
pub(super) fn ce_block_rows(cols: usize) -> usize {
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

/// The finished gradient of a row, written by [`ce_pass`]:
/// `out = (e·inv − onehot(label))·scale`.
struct CeOut<'a, S: Simd> {
    /// The row's gradient and the rest of the block after it (prefetched).
    out: &'a mut [f32],
    /// `e^(x−m)` of the row (cached scratch).
    e: &'a [f32],
    inv: S::V,
    label: usize,
    scale: S::V,
}

/// `(e·inv)·scale` for `out[k..k+LANES]`, with 1 subtracted from `e·inv` in the label's lane
/// (the same roundings as subtracting it from the stored value afterwards, then scaling).
///
/// # Safety
/// As for [`Simd`] methods; `k < e.len()`.
#[inline(always)]
unsafe fn ce_grad_vec<S: Simd>(e: &[f32], k: usize, inv: S::V, label: usize, scale: S::V) -> S::V {
    let v = S::mul(load_or_pad::<S>(e, k, 0.0), inv);
    let v = if label.wrapping_sub(k) < S::LANES {
        let mut b = [0.0f32; simd::MAX_LANES];
        S::store(b.as_mut_ptr(), v);
        b[label - k] -= 1.0;
        S::load(b.as_ptr())
    } else {
        v
    };
    S::mul(v, scale)
}

/// The main loop of [`ce_pass`] over the full vectors `j` in `j0..j1` (`j0`, `j1` multiples of
/// `LANES`): `max` of the next row into `mx`, `Σ e^(x−m)` of the current row into `acc` (kept in
/// `keep` when `KEEP`), and with `GRAD` the gradient vector at `k = j + shift` (`(e·inv)·scale`,
/// no label correction: the caller keeps the label's vector out of the range).
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
    (e, out, out_len, inv, scale, shift): (*const f32, *mut f32, usize, S::V, S::V, usize),
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
            let g = S::mul(S::mul(S::load(e.add(k)), inv), scale);
            simd::put::<S>(out.add(k), g, stream);
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
    let none = (std::ptr::null(), std::ptr::null_mut(), 0, mv, mv, 0);
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
    // One `ce_fused` run over the columns `$range`, on this pass's rows, `m` and accumulators.
    macro_rules! fused {
        ($keep:literal, $grad:literal, $kp:expr, $gp:expr, $range:expr) => {
            ce_fused::<S, $keep, $grad>(xs, $kp, $gp, mv, $range, stream, &mut acc, &mut mx)
        };
    }
    match (keep, grad) {
        (None, _) => fused!(false, false, std::ptr::null_mut(), none, (0, full)),
        (Some(kp), None) => fused!(true, false, kp.as_mut_ptr(), none, (0, full)),
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
                let v = ce_grad_vec::<S>(g.e, 0, g.inv, g.label, g.scale);
                simd::store_first::<S>(g.out, head, v);
            }
            let jg = (cols - head) / l * l;
            let gp = (
                g.e.as_ptr(),
                g.out.as_mut_ptr(),
                g.out.len(),
                g.inv,
                g.scale,
                head,
            );
            // The label's vector, if it is a full one, is written apart with its correction.
            let jl = if g.label >= head && g.label - head < jg {
                (g.label - head) / l * l
            } else {
                jg
            };
            fused!(true, true, kp, gp, (0, jl));
            if jl < jg {
                fused!(true, false, kp, gp, (jl, jl + l));
                let v = ce_grad_vec::<S>(g.e, jl + head, g.inv, g.label, g.scale);
                simd::put::<S>(g.out.as_mut_ptr().add(jl + head), v, stream);
                fused!(true, true, kp, gp, (jl + l, jg));
            }
            fused!(true, false, kp, gp, (jg, full));
            // The gradient's last, partial vector.
            if head + jg < cols {
                let v = ce_grad_vec::<S>(g.e, head + jg, g.inv, g.label, g.scale);
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
    /// Every gradient value is multiplied by this (after the label's correction).
    scale: f32,
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
                    scale: S::splat(self.scale),
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
            let (e, scale) = (&*prev, S::splat(self.scale));
            simd::vec_loop_out!(S, k in out, stream => {
                ce_grad_vec::<S>(e, k, inv, label, scale)
            });
        }
        if stream {
            S::fence();
        }
    }
}

/// The vector paths of [`cross_entropy_with`](super::cross_entropy_with), the gradient written
/// with streaming stores when `stream`. Public for the test hook `hooks::vector_with`.
///
/// # Panics
/// If `isa` is [`Isa::Scalar`] or not supported here.
#[cfg(feature = "test-hooks")]
pub fn cross_entropy_simd(
    isa: Isa,
    logits: &[f32],
    cols: usize,
    labels: &[i32],
    ignore_index: i32,
    dlogits: Option<&mut [f32]>,
    stream: bool,
) -> CrossEntropy {
    cross_entropy_simd_scaled(
        isa,
        logits,
        cols,
        labels,
        ignore_index,
        dlogits,
        1.0,
        stream,
    )
}

/// The vector paths of [`cross_entropy_scaled_with`](super::cross_entropy_scaled_with), the
/// gradient written with streaming stores when `stream`.
#[allow(clippy::too_many_arguments)]
pub(super) fn cross_entropy_simd_scaled(
    isa: Isa,
    logits: &[f32],
    cols: usize,
    labels: &[i32],
    ignore_index: i32,
    dlogits: Option<&mut [f32]>,
    scale: f32,
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
            scale,
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
