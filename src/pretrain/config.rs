//! The pre-training config file (TOML). Every hyper-parameter is stated in it; unknown keys
//! and impossible values are errors before anything runs. A copy is written next to each
//! run's outputs.

use crate::autodiff::tape::Precision;
use crate::bert::BertConfig;
use crate::error::{invalid, Error, Result};
use crate::pretrain::instances::{InstanceConfig, MaskSplit};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Largest `train.batch_size × data.max_seq_length` accepted (tokens in one batch).
pub const MAX_BATCH_TOKENS: usize = 1 << 26;

/// Which pre-training task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Objective {
    /// Masked LM + next-sentence prediction (the paper).
    #[serde(rename = "mlm+nsp")]
    MlmNsp,
    /// Masked LM only ("No NSP").
    #[serde(rename = "mlm")]
    Mlm,
    /// Left-to-right LM, causal attention, every next token predicted, no NSP ("LTR & No NSP").
    #[serde(rename = "ltr")]
    Ltr,
}

/// How the LM head's output bias (`cls.predictions.bias`) starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LmBiasInit {
    /// Zeros, as BERT.
    #[default]
    #[serde(rename = "zeros")]
    Zeros,
    /// The log of the training targets' unigram frequencies (add-one smoothed): the model
    /// starts at the unigram loss instead of ln(vocab), and the tied embeddings are not spent
    /// on learning word frequencies.
    #[serde(rename = "unigram")]
    Unigram,
}

/// The model: a preset and optional overrides. The vocabulary size comes from the vocab file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// `tiny`, `mini`, `small`, `medium`, `base`, `large` (omit it with `init_from`).
    #[serde(default)]
    pub preset: String,
    /// Continue pre-training from an HF BERT folder (`config.json`, `model.safetensors`,
    /// `vocab.txt`): its config, vocabulary (and casing) and weights are used; heads the folder
    /// lacks (`cls.*`, `pooler.*`) start fresh, and its tokenizer settings (casing,
    /// `model_max_length`) are written into every checkpoint and the final model. Shape
    /// overrides are refused; dropout and `initializer_range` may still be set. Relative to
    /// the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// Override of the preset's number of Transformer layers.
    pub num_hidden_layers: Option<usize>,
    /// Override of the preset's hidden width H (must divide by the number of heads).
    pub hidden_size: Option<usize>,
    /// Override of the preset's attention heads per layer.
    pub num_attention_heads: Option<usize>,
    /// Override of the preset's feed-forward inner width (BERT: 4·H).
    pub intermediate_size: Option<usize>,
    /// Dropout probability on embeddings and sub-layer outputs (BERT: 0.1).
    pub hidden_dropout_prob: Option<f32>,
    /// Dropout probability on the attention weights (BERT: 0.1).
    pub attention_probs_dropout_prob: Option<f32>,
    /// Rows of the position-embedding table: the longest sequence the model accepts (BERT: 512).
    pub max_position_embeddings: Option<usize>,
    /// Feed-forward activation by HF name: `gelu`, `gelu_new`, `gelu_pytorch_tanh` or `relu`.
    pub hidden_act: Option<String>,
    /// σ of the truncated-normal initialiser (BERT: 0.02).
    pub initializer_range: Option<f32>,
    /// cloze's pre-LN variant instead of BERT's post-LN (see `BertConfig::pre_layer_norm`).
    pub pre_layer_norm: Option<bool>,
}

