//! Gradient and value properties of `matmul`, `matmul_t` and `bmm`.

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
