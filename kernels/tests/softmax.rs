//! Row softmax, log-softmax and their backward passes on every vector path against the f64
//! scalar reference, on awkward widths, huge and infinite logits and random rows; bit-identical
//! results for 1 and 2 threads.

mod common;

use cloze_kernels::dispatch::Isa;
use cloze_kernels::softmax;
use common::{
    assert_close, cases, for_each_awkward_matrix, for_each_isa, for_each_vector_isa,
    parallel_inputs, same_bits_across_threads, Rng, PARALLEL_COLS, PARALLEL_ROWS, U,
};
use proptest::prelude::*;

/// Softmax, log-softmax and both backward passes against the reference.
fn check_softmax(x: &[f32], dy: &[f32], cols: usize) {
    let n = x.len();
    let c = cols as f64;
    let (mut s0, mut l0) = (vec![0.0; n], vec![0.0; n]);
    softmax::softmax_rows_with(Isa::Scalar, x, cols, &mut s0);
    softmax::log_softmax_rows_with(Isa::Scalar, x, cols, &mut l0);
    let (mut sb0, mut lb0) = (vec![0.0; n], vec![0.0; n]);
    softmax::softmax_backward_rows_with(Isa::Scalar, &s0, dy, cols, &mut sb0);
    softmax::log_softmax_backward_rows_with(Isa::Scalar, &l0, dy, cols, &mut lb0);
    // Per-row Σ|dy·y| and Σ|dy| bound the reduction errors of the backward passes.
    let row_abs = |f: &dyn Fn(usize) -> f64, r: usize| -> f64 {
        (r * cols..(r + 1) * cols).map(f).sum::<f64>()
    };
    for_each_vector_isa(|isa| {
        let (mut s, mut l) = (vec![0.0; n], vec![0.0; n]);
        softmax::softmax_rows_with(isa, x, cols, &mut s);
        softmax::log_softmax_rows_with(isa, x, cols, &mut l);
        // Row sum of `cols` positive terms: relative error ≤ (cols + 8)·U; exp 3 ulp; scale 1.
        assert_close("softmax", isa, &s, &s0, |i| {
            (c + 16.0) * U * s0[i] as f64 + 1e-44
        });
        // x − (m + ln s): the sum's relative error becomes an absolute one; plus roundings of
        // |x| and |lse| magnitude.
        assert_close("log_softmax", isa, &l, &l0, |i| {
            let lse = x[i] as f64 - l0[i] as f64;
            (c + 16.0) * U + 4.0 * U * (x[i].abs() as f64 + lse.abs())
        });
        let (mut sb, mut lb) = (vec![0.0; n], vec![0.0; n]);
        softmax::softmax_backward_rows_with(isa, &s0, dy, cols, &mut sb);
        softmax::log_softmax_backward_rows_with(isa, &l0, dy, cols, &mut lb);
        // y·(dy − dot): dot's error ≤ cols·U·Σ|dy·y|, then 2 roundings.
        assert_close("softmax bwd", isa, &sb, &sb0, |i| {
            let r = i / cols;
            let sdy = row_abs(&|k| (dy[k] as f64 * s0[k] as f64).abs(), r);
            (s0[i] as f64).abs() * ((c + 2.0) * U * sdy + 3.0 * U * (dy[i] as f64).abs())
                + 2.0 * U * (sb0[i] as f64).abs()
                + 1e-44
        });
        // dy − e^y·Σdy: Σdy's error ≤ cols·U·Σ|dy|, exp 3 ulp.
        assert_close("log_softmax bwd", isa, &lb, &lb0, |i| {
            let r = i / cols;
            let sdy = row_abs(&|k| (dy[k] as f64).abs(), r);
            (l0[i] as f64).exp() * (c + 8.0) * U * sdy * (1.0 + (l0[i] as f64).abs())
                + 2.0 * U * ((dy[i] as f64).abs() + (lb0[i] as f64).abs())
                + 1e-44
        });
    });
}

#[test]
fn softmax_awkward_lengths() {
    for_each_awkward_matrix(|r, rows, cols, x| {
        let dy = r.vec(rows * cols, -1.0, 1.0);
        check_softmax(&x, &dy, cols);
    });
}

#[test]
fn softmax_special_values() {
    let ninf = f32::NEG_INFINITY;
    for_each_isa(|isa| {
        // Huge logits: no overflow, correct one-hot-ish result.
        let x = [1e4f32, -1e4, 0.0, 1e4, -1e4, 5.0, 1e4 - 1.0];
        let mut y = [0.0; 7];
        softmax::softmax_rows_with(isa, &x, 7, &mut y);
        assert!(y.iter().all(|v| v.is_finite()), "[{isa}] {y:?}");
        let e1 = (-1.0f64).exp();
        let z = 2.0 + e1;
        for (k, want) in [(0, 1.0 / z), (3, 1.0 / z), (6, e1 / z), (1, 0.0), (2, 0.0)] {
            assert!(
                (y[k] as f64 - want).abs() <= 1e-6,
                "[{isa}] y[{k}] = {}",
                y[k]
            );
        }
        let mut l = [0.0; 7];
        softmax::log_softmax_rows_with(isa, &x, 7, &mut l);
        assert!(
            (l[1] as f64 - (-2e4 - z.ln())).abs() <= 4e-3,
            "[{isa}] {l:?}"
        );
        // A row of −∞ except one entry: exactly one-hot, log-softmax 0 there and −∞ elsewhere.
        for cols in [1usize, 5, 17, 40] {
            let mut x = vec![ninf; cols];
            x[cols / 2] = 3.5;
            let mut y = vec![0.0; cols];
            softmax::softmax_rows_with(isa, &x, cols, &mut y);
            let mut l = vec![0.0; cols];
            softmax::log_softmax_rows_with(isa, &x, cols, &mut l);
            for j in 0..cols {
                let hot = j == cols / 2;
                assert_eq!(y[j], if hot { 1.0 } else { 0.0 }, "[{isa}] cols {cols}");
                assert_eq!(l[j], if hot { 0.0 } else { ninf }, "[{isa}] cols {cols}");
            }
        }
    });
}

proptest! {
    #![proptest_config(cases(40))]
    #[test]
    fn softmax_random(rows in 1usize..4, cols in 1usize..600, seed in any::<u64>(), scale in prop_oneof![Just(1.0f32), Just(30.0)]) {
        let mut r = Rng::new(seed);
        let x = r.vec(rows * cols, -scale, scale);
        let dy = r.vec(rows * cols, -1.0, 1.0);
        check_softmax(&x, &dy, cols);
    }
}

#[test]
fn one_and_two_threads_bit_identical() {
    let cols = PARALLEL_COLS;
    let m = PARALLEL_ROWS * cols;
    let (_, [xs, dys]) = parallel_inputs(m);
    for_each_isa(|isa| {
        same_bits_across_threads(&format!("softmax {isa}"), || {
            let (mut y, mut l, mut d1, mut d2) =
                (vec![0.0; m], vec![0.0; m], vec![0.0; m], vec![0.0; m]);
            softmax::softmax_rows_with(isa, &xs, cols, &mut y);
            softmax::log_softmax_rows_with(isa, &xs, cols, &mut l);
            softmax::softmax_backward_rows_with(isa, &y, &dys, cols, &mut d1);
            softmax::log_softmax_backward_rows_with(isa, &l, &dys, cols, &mut d2);
            [y, l, d1, d2].concat()
        });
    });
}
