//! AVX-512F micro-kernel: a 12×32 tile of C in 24 zmm accumulators (two 16-lane vectors per
//! row); per k step two B loads and twelve A broadcasts feed 24 FMAs.

use super::driver::{check_bt_panel, check_panels, MicroKernel, Tile};
use super::x86_tile::tile_body;
use std::arch::x86_64::*;

pub(crate) struct Avx512;

const MR: usize = 12;
const NR: usize = 32;

impl MicroKernel for Avx512 {
    const MR: usize = MR;
    const NR: usize = NR;
    const KC: usize = 512;
    const MC: usize = 16 * MR;

    unsafe fn tile(t: &Tile) {
        // SAFETY: forwarded contract of MicroKernel::tile (AVX-512F present, packed panels).
        unsafe { tile_rx32::<MR, true>(t) }
    }

    fn pack_bt_panel(b: &[f32], ldb: usize, kc: usize, dst: &mut [f32]) -> bool {
        if kc == 0 || !std::arch::is_x86_feature_detected!("avx512f") {
            return false;
        }
        check_bt_panel(b, ldb, kc, NR, dst);
        // SAFETY: AVX-512F was just detected; the lengths were just checked.
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
        if kc == 0 || panels == 0 || r == 0 || !std::arch::is_x86_feature_detected!("avx512f") {
            return false;
        }
        check_panels(src, ld, (r, panels, kc), dst);
        // SAFETY: AVX-512F was just detected; the lengths were just checked.
        unsafe { pack_rows(src.as_ptr(), ld, r, panels, kc, dst.as_mut_ptr()) };
        true
    }

    const STORE_BIAS: bool = true;
    const STRIDED_A: bool = true;
    const EDGE_ROWS: bool = true;
    const B_IN_PLACE: bool = true;

    unsafe fn tile_strided(t: &Tile) {
        macro_rules! go {
            ($($r:literal)*) => {
                match t.rows {
                    // SAFETY: forwarded contract of MicroKernel::tile_strided (1 ≤ rows ≤ MR).
                    $($r => unsafe { tile_rx32::<$r, false>(t) },)*
                    _ => unreachable!("tile_strided: {} rows", t.rows),
                }
            };
        }
        go!(1 2 3 4 5 6 7 8 9 10 11 12)
    }
}

/// The kernel for the first `R ≤ MR` rows of a tile: on a packed A panel (`PACKED`, constant
/// offsets in the k loop) or reading A in place.
///
/// # Safety
/// As for [`MicroKernel::tile_strided`] with `rows = R` (packed panels when `PACKED`).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile_rx32<const R: usize, const PACKED: bool>(t: &Tile) {
    tile_body! {
        tile: t, rows: R, mr: MR, packed: PACKED, lanes: 16,
        zero: _mm512_setzero_ps(), prefetch: [0, 64, 124],
        elem: f32, packed_b_step: NR,
        bases: [g0: 0 1 2, g1: 3 4 5, g2: 6 7 8, g3: 9 10 11],
        load_b: |p| _mm512_loadu_ps(p),
        bcast: |p| _mm512_set1_ps(*p),
        madd: |acc, a, b| _mm512_fmadd_ps(a, b, acc),
        store: {
            set1: _mm512_set1_ps, load: _mm512_loadu_ps, store: _mm512_storeu_ps,
            mul: _mm512_mul_ps, fmadd: _mm512_fmadd_ps, add: _mm512_add_ps
        }
    }
}

