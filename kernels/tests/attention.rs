//! Fused attention (every path this CPU supports) against the plain f64 reference, and the
//! reference backward against central finite differences. The cases, the runs and the
//! normwise tolerance (with its derivation) are in `common/attention.rs`.

mod common;

use cloze_kernels::attention::{self, dropout_keep, reference, AttnInputs, AttnParams, AttnShape};
use common::attention::{
    check_case, params, run_fused, run_reference, Case, MaskKind, PARTIAL_MAG,
};
use common::{cases, for_each_isa, same_bits_across_threads, HEAD_DIMS, QK_LENS, SEQ_LENS, U};
use proptest::prelude::*;

#[test]
fn every_path_matches_reference_on_awkward_sizes() {
    let mut n = 0u64;
    for t in SEQ_LENS {
        for d in HEAD_DIMS {
            // Three configurations per size: plain; partial mask + causal + dropout 0.1;
            // partial mask with a fully hidden batch, not causal, dropout 0.1.
            let configs = [
                (MaskKind::None, false, 0.0),
                (MaskKind::Partial, true, 0.1),
                (MaskKind::FullyHidden, false, 0.1),
            ];
            for (mask, causal, p) in configs {
                n += 1;
                let shape = AttnShape {
                    batch: 2,
                    heads: if t > 64 { 1 } else { 2 },
                    tq: t,
                    tk: t,
                    d,
                };
                let c = Case::new(shape, params(d, causal, p, n), mask, 1000 + n);
                check_case(&c, PARTIAL_MAG);
            }
        }
    }
}

#[test]
fn every_path_matches_reference_when_query_and_key_lengths_differ() {
    // causal with Tq ≠ Tk is bottom-right aligned; Tq > Tk hides every key from early rows.
    for (tq, tk) in QK_LENS {
        for causal in [false, true] {
            let shape = AttnShape {
                batch: 2,
                heads: 2,
                tq,
                tk,
                d: 17,
            };
            let c = Case::new(shape, params(17, causal, 0.1, 7), MaskKind::Partial, 77);
            check_case(&c, PARTIAL_MAG);
        }
    }
}

proptest! {
    #![proptest_config(cases(48))]
    #[test]
    fn every_path_matches_reference_on_random_shapes(
        batch in 1usize..=2,
        heads in 1usize..=3,
        tq in 1usize..=80,
        tk in 1usize..=80,
        d in 1usize..=72,
        causal in any::<bool>(),
        dropout in prop::sample::select(vec![0.0f32, 0.1, 0.5]),
        mask in prop::sample::select(vec![MaskKind::None, MaskKind::Partial, MaskKind::FullyHidden]),
        scale in 0.05f32..1.0,
        seed in any::<u64>(),
    ) {
        let shape = AttnShape { batch, heads, tq, tk, d };
        let p = AttnParams { scale, causal, dropout, seed };
        let c = Case::new(shape, p, mask, seed ^ 0x5555);
        check_case(&c, PARTIAL_MAG);
    }
}

#[test]
fn fully_hidden_rows_give_zero_output_and_gradients_without_nan() {
    let shape = AttnShape {
        batch: 2,
        heads: 2,
        tq: 33,
        tk: 33,
        d: 8,
    };
    for p in [0.0, 0.1] {
        let c = Case::new(shape, params(8, false, p, 3), MaskKind::FullyHidden, 5);
        for_each_isa(|isa| {
            let f = run_fused(isa, &c);
            let per_b_q = shape.heads * shape.tq * shape.d;
            let per_b_k = shape.heads * shape.tk * shape.d;
            // batch 0 is fully hidden
            assert!(f.out[..per_b_q].iter().all(|&x| x == 0.0), "{isa}: out");
            assert!(f.dq[..per_b_q].iter().all(|&x| x == 0.0), "{isa}: dq");
            assert!(f.dk[..per_b_k].iter().all(|&x| x == 0.0), "{isa}: dk");
            assert!(f.dv[..per_b_k].iter().all(|&x| x == 0.0), "{isa}: dv");
            assert!(
                f.lse[..shape.heads * shape.tq]
                    .iter()
                    .all(|&x| x == f32::NEG_INFINITY),
                "{isa}: lse"
            );
            for (name, x) in [("out", &f.out), ("dq", &f.dq), ("dk", &f.dk), ("dv", &f.dv)] {
                assert!(x.iter().all(|v| !v.is_nan()), "{isa}: NaN in {name}");
            }
        });
    }
}

