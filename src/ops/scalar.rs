//! Element-wise ops with a scalar argument or none: `add_scalar`, `mul_scalar`, `neg`, `powf`,
//! `sqrt`, `exp`, `log`.
//!
//! Backward, with `g` the output gradient and `y` the output:
//!
//! | op | forward | dx | saved |
//! |---|---|---|---|
//! | `add_scalar(x, s)` | x + s | g | nothing |
//! | `mul_scalar(x, s)` | s·x | s·g | nothing |
//! | `neg(x)` | −x | −g | nothing |
//! | `powf(x, p)` | xᵖ | g·p·xᵖ⁻¹ (0 when p = 0) | x |
//! | `sqrt(x)` | √x | g / (2y) | y |
//! | `exp(x)` | eˣ | g·y | y |
//! | `log(x)` | ln x | g / x | x |
//!
//! Domains follow f32: `sqrt` and `log` of a negative value give NaN, `log(0)` is −∞, and
//! `powf` of a negative value with a non-integer exponent is NaN (as [`f32::powf`]). Their
//! gradients at the boundary are likewise ±∞ or NaN (`sqrt` at 0, `log` at 0, `powf` with
//! p < 1 at 0). The scalar arguments `s` and `p` themselves must be finite; anything else is an
//! error naming the value.
//!
//! Kernel: [`Tape::unary`]'s loops over the f32 standard-library functions (memory-bound, or
//! bound by `exp`/`ln`/`powf`, which are scalar libm calls).

use crate::autodiff::tape::{Tape, Var};
use crate::error::{invalid, Result};
use crate::ops::elementwise::{Saves, Unary};

/// `x + s`; `dx = g`. PyTorch: `x + s`.
///
/// ```
/// # use cloze::{Tape, Tensor};
/// let mut t = Tape::new();
/// let x = t.leaf(Tensor::from_vec(vec![1.0, 2.0], &[2])?);
/// assert_eq!(t.add_scalar(&x, 0.5)?.value().data(), &[1.5, 2.5]);
/// # Ok::<(), cloze::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct AddScalar(pub f32);

impl Unary for AddScalar {
    const NAME: &'static str = "add_scalar";
    const SAVES: Saves = Saves::Nothing;
    const DF_IS_G: bool = true;
    fn f(self, x: f32) -> f32 {
        x + self.0
    }
    fn df(self, g: f32, _: f32) -> f32 {
        g
    }
}

/// `s·x`; `dx = s·g`. PyTorch: `x * s`.
///
/// ```
/// # use cloze::{Tape, Tensor};
/// let mut t = Tape::new();
/// let x = t.leaf(Tensor::from_vec(vec![1.0, -2.0], &[2])?);
/// assert_eq!(t.mul_scalar(&x, 3.0)?.value().data(), &[3.0, -6.0]);
/// # Ok::<(), cloze::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MulScalar(pub f32);

impl Unary for MulScalar {
    const NAME: &'static str = "mul_scalar";
    const SAVES: Saves = Saves::Nothing;
    fn f(self, x: f32) -> f32 {
        x * self.0
    }
    fn df(self, g: f32, _: f32) -> f32 {
        g * self.0
    }
}

/// `−x`; `dx = −g`. PyTorch: `torch.neg(x)`.
///
/// ```
/// # use cloze::{Tape, Tensor};
/// let mut t = Tape::new();
/// let x = t.leaf(Tensor::from_vec(vec![1.0, -2.0], &[2])?);
/// assert_eq!(t.neg(&x)?.value().data(), &[-1.0, 2.0]);
/// # Ok::<(), cloze::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Neg;

impl Unary for Neg {
    const NAME: &'static str = "neg";
    const SAVES: Saves = Saves::Nothing;
    fn f(self, x: f32) -> f32 {
        -x
    }
    fn df(self, g: f32, _: f32) -> f32 {
        -g
    }
}

/// `xᵖ`; `dx = g·p·xᵖ⁻¹`, and 0 when p = 0 (computing 0·x⁻¹ would give NaN at x = 0).
/// PyTorch: `torch.pow(x, p)`.
///
/// ```
/// # use cloze::{Tape, Tensor};
/// let mut t = Tape::new();
/// let x = t.leaf(Tensor::from_vec(vec![3.0], &[1])?);
/// let y = t.powf(&x, 2.0)?;
/// assert_eq!(y.value().data(), &[9.0]);
/// assert_eq!(t.backward(&y)?.get(&x).unwrap().data(), &[6.0]);
/// # Ok::<(), cloze::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Powf(pub f32);

