//! The BERT model on small random configs: input validation, padding and causal masking,
//! dropout seeding, the MLM/NSP/classification heads and their gradients.
//! (The real-model numerics are checked in `bert_minilm.rs`.)

mod common;

use cloze::bert::{
    BertConfig, BertForPreTraining, BertForSequenceClassification, BertInput, BertModel,
    ForwardOptions, MlmHead,
};
use cloze::{ParamStore, Tape, Tensor};
use common::assert_mentions;

fn micro_config() -> BertConfig {
    let mut c = BertConfig::with_shape(2, 16, 2, 32);
    c.vocab_size = 50;
    c.max_position_embeddings = 12;
    c
}

fn built(config: &BertConfig, seed: u64) -> (BertModel, ParamStore) {
    let mut store = ParamStore::new();
    let m = BertModel::new(config, &mut store, seed).unwrap();
    (m, store)
}

fn run(
    model: &BertModel,
    store: &ParamStore,
    input: &BertInput<'_>,
    train: bool,
    seed: u64,
) -> (Tensor, Tensor) {
    let mut tape = Tape::new();
    tape.set_training(train);
    let opts = ForwardOptions {
        seed,
        ..Default::default()
    };
    let out = tape
        .no_grad(|t| model.forward(t, store, input, &opts))
        .unwrap();
    (
        out.last_hidden_state.value().clone(),
        out.pooled.unwrap().value().clone(),
    )
}

