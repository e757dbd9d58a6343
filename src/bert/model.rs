//! The BERT model on the tape: embeddings, post-LN encoder, pooler and the task heads.
//!
//! Parameters live in a [`ParamStore`] under HF `BertModel` names (no `bert.` prefix; the
//! checkpoint writer adds it for task models): `embeddings.word_embeddings.weight`,
//! `encoder.layer.{i}.attention.self.query.weight` (`[out, in]`), …, `pooler.dense.weight`,
//! `cls.predictions.*`, `cls.seq_relationship.*`, `classifier.*`.
//!
//! One encoder layer, as the original TF code builds it (post-LN):
//!
//! ```text
//! q, k, v   = x·Wqᵀ + bq, x·Wkᵀ + bk, x·Wvᵀ + bv          split into A heads of H/A
//! ctx       = dropout(softmax(q·kᵀ/√d + mask)) · v          heads concatenated
//! a         = LayerNorm(x + dropout(ctx·Woᵀ + bo))
//! out       = LayerNorm(a + dropout(act(a·W1ᵀ + b1)·W2ᵀ + b2))
//! ```
//!
//! The attention mask is additive on the keys: 0 for real tokens, −10000 for padding (the TF
//! original; HF's dtype-minimum gives the same probabilities, as exp(−10000) is 0 in f32).
//! With `config.is_decoder` the encoder is causal (left-to-right).
//!
//! With `config.pre_layer_norm` (cloze's pre-LN option, not the paper's model) the two
//! LayerNorms of a layer move to the sub-layer inputs and a final `encoder.LayerNorm` follows
//! the last layer:
//!
//! ```text
//! a         = x + dropout(Attn(LayerNorm_attn(x)))      LayerNorm_attn = attention.output.LayerNorm
//! out       = a + dropout(FFN(LayerNorm_ffn(a)))        LayerNorm_ffn  = output.LayerNorm
//! encoder   = LayerNorm_final(out of the last layer)    encoder.LayerNorm
//! ```

use super::config::{BertConfig, HiddenAct};
use super::init::{dropout_seed, trunc_normal, DropoutSite};
use crate::autodiff::params::{ParamId, ParamStore};
use crate::autodiff::tape::{Tape, Var};
use crate::error::{invalid, Result};
use crate::ops::gelu::GeluKind;
use crate::ops::attention::AttentionOptions;
use crate::tensor::Tensor;

/// Added to the attention scores of padded keys (TF BERT's value).
pub const MASK_ADDER: f32 = -10000.0;

/// A dense layer `y = x·Wᵀ + b` with `W` stored `[out, in]`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: ParamId,
    pub bias: ParamId,
}

impl Linear {
    /// Adds `{prefix}.weight` (truncated normal) and `{prefix}.bias` (zeros).
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        out_features: usize,
        in_features: usize,
        std: f32,
        seed: u64,
    ) -> Result<Linear> {
        let wname = format!("{prefix}.weight");
        let w = trunc_normal(&[out_features, in_features], std, seed, &wname)?;
        let weight = store.add(wname, w)?;
        let bias = store.add(format!("{prefix}.bias"), Tensor::zeros(&[out_features]))?;
        Ok(Linear { weight, bias })
    }

    /// `x·Wᵀ + b` over the last axis of `x`.
    pub fn forward(&self, tape: &mut Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        let w = tape.param(store, self.weight);
        let b = tape.param(store, self.bias);
        let y = tape.matmul_t(x, &w, false, true)?;
        tape.add(&y, &b)
    }
}

/// LayerNorm parameters `{prefix}.weight` (ones) and `{prefix}.bias` (zeros).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub weight: ParamId,
    pub bias: ParamId,
    pub eps: f32,
}

impl LayerNorm {
    pub fn new(store: &mut ParamStore, prefix: &str, size: usize, eps: f32) -> Result<LayerNorm> {
        let weight = store.add(format!("{prefix}.weight"), Tensor::ones(&[size]))?;
        let bias = store.add(format!("{prefix}.bias"), Tensor::zeros(&[size]))?;
        Ok(LayerNorm { weight, bias, eps })
    }

    pub fn forward(&self, tape: &mut Tape, store: &ParamStore, x: &Var) -> Result<Var> {
        let g = tape.param(store, self.weight);
        let b = tape.param(store, self.bias);
        tape.layer_norm(x, &g, &b, self.eps)
    }

