//! Scoring a classifier on labelled examples: accuracy and F1 for classes, Pearson and
//! Spearman correlations for regression, and the checks on the gold labels.

use crate::error::{invalid, Result};
use crate::finetune::data::Example;
use crate::finetune::trainer::Classifier;
use std::path::Path;

/// Dev scores of one learning rate.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Scores {
    /// The peak learning rate of the run.
    pub learning_rate: f32,
    /// Dev accuracy (classification; 0 for regression).
    pub accuracy: f64,
    /// F1 of class 1 for two classes, macro F1 otherwise (0 for regression).
    pub f1: f64,
    /// Pearson correlation of predicted and gold scores (regression only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pearson: Option<f64>,
    /// Spearman rank correlation of predicted and gold scores (regression only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spearman: Option<f64>,
}

impl Scores {
    /// The score the learning rate is picked by: Pearson for regression, else accuracy.
    pub fn primary(&self) -> f64 {
        self.pearson.unwrap_or(self.accuracy)
    }
}

/// Pearson correlation (in f64); 0 when either side is constant or the lengths differ.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    if n == 0 || n != y.len() {
        return 0.0;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// 1-based ranks with ties given their average rank (as scipy's `rankdata`).
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation: Pearson of the (tie-averaged) ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// Dev scores of predictions: accuracy and F1 for classification (`num_labels` ≥ 2), Pearson
/// and Spearman against [`Example::score`] for regression (`num_labels` 1).
pub fn dev_scores(clf: &Classifier, dev: &[Example], batch: usize, lr: f32) -> Result<Scores> {
    let nl = clf.model.classifier.num_labels;
    if nl == 1 {
        let pred: Vec<f64> = clf
            .predict_scores(dev, batch)?
            .into_iter()
            .map(f64::from)
            .collect();
        let gold = gold_scores(dev, "dev")?;
        Ok(Scores {
            learning_rate: lr,
            accuracy: 0.0,
            f1: 0.0,
            pearson: Some(pearson(&pred, &gold)),
            spearman: Some(spearman(&pred, &gold)),
        })
    } else {
        let gold = gold_labels(dev, nl, "dev")?;
        let pred = clf.predict(dev, batch)?;
        let (accuracy, f1) = scores(&pred, &gold, nl);
        Ok(Scores {
            learning_rate: lr,
            accuracy,
            f1,
            pearson: None,
            spearman: None,
        })
    }
}

pub(super) fn gold_scores(ex: &[Example], what: &str) -> Result<Vec<f64>> {
    if ex.is_empty() {
        return invalid(
            "evaluate",
            format!("no {what} examples: a correlation over nothing would be meaningless"),
        );
    }
    ex.iter()
        .enumerate()
        .map(|(i, e)| match e.score {
            Some(s) if s.is_finite() => Ok(s as f64),
            Some(s) => invalid("finetune", format!("{what} example {i} has score {s}")),
            None => invalid(
                "finetune",
                format!("{what} example {i} has no score, but num_labels 1 means regression"),
            ),
        })
        .collect()
}

/// Accuracy and F1 of predictions.
pub fn scores(pred: &[usize], gold: &[usize], num_labels: usize) -> (f64, f64) {
    let n = gold.len().max(1) as f64;
    let acc = pred.iter().zip(gold).filter(|(p, g)| p == g).count() as f64 / n;
    let f1_of = |c: usize| {
        let tp = pred
            .iter()
            .zip(gold)
            .filter(|(p, g)| **p == c && **g == c)
            .count() as f64;
        let fp = pred
            .iter()
            .zip(gold)
            .filter(|(p, g)| **p == c && **g != c)
            .count() as f64;
        let fn_ = pred
            .iter()
            .zip(gold)
            .filter(|(p, g)| **p != c && **g == c)
            .count() as f64;
        if tp == 0.0 {
            0.0
        } else {
            2.0 * tp / (2.0 * tp + fp + fn_)
        }
    };
    let f1 = if num_labels == 2 {
        f1_of(1)
    } else {
        (0..num_labels).map(f1_of).sum::<f64>() / num_labels as f64
    };
    (acc, f1)
}

/// The labels of examples to score, each checked against `num_labels` (an out-of-range label
/// would silently count as wrong); an empty set is an error (there is nothing to report).
pub fn gold_labels(ex: &[Example], num_labels: usize, what: &str) -> Result<Vec<usize>> {
    if ex.is_empty() {
        return invalid(
            "evaluate",
            format!("no {what} examples: an accuracy over nothing would be meaningless"),
        );
    }
    ex.iter()
        .enumerate()
        .map(|(i, e)| {
            if e.label >= num_labels {
                invalid(
                    "evaluate",
                    format!(
                        "{what} example {i} has label {} but the model has {num_labels} classes",
                        e.label
                    ),
                )
            } else {
                Ok(e.label)
            }
        })
        .collect()
}

/// Where a run's scores are written.
pub fn write_scores(path: &Path, scores: &[Scores]) -> Result<()> {
    let text = serde_json::to_string_pretty(scores).expect("scores serialise");
    crate::train::checkpoint::write_atomic(path, text.as_bytes())
}
