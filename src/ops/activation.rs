//! Activations: `gelu` (erf and tanh forms), `tanh`, `relu`.
//!
//! Backward, with `g` the output gradient and `y` the output:
//!
//! - `gelu`, erf form `x·Φ(x)`: `dx = g·(Φ(x) + x·φ(x))` (Φ, φ: standard normal CDF and
//!   density); tanh form `0.5·x·(1 + tanh u)`, `u = √(2/π)·(x + 0.044715x³)`:
//!   `dx = g·(0.5·(1 + tanh u) + 0.5·x·(1 − tanh²u)·√(2/π)·(1 + 3·0.044715x²))`.
//!   Both come from the kernel; the op saves x.
//! - `tanh`: `dx = g·(1 − y²)`; saves y.
//! - `relu`: `dx = g` where `y > 0`, else 0. At exactly x = 0 the derivative is taken to be 0
//!   (the subgradient PyTorch and TensorFlow use). A NaN input gives a NaN output and a NaN
//!   gradient rather than being silently zeroed. Saves y (y > 0 exactly where x > 0).
//!
//! Kernel: [`cloze_kernels::gelu::forward`] and [`cloze_kernels::gelu::backward`] for GELU;
//! inline loops for `tanh` and `relu`.

use crate::autodiff::tape::{Backward, Tape, Var};
use crate::error::Result;
use crate::tensor::Tensor;
pub use cloze_kernels::gelu::GeluKind;

/// The kernel these ops use.
pub const KERNEL: &str = "cloze_kernels::gelu::{forward, backward}; inline loops for tanh and relu";

struct GeluBackward {
    kind: GeluKind,
    x: Tensor,
}

impl Backward for GeluBackward {
    fn name(&self) -> &'static str {
        "gelu"
    }
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let dx = Tensor::overwritten(self.x.shape(), |dx| {
            cloze_kernels::gelu::backward(self.kind, self.x.data(), g.data(), dx)
        });
        Ok(vec![Some(dx)])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pointwise {
    Tanh,
    Relu,
}

struct PointwiseBackward {
    kind: Pointwise,
    /// The op's output.
    y: Tensor,
}

impl Backward for PointwiseBackward {
    fn name(&self) -> &'static str {
        match self.kind {
            Pointwise::Tanh => "tanh",
            Pointwise::Relu => "relu",
        }
    }
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let kind = self.kind;
        let dx = Tensor::overwritten(g.shape(), |dx| {
            for ((d, &g), &y) in dx.iter_mut().zip(g.data()).zip(self.y.data()) {
                *d = match kind {
                    Pointwise::Tanh => g * (1.0 - y * y),
                    Pointwise::Relu if y > 0.0 => g,
                    Pointwise::Relu if y.is_nan() => y,
                    Pointwise::Relu => 0.0,
                };
            }
        });
        Ok(vec![Some(dx)])
    }
}

/// ReLU of one value: NaN stays NaN (`f32::max` would turn it into 0).
fn relu_scalar(x: f32) -> f32 {
    if x <= 0.0 {
        0.0
    } else {
        x
    }
}

impl Tape {
    /// GELU, exact (`GeluKind::Erf`, BERT's) or the tanh approximation (`GeluKind::Tanh`).
    pub fn gelu(&mut self, x: &Var, kind: GeluKind) -> Result<Var> {
        let out = Tensor::overwritten(x.shape(), |y| {
            cloze_kernels::gelu::forward(kind, x.value().data(), y)
        });
        self.record("gelu", out, &[x], || GeluBackward {
            kind,
            x: x.value().clone(),
        })
    }

    fn pointwise(&mut self, kind: Pointwise, x: &Var) -> Result<Var> {
        let out = Tensor::overwritten(x.shape(), |y| {
            for (o, &v) in y.iter_mut().zip(x.value().data()) {
                *o = match kind {
                    Pointwise::Tanh => v.tanh(),
                    Pointwise::Relu => relu_scalar(v),
                };
            }
        });
        let y = out.clone();
        let name = match kind {
            Pointwise::Tanh => "tanh",
            Pointwise::Relu => "relu",
        };
        self.record(name, out, &[x], || PointwiseBackward { kind, y })
    }

    /// Hyperbolic tangent, element-wise.
    pub fn tanh(&mut self, x: &Var) -> Result<Var> {
        self.pointwise(Pointwise::Tanh, x)
    }

    /// `max(x, 0)` element-wise; the gradient at exactly 0 is 0, NaN propagates.
    pub fn relu(&mut self, x: &Var) -> Result<Var> {
        self.pointwise(Pointwise::Relu, x)
    }
}
