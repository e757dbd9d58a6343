//! Sentence embeddings as sentence-transformers computes them: the mean of the last hidden
//! states over the attention mask, then L2 normalisation.

use crate::autodiff::params::ParamStore;
use crate::autodiff::tape::Tape;
use crate::bert::checkpoint::{load_pretrained, LoadOptions};
use crate::bert::model::{BertInput, BertModel, ForwardOptions};
use crate::bert::BertConfig;
use crate::error::{invalid, Error, Result};
use crate::tensor::Tensor;
use crate::tokenizer::{EncodeOptions, Encoding, PaddedBatch, Tokenizer};
use std::path::Path;

/// Mean over the positions with `mask == 1` of `hidden [B, T, H]`, then L2-normalised; one
/// vector per sequence (accumulated in f64). A sequence with no unmasked position is an error.
pub fn mean_pool_normalized(hidden: &Tensor, mask: &[u32]) -> Result<Vec<Vec<f32>>> {
    let s = hidden.shape();
    if s.len() != 3 || mask.len() != s[0] * s[1] {
        return invalid(
            "mean_pool_normalized",
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
        let mut acc = vec![0.0f64; h];
        let mut n = 0usize;
        for p in 0..t {
            if mask[i * t + p] == 1 {
                n += 1;
                for (a, &x) in acc.iter_mut().zip(&d[(i * t + p) * h..(i * t + p + 1) * h]) {
                    *a += x as f64;
                }
            }
        }
        if n == 0 {
            return invalid(
                "mean_pool_normalized",
                format!("sequence {i} has no unmasked position"),
            );
        }
        let norm = acc
            .iter()
            .map(|v| (v / n as f64).powi(2))
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        out.push(acc.iter().map(|v| (v / n as f64 / norm) as f32).collect());
    }
    Ok(out)
}

/// One input's result.
#[derive(Clone, Debug)]
pub struct Embedded {
    /// Mean-pooled, L2-normalised `[H]`.
    pub embedding: Vec<f32>,
    /// The last hidden states of the real tokens, `[T, H]`.
    pub last_hidden_state: Tensor,
}

/// A model and tokenizer loaded from an HF folder (config.json, model.safetensors, vocab.txt),
/// ready to embed text.
pub struct Embedder {
    pub config: BertConfig,
    pub tokenizer: Tokenizer,
    pub model: BertModel,
    pub store: ParamStore,
}

impl Embedder {
    /// Loads `dir`. Pre-training or task heads in the file are ignored; the pooler is optional.
    pub fn load(dir: impl AsRef<Path>) -> Result<Embedder> {
        let dir = dir.as_ref();
        let (config, ckpt) = load_pretrained(dir)?;
        let tokenizer = Tokenizer::from_vocab_file(dir.join("vocab.txt"))?;
        if tokenizer.vocab().len() != config.vocab_size {
            return invalid(
                "Embedder::load",
                format!(
                    "vocab.txt has {} tokens but config.json says vocab_size {}",
                    tokenizer.vocab().len(),
                    config.vocab_size
                ),
            );
        }
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
        let limit = max_length.unwrap_or(self.config.max_position_embeddings);
        let opts = if max_length.is_some() {
            EncodeOptions::truncate(limit)
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
    /// is truncated to `max_length` when given; otherwise a text longer than the model's
    /// `max_position_embeddings` is an error.
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
        let pooled = mean_pool_normalized(hidden, &padded.attention_mask)?;
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
