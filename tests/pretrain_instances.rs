//! Instance creation: layout, continuity, truncation, and the NSP and MASK/RANDOM/KEEP shares
//! within binomial bounds of the configured ones.

mod common;

use cloze::pretrain::instances::*;
use common::assert_mentions;

const CLS: u32 = 101;
const SEP: u32 = 102;
const MASK: u32 = 103;
const V: u32 = 30522;
const FIRST: u32 = 1000;

fn special() -> SpecialTokens {
    SpecialTokens {
        cls: CLS,
        sep: SEP,
        mask: MASK,
        vocab_size: V,
    }
}

/// Documents whose tokens are consecutive ids across the whole corpus, so every token says which
/// document it came from and where; sentence lengths vary from 3 to 19.
fn corpus(docs: usize, sentences: usize) -> (Vec<TokenDocument>, Vec<std::ops::Range<u32>>) {
    let mut next = FIRST;
    let mut out = Vec::new();
    let mut ranges = Vec::new();
    for d in 0..docs {
        let start = next;
        let mut doc = Vec::new();
        for s in 0..sentences {
            let len = 3 + ((d * 7 + s * 13) % 17) as u32;
            doc.push((next..next + len).collect());
            next += len;
        }
        out.push(doc);
        ranges.push(start..next);
    }
    assert!(next < V, "synthetic corpus too large for the vocabulary");
    (out, ranges)
}

fn unmasked(inst: &Instance) -> Vec<u32> {
    let mut t = inst.tokens.clone();
    for (&p, &l) in inst.masked_positions.iter().zip(&inst.masked_labels) {
        t[p as usize] = l;
    }
    t
}

fn doc_of(id: u32, ranges: &[std::ops::Range<u32>]) -> usize {
    ranges
        .iter()
        .position(|r| r.contains(&id))
        .expect("token from the corpus")
}

fn consecutive(s: &[u32]) -> bool {
    s.windows(2).all(|w| w[1] == w[0] + 1)
}

/// |observed share − p| within 4.5 binomial standard deviations (false-alarm odds ~1e-5).
fn assert_share(what: &str, hits: usize, n: usize, p: f64) {
    let share = hits as f64 / n as f64;
    let sd = (p * (1.0 - p) / n as f64).sqrt();
    assert!(
        (share - p).abs() <= 4.5 * sd,
        "{what}: {hits}/{n} = {share:.4}, expected {p} ± {:.4}",
        4.5 * sd
    );
}

#[test]
fn layout_continuity_truncation_and_shares() {
    let (docs, ranges) = corpus(60, 40);
    let cfg = InstanceConfig {
        dupe_factor: 4,
        ..InstanceConfig::default()
    };
    let (insts, stats) =
        create_instances_with_stats(&docs, &cfg, special(), &|_| false, 42).unwrap();
    assert!(insts.len() > 1000, "{} instances", insts.len());
    assert_eq!(stats.instances, insts.len());

    let (mut n_masked, mut n_mask, mut n_same, mut n_rand) = (0, 0, 0, 0);
    for inst in &insts {
        let t = unmasked(inst);
        assert!(t.len() <= cfg.max_seq_length);
        assert_eq!(t.len(), inst.segment_ids.len());
        assert_eq!(t[0], CLS);
        assert_eq!(*t.last().unwrap(), SEP);
        let sep1 = t.iter().position(|&x| x == SEP).unwrap();
        let (a, b) = (&t[1..sep1], &t[sep1 + 1..t.len() - 1]);
        assert!(!a.is_empty() && !b.is_empty());
        assert!(inst.segment_ids[..=sep1].iter().all(|&s| s == 0));
        assert!(inst.segment_ids[sep1 + 1..].iter().all(|&s| s == 1));
        assert!(
            consecutive(a) && consecutive(b),
            "segments must be contiguous text (truncation only at the ends)"
        );
        if inst.is_random_next {
            assert_ne!(
                doc_of(a[0], &ranges),
                doc_of(b[0], &ranges),
                "random B must come from another document"
            );
        } else {
            // B continues A in the same document (truncation may drop tokens at the junction)
            assert_eq!(doc_of(a[0], &ranges), doc_of(b[0], &ranges));
            assert!(b[0] > a[a.len() - 1], "IsNext B must come after A");
        }
        // masked LM: count, positions, replacement kinds
        let want = cfg
            .max_predictions_per_seq
            .min(((t.len() as f64 * 0.15).round() as usize).max(1));
        assert_eq!(inst.masked_positions.len(), want);
        assert!(inst.masked_positions.windows(2).all(|w| w[0] < w[1]));
        for (&p, &label) in inst.masked_positions.iter().zip(&inst.masked_labels) {
            assert!(
                t[p as usize] != CLS && t[p as usize] != SEP,
                "[CLS]/[SEP] chosen for prediction"
            );
            let now = inst.tokens[p as usize];
            n_masked += 1;
            if now == MASK {
                n_mask += 1;
            } else if now == label {
                n_same += 1;
            } else {
                n_rand += 1;
            }
        }
        // unchosen positions are untouched
        for (i, (&x, &y)) in inst.tokens.iter().zip(&t).enumerate() {
            if !inst.masked_positions.contains(&(i as u32)) {
                assert_eq!(x, y);
            }
        }
    }
    // NSP: the coin-flip draws (excluding one-sentence chunks, which are always random) are 50/50.
    let flips = stats.instances - stats.forced_random_next;
    assert_share(
        "IsNext=random among coin flips",
        stats.random_next - stats.forced_random_next,
        flips,
        0.5,
    );
    // MASK/RANDOM/KEEP: a random draw equals the original with probability 1/V.
    let pv = 1.0 / V as f64;
    assert_share("[MASK]", n_mask, n_masked, 0.8);
    assert_share("random (changed)", n_rand, n_masked, 0.1 * (1.0 - pv));
    assert_share("unchanged", n_same, n_masked, 0.1 + 0.1 * pv);
}