fn forward_err(model: &BertModel, store: &ParamStore, input: BertInput<'_>) -> String {
    let mut tape = Tape::new();
    match model.forward(&mut tape, store, &input, &ForwardOptions::default()) {
        Ok(_) => panic!("input should be rejected"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let (m, s) = built(&micro_config(), 0);
    let ids = [1u32, 2, 3, 4, 5, 6];

    let bad = [1u32, 2, 3, 4, 50, 6];
    let e = forward_err(&m, &s, BertInput::new(&bad, 2, 3));
    assert_mentions(&e, &["token id 50", "[1, 1]", "vocab_size 50"]);

    let long = [1u32; 13];
    let e = forward_err(&m, &s, BertInput::new(&long, 1, 13));
    assert_mentions(&e, &["sequence length 13", "max_position_embeddings 12"]);

    let e = forward_err(&m, &s, BertInput::new(&[], 0, 3));
    assert_mentions(&e, &["empty input", "batch 0"]);
    let e = forward_err(&m, &s, BertInput::new(&[], 2, 0));
    assert_mentions(&e, &["empty input", "seq 0"]);

    let tt = [0u32, 0, 0, 1, 1, 2];
    let e = forward_err(&m, &s, BertInput::new(&ids, 2, 3).with_token_types(&tt));
    assert_mentions(&e, &["token_type_id 2", "[1, 2]", "type_vocab_size 2"]);

    let mask = [1u32, 1, 1, 1, 1];
    let e = forward_err(
        &m,
        &s,
        BertInput::new(&ids, 2, 3).with_attention_mask(&mask),
    );
    assert_mentions(&e, &["attention_mask has 5 entries", "= 6"]);

    let mask = [1u32, 1, 1, 1, 3, 1];
    let e = forward_err(
        &m,
        &s,
        BertInput::new(&ids, 2, 3).with_attention_mask(&mask),
    );
    assert_mentions(&e, &["attention_mask value 3", "[1, 1]", "0 or 1"]);

    let mask = [1u32, 1, 1, 1, 1, 2];
    let e = forward_err(
        &m,
        &s,
        BertInput::new(&ids, 2, 3).with_attention_mask(&mask),
    );
    assert!(e.contains("attention_mask value 2"), "{e}");

    let tt = [0u32; 4];
    let e = forward_err(&m, &s, BertInput::new(&ids, 2, 3).with_token_types(&tt));
    assert!(e.contains("token_type_ids has 4 entries"), "{e}");

    let e = forward_err(&m, &s, BertInput::new(&ids, 2, 4));
    assert_mentions(&e, &["input_ids has 6 entries", "= 8"]);
}

#[test]
fn forward_is_deterministic_and_shaped() {
    let (m, s) = built(&micro_config(), 3);
    let ids = [2u32, 7, 9, 11, 3, 4, 5, 6];
    let tt = [0u32, 0, 1, 1, 0, 0, 0, 1];
    let input = BertInput::new(&ids, 2, 4).with_token_types(&tt);
    let (h1, p1) = run(&m, &s, &input, false, 0);
    let (h2, p2) = run(&m, &s, &input, false, 0);
    assert_eq!(h1.shape(), &[2, 4, 16]);
    assert_eq!(p1.shape(), &[2, 16]);
    assert!(h1 == h2 && p1 == p2);
    assert!(p1.data().iter().all(|v| v.abs() <= 1.0), "pooler is a tanh");
    // Segment ids matter.
    let (h3, _) = run(&m, &s, &BertInput::new(&ids, 2, 4), false, 0);
    assert!(h1.max_abs_diff(&h3).unwrap() > 1e-3);
}

#[test]
fn padding_does_not_change_real_positions() {
    // Keys at padded positions get −10000 added: exp(−10000) is exactly 0 in f32, so real
    // positions see the same sums (plus exact zeros). The only differences allowed are
    // from a GEMM blocking that may depend on the sequence length: tolerance 1e-5 on values
    // of magnitude ~1 (LayerNorm outputs).
    let (m, s) = built(&micro_config(), 4);
    let short = [2u32, 7, 9, 3];
    let (h_short, p_short) = run(&m, &s, &BertInput::new(&short, 1, 4), false, 0);
    let padded = [2u32, 7, 9, 3, 0, 0, 0];
    let mask = [1u32, 1, 1, 1, 0, 0, 0];
    let input = BertInput::new(&padded, 1, 7).with_attention_mask(&mask);
    let (h_pad, p_pad) = run(&m, &s, &input, false, 0);
    let mut worst = 0.0f32;
    for p in 0..4 {
        for j in 0..16 {
            worst = worst.max((h_short.data()[p * 16 + j] - h_pad.data()[p * 16 + j]).abs());
        }
    }
    assert!(worst <= 1e-5, "real positions moved by {worst}");
    assert!(p_short.max_abs_diff(&p_pad).unwrap() <= 1e-5);
    // Without the mask the padding is attended to, and the outputs move.
    let (h_unmasked, _) = run(&m, &s, &BertInput::new(&padded, 1, 7), false, 0);
    assert!(h_unmasked.data()[..16]
        .iter()
        .zip(&h_short.data()[..16])
        .any(|(a, b)| (a - b).abs() > 1e-3));
}

#[test]
fn causal_mode_sees_only_the_past() {
    let mut c = micro_config();
    c.is_decoder = true; // HF's name for a causal BERT
    let (m, s) = built(&c, 5);
    assert!(m.is_causal());
    let a = [2u32, 7, 9, 11, 13];
    let b = [2u32, 7, 9, 40, 41]; // differs from position 3 on
    let (ha, _) = run(&m, &s, &BertInput::new(&a, 1, 5), false, 0);
    let (hb, _) = run(&m, &s, &BertInput::new(&b, 1, 5), false, 0);
    let row = |t: &Tensor, p: usize| t.data()[p * 16..(p + 1) * 16].to_vec();
    for p in 0..3 {
        assert_eq!(row(&ha, p), row(&hb, p), "position {p} saw the future");
    }
    assert_ne!(row(&ha, 3), row(&hb, 3));
    // The same weights, bidirectional: early positions see the change.
    let mut m = m;
    m.set_causal(false);
    assert!(!m.config().is_decoder);
    let (ha, _) = run(&m, &s, &BertInput::new(&a, 1, 5), false, 0);
    let (hb, _) = run(&m, &s, &BertInput::new(&b, 1, 5), false, 0);
    assert_ne!(row(&ha, 0), row(&hb, 0));
}

#[test]
fn dropout_is_seeded_and_off_in_eval() {
    let c = micro_config();
    let (m, s) = built(&c, 6);
    let ids = [2u32, 7, 9, 11, 3, 4];
    let input = BertInput::new(&ids, 1, 6);
    let (t1, _) = run(&m, &s, &input, true, 42);
    let (t2, _) = run(&m, &s, &input, true, 42);
    let (t3, _) = run(&m, &s, &input, true, 43);
    let (e1, _) = run(&m, &s, &input, false, 42);
    let (e2, _) = run(&m, &s, &input, false, 43);
    assert!(t1 == t2, "same step seed, same masks");
    assert!(t1 != t3, "another step seed, other masks");
    assert!(t1 != e1, "training applies dropout");
    assert!(e1 == e2, "eval ignores the seed");
    // With every dropout probability 0, training equals eval.
    let mut c0 = c.clone();
    c0.hidden_dropout_prob = 0.0;
    c0.attention_probs_dropout_prob = 0.0;
    let (m0, s0) = built(&c0, 6);
    let (z1, _) = run(&m0, &s0, &input, true, 42);
    let (z2, _) = run(&m0, &s0, &input, false, 42);
    assert!(z1 == z2);
}

#[test]
fn pretraining_heads_shapes_and_initial_loss() {
    let c = micro_config();
    let mut store = ParamStore::new();
    let model = BertForPreTraining::new(&c, &mut store, 7).unwrap();
    let ids = [2u32, 7, 9, 11, 3, 4, 5, 6, 1, 8];
    let positions = [1u32, 3, 0, 4]; // [B=2, P=2] per-sequence positions
    let flat = MlmHead::flatten_positions(&positions, 2, 5).unwrap();
    assert_eq!(flat, vec![1, 3, 5, 9]);
    let mut tape = Tape::new();
    tape.set_training(false);
    let out = model
        .forward(
            &mut tape,
            &store,
            &BertInput::new(&ids, 2, 5),
            &flat,
            &ForwardOptions::default(),
        )
        .unwrap();
    assert_eq!(out.mlm_logits.shape(), &[4, 50]);
    assert_eq!(out.nsp_logits.shape(), &[2, 2]);
    let loss = model
        .loss(&mut tape, &out, &[9, 11, 5, -100], &[0, 1])
        .unwrap();
    // At initialisation the logits are small (σ ≈ √16·0.0176 ≈ 0.07), so both losses are
    // close to uniform: ln 50 + ln 2 = 4.605.
    let l = loss.value().item().unwrap();
    let uniform = (50f32).ln() + (2f32).ln();
    assert!((l - uniform).abs() < 0.1, "initial loss {l} vs {uniform}");

    // The decoder is tied: the MLM loss reaches rows of the word-embedding table of tokens
    // that are not in the input (only through the output projection).
    let grads = tape.backward(&loss).unwrap();
    store.accumulate(&grads).unwrap();
    let emb = store
        .grad(store.id("embeddings.word_embeddings.weight").unwrap())
        .unwrap();
    let row_norm = |r: usize| {
        emb.data()[r * 16..(r + 1) * 16]
            .iter()
            .map(|v| v.abs())
            .sum::<f32>()
    };
    assert!(
        row_norm(30) > 0.0,
        "row 30 is not in the input but is a decoder output"
    );
    for name in [
        "cls.predictions.bias",
        "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.seq_relationship.weight",
        "pooler.dense.weight",
    ] {
        let g = store
            .grad(store.id(name).unwrap())
            .unwrap_or_else(|| panic!("{name}"));
        assert!(
            g.data().iter().any(|&v| v != 0.0),
            "{name} has a zero gradient"
        );
    }
    // Errors name the bad position.
    let e = MlmHead::flatten_positions(&[1, 5], 1, 5)
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["position 5", "seq 5"]);
    let e = model
        .mlm
        .forward(&mut tape, &store, &out.bert.last_hidden_state, &[10])
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["flat position 10", "10"]);
}

