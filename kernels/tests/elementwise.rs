//! Every vector path of the element-wise and row kernels against the scalar reference (which
//! computes in f64 where it matters), on awkward lengths and special values, plus bit-identical
//! results for 1 and 2 rayon threads.
//!
//! `U` below is the f32 unit roundoff 2⁻²⁴. Tolerances are stated where used, from the operation
//! count and the measured accuracy of the vector erf (≤ 1e-7 absolute, asserted in
//! `erf_accuracy`) and exp (≤ 3 ulp, asserted in `exp_accuracy`).

use cloze_kernels::dispatch::{supported, Isa};
use cloze_kernels::gelu::{self, GeluKind};
use cloze_kernels::{adamw, convert, cross_entropy, layer_norm, simd, softmax};
use half::{bf16, f16};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

const U: f64 = 1.0 / 16_777_216.0;
const AWKWARD: [usize; 10] = [1, 3, 7, 15, 17, 31, 33, 127, 129, 257];

/// The vector paths this CPU runs (everything but the reference).
fn fast() -> Vec<Isa> {
    supported()
        .into_iter()
        .filter(|&i| i != Isa::Scalar)
        .collect()
}

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

fn randv(r: &mut impl Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Asserts `|got − want| ≤ tol` element-wise (NaN must match NaN).
fn close(what: &str, isa: Isa, got: &[f32], want: &[f32], tol: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len());
    for i in 0..got.len() {
        let (g, w) = (got[i] as f64, want[i] as f64);
        if w.is_nan() {
            assert!(g.is_nan(), "{what} [{isa}] at {i}: got {g}, want NaN");
            continue;
        }
        if w.is_infinite() || g == w {
            assert_eq!(g, w, "{what} [{isa}] at {i}");
            continue;
        }
        let t = tol(i);
        assert!(
            (g - w).abs() <= t,
            "{what} [{isa}] at {i} of {}: got {g:e}, want {w:e}, |diff| {:e} > tol {t:e}",
            got.len(),
            (g - w).abs()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Vector math.

#[test]
fn erf_accuracy() {
    // Dense grid over [-7, 7] (erf is ±1 in f32 beyond) plus random values of every magnitude.
    let mut x: Vec<f32> = (0..=280_000).map(|i| -7.0 + i as f32 * 5e-5).collect();
    let mut r = rng(1);
    x.extend((0..20_000).map(|_| r.random_range(-1.0f32..1.0) * 10f32.powi(r.random_range(-6..2))));
    x.extend([
        0.0,
        -0.0,
        1.0,
        -1.0,
        20.0,
        -20.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ]);
    for isa in fast() {
        let mut y = vec![0.0; x.len()];
        simd::math_with(isa, simd::MathFn::Erf, &x, &mut y);
        let mut worst = (0.0f64, 0.0f32);
        for (&xi, &yi) in x.iter().zip(&y) {
            let e = (yi as f64 - libm::erf(xi as f64)).abs();
            if e > worst.0 {
                worst = (e, xi);
            }
        }
        println!(
            "vector erf [{isa}]: max abs error {:.3e} at x = {}",
            worst.0, worst.1
        );
        assert!(
            worst.0 <= 1e-7,
            "erf [{isa}] max abs error {:e} at {}",
            worst.0,
            worst.1
        );
        let mut nan = [0.0];
        simd::math_with(isa, simd::MathFn::Erf, &[f32::NAN], &mut nan);
        assert!(nan[0].is_nan(), "erf(NaN) [{isa}] = {}", nan[0]);
    }
}

#[test]
fn phi_lower_tail_keeps_relative_accuracy() {
    // Φ(x) = ½erfc(−x/√2) for x in [−8, 0]: relative error ≤ 2e-5 (the g-fit error 2e-8 plus the
    // rounding of z² ≤ 32, which shifts exp's argument by ≤ 32·U ≈ 2e-6, times a few ulp).
    let x: Vec<f32> = (0..=16_000).map(|i| -8.0 + i as f32 * 5e-4).collect();
    for isa in fast() {
        let mut y = vec![0.0; x.len()];
        simd::math_with(isa, simd::MathFn::Phi, &x, &mut y);
        for (&xi, &yi) in x.iter().zip(&y) {
            let want = 0.5 * libm::erfc(-(xi as f64) * std::f64::consts::FRAC_1_SQRT_2);
            let rel = (yi as f64 - want).abs() / want;
            assert!(rel <= 2e-5, "phi [{isa}] at {xi}: {yi:e} vs {want:e}");
        }
    }
}

#[test]
fn exp_accuracy() {
    // Relative error ≤ 3 ulp (6·U) on normal results; +∞ above 88.38; below −87.34 (subnormal
    // results) at most f32's smallest normal, 0 below −104; NaN kept.
    let x: Vec<f32> = (0..=200_000).map(|i| -87.0 + i as f32 * 8.75e-4).collect();
    for isa in fast() {
        let mut y = vec![0.0; x.len()];
        simd::math_with(isa, simd::MathFn::Exp, &x, &mut y);
        for (&xi, &yi) in x.iter().zip(&y) {
            let w = (xi as f64).exp();
            assert!(
                (yi as f64 - w).abs() <= 6.0 * U * w,
                "exp [{isa}] at {xi}: {yi:e} vs {w:e}"
            );
        }
        let sp = [
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            100.0,
            -100.0,
            0.0,
            -105.0,
            89.0,
        ];
        let mut y = [0.0; 8];
        simd::math_with(isa, simd::MathFn::Exp, &sp, &mut y);
        assert_eq!(y[0], f32::INFINITY, "[{isa}]");
        assert_eq!(y[1], 0.0, "[{isa}]");
        assert!(y[2].is_nan(), "[{isa}]");
        assert_eq!(y[3], f32::INFINITY, "[{isa}]");
        assert!((0.0..f32::MIN_POSITIVE).contains(&y[4]), "[{isa}] {}", y[4]);
        assert_eq!(y[5], 1.0, "[{isa}]");
        assert_eq!(y[6], 0.0, "[{isa}]");
        assert_eq!(y[7], f32::INFINITY, "[{isa}]");
    }
}

// ---------------------------------------------------------------------------------------------
// GELU.

/// Tolerance of a vector GELU value against the f64 reference at `x` (see module doc).
fn gelu_tol(kind: GeluKind, x: f32, want: f32) -> f64 {
    let (x, w) = (x as f64, want as f64);
    match kind {
        // Φ: erf's 1e-7 halves to 0.5e-7, plus φ·|x|·U from rounding x/√2 (≤ 0.25·U), plus Φ's own
        // rounding (≤ U); times |x|, plus the product's and the reference's roundings.
        GeluKind::Erf => 1.25e-7 * x.abs() + 2.0 * U * w.abs() + 1e-37,
        // x·σ(2u): u carries ~3 roundings, σ's relative sensitivity to u is 2|u|(1−σ) ≤ 2|u|;
        // exp ≤ 3 ulp; division and product 2 more. The f64 reference forms 1 + tanh(u), which
        // cancels for u ≪ 0: it is itself only good to |x|·2⁻⁵² there.
        GeluKind::Tanh => {
            let u = 0.797_884_560_802_865_4 * (x + 0.044715 * x * x * x);
            (8.0 + 8.0 * u.abs()) * U * w.abs() + x.abs() * f64::EPSILON + 1e-37
        }
    }
}

/// Tolerance of `dy·gelu'(x)` against the reference (the two terms of gelu' can cancel, so the
/// bound is on their magnitudes).
fn gelu_grad_tol(kind: GeluKind, x: f32, dy: f32, want: f32) -> f64 {
    let (x, dy) = (x as f64, dy as f64);
    let terms = match kind {
        GeluKind::Erf => {
            // Φ as in gelu_tol; x·φ(x): exp ≤ 3 ulp plus x²/2 rounding (x²·U relative); the
            // fma's rounding and the reference's rounding of gelu' to f32 (≤ 2U·|gelu'| ≤ 2.3U).
            let xpdf = (x * 0.398_942_280_401_432_7 * (-0.5 * x * x).exp()).abs();
            1.25e-7 + 2.3 * U + xpdf * (8.0 + 2.0 * x * x) * U
        }
        GeluKind::Tanh => {
            let u = 0.797_884_560_802_865_4 * (x + 0.044715 * x * x * x);
            let s = 1.0 / (1.0 + (-2.0 * u).exp());
            let du = 0.797_884_560_802_865_4 * (1.0 + 3.0 * 0.044715 * x * x);
            // The reference's 1 ± tanh(u) are good to 2⁻⁵² absolute only.
            (s + (2.0 * x * s * (1.0 - s) * du).abs()) * (18.0 + 16.0 * u.abs()) * U
                + (1.0 + x.abs() * du) * 2.0 * f64::EPSILON
        }
    };
    dy.abs() * terms + 2.0 * U * (want as f64).abs() + 1e-37
}

fn check_gelu(kind: GeluKind, x: &[f32], dy: &[f32]) {
    let n = x.len();
    let (mut y0, mut d0) = (vec![0.0; n], vec![0.0; n]);
    gelu::forward_with(Isa::Scalar, kind, x, &mut y0);
    gelu::backward_with(Isa::Scalar, kind, x, dy, &mut d0);
    for isa in fast() {
        let (mut y, mut d) = (vec![0.0; n], vec![0.0; n]);
        gelu::forward_with(isa, kind, x, &mut y);
        gelu::backward_with(isa, kind, x, dy, &mut d);
        close(&format!("gelu {kind:?} fwd"), isa, &y, &y0, |i| {
            gelu_tol(kind, x[i], y0[i])
        });
        // At x = ±∞ the reference's x·φ(x) is ∞·0 = NaN; a path may return that or the limits
        // gelu'(+∞) = 1, gelu'(−∞) = 0. Everything else is compared.
        let mut d0c = d0.clone();
        for i in 0..n {
            if x[i].is_infinite() {
                let lim = if x[i] > 0.0 { dy[i] } else { 0.0 };
                assert!(
                    d[i].is_nan() || d[i] == lim,
                    "gelu {kind:?} bwd [{isa}] at {}: {}",
                    x[i],
                    d[i]
                );
                d0c[i] = d[i];
            }
        }
        close(&format!("gelu {kind:?} bwd"), isa, &d, &d0c, |i| {
            gelu_grad_tol(kind, x[i], dy[i], d0c[i])
        });
    }
}

#[test]
fn gelu_awkward_lengths_and_specials() {
    let mut r = rng(2);
    for kind in [GeluKind::Erf, GeluKind::Tanh] {
        for n in AWKWARD {
            check_gelu(
                kind,
                &randv(&mut r, n, -12.0, 12.0),
                &randv(&mut r, n, -2.0, 2.0),
            );
        }
        let sp = [
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            1e-8,
            3.0,
            -3.0,
            -5.0,
            -8.0,
            -9.5,
            -20.0,
            30.0,
            1e30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        check_gelu(kind, &sp, &vec![1.0; sp.len()]);
    }
}

proptest! {
    #![proptest_config(cfg(48))]
    #[test]
    fn gelu_random(n in 1usize..700, seed in any::<u64>(), scale in prop_oneof![Just(1.0f32), Just(4.0), Just(12.0)]) {
        let mut r = rng(seed);
        let x = randv(&mut r, n, -scale, scale);
        let dy = randv(&mut r, n, -1.0, 1.0);
        check_gelu(GeluKind::Erf, &x, &dy);
        check_gelu(GeluKind::Tanh, &x, &dy);
    }

    #[test]
    fn bias_gelu_matches_reference(rows in 1usize..6, cols in 1usize..140, seed in any::<u64>()) {
        let mut r = rng(seed);
        let x = randv(&mut r, rows * cols, -4.0, 4.0);
        let b = randv(&mut r, cols, -1.0, 1.0);
        for kind in [GeluKind::Erf, GeluKind::Tanh] {
            let (mut p0, mut y0) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            gelu::bias_forward_with(Isa::Scalar, kind, &x, &b, &mut p0, &mut y0);
            for isa in fast() {
                let (mut p, mut y) = (vec![0.0; x.len()], vec![0.0; x.len()]);
                gelu::bias_forward_with(isa, kind, &x, &b, &mut p, &mut y);
                // One f32 addition: bit-identical.
                prop_assert_eq!(&p, &p0);
                close("bias gelu", isa, &y, &y0, |i| gelu_tol(kind, p0[i], y0[i]));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Softmax family.

/// Softmax, log-softmax and both backward passes against the reference.
fn check_softmax(x: &[f32], dy: &[f32], cols: usize) {
    let n = x.len();
    let c = cols as f64;
    let (mut s0, mut l0) = (vec![0.0; n], vec![0.0; n]);
    softmax::softmax_rows_with(Isa::Scalar, x, cols, &mut s0);
    softmax::log_softmax_rows_with(Isa::Scalar, x, cols, &mut l0);
    let (mut sb0, mut lb0) = (vec![0.0; n], vec![0.0; n]);
    softmax::softmax_backward_rows_with(Isa::Scalar, &s0, dy, cols, &mut sb0);
    softmax::log_softmax_backward_rows_with(Isa::Scalar, &l0, dy, cols, &mut lb0);
    // Per-row Σ|dy·y| and Σ|dy| bound the reduction errors of the backward passes.
    let row_abs = |f: &dyn Fn(usize) -> f64, r: usize| -> f64 {
        (r * cols..(r + 1) * cols).map(f).sum::<f64>()
    };
    for isa in fast() {
        let (mut s, mut l) = (vec![0.0; n], vec![0.0; n]);
        softmax::softmax_rows_with(isa, x, cols, &mut s);
        softmax::log_softmax_rows_with(isa, x, cols, &mut l);
        // Row sum of `cols` positive terms: relative error ≤ (cols + 8)·U; exp 3 ulp; scale 1.
        close("softmax", isa, &s, &s0, |i| {
            (c + 16.0) * U * s0[i] as f64 + 1e-44
        });
        // x − (m + ln s): the sum's relative error becomes an absolute one; plus roundings of
        // |x| and |lse| magnitude.
        close("log_softmax", isa, &l, &l0, |i| {
            let lse = x[i] as f64 - l0[i] as f64;
            (c + 16.0) * U + 4.0 * U * (x[i].abs() as f64 + lse.abs())
        });
        let (mut sb, mut lb) = (vec![0.0; n], vec![0.0; n]);
        softmax::softmax_backward_rows_with(isa, &s0, dy, cols, &mut sb);
        softmax::log_softmax_backward_rows_with(isa, &l0, dy, cols, &mut lb);
        // y·(dy − dot): dot's error ≤ cols·U·Σ|dy·y|, then 2 roundings.
        close("softmax bwd", isa, &sb, &sb0, |i| {
            let r = i / cols;
            let sdy = row_abs(&|k| (dy[k] as f64 * s0[k] as f64).abs(), r);
            (s0[i] as f64).abs() * ((c + 2.0) * U * sdy + 3.0 * U * (dy[i] as f64).abs())
                + 2.0 * U * (sb0[i] as f64).abs()
                + 1e-44
        });
        // dy − e^y·Σdy: Σdy's error ≤ cols·U·Σ|dy|, exp 3 ulp.
        close("log_softmax bwd", isa, &lb, &lb0, |i| {
            let r = i / cols;
            let sdy = row_abs(&|k| (dy[k] as f64).abs(), r);
            (l0[i] as f64).exp() * (c + 8.0) * U * sdy * (1.0 + (l0[i] as f64).abs())
                + 2.0 * U * ((dy[i] as f64).abs() + (lb0[i] as f64).abs())
                + 1e-44
        });
    }
}

/// Cross-entropy (loss and gradient) against the reference.
fn check_ce(x: &[f32], cols: usize, labels: &[i32], ignore: i32) {
    let n = x.len();
    let c = cols as f64;
    let mut d0 = vec![0.0; n];
    let ce0 =
        cross_entropy::cross_entropy_with(Isa::Scalar, x, cols, labels, ignore, Some(&mut d0));
    for isa in fast() {
        let mut d = vec![f32::NAN; n];
        let ce = cross_entropy::cross_entropy_with(isa, x, cols, labels, ignore, Some(&mut d));
        let no_grad = cross_entropy::cross_entropy_with(isa, x, cols, labels, ignore, None);
        assert_eq!(ce.count, ce0.count);
        assert_eq!(
            no_grad, ce,
            "cross_entropy [{isa}]: the gradient changed the loss"
        );
        // Per counted row: ln of a sum with relative error ≤ (cols + 8)·U, plus roundings.
        let tol = ce0.count as f64 * (c + 16.0) * U + 4.0 * U * ce0.loss_sum.abs();
        assert!(
            (ce.loss_sum - ce0.loss_sum).abs() <= tol,
            "cross_entropy [{isa}] loss {} vs {} (tol {tol:e})",
            ce.loss_sum,
            ce0.loss_sum
        );
        // Gradient: softmax's tolerance, plus one rounding of order 1 at the label.
        close("cross_entropy grad", isa, &d, &d0, |i| {
            (c + 16.0) * U * (d0[i] as f64).abs() + U + 1e-44
        });
    }
}

#[test]
fn softmax_awkward_lengths() {
    let mut r = rng(3);
    for cols in AWKWARD {
        for rows in [1, 3] {
            let x = randv(&mut r, rows * cols, -15.0, 15.0);
            let dy = randv(&mut r, rows * cols, -1.0, 1.0);
            check_softmax(&x, &dy, cols);
            let labels: Vec<i32> = (0..rows)
                .map(|k| {
                    if k == 1 {
                        -100
                    } else {
                        r.random_range(0..cols as i32)
                    }
                })
                .collect();
            check_ce(&x, cols, &labels, -100);
        }
    }
}

#[test]
fn softmax_special_values() {
    let ninf = f32::NEG_INFINITY;
    for isa in supported() {
        // Huge logits: no overflow, correct one-hot-ish result.
        let x = [1e4f32, -1e4, 0.0, 1e4, -1e4, 5.0, 1e4 - 1.0];
        let mut y = [0.0; 7];
        softmax::softmax_rows_with(isa, &x, 7, &mut y);
        assert!(y.iter().all(|v| v.is_finite()), "[{isa}] {y:?}");
        let e1 = (-1.0f64).exp();
        let z = 2.0 + e1;
        for (k, want) in [(0, 1.0 / z), (3, 1.0 / z), (6, e1 / z), (1, 0.0), (2, 0.0)] {
            assert!(
                (y[k] as f64 - want).abs() <= 1e-6,
                "[{isa}] y[{k}] = {}",
                y[k]
            );
        }
        let mut l = [0.0; 7];
        softmax::log_softmax_rows_with(isa, &x, 7, &mut l);
        assert!(
            (l[1] as f64 - (-2e4 - z.ln())).abs() <= 4e-3,
            "[{isa}] {l:?}"
        );
        // A row of −∞ except one entry: exactly one-hot, log-softmax 0 there and −∞ elsewhere.
        for cols in [1usize, 5, 17, 40] {
            let mut x = vec![ninf; cols];
            x[cols / 2] = 3.5;
            let mut y = vec![0.0; cols];
            softmax::softmax_rows_with(isa, &x, cols, &mut y);
            let mut l = vec![0.0; cols];
            softmax::log_softmax_rows_with(isa, &x, cols, &mut l);
            for j in 0..cols {
                let hot = j == cols / 2;
                assert_eq!(y[j], if hot { 1.0 } else { 0.0 }, "[{isa}] cols {cols}");
                assert_eq!(l[j], if hot { 0.0 } else { ninf }, "[{isa}] cols {cols}");
            }
            let mut d = vec![0.0; cols];
            let ce = cross_entropy::cross_entropy_with(
                isa,
                &x,
                cols,
                &[(cols / 2) as i32],
                -1,
                Some(&mut d),
            );
            assert_eq!(ce.loss_sum, 0.0, "[{isa}]");
            assert!(d.iter().all(|&v| v == 0.0), "[{isa}] {d:?}");
        }
        // Cross-entropy with huge logits stays finite; all-ignored rows give zeros.
        let mut d = vec![f32::NAN; 14];
        let ce = cross_entropy::cross_entropy_with(
            isa,
            &[x.as_slice(), x.as_slice()].concat(),
            7,
            &[1, -100],
            -100,
            Some(&mut d),
        );
        assert_eq!(ce.count, 1);
        assert!(
            (ce.loss_sum - (2e4 + z.ln())).abs() <= 1e-2,
            "[{isa}] {}",
            ce.loss_sum
        );
        assert!(d[7..].iter().all(|&v| v == 0.0) && d.iter().all(|v| v.is_finite()));
    }
}

#[test]
#[should_panic(expected = "label 9 at row 0 is outside 0..4")]
fn cross_entropy_rejects_bad_label() {
    let isa = *fast().last().unwrap_or(&Isa::Scalar);
    cross_entropy::cross_entropy_with(isa, &[0.0; 4], 4, &[9], -100, None);
}

proptest! {
    #![proptest_config(cfg(40))]
    #[test]
    fn softmax_random(rows in 1usize..4, cols in 1usize..600, seed in any::<u64>(), scale in prop_oneof![Just(1.0f32), Just(30.0)]) {
        let mut r = rng(seed);
        let x = randv(&mut r, rows * cols, -scale, scale);
        let dy = randv(&mut r, rows * cols, -1.0, 1.0);
        check_softmax(&x, &dy, cols);
        let labels: Vec<i32> = (0..rows).map(|_| r.random_range(-1..cols as i32)).collect();
        check_ce(&x, cols, &labels, -1);
    }
}

#[test]
fn cross_entropy_vocab_rows() {
    // BERT's vocabulary: 30522 classes.
    let mut r = rng(4);
    let cols = 30522;
    let x = randv(&mut r, 3 * cols, -8.0, 8.0);
    check_ce(&x, cols, &[17, -100, 30521], -100);
}

// ---------------------------------------------------------------------------------------------
// LayerNorm.

fn check_layernorm(x: &[f32], res: &[f32], dy: &[f32], cols: usize, eps: f32, seed: u64) {
    let mut r = rng(seed);
    let rows = x.len() / cols;
    let n = x.len();
    let c = cols as f64;
    let g = randv(&mut r, cols, 0.5, 1.5);
    let b = randv(&mut r, cols, -0.5, 0.5);
    let (mut y0, mut m0, mut s0) = (vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
    layer_norm::forward_with(Isa::Scalar, x, &g, &b, eps, &mut y0, &mut m0, &mut s0);
    let (mut dx0, mut dg0, mut db0) = (vec![0.0; n], vec![0.0; cols], vec![0.0; cols]);
    layer_norm::backward_with(
        Isa::Scalar,
        dy,
        x,
        &g,
        &m0,
        &s0,
        &mut dx0,
        &mut dg0,
        &mut db0,
    );
    let (mut sum0, mut ry0, mut rm0, mut rs0) =
        (vec![0.0; n], vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
    layer_norm::residual_forward_with(
        Isa::Scalar,
        x,
        res,
        &g,
        &b,
        eps,
        &mut sum0,
        &mut ry0,
        &mut rm0,
        &mut rs0,
    );
    for isa in fast() {
        let (mut y, mut m, mut s) = (vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
        layer_norm::forward_with(isa, x, &g, &b, eps, &mut y, &mut m, &mut s);
        // Row statistics in f32 over `cols` terms: mean within (cols + 4)·U·max|x|; the
        // variance's relative error (cols + 8)·U·(1 + μ²/var) (cancellation in x − μ₀), rstd half
        // of it plus 2 roundings.
        for k in 0..rows {
            let xr = &x[k * cols..(k + 1) * cols];
            let amax = xr.iter().fold(0.0f64, |a, &v| a.max(v.abs() as f64));
            let mu = m0[k] as f64;
            let var = 1.0 / (s0[k] as f64).powi(2);
            assert!(
                (m[k] as f64 - mu).abs() <= (c + 4.0) * U * amax + 1e-38,
                "layernorm mean [{isa}] row {k}: {} vs {mu}",
                m[k]
            );
            let rel = (c + 8.0) * U * (1.0 + mu * mu / var) + 4.0 * U;
            assert!(
                ((s[k] as f64 - s0[k] as f64) / s0[k] as f64).abs() <= rel,
                "layernorm rstd [{isa}] row {k}: {} vs {}",
                s[k],
                s0[k]
            );
        }
        let ytol = |i: usize| {
            let k = i / cols;
            let j = i % cols;
            let xh = ((x[i] as f64 - m0[k] as f64) * s0[k] as f64).abs();
            let amax = (m0[k] as f64).abs() * s0[k] as f64;
            // x̂ inherits rstd's relative error and the mean's absolute error times rstd.
            let rel = (c + 8.0) * U * (2.0 + m0[k] as f64 * m0[k] as f64 * (s0[k] as f64).powi(2));
            (g[j] as f64) * (xh * rel + (c + 4.0) * U * (amax + xh) + 2.0 * U * xh)
                + 2.0 * U * (y0[i] as f64).abs()
                + 1e-30
        };
        close("layernorm fwd", isa, &y, &y0, ytol);
        let (mut sum, mut ry, mut rm, mut rs) =
            (vec![0.0; n], vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
        layer_norm::residual_forward_with(
            isa, x, res, &g, &b, eps, &mut sum, &mut ry, &mut rm, &mut rs,
        );
        assert_eq!(sum, sum0, "residual sum [{isa}] (one f32 addition)");
        let (mut y2, mut m2, mut s2) = (vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
        layer_norm::forward_with(isa, &sum, &g, &b, eps, &mut y2, &mut m2, &mut s2);
        assert_eq!(
            (&ry, &rm, &rs),
            (&y2, &m2, &s2),
            "residual layernorm [{isa}] = add then layernorm"
        );
        // Backward from the reference statistics. dx = rs·(g − mean(g) − x̂·mean(g·x̂)): the two
        // row means carry (cols + 4)·U relative error on Σ|g|, Σ|g·x̂|.
        let (mut dx, mut dg, mut db) = (vec![0.0; n], vec![0.0; cols], vec![0.0; cols]);
        layer_norm::backward_with(isa, dy, x, &g, &m0, &s0, &mut dx, &mut dg, &mut db);
        let xhat = |i: usize| (x[i] as f64 - m0[i / cols] as f64) * s0[i / cols] as f64;
        close("layernorm dx", isa, &dx, &dx0, |i| {
            let k = i / cols;
            let span = k * cols..(k + 1) * cols;
            let ag: f64 = span
                .clone()
                .map(|q| (dy[q] * g[q % cols]).abs() as f64)
                .sum::<f64>()
                / c;
            let agx: f64 = span
                .map(|q| (dy[q] * g[q % cols]).abs() as f64 * xhat(q).abs())
                .sum::<f64>()
                / c;
            let gi = (dy[i] * g[i % cols]).abs() as f64;
            s0[k] as f64
                * ((c + 8.0) * U * (ag + agx * (1.0 + xhat(i).abs()))
                    + 6.0 * U * (gi + xhat(i).abs() * (gi + agx)))
                + 2.0 * U * (dx0[i] as f64).abs()
                + 1e-30
        });
        // dgamma, dbeta: sums over `rows` in f32: ≤ (rows + 4)·U·Σ|terms|.
        let rw = rows as f64;
        close("layernorm dgamma", isa, &dg, &dg0, |j| {
            let a: f64 = (0..rows)
                .map(|k| (dy[k * cols + j] as f64 * xhat(k * cols + j)).abs())
                .sum();
            (rw + 8.0) * U * a * 2.0 + 1e-30
        });
        close("layernorm dbeta", isa, &db, &db0, |j| {
            let a: f64 = (0..rows).map(|k| (dy[k * cols + j] as f64).abs()).sum();
            (rw + 4.0) * U * a + 1e-30
        });
    }
}

#[test]
fn layernorm_awkward_lengths() {
    let mut r = rng(5);
    for cols in AWKWARD {
        for rows in [1, 2, 5] {
            let n = rows * cols;
            let x = randv(&mut r, n, -3.0, 3.0);
            let res = randv(&mut r, n, -3.0, 3.0);
            let dy = randv(&mut r, n, -1.0, 1.0);
            check_layernorm(&x, &res, &dy, cols, 1e-12, cols as u64);
        }
    }
}

#[test]
fn layernorm_constant_rows_give_beta() {
    for isa in supported() {
        for cols in [1usize, 3, 16, 33, 768] {
            for v in [0.0f32, 1.0, 3.3, -1e4, 0.1] {
                let x = vec![v; 2 * cols];
                let g: Vec<f32> = (0..cols).map(|j| 1.0 + j as f32 * 0.01).collect();
                let b: Vec<f32> = (0..cols).map(|j| j as f32 * -0.02).collect();
                let (mut y, mut m, mut s) = (vec![f32::NAN; 2 * cols], vec![0.0; 2], vec![0.0; 2]);
                layer_norm::forward_with(isa, &x, &g, &b, 1e-12, &mut y, &mut m, &mut s);
                assert_eq!(m, vec![v; 2], "[{isa}] mean of a constant row");
                assert!(
                    s.iter().all(|r| r.is_finite() && *r > 0.0),
                    "[{isa}] rstd {s:?}"
                );
                assert_eq!(&y[..cols], &b[..], "[{isa}] cols {cols} value {v}");
                assert_eq!(&y[cols..], &b[..], "[{isa}] cols {cols} value {v}");
                let dy = vec![0.5; 2 * cols];
                let (mut dx, mut dg, mut db) =
                    (vec![0.0; 2 * cols], vec![0.0; cols], vec![0.0; cols]);
                layer_norm::backward_with(isa, &dy, &x, &g, &m, &s, &mut dx, &mut dg, &mut db);
                assert!(
                    dx.iter().chain(&dg).chain(&db).all(|v| v.is_finite()),
                    "[{isa}] NaN in backward"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(cfg(40))]
    #[test]
    fn layernorm_random(rows in 1usize..9, cols in 1usize..300, seed in any::<u64>(), offset in -5.0f32..5.0) {
        let mut r = rng(seed);
        let n = rows * cols;
        let x: Vec<f32> = randv(&mut r, n, -2.0, 2.0).into_iter().map(|v| v + offset).collect();
        let res = randv(&mut r, n, -1.0, 1.0);
        let dy = randv(&mut r, n, -1.0, 1.0);
        check_layernorm(&x, &res, &dy, cols, 1e-5, seed);
    }
}

// ---------------------------------------------------------------------------------------------
// AdamW.

fn check_adamw(n: usize, seed: u64, h: adamw::AdamW, t: u64) {
    let mut r = rng(seed);
    let p = randv(&mut r, n, -1.0, 1.0);
    let g = randv(&mut r, n, -1.0, 1.0);
    let m = randv(&mut r, n, -0.1, 0.1);
    let v = randv(&mut r, n, 0.0, 0.01);
    let (mut p0, mut m0, mut v0) = (p.clone(), m.clone(), v.clone());
    adamw::step_with(Isa::Scalar, &h, t, &mut p0, &g, &mut m0, &mut v0);
    for isa in fast() {
        let (mut p1, mut m1, mut v1) = (p.clone(), m.clone(), v.clone());
        adamw::step_with(isa, &h, t, &mut p1, &g, &mut m1, &mut v1);
        // m, v: two products and a sum, fused or not: ≤ 3 roundings of the larger term.
        close("adamw m", isa, &m1, &m0, |i| {
            3.0 * U * (m[i].abs() + g[i].abs()) as f64
        });
        close("adamw v", isa, &v1, &v0, |i| {
            4.0 * U * (v[i] + g[i] * g[i]) as f64
        });
        // p − lr·(m̂/(√v̂ + ε) + wd·p): the ratio carries ≤ 8 roundings (m, v, sqrt, add, div)
        // relative, the rest 3 of |p|.
        close("adamw param", isa, &p1, &p0, |i| {
            let vh = v0[i] as f64
                * if h.bias_correction {
                    1.0 / (1.0 - (h.beta2 as f64).powi(t as i32))
                } else {
                    1.0
                };
            let mh = m0[i] as f64
                * if h.bias_correction {
                    1.0 / (1.0 - (h.beta1 as f64).powi(t as i32))
                } else {
                    1.0
                };
            let ratio = (mh / (vh.sqrt() + h.eps as f64)).abs();
            h.lr as f64 * (12.0 * U * ratio + 3.0 * U * (h.weight_decay * p[i]).abs() as f64)
                + 3.0 * U * p[i].abs() as f64
        });
    }
}

#[test]
fn adamw_awkward_lengths() {
    for (k, n) in AWKWARD.into_iter().enumerate() {
        for bc in [false, true] {
            let h = adamw::AdamW {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-6,
                weight_decay: if k % 2 == 0 { 0.01 } else { 0.0 },
                bias_correction: bc,
            };
            check_adamw(n, k as u64, h, 1 + 7 * k as u64);
        }
    }
}

proptest! {
    #![proptest_config(cfg(48))]
    #[test]
    fn adamw_random(n in 1usize..1000, seed in any::<u64>(), t in 1u64..5000, bc in any::<bool>(), wd in 0.0f32..0.1) {
        let h = adamw::AdamW { lr: 2e-4, beta1: 0.9, beta2: 0.98, eps: 1e-8, weight_decay: wd, bias_correction: bc };
        check_adamw(n, seed, h, t);
    }
}

// ---------------------------------------------------------------------------------------------
// Conversions: bit-for-bit against `half`.

fn check_convert(bits: &[u32]) {
    let x: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
    let want_b: Vec<u16> = x.iter().map(|&v| bf16::from_f32(v).to_bits()).collect();
    let want_h: Vec<u16> = x.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    for isa in supported() {
        let mut b = vec![bf16::ZERO; x.len()];
        convert::f32_to_bf16_with(isa, &x, &mut b);
        let got: Vec<u16> = b.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want_b, "f32_to_bf16 [{isa}]");
        let mut h = vec![f16::ZERO; x.len()];
        convert::f32_to_f16_with(isa, &x, &mut h);
        let got: Vec<u16> = h.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want_h, "f32_to_f16 [{isa}]");
    }
}

#[test]
fn conversions_all_16bit_patterns_to_f32() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let b: Vec<bf16> = all.iter().map(|&v| bf16::from_bits(v)).collect();
    let h: Vec<f16> = all.iter().map(|&v| f16::from_bits(v)).collect();
    let want_b: Vec<u32> = b.iter().map(|v| v.to_f32().to_bits()).collect();
    let want_h: Vec<u32> = h.iter().map(|v| v.to_f32().to_bits()).collect();
    for isa in supported() {
        for len in [all.len(), 33, 7] {
            let mut y = vec![0.0f32; len];
            convert::bf16_to_f32_with(isa, &b[..len], &mut y);
            let got: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want_b[..len], "bf16_to_f32 [{isa}]");
            convert::f16_to_f32_with(isa, &h[..len], &mut y);
            let got: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want_h[..len], "f16_to_f32 [{isa}]");
        }
    }
}

#[test]
fn conversions_special_values() {
    let mut bits = vec![
        0,
        0x8000_0000,
        0x7F80_0000,
        0xFF80_0000,
        0x7FC0_0000,
        0x7F80_0001,
        0xFF80_0001,
        0x7FFF_FFFF,
        0x0000_0001,
        0x8000_0001,
        0x007F_FFFF,
        0x7F7F_FFFF,
        0xFF7F_FFFF,
        // bf16 ties: exactly half-way, even and odd
        0x3F80_8000,
        0x3F81_8000,
        0x3F80_8001,
        0x3F80_7FFF,
        // f16 overflow edge, subnormals, ties
        0x477F_F000,
        0x477F_EFFF,
        0x4780_0000,
        0x3380_0000,
        0x3300_0000,
        0x3880_1000,
    ];
    for n in AWKWARD {
        bits.truncate(bits.len().min(23));
        let mut v = bits.clone();
        v.resize(n.max(bits.len()), 0x3F80_0000);
        check_convert(&v);
    }
}

proptest! {
    #![proptest_config(cfg(64))]
    #[test]
    fn conversions_random_bits(bits in proptest::collection::vec(any::<u32>(), 1..300)) {
        check_convert(&bits);
    }
}

// ---------------------------------------------------------------------------------------------
// Threading: 1 and 2 threads give identical bits.

fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
}

/// Runs `f` in a 1-thread and a 2-thread pool and compares the bits of what it returns.
fn same_bits(what: &str, f: impl Fn() -> Vec<f32> + Sync + Send) {
    let a = pool(1).install(&f);
    let b = pool(2).install(&f);
    let ab: Vec<u32> = a.iter().map(|v| v.to_bits()).collect();
    let bb: Vec<u32> = b.iter().map(|v| v.to_bits()).collect();
    assert!(ab == bb, "{what}: 1 and 2 threads differ");
}

#[test]
fn one_and_two_threads_bit_identical() {
    let mut r = rng(6);
    // Above the parallel threshold (2¹⁷ elements) and not a multiple of the chunk size.
    let n = (1 << 18) + 77;
    let x = randv(&mut r, n, -6.0, 6.0);
    let x2 = randv(&mut r, n, -6.0, 6.0);
    for isa in supported() {
        for kind in [GeluKind::Erf, GeluKind::Tanh] {
            same_bits(&format!("gelu fwd {isa}"), || {
                let mut y = vec![0.0; n];
                gelu::forward_with(isa, kind, &x, &mut y);
                y
            });
            same_bits(&format!("gelu bwd {isa}"), || {
                let mut y = vec![0.0; n];
                gelu::backward_with(isa, kind, &x, &x2, &mut y);
                y
            });
        }
        let cols = 769;
        let m = (n / cols) * cols;
        let (xs, dys) = (&x[..m], &x2[..m]);
        let rows = m / cols;
        let g = randv(&mut r, cols, 0.5, 1.5);
        let b = randv(&mut r, cols, -0.5, 0.5);
        same_bits(&format!("bias gelu {isa}"), || {
            let (mut p, mut y) = (vec![0.0; m], vec![0.0; m]);
            gelu::bias_forward_with(isa, GeluKind::Erf, xs, &b, &mut p, &mut y);
            y
        });
        same_bits(&format!("layernorm {isa}"), || {
            let (mut y, mut mu, mut rs) = (vec![0.0; m], vec![0.0; rows], vec![0.0; rows]);
            layer_norm::forward_with(isa, xs, &g, &b, 1e-12, &mut y, &mut mu, &mut rs);
            let (mut dx, mut dg, mut db) = (vec![0.0; m], vec![0.0; cols], vec![0.0; cols]);
            layer_norm::backward_with(isa, dys, xs, &g, &mu, &rs, &mut dx, &mut dg, &mut db);
            [y, mu, rs, dx, dg, db].concat()
        });
        same_bits(&format!("residual layernorm {isa}"), || {
            let (mut s, mut y, mut mu, mut rs) =
                (vec![0.0; m], vec![0.0; m], vec![0.0; rows], vec![0.0; rows]);
            layer_norm::residual_forward_with(
                isa, xs, dys, &g, &b, 1e-12, &mut s, &mut y, &mut mu, &mut rs,
            );
            [s, y, mu, rs].concat()
        });
        same_bits(&format!("softmax {isa}"), || {
            let (mut y, mut l, mut d1, mut d2) =
                (vec![0.0; m], vec![0.0; m], vec![0.0; m], vec![0.0; m]);
            softmax::softmax_rows_with(isa, xs, cols, &mut y);
            softmax::log_softmax_rows_with(isa, xs, cols, &mut l);
            softmax::softmax_backward_rows_with(isa, &y, dys, cols, &mut d1);
            softmax::log_softmax_backward_rows_with(isa, &l, dys, cols, &mut d2);
            [y, l, d1, d2].concat()
        });
        same_bits(&format!("cross entropy {isa}"), || {
            let labels: Vec<i32> = (0..rows)
                .map(|k| {
                    if k % 7 == 3 {
                        -100
                    } else {
                        (k * 31 % cols) as i32
                    }
                })
                .collect();
            let mut d = vec![0.0; m];
            let ce = cross_entropy::cross_entropy_with(isa, xs, cols, &labels, -100, Some(&mut d));
            d.push(ce.loss_sum as f32);
            d.push((ce.loss_sum - ce.loss_sum as f32 as f64) as f32);
            d
        });
        same_bits(&format!("adamw {isa}"), || {
            let h = adamw::AdamW {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-6,
                weight_decay: 0.01,
                bias_correction: true,
            };
            let (mut p, mut mm, mut vv) = (x.clone(), vec![0.01; n], vec![0.001; n]);
            adamw::step_with(isa, &h, 3, &mut p, &x2, &mut mm, &mut vv);
            [p, mm, vv].concat()
        });
        same_bits(&format!("convert {isa}"), || {
            let mut b = vec![bf16::ZERO; n];
            convert::f32_to_bf16_with(isa, &x, &mut b);
            let mut h = vec![f16::ZERO; n];
            convert::f32_to_f16_with(isa, &x, &mut h);
            b.iter()
                .map(|v| v.to_f32())
                .chain(h.iter().map(|v| v.to_f32()))
                .collect()
        });
    }
}

#[test]
#[should_panic(expected = "is not supported on this CPU")]
fn unsupported_path_is_a_clear_error() {
    // x86_64 lacks NEON and aarch64 lacks AVX-512, so some path is always missing.
    let missing = Isa::ALL
        .into_iter()
        .find(|i| !i.is_supported())
        .expect("every build target lacks at least one path");
    let mut y = [0.0f32; 4];
    gelu::forward_with(missing, GeluKind::Erf, &[1.0; 4], &mut y);
}

// ---------------------------------------------------------------------------------------------
// Streaming stores (calls moving at least `simd::STREAM_MIN_BYTES`, see `simd::stream_output`).

/// The fewest elements `n` for which a call reading and writing `n` each streams its output.
fn streamed_len() -> usize {
    let n = simd::STREAM_MIN_BYTES / 8;
    assert!(simd::stream_output(n, n) && !simd::stream_output(n - 1, n - 1));
    n
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn gelu_streamed_outputs_match_reference() {
    // Above the streaming threshold, odd length; outputs start at every offset from a 64-byte
    // line (through the slice offset) so the aligned body and the peeled head are both run.
    let mut r = rng(11);
    let n = streamed_len() + 37;
    // The chunked calls below stay under the threshold (they write with ordinary stores).
    assert!(!simd::stream_output(2000, 1000));
    let x = randv(&mut r, n, -9.0, 9.0);
    let dy = randv(&mut r, n, -2.0, 2.0);
    check_gelu(GeluKind::Erf, &x, &dy);
    for isa in fast() {
        for off in [1usize, 3, 8] {
            let mut buf = vec![0.0f32; n + off];
            gelu::forward_with(isa, GeluKind::Erf, &x, &mut buf[off..]);
            // Small calls never stream; the same vector code must give the same bits.
            let mut small = vec![0.0f32; n];
            for (xc, yc) in x.chunks(1000).zip(small.chunks_mut(1000)) {
                gelu::forward_with(isa, GeluKind::Erf, xc, yc);
            }
            assert!(
                bits(&buf[off..]) == bits(&small),
                "gelu fwd streamed [{isa}] off {off}"
            );
            gelu::backward_with(isa, GeluKind::Tanh, &x, &dy, &mut buf[off..]);
            for ((xc, dc), yc) in x
                .chunks(1000)
                .zip(dy.chunks(1000))
                .zip(small.chunks_mut(1000))
            {
                gelu::backward_with(isa, GeluKind::Tanh, xc, dc, yc);
            }
            assert!(
                bits(&buf[off..]) == bits(&small),
                "gelu bwd streamed [{isa}] off {off}"
            );
        }
    }
}

#[test]
fn layernorm_streamed_outputs_match_small_calls() {
    // Rows of 769 (not a multiple of any vector width, so each row starts at another alignment)
    // enough to pass the streaming threshold; each row must get the same bits as when it is
    // normalised alone (a small call never streams; small calls are checked against the scalar
    // reference in `check_layernorm`).
    let mut r = rng(12);
    let cols = 769;
    let rows = streamed_len() / cols + 3;
    let n = rows * cols;
    let x = randv(&mut r, n, -3.0, 3.0);
    let dy = randv(&mut r, n, -1.0, 1.0);
    let g = randv(&mut r, cols, 0.5, 1.5);
    let b = randv(&mut r, cols, -0.5, 0.5);
    for isa in fast() {
        let (mut y, mut m, mut s) = (vec![0.0; n], vec![0.0; rows], vec![0.0; rows]);
        layer_norm::forward_with(isa, &x, &g, &b, 1e-12, &mut y, &mut m, &mut s);
        let (mut dx, mut dg, mut db) = (vec![0.0; n], vec![0.0; cols], vec![0.0; cols]);
        layer_norm::backward_with(isa, &dy, &x, &g, &m, &s, &mut dx, &mut dg, &mut db);
        for k in [0, 1, 2, rows / 2, rows - 1] {
            let span = k * cols..(k + 1) * cols;
            let (mut y1, mut m1, mut s1) = (vec![0.0; cols], [0.0], [0.0]);
            layer_norm::forward_with(
                isa,
                &x[span.clone()],
                &g,
                &b,
                1e-12,
                &mut y1,
                &mut m1,
                &mut s1,
            );
            assert!(
                bits(&y[span.clone()]) == bits(&y1),
                "layernorm y streamed [{isa}] row {k}"
            );
            assert_eq!(m[k].to_bits(), m1[0].to_bits());
            assert_eq!(s[k].to_bits(), s1[0].to_bits());
            let (mut dx1, mut dg1, mut db1) = (vec![0.0; cols], vec![0.0; cols], vec![0.0; cols]);
            layer_norm::backward_with(
                isa,
                &dy[span.clone()],
                &x[span.clone()],
                &g,
                &m1,
                &s1,
                &mut dx1,
                &mut dg1,
                &mut db1,
            );
            assert!(
                bits(&dx[span]) == bits(&dx1),
                "layernorm dx streamed [{isa}] row {k}"
            );
        }
    }
}

#[test]
fn cross_entropy_large_gradient_matches_reference() {
    // Rows of BERT's vocabulary just above the streaming threshold, so the gradient is written
    // with streaming stores; every seventh row ignored.
    let mut r = rng(13);
    let cols = 30522;
    let rows = streamed_len() / cols + 2;
    let x = randv(&mut r, rows * cols, -8.0, 8.0);
    let labels: Vec<i32> = (0..rows as i32)
        .map(|k| {
            if k % 7 == 3 {
                -100
            } else {
                (k * 997) % cols as i32
            }
        })
        .collect();
    check_ce(&x, cols, &labels, -100);
}

#[test]
fn gelu_erf_phi_dense_grid() {
    // gelu(x)/x is the vector Φ (the table form on AVX-512, the logistic form elsewhere), both
    // documented to within 1e-7 absolute of Φ (the erf-based bound of the module doc halved);
    // plus the rounding of the product x·Φ (≤ U·|gelu|) and of the reference to f32.
    let x: Vec<f32> = (-180_000..=180_000).map(|i| i as f32 * 5e-5).collect();
    for isa in fast() {
        let mut y = vec![0.0; x.len()];
        gelu::forward_with(isa, GeluKind::Erf, &x, &mut y);
        let mut worst = (0.0f64, 0.0f32);
        for (&xi, &yi) in x.iter().zip(&y) {
            let v = xi as f64;
            let want = v * 0.5 * libm::erfc(-v * std::f64::consts::FRAC_1_SQRT_2);
            let e = (yi as f64 - want).abs();
            let tol = 1e-7 * v.abs() + 2.0 * U * want.abs() + 1e-37;
            assert!(
                e <= tol,
                "gelu [{isa}] at {xi}: {yi:e} vs {want:e} (tol {tol:e})"
            );
            if v != 0.0 && e / v.abs() > worst.0 {
                worst = (e / v.abs(), xi);
            }
        }
        eprintln!(
            "gelu [{isa}]: max |error|/|x| {:.3e} at {}",
            worst.0, worst.1
        );
    }
}
