//! Training instances as BERT's `create_pretraining_data.py` builds them.
//!
//! For each pass over the corpus (`dupe_factor` passes) and each document:
//!
//! 1. A target length: `max_seq_length − 3`, or with probability `short_seq_prob` a random
//!    length in `2..=max_seq_length − 3`.
//! 2. Whole sentences are added to a chunk until it reaches the target or the document ends.
//!    Segment A is the chunk's first `a_end` sentences (`a_end` uniform in `1..n`).
//! 3. Next-sentence prediction: with probability 0.5 (always for a one-sentence chunk) B is
//!    taken from a random *other* document, starting at a random sentence, until it reaches the
//!    remaining target length, and the chunk's unused sentences go back to be read again;
//!    otherwise B is the rest of the chunk. Label 0 = IsNext, 1 = random.
//! 4. While the pair is too long, one token is dropped from the longer side, at its front or
//!    back with probability ½ each.
//! 5. `[CLS] A [SEP] B [SEP]`, segment 0 up to the first `[SEP]`, 1 after.
//! 6. Masked LM: `min(max_predictions_per_seq, max(1, round(len·masked_lm_prob)))` positions
//!    among all but `[CLS]`/`[SEP]`, in shuffled order (whole words with `whole_word_mask`);
//!    each becomes `[MASK]`, a random vocabulary entry (any id, specials included, possibly the
//!    original) or stays, with the configured shares (default 80/10/10).
//!
//! Determinism: each (pass, document) pair draws from its own RNG seeded from the global seed,
//! the pass and the document index, so the result is the same for any number of threads (the
//! reference draws everything from one sequential RNG; the distributions are the same). The
//! final shuffle uses the global seed.
//!
//! With NSP disabled (the "No NSP" and LTR ablations) B is always the true continuation and a
//! one-sentence chunk gives `[CLS] A [SEP]` alone.

use crate::error::{invalid, Result};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Shares of the chosen positions that become `[MASK]`, a random token, or stay the same.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MaskSplit {
    /// Share of the chosen positions replaced by `[MASK]` (BERT: 0.8).
    pub mask: f64,
    /// Share replaced by a random vocabulary id (BERT: 0.1).
    pub random: f64,
    /// Share left unchanged (BERT: 0.1).
    pub keep: f64,
}

impl MaskSplit {
    /// The paper's 80% `[MASK]` / 10% random / 10% unchanged.
    pub const BERT: MaskSplit = MaskSplit {
        mask: 0.8,
        random: 0.1,
        keep: 0.1,
    };
}

/// Everything that shapes instance creation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstanceConfig {
    /// Tokens per instance, `[CLS]`/`[SEP]`s included (at least 5).
    pub max_seq_length: usize,
    /// Probability of aiming at a random shorter length (step 1 of the module docs).
    pub short_seq_prob: f64,
    /// Fraction of an instance's tokens chosen for prediction (BERT: 0.15).
    pub masked_lm_prob: f64,
    /// Cap on predicted positions per instance.
    pub max_predictions_per_seq: usize,
    /// What the chosen positions become.
    pub mask_split: MaskSplit,
    /// Choose all pieces of a word together (a word = a piece and its `##` continuations).
    pub whole_word_mask: bool,
    /// Passes over the corpus, each with fresh pairs and masks (1..=[`MAX_DUPE_FACTOR`]).
    pub dupe_factor: usize,
    /// Draw random next sentences for NSP (false for the "No NSP" and LTR ablations).
    pub next_sentence: bool,
}

impl Default for InstanceConfig {
    /// The reference's settings for sequence length 128.
    fn default() -> Self {
        InstanceConfig {
            max_seq_length: 128,
            short_seq_prob: 0.1,
            masked_lm_prob: 0.15,
            max_predictions_per_seq: 20,
            mask_split: MaskSplit::BERT,
            whole_word_mask: false,
            dupe_factor: 1,
            next_sentence: true,
        }
    }
}

