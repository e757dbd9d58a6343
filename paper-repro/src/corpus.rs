//! The pre-training corpus and vocabulary of a scale, built once and cached.
//!
//! The paper pre-trains on Wikipedia and BooksCorpus. Here: `wikipedia/` (WikiExtractor output,
//! turned into one sentence per line) and `pretrain-en/` (books, addresses, plays; already in
//! that format, with its own held-out split). Documents of both are mixed in a seeded order so
//! that a prefix of the corpus samples every source; held-out text is whole documents that
//! never appear in training. The WordPiece vocabulary is learned from the training text only.

use crate::scale::{CorpusSource, Scale};
use anyhow::{bail, Context, Result};
use cloze::pretrain::corpus::{read_corpus_file, Document};
use cloze::tokenizer::{Trainer, TrainerConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The files a scale's runs read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Corpus {
    pub train: PathBuf,
    pub heldout: PathBuf,
    pub vocab: PathBuf,
    pub stats: CorpusStats,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CorpusStats {
    pub train_documents: usize,
    pub train_words: usize,
    pub heldout_documents: usize,
    pub heldout_words: usize,
    /// Training words per source.
    pub sources: Vec<(String, usize)>,
    pub vocab_size: usize,
}

/// Seed of the document order; fixed so every row and seed sees the same corpus.
const ORDER_SEED: u64 = 0xC0_4B05;
/// One Wikipedia article in this many is held out.
const WIKI_HELDOUT_EVERY: usize = 50;

fn words(doc: &Document) -> usize {
    doc.iter().map(|s| s.split_whitespace().count()).sum()
}

/// Builds (or reuses) the corpus of `scale` under `dir`.
pub fn prepare(scale: &Scale, data: &Path, dir: &Path) -> Result<Corpus> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let manifest = dir.join("corpus.json");
    let key = serde_json::json!({
        "corpus": scale.corpus, "corpus_words": scale.corpus_words,
        "heldout_words": scale.heldout_words, "vocab_size": scale.vocab_size,
        "data": data.canonicalize().unwrap_or(data.to_path_buf()),
    });
    if let Ok(text) = std::fs::read_to_string(&manifest) {
        let saved: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("reading {}", manifest.display()))?;
        if saved["key"] == key {
            return serde_json::from_value(saved["corpus"].clone())
                .with_context(|| format!("reading {}", manifest.display()));
        }
        bail!(
            "{} was built with other settings ({}); now {}. Delete {} to rebuild it.",
            manifest.display(),
            saved["key"],
            key,
            dir.display()
        );
    }

    let (mut train, mut heldout, names) = match scale.corpus {
        CorpusSource::Tiny => {
            let path = data.join("fixtures/tiny-corpus.txt");
            let docs = read_corpus_file(&path)?;
            if docs.len() < 4 {
                bail!(
                    "{} has {} documents; the toy scale needs 4",
                    path.display(),
                    docs.len()
                );
            }
            // every second document is held out (next-sentence pairs need two on each side)
            let held: Vec<Document> = docs.iter().skip(1).step_by(2).cloned().collect();
            let train: Vec<(usize, Document)> =
                docs.iter().step_by(2).map(|d| (0, d.clone())).collect();
            (train, held, vec!["tiny-corpus".to_string()])
        }
        CorpusSource::WikiBooks => {
            let books_train = read_corpus_file(data.join("pretrain-en/train.txt"))?;
            let books_valid = read_corpus_file(data.join("pretrain-en/valid.txt"))?;
            let wiki = read_wikipedia(&data.join("wikipedia/text"))?;
            let mut train: Vec<(usize, Document)> =
                books_train.into_iter().map(|d| (0, d)).collect();
            let mut heldout = books_valid;
            for (i, d) in wiki.into_iter().enumerate() {
                if i % WIKI_HELDOUT_EVERY == WIKI_HELDOUT_EVERY - 1 {
                    heldout.push(d);
                } else {
                    train.push((1, d));
                }
            }
            (
                train,
                heldout,
                vec![
                    "pretrain-en (books, addresses, plays)".into(),
                    "wikipedia".into(),
                ],
            )
        }
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ORDER_SEED);
    train.shuffle(&mut rng);
    heldout.shuffle(&mut rng);
    if let Some(cap) = scale.corpus_words {
        let mut total = 0;
        let keep = train
            .iter()
            .take_while(|(_, d)| {
                let ok = total < cap;
                total += words(d);
                ok
            })
            .count();
        train.truncate(keep.max(2));
    }
    if let Some(cap) = scale.heldout_words {
        let mut total = 0;
        let keep = heldout
            .iter()
            .take_while(|d| {
                let ok = total < cap;
                total += words(d);
                ok
            })
            .count();
        heldout.truncate(keep.max(1));
    }
    let mut stats = CorpusStats {
        train_documents: train.len(),
        train_words: train.iter().map(|(_, d)| words(d)).sum(),
        heldout_documents: heldout.len(),
        heldout_words: heldout.iter().map(words).sum(),
        sources: names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let w = train
                    .iter()
                    .filter(|(s, _)| *s == i)
                    .map(|(_, d)| words(d))
                    .sum();
                (n.clone(), w)
            })
            .collect(),
        vocab_size: 0,
    };
    let train_path = dir.join("train.txt");
    let heldout_path = dir.join("heldout.txt");
    write_corpus(&train_path, train.iter().map(|(_, d)| d))?;
    write_corpus(&heldout_path, heldout.iter())?;

    let vocab_path = dir.join("vocab.txt");
    let mut trainer = Trainer::new(TrainerConfig {
        vocab_size: scale.vocab_size,
        min_frequency: 2,
        progress: false,
        ..TrainerConfig::default()
    });
    trainer.feed_file(&train_path)?;
    let vocab = trainer.train()?;
    stats.vocab_size = vocab.len();
    vocab.save(&vocab_path)?;

    let corpus = Corpus {
        train: train_path,
        heldout: heldout_path,
        vocab: vocab_path,
        stats,
    };
    let text = serde_json::to_string_pretty(&serde_json::json!({ "key": key, "corpus": corpus }))?;
    cloze::train::checkpoint::write_atomic(&manifest, text.as_bytes())?;
    Ok(corpus)
}

