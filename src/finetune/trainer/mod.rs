//! Sentence and sentence-pair classification on the pooled `[CLS]` representation, the paper's
//! recipe: AdamW (BERT's update), warm-up over the first 10% of steps then linear decay,
//! dropout 0.1 (the folder's own, or [`FinetuneConfig::dropout`]), a few epochs, batch 32,
//! and the learning rate picked on dev from {5e-5, 3e-5, 2e-5} unless one is given.
//!
//! - this file: the settings, the progress events, and the training runs;
//! - `classifier`: the fine-tuned [`Classifier`], its predictions and its saved folder;
//! - `scores`: dev and evaluation scores ([`scores()`], [`dev_scores`]).

mod classifier;
mod scores;

pub use classifier::Classifier;
pub use scores::{dev_scores, gold_labels, pearson, scores, spearman, write_scores, Scores};

use crate::autodiff::params::ParamStore;
use crate::autodiff::tape::Tape;
use crate::bert::checkpoint::{load_pretrained, LoadOptions};
use crate::bert::model::{BertForSequenceClassification, BertInput, ForwardOptions};
use crate::error::{invalid, require_positive, Result};
use crate::finetune::data::Example;
use crate::optim::adamw::bert_decays;
use crate::optim::{AdamW, AdamWConfig, LinearWarmupDecay};
use crate::tokenizer::{Encoding, PaddedBatch, PairTruncation, Tokenizer};
use classifier::encode;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use scores::gold_scores;
use std::path::PathBuf;

/// Fine-tuning settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FinetuneConfig {
    /// Pre-trained HF folder (config.json, model.safetensors, vocab.txt).
    pub model_dir: PathBuf,
    /// Classes of the head; 1 means regression (mean squared error on one output).
    pub num_labels: usize,
    /// Examples are truncated to this many tokens (`[CLS]`/`[SEP]` included).
    pub max_seq_length: usize,
    /// Examples per optimiser step.
    pub batch_size: usize,
    /// Passes over the training data.
    pub epochs: usize,
    /// Learning rates to try; the best on dev is kept (the paper's grid by default).
    pub learning_rates: Vec<f32>,
    /// Fraction of the steps spent warming the learning rate up linearly (then linear decay).
    pub warmup_proportion: f32,
    /// Seed of the head initialisation, data order and dropout.
    pub seed: u64,
    /// Cap on training examples (quick runs); `None` uses all.
    pub max_train_examples: Option<usize>,
    /// How a pair is cut to `max_seq_length` when both texts must lose tokens (default: the
    /// Python tokenizer's rule; left out of the serialised form when it is the default, so
    /// settings recorded before the field existed read and compare the same).
    #[serde(default, skip_serializing_if = "is_default_rule")]
    pub pair_truncation: PairTruncation,
    /// Dropout probability of the encoder (hidden and attention) while fine-tuning; `None`
    /// keeps the pre-trained folder's `config.json` values. The paper fine-tunes with 0.1
    /// always; a model pre-trained without dropout (Cramming's recipe) gets it back here.
    /// Left out of the serialised form when `None`, like `pair_truncation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f32>,
}

fn is_default_rule(rule: &PairTruncation) -> bool {
    *rule == PairTruncation::default()
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
            pair_truncation: PairTruncation::Python,
            dropout: None,
        }
    }
}

/// Progress of a fine-tuning run, passed to the observer of [`finetune_observed`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FinetuneEvent {
    /// A run with one learning rate starts.
    Start {
        /// Peak learning rate of this run.
        learning_rate: f32,
        /// Optimiser steps this run will take.
        total_steps: u64,
    },
    /// One optimiser step finished.
    Step {
        /// Peak learning rate of this run.
        learning_rate: f32,
        /// Epoch, 0-based.
        epoch: usize,
        /// Step, 0-based, counted over the run.
        step: u64,
        /// Mean cross-entropy of the batch.
        loss: f32,
        /// Learning rate used for this step (after warm-up / decay).
        lr: f32,
    },
    /// An epoch finished and dev was scored.
    Epoch {
        /// Peak learning rate of this run.
        learning_rate: f32,
        /// Epoch, 0-based.
        epoch: usize,
        /// Dev accuracy.
        dev_accuracy: f64,
        /// Dev F1 (see [`Scores::f1`]).
        dev_f1: f64,
        /// Dev Pearson correlation (regression).
        #[serde(skip_serializing_if = "Option::is_none")]
        dev_pearson: Option<f64>,
        /// Dev Spearman correlation (regression).
        #[serde(skip_serializing_if = "Option::is_none")]
        dev_spearman: Option<f64>,
    },
}

