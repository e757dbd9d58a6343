//! A WordPiece vocabulary trainer in the manner of HF `tokenizers`' `WordPieceTrainer`.
//!
//! That trainer is a BPE trainer run with the continuing-subword prefix `##`: words (from the
//! basic tokenizer) are split into chars, the first as is and the others as `##c`; then the most
//! frequent adjacent pair of symbols is merged, again and again, each merge adding one token
//! (`a` + `##b` → `ab`, `##a` + `##b` → `##ab`), until the vocabulary has the requested size or
//! no pair occurs `min_frequency` times. WordPiece encoding then uses greedy longest match.
//!
//! Deterministic: ids are given in a fixed order (specials, then the alphabet's chars by code
//! point, then their `##` forms by code point, then merges in merge order) and a tie between
//! pairs of equal frequency goes to the smaller `(left id, right id)`, as in HF.
//!
//! Checked by hand against `tokenizers` 0.23 (`WordPieceTrainer` with `BertNormalizer` +
//! `BertPreTokenizer`) on `shared/data/fixtures/tiny-corpus.txt`: at vocab sizes 200 and 1000
//! both learn the same token set, with the same specials, alphabet and merge order; only the
//! order of the `##c` entries differs (HF lists them in hash-map order, which changes from run
//! to run). At 3000, where many pairs tie at counts 1–2, about 40 tokens differ because the
//! id-based tie-break sees different ids.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::basic::BasicTokenizer;
use super::vocab::{Vocab, SPECIAL_TOKENS};
use super::wordpiece::CONTINUATION_PREFIX;
use crate::error::{invalid, Error, Result};

/// Trainer settings.
#[derive(Clone, Debug)]
pub struct TrainerConfig {
    /// Target vocabulary size, special tokens included.
    pub vocab_size: usize,
    /// A pair is merged only if it occurs at least this often (weighted by word counts).
    pub min_frequency: u64,
    /// Keep only the this many most frequent chars (ties: smaller code point); others are
    /// left out of the vocabulary, so words holding them encode as `[UNK]`.
    pub limit_alphabet: Option<usize>,
    /// Tokens placed first, in this order.
    pub special_tokens: Vec<String>,
    /// The basic tokenizer that splits the corpus into words.
    pub basic: BasicTokenizer,
    /// Show progress bars on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        TrainerConfig {
            vocab_size: 30_000,
            min_frequency: 0,
            limit_alphabet: None,
            special_tokens: SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect(),
            basic: BasicTokenizer::uncased(),
            progress: false,
        }
    }
}

/// Counts words, then learns a WordPiece vocabulary.
///
/// ```
/// use cloze::tokenizer::{Tokenizer, Trainer, TrainerConfig};
/// let mut t = Trainer::new(TrainerConfig { vocab_size: 40, ..TrainerConfig::default() });
/// t.feed("low lower lowest. Newer newest wider!");
/// let vocab = t.train().unwrap();
/// assert!(vocab.len() <= 40);
/// assert_eq!(&vocab.tokens()[..5], ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]);
/// let tok = Tokenizer::new(vocab);
/// assert!(!tok.encode("lowest newer").tokens.contains(&"[UNK]".to_string()));
/// ```
#[derive(Clone, Debug)]
pub struct Trainer {
    config: TrainerConfig,
    counts: HashMap<String, u64>,
}

/// What a training run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainStats {
    /// Distinct words in the corpus.
    pub distinct_words: usize,
    /// Size of the vocabulary before any merge (specials, chars, `##` chars).
    pub initial_size: usize,
    /// Merges performed.
    pub merges: usize,
    /// True if training stopped before `vocab_size` because no pair was frequent enough.
    pub ran_out_of_merges: bool,
}

impl Trainer {
    /// A trainer with no words counted yet.
    pub fn new(config: TrainerConfig) -> Self {
        Trainer {
            config,
            counts: HashMap::new(),
        }
    }

    /// Basic-tokenizes `text` and counts its words.
    pub fn feed(&mut self, text: &str) {
        for w in self.config.basic.tokenize(text) {
            *self.counts.entry(w).or_insert(0) += 1;
        }
    }

    /// Feeds a text file, line by line (lines are tokenized in parallel; the counts do not
    /// depend on the thread count).
    pub fn feed_file(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.feed_files(&[path])
    }

