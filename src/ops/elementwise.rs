//! The two element-wise op traits and their one generic forward and backward.
//!
//! An element-wise op is written once, as a small type implementing [`Unary`] or [`Binary`]:
//! its name, its value `f` and its derivative. [`Tape::unary`] and [`Tape::binary`] do the
//! rest (the loop, what the backward keeps, broadcasting and reducing a broadcast gradient
//! back onto an operand). The ops themselves live in [`super::scalar`], [`super::activation`],
//! [`super::gelu`] and [`super::binary`].
//!
//! A new unary op, end to end:
//!
//! ```
//! use cloze::ops::elementwise::{Saves, Unary};
//! use cloze::{Tape, Tensor};
//!
//! /// `x²`; `dx = 2·g·x`.
//! #[derive(Clone, Copy)]
//! struct Square;
//! impl Unary for Square {
//!     const NAME: &'static str = "square";
//!     const SAVES: Saves = Saves::Input;
//!     fn f(self, x: f32) -> f32 { x * x }
//!     fn df(self, g: f32, x: f32) -> f32 { 2.0 * g * x }
//! }
//!
//! let mut t = Tape::new();
//! let x = t.leaf(Tensor::from_vec(vec![3.0], &[1])?);
//! let y = t.unary(Square, &x)?;
//! let g = t.backward(&y)?;
//! assert_eq!(g.get(&x).unwrap().data(), &[6.0]);
//! # Ok::<(), cloze::Error>(())
//! ```

use crate::autodiff::tape::{Backward, Tape, Var};
use crate::error::{Error, Result};
use crate::ops::broadcast::{
    broadcast_shape, broadcast_strides, for_each_index, reduce_to_shape, suffix_len,
};
use crate::tensor::Tensor;

/// What a unary op keeps for its backward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saves {
    /// Nothing: the derivative needs only the output gradient (and the op's own constants).
    Nothing,
    /// The input `x`.
    Input,
    /// The output `y` (when the derivative is cheaper from `y`, as for `exp` and `tanh`).
    Output,
}

/// An element-wise op of one tensor: `y = f(x)`, `dx = df(g, s)`.
///
/// `forward` and `backward` run `f` and `df` over whole slices; an op with a vectorised
/// kernel overrides them (GELU does), and `f`/`df` are then its scalar reference.
pub trait Unary: Copy + Send + Sync + 'static {
    /// The op's name, in the tape and in error messages.
    const NAME: &'static str;
    /// What [`Unary::df`] reads besides the output gradient.
    const SAVES: Saves;
    /// `dx` is the output gradient itself: the backward hands it on without a pass over it.
    const DF_IS_G: bool = false;

    /// The value of one element.
    fn f(self, x: f32) -> f32;

    /// The input gradient of one element from the output gradient `g` and the saved value
    /// `s` (`x` or `y` as [`Unary::SAVES`] says; 0 when the op saves nothing).
    fn df(self, g: f32, s: f32) -> f32;

    /// `y[i] = f(x[i])`.
    #[inline]
    fn forward(self, x: &[f32], y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = self.f(v);
        }
    }

    /// `dx[i] = df(g[i], s[i])`.
    #[inline]
    fn backward(self, s: &[f32], g: &[f32], dx: &mut [f32]) {
        for ((d, &g), &s) in dx.iter_mut().zip(g).zip(s) {
            *d = self.df(g, s);
        }
    }
}

/// An element-wise op of two tensors with NumPy broadcasting: `y = f(a, b)`, and the input
/// gradients `da(g, a, b)`, `db(g, a, b)` before they are summed over broadcast axes.
pub trait Binary: Copy + Send + Sync + 'static {
    /// The op's name, in the tape and in error messages.
    const NAME: &'static str;
    /// Whether `da`/`db` read the operands; when false the backward keeps only their shapes
    /// and calls them with `a = b = 0`.
    const SAVES_OPERANDS: bool;
    /// `da` is the output gradient itself (handed on without a pass over it).
    const DA_IS_G: bool = false;
    /// `db` is the output gradient itself.
    const DB_IS_G: bool = false;

    /// The value of one element.
    fn f(self, a: f32, b: f32) -> f32;
    /// `g·∂f/∂a` for one element.
    fn da(self, g: f32, a: f32, b: f32) -> f32;
    /// `g·∂f/∂b` for one element.
    fn db(self, g: f32, a: f32, b: f32) -> f32;
}

