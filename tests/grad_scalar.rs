//! Gradient and value properties of the scalar/element-wise ops: `add_scalar`, `mul_scalar`,
//! `neg`, `powf`, `sqrt`, `exp`, `log`.

mod common;

use cloze::{Tape, Tensor, Var};
use common::*;
use proptest::prelude::*;

fn input(lo: f32, hi: f32) -> impl Strategy<Value = Tensor> {
    capped_shape(1024).prop_flat_map(move |s| tensor_in(s, lo, hi))
}

/// An op under test, applied to one input.
type Op = Box<dyn Fn(&mut Tape, &Var) -> cloze::Result<Var>>;
/// An f64 reference of an element-wise op.
type Reference = Box<dyn Fn(f64) -> f64>;
/// An op under test as a plain function pointer.
type OpFn = fn(&mut Tape, &Var) -> cloze::Result<Var>;

/// Runs `f` without recording on a constant.
fn eval(x: &Tensor, f: impl Fn(&mut Tape, &Var) -> cloze::Result<Var>) -> Tensor {
    let mut t = Tape::new();
    f(&mut t, &Var::constant(x.clone()))
        .unwrap()
        .value()
        .clone()
}

proptest! {
    #![proptest_config(cases(32))]

    #[test]
    fn grad_add_scalar(x in input(-2.0, 2.0), s in -3.0f32..3.0) {
        check_grads(|t, v| t.add_scalar(&v[0], s), &[x], &opts())?;
    }

    #[test]
    fn grad_mul_scalar(x in input(-2.0, 2.0), s in -3.0f32..3.0) {
        check_grads(|t, v| t.mul_scalar(&v[0], s), &[x], &opts())?;
    }

    #[test]
    fn grad_neg(x in input(-2.0, 2.0)) {
        check_grads(|t, v| t.neg(&v[0]), &[x], &opts())?;
    }

    #[test]
    fn grad_powf(x in input(0.3, 3.0), p in -2.0f32..3.0) {
        // Positive inputs: x^p is real and smooth for every p.
        check_grads(|t, v| t.powf(&v[0], p), &[x], &opts())?;
    }

    #[test]
    fn grad_powf_integer_exponent(x in input(-2.0, 2.0), p in 0u8..=3) {
        // Integer exponents are defined for negative inputs too (and p = 0 has gradient 0).
        check_grads(|t, v| t.powf(&v[0], p as f32), &[x], &opts())?;
    }

    #[test]
    fn grad_sqrt(x in input(0.2, 3.0)) {
        check_grads(|t, v| t.sqrt(&v[0]), &[x], &opts())?;
    }

    #[test]
    fn grad_exp(x in input(-2.0, 2.0)) {
        check_grads(|t, v| t.exp(&v[0]), &[x], &opts())?;
    }

    #[test]
    fn grad_log(x in input(0.2, 3.0)) {
        check_grads(|t, v| t.log(&v[0]), &[x], &opts())?;
    }

    #[test]
    fn grad_of_a_chain(x in input(0.3, 2.0)) {
        // sqrt(exp(2·log(x)) + 1) − x: every op at once, composed through the tape.
        check_grads(
            |t, v| {
                let l = t.log(&v[0])?;
                let l2 = t.mul_scalar(&l, 2.0)?;
                let e = t.exp(&l2)?;
                let e1 = t.add_scalar(&e, 1.0)?;
                let r = t.sqrt(&e1)?;
                let n = t.neg(&v[0])?;
                let p = t.powf(&r, 1.5)?;
                t.add(&p, &n)
            },
            &[x],
            &opts(),
        )?;
    }

    #[test]
    fn values_match_f64_reference(x in input(0.1, 4.0), s in -3.0f32..3.0, p in -2.0f32..3.0) {
        // Each op is one correctly rounded f32 operation (add, mul, neg, sqrt) or a libm call
        // accurate to about 1 ulp (exp, ln, powf); the f64 reference rounded to f32 may differ
        // by the f32 result's own rounding: allow 2 ulp relative (2·2⁻²³·|y|), plus the f32
        // ulp near 0 for ln(x) at x ≈ 1.
        let ops: [(&str, Op, Reference); 7] = [
            ("add_scalar", Box::new(move |t, v| t.add_scalar(v, s)), Box::new(move |x| x + s as f64)),
            ("mul_scalar", Box::new(move |t, v| t.mul_scalar(v, s)), Box::new(move |x| x * s as f64)),
            ("neg", Box::new(|t, v| t.neg(v)), Box::new(|x| -x)),
            ("powf", Box::new(move |t, v| t.powf(v, p)), Box::new(move |x| x.powf(p as f64))),
            ("sqrt", Box::new(|t, v| t.sqrt(v)), Box::new(f64::sqrt)),
            ("exp", Box::new(|t, v| t.exp(v)), Box::new(f64::exp)),
            ("log", Box::new(|t, v| t.log(v)), Box::new(f64::ln)),
        ];
        for (name, op, reference) in &ops {
            let y = eval(&x, op);
            prop_assert_eq!(y.shape(), x.shape());
            for (&yi, &xi) in y.data().iter().zip(x.data()) {
                let want = reference(xi as f64);
                let tol = 2.0 * f32::EPSILON as f64 * want.abs() + f32::MIN_POSITIVE as f64;
                prop_assert!((yi as f64 - want).abs() <= tol, "{}({}) = {} vs {}", name, xi, yi, want);
            }
        }
    }
}

