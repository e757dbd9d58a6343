//! Table 6: model size against held-out perplexity and downstream accuracy.

use crate::plan::{Checkpoint, Experiment};
use crate::plots::{Chart, Series};
use crate::report::collect::RowResults;
use crate::report::markdown::{fmt_diff, fmt_ms, md_list, md_table, mdd_cell, plot_or_note};
use crate::report::sections::{lr_table, plateau_caveat, point, task_mdd_cells, Inputs};
use crate::report::verdict::{control_check, control_line, verdict, NO_HELP};
use crate::stats::welch_diff;
use crate::tasks::Task;
use std::fmt::Write as _;

/// Table 6's verdicts on one row: perplexity (gated on the default beating the control's
/// perplexity) and mean accuracy over the columns where pre-training helped.
pub(crate) struct SizeVerdict {
    pub(crate) ppl: &'static str,
    pub(crate) acc: &'static str,
    pub(crate) cells: [String; 2],
}

pub(crate) fn size_verdict(
    rr: &RowResults,
    def: &RowResults,
    gated: &[Task],
    ppl_helped: bool,
    bigger: bool,
) -> SizeVerdict {
    let ppl = |r: &RowResults| r.pretrain_values(|p| p.heldout_lm_perplexity);
    let dp = welch_diff(&ppl(rr), &ppl(def));
    let da = (!gated.is_empty())
        .then(|| welch_diff(&rr.task_means(gated), &def.task_means(gated)))
        .flatten();
    let sign = if bigger { 1.0 } else { -1.0 };
    // the paper: more parameters → lower perplexity, higher accuracy
    SizeVerdict {
        ppl: if ppl_helped {
            verdict(dp, Some(-sign))
        } else {
            NO_HELP
        },
        acc: if gated.is_empty() {
            NO_HELP
        } else {
            verdict(da, Some(sign))
        },
        cells: [fmt_diff(dp), fmt_diff(da)],
    }
}

pub(crate) fn section_table6(out: &mut String, summary: &mut Vec<String>, inp: &Inputs) {
    let rows = inp.rows(Experiment::Table6);
    let Some(def) = rows.iter().find(|r| r.row.is_default) else {
        return;
    };
    let ctl = rows.iter().find(|r| r.row.is_control());
    let tasks = Experiment::Table6.tasks();
    let _ = writeln!(out, "## {}\n", Experiment::Table6.title());
    let _ = writeln!(out, "Our sizes (same data, steps and batch), then the paper's. LM ppl is the masked-LM perplexity on held-out documents (exp of the mean loss over the masked positions), as the paper's Table 6 reports it, beside the unigram perplexity of the same held-out text ({:.1}).\n", inp.ctx.unigram.perplexity);
    let check = control_check(def, ctl, tasks);
    let ppl = |r: &RowResults| r.pretrain_values(|p| p.heldout_lm_perplexity);
    let ppl_d = ctl.and_then(|c| welch_diff(&ppl(def), &ppl(c)));
    let ppl_helped = ppl_d.is_some_and(|d| d.high < 0.0);
    let gated = check.helped_tasks(tasks);
    table6_values(out, summary, inp, &rows, def, &gated, ppl_helped);
    let mut line = control_line(tasks, &check, None);
    let _ = write!(line, "; held-out MLM ppl {}", fmt_diff(ppl_d));
    let _ = writeln!(
        out,
        "**Pre-training vs none** (default size minus the no-pre-training control, 95% CI): {line}.\n"
    );
    summary.push(format!(
        "{}, pre-training vs none: {line}",
        Experiment::Table6.title()
    ));
    lr_table(out, &rows, tasks, Checkpoint::Final);
    if let Some(p) = inp.paper {
        out.push_str("The paper's Table 6 (BERT, 1M steps, Dev):\n\n");
        md_table(out, &p.table6.header, &p.table6.rows);
    }
    out.push_str("Why a small-scale result may differ: the paper's smallest model has 45.7M parameters and all train for 1M steps; ours span a few hundred thousand to a few million, and at a fixed small token budget a bigger model can be under-trained rather than better. Perplexity reacts to size long before downstream accuracy does; a perplexity near the unigram perplexity means the model has learned word frequencies and little more.\n\n");
    table6_plots(out, inp, &rows);
}

