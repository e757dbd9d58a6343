//! A fine-tuning job: one model per learning rate, the best on dev scored once on the
//! evaluation split.

use crate::plan::{Checkpoint, PretrainSpec};
use crate::runner::pretrain::model_dir;
use crate::runner::{eval_path, write_json, Ctx, DevScore, EvalResult};
use crate::squad::{self};
use crate::tasks::Task;
use anyhow::{bail, Context, Result};
use cloze::finetune::span::{squad_scores, train_span_model, SpanModel};
use cloze::finetune::tagging::{train_tagger, TagMode, TaggingConfig};
use cloze::finetune::trainer::{finetune_once, scores, FinetuneConfig};
use std::path::Path;
use std::time::Instant;

/// Trains once per learning rate (`train` returns the model and its dev score), keeps the
/// model best on dev ([`DevScore::value`]; the first on ties) and scores only that one on the
/// test split (`test` is called exactly once). Returns (test result, chosen rate, every dev
/// score).
pub fn select_on_dev<M, T>(
    learning_rates: &[f32],
    mut train: impl FnMut(f32) -> Result<(M, DevScore)>,
    test: impl FnOnce(&M, f32) -> Result<T>,
) -> Result<(T, f32, Vec<DevScore>)> {
    let mut best: Option<(M, DevScore)> = None;
    let mut dev = Vec::with_capacity(learning_rates.len());
    for &lr in learning_rates {
        let (model, d) = train(lr)?;
        dev.push(d);
        if best.as_ref().is_none_or(|(_, b)| d.value() > b.value()) {
            best = Some((model, d));
        }
    }
    let Some((model, chosen)) = best else {
        bail!("an empty learning-rate grid");
    };
    let score = test(&model, chosen.learning_rate)?;
    Ok((score, chosen.learning_rate, dev))
}

/// What one fine-tuning found.
pub(crate) struct Outcome {
    /// The test score (accuracy, or F1) and, for SQuAD, the test EM.
    score: f64,
    exact_match: Option<f64>,
    learning_rate: f32,
    dev_scores: Vec<DevScore>,
    /// Train / dev / test sizes.
    sizes: [usize; 3],
    settings: serde_json::Value,
}

impl Outcome {
    /// What [`select_on_dev`] picked (the test score, the rate, the dev scores), with the
    /// train / dev / test sizes and the settings; no exact match.
    fn picked<T>(
        (score, learning_rate, dev_scores): (f64, f32, Vec<DevScore>),
        splits: [&[T]; 3],
        settings: serde_json::Value,
    ) -> Outcome {
        Outcome {
            score,
            exact_match: None,
            learning_rate,
            dev_scores,
            sizes: splits.map(<[T]>::len),
            settings,
        }
    }
}

pub(crate) fn eval_tagging(
    ctx: &Ctx,
    spec: &PretrainSpec,
    seed: u64,
    model: &Path,
    task: Task,
) -> Result<Outcome> {
    let d = ctx.tag_data()?;
    let t = &ctx.scale.tagging;
    let (mode, grid) = match task {
        Task::PosFeature => (
            TagMode::FeatureBased {
                layers: t.feature_layers.min(spec.size.layers),
            },
            &t.feature_learning_rates,
        ),
        _ => (TagMode::FineTune, &t.finetune_learning_rates),
    };
    let cfg = |lr| TaggingConfig {
        model_dir: model.to_path_buf(),
        mode,
        max_seq_length: t.max_seq_length,
        batch_size: t.batch_size,
        epochs: t.epochs,
        learning_rate: lr,
        seed,
    };
    // train_tagger scores the sentences it is given and returns no model, so the chosen rate
    // is trained again (same seed and data: the same model) and scored on the test split once
    let (score, lr, dev) = select_on_dev(
        grid,
        |lr| {
            let a = train_tagger(&cfg(lr), &d.train, &d.dev)?.accuracy;
            Ok(((), DevScore::accuracy(lr, a)))
        },
        |_, lr| Ok(train_tagger(&cfg(lr), &d.train, &d.eval)?.accuracy),
    )?;
    let mut settings = serde_json::to_value(cfg(lr))?;
    settings["learning_rate_grid"] = serde_json::to_value(grid)?;
    let splits = [&d.train[..], &d.dev, &d.eval];
    Ok(Outcome::picked((score, lr, dev), splits, settings))
}

/// The scale's classification fine-tuning settings for one model and seed (every rate of the
/// grid; the folder's own dropout). The fine-tuning study starts from these too.
pub(crate) fn class_config(
    ctx: &Ctx,
    model: &Path,
    num_labels: usize,
    seed: u64,
) -> FinetuneConfig {
    let f = &ctx.scale.finetune;
    FinetuneConfig {
        model_dir: model.to_path_buf(),
        num_labels,
        max_seq_length: f.max_seq_length,
        batch_size: f.batch_size,
        epochs: f.epochs,
        learning_rates: f.learning_rates.clone(),
        warmup_proportion: 0.1,
        seed,
        max_train_examples: None,
        pair_truncation: Default::default(),
        dropout: None,
    }
}

pub(crate) fn eval_classification(
    ctx: &Ctx,
    seed: u64,
    model: &Path,
    task: Task,
) -> Result<Outcome> {
    let d = ctx.class_data(task)?;
    let f = &ctx.scale.finetune;
    let cfg = class_config(ctx, model, d.num_labels, seed);
    let (score, lr, dev) = select_on_dev(
        &f.learning_rates,
        |lr| {
            let (clf, s) = finetune_once(&cfg, lr, &d.train, &d.dev)?;
            Ok((clf, DevScore::accuracy(lr, s.accuracy)))
        },
        |clf, _| {
            let pred = clf.predict(&d.eval, f.batch_size)?;
            let gold: Vec<usize> = d.eval.iter().map(|e| e.label).collect();
            Ok(scores(&pred, &gold, d.num_labels).0)
        },
    )?;
    let splits = [&d.train[..], &d.dev, &d.eval];
    Ok(Outcome::picked(
        (score, lr, dev),
        splits,
        serde_json::to_value(&cfg)?,
    ))
}

