//! Mixed-precision (bf16) matrix products: the values of `matmul`/`bmm` and their gradients
//! under [`Precision::Bf16`], a toy BERT pre-training that converges in bf16 as in f32, and the
//! config check that refuses bf16 where the CPU cannot run it natively.
//!
//! The expected values are computed here, in f64, from operands rounded to bf16 with `half`
//! (not with the kernels' converter), so they do not come from the code under test.

mod common;

use cloze::bert::model::{BertForPreTraining, BertInput, ForwardOptions};
use cloze::bert::BertConfig;
use cloze::optim::adamw::bert_decays;
use cloze::optim::{AdamW, AdamWConfig};
use cloze::{ParamStore, Precision, Tape, Tensor, Var};
use half::bf16;
use rand::{Rng, SeedableRng};

fn round(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| bf16::from_f32(v).to_f64()).collect()
}

/// C = op(A)·op(B) in f64 over row-major `a` (stored `ar × ac`) and `b` (stored `br × bc`).
fn product(a: &[f64], [ar, ac]: [usize; 2], ta: bool, b: &[f64], bc: usize, tb: bool) -> Vec<f64> {
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let n = if tb { b.len() / bc } else { bc };
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k)
                .map(|p| {
                    let av = if ta { a[p * ac + i] } else { a[i * ac + p] };
                    let bv = if tb { b[j * bc + p] } else { b[p * bc + j] };
                    av * bv
                })
                .sum();
        }
    }
    c
}

fn close(got: &[f32], want: &[f64], k: usize, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        // f32 accumulation of exact bf16 products: error ~ k·2^-24 relative to the sum of |terms|
        let tol = 1e-6 * (k as f64 + 4.0) * scale;
        assert!(
            (*g as f64 - w).abs() <= tol,
            "{what}[{i}]: {g} vs {w} (tolerance {tol})"
        );
    }
}

fn random(len: usize, rng: &mut impl Rng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

#[test]
fn bf16_matmul_forward_and_backward_are_products_of_rounded_operands() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    // odd sizes, every transpose combination
    for (m, n, k) in [(7, 5, 13), (33, 17, 9), (1, 40, 3)] {
        for ta in [false, true] {
            for tb in [false, true] {
                let sa = if ta { [k, m] } else { [m, k] };
                let sb = if tb { [n, k] } else { [k, n] };
                let a = random(m * k, &mut rng);
                let b = random(k * n, &mut rng);
                let dc = random(m * n, &mut rng);
                let mut t = Tape::new();
                assert_eq!(t.set_precision(Precision::Bf16), Precision::F32);
                let va = t.leaf(Tensor::from_vec(a.clone(), &sa).unwrap());
                let vb = t.leaf(Tensor::from_vec(b.clone(), &sb).unwrap());
                let c = t.matmul_t(&va, &vb, ta, tb).unwrap();
                let (ra, rb, rdc) = (round(&a), round(&b), round(&dc));
                let what = format!("m{m} n{n} k{k} ta{ta} tb{tb}");
                close(
                    c.value().data(),
                    &product(&ra, sa, ta, &rb, sb[1], tb),
                    k,
                    &format!("C {what}"),
                );
                // loss = Σ C ⊙ dC, so the output gradient is dC
                let w = Var::constant(Tensor::from_vec(dc.clone(), &[m, n]).unwrap());
                let prod = t.mul(&c, &w).unwrap();
                let loss = t.sum(&prod).unwrap();
                let g = t.backward(&loss).unwrap();
                // dA as stored: op(A) = A → dC·op(B)ᵀ (m×k); op(A) = Aᵀ → (dC·op(B)ᵀ)ᵀ
                let dop_a = product(&rdc, [m, n], false, &rb, sb[1], !tb); // m×k
                let dop_b = product(&ra, sa, !ta, &rdc, n, false); // k×n
                let stored = |x: &[f64], r: usize, cols: usize, tr: bool| -> Vec<f64> {
                    if !tr {
                        return x.to_vec();
                    }
                    let mut o = vec![0.0; x.len()];
                    for i in 0..r {
                        for j in 0..cols {
                            o[j * r + i] = x[i * cols + j];
                        }
                    }
                    o
                };
                close(
                    g.get(&va).unwrap().data(),
                    &stored(&dop_a, m, k, ta),
                    n,
                    &format!("dA {what}"),
                );
                close(
                    g.get(&vb).unwrap().data(),
                    &stored(&dop_b, k, n, tb),
                    m,
                    &format!("dB {what}"),
                );
            }
        }
    }
}

#[test]
fn bf16_bmm_matches_rounded_products_per_batch() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let (batch, m, n, k) = (3, 5, 7, 11);
    let a = random(batch * m * k, &mut rng);
    let b = random(batch * n * k, &mut rng);
    let mut t = Tape::new();
    t.set_precision(Precision::Bf16);
    let c = t
        .bmm(
            &Var::constant(Tensor::from_vec(a.clone(), &[batch, m, k]).unwrap()),
            &Var::constant(Tensor::from_vec(b.clone(), &[batch, n, k]).unwrap()),
            false,
            true,
        )
        .unwrap();
    for i in 0..batch {
        let want = product(
            &round(&a[i * m * k..(i + 1) * m * k]),
            [m, k],
            false,
            &round(&b[i * n * k..(i + 1) * n * k]),
            k,
            true,
        );
        close(
            &c.value().data()[i * m * n..(i + 1) * m * n],
            &want,
            k,
            &format!("batch {i}"),
        );
    }
}

