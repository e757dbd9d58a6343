//! bf16 × bf16 micro-kernel on `vdpbf16ps` (AVX512-BF16), f32 accumulation, run by the f32
//! driver over k-pair panels (`KSTEP == 2`).
//!
//! A panel lane holds two bf16 of consecutive k values, `lo | hi << 16` (see `pack`): per k
//! pair, a B panel holds NR lanes (b[p][j], b[p+1][j]), an A panel MR lanes (a[i][p],
//! a[i][p+1]); an untransposed bf16 A is read in place, each pair one unaligned 32-bit read.
//! One `vdpbf16ps` adds `a[i][p]·b[p][j] + a[i][p+1]·b[p+1][j]` to 16 accumulators (bf16
//! products are exact in f32); a 12×32 tile lives in 24 zmm registers as in the f32 kernel. An
//! odd k is padded with a zero pair on both sides. The instruction flushes subnormal inputs and
//! results to zero, which f32 FMAs would not do.

use super::driver::{MicroKernel, Tile};
use super::x86_tile::{in_place_k_loop, store_rows};
use std::arch::x86_64::*;

pub(crate) struct Bf16Dp;

const MR: usize = 12;
const NR: usize = 32;

/// Whether this CPU can run the `vdpbf16ps` path.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bf16")
}

impl MicroKernel for Bf16Dp {
    const MR: usize = MR;
    const NR: usize = NR;
    /// k pairs per block (384 k values).
    const KC: usize = 192;
    const MC: usize = 16 * MR;
    const KSTEP: usize = 2;
    const STRIDED_A: bool = true;

    unsafe fn tile(t: &Tile) {
        // SAFETY: forwarded contract of MicroKernel::tile (AVX512-BF16 checked by the caller
        // of the driver, packed panels).
        unsafe { tile_12x32::<true>(t) }
    }

    unsafe fn tile_strided(t: &Tile) {
        // No EDGE_ROWS: the driver passes whole tiles only.
        assert_eq!(t.rows, MR, "tile_strided: {} rows", t.rows);
        // SAFETY: forwarded contract of MicroKernel::tile_strided.
        unsafe { tile_12x32::<false>(t) }
    }
}

/// One 12×32 tile over `t.kc` k pairs, on a packed A panel (`PACKED`, constant offsets) or
/// reading A's pairs in place (pair (i, pp) at byte `a + i·rsa + pp·csa`). Same arithmetic in
/// the same order either way.
///
/// # Safety
/// As for [`MicroKernel::tile_strided`] with `rows = MR`; the CPU has AVX512F and AVX512-BF16.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_12x32<const PACKED: bool>(t: &Tile) {
    let Tile {
        kc,
        a,
        rsa,
        csa,
        b,
        rsb,
        c,
        ldc,
        alpha,
        beta,
        ..
    } = *t;
    let mut lo = [_mm512_setzero_ps(); MR];
    let mut hi = [_mm512_setzero_ps(); MR];
    let mut b = b;
    if PACKED {
        let mut a = a.cast::<u32>();
        for _ in 0..kc {
            // SAFETY: each step reads NR lanes at b and MR lanes at a, within the caller's
            // bounds (kc·NR and kc·MR lanes).
            unsafe {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_ps(b));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_ps(b.add(16)));
                for i in 0..MR {
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(i) as i32));
                    lo[i] = _mm512_dpbf16_ps(lo[i], av, b0);
                    hi[i] = _mm512_dpbf16_ps(hi[i], av, b1);
                }
                a = a.add(MR);
                b = b.add(rsb);
            }
        }
    } else {
        macro_rules! row {
            ($i:expr, $ptr:expr, ($b0:ident, $b1:ident)) => {
                let v = ($ptr as *const i32).read_unaligned();
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(v));
                lo[$i] = _mm512_dpbf16_ps(lo[$i], av, $b0);
                hi[$i] = _mm512_dpbf16_ps(hi[$i], av, $b1);
            };
        }
        in_place_k_loop! {
            kc: kc, a: a, rsa: rsa, step: csa,
            bases: [g0: 0 1 2, g1: 3 4 5, g2: 6 7 8, g3: 9 10 11],
            each: {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_ps(b));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_ps(b.add(16)));
            },
            row: row(b0, b1),
            then: { b = b.add(rsb); }
        }
    }
    store_rows! {
        rows: MR, lo: lo, hi: hi, c: c, ldc: ldc, alpha: alpha, beta: beta, lanes: 16,
        set1: _mm512_set1_ps, load: _mm512_loadu_ps, store: _mm512_storeu_ps,
        mul: _mm512_mul_ps, fmadd: _mm512_fmadd_ps
    }
}
