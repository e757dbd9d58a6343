//! Gradient and value properties of `attention`.

mod common;

use cloze::ops::attention::AttentionOptions;
use cloze::{Tape, Tensor, Var};
use common::*;
use proptest::prelude::*;

/// One attention problem: q, k, v and the options (mask, causal).
#[derive(Clone, Debug)]
struct Case {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    opts: AttentionOptions,
}

/// A key-mask entry: 0, BERT's −10000, −∞, or an arbitrary additive bias in [−1, 1].
fn mask_value() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(0.0f32),
        Just(-10000.0),
        Just(f32::NEG_INFINITY),
        -1.0f32..=1.0
    ]
}

/// B 1..=2, heads 1..=3, Tq and Tk 1..=9, d 1..=8. With `masked`, a `[B, Tk]` mask whose key 0
/// is always 0 (as a [CLS] token is never padding), so no row is fully masked: fully masked
/// rows have their own tests.
fn case(masked: bool, causal: bool) -> impl Strategy<Value = Case> {
    (1usize..=2, 1usize..=3, 1usize..=9, 1usize..=9, 1usize..=8).prop_flat_map(
        move |(b, h, tq, tk, d)| {
            // the fused op's causal mask needs Tq == Tk (as LTR self-attention has)
            let tk = if causal { tq } else { tk };
            let mask = if masked {
                proptest::collection::vec(mask_value(), b * tk)
                    .prop_map(move |mut m| {
                        for row in m.chunks_mut(tk) {
                            row[0] = 0.0;
                        }
                        Some(Tensor::from_vec(m, &[b, tk]).unwrap())
                    })
                    .boxed()
            } else {
                Just(None).boxed()
            };
            (
                tensor(vec![b, h, tq, d]),
                tensor(vec![b, h, tk, d]),
                tensor(vec![b, h, tk, d]),
                mask,
            )
                .prop_map(move |(q, k, v, mask)| Case {
                    q,
                    k,
                    v,
                    opts: AttentionOptions {
                        mask,
                        causal,
                        ..AttentionOptions::new(d)
                    },
                })
        },
    )
}

