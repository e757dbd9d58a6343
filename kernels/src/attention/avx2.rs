//! AVX2 + FMA inner loops: a 4-row × 16-column FMA micro-kernel (a masked last vector for
//! ragged edges), a vectorised `exp` and a vectorised dropout hash.

use super::{check_matmul, Drop, Prims, RowDrop, Valid};
use std::arch::x86_64::*;

/// Proof that the CPU has AVX2 and FMA: only [`Avx2::new`] makes one.
pub(crate) struct Avx2(());

impl Avx2 {
    pub fn new() -> Option<Avx2> {
        crate::dispatch::Isa::Avx2
            .is_supported()
            .then_some(Avx2(()))
    }
}

const MR: usize = 4;
const NV: usize = 2;
const L: usize = 8;

/// Lane mask with the first `cols` (≤ 8) lanes set.
#[inline]
#[target_feature(enable = "avx2")]
fn lane_mask(cols: usize) -> __m256i {
    let c = cols.min(L) as i32;
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(c),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// Loads 8 lanes at `p`, or only the lanes of `mask` when `TAIL`.
///
/// # Safety
/// AVX2 available; the loaded lanes are in bounds.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load<const TAIL: bool>(p: *const f32, mask: __m256i) -> __m256 {
    // SAFETY: caller's contract.
    unsafe {
        if TAIL {
            _mm256_maskload_ps(p, mask)
        } else {
            _mm256_loadu_ps(p)
        }
    }
}

/// # Safety
/// As [`load`], for stores.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store<const TAIL: bool>(p: *mut f32, mask: __m256i, x: __m256) {
    // SAFETY: caller's contract.
    unsafe {
        if TAIL {
            _mm256_maskstore_ps(p, mask, x)
        } else {
            _mm256_storeu_ps(p, x)
        }
    }
}

/// `C[R × 8·V] += A·B` for one register block; the last vector is masked when `TAIL`.
///
/// # Safety
/// AVX2 + FMA available; every touched element (rows `< R`, `p < k`, columns `< 8·(V−1)` plus
/// the lanes of `tail` in the last vector) is in bounds.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn block<const R: usize, const V: usize, const TAIL: bool, const ACC: bool>(
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    tail: __m256i,
) {
    let mut acc = [[_mm256_setzero_ps(); V]; R];
    // SAFETY (whole body): pointer arithmetic and accesses in bounds by the caller's contract.
    unsafe {
        for r in 0..R {
            for v in 0..V {
                if !ACC {
                    continue;
                }
                let p = c.add(r * ldc + v * L);
                acc[r][v] = if v + 1 == V {
                    load::<TAIL>(p, tail)
                } else {
                    _mm256_loadu_ps(p)
                };
            }
        }
        for p in 0..k {
            let mut bv = [_mm256_setzero_ps(); V];
            for v in 0..V {
                let q = b.add(p * ldb + v * L);
                bv[v] = if v + 1 == V {
                    load::<TAIL>(q, tail)
                } else {
                    _mm256_loadu_ps(q)
                };
            }
            for r in 0..R {
                let av = _mm256_set1_ps(*a.add(r * a_rs + p * a_cs));
                for v in 0..V {
                    acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
                }
            }
        }
        for r in 0..R {
            for v in 0..V {
                let p = c.add(r * ldc + v * L);
                if v + 1 == V {
                    store::<TAIL>(p, tail, acc[r][v]);
                } else {
                    _mm256_storeu_ps(p, acc[r][v]);
                }
            }
        }
    }
}

