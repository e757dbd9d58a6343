//! Pre-training data as BERT's `create_pretraining_data.py` makes it.
//!
//! - [`corpus`]: the reference's plain-text format (one sentence per line, a blank line between
//!   documents), streamed, with a held-out split by document.
//! - [`instances`]: segment pairs with the NSP label, truncation and the masked-LM choices.
//! - [`config`]: the TOML config of a pre-training run.
//! - [`trainer`]: the loop (AdamW, schedule, clipping, eval, checkpoints, exact resume).

pub mod config;
pub mod corpus;
pub mod instances;
pub mod trainer;
