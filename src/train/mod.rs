//! Training infrastructure that knows nothing of BERT: crash-safe checkpoint directories,
//! optimiser-state files and the JSON-lines metrics log.

pub mod checkpoint;
pub mod lock;
pub mod metrics;

use crate::autodiff::params::ParamStore;
use crate::error::{Error, Result};

/// Stops a run on a non-finite loss or gradient norm, before the optimiser step, so no
/// checkpoint or final model is ever written with NaN or infinite weights.
///
/// `losses` are the step's losses by name (e.g. `lm_loss`); `norm` is the global gradient
/// norm before clipping; `stores` are the parameter stores whose gradients fed it. The error
/// names the step, the offending loss or norm, and the first parameter whose gradient is
/// non-finite.
pub fn ensure_finite_step(
    step: u64,
    losses: &[(&str, f64)],
    norm: f32,
    stores: &[&ParamStore],
) -> Result<()> {
    let norm = ("gradient norm", f64::from(norm));
    let Some((name, v)) = losses.iter().chain([&norm]).find(|(_, v)| !v.is_finite()) else {
        return Ok(());
    };
    let bad_grad = stores
        .iter()
        .find_map(|s| s.first_non_finite_grad())
        .map(|n| format!("; first non-finite gradient: {n}"))
        .unwrap_or_default();
    Err(Error::Invalid {
        op: "train",
        detail: format!(
            "step {step}: {name} is {v}{bad_grad}; stopping before the update (lower the learning rate?)"
        ),
    })
}

/// Refuses to write a model whose weights hold NaN or infinities, naming the first such
/// parameter.
pub fn ensure_finite_weights(stores: &[&ParamStore], what: &str) -> Result<()> {
    if let Some(n) = stores.iter().find_map(|s| s.first_non_finite_value()) {
        return Err(Error::Invalid {
            op: "train",
            detail: format!("refusing to write {what}: parameter {n} holds a non-finite value"),
        });
    }
    Ok(())
}