    /// Feeds several text files, with a progress bar over their bytes if `progress` is set.
    pub fn feed_files<P: AsRef<Path>>(&mut self, paths: &[P]) -> Result<()> {
        let io_err = |path: &Path, source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let mut total = 0;
        for p in paths {
            let p = p.as_ref();
            total += std::fs::metadata(p).map_err(|e| io_err(p, e))?.len();
        }
        let bar = self.bar(total, "counting words");
        for p in paths {
            let p = p.as_ref();
            let text = std::fs::read_to_string(p).map_err(|e| io_err(p, e))?;
            for chunk in line_chunks(&text, FEED_CHUNK_BYTES) {
                let basic = &self.config.basic;
                let counts = chunk
                    .par_iter()
                    .map(|lines| {
                        let mut counts: HashMap<String, u64> = HashMap::new();
                        let mut words = Vec::new();
                        for line in lines.lines() {
                            words.clear();
                            basic.tokenize_into(line, &mut words);
                            for w in words.drain(..) {
                                *counts.entry(w).or_insert(0) += 1;
                            }
                        }
                        counts
                    })
                    .collect::<Vec<_>>();
                for c in counts {
                    for (w, n) in c {
                        *self.counts.entry(w).or_insert(0) += n;
                    }
                }
                bar.inc(chunk.iter().map(|s| s.len() as u64).sum());
            }
        }
        bar.finish_and_clear();
        Ok(())
    }

