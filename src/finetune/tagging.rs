//! Token tagging (the stand-in for the paper's NER columns): a linear layer over each word's
//! first wordpiece, either fine-tuned with the whole encoder or trained on frozen features (the
//! concatenation of the last layers' hidden states, as the paper's feature-based column does).

use crate::autodiff::params::ParamStore;
use crate::autodiff::tape::{Tape, Var};
use crate::bert::checkpoint::{load_pretrained, LoadOptions};
use crate::bert::model::{BertInput, BertModel, ForwardOptions, Linear};
use crate::error::{invalid, Result};
use crate::finetune::data::TaggedSentence;
use crate::optim::adamw::bert_decays;
use crate::optim::{AdamW, AdamWConfig, LinearWarmupDecay};
use crate::tokenizer::Tokenizer;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::PathBuf;

/// How the tagger uses the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TagMode {
    /// Encoder and head trained together.
    FineTune,
    /// Encoder frozen; the head reads the concatenation of the last `layers` hidden states.
    FeatureBased {
        /// How many of the top layers' hidden states are concatenated (the paper's best: 4).
        layers: usize,
    },
}

/// Tagging settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaggingConfig {
    /// Pre-trained HF folder (config.json, model.safetensors, vocab.txt).
    pub model_dir: PathBuf,
    /// Fine-tune the encoder, or train a head on frozen features.
    pub mode: TagMode,
    /// Pieces per sentence, `[CLS]`/`[SEP]` included; words past it are dropped and not scored.
    pub max_seq_length: usize,
    /// Sentences per optimiser step.
    pub batch_size: usize,
    /// Passes over the training sentences.
    pub epochs: usize,
    /// Peak learning rate of BERT's schedule (warm-up over the first 10% of steps, linear
    /// decay to 0).
    pub learning_rate: f32,
    /// Seed of the head initialisation, sentence order and dropout.
    pub seed: u64,
}

/// The tag inventory of a training set, sorted.
pub fn tag_set(train: &[TaggedSentence]) -> Vec<String> {
    let mut tags: Vec<String> = train.iter().flat_map(|s| s.tags.iter().cloned()).collect();
    tags.sort();
    tags.dedup();
    tags
}

/// One sentence as wordpieces: `[CLS] pieces… [SEP]`, with each word's tag on its first piece
/// and −100 (ignored) elsewhere; words past `max_len` are cut (and not scored).
struct Encoded {
    ids: Vec<u32>,
    labels: Vec<i32>,
}

fn encode(tok: &Tokenizer, s: &TaggedSentence, tags: &[String], max_len: usize) -> Encoded {
    let v = tok.vocab();
    let mut ids = vec![v.cls_id()];
    let mut labels = vec![-100];
    for (w, t) in s.tokens.iter().zip(&s.tags) {
        let pieces = tok.tokenize_ids(w);
        if pieces.is_empty() || ids.len() + pieces.len() + 1 > max_len {
            continue;
        }
        let label = tags.iter().position(|x| x == t).map_or(-100, |i| i as i32);
        for (k, p) in pieces.iter().enumerate() {
            ids.push(*p);
            labels.push(if k == 0 { label } else { -100 });
        }
    }
    ids.push(v.sep_id());
    labels.push(-100);
    Encoded { ids, labels }
}

fn pad(batch: &[&Encoded], pad_id: u32) -> (Vec<u32>, Vec<u32>, Vec<i32>, usize) {
    let t = batch.iter().map(|e| e.ids.len()).max().unwrap_or(1);
    let b = batch.len();
    let (mut ids, mut mask, mut labels) =
        (vec![pad_id; b * t], vec![0u32; b * t], vec![-100i32; b * t]);
    for (i, e) in batch.iter().enumerate() {
        let n = e.ids.len();
        ids[i * t..i * t + n].copy_from_slice(&e.ids);
        mask[i * t..i * t + n].fill(1);
        labels[i * t..i * t + n].copy_from_slice(&e.labels);
    }
    (ids, mask, labels, t)
}

/// A trained tagger and its word-level dev accuracy.
pub struct Tagger {
    /// The tag inventory, sorted (class index order).
    pub tags: Vec<String>,
    /// Word-level accuracy on dev (each word scored at its first piece), in [0, 1].
    pub accuracy: f64,
}

