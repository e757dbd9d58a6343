//! Gradient and value properties of `cross_entropy`.

mod common;

use cloze::{Tape, Tensor, Var};
use common::*;
use proptest::prelude::*;

const IGNORE: i32 = -100;

/// Logits `[..., C]` (1..=2 leading axes) with values in [lo, hi] and one label per row; each
/// label is ignored with probability `p_ignore`.
fn case(lo: f32, hi: f32, p_ignore: f64) -> impl Strategy<Value = (Tensor, Vec<i32>)> {
    (proptest::collection::vec(dim(), 1..=2), dim()).prop_flat_map(move |(lead, c)| {
        let rows: usize = lead.iter().product();
        let mut shape = lead;
        shape.push(c);
        let label = (proptest::bool::weighted(p_ignore), 0..c as i32).prop_map(|(ignored, l)| {
            if ignored {
                IGNORE
            } else {
                l
            }
        });
        (
            tensor_in(shape, lo, hi),
            proptest::collection::vec(label, rows),
        )
    })
}

/// Mean over counted rows of −log softmax(row)[label], computed in f64 (0 if none count).
fn reference(logits: &Tensor, labels: &[i32], ignore: i32) -> f64 {
    let c = *logits.shape().last().unwrap();
    let (mut sum, mut count) = (0.0f64, 0usize);
    for (row, &label) in logits.data().chunks(c).zip(labels) {
        if label == ignore {
            continue;
        }
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
        let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
        sum += lse - row[label as usize] as f64;
        count += 1;
    }
    if count == 0 {
        0.0
    } else {
        sum / count as f64
    }
}

proptest! {
    #![proptest_config(cases(40))]

    #[test]
    fn grad_cross_entropy((logits, labels) in case(-2.0, 2.0, 0.0)) {
        check_grads(|t, v| t.cross_entropy(&v[0], &labels, IGNORE), &[logits], &opts())?;
    }

    #[test]
    fn grad_cross_entropy_with_ignored_labels((logits, labels) in case(-2.0, 2.0, 0.4)) {
        check_grads(|t, v| t.cross_entropy(&v[0], &labels, IGNORE), &[logits], &opts())?;
    }

    #[test]
    fn grad_cross_entropy_of_scaled_logits((logits, labels) in case(-2.0, 2.0, 0.2), s in 0.5f32..4.0) {
        // Through another op, and with a non-unit output gradient (the scale flows back).
        let sv = Tensor::scalar(s);
        check_grads(|t, v| {
            let y = t.mul(&v[0], &v[1])?;
            t.cross_entropy(&y, &labels, IGNORE)
        }, &[logits, sv], &opts())?;
    }

    #[test]
    fn cross_entropy_equals_negative_log_softmax_at_the_label(
        (logits, labels) in case(-20.0, 20.0, 0.3), ignore in prop_oneof![Just(IGNORE), Just(-1), Just(0)]
    ) {
        // Labels equal to `ignore` (including in-range 0) are skipped, whatever it is.
        let labels: Vec<i32> = labels.iter().map(|&l| if l == IGNORE { ignore } else { l }).collect();
        let mut t = Tape::new();
        let loss = t.cross_entropy(&Var::constant(logits.clone()), &labels, ignore).unwrap();
        prop_assert!(loss.shape().is_empty());
        let got = loss.value().item().unwrap() as f64;
        let want = reference(&logits, &labels, ignore);
        // Both sides accumulate in f64; the op's result is rounded once to f32 (half an ulp,
        // 6e-8 relative): 1e-6 relative leaves room for the f64 sums' differing order.
        prop_assert!((got - want).abs() <= 1e-6 * (1.0 + want.abs()), "{got} vs {want}");
    }

    #[test]
    fn every_label_ignored_gives_zero_loss_and_zero_gradient((logits, labels) in case(-2.0, 2.0, 1.0)) {
        prop_assert!(labels.iter().all(|&l| l == IGNORE));
        let mut t = Tape::new();
        let x = t.leaf(logits.clone());
        let loss = t.cross_entropy(&x, &labels, IGNORE).unwrap();
        prop_assert_eq!(loss.value().item().unwrap(), 0.0);
        let g = t.backward(&loss).unwrap();
        let g = g.get(&x).unwrap();
        prop_assert_eq!(g.shape(), logits.shape());
        prop_assert!(g.data().iter().all(|&v| v == 0.0));
    }
}

