//! The run's data: the vocabulary, the corpora turned into instances, the order instances are
//! drawn in, and a batch laid out for the model.

use crate::error::{invalid, Error, Result};
use crate::pretrain::config::{Objective, PretrainConfig};
use crate::pretrain::corpus::{read_corpus_file, split_by_document, Document};
use crate::pretrain::instances::{
    create_instances_with_stats, Instance, SpecialTokens, TokenDocument,
};
use crate::pretrain::trainer::mix;
use crate::tokenizer::Tokenizer;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

/// Tokenised train and held-out data.
pub struct PretrainData {
    /// Training instances, shuffled.
    pub train: Vec<Instance>,
    /// Held-out instances (from the held-out file or every `heldout_every`-th document).
    pub heldout: Vec<Instance>,
    /// The special ids and vocabulary size the instances were built with.
    pub special: SpecialTokens,
}

fn tokenize_docs(tok: &Tokenizer, docs: &[Document]) -> Vec<TokenDocument> {
    docs.par_iter()
        .map(|d| d.iter().map(|s| tok.tokenize_ids(s)).collect())
        .collect()
}

/// LTR instances: each document's tokens in windows of `max_seq_length − 2`, laid out as
/// `[CLS] tokens [SEP]`; every position predicts the next token.
fn ltr_instances(
    docs: &[TokenDocument],
    max_seq_length: usize,
    special: SpecialTokens,
    seed: u64,
) -> Vec<Instance> {
    let win = max_seq_length - 2;
    let mut out = Vec::new();
    for d in docs {
        let flat: Vec<u32> = d.iter().flatten().copied().collect();
        for chunk in flat.chunks(win) {
            if chunk.len() < 2 {
                continue;
            }
            let mut tokens = Vec::with_capacity(chunk.len() + 2);
            tokens.push(special.cls);
            tokens.extend_from_slice(chunk);
            tokens.push(special.sep);
            out.push(Instance {
                segment_ids: vec![0; tokens.len()],
                tokens,
                is_random_next: false,
                masked_positions: vec![],
                masked_labels: vec![],
            });
        }
    }
    out.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    out
}

/// The config's vocabulary, learned from the training corpus first when the file is missing and
/// `data.train_vocab_size` is set (every rank learns the same one; rank 0 writes it).
pub fn load_or_train_vocab(cfg: &PretrainConfig, write: bool) -> Result<Tokenizer> {
    let path = &cfg.data.vocab;
    if path.exists() {
        return Tokenizer::from_vocab_file(path);
    }
    let Some(size) = cfg.data.train_vocab_size else {
        return Tokenizer::from_vocab_file(path);
    };
    let mut t = crate::tokenizer::Trainer::new(crate::tokenizer::TrainerConfig {
        vocab_size: size,
        min_frequency: 2,
        progress: write,
        ..crate::tokenizer::TrainerConfig::default()
    });
    t.feed_file(&cfg.data.train)?;
    let vocab = t.train()?;
    if write {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                path: dir.display().to_string(),
                source: e,
            })?;
        }
        vocab.save(path)?;
    }
    Ok(Tokenizer::new(vocab))
}

/// Reads, tokenises and turns the corpora into instances.
pub fn prepare_data(cfg: &PretrainConfig, tok: &Tokenizer) -> Result<PretrainData> {
    let v = tok.vocab();
    let mask = v.mask_id().ok_or_else(|| Error::Invalid {
        op: "pretrain",
        detail: format!(
            "the vocabulary {} has no [MASK] token",
            cfg.data.vocab.display()
        ),
    })?;
    let special = SpecialTokens {
        cls: v.cls_id(),
        sep: v.sep_id(),
        mask,
        vocab_size: v.len() as u32,
    };
    let mut docs = read_corpus_file(&cfg.data.train)?;
    if let Some(n) = cfg.data.max_documents {
        docs.truncate(n);
    }
    if docs.is_empty() {
        return invalid(
            "pretrain",
            format!("the corpus {} has no documents", cfg.data.train.display()),
        );
    }
    if cfg.train.objective == Objective::MlmNsp && cfg.data.heldout.is_none() && docs.len() < 2 {
        return invalid(
            "pretrain",
            format!(
                "the corpus {} has one document: next-sentence prediction needs at least two to draw random next sentences from",
                cfg.data.train.display()
            ),
        );
    }
    let (train_docs, held_docs) = match &cfg.data.heldout {
        Some(p) => (docs, read_corpus_file(p)?),
        None => split_by_document(docs, cfg.data.heldout_every, 0)?,
    };
    if train_docs.is_empty() {
        return invalid(
            "pretrain",
            format!(
                "holding out every {}-th document leaves no training documents",
                cfg.data.heldout_every
            ),
        );
    }
    let train_tok = tokenize_docs(tok, &train_docs);
    let held_tok = tokenize_docs(tok, &held_docs);
    let ic = cfg.instance_config();
    let seed = cfg.train.seed;
    let vocab_tokens = v.tokens();
    let is_sub = |id: u32| {
        vocab_tokens
            .get(id as usize)
            .is_some_and(|t| t.starts_with("##"))
    };
    let (train, heldout) = if cfg.train.objective == Objective::Ltr {
        (
            ltr_instances(&train_tok, ic.max_seq_length, special, seed),
            ltr_instances(&held_tok, ic.max_seq_length, special, seed ^ 0xE7A1),
        )
    } else {
        let (train, _) = create_instances_with_stats(&train_tok, &ic, special, &is_sub, seed)?;
        let held_cfg = crate::pretrain::instances::InstanceConfig {
            dupe_factor: 1,
            masked_lm_prob: cfg.data.heldout_masked_lm_prob.unwrap_or(ic.masked_lm_prob),
            max_predictions_per_seq: cfg
                .data
                .heldout_max_predictions_per_seq
                .unwrap_or(ic.max_predictions_per_seq),
            ..ic
        };
        held_cfg.validate()?;
        let heldout = if held_tok.len() >= 2 || !held_cfg.next_sentence {
            create_instances_with_stats(&held_tok, &held_cfg, special, &is_sub, seed ^ 0xE7A1)?.0
        } else {
            vec![]
        };
        (train, heldout)
    };
    if train.is_empty() {
        return invalid(
            "pretrain",
            "no training instances could be made from the corpus",
        );
    }
    Ok(PretrainData {
        train,
        heldout,
        special,
    })
}

