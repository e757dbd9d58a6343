//! AVX-512F inner loops: a 4-row × 64-column FMA micro-kernel (8 × 32 for narrow panels; masked
//! loads/stores for ragged edges, so any `d` and tile width work), a vectorised `exp`, and a
//! vectorised dropout hash.

use super::{check_matmul, Drop, Prims, RowDrop, Valid};
use std::arch::x86_64::*;

/// Proof that the CPU has AVX-512F, AVX2 and FMA: only [`Avx512::new`] makes one.
pub(crate) struct Avx512(());

impl Avx512 {
    pub fn new() -> Option<Avx512> {
        crate::dispatch::Isa::Avx512
            .is_supported()
            .then_some(Avx512(()))
    }
}

const MR: usize = 4;
const NV: usize = 4;
const L: usize = 16;

#[inline(always)]
fn lane_mask(cols: usize) -> __mmask16 {
    if cols >= L {
        0xFFFF
    } else {
        ((1u32 << cols) - 1) as __mmask16
    }
}

/// `C[R × 16·V] += A·B` (`ACC`) or `C = A·B` (not `ACC`) for one register block.
///
/// # Safety
/// AVX-512F available; for `r < R`, `p < k`, and every unmasked lane `j`: `a + r·a_rs + p·a_cs`,
/// `b + p·ldb + j`, `c + r·ldc + j` are in bounds.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn block<const R: usize, const V: usize, const ACC: bool>(
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    masks: [__mmask16; NV],
) {
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for r in 0..R {
        for v in 0..V {
            if !ACC {
                continue;
            }
            // SAFETY: in bounds by the caller's contract (masked lanes are not read).
            acc[r][v] = unsafe { _mm512_maskz_loadu_ps(masks[v], c.add(r * ldc + v * L)) };
        }
    }
    for p in 0..k {
        let mut bv = [_mm512_setzero_ps(); V];
        for v in 0..V {
            // SAFETY: as above.
            bv[v] = unsafe { _mm512_maskz_loadu_ps(masks[v], b.add(p * ldb + v * L)) };
        }
        for r in 0..R {
            // SAFETY: as above.
            let av = _mm512_set1_ps(unsafe { *a.add(r * a_rs + p * a_cs) });
            for v in 0..V {
                acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
            }
        }
    }
    for r in 0..R {
        for v in 0..V {
            // SAFETY: as above.
            unsafe { _mm512_mask_storeu_ps(c.add(r * ldc + v * L), masks[v], acc[r][v]) };
        }
    }
}

/// # Safety
/// AVX-512F available and [`check_matmul`] passed for these arguments.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let mut j0 = 0;
    while j0 < n {
        let w = (n - j0).min(NV * L);
        let nv = w.div_ceil(L);
        let mut masks = [0 as __mmask16; NV];
        for (v, mk) in masks.iter_mut().enumerate().take(nv) {
            *mk = lane_mask(w - v * L);
        }
        let mut i0 = 0;
        while i0 < m {
            // Narrow panels (≤ 32 columns, e.g. head dim 32) take 8 rows so that 16
            // accumulators hide the FMA latency.
            let rows = if nv <= 2 && m - i0 >= 2 * MR {
                2 * MR
            } else {
                (m - i0).min(MR)
            };
            // SAFETY: rows i0..i0+rows < m and columns j0..j0+w ≤ n lie inside the block that
            // check_matmul validated; lanes past w are masked off.
            unsafe {
                let ap = a.add(i0 * a_rs);
                let bp = b.add(j0);
                let cp = c.add(i0 * ldc + j0);
                macro_rules! go {
                    ($r:literal, $v:literal) => {
                        if accumulate {
                            block::<$r, $v, true>(k, ap, a_rs, a_cs, bp, ldb, cp, ldc, masks)
                        } else {
                            block::<$r, $v, false>(k, ap, a_rs, a_cs, bp, ldb, cp, ldc, masks)
                        }
                    };
                }
                match (rows, nv) {
                    (8, 2) => go!(8, 2),
                    (8, _) => go!(8, 1),
                    (4, 4) => go!(4, 4),
                    (4, 3) => go!(4, 3),
                    (4, 2) => go!(4, 2),
                    (4, 1) => go!(4, 1),
                    (3, 4) => go!(3, 4),
                    (3, 3) => go!(3, 3),
                    (3, 2) => go!(3, 2),
                    (3, 1) => go!(3, 1),
                    (2, 4) => go!(2, 4),
                    (2, 3) => go!(2, 3),
                    (2, 2) => go!(2, 2),
                    (2, 1) => go!(2, 1),
                    (1, 4) => go!(1, 4),
                    (1, 3) => go!(1, 3),
                    (1, 2) => go!(1, 2),
                    _ => go!(1, 1),
                }
            }
            i0 += rows;
        }
        j0 += w;
    }
}