struct UnaryBackward<T> {
    op: T,
    /// x or y as `T::SAVES` says; `None` when it saves nothing.
    saved: Option<Tensor>,
}

impl<T: Unary> Backward for UnaryBackward<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        if T::DF_IS_G {
            return Ok(vec![Some(g.clone())]);
        }
        let op = self.op;
        let dx = match (&self.saved, T::SAVES) {
            (None, Saves::Nothing) => Tensor::overwritten(g.shape(), |dx| {
                for (d, &g) in dx.iter_mut().zip(g.data()) {
                    *d = op.df(g, 0.0);
                }
            }),
            (Some(s), _) => Tensor::overwritten(g.shape(), |dx| {
                debug_assert_eq!(s.shape(), g.shape());
                op.backward(s.data(), g.data(), dx)
            }),
            (None, _) => {
                return Err(Error::Invalid {
                    op: T::NAME,
                    detail: "backward is missing its saved tensor".into(),
                })
            }
        };
        Ok(vec![Some(dx)])
    }
}

struct BinaryBackward<T> {
    op: T,
    a_shape: Vec<usize>,
    b_shape: Vec<usize>,
    /// The operands, kept only when `T::SAVES_OPERANDS`.
    operands: Option<(Tensor, Tensor)>,
}

impl<T: Binary> Backward for BinaryBackward<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let op = self.op;
        let ga =
            needs[0].then(|| self.grad(g, T::DA_IS_G, &self.a_shape, |g, a, b| op.da(g, a, b)));
        let gb =
            needs[1].then(|| self.grad(g, T::DB_IS_G, &self.b_shape, |g, a, b| op.db(g, a, b)));
        Ok(vec![ga, gb])
    }
}

impl<T: Binary> BinaryBackward<T> {
    /// One operand's gradient: `d(g, a, b)` over the output's shape (or `g` itself when
    /// `is_g`), summed over the axes along which the operand of `shape` was broadcast.
    fn grad(
        &self,
        g: &Tensor,
        is_g: bool,
        shape: &[usize],
        d: impl Fn(f32, f32, f32) -> f32 + Sync,
    ) -> Tensor {
        let full = match &self.operands {
            _ if is_g => g.clone(),
            Some((a, b)) => zip_grad(g, a, b, d),
            None => zip_grad(g, g, g, |g, _, _| d(g, 0.0, 0.0)),
        };
        reduce_to_shape(&full, shape)
    }
}

impl Tape {
    /// Records the unary op `op` on `x`.
    pub fn unary<T: Unary>(&mut self, op: T, x: &Var) -> Result<Var> {
        let out = Tensor::overwritten(x.shape(), |y| op.forward(x.value().data(), y));
        let saved = match T::SAVES {
            _ if T::DF_IS_G => None,
            Saves::Nothing => None,
            Saves::Input => Some(x.value().clone()),
            Saves::Output => Some(out.clone()),
        };
        self.record(T::NAME, out, &[x], || UnaryBackward { op, saved })
    }

    /// Records the binary op `op` on `a` and `b` (NumPy broadcasting).
    pub fn binary<T: Binary>(&mut self, op: T, a: &Var, b: &Var) -> Result<Var> {
        let out = zip_broadcast(T::NAME, a.value(), b.value(), |x, y| op.f(x, y))?;
        self.record(T::NAME, out, &[a, b], || BinaryBackward {
            op,
            a_shape: a.shape().to_vec(),
            b_shape: b.shape().to_vec(),
            operands: T::SAVES_OPERANDS.then(|| (a.value().clone(), b.value().clone())),
        })
    }
}

