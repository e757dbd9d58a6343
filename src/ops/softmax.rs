//! `softmax` and `log_softmax` over the last axis.
//!
//! Forward, per row x of the last axis: `y = softmax(x)`, `yⱼ = exp(xⱼ − m) / Σₖ exp(xₖ − m)`
//! with `m = max x` (so large logits do not overflow), and `log_softmax(x)ⱼ = xⱼ − logΣₖexp(xₖ)`.
//!
//! Backward, with `g` the output gradient, per row, from the saved **output** y (the input is
//! not kept):
//!
//! - softmax: `dx = y ⊙ (g − ⟨g, y⟩)` (the Jacobian is `diag(y) − y·yᵀ`);
//! - log_softmax: `dx = g − exp(y)·Σⱼ gⱼ` (the Jacobian is `I − 1·softmax(x)ᵀ`, and
//!   `softmax(x) = exp(y)`).
//!
//! Kernel: [`cloze_kernels::softmax`] (`softmax_rows`, `log_softmax_rows`,
//! `softmax_backward_rows`, `log_softmax_backward_rows`).

use crate::autodiff::tape::{Backward, Tape, Var};
use crate::error::{invalid, shape_err, Result};
use crate::tensor::Tensor;
use cloze_kernels::softmax as kernel;

struct SoftmaxBackward {
    log: bool,
    /// The op's output.
    y: Tensor,
}

impl Backward for SoftmaxBackward {
    fn name(&self) -> &'static str {
        if self.log {
            "log_softmax"
        } else {
            "softmax"
        }
    }
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let cols = *self.y.shape().last().expect("checked in forward");
        let y = self.y.data();
        let dx = Tensor::overwritten(self.y.shape(), |dx| {
            if self.log {
                kernel::log_softmax_backward_rows(y, g.data(), cols, dx)
            } else {
                kernel::softmax_backward_rows(y, g.data(), cols, dx)
            }
        });
        Ok(vec![Some(dx)])
    }
}

impl Tape {
    fn softmax_op(&mut self, log: bool, x: &Var) -> Result<Var> {
        let op = if log { "log_softmax" } else { "softmax" };
        let shape = x.shape();
        let Some(&cols) = shape.last() else {
            return shape_err(
                op,
                format!("needs at least one axis, got a 0-dimensional tensor (shape {shape:?})"),
            );
        };
        if cols == 0 {
            return invalid(
                op,
                format!("the last axis has length 0 (shape {shape:?}); softmax over no classes is undefined"),
            );
        }
        let out = Tensor::overwritten(shape, |y| {
            if log {
                kernel::log_softmax_rows(x.value().data(), cols, y)
            } else {
                kernel::softmax_rows(x.value().data(), cols, y)
            }
        });
        let y = out.clone();
        self.record(op, out, &[x], || SoftmaxBackward { log, y })
    }

    /// Softmax over the last axis.
    pub fn softmax(&mut self, x: &Var) -> Result<Var> {
        self.softmax_op(false, x)
    }

    /// Log-softmax over the last axis (more accurate than `log(softmax(x))` for small
    /// probabilities).
    pub fn log_softmax(&mut self, x: &Var) -> Result<Var> {
        self.softmax_op(true, x)
    }
}
