//! The full BERT tokenizer: special-token literals, basic tokenizer, WordPiece, `[CLS]`/`[SEP]`,
//! pairs, truncation, padding, batches and decoding.

use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use super::basic::BasicTokenizer;
use super::vocab::{Vocab, SPECIAL_TOKENS};
use super::wordpiece::{self, CONTINUATION_PREFIX, MAX_INPUT_CHARS_PER_WORD};
use crate::error::{invalid, Result};

/// One encoded sequence (or pair), ready for the model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Encoding {
    /// Token ids, `[CLS] a… [SEP]` or `[CLS] a… [SEP] b… [SEP]`, then any `[PAD]`s.
    pub input_ids: Vec<u32>,
    /// 0 for `[CLS]`, the first text and its `[SEP]`; 1 for the second text and its `[SEP]`;
    /// 0 for padding.
    pub token_type_ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
    /// The ids as token strings.
    pub tokens: Vec<String>,
}

impl Encoding {
    /// Sequence length, padding included.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// True for a zero-length encoding (never produced: `[CLS]` and `[SEP]` are always there).
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }
}

/// Padding of encoded sequences.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Padding {
    /// No padding.
    #[default]
    None,
    /// Pad every sequence of a batch to the longest one (a no-op for a single sequence).
    Longest,
    /// Pad to exactly this length; a longer sequence is an error.
    Fixed(usize),
}

/// Encodings laid out as row-major `[batch, seq]` arrays, right-padded to the longest one
/// (`[PAD]`, token type 0, mask 0): the model's input for a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaddedBatch {
    /// Token ids, `[batch, seq]`, `[PAD]` after each sequence's end.
    pub input_ids: Vec<u32>,
    /// Segment ids, `[batch, seq]` (0 on padding).
    pub token_type_ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding, `[batch, seq]`.
    pub attention_mask: Vec<u32>,
    /// Number of sequences.
    pub batch: usize,
    /// Length of every row: the longest encoding's.
    pub seq: usize,
}

impl PaddedBatch {
    /// Lays out `encs` (unpadded or padded alike; their own padding is kept) with `pad_id`.
    pub fn new(encs: &[&Encoding], pad_id: u32) -> PaddedBatch {
        let seq = encs.iter().map(|e| e.len()).max().unwrap_or(1);
        let batch = encs.len();
        let mut out = PaddedBatch {
            input_ids: vec![pad_id; batch * seq],
            token_type_ids: vec![0; batch * seq],
            attention_mask: vec![0; batch * seq],
            batch,
            seq,
        };
        for (i, e) in encs.iter().enumerate() {
            let r = i * seq..i * seq + e.len();
            out.input_ids[r.clone()].copy_from_slice(&e.input_ids);
            out.token_type_ids[r.clone()].copy_from_slice(&e.token_type_ids);
            out.attention_mask[r].copy_from_slice(&e.attention_mask);
        }
        out
    }
}

/// How to encode: length limit, truncation and padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EncodeOptions {
    /// Maximum length including the special tokens. Without `truncation`, a longer input is an
    /// error; it must leave room for the specials (2 for a single text, 3 for a pair).
    pub max_length: Option<usize>,
    /// Truncate to `max_length` with the `longest_first` strategy; see [`PairTruncation`] for
    /// how a pair is cut.
    pub truncation: bool,
    /// Padding to apply after truncation.
    pub padding: Padding,
    /// Which `longest_first` rule cuts a pair (a single text is cut from its end either way).
    pub pair_truncation: PairTruncation,
}

/// The two `longest_first` rules HF ships; they differ only when both texts of a pair must be
/// cut and the budget left for them is odd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairTruncation {
    /// The Python ("slow") `BertTokenizer`'s rule (`transformers`'
    /// `PreTrainedTokenizer.truncate_sequences`): remove one token at a time from the end of
    /// the longer text, from the second on a tie. When both are cut, the first keeps the odd
    /// token: budget 9 for lengths 10 and 12 gives 5 + 4.
    #[default]
    Python,
    /// The Rust `tokenizers` ("fast", HF's default `AutoTokenizer`) rule: the shorter text
    /// keeps its length if the longer one can still keep as many tokens; otherwise both are
    /// cut to half the budget and the longer text keeps the odd token: budget 9 for lengths
    /// 10 and 12 gives 4 + 5.
    Fast,
}

impl EncodeOptions {
    /// Truncate to `max_length` tokens (specials included).
    pub fn truncate(max_length: usize) -> Self {
        EncodeOptions {
            max_length: Some(max_length),
            truncation: true,
            padding: Padding::None,
            pair_truncation: PairTruncation::Python,
        }
    }

