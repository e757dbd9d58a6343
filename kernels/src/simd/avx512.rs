//! AVX-512F token: 16 f32 lanes.

use super::Simd;
use std::arch::x86_64::*;

/// AVX-512F (+AVX2, FMA) token. Only [`super::dispatch`] uses it, after checking the CPU.
#[derive(Clone, Copy)]
pub(crate) struct Avx512;

// SAFETY: every method uses only AVX-512F intrinsics (and SSE's `sfence`, `prefetcht0`); the trait contract
// requires callers to be compiled with avx512f on a CPU that has it, and pointer arguments valid
// for 16 f32 (`lut32` reads its 32-entry table through a reference).
unsafe impl Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;

    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn stream(p: *mut f32, v: __m512) {
        _mm512_stream_ps(p, v)
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
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        _mm512_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn div(a: __m512, b: __m512) -> __m512 {
        _mm512_div_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        _mm512_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: __m512, b: __m512) -> __m512 {
        _mm512_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sqrt(a: __m512) -> __m512 {
        _mm512_sqrt_ps(a)
    }
    #[inline(always)]
    unsafe fn abs(a: __m512) -> __m512 {
        _mm512_abs_ps(a)
    }
    #[inline(always)]
    unsafe fn round(a: __m512) -> __m512 {
        _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a)
    }
    #[inline(always)]
    unsafe fn pow2i(n: __m512) -> __m512 {
        let i = _mm512_cvtps_epi32(n);
        _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            i,
            _mm512_set1_epi32(127),
        )))
    }
    #[inline(always)]
    unsafe fn select_gt(a: __m512, b: __m512, t: __m512, f: __m512) -> __m512 {
        _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b), f, t)
    }
    #[inline(always)]
    unsafe fn select_lt(a: __m512, b: __m512, t: __m512, f: __m512) -> __m512 {
        _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b), f, t)
    }
    #[inline(always)]
    unsafe fn reduce_sum(a: __m512) -> f32 {
        _mm512_reduce_add_ps(a)
    }
    #[inline(always)]
    unsafe fn reduce_max(a: __m512) -> f32 {
        _mm512_reduce_max_ps(a)
    }
    #[inline(always)]
    unsafe fn floor(a: __m512) -> __m512 {
        _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(a)
    }
    const FAST_LUT32: bool = true;
    /// `vpermt2ps` over the table's two halves (the index's low 5 bits select).
    #[inline(always)]
    unsafe fn lut32(i: __m512, t: &[f32; 32]) -> __m512 {
        let lo = _mm512_loadu_ps(t.as_ptr());
        let hi = _mm512_loadu_ps(t.as_ptr().add(16));
        _mm512_permutex2var_ps(lo, _mm512_cvtps_epi32(i), hi)
    }
    /// `vscalefps` as in `exp`: the clamp to ±200 keeps `t − round(t)` finite for infinite `t`
    /// and still overflows to ∞ / underflows to 0.
    #[inline(always)]
    unsafe fn exp2(t: __m512) -> __m512 {
        let t = _mm512_max_ps(
            _mm512_set1_ps(-200.0),
            _mm512_min_ps(_mm512_set1_ps(200.0), t),
        );
        let (n, p) = super::exp2_reduced::<Self>(t);
        _mm512_scalef_ps(p, n)
    }
    /// `vscalefps` scales by `2ⁿ` with correct overflow to ∞ and gradual underflow, so clamping
    /// the input replaces the generic version's selects. `min`/`max` return their second operand
    /// when either is NaN, so NaN passes through the clamp.
    #[inline(always)]
    unsafe fn exp(x: __m512) -> __m512 {
        let x = _mm512_max_ps(
            _mm512_set1_ps(-104.0),
            _mm512_min_ps(_mm512_set1_ps(89.0), x),
        );
        let (n, e) = super::exp_reduced::<Self>(x);
        _mm512_scalef_ps(e, n)
    }
}
