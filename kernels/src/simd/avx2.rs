//! AVX2 + FMA token: 8 f32 lanes.

use super::Simd;
use std::arch::x86_64::*;

/// AVX2 + FMA token. Only [`super::dispatch`] uses it, after checking the CPU.
#[derive(Clone, Copy)]
pub(crate) struct Avx2;

// SAFETY: every method uses only AVX/AVX2/FMA intrinsics; the trait contract requires callers to
// be compiled with avx2 and fma on a CPU that has them, and pointer arguments valid for 8 f32.
unsafe impl Simd for Avx2 {
    type V = __m256;
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn stream(p: *mut f32, v: __m256) {
        _mm256_stream_ps(p, v)
    }
    #[inline(always)]
    unsafe fn fence() {
        _mm_sfence()
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        _mm256_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        _mm256_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn div(a: __m256, b: __m256) -> __m256 {
        _mm256_div_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        _mm256_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: __m256, b: __m256) -> __m256 {
        _mm256_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sqrt(a: __m256) -> __m256 {
        _mm256_sqrt_ps(a)
    }
    #[inline(always)]
    unsafe fn abs(a: __m256) -> __m256 {
        _mm256_andnot_ps(_mm256_set1_ps(-0.0), a)
    }
    #[inline(always)]
    unsafe fn round(a: __m256) -> __m256 {
        _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a)
    }
    #[inline(always)]
    unsafe fn floor(a: __m256) -> __m256 {
        _mm256_round_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(a)
    }
    #[inline(always)]
    unsafe fn pow2i(n: __m256) -> __m256 {
        let i = _mm256_cvtps_epi32(n);
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            i,
            _mm256_set1_epi32(127),
        )))
    }
    const FAST_LUT8: bool = true;
    /// The lanes' integers as 32-bit integers (in the f32 register).
    #[inline(always)]
    unsafe fn lut8_index(i: __m256) -> __m256 {
        _mm256_castsi256_ps(_mm256_cvtps_epi32(i))
    }
    /// `vpermps`: the index's low 3 bits select.
    #[inline(always)]
    unsafe fn lut8(idx: __m256, t: &[f32; 8]) -> __m256 {
        _mm256_permutevar8x32_ps(_mm256_loadu_ps(t.as_ptr()), _mm256_castps_si256(idx))
    }
    #[inline(always)]
    unsafe fn select_gt(a: __m256, b: __m256, t: __m256, f: __m256) -> __m256 {
        _mm256_blendv_ps(f, t, _mm256_cmp_ps::<_CMP_GT_OQ>(a, b))
    }
    #[inline(always)]
    unsafe fn select_lt(a: __m256, b: __m256, t: __m256, f: __m256) -> __m256 {
        _mm256_blendv_ps(f, t, _mm256_cmp_ps::<_CMP_LT_OQ>(a, b))
    }
    #[inline(always)]
    unsafe fn reduce_sum(a: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }
    #[inline(always)]
    unsafe fn reduce_max(a: __m256) -> f32 {
        let s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_max_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, n: usize, pad: f32) -> __m256 {
        let m = first_lanes(n);
        _mm256_blendv_ps(
            _mm256_set1_ps(pad),
            _mm256_maskload_ps(p, m),
            _mm256_castsi256_ps(m),
        )
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, n: usize, v: __m256) {
        _mm256_maskstore_ps(p, first_lanes(n), v)
    }
    #[inline(always)]
    unsafe fn dropout_select(lo: u32, k0: u32, hk: u32, thr: u32, t: __m256, f: __m256) -> __m256 {
        let idx = _mm256_add_epi32(
            _mm256_set1_epi32(lo as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        let h = mix32x8(_mm256_xor_si256(idx, _mm256_set1_epi32(k0 as i32)));
        let h = mix32x8(_mm256_xor_si256(h, _mm256_set1_epi32(hk as i32)));
        // unsigned h < thr  ⇔  signed (h ^ 2³¹) < (thr ^ 2³¹)
        let sign = _mm256_set1_epi32(i32::MIN);
        let drop = _mm256_cmpgt_epi32(
            _mm256_xor_si256(_mm256_set1_epi32(thr as i32), sign),
            _mm256_xor_si256(h, sign),
        );
        _mm256_blendv_ps(t, f, _mm256_castsi256_ps(drop))
    }
}

/// All-ones in the first `n ≤ 8` lanes.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
unsafe fn first_lanes(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n.min(8) as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// [`super::mix32`] on 8 lanes.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
unsafe fn mix32x8(x: __m256i) -> __m256i {
    let x = _mm256_xor_si256(x, _mm256_srli_epi32::<16>(x));
    let x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7FEB_352D));
    let x = _mm256_xor_si256(x, _mm256_srli_epi32::<15>(x));
    let x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x846C_A68Bu32 as i32));
    _mm256_xor_si256(x, _mm256_srli_epi32::<16>(x))
}