#[test]
fn causal_rows_before_the_first_key_are_zero() {
    // Tq = 10 > Tk = 4: query i sees keys j ≤ i − 6, so rows 0..6 see nothing.
    let shape = AttnShape {
        batch: 1,
        heads: 1,
        tq: 10,
        tk: 4,
        d: 5,
    };
    let c = Case::new(shape, params(5, true, 0.0, 0), MaskKind::None, 9);
    for_each_isa(|isa| {
        let f = run_fused(isa, &c);
        assert!(f.out[..6 * 5].iter().all(|&x| x == 0.0), "{isa}");
        assert!(f.out[6 * 5..].iter().any(|&x| x != 0.0), "{isa}");
        // row 6 sees only key 0: its output is v_0 exactly up to rounding of 1·v
        for c_ in 0..5 {
            assert!(
                (f.out[6 * 5 + c_] - c.v[c_]).abs() <= 4.0 * f32::EPSILON,
                "{isa}"
            );
        }
    });
}

#[test]
fn mask_of_minus_10000_everywhere_gives_uniform_weights() {
    let (tq, tk, d) = (17, 70, 32);
    let shape = AttnShape {
        batch: 1,
        heads: 2,
        tq,
        tk,
        d,
    };
    let mut c = Case::new(shape, params(d, false, 0.0, 0), MaskKind::None, 11);
    c.mask = Some(vec![-10000.0; tk]);
    // Uniform weights: out_i = mean_j v_j, computed here directly in f64.
    let mut mean = vec![0.0f64; 2 * d];
    for h in 0..2 {
        for j in 0..tk {
            for x in 0..d {
                mean[h * d + x] += c.v[(h * tk + j) * d + x] as f64 / tk as f64;
            }
        }
    }
    // With random q the weights are a softmax of the scores shifted by −10000: compare with the
    // reference. Scores near −10000 are rounded to the f32 spacing there (2^-10), an absolute
    // score error that the tolerance's M = 10000 term covers.
    check_case(&c, 10000.0);
    // With q = 0 every score is exactly −10000: uniform weights, out_i = mean_j v_j.
    c.q = vec![0.0; shape.q_len()];
    let r = run_reference(&c);
    for_each_isa(|isa| {
        let f = run_fused(isa, &c);
        for h in 0..2 {
            for i in 0..tq {
                for x in 0..d {
                    let got = f.out[(h * tq + i) * d + x] as f64;
                    let want = mean[h * d + x];
                    // uniform weights 1/tk exactly (all scores equal): error only from the
                    // length-tk f32 sum
                    let tol = 4.0 * U * (tk as f64 + 8.0);
                    assert!((got - want).abs() <= tol, "{isa}: {got} vs mean {want}");
                    assert!(
                        ((r.out[(h * tq + i) * d + x] as f64) - want).abs() <= tol,
                        "reference: {} vs mean {want}",
                        r.out[(h * tq + i) * d + x]
                    );
                }
            }
        }
    });
}

#[test]
fn one_and_two_threads_give_identical_bits() {
    let shape = AttnShape {
        batch: 2,
        heads: 3,
        tq: 133,
        tk: 133,
        d: 64,
    };
    let c = Case::new(shape, params(64, false, 0.1, 42), MaskKind::Partial, 13);
    for_each_isa(|isa| {
        same_bits_across_threads(&format!("attention {isa}"), || {
            let f = run_fused(isa, &c);
            [f.out, f.lse, f.dq, f.dk, f.dv].concat()
        });
    });
}