/// `exp(x)` for `x ≤ ~88`, 0 below −87.3 (and for `-inf`); Cephes polynomial, ≤ 2 ulp.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp16(x: __m512) -> __m512 {
    {
        let lo = _mm512_set1_ps(-87.336_54);
        let under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
        let x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.376_26)), lo);
        let n = _mm512_roundscale_ps(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
        let mut y = _mm512_set1_ps(1.987_569_1e-4);
        y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.398_2e-3));
        y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.333_452e-3));
        y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.166_579_6e-2));
        y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.666_666_5e-1));
        y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(0.5));
        let r2 = _mm512_mul_ps(r, r);
        y = _mm512_fmadd_ps(y, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0)));
        let e = _mm512_scalef_ps(y, n);
        _mm512_mask_mov_ps(e, under, _mm512_setzero_ps())
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn scale_mask_max(row: &mut [f32], scale: f32, mask: Option<&[f32]>, valid: usize) -> f32 {
    let n = row.len();
    if let Some(m) = mask {
        assert!(m.len() >= valid.min(n), "attention: mask tile too short");
    }
    let sc = _mm512_set1_ps(scale);
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut mx = ninf;
    let mut j = 0;
    while j < n {
        let lm = lane_mask(n - j);
        let vm = lane_mask(valid.saturating_sub(j));
        let p = row[j..].as_mut_ptr();
        // SAFETY: lanes of lm are < n − j, inside row; lanes of vm are < valid − j, inside mask.
        unsafe {
            let x = _mm512_maskz_loadu_ps(lm, p);
            let add = match mask {
                Some(m) => _mm512_maskz_loadu_ps(vm & lm, m.as_ptr().add(j)),
                None => _mm512_setzero_ps(),
            };
            let y = _mm512_mask_blend_ps(vm & lm, ninf, _mm512_fmadd_ps(x, sc, add));
            _mm512_mask_storeu_ps(p, lm, y);
            mx = _mm512_max_ps(mx, y);
        }
        j += L;
    }
    _mm512_reduce_max_ps(mx)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn exp_sum(row: &mut [f32], m: f32) -> f32 {
    let n = row.len();
    let mv = _mm512_set1_ps(m);
    let mut s = _mm512_setzero_ps();
    let mut j = 0;
    while j < n {
        let lm = lane_mask(n - j);
        let p = row[j..].as_mut_ptr();
        // SAFETY: masked lanes stay inside row.
        unsafe {
            let e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(lm, p), mv));
            let e = _mm512_maskz_mov_ps(lm, e);
            _mm512_mask_storeu_ps(p, lm, e);
            s = _mm512_add_ps(s, e);
        }
        j += L;
    }
    _mm512_reduce_add_ps(s)
}

