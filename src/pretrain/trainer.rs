//! The pre-training loop: data, model, AdamW, checkpoints with exact resume, metrics, eval.
//!
//! Determinism: instances are created once from the seed (static masking, as the reference);
//! the order of instances in each epoch is a seeded permutation; dropout masks derive from the
//! seed and the step. A run is therefore a pure function of its config, and resuming from a
//! checkpoint (parameters, optimiser moments and step) continues bit-identically.
//!
//! Data parallelism: every rank builds the same global batch, processes its shard of it, and
//! scales its loss by its share of the global counts (masked positions, sequences), so the
//! summed gradients equal the global batch's gradient whatever the number of ranks.

use crate::autodiff::params::ParamStore;
use crate::autodiff::tape::{Tape, Var};
use crate::bert::model::{BertForPreTraining, BertInput, ForwardOptions};
use crate::bert::{save_pretrained, BertConfig, Checkpoint};
use crate::distributed::{shard, Collective, GradSync, SingleProcess};
use crate::error::{invalid, Error, Result};
use crate::optim::adamw::bert_decays;
use crate::optim::{AdamW, AdamWConfig, LinearWarmupDecay};
use crate::pretrain::config::{LmBiasInit, Objective, PositionInit, PretrainConfig};
use crate::pretrain::corpus::{read_corpus_file, split_by_document, Document};
use crate::pretrain::instances::{
    create_instances_with_stats, Instance, SpecialTokens, TokenDocument,
};
use crate::tensor::Tensor;
use crate::tokenizer::Tokenizer;
use crate::train::checkpoint::{load_optimizer, save_optimizer, write_atomic, CheckpointDir};
use crate::train::metrics::MetricsLog;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Label value of positions that are not predicted.
pub const IGNORE: i32 = -100;

/// One step's (or one evaluation's) totals.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    pub lm_loss_sum: f64,
    pub lm_correct: f64,
    pub lm_count: f64,
    pub nsp_loss_sum: f64,
    pub nsp_correct: f64,
    pub nsp_count: f64,
    pub tokens: f64,
    /// The same predicted positions scored by the training targets' unigram frequencies alone
    /// (see [`ContextFree`]).
    pub lm_unigram_loss_sum: f64,
    /// … and by the best predictor that reads no context (see [`ContextFree`]).
    pub lm_context_free_loss_sum: f64,
}

impl Totals {
    fn as_array(&self) -> [f64; 9] {
        [
            self.lm_loss_sum,
            self.lm_correct,
            self.lm_count,
            self.nsp_loss_sum,
            self.nsp_correct,
            self.nsp_count,
            self.tokens,
            self.lm_unigram_loss_sum,
            self.lm_context_free_loss_sum,
        ]
    }
    fn from_array(a: [f64; 9]) -> Totals {
        Totals {
            lm_loss_sum: a[0],
            lm_correct: a[1],
            lm_count: a[2],
            nsp_loss_sum: a[3],
            nsp_correct: a[4],
            nsp_count: a[5],
            tokens: a[6],
            lm_unigram_loss_sum: a[7],
            lm_context_free_loss_sum: a[8],
        }
    }
    /// Mean loss of the unigram predictor over the same predicted positions (the "unigram
    /// entropy of the same held-out text").
    pub fn lm_unigram_loss(&self) -> f64 {
        self.lm_unigram_loss_sum / self.lm_count.max(1.0)
    }
    /// Mean loss of the best context-free predictor over the same predicted positions.
    pub fn lm_context_free_loss(&self) -> f64 {
        self.lm_context_free_loss_sum / self.lm_count.max(1.0)
    }
    fn add(&mut self, o: &Totals) {
        *self = Totals::from_array(std::array::from_fn(|i| {
            self.as_array()[i] + o.as_array()[i]
        }));
    }
    /// Mean LM loss over predicted positions.
    pub fn lm_loss(&self) -> f64 {
        self.lm_loss_sum / self.lm_count.max(1.0)
    }
    pub fn lm_accuracy(&self) -> f64 {
        self.lm_correct / self.lm_count.max(1.0)
    }
    pub fn nsp_loss(&self) -> f64 {
        self.nsp_loss_sum / self.nsp_count.max(1.0)
    }
    pub fn nsp_accuracy(&self) -> f64 {
        self.nsp_correct / self.nsp_count.max(1.0)
    }
}

/// Tokenised train and held-out data.
pub struct PretrainData {
    pub train: Vec<Instance>,
    pub heldout: Vec<Instance>,
    pub special: SpecialTokens,
}

fn tokenize_docs(tok: &Tokenizer, docs: &[Document]) -> Vec<TokenDocument> {
    docs.par_iter()
        .map(|d| d.iter().map(|s| tok.tokenize_ids(s)).collect())
        .collect()
}

/// The Transformer's sinusoidal position table `[positions, hidden]` (sines in even columns,
/// cosines in odd ones, wavelengths from 2π to 10000·2π), scaled so its values have standard
/// deviation `std`.
pub fn sinusoidal_positions(positions: usize, hidden: usize, std: f32) -> Vec<f32> {
    let scale = std * std::f32::consts::SQRT_2; // a sine over whole periods has σ 1/√2
    let mut out = vec![0.0f32; positions * hidden];
    for pos in 0..positions {
        for i in 0..hidden {
            let freq = (-(10000f64.ln()) * (2 * (i / 2)) as f64 / hidden as f64).exp();
            let angle = pos as f64 * freq;
            let v = if i % 2 == 0 { angle.sin() } else { angle.cos() };
            out[pos * hidden + i] = scale * v as f32;
        }
    }
    out
}

