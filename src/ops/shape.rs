//! Shape ops: `reshape`, `transpose`, `permute`, `slice`, `concat`, `split`.
//!
//! None of them computes anything; they move values. Backward moves the gradient back:
//!
//! - `reshape`: the gradient reshaped to the input's shape (storage shared, no copy).
//! - `permute(x, π)`: `y[i₀, …, iₙ₋₁] = x[j]` with `j[π[k]] = i[k]`; the gradient is the output
//!   gradient permuted by the inverse permutation π⁻¹ (`π⁻¹[π[k]] = k`). `transpose(x, a, b)` is
//!   the permutation swapping axes a and b, its own inverse.
//! - `slice(x, axis, start, end)`: the gradient is zeros of x's shape with the output gradient
//!   scattered into `start..end` along `axis`.
//! - `concat(xs, axis)`: input i receives the block of the output gradient it filled.
//! - `split(x, axis, sizes)`: recorded as one `slice` per piece, so x's gradient is the sum of
//!   the pieces' scattered gradients (each scatter writes disjoint positions into zeros).
//!
//! Kernel: inline copies (contiguous block copies for slice/concat, a strided gather for
//! permute).

use crate::autodiff::tape::{Backward, Tape, Var};
use crate::error::{invalid, shape_err, Result};
use crate::ops::broadcast::for_each_index;
use crate::tensor::Tensor;

/// (product of axes before, the axis, product of axes after).
fn split_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// Views `src` and `dst` as `[outer, src_n, inner]` and `[outer, dst_n, inner]` and copies
/// `len` rows along the middle axis: `dst[o, dst_start + r, :] = src[o, src_start + r, :]`.
#[allow(clippy::too_many_arguments)]
fn copy_block(
    src: &[f32],
    src_n: usize,
    src_start: usize,
    dst: &mut [f32],
    dst_n: usize,
    dst_start: usize,
    len: usize,
    outer: usize,
    inner: usize,
) {
    let w = len * inner;
    if w == 0 {
        return;
    }
    for o in 0..outer {
        let s = (o * src_n + src_start) * inner;
        let d = (o * dst_n + dst_start) * inner;
        dst[d..d + w].copy_from_slice(&src[s..s + w]);
    }
}

/// Row-major strides of `shape`, in elements.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![0; shape.len()];
    let mut s = 1;
    for i in (0..shape.len()).rev() {
        st[i] = s;
        s *= shape[i];
    }
    st
}

/// `x` permuted: output axis k is input axis `perm[k]`. `perm` must be a valid permutation.
fn permute_tensor(x: &Tensor, perm: &[usize]) -> Tensor {
    if perm.iter().enumerate().all(|(k, &p)| k == p) {
        return x.clone();
    }
    let in_strides = strides(x.shape());
    let out_shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
    let src: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let xd = x.data();
    let last = perm.len() - 1;
    if perm[last] == last && out_shape[last] > 1 {
        // The last axis stays last (attention's head split and merge): each output row is one
        // contiguous run of the input, copied whole. Rows are split over threads when there
        // are many; a copy's result does not depend on who made it.
        use rayon::prelude::*;
        let d = out_shape[last];
        let lead = &out_shape[..last];
        let row_src = |r: usize| {
            let (mut rest, mut off) = (r, 0);
            for k in (0..last).rev() {
                off += (rest % lead[k]) * src[k];
                rest /= lead[k];
            }
            off
        };
        return Tensor::overwritten(&out_shape, |out| {
            let rows_per_task = (1 << 14) / d + 1;
            out.par_chunks_mut(rows_per_task * d)
                .enumerate()
                .for_each(|(t, block)| {
                    for (j, row) in block.chunks_exact_mut(d).enumerate() {
                        let s = row_src(t * rows_per_task + j);
                        row.copy_from_slice(&xd[s..s + d]);
                    }
                });
        });
    }
    let zero = vec![0; perm.len()];
    Tensor::overwritten(&out_shape, |out| {
        for_each_index(&out_shape, &src, &zero, |o, i, _| out[o] = xd[i]);
    })
}