/// SQuAD-dev-split: a span model per learning rate, trained on the fine-tune articles and
/// scored on the dev articles (F1 picks the rate); the best-on-dev model then predicts the
/// held-out half once.
pub(crate) fn eval_squad(ctx: &Ctx, seed: u64, model: &Path) -> Result<Outcome> {
    let d = ctx.squad_data()?;
    let s = ctx.scale.squad.as_ref().context("no SQuAD settings")?;
    let cfg = |lr| squad::span_config(s, lr, model, seed);
    let ((f1, em), lr, dev) = select_on_dev(
        &s.learning_rates,
        |lr| {
            let (m, sc) = train_span_model(&cfg(lr), &d.train, &d.dev)?;
            Ok((m, DevScore::span(lr, sc.f1, sc.exact_match)))
        },
        |m: &SpanModel, lr| {
            let preds = m.predict(&d.eval, &cfg(lr))?;
            let (em, f1) = squad_scores(&preds, &d.eval)?;
            Ok((f1, em))
        },
    )?;
    let mut settings = serde_json::to_value(cfg(lr))?;
    settings["learning_rate_grid"] = serde_json::to_value(&s.learning_rates)?;
    settings["label"] = squad::LABEL.into();
    let splits = [&d.train[..], &d.dev, &d.eval];
    Ok(Outcome {
        exact_match: Some(em),
        ..Outcome::picked((f1, lr, dev), splits, settings)
    })
}

pub(crate) fn run_eval(
    ctx: &Ctx,
    spec: &PretrainSpec,
    seed: u64,
    checkpoint: Checkpoint,
    task: Task,
) -> Result<String> {
    let dir = ctx.run_dir(spec, seed);
    let model = model_dir(&dir, checkpoint);
    if !model.join("model.safetensors").exists() {
        bail!("no model at {}", model.display());
    }
    let t0 = Instant::now();
    let o = if task == Task::Squad {
        eval_squad(ctx, seed, &model)?
    } else if task.is_tagging() {
        eval_tagging(ctx, spec, seed, &model, task)?
    } else {
        eval_classification(ctx, seed, &model, task)?
    };
    let [n_train, n_dev, n_eval] = o.sizes;
    let r = EvalResult {
        task,
        checkpoint,
        seed,
        score: o.score,
        exact_match: o.exact_match,
        learning_rate: o.learning_rate,
        dev_scores: o.dev_scores,
        train_examples: n_train,
        dev_examples: n_dev,
        eval_examples: n_eval,
        settings: o.settings,
        seconds: t0.elapsed().as_secs_f64(),
    };
    write_json(&eval_path(&dir, checkpoint, task), &r)?;
    Ok(format!(
        "{} {:.1}%{} (lr {:e} picked on dev), {:.0} s",
        task.metric(),
        100.0 * r.score,
        r.exact_match
            .map_or(String::new(), |em| format!(", EM {:.1}%", 100.0 * em)),
        r.learning_rate,
        r.seconds
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn the_learning_rate_is_picked_on_dev_and_only_its_model_is_tested_once() {
        let dev_acc = |lr: f32| if lr == 3e-4 { 0.8 } else { 0.6 };
        let trained = Cell::new(0);
        let tested = Cell::new(0);
        let (score, lr, dev) = select_on_dev(
            &[1e-4, 3e-4, 1e-3],
            |lr| {
                trained.set(trained.get() + 1);
                Ok((lr, DevScore::accuracy(lr, dev_acc(lr))))
            },
            |model: &f32, lr| {
                tested.set(tested.get() + 1);
                assert_eq!(*model, lr, "the test sees the best model");
                Ok(if lr == 3e-4 { 0.7 } else { 0.0 })
            },
        )
        .unwrap();
        assert_eq!((trained.get(), tested.get()), (3, 1));
        assert_eq!((score, lr), (0.7, 3e-4));
        assert_eq!(dev.len(), 3);
        assert_eq!(dev[1], DevScore::accuracy(3e-4, 0.8));
        // ties keep the first (smallest) rate
        let (_, lr, _) = select_on_dev(
            &[1e-4, 1e-3],
            |lr| Ok((lr, DevScore::accuracy(lr, 0.5))),
            |_, _| Ok(0.0),
        )
        .unwrap();
        assert_eq!(lr, 1e-4);
        assert!(select_on_dev::<(), f64>(&[], |_| unreachable!(), |_, _| unreachable!()).is_err());
        // SQuAD picks on F1, not EM
        let (_, lr, dev) = select_on_dev(
            &[1e-4, 1e-3],
            |lr| {
                let s = if lr == 1e-4 {
                    DevScore::span(lr, 0.3, 0.2)
                } else {
                    DevScore::span(lr, 0.4, 0.1)
                };
                Ok(((), s))
            },
            |_, _| Ok(0.0),
        )
        .unwrap();
        assert_eq!(lr, 1e-3);
        let json = serde_json::to_value(dev[0]).unwrap();
        assert!(
            json.get("accuracy").is_none() && json["f1"].is_f64(),
            "{json}"
        );
        // older eval files (accuracy only) still read
        let old: DevScore =
            serde_json::from_str(r#"{"learning_rate": 0.001, "accuracy": 0.5}"#).unwrap();
        assert_eq!(old, DevScore::accuracy(1e-3, 0.5));
    }
}
