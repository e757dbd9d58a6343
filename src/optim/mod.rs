//! Optimisers and learning-rate schedules over a [`crate::ParamStore`].
//!
//! - [`adamw`]: AdamW with decoupled weight decay (BERT's `AdamWeightDecayOptimizer` by default:
//!   no bias correction, ε = 1e-6, decay 0.01 skipping LayerNorm parameters and biases).
//! - [`schedule`]: linear warm-up then linear decay, as BERT's `optimization.py` computes it.

pub mod adamw;
pub mod schedule;

pub use adamw::{AdamW, AdamWConfig};
pub use schedule::LinearWarmupDecay;
