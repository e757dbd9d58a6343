//! The vector kernels of the softmax family: one row kernel per operation, run over fixed
//! chunks of rows.

use crate::dispatch::Isa;
use crate::simd::{self, dispatch, load_or_pad, store_part, vec_loop, Kernel, Simd};
use rayon::prelude::*;

/// Which row operation a [`Rows`] kernel applies.
#[derive(Clone, Copy)]
pub(super) enum RowOp {
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
pub(super) fn rows_simd(isa: Isa, op: RowOp, cols: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
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