    /// The same options with the given pair-truncation rule.
    pub fn with_pair_truncation(mut self, rule: PairTruncation) -> Self {
        self.pair_truncation = rule;
        self
    }

    /// The same options with `padding`.
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
}

/// A BERT WordPiece tokenizer giving the same ids as HF's slow `BertTokenizer` (Python 3.11).
///
/// ```
/// use cloze::tokenizer::{EncodeOptions, Padding, Tokenizer, Vocab};
/// let vocab = Vocab::from_tokens([
///     "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s", ".",
/// ]).unwrap();
/// let tok = Tokenizer::new(vocab);
/// let e = tok.encode("The cats sat.");
/// assert_eq!(e.tokens, ["[CLS]", "the", "cat", "##s", "sat", ".", "[SEP]"]);
/// assert_eq!(e.input_ids, [2, 5, 6, 10, 7, 11, 3]);
///
/// let p = tok.encode_pair("the cat", "on [MASK] mat");
/// assert_eq!(p.token_type_ids, [0, 0, 0, 0, 1, 1, 1, 1]);
///
/// let opts = EncodeOptions::truncate(5).with_padding(Padding::Fixed(6));
/// let t = tok.encode_with("the cat sat on the mat", None, &opts).unwrap();
/// assert_eq!(t.tokens, ["[CLS]", "the", "cat", "sat", "[SEP]", "[PAD]"]);
/// assert_eq!(t.attention_mask, [1, 1, 1, 1, 1, 0]);
/// assert_eq!(tok.decode(&t.input_ids, true).unwrap(), "the cat sat");
/// ```
#[derive(Clone, Debug)]
pub struct Tokenizer {
    vocab: Vocab,
    basic: BasicTokenizer,
    max_input_chars_per_word: usize,
    /// Matcher of the special-token literals cut out of the raw text (leftmost, then
    /// longest), `None` when the vocabulary has none; pattern `i` has id `special_ids[i]`.
    specials: Option<aho_corasick::AhoCorasick>,
    special_ids: Vec<u32>,
}

impl Tokenizer {
    /// An uncased BERT tokenizer (lowercase, strip accents, CJK spacing) over `vocab`.
    pub fn new(vocab: Vocab) -> Self {
        Self::with_basic(vocab, BasicTokenizer::uncased())
    }

    /// A tokenizer with explicit basic-tokenizer options.
    pub fn with_basic(vocab: Vocab, basic: BasicTokenizer) -> Self {
        let (lits, special_ids): (Vec<&str>, Vec<u32>) = SPECIAL_TOKENS
            .iter()
            .filter_map(|s| vocab.id(s).map(|id| (*s, id)))
            .unzip();
        // One linear scan finds the leftmost (then longest) literal: searching for each
        // literal separately rescanned the rest of the text once per special token found.
        let specials = (!lits.is_empty()).then(|| {
            aho_corasick::AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(&lits)
                .expect("a handful of short literals always build")
        });
        Tokenizer {
            vocab,
            basic,
            max_input_chars_per_word: MAX_INPUT_CHARS_PER_WORD,
            specials,
            special_ids,
        }
    }

    /// Loads `vocab.txt` and builds an uncased tokenizer.
    pub fn from_vocab_file(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::new(Vocab::load(path)?))
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The basic-tokenizer options.
    pub fn basic(&self) -> &BasicTokenizer {
        &self.basic
    }

    /// Sets `max_input_chars_per_word` (100 by default, as HF; the original Google code uses 200).
    pub fn set_max_input_chars_per_word(&mut self, n: usize) {
        self.max_input_chars_per_word = n;
    }

