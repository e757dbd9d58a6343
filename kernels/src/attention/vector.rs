//! The SIMD inner loops of fused attention, written once over the [`Simd`] layer and compiled
//! for every vector path (AVX-512, AVX2, NEON, `wide`).
//!
//! * Products: a register-blocked micro-kernel `C[R × V·LANES] (+)= A·B` with `R` rows and `V`
//!   vectors as const generics: 4 × 4 vectors where the ISA has 32 vector registers (64 columns
//!   on AVX-512, 16 on NEON), 4 × 2 where it has 16; panels of at most half that width take
//!   twice the rows (AVX-512's 8 × 32 for head dim 32). Columns past the last whole vector go
//!   through one more panel with a masked vector ([`Simd::load_masked`]).
//! * Row passes (scale + mask + max, `exp` + sum, probabilities, dropout, `dS`): whole vectors,
//!   then one masked vector for the tail.
//! * Dropout: the keep test on integer lanes, [`Simd::dropout_select`].
//!
//! [`Vector<S>`] is a proof token: one exists only while the CPU has `S`'s features. Its methods
//! are `#[inline(always)]`, so that [`super::forward`] and [`super::backward`], which create one
//! inside [`crate::simd::dispatch`]'s `#[target_feature]` entry per task, compile the whole task
//! (tiles, micro-kernels, row passes) with the ISA's features; no closure sits between the entry
//! and the vector code (a closure would be compiled without them).

use super::prims::{
    check_matmul, dropout_scalar, grads_row_scalar, zero_block, Acc, MatMul, Prims,
};
use super::Drop;
use crate::simd::{Simd, MAX_LANES};
use std::marker::PhantomData;

/// The vector path of the attention inner loops on token `S`.
pub(crate) struct Vector<S>(PhantomData<fn() -> S>);

impl<S: Simd> Vector<S> {
    /// # Safety
    /// The CPU has `S`'s features (as for [`Simd`] methods). The methods are fast only when
    /// inlined into a `#[target_feature]` function enabling them (see [`crate::simd::dispatch`]).
    #[inline(always)]
    pub(crate) unsafe fn new() -> Vector<S> {
        Vector(PhantomData)
    }
}

/// Rows of the micro-kernel's register block.
const MR: usize = 4;

/// Zeros for the masked tail of an absent additive mask.
const ZEROS: [f32; MAX_LANES] = [0.0; MAX_LANES];

/// Runs `$body` for `$j` = 0, LANES, 2·LANES, … below `$n` with `$k` = the lanes in bounds:
/// `LANES` in the loop over whole vectors (a constant, so [`ld`] and [`st`] fold to plain loads
/// and stores there) and `$n − $j < LANES` once after it.
macro_rules! lanes {
    ($S:ty, $j:ident, $k:ident in $n:expr => $body:block) => {{
        let n: usize = $n;
        let l = <$S as Simd>::LANES;
        let mut $j = 0usize;
        while $j + l <= n {
            let $k = l;
            $body
            $j += l;
        }
        if $j < n {
            let $k = n - $j;
            $body
        }
    }};
}

/// `x[j..j + k]` in the first `k ≤ LANES` lanes, the others `pad`.
///
/// # Safety
/// As for [`Simd`] methods; `j + k ≤ x.len()`.
#[inline(always)]
unsafe fn ld<S: Simd>(x: &[f32], j: usize, k: usize, pad: f32) -> S::V {
    debug_assert!(j + k <= x.len());
    if k >= S::LANES {
        S::load(x.as_ptr().add(j))
    } else {
        S::load_masked(x.as_ptr().add(j), k, pad)
    }
}

/// Stores the first `k ≤ LANES` lanes of `v` to `x[j..j + k]`.
///
/// # Safety
/// As for [`Simd`] methods; `j + k ≤ x.len()`.
#[inline(always)]
unsafe fn st<S: Simd>(x: &mut [f32], j: usize, k: usize, v: S::V) {
    debug_assert!(j + k <= x.len());
    if k >= S::LANES {
        S::store(x.as_mut_ptr().add(j), v)
    } else {
        S::store_masked(x.as_mut_ptr().add(j), k, v)
    }
}

/// Loads the vector at `p`, masked to its first `tail` lanes when `MASKED`.
///
/// # Safety
/// As for [`Simd`] methods; the loaded lanes are in bounds.
#[inline(always)]
unsafe fn ld_ptr<S: Simd, const MASKED: bool>(p: *const f32, tail: usize) -> S::V {
    if MASKED {
        S::load_masked(p, tail, 0.0)
    } else {
        S::load(p)
    }
}

