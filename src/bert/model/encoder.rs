//! HF `BertModel`: embeddings, the encoder stack and the pooler.

use super::embeddings::BertEmbeddings;
use super::input::BertInput;
use super::layer::{BertLayer, LayerNorm, Linear};
use crate::autodiff::params::ParamStore;
use crate::autodiff::tape::{Tape, Var};
use crate::bert::config::{BertConfig, HiddenAct};
use crate::error::{invalid, Result};

/// Options of one forward pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct ForwardOptions {
    /// The step seed every dropout mask is derived from (with the layer and site).
    pub seed: u64,
    /// Also return every layer's output in [`BertOutput::hidden_states`].
    pub output_hidden_states: bool,
}

/// What [`BertModel::forward`] returns.
#[derive(Clone, Debug)]
pub struct BertOutput {
    /// The embeddings output (after LayerNorm and dropout) `[B, T, H]`.
    pub embedding_output: Var,
    /// The last layer's output `[B, T, H]`.
    pub last_hidden_state: Var,
    /// `tanh(W_p·h_[CLS] + b_p)` `[B, H]`, if the model has a pooler.
    pub pooled: Option<Var>,
    /// With `output_hidden_states`: the embeddings output, then each layer's output (L + 1
    /// entries, as HF's `hidden_states`); empty otherwise.
    pub hidden_states: Vec<Var>,
}

/// HF `BertModel`: embeddings, encoder and (optionally) the pooler.
#[derive(Clone, Debug)]
pub struct BertModel {
    config: BertConfig,
    pub(crate) act: HiddenAct,
    /// The embedding layer (`embeddings.*`).
    pub embeddings: BertEmbeddings,
    /// The Transformer layers, bottom first (`encoder.layer.{i}.*`).
    pub layers: Vec<BertLayer>,
    /// Pre-LN only: `encoder.LayerNorm`, after the last layer.
    pub final_layer_norm: Option<LayerNorm>,
    /// The pooler `[H, H]` (`pooler.dense`, tanh on `[CLS]`); `None` when built without it.
    pub pooler: Option<Linear>,
}

impl BertModel {
    /// Builds the model with a pooler, adding its parameters to `store` initialised as BERT
    /// does: truncated normal σ = `initializer_range` for matrices and tables, LayerNorm 1/0,
    /// biases 0. The same `seed` gives the same values.
    pub fn new(config: &BertConfig, store: &mut ParamStore, seed: u64) -> Result<Self> {
        Self::build(config, store, seed, true)
    }

    /// Like [`Self::new`] without the pooler (as HF `BertForMaskedLM`).
    pub fn new_without_pooler(
        config: &BertConfig,
        store: &mut ParamStore,
        seed: u64,
    ) -> Result<Self> {
        Self::build(config, store, seed, false)
    }

