//! The embeddings: word + position + segment, then LayerNorm and dropout.

use super::input::BertInput;
use super::layer::{dropout, LayerNorm};
use crate::autodiff::params::{ParamId, ParamStore};
use crate::autodiff::tape::{Tape, Var};
use crate::bert::config::BertConfig;
use crate::bert::init::{dropout_seed, trunc_normal, DropoutSite};
use crate::error::Result;

/// Word + position + segment embeddings, then LayerNorm and dropout.
#[derive(Clone, Debug)]
pub struct BertEmbeddings {
    /// Word-embedding table `[V, H]` (`embeddings.word_embeddings.weight`), also the MLM decoder.
    pub word: ParamId,
    /// Position-embedding table `[P, H]`, P = `max_position_embeddings`.
    pub position: ParamId,
    /// Segment-embedding table `[type_vocab_size, H]`.
    pub token_type: ParamId,
    /// LayerNorm over the sum of the three embeddings.
    pub layer_norm: LayerNorm,
}

impl BertEmbeddings {
    pub(crate) fn new(config: &BertConfig, store: &mut ParamStore, seed: u64) -> Result<Self> {
        let (h, std) = (config.hidden_size, config.initializer_range);
        let mut table = |name: &str, rows: usize| -> Result<ParamId> {
            let name = format!("embeddings.{name}.weight");
            let t = trunc_normal(&[rows, h], std, seed, &name)?;
            store.add(name, t)
        };
        let word = table("word_embeddings", config.vocab_size)?;
        let position = table("position_embeddings", config.max_position_embeddings)?;
        let token_type = table("token_type_embeddings", config.type_vocab_size)?;
        let layer_norm = LayerNorm::new(store, "embeddings.LayerNorm", h, config.layer_norm_eps)?;
        Ok(BertEmbeddings {
            word,
            position,
            token_type,
            layer_norm,
        })
    }

    /// The embeddings output `[B, T, H]`: LayerNorm(word + position + segment), then dropout.
    /// Checks `input` against `config` first.
    pub fn forward(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        config: &BertConfig,
        input: &BertInput<'_>,
        seed: u64,
    ) -> Result<Var> {
        input.validate(config)?;
        let (b, t) = (input.batch, input.seq);
        let word = tape.param(store, self.word);
        let x = tape.embedding(&word, input.input_ids, &[b, t])?;
        let pos_table = tape.param(store, self.position);
        let pos = tape.slice(&pos_table, 0, 0, t)?; // [T, H], broadcast over the batch
        let x = tape.add(&x, &pos)?;
        let tt_table = tape.param(store, self.token_type);
        let zeros;
        let tt_ids = match input.token_type_ids {
            Some(tt) => tt,
            None => {
                zeros = vec![0u32; b * t];
                &zeros
            }
        };
        let seg = tape.embedding(&tt_table, tt_ids, &[b, t])?;
        let x = self.layer_norm.forward_residual(tape, store, &x, &seg)?;
        dropout(
            tape,
            x,
            config.hidden_dropout_prob,
            dropout_seed(seed, 0, DropoutSite::Embeddings),
        )
    }
}
