//! Gradient and value properties of `layer_norm` and `residual_layer_norm`.

mod common;

use cloze::{Tape, Tensor, Var};
use common::*;
use proptest::prelude::*;

const EPS: f32 = 1e-5;

/// `x [..., H]` (1..=2 leading axes) with values `u + (±2)`: `u` uniform in [−w, w] and the
/// sign alternating along the row. For `w ≤ 1.5` every row of `H ≥ 2` has variance ≥ 1/12:
/// whichever side of 0 the mean lies, at least a third of the entries are ≥ 0.5 away from it.
/// That keeps `rstd ≤ 3.5`, where the central difference's truncation error (∝ h²·rstd²) is
/// far below gradcheck's tolerance; rows of nearly equal values would need a smaller step.
/// (H = 1 rows are constant; their output is β and their input gradient exactly 0.)
fn spread_rows(shape: Vec<usize>, w: f32) -> impl Strategy<Value = Tensor> {
    tensor_in(shape.clone(), -w, w).prop_map(move |u| {
        let h = *shape.last().unwrap();
        Tensor::from_fn(&shape, |i| {
            u.data()[i] + if (i % h).is_multiple_of(2) { 2.0 } else { -2.0 }
        })
    })
}

fn row_shape(min_h: usize) -> impl Strategy<Value = Vec<usize>> {
    (proptest::collection::vec(dim(), 1..=2), min_h..=17).prop_map(|(mut s, h)| {
        s.push(h);
        s
    })
}

