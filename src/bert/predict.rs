//! Predictions out of saved models: masked-token filling with the MLM head ([`FillMask`]) and
//! per-example labels and probabilities from a fine-tuned classifier ([`Predictor`]).
//!
//! Both load an HF folder (`config.json`, `model.safetensors`, `vocab.txt`), honour its
//! tokenizer settings ([`crate::bert::folder`]) and run in inference mode (no dropout, no tape).
//!
//! ```no_run
//! use cloze::bert::predict::{FillMask, Predictor};
//! let fm = FillMask::load("path/to/pretrained").unwrap();
//! for m in fm.fill("the capital of france is [MASK] .", None, 5).unwrap() {
//!     println!("{}: {:?}", m.position, m.candidates);
//! }
//! let clf = Predictor::load("path/to/finetuned").unwrap();
//! let p = clf.predict(&[("a great film", None)], false).unwrap();
//! println!("{} {:?}", p[0].label, p[0].probabilities);
//! ```

#![warn(missing_docs)]

use crate::autodiff::params::ParamStore;
use crate::autodiff::tape::Tape;
use crate::bert::checkpoint::{load_pretrained, Checkpoint, LoadOptions, CONFIG_FILE};
use crate::bert::folder::{load_tokenizer_for, FolderSettings};
use crate::bert::model::{BertInput, BertModel, ClassifierHead, ForwardOptions, MlmHead};
use crate::bert::BertConfig;
use crate::error::{invalid, Error, Result};
use crate::tokenizer::{EncodeOptions, Encoding, PaddedBatch, PairTruncation, Tokenizer};
use serde::Serialize;
use std::path::Path;

/// Softmax of one row of logits (in f64, returned as f32).
pub fn softmax(row: &[f32]) -> Vec<f32> {
    let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = row.iter().map(|&x| (x as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| (x / s) as f32).collect()
}

/// Encodes `texts` with truncation to `max_length` (when given; pairs cut by `pair_rule`) and
/// checks the result fits the model's positions.
fn encode_all(
    tok: &Tokenizer,
    config: &BertConfig,
    texts: &[(&str, Option<&str>)],
    max_length: Option<usize>,
    pair_rule: PairTruncation,
) -> Result<Vec<Encoding>> {
    let opts = match max_length {
        Some(n) => EncodeOptions::truncate(n).with_pair_truncation(pair_rule),
        None => EncodeOptions::default(),
    };
    texts
        .iter()
        .enumerate()
        .map(|(i, (a, b))| {
            let e = tok.encode_with(a, *b, &opts)?;
            if e.len() > config.max_position_embeddings {
                return invalid(
                    "predict",
                    format!(
                        "input {i} has {} tokens, more than max_position_embeddings {}; give a max length to truncate",
                        e.len(),
                        config.max_position_embeddings
                    ),
                );
            }
            Ok(e)
        })
        .collect()
}

/// One candidate token for a masked position.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    /// The vocabulary token (WordPiece, `##` continuation marks kept).
    pub token: String,
    /// Its id.
    pub id: u32,
    /// Its softmax probability over the vocabulary.
    pub score: f32,
}

/// The candidates for one `[MASK]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MaskPrediction {
    /// Position of the `[MASK]` in the encoded sequence (`[CLS]` is position 0).
    pub position: usize,
    /// The `top_k` most probable tokens, most probable first.
    pub candidates: Vec<Candidate>,
}

/// A model with its masked-LM head, ready to fill `[MASK]` tokens.
pub struct FillMask {
    /// The model's `config.json`.
    pub config: BertConfig,
    /// The folder's tokenizer.
    pub tokenizer: Tokenizer,
    /// The encoder.
    pub model: BertModel,
    /// The MLM head (decoder tied to the word embeddings).
    pub head: MlmHead,
    /// All weights.
    pub store: ParamStore,
    /// Truncation length from the folder (`model_max_length`), if any.
    pub max_length: Option<usize>,
    /// How a pair is cut to `max_length` when both texts must lose tokens (default: the
    /// Python tokenizer's rule).
    pub pair_truncation: PairTruncation,
}

