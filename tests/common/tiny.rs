//! Tiny models and the vocabulary they share, built in a test and saved as folders the CLI
//! reads: a masked-LM model and a 3-class classifier.

use cloze::bert::model::{BertForPreTraining, BertForSequenceClassification};
use cloze::bert::{save_pretrained, BertConfig};
use cloze::finetune::trainer::Classifier;
use cloze::tokenizer::{Tokenizer, Vocab};
use cloze::ParamStore;
use std::path::{Path, PathBuf};

pub const WORDS: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog", "a",
    "good", "bad", "film", ".", "Cat", "café", "cafe",
];

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cloze-predict-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn tiny_config() -> BertConfig {
    let mut c = BertConfig::with_shape(2, 16, 2, 32);
    c.vocab_size = WORDS.len();
    c.max_position_embeddings = 32;
    c
}

pub fn vocab() -> Vocab {
    Vocab::from_tokens(WORDS.iter().copied()).unwrap()
}

/// A randomly initialised BertForPreTraining folder; `boost` adds 20 to the MLM output bias
/// of that token.
pub fn tiny_mlm(dir: &Path, boost: Option<&str>) -> (BertConfig, BertForPreTraining, ParamStore) {
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

/// A 3-class classifier saved as `cloze finetune` saves it; class `boost` gets +20 bias.
pub fn tiny_classifier(dir: &Path, boost: Option<usize>) -> Classifier {
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
        pair_truncation: Default::default(),
    };
    let names: Vec<String> = ["negative", "neutral", "positive"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    clf.save_pretrained(dir, &names).unwrap();
    clf
}

pub fn softmax(row: &[f32]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = row.iter().map(|&x| (x as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}
