//! Parameters: named tensors that live across training steps, with accumulated gradients.

use crate::autodiff::tape::Gradients;
use crate::error::{invalid, shape_err, Result};
use crate::tensor::Tensor;
use std::collections::HashMap;

/// Handle to a parameter in a [`ParamStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId {
    /// The store that made it (every store has its own tag).
    store: u64,
    index: usize,
}

static NEXT_STORE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl ParamId {
    /// Position in the store (insertion order).
    pub fn index(self) -> usize {
        self.index
    }
}

struct Param {
    name: String,
    value: Tensor,
    grad: Option<Tensor>,
}

/// Every parameter of a model, in insertion order, with its gradient accumulated over
/// backward passes until [`ParamStore::zero_grads`].
///
/// Each store tags its [`ParamId`]s, so gradients of a backward pass that used parameters of
/// several stores (a frozen encoder's store and a head's store, say) are each accumulated by
/// their own store, and a `ParamId` from another store is refused rather than mistaken for one
/// of this store's.
pub struct ParamStore {
    tag: u64,
    params: Vec<Param>,
    by_name: HashMap<String, ParamId>,
}

impl Default for ParamStore {
    fn default() -> ParamStore {
        ParamStore::new()
    }
}

impl ParamStore {
    /// An empty store; its ids are valid only in this store.
    pub fn new() -> ParamStore {
        ParamStore {
            tag: NEXT_STORE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            params: Vec::new(),
            by_name: HashMap::new(),
        }
    }

    /// The index of `id` in this store.
    ///
    /// # Panics
    /// If `id` was made by another store.
    fn slot(&self, id: ParamId) -> usize {
        assert!(
            id.store == self.tag && id.index < self.params.len(),
            "parameter id #{} belongs to another ParamStore",
            id.index
        );
        id.index
    }

    /// Whether `id` was made by this store.
    pub fn owns(&self, id: ParamId) -> bool {
        id.store == self.tag && id.index < self.params.len()
    }

    /// Adds a parameter; names must be unique.
    pub fn add(&mut self, name: impl Into<String>, value: Tensor) -> Result<ParamId> {
        let name = name.into();
        if self.by_name.contains_key(&name) {
            return invalid(
                "ParamStore::add",
                format!("a parameter named {name:?} exists already"),
            );
        }
        let id = ParamId {
            store: self.tag,
            index: self.params.len(),
        };
        self.by_name.insert(name.clone(), id);
        self.params.push(Param {
            name,
            value,
            grad: None,
        });
        Ok(id)
    }

    /// Number of parameters (tensors, not scalars; see [`ParamStore::num_elements`]).
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the store holds no parameter.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn num_elements(&self) -> usize {
        self.params.iter().map(|p| p.value.len()).sum()
    }

    /// Every parameter's id, in the order they were added.
    pub fn ids(&self) -> impl Iterator<Item = ParamId> {
        let tag = self.tag;
        (0..self.params.len()).map(move |index| ParamId { store: tag, index })
    }

