//! Pre-training data as BERT's `create_pretraining_data.py` makes it.
//!
//! - [`corpus`]: the reference's plain-text format (one sentence per line, a blank line between
//!   documents), streamed, with a held-out split by document.
//! - [`instances`]: segment pairs with the NSP label, truncation and the masked-LM choices.

pub mod corpus;
pub mod instances;
