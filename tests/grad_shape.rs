//! Gradient and value properties of the shape ops: `reshape`, `transpose`, `permute`, `slice`,
//! `concat`, `split`.

mod common;

use cloze::{Tape, Tensor, Var};
use common::*;
use proptest::prelude::*;

/// Halves the largest axis (rounding up) until the shape holds at most `max` elements: the
/// gradient checks run two forward passes per input element, so their cost grows with the
/// square of the size. Odd lengths survive (17 → 9 → 5 → 3 → 2 → 1).
fn cap(mut s: Vec<usize>, max: usize) -> Vec<usize> {
    while s.iter().product::<usize>() > max {
        let i = (0..s.len()).max_by_key(|&i| s[i]).expect("non-empty");
        s[i] = s[i].div_ceil(2);
    }
    s
}

/// 1–4 axes of lengths 1..=17, at most `max` elements.
fn shape(max: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(dim(), 1..=4).prop_map(move |s| cap(s, max))
}

/// A permutation of `0..rank`.
fn perm(rank: usize) -> impl Strategy<Value = Vec<usize>> {
    Just((0..rank).collect::<Vec<_>>()).prop_shuffle()
}

/// Multi-index of a flat row-major offset.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for a in (0..shape.len()).rev() {
        idx[a] = flat % shape[a];
        flat /= shape[a];
    }
    idx
}

fn eval(f: impl FnOnce(&mut Tape) -> cloze::Result<Var>) -> Tensor {
    let mut t = Tape::new();
    f(&mut t).unwrap().value().clone()
}

fn c(t: &Tensor) -> Var {
    Var::constant(t.clone())
}

/// Lengths ≥ 1 adding up to `n`, from cut flags after each of the first n−1 positions.
fn partition(n: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(any::<bool>(), n - 1).prop_map(move |cuts| {
        let mut sizes = vec![];
        let mut len = 1;
        for cut in cuts {
            if cut {
                sizes.push(len);
                len = 0;
            }
            len += 1;
        }
        sizes.push(len);
        sizes
    })
}

/// A tensor of 1–4 axes plus one of its axes.
fn tensor_and_axis(max: usize) -> impl Strategy<Value = (Tensor, usize)> {
    shape(max).prop_flat_map(|s| {
        let r = s.len();
        (tensor(s), 0..r)
    })
}

/// 1–3 tensors that concatenate along `axis`: equal on every other axis.
fn concat_case() -> impl Strategy<Value = (Vec<Tensor>, usize)> {
    (
        proptest::collection::vec(dim(), 0..=3),
        proptest::collection::vec(1usize..=6, 1..=3),
    )
        .prop_flat_map(|(others, lens)| {
            // ≤ 18 along the axis, so ≤ 128 elsewhere keeps the total ≤ 2304.
            let others = cap(others, 128);
            let r = others.len() + 1;
            (Just(others), Just(lens), 0..r)
        })
        .prop_flat_map(|(others, lens, axis)| {
            let shapes: Vec<Vec<usize>> = lens
                .iter()
                .map(|&l| {
                    let mut s = others.clone();
                    s.insert(axis, l);
                    s
                })
                .collect();
            (
                shapes.into_iter().map(tensor).collect::<Vec<_>>(),
                Just(axis),
            )
        })
}

/// Another shape with the same element count: reversed, flattened, or with a 1 inserted.
fn reshape_target(s: &[usize], choice: u8) -> Vec<usize> {
    let n: usize = s.iter().product();
    match choice % 4 {
        0 => s.iter().rev().copied().collect(),
        1 => vec![n],
        2 => {
            let mut t = s.to_vec();
            t.insert(t.len() / 2, 1);
            t
        }
        _ => {
            // merge the first two axes
            let mut t = s.to_vec();
            if t.len() >= 2 {
                let a = t.remove(0);
                t[0] *= a;
            }
            t
        }
    }
}