impl FillMask {
    /// Loads `dir`; it must hold the MLM head (`cls.predictions.*`, as `cloze pretrain` and
    /// HF's `BertForPreTraining` / `BertForMaskedLM` save it). NSP and classifier heads are
    /// ignored.
    pub fn load(dir: impl AsRef<Path>) -> Result<FillMask> {
        let dir = dir.as_ref();
        let (config, ckpt) = load_pretrained(dir)?;
        if !ckpt.contains("cls.predictions.transform.dense.weight") {
            return Err(Error::Format {
                path: ckpt.path().display().to_string(),
                detail: "has no masked-LM head (cls.predictions.*): fill-mask needs a model saved with its pre-training head, such as a `cloze pretrain` output or an HF BertForMaskedLM / BertForPreTraining folder".into(),
            });
        }
        let tokenizer = load_tokenizer_for(dir, &config)?;
        if tokenizer.vocab().mask_id().is_none() {
            return invalid("FillMask::load", "vocab.txt has no [MASK] token");
        }
        let mut store = ParamStore::new();
        let model = if ckpt.contains("pooler.dense.weight") {
            BertModel::new(&config, &mut store, 0)?
        } else {
            BertModel::new_without_pooler(&config, &mut store, 0)?
        };
        let head = MlmHead::new(&model, &mut store, 0)?;
        ckpt.load_into_with(
            &mut store,
            &LoadOptions {
                allow_missing: vec![],
                allow_unused: vec!["cls.seq_relationship.".into(), "classifier.".into()],
            },
        )?;
        let settings = FolderSettings::read(dir)?;
        Ok(FillMask {
            config,
            tokenizer,
            model,
            head,
            store,
            max_length: settings.model_max_length,
            pair_truncation: PairTruncation::default(),
        })
    }

    /// The `top_k` most probable tokens for every `[MASK]` in `text` (or the pair), in order.
    /// Text without a `[MASK]`, or `top_k` 0, is an error.
    pub fn fill(
        &self,
        text: &str,
        pair: Option<&str>,
        top_k: usize,
    ) -> Result<Vec<MaskPrediction>> {
        if top_k == 0 {
            return invalid("fill_mask", "top_k must be at least 1");
        }
        let mask_id = self.tokenizer.vocab().mask_id().expect("checked at load");
        let enc = encode_all(
            &self.tokenizer,
            &self.config,
            &[(text, pair)],
            self.max_length,
            self.pair_truncation,
        )?
        .remove(0);
        let positions: Vec<u32> = enc
            .input_ids
            .iter()
            .enumerate()
            .filter(|(_, &id)| id == mask_id)
            .map(|(p, _)| p as u32)
            .collect();
        if positions.is_empty() {
            return invalid(
                "fill_mask",
                format!(
                    "no [MASK] token in {text:?}{}",
                    if pair.is_some() { " or its pair" } else { "" }
                ),
            );
        }
        let t = enc.len();
        let input = BertInput::new(&enc.input_ids, 1, t).with_token_types(&enc.token_type_ids);
        let mut tape = Tape::new();
        tape.set_training(false);
        let logits = tape.no_grad(|tape| {
            let out = self
                .model
                .forward(tape, &self.store, &input, &ForwardOptions::default())?;
            self.head
                .forward(tape, &self.store, &out.last_hidden_state, &positions)
        })?;
        let v = self.config.vocab_size;
        let k = top_k.min(v);
        Ok(logits
            .value()
            .data()
            .chunks_exact(v)
            .zip(&positions)
            .map(|(row, &p)| {
                let probs = softmax(row);
                let mut idx: Vec<usize> = (0..v).collect();
                idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
                MaskPrediction {
                    position: p as usize,
                    candidates: idx[..k]
                        .iter()
                        .map(|&i| Candidate {
                            token: self.tokenizer.vocab().token(i as u32).unwrap_or("").into(),
                            id: i as u32,
                            score: probs[i],
                        })
                        .collect(),
                }
            })
            .collect())
    }
}

/// The label names of a classifier folder: `config.json`'s `id2label` when it has one entry
/// per class, else `LABEL_0`, `LABEL_1`, … (HF's defaults).
pub fn label_names(dir: &Path, num_labels: usize) -> Result<Vec<String>> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Format {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    let mut names: Vec<String> = (0..num_labels).map(|i| format!("LABEL_{i}")).collect();
    if let Some(map) = v.get("id2label").and_then(|m| m.as_object()) {
        for (k, name) in map {
            let i: usize = k.parse().map_err(|_| Error::Format {
                path: path.display().to_string(),
                detail: format!("id2label key {k:?} is not a class index"),
            })?;
            if i >= num_labels {
                return Err(Error::Format {
                    path: path.display().to_string(),
                    detail: format!(
                        "id2label has class {i} but the classifier has {num_labels} outputs"
                    ),
                });
            }
            names[i] = name
                .as_str()
                .map_or_else(|| name.to_string(), str::to_string);
        }
    }
    Ok(names)
}

/// One example's prediction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// The most probable label's name (for regression, the empty string).
    pub label: String,
    /// Its class index.
    pub label_id: usize,
    /// Softmax probabilities, one per class (empty for regression).
    pub probabilities: Vec<f32>,
    /// The raw head outputs (for regression: `[score]`).
    pub logits: Vec<f32>,
    /// The last hidden state at `[CLS]`, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cls: Option<Vec<f32>>,
    /// The pooler output (tanh dense on `[CLS]`, the classifier's input), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooled: Option<Vec<f32>>,
}

