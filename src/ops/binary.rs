//! Element-wise binary ops with NumPy broadcasting: `add`, `sub`, `mul`, `div`.
//!
//! Backward: the gradient of each operand is the output gradient times the partial
//! derivative, summed over the axes along which that operand was broadcast
//! ([`reduce_to_shape`](crate::ops::broadcast::reduce_to_shape)). The loops are
//! [`Tape::binary`]'s.
//!
//! Kernel: plain loops (memory-bound; the compiler vectorises the same-shape case).

use crate::autodiff::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::elementwise::Binary;

/// `a + b`; `da = g`, `db = g`. PyTorch: `torch.add(a, b)`.
///
/// ```
/// # use cloze::{Tape, Tensor};
/// let mut t = Tape::new();
/// let a = t.leaf(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])?);
/// let b = t.leaf(Tensor::from_vec(vec![10.0, 20.0], &[2])?); // broadcast over rows
/// let y = t.add(&a, &b)?;
/// assert_eq!(y.value().data(), &[11.0, 22.0, 13.0, 24.0]);
/// let s = t.sum(&y)?;
/// assert_eq!(t.backward(&s)?.get(&b).unwrap().data(), &[2.0, 2.0]);
/// # Ok::<(), cloze::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Add;

impl Binary for Add {
    const NAME: &'static str = "add";
    const SAVES_OPERANDS: bool = false;
    const DA_IS_G: bool = true;
    const DB_IS_G: bool = true;
    fn f(self, a: f32, b: f32) -> f32 {
        a + b
    }
    fn da(self, g: f32, _: f32, _: f32) -> f32 {
        g
    }
    fn db(self, g: f32, _: f32, _: f32) -> f32 {
        g
    }
}

/// `a − b`; `da = g`, `db = −g`. PyTorch: `torch.sub(a, b)`.
///
/// ```
/// # use cloze::{Tape, Tensor};
/// let mut t = Tape::new();
/// let a = t.leaf(Tensor::from_vec(vec![5.0, 7.0], &[2])?);
/// let b = t.leaf(Tensor::scalar(2.0));
/// let y = t.sub(&a, &b)?;
/// assert_eq!(y.value().data(), &[3.0, 5.0]);
/// let s = t.sum(&y)?;
/// assert_eq!(t.backward(&s)?.get(&b).unwrap().data(), &[-2.0]);
/// # Ok::<(), cloze::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Sub;

impl Binary for Sub {
    const NAME: &'static str = "sub";
    const SAVES_OPERANDS: bool = false;
    const DA_IS_G: bool = true;
    fn f(self, a: f32, b: f32) -> f32 {
        a - b
    }
    fn da(self, g: f32, _: f32, _: f32) -> f32 {
        g
    }
    // A product rather than `-g`, as the op has always computed it (a NaN keeps its sign).
    #[allow(clippy::neg_multiply)]
    fn db(self, g: f32, _: f32, _: f32) -> f32 {
        g * -1.0
    }
}

/// `a ⊙ b`; `da = g·b`, `db = g·a`. PyTorch: `torch.mul(a, b)`.
///
/// ```
/// # use cloze::{Tape, Tensor};
/// let mut t = Tape::new();
/// let a = t.leaf(Tensor::from_vec(vec![2.0, 3.0], &[2])?);
/// let b = t.leaf(Tensor::from_vec(vec![4.0, 5.0], &[2])?);
/// let y = t.mul(&a, &b)?;
/// assert_eq!(y.value().data(), &[8.0, 15.0]);
/// let s = t.sum(&y)?;
/// assert_eq!(t.backward(&s)?.get(&a).unwrap().data(), &[4.0, 5.0]);
/// # Ok::<(), cloze::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Mul;

impl Binary for Mul {
    const NAME: &'static str = "mul";
    const SAVES_OPERANDS: bool = true;
    fn f(self, a: f32, b: f32) -> f32 {
        a * b
    }
    fn da(self, g: f32, _: f32, b: f32) -> f32 {
        g * b
    }
    fn db(self, g: f32, a: f32, _: f32) -> f32 {
        g * a
    }
}

/// `a / b`; `da = g / b`, `db = g·(−a/b²)`. PyTorch: `torch.div(a, b)`.
///
/// ```
/// # use cloze::{Tape, Tensor};
/// let mut t = Tape::new();
/// let a = t.leaf(Tensor::from_vec(vec![6.0], &[1])?);
/// let b = t.leaf(Tensor::from_vec(vec![2.0], &[1])?);
/// let y = t.div(&a, &b)?;
/// assert_eq!(y.value().data(), &[3.0]);
/// let g = t.backward(&y)?;
/// assert_eq!((g.get(&a).unwrap().data(), g.get(&b).unwrap().data()), (&[0.5][..], &[-1.5][..]));
/// # Ok::<(), cloze::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Div;

impl Binary for Div {
    const NAME: &'static str = "div";
    const SAVES_OPERANDS: bool = true;
    fn f(self, a: f32, b: f32) -> f32 {
        a / b
    }
    fn da(self, g: f32, _: f32, b: f32) -> f32 {
        g / b
    }
    fn db(self, g: f32, a: f32, b: f32) -> f32 {
        g * (-a / (b * b))
    }
}

impl Tape {
    /// `a + b` with broadcasting ([`Add`]).
    pub fn add(&mut self, a: &Var, b: &Var) -> Result<Var> {
        self.binary(Add, a, b)
    }

    /// `a − b` with broadcasting ([`Sub`]).
    pub fn sub(&mut self, a: &Var, b: &Var) -> Result<Var> {
        self.binary(Sub, a, b)
    }

    /// `a ⊙ b` with broadcasting ([`Mul`]).
    pub fn mul(&mut self, a: &Var, b: &Var) -> Result<Var> {
        self.binary(Mul, a, b)
    }

    /// `a / b` with broadcasting ([`Div`]).
    pub fn div(&mut self, a: &Var, b: &Var) -> Result<Var> {
        self.binary(Div, a, b)
    }
}
