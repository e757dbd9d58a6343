//! The inner loops of the tiled attention, as the [`Prims`] trait: a register-blocked
//! `C (+)= A·B` over a tile and the row passes (scale + mask + max, exp + sum, dropout,
//! probabilities, the `dS` step); plain loops here ([`Scalar`]), vector ones in
//! [`vector`](super::vector). Also the tile helpers both drivers share.

use super::Drop;
use crate::dispatch::Isa;
use crate::simd::{dispatch, Kernel};

/// Whether a product overwrites `C` or adds to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acc {
    Set,
    Add,
}

/// The operands of a product `A·B` of the tiled attention: `m × k` `A(i, p) = a[i·a_rs + p·a_cs]`
/// and `k × n` `B(p, j) = b[p·ldb + j]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatMul<'a> {
    pub(crate) m: usize,
    pub(crate) n: usize,
    pub(crate) k: usize,
    pub(crate) a: &'a [f32],
    pub(crate) a_rs: usize,
    pub(crate) a_cs: usize,
    pub(crate) b: &'a [f32],
    pub(crate) ldb: usize,
}

impl<'a> MatMul<'a> {
    /// The product of `m × k` `A` at `a` (strides `a_rs`, `a_cs`) and `k × n` `B` at `b` (row
    /// stride `ldb`).
    pub(crate) fn new(
        (m, n, k): (usize, usize, usize),
        (a, a_rs, a_cs): (&'a [f32], usize, usize),
        (b, ldb): (&'a [f32], usize),
    ) -> Self {
        MatMul {
            m,
            n,
            k,
            a,
            a_rs,
            a_cs,
            b,
            ldb,
        }
    }
}

/// The inner loops each path provides. Slice lengths are the callers' responsibility only for
/// correctness of results: the vector implementation checks the bounds it relies on.
pub(crate) trait Prims: Sync {
    /// `C[m×n] += A·B` ([`Acc::Add`]) or `C[m×n] = A·B` ([`Acc::Set`], C's old contents
    /// ignored) for the operands `ab` (see [`MatMul`]), `C(i, j) = c[i·ldc + j]`;
    /// accumulation along `p` in increasing order.
    fn matmul(&self, acc: Acc, ab: MatMul<'_>, c: &mut [f32], ldc: usize);

    /// `row[j] = row[j]·scale + mask[j]` for `j < valid`, `-inf` after; returns the maximum.
    fn scale_mask_max(
        &self,
        row: &mut [f32],
        scale: f32,
        mask: Option<&[f32]>,
        valid: usize,
    ) -> f32;

    /// `row[j] = exp(row[j] − m)` (0 for `-inf`); returns the sum (fixed order).
    fn exp_sum(&self, row: &mut [f32], m: f32) -> f32;

    /// `row[j] = exp(row[j]·scale + mask[j] − lse)` for `j < valid`, 0 after.
    fn probs(&self, row: &mut [f32], scale: f32, mask: Option<&[f32]>, lse: f32, valid: usize);

    /// [`Prims::exp_sum`] then [`Prims::dropout`]; the sum is of the undropped values.
    fn exp_sum_dropout(&self, row: &mut [f32], m: f32, drop: &Drop, flat0: u64) -> f32 {
        let s = self.exp_sum(row, m);
        self.dropout(row, drop, flat0);
        s
    }

    /// `row[j] = keep(flat0 + j) ? row[j]·inv : 0`.
    fn dropout(&self, row: &mut [f32], drop: &Drop, flat0: u64) {
        dropout_scalar(row, drop, flat0)
    }

    /// One row of the backward pass after the probabilities: on entry `p` holds `P` and `dp`
    /// holds `dout·vᵀ`; on exit `dp[j] = P[j]·(keep_j·inv·dp[j] − dsum)` (that is dS) and
    /// `p[j] = keep_j·inv·P[j]` (that is Pd). Without dropout, `keep·inv = 1`.
    fn grads_row(&self, p: &mut [f32], dp: &mut [f32], dsum: f32, drop: Option<(&Drop, u64)>) {
        grads_row_scalar(p, dp, dsum, drop)
    }

    // The tile passes are plain loops over rows (no closures), so that for `Vector` the row
    // passes inline into the `#[target_feature]` entry of the task.

    /// [`Prims::scale_mask_max`] on each row of a tile of `cols` columns; row `r` sees
    /// `valid.get(r, cols)` keys; its maximum goes to `maxes[r]`.
    #[inline(always)]
    fn scale_mask_max_tile(
        &self,
        s: &mut [f32],
        cols: usize,
        scale: f32,
        mask: Option<&[f32]>,
        valid: Valid,
        maxes: &mut [f32],
    ) {
        for (r, (row, mx)) in s.chunks_exact_mut(cols).zip(maxes.iter_mut()).enumerate() {
            *mx = self.scale_mask_max(row, scale, mask, valid.get(r, cols));
        }
    }

    /// [`Prims::exp_sum`] (or [`Prims::exp_sum_dropout`]) on each row of a tile with its own
    /// `m[r]`; the row sums go to `sums[r]`.
    #[inline(always)]
    fn exp_tile(
        &self,
        s: &mut [f32],
        cols: usize,
        m: &[f32],
        sums: &mut [f32],
        drop: Option<RowDrop<'_>>,
    ) {
        for (r, ((row, &mr), sum)) in s
            .chunks_exact_mut(cols)
            .zip(m)
            .zip(sums.iter_mut())
            .enumerate()
        {
            *sum = match drop {
                None => self.exp_sum(row, mr),
                Some(d) => self.exp_sum_dropout(row, mr, d.drop, d.flat0 + r as u64 * d.stride),
            };
        }
    }

    /// [`Prims::probs`] on each row of a tile with its own `lse[r]` (a row with `lse = -inf`
    /// becomes 0).
    #[inline(always)]
    fn probs_tile(
        &self,
        s: &mut [f32],
        cols: usize,
        scale: f32,
        mask: Option<&[f32]>,
        lse: &[f32],
        valid: Valid,
    ) {
        for (r, (row, &l)) in s.chunks_exact_mut(cols).zip(lse).enumerate() {
            if l == f32::NEG_INFINITY {
                row.fill(0.0);
            } else {
                self.probs(row, scale, mask, l, valid.get(r, cols));
            }
        }
    }

    /// [`Prims::grads_row`] on each row of a tile with its own `dsum[r]`.
    #[inline(always)]
    fn grads_tile(
        &self,
        p: &mut [f32],
        dp: &mut [f32],
        cols: usize,
        dsum: &[f32],
        drop: Option<RowDrop<'_>>,
    ) {
        for (r, ((pr, gr), &ds)) in p
            .chunks_exact_mut(cols)
            .zip(dp.chunks_exact_mut(cols))
            .zip(dsum)
            .enumerate()
        {
            let dr = drop.map(|d| (d.drop, d.flat0 + r as u64 * d.stride));
            self.grads_row(pr, gr, ds, dr);
        }
    }

    /// `row *= alpha`.
    fn scale_row(&self, row: &mut [f32], alpha: f32) {
        for x in row {
            *x *= alpha;
        }
    }

    /// `Σ a[c]·b[c]`.
    fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        let mut s = 0.0f32;
        for (x, y) in a.iter().zip(b) {
            s += x * y;
        }
        s
    }
}

/// Bounds the micro-kernel relies on: every `A`, `B`, `C` element it touches is in its slice.
pub(crate) fn check_matmul(ab: &MatMul<'_>, c: &[f32], ldc: usize) -> bool {
    let MatMul {
        m,
        n,
        k,
        a,
        a_rs,
        a_cs,
        b,
        ldb,
    } = *ab;
    if m == 0 || n == 0 {
        return false;
    }
    assert!(n <= ldc && !a.is_empty(), "attention matmul: bad strides");
    assert!(
        c.len() >= (m - 1) * ldc + n,
        "attention matmul: C too short"
    );
    if k == 0 {
        return false;
    }
    assert!(n <= ldb, "attention matmul: ldb {ldb} < n {n}");
    assert!(
        b.len() >= (k - 1) * ldb + n,
        "attention matmul: B too short"
    );
    assert!(
        a.len() > (m - 1) * a_rs + (k - 1) * a_cs,
        "attention matmul: A too short"
    );
    true
}

/// Which keys of a tile each of its rows may see: a prefix, of length `cols` unless causal.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Valid {
    causal: bool,
    /// For causal: visible keys of the tile's row 0 (may be ≤ 0), growing by one per row.
    v0: isize,
}

impl Valid {
    /// The tile whose row 0 is query `i0` and whose column 0 is key `j0`.
    pub fn new(causal: bool, tq: usize, tk: usize, i0: usize, j0: usize) -> Valid {
        Valid {
            causal,
            v0: i0 as isize + tk as isize - tq as isize - j0 as isize + 1,
        }
    }