/// Stores the vector at `p`, masked to its first `tail` lanes when `MASKED`.
///
/// # Safety
/// As for [`Simd`] methods; the stored lanes are in bounds.
#[inline(always)]
unsafe fn st_ptr<S: Simd, const MASKED: bool>(p: *mut f32, tail: usize, v: S::V) {
    if MASKED {
        S::store_masked(p, tail, v)
    } else {
        S::store(p, v)
    }
}

/// The operands of `C (+)= A·B`: `A(i, p) = a[i·a_rs + p·a_cs]`, `B(p, j) = b[p·ldb + j]`,
/// `C(i, j) = c[i·ldc + j]`.
#[derive(Clone, Copy)]
struct Operands {
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
}

impl Operands {
    /// The same matrices from row `i0` of `A` and `C`, column `j0` of `B` and `C` on.
    ///
    /// # Safety
    /// Those elements are inside the matrices' allocations.
    #[inline(always)]
    unsafe fn at(self, i0: usize, j0: usize) -> Operands {
        Operands {
            a: self.a.add(i0 * self.a_rs),
            b: self.b.add(j0),
            c: self.c.add(i0 * self.ldc + j0),
            ..self
        }
    }
}

/// `C[R × V·LANES] += A·B` (`ACC`) or `= A·B` for one register block; when `MASKED` (only with
/// `V = 1`) the block is the first `tail` columns.
///
/// # Safety
/// As for [`Simd`] methods; for `r < R`, `p < k` and every touched column `j`:
/// `A(r, p)`, `B(p, j)`, `C(r, j)` are in bounds.
#[inline(always)]
unsafe fn block<S: Simd, const R: usize, const V: usize, const MASKED: bool, const ACC: bool>(
    k: usize,
    o: Operands,
    tail: usize,
) {
    let Operands {
        a,
        a_rs,
        a_cs,
        b,
        ldb,
        c,
        ldc,
    } = o;
    let l = S::LANES;
    let mut acc = [[S::splat(0.0); V]; R];
    if ACC {
        for r in 0..R {
            for v in 0..V {
                acc[r][v] = ld_ptr::<S, MASKED>(c.add(r * ldc + v * l), tail);
            }
        }
    }
    for p in 0..k {
        let mut bv = [S::splat(0.0); V];
        for v in 0..V {
            bv[v] = ld_ptr::<S, MASKED>(b.add(p * ldb + v * l), tail);
        }
        for r in 0..R {
            let av = S::splat(*a.add(r * a_rs + p * a_cs));
            for v in 0..V {
                acc[r][v] = S::fma(av, bv[v], acc[r][v]);
            }
        }
    }
    for r in 0..R {
        for v in 0..V {
            st_ptr::<S, MASKED>(c.add(r * ldc + v * l), tail, acc[r][v]);
        }
    }
}

/// `C (+)= A·B` over the whole `m × n` block in register blocks (see the module docs); the
/// callers pass a constant `accumulate`, so only one set of blocks survives inlining.
///
/// # Safety
/// As for [`Simd`] methods, and [`check_matmul`] passed for these operands with `k > 0`.
#[inline(always)]
unsafe fn matmul<S: Simd>(accumulate: bool, m: usize, n: usize, k: usize, o: Operands) {
    let l = S::LANES;
    let nv_max = if S::REGISTERS >= 32 { 4 } else { 2 };
    let whole = n / l;
    let mut j0 = 0;
    let mut vleft = whole;
    while j0 < n {
        // `nv` whole vectors, or (`nv == 0`) the last `n − j0 < LANES` columns, masked.
        let nv = vleft.min(nv_max);
        let wide = nv.max(1);
        let tail = n - j0;
        let mut i0 = 0;
        while i0 < m {
            let rows = if 2 * wide <= nv_max && m - i0 >= 2 * MR {
                2 * MR
            } else {
                (m - i0).min(MR)
            };
            let ob = o.at(i0, j0);
            macro_rules! go {
                ($r:literal, $v:literal, $m:literal) => {
                    if accumulate {
                        block::<S, $r, $v, $m, true>(k, ob, tail)
                    } else {
                        block::<S, $r, $v, $m, false>(k, ob, tail)
                    }
                };
            }
            match (rows, nv) {
                (8, 0) => go!(8, 1, true),
                (8, 1) => go!(8, 1, false),
                (8, _) => go!(8, 2, false),
                (4, 0) => go!(4, 1, true),
                (4, 1) => go!(4, 1, false),
                (4, 2) => go!(4, 2, false),
                (4, 3) => go!(4, 3, false),
                (4, _) => go!(4, 4, false),
                (3, 0) => go!(3, 1, true),
                (3, 1) => go!(3, 1, false),
                (3, 2) => go!(3, 2, false),
                (3, 3) => go!(3, 3, false),
                (3, _) => go!(3, 4, false),
                (2, 0) => go!(2, 1, true),
                (2, 1) => go!(2, 1, false),
                (2, 2) => go!(2, 2, false),
                (2, 3) => go!(2, 3, false),
                (2, _) => go!(2, 4, false),
                (_, 0) => go!(1, 1, true),
                (_, 1) => go!(1, 1, false),
                (_, 2) => go!(1, 2, false),
                (_, 3) => go!(1, 3, false),
                (_, _) => go!(1, 4, false),
            }
            i0 += rows;
        }
        if nv == 0 {
            break;
        }
        j0 += nv * l;
        vleft -= nv;
    }
}

