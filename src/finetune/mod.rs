//! Fine-tuning data: labelled sentence and sentence-pair tasks (GLUE and the registry-built
//! tasks), and token-tagging data.

pub mod data;
pub mod tagging;
pub mod trainer;
