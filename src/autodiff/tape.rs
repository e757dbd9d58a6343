//! The tape: records every op of a forward pass and runs reverse-mode backward over it.
//!
//! # How it works
//!
//! A forward pass produces [`Var`]s. A `Var` is a [`Tensor`] value plus, when it takes part in
//! differentiation, the id of the tape node that made it. Every op (see `crate::ops`) computes
//! its output from its inputs' values and then calls [`Tape::record`] with
//!
//! 1. the output value,
//! 2. the input `Var`s, and
//! 3. a closure that builds the op's [`Backward`]: an object holding whatever the op saved for
//!    its backward (inputs, softmax outputs, LayerNorm statistics, a dropout mask, …).
//!
//! `record` appends a node `{inputs, backward}` to the tape. Because an op can only consume
//! `Var`s that already exist, nodes are appended in topological order, and walking the tape
//! from the end backwards visits every node after all of its consumers.
//!
//! [`Tape::backward`] seeds the loss's gradient with 1 and walks the nodes in reverse. For each
//! node that received a gradient, it asks the node's `Backward` for the gradients of its inputs
//! (the vector–Jacobian product) and **adds** each into that input's slot. Adding is what makes
//! a value used twice receive both contributions. Leaves (inputs made with [`Tape::leaf`]) and
//! parameters (made with [`Tape::param`]) keep their gradient; all other gradients are dropped
//! as soon as they have been propagated. The result is a [`Gradients`].
//!
//! # Rules the tape enforces
//!
//! - **No silent graph cuts.** `record` is the only way an op returns a `Var`. If gradients are
//!   enabled and any input needs one, the op's backward is recorded; ops without a backward
//!   call [`Tape::forbid_grad`], which fails with an error naming the op.
//! - **No grad mode** ([`Tape::no_grad`]): nothing is recorded and the backward closure is never
//!   run, so no activations are held beyond the `Var`s the caller keeps.
//! - **Reuse**: [`Tape::reset`] clears the nodes but keeps the node vector's capacity, and the
//!   freed activation buffers return to the tensor pool for the next step. `Var`s from before a
//!   reset carry an older generation number and are refused with [`Error::StaleVar`].
//! - **Determinism**: the walk order is fixed by the recording order, so the same inputs give
//!   bit-identical gradients.

use crate::autodiff::params::ParamId;
use crate::error::{shape_err, Error, Result};
use crate::tensor::Tensor;

/// The backward half of an op: maps the gradient of the op's output to the gradients of its
/// inputs.
pub trait Backward: Send + Sync {
    /// The op's name, used in error messages.
    fn name(&self) -> &'static str;

    /// `grad_out` has the shape of the op's output. Returns one entry per input, in the order
    /// the inputs were given to [`Tape::record`]; entry `i` must be `Some` (with input `i`'s
    /// shape) when `needs[i]` is true, and may be `None` otherwise.
    fn backward(&self, grad_out: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>>;
}

/// A value in a computation, with its place on the tape if it takes part in differentiation.
#[derive(Clone, Debug)]
pub struct Var {
    value: Tensor,
    node: Option<NodeRef>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NodeRef {
    id: usize,
    generation: u64,
}

impl Var {
    /// A value that needs no gradient (data, masks, labels turned into tensors, …).
    pub fn constant(value: Tensor) -> Var {
        Var { value, node: None }
    }

    /// The forward value.
    pub fn value(&self) -> &Tensor {
        &self.value
    }

    /// The forward value's shape.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// Whether gradients flow into this value.
    pub fn requires_grad(&self) -> bool {
        self.node.is_some()
    }

