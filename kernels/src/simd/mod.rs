//! A small SIMD abstraction so each element-wise and row kernel is written once and compiled for
//! every instruction set.
//!
//! `Simd` is implemented by zero-sized tokens for AVX-512F, AVX2+FMA, the `wide` crate
//! (portable) and NEON. Its methods are `#[inline(always)] unsafe fn`s: they are only sound to
//! call from code compiled with the token's CPU features, on a CPU that has them. Generic kernel
//! bodies (also `#[inline(always)] unsafe fn`) are instantiated inside one
//! `#[target_feature]` entry point per instruction set by `dispatch`, which is the only place
//! that decides, after checking [`Isa::is_supported`], that a token may be used.
//!
//! The vector math (`math`: `exp`, `2ᵗ`) is shared by all paths, so every path computes the
//! same approximation; only the rounding of fused multiply-adds and the order of horizontal
//! reductions differ between instruction sets. The exception is GELU's `Φ` and `gelu'` (in
//! `gelu::phi`): tokens with a one-instruction 32-entry table lookup (`Simd::FAST_LUT32`,
//! AVX-512) use the 32-interval tables of `gelu::tables`, those with a one-instruction 8-entry
//! lookup (`Simd::FAST_LUT8`, AVX2) its 8-interval tables, the others the logistic form
//! `phi_logistic_e`; all are tested against the same f64 reference and bound.
//!
//! The loops every kernel shares (tails, streaming stores, reductions) and the threading policy
//! (fixed chunks, so results do not depend on the pool size) are in `loops`.

use crate::dispatch::Isa;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(feature = "test-hooks")]
mod hooks;
pub(crate) mod loops;
pub(crate) mod math;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
pub(crate) mod portable;
#[cfg(feature = "bench")]
mod stream_copy;

#[cfg(feature = "test-hooks")]
pub use hooks::{math_with, MathFn};
pub(crate) use loops::*;
pub use loops::{rows_per_chunk, stream_output, PAR_CHUNK_ELEMS, PAR_MIN_ELEMS, STREAM_MIN_BYTES};
pub(crate) use math::*;
#[cfg(feature = "bench")]
pub use stream_copy::stream_copy;

/// The widest vector of any token, in f32 lanes (for tail buffers).
pub(crate) const MAX_LANES: usize = 16;

/// One instruction set's f32 vector operations.
///
/// # Safety
/// Every method may only be called from code compiled with the implementing token's target
/// features, running on a CPU that has them. Pointer arguments must be valid for `LANES` f32.
pub(crate) unsafe trait Simd: Copy {
    /// A vector of `LANES` f32.
    type V: Copy;
    /// Lanes per vector.
    const LANES: usize;