/// Data files and instance creation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// WordPiece vocabulary (vocab.txt). If it does not exist and `train_vocab_size` is set, a
    /// vocabulary of that size is learned from the training corpus and written there first.
    #[serde(default)]
    pub vocab: PathBuf,
    /// Size of the vocabulary to learn from `train` when `vocab` does not exist yet.
    pub train_vocab_size: Option<usize>,
    /// Training corpus: one sentence per line, a blank line between documents.
    pub train: PathBuf,
    /// Held-out corpus; without it every `heldout_every`-th training document is held out.
    pub heldout: Option<PathBuf>,
    /// Without a `heldout` file, every `heldout_every`-th training document is held out (≥ 2).
    #[serde(default = "d_heldout_every")]
    pub heldout_every: usize,
    /// Use only the first N documents of the training corpus (quick runs).
    pub max_documents: Option<usize>,
    /// Tokens per instance, `[CLS]` and `[SEP]`s included (≤ the model's positions).
    #[serde(default = "d_max_seq")]
    pub max_seq_length: usize,
    /// Probability that an instance aims at a random shorter length (BERT: 0.1).
    #[serde(default = "d_short")]
    pub short_seq_prob: f64,
    /// Fraction of an instance's tokens chosen for the masked LM (BERT: 0.15).
    #[serde(default = "d_mlm_prob")]
    pub masked_lm_prob: f64,
    /// Cap on masked-LM predictions per instance (BERT: 20 at length 128).
    #[serde(default = "d_max_pred")]
    pub max_predictions_per_seq: usize,
    /// The held-out set's masking rate when it differs from training's (a run trained with
    /// more masking, as Wettig et al. 2023 study, is still scored on the paper's 15%);
    /// `None` = `masked_lm_prob`.
    pub heldout_masked_lm_prob: Option<f64>,
    /// The held-out set's prediction cap; `None` = `max_predictions_per_seq`.
    pub heldout_max_predictions_per_seq: Option<usize>,
    /// MASK / RANDOM / KEEP shares of the chosen positions.
    #[serde(default = "d_mask")]
    pub mask: f64,
    /// Share of the chosen positions replaced by a random token (BERT: 0.1).
    #[serde(default = "d_random")]
    pub random: f64,
    /// Share of the chosen positions left unchanged (BERT: 0.1).
    #[serde(default = "d_keep")]
    pub keep: f64,
    /// Choose whole words (all their WordPiece pieces) for masking instead of single pieces.
    #[serde(default)]
    pub whole_word_mask: bool,
    /// Passes over the corpus, each with its own segment pairs and masks (BERT: 10).
    #[serde(default = "d_dupe")]
    pub dupe_factor: usize,
}

/// Optimisation and the loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Which pre-training task (`"mlm+nsp"`, `"mlm"` or `"ltr"`).
    pub objective: Objective,
    /// Sequences per optimiser step, over all ranks (must divide by the rank count).
    pub batch_size: usize,
    /// Sequences per forward/backward (gradient accumulation when below the batch size).
    pub micro_batch_size: Option<usize>,
    /// Optimiser steps of the whole run.
    pub steps: u64,
    /// Peak learning rate of BERT's schedule ([`crate::optim::LinearWarmupDecay`]): linear
    /// warm-up over `warmup_steps`, linear decay to 0 at `steps`.
    pub learning_rate: f32,
    /// Steps of linear warm-up from 0 to `learning_rate` (at most `steps`).
    pub warmup_steps: u64,
    /// AdamW's decoupled weight decay (BERT: 0.01; biases and LayerNorm weights are exempt).
    #[serde(default = "d_wd")]
    pub weight_decay: f32,
    /// Apply Adam's bias correction to the moment estimates (BERT's optimiser does not: `false`).
    #[serde(default)]
    pub bias_correction: bool,
    /// Adam's decay rate of the first-moment (mean) estimate.
    #[serde(default = "d_beta1")]
    pub beta1: f32,
    /// Adam's decay rate of the second-moment (uncentred variance) estimate.
    #[serde(default = "d_beta2")]
    pub beta2: f32,
    /// Adam's ε, added to the root of the second moment (BERT: 1e-6).
    #[serde(default = "d_eps")]
    pub adam_eps: f32,
    /// Gradients are rescaled so their global L2 norm is at most this (BERT: 1.0).
    #[serde(default = "d_clip")]
    pub max_grad_norm: f32,
    /// Seed of the initialisation, instance creation, data order, masking and dropout.
    pub seed: u64,
    /// Write a metrics line every this many steps (and at the last step).
    #[serde(default = "d_log")]
    pub log_every: u64,
    /// 0 = only at the end.
    #[serde(default)]
    pub eval_every: u64,
    /// Held-out batches (of `batch_size`) scored per evaluation.
    #[serde(default = "d_eval_batches")]
    pub eval_batches: usize,
    /// 0 = only at the end.
    #[serde(default)]
    pub checkpoint_every: u64,
    /// How many of the most recent checkpoints are kept; older ones are deleted.
    #[serde(default = "d_keep_ckpt")]
    pub keep_checkpoints: usize,
    /// Start of the LM head's output bias: `"zeros"` (BERT) or `"unigram"`.
    #[serde(default)]
    pub init_lm_bias: LmBiasInit,
    /// Start of the position embeddings: `"random"` (BERT: truncated normal) or
    /// `"sinusoidal"` (the Transformer's sines and cosines, scaled to the initialiser's σ;
    /// still learned).
    #[serde(default)]
    pub init_positions: PositionInit,
    /// Weight of the next-sentence loss in the summed loss (BERT: 1). 0 keeps the sentence-pair
    /// instances and the NSP accuracy in the logs but trains on the masked-LM loss alone, which
    /// separates the effect of NSP's data format from that of its gradient.
    #[serde(default = "d_nsp_weight")]
    pub nsp_loss_weight: f32,
    /// Operand format of the matrix products: `"f32"` (the default) or `"bf16"` (mixed
    /// precision: bf16 operands, f32 accumulation; master weights, gradients and optimiser
    /// state stay f32; no loss scaling, as bf16 has f32's exponent range). `"bf16"` needs the
    /// AVX-512 kernel path on a CPU with AVX512-BF16 and is refused elsewhere, since the
    /// products would be no faster there (see [`crate::Precision`]).
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
}

