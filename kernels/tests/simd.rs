//! The shared vector layer on every path: the accuracy of the vector `exp`, `erf` and `Φ` (the
//! bounds the kernel tests derive their tolerances from), and `stream_copy`.

mod common;

use cloze_kernels::dispatch::Isa;
use cloze_kernels::simd::{self, MathFn};
use common::{for_each_vector_isa, Rng, ERF_ABS, EXP_REL};

/// `start`, then `steps` more points `step` apart.
fn grid(start: f32, step: f32, steps: usize) -> Vec<f32> {
    (0..=steps).map(|i| start + i as f32 * step).collect()
}

/// `f` of each of `x` on the path `isa`.
fn math(isa: Isa, f: MathFn, x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    simd::math_with(isa, f, x, &mut y);
    y
}

#[test]
fn erf_accuracy() {
    // Dense grid over [-7, 7] (erf is ±1 in f32 beyond) plus random values of every magnitude.
    let mut x = grid(-7.0, 5e-5, 280_000);
    let mut r = Rng::new(1);
    x.extend((0..20_000).map(|_| r.uniform(-1.0, 1.0) * 10f32.powi(r.int(-6, 2) as i32)));
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
    for_each_vector_isa(|isa| {
        let y = math(isa, MathFn::Erf, &x);
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
            worst.0 <= ERF_ABS,
            "erf [{isa}] max abs error {:e} at {}",
            worst.0,
            worst.1
        );
        let nan = math(isa, MathFn::Erf, &[f32::NAN])[0];
        assert!(nan.is_nan(), "erf(NaN) [{isa}] = {nan}");
    });
}

#[test]
fn phi_lower_tail_keeps_relative_accuracy() {
    // Φ(x) = ½erfc(−x/√2) for x in [−8, 0]: relative error ≤ 2e-5 (the g-fit error 2e-8 plus the
    // rounding of z² ≤ 32, which shifts exp's argument by ≤ 32·U ≈ 2e-6, times a few ulp).
    let x = grid(-8.0, 5e-4, 16_000);
    for_each_vector_isa(|isa| {
        for (&xi, &yi) in x.iter().zip(&math(isa, MathFn::Phi, &x)) {
            let want = 0.5 * libm::erfc(-(xi as f64) * std::f64::consts::FRAC_1_SQRT_2);
            let rel = (yi as f64 - want).abs() / want;
            assert!(rel <= 2e-5, "phi [{isa}] at {xi}: {yi:e} vs {want:e}");
        }
    });
}

#[test]
fn exp_accuracy() {
    // Relative error ≤ 3 ulp (6·U) on normal results; +∞ above 88.38; below −87.34 (subnormal
    // results) at most f32's smallest normal, 0 below −104; NaN kept.
    let x = grid(-87.0, 8.75e-4, 200_000);
    for_each_vector_isa(|isa| {
        for (&xi, &yi) in x.iter().zip(&math(isa, MathFn::Exp, &x)) {
            let w = (xi as f64).exp();
            assert!(
                (yi as f64 - w).abs() <= EXP_REL * w,
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
        let y = math(isa, MathFn::Exp, &sp);
        assert_eq!(y[0], f32::INFINITY, "[{isa}]");
        assert_eq!(y[1], 0.0, "[{isa}]");
        assert!(y[2].is_nan(), "[{isa}]");
        assert_eq!(y[3], f32::INFINITY, "[{isa}]");
        assert!((0.0..f32::MIN_POSITIVE).contains(&y[4]), "[{isa}] {}", y[4]);
        assert_eq!(y[5], 1.0, "[{isa}]");
        assert_eq!(y[6], 0.0, "[{isa}]");
        assert_eq!(y[7], f32::INFINITY, "[{isa}]");
    });
}

#[test]
fn stream_copy_copies_every_length_and_alignment() {
    // Lengths around the vector widths and every start offset of the destination within a
    // 64-byte line (head, aligned body and tail all occur); NaN payloads must survive.
    let src: Vec<f32> = (0..300)
        .map(|i| i as f32 * 1.25 - 150.5)
        .chain([f32::from_bits(0x7fc0_1234), f32::NEG_INFINITY])
        .collect();
    for n in [0, 1, 7, 15, 16, 17, 33, 64, 129, 302] {
        for off in 0..16 {
            let mut buf = vec![0.0f32; n + off];
            let s = &src[src.len() - n..];
            simd::stream_copy(s, &mut buf[off..]);
            assert!(
                common::bits(s) == common::bits(&buf[off..]),
                "stream_copy: {n} elements at offset {off}"
            );
        }
    }
}
