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
//! Kernel: inline loops over the f32 standard-library functions (memory-bound, or bound by
//! `exp`/`ln`/`powf`, which are scalar libm calls).

use crate::autodiff::tape::{Backward, Tape, Var};
use crate::error::{invalid, Result};
use crate::tensor::Tensor;

/// The kernel these ops use.
pub const KERNEL: &str = "inline loops (f32 std: exp, ln, sqrt, powf)";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    AddScalar(f32),
    MulScalar(f32),
    Neg,
    Powf(f32),
    Sqrt,
    Exp,
    Log,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::AddScalar(_) => "add_scalar",
            Kind::MulScalar(_) => "mul_scalar",
            Kind::Neg => "neg",
            Kind::Powf(_) => "powf",
            Kind::Sqrt => "sqrt",
            Kind::Exp => "exp",
            Kind::Log => "log",
        }
    }
}

/// `f(x)` element-wise into a new tensor of x's shape.
fn map(x: &Tensor, f: impl Fn(f32) -> f32) -> Tensor {
    Tensor::overwritten(x.shape(), |out| {
        for (o, &v) in out.iter_mut().zip(x.data()) {
            *o = f(v);
        }
    })
}

/// `f(a, b)` element-wise over two tensors of the same shape.
fn zip_map(a: &Tensor, b: &Tensor, f: impl Fn(f32, f32) -> f32) -> Tensor {
    debug_assert_eq!(a.shape(), b.shape());
    Tensor::overwritten(a.shape(), |out| {
        for ((o, &u), &v) in out.iter_mut().zip(a.data()).zip(b.data()) {
            *o = f(u, v);
        }
    })
}

struct ScalarBackward {
    kind: Kind,
    /// x for `powf` and `log`, the output y for `sqrt` and `exp`, nothing otherwise.
    saved: Option<Tensor>,
}

impl Backward for ScalarBackward {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let saved = || {
            self.saved.as_ref().ok_or_else(|| crate::Error::Invalid {
                op: self.kind.name(),
                detail: "backward is missing its saved tensor".into(),
            })
        };
        let dx = match self.kind {
            Kind::AddScalar(_) => g.clone(),
            Kind::MulScalar(s) => map(g, |g| g * s),
            Kind::Neg => map(g, |g| -g),
            // d(x⁰)/dx = 0 everywhere; computing 0·x⁻¹ would give NaN at x = 0.
            Kind::Powf(0.0) => Tensor::zeros(g.shape()),
            Kind::Powf(p) => zip_map(g, saved()?, |g, x| g * p * x.powf(p - 1.0)),
            Kind::Sqrt => zip_map(g, saved()?, |g, y| g / (2.0 * y)),
            Kind::Exp => zip_map(g, saved()?, |g, y| g * y),
            Kind::Log => zip_map(g, saved()?, |g, x| g / x),
        };
        Ok(vec![Some(dx)])
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
    fn scalar_op(&mut self, kind: Kind, x: &Var) -> Result<Var> {
        let out = match kind {
            Kind::AddScalar(s) => map(x.value(), |v| v + s),
            Kind::MulScalar(s) => map(x.value(), |v| v * s),
            Kind::Neg => map(x.value(), |v| -v),
            Kind::Powf(p) => map(x.value(), |v| v.powf(p)),
            Kind::Sqrt => map(x.value(), f32::sqrt),
            Kind::Exp => map(x.value(), f32::exp),
            Kind::Log => map(x.value(), f32::ln),
        };
        let saved = match kind {
            Kind::Powf(_) | Kind::Log => Some(x.value().clone()),
            Kind::Sqrt | Kind::Exp => Some(out.clone()),
            _ => None,
        };
        self.record(kind.name(), out, &[x], || ScalarBackward { kind, saved })
    }

    /// `x + s` element-wise. `s` must be finite.
    pub fn add_scalar(&mut self, x: &Var, s: f32) -> Result<Var> {
        let kind = Kind::AddScalar(s);
        check_finite(kind.name(), "s", s)?;
        self.scalar_op(kind, x)
    }

    /// `s · x` element-wise. `s` must be finite.
    pub fn mul_scalar(&mut self, x: &Var, s: f32) -> Result<Var> {
        let kind = Kind::MulScalar(s);
        check_finite(kind.name(), "s", s)?;
        self.scalar_op(kind, x)
    }

    /// `−x` element-wise.
    pub fn neg(&mut self, x: &Var) -> Result<Var> {
        self.scalar_op(Kind::Neg, x)
    }

    /// `xᵖ` element-wise ([`f32::powf`]: NaN for negative x and non-integer p). `p` must be
    /// finite.
    pub fn powf(&mut self, x: &Var, p: f32) -> Result<Var> {
        let kind = Kind::Powf(p);
        check_finite(kind.name(), "p", p)?;
        self.scalar_op(kind, x)
    }

    /// `√x` element-wise (NaN for negative x).
    pub fn sqrt(&mut self, x: &Var) -> Result<Var> {
        self.scalar_op(Kind::Sqrt, x)
    }

    /// `eˣ` element-wise.
    pub fn exp(&mut self, x: &Var) -> Result<Var> {
        self.scalar_op(Kind::Exp, x)
    }

    /// `ln x` element-wise (NaN for negative x, −∞ at 0).
    pub fn log(&mut self, x: &Var) -> Result<Var> {
        self.scalar_op(Kind::Log, x)
    }
}
