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
//!
//! - [`data`]: the vocabulary, the corpora as instances, the batch order and layout.
//! - [`totals`]: what a step or an evaluation adds up, and the context-free baselines.
//! - `step`: one batch forward (and backward), one optimisation step, one evaluation.
//! - `checkpoint`: saving and exact resume, and how two configs differ as runs.
//! - `run`: the loop, its concerns (output folder, metrics, progress, evaluation,
//!   checkpoints, the final model) each a small function.

use crate::autodiff::params::ParamStore;
use crate::autodiff::tape::Tape;
use crate::bert::model::BertForPreTraining;
use crate::bert::BertConfig;
use crate::distributed::{Collective, SingleProcess};
use crate::error::{invalid, Result};
use crate::optim::adamw::bert_decays;
use crate::optim::{AdamW, AdamWConfig, LinearWarmupDecay};
use crate::pretrain::config::{LmBiasInit, PositionInit, PretrainConfig};
use crate::tensor::Tensor;
use crate::train::checkpoint::CheckpointDir;
use std::path::Path;

mod checkpoint;
pub mod data;
mod run;
mod step;
pub mod totals;

pub use checkpoint::config_differences;
pub use data::{load_or_train_vocab, prepare_data, PretrainData};
pub use totals::{unigram_log_prior, ContextFree, Totals};

/// Label value of positions that are not predicted.
pub const IGNORE: i32 = -100;

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

/// Mixes a seed with a counter (an epoch, a step, a micro-batch) into a new seed.
fn mix(a: u64, b: u64) -> u64 {
    crate::bert::init::mix64(a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The pre-training run.
pub struct Pretrainer<'c> {
    /// The run's config (paths resolved).
    pub cfg: PretrainConfig,
    /// The model's config: the preset with overrides, or the `init_from` folder's.
    pub bert_config: BertConfig,
    /// The model: encoder, pooler, MLM and NSP heads.
    pub model: BertForPreTraining,
    /// All weights and their gradients.
    pub store: ParamStore,
    /// The optimiser and its moment estimates.
    pub opt: AdamW,
    /// The learning-rate schedule over `cfg.train.steps`.
    pub schedule: LinearWarmupDecay,
    /// The training and held-out instances.
    pub data: std::sync::Arc<PretrainData>,
    /// Optimiser steps taken so far (restored by [`Pretrainer::resume`]).
    pub step: u64,
    tape: Tape,
    order: data::EpochOrder,
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
    /// With `model.init_from`: the source folder's casing and `model_max_length`, written as
    /// `tokenizer_config.json` into every checkpoint and the final model so that they
    /// tokenize as the source did (`None` for a run from scratch: no file, uncased BERT).
    source_tokenizer: Option<(crate::tokenizer::BasicTokenizer, Option<usize>)>,
}

impl<'c> Pretrainer<'c> {
    /// Builds everything from a config; fails before any training on bad input.
    pub fn new(cfg: PretrainConfig, comm: &'c dyn Collective) -> Result<Pretrainer<'c>> {
        cfg.validate()?;
        let (tok, source_tokenizer) = match &cfg.model.init_from {
            Some(dir) => {
                let tok = crate::bert::folder::load_tokenizer(dir)?;
                let max_len = crate::bert::folder::FolderSettings::read(dir)?.model_max_length;
                let basic = tok.basic().clone();
                (tok, Some((basic, max_len)))
            }
            None => (load_or_train_vocab(&cfg, comm.rank() == 0)?, None),
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
            order: data::EpochOrder::default(),
            comm,
            comm_seconds: 0.0,
            baselines: std::sync::Arc::new(baselines),
            progress: None,
            fresh: false,
            source_tokenizer,
        })
    }

    /// Single-process convenience.
    pub fn single(cfg: PretrainConfig) -> Result<Pretrainer<'static>> {
        static SINGLE: SingleProcess = SingleProcess;
        Pretrainer::new(cfg, &SINGLE)
    }

    /// The run's checkpoint folder, `output_dir/checkpoints`, keeping the last
    /// `train.keep_checkpoints`.
    pub fn checkpoints(&self) -> Result<CheckpointDir> {
        CheckpointDir::new(
            self.cfg.output_dir.join("checkpoints"),
            self.cfg.train.keep_checkpoints,
        )
    }

    /// Writes the `init_from` folder's tokenizer settings into `dir` (nothing for a run from
    /// scratch).
    fn save_tokenizer_config(&self, dir: &Path) -> Result<()> {
        match &self.source_tokenizer {
            Some((basic, max_len)) => {
                crate::bert::folder::save_tokenizer_config(dir, basic, *max_len)
            }
            None => Ok(()),
        }
    }

    /// Indices into `data.train` of the global batch for `step`: a seeded permutation per
    /// epoch. Public so that another implementation can be fed the same batches (paper-repro's
    /// lock-step engine check against PyTorch).
    pub fn batch_indices(&mut self, step: u64) -> Vec<usize> {
        self.order.batch(
            self.data.train.len(),
            self.cfg.train.batch_size,
            self.cfg.train.seed,
            step,
        )
    }
}

/// Reads a config file and runs it (single process).
pub fn pretrain_from_file(path: &Path) -> Result<Totals> {
    let cfg = PretrainConfig::from_file(path)?;
    Pretrainer::single(cfg)?.run()
}

#[cfg(test)]
mod tests {
    use super::*;

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
