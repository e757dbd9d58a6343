//! Gradient and value properties of `dropout`.

mod common;

use cloze::{Tape, Tensor, Var};
use common::*;
use proptest::prelude::*;

fn shape() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(dim(), 1..=3)
}

/// Values bounded away from 0, so a dropped element (0) is told apart from a kept one.
fn nonzero(shape: Vec<usize>) -> impl Strategy<Value = Tensor> {
    tensor_away_from_zero(shape, 0.25, 2.0)
}

fn run(x: &Tensor, p: f32, seed: u64, training: bool) -> Tensor {
    let mut t = Tape::new();
    t.set_training(training);
    let v = t.leaf(x.clone());
    t.dropout(&v, p, seed).unwrap().value().clone()
}

proptest! {
    #![proptest_config(cases(32))]

    #[test]
    fn grad_dropout(x in shape().prop_flat_map(tensor), p in 0.0f32..0.9, seed in any::<u64>()) {
        // Training mode (the tape's default): the mask is fixed by the seed, so the op is linear
        // in x and finite differences see the same mask.
        check_grads(|t, v| t.dropout(&v[0], p, seed), &[x], &opts())?;
    }

    #[test]
    fn dropout_in_eval_mode_is_the_identity(x in shape().prop_flat_map(tensor), p in 0.0f32..0.99, seed in any::<u64>()) {
        let y = run(&x, p, seed, false);
        prop_assert_eq!(
            y.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            x.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn kept_values_are_scaled_exactly_and_dropped_are_zero(
        x in shape().prop_flat_map(nonzero), p in 0.01f32..0.99, seed in any::<u64>()
    ) {
        let y = run(&x, p, seed, true);
        prop_assert_eq!(y.shape(), x.shape());
        let keep = 1.0f32 - p;
        for (&a, &b) in x.data().iter().zip(y.data()) {
            prop_assert!(b == 0.0 || b == a / keep, "x {a} gave {b}, want 0 or {}", a / keep);
        }
    }

    #[test]
    fn same_seed_gives_same_mask_and_gradient_uses_it(
        x in shape().prop_flat_map(nonzero), p in 0.05f32..0.95, seed in any::<u64>()
    ) {
        let (a, b) = (run(&x, p, seed, true), run(&x, p, seed, true));
        prop_assert_eq!(a.data(), b.data());
        // The backward of Σ dropout(x) is the mask scaled by 1/(1 − p).
        let mut t = Tape::new();
        let v = t.leaf(x.clone());
        let y = t.dropout(&v, p, seed).unwrap();
        let loss = t.sum(&y).unwrap();
        let g = t.backward(&loss).unwrap();
        for (&gi, &yi) in g.get(&v).unwrap().data().iter().zip(a.data()) {
            let want = if yi == 0.0 { 0.0 } else { 1.0 / (1.0 - p) };
            prop_assert_eq!(gi, want);
        }
    }

    #[test]
    fn kept_fraction_is_within_binomial_bounds(p in 0.05f32..0.95, seed in any::<u64>()) {
        // n Bernoulli(1 − p) draws: the kept count has mean n(1 − p) and standard deviation
        // √(n p (1 − p)); 6 standard deviations bound a correct mask's failure rate by ~2e-9.
        let n = 20_000usize;
        let x = Tensor::ones(&[n]);
        let y = run(&x, p, seed, true);
        let kept = y.data().iter().filter(|&&v| v != 0.0).count() as f64;
        let (nf, pf) = (n as f64, p as f64);
        let bound = 6.0 * (nf * pf * (1.0 - pf)).sqrt();
        prop_assert!((kept - nf * (1.0 - pf)).abs() <= bound,
            "kept {kept} of {n} at p = {p}, expected {} ± {bound}", nf * (1.0 - pf));
    }
}

#[test]
fn different_seeds_give_different_masks() {
    let x = Tensor::ones(&[1000]);
    assert_ne!(run(&x, 0.5, 1, true).data(), run(&x, 0.5, 2, true).data());
}

#[test]
fn mask_depends_on_the_element_index_not_the_tensor_length() {
    // The mask is a function of (seed, index): a prefix of a longer tensor gets the same mask.
    let long = run(&Tensor::ones(&[300]), 0.3, 7, true);
    let short = run(&Tensor::ones(&[100]), 0.3, 7, true);
    assert_eq!(&long.data()[..100], short.data());
}

#[test]
fn p_zero_is_the_identity_in_training() {
    let x = Tensor::from_vec(vec![1.0, -2.0, 3.5], &[3]).unwrap();
    assert_eq!(run(&x, 0.0, 3, true).data(), x.data());
}

#[test]
fn bad_p_is_an_error_naming_it() {
    let mut t = Tape::new();
    let x = Var::constant(Tensor::ones(&[4]));
    for p in [1.0f32, -0.1, 1.5, f32::NAN] {
        let err = t.dropout(&x, p, 0).unwrap_err().to_string();
        assert_mentions(&err, &["dropout", &format!("p = {p}")]);
    }
    // Even in eval mode, where dropout would be the identity.
    t.set_training(false);
    assert!(t.dropout(&x, 2.0, 0).is_err());
}