impl Unary for Powf {
    const NAME: &'static str = "powf";
    const SAVES: Saves = Saves::Input;
    fn f(self, x: f32) -> f32 {
        x.powf(self.0)
    }
    fn df(self, g: f32, x: f32) -> f32 {
        let p = self.0;
        if p == 0.0 {
            0.0
        } else {
            g * p * x.powf(p - 1.0)
        }
    }
}

/// `√x`; `dx = g / (2y)`. PyTorch: `torch.sqrt(x)`.
///
/// ```
/// # use cloze::{Tape, Tensor};
/// let mut t = Tape::new();
/// let x = t.leaf(Tensor::from_vec(vec![4.0], &[1])?);
/// let y = t.sqrt(&x)?;
/// assert_eq!(y.value().data(), &[2.0]);
/// assert_eq!(t.backward(&y)?.get(&x).unwrap().data(), &[0.25]);
/// # Ok::<(), cloze::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Sqrt;

impl Unary for Sqrt {
    const NAME: &'static str = "sqrt";
    const SAVES: Saves = Saves::Output;
    fn f(self, x: f32) -> f32 {
        x.sqrt()
    }
    fn df(self, g: f32, y: f32) -> f32 {
        g / (2.0 * y)
    }
}

/// `eˣ`; `dx = g·y`. PyTorch: `torch.exp(x)`.
///
/// ```
/// # use cloze::{Tape, Tensor};
/// let mut t = Tape::new();
/// let x = t.leaf(Tensor::from_vec(vec![0.0], &[1])?);
/// let y = t.exp(&x)?;
/// assert_eq!(y.value().data(), &[1.0]);
/// assert_eq!(t.backward(&y)?.get(&x).unwrap().data(), &[1.0]);
/// # Ok::<(), cloze::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Exp;

impl Unary for Exp {
    const NAME: &'static str = "exp";
    const SAVES: Saves = Saves::Output;
    fn f(self, x: f32) -> f32 {
        x.exp()
    }
    fn df(self, g: f32, y: f32) -> f32 {
        g * y
    }
}

/// `ln x`; `dx = g / x`. PyTorch: `torch.log(x)`.
///
/// ```
/// # use cloze::{Tape, Tensor};
/// let mut t = Tape::new();
/// let x = t.leaf(Tensor::from_vec(vec![1.0, 4.0], &[2])?);
/// let y = t.log(&x)?;
/// assert_eq!(y.value().data()[0], 0.0);
/// let s = t.sum(&y)?;
/// assert_eq!(t.backward(&s)?.get(&x).unwrap().data(), &[1.0, 0.25]);
/// # Ok::<(), cloze::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Log;

impl Unary for Log {
    const NAME: &'static str = "log";
    const SAVES: Saves = Saves::Input;
    fn f(self, x: f32) -> f32 {
        x.ln()
    }
    fn df(self, g: f32, x: f32) -> f32 {
        g / x
    }
}

/// Errors unless the scalar argument `v` (named `what`) is finite.
fn check_finite(op: &'static str, what: &str, v: f32) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        invalid(op, format!("{what} = {v} is not finite"))
    }
}

impl Tape {
    /// `x + s` element-wise ([`AddScalar`]). `s` must be finite.
    pub fn add_scalar(&mut self, x: &Var, s: f32) -> Result<Var> {
        check_finite(AddScalar::NAME, "s", s)?;
        self.unary(AddScalar(s), x)
    }

    /// `s · x` element-wise ([`MulScalar`]). `s` must be finite.
    pub fn mul_scalar(&mut self, x: &Var, s: f32) -> Result<Var> {
        check_finite(MulScalar::NAME, "s", s)?;
        self.unary(MulScalar(s), x)
    }

    /// `−x` element-wise ([`Neg`]).
    pub fn neg(&mut self, x: &Var) -> Result<Var> {
        self.unary(Neg, x)
    }

    /// `xᵖ` element-wise ([`Powf`]; [`f32::powf`]: NaN for negative x and non-integer p).
    /// `p` must be finite.
    pub fn powf(&mut self, x: &Var, p: f32) -> Result<Var> {
        check_finite(Powf::NAME, "p", p)?;
        self.unary(Powf(p), x)
    }

    /// `√x` element-wise ([`Sqrt`]; NaN for negative x).
    pub fn sqrt(&mut self, x: &Var) -> Result<Var> {
        self.unary(Sqrt, x)
    }

    /// `eˣ` element-wise ([`Exp`]).
    pub fn exp(&mut self, x: &Var) -> Result<Var> {
        self.unary(Exp, x)
    }

    /// `ln x` element-wise ([`Log`]; NaN for negative x, −∞ at 0).
    pub fn log(&mut self, x: &Var) -> Result<Var> {
        self.unary(Log, x)
    }
}
