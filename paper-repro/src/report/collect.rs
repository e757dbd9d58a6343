//! Reads the run folders into per-row, per-seed results, and the tasks' simple baselines.

use crate::plan::{Checkpoint, Experiment, Objective, Row};
use crate::runner::{eval_path, pretrain_result_path, read_json, Ctx, EvalResult, PretrainResult};
use crate::scale::Scale;
use crate::squad;
use crate::stats::mean_sd;
use crate::tasks::{self, Baseline, Task};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// One seed's results of a row.
#[derive(Default)]
pub(crate) struct SeedResults {
    pub(crate) pretrain: Option<PretrainResult>,
    /// Accuracy (SQuAD: F1) in percent.
    pub(crate) evals: BTreeMap<(Checkpoint, Task), f64>,
    /// SQuAD's exact match in percent.
    pub(crate) ems: BTreeMap<(Checkpoint, Task), f64>,
    /// The learning rate picked on dev.
    pub(crate) lrs: BTreeMap<(Checkpoint, Task), f32>,
    /// (step, training LM loss) and (step, held-out LM loss).
    pub(crate) train_curve: Vec<(f64, f64)>,
    pub(crate) eval_curve: Vec<(f64, f64)>,
    pub(crate) eval_seconds: f64,
}

pub(crate) struct RowResults<'a> {
    pub(crate) row: &'a Row,
    pub(crate) seeds: Vec<(u64, SeedResults)>,
}

impl RowResults<'_> {
    pub(crate) fn values(&self, ck: Checkpoint, task: Task) -> Vec<f64> {
        self.seeds
            .iter()
            .filter_map(|(_, s)| s.evals.get(&(ck, task)).copied())
            .collect()
    }

    /// The exact-match percentages (SQuAD), one per seed that has them.
    pub(crate) fn em_values(&self, ck: Checkpoint, task: Task) -> Vec<f64> {
        self.seeds
            .iter()
            .filter_map(|(_, s)| s.ems.get(&(ck, task)).copied())
            .collect()
    }

    /// Per seed, the mean over `tasks` (only seeds that have every task).
    pub(crate) fn task_means(&self, tasks: &[Task]) -> Vec<f64> {
        self.seeds
            .iter()
            .filter_map(|(_, s)| {
                let v: Option<Vec<f64>> = tasks
                    .iter()
                    .map(|t| s.evals.get(&(Checkpoint::Final, *t)).copied())
                    .collect();
                v.map(|v| v.iter().sum::<f64>() / v.len() as f64)
            })
            .collect()
    }

    /// The learning rates picked on dev, one per seed that has the result.
    pub(crate) fn lrs(&self, ck: Checkpoint, task: Task) -> Vec<f32> {
        self.seeds
            .iter()
            .filter_map(|(_, s)| s.lrs.get(&(ck, task)).copied())
            .collect()
    }

    pub(crate) fn pretrain_values(&self, f: impl Fn(&PretrainResult) -> f64) -> Vec<f64> {
        self.seeds
            .iter()
            .filter_map(|(_, s)| s.pretrain.as_ref().map(&f))
            .collect()
    }

    /// How many runs learned from context: (seeds whose held-out MLM loss is below their own
    /// context-free floor, seeds that recorded a floor). A run above the floor has learned no
    /// more than a predictor that never reads the other tokens can know.
    pub(crate) fn learned_context(&self) -> (usize, usize) {
        let runs: Vec<(f64, f64)> = self
            .seeds
            .iter()
            .filter_map(|(_, s)| {
                let p = s.pretrain.as_ref()?;
                Some((p.heldout_lm_loss, p.heldout_context_free_loss?))
            })
            .collect();
        (runs.iter().filter(|(l, f)| l < f).count(), runs.len())
    }
}

/// (step, value) points.
pub(crate) type Curve = Vec<(f64, f64)>;

pub(crate) fn read_curves(dir: &Path) -> (Curve, Curve) {
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    if let Ok(text) = std::fs::read_to_string(dir.join("pretrain").join("metrics.jsonl")) {
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let step = v["step"].as_f64().unwrap_or(f64::NAN);
            if let Some(l) = v["lm_loss"].as_f64() {
                train.push((step, l));
            }
            if let Some(l) = v["eval_lm_loss"].as_f64() {
                eval.push((step, l));
            }
        }
    }
    (train, eval)
}

