//! The loop: each of its concerns (the output folder and its lock, the metrics log, the
//! progress bar, the logging window, evaluation, checkpoints, the final model) is a small
//! function, and [`Pretrainer::run_until`] reads as the sequence of them.

use crate::bert::save_pretrained;
use crate::error::{Error, Result};
use crate::pretrain::trainer::{Pretrainer, Totals};
use crate::train::checkpoint::write_atomic;
use crate::train::lock::RunLock;
use crate::train::metrics::MetricsLog;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// The steps since the last metrics line: their totals and when they started.
struct Window {
    totals: Totals,
    start: Instant,
}

impl Window {
    fn new() -> Window {
        Window {
            totals: Totals::default(),
            start: Instant::now(),
        }
    }
}

impl Pretrainer<'_> {
    /// Runs to `train.steps`, resuming from the last checkpoint. Rank 0 writes the metrics
    /// log, the progress bar and checkpoints. Returns the last held-out evaluation (all zeros
    /// when there is no held-out data, e.g. a held-out split of one document under NSP).
    pub fn run(&mut self) -> Result<Totals> {
        self.run_until(self.cfg.train.steps)
    }

    /// Like [`Pretrainer::run`] but stops after step `stop` (at most `train.steps`), as an
    /// interrupted run would; the schedule still follows `train.steps`.
    pub fn run_until(&mut self, stop: u64) -> Result<Totals> {
        let rank0 = self.comm.rank() == 0;
        let out = self.cfg.output_dir.clone();
        let _lock = self.lock_output(rank0, &out)?;
        self.forget_checkpoints_if_fresh(rank0)?;
        let resumed = self.resume()?;
        let mut log = self.open_metrics(rank0, &out, resumed)?;
        let own_bar = self.progress.is_none();
        let bar = self.progress_bar(rank0);
        let steps = self.cfg.train.steps;
        let mut window = Window::new();
        let mut last_eval = None;
        while self.step < steps.min(stop) {
            let lr = self.schedule.lr(self.step);
            let (tot, norm) = self.train_step()?;
            window.totals.add(&tot);
            let step = self.step;
            if self.log_due(step) {
                self.log_window(&mut window, lr, norm, &bar, log.as_mut())?;
            }
            if self.eval_due(step) && !self.data.heldout.is_empty() {
                let e = self.evaluate()?;
                last_eval = Some(e);
                log_eval(log.as_mut(), step, &e)?;
            }
            if rank0 && self.checkpoint_due(step) {
                self.save_checkpoint()?;
            }
            self.comm.barrier();
            bar.set_position(step);
        }
        if own_bar {
            bar.finish();
        }
        let last_eval = self.final_eval(last_eval)?;
        if rank0 {
            self.save_final(&out)?;
        }
        Ok(last_eval)
    }

    /// Creates the output folder; rank 0 writes everything, so it holds the folder's lock
    /// for the whole run (the returned guard).
    fn lock_output(&self, rank0: bool, out: &Path) -> Result<Option<RunLock>> {
        std::fs::create_dir_all(out).map_err(|e| Error::Io {
            path: out.display().to_string(),
            source: e,
        })?;
        Ok(if rank0 {
            Some(RunLock::acquire(out)?)
        } else {
            None
        })
    }

    /// With [`Pretrainer::fresh`], deletes the run's checkpoints (rank 0, under the lock)
    /// once, so the run starts from step 0.
    fn forget_checkpoints_if_fresh(&mut self, rank0: bool) -> Result<()> {
        if !self.fresh {
            return Ok(());
        }
        let ck = self.checkpoints()?;
        if rank0 && ck.root().exists() {
            std::fs::remove_dir_all(ck.root()).map_err(|e| Error::Io {
                path: ck.root().display().to_string(),
                source: e,
            })?;
        }
        self.fresh = false;
        self.comm.barrier();
        Ok(())
    }

    /// Rank 0 writes the run's config and opens the metrics log: kept up to the resumed step,
    /// started afresh when nothing was resumed. Other ranks log nothing.
    fn open_metrics(
        &self,
        rank0: bool,
        out: &Path,
        resumed: Option<u64>,
    ) -> Result<Option<MetricsLog>> {
        if !rank0 {
            return Ok(None);
        }
        let metrics_path = out.join("metrics.jsonl");
        write_atomic(
            &out.join("config.toml"),
            self.cfg.to_toml_string().as_bytes(),
        )?;
        MetricsLog::truncate_after_step(&metrics_path, resumed.unwrap_or(0))?;
        if resumed.is_none() {
            let _ = std::fs::remove_file(&metrics_path);
        }
        Ok(Some(MetricsLog::append(&metrics_path)?))
    }

    /// The bar progress is shown on: the caller's ([`Pretrainer::progress`]) or a new one on
    /// rank 0, a hidden one elsewhere; set to the run's steps.
    fn progress_bar(&self, rank0: bool) -> ProgressBar {
        let steps = self.cfg.train.steps;
        if let (true, Some(pb)) = (rank0, self.progress.clone()) {
            pb.set_length(steps);
            pb.set_position(self.step);
            pb
        } else if rank0 {
            let pb = ProgressBar::new(steps);
            pb.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  eta {eta}")
                    .expect("valid template"),
            );
            pb.set_position(self.step);
            pb
        } else {
            ProgressBar::hidden()
        }
    }

    /// A metrics line every `log_every` steps and at the last step.
    fn log_due(&self, step: u64) -> bool {
        let t = &self.cfg.train;
        step.is_multiple_of(t.log_every.max(1)) || step == t.steps
    }

    /// An evaluation every `eval_every` steps (when set) and at the last step.
    fn eval_due(&self, step: u64) -> bool {
        let t = &self.cfg.train;
        (t.eval_every > 0 && step.is_multiple_of(t.eval_every)) || step == t.steps
    }

    /// A checkpoint every `checkpoint_every` steps (when set) and at the last step.
    fn checkpoint_due(&self, step: u64) -> bool {
        let t = &self.cfg.train;
        (t.checkpoint_every > 0 && step.is_multiple_of(t.checkpoint_every)) || step == t.steps
    }

    /// Shows the window's losses and throughput on the bar, writes its metrics line (with
    /// the step's learning rate `lr` and gradient norm `norm`) and starts a new window.
    fn log_window(
        &self,
        window: &mut Window,
        lr: f32,
        norm: f32,
        bar: &ProgressBar,
        log: Option<&mut MetricsLog>,
    ) -> Result<()> {
        let w = &window.totals;
        let secs = window.start.elapsed().as_secs_f64();
        let tps = w.tokens / secs.max(1e-9);
        bar.set_message(format!(
            "lm {:.3}  nsp {:.3}  {:.0} tok/s",
            w.lm_loss(),
            w.nsp_loss(),
            tps
        ));
        if let Some(log) = log {
            log.write(&json!({
                "step": self.step, "lm_loss": w.lm_loss(), "lm_accuracy": w.lm_accuracy(),
                "nsp_loss": w.nsp_loss(), "nsp_accuracy": w.nsp_accuracy(),
                "learning_rate": lr, "grad_norm": norm, "tokens_per_second": tps,
                "comm_seconds": self.comm_seconds,
            }))?;
        }
        *window = Window::new();
        Ok(())
    }

    /// The run's result: the last evaluation of the loop, or, for a run resumed at its last
    /// step (which trained nothing here), an evaluation of the finished model, so rerunning
    /// a finished run reports its result instead of zeros.
    fn final_eval(&mut self, last_eval: Option<Totals>) -> Result<Totals> {
        Ok(match last_eval {
            Some(e) => e,
            None if self.step == self.cfg.train.steps && !self.data.heldout.is_empty() => {
                self.evaluate()?
            }
            None => Totals::default(),
        })
    }

    /// Writes the final model, its vocabulary and (with `init_from`) the source's tokenizer
    /// settings to `out/final` (rank 0).
    fn save_final(&self, out: &Path) -> Result<()> {
        crate::train::ensure_finite_weights(&[&self.store], "the final model")?;
        save_pretrained(out.join("final"), &self.bert_config, &self.store)?;
        let vocab = std::fs::read(&self.cfg.data.vocab).map_err(|e| Error::Io {
            path: self.cfg.data.vocab.display().to_string(),
            source: e,
        })?;
        write_atomic(&out.join("final").join("vocab.txt"), &vocab)?;
        self.save_tokenizer_config(&out.join("final"))
    }
}

/// Writes an evaluation's metrics line (when this rank logs).
fn log_eval(log: Option<&mut MetricsLog>, step: u64, e: &Totals) -> Result<()> {
    if let Some(log) = log {
        log.write(&json!({
            "step": step, "eval_lm_loss": e.lm_loss(),
            "eval_lm_perplexity": e.lm_loss().exp(),
            "eval_lm_unigram_loss": e.lm_unigram_loss(),
            "eval_lm_context_free_loss": e.lm_context_free_loss(),
            "eval_lm_accuracy": e.lm_accuracy(),
            "eval_nsp_accuracy": e.nsp_accuracy(),
        }))?;
    }
    Ok(())
}
