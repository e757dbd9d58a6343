//! GEMM with bf16 operands and f32 accumulation: `C (f32) = alpha·op(A)·op(B) + beta·C` where
//! A and/or B are `half::bf16`.
//!
//! - Both bf16, [`Isa::Avx512`], CPU with `avx512bf16`: `vdpbf16ps` on bf16 pair panels
//!   (`bf16dp`); products are exact in f32, sums round as f32 FMAs would, but subnormal inputs
//!   and results are flushed to zero.
//! - Otherwise the panels are converted to f32 (exactly) while packing, so the result is the
//!   f32 GEMM of the bf16 values, computed by the same micro-kernels.

use super::{dispatch, Gemm};
use crate::dispatch::{active, Isa};
use half::bf16;

/// One GEMM operand as stored: f32 or bf16.
#[derive(Clone, Copy, Debug)]
pub enum Operand<'a> {
    F32(&'a [f32]),
    Bf16(&'a [bf16]),
}

impl Operand<'_> {
    /// Number of stored elements.
    pub fn len(&self) -> usize {
        match self {
            Operand::F32(s) => s.len(),
            Operand::Bf16(s) => s.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a> From<&'a [f32]> for Operand<'a> {
    fn from(s: &'a [f32]) -> Self {
        Operand::F32(s)
    }
}

impl<'a> From<&'a [bf16]> for Operand<'a> {
    fn from(s: &'a [bf16]) -> Self {
        Operand::Bf16(s)
    }
}

impl Gemm {
    /// [`Gemm::run`] with f32 or bf16 operands (f32 accumulation, f32 C).
    pub fn run_mixed(&self, a: Operand<'_>, b: Operand<'_>, c: &mut [f32]) {
        self.run_mixed_with(active(), a, b, c)
    }

    /// [`Gemm::run_mixed`] on a chosen instruction set.
    pub fn run_mixed_with(&self, isa: Isa, a: Operand<'_>, b: Operand<'_>, c: &mut [f32]) {
        self.run_bias_with(isa, a, b, None, c)
    }

    /// [`Gemm::run_mixed`], then `bias` (n values) added to every row of C: a linear layer's
    /// `x·Wᵀ + b` in one pass. The bias goes onto each tile of C after its last k block, while
    /// the tile is still in cache, so C holds exactly what a separate add afterwards would
    /// give, without that add's pass over C. Panics, naming the length, if `bias` holds fewer
    /// than n values.
    pub fn run_bias(&self, a: Operand<'_>, b: Operand<'_>, bias: &[f32], c: &mut [f32]) {
        self.run_bias_with(active(), a, b, Some(bias), c)
    }

    /// [`Gemm::run_bias`] (or, with `bias == None`, [`Gemm::run_mixed`]) on a chosen instruction
    /// set.
    pub fn run_bias_with(
        &self,
        isa: Isa,
        a: Operand<'_>,
        b: Operand<'_>,
        bias: Option<&[f32]>,
        c: &mut [f32],
    ) {
        self.check_lens(a.len(), b.len(), c.len());
        if let Some(bias) = bias {
            assert!(
                bias.len() >= self.n,
                "gemm: bias has {} elements, needs n = {}",
                bias.len(),
                self.n
            );
        }
        match (a, b) {
            (Operand::F32(a), Operand::F32(b)) => dispatch(isa, self, None, a, b, c, bias),
            (Operand::F32(a), Operand::Bf16(b)) => dispatch(isa, self, None, a, b, c, bias),
            (Operand::Bf16(a), Operand::F32(b)) => dispatch(isa, self, None, a, b, c, bias),
            (Operand::Bf16(a), Operand::Bf16(b)) => dispatch(isa, self, None, a, b, c, bias),
        }
    }

    /// [`Gemm::run_batched`] with f32 or bf16 operands (f32 accumulation, f32 C).
    #[allow(clippy::too_many_arguments)]
    pub fn run_batched_mixed(
        &self,
        batch: usize,
        a: Operand<'_>,
        stride_a: usize,
        b: Operand<'_>,
        stride_b: usize,
        c: &mut [f32],
        stride_c: usize,
    ) {
        let (isa, c) = (active(), (c, stride_c));
        match (a, b) {
            (Operand::F32(a), Operand::F32(b)) => {
                self.batched(isa, batch, (a, stride_a), (b, stride_b), c)
            }
            (Operand::F32(a), Operand::Bf16(b)) => {
                self.batched(isa, batch, (a, stride_a), (b, stride_b), c)
            }
            (Operand::Bf16(a), Operand::F32(b)) => {
                self.batched(isa, batch, (a, stride_a), (b, stride_b), c)
            }
            (Operand::Bf16(a), Operand::Bf16(b)) => {
                self.batched(isa, batch, (a, stride_a), (b, stride_b), c)
            }
        }
    }
}

/// Whether the CPU has AVX512-BF16 (`vdpbf16ps`), whichever kernel path the process runs.
pub fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::bf16dp::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether bf16 × bf16 products run natively (`vdpbf16ps`) on the active instruction set:
/// the AVX-512 path on a CPU with AVX512-BF16. Elsewhere [`Gemm::run_mixed`] still gives the
/// right result (the f32 product of the bf16 values) but converts while packing, so it is no
/// faster than f32.
pub fn native() -> bool {
    active() == Isa::Avx512 && cpu_has_bf16()
}
