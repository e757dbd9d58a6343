//! Downstream tasks: what each paper column is measured with here, how it is read, and its
//! simple baselines (computed from the training split, scored on the evaluation split).

use crate::scale::Scale;
use anyhow::{Context, Result};
use cloze::finetune::data::{read_tagging, read_tsv, Example, TaggedSentence, TsvSpec};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// A downstream task of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Task {
    /// GLUE RTE (train → dev): the closest NLI task to MNLI available here.
    Rte,
    /// GLUE QNLI's dev set, split by a fixed seed into our own train (80%) and test (20%).
    Qnli,
    /// GLUE MRPC (train → dev).
    Mrpc,
    /// GLUE SST-2 (train → dev).
    Sst2,
    /// Brown POS tagging, encoder fine-tuned (the NER fine-tune column of Table 8).
    PosFinetune,
    /// Brown POS tagging on frozen features (the NER feature-based column of Table 8).
    PosFeature,
    /// SQuAD v1.1 dev split by article (the SQuAD column of Table 5; F1, EM beside it).
    Squad,
}

impl Task {
    pub fn slug(self) -> &'static str {
        match self {
            Task::Rte => "rte",
            Task::Qnli => "qnli",
            Task::Mrpc => "mrpc",
            Task::Sst2 => "sst-2",
            Task::PosFinetune => "pos-finetune",
            Task::PosFeature => "pos-feature",
            Task::Squad => "squad",
        }
    }

    /// The column heading in our tables.
    pub fn label(self) -> &'static str {
        match self {
            Task::Rte => "RTE",
            Task::Qnli => "QNLI*",
            Task::Mrpc => "MRPC",
            Task::Sst2 => "SST-2",
            Task::PosFinetune => "POS (fine-tune)",
            Task::PosFeature => "POS (feature-based)",
            Task::Squad => crate::squad::LABEL,
        }
    }

    /// What the evaluation set is.
    pub fn describe(self) -> &'static str {
        match self {
            Task::Rte => "GLUE RTE, train → dev (accuracy); stands in for MNLI, which is not available",
            Task::Qnli => "GLUE QNLI has only its dev set here: split by a fixed seed into 80% train and 20% test (accuracy on that test part)",
            Task::Mrpc => "GLUE MRPC, train → dev (accuracy)",
            Task::Sst2 => "GLUE SST-2, train → dev (accuracy)",
            Task::PosFinetune => "Brown POS (universal tags), train → dev, encoder fine-tuned (word accuracy); stands in for CoNLL NER",
            Task::PosFeature => "Brown POS (universal tags), train → dev, frozen encoder, linear head on the last layers concatenated (word accuracy)",
            Task::Squad => "SQuAD v1.1 has only its dev set here: its 48 articles split by a fixed seed, by article, into a fine-tune half (a fixed 20% of its articles carved off as dev) and a held-out half; span extraction, official F1 (EM beside it). Labelled SQuAD-dev-split: not a SQuAD v1.1 dev score, and not comparable with the paper's number",
        }
    }

    pub fn is_tagging(self) -> bool {
        matches!(self, Task::PosFinetune | Task::PosFeature)
    }

    /// The metric of the task's column (SQuAD: F1, with EM beside it).
    pub fn metric(self) -> &'static str {
        match self {
            Task::Squad => "F1",
            _ => "accuracy",
        }
    }

    /// Every task, in column order.
    pub const ALL: [Task; 7] = [
        Task::Rte,
        Task::Qnli,
        Task::Mrpc,
        Task::Sst2,
        Task::PosFinetune,
        Task::PosFeature,
        Task::Squad,
    ];
}

/// A classification task's data, capped as the scale says. `train` and `dev` are disjoint
/// parts of the capped training examples (the learning rate is picked on `dev`); `eval` is the
/// test split, read once per fine-tuning.
pub struct ClassData {
    pub train: Vec<Example>,
    pub dev: Vec<Example>,
    pub eval: Vec<Example>,
    pub num_labels: usize,
}

/// A tagging task's data, capped as the scale says.
pub struct TagData {
    pub train: Vec<TaggedSentence>,
    pub dev: Vec<TaggedSentence>,
    pub eval: Vec<TaggedSentence>,
}

