//! Activations: `tanh`, `relu` (GELU has its own module, [`super::gelu`]).
//!
//! Backward, with `g` the output gradient and `y` the output:
//!
//! - `tanh`: `dx = g·(1 − y²)`; saves y.
//! - `relu`: `dx = g` where `y > 0`, else 0. At exactly x = 0 the derivative is taken to be 0
//!   (the subgradient PyTorch and TensorFlow use). A NaN input gives a NaN output and a NaN
//!   gradient rather than being silently zeroed. Saves y (y > 0 exactly where x > 0).
//!
//! Kernel: [`Tape::unary`]'s loops.

use crate::autodiff::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::elementwise::{Saves, Unary};

/// `tanh x`; `dx = g·(1 − y²)`. PyTorch: `torch.tanh(x)`.
///
/// ```
/// # use cloze::{Tape, Tensor};
/// let mut t = Tape::new();
/// let x = t.leaf(Tensor::from_vec(vec![0.0], &[1])?);
/// let y = t.tanh(&x)?;
/// assert_eq!(y.value().data(), &[0.0]);
/// assert_eq!(t.backward(&y)?.get(&x).unwrap().data(), &[1.0]);
/// # Ok::<(), cloze::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Tanh;

impl Unary for Tanh {
    const NAME: &'static str = "tanh";
    const SAVES: Saves = Saves::Output;
    fn f(self, x: f32) -> f32 {
        x.tanh()
    }
    fn df(self, g: f32, y: f32) -> f32 {
        g * (1.0 - y * y)
    }
}

/// `max(x, 0)`, NaN kept (`f32::max` would turn it into 0); `dx = g` where `y > 0`, NaN where
/// y is NaN, else 0. PyTorch: `torch.relu(x)`.
///
/// ```
/// # use cloze::{Tape, Tensor};
/// let mut t = Tape::new();
/// let x = t.leaf(Tensor::from_vec(vec![-1.0, 0.0, 2.0], &[3])?);
/// let y = t.relu(&x)?;
/// assert_eq!(y.value().data(), &[0.0, 0.0, 2.0]);
/// let s = t.sum(&y)?;
/// assert_eq!(t.backward(&s)?.get(&x).unwrap().data(), &[0.0, 0.0, 1.0]);
/// # Ok::<(), cloze::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Relu;

impl Unary for Relu {
    const NAME: &'static str = "relu";
    const SAVES: Saves = Saves::Output;
    fn f(self, x: f32) -> f32 {
        if x <= 0.0 {
            0.0
        } else {
            x
        }
    }
    fn df(self, g: f32, y: f32) -> f32 {
        if y > 0.0 {
            g
        } else if y.is_nan() {
            y
        } else {
            0.0
        }
    }
}

impl Tape {
    /// Hyperbolic tangent, element-wise ([`Tanh`]).
    pub fn tanh(&mut self, x: &Var) -> Result<Var> {
        self.unary(Tanh, x)
    }

    /// `max(x, 0)` element-wise ([`Relu`]); the gradient at exactly 0 is 0, NaN propagates.
    pub fn relu(&mut self, x: &Var) -> Result<Var> {
        self.unary(Relu, x)
    }
}
