//! NEON token: 4 f32 lanes.

use super::Simd;
use std::arch::aarch64::*;

/// NEON token. Only [`super::dispatch`] uses it, after checking the CPU.
#[derive(Clone, Copy)]
pub(crate) struct Neon;

// SAFETY: every method uses only NEON intrinsics; the trait contract requires callers to be
// compiled with neon on a CPU that has it, and pointer arguments valid for 4 f32.
unsafe impl Simd for Neon {
    type V = float32x4_t;
    const LANES: usize = 4;

    #[inline(always)]
    unsafe fn splat(x: f32) -> float32x4_t {
        vdupq_n_f32(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> float32x4_t {
        vld1q_f32(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: float32x4_t) {
        vst1q_f32(p, v)
    }
    #[inline(always)]
    unsafe fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vaddq_f32(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vsubq_f32(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vmulq_f32(a, b)
    }
    #[inline(always)]
    unsafe fn div(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vdivq_f32(a, b)
    }
    #[inline(always)]
    unsafe fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        vfmaq_f32(c, a, b)
    }
    #[inline(always)]
    unsafe fn max(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vmaxq_f32(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        vminq_f32(a, b)
    }
    #[inline(always)]
    unsafe fn sqrt(a: float32x4_t) -> float32x4_t {
        vsqrtq_f32(a)
    }
    #[inline(always)]
    unsafe fn abs(a: float32x4_t) -> float32x4_t {
        vabsq_f32(a)
    }
    #[inline(always)]
    unsafe fn round(a: float32x4_t) -> float32x4_t {
        vrndnq_f32(a)
    }
    #[inline(always)]
    unsafe fn pow2i(n: float32x4_t) -> float32x4_t {
        let i = vcvtq_s32_f32(n);
        vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(i, vdupq_n_s32(127))))
    }
    #[inline(always)]
    unsafe fn select_gt(
        a: float32x4_t,
        b: float32x4_t,
        t: float32x4_t,
        f: float32x4_t,
    ) -> float32x4_t {
        vbslq_f32(vcgtq_f32(a, b), t, f)
    }
    #[inline(always)]
    unsafe fn select_lt(
        a: float32x4_t,
        b: float32x4_t,
        t: float32x4_t,
        f: float32x4_t,
    ) -> float32x4_t {
        vbslq_f32(vcltq_f32(a, b), t, f)
    }
    #[inline(always)]
    unsafe fn reduce_sum(a: float32x4_t) -> f32 {
        vaddvq_f32(a)
    }
    #[inline(always)]
    unsafe fn reduce_max(a: float32x4_t) -> f32 {
        vmaxvq_f32(a)
    }
    const REGISTERS: usize = 32;
    #[inline(always)]
    unsafe fn dropout_select(
        lo: u32,
        k0: u32,
        hk: u32,
        thr: u32,
        t: float32x4_t,
        f: float32x4_t,
    ) -> float32x4_t {
        const IOTA: [u32; 4] = [0, 1, 2, 3];
        let idx = vaddq_u32(vdupq_n_u32(lo), vld1q_u32(IOTA.as_ptr()));
        let h = mix32x4(veorq_u32(idx, vdupq_n_u32(k0)));
        let h = mix32x4(veorq_u32(h, vdupq_n_u32(hk)));
        vbslq_f32(vcgeq_u32(h, vdupq_n_u32(thr)), t, f)
    }
}

/// [`super::mix32`] on 4 lanes.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
unsafe fn mix32x4(x: uint32x4_t) -> uint32x4_t {
    let x = veorq_u32(x, vshrq_n_u32::<16>(x));
    let x = vmulq_u32(x, vdupq_n_u32(0x7FEB_352D));
    let x = veorq_u32(x, vshrq_n_u32::<15>(x));
    let x = vmulq_u32(x, vdupq_n_u32(0x846C_A68B));
    veorq_u32(x, vshrq_n_u32::<16>(x))
}