/// `f(a, b)` element-wise with broadcasting.
fn zip_broadcast(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<Tensor> {
    if a.shape() == b.shape() {
        return Ok(Tensor::overwritten(a.shape(), |out| {
            par_rows(out, a.data().len().max(1), |start, o| {
                let (x, y) = (
                    &a.data()[start..start + o.len()],
                    &b.data()[start..start + o.len()],
                );
                for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
                    *o = f(x, y);
                }
            });
        }));
    }
    // One operand's shape is a suffix of the other's (a bias over rows, a row scale): the
    // small one repeats every `n` elements.
    if let Some(n) = suffix_len(b.shape(), a.shape()) {
        return Ok(repeat_rows(a, b, n, &f));
    }
    if let Some(n) = suffix_len(a.shape(), b.shape()) {
        return Ok(repeat_rows(b, a, n, &|y, x| f(x, y)));
    }
    let shape = broadcast_shape(op, a.shape(), b.shape())?;
    let sa = broadcast_strides(a.shape(), &shape);
    let sb = broadcast_strides(b.shape(), &shape);
    let (ad, bd) = (a.data(), b.data());
    Ok(Tensor::overwritten(&shape, |out| {
        for_each_index(&shape, &sa, &sb, |o, i, j| out[o] = f(ad[i], bd[j]));
    }))
}

/// `f(big, small)` of shape `big`, where `small` repeats every `n` elements of `big`.
fn repeat_rows(
    big: &Tensor,
    small: &Tensor,
    n: usize,
    f: &(impl Fn(f32, f32) -> f32 + Sync),
) -> Tensor {
    let sd = small.data();
    Tensor::overwritten(big.shape(), |out| {
        par_rows(out, n, |start, o| {
            for (orow, brow) in o
                .chunks_exact_mut(n)
                .zip(big.data()[start..].chunks_exact(n))
            {
                for ((o, &x), &y) in orow.iter_mut().zip(brow).zip(sd) {
                    *o = f(x, y);
                }
            }
        });
    })
}

/// `f(g, a, b)` element-wise over the output gradient's shape, `a` and `b` broadcast to it.
fn zip_grad(g: &Tensor, a: &Tensor, b: &Tensor, f: impl Fn(f32, f32, f32) -> f32 + Sync) -> Tensor {
    let shape = g.shape();
    let (gd, ad, bd) = (g.data(), a.data(), b.data());
    if a.shape() == shape && b.shape() == shape {
        return Tensor::overwritten(shape, |out| {
            par_rows(out, gd.len().max(1), |start, o| {
                let end = start + o.len();
                let (g, a, b) = (&gd[start..end], &ad[start..end], &bd[start..end]);
                for (((o, &g), &a), &b) in o.iter_mut().zip(g).zip(a).zip(b) {
                    *o = f(g, a, b);
                }
            });
        });
    }
    let sa = broadcast_strides(a.shape(), shape);
    let sb = broadcast_strides(b.shape(), shape);
    Tensor::overwritten(shape, |out| {
        for_each_index(shape, &sa, &sb, |o, i, j| out[o] = f(gd[o], ad[i], bd[j]));
    })
}

/// Runs `f(start, chunk)` over chunks of `out` made of whole rows of `row` elements, in
/// parallel when the tensor is large. Each element is written by exactly one task, so the
/// result does not depend on the number of threads.
fn par_rows(out: &mut [f32], row: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    use rayon::prelude::*;
    const GRAIN: usize = 1 << 16;
    if out.len() < 2 * GRAIN {
        f(0, out);
        return;
    }
    let rows_per = GRAIN.div_ceil(row).max(1);
    out.par_chunks_mut(rows_per * row)
        .enumerate()
        .for_each(|(i, c)| f(i * rows_per * row, c));
}