pub(crate) fn collect<'a>(ctx: &'a Ctx) -> Vec<RowResults<'a>> {
    let ck_steps = ctx.scale.checkpoint_steps();
    ctx.rows
        .iter()
        .map(|row| {
            let seeds = ctx
                .scale
                .seeds
                .iter()
                .map(|&seed| {
                    let dir = ctx.run_dir(&row.spec, seed);
                    let mut s = SeedResults {
                        pretrain: read_json(&pretrain_result_path(&dir)),
                        ..SeedResults::default()
                    };
                    let mut cks = vec![Checkpoint::Final];
                    cks.extend(ck_steps.iter().map(|&k| Checkpoint::Step(k)));
                    for ck in cks {
                        for t in Task::ALL {
                            if let Some(r) = read_json::<EvalResult>(&eval_path(&dir, ck, t)) {
                                s.evals.insert((ck, t), 100.0 * r.score);
                                if let Some(em) = r.exact_match {
                                    s.ems.insert((ck, t), 100.0 * em);
                                }
                                s.lrs.insert((ck, t), r.learning_rate);
                                s.eval_seconds += r.seconds;
                            }
                        }
                    }
                    (s.train_curve, s.eval_curve) = read_curves(&dir);
                    (seed, s)
                })
                .collect();
            RowResults { row, seeds }
        })
        .collect()
}

pub(crate) fn mean_curve(rr: &RowResults, eval: bool) -> Vec<(f64, f64, f64)> {
    let mut by_step: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for (_, s) in &rr.seeds {
        let c = if eval { &s.eval_curve } else { &s.train_curve };
        for &(step, v) in c {
            by_step.entry(step as u64).or_default().push(v);
        }
    }
    by_step
        .into_iter()
        .map(|(k, v)| {
            let (m, sd) = mean_sd(&v);
            (k as f64, m, sd)
        })
        .collect()
}

/// Mean over a row's seeds of a baseline scored on the row's own held-out positions, when
/// its runs recorded it.
pub(crate) fn row_baseline(
    rr: &RowResults,
    f: impl Fn(&PretrainResult) -> Option<f64>,
) -> Option<f64> {
    let v: Vec<f64> = rr
        .seeds
        .iter()
        .filter_map(|(_, s)| s.pretrain.as_ref().and_then(&f))
        .collect();
    (!v.is_empty()).then(|| mean_sd(&v).0)
}

/// Mean LM predictions per training sequence of a row: measured in its runs (pretrain.json),
/// else the scale's bound; the flag says whether it was measured.
pub(crate) fn predictions_per_seq(rr: &RowResults, scale: &Scale) -> (f64, bool) {
    let v: Vec<f64> = rr
        .seeds
        .iter()
        .filter_map(|(_, s)| s.pretrain.as_ref()?.mean_predictions_per_seq)
        .collect();
    if !v.is_empty() {
        return (mean_sd(&v).0, true);
    }
    let p = &scale.pretrain;
    match rr.row.spec.objective {
        Objective::Ltr => ((p.max_seq_length - 1) as f64, false),
        _ => (p.max_predictions_per_seq as f64, false),
    }
}

/// Compute summed over the distinct pre-trainings and their fine-tunings.
pub(crate) fn compute_totals(
    all: &[RowResults],
    experiments: &[Experiment],
) -> (f64, f64, usize, usize) {
    let mut distinct = std::collections::HashSet::new();
    let (mut pre_secs, mut ft_secs, mut n_pre) = (0.0, 0.0, 0usize);
    for rr in all
        .iter()
        .filter(|r| experiments.contains(&r.row.experiment))
    {
        for (seed, sr) in &rr.seeds {
            if distinct.insert((rr.row.spec, *seed)) {
                if let Some(p) = &sr.pretrain {
                    pre_secs += p.seconds;
                    n_pre += 1;
                }
                ft_secs += sr.eval_seconds;
            }
        }
    }
    (pre_secs, ft_secs, n_pre, distinct.len())
}

/// Per task: its description, train / dev / evaluation sizes, and simple baselines.
pub type Baselines = BTreeMap<Task, (String, [usize; 3], Vec<Baseline>)>;

/// Every task's description, sizes and baselines.
pub fn baselines(ctx: &Ctx) -> Result<Baselines> {
    let mut out = BTreeMap::new();
    for t in [Task::Rte, Task::Qnli, Task::Mrpc, Task::Sst2] {
        let d = ctx.class_data(t)?;
        let sizes = [d.train.len(), d.dev.len(), d.eval.len()];
        out.insert(
            t,
            (t.describe().to_string(), sizes, tasks::class_baselines(&d)),
        );
    }
    let d = ctx.tag_data()?;
    let bl = tasks::tag_baselines(&d);
    let sizes = [d.train.len(), d.dev.len(), d.eval.len()];
    for t in [Task::PosFinetune, Task::PosFeature] {
        out.insert(t, (t.describe().to_string(), sizes, bl.clone()));
    }
    if ctx.scale.squad.is_some() {
        let d = ctx.squad_data()?;
        let sizes = [d.train.len(), d.dev.len(), d.eval.len()];
        out.insert(
            Task::Squad,
            (
                Task::Squad.describe().to_string(),
                sizes,
                vec![squad::baseline(&d)?],
            ),
        );
    }
    Ok(out)
}

pub(crate) fn best_baselines(baselines: &Baselines) -> BTreeMap<Task, Baseline> {
    baselines
        .iter()
        .filter_map(|(t, (_, _, b))| {
            b.iter()
                .max_by(|x, y| x.score.total_cmp(&y.score))
                .map(|b| (*t, b.clone()))
        })
        .collect()
}
