//! The model's input: one batch of token sequences and its attention mask.

use crate::bert::config::BertConfig;
use crate::error::{invalid, Result};
use crate::tensor::Tensor;

/// Added to the attention scores of padded keys (TF BERT's value).
pub const MASK_ADDER: f32 = -10000.0;

/// One batch of token sequences, `[batch, seq]` row-major.
#[derive(Clone, Copy, Debug)]
pub struct BertInput<'a> {
    /// Token ids, `batch · seq` of them, each below the vocabulary size.
    pub input_ids: &'a [u32],
    /// Segment ids; all 0 when `None`.
    pub token_type_ids: Option<&'a [u32]>,
    /// 1 for real tokens, 0 for padding; all 1 when `None`.
    pub attention_mask: Option<&'a [u32]>,
    /// Sequences in the batch (B).
    pub batch: usize,
    /// Tokens per sequence (T), padding included; at most `max_position_embeddings`.
    pub seq: usize,
}

impl<'a> BertInput<'a> {
    /// Token ids only (segment 0, no padding).
    pub fn new(input_ids: &'a [u32], batch: usize, seq: usize) -> Self {
        BertInput {
            input_ids,
            token_type_ids: None,
            attention_mask: None,
            batch,
            seq,
        }
    }

    /// The input of a tokenizer batch (ids, token types and attention mask).
    pub fn from_padded(b: &'a crate::tokenizer::PaddedBatch) -> Self {
        BertInput::new(&b.input_ids, b.batch, b.seq)
            .with_token_types(&b.token_type_ids)
            .with_attention_mask(&b.attention_mask)
    }

    /// The same input with segment ids (`batch · seq`, each below `type_vocab_size`).
    pub fn with_token_types(mut self, token_type_ids: &'a [u32]) -> Self {
        self.token_type_ids = Some(token_type_ids);
        self
    }

    /// The same input with an attention mask (`batch · seq`, 1 = real token, 0 = padding).
    pub fn with_attention_mask(mut self, attention_mask: &'a [u32]) -> Self {
        self.attention_mask = Some(attention_mask);
        self
    }

    /// Checks the input against a config; the error names the bad value and where it is.
    pub fn validate(&self, config: &BertConfig) -> Result<()> {
        let op = "BertModel::forward";
        let (b, t) = (self.batch, self.seq);
        if b == 0 || t == 0 {
            return invalid(op, format!("empty input: batch {b}, seq {t}"));
        }
        if t > config.max_position_embeddings {
            return invalid(
                op,
                format!(
                    "sequence length {t} exceeds max_position_embeddings {}",
                    config.max_position_embeddings
                ),
            );
        }
        let n = b * t;
        let check_len = |what: &str, len: usize| {
            if len != n {
                invalid(
                    op,
                    format!("{what} has {len} entries, expected batch {b} × seq {t} = {n}"),
                )
            } else {
                Ok(())
            }
        };
        // The first entry at or above `limit`, named with its [row, column] position.
        let check_below = |what: &str, label: &str, values: &[u32], limit: usize, bound: &str| {
            check_len(what, values.len())?;
            match values.iter().position(|&v| v as usize >= limit) {
                Some(i) => invalid(
                    op,
                    format!(
                        "{label} {} at [{}, {}] is not below {bound}",
                        values[i],
                        i / t,
                        i % t
                    ),
                ),
                None => Ok(()),
            }
        };
        check_below(
            "input_ids",
            "token id",
            self.input_ids,
            config.vocab_size,
            &format!("vocab_size {}", config.vocab_size),
        )?;
        if let Some(tt) = self.token_type_ids {
            check_below(
                "token_type_ids",
                "token_type_id",
                tt,
                config.type_vocab_size,
                &format!("type_vocab_size {}", config.type_vocab_size),
            )?;
        }
        if let Some(m) = self.attention_mask {
            check_below(
                "attention_mask",
                "attention_mask value",
                m,
                2,
                "2 (it must be 0 or 1)",
            )?;
        }
        Ok(())
    }

    /// The additive key mask `[batch, seq]` (0 or [`MASK_ADDER`]), if there is a mask.
    pub fn additive_mask(&self) -> Option<Tensor> {
        let m = self.attention_mask?;
        Some(Tensor::from_fn(&[self.batch, self.seq], |i| {
            if m[i] == 1 {
                0.0
            } else {
                MASK_ADDER
            }
        }))
    }
}
