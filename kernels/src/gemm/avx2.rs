//! AVX2+FMA micro-kernel: a 6×16 tile of C in 12 ymm accumulators (two 8-lane vectors per
//! row); per k step two B loads and six A broadcasts feed 12 FMAs, which with the broadcast
//! register takes 15 of the 16 ymm registers; kernels for 1–5 rows take a last partial row
//! panel. The C tile is prefetched while the k loop runs, and A is packed once its block meets
//! 16 B panels (both measured on Zen 5 under `CLOZE_KERNEL=avx2`: +3–19% on the BERT shapes,
//! most on Aᵀ·B), or 2 when A is transposed with its rows a page or more apart (measured on
//! Zen 3, AVX2 only: the decoder's Aᵀ·B 8192×128×832 went from 29 to 53 GFLOP/s on 1 thread).
//! Panels are packed with ymm copies (prefetching source rows ahead) and 8×8 register
//! transposes (Bᵀ).

use super::driver::{check_bt_panel, check_panels, MicroKernel, Tile};
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
        unsafe { tile_rx16::<MR, true>(t) }
    }

    fn pack_bt_panel(b: &[f32], ldb: usize, kc: usize, dst: &mut [f32]) -> bool {
        if kc == 0 || !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return false;
        }
        check_bt_panel(b, ldb, kc, NR, dst);
        // SAFETY: AVX2 was just detected; the lengths were just checked.
        unsafe { pack_bt(b.as_ptr(), ldb, kc, dst.as_mut_ptr()) };
        true
    }

    fn pack_panels(
        src: &[f32],
        ld: usize,
        r: usize,
        panels: usize,
        kc: usize,
        dst: &mut [f32],
    ) -> bool {
        if kc == 0
            || panels == 0
            || !(r == MR || r == NR)
            || !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
        {
            return false;
        }
        check_panels(src, ld, (r, panels, kc), dst);
        // SAFETY: AVX2 was just detected; the lengths were just checked; r is MR or NR.
        unsafe { pack_rows(src.as_ptr(), ld, r, panels, kc, dst.as_mut_ptr()) };
        true
    }

    const STORE_BIAS: bool = true;
    const STRIDED_A: bool = true;
    const PACK_A_PANELS: usize = 16;
    const PACK_AT_FAR_PANELS: usize = 2;

    const EDGE_ROWS: bool = true;

    unsafe fn tile_strided(t: &Tile) {
        macro_rules! go {
            ($($r:literal)*) => {
                match t.rows {
                    // SAFETY: forwarded contract of MicroKernel::tile_strided (1 ≤ rows ≤ MR).
                    $($r => unsafe { tile_rx16::<$r, false>(t) },)*
                    _ => unreachable!("tile_strided: {} rows", t.rows),
                }
            };
        }
        go!(1 2 3 4 5 6)
    }
}

/// The kernel for the first `R ≤ MR` rows of a tile: on a packed A panel (`PACKED`, constant
/// offsets in the k loop) or reading A in place.
///
/// # Safety
/// As for [`MicroKernel::tile_strided`] with `rows = R` (packed panels when `PACKED`).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_rx16<const R: usize, const PACKED: bool>(t: &Tile) {
    // The prefetch warms the two cache lines a row of 16 f32 can touch.
    tile_body! {
        tile: t, rows: R, mr: MR, packed: PACKED, lanes: 8,
        zero: _mm256_setzero_ps(), prefetch: [0, 60],
        elem: f32, packed_b_step: NR,
        bases: [g0: 0 1 2, g1: 3 4 5],
        load_b: |p| _mm256_loadu_ps(p),
        bcast: |p| _mm256_broadcast_ss(&*p),
        madd: |acc, a, b| _mm256_fmadd_ps(a, b, acc),
        store: {
            set1: _mm256_set1_ps, load: _mm256_loadu_ps, store: _mm256_storeu_ps,
            mul: _mm256_mul_ps, fmadd: _mm256_fmadd_ps, add: _mm256_add_ps
        }
    }
}

/// Source rows this far ahead are prefetched while one is copied: a transposed A whose rows are
/// a page or more apart starts a new page at every row, which the hardware prefetchers do not
/// cross.
const PREFETCH_ROWS: usize = 4;

/// `dst[q·kc·r + p·r + x] = src[p·ld + q·r + x]` for `q < panels`, `p < kc`, `x < r`, with `r`
/// = 6 (MR: one 4-lane and one 2-lane move) or 16 (NR: two 8-lane moves). Each source row is
/// read once, and the row `PREFETCH_ROWS` ahead is prefetched (prefetches never fault).
///
/// # Safety
/// AVX2; `r` is 6 or 16; `src` readable at `p·ld + q·r + x` and `dst` writable for
/// `panels·kc·r` f32.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_rows(src: *const f32, ld: usize, r: usize, panels: usize, kc: usize, dst: *mut f32) {
    let width = panels * r;
    for p in 0..kc {
        if p + PREFETCH_ROWS < kc {
            let ahead = src.wrapping_add((p + PREFETCH_ROWS) * ld) as *const i8;
            for off in (0..4 * width).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(off));
            }
        }
        // SAFETY: row p, columns q·r..(q+1)·r of src and row p of panel q of dst are in
        // bounds for every q < panels (caller).
        unsafe {
            let s = src.add(p * ld);
            let d = dst.add(p * r);
            if r == NR {
                for q in 0..panels {
                    let (sq, dq) = (s.add(q * NR), d.add(q * kc * NR));
                    _mm256_storeu_ps(dq, _mm256_loadu_ps(sq));
                    _mm256_storeu_ps(dq.add(8), _mm256_loadu_ps(sq.add(8)));
                }
            } else {
                for q in 0..panels {
                    let (sq, dq) = (s.add(q * MR), d.add(q * kc * MR));
                    _mm_storeu_ps(dq, _mm_loadu_ps(sq));
                    let two = sq.add(4).cast::<u64>().read_unaligned();
                    dq.add(4).cast::<u64>().write_unaligned(two);
                }
            }
        }
    }
}

