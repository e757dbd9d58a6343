//! AVX2+FMA micro-kernel: a 6×16 tile of C in 12 ymm accumulators (two 8-lane vectors per
//! row); per k step two B loads and six A broadcasts feed 12 FMAs.

use super::driver::MicroKernel;
use std::arch::x86_64::*;

pub(crate) struct Avx2;

const MR: usize = 6;
const NR: usize = 16;

impl MicroKernel for Avx2 {
    const MR: usize = MR;
    const NR: usize = NR;
    const KC: usize = 256;
    const MC: usize = 24 * MR;

    unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        alpha: f32,
        beta: f32,
    ) {
        // SAFETY: forwarded contract of MicroKernel::tile (AVX2+FMA present, pointers valid).
        unsafe { packed(kc, a, b, c, ldc, alpha, beta) }
    }

    const STRIDED_A: bool = true;

    unsafe fn tile_strided(
        kc: usize,
        a: *const f32,
        rsa: usize,
        csa: usize,
        b: *const f32,
        rsb: usize,
        c: *mut f32,
        ldc: usize,
        alpha: f32,
        beta: f32,
    ) {
        // SAFETY: forwarded contract of MicroKernel::tile_strided.
        unsafe { strided(kc, a, rsa, csa, b, rsb, c, ldc, alpha, beta) }
    }
}

/// The kernel on a packed A panel (constant offsets in the k loop).
#[target_feature(enable = "avx2,fma")]
unsafe fn packed(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    // SAFETY: forwarded contract; a packed panel has rsa = 1, csa = MR.
    unsafe { tile_6x16::<true>(kc, a, 1, MR, b, NR, c, ldc, alpha, beta) }
}

/// The kernel reading A in place.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn strided(
    kc: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    rsb: usize,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    // SAFETY: forwarded contract.
    unsafe { tile_6x16::<false>(kc, a, rsa, csa, b, rsb, c, ldc, alpha, beta) }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_6x16<const PACKED: bool>(
    kc: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    rsb: usize,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    let mut lo = [_mm256_setzero_ps(); MR];
    let mut hi = [_mm256_setzero_ps(); MR];
    let mut b = b;
    if PACKED {
        let mut a = a;
        for _ in 0..kc {
            // SAFETY: the caller guarantees kc·NR readable f32 at b and kc·MR at a; each step
            // reads NR and MR of them and advances by as much.
            unsafe {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                for i in 0..MR {
                    let av = _mm256_broadcast_ss(&*a.add(i));
                    lo[i] = _mm256_fmadd_ps(av, b0, lo[i]);
                    hi[i] = _mm256_fmadd_ps(av, b1, hi[i]);
                }
                a = a.add(MR);
                b = b.add(NR);
            }
        }
    } else {
        // Unpacked A, element (i, p) at a + i·rsa + p·csa: rows addressed as one of MR/3 base
        // pointers plus 0, 1 or 2 strides. The bases' offsets go through black_box so LLVM cannot
        // rewrite them into one serial chain of pointer additions inside the k loop.
        let mut g0 = a;
        let mut g1 = a.wrapping_add(std::hint::black_box(3 * rsa));
        for _ in 0..kc {
            // SAFETY: the caller guarantees NR readable f32 at b + p·rsb and A element (i, p) at
            // a + i·rsa + p·csa for i < MR, p < kc; each step reads one p and advances by one.
            unsafe {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                macro_rules! row {
                    ($i:expr, $ptr:expr) => {
                        let av = _mm256_broadcast_ss(&*$ptr);
                        lo[$i] = _mm256_fmadd_ps(av, b0, lo[$i]);
                        hi[$i] = _mm256_fmadd_ps(av, b1, hi[$i]);
                    };
                }
                row!(0, g0);
                row!(1, g0.add(rsa));
                row!(2, g0.add(2 * rsa));
                row!(3, g1);
                row!(4, g1.add(rsa));
                row!(5, g1.add(2 * rsa));
                g0 = g0.add(csa);
                g1 = g1.add(csa);
                b = b.add(rsb);
            }
        }
    }
    let va = _mm256_set1_ps(alpha);
    let vb = _mm256_set1_ps(beta);
    for i in 0..MR {
        // SAFETY: the caller guarantees MR rows of NR writable f32 at stride ldc.
        unsafe {
            let r = c.add(i * ldc);
            if beta == 0.0 {
                _mm256_storeu_ps(r, _mm256_mul_ps(va, lo[i]));
                _mm256_storeu_ps(r.add(8), _mm256_mul_ps(va, hi[i]));
            } else {
                let c0 = _mm256_mul_ps(vb, _mm256_loadu_ps(r));
                let c1 = _mm256_mul_ps(vb, _mm256_loadu_ps(r.add(8)));
                _mm256_storeu_ps(r, _mm256_fmadd_ps(va, lo[i], c0));
                _mm256_storeu_ps(r.add(8), _mm256_fmadd_ps(va, hi[i], c1));
            }
        }
    }
}
