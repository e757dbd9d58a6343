//! BERT's WordPiece tokenizer, matching HF's slow `BertTokenizer` id for id, and a WordPiece
//! vocabulary trainer.
//!
//! The pipeline for one text (HF `BertTokenizer` under Python 3.11, Unicode 14):
//! 1. special-token literals `[CLS] [SEP] [PAD] [UNK] [MASK]` are cut out and kept whole;
//! 2. NUL, U+FFFD and every `C*` char except `\t \n \r` are deleted;
//! 3. `\t \n \r` and `Zs` chars become spaces;
//! 4. CJK ideographs get spaces around them;
//! 5. NFC, then a split on whitespace as Python's `str.split()` does;
//! 6. per word: Python's `str.lower()`, NFD, drop `Mn` (uncased models);
//! 7. every punctuation char (ASCII 33–47, 58–64, 91–96, 123–126, or `P*`) is its own word;
//! 8. greedy longest-match-first WordPiece with `##` continuations; a word of more than 100
//!    chars or one that cannot be matched becomes one `[UNK]`.
//!
//! ```
//! use cloze::tokenizer::{Tokenizer, Vocab};
//! let vocab = Vocab::from_tokens([
//!     "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cafe", "is", "open", "!",
//! ]).unwrap();
//! let tok = Tokenizer::new(vocab);
//! let e = tok.encode("Café IS [MASK]!");
//! assert_eq!(e.tokens, ["[CLS]", "cafe", "is", "[MASK]", "!", "[SEP]"]);
//! assert_eq!(e.input_ids, [2, 5, 6, 4, 8, 3]);
//! assert_eq!(e.attention_mask, [1; 6]);
//! ```
//!
//! Real vocabularies load with [`Vocab::load`] (`vocab.txt`, one token per line) or
//! [`Tokenizer::from_vocab_file`]; [`Trainer`] learns a new one from a corpus.

pub mod basic;
pub mod encode;
pub mod trainer;
pub mod unicode;
mod unicode_tables;
pub mod vocab;
pub mod wordpiece;

pub use basic::BasicTokenizer;
pub use encode::{EncodeOptions, Encoding, PaddedBatch, Padding, PairTruncation, Tokenizer};
pub use trainer::{TrainStats, Trainer, TrainerConfig};
pub use vocab::{Vocab, REQUIRED_TOKENS, SPECIAL_TOKENS};