/// Baselines that read no context, scored on exactly the positions the model is scored on.
///
/// `unigram` is `ln p(w)` of the training targets ([`unigram_log_prior`]). The unigram loss
/// of a position is `−ln p(label)`. The context-free loss is that of the best predictor that
/// sees only the input token at the predicted position: with the MASK/KEEP/RANDOM shares
/// `m/k/r` and a random replacement drawn uniformly from the `V` ids, an input `[MASK]`
/// leaves `p(w)`, and any other input `x` gives
/// `q(w | x) = (k·p(x)·[w = x] + r·p(w)/V) / (k·p(x) + r/V)`: under 80/10/10 masking a
/// model can learn to copy the visible token without reading any context, and this floor
/// says how far that alone goes. For LTR both are the unigram loss.
#[derive(Clone, Debug)]
pub struct ContextFree {
    pub unigram: Vec<f32>,
    keep: f64,
    random: f64,
    mask_id: u32,
    copy: bool,
}

impl ContextFree {
    /// The baselines of a run's training data.
    pub fn new(data: &PretrainData, cfg: &PretrainConfig, vocab_size: usize) -> ContextFree {
        let d = &cfg.data;
        ContextFree {
            unigram: unigram_log_prior(&data.train, cfg.train.objective, vocab_size),
            keep: d.keep,
            random: d.random,
            mask_id: data.special.mask,
            copy: cfg.train.objective != Objective::Ltr,
        }
    }

    fn log_p(&self, id: u32) -> f64 {
        self.unigram
            .get(id as usize)
            .map_or(f64::NEG_INFINITY, |&l| l as f64)
    }

    /// `−ln p(label)`.
    pub fn unigram_loss(&self, label: u32) -> f64 {
        -self.log_p(label)
    }

    /// `−ln q(label | input)`.
    pub fn context_free_loss(&self, input: u32, label: u32) -> f64 {
        let lp = self.log_p(label);
        if !self.copy || input == self.mask_id {
            return -lp;
        }
        let v = self.unigram.len() as f64;
        let px = self.log_p(input).exp();
        let z = self.keep * px + self.random / v;
        if z <= 0.0 {
            return -lp;
        }
        let same = if input == label { self.keep * px } else { 0.0 };
        -((same + self.random * lp.exp() / v) / z).ln()
    }
}

/// `ln p(w)` of the training targets, add-one smoothed over the vocabulary: the masked
/// labels for MLM, every next token for LTR.
pub fn unigram_log_prior(train: &[Instance], objective: Objective, vocab_size: usize) -> Vec<f32> {
    let mut counts = vec![1.0f64; vocab_size];
    let mut add = |ids: &[u32]| {
        for &id in ids {
            if let Some(c) = counts.get_mut(id as usize) {
                *c += 1.0;
            }
        }
    };
    for inst in train {
        match objective {
            Objective::Ltr => add(inst.tokens.get(1..).unwrap_or(&[])),
            _ => add(&inst.masked_labels),
        }
    }
    let total: f64 = counts.iter().sum();
    counts.iter().map(|c| (c / total).ln() as f32).collect()
}

/// LTR instances: each document's tokens in windows of `max_seq_length − 2`, laid out as
/// `[CLS] tokens [SEP]`; every position predicts the next token.
fn ltr_instances(
    docs: &[TokenDocument],
    max_seq_length: usize,
    special: SpecialTokens,
    seed: u64,
) -> Vec<Instance> {
    let win = max_seq_length - 2;
    let mut out = Vec::new();
    for d in docs {
        let flat: Vec<u32> = d.iter().flatten().copied().collect();
        for chunk in flat.chunks(win) {
            if chunk.len() < 2 {
                continue;
            }
            let mut tokens = Vec::with_capacity(chunk.len() + 2);
            tokens.push(special.cls);
            tokens.extend_from_slice(chunk);
            tokens.push(special.sep);
            out.push(Instance {
                segment_ids: vec![0; tokens.len()],
                tokens,
                is_random_next: false,
                masked_positions: vec![],
                masked_labels: vec![],
            });
        }
    }
    out.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    out
}

/// The config's vocabulary, learned from the training corpus first when the file is missing and
/// `data.train_vocab_size` is set (every rank learns the same one; rank 0 writes it).
pub fn load_or_train_vocab(cfg: &PretrainConfig, write: bool) -> Result<Tokenizer> {
    let path = &cfg.data.vocab;
    if path.exists() {
        return Tokenizer::from_vocab_file(path);
    }
    let Some(size) = cfg.data.train_vocab_size else {
        return Tokenizer::from_vocab_file(path);
    };
    let mut t = crate::tokenizer::Trainer::new(crate::tokenizer::TrainerConfig {
        vocab_size: size,
        min_frequency: 2,
        progress: write,
        ..crate::tokenizer::TrainerConfig::default()
    });
    t.feed_file(&cfg.data.train)?;
    let vocab = t.train()?;
    if write {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                path: dir.display().to_string(),
                source: e,
            })?;
        }
        vocab.save(path)?;
    }
    Ok(Tokenizer::new(vocab))
}