    fn bar(&self, len: u64, msg: &'static str) -> ProgressBar {
        if !self.config.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len).with_message(msg);
        if let Ok(style) =
            ProgressStyle::with_template("{msg:16} [{bar:40}] {pos}/{len} ({eta} left)")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    }

    /// The word counts so far.
    pub fn word_counts(&self) -> &HashMap<String, u64> {
        &self.counts
    }

    /// Learns the vocabulary. See [`Trainer::train_with_stats`].
    pub fn train(&self) -> Result<Vocab> {
        self.train_with_stats().map(|(v, _)| v)
    }

    /// Learns the vocabulary and reports what happened.
    ///
    /// The result has exactly `vocab_size` tokens unless the corpus runs out of pairs occurring
    /// `min_frequency` times (then fewer; `ran_out_of_merges` is set). Errors: no words fed; the
    /// specials plus the alphabet already exceed `vocab_size` (the error names both numbers;
    /// use `limit_alphabet` or a larger size); a special token list lacking a required token.
    pub fn train_with_stats(&self) -> Result<(Vocab, TrainStats)> {
        const OP: &str = "tokenizer.train";
        let cfg = &self.config;
        if self.counts.is_empty() {
            return invalid(OP, "no words to train on (empty corpus)");
        }
        // Words sorted for a deterministic order.
        let mut words: Vec<(&str, u64)> =
            self.counts.iter().map(|(w, &c)| (w.as_str(), c)).collect();
        words.sort_unstable();

        // Alphabet: char frequencies, optionally limited to the most frequent.
        let mut char_freq: HashMap<char, u64> = HashMap::new();
        for &(w, c) in &words {
            for ch in w.chars() {
                *char_freq.entry(ch).or_insert(0) += c;
            }
        }
        let mut alphabet: Vec<(char, u64)> = char_freq.into_iter().collect();
        if let Some(limit) = cfg.limit_alphabet {
            alphabet.sort_unstable_by_key(|&(ch, f)| (Reverse(f), ch));
            alphabet.truncate(limit);
        }
        let mut alphabet: Vec<char> = alphabet.into_iter().map(|(ch, _)| ch).collect();
        alphabet.sort_unstable();
        let kept: HashSet<char> = alphabet.iter().copied().collect();

        let mut vocab = VocabBuilder::default();
        for s in &cfg.special_tokens {
            vocab.add(s);
        }
        for ch in &alphabet {
            vocab.add(&ch.to_string());
        }
        // `##c` for each kept char that occurs inside a word.
        let mut inner: Vec<char> = words
            .iter()
            .flat_map(|(w, _)| w.chars().skip(1))
            .filter(|ch| kept.contains(ch))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        inner.sort_unstable();
        for ch in inner {
            vocab.add(&format!("{CONTINUATION_PREFIX}{ch}"));
        }
        let initial_size = vocab.tokens.len();
        if initial_size > cfg.vocab_size {
            return invalid(
                OP,
                format!(
                    "vocab_size {} is smaller than the {} special tokens and alphabet symbols; raise it or set limit_alphabet",
                    cfg.vocab_size, initial_size
                ),
            );
        }

        // Words as symbol ids. A char outside the kept alphabet splits the word into parts that
        // are trained separately (HF instead drops the char and joins its neighbours).
        let mut seqs: Vec<Vec<u32>> = Vec::with_capacity(words.len());
        let mut freqs: Vec<u64> = Vec::with_capacity(words.len());
        for &(w, c) in &words {
            let mut seq = Vec::new();
            for (i, ch) in w.chars().enumerate() {
                if !kept.contains(&ch) {
                    if seq.len() > 1 {
                        seqs.push(std::mem::take(&mut seq));
                        freqs.push(c);
                    }
                    seq.clear();
                    continue;
                }
                let sym = if i == 0 {
                    ch.to_string()
                } else {
                    format!("{CONTINUATION_PREFIX}{ch}")
                };
                seq.push(vocab.ids[&sym]);
            }
            if seq.len() > 1 {
                seqs.push(seq);
                freqs.push(c);
            }
        }

        // Pair counts and where each pair occurs.
        let mut pair_count: HashMap<(u32, u32), u64> = HashMap::new();
        let mut where_: HashMap<(u32, u32), HashSet<usize>> = HashMap::new();
        for (wi, seq) in seqs.iter().enumerate() {
            for p in seq.windows(2) {
                let key = (p[0], p[1]);
                *pair_count.entry(key).or_insert(0) += freqs[wi];
                where_.entry(key).or_default().insert(wi);
            }
        }
        // Max-heap on count, then the smaller pair.
        let mut heap: BinaryHeap<(u64, Reverse<(u32, u32)>)> =
            pair_count.iter().map(|(&p, &c)| (c, Reverse(p))).collect();

        let bar = self.bar((cfg.vocab_size - initial_size) as u64, "merging pairs");
        let min_freq = cfg.min_frequency.max(1);
        let mut merges = 0;
        let mut ran_out = false;
        while vocab.tokens.len() < cfg.vocab_size {
            let Some((count, Reverse(pair))) = heap.pop() else {
                ran_out = true;
                break;
            };
            let current = pair_count.get(&pair).copied().unwrap_or(0);
            if current != count {
                // A stale entry: the pair's count changed since it was pushed.
                if current > 0 {
                    heap.push((current, Reverse(pair)));
                }
                continue;
            }
            if count < min_freq {
                ran_out = true;
                break;
            }
            let left = vocab.tokens[pair.0 as usize].clone();
            let right = &vocab.tokens[pair.1 as usize];
            let right = right.strip_prefix(CONTINUATION_PREFIX).unwrap_or(right);
            let new_id = vocab.add(&format!("{left}{right}"));
            merges += 1;
            bar.set_position((vocab.tokens.len() - initial_size) as u64);

            let mut affected: Vec<usize> = where_
                .remove(&pair)
                .unwrap_or_default()
                .into_iter()
                .collect();
            affected.sort_unstable();
            let mut touched: HashSet<(u32, u32)> = HashSet::new();
            for wi in affected {
                let f = freqs[wi];
                let seq = &mut seqs[wi];
                if !seq.windows(2).any(|p| (p[0], p[1]) == pair) {
                    continue;
                }
                for p in seq.windows(2) {
                    let key = (p[0], p[1]);
                    let c = pair_count.get_mut(&key).expect("counted pair");
                    *c -= f;
                    touched.insert(key);
                }
                let mut merged = Vec::with_capacity(seq.len());
                let mut i = 0;
                while i < seq.len() {
                    if i + 1 < seq.len() && (seq[i], seq[i + 1]) == pair {
                        merged.push(new_id);
                        i += 2;
                    } else {
                        merged.push(seq[i]);
                        i += 1;
                    }
                }
                *seq = merged;
                for p in seq.windows(2) {
                    let key = (p[0], p[1]);
                    *pair_count.entry(key).or_insert(0) += f;
                    where_.entry(key).or_default().insert(wi);
                    touched.insert(key);
                }
            }
            pair_count.remove(&pair);
            let mut touched: Vec<(u32, u32)> = touched.into_iter().collect();
            touched.sort_unstable();
            for key in touched {
                match pair_count.get(&key).copied() {
                    Some(0) => {
                        pair_count.remove(&key);
                        where_.remove(&key);
                    }
                    Some(c) => heap.push((c, Reverse(key))),
                    None => {}
                }
            }
        }
        bar.finish_and_clear();
        let stats = TrainStats {
            distinct_words: words.len(),
            initial_size,
            merges,
            ran_out_of_merges: ran_out,
        };
        Ok((Vocab::from_tokens(vocab.tokens)?, stats))
    }
}

/// Bytes of text per parallel work item when counting words.
const FEED_CHUNK_BYTES: usize = 1 << 20;

/// Splits `text` at line ends into pieces of about `piece` bytes, grouped so that each group
/// holds a few pieces per thread.
fn line_chunks(text: &str, piece: usize) -> Vec<Vec<&str>> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = piece.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let end = match rest[end..].find('\n') {
            Some(i) => end + i + 1,
            None => rest.len(),
        };
        pieces.push(&rest[..end]);
        rest = &rest[end..];
    }
    let group = 4 * rayon::current_num_threads().max(1);
    pieces.chunks(group).map(<[&str]>::to_vec).collect()
}

#[derive(Default)]
struct VocabBuilder {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

impl VocabBuilder {
    /// Adds `t` if new; returns its id either way.
    fn add(&mut self, t: &str) -> u32 {
        if let Some(&id) = self.ids.get(t) {
            return id;
        }
        let id = self.tokens.len() as u32;
        self.tokens.push(t.to_owned());
        self.ids.insert(t.to_owned(), id);
        id
    }
}
