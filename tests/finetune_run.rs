//! Fine-tuning the real pretrained MiniLM on a slice of SST-2 with the paper's recipe: dev
//! accuracy must clear the majority baseline by a wide margin, and bad input is reported.

mod common;

use cloze::finetune::data::{read_tsv, TsvSpec};
use cloze::finetune::trainer::{finetune_once, scores, FinetuneConfig};
use common::assert_mentions;
use std::path::PathBuf;

fn shared() -> PathBuf {
    common::shared_path("data/glue").join("../..")
}

fn model_dir() -> PathBuf {
    common::minilm_dir()
}

/// The first `n` sentences of SST-2's dev file (small, labelled, always present).
fn sst2_dev(n: usize) -> Vec<cloze::finetune::data::Example> {
    let glue = shared().join("data/glue/SST-2");
    let spec = TsvSpec::for_task("sst-2").unwrap();
    let mut v = read_tsv(glue.join("dev.tsv"), &spec).unwrap();
    v.truncate(n);
    v
}

#[test]
fn minilm_learns_sst2_from_a_few_hundred_examples() {
    let glue = shared().join("data/glue/SST-2");
    let spec = TsvSpec::for_task("sst-2").unwrap();
    let train = read_tsv(glue.join("train.tsv"), &spec).unwrap();
    let dev = read_tsv(glue.join("dev.tsv"), &spec).unwrap();
    let dev = &dev[..300];
    let cfg = FinetuneConfig {
        epochs: 1,
        max_train_examples: Some(640),
        max_seq_length: 64,
        ..FinetuneConfig::paper(model_dir(), 2)
    };
    let (_clf, s) = finetune_once(&cfg, 5e-5, &train, dev).unwrap();
    let gold: Vec<usize> = dev.iter().map(|e| e.label).collect();
    let majority = gold
        .iter()
        .filter(|&&g| g == 1)
        .count()
        .max(gold.iter().filter(|&&g| g == 0).count()) as f64
        / gold.len() as f64;
    eprintln!(
        "SST-2 (640 train, 300 dev): accuracy {:.3}, F1 {:.3}, majority {majority:.3}",
        s.accuracy, s.f1
    );
    // With 300 dev examples one binomial sd at p≈0.5 is 2.9 points: 0.70 is > 6 sd above a
    // classifier that learned nothing, while a 6-layer sentence encoder fine-tuned on 640
    // examples reaches the high 70s or more.
    assert!(
        s.accuracy >= 0.70,
        "dev accuracy {} (majority {majority})",
        s.accuracy
    );
}

#[test]
fn scores_are_computed_correctly() {
    // accuracy 4/6; class 1: tp 2, fp 1, fn 1 → F1 = 4/6
    let (acc, f1) = scores(&[1, 1, 0, 0, 1, 0], &[1, 0, 0, 1, 1, 0], 2);
    assert!((acc - 4.0 / 6.0).abs() < 1e-12 && (f1 - 4.0 / 6.0).abs() < 1e-12);
    // three classes: macro F1 of per-class F1 (1, 2/3, 0)
    let (_, f1) = scores(&[0, 1, 1, 2], &[0, 1, 2, 1], 3);
    let want = (1.0 + 0.5 + 0.0) / 3.0;
    assert!((f1 - want).abs() < 1e-12, "{f1} vs {want}");
}

#[test]
fn labels_outside_num_labels_are_an_error() {
    let mut train = sst2_dev(8);
    train[3].label = 5;
    let cfg = FinetuneConfig {
        epochs: 1,
        ..FinetuneConfig::paper(model_dir(), 2)
    };
    let err = finetune_once(&cfg, 5e-5, &train, &train[..2])
        .err()
        .expect("must fail")
        .to_string();
    assert_mentions(&err, &["label 5", "num_labels is 2"]);
}

#[test]
fn a_diverging_fine_tuning_stops_naming_the_step() {
    let train = sst2_dev(64);
    let cfg = FinetuneConfig {
        epochs: 2,
        batch_size: 8,
        max_seq_length: 32,
        warmup_proportion: 0.0,
        ..FinetuneConfig::paper(model_dir(), 2)
    };
    let err = finetune_once(&cfg, 1e6, &train, &train[..8])
        .err()
        .expect("fine-tuning at learning rate 1e6 must stop on a non-finite loss")
        .to_string();
    assert!(
        err.contains("step ") && (err.contains("loss is") || err.contains("gradient norm is")),
        "{err}"
    );
}

/// The step losses of a short run with the given dropout override.
fn step_losses(dropout: Option<f32>) -> Vec<f32> {
    use cloze::finetune::trainer::{finetune_once_observed, FinetuneEvent};
    let train = sst2_dev(16);
    let cfg = FinetuneConfig {
        epochs: 1,
        batch_size: 8,
        max_seq_length: 32,
        dropout,
        ..FinetuneConfig::paper(model_dir(), 2)
    };
    let mut losses = Vec::new();
    finetune_once_observed(&cfg, 5e-5, &train, &train[..4], &mut |e| {
        if let FinetuneEvent::Step { loss, .. } = e {
            losses.push(*loss);
        }
    })
    .unwrap();
    losses
}

#[test]
fn the_dropout_override_replaces_the_folders_dropout() {
    // MiniLM's config.json says 0.1: overriding with 0.1 changes nothing (the same masks
    // from the same seed), overriding with 0 removes the masks and changes every loss
    let own = step_losses(None);
    assert_eq!(own.len(), 2);
    assert_eq!(step_losses(Some(0.1)), own);
    let without = step_losses(Some(0.0));
    assert!(
        without.iter().zip(&own).all(|(a, b)| a != b),
        "{without:?} vs {own:?}"
    );
}

#[test]
fn a_dropout_outside_zero_to_one_is_an_error() {
    let train = sst2_dev(8);
    for p in [1.0f32, -0.1, f32::NAN] {
        let cfg = FinetuneConfig {
            epochs: 1,
            dropout: Some(p),
            ..FinetuneConfig::paper(model_dir(), 2)
        };
        let err = finetune_once(&cfg, 5e-5, &train, &train[..2])
            .err()
            .expect("must fail")
            .to_string();
        assert_mentions(&err, &[&format!("dropout {p}"), "[0, 1)"]);
    }
}