/// Reads, tokenises and turns the corpora into instances.
pub fn prepare_data(cfg: &PretrainConfig, tok: &Tokenizer) -> Result<PretrainData> {
    let v = tok.vocab();
    let mask = v.mask_id().ok_or_else(|| Error::Invalid {
        op: "pretrain",
        detail: format!(
            "the vocabulary {} has no [MASK] token",
            cfg.data.vocab.display()
        ),
    })?;
    let special = SpecialTokens {
        cls: v.cls_id(),
        sep: v.sep_id(),
        mask,
        vocab_size: v.len() as u32,
    };
    let mut docs = read_corpus_file(&cfg.data.train)?;
    if let Some(n) = cfg.data.max_documents {
        docs.truncate(n);
    }
    if docs.is_empty() {
        return invalid(
            "pretrain",
            format!("the corpus {} has no documents", cfg.data.train.display()),
        );
    }
    if cfg.train.objective == Objective::MlmNsp && cfg.data.heldout.is_none() && docs.len() < 2 {
        return invalid(
            "pretrain",
            format!(
                "the corpus {} has one document: next-sentence prediction needs at least two to draw random next sentences from",
                cfg.data.train.display()
            ),
        );
    }
    let (train_docs, held_docs) = match &cfg.data.heldout {
        Some(p) => (docs, read_corpus_file(p)?),
        None => split_by_document(docs, cfg.data.heldout_every, 0)?,
    };
    if train_docs.is_empty() {
        return invalid(
            "pretrain",
            format!(
                "holding out every {}-th document leaves no training documents",
                cfg.data.heldout_every
            ),
        );
    }
    let train_tok = tokenize_docs(tok, &train_docs);
    let held_tok = tokenize_docs(tok, &held_docs);
    let ic = cfg.instance_config();
    let seed = cfg.train.seed;
    let vocab_tokens = v.tokens();
    let is_sub = |id: u32| {
        vocab_tokens
            .get(id as usize)
            .is_some_and(|t| t.starts_with("##"))
    };
    let (train, heldout) = if cfg.train.objective == Objective::Ltr {
        (
            ltr_instances(&train_tok, ic.max_seq_length, special, seed),
            ltr_instances(&held_tok, ic.max_seq_length, special, seed ^ 0xE7A1),
        )
    } else {
        let (train, _) = create_instances_with_stats(&train_tok, &ic, special, &is_sub, seed)?;
        let held_cfg = crate::pretrain::instances::InstanceConfig {
            dupe_factor: 1,
            masked_lm_prob: cfg.data.heldout_masked_lm_prob.unwrap_or(ic.masked_lm_prob),
            max_predictions_per_seq: cfg
                .data
                .heldout_max_predictions_per_seq
                .unwrap_or(ic.max_predictions_per_seq),
            ..ic
        };
        held_cfg.validate()?;
        let heldout = if held_tok.len() >= 2 || !held_cfg.next_sentence {
            create_instances_with_stats(&held_tok, &held_cfg, special, &is_sub, seed ^ 0xE7A1)?.0
        } else {
            vec![]
        };
        (train, heldout)
    };
    if train.is_empty() {
        return invalid(
            "pretrain",
            "no training instances could be made from the corpus",
        );
    }
    Ok(PretrainData {
        train,
        heldout,
        special,
    })
}

/// A batch laid out for the model.
struct Batch {
    ids: Vec<u32>,
    types: Vec<u32>,
    mask: Vec<u32>,
    batch: usize,
    seq: usize,
    /// Flat rows `b·seq + p` that are predicted, and their labels.
    lm_rows: Vec<u32>,
    lm_labels: Vec<i32>,
    nsp_labels: Vec<i32>,
}

fn make_batch(insts: &[&Instance], objective: Objective, pad: u32) -> Batch {
    let seq = insts.iter().map(|i| i.tokens.len()).max().unwrap_or(1);
    let b = insts.len();
    let mut out = Batch {
        ids: vec![pad; b * seq],
        types: vec![0; b * seq],
        mask: vec![0; b * seq],
        batch: b,
        seq,
        lm_rows: vec![],
        lm_labels: vec![],
        nsp_labels: vec![],
    };
    for (r, inst) in insts.iter().enumerate() {
        let n = inst.tokens.len();
        out.ids[r * seq..r * seq + n].copy_from_slice(&inst.tokens);
        out.types[r * seq..r * seq + n].copy_from_slice(&inst.segment_ids);
        out.mask[r * seq..r * seq + n].fill(1);
        match objective {
            Objective::Ltr => {
                for p in 0..n - 1 {
                    out.lm_rows.push((r * seq + p) as u32);
                    out.lm_labels.push(inst.tokens[p + 1] as i32);
                }
            }
            _ => {
                for (&p, &l) in inst.masked_positions.iter().zip(&inst.masked_labels) {
                    out.lm_rows.push((r * seq) as u32 + p);
                    out.lm_labels.push(l as i32);
                }
            }
        }
        out.nsp_labels.push(i32::from(inst.is_random_next));
    }
    out
}

/// (Σ −log p(label), correct argmax count) over logits rows whose label is not [`IGNORE`]. The
/// loss comes from the cross-entropy kernel (its vector path, no gradient), so scoring costs
/// one pass over the logits rather than a scalar `exp` per logit.
fn score(logits: &Tensor, labels: &[i32]) -> (f64, f64) {
    let c = *logits.shape().last().unwrap_or(&1);
    let loss = cloze_kernels::cross_entropy::cross_entropy(logits.data(), c, labels, IGNORE, None);
    (loss.loss_sum, correct_count(logits, labels))
}

