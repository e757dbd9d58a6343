//! Dropout's vector kernel: one vector of consecutive indices hashed at a time
//! (`Simd::dropout_select`), kept lanes divided by `1 − p`, the tail through a padded buffer.

use crate::attention::DropoutMask;
use crate::simd::{Kernel, Simd, MAX_LANES};

/// One chunk: elements `start .. start + x.len()` of the flat index space, all with the same
/// high 32 bits.
pub(super) struct Apply<'a> {
    pub(super) mask: DropoutMask,
    /// `1 − p`, the divisor of kept values.
    pub(super) keep: f32,
    /// Flat index of `x[0]`.
    pub(super) start: u64,
    pub(super) x: &'a [f32],
    pub(super) y: &'a mut [f32],
}

impl Kernel for Apply<'_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        let Apply {
            mask,
            keep,
            start,
            x,
            y,
        } = self;
        let n = x.len().min(y.len());
        assert!(
            n == 0 || (start >> 32) == ((start + n as u64 - 1) >> 32),
            "dropout chunk {start}+{n} crosses a multiple of 2^32"
        );
        let (k0, hk, thr) = mask.hash_keys(start);
        let lo = start as u32;
        let l = S::LANES;
        // SAFETY: S's CPU features (see `dispatch`).
        let (div, zero) = unsafe { (S::splat(keep), S::splat(0.0)) };
        let body = n / l * l;
        let mut i = 0;
        while i < body {
            // SAFETY: i + LANES ≤ n, so the vector at i lies inside both slices; the caller
            // (`dispatch`) runs this with S's CPU features.
            unsafe {
                let v = S::load(x.as_ptr().add(i));
                let kept = S::div(v, div);
                let r = S::dropout_select(lo.wrapping_add(i as u32), k0, hk, thr, kept, zero);
                S::store(y.as_mut_ptr().add(i), r);
            }
            i += l;
        }
        if body < n {
            // the tail through a padded buffer, by the same vector code
            let mut b = [0.0f32; MAX_LANES];
            b[..n - body].copy_from_slice(&x[body..n]);
            // SAFETY: b holds MAX_LANES ≥ LANES values; S's CPU features as above.
            unsafe {
                let kept = S::div(S::load(b.as_ptr()), div);
                let r = S::dropout_select(lo.wrapping_add(body as u32), k0, hk, thr, kept, zero);
                S::store(b.as_mut_ptr(), r);
            }
            y[body..n].copy_from_slice(&b[..n - body]);
        }
    }
}