/// Seed of every subset and split: the same examples for every row and seed.
pub(crate) const SUBSET_SEED: u64 = 0x5EED_DA7A;

pub(crate) fn subset<T: Clone>(mut v: Vec<T>, cap: Option<usize>, salt: u64) -> Vec<T> {
    if let Some(n) = cap {
        if v.len() > n {
            v.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
                SUBSET_SEED ^ salt,
            ));
            v.truncate(n);
        }
    }
    v
}

/// Splits `v` by a fixed seed into (train, dev) with `fraction` of it (at least one item, and
/// at least one left to train on) in dev.
pub fn carve_dev<T>(mut v: Vec<T>, fraction: f64, salt: u64) -> (Vec<T>, Vec<T>) {
    v.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
        SUBSET_SEED ^ 0xDE5 ^ salt,
    ));
    let n = ((v.len() as f64 * fraction).round() as usize)
        .max(1)
        .min(v.len().saturating_sub(1));
    let train = v.split_off(n);
    (train, v)
}

/// A task's train / dev / test sets: at most `caps[0]` training items with `dev_fraction` of
/// them carved off as dev (both drawn with `salt`), and at most `caps[1]` test items (drawn
/// with `salt + 1`).
fn split<T: Clone>(
    train: Vec<T>,
    eval: Vec<T>,
    caps: [Option<usize>; 2],
    dev_fraction: f64,
    salt: u64,
) -> [Vec<T>; 3] {
    let (train, dev) = carve_dev(subset(train, caps[0], salt), dev_fraction, salt);
    [train, dev, subset(eval, caps[1], salt + 1)]
}

/// Reads a classification task.
pub fn load_class(task: Task, data: &Path, scale: &Scale) -> Result<ClassData> {
    let glue = data.join("glue");
    let read = |dir: &str, name: &str, file: &str| -> Result<Vec<Example>> {
        let path = glue.join(dir).join(file);
        read_tsv(&path, &TsvSpec::for_task(name)?)
            .with_context(|| format!("reading {}", path.display()))
    };
    let (train, eval) = match task {
        Task::Rte => (
            read("RTE", "rte", "train.tsv")?,
            read("RTE", "rte", "dev.tsv")?,
        ),
        Task::Mrpc => (
            read("MRPC", "mrpc", "train.tsv")?,
            read("MRPC", "mrpc", "dev.tsv")?,
        ),
        Task::Sst2 => (
            read("SST-2", "sst-2", "train.tsv")?,
            read("SST-2", "sst-2", "dev.tsv")?,
        ),
        Task::Qnli => {
            let mut all = read("QNLI", "qnli", "dev.tsv")?;
            all.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(SUBSET_SEED));
            let cut = all.len() * 4 / 5;
            let test = all.split_off(cut);
            (all, test)
        }
        _ => anyhow::bail!("{} is a tagging task", task.slug()),
    };
    let f = &scale.finetune;
    let [train, dev, eval] = split(train, eval, [f.max_train, f.max_eval], f.dev_fraction, 1);
    Ok(ClassData {
        train,
        dev,
        eval,
        num_labels: 2,
    })
}

/// Reads Brown POS (universal tags).
pub fn load_tagging(data: &Path, scale: &Scale) -> Result<TagData> {
    let dir = data.join("tasks/brown-pos");
    let train = read_tagging(dir.join("train.tsv"), "upos")?;
    let eval = read_tagging(dir.join("dev.tsv"), "upos")?;
    let t = &scale.tagging;
    let caps = [t.max_train_sentences, t.max_eval_sentences];
    let [train, dev, eval] = split(train, eval, caps, t.dev_fraction, 3);
    Ok(TagData { train, dev, eval })
}

/// A simple baseline's name and score (a fraction; SQuAD: F1, with its EM).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Baseline {
    pub name: String,
    pub score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<f64>,
}

fn content_words(s: &str) -> HashSet<String> {
    const STOP: &[&str] = &[
        "the", "a", "an", "of", "to", "in", "and", "or", "is", "are", "was", "were", "be", "it",
        "that", "this", "for", "on", "with", "as", "by", "at", "from", "what", "which", "who",
        "how", "did", "does", "do",
    ];
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP.contains(&w.as_str()))
        .collect()
}

