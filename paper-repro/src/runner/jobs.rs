//! The suite's jobs, the order they are listed in, and whether each is done.

use crate::plan::{Checkpoint, Experiment, Objective, PretrainSpec};
use crate::runner::{eval_path, pretrain_result_path, Ctx};
use crate::tasks::Task;
use std::collections::HashSet;

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
pub(crate) fn pretrain_cost(j: &Job) -> f64 {
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

pub(crate) fn is_done(ctx: &Ctx, j: &Job) -> bool {
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
