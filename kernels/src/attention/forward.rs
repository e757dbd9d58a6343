//! The forward driver: one rayon task per block of [`BLOCK_Q`] query rows, walking the keys in
//! tiles of [`BLOCK_K`] with an online softmax (see the module documentation of
//! [`attention`](super)).

use super::prims::{
    aligned_zeros, run_task, transpose_tile, valid_keys, Acc, MatMul, Prims, RowDrop, Scalar, Valid,
};
use super::vector::Vector;
use super::{AttnInputs, AttnParams, AttnShape, Drop, BLOCK_K, BLOCK_Q};
use crate::dispatch::Isa;
use crate::simd::{Kernel, Simd};
use rayon::prelude::*;

/// One forward task: query rows `[i0, i0 + lse_out.len())` of head `bh` (see [`forward_block`]).
struct FwdTask<'a, 'b> {
    a: &'b AttnInputs<'a>,
    kth: &'b [f32],
    bh: usize,
    i0: usize,
    acc: &'b mut [f32],
    lse_out: &'b mut [f32],
}

impl FwdTask<'_, '_> {
    #[inline(always)]
    fn run_on<P: Prims>(self, p: &P) {
        let b = self.bh / self.a.shape.heads;
        forward_block(
            p,
            self.a,
            self.kth,
            self.bh,
            b,
            self.i0,
            self.acc,
            self.lse_out,
        )
    }
}

impl Kernel for FwdTask<'_, '_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        // SAFETY: `run`'s contract: we are inside `dispatch`'s `#[target_feature]` entry for `S`
        // on a CPU that has its features.
        self.run_on(&unsafe { Vector::<S>::new() })
    }
}

pub(super) fn run_forward(isa: Isa, a: &AttnInputs<'_>, out: &mut [f32], lse: &mut [f32]) {
    let AttnShape { tq, tk, d, .. } = a.shape;
    out.par_chunks_mut(tq * d)
        .zip(lse.par_chunks_mut(tq))
        .enumerate()
        .for_each(|(bh, (o, l))| {
            // kᵀ of this head, d × Tk, shared by its query blocks
            let mut kth_buf = Vec::new();
            let kth = aligned_zeros(&mut kth_buf, d * tk);
            transpose_tile(&a.k[bh * tk * d..(bh + 1) * tk * d], d, 0, tk, kth);
            let kth = &*kth;
            o.par_chunks_mut(BLOCK_Q * d)
                .zip(l.par_chunks_mut(BLOCK_Q))
                .enumerate()
                .for_each(|(blk, (acc, lse_out))| {
                    let task = FwdTask {
                        a,
                        kth,
                        bh,
                        i0: blk * BLOCK_Q,
                        acc,
                        lse_out,
                    };
                    run_task(isa, task, |t| t.run_on(&Scalar))
                })
        });
}

/// One block of query rows `[i0, i0 + lb.len())` of head `bh`; `kth` is the head's kᵀ.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_block<P: Prims>(
    p: &P,
    a: &AttnInputs<'_>,
    kth: &[f32],
    bh: usize,
    b: usize,
    i0: usize,
    acc: &mut [f32],
    lse_out: &mut [f32],
) {
    let AttnShape { tq, tk, d, .. } = a.shape;
    let AttnParams {
        scale,
        causal,
        dropout,
        seed,
    } = a.params;
    let br = lse_out.len();
    let qb = &a.q[(bh * tq + i0) * d..(bh * tq + i0 + br) * d];
    let vh = &a.v[bh * tk * d..(bh + 1) * tk * d];
    let maskb = a.mask.map(|m| &m[b * tk..(b + 1) * tk]);
    let drop = (dropout > 0.0).then(|| Drop::new(seed, dropout));

    let mut s_buf = Vec::new();
    let s = aligned_zeros(&mut s_buf, br * BLOCK_K);
    let mut mrow = vec![f32::NEG_INFINITY; br];
    let mut lrow = vec![0.0f32; br];
    let mut tmax = vec![0.0f32; br];
    let mut meff = vec![0.0f32; br];
    let mut alpha = vec![0.0f32; br];
    let mut sums = vec![0.0f32; br];
    acc.fill(0.0);

    let last_i = i0 + br - 1;
    let mut j0 = 0;
    while j0 < tk {
        let bc = BLOCK_K.min(tk - j0);
        if valid_keys(causal, tq, tk, last_i, j0, bc) == 0 {
            break; // this and every later tile is hidden from every row of the block
        }
        let st = &mut s[..br * bc];
        let q_kt = MatMul::new((br, bc, d), (qb, d, 1), (&kth[j0..], tk));
        p.matmul(Acc::Set, q_kt, st, bc);
        let mt = maskb.map(|m| &m[j0..j0 + bc]);
        let valid = Valid::new(causal, tq, tk, i0, j0);
        p.scale_mask_max_tile(st, bc, scale, mt, valid, &mut tmax);
        for r in 0..br {
            let m_new = mrow[r].max(tmax[r]);
            if m_new == f32::NEG_INFINITY {
                // nothing visible yet: the row is all −inf and exp(−inf − 0) = 0
                meff[r] = 0.0;
                alpha[r] = 1.0;
            } else {
                meff[r] = m_new;
                alpha[r] = (mrow[r] - m_new).exp();
            }
        }
        let rd = drop.as_ref().map(|dr| RowDrop {
            drop: dr,
            flat0: ((bh * tq + i0) * tk + j0) as u64,
            stride: tk as u64,
        });
        p.exp_tile(st, bc, &meff, &mut sums, rd);
        for r in 0..br {
            if alpha[r] != 1.0 {
                p.scale_row(&mut acc[r * d..(r + 1) * d], alpha[r]);
            }
            lrow[r] = lrow[r] * alpha[r] + sums[r];
            mrow[r] = mrow[r].max(tmax[r]);
        }
        let p_v = MatMul::new((br, d, bc), (st, bc, 1), (&vh[j0 * d..(j0 + bc) * d], d));
        p.matmul(Acc::Add, p_v, acc, d);
        j0 += bc;
    }
    for r in 0..br {
        let row = &mut acc[r * d..(r + 1) * d];
        if lrow[r] > 0.0 {
            p.scale_row(row, 1.0 / lrow[r]);
            lse_out[r] = mrow[r] + lrow[r].ln();
        } else if lrow[r].is_nan() {
            // A NaN score reaches the row sum through exp (every path's exp propagates NaN),
            // even where the running maximum skipped it: the row is NaN, as in PyTorch, not
            // a row with no visible key.
            row.fill(f32::NAN);
            lse_out[r] = f32::NAN;
        } else {
            row.fill(0.0);
            lse_out[r] = f32::NEG_INFINITY;
        }
    }
}
