//! BertConfig: presets, HF config.json reading/writing, validation, parameter counts (by
//! formula and by counting the parameters a built model actually holds).
//!
//! Expected counts are the published ones (bert-facts §1, computed independently of this
//! code): BASE 109,482,240 / 110,106,428 with MLM+NSP heads; LARGE 335,141,888 / 336,226,108.

mod common;

use cloze::bert::{
    BertConfig, BertForPreTraining, BertForSequenceClassification, BertModel, HiddenAct,
};
use cloze::{Error, ParamStore};
use common::assert_mentions;
use std::path::PathBuf;

fn scratch_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cloze-bert-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn presets_have_the_paper_shapes() {
    let cases = [
        ("tiny", 2, 128, 2),
        ("mini", 4, 256, 4),
        ("small", 4, 512, 8),
        ("medium", 8, 512, 8),
        ("base", 12, 768, 12),
        ("large", 24, 1024, 16),
    ];
    for (name, l, h, a) in cases {
        let c = BertConfig::preset(name).unwrap();
        assert_eq!(
            (c.num_hidden_layers, c.hidden_size, c.num_attention_heads),
            (l, h, a),
            "{name}"
        );
        assert_eq!(c.intermediate_size, 4 * h, "{name}: FFN is 4H");
        assert_eq!(c.vocab_size, 30522, "{name}");
        assert_eq!(c.max_position_embeddings, 512, "{name}");
        assert_eq!(c.type_vocab_size, 2, "{name}");
        assert_eq!(c.layer_norm_eps, 1e-12, "{name}");
        assert_eq!(c.hidden_act, "gelu", "{name}");
        c.validate().unwrap();
    }
    assert_eq!(BertConfig::base().head_dim(), 64);
    assert_eq!(BertConfig::large().head_dim(), 64);
    let err = BertConfig::preset("huge").unwrap_err().to_string();
    assert!(err.contains("huge"), "{err}");
}

#[test]
fn formula_counts_match_the_published_table() {
    // embeddings, one layer, the encoder, the pooler, BertModel, with the MLM+NSP heads
    for (name, c, want) in [
        (
            "base",
            BertConfig::base(),
            [
                23_837_184,
                7_087_872,
                85_054_464,
                590_592,
                109_482_240,
                110_106_428,
            ],
        ),
        (
            "large",
            BertConfig::large(),
            [
                31_782_912,
                12_596_224,
                302_309_376,
                1_049_600,
                335_141_888,
                336_226_108,
            ],
        ),
    ] {
        let got = [
            c.embedding_params(),
            c.layer_params(),
            c.encoder_params(),
            c.pooler_params(),
            c.bert_model_params(),
            c.pretraining_params(),
        ];
        assert_eq!(got, want, "{name}");
    }
}

/// Counts the elements of a built store, split into encoder (BertModel) and head parameters.
fn built_counts(store: &ParamStore) -> (usize, usize) {
    let mut enc = 0;
    let mut heads = 0;
    for id in store.ids() {
        let n = store.value(id).len();
        if store.name(id).starts_with("cls.") || store.name(id).starts_with("classifier.") {
            heads += n;
        } else {
            enc += n;
        }
    }
    (enc, heads)
}

#[test]
fn built_base_model_has_exactly_the_published_count() {
    // One build of BertForPreTraining-BASE (110M parameters): the BertModel part and the
    // whole store are counted separately.
    let mut store = ParamStore::new();
    BertForPreTraining::new(&BertConfig::base(), &mut store, 1).unwrap();
    let (enc, heads) = built_counts(&store);
    assert_eq!(enc, 109_482_240);
    assert_eq!(store.num_elements(), 110_106_428);
    assert_eq!(enc + heads, store.num_elements());
    // 5 embedding tensors + 16 per layer + 2 pooler + 5 MLM + 2 NSP (decoder tied: no tensor).
    assert_eq!(store.len(), 5 + 16 * 12 + 2 + 5 + 2);
}

