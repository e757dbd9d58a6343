//! `gradcheck`: compares the tape's gradients with central finite differences.
//!
//! # Method
//!
//! The function under test may return a tensor of any shape. gradcheck reduces it to a scalar
//! with a fixed random projection, `L(x) = Σ f(x)ᵢ·Rᵢ` (R uniform in [−1, 1], seeded), so every
//! output element takes part and errors cannot cancel by symmetry. The analytic gradient is
//! the tape's backward of `f` seeded with `R`; the numeric gradient of each input element is
//!
//! ```text
//! (L(x + h) − L(x − h)) / ((x + h) − (x − h))
//! ```
//!
//! # Why the step and tolerances are what they are (f32)
//!
//! The ops compute in f32, so `L` carries rounding noise of about ε·‖f‖ (ε = 2⁻²³ ≈ 1.2e-7,
//! amplified by long reductions), and the central difference carries a truncation error of
//! about h²·|f'''|/6. The sum of the two is smallest near h ≈ ε^(1/3) ≈ 5e-3 relative to the
//! value's magnitude, which is the default `rel_step` (h = rel_step·max(1, |x|)). Three details
//! keep the numeric side honest:
//!
//! - the projection sum `L` is accumulated in f64, so the only f32 noise left is the op's own;
//! - the denominator is the difference of the two perturbed inputs *as stored in f32*, not the
//!   nominal 2h, removing the error of rounding `x ± h` to f32;
//! - the comparison is `|analytic − numeric| ≤ atol + rtol·|numeric|` per element, with defaults
//!   `atol = 2e-3`, `rtol = 2e-2`: a few times the noise just described for inputs of order 1
//!   and outputs of a few hundred elements. Raise `atol` in proportion for much larger outputs
//!   or values, and keep inputs away from kinks (ReLU at 0) where no finite difference is
//!   meaningful.

use crate::autodiff::tape::{Tape, Var};
use crate::error::{invalid, Result};
use crate::tensor::Tensor;
use rand::{Rng, SeedableRng};

/// Step and tolerances; see the module documentation for how the defaults were chosen.
#[derive(Clone, Debug)]
pub struct GradcheckOptions {
    /// h = rel_step · max(1, |x|).
    pub rel_step: f32,
    /// Absolute tolerance: an element passes when |analytic − numeric| ≤ `atol + rtol·|numeric|`.
    pub atol: f32,
    /// Relative tolerance (see `atol`).
    pub rtol: f32,
    /// Seed of the random projection R.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            rel_step: 5e-3,
            atol: 2e-3,
            rtol: 2e-2,
            seed: 0x5eed,
        }
    }
}

/// What gradcheck found for one input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputReport {
    /// Largest |analytic − numeric|.
    pub max_abs_err: f32,
    /// Largest |analytic − numeric| / max(|numeric|, atol).
    pub max_rel_err: f32,
    /// Flat index of the element with the largest excess over the tolerance (or error).
    pub worst_index: usize,
    /// The backward's value at `worst_index`.
    pub worst_analytic: f32,
    /// The central-difference estimate at `worst_index`.
    pub worst_numeric: f32,
    /// Elements outside `atol + rtol·|numeric|`.
    pub failures: usize,
}

/// gradcheck's result: one report per input.
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    /// One report per input tensor, in the order the inputs were given.
    pub inputs: Vec<InputReport>,
}

impl GradcheckReport {
    /// Whether every element of every input was within tolerance.
    pub fn passed(&self) -> bool {
        self.inputs.iter().all(|r| r.failures == 0)
    }
}

impl std::fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.inputs.iter().enumerate() {
            writeln!(
                f,
                "input {i}: max abs err {:.3e}, max rel err {:.3e}, {} failing; worst at [{}]: analytic {} vs numeric {}",
                r.max_abs_err, r.max_rel_err, r.failures, r.worst_index, r.worst_analytic, r.worst_numeric
            )?;
        }
        Ok(())
    }
}

/// Checks the gradients of `f` with respect to every input against finite differences.
///
/// ```
/// use cloze::{gradcheck, GradcheckOptions, Tensor};
/// let x = Tensor::from_vec(vec![0.3, -1.2, 2.0], &[3]).unwrap();
/// let report = gradcheck(
///     |t, v| { let y = t.mul(&v[0], &v[0])?; t.mul(&y, &v[0]) }, // x³
///     &[x],
///     &GradcheckOptions::default(),
/// ).unwrap();
/// assert!(report.passed(), "{report}");
/// ```
pub fn gradcheck<F>(f: F, inputs: &[Tensor], opts: &GradcheckOptions) -> Result<GradcheckReport>
where
    F: Fn(&mut Tape, &[Var]) -> Result<Var>,
{
    if inputs.is_empty() {
        return invalid("gradcheck", "no inputs to check");
    }
    // Analytic gradients, seeded with the projection R.
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    let out = f(&mut tape, &vars)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let r: Vec<f32> = (0..out.value().len())
        .map(|_| rng.random_range(-1.0f32..=1.0))
        .collect();
    let r_t = Tensor::from_vec(r.clone(), out.shape())?;
    let grads = tape.backward_with(&out, r_t)?;

    let project = |vals: &[Tensor]| -> Result<f64> {
        let mut t = Tape::new();
        t.set_grad_enabled(false);
        let vs: Vec<Var> = vals.iter().map(|v| Var::constant(v.clone())).collect();
        let y = f(&mut t, &vs)?;
        if y.value().len() != r.len() {
            return invalid(
                "gradcheck",
                "the function's output size changed between calls",
            );
        }
        Ok(y.value()
            .data()
            .iter()
            .zip(&r)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum())
    };

    let mut reports = Vec::with_capacity(inputs.len());
    let mut work: Vec<Tensor> = inputs.to_vec();
    for (i, var) in vars.iter().enumerate() {
        let zeros = Tensor::zeros(inputs[i].shape());
        let analytic = grads.get(var).unwrap_or(&zeros).clone();
        let mut rep = InputReport {
            max_abs_err: 0.0,
            max_rel_err: 0.0,
            worst_index: 0,
            worst_analytic: 0.0,
            worst_numeric: 0.0,
            failures: 0,
        };
        let mut worst_excess = f32::NEG_INFINITY;
        for j in 0..inputs[i].len() {
            let x = inputs[i].data()[j];
            let h = opts.rel_step * x.abs().max(1.0);
            let (xp, xm) = (x + h, x - h);
            work[i].make_mut()[j] = xp;
            let lp = project(&work)?;
            work[i].make_mut()[j] = xm;
            let lm = project(&work)?;
            work[i].make_mut()[j] = x;
            let numeric = ((lp - lm) / (xp as f64 - xm as f64)) as f32;
            let a = analytic.data()[j];
            let err = (a - numeric).abs();
            let tol = opts.atol + opts.rtol * numeric.abs();
            let rel = err / numeric.abs().max(opts.atol);
            rep.max_abs_err = rep.max_abs_err.max(err);
            rep.max_rel_err = rep.max_rel_err.max(rel);
            let excess = if err.is_nan() {
                f32::INFINITY
            } else {
                err - tol
            };
            if err.is_nan() || err > tol {
                rep.failures += 1;
            }
            if excess > worst_excess {
                worst_excess = excess;
                rep.worst_index = j;
                rep.worst_analytic = a;
                rep.worst_numeric = numeric;
            }
        }
        reports.push(rep);
    }
    Ok(GradcheckReport { inputs: reports })
}