    #[inline(always)]
    pub fn get(self, r: usize, cols: usize) -> usize {
        if self.causal {
            (self.v0 + r as isize).clamp(0, cols as isize) as usize
        } else {
            cols
        }
    }
}

/// Dropout of a tile: row `r`, column `c` has flat index `flat0 + r·stride + c`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowDrop<'a> {
    pub drop: &'a Drop,
    pub flat0: u64,
    pub stride: u64,
}

/// Zeroes rows `0..m`, columns `0..n` of a matrix with row stride `ldc`.
pub(crate) fn zero_block(c: &mut [f32], m: usize, n: usize, ldc: usize) {
    for i in 0..m {
        c[i * ldc..i * ldc + n].fill(0.0);
    }
}

pub(crate) fn dropout_scalar(row: &mut [f32], drop: &Drop, flat0: u64) {
    for (j, x) in row.iter_mut().enumerate() {
        *x = if drop.keep(flat0 + j as u64) {
            *x * drop.inv
        } else {
            0.0
        };
    }
}

pub(crate) fn grads_row_scalar(
    p: &mut [f32],
    dp: &mut [f32],
    dsum: f32,
    drop: Option<(&Drop, u64)>,
) {
    assert_eq!(p.len(), dp.len(), "attention: gradient rows differ");
    match drop {
        None => {
            for (g, &pj) in dp.iter_mut().zip(p.iter()) {
                *g = pj * (*g - dsum);
            }
        }
        Some((dr, flat0)) => {
            for (j, (g, pj)) in dp.iter_mut().zip(p.iter_mut()).enumerate() {
                if dr.keep(flat0 + j as u64) {
                    *g = *pj * (*g * dr.inv - dsum);
                    *pj *= dr.inv;
                } else {
                    *g = *pj * -dsum;
                    *pj = 0.0;
                }
            }
        }
    }
}

