//! Gradient and value properties of `matmul`, `matmul_t`, `bmm` and `linear`.

mod common;

use cloze::{Tape, Tensor, Var};
use common::*;
use proptest::prelude::*;

/// Naive triple loop: C[i][j] = Σ_p op(A)[i][p]·op(B)[p][j].
fn naive(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Vec<f32> {
    let (ar, ac) = (a.shape()[0], a.shape()[1]);
    let (br, bc) = (b.shape()[0], b.shape()[1]);
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let n = if tb { br } else { bc };
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                let av = if ta {
                    a.data()[p * ac + i]
                } else {
                    a.data()[i * ac + p]
                };
                let bv = if tb {
                    b.data()[j * bc + p]
                } else {
                    b.data()[p * bc + j]
                };
                s += av as f64 * bv as f64;
            }
            c[i * n + j] = s as f32;
        }
    }
    c
}

fn mm_case() -> impl Strategy<Value = (Tensor, Tensor, bool, bool)> {
    (dim(), dim(), dim(), any::<bool>(), any::<bool>()).prop_flat_map(|(m, n, k, ta, tb)| {
        let sa = if ta { vec![k, m] } else { vec![m, k] };
        let sb = if tb { vec![n, k] } else { vec![k, n] };
        (tensor(sa), tensor(sb), Just(ta), Just(tb))
    })
}

proptest! {
    #![proptest_config(cases(48))]

    #[test]
    fn grad_matmul_t((a, b, ta, tb) in mm_case()) {
        check_grads(|t, v| t.matmul_t(&v[0], &v[1], ta, tb), &[a, b], &opts())?;
    }

    #[test]
    fn matmul_t_matches_naive_triple_loop((a, b, ta, tb) in mm_case()) {
        let mut t = Tape::new();
        let c = t.matmul_t(&Var::constant(a.clone()), &Var::constant(b.clone()), ta, tb).unwrap();
        let want = naive(&a, &b, ta, tb);
        for (x, y) in c.value().data().iter().zip(&want) {
            prop_assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()) * a.shape()[0].max(a.shape()[1]) as f32,
                "{x} vs {y}");
        }
    }

    #[test]
    fn grad_matmul_with_leading_axes(
        (x, w) in (1usize..=3, dim(), dim(), dim()).prop_flat_map(|(b, t, k, n)| (tensor(vec![b, t, k]), tensor(vec![n, k])))
    ) {
        // A linear layer over a batch of sequences: x·Wᵀ.
        check_grads(|t, v| t.matmul_t(&v[0], &v[1], false, true), &[x, w], &opts())?;
    }

    #[test]
    fn grad_linear(
        (x, w, b) in (1usize..=3, dim(), dim(), dim()).prop_flat_map(|(bs, t, k, n)| (tensor(vec![bs, t, k]), tensor(vec![n, k]), tensor(vec![n])))
    ) {
        check_grads(|t, v| t.linear(&v[0], &v[1], &v[2]), &[x, w, b], &opts())?;
    }

    #[test]
    fn grad_bmm(
        (a, b, ta, tb) in (1usize..=4, dim(), dim(), dim(), any::<bool>(), any::<bool>()).prop_flat_map(|(bs, m, n, k, ta, tb)| {
            let sa = if ta { vec![bs, k, m] } else { vec![bs, m, k] };
            let sb = if tb { vec![bs, n, k] } else { vec![bs, k, n] };
            (tensor(sa), tensor(sb), Just(ta), Just(tb))
        })
    ) {
        check_grads(|t, v| t.bmm(&v[0], &v[1], ta, tb), &[a, b], &opts())?;
    }
}

#[test]
fn matmul_shape_error_names_both_shapes() {
    let mut t = Tape::new();
    let a = t.leaf(Tensor::zeros(&[2, 3]));
    let b = t.leaf(Tensor::zeros(&[4, 5]));
    let err = t.matmul(&a, &b).unwrap_err().to_string();
    assert_mentions(&err, &["matmul", "[2, 3]", "[4, 5]"]);
}

#[test]
fn bmm_rejects_different_batches() {
    let mut t = Tape::new();
    let a = t.leaf(Tensor::zeros(&[2, 3, 4]));
    let b = t.leaf(Tensor::zeros(&[3, 4, 5]));
    let err = t.bmm(&a, &b, false, false).unwrap_err().to_string();
    assert_mentions(&err, &["[2, 3, 4]", "[3, 4, 5]"]);
}

/// `len` values in [-1, 1) from a fixed linear congruential sequence.
fn rand_vals(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// `linear` is `matmul_t(x, w, false, true)` then `add(·, b)`, bit for bit: the output and all
/// three gradients, on a shape whose k crosses the GEMM's k blocks (the bias must be added once,
/// after the last) and whose rows are split over threads.
#[test]
fn linear_equals_matmul_then_add_bit_for_bit() {
    for (bs, t, k, n) in [
        (1, 1, 1, 1),
        (3, 7, 5, 9),
        (4, 150, 600, 70),
        (2, 300, 130, 520),
    ] {
        let x = Tensor::from_vec(rand_vals(bs * t * k, 1), &[bs, t, k]).unwrap();
        let w = Tensor::from_vec(rand_vals(n * k, 2), &[n, k]).unwrap();
        let b = Tensor::from_vec(rand_vals(n, 3), &[n]).unwrap();
        let g = Tensor::from_vec(rand_vals(bs * t * n, 4), &[bs, t, n]).unwrap();
        let run = |fused: bool| {
            let mut tape = Tape::new();
            let (xv, wv, bv) = (
                tape.leaf(x.clone()),
                tape.leaf(w.clone()),
                tape.leaf(b.clone()),
            );
            let y = if fused {
                tape.linear(&xv, &wv, &bv).unwrap()
            } else {
                let p = tape.matmul_t(&xv, &wv, false, true).unwrap();
                tape.add(&p, &bv).unwrap()
            };
            let grads = tape.backward_with(&y, g.clone()).unwrap();
            let bits = |v: &Tensor| v.data().iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let get = |v: &Var| bits(grads.get(v).expect("gradient"));
            (bits(y.value()), get(&xv), get(&wv), get(&bv))
        };
        assert!(
            run(true) == run(false),
            "linear differs from matmul_t + add at {bs}×{t}×{k}→{n}"
        );
    }
}

#[test]
fn linear_rejects_a_bias_of_the_wrong_length() {
    let mut t = Tape::new();
    let x = t.leaf(Tensor::zeros(&[2, 3]));
    let w = t.leaf(Tensor::zeros(&[4, 3]));
    let b = t.leaf(Tensor::zeros(&[5]));
    let err = t.linear(&x, &w, &b).unwrap_err().to_string();
    assert_mentions(&err, &["linear", "[4, 3]", "[5]"]);
}