proptest! {
    #![proptest_config(cases(32))]

    #[test]
    fn grad_reshape(x in shape(1024).prop_flat_map(tensor), choice in any::<u8>()) {
        let target = reshape_target(x.shape(), choice);
        check_grads(|t, v| t.reshape(&v[0], &target), &[x], &opts())?;
    }

    #[test]
    fn reshape_shares_storage_and_keeps_order(x in shape(4096).prop_flat_map(tensor), choice in any::<u8>()) {
        let target = reshape_target(x.shape(), choice);
        let y = eval(|t| t.reshape(&c(&x), &target));
        prop_assert_eq!(y.shape(), target.as_slice());
        prop_assert!(y.shares_storage(&x));
        prop_assert_eq!(y.data(), x.data());
    }

    #[test]
    fn grad_transpose(
        (x, a, b) in shape(1024).prop_flat_map(|s| { let r = s.len(); (tensor(s), 0..r, 0..r) })
    ) {
        check_grads(|t, v| t.transpose(&v[0], a, b), &[x], &opts())?;
    }

    #[test]
    fn transpose_is_permute_with_two_axes_swapped(
        (x, a, b) in shape(1 << 16).prop_flat_map(|s| { let r = s.len(); (tensor(s), 0..r, 0..r) })
    ) {
        let mut p: Vec<usize> = (0..x.ndim()).collect();
        p.swap(a, b);
        let y = eval(|t| t.transpose(&c(&x), a, b));
        let z = eval(|t| t.permute(&c(&x), &p));
        prop_assert_eq!(y, z);
    }

    #[test]
    fn grad_permute(
        (x, p) in shape(1024).prop_flat_map(|s| { let r = s.len(); (tensor(s), perm(r)) })
    ) {
        check_grads(|t, v| t.permute(&v[0], &p), &[x], &opts())?;
    }

    #[test]
    fn permute_moves_every_element_where_the_index_formula_says(
        (x, p) in shape(1 << 16).prop_flat_map(|s| { let r = s.len(); (tensor(s), perm(r)) })
    ) {
        // y[i] = x[j] with j[p[k]] = i[k].
        let y = eval(|t| t.permute(&c(&x), &p));
        let want_shape: Vec<usize> = p.iter().map(|&a| x.shape()[a]).collect();
        prop_assert_eq!(y.shape(), want_shape.as_slice());
        for (flat, &v) in y.data().iter().enumerate() {
            let i = unravel(flat, y.shape());
            let mut j = vec![0; i.len()];
            for k in 0..i.len() {
                j[p[k]] = i[k];
            }
            prop_assert_eq!(v.to_bits(), x.get(&j).unwrap().to_bits());
        }
    }

    #[test]
    fn permute_then_inverse_permute_is_the_identity(
        (x, p) in proptest::collection::vec(dim(), 1..=4)
            .prop_flat_map(|s| { let r = s.len(); (tensor(cap(s, 1 << 16)), perm(r)) })
    ) {
        let mut inv = vec![0; p.len()];
        for (k, &a) in p.iter().enumerate() {
            inv[a] = k;
        }
        let back = eval(|t| {
            let y = t.permute(&c(&x), &p)?;
            t.permute(&y, &inv)
        });
        prop_assert_eq!(back, x); // bit-exact
    }

    #[test]
    fn grad_slice(
        (x, axis, a, b) in shape(1024).prop_flat_map(|s| {
            let r = s.len();
            (Just(s), 0..r)
        }).prop_flat_map(|(s, axis)| {
            let n = s[axis];
            (tensor(s), Just(axis), 0..n, 0..n)
        })
    ) {
        let (start, end) = (a.min(b), a.max(b) + 1);
        check_grads(|t, v| t.slice(&v[0], axis, start, end), &[x], &opts())?;
    }

    #[test]
    fn slice_takes_the_elements_in_range(
        (x, axis, a, b) in tensor_and_axis(1 << 14).prop_flat_map(|(x, axis)| {
            let n = x.shape()[axis];
            (Just(x), Just(axis), 0..=n, 0..=n)
        })
    ) {
        let (start, end) = (a.min(b), a.max(b));
        let y = eval(|t| t.slice(&c(&x), axis, start, end));
        let mut want_shape = x.shape().to_vec();
        want_shape[axis] = end - start;
        prop_assert_eq!(y.shape(), want_shape.as_slice());
        for (flat, &v) in y.data().iter().enumerate() {
            let mut i = unravel(flat, y.shape());
            i[axis] += start;
            prop_assert_eq!(v.to_bits(), x.get(&i).unwrap().to_bits());
        }
    }

    #[test]
    fn grad_concat((xs, axis) in concat_case()) {
        check_grads(
            |t, v| {
                let refs: Vec<&Var> = v.iter().collect();
                t.concat(&refs, axis)
            },
            &xs,
            &opts(),
        )?;
    }

    #[test]
    fn concat_places_each_input_at_its_offset((xs, axis) in concat_case()) {
        let y = eval(|t| {
            let vs: Vec<Var> = xs.iter().map(c).collect();
            let refs: Vec<&Var> = vs.iter().collect();
            t.concat(&refs, axis)
        });
        let mut offset = 0;
        for x in &xs {
            for (flat, &v) in x.data().iter().enumerate() {
                let mut i = unravel(flat, x.shape());
                i[axis] += offset;
                prop_assert_eq!(v.to_bits(), y.get(&i).unwrap().to_bits());
            }
            offset += x.shape()[axis];
        }
        prop_assert_eq!(y.shape()[axis], offset);
    }

    #[test]
    fn grad_split(
        (x, axis, sizes) in tensor_and_axis(1024).prop_flat_map(|(x, axis)| {
            let n = x.shape()[axis];
            (Just(x), Just(axis), partition(n))
        })
    ) {
        // Every piece feeds the output (reordered, so the pieces' gradients must land back in
        // the right places): concat of the pieces in reverse order.
        check_grads(
            |t, v| {
                let pieces = t.split(&v[0], axis, &sizes)?;
                let refs: Vec<&Var> = pieces.iter().rev().collect();
                t.concat(&refs, axis)
            },
            &[x],
            &opts(),
        )?;
    }

    #[test]
    fn concat_of_split_is_the_identity(
        (x, axis, sizes) in tensor_and_axis(1 << 14).prop_flat_map(|(x, axis)| {
            let n = x.shape()[axis];
            (Just(x), Just(axis), partition(n))
        })
    ) {
        let mut t = Tape::new();
        let pieces = t.split(&c(&x), axis, &sizes).unwrap();
        prop_assert_eq!(pieces.len(), sizes.len());
        for (p, &len) in pieces.iter().zip(&sizes) {
            prop_assert_eq!(p.shape()[axis], len);
        }
        let refs: Vec<&Var> = pieces.iter().collect();
        let y = t.concat(&refs, axis).unwrap();
        prop_assert_eq!(y.value(), &x); // bit-exact
    }
}

