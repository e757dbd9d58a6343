//! AVX2+FMA micro-kernel: a 6×16 tile of C in 12 ymm accumulators (two 8-lane vectors per
//! row); per k step two B loads and six A broadcasts feed 12 FMAs, which with the broadcast
//! register takes 15 of the 16 ymm registers. The C tile is prefetched while the k loop runs,
//! and A is packed once its block meets 16 B panels (both measured on Zen 5 under
//! `CLOZE_KERNEL=avx2`: +3–19% on the BERT shapes, most on Aᵀ·B), or 2 when A is transposed
//! with its rows a page or more apart (measured on Zen 3, AVX2 only: the decoder's Aᵀ·B
//! 8192×128×832 went from 29 to 53 GFLOP/s on 1 thread).

use super::driver::{MicroKernel, Tile};
use super::x86_tile::tile_body;
use std::arch::x86_64::*;

pub(crate) struct Avx2;

const MR: usize = 6;
const NR: usize = 16;

impl MicroKernel for Avx2 {
    const MR: usize = MR;
    const NR: usize = NR;
    const KC: usize = 256;
    const MC: usize = 24 * MR;

    unsafe fn tile(t: &Tile) {
        // SAFETY: forwarded contract of MicroKernel::tile (AVX2+FMA present, packed panels).
        unsafe { tile_6x16::<true>(t) }
    }

    const STRIDED_A: bool = true;
    const PACK_A_PANELS: usize = 16;
    const PACK_AT_FAR_PANELS: usize = 2;

    unsafe fn tile_strided(t: &Tile) {
        // No EDGE_ROWS: the driver passes whole tiles only.
        assert_eq!(t.rows, MR, "tile_strided: {} rows", t.rows);
        // SAFETY: forwarded contract of MicroKernel::tile_strided.
        unsafe { tile_6x16::<false>(t) }
    }
}

/// The kernel on a packed A panel (`PACKED`, constant offsets in the k loop) or reading A in
/// place.
///
/// # Safety
/// As for [`MicroKernel::tile_strided`] with `rows = MR` (packed panels when `PACKED`).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_6x16<const PACKED: bool>(t: &Tile) {
    // The prefetch warms the two cache lines a row of 16 f32 can touch.
    tile_body! {
        tile: t, rows: MR, mr: MR, packed: PACKED, lanes: 8,
        zero: _mm256_setzero_ps(), prefetch: [0, 60],
        elem: f32, packed_b_step: NR,
        bases: [g0: 0 1 2, g1: 3 4 5],
        load_b: |p| _mm256_loadu_ps(p),
        bcast: |p| _mm256_broadcast_ss(&*p),
        madd: |acc, a, b| _mm256_fmadd_ps(a, b, acc),
        store: {
            set1: _mm256_set1_ps, load: _mm256_loadu_ps, store: _mm256_storeu_ps,
            mul: _mm256_mul_ps, fmadd: _mm256_fmadd_ps
        }
    }
}