struct ReshapeBackward {
    in_shape: Vec<usize>,
}

impl Backward for ReshapeBackward {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.reshape(&self.in_shape)?)])
    }
}

struct PermuteBackward {
    name: &'static str,
    /// The inverse permutation, applied to the output gradient.
    inverse: Vec<usize>,
}

impl Backward for PermuteBackward {
    fn name(&self) -> &'static str {
        self.name
    }
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(permute_tensor(g, &self.inverse))])
    }
}

struct SliceBackward {
    name: &'static str,
    in_shape: Vec<usize>,
    axis: usize,
    start: usize,
}

impl Backward for SliceBackward {
    fn name(&self) -> &'static str {
        self.name
    }
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (outer, n, inner) = split_axis(&self.in_shape, self.axis);
        let len = g.shape()[self.axis];
        let mut dx = Tensor::zeros(&self.in_shape);
        copy_block(
            g.data(),
            len,
            0,
            dx.make_mut(),
            n,
            self.start,
            len,
            outer,
            inner,
        );
        Ok(vec![Some(dx)])
    }
}

struct ConcatBackward {
    axis: usize,
    /// Each input's shape.
    shapes: Vec<Vec<usize>>,
}

impl Backward for ConcatBackward {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (outer, total, inner) = split_axis(g.shape(), self.axis);
        let mut offset = 0;
        let mut out = Vec::with_capacity(self.shapes.len());
        for (shape, &need) in self.shapes.iter().zip(needs) {
            let len = shape[self.axis];
            out.push(need.then(|| {
                Tensor::overwritten(shape, |dst| {
                    copy_block(g.data(), total, offset, dst, len, 0, len, outer, inner)
                })
            }));
            offset += len;
        }
        Ok(out)
    }
}

impl Tape {
    /// The same values under another shape with the same number of elements. The output
    /// shares x's storage. Errors naming both shapes when the element counts differ.
    pub fn reshape(&mut self, x: &Var, shape: &[usize]) -> Result<Var> {
        let out = x.value().reshape(shape)?;
        self.record("reshape", out, &[x], || ReshapeBackward {
            in_shape: x.shape().to_vec(),
        })
    }

    fn permute_op(&mut self, op: &'static str, x: &Var, perm: &[usize]) -> Result<Var> {
        let out = permute_tensor(x.value(), perm);
        self.record(op, out, &[x], || {
            let mut inverse = vec![0; perm.len()];
            for (k, &p) in perm.iter().enumerate() {
                inverse[p] = k;
            }
            PermuteBackward { name: op, inverse }
        })
    }

    /// Reorders the axes: output axis k is input axis `perm[k]` (as NumPy's `transpose(perm)`
    /// and PyTorch's `permute`). `perm` must list every axis of x exactly once.
    pub fn permute(&mut self, x: &Var, perm: &[usize]) -> Result<Var> {
        const OP: &str = "permute";
        let rank = x.shape().len();
        let mut seen = vec![false; rank];
        let valid = perm.len() == rank
            && perm
                .iter()
                .all(|&p| p < rank && !std::mem::replace(&mut seen[p], true));
        if !valid {
            return invalid(
                OP,
                format!(
                    "{perm:?} is not a permutation of the axes 0..{rank} of shape {:?}",
                    x.shape()
                ),
            );
        }
        self.permute_op(OP, x, perm)
    }

    /// Swaps axes `a` and `b` (a copy; `a == b` returns the values unchanged).
    pub fn transpose(&mut self, x: &Var, a: usize, b: usize) -> Result<Var> {
        const OP: &str = "transpose";
        let rank = x.shape().len();
        if a >= rank || b >= rank {
            return invalid(
                OP,
                format!(
                    "axes ({a}, {b}) are out of range for shape {:?} ({rank} axes)",
                    x.shape()
                ),
            );
        }
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(a, b);
        self.permute_op(OP, x, &perm)
    }