#[test]
fn bf16_differs_from_f32_so_the_setting_is_live() {
    // 1 + 2^-10 is not a bf16 value (8 significant bits): rounded, the product changes.
    let x = 1.0 + 2f32.powi(-10);
    let run = |p: Precision| {
        let mut t = Tape::new();
        t.set_precision(p);
        let a = Var::constant(Tensor::from_vec(vec![x; 4], &[2, 2]).unwrap());
        t.matmul(&a, &a).unwrap().value().data()[0]
    };
    assert_eq!(run(Precision::F32), 2.0 * x * x);
    assert_eq!(run(Precision::Bf16), 2.0);
}

/// A toy pre-training task with structure to learn: each sequence repeats one token id, so a
/// masked position is read off its neighbours (the next-sentence label is always 0, learned by
/// its bias alone).
fn toy_loss_curve(precision: Precision, seed: u64, steps: usize) -> (f32, f32) {
    let mut cfg = BertConfig::with_shape(2, 32, 2, 64);
    cfg.vocab_size = 64;
    cfg.max_position_embeddings = 32;
    cfg.hidden_dropout_prob = 0.0;
    cfg.attention_probs_dropout_prob = 0.0;
    let mut store = ParamStore::new();
    let model = BertForPreTraining::new(&cfg, &mut store, seed).unwrap();
    let mut opt = AdamW::new(AdamWConfig::bert(), &store, bert_decays).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (batch, seq) = (16, 16);
    let mut tape = Tape::new();
    tape.set_precision(precision);
    let (mut first, mut last) = (0.0, 0.0);
    for step in 0..steps {
        let mut ids = Vec::with_capacity(batch * seq);
        let (mut rows, mut labels, mut nsp) = (Vec::new(), Vec::new(), Vec::new());
        for b in 0..batch {
            let id = rng.random_range(5..64u32);
            ids.extend(std::iter::repeat_n(id, seq));
            nsp.push(0);
            for _ in 0..3 {
                let p = rng.random_range(1..seq - 1);
                rows.push((b * seq + p) as u32);
                labels.push(ids[b * seq + p] as i32);
                ids[b * seq + p] = 4; // the toy [MASK]
            }
        }
        tape.reset();
        store.zero_grads();
        let input = BertInput::new(&ids, batch, seq);
        let opts = ForwardOptions {
            seed: step as u64,
            output_hidden_states: false,
        };
        let out = model
            .forward(&mut tape, &store, &input, &rows, &opts)
            .unwrap();
        let loss = model.loss(&mut tape, &out, &labels, &nsp).unwrap();
        let value = loss.value().item().unwrap();
        if step < 10 {
            first += value / 10.0;
        }
        if step >= steps - 10 {
            last += value / 10.0;
        }
        let grads = tape.backward(&loss).unwrap();
        store.accumulate(&grads).unwrap();
        store.clip_grad_norm(1.0).unwrap();
        let lr = 3e-3 * (1.0 - step as f32 / steps as f32);
        opt.step(&mut store, lr).unwrap();
    }
    (first, last)
}

#[test]
fn toy_pretraining_converges_in_bf16_as_in_f32() {
    let steps = 300;
    let mut finals = Vec::new();
    for seed in [1, 2] {
        let (f0, f_end) = toy_loss_curve(Precision::F32, seed, steps);
        let (b0, b_end) = toy_loss_curve(Precision::Bf16, seed, steps);
        // Both start near ln 64 (MLM) + ln 2 (NSP) and learn most of the task.
        for (name, start, end) in [("f32", f0, f_end), ("bf16", b0, b_end)] {
            assert!(start > 4.0, "{name} seed {seed}: first loss {start}");
            assert!(end < 0.5 * start, "{name} seed {seed}: {start} → {end}");
        }
        eprintln!("seed {seed}: f32 {f0:.3} → {f_end:.3}, bf16 {b0:.3} → {b_end:.3}");
        finals.push((f_end, b_end));
    }
    // bf16 ends where f32 does, within what two seeds of f32 differ by (or 0.15 nats).
    let seed_gap = (finals[0].0 - finals[1].0).abs().max(0.15);
    for (seed, (f, b)) in finals.iter().enumerate() {
        assert!(
            (f - b).abs() <= seed_gap,
            "seed {}: f32 ends at {f}, bf16 at {b}; seed gap {seed_gap}",
            seed + 1
        );
    }
}

#[test]
fn bf16_pretrain_config_runs_where_native_and_is_refused_elsewhere() {
    let dir = common::pretrain::workdir("bf16");
    let path = common::pretrain::setup_with(&dir, 6, "", "seed = 11\nprecision = \"bf16\"\n");
    let cfg = cloze::pretrain::config::PretrainConfig::from_file(&path).unwrap();
    assert_eq!(cfg.train.precision, Precision::Bf16);
    if cloze::kernels::gemm::bf16::native() {
        let totals = cloze::pretrain::trainer::pretrain_from_file(&path).unwrap();
        let loss = totals.lm_loss_sum / totals.lm_count;
        assert!(totals.lm_count > 0.0 && loss.is_finite(), "{totals:?}");
    } else {
        let msg = cfg.validate().unwrap_err().to_string();
        common::assert_mentions(&msg, &["train.precision", "bf16", "AVX512-BF16", "f32"]);
        let msg = cloze::pretrain::trainer::pretrain_from_file(&path)
            .unwrap_err()
            .to_string();
        common::assert_mentions(&msg, &["train.precision"]);
    }
    // an unknown precision names the bad value
    let text = std::fs::read_to_string(&path).unwrap();
    let bad = text.replace("precision = \"bf16\"", "precision = \"fp8\"");
    let msg = cloze::pretrain::config::PretrainConfig::from_toml_str(&bad, "test")
        .unwrap_err()
        .to_string();
    common::assert_mentions(&msg, &["fp8"]);
    let _ = std::fs::remove_dir_all(&dir);
}
