//! Gradient and value properties of `softmax` and `log_softmax` (last axis).

mod common;

use cloze::{Tape, Tensor, Var};
use common::*;
use proptest::prelude::*;

/// A shape of 1–3 axes of lengths 1..=17 with at most `max` elements (the largest axis is
/// halved, rounding up, until it fits; gradcheck's cost grows with the square of the size).
fn shape(max: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(dim(), 1..=3).prop_map(move |mut s| {
        while s.iter().product::<usize>() > max {
            let i = (0..s.len()).max_by_key(|&i| s[i]).expect("non-empty");
            s[i] = s[i].div_ceil(2);
        }
        s
    })
}

fn logits(lo: f32, hi: f32, max: usize) -> impl Strategy<Value = Tensor> {
    shape(max).prop_flat_map(move |s| tensor_in(s, lo, hi))
}

fn run(x: &Tensor, log: bool) -> Tensor {
    let mut t = Tape::new();
    let v = Var::constant(x.clone());
    let y = if log {
        t.log_softmax(&v)
    } else {
        t.softmax(&v)
    };
    y.unwrap().value().clone()
}

fn cols(x: &Tensor) -> usize {
    *x.shape().last().unwrap()
}

const EPS: f64 = f32::EPSILON as f64;

/// Softmax of one row in f64, and R = the row's largest |x − max x|.
fn reference_row(xr: &[f32]) -> (Vec<f64>, f64) {
    let m = xr.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let z: f64 = xr.iter().map(|&v| (v as f64 - m).exp()).sum();
    let r = xr.iter().map(|&v| m - v as f64).fold(0.0, f64::max);
    (xr.iter().map(|&v| (v as f64 - m).exp() / z).collect(), r)
}

