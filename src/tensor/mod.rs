//! [`Tensor`]: f32 values in row-major order with a shape.
//!
//! Clones are cheap (the storage is shared behind an `Arc`); writing through
//! [`Tensor::make_mut`] copies first if the storage is shared. Buffers of dropped tensors go
//! back to a pool ([`pool`]) and are reused by later tensors of the same size, so a training step
//! that repeats the previous step's shapes does not go back to the allocator.

pub mod pool;

use crate::error::{invalid, shape_err, Result};
use half::{bf16, f16};
use rand::Rng;
use rand_distr::{Distribution, Normal, StandardNormal, Uniform};
use std::fmt;
use std::sync::Arc;

/// A buffer that returns itself to the pool when the last tensor using it is dropped.
struct Storage(Vec<f32>);

impl Drop for Storage {
    fn drop(&mut self) {
        pool::recycle(std::mem::take(&mut self.0));
    }
}

/// An f32 tensor: shared storage plus a shape. Row-major, always contiguous.
#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    shape: Arc<[usize]>,
}

/// Number of elements of a shape (1 for a scalar `[]`).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Index of the first largest value of `row` (0 for an empty row; NaN is never chosen): the
/// predicted class of a row of logits.
pub fn argmax(row: &[f32]) -> usize {
    // Two passes that vectorise: the largest value (NaN never compares greater, so it is
    // skipped), then the first position holding it. Same answer as a single left-to-right
    // scan keeping the first strictly larger value; an empty or all-NaN row gives 0.
    const LANES: usize = 16;
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    let mut best = f32::NEG_INFINITY;
    for &v in acc.iter().chain(tail) {
        if v > best {
            best = v;
        }
    }
    row.iter().position(|&v| v == best).unwrap_or(0)
}

