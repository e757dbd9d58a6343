//! Sentence embeddings as sentence-transformers computes them: the last hidden states pooled
//! over the attention mask (mean, `[CLS]` or max, as the folder's `1_Pooling/config.json`
//! says; mean by default), then L2 normalisation when `modules.json` lists a `Normalize`
//! module (or when there is no `modules.json`), with inputs truncated to the folder's
//! `max_seq_length`.

use crate::autodiff::params::ParamStore;
use crate::autodiff::tape::Tape;
use crate::bert::checkpoint::{load_pretrained, LoadOptions};
use crate::bert::folder::{load_tokenizer_for, FolderSettings, Pooling};
use crate::bert::model::{BertInput, BertModel, ForwardOptions};
use crate::bert::BertConfig;
use crate::error::{invalid, Error, Result};
use crate::tensor::Tensor;
use crate::tokenizer::{EncodeOptions, Encoding, PaddedBatch, PairTruncation, Tokenizer};
use std::path::Path;

/// Mean over the positions with `mask == 1` of `hidden [B, T, H]`, then L2-normalised; one
/// vector per sequence (accumulated in f64). A sequence with no unmasked position is an error.
pub fn mean_pool_normalized(hidden: &Tensor, mask: &[u32]) -> Result<Vec<Vec<f32>>> {
    pool(hidden, mask, Pooling::Mean, true)
}

/// Pools `hidden [B, T, H]` over `mask [B, T]` with `mode`, then L2-normalises each vector
/// when `normalize` (accumulated in f64). A sequence with no unmasked position is an error.
pub fn pool(
    hidden: &Tensor,
    mask: &[u32],
    mode: Pooling,
    normalize: bool,
) -> Result<Vec<Vec<f32>>> {
    let s = hidden.shape();
    if s.len() != 3 || mask.len() != s[0] * s[1] {
        return invalid(
            "pool",
            format!(
                "hidden {:?} and a mask of {} entries do not fit [B, T, H] / [B, T]",
                s,
                mask.len()
            ),
        );
    }
    let (b, t, h) = (s[0], s[1], s[2]);
    let d = hidden.data();
    let mut out = Vec::with_capacity(b);
    for i in 0..b {
        let rows: Vec<&[f32]> = (0..t)
            .filter(|&p| mask[i * t + p] == 1)
            .map(|p| &d[(i * t + p) * h..(i * t + p + 1) * h])
            .collect();
        if rows.is_empty() {
            return invalid("pool", format!("sequence {i} has no unmasked position"));
        }
        let v: Vec<f64> = match mode {
            Pooling::Mean => {
                let mut acc = vec![0.0f64; h];
                for r in &rows {
                    for (a, &x) in acc.iter_mut().zip(*r) {
                        *a += x as f64;
                    }
                }
                acc.iter().map(|a| a / rows.len() as f64).collect()
            }
            Pooling::Cls => d[i * t * h..(i * t + 1) * h]
                .iter()
                .map(|&x| x as f64)
                .collect(),
            Pooling::Max => (0..h)
                .map(|j| rows.iter().map(|r| r[j]).fold(f32::NEG_INFINITY, f32::max) as f64)
                .collect(),
        };
        let norm = if normalize {
            v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12)
        } else {
            1.0
        };
        out.push(v.iter().map(|x| (x / norm) as f32).collect());
    }
    Ok(out)
}

/// One input's result.
#[derive(Clone, Debug)]
pub struct Embedded {
    /// The pooled (and, if the folder says so, L2-normalised) `[H]` vector.
    pub embedding: Vec<f32>,
    /// The last hidden states of the real tokens, `[T, H]`.
    pub last_hidden_state: Tensor,
}

/// A model and tokenizer loaded from an HF folder (config.json, model.safetensors, vocab.txt),
/// ready to embed text.
pub struct Embedder {
    /// The model's `config.json`.
    pub config: BertConfig,
    /// The folder's tokenizer (casing from `tokenizer_config.json`).
    pub tokenizer: Tokenizer,
    /// The encoder.
    pub model: BertModel,
    /// The encoder's weights.
    pub store: ParamStore,
    /// How token vectors are pooled (the folder's pooling module; mean without one).
    pub pooling: Pooling,
    /// Whether pooled vectors are L2-normalised.
    pub normalize: bool,
    /// The length inputs are truncated to when the caller gives none (the folder's
    /// `max_seq_length`, else `model_max_length`).
    pub default_max_length: Option<usize>,
    /// How a pair is cut when both texts must lose tokens (default: the Python tokenizer's
    /// rule).
    pub pair_truncation: PairTruncation,
}