    /// `LayerNorm(x + residual)`.
    pub fn forward_residual(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        x: &Var,
        residual: &Var,
    ) -> Result<Var> {
        let g = tape.param(store, self.weight);
        let b = tape.param(store, self.bias);
        tape.residual_layer_norm(x, residual, &g, &b, self.eps)
    }
}

fn activation(tape: &mut Tape, act: HiddenAct, x: &Var) -> Result<Var> {
    match act {
        HiddenAct::GeluErf => tape.gelu(x, GeluKind::Erf),
        HiddenAct::GeluTanh => tape.gelu(x, GeluKind::Tanh),
        HiddenAct::Relu => tape.relu(x),
    }
}

fn dropout(tape: &mut Tape, x: Var, p: f32, seed: u64) -> Result<Var> {
    if p > 0.0 && tape.training() {
        tape.dropout(&x, p, seed)
    } else {
        Ok(x)
    }
}

/// One batch of token sequences, `[batch, seq]` row-major.
#[derive(Clone, Copy, Debug)]
pub struct BertInput<'a> {
    pub input_ids: &'a [u32],
    /// Segment ids; all 0 when `None`.
    pub token_type_ids: Option<&'a [u32]>,
    /// 1 for real tokens, 0 for padding; all 1 when `None`.
    pub attention_mask: Option<&'a [u32]>,
    pub batch: usize,
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

    pub fn with_token_types(mut self, token_type_ids: &'a [u32]) -> Self {
        self.token_type_ids = Some(token_type_ids);
        self
    }

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

/// Word + position + segment embeddings, then LayerNorm and dropout.
#[derive(Clone, Debug)]
pub struct BertEmbeddings {
    pub word: ParamId,
    pub position: ParamId,
    pub token_type: ParamId,
    pub layer_norm: LayerNorm,
}

impl BertEmbeddings {
    fn new(config: &BertConfig, store: &mut ParamStore, seed: u64) -> Result<Self> {
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
}

/// One encoder layer (post-LN, or pre-LN with `config.pre_layer_norm`).
#[derive(Clone, Debug)]
pub struct BertLayer {
    pub index: usize,
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub attention_output: Linear,
    pub attention_layer_norm: LayerNorm,
    pub intermediate: Linear,
    pub output: Linear,
    pub output_layer_norm: LayerNorm,
}

impl BertLayer {
    fn new(config: &BertConfig, store: &mut ParamStore, index: usize, seed: u64) -> Result<Self> {
        let (h, i, std, eps) = (
            config.hidden_size,
            config.intermediate_size,
            config.initializer_range,
            config.layer_norm_eps,
        );
        let p = format!("encoder.layer.{index}");
        Ok(BertLayer {
            index,
            query: Linear::new(store, &format!("{p}.attention.self.query"), h, h, std, seed)?,
            key: Linear::new(store, &format!("{p}.attention.self.key"), h, h, std, seed)?,
            value: Linear::new(store, &format!("{p}.attention.self.value"), h, h, std, seed)?,
            attention_output: Linear::new(
                store,
                &format!("{p}.attention.output.dense"),
                h,
                h,
                std,
                seed,
            )?,
            attention_layer_norm: LayerNorm::new(
                store,
                &format!("{p}.attention.output.LayerNorm"),
                h,
                eps,
            )?,
            intermediate: Linear::new(store, &format!("{p}.intermediate.dense"), i, h, std, seed)?,
            output: Linear::new(store, &format!("{p}.output.dense"), h, i, std, seed)?,
            output_layer_norm: LayerNorm::new(store, &format!("{p}.output.LayerNorm"), h, eps)?,
        })
    }
}

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
    act: HiddenAct,
    pub embeddings: BertEmbeddings,
    pub layers: Vec<BertLayer>,
    /// Pre-LN only: `encoder.LayerNorm`, after the last layer.
    pub final_layer_norm: Option<LayerNorm>,
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

