//! REPORT.md and its plots, regenerated from the run folders alone.

use crate::paper::{Paper, PaperTable};
use crate::plan::{Checkpoint, Experiment, Objective, Row};
use crate::plots::{line_chart, Chart, Series};
use crate::runner::{
    eval_path, pretrain_result_path, read_json, Ctx, EvalResult, PretrainResult, WallTime,
};
use crate::scale::Scale;
use crate::squad;
use crate::stats::{mean_sd, min_detectable_difference, pooled_sd, welch_diff, Diff};
use crate::tasks::{self, Baseline, Task};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// One seed's results of a row.
#[derive(Default)]
struct SeedResults {
    pretrain: Option<PretrainResult>,
    /// Accuracy (SQuAD: F1) in percent.
    evals: BTreeMap<(Checkpoint, Task), f64>,
    /// SQuAD's exact match in percent.
    ems: BTreeMap<(Checkpoint, Task), f64>,
    /// The learning rate picked on dev.
    lrs: BTreeMap<(Checkpoint, Task), f32>,
    /// (step, training LM loss) and (step, held-out LM loss).
    train_curve: Vec<(f64, f64)>,
    eval_curve: Vec<(f64, f64)>,
    eval_seconds: f64,
}

struct RowResults<'a> {
    row: &'a Row,
    seeds: Vec<(u64, SeedResults)>,
}

impl RowResults<'_> {
    fn values(&self, ck: Checkpoint, task: Task) -> Vec<f64> {
        self.seeds
            .iter()
            .filter_map(|(_, s)| s.evals.get(&(ck, task)).copied())
            .collect()
    }

    /// The exact-match percentages (SQuAD), one per seed that has them.
    fn em_values(&self, ck: Checkpoint, task: Task) -> Vec<f64> {
        self.seeds
            .iter()
            .filter_map(|(_, s)| s.ems.get(&(ck, task)).copied())
            .collect()
    }

    /// Per seed, the mean over `tasks` (only seeds that have every task).
    fn task_means(&self, tasks: &[Task]) -> Vec<f64> {
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
    fn lrs(&self, ck: Checkpoint, task: Task) -> Vec<f32> {
        self.seeds
            .iter()
            .filter_map(|(_, s)| s.lrs.get(&(ck, task)).copied())
            .collect()
    }

    fn pretrain_values(&self, f: impl Fn(&PretrainResult) -> f64) -> Vec<f64> {
        self.seeds
            .iter()
            .filter_map(|(_, s)| s.pretrain.as_ref().map(&f))
            .collect()
    }
}

/// (step, value) points.
type Curve = Vec<(f64, f64)>;

fn read_curves(dir: &Path) -> (Curve, Curve) {
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

fn collect<'a>(ctx: &'a Ctx) -> Vec<RowResults<'a>> {
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

