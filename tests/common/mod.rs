//! Shared strategies and assertions for the gradient property tests.
#![allow(dead_code)]

use cloze::{gradcheck, GradcheckOptions, Tape, Tensor, Var};
use proptest::prelude::*;

/// Axis lengths 1..=17, so sizes that are not multiples of 4, 8 or 16 appear.
pub fn dim() -> impl Strategy<Value = usize> {
    1usize..=17
}

/// A tensor of `shape` with values in [lo, hi] (shrinks toward 0).
pub fn tensor_in(shape: Vec<usize>, lo: f32, hi: f32) -> impl Strategy<Value = Tensor> {
    let n: usize = shape.iter().product();
    proptest::collection::vec(lo..=hi, n)
        .prop_map(move |v| Tensor::from_vec(v, &shape).expect("length matches"))
}

/// A tensor of `shape` with values in [-2, 2].
pub fn tensor(shape: Vec<usize>) -> impl Strategy<Value = Tensor> {
    tensor_in(shape, -2.0, 2.0)
}

/// Runs gradcheck and fails the property with the shapes and the report if it does not pass.
pub fn check_grads<F>(f: F, inputs: &[Tensor], opts: &GradcheckOptions) -> Result<(), TestCaseError>
where
    F: Fn(&mut Tape, &[Var]) -> cloze::Result<Var>,
{
    let shapes: Vec<_> = inputs.iter().map(|t| t.shape().to_vec()).collect();
    let report = gradcheck(f, inputs, opts)
        .map_err(|e| TestCaseError::fail(format!("gradcheck error on shapes {shapes:?}: {e}")))?;
    prop_assert!(
        report.passed(),
        "gradient mismatch for input shapes {:?}:\n{}",
        shapes,
        report
    );
    Ok(())
}

/// Default options.
pub fn opts() -> GradcheckOptions {
    GradcheckOptions::default()
}

/// proptest config used by the gradient tests: enough cases to hit odd sizes, few enough to
/// keep the suite in seconds.
pub fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}