    /// The WordPiece ids of `text`, without `[CLS]`/`[SEP]`.
    pub fn tokenize_ids(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut words = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (chunk, special, after) = self.next_special(rest);
            words.clear();
            self.basic.tokenize_into(chunk, &mut words);
            for w in &words {
                wordpiece::tokenize_word(&self.vocab, w, self.max_input_chars_per_word, &mut ids);
            }
            if let Some(id) = special {
                ids.push(id);
            }
            rest = after;
        }
        ids
    }

    /// The WordPiece ids of `text` (the same as [`Self::tokenize_ids`]) with the span of
    /// `text` each piece came from, as `(id, start, end)` in **char** indices (Unicode scalar
    /// values, as Python's `str` indices), `end` exclusive. This is what maps an answer's char
    /// offsets to pieces and a predicted piece span back to a substring of the text.
    ///
    /// The text is cut where the basic tokenizer cuts it (whitespace, each punctuation char,
    /// each CJK ideograph, special-token literals); each resulting unit is normalised and split
    /// into pieces. When normalisation keeps the unit's char count (lower-casing and stripping
    /// precomposed accents do), each piece gets its exact chars; otherwise (or for `[UNK]`)
    /// every piece of the unit gets the whole unit. Deleted control chars belong to no piece.
    ///
    /// ```
    /// use cloze::tokenizer::{Tokenizer, Vocab};
    /// let v = Vocab::from_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", ","]).unwrap();
    /// let tok = Tokenizer::new(v);
    /// let p = tok.tokenize_with_offsets("Unaffable,  Zé");
    /// assert_eq!(p, [(4, 0, 2), (5, 2, 5), (6, 5, 9), (7, 9, 10), (1, 12, 14)]);
    /// ```
    pub fn tokenize_with_offsets(&self, text: &str) -> Vec<(u32, usize, usize)> {
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        let mut rest = text;
        let mut consumed_chars = 0usize; // chars of `text` before `rest` (counted as we go)
        while !rest.is_empty() {
            let (chunk, special, after) = self.next_special(rest);
            let chunk_start = consumed_chars;
            let chunk_len = chunk.chars().count();
            self.offsets_of_chunk(
                &chars[chunk_start..chunk_start + chunk_len],
                chunk_start,
                &mut out,
            );
            let special_bytes = rest.len() - chunk.len() - after.len();
            if let Some(id) = special {
                let s = chunk_start + chunk_len;
                let n = rest[chunk.len()..chunk.len() + special_bytes]
                    .chars()
                    .count();
                out.push((id, s, s + n));
            }
            consumed_chars += rest[..rest.len() - after.len()].chars().count();
            rest = after;
        }
        out
    }

    /// [`Self::tokenize_with_offsets`] of one special-free chunk starting at char `base`.
    fn offsets_of_chunk(&self, chars: &[char], base: usize, out: &mut Vec<(u32, usize, usize)>) {
        use super::unicode::{is_bert_whitespace, is_cjk, is_control, is_punctuation, is_py_space};
        let deleted = |c: char| c == '\0' || c == '\u{FFFD}' || is_control(c);
        let alone = |c: char| is_punctuation(c) || (self.basic.tokenize_cjk && is_cjk(c));
        let mut i = 0;
        let mut unit = String::new();
        let mut kept: Vec<usize> = Vec::new(); // char index (in `chars`) of each kept char
        let mut words = Vec::new();
        let mut ids = Vec::new();
        while i < chars.len() {
            let c = chars[i];
            if is_bert_whitespace(c) || is_py_space(c) || deleted(c) {
                i += 1;
                continue;
            }
            // one unit: a lone punctuation / CJK char, or a run of other chars
            unit.clear();
            kept.clear();
            let start = i;
            if alone(c) {
                unit.push(c);
                kept.push(i);
                i += 1;
            } else {
                while i < chars.len() {
                    let c = chars[i];
                    if is_bert_whitespace(c) || is_py_space(c) || alone(c) {
                        break;
                    }
                    if !deleted(c) {
                        unit.push(c);
                        kept.push(i);
                    }
                    i += 1;
                }
            }
            let end = i;
            words.clear();
            self.basic.tokenize_into(&unit, &mut words);
            for w in &words {
                ids.clear();
                wordpiece::tokenize_word(&self.vocab, w, self.max_input_chars_per_word, &mut ids);
                let exact = words.len() == 1 && w.chars().count() == kept.len();
                let mut at = 0usize; // chars of `w` consumed
                for (k, &id) in ids.iter().enumerate() {
                    let piece_chars = if id == self.vocab.unk_id() && ids.len() == 1 {
                        kept.len()
                    } else {
                        let t = self.vocab.token(id).unwrap_or("");
                        let t = if k > 0 {
                            t.strip_prefix(CONTINUATION_PREFIX).unwrap_or(t)
                        } else {
                            t
                        };
                        t.chars().count()
                    };
                    if exact && at + piece_chars <= kept.len() && piece_chars > 0 {
                        let s = kept[at];
                        let e = kept[at + piece_chars - 1] + 1;
                        out.push((id, base + s, base + e));
                    } else {
                        out.push((id, base + start, base + end));
                    }
                    at += piece_chars;
                }
            }
        }
    }

    /// The WordPiece tokens of `text`, without `[CLS]`/`[SEP]`.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        self.ids_to_tokens(&self.tokenize_ids(text))
    }

    /// Splits off the text before the leftmost special-token literal: (text before, the
    /// special's id, text after). Without a special, returns the whole text.
    fn next_special<'a>(&self, text: &'a str) -> (&'a str, Option<u32>, &'a str) {
        let Some(ac) = &self.specials else {
            return (text, None, "");
        };
        match ac.find(text) {
            Some(m) => (
                &text[..m.start()],
                Some(self.special_ids[m.pattern().as_usize()]),
                &text[m.end()..],
            ),
            None => (text, None, ""),
        }
    }

    fn ids_to_tokens(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&id| self.vocab.token(id).unwrap_or("[UNK]").to_owned())
            .collect()
    }

    /// `[CLS] text [SEP]`, no truncation or padding.
    pub fn encode(&self, text: &str) -> Encoding {
        let a = self.tokenize_ids(text);
        self.assemble(a, None)
    }

    /// `[CLS] a [SEP] b [SEP]` with token types 0 then 1, no truncation or padding.
    pub fn encode_pair(&self, a: &str, b: &str) -> Encoding {
        let a = self.tokenize_ids(a);
        let b = self.tokenize_ids(b);
        self.assemble(a, Some(b))
    }

    /// Encodes a text or a pair with a length limit, truncation and padding.
    ///
    /// Errors: `max_length` too small for the special tokens; an input longer than
    /// `max_length` without `truncation`; a sequence longer than `Padding::Fixed`.
    pub fn encode_with(&self, a: &str, b: Option<&str>, opts: &EncodeOptions) -> Result<Encoding> {
        let mut a = self.tokenize_ids(a);
        let mut b = b.map(|b| self.tokenize_ids(b));
        let n_special = if b.is_some() { 3 } else { 2 };
        if let Some(max) = opts.max_length {
            if max < n_special {
                return invalid(
                    "tokenizer.encode",
                    format!(
                        "max_length {max} cannot hold the {n_special} special tokens of a {}",
                        if b.is_some() { "pair" } else { "single text" }
                    ),
                );
            }
            let total = a.len() + b.as_ref().map_or(0, Vec::len) + n_special;
            if total > max {
                if !opts.truncation {
                    return invalid(
                        "tokenizer.encode",
                        format!(
                            "input is {total} tokens long, more than max_length {max}; enable truncation"
                        ),
                    );
                }
                match (opts.pair_truncation, b.as_mut()) {
                    (PairTruncation::Fast, Some(b)) => truncate_fast(&mut a, b, max - n_special),
                    (_, b) => truncate_longest_first(&mut a, b, total - max),
                }
            }
        } else if opts.truncation {
            return invalid("tokenizer.encode", "truncation needs a max_length");
        }
        let mut e = self.assemble(a, b);
        if let Padding::Fixed(n) = opts.padding {
            self.pad(&mut e, n)?;
        }
        Ok(e)
    }

    /// Encodes a batch of texts or pairs (in parallel; the result does not depend on the
    /// thread count). `Padding::Longest` pads to the longest in the batch.
    pub fn encode_batch(
        &self,
        inputs: &[(&str, Option<&str>)],
        opts: &EncodeOptions,
    ) -> Result<Vec<Encoding>> {
        let mut out = inputs
            .par_iter()
            .map(|(a, b)| self.encode_with(a, *b, opts))
            .collect::<Result<Vec<_>>>()?;
        if opts.padding == Padding::Longest {
            let longest = out.iter().map(Encoding::len).max().unwrap_or(0);
            for e in &mut out {
                self.pad(e, longest)?;
            }
        }
        Ok(out)
    }

    /// Encodes a batch of single texts, padded as `opts.padding` says.
    pub fn encode_texts(&self, texts: &[&str], opts: &EncodeOptions) -> Result<Vec<Encoding>> {
        let inputs: Vec<(&str, Option<&str>)> = texts.iter().map(|t| (*t, None)).collect();
        self.encode_batch(&inputs, opts)
    }

    /// Right-pads `e` with `[PAD]` (type 0, mask 0) to `len`; a longer `e` is an error.
    pub fn pad(&self, e: &mut Encoding, len: usize) -> Result<()> {
        check_pad_length(len)?;
        if e.len() > len {
            return invalid(
                "tokenizer.pad",
                format!(
                    "sequence of {} tokens is longer than the padding length {len}",
                    e.len()
                ),
            );
        }
        let extra = len - e.len();
        let pad = self.vocab.pad_id();
        let pad_tok = self.vocab.token(pad).unwrap_or("[PAD]").to_owned();
        e.input_ids.extend(std::iter::repeat_n(pad, extra));
        e.token_type_ids.extend(std::iter::repeat_n(0, extra));
        e.attention_mask.extend(std::iter::repeat_n(0, extra));
        e.tokens.extend(std::iter::repeat_n(pad_tok, extra));
        Ok(())
    }

    fn assemble(&self, a: Vec<u32>, b: Option<Vec<u32>>) -> Encoding {
        let (cls, sep) = (self.vocab.cls_id(), self.vocab.sep_id());
        let mut ids = Vec::with_capacity(a.len() + b.as_ref().map_or(0, Vec::len) + 3);
        ids.push(cls);
        ids.extend_from_slice(&a);
        ids.push(sep);
        let first = ids.len();
        if let Some(b) = &b {
            ids.extend_from_slice(b);
            ids.push(sep);
        }
        let mut types = vec![0; first];
        types.resize(ids.len(), 1);
        Encoding {
            token_type_ids: types,
            attention_mask: vec![1; ids.len()],
            tokens: self.ids_to_tokens(&ids),
            input_ids: ids,
        }
    }

    /// Joins the tokens of `ids` with spaces, gluing `##` pieces to the previous one
    /// (HF's `decode` without `clean_up_tokenization_spaces`). With `skip_special`, the
    /// special tokens (`[PAD] [UNK] [CLS] [SEP] [MASK]`) are left out. An id outside the
    /// vocabulary is an error naming it.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let mut out = String::new();
        for &id in ids {
            let Some(tok) = self.vocab.token(id) else {
                return invalid(
                    "tokenizer.decode",
                    format!(
                        "id {id} is outside the vocabulary of {} tokens",
                        self.vocab.len()
                    ),
                );
            };
            if skip_special && self.vocab.is_special(id) {
                continue;
            }
            match tok.strip_prefix(CONTINUATION_PREFIX) {
                Some(piece) if !out.is_empty() => out.push_str(piece),
                _ => {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(tok);
                }
            }
        }
        Ok(out)
    }
}

