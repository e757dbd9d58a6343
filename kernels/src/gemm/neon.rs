//! aarch64 NEON micro-kernel: an 8×8 tile of C in 16 q-register accumulators; per k step two
//! B loads and two A loads feed 16 lane-indexed FMAs.

use super::driver::{MicroKernel, Tile};
use std::arch::aarch64::*;

pub(crate) struct Neon;

const MR: usize = 8;
const NR: usize = 8;

impl MicroKernel for Neon {
    const MR: usize = MR;
    const NR: usize = NR;
    const KC: usize = 256;
    const MC: usize = 16 * MR;

    unsafe fn tile(t: &Tile) {
        let (kc, a, b, c, ldc) = (t.kc, t.a.cast::<f32>(), t.b, t.c, t.ldc);
        let (alpha, beta) = (t.alpha, t.beta);
        // SAFETY: forwarded contract of MicroKernel::tile (NEON present, pointers valid).
        unsafe { tile_8x8(kc, a, b, c, ldc, alpha, beta) }
    }
}

#[target_feature(enable = "neon")]
unsafe fn tile_8x8(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    let z = vdupq_n_f32(0.0);
    let mut lo = [z; MR];
    let mut hi = [z; MR];
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        // SAFETY: the caller guarantees kc·NR readable f32 at b and kc·MR at a; each step
        // reads NR and MR of them and advances by as much.
        unsafe {
            let b0 = vld1q_f32(b);
            let b1 = vld1q_f32(b.add(4));
            let a0 = vld1q_f32(a);
            let a1 = vld1q_f32(a.add(4));
            lo[0] = vfmaq_laneq_f32::<0>(lo[0], b0, a0);
            hi[0] = vfmaq_laneq_f32::<0>(hi[0], b1, a0);
            lo[1] = vfmaq_laneq_f32::<1>(lo[1], b0, a0);
            hi[1] = vfmaq_laneq_f32::<1>(hi[1], b1, a0);
            lo[2] = vfmaq_laneq_f32::<2>(lo[2], b0, a0);
            hi[2] = vfmaq_laneq_f32::<2>(hi[2], b1, a0);
            lo[3] = vfmaq_laneq_f32::<3>(lo[3], b0, a0);
            hi[3] = vfmaq_laneq_f32::<3>(hi[3], b1, a0);
            lo[4] = vfmaq_laneq_f32::<0>(lo[4], b0, a1);
            hi[4] = vfmaq_laneq_f32::<0>(hi[4], b1, a1);
            lo[5] = vfmaq_laneq_f32::<1>(lo[5], b0, a1);
            hi[5] = vfmaq_laneq_f32::<1>(hi[5], b1, a1);
            lo[6] = vfmaq_laneq_f32::<2>(lo[6], b0, a1);
            hi[6] = vfmaq_laneq_f32::<2>(hi[6], b1, a1);
            lo[7] = vfmaq_laneq_f32::<3>(lo[7], b0, a1);
            hi[7] = vfmaq_laneq_f32::<3>(hi[7], b1, a1);
            a = a.add(MR);
            b = b.add(NR);
        }
    }
    let va = vdupq_n_f32(alpha);
    let vb = vdupq_n_f32(beta);
    for i in 0..MR {
        // SAFETY: the caller guarantees MR rows of NR writable f32 at stride ldc.
        unsafe {
            let r = c.add(i * ldc);
            if beta == 0.0 {
                vst1q_f32(r, vmulq_f32(va, lo[i]));
                vst1q_f32(r.add(4), vmulq_f32(va, hi[i]));
            } else {
                let c0 = vmulq_f32(vb, vld1q_f32(r));
                let c1 = vmulq_f32(vb, vld1q_f32(r.add(4)));
                vst1q_f32(r, vfmaq_f32(c0, va, lo[i]));
                vst1q_f32(r.add(4), vfmaq_f32(c1, va, hi[i]));
            }
        }
    }
}
