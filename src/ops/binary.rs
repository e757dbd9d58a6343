//! Element-wise binary ops with NumPy broadcasting: `add`, `sub`, `mul`, `div`.
//!
//! Backward: the gradient of each operand is the output gradient times the partial
//! derivative, summed over the axes along which that operand was broadcast
//! ([`reduce_to_shape`]).
//!
//! Kernel: plain loops (memory-bound; the compiler vectorises the same-shape case).

use crate::autodiff::tape::{Backward, Tape, Var};
use crate::error::Result;
use crate::ops::broadcast::{broadcast_shape, broadcast_strides, for_each_index, reduce_to_shape};
use crate::tensor::Tensor;

/// The kernel these ops use.
pub const KERNEL: &str = "inline loops (same-shape fast path, strided broadcast otherwise)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Add,
    Sub,
    Mul,
    Div,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Add => "add",
            Kind::Sub => "sub",
            Kind::Mul => "mul",
            Kind::Div => "div",
        }
    }

    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            Kind::Add => a + b,
            Kind::Sub => a - b,
            Kind::Mul => a * b,
            Kind::Div => a / b,
        }
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
        let bd = b.data();
        return Ok(Tensor::overwritten(a.shape(), |out| {
            par_rows(out, n, |start, o| {
                for (orow, arow) in o.chunks_exact_mut(n).zip(a.data()[start..].chunks_exact(n)) {
                    for ((o, &x), &y) in orow.iter_mut().zip(arow).zip(bd) {
                        *o = f(x, y);
                    }
                }
            });
        }));
    }
    if let Some(n) = suffix_len(a.shape(), b.shape()) {
        let ad = a.data();
        return Ok(Tensor::overwritten(b.shape(), |out| {
            par_rows(out, n, |start, o| {
                for (orow, brow) in o.chunks_exact_mut(n).zip(b.data()[start..].chunks_exact(n)) {
                    for ((o, &x), &y) in orow.iter_mut().zip(ad).zip(brow) {
                        *o = f(x, y);
                    }
                }
            });
        }));
    }
    let shape = broadcast_shape(op, a.shape(), b.shape())?;
    let sa = broadcast_strides(a.shape(), &shape);
    let sb = broadcast_strides(b.shape(), &shape);
    let (ad, bd) = (a.data(), b.data());
    Ok(Tensor::overwritten(&shape, |out| {
        for_each_index(&shape, &sa, &sb, |o, i, j| out[o] = f(ad[i], bd[j]));
    }))
}

/// If `small`'s shape is a proper trailing part of `big`'s (leading 1s allowed), its element
/// count: then `big`'s elements pair with `small`'s repeating every that many.
pub(crate) fn suffix_len(small: &[usize], big: &[usize]) -> Option<usize> {
    let trimmed: &[usize] = {
        let lead = small.iter().take_while(|&&d| d == 1).count();
        &small[lead..]
    };
    if trimmed.len() > big.len() || small == big {
        return None;
    }
    let n: usize = trimmed.iter().product();
    (n > 0 && big[big.len() - trimmed.len()..] == *trimmed && big.len() >= small.len()).then_some(n)
}

/// Runs `f(start, chunk)` over chunks of `out` made of whole rows of `row` elements, in
/// parallel when the tensor is large. Each element is written by exactly one task, so the
/// result does not depend on the number of threads.
pub(crate) fn par_rows(out: &mut [f32], row: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
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

struct BinaryBackward {
    kind: Kind,
    a_shape: Vec<usize>,
    b_shape: Vec<usize>,
    /// Operand values, saved only for `mul` and `div` (`add`/`sub` need only the shapes).
    a: Option<Tensor>,
    b: Option<Tensor>,
}

impl Backward for BinaryBackward {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let op = self.kind.name();
        let saved = |t: &Option<Tensor>| t.clone().unwrap_or_else(|| Tensor::scalar(0.0));
        let (a, b) = (saved(&self.a), saved(&self.b));
        let ga = if needs[0] {
            let full = match self.kind {
                Kind::Add | Kind::Sub => g.clone(),
                Kind::Mul => zip_broadcast(op, g, &b, |g, b| g * b)?,
                Kind::Div => zip_broadcast(op, g, &b, |g, b| g / b)?,
            };
            Some(reduce_to_shape(&full, &self.a_shape))
        } else {
            None
        };
        let gb = if needs[1] {
            let full = match self.kind {
                Kind::Add => g.clone(),
                Kind::Sub => zip_broadcast(op, g, &Tensor::scalar(-1.0), |g, m| g * m)?,
                Kind::Mul => zip_broadcast(op, g, &a, |g, a| g * a)?,
                Kind::Div => {
                    // d(a/b)/db = −a/b²
                    let q = zip_broadcast(op, &a, &b, |a, b| -a / (b * b))?;
                    zip_broadcast(op, g, &q, |g, q| g * q)?
                }
            };
            Some(reduce_to_shape(&full, &self.b_shape))
        } else {
            None
        };
        Ok(vec![ga, gb])
    }
}

impl Tape {
    fn binary(&mut self, kind: Kind, a: &Var, b: &Var) -> Result<Var> {
        let out = zip_broadcast(kind.name(), a.value(), b.value(), |x, y| kind.apply(x, y))?;
        let keep = matches!(kind, Kind::Mul | Kind::Div);
        self.record(kind.name(), out, &[a, b], || BinaryBackward {
            kind,
            a_shape: a.shape().to_vec(),
            b_shape: b.shape().to_vec(),
            a: keep.then(|| a.value().clone()),
            b: keep.then(|| b.value().clone()),
        })
    }

    /// `a + b` with broadcasting.
    pub fn add(&mut self, a: &Var, b: &Var) -> Result<Var> {
        self.binary(Kind::Add, a, b)
    }

    /// `a − b` with broadcasting.
    pub fn sub(&mut self, a: &Var, b: &Var) -> Result<Var> {
        self.binary(Kind::Sub, a, b)
    }

    /// `a ⊙ b` with broadcasting.
    pub fn mul(&mut self, a: &Var, b: &Var) -> Result<Var> {
        self.binary(Kind::Mul, a, b)
    }

    /// `a / b` with broadcasting.
    pub fn div(&mut self, a: &Var, b: &Var) -> Result<Var> {
        self.binary(Kind::Div, a, b)
    }
}