#[test]
fn head_gradients_match_finite_differences() {
    // Central differences in f32 on a micro model, eval mode. Step h = 1e-2; the loss is
    // ~4.6, so f32 rounding of each loss value (~5e-7) contributes ~5e-5 to the difference
    // quotient and the O(h²) truncation term a few 1e-5 for these smooth functions;
    // tolerance 2e-3 absolute + 2% relative covers both with a wide margin while a missing
    // or transposed term (errors of order the gradient itself) fails.
    check_head_gradients(&micro_config(), &[]);
}

#[test]
fn pre_ln_gradients_match_finite_differences() {
    let mut c = micro_config();
    c.set_pre_layer_norm(true);
    check_head_gradients(
        &c,
        &[
            ("encoder.LayerNorm.weight", 5),
            ("encoder.LayerNorm.bias", 2),
            ("encoder.layer.0.attention.output.LayerNorm.weight", 7),
            ("encoder.layer.1.intermediate.dense.weight", 33),
        ],
    );
}

fn check_head_gradients(c: &BertConfig, extra: &[(&str, usize)]) {
    let mut store = ParamStore::new();
    let model = BertForPreTraining::new(c, &mut store, 11).unwrap();
    // Non-trivial LayerNorm/bias values so their gradients are generic.
    for id in store.ids().collect::<Vec<_>>() {
        let name = store.name(id).to_string();
        if name.ends_with(".bias") || name.contains("LayerNorm") {
            for (i, v) in store.value_mut(id).iter_mut().enumerate() {
                *v += 0.1 * (((i * 7 + name.len()) % 11) as f32 / 11.0 - 0.5);
            }
        }
    }
    let ids = [2u32, 7, 9, 11, 3, 4, 5, 6, 1, 8];
    let mask = [1u32, 1, 1, 1, 1, 1, 1, 1, 0, 0];
    let tt = [0u32, 0, 1, 1, 1, 0, 0, 1, 0, 0];
    let flat = [1u32, 3, 6];
    let mlm_labels = [9, 11, 5];
    let nsp_labels = [1, 0];
    let loss_of = |store: &ParamStore| -> (f32, cloze::Gradients) {
        let mut tape = Tape::new();
        tape.set_training(false);
        let input = BertInput::new(&ids, 2, 5)
            .with_token_types(&tt)
            .with_attention_mask(&mask);
        let out = model
            .forward(&mut tape, store, &input, &flat, &ForwardOptions::default())
            .unwrap();
        let loss = model
            .loss(&mut tape, &out, &mlm_labels, &nsp_labels)
            .unwrap();
        let g = tape.backward(&loss).unwrap();
        (loss.value().item().unwrap(), g)
    };
    let (_, grads) = loss_of(&store);
    let checks = [
        ("cls.predictions.bias", 9),
        ("cls.predictions.transform.dense.weight", 17),
        ("cls.predictions.transform.LayerNorm.weight", 3),
        ("cls.seq_relationship.weight", 5),
        ("cls.seq_relationship.bias", 1),
        ("pooler.dense.weight", 40),
        ("embeddings.word_embeddings.weight", 11 * 16 + 2), // row 11: input and label
        ("embeddings.word_embeddings.weight", 30 * 16 + 4), // row 30: decoder only
        ("embeddings.token_type_embeddings.weight", 16 + 3),
        ("encoder.layer.1.attention.self.key.weight", 21),
        ("encoder.layer.0.output.LayerNorm.bias", 6),
    ];
    let h = 1e-2f32;
    for &(name, idx) in checks.iter().chain(extra) {
        let id = store.id(name).unwrap();
        let analytic = grads.param_total(id).unwrap().data()[idx];
        let orig = store.value(id).data()[idx];
        store.value_mut(id)[idx] = orig + h;
        let (lp, ..) = loss_of(&store);
        store.value_mut(id)[idx] = orig - h;
        let (lm, ..) = loss_of(&store);
        store.value_mut(id)[idx] = orig;
        let fd = (lp - lm) / (2.0 * h);
        let tol = 2e-3 + 0.02 * analytic.abs();
        eprintln!("{name}[{idx}]: analytic {analytic:.6}, finite difference {fd:.6}");
        assert!(
            (fd - analytic).abs() <= tol,
            "{name}[{idx}]: analytic {analytic} vs fd {fd}"
        );
    }
}

