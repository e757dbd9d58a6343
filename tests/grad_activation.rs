//! Gradient and value properties of the activations `tanh` and `relu` (GELU's are in
//! `grad_gelu.rs`).

mod common;
use cloze::{Tape, Tensor, Var};
use common::*;
use proptest::prelude::*;

/// Values with magnitude in [0.05, 2] and either sign: never within 0.05 of ReLU's kink, so
/// the finite-difference step (h = 5e-3) never straddles it.
fn away_from_zero() -> impl Strategy<Value = Tensor> {
    capped_shape(1024).prop_flat_map(|s| tensor_away_from_zero(s, 0.05, 2.0))
}

proptest! {
    #![proptest_config(cases(32))]

    #[test]
    fn grad_tanh(x in capped_shape(1024).prop_flat_map(|s| tensor_in(s, -3.0, 3.0))) {
        check_grads(|t, v| t.tanh(&v[0]), &[x], &opts())?;
    }

    #[test]
    fn grad_relu(x in away_from_zero()) {
        check_grads(|t, v| t.relu(&v[0]), &[x], &opts())?;
    }

    #[test]
    fn tanh_and_relu_values(x in capped_shape(1024).prop_flat_map(|s| tensor_in(s, -5.0, 5.0))) {
        let mut t = Tape::new();
        let v = Var::constant(x.clone());
        let th = t.tanh(&v).unwrap();
        let r = t.relu(&v).unwrap();
        for ((&xi, &ti), &ri) in x.data().iter().zip(th.value().data()).zip(r.value().data()) {
            // f32 tanh is within about 1 ulp of the f64 value; |tanh| ≤ 1, so 2ε absolute.
            prop_assert!((ti as f64 - (xi as f64).tanh()).abs() <= 2.0 * f32::EPSILON as f64,
                "tanh({}) = {}", xi, ti);
            prop_assert_eq!(ri, if xi > 0.0 { xi } else { 0.0 });
        }
    }
}

#[test]
fn relu_gradient_at_exactly_zero_is_zero() {
    let mut t = Tape::new();
    let x = t.leaf(Tensor::from_vec(vec![0.0, -0.0, 1.5, -1.5], &[4]).unwrap());
    let y = t.relu(&x).unwrap();
    assert_eq!(y.value().data(), &[0.0, 0.0, 1.5, 0.0]);
    let loss = t.sum(&y).unwrap();
    let g = t.backward(&loss).unwrap();
    assert_eq!(g.get(&x).unwrap().data(), &[0.0, 0.0, 1.0, 0.0]);
}

#[test]
fn relu_propagates_nan_instead_of_zeroing_it() {
    let mut t = Tape::new();
    let x = t.leaf(Tensor::from_vec(vec![f32::NAN, 1.0], &[2]).unwrap());
    let y = t.relu(&x).unwrap();
    assert!(y.value().data()[0].is_nan());
    let loss = t.sum(&y).unwrap();
    let g = t.backward(&loss).unwrap();
    assert!(g.get(&x).unwrap().data()[0].is_nan());
    assert_eq!(g.get(&x).unwrap().data()[1], 1.0);
}

#[test]
fn tanh_gradient_saturates() {
    // d tanh/dx = 1 − tanh² = 1 at 0 and 0 (to f32 precision) at ±20.
    let mut t = Tape::new();
    let x = t.leaf(Tensor::from_vec(vec![0.0, 20.0, -20.0], &[3]).unwrap());
    let y = t.tanh(&x).unwrap();
    let loss = t.sum(&y).unwrap();
    let g = t.backward(&loss).unwrap();
    assert_eq!(g.get(&x).unwrap().data(), &[1.0, 0.0, 0.0]);
}
