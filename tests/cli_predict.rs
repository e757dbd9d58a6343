//! Predictions out of saved models (`cloze fill-mask`, `cloze predict`), folder settings
//! (tokenizer_config.json, sentence_bert_config.json, 1_Pooling), HF-loadable fine-tuned
//! folders, and the embed / finetune input-output options, on tiny models built in the test
//! and on the real MiniLM.

mod common;

use cloze::bert::folder::{load_tokenizer, FolderSettings, Pooling};
use cloze::bert::model::{BertForPreTraining, BertForSequenceClassification};
use cloze::bert::{save_pretrained, BertConfig, BertInput, ForwardOptions};
use cloze::finetune::trainer::Classifier;
use cloze::tokenizer::{Tokenizer, Vocab};
use cloze::{ParamStore, Tape};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WORDS: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog", "a",
    "good", "bad", "film", ".", "Cat", "café", "cafe",
];

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cloze-predict-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tiny_config() -> BertConfig {
    let mut c = BertConfig::with_shape(2, 16, 2, 32);
    c.vocab_size = WORDS.len();
    c.max_position_embeddings = 32;
    c
}

fn vocab() -> Vocab {
    Vocab::from_tokens(WORDS.iter().copied()).unwrap()
}

/// A randomly initialised BertForPreTraining folder; `boost` adds 20 to the MLM output bias
/// of that token.
fn tiny_mlm(dir: &Path, boost: Option<&str>) -> (BertConfig, BertForPreTraining, ParamStore) {
    let cfg = tiny_config();
    let mut store = ParamStore::new();
    let model = BertForPreTraining::new(&cfg, &mut store, 7).unwrap();
    if let Some(tok) = boost {
        let id = vocab().id(tok).unwrap() as usize;
        store.value_mut(model.mlm.bias)[id] += 20.0;
    }
    save_pretrained(dir, &cfg, &store).unwrap();
    vocab().save(dir.join("vocab.txt")).unwrap();
    (cfg, model, store)
}