/// Whether the 32-bit low halves of `flat0 .. flat0 + n` do not wrap (the vector hash adds the
/// lane to the low half only).
#[inline(always)]
fn no_wrap(flat0: u64, n: usize) -> bool {
    (flat0 as u32 as u64) + n as u64 <= 1u64 << 32
}

/// `keep(flat0 + j + lane) ? t : f` for the vector at column `j` of a row.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
unsafe fn keep_select<S: Simd>(drop: &Drop, flat0: u64, j: usize, t: S::V, f: S::V) -> S::V {
    S::dropout_select(
        (flat0 as u32).wrapping_add(j as u32),
        drop.k0,
        (flat0 >> 32) as u32 ^ drop.k1,
        drop.thr,
        t,
        f,
    )
}

// SAFETY (every `unsafe` block below): a `Vector<S>` exists only while the CPU has `S`'s features
// (the contract of `Vector::new`), so the `Simd` methods may run; every vector access is at a
// column `j`, `j + k ≤ len`, of a slice through `ld`/`st` (masked past `k`), or inside the block that
// `check_matmul` validated.
impl<S: Simd> Prims for Vector<S> {
    #[inline(always)]
    fn matmul(&self, acc: Acc, ab: MatMul<'_>, c: &mut [f32], ldc: usize) {
        let MatMul { m, n, k, .. } = ab;
        if acc == Acc::Set && k == 0 {
            return zero_block(c, m, n, ldc);
        }
        if check_matmul(&ab, c, ldc) {
            let o = Operands {
                a: ab.a.as_ptr(),
                a_rs: ab.a_rs,
                a_cs: ab.a_cs,
                b: ab.b.as_ptr(),
                ldb: ab.ldb,
                c: c.as_mut_ptr(),
                ldc,
            };
            // SAFETY: see above the impl; bounds checked by check_matmul, k > 0.
            unsafe { matmul::<S>(acc == Acc::Add, m, n, k, o) }
        }
    }

    #[inline(always)]
    fn scale_mask_max(
        &self,
        row: &mut [f32],
        scale: f32,
        mask: Option<&[f32]>,
        valid: usize,
    ) -> f32 {
        let valid = valid.min(row.len());
        let (x, hidden) = row.split_at_mut(valid);
        hidden.fill(f32::NEG_INFINITY);
        if let Some(m) = mask {
            assert!(m.len() >= valid, "attention: mask tile too short");
        }
        let mask = mask.map(|m| &m[..valid]);
        // SAFETY: see above the impl.
        unsafe {
            let l = S::LANES;
            let sc = S::splat(scale);
            let mut mx = S::splat(f32::NEG_INFINITY);
            lanes!(S, j, k in valid => {
                // Lanes past `valid` get 0·scale − ∞ = −∞, so they do not raise the maximum.
                let add = match mask {
                    Some(m) => ld::<S>(m, j, k, f32::NEG_INFINITY),
                    None if k == l => S::splat(0.0),
                    None => S::load_masked(ZEROS.as_ptr(), k, f32::NEG_INFINITY),
                };
                let y = S::fma(ld::<S>(x, j, k, 0.0), sc, add);
                st::<S>(x, j, k, y);
                mx = S::max(mx, y);
            });
            S::reduce_max(mx)
        }
    }

    #[inline(always)]
    fn exp_sum(&self, row: &mut [f32], m: f32) -> f32 {
        // SAFETY: see above the impl.
        unsafe {
            let mv = S::splat(m);
            let mut s = S::splat(0.0);
            lanes!(S, j, k in row.len() => {
                // Lanes past the end: exp(−∞ − m) = 0.
                let e = S::exp(S::sub(ld::<S>(row, j, k, f32::NEG_INFINITY), mv));
                st::<S>(row, j, k, e);
                s = S::add(s, e);
            });
            S::reduce_sum(s)
        }
    }