/// How many rows' argmax is their label (rows labelled [`IGNORE`] are skipped).
fn correct_count(logits: &Tensor, labels: &[i32]) -> f64 {
    let c = *logits.shape().last().unwrap_or(&1);
    let mut correct = 0.0;
    for (row, &l) in logits.data().chunks_exact(c).zip(labels) {
        if l >= 0 {
            correct += f64::from(crate::tensor::argmax(row) == l as usize);
        }
    }
    correct
}

fn mix(a: u64, b: u64) -> u64 {
    crate::bert::init::mix64(a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The pre-training run.
pub struct Pretrainer<'c> {
    pub cfg: PretrainConfig,
    pub bert_config: BertConfig,
    pub model: BertForPreTraining,
    pub store: ParamStore,
    pub opt: AdamW,
    pub schedule: LinearWarmupDecay,
    pub data: std::sync::Arc<PretrainData>,
    pub step: u64,
    tape: Tape,
    comm: &'c dyn Collective,
    pad: u32,
    /// Seconds spent in gradient synchronisation, summed.
    pub comm_seconds: f64,
    /// The context-free baselines every evaluation is scored against.
    pub baselines: std::sync::Arc<ContextFree>,
    /// Where [`Pretrainer::run_until`] shows its progress: `None` (the default) draws its own
    /// bar on rank 0; a caller running several trainings (paper-repro) passes one of its own
    /// bars, or `ProgressBar::hidden()`. Its length and position are set to the steps.
    pub progress: Option<indicatif::ProgressBar>,
    /// Start from step 0: [`Pretrainer::run_until`] deletes the run's checkpoints, under the
    /// output folder's lock (so a run still writing there is never disturbed).
    pub fresh: bool,
}

impl<'c> Pretrainer<'c> {
    /// Builds everything from a config; fails before any training on bad input.
    pub fn new(cfg: PretrainConfig, comm: &'c dyn Collective) -> Result<Pretrainer<'c>> {
        cfg.validate()?;
        let tok = match &cfg.model.init_from {
            Some(dir) => crate::bert::folder::load_tokenizer(dir)?,
            None => load_or_train_vocab(&cfg, comm.rank() == 0)?,
        };
        let bert_config = cfg.bert_config(tok.vocab().len())?;
        let data = prepare_data(&cfg, &tok)?;
        let mut store = ParamStore::new();
        let model = BertForPreTraining::new(&bert_config, &mut store, cfg.train.seed)?;
        let baselines = ContextFree::new(&data, &cfg, bert_config.vocab_size);
        if cfg.train.init_lm_bias == LmBiasInit::Unigram {
            let prior = baselines.unigram.clone();
            store.set_value(
                model.mlm.bias,
                Tensor::from_vec(prior, &[bert_config.vocab_size])?,
            )?;
        }
        if cfg.train.init_positions == PositionInit::Sinusoidal {
            let (p, h) = (bert_config.max_position_embeddings, bert_config.hidden_size);
            let table = sinusoidal_positions(p, h, bert_config.initializer_range);
            store.set_value(
                model.bert.embeddings.position,
                Tensor::from_vec(table, &[p, h])?,
            )?;
        }
        if let Some(dir) = &cfg.model.init_from {
            // after the initialisers above, so the folder's tensors win where it has them
            let (_, ckpt) = crate::bert::checkpoint::load_pretrained(dir)?;
            ckpt.load_into_with(
                &mut store,
                &crate::bert::checkpoint::LoadOptions {
                    allow_missing: vec!["cls.".into(), "pooler.".into()],
                    allow_unused: vec!["classifier.".into(), "qa_outputs.".into()],
                },
            )?;
        }
        let t = &cfg.train;
        let opt = AdamW::new(
            AdamWConfig {
                beta1: t.beta1,
                beta2: t.beta2,
                eps: t.adam_eps,
                weight_decay: t.weight_decay,
                bias_correction: t.bias_correction,
            },
            &store,
            bert_decays,
        )?;
        let schedule = LinearWarmupDecay::new(t.learning_rate, t.warmup_steps, t.steps)?;
        let size = comm.size();
        if !t.batch_size.is_multiple_of(size) {
            return invalid(
                "pretrain",
                format!(
                    "train.batch_size {} is not divisible by the {size} ranks",
                    t.batch_size
                ),
            );
        }
        Ok(Pretrainer {
            pad: tok.vocab().pad_id(),
            cfg,
            bert_config,
            model,
            store,
            opt,
            schedule,
            data: std::sync::Arc::new(data),
            step: 0,
            tape: Tape::new(),
            comm,
            comm_seconds: 0.0,
            baselines: std::sync::Arc::new(baselines),
            progress: None,
            fresh: false,
        })
    }

    /// Single-process convenience.
    pub fn single(cfg: PretrainConfig) -> Result<Pretrainer<'static>> {
        static SINGLE: SingleProcess = SingleProcess;
        Pretrainer::new(cfg, &SINGLE)
    }

    pub fn checkpoints(&self) -> Result<CheckpointDir> {
        CheckpointDir::new(
            self.cfg.output_dir.join("checkpoints"),
            self.cfg.train.keep_checkpoints,
        )
    }

    /// Indices of the global batch for `step`: a seeded permutation per epoch.
    fn batch_indices(&self, step: u64) -> Vec<usize> {
        let n = self.data.train.len();
        let b = self.cfg.train.batch_size;
        let mut out = Vec::with_capacity(b);
        let mut perm_epoch = u64::MAX;
        let mut perm: Vec<usize> = Vec::new();
        for i in 0..b {
            let flat = step as usize * b + i;
            let epoch = (flat / n) as u64;
            if epoch != perm_epoch {
                perm = (0..n).collect();
                perm.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(mix(
                    self.cfg.train.seed,
                    epoch,
                )));
                perm_epoch = epoch;
            }
            out.push(perm[flat % n]);
        }
        out
    }

    /// Forward (and, when training, backward) of instances; `lm_total` and `seq_total` are the
    /// global counts the losses are normalised by. With `reduce` (the last micro-batch of a
    /// step) the backward also sums the accumulated gradients over ranks, overlapped with the
    /// backward where the backend can; the flag returned says whether that happened.
    #[allow(clippy::too_many_arguments)]
    fn run_batch(
        &mut self,
        insts: &[&Instance],
        lm_total: f64,
        seq_total: f64,
        seed: u64,
        train: bool,
        reduce: bool,
    ) -> Result<(Totals, bool)> {
        let objective = self.cfg.train.objective;
        let b = make_batch(insts, objective, self.pad);
        self.tape.reset();
        self.tape.set_training(train);
        self.tape.set_grad_enabled(train);
        let input = BertInput::new(&b.ids, b.batch, b.seq)
            .with_token_types(&b.types)
            .with_attention_mask(&b.mask);
        let opts = ForwardOptions {
            seed,
            output_hidden_states: false,
        };
        let tape = &mut self.tape;
        let out = self.model.bert.forward(tape, &self.store, &input, &opts)?;
        let mut totals = Totals {
            tokens: b.mask.iter().map(|&m| m as f64).sum(),
            ..Totals::default()
        };
        let mut loss: Option<Var> = None;
        if !b.lm_rows.is_empty() {
            let logits =
                self.model
                    .mlm
                    .forward(tape, &self.store, &out.last_hidden_state, &b.lm_rows)?;
            totals.lm_count = b.lm_labels.len() as f64;
            if train {
                // the loss the gradient comes from also gives the logged sum (the kernel's
                // pass over the logits is not run a second time)
                let mean = tape.cross_entropy(&logits, &b.lm_labels, IGNORE)?;
                totals.lm_loss_sum = f64::from(mean.value().item()?) * totals.lm_count;
                totals.lm_correct = correct_count(logits.value(), &b.lm_labels);
                loss = Some(tape.mul_scalar(&mean, (totals.lm_count / lm_total) as f32)?);
            } else {
                let (l, c) = score(logits.value(), &b.lm_labels);
                totals.lm_loss_sum = l;
                totals.lm_correct = c;
            }
            if !train {
                for (&row, &label) in b.lm_rows.iter().zip(&b.lm_labels) {
                    let label = label as u32;
                    totals.lm_unigram_loss_sum += self.baselines.unigram_loss(label);
                    totals.lm_context_free_loss_sum +=
                        self.baselines.context_free_loss(b.ids[row as usize], label);
                }
            }
        }
        if objective == Objective::MlmNsp {
            let pooled = out.pooled.clone().expect("pre-training model has a pooler");
            let logits = self.model.nsp.forward(tape, &self.store, &pooled)?;
            let (l, c) = score(logits.value(), &b.nsp_labels);
            totals.nsp_loss_sum = l;
            totals.nsp_correct = c;
            totals.nsp_count = b.batch as f64;
            let weight = f64::from(self.cfg.train.nsp_loss_weight);
            if train && weight > 0.0 {
                let mean = tape.cross_entropy(&logits, &b.nsp_labels, IGNORE)?;
                let scaled =
                    tape.mul_scalar(&mean, (weight * b.batch as f64 / seq_total) as f32)?;
                loss = Some(match loss {
                    Some(l) => tape.add(&l, &scaled)?,
                    None => scaled,
                });
            }
        }
        let mut reduced = false;
        if let (true, Some(loss)) = (train, loss) {
            if reduce {
                let s = self
                    .comm
                    .backward_and_reduce(&self.tape, &loss, &mut self.store)?;
                self.comm_seconds += s.seconds;
                reduced = true;
            } else {
                let grads = self.tape.backward(&loss)?;
                self.store.accumulate(&grads)?;
            }
        }
        Ok((totals, reduced))
    }

    /// One optimisation step; returns the global totals and the gradient norm before clipping.
    pub fn train_step(&mut self) -> Result<(Totals, f32)> {
        let step = self.step;
        let idx = self.batch_indices(step);
        let data = self.data.clone();
        let global: Vec<&Instance> = idx.iter().map(|&i| &data.train[i]).collect();
        let lm_total: f64 = match self.cfg.train.objective {
            Objective::Ltr => global.iter().map(|i| (i.tokens.len() - 1) as f64).sum(),
            _ => global.iter().map(|i| i.masked_positions.len() as f64).sum(),
        };
        let seq_total = global.len() as f64;
        let mine = shard(global.len(), self.comm.rank(), self.comm.size());
        let local: Vec<&Instance> = global[mine.clone()].to_vec();
        let micro = self
            .cfg
            .train
            .micro_batch_size
            .unwrap_or(local.len())
            .max(1);
        self.store.zero_grads();
        let mut totals = Totals::default();
        let chunks: Vec<&[&Instance]> = local.chunks(micro).collect();
        let mut reduced = false;
        for (k, chunk) in chunks.iter().enumerate() {
            // the dropout seed depends on the global position of the micro-batch
            let seed = mix(
                mix(self.cfg.train.seed, step),
                (mine.start / micro + k) as u64,
            );
            let last = k + 1 == chunks.len();
            let (t, r) = self.run_batch(chunk, lm_total.max(1.0), seq_total, seed, true, last)?;
            reduced |= r;
            totals.add(&t);
        }
        if !reduced {
            let s = GradSync::default().sync(self.comm, &mut self.store);
            self.comm_seconds += s.seconds;
        }
        let mut arr = totals.as_array();
        self.comm.all_reduce_sum_f64(&mut arr);
        let totals = Totals::from_array(arr);
        let norm = self.store.clip_grad_norm(self.cfg.train.max_grad_norm)?;
        crate::train::ensure_finite_step(
            step + 1,
            &[
                ("lm_loss", totals.lm_loss_sum),
                ("nsp_loss", totals.nsp_loss_sum),
            ],
            norm,
            &[&self.store],
        )?;
        let lr = self.schedule.lr(step);
        self.opt.step(&mut self.store, lr)?;
        self.step += 1;
        Ok((totals, norm))
    }

    /// Held-out evaluation over up to `eval_batches` batches (no dropout, no gradients).
    pub fn evaluate(&mut self) -> Result<Totals> {
        let b = self.cfg.train.batch_size;
        let n = self
            .data
            .heldout
            .len()
            .min(b.saturating_mul(self.cfg.train.eval_batches));
        let mine = shard(n, self.comm.rank(), self.comm.size());
        let mut totals = Totals::default();
        let data = self.data.clone();
        let held = &data.heldout[mine];
        for chunk in held.chunks(self.cfg.train.micro_batch_size.unwrap_or(b).max(1)) {
            let refs: Vec<&Instance> = chunk.iter().collect();
            let (t, _) = self.run_batch(&refs, 1.0, 1.0, 0, false, false)?;
            totals.add(&t);
        }
        self.tape.set_grad_enabled(true);
        let mut arr = totals.as_array();
        self.comm.all_reduce_sum_f64(&mut arr);
        let totals = Totals::from_array(arr);
        if totals.lm_count == 0.0 {
            // a loss over no positions would read as a perfect model (perplexity 1.00)
            return invalid(
                "evaluate",
                format!(
                    "the held-out evaluation covered no predicted positions ({n} held-out instances read, train.eval_batches {}, train.batch_size {b})",
                    self.cfg.train.eval_batches
                ),
            );
        }
        Ok(totals)
    }

    /// Writes a checkpoint of the current step (rank 0 only).
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        crate::train::ensure_finite_weights(&[&self.store], "a checkpoint")?;
        let ck = self.checkpoints()?;
        ck.save(self.step, |dir| {
            save_pretrained(dir, &self.bert_config, &self.store)?;
            if let Ok(ms) = std::env::var("CLOZE_CHECKPOINT_PAUSE_MS") {
                // test hook: widen the window in which a crash leaves a half-written checkpoint
                std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(0)));
            }
            save_optimizer(&dir.join("optimizer.safetensors"), &self.store, &self.opt)?;
            let vocab_sha256 = crate::train::checkpoint::sha256_file(&self.cfg.data.vocab)?;
            let state = json!({
                "step": self.step,
                "config": self.cfg,
                "vocab_sha256": vocab_sha256,
            });
            write_atomic(
                &dir.join("trainer_state.json"),
                serde_json::to_string_pretty(&state).unwrap().as_bytes(),
            )?;
            std::fs::copy(&self.cfg.data.vocab, dir.join("vocab.txt")).map_err(|e| Error::Io {
                path: self.cfg.data.vocab.display().to_string(),
                source: e,
            })?;
            Ok(())
        })
    }

    /// Restores the last complete checkpoint, if any; errors if it was made with another
    /// config. Returns the restored step.
    pub fn resume(&mut self) -> Result<Option<u64>> {
        let Some((step, dir)) = self.checkpoints()?.latest()? else {
            return Ok(None);
        };
        let state_path = dir.join("trainer_state.json");
        let text = std::fs::read_to_string(&state_path).map_err(|e| Error::Io {
            path: state_path.display().to_string(),
            source: e,
        })?;
        let state: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Format {
            path: state_path.display().to_string(),
            detail: e.to_string(),
        })?;
        let saved: PretrainConfig =
            serde_json::from_value(state["config"].clone()).map_err(|e| Error::Format {
                path: state_path.display().to_string(),
                detail: e.to_string(),
            })?;
        let differ = config_differences(&saved, &self.cfg);
        if !differ.is_empty() {
            return invalid(
                "resume",
                format!(
                    "checkpoint {} was made with a different config; differing keys:\n{}",
                    dir.display(),
                    differ.join("\n")
                ),
            );
        }
        // the vocabulary is part of the run's identity: the same path with other contents
        // would give the ids another meaning
        if let Some(want) = state.get("vocab_sha256").and_then(|v| v.as_str()) {
            let got = crate::train::checkpoint::sha256_file(&self.cfg.data.vocab)?;
            if got != want {
                return invalid(
                    "resume",
                    format!(
                        "{} has changed since checkpoint {} was written (sha256 {got}, the checkpoint's is {want}); the checkpoint's own copy is {}",
                        self.cfg.data.vocab.display(),
                        dir.display(),
                        dir.join("vocab.txt").display()
                    ),
                );
            }
        }
        let ckpt = Checkpoint::read(dir.join("model.safetensors"))?;
        ckpt.load_into(&mut self.store)?;
        load_optimizer(
            &dir.join("optimizer.safetensors"),
            &self.store,
            &mut self.opt,
        )?;
        self.step = step;
        Ok(Some(step))
    }

    /// Runs to `train.steps`, resuming from the last checkpoint. Rank 0 writes the metrics
    /// log, the progress bar and checkpoints. Returns the last held-out evaluation (all zeros
    /// when there is no held-out data, e.g. a held-out split of one document under NSP).
    pub fn run(&mut self) -> Result<Totals> {
        self.run_until(self.cfg.train.steps)
    }

    /// Like [`Pretrainer::run`] but stops after step `stop` (at most `train.steps`), as an
    /// interrupted run would; the schedule still follows `train.steps`.
    pub fn run_until(&mut self, stop: u64) -> Result<Totals> {
        let rank0 = self.comm.rank() == 0;
        let out = self.cfg.output_dir.clone();
        std::fs::create_dir_all(&out).map_err(|e| Error::Io {
            path: out.display().to_string(),
            source: e,
        })?;
        // rank 0 writes everything: it holds the folder's lock for the whole run
        let _lock = if rank0 {
            Some(crate::train::lock::RunLock::acquire(&out)?)
        } else {
            None
        };
        if self.fresh {
            let ck = self.checkpoints()?;
            if rank0 && ck.root().exists() {
                std::fs::remove_dir_all(ck.root()).map_err(|e| Error::Io {
                    path: ck.root().display().to_string(),
                    source: e,
                })?;
            }
            self.fresh = false;
            self.comm.barrier();
        }
        let resumed = self.resume()?;
        let metrics_path = out.join("metrics.jsonl");
        let mut log = if rank0 {
            write_atomic(
                &out.join("config.toml"),
                self.cfg.to_toml_string().as_bytes(),
            )?;
            MetricsLog::truncate_after_step(&metrics_path, resumed.unwrap_or(0))?;
            if resumed.is_none() {
                let _ = std::fs::remove_file(&metrics_path);
            }
            Some(MetricsLog::append(&metrics_path)?)
        } else {
            None
        };
        let t = self.cfg.train.clone();
        let own_bar = self.progress.is_none();
        let bar = if let (true, Some(pb)) = (rank0, self.progress.clone()) {
            pb.set_length(t.steps);
            pb.set_position(self.step);
            pb
        } else if rank0 {
            let pb = indicatif::ProgressBar::new(t.steps);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} steps  {msg}  eta {eta}",
                )
                .expect("valid template"),
            );
            pb.set_position(self.step);
            pb
        } else {
            indicatif::ProgressBar::hidden()
        };
        let mut window = Totals::default();
        let mut window_start = Instant::now();
        let mut last_eval = None;
        while self.step < t.steps.min(stop) {
            let lr = self.schedule.lr(self.step);
            let (tot, norm) = self.train_step()?;
            window.add(&tot);
            let step = self.step;
            if step.is_multiple_of(t.log_every.max(1)) || step == t.steps {
                let secs = window_start.elapsed().as_secs_f64();
                let tps = window.tokens / secs.max(1e-9);
                bar.set_message(format!(
                    "lm {:.3}  nsp {:.3}  {:.0} tok/s",
                    window.lm_loss(),
                    window.nsp_loss(),
                    tps
                ));
                if let Some(log) = log.as_mut() {
                    log.write(&json!({
                        "step": step, "lm_loss": window.lm_loss(), "lm_accuracy": window.lm_accuracy(),
                        "nsp_loss": window.nsp_loss(), "nsp_accuracy": window.nsp_accuracy(),
                        "learning_rate": lr, "grad_norm": norm, "tokens_per_second": tps,
                        "comm_seconds": self.comm_seconds,
                    }))?;
                }
                window = Totals::default();
                window_start = Instant::now();
            }
            let eval_due =
                (t.eval_every > 0 && step.is_multiple_of(t.eval_every)) || step == t.steps;
            if eval_due && !self.data.heldout.is_empty() {
                let e = self.evaluate()?;
                last_eval = Some(e);
                if let Some(log) = log.as_mut() {
                    log.write(&json!({
                        "step": step, "eval_lm_loss": e.lm_loss(),
                        "eval_lm_perplexity": e.lm_loss().exp(),
                        "eval_lm_unigram_loss": e.lm_unigram_loss(),
                        "eval_lm_context_free_loss": e.lm_context_free_loss(),
                        "eval_lm_accuracy": e.lm_accuracy(),
                        "eval_nsp_accuracy": e.nsp_accuracy(),
                    }))?;
                }
            }
            if rank0
                && ((t.checkpoint_every > 0 && step.is_multiple_of(t.checkpoint_every))
                    || step == t.steps)
            {
                self.save_checkpoint()?;
            }
            self.comm.barrier();
            bar.set_position(step);
        }
        if own_bar {
            bar.finish();
        }
        // A run resumed at its last step trained nothing here: evaluate the finished model, so
        // rerunning a finished run reports its result instead of zeros.
        let last_eval = match last_eval {
            Some(e) => e,
            None if self.step == t.steps && !self.data.heldout.is_empty() => self.evaluate()?,
            None => Totals::default(),
        };
        if rank0 {
            crate::train::ensure_finite_weights(&[&self.store], "the final model")?;
            save_pretrained(out.join("final"), &self.bert_config, &self.store)?;
            let vocab = std::fs::read(&self.cfg.data.vocab).map_err(|e| Error::Io {
                path: self.cfg.data.vocab.display().to_string(),
                source: e,
            })?;
            write_atomic(&out.join("final").join("vocab.txt"), &vocab)?;
        }
        Ok(last_eval)
    }
}

