//! Span extraction (SQuAD v1.1 style), as the BERT paper's §4.2 and Google's `run_squad` do it.
//!
//! - **Head**: `qa_outputs.weight` `[2, H]` and `qa_outputs.bias` `[2]` on every token of the
//!   encoder's last layer (HF `BertForQuestionAnswering` names, no dropout before it). Row 0
//!   gives the start logits `S·T_i`, row 1 the end logits `E·T_i`. The loss is the mean of the
//!   start and end cross-entropies over the sequence positions.
//! - **Features**: `[CLS] question [SEP] context-window [SEP]` with token types 0/1. The
//!   question is cut to `max_query_length` pieces; a long context is covered by windows of up
//!   to `max_seq_length − |q| − 3` pieces, each starting `doc_stride` pieces after the last. A
//!   training window that does not hold the whole (first) answer points start and end at
//!   `[CLS]` (position 0).
//! - **Decoding**: per example, the best `start_logit + end_logit` over all its windows with
//!   `start ≤ end`, `end − start < max_answer_length`, both in the context part and the start
//!   in a window where it has its *max context* (the window in which it has the most context
//!   on its shorter side, `min(left, right) + 0.01·window length`). The answer is the context's
//!   own substring from the start piece's first char to the end piece's last char.
//! - **Metric**: the official v1.1 script: normalise (lower-case, drop ASCII punctuation, drop
//!   the words a/an/the, collapse whitespace), exact match and token F1, each the maximum over
//!   the reference answers. Scores here are fractions in [0, 1] (the script prints 100×).
//!
//! Char offsets are Unicode scalar values (Python `str` indices), as SQuAD's `answer_start`.

use crate::autodiff::params::ParamStore;
use crate::autodiff::tape::{Tape, Var};
use crate::bert::checkpoint::{load_pretrained, save_pretrained, LoadOptions};
use crate::bert::config::BertConfig;
use crate::bert::model::{BertInput, BertModel, ForwardOptions, Linear};
use crate::error::{invalid, Error, Result};
use crate::optim::adamw::bert_decays;
use crate::optim::{AdamW, AdamWConfig, LinearWarmupDecay};
use crate::tokenizer::Tokenizer;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One question on one context.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SquadExample {
    pub id: String,
    pub question: String,
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
    pub title: String,
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

// ---------------------------------------------------------------------------------------------
// The official v1.1 metric

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

// ---------------------------------------------------------------------------------------------
// Features

/// How questions and contexts become model inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WindowOptions {
    pub max_seq_length: usize,
    /// Pieces between the starts of consecutive windows.
    pub doc_stride: usize,
    pub max_query_length: usize,
}

impl WindowOptions {
    /// Rejects sizes that leave no room for context or cannot advance.
    pub fn validate(&self) -> Result<()> {
        if self.doc_stride == 0 || self.max_query_length == 0 {
            return invalid(
                "WindowOptions",
                format!(
                    "doc_stride {} and max_query_length {} must be positive",
                    self.doc_stride, self.max_query_length
                ),
            );
        }
        if self.max_query_length + 3 >= self.max_seq_length {
            return invalid(
                "WindowOptions",
                format!(
                    "max_seq_length {} leaves no room for context after a question of up to max_query_length {} pieces plus [CLS] and two [SEP]",
                    self.max_seq_length, self.max_query_length
                ),
            );
        }
        Ok(())
    }
}

/// One window of one example, ready for the model.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanFeature {
    /// Index of the example in the slice given to [`make_features`].
    pub example_index: usize,
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    /// Position of the window's first context piece (`|q| + 2`).
    pub context_start: usize,
    /// Per position: the context chars `(start, end)` of a context piece, `None` elsewhere.
    pub char_spans: Vec<Option<(usize, usize)>>,
    /// Per position: whether this window is the piece's max-context window.
    pub max_context: Vec<bool>,
    /// Training target (0, 0 = `[CLS]` when the window lacks the answer or for eval).
    pub start_position: usize,
    pub end_position: usize,
}

impl SpanFeature {
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }
}