/// `row[j] = keep ? exp(row[j] − m)·inv : 0`; returns `Σ exp(row[j] − m)` (undropped).
#[inline]
#[target_feature(enable = "avx512f")]
fn exp_sum_dropout(row: &mut [f32], m: f32, drop: &Drop, flat0: u64) -> f32 {
    let n = row.len();
    if !no_wrap(flat0, n) {
        let s = exp_sum(row, m);
        super::dropout_scalar(row, drop, flat0);
        return s;
    }
    let mv = _mm512_set1_ps(m);
    let inv = _mm512_set1_ps(drop.inv);
    let mut s = _mm512_setzero_ps();
    let mut j = 0;
    while j < n {
        let lm = lane_mask(n - j);
        let keep = keep16(
            drop,
            (flat0 as u32).wrapping_add(j as u32),
            (flat0 >> 32) as u32,
        );
        let p = row[j..].as_mut_ptr();
        // SAFETY: masked lanes stay inside row.
        unsafe {
            let e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(lm, p), mv));
            let e = _mm512_maskz_mov_ps(lm, e);
            s = _mm512_add_ps(s, e);
            _mm512_mask_storeu_ps(p, lm, _mm512_maskz_mul_ps(keep, e, inv));
        }
        j += L;
    }
    _mm512_reduce_add_ps(s)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn probs(row: &mut [f32], scale: f32, mask: Option<&[f32]>, lse: f32, valid: usize) {
    let n = row.len();
    if let Some(m) = mask {
        assert!(m.len() >= valid.min(n), "attention: mask tile too short");
    }
    let sc = _mm512_set1_ps(scale);
    let lv = _mm512_set1_ps(lse);
    let mut j = 0;
    while j < n {
        let lm = lane_mask(n - j);
        let vm = lane_mask(valid.saturating_sub(j)) & lm;
        let p = row[j..].as_mut_ptr();
        // SAFETY: lanes of lm are inside row, lanes of vm inside mask.
        unsafe {
            let x = _mm512_maskz_loadu_ps(lm, p);
            let add = match mask {
                Some(m) => _mm512_maskz_loadu_ps(vm, m.as_ptr().add(j)),
                None => _mm512_setzero_ps(),
            };
            let y = _mm512_sub_ps(_mm512_fmadd_ps(x, sc, add), lv);
            let e = _mm512_maskz_mov_ps(vm, exp16(y));
            _mm512_mask_storeu_ps(p, lm, e);
        }
        j += L;
    }
}

/// Keep mask of 16 consecutive flat indices `lo + lane` (no 32-bit wrap inside), high half `hi`.
#[inline]
#[target_feature(enable = "avx512f")]
fn mix16(x: __m512i) -> __m512i {
    let x = _mm512_xor_si512(x, _mm512_srli_epi32::<16>(x));
    let x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x7FEB_352D));
    let x = _mm512_xor_si512(x, _mm512_srli_epi32::<15>(x));
    let x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x846C_A68Bu32 as i32));
    _mm512_xor_si512(x, _mm512_srli_epi32::<16>(x))
}

#[inline]
#[target_feature(enable = "avx512f")]
fn keep16(drop: &Drop, lo: u32, hi: u32) -> __mmask16 {
    {
        let idx = _mm512_add_epi32(
            _mm512_set1_epi32(lo as i32),
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        );
        let h = mix16(_mm512_xor_si512(idx, _mm512_set1_epi32(drop.k0 as i32)));
        let h = mix16(_mm512_xor_si512(
            h,
            _mm512_set1_epi32((hi ^ drop.k1) as i32),
        ));
        _mm512_cmpge_epu32_mask(h, _mm512_set1_epi32(drop.thr as i32))
    }
}

/// Whether the 32-bit low halves of `flat0 .. flat0 + n` do not wrap.
fn no_wrap(flat0: u64, n: usize) -> bool {
    (flat0 as u32 as u64) + n as u64 <= 1u64 << 32
}

