//! AdamW over a [`ParamStore`], through the fused [`cloze_kernels::adamw`] kernel.

use crate::autodiff::params::{ParamId, ParamStore};
use crate::error::{invalid, shape_err, Result};
use cloze_kernels::adamw as kernel;

/// Hyper-parameters. [`AdamWConfig::bert`] gives the reference BERT optimiser.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// Decay rate of the first-moment (gradient mean) estimate (BERT: 0.9).
    pub beta1: f32,
    /// Decay rate of the second-moment (squared gradient) estimate (BERT: 0.999).
    pub beta2: f32,
    /// ε added to the square root of the second moment (BERT: 1e-6).
    pub eps: f32,
    /// Decoupled weight decay applied to parameters that [`AdamW::new`]'s rule selects.
    pub weight_decay: f32,
    /// Textbook Adam's division by 1−βᵗ. BERT's reference optimiser omits it.
    pub bias_correction: bool,
}

impl AdamWConfig {
    /// BERT's `AdamWeightDecayOptimizer`: β (0.9, 0.999), ε 1e-6, decay 0.01, no bias correction.
    pub fn bert() -> AdamWConfig {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-6,
            weight_decay: 0.01,
            bias_correction: false,
        }
    }

    fn validate(&self) -> Result<()> {
        let ok = (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps > 0.0
            && self.weight_decay >= 0.0;
        if !ok {
            return invalid(
                "AdamW",
                format!("invalid hyper-parameters {self:?} (need 0 ≤ β < 1, ε > 0, decay ≥ 0)"),
            );
        }
        Ok(())
    }
}

/// BERT's decay rule: every parameter decays except those whose name contains `LayerNorm`,
/// `layer_norm` or `bias`.
pub fn bert_decays(name: &str) -> bool {
    !(name.contains("LayerNorm") || name.contains("layer_norm") || name.contains("bias"))
}

/// AdamW state: first and second moments per parameter, and the step count.
pub struct AdamW {
    config: AdamWConfig,
    decays: Vec<bool>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    step: u64,
}

impl AdamW {
    /// Optimiser for every parameter of `store`; `decays(name)` picks which ones get weight decay.
    pub fn new(
        config: AdamWConfig,
        store: &ParamStore,
        decays: impl Fn(&str) -> bool,
    ) -> Result<AdamW> {
        config.validate()?;
        let ids: Vec<ParamId> = store.ids().collect();
        Ok(AdamW {
            config,
            decays: ids.iter().map(|&id| decays(store.name(id))).collect(),
            m: ids
                .iter()
                .map(|&id| vec![0.0; store.value(id).len()])
                .collect(),
            v: ids
                .iter()
                .map(|&id| vec![0.0; store.value(id).len()])
                .collect(),
            step: 0,
        })
    }

    /// The hyper-parameters the optimiser was built with.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Whether parameter `id` gets weight decay.
    pub fn decays(&self, id: ParamId) -> bool {
        self.decays[id.index()]
    }

    /// One update with learning rate `lr`. Parameters without a gradient are left alone (as
    /// TensorFlow's `apply_gradients` does for variables with no gradient).
    pub fn step(&mut self, store: &mut ParamStore, lr: f32) -> Result<()> {
        if store.len() != self.m.len() {
            return invalid(
                "AdamW::step",
                format!(
                    "store has {} parameters, the optimiser was built for {}",
                    store.len(),
                    self.m.len()
                ),
            );
        }
        if !lr.is_finite() || lr < 0.0 {
            return invalid(
                "AdamW::step",
                format!("learning rate {lr} must be finite and ≥ 0"),
            );
        }
        self.step += 1;
        let ids: Vec<ParamId> = store.ids().collect();
        for id in ids {
            let i = id.index();
            let h = kernel::AdamW {
                lr,
                beta1: self.config.beta1,
                beta2: self.config.beta2,
                eps: self.config.eps,
                weight_decay: if self.decays[i] {
                    self.config.weight_decay
                } else {
                    0.0
                },
                bias_correction: self.config.bias_correction,
            };
            let (value, grad) = store.value_and_grad_mut(id);
            let Some(grad) = grad else { continue };
            kernel::step(
                &h,
                self.step,
                value,
                grad.data(),
                &mut self.m[i],
                &mut self.v[i],
            );
        }
        Ok(())
    }

    /// The moments of one parameter, for checkpoints.
    pub fn moments(&self, id: ParamId) -> (&[f32], &[f32]) {
        (&self.m[id.index()], &self.v[id.index()])
    }

    /// Restores the state written by a checkpoint.
    pub fn restore(&mut self, step: u64, id: ParamId, m: &[f32], v: &[f32]) -> Result<()> {
        let i = id.index();
        if i >= self.m.len() || m.len() != self.m[i].len() || v.len() != self.v[i].len() {
            return shape_err(
                "AdamW::restore",
                format!(
                    "state for parameter #{i}: m {} and v {} elements, expected {}",
                    m.len(),
                    v.len(),
                    self.m.get(i).map_or(0, Vec::len)
                ),
            );
        }
        self.m[i].copy_from_slice(m);
        self.v[i].copy_from_slice(v);
        self.step = step;
        Ok(())
    }
}
