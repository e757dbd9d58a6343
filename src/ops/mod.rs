//! Every differentiable op, one module per op.
//!
//! Each module adds methods to [`crate::Tape`] (`tape.matmul(..)`, `tape.gelu(..)`, …) and
//! holds, in one place, the op's forward, its [`crate::Backward`] and a doc link to the
//! `cloze-kernels` kernel it calls. Element-wise ops are small types implementing
//! [`elementwise::Unary`] or [`elementwise::Binary`]; [`elementwise`] holds their one generic
//! forward and backward. The gradient property tests live in `tests/grad_<module>.rs`.
//!
//! | module | ops | kernel |
//! |---|---|---|
//! | [`matmul`] | `matmul`, `matmul_t` (transpose flags), `bmm` (batched), `linear` (`x·Wᵀ + b`, bias in the GEMM's epilogue) | `cloze_kernels::gemm` |
//! | [`binary`] | `add`, `sub`, `mul`, `div` with NumPy broadcasting | loops |
//! | [`scalar`] | `add_scalar`, `mul_scalar`, `neg`, `powf`, `sqrt`, `exp`, `log` | loops |
//! | [`reduce`] | `sum`, `mean`, `sum_axis`, `mean_axis` | loops |
//! | [`shape`] | `reshape`, `transpose`, `permute`, `slice`, `concat`, `split` | copies |
//! | [`softmax`] | `softmax`, `log_softmax` (last axis) | `cloze_kernels::softmax` |
//! | [`cross_entropy`] | `cross_entropy` with an ignore label | `cloze_kernels::cross_entropy` |
//! | [`gelu`] | `gelu` (erf and tanh) | `cloze_kernels::gelu` |
//! | [`activation`] | `tanh`, `relu` | loops |
//! | [`layer_norm`] | `layer_norm` (affine), `residual_layer_norm` | `cloze_kernels::layer_norm` |
//! | [`dropout`] | `dropout` (seeded, mask kept) | loops |
//! | [`embedding`] | `embedding` (gather; scatter-add backward) | loops |
//! | [`attention`] | `attention` (padding mask, causal mask, scale), `attention_unfused` | `cloze_kernels::attention` |
//!
//! Helpers: [`elementwise`] (the `Unary` and `Binary` traits), [`broadcast`] (NumPy
//! broadcasting and the sum back onto an operand's shape).

pub mod activation;
pub mod attention;
pub mod binary;
pub mod broadcast;
pub mod cross_entropy;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod gelu;
pub mod layer_norm;
pub mod matmul;
pub mod reduce;
pub mod scalar;
pub mod shape;
pub mod softmax;
