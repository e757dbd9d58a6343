//! Every GEMM path this CPU supports against the scalar reference (`gemm::reference`).
//!
//! Tolerance: for each element the reference sums k products in order and the fast paths sum
//! them in blocks of KC with FMAs, then combine `alpha·acc + beta·c`. Each computed value is
//! within `γ·S` of the exact one, with `S = |alpha|·Σ_p |a_ip|·|b_pj| + |beta|·|c_ij|` and
//! `γ ≤ (k + ⌈k/KC⌉ + 2)·ε ≤ 2(k + 2)·ε`, so two paths differ by at most `4(k + 2)·ε·S`
//! (ε = f32::EPSILON). A tiny absolute term covers S = 0.

mod common;

use cloze_kernels::dispatch::Isa;
use cloze_kernels::gemm::{reference, Gemm, Operand};
use common::{best_isa, bits, cases, for_each_isa, pool, same_bits_across_threads, Rng, AWKWARD};
use half::bf16;
use proptest::prelude::*;

/// Every combination of (A transposed, B transposed).
const TRANSPOSES: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

/// A copy of `c0` updated by `run` inside a pool of `threads` threads.
fn on_threads(threads: usize, c0: &[f32], run: impl Fn(&mut [f32]) + Sync) -> Vec<f32> {
    pool(threads).install(|| {
        let mut c = c0.to_vec();
        run(&mut c);
        c
    })
}

/// `len` values uniform in [-1, 1) from the seeded generator of the harness.
fn rand_vec(len: usize, seed: u64) -> Vec<f32> {
    Rng::new(seed).vec(len, -1.0, 1.0)
}

fn at(x: &[f32], trans: bool, ld: usize, r: usize, c: usize) -> f32 {
    if trans {
        x[c * ld + r]
    } else {
        x[r * ld + c]
    }
}

/// Asserts `got` matches `want` within the documented bound on every element of the m×n C,
/// and that C's padding columns (ldc > n) still hold `c0`.
fn assert_gemm_close(
    g: &Gemm,
    a: &[f32],
    b: &[f32],
    c0: &[f32],
    got: &[f32],
    want: &[f32],
    what: &str,
) {
    let eps = f32::EPSILON as f64;
    for i in 0..g.m {
        for j in 0..g.n {
            let mut s = 0.0f64;
            for p in 0..g.k {
                let av = at(a, g.trans_a, g.lda, i, p) as f64;
                let bv = at(b, g.trans_b, g.ldb, p, j) as f64;
                s += (av * bv).abs();
            }
            let idx = i * g.ldc + j;
            let beta_term = if g.beta == 0.0 {
                0.0
            } else {
                (g.beta as f64 * c0[idx] as f64).abs()
            };
            let bound =
                4.0 * (g.k as f64 + 2.0) * eps * ((g.alpha as f64).abs() * s + beta_term) + 1e-30;
            let err = (got[idx] as f64 - want[idx] as f64).abs();
            assert!(
                err <= bound,
                "{what}: {g:?} C[{i},{j}] = {} vs reference {} (err {err:e} > bound {bound:e})",
                got[idx],
                want[idx]
            );
        }
        for j in g.n..g.ldc.min(got.len().saturating_sub(i * g.ldc)) {
            let idx = i * g.ldc + j;
            assert_eq!(
                got[idx].to_bits(),
                c0[idx].to_bits(),
                "{what}: {g:?} wrote padding C[{i},{j}]"
            );
        }
    }
}

/// Runs `g` on every supported path and compares with the reference.
fn check_all_paths(g: &Gemm, seed: u64) {
    let (la, lb, lc) = g.min_lens();
    let a = rand_vec(la, seed);
    let b = rand_vec(lb, seed + 1);
    let c0 = rand_vec(lc, seed + 2);
    let mut want = c0.clone();
    reference::gemm(g, &a, &b, &mut want);
    for_each_isa(|isa| {
        let mut got = c0.clone();
        g.run_with(isa, &a, &b, &mut got);
        assert_gemm_close(g, &a, &b, &c0, &got, &want, isa.name());
    });
}