impl Tensor {
    /// Wraps `data` with `shape`; errors if the element count differs.
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != data.len() {
            return shape_err(
                "Tensor::from_vec",
                format!(
                    "shape {:?} holds {} elements but the data has {}",
                    shape,
                    numel(shape),
                    data.len()
                ),
            );
        }
        Ok(Tensor::from_parts(data, shape))
    }

    /// Like `from_vec` for callers that have already checked the length.
    pub(crate) fn from_parts(data: Vec<f32>, shape: &[usize]) -> Tensor {
        debug_assert_eq!(numel(shape), data.len());
        Tensor {
            storage: Arc::new(Storage(data)),
            shape: shape.into(),
        }
    }

    /// A tensor of `shape` filled by `f(flat_index)`.
    pub fn from_fn(shape: &[usize], mut f: impl FnMut(usize) -> f32) -> Tensor {
        let n = numel(shape);
        let mut data = pool::take(n);
        for (i, v) in data.iter_mut().enumerate() {
            *v = f(i);
        }
        Tensor::from_parts(data, shape)
    }

    /// A buffer of `shape` whose contents the caller must overwrite completely.
    pub(crate) fn overwritten(shape: &[usize], fill: impl FnOnce(&mut [f32])) -> Tensor {
        let mut data = pool::take(numel(shape));
        fill(&mut data);
        Tensor::from_parts(data, shape)
    }

    /// A tensor of `shape` filled with 0.
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 0.0)
    }

    /// A tensor of `shape` filled with 1.
    pub fn ones(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 1.0)
    }

    /// A tensor of `shape` filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Tensor {
        Tensor::overwritten(shape, |d| d.fill(value))
    }

    /// A 0-dimensional tensor.
    pub fn scalar(value: f32) -> Tensor {
        Tensor::full(&[], value)
    }

    /// Normal(mean, std) samples.
    pub fn randn(shape: &[usize], mean: f32, std: f32, rng: &mut impl Rng) -> Result<Tensor> {
        let dist = Normal::new(mean, std)
            .or_else(|e| invalid("Tensor::randn", format!("mean {mean}, std {std}: {e}")))?;
        Ok(Tensor::from_fn(shape, |_| dist.sample(rng)))
    }

    /// Uniform samples in `[low, high)`.
    pub fn uniform(shape: &[usize], low: f32, high: f32, rng: &mut impl Rng) -> Result<Tensor> {
        let dist = Uniform::new(low, high)
            .or_else(|e| invalid("Tensor::uniform", format!("range [{low}, {high}): {e}")))?;
        Ok(Tensor::from_fn(shape, |_| dist.sample(rng)))
    }

    /// Normal(0, std) samples redrawn until they fall within two standard deviations, as
    /// TensorFlow's `truncated_normal_initializer` (BERT's initialiser) does.
    pub fn trunc_normal(shape: &[usize], std: f32, rng: &mut impl Rng) -> Result<Tensor> {
        if !(std.is_finite() && std > 0.0) {
            return invalid(
                "Tensor::trunc_normal",
                format!("std {std} must be positive"),
            );
        }
        Ok(Tensor::from_fn(shape, |_| loop {
            let z: f32 = StandardNormal.sample(rng);
            if z.abs() <= 2.0 {
                break z * std;
            }
        }))
    }

    /// Axis lengths, outermost first (`[]` for a scalar).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.storage.0.len()
    }

    /// Whether the tensor has no element (some axis is 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.storage.0
    }

    /// A copy of the values, row-major.
    pub fn to_vec(&self) -> Vec<f32> {
        self.data().to_vec()
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.len() != 1 {
            return shape_err(
                "Tensor::item",
                format!(
                    "tensor of shape {:?} has {} elements, not 1",
                    self.shape(),
                    self.len()
                ),
            );
        }
        Ok(self.data()[0])
    }

    /// Flat offset of a multi-index, with a clear error when it is out of range.
    pub fn offset(&self, index: &[usize]) -> Result<usize> {
        if index.len() != self.ndim() {
            return shape_err(
                "Tensor::get",
                format!(
                    "index {:?} has {} axes, tensor shape {:?} has {}",
                    index,
                    index.len(),
                    self.shape(),
                    self.ndim()
                ),
            );
        }
        let mut off = 0;
        for (axis, (&i, &d)) in index.iter().zip(self.shape()).enumerate() {
            if i >= d {
                return invalid(
                    "Tensor::get",
                    format!(
                        "index {i} on axis {axis} is out of range for shape {:?}",
                        self.shape()
                    ),
                );
            }
            off = off * d + i;
        }
        Ok(off)
    }

    /// One element by multi-index.
    pub fn get(&self, index: &[usize]) -> Result<f32> {
        Ok(self.data()[self.offset(index)?])
    }

    /// Mutable access to the values; copies the storage first if another tensor shares it.
    pub fn make_mut(&mut self) -> &mut [f32] {
        if Arc::get_mut(&mut self.storage).is_none() {
            let copy = Tensor::overwritten(self.shape(), |d| d.copy_from_slice(self.data()));
            self.storage = copy.storage;
        }
        &mut Arc::get_mut(&mut self.storage)
            .expect("unique after copy")
            .0
    }

    /// The same values under another shape with the same element count (storage shared).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.len() {
            return shape_err(
                "reshape",
                format!(
                    "cannot view {:?} ({} elements) as {:?} ({} elements)",
                    self.shape(),
                    self.len(),
                    shape,
                    numel(shape)
                ),
            );
        }
        Ok(Tensor {
            storage: self.storage.clone(),
            shape: shape.into(),
        })
    }

    /// Whether two tensors share storage (used by tests of copy-on-write).
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// Largest |a − b| over all elements; errors on different shapes.
    pub fn max_abs_diff(&self, other: &Tensor) -> Result<f32> {
        if self.shape() != other.shape() {
            return shape_err(
                "max_abs_diff",
                format!("{:?} vs {:?}", self.shape(), other.shape()),
            );
        }
        Ok(self
            .data()
            .iter()
            .zip(other.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max))
    }

    /// The values rounded to bf16 (round to nearest even).
    pub fn to_bf16(&self) -> Vec<bf16> {
        let mut out = vec![bf16::ZERO; self.len()];
        cloze_kernels::convert::f32_to_bf16(self.data(), &mut out);
        out
    }

    /// A tensor from bf16 values (exact).
    pub fn from_bf16(data: &[bf16], shape: &[usize]) -> Result<Tensor> {
        let mut out = vec![0.0; data.len()];
        cloze_kernels::convert::bf16_to_f32(data, &mut out);
        Tensor::from_vec(out, shape)
    }

    /// The values rounded to f16 (round to nearest even; overflow gives ±inf).
    pub fn to_f16(&self) -> Vec<f16> {
        let mut out = vec![f16::ZERO; self.len()];
        cloze_kernels::convert::f32_to_f16(self.data(), &mut out);
        out
    }

    /// A tensor from f16 values (exact).
    pub fn from_f16(data: &[f16], shape: &[usize]) -> Result<Tensor> {
        let mut out = vec![0.0; data.len()];
        cloze_kernels::convert::f16_to_f32(data, &mut out);
        Tensor::from_vec(out, shape)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOW: usize = 8;
        write!(f, "Tensor{:?} [", self.shape())?;
        for (i, v) in self.data().iter().take(SHOW).enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{v}")?;
        }
        if self.len() > SHOW {
            write!(f, ", … {} more", self.len() - SHOW)?;
        }
        write!(f, "]")
    }
}