/// `(x − μ)/√(σ² + eps)·γ + β` per row, in f64.
fn reference(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Vec<f64> {
    let h = gamma.len();
    let mut out = Vec::with_capacity(x.len());
    for row in x.data().chunks(h) {
        let mu = row.iter().map(|&v| v as f64).sum::<f64>() / h as f64;
        let var = row.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / h as f64;
        let rs = 1.0 / (var + eps as f64).sqrt();
        for ((&x, &g), &b) in row.iter().zip(gamma.data()).zip(beta.data()) {
            out.push((x as f64 - mu) * rs * g as f64 + b as f64);
        }
    }
    out
}

fn ln_case(w: f32) -> impl Strategy<Value = (Tensor, Tensor, Tensor)> {
    row_shape(1).prop_flat_map(move |s| {
        let h = *s.last().unwrap();
        (spread_rows(s, w), tensor(vec![h]), tensor(vec![h]))
    })
}

proptest! {
    #![proptest_config(cases(32))]

    #[test]
    fn grad_layer_norm((x, gamma, beta) in ln_case(1.5)) {
        check_grads(|t, v| t.layer_norm(&v[0], &v[1], &v[2], EPS), &[x, gamma, beta], &opts())?;
    }

    #[test]
    fn grad_residual_layer_norm(
        (x, r, gamma, beta) in row_shape(1).prop_flat_map(|s| {
            let h = *s.last().unwrap();
            // x carries the ±2 pattern and |u| ≤ 0.75; |residual| ≤ 0.75, so x + residual is
            // again ±2 plus at most 1.5 (the variance bound of `spread_rows` holds).
            (spread_rows(s.clone(), 0.75), tensor_in(s, -0.75, 0.75), tensor(vec![h]), tensor(vec![h]))
        })
    ) {
        check_grads(
            |t, v| t.residual_layer_norm(&v[0], &v[1], &v[2], &v[3], EPS),
            &[x, r, gamma, beta],
            &opts(),
        )?;
    }

    #[test]
    fn normalised_rows_have_mean_zero_and_variance_one(x in row_shape(2).prop_flat_map(|s| spread_rows(s, 1.5))) {
        let h = *x.shape().last().unwrap();
        let mut t = Tape::new();
        let g = Var::constant(Tensor::ones(&[h]));
        let b = Var::constant(Tensor::zeros(&[h]));
        let y = t.layer_norm(&Var::constant(x.clone()), &g, &b, EPS).unwrap();
        for row in y.value().data().chunks(h) {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / h as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / h as f64;
            // Each |y| ≤ √H ≈ 4.1 carries one f32 rounding (≤ 2.5e-7), so |mean| ≤ ~3e-7.
            prop_assert!(mean.abs() <= 1e-6, "row mean {mean}");
            // Exactly, var(y) = σ²/(σ² + eps) ≥ 1 − eps·12 (σ² ≥ 1/12, see spread_rows), plus
            // the rounding above (relative ~1e-6).
            prop_assert!((var - 1.0).abs() <= 12.0 * EPS as f64 + 1e-5, "row variance {var}");
        }
    }

    #[test]
    fn layer_norm_matches_f64_reference(
        (x, gamma, beta) in ln_case(1.5), eps in prop_oneof![Just(1e-12f32), Just(1e-5), Just(0.1)]
    ) {
        let mut t = Tape::new();
        let y = t.layer_norm(
            &Var::constant(x.clone()), &Var::constant(gamma.clone()), &Var::constant(beta.clone()), eps,
        ).unwrap();
        let want = reference(&x, &gamma, &beta, eps);
        // x̂ (|x̂| ≤ √H) is rounded to f32 once, then ·γ + β adds two roundings: a few ulp of
        // magnitudes ≤ √17·2 + 2 ≈ 10, so 1e-5 absolute.
        for (&a, &b) in y.value().data().iter().zip(&want) {
            prop_assert!((a as f64 - b).abs() <= 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn residual_layer_norm_is_layer_norm_of_the_sum(
        (x, r, gamma, beta) in row_shape(1).prop_flat_map(|s| {
            let h = *s.last().unwrap();
            (spread_rows(s.clone(), 0.75), tensor_in(s, -0.75, 0.75), tensor(vec![h]), tensor(vec![h]))
        })
    ) {
        let mut t = Tape::new();
        let c = |v: &Tensor| Var::constant(v.clone());
        let y = t.residual_layer_norm(&c(&x), &c(&r), &c(&gamma), &c(&beta), EPS).unwrap();
        let sum = Tensor::from_fn(x.shape(), |i| x.data()[i] + r.data()[i]);
        let want = reference(&sum, &gamma, &beta, EPS);
        for (&a, &b) in y.value().data().iter().zip(&want) {
            prop_assert!((a as f64 - b).abs() <= 1e-5, "{a} vs {b}");
        }
    }
}

#[test]
fn gamma_and_beta_shapes_are_checked() {
    let mut t = Tape::new();
    let x = t.leaf(Tensor::zeros(&[2, 4]));
    let g = t.leaf(Tensor::ones(&[3]));
    let b = t.leaf(Tensor::zeros(&[4]));
    let err = t.layer_norm(&x, &g, &b, EPS).unwrap_err().to_string();
    assert_mentions(&err, &["layer_norm", "[3]", "[2, 4]"]);
}

#[test]
fn residual_shape_must_match() {
    let mut t = Tape::new();
    let x = t.leaf(Tensor::zeros(&[2, 4]));
    let r = t.leaf(Tensor::zeros(&[1, 4]));
    let g = t.leaf(Tensor::ones(&[4]));
    let b = t.leaf(Tensor::zeros(&[4]));
    let err = t
        .residual_layer_norm(&x, &r, &g, &b, EPS)
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["[2, 4]", "[1, 4]"]);
}

#[test]
fn bad_eps_is_an_error_naming_it() {
    let mut t = Tape::new();
    let x = t.leaf(Tensor::zeros(&[2, 4]));
    let g = t.leaf(Tensor::ones(&[4]));
    let b = t.leaf(Tensor::zeros(&[4]));
    for eps in [0.0f32, -1e-5, f32::NAN] {
        let err = t.layer_norm(&x, &g, &b, eps).unwrap_err().to_string();
        assert!(err.contains(&format!("eps = {eps}")), "{err}");
    }
}

#[test]
fn constant_rows_give_beta_and_no_nan() {
    let mut t = Tape::new();
    let x = t.leaf(Tensor::full(&[3, 5], 7.0));
    let g = t.leaf(Tensor::ones(&[5]));
    let b = t.leaf(Tensor::from_vec(vec![0.5, -1.0, 0.0, 2.0, 3.0], &[5]).unwrap());
    let y = t.layer_norm(&x, &g, &b, 1e-12).unwrap();
    for row in y.value().data().chunks(5) {
        assert_eq!(row, &[0.5, -1.0, 0.0, 2.0, 3.0]);
    }
    let loss = t.sum(&y).unwrap();
    let grads = t.backward(&loss).unwrap();
    assert!(grads.get(&x).unwrap().data().iter().all(|v| v.is_finite()));
}
