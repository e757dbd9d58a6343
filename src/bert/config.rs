//! [`BertConfig`]: the model hyper-parameters, read from and written to HF `config.json`
//! field names, with the paper's presets and exact parameter counts.

use crate::error::{invalid, require_positive, Error, Result};

/// Upper bounds [`BertConfig::validate`] enforces before anything is allocated, so a
/// mistyped or hostile `config.json` is an error naming the key, not an allocation failure.
/// Each is far above any published BERT-style model.
pub mod limits {
    /// Largest `vocab_size` (16.8M tokens).
    pub const VOCAB_SIZE: usize = 1 << 24;
    /// Largest `hidden_size`.
    pub const HIDDEN_SIZE: usize = 1 << 16;
    /// Largest `num_hidden_layers`.
    pub const LAYERS: usize = 1 << 10;
    /// Largest `intermediate_size`.
    pub const INTERMEDIATE_SIZE: usize = 1 << 18;
    /// Largest `max_position_embeddings`.
    pub const POSITIONS: usize = 1 << 20;
    /// Largest `type_vocab_size`.
    pub const TYPE_VOCAB_SIZE: usize = 1 << 16;
    /// Parameters of the whole pre-training model (2^33 f32 values are 32 GiB).
    pub const PARAMETERS: usize = 1 << 33;
}
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The FFN activation named by `hidden_act`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HiddenAct {
    /// `"gelu"`: exact `0.5·x·(1 + erf(x/√2))` (the published checkpoints).
    GeluErf,
    /// `"gelu_new"` / `"gelu_pytorch_tanh"`: the tanh approximation.
    GeluTanh,
    /// `"relu"`.
    Relu,
}

impl HiddenAct {
    /// Parses an HF `hidden_act` string.
    pub fn from_hf(name: &str) -> Result<HiddenAct> {
        match name {
            "gelu" => Ok(HiddenAct::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(HiddenAct::GeluTanh),
            "relu" => Ok(HiddenAct::Relu),
            other => invalid(
                "BertConfig",
                format!(
                    "hidden_act {other:?} is not supported (expected \"gelu\", \"gelu_new\", \"gelu_pytorch_tanh\" or \"relu\")"
                ),
            ),
        }
    }
}

serde_defaults! {
    default_hidden_act: String = "gelu".into();
    default_dropout: f32 = 0.1;
    default_max_position: usize = 512;
    default_type_vocab: usize = 2;
    default_init_range: f32 = 0.02;
    default_eps: f32 = 1e-12;
    default_pad: Option<u32> = Some(0);
    default_model_type: String = "bert".into();
    default_position_embedding_type: String = "absolute".into();
}

/// JSON types of the known fields, for error messages that name the field.
#[derive(Clone, Copy)]
enum Kind {
    Count,
    Number,
    Text,
    Flag,
    TextList,
    OptCount,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Count => "a non-negative integer",
            Kind::Number => "a number",
            Kind::Text => "a string",
            Kind::Flag => "true or false",
            Kind::TextList => "a list of strings",
            Kind::OptCount => "a non-negative integer or null",
        }
    }
}

const FIELD_KINDS: &[(&str, Kind)] = &[
    ("architectures", Kind::TextList),
    ("model_type", Kind::Text),
    ("vocab_size", Kind::Count),
    ("hidden_size", Kind::Count),
    ("num_hidden_layers", Kind::Count),
    ("num_attention_heads", Kind::Count),
    ("intermediate_size", Kind::Count),
    ("hidden_act", Kind::Text),
    ("hidden_dropout_prob", Kind::Number),
    ("attention_probs_dropout_prob", Kind::Number),
    ("max_position_embeddings", Kind::Count),
    ("type_vocab_size", Kind::Count),
    ("initializer_range", Kind::Number),
    ("layer_norm_eps", Kind::Number),
    ("pad_token_id", Kind::OptCount),
    ("position_embedding_type", Kind::Text),
    ("is_decoder", Kind::Flag),
    ("pre_layer_norm", Kind::Flag),
];

