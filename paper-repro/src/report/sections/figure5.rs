//! Figure 5: MLM against LTR along pre-training, by steps and by supervised tokens.

use crate::plan::{Checkpoint, Experiment};
use crate::plots::{Chart, Series};
use crate::report::collect::{predictions_per_seq, RowResults};
use crate::report::markdown::{fmt_diff, fmt_ms, md_table, plot_or_note};
use crate::report::sections::{lr_table, point, Inputs, Point};
use crate::report::verdict::{helped, verdict, NO_HELP};
use crate::stats::welch_diff;
use std::fmt::Write as _;

/// Figure 5: the accuracy table along pre-training, the control check, the rates, the plots.
pub(crate) fn section_figure5(out: &mut String, summary: &mut Vec<String>, inp: &Inputs) {
    let rows = inp.rows(Experiment::Figure5);
    let (Some(mlm), Some(ltr)) = (
        rows.iter().find(|r| r.row.is_default),
        rows.iter()
            .find(|r| !r.row.is_default && !r.row.is_control()),
    ) else {
        return;
    };
    let ctl = rows.iter().find(|r| r.row.is_control());
    let task = Experiment::Figure5.tasks()[0];
    let _ = writeln!(out, "## {}\n", Experiment::Figure5.title());
    let ctl_vals = ctl
        .map(|c| c.values(Checkpoint::Final, task))
        .unwrap_or_default();
    let (by_step, by_tokens) = figure5_table(out, summary, inp, [*mlm, *ltr], &ctl_vals);
    let steps = inp.ctx.scale.checkpoint_steps();
    let last = checkpoint_at(&steps, steps.len().saturating_sub(1));
    let vs_none = |r: &RowResults| fmt_diff(welch_diff(&r.values(last, task), &ctl_vals));
    let line = format!(
        "{} at the last step {}; {} at the last step {}",
        mlm.row.label,
        vs_none(mlm),
        ltr.row.label,
        vs_none(ltr)
    );
    let _ = writeln!(
        out,
        "**Pre-training vs none** ({}, 95% CI): {line}.\n",
        task.label()
    );
    summary.push(format!(
        "{}, pre-training vs none: {line}",
        Experiment::Figure5.title()
    ));
    lr_table(out, &rows, &[task], Checkpoint::Final);
    figure5_plots(
        out,
        inp,
        [mlm.row.label.as_str(), ltr.row.label.as_str()],
        &by_step,
        &by_tokens,
    );
}

/// The checkpoint of the `i`-th of the scale's checkpoint steps (the last is the final model).
fn checkpoint_at(steps: &[u64], i: usize) -> Checkpoint {
    if i + 1 == steps.len() {
        Checkpoint::Final
    } else {
        Checkpoint::Step(steps[i])
    }
}