    /// The same value cut from the graph.
    pub fn detach(&self) -> Var {
        Var::constant(self.value.clone())
    }
}

enum NodeKind {
    /// A user input made with [`Tape::leaf`].
    Leaf,
    /// A parameter from a [`crate::ParamStore`].
    Param(ParamId),
    /// The output of an op.
    Op {
        inputs: Vec<Option<usize>>,
        backward: Box<dyn Backward>,
    },
}

struct Node {
    kind: NodeKind,
    shape: Vec<usize>,
}

/// The recorder. One per training loop; [`Tape::reset`] between steps.
pub struct Tape {
    nodes: Vec<Node>,
    generation: u64,
    grad_enabled: bool,
    training: bool,
    precision: Precision,
}

/// Number format of matrix-product operands ([`Tape::set_precision`]).
///
/// Parameters, activations, gradients and optimiser state stay f32 in both; only the operands
/// of the matrix products (`matmul`, `bmm`, and their backward products) change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Precision {
    /// f32 operands (the default).
    #[default]
    #[serde(rename = "f32")]
    F32,
    /// bf16 operands (rounded to nearest even), f32 accumulation and f32 results: mixed
    /// precision as CPU autocast does it. Fast only where
    /// [`cloze_kernels::gemm::bf16::native`] holds (AVX-512 with AVX512-BF16); elsewhere the
    /// products give the same values as there, but no faster than f32.
    #[serde(rename = "bf16")]
    Bf16,
}

impl Precision {
    /// Whether this is the default, f32.
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

impl Default for Tape {
    fn default() -> Tape {
        Tape::new()
    }
}

impl Tape {
    /// An empty tape, recording gradients, in training mode (dropout active).
    pub fn new() -> Tape {
        Tape {
            nodes: Vec::new(),
            generation: 0,
            grad_enabled: true,
            training: true,
            precision: Precision::F32,
        }
    }

    /// Operand format of the matrix products recorded from now on.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Sets the operand format of matrix products; returns the previous setting.
    pub fn set_precision(&mut self, precision: Precision) -> Precision {
        std::mem::replace(&mut self.precision, precision)
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether nothing has been recorded since the last reset.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether ops record their backward.
    pub fn grad_enabled(&self) -> bool {
        self.grad_enabled
    }

    /// Turns recording on or off; returns the previous setting.
    pub fn set_grad_enabled(&mut self, enabled: bool) -> bool {
        std::mem::replace(&mut self.grad_enabled, enabled)
    }

    /// Training mode (the default): dropout is active. In eval mode it is the identity.
    pub fn training(&self) -> bool {
        self.training
    }

    /// Switches between training and eval mode; returns the previous setting.
    pub fn set_training(&mut self, training: bool) -> bool {
        std::mem::replace(&mut self.training, training)
    }

    /// Runs `f` with recording off (inference): nothing is recorded, nothing is saved.
    pub fn no_grad<R>(&mut self, f: impl FnOnce(&mut Tape) -> R) -> R {
        let previous = self.set_grad_enabled(false);
        let out = f(self);
        self.grad_enabled = previous;
        out
    }

    /// Forgets every node (their saved activations are freed into the buffer pool) and starts
    /// a new generation. Keeps the node vector's capacity for the next step.
    pub fn reset(&mut self) {
        self.nodes.clear();
        self.generation += 1;
    }

    fn push(&mut self, kind: NodeKind, value: &Tensor) -> NodeRef {
        self.nodes.push(Node {
            kind,
            shape: value.shape().to_vec(),
        });
        NodeRef {
            id: self.nodes.len() - 1,
            generation: self.generation,
        }
    }

    /// An input whose gradient is wanted. With recording off it is a constant.
    pub fn leaf(&mut self, value: Tensor) -> Var {
        if !self.grad_enabled {
            return Var::constant(value);
        }
        let node = self.push(NodeKind::Leaf, &value);
        Var {
            value,
            node: Some(node),
        }
    }

    /// A parameter's current value, as a leaf whose gradient [`Gradients`] reports under
    /// its [`ParamId`].
    pub fn param(&mut self, store: &crate::ParamStore, id: ParamId) -> Var {
        let value = store.value(id).clone();
        if !self.grad_enabled {
            return Var::constant(value);
        }
        let node = self.push(NodeKind::Param(id), &value);
        Var {
            value,
            node: Some(node),
        }
    }

    fn check_fresh(&self, op: &'static str, v: &Var) -> Result<Option<usize>> {
        match v.node {
            None => Ok(None),
            Some(n) if n.generation == self.generation && n.id < self.nodes.len() => Ok(Some(n.id)),
            Some(n) => Err(Error::StaleVar {
                op,
                var_gen: n.generation,
                tape_gen: self.generation,
            }),
        }
    }

    /// Records an op's output. `make_backward` is only called when recording is on and some
    /// input requires a gradient, so ops pay for saving activations only when they are needed.
    pub fn record<B: Backward + 'static>(
        &mut self,
        op: &'static str,
        value: Tensor,
        inputs: &[&Var],
        make_backward: impl FnOnce() -> B,
    ) -> Result<Var> {
        let mut ids = Vec::with_capacity(inputs.len());
        for v in inputs {
            ids.push(self.check_fresh(op, v)?);
        }
        if !self.grad_enabled || ids.iter().all(Option::is_none) {
            return Ok(Var::constant(value));
        }
        let kind = NodeKind::Op {
            inputs: ids,
            backward: Box::new(make_backward()),
        };
        let node = self.push(kind, &value);
        Ok(Var {
            value,
            node: Some(node),
        })
    }

