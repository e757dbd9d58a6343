//! The WordPiece vocabulary trainer: hand-worked merges, limits, and a real corpus.

mod common;

use common::assert_mentions;
use std::path::PathBuf;

use cloze::tokenizer::{Tokenizer, Trainer, TrainerConfig, SPECIAL_TOKENS};

fn trainer(size: usize) -> Trainer {
    Trainer::new(TrainerConfig {
        vocab_size: size,
        ..TrainerConfig::default()
    })
}

fn tiny_corpus() -> PathBuf {
    common::shared_path("data/fixtures/tiny-corpus.txt")
}

#[test]
fn hand_worked_merges_in_frequency_then_id_order() {
    // Words: ab x3, ac x1, b x1. Alphabet a b c (ids 5 6 7), then ##b ##c (8 9).
    // Pairs: (a,##b)=3, (a,##c)=1 → "ab" (10), then "ac" (11), then nothing left.
    let mut t = trainer(100);
    t.feed("ab ab AB ac b");
    let (v, stats) = t.train_with_stats().unwrap();
    let mut want: Vec<&str> = SPECIAL_TOKENS.to_vec();
    want.extend(["a", "b", "c", "##b", "##c", "ab", "ac"]);
    assert_eq!(v.tokens(), want);
    assert_eq!(stats.initial_size, 10);
    assert_eq!(stats.merges, 2);
    assert!(stats.ran_out_of_merges);
    assert_eq!(stats.distinct_words, 3);

    // Size limit: only the most frequent merge fits.
    let mut t = trainer(11);
    t.feed("ab ab AB ac b");
    assert_eq!(t.train().unwrap().tokens().last().unwrap(), "ab");
}

#[test]
fn ties_go_to_the_smaller_pair_and_merges_chain() {
    // "abc" x2, "bd" x2: pairs (a,##b)=2 (##b,##c)=2 (b,##d)=2. Ids: a5 b6 c7 d8 ##b9 ##c10 ##d11.
    // Tie at 2: smallest pair (5,9) → "ab"(12); then (12,10) "abc" vs (6,11) "bd": (6,11) smaller.
    let mut t = trainer(14);
    t.feed("abc bd abc bd");
    let v = t.train().unwrap();
    assert_eq!(&v.tokens()[12..], ["ab", "bd"]);
    let mut t = trainer(15);
    t.feed("abc bd abc bd");
    assert_eq!(t.train().unwrap().tokens().last().unwrap(), "abc");
}

#[test]
fn min_frequency_stops_rare_merges() {
    let mut t = Trainer::new(TrainerConfig {
        vocab_size: 100,
        min_frequency: 2,
        ..TrainerConfig::default()
    });
    t.feed("ab ab ac");
    let (v, stats) = t.train_with_stats().unwrap();
    assert_eq!(v.tokens().last().unwrap(), "ab");
    assert!(stats.ran_out_of_merges);
}

#[test]
fn too_small_vocab_and_empty_corpus_are_errors() {
    let mut t = trainer(8);
    t.feed("abc abd");
    let err = t.train().unwrap_err().to_string();
    // 5 specials + a b c d + ##b ##c ##d = 12 > 8.
    assert_mentions(&err, &["vocab_size 8", "12"]);
    let err = trainer(100).train().unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn limit_alphabet_keeps_the_most_frequent_chars() {
    let mut t = Trainer::new(TrainerConfig {
        vocab_size: 100,
        limit_alphabet: Some(2),
        ..TrainerConfig::default()
    });
    t.feed("aab aab aab z");
    let v = t.train().unwrap();
    assert!(v.id("z").is_none());
    assert!(v.id("a").is_some() && v.id("##b").is_some());
    let tok = Tokenizer::new(v);
    assert_eq!(tok.tokenize("aab z"), ["aab", "[UNK]"]);
}

#[test]
fn tiny_corpus_vocab_has_size_specials_and_few_unks() {
    let path = tiny_corpus();
    let mut t = trainer(1000);
    t.feed_file(&path).unwrap();
    let (v, stats) = t.train_with_stats().unwrap();
    assert!(!stats.ran_out_of_merges, "{stats:?}");
    assert_eq!(v.len(), 1000);
    assert_eq!(&v.tokens()[..5], SPECIAL_TOKENS);
    // Deterministic: a second run gives the same list.
    assert_eq!(t.train().unwrap().tokens(), v.tokens());

    let tok = Tokenizer::new(v);
    let text = std::fs::read_to_string(&path).unwrap();
    let (mut pieces, mut unks) = (0usize, 0usize);
    for line in text.lines() {
        let ids = tok.tokenize_ids(line);
        pieces += ids.len();
        unks += ids.iter().filter(|&&i| i == tok.vocab().unk_id()).count();
    }
    println!(
        "tiny corpus, vocab 1000: {pieces} pieces, {unks} [UNK], {} initial symbols",
        stats.initial_size
    );
    // Every char of the corpus is in the alphabet, so only words over 100 chars could be [UNK].
    assert_eq!(unks, 0);
    assert!(
        pieces > 7000,
        "the corpus has ~7300 whitespace words: {pieces}"
    );
}

#[test]
fn unlimited_size_learns_every_word_whole() {
    let path = tiny_corpus();
    let mut t = trainer(1_000_000);
    t.feed_file(&path).unwrap();
    let (v, stats) = t.train_with_stats().unwrap();
    assert!(stats.ran_out_of_merges);
    assert!(v.len() < 1_000_000);
    let tok = Tokenizer::new(v);
    for w in t.word_counts().keys() {
        assert_eq!(tok.tokenize(w).len(), 1, "word {w:?} should be one token");
    }
}