/// Trains a tagger on `train` and scores it on `dev` (accuracy over words, i.e. first pieces).
pub fn train_tagger(
    cfg: &TaggingConfig,
    train: &[TaggedSentence],
    dev: &[TaggedSentence],
) -> Result<Tagger> {
    if train.is_empty() || dev.is_empty() || cfg.batch_size == 0 || cfg.epochs == 0 {
        return invalid(
            "train_tagger",
            format!(
                "need sentences, batch_size and epochs: {} train, {} dev, batch {}, epochs {}",
                train.len(),
                dev.len(),
                cfg.batch_size,
                cfg.epochs
            ),
        );
    }
    let (config, ckpt) = load_pretrained(&cfg.model_dir)?;
    // the folder's casing (tokenizer_config.json) and a vocabulary that matches config.json
    let tok = crate::bert::folder::load_tokenizer_for(&cfg.model_dir, &config)?;
    let tags = tag_set(train);
    let mut enc_store = ParamStore::new();
    let model = BertModel::new_without_pooler(&config, &mut enc_store, cfg.seed)?;
    ckpt.load_into_with(
        &mut enc_store,
        &LoadOptions {
            allow_missing: vec![],
            allow_unused: vec!["pooler.".into(), "cls.".into(), "classifier.".into()],
        },
    )?;
    let feat_layers = match cfg.mode {
        TagMode::FineTune => 1,
        TagMode::FeatureBased { layers } => {
            if layers == 0 || layers > config.num_hidden_layers {
                return invalid(
                    "train_tagger",
                    format!(
                        "feature layers {layers} must be in 1..={}",
                        config.num_hidden_layers
                    ),
                );
            }
            layers
        }
    };
    // The head lives in its own store; fine-tuning also trains the encoder's.
    let mut head_store = ParamStore::new();
    let head = Linear::new(
        &mut head_store,
        "tagger",
        tags.len(),
        feat_layers * config.hidden_size,
        0.02,
        cfg.seed,
    )?;
    let train_enc: Vec<Encoded> = train
        .iter()
        .map(|s| encode(&tok, s, &tags, cfg.max_seq_length))
        .collect();
    let dev_enc: Vec<Encoded> = dev
        .iter()
        .map(|s| encode(&tok, s, &tags, cfg.max_seq_length))
        .collect();
    let steps = (train_enc.len().div_ceil(cfg.batch_size) * cfg.epochs) as u64;
    let schedule = LinearWarmupDecay::new(cfg.learning_rate, steps / 10, steps)?;
    let mut head_opt = AdamW::new(AdamWConfig::bert(), &head_store, bert_decays)?;
    let mut enc_opt = AdamW::new(AdamWConfig::bert(), &enc_store, bert_decays)?;
    let fine_tune = cfg.mode == TagMode::FineTune;
    let pad_id = tok.vocab().pad_id();
    let features = |tape: &mut Tape,
                    store: &ParamStore,
                    ids: &[u32],
                    mask: &[u32],
                    b: usize,
                    t: usize,
                    seed: u64,
                    train: bool|
     -> Result<Var> {
        let input = BertInput::new(ids, b, t).with_attention_mask(mask);
        let opts = ForwardOptions {
            seed,
            // the feature-based mode reads the last layers' hidden states
            output_hidden_states: !fine_tune,
        };
        if fine_tune {
            tape.set_training(train);
            Ok(model.forward(tape, store, &input, &opts)?.last_hidden_state)
        } else {
            // frozen encoder, eval mode: constant features, the concatenated last layers
            let out = tape.no_grad(|tape| {
                let was = tape.set_training(false);
                let out = model.forward(tape, store, &input, &opts);
                tape.set_training(was);
                out
            })?;
            let hs = &out.hidden_states[out.hidden_states.len() - feat_layers..];
            let parts: Vec<&Var> = hs.iter().collect();
            let cat = tape.no_grad(|tape| tape.concat(&parts, 2))?;
            Ok(cat.detach())
        }
    };
    let mut tape = Tape::new();
    let mut order: Vec<usize> = (0..train_enc.len()).collect();
    let mut step = 0u64;
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            cfg.seed ^ (epoch as u64 + 7),
        ));
        for chunk in order.chunks(cfg.batch_size) {
            let batch: Vec<&Encoded> = chunk.iter().map(|&i| &train_enc[i]).collect();
            let (ids, mask, labels, t) = pad(&batch, pad_id);
            tape.reset();
            head_store.zero_grads();
            enc_store.zero_grads();
            let x = features(
                &mut tape,
                &enc_store,
                &ids,
                &mask,
                batch.len(),
                t,
                cfg.seed.wrapping_add(step),
                true,
            )?;
            tape.set_training(true);
            let logits = head.forward(&mut tape, &head_store, &x)?;
            let loss = tape.cross_entropy(&logits, &labels, -100)?;
            let grads = tape.backward(&loss)?;
            head_store.accumulate(&grads)?;
            let lr = schedule.lr(step);
            let loss_value = loss.value().data()[0] as f64;
            if fine_tune {
                enc_store.accumulate(&grads)?;
                let norm = enc_store.clip_grad_norm(1.0)?;
                crate::train::ensure_finite_step(
                    step + 1,
                    &[("loss", loss_value)],
                    norm,
                    &[&enc_store, &head_store],
                )?;
            }
            let norm = head_store.clip_grad_norm(1.0)?;
            crate::train::ensure_finite_step(
                step + 1,
                &[("loss", loss_value)],
                norm,
                &[&head_store],
            )?;
            if fine_tune {
                enc_opt.step(&mut enc_store, lr)?;
            }
            head_opt.step(&mut head_store, lr)?;
            step += 1;
        }
    }
    // word-level accuracy on dev
    let (mut correct, mut total) = (0usize, 0usize);
    tape.set_grad_enabled(false);
    for chunk in dev_enc.chunks(cfg.batch_size) {
        let batch: Vec<&Encoded> = chunk.iter().collect();
        let (ids, mask, labels, t) = pad(&batch, pad_id);
        tape.reset();
        let x = features(&mut tape, &enc_store, &ids, &mask, batch.len(), t, 0, false)?;
        let logits = head.forward(&mut tape, &head_store, &x)?;
        let k = tags.len();
        for (row, &l) in logits.value().data().chunks_exact(k).zip(&labels) {
            if l < 0 {
                continue;
            }
            let arg = crate::tensor::argmax(row);
            correct += usize::from(arg == l as usize);
            total += 1;
        }
    }
    Ok(Tagger {
        tags,
        accuracy: correct as f64 / total.max(1) as f64,
    })
}
