//! The backward driver: one rayon task per `(b, h)` (so `dk` and `dv` need no cross-task
//! reduction), the outer loop over key tiles, the inner over query blocks, recomputing the
//! probabilities from `lse` (see the module documentation of [`attention`](super)).

use super::prims::{
    aligned_zeros, run_task, transpose_tile, valid_keys, Acc, MatMul, Prims, RowDrop, Scalar, Valid,
};
use super::vector::Vector;
use super::{AttnGrads, AttnInputs, AttnParams, AttnSaved, AttnShape, Drop, BLOCK_K, BLOCK_Q};
use crate::dispatch::Isa;
use crate::simd::{Kernel, Simd};
use rayon::prelude::*;

/// Everything the backward tasks read: the forward's inputs and what it saved.
struct Bwd<'a> {
    f: AttnInputs<'a>,
    s: AttnSaved<'a>,
}

/// One backward task: head `bh` (see [`backward_head`]).
struct BwdTask<'a, 'b> {
    a: &'b Bwd<'a>,
    bh: usize,
    dqh: &'b mut [f32],
    dkh: &'b mut [f32],
    dvh: &'b mut [f32],
}

impl BwdTask<'_, '_> {
    #[inline(always)]
    fn run_on<P: Prims>(self, p: &P) {
        let b = self.bh / self.a.f.shape.heads;
        backward_head(p, self.a, self.bh, b, self.dqh, self.dkh, self.dvh)
    }
}

impl Kernel for BwdTask<'_, '_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        // SAFETY: `run`'s contract: we are inside `dispatch`'s `#[target_feature]` entry for `S`
        // on a CPU that has its features.
        self.run_on(&unsafe { Vector::<S>::new() })
    }
}

pub(super) fn run_backward(
    isa: Isa,
    inputs: &AttnInputs<'_>,
    saved: &AttnSaved<'_>,
    grads: AttnGrads<'_>,
) {
    let a = &Bwd {
        f: *inputs,
        s: *saved,
    };
    let AttnGrads { dq, dk, dv } = grads;
    let AttnShape { tq, tk, d, .. } = a.f.shape;
    dq.par_chunks_mut(tq * d)
        .zip(dk.par_chunks_mut(tk * d))
        .zip(dv.par_chunks_mut(tk * d))
        .enumerate()
        .for_each(|(bh, ((dqh, dkh), dvh))| {
            let task = BwdTask {
                a,
                bh,
                dqh,
                dkh,
                dvh,
            };
            run_task(isa, task, |t| t.run_on(&Scalar))
        });
}

#[inline(always)]
fn backward_head<P: Prims>(
    p: &P,
    a: &Bwd<'_>,
    bh: usize,
    b: usize,
    dqh: &mut [f32],
    dkh: &mut [f32],
    dvh: &mut [f32],
) {
    let AttnShape { tq, tk, d, .. } = a.f.shape;
    let AttnParams {
        scale,
        causal,
        dropout,
        seed,
    } = a.f.params;
    let qh = &a.f.q[bh * tq * d..(bh + 1) * tq * d];
    let oh = &a.s.out[bh * tq * d..(bh + 1) * tq * d];
    let doh = &a.s.dout[bh * tq * d..(bh + 1) * tq * d];
    let lseh = &a.s.lse[bh * tq..(bh + 1) * tq];
    let kh = &a.f.k[bh * tk * d..(bh + 1) * tk * d];
    let vh = &a.f.v[bh * tk * d..(bh + 1) * tk * d];
    let maskb = a.f.mask.map(|m| &m[b * tk..(b + 1) * tk]);
    let drop = (dropout > 0.0).then(|| Drop::new(seed, dropout));

    // D_i = dout_i · out_i (a plain loop: a closure would not inline the vector dot)
    let mut dsum = vec![0.0f32; tq];
    for (i, ds) in dsum.iter_mut().enumerate() {
        *ds = p.dot(&doh[i * d..(i + 1) * d], &oh[i * d..(i + 1) * d]);
    }
    let mut bufs: [Vec<f32>; 4] = Default::default();
    let [kt, vt, s, dp] = &mut bufs;
    let kt = aligned_zeros(kt, d * BLOCK_K);
    let vt = aligned_zeros(vt, d * BLOCK_K);
    let s = aligned_zeros(s, BLOCK_Q * BLOCK_K);
    let dp = aligned_zeros(dp, BLOCK_Q * BLOCK_K);
    dqh.fill(0.0);
    dkh.fill(0.0);
    dvh.fill(0.0);

    let mut j0 = 0;
    while j0 < tk {
        let bc = BLOCK_K.min(tk - j0);
        transpose_tile(kh, d, j0, bc, kt);
        transpose_tile(vh, d, j0, bc, vt);
        let ktile = &kh[j0 * d..(j0 + bc) * d];
        let dkt = &mut dkh[j0 * d..(j0 + bc) * d];
        let dvt = &mut dvh[j0 * d..(j0 + bc) * d];
        let mt = maskb.map(|m| &m[j0..j0 + bc]);
        let mut i0 = 0;
        while i0 < tq {
            let br = BLOCK_Q.min(tq - i0);
            if valid_keys(causal, tq, tk, i0 + br - 1, j0, bc) == 0 {
                i0 += br;
                continue;
            }
            let qb = &qh[i0 * d..(i0 + br) * d];
            let dob = &doh[i0 * d..(i0 + br) * d];
            let st = &mut s[..br * bc];
            let dpt = &mut dp[..br * bc];
            let q_kt = MatMul::new((br, bc, d), (qb, d, 1), (&kt[..d * bc], bc));
            p.matmul(Acc::Set, q_kt, st, bc);
            let do_vt = MatMul::new((br, bc, d), (dob, d, 1), (&vt[..d * bc], bc));
            p.matmul(Acc::Set, do_vt, dpt, bc);
            let valid = Valid::new(causal, tq, tk, i0, j0);
            p.probs_tile(st, bc, scale, mt, &lseh[i0..i0 + br], valid);
            // dP ← dP ⊙ keep/(1−p) ; dS = P ⊙ (dP − D) ; P ← Pd
            let rd = drop.as_ref().map(|dr| RowDrop {
                drop: dr,
                flat0: ((bh * tq + i0) * tk + j0) as u64,
                stride: tk as u64,
            });
            p.grads_tile(st, dpt, bc, &dsum[i0..i0 + br], rd);
            // dv += Pdᵀ·dout
            let pdt_do = MatMul::new((bc, d, br), (st, 1, bc), (dob, d));
            p.matmul(Acc::Add, pdt_do, dvt, d);
            // dq += dS·k ; dk += dSᵀ·q   (scaled once at the end)
            let ds_k = MatMul::new((br, d, bc), (dpt, bc, 1), (ktile, d));
            p.matmul(Acc::Add, ds_k, &mut dqh[i0 * d..(i0 + br) * d], d);
            let dst_q = MatMul::new((bc, d, br), (dpt, 1, bc), (qb, d));
            p.matmul(Acc::Add, dst_q, dkt, d);
            i0 += br;
        }
        p.scale_row(dkt, scale);
        j0 += bc;
    }
    p.scale_row(dqh, scale);
}
