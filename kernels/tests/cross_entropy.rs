//! Cross-entropy from logits (loss and gradient) on every vector path against the f64 scalar
//! reference: awkward widths, BERT's vocabulary, huge and infinite logits, ignored rows
//! anywhere; the row pipeline of the vector path (row counts 1, 2, 3, 7, so its first, middle
//! and last stages occur alone and together) with cached and streaming stores at every output
//! alignment; results independent of the row blocks and the pool size.

mod common;

use cloze_kernels::cross_entropy::hooks::{block_rows, vector_with};
use cloze_kernels::cross_entropy::{self, cross_entropy_with, CrossEntropy};
use cloze_kernels::dispatch::Isa;
use cloze_kernels::simd;
use common::{
    assert_close, best_isa, cases, for_each_awkward_matrix, for_each_isa, for_each_vector_isa,
    parallel_inputs, same_bits_across_threads, stream_len, Rng, AWKWARD, PARALLEL_COLS,
    PARALLEL_ROWS, U, VOCAB,
};
use proptest::prelude::*;

const IGNORE: i32 = -100;

/// Asserts the loss sum of `got` is within its bound of `want`'s: per counted row the f32 sum
/// of `cols` exponentials (each within 3 ulp) has relative error ≤ (cols + 8)·U, so its ln is
/// off by at most that much absolutely; plus a few roundings of the loss itself.
fn assert_loss_close(what: &str, got: &CrossEntropy, want: &CrossEntropy, cols: usize) {
    let tol = want.count as f64 * (cols as f64 + 16.0) * U + 4.0 * U * want.loss_sum.abs();
    assert!(
        (got.loss_sum - want.loss_sum).abs() <= tol,
        "{what}: loss {} vs {} (tol {tol:e})",
        got.loss_sum,
        want.loss_sum
    );
}

/// The bound on a gradient element whose reference is `want`: e^(x−m)/Σ with the same relative
/// error as the sum, plus one rounding of order 1 at the label.
fn grad_tol(cols: usize, want: f32) -> f64 {
    (cols as f64 + 16.0) * U * (want as f64).abs() + U + 1e-44
}

/// Cross-entropy (loss and gradient) on every vector path against the reference.
fn check_ce(x: &[f32], cols: usize, labels: &[i32], ignore: i32) {
    let n = x.len();
    let mut d0 = vec![0.0; n];
    let ce0 = cross_entropy_with(Isa::Scalar, x, cols, labels, ignore, Some(&mut d0));
    for_each_vector_isa(|isa| {
        let mut d = vec![f32::NAN; n];
        let ce = cross_entropy_with(isa, x, cols, labels, ignore, Some(&mut d));
        let no_grad = cross_entropy_with(isa, x, cols, labels, ignore, None);
        assert_eq!(ce.count, ce0.count);
        assert_eq!(
            no_grad, ce,
            "cross_entropy [{isa}]: the gradient changed the loss"
        );
        assert_loss_close(&format!("cross_entropy [{isa}]"), &ce, &ce0, cols);
        assert_close("cross_entropy grad", isa, &d, &d0, |i| {
            grad_tol(cols, d0[i])
        });
    });
}

/// The vector path `isa` with `stream` forced as given (the gradient at element offset `off`
/// of its buffer, so every output alignment occurs) against the f64 reference.
fn check_pipeline(isa: Isa, x: &[f32], cols: usize, labels: &[i32], stream: bool, off: usize) {
    let n = x.len();
    let mut d0 = vec![0.0f32; n];
    let want = cross_entropy_with(Isa::Scalar, x, cols, labels, IGNORE, Some(&mut d0));
    let mut buf = vec![f32::NAN; n + off];
    let d = &mut buf[off..];
    let got = vector_with(isa, x, cols, labels, IGNORE, Some(d), stream);
    let no_grad = vector_with(isa, x, cols, labels, IGNORE, None, false);
    let what = format!(
        "[{isa}] {} rows × {cols}, stream {stream}, offset {off}",
        labels.len()
    );
    assert_eq!(got, no_grad, "{what}: the gradient changed the loss");
    assert_eq!(got.count, want.count, "{what}: count");
    assert_loss_close(&what, &got, &want, cols);
    // The gradient within `grad_tol`, and exactly 0 on ignored rows.
    for (i, (&g, &w)) in buf[off..].iter().zip(&d0).enumerate() {
        let t = grad_tol(cols, w);
        assert!(
            (g as f64 - w as f64).abs() <= t,
            "{what}: gradient at {i}: got {g:e}, want {w:e} (tol {t:e})"
        );
        if labels[i / cols] == IGNORE {
            assert_eq!(g.to_bits(), 0, "{what}: ignored row {} at {i}", i / cols);
        }
    }
}