/// The keys (`section.key = checkpoint value, now value`) in which two configs differ as runs:
/// `output_dir` is left out (the checkpoint was found in it, however the path is spelled) and
/// the data paths are compared as the files they name, so the same config read through
/// another path spelling resumes.
pub fn config_differences(saved: &PretrainConfig, now: &PretrainConfig) -> Vec<String> {
    fn identity(cfg: &PretrainConfig) -> serde_json::Value {
        let mut c = cfg.clone();
        c.output_dir = PathBuf::new();
        let canon = |p: &mut PathBuf| {
            if let Ok(q) = std::fs::canonicalize(&*p) {
                *p = q;
            }
        };
        canon(&mut c.data.vocab);
        canon(&mut c.data.train);
        if let Some(h) = c.data.heldout.as_mut() {
            canon(h);
        }
        serde_json::to_value(&c).expect("config serialises")
    }
    fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, x, out);
                }
            }
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    flatten("", &identity(saved), &mut a);
    flatten("", &identity(now), &mut b);
    let a: std::collections::BTreeMap<_, _> = a.into_iter().collect();
    let b: std::collections::BTreeMap<_, _> = b.into_iter().collect();
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |m: &std::collections::BTreeMap<String, String>| {
                m.get(k).cloned().unwrap_or_else(|| "(absent)".into())
            };
            format!("  {k}: checkpoint {}, now {}", show(&a), show(&b))
        })
        .collect()
}

