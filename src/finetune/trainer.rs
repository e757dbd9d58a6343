//! Sentence and sentence-pair classification on the pooled `[CLS]` representation, the paper's
//! recipe: AdamW (BERT's update), warm-up over the first 10% of steps then linear decay,
//! dropout 0.1, a few epochs, batch 32, and the learning rate picked on dev from
//! {5e-5, 3e-5, 2e-5} unless one is given.

use crate::autodiff::params::ParamStore;
use crate::autodiff::tape::Tape;
use crate::bert::checkpoint::{load_pretrained, LoadOptions};
use crate::bert::model::{BertForSequenceClassification, BertInput, ForwardOptions};
use crate::error::{invalid, Result};
use crate::finetune::data::Example;
use crate::optim::adamw::bert_decays;
use crate::optim::{AdamW, AdamWConfig, LinearWarmupDecay};
use crate::tokenizer::{EncodeOptions, Encoding, PaddedBatch, Tokenizer};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::{Path, PathBuf};

/// Fine-tuning settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FinetuneConfig {
    /// Pre-trained HF folder (config.json, model.safetensors, vocab.txt).
    pub model_dir: PathBuf,
    pub num_labels: usize,
    pub max_seq_length: usize,
    pub batch_size: usize,
    pub epochs: usize,
    /// Learning rates to try; the best on dev is kept (the paper's grid by default).
    pub learning_rates: Vec<f32>,
    pub warmup_proportion: f32,
    pub seed: u64,
    /// Cap on training examples (quick runs); `None` uses all.
    pub max_train_examples: Option<usize>,
}

impl FinetuneConfig {
    /// The paper's recipe for a model folder and label count.
    pub fn paper(model_dir: impl Into<PathBuf>, num_labels: usize) -> FinetuneConfig {
        FinetuneConfig {
            model_dir: model_dir.into(),
            num_labels,
            max_seq_length: 128,
            batch_size: 32,
            epochs: 3,
            learning_rates: vec![5e-5, 3e-5, 2e-5],
            warmup_proportion: 0.1,
            seed: 42,
            max_train_examples: None,
        }
    }
}

/// Dev scores of one learning rate.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Scores {
    pub learning_rate: f32,
    pub accuracy: f64,
    /// F1 of class 1 for two classes, macro F1 otherwise.
    pub f1: f64,
}

/// Accuracy and F1 of predictions.
pub fn scores(pred: &[usize], gold: &[usize], num_labels: usize) -> (f64, f64) {
    let n = gold.len().max(1) as f64;
    let acc = pred.iter().zip(gold).filter(|(p, g)| p == g).count() as f64 / n;
    let f1_of = |c: usize| {
        let tp = pred
            .iter()
            .zip(gold)
            .filter(|(p, g)| **p == c && **g == c)
            .count() as f64;
        let fp = pred
            .iter()
            .zip(gold)
            .filter(|(p, g)| **p == c && **g != c)
            .count() as f64;
        let fn_ = pred
            .iter()
            .zip(gold)
            .filter(|(p, g)| **p != c && **g == c)
            .count() as f64;
        if tp == 0.0 {
            0.0
        } else {
            2.0 * tp / (2.0 * tp + fp + fn_)
        }
    };
    let f1 = if num_labels == 2 {
        f1_of(1)
    } else {
        (0..num_labels).map(f1_of).sum::<f64>() / num_labels as f64
    };
    (acc, f1)
}

struct Encoded {
    enc: Vec<Encoding>,
    labels: Vec<usize>,
}

fn encode(
    tok: &Tokenizer,
    ex: &[Example],
    max_len: usize,
    num_labels: usize,
    what: &str,
) -> Result<Encoded> {
    let opts = EncodeOptions::truncate(max_len);
    let mut enc = Vec::with_capacity(ex.len());
    for (i, e) in ex.iter().enumerate() {
        if e.label >= num_labels {
            return invalid(
                "finetune",
                format!(
                    "{what} example {i} has label {} but num_labels is {num_labels}",
                    e.label
                ),
            );
        }
        enc.push(tok.encode_with(&e.text_a, e.text_b.as_deref(), &opts)?);
    }
    Ok(Encoded {
        enc,
        labels: ex.iter().map(|e| e.label).collect(),
    })
}

/// The labels of examples to score, each checked against `num_labels` (an out-of-range label
/// would silently count as wrong); an empty set is an error (there is nothing to report).
pub fn gold_labels(ex: &[Example], num_labels: usize, what: &str) -> Result<Vec<usize>> {
    if ex.is_empty() {
        return invalid(
            "evaluate",
            format!("no {what} examples: an accuracy over nothing would be meaningless"),
        );
    }
    ex.iter()
        .enumerate()
        .map(|(i, e)| {
            if e.label >= num_labels {
                invalid(
                    "evaluate",
                    format!(
                        "{what} example {i} has label {} but the model has {num_labels} classes",
                        e.label
                    ),
                )
            } else {
                Ok(e.label)
            }
        })
        .collect()
}

/// A fine-tuned classifier.
pub struct Classifier {
    pub model: BertForSequenceClassification,
    pub store: ParamStore,
    pub tokenizer: Tokenizer,
    pub max_seq_length: usize,
}