/// # Safety
/// AVX2 + FMA available and [`check_matmul`] passed for these arguments.
#[target_feature(enable = "avx2,fma")]
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
        let tail_cols = w - (nv - 1) * L;
        let full = tail_cols == L;
        let tail = lane_mask(tail_cols);
        let mut i0 = 0;
        while i0 < m {
            let rows = (m - i0).min(MR);
            // SAFETY: rows i0..i0+rows < m and columns j0..j0+w ≤ n lie inside the block that
            // check_matmul validated; lanes past w are masked off.
            unsafe {
                let ap = a.add(i0 * a_rs);
                let bp = b.add(j0);
                let cp = c.add(i0 * ldc + j0);
                macro_rules! go {
                    ($r:literal, $v:literal, $t:literal) => {
                        if accumulate {
                            block::<$r, $v, $t, true>(k, ap, a_rs, a_cs, bp, ldb, cp, ldc, tail)
                        } else {
                            block::<$r, $v, $t, false>(k, ap, a_rs, a_cs, bp, ldb, cp, ldc, tail)
                        }
                    };
                }
                match (rows, nv, full) {
                    (4, 2, true) => go!(4, 2, false),
                    (4, 2, false) => go!(4, 2, true),
                    (4, _, true) => go!(4, 1, false),
                    (4, _, false) => go!(4, 1, true),
                    (3, 2, true) => go!(3, 2, false),
                    (3, 2, false) => go!(3, 2, true),
                    (3, _, true) => go!(3, 1, false),
                    (3, _, false) => go!(3, 1, true),
                    (2, 2, true) => go!(2, 2, false),
                    (2, 2, false) => go!(2, 2, true),
                    (2, _, true) => go!(2, 1, false),
                    (2, _, false) => go!(2, 1, true),
                    (_, 2, true) => go!(1, 2, false),
                    (_, 2, false) => go!(1, 2, true),
                    (_, _, true) => go!(1, 1, false),
                    (_, _, false) => go!(1, 1, true),
                }
            }
            i0 += rows;
        }
        j0 += w;
    }
}

/// `exp(x)` for `x ≤ ~88`, 0 below −87.3 (and for `-inf`); Cephes polynomial, ≤ 2 ulp.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp8(x: __m256) -> __m256 {
    let lo = _mm256_set1_ps(-87.336_54);
    let keep = _mm256_cmp_ps::<_CMP_GE_OQ>(x, lo);
    let x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.376_26)), lo);
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut y = _mm256_set1_ps(1.987_569_1e-4);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.398_2e-3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.333_452e-3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.166_579_6e-2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.666_666_5e-1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(0.5));
    let r2 = _mm256_mul_ps(r, r);
    y = _mm256_fmadd_ps(y, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
    // 2^n for n in [−126, 127]
    let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    let y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    _mm256_and_ps(y, keep)
}

/// Number of whole 8-lane chunks in `n`.
fn whole(n: usize) -> usize {
    n / L * L
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn scale_mask_max(row: &mut [f32], scale: f32, mask: Option<&[f32]>, valid: usize) -> f32 {
    let valid = valid.min(row.len());
    if let Some(m) = mask {
        assert!(m.len() >= valid, "attention: mask tile too short");
    }
    let sc = _mm256_set1_ps(scale);
    let mut mx = _mm256_set1_ps(f32::NEG_INFINITY);
    let end = whole(valid);
    let mut j = 0;
    while j < end {
        // SAFETY: j + 8 ≤ valid ≤ row.len() (and ≤ mask.len()).
        unsafe {
            let p = row.as_mut_ptr().add(j);
            let add = match mask {
                Some(m) => _mm256_loadu_ps(m.as_ptr().add(j)),
                None => _mm256_setzero_ps(),
            };
            let y = _mm256_fmadd_ps(_mm256_loadu_ps(p), sc, add);
            _mm256_storeu_ps(p, y);
            mx = _mm256_max_ps(mx, y);
        }
        j += L;
    }
    let mut lanes = [0.0f32; L];
    // SAFETY: lanes holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), mx) };
    let m = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let tail =
        super::scale_mask_max_scalar(&mut row[j..], scale, mask.map(|mk| &mk[j..]), valid - j);
    m.max(tail)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum(x: __m256) -> f32 {
    let mut lanes = [0.0f32; L];
    // SAFETY: lanes holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), x) };
    // fixed order: pairwise over lanes
    ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6]))
        + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp_sum(row: &mut [f32], m: f32) -> f32 {
    let mv = _mm256_set1_ps(m);
    let mut s = _mm256_setzero_ps();
    let end = whole(row.len());
    let mut j = 0;
    while j < end {
        // SAFETY: j + 8 ≤ row.len().
        unsafe {
            let p = row.as_mut_ptr().add(j);
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), mv));
            _mm256_storeu_ps(p, e);
            s = _mm256_add_ps(s, e);
        }
        j += L;
    }
    let mut sum = hsum(s);
    for x in &mut row[j..] {
        *x = (*x - m).exp();
        sum += *x;
    }
    sum
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn probs(row: &mut [f32], scale: f32, mask: Option<&[f32]>, lse: f32, valid: usize) {
    let valid = valid.min(row.len());
    if let Some(m) = mask {
        assert!(m.len() >= valid, "attention: mask tile too short");
    }
    let sc = _mm256_set1_ps(scale);
    let lv = _mm256_set1_ps(lse);
    let end = whole(valid);
    let mut j = 0;
    while j < end {
        // SAFETY: j + 8 ≤ valid ≤ row.len() (and ≤ mask.len()).
        unsafe {
            let p = row.as_mut_ptr().add(j);
            let add = match mask {
                Some(m) => _mm256_loadu_ps(m.as_ptr().add(j)),
                None => _mm256_setzero_ps(),
            };
            let y = _mm256_sub_ps(_mm256_fmadd_ps(_mm256_loadu_ps(p), sc, add), lv);
            _mm256_storeu_ps(p, exp8(y));
        }
        j += L;
    }
    super::probs_scalar(
        &mut row[j..],
        scale,
        mask.map(|mk| &mk[j..]),
        lse,
        valid - j,
    );
}