    /// For ops with no backward: an error naming the op if recording is on and an input needs
    /// a gradient, so no fast path cuts the graph silently.
    pub fn forbid_grad(&self, op: &'static str, inputs: &[&Var]) -> Result<()> {
        for v in inputs {
            if self.check_fresh(op, v)?.is_some() && self.grad_enabled {
                return Err(Error::NotDifferentiable { op });
            }
        }
        Ok(())
    }

    /// Backward from a one-element loss (its gradient is seeded with 1).
    pub fn backward(&self, loss: &Var) -> Result<Gradients> {
        if loss.value.len() != 1 {
            return shape_err(
                "backward",
                format!(
                    "the loss must have one element, got shape {:?}; use backward_with to seed a gradient",
                    loss.shape()
                ),
            );
        }
        self.backward_with(loss, Tensor::ones(loss.shape()))
    }

    /// Backward from any output with a given seed gradient of the output's shape.
    pub fn backward_with(&self, output: &Var, seed: Tensor) -> Result<Gradients> {
        self.backward_with_hook(output, seed, &mut |_, _| {})
    }

    /// Number of parameter elements brought onto the tape (a parameter used twice counts
    /// twice): an upper bound on the gradient a hooked backward reports.
    pub fn param_elements(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Param(_)))
            .map(|n| n.shape.iter().product::<usize>())
            .sum()
    }