/// The `tokenizers` crate's `LongestFirst` for a pair, as in its `truncate_encodings`: cut
/// both texts so that together they keep `budget` tokens.
fn truncate_fast(a: &mut Vec<u32>, b: &mut Vec<u32>, budget: usize) {
    let (mut n1, mut n2) = (a.len(), b.len());
    let swap = n1 > n2;
    if swap {
        std::mem::swap(&mut n1, &mut n2);
    }
    n2 = if n1 > budget { n1 } else { n1.max(budget - n1) };
    if n1 + n2 > budget {
        n1 = budget / 2;
        n2 = n1 + budget % 2;
    }
    if swap {
        std::mem::swap(&mut n1, &mut n2);
    }
    a.truncate(n1);
    b.truncate(n2);
}

/// Longest sequence [`Padding::Fixed`] (and so `tokenize --pad-to`) may ask for: far above any
/// model's `max_position_embeddings`, and small enough that the padding always fits in memory.
pub const MAX_PAD_LENGTH: usize = 1 << 20;

/// Refuses a padding length above [`MAX_PAD_LENGTH`], naming it, before anything is allocated.
pub fn check_pad_length(len: usize) -> Result<()> {
    if len > MAX_PAD_LENGTH {
        return invalid(
            "tokenizer.pad",
            format!("padding length {len} is above the limit {MAX_PAD_LENGTH}"),
        );
    }
    Ok(())
}

/// The Python tokenizer's `longest_first` truncation: remove `n` tokens one at a time from the
/// end of the longer text; on a tie, from the second.
fn truncate_longest_first(a: &mut Vec<u32>, b: Option<&mut Vec<u32>>, n: usize) {
    // One token at a time from the longer (from `b` on a tie), as HF's `longest_first`:
    // computed in O(1) from the lengths, then each vector truncated once.
    let Some(b) = b else {
        a.truncate(a.len().saturating_sub(n));
        return;
    };
    let (la, lb) = (a.len(), b.len());
    let n = n.min(la + lb);
    // first bring the longer down to the shorter's length (b first on a tie)
    let gap = la.abs_diff(lb);
    let first = n.min(gap);
    let (mut ra, mut rb) = if lb >= la { (0, first) } else { (first, 0) };
    // then alternate, b first (lengths equal, b wins the tie)
    let left = n - first;
    rb += left.div_ceil(2);
    ra += left / 2;
    a.truncate(la - ra);
    b.truncate(lb - rb);
}