impl Classifier {
    /// Predicted classes of examples.
    pub fn predict(&self, ex: &[Example], batch: usize) -> Result<Vec<usize>> {
        let nl = self.model.classifier.num_labels;
        let data = encode(&self.tokenizer, ex, self.max_seq_length, usize::MAX, "eval")?;
        let pad = self.tokenizer.vocab().pad_id();
        let mut out = Vec::with_capacity(ex.len());
        let mut tape = Tape::new();
        tape.set_training(false);
        tape.set_grad_enabled(false);
        for chunk in data.enc.chunks(batch.max(1)) {
            let refs: Vec<&Encoding> = chunk.iter().collect();
            let padded = PaddedBatch::new(&refs, pad);
            let input = BertInput::from_padded(&padded);
            tape.reset();
            let logits =
                self.model
                    .forward(&mut tape, &self.store, &input, &ForwardOptions::default())?;
            for row in logits.value().data().chunks_exact(nl) {
                let arg = crate::tensor::argmax(row);
                out.push(arg);
            }
        }
        Ok(out)
    }
}

/// Fine-tunes once with one learning rate; returns the classifier and its dev scores.
pub fn finetune_once(
    cfg: &FinetuneConfig,
    lr: f32,
    train: &[Example],
    dev: &[Example],
) -> Result<(Classifier, Scores)> {
    if train.is_empty() || dev.is_empty() {
        return invalid(
            "finetune",
            format!(
                "need training and dev examples, got {} and {}",
                train.len(),
                dev.len()
            ),
        );
    }
    if cfg.batch_size == 0 || cfg.epochs == 0 {
        return invalid(
            "finetune",
            format!(
                "batch_size {} and epochs {} must be positive",
                cfg.batch_size, cfg.epochs
            ),
        );
    }
    if cfg.num_labels < 2 || cfg.num_labels > crate::finetune::data::MAX_LABELS {
        return invalid(
            "finetune",
            format!(
                "num_labels {} must be in 2..={}",
                cfg.num_labels,
                crate::finetune::data::MAX_LABELS
            ),
        );
    }
    gold_labels(dev, cfg.num_labels, "dev")?;
    let (config, ckpt) = load_pretrained(&cfg.model_dir)?;
    let tokenizer = Tokenizer::from_vocab_file(cfg.model_dir.join("vocab.txt"))?;
    let mut store = ParamStore::new();
    let model = BertForSequenceClassification::new(&config, &mut store, cfg.num_labels, cfg.seed)?;
    ckpt.load_into_with(
        &mut store,
        &LoadOptions {
            allow_missing: vec!["classifier.".into(), "pooler.".into()],
            allow_unused: vec!["cls.".into(), "classifier.".into()],
        },
    )?;
    let train = &train[..cfg
        .max_train_examples
        .unwrap_or(train.len())
        .min(train.len())];
    let data = encode(
        &tokenizer,
        train,
        cfg.max_seq_length,
        cfg.num_labels,
        "training",
    )?;
    let steps_per_epoch = data.enc.len().div_ceil(cfg.batch_size);
    let total = (steps_per_epoch * cfg.epochs) as u64;
    let warmup = (total as f32 * cfg.warmup_proportion).round() as u64;
    let schedule = LinearWarmupDecay::new(lr, warmup, total)?;
    let mut opt = AdamW::new(AdamWConfig::bert(), &store, bert_decays)?;
    let pad = tokenizer.vocab().pad_id();
    let mut tape = Tape::new();
    let mut step = 0u64;
    let mut order: Vec<usize> = (0..data.enc.len()).collect();
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            cfg.seed ^ (epoch as u64 + 1),
        ));
        for chunk in order.chunks(cfg.batch_size) {
            let refs: Vec<&Encoding> = chunk.iter().map(|&i| &data.enc[i]).collect();
            let labels: Vec<i32> = chunk.iter().map(|&i| data.labels[i] as i32).collect();
            let padded = PaddedBatch::new(&refs, pad);
            tape.reset();
            store.zero_grads();
            let input = BertInput::from_padded(&padded);
            let opts = ForwardOptions {
                seed: cfg.seed.wrapping_mul(1_000_003).wrapping_add(step),
                output_hidden_states: false,
            };
            let logits = model.forward(&mut tape, &store, &input, &opts)?;
            let loss = tape.cross_entropy(&logits, &labels, -100)?;
            let grads = tape.backward(&loss)?;
            store.accumulate(&grads)?;
            let norm = store.clip_grad_norm(1.0)?;
            crate::train::ensure_finite_step(
                step + 1,
                &[("loss", loss.value().data()[0] as f64)],
                norm,
                &[&store],
            )?;
            opt.step(&mut store, schedule.lr(step))?;
            step += 1;
        }
    }
    let clf = Classifier {
        model,
        store,
        tokenizer,
        max_seq_length: cfg.max_seq_length,
    };
    let pred = clf.predict(dev, cfg.batch_size)?;
    let gold = gold_labels(dev, cfg.num_labels, "dev")?;
    let (accuracy, f1) = scores(&pred, &gold, cfg.num_labels);
    Ok((
        clf,
        Scores {
            learning_rate: lr,
            accuracy,
            f1,
        },
    ))
}

/// Fine-tunes with every configured learning rate and keeps the best on dev (by accuracy).
pub fn finetune(
    cfg: &FinetuneConfig,
    train: &[Example],
    dev: &[Example],
) -> Result<(Classifier, Vec<Scores>)> {
    if cfg.learning_rates.is_empty() {
        return invalid("finetune", "no learning rate to try");
    }
    let mut best: Option<(Classifier, Scores)> = None;
    let mut all = Vec::new();
    for &lr in &cfg.learning_rates {
        let (clf, s) = finetune_once(cfg, lr, train, dev)?;
        all.push(s);
        if best.as_ref().is_none_or(|(_, b)| s.accuracy > b.accuracy) {
            best = Some((clf, s));
        }
    }
    Ok((best.expect("at least one learning rate").0, all))
}

/// Where a run's scores are written.
pub fn write_scores(path: &Path, scores: &[Scores]) -> Result<()> {
    let text = serde_json::to_string_pretty(scores).expect("scores serialise");
    crate::train::checkpoint::write_atomic(path, text.as_bytes())
}
