//! f32 ↔ bf16 / f16 conversions (round to nearest even; NaN stays NaN), bit-identical to the
//! `half` crate on every path.
//!
//! - bf16: integer arithmetic on the f32 bits (`(b + 0x7FFF + ((b >> 16) & 1)) >> 16`, NaN →
//!   `(b >> 16) | 0x40` as `half` does) on AVX-512F, AVX2, `wide` (portable) and NEON.
//! - f16: the hardware conversion (`vcvtps2ph`/`vcvtph2ps`) on AVX-512F and on AVX2 when the CPU
//!   has F16C; elsewhere (portable, NEON, AVX2 without F16C) `half`'s slice conversion, because
//!   Rust's NEON f16 vector types are not stable.
//!
//! Inputs of at least [`simd::PAR_MIN_ELEMS`] elements are split over rayon in fixed chunks.

use crate::dispatch::{active, Isa};
use crate::simd;
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

fn check(what: &str, a: usize, b: usize) {
    assert_eq!(a, b, "{what}: {a} → {b} elements");
}

fn check_isa(isa: Isa) {
    assert!(
        isa.is_supported(),
        "kernel path {isa} is not supported on this CPU"
    );
}

/// Runs `f` over matching fixed chunks of `src` and `dst`, in parallel when large.
fn chunked<A: Sync, B: Send>(src: &[A], dst: &mut [B], f: impl Fn(&[A], &mut [B]) + Sync) {
    if simd::parallel(src.len()) {
        let c = simd::PAR_CHUNK_ELEMS;
        src.par_chunks(c)
            .zip(dst.par_chunks_mut(c))
            .for_each(|(s, d)| f(s, d));
    } else {
        f(src, dst)
    }
}

/// One f32 → bf16, exactly as `half::bf16::from_f32`.
fn bf16_bits(x: u32) -> u16 {
    if x & 0x7FFF_FFFF > 0x7F80_0000 {
        ((x >> 16) | 0x40) as u16
    } else {
        ((x + 0x7FFF + ((x >> 16) & 1)) >> 16) as u16
    }
}

/// One bf16 → f32, exactly as `half::bf16::to_f32`.
fn bf16_to_bits(h: u16) -> u32 {
    if h & 0x7FFF > 0x7F80 {
        ((h as u32) | 0x40) << 16
    } else {
        (h as u32) << 16
    }
}

/// Converts f32 to bf16.
pub fn f32_to_bf16(src: &[f32], dst: &mut [bf16]) {
    f32_to_bf16_with(active(), src, dst)
}

/// [`f32_to_bf16`] on a chosen path.
pub fn f32_to_bf16_with(isa: Isa, src: &[f32], dst: &mut [bf16]) {
    check("f32_to_bf16", src.len(), dst.len());
    check_isa(isa);
    chunked(src, dst, |s, d| match isa {
        Isa::Scalar => {
            for (d, &s) in d.iter_mut().zip(s) {
                *d = bf16::from_f32(s);
            }
        }
        // SAFETY: the CPU has avx512f (checked by `check_isa`); lengths are equal.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::f32_to_bf16_avx512(s, d) },
        // SAFETY: the CPU has avx2 (checked by `check_isa`); lengths are equal.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::f32_to_bf16_avx2(s, d) },
        // SAFETY: the CPU has neon (checked by `check_isa`); lengths are equal.
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe { arm::f32_to_bf16_neon(s, d) },
        _ => f32_to_bf16_portable(s, d),
    })
}

/// Converts bf16 to f32 (exact).
pub fn bf16_to_f32(src: &[bf16], dst: &mut [f32]) {
    bf16_to_f32_with(active(), src, dst)
}

