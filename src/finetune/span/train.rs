//! Span fine-tuning: settings, the model, the training loop and its evaluation.

use crate::autodiff::params::ParamStore;
use crate::autodiff::tape::Tape;
use crate::bert::checkpoint::{load_pretrained, save_pretrained, LoadOptions};
use crate::bert::config::BertConfig;
use crate::bert::model::{BertInput, BertModel, ForwardOptions};
use crate::error::{invalid, require_positive, Result};
use crate::finetune::span::features::{make_features, predict_answers, SpanFeature, WindowOptions};
use crate::finetune::span::head::SpanHead;
use crate::finetune::span::squad::{squad_scores, SquadExample};
use crate::optim::adamw::bert_decays;
use crate::optim::{AdamW, AdamWConfig, LinearWarmupDecay};
use crate::tokenizer::Tokenizer;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::{Path, PathBuf};

/// Span fine-tuning settings (the paper's SQuAD recipe: 384 / 128 / 64, batch 32, 3e-5, 2
/// epochs, warm-up 10%, answers up to 30 pieces).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpanConfig {
    /// Pre-trained HF folder (config.json, model.safetensors, vocab.txt).
    pub model_dir: PathBuf,
    /// Tokens per window, specials included (paper: 384).
    pub max_seq_length: usize,
    /// Context pieces between the starts of consecutive windows (paper: 128).
    pub doc_stride: usize,
    /// Questions are cut to this many pieces (paper: 64).
    pub max_query_length: usize,
    /// Windows per optimiser step (paper: 32).
    pub batch_size: usize,
    /// Passes over the training windows (paper: 2).
    pub epochs: usize,
    /// Peak learning rate of BERT's warm-up / linear-decay schedule (paper: 3e-5).
    pub learning_rate: f32,
    /// Fraction of the steps spent warming up linearly, in [0, 1] (paper: 0.1).
    pub warmup_proportion: f32,
    /// Seed of the head initialisation, window order and dropout.
    pub seed: u64,
    /// Longest answer span considered when decoding, in pieces (paper: 30).
    pub max_answer_length: usize,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl SpanConfig {
    /// The paper's SQuAD v1.1 settings for a model folder.
    pub fn paper(model_dir: impl Into<PathBuf>) -> SpanConfig {
        SpanConfig {
            model_dir: model_dir.into(),
            max_seq_length: 384,
            doc_stride: 128,
            max_query_length: 64,
            batch_size: 32,
            epochs: 2,
            learning_rate: 3e-5,
            warmup_proportion: 0.1,
            seed: 42,
            max_answer_length: 30,
            progress: false,
        }
    }

    /// The window settings (`max_seq_length`, `doc_stride`, `max_query_length`) as one value.
    pub fn window_options(&self) -> WindowOptions {
        WindowOptions {
            max_seq_length: self.max_seq_length,
            doc_stride: self.doc_stride,
            max_query_length: self.max_query_length,
        }
    }

    fn validate(&self, config: &BertConfig) -> Result<()> {
        self.window_options().validate()?;
        require_positive(
            "SpanConfig",
            &[
                ("batch_size", self.batch_size),
                ("epochs", self.epochs),
                ("max_answer_length", self.max_answer_length),
            ],
        )?;
        if self.max_seq_length > config.max_position_embeddings {
            return invalid(
                "SpanConfig",
                format!(
                    "max_seq_length {} exceeds the model's max_position_embeddings {}",
                    self.max_seq_length, config.max_position_embeddings
                ),
            );
        }
        let lr_ok = self.learning_rate > 0.0 && self.learning_rate.is_finite();
        if !lr_ok || !(0.0..=1.0).contains(&self.warmup_proportion) {
            return invalid(
                "SpanConfig",
                format!(
                    "learning_rate {} must be positive and warmup_proportion {} in [0, 1]",
                    self.learning_rate, self.warmup_proportion
                ),
            );
        }
        Ok(())
    }
}

/// What a span fine-tune scored on its evaluation examples.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SpanScores {
    /// Fractions in [0, 1].
    pub exact_match: f64,
    /// Mean token F1 against the best-matching reference answer, in [0, 1].
    pub f1: f64,
    /// Questions trained on.
    pub train_examples: usize,
    /// Windows trained on (a long context gives several per question).
    pub train_features: usize,
    /// Questions scored.
    pub eval_examples: usize,
    /// Windows scored.
    pub eval_features: usize,
    /// Optimiser steps taken.
    pub steps: u64,
    /// Mean training loss over the last epoch.
    pub last_epoch_loss: f64,
}