/// A fine-tuned sequence classifier (`bert.*` + `classifier.*`) ready to predict.
pub struct Predictor {
    /// The model's `config.json`.
    pub config: BertConfig,
    /// The folder's tokenizer.
    pub tokenizer: Tokenizer,
    /// The encoder with its pooler.
    pub model: BertModel,
    /// The classification (or regression, one output) head.
    pub head: ClassifierHead,
    /// All weights.
    pub store: ParamStore,
    /// Class names, index order.
    pub labels: Vec<String>,
    /// Whether the head is a regression head (`problem_type: "regression"` or one output).
    pub regression: bool,
    /// Truncation length (the folder's `model_max_length` unless set otherwise).
    pub max_length: Option<usize>,
    /// How a pair is cut to `max_length` when both texts must lose tokens (default: the
    /// Python tokenizer's rule).
    pub pair_truncation: PairTruncation,
}

impl Predictor {
    /// Loads a folder saved by `cloze finetune` or HF's `BertForSequenceClassification`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Predictor> {
        let dir = dir.as_ref();
        let (config, ckpt) = load_pretrained(dir)?;
        let num_labels = classifier_outputs(&ckpt)?;
        let tokenizer = load_tokenizer_for(dir, &config)?;
        let mut store = ParamStore::new();
        let model = BertModel::new(&config, &mut store, 0)?;
        let head = ClassifierHead::new(&config, &mut store, num_labels, 0)?;
        ckpt.load_into_with(
            &mut store,
            &LoadOptions {
                allow_missing: vec![],
                allow_unused: vec!["cls.".into()],
            },
        )?;
        let labels = label_names(dir, num_labels)?;
        let settings = FolderSettings::read(dir)?;
        Ok(Predictor {
            config,
            tokenizer,
            model,
            head,
            store,
            labels,
            regression: num_labels == 1,
            max_length: settings.model_max_length,
            pair_truncation: PairTruncation::default(),
        })
    }

    /// Predicts a batch of texts or pairs (padded to the longest; split large inputs into
    /// batches yourself). `with_vectors` adds the `[CLS]` hidden state and the pooler output.
    pub fn predict(
        &self,
        texts: &[(&str, Option<&str>)],
        with_vectors: bool,
    ) -> Result<Vec<Prediction>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encs = encode_all(
            &self.tokenizer,
            &self.config,
            texts,
            self.max_length,
            self.pair_truncation,
        )?;
        let refs: Vec<&Encoding> = encs.iter().collect();
        let padded = PaddedBatch::new(&refs, self.tokenizer.vocab().pad_id());
        let mut tape = Tape::new();
        tape.set_training(false);
        let (hidden, pooled, logits) = tape.no_grad(|tape| {
            let input = BertInput::from_padded(&padded);
            let out = self
                .model
                .forward(tape, &self.store, &input, &ForwardOptions::default())?;
            let pooled = out.pooled.clone().expect("built with a pooler");
            let logits = self.head.forward(tape, &self.store, &pooled, 0)?;
            Ok::<_, Error>((out.last_hidden_state, pooled, logits))
        })?;
        let k = self.head.num_labels;
        let h = self.config.hidden_size;
        let t = padded.seq;
        Ok(logits
            .value()
            .data()
            .chunks_exact(k)
            .enumerate()
            .map(|(i, row)| {
                let (label_id, probabilities, label) = if self.regression {
                    (0, Vec::new(), String::new())
                } else {
                    let p = softmax(row);
                    let best = crate::tensor::argmax(&p);
                    (best, p, self.labels[best].clone())
                };
                Prediction {
                    label,
                    label_id,
                    probabilities,
                    logits: row.to_vec(),
                    cls: with_vectors
                        .then(|| hidden.value().data()[i * t * h..(i * t + 1) * h].to_vec()),
                    pooled: with_vectors
                        .then(|| pooled.value().data()[i * h..(i + 1) * h].to_vec()),
                }
            })
            .collect())
    }
}

/// The number of classifier outputs in a checkpoint (`classifier.weight` rows).
fn classifier_outputs(ckpt: &Checkpoint) -> Result<usize> {
    let w = ckpt.get("classifier.weight").ok_or_else(|| Error::Format {
        path: ckpt.path().display().to_string(),
        detail: "has no classifier (classifier.weight): fine-tune the model first (cloze finetune)"
            .into(),
    })?;
    if w.shape().len() != 2 || w.shape()[0] == 0 {
        return Err(Error::Format {
            path: ckpt.path().display().to_string(),
            detail: format!(
                "classifier.weight has shape {:?}, expected [num_labels, hidden]",
                w.shape()
            ),
        });
    }
    Ok(w.shape()[0])
}