fn fmt_ms(v: &[f64], digits: usize) -> String {
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

fn fmt_diff(d: Option<Diff>) -> String {
    match d {
        Some(d) => format!("{:+.1} [{:+.1}, {:+.1}]", d.diff, d.low, d.high),
        None => "—".into(),
    }
}

/// Below this many points the paper's own difference is treated as "no clear difference": the
/// paper reports single runs (Table 5, 8) to one decimal.
const PAPER_NOISE: f64 = 0.5;

fn verdict(ours: Option<Diff>, paper: Option<f64>) -> &'static str {
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

/// A column's name with its metric where it is not accuracy ("SQuAD-dev-split F1").
fn scored(t: Task) -> String {
    if t.metric() == "accuracy" {
        t.label().to_string()
    } else {
        format!("{} {}", t.label(), t.metric())
    }
}

fn arrow(x: f64) -> &'static str {
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

/// The paper column of one of our tasks, per experiment.
fn paper_column(exp: Experiment, task: Task) -> Option<&'static str> {
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
fn paper_row(table: &PaperTable, exp: Experiment, row: &Row, index: usize) -> Option<usize> {
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

fn md_table(out: &mut String, header: &[String], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}|", vec!["---"; header.len()].join("|"));
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out.push('\n');
}

fn mean_curve(rr: &RowResults, eval: bool) -> Vec<(f64, f64, f64)> {
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

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Writes `<results>/REPORT.md` and the plots next to it; returns the report's path.
pub fn write(
    ctx: &Ctx,
    paper: Option<&Paper>,
    results: &Path,
    baselines: &Baselines,
) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(results).with_context(|| format!("creating {}", results.display()))?;
    let all = collect(ctx);
    let inp = Inputs {
        ctx,
        all: &all,
        paper,
        results,
        best_baseline: best_baselines(baselines),
    };
    let mut out = String::new();
    section_title(&mut out, &inp);
    section_setup(&mut out, &inp);
    section_tasks(&mut out, baselines);
    section_engine_check(&mut out, &inp);
    let mut sections = String::new();
    let mut summary = Vec::new();
    for &exp in &ctx.scale.experiments {
        match exp {
            Experiment::Table5 | Experiment::Table8 => {
                section_table(&mut sections, &mut summary, &inp, exp)
            }
            Experiment::Figure5 => section_figure5(&mut sections, &mut summary, &inp),
            Experiment::Table6 => section_table6(&mut sections, &mut summary, &inp),
        }
    }
    out.push_str("## Verdicts at a glance\n\n");
    for line in &summary {
        let _ = writeln!(out, "- {line}");
    }
    let _ = writeln!(
        out,
        "- Not run: the optional \"+ BiLSTM\" row of Table 5{}.\n",
        if ctx.scale.squad.is_some() {
            ""
        } else {
            "; SQuAD-dev-split: run at the full scale only"
        }
    );
    out.push_str(&sections);
    let path = results.join("REPORT.md");
    cloze::train::checkpoint::write_atomic(&path, out.as_bytes())?;
    Ok(path)
}

fn best_baselines(baselines: &Baselines) -> BTreeMap<Task, Baseline> {
    baselines
        .iter()
        .filter_map(|(t, (_, _, b))| {
            b.iter()
                .max_by(|x, y| x.score.total_cmp(&y.score))
                .map(|b| (*t, b.clone()))
        })
        .collect()
}

/// A baseline's score in percent: `F1 x / EM y` where it has an exact match, else the score.
fn baseline_score(b: &Baseline) -> String {
    match b.exact_match {
        Some(em) => format!("F1 {:.1} / EM {:.1}", 100.0 * b.score, 100.0 * em),
        None => format!("{:.1}", 100.0 * b.score),
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

/// The minimum detectable difference of each task column over the rows' final scores.
fn task_mdd_cells(rows: &[&RowResults], tasks: &[Task], n: usize) -> Vec<String> {
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

/// "0.42 nats below" / "0.13 nats above".
fn distance(below: f64) -> String {
    if below >= 0.0 {
        format!("{below:.2} nats below")
    } else {
        format!("{:.2} nats above", -below)
    }
}

fn section_title(out: &mut String, inp: &Inputs) {
    let s = &inp.ctx.scale;
    let _ = writeln!(
        out,
        "# BERT ablations at `{}` scale: cloze beside the paper\n",
        s.name
    );
    let default_loss = inp
        .all
        .iter()
        .find(|r| r.row.experiment == Experiment::Table5 && r.row.is_default)
        .map(|r| r.pretrain_values(|p| p.heldout_lm_loss))
        .filter(|v| !v.is_empty())
        .map(|v| mean_sd(&v).0);
    let u = &inp.ctx.unigram;
    let default_row = inp
        .all
        .iter()
        .find(|r| r.row.experiment == Experiment::Table5 && r.row.is_default);
    let same_unigram = default_row.and_then(|r| row_baseline(r, |p| p.heldout_unigram_loss));
    let floor = default_row.and_then(|r| row_baseline(r, |p| p.heldout_context_free_loss));
    let _ = writeln!(
        out,
        "{}\n",
        headline(default_loss, same_unigram.unwrap_or(u.entropy))
    );
    if let (Some(l), Some(un), Some(cf)) = (default_loss, same_unigram, floor) {
        let _ = writeln!(
            out,
            "That is {} the unigram entropy and {} the context-free floor ({cf:.2} nats). \
             Both baselines are scored on exactly the held-out positions the model is scored on. The unigram entropy predicts every \
             masked wordpiece from the training targets' frequencies. The context-free floor is the best any predictor can do \
             without reading the context: under 80/10/10 masking a fifth of the predicted positions show a token, half of them \
             the true one, so copying it is worth about half a nat with no context at all. Only the distance below the floor is \
             learned from context.\n",
            distance(un - l),
            distance(cf - l)
        );
    }
    let control = inp
        .all
        .iter()
        .find(|r| r.row.is_control())
        .map(|r| fmt_ms(&r.pretrain_values(|p| p.heldout_lm_loss), 2))
        .unwrap_or_else(|| "—".into());
    let _ = writeln!(
        out,
        "A masked LM that has learned only how frequent each wordpiece is sits at the unigram entropy (over all {2} held-out wordpieces {0:.2} nats, perplexity {1:.1}, under the training text's add-one-smoothed frequencies; the headline's value is the same quantity on the positions the model is scored on); a random model with BERT's zero LM bias sits near ln(vocabulary) = {3:.2} nats (our no-pre-training control starts its LM bias at the unigram prior when the recipe does, so it scores {control}). A default row near the unigram entropy has learned word frequencies and little else, and its downstream scores are then compared against the no-pre-training row below before any verdict is given.\n",
        u.entropy,
        u.perplexity,
        u.heldout_wordpieces,
        (inp.ctx.corpus.stats.vocab_size as f64).ln()
    );
    let _ = writeln!(
        out,
        "Generated by `cargo run --release -p paper-repro -- all --scale {}` from the run folders under `paper-repro/runs/{}/` \
         (`paper-repro -- report --scale {}` regenerates this file without training). Paper numbers are read from `{}`.\n",
        s.name,
        s.name,
        s.name,
        inp.paper.map_or("(reference file not found: paper columns are empty)".to_string(), |p| p.source.clone())
    );
    let only_full: Vec<&str> = Scale::full()
        .experiments
        .iter()
        .filter(|e| !s.experiments.contains(e))
        .map(|e| e.title())
        .collect();
    let _ = writeln!(
        out,
        "Experiments at this scale: {}.{}\n",
        s.experiments
            .iter()
            .map(|e| e.title())
            .collect::<Vec<_>>()
            .join("; "),
        if only_full.is_empty() {
            String::new()
        } else {
            format!(" Only at the `full` scale: {}.", only_full.join("; "))
        }
    );
    out.push_str(
        "**Which scale to trust for what.** `quick` answers whether pre-training helps at all \
         at this budget (each table's *pre-training vs none* line) and whether Table 5's rows \
         order as the paper's do, for differences above the minimum detectable difference \
         printed under each table. The paper's masking (Table 8) and model-size (Table 6) \
         effects are a point or less, below what 3 seeds resolve, so they are only run at the \
         `full` scale. There they are still read against the same control and the same \
         minimum detectable difference.\n\n",
    );
}

/// Compute summed over the distinct pre-trainings and their fine-tunings.
fn compute_totals(all: &[RowResults], experiments: &[Experiment]) -> (f64, f64, usize, usize) {
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

fn section_setup(out: &mut String, inp: &Inputs) {
    let (ctx, s, c) = (inp.ctx, &inp.ctx.scale, &inp.ctx.corpus.stats);
    let (pre_secs, ft_secs, n_pre, n_distinct) = compute_totals(inp.all, &s.experiments);
    let wall: Option<WallTime> = read_json(&ctx.runs.join("last-invocation.json"));
    out.push_str("## Setup\n\n");
    let _ = writeln!(
        out,
        "- Machine: {}, {} worker(s) × {} thread(s).",
        cpu_name(),
        wall.as_ref().map_or(0, |w| w.workers),
        wall.as_ref().map_or(0, |w| w.threads)
    );
    let _ = writeln!(
        out,
        "- Wall time: {}; compute summed over jobs: {:.1} min pre-training ({} runs) + {:.1} min fine-tuning.",
        wall.as_ref().map_or("unknown".to_string(), |w| format!(
            "{:.1} min for the last invocation ({} jobs run, {} found done)",
            w.seconds / 60.0,
            w.jobs_run,
            w.jobs_cached
        )),
        pre_secs / 60.0,
        n_pre,
        ft_secs / 60.0
    );
    let _ = writeln!(
        out,
        "- Pre-training data: {} documents, {} words ({}); held-out: {} documents, {} words (whole documents never trained on). \
         WordPiece vocabulary of {} learned from the training text only.",
        c.train_documents,
        c.train_words,
        c.sources.iter().map(|(n, w)| format!("{n}: {w} words")).collect::<Vec<_>>().join(", "),
        c.heldout_documents,
        c.heldout_words,
        c.vocab_size
    );
    let p = &s.pretrain;
    let _ = writeln!(
        out,
        "- Every pre-training: {} steps × batch {} × {} tokens = {} token slots (every row the same), learning rate {} with {} warm-up steps then linear decay, AdamW (BERT's update), weight decay 0.01; held-out sequences have 15% of their wordpieces chosen (at most {} per sequence), as the paper masks.",
        p.steps, p.batch_size, p.max_seq_length, s.pretrain_tokens(), p.learning_rate, p.warmup_steps, p.max_predictions_per_seq
    );
    let r = &p.recipe;
    let _ = writeln!(
        out,
        "- Recipe (from the recipe study, `paper-repro/results/recipe-study.md`; the same for every row and the control): {:.0}% of the wordpieces masked in training (at most {} per sequence; **the paper masks 15%**, and every held-out loss here is still scored on 15%), dropout {}, {} encoder, LM output bias initialised {}, position embeddings initialised {}, {} masked cop{} of the corpus.",
        100.0 * r.masked_lm_prob,
        r.train_predictions(p.max_seq_length, p.max_predictions_per_seq),
        r.dropout,
        if r.pre_layer_norm { "pre-LN" } else { "post-LN (BERT's)" },
        if r.unigram_lm_bias { "to the log unigram prior of the training targets" } else { "to zeros (BERT)" },
        if r.sinusoidal_positions { "as sinusoids (still learned)" } else { "at random (BERT)" },
        r.dupe_factor,
        if r.dupe_factor == 1 { "y" } else { "ies" }
    );
    let positions = s.max_positions();
    let params = s.default_size.parameters(c.vocab_size, positions);
    let _ = writeln!(
        out,
        "- Default model {} ({} parameters with embeddings, {} without); the paper's BERT-BASE is L12/H768/A12 with 110M. \
         The no-pre-training control is this model at its random initialisation (the run's seed), fine-tuned exactly like the others.",
        s.default_size.label(),
        params,
        params - (c.vocab_size + positions + 2) * s.default_size.hidden
    );
    let f = &s.finetune;
    let _ = writeln!(
        out,
        "- Fine-tuning: pooled output + linear classifier, {} epochs, batch {}, sequences ≤ {}, {} training examples per task of which {:.0}% (a fixed seeded part) are held out as **dev**. \
         Each fine-tuning trains once per learning rate of {:?} on the rest, keeps the model best on dev, and scores only that model on the evaluation split (read once). \
         Tagging: {} epochs, the same dev carving, rates {:?} fine-tuned / {:?} feature-based. The rates picked are listed under each table.",
        f.epochs, f.batch_size, f.max_seq_length,
        f.max_train.map_or("all".into(), |n| format!("at most {n}")),
        100.0 * f.dev_fraction,
        f.learning_rates,
        s.tagging.epochs, s.tagging.finetune_learning_rates, s.tagging.feature_learning_rates
    );
    match &s.squad {
        Some(q) => {
            let _ = writeln!(
                out,
                "- {}: span head (start / end logits over the encoder's last layer), windows of {} pieces with a stride of {} (questions ≤ {}), {} epoch(s), batch {}, answers ≤ 30 pieces. \
                 The learning rate is picked from {:?} on the F1 of the dev articles ({:.0}% of the fine-tune half's articles, a fixed seeded choice); only that model predicts the held-out half, once. \
                 Model positions: {} (pre-training uses the first {}).",
                squad::LABEL,
                q.max_seq_length,
                q.doc_stride,
                q.max_query_length,
                q.epochs,
                q.batch_size,
                q.learning_rates,
                100.0 * q.dev_fraction,
                s.max_positions(),
                p.max_seq_length
            );
        }
        None => {
            let _ = writeln!(out, "- {}: run at the full scale only.", squad::LABEL);
        }
    }
    let _ = writeln!(out, "- Seeds: {:?} (each seed changes initialisation, data order, masking and dropout, in pre-training and fine-tuning). {} of {} pre-trainings finished.\n", s.seeds, n_pre, n_distinct);
    let _ = writeln!(
        out,
        "Columns give mean ± standard deviation over seeds, in percent. Δ is our row minus our default row with its 95% interval (Welch's t); the paper's Δ is its row minus its default row. \
         Verdicts: *reproduced* when our interval excludes zero on the paper's side; *not reproduced* when it excludes zero on the other side; *within noise* when it covers zero. \
         Paper differences under {PAPER_NOISE} points count as \"no clear difference\" (the paper reports single runs to one decimal). \
         **A verdict on a column is only given where the default pre-trained model beats the no-pre-training control on that column** (95% Welch interval above zero); elsewhere the cell says *{NO_HELP}*. \
         The *minimum detectable difference* row gives, per column, the difference a two-sided t test at α = 0.05 would detect with 80% power at {} seeds per row, given the table's pooled standard deviation: smaller true effects are expected to come out *within noise*.\n",
        s.seeds.len()
    );
}

/// What a column says where pre-training did not beat the control.
const NO_HELP: &str = "pre-training did not help at this scale";

fn section_tasks(out: &mut String, baselines: &Baselines) {
    out.push_str("## Downstream tasks and their simple baselines\n\n");
    let rows: Vec<Vec<String>> = baselines
        .iter()
        .map(|(t, (desc, [ntr, ndev, nev], bl))| {
            vec![
                t.label().to_string(),
                desc.clone(),
                format!("{ntr} / {ndev} / {nev}"),
                bl.iter()
                    .map(|b| format!("{} {}", b.name, baseline_score(b)))
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        })
        .collect();
    md_table(
        out,
        &[
            "task".into(),
            "what".into(),
            "train / dev / eval".into(),
            "baselines on eval (%)".into(),
        ],
        &rows,
    );
    if baselines.contains_key(&Task::Squad) {
        let _ = write!(
            out,
            "{label} stands in for SQuAD (the paper's last Table 5 column): only SQuAD v1.1 *dev* is available, so its articles are split by article, half to fine-tune on (with its dev part) and half held out. \
             Its numbers are F1 and exact match (the official v1.1 metric) on the questions of that held-out half; they are **not** SQuAD v1.1 dev scores and not comparable with the paper's 88.5 (less training data, a different evaluation set), so only the direction of a difference is compared with the paper. SQuAD passages come from Wikipedia, which is also in our pre-training text. ",
            label = squad::LABEL
        );
    } else {
        let _ = write!(out, "{}: run at the full scale only. ", squad::LABEL);
    }
    out.push_str("MNLI is not available; RTE stands in for it in Table 5, and the QNLI split in Tables 6 and 8. QNLI passages come from Wikipedia, which is also in our pre-training text (as in the paper). The dev part is carved from the training examples only; the baselines are fitted on the training part.\n\n");
}

/// `results/<scale>/pytorch-reference.json`, written by `paper-repro/pytorch/engine_check.sh`.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct PytorchReference {
    pub recipe: String,
    pub steps: u64,
    pub heldout_mlm_loss: f64,
    /// The two context-free baselines on PyTorch's own held-out positions (it draws its
    /// held-out instances with its own generator, so they differ slightly from cloze's).
    #[serde(default)]
    pub heldout_unigram_loss: Option<f64>,
    #[serde(default)]
    pub heldout_context_free_loss: Option<f64>,
    #[serde(default)]
    pub cloze_heldout_mlm_loss: Option<f64>,
    pub command: String,
}

fn section_engine_check(out: &mut String, inp: &Inputs) {
    out.push_str("## Engine check: the same recipe in PyTorch\n\n");
    let path = inp.results.join("pytorch-reference.json");
    let Some(r) = read_json::<PytorchReference>(&path) else {
        out.push_str("Not run (no `pytorch-reference.json` beside this report).\n\n");
        return;
    };
    // cloze: the default row's seed 1 (PyTorch ran one seed), if it ran the same steps
    let def = inp
        .all
        .iter()
        .find(|x| x.row.experiment == Experiment::Table5 && x.row.is_default);
    let seed1 = def
        .and_then(|d| d.seeds.iter().find(|(s, _)| *s == 1))
        .and_then(|(_, s)| s.pretrain.as_ref())
        .filter(|p| p.steps == r.steps);
    let cloze = r
        .cloze_heldout_mlm_loss
        .or(seed1.map(|p| p.heldout_lm_loss));
    let _ = writeln!(
        out,
        "Recipe: {} ({} steps, seed 1). PyTorch (HF `BertForPreTraining`) command: `{}`. \
         Each engine draws its own held-out instances from the same held-out text, so each row gives its own baselines on its own positions; \
         compare the distances below them.\n",
        r.recipe, r.steps, r.command
    );
    let f = |v: Option<f64>| v.map_or("—".to_string(), |x| format!("{x:.3}"));
    let below = |l: Option<f64>, b: Option<f64>| match (l, b) {
        (Some(l), Some(b)) => format!("{:.3}", b - l),
        _ => "—".into(),
    };
    let (cu, ccf) = (
        seed1.and_then(|p| p.heldout_unigram_loss),
        seed1.and_then(|p| p.heldout_context_free_loss),
    );
    let body = vec![
        vec![
            "cloze".to_string(),
            r.steps.to_string(),
            f(cloze),
            f(cu),
            f(ccf),
            below(cloze, cu),
            below(cloze, ccf),
        ],
        vec![
            "PyTorch".to_string(),
            r.steps.to_string(),
            format!("{:.3}", r.heldout_mlm_loss),
            f(r.heldout_unigram_loss),
            f(r.heldout_context_free_loss),
            below(Some(r.heldout_mlm_loss), r.heldout_unigram_loss),
            below(Some(r.heldout_mlm_loss), r.heldout_context_free_loss),
        ],
    ];
    md_table(
        out,
        &[
            "engine".into(),
            "steps".into(),
            "held-out MLM loss (nats)".into(),
            "unigram".into(),
            "context-free floor".into(),
            "below unigram".into(),
            "below floor".into(),
        ],
        &body,
    );
}

/// What the sections read.
struct Inputs<'a> {
    ctx: &'a Ctx,
    all: &'a [RowResults<'a>],
    paper: Option<&'a Paper>,
    results: &'a Path,
    /// The best simple baseline of each task.
    best_baseline: BTreeMap<Task, Baseline>,
}

impl<'a> Inputs<'a> {
    /// A table row with each task's best simple baseline.
    fn baseline_row(&self, tasks: &[Task], paper_cols: bool) -> Vec<String> {
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

    fn rows(&self, exp: Experiment) -> Vec<&'a RowResults<'a>> {
        self.all
            .iter()
            .filter(|r| r.row.experiment == exp)
            .collect()
    }

    fn unigram_cell(&self) -> String {
        format!("{:.2}", self.ctx.unigram.entropy)
    }
}

fn plot_or_note(out: &mut String, results: &Path, stem: &str, chart: &Chart, series: &[Series]) {
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

/// The default row minus the control on each column, and whether pre-training helped there
/// (the interval excludes zero on the side of the default).
struct ControlCheck {
    diffs: Vec<Option<Diff>>,
    helped: Vec<bool>,
}

impl ControlCheck {
    /// The columns where the default row beat the control: the only ones given a verdict.
    fn helped_tasks(&self, tasks: &[Task]) -> Vec<Task> {
        tasks
            .iter()
            .zip(&self.helped)
            .filter(|(_, &h)| h)
            .map(|(t, _)| *t)
            .collect()
    }
}

fn helped(d: Option<Diff>) -> bool {
    d.is_some_and(|d| d.low > 0.0)
}

fn control_check(def: &RowResults, ctl: Option<&&RowResults>, tasks: &[Task]) -> ControlCheck {
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
fn control_line(tasks: &[Task], check: &ControlCheck, loss: Option<Diff>) -> String {
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

/// The minimum detectable difference of a column at `n` seeds, from the pooled sd of its
/// rows (`groups`: one row's values each).
fn mdd_cell(groups: &[Vec<f64>], n: usize, digits: usize) -> String {
    let m = min_detectable_difference(pooled_sd(groups), n);
    if m.is_finite() {
        format!("{m:.digits$}")
    } else {
        "—".into()
    }
}

/// The learning rates picked on dev: one line per row, each task's rates over the seeds.
fn lr_table(out: &mut String, rows: &[&RowResults], tasks: &[Task], ck: Checkpoint) {
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

/// Mean over a row's seeds of a baseline scored on the row's own held-out positions, when
/// its runs recorded it.
fn row_baseline(rr: &RowResults, f: impl Fn(&PretrainResult) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = rr
        .seeds
        .iter()
        .filter_map(|(_, s)| s.pretrain.as_ref().and_then(&f))
        .collect();
    (!v.is_empty()).then(|| mean_sd(&v).0)
}

/// `loss ± sd / unigram / context-free floor`: the two baselines are scored on the row's own
/// held-out positions (so a masking row gets its own floor); the corpus-wide unigram entropy
/// stands in for runs that did not record them.
fn loss_cell(rr: &RowResults, unigram: &str) -> String {
    let v = fmt_ms(&rr.pretrain_values(|p| p.heldout_lm_loss), 2);
    let uni = row_baseline(rr, |p| p.heldout_unigram_loss)
        .map_or(unigram.to_string(), |u| format!("{u:.2}"));
    let cf = row_baseline(rr, |p| p.heldout_context_free_loss)
        .map_or("—".to_string(), |c| format!("{c:.2}"));
    if rr.row.spec.objective == Objective::Ltr {
        format!("{v} (LTR: next-token loss, not comparable) / {uni} / {uni}")
    } else {
        format!("{v} / {uni} / {cf}")
    }
}

/// Tables 5 and 8: values, the control check, differences with gated verdicts, notes, plot.
fn section_table(out: &mut String, summary: &mut Vec<String>, inp: &Inputs, exp: Experiment) {
    let rows = inp.rows(exp);
    let Some(def) = rows.iter().find(|r| r.row.is_default) else {
        return;
    };
    let ctl = rows.iter().find(|r| r.row.is_control());
    let tasks = &exp.tasks_at(&inp.ctx.scale)[..];
    let _ = writeln!(out, "## {}\n", exp.title());
    table_values(out, inp, exp, &rows);
    let check = control_check(def, ctl, tasks);
    let loss_d = ctl.and_then(|c| {
        welch_diff(
            &def.pretrain_values(|p| p.heldout_lm_loss),
            &c.pretrain_values(|p| p.heldout_lm_loss),
        )
    });
    let line = control_line(tasks, &check, loss_d);
    let _ = writeln!(
        out,
        "**Pre-training vs none** (default row minus the no-pre-training control, 95% CI): {line}.\n"
    );
    summary.push(format!("{}, pre-training vs none: {line}", exp.title()));
    table_diffs(out, summary, inp, exp, &rows, &check);
    lr_table(out, &rows, tasks, Checkpoint::Final);
    out.push_str(table_note(exp));
    let series: Vec<Series> = rows
        .iter()
        .filter(|rr| !rr.row.is_control())
        .map(|rr| Series {
            label: rr.row.label.clone(),
            points: mean_curve(rr, false),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if !series.is_empty() {
        plot_or_note(
            out,
            inp.results,
            &format!("{}-pretraining-loss", exp.slug()),
            &Chart {
                title: format!("{}: training LM loss (mean over seeds)", exp.title()),
                x_label: "pre-training step".into(),
                y_label: "LM loss, nats (LTR: next-token)".into(),
                log_x: false,
                reference: vec![(
                    "unigram entropy of the held-out text".into(),
                    inp.ctx.unigram.entropy,
                )],
            },
            &series,
        );
    }
}

/// The paper's value of one of our rows on a task column.
fn paper_value(inp: &Inputs, exp: Experiment, ri: usize, row: &Row, t: Task) -> Option<f64> {
    let p = inp.paper?;
    let tb = if exp == Experiment::Table5 {
        &p.table5
    } else {
        &p.table8
    };
    let r = paper_row(tb, exp, row, ri)?;
    tb.number(r, tb.column(paper_column(exp, t)?)?)
}

/// The values table with its baseline and minimum-detectable-difference rows.
fn table_values(out: &mut String, inp: &Inputs, exp: Experiment, rows: &[&RowResults]) {
    let tasks = &exp.tasks_at(&inp.ctx.scale)[..];
    let mut header = vec!["row".to_string()];
    for t in tasks {
        header.push(if *t == Task::Squad {
            format!("{} (EM) ours", scored(*t))
        } else {
            format!("{} ours", t.label())
        });
        header.push(format!("paper {}", paper_column(exp, *t).unwrap_or("—")));
    }
    header.push("held-out MLM loss / unigram / context-free floor (nats)".into());
    if exp == Experiment::Table5 {
        header.push("held-out NSP accuracy (paper: 97–98)".into());
    }
    let unigram = inp.unigram_cell();
    let mut body = Vec::new();
    for (ri, rr) in rows.iter().enumerate() {
        let mut cells = vec![rr.row.label.clone()];
        for &t in tasks {
            let v = fmt_ms(&rr.values(Checkpoint::Final, t), 1);
            let em = rr.em_values(Checkpoint::Final, t);
            cells.push(if em.is_empty() {
                v
            } else {
                format!("{v} (EM {})", fmt_ms(&em, 1))
            });
            cells.push(
                paper_value(inp, exp, ri, rr.row, t).map_or("—".into(), |v| format!("{v:.1}")),
            );
        }
        cells.push(loss_cell(rr, &unigram));
        if exp == Experiment::Table5 {
            cells.push(
                if matches!(rr.row.spec.objective, Objective::MlmNsp | Objective::None) {
                    fmt_ms(&rr.pretrain_values(|p| 100.0 * p.heldout_nsp_accuracy), 1)
                } else {
                    "—".into()
                },
            );
        }
        body.push(cells);
    }
    let mut b = inp.baseline_row(tasks, true);
    b.resize(header.len(), String::new());
    body.push(b);
    let n = inp.ctx.scale.seeds.len();
    let mut m = vec![format!(
        "*minimum detectable difference* ({n} seeds, α 0.05, power 0.8)"
    )];
    for cell in task_mdd_cells(rows, tasks, n) {
        m.push(cell);
        m.push(String::new());
    }
    let comparable: Vec<Vec<f64>> = rows
        .iter()
        .filter(|r| r.row.spec.objective != Objective::Ltr)
        .map(|r| r.pretrain_values(|p| p.heldout_lm_loss))
        .collect();
    m.push(mdd_cell(&comparable, n, 2));
    m.resize(header.len(), String::new());
    body.push(m);
    md_table(out, &header, &body);
}

/// One column's difference cell: Δ [CI] arrow, then the verdict or why there is none.
fn diff_cell(d: Option<Diff>, paper: Option<f64>, helped: bool) -> String {
    let v = if helped { verdict(d, paper) } else { NO_HELP };
    format!("{} {} → {v}", fmt_diff(d), d.map_or("", |d| arrow(d.diff)))
}

/// Each row minus the default: per column (verdict gated on the control) and on the mean
/// over the columns where pre-training helped.
fn table_diffs(
    out: &mut String,
    summary: &mut Vec<String>,
    inp: &Inputs,
    exp: Experiment,
    rows: &[&RowResults],
    check: &ControlCheck,
) {
    let tasks = &exp.tasks_at(&inp.ctx.scale)[..];
    let def_index = rows.iter().position(|r| r.row.is_default).unwrap_or(0);
    let def = rows[def_index];
    let gated = check.helped_tasks(tasks);
    let mut header = vec!["row vs default".to_string()];
    for t in tasks {
        header.push(format!("{} Δ ours [95% CI] → verdict", scored(*t)));
        header.push("Δ paper".into());
    }
    header.push("mean of the columns where pre-training helped: Δ ours / Δ paper → verdict".into());
    let mut body = Vec::new();
    let mut verdicts = Vec::new();
    for (ri, rr) in rows.iter().enumerate() {
        if rr.row.is_default || rr.row.is_control() {
            continue;
        }
        let mut cells = vec![rr.row.label.clone()];
        let mut paper_diffs = Vec::new();
        for (k, &t) in tasks.iter().enumerate() {
            let d = welch_diff(
                &rr.values(Checkpoint::Final, t),
                &def.values(Checkpoint::Final, t),
            );
            let pd = match (
                paper_value(inp, exp, ri, rr.row, t),
                paper_value(inp, exp, def_index, def.row, t),
            ) {
                (Some(a), Some(b)) => Some(a - b),
                _ => None,
            };
            if check.helped[k] {
                paper_diffs.push(pd);
            }
            cells.push(diff_cell(d, pd, check.helped[k]));
            cells.push(pd.map_or("—".into(), |p| format!("{p:+.1} {}", arrow(p))));
        }
        let (d, pd, v) = if gated.is_empty() {
            (None, None, NO_HELP)
        } else {
            let d = welch_diff(&rr.task_means(&gated), &def.task_means(&gated));
            let pd: Option<f64> = paper_diffs
                .iter()
                .copied()
                .sum::<Option<f64>>()
                .map(|s| s / gated.len() as f64);
            (d, pd, verdict(d, pd))
        };
        cells.push(format!(
            "{} / {} → **{v}**",
            fmt_diff(d),
            pd.map_or("—".into(), |p| format!("{p:+.2}"))
        ));
        verdicts.push(format!("- **{}**: {v}.", rr.row.label));
        summary.push(format!(
            "{}, {}: {v} (mean over the columns where pre-training helped: {} vs the paper's {})",
            exp.title(),
            rr.row.label,
            fmt_diff(d),
            pd.map_or("—".into(), |p| format!("{p:+.2}"))
        ));
        body.push(cells);
    }
    md_table(out, &header, &body);
    out.push_str("Verdict per row (on the mean over the columns where pre-training helped):\n\n");
    for v in verdicts {
        let _ = writeln!(out, "{v}");
    }
    out.push('\n');
}

fn table_note(exp: Experiment) -> &'static str {
    match exp {
        Experiment::Table5 => "Why a small-scale result may differ: the paper's gaps come from 1M steps of a 110M-parameter model on 3.3B words; our models see a few million tokens, so downstream scores can sit near the simple baselines and seed noise can be of the same size as the paper's effects: compare the default row with the no-pre-training row and the unigram entropy above before reading any verdict. NSP here is learned from short documents of one corpus; RoBERTa later found that dropping NSP does not hurt when inputs are long contiguous text. At this size NSP also slows the masked LM: the model learns context in a sudden drop of the loss, and the recipe study (`paper-repro/results/recipe-study.md`, finding 5) measured that NSP's gradient, not its sentence-pair input, delays that drop by about a thousand steps, so the No NSP row's lower held-out loss is partly a matter of when each run left the plateau. LTR keeps left-only attention in fine-tuning and reads the last token (the only one that has seen the whole input). At this budget LTR has a real advantage the paper's scale hides: it gets a loss at every position against at most max_predictions_per_seq for MLM, so at equal steps it has been supervised on several times as many tokens (Figure 5 below plots both against supervised tokens); the paper itself notes that MLM converges more slowly and only pulls ahead with long training.\n\n",
        Experiment::Table8 => "Why a small-scale result may differ: the paper's masking differences are at most 0.8 points on fine-tuning and 0.9 on the feature-based column, for single runs of BERT-BASE; compare them with the minimum detectable difference row: an effect smaller than it is expected to be *within noise*. The feature-based column reads the concatenation of the last layers of a frozen encoder, where the paper saw [MASK]-only hurt (the mismatch between pre-training and fine-tuning inputs). The held-out MLM loss of each row is measured with that row's own masking, so it is not comparable across rows (when 10–20% of the predicted positions show the true token, the loss drops).\n\n",
        _ => "",
    }
}

/// Mean LM predictions per training sequence of a row: measured in its runs (pretrain.json),
/// else the scale's bound; the flag says whether it was measured.
fn predictions_per_seq(rr: &RowResults, scale: &Scale) -> (f64, bool) {
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

fn section_figure5(out: &mut String, summary: &mut Vec<String>, inp: &Inputs) {
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
    let scale = &inp.ctx.scale;
    let steps = scale.checkpoint_steps();
    let batch = scale.pretrain.batch_size as f64;
    let (pm, pm_measured) = predictions_per_seq(mlm, scale);
    let (pl, pl_measured) = predictions_per_seq(ltr, scale);
    let _ = writeln!(out, "## {}\n", Experiment::Figure5.title());
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
    let ck = |i: usize| {
        if i + 1 == steps.len() {
            Checkpoint::Final
        } else {
            Checkpoint::Step(steps[i])
        }
    };
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
    let ctl_vals = ctl
        .map(|c| c.values(Checkpoint::Final, task))
        .unwrap_or_default();
    let mut body = vec![vec![
        "0 (no pre-training)".to_string(),
        fmt_ms(&ctl_vals, 1),
        fmt_ms(&ctl_vals, 1),
        "0 / 0".into(),
        "—".into(),
        "—".into(),
    ]];
    let mut by_step = vec![point(0.0, &ctl_vals), point(0.0, &ctl_vals)];
    let mut by_tokens = by_step.clone();
    for (i, &step) in steps.iter().enumerate() {
        let (vm, vl) = (mlm.values(ck(i), task), ltr.values(ck(i), task));
        let tokens = (step as f64 * batch * pm, step as f64 * batch * pl);
        let gate = helped(welch_diff(&vm, &ctl_vals)) || helped(welch_diff(&vl, &ctl_vals));
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
    let last = steps.len().saturating_sub(1);
    let vs_none = |r: &RowResults| fmt_diff(welch_diff(&r.values(ck(last), task), &ctl_vals));
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

/// (x, mean, sd) of a point, NaN mean when there is no value.
fn point(x: f64, v: &[f64]) -> (f64, f64, f64) {
    let (m, s) = mean_sd(v);
    (x, m, s)
}

/// Figure 5's two plots; `by_*` alternate MLM and LTR points.
fn figure5_plots(
    out: &mut String,
    inp: &Inputs,
    labels: [&str; 2],
    by_step: &[(f64, f64, f64)],
    by_tokens: &[(f64, f64, f64)],
) {
    let task = Experiment::Figure5.tasks()[0];
    let split = |pts: &[(f64, f64, f64)]| -> Vec<Series> {
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

/// Table 6's verdicts on one row: perplexity (gated on the default beating the control's
/// perplexity) and mean accuracy over the columns where pre-training helped.
struct SizeVerdict {
    ppl: &'static str,
    acc: &'static str,
    cells: [String; 2],
}

fn size_verdict(
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

fn section_table6(out: &mut String, summary: &mut Vec<String>, inp: &Inputs) {
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

fn table6_values(
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
            verdicts.push(format!(
                "- **{}** ({what} than the default): perplexity {}; accuracy {}.",
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
    out.push_str("Verdict per row:\n\n");
    for v in verdicts {
        let _ = writeln!(out, "{v}");
    }
    out.push('\n');
}

fn table6_plots(out: &mut String, inp: &Inputs, rows: &[&RowResults]) {
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