/// A span model: encoder (no pooler) + [`SpanHead`], with its tokenizer.
pub struct SpanModel {
    /// The model folder's config.
    pub config: BertConfig,
    /// The encoder, without pooler.
    pub bert: BertModel,
    /// The start/end head.
    pub head: SpanHead,
    /// All weights (encoder and head).
    pub store: ParamStore,
    /// The model folder's tokenizer.
    pub tokenizer: Tokenizer,
}

/// `[B, T]` ids, token types and mask of a batch of features (padded with `pad`).
fn pad_batch(batch: &[&SpanFeature], pad: u32) -> (Vec<u32>, Vec<u32>, Vec<u32>, usize) {
    let t = batch.iter().map(|f| f.len()).max().unwrap_or(1);
    let b = batch.len();
    let (mut ids, mut types, mut mask) = (vec![pad; b * t], vec![0u32; b * t], vec![0u32; b * t]);
    for (i, f) in batch.iter().enumerate() {
        let n = f.len();
        ids[i * t..i * t + n].copy_from_slice(&f.input_ids);
        types[i * t..i * t + n].copy_from_slice(&f.token_type_ids);
        mask[i * t..i * t + n].fill(1);
    }
    (ids, types, mask, t)
}

impl SpanModel {
    /// Loads an HF folder; the head is new unless the checkpoint has `qa_outputs.*`.
    pub fn load(model_dir: &Path, seed: u64) -> Result<SpanModel> {
        let (config, ckpt) = load_pretrained(model_dir)?;
        let tokenizer = Tokenizer::from_vocab_file(model_dir.join("vocab.txt"))?;
        let mut store = ParamStore::new();
        let bert = BertModel::new_without_pooler(&config, &mut store, seed)?;
        let head = SpanHead::new(&config, &mut store, seed)?;
        ckpt.load_into_with(
            &mut store,
            &LoadOptions {
                allow_missing: vec!["qa_outputs.".into()],
                allow_unused: vec!["pooler.".into(), "cls.".into(), "classifier.".into()],
            },
        )?;
        Ok(SpanModel {
            config,
            bert,
            head,
            store,
            tokenizer,
        })
    }

    /// Writes `config.json`, `model.safetensors` (HF `BertForQuestionAnswering` names) and
    /// `vocab.txt` into `dir`.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        let mut config = self.config.clone();
        config.architectures = vec!["BertForQuestionAnswering".into()];
        save_pretrained(dir, &config, &self.store)?;
        self.tokenizer.vocab().save(dir.join("vocab.txt"))
    }

    /// Start and end logits of each feature (eval mode, no dropout), cut to its length.
    pub fn logits(
        &self,
        features: &[SpanFeature],
        batch_size: usize,
    ) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
        let pad = self.tokenizer.vocab().pad_id();
        let mut tape = Tape::new();
        tape.set_training(false);
        tape.set_grad_enabled(false);
        let mut out = Vec::with_capacity(features.len());
        for chunk in features.chunks(batch_size.max(1)) {
            let refs: Vec<&SpanFeature> = chunk.iter().collect();
            let (ids, types, mask, t) = pad_batch(&refs, pad);
            tape.reset();
            let input = BertInput::new(&ids, refs.len(), t)
                .with_token_types(&types)
                .with_attention_mask(&mask);
            let h =
                self.bert
                    .forward(&mut tape, &self.store, &input, &ForwardOptions::default())?;
            let (s, e) = self
                .head
                .logits(&mut tape, &self.store, &h.last_hidden_state)?;
            for (i, f) in refs.iter().enumerate() {
                let n = f.len();
                out.push((
                    s.value().data()[i * t..i * t + n].to_vec(),
                    e.value().data()[i * t..i * t + n].to_vec(),
                ));
            }
        }
        Ok(out)
    }

    /// Predicted answer texts of `examples`.
    pub fn predict(&self, examples: &[SquadExample], cfg: &SpanConfig) -> Result<Vec<String>> {
        let feats = make_features(&self.tokenizer, examples, &cfg.window_options(), false)?;
        let logits = self.logits(&feats, cfg.batch_size)?;
        predict_answers(examples, &feats, &logits, cfg.max_answer_length)
    }
}