/// [`bf16_to_f32`] on a chosen path.
pub fn bf16_to_f32_with(isa: Isa, src: &[bf16], dst: &mut [f32]) {
    check("bf16_to_f32", src.len(), dst.len());
    check_isa(isa);
    chunked(src, dst, |s, d| match isa {
        Isa::Scalar => {
            for (d, &s) in d.iter_mut().zip(s) {
                *d = s.to_f32();
            }
        }
        // SAFETY: the CPU has avx512f (checked by `check_isa`); lengths are equal.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::bf16_to_f32_avx512(s, d) },
        // SAFETY: the CPU has avx2 (checked by `check_isa`); lengths are equal.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::bf16_to_f32_avx2(s, d) },
        // SAFETY: the CPU has neon (checked by `check_isa`); lengths are equal.
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe { arm::bf16_to_f32_neon(s, d) },
        _ => bf16_to_f32_portable(s, d),
    })
}

/// Converts f32 to f16.
pub fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
    f32_to_f16_with(active(), src, dst)
}

/// [`f32_to_f16`] on a chosen path.
pub fn f32_to_f16_with(isa: Isa, src: &[f32], dst: &mut [f16]) {
    check("f32_to_f16", src.len(), dst.len());
    check_isa(isa);
    chunked(src, dst, |s, d| match isa {
        Isa::Scalar => {
            for (d, &s) in d.iter_mut().zip(s) {
                *d = f16::from_f32(s);
            }
        }
        // SAFETY: the CPU has avx512f (checked by `check_isa`); lengths are equal.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::f32_to_f16_avx512(s, d) },
        // SAFETY: the CPU has avx2 (checked) and f16c (checked here); lengths are equal.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if std::arch::is_x86_feature_detected!("f16c") => unsafe {
            x86::f32_to_f16_f16c(s, d)
        },
        _ => d.convert_from_f32_slice(s),
    })
}

/// Converts f16 to f32 (exact).
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    f16_to_f32_with(active(), src, dst)
}

/// [`f16_to_f32`] on a chosen path.
pub fn f16_to_f32_with(isa: Isa, src: &[f16], dst: &mut [f32]) {
    check("f16_to_f32", src.len(), dst.len());
    check_isa(isa);
    chunked(src, dst, |s, d| match isa {
        Isa::Scalar => {
            for (d, &s) in d.iter_mut().zip(s) {
                *d = s.to_f32();
            }
        }
        // SAFETY: the CPU has avx512f (checked by `check_isa`); lengths are equal.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::f16_to_f32_avx512(s, d) },
        // SAFETY: the CPU has avx2 (checked) and f16c (checked here); lengths are equal.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if std::arch::is_x86_feature_detected!("f16c") => unsafe {
            x86::f16_to_f32_f16c(s, d)
        },
        _ => s.convert_to_f32_slice(d),
    })
}

fn f32_to_bf16_portable(src: &[f32], dst: &mut [bf16]) {
    use wide::u32x4;
    let n = src.len();
    let body = n - n % 4;
    for (s, d) in src[..body]
        .chunks_exact(4)
        .zip(dst[..body].chunks_exact_mut(4))
    {
        let b = u32x4::from([
            s[0].to_bits(),
            s[1].to_bits(),
            s[2].to_bits(),
            s[3].to_bits(),
        ]);
        let nan = (b & u32x4::splat(0x7FFF_FFFF)).cmp_gt(u32x4::splat(0x7F80_0000));
        let hi = b >> 16;
        let rounded = (b + u32x4::splat(0x7FFF) + (hi & u32x4::splat(1))) >> 16;
        let r = nan.blend(hi | u32x4::splat(0x40), rounded).to_array();
        for k in 0..4 {
            d[k] = bf16::from_bits(r[k] as u16);
        }
    }
    for (d, &s) in dst[body..].iter_mut().zip(&src[body..]) {
        *d = bf16::from_bits(bf16_bits(s.to_bits()));
    }
}

