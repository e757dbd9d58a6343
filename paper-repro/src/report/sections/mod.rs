//! The report's sections, each writing markdown from the collected results.
//!
//! - [`intro`]: the title and headline, the setup, the tasks and their baselines.
//! - [`engine_check`]: the same recipe in PyTorch.
//! - [`tables`]: Tables 5 and 8; [`figure5`]; [`table6`].
//!
//! This file holds what they share: their [`Inputs`], the paper's matching cells, and the
//! cells and tables more than one section writes.

pub(crate) mod engine_check;
pub(crate) mod figure5;
pub(crate) mod intro;
pub(crate) mod table6;
pub(crate) mod tables;

use crate::paper::{Paper, PaperTable};
use crate::plan::{Checkpoint, Experiment, Objective, Row};
use crate::report::collect::{row_baseline, RowResults};
use crate::report::markdown::{baseline_score, fmt_ms, md_table, mdd_cell};
use crate::runner::Ctx;
use crate::stats::mean_sd;
use crate::tasks::{Baseline, Task};
use std::collections::BTreeMap;
use std::path::Path;

/// What the sections read.
pub(crate) struct Inputs<'a> {
    pub(crate) ctx: &'a Ctx,
    pub(crate) all: &'a [RowResults<'a>],
    pub(crate) paper: Option<&'a Paper>,
    pub(crate) results: &'a Path,
    /// The best simple baseline of each task.
    pub(crate) best_baseline: BTreeMap<Task, Baseline>,
}

impl<'a> Inputs<'a> {
    /// A table row with each task's best simple baseline.
    pub(crate) fn baseline_row(&self, tasks: &[Task], paper_cols: bool) -> Vec<String> {
        let mut cells = vec!["*best simple baseline*".to_string()];
        for t in tasks {
            cells.push(self.best_baseline.get(t).map_or("—".into(), |b| {
                let n = &b.name;
                format!(
                    "{} ({})",
                    baseline_score(b),
                    n.split(" (").next().unwrap_or(n)
                )
            }));
            if paper_cols {
                cells.push("".into());
            }
        }
        cells
    }

    pub(crate) fn rows(&self, exp: Experiment) -> Vec<&'a RowResults<'a>> {
        self.all
            .iter()
            .filter(|r| r.row.experiment == exp)
            .collect()
    }

    pub(crate) fn unigram_cell(&self) -> String {
        format!("{:.2}", self.ctx.unigram.entropy)
    }
}

/// The paper column of one of our tasks, per experiment.
pub(crate) fn paper_column(exp: Experiment, task: Task) -> Option<&'static str> {
    match (exp, task) {
        (Experiment::Table5, Task::Rte) => Some("MNLI-m"),
        (Experiment::Table5, Task::Qnli) => Some("QNLI"),
        (Experiment::Table5, Task::Mrpc) => Some("MRPC"),
        (Experiment::Table5, Task::Sst2) => Some("SST-2"),
        (Experiment::Table5, Task::Squad) => Some("SQuAD F1"),
        (Experiment::Table8, Task::Qnli) => Some("MNLI (fine-tune)"),
        (Experiment::Table8, Task::PosFinetune) => Some("NER (fine-tune)"),
        (Experiment::Table8, Task::PosFeature) => Some("NER (feature-based)"),
        (Experiment::Table6, Task::Qnli) => Some("MNLI-m"),
        (Experiment::Table6, Task::Mrpc) => Some("MRPC"),
        (Experiment::Table6, Task::Sst2) => Some("SST-2"),
        _ => None,
    }
}

/// The paper row matching one of ours (Tables 5 and 8).
pub(crate) fn paper_row(
    table: &PaperTable,
    exp: Experiment,
    row: &Row,
    index: usize,
) -> Option<usize> {
    if row.is_control() {
        return None;
    }
    match exp {
        Experiment::Table5 => (index < table.rows.len()).then_some(index),
        Experiment::Table8 => {
            let m = row.spec.masking;
            let (cm, cs, cr) = (
                table.column("MASK")?,
                table.column("SAME")?,
                table.column("RND")?,
            );
            (0..table.rows.len()).find(|&r| {
                table.number(r, cm) == Some(m.mask as f64)
                    && table.number(r, cs) == Some(m.same as f64)
                    && table.number(r, cr) == Some(m.random as f64)
            })
        }
        _ => None,
    }
}

