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
//!
//! - [`squad`]: the examples and the metric; [`features`]: windows and decoding;
//!   [`head`]: the head and its loss; [`train`]: settings, model and training.

pub mod features;
pub mod head;
pub mod squad;
pub mod train;

pub use features::{best_span, make_features, predict_answers, SpanFeature, WindowOptions};
pub use head::{span_logits, span_loss, SpanHead};
pub use squad::{
    exact_match, f1_score, normalize_answer, parse_squad_json, read_squad_json, squad_scores,
    SquadArticle, SquadExample,
};
pub use train::{train_span, train_span_model, SpanConfig, SpanModel, SpanScores};
