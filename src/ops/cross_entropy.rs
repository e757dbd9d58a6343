//! Cross-entropy from logits with an ignore label: the masked-LM and classification loss.
//!
//! For logits `[..., C]` (rows = all leading axes, one label per row) and the set `R` of rows
//! whose label is not `ignore_index`, with `n = |R|`:
//!
//! ```text
//! loss = (1/n) Σ_{r∈R} −log softmax(x_r)[y_r] = (1/n) Σ_{r∈R} (logsumexp(x_r) − x_r[y_r])
//! ```
//!
//! # Backward
//!
//! `∂loss/∂x_r = (softmax(x_r) − onehot(y_r)) / n` for `r ∈ R`, and 0 for ignored rows. The
//! kernel computes the loss and this gradient in one pass (each `softmax − onehot` value rounded
//! to f32, then times `1/n`); the forward saves it, and the backward hands it on as it is when
//! `grad_out` is 1 (a loss backpropagated directly, or through sums), so no pass over the
//! `rows × C` gradient is left for the backward; any other `grad_out` multiplies it once more.
//! (Before, the backward scaled the summed loss's gradient by `grad_out / n` in a pass of its
//! own: the same values when `grad_out` is 1.)
//!
//! # Every label ignored
//!
//! With `n = 0` the loss is defined as **0 with a zero gradient** (a batch with nothing to
//! predict contributes nothing), matching BERT's reference `Σ / (n + 1e-5)`, which gives 0.
//!
//! Kernel: [`cloze_kernels::cross_entropy::cross_entropy_scaled`].

use crate::autodiff::tape::{Backward, Tape, Var};
use crate::error::{invalid, shape_err, Result};
use crate::tensor::Tensor;
use cloze_kernels::cross_entropy;

struct CrossEntropyBackward {
    /// Gradient of the mean loss: `(softmax − onehot)·(1/n)` on counted rows (each value
    /// rounded to f32 before the scaling, which rounds once more), zeros on ignored rows and
    /// when every label was ignored.
    dmean: Tensor,
}

impl Backward for CrossEntropyBackward {
    fn name(&self) -> &'static str {
        "cross_entropy"
    }

    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        // A loss backpropagated as is (g = 1, the common case) takes the forward's gradient
        // without another pass over it: the same values as `d·(g/n)`. Otherwise one multiply
        // by g (one rounding more than scaling the unscaled gradient by g/n would give).
        let g = g.data()[0];
        if g == 1.0 {
            return Ok(vec![Some(self.dmean.clone())]);
        }
        let out = Tensor::overwritten(self.dmean.shape(), |o| {
            for (o, &d) in o.iter_mut().zip(self.dmean.data()) {
                *o = d * g;
            }
        });
        Ok(vec![Some(out)])
    }
}

impl Tape {
    /// Mean cross-entropy of `logits` (`[..., C]`) against `labels` (one per row, in row-major
    /// order of the leading axes) over rows whose label is not `ignore_index`; a 0-d result.
    /// If every label is ignored the loss is 0 with a zero gradient (see the module docs).
    ///
    /// Errors: logits with no axes or `C == 0`; a label count that is not the row count; a
    /// label that is neither `ignore_index` nor in `0..C` (naming the label, its row and `C`).
    pub fn cross_entropy(
        &mut self,
        logits: &Var,
        labels: &[i32],
        ignore_index: i32,
    ) -> Result<Var> {
        const OP: &str = "cross_entropy";
        let shape = logits.shape();
        let Some(&classes) = shape.last() else {
            return shape_err(OP, "logits must have a class axis, got a 0-d tensor");
        };
        if classes == 0 {
            return shape_err(OP, format!("logits {shape:?} have 0 classes"));
        }
        let rows = logits.value().len() / classes;
        if labels.len() != rows {
            return shape_err(
                OP,
                format!(
                    "{} labels for logits {shape:?}, which have {rows} rows of {classes} classes",
                    labels.len()
                ),
            );
        }
        for (r, &label) in labels.iter().enumerate() {
            if label != ignore_index && (label < 0 || label as usize >= classes) {
                return invalid(
                    OP,
                    format!(
                        "label {label} at row {r} is outside 0..{classes} (C = {classes}) and is not the ignore index {ignore_index}"
                    ),
                );
            }
        }
        let want_grad = self.grad_enabled() && logits.requires_grad();
        let count = labels.iter().filter(|&&l| l != ignore_index).count();
        let inv_count = if count == 0 {
            0.0
        } else {
            (1.0 / count as f64) as f32
        };
        // The kernel writes the mean loss's gradient, scaled as it goes.
        let mut dmean = want_grad.then(|| crate::tensor::pool::take(logits.value().len()));
        let ce = cross_entropy::cross_entropy_scaled(
            logits.value().data(),
            classes,
            labels,
            ignore_index,
            dmean.as_deref_mut(),
            inv_count,
        );
        debug_assert_eq!(ce.count, count);
        let loss = if ce.count == 0 {
            0.0
        } else {
            (ce.loss_sum / ce.count as f64) as f32
        };
        let shape = shape.to_vec();
        self.record(OP, Tensor::scalar(loss), &[logits], move || {
            CrossEntropyBackward {
                dmean: Tensor::from_parts(
                    dmean.expect("computed when a gradient is recorded"),
                    &shape,
                ),
            }
        })
    }
}