impl InstanceConfig {
    /// Checks every value, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "InstanceConfig";
        if self.max_seq_length < 5 {
            return invalid(
                OP,
                format!(
                    "max_seq_length {} is too short (need ≥ 5 for [CLS] A [SEP] B [SEP])",
                    self.max_seq_length
                ),
            );
        }
        for (name, p) in [
            ("short_seq_prob", self.short_seq_prob),
            ("masked_lm_prob", self.masked_lm_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return invalid(OP, format!("{name} {p} is not a probability"));
            }
        }
        let s = self.mask_split;
        if [s.mask, s.random, s.keep]
            .iter()
            .any(|v| !(0.0..=1.0).contains(v))
            || (s.mask + s.random + s.keep - 1.0).abs() > 1e-9
        {
            return invalid(
                OP,
                format!(
                    "mask split MASK {} + RANDOM {} + KEEP {} must be shares summing to 100%",
                    s.mask, s.random, s.keep
                ),
            );
        }
        if self.dupe_factor == 0 {
            return invalid(OP, "dupe_factor must be at least 1");
        }
        if self.dupe_factor > MAX_DUPE_FACTOR {
            return invalid(
                OP,
                format!(
                    "dupe_factor {} is above the limit {MAX_DUPE_FACTOR}",
                    self.dupe_factor
                ),
            );
        }
        Ok(())
    }
}

/// Largest `dupe_factor` accepted (BERT used 10): each pass holds a copy of the instances.
pub const MAX_DUPE_FACTOR: usize = 1000;

/// The ids instance creation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    /// The `[CLS]` id.
    pub cls: u32,
    /// The `[SEP]` id.
    pub sep: u32,
    /// The `[MASK]` id.
    pub mask: u32,
    /// Number of ids; random replacements are drawn uniformly from `0..vocab_size`.
    pub vocab_size: u32,
}

/// One training sequence.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    /// `[CLS] A [SEP] B [SEP]` after masking.
    pub tokens: Vec<u32>,
    /// Segment (token type) per position: 0 through the first `[SEP]`, 1 after.
    pub segment_ids: Vec<u32>,
    /// NSP label: true when B is a random sentence from another document (label 1).
    pub is_random_next: bool,
    /// Positions chosen for prediction, ascending.
    pub masked_positions: Vec<u32>,
    /// The original tokens at those positions.
    pub masked_labels: Vec<u32>,
}

/// A tokenised document: sentences of token ids.
pub type TokenDocument = Vec<Vec<u32>>;

fn mix(seed: u64, a: u64, b: u64) -> u64 {
    // splitmix64 over the three words: independent streams per (pass, document)
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Counts that explain the NSP share of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreationStats {
    /// Instances created.
    pub instances: usize,
    /// Instances whose B is random.
    pub random_next: usize,
    /// Of those, how many were forced because the chunk had one sentence (not a coin flip):
    /// the reason the reference gives slightly more than 50% NotNext.
    pub forced_random_next: usize,
}

/// Builds all instances from tokenised documents. `is_subword(id)` tells whole-word masking
/// which tokens continue the previous word (`##` pieces); it is unused otherwise.
pub fn create_instances(
    docs: &[TokenDocument],
    config: &InstanceConfig,
    special: SpecialTokens,
    is_subword: &(dyn Fn(u32) -> bool + Sync),
    seed: u64,
) -> Result<Vec<Instance>> {
    Ok(create_instances_with_stats(docs, config, special, is_subword, seed)?.0)
}

/// [`create_instances`], also returning [`CreationStats`].
pub fn create_instances_with_stats(
    docs: &[TokenDocument],
    config: &InstanceConfig,
    special: SpecialTokens,
    is_subword: &(dyn Fn(u32) -> bool + Sync),
    seed: u64,
) -> Result<(Vec<Instance>, CreationStats)> {
    config.validate()?;
    // Empty sentences and documents carry nothing; drop them first.
    let docs: Vec<TokenDocument> = docs
        .iter()
        .map(|d| {
            d.iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<TokenDocument>()
        })
        .filter(|d: &TokenDocument| !d.is_empty())
        .collect();
    if docs.is_empty() {
        return invalid("create_instances", "the corpus has no non-empty document");
    }
    if config.next_sentence && docs.len() < 2 {
        return invalid(
            "create_instances",
            "the corpus has one document: next-sentence prediction needs at least two to draw random next sentences from",
        );
    }
    let jobs: Vec<(usize, usize)> = (0..config.dupe_factor)
        .flat_map(|p| (0..docs.len()).map(move |d| (p, d)))
        .collect();
    let per_doc: Vec<(Vec<Instance>, usize)> = jobs
        .par_iter()
        .map(|&(pass, d)| {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, pass as u64, d as u64));
            from_document(&docs, d, config, special, is_subword, &mut rng)
        })
        .collect();
    let forced_random_next = per_doc.iter().map(|(_, f)| f).sum();
    let mut all: Vec<Instance> = per_doc.into_iter().flat_map(|(v, _)| v).collect();
    all.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed, u64::MAX, 0)));
    let stats = CreationStats {
        instances: all.len(),
        random_next: all.iter().filter(|i| i.is_random_next).count(),
        forced_random_next,
    };
    Ok((all, stats))
}

