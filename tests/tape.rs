//! Behaviour of the tape itself: accumulation, parameters, no_grad, reset, errors, determinism,
//! and gradcheck's ability to catch a wrong backward.

mod common;

use cloze::{gradcheck, Backward, Error, GradcheckOptions, ParamStore, Tape, Tensor, Var};
use common::assert_mentions;

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

#[test]
fn params_accumulate_across_backward_passes_until_zeroed() {
    let mut store = ParamStore::new();
    let w = store.add("w", t(&[1.0, 2.0], &[2])).unwrap();
    let mut tape = Tape::new();
    for _ in 0..2 {
        tape.reset();
        let wv = tape.param(&store, w);
        let x = Var::constant(t(&[3.0, 4.0], &[2]));
        let y = tape.mul(&wv, &x).unwrap();
        let loss = tape.sum(&y).unwrap();
        let g = tape.backward(&loss).unwrap();
        store.accumulate(&g).unwrap();
    }
    assert_eq!(store.grad(w).unwrap().data(), &[6.0, 8.0]);
    store.zero_grads();
    assert!(store.grad(w).is_none());
}

#[test]
fn parameter_used_twice_in_one_step_gets_both_uses() {
    let mut store = ParamStore::new();
    let w = store.add("w", t(&[2.0], &[1])).unwrap();
    let mut tape = Tape::new();
    let a = tape.param(&store, w);
    let b = tape.param(&store, w);
    let y = tape.mul(&a, &b).unwrap(); // w², gradient 2w = 4
    let g = tape.backward(&y).unwrap();
    store.accumulate(&g).unwrap();
    assert_eq!(store.grad(w).unwrap().data(), &[4.0]);
}

#[test]
fn clip_grad_norm_scales_to_the_limit_and_reports_the_norm() {
    let mut store = ParamStore::new();
    let a = store.add("a", t(&[0.0, 0.0], &[2])).unwrap();
    let b = store.add("b", t(&[0.0], &[1])).unwrap();
    let mut tape = Tape::new();
    let (av, bv) = (tape.param(&store, a), tape.param(&store, b));
    // loss = 3·a0 + 0·a1 + 4·b0 → gradient (3, 0, 4), norm 5
    let ca = Var::constant(t(&[3.0, 0.0], &[2]));
    let cb = Var::constant(t(&[4.0], &[1]));
    let la = tape.mul(&av, &ca).unwrap();
    let lb = tape.mul(&bv, &cb).unwrap();
    let (sa, sb) = (tape.sum(&la).unwrap(), tape.sum(&lb).unwrap());
    let loss = tape.add(&sa, &sb).unwrap();
    store.accumulate(&tape.backward(&loss).unwrap()).unwrap();
    let norm = store.clip_grad_norm(1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-6);
    assert!((store.grad_norm() - 1.0).abs() < 1e-6);
    assert!((store.grad(a).unwrap().data()[0] - 0.6).abs() < 1e-6);
    assert!(store.clip_grad_norm(0.0).is_err());
}

#[test]
fn no_grad_records_nothing() {
    let mut tape = Tape::new();
    let x = tape.leaf(t(&[1.0, 2.0], &[2]));
    let before = tape.len();
    let y = tape.no_grad(|t| t.mul(&x, &x).unwrap());
    assert_eq!(tape.len(), before);
    assert!(!y.requires_grad());
    assert!(tape.grad_enabled());
    let s = tape.no_grad(|t| t.sum(&y).unwrap());
    let err = tape.backward(&s).unwrap_err();
    assert!(err.to_string().contains("does not depend"), "{err}");
}

#[test]
fn constants_only_record_nothing() {
    let mut tape = Tape::new();
    let a = Var::constant(t(&[1.0], &[1]));
    let y = tape.add(&a, &a).unwrap();
    assert_eq!(tape.len(), 0);
    assert!(!y.requires_grad());
}

#[test]
fn stale_var_after_reset_is_an_error() {
    let mut tape = Tape::new();
    let x = tape.leaf(t(&[1.0], &[1]));
    tape.reset();
    let err = tape.mul(&x, &x).unwrap_err();
    assert!(matches!(err, Error::StaleVar { op: "mul", .. }), "{err}");
}

#[test]
fn backward_needs_a_scalar_loss() {
    let mut tape = Tape::new();
    let x = tape.leaf(t(&[1.0, 2.0], &[2]));
    let y = tape.mul(&x, &x).unwrap();
    let err = tape.backward(&y).unwrap_err().to_string();
    assert!(err.contains("[2]"), "{err}");
    let g = tape.backward_with(&y, t(&[1.0, 1.0], &[2])).unwrap();
    assert_eq!(g.get(&x).unwrap().data(), &[2.0, 4.0]);
}