    #[inline(always)]
    fn probs(&self, row: &mut [f32], scale: f32, mask: Option<&[f32]>, lse: f32, valid: usize) {
        let valid = valid.min(row.len());
        let (x, hidden) = row.split_at_mut(valid);
        hidden.fill(0.0);
        if let Some(m) = mask {
            assert!(m.len() >= valid, "attention: mask tile too short");
        }
        let mask = mask.map(|m| &m[..valid]);
        // SAFETY: see above the impl.
        unsafe {
            let sc = S::splat(scale);
            let lv = S::splat(lse);
            lanes!(S, j, k in valid => {
                let add = match mask {
                    Some(m) => ld::<S>(m, j, k, 0.0),
                    None => S::splat(0.0),
                };
                let y = S::sub(S::fma(ld::<S>(x, j, k, 0.0), sc, add), lv);
                st::<S>(x, j, k, S::exp(y));
            });
        }
    }

    #[inline(always)]
    fn exp_sum_dropout(&self, row: &mut [f32], m: f32, drop: &Drop, flat0: u64) -> f32 {
        if !no_wrap(flat0, row.len()) {
            let s = self.exp_sum(row, m);
            dropout_scalar(row, drop, flat0);
            return s;
        }
        // SAFETY: see above the impl.
        unsafe {
            let mv = S::splat(m);
            let inv = S::splat(drop.inv);
            let zero = S::splat(0.0);
            let mut s = S::splat(0.0);
            lanes!(S, j, k in row.len() => {
                let e = S::exp(S::sub(ld::<S>(row, j, k, f32::NEG_INFINITY), mv));
                s = S::add(s, e);
                st::<S>(row, j, k, keep_select::<S>(drop, flat0, j, S::mul(e, inv), zero));
            });
            S::reduce_sum(s)
        }
    }

    #[inline(always)]
    fn dropout(&self, row: &mut [f32], drop: &Drop, flat0: u64) {
        if !no_wrap(flat0, row.len()) {
            return dropout_scalar(row, drop, flat0);
        }
        // SAFETY: see above the impl.
        unsafe {
            let inv = S::splat(drop.inv);
            let zero = S::splat(0.0);
            lanes!(S, j, k in row.len() => {
                let x = S::mul(ld::<S>(row, j, k, 0.0), inv);
                st::<S>(row, j, k, keep_select::<S>(drop, flat0, j, x, zero));
            });
        }
    }

    #[inline(always)]
    fn grads_row(&self, p: &mut [f32], dp: &mut [f32], dsum: f32, drop: Option<(&Drop, u64)>) {
        let n = p.len();
        assert_eq!(dp.len(), n, "attention: gradient rows differ");
        if let Some((_, flat0)) = drop {
            if !no_wrap(flat0, n) {
                return grads_row_scalar(p, dp, dsum, drop);
            }
        }
        // SAFETY: see above the impl; both rows have length n.
        unsafe {
            let dv = S::splat(dsum);
            match drop {
                None => lanes!(S, j, k in n => {
                    let x = ld::<S>(p, j, k, 0.0);
                    let g = ld::<S>(dp, j, k, 0.0);
                    st::<S>(dp, j, k, S::mul(x, S::sub(g, dv)));
                }),
                Some((dr, flat0)) => {
                    let inv = S::splat(dr.inv);
                    let zero = S::splat(0.0);
                    lanes!(S, j, k in n => {
                        let x = ld::<S>(p, j, k, 0.0);
                        let g = ld::<S>(dp, j, k, 0.0);
                        // The two selects hash the same counters (the compiler shares the hash).
                        let g = keep_select::<S>(dr, flat0, j, S::mul(g, inv), zero);
                        let pd = keep_select::<S>(dr, flat0, j, S::mul(x, inv), zero);
                        st::<S>(dp, j, k, S::mul(x, S::sub(g, dv)));
                        st::<S>(p, j, k, pd);
                    });
                }
            }
        }
    }

    #[inline(always)]
    fn scale_row(&self, row: &mut [f32], alpha: f32) {
        // SAFETY: see above the impl.
        unsafe {
            let av = S::splat(alpha);
            lanes!(S, j, k in row.len() => {
                st::<S>(row, j, k, S::mul(ld::<S>(row, j, k, 0.0), av));
            });
        }
    }

    #[inline(always)]
    fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        // SAFETY: see above the impl.
        unsafe {
            let mut s = S::splat(0.0);
            lanes!(S, j, k in n => {
                s = S::fma(ld::<S>(a, j, k, 0.0), ld::<S>(b, j, k, 0.0), s);
            });
            S::reduce_sum(s)
        }
    }
}
