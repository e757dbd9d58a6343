//! `--pair-truncation` on the commands that cut text pairs to a length (`embed`, `predict`,
//! `fill-mask`, `finetune`, `eval`; `tokenize` is tested in `tokenizer_cli.rs`): `python` is
//! the default, `fast` changes the result of a pair whose two texts must both be cut, and a
//! bad value is an error naming it.
//!
//! The pair: 10 and 12 tokens cut to 12 (a budget of 9 after the 3 specials): the Python rule
//! keeps 5 + 4, the fast rule 4 + 5.

mod common;

use cloze::bert::{BertInput, ForwardOptions};
use cloze::tokenizer::{EncodeOptions, PairTruncation, Tokenizer};
use cloze::Tape;
use common::cli;
use common::tiny::{tiny_classifier, tiny_mlm, tmp, vocab};
use serde_json::Value;
use std::path::Path;

const A: &str = "the cat sat on the mat . a good film";
const B: &str = "the dog sat on a mat . the film . a bad";

/// The pair that must be cut, then a short pair that fits (the rule must not matter for it).
fn write_input(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("pairs.jsonl");
    std::fs::write(
        &p,
        format!(
            "{{\"text\": \"{A}\", \"text_pair\": \"{B}\"}}\n\
             {{\"text\": \"a good film\", \"text_pair\": \"the cat\"}}\n"
        ),
    )
    .unwrap();
    p
}

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_tokenizer_cuts_the_test_pair_differently_under_the_two_rules() {
    let tok = Tokenizer::new(vocab());
    assert_eq!(tok.tokenize(A).len(), 10);
    assert_eq!(tok.tokenize(B).len(), 12);
    let types = |rule| {
        let opts = EncodeOptions::truncate(12).with_pair_truncation(rule);
        let e = tok.encode_with(A, Some(B), &opts).unwrap();
        e.token_type_ids.iter().filter(|&&t| t == 0).count()
    };
    // [CLS] + first text + [SEP] carry token type 0
    assert_eq!(types(PairTruncation::Python), 5 + 2);
    assert_eq!(types(PairTruncation::Fast), 4 + 2);
}