/// A user-defined op with a deliberately wrong backward (d/dx x² reported as x instead of 2x).
struct WrongSquare(Tensor);
impl Backward for WrongSquare {
    fn name(&self) -> &'static str {
        "wrong_square"
    }
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> cloze::Result<Vec<Option<Tensor>>> {
        let d: Vec<f32> = self
            .0
            .data()
            .iter()
            .zip(g.data())
            .map(|(x, g)| x * g)
            .collect();
        Ok(vec![Some(Tensor::from_vec(d, self.0.shape())?)])
    }
}

fn wrong_square(tape: &mut Tape, x: &Var) -> cloze::Result<Var> {
    let y = Tensor::from_vec(x.value().data().iter().map(|v| v * v).collect(), x.shape())?;
    let saved = x.value().clone();
    tape.record("wrong_square", y, &[x], move || WrongSquare(saved))
}

#[test]
fn gradcheck_catches_a_wrong_backward() {
    let x = t(&[0.5, -1.5, 2.0], &[3]);
    let report = gradcheck(
        |t, v| wrong_square(t, &v[0]),
        &[x],
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(!report.passed(), "a wrong gradient passed: {report}");
    assert_eq!(report.inputs[0].failures, 3);
}

#[test]
fn backward_rejects_a_gradient_of_the_wrong_shape() {
    struct BadShape;
    impl Backward for BadShape {
        fn name(&self) -> &'static str {
            "bad_shape"
        }
        fn backward(&self, _g: &Tensor, _n: &[bool]) -> cloze::Result<Vec<Option<Tensor>>> {
            Ok(vec![Some(Tensor::zeros(&[5]))])
        }
    }
    let mut tape = Tape::new();
    let x = tape.leaf(t(&[1.0, 2.0], &[2]));
    let y = tape
        .record("bad_shape", Tensor::scalar(0.0), &[&x], || BadShape)
        .unwrap();
    let err = tape.backward(&y).unwrap_err().to_string();
    assert_mentions(&err, &["bad_shape", "[5]", "[2]"]);
}

#[test]
fn non_differentiable_op_refuses_inputs_that_need_grad() {
    let mut tape = Tape::new();
    let x = tape.leaf(t(&[1.0], &[1]));
    let err = tape.forbid_grad("argmax", &[&x]).unwrap_err();
    assert!(
        matches!(err, Error::NotDifferentiable { op: "argmax" }),
        "{err}"
    );
    assert!(tape.no_grad(|t| t.forbid_grad("argmax", &[&x])).is_ok());
}

#[test]
fn same_inputs_give_bit_identical_gradients_on_1_and_2_threads() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let a = Tensor::from_fn(&[67, 129], |i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0);
            let b = Tensor::from_fn(&[129, 33], |i| ((i * 104729) % 997) as f32 / 498.0 - 1.0);
            let mut tape = Tape::new();
            let (va, vb) = (tape.leaf(a), tape.leaf(b));
            let c = tape.matmul(&va, &vb).unwrap();
            let c2 = tape.mul(&c, &c).unwrap();
            let loss = tape.mean(&c2).unwrap();
            let g = tape.backward(&loss).unwrap();
            (
                loss.value().clone(),
                g.get(&va).unwrap().clone(),
                g.get(&vb).unwrap().clone(),
            )
        })
    };
    assert!(run(1) == run(2));
}

#[test]
fn each_store_accumulates_only_its_own_parameters() {
    // two stores whose parameters have the same index and shape
    let mut a = ParamStore::new();
    let mut b = ParamStore::new();
    let wa = a.add("w", t(&[1.0], &[1])).unwrap();
    let wb = b.add("w", t(&[10.0], &[1])).unwrap();
    assert!(a.owns(wa) && !a.owns(wb));
    let mut tape = Tape::new();
    let (va, vb) = (tape.param(&a, wa), tape.param(&b, wb));
    let y = tape.mul(&va, &vb).unwrap(); // d/dwa = 10, d/dwb = 1
    let g = tape.backward(&y).unwrap();
    a.accumulate(&g).unwrap();
    b.accumulate(&g).unwrap();
    assert_eq!(a.grad(wa).unwrap().data(), &[10.0]);
    assert_eq!(b.grad(wb).unwrap().data(), &[1.0]);
}

#[test]
#[should_panic(expected = "belongs to another ParamStore")]
fn a_parameter_id_of_another_store_is_refused() {
    let mut a = ParamStore::new();
    let b = {
        let mut b = ParamStore::new();
        b.add("w", t(&[1.0], &[1])).unwrap()
    };
    a.add("w", t(&[2.0], &[1])).unwrap();
    let _ = a.value(b);
}
