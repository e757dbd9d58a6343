//! Fine-tuning data: labelled sentence and sentence-pair tasks (GLUE and the registry-built
//! tasks), token-tagging data, and span extraction (SQuAD-style question answering).

pub mod data;
pub mod span;
pub mod tagging;
pub mod trainer;