fn cloze(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloze"))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "cloze failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn err(out: &Output) -> String {
    assert!(!out.status.success(), "cloze should have failed");
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn softmax(row: &[f32]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = row.iter().map(|&x| (x as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

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
    let stdout = ok(&cloze(&[
        "fill-mask",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        dir.join("in.txt").to_str().unwrap(),
        "--top-k",
        "4",
    ]));
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
    let stdout = ok(&Command::new(env!("CARGO_BIN_EXE_cloze"))
        .args([
            "fill-mask",
            "--model",
            dir2.to_str().unwrap(),
            "--top-k",
            "1",
        ])
        .stdin(
            std::fs::File::open({
                std::fs::write(
                    dir2.join("in.jsonl"),
                    "{\"text\": \"[MASK] sat\", \"text_pair\": \"a [MASK]\"}\n",
                )
                .unwrap();
                dir2.join("in.jsonl")
            })
            .unwrap(),
        )
        .output()
        .unwrap());
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    let masks = v["masks"].as_array().unwrap();
    assert_eq!(masks.len(), 2);
    for m in masks {
        assert_eq!(m["candidates"][0]["token"], "dog");
        assert!(m["candidates"][0]["score"].as_f64().unwrap() > 0.99);
    }

    // bad input: no [MASK], top-k 0, a model without an MLM head
    std::fs::write(dir.join("none.txt"), "the cat sat\n").unwrap();
    let e = err(&cloze(&[
        "fill-mask",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        dir.join("none.txt").to_str().unwrap(),
    ]));
    assert!(e.contains("no [MASK]") && e.contains("input 1"), "{e}");
    let e = err(&cloze(&[
        "fill-mask",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        dir.join("in.txt").to_str().unwrap(),
        "--top-k",
        "0",
    ]));
    assert!(e.contains("top_k"), "{e}");
    let e = err(&cloze(&[
        "fill-mask",
        "--model",
        common::minilm_dir().to_str().unwrap(),
        "--input",
        dir.join("in.txt").to_str().unwrap(),
    ]));
    assert!(e.contains("no masked-LM head"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

/// A 3-class classifier saved as `cloze finetune` saves it; class `boost` gets +20 bias.
fn tiny_classifier(dir: &Path, boost: Option<usize>) -> Classifier {
    let cfg = tiny_config();
    let mut store = ParamStore::new();
    let model = BertForSequenceClassification::new(&cfg, &mut store, 3, 11).unwrap();
    if let Some(k) = boost {
        store.value_mut(model.classifier.linear.bias)[k] += 20.0;
    }
    let clf = Classifier {
        model,
        store,
        tokenizer: Tokenizer::new(vocab()),
        max_seq_length: 16,
    };
    let names: Vec<String> = ["negative", "neutral", "positive"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    clf.save_pretrained(dir, &names).unwrap();
    clf
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
    let stdout = ok(&cloze(&[
        "predict",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        dir.join("in.txt").to_str().unwrap(),
        "--vectors",
        "--batch-size",
        "2",
    ]));
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
    let stdout = ok(&cloze(&[
        "predict",
        "--model",
        dir2.to_str().unwrap(),
        "--input",
        dir.join("in.txt").to_str().unwrap(),
    ]));
    for l in stdout.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["label"], "neutral");
        assert!(v.get("cls").is_none());
    }
    // a model without a classifier, malformed JSON lines
    let e = err(&cloze(&[
        "predict",
        "--model",
        common::minilm_dir().to_str().unwrap(),
        "--input",
        dir.join("in.txt").to_str().unwrap(),
    ]));
    assert!(e.contains("has no classifier"), "{e}");
    std::fs::write(dir.join("bad.jsonl"), "{\"text\": \"a\"}\n{\"txt\": 1}\n").unwrap();
    let e = err(&cloze(&[
        "predict",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        dir.join("bad.jsonl").to_str().unwrap(),
    ]));
    assert!(e.contains("line 2"), "{e}");
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
        assert!(
            e.contains(needle) && e.contains(file.rsplit('/').next().unwrap()),
            "{e}"
        );
        std::fs::write(dir.join(file), before).unwrap();
    }
    assert!(Pooling::parse("median")
        .unwrap_err()
        .to_string()
        .contains("median"));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn f32s(t: &safetensors::tensor::TensorView) -> Vec<f32> {
    t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    v.iter().map(|x| (*x as f64 / n) as f32).collect()
}

#[test]
fn embed_pools_as_the_folder_says_and_writes_one_matrix() {
    let dir = tmp("pool");
    tiny_mlm(&dir, None);
    std::fs::write(dir.join("in.txt"), "the cat sat\na good film on the mat\n").unwrap();
    let input = dir.join("in.txt");
    let run = |pool_json: &str, extra: &[&str]| {
        std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
        std::fs::write(dir.join("1_Pooling/config.json"), pool_json).unwrap();
        let mut args = vec![
            "embed",
            "--model",
            dir.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--hidden-states",
            "--output",
            "-",
        ];
        args.extend_from_slice(extra);
        let out = cloze(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    for (json, mode) in [
        (r#"{"pooling_mode_cls_token": true}"#, Pooling::Cls),
        (r#"{"pooling_mode_max_tokens": true}"#, Pooling::Max),
        (r#"{"pooling_mode_mean_tokens": true}"#, Pooling::Mean),
    ] {
        let bytes = run(json, &[]);
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let m = st.tensor("embeddings").unwrap();
        assert_eq!(m.shape(), &[2, 16]);
        let m = f32s(&m);
        for i in 0..2 {
            let hid = st.tensor(&format!("last_hidden_state.{i}")).unwrap();
            let t = hid.shape()[0];
            let h = f32s(&hid);
            let raw: Vec<f32> = match mode {
                Pooling::Cls => h[..16].to_vec(),
                Pooling::Max => (0..16)
                    .map(|j| (0..t).map(|p| h[p * 16 + j]).fold(f32::MIN, f32::max))
                    .collect(),
                Pooling::Mean => (0..16)
                    .map(|j| (0..t).map(|p| h[p * 16 + j]).sum::<f32>() / t as f32)
                    .collect(),
            };
            let want = normalized(&raw);
            for (g, w) in m[i * 16..(i + 1) * 16].iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{mode:?} input {i}: {g} vs {w}");
            }
        }
    }
    // --pooling overrides the folder; --no-normalize leaves the norm alone
    let bytes = run(
        r#"{"pooling_mode_max_tokens": true}"#,
        &["--pooling", "cls", "--no-normalize"],
    );
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let m = f32s(&st.tensor("embeddings").unwrap());
    let h = f32s(&st.tensor("last_hidden_state.0").unwrap());
    assert_eq!(&m[..16], &h[..16]);
    // .npy output
    let npy = dir.join("out.npy");
    ok(&cloze(&[
        "embed",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        dir.join("in.txt").to_str().unwrap(),
        "--output",
        npy.to_str().unwrap(),
    ]));
    let b = std::fs::read(&npy).unwrap();
    assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hl]).unwrap();
    assert!(
        header.contains("'descr': '<f4'") && header.contains("'shape': (2, 16)"),
        "{header}"
    );
    assert_eq!((10 + hl) % 64, 0);
    assert_eq!(b.len(), 10 + hl + 2 * 16 * 4);
    // a folder with only pytorch_model.bin says how to convert it
    let pt = tmp("pt");
    std::fs::copy(dir.join("config.json"), pt.join("config.json")).unwrap();
    std::fs::copy(dir.join("vocab.txt"), pt.join("vocab.txt")).unwrap();
    std::fs::write(pt.join("pytorch_model.bin"), b"not really").unwrap();
    let e = err(&cloze(&[
        "embed",
        "--model",
        pt.to_str().unwrap(),
        "--input",
        dir.join("in.txt").to_str().unwrap(),
        "--output",
        "-",
    ]));
    assert!(
        e.contains("pytorch_model.bin") && e.contains("safetensors") && e.contains("save_file"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&pt).unwrap();
}

#[test]
fn minilm_embed_truncates_to_the_folder_max_seq_length() {
    // sentence_bert_config.json says 256; a 600-word input used to run to 512 (or fail)
    let dir = tmp("long");
    let long = "word ".repeat(600);
    std::fs::write(dir.join("in.txt"), format!("{long}\nshort text\n")).unwrap();
    let bytes = Command::new(env!("CARGO_BIN_EXE_cloze"))
        .args([
            "--threads",
            "1",
            "embed",
            "--hidden-states",
            "--output",
            "-",
            "--model",
        ])
        .arg(common::minilm_dir())
        .arg("--input")
        .arg(dir.join("in.txt"))
        .output()
        .unwrap();
    assert!(
        bytes.status.success(),
        "{}",
        String::from_utf8_lossy(&bytes.stderr)
    );
    let st = safetensors::SafeTensors::deserialize(&bytes.stdout).unwrap();
    assert_eq!(st.tensor("embeddings").unwrap().shape(), &[2, 384]);
    assert_eq!(
        st.tensor("last_hidden_state.0").unwrap().shape(),
        &[256, 384]
    );
    assert_eq!(st.tensor("last_hidden_state.1").unwrap().shape(), &[4, 384]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn finetune_logs_each_step_and_saves_a_loadable_classifier() {
    let base = tmp("ft-base");
    tiny_mlm(&base, None);
    let dir = tmp("ft");
    let data: String = (0..12)
        .map(|i| {
            let (t, l) = [("a good film", 2), ("a bad film", 0), ("the cat sat", 1)][i % 3];
            format!("{{\"text\": \"{t}\", \"label\": {l}}}\n")
        })
        .collect();
    std::fs::write(dir.join("train.jsonl"), &data).unwrap();
    let out = dir.join("out");
    ok(&cloze(&[
        "--threads",
        "1",
        "finetune",
        "--model",
        base.to_str().unwrap(),
        "--train",
        dir.join("train.jsonl").to_str().unwrap(),
        "--dev",
        dir.join("train.jsonl").to_str().unwrap(),
        "--lr",
        "1e-3",
        "--epochs",
        "2",
        "--batch-size",
        "5",
        "--output",
        out.to_str().unwrap(),
    ]));
    let log: Vec<Value> = std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 12 examples / batch 5 = 3 steps per epoch, 2 epochs
    let steps: Vec<&Value> = log.iter().filter(|v| v["event"] == "step").collect();
    assert_eq!(steps.len(), 6);
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["step"], i);
        assert_eq!(s["epoch"], i / 3);
        assert!(s["loss"].as_f64().unwrap().is_finite() && s["loss"].as_f64().unwrap() > 0.0);
        assert!(s["lr"].as_f64().unwrap() >= 0.0 && s["lr"].as_f64().unwrap() <= 1e-3 + 1e-9);
    }
    let epochs: Vec<&Value> = log.iter().filter(|v| v["event"] == "epoch").collect();
    assert_eq!(epochs.len(), 2);
    assert!(epochs[1]["dev_accuracy"].as_f64().unwrap() >= 0.0);
    assert_eq!(log[0]["event"], "start");
    assert_eq!(log[0]["total_steps"], 6);
    let c: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        c["architectures"],
        serde_json::json!(["BertForSequenceClassification"])
    );
    assert_eq!(c["num_labels"], 3);
    assert_eq!(c["id2label"]["2"], "LABEL_2");
    // and predict reads it back
    std::fs::write(dir.join("in.txt"), "a good film\n").unwrap();
    let p = ok(&cloze(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--input",
        dir.join("in.txt").to_str().unwrap(),
    ]));
    let v: Value = serde_json::from_str(p.trim()).unwrap();
    assert_eq!(v["probabilities"].as_array().unwrap().len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&base).unwrap();
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
        let help = ok(&cloze(&[cmd, "--help"]));
        assert!(help.contains("--threads"), "{cmd} --help lacks --threads");
    }
    let help = ok(&cloze(&["finetune", "--help"]));
    assert!(
        help.contains("Training examples") && help.contains("Dev examples"),
        "{help}"
    );
    let help = ok(&cloze(&["eval", "--help"]));
    assert!(help.contains("Task layout"), "{help}");
    let e = err(&cloze(&[
        "--threads",
        "0",
        "embed",
        "--model",
        "x",
        "--input",
        "-",
        "--output",
        "-",
    ]));
    assert!(e.contains("--threads 0"), "{e}");
}

#[test]
fn pearson_and_spearman_by_hand() {
    use cloze::finetune::trainer::{pearson, spearman};
    // x = 1..5, y = 2x + 1: both 1; reversed: both -1
    let x = [1.0, 2.0, 3.0, 4.0, 5.0];
    let y: Vec<f64> = x.iter().map(|v| 2.0 * v + 1.0).collect();
    assert!((pearson(&x, &y) - 1.0).abs() < 1e-12);
    let r: Vec<f64> = y.iter().rev().copied().collect();
    assert!((spearman(&x, &r) + 1.0).abs() < 1e-12);
    // monotone but not linear: Spearman 1, Pearson below 1
    let c: Vec<f64> = x.iter().map(|v: &f64| v.powi(3)).collect();
    assert!((spearman(&x, &c) - 1.0).abs() < 1e-12);
    assert!(pearson(&x, &c) < 0.99);
    // x = [1,2,3], y = [1,3,2]: mean 2, sxy = (-1)(-1) + 0 + (1)(0) = 1, sxx = syy = 2 → 0.5
    assert!((pearson(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]) - 0.5).abs() < 1e-12);
    // ties get the average rank: ranks of [1, 1, 2] are [1.5, 1.5, 3]
    let s = spearman(&[1.0, 1.0, 2.0], &[1.5, 1.5, 3.0]);
    assert!((s - 1.0).abs() < 1e-12, "{s}");
}

#[test]
fn sts_b_regression_and_mnli_layout_through_the_cli() {
    // the real MiniLM: a randomly initialised tiny model learns too little in a few steps
    let base = common::minilm_dir();
    let dir = tmp("reg");
    let mut tsv = String::from("index\tgenre\tsentence1\tsentence2\tscore\n");
    for i in 0..24 {
        let (a, b, s) = [
            ("a good film", "a good film", "5.0"),
            ("a good film", "a bad dog", "0.0"),
            ("the cat sat", "the cat sat on the mat", "3.5"),
        ][i % 3];
        tsv += &format!("{i}\tx\t{a}\t{b}\t{s}\n");
    }
    std::fs::write(dir.join("train.tsv"), &tsv).unwrap();
    let out = dir.join("out");
    ok(&cloze(&[
        "finetune",
        "--model",
        base.to_str().unwrap(),
        "--task",
        "sts-b",
        "--train",
        dir.join("train.tsv").to_str().unwrap(),
        "--dev",
        dir.join("train.tsv").to_str().unwrap(),
        "--lr",
        "1e-4",
        "--epochs",
        "4",
        "--batch-size",
        "8",
        "--output",
        out.to_str().unwrap(),
    ]));
    let c: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(c["problem_type"], "regression");
    assert_eq!(c["num_labels"], 1);
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    let last_epoch: Value = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .rfind(|v| v["event"] == "epoch")
        .unwrap();
    let p = last_epoch["dev_pearson"].as_f64().unwrap();
    // three distinct pairs with scores 5, 0, 3.5: a model that learned nothing sits near 0
    assert!(
        p > 0.9,
        "dev Pearson {p} after training on the dev pairs themselves"
    );
    let ev = ok(&cloze(&[
        "eval",
        "--model",
        out.to_str().unwrap(),
        "--task",
        "sts-b",
        "--data",
        dir.join("train.tsv").to_str().unwrap(),
    ]));
    let ev: Value = serde_json::from_str(ev.trim()).unwrap();
    assert!(
        (ev["pearson"].as_f64().unwrap() - p).abs() < 1e-4,
        "{ev} vs {p}"
    );
    assert!(ev["spearman"].as_f64().is_some());
    // predict on a regression head gives the score as the single logit
    std::fs::write(
        dir.join("in.jsonl"),
        "{\"text\": \"a good film\", \"text_pair\": \"a good film\"}\n",
    )
    .unwrap();
    let pr: Value = serde_json::from_str(
        ok(&cloze(&[
            "predict",
            "--model",
            out.to_str().unwrap(),
            "--input",
            dir.join("in.jsonl").to_str().unwrap(),
        ]))
        .trim(),
    )
    .unwrap();
    assert_eq!(pr["logits"].as_array().unwrap().len(), 1);
    assert!(pr["logits"][0].as_f64().unwrap() > 2.5, "{pr}");
    assert_eq!(pr["probabilities"].as_array().unwrap().len(), 0);

    // MNLI: GLUE's column names, three named classes
    let mnli = "index\tpromptID\tpairID\tgenre\tsentence1\tsentence2\tlabel1\tgold_label\n\
                0\t1\t1n\tfiction\tthe cat sat\ta cat sat\tentailment\tentailment\n\
                1\t2\t2n\tfiction\tthe cat sat\tthe dog sat\tneutral\tneutral\n\
                2\t3\t3c\ttravel\tthe cat sat\tno cat sat\tcontradiction\tcontradiction\n";
    std::fs::write(dir.join("dev_matched.tsv"), mnli).unwrap();
    let spec = cloze::finetune::data::TsvSpec::for_task("mnli").unwrap();
    let ex = cloze::finetune::data::read_tsv(dir.join("dev_matched.tsv"), &spec).unwrap();
    let labels: Vec<usize> = ex.iter().map(|e| e.label).collect();
    assert_eq!(labels, [1, 2, 0]);
    assert_eq!(ex[1].text_b.as_deref(), Some("the dog sat"));
    std::fs::write(
        dir.join("bad.tsv"),
        mnli.replace("\tneutral\n", "\tmaybe\n"),
    )
    .unwrap();
    let e = cloze::finetune::data::read_tsv(dir.join("bad.tsv"), &spec)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"maybe\""), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pretraining_continues_from_an_hf_folder() {
    use cloze::bert::model::BertModel;
    use cloze::pretrain::config::PretrainConfig;
    use cloze::pretrain::trainer::Pretrainer;
    let dir = tmp("init-from");
    let corpus = common::shared_path("data/fixtures/tiny-corpus.txt");
    let mut t = cloze::tokenizer::Trainer::new(cloze::tokenizer::TrainerConfig {
        vocab_size: 400,
        min_frequency: 2,
        ..cloze::tokenizer::TrainerConfig::default()
    });
    t.feed_file(&corpus).unwrap();
    let vocab = t.train().unwrap();
    // an encoder-only folder (no cls.* heads, as sentence encoders ship)
    let hf = dir.join("hf");
    let mut c = BertConfig::with_shape(2, 32, 2, 64);
    c.vocab_size = vocab.len();
    c.max_position_embeddings = 64;
    c.architectures = vec!["BertModel".into()];
    let mut store = ParamStore::new();
    BertModel::new(&c, &mut store, 99).unwrap();
    save_pretrained(&hf, &c, &store).unwrap();
    vocab.save(hf.join("vocab.txt")).unwrap();
    let toml = |model: &str| {
        format!(
            "output_dir = \"run\"\n[model]\n{model}\n[data]\ntrain = \"{}\"\nheldout_every = 2\n\
             max_seq_length = 48\nmax_predictions_per_seq = 8\ndupe_factor = 1\n[train]\n\
             objective = \"mlm\"\nbatch_size = 8\nsteps = 2\nlearning_rate = 1e-3\n\
             warmup_steps = 1\nseed = 3\nlog_every = 1\neval_every = 0\ncheckpoint_every = 0\n",
            corpus.display()
        )
    };
    let p = dir.join("pt.toml");
    std::fs::write(&p, toml("init_from = \"hf\"")).unwrap();
    let cfg = PretrainConfig::from_file(&p).unwrap();
    assert_eq!(cfg.data.vocab, hf.join("vocab.txt"));
    let mut tr = Pretrainer::single(cfg).unwrap();
    // the folder's tensors were loaded; the MLM head it lacks exists, freshly initialised
    let ck = cloze::bert::Checkpoint::read(hf.join("model.safetensors")).unwrap();
    for name in [
        "embeddings.word_embeddings.weight",
        "encoder.layer.1.attention.self.query.weight",
        "pooler.dense.weight",
    ] {
        let id = tr.store.id(name).unwrap();
        assert_eq!(
            tr.store.value(id).data(),
            ck.get(name).unwrap().data(),
            "{name}"
        );
    }
    assert!(tr
        .store
        .id("cls.predictions.transform.dense.weight")
        .is_some());
    let totals = tr.run().unwrap();
    assert!(totals.lm_loss().is_finite());
    // shape overrides and a preset are refused by name
    std::fs::write(&p, toml("init_from = \"hf\"\nhidden_size = 64")).unwrap();
    let e = Pretrainer::single(PretrainConfig::from_file(&p).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("model.hidden_size") && e.contains("init_from"),
        "{e}"
    );
    std::fs::write(&p, toml("init_from = \"hf\"\npreset = \"tiny\"")).unwrap();
    let e = PretrainConfig::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("model.preset"), "{e}");
    std::fs::write(&p, toml("")).unwrap();
    let e = PretrainConfig::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("model.preset"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