/// How the (learned) position embeddings start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PositionInit {
    /// BERT's truncated-normal initialisation.
    #[default]
    #[serde(rename = "random")]
    Random,
    /// The Transformer's sine/cosine table, scaled to the initialiser's σ (see
    /// [`crate::pretrain::trainer::sinusoidal_positions`]).
    #[serde(rename = "sinusoidal")]
    Sinusoidal,
}

/// A whole pre-training config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// Folder of the run's outputs: `metrics.jsonl`, `checkpoints/`, `final/` (relative paths
    /// are resolved against the config file's folder by [`PretrainConfig::from_file`]).
    pub output_dir: PathBuf,
    /// The `[model]` table: preset or `init_from`, and shape overrides.
    pub model: ModelSection,
    /// The `[data]` table: vocabulary, corpora and instance creation.
    pub data: DataSection,
    /// The `[train]` table: optimiser, schedule and loop.
    pub train: TrainSection,
}

/// Why `precision = "bf16"` is refused on this process, naming the setting.
fn bf16_unavailable(setting: &str) -> String {
    let cpu = if cloze_kernels::gemm::bf16::cpu_has_bf16() {
        format!(
            "the CPU has AVX512-BF16 but this process runs the {} kernel path (CLOZE_KERNEL)",
            cloze_kernels::active()
        )
    } else {
        "this CPU has no AVX512-BF16 (vdpbf16ps)".to_string()
    };
    format!(
        "{setting} = \"bf16\" needs bf16 products in hardware, and {cpu}; use \"f32\" (bf16 would round the operands and run no faster)"
    )
}

serde_defaults! {
    d_heldout_every: usize = 50;
    d_max_seq: usize = 128;
    d_short: f64 = 0.1;
    d_mlm_prob: f64 = 0.15;
    d_max_pred: usize = 20;
    d_mask: f64 = 0.8;
    d_random: f64 = 0.1;
    d_keep: f64 = 0.1;
    d_dupe: usize = 1;
    d_wd: f32 = 0.01;
    d_beta1: f32 = 0.9;
    d_beta2: f32 = 0.999;
    d_eps: f32 = 1e-6;
    d_clip: f32 = 1.0;
    d_log: u64 = 10;
    d_eval_batches: usize = 20;
    d_keep_ckpt: usize = 2;
    d_nsp_weight: f32 = 1.0;
}

