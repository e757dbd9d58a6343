//! The WordPiece vocabulary: `vocab.txt`, one token per line, id = line number (from 0).

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};

/// The special tokens, in the order a trained vocabulary lists them first.
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// The special tokens a [`Vocab`] must contain to build a tokenizer.
pub const REQUIRED_TOKENS: [&str; 4] = ["[UNK]", "[CLS]", "[SEP]", "[PAD]"];

/// A WordPiece vocabulary: token strings and their ids.
///
/// ```
/// use cloze::tokenizer::Vocab;
/// let v = Vocab::from_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "##s"]).unwrap();
/// assert_eq!(v.id("hello"), Some(4));
/// assert_eq!(v.token(5), Some("##s"));
/// assert_eq!(v.unk_id(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct Vocab {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
    max_token_chars: usize,
    pad: u32,
    unk: u32,
    cls: u32,
    sep: u32,
    mask: Option<u32>,
}

impl Vocab {
    /// Reads `vocab.txt`: one token per line (a trailing `\r` is dropped), id = line number.
    ///
    /// Errors: the file cannot be read ([`Error::Io`]), it is empty, holds a duplicate token, or
    /// lacks one of `[UNK] [CLS] [SEP] [PAD]` ([`Error::Format`], naming the token and line).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::error::read_utf8(path)?;
        let mut lines: Vec<&str> = text.split('\n').collect();
        if lines.last() == Some(&"") {
            lines.pop();
        }
        Self::build(
            lines.into_iter().map(|l| l.strip_suffix('\r').unwrap_or(l)),
            &path.display().to_string(),
        )
    }

    /// Builds a vocabulary from tokens in id order, with the same checks as [`Vocab::load`].
    pub fn from_tokens<I, S>(tokens: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::build(tokens.into_iter().map(|s| s.as_ref().to_owned()), "<vocab>")
    }

    fn build<I, S>(tokens: I, origin: &str) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let fmt = |detail: String| Error::Format {
            path: origin.to_owned(),
            detail,
        };
        let mut list = Vec::new();
        let mut ids = HashMap::new();
        let mut max_token_chars = 0;
        for (i, t) in tokens.into_iter().enumerate() {
            let t: String = t.into();
            let id = u32::try_from(i).map_err(|_| fmt("more than u32::MAX tokens".into()))?;
            if let Some(prev) = ids.insert(t.clone(), id) {
                return Err(fmt(format!(
                    "duplicate token {t:?} at line {} (first at line {})",
                    i + 1,
                    prev + 1
                )));
            }
            max_token_chars = max_token_chars.max(t.chars().count());
            list.push(t);
        }
        if list.is_empty() {
            return Err(fmt("empty vocabulary".into()));
        }
        let missing: Vec<&str> = REQUIRED_TOKENS
            .iter()
            .copied()
            .filter(|t| !ids.contains_key(*t))
            .collect();
        if !missing.is_empty() {
            // a byte-order mark is part of the first token, as in the reference tokenizer
            let bom = if list[0].starts_with('\u{feff}') {
                " (the file starts with a UTF-8 byte-order mark, which makes it part of the first token; save the file without one)"
            } else {
                ""
            };
            return Err(fmt(format!(
                "vocabulary lacks required special token(s) {}{bom}",
                missing.join(" ")
            )));
        }
        Ok(Vocab {
            pad: ids["[PAD]"],
            unk: ids["[UNK]"],
            cls: ids["[CLS]"],
            sep: ids["[SEP]"],
            mask: ids.get("[MASK]").copied(),
            tokens: list,
            ids,
            max_token_chars,
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always false (an empty vocabulary is rejected when built).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of a token.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The token of an id.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// All tokens in id order.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Length in chars of the longest token (bounds WordPiece's search).
    pub fn max_token_chars(&self) -> usize {
        self.max_token_chars
    }

    /// Id of `[PAD]`.
    pub fn pad_id(&self) -> u32 {
        self.pad
    }
    /// Id of `[UNK]`.
    pub fn unk_id(&self) -> u32 {
        self.unk
    }
    /// Id of `[CLS]`.
    pub fn cls_id(&self) -> u32 {
        self.cls
    }
    /// Id of `[SEP]`.
    pub fn sep_id(&self) -> u32 {
        self.sep
    }
    /// Id of `[MASK]`, if the vocabulary has one.
    pub fn mask_id(&self) -> Option<u32> {
        self.mask
    }

    /// Whether `id` is one of the special tokens `[PAD] [UNK] [CLS] [SEP] [MASK]`.
    pub fn is_special(&self, id: u32) -> bool {
        id == self.pad
            || id == self.unk
            || id == self.cls
            || id == self.sep
            || Some(id) == self.mask
    }

    /// Writes the vocabulary as `vocab.txt` (one token per line, in id order). A token holding
    /// a line break cannot be written and is an error naming it.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut text = String::new();
        for (id, t) in self.tokens.iter().enumerate() {
            if t.contains(['\n', '\r']) {
                return Err(Error::Format {
                    path: path.display().to_string(),
                    detail: format!(
                        "token {t:?} (id {id}) holds a line break; vocab.txt cannot store it"
                    ),
                });
            }
            text.push_str(t);
            text.push('\n');
        }
        // atomically: a full disk or a crash leaves the old file (or none), never a truncated
        // vocabulary that would later be reused silently
        crate::train::checkpoint::write_atomic(path, text.as_bytes())
    }
}