fn bf16_to_f32_portable(src: &[bf16], dst: &mut [f32]) {
    use wide::u32x4;
    let n = src.len();
    let body = n - n % 4;
    for (s, d) in src[..body]
        .chunks_exact(4)
        .zip(dst[..body].chunks_exact_mut(4))
    {
        let h = u32x4::from([
            s[0].to_bits() as u32,
            s[1].to_bits() as u32,
            s[2].to_bits() as u32,
            s[3].to_bits() as u32,
        ]);
        let nan = (h & u32x4::splat(0x7FFF)).cmp_gt(u32x4::splat(0x7F80));
        let r: u32x4 = nan.blend(h | u32x4::splat(0x40), h) << 16u32;
        let r = r.to_array();
        for k in 0..4 {
            d[k] = f32::from_bits(r[k]);
        }
    }
    for (d, &s) in dst[body..].iter_mut().zip(&src[body..]) {
        *d = f32::from_bits(bf16_to_bits(s.to_bits()));
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{bf16_bits, bf16_to_bits};
    use half::{bf16, f16};
    use std::arch::x86_64::*;

    /// # Safety
    /// avx512f; `src.len() == dst.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn f32_to_bf16_avx512(src: &[f32], dst: &mut [bf16]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 16 <= n {
            let b = _mm512_loadu_si512(src.as_ptr().add(i) as *const _);
            let abs = _mm512_and_si512(b, _mm512_set1_epi32(0x7FFF_FFFF));
            let nan = _mm512_cmpgt_epi32_mask(abs, _mm512_set1_epi32(0x7F80_0000));
            let hi = _mm512_srli_epi32::<16>(b);
            let lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
            let r = _mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7FFF)), lsb);
            let r = _mm512_srli_epi32::<16>(r);
            let q = _mm512_or_si512(hi, _mm512_set1_epi32(0x40));
            let r = _mm512_mask_blend_epi32(nan, r, q);
            _mm256_storeu_si256(dst.as_mut_ptr().add(i) as *mut _, _mm512_cvtepi32_epi16(r));
            i += 16;
        }
        for k in i..n {
            dst[k] = bf16::from_bits(bf16_bits(src[k].to_bits()));
        }
    }

    /// # Safety
    /// avx512f; `src.len() == dst.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn bf16_to_f32_avx512(src: &[bf16], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 16 <= n {
            let h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(src.as_ptr().add(i) as *const _));
            let abs = _mm512_and_si512(h, _mm512_set1_epi32(0x7FFF));
            let nan = _mm512_cmpgt_epi32_mask(abs, _mm512_set1_epi32(0x7F80));
            let h = _mm512_mask_or_epi32(h, nan, h, _mm512_set1_epi32(0x40));
            _mm512_storeu_si512(
                dst.as_mut_ptr().add(i) as *mut _,
                _mm512_slli_epi32::<16>(h),
            );
            i += 16;
        }
        for k in i..n {
            dst[k] = f32::from_bits(bf16_to_bits(src[k].to_bits()));
        }
    }

    /// # Safety
    /// avx2; `src.len() == dst.len()`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn f32_to_bf16_avx2(src: &[f32], dst: &mut [bf16]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 8 <= n {
            let b = _mm256_loadu_si256(src.as_ptr().add(i) as *const _);
            let abs = _mm256_and_si256(b, _mm256_set1_epi32(0x7FFF_FFFF));
            let nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7F80_0000));
            let hi = _mm256_srli_epi32::<16>(b);
            let lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
            let r = _mm256_add_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(0x7FFF)), lsb);
            let r = _mm256_srli_epi32::<16>(r);
            let q = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
            let r = _mm256_blendv_epi8(r, q, nan);
            // Values fit in 16 bits: pack (per 128-bit lane) and gather the two low quarters.
            let p = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi32(r, r));
            _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut _, _mm256_castsi256_si128(p));
            i += 8;
        }
        for k in i..n {
            dst[k] = bf16::from_bits(bf16_bits(src[k].to_bits()));
        }
    }

    /// # Safety
    /// avx2; `src.len() == dst.len()`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn bf16_to_f32_avx2(src: &[bf16], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 8 <= n {
            let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(src.as_ptr().add(i) as *const _));
            let abs = _mm256_and_si256(h, _mm256_set1_epi32(0x7FFF));
            let nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7F80));
            let q = _mm256_and_si256(nan, _mm256_set1_epi32(0x40));
            let h = _mm256_or_si256(h, q);
            _mm256_storeu_si256(
                dst.as_mut_ptr().add(i) as *mut _,
                _mm256_slli_epi32::<16>(h),
            );
            i += 8;
        }
        for k in i..n {
            dst[k] = f32::from_bits(bf16_to_bits(src[k].to_bits()));
        }
    }

    /// # Safety
    /// avx512f; `src.len() == dst.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn f32_to_f16_avx512(src: &[f32], dst: &mut [f16]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 16 <= n {
            let v = _mm512_loadu_ps(src.as_ptr().add(i));
            let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            _mm256_storeu_si256(dst.as_mut_ptr().add(i) as *mut _, h);
            i += 16;
        }
        for k in i..n {
            dst[k] = f16::from_f32(src[k]);
        }
    }

    /// # Safety
    /// avx512f; `src.len() == dst.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn f16_to_f32_avx512(src: &[f16], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 16 <= n {
            let h = _mm256_loadu_si256(src.as_ptr().add(i) as *const _);
            _mm512_storeu_ps(dst.as_mut_ptr().add(i), _mm512_cvtph_ps(h));
            i += 16;
        }
        for k in i..n {
            dst[k] = src[k].to_f32();
        }
    }

    /// # Safety
    /// avx, f16c; `src.len() == dst.len()`.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn f32_to_f16_f16c(src: &[f32], dst: &mut [f16]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm256_loadu_ps(src.as_ptr().add(i));
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut _, h);
            i += 8;
        }
        for k in i..n {
            dst[k] = f16::from_f32(src[k]);
        }
    }

    /// # Safety
    /// avx, f16c; `src.len() == dst.len()`.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn f16_to_f32_f16c(src: &[f16], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 8 <= n {
            let h = _mm_loadu_si128(src.as_ptr().add(i) as *const _);
            _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            i += 8;
        }
        for k in i..n {
            dst[k] = src[k].to_f32();
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{bf16_bits, bf16_to_bits};
    use half::bf16;
    use std::arch::aarch64::*;

    /// # Safety
    /// neon; `src.len() == dst.len()`.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn f32_to_bf16_neon(src: &[f32], dst: &mut [bf16]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 4 <= n {
            let b = vld1q_u32(src.as_ptr().add(i) as *const u32);
            let nan = vcgtq_u32(
                vandq_u32(b, vdupq_n_u32(0x7FFF_FFFF)),
                vdupq_n_u32(0x7F80_0000),
            );
            let hi = vshrq_n_u32::<16>(b);
            let lsb = vandq_u32(hi, vdupq_n_u32(1));
            let r = vshrq_n_u32::<16>(vaddq_u32(vaddq_u32(b, vdupq_n_u32(0x7FFF)), lsb));
            let q = vorrq_u32(hi, vdupq_n_u32(0x40));
            let r = vbslq_u32(nan, q, r);
            vst1_u16(dst.as_mut_ptr().add(i) as *mut u16, vmovn_u32(r));
            i += 4;
        }
        for k in i..n {
            dst[k] = bf16::from_bits(bf16_bits(src[k].to_bits()));
        }
    }

    /// # Safety
    /// neon; `src.len() == dst.len()`.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn bf16_to_f32_neon(src: &[bf16], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let mut i = 0;
        while i + 4 <= n {
            let h = vmovl_u16(vld1_u16(src.as_ptr().add(i) as *const u16));
            let nan = vcgtq_u32(vandq_u32(h, vdupq_n_u32(0x7FFF)), vdupq_n_u32(0x7F80));
            let h = vorrq_u32(h, vandq_u32(nan, vdupq_n_u32(0x40)));
            vst1q_u32(dst.as_mut_ptr().add(i) as *mut u32, vshlq_n_u32::<16>(h));
            i += 4;
        }
        for k in i..n {
            dst[k] = f32::from_bits(bf16_to_bits(src[k].to_bits()));
        }
    }
}
