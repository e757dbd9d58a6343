//! Every differentiable op, one module per op family.
//!
//! Each module adds methods to [`crate::Tape`] (`tape.matmul(..)`, `tape.gelu(..)`, …) and
//! holds, in one place, the op's forward, its [`crate::Backward`] and the name of the
//! `cloze-kernels` kernel it calls (the `KERNEL` constant). The gradient property tests live in
//! `tests/grad_<module>.rs`.
//!
//! | module | ops |
//! |---|---|
//! | [`matmul`] | `matmul`, `matmul_t` (transpose flags), `bmm` (batched) |
//! | [`binary`] | `add`, `sub`, `mul`, `div` with NumPy broadcasting |
//! | [`scalar`] | `add_scalar`, `mul_scalar`, `neg`, `powf`, `sqrt`, `exp`, `log` |
//! | [`reduce`] | `sum`, `mean`, `sum_axis`, `mean_axis` |
//! | [`shape`] | `reshape`, `transpose`, `permute`, `slice`, `concat`, `split` |
//! | [`softmax`] | `softmax`, `log_softmax` (last axis) |
//! | [`cross_entropy`] | `cross_entropy` with an ignore label |
//! | [`activation`] | `gelu` (erf and tanh), `tanh`, `relu` |
//! | [`layer_norm`] | `layer_norm` (affine) |
//! | [`dropout`] | `dropout` (seeded, mask kept) |
//! | [`embedding`] | `embedding` (gather; scatter-add backward) |
//! | [`attention`] | `attention` (padding mask, causal mask, scale) |

pub mod activation;
pub mod attention;
pub mod binary;
pub mod broadcast;
pub mod cross_entropy;
pub mod dropout;
pub mod embedding;
pub mod layer_norm;
pub mod matmul;
pub mod reduce;
pub mod scalar;
pub mod shape;
pub mod softmax;
