//! Tight checks of each path's inner loops against plain f64 loops (the end-to-end tests in
//! `kernels/tests/attention.rs` use a normwise tolerance for whole attention calls).

use super::dropout::splitmix64;
use super::prims::{
    dropout_scalar, grads_row_scalar, probs_scalar, scale_mask_max_scalar, Acc, MatMul, Prims,
    Scalar,
};
use super::vector::Vector;
use super::Drop;
use crate::dispatch::Isa;
use crate::simd::{dispatch, Kernel, Simd};

/// Runs `f` on every path this CPU supports: the vector ones with a `Vector` token made
/// inside `dispatch` (called through `dyn`, so slow but the same arithmetic).
fn each_path(mut f: impl FnMut(Isa, &dyn Prims)) {
    struct WithPrims<'f>(&'f mut dyn FnMut(&dyn Prims));
    impl Kernel for WithPrims<'_> {
        type Out = ();
        unsafe fn run<S: Simd>(self) {
            // SAFETY: `run`'s contract: the CPU has `S`'s features.
            (self.0)(&unsafe { Vector::<S>::new() })
        }
    }
    f(Isa::Scalar, &Scalar);
    for isa in crate::dispatch::supported() {
        if isa != Isa::Scalar {
            let mut g = |p: &dyn Prims| f(isa, p);
            assert!(dispatch(isa, WithPrims(&mut g)).is_ok());
        }
    }
}