/// Label patterns over `rows` rows of `cols` classes: all counted (labels spread over the
/// row, including 0 and `cols − 1`), alternate rows ignored both ways, first and last
/// ignored, all ignored.
fn label_sets(rows: usize, cols: usize) -> Vec<Vec<i32>> {
    let spread = |r: usize| match r % 4 {
        0 => 0,
        1 => cols - 1,
        2 => cols / 2,
        _ => (r * 997 + 13) % cols,
    } as i32;
    let pick = |ign: &dyn Fn(usize) -> bool| -> Vec<i32> {
        (0..rows)
            .map(|r| if ign(r) { IGNORE } else { spread(r) })
            .collect()
    };
    vec![
        pick(&|_| false),
        pick(&|r| r % 2 == 0),
        pick(&|r| r % 2 == 1),
        pick(&|r| r == 0 || r == rows - 1),
        pick(&|_| true),
    ]
}

#[test]
fn cross_entropy_awkward_lengths() {
    for_each_awkward_matrix(|r, rows, cols, x| {
        let labels: Vec<i32> = (0..rows)
            .map(|k| {
                if k == 1 {
                    IGNORE
                } else {
                    r.int(0, cols as i64) as i32
                }
            })
            .collect();
        check_ce(&x, cols, &labels, IGNORE);
    });
}

#[test]
fn cross_entropy_special_values() {
    let ninf = f32::NEG_INFINITY;
    let x = [1e4f32, -1e4, 0.0, 1e4, -1e4, 5.0, 1e4 - 1.0];
    let z = 2.0 + (-1.0f64).exp();
    for_each_isa(|isa| {
        // A row of −∞ except one entry labelled: loss 0 and a zero gradient.
        for cols in [1usize, 5, 17, 40] {
            let mut x = vec![ninf; cols];
            x[cols / 2] = 3.5;
            let mut d = vec![0.0; cols];
            let ce = cross_entropy_with(isa, &x, cols, &[(cols / 2) as i32], -1, Some(&mut d));
            assert_eq!(ce.loss_sum, 0.0, "[{isa}]");
            assert!(d.iter().all(|&v| v == 0.0), "[{isa}] {d:?}");
        }
        // Huge logits stay finite; an ignored row gives zeros.
        let mut d = vec![f32::NAN; 14];
        let ce = cross_entropy_with(
            isa,
            &[x.as_slice(), x.as_slice()].concat(),
            7,
            &[1, IGNORE],
            IGNORE,
            Some(&mut d),
        );
        assert_eq!(ce.count, 1);
        assert!(
            (ce.loss_sum - (2e4 + z.ln())).abs() <= 1e-2,
            "[{isa}] {}",
            ce.loss_sum
        );
        assert!(d[7..].iter().all(|&v| v == 0.0) && d.iter().all(|v| v.is_finite()));
    });
}

#[test]
#[should_panic(expected = "label 9 at row 0 is outside 0..4")]
fn cross_entropy_rejects_bad_label() {
    cross_entropy::cross_entropy_with(best_isa(), &[0.0; 4], 4, &[9], IGNORE, None);
}

proptest! {
    #![proptest_config(cases(40))]
    #[test]
    fn cross_entropy_random(rows in 1usize..4, cols in 1usize..600, seed in any::<u64>(), scale in prop_oneof![Just(1.0f32), Just(30.0)]) {
        let mut r = Rng::new(seed);
        let x = r.vec(rows * cols, -scale, scale);
        let labels: Vec<i32> = (0..rows).map(|_| r.int(-1, cols as i64) as i32).collect();
        check_ce(&x, cols, &labels, -1);
    }
}

#[test]
fn cross_entropy_vocab_rows() {
    let mut r = Rng::new(4);
    let x = r.vec(3 * VOCAB, -8.0, 8.0);
    check_ce(&x, VOCAB, &[17, IGNORE, VOCAB as i32 - 1], IGNORE);
}

#[test]
fn cross_entropy_large_gradient_matches_reference() {
    // Rows of BERT's vocabulary just above the streaming threshold, so the gradient is written
    // with streaming stores; every seventh row ignored.
    let mut r = Rng::new(13);
    let cols = VOCAB;
    let rows = stream_len() / cols + 2;
    let x = r.vec(rows * cols, -8.0, 8.0);
    let labels: Vec<i32> = (0..rows as i32)
        .map(|k| {
            if k % 7 == 3 {
                IGNORE
            } else {
                (k * 997) % cols as i32
            }
        })
        .collect();
    check_ce(&x, cols, &labels, IGNORE);
}

#[test]
fn pipeline_rows_and_widths_match_reference() {
    let mut r = Rng::new(21);
    let widths = AWKWARD.into_iter().chain([VOCAB]);
    for cols in widths {
        for rows in [1, 2, 3, 7] {
            if cols == VOCAB && rows == 7 {
                continue; // the vocabulary width: 1 to 3 rows are enough
            }
            let x = r.vec(rows * cols, -12.0, 12.0);
            for (li, labels) in label_sets(rows, cols).iter().enumerate() {
                let stream = li % 2 == 1;
                let off = li * 3 % 16;
                for_each_vector_isa(|isa| {
                    check_pipeline(isa, &x, cols, labels, stream, off);
                    check_pipeline(isa, &x, cols, labels, !stream, (off + 7) % 16);
                });
            }
        }
    }
}