    /// The embeddings output `[B, T, H]`: LayerNorm(word + position + segment), then dropout.
    pub fn embed(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        input: &BertInput<'_>,
        seed: u64,
    ) -> Result<Var> {
        input.validate(&self.config)?;
        let (b, t) = (input.batch, input.seq);
        let e = &self.embeddings;
        let word = tape.param(store, e.word);
        let x = tape.embedding(&word, input.input_ids, &[b, t])?;
        let pos_table = tape.param(store, e.position);
        let pos = tape.slice(&pos_table, 0, 0, t)?; // [T, H], broadcast over the batch
        let x = tape.add(&x, &pos)?;
        let tt_table = tape.param(store, e.token_type);
        let zeros;
        let tt_ids = match input.token_type_ids {
            Some(tt) => tt,
            None => {
                zeros = vec![0u32; b * t];
                &zeros
            }
        };
        let seg = tape.embedding(&tt_table, tt_ids, &[b, t])?;
        let x = e.layer_norm.forward_residual(tape, store, &x, &seg)?;
        dropout(
            tape,
            x,
            self.config.hidden_dropout_prob,
            dropout_seed(seed, 0, DropoutSite::Embeddings),
        )
    }

    /// One encoder layer on `x` `[B, T, H]`.
    pub fn layer_forward(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        layer: &BertLayer,
        x: &Var,
        mask: Option<&Tensor>,
        seed: u64,
    ) -> Result<Var> {
        let cfg = &self.config;
        let (b, t, h) = match x.shape() {
            &[b, t, h] if h == cfg.hidden_size => (b, t, h),
            s => {
                return crate::error::shape_err(
                    "BertModel::layer_forward",
                    format!(
                        "hidden states {s:?}, expected [batch, seq, {}]",
                        cfg.hidden_size
                    ),
                )
            }
        };
        let (a, d) = (cfg.num_attention_heads, cfg.head_dim());
        // pre-LN: the sub-layers read LayerNorm(x); post-LN: x itself
        let normed = if cfg.pre_layer_norm {
            Some(layer.attention_layer_norm.forward(tape, store, x)?)
        } else {
            None
        };
        let attn_in = normed.as_ref().unwrap_or(x);
        let heads = |tape: &mut Tape, lin: &Linear| -> Result<Var> {
            let y = lin.forward(tape, store, attn_in)?;
            let y = tape.reshape(&y, &[b, t, a, d])?;
            tape.permute(&y, &[0, 2, 1, 3])
        };
        let q = heads(tape, &layer.query)?;
        let k = heads(tape, &layer.key)?;
        let v = heads(tape, &layer.value)?;
        let mut opts = AttentionOptions::new(d);
        opts.mask = mask.cloned();
        opts.causal = cfg.is_decoder;
        if tape.training() {
            opts.dropout = cfg.attention_probs_dropout_prob;
        }
        opts.seed = dropout_seed(seed, layer.index, DropoutSite::AttentionProbs);
        let ctx = tape.attention(&q, &k, &v, &opts)?; // [B, A, T, d]
        let ctx = tape.permute(&ctx, &[0, 2, 1, 3])?;
        let ctx = tape.reshape(&ctx, &[b, t, h])?;
        let y = layer.attention_output.forward(tape, store, &ctx)?;
        let y = dropout(
            tape,
            y,
            cfg.hidden_dropout_prob,
            dropout_seed(seed, layer.index, DropoutSite::AttentionOutput),
        )?;
        let attn = if cfg.pre_layer_norm {
            tape.add(x, &y)?
        } else {
            layer
                .attention_layer_norm
                .forward_residual(tape, store, &y, x)?
        };
        let ffn_in = if cfg.pre_layer_norm {
            layer.output_layer_norm.forward(tape, store, &attn)?
        } else {
            attn.clone()
        };
        let f = layer.intermediate.forward(tape, store, &ffn_in)?;
        let f = activation(tape, self.act, &f)?;
        let f = layer.output.forward(tape, store, &f)?;
        let f = dropout(
            tape,
            f,
            cfg.hidden_dropout_prob,
            dropout_seed(seed, layer.index, DropoutSite::FfnOutput),
        )?;
        if cfg.pre_layer_norm {
            tape.add(&attn, &f)
        } else {
            layer
                .output_layer_norm
                .forward_residual(tape, store, &f, &attn)
        }
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
            x = self.layer_forward(tape, store, layer, &x, mask.as_ref(), seed)?;
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

/// The masked-LM head: dense H→H + activation + LayerNorm, then logits against the (tied)
/// word-embedding table plus its own output bias.
#[derive(Clone, Debug)]
pub struct MlmHead {
    pub transform: Linear,
    pub layer_norm: LayerNorm,
    pub bias: ParamId,
    pub word_embeddings: ParamId,
    act: HiddenAct,
}

impl MlmHead {
    /// Adds `cls.predictions.*`; the decoder matrix is `model`'s word-embedding table.
    pub fn new(model: &BertModel, store: &mut ParamStore, seed: u64) -> Result<Self> {
        let cfg = model.config();
        let h = cfg.hidden_size;
        Ok(MlmHead {
            transform: Linear::new(
                store,
                "cls.predictions.transform.dense",
                h,
                h,
                cfg.initializer_range,
                seed,
            )?,
            layer_norm: LayerNorm::new(
                store,
                "cls.predictions.transform.LayerNorm",
                h,
                cfg.layer_norm_eps,
            )?,
            bias: store.add("cls.predictions.bias", Tensor::zeros(&[cfg.vocab_size]))?,
            word_embeddings: model.embeddings.word,
            act: model.act,
        })
    }

    /// Flat row indices `b·seq + p` for per-sequence positions `[batch, per_seq]` (the TF
    /// `masked_lm_positions` layout); each position must be below `seq`.
    pub fn flatten_positions(positions: &[u32], batch: usize, seq: usize) -> Result<Vec<u32>> {
        if batch == 0 || !positions.len().is_multiple_of(batch) {
            return invalid(
                "MlmHead::flatten_positions",
                format!(
                    "{} positions do not split into batch {batch}",
                    positions.len()
                ),
            );
        }
        let per = positions.len() / batch;
        positions
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                if p as usize >= seq {
                    invalid(
                        "MlmHead::flatten_positions",
                        format!(
                            "position {p} at [{}, {}] is not below seq {seq}",
                            i / per,
                            i % per
                        ),
                    )
                } else {
                    Ok(((i / per) * seq) as u32 + p)
                }
            })
            .collect()
    }

