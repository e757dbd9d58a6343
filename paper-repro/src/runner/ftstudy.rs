//! The fine-tuning study: how the scale's pre-trained rows and the no-pre-training control
//! respond to the fine-tuning settings (epochs, learning rate, restarts), judged on the dev
//! part carved from each task's training split only. The evaluation split is never read
//! here, so choosing a protocol from this study leaves the report's test scores untouched.
//!
//! Each run writes one JSON line per epoch: row, seed, restart, epochs of its schedule,
//! learning rate, epoch (1-based) and dev accuracy.

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
    Ok(match s {
        "rte" => Task::Rte,
        "qnli" => Task::Qnli,
        "mrpc" => Task::Mrpc,
        "sst-2" => Task::Sst2,
        _ => bail!("--task {s:?}: the fine-tuning study runs rte, qnli, mrpc or sst-2"),
    })
}

/// Runs the study and appends its lines to `out` (created if missing); runs already in
/// `out` (same row, seed, restart, epochs and rate) are skipped, so an interrupted study
/// continues where it stopped.
pub fn run(ctx: &Ctx, study: &Study, out: &Path) -> Result<()> {
    if study.epochs.is_empty() || study.learning_rates.is_empty() || study.restarts == 0 {
        bail!("the study needs at least one epoch count, one learning rate and one restart");
    }
    let d = ctx.class_data(study.task)?;
    let dropout = study
        .dropout
        .map_or_else(|| "null".to_string(), |p| p.to_string());
    let f = &ctx.scale.finetune;
    let done = std::fs::read_to_string(out).unwrap_or_default();
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
                let ft_seed = seed + 1000 * restart;
                for &epochs in &study.epochs {
                    for &lr in &study.learning_rates {
                        let head = format!(
                            "\"row\":\"{row}\",\"dropout\":{dropout},\"seed\":{seed},\"restart\":{restart},\"epochs\":{epochs},\"lr\":{lr},"
                        );
                        let key = format!("{head}\"epoch\":{epochs},");
                        if done.contains(&key) {
                            continue;
                        }
                        let cfg = FinetuneConfig {
                            model_dir: dir.clone(),
                            num_labels: d.num_labels,
                            max_seq_length: f.max_seq_length,
                            batch_size: f.batch_size,
                            epochs,
                            learning_rates: vec![lr],
                            warmup_proportion: 0.1,
                            seed: ft_seed,
                            max_train_examples: None,
                            pair_truncation: Default::default(),
                            dropout: study.dropout,
                        };
                        let mut lines = Vec::new();
                        finetune_once_observed(&cfg, lr, &d.train, &d.dev, &mut |e| {
                            if let FinetuneEvent::Epoch {
                                epoch,
                                dev_accuracy,
                                ..
                            } = e
                            {
                                lines.push(format!(
                                    "{{{head}\"epoch\":{e},\"dev_accuracy\":{dev_accuracy}}}",
                                    e = epoch + 1
                                ));
                            }
                        })?;
                        for l in &lines {
                            writeln!(file, "{l}")?;
                        }
                        file.flush()?;
                        eprintln!(
                            "{row} dropout {dropout} seed {seed} restart {restart} epochs {epochs} lr {lr}: {}",
                            lines.last().map_or("", String::as_str)
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
