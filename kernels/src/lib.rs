//! cloze-kernels: the numeric kernels under cloze's autodiff engine.
//!
//! Plain functions over slices; this crate knows nothing of tensors or tapes. Every kernel has a
//! plain scalar reference (`*_scalar` or the `scalar` path of its dispatch) that the fast paths are
//! tested against. The instruction set is chosen once per process by [`dispatch::active`]
//! (override with `CLOZE_KERNEL=scalar|portable|avx2|avx512|neon`); each kernel also has a
//! `*_with(isa, ..)` form so tests and benches can run every path on one machine.
//!
//! `unsafe` appears only in this crate, in `#[target_feature]` functions, and every block
//! carries a `// SAFETY:` comment; the safe wrappers check slice lengths before calling in.

pub mod adamw;
pub mod attention;
pub mod convert;
pub mod dispatch;
pub mod gelu;
pub mod gemm;
pub mod layernorm;
#[cfg(feature = "bench")]
pub mod peers;
pub mod simd;
pub mod softmax;

pub use dispatch::{active, Isa};
