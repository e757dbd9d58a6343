//! Runs the jobs of a suite: pre-trainings, then fine-tunings of their checkpoints, on a few
//! workers (each with its own rayon pool, so two 1-thread trainings share the 2 cores better
//! than one 2-thread training of a small model does). Every finished job leaves a file; a job
//! whose file exists is not run again, and an interrupted pre-training resumes from its last
//! checkpoint. Results do not depend on the number of workers or threads.

use crate::corpus::{Corpus, Unigram};
use crate::plan::{owner, Checkpoint, Experiment, Objective, PretrainSpec, Row};
use crate::scale::Scale;
use crate::squad::{self, SquadData, SquadParams};
use crate::tasks::{self, ClassData, TagData, Task};
use anyhow::{bail, Context, Result};
use cloze::finetune::span::{squad_scores, train_span_model, SpanModel};
use cloze::finetune::tagging::{train_tagger, TagMode, TaggingConfig};
use cloze::finetune::trainer::{finetune_once, scores, FinetuneConfig};
use cloze::pretrain::config::PretrainConfig;
use cloze::pretrain::trainer::Pretrainer;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Instant;

/// Everything the jobs read.
pub struct Ctx {
    pub scale: Scale,
    pub data: PathBuf,
    /// `runs/<scale>`.
    pub runs: PathBuf,
    pub corpus: Corpus,
    /// The unigram baseline of the held-out text.
    pub unigram: Unigram,
    pub rows: Vec<Row>,
    class_data: Mutex<HashMap<Task, std::sync::Arc<ClassData>>>,
    tag_data: OnceLock<std::sync::Arc<TagData>>,
    squad_data: OnceLock<std::sync::Arc<SquadData>>,
}

impl Ctx {
    pub fn new(
        scale: Scale,
        data: PathBuf,
        runs: PathBuf,
        corpus: Corpus,
        unigram: Unigram,
    ) -> Ctx {
        let rows = crate::plan::rows(&scale);
        Ctx {
            scale,
            data,
            runs,
            corpus,
            unigram,
            rows,
            class_data: Mutex::new(HashMap::new()),
            tag_data: OnceLock::new(),
            squad_data: OnceLock::new(),
        }
    }

    /// The folder of a pre-training and its fine-tunings: its owner row's `seed-N`.
    pub fn run_dir(&self, spec: &PretrainSpec, seed: u64) -> PathBuf {
        let r = owner(&self.rows, spec);
        self.row_dir(r).join(format!("seed-{seed}"))
    }

    pub fn row_dir(&self, r: &Row) -> PathBuf {
        self.runs.join(r.experiment.slug()).join(&r.slug)
    }

    pub fn class_data(&self, task: Task) -> Result<std::sync::Arc<ClassData>> {
        let mut m = self.class_data.lock().unwrap();
        if let Some(d) = m.get(&task) {
            return Ok(d.clone());
        }
        let d = std::sync::Arc::new(tasks::load_class(task, &self.data, &self.scale)?);
        m.insert(task, d.clone());
        Ok(d)
    }

    pub fn tag_data(&self) -> Result<std::sync::Arc<TagData>> {
        if let Some(d) = self.tag_data.get() {
            return Ok(d.clone());
        }
        let d = std::sync::Arc::new(tasks::load_tagging(&self.data, &self.scale)?);
        Ok(self.tag_data.get_or_init(|| d).clone())
    }

    /// The SQuAD-dev-split (an error at scales without the SQuAD column).
    pub fn squad_data(&self) -> Result<std::sync::Arc<SquadData>> {
        if let Some(d) = self.squad_data.get() {
            return Ok(d.clone());
        }
        let s = self.scale.squad.as_ref().with_context(|| {
            format!("{}: not run at the {} scale", squad::LABEL, self.scale.name)
        })?;
        let d = std::sync::Arc::new(squad::load_data(&self.data.join("squad"), s)?);
        Ok(self.squad_data.get_or_init(|| d).clone())
    }
}

/// A unit of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Job {
    Pretrain {
        spec: PretrainSpec,
        seed: u64,
    },
    Eval {
        spec: PretrainSpec,
        seed: u64,
        checkpoint: Checkpoint,
        task: Task,
    },
}