/// The unigram baseline of the held-out text: the cross-entropy of its wordpieces under the
/// training split's wordpiece frequencies, add-one smoothed over the vocabulary (special tokens
/// excluded from counts and vocabulary). A masked LM that has learned nothing beyond word
/// frequencies sits at this loss.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unigram {
    /// Nats per held-out wordpiece.
    pub entropy: f64,
    /// exp(entropy).
    pub perplexity: f64,
    pub train_wordpieces: u64,
    pub heldout_wordpieces: u64,
}

/// The unigram cross-entropy of `heldout` lines under counts from `train` lines.
pub fn unigram_entropy<'a>(
    tok: &cloze::tokenizer::Tokenizer,
    train: impl Iterator<Item = &'a str>,
    heldout: impl Iterator<Item = &'a str>,
) -> Unigram {
    let v = tok.vocab();
    let mut counts = vec![0u64; v.len()];
    let mut n = 0u64;
    for line in train {
        for id in tok.tokenize_ids(line) {
            if !v.is_special(id) {
                counts[id as usize] += 1;
                n += 1;
            }
        }
    }
    let size = (0..v.len() as u32).filter(|&i| !v.is_special(i)).count() as f64;
    let denom = n as f64 + size;
    let (mut nll, mut m) = (0.0, 0u64);
    for line in heldout {
        for id in tok.tokenize_ids(line) {
            if !v.is_special(id) {
                nll -= ((counts[id as usize] as f64 + 1.0) / denom).ln();
                m += 1;
            }
        }
    }
    let entropy = nll / m.max(1) as f64;
    Unigram {
        entropy,
        perplexity: entropy.exp(),
        train_wordpieces: n,
        heldout_wordpieces: m,
    }
}

/// The corpus's unigram baseline, computed once and kept in `unigram.json` beside the corpus
/// manifest (the corpus files are never rebuilt in place, so the cache cannot go stale).
pub fn unigram(corpus: &Corpus) -> Result<Unigram> {
    let dir = corpus.train.parent().unwrap_or(Path::new("."));
    let path = dir.join("unigram.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(u) = serde_json::from_str(&text) {
            return Ok(u);
        }
    }
    let tok = cloze::tokenizer::Tokenizer::from_vocab_file(&corpus.vocab)?;
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let (train, heldout) = (read(&corpus.train)?, read(&corpus.heldout)?);
    let u = unigram_entropy(&tok, train.lines(), heldout.lines());
    cloze::train::checkpoint::write_atomic(&path, serde_json::to_string_pretty(&u)?.as_bytes())?;
    Ok(u)
}

fn write_corpus<'a>(path: &Path, docs: impl Iterator<Item = &'a Document>) -> Result<()> {
    let mut out = String::new();
    for (i, d) in docs.enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for s in d {
            out.push_str(s);
            out.push('\n');
        }
    }
    cloze::train::checkpoint::write_atomic(path, out.as_bytes())?;
    Ok(())
}

/// Reads every WikiExtractor file under `dir` (recursively, in name order) into documents.
pub fn read_wikipedia(dir: &Path) -> Result<Vec<Document>> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    if files.is_empty() {
        bail!("no WikiExtractor files under {}", dir.display());
    }
    let mut docs = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: invalid UTF-8 at byte {}",
                f.display(),
                e.utf8_error().valid_up_to()
            )
        })?;
        docs.extend(parse_wikiextractor(&text));
    }
    Ok(docs)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            collect_files(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// WikiExtractor text to documents: one per `<doc>`, title line dropped, stray tags stripped,
/// section headings (short lines ending in a full stop) dropped, paragraphs split into
/// sentences. Documents with fewer than 2 sentences are skipped (stubs give no sentence pair).
pub fn parse_wikiextractor(text: &str) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut cur: Option<(bool, Document)> = None; // (title seen, sentences)
    for line in text.lines() {
        if line.starts_with("<doc ") {
            cur = Some((false, Vec::new()));
            continue;
        }
        if line.starts_with("</doc>") {
            if let Some((_, d)) = cur.take() {
                if d.len() >= 2 {
                    docs.push(d);
                }
            }
            continue;
        }
        let Some((title_seen, doc)) = cur.as_mut() else {
            continue;
        };
        let clean = strip_tags(line);
        let clean = clean.trim();
        if clean.is_empty() {
            continue;
        }
        if !*title_seen {
            *title_seen = true;
            continue;
        }
        let n_words = clean.split_whitespace().count();
        if n_words <= 6
            && clean.ends_with('.')
            && !clean[..clean.len() - 1].contains(['.', '!', '?'])
        {
            continue; // a section heading
        }
        doc.extend(split_sentences(clean));
    }
    docs
}

