//! Portable token over the `wide` crate: 4 f32 lanes (SSE2 on default x86_64 builds, NEON on
//! aarch64, scalar arrays elsewhere).

use super::Simd;
use wide::{f32x4, i32x4, CmpGt, CmpLt};

/// `wide` token; needs no CPU feature beyond the compile-time baseline.
#[derive(Clone, Copy)]
pub(crate) struct Portable;

// SAFETY: `wide` only uses features enabled at compile time, so any caller may use these; the
// load/store pointers must be valid for 4 f32 (the trait contract).
unsafe impl Simd for Portable {
    type V = f32x4;
    const LANES: usize = 4;

    #[inline(always)]
    unsafe fn splat(x: f32) -> f32x4 {
        f32x4::splat(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32x4 {
        f32x4::from((p as *const [f32; 4]).read_unaligned())
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32x4) {
        (p as *mut [f32; 4]).write_unaligned(v.to_array())
    }
    #[inline(always)]
    unsafe fn add(a: f32x4, b: f32x4) -> f32x4 {
        a + b
    }
    #[inline(always)]
    unsafe fn sub(a: f32x4, b: f32x4) -> f32x4 {
        a - b
    }
    #[inline(always)]
    unsafe fn mul(a: f32x4, b: f32x4) -> f32x4 {
        a * b
    }
    #[inline(always)]
    unsafe fn div(a: f32x4, b: f32x4) -> f32x4 {
        a / b
    }
    #[inline(always)]
    unsafe fn fma(a: f32x4, b: f32x4, c: f32x4) -> f32x4 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn max(a: f32x4, b: f32x4) -> f32x4 {
        a.fast_max(b)
    }
    #[inline(always)]
    unsafe fn min(a: f32x4, b: f32x4) -> f32x4 {
        a.fast_min(b)
    }
    #[inline(always)]
    unsafe fn sqrt(a: f32x4) -> f32x4 {
        a.sqrt()
    }
    #[inline(always)]
    unsafe fn abs(a: f32x4) -> f32x4 {
        a.abs()
    }
    #[inline(always)]
    unsafe fn round(a: f32x4) -> f32x4 {
        a.round()
    }
    #[inline(always)]
    unsafe fn pow2i(n: f32x4) -> f32x4 {
        let bits: i32x4 = (n.fast_round_int() + i32x4::splat(127)) << 23;
        bytemuck::cast(bits)
    }
    #[inline(always)]
    unsafe fn select_gt(a: f32x4, b: f32x4, t: f32x4, f: f32x4) -> f32x4 {
        a.cmp_gt(b).blend(t, f)
    }
    #[inline(always)]
    unsafe fn select_lt(a: f32x4, b: f32x4, t: f32x4, f: f32x4) -> f32x4 {
        a.cmp_lt(b).blend(t, f)
    }
    #[inline(always)]
    unsafe fn reduce_sum(a: f32x4) -> f32 {
        let v = a.to_array();
        (v[0] + v[2]) + (v[1] + v[3])
    }
    #[inline(always)]
    unsafe fn reduce_max(a: f32x4) -> f32 {
        let v = a.to_array();
        v[0].max(v[2]).max(v[1].max(v[3]))
    }
    /// `wide` compiles to NEON (32 registers) on aarch64, SSE2 (16) on x86_64.
    const REGISTERS: usize = if cfg!(target_arch = "aarch64") {
        32
    } else {
        16
    };
}
