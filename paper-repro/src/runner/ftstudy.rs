//! The fine-tuning study: how the scale's pre-trained rows and the no-pre-training control
//! respond to the fine-tuning settings (epochs, learning rate, restarts), judged on the dev
//! part carved from each task's training split only. The evaluation split is never read
//! here, so choosing a protocol from this study leaves the report's test scores untouched.
//!
//! Each run writes one JSON line per epoch: row, seed, restart, epochs of its schedule,
//! learning rate, epoch (1-based) and dev accuracy.

use super::eval::class_config;
use super::pretrain::model_dir;
use super::Ctx;
use crate::plan::Checkpoint;
use crate::tasks::Task;
use anyhow::{bail, Context, Result};
use cloze::finetune::trainer::{finetune_once_observed, FinetuneConfig, FinetuneEvent};
use std::io::Write;
use std::path::Path;

/// What to fine-tune and how.
pub struct Study {
    pub task: Task,
    /// Table 5 row slugs (folders of `runs/<scale>/table5/`).
    pub rows: Vec<String>,
    /// Epoch counts of the schedules to try (each is a separate run).
    pub epochs: Vec<usize>,
    pub learning_rates: Vec<f32>,
    /// Fine-tuning seeds per model: the pre-training seed, then seed + 1000 × r.
    pub restarts: u64,
    /// Pre-training seeds to fine-tune (default: the scale's).
    pub seeds: Option<Vec<u64>>,
    /// Fine-tuning dropout (`None`: the pre-trained folder's own, 0 for the studied recipe).
    pub dropout: Option<f32>,
}

/// The classification tasks the study can run (tagging and SQuAD have their own trainers).
pub fn parse_task(s: &str) -> Result<Task> {
    let classification = Task::ALL
        .into_iter()
        .filter(|t| !t.is_tagging() && *t != Task::Squad);
    classification
        .clone()
        .find(|t| t.slug() == s)
        .with_context(|| {
            let names: Vec<&str> = classification.map(Task::slug).collect();
            format!(
                "--task {s:?}: the fine-tuning study runs {}",
                names.join(", ")
            )
        })
}

/// One epoch of one run: a line of the study's output.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Line {
    row: String,
    /// `null`: the pre-trained folder's own dropout.
    #[serde(default)]
    dropout: Option<f32>,
    seed: u64,
    restart: u64,
    /// Epochs of the run's schedule.
    epochs: usize,
    lr: f32,
    /// This line's epoch, 1-based.
    epoch: usize,
    dev_accuracy: f64,
}

/// What identifies a run: row, dropout, seed, restart, epochs and rate (floats by their bits).
type RunKey = (String, Option<u32>, u64, u64, usize, u32);

impl Line {
    fn run_key(&self) -> RunKey {
        (
            self.row.clone(),
            self.dropout.map(f32::to_bits),
            self.seed,
            self.restart,
            self.epochs,
            self.lr.to_bits(),
        )
    }
}

/// The runs `out` already holds to their last epoch (none if it does not exist); a line that
/// is not a study line is an error naming the file and line.
fn finished_runs(out: &Path) -> Result<std::collections::HashSet<RunKey>> {
    let text = match std::fs::read_to_string(out) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", out.display())),
    };
    let mut done = std::collections::HashSet::new();
    for (i, l) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line: Line = serde_json::from_str(l).with_context(|| {
            format!(
                "{} line {}: not a fine-tuning study line",
                out.display(),
                i + 1
            )
        })?;
        if line.epoch == line.epochs {
            done.insert(line.run_key());
        }
    }
    Ok(done)
}