/// What a finished pre-training leaves in `pretrain.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PretrainResult {
    pub spec: PretrainSpec,
    pub seed: u64,
    pub steps: u64,
    /// Sequence slots seen: steps × batch × max_seq_length.
    pub token_slots: u64,
    pub parameters: usize,
    pub heldout_lm_loss: f64,
    pub heldout_lm_perplexity: f64,
    pub heldout_lm_accuracy: f64,
    pub heldout_nsp_accuracy: f64,
    pub seconds: f64,
    /// Mean LM predictions per training sequence (masked positions for MLM, every position
    /// but the last for LTR), measured on the run's training instances; `None` in runs made
    /// before it was recorded.
    #[serde(default)]
    pub mean_predictions_per_seq: Option<f64>,
    /// The same held-out positions scored by the training targets' unigram frequencies
    /// (cloze's `Totals::lm_unigram_loss`): "the unigram entropy of the same held-out text".
    #[serde(default)]
    pub heldout_unigram_loss: Option<f64>,
    /// … and by the best predictor that reads no context (copying a visible token included).
    #[serde(default)]
    pub heldout_context_free_loss: Option<f64>,
}

/// One learning rate's score on the dev part: accuracy (classification, tagging) or F1 and
/// EM (SQuAD), fractions in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DevScore {
    pub learning_rate: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<f64>,
}

impl DevScore {
    pub fn accuracy(learning_rate: f32, accuracy: f64) -> DevScore {
        DevScore {
            learning_rate,
            accuracy: Some(accuracy),
            f1: None,
            exact_match: None,
        }
    }

    /// SQuAD's: F1 (the rate is picked on it) and EM.
    pub fn span(learning_rate: f32, f1: f64, exact_match: f64) -> DevScore {
        DevScore {
            learning_rate,
            accuracy: None,
            f1: Some(f1),
            exact_match: Some(exact_match),
        }
    }

    /// The score the learning rate is picked on: F1 where there is one, else accuracy.
    pub fn value(&self) -> f64 {
        self.f1.or(self.accuracy).unwrap_or(f64::NAN)
    }
}

/// What a finished fine-tuning leaves in `eval/<task>[-step-N]-lr-on-dev.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalResult {
    pub task: Task,
    pub checkpoint: Checkpoint,
    pub seed: u64,
    /// The task's metric in [0, 1] on the evaluation ("test") split, of the model best on dev
    /// only: accuracy, or F1 for SQuAD.
    pub score: f64,
    /// SQuAD: exact match in [0, 1] on the evaluation split (same model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<f64>,
    /// The learning rate picked on dev.
    pub learning_rate: f32,
    /// Every learning rate of the grid with its dev score(s).
    pub dev_scores: Vec<DevScore>,
    pub train_examples: usize,
    pub dev_examples: usize,
    pub eval_examples: usize,
    pub settings: serde_json::Value,
    pub seconds: f64,
}

pub fn pretrain_result_path(dir: &Path) -> PathBuf {
    dir.join("pretrain.json")
}