/// Fine-tunes once with one learning rate; returns the classifier and its dev scores.
pub fn finetune_once(
    cfg: &FinetuneConfig,
    lr: f32,
    train: &[Example],
    dev: &[Example],
) -> Result<(Classifier, Scores)> {
    run_once(cfg, lr, train, dev, None)
}

/// [`finetune_once`] reporting each step and each epoch's dev scores to `observe` (dev is
/// scored after every epoch; the returned scores are the last epoch's).
pub fn finetune_once_observed(
    cfg: &FinetuneConfig,
    lr: f32,
    train: &[Example],
    dev: &[Example],
    observe: &mut dyn FnMut(&FinetuneEvent),
) -> Result<(Classifier, Scores)> {
    run_once(cfg, lr, train, dev, Some(observe))
}

/// The checks a run makes before it loads anything: examples on both sides, positive batch
/// size and epochs, a head size in range, and dev labels (or scores) the head can be scored on.
fn check_run(cfg: &FinetuneConfig, train: &[Example], dev: &[Example]) -> Result<()> {
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
    require_positive(
        "finetune",
        &[("batch_size", cfg.batch_size), ("epochs", cfg.epochs)],
    )?;
    if cfg.num_labels == 0 || cfg.num_labels > crate::finetune::data::MAX_LABELS {
        return invalid(
            "finetune",
            format!(
                "num_labels {} must be in 1..={} (1 = regression)",
                cfg.num_labels,
                crate::finetune::data::MAX_LABELS
            ),
        );
    }
    if let Some(p) = cfg.dropout {
        if !(0.0..1.0).contains(&p) {
            return invalid("finetune", format!("dropout {p} must be in [0, 1)"));
        }
    }
    if cfg.num_labels == 1 {
        gold_scores(dev, "dev")?;
    } else {
        gold_labels(dev, cfg.num_labels, "dev")?;
    }
    Ok(())
}

/// The pre-trained folder's encoder with a new classification head (initialised from
/// `cfg.seed`), and the folder's tokenizer.
fn load_model(
    cfg: &FinetuneConfig,
) -> Result<(BertForSequenceClassification, ParamStore, Tokenizer)> {
    let (mut config, ckpt) = load_pretrained(&cfg.model_dir)?;
    if let Some(p) = cfg.dropout {
        config.hidden_dropout_prob = p;
        config.attention_probs_dropout_prob = p;
    }
    let tokenizer = crate::bert::folder::load_tokenizer_for(&cfg.model_dir, &config)?;
    let mut store = ParamStore::new();
    let model = BertForSequenceClassification::new(&config, &mut store, cfg.num_labels, cfg.seed)?;
    ckpt.load_into_with(
        &mut store,
        &LoadOptions {
            allow_missing: vec!["classifier.".into(), "pooler.".into()],
            allow_unused: vec!["cls.".into(), "classifier.".into()],
        },
    )?;
    Ok((model, store, tokenizer))
}