fn strip_tags(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_tag = false;
    for c in line.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "gen", "col", "lt", "capt", "sgt", "rev",
    "vs", "etc", "e.g", "i.e", "no", "vol", "pp", "p", "fig", "ca", "c", "approx", "u.s", "inc",
    "ltd", "co", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
    "dec", "mt", "ft", "ed", "eds",
];

/// Rule-based sentence splitting: a boundary is `.`, `!` or `?` (with optional closing quotes or
/// brackets) followed by a space and an upper-case letter, digit or opening quote; never after a
/// known abbreviation or a single-letter initial.
pub fn split_sentences(par: &str) -> Vec<String> {
    let chars: Vec<(usize, char)> = par.char_indices().collect();
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut i = 0usize;
    while i < chars.len() {
        let (_, c) = chars[i];
        if matches!(c, '.' | '!' | '?') {
            let mut j = i + 1;
            while j < chars.len() && matches!(chars[j].1, '"' | '\'' | ')' | '”' | '’') {
                j += 1;
            }
            if j + 1 < chars.len() && chars[j].1 == ' ' {
                let next = chars[j + 1].1;
                let opens =
                    next.is_uppercase() || next.is_ascii_digit() || matches!(next, '"' | '“' | '(');
                if opens && !(c == '.' && ends_with_abbreviation(&par[chars[start].0..chars[i].0]))
                {
                    let end = chars[j].0;
                    let s = par[chars[start].0..end].trim();
                    if !s.is_empty() {
                        out.push(s.to_string());
                    }
                    start = j + 1;
                    i = j + 1;
                    continue;
                }
            }
        }
        i += 1;
    }
    if start < chars.len() {
        let s = par[chars[start].0..].trim();
        if !s.is_empty() {
            out.push(s.to_string());
        }
    }
    out
}

fn ends_with_abbreviation(before: &str) -> bool {
    let last = before
        .rsplit(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("");
    let lower = last.to_lowercase();
    if lower.chars().count() == 1 && lower.chars().all(char::is_alphabetic) {
        return true; // an initial: "J. R. R. Tolkien"
    }
    ABBREVIATIONS.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_boundaries_but_not_after_abbreviations_or_initials() {
        let s = split_sentences(
            "Dr. Smith met J. R. Tolkien in 1937. They talked (for hours). \"Was it fun?\" \
             Yes! It cost 3.5 dollars, e.g. a lot. The U.S. Navy agreed.",
        );
        assert_eq!(
            s,
            vec![
                "Dr. Smith met J. R. Tolkien in 1937.",
                "They talked (for hours).",
                "\"Was it fun?\"",
                "Yes!",
                "It cost 3.5 dollars, e.g. a lot.",
                "The U.S. Navy agreed.",
            ]
        );
    }

    #[test]
    fn wikiextractor_documents_lose_title_headings_and_tags() {
        let text = "<doc id=\"1\" url=\"u\" title=\"A\">\nA\n\nA is a letter. It is <br>first.\nHistory.\nIt is old. Very old.\n</doc>\n\
                    <doc id=\"2\" url=\"u\" title=\"B\">\nB\n\nStub.\n</doc>\n";
        let docs = parse_wikiextractor(text);
        assert_eq!(docs.len(), 1, "{docs:?}");
        assert_eq!(
            docs[0],
            vec!["A is a letter.", "It is first.", "It is old.", "Very old."]
        );
    }

    #[test]
    fn unigram_entropy_of_a_tiny_corpus_by_hand() {
        let vocab = cloze::tokenizer::Vocab::from_tokens([
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c",
        ])
        .unwrap();
        let tok = cloze::tokenizer::Tokenizer::new(vocab);
        // train: a a b (N = 3), vocabulary without specials: 3 → p(w) = (c(w)+1)/6
        // held-out: a c [SEP] → specials dropped; −(ln 3/6 + ln 1/6)/2
        let u = unigram_entropy(
            &tok,
            ["a a", "b [CLS]"].into_iter(),
            ["a c [SEP]"].into_iter(),
        );
        let want = -((3.0f64 / 6.0).ln() + (1.0f64 / 6.0).ln()) / 2.0;
        assert_eq!((u.train_wordpieces, u.heldout_wordpieces), (3, 2));
        assert!((u.entropy - want).abs() < 1e-12, "{u:?} vs {want}");
        assert!((want - 1.242_453_3).abs() < 1e-6);
        assert!((u.perplexity - want.exp()).abs() < 1e-9);
    }
}