/// softmax(Q·Kᵀ·scale + mask + causal)·V per batch and head, in f64; a row with every score −∞
/// gives 0 (the op's documented definition).
fn naive(c: &Case) -> Vec<f64> {
    let (sq, sk) = (c.q.shape(), c.k.shape());
    let (b, h, tq, d, tk) = (sq[0], sq[1], sq[2], sq[3], sk[2]);
    let (q, k, v) = (c.q.data(), c.k.data(), c.v.data());
    let mut out = vec![0.0f64; b * h * tq * d];
    for bi in 0..b {
        for hi in 0..h {
            let base_q = (bi * h + hi) * tq * d;
            let base_k = (bi * h + hi) * tk * d;
            for i in 0..tq {
                let mut s = vec![0.0f64; tk];
                for (j, sj) in s.iter_mut().enumerate() {
                    let dot: f64 = (0..d)
                        .map(|p| q[base_q + i * d + p] as f64 * k[base_k + j * d + p] as f64)
                        .sum();
                    *sj = dot * c.opts.scale as f64;
                    if let Some(m) = &c.opts.mask {
                        *sj += m.data()[bi * tk + j] as f64;
                    }
                    if c.opts.causal && j > i {
                        *sj = f64::NEG_INFINITY;
                    }
                }
                let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                if mx == f64::NEG_INFINITY {
                    continue;
                }
                let e: Vec<f64> = s.iter().map(|&x| (x - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                for p in 0..d {
                    let o: f64 = (0..tk)
                        .map(|j| e[j] / z * v[base_k + j * d + p] as f64)
                        .sum();
                    out[base_q + i * d + p] = o;
                }
            }
        }
    }
    out
}

fn forward(c: &Case, training: bool) -> Tensor {
    forward_with(c, training, false)
}

/// The case's inputs as leaves of `t`, and the output of the fused op on them, or the unfused
/// one.
fn attend(t: &mut Tape, c: &Case, unfused: bool) -> [Var; 4] {
    let (q, k, v) = (
        t.leaf(c.q.clone()),
        t.leaf(c.k.clone()),
        t.leaf(c.v.clone()),
    );
    let out = if unfused {
        t.attention_unfused(&q, &k, &v, &c.opts)
    } else {
        t.attention(&q, &k, &v, &c.opts)
    };
    [q, k, v, out.unwrap()]
}

/// Forward through the fused op, or the unfused one.
fn forward_with(c: &Case, training: bool, unfused: bool) -> Tensor {
    let mut t = Tape::new();
    t.set_training(training);
    let [_, _, _, out] = attend(&mut t, c, unfused);
    out.value().clone()
}

/// Output and (dq, dk, dv) for the loss Σ out ⊙ r, fused or unfused.
fn grads_with(c: &Case, unfused: bool) -> Vec<Tensor> {
    let mut t = Tape::new();
    let [q, k, v, out] = attend(&mut t, c, unfused);
    let r = Tensor::from_fn(out.shape(), |i| ((i * 13 + 5) % 17) as f32 / 8.0 - 1.0);
    let g = t.backward_with(&out, r).unwrap();
    vec![
        out.value().clone(),
        g.get(&q).unwrap().clone(),
        g.get(&k).unwrap().clone(),
        g.get(&v).unwrap().clone(),
    ]
}

fn check(c: Case) -> Result<(), TestCaseError> {
    let opts = c.opts.clone();
    check_grads(
        move |t, v| t.attention(&v[0], &v[1], &v[2], &opts),
        &[c.q, c.k, c.v],
        &common::opts(),
    )
}

fn any_case() -> impl Strategy<Value = Case> {
    (any::<bool>(), any::<bool>()).prop_flat_map(|(m, c)| case(m, c))
}

/// One gradient property test per variant of the op: `name: (masked, causal)`.
macro_rules! grad_attention_variants {
    ($($name:ident: ($masked:expr, $causal:expr)),* $(,)?) => {
        proptest! {
            #![proptest_config(cases(48))]
            $(
                #[test]
                fn $name(c in case($masked, $causal)) {
                    check(c)?;
                }
            )*
        }
    };
}

grad_attention_variants! {
    grad_attention: (false, false),
    grad_attention_masked: (true, false),
    grad_attention_causal: (false, true),
    grad_attention_causal_masked: (true, true),
}

proptest! {
    #![proptest_config(cases(48))]

    #[test]
    fn grad_attention_with_dropout(mut c in any_case(), p in 0.05f32..0.6, seed in any::<u64>()) {
        // Training mode with a fixed seed: the dropout mask is the same in every evaluation.
        c.opts.dropout = p;
        c.opts.seed = seed;
        check(c)?;
    }

    #[test]
    fn attention_matches_naive_f64(c in any_case()) {
        let got = forward(&c, true);
        prop_assert_eq!(got.shape(), c.q.shape());
        let want = naive(&c);
        // Scores: a d-term f32 dot (|q·k| ≤ 4 per term, d ≤ 8) is off by ≤ d·ε·32 ≈ 2e-5, which
        // perturbs each probability by that relative amount; the output, a convex combination of
        // |v| ≤ 2, then moves by ≤ 2·2e-5·2 plus Tk roundings of ≤ ε·2: 1e-4 covers it.
        for (i, (&a, &b)) in got.data().iter().zip(&want).enumerate() {
            prop_assert!((a as f64 - b).abs() <= 1e-4, "element {i}: {a} vs {b}");
        }
    }

    #[test]
    fn causal_first_query_attends_only_to_key_0(c in case(true, true)) {
        let out = forward(&c, false);
        let (sq, sk) = (c.q.shape(), c.k.shape());
        let (b, h, tq, d, tk) = (sq[0], sq[1], sq[2], sq[3], sk[2]);
        for bh in 0..b * h {
            // Probabilities [1, 0, 0, …]: the output row is exactly v's row 0.
            let o = &out.data()[bh * tq * d..bh * tq * d + d];
            let v0 = &c.v.data()[bh * tk * d..bh * tk * d + d];
            prop_assert_eq!(o, v0);
        }
    }

    #[test]
    fn dropout_in_eval_mode_changes_nothing(mut c in any_case(), p in 0.05f32..0.9, seed in any::<u64>()) {
        let plain = forward(&c, false);
        c.opts.dropout = p;
        c.opts.seed = seed;
        let eval = forward(&c, false);
        prop_assert_eq!(plain.data(), eval.data());
    }

    #[test]
    fn attention_dropout_uses_the_dropout_op_mask(
        (b, h, tq, tk) in (1usize..=2, 1usize..=3, 1usize..=9, 1usize..=9),
        p in 0.05f32..0.9, seed in any::<u64>(), causal in any::<bool>(),
        q_seed in any::<u64>(),
    ) {
        // With d = Tk and V = I the output rows are the (dropped) probabilities themselves, so
        // attention's dropout must equal `Tape::dropout` with the same seed applied to the
        // eval-mode output (both index the mask by the flat position in [B, heads, Tq, Tk]).
        let d = tk;
        let q = Tensor::from_fn(&[b, h, tq, d], |i| ((i as u64 ^ q_seed) % 7) as f32 * 0.3 - 1.0);
        let k = Tensor::from_fn(&[b, h, tk, d], |i| ((i * 5 + 1) % 9) as f32 * 0.2 - 0.8);
        let v = Tensor::from_fn(&[b, h, tk, d], |i| if (i / d) % tk == i % d { 1.0 } else { 0.0 });
        let c = Case { q, k, v, opts: AttentionOptions { causal, dropout: p, seed, ..AttentionOptions::new(d) } };
        let (tk, c) = if causal {
            // causal needs Tq == Tk: rebuild with tk = tq
            let tk = tq;
            let d = tk;
            let k = Tensor::from_fn(&[b, h, tk, d], |i| ((i * 5 + 1) % 9) as f32 * 0.2 - 0.8);
            let v = Tensor::from_fn(&[b, h, tk, d], |i| if (i / d) % tk == i % d { 1.0 } else { 0.0 });
            let q = Tensor::from_fn(&[b, h, tq, d], |i| ((i as u64 ^ q_seed) % 7) as f32 * 0.3 - 1.0);
            (tk, Case { q, k, v, opts: c.opts })
        } else {
            (tk, c)
        };
        // Unfused: exactly `Tape::dropout` (same mask, same x/(1−p) rounding).
        let eval = forward_with(&c, false, true);
        let train = forward_with(&c, true, true);
        let mut t = Tape::new();
        let dropped = t.dropout(&Var::constant(eval.clone()), p, seed).unwrap();
        prop_assert_eq!(train.data(), dropped.value().data());
        // Fused: the same weights are dropped (zero exactly where `Tape::dropout` zeroes); kept
        // ones agree to rounding (online softmax, x·(1/(1−p)) instead of x/(1−p)).
        let fused = forward_with(&c, true, false);
        for (i, (&f, &u)) in fused.data().iter().zip(dropped.value().data()).enumerate() {
            prop_assert_eq!(f == 0.0, u == 0.0, "element {} (Tk {}): fused {} vs unfused {}", i, tk, f, u);
            prop_assert!((f - u).abs() <= 1e-5 * (1.0 + u.abs()), "element {}: {} vs {}", i, f, u);
        }
    }

    /// The fused kernel against the engine's unfused attention, values and all three gradients,
    /// with masks, causal masks and dropout. Tolerance: both compute in f32 with different
    /// summation orders over Tk ≤ 9 and d ≤ 8 terms of magnitude ≤ 4 (inputs in [−2, 2]), so
    /// a few 1e-6 absolute; 2e-5·(1 + |x|) leaves margin without hiding a wrong formula
    /// (gradients are of order 1).
    #[test]
    fn fused_matches_unfused_values_and_gradients(
        c in prop_oneof![case(true, false).boxed(), case(true, true).boxed()],
        p in prop_oneof![Just(0.0f32), 0.05f32..0.5],
        seed in any::<u64>(),
    ) {
        let c = Case { opts: AttentionOptions { dropout: p, seed, ..c.opts.clone() }, ..c };
        let fused = grads_with(&c, false);
        let plain = grads_with(&c, true);
        for (name, (f, u)) in ["out", "dq", "dk", "dv"].iter().zip(fused.iter().zip(&plain)) {
            for (i, (&x, &y)) in f.data().iter().zip(u.data()).enumerate() {
                prop_assert!((x - y).abs() <= 2e-5 * (1.0 + y.abs()), "{} [{}]: fused {} vs unfused {}", name, i, x, y);
            }
        }
    }

    #[test]
    fn grad_attention_unfused(c in case(true, false)) {
        let opts = c.opts.clone();
        check_grads(move |t, v| t.attention_unfused(&v[0], &v[1], &v[2], &opts), &[c.q, c.k, c.v], &opts_gc())?;
    }
}

fn opts_gc() -> cloze::GradcheckOptions {
    common::opts()
}

#[test]
fn options_new_sets_inverse_sqrt_scale() {
    let o = AttentionOptions::new(64);
    assert_eq!(o.scale, 0.125);
    assert!(o.mask.is_none() && !o.causal && o.dropout == 0.0);
}

fn small(b: usize, h: usize, t: usize, d: usize, salt: usize) -> Tensor {
    Tensor::from_fn(&[b, h, t, d], |i| ((i * 7 + salt) % 11) as f32 * 0.3 - 1.5)
}

#[test]
fn fully_masked_rows_with_minus_10000_are_an_ordinary_softmax() {
    // Batch 1 has every key at −10000. The shift cancels in the softmax; with q = 0 every score
    // is exactly −10000, so the probabilities are uniform and each output row is v's mean.
    let (b, h, t, d) = (2, 2, 4, 3);
    let q = Tensor::zeros(&[b, h, t, d]);
    let (k, v) = (small(b, h, t, d, 1), small(b, h, t, d, 2));
    let mut m = vec![0.0f32; b * t];
    m[t..].fill(-10000.0);
    let opts = AttentionOptions {
        mask: Some(Tensor::from_vec(m, &[b, t]).unwrap()),
        ..AttentionOptions::new(d)
    };
    let mut tape = Tape::new();
    let (qv, kv, vv) = (tape.leaf(q), tape.leaf(k.clone()), tape.leaf(v.clone()));
    let out = tape.attention(&qv, &kv, &vv, &opts).unwrap();
    for bh in 0..b * h {
        for i in 0..t {
            for p in 0..d {
                let mean: f32 =
                    (0..t).map(|j| v.data()[(bh * t + j) * d + p]).sum::<f32>() / t as f32;
                let got = out.value().data()[(bh * t + i) * d + p];
                // 4-term sums of values ≤ 1.5 and one division: a few ulp.
                assert!((got - mean).abs() <= 1e-6, "{got} vs {mean}");
            }
        }
    }
    let loss = tape.sum(&out).unwrap();
    let g = tape.backward(&loss).unwrap();
    for var in [&qv, &kv, &vv] {
        assert!(g.get(var).unwrap().data().iter().all(|x| x.is_finite()));
    }
}

#[test]
fn fully_masked_rows_with_minus_inf_give_zero_output_and_no_nan() {
    let (b, h, t, d) = (2, 3, 5, 4);
    let (q, k, v) = (
        small(b, h, t, d, 0),
        small(b, h, t, d, 3),
        small(b, h, t, d, 5),
    );
    let mut m = vec![0.0f32; b * t];
    m[t..].fill(f32::NEG_INFINITY); // batch 1: every key is padding
    m[2] = f32::NEG_INFINITY; // batch 0: key 2 is padding
    let opts = AttentionOptions {
        mask: Some(Tensor::from_vec(m, &[b, t]).unwrap()),
        ..AttentionOptions::new(d)
    };
    let mut tape = Tape::new();
    let (qv, kv, vv) = (tape.leaf(q), tape.leaf(k), tape.leaf(v));
    let out = tape.attention(&qv, &kv, &vv, &opts).unwrap();
    let half = h * t * d;
    assert!(out.value().data()[..half].iter().all(|x| x.is_finite()));
    assert!(out.value().data()[half..].iter().all(|&x| x == 0.0));
    let loss = tape.sum(&out).unwrap();
    let g = tape.backward(&loss).unwrap();
    for var in [&qv, &kv, &vv] {
        let gd = g.get(var).unwrap().data();
        assert!(gd.iter().all(|x| x.is_finite()));
        // Batch 1 passed no gradient.
        assert!(gd[half..].iter().all(|&x| x == 0.0));
    }
    // Key 2 of batch 0 had probability 0: its v row gets no gradient, its k row none either.
    let gv = g.get(&vv).unwrap().data();
    let gk = g.get(&kv).unwrap().data();
    for hi in 0..h {
        let row = (hi * t + 2) * d;
        assert!(gv[row..row + d].iter().all(|&x| x == 0.0));
        assert!(gk[row..row + d].iter().all(|&x| x == 0.0));
    }
}

#[test]
fn mask_shape_must_be_batch_by_keys() {
    let mut tape = Tape::new();
    let q = tape.leaf(small(2, 1, 3, 4, 0));
    let k = tape.leaf(small(2, 1, 5, 4, 1));
    let v = tape.leaf(small(2, 1, 5, 4, 2));
    for bad in [vec![2, 4], vec![2, 1, 1, 5], vec![1, 5]] {
        let opts = AttentionOptions {
            mask: Some(Tensor::zeros(&bad)),
            ..AttentionOptions::new(4)
        };
        let err = tape.attention(&q, &k, &v, &opts).unwrap_err().to_string();
        assert_mentions(&err, &["attention", &format!("{bad:?}"), "[2, 5]"]);
    }
}

#[test]
fn mask_with_nan_or_plus_inf_is_rejected() {
    let mut tape = Tape::new();
    let q = tape.leaf(small(1, 1, 3, 2, 0));
    let k = tape.leaf(small(1, 1, 3, 2, 1));
    for bad in [f32::NAN, f32::INFINITY] {
        let opts = AttentionOptions {
            mask: Some(Tensor::from_vec(vec![0.0, bad, 0.0], &[1, 3]).unwrap()),
            ..AttentionOptions::new(2)
        };
        let err = tape.attention(&q, &k, &k, &opts).unwrap_err().to_string();
        assert_mentions(&err, &[&format!("{bad}"), "[0, 1]"]);
    }
}

#[test]
fn qkv_shape_mismatch_names_all_shapes() {
    let mut tape = Tape::new();
    let opts = AttentionOptions::new(4);
    let q = tape.leaf(small(2, 2, 3, 4, 0));
    let cases = [
        (small(2, 2, 5, 3, 1), small(2, 2, 5, 3, 2)), // d differs from q
        (small(2, 2, 5, 4, 1), small(2, 2, 6, 4, 2)), // k and v lengths differ
        (small(1, 2, 5, 4, 1), small(1, 2, 5, 4, 2)), // batch differs
        (small(2, 3, 5, 4, 1), small(2, 3, 5, 4, 2)), // heads differ
    ];
    for (k, v) in cases {
        let (ks, vs) = (format!("{:?}", k.shape()), format!("{:?}", v.shape()));
        let (kv, vv) = (tape.leaf(k), tape.leaf(v));
        let err = tape.attention(&q, &kv, &vv, &opts).unwrap_err().to_string();
        assert_mentions(&err, &["attention", "[2, 2, 3, 4]", &ks, &vs]);
    }
    let flat = tape.leaf(Tensor::zeros(&[3, 4]));
    assert!(tape.attention(&flat, &flat, &flat, &opts).is_err());
}

#[test]
fn bad_dropout_probability_is_an_error_naming_it() {
    let mut tape = Tape::new();
    let q = tape.leaf(small(1, 1, 2, 2, 0));
    let opts = AttentionOptions {
        dropout: 1.0,
        ..AttentionOptions::new(2)
    };
    let err = tape.attention(&q, &q, &q, &opts).unwrap_err().to_string();
    assert_mentions(&err, &["attention", "p = 1"]);
}