#[test]
fn awkward_sizes_all_transposes_all_paths() {
    let mut seed = 1;
    for &m in &AWKWARD {
        for &n in &AWKWARD {
            for &k in &AWKWARD {
                // Keep the scalar reference cheap; the largest sizes are covered below.
                if m * n * k > 600_000 {
                    continue;
                }
                for (ta, tb) in TRANSPOSES {
                    let g = Gemm::new(m, n, k).transposes(ta, tb);
                    check_all_paths(&g, seed);
                    seed += 3;
                }
            }
        }
    }
}

#[test]
fn large_awkward_shapes_cross_every_block_boundary() {
    // k > 256 crosses a k block; m > 192 crosses an A block; big enough to run threaded.
    for (m, n, k) in [(257, 129, 257), (129, 257, 513), (300, 67, 260)] {
        for (ta, tb) in TRANSPOSES {
            let g = Gemm::new(m, n, k).transposes(ta, tb).alpha(0.75).beta(-0.5);
            check_all_paths(&g, (m * n + k) as u64);
        }
    }
}

#[test]
fn beta_zero_overwrites_nan() {
    for_each_isa(|isa| {
        for (m, n, k) in [(5, 7, 3), (12, 32, 9), (33, 65, 300)] {
            let g = Gemm::new(m, n, k);
            let a = rand_vec(m * k, 7);
            let b = rand_vec(k * n, 8);
            let mut c = vec![f32::NAN; m * n];
            g.run_with(isa, &a, &b, &mut c);
            let mut want = vec![0.0; m * n];
            reference::gemm(&g, &a, &b, &mut want);
            assert_gemm_close(&g, &a, &b, &want, &c, &want, isa.name());
        }
    });
}

#[test]
fn k_zero_scales_c_by_beta() {
    for_each_isa(|isa| {
        let mut c = vec![2.0f32; 12];
        Gemm::new(3, 4, 0)
            .strides(1, 4, 4)
            .beta(0.5)
            .run_with(isa, &[], &[], &mut c);
        assert!(c.iter().all(|&x| x == 1.0), "{isa}: {c:?}");
        let mut c = vec![f32::NAN; 12];
        Gemm::new(3, 4, 0)
            .strides(1, 4, 4)
            .run_with(isa, &[], &[], &mut c);
        assert!(c.iter().all(|&x| x == 0.0), "{isa}: {c:?}");
    });
}