fn from_document(
    docs: &[TokenDocument],
    d: usize,
    cfg: &InstanceConfig,
    special: SpecialTokens,
    is_subword: &(dyn Fn(u32) -> bool + Sync),
    rng: &mut ChaCha8Rng,
) -> (Vec<Instance>, usize) {
    let doc = &docs[d];
    let mut forced = 0;
    let max_num_tokens = cfg.max_seq_length - 3;
    let target = if rng.random::<f64>() < cfg.short_seq_prob {
        rng.random_range(2..=max_num_tokens)
    } else {
        max_num_tokens
    };
    let mut out = Vec::new();
    let mut chunk: Vec<&Vec<u32>> = Vec::new();
    let mut chunk_len = 0;
    let mut i = 0;
    while i < doc.len() {
        chunk.push(&doc[i]);
        chunk_len += doc[i].len();
        if i == doc.len() - 1 || chunk_len >= target {
            let a_end = if chunk.len() >= 2 {
                rng.random_range(1..chunk.len())
            } else {
                1
            };
            let mut a: Vec<u32> = chunk[..a_end]
                .iter()
                .flat_map(|s| s.iter().copied())
                .collect();
            let mut b: Vec<u32> = Vec::new();
            let mut random_next = false;
            if cfg.next_sentence && (chunk.len() == 1 || rng.random::<f64>() < 0.5) {
                random_next = true;
                forced += usize::from(chunk.len() == 1);
                let target_b = target.saturating_sub(a.len()).max(1);
                let mut other = d;
                for _ in 0..10 {
                    other = rng.random_range(0..docs.len());
                    if other != d {
                        break;
                    }
                }
                let rdoc = &docs[other];
                let start = rng.random_range(0..rdoc.len());
                for s in &rdoc[start..] {
                    b.extend_from_slice(s);
                    if b.len() >= target_b {
                        break;
                    }
                }
                // the chunk's unused sentences are read again
                i -= chunk.len() - a_end;
            } else {
                b = chunk[a_end..]
                    .iter()
                    .flat_map(|s| s.iter().copied())
                    .collect();
            }
            truncate_pair(&mut a, &mut b, max_num_tokens, rng);
            out.push(assemble(a, b, random_next, cfg, special, is_subword, rng));
            chunk.clear();
            chunk_len = 0;
        }
        i += 1;
    }
    (out, forced)
}

/// Drops one token at a time from the longer side (front or back at random) until the pair
/// fits in `max_num_tokens`.
///
/// The same random draws as removing each token in place, but only the counts of tokens to
/// drop from each end are kept while drawing, and each side is cut once at the end: linear in
/// the length (removing from the front one token at a time was quadratic).
fn truncate_pair(a: &mut Vec<u32>, b: &mut Vec<u32>, max_num_tokens: usize, rng: &mut impl Rng) {
    // [front, back] tokens to drop from each side
    let (mut da, mut db) = ([0usize; 2], [0usize; 2]);
    let (mut la, mut lb) = (a.len(), b.len());
    while la + lb > max_num_tokens {
        let (d, l) = if la > lb {
            (&mut da, &mut la)
        } else {
            (&mut db, &mut lb)
        };
        if rng.random::<f64>() < 0.5 {
            d[0] += 1;
        } else {
            d[1] += 1;
        }
        *l -= 1;
    }
    for (v, [front, back]) in [(a, da), (b, db)] {
        v.truncate(v.len() - back);
        v.drain(..front);
    }
}