#[test]
fn built_small_models_match_the_formula() {
    // LARGE is checked by formula only (building it takes 1.3 GB); here the formula is checked
    // against what is actually built, for every small preset and each model variant.
    for name in ["tiny", "mini"] {
        let c = BertConfig::preset(name).unwrap();
        let mut s = ParamStore::new();
        BertModel::new(&c, &mut s, 0).unwrap();
        assert_eq!(s.num_elements(), c.bert_model_params(), "{name} BertModel");

        let mut s = ParamStore::new();
        BertModel::new_without_pooler(&c, &mut s, 0).unwrap();
        assert_eq!(
            s.num_elements(),
            c.bert_model_params() - c.pooler_params(),
            "{name} without pooler"
        );

        let mut s = ParamStore::new();
        BertForPreTraining::new(&c, &mut s, 0).unwrap();
        assert_eq!(
            s.num_elements(),
            c.pretraining_params(),
            "{name} pre-training"
        );

        let mut s = ParamStore::new();
        BertForSequenceClassification::new(&c, &mut s, 3, 0).unwrap();
        assert_eq!(
            s.num_elements(),
            c.bert_model_params() + c.classifier_params(3),
            "{name} classifier"
        );
    }
}

#[test]
fn built_model_uses_hf_names_and_shapes() {
    let c = BertConfig::tiny();
    let mut s = ParamStore::new();
    BertForPreTraining::new(&c, &mut s, 0).unwrap();
    let shape = |n: &str| {
        s.value(s.id(n).unwrap_or_else(|| panic!("no {n}")))
            .shape()
            .to_vec()
    };
    assert_eq!(shape("embeddings.word_embeddings.weight"), [30522, 128]);
    assert_eq!(shape("embeddings.position_embeddings.weight"), [512, 128]);
    assert_eq!(shape("embeddings.token_type_embeddings.weight"), [2, 128]);
    assert_eq!(shape("embeddings.LayerNorm.weight"), [128]);
    assert_eq!(
        shape("encoder.layer.1.attention.self.query.weight"),
        [128, 128]
    );
    assert_eq!(
        shape("encoder.layer.1.attention.output.LayerNorm.bias"),
        [128]
    );
    assert_eq!(
        shape("encoder.layer.0.intermediate.dense.weight"),
        [512, 128]
    );
    assert_eq!(shape("encoder.layer.0.output.dense.weight"), [128, 512]);
    assert_eq!(shape("pooler.dense.weight"), [128, 128]);
    assert_eq!(shape("cls.predictions.transform.dense.weight"), [128, 128]);
    assert_eq!(shape("cls.predictions.transform.LayerNorm.weight"), [128]);
    assert_eq!(shape("cls.predictions.bias"), [30522]);
    assert_eq!(shape("cls.seq_relationship.weight"), [2, 128]);
    assert_eq!(shape("cls.seq_relationship.bias"), [2]);
}

#[test]
fn initialisation_is_seeded_truncated_normal_with_unit_layer_norms() {
    let c = BertConfig::tiny();
    let build = |seed| {
        let mut s = ParamStore::new();
        BertModel::new(&c, &mut s, seed).unwrap();
        s
    };
    let (a, b, other) = (build(5), build(5), build(6));
    let q = "encoder.layer.0.attention.self.query.weight";
    let val = |s: &ParamStore, n: &str| s.value(s.id(n).unwrap()).clone();
    assert_eq!(val(&a, q), val(&b, q), "same seed, same values");
    assert_ne!(val(&a, q), val(&other, q), "another seed, other values");
    // Truncated at 2σ = 0.04; a sample of 30522·128 values has a std close to σ·0.88
    // (the std of a normal truncated at ±2σ is 0.8796σ).
    let w = val(&a, "embeddings.word_embeddings.weight");
    assert!(w.data().iter().all(|v| v.abs() <= 0.04));
    let n = w.len() as f64;
    let mean = w.data().iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (w
        .data()
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    assert!(mean.abs() < 1e-4, "mean {mean}");
    assert!((std - 0.02 * 0.8796).abs() < 2e-4, "std {std}");
    assert!(val(&a, "embeddings.LayerNorm.weight")
        .data()
        .iter()
        .all(|&v| v == 1.0));
    assert!(val(&a, "encoder.layer.1.output.LayerNorm.bias")
        .data()
        .iter()
        .all(|&v| v == 0.0));
    assert!(val(&a, "encoder.layer.1.output.dense.bias")
        .data()
        .iter()
        .all(|&v| v == 0.0));
    // A parameter's stream depends on its name, not on what was built before it.
    let mut with_heads = ParamStore::new();
    BertForPreTraining::new(&c, &mut with_heads, 5).unwrap();
    assert_eq!(val(&a, q), val(&with_heads, q));
}

// A config.json as HF transformers writes it for a BertModel (keys this crate does not know
// included), written by hand for this test.
const HF_CONFIG: &str = r#"{
  "_name_or_path": "some/model",
  "architectures": ["BertModel"],
  "attention_probs_dropout_prob": 0.1,
  "classifier_dropout": null,
  "gradient_checkpointing": false,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 384,
  "initializer_range": 0.02,
  "intermediate_size": 1536,
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "bert",
  "num_attention_heads": 12,
  "num_hidden_layers": 6,
  "pad_token_id": 0,
  "position_embedding_type": "absolute",
  "transformers_version": "4.8.2",
  "type_vocab_size": 2,
  "use_cache": true,
  "vocab_size": 30522
}"#;