#[test]
fn embed_pair_truncation() {
    let dir = tmp("pt-embed");
    tiny_mlm(&dir, None);
    let input = write_input(&dir);
    let run = |rule: Option<&str>| -> Vec<f32> {
        let out = dir.join(format!("out-{}.npy", rule.unwrap_or("default")));
        let mut c = cli::cloze("embed")
            .model(&dir)
            .input(&input)
            .opt("--max-length", "12")
            .opt("--output", &out);
        if let Some(r) = rule {
            c = c.opt("--pair-truncation", r);
        }
        c.ok();
        let bytes = std::fs::read(&out).unwrap();
        let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        bytes[10 + header..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let (default, python, fast) = (run(None), run(Some("python")), run(Some("fast")));
    let h = 16;
    assert_eq!(default.len(), 2 * h);
    assert_eq!(default, python);
    assert_ne!(
        fast[..h],
        python[..h],
        "the cut pair must embed differently"
    );
    assert_eq!(fast[h..], python[h..], "a pair that fits is not cut");
    let e = cli::cloze("embed")
        .model(&dir)
        .input(&input)
        .opt("--output", dir.join("x.npy"))
        .opt("--pair-truncation", "slow")
        .err();
    assert!(e.contains("slow") && e.contains("--pair-truncation"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn predict_pair_truncation() {
    let dir = tmp("pt-predict");
    let clf = tiny_classifier(&dir, None);
    let input = write_input(&dir);
    let run = |rule: Option<&str>| -> Vec<Value> {
        let mut c = cli::cloze("predict")
            .model(&dir)
            .input(&input)
            .opt("--max-length", "12");
        if let Some(r) = rule {
            c = c.opt("--pair-truncation", r);
        }
        json_lines(&c.ok())
    };
    let (default, python, fast) = (run(None), run(Some("python")), run(Some("fast")));
    assert_eq!(default, python);
    assert_ne!(fast[0]["logits"], python[0]["logits"]);
    assert_eq!(fast[1]["logits"], python[1]["logits"]);
    // each rule's logits are the model's on that rule's encoding
    let tok = Tokenizer::new(vocab());
    for (rule, got) in [
        (PairTruncation::Python, &python),
        (PairTruncation::Fast, &fast),
    ] {
        let opts = EncodeOptions::truncate(12).with_pair_truncation(rule);
        let enc = tok.encode_with(A, Some(B), &opts).unwrap();
        let mut tape = Tape::new();
        tape.set_training(false);
        let logits = tape
            .no_grad(|t| {
                let input = BertInput::new(&enc.input_ids, 1, enc.len())
                    .with_token_types(&enc.token_type_ids);
                clf.model
                    .forward(t, &clf.store, &input, &ForwardOptions::default())
            })
            .unwrap();
        let want = logits.value().data();
        let got: Vec<f64> = got[0]["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - *w as f64).abs() < 1e-4,
                "{rule:?}: {got:?} vs {want:?}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fill_mask_pair_truncation() {
    let dir = tmp("pt-fill-mask");
    tiny_mlm(&dir, None);
    // the [MASK] is the first text's 5th token: the Python rule keeps it, the fast rule cuts it
    let p = dir.join("in.jsonl");
    std::fs::write(
        &p,
        format!(
            "{{\"text\": \"the cat sat on [MASK] mat . a good film\", \"text_pair\": \"{B}\"}}\n"
        ),
    )
    .unwrap();
    let run = |rule: &str| {
        cli::cloze("fill-mask")
            .model(&dir)
            .input(&p)
            .opt("--max-length", "12")
            .opt("--pair-truncation", rule)
            .output()
    };
    let v = json_lines(&cli::ok(&run("python")));
    assert_eq!(v[0]["masks"][0]["position"], 5);
    let e = cli::err(&run("fast"));
    assert!(e.contains("no [MASK]"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn finetune_and_eval_pair_truncation() {
    let base = tmp("pt-ft-base");
    tiny_mlm(&base, None);
    let dir = tmp("pt-ft");
    let data: String = (0..8)
        .map(|i| {
            format!(
                "{{\"text\": \"{A}\", \"text_pair\": \"{B}\", \"label\": {}}}\n",
                i % 2
            )
        })
        .collect();
    let train = dir.join("train.jsonl");
    std::fs::write(&train, data).unwrap();
    let run = |rule: Option<&str>| -> Vec<f64> {
        let out = dir.join(format!("out-{}", rule.unwrap_or("default")));
        let mut c = cli::cloze("finetune")
            .threads(1)
            .model(&base)
            .opt("--train", &train)
            .opt("--dev", &train)
            .opt("--lr", "1e-3")
            .opt("--epochs", "1")
            .opt("--batch-size", "4")
            .opt("--max-seq-length", "12")
            .opt("--output", &out);
        if let Some(r) = rule {
            c = c.opt("--pair-truncation", r);
        }
        c.ok();
        std::fs::read_to_string(out.join("log.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["event"] == "step")
            .map(|v| v["loss"].as_f64().unwrap())
            .collect()
    };
    let (default, python, fast) = (run(None), run(Some("python")), run(Some("fast")));
    assert_eq!(default.len(), 2);
    assert_eq!(default, python);
    assert_ne!(
        fast[0], python[0],
        "the first step's loss is on differently cut inputs"
    );
    // eval takes the option too; a bad value is named
    let eval = |rule: &str| {
        cli::cloze("eval")
            .model(dir.join("out-fast"))
            .opt("--data", &train)
            .opt("--max-seq-length", "12")
            .opt("--pair-truncation", rule)
            .output()
    };
    let v: Value = serde_json::from_str(cli::ok(&eval("fast")).trim()).unwrap();
    assert_eq!(v["examples"], 8);
    let e = cli::err(&eval("longest"));
    assert!(e.contains("longest"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&base).unwrap();
}
