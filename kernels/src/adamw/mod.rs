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
//!
//! This file holds the API and the scalar reference; the vector kernel is in `vector`.

mod vector;

use crate::dispatch::{active, Isa};
use crate::simd::{self, dispatch};
use rayon::prelude::*;
use vector::Step;

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
