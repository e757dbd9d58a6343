//! Training infrastructure that knows nothing of BERT: crash-safe checkpoint directories,
//! optimiser-state files and the JSON-lines metrics log.

pub mod checkpoint;
pub mod metrics;
