//! cloze-kernels: the numeric kernels under cloze's autodiff engine.
//!
//! Plain functions over slices; this crate knows nothing of tensors or tapes. Every kernel has a
//! plain scalar reference (`*_scalar` or the `scalar` path of its dispatch) that the fast paths are
//! tested against. The instruction set is chosen once per process by [`dispatch::active`]
//! (override with `CLOZE_KERNEL=scalar|portable|avx2|avx512|neon`); each kernel also has a
//! `*_with(isa, ..)` form so tests and benches can run every path on one machine.
//!
//! One folder per op (`gelu`, `layer_norm`, `softmax`, `cross_entropy`, `attention`, `dropout`, `adamw`):
//! its `mod.rs` holds the API and the scalar reference, `vector.rs` beside it the SIMD
//! implementation, written once over the `Simd` trait of [`simd`] (whose `loops` and
//! `math` hold the loops and the vector `exp` every op shares). The tests are
//! `kernels/tests/<op>.rs`, on one harness (`kernels/tests/common`).
//!
//! `unsafe` appears only in this crate, in `#[target_feature]` functions, and every block
//! carries a `// SAFETY:` comment; the safe wrappers check slice lengths before calling in.

pub mod adamw;
pub mod attention;
pub mod convert;
pub mod cross_entropy;
pub mod dispatch;
pub mod dropout;
pub mod gelu;
pub mod gemm;
pub mod layer_norm;
#[cfg(feature = "bench")]
pub mod peers;
pub mod simd;
pub mod softmax;

pub use dispatch::{active, Isa};
