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
    /// The peak learning rate of the run.
    pub learning_rate: f32,
    /// Dev accuracy (classification; 0 for regression).
    pub accuracy: f64,
    /// F1 of class 1 for two classes, macro F1 otherwise (0 for regression).
    pub f1: f64,
    /// Pearson correlation of predicted and gold scores (regression only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pearson: Option<f64>,
    /// Spearman rank correlation of predicted and gold scores (regression only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spearman: Option<f64>,
}

impl Scores {
    /// The score the learning rate is picked by: Pearson for regression, else accuracy.
    pub fn primary(&self) -> f64 {
        self.pearson.unwrap_or(self.accuracy)
    }
}

/// Pearson correlation (in f64); 0 when either side is constant or the lengths differ.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    if n == 0 || n != y.len() {
        return 0.0;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// 1-based ranks with ties given their average rank (as scipy's `rankdata`).
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation: Pearson of the (tie-averaged) ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// Dev scores of predictions: accuracy and F1 for classification (`num_labels` ≥ 2), Pearson
/// and Spearman against [`Example::score`] for regression (`num_labels` 1).
pub fn dev_scores(clf: &Classifier, dev: &[Example], batch: usize, lr: f32) -> Result<Scores> {
    let nl = clf.model.classifier.num_labels;
    if nl == 1 {
        let pred: Vec<f64> = clf
            .predict_scores(dev, batch)?
            .into_iter()
            .map(f64::from)
            .collect();
        let gold = gold_scores(dev, "dev")?;
        Ok(Scores {
            learning_rate: lr,
            accuracy: 0.0,
            f1: 0.0,
            pearson: Some(pearson(&pred, &gold)),
            spearman: Some(spearman(&pred, &gold)),
        })
    } else {
        let gold = gold_labels(dev, nl, "dev")?;
        let pred = clf.predict(dev, batch)?;
        let (accuracy, f1) = scores(&pred, &gold, nl);
        Ok(Scores {
            learning_rate: lr,
            accuracy,
            f1,
            pearson: None,
            spearman: None,
        })
    }
}

fn gold_scores(ex: &[Example], what: &str) -> Result<Vec<f64>> {
    if ex.is_empty() {
        return invalid(
            "evaluate",
            format!("no {what} examples: a correlation over nothing would be meaningless"),
        );
    }
    ex.iter()
        .enumerate()
        .map(|(i, e)| match e.score {
            Some(s) if s.is_finite() => Ok(s as f64),
            Some(s) => invalid("finetune", format!("{what} example {i} has score {s}")),
            None => invalid(
                "finetune",
                format!("{what} example {i} has no score, but num_labels 1 means regression"),
            ),
        })
        .collect()
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
    /// The encoder with its pooler and classification head.
    pub model: BertForSequenceClassification,
    /// All weights.
    pub store: ParamStore,
    /// The model folder's tokenizer.
    pub tokenizer: Tokenizer,
    /// Examples are truncated to this many tokens.
    pub max_seq_length: usize,
}

impl Classifier {
    /// Runs the model over `ex` in batches of `batch` and hands each example's logits row
    /// (`num_labels` values), in order, to `row`.
    fn for_each_logits_row(
        &self,
        ex: &[Example],
        batch: usize,
        mut row: impl FnMut(&[f32]),
    ) -> Result<()> {
        let nl = self.model.classifier.num_labels;
        let data = encode(&self.tokenizer, ex, self.max_seq_length, usize::MAX, "eval")?;
        let pad = self.tokenizer.vocab().pad_id();
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
            logits.value().data().chunks_exact(nl).for_each(&mut row);
        }
        Ok(())
    }

    /// The first head output of each example: the predicted score of a regression head
    /// (`num_labels` 1).
    pub fn predict_scores(&self, ex: &[Example], batch: usize) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(ex.len());
        self.for_each_logits_row(ex, batch, |r| out.push(r[0]))?;
        Ok(out)
    }

    /// Predicted classes of examples.
    pub fn predict(&self, ex: &[Example], batch: usize) -> Result<Vec<usize>> {
        let mut out = Vec::with_capacity(ex.len());
        self.for_each_logits_row(ex, batch, |r| out.push(crate::tensor::argmax(r)))?;
        Ok(out)
    }
}

impl Classifier {
    /// Saves the classifier as HF's `BertForSequenceClassification` folder: `config.json` with
    /// `architectures: ["BertForSequenceClassification"]`, `num_labels`, `id2label` /
    /// `label2id` (from `label_names`, one per class; `LABEL_i` when empty) and `problem_type`
    /// (`regression` for one output, else `single_label_classification`), `model.safetensors`
    /// (`bert.*`, `classifier.weight`/`bias`) and `vocab.txt`.
    pub fn save_pretrained(&self, dir: &Path, label_names: &[String]) -> Result<()> {
        let k = self.model.classifier.num_labels;
        let names: Vec<String> = if label_names.is_empty() {
            (0..k).map(|i| format!("LABEL_{i}")).collect()
        } else if label_names.len() == k {
            label_names.to_vec()
        } else {
            return invalid(
                "Classifier::save_pretrained",
                format!("{} label names for {k} classes", label_names.len()),
            );
        };
        let mut config = self.model.bert.config().clone();
        config.architectures = vec!["BertForSequenceClassification".into()];
        crate::bert::save_pretrained(dir, &config, &self.store)?;
        let mut v: serde_json::Value =
            serde_json::from_str(&config.to_json_string()).expect("a config serialises");
        let obj = v.as_object_mut().expect("an object");
        obj.insert("num_labels".into(), k.into());
        obj.insert(
            "id2label".into(),
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (i.to_string(), serde_json::Value::from(n.clone())))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
        obj.insert(
            "label2id".into(),
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), serde_json::Value::from(i)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
        let problem = if k == 1 {
            "regression"
        } else {
            "single_label_classification"
        };
        obj.insert("problem_type".into(), problem.into());
        let mut text = serde_json::to_string_pretty(&v).expect("serialises");
        text.push('\n');
        crate::train::checkpoint::write_atomic(&dir.join("config.json"), text.as_bytes())?;
        self.tokenizer.vocab().save(dir.join("vocab.txt"))?;
        let lower = self.tokenizer.basic().lowercase;
        let tc = serde_json::json!({
            "do_lower_case": lower,
            "strip_accents": self.tokenizer.basic().strip_accents,
            "model_max_length": self.max_seq_length,
            "tokenizer_class": "BertTokenizer",
        });
        crate::train::checkpoint::write_atomic(
            &dir.join("tokenizer_config.json"),
            format!("{tc:#}\n").as_bytes(),
        )
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

/// One run; without an observer dev is scored after the last epoch only.
fn run_once(
    cfg: &FinetuneConfig,
    lr: f32,
    train: &[Example],
    dev: &[Example],
    mut observe: Option<&mut dyn FnMut(&FinetuneEvent)>,
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
    if cfg.num_labels == 1 {
        gold_scores(dev, "dev")?;
    } else {
        gold_labels(dev, cfg.num_labels, "dev")?;
    }
    let (config, ckpt) = load_pretrained(&cfg.model_dir)?;
    let tokenizer = crate::bert::folder::load_tokenizer(&cfg.model_dir)?;
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

/// Where a run's scores are written.
pub fn write_scores(path: &Path, scores: &[Scores]) -> Result<()> {
    let text = serde_json::to_string_pretty(scores).expect("scores serialise");
    crate::train::checkpoint::write_atomic(path, text.as_bytes())
}