proptest! {
    #![proptest_config(cases(48))]

    #[test]
    fn random_shapes_strides_alpha_beta(
        m in 1usize..70, n in 1usize..70, k in 1usize..300,
        ta in any::<bool>(), tb in any::<bool>(),
        pad in (0usize..5, 0usize..5, 0usize..5),
        alpha in prop::sample::select(vec![1.0f32, -0.5, 2.25]),
        beta in prop::sample::select(vec![0.0f32, 1.0, 0.7, -1.5]),
        seed in 0u64..1000,
    ) {
        let g = Gemm::new(m, n, k).transposes(ta, tb).alpha(alpha).beta(beta);
        let g = g.strides(g.lda + pad.0, g.ldb + pad.1, g.ldc + pad.2);
        check_all_paths(&g, seed);
    }

    #[test]
    fn batched_matches_reference_per_item(
        batch in 1usize..7, m in 1usize..40, n in 1usize..40, k in 1usize..70,
        ta in any::<bool>(), tb in any::<bool>(), gap in 0usize..9,
        beta in prop::sample::select(vec![0.0f32, 1.0]),
        seed in 0u64..1000,
    ) {
        let g = Gemm::new(m, n, k).transposes(ta, tb).beta(beta);
        let (la, lb, lc) = g.min_lens();
        let (sa, sb, sc) = (la + gap, lb + 2 * gap, lc + gap);
        let a = rand_vec((batch - 1) * sa + la, seed);
        let b = rand_vec((batch - 1) * sb + lb, seed + 1);
        let c0 = rand_vec((batch - 1) * sc + lc, seed + 2);
        let mut want = c0.clone();
        for i in 0..batch {
            reference::gemm(&g, &a[i * sa..], &b[i * sb..], &mut want[i * sc..]);
        }
        for_each_isa(|isa| {
            let mut got = c0.clone();
            g.run_batched_with(isa, batch, &a, sa, &b, sb, &mut got, sc);
            for i in 0..batch {
                assert_gemm_close(&g, &a[i * sa..], &b[i * sb..], &c0[i * sc..], &got[i * sc..], &want[i * sc..], isa.name());
                // The gap between outputs is untouched.
                for x in lc..sc.min(got.len() - i * sc) {
                    assert_eq!(got[i * sc + x].to_bits(), c0[i * sc + x].to_bits(), "gap between outputs");
                }
            }
        });
    }

    #[test]
    fn bf16_operands_match_reference_on_rounded_inputs(
        m in 1usize..50, n in 1usize..50, k in 1usize..300,
        ta in any::<bool>(), tb in any::<bool>(),
        which in 0usize..3, seed in 0u64..1000,
    ) {
        let g = Gemm::new(m, n, k).transposes(ta, tb).alpha(1.5).beta(0.5);
        let (la, lb, lc) = g.min_lens();
        let a32 = rand_vec(la, seed);
        let b32 = rand_vec(lb, seed + 1);
        let c0 = rand_vec(lc, seed + 2);
        let a16: Vec<bf16> = a32.iter().map(|&x| bf16::from_f32(x)).collect();
        let b16: Vec<bf16> = b32.iter().map(|&x| bf16::from_f32(x)).collect();
        let a_r: Vec<f32> = a16.iter().map(|x| x.to_f32()).collect();
        let b_r: Vec<f32> = b16.iter().map(|x| x.to_f32()).collect();
        // which: 0 = bf16 A, 1 = bf16 B, 2 = both.
        let (a_used, b_used) = match which {
            0 => (&a_r, &b32),
            1 => (&a32, &b_r),
            _ => (&a_r, &b_r),
        };
        let mut want = c0.clone();
        reference::gemm(&g, a_used, b_used, &mut want);
        for_each_isa(|isa| {
            let mut got = c0.clone();
            let (oa, ob) = match which {
                0 => (Operand::Bf16(&a16), Operand::F32(&b32)),
                1 => (Operand::F32(&a32), Operand::Bf16(&b16)),
                _ => (Operand::Bf16(&a16), Operand::Bf16(&b16)),
            };
            g.run_mixed_with(isa, oa, ob, &mut got);
            assert_gemm_close(&g, a_used, b_used, &c0, &got, &want, isa.name());
        });
    }
}

#[test]
fn one_and_two_threads_are_bit_identical() {
    for_each_isa(|isa| {
        for (m, n, k, ta, tb) in [
            (401, 300, 600, false, false),
            (130, 517, 300, true, false),
            (257, 100, 700, false, true),
        ] {
            let g = Gemm::new(m, n, k).transposes(ta, tb).beta(0.25);
            let (la, lb, lc) = g.min_lens();
            let a = rand_vec(la, 11);
            let b = rand_vec(lb, 12);
            let c0 = rand_vec(lc, 13);
            same_bits_across_threads(&format!("{isa}: {g:?}"), || {
                let mut c = c0.clone();
                g.run_with(isa, &a, &b, &mut c);
                c
            });
        }
        // Batched attention-like shape.
        let g = Gemm::new(64, 64, 32).transposes(false, true);
        let (la, lb, lc) = g.min_lens();
        let batch = 12;
        let a = rand_vec(batch * la, 21);
        let b = rand_vec(batch * lb, 22);
        same_bits_across_threads(&format!("{isa}: batched"), || {
            let mut c = vec![0.0; batch * lc];
            g.run_batched_with(isa, batch, &a, la, &b, lb, &mut c, lc);
            c
        });
    });
}

#[test]
#[should_panic(expected = "lda 3 < 4 columns of A")]
fn short_lda_is_rejected() {
    let g = Gemm::new(2, 2, 4).strides(3, 2, 2);
    let mut c = vec![0.0; 4];
    g.run_with(Isa::Scalar, &[0.0; 8], &[0.0; 8], &mut c);
}

#[test]
#[should_panic(expected = "B has 5 elements, needs 6")]
fn short_b_is_rejected_on_every_path() {
    let g = Gemm::new(2, 3, 2);
    let mut c = vec![0.0; 6];
    g.run_with(best_isa(), &[0.0; 4], &[0.0; 5], &mut c);
}