/// Plain loops.
pub(crate) struct Scalar;

impl Prims for Scalar {
    fn matmul(&self, acc: Acc, ab: MatMul<'_>, c: &mut [f32], ldc: usize) {
        let MatMul {
            m,
            n,
            k,
            a,
            a_rs,
            a_cs,
            b,
            ldb,
        } = ab;
        if acc == Acc::Set {
            zero_block(c, m, n, ldc);
        }
        for i in 0..m {
            let crow = &mut c[i * ldc..i * ldc + n];
            for p in 0..k {
                let av = a[i * a_rs + p * a_cs];
                let brow = &b[p * ldb..p * ldb + n];
                for (cj, bj) in crow.iter_mut().zip(brow) {
                    *cj += av * bj;
                }
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
        scale_mask_max_scalar(row, scale, mask, valid)
    }

    fn exp_sum(&self, row: &mut [f32], m: f32) -> f32 {
        let mut s = 0.0f32;
        for x in row {
            *x = (*x - m).exp();
            s += *x;
        }
        s
    }

    fn probs(&self, row: &mut [f32], scale: f32, mask: Option<&[f32]>, lse: f32, valid: usize) {
        probs_scalar(row, scale, mask, lse, valid)
    }
}

pub(crate) fn scale_mask_max_scalar(
    row: &mut [f32],
    scale: f32,
    mask: Option<&[f32]>,
    valid: usize,
) -> f32 {
    let mut mx = f32::NEG_INFINITY;
    for (j, x) in row.iter_mut().enumerate() {
        if j < valid {
            *x = x.mul_add(scale, mask.map_or(0.0, |m| m[j]));
            mx = mx.max(*x);
        } else {
            *x = f32::NEG_INFINITY;
        }
    }
    mx
}

pub(crate) fn probs_scalar(
    row: &mut [f32],
    scale: f32,
    mask: Option<&[f32]>,
    lse: f32,
    valid: usize,
) {
    for (j, x) in row.iter_mut().enumerate() {
        *x = if j < valid {
            (x.mul_add(scale, mask.map_or(0.0, |m| m[j])) - lse).exp()
        } else {
            0.0
        };
    }
}

// ---------------------------------------------------------------------------------------------
// Tile helpers shared by the forward and backward drivers.

/// Keys of a tile starting at `j0` (width `bc`) that query `i` may see: a prefix of the tile.
#[inline]
pub(super) fn valid_keys(
    causal: bool,
    tq: usize,
    tk: usize,
    i: usize,
    j0: usize,
    bc: usize,
) -> usize {
    if !causal {
        return bc;
    }
    // Last visible key: i + tk − tq (may be negative).
    let last = i as isize + tk as isize - tq as isize;
    (last - j0 as isize + 1).clamp(0, bc as isize) as usize
}

/// `len` zeros starting at a 64-byte boundary of `buf` (which it replaces): the tiles the
/// micro-kernels read as `B` then start every row of vectors on a cache line, instead of wherever
/// the allocator put them (an AVX-512 load straddling two lines costs two).
pub(super) fn aligned_zeros(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    *buf = vec![0.0f32; len + ALIGN_PAD];
    let off = buf.as_ptr().align_offset(64).min(ALIGN_PAD);
    &mut buf[off..off + len]
}

/// Floats [`aligned_zeros`] may skip to reach a 64-byte boundary.
pub(super) const ALIGN_PAD: usize = 64 / std::mem::size_of::<f32>() - 1;

/// Transposes rows `[j0, j0+bc)` of a `[T, d]` matrix into `dst[d × bc]`.
///
/// Walks blocks of 16 source rows so that each destination row segment written is one cache line
/// and the 16 source rows stay in L1 (a plain row-by-row scatter with a power-of-two `bc` thrashes
/// a few cache sets).
pub(super) fn transpose_tile(src: &[f32], d: usize, j0: usize, bc: usize, dst: &mut [f32]) {
    const B: usize = 16;
    let src = &src[j0 * d..(j0 + bc) * d];
    let dst = &mut dst[..d * bc];
    let mut jb = 0;
    while jb < bc {
        let w = B.min(bc - jb);
        let rows = &src[jb * d..(jb + w) * d];
        for c in 0..d {
            let out = &mut dst[c * bc + jb..c * bc + jb + w];
            for (jj, o) in out.iter_mut().enumerate() {
                *o = rows[jj * d + c];
            }
        }
        jb += w;
    }
}

/// Runs a task on `isa`: the vector paths through [`dispatch`] (one `#[target_feature]` entry
/// per task), the scalar path directly.
pub(super) fn run_task<K: Kernel<Out = ()>>(isa: Isa, task: K, scalar: impl FnOnce(K)) {
    if let Err(task) = dispatch(isa, task) {
        scalar(task)
    }
}