impl PretrainConfig {
    /// Parses TOML; `origin` names the source in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<PretrainConfig> {
        let mut cfg: PretrainConfig = toml::from_str(text).map_err(|e| Error::Format {
            path: origin.to_string(),
            detail: e.to_string(),
        })?;
        cfg.resolve_init_from().map_err(|e| Error::Format {
            path: origin.to_string(),
            detail: e.to_string(),
        })?;
        Ok(cfg)
    }

    /// With `model.init_from`, the vocabulary is the folder's `vocab.txt` and there is no
    /// preset; without it, both `model.preset` and `data.vocab` are required.
    fn resolve_init_from(&mut self) -> Result<()> {
        const OP: &str = "PretrainConfig";
        match &self.model.init_from {
            Some(dir) => {
                if !self.model.preset.is_empty() {
                    return invalid(
                        OP,
                        format!(
                            "model.preset {:?} and model.init_from both given; the folder's config.json sets the shape",
                            self.model.preset
                        ),
                    );
                }
                if !self.data.vocab.as_os_str().is_empty()
                    && self.data.vocab != dir.join("vocab.txt")
                {
                    return invalid(
                        OP,
                        format!(
                            "data.vocab {} given with model.init_from; the vocabulary is the folder's vocab.txt, omit data.vocab",
                            self.data.vocab.display()
                        ),
                    );
                }
                self.data.vocab = dir.join("vocab.txt");
            }
            None => {
                if self.model.preset.is_empty() {
                    return invalid(OP, "model.preset (or model.init_from) is required");
                }
                if self.data.vocab.as_os_str().is_empty() {
                    return invalid(OP, "data.vocab is required (unless model.init_from is set)");
                }
            }
        }
        Ok(())
    }

    /// Reads and parses a config file; relative data paths are resolved against the file's
    /// directory.
    pub fn from_file(path: impl AsRef<Path>) -> Result<PretrainConfig> {
        let path = path.as_ref();
        let text = crate::error::read_utf8(path)?;
        let mut cfg = PretrainConfig::from_toml_str(&text, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut cfg.output_dir);
        if let Some(d) = cfg.model.init_from.as_mut() {
            fix(d);
            cfg.data.vocab = d.join("vocab.txt");
        } else {
            fix(&mut cfg.data.vocab);
        }
        fix(&mut cfg.data.train);
        if let Some(h) = cfg.data.heldout.as_mut() {
            fix(h);
        }
        Ok(cfg)
    }

    /// The config as TOML (what [`PretrainConfig::from_toml_str`] reads back).
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    /// The BERT config for a vocabulary of `vocab_size`, validated.
    pub fn bert_config(&self, vocab_size: usize) -> Result<BertConfig> {
        let m = &self.model;
        let mut c = match &m.init_from {
            Some(dir) => {
                let shape = [
                    ("num_hidden_layers", m.num_hidden_layers.is_some()),
                    ("hidden_size", m.hidden_size.is_some()),
                    ("num_attention_heads", m.num_attention_heads.is_some()),
                    ("intermediate_size", m.intermediate_size.is_some()),
                    (
                        "max_position_embeddings",
                        m.max_position_embeddings.is_some(),
                    ),
                    ("hidden_act", m.hidden_act.is_some()),
                    ("pre_layer_norm", m.pre_layer_norm.is_some()),
                ];
                if let Some((key, _)) = shape.iter().find(|(_, set)| *set) {
                    return invalid(
                        "PretrainConfig",
                        format!("model.{key} cannot be changed with model.init_from (the shape comes from {})", dir.join("config.json").display()),
                    );
                }
                let mut c = BertConfig::from_file(dir.join("config.json"))?;
                if c.vocab_size != vocab_size {
                    return invalid(
                        "PretrainConfig",
                        format!(
                            "{} says vocab_size {} but its vocab.txt has {vocab_size} tokens",
                            dir.join("config.json").display(),
                            c.vocab_size
                        ),
                    );
                }
                c.architectures = vec!["BertForPreTraining".into()];
                c
            }
            None => BertConfig::preset(&m.preset)?,
        };
        c.vocab_size = vocab_size;
        if let Some(v) = m.num_hidden_layers {
            c.num_hidden_layers = v;
        }
        if let Some(v) = m.hidden_size {
            c.hidden_size = v;
        }
        if let Some(v) = m.num_attention_heads {
            c.num_attention_heads = v;
        }
        if let Some(v) = m.intermediate_size {
            c.intermediate_size = v;
        }
        if let Some(v) = m.hidden_dropout_prob {
            c.hidden_dropout_prob = v;
        }
        if let Some(v) = m.attention_probs_dropout_prob {
            c.attention_probs_dropout_prob = v;
        }
        if let Some(v) = m.max_position_embeddings {
            c.max_position_embeddings = v;
        }
        if let Some(v) = &m.hidden_act {
            c.hidden_act = v.clone();
        }
        if let Some(v) = m.initializer_range {
            c.initializer_range = v;
        }
        if let Some(v) = m.pre_layer_norm {
            c.set_pre_layer_norm(v);
        }
        c.is_decoder = self.train.objective == Objective::Ltr;
        c.validate()?;
        if self.data.max_seq_length > c.max_position_embeddings {
            return invalid(
                "PretrainConfig",
                format!(
                    "data.max_seq_length {} exceeds max_position_embeddings {}",
                    self.data.max_seq_length, c.max_position_embeddings
                ),
            );
        }
        Ok(c)
    }

    /// Instance creation settings.
    pub fn instance_config(&self) -> InstanceConfig {
        let d = &self.data;
        InstanceConfig {
            max_seq_length: d.max_seq_length,
            short_seq_prob: d.short_seq_prob,
            masked_lm_prob: d.masked_lm_prob,
            max_predictions_per_seq: d.max_predictions_per_seq,
            mask_split: MaskSplit {
                mask: d.mask,
                random: d.random,
                keep: d.keep,
            },
            whole_word_mask: d.whole_word_mask,
            dupe_factor: d.dupe_factor,
            next_sentence: self.train.objective == Objective::MlmNsp,
        }
    }

    /// Checks every value that does not need the files, naming the bad one (sizes against
    /// documented limits, e.g. [`MAX_BATCH_TOKENS`] and
    /// [`crate::pretrain::instances::MAX_DUPE_FACTOR`]).
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "PretrainConfig";
        self.instance_config().validate()?;
        let t = &self.train;
        if t.batch_size == 0 {
            return invalid(OP, "train.batch_size must be at least 1");
        }
        match t.batch_size.checked_mul(self.data.max_seq_length) {
            Some(n) if n <= MAX_BATCH_TOKENS => {}
            _ => {
                return invalid(
                    OP,
                    format!(
                        "train.batch_size {} × data.max_seq_length {} is above the limit of {MAX_BATCH_TOKENS} tokens per batch",
                        t.batch_size, self.data.max_seq_length
                    ),
                )
            }
        }
        if t.eval_batches == 0 {
            return invalid(
                OP,
                "train.eval_batches is 0: the held-out evaluation would measure nothing (use at least 1)",
            );
        }
        if let Some(m) = t.micro_batch_size {
            if m == 0 || !t.batch_size.is_multiple_of(m) {
                return invalid(
                    OP,
                    format!(
                        "train.micro_batch_size {m} must divide train.batch_size {}",
                        t.batch_size
                    ),
                );
            }
        }
        if t.objective != Objective::Ltr {
            let d = &self.data;
            for (name, v) in [
                (
                    "data.max_predictions_per_seq",
                    Some(d.max_predictions_per_seq),
                ),
                (
                    "data.heldout_max_predictions_per_seq",
                    d.heldout_max_predictions_per_seq,
                ),
            ] {
                if v == Some(0) {
                    return invalid(
                        OP,
                        format!(
                            "{name} is 0: a masked LM needs at least one prediction per sequence"
                        ),
                    );
                }
            }
        }
        if t.steps == 0 {
            return invalid(OP, "train.steps must be at least 1");
        }
        if t.warmup_steps > t.steps {
            return invalid(
                OP,
                format!(
                    "train.warmup_steps {} exceeds train.steps {}",
                    t.warmup_steps, t.steps
                ),
            );
        }
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            return invalid(
                OP,
                format!("train.learning_rate {} must be positive", t.learning_rate),
            );
        }
        if !(t.nsp_loss_weight.is_finite() && t.nsp_loss_weight >= 0.0) {
            return invalid(
                OP,
                format!(
                    "train.nsp_loss_weight {} must be a finite number ≥ 0",
                    t.nsp_loss_weight
                ),
            );
        }
        if t.max_grad_norm.is_nan() || t.max_grad_norm <= 0.0 {
            return invalid(
                OP,
                format!("train.max_grad_norm {} must be positive", t.max_grad_norm),
            );
        }
        if t.precision == Precision::Bf16 && !cloze_kernels::gemm::bf16::native() {
            return invalid(OP, bf16_unavailable("train.precision"));
        }
        if self.data.heldout.is_none() && self.data.heldout_every < 2 {
            return invalid(
                OP,
                format!(
                    "data.heldout_every {} must be at least 2",
                    self.data.heldout_every
                ),
            );
        }
        Ok(())
    }
}