/// The first and last context piece an answer's chars `[start, start + len)` overlap.
fn answer_pieces(
    pieces: &[(u32, usize, usize)],
    ex: &SquadExample,
    start: usize,
    text: &str,
) -> Result<(usize, usize)> {
    let end = start + text.chars().count();
    let first = pieces.iter().position(|&(_, _, e)| e > start);
    let last = pieces.iter().rposition(|&(_, s, _)| s < end);
    match (first, last) {
        (Some(f), Some(l)) if f <= l => Ok((f, l)),
        _ => invalid(
            "make_features",
            format!(
                "question {:?}: answer {text:?} at char offset {start} covers no context piece",
                ex.id
            ),
        ),
    }
}

/// Windows `(start, length)` over `n` context pieces, as the reference builds them.
fn windows(n: usize, max_len: usize, stride: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let len = (n - start).min(max_len);
        out.push((start, len));
        if start + len >= n {
            break;
        }
        start += len.min(stride);
    }
    out
}

/// Whether window `cur` is the one where piece `pos` has the most context.
fn is_max_context(spans: &[(usize, usize)], cur: usize, pos: usize) -> bool {
    let mut best: Option<(f64, usize)> = None;
    for (i, &(s, len)) in spans.iter().enumerate() {
        if pos < s || pos >= s + len {
            continue;
        }
        let left = pos - s;
        let right = s + len - 1 - pos;
        let score = left.min(right) as f64 + 0.01 * len as f64;
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, i));
        }
    }
    best.is_some_and(|(_, i)| i == cur)
}

/// The features of `examples`: one per context window. With `training`, each example must
/// have an answer (its first is the target) and windows without it point at `[CLS]`.
pub fn make_features(
    tok: &Tokenizer,
    examples: &[SquadExample],
    opts: &WindowOptions,
    training: bool,
) -> Result<Vec<SpanFeature>> {
    opts.validate()?;
    let v = tok.vocab();
    let mut out = Vec::new();
    for (ei, ex) in examples.iter().enumerate() {
        ex.validate()?;
        let mut q = tok.tokenize_ids(&ex.question);
        q.truncate(opts.max_query_length);
        let pieces = tok.tokenize_with_offsets(&ex.context);
        let target = if training {
            let Some((s, text)) = ex.answers.first() else {
                return invalid(
                    "make_features",
                    format!("training question {:?} has no answer", ex.id),
                );
            };
            Some(answer_pieces(&pieces, ex, *s, text)?)
        } else {
            None
        };
        let max_doc = opts.max_seq_length - q.len() - 3;
        let spans = windows(pieces.len(), max_doc, opts.doc_stride);
        let cs = q.len() + 2;
        for (wi, &(ws, wl)) in spans.iter().enumerate() {
            let mut ids = Vec::with_capacity(cs + wl + 1);
            ids.push(v.cls_id());
            ids.extend_from_slice(&q);
            ids.push(v.sep_id());
            let mut types = vec![0u32; ids.len()];
            let mut char_spans = vec![None; ids.len()];
            let mut max_context = vec![false; ids.len()];
            for (p, &(id, c0, c1)) in pieces.iter().enumerate().skip(ws).take(wl) {
                ids.push(id);
                types.push(1);
                char_spans.push(Some((c0, c1)));
                max_context.push(is_max_context(&spans, wi, p));
            }
            ids.push(v.sep_id());
            types.push(1);
            char_spans.push(None);
            max_context.push(false);
            let (start_position, end_position) = match target {
                Some((f, l)) if f >= ws && l < ws + wl => (f - ws + cs, l - ws + cs),
                _ => (0, 0),
            };
            out.push(SpanFeature {
                example_index: ei,
                input_ids: ids,
                token_type_ids: types,
                context_start: cs,
                char_spans,
                max_context,
                start_position,
                end_position,
            });
        }
    }
    Ok(out)
}

/// The best `(start, end, score)` of one feature: `start ≤ end`, `end − start <
/// max_answer_length`, both context pieces, the start in its max-context window; `None` if no
/// pair qualifies. Logits may be longer than the feature (padding is ignored).
pub fn best_span(
    feature: &SpanFeature,
    start_logits: &[f32],
    end_logits: &[f32],
    max_answer_length: usize,
) -> Option<(usize, usize, f32)> {
    let n = feature.len().min(start_logits.len()).min(end_logits.len());
    let mut best: Option<(usize, usize, f32)> = None;
    for (i, &si) in start_logits[..n].iter().enumerate() {
        if feature.char_spans[i].is_none() || !feature.max_context[i] {
            continue;
        }
        let stop = n.min(i + max_answer_length);
        for (j, &ej) in end_logits[..stop].iter().enumerate().skip(i) {
            if feature.char_spans[j].is_none() {
                continue;
            }
            let score = si + ej;
            if best.is_none_or(|(_, _, b)| score > b) {
                best = Some((i, j, score));
            }
        }
    }
    best
}

