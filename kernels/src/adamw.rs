//! Fused AdamW update with decoupled weight decay.
//!
//! ```text
//! m ← β1·m + (1−β1)·g
//! v ← β2·v + (1−β2)·g²
//! m̂, v̂ = m/(1−β1ᵗ), v/(1−β2ᵗ)   (or m, v when bias_correction is off, as BERT's reference does)
//! p ← p − lr·(m̂/(√v̂ + ε) + wd·p)
//! ```

//!
//! The vector paths compute the same expressions in f32 with fused multiply-adds; inputs of at
//! least [`simd::PAR_MIN_ELEMS`] elements are split over rayon in fixed chunks.

use crate::dispatch::{active, Isa};
use crate::simd::{self, dispatch, Kernel, Simd};
use rayon::prelude::*;

struct Step<'a> {
    h: AdamW,
    c1: f32,
    c2: f32,
    param: &'a mut [f32],
    grad: &'a [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
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

/// Hyper-parameters of one update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Decoupled weight decay (0 for parameters that do not decay).
    pub weight_decay: f32,
    /// Divide by 1−βᵗ (textbook Adam). BERT's `AdamWeightDecayOptimizer` does not.
    pub bias_correction: bool,
}

/// One update at step `t` (1-based) over a parameter and its state.
pub fn step(h: &AdamW, t: u64, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    step_with(active(), h, t, param, grad, m, v)
}

/// [`step`] on a chosen path.
pub fn step_with(
    isa: Isa,
    h: &AdamW,
    t: u64,
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let n = param.len();
    assert!(
        grad.len() == n && m.len() == n && v.len() == n,
        "adamw: param {n}, grad {}, m {}, v {} elements",
        grad.len(),
        m.len(),
        v.len()
    );
    assert!(t >= 1, "adamw: step t is 1-based, got 0");
    let (c1, c2) = if h.bias_correction {
        (
            1.0 / (1.0 - (h.beta1 as f64).powi(t.min(i32::MAX as u64) as i32)),
            1.0 / (1.0 - (h.beta2 as f64).powi(t.min(i32::MAX as u64) as i32)),
        )
    } else {
        (1.0, 1.0)
    };
    let (c1, c2) = (c1 as f32, c2 as f32);
    if isa != Isa::Scalar {
        let run = |param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]| {
            let k = Step {
                h: *h,
                c1,
                c2,
                param,
                grad,
                m,
                v,
            };
            if dispatch(isa, k).is_err() {
                unreachable!("scalar is handled below");
            }
        };
        if simd::parallel(n) {
            let c = simd::PAR_CHUNK_ELEMS;
            param
                .par_chunks_mut(c)
                .zip(grad.par_chunks(c))
                .zip(m.par_chunks_mut(c))
                .zip(v.par_chunks_mut(c))
                .for_each(|(((p, g), m), v)| run(p, g, m, v));
        } else {
            run(param, grad, m, v);
        }
        return;
    }
    for i in 0..n {
        let g = grad[i];
        m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * g;
        v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
        let mh = m[i] * c1;
        let vh = v[i] * c2;
        let upd = mh / (vh.sqrt() + h.eps) + h.weight_decay * param[i];
        param[i] -= h.lr * upd;
    }
}