fn data(n: usize, seed: u64) -> Vec<f32> {
    (0..n)
        .map(|i| (splitmix64(seed ^ i as u64) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
        .collect()
}

#[test]
fn vector_exp_is_within_a_few_ulp() {
    // Inputs from −87 to 0 (what the kernels feed it) plus −inf; the vector exp is a
    // degree-6 polynomial after exact-ish range reduction: ≤ 2 ulp of the f32 result, +1 for
    // the rounding of x itself to f32 before the f64 exp it is compared with (|x| ≤ 87 would
    // make that 87·u relative, so inputs are f32 values and the f64 exp uses them exactly).
    let mut xs: Vec<f32> = (0..4001).map(|i| -87.0 * i as f32 / 4000.0).collect();
    xs.push(f32::NEG_INFINITY);
    xs.push(-100.0);
    each_path(|isa, p| {
        let mut row = xs.clone();
        let sum = p.exp_sum(&mut row, 0.0);
        let mut want_sum = 0.0f64;
        for (&x, &y) in xs.iter().zip(&row) {
            let want = (x as f64).exp();
            want_sum += want;
            if x < -87.3 {
                assert!(y.abs() < 1.2e-38, "{isa}: exp({x}) = {y}");
                continue;
            }
            let rel = ((y as f64) - want).abs() / want;
            assert!(
                rel <= 3.0 * f32::EPSILON as f64,
                "{isa}: exp({x}) = {y}, want {want}"
            );
        }
        // sum of n = 4003 terms in f32: ≤ n·u relative
        let tol = 4003.0 * f32::EPSILON as f64 * want_sum;
        assert!(
            ((sum as f64) - want_sum).abs() <= tol,
            "{isa}: sum {sum} vs {want_sum}"
        );
    });
}

#[test]
fn matmul_matches_f64_on_ragged_sizes() {
    for &(m, n, k) in &[
        (1, 1, 1),
        (3, 17, 5),
        (64, 64, 64),
        (7, 33, 64),
        (65, 31, 3),
        (4, 80, 9),
    ] {
        for trans in [false, true] {
            let (a_rs, a_cs) = if trans { (1, m) } else { (k, 1) };
            let a = data(m * k, 1);
            let b = data(k * (n + 2), 2);
            let c0 = data(m * (n + 3), 3);
            let ldb = n + 2;
            let ldc = n + 3;
            for acc in [Acc::Add, Acc::Set] {
                each_path(|isa, p| {
                    let mut c = c0.clone();
                    let ab = MatMul::new((m, n, k), (&a, a_rs, a_cs), (&b, ldb));
                    p.matmul(acc, ab, &mut c, ldc);
                    for i in 0..m {
                        for j in 0..ldc {
                            let got = c[i * ldc + j] as f64;
                            if j >= n {
                                assert_eq!(got, c0[i * ldc + j] as f64, "{isa}: wrote past n");
                                continue;
                            }
                            let mut want = match acc {
                                Acc::Add => c0[i * ldc + j] as f64,
                                Acc::Set => 0.0,
                            };
                            let mut mag = want.abs();
                            for q in 0..k {
                                let t = a[i * a_rs + q * a_cs] as f64 * b[q * ldb + j] as f64;
                                want += t;
                                mag += t.abs();
                            }
                            // k+1 roundings of a sum of magnitude ≤ mag
                            let tol = (k as f64 + 1.0) * f32::EPSILON as f64 / 2.0 * mag;
                            assert!(
                                (got - want).abs() <= tol,
                                "{isa} {acc:?} {m}x{n}x{k}: {got} vs {want}"
                            );
                        }
                    }
                });
            }
        }
    }
}

#[test]
fn row_ops_match_scalar() {
    let drop = Drop::new(17, 0.3);
    for n in [1usize, 7, 16, 17, 40, 64] {
        let x = data(n, 9);
        let mask = data(n, 10);
        for valid in [0, n / 2, n] {
            each_path(|isa, p| {
                let mut a = x.clone();
                let mut b = x.clone();
                let ma = p.scale_mask_max(&mut a, 0.3, Some(&mask), valid);
                let mb = scale_mask_max_scalar(&mut b, 0.3, Some(&mask), valid);
                // the scalar loop fuses the multiply-add; `wide` without FMA rounds the
                // product first: one extra rounding of |0.3·x| ≤ 0.3, which can move the
                // rounded sum z by one more ulp: ≤ u·0.3 + 2u·|z|
                let u = f32::EPSILON / 2.0;
                let close = |y: f32, z: f32| y == z || (y - z).abs() <= u * (0.3 + 2.0 * z.abs());
                assert!(close(ma, mb), "{isa} max {ma} vs {mb}");
                for (j, (&y, &z)) in a.iter().zip(&b).enumerate() {
                    assert!(close(y, z), "{isa} scale_mask at {j}: {y} vs {z}");
                }
                let mut a = x.clone();
                let mut b = x.clone();
                p.probs(&mut a, 0.3, Some(&mask), 0.5, valid);
                probs_scalar(&mut b, 0.3, Some(&mask), 0.5, valid);
                for (y, z) in a.iter().zip(&b) {
                    assert!((y - z).abs() <= 3.0 * f32::EPSILON * z.abs(), "{isa} probs");
                }
            });
        }
        // dropout: exactly the scalar mask, for low halves near 2^32 too
        for flat0 in [0u64, 12345, (1 << 32) - 5, (3 << 32) + 77] {
            each_path(|isa, p| {
                let mut a = x.clone();
                let mut b = x.clone();
                p.dropout(&mut a, &drop, flat0);
                dropout_scalar(&mut b, &drop, flat0);
                assert_eq!(a, b, "{isa} dropout at {flat0}");
                // fused exp + dropout: the same zeros, values within the exp tolerance
                let mut a = x.clone();
                let mut b = x.clone();
                let sa = p.exp_sum_dropout(&mut a, 0.5, &drop, flat0);
                let sb = Scalar.exp_sum(&mut b, 0.5);
                dropout_scalar(&mut b, &drop, flat0);
                let tol = 3.0 * f32::EPSILON;
                assert!(
                    (sa - sb).abs() <= tol * n as f32 * sb,
                    "{isa} sum {sa} vs {sb}"
                );
                for (y, z) in a.iter().zip(&b) {
                    assert!(
                        (y - z).abs() <= tol * z.abs(),
                        "{isa} exp dropout {y} vs {z}"
                    );
                    assert_eq!(*y == 0.0, *z == 0.0, "{isa} exp dropout mask");
                }
                for dr in [None, Some((&drop, flat0))] {
                    let (mut pa, mut pb) = (x.clone(), x.clone());
                    let (mut ga, mut gb) = (mask.clone(), mask.clone());
                    p.grads_row(&mut pa, &mut ga, 0.25, dr);
                    grads_row_scalar(&mut pb, &mut gb, 0.25, dr);
                    assert_eq!(pa, pb, "{isa} grads_row Pd at {flat0}");
                    // dS = P·(g·inv − D): a fused multiply-add may skip the rounding of
                    // g·inv (≤ u·|g·inv| ≤ 1.5u, times |P| ≤ 1), plus one ulp of dS
                    for (y, z) in ga.iter().zip(&gb) {
                        let tol = f32::EPSILON * (1.0 + z.abs());
                        assert!((y - z).abs() <= tol, "{isa} grads_row dS: {y} vs {z}");
                    }
                }
            });
        }
    }
}
