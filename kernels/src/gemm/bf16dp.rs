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
use super::x86_tile::tile_body;
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
    const STORE_BIAS: bool = true;
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
    // A pair is one 32-bit lane, read unaligned in place; B's lanes are loaded as f32 bits.
    tile_body! {
        tile: t, rows: MR, mr: MR, packed: PACKED, lanes: 16,
        zero: _mm512_setzero_ps(),
        elem: i32, packed_b_step: rsb,
        bases: [g0: 0 1 2, g1: 3 4 5, g2: 6 7 8, g3: 9 10 11],
        load_b: |p| std::mem::transmute::<__m512, __m512bh>(_mm512_loadu_ps(p)),
        bcast: |p| std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(p.read_unaligned())),
        madd: |acc, a, b| _mm512_dpbf16_ps(acc, a, b),
        store: {
            set1: _mm512_set1_ps, load: _mm512_loadu_ps, store: _mm512_storeu_ps,
            mul: _mm512_mul_ps, fmadd: _mm512_fmadd_ps, add: _mm512_add_ps
        }
    }
}