/// One run; without an observer dev is scored after the last epoch only.
fn run_once(
    cfg: &FinetuneConfig,
    lr: f32,
    train: &[Example],
    dev: &[Example],
    mut observe: Option<&mut dyn FnMut(&FinetuneEvent)>,
) -> Result<(Classifier, Scores)> {
    check_run(cfg, train, dev)?;
    let (model, store, tokenizer) = load_model(cfg)?;
    let train = &train[..cfg
        .max_train_examples
        .unwrap_or(train.len())
        .min(train.len())];
    let data = encode(
        &tokenizer,
        train,
        cfg.max_seq_length,
        cfg.pair_truncation,
        cfg.num_labels,
        "training",
    )?;
    let targets: Option<Vec<f32>> = if cfg.num_labels == 1 {
        Some(
            gold_scores(train, "training")?
                .into_iter()
                .map(|s| s as f32)
                .collect(),
        )
    } else {
        None
    };
    let steps_per_epoch = data.enc.len().div_ceil(cfg.batch_size);
    let total = (steps_per_epoch * cfg.epochs) as u64;
    let warmup = (total as f32 * cfg.warmup_proportion).round() as u64;
    let schedule = LinearWarmupDecay::new(lr, warmup, total)?;
    let mut opt = AdamW::new(AdamWConfig::bert(), &store, bert_decays)?;
    let pad = tokenizer.vocab().pad_id();
    let mut tape = Tape::new();
    let mut step = 0u64;
    let mut order: Vec<usize> = (0..data.enc.len()).collect();
    if let Some(o) = observe.as_mut() {
        o(&FinetuneEvent::Start {
            learning_rate: lr,
            total_steps: total,
        });
    }
    let mut clf = Classifier {
        model,
        store,
        tokenizer,
        max_seq_length: cfg.max_seq_length,
        pair_truncation: cfg.pair_truncation,
    };
    let mut last: Option<Scores> = None;
    for epoch in 0..cfg.epochs {
        let (model, store) = (&clf.model, &mut clf.store);
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            cfg.seed ^ (epoch as u64 + 1),
        ));
        for chunk in order.chunks(cfg.batch_size) {
            let refs: Vec<&Encoding> = chunk.iter().map(|&i| &data.enc[i]).collect();
            let labels: Vec<i32> = chunk.iter().map(|&i| data.labels[i] as i32).collect();
            let targets: Vec<f32> = match &targets {
                Some(t) => chunk.iter().map(|&i| t[i]).collect(),
                None => Vec::new(),
            };
            let padded = PaddedBatch::new(&refs, pad);
            tape.reset();
            store.zero_grads();
            let input = BertInput::from_padded(&padded);
            let opts = ForwardOptions {
                seed: cfg.seed.wrapping_mul(1_000_003).wrapping_add(step),
                output_hidden_states: false,
            };
            let logits = model.forward(&mut tape, store, &input, &opts)?;
            let loss = if cfg.num_labels == 1 {
                // regression: mean squared error, as HF's problem_type "regression"
                let y = crate::autodiff::tape::Var::constant(crate::tensor::Tensor::from_vec(
                    targets,
                    &[chunk.len(), 1],
                )?);
                let d = tape.sub(&logits, &y)?;
                let sq = tape.mul(&d, &d)?;
                tape.mean(&sq)?
            } else {
                tape.cross_entropy(&logits, &labels, -100)?
            };
            let loss_value = loss.value().item()?;
            let grads = tape.backward(&loss)?;
            store.accumulate(&grads)?;
            let norm = store.clip_grad_norm(1.0)?;
            crate::train::ensure_finite_step(
                step + 1,
                &[("loss", f64::from(loss_value))],
                norm,
                &[&*store],
            )?;
            let step_lr = schedule.lr(step);
            opt.step(store, step_lr)?;
            if let Some(o) = observe.as_mut() {
                o(&FinetuneEvent::Step {
                    learning_rate: lr,
                    epoch,
                    step,
                    loss: loss_value,
                    lr: step_lr,
                });
            }
            step += 1;
        }
        if observe.is_none() && epoch + 1 < cfg.epochs {
            continue;
        }
        let sc = dev_scores(&clf, dev, cfg.batch_size, lr)?;
        if let Some(o) = observe.as_mut() {
            o(&FinetuneEvent::Epoch {
                learning_rate: lr,
                epoch,
                dev_accuracy: sc.accuracy,
                dev_f1: sc.f1,
                dev_pearson: sc.pearson,
                dev_spearman: sc.spearman,
            });
        }
        last = Some(sc);
    }
    Ok((clf, last.expect("epochs is positive")))
}

/// Fine-tunes with every configured learning rate and keeps the best on dev (by accuracy, or
/// by Pearson correlation for regression).
pub fn finetune(
    cfg: &FinetuneConfig,
    train: &[Example],
    dev: &[Example],
) -> Result<(Classifier, Vec<Scores>)> {
    finetune_inner(cfg, train, dev, None)
}

/// [`finetune`] reporting progress to `observe` (see [`FinetuneEvent`]).
pub fn finetune_observed(
    cfg: &FinetuneConfig,
    train: &[Example],
    dev: &[Example],
    observe: &mut dyn FnMut(&FinetuneEvent),
) -> Result<(Classifier, Vec<Scores>)> {
    finetune_inner(cfg, train, dev, Some(observe))
}

fn finetune_inner(
    cfg: &FinetuneConfig,
    train: &[Example],
    dev: &[Example],
    mut observe: Option<&mut dyn FnMut(&FinetuneEvent)>,
) -> Result<(Classifier, Vec<Scores>)> {
    if cfg.learning_rates.is_empty() {
        return invalid("finetune", "no learning rate to try");
    }
    let mut best: Option<(Classifier, Scores)> = None;
    let mut all = Vec::new();
    for &lr in &cfg.learning_rates {
        let (clf, s) = match observe.as_mut() {
            Some(o) => run_once(cfg, lr, train, dev, Some(&mut **o))?,
            None => run_once(cfg, lr, train, dev, None)?,
        };
        all.push(s);
        if best.as_ref().is_none_or(|(_, b)| s.primary() > b.primary()) {
            best = Some((clf, s));
        }
    }
    Ok((best.expect("at least one learning rate").0, all))
}
