//! What a step or an evaluation adds up ([`Totals`]), and the baselines that read no context
//! ([`ContextFree`]) every evaluation is scored against.

use crate::pretrain::config::{Objective, PretrainConfig};
use crate::pretrain::instances::Instance;
use crate::pretrain::trainer::data::PretrainData;

/// One step's (or one evaluation's) totals.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    /// Masked-LM cross-entropy (nats) summed over the predicted positions.
    pub lm_loss_sum: f64,
    /// Predicted positions whose most probable token is the label.
    pub lm_correct: f64,
    /// Predicted positions.
    pub lm_count: f64,
    /// Next-sentence cross-entropy (nats) summed over sequences (0 without NSP).
    pub nsp_loss_sum: f64,
    /// Sequences whose NSP label was predicted.
    pub nsp_correct: f64,
    /// Sequences scored for NSP.
    pub nsp_count: f64,
    /// Real (unpadded) input tokens processed.
    pub tokens: f64,
    /// The same predicted positions scored by the training targets' unigram frequencies alone
    /// (see [`ContextFree`]).
    pub lm_unigram_loss_sum: f64,
    /// … and by the best predictor that reads no context (see [`ContextFree`]).
    pub lm_context_free_loss_sum: f64,
}

impl Totals {
    pub(super) fn as_array(&self) -> [f64; 9] {
        [
            self.lm_loss_sum,
            self.lm_correct,
            self.lm_count,
            self.nsp_loss_sum,
            self.nsp_correct,
            self.nsp_count,
            self.tokens,
            self.lm_unigram_loss_sum,
            self.lm_context_free_loss_sum,
        ]
    }
    pub(super) fn from_array(a: [f64; 9]) -> Totals {
        Totals {
            lm_loss_sum: a[0],
            lm_correct: a[1],
            lm_count: a[2],
            nsp_loss_sum: a[3],
            nsp_correct: a[4],
            nsp_count: a[5],
            tokens: a[6],
            lm_unigram_loss_sum: a[7],
            lm_context_free_loss_sum: a[8],
        }
    }
    /// Mean loss of the unigram predictor over the same predicted positions (the "unigram
    /// entropy of the same held-out text").
    pub fn lm_unigram_loss(&self) -> f64 {
        self.lm_unigram_loss_sum / self.lm_count.max(1.0)
    }
    /// Mean loss of the best context-free predictor over the same predicted positions.
    pub fn lm_context_free_loss(&self) -> f64 {
        self.lm_context_free_loss_sum / self.lm_count.max(1.0)
    }
    pub(super) fn add(&mut self, o: &Totals) {
        *self = Totals::from_array(std::array::from_fn(|i| {
            self.as_array()[i] + o.as_array()[i]
        }));
    }
    /// Mean LM loss over predicted positions.
    pub fn lm_loss(&self) -> f64 {
        self.lm_loss_sum / self.lm_count.max(1.0)
    }
    /// Fraction of predicted positions whose top token is right.
    pub fn lm_accuracy(&self) -> f64 {
        self.lm_correct / self.lm_count.max(1.0)
    }
    /// Mean NSP loss per sequence.
    pub fn nsp_loss(&self) -> f64 {
        self.nsp_loss_sum / self.nsp_count.max(1.0)
    }
    /// Fraction of sequences whose NSP label was predicted.
    pub fn nsp_accuracy(&self) -> f64 {
        self.nsp_correct / self.nsp_count.max(1.0)
    }
}

/// Baselines that read no context, scored on exactly the positions the model is scored on.
///
/// `unigram` is `ln p(w)` of the training targets ([`unigram_log_prior`]). The unigram loss
/// of a position is `−ln p(label)`. The context-free loss is that of the best predictor that
/// sees only the input token at the predicted position: with the MASK/KEEP/RANDOM shares
/// `m/k/r` and a random replacement drawn uniformly from the `V` ids, an input `[MASK]`
/// leaves `p(w)`, and any other input `x` gives
/// `q(w | x) = (k·p(x)·[w = x] + r·p(w)/V) / (k·p(x) + r/V)`: under 80/10/10 masking a
/// model can learn to copy the visible token without reading any context, and this floor
/// says how far that alone goes. For LTR both are the unigram loss.
#[derive(Clone, Debug)]
pub struct ContextFree {
    /// `ln p(w)` for every id `w` (length V), add-one smoothed.
    pub unigram: Vec<f32>,
    keep: f64,
    random: f64,
    mask_id: u32,
    copy: bool,
}

