//! Dropout over a flat array on every vector path against the scalar reference, bit for bit:
//! the mask is `attention::dropout_keep`'s element by element, a kept value is `x / (1 − p)`
//! as f32 divides, a dropped one is +0 (NaN and infinities included). Awkward lengths, the
//! thread split, the keep rate, and the errors.

mod common;

use cloze_kernels::attention::dropout_keep;
use cloze_kernels::dispatch::Isa;
use cloze_kernels::dropout;
use common::{bits, for_each_vector_isa, parallel_inputs, same_bits_across_threads, Rng};
use common::{AWKWARD, PARALLEL_LEN, SPECIALS};

const PS: [f32; 5] = [0.0, 0.1, 0.25, 0.5, 0.9];

/// The definition, written out here: element i kept iff `dropout_keep(seed, i, p)`.
fn expected(seed: u64, p: f32, x: &[f32]) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            if dropout_keep(seed, i as u64, p) {
                v / (1.0 - p)
            } else {
                0.0
            }
        })
        .collect()
}

fn run(isa: Isa, seed: u64, p: f32, x: &[f32]) -> Vec<f32> {
    let mut y = vec![f32::NAN; x.len()];
    dropout::apply_with(isa, seed, p, x, &mut y);
    y
}

#[test]
fn every_path_equals_the_definition_on_awkward_lengths() {
    let mut r = Rng::new(3);
    let mut lens = AWKWARD.to_vec();
    lens.push(0);
    lens.push(1000);
    for len in lens {
        let mut x: Vec<f32> = (0..len).map(|_| r.uniform(-4.0, 4.0)).collect();
        for (i, s) in SPECIALS.iter().enumerate().take(len) {
            x[i] = *s;
        }
        for p in PS {
            for seed in [0, 7, u64::MAX] {
                let want = bits(&expected(seed, p, &x));
                assert_eq!(
                    bits(&run(Isa::Scalar, seed, p, &x)),
                    want,
                    "scalar, len {len}, p {p}"
                );
                for_each_vector_isa(|isa| {
                    assert_eq!(
                        bits(&run(isa, seed, p, &x)),
                        want,
                        "{isa}, len {len}, p {p}, seed {seed}"
                    );
                });
            }
        }
    }
}

#[test]
fn large_inputs_split_over_threads_give_the_same_bits() {
    let (_, [x]) = parallel_inputs::<1>(PARALLEL_LEN);
    let want = bits(&expected(11, 0.1, &x));
    for_each_vector_isa(|isa| {
        assert_eq!(bits(&run(isa, 11, 0.1, &x)), want, "{isa}");
        same_bits_across_threads(&format!("dropout on {isa}"), || run(isa, 11, 0.1, &x));
    });
}

#[test]
fn keep_rate_is_one_minus_p() {
    let x = vec![1.0f32; 1 << 16];
    for p in PS {
        let y = run(cloze_kernels::active(), 5, p, &x);
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / x.len() as f64;
        // binomial sd at n = 65536 is at most 0.002; 5 sd
        assert!((kept - (1.0 - p as f64)).abs() < 0.01, "p {p}: kept {kept}");
    }
}

#[test]
fn bad_probability_and_lengths_are_refused_by_name() {
    let x = [1.0f32; 4];
    for p in [1.0f32, -0.1, f32::NAN] {
        let err = std::panic::catch_unwind(|| {
            let mut y = [0.0f32; 4];
            dropout::apply(1, p, &x, &mut y);
        })
        .expect_err("accepted a bad p");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains(&format!("p = {p}")), "{msg}");
    }
    let err = std::panic::catch_unwind(|| {
        let mut y = [0.0f32; 3];
        dropout::apply(1, 0.1, &x, &mut y);
    })
    .expect_err("accepted different lengths");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("4") && msg.contains("3"), "{msg}");
}