#[test]
fn pipeline_large_and_shifted_logits() {
    // Logits near ±10⁴ (the row maximum must be subtracted) and a row whose label logit is
    // far below its maximum (loss ≈ 60, gradient at the label ≈ −1).
    let mut r = Rng::new(77);
    for cols in [33, 257, VOCAB] {
        let mut x = r.vec(3 * cols, -3.0, 3.0);
        x[..cols].iter_mut().for_each(|v| *v += 1e4);
        x[cols..2 * cols].iter_mut().for_each(|v| *v -= 1e4);
        x[2 * cols + 1] = 60.0;
        for_each_vector_isa(|isa| {
            for stream in [false, true] {
                check_pipeline(isa, &x, cols, &[5, cols as i32 - 1, 0], stream, 1);
            }
        });
    }
}

#[test]
fn one_and_two_threads_bit_identical() {
    let (rows, cols) = (PARALLEL_ROWS, PARALLEL_COLS);
    let m = rows * cols;
    let (_, [xs]) = parallel_inputs(m);
    let labels: Vec<i32> = (0..rows)
        .map(|k| {
            if k % 7 == 3 {
                IGNORE
            } else {
                (k * 31 % cols) as i32
            }
        })
        .collect();
    for_each_isa(|isa| {
        same_bits_across_threads(&format!("cross entropy {isa}"), || {
            let mut d = vec![0.0; m];
            let ce = cross_entropy_with(isa, &xs, cols, &labels, IGNORE, Some(&mut d));
            (d, (ce.loss_sum, ce.count))
        });
    });
}

#[test]
fn blocks_and_pool_size_give_identical_bits() {
    // 40 vocabulary rows: 1.2M elements, over the parallel threshold, in blocks of
    // `block_rows` (17) rows on 2 threads and one block on 1 thread; ignored rows at and
    // around the block boundaries; the gradient cached and streamed.
    let cols = VOCAB;
    let rows = 40;
    let br = block_rows(cols);
    assert!(br < rows && rows * cols >= simd::PAR_MIN_ELEMS);
    let x = Rng::new(5).vec(rows * cols, -8.0, 8.0);
    let labels: Vec<i32> = (0..rows)
        .map(|r| {
            if r % 7 == 3 || r == br - 1 || r == br || r == 2 * br + 1 {
                IGNORE
            } else {
                ((r * 997) % cols) as i32
            }
        })
        .collect();
    for_each_vector_isa(|isa| {
        for stream in [false, true] {
            same_bits_across_threads(&format!("[{isa}] stream {stream}"), || {
                let mut d = vec![0.0f32; rows * cols];
                let ce = vector_with(isa, &x, cols, &labels, IGNORE, Some(&mut d), stream);
                (d, (ce.loss_sum, ce.count))
            });
            check_pipeline(isa, &x, cols, &labels, stream, 0);
        }
    });
}

/// The scaled gradient (a mean loss's `1/n`, written by the kernel) is, bit for bit, the
/// unscaled gradient times the scale on every path: awkward widths and BERT's vocabulary, the
/// row pipeline's lengths, ignored rows, streaming stores (the large case) and threads; and the
/// loss does not depend on the scale.
#[test]
fn scaled_gradient_equals_gradient_times_scale() {
    let mut r = Rng::new(91);
    let large = stream_len() / VOCAB + 2;
    let shapes = [(1, 7), (3, 33), (7, 257), (3, VOCAB), (large, VOCAB)];
    for (rows, cols) in shapes {
        let x = r.vec(rows * cols, -9.0, 9.0);
        let labels: Vec<i32> = (0..rows)
            .map(|k| {
                if k % 3 == 1 {
                    IGNORE
                } else {
                    (k * 37 % cols) as i32
                }
            })
            .collect();
        let count = labels.iter().filter(|&&l| l != IGNORE).count();
        for scale in [1.0 / count as f32, 0.3, 2.5] {
            for_each_isa(|isa| {
                let mut d = vec![0.0; x.len()];
                let plain = cross_entropy_with(isa, &x, cols, &labels, IGNORE, Some(&mut d));
                let want: Vec<u32> = d.iter().map(|&v| (v * scale).to_bits()).collect();
                let mut ds = vec![f32::NAN; x.len()];
                let scaled = cross_entropy::cross_entropy_scaled_with(
                    isa,
                    &x,
                    cols,
                    &labels,
                    IGNORE,
                    Some(&mut ds),
                    scale,
                );
                let got: Vec<u32> = ds.iter().map(|v| v.to_bits()).collect();
                let first = got.iter().zip(&want).position(|(a, b)| a != b);
                assert!(
                    first.is_none(),
                    "{isa}, {rows}×{cols}, scale {scale}: element {first:?} differs from d·scale"
                );
                assert_eq!(plain, scaled, "{isa}: the loss depends on the scale");
            });
        }
    }
}
