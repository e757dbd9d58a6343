//! LayerNorm over the last axis, `layer_norm`, and the post-LN residual form
//! `residual_layer_norm` = LayerNorm(x + residual) used after every BERT sublayer.
//!
//! For a row `x` of `H` values: `μ = mean(x)`, `σ² = mean((x − μ)²)` (biased),
//! `rstd = 1/√(σ² + eps)`, `x̂ = (x − μ)·rstd`, `y = x̂ ⊙ γ + β`.
//!
//! # Backward
//!
//! With `g = dy ⊙ γ`, per row:
//!
//! ```text
//! dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂))
//! dγ = Σ_rows dy ⊙ x̂        dβ = Σ_rows dy
//! ```
//!
//! The forward saves the (summed) input, `γ`, and `μ`, `rstd` per row. For the residual form
//! both `x` and `residual` receive `dx`, since `∂(x + r)/∂x = ∂(x + r)/∂r = I`.
//!
//! Kernel: [`cloze_kernels::layer_norm`] (`forward`, `residual_forward`, `backward`).

use crate::autodiff::tape::{Backward, Tape, Var};
use crate::error::{invalid, shape_err, Result};
use crate::tensor::pool;
use crate::tensor::Tensor;
use cloze_kernels::layer_norm;

struct LayerNormBackward {
    /// The normalised input (`x + residual` for the residual form).
    input: Tensor,
    gamma: Tensor,
    mean: Vec<f32>,
    rstd: Vec<f32>,
    /// Inputs were `[x, residual, gamma, beta]` rather than `[x, gamma, beta]`.
    residual: bool,
}

impl Backward for LayerNormBackward {
    fn name(&self) -> &'static str {
        if self.residual {
            "residual_layer_norm"
        } else {
            "layer_norm"
        }
    }

    fn backward(&self, dy: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let h = self.gamma.len();
        let mut dx = pool::take(self.input.len());
        let mut dgamma = vec![0.0; h];
        let mut dbeta = vec![0.0; h];
        layer_norm::backward(
            dy.data(),
            self.input.data(),
            self.gamma.data(),
            &self.mean,
            &self.rstd,
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        );
        let dx = Tensor::from_parts(dx, self.input.shape());
        let dgamma = Tensor::from_parts(dgamma, &[h]);
        let dbeta = Tensor::from_parts(dbeta, &[h]);
        Ok(if self.residual {
            vec![
                needs[0].then(|| dx.clone()),
                needs[1].then_some(dx),
                needs[2].then_some(dgamma),
                needs[3].then_some(dbeta),
            ]
        } else {
            vec![
                needs[0].then_some(dx),
                needs[1].then_some(dgamma),
                needs[2].then_some(dbeta),
            ]
        })
    }
}

/// Checks `x [..., H]`, `gamma [H]`, `beta [H]`, `eps > 0`; returns `(rows, H)`.
fn check(op: &'static str, x: &Var, gamma: &Var, beta: &Var, eps: f32) -> Result<(usize, usize)> {
    let (sx, sg, sb) = (x.shape(), gamma.shape(), beta.shape());
    let h = match sx.last() {
        Some(&h) if h > 0 => h,
        _ => {
            return shape_err(
                op,
                format!("x {sx:?} needs a non-empty last axis to normalise over"),
            )
        }
    };
    if sg != [h] || sb != [h] {
        return shape_err(
            op,
            format!("gamma {sg:?} and beta {sb:?} must both be [{h}] for x {sx:?}"),
        );
    }
    if !(eps.is_finite() && eps > 0.0) {
        return invalid(
            op,
            format!("eps = {eps} must be finite and > 0 (a constant row would divide by 0)"),
        );
    }
    Ok((x.value().len() / h, h))
}

impl Tape {
    /// LayerNorm over the last axis of `x [..., H]` with weight `gamma [H]` and bias
    /// `beta [H]` (see the module docs). Errors on mismatched shapes or `eps ≤ 0`.
    pub fn layer_norm(&mut self, x: &Var, gamma: &Var, beta: &Var, eps: f32) -> Result<Var> {
        const OP: &str = "layer_norm";
        let (rows, _) = check(OP, x, gamma, beta, eps)?;
        let mut y = pool::take(x.value().len());
        let mut mean = vec![0.0; rows];
        let mut rstd = vec![0.0; rows];
        layer_norm::forward(
            x.value().data(),
            gamma.value().data(),
            beta.value().data(),
            eps,
            &mut y,
            &mut mean,
            &mut rstd,
        );
        let out = Tensor::from_parts(y, x.shape());
        self.record(OP, out, &[x, gamma, beta], || LayerNormBackward {
            input: x.value().clone(),
            gamma: gamma.value().clone(),
            mean,
            rstd,
            residual: false,
        })
    }

    /// `LayerNorm(x + residual)` (BERT's post-LN), fused: `x` and `residual` have the same
    /// shape `[..., H]`; both receive the gradient of the sum.
    pub fn residual_layer_norm(
        &mut self,
        x: &Var,
        residual: &Var,
        gamma: &Var,
        beta: &Var,
        eps: f32,
    ) -> Result<Var> {
        const OP: &str = "residual_layer_norm";
        if x.shape() != residual.shape() {
            return shape_err(
                OP,
                format!(
                    "x {:?} and residual {:?} must have the same shape",
                    x.shape(),
                    residual.shape()
                ),
            );
        }
        let (rows, _) = check(OP, x, gamma, beta, eps)?;
        let n = x.value().len();
        let (mut sum, mut y) = (pool::take(n), pool::take(n));
        let mut mean = vec![0.0; rows];
        let mut rstd = vec![0.0; rows];
        layer_norm::residual_forward(
            x.value().data(),
            residual.value().data(),
            gamma.value().data(),
            beta.value().data(),
            eps,
            &mut sum,
            &mut y,
            &mut mean,
            &mut rstd,
        );
        let out = Tensor::from_parts(y, x.shape());
        let sum = Tensor::from_parts(sum, x.shape());
        self.record(OP, out, &[x, residual, gamma, beta], || LayerNormBackward {
            input: sum,
            gamma: gamma.value().clone(),
            mean,
            rstd,
            residual: true,
        })
    }
}
