//! Predictions out of saved models (`cloze fill-mask`, `cloze predict`), folder settings
//! (tokenizer_config.json, sentence_bert_config.json, 1_Pooling), HF-loadable fine-tuned
//! folders, and the options every command shares, on tiny models built in the test and on
//! the real MiniLM. Embedding is tested in `cli_embed.rs`, fine-tuning in `cli_finetune.rs`.

mod common;

use cloze::bert::folder::{load_tokenizer, FolderSettings, Pooling};
use cloze::bert::{BertConfig, BertInput, ForwardOptions};
use cloze::tokenizer::Tokenizer;
use cloze::Tape;
use common::tiny::{softmax, tiny_classifier, tiny_mlm, tmp, vocab, WORDS};
use common::{assert_mentions, cli};
use serde_json::Value;

#[test]
fn fill_mask_matches_the_pretraining_model_and_finds_a_boosted_token() {
    let dir = tmp("fm");
    let (cfg, model, store) = tiny_mlm(&dir, None);
    // reference: BertForPreTraining's own forward at the [MASK] position
    let tok = Tokenizer::new(vocab());
    let enc = tok.encode("the cat sat on the [MASK] .");
    let mask_pos = enc.input_ids.iter().position(|&i| i == 4).unwrap();
    let mut tape = Tape::new();
    tape.set_training(false);
    let out = tape
        .no_grad(|t| {
            model.forward(
                t,
                &store,
                &BertInput::new(&enc.input_ids, 1, enc.len()),
                &[mask_pos as u32],
                &ForwardOptions::default(),
            )
        })
        .unwrap();
    let probs = softmax(out.mlm_logits.value().data());
    let mut want: Vec<usize> = (0..cfg.vocab_size).collect();
    want.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));

    std::fs::write(dir.join("in.txt"), "the cat sat on the [MASK] .\n").unwrap();
    let stdout = cli::cloze("fill-mask")
        .model(&dir)
        .input(dir.join("in.txt"))
        .opt("--top-k", "4")
        .ok();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    let masks = lines[0]["masks"].as_array().unwrap();
    assert_eq!(masks.len(), 1);
    assert_eq!(masks[0]["position"], mask_pos);
    let cands = masks[0]["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 4);
    for (c, &w) in cands.iter().zip(&want) {
        assert_eq!(c["id"], w);
        assert_eq!(c["token"], WORDS[w]);
        let got = c["score"].as_f64().unwrap();
        assert!((got - probs[w]).abs() < 1e-5, "{got} vs {}", probs[w]);
    }

    // a token with +20 on its output bias wins with probability ≈ 1, at both masks
    let dir2 = tmp("fm-boost");
    tiny_mlm(&dir2, Some("dog"));
    std::fs::write(
        dir2.join("in.jsonl"),
        "{\"text\": \"[MASK] sat\", \"text_pair\": \"a [MASK]\"}\n",
    )
    .unwrap();
    let stdout = cli::cloze("fill-mask")
        .model(&dir2)
        .opt("--top-k", "1")
        .stdin(dir2.join("in.jsonl"))
        .ok();
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    let masks = v["masks"].as_array().unwrap();
    assert_eq!(masks.len(), 2);
    for m in masks {
        assert_eq!(m["candidates"][0]["token"], "dog");
        assert!(m["candidates"][0]["score"].as_f64().unwrap() > 0.99);
    }

    // bad input: no [MASK], top-k 0, a model without an MLM head
    std::fs::write(dir.join("none.txt"), "the cat sat\n").unwrap();
    cli::cloze("fill-mask")
        .model(&dir)
        .input(dir.join("none.txt"))
        .fails_naming(&["no [MASK]", "input 1"]);
    cli::cloze("fill-mask")
        .model(&dir)
        .input(dir.join("in.txt"))
        .opt("--top-k", "0")
        .fails_naming(&["top_k"]);
    cli::cloze("fill-mask")
        .model(common::minilm_dir())
        .input(dir.join("in.txt"))
        .fails_naming(&["no masked-LM head"]);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

#[test]
fn saved_classifier_has_hf_config_and_weight_names() {
    let dir = tmp("cfg");
    tiny_classifier(&dir, None);
    let c: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        c["architectures"],
        serde_json::json!(["BertForSequenceClassification"])
    );
    assert_eq!(c["model_type"], "bert");
    assert_eq!(c["num_labels"], 3);
    assert_eq!(
        c["id2label"],
        serde_json::json!({"0": "negative", "1": "neutral", "2": "positive"})
    );
    assert_eq!(
        c["label2id"],
        serde_json::json!({"negative": 0, "neutral": 1, "positive": 2})
    );
    assert_eq!(c["problem_type"], "single_label_classification");
    // still a valid cloze config
    BertConfig::from_file(dir.join("config.json")).unwrap();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names: Vec<String> = st.names().into_iter().map(String::from).collect();
    for want in [
        "classifier.weight",
        "classifier.bias",
        "bert.pooler.dense.weight",
        "bert.embeddings.word_embeddings.weight",
        "bert.encoder.layer.1.output.LayerNorm.bias",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert!(names
        .iter()
        .all(|n| n.starts_with("bert.") || n.starts_with("classifier.")));
    assert_eq!(st.tensor("classifier.weight").unwrap().shape(), &[3, 16]);
    assert!(dir.join("vocab.txt").exists());
    let tc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap())
            .unwrap();
    assert_eq!(tc["do_lower_case"], true);
    assert_eq!(tc["model_max_length"], 16);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn predict_gives_labels_probabilities_and_vectors() {
    let dir = tmp("pred");
    let clf = tiny_classifier(&dir, None);
    let (model, store) = (&clf.model, &clf.store);
    let texts = ["the cat sat on the mat .", "a good film", "bad dog"];
    std::fs::write(dir.join("in.txt"), texts.join("\n\n") + "\n").unwrap();
    let stdout = cli::cloze("predict")
        .model(&dir)
        .input(dir.join("in.txt"))
        .args(["--vectors"])
        .opt("--batch-size", "2")
        .ok();
    let preds: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(preds.len(), 3);
    let tok = Tokenizer::new(vocab());
    let names = ["negative", "neutral", "positive"];
    for (p, text) in preds.iter().zip(texts) {
        // reference: the in-memory model, one example at a time
        let enc = tok.encode(text);
        let mut tape = Tape::new();
        tape.set_training(false);
        let (logits, hidden, pooled) = tape
            .no_grad(|t| {
                let input = BertInput::new(&enc.input_ids, 1, enc.len());
                let out = model
                    .bert
                    .forward(t, store, &input, &ForwardOptions::default())?;
                let logits = model.forward(t, store, &input, &ForwardOptions::default())?;
                Ok::<_, cloze::Error>((logits, out.last_hidden_state, out.pooled.unwrap()))
            })
            .unwrap();
        let probs = softmax(logits.value().data());
        let best = (0..3)
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap();
        assert_eq!(p["label_id"], best);
        assert_eq!(p["label"], names[best]);
        let got: Vec<f64> = p["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), 3);
        for (g, w) in got.iter().zip(&probs) {
            assert!((g - w).abs() < 1e-5, "{text}: {got:?} vs {probs:?}");
        }
        let cls: Vec<f64> = p["cls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let pooled_got: Vec<f64> = p["pooled"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(cls.len(), 16);
        for (g, w) in cls.iter().zip(&hidden.value().data()[..16]) {
            assert!((g - *w as f64).abs() < 1e-4, "cls {g} vs {w}");
        }
        for (g, w) in pooled_got.iter().zip(pooled.value().data()) {
            assert!((g - *w as f64).abs() < 1e-4, "pooled {g} vs {w}");
        }
    }
    // a boosted class wins everywhere
    let dir2 = tmp("pred-boost");
    tiny_classifier(&dir2, Some(1));
    let stdout = cli::cloze("predict")
        .model(&dir2)
        .input(dir.join("in.txt"))
        .ok();
    for l in stdout.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["label"], "neutral");
        assert!(v.get("cls").is_none());
    }
    // a model without a classifier, malformed JSON lines
    cli::cloze("predict")
        .model(common::minilm_dir())
        .input(dir.join("in.txt"))
        .fails_naming(&["has no classifier"]);
    std::fs::write(dir.join("bad.jsonl"), "{\"text\": \"a\"}\n{\"txt\": 1}\n").unwrap();
    cli::cloze("predict")
        .model(&dir)
        .input(dir.join("bad.jsonl"))
        .fails_naming(&["line 2"]);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

#[test]
fn folder_settings_are_read_and_bad_ones_named() {
    let dir = tmp("settings");
    let s = FolderSettings::read(&dir).unwrap();
    assert_eq!(s, FolderSettings::default());
    assert!(s.lowercase());
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"do_lower_case": false, "model_max_length": 1000000000000000019884624838656}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("sentence_bert_config.json"),
        r#"{"max_seq_length": 12}"#,
    )
    .unwrap();
    for (json, want) in [
        (r#"{"pooling_mode_mean_tokens": true}"#, Pooling::Mean),
        (
            r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#,
            Pooling::Cls,
        ),
        (r#"{"pooling_mode_max_tokens": true}"#, Pooling::Max),
    ] {
        std::fs::write(dir.join("1_Pooling/config.json"), json).unwrap();
        let s = FolderSettings::read(&dir).unwrap();
        assert_eq!(s.pooling, Some(want), "{json}");
        assert_eq!(s.do_lower_case, Some(false));
        assert_eq!(
            s.model_max_length, None,
            "HF's 'no limit' placeholder is ignored"
        );
        assert_eq!(s.max_length(), Some(12));
    }
    // a cased folder keeps case and accents
    vocab().save(dir.join("vocab.txt")).unwrap();
    let tok = load_tokenizer(&dir).unwrap();
    assert_eq!(
        tok.encode("Cat café").tokens,
        ["[CLS]", "Cat", "café", "[SEP]"]
    );
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"do_lower_case": true}"#,
    )
    .unwrap();
    let tok = load_tokenizer(&dir).unwrap();
    assert_eq!(
        tok.encode("Cat café").tokens,
        ["[CLS]", "cat", "cafe", "[SEP]"]
    );
    // bad values are named
    for (file, json, needle) in [
        (
            "1_Pooling/config.json",
            r#"{"pooling_mode_mean_sqrt_len_tokens": true}"#,
            "pooling_mode_mean_sqrt_len_tokens",
        ),
        (
            "1_Pooling/config.json",
            r#"{"pooling_mode_cls_token": true, "pooling_mode_max_tokens": true}"#,
            "several pooling modes",
        ),
        (
            "1_Pooling/config.json",
            r#"{"pooling_mode_cls_token": "yes"}"#,
            "pooling_mode_cls_token must be true or false",
        ),
        (
            "sentence_bert_config.json",
            r#"{"max_seq_length": -3}"#,
            "max_seq_length must be a positive integer, got -3",
        ),
        (
            "tokenizer_config.json",
            r#"{"do_lower_case": 1"#,
            "not valid JSON",
        ),
    ] {
        let before = std::fs::read_to_string(dir.join(file)).unwrap();
        std::fs::write(dir.join(file), json).unwrap();
        let e = FolderSettings::read(&dir).unwrap_err().to_string();
        assert_mentions(&e, &[needle, file.rsplit('/').next().unwrap()]);
        std::fs::write(dir.join(file), before).unwrap();
    }
    assert!(Pooling::parse("median")
        .unwrap_err()
        .to_string()
        .contains("median"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_command_documents_threads_and_zero_threads_is_an_error() {
    for cmd in [
        "tokenize",
        "embed",
        "fill-mask",
        "predict",
        "finetune",
        "eval",
        "pretrain",
        "vocab",
    ] {
        let help = cli::cloze(cmd).args(["--help"]).ok();
        assert!(help.contains("--threads"), "{cmd} --help lacks --threads");
    }
    let help = cli::cloze("finetune").args(["--help"]).ok();
    assert_mentions(&help, &["Training examples", "Dev examples"]);
    let help = cli::cloze("eval").args(["--help"]).ok();
    assert!(help.contains("Task layout"), "{help}");
    cli::cloze("embed")
        .threads(0)
        .model("x")
        .input("-")
        .opt("--output", "-")
        .fails_naming(&["--threads 0"]);
}