impl ContextFree {
    /// The baselines of a run's training data.
    pub fn new(data: &PretrainData, cfg: &PretrainConfig, vocab_size: usize) -> ContextFree {
        let d = &cfg.data;
        ContextFree {
            unigram: unigram_log_prior(&data.train, cfg.train.objective, vocab_size),
            keep: d.keep,
            random: d.random,
            mask_id: data.special.mask,
            copy: cfg.train.objective != Objective::Ltr,
        }
    }

    fn log_p(&self, id: u32) -> f64 {
        self.unigram
            .get(id as usize)
            .map_or(f64::NEG_INFINITY, |&l| l as f64)
    }

    /// `−ln p(label)`.
    pub fn unigram_loss(&self, label: u32) -> f64 {
        -self.log_p(label)
    }

    /// `−ln q(label | input)`.
    pub fn context_free_loss(&self, input: u32, label: u32) -> f64 {
        let lp = self.log_p(label);
        if !self.copy || input == self.mask_id {
            return -lp;
        }
        let v = self.unigram.len() as f64;
        let px = self.log_p(input).exp();
        let z = self.keep * px + self.random / v;
        if z <= 0.0 {
            return -lp;
        }
        let same = if input == label { self.keep * px } else { 0.0 };
        -((same + self.random * lp.exp() / v) / z).ln()
    }
}

/// `ln p(w)` of the training targets, add-one smoothed over the vocabulary: the masked
/// labels for MLM, every next token for LTR.
pub fn unigram_log_prior(train: &[Instance], objective: Objective, vocab_size: usize) -> Vec<f32> {
    let mut counts = vec![1.0f64; vocab_size];
    let mut add = |ids: &[u32]| {
        for &id in ids {
            if let Some(c) = counts.get_mut(id as usize) {
                *c += 1.0;
            }
        }
    };
    for inst in train {
        match objective {
            Objective::Ltr => add(inst.tokens.get(1..).unwrap_or(&[])),
            _ => add(&inst.masked_labels),
        }
    }
    let total: f64 = counts.iter().sum();
    counts.iter().map(|c| (c / total).ln() as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(tokens: Vec<u32>, labels: Vec<u32>) -> Instance {
        Instance {
            segment_ids: vec![0; tokens.len()],
            masked_positions: (1..=labels.len() as u32).collect(),
            tokens,
            is_random_next: false,
            masked_labels: labels,
        }
    }

    #[test]
    fn unigram_prior_counts_mlm_labels_or_ltr_next_tokens() {
        let train = [inst(vec![0, 1, 2, 3], vec![2, 2, 3])];
        // MLM: counts 1 + [0, 0, 2, 1] over 4 ids = [1, 1, 3, 2] / 7
        let p = unigram_log_prior(&train, Objective::Mlm, 4);
        let want = [1.0f64, 1.0, 3.0, 2.0].map(|c| (c / 7.0).ln() as f32);
        assert_eq!(p, want);
        // LTR: every token after the first, [1, 2, 3] → [1, 2, 2, 2] / 7
        let p = unigram_log_prior(&train, Objective::Ltr, 4);
        let want = [1.0f64, 2.0, 2.0, 2.0].map(|c| (c / 7.0).ln() as f32);
        assert_eq!(p, want);
    }

    #[test]
    fn context_free_loss_by_hand() {
        // V = 4, p = [0.1, 0.2, 0.3, 0.4], keep 0.1, random 0.1, [MASK] = id 0.
        let p = [0.1f64, 0.2, 0.3, 0.4];
        let cf = ContextFree {
            unigram: p.iter().map(|v| v.ln() as f32).collect(),
            keep: 0.1,
            random: 0.1,
            mask_id: 0,
            copy: true,
        };
        // input [MASK]: −ln p(label)
        assert!((cf.context_free_loss(0, 2) + 0.3f64.ln()).abs() < 1e-6);
        // input 3 = label 3: (0.1·0.4 + 0.1·0.4/4) / (0.1·0.4 + 0.1/4) = 0.05 / 0.065
        let want = -(0.05f64 / 0.065).ln();
        let got = cf.context_free_loss(3, 3);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        // input 3, label 1: (0.1·0.2/4) / 0.065 = 0.005 / 0.065
        let want = -(0.005f64 / 0.065).ln();
        assert!((cf.context_free_loss(3, 1) - want).abs() < 1e-6);
        assert!((cf.unigram_loss(1) + 0.2f64.ln()).abs() < 1e-6);
        // LTR reads no copy: always the unigram loss
        let ltr = ContextFree { copy: false, ..cf };
        assert!((ltr.context_free_loss(3, 3) + 0.4f64.ln()).abs() < 1e-6);
    }
}
