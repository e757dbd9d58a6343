//! Gradient properties of the reductions `sum`, `mean`, `sum_axis`, `mean_axis`.

mod common;
use cloze::{Tape, Tensor, Var};
use common::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(cases(40))]

    #[test]
    fn grad_sum_and_mean(a in proptest::collection::vec(dim(), 1..=3).prop_flat_map(tensor)) {
        check_grads(|t, v| t.sum(&v[0]), std::slice::from_ref(&a), &opts())?;
        check_grads(|t, v| t.mean(&v[0]), &[a], &opts())?;
    }

    #[test]
    fn grad_sum_axis_and_mean_axis(
        (a, axis, keep) in proptest::collection::vec(dim(), 1..=3)
            .prop_flat_map(|s| { let r = s.len(); (tensor(s), 0..r, any::<bool>()) })
    ) {
        check_grads(|t, v| t.sum_axis(&v[0], axis, keep), std::slice::from_ref(&a), &opts())?;
        check_grads(|t, v| t.mean_axis(&v[0], axis, keep), &[a], &opts())?;
    }
}

#[test]
fn mean_axis_out_of_range_is_an_error() {
    let mut t = Tape::new();
    let a = Var::constant(Tensor::zeros(&[2, 3]));
    let err = t.mean_axis(&a, 2, false).unwrap_err().to_string();
    assert!(err.contains("axis 2"), "{err}");
}