fn jaccard(a: &str, b: &str) -> f64 {
    let (x, y) = (content_words(a), content_words(b));
    let inter = x.intersection(&y).count() as f64;
    let uni = x.union(&y).count() as f64;
    if uni == 0.0 {
        0.0
    } else {
        inter / uni
    }
}

/// Baselines of a classification task: the majority label of train, and either a unigram
/// naive Bayes (single sentences) or a word-overlap threshold fitted on train (pairs).
pub fn class_baselines(d: &ClassData) -> Vec<Baseline> {
    let nl = d.num_labels;
    let mut counts = vec![0usize; nl];
    for e in &d.train {
        counts[e.label] += 1;
    }
    let major = (0..nl).max_by_key(|&c| counts[c]).unwrap_or(0);
    let acc = |pred: &dyn Fn(&Example) -> usize| {
        d.eval.iter().filter(|e| pred(e) == e.label).count() as f64 / d.eval.len().max(1) as f64
    };
    let mut out = vec![Baseline {
        name: format!("majority (label {major})"),
        score: acc(&|_| major),
        exact_match: None,
    }];
    if d.train.iter().all(|e| e.text_b.is_none()) {
        // unigram naive Bayes with add-one smoothing
        let mut freq: Vec<HashMap<String, f64>> = vec![HashMap::new(); nl];
        let mut totals = vec![0f64; nl];
        let mut vocab = HashSet::new();
        for e in &d.train {
            for w in content_words(&e.text_a) {
                *freq[e.label].entry(w.clone()).or_default() += 1.0;
                totals[e.label] += 1.0;
                vocab.insert(w);
            }
        }
        let v = vocab.len() as f64;
        let n = d.train.len() as f64;
        let predict = |e: &Example| {
            let words = content_words(&e.text_a);
            (0..nl)
                .map(|c| {
                    let prior = (counts[c] as f64 / n).max(1e-12).ln();
                    let lik: f64 = words
                        .iter()
                        .map(|w| {
                            ((freq[c].get(w).copied().unwrap_or(0.0) + 1.0) / (totals[c] + v)).ln()
                        })
                        .sum();
                    (c, prior + lik)
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(0, |(c, _)| c)
        };
        out.push(Baseline {
            name: "unigram naive Bayes".into(),
            score: acc(&predict),
            exact_match: None,
        });
    } else if nl == 2 {
        // label 1 when content-word Jaccard ≥ t, t fitted on train
        let sims: Vec<(f64, usize)> = d
            .train
            .iter()
            .map(|e| {
                (
                    jaccard(&e.text_a, e.text_b.as_deref().unwrap_or("")),
                    e.label,
                )
            })
            .collect();
        let mut cands: Vec<f64> = sims.iter().map(|s| s.0).collect();
        cands.sort_by(f64::total_cmp);
        cands.dedup();
        let train_acc = |t: f64| {
            sims.iter()
                .filter(|(s, l)| (*s >= t) as usize == *l)
                .count()
        };
        let best = cands
            .iter()
            .copied()
            .max_by_key(|&t| train_acc(t))
            .unwrap_or(0.0);
        out.push(Baseline {
            name: format!("word-overlap threshold {best:.3} (fitted on train)"),
            score: acc(&|e| {
                (jaccard(&e.text_a, e.text_b.as_deref().unwrap_or("")) >= best) as usize
            }),
            exact_match: None,
        });
    }
    out
}

/// Baselines of tagging: the most frequent tag overall, and each word's most frequent tag in
/// train (unknown words get the overall one).
pub fn tag_baselines(d: &TagData) -> Vec<Baseline> {
    let mut overall: HashMap<&str, usize> = HashMap::new();
    let mut per_word: HashMap<String, HashMap<&str, usize>> = HashMap::new();
    for s in &d.train {
        for (w, t) in s.tokens.iter().zip(&s.tags) {
            *overall.entry(t).or_default() += 1;
            *per_word
                .entry(w.to_lowercase())
                .or_default()
                .entry(t)
                .or_default() += 1;
        }
    }
    let top = |m: &HashMap<&str, usize>| {
        m.iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(t, _)| t.to_string())
            .unwrap_or_default()
    };
    let most = top(&overall);
    let best: HashMap<&String, String> = per_word.iter().map(|(w, m)| (w, top(m))).collect();
    let (mut n, mut ok_most, mut ok_word) = (0usize, 0usize, 0usize);
    for s in &d.eval {
        for (w, t) in s.tokens.iter().zip(&s.tags) {
            n += 1;
            ok_most += (*t == most) as usize;
            let guess = best.get(&w.to_lowercase()).unwrap_or(&most);
            ok_word += (guess == t) as usize;
        }
    }
    let n = n.max(1) as f64;
    vec![
        Baseline {
            name: format!("most frequent tag ({most})"),
            score: ok_most as f64 / n,
            exact_match: None,
        },
        Baseline {
            name: "most frequent tag per word".into(),
            score: ok_word as f64 / n,
            exact_match: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(a: &str, b: Option<&str>, label: usize) -> Example {
        Example {
            text_a: a.into(),
            text_b: b.map(Into::into),
            label,
            score: None,
        }
    }

    #[test]
    fn dev_is_carved_from_train_disjointly_and_by_a_fixed_seed() {
        let v: Vec<usize> = (0..50).collect();
        let (train, dev) = carve_dev(v.clone(), 0.2, 1);
        assert_eq!((train.len(), dev.len()), (40, 10));
        let mut all: Vec<usize> = train.iter().chain(&dev).copied().collect();
        all.sort();
        assert_eq!(all, v, "a partition");
        assert_eq!(carve_dev(v, 0.2, 1), (train, dev), "seeded");
        let (t, d) = carve_dev(vec![1, 2], 0.2, 1);
        assert_eq!((t.len(), d.len()), (1, 1));
    }

    #[test]
    fn naive_bayes_baseline_learns_sentiment_words() {
        let train = vec![
            ex("good great fun", None, 1),
            ex("great film", None, 1),
            ex("bad awful", None, 0),
            ex("awful boring bad", None, 0),
            ex("boring", None, 0),
        ];
        let eval = vec![
            ex("great", None, 1),
            ex("bad film", None, 0),
            ex("fun", None, 1),
        ];
        let b = class_baselines(&ClassData {
            train,
            dev: vec![],
            eval,
            num_labels: 2,
        });
        assert_eq!(b[0].name, "majority (label 0)");
        assert!((b[0].score - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(b[1].score, 1.0);
    }

    #[test]
    fn overlap_baseline_fits_its_threshold_on_train() {
        let train = vec![
            ex("cats sleep all day", Some("cats sleep all day long"), 1),
            ex("dogs bark", Some("dogs bark loudly"), 1),
            ex("cats sleep", Some("stocks fell"), 0),
            ex("rain today", Some("dogs bark"), 0),
        ];
        let eval = vec![
            ex("birds sing", Some("birds sing well"), 1),
            ex("birds sing", Some("rain fell"), 0),
        ];
        let b = class_baselines(&ClassData {
            train,
            dev: vec![],
            eval,
            num_labels: 2,
        });
        assert_eq!(b[1].score, 1.0, "{b:?}");
    }

    #[test]
    fn tagging_baselines_count_words() {
        let s = |w: &[&str], t: &[&str]| TaggedSentence {
            tokens: w.iter().map(|x| x.to_string()).collect(),
            tags: t.iter().map(|x| x.to_string()).collect(),
        };
        let d = TagData {
            train: vec![
                s(&["the", "dog", "runs"], &["DET", "NOUN", "VERB"]),
                s(&["a", "dog"], &["DET", "NOUN"]),
            ],
            dev: vec![],
            eval: vec![s(&["the", "cat", "runs"], &["DET", "NOUN", "VERB"])],
        };
        let b = tag_baselines(&d);
        // overall: DET 2, NOUN 2, VERB 1 → tie broken by name: DET; scores 1/3
        assert!((b[0].score - 1.0 / 3.0).abs() < 1e-12, "{b:?}");
        // per word: the→DET ✓, cat unknown→DET ✗, runs→VERB ✓
        assert!((b[1].score - 2.0 / 3.0).abs() < 1e-12, "{b:?}");
    }
}