    unsafe fn splat(x: f32) -> Self::V;
    /// Unaligned load of `LANES` values.
    unsafe fn load(p: *const f32) -> Self::V;
    /// Unaligned store of `LANES` values.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Store of `LANES` values that bypasses the caches where the ISA has such a store (no
    /// read-for-ownership of the destination line); `p` must be aligned to `LANES·4` bytes.
    /// Callers issue [`Simd::fence`] after their last streaming store. The default is `store`.
    #[inline(always)]
    unsafe fn stream(p: *mut f32, v: Self::V) {
        Self::store(p, v)
    }
    /// Orders earlier streaming stores before later stores (a no-op where `stream` is `store`).
    #[inline(always)]
    unsafe fn fence() {}
    /// Hints that the 64-byte line holding `p` will be read soon (a no-op by default). `p` must
    /// point into a live allocation.
    #[inline(always)]
    unsafe fn prefetch(_p: *const f32) {}
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c` (fused where the ISA has FMA; the portable path on SSE2 rounds twice).
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lane maximum; which operand wins when one is NaN is unspecified.
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// Lane minimum; which operand wins when one is NaN is unspecified.
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sqrt(a: Self::V) -> Self::V;
    // Only the erf of the test hooks (`math::erf`) takes absolute values.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    unsafe fn abs(a: Self::V) -> Self::V;
    /// Round to the nearest integer, ties to even.
    unsafe fn round(a: Self::V) -> Self::V;
    /// `2ⁿ` for lanes holding integers `n` in `-126..=127` (anything else gives an unspecified
    /// finite, infinite or NaN value).
    unsafe fn pow2i(n: Self::V) -> Self::V;
    /// `a > b ? t : f` per lane (ordered: NaN compares false).
    unsafe fn select_gt(a: Self::V, b: Self::V, t: Self::V, f: Self::V) -> Self::V;
    /// `a < b ? t : f` per lane (ordered: NaN compares false).
    unsafe fn select_lt(a: Self::V, b: Self::V, t: Self::V, f: Self::V) -> Self::V;
    /// Sum of the lanes (a fixed order per ISA).
    unsafe fn reduce_sum(a: Self::V) -> f32;
    /// Maximum of the lanes (NaN lanes may be ignored or propagated).
    unsafe fn reduce_max(a: Self::V) -> f32;
    /// Round down to an integer.
    #[inline(always)]
    unsafe fn floor(a: Self::V) -> Self::V {
        let r = Self::round(a);
        Self::select_gt(r, a, Self::sub(r, Self::splat(1.0)), r)
    }
    /// Whether [`Simd::lut32`] is one instruction (AVX-512's `vpermt2ps`); kernels choose a
    /// table-driven formula only then.
    const FAST_LUT32: bool = false;
    /// `t[i]` per lane, for lanes `i` holding integers in `0..32` (as f32). The default goes
    /// through memory (correct, slow).
    #[inline(always)]
    unsafe fn lut32(i: Self::V, t: &[f32; 32]) -> Self::V {
        let mut b = [0.0f32; MAX_LANES];
        Self::store(b.as_mut_ptr(), i);
        for v in &mut b[..Self::LANES] {
            *v = t[(*v as usize) & 31];
        }
        Self::load(b.as_ptr())
    }
    /// Whether [`Simd::lut8`] is one instruction (AVX2's `vpermps`); kernels choose the
    /// 8-interval table formulas only then (and only without [`Simd::FAST_LUT32`]).
    const FAST_LUT8: bool = false;
    /// The index operand of [`Simd::lut8`] for lanes holding integers in `0..8` (as f32),
    /// converted once for several lookups. The default keeps the f32 values.
    #[inline(always)]
    unsafe fn lut8_index(i: Self::V) -> Self::V {
        i
    }
    /// `t[i]` per lane, `idx` from [`Simd::lut8_index`]. The default goes through memory
    /// (correct, slow).
    #[inline(always)]
    unsafe fn lut8(idx: Self::V, t: &[f32; 8]) -> Self::V {
        let mut b = [0.0f32; MAX_LANES];
        Self::store(b.as_mut_ptr(), idx);
        for v in &mut b[..Self::LANES] {
            *v = t[(*v as usize) & 7];
        }
        Self::load(b.as_ptr())
    }
    /// `2ᵗ` per lane with relative error about 2e-8 plus rounding (see [`exp2_generic`]); a
    /// token may replace the generic version.
    #[inline(always)]
    unsafe fn exp2(t: Self::V) -> Self::V {
        exp2_generic::<Self>(t)
    }
    /// `eˣ` per lane (see [`exp`]); a token may replace the generic version.
    #[inline(always)]
    unsafe fn exp(x: Self::V) -> Self::V {
        exp_generic::<Self>(x)
    }
    /// Vector registers of the instruction set (to choose register-blocked tile shapes).
    const REGISTERS: usize = 16;
    /// Loads the first `n ≤ LANES` values at `p` (only those are read); the other lanes are
    /// `pad`. The default goes through a buffer; tokens with masked loads replace it.
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, n: usize, pad: f32) -> Self::V {
        let mut b = [pad; MAX_LANES];
        std::ptr::copy_nonoverlapping(p, b.as_mut_ptr(), n.min(Self::LANES));
        Self::load(b.as_ptr())
    }
    /// Stores the first `n ≤ LANES` lanes of `v` at `p` (only those are written). The default
    /// goes through a buffer; tokens with masked stores replace it.
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, n: usize, v: Self::V) {
        let mut b = [0.0f32; MAX_LANES];
        Self::store(b.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(b.as_ptr(), p, n.min(Self::LANES));
    }
    /// The attention dropout test on `LANES` consecutive counters: lane `i` is `t` when
    /// [`dropout_hash`]`(lo + i, k0, hk) ≥ thr` (unsigned; `lo + i` wraps in 32 bits) and `f`
    /// otherwise. The default hashes lane by lane; tokens with 32-bit integer lanes replace it.
    #[inline(always)]
    unsafe fn dropout_select(
        lo: u32,
        k0: u32,
        hk: u32,
        thr: u32,
        t: Self::V,
        f: Self::V,
    ) -> Self::V {
        // 1 in kept lanes, 0 in dropped ones
        let mut keep = [0.0f32; MAX_LANES];
        for (i, k) in keep.iter_mut().take(Self::LANES).enumerate() {
            *k = (dropout_hash(lo.wrapping_add(i as u32), k0, hk) >= thr) as u32 as f32;
        }
        Self::select_gt(Self::load(keep.as_ptr()), Self::splat(0.5), t, f)
    }
}

/// A 32-bit bijective mixer ("lowbias32", C. Wellons).
#[inline(always)]
pub(crate) fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^ (x >> 16)
}

/// The counter hash of attention dropout: `mix32(mix32(lo ^ k0) ^ hk)`, where `lo` is the low
/// half of the flat index and `hk` its high half xor the second key (see
/// `attention::dropout_keep`). The vector versions of [`Simd::dropout_select`] compute exactly
/// this per lane.
#[inline(always)]
pub(crate) fn dropout_hash(lo: u32, k0: u32, hk: u32) -> u32 {
    mix32(mix32(lo ^ k0) ^ hk)
}

/// A kernel body generic over the instruction set; [`dispatch`] runs it on one.
pub(crate) trait Kernel {
    type Out;
    /// Runs the body with token `S`.
    ///
    /// # Safety
    /// Only from inside a `#[target_feature]` function enabling `S`'s features, on a CPU that
    /// has them ([`dispatch`] is that function).
    unsafe fn run<S: Simd>(self) -> Self::Out;
}