/// BERT hyper-parameters under HF `config.json` names.
///
/// Reading ignores keys this struct does not know (`transformers_version`, `use_cache`, …);
/// keys with an HF default may be absent. Writing emits every field, `model_type: "bert"` and
/// `architectures` included.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// HF class names the weights are for (`BertForPreTraining`, `BertForSequenceClassification`,
    /// …); HF's `Auto*` loaders read it.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// `"bert"`, or [`PRE_LN_MODEL_TYPE`] for a pre-LN model (so transformers refuses it).
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Rows of the word-embedding table: the number of token ids (`vocab.txt` lines).
    pub vocab_size: usize,
    /// Width H of every hidden state (BERT-base: 768).
    pub hidden_size: usize,
    /// Number of Transformer layers (BERT-base: 12).
    pub num_hidden_layers: usize,
    /// Attention heads per layer; each has width `hidden_size / num_attention_heads`.
    pub num_attention_heads: usize,
    /// Inner width of each feed-forward block (BERT: 4·H).
    pub intermediate_size: usize,
    /// Feed-forward activation by HF name (see [`HiddenAct::from_hf`]); default `"gelu"`.
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    /// Dropout probability on embeddings and sub-layer outputs (default 0.1).
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f32,
    /// Dropout probability on the attention weights (default 0.1).
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f32,
    /// Rows of the position-embedding table: the longest input in tokens (default 512).
    #[serde(default = "default_max_position")]
    pub max_position_embeddings: usize,
    /// Rows of the token-type (segment) embedding table (default 2: sentence A and B).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// σ of the truncated-normal initialiser of new weights (default 0.02).
    #[serde(default = "default_init_range")]
    pub initializer_range: f32,
    /// ε added to the variance in every LayerNorm (default 1e-12).
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f32,
    /// The `[PAD]` id (may be `null` in HF files).
    #[serde(default = "default_pad")]
    pub pad_token_id: Option<u32>,
    /// HF's position scheme; only `"absolute"` (learned positions, the default) is supported.
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
    /// HF's flag for a causal (left-to-right) BERT: each position attends to itself and the
    /// positions before it only (the LTR ablation).
    #[serde(default)]
    pub is_decoder: bool,
    /// cloze's pre-LN variant (Xiong et al. 2020): each sub-layer reads `LayerNorm(x)` and adds
    /// its output to `x` unnormalised, and a final `encoder.LayerNorm` follows the last layer.
    /// HF's `BertModel` has no such option, so a pre-LN model is saved with `model_type`
    /// `"cloze-preln-bert"`: transformers refuses it instead of loading it as post-LN.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pre_layer_norm: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The `model_type` a pre-LN config is saved with.
pub const PRE_LN_MODEL_TYPE: &str = "cloze-preln-bert";