    /// Logits `[n, V]` at the given flat rows of `hidden` `[B, T, H]` (gathered before the
    /// head, so only the predicted positions pay for the vocabulary-wide product).
    pub fn forward(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        hidden: &Var,
        flat_positions: &[u32],
    ) -> Result<Var> {
        let s = hidden.shape();
        if s.len() != 3 {
            return crate::error::shape_err(
                "MlmHead::forward",
                format!("hidden states {s:?}, expected [batch, seq, hidden]"),
            );
        }
        let (rows, h) = (s[0] * s[1], s[2]);
        if let Some(&p) = flat_positions.iter().find(|&&p| p as usize >= rows) {
            return invalid(
                "MlmHead::forward",
                format!("flat position {p} is not below batch × seq = {rows}"),
            );
        }
        let flat = tape.reshape(hidden, &[rows, h])?;
        let x = tape.embedding(&flat, flat_positions, &[flat_positions.len()])?;
        let x = self.transform.forward(tape, store, &x)?;
        let x = activation(tape, self.act, &x)?;
        let x = self.layer_norm.forward(tape, store, &x)?;
        let e = tape.param(store, self.word_embeddings);
        let logits = tape.matmul_t(&x, &e, false, true)?;
        let b = tape.param(store, self.bias);
        tape.add(&logits, &b)
    }
}

/// The next-sentence head: `[2, H]` on the pooled output; label 0 = IsNext, 1 = random.
#[derive(Clone, Debug)]
pub struct NspHead {
    pub linear: Linear,
}

impl NspHead {
    pub fn new(config: &BertConfig, store: &mut ParamStore, seed: u64) -> Result<Self> {
        Ok(NspHead {
            linear: Linear::new(
                store,
                "cls.seq_relationship",
                2,
                config.hidden_size,
                config.initializer_range,
                seed,
            )?,
        })
    }

    /// Logits `[B, 2]`.
    pub fn forward(&self, tape: &mut Tape, store: &ParamStore, pooled: &Var) -> Result<Var> {
        self.linear.forward(tape, store, pooled)
    }
}

/// The sequence-classification head: dropout, then `[K, H]` on the pooled output.
#[derive(Clone, Debug)]
pub struct ClassifierHead {
    pub linear: Linear,
    pub num_labels: usize,
    dropout: f32,
}