/// `dst[p·NR + jj] = b[jj·ldb + p]` for `p < kc`, `jj < NR`: 8×8 blocks are loaded as 8 rows of
/// 8 k values (masked for a last partial block) and transposed in registers (unpack, shuffle,
/// then 128-bit lane permutes), each half of the panel (8 columns) in turn.
///
/// # Safety
/// AVX2; `b` readable at `jj·ldb + p` and `dst` writable for `kc·NR` f32.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_bt(b: *const f32, ldb: usize, kc: usize, dst: *mut f32) {
    for half in 0..NR / 8 {
        let src = b.wrapping_add(half * 8 * ldb);
        let mut p = 0;
        while p < kc {
            let len = 8.min(kc - p);
            let rows: [__m256; 8] = if len == 8 {
                // SAFETY: row jj < NR of the panel holds kc readable f32 from p = 0 (caller).
                std::array::from_fn(|jj| unsafe { _mm256_loadu_ps(src.add(jj * ldb + p)) })
            } else {
                let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(len as i32), lanes);
                // SAFETY: as above; the mask stops at kc (masked lanes are not read).
                std::array::from_fn(|jj| unsafe { _mm256_maskload_ps(src.add(jj * ldb + p), mask) })
            };
            let out = transpose8(rows);
            for (c, v) in out.iter().enumerate().take(len) {
                // SAFETY: (p + c)·NR + half·8 + 8 ≤ kc·NR.
                unsafe { _mm256_storeu_ps(dst.add((p + c) * NR + half * 8), *v) };
            }
            p += 8;
        }
    }
}

/// Transposes an 8×8 block: `out[c]` lane `i` = `r[i]` lane `c`.
#[target_feature(enable = "avx2,fma")]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    // t[2i], t[2i+1]: rows 2i and 2i+1 interleaved (low and high pairs of each 128-bit lane).
    let t: [__m256; 8] = std::array::from_fn(|x| {
        let (i, hi) = (x / 2, x % 2 == 1);
        if hi {
            _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1])
        } else {
            _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1])
        }
    });
    // u[4g + q]: within each 128-bit lane L, column 4L + q of rows 4g..4g+4.
    let mut u = [_mm256_setzero_ps(); 8];
    for g in 0..2 {
        let (a, b, c, d) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
        u[4 * g] = _mm256_shuffle_ps::<0x44>(a, c);
        u[4 * g + 1] = _mm256_shuffle_ps::<0xEE>(a, c);
        u[4 * g + 2] = _mm256_shuffle_ps::<0x44>(b, d);
        u[4 * g + 3] = _mm256_shuffle_ps::<0xEE>(b, d);
    }
    // Column q (lane 0) and 4 + q (lane 1): rows 0..4 from u[q], rows 4..8 from u[4 + q].
    let mut out = [_mm256_setzero_ps(); 8];
    for q in 0..4 {
        out[q] = _mm256_permute2f128_ps::<0x20>(u[q], u[4 + q]);
        out[4 + q] = _mm256_permute2f128_ps::<0x31>(u[q], u[4 + q]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic distinct values, so a misplaced lane is always seen.
    fn values(len: usize) -> Vec<f32> {
        (0..len).map(|i| i as f32 * 0.5 + 1.0).collect()
    }

    fn avx2() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    #[test]
    fn pack_bt_panel_equals_scalar_transpose() {
        if !avx2() {
            return;
        }
        for kc in [1, 3, 7, 8, 9, 16, 17, 31, 256] {
            for pad in [0, 5] {
                let ldb = kc + pad;
                let b = values((NR - 1) * ldb + kc);
                let mut got = vec![f32::NAN; kc * NR];
                assert!(Avx2::pack_bt_panel(&b, ldb, kc, &mut got));
                for p in 0..kc {
                    for jj in 0..NR {
                        assert_eq!(
                            got[p * NR + jj],
                            b[jj * ldb + p],
                            "kc {kc} ld {ldb}: ({p}, {jj})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn pack_panels_equals_scalar_copy() {
        if !avx2() {
            return;
        }
        for r in [MR, NR] {
            for (panels, kc, pad) in [(1, 1, 0), (3, 5, 2), (24, 256, 7), (2, 9, 1100)] {
                let ld = panels * r + pad;
                let src = values((kc - 1) * ld + panels * r);
                let mut got = vec![f32::NAN; panels * kc * r];
                assert!(Avx2::pack_panels(&src, ld, r, panels, kc, &mut got));
                for q in 0..panels {
                    for p in 0..kc {
                        for x in 0..r {
                            assert_eq!(
                                got[q * kc * r + p * r + x],
                                src[p * ld + q * r + x],
                                "r {r}, {panels} panels, kc {kc}: ({q}, {p}, {x})"
                            );
                        }
                    }
                }
            }
        }
        // Other widths are left to the generic packer.
        let mut dst = [0.0; 8];
        assert!(!Avx2::pack_panels(&[0.0; 8], 8, 8, 1, 1, &mut dst));
    }
}
