//! [`Collective`] over MPI (the `mpi` feature).

use super::Collective;
use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

/// MPI's world communicator. Create one per process, before any other MPI use.
pub struct MpiCollective {
    world: SimpleCommunicator,
    scratch: std::cell::RefCell<Vec<f32>>,
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
            _universe: universe,
        })
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
}
