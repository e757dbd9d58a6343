//! Dropout: `y = x ⊙ m / (1 − p)` with a seeded keep-mask `m ∈ {0, 1}`.
//!
//! # The mask
//!
//! Element `i` is kept when a counter-based hash of `(seed, i)` is at least `round(p·2³²)`
//! ([`cloze_kernels::attention::dropout_keep`], the function the fused attention kernel uses):
//! the mask depends only on `(seed, p, i)`, so the same seed gives the same mask on any number
//! of threads, any element's bit can be regenerated on its own, and attention dropout over a
//! `[B, heads, Tq, Tk]` tensor drops exactly what `Tape::dropout` over that tensor would. Each
//! element is kept with probability `1 − p` (to 2⁻³²). Kept elements are divided by `1 − p`
//! (in f32, so a kept value is exactly `x / (1 − p)` as f32 computes it), which keeps the
//! expectation unchanged.
//!
//! No mask is stored: the backward regenerates each bit from its index.
//! [`Tape::dropout`] is the identity when the tape is not in training mode or `p == 0`.
//!
//! # Backward
//!
//! `dx = dy ⊙ m / (1 − p)`: the same mask and scale applied to the output gradient.
//!
//! Kernel: [`cloze_kernels::dropout::apply`] (the hash vectorised, one vector of consecutive
//! indices at a time), forward and backward; its mask is
//! [`cloze_kernels::attention::dropout_keep`]'s.

use crate::autodiff::tape::{Backward, Tape, Var};
use crate::error::{invalid, Result};
use crate::tensor::Tensor;

pub(crate) fn check_p(op: &'static str, p: f32) -> Result<()> {
    if !(0.0..1.0).contains(&p) {
        return invalid(op, format!("dropout probability p = {p} is outside [0, 1)"));
    }
    Ok(())
}

/// The dropout mask of `(seed, p)` over `len` elements. Nothing is stored: the kernel
/// regenerates each element's bit from its index, in the forward and again in the backward.
pub(crate) struct Mask {
    seed: u64,
    p: f32,
    len: usize,
}

impl Mask {
    /// The mask of `(seed, p)` over elements `0..len`. `p` must be in [0, 1).
    pub(crate) fn new(seed: u64, p: f32, len: usize) -> Mask {
        Mask { seed, p, len }
    }

    /// `out[i] = x[i] / (1 − p)` where kept, `0` where dropped.
    pub(crate) fn apply(&self, x: &[f32], out: &mut [f32]) {
        assert!(
            x.len() == self.len && out.len() == self.len,
            "dropout mask of {} elements applied to {} into {}",
            self.len,
            x.len(),
            out.len()
        );
        cloze_kernels::dropout::apply(self.seed, self.p, x, out);
    }

    /// [`Mask::apply`] into a new tensor of `shape`.
    pub(crate) fn apply_tensor(&self, x: &Tensor) -> Tensor {
        Tensor::overwritten(x.shape(), |out| self.apply(x.data(), out))
    }
}

struct DropoutBackward {
    mask: Mask,
}

impl Backward for DropoutBackward {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(self.mask.apply_tensor(g))])
    }
}

impl Tape {
    /// Dropout with probability `p` (each element is zeroed with probability `p`, kept ones
    /// scaled by `1/(1 − p)`), its mask fixed by `seed` (see the module docs). The identity
    /// (the same `Var`) when the tape is not in training mode or `p == 0`.
    ///
    /// Errors if `p` is not in [0, 1).
    pub fn dropout(&mut self, x: &Var, p: f32, seed: u64) -> Result<Var> {
        check_p("dropout", p)?;
        if !self.training() || p == 0.0 {
            return Ok(x.clone());
        }
        let mask = Mask::new(seed, p, x.value().len());
        let out = mask.apply_tensor(x.value());
        self.record("dropout", out, &[x], || DropoutBackward { mask })
    }
}