/// The answer text of each example: the best span over its features (see [`best_span`]) as
/// the context's own substring; the empty string if no feature gives one. `logits[k]` holds
/// the (start, end) logits of `features[k]`.
pub fn predict_answers(
    examples: &[SquadExample],
    features: &[SpanFeature],
    logits: &[(Vec<f32>, Vec<f32>)],
    max_answer_length: usize,
) -> Result<Vec<String>> {
    if features.len() != logits.len() {
        return invalid(
            "predict_answers",
            format!(
                "{} logit pairs for {} features",
                logits.len(),
                features.len()
            ),
        );
    }
    let mut best: Vec<Option<(usize, usize, usize, f32)>> = vec![None; examples.len()];
    for (k, (f, (s, e))) in features.iter().zip(logits).enumerate() {
        let Some(slot) = best.get_mut(f.example_index) else {
            return invalid(
                "predict_answers",
                format!(
                    "feature {k} belongs to example {} of {}",
                    f.example_index,
                    examples.len()
                ),
            );
        };
        if let Some((i, j, score)) = best_span(f, s, e, max_answer_length) {
            if slot.is_none_or(|(_, _, _, b)| score > b) {
                *slot = Some((k, i, j, score));
            }
        }
    }
    Ok(examples
        .iter()
        .zip(best)
        .map(|(ex, b)| match b {
            None => String::new(),
            Some((k, i, j, _)) => {
                let f = &features[k];
                let (cs, _) = f.char_spans[i].expect("context piece");
                let (_, ce) = f.char_spans[j].expect("context piece");
                ex.context
                    .chars()
                    .skip(cs)
                    .take(ce.saturating_sub(cs))
                    .collect()
            }
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The head and its loss

/// Start and end logits `[B, T]` each from hidden states `[B, T, H]` and a head `W` `[2, H]`,
/// `b` `[2]`.
pub fn span_logits(tape: &mut Tape, hidden: &Var, weight: &Var, bias: &Var) -> Result<(Var, Var)> {
    let s = hidden.shape().to_vec();
    if s.len() != 3 || weight.shape() != [2, s[2]] || bias.shape() != [2] {
        return crate::error::shape_err(
            "span_logits",
            format!(
                "hidden {s:?} must be [B, T, H] with weight [2, H] and bias [2], got weight {:?} and bias {:?}",
                weight.shape(),
                bias.shape()
            ),
        );
    }
    let y = tape.matmul_t(hidden, weight, false, true)?;
    let y = tape.add(&y, bias)?;
    let parts = tape.split(&y, 2, &[1, 1])?;
    let start = tape.reshape(&parts[0], &[s[0], s[1]])?;
    let end = tape.reshape(&parts[1], &[s[0], s[1]])?;
    Ok((start, end))
}

/// The paper's span loss: the mean of the start and end cross-entropies (softmax over the
/// positions of each row), averaged over the batch; a 0-d result.
pub fn span_loss(
    tape: &mut Tape,
    hidden: &Var,
    weight: &Var,
    bias: &Var,
    starts: &[usize],
    ends: &[usize],
) -> Result<Var> {
    let (s, e) = span_logits(tape, hidden, weight, bias)?;
    let t = s.shape()[1];
    let to_labels = |v: &[usize], what: &str| -> Result<Vec<i32>> {
        v.iter()
            .map(|&p| {
                if p < t {
                    Ok(p as i32)
                } else {
                    invalid(
                        "span_loss",
                        format!("{what} position {p} is outside a sequence of {t}"),
                    )
                }
            })
            .collect()
    };
    let ls = tape.cross_entropy(&s, &to_labels(starts, "start")?, -100)?;
    let le = tape.cross_entropy(&e, &to_labels(ends, "end")?, -100)?;
    let sum = tape.add(&ls, &le)?;
    tape.mul_scalar(&sum, 0.5)
}

/// HF `BertForQuestionAnswering`'s head: `qa_outputs` `[2, H]` on every token.
#[derive(Clone, Debug)]
pub struct SpanHead {
    pub qa_outputs: Linear,
}

impl SpanHead {
    /// Adds `qa_outputs.weight` (truncated normal σ = `initializer_range`) and
    /// `qa_outputs.bias` (zeros).
    pub fn new(config: &BertConfig, store: &mut ParamStore, seed: u64) -> Result<Self> {
        Ok(SpanHead {
            qa_outputs: Linear::new(
                store,
                "qa_outputs",
                2,
                config.hidden_size,
                config.initializer_range,
                seed ^ 0x51a4,
            )?,
        })
    }

    /// Start and end logits `[B, T]` of hidden states `[B, T, H]`.
    pub fn logits(&self, tape: &mut Tape, store: &ParamStore, hidden: &Var) -> Result<(Var, Var)> {
        let w = tape.param(store, self.qa_outputs.weight);
        let b = tape.param(store, self.qa_outputs.bias);
        span_logits(tape, hidden, &w, &b)
    }

    /// [`span_loss`] with the head's parameters.
    pub fn loss(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        hidden: &Var,
        starts: &[usize],
        ends: &[usize],
    ) -> Result<Var> {
        let w = tape.param(store, self.qa_outputs.weight);
        let b = tape.param(store, self.qa_outputs.bias);
        span_loss(tape, hidden, &w, &b, starts, ends)
    }
}

// ---------------------------------------------------------------------------------------------
// Training

/// Span fine-tuning settings (the paper's SQuAD recipe: 384 / 128 / 64, batch 32, 3e-5, 2
/// epochs, warm-up 10%, answers up to 30 pieces).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpanConfig {
    /// Pre-trained HF folder (config.json, model.safetensors, vocab.txt).
    pub model_dir: PathBuf,
    pub max_seq_length: usize,
    pub doc_stride: usize,
    pub max_query_length: usize,
    pub batch_size: usize,
    pub epochs: usize,
    pub learning_rate: f32,
    pub warmup_proportion: f32,
    pub seed: u64,
    pub max_answer_length: usize,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl SpanConfig {
    /// The paper's SQuAD v1.1 settings for a model folder.
    pub fn paper(model_dir: impl Into<PathBuf>) -> SpanConfig {
        SpanConfig {
            model_dir: model_dir.into(),
            max_seq_length: 384,
            doc_stride: 128,
            max_query_length: 64,
            batch_size: 32,
            epochs: 2,
            learning_rate: 3e-5,
            warmup_proportion: 0.1,
            seed: 42,
            max_answer_length: 30,
            progress: false,
        }
    }

    pub fn window_options(&self) -> WindowOptions {
        WindowOptions {
            max_seq_length: self.max_seq_length,
            doc_stride: self.doc_stride,
            max_query_length: self.max_query_length,
        }
    }

    fn validate(&self, config: &BertConfig) -> Result<()> {
        self.window_options().validate()?;
        if self.batch_size == 0 || self.epochs == 0 || self.max_answer_length == 0 {
            return invalid(
                "SpanConfig",
                format!(
                    "batch_size {}, epochs {} and max_answer_length {} must be positive",
                    self.batch_size, self.epochs, self.max_answer_length
                ),
            );
        }
        if self.max_seq_length > config.max_position_embeddings {
            return invalid(
                "SpanConfig",
                format!(
                    "max_seq_length {} exceeds the model's max_position_embeddings {}",
                    self.max_seq_length, config.max_position_embeddings
                ),
            );
        }
        let lr_ok = self.learning_rate > 0.0 && self.learning_rate.is_finite();
        if !lr_ok || !(0.0..=1.0).contains(&self.warmup_proportion) {
            return invalid(
                "SpanConfig",
                format!(
                    "learning_rate {} must be positive and warmup_proportion {} in [0, 1]",
                    self.learning_rate, self.warmup_proportion
                ),
            );
        }
        Ok(())
    }
}

/// What a span fine-tune scored on its evaluation examples.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SpanScores {
    /// Fractions in [0, 1].
    pub exact_match: f64,
    pub f1: f64,
    pub train_examples: usize,
    pub train_features: usize,
    pub eval_examples: usize,
    pub eval_features: usize,
    pub steps: u64,
    /// Mean training loss over the last epoch.
    pub last_epoch_loss: f64,
}

/// A span model: encoder (no pooler) + [`SpanHead`], with its tokenizer.
pub struct SpanModel {
    pub config: BertConfig,
    pub bert: BertModel,
    pub head: SpanHead,
    pub store: ParamStore,
    pub tokenizer: Tokenizer,
}

/// `[B, T]` ids, token types and mask of a batch of features (padded with `pad`).
fn pad_batch(batch: &[&SpanFeature], pad: u32) -> (Vec<u32>, Vec<u32>, Vec<u32>, usize) {
    let t = batch.iter().map(|f| f.len()).max().unwrap_or(1);
    let b = batch.len();
    let (mut ids, mut types, mut mask) = (vec![pad; b * t], vec![0u32; b * t], vec![0u32; b * t]);
    for (i, f) in batch.iter().enumerate() {
        let n = f.len();
        ids[i * t..i * t + n].copy_from_slice(&f.input_ids);
        types[i * t..i * t + n].copy_from_slice(&f.token_type_ids);
        mask[i * t..i * t + n].fill(1);
    }
    (ids, types, mask, t)
}

impl SpanModel {
    /// Loads an HF folder; the head is new unless the checkpoint has `qa_outputs.*`.
    pub fn load(model_dir: &Path, seed: u64) -> Result<SpanModel> {
        let (config, ckpt) = load_pretrained(model_dir)?;
        let tokenizer = Tokenizer::from_vocab_file(model_dir.join("vocab.txt"))?;
        let mut store = ParamStore::new();
        let bert = BertModel::new_without_pooler(&config, &mut store, seed)?;
        let head = SpanHead::new(&config, &mut store, seed)?;
        ckpt.load_into_with(
            &mut store,
            &LoadOptions {
                allow_missing: vec!["qa_outputs.".into()],
                allow_unused: vec!["pooler.".into(), "cls.".into(), "classifier.".into()],
            },
        )?;
        Ok(SpanModel {
            config,
            bert,
            head,
            store,
            tokenizer,
        })
    }

    /// Writes `config.json`, `model.safetensors` (HF `BertForQuestionAnswering` names) and
    /// `vocab.txt` into `dir`.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        let mut config = self.config.clone();
        config.architectures = vec!["BertForQuestionAnswering".into()];
        save_pretrained(dir, &config, &self.store)?;
        self.tokenizer.vocab().save(dir.join("vocab.txt"))
    }

    /// Start and end logits of each feature (eval mode, no dropout), cut to its length.
    pub fn logits(
        &self,
        features: &[SpanFeature],
        batch_size: usize,
    ) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
        let pad = self.tokenizer.vocab().pad_id();
        let mut tape = Tape::new();
        tape.set_training(false);
        tape.set_grad_enabled(false);
        let mut out = Vec::with_capacity(features.len());
        for chunk in features.chunks(batch_size.max(1)) {
            let refs: Vec<&SpanFeature> = chunk.iter().collect();
            let (ids, types, mask, t) = pad_batch(&refs, pad);
            tape.reset();
            let input = BertInput::new(&ids, refs.len(), t)
                .with_token_types(&types)
                .with_attention_mask(&mask);
            let h =
                self.bert
                    .forward(&mut tape, &self.store, &input, &ForwardOptions::default())?;
            let (s, e) = self
                .head
                .logits(&mut tape, &self.store, &h.last_hidden_state)?;
            for (i, f) in refs.iter().enumerate() {
                let n = f.len();
                out.push((
                    s.value().data()[i * t..i * t + n].to_vec(),
                    e.value().data()[i * t..i * t + n].to_vec(),
                ));
            }
        }
        Ok(out)
    }

    /// Predicted answer texts of `examples`.
    pub fn predict(&self, examples: &[SquadExample], cfg: &SpanConfig) -> Result<Vec<String>> {
        let feats = make_features(&self.tokenizer, examples, &cfg.window_options(), false)?;
        let logits = self.logits(&feats, cfg.batch_size)?;
        predict_answers(examples, &feats, &logits, cfg.max_answer_length)
    }
}

/// Fine-tunes a span model on `train` and scores it on `eval` (official EM / F1, fractions).
pub fn train_span_model(
    cfg: &SpanConfig,
    train: &[SquadExample],
    eval: &[SquadExample],
) -> Result<(SpanModel, SpanScores)> {
    if train.is_empty() || eval.is_empty() {
        return invalid(
            "train_span",
            format!(
                "need training and evaluation examples, got {} and {}",
                train.len(),
                eval.len()
            ),
        );
    }
    let mut model = SpanModel::load(&cfg.model_dir, cfg.seed)?;
    cfg.validate(&model.config)?;
    let feats = make_features(&model.tokenizer, train, &cfg.window_options(), true)?;
    let eval_feats = make_features(&model.tokenizer, eval, &cfg.window_options(), false)?;
    let steps_per_epoch = feats.len().div_ceil(cfg.batch_size);
    let total = (steps_per_epoch * cfg.epochs) as u64;
    let warmup = (total as f32 * cfg.warmup_proportion).round() as u64;
    let schedule = LinearWarmupDecay::new(cfg.learning_rate, warmup, total)?;
    let mut opt = AdamW::new(AdamWConfig::bert(), &model.store, bert_decays)?;
    let pad = model.tokenizer.vocab().pad_id();
    let bar = if cfg.progress {
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  eta {eta}")
                .expect("valid template"),
        );
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut tape = Tape::new();
    let mut order: Vec<usize> = (0..feats.len()).collect();
    let mut step = 0u64;
    let mut last_epoch_loss = 0.0;
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            cfg.seed ^ (epoch as u64 + 1).wrapping_mul(0x9e37_79b9),
        ));
        let (mut loss_sum, mut loss_n) = (0.0f64, 0usize);
        for chunk in order.chunks(cfg.batch_size) {
            let batch: Vec<&SpanFeature> = chunk.iter().map(|&i| &feats[i]).collect();
            let (ids, types, mask, t) = pad_batch(&batch, pad);
            let starts: Vec<usize> = batch.iter().map(|f| f.start_position).collect();
            let ends: Vec<usize> = batch.iter().map(|f| f.end_position).collect();
            tape.reset();
            model.store.zero_grads();
            let input = BertInput::new(&ids, batch.len(), t)
                .with_token_types(&types)
                .with_attention_mask(&mask);
            let opts = ForwardOptions {
                seed: cfg.seed.wrapping_mul(1_000_003).wrapping_add(step),
                output_hidden_states: false,
            };
            let h = model.bert.forward(&mut tape, &model.store, &input, &opts)?;
            let loss = model.head.loss(
                &mut tape,
                &model.store,
                &h.last_hidden_state,
                &starts,
                &ends,
            )?;
            let l = loss.value().data()[0] as f64;
            loss_sum += l;
            loss_n += 1;
            let grads = tape.backward(&loss)?;
            model.store.accumulate(&grads)?;
            let norm = model.store.clip_grad_norm(1.0)?;
            crate::train::ensure_finite_step(step + 1, &[("loss", l)], norm, &[&model.store])?;
            opt.step(&mut model.store, schedule.lr(step))?;
            step += 1;
            bar.inc(1);
            bar.set_message(format!("epoch {} loss {l:.3}", epoch + 1));
        }
        last_epoch_loss = loss_sum / loss_n.max(1) as f64;
    }
    bar.finish_and_clear();
    let logits = model.logits(&eval_feats, cfg.batch_size)?;
    let preds = predict_answers(eval, &eval_feats, &logits, cfg.max_answer_length)?;
    let (exact_match, f1) = squad_scores(&preds, eval)?;
    Ok((
        model,
        SpanScores {
            exact_match,
            f1,
            train_examples: train.len(),
            train_features: feats.len(),
            eval_examples: eval.len(),
            eval_features: eval_feats.len(),
            steps: step,
            last_epoch_loss,
        },
    ))
}

/// [`train_span_model`] returning only the scores.
pub fn train_span(
    cfg: &SpanConfig,
    train: &[SquadExample],
    eval: &[SquadExample],
) -> Result<SpanScores> {
    train_span_model(cfg, train, eval).map(|(_, s)| s)
}