/// The paper's value of one of our rows on a task column.
pub(crate) fn paper_value(
    inp: &Inputs,
    exp: Experiment,
    ri: usize,
    row: &Row,
    t: Task,
) -> Option<f64> {
    let p = inp.paper?;
    let tb = if exp == Experiment::Table5 {
        &p.table5
    } else {
        &p.table8
    };
    let r = paper_row(tb, exp, row, ri)?;
    tb.number(r, tb.column(paper_column(exp, t)?)?)
}

/// The minimum detectable difference of each task column over the rows' final scores.
pub(crate) fn task_mdd_cells(rows: &[&RowResults], tasks: &[Task], n: usize) -> Vec<String> {
    tasks
        .iter()
        .map(|&t| {
            let groups: Vec<Vec<f64>> = rows
                .iter()
                .map(|r| r.values(Checkpoint::Final, t))
                .collect();
            mdd_cell(&groups, n, 1)
        })
        .collect()
}

/// The learning rates picked on dev: one line per row, each task's rates over the seeds.
pub(crate) fn lr_table(out: &mut String, rows: &[&RowResults], tasks: &[Task], ck: Checkpoint) {
    let mut header = vec!["learning rate picked on dev (per seed)".to_string()];
    header.extend(tasks.iter().map(|t| t.label().to_string()));
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|rr| {
            let mut cells = vec![rr.row.label.clone()];
            for &t in tasks {
                let v = rr.lrs(ck, t);
                cells.push(if v.is_empty() {
                    "—".into()
                } else {
                    v.iter()
                        .map(|x| format!("{x:e}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                });
            }
            cells
        })
        .collect();
    md_table(out, &header, &body);
}

/// `loss ± sd / unigram / context-free floor`: the two baselines are scored on the row's own
/// held-out positions (so a masking row gets its own floor); the corpus-wide unigram entropy
/// stands in for runs that did not record them.
pub(crate) fn loss_cell(rr: &RowResults, unigram: &str) -> String {
    let v = fmt_ms(&rr.pretrain_values(|p| p.heldout_lm_loss), 2);
    let uni = row_baseline(rr, |p| p.heldout_unigram_loss)
        .map_or(unigram.to_string(), |u| format!("{u:.2}"));
    let cf = row_baseline(rr, |p| p.heldout_context_free_loss)
        .map_or("—".to_string(), |c| format!("{c:.2}"));
    if rr.row.spec.objective == Objective::Ltr {
        format!("{v} (LTR: next-token loss, not comparable) / {uni} / {uni}")
    } else {
        match rr.learned_context() {
            (k, n) if k < n && !rr.row.is_control() => {
                format!("{v} / {uni} / {cf} (only {k} of {n} seeds below the floor)")
            }
            _ => format!("{v} / {uni} / {cf}"),
        }
    }
}

/// A caveat for a difference between `row` and `default` when some of their runs never went
/// below the context-free floor: the difference then also measures which runs left the
/// plateau (NSP delays that; see the Table 5 note), not only what the row changed.
pub(crate) fn plateau_caveat(row: &RowResults, default: &RowResults) -> Option<String> {
    if row.row.spec.objective == Objective::Ltr {
        return None;
    }
    let ((k, n), (kd, nd)) = (row.learned_context(), default.learned_context());
    (k < n || kd < nd).then(|| {
        format!(
            "only {k} of {n} seeds of this row and {kd} of {nd} of the default went below the context-free floor, so this difference also measures which runs left the unigram plateau in time"
        )
    })
}

/// A plotted point: (x, mean, sd).
pub(crate) type Point = (f64, f64, f64);

/// (x, mean, sd) of a point, NaN mean when there is no value.
pub(crate) fn point(x: f64, v: &[f64]) -> Point {
    let (m, s) = mean_sd(v);
    (x, m, s)
}