proptest! {
    #![proptest_config(cases(32))]

    #[test]
    fn grad_softmax(x in logits(-3.0, 3.0, 1024)) {
        check_grads(|t, v| t.softmax(&v[0]), &[x], &opts())?;
    }

    #[test]
    fn grad_log_softmax(x in logits(-3.0, 3.0, 1024)) {
        check_grads(|t, v| t.log_softmax(&v[0]), &[x], &opts())?;
    }

    #[test]
    fn grad_log_softmax_nll_through_mul_and_sum(
        (x, picks) in shape(1024).prop_flat_map(|s| {
            let rows = s.iter().product::<usize>() / s[s.len() - 1];
            let c = s[s.len() - 1];
            (tensor_in(s, -3.0, 3.0), proptest::collection::vec(0..c, rows))
        })
    ) {
        // The classifier loss the MLP example builds: −mean over rows of log_softmax[label].
        let c = cols(&x);
        let rows = picks.len();
        let mut onehot = vec![0.0f32; x.len()];
        for (r, &j) in picks.iter().enumerate() {
            onehot[r * c + j] = -1.0 / rows as f32;
        }
        let w = Tensor::from_vec(onehot, x.shape()).unwrap();
        check_grads(
            |t, v| {
                let lp = t.log_softmax(&v[0])?;
                let picked = t.mul(&lp, &Var::constant(w.clone()))?;
                t.sum(&picked)
            },
            &[x],
            &opts(),
        )?;
    }

    #[test]
    fn softmax_rows_sum_to_one_and_lie_in_the_unit_interval(x in logits(-10.0, 10.0, 1 << 14)) {
        // Each output is within a few ulp of its exact value, and an ulp of a value ≤ 1 is
        // ≤ ε, so a row's sum (accumulated in f64 here) is within 4ε·cols of 1.
        let y = run(&x, false);
        let c = cols(&x);
        for row in y.data().chunks(c) {
            prop_assert!(row.iter().all(|&p| (0.0..=1.0).contains(&p)), "{:?}", row);
            let s: f64 = row.iter().map(|&p| p as f64).sum();
            prop_assert!((s - 1.0).abs() <= 4.0 * EPS * c as f64, "row sums to {}", s);
        }
    }

    #[test]
    fn softmax_matches_an_f64_reference(x in logits(-10.0, 10.0, 1 << 14)) {
        // Reference: exp(x − max) / Σ exp(x − max) in f64, written here. An f32 kernel forms
        // the shifted logit x − m in f32, which is off by ≤ ½ulp ≤ ε·|x − m|/2 absolute, i.e.
        // a relative error of ε·|x − m|/2 in exp(x − m); numerator and denominator together
        // give ≤ ε·R with R = the row's largest |x − m|. A few more roundings (exp, sum,
        // divide, store): ε·(R + 4) relative, plus a tiny absolute term for outputs near
        // underflow.
        let y = run(&x, false);
        let c = cols(&x);
        for (xr, yr) in x.data().chunks(c).zip(y.data().chunks(c)) {
            let (want, r) = reference_row(xr);
            for (&yi, &wi) in yr.iter().zip(&want) {
                prop_assert!(
                    (yi as f64 - wi).abs() <= EPS * (r + 4.0) * wi + f32::MIN_POSITIVE as f64,
                    "softmax {} vs {} (R = {})", yi, wi, r
                );
            }
        }
    }

    #[test]
    fn log_softmax_is_log_of_softmax(x in logits(-10.0, 10.0, 1 << 14)) {
        // ln of a softmax output with relative error ≤ ε·(R + 4) (see above) is off by as
        // much absolute; log_softmax's own result carries ≤ ½ulp ≤ ε·|log p|/2 more.
        // Allow twice the sum.
        let ls = run(&x, true);
        let sm = run(&x, false);
        let c = cols(&x);
        for ((xr, lr), pr) in x.data().chunks(c).zip(ls.data().chunks(c)).zip(sm.data().chunks(c)) {
            let (_, r) = reference_row(xr);
            for (&l, &p) in lr.iter().zip(pr) {
                let want = (p as f64).ln();
                prop_assert!(
                    (l as f64 - want).abs() <= 2.0 * EPS * (r + 4.0 + want.abs()),
                    "log_softmax {} vs ln(softmax) {}", l, want
                );
            }
        }
    }

    #[test]
    fn large_logits_give_no_nan_or_inf(
        x in shape(1 << 12).prop_flat_map(|s| {
            let n: usize = s.iter().product();
            proptest::collection::vec(prop_oneof![Just(1e4f32), Just(-1e4f32), -1e4f32..=1e4], n)
                .prop_map(move |v| Tensor::from_vec(v, &s).unwrap())
        })
    ) {
        let c = cols(&x);
        let y = run(&x, false);
        let l = run(&x, true);
        prop_assert!(y.data().iter().all(|v| v.is_finite()));
        prop_assert!(l.data().iter().all(|v| v.is_finite()));
        for row in y.data().chunks(c) {
            let s: f64 = row.iter().map(|&p| p as f64).sum();
            prop_assert!((s - 1.0).abs() <= 4.0 * EPS * c as f64, "row sums to {}", s);
        }
        // Gradients stay finite too.
        let mut t = Tape::new();
        let v = t.leaf(x.clone());
        let a = t.softmax(&v).unwrap();
        let b = t.log_softmax(&v).unwrap();
        let ab = t.add(&a, &b).unwrap();
        let loss = t.sum(&ab).unwrap();
        let g = t.backward(&loss).unwrap();
        prop_assert!(g.get(&v).unwrap().data().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn gradient_of_the_row_sums_is_zero(x in logits(-5.0, 5.0, 1 << 12)) {
        // Σⱼ softmax(x)ⱼ = 1 for every x, so its gradient is 0: y·(1 − Σy) per element, with
        // |1 − Σy| ≤ 4ε·cols (see above).
        let c = cols(&x);
        let mut t = Tape::new();
        let v = t.leaf(x.clone());
        let y = t.softmax(&v).unwrap();
        let loss = t.sum(&y).unwrap();
        let g = t.backward(&loss).unwrap();
        for &d in g.get(&v).unwrap().data() {
            prop_assert!((d as f64).abs() <= 4.0 * EPS * c as f64, "{}", d);
        }
    }
}

#[test]
fn softmax_at_known_points() {
    // Equal logits: uniform. [0, ln 3]: [1/4, 3/4]. Shift by 1000 changes nothing.
    let u = run(&Tensor::from_vec(vec![2.0; 4], &[1, 4]).unwrap(), false);
    assert_eq!(u.data(), &[0.25; 4]);
    for shift in [0.0f32, 1000.0] {
        let x = Tensor::from_vec(vec![shift, shift + 3f32.ln()], &[2]).unwrap();
        let y = run(&x, false);
        // 1000 + ln 3 rounded to f32 moves the logit gap by ≤ ½ulp(1000) = 2⁻¹⁵ ≈ 3e-5, which
        // moves p by ≤ p(1 − p)·3e-5 < 1e-5; unshifted, only the rounding of ln 3 (≤ ε) and
        // a few roundings in the kernel remain.
        let tol = if shift == 0.0 {
            4.0 * f32::EPSILON
        } else {
            1e-5
        };
        assert!((y.data()[0] - 0.25).abs() <= tol, "{:?}", y.data());
        assert!((y.data()[1] - 0.75).abs() <= tol, "{:?}", y.data());
    }
}

#[test]
fn softmax_needs_an_axis_with_elements() {
    let mut t = Tape::new();
    let s = Var::constant(Tensor::scalar(1.0));
    let err = t.softmax(&s).unwrap_err().to_string();
    assert_mentions(&err, &["softmax", "[]"]);
    let e = Var::constant(Tensor::zeros(&[3, 0]));
    let err = t.log_softmax(&e).unwrap_err().to_string();
    assert_mentions(&err, &["log_softmax", "[3, 0]"]);
}
