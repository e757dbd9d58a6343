//! AVX-512F micro-kernel: a 12×32 tile of C in 24 zmm accumulators (two 16-lane vectors per
//! row); per k step two B loads and twelve A broadcasts feed 24 FMAs.

use super::driver::MicroKernel;
use std::arch::x86_64::*;

pub(crate) struct Avx512;

const MR: usize = 12;
const NR: usize = 32;

impl MicroKernel for Avx512 {
    const MR: usize = MR;
    const NR: usize = NR;
    const KC: usize = 384;
    const MC: usize = 16 * MR;

    unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        alpha: f32,
        beta: f32,
    ) {
        // SAFETY: forwarded contract of MicroKernel::tile (AVX-512F present, pointers valid).
        unsafe { tile_12x32(kc, a, b, c, ldc, alpha, beta) }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn tile_12x32(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    let mut lo = [_mm512_setzero_ps(); MR];
    let mut hi = [_mm512_setzero_ps(); MR];
    for i in 0..MR {
        // Warm the C tile while the k loop runs (prefetches never fault).
        let r = c.wrapping_add(i * ldc) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(r);
        _mm_prefetch::<_MM_HINT_T0>(r.wrapping_add(64));
        _mm_prefetch::<_MM_HINT_T0>(r.wrapping_add(124));
    }
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        // SAFETY: the caller guarantees kc·NR readable f32 at b and kc·MR at a; each step
        // reads NR and MR of them and advances by as much.
        unsafe {
            let b0 = _mm512_loadu_ps(b);
            let b1 = _mm512_loadu_ps(b.add(16));
            for i in 0..MR {
                let av = _mm512_set1_ps(*a.add(i));
                lo[i] = _mm512_fmadd_ps(av, b0, lo[i]);
                hi[i] = _mm512_fmadd_ps(av, b1, hi[i]);
            }
            a = a.add(MR);
            b = b.add(NR);
        }
    }
    let va = _mm512_set1_ps(alpha);
    let vb = _mm512_set1_ps(beta);
    for i in 0..MR {
        // SAFETY: the caller guarantees MR rows of NR writable f32 at stride ldc.
        unsafe {
            let r = c.add(i * ldc);
            if beta == 0.0 {
                _mm512_storeu_ps(r, _mm512_mul_ps(va, lo[i]));
                _mm512_storeu_ps(r.add(16), _mm512_mul_ps(va, hi[i]));
            } else {
                let c0 = _mm512_mul_ps(vb, _mm512_loadu_ps(r));
                let c1 = _mm512_mul_ps(vb, _mm512_loadu_ps(r.add(16)));
                _mm512_storeu_ps(r, _mm512_fmadd_ps(va, lo[i], c0));
                _mm512_storeu_ps(r.add(16), _mm512_fmadd_ps(va, hi[i], c1));
            }
        }
    }
}
