//! GELU, exact (erf) and the tanh approximation.
//!
//! - erf form `x·Φ(x)`: `dx = g·(Φ(x) + x·φ(x))` (Φ, φ: standard normal CDF and density);
//! - tanh form `0.5·x·(1 + tanh u)`, `u = √(2/π)·(x + 0.044715x³)`:
//!   `dx = g·(0.5·(1 + tanh u) + 0.5·x·(1 − tanh²u)·√(2/π)·(1 + 3·0.044715x²))`.
//!
//! Both come from the kernel; the op saves x.
//!
//! Kernel: [`cloze_kernels::gelu::forward`] and [`cloze_kernels::gelu::backward`] (vectorised;
//! [`cloze_kernels::gelu::gelu_scalar`] and [`cloze_kernels::gelu::gelu_grad_scalar`] are
//! their scalar reference, this op's `f` and `df`).

use crate::autodiff::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::elementwise::{Saves, Unary};
pub use cloze_kernels::gelu::GeluKind;

/// `x·Φ(x)` ([`GeluKind::Erf`], BERT's) or its tanh approximation ([`GeluKind::Tanh`]);
/// `dx = g·gelu′(x)`. PyTorch: `torch.nn.functional.gelu(x)` (`approximate="tanh"` for the
/// tanh form).
///
/// ```
/// # use cloze::{Tape, Tensor};
/// use cloze::ops::gelu::GeluKind;
/// let mut t = Tape::new();
/// let x = t.leaf(Tensor::from_vec(vec![0.0, 1.0], &[2])?);
/// let y = t.gelu(&x, GeluKind::Erf)?;
/// assert!((y.value().data()[1] - 0.841_344_7).abs() < 1e-6); // 1·Φ(1)
/// let s = t.sum(&y)?;
/// let dx = t.backward(&s)?.get(&x).unwrap().data().to_vec();
/// assert!((dx[0] - 0.5).abs() < 1e-6); // Φ(0) + 0·φ(0)
/// # Ok::<(), cloze::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Gelu(pub GeluKind);

impl Unary for Gelu {
    const NAME: &'static str = "gelu";
    const SAVES: Saves = Saves::Input;
    fn f(self, x: f32) -> f32 {
        cloze_kernels::gelu::gelu_scalar(self.0, x)
    }
    fn df(self, g: f32, x: f32) -> f32 {
        g * cloze_kernels::gelu::gelu_grad_scalar(self.0, x)
    }
    fn forward(self, x: &[f32], y: &mut [f32]) {
        cloze_kernels::gelu::forward(self.0, x, y)
    }
    fn backward(self, x: &[f32], g: &[f32], dx: &mut [f32]) {
        cloze_kernels::gelu::backward(self.0, x, g, dx)
    }
}

impl Tape {
    /// GELU ([`Gelu`]), exact (`GeluKind::Erf`, BERT's) or the tanh approximation
    /// (`GeluKind::Tanh`).
    pub fn gelu(&mut self, x: &Var, kind: GeluKind) -> Result<Var> {
        self.unary(Gelu(kind), x)
    }
}
