//! A pre-training job: the row's config, the run, and its result file; the no-pre-training
//! control saves its random initialisation instead.

use crate::plan::{Checkpoint, Objective, PretrainSpec};
use crate::runner::{pretrain_result_path, write_json, Ctx, PretrainResult};
use anyhow::{Context, Result};
use cloze::pretrain::config::PretrainConfig;
use cloze::pretrain::trainer::Pretrainer;
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The pre-training config of a row at a scale, as cloze's TOML.
pub fn pretrain_config(
    ctx: &Ctx,
    spec: &PretrainSpec,
    seed: u64,
    out: &Path,
) -> Result<PretrainConfig> {
    let s = &ctx.scale;
    let p = &s.pretrain;
    let m = &spec.masking;
    let every = p.steps.div_ceil(p.checkpoints.max(1));
    let toml = format!(
        r#"output_dir = {out:?}

[model]
preset = "tiny"
num_hidden_layers = {layers}
hidden_size = {hidden}
num_attention_heads = {heads}
intermediate_size = {inter}
max_position_embeddings = {maxpos}
hidden_dropout_prob = {dropout}
attention_probs_dropout_prob = {dropout}
pre_layer_norm = {pre_ln}

[data]
vocab = {vocab:?}
train = {train:?}
heldout = {heldout:?}
max_seq_length = {seq}
short_seq_prob = 0.1
masked_lm_prob = {mlm_prob}
max_predictions_per_seq = {train_maxpred}
heldout_masked_lm_prob = 0.15
heldout_max_predictions_per_seq = {maxpred}
mask = {mask}
keep = {keep}
random = {random}
dupe_factor = {dupe}

[train]
objective = "{objective}"
batch_size = {batch}
steps = {steps}
learning_rate = {lr:e}
warmup_steps = {warmup}
weight_decay = 0.01
max_grad_norm = 1.0
seed = {seed}
log_every = {log_every}
eval_every = {every}
eval_batches = {eval_batches}
checkpoint_every = {every}
keep_checkpoints = {keep_ck}
init_lm_bias = "{lm_bias}"
init_positions = "{positions}"
"#,
        out = out.display().to_string(),
        layers = spec.size.layers,
        hidden = spec.size.hidden,
        heads = spec.size.heads,
        inter = 4 * spec.size.hidden,
        maxpos = s.max_positions(),
        vocab = ctx.corpus.vocab.display().to_string(),
        train = ctx.corpus.train.display().to_string(),
        heldout = ctx.corpus.heldout.display().to_string(),
        seq = p.max_seq_length,
        maxpred = p.max_predictions_per_seq,
        mask = m.mask as f64 / 100.0,
        keep = m.same as f64 / 100.0,
        random = m.random as f64 / 100.0,
        objective = spec.objective.toml(),
        batch = p.batch_size,
        steps = p.steps,
        lr = p.learning_rate,
        warmup = p.warmup_steps,
        seed = seed,
        log_every = (p.steps / 50).max(1),
        every = every,
        eval_batches = p.eval_batches,
        keep_ck = p.checkpoints.max(1),
        dropout = p.recipe.dropout,
        dupe = p.recipe.dupe_factor,
        mlm_prob = p.recipe.masked_lm_prob,
        train_maxpred = p
            .recipe
            .train_predictions(p.max_seq_length, p.max_predictions_per_seq),
        pre_ln = p.recipe.pre_layer_norm,
        lm_bias = if p.recipe.unigram_lm_bias {
            "unigram"
        } else {
            "zeros"
        },
        positions = if p.recipe.sinusoidal_positions {
            "sinusoidal"
        } else {
            "random"
        },
    );
    Ok(PretrainConfig::from_toml_str(&toml, "paper-repro")?)
}

/// Mean LM predictions per training sequence of a run's instances.
pub(crate) fn mean_predictions(p: &Pretrainer, objective: Objective) -> Option<f64> {
    let train = &p.data.train;
    if train.is_empty() {
        return None;
    }
    let per = |i: &cloze::pretrain::instances::Instance| match objective {
        Objective::Ltr => i.tokens.len().saturating_sub(1),
        _ => i.masked_positions.len(),
    };
    Some(train.iter().map(per).sum::<usize>() as f64 / train.len() as f64)
}