/// Figure 5's explanation, its table (a row per checkpoint step, step 0 being the control
/// `ctl_vals`) and the per-step verdicts; returns the plots' points by step and by supervised
/// tokens, alternating MLM and LTR.
fn figure5_table(
    out: &mut String,
    summary: &mut Vec<String>,
    inp: &Inputs,
    [mlm, ltr]: [&RowResults; 2],
    ctl_vals: &[f64],
) -> (Vec<Point>, Vec<Point>) {
    let task = Experiment::Figure5.tasks()[0];
    let scale = &inp.ctx.scale;
    let steps = scale.checkpoint_steps();
    let batch = scale.pretrain.batch_size as f64;
    let (pm, pm_measured) = predictions_per_seq(mlm, scale);
    let (pl, pl_measured) = predictions_per_seq(ltr, scale);
    let _ = writeln!(
        out,
        "{} accuracy after fine-tuning from checkpoints taken along pre-training, for the MLM and the LTR model (both without NSP, so only the language-model objective differs); step 0 is the no-pre-training control (the same random initialisation for both, bidirectional). The paper shows MNLI for BERT-BASE up to 1M steps: MLM converges slightly more slowly than LTR but is ahead in absolute accuracy almost from the start (≈84 vs ≈82 at the end). \
         At equal steps the two have not seen equal supervision: LTR gets a loss at {pl:.1} positions per sequence, MLM at {pm:.1} ({}), so the second plot puts both against **supervised tokens** (steps × batch {batch} × predictions per sequence). \
         A verdict at a step is only given where at least one of the two pre-trained models beats the control there (95% interval above zero).\n",
        task.label(),
        if pm_measured && pl_measured {
            "both measured on the runs' training instances"
        } else {
            "the scale's bounds: max_predictions_per_seq and max_seq_length − 1; these runs did not record the measured counts"
        }
    );
    let ck = |i: usize| checkpoint_at(&steps, i);
    let header: Vec<String> = [
        "step",
        &format!("{} ours", mlm.row.label),
        &format!("{} ours", ltr.row.label),
        "supervised tokens MLM / LTR",
        "Δ MLM − LTR [95% CI]",
        "verdict (paper: MLM ahead)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut body = vec![vec![
        "0 (no pre-training)".to_string(),
        fmt_ms(ctl_vals, 1),
        fmt_ms(ctl_vals, 1),
        "0 / 0".into(),
        "—".into(),
        "—".into(),
    ]];
    let mut by_step = vec![point(0.0, ctl_vals), point(0.0, ctl_vals)];
    let mut by_tokens = by_step.clone();
    for (i, &step) in steps.iter().enumerate() {
        let (vm, vl) = (mlm.values(ck(i), task), ltr.values(ck(i), task));
        let tokens = (step as f64 * batch * pm, step as f64 * batch * pl);
        let gate = helped(welch_diff(&vm, ctl_vals)) || helped(welch_diff(&vl, ctl_vals));
        let d = welch_diff(&vm, &vl);
        let v = if gate { verdict(d, Some(2.0)) } else { NO_HELP };
        body.push(vec![
            step.to_string(),
            fmt_ms(&vm, 1),
            fmt_ms(&vl, 1),
            format!("{:.2e} / {:.2e}", tokens.0, tokens.1),
            fmt_diff(d),
            v.to_string(),
        ]);
        summary.push(format!(
            "{}, step {step}: MLM − LTR {} → {v}",
            Experiment::Figure5.title(),
            fmt_diff(d)
        ));
        by_step.push(point(step as f64, &vm));
        by_step.push(point(step as f64, &vl));
        by_tokens.push(point(tokens.0, &vm));
        by_tokens.push(point(tokens.1, &vl));
    }
    md_table(out, &header, &body);
    (by_step, by_tokens)
}

/// Figure 5's two plots; `by_*` alternate MLM and LTR points.
pub(crate) fn figure5_plots(
    out: &mut String,
    inp: &Inputs,
    labels: [&str; 2],
    by_step: &[Point],
    by_tokens: &[Point],
) {
    let task = Experiment::Figure5.tasks()[0];
    let split = |pts: &[Point]| -> Vec<Series> {
        (0..2)
            .map(|k| Series {
                label: labels[k].to_string(),
                points: pts
                    .iter()
                    .skip(k)
                    .step_by(2)
                    .copied()
                    .filter(|p| p.1.is_finite())
                    .collect(),
            })
            .collect()
    };
    for (stem, x_label, pts) in [
        (
            "figure5-mlm-vs-ltr",
            "pre-training steps of the checkpoint (0 = no pre-training)",
            by_step,
        ),
        (
            "figure5-supervised-tokens",
            "supervised tokens seen (steps × batch × predictions per sequence)",
            by_tokens,
        ),
    ] {
        plot_or_note(
            out,
            inp.results,
            stem,
            &Chart {
                title: format!("Figure 5 analogue: {} accuracy", task.label()),
                x_label: x_label.into(),
                y_label: format!("{} accuracy (%)", task.label()),
                log_x: false,
                reference: vec![],
            },
            &split(pts),
        );
    }
}