/// Runs `k` on `isa`. Returns `Err(k)` for [`Isa::Scalar`] (the caller runs its own reference).
///
/// # Panics
/// If `isa` is not supported by this CPU (or not compiled for this architecture).
pub(crate) fn dispatch<K: Kernel>(isa: Isa, k: K) -> Result<K::Out, K> {
    assert!(
        isa.is_supported(),
        "kernel path {isa} is not supported on this CPU"
    );
    match isa {
        Isa::Scalar => Err(k),
        // SAFETY: `wide` compiles to the baseline target features, which every CPU running this
        // binary has; the portable token needs nothing more.
        Isa::Portable => Ok(unsafe { k.run::<portable::Portable>() }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn go<K: Kernel>(k: K) -> K::Out {
                k.run::<avx2::Avx2>()
            }
            // SAFETY: `is_supported` checked avx2 and fma above; `go` enables exactly them.
            Ok(unsafe { go(k) })
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn go<K: Kernel>(k: K) -> K::Out {
                k.run::<avx512::Avx512>()
            }
            // SAFETY: `is_supported` checked avx512f, avx2 and fma above; `go` enables them.
            Ok(unsafe { go(k) })
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => {
            #[target_feature(enable = "neon")]
            unsafe fn go<K: Kernel>(k: K) -> K::Out {
                k.run::<neon::Neon>()
            }
            // SAFETY: `is_supported` checked neon above; `go` enables it.
            Ok(unsafe { go(k) })
        }
        #[allow(unreachable_patterns)]
        other => unreachable!("{other} passed is_supported on an architecture without it"),
    }
}
