//! One encoder layer and its building blocks: [`Linear`], [`LayerNorm`], the activation and
//! dropout as the layers apply them.

use crate::autodiff::params::{ParamId, ParamStore};
use crate::autodiff::tape::{Tape, Var};
use crate::bert::config::{BertConfig, HiddenAct};
use crate::bert::init::{dropout_seed, trunc_normal, DropoutSite};
use crate::error::Result;
use crate::ops::attention::AttentionOptions;
use crate::ops::gelu::GeluKind;
use crate::tensor::Tensor;

/// A dense layer `y = x·Wᵀ + b` with `W` stored `[out, in]`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// `W`, `[out, in]` (`{prefix}.weight`).
    pub weight: ParamId,
    /// `b`, `[out]` (`{prefix}.bias`).
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
        tape.linear(x, &w, &b)
    }
}

/// LayerNorm parameters `{prefix}.weight` (ones) and `{prefix}.bias` (zeros).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// The scale γ, `[size]`, initialised to ones.
    pub weight: ParamId,
    /// The shift β, `[size]`, initialised to zeros.
    pub bias: ParamId,
    /// ε added to the variance before the square root.
    pub eps: f32,
}

impl LayerNorm {
    /// Adds `{prefix}.weight` (ones) and `{prefix}.bias` (zeros), both `[size]`; errors if a name
    /// is already in `store`.
    pub fn new(store: &mut ParamStore, prefix: &str, size: usize, eps: f32) -> Result<LayerNorm> {
        let weight = store.add(format!("{prefix}.weight"), Tensor::ones(&[size]))?;
        let bias = store.add(format!("{prefix}.bias"), Tensor::zeros(&[size]))?;
        Ok(LayerNorm { weight, bias, eps })
    }

    /// Normalises `x` over its last axis (`[…, size]`), then scales by γ and shifts by β.
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

/// The configured activation.
pub(crate) fn activation(tape: &mut Tape, act: HiddenAct, x: &Var) -> Result<Var> {
    match act {
        HiddenAct::GeluErf => tape.gelu(x, GeluKind::Erf),
        HiddenAct::GeluTanh => tape.gelu(x, GeluKind::Tanh),
        HiddenAct::Relu => tape.relu(x),
    }
}

/// Dropout with probability `p` in training mode; the identity otherwise.
pub(crate) fn dropout(tape: &mut Tape, x: Var, p: f32, seed: u64) -> Result<Var> {
    if p > 0.0 && tape.training() {
        tape.dropout(&x, p, seed)
    } else {
        Ok(x)
    }
}

/// One encoder layer (post-LN, or pre-LN with `config.pre_layer_norm`).
#[derive(Clone, Debug)]
pub struct BertLayer {
    /// Position of the layer in the encoder (its names are `encoder.layer.{index}.*`).
    pub index: usize,
    /// Query projection, `[H, H]`.
    pub query: Linear,
    /// Key projection, `[H, H]`.
    pub key: Linear,
    /// Value projection, `[H, H]`.
    pub value: Linear,
    /// Projection of the concatenated heads back to H, `[H, H]`.
    pub attention_output: Linear,
    /// The LayerNorm around the attention block (after the residual; before it with pre-LN).
    pub attention_layer_norm: LayerNorm,
    /// Feed-forward expansion, `[I, H]` (I = `intermediate_size`).
    pub intermediate: Linear,
    /// Feed-forward projection back, `[H, I]`.
    pub output: Linear,
    /// The LayerNorm around the feed-forward block (after the residual; before it with pre-LN).
    pub output_layer_norm: LayerNorm,
    act: HiddenAct,
}

impl BertLayer {
    pub(crate) fn new(
        config: &BertConfig,
        store: &mut ParamStore,
        index: usize,
        seed: u64,
    ) -> Result<Self> {
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
            act: config.activation()?,
        })
    }

    /// The layer on `x` `[B, T, H]`; `mask` is the additive key mask `[B, T]`
    /// ([`super::input::BertInput::additive_mask`]), `seed` the step's dropout seed.
    pub fn forward(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        config: &BertConfig,
        x: &Var,
        mask: Option<&Tensor>,
        seed: u64,
    ) -> Result<Var> {
        let (b, t, h) = match x.shape() {
            &[b, t, h] if h == config.hidden_size => (b, t, h),
            s => {
                return crate::error::shape_err(
                    "BertLayer::forward",
                    format!(
                        "hidden states {s:?}, expected [batch, seq, {}]",
                        config.hidden_size
                    ),
                )
            }
        };
        let (a, d) = (config.num_attention_heads, config.head_dim());
        // pre-LN: the sub-layers read LayerNorm(x); post-LN: x itself
        let normed = if config.pre_layer_norm {
            Some(self.attention_layer_norm.forward(tape, store, x)?)
        } else {
            None
        };
        let attn_in = normed.as_ref().unwrap_or(x);
        let heads = |tape: &mut Tape, lin: &Linear| -> Result<Var> {
            let y = lin.forward(tape, store, attn_in)?;
            let y = tape.reshape(&y, &[b, t, a, d])?;
            tape.permute(&y, &[0, 2, 1, 3])
        };
        let q = heads(tape, &self.query)?;
        let k = heads(tape, &self.key)?;
        let v = heads(tape, &self.value)?;
        let mut opts = AttentionOptions::new(d);
        opts.mask = mask.cloned();
        opts.causal = config.is_decoder;
        if tape.training() {
            opts.dropout = config.attention_probs_dropout_prob;
        }
        opts.seed = dropout_seed(seed, self.index, DropoutSite::AttentionProbs);
        let ctx = tape.attention(&q, &k, &v, &opts)?; // [B, A, T, d]
        let ctx = tape.permute(&ctx, &[0, 2, 1, 3])?;
        let ctx = tape.reshape(&ctx, &[b, t, h])?;
        let y = self.attention_output.forward(tape, store, &ctx)?;
        let y = dropout(
            tape,
            y,
            config.hidden_dropout_prob,
            dropout_seed(seed, self.index, DropoutSite::AttentionOutput),
        )?;
        let attn = if config.pre_layer_norm {
            tape.add(x, &y)?
        } else {
            self.attention_layer_norm
                .forward_residual(tape, store, &y, x)?
        };
        let ffn_in = if config.pre_layer_norm {
            self.output_layer_norm.forward(tape, store, &attn)?
        } else {
            attn.clone()
        };
        let f = self.intermediate.forward(tape, store, &ffn_in)?;
        let f = activation(tape, self.act, &f)?;
        let f = self.output.forward(tape, store, &f)?;
        let f = dropout(
            tape,
            f,
            config.hidden_dropout_prob,
            dropout_seed(seed, self.index, DropoutSite::FfnOutput),
        )?;
        if config.pre_layer_norm {
            tape.add(&attn, &f)
        } else {
            self.output_layer_norm
                .forward_residual(tape, store, &f, &attn)
        }
    }
}
