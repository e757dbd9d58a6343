//! A small pre-training run on the tiny real corpus, set up in a scratch folder: its
//! vocabulary, its config, and the deterministic part of its metrics log.

use cloze::pretrain::config::PretrainConfig;
use cloze::pretrain::trainer::Pretrainer;
use cloze::tokenizer::{Trainer, TrainerConfig};
use std::path::{Path, PathBuf};

pub fn corpus() -> PathBuf {
    super::shared_path("data/fixtures/tiny-corpus.txt")
}

pub fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cloze-pt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The pre-training config of these tests: a very small model, sequences of 48 tokens,
/// `steps` steps of 16 on `train`, with `vocab.txt` beside the config. `model_extra` ends the
/// `[model]` table and `train_extra` the `[train]` table (each a string of whole lines).
pub fn config_text(train: &str, steps: u64, model_extra: &str, train_extra: &str) -> String {
    format!(
        r#"output_dir = "run"
[model]
preset = "tiny"
num_hidden_layers = 2
hidden_size = 64
num_attention_heads = 2
intermediate_size = 128
{model_extra}[data]
vocab = "vocab.txt"
train = "{train}"
heldout_every = 2
max_seq_length = 48
max_predictions_per_seq = 8
dupe_factor = 3
[train]
objective = "mlm+nsp"
batch_size = 16
steps = {steps}
learning_rate = 2e-3
warmup_steps = 5
{train_extra}"#
    )
}

/// A small vocabulary learned from the corpus, and a config for a very small model trained
/// on it (seed 11, a log line and a checkpoint every 5 steps); `extra_train` ends `[train]`.
pub fn setup(dir: &Path, steps: u64, extra_train: &str) -> PathBuf {
    let train =
        format!("seed = 11\nlog_every = 5\neval_every = 0\ncheckpoint_every = 5\n{extra_train}\n");
    setup_with(dir, steps, "", &train)
}

/// `vocab.txt` (600 tokens learned from the corpus) and `pretrain.toml` ([`config_text`] on
/// the corpus) in `dir`; returns the config's path.
pub fn setup_with(dir: &Path, steps: u64, model_extra: &str, train_extra: &str) -> PathBuf {
    let mut t = Trainer::new(TrainerConfig {
        vocab_size: 600,
        min_frequency: 2,
        ..TrainerConfig::default()
    });
    t.feed_file(corpus()).unwrap();
    t.train().unwrap().save(dir.join("vocab.txt")).unwrap();
    let train = corpus().display().to_string();
    let p = dir.join("pretrain.toml");
    std::fs::write(&p, config_text(&train, steps, model_extra, train_extra)).unwrap();
    p
}

/// [`setup`] with one line of the config replaced.
pub fn setup_replacing(dir: &Path, steps: u64, from: &str, to: &str) -> PathBuf {
    let p = setup(dir, steps, "");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{from:?} is not in the test config");
    std::fs::write(&p, text.replace(from, to)).unwrap();
    p
}

/// A single-process trainer on the config at `path`.
pub fn trainer(path: impl AsRef<Path>) -> Pretrainer<'static> {
    Pretrainer::single(PretrainConfig::from_file(path).unwrap()).unwrap()
}

/// Asserts that a loss fell from `from` to `to` by more than `by`.
pub fn assert_fell(what: &str, from: f64, to: f64, by: f64) {
    assert!(
        to < from - by,
        "{what}: {from} -> {to}, not lower by more than {by}"
    );
}

/// The deterministic fields of the metrics log (timing fields dropped).
pub fn losses(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("run/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("tokens_per_second");
            o.remove("comm_seconds");
            serde_json::to_string(&v).unwrap()
        })
        .collect()
}