    fn build(config: &BertConfig, store: &mut ParamStore, seed: u64, pooler: bool) -> Result<Self> {
        config.validate()?;
        let act = config.activation()?;
        let embeddings = BertEmbeddings::new(config, store, seed)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| BertLayer::new(config, store, i, seed))
            .collect::<Result<Vec<_>>>()?;
        let h = config.hidden_size;
        let final_layer_norm = if config.pre_layer_norm {
            Some(LayerNorm::new(
                store,
                "encoder.LayerNorm",
                h,
                config.layer_norm_eps,
            )?)
        } else {
            None
        };
        let pooler = if pooler {
            Some(Linear::new(
                store,
                "pooler.dense",
                h,
                h,
                config.initializer_range,
                seed,
            )?)
        } else {
            None
        };
        Ok(BertModel {
            config: config.clone(),
            act,
            embeddings,
            layers,
            final_layer_norm,
            pooler,
        })
    }

    /// The config the model was built from.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Whether attention is causal (`config.is_decoder`).
    pub fn is_causal(&self) -> bool {
        self.config.is_decoder
    }

    /// Switches causal (left-to-right) attention on or off; recorded in the config, so a
    /// saved `config.json` carries it as HF's `is_decoder`.
    pub fn set_causal(&mut self, causal: bool) {
        self.config.is_decoder = causal;
    }

    /// The embeddings output `[B, T, H]`: LayerNorm(word + position + segment), then dropout
    /// ([`BertEmbeddings::forward`]).
    pub fn embed(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        input: &BertInput<'_>,
        seed: u64,
    ) -> Result<Var> {
        self.embeddings
            .forward(tape, store, &self.config, input, seed)
    }

    /// Runs every encoder layer on an embeddings output (e.g. from [`Self::embed`], or a
    /// leaf standing in for it). Pushes each layer's output to `hidden_states` if given.
    pub fn encode(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        embedding_output: &Var,
        input: &BertInput<'_>,
        seed: u64,
        mut hidden_states: Option<&mut Vec<Var>>,
    ) -> Result<Var> {
        input.validate(&self.config)?;
        let want = [input.batch, input.seq, self.config.hidden_size];
        if embedding_output.shape() != want {
            return crate::error::shape_err(
                "BertModel::encode",
                format!(
                    "embedding output {:?} does not match the input's {want:?}",
                    embedding_output.shape()
                ),
            );
        }
        let mask = input.additive_mask();
        let mut x = embedding_output.clone();
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(tape, store, &self.config, &x, mask.as_ref(), seed)?;
            // pre-LN: the last layer's output is reported after the final LayerNorm
            if i == last {
                if let Some(ln) = &self.final_layer_norm {
                    x = ln.forward(tape, store, &x)?;
                }
            }
            if let Some(hs) = hidden_states.as_deref_mut() {
                hs.push(x.clone());
            }
        }
        Ok(x)
    }

    /// The pooler on `[B, T, H]` hidden states: `tanh(h[:, 0]·W_pᵀ + b_p)` `[B, H]`.
    pub fn pool(&self, tape: &mut Tape, store: &ParamStore, hidden: &Var) -> Result<Var> {
        let (b, h) = (hidden.shape()[0], hidden.shape()[2]);
        let cls = tape.slice(hidden, 1, 0, 1)?;
        let cls = tape.reshape(&cls, &[b, h])?;
        self.pooler_on(tape, store, &cls)
    }

    /// `tanh(x·W_pᵀ + b_p)` on the picked rows `x` `[B, H]`.
    fn pooler_on(&self, tape: &mut Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        let Some(pooler) = &self.pooler else {
            return invalid("BertModel::pool", "this model was built without a pooler");
        };
        let y = pooler.forward(tape, store, x)?;
        tape.tanh(&y)
    }

    /// The row each sequence is pooled from: position 0 (`[CLS]`) for a bidirectional
    /// encoder; for a causal one the last real token, the only position that has seen the
    /// whole input (as GPT-style classifiers do). Flat indices `b·T + t`.
    pub fn pooled_rows(&self, input: &BertInput<'_>) -> Vec<u32> {
        (0..input.batch)
            .map(|b| {
                let t = if self.config.is_decoder {
                    match input.attention_mask {
                        Some(m) => m[b * input.seq..(b + 1) * input.seq]
                            .iter()
                            .rposition(|&x| x != 0)
                            .unwrap_or(0),
                        None => input.seq - 1,
                    }
                } else {
                    0
                };
                (b * input.seq + t) as u32
            })
            .collect()
    }

    /// The pooler on the rows [`Self::pooled_rows`] picks: `[CLS]`, or the last real token
    /// of a causal encoder.
    pub fn pool_input(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        hidden: &Var,
        input: &BertInput<'_>,
    ) -> Result<Var> {
        if !self.config.is_decoder {
            return self.pool(tape, store, hidden);
        }
        let s = hidden.shape();
        let flat = tape.reshape(hidden, &[s[0] * s[1], s[2]])?;
        let rows = self.pooled_rows(input);
        let x = tape.embedding(&flat, &rows, &[rows.len()])?;
        self.pooler_on(tape, store, &x)
    }

    /// The whole forward pass.
    pub fn forward(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        input: &BertInput<'_>,
        opts: &ForwardOptions,
    ) -> Result<BertOutput> {
        let emb = self.embed(tape, store, input, opts.seed)?;
        let mut hidden_states = Vec::new();
        if opts.output_hidden_states {
            hidden_states.push(emb.clone());
        }
        let last = self.encode(
            tape,
            store,
            &emb,
            input,
            opts.seed,
            opts.output_hidden_states.then_some(&mut hidden_states),
        )?;
        let pooled = match self.pooler {
            Some(_) => Some(self.pool_input(tape, store, &last, input)?),
            None => None,
        };
        Ok(BertOutput {
            embedding_output: emb,
            last_hidden_state: last,
            pooled,
            hidden_states,
        })
    }
}