/// Fine-tunes a span model on `train` and scores it on `eval` (official EM / F1, fractions).
pub fn train_span_model(
    cfg: &SpanConfig,
    train: &[SquadExample],
    eval: &[SquadExample],
) -> Result<(SpanModel, SpanScores)> {
    if train.is_empty() || eval.is_empty() {
        return invalid(
            "train_span",
            format!(
                "need training and evaluation examples, got {} and {}",
                train.len(),
                eval.len()
            ),
        );
    }
    let mut model = SpanModel::load(&cfg.model_dir, cfg.seed)?;
    cfg.validate(&model.config)?;
    let feats = make_features(&model.tokenizer, train, &cfg.window_options(), true)?;
    let eval_feats = make_features(&model.tokenizer, eval, &cfg.window_options(), false)?;
    let steps_per_epoch = feats.len().div_ceil(cfg.batch_size);
    let total = (steps_per_epoch * cfg.epochs) as u64;
    let warmup = (total as f32 * cfg.warmup_proportion).round() as u64;
    let schedule = LinearWarmupDecay::new(cfg.learning_rate, warmup, total)?;
    let mut opt = AdamW::new(AdamWConfig::bert(), &model.store, bert_decays)?;
    let pad = model.tokenizer.vocab().pad_id();
    let bar = if cfg.progress {
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  eta {eta}")
                .expect("valid template"),
        );
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut tape = Tape::new();
    let mut order: Vec<usize> = (0..feats.len()).collect();
    let mut step = 0u64;
    let mut last_epoch_loss = 0.0;
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            cfg.seed ^ (epoch as u64 + 1).wrapping_mul(0x9e37_79b9),
        ));
        let (mut loss_sum, mut loss_n) = (0.0f64, 0usize);
        for chunk in order.chunks(cfg.batch_size) {
            let batch: Vec<&SpanFeature> = chunk.iter().map(|&i| &feats[i]).collect();
            let (ids, types, mask, t) = pad_batch(&batch, pad);
            let starts: Vec<usize> = batch.iter().map(|f| f.start_position).collect();
            let ends: Vec<usize> = batch.iter().map(|f| f.end_position).collect();
            tape.reset();
            model.store.zero_grads();
            let input = BertInput::new(&ids, batch.len(), t)
                .with_token_types(&types)
                .with_attention_mask(&mask);
            let opts = ForwardOptions {
                seed: cfg.seed.wrapping_mul(1_000_003).wrapping_add(step),
                output_hidden_states: false,
            };
            let h = model.bert.forward(&mut tape, &model.store, &input, &opts)?;
            let loss = model.head.loss(
                &mut tape,
                &model.store,
                &h.last_hidden_state,
                &starts,
                &ends,
            )?;
            let l = loss.value().data()[0] as f64;
            loss_sum += l;
            loss_n += 1;
            let grads = tape.backward(&loss)?;
            model.store.accumulate(&grads)?;
            let norm = model.store.clip_grad_norm(1.0)?;
            crate::train::ensure_finite_step(step + 1, &[("loss", l)], norm, &[&model.store])?;
            opt.step(&mut model.store, schedule.lr(step))?;
            step += 1;
            bar.inc(1);
            bar.set_message(format!("epoch {} loss {l:.3}", epoch + 1));
        }
        last_epoch_loss = loss_sum / loss_n.max(1) as f64;
    }
    bar.finish_and_clear();
    let logits = model.logits(&eval_feats, cfg.batch_size)?;
    let preds = predict_answers(eval, &eval_feats, &logits, cfg.max_answer_length)?;
    let (exact_match, f1) = squad_scores(&preds, eval)?;
    Ok((
        model,
        SpanScores {
            exact_match,
            f1,
            train_examples: train.len(),
            train_features: feats.len(),
            eval_examples: eval.len(),
            eval_features: eval_feats.len(),
            steps: step,
            last_epoch_loss,
        },
    ))
}

/// [`train_span_model`] returning only the scores.
pub fn train_span(
    cfg: &SpanConfig,
    train: &[SquadExample],
    eval: &[SquadExample],
) -> Result<SpanScores> {
    train_span_model(cfg, train, eval).map(|(_, s)| s)
}
