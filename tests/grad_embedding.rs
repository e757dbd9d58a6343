//! Gradient and value properties of `embedding`.

mod common;

use cloze::{Tape, Tensor, Var};
use common::*;
use proptest::prelude::*;

/// A table `[V, H]`, an ids shape with 1..=2 axes, and ids in `0..V`.
fn case() -> impl Strategy<Value = (Tensor, Vec<u32>, Vec<usize>)> {
    (dim(), dim(), proptest::collection::vec(dim(), 1..=2)).prop_flat_map(|(v, h, ids_shape)| {
        let n: usize = ids_shape.iter().product();
        (
            tensor(vec![v, h]),
            proptest::collection::vec(0..v as u32, n),
            Just(ids_shape),
        )
    })
}

/// Like [`case`] but every id is drawn from at most 3 distinct values, so repeats are common.
fn repeated_case() -> impl Strategy<Value = (Tensor, Vec<u32>, Vec<usize>)> {
    (dim(), dim(), 2usize..=17).prop_flat_map(|(v, h, n)| {
        let few = (v as u32).min(3);
        (
            tensor(vec![v, h]),
            proptest::collection::vec(0..few, n),
            Just(vec![n]),
        )
    })
}

proptest! {
    #![proptest_config(cases(40))]

    #[test]
    fn grad_embedding((table, ids, ids_shape) in case()) {
        check_grads(|t, v| t.embedding(&v[0], &ids, &ids_shape), &[table], &opts())?;
    }

    #[test]
    fn grad_embedding_repeated_ids((table, ids, ids_shape) in repeated_case()) {
        check_grads(|t, v| t.embedding(&v[0], &ids, &ids_shape), &[table], &opts())?;
    }

    #[test]
    fn output_rows_equal_table_rows((table, ids, ids_shape) in case()) {
        let mut t = Tape::new();
        let y = t.embedding(&Var::constant(table.clone()), &ids, &ids_shape).unwrap();
        let h = table.shape()[1];
        let mut want_shape = ids_shape.clone();
        want_shape.push(h);
        prop_assert_eq!(y.shape(), want_shape.as_slice());
        for (p, &id) in ids.iter().enumerate() {
            let id = id as usize;
            prop_assert_eq!(&y.value().data()[p * h..(p + 1) * h], &table.data()[id * h..(id + 1) * h]);
        }
    }

    #[test]
    fn gradient_counts_each_ids_uses((table, ids, ids_shape) in repeated_case()) {
        // d/dtable Σ embedding: row v of the gradient is (number of positions with id v) · 1.
        let mut t = Tape::new();
        let tv = t.leaf(table.clone());
        let y = t.embedding(&tv, &ids, &ids_shape).unwrap();
        let loss = t.sum(&y).unwrap();
        let g = t.backward(&loss).unwrap();
        let g = g.get(&tv).unwrap();
        prop_assert_eq!(g.shape(), table.shape());
        let h = table.shape()[1];
        for row in 0..table.shape()[0] {
            let uses = ids.iter().filter(|&&i| i as usize == row).count() as f32;
            prop_assert!(g.data()[row * h..(row + 1) * h].iter().all(|&v| v == uses));
        }
    }
}

#[test]
fn id_out_of_range_names_id_position_and_vocab() {
    let mut t = Tape::new();
    let table = t.leaf(Tensor::zeros(&[5, 3]));
    let err = t
        .embedding(&table, &[0, 4, 5, 1], &[2, 2])
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["embedding", "id 5", "position 2", "V = 5"]);
}

#[test]
fn ids_length_must_match_ids_shape() {
    let mut t = Tape::new();
    let table = t.leaf(Tensor::zeros(&[5, 3]));
    let err = t
        .embedding(&table, &[0, 1, 2], &[2, 2])
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["3 ids", "[2, 2]"]);
}

#[test]
fn table_must_be_two_dimensional() {
    let mut t = Tape::new();
    let table = t.leaf(Tensor::zeros(&[5]));
    let err = t.embedding(&table, &[0], &[1]).unwrap_err().to_string();
    assert!(err.contains("[5]"), "{err}");
}
