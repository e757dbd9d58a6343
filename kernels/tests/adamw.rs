//! The fused AdamW update on every vector path against the scalar reference, on awkward
//! lengths and random hyper-parameters; bit-identical results for 1 and 2 threads.

mod common;

use cloze_kernels::adamw::{self, AdamW};
use cloze_kernels::dispatch::Isa;
use common::{
    assert_close, cases, for_each_isa, for_each_vector_isa, parallel_inputs,
    same_bits_across_threads, Rng, AWKWARD, PARALLEL_LEN, U,
};
use proptest::prelude::*;

fn check_adamw(n: usize, seed: u64, h: AdamW, t: u64) {
    let mut r = Rng::new(seed);
    let p = r.vec(n, -1.0, 1.0);
    let g = r.vec(n, -1.0, 1.0);
    let m = r.vec(n, -0.1, 0.1);
    let v = r.vec(n, 0.0, 0.01);
    let (mut p0, mut m0, mut v0) = (p.clone(), m.clone(), v.clone());
    adamw::step_with(Isa::Scalar, &h, t, &mut p0, &g, &mut m0, &mut v0);
    for_each_vector_isa(|isa| {
        let (mut p1, mut m1, mut v1) = (p.clone(), m.clone(), v.clone());
        adamw::step_with(isa, &h, t, &mut p1, &g, &mut m1, &mut v1);
        // m, v: two products and a sum, fused or not: ≤ 3 roundings of the larger term.
        assert_close("adamw m", isa, &m1, &m0, |i| {
            3.0 * U * (m[i].abs() + g[i].abs()) as f64
        });
        assert_close("adamw v", isa, &v1, &v0, |i| {
            4.0 * U * (v[i] + g[i] * g[i]) as f64
        });
        // p − lr·(m̂/(√v̂ + ε) + wd·p): the ratio carries ≤ 8 roundings (m, v, sqrt, add, div)
        // relative, the rest 3 of |p|.
        assert_close("adamw param", isa, &p1, &p0, |i| {
            let vh = v0[i] as f64
                * if h.bias_correction {
                    1.0 / (1.0 - (h.beta2 as f64).powi(t as i32))
                } else {
                    1.0
                };
            let mh = m0[i] as f64
                * if h.bias_correction {
                    1.0 / (1.0 - (h.beta1 as f64).powi(t as i32))
                } else {
                    1.0
                };
            let ratio = (mh / (vh.sqrt() + h.eps as f64)).abs();
            h.lr as f64 * (12.0 * U * ratio + 3.0 * U * (h.weight_decay * p[i]).abs() as f64)
                + 3.0 * U * p[i].abs() as f64
        });
    });
}

#[test]
fn adamw_awkward_lengths() {
    for (k, n) in AWKWARD.into_iter().enumerate() {
        for bc in [false, true] {
            let h = AdamW {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-6,
                weight_decay: if k % 2 == 0 { 0.01 } else { 0.0 },
                bias_correction: bc,
            };
            check_adamw(n, k as u64, h, 1 + 7 * k as u64);
        }
    }
}

proptest! {
    #![proptest_config(cases(48))]
    #[test]
    fn adamw_random(n in 1usize..1000, seed in any::<u64>(), t in 1u64..5000, bc in any::<bool>(), wd in 0.0f32..0.1) {
        let h = AdamW { lr: 2e-4, beta1: 0.9, beta2: 0.98, eps: 1e-8, weight_decay: wd, bias_correction: bc };
        check_adamw(n, seed, h, t);
    }
}

#[test]
fn one_and_two_threads_bit_identical() {
    let n = PARALLEL_LEN;
    let (_, [x, x2]) = parallel_inputs(n);
    let h = AdamW {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-6,
        weight_decay: 0.01,
        bias_correction: true,
    };
    for_each_isa(|isa| {
        same_bits_across_threads(&format!("adamw {isa}"), || {
            let (mut p, mut mm, mut vv) = (x.clone(), vec![0.01; n], vec![0.001; n]);
            adamw::step_with(isa, &h, 3, &mut p, &x2, &mut mm, &mut vv);
            [p, mm, vv].concat()
        });
    });
}