impl PartialEq for Tensor {
    /// Same shape and bit-for-bit equal values (NaN equals NaN of the same bits).
    fn eq(&self, other: &Tensor) -> bool {
        self.shape() == other.shape()
            && self
                .data()
                .iter()
                .zip(other.data())
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn argmax_picks_the_first_largest() {
        assert_eq!(argmax(&[0.5, 2.0, -1.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, -3.0]), 1);
        assert_eq!(argmax(&[]), 0);
        assert_eq!(argmax(&[f32::NAN; 40]), 0);
        assert_eq!(argmax(&[f32::NEG_INFINITY; 3]), 0);
        // the vectorised passes against a one-pass scan, on rows with ties, NaN and ±0 around
        // the 16-lane boundaries
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for len in [1usize, 2, 15, 16, 17, 31, 33, 100, 257] {
            for _ in 0..50 {
                let row: Vec<f32> = (0..len)
                    .map(|_| match rand::Rng::random_range(&mut rng, 0..8) {
                        0 => f32::NAN,
                        1 => 0.0,
                        2 => -0.0,
                        3 => 3.0,
                        _ => rand::Rng::random_range(&mut rng, -4.0f32..4.0),
                    })
                    .collect();
                let mut want = (0, f32::NEG_INFINITY);
                for (i, &v) in row.iter().enumerate() {
                    if v > want.1 {
                        want = (i, v);
                    }
                }
                assert_eq!(argmax(&row), want.0, "{row:?}");
            }
        }
    }

    #[test]
    fn from_vec_rejects_wrong_length_and_names_both() {
        let err = Tensor::from_vec(vec![1.0; 5], &[2, 3])
            .unwrap_err()
            .to_string();
        assert!(err.contains("[2, 3]") && err.contains('5'), "{err}");
    }

    #[test]
    fn make_mut_copies_shared_storage() {
        let a = Tensor::ones(&[4]);
        let mut b = a.clone();
        assert!(a.shares_storage(&b));
        b.make_mut()[0] = 7.0;
        assert_eq!(a.data(), &[1.0; 4]);
        assert_eq!(b.data(), &[7.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn get_checks_range() {
        let t = Tensor::from_fn(&[2, 3], |i| i as f32);
        assert_eq!(t.get(&[1, 2]).unwrap(), 5.0);
        let err = t.get(&[2, 0]).unwrap_err().to_string();
        assert!(err.contains("index 2 on axis 0"), "{err}");
    }

    #[test]
    fn trunc_normal_stays_within_two_std() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let t = Tensor::trunc_normal(&[10_000], 0.02, &mut rng).unwrap();
        assert!(t.data().iter().all(|v| v.abs() <= 0.04));
        let mean: f32 = t.data().iter().sum::<f32>() / 10_000.0;
        assert!(mean.abs() < 0.001, "mean {mean}");
    }

    #[test]
    fn seeded_randn_is_reproducible() {
        let mut r1 = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut r2 = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let a = Tensor::randn(&[33], 0.0, 1.0, &mut r1).unwrap();
        let b = Tensor::randn(&[33], 0.0, 1.0, &mut r2).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bf16_and_f16_round_trip_representable_values() {
        let t = Tensor::from_vec(vec![1.0, -2.5, 0.15625, 1024.0], &[4]).unwrap();
        assert_eq!(Tensor::from_bf16(&t.to_bf16(), &[4]).unwrap(), t);
        assert_eq!(Tensor::from_f16(&t.to_f16(), &[4]).unwrap(), t);
        let x = Tensor::from_vec(vec![1.0 + 1.0 / 512.0], &[1]).unwrap();
        // 1 + 2^-9 is halfway between two bf16 values: ties round to even (1.0).
        assert_eq!(
            Tensor::from_bf16(&x.to_bf16(), &[1]).unwrap().data(),
            &[1.0]
        );
    }
}
