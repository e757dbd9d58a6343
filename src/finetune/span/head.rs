//! The span head (`qa_outputs`) and its loss.

use crate::autodiff::params::ParamStore;
use crate::autodiff::tape::{Tape, Var};
use crate::bert::config::BertConfig;
use crate::bert::model::Linear;
use crate::error::{invalid, Result};

/// Start and end logits `[B, T]` each from hidden states `[B, T, H]` and a head `W` `[2, H]`,
/// `b` `[2]`.
pub fn span_logits(tape: &mut Tape, hidden: &Var, weight: &Var, bias: &Var) -> Result<(Var, Var)> {
    let s = hidden.shape().to_vec();
    if s.len() != 3 || weight.shape() != [2, s[2]] || bias.shape() != [2] {
        return crate::error::shape_err(
            "span_logits",
            format!(
                "hidden {s:?} must be [B, T, H] with weight [2, H] and bias [2], got weight {:?} and bias {:?}",
                weight.shape(),
                bias.shape()
            ),
        );
    }
    let y = tape.linear(hidden, weight, bias)?;
    let parts = tape.split(&y, 2, &[1, 1])?;
    let start = tape.reshape(&parts[0], &[s[0], s[1]])?;
    let end = tape.reshape(&parts[1], &[s[0], s[1]])?;
    Ok((start, end))
}

/// The paper's span loss: the mean of the start and end cross-entropies (softmax over the
/// positions of each row), averaged over the batch; a 0-d result.
pub fn span_loss(
    tape: &mut Tape,
    hidden: &Var,
    weight: &Var,
    bias: &Var,
    starts: &[usize],
    ends: &[usize],
) -> Result<Var> {
    let (s, e) = span_logits(tape, hidden, weight, bias)?;
    let t = s.shape()[1];
    let to_labels = |v: &[usize], what: &str| -> Result<Vec<i32>> {
        v.iter()
            .map(|&p| {
                if p < t {
                    Ok(p as i32)
                } else {
                    invalid(
                        "span_loss",
                        format!("{what} position {p} is outside a sequence of {t}"),
                    )
                }
            })
            .collect()
    };
    let ls = tape.cross_entropy(&s, &to_labels(starts, "start")?, -100)?;
    let le = tape.cross_entropy(&e, &to_labels(ends, "end")?, -100)?;
    let sum = tape.add(&ls, &le)?;
    tape.mul_scalar(&sum, 0.5)
}

/// HF `BertForQuestionAnswering`'s head: `qa_outputs` `[2, H]` on every token.
#[derive(Clone, Debug)]
pub struct SpanHead {
    /// `[2, H]` weights and `[2]` bias: row 0 scores answer starts, row 1 answer ends.
    pub qa_outputs: Linear,
}

impl SpanHead {
    /// Adds `qa_outputs.weight` (truncated normal σ = `initializer_range`) and
    /// `qa_outputs.bias` (zeros).
    pub fn new(config: &BertConfig, store: &mut ParamStore, seed: u64) -> Result<Self> {
        Ok(SpanHead {
            qa_outputs: Linear::new(
                store,
                "qa_outputs",
                2,
                config.hidden_size,
                config.initializer_range,
                seed ^ 0x51a4,
            )?,
        })
    }

    /// Start and end logits `[B, T]` of hidden states `[B, T, H]`.
    pub fn logits(&self, tape: &mut Tape, store: &ParamStore, hidden: &Var) -> Result<(Var, Var)> {
        let w = tape.param(store, self.qa_outputs.weight);
        let b = tape.param(store, self.qa_outputs.bias);
        span_logits(tape, hidden, &w, &b)
    }

    /// [`span_loss`] with the head's parameters.
    pub fn loss(
        &self,
        tape: &mut Tape,
        store: &ParamStore,
        hidden: &Var,
        starts: &[usize],
        ends: &[usize],
    ) -> Result<Var> {
        let w = tape.param(store, self.qa_outputs.weight);
        let b = tape.param(store, self.qa_outputs.bias);
        span_loss(tape, hidden, &w, &b, starts, ends)
    }
}