/// Runs the study and appends its lines to `out` (created if missing); runs already in
/// `out` (same row, dropout, seed, restart, epochs and rate) are skipped, so an interrupted
/// study continues where it stopped. Each run's lines go out in one append, so two studies
/// on the same file lose nothing (they may repeat a run; the summary keeps one).
pub fn run(ctx: &Ctx, study: &Study, out: &Path) -> Result<()> {
    if study.epochs.is_empty() || study.learning_rates.is_empty() || study.restarts == 0 {
        bail!("the study needs at least one epoch count, one learning rate and one restart");
    }
    let d = ctx.class_data(study.task)?;
    let done = finished_runs(out)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .with_context(|| format!("opening {}", out.display()))?;
    for row in &study.rows {
        for &seed in study.seeds.as_ref().unwrap_or(&ctx.scale.seeds) {
            let dir = model_dir(
                &ctx.runs
                    .join("table5")
                    .join(row)
                    .join(format!("seed-{seed}")),
                Checkpoint::Final,
            );
            if !dir.join("config.json").is_file() {
                bail!(
                    "row {row:?} seed {seed}: no pre-trained model at {}",
                    dir.display()
                );
            }
            for restart in 0..study.restarts {
                for &epochs in &study.epochs {
                    for &lr in &study.learning_rates {
                        let line = |epoch, dev_accuracy| Line {
                            row: row.clone(),
                            dropout: study.dropout,
                            seed,
                            restart,
                            epochs,
                            lr,
                            epoch,
                            dev_accuracy,
                        };
                        if done.contains(&line(epochs, 0.0).run_key()) {
                            continue;
                        }
                        // the suite's settings, with the study's changes
                        let cfg = FinetuneConfig {
                            epochs,
                            learning_rates: vec![lr],
                            dropout: study.dropout,
                            ..class_config(ctx, &dir, d.num_labels, seed + 1000 * restart)
                        };
                        let mut lines = Vec::new();
                        finetune_once_observed(&cfg, lr, &d.train, &d.dev, &mut |e| {
                            if let FinetuneEvent::Epoch {
                                epoch,
                                dev_accuracy,
                                ..
                            } = e
                            {
                                lines.push(line(epoch + 1, *dev_accuracy));
                            }
                        })?;
                        // one append per run, so a second study on the same file cannot
                        // interleave its lines with this run's
                        let mut text = String::new();
                        for l in &lines {
                            text += &serde_json::to_string(l)?;
                            text.push('\n');
                        }
                        file.write_all(text.as_bytes())?;
                        if let Some(l) = lines.last() {
                            eprintln!(
                                "{row} dropout {:?} seed {seed} restart {restart} epochs {epochs} lr {lr}: dev accuracy {:.4}",
                                study.dropout, l.dev_accuracy
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_runs_are_those_with_their_last_epoch_and_old_lines_still_read() {
        let dir = std::env::temp_dir().join(format!("ftstudy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("study.jsonl");
        assert!(
            finished_runs(&out).unwrap().is_empty(),
            "a missing file holds no runs"
        );
        // a line from before the dropout field existed, and a run stopped after epoch 1 of 2
        std::fs::write(
            &out,
            "{\"row\":\"none\",\"seed\":1,\"restart\":0,\"epochs\":1,\"lr\":0.001,\"epoch\":1,\"dev_accuracy\":0.5}\n\
             {\"row\":\"none\",\"dropout\":0.1,\"seed\":1,\"restart\":0,\"epochs\":2,\"lr\":0.001,\"epoch\":1,\"dev_accuracy\":0.5}\n",
        )
        .unwrap();
        let done = finished_runs(&out).unwrap();
        assert_eq!(done.len(), 1);
        assert!(done.contains(&("none".to_string(), None, 1, 0, 1, 0.001f32.to_bits())));
        std::fs::write(&out, "{\"row\":\"none\"}\nnot json\n").unwrap();
        let err = format!("{:#}", finished_runs(&out).unwrap_err());
        assert!(
            err.contains("line 1: not a fine-tuning study line"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_line_round_trips_through_json() {
        let l = Line {
            row: "mlm-nsp".into(),
            dropout: Some(0.1),
            seed: 2,
            restart: 1,
            epochs: 3,
            lr: 3e-4,
            epoch: 2,
            dev_accuracy: 0.75,
        };
        let text = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<Line>(&text).unwrap(), l);
        assert!(text.contains("\"lr\":0.0003"), "{text}");
    }
}
