//! aarch64 NEON inner loops: a 4-row × 16-column FMA micro-kernel (scalar ragged columns); the
//! row operations reuse the `wide` ones, which compile to NEON on aarch64.

use super::{portable, Prims};
use std::arch::aarch64::*;

/// Proof that the CPU has NEON: only [`Neon::new`] makes one.
pub(crate) struct Neon(());

impl Neon {
    pub fn new() -> Option<Neon> {
        crate::dispatch::Isa::Neon
            .is_supported()
            .then_some(Neon(()))
    }
}

const L: usize = 4;
const MR: usize = 4;

/// `C[R × 4·V] += A·B` for one register block.
///
/// # Safety
/// NEON available; for `r < R`, `p < k`, `j < 4·V`: `a + r·a_rs + p·a_cs`, `b + p·ldb + j`,
/// `c + r·ldc + j` are in bounds.
#[target_feature(enable = "neon")]
#[allow(clippy::too_many_arguments)]
unsafe fn block<const R: usize, const V: usize>(
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    // SAFETY (whole body): every access is in bounds by the caller's contract.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); V]; R];
        for r in 0..R {
            for v in 0..V {
                acc[r][v] = vld1q_f32(c.add(r * ldc + v * L));
            }
        }
        for p in 0..k {
            let mut bv = [vdupq_n_f32(0.0); V];
            for v in 0..V {
                bv[v] = vld1q_f32(b.add(p * ldb + v * L));
            }
            for r in 0..R {
                let av = *a.add(r * a_rs + p * a_cs);
                for v in 0..V {
                    acc[r][v] = vfmaq_n_f32(acc[r][v], bv[v], av);
                }
            }
        }
        for r in 0..R {
            for v in 0..V {
                vst1q_f32(c.add(r * ldc + v * L), acc[r][v]);
            }
        }
    }
}

/// # Safety
/// NEON available and `check_matmul` passed for these arguments.
#[target_feature(enable = "neon")]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    let whole = n / L * L;
    let mut j0 = 0;
    while j0 < whole {
        let nv = ((whole - j0) / L).min(4);
        let mut i0 = 0;
        while i0 < m {
            let rows = (m - i0).min(MR);
            // SAFETY: rows < m and columns j0 + 4·nv ≤ n are inside the checked block.
            unsafe {
                let ap = a.add(i0 * a_rs);
                let bp = b.add(j0);
                let cp = c.add(i0 * ldc + j0);
                macro_rules! go {
                    ($r:literal, $v:literal) => {
                        block::<$r, $v>(k, ap, a_rs, a_cs, bp, ldb, cp, ldc)
                    };
                }
                match (rows, nv) {
                    (4, 4) => go!(4, 4),
                    (4, 3) => go!(4, 3),
                    (4, 2) => go!(4, 2),
                    (4, _) => go!(4, 1),
                    (3, 4) => go!(3, 4),
                    (3, 3) => go!(3, 3),
                    (3, 2) => go!(3, 2),
                    (3, _) => go!(3, 1),
                    (2, 4) => go!(2, 4),
                    (2, 3) => go!(2, 3),
                    (2, 2) => go!(2, 2),
                    (2, _) => go!(2, 1),
                    (_, 4) => go!(1, 4),
                    (_, 3) => go!(1, 3),
                    (_, 2) => go!(1, 2),
                    _ => go!(1, 1),
                }
            }
            i0 += rows;
        }
        j0 += nv * L;
    }
    // Ragged columns: plain loops, same accumulation order along k.
    for i in 0..m {
        for j in whole..n {
            // SAFETY: i < m, j < n, p < k: inside the checked block.
            unsafe {
                let mut acc = *c.add(i * ldc + j);
                for p in 0..k {
                    acc = (*a.add(i * a_rs + p * a_cs)).mul_add(*b.add(p * ldb + j), acc);
                }
                *c.add(i * ldc + j) = acc;
            }
        }
    }
}

// SAFETY (matmul_acc): a `Neon` exists only when the CPU has NEON (see `new`); bounds are
// checked by `check_matmul` before calling in.
impl Prims for Neon {
    fn matmul_acc(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        a_rs: usize,
        a_cs: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
    ) {
        if super::check_matmul(m, n, k, a, a_rs, a_cs, b, ldb, c, ldc) {
            // SAFETY: NEON present (self exists); bounds checked by check_matmul.
            unsafe {
                matmul(
                    m,
                    n,
                    k,
                    a.as_ptr(),
                    a_rs,
                    a_cs,
                    b.as_ptr(),
                    ldb,
                    c.as_mut_ptr(),
                    ldc,
                )
            }
        }
    }

    fn scale_mask_max(
        &self,
        row: &mut [f32],
        scale: f32,
        mask: Option<&[f32]>,
        valid: usize,
    ) -> f32 {
        portable::scale_mask_max(row, scale, mask, valid)
    }

    fn exp_sum(&self, row: &mut [f32], m: f32) -> f32 {
        portable::exp_sum(row, m)
    }

    fn probs(&self, row: &mut [f32], scale: f32, mask: Option<&[f32]>, lse: f32, valid: usize) {
        portable::probs(row, scale, mask, lse, valid)
    }
}