/// The result file of a fine-tuning. The `-lr-on-dev` suffix marks results whose learning
/// rate was picked on a dev part carved from the training data (older `<task>.json` files were
/// scored with one fixed rate, trained on all of it, and are not read).
pub fn eval_path(dir: &Path, checkpoint: Checkpoint, task: Task) -> PathBuf {
    match checkpoint {
        Checkpoint::Final => dir
            .join("eval")
            .join(format!("{}-lr-on-dev.json", task.slug())),
        Checkpoint::Step(s) => dir
            .join("eval")
            .join(format!("{}-step-{s}-lr-on-dev.json", task.slug())),
    }
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let text = serde_json::to_string_pretty(v)?;
    cloze::train::checkpoint::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Every job of the given experiments, pre-trainings first, seed by seed (so a partial suite
/// already has one seed of every row).
pub fn jobs(ctx: &Ctx, experiments: &[Experiment]) -> Vec<Job> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for &seed in &ctx.scale.seeds {
        for r in ctx
            .rows
            .iter()
            .filter(|r| experiments.contains(&r.experiment))
        {
            let j = Job::Pretrain { spec: r.spec, seed };
            if seen.insert(j) {
                out.push(j);
            }
        }
    }
    // Longest pre-trainings first, so that two workers end together instead of one running
    // the last LTR model alone (stable: seed and row order otherwise).
    out.sort_by(|a, b| pretrain_cost(b).total_cmp(&pretrain_cost(a)));
    for &seed in &ctx.scale.seeds {
        for r in ctx
            .rows
            .iter()
            .filter(|r| experiments.contains(&r.experiment))
        {
            let mut cks = vec![Checkpoint::Final];
            if r.experiment == Experiment::Figure5 && !r.is_control() {
                let steps = ctx.scale.checkpoint_steps();
                cks.extend(
                    steps[..steps.len() - 1]
                        .iter()
                        .map(|&s| Checkpoint::Step(s)),
                );
            }
            for &checkpoint in &cks {
                for task in r.experiment.tasks_at(&ctx.scale) {
                    let j = Job::Eval {
                        spec: r.spec,
                        seed,
                        checkpoint,
                        task,
                    };
                    if seen.insert(j) {
                        out.push(j);
                    }
                }
            }
        }
    }
    out
}

/// A rough relative cost of a pre-training job, for ordering only: the encoder grows with the
/// layers and the width squared, and the LM decoder (about two layers' worth at the quick
/// shape) runs over every position for LTR, about 2.5 times the masked positions of MLM.
fn pretrain_cost(j: &Job) -> f64 {
    match *j {
        Job::Pretrain { spec, .. } => {
            if spec.objective == Objective::None {
                return 0.0;
            }
            let width = (spec.size.hidden as f64 / 128.0).powi(2);
            let decoder = if spec.objective == Objective::Ltr {
                5.0
            } else {
                2.0
            };
            (spec.size.layers as f64 + decoder) * width
        }
        Job::Eval { .. } => 0.0,
    }
}

fn is_done(ctx: &Ctx, j: &Job) -> bool {
    match *j {
        Job::Pretrain { spec, seed } => pretrain_result_path(&ctx.run_dir(&spec, seed)).exists(),
        Job::Eval {
            spec,
            seed,
            checkpoint,
            task,
        } => eval_path(&ctx.run_dir(&spec, seed), checkpoint, task).exists(),
    }
}

pub fn describe(ctx: &Ctx, j: &Job) -> String {
    let rel = |spec: &PretrainSpec, seed| {
        let d = ctx.run_dir(spec, seed);
        d.strip_prefix(&ctx.runs)
            .unwrap_or(&d)
            .display()
            .to_string()
    };
    match j {
        Job::Pretrain { spec, seed } => format!("pre-train {}", rel(spec, *seed)),
        Job::Eval {
            spec,
            seed,
            checkpoint,
            task,
        } => match checkpoint {
            Checkpoint::Final => format!("{} on {}", task.slug(), rel(spec, *seed)),
            Checkpoint::Step(s) => format!("{} on {} @ step {s}", task.slug(), rel(spec, *seed)),
        },
    }
}

/// The pre-training config of a row at a scale, as cloze's TOML.
pub fn pretrain_config(
    ctx: &Ctx,
    spec: &PretrainSpec,
    seed: u64,
    out: &Path,
) -> Result<PretrainConfig> {
    let s = &ctx.scale;
    let p = &s.pretrain;
    let m = &spec.masking;
    let every = p.steps.div_ceil(p.checkpoints.max(1));
    let toml = format!(
        r#"output_dir = {out:?}

[model]
preset = "tiny"
num_hidden_layers = {layers}
hidden_size = {hidden}
num_attention_heads = {heads}
intermediate_size = {inter}
max_position_embeddings = {maxpos}
hidden_dropout_prob = {dropout}
attention_probs_dropout_prob = {dropout}
pre_layer_norm = {pre_ln}

[data]
vocab = {vocab:?}
train = {train:?}
heldout = {heldout:?}
max_seq_length = {seq}
short_seq_prob = 0.1
masked_lm_prob = {mlm_prob}
max_predictions_per_seq = {train_maxpred}
heldout_masked_lm_prob = 0.15
heldout_max_predictions_per_seq = {maxpred}
mask = {mask}
keep = {keep}
random = {random}
dupe_factor = {dupe}

[train]
objective = "{objective}"
batch_size = {batch}
steps = {steps}
learning_rate = {lr:e}
warmup_steps = {warmup}
weight_decay = 0.01
max_grad_norm = 1.0
seed = {seed}
log_every = {log_every}
eval_every = {every}
eval_batches = {eval_batches}
checkpoint_every = {every}
keep_checkpoints = {keep_ck}
init_lm_bias = "{lm_bias}"
init_positions = "{positions}"
"#,
        out = out.display().to_string(),
        layers = spec.size.layers,
        hidden = spec.size.hidden,
        heads = spec.size.heads,
        inter = 4 * spec.size.hidden,
        maxpos = s.max_positions(),
        vocab = ctx.corpus.vocab.display().to_string(),
        train = ctx.corpus.train.display().to_string(),
        heldout = ctx.corpus.heldout.display().to_string(),
        seq = p.max_seq_length,
        maxpred = p.max_predictions_per_seq,
        mask = m.mask as f64 / 100.0,
        keep = m.same as f64 / 100.0,
        random = m.random as f64 / 100.0,
        objective = spec.objective.toml(),
        batch = p.batch_size,
        steps = p.steps,
        lr = p.learning_rate,
        warmup = p.warmup_steps,
        seed = seed,
        log_every = (p.steps / 50).max(1),
        every = every,
        eval_batches = p.eval_batches,
        keep_ck = p.checkpoints.max(1),
        dropout = p.recipe.dropout,
        dupe = p.recipe.dupe_factor,
        mlm_prob = p.recipe.masked_lm_prob,
        train_maxpred = p
            .recipe
            .train_predictions(p.max_seq_length, p.max_predictions_per_seq),
        pre_ln = p.recipe.pre_layer_norm,
        lm_bias = if p.recipe.unigram_lm_bias {
            "unigram"
        } else {
            "zeros"
        },
        positions = if p.recipe.sinusoidal_positions {
            "sinusoidal"
        } else {
            "random"
        },
    );
    Ok(PretrainConfig::from_toml_str(&toml, "paper-repro")?)
}

/// Mean LM predictions per training sequence of a run's instances.
fn mean_predictions(p: &Pretrainer, objective: Objective) -> Option<f64> {
    let train = &p.data.train;
    if train.is_empty() {
        return None;
    }
    let per = |i: &cloze::pretrain::instances::Instance| match objective {
        Objective::Ltr => i.tokens.len().saturating_sub(1),
        _ => i.masked_positions.len(),
    };
    Some(train.iter().map(per).sum::<usize>() as f64 / train.len() as f64)
}

/// The no-pre-training control: the default model's random initialisation with the run's
/// seed, saved where a pre-training leaves its final model, with its held-out MLM loss.
fn run_random_init(ctx: &Ctx, spec: &PretrainSpec, seed: u64) -> Result<String> {
    let dir = ctx.run_dir(spec, seed);
    let out = dir.join("pretrain");
    let cfg = pretrain_config(ctx, spec, seed, &out)?;
    let t0 = Instant::now();
    let mut p = Pretrainer::single(cfg)?;
    let parameters = spec.size.parameters(
        p.bert_config.vocab_size,
        p.bert_config.max_position_embeddings,
    );
    let eval = p.evaluate()?;
    let final_dir = out.join("final");
    cloze::bert::save_pretrained(&final_dir, &p.bert_config, &p.store)?;
    std::fs::copy(&ctx.corpus.vocab, final_dir.join("vocab.txt"))
        .with_context(|| format!("copying the vocabulary to {}", final_dir.display()))?;
    let r = PretrainResult {
        spec: *spec,
        seed,
        steps: 0,
        token_slots: 0,
        parameters,
        heldout_lm_loss: eval.lm_loss(),
        heldout_lm_perplexity: eval.lm_loss().exp(),
        heldout_lm_accuracy: eval.lm_accuracy(),
        heldout_nsp_accuracy: eval.nsp_accuracy(),
        seconds: t0.elapsed().as_secs_f64(),
        mean_predictions_per_seq: Some(0.0),
        heldout_unigram_loss: Some(eval.lm_unigram_loss()),
        heldout_context_free_loss: Some(eval.lm_context_free_loss()),
    };
    write_json(&pretrain_result_path(&dir), &r)?;
    Ok(format!(
        "random init, held-out LM loss {:.3} (ln vocab {:.3})",
        r.heldout_lm_loss,
        (p.bert_config.vocab_size as f64).ln()
    ))
}

fn run_pretrain(ctx: &Ctx, spec: &PretrainSpec, seed: u64, bar: &ProgressBar) -> Result<String> {
    if spec.objective == Objective::None {
        return run_random_init(ctx, spec, seed);
    }
    let dir = ctx.run_dir(spec, seed);
    let out = dir.join("pretrain");
    let cfg = pretrain_config(ctx, spec, seed, &out)?;
    let t0 = Instant::now();
    let mut p = Pretrainer::single(cfg)?;
    p.progress = Some(bar.clone());
    // encoder with embeddings and pooler, as Table 6 counts them (heads excluded)
    let parameters = spec.size.parameters(
        p.bert_config.vocab_size,
        p.bert_config.max_position_embeddings,
    );
    let eval = p.run()?;
    let seconds = t0.elapsed().as_secs_f64();
    // the optimizer state is only needed to resume, from the newest checkpoint
    let newest = p.checkpoints()?.latest()?.map(|(_, d)| d);
    if let Ok(entries) = std::fs::read_dir(out.join("checkpoints")) {
        for e in entries.flatten() {
            if Some(e.path()) != newest {
                let _ = std::fs::remove_file(e.path().join("optimizer.safetensors"));
            }
        }
    }
    let s = &ctx.scale.pretrain;
    let r = PretrainResult {
        spec: *spec,
        seed,
        steps: s.steps,
        token_slots: s.steps * (s.batch_size * s.max_seq_length) as u64,
        parameters,
        heldout_lm_loss: eval.lm_loss(),
        heldout_lm_perplexity: eval.lm_loss().exp(),
        heldout_lm_accuracy: eval.lm_accuracy(),
        heldout_nsp_accuracy: eval.nsp_accuracy(),
        seconds,
        mean_predictions_per_seq: mean_predictions(&p, spec.objective),
        heldout_unigram_loss: Some(eval.lm_unigram_loss()),
        heldout_context_free_loss: Some(eval.lm_context_free_loss()),
    };
    write_json(&pretrain_result_path(&dir), &r)?;
    Ok(format!(
        "held-out LM loss {:.3} (ppl {:.1}), {:.0} s",
        r.heldout_lm_loss, r.heldout_lm_perplexity, seconds
    ))
}

fn model_dir(dir: &Path, checkpoint: Checkpoint) -> PathBuf {
    match checkpoint {
        Checkpoint::Final => dir.join("pretrain").join("final"),
        Checkpoint::Step(s) => dir
            .join("pretrain")
            .join("checkpoints")
            .join(format!("step-{s:08}")),
    }
}

/// Trains once per learning rate (`train` returns the model and its dev score), keeps the
/// model best on dev ([`DevScore::value`]; the first on ties) and scores only that one on the
/// test split (`test` is called exactly once). Returns (test result, chosen rate, every dev
/// score).
pub fn select_on_dev<M, T>(
    learning_rates: &[f32],
    mut train: impl FnMut(f32) -> Result<(M, DevScore)>,
    test: impl FnOnce(&M, f32) -> Result<T>,
) -> Result<(T, f32, Vec<DevScore>)> {
    let mut best: Option<(M, DevScore)> = None;
    let mut dev = Vec::with_capacity(learning_rates.len());
    for &lr in learning_rates {
        let (model, d) = train(lr)?;
        dev.push(d);
        if best.as_ref().is_none_or(|(_, b)| d.value() > b.value()) {
            best = Some((model, d));
        }
    }
    let Some((model, chosen)) = best else {
        bail!("an empty learning-rate grid");
    };
    let score = test(&model, chosen.learning_rate)?;
    Ok((score, chosen.learning_rate, dev))
}

/// What one fine-tuning found.
struct Outcome {
    /// The test score (accuracy, or F1) and, for SQuAD, the test EM.
    score: f64,
    exact_match: Option<f64>,
    learning_rate: f32,
    dev_scores: Vec<DevScore>,
    /// Train / dev / test sizes.
    sizes: [usize; 3],
    settings: serde_json::Value,
}

fn eval_tagging(
    ctx: &Ctx,
    spec: &PretrainSpec,
    seed: u64,
    model: &Path,
    task: Task,
) -> Result<Outcome> {
    let d = ctx.tag_data()?;
    let t = &ctx.scale.tagging;
    let (mode, grid) = match task {
        Task::PosFeature => (
            TagMode::FeatureBased {
                layers: t.feature_layers.min(spec.size.layers),
            },
            &t.feature_learning_rates,
        ),
        _ => (TagMode::FineTune, &t.finetune_learning_rates),
    };
    let cfg = |lr| TaggingConfig {
        model_dir: model.to_path_buf(),
        mode,
        max_seq_length: t.max_seq_length,
        batch_size: t.batch_size,
        epochs: t.epochs,
        learning_rate: lr,
        seed,
    };
    // train_tagger scores the sentences it is given and returns no model, so the chosen rate
    // is trained again (same seed and data: the same model) and scored on the test split once
    let (score, lr, dev) = select_on_dev(
        grid,
        |lr| {
            let a = train_tagger(&cfg(lr), &d.train, &d.dev)?.accuracy;
            Ok(((), DevScore::accuracy(lr, a)))
        },
        |_, lr| Ok(train_tagger(&cfg(lr), &d.train, &d.eval)?.accuracy),
    )?;
    let mut settings = serde_json::to_value(cfg(lr))?;
    settings["learning_rate_grid"] = serde_json::to_value(grid)?;
    Ok(Outcome {
        score,
        exact_match: None,
        learning_rate: lr,
        dev_scores: dev,
        sizes: [d.train.len(), d.dev.len(), d.eval.len()],
        settings,
    })
}

fn eval_classification(ctx: &Ctx, seed: u64, model: &Path, task: Task) -> Result<Outcome> {
    let d = ctx.class_data(task)?;
    let f = &ctx.scale.finetune;
    let cfg = FinetuneConfig {
        model_dir: model.to_path_buf(),
        num_labels: d.num_labels,
        max_seq_length: f.max_seq_length,
        batch_size: f.batch_size,
        epochs: f.epochs,
        learning_rates: f.learning_rates.clone(),
        warmup_proportion: 0.1,
        seed,
        max_train_examples: None,
    };
    let (score, lr, dev) = select_on_dev(
        &f.learning_rates,
        |lr| {
            let (clf, s) = finetune_once(&cfg, lr, &d.train, &d.dev)?;
            Ok((clf, DevScore::accuracy(lr, s.accuracy)))
        },
        |clf, _| {
            let pred = clf.predict(&d.eval, f.batch_size)?;
            let gold: Vec<usize> = d.eval.iter().map(|e| e.label).collect();
            Ok(scores(&pred, &gold, d.num_labels).0)
        },
    )?;
    Ok(Outcome {
        score,
        exact_match: None,
        learning_rate: lr,
        dev_scores: dev,
        sizes: [d.train.len(), d.dev.len(), d.eval.len()],
        settings: serde_json::to_value(&cfg)?,
    })
}

/// SQuAD-dev-split: a span model per learning rate, trained on the fine-tune articles and
/// scored on the dev articles (F1 picks the rate); the best-on-dev model then predicts the
/// held-out half once.
fn eval_squad(ctx: &Ctx, seed: u64, model: &Path) -> Result<Outcome> {
    let d = ctx.squad_data()?;
    let s = ctx.scale.squad.as_ref().context("no SQuAD settings")?;
    let cfg = |lr| SquadParams::at(s, lr).span_config(model, seed);
    let ((f1, em), lr, dev) = select_on_dev(
        &s.learning_rates,
        |lr| {
            let (m, sc) = train_span_model(&cfg(lr), &d.train, &d.dev)?;
            Ok((m, DevScore::span(lr, sc.f1, sc.exact_match)))
        },
        |m: &SpanModel, lr| {
            let preds = m.predict(&d.eval, &cfg(lr))?;
            let (em, f1) = squad_scores(&preds, &d.eval)?;
            Ok((f1, em))
        },
    )?;
    let mut settings = serde_json::to_value(cfg(lr))?;
    settings["learning_rate_grid"] = serde_json::to_value(&s.learning_rates)?;
    settings["label"] = squad::LABEL.into();
    Ok(Outcome {
        score: f1,
        exact_match: Some(em),
        learning_rate: lr,
        dev_scores: dev,
        sizes: [d.train.len(), d.dev.len(), d.eval.len()],
        settings,
    })
}

fn run_eval(
    ctx: &Ctx,
    spec: &PretrainSpec,
    seed: u64,
    checkpoint: Checkpoint,
    task: Task,
) -> Result<String> {
    let dir = ctx.run_dir(spec, seed);
    let model = model_dir(&dir, checkpoint);
    if !model.join("model.safetensors").exists() {
        bail!("no model at {}", model.display());
    }
    let t0 = Instant::now();
    let o = if task == Task::Squad {
        eval_squad(ctx, seed, &model)?
    } else if task.is_tagging() {
        eval_tagging(ctx, spec, seed, &model, task)?
    } else {
        eval_classification(ctx, seed, &model, task)?
    };
    let [n_train, n_dev, n_eval] = o.sizes;
    let r = EvalResult {
        task,
        checkpoint,
        seed,
        score: o.score,
        exact_match: o.exact_match,
        learning_rate: o.learning_rate,
        dev_scores: o.dev_scores,
        train_examples: n_train,
        dev_examples: n_dev,
        eval_examples: n_eval,
        settings: o.settings,
        seconds: t0.elapsed().as_secs_f64(),
    };
    write_json(&eval_path(&dir, checkpoint, task), &r)?;
    Ok(format!(
        "{} {:.1}%{} (lr {:e} picked on dev), {:.0} s",
        task.metric(),
        100.0 * r.score,
        r.exact_match
            .map_or(String::new(), |em| format!(", EM {:.1}%", 100.0 * em)),
        r.learning_rate,
        r.seconds
    ))
}

/// Links each shared row's `seed-N` folder to its owner's, so every row has its folder.
pub fn link_rows(ctx: &Ctx) -> Result<()> {
    for r in &ctx.rows {
        for &seed in &ctx.scale.seeds {
            let target = ctx.run_dir(&r.spec, seed);
            let here = ctx.row_dir(r).join(format!("seed-{seed}"));
            if here == target {
                continue;
            }
            std::fs::create_dir_all(ctx.row_dir(r))?;
            if std::fs::symlink_metadata(&here).is_ok() {
                continue;
            }
            // relative: ../../<exp>/<row>/seed-N
            let rel = Path::new("../..").join(target.strip_prefix(&ctx.runs).unwrap_or(&target));
            #[cfg(unix)]
            std::os::unix::fs::symlink(&rel, &here)
                .with_context(|| format!("linking {} to {}", here.display(), rel.display()))?;
            #[cfg(not(unix))]
            std::fs::write(here.with_extension("link"), rel.display().to_string())?;
        }
    }
    Ok(())
}

struct State {
    pending: Vec<Job>,
    running: HashSet<Job>,
    finished: HashSet<Job>,
    failed: Vec<(Job, String)>,
}

/// Runs every job not already done; returns the failures (job, error).
pub fn run(
    ctx: &Ctx,
    experiments: &[Experiment],
    workers: usize,
    threads: usize,
) -> Result<Vec<(String, String)>> {
    link_rows(ctx)?;
    let all = jobs(ctx, experiments);
    let (finished, todo): (HashSet<Job>, Vec<Job>) = {
        let (done, todo): (Vec<Job>, Vec<Job>) = all.iter().partition(|j| is_done(ctx, j));
        (done.into_iter().collect(), todo)
    };
    let cached = all.len() - todo.len();
    let multi = MultiProgress::new();
    let overall = multi.add(ProgressBar::new(todo.len() as u64));
    overall.set_style(
        ProgressStyle::with_template(
            "suite {bar:30} {pos}/{len} jobs  elapsed {elapsed}  eta {eta}",
        )
        .expect("valid template"),
    );
    let say = |msg: String| {
        if overall.is_hidden() {
            eprintln!("{msg}");
        } else {
            let _ = multi.println(msg);
        }
    };
    say(format!(
        "{} jobs: {} already done, {} to run on {} worker(s) × {} thread(s)",
        all.len(),
        cached,
        todo.len(),
        workers,
        threads
    ));
    let state = Mutex::new(State {
        pending: todo,
        running: HashSet::new(),
        finished,
        failed: Vec::new(),
    });
    let cv = Condvar::new();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for w in 0..workers.max(1) {
            let (state, cv, multi, overall, say) = (&state, &cv, &multi, &overall, &say);
            scope.spawn(move || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads.max(1))
                    .build()
                    .expect("thread pool");
                let bar = multi.add(ProgressBar::new(1));
                bar.set_style(
                    ProgressStyle::with_template("  {prefix} {bar:20} {pos}/{len} {msg}")
                        .expect("valid template"),
                );

                loop {
                    // pick the first job whose pre-training is finished (evaluations first,
                    // so results land early), else the first pre-training
                    let job = {
                        let mut st = state.lock().unwrap();
                        loop {
                            if st.pending.is_empty() {
                                break None;
                            }
                            let ready = |j: &Job, st: &State| match *j {
                                Job::Pretrain { .. } => true,
                                Job::Eval { spec, seed, .. } => {
                                    st.finished.contains(&Job::Pretrain { spec, seed })
                                }
                            };
                            let blocked = |j: &Job, st: &State| match *j {
                                Job::Eval { spec, seed, .. } => st
                                    .failed
                                    .iter()
                                    .any(|(f, _)| *f == Job::Pretrain { spec, seed }),
                                _ => false,
                            };
                            if let Some(i) = st.pending.iter().position(|j| blocked(j, &st)) {
                                let j = st.pending.remove(i);
                                st.failed.push((j, "its pre-training failed".into()));
                                overall.inc(1);
                                continue;
                            }
                            let pick = st
                                .pending
                                .iter()
                                .position(|j| matches!(j, Job::Eval { .. }) && ready(j, &st))
                                .or_else(|| {
                                    st.pending
                                        .iter()
                                        .position(|j| matches!(j, Job::Pretrain { .. }))
                                });
                            if let Some(i) = pick {
                                let j = st.pending.remove(i);
                                st.running.insert(j);
                                break Some(j);
                            }
                            st = cv.wait(st).unwrap();
                        }
                    };
                    let Some(job) = job else { break };
                    let what = describe(ctx, &job);
                    // the job in the prefix: a pre-training writes its losses in the message
                    bar.set_prefix(format!("#{w} {what}"));
                    bar.set_message("");
                    bar.set_position(0);
                    bar.set_length(1);
                    let res = pool.install(|| match job {
                        Job::Pretrain { spec, seed } => run_pretrain(ctx, &spec, seed, &bar),
                        Job::Eval {
                            spec,
                            seed,
                            checkpoint,
                            task,
                        } => run_eval(ctx, &spec, seed, checkpoint, task),
                    });
                    let mut st = state.lock().unwrap();
                    st.running.remove(&job);
                    match res {
                        Ok(summary) => {
                            st.finished.insert(job);
                            say(format!("done   {what}: {summary}"));
                        }
                        Err(e) => {
                            say(format!("FAILED {what}: {e:#}"));
                            st.failed.push((job, format!("{e:#}")));
                        }
                    }
                    overall.inc(1);
                    cv.notify_all();
                }
                bar.finish_and_clear();
            });
        }
    });
    overall.finish();
    let st = state.into_inner().unwrap();
    say(format!(
        "suite finished in {:.1} min; {} failed",
        started.elapsed().as_secs_f64() / 60.0,
        st.failed.len()
    ));
    let wall = WallTime {
        seconds: started.elapsed().as_secs_f64(),
        jobs_run: all.len() - cached,
        jobs_cached: cached,
        workers,
        threads,
    };
    if wall.jobs_run > 0 {
        write_json(&ctx.runs.join("last-invocation.json"), &wall)?;
    }
    Ok(st
        .failed
        .iter()
        .map(|(j, e)| (describe(ctx, j), e.clone()))
        .collect())
}