#[test]
fn an_unused_split_piece_gets_a_zero_gradient() {
    let mut t = Tape::new();
    let x = t.leaf(Tensor::from_fn(&[2, 5], |i| i as f32));
    let pieces = t.split(&x, 1, &[2, 3]).unwrap();
    let doubled = t.mul_scalar(&pieces[1], 2.0).unwrap();
    let loss = t.sum(&doubled).unwrap();
    let g = t.backward(&loss).unwrap();
    assert_eq!(
        g.get(&x).unwrap().data(),
        &[0.0, 0.0, 2.0, 2.0, 2.0, 0.0, 0.0, 2.0, 2.0, 2.0]
    );
}

#[test]
fn reshape_error_names_both_shapes() {
    let mut t = Tape::new();
    let x = Var::constant(Tensor::zeros(&[2, 3]));
    let err = t.reshape(&x, &[4, 2]).unwrap_err().to_string();
    assert_mentions(&err, &["reshape", "[2, 3]", "[4, 2]"]);
}

#[test]
fn permute_rejects_non_permutations_naming_them() {
    let mut t = Tape::new();
    let x = Var::constant(Tensor::zeros(&[2, 3, 4]));
    for bad in [
        &[0, 0, 1][..],
        &[0, 1][..],
        &[0, 1, 3][..],
        &[2, 1, 0, 3][..],
    ] {
        let err = t.permute(&x, bad).unwrap_err().to_string();
        assert_mentions(&err, &["permute", &format!("{bad:?}"), "[2, 3, 4]"]);
    }
}

