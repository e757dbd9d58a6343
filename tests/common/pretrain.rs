//! A small pre-training run on the tiny real corpus, set up in a scratch folder: its
//! vocabulary, its config, and the deterministic part of its metrics log.

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

/// A small vocabulary learned from the corpus, and a config for a very small model.
pub fn setup(dir: &Path, steps: u64, extra_train: &str) -> PathBuf {
    let mut t = Trainer::new(TrainerConfig {
        vocab_size: 600,
        min_frequency: 2,
        ..TrainerConfig::default()
    });
    t.feed_file(corpus()).unwrap();
    t.train().unwrap().save(dir.join("vocab.txt")).unwrap();
    let cfg = format!(
        r#"
output_dir = "run"
[model]
preset = "tiny"
num_hidden_layers = 2
hidden_size = 64
num_attention_heads = 2
intermediate_size = 128
[data]
vocab = "vocab.txt"
train = "{corpus}"
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
seed = 11
log_every = 5
eval_every = 0
checkpoint_every = 5
{extra_train}
"#,
        corpus = corpus().display()
    );
    let p = dir.join("pretrain.toml");
    std::fs::write(&p, cfg).unwrap();
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
