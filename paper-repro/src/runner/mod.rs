//! Runs the jobs of a suite: pre-trainings, then fine-tunings of their checkpoints, on a few
//! workers (each with its own rayon pool, so two 1-thread trainings share the 2 cores better
//! than one 2-thread training of a small model does). Every finished job leaves a file; a job
//! whose file exists is not run again, and an interrupted pre-training resumes from its last
//! checkpoint. Results do not depend on the number of workers or threads.
//!
//! - this file: what the jobs read ([`Ctx`]) and what they leave (the result files);
//! - `jobs`: the suite's jobs, what each costs and whether it is done;
//! - `pretrain`: a pre-training job (or the control's random initialisation);
//! - `eval`: a fine-tuning job, its learning rate picked on dev;
//! - `schedule`: the workers and the order they take jobs in.

mod eval;
pub mod ftstudy;
mod jobs;
pub mod lockstep;
mod pretrain;
mod schedule;

pub use jobs::{describe, jobs, Job};
pub use schedule::run;

use crate::corpus::{Corpus, Unigram};
use crate::plan::{owner, Checkpoint, PretrainSpec, Row};
use crate::scale::Scale;
use crate::squad::{self, SquadData};
use crate::tasks::{self, ClassData, TagData, Task};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

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

/// The wall time of one sitting: an invocation that ran jobs (a run cut short and resumed
/// later has several).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WallTime {
    pub seconds: f64,
    pub jobs_run: usize,
    pub jobs_cached: usize,
    pub workers: usize,
    pub threads: usize,
}

/// Every sitting that ran jobs, oldest first: `sittings.json`, rewritten after each job so that
/// a sitting cut short still counts; runs folders from before it have only the last sitting,
/// in `last-invocation.json`.
pub fn read_sittings(runs: &Path) -> Vec<WallTime> {
    read_json(&runs.join(SITTINGS_FILE))
        .or_else(|| read_json(&runs.join("last-invocation.json")).map(|w| vec![w]))
        .unwrap_or_default()
}

/// The file [`read_sittings`] reads.
pub const SITTINGS_FILE: &str = "sittings.json";

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

pub(crate) fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let text = serde_json::to_string_pretty(v)?;
    cloze::train::checkpoint::write_atomic(path, text.as_bytes())?;
    Ok(())
}
