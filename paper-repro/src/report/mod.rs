//! REPORT.md and its plots, regenerated from the run folders alone.
//!
//! - [`collect`]: the run folders read into per-row, per-seed results; the tasks' baselines.
//! - [`sections`]: one function per section of the report.
//! - [`verdict`]: how a difference is judged against the paper and the control.
//! - [`markdown`]: how numbers, differences, tables and plots are written.

mod collect;
mod markdown;
mod sections;
mod verdict;

pub use collect::{baselines, Baselines};

use crate::paper::Paper;
use crate::plan::Experiment;
use crate::report::sections::{engine_check, figure5, intro, table6, tables, Inputs};
use crate::runner::Ctx;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// Writes `<results>/REPORT.md` and the plots next to it; returns the report's path.
pub fn write(
    ctx: &Ctx,
    paper: Option<&Paper>,
    results: &Path,
    baselines: &Baselines,
) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(results).with_context(|| format!("creating {}", results.display()))?;
    let all = collect::collect(ctx);
    let inp = Inputs {
        ctx,
        all: &all,
        paper,
        results,
        best_baseline: collect::best_baselines(baselines),
    };
    let mut out = String::new();
    intro::section_title(&mut out, &inp);
    intro::section_setup(&mut out, &inp);
    intro::section_tasks(&mut out, baselines);
    engine_check::section_engine_check(&mut out, &inp);
    let (sections, summary) = experiment_sections(&inp);
    verdicts_at_a_glance(&mut out, &summary, ctx.scale.squad.is_some());
    out.push_str(&sections);
    let path = results.join("REPORT.md");
    cloze::train::checkpoint::write_atomic(&path, out.as_bytes())?;
    Ok(path)
}

/// The sections of the scale's experiments, in its order, and the one-line verdicts they
/// gave for the summary.
fn experiment_sections(inp: &Inputs) -> (String, Vec<String>) {
    let mut sections = String::new();
    let mut summary = Vec::new();
    for &exp in &inp.ctx.scale.experiments {
        match exp {
            Experiment::Table5 | Experiment::Table8 => {
                tables::section_table(&mut sections, &mut summary, inp, exp)
            }
            Experiment::Figure5 => figure5::section_figure5(&mut sections, &mut summary, inp),
            Experiment::Table6 => table6::section_table6(&mut sections, &mut summary, inp),
        }
    }
    (sections, summary)
}

/// The summary of every verdict, placed before the sections that explain them.
fn verdicts_at_a_glance(out: &mut String, summary: &[String], squad_run: bool) {
    out.push_str("## Verdicts at a glance\n\n");
    for line in summary {
        let _ = writeln!(out, "- {line}");
    }
    let _ = writeln!(
        out,
        "- Not run: the optional \"+ BiLSTM\" row of Table 5{}.\n",
        if squad_run {
            ""
        } else {
            "; SQuAD-dev-split: run at the full scale only"
        }
    );
}