    fn slice_op(
        &mut self,
        op: &'static str,
        x: &Var,
        axis: usize,
        start: usize,
        end: usize,
    ) -> Result<Var> {
        let shape = x.shape();
        let (outer, n, inner) = split_axis(shape, axis);
        let len = end - start;
        let mut out_shape = shape.to_vec();
        out_shape[axis] = len;
        let out = Tensor::overwritten(&out_shape, |dst| {
            copy_block(x.value().data(), n, start, dst, len, 0, len, outer, inner)
        });
        self.record(op, out, &[x], || SliceBackward {
            name: op,
            in_shape: shape.to_vec(),
            axis,
            start,
        })
    }

    /// The elements `start..end` along `axis` (a copy). Requires `start ≤ end ≤` the axis
    /// length; an empty range gives an empty tensor.
    pub fn slice(&mut self, x: &Var, axis: usize, start: usize, end: usize) -> Result<Var> {
        const OP: &str = "slice";
        let shape = x.shape();
        if axis >= shape.len() {
            return invalid(
                OP,
                format!("axis {axis} is out of range for shape {shape:?}"),
            );
        }
        if start > end || end > shape[axis] {
            return invalid(
                OP,
                format!(
                    "range {start}..{end} is out of bounds for axis {axis} of length {} (shape {shape:?})",
                    shape[axis]
                ),
            );
        }
        self.slice_op(OP, x, axis, start, end)
    }

    /// Joins tensors along `axis`. All must have the same number of axes and equal lengths on
    /// every axis but `axis`.
    pub fn concat(&mut self, xs: &[&Var], axis: usize) -> Result<Var> {
        const OP: &str = "concat";
        let Some(first) = xs.first() else {
            return invalid(OP, "no tensors to concatenate");
        };
        let shapes: Vec<Vec<usize>> = xs.iter().map(|x| x.shape().to_vec()).collect();
        let rank = first.shape().len();
        if axis >= rank {
            return invalid(
                OP,
                format!("axis {axis} is out of range for the shapes {shapes:?}"),
            );
        }
        let fits = |s: &Vec<usize>| {
            s.len() == rank
                && s.iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b)
        };
        if !shapes.iter().all(fits) {
            return shape_err(
                OP,
                format!("shapes {shapes:?} differ on an axis other than the concat axis {axis}"),
            );
        }
        let total: usize = shapes.iter().map(|s| s[axis]).sum();
        let mut out_shape = first.shape().to_vec();
        out_shape[axis] = total;
        let (outer, _, inner) = split_axis(&out_shape, axis);
        let out = Tensor::overwritten(&out_shape, |dst| {
            let mut offset = 0;
            for x in xs {
                let len = x.shape()[axis];
                copy_block(
                    x.value().data(),
                    len,
                    0,
                    dst,
                    total,
                    offset,
                    len,
                    outer,
                    inner,
                );
                offset += len;
            }
        });
        self.record(OP, out, xs, || ConcatBackward { axis, shapes })
    }

    /// Cuts x along `axis` into consecutive pieces of the given lengths, which must add up to
    /// the axis length. Each piece is recorded as a slice of x.
    pub fn split(&mut self, x: &Var, axis: usize, sizes: &[usize]) -> Result<Vec<Var>> {
        const OP: &str = "split";
        let shape = x.shape();
        if axis >= shape.len() {
            return invalid(
                OP,
                format!("axis {axis} is out of range for shape {shape:?}"),
            );
        }
        let sum: usize = sizes.iter().sum();
        if sum != shape[axis] {
            return invalid(
                OP,
                format!(
                    "sizes {sizes:?} add up to {sum}, but axis {axis} of shape {shape:?} has length {}",
                    shape[axis]
                ),
            );
        }
        let mut start = 0;
        let mut pieces = Vec::with_capacity(sizes.len());
        for &len in sizes {
            pieces.push(self.slice_op(OP, x, axis, start, start + len)?);
            start += len;
        }
        Ok(pieces)
    }
}