fn assemble(
    a: Vec<u32>,
    b: Vec<u32>,
    random_next: bool,
    cfg: &InstanceConfig,
    special: SpecialTokens,
    is_subword: &(dyn Fn(u32) -> bool + Sync),
    rng: &mut ChaCha8Rng,
) -> Instance {
    let mut tokens = Vec::with_capacity(a.len() + b.len() + 3);
    let mut segment_ids = Vec::with_capacity(tokens.capacity());
    tokens.push(special.cls);
    tokens.extend_from_slice(&a);
    tokens.push(special.sep);
    segment_ids.resize(tokens.len(), 0);
    if !b.is_empty() {
        tokens.extend_from_slice(&b);
        tokens.push(special.sep);
        segment_ids.resize(tokens.len(), 1);
    }
    let (masked_positions, masked_labels) = mask_tokens(&mut tokens, cfg, special, is_subword, rng);
    Instance {
        tokens,
        segment_ids,
        is_random_next: random_next,
        masked_positions,
        masked_labels,
    }
}

/// Chooses and replaces the masked-LM positions in place; returns (positions, original ids),
/// sorted by position.
pub fn mask_tokens(
    tokens: &mut [u32],
    cfg: &InstanceConfig,
    special: SpecialTokens,
    is_subword: &(dyn Fn(u32) -> bool + Sync),
    rng: &mut impl Rng,
) -> (Vec<u32>, Vec<u32>) {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, &t) in tokens.iter().enumerate() {
        if t == special.cls || t == special.sep {
            continue;
        }
        match groups.last_mut() {
            Some(g) if cfg.whole_word_mask && is_subword(t) && *g.last().unwrap() + 1 == i => {
                g.push(i)
            }
            _ => groups.push(vec![i]),
        }
    }
    groups.shuffle(rng);
    let num_to_predict = cfg
        .max_predictions_per_seq
        .min(((tokens.len() as f64 * cfg.masked_lm_prob).round() as usize).max(1));
    let original = tokens.to_vec();
    let mut chosen: Vec<usize> = Vec::new();
    for g in groups {
        if chosen.len() >= num_to_predict {
            break;
        }
        if chosen.len() + g.len() > num_to_predict {
            continue;
        }
        for idx in g {
            let r: f64 = rng.random();
            tokens[idx] = if r < cfg.mask_split.mask {
                special.mask
            } else if r < cfg.mask_split.mask + cfg.mask_split.random {
                rng.random_range(0..special.vocab_size)
            } else {
                original[idx]
            };
            chosen.push(idx);
        }
    }
    chosen.sort_unstable();
    let labels = chosen.iter().map(|&i| original[i]).collect();
    (chosen.into_iter().map(|i| i as u32).collect(), labels)
}

#[cfg(test)]
mod tests {
    use super::truncate_pair;
    use rand::{Rng, SeedableRng};

    /// The one-token-at-a-time rule it replaces (front removal was quadratic).
    fn truncate_pair_naive(
        a: &mut Vec<u32>,
        b: &mut Vec<u32>,
        max_num_tokens: usize,
        rng: &mut impl Rng,
    ) {
        while a.len() + b.len() > max_num_tokens {
            let longer = if a.len() > b.len() { &mut *a } else { &mut *b };
            if rng.random::<f64>() < 0.5 {
                longer.remove(0);
            } else {
                longer.pop();
            }
        }
    }

    #[test]
    fn truncate_pair_keeps_the_tokens_and_draws_of_the_naive_rule() {
        for seed in 0..20u64 {
            for (la, lb, max) in [
                (0, 0, 0),
                (5, 0, 2),
                (0, 7, 3),
                (9, 9, 4),
                (30, 3, 10),
                (4, 40, 20),
            ] {
                let a0: Vec<u32> = (0..la).collect();
                let b0: Vec<u32> = (100..100 + lb).collect();
                let (mut a1, mut b1) = (a0.clone(), b0.clone());
                let (mut a2, mut b2) = (a0, b0);
                let mut r1 = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let mut r2 = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                truncate_pair(&mut a1, &mut b1, max, &mut r1);
                truncate_pair_naive(&mut a2, &mut b2, max, &mut r2);
                assert_eq!((&a1, &b1), (&a2, &b2), "seed {seed} {la} {lb} {max}");
                assert_eq!(r1.random::<u64>(), r2.random::<u64>(), "rng stream differs");
            }
        }
        // 200k tokens on one side: linear now, exactly as many kept as fit
        let mut a: Vec<u32> = (0..200_000).collect();
        let mut b = vec![7u32; 10];
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        truncate_pair(&mut a, &mut b, 100, &mut r);
        assert_eq!(a.len() + b.len(), 100);
        assert!(
            a.windows(2).all(|w| w[1] == w[0] + 1),
            "kept a contiguous run"
        );
    }
}