impl BertConfig {
    /// A config with the given shape and every other field at the released-BERT value
    /// (vocab 30522, 512 positions, 2 segments, dropout 0.1, init 0.02, eps 1e-12, erf GELU).
    pub fn with_shape(layers: usize, hidden: usize, heads: usize, intermediate: usize) -> Self {
        BertConfig {
            architectures: vec!["BertForPreTraining".into()],
            model_type: default_model_type(),
            vocab_size: 30522,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: intermediate,
            hidden_act: default_hidden_act(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pad_token_id: Some(0),
            position_embedding_type: default_position_embedding_type(),
            is_decoder: false,
            pre_layer_norm: false,
        }
    }

    /// BERT-BASE: L12 H768 A12 I3072.
    pub fn base() -> Self {
        Self::with_shape(12, 768, 12, 3072)
    }
    /// BERT-LARGE: L24 H1024 A16 I4096.
    pub fn large() -> Self {
        Self::with_shape(24, 1024, 16, 4096)
    }
    /// BERT-Tiny (Turc et al. 2019): L2 H128 A2 I512.
    pub fn tiny() -> Self {
        Self::with_shape(2, 128, 2, 512)
    }
    /// BERT-Mini: L4 H256 A4 I1024.
    pub fn mini() -> Self {
        Self::with_shape(4, 256, 4, 1024)
    }
    /// BERT-Small: L4 H512 A8 I2048.
    pub fn small() -> Self {
        Self::with_shape(4, 512, 8, 2048)
    }
    /// BERT-Medium: L8 H512 A8 I2048.
    pub fn medium() -> Self {
        Self::with_shape(8, 512, 8, 2048)
    }

    /// A preset by name: `tiny`, `mini`, `small`, `medium`, `base`, `large`.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "mini" => Ok(Self::mini()),
            "small" => Ok(Self::small()),
            "medium" => Ok(Self::medium()),
            "base" => Ok(Self::base()),
            "large" => Ok(Self::large()),
            other => invalid(
                "BertConfig::preset",
                format!(
                    "unknown preset {other:?} (expected tiny, mini, small, medium, base or large)"
                ),
            ),
        }
    }

    /// Per-head width `hidden_size / num_attention_heads`.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// The parsed `hidden_act`.
    pub fn activation(&self) -> Result<HiddenAct> {
        HiddenAct::from_hf(&self.hidden_act)
    }

    /// Checks that the config describes a buildable BERT; the error names the bad value.
    pub fn validate(&self) -> Result<()> {
        let op = "BertConfig";
        require_positive(
            op,
            &[
                ("vocab_size", self.vocab_size),
                ("hidden_size", self.hidden_size),
                ("num_hidden_layers", self.num_hidden_layers),
                ("num_attention_heads", self.num_attention_heads),
                ("intermediate_size", self.intermediate_size),
                ("max_position_embeddings", self.max_position_embeddings),
                ("type_vocab_size", self.type_vocab_size),
            ],
        )?;
        for (name, v, max) in [
            ("vocab_size", self.vocab_size, limits::VOCAB_SIZE),
            ("hidden_size", self.hidden_size, limits::HIDDEN_SIZE),
            ("num_hidden_layers", self.num_hidden_layers, limits::LAYERS),
            (
                "num_attention_heads",
                self.num_attention_heads,
                limits::HIDDEN_SIZE,
            ),
            (
                "intermediate_size",
                self.intermediate_size,
                limits::INTERMEDIATE_SIZE,
            ),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                limits::POSITIONS,
            ),
            (
                "type_vocab_size",
                self.type_vocab_size,
                limits::TYPE_VOCAB_SIZE,
            ),
        ] {
            if v > max {
                return invalid(op, format!("{name} {v} is above the limit {max}"));
            }
        }
        match self.checked_pretraining_params() {
            Some(n) if n <= limits::PARAMETERS => {}
            n => {
                return invalid(
                    op,
                    format!(
                        "the model would have {} parameters, above the limit {} (hidden_size {}, num_hidden_layers {}, intermediate_size {}, vocab_size {}, max_position_embeddings {})",
                        n.map_or("more than 2^64".to_string(), |n| n.to_string()),
                        limits::PARAMETERS,
                        self.hidden_size,
                        self.num_hidden_layers,
                        self.intermediate_size,
                        self.vocab_size,
                        self.max_position_embeddings
                    ),
                )
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return invalid(
                op,
                format!(
                    "hidden_size {} is not divisible by num_attention_heads {}",
                    self.hidden_size, self.num_attention_heads
                ),
            );
        }
        if u32::try_from(self.vocab_size).is_err() {
            return invalid(
                op,
                format!("vocab_size {} does not fit in u32", self.vocab_size),
            );
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return invalid(op, format!("{name} {p} must be in [0, 1)"));
            }
        }
        if !(self.initializer_range.is_finite() && self.initializer_range > 0.0) {
            return invalid(
                op,
                format!(
                    "initializer_range {} must be positive",
                    self.initializer_range
                ),
            );
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return invalid(
                op,
                format!("layer_norm_eps {} must be positive", self.layer_norm_eps),
            );
        }
        let want_type = if self.pre_layer_norm {
            PRE_LN_MODEL_TYPE
        } else {
            "bert"
        };
        if self.model_type != want_type {
            return invalid(
                op,
                format!(
                    "model_type {:?} with pre_layer_norm = {}: expected {want_type:?}",
                    self.model_type, self.pre_layer_norm
                ),
            );
        }
        if self.position_embedding_type != "absolute" {
            return invalid(
                op,
                format!(
                    "position_embedding_type {:?} is not supported (only \"absolute\")",
                    self.position_embedding_type
                ),
            );
        }
        if let Some(pad) = self.pad_token_id.filter(|&p| p as usize >= self.vocab_size) {
            return invalid(
                op,
                format!(
                    "pad_token_id {pad} is not below vocab_size {}",
                    self.vocab_size
                ),
            );
        }
        self.activation()?;
        Ok(())
    }

    /// Parses and validates `config.json` text; `origin` names the source in errors.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Self> {
        let bad = |detail: String| Error::Format {
            path: origin.to_string(),
            detail: format!("not a valid BERT config.json: {detail}"),
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| bad(format!("expected a JSON object, got {value}")))?;
        // serde's messages do not name the field; check the known ones first.
        for (key, kind) in FIELD_KINDS {
            let Some(v) = obj.get(*key) else { continue };
            let ok = match kind {
                Kind::Count => v.is_u64(),
                Kind::Number => v.is_number(),
                Kind::Text => v.is_string(),
                Kind::Flag => v.is_boolean(),
                Kind::OptCount => v.is_u64() || v.is_null(),
                Kind::TextList => v
                    .as_array()
                    .is_some_and(|a| a.iter().all(serde_json::Value::is_string)),
            };
            if !ok {
                return Err(bad(format!("{key} must be {}, got {v}", kind.describe())));
            }
        }
        let cfg: BertConfig = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        cfg.validate().map_err(|e| Error::Format {
            path: origin.to_string(),
            detail: e.to_string(),
        })?;
        Ok(cfg)
    }

    /// Reads and validates a `config.json` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::error::read_utf8(path)?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Pretty JSON under HF field names.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(self).expect("a BertConfig always serialises")
    }

    /// Writes `config.json` atomically (temp file in the same folder, fsync, rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut text = self.to_json_string();
        text.push('\n');
        crate::fs::write_atomic(path.as_ref(), text.as_bytes())
    }

    /// [`Self::pretraining_params`] (plus a 16-label classifier) in checked arithmetic:
    /// `None` on overflow. Used by [`Self::validate`] before anything is allocated.
    fn checked_pretraining_params(&self) -> Option<usize> {
        let h = self.hidden_size;
        let i = self.intermediate_size;
        let tables = self
            .vocab_size
            .checked_add(self.max_position_embeddings)?
            .checked_add(self.type_vocab_size)?
            .checked_add(2)?
            .checked_mul(h)?;
        // attention (4 H×H + 4 H), FFN (2 H×I + I + H), two LayerNorms (4 H)
        let layer = h
            .checked_mul(h)?
            .checked_mul(4)?
            .checked_add(h.checked_mul(i)?.checked_mul(2)?)?
            .checked_add(i)?
            .checked_add(h.checked_mul(9)?)?;
        let layers = layer.checked_mul(self.num_hidden_layers)?;
        // pooler, MLM transform and bias, NSP and a small classifier head
        let heads = h
            .checked_mul(h)?
            .checked_mul(2)?
            .checked_add(self.vocab_size)?
            .checked_add(h.checked_mul(40)?)?;
        tables.checked_add(layers)?.checked_add(heads)
    }

    // ---- parameter counts (biases included), by formula ----

    /// `(V + P + S)·H + 2H`: the three tables and the embedding LayerNorm.
    pub fn embedding_params(&self) -> usize {
        let h = self.hidden_size;
        (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * h + 2 * h
    }

    /// `4H² + 2HI + 9H + I`: Q, K, V, O with biases, the FFN with biases, two LayerNorms.
    pub fn layer_params(&self) -> usize {
        let (h, i) = (self.hidden_size, self.intermediate_size);
        4 * h * h + 2 * h * i + 9 * h + i
    }

    /// All encoder layers (and, for pre-LN, the final LayerNorm's `2H`).
    pub fn encoder_params(&self) -> usize {
        let final_ln = if self.pre_layer_norm {
            2 * self.hidden_size
        } else {
            0
        };
        self.num_hidden_layers * self.layer_params() + final_ln
    }

    /// Switches to the pre-LN variant (or back), keeping `model_type` consistent.
    pub fn set_pre_layer_norm(&mut self, on: bool) {
        self.pre_layer_norm = on;
        self.model_type = if on { PRE_LN_MODEL_TYPE } else { "bert" }.to_string();
    }

    /// `H² + H`: the tanh pooler.
    pub fn pooler_params(&self) -> usize {
        self.hidden_size * self.hidden_size + self.hidden_size
    }

    /// `H² + H + 2H + V`: transform dense, its LayerNorm and the output bias (the decoder
    /// matrix is tied to the word embeddings).
    pub fn mlm_head_params(&self) -> usize {
        let h = self.hidden_size;
        h * h + h + 2 * h + self.vocab_size
    }

    /// `2H + 2`: the next-sentence classifier.
    pub fn nsp_head_params(&self) -> usize {
        2 * self.hidden_size + 2
    }

    /// `K·H + K`: a sequence classifier with `num_labels` outputs.
    pub fn classifier_params(&self, num_labels: usize) -> usize {
        num_labels * self.hidden_size + num_labels
    }

    /// HF `BertModel` (embeddings, encoder, pooler).
    pub fn bert_model_params(&self) -> usize {
        self.embedding_params() + self.encoder_params() + self.pooler_params()
    }

    /// `BertForPreTraining`: [`Self::bert_model_params`] plus the MLM and NSP heads.
    pub fn pretraining_params(&self) -> usize {
        self.bert_model_params() + self.mlm_head_params() + self.nsp_head_params()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_act_names() {
        assert_eq!(HiddenAct::from_hf("gelu").unwrap(), HiddenAct::GeluErf);
        assert_eq!(HiddenAct::from_hf("gelu_new").unwrap(), HiddenAct::GeluTanh);
        assert_eq!(
            HiddenAct::from_hf("gelu_pytorch_tanh").unwrap(),
            HiddenAct::GeluTanh
        );
        let err = HiddenAct::from_hf("swish").unwrap_err().to_string();
        assert!(err.contains("swish"), "{err}");
    }
}