pub(crate) fn table6_values(
    out: &mut String,
    summary: &mut Vec<String>,
    inp: &Inputs,
    rows: &[&RowResults],
    def: &RowResults,
    gated: &[Task],
    ppl_helped: bool,
) {
    let tasks = Experiment::Table6.tasks();
    let vocab = inp.ctx.corpus.stats.vocab_size;
    let positions = inp.ctx.scale.max_positions();
    let params = |r: &RowResults| r.row.spec.size.parameters(vocab, positions) as f64;
    let mut header = vec![
        "size".to_string(),
        "parameters".into(),
        "held-out MLM ppl / unigram ppl".into(),
    ];
    header.extend(tasks.iter().map(|t| t.label().to_string()));
    header.push("Δ vs default: ppl / mean accuracy where pre-training helped [95% CI]".into());
    header.push("verdict (paper: bigger is better)".into());
    let mut body = Vec::new();
    let mut verdicts = Vec::new();
    let uppl = format!("{:.1}", inp.ctx.unigram.perplexity);
    for rr in rows {
        let mut cells = vec![
            rr.row.label.clone(),
            format!("{:.2}M", params(rr) / 1e6),
            format!(
                "{} / {uppl}",
                fmt_ms(&rr.pretrain_values(|p| p.heldout_lm_perplexity), 1)
            ),
        ];
        cells.extend(
            tasks
                .iter()
                .map(|&t| fmt_ms(&rr.values(Checkpoint::Final, t), 1)),
        );
        if rr.row.is_default || rr.row.is_control() {
            cells.push(
                if rr.row.is_default {
                    "(default)"
                } else {
                    "(control)"
                }
                .into(),
            );
            cells.push(String::new());
        } else {
            let bigger = params(rr) > params(def);
            let v = size_verdict(rr, def, gated, ppl_helped, bigger);
            let what = if bigger { "bigger" } else { "smaller" };
            cells.push(format!("{} / {}", v.cells[0], v.cells[1]));
            cells.push(format!("ppl: {}; accuracy: {}", v.ppl, v.acc));
            summary.push(format!(
                "{}, {} ({what} than the default): perplexity {}; accuracy {}",
                Experiment::Table6.title(),
                rr.row.label,
                v.ppl,
                v.acc
            ));
            let caveat =
                plateau_caveat(rr, def).map_or(String::new(), |c| format!(" (caveat: {c})"));
            verdicts.push(format!(
                "- **{}** ({what} than the default): perplexity {}; accuracy {}{caveat}.",
                rr.row.label, v.ppl, v.acc
            ));
        }
        body.push(cells);
    }
    let mut b = vec![
        "*best simple baseline*".to_string(),
        String::new(),
        String::new(),
    ];
    b.extend(inp.baseline_row(tasks, false).into_iter().skip(1));
    b.resize(header.len(), String::new());
    body.push(b);
    let n = inp.ctx.scale.seeds.len();
    let sized: Vec<&&RowResults> = rows.iter().filter(|r| !r.row.is_control()).collect();
    let ppl_groups: Vec<Vec<f64>> = sized
        .iter()
        .map(|r| r.pretrain_values(|p| p.heldout_lm_perplexity))
        .collect();
    let mut m = vec![
        format!("*minimum detectable difference* ({n} seeds, α 0.05, power 0.8)"),
        String::new(),
        mdd_cell(&ppl_groups, n, 1),
    ];
    m.extend(task_mdd_cells(rows, tasks, n));
    m.resize(header.len(), String::new());
    body.push(m);
    md_table(out, &header, &body);
    md_list(out, "Verdict per row:", &verdicts);
}

pub(crate) fn table6_plots(out: &mut String, inp: &Inputs, rows: &[&RowResults]) {
    let tasks = Experiment::Table6.tasks();
    let vocab = inp.ctx.corpus.stats.vocab_size;
    let positions = inp.ctx.scale.max_positions();
    // the control (a random model, perplexity ≈ vocabulary) would flatten the curves
    let sized: Vec<&&RowResults> = rows.iter().filter(|r| !r.row.is_control()).collect();
    let x = |r: &RowResults| r.row.spec.size.parameters(vocab, positions) as f64;
    let ppl = Series {
        label: "held-out MLM perplexity".into(),
        points: sized
            .iter()
            .map(|r| point(x(r), &r.pretrain_values(|p| p.heldout_lm_perplexity)))
            .filter(|p| p.1.is_finite())
            .collect(),
    };
    let acc: Vec<Series> = tasks
        .iter()
        .map(|&t| Series {
            label: t.label().into(),
            points: sized
                .iter()
                .map(|r| point(x(r), &r.values(Checkpoint::Final, t)))
                .filter(|p| p.1.is_finite())
                .collect(),
        })
        .collect();
    plot_or_note(
        out,
        inp.results,
        "table6-perplexity",
        &Chart {
            title: "Table 6 analogue: held-out MLM perplexity vs parameters".into(),
            x_label: "parameters (log scale)".into(),
            y_label: "held-out MLM perplexity".into(),
            log_x: true,
            reference: vec![(
                "unigram perplexity of the held-out text".into(),
                inp.ctx.unigram.perplexity,
            )],
        },
        &[ppl],
    );
    plot_or_note(
        out,
        inp.results,
        "table6-accuracy",
        &Chart {
            title: "Table 6 analogue: accuracy vs parameters".into(),
            x_label: "parameters (log scale)".into(),
            y_label: "accuracy (%)".into(),
            log_x: true,
            reference: vec![],
        },
        &acc,
    );
}