#[test]
fn transpose_rejects_axes_out_of_range() {
    let mut t = Tape::new();
    let x = Var::constant(Tensor::zeros(&[2, 3]));
    let err = t.transpose(&x, 0, 2).unwrap_err().to_string();
    assert_mentions(&err, &["(0, 2)", "[2, 3]"]);
}

#[test]
fn slice_errors_name_the_range_and_shape() {
    let mut t = Tape::new();
    let x = Var::constant(Tensor::zeros(&[2, 3]));
    let err = t.slice(&x, 1, 1, 4).unwrap_err().to_string();
    assert_mentions(&err, &["slice", "1..4", "[2, 3]"]);
    let err = t.slice(&x, 0, 2, 1).unwrap_err().to_string();
    assert_mentions(&err, &["2..1", "[2, 3]"]);
    let err = t.slice(&x, 2, 0, 1).unwrap_err().to_string();
    assert_mentions(&err, &["axis 2", "[2, 3]"]);
}

#[test]
fn concat_errors_name_the_shapes() {
    let mut t = Tape::new();
    let a = Var::constant(Tensor::zeros(&[2, 3]));
    let b = Var::constant(Tensor::zeros(&[4, 5]));
    let err = t.concat(&[&a, &b], 0).unwrap_err().to_string();
    assert_mentions(&err, &["concat", "[2, 3]", "[4, 5]"]);
    let c3 = Var::constant(Tensor::zeros(&[2, 3, 1]));
    let err = t.concat(&[&a, &c3], 1).unwrap_err().to_string();
    assert!(err.contains("[2, 3, 1]"), "{err}");
    let err = t.concat(&[], 0).unwrap_err().to_string();
    assert_mentions(&err, &["concat", "no tensors"]);
    // Equal shapes, bad axis.
    let err = t.concat(&[&a, &a], 2).unwrap_err().to_string();
    assert!(err.contains("axis 2"), "{err}");
}

#[test]
fn split_sizes_must_add_up_to_the_axis_length() {
    let mut t = Tape::new();
    let x = Var::constant(Tensor::zeros(&[2, 5]));
    let err = t.split(&x, 1, &[2, 2]).unwrap_err().to_string();
    assert_mentions(&err, &["split", "[2, 2]", "[2, 5]"]);
}

/// Attention's head split and merge (the last axis stays last) on a tensor large enough to be
/// copied by several threads: every element where the index formula says, and back.
#[test]
fn head_split_permute_of_a_large_tensor_follows_the_index_formula() {
    let x = Tensor::from_fn(&[3, 130, 5, 64], |i| i as f32);
    let p = [0, 2, 1, 3];
    let y = eval(|t| t.permute(&c(&x), &p));
    assert_eq!(y.shape(), &[3, 5, 130, 64]);
    for (flat, &v) in y.data().iter().enumerate() {
        let i = unravel(flat, y.shape());
        let j = [i[0], i[2], i[1], i[3]];
        assert_eq!(v, x.get(&j).unwrap(), "at {i:?}");
    }
    let back = eval(|t| t.permute(&c(&y), &p));
    assert_eq!(back, x);
}