/// The order the training instances are read in: a permutation of the `n` instances per
/// epoch, seeded by the run's seed and the epoch. The current epoch's permutation is kept, so a
/// step costs its batch, not a shuffle of the whole training set (a millisecond-scale cost per
/// step at the full scale's million instances when it was rebuilt every step).
#[derive(Debug, Default)]
pub(super) struct EpochOrder {
    epoch: Option<u64>,
    perm: Vec<usize>,
}

impl EpochOrder {
    /// Indices of the global batch of `batch_size` for `step`.
    pub(super) fn batch(
        &mut self,
        n: usize,
        batch_size: usize,
        seed: u64,
        step: u64,
    ) -> Vec<usize> {
        (0..batch_size)
            .map(|i| {
                let flat = step as usize * batch_size + i;
                let epoch = (flat / n) as u64;
                if self.epoch != Some(epoch) || self.perm.len() != n {
                    self.perm = (0..n).collect();
                    self.perm
                        .shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(mix(
                            seed, epoch,
                        )));
                    self.epoch = Some(epoch);
                }
                self.perm[flat % n]
            })
            .collect()
    }
}

/// A batch laid out for the model.
pub(super) struct Batch {
    pub(super) ids: Vec<u32>,
    pub(super) types: Vec<u32>,
    pub(super) mask: Vec<u32>,
    pub(super) batch: usize,
    pub(super) seq: usize,
    /// Flat rows `b·seq + p` that are predicted, and their labels.
    pub(super) lm_rows: Vec<u32>,
    pub(super) lm_labels: Vec<i32>,
    pub(super) nsp_labels: Vec<i32>,
}

pub(super) fn make_batch(insts: &[&Instance], objective: Objective, pad: u32) -> Batch {
    let seq = insts.iter().map(|i| i.tokens.len()).max().unwrap_or(1);
    let b = insts.len();
    let mut out = Batch {
        ids: vec![pad; b * seq],
        types: vec![0; b * seq],
        mask: vec![0; b * seq],
        batch: b,
        seq,
        lm_rows: vec![],
        lm_labels: vec![],
        nsp_labels: vec![],
    };
    for (r, inst) in insts.iter().enumerate() {
        let n = inst.tokens.len();
        out.ids[r * seq..r * seq + n].copy_from_slice(&inst.tokens);
        out.types[r * seq..r * seq + n].copy_from_slice(&inst.segment_ids);
        out.mask[r * seq..r * seq + n].fill(1);
        match objective {
            Objective::Ltr => {
                for p in 0..n - 1 {
                    out.lm_rows.push((r * seq + p) as u32);
                    out.lm_labels.push(inst.tokens[p + 1] as i32);
                }
            }
            _ => {
                for (&p, &l) in inst.masked_positions.iter().zip(&inst.masked_labels) {
                    out.lm_rows.push((r * seq) as u32 + p);
                    out.lm_labels.push(l as i32);
                }
            }
        }
        out.nsp_labels.push(i32::from(inst.is_random_next));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order with nothing kept: every index from a freshly shuffled permutation.
    fn uncached(n: usize, b: usize, seed: u64, step: u64) -> Vec<usize> {
        EpochOrder::default().batch(n, b, seed, step)
    }

    #[test]
    fn kept_permutation_gives_the_same_batches_across_epochs_and_after_a_jump() {
        let (n, b, seed) = (10, 4, 7);
        let mut order = EpochOrder::default();
        // steps 0..8 cover 32 reads: three epoch boundaries, two inside a batch
        for step in 0..8 {
            assert_eq!(
                order.batch(n, b, seed, step),
                uncached(n, b, seed, step),
                "step {step}"
            );
        }
        // a resume jumps back and forth
        assert_eq!(order.batch(n, b, seed, 2), uncached(n, b, seed, 2));
        assert_eq!(order.batch(n, b, seed, 7), uncached(n, b, seed, 7));
        // every epoch reads each instance once
        let reads: Vec<usize> = (0..5).flat_map(|s| uncached(n, b, seed, s)).collect();
        for e in 0..2 {
            let mut ep = reads[e * n..(e + 1) * n].to_vec();
            ep.sort_unstable();
            assert_eq!(ep, (0..n).collect::<Vec<_>>());
        }
    }
}