/// The wall time of the invocation that last ran jobs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WallTime {
    pub seconds: f64,
    pub jobs_run: usize,
    pub jobs_cached: usize,
    pub workers: usize,
    pub threads: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn the_learning_rate_is_picked_on_dev_and_only_its_model_is_tested_once() {
        let dev_acc = |lr: f32| if lr == 3e-4 { 0.8 } else { 0.6 };
        let trained = Cell::new(0);
        let tested = Cell::new(0);
        let (score, lr, dev) = select_on_dev(
            &[1e-4, 3e-4, 1e-3],
            |lr| {
                trained.set(trained.get() + 1);
                Ok((lr, DevScore::accuracy(lr, dev_acc(lr))))
            },
            |model: &f32, lr| {
                tested.set(tested.get() + 1);
                assert_eq!(*model, lr, "the test sees the best model");
                Ok(if lr == 3e-4 { 0.7 } else { 0.0 })
            },
        )
        .unwrap();
        assert_eq!((trained.get(), tested.get()), (3, 1));
        assert_eq!((score, lr), (0.7, 3e-4));
        assert_eq!(dev.len(), 3);
        assert_eq!(dev[1], DevScore::accuracy(3e-4, 0.8));
        // ties keep the first (smallest) rate
        let (_, lr, _) = select_on_dev(
            &[1e-4, 1e-3],
            |lr| Ok((lr, DevScore::accuracy(lr, 0.5))),
            |_, _| Ok(0.0),
        )
        .unwrap();
        assert_eq!(lr, 1e-4);
        assert!(select_on_dev::<(), f64>(&[], |_| unreachable!(), |_, _| unreachable!()).is_err());
        // SQuAD picks on F1, not EM
        let (_, lr, dev) = select_on_dev(
            &[1e-4, 1e-3],
            |lr| {
                let s = if lr == 1e-4 {
                    DevScore::span(lr, 0.3, 0.2)
                } else {
                    DevScore::span(lr, 0.4, 0.1)
                };
                Ok(((), s))
            },
            |_, _| Ok(0.0),
        )
        .unwrap();
        assert_eq!(lr, 1e-3);
        let json = serde_json::to_value(dev[0]).unwrap();
        assert!(
            json.get("accuracy").is_none() && json["f1"].is_f64(),
            "{json}"
        );
        // older eval files (accuracy only) still read
        let old: DevScore =
            serde_json::from_str(r#"{"learning_rate": 0.001, "accuracy": 0.5}"#).unwrap();
        assert_eq!(old, DevScore::accuracy(1e-3, 0.5));
    }
}