#[test]
fn dropout_keep_rate_and_seed_dependence() {
    // Over n indices the kept count is Binomial(n, 1−p); 6 standard deviations.
    let n = 200_000u64;
    for p in [0.1f32, 0.5] {
        let kept = (0..n).filter(|&i| dropout_keep(7, i, p)).count() as f64;
        let mean = n as f64 * (1.0 - p as f64);
        let sd = (n as f64 * p as f64 * (1.0 - p as f64)).sqrt();
        assert!(
            (kept - mean).abs() <= 6.0 * sd,
            "p {p}: kept {kept}, expected {mean}"
        );
    }
    assert!((0..1000).all(|i| dropout_keep(3, i, 0.0)));
    let differ = (0..10_000u64)
        .filter(|&i| dropout_keep(1, i, 0.5) != dropout_keep(2, i, 0.5))
        .count();
    // independent masks disagree on about half the indices
    assert!((4000..6000).contains(&differ), "{differ}");
    // indices past 2^32 (high half) matter too
    let differ_hi = (0..10_000u64)
        .filter(|&i| dropout_keep(1, i, 0.5) != dropout_keep(1, i + (1 << 32), 0.5))
        .count();
    assert!((4000..6000).contains(&differ_hi), "{differ_hi}");
}

#[test]
fn fused_dropout_uses_the_exported_mask() {
    // With v = identity-like one-hot rows, out[i, c] = Pd[i, j=c]: dropped weights are exactly 0
    // where dropout_keep says drop, and non-zero where it keeps (all scores finite).
    let (tq, tk) = (9, 16);
    let shape = AttnShape {
        batch: 1,
        heads: 2,
        tq,
        tk,
        d: tk,
    };
    let mut c = Case::new(shape, params(tk, false, 0.5, 99), MaskKind::None, 4);
    c.v = (0..shape.kv_len())
        .map(|x| {
            let (j, col) = ((x / tk) % tk, x % tk);
            if j == col {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    for_each_isa(|isa| {
        let f = run_fused(isa, &c);
        for h in 0..2 {
            for i in 0..tq {
                for j in 0..tk {
                    let flat = ((h * tq + i) * tk + j) as u64;
                    let w = f.out[(h * tq + i) * tk + j];
                    assert_eq!(
                        w != 0.0,
                        dropout_keep(99, flat, 0.5),
                        "{isa}: h {h} i {i} j {j} weight {w}"
                    );
                }
            }
        }
    });
}

#[test]
fn bad_lengths_panic_naming_the_slice() {
    let shape = AttnShape {
        batch: 1,
        heads: 1,
        tq: 4,
        tk: 5,
        d: 3,
    };
    let p = params(3, false, 0.0, 0);
    let q = vec![0.0; 12];
    let kv = vec![0.0; 15];
    // (length of k, length of lse, dropout, what the panic must name): one bad value each
    for (k_len, lse_len, dropout, needle) in [
        (14, 4, 0.0, "k has 14"),
        (15, 3, 0.0, "lse has 3"),
        (15, 4, 1.0, "dropout probability 1"),
    ] {
        let r = std::panic::catch_unwind(|| {
            let mut out = vec![0.0; 12];
            let mut lse = vec![0.0; lse_len];
            let inputs = AttnInputs {
                shape,
                params: AttnParams { dropout, ..p },
                q: &q,
                k: &kv[..k_len],
                v: &kv,
                mask: None,
            };
            attention::forward(&inputs, &mut out, &mut lse);
        });
        let msg = *r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains(needle), "{msg}");
    }
}

/// Central differences of `L = Σ out ⊙ w` (f64 loss of the reference's f32 outputs) against the
/// reference backward fed `dout = w`.
///
/// Error budget: the step is h = 2^-7 (the actual f32 step is used); truncation error is
/// h²/6·|L'''| with |L'''| = O(10) on these tiny shapes (≈ 3e-5), and the f32 rounding of the
/// outputs adds ≤ N·u·max|out|/(2h) ≈ 1e-4 for N ≤ 40 outputs; 2e-3·(1 + |g|) covers both.
#[test]
fn reference_backward_matches_finite_differences() {
    let shapes = [(1, 2, 3, 4, 3), (2, 1, 4, 4, 2), (1, 1, 5, 3, 4)];
    let mut case = 0;
    for &(batch, heads, tq, tk, d) in &shapes {
        for (causal, dropout, mask) in [
            (false, 0.0, MaskKind::None),
            (true, 0.0, MaskKind::Partial),
            (false, 0.3, MaskKind::Partial),
            (true, 0.3, MaskKind::None),
        ] {
            case += 1;
            let shape = AttnShape {
                batch,
                heads,
                tq,
                tk,
                d,
            };
            let p = AttnParams {
                scale: 0.7,
                causal,
                dropout,
                seed: case,
            };
            let c = Case::new(shape, p, mask, 500 + case);
            let w = &c.dout;
            let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
                let mut out = vec![0.0; shape.q_len()];
                let mut lse = vec![0.0; shape.lse_len()];
                let inputs = AttnInputs {
                    q,
                    k,
                    v,
                    ..c.inputs()
                };
                reference::forward(&inputs, &mut out, &mut lse);
                out.iter().zip(w).map(|(&o, &x)| o as f64 * x as f64).sum()
            };
            let r = run_reference(&c);
            let h = 1.0f32 / 128.0;
            for which in 0..3 {
                let (base, grad) = match which {
                    0 => (&c.q, &r.dq),
                    1 => (&c.k, &r.dk),
                    _ => (&c.v, &r.dv),
                };
                for idx in 0..base.len() {
                    let mut plus = base.clone();
                    let mut minus = base.clone();
                    plus[idx] += h;
                    minus[idx] -= h;
                    let step = plus[idx] as f64 - minus[idx] as f64;
                    let eval = |x: &Vec<f32>| match which {
                        0 => loss(x, &c.k, &c.v),
                        1 => loss(&c.q, x, &c.v),
                        _ => loss(&c.q, &c.k, x),
                    };
                    let fd = (eval(&plus) - eval(&minus)) / step;
                    let g = grad[idx] as f64;
                    assert!(
                        (fd - g).abs() <= 2e-3 * (1.0 + g.abs()),
                        "input {which} element {idx}: finite difference {fd} vs backward {g}; {shape:?} {p:?}"
                    );
                }
            }
        }
    }
}

/// PyTorch semantics: a NaN score makes its whole row NaN (it is not a "no visible key" row,
/// which would give zeros), on every path and in the reference, with or without a mask.
#[test]
fn nan_scores_propagate_to_the_row_on_every_path() {
    let shape = AttnShape {
        batch: 2,
        heads: 2,
        tq: 19,
        tk: 19,
        d: 8,
    };
    for (kind, causal) in [
        (MaskKind::None, false),
        (MaskKind::Partial, false),
        (MaskKind::None, true),
    ] {
        let mut c = Case::new(shape, params(8, causal, 0.0, 3), kind, 11);
        // query row 4 of head (0, 0) is all NaN: every score of that row is NaN
        let bad = 4;
        c.q[bad * shape.d..(bad + 1) * shape.d].fill(f32::NAN);
        let r = run_reference(&c);
        let row = |x: &[f32]| x[bad * shape.d..(bad + 1) * shape.d].to_vec();
        assert!(
            row(&r.out).iter().all(|v| v.is_nan()),
            "reference: {:?}",
            row(&r.out)
        );
        assert!(r.lse[bad].is_nan(), "reference lse {}", r.lse[bad]);
        for_each_isa(|isa| {
            let f = run_fused(isa, &c);
            assert!(
                row(&f.out).iter().all(|v| v.is_nan()),
                "{isa} {kind:?} causal {causal}: out row {:?}",
                row(&f.out)
            );
            assert!(f.lse[bad].is_nan(), "{isa}: lse {}", f.lse[bad]);
            // the other rows of that head are untouched
            assert!(
                f.out[..bad * shape.d].iter().all(|v| v.is_finite()),
                "{isa}"
            );
            // one NaN key score (not the whole row) poisons the rows that see it
            let mut c2 = Case::new(shape, params(8, causal, 0.0, 3), kind, 11);
            c2.k[0] = f32::NAN; // key 0 of head (0, 0), seen by every query of that head
            let f2 = run_fused(isa, &c2);
            let mask0 = c2.mask().map(|m| m[0]).unwrap_or(0.0);
            if mask0 != f32::NEG_INFINITY {
                assert!(
                    f2.out[..shape.tq * shape.d].iter().all(|v| v.is_nan()),
                    "{isa}: a NaN key score did not reach every row"
                );
            }
        });
    }
}
