//! How numbers, differences, tables and plots are written into the report.

use crate::plots::{line_chart, Chart, Series};
use crate::stats::{mean_sd, min_detectable_difference, pooled_sd, Diff};
use crate::tasks::{Baseline, Task};
use std::fmt::Write as _;
use std::path::Path;

pub(crate) fn fmt_ms(v: &[f64], digits: usize) -> String {
    if v.is_empty() {
        return "—".into();
    }
    let (m, s) = mean_sd(v);
    if s.is_nan() {
        format!("{m:.digits$} (n=1)")
    } else {
        format!("{m:.digits$} ± {s:.digits$}")
    }
}

pub(crate) fn fmt_diff(d: Option<Diff>) -> String {
    match d {
        Some(d) => format!("{:+.1} [{:+.1}, {:+.1}]", d.diff, d.low, d.high),
        None => "—".into(),
    }
}

/// A column's name with its metric where it is not accuracy ("SQuAD-dev-split F1").
pub(crate) fn scored(t: Task) -> String {
    if t.metric() == "accuracy" {
        t.label().to_string()
    } else {
        format!("{} {}", t.label(), t.metric())
    }
}

pub(crate) fn arrow(x: f64) -> &'static str {
    if x.is_nan() {
        "?"
    } else if x.abs() < 1e-9 {
        "="
    } else if x > 0.0 {
        "↑"
    } else {
        "↓"
    }
}

/// "0.42 nats below" / "0.13 nats above".
pub(crate) fn distance(below: f64) -> String {
    if below >= 0.0 {
        format!("{below:.2} nats below")
    } else {
        format!("{:.2} nats above", -below)
    }
}

/// A baseline's score in percent: `F1 x / EM y` where it has an exact match, else the score.
pub(crate) fn baseline_score(b: &Baseline) -> String {
    match b.exact_match {
        Some(em) => format!("F1 {:.1} / EM {:.1}", 100.0 * b.score, 100.0 * em),
        None => format!("{:.1}", 100.0 * b.score),
    }
}

/// The minimum detectable difference of a column at `n` seeds, from the pooled sd of its
/// rows (`groups`: one row's values each).
pub(crate) fn mdd_cell(groups: &[Vec<f64>], n: usize, digits: usize) -> String {
    let m = min_detectable_difference(pooled_sd(groups), n);
    if m.is_finite() {
        format!("{m:.digits$}")
    } else {
        "—".into()
    }
}

pub(crate) fn md_table(out: &mut String, header: &[String], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}|", vec!["---"; header.len()].join("|"));
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out.push('\n');
}

/// A titled list of lines (each already a Markdown list item), then a blank line.
pub(crate) fn md_list(out: &mut String, title: &str, lines: &[String]) {
    let _ = writeln!(out, "{title}\n");
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    out.push('\n');
}

pub(crate) fn plot_or_note(
    out: &mut String,
    results: &Path,
    stem: &str,
    chart: &Chart,
    series: &[Series],
) {
    match line_chart(&results.join(stem), chart, series) {
        Ok(()) => {
            let _ = writeln!(
                out,
                "![{}]({stem}.svg)\n\n[SVG]({stem}.svg) · [PNG]({stem}.png)\n",
                chart.title
            );
        }
        Err(e) => {
            let _ = writeln!(out, "_Plot {stem} not drawn: {e:#}_\n");
        }
    }
}

/// The headline: the default model's held-out MLM loss (mean over seeds of Table 5's default
/// row, i.e. the default pre-training, whichever table owns its folder) beside the unigram
/// entropy of the same held-out text.
pub fn headline(default_loss: Option<f64>, unigram_entropy: f64) -> String {
    format!(
        "default row: held-out MLM loss {}nats; unigram entropy of the same held-out text {unigram_entropy:.2} nats",
        default_loss.map_or("— ".to_string(), |l| format!("{l:.2} "))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headline_has_the_promised_form() {
        assert_eq!(
            headline(Some(6.4963), 6.6049),
            "default row: held-out MLM loss 6.50 nats; unigram entropy of the same held-out text 6.60 nats"
        );
    }
}