    /// The id of the parameter called `name` (HF names such as `encoder.layer.0.output.dense.weight`).
    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.by_name.get(name).copied()
    }

    /// The name `id` was added under. Panics if `id` belongs to another store.
    pub fn name(&self, id: ParamId) -> &str {
        &self.params[self.slot(id)].name
    }

    /// The current value of `id`. Panics if `id` belongs to another store.
    pub fn value(&self, id: ParamId) -> &Tensor {
        &self.params[self.slot(id)].value
    }

    /// Mutable values (copy-on-write if a tape still holds the old value).
    pub fn value_mut(&mut self, id: ParamId) -> &mut [f32] {
        let i = self.slot(id);
        self.params[i].value.make_mut()
    }

    /// Replaces a value; the shape must stay the same.
    pub fn set_value(&mut self, id: ParamId, value: Tensor) -> Result<()> {
        let i = self.slot(id);
        let p = &mut self.params[i];
        if p.value.shape() != value.shape() {
            return shape_err(
                "ParamStore::set_value",
                format!(
                    "parameter {:?} has shape {:?}, new value {:?}",
                    p.name,
                    p.value.shape(),
                    value.shape()
                ),
            );
        }
        p.value = value;
        Ok(())
    }

    /// The accumulated gradient, if any backward pass reached this parameter since the last
    /// [`ParamStore::zero_grads`].
    pub fn grad(&self, id: ParamId) -> Option<&Tensor> {
        self.params[self.slot(id)].grad.as_ref()
    }

    /// The accumulated gradient as a mutable slice, created as zeros if no backward pass
    /// reached the parameter (data-parallel reduction needs every rank to send every gradient).
    pub fn grad_mut_or_zeros(&mut self, id: ParamId) -> &mut [f32] {
        let i = self.slot(id);
        let p = &mut self.params[i];
        p.grad
            .get_or_insert_with(|| Tensor::zeros(p.value.shape()))
            .make_mut()
    }

    /// Value and gradient at once (for optimizers).
    pub fn value_and_grad_mut(&mut self, id: ParamId) -> (&mut [f32], Option<&Tensor>) {
        let i = self.slot(id);
        let p = &mut self.params[i];
        (p.value.make_mut(), p.grad.as_ref())
    }

    /// Adds a backward pass's gradients of this store's parameters to the accumulated ones
    /// (gradients of other stores' parameters are left to those stores).
    pub fn accumulate(&mut self, grads: &Gradients) -> Result<()> {
        for (id, g) in grads.params() {
            if id.store != self.tag {
                continue; // another store's parameter: that store accumulates it
            }
            let p = self
                .params
                .get_mut(id.index)
                .ok_or_else(|| crate::Error::Invalid {
                    op: "ParamStore::accumulate",
                    detail: format!(
                        "gradient for parameter #{} which this store does not have",
                        id.index
                    ),
                })?;
            if g.shape() != p.value.shape() {
                return shape_err(
                    "ParamStore::accumulate",
                    format!(
                        "gradient {:?} for parameter {:?} of shape {:?}",
                        g.shape(),
                        p.name,
                        p.value.shape()
                    ),
                );
            }
            match &mut p.grad {
                None => p.grad = Some(g.clone()),
                Some(acc) => {
                    for (a, b) in acc.make_mut().iter_mut().zip(g.data()) {
                        *a += b;
                    }
                }
            }
        }
        Ok(())
    }

    /// Forgets every accumulated gradient.
    pub fn zero_grads(&mut self) {
        for p in &mut self.params {
            p.grad = None;
        }
    }

    /// The L2 norm of all gradients together, summed in f64 in parameter order
    /// (deterministic).
    pub fn grad_norm(&self) -> f32 {
        let mut ss = 0.0f64;
        for p in &self.params {
            if let Some(g) = &p.grad {
                ss += g
                    .data()
                    .iter()
                    .map(|&v| (v as f64) * (v as f64))
                    .sum::<f64>();
            }
        }
        ss.sqrt() as f32
    }

    /// The name of the first parameter (in insertion order) whose gradient holds a NaN or
    /// an infinity, if any.
    pub fn first_non_finite_grad(&self) -> Option<&str> {
        self.params
            .iter()
            .find(|p| {
                p.grad
                    .as_ref()
                    .is_some_and(|g| g.data().iter().any(|v| !v.is_finite()))
            })
            .map(|p| p.name.as_str())
    }

    /// The name of the first parameter (in insertion order) whose value holds a NaN or an
    /// infinity, if any.
    pub fn first_non_finite_value(&self) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.value.data().iter().any(|v| !v.is_finite()))
            .map(|p| p.name.as_str())
    }

    /// Scales all gradients so their global norm is at most `max_norm` (as TF's
    /// `clip_by_global_norm`); returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f32) -> Result<f32> {
        if max_norm.is_nan() || max_norm <= 0.0 {
            return invalid(
                "clip_grad_norm",
                format!("max_norm {max_norm} must be positive"),
            );
        }
        let norm = self.grad_norm();
        if norm > max_norm && norm.is_finite() {
            let scale = max_norm / norm;
            for p in &mut self.params {
                if let Some(g) = &mut p.grad {
                    for v in g.make_mut() {
                        *v *= scale;
                    }
                }
            }
        }
        Ok(norm)
    }
}
