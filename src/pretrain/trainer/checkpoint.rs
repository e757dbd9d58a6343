//! Checkpoints of a run (written by rank 0) and exact resume from the last complete one.

use crate::bert::{save_pretrained, Checkpoint};
use crate::error::{invalid, Error, Result};
use crate::pretrain::config::PretrainConfig;
use crate::pretrain::trainer::Pretrainer;
use crate::train::checkpoint::{load_optimizer, save_optimizer, write_atomic};
use serde_json::json;
use std::path::PathBuf;

impl Pretrainer<'_> {
    /// Writes a checkpoint of the current step (rank 0 only).
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        crate::train::ensure_finite_weights(&[&self.store], "a checkpoint")?;
        let ck = self.checkpoints()?;
        ck.save(self.step, |dir| {
            save_pretrained(dir, &self.bert_config, &self.store)?;
            if let Ok(ms) = std::env::var("CLOZE_CHECKPOINT_PAUSE_MS") {
                // test hook: widen the window in which a crash leaves a half-written checkpoint
                std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(0)));
            }
            save_optimizer(&dir.join("optimizer.safetensors"), &self.store, &self.opt)?;
            let vocab_sha256 = crate::train::checkpoint::sha256_file(&self.cfg.data.vocab)?;
            let state = json!({
                "step": self.step,
                "config": self.cfg,
                "vocab_sha256": vocab_sha256,
            });
            write_atomic(
                &dir.join("trainer_state.json"),
                serde_json::to_string_pretty(&state).unwrap().as_bytes(),
            )?;
            std::fs::copy(&self.cfg.data.vocab, dir.join("vocab.txt")).map_err(|e| Error::Io {
                path: self.cfg.data.vocab.display().to_string(),
                source: e,
            })?;
            self.save_tokenizer_config(dir)
        })
    }

    /// Restores the last complete checkpoint, if any; errors if it was made with another
    /// config. Returns the restored step.
    pub fn resume(&mut self) -> Result<Option<u64>> {
        let Some((step, dir)) = self.checkpoints()?.latest()? else {
            return Ok(None);
        };
        let state_path = dir.join("trainer_state.json");
        let text = std::fs::read_to_string(&state_path).map_err(|e| Error::Io {
            path: state_path.display().to_string(),
            source: e,
        })?;
        let state: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Format {
            path: state_path.display().to_string(),
            detail: e.to_string(),
        })?;
        let saved: PretrainConfig =
            serde_json::from_value(state["config"].clone()).map_err(|e| Error::Format {
                path: state_path.display().to_string(),
                detail: e.to_string(),
            })?;
        let differ = config_differences(&saved, &self.cfg);
        if !differ.is_empty() {
            return invalid(
                "resume",
                format!(
                    "checkpoint {} was made with a different config; differing keys:\n{}",
                    dir.display(),
                    differ.join("\n")
                ),
            );
        }
        // the vocabulary is part of the run's identity: the same path with other contents
        // would give the ids another meaning
        if let Some(want) = state.get("vocab_sha256").and_then(|v| v.as_str()) {
            let got = crate::train::checkpoint::sha256_file(&self.cfg.data.vocab)?;
            if got != want {
                return invalid(
                    "resume",
                    format!(
                        "{} has changed since checkpoint {} was written (sha256 {got}, the checkpoint's is {want}); the checkpoint's own copy is {}",
                        self.cfg.data.vocab.display(),
                        dir.display(),
                        dir.join("vocab.txt").display()
                    ),
                );
            }
        }
        let ckpt = Checkpoint::read(dir.join("model.safetensors"))?;
        ckpt.load_into(&mut self.store)?;
        load_optimizer(
            &dir.join("optimizer.safetensors"),
            &self.store,
            &mut self.opt,
        )?;
        self.step = step;
        Ok(Some(step))
    }
}

/// The keys (`section.key = checkpoint value, now value`) in which two configs differ as runs:
/// `output_dir` is left out (the checkpoint was found in it, however the path is spelled) and
/// the data paths are compared as the files they name, so the same config read through
/// another path spelling resumes.
pub fn config_differences(saved: &PretrainConfig, now: &PretrainConfig) -> Vec<String> {
    fn identity(cfg: &PretrainConfig) -> serde_json::Value {
        let mut c = cfg.clone();
        c.output_dir = PathBuf::new();
        let canon = |p: &mut PathBuf| {
            if let Ok(q) = std::fs::canonicalize(&*p) {
                *p = q;
            }
        };
        canon(&mut c.data.vocab);
        canon(&mut c.data.train);
        if let Some(h) = c.data.heldout.as_mut() {
            canon(h);
        }
        serde_json::to_value(&c).expect("config serialises")
    }
    fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, x, out);
                }
            }
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    flatten("", &identity(saved), &mut a);
    flatten("", &identity(now), &mut b);
    let a: std::collections::BTreeMap<_, _> = a.into_iter().collect();
    let b: std::collections::BTreeMap<_, _> = b.into_iter().collect();
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |m: &std::collections::BTreeMap<String, String>| {
                m.get(k).cloned().unwrap_or_else(|| "(absent)".into())
            };
            format!("  {k}: checkpoint {}, now {}", show(&a), show(&b))
        })
        .collect()
}