#[test]
fn reads_hf_config_ignoring_unknown_keys() {
    let c = BertConfig::from_json_str(HF_CONFIG, "inline").unwrap();
    assert_eq!(c.architectures, vec!["BertModel".to_string()]);
    common::assert_minilm_shape(&c);
    assert_eq!(c.head_dim(), 32);
    assert_eq!(c.activation().unwrap(), HiddenAct::GeluErf);
    assert_eq!(c.hidden_dropout_prob, 0.1);
    assert!(!c.is_decoder);
}

#[test]
fn missing_optional_keys_take_hf_defaults() {
    let text = r#"{"vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 1,
                   "num_attention_heads": 2, "intermediate_size": 64}"#;
    let c = BertConfig::from_json_str(text, "inline").unwrap();
    assert_eq!(c.model_type, "bert");
    assert_eq!(c.hidden_act, "gelu");
    assert_eq!(c.type_vocab_size, 2);
    assert_eq!(c.max_position_embeddings, 512);
    assert_eq!(c.layer_norm_eps, 1e-12);
    assert_eq!(c.initializer_range, 0.02);
    assert_eq!(c.attention_probs_dropout_prob, 0.1);
}

#[test]
fn tanh_gelu_names() {
    for name in ["gelu_new", "gelu_pytorch_tanh"] {
        let mut c = BertConfig::tiny();
        c.hidden_act = name.into();
        assert_eq!(c.activation().unwrap(), HiddenAct::GeluTanh, "{name}");
    }
}

#[test]
fn writes_hf_names_with_model_type_and_architectures_and_round_trips() {
    let mut c = BertConfig::mini();
    c.architectures = vec!["BertForPreTraining".into()];
    let text = c.to_json_string();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["model_type"], "bert");
    assert_eq!(v["architectures"][0], "BertForPreTraining");
    for key in [
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "hidden_act",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "max_position_embeddings",
        "type_vocab_size",
        "initializer_range",
        "layer_norm_eps",
    ] {
        assert!(v.get(key).is_some(), "written config lacks {key}: {text}");
    }
    assert_eq!(v["hidden_size"], 256);
    assert_eq!(BertConfig::from_json_str(&text, "round trip").unwrap(), c);

    let dir = scratch_dir("save");
    let path = dir.join("config.json");
    c.save(&path).unwrap();
    assert_eq!(BertConfig::from_file(&path).unwrap(), c);
    // The atomic write leaves no temporary file behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["config.json".to_string()]);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn invalid_message(edit: impl FnOnce(&mut BertConfig)) -> String {
    let mut c = BertConfig::tiny();
    edit(&mut c);
    c.validate().unwrap_err().to_string()
}

