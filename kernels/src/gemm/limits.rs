//! Machine limits for judging the GEMM: peak FMA throughput of one core with independent
//! accumulator chains (enough of them to cover FMA latency × FMA ports), used by
//! `benches/machine_limits.rs`. Each function returns `None` when the CPU lacks the ISA.
//! Bench-only: built with the `bench` feature.

/// Independent accumulator chains per loop iteration: at least FMA latency (4) × FMA ports (2),
/// and with the two constants at most 16 registers, so the AVX2 loop does not spill.
pub const FMA_CHAINS: usize = 12;

/// Floating-point operations (2 per lane per FMA) of one `fma_peak_avx512(iters)` call.
pub fn flops_avx512(iters: usize) -> u64 {
    (iters * FMA_CHAINS * 16 * 2) as u64
}

/// Floating-point operations of one `fma_peak_avx2(iters)` call.
pub fn flops_avx2(iters: usize) -> u64 {
    (iters * FMA_CHAINS * 8 * 2) as u64
}

/// Runs `iters` × [`FMA_CHAINS`] 16-lane FMAs (`x = x·0.999 + 0.001`, which stays near 1) and
/// returns a sum of the results so the work cannot be optimised away.
pub fn fma_peak_avx512(iters: usize) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if crate::dispatch::Isa::Avx512.is_supported() {
        // SAFETY: AVX-512F (and AVX2/FMA) support was just checked.
        return Some(unsafe { x86::avx512(iters) });
    }
    let _ = iters;
    None
}

/// Runs `iters` × [`FMA_CHAINS`] 8-lane FMAs; see [`fma_peak_avx512`].
pub fn fma_peak_avx2(iters: usize) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if crate::dispatch::Isa::Avx2.is_supported() {
        // SAFETY: AVX2 and FMA support was just checked.
        return Some(unsafe { x86::avx2(iters) });
    }
    let _ = iters;
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::FMA_CHAINS;
    use std::arch::x86_64::*;

    /// [`FMA_CHAINS`] chains of `iters` FMAs `x = x·0.999 + 0.001` from 1, added into one
    /// vector; `set1`, `fmadd`, `zero`, `add` are the ISA's f32 intrinsics.
    macro_rules! fma_chains {
        (
            $iters:expr,
            set1: $set1:ident, fmadd: $fmadd:ident,
            zero: $zero:ident, add: $add:ident
        ) => {{
            let mul = $set1(std::hint::black_box(0.999));
            let add = $set1(std::hint::black_box(0.001));
            let mut acc = [$set1(1.0); FMA_CHAINS];
            for _ in 0..$iters {
                for x in acc.iter_mut() {
                    *x = $fmadd(*x, mul, add);
                }
            }
            let mut s = $zero();
            for x in acc {
                s = $add(s, x);
            }
            s
        }};
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(iters: usize) -> f32 {
        let s = fma_chains! {
            iters,
            set1: _mm512_set1_ps, fmadd: _mm512_fmadd_ps,
            zero: _mm512_setzero_ps, add: _mm512_add_ps
        };
        _mm512_reduce_add_ps(s)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(iters: usize) -> f32 {
        let s = fma_chains! {
            iters,
            set1: _mm256_set1_ps, fmadd: _mm256_fmadd_ps,
            zero: _mm256_setzero_ps, add: _mm256_add_ps
        };
        let mut out = [0.0f32; 8];
        // SAFETY: out holds 8 f32.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }
}
