//! Portable micro-kernel on `wide::f32x8` (two SSE2 vectors on a default x86_64 build, two NEON
//! vectors on aarch64): a 6×8 tile of C in six f32x8 accumulators.

use super::driver::{MicroKernel, Tile};
use wide::f32x8;

pub(crate) struct Portable;

const MR: usize = 6;
const NR: usize = 8;

impl MicroKernel for Portable {
    const MR: usize = MR;
    const NR: usize = NR;
    const KC: usize = 256;
    const MC: usize = 32 * MR;

    unsafe fn tile(t: &Tile) {
        debug_assert!(
            t.rows == MR && t.rsb == NR,
            "portable tile: packed panels only"
        );
        let (kc, a, b, c, ldc) = (t.kc, t.a.cast::<f32>(), t.b, t.c, t.ldc);
        let (alpha, beta) = (t.alpha, t.beta);
        // SAFETY: the caller guarantees kc·MR readable f32 at a, kc·NR at b and MR rows of NR
        // f32 at stride ldc at c (the last row needs only NR, so the length below is exact).
        let (a, b, c) = unsafe {
            (
                std::slice::from_raw_parts(a, kc * MR),
                std::slice::from_raw_parts(b, kc * NR),
                std::slice::from_raw_parts_mut(c, (MR - 1) * ldc + NR),
            )
        };
        tile_6x8(kc, a, b, c, ldc, alpha, beta)
    }
}

#[inline(always)]
fn load8(s: &[f32]) -> f32x8 {
    let arr: [f32; 8] = s[..8].try_into().expect("8 lanes");
    f32x8::new(arr)
}

fn tile_6x8(kc: usize, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, alpha: f32, beta: f32) {
    let mut acc = [f32x8::ZERO; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(kc) {
        let bv = load8(bp);
        for i in 0..MR {
            acc[i] = f32x8::splat(ap[i]).mul_add(bv, acc[i]);
        }
    }
    let va = f32x8::splat(alpha);
    let vb = f32x8::splat(beta);
    for (i, acc) in acc.iter().enumerate() {
        let row = &mut c[i * ldc..i * ldc + NR];
        let out = if beta == 0.0 {
            va * *acc
        } else {
            va.mul_add(*acc, vb * load8(row))
        };
        row.copy_from_slice(&out.to_array());
    }
}
