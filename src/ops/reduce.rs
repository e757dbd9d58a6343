//! Reductions: `sum`, `mean` (over everything), `sum_axis`, `mean_axis`.
//!
//! Sums accumulate in f64 in a fixed order, so results do not depend on threads.
//! Backward: the output gradient broadcast back over the reduced axis (scaled by 1/n for means).
//!
//! Kernel: inline loops.

use crate::autodiff::tape::{Backward, Tape, Var};
use crate::error::{invalid, Result};
use crate::tensor::Tensor;

struct SumAllBackward {
    shape: Vec<usize>,
    scale: f32,
    name: &'static str,
}

impl Backward for SumAllBackward {
    fn name(&self) -> &'static str {
        self.name
    }
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let v = g.data()[0] * self.scale;
        Ok(vec![Some(Tensor::full(&self.shape, v))])
    }
}

struct SumAxisBackward {
    shape: Vec<usize>,
    axis: usize,
    scale: f32,
    name: &'static str,
}

impl Backward for SumAxisBackward {
    fn name(&self) -> &'static str {
        self.name
    }
    fn backward(&self, g: &Tensor, _needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (outer, n, inner) = split_axis(&self.shape, self.axis);
        let gd = g.data();
        let s = self.scale;
        Ok(vec![Some(Tensor::overwritten(&self.shape, |out| {
            for o in 0..outer {
                for k in 0..n {
                    for i in 0..inner {
                        out[(o * n + k) * inner + i] = gd[o * inner + i] * s;
                    }
                }
            }
        }))])
    }
}

/// (product of axes before, the axis, product of axes after).
fn split_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

impl Tape {
    fn sum_all(&mut self, x: &Var, mean: bool) -> Result<Var> {
        let name = if mean { "mean" } else { "sum" };
        let n = x.value().len();
        if mean && n == 0 {
            return invalid(name, "mean of an empty tensor");
        }
        let total: f64 = x.value().data().iter().map(|&v| v as f64).sum();
        let scale = if mean { 1.0 / n as f32 } else { 1.0 };
        let value = if mean { total / n as f64 } else { total };
        let out = Tensor::scalar(value as f32);
        self.record(name, out, &[x], || SumAllBackward {
            shape: x.shape().to_vec(),
            scale,
            name,
        })
    }

    /// Sum of all elements (a 0-dimensional result).
    pub fn sum(&mut self, x: &Var) -> Result<Var> {
        self.sum_all(x, false)
    }

    /// Mean of all elements (a 0-dimensional result).
    pub fn mean(&mut self, x: &Var) -> Result<Var> {
        self.sum_all(x, true)
    }

    fn reduce_axis(&mut self, x: &Var, axis: usize, keepdim: bool, mean: bool) -> Result<Var> {
        let name = if mean { "mean_axis" } else { "sum_axis" };
        let shape = x.shape();
        if axis >= shape.len() {
            return invalid(
                name,
                format!("axis {axis} is out of range for shape {shape:?}"),
            );
        }
        if mean && shape[axis] == 0 {
            return invalid(
                name,
                format!("mean over axis {axis} of length 0 (shape {shape:?})"),
            );
        }
        let (outer, n, inner) = split_axis(shape, axis);
        let mut out_shape = shape.to_vec();
        if keepdim {
            out_shape[axis] = 1;
        } else {
            out_shape.remove(axis);
        }
        let scale = if mean { 1.0 / n as f64 } else { 1.0 };
        let xd = x.value().data();
        let out = Tensor::overwritten(&out_shape, |o| {
            let mut acc = vec![0.0f64; inner];
            for a in 0..outer {
                acc.fill(0.0);
                for k in 0..n {
                    let row = &xd[(a * n + k) * inner..(a * n + k + 1) * inner];
                    for (s, &v) in acc.iter_mut().zip(row) {
                        *s += v as f64;
                    }
                }
                for i in 0..inner {
                    o[a * inner + i] = (acc[i] * scale) as f32;
                }
            }
        });
        self.record(name, out, &[x], || SumAxisBackward {
            shape: shape.to_vec(),
            axis,
            scale: scale as f32,
            name,
        })
    }

    /// Sum over one axis; `keepdim` keeps it with length 1.
    pub fn sum_axis(&mut self, x: &Var, axis: usize, keepdim: bool) -> Result<Var> {
        self.reduce_axis(x, axis, keepdim, false)
    }

    /// Mean over one axis; `keepdim` keeps it with length 1.
    pub fn mean_axis(&mut self, x: &Var, axis: usize, keepdim: bool) -> Result<Var> {
        self.reduce_axis(x, axis, keepdim, true)
    }
}