#[test]
fn sequence_classifier_forward_and_dropout_seed() {
    let c = micro_config();
    let mut store = ParamStore::new();
    let model = BertForSequenceClassification::new(&c, &mut store, 3, 9).unwrap();
    let ids = [2u32, 7, 9, 11, 3, 4];
    let input = BertInput::new(&ids, 2, 3);
    let logits = |train: bool, seed: u64| {
        let mut tape = Tape::new();
        tape.set_training(train);
        let opts = ForwardOptions {
            seed,
            ..Default::default()
        };
        model
            .forward(&mut tape, &store, &input, &opts)
            .unwrap()
            .value()
            .clone()
    };
    let l = logits(false, 0);
    assert_eq!(l.shape(), &[2, 3]);
    assert!(logits(true, 1) == logits(true, 1));
    assert!(logits(true, 1) != logits(true, 2));
    let e = BertForSequenceClassification::new(&c, &mut ParamStore::new(), 0, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("num_labels"), "{e}");
}

#[test]
fn causal_model_pools_from_the_last_real_token() {
    let mut c = micro_config();
    c.is_decoder = true;
    let (m, s) = built(&c, 8);
    // row 0: 5 real tokens; row 1: 3 real tokens and 2 pads
    let ids = [2u32, 7, 9, 11, 13, 2, 20, 21, 0, 0];
    let mask = [1u32, 1, 1, 1, 1, 1, 1, 1, 0, 0];
    let input = BertInput::new(&ids, 2, 5).with_attention_mask(&mask);
    assert_eq!(m.pooled_rows(&input), vec![4, 7]);
    let (_, pooled) = run(&m, &s, &input, false, 0);
    // each row pools like the same sequence alone, unpadded: from its last token, which is
    // the only one that has seen the whole input
    let (_, p0) = run(&m, &s, &BertInput::new(&ids[..5], 1, 5), false, 0);
    let (_, p1) = run(&m, &s, &BertInput::new(&ids[5..8], 1, 3), false, 0);
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    assert!(close(&pooled.data()[..16], p0.data()));
    assert!(close(&pooled.data()[16..], p1.data()));
    // and the last token depends on the whole input, unlike position 0 under causal attention
    let (_, q1) = run(&m, &s, &BertInput::new(&[2u32, 20, 30], 1, 3), false, 0);
    assert!(!close(p1.data(), q1.data()));
    // a bidirectional model keeps pooling [CLS]
    let mut m = m;
    m.set_causal(false);
    assert_eq!(m.pooled_rows(&input), vec![0, 5]);
}

