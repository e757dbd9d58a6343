//! Greedy longest-match-first WordPiece over one word.

use super::vocab::Vocab;

/// Prefix of word-continuing pieces.
pub const CONTINUATION_PREFIX: &str = "##";

/// HF's `max_input_chars_per_word` (the original Google code uses 200).
pub const MAX_INPUT_CHARS_PER_WORD: usize = 100;

/// Splits `word` into WordPiece ids, appending them to `out`; returns how many were appended.
///
/// A word of more than `max_chars` chars, or one that cannot be covered by vocabulary pieces
/// (the first piece as is, later ones as `##piece`), becomes a single `[UNK]`.
///
/// ```
/// use cloze::tokenizer::{wordpiece, Vocab};
/// let v = Vocab::from_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "aff"]).unwrap();
/// let mut ids = Vec::new();
/// wordpiece::tokenize_word(&v, "unaffable", 100, &mut ids);
/// assert_eq!(ids, [4, 5, 6]);
/// ids.clear();
/// wordpiece::tokenize_word(&v, "unx", 100, &mut ids);
/// assert_eq!(ids, [1]);
/// ```
pub fn tokenize_word(vocab: &Vocab, word: &str, max_chars: usize, out: &mut Vec<u32>) -> usize {
    // Byte offsets of every char boundary, including the end.
    let bounds: Vec<usize> = word
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(word.len()))
        .collect();
    let n_chars = bounds.len() - 1;
    if n_chars == 0 {
        return 0;
    }
    if n_chars > max_chars {
        out.push(vocab.unk_id());
        return 1;
    }
    let start_len = out.len();
    let mut key = String::with_capacity(word.len() + CONTINUATION_PREFIX.len());
    let mut start = 0;
    while start < n_chars {
        // Pieces longer than the longest vocabulary token cannot match; skip trying them.
        let longest = vocab.max_token_chars();
        let mut end = n_chars.min(start + longest);
        let mut found = None;
        while end > start {
            key.clear();
            if start > 0 {
                key.push_str(CONTINUATION_PREFIX);
            }
            key.push_str(&word[bounds[start]..bounds[end]]);
            if let Some(id) = vocab.id(&key) {
                found = Some(id);
                break;
            }
            end -= 1;
        }
        match found {
            Some(id) => {
                out.push(id);
                start = end;
            }
            None => {
                out.truncate(start_len);
                out.push(vocab.unk_id());
                return 1;
            }
        }
    }
    out.len() - start_len
}