/// `dst[q·kc·r + p·r + x] = src[p·ld + q·r + x]` for `q < panels`, `p < kc`, `x < r`: each
/// source row is read once, in 16-lane pieces (the last one masked).
///
/// # Safety
/// AVX-512F; `src` readable at `p·ld + q·r + x` and `dst` writable for `panels·kc·r` f32.
#[target_feature(enable = "avx512f")]
unsafe fn pack_rows(src: *const f32, ld: usize, r: usize, panels: usize, kc: usize, dst: *mut f32) {
    let last = r - (r - 1) / 16 * 16;
    let mask: __mmask16 = if last == 16 {
        0xffff
    } else {
        (1u16 << last) - 1
    };
    let full = (r - 1) / 16;
    for p in 0..kc {
        for q in 0..panels {
            // SAFETY: row p, columns q·r..(q+1)·r of src and row p of panel q of dst are in
            // bounds (caller); the masked piece stops at r.
            unsafe {
                let s = src.add(p * ld + q * r);
                let d = dst.add(q * kc * r + p * r);
                for c in 0..full {
                    _mm512_storeu_ps(d.add(16 * c), _mm512_loadu_ps(s.add(16 * c)));
                }
                let v = _mm512_maskz_loadu_ps(mask, s.add(16 * full));
                _mm512_mask_storeu_ps(d.add(16 * full), mask, v);
            }
        }
    }
}

/// `dst[p·NR + jj] = b[jj·ldb + p]` for `p < kc`, `jj < NR`: 16×16 blocks are loaded as 16 rows
/// of 16 k values (masked for the last partial block) and transposed in registers (unpack,
/// then 64- and 128-bit lane shuffles).
///
/// # Safety
/// AVX-512F; `b` readable at `jj·ldb + p` and `dst` writable for `kc·NR` f32.
#[target_feature(enable = "avx512f")]
unsafe fn pack_bt(b: *const f32, ldb: usize, kc: usize, dst: *mut f32) {
    for half in 0..NR / 16 {
        let src = b.wrapping_add(half * 16 * ldb);
        let mut p = 0;
        while p < kc {
            let len = 16.min(kc - p);
            let mask: __mmask16 = if len == 16 { 0xffff } else { (1u16 << len) - 1 };
            // SAFETY: row jj < NR of the panel holds kc readable f32 from p = 0 (caller); the
            // mask stops at kc.
            let r: [__m512; 16] = std::array::from_fn(|jj| unsafe {
                _mm512_maskz_loadu_ps(mask, src.add(jj * ldb + p))
            });
            let out = transpose16(r);
            for (c, v) in out.iter().enumerate().take(len) {
                // SAFETY: (p + c)·NR + half·16 + 16 ≤ kc·NR.
                unsafe { _mm512_storeu_ps(dst.add((p + c) * NR + half * 16), *v) };
            }
            p += 16;
        }
    }
}

/// Transposes a 16×16 block: `out[c]` lane `r` = `r[r]` lane `c`.
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // Pairs of rows interleaved: lane group L of t[2i] = (r2i[4L], r2i+1[4L], r2i[4L+1], ..).
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // u[4i + q], 128-bit lane L = column 4L + q of rows 4i..4i+4.
    let mut u = [_mm512_setzero_ps(); 16];
    for i in 0..4 {
        u[4 * i] = _mm512_shuffle_ps::<0x44>(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_shuffle_ps::<0x44>(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * i + 1], t[4 * i + 3]);
    }
    // Gather lane L of u[q], u[4 + q], u[8 + q], u[12 + q] into out[4L + q].
    let mut out = [_mm512_setzero_ps(); 16];
    for q in 0..4 {
        let lo01 = _mm512_shuffle_f32x4::<0x44>(u[q], u[4 + q]);
        let hi01 = _mm512_shuffle_f32x4::<0xEE>(u[q], u[4 + q]);
        let lo23 = _mm512_shuffle_f32x4::<0x44>(u[8 + q], u[12 + q]);
        let hi23 = _mm512_shuffle_f32x4::<0xEE>(u[8 + q], u[12 + q]);
        out[q] = _mm512_shuffle_f32x4::<0x88>(lo01, lo23);
        out[4 + q] = _mm512_shuffle_f32x4::<0xDD>(lo01, lo23);
        out[8 + q] = _mm512_shuffle_f32x4::<0x88>(hi01, hi23);
        out[12 + q] = _mm512_shuffle_f32x4::<0xDD>(hi01, hi23);
    }
    out
}
