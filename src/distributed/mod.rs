//! Data-parallel training: every rank holds the whole model, computes gradients on its own
//! shard of the global batch, and the gradients are summed across ranks before the optimiser
//! step.
//!
//! The transport is MPI (Open MPI through the `mpi` crate), behind the `mpi` cargo feature;
//! without it only [`SingleProcess`] exists and nothing links against MPI. Losses are
//! normalised by the *global* batch (every rank knows the whole global batch, which is
//! deterministic from the seed), so summing the ranks' gradients gives the gradient of the
//! global-batch loss whatever the number of ranks.

#[cfg(feature = "mpi")]
pub mod mpi_backend;

use crate::autodiff::params::ParamStore;
use crate::autodiff::tape::{Tape, Var};
use crate::error::Result;
use crate::tensor::Tensor;
use std::time::Instant;

/// The collective operations data-parallel training needs.
pub trait Collective {
    /// This process's index, `0..size()`; rank 0 writes logs and checkpoints.
    fn rank(&self) -> usize;
    /// Number of processes taking part.
    fn size(&self) -> usize;
    /// Element-wise sum across ranks, in place, identical on every rank.
    fn all_reduce_sum(&self, buf: &mut [f32]);
    /// Element-wise sum of f64 values (loss and count totals).
    fn all_reduce_sum_f64(&self, buf: &mut [f64]);
    /// Returns once every rank has reached it.
    fn barrier(&self);

    /// Runs the backward of the scalar `loss`, adds its gradients to `store`, and replaces every
    /// gradient in `store` by its sum over ranks. The default reduces after the backward in
    /// buckets ([`GradSync`]); the MPI backend overlaps the reduction with the backward.
    fn backward_and_reduce(
        &self,
        tape: &Tape,
        loss: &Var,
        store: &mut ParamStore,
    ) -> Result<SyncStats> {
        backward_then_reduce(self, tape, loss, store)
    }
}

/// The backward of `loss` into `store`, then the bucketed sum over ranks ([`GradSync`]): the
/// default [`Collective::backward_and_reduce`], and the MPI backend's when it does not overlap.
pub fn backward_then_reduce<C: Collective + ?Sized>(
    comm: &C,
    tape: &Tape,
    loss: &Var,
    store: &mut ParamStore,
) -> Result<SyncStats> {
    let grads = tape.backward_with(loss, Tensor::ones(loss.shape()))?;
    store.accumulate(&grads)?;
    Ok(GradSync::default().sync(comm, store))
}

/// One process, no communication.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _buf: &mut [f32]) {}
    fn all_reduce_sum_f64(&self, _buf: &mut [f64]) {}
    fn barrier(&self) {}
}

/// What one gradient synchronisation did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SyncStats {
    /// Bytes of gradient each rank contributed.
    pub bytes: usize,
    /// All-reduce calls made.
    pub calls: usize,
    /// Wall time spent in the synchronisation.
    pub seconds: f64,
}

/// Sums gradients across ranks in buckets: a tensor of at least `bucket_elems` elements is
/// reduced on its own, smaller ones are packed together until a bucket is full. Parameters are
/// visited last to first (the order backward finishes them).
#[derive(Clone, Copy, Debug)]
pub struct GradSync {
    /// Elements (f32) per reduction bucket; larger tensors are reduced alone.
    pub bucket_elems: usize,
}

impl Default for GradSync {
    /// 4 MiB buckets.
    fn default() -> Self {
        GradSync {
            bucket_elems: 1 << 20,
        }
    }
}

impl GradSync {
    /// Replaces every parameter's gradient by its sum over all ranks. A parameter that no
    /// backward pass reached contributes zeros, so every rank sends the same layout.
    pub fn sync<C: Collective + ?Sized>(&self, comm: &C, store: &mut ParamStore) -> SyncStats {
        let start = Instant::now();
        let mut stats = SyncStats::default();
        if comm.size() == 1 {
            return stats;
        }
        let ids: Vec<_> = store.ids().collect();
        let mut bucket: Vec<f32> = Vec::with_capacity(self.bucket_elems);
        let mut members = Vec::new();
        let flush = |store: &mut ParamStore,
                     bucket: &mut Vec<f32>,
                     members: &mut Vec<_>,
                     stats: &mut SyncStats| {
            if bucket.is_empty() {
                return;
            }
            comm.all_reduce_sum(bucket);
            stats.calls += 1;
            let mut off = 0;
            for &id in members.iter() {
                let g = store.grad_mut_or_zeros(id);
                g.copy_from_slice(&bucket[off..off + g.len()]);
                off += g.len();
            }
            bucket.clear();
            members.clear();
        };
        for &id in ids.iter().rev() {
            let len = store.value(id).len();
            stats.bytes += len * 4;
            if len >= self.bucket_elems {
                comm.all_reduce_sum(store.grad_mut_or_zeros(id));
                stats.calls += 1;
                continue;
            }
            if bucket.len() + len > self.bucket_elems {
                flush(store, &mut bucket, &mut members, &mut stats);
            }
            bucket.extend_from_slice(store.grad_mut_or_zeros(id));
            members.push(id);
        }
        flush(store, &mut bucket, &mut members, &mut stats);
        stats.seconds = start.elapsed().as_secs_f64();
        stats
    }
}

/// The contiguous share `[start, end)` of `total` items that `rank` of `size` processes
/// (the first `total % size` ranks take one more).
pub fn shard(total: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let base = total / size;
    let extra = total % size;
    let start = rank * base + rank.min(extra);
    let len = base + usize::from(rank < extra);
    start..start + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_everything_once() {
        for total in [0, 1, 7, 32, 33] {
            for size in 1..=5 {
                let mut seen = Vec::new();
                for r in 0..size {
                    seen.extend(shard(total, r, size));
                }
                assert_eq!(seen, (0..total).collect::<Vec<_>>());
            }
        }
    }
}
