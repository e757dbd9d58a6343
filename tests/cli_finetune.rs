//! `cloze finetune` and `cloze eval` on tiny folders and on the real MiniLM: the training
//! log, the saved classifier read back by `cloze predict`, STS-B regression with its
//! correlations, and the MNLI layout.

mod common;

use common::cli;
use common::tiny::{tiny_mlm, tmp};
use serde_json::Value;
use std::path::Path;

/// `cloze finetune` from `model` into `out`, training and evaluating on `data`, with the
/// learning rate, the epochs and the batch size given.
fn finetune(model: &Path, data: &Path, [lr, epochs, batch]: [&str; 3], out: &Path) -> cli::Cloze {
    cli::cloze("finetune")
        .model(model)
        .opt("--train", data)
        .opt("--dev", data)
        .opt("--lr", lr)
        .opt("--epochs", epochs)
        .opt("--batch-size", batch)
        .opt("--output", out)
}

/// `cloze predict` with `model` on an input of one example: its one output line.
fn predict_one(model: &Path, input: &Path) -> Value {
    let out = cli::cloze("predict").model(model).input(input).ok();
    serde_json::from_str(out.trim()).unwrap()
}

/// The JSON value in a file.
fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The JSON value of each line of a file.
fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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
    finetune(&base, &dir.join("train.jsonl"), ["1e-3", "2", "5"], &out)
        .threads(1)
        .ok();
    let log = json_lines(&out.join("log.jsonl"));
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
    let c = json_file(&out.join("config.json"));
    assert_eq!(
        c["architectures"],
        serde_json::json!(["BertForSequenceClassification"])
    );
    assert_eq!(c["num_labels"], 3);
    assert_eq!(c["id2label"]["2"], "LABEL_2");
    // and predict reads it back
    std::fs::write(dir.join("in.txt"), "a good film\n").unwrap();
    let v = predict_one(&out, &dir.join("in.txt"));
    assert_eq!(v["probabilities"].as_array().unwrap().len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&base).unwrap();
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
    finetune(&base, &dir.join("train.tsv"), ["1e-4", "4", "8"], &out)
        .opt("--task", "sts-b")
        .ok();
    let c = json_file(&out.join("config.json"));
    assert_eq!(c["problem_type"], "regression");
    assert_eq!(c["num_labels"], 1);
    let last_epoch = json_lines(&out.join("log.jsonl"))
        .into_iter()
        .rfind(|v| v["event"] == "epoch")
        .unwrap();
    let p = last_epoch["dev_pearson"].as_f64().unwrap();
    // three distinct pairs with scores 5, 0, 3.5: a model that learned nothing sits near 0
    assert!(
        p > 0.9,
        "dev Pearson {p} after training on the dev pairs themselves"
    );
    let ev = cli::cloze("eval")
        .model(&out)
        .opt("--task", "sts-b")
        .opt("--data", dir.join("train.tsv"))
        .ok();
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
    let pr = predict_one(&out, &dir.join("in.jsonl"));
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