#[test]
#[should_panic(expected = "A has 3 elements, needs 4")]
fn short_bf16_a_is_rejected() {
    let g = Gemm::new(2, 2, 2);
    let mut c = vec![0.0; 4];
    let a = [bf16::ZERO; 3];
    g.run_mixed(Operand::Bf16(&a), Operand::F32(&[0.0; 4]), &mut c);
}

#[test]
fn bf16_both_operands_large_and_thread_invariant() {
    // Crosses k blocks (k > 384 pairs·2), odd k, edge tiles; on AVX-512 CPUs with AVX512-BF16
    // this runs the vdpbf16ps path. Same tolerance as every other path (products of bf16 are
    // exact in f32, so only the k additions round). lda is padded by one, so rows of A start at
    // odd bf16 offsets (A read in place as 32-bit pairs must not assume alignment); even k
    // reads every k block of A in place.
    for (m, n, k, ta, tb) in [
        (203, 77, 801, false, true),
        (64, 300, 385, true, false),
        (61, 45, 770, false, false),
    ] {
        let g = Gemm::new(m, n, k).transposes(ta, tb).alpha(0.5).beta(2.0);
        let g = g.strides(g.lda + 1, g.ldb, g.ldc);
        let (la, lb, lc) = g.min_lens();
        let a16: Vec<bf16> = rand_vec(la, 31)
            .iter()
            .map(|&x| bf16::from_f32(x))
            .collect();
        let b16: Vec<bf16> = rand_vec(lb, 32)
            .iter()
            .map(|&x| bf16::from_f32(x))
            .collect();
        let a_r: Vec<f32> = a16.iter().map(|x| x.to_f32()).collect();
        let b_r: Vec<f32> = b16.iter().map(|x| x.to_f32()).collect();
        let c0 = rand_vec(lc, 33);
        let mut want = c0.clone();
        reference::gemm(&g, &a_r, &b_r, &mut want);
        for_each_isa(|isa| {
            let run = |threads| {
                on_threads(threads, &c0, |c| {
                    g.run_mixed_with(isa, Operand::Bf16(&a16), Operand::Bf16(&b16), c)
                })
            };
            let (c1, c2) = (run(1), run(2));
            assert_gemm_close(&g, &a_r, &b_r, &c0, &c1, &want, isa.name());
            assert!(
                bits(&c1) == bits(&c2),
                "{isa}: bf16 {g:?} differs between 1 and 2 threads"
            );
        });
    }
}

/// Products large enough to run threaded, shaped so the driver splits C into row bands (n below
/// one panel per thread), column bands (m below one panel per thread) or either, at awkward
/// sizes and with padded strides: every path against the reference on 2 and 3 threads (3 makes
/// bands uneven), and bit-identical to 1 thread.
#[test]
fn threaded_band_splits_match_reference_and_one_thread() {
    for (m, n, k) in [
        (1025, 7, 300),
        (2049, 17, 129),
        (7, 1025, 300),
        (3, 2049, 385),
        (257, 129, 129),
        (129, 257, 127),
        (33, 4097, 17),
        (40, 70, 1030),
    ] {
        for (ta, tb) in TRANSPOSES {
            let g = Gemm::new(m, n, k).transposes(ta, tb).alpha(1.25).beta(0.5);
            let g = g.strides(g.lda + 3, g.ldb + 1, g.ldc + 2);
            let (la, lb, lc) = g.min_lens();
            let seed = (m * 7 + n * 3 + k) as u64;
            let a = rand_vec(la, seed);
            let b = rand_vec(lb, seed + 1);
            let c0 = rand_vec(lc, seed + 2);
            let mut want = c0.clone();
            reference::gemm(&g, &a, &b, &mut want);
            for_each_isa(|isa| {
                let run = |threads| on_threads(threads, &c0, |c| g.run_with(isa, &a, &b, c));
                let c1 = run(1);
                for threads in [2, 3] {
                    let ct = run(threads);
                    assert_gemm_close(&g, &a, &b, &c0, &ct, &want, isa.name());
                    assert!(
                        bits(&c1) == bits(&ct),
                        "{isa}: {g:?} differs between 1 and {threads} threads"
                    );
                }
            });
        }
    }
}