#[test]
fn configured_split_is_followed() {
    let (docs, _) = corpus(30, 30);
    let cfg = InstanceConfig {
        dupe_factor: 4,
        mask_split: MaskSplit {
            mask: 0.0,
            random: 0.2,
            keep: 0.8,
        },
        ..InstanceConfig::default()
    };
    let insts = create_instances(&docs, &cfg, special(), &|_| false, 7).unwrap();
    let (mut n, mut mask, mut same) = (0, 0, 0);
    for inst in &insts {
        for (&p, &l) in inst.masked_positions.iter().zip(&inst.masked_labels) {
            n += 1;
            mask += usize::from(inst.tokens[p as usize] == MASK && l != MASK);
            same += usize::from(inst.tokens[p as usize] == l);
        }
    }
    // [MASK] can only appear as a random draw of id 103: probability 0.2/V per position.
    assert!(mask <= 3, "{mask} [MASK] tokens with a 0% MASK share");
    assert_share("unchanged", same, n, 0.8 + 0.2 / V as f64);
}

#[test]
fn same_seed_same_instances_on_any_thread_count() {
    let (docs, _) = corpus(20, 25);
    let cfg = InstanceConfig {
        dupe_factor: 2,
        ..InstanceConfig::default()
    };
    let run = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| create_instances(&docs, &cfg, special(), &|_| false, 99).unwrap())
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_ne!(
        one,
        create_instances(&docs, &cfg, special(), &|_| false, 100).unwrap()
    );
}

#[test]
fn whole_word_masking_takes_words_whole() {
    // every token with an odd id continues the word of the token before it
    let (docs, _) = corpus(20, 30);
    let cfg = InstanceConfig {
        whole_word_mask: true,
        dupe_factor: 2,
        ..InstanceConfig::default()
    };
    let is_sub = |id: u32| id % 2 == 1 && id >= FIRST;
    let insts = create_instances(&docs, &cfg, special(), &is_sub, 3).unwrap();
    for inst in &insts {
        let t = unmasked(inst);
        for &p in &inst.masked_positions {
            let p = p as usize;
            // a chosen continuation piece has its word's first piece chosen too
            if is_sub(t[p]) && p > 0 && t[p - 1] + 1 == t[p] {
                assert!(
                    inst.masked_positions.contains(&((p - 1) as u32)),
                    "piece {p} masked without its word start"
                );
            }
        }
    }
}

#[test]
fn no_nsp_mode_always_continues() {
    let (docs, _) = corpus(10, 20);
    let cfg = InstanceConfig {
        next_sentence: false,
        ..InstanceConfig::default()
    };
    let insts = create_instances(&docs, &cfg, special(), &|_| false, 5).unwrap();
    assert!(insts.iter().all(|i| !i.is_random_next));
    let one_doc = vec![docs[0].clone()];
    assert!(create_instances(&one_doc, &cfg, special(), &|_| false, 5).is_ok());
}

#[test]
fn bad_input_is_reported_before_anything_runs() {
    let (docs, _) = corpus(3, 5);
    let cfg = InstanceConfig::default();
    let err = create_instances(&[], &cfg, special(), &|_| false, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no non-empty document"), "{err}");
    let err = create_instances(&docs[..1], &cfg, special(), &|_| false, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("one document"), "{err}");
    let bad = InstanceConfig {
        mask_split: MaskSplit {
            mask: 0.8,
            random: 0.1,
            keep: 0.2,
        },
        ..cfg.clone()
    };
    let err = create_instances(&docs, &bad, special(), &|_| false, 1)
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["0.8", "100%"]);
}
