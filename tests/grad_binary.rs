//! Gradient properties of the broadcasting binary ops `add`, `sub`, `mul`, `div`.

mod common;

use cloze::{Tape, Tensor, Var};
use common::*;
use proptest::prelude::*;

/// Two shapes that broadcast: `b` is `a` with some axes set to 1 and some leading axes dropped.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (
        proptest::collection::vec(dim(), 1..=3),
        proptest::collection::vec(any::<bool>(), 3),
        0usize..=2,
    )
        .prop_map(|(a, ones, drop)| {
            let mut b: Vec<usize> = a
                .iter()
                .zip(&ones)
                .map(|(&d, &o)| if o { 1 } else { d })
                .collect();
            let drop = drop.min(b.len() - 1);
            b.drain(..drop);
            (a, b)
        })
}

fn operands(swap: bool) -> impl Strategy<Value = (Tensor, Tensor)> {
    broadcast_pair().prop_flat_map(move |(a, b)| {
        if swap {
            (tensor(b), tensor(a))
        } else {
            (tensor(a), tensor(b))
        }
    })
}

proptest! {
    #![proptest_config(cases(40))]

    #[test]
    fn grad_add((a, b) in operands(false)) {
        check_grads(|t, v| t.add(&v[0], &v[1]), &[a, b], &opts())?;
    }

    #[test]
    fn grad_sub((a, b) in operands(true)) {
        check_grads(|t, v| t.sub(&v[0], &v[1]), &[a, b], &opts())?;
    }

    #[test]
    fn grad_mul((a, b) in operands(false)) {
        check_grads(|t, v| t.mul(&v[0], &v[1]), &[a, b], &opts())?;
    }

    #[test]
    fn grad_div((a, b) in broadcast_pair().prop_flat_map(|(a, b)| (tensor(a), tensor_in(b, 0.5, 2.0)))) {
        check_grads(|t, v| t.div(&v[0], &v[1]), &[a, b], &opts())?;
    }

    #[test]
    fn broadcast_gradient_sums_back_to_input_shape((a, b) in operands(false)) {
        // d/db Σ(a + b) counts how many output elements each element of b reached.
        let mut t = Tape::new();
        let (va, vb) = (t.leaf(a.clone()), t.leaf(b.clone()));
        let s = t.add(&va, &vb).unwrap();
        let loss = t.sum(&s).unwrap();
        let g = t.backward(&loss).unwrap();
        let gb = g.get(&vb).unwrap();
        prop_assert_eq!(gb.shape(), b.shape());
        let reps = (a.len() / b.len()) as f32;
        prop_assert!(gb.data().iter().all(|&v| v == reps));
        prop_assert!(g.get(&va).unwrap().data().iter().all(|&v| v == 1.0));
    }

}

#[test]
fn value_used_twice_gets_both_contributions() {
    let mut t = Tape::new();
    let x = t.leaf(Tensor::from_vec(vec![3.0], &[1]).unwrap());
    let y = t.mul(&x, &x).unwrap(); // x², dy/dx = 2x = 6
    let z = t.add(&y, &x).unwrap(); // + x → 7
    let g = t.backward(&z).unwrap();
    assert_eq!(g.get(&x).unwrap().data(), &[7.0]);
}

#[test]
fn broadcast_error_names_both_shapes() {
    let mut t = Tape::new();
    let a = Var::constant(Tensor::zeros(&[2, 3]));
    let b = Var::constant(Tensor::zeros(&[4]));
    let err = t.add(&a, &b).unwrap_err().to_string();
    assert_mentions(&err, &["add", "[2, 3]", "[4]"]);
}

/// The parallel fast paths (a bias over rows, large same-shape operands, the column sums of a
/// bias gradient) on tensors big enough to be split across threads: values equal the
/// element-wise definition, the bias gradient equals f64 column sums within f32 rounding, and
/// 1 and 2 threads give the same bits.
#[test]
fn large_broadcast_paths_are_exact_and_thread_independent() {
    let (rows, n) = (300usize, 1000usize);
    let x = Tensor::from_fn(&[3, rows / 3, n], |i| {
        ((i * 7919) % 1013) as f32 / 500.0 - 1.0
    });
    let b = Tensor::from_fn(&[n], |i| (i % 17) as f32 * 0.125 - 1.0);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let mut t = Tape::new();
                let (xv, bv) = (t.leaf(x.clone()), t.leaf(b.clone()));
                let y = t.add(&xv, &bv).unwrap();
                let z = t.mul(&y, &y).unwrap();
                let s = t.sum(&z).unwrap();
                let g = t.backward(&s).unwrap();
                (
                    y.value().clone(),
                    g.get(&bv).unwrap().clone(),
                    g.get(&xv).unwrap().clone(),
                )
            })
    };
    let (y1, gb1, gx1) = run(1);
    let (y2, gb2, gx2) = run(2);
    assert!(
        y1 == y2 && gb1 == gb2 && gx1 == gx2,
        "results depend on the thread count"
    );
    for (i, &v) in y1.data().iter().enumerate() {
        assert_eq!(v, x.data()[i] + b.data()[i % n]);
    }
    // d/db Σ (x + b)² = Σ_rows 2(x + b)
    for j in 0..n {
        let want: f64 = (0..rows)
            .map(|r| 2.0 * (x.data()[r * n + j] + b.data()[j]) as f64)
            .sum();
        let got = gb1.data()[j] as f64;
        assert!(
            (got - want).abs() <= 1e-5 * rows as f64 * (1.0 + want.abs() / rows as f64),
            "column {j}: {got} vs {want}"
        );
        // and it is the f32 sum in row order exactly (the order the general broadcast path
        // adds in, so a bias gradient does not depend on which path computed it)
        let dy = gx1.data();
        let mut seq = 0.0f32;
        for r in 0..rows {
            seq += dy[r * n + j];
        }
        assert_eq!(gb1.data()[j], seq, "column {j}: not the row-order f32 sum");
    }
}
