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
    const REGISTERS: usize = 32;
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, n: usize, pad: f32) -> __m512 {
        _mm512_mask_loadu_ps(_mm512_set1_ps(pad), first_lanes(n), p)
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, n: usize, v: __m512) {
        _mm512_mask_storeu_ps(p, first_lanes(n), v)
    }
    #[inline(always)]
    unsafe fn dropout_select(lo: u32, k0: u32, hk: u32, thr: u32, t: __m512, f: __m512) -> __m512 {
        let idx = _mm512_add_epi32(
            _mm512_set1_epi32(lo as i32),
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        );
        let h = mix32x16(_mm512_xor_si512(idx, _mm512_set1_epi32(k0 as i32)));
        let h = mix32x16(_mm512_xor_si512(h, _mm512_set1_epi32(hk as i32)));
        let keep = _mm512_cmpge_epu32_mask(h, _mm512_set1_epi32(thr as i32));
        _mm512_mask_blend_ps(keep, f, t)
    }
}

/// The mask of the first `n ≤ 16` lanes.
#[inline(always)]
fn first_lanes(n: usize) -> __mmask16 {
    ((1u32 << n.min(16)) - 1) as __mmask16
}

/// [`super::mix32`] on 16 lanes.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
unsafe fn mix32x16(x: __m512i) -> __m512i {
    let x = _mm512_xor_si512(x, _mm512_srli_epi32::<16>(x));
    let x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x7FEB_352D));
    let x = _mm512_xor_si512(x, _mm512_srli_epi32::<15>(x));
    let x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x846C_A68Bu32 as i32));
    _mm512_xor_si512(x, _mm512_srli_epi32::<16>(x))
}