#[inline]
#[target_feature(enable = "avx2")]
fn mix8(x: __m256i) -> __m256i {
    let x = _mm256_xor_si256(x, _mm256_srli_epi32::<16>(x));
    let x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7FEB_352D));
    let x = _mm256_xor_si256(x, _mm256_srli_epi32::<15>(x));
    let x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x846C_A68Bu32 as i32));
    _mm256_xor_si256(x, _mm256_srli_epi32::<16>(x))
}

/// Keep mask (all-ones lanes) of the 8 flat indices `lo + lane` (no wrap), high half `hi`.
#[inline]
#[target_feature(enable = "avx2")]
fn keep8(drop: &Drop, lo: u32, hi: u32) -> __m256 {
    let idx = _mm256_add_epi32(
        _mm256_set1_epi32(lo as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    );
    let h = mix8(_mm256_xor_si256(idx, _mm256_set1_epi32(drop.k0 as i32)));
    let h = mix8(_mm256_xor_si256(
        h,
        _mm256_set1_epi32((hi ^ drop.k1) as i32),
    ));
    // unsigned h >= thr  ⇔  !(thr > h) with the sign bits flipped
    let sign = _mm256_set1_epi32(i32::MIN);
    let gt = _mm256_cmpgt_epi32(
        _mm256_xor_si256(_mm256_set1_epi32(drop.thr as i32), sign),
        _mm256_xor_si256(h, sign),
    );
    _mm256_castsi256_ps(_mm256_andnot_si256(gt, _mm256_set1_epi32(-1)))
}

fn no_wrap(flat0: u64, n: usize) -> bool {
    (flat0 as u32 as u64) + n as u64 <= 1u64 << 32
}

#[target_feature(enable = "avx2,fma")]
fn dropout(row: &mut [f32], drop: &Drop, flat0: u64) {
    if !no_wrap(flat0, row.len()) {
        return super::dropout_scalar(row, drop, flat0);
    }
    let inv = _mm256_set1_ps(drop.inv);
    let end = whole(row.len());
    let mut j = 0;
    while j < end {
        let keep = keep8(
            drop,
            (flat0 as u32).wrapping_add(j as u32),
            (flat0 >> 32) as u32,
        );
        // SAFETY: j + 8 ≤ row.len().
        unsafe {
            let p = row.as_mut_ptr().add(j);
            let y = _mm256_and_ps(_mm256_mul_ps(_mm256_loadu_ps(p), inv), keep);
            _mm256_storeu_ps(p, y);
        }
        j += L;
    }
    super::dropout_scalar(&mut row[j..], drop, flat0 + j as u64);
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn grads_row(p: &mut [f32], dp: &mut [f32], dsum: f32, drop: Option<(&Drop, u64)>) {
    let n = p.len();
    assert_eq!(dp.len(), n, "attention: gradient rows differ");
    if let Some((_, flat0)) = drop {
        if !no_wrap(flat0, n) {
            return super::grads_row_scalar(p, dp, dsum, drop);
        }
    }
    let dv = _mm256_set1_ps(dsum);
    let end = whole(n);
    let mut j = 0;
    while j < end {
        // SAFETY: j + 8 ≤ n, the length of both rows.
        unsafe {
            let pp = p.as_mut_ptr().add(j);
            let gp = dp.as_mut_ptr().add(j);
            let x = _mm256_loadu_ps(pp);
            let g = _mm256_loadu_ps(gp);
            match drop {
                None => _mm256_storeu_ps(gp, _mm256_mul_ps(x, _mm256_sub_ps(g, dv))),
                Some((dr, flat0)) => {
                    let keep = keep8(
                        dr,
                        (flat0 as u32).wrapping_add(j as u32),
                        (flat0 >> 32) as u32,
                    );
                    let inv = _mm256_set1_ps(dr.inv);
                    let g = _mm256_and_ps(_mm256_mul_ps(g, inv), keep);
                    _mm256_storeu_ps(gp, _mm256_mul_ps(x, _mm256_sub_ps(g, dv)));
                    _mm256_storeu_ps(pp, _mm256_and_ps(_mm256_mul_ps(x, inv), keep));
                }
            }
        }
        j += L;
    }
    let tail = drop.map(|(dr, flat0)| (dr, flat0 + j as u64));
    super::grads_row_scalar(&mut p[j..], &mut dp[j..], dsum, tail);
}

/// `row[j] = keep ? exp(row[j] − m)·inv : 0`; returns `Σ exp(row[j] − m)` (undropped).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp_sum_dropout(row: &mut [f32], m: f32, drop: &Drop, flat0: u64) -> f32 {
    if !no_wrap(flat0, row.len()) {
        let s = exp_sum(row, m);
        super::dropout_scalar(row, drop, flat0);
        return s;
    }
    let mv = _mm256_set1_ps(m);
    let inv = _mm256_set1_ps(drop.inv);
    let mut s = _mm256_setzero_ps();
    let end = whole(row.len());
    let mut j = 0;
    while j < end {
        let keep = keep8(
            drop,
            (flat0 as u32).wrapping_add(j as u32),
            (flat0 >> 32) as u32,
        );
        // SAFETY: j + 8 ≤ row.len().
        unsafe {
            let p = row.as_mut_ptr().add(j);
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), mv));
            s = _mm256_add_ps(s, e);
            _mm256_storeu_ps(p, _mm256_and_ps(_mm256_mul_ps(e, inv), keep));
        }
        j += L;
    }
    let mut sum = hsum(s);
    for (jj, x) in row[j..].iter_mut().enumerate() {
        let e = (*x - m).exp();
        sum += e;
        *x = if drop.keep(flat0 + (j + jj) as u64) {
            e * drop.inv
        } else {
            0.0
        };
    }
    sum
}