#[test]
fn out_of_domain_inputs_give_what_f32_gives() {
    let x = Tensor::from_vec(vec![-1.0, 0.0, 4.0], &[3]).unwrap();
    let s = eval(&x, |t, v| t.sqrt(v));
    assert!(s.data()[0].is_nan());
    assert_eq!(&s.data()[1..], &[0.0, 2.0]);
    let l = eval(&x, |t, v| t.log(v));
    assert!(l.data()[0].is_nan());
    assert_eq!(l.data()[1], f32::NEG_INFINITY);
    // Negative base: NaN for a non-integer exponent, the real power for an integer one.
    let neg = Tensor::from_vec(vec![-8.0], &[1]).unwrap();
    assert!(eval(&neg, |t, v| t.powf(v, 1.0 / 3.0)).data()[0].is_nan());
    assert_eq!(eval(&neg, |t, v| t.powf(v, 3.0)).data(), &[-512.0]);
}

#[test]
fn powf_zero_exponent_has_zero_gradient_at_zero() {
    // d(x⁰)/dx = 0; the generic p·x^(p−1) would give 0·∞ = NaN at x = 0.
    let mut t = Tape::new();
    let x = t.leaf(Tensor::from_vec(vec![0.0, 2.0], &[2]).unwrap());
    let y = t.powf(&x, 0.0).unwrap();
    assert_eq!(y.value().data(), &[1.0, 1.0]);
    let loss = t.sum(&y).unwrap();
    let g = t.backward(&loss).unwrap();
    assert_eq!(g.get(&x).unwrap().data(), &[0.0, 0.0]);
}

#[test]
fn scalar_gradients_at_known_points() {
    // d/dx at x = 4: 3·1, −1, 2·x = 8 (powf 2), 1/(2·2) = 0.25 (sqrt), e⁴ (exp), 1/4 (log).
    let cases: [(&str, OpFn, f32); 6] = [
        ("mul_scalar", |t, v| t.mul_scalar(v, 3.0), 3.0),
        ("neg", |t, v| t.neg(v), -1.0),
        ("powf", |t, v| t.powf(v, 2.0), 8.0),
        ("sqrt", |t, v| t.sqrt(v), 0.25),
        ("exp", |t, v| t.exp(v), 54.598_15),
        ("log", |t, v| t.log(v), 0.25),
    ];
    for (name, op, want) in cases {
        let mut t = Tape::new();
        let x = t.leaf(Tensor::from_vec(vec![4.0], &[1]).unwrap());
        let y = op(&mut t, &x).unwrap();
        let g = t.backward(&y).unwrap();
        let got = g.get(&x).unwrap().data()[0];
        // One or two f32 roundings of a value of magnitude ≤ 55: 2 ulp.
        assert!(
            (got - want).abs() <= 2.0 * f32::EPSILON * want.abs(),
            "{name}: {got} vs {want}"
        );
    }
}

#[test]
fn non_finite_scalar_arguments_are_errors_naming_the_value() {
    let mut t = Tape::new();
    let x = Var::constant(Tensor::ones(&[2]));
    let err = t.mul_scalar(&x, f32::NAN).unwrap_err().to_string();
    assert_mentions(&err, &["mul_scalar", "NaN"]);
    let err = t.add_scalar(&x, f32::INFINITY).unwrap_err().to_string();
    assert_mentions(&err, &["add_scalar", "inf"]);
    let err = t.powf(&x, f32::NEG_INFINITY).unwrap_err().to_string();
    assert_mentions(&err, &["powf", "-inf"]);
}
