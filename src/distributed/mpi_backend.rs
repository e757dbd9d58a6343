//! [`Collective`] over MPI (the `mpi` feature).
//!
//! [`Collective::backward_and_reduce`] overlaps the gradient all-reduce with the backward pass:
//! the tape reports each parameter's gradient as soon as the reverse walk has finished it
//! ([`Tape::backward_with_hook`]); gradients are packed into buckets in that order and each
//! full bucket starts a non-blocking `MPI_Iallreduce` while the backward goes on. Pending
//! requests are tested at every new bucket so MPI makes progress without a helper thread.
//! Every rank records the same graph, so every rank posts the same buckets in the same order.

use super::{Collective, SyncStats};
use crate::autodiff::params::{ParamId, ParamStore};
use crate::autodiff::tape::{Tape, Var};
use crate::error::Result;
use crate::tensor::Tensor;
use mpi::collective::SystemOperation;
use mpi::request::{LocalScope, Request};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::time::Instant;

/// MPI's world communicator. Create one per process, before any other MPI use.
pub struct MpiCollective {
    world: SimpleCommunicator,
    scratch: std::cell::RefCell<Vec<f32>>,
    /// Send and receive buffers of the overlapped reduction, kept across steps so a step does
    /// not fault in fresh pages.
    buffers: std::cell::RefCell<(Vec<f32>, Vec<f32>)>,
    /// Elements per bucket of the overlapped reduction.
    pub bucket_elems: usize,
    /// Overlap the reduction with the backward (default; `CLOZE_MPI_OVERLAP=0` turns it off
    /// so the two can be measured against each other).
    pub overlap: bool,
    _universe: mpi::environment::Universe,
}

impl MpiCollective {
    /// Initialises MPI. Returns `None` if MPI was initialised already.
    pub fn init() -> Option<MpiCollective> {
        let universe = mpi::initialize()?;
        let world = universe.world();
        Some(MpiCollective {
            world,
            scratch: Default::default(),
            buffers: Default::default(),
            bucket_elems: 1 << 20,
            overlap: std::env::var("CLOZE_MPI_OVERLAP").map_or(true, |v| v != "0"),
            _universe: universe,
        })
    }
}

/// Where each gradient went: (parameter, offset in the buffer, length).
type Layout = Vec<(ParamId, usize, usize)>;

/// The buckets of one overlapped reduction: the unused tails of the send and receive buffers,
/// the bucket being filled, the requests in flight, and where each gradient went.
struct Buckets<'a, 's> {
    world: &'s SimpleCommunicator,
    scope: &'s LocalScope<'a>,
    send_rest: &'a mut [f32],
    recv_rest: &'a mut [f32],
    /// Elements in the bucket being filled (a prefix of `send_rest`).
    filled: usize,
    /// Offset of `send_rest` in the whole buffer.
    offset: usize,
    bucket_elems: usize,
    pending: Vec<Request<'a, [f32], &'s LocalScope<'a>>>,
    /// (parameter, offset, length) of every gradient sent.
    layout: Layout,
    sent: Vec<bool>,
    calls: usize,
}

impl<'a, 's> Buckets<'a, 's> {
    /// Adds one gradient (plus, the first time a parameter is sent, what earlier micro-batches
    /// accumulated in the store, which the store then forgets).
    fn push(&mut self, id: ParamId, grad: Option<&[f32]>, store: &mut ParamStore) {
        let len = store.value(id).len();
        let dst = &mut self.send_rest[self.filled..self.filled + len];
        match grad {
            Some(g) => dst.copy_from_slice(g),
            None => dst.fill(0.0),
        }
        if !self.sent[id.index()] {
            self.sent[id.index()] = true;
            if let Some(acc) = store.grad(id) {
                for (d, a) in dst.iter_mut().zip(acc.data()) {
                    *d += a;
                }
                store.grad_mut_or_zeros(id).fill(0.0);
            }
        }
        self.layout.push((id, self.offset + self.filled, len));
        self.filled += len;
        if self.filled >= self.bucket_elems {
            self.flush();
        }
    }

    /// Starts the all-reduce of the current bucket and lets earlier ones progress.
    fn flush(&mut self) {
        if self.filled == 0 {
            return;
        }
        let (s, srest) = std::mem::take(&mut self.send_rest).split_at_mut(self.filled);
        let (r, rrest) = std::mem::take(&mut self.recv_rest).split_at_mut(self.filled);
        self.send_rest = srest;
        self.recv_rest = rrest;
        let s: &'a [f32] = s;
        let req = self
            .world
            .immediate_all_reduce_into(self.scope, s, r, SystemOperation::sum());
        self.calls += 1;
        self.offset += self.filled;
        self.filled = 0;
        let pending = std::mem::take(&mut self.pending);
        self.pending = pending.into_iter().filter_map(|q| q.test().err()).collect();
        self.pending.push(req);
    }
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) {
        let mut send = self.scratch.borrow_mut();
        send.clear();
        send.extend_from_slice(buf);
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) {
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
    }
    fn barrier(&self) {
        self.world.barrier();
    }

    fn backward_and_reduce(
        &self,
        tape: &Tape,
        loss: &Var,
        store: &mut ParamStore,
    ) -> Result<SyncStats> {
        if self.size() == 1 || !self.overlap {
            return super::backward_then_reduce(self, tape, loss, store);
        }
        let n = store.len();
        // every parameter node once, plus the parameters the backward never reaches
        let total = tape.param_elements() + store.num_elements();
        let mut guard = self.buffers.borrow_mut();
        let (send, recv) = &mut *guard;
        if send.len() < total {
            send.resize(total, 0.0);
            recv.resize(total, 0.0);
        }
        let mut waited = 0.0;
        let (layout, calls, sent) =
            mpi::request::scope(|scope| -> Result<(Layout, usize, usize)> {
                let mut b = Buckets {
                    world: &self.world,
                    scope,
                    send_rest: &mut send[..],
                    recv_rest: &mut recv[..],
                    filled: 0,
                    offset: 0,
                    bucket_elems: self.bucket_elems,
                    pending: Vec::new(),
                    layout: Vec::new(),
                    sent: vec![false; n],
                    calls: 0,
                };
                let result =
                    tape.backward_with_hook(loss, Tensor::ones(loss.shape()), &mut |id, g| {
                        b.push(id, Some(g.data()), store)
                    });
                // Whatever happened, every posted request must complete before the scope ends.
                if let Err(e) = result {
                    let start = Instant::now();
                    b.flush();
                    for q in b.pending.drain(..) {
                        q.wait();
                    }
                    waited += start.elapsed().as_secs_f64();
                    return Err(e);
                }
                let start = Instant::now();
                for i in 0..n {
                    if !b.sent[i] {
                        let id = store.ids().nth(i).expect("index in range");
                        b.push(id, None, store);
                    }
                }
                b.flush();
                for q in b.pending.drain(..) {
                    q.wait();
                }
                waited += start.elapsed().as_secs_f64();
                Ok((std::mem::take(&mut b.layout), b.calls, b.offset))
            })?;
        for id in store.ids().collect::<Vec<_>>() {
            store.grad_mut_or_zeros(id).fill(0.0);
        }
        for (id, off, len) in layout {
            for (g, r) in store
                .grad_mut_or_zeros(id)
                .iter_mut()
                .zip(&recv[off..off + len])
            {
                *g += r;
            }
        }
        Ok(SyncStats {
            bytes: sent * 4,
            calls,
            seconds: waited,
        })
    }
}