#[target_feature(enable = "avx512f")]
fn dropout(row: &mut [f32], drop: &Drop, flat0: u64) {
    let n = row.len();
    if !no_wrap(flat0, n) {
        return super::dropout_scalar(row, drop, flat0);
    }
    let inv = _mm512_set1_ps(drop.inv);
    let mut j = 0;
    while j < n {
        let lm = lane_mask(n - j);
        let keep = keep16(
            drop,
            (flat0 as u32).wrapping_add(j as u32),
            (flat0 >> 32) as u32,
        );
        let p = row[j..].as_mut_ptr();
        // SAFETY: masked lanes stay inside row.
        unsafe {
            let x = _mm512_maskz_loadu_ps(lm, p);
            _mm512_mask_storeu_ps(p, lm, _mm512_maskz_mul_ps(keep, x, inv));
        }
        j += L;
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn grads_row(p: &mut [f32], dp: &mut [f32], dsum: f32, drop: Option<(&Drop, u64)>) {
    let n = p.len();
    assert_eq!(dp.len(), n, "attention: gradient rows differ");
    if let Some((_, flat0)) = drop {
        if !no_wrap(flat0, n) {
            return super::grads_row_scalar(p, dp, dsum, drop);
        }
    }
    let dv = _mm512_set1_ps(dsum);
    let mut j = 0;
    while j < n {
        let lm = lane_mask(n - j);
        // SAFETY: masked lanes stay inside both rows of length n.
        unsafe {
            let pp = p.as_mut_ptr().add(j);
            let gp = dp.as_mut_ptr().add(j);
            let x = _mm512_maskz_loadu_ps(lm, pp);
            let g = _mm512_maskz_loadu_ps(lm, gp);
            match drop {
                None => {
                    _mm512_mask_storeu_ps(gp, lm, _mm512_mul_ps(x, _mm512_sub_ps(g, dv)));
                }
                Some((dr, flat0)) => {
                    let keep = keep16(
                        dr,
                        (flat0 as u32).wrapping_add(j as u32),
                        (flat0 >> 32) as u32,
                    );
                    let inv = _mm512_set1_ps(dr.inv);
                    let g = _mm512_maskz_mul_ps(keep, g, inv);
                    _mm512_mask_storeu_ps(gp, lm, _mm512_mul_ps(x, _mm512_sub_ps(g, dv)));
                    _mm512_mask_storeu_ps(pp, lm, _mm512_maskz_mul_ps(keep, x, inv));
                }
            }
        }
        j += L;
    }
}

#[target_feature(enable = "avx512f")]
fn scale_row(row: &mut [f32], alpha: f32) {
    let n = row.len();
    let av = _mm512_set1_ps(alpha);
    let mut j = 0;
    while j < n {
        let lm = lane_mask(n - j);
        // SAFETY: masked lanes stay inside row.
        unsafe {
            let p = row.as_mut_ptr().add(j);
            _mm512_mask_storeu_ps(p, lm, _mm512_mul_ps(_mm512_maskz_loadu_ps(lm, p), av));
        }
        j += L;
    }
}

#[target_feature(enable = "avx512f")]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut s = _mm512_setzero_ps();
    let mut j = 0;
    while j < n {
        let lm = lane_mask(n - j);
        // SAFETY: masked lanes stay inside both slices.
        unsafe {
            s = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(lm, a.as_ptr().add(j)),
                _mm512_maskz_loadu_ps(lm, b.as_ptr().add(j)),
                s,
            );
        }
        j += L;
    }
    _mm512_reduce_add_ps(s)
}

#[target_feature(enable = "avx512f")]
fn scale_mask_max_tile(
    s: &mut [f32],
    cols: usize,
    scale: f32,
    mask: Option<&[f32]>,
    valid: Valid,
    maxes: &mut [f32],
) {
    super::each_row_max(s, cols, valid, maxes, |row, v| {
        scale_mask_max(row, scale, mask, v)
    })
}

#[target_feature(enable = "avx512f")]
fn exp_tile(s: &mut [f32], cols: usize, m: &[f32], sums: &mut [f32], drop: Option<RowDrop<'_>>) {
    super::each_row_exp(
        s,
        cols,
        m,
        sums,
        drop,
        |row, mr| exp_sum(row, mr),
        |row, mr, dr, f0| exp_sum_dropout(row, mr, dr, f0),
    )
}

#[target_feature(enable = "avx512f")]
fn probs_tile(
    s: &mut [f32],
    cols: usize,
    scale: f32,
    mask: Option<&[f32]>,
    lse: &[f32],
    valid: Valid,
) {
    super::each_row_probs(s, cols, lse, valid, |row, l, v| {
        probs(row, scale, mask, l, v)
    })
}

#[target_feature(enable = "avx512f")]
fn grads_tile(p: &mut [f32], dp: &mut [f32], cols: usize, dsum: &[f32], drop: Option<RowDrop<'_>>) {
    super::each_row_grads(p, dp, cols, dsum, drop, |pr, gr, ds, dr| {
        grads_row(pr, gr, ds, dr)
    })
}

