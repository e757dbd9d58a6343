//! The lock-step engine check: cloze and PyTorch trained from the same initial weights on the
//! same batches, their losses compared step by step. `paper-repro/pytorch/lockstep.sh` drives
//! it: [`write_stream`] writes the default row's batches (seed 1) as cloze's trainer reads
//! them, PyTorch trains on that stream from its own initialisation and saves that
//! initialisation, and [`train_from`] trains cloze from it on the same stream.
//!
//! Where the independent engine check (each engine with its own initialisation and masked
//! instances) can only compare the spread of seeds, this one compares the same computation.

use super::pretrain::pretrain_config;
use super::Ctx;
use crate::plan::{Masking, Objective, PretrainSpec};
use anyhow::{bail, Context, Result};
use cloze::pretrain::trainer::Pretrainer;
use std::io::Write;
use std::path::Path;

/// The default row (MLM+NSP, 80/10/10, the scale's size) with seed 1.
fn default_trainer(ctx: &Ctx, out: &Path) -> Result<Pretrainer<'static>> {
    let spec = PretrainSpec {
        size: ctx.scale.default_size,
        objective: Objective::MlmNsp,
        masking: Masking::DEFAULT,
    };
    let cfg = pretrain_config(ctx, &spec, 1, out)?;
    Ok(Pretrainer::single(cfg)?)
}

fn check_steps(ctx: &Ctx, steps: u64) -> Result<()> {
    let most = ctx.scale.pretrain.steps;
    if steps == 0 || steps > most {
        bail!("--steps {steps} is outside 1..={most} (the scale's pre-training steps)");
    }
    Ok(())
}

/// Writes the instances of steps `0..steps` in the order the trainer reads them, one JSON
/// object per line (`tokens`, `segments`, `next`, `positions`, `labels`: the instance after
/// masking, as `mlm_reference.py --instances` reads it).
pub fn write_stream(ctx: &Ctx, steps: u64, out: &Path) -> Result<()> {
    check_steps(ctx, steps)?;
    let scratch = Scratch::beside(out)?;
    let mut p = default_trainer(ctx, &scratch.0)?;
    let tmp = out.with_extension("partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let data = p.data.clone();
    for step in 0..steps {
        for i in p.batch_indices(step) {
            let x = &data.train[i];
            let line = serde_json::json!({
                "tokens": x.tokens, "segments": x.segment_ids, "next": u8::from(x.is_random_next),
                "positions": x.masked_positions, "labels": x.masked_labels,
            });
            writeln!(w, "{line}")?;
        }
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// Trains the default row for `steps` steps from the weights in `init` (a transformers
/// folder with every parameter of cloze's model, as PyTorch saved its initialisation) and
/// writes `step lm_loss nsp_loss grad_norm` per step to `out`.
pub fn train_from(ctx: &Ctx, steps: u64, init: &Path, out: &Path) -> Result<()> {
    check_steps(ctx, steps)?;
    let scratch = Scratch::beside(out)?;
    let mut p = default_trainer(ctx, &scratch.0)?;
    let file = init.join("model.safetensors");
    let ckpt = cloze::bert::checkpoint::Checkpoint::read(&file)?;
    // every parameter from the file: none of cloze's own initialisation is left
    ckpt.load_into(&mut p.store)
        .with_context(|| format!("loading {} into the default row's model", file.display()))?;
    let mut text = String::new();
    for _ in 0..steps {
        let (t, norm) = p.train_step()?;
        text += &format!(
            "{} {:.6} {:.6} {:.6}\n",
            p.step,
            t.lm_loss(),
            t.nsp_loss(),
            norm
        );
    }
    cloze::train::checkpoint::write_atomic(out, text.as_bytes())?;
    Ok(())
}

/// A scratch output folder for the trainer (no checkpoint is saved there), removed when
/// dropped, on success or error.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn beside(out: &Path) -> Result<Scratch> {
        let dir = out.with_extension("trainer");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
