//! Reverse-mode automatic differentiation.
//!
//! - [`tape`]: the recorder and the backward pass (read this file first).
//! - [`params`]: parameters and their accumulated gradients, kept across steps.
//! - [`gradcheck`]: finite-difference checking of any composition of ops.

pub mod gradcheck;
pub mod params;
pub mod tape;