// SAFETY (all methods below): an `Avx512` exists only when the CPU has AVX-512F (see `new`), so
// calling the `avx512f` functions is sound; slice bounds are checked inside them.
impl Prims for Avx512 {
    fn matmul_acc(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        a_rs: usize,
        a_cs: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
    ) {
        if check_matmul(m, n, k, a, a_rs, a_cs, b, ldb, c, ldc) {
            // SAFETY: AVX-512F present (self exists); bounds checked by check_matmul.
            unsafe {
                matmul(
                    m,
                    n,
                    k,
                    a.as_ptr(),
                    a_rs,
                    a_cs,
                    b.as_ptr(),
                    ldb,
                    c.as_mut_ptr(),
                    ldc,
                    true,
                )
            }
        }
    }

    fn matmul_set(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        a_rs: usize,
        a_cs: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
    ) {
        if k == 0 {
            return super::zero_block(c, m, n, ldc);
        }
        if check_matmul(m, n, k, a, a_rs, a_cs, b, ldb, c, ldc) {
            // SAFETY: AVX-512F present (self exists); bounds checked by check_matmul.
            unsafe {
                matmul(
                    m,
                    n,
                    k,
                    a.as_ptr(),
                    a_rs,
                    a_cs,
                    b.as_ptr(),
                    ldb,
                    c.as_mut_ptr(),
                    ldc,
                    false,
                )
            }
        }
    }

    fn scale_mask_max(
        &self,
        row: &mut [f32],
        scale: f32,
        mask: Option<&[f32]>,
        valid: usize,
    ) -> f32 {
        // SAFETY: AVX-512F present (self exists).
        unsafe { scale_mask_max(row, scale, mask, valid) }
    }

    fn exp_sum(&self, row: &mut [f32], m: f32) -> f32 {
        // SAFETY: AVX-512F present (self exists).
        unsafe { exp_sum(row, m) }
    }

    fn exp_sum_dropout(&self, row: &mut [f32], m: f32, drop: &Drop, flat0: u64) -> f32 {
        // SAFETY: AVX-512F present (self exists).
        unsafe { exp_sum_dropout(row, m, drop, flat0) }
    }

    fn probs(&self, row: &mut [f32], scale: f32, mask: Option<&[f32]>, lse: f32, valid: usize) {
        // SAFETY: AVX-512F present (self exists).
        unsafe { probs(row, scale, mask, lse, valid) }
    }

    fn dropout(&self, row: &mut [f32], drop: &Drop, flat0: u64) {
        // SAFETY: AVX-512F present (self exists).
        unsafe { dropout(row, drop, flat0) }
    }

    fn grads_row(&self, p: &mut [f32], dp: &mut [f32], dsum: f32, drop: Option<(&Drop, u64)>) {
        // SAFETY: AVX-512F present (self exists).
        unsafe { grads_row(p, dp, dsum, drop) }
    }

    fn scale_row(&self, row: &mut [f32], alpha: f32) {
        // SAFETY: AVX-512F present (self exists).
        unsafe { scale_row(row, alpha) }
    }

    fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: AVX-512F present (self exists).
        unsafe { dot(a, b) }
    }
    fn scale_mask_max_tile(
        &self,
        s: &mut [f32],
        cols: usize,
        scale: f32,
        mask: Option<&[f32]>,
        valid: Valid,
        maxes: &mut [f32],
    ) {
        // SAFETY: AVX-512F present (self exists).
        unsafe { scale_mask_max_tile(s, cols, scale, mask, valid, maxes) }
    }

    fn exp_tile(
        &self,
        s: &mut [f32],
        cols: usize,
        m: &[f32],
        sums: &mut [f32],
        drop: Option<RowDrop<'_>>,
    ) {
        // SAFETY: AVX-512F present (self exists).
        unsafe { exp_tile(s, cols, m, sums, drop) }
    }

    fn probs_tile(
        &self,
        s: &mut [f32],
        cols: usize,
        scale: f32,
        mask: Option<&[f32]>,
        lse: &[f32],
        valid: Valid,
    ) {
        // SAFETY: AVX-512F present (self exists).
        unsafe { probs_tile(s, cols, scale, mask, lse, valid) }
    }

    fn grads_tile(
        &self,
        p: &mut [f32],
        dp: &mut [f32],
        cols: usize,
        dsum: &[f32],
        drop: Option<RowDrop<'_>>,
    ) {
        // SAFETY: AVX-512F present (self exists).
        unsafe { grads_tile(p, dp, cols, dsum, drop) }
    }
}