impl Embedder {
    /// Loads `dir`, honouring its settings files (see [`crate::bert::folder`]). Pre-training or
    /// task heads in the file are ignored; the pooler is optional.
    pub fn load(dir: impl AsRef<Path>) -> Result<Embedder> {
        let dir = dir.as_ref();
        let (config, ckpt) = load_pretrained(dir)?;
        let settings = FolderSettings::read(dir)?;
        let tokenizer = load_tokenizer_for(dir, &config)?;
        let mut store = ParamStore::new();
        let with_pooler = ckpt.contains("pooler.dense.weight");
        let model = if with_pooler {
            BertModel::new(&config, &mut store, 0)?
        } else {
            BertModel::new_without_pooler(&config, &mut store, 0)?
        };
        let opts = LoadOptions {
            allow_missing: vec![],
            allow_unused: vec!["cls.".into(), "classifier.".into()],
        };
        ckpt.load_into_with(&mut store, &opts)?;
        Ok(Embedder {
            config,
            tokenizer,
            model,
            store,
            pooling: settings.pooling.unwrap_or_default(),
            normalize: settings.normalize.unwrap_or(true),
            default_max_length: settings.max_length(),
            pair_truncation: PairTruncation::default(),
        })
    }

    /// Encodes one text (or pair) as [`Self::embed_batch`] does: truncated to `max_length`
    /// when given, otherwise an error when longer than `max_position_embeddings`. Lets a
    /// caller check inputs in its own order before batching them.
    pub fn encode_checked(
        &self,
        a: &str,
        b: Option<&str>,
        max_length: Option<usize>,
    ) -> Result<Encoding> {
        let max_length = max_length.or(self.default_max_length);
        let limit = max_length.unwrap_or(self.config.max_position_embeddings);
        let opts = if max_length.is_some() {
            EncodeOptions::truncate(limit).with_pair_truncation(self.pair_truncation)
        } else {
            EncodeOptions::default()
        };
        let e = self.tokenizer.encode_with(a, b, &opts)?;
        if e.len() > self.config.max_position_embeddings {
            return invalid(
                "embed",
                format!(
                    "{} tokens, more than max_position_embeddings {}; pass a max length to truncate",
                    e.len(),
                    self.config.max_position_embeddings
                ),
            );
        }
        Ok(e)
    }

    /// Embeds texts (or text pairs) as one batch padded to its longest member. Each encoding
    /// is truncated to `max_length` when given, else to [`Embedder::default_max_length`];
    /// with neither, a text longer than the model's `max_position_embeddings` is an error.
    pub fn embed_batch(
        &self,
        texts: &[(&str, Option<&str>)],
        max_length: Option<usize>,
    ) -> Result<Vec<Embedded>> {
        if texts.is_empty() {
            return invalid("embed", "empty batch");
        }
        let mut encs = Vec::with_capacity(texts.len());
        for (i, (a, b)) in texts.iter().enumerate() {
            let e = self
                .encode_checked(a, *b, max_length)
                .map_err(|e| Error::Invalid {
                    op: "embed",
                    detail: format!("input {i} of the batch: {e}"),
                })?;
            encs.push(e);
        }
        let refs: Vec<&Encoding> = encs.iter().collect();
        let padded = PaddedBatch::new(&refs, self.tokenizer.vocab().pad_id());
        let t = padded.seq;
        let mut tape = Tape::new();
        tape.set_training(false);
        let out = tape.no_grad(|tape| {
            let input = BertInput::from_padded(&padded);
            self.model
                .forward(tape, &self.store, &input, &ForwardOptions::default())
        })?;
        let hidden = out.last_hidden_state.value();
        let pooled = pool(hidden, &padded.attention_mask, self.pooling, self.normalize)?;
        let h = self.config.hidden_size;
        Ok(encs
            .iter()
            .zip(pooled)
            .enumerate()
            .map(|(i, (e, embedding))| Embedded {
                embedding,
                last_hidden_state: Tensor::from_vec(
                    hidden.data()[i * t * h..(i * t + e.len()) * h].to_vec(),
                    &[e.len(), h],
                )
                .expect("sizes match"),
            })
            .collect())
    }
}
