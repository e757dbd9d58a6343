//! Features: a question and one window of its context laid out for the model, and the
//! decoding of the best answer span back out of the windows' logits.

use crate::error::{invalid, require_positive, Result};
use crate::finetune::span::squad::SquadExample;
use crate::tokenizer::Tokenizer;

/// How questions and contexts become model inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WindowOptions {
    /// Tokens per window, `[CLS]` and both `[SEP]`s included.
    pub max_seq_length: usize,
    /// Pieces between the starts of consecutive windows.
    pub doc_stride: usize,
    /// Questions are cut to this many WordPiece pieces.
    pub max_query_length: usize,
}

impl WindowOptions {
    /// Rejects sizes that leave no room for context or cannot advance.
    pub fn validate(&self) -> Result<()> {
        require_positive(
            "WindowOptions",
            &[
                ("doc_stride", self.doc_stride),
                ("max_query_length", self.max_query_length),
            ],
        )?;
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
    /// `[CLS] question [SEP] context window [SEP]` as token ids.
    pub input_ids: Vec<u32>,
    /// 0 for `[CLS]`, the question and the first `[SEP]`; 1 for the context and the last `[SEP]`.
    pub token_type_ids: Vec<u32>,
    /// Position of the window's first context piece (`|q| + 2`).
    pub context_start: usize,
    /// Per position: the context chars `(start, end)` of a context piece, `None` elsewhere.
    pub char_spans: Vec<Option<(usize, usize)>>,
    /// Per position: whether this window is the piece's max-context window.
    pub max_context: Vec<bool>,
    /// Training target (0, 0 = `[CLS]` when the window lacks the answer or for eval).
    pub start_position: usize,
    /// Training target: position of the answer's last piece (0 with `start_position` 0).
    pub end_position: usize,
}

impl SpanFeature {
    /// Tokens in the window, specials included.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// Whether the feature has no tokens.
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