    /// [`Tape::backward_with`] that also calls `hook(param, grad)` for every parameter node as
    /// soon as the reverse walk reaches it, which is when its gradient is final (every consumer
    /// was recorded later and has been processed). Data-parallel training starts reducing a
    /// gradient there while the rest of the backward runs.
    pub fn backward_with_hook(
        &self,
        output: &Var,
        seed: Tensor,
        hook: &mut dyn FnMut(ParamId, &Tensor),
    ) -> Result<Gradients> {
        let root = match self.check_fresh("backward", output)? {
            Some(id) => id,
            None => {
                return Err(Error::Invalid {
                    op: "backward",
                    detail: "the output does not depend on any leaf or parameter (or was computed under no_grad)".into(),
                })
            }
        };
        if seed.shape() != output.shape() {
            return shape_err(
                "backward",
                format!(
                    "seed gradient {:?} vs output {:?}",
                    seed.shape(),
                    output.shape()
                ),
            );
        }

        let mut grads: Vec<Option<Tensor>> = Vec::new();
        grads.resize_with(root + 1, || None);
        grads[root] = Some(seed);

        for id in (0..=root).rev() {
            let node = &self.nodes[id];
            if let (NodeKind::Param(p), Some(g)) = (&node.kind, &grads[id]) {
                hook(*p, g);
            }
            let NodeKind::Op { inputs, backward } = &node.kind else {
                continue; // leaves and parameters keep their gradient
            };
            let Some(grad_out) = grads[id].take() else {
                continue; // nothing flowed into this node
            };
            let needs: Vec<bool> = inputs.iter().map(Option::is_some).collect();
            let input_grads = backward.backward(&grad_out, &needs)?;
            if input_grads.len() != inputs.len() {
                return Err(Error::Invalid {
                    op: backward.name(),
                    detail: format!(
                        "backward returned {} gradients for {} inputs",
                        input_grads.len(),
                        inputs.len()
                    ),
                });
            }
            for (input, g) in inputs.iter().zip(input_grads) {
                let Some(input) = *input else { continue };
                let Some(g) = g else {
                    return Err(Error::Invalid {
                        op: backward.name(),
                        detail: "backward returned no gradient for an input that needs one".into(),
                    });
                };
                if g.shape() != self.nodes[input].shape.as_slice() {
                    return shape_err(
                        backward.name(),
                        format!(
                            "backward returned a gradient of shape {:?} for an input of shape {:?}",
                            g.shape(),
                            self.nodes[input].shape
                        ),
                    );
                }
                accumulate(&mut grads[input], g);
            }
        }

        let mut params = Vec::new();
        for (id, node) in self.nodes.iter().enumerate().take(root + 1) {
            match node.kind {
                NodeKind::Param(p) if grads[id].is_some() => params.push((p, id)),
                NodeKind::Op { .. } => grads[id] = None,
                _ => {}
            }
        }
        Ok(Gradients {
            grads,
            params,
            generation: self.generation,
        })
    }
}

/// `slot += g`, taking `g` as is when the slot is empty.
fn accumulate(slot: &mut Option<Tensor>, g: Tensor) {
    match slot {
        None => *slot = Some(g),
        Some(acc) => {
            for (a, b) in acc.make_mut().iter_mut().zip(g.data()) {
                *a += b;
            }
        }
    }
}

/// The gradients of one backward pass: for every leaf and parameter the loss depends on.
pub struct Gradients {
    grads: Vec<Option<Tensor>>,
    params: Vec<(ParamId, usize)>,
    generation: u64,
}

impl std::fmt::Debug for Gradients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gradients")
            .field(
                "tensors",
                &self.grads.iter().filter(|g| g.is_some()).count(),
            )
            .field("params", &self.params.len())
            .finish()
    }
}

impl std::fmt::Debug for Tape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tape")
            .field("nodes", &self.nodes.len())
            .field("generation", &self.generation)
            .field("grad_enabled", &self.grad_enabled)
            .field("training", &self.training)
            .finish()
    }
}

impl Gradients {
    /// The gradient of a leaf or parameter `Var`; `None` if the loss does not depend on it.
    pub fn get(&self, v: &Var) -> Option<&Tensor> {
        let n = v.node?;
        if n.generation != self.generation {
            return None;
        }
        self.grads.get(n.id)?.as_ref()
    }

    /// The total gradient of one parameter over all its uses in the pass, if the loss depends
    /// on it.
    pub fn param_total(&self, id: ParamId) -> Option<Tensor> {
        let mut total: Option<Tensor> = None;
        for (p, g) in self.params() {
            if p == id {
                accumulate(&mut total, g.clone());
            }
        }
        total
    }

    /// Gradients of parameters, by id. A parameter used twice in one step appears twice; each
    /// entry is one use's total, and [`crate::ParamStore::accumulate`] adds them all.
    pub fn params(&self) -> impl Iterator<Item = (ParamId, &Tensor)> + '_ {
        self.params
            .iter()
            .filter_map(|&(p, id)| self.grads[id].as_ref().map(|g| (p, g)))
    }
}