/// Reads a config file and runs it (single process).
pub fn pretrain_from_file(path: &Path) -> Result<Totals> {
    let cfg = PretrainConfig::from_file(path)?;
    Pretrainer::single(cfg)?.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(tokens: Vec<u32>, labels: Vec<u32>) -> Instance {
        Instance {
            segment_ids: vec![0; tokens.len()],
            masked_positions: (1..=labels.len() as u32).collect(),
            tokens,
            is_random_next: false,
            masked_labels: labels,
        }
    }

    #[test]
    fn unigram_prior_counts_mlm_labels_or_ltr_next_tokens() {
        let train = [inst(vec![0, 1, 2, 3], vec![2, 2, 3])];
        // MLM: counts 1 + [0, 0, 2, 1] over 4 ids = [1, 1, 3, 2] / 7
        let p = unigram_log_prior(&train, Objective::Mlm, 4);
        let want = [1.0f64, 1.0, 3.0, 2.0].map(|c| (c / 7.0).ln() as f32);
        assert_eq!(p, want);
        // LTR: every token after the first, [1, 2, 3] → [1, 2, 2, 2] / 7
        let p = unigram_log_prior(&train, Objective::Ltr, 4);
        let want = [1.0f64, 2.0, 2.0, 2.0].map(|c| (c / 7.0).ln() as f32);
        assert_eq!(p, want);
    }

    #[test]
    fn context_free_loss_by_hand() {
        // V = 4, p = [0.1, 0.2, 0.3, 0.4], keep 0.1, random 0.1, [MASK] = id 0.
        let p = [0.1f64, 0.2, 0.3, 0.4];
        let cf = ContextFree {
            unigram: p.iter().map(|v| v.ln() as f32).collect(),
            keep: 0.1,
            random: 0.1,
            mask_id: 0,
            copy: true,
        };
        // input [MASK]: −ln p(label)
        assert!((cf.context_free_loss(0, 2) + 0.3f64.ln()).abs() < 1e-6);
        // input 3 = label 3: (0.1·0.4 + 0.1·0.4/4) / (0.1·0.4 + 0.1/4) = 0.05 / 0.065
        let want = -(0.05f64 / 0.065).ln();
        let got = cf.context_free_loss(3, 3);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        // input 3, label 1: (0.1·0.2/4) / 0.065 = 0.005 / 0.065
        let want = -(0.005f64 / 0.065).ln();
        assert!((cf.context_free_loss(3, 1) - want).abs() < 1e-6);
        assert!((cf.unigram_loss(1) + 0.2f64.ln()).abs() < 1e-6);
        // LTR reads no copy: always the unigram loss
        let ltr = ContextFree { copy: false, ..cf };
        assert!((ltr.context_free_loss(3, 3) + 0.4f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn sinusoidal_positions_have_the_transformer_values_and_the_asked_spread() {
        let (n, h, std) = (128, 64, 0.02f32);
        let t = sinusoidal_positions(n, h, std);
        let s = std * std::f32::consts::SQRT_2;
        // position 0: sin 0 = 0 in even columns, cos 0 = 1 in odd ones
        assert!(t[..h].iter().step_by(2).all(|&v| v == 0.0));
        assert!(t[1..h].iter().step_by(2).all(|&v| (v - s).abs() < 1e-7));
        // position 3, column 0 (wavelength 2π): sin 3; column 2: sin(3 / 10000^(2/64))
        assert!((t[3 * h] - s * 3f32.sin()).abs() < 1e-6);
        let f = (-(10000f64.ln()) * 2.0 / 64.0).exp();
        assert!((t[3 * h + 2] as f64 - s as f64 * (3.0 * f).sin()).abs() < 1e-6);
        // the fastest columns cover many periods, so their spread is about σ
        let col0: Vec<f32> = (0..n).map(|p| t[p * h]).collect();
        let sd = (col0.iter().map(|v| v * v).sum::<f32>() / n as f32).sqrt();
        assert!((sd - std).abs() < 0.1 * std, "{sd}");
    }
}