/// The no-pre-training control: the default model's random initialisation with the run's
/// seed, saved where a pre-training leaves its final model, with its held-out MLM loss.
pub(crate) fn run_random_init(ctx: &Ctx, spec: &PretrainSpec, seed: u64) -> Result<String> {
    let dir = ctx.run_dir(spec, seed);
    let out = dir.join("pretrain");
    let cfg = pretrain_config(ctx, spec, seed, &out)?;
    let t0 = Instant::now();
    let mut p = Pretrainer::single(cfg)?;
    let parameters = spec.size.parameters(
        p.bert_config.vocab_size,
        p.bert_config.max_position_embeddings,
    );
    let eval = p.evaluate()?;
    let final_dir = out.join("final");
    cloze::bert::save_pretrained(&final_dir, &p.bert_config, &p.store)?;
    std::fs::copy(&ctx.corpus.vocab, final_dir.join("vocab.txt"))
        .with_context(|| format!("copying the vocabulary to {}", final_dir.display()))?;
    let r = PretrainResult {
        spec: *spec,
        seed,
        steps: 0,
        token_slots: 0,
        parameters,
        heldout_lm_loss: eval.lm_loss(),
        heldout_lm_perplexity: eval.lm_loss().exp(),
        heldout_lm_accuracy: eval.lm_accuracy(),
        heldout_nsp_accuracy: eval.nsp_accuracy(),
        seconds: t0.elapsed().as_secs_f64(),
        mean_predictions_per_seq: Some(0.0),
        heldout_unigram_loss: Some(eval.lm_unigram_loss()),
        heldout_context_free_loss: Some(eval.lm_context_free_loss()),
    };
    write_json(&pretrain_result_path(&dir), &r)?;
    Ok(format!(
        "random init, held-out LM loss {:.3} (ln vocab {:.3})",
        r.heldout_lm_loss,
        (p.bert_config.vocab_size as f64).ln()
    ))
}

pub(crate) fn run_pretrain(
    ctx: &Ctx,
    spec: &PretrainSpec,
    seed: u64,
    bar: &ProgressBar,
) -> Result<String> {
    if spec.objective == Objective::None {
        return run_random_init(ctx, spec, seed);
    }
    let dir = ctx.run_dir(spec, seed);
    let out = dir.join("pretrain");
    let cfg = pretrain_config(ctx, spec, seed, &out)?;
    let t0 = Instant::now();
    let mut p = Pretrainer::single(cfg)?;
    p.progress = Some(bar.clone());
    // encoder with embeddings and pooler, as Table 6 counts them (heads excluded)
    let parameters = spec.size.parameters(
        p.bert_config.vocab_size,
        p.bert_config.max_position_embeddings,
    );
    let eval = p.run()?;
    let seconds = t0.elapsed().as_secs_f64();
    // the optimizer state is only needed to resume, from the newest checkpoint
    let newest = p.checkpoints()?.latest()?.map(|(_, d)| d);
    if let Ok(entries) = std::fs::read_dir(out.join("checkpoints")) {
        for e in entries.flatten() {
            if Some(e.path()) != newest {
                let _ = std::fs::remove_file(e.path().join("optimizer.safetensors"));
            }
        }
    }
    let s = &ctx.scale.pretrain;
    let r = PretrainResult {
        spec: *spec,
        seed,
        steps: s.steps,
        token_slots: s.steps * (s.batch_size * s.max_seq_length) as u64,
        parameters,
        heldout_lm_loss: eval.lm_loss(),
        heldout_lm_perplexity: eval.lm_loss().exp(),
        heldout_lm_accuracy: eval.lm_accuracy(),
        heldout_nsp_accuracy: eval.nsp_accuracy(),
        seconds,
        mean_predictions_per_seq: mean_predictions(&p, spec.objective),
        heldout_unigram_loss: Some(eval.lm_unigram_loss()),
        heldout_context_free_loss: Some(eval.lm_context_free_loss()),
    };
    write_json(&pretrain_result_path(&dir), &r)?;
    Ok(format!(
        "held-out LM loss {:.3} (ppl {:.1}), {:.0} s",
        r.heldout_lm_loss, r.heldout_lm_perplexity, seconds
    ))
}

pub(crate) fn model_dir(dir: &Path, checkpoint: Checkpoint) -> PathBuf {
    match checkpoint {
        Checkpoint::Final => dir.join("pretrain").join("final"),
        Checkpoint::Step(s) => dir
            .join("pretrain")
            .join("checkpoints")
            .join(format!("step-{s:08}")),
    }
}
