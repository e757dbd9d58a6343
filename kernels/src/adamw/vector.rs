//! AdamW's vector kernel (see the module doc of [`adamw`](super) for the update).

use super::AdamW;
use crate::simd::{self, Kernel, Simd};

pub(super) struct Step<'a> {
    pub(super) h: AdamW,
    pub(super) c1: f32,
    pub(super) c2: f32,
    pub(super) param: &'a mut [f32],
    pub(super) grad: &'a [f32],
    pub(super) m: &'a mut [f32],
    pub(super) v: &'a mut [f32],
}

impl Kernel for Step<'_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        let h = self.h;
        let (b1, b2) = (S::splat(h.beta1), S::splat(h.beta2));
        let (nb1, nb2) = (S::splat(1.0 - h.beta1), S::splat(1.0 - h.beta2));
        let (c1, c2) = (S::splat(self.c1), S::splat(self.c2));
        let (eps, wd, nlr) = (S::splat(h.eps), S::splat(h.weight_decay), S::splat(-h.lr));
        let n = self.param.len();
        // `step_with` checked the four lengths are equal, and its chunks keep them equal, so
        // pointers at i < n − n % LANES are valid for LANES values in all four.
        debug_assert!(self.grad.len() == n && self.m.len() == n && self.v.len() == n);
        // One vector of the update at offset i of (p, g, m, v) slices of at least i + LANES.
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn one<S: Simd>(p: *mut f32, g: *const f32, m: *mut f32, v: *mut f32, k: [S::V; 9]) {
            let [b1, b2, nb1, nb2, c1, c2, eps, wd, nlr] = k;
            let gv = S::load(g);
            let mv = S::fma(b1, S::load(m), S::mul(nb1, gv));
            let vv = S::fma(b2, S::load(v), S::mul(S::mul(nb2, gv), gv));
            S::store(m, mv);
            S::store(v, vv);
            let pv = S::load(p);
            let den = S::add(S::sqrt(S::mul(vv, c2)), eps);
            let upd = S::fma(wd, pv, S::div(S::mul(mv, c1), den));
            S::store(p, S::fma(nlr, upd, pv));
        }
        let k = [b1, b2, nb1, nb2, c1, c2, eps, wd, nlr];
        let l = S::LANES;
        let body = n - n % l;
        let (p, g) = (self.param.as_mut_ptr(), self.grad.as_ptr());
        let (m, v) = (self.m.as_mut_ptr(), self.v.as_mut_ptr());
        let mut i = 0;
        while i < body {
            one::<S>(p.add(i), g.add(i), m.add(i), v.add(i), k);
            i += l;
        }
        if body < n {
            // Tail through padded copies (zeros: v = 0 gives 0/(0 + eps), no NaN).
            let t = n - body;
            let mut buf = [[0.0f32; simd::MAX_LANES]; 4];
            buf[0][..t].copy_from_slice(&self.param[body..]);
            buf[1][..t].copy_from_slice(&self.grad[body..]);
            buf[2][..t].copy_from_slice(&self.m[body..]);
            buf[3][..t].copy_from_slice(&self.v[body..]);
            let [bp, bg, bm, bv] = &mut buf;
            one::<S>(
                bp.as_mut_ptr(),
                bg.as_ptr(),
                bm.as_mut_ptr(),
                bv.as_mut_ptr(),
                k,
            );
            self.param[body..].copy_from_slice(&bp[..t]);
            self.m[body..].copy_from_slice(&bm[..t]);
            self.v[body..].copy_from_slice(&bv[..t]);
        }
    }
}
