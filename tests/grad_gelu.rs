//! Gradient and value properties of `gelu` (erf and tanh forms).

mod common;
use cloze::ops::gelu::GeluKind;
use cloze::{Tape, Tensor};
use common::*;
use proptest::prelude::*;

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4; // √(2/π)

/// GELU in f64, written here independently of the kernel: erf from `libm`.
fn gelu_ref(kind: GeluKind, x: f64) -> f64 {
    match kind {
        GeluKind::Erf => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        GeluKind::Tanh => 0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x.powi(3))).tanh()),
    }
}

/// d gelu / dx in f64: Φ(x) + x·φ(x) for the erf form; the tanh form by the chain rule.
fn gelu_grad_ref(kind: GeluKind, x: f64) -> f64 {
    match kind {
        GeluKind::Erf => {
            let cdf = 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
            let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            cdf + x * pdf
        }
        GeluKind::Tanh => {
            let t = (SQRT_2_OVER_PI * (x + 0.044715 * x.powi(3))).tanh();
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
        }
    }
}

/// Tolerance for GELU (value or derivative) at x against an f64 reference. An f32 kernel whose
/// erf/tanh is accurate to a few ε absolute gives gelu = 0.5·x·(1 + erf) with an error of about
/// 0.5·|x|·(few ε), and rounding the result adds 0.5 ulp ≤ ε·|y|/2 ≤ ε·|x|/2: 4ε·max(1, |x|)
/// covers both with room (the current scalar path is correctly rounded from f64).
fn gelu_tol(x: f64) -> f64 {
    4.0 * f32::EPSILON as f64 * x.abs().max(1.0)
}

fn gelu_values(kind: GeluKind, xs: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut t = Tape::new();
    let x = t.leaf(Tensor::from_vec(xs.to_vec(), &[xs.len()]).unwrap());
    let y = t.gelu(&x, kind).unwrap();
    let loss = t.sum(&y).unwrap();
    let g = t.backward(&loss).unwrap();
    (y.value().to_vec(), g.get(&x).unwrap().to_vec())
}

proptest! {
    #![proptest_config(cases(32))]

    #[test]
    fn grad_gelu_erf(x in capped_shape(1024).prop_flat_map(|s| tensor_in(s, -4.0, 4.0))) {
        check_grads(|t, v| t.gelu(&v[0], GeluKind::Erf), &[x], &opts())?;
    }

    #[test]
    fn grad_gelu_tanh(x in capped_shape(1024).prop_flat_map(|s| tensor_in(s, -4.0, 4.0))) {
        check_grads(|t, v| t.gelu(&v[0], GeluKind::Tanh), &[x], &opts())?;
    }
}

#[test]
fn gelu_at_known_points() {
    // Reference values from CPython's math.erf / math.tanh in f64 (computed outside this
    // crate): 0.5·x·(1 + erf(x/√2)) and 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))).
    let xs = [-3.0f32, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0];
    let erf = [
        -0.00404969409489031,
        -0.15865525393145707,
        -0.15426876936299344,
        0.0,
        0.34573123063700656,
        0.8413447460685429,
        1.9544997361036416,
        2.99595030590511,
    ];
    let tanh = [
        -0.0036373920817729943,
        -0.15880800939172324,
        -0.15428599017485606,
        0.0,
        0.34571400982514394,
        0.8411919906082768,
        1.954597694087775,
        2.996362607918227,
    ];
    for (kind, want) in [(GeluKind::Erf, erf), (GeluKind::Tanh, tanh)] {
        let (y, _) = gelu_values(kind, &xs);
        for ((&x, &yi), &w) in xs.iter().zip(&y).zip(&want) {
            assert!(
                (yi as f64 - w).abs() <= gelu_tol(x as f64),
                "{kind:?} gelu({x}) = {yi}, want {w}"
            );
        }
    }
}

#[test]
fn gelu_and_its_gradient_match_an_f64_reference_on_a_grid() {
    // x from −8 to 8 in steps of 1/64 (exact in f32), plus values far out in both tails.
    let mut xs: Vec<f32> = (-512..=512).map(|i| i as f32 / 64.0).collect();
    xs.extend([-30.0, -12.5, 12.5, 30.0]);
    for kind in [GeluKind::Erf, GeluKind::Tanh] {
        let (y, dy) = gelu_values(kind, &xs);
        for ((&x, &yi), &di) in xs.iter().zip(&y).zip(&dy) {
            let x64 = x as f64;
            let (w, dw) = (gelu_ref(kind, x64), gelu_grad_ref(kind, x64));
            assert!(
                (yi as f64 - w).abs() <= gelu_tol(x64),
                "{kind:?} gelu({x}) = {yi}, want {w}"
            );
            // The derivative is ≤ 1.13 in magnitude; its terms are of order 1 + |x|·φ(x).
            assert!(
                (di as f64 - dw).abs() <= gelu_tol(x64),
                "{kind:?} gelu'({x}) = {di}, want {dw}"
            );
        }
    }
}