#[target_feature(enable = "avx2,fma")]
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

#[target_feature(enable = "avx2,fma")]
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

#[target_feature(enable = "avx2,fma")]
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

#[target_feature(enable = "avx2,fma")]
fn grads_tile(p: &mut [f32], dp: &mut [f32], cols: usize, dsum: &[f32], drop: Option<RowDrop<'_>>) {
    super::each_row_grads(p, dp, cols, dsum, drop, |pr, gr, ds, dr| {
        grads_row(pr, gr, ds, dr)
    })
}

// SAFETY (all methods below): an `Avx2` exists only when the CPU has AVX2 and FMA (see `new`),
// so calling the `avx2,fma` functions is sound; slice bounds are checked inside them.
impl Prims for Avx2 {
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
            // SAFETY: AVX2 + FMA present (self exists); bounds checked by check_matmul.
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
            // SAFETY: AVX2 + FMA present (self exists); bounds checked by check_matmul.
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
        // SAFETY: AVX2 + FMA present (self exists).
        unsafe { scale_mask_max(row, scale, mask, valid) }
    }

    fn exp_sum(&self, row: &mut [f32], m: f32) -> f32 {
        // SAFETY: AVX2 + FMA present (self exists).
        unsafe { exp_sum(row, m) }
    }

    fn probs(&self, row: &mut [f32], scale: f32, mask: Option<&[f32]>, lse: f32, valid: usize) {
        // SAFETY: AVX2 + FMA present (self exists).
        unsafe { probs(row, scale, mask, lse, valid) }
    }

    fn dropout(&self, row: &mut [f32], drop: &Drop, flat0: u64) {
        // SAFETY: AVX2 + FMA present (self exists).
        unsafe { dropout(row, drop, flat0) }
    }

    fn grads_row(&self, p: &mut [f32], dp: &mut [f32], dsum: f32, drop: Option<(&Drop, u64)>) {
        // SAFETY: AVX2 + FMA present (self exists).
        unsafe { grads_row(p, dp, dsum, drop) }
    }

    fn exp_sum_dropout(&self, row: &mut [f32], m: f32, drop: &Drop, flat0: u64) -> f32 {
        // SAFETY: AVX2 + FMA present (self exists).
        unsafe { exp_sum_dropout(row, m, drop, flat0) }
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
        // SAFETY: AVX2 + FMA present (self exists).
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
        // SAFETY: AVX2 + FMA present (self exists).
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
        // SAFETY: AVX2 + FMA present (self exists).
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
        // SAFETY: AVX2 + FMA present (self exists).
        unsafe { grads_tile(p, dp, cols, dsum, drop) }
    }
}