#[test]
fn large_logits_do_not_overflow() {
    // softmax([1e4, 0, −1e4]): the label-0 loss is log(1 + e^−1e4 + e^−2e4) ≈ 0, label 1 ≈ 1e4.
    let mut t = Tape::new();
    let x = t.leaf(Tensor::from_vec(vec![1e4, 0.0, -1e4, 1e4, 0.0, -1e4], &[2, 3]).unwrap());
    let loss = t.cross_entropy(&x, &[0, 1], IGNORE).unwrap();
    let v = loss.value().item().unwrap();
    assert!((v - 5e3).abs() <= 1e-3, "{v}");
    let g = t.backward(&loss).unwrap();
    assert!(g.get(&x).unwrap().data().iter().all(|v| v.is_finite()));
}

#[test]
fn label_out_of_range_names_label_row_and_classes() {
    let mut t = Tape::new();
    let x = t.leaf(Tensor::zeros(&[3, 5]));
    let err = t
        .cross_entropy(&x, &[1, 7, IGNORE], IGNORE)
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["cross_entropy", "label 7", "row 1", "C = 5"]);
    let err = t
        .cross_entropy(&x, &[1, 2, -3], IGNORE)
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["label -3", "row 2"]);
}

#[test]
fn wrong_number_of_labels_is_an_error() {
    let mut t = Tape::new();
    let x = t.leaf(Tensor::zeros(&[2, 3, 4]));
    let err = t
        .cross_entropy(&x, &[0, 1, 2], IGNORE)
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["3 labels", "[2, 3, 4]", "6 rows"]);
}

/// The gradient the kernel writes already scaled by `1/n` is, bit for bit, the summed loss's
/// gradient (`softmax − onehot`, from the unscaled kernel) times `1/n` when the loss is
/// backpropagated as is; a loss scaled afterwards (upstream gradient 3) gives 3 times that,
/// to one rounding.
#[test]
fn gradient_is_the_summed_gradient_times_one_over_n() {
    let (rows, cols) = (37, 1001);
    let data: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919 % 2003) as f32 / 2003.0 - 0.5) * 12.0)
        .collect();
    let labels: Vec<i32> = (0..rows)
        .map(|r| {
            if r % 5 == 2 {
                IGNORE
            } else {
                (r * 131 % cols) as i32
            }
        })
        .collect();
    let n = labels.iter().filter(|&&l| l != IGNORE).count();
    let inv = (1.0 / n as f64) as f32;
    let mut dsum = vec![0.0f32; rows * cols];
    cloze::kernels::cross_entropy::cross_entropy(&data, cols, &labels, IGNORE, Some(&mut dsum));
    let logits = Tensor::from_vec(data, &[rows, cols]).unwrap();

    let mut t = Tape::new();
    let x = t.leaf(logits.clone());
    let loss = t.cross_entropy(&x, &labels, IGNORE).unwrap();
    let g = t.backward(&loss).unwrap();
    let got = g.get(&x).unwrap();
    for (i, (&a, &d)) in got.data().iter().zip(&dsum).enumerate() {
        assert_eq!(
            a.to_bits(),
            (d * inv).to_bits(),
            "element {i}: {a} vs {}",
            d * inv
        );
    }

    let mut t = Tape::new();
    let x = t.leaf(logits);
    let loss = t.cross_entropy(&x, &labels, IGNORE).unwrap();
    let loss3 = t.mul_scalar(&loss, 3.0).unwrap();
    let g = t.backward(&loss3).unwrap();
    for (i, (&a, &d)) in g.get(&x).unwrap().data().iter().zip(&dsum).enumerate() {
        let want = d as f64 * 3.0 / n as f64;
        let tol = 2.0 * f32::EPSILON as f64 * want.abs() + 1e-30;
        assert!((a as f64 - want).abs() <= tol, "element {i}: {a} vs {want}");
    }
}