/// LayerNorm of one row with γ = 1, β = 0 (the test's own reference).
fn ln_row(x: &[f32], eps: f32) -> Vec<f32> {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    x.iter().map(|v| (v - mean) / (var + eps).sqrt()).collect()
}

#[test]
fn pre_ln_layer_adds_sublayers_to_the_unnormalised_stream() {
    // One layer whose matrices are all zero: each sub-layer then outputs its bias alone, so
    // pre-LN gives LN_final(e + b_attn + b_ffn) and post-LN gives LN(LN(e + b_attn) + b_ffn),
    // where e is the embeddings output. Both computed here by hand.
    for pre in [false, true] {
        let mut c = micro_config();
        c.num_hidden_layers = 1;
        c.set_pre_layer_norm(pre);
        let (model, mut store) = built(&c, 5);
        let h = c.hidden_size;
        let b_attn: Vec<f32> = (0..h).map(|i| 0.3 * (i as f32 - 7.0) / 7.0).collect();
        let b_ffn: Vec<f32> = (0..h).map(|i| ((i * 5) % 7) as f32 / 7.0 - 0.4).collect();
        for id in store.ids().collect::<Vec<_>>() {
            let name = store.name(id).to_string();
            if name.starts_with("encoder.layer.0.") && !name.contains("LayerNorm") {
                store.value_mut(id).iter_mut().for_each(|v| *v = 0.0);
            }
        }
        let set = |store: &mut ParamStore, name: &str, v: &[f32]| {
            let id = store.id(name).unwrap();
            store.value_mut(id).copy_from_slice(v);
        };
        set(
            &mut store,
            "encoder.layer.0.attention.output.dense.bias",
            &b_attn,
        );
        set(&mut store, "encoder.layer.0.output.dense.bias", &b_ffn);
        let ids = [2u32, 7, 9, 11];
        let input = BertInput::new(&ids, 1, 4);
        let mut tape = Tape::new();
        tape.set_training(false);
        let out = tape
            .no_grad(|t| model.forward(t, &store, &input, &ForwardOptions::default()))
            .unwrap();
        let e = out.embedding_output.value().data().to_vec();
        let got = out.last_hidden_state.value().data().to_vec();
        let eps = c.layer_norm_eps;
        for row in 0..4 {
            let x = &e[row * h..(row + 1) * h];
            let want: Vec<f32> = if pre {
                let s: Vec<f32> = (0..h).map(|i| x[i] + b_attn[i] + b_ffn[i]).collect();
                ln_row(&s, eps)
            } else {
                let a = ln_row(&(0..h).map(|i| x[i] + b_attn[i]).collect::<Vec<_>>(), eps);
                ln_row(&(0..h).map(|i| a[i] + b_ffn[i]).collect::<Vec<_>>(), eps)
            };
            for i in 0..h {
                let g = got[row * h + i];
                assert!(
                    (g - want[i]).abs() < 1e-4,
                    "pre_layer_norm {pre}, row {row}, dim {i}: got {g}, want {}",
                    want[i]
                );
            }
        }
    }
}

#[test]
fn pre_ln_config_is_marked_so_hf_cannot_mistake_it_for_post_ln() {
    let mut c = micro_config();
    c.set_pre_layer_norm(true);
    let json = c.to_json_string();
    assert!(
        json.contains("\"model_type\": \"cloze-preln-bert\""),
        "{json}"
    );
    assert!(json.contains("\"pre_layer_norm\": true"), "{json}");
    let back = BertConfig::from_json_str(&json, "test").unwrap();
    assert_eq!(back, c);
    // a post-LN config never writes the key, so HF files stay as they were
    assert!(!micro_config().to_json_string().contains("pre_layer_norm"));
    // a flag that disagrees with model_type is refused, naming both
    let bad = json.replace("\"pre_layer_norm\": true", "\"pre_layer_norm\": false");
    let err = BertConfig::from_json_str(&bad, "test")
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["cloze-preln-bert", "pre_layer_norm"]);
    // the final LayerNorm is counted
    let mut store = ParamStore::new();
    let _ = BertModel::new(&c, &mut store, 1).unwrap();
    assert_eq!(store.num_elements(), c.bert_model_params());
}