impl ClassifierHead {
    pub fn new(
        config: &BertConfig,
        store: &mut ParamStore,
        num_labels: usize,
        seed: u64,
    ) -> Result<Self> {
        if num_labels == 0 {
            return invalid("ClassifierHead::new", "num_labels must be positive, got 0");
        }
        Ok(ClassifierHead {
            linear: Linear::new(
                store,
                "classifier",
                num_labels,
                config.hidden_size,
                config.initializer_range,
                seed,
            )?,
            num_labels,
            dropout: config.hidden_dropout_prob,
        })
    }

    /// Logits `[B, K]`.
    pub fn forward(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        pooled: &Var,
        seed: u64,
    ) -> Result<Var> {
        let x = dropout(
            tape,
            pooled.clone(),
            self.dropout,
            dropout_seed(seed, 0, DropoutSite::Classifier),
        )?;
        self.linear.forward(tape, store, &x)
    }
}

/// `BertForPreTraining`: the model with pooler, MLM and NSP heads.
#[derive(Clone, Debug)]
pub struct BertForPreTraining {
    pub bert: BertModel,
    pub mlm: MlmHead,
    pub nsp: NspHead,
}

/// Outputs of [`BertForPreTraining::forward`].
#[derive(Clone, Debug)]
pub struct PreTrainingOutput {
    pub bert: BertOutput,
    /// `[n, V]` at the requested flat positions.
    pub mlm_logits: Var,
    /// `[B, 2]`.
    pub nsp_logits: Var,
}

impl BertForPreTraining {
    pub fn new(config: &BertConfig, store: &mut ParamStore, seed: u64) -> Result<Self> {
        let bert = BertModel::new(config, store, seed)?;
        let mlm = MlmHead::new(&bert, store, seed)?;
        let nsp = NspHead::new(config, store, seed)?;
        Ok(BertForPreTraining { bert, mlm, nsp })
    }

    pub fn forward(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        input: &BertInput<'_>,
        mlm_flat_positions: &[u32],
        opts: &ForwardOptions,
    ) -> Result<PreTrainingOutput> {
        let bert = self.bert.forward(tape, store, input, opts)?;
        let mlm_logits =
            self.mlm
                .forward(tape, store, &bert.last_hidden_state, mlm_flat_positions)?;
        let pooled = bert
            .pooled
            .clone()
            .expect("BertForPreTraining has a pooler");
        let nsp_logits = self.nsp.forward(tape, store, &pooled)?;
        Ok(PreTrainingOutput {
            bert,
            mlm_logits,
            nsp_logits,
        })
    }

    /// Mean MLM cross-entropy over the labelled positions (label −100 = ignored) plus mean
    /// NSP cross-entropy, as the original `run_pretraining.py` sums them.
    pub fn loss(
        &self,
        tape: &mut Tape,
        out: &PreTrainingOutput,
        mlm_labels: &[i32],
        nsp_labels: &[i32],
    ) -> Result<Var> {
        let mlm = tape.cross_entropy(&out.mlm_logits, mlm_labels, -100)?;
        let nsp = tape.cross_entropy(&out.nsp_logits, nsp_labels, -100)?;
        tape.add(&mlm, &nsp)
    }
}

/// `BertForSequenceClassification`: the model with pooler and a classifier.
#[derive(Clone, Debug)]
pub struct BertForSequenceClassification {
    pub bert: BertModel,
    pub classifier: ClassifierHead,
}

impl BertForSequenceClassification {
    pub fn new(
        config: &BertConfig,
        store: &mut ParamStore,
        num_labels: usize,
        seed: u64,
    ) -> Result<Self> {
        let bert = BertModel::new(config, store, seed)?;
        let classifier = ClassifierHead::new(config, store, num_labels, seed)?;
        Ok(BertForSequenceClassification { bert, classifier })
    }

    /// Logits `[B, K]`.
    pub fn forward(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        input: &BertInput<'_>,
        opts: &ForwardOptions,
    ) -> Result<Var> {
        let out = self.bert.forward(tape, store, input, opts)?;
        let pooled = out
            .pooled
            .expect("BertForSequenceClassification has a pooler");
        self.classifier.forward(tape, store, &pooled, opts.seed)
    }
}
