//! AdamW against the update written out independently in f64, and BERT's decay rule.

use cloze::optim::adamw::bert_decays;
use cloze::optim::{AdamW, AdamWConfig};
use cloze::{ParamStore, Tape, Tensor};

/// BERT's `AdamWeightDecayOptimizer` (or textbook AdamW with bias correction) in f64.
fn expected(p0: f64, grads: &[f64], lr: f64, c: &AdamWConfig, decay: bool) -> f64 {
    let (b1, b2, eps) = (c.beta1 as f64, c.beta2 as f64, c.eps as f64);
    let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
    for (t, &g) in grads.iter().enumerate() {
        m = b1 * m + (1.0 - b1) * g;
        v = b2 * v + (1.0 - b2) * g * g;
        let (mh, vh) = if c.bias_correction {
            let t = (t + 1) as i32;
            (m / (1.0 - b1.powi(t)), v / (1.0 - b2.powi(t)))
        } else {
            (m, v)
        };
        let wd = if decay { c.weight_decay as f64 } else { 0.0 };
        p -= lr * (mh / (vh.sqrt() + eps) + wd * p);
    }
    p
}

fn run(config: AdamWConfig) {
    let mut store = ParamStore::new();
    let w = store
        .add(
            "encoder.dense.weight",
            Tensor::from_vec(vec![0.5, -1.0], &[2]).unwrap(),
        )
        .unwrap();
    let b = store
        .add(
            "encoder.dense.bias",
            Tensor::from_vec(vec![0.25], &[1]).unwrap(),
        )
        .unwrap();
    let mut opt = AdamW::new(config, &store, bert_decays).unwrap();
    assert!(opt.decays(w) && !opt.decays(b));
    let lr = 1e-2;
    let mut gw_hist = [vec![], vec![]];
    let mut gb_hist = vec![];
    let mut tape = Tape::new();
    for step in 0..5 {
        tape.reset();
        store.zero_grads();
        // loss = Σ (k·w)² + 3·b·(step+1): gradient 2k²w and 3(step+1)
        let k = 1.0 + step as f32 * 0.5;
        let wv = tape.param(&store, w);
        let bv = tape.param(&store, b);
        let kw = tape
            .mul(&wv, &cloze::Var::constant(Tensor::full(&[2], k)))
            .unwrap();
        let sq = tape.mul(&kw, &kw).unwrap();
        let lw = tape.sum(&sq).unwrap();
        let lb = tape
            .mul(
                &bv,
                &cloze::Var::constant(Tensor::full(&[1], 3.0 * (step + 1) as f32)),
            )
            .unwrap();
        let lb = tape.sum(&lb).unwrap();
        let loss = tape.add(&lw, &lb).unwrap();
        let g = tape.backward(&loss).unwrap();
        store.accumulate(&g).unwrap();
        for (i, gw) in store.grad(w).unwrap().data().iter().enumerate() {
            gw_hist[i].push(*gw as f64);
        }
        gb_hist.push(store.grad(b).unwrap().data()[0] as f64);
        opt.step(&mut store, lr).unwrap();
    }
    // Gradients depend on the evolving weights, so feed the recorded gradients to the reference.
    let want_w0 = expected(0.5, &gw_hist[0], lr as f64, &config, true);
    let want_w1 = expected(-1.0, &gw_hist[1], lr as f64, &config, true);
    let want_b = expected(0.25, &gb_hist, lr as f64, &config, false);
    let got = store.value(w).data().to_vec();
    assert!(
        (got[0] as f64 - want_w0).abs() < 1e-6,
        "{} vs {want_w0}",
        got[0]
    );
    assert!(
        (got[1] as f64 - want_w1).abs() < 1e-6,
        "{} vs {want_w1}",
        got[1]
    );
    assert!((store.value(b).data()[0] as f64 - want_b).abs() < 1e-6);
    assert_eq!(opt.steps(), 5);
}

#[test]
fn adamw_bert_reference_matches_f64_formula() {
    run(AdamWConfig::bert());
}

#[test]
fn adamw_with_bias_correction_matches_f64_formula() {
    run(AdamWConfig {
        bias_correction: true,
        ..AdamWConfig::bert()
    });
}

#[test]
fn bert_decay_rule_skips_layernorm_and_biases() {
    assert!(bert_decays("embeddings.word_embeddings.weight"));
    assert!(bert_decays("cls.seq_relationship.weight"));
    assert!(!bert_decays("encoder.layer.0.output.LayerNorm.weight"));
    assert!(!bert_decays("cls.predictions.bias"));
}

#[test]
fn adamw_rejects_bad_learning_rate_and_hyper_parameters() {
    let mut store = ParamStore::new();
    store.add("w", Tensor::zeros(&[1])).unwrap();
    let mut opt = AdamW::new(AdamWConfig::bert(), &store, |_| true).unwrap();
    let err = opt.step(&mut store, f32::NAN).unwrap_err().to_string();
    assert!(err.contains("NaN"), "{err}");
    let bad = AdamWConfig {
        beta1: 1.0,
        ..AdamWConfig::bert()
    };
    assert!(AdamW::new(bad, &store, |_| true).is_err());
}
