//! The task heads (masked LM, next sentence, classifier) and the models that combine them
//! with the encoder.

use super::encoder::{BertModel, BertOutput, ForwardOptions};
use super::input::BertInput;
use super::layer::{activation, dropout, LayerNorm, Linear};
use crate::autodiff::params::{ParamId, ParamStore};
use crate::autodiff::tape::{Tape, Var};
use crate::bert::config::{BertConfig, HiddenAct};
use crate::bert::init::{dropout_seed, DropoutSite};
use crate::error::{invalid, Result};
use crate::tensor::Tensor;

/// The masked-LM head: dense H→H + activation + LayerNorm, then logits against the (tied)
/// word-embedding table plus its own output bias.
#[derive(Clone, Debug)]
pub struct MlmHead {
    /// Dense H→H before the activation (`cls.predictions.transform.dense`).
    pub transform: Linear,
    /// LayerNorm after the activation (`cls.predictions.transform.LayerNorm`).
    pub layer_norm: LayerNorm,
    /// Output bias, `[V]` (`cls.predictions.bias`).
    pub bias: ParamId,
    /// The encoder's word-embedding table `[V, H]`, used as the (tied) decoder matrix.
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
        let b = tape.param(store, self.bias);
        tape.linear(&x, &e, &b)
    }
}

/// The next-sentence head: `[2, H]` on the pooled output; label 0 = IsNext, 1 = random.
#[derive(Clone, Debug)]
pub struct NspHead {
    /// `[2, H]` weights and `[2]` bias (`cls.seq_relationship`).
    pub linear: Linear,
}

impl NspHead {
    /// Adds `cls.seq_relationship.*`, initialised with `config.initializer_range`.
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
    /// `[K, H]` weights and `[K]` bias (`classifier.*`).
    pub linear: Linear,
    /// K, the number of outputs (1 for regression).
    pub num_labels: usize,
    dropout: f32,
}

impl ClassifierHead {
    /// Adds `classifier.*` with `num_labels` outputs (0 is an error); dropout follows
    /// `config.hidden_dropout_prob`.
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
    /// The encoder with its pooler (`bert.*` in HF files).
    pub bert: BertModel,
    /// The masked-LM head.
    pub mlm: MlmHead,
    /// The next-sentence head.
    pub nsp: NspHead,
}

/// Outputs of [`BertForPreTraining::forward`].
#[derive(Clone, Debug)]
pub struct PreTrainingOutput {
    /// The encoder's outputs (last hidden states `[B, T, H]`, pooled `[B, H]`).
    pub bert: BertOutput,
    /// `[n, V]` at the requested flat positions.
    pub mlm_logits: Var,
    /// `[B, 2]`.
    pub nsp_logits: Var,
}

impl BertForPreTraining {
    /// Builds the encoder (with pooler) and both heads, adding every parameter to `store`.
    pub fn new(config: &BertConfig, store: &mut ParamStore, seed: u64) -> Result<Self> {
        let bert = BertModel::new(config, store, seed)?;
        let mlm = MlmHead::new(&bert, store, seed)?;
        let nsp = NspHead::new(config, store, seed)?;
        Ok(BertForPreTraining { bert, mlm, nsp })
    }

    /// Runs the encoder, the MLM head at `mlm_flat_positions` (rows `b·T + p`, see
    /// [`MlmHead::flatten_positions`]) and the NSP head on the pooled output.
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
    /// The encoder with its pooler (`bert.*` in HF files).
    pub bert: BertModel,
    /// The classification (or regression) head.
    pub classifier: ClassifierHead,
}

impl BertForSequenceClassification {
    /// Builds the encoder (with pooler) and a `num_labels`-output head (0 is an error).
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