/// Every row count of a last partial tile (m = 1..=25 covers each remainder mod 12, 6 and 8),
/// with full and partial column panels, k below, at and past a 16-wide transpose block, and
/// padded strides: every path against the reference.
#[test]
fn every_edge_row_count_and_transposed_b_width() {
    let mut seed = 500;
    for m in 1..=25 {
        for (n, k) in [(32, 5), (45, 16), (64, 40), (70, 33)] {
            for (ta, tb) in TRANSPOSES {
                let g = Gemm::new(m, n, k).transposes(ta, tb).beta(0.5);
                let g = g.strides(g.lda + 1, g.ldb + 2, g.ldc + 1);
                check_all_paths(&g, seed);
                seed += 3;
            }
        }
    }
}

/// The vector packers (untransposed B panels, Bᵀ panels, and a transposed A when its block
/// meets 16+ B panels) across several row blocks (the last one partial), two column blocks
/// (n > 2048) with a partial last panel, two k blocks and padded strides, every transpose: every
/// path against the reference on one thread.
#[test]
fn packed_panels_across_row_column_and_k_blocks() {
    let (m, n, k) = (200, 2081, 520);
    for (ta, tb) in TRANSPOSES {
        let g = Gemm::new(m, n, k).transposes(ta, tb).beta(0.25);
        let g = g.strides(g.lda + 5, g.ldb + 3, g.ldc + 1);
        pool(1).install(|| check_all_paths(&g, 900 + ta as u64 * 2 + tb as u64));
    }
}

/// A transposed A whose rows are a page or more apart (lda ≥ 1024), packed from 2 B panels on
/// AVX2 by the prefetching row packer: several row blocks, a partial last row panel and column
/// panel, two k blocks, on 1 and 2 threads, against the reference.
#[test]
fn far_transposed_a_is_packed_on_every_path() {
    for tb in [false, true] {
        let g = Gemm::new(1100, 70, 300).transposes(true, tb).beta(0.5);
        let g = g.strides(g.lda + 3, g.ldb + 1, g.ldc);
        for threads in [1, 2] {
            pool(threads).install(|| check_all_paths(&g, 1200 + tb as u64 + 10 * threads as u64));
        }
    }
}

/// The bias epilogue (`run_bias`) gives, bit for bit, the product followed by a separate add of
/// the bias to every row, on every path and thread count: shapes crossing k blocks (the bias
/// must go on after the last one only), row and column band splits, partial tiles, padded
/// strides, beta ≠ 0, and k = 0.
#[test]
fn bias_epilogue_equals_product_then_add() {
    for (m, n, k) in [
        (1, 1, 1),
        (7, 19, 5),
        (257, 129, 600),
        (13, 1100, 300),
        (1030, 9, 70),
        (40, 70, 0),
    ] {
        for (ta, tb) in TRANSPOSES {
            let g = Gemm::new(m, n, k).transposes(ta, tb).beta(0.5);
            let g = g.strides(g.lda.max(1) + 1, g.ldb.max(1) + 2, g.ldc + 3);
            let (la, lb, lc) = g.min_lens();
            let seed = (m * 5 + n * 3 + k) as u64;
            let a = rand_vec(la, seed);
            let b = rand_vec(lb, seed + 1);
            let c0 = rand_vec(lc, seed + 2);
            let bias = rand_vec(n, seed + 3);
            for_each_isa(|isa| {
                let mut want = c0.clone();
                g.run_with(isa, &a, &b, &mut want);
                for i in 0..m {
                    for j in 0..n {
                        want[i * g.ldc + j] += bias[j];
                    }
                }
                for threads in [1, 2, 3] {
                    let got = on_threads(threads, &c0, |c| {
                        g.run_bias_with(isa, a[..].into(), b[..].into(), Some(&bias), c)
                    });
                    assert!(
                        bits(&got) == bits(&want),
                        "{isa}, {threads} threads: {g:?} with bias differs from product + add"
                    );
                }
            });
        }
    }
}

#[test]
#[should_panic(expected = "bias has 2 elements, needs n = 3")]
fn short_bias_is_rejected() {
    let g = Gemm::new(2, 3, 2);
    let mut c = vec![0.0; 6];
    g.run_bias(
        Operand::F32(&[0.0; 4]),
        Operand::F32(&[0.0; 6]),
        &[0.0; 2],
        &mut c,
    );
}
