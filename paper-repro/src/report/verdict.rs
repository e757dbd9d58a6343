//! The verdicts: a difference read against the paper's, and gated on pre-training having
//! beaten the no-pre-training control.

use crate::plan::Checkpoint;
use crate::report::collect::RowResults;
use crate::report::markdown::{arrow, fmt_diff, scored};
use crate::stats::{welch_diff, Diff};
use crate::tasks::Task;

/// Below this many points the paper's own difference is treated as "no clear difference": the
/// paper reports single runs (Table 5, 8) to one decimal.
pub(crate) const PAPER_NOISE: f64 = 0.5;

pub(crate) fn verdict(ours: Option<Diff>, paper: Option<f64>) -> &'static str {
    match (ours, paper) {
        (None, _) => "not enough runs",
        (Some(d), Some(p)) if p.abs() < PAPER_NOISE => {
            if d.significant() {
                "not reproduced (the paper shows no clear difference)"
            } else {
                "within noise (the paper also shows no clear difference)"
            }
        }
        (Some(d), _) if !d.significant() => "within noise",
        (Some(_), None) => "differs (no paper number)",
        (Some(d), Some(p)) => {
            if (d.diff > 0.0) == (p > 0.0) {
                "reproduced"
            } else {
                "not reproduced"
            }
        }
    }
}

/// What a column says where pre-training did not beat the control.
pub(crate) const NO_HELP: &str = "pre-training did not help at this scale";

/// The default row minus the control on each column, and whether pre-training helped there
/// (the interval excludes zero on the side of the default).
pub(crate) struct ControlCheck {
    pub(crate) diffs: Vec<Option<Diff>>,
    pub(crate) helped: Vec<bool>,
}

impl ControlCheck {
    /// The columns where the default row beat the control: the only ones given a verdict.
    pub(crate) fn helped_tasks(&self, tasks: &[Task]) -> Vec<Task> {
        tasks
            .iter()
            .zip(&self.helped)
            .filter(|(_, &h)| h)
            .map(|(t, _)| *t)
            .collect()
    }
}

pub(crate) fn helped(d: Option<Diff>) -> bool {
    d.is_some_and(|d| d.low > 0.0)
}

pub(crate) fn control_check(
    def: &RowResults,
    ctl: Option<&&RowResults>,
    tasks: &[Task],
) -> ControlCheck {
    let diffs: Vec<Option<Diff>> = tasks
        .iter()
        .map(|&t| {
            ctl.and_then(|c| {
                welch_diff(
                    &def.values(Checkpoint::Final, t),
                    &c.values(Checkpoint::Final, t),
                )
            })
        })
        .collect();
    let helped = diffs.iter().map(|d| helped(*d)).collect();
    ControlCheck { diffs, helped }
}

/// "pre-training vs none" over the columns, for the table and for the summary.
pub(crate) fn control_line(tasks: &[Task], check: &ControlCheck, loss: Option<Diff>) -> String {
    let mut parts: Vec<String> = tasks
        .iter()
        .zip(&check.diffs)
        .zip(&check.helped)
        .map(|((t, d), &h)| {
            format!(
                "{} {} ({})",
                scored(*t),
                fmt_diff(*d),
                if h { "helped" } else { "did not help" }
            )
        })
        .collect();
    if let Some(l) = loss {
        parts.push(format!(
            "held-out MLM loss {:+.2} [{:+.2}, {:+.2}] nats",
            l.diff, l.low, l.high
        ));
    }
    parts.join("; ")
}

/// One column's difference cell: Δ `[CI]` arrow, then the verdict or why there is none.
pub(crate) fn diff_cell(d: Option<Diff>, paper: Option<f64>, helped: bool) -> String {
    let v = if helped { verdict(d, paper) } else { NO_HELP };
    format!("{} {} → {v}", fmt_diff(d), d.map_or("", |d| arrow(d.diff)))
}
