//! SQuAD v1.1 questions ([`SquadExample`], read from the official JSON) and the official
//! v1.1 metric (exact match and token F1).

use crate::error::{invalid, Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// One question on one context.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SquadExample {
    /// SQuAD's question id (the key of the predictions file).
    pub id: String,
    /// The question text.
    pub question: String,
    /// The paragraph the answer is a span of.
    pub context: String,
    /// Reference answers: (char offset of the answer in `context`, answer text). Training uses
    /// the first; scoring takes the best over all.
    pub answers: Vec<(usize, String)>,
}

impl SquadExample {
    /// Checks every answer: its text is non-empty and is the context's substring at its offset.
    pub fn validate(&self) -> Result<()> {
        let n = self.context.chars().count();
        for (start, text) in &self.answers {
            let len = text.chars().count();
            if len == 0 {
                return invalid(
                    "SquadExample",
                    format!(
                        "question {:?}: an answer at offset {start} is empty",
                        self.id
                    ),
                );
            }
            if start + len > n {
                return invalid(
                    "SquadExample",
                    format!(
                        "question {:?}: answer {text:?} at char offset {start} (length {len}) ends past the context's {n} chars",
                        self.id
                    ),
                );
            }
            let actual: String = self.context.chars().skip(*start).take(len).collect();
            if actual != *text {
                return invalid(
                    "SquadExample",
                    format!(
                        "question {:?}: answer {text:?} at char offset {start} does not match the context there ({actual:?})",
                        self.id
                    ),
                );
            }
        }
        Ok(())
    }
}

/// The questions of one article (SQuAD's `title`), in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SquadArticle {
    /// The article's title.
    pub title: String,
    /// Its questions, in file order.
    pub examples: Vec<SquadExample>,
}

#[derive(serde::Deserialize)]
struct RawFile {
    data: Vec<RawArticle>,
}

#[derive(serde::Deserialize)]
struct RawArticle {
    title: String,
    paragraphs: Vec<RawParagraph>,
}

#[derive(serde::Deserialize)]
struct RawParagraph {
    context: String,
    qas: Vec<RawQa>,
}

#[derive(serde::Deserialize)]
struct RawQa {
    id: String,
    question: String,
    answers: Vec<RawAnswer>,
}

#[derive(serde::Deserialize)]
struct RawAnswer {
    answer_start: usize,
    text: String,
}

/// Parses a SQuAD v1.1 JSON text (`origin` names it in errors). Every answer is checked with
/// [`SquadExample::validate`].
pub fn parse_squad_json(text: &str, origin: &str) -> Result<Vec<SquadArticle>> {
    let fmt = |detail: String| Error::Format {
        path: origin.to_string(),
        detail,
    };
    let raw: RawFile =
        serde_json::from_str(text).map_err(|e| fmt(format!("not SQuAD v1.1 JSON: {e}")))?;
    let mut out = Vec::with_capacity(raw.data.len());
    for a in raw.data {
        let mut examples = Vec::new();
        for p in a.paragraphs {
            for q in p.qas {
                let ex = SquadExample {
                    id: q.id,
                    question: q.question,
                    context: p.context.clone(),
                    answers: q
                        .answers
                        .into_iter()
                        .map(|x| (x.answer_start, x.text))
                        .collect(),
                };
                ex.validate()
                    .map_err(|e| fmt(format!("article {:?}: {e}", a.title)))?;
                examples.push(ex);
            }
        }
        out.push(SquadArticle {
            title: a.title,
            examples,
        });
    }
    Ok(out)
}

/// Reads a SQuAD v1.1 JSON file (e.g. `dev-v1.1.json`), grouped by article.
pub fn read_squad_json(path: impl AsRef<Path>) -> Result<Vec<SquadArticle>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_squad_json(&text, &path.display().to_string())
}

/// The official normalisation: lower-case, remove ASCII punctuation, remove the words
/// a/an/the, collapse whitespace.
///
/// ```
/// use cloze::finetune::span::normalize_answer;
/// assert_eq!(normalize_answer("  The Cat,  sat!"), "cat sat");
/// ```
pub fn normalize_answer(s: &str) -> String {
    let lower = crate::tokenizer::unicode::py_lower(s);
    let no_punc: String = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    // `\b(a|an|the)\b` → ' ': word runs (alphanumeric or '_', as Python's \w) equal to an
    // article are replaced by a space
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut no_articles = String::with_capacity(no_punc.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if matches!(run.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in no_punc.chars() {
        if is_word(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut no_articles);
            no_articles.push(c);
        }
    }
    flush(&mut run, &mut no_articles);
    no_articles.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 1 if `pred` normalises to the same string as some reference, else 0.
pub fn exact_match(pred: &str, golds: &[&str]) -> f64 {
    let p = normalize_answer(pred);
    if golds.iter().any(|g| normalize_answer(g) == p) {
        1.0
    } else {
        0.0
    }
}

/// Token F1 of `pred` against one reference (normalised tokens, multiset overlap).
fn f1_one(pred: &str, gold: &str) -> f64 {
    let p = normalize_answer(pred);
    let g = normalize_answer(gold);
    let pt: Vec<&str> = p.split_whitespace().collect();
    let gt: Vec<&str> = g.split_whitespace().collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &gt {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &pt {
        if let Some(c) = counts.get_mut(t) {
            if *c > 0 {
                *c -= 1;
                same += 1;
            }
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / pt.len() as f64;
    let recall = same as f64 / gt.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// The best token F1 of `pred` over the references (0 with none).
pub fn f1_score(pred: &str, golds: &[&str]) -> f64 {
    golds.iter().map(|g| f1_one(pred, g)).fold(0.0, f64::max)
}

/// Mean exact match and F1 (fractions) of one prediction per example.
pub fn squad_scores(preds: &[String], examples: &[SquadExample]) -> Result<(f64, f64)> {
    if preds.len() != examples.len() {
        return invalid(
            "squad_scores",
            format!(
                "{} predictions for {} examples",
                preds.len(),
                examples.len()
            ),
        );
    }
    let (mut em, mut f1) = (0.0, 0.0);
    for (p, e) in preds.iter().zip(examples) {
        let golds: Vec<&str> = e.answers.iter().map(|(_, t)| t.as_str()).collect();
        em += exact_match(p, &golds);
        f1 += f1_score(p, &golds);
    }
    let n = examples.len().max(1) as f64;
    Ok((em / n, f1 / n))
}
