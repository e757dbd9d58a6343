//! Basic tokenizer rules, WordPiece, special literals, truncation, padding, batches, decoding.
//! Expected values are worked out by hand from the reference algorithm (bert-facts.md §7).

mod common;

use cloze::tokenizer::{BasicTokenizer, EncodeOptions, Padding, Tokenizer, Vocab};
use common::assert_mentions;

/// [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 then the listed words from id 5.
fn tok(words: &[&str]) -> Tokenizer {
    let mut all = vec!["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    all.extend_from_slice(words);
    Tokenizer::new(Vocab::from_tokens(all).unwrap())
}

#[test]
fn basic_cleaning_whitespace_and_cjk() {
    let b = BasicTokenizer::uncased();
    // NUL, U+FFFD, BEL, zero-width space (Cf), soft hyphen (Cf) deleted; tab/NBSP/U+3000 split.
    assert_eq!(
        b.tokenize("a\u{0}b\u{FFFD}c\u{7}d e\u{200B}f\u{AD}g\th\u{A0}i\u{3000}j"),
        ["abcd", "efg", "h", "i", "j"]
    );
    // U+2028 / U+2029 are not Zs but Python's str.split() splits on them.
    assert_eq!(b.tokenize("x\u{2028}y\u{2029}z"), ["x", "y", "z"]);
    // CJK ideographs split; kana and hangul do not.
    assert_eq!(b.tokenize("ab中文cd"), ["ab", "中", "文", "cd"]);
    // (NFD also splits off the dakuten of が, an Mn char, and decomposes 한 into jamo:
    // Python gives U+3072 U+3089 U+304B U+306A U+1112 U+1161 U+11AB.)
    assert_eq!(
        b.tokenize("ひらがな한"),
        ["\u{3072}\u{3089}\u{304B}\u{306A}\u{1112}\u{1161}\u{11AB}"]
    );
    // Unassigned (Cn) code point deleted: it joins its neighbours.
    assert_eq!(b.tokenize("q\u{2E9A}r"), ["qr"]);
}

#[test]
fn basic_lowercase_accents_and_punctuation() {
    let b = BasicTokenizer::uncased();
    assert_eq!(
        b.tokenize("Zürich İSTANBUL ÅNGSTRÖM"),
        ["zurich", "istanbul", "angstrom"]
    );
    // No NFKC: ligature and superscript stay.
    assert_eq!(b.tokenize("ﬁne x²"), ["ﬁne", "x²"]);
    // ASCII symbol ranges and P* punctuation split, each char alone.
    assert_eq!(
        b.tokenize("a$b^c+d«e»"),
        ["a", "$", "b", "^", "c", "+", "d", "«", "e", "»"]
    );
    assert_eq!(b.tokenize("..."), [".", ".", "."]);
    // Cased keeps case and accents.
    assert_eq!(BasicTokenizer::cased().tokenize("Café!"), ["Café", "!"]);
}

#[test]
fn special_literals_are_kept_whole_even_inside_words() {
    let t = tok(&["x", "y", "[", "]", "mask"]);
    assert_eq!(
        t.encode("x[MASK]y").tokens,
        ["[CLS]", "x", "[MASK]", "y", "[SEP]"]
    );
    // Lowercase is not special: split as punctuation.
    assert_eq!(
        t.encode("[mask]").tokens,
        ["[CLS]", "[", "mask", "]", "[SEP]"]
    );
    assert_eq!(t.encode("[UNK][SEP]").input_ids, [2, 1, 3, 3]);
}

#[test]
fn wordpiece_greedy_longest_match_and_unk() {
    let t = tok(&["un", "unaff", "##aff", "##able", "a", "##a"]);
    // Longest first: "unaff" + "##able", not "un" + "##aff" + "##able".
    assert_eq!(t.tokenize("unaffable"), ["unaff", "##able"]);
    // A word that cannot be covered is one [UNK], even if a prefix matched.
    assert_eq!(t.tokenize("unaffz"), ["[UNK]"]);
    // 100 chars are split into pieces; 101 chars are one [UNK].
    let w100 = "a".repeat(100);
    assert_eq!(t.tokenize(&w100).len(), 100);
    assert_eq!(t.tokenize(&"a".repeat(101)), ["[UNK]"]);
    let mut long = t.clone();
    long.set_max_input_chars_per_word(200);
    assert_eq!(long.tokenize(&"a".repeat(101)).len(), 101);
}

#[test]
fn empty_text_gives_cls_sep() {
    let t = tok(&[]);
    let e = t.encode("");
    assert_eq!(e.input_ids, [2, 3]);
    assert_eq!(t.encode_pair("", "").input_ids, [2, 3, 3]);
}

#[test]
fn pair_truncation_is_longest_first_from_the_end() {
    let t = tok(&["a", "b", "c", "d", "e", "f", "g", "h"]);
    // a: 6 tokens (ids 5..=10), b: 2 tokens; max 9 leaves 6 content tokens: a loses 2 from its end.
    let e = t
        .encode_with("a b c d e f", Some("g h"), &EncodeOptions::truncate(9))
        .unwrap();
    assert_eq!(
        e.tokens,
        ["[CLS]", "a", "b", "c", "d", "[SEP]", "g", "h", "[SEP]"]
    );
    assert_eq!(e.token_type_ids, [0, 0, 0, 0, 0, 0, 1, 1, 1]);
    // Equal lengths 3 and 3, remove 3: b, a, b → a keeps 2, b keeps 1.
    let e = t
        .encode_with("a b c", Some("d e f"), &EncodeOptions::truncate(6))
        .unwrap();
    assert_eq!(e.tokens, ["[CLS]", "a", "b", "[SEP]", "d", "[SEP]"]);
    // Down to the specials only.
    let e = t
        .encode_with("a b c", Some("d"), &EncodeOptions::truncate(3))
        .unwrap();
    assert_eq!(e.tokens, ["[CLS]", "[SEP]", "[SEP]"]);
}

#[test]
fn max_length_too_small_is_an_error_naming_it() {
    let t = tok(&["a"]);
    let err = t
        .encode_with("a", None, &EncodeOptions::truncate(1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_length 1"), "{err}");
    let err = t
        .encode_with("a", Some("a"), &EncodeOptions::truncate(2))
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["max_length 2", "3"]);
    let no_max = EncodeOptions {
        truncation: true,
        ..EncodeOptions::default()
    };
    assert!(t.encode_with("a", None, &no_max).is_err());
}

#[test]
fn padding_and_batches() {
    let t = tok(&["a", "b", "c"]);
    let e = t
        .encode_with(
            "a",
            None,
            &EncodeOptions::default().with_padding(Padding::Fixed(5)),
        )
        .unwrap();
    assert_eq!(e.input_ids, [2, 5, 3, 0, 0]);
    assert_eq!(e.attention_mask, [1, 1, 1, 0, 0]);
    assert_eq!(e.token_type_ids, [0; 5]);
    assert_eq!(e.tokens[4], "[PAD]");
    let err = t
        .encode_with(
            "a b c",
            None,
            &EncodeOptions::default().with_padding(Padding::Fixed(4)),
        )
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["5", "4"]);

    let batch = t
        .encode_batch(
            &[("a", None), ("a b", Some("c")), ("", None)],
            &EncodeOptions::default().with_padding(Padding::Longest),
        )
        .unwrap();
    let ids: Vec<_> = batch.iter().map(|e| e.input_ids.clone()).collect();
    assert_eq!(
        ids,
        [
            vec![2, 5, 3, 0, 0, 0],
            vec![2, 5, 6, 3, 7, 3],
            vec![2, 3, 0, 0, 0, 0]
        ]
    );
    assert_eq!(batch[1].token_type_ids, [0, 0, 0, 0, 1, 1]);
    assert_eq!(batch[2].attention_mask, [1, 1, 0, 0, 0, 0]);
}

#[test]
fn decode_joins_pieces() {
    let t = tok(&["play", "##ing", "ball", "."]);
    let e = t.encode("Playing ball.");
    assert_eq!(
        t.decode(&e.input_ids, false).unwrap(),
        "[CLS] playing ball . [SEP]"
    );
    assert_eq!(t.decode(&e.input_ids, true).unwrap(), "playing ball .");
    let err = t.decode(&[2, 99], false).unwrap_err().to_string();
    assert!(err.contains("99"), "{err}");
}

/// Lengths of the two segments of a truncated pair of `la` and `lb` one-token words.
fn cut(la: usize, lb: usize, max: usize, rule: cloze::tokenizer::PairTruncation) -> (usize, usize) {
    let t = tok(&["x"]);
    let a = "x ".repeat(la);
    let b = "x ".repeat(lb);
    let e = t
        .encode_with(
            &a,
            Some(&b),
            &EncodeOptions::truncate(max).with_pair_truncation(rule),
        )
        .unwrap();
    let seg_b = e.token_type_ids.iter().filter(|&&s| s == 1).count() - 1;
    (e.len() - 3 - seg_b, seg_b)
}

#[test]
fn pair_truncation_python_and_fast_rules() {
    use cloze::tokenizer::PairTruncation::{Fast, Python};
    // budget 12 - 3 = 9 tokens for 10 + 12: both cut; the odd token goes to the first text
    // (Python: pop from the longer, from the second on a tie) or to the longer (tokenizers)
    assert_eq!(cut(10, 12, 12, Python), (5, 4));
    assert_eq!(cut(10, 12, 12, Fast), (4, 5));
    // when the first is the longer, both rules give it the odd token
    assert_eq!(cut(12, 10, 12, Python), (5, 4));
    assert_eq!(cut(12, 10, 12, Fast), (5, 4));
    // the shorter keeps everything when the longer can still keep as many
    assert_eq!(cut(3, 12, 12, Python), (3, 6));
    assert_eq!(cut(3, 12, 12, Fast), (3, 6));
    // even budget: equal halves under both
    assert_eq!(cut(10, 12, 13, Python), (5, 5));
    assert_eq!(cut(10, 12, 13, Fast), (5, 5));
    // the default is the Python rule
    assert_eq!(EncodeOptions::truncate(8).pair_truncation, Python);
}

/// Adversarial inputs for the special-literal scan and pair truncation (both were quadratic):
/// the results must be exactly right on inputs large enough that a quadratic path would not
/// finish within the test harness's patience.
#[test]
fn many_special_literals_and_huge_pairs_are_handled_exactly() {
    let t = tok(&["a", "b"]);
    let n = 200_000;
    // 200k [SEP] literals, with [MASK] and text between some of them
    let text = "[SEP]".repeat(n);
    let ids = t.tokenize_ids(&text);
    assert_eq!(ids.len(), n);
    assert!(ids.iter().all(|&i| i == 3));
    let mixed = "a[SEP]b[MASK][SEP[CLS]".repeat(n / 4);
    let ids = t.tokenize_ids(&mixed);
    // per repeat: a [SEP] b [MASK] [ sep(unk) [ ... "[SEP[CLS]": "[", "sep"→[UNK], then [CLS]
    let unit = t.tokenize_ids("a[SEP]b[MASK][SEP[CLS]");
    assert_eq!(unit, vec![5, 3, 6, 4, 1, 1, 2], "{unit:?}");
    assert_eq!(ids.len(), unit.len() * (n / 4));
    assert!(ids.chunks(unit.len()).all(|c| c == unit.as_slice()));
    // offsets are exact char indices even far into the text (multi-byte chars before them)
    let text = "é[SEP]".repeat(n / 2);
    let offs = t.tokenize_with_offsets(&text);
    assert_eq!(offs.len(), n);
    let last = offs[n - 1];
    assert_eq!(last, (3, 6 * (n / 2 - 1) + 1, 6 * (n / 2)));
    // a 200k-word pair truncated longest-first: the lengths HF's loop gives, and the kept
    // tokens are the first ones of each side
    let a = "a ".repeat(n);
    let b = "b ".repeat(n / 2);
    let e = t
        .encode_with(&a, Some(&b), &EncodeOptions::truncate(1000))
        .unwrap();
    // 997 content tokens: a is cut to b's length (n/2) first, then alternately b, a, ...
    // until 997 are left: b keeps 498, a keeps 499
    assert_eq!(e.len(), 1000);
    let na = e.input_ids.iter().filter(|&&i| i == 5).count();
    let nb = e.input_ids.iter().filter(|&&i| i == 6).count();
    assert_eq!((na, nb), (499, 498));
}

/// Pair truncation against the token-at-a-time loop it replaces (from the longer side, `b` on
/// a tie), on every small length combination.
#[test]
fn pair_truncation_matches_the_one_token_at_a_time_rule() {
    let t = tok(&["a", "b"]);
    for la in 0..12usize {
        for lb in 0..12usize {
            for max in 3..(la + lb + 5) {
                let (mut ka, mut kb) = (la, lb);
                while ka + kb + 3 > max {
                    if kb >= ka {
                        kb -= 1;
                    } else {
                        ka -= 1;
                    }
                }
                let e = t
                    .encode_with(
                        &"a ".repeat(la),
                        Some(&"b ".repeat(lb)),
                        &EncodeOptions::truncate(max),
                    )
                    .unwrap();
                let na = e.input_ids.iter().filter(|&&i| i == 5).count();
                let nb = e.input_ids.iter().filter(|&&i| i == 6).count();
                assert_eq!((na, nb), (ka, kb), "la {la} lb {lb} max {max}");
            }
        }
    }
}