#[test]
fn validation_names_the_bad_values() {
    let e = invalid_message(|c| {
        c.hidden_size = 100;
        c.num_attention_heads = 12
    });
    assert_mentions(&e, &["hidden_size 100", "num_attention_heads 12"]);
    let e = invalid_message(|c| c.num_hidden_layers = 0);
    assert!(e.contains("num_hidden_layers"), "{e}");
    let e = invalid_message(|c| c.vocab_size = 0);
    assert!(e.contains("vocab_size"), "{e}");
    let e = invalid_message(|c| c.hidden_dropout_prob = 1.5);
    assert!(e.contains("hidden_dropout_prob 1.5"), "{e}");
    let e = invalid_message(|c| c.layer_norm_eps = 0.0);
    assert!(e.contains("layer_norm_eps 0"), "{e}");
    let e = invalid_message(|c| c.initializer_range = -1.0);
    assert!(e.contains("initializer_range -1"), "{e}");
    let e = invalid_message(|c| c.hidden_act = "swish".into());
    assert!(e.contains("swish"), "{e}");
    let e = invalid_message(|c| c.model_type = "roberta".into());
    assert!(e.contains("roberta"), "{e}");
    let e = invalid_message(|c| c.position_embedding_type = "relative_key".into());
    assert!(e.contains("relative_key"), "{e}");
    // Building refuses an invalid config too.
    let mut c = BertConfig::tiny();
    c.num_attention_heads = 3;
    let mut s = ParamStore::new();
    let e = BertModel::new(&c, &mut s, 0).unwrap_err().to_string();
    assert_mentions(&e, &["hidden_size 128", "num_attention_heads 3"]);
}

#[test]
fn corrupt_or_missing_config_file_is_a_clear_error() {
    let dir = scratch_dir("corrupt");
    let path = dir.join("config.json");
    std::fs::write(&path, &HF_CONFIG[..HF_CONFIG.len() / 2]).unwrap();
    let e = BertConfig::from_file(&path).unwrap_err();
    assert!(matches!(e, Error::Format { .. }), "{e:?}");
    let msg = e.to_string();
    assert_mentions(&msg, &["config.json", "not a valid BERT config.json"]);

    std::fs::write(&path, r#"{"vocab_size": "many"}"#).unwrap();
    let msg = BertConfig::from_file(&path).unwrap_err().to_string();
    assert!(msg.contains("vocab_size"), "{msg}");

    // Well-formed JSON that fails validation is reported with the file name.
    std::fs::write(
        &path,
        HF_CONFIG.replace("\"hidden_size\": 384", "\"hidden_size\": 385"),
    )
    .unwrap();
    let msg = BertConfig::from_file(&path).unwrap_err().to_string();
    assert_mentions(&msg, &["config.json", "hidden_size 385"]);

    let missing = dir.join("nope.json");
    let e = BertConfig::from_file(&missing).unwrap_err();
    common::assert_io_error_naming(&e, "nope.json");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sizes from `config.json` are bounded (and their product checked) before anything is
/// allocated: each oversized key is an error naming it and its value, read from the file.
#[test]
fn oversized_config_json_sizes_are_errors_naming_the_key() {
    let dir = scratch_dir("oversized");
    let base = BertConfig::tiny();
    let p = dir.join("config.json");
    let cases: [(&str, u64); 9] = [
        ("hidden_size", 1 << 40),
        ("hidden_size", 1 << 62),
        ("hidden_size", u64::MAX),
        ("num_hidden_layers", 1_000_000_000),
        ("max_position_embeddings", 1_000_000_000),
        ("vocab_size", 1 << 40),
        ("intermediate_size", 1 << 40),
        ("type_vocab_size", 1 << 40),
        ("num_attention_heads", 1 << 40),
    ];
    for (key, v) in cases {
        let mut j: serde_json::Value = serde_json::from_str(&base.to_json_string()).unwrap();
        j[key] = serde_json::json!(v);
        std::fs::write(&p, j.to_string()).unwrap();
        let e = BertConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains(&format!("{key} {v}")), "{key} {v}: {e}");
    }
    // each size within its own limit, but the product is too large
    let mut j: serde_json::Value = serde_json::from_str(&base.to_json_string()).unwrap();
    j["hidden_size"] = serde_json::json!(1 << 16);
    j["num_attention_heads"] = serde_json::json!(1);
    j["num_hidden_layers"] = serde_json::json!(1024);
    std::fs::write(&p, j.to_string()).unwrap();
    let e = BertConfig::from_file(&p).unwrap_err().to_string();
    assert_mentions(&e, &["parameters", "num_hidden_layers 1024"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn non_utf8_config_json_names_the_line() {
    let dir = scratch_dir("utf8");
    let p = dir.join("config.json");
    std::fs::write(
        &p,
        b"{\n  \"hidden_size\": 64,\n  \"model_type\": \"be\xc3rt\"\n}\n",
    )
    .unwrap();
    let e = BertConfig::from_file(&p).unwrap_err().to_string();
    assert_mentions(&e, &["line 3", "UTF-8"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
