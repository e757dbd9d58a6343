//! BERT's basic tokenizer: cleaning, CJK spacing, lowercasing / accent stripping and
//! punctuation splitting, exactly as HF's slow `BasicTokenizer` does under Python 3.11.

use unicode_normalization::UnicodeNormalization;

use super::unicode::{
    char_class, is_bert_whitespace, is_cjk, is_control, is_punctuation, is_py_space, py_lower,
    CharClass,
};

/// Options and state of the basic tokenizer.
///
/// ```
/// use cloze::tokenizer::BasicTokenizer;
/// let b = BasicTokenizer::uncased();
/// assert_eq!(b.tokenize("Héllo, WORLD!"), ["hello", ",", "world", "!"]);
/// assert_eq!(b.tokenize("我们 ok"), ["我", "们", "ok"]);
/// ```
#[derive(Clone, Debug)]
pub struct BasicTokenizer {
    /// Apply Python's `str.lower()` to each word.
    pub lowercase: bool,
    /// `None`: strip accents iff lower-casing (HF default); `Some(b)`: force on / off.
    pub strip_accents: Option<bool>,
    /// Put spaces around CJK ideographs.
    pub tokenize_cjk: bool,
    /// Words kept whole (neither lower-cased nor split), e.g. the special tokens.
    pub never_split: Vec<String>,
}

impl BasicTokenizer {
    /// The uncased BERT configuration (lowercase, strip accents, CJK spacing), with the special
    /// tokens `[PAD] [UNK] [CLS] [SEP] [MASK]` never split.
    pub fn uncased() -> Self {
        BasicTokenizer {
            lowercase: true,
            strip_accents: None,
            tokenize_cjk: true,
            never_split: super::vocab::SPECIAL_TOKENS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    /// The cased BERT configuration (no lowercasing, no accent stripping).
    pub fn cased() -> Self {
        BasicTokenizer {
            lowercase: false,
            ..Self::uncased()
        }
    }

    /// Splits `text` into words (steps 2–7 of the reference algorithm). Special-token literals
    /// are *not* cut out here; [`crate::tokenizer::Tokenizer`] does that first.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.tokenize_into(text, &mut out);
        out
    }

    /// As [`BasicTokenizer::tokenize`], appending to `out`.
    pub fn tokenize_into(&self, text: &str, out: &mut Vec<String>) {
        // Steps 2-4: delete NUL / U+FFFD / C* (but \t \n \r), map whitespace to ' ', space CJK.
        let mut cleaned = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            if c == '\0' || c == '\u{FFFD}' || is_control(c) {
                continue;
            }
            if is_bert_whitespace(c) {
                cleaned.push(' ');
            } else if self.tokenize_cjk && is_cjk(c) {
                cleaned.push(' ');
                cleaned.push(c);
                cleaned.push(' ');
            } else {
                cleaned.push(c);
            }
        }
        // Step 5: NFC, then split as Python's str.split().
        // (ASCII text is its own NFC and NFD.)
        let normalized: String = if cleaned.is_ascii() {
            cleaned
        } else {
            cleaned.nfc().collect()
        };
        let strip = self.strip_accents.unwrap_or(self.lowercase);
        for word in normalized.split(is_py_space).filter(|w| !w.is_empty()) {
            if self.never_split.iter().any(|s| s == word) {
                out.push(word.to_owned());
                continue;
            }
            // Step 6: Python str.lower(), then NFD and drop Mn.
            let lowered;
            let word = if self.lowercase {
                lowered = py_lower(word);
                lowered.as_str()
            } else {
                word
            };
            let stripped;
            let word = if strip && !word.is_ascii() {
                stripped = word
                    .nfd()
                    .filter(|&c| char_class(c) != CharClass::NonspacingMark)
                    .collect::<String>();
                stripped.as_str()
            } else {
                word
            };
            // Step 7: every punctuation char is its own word. (The reference re-splits the
            // result on whitespace; lowercasing and NFD never create whitespace, so splitting
            // here again is only a guard.)
            let mut current = String::new();
            for c in word.chars() {
                if is_punctuation(c) {
                    if !current.is_empty() {
                        push_split(&mut current, out);
                    }
                    out.push(c.to_string());
                } else {
                    current.push(c);
                }
            }
            if !current.is_empty() {
                push_split(&mut current, out);
            }
        }
    }
}

fn push_split(current: &mut String, out: &mut Vec<String>) {
    if current.chars().any(is_py_space) {
        out.extend(
            current
                .split(is_py_space)
                .filter(|w| !w.is_empty())
                .map(str::to_owned),
        );
        current.clear();
    } else {
        out.push(std::mem::take(current));
    }
}
