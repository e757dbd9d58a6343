//! Inner loops on `wide::f32x8` (SSE2 pairs on a default x86_64 build, NEON pairs on aarch64):
//! a 4-row × 16-column micro-kernel with scalar ragged edges, and `wide`'s vector `exp`.
//! No `unsafe`.

use super::Prims;
use wide::f32x8;

const W: usize = 8;

#[inline(always)]
fn ld(s: &[f32], at: usize) -> f32x8 {
    let a: [f32; W] = s[at..at + W].try_into().expect("8 lanes");
    f32x8::from(a)
}

#[inline(always)]
fn st(s: &mut [f32], at: usize, v: f32x8) {
    s[at..at + W].copy_from_slice(&v.to_array());
}

/// `C[R × 8·V] += A·B` for one register block at rows `i0..`, columns `j0..`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn block<const R: usize, const V: usize>(
    i0: usize,
    j0: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let mut acc = [[f32x8::ZERO; V]; R];
    for r in 0..R {
        for v in 0..V {
            acc[r][v] = ld(c, (i0 + r) * ldc + j0 + v * W);
        }
    }
    for p in 0..k {
        let mut bv = [f32x8::ZERO; V];
        for v in 0..V {
            bv[v] = ld(b, p * ldb + j0 + v * W);
        }
        for r in 0..R {
            let av = f32x8::splat(a[(i0 + r) * a_rs + p * a_cs]);
            for v in 0..V {
                acc[r][v] = av.mul_add(bv[v], acc[r][v]);
            }
        }
    }
    for r in 0..R {
        for v in 0..V {
            st(c, (i0 + r) * ldc + j0 + v * W, acc[r][v]);
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_acc(
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
    let mut j0 = 0;
    while j0 + W <= n {
        let v = if j0 + 2 * W <= n { 2 } else { 1 };
        let mut i0 = 0;
        while i0 < m {
            let rows = (m - i0).min(4);
            macro_rules! go {
                ($r:literal, $v:literal) => {
                    block::<$r, $v>(i0, j0, k, a, a_rs, a_cs, b, ldb, c, ldc)
                };
            }
            match (rows, v) {
                (4, 2) => go!(4, 2),
                (3, 2) => go!(3, 2),
                (2, 2) => go!(2, 2),
                (1, 2) => go!(1, 2),
                (4, _) => go!(4, 1),
                (3, _) => go!(3, 1),
                (2, _) => go!(2, 1),
                _ => go!(1, 1),
            }
            i0 += rows;
        }
        j0 += v * W;
    }
    // Ragged columns: plain loops, same accumulation order along k.
    if j0 < n {
        for i in 0..m {
            for j in j0..n {
                let mut acc = c[i * ldc + j];
                for p in 0..k {
                    acc = a[i * a_rs + p * a_cs].mul_add(b[p * ldb + j], acc);
                }
                c[i * ldc + j] = acc;
            }
        }
    }
}

pub(crate) struct Portable;

impl Prims for Portable {
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
        matmul_acc(m, n, k, a, a_rs, a_cs, b, ldb, c, ldc)
    }

    fn scale_mask_max(
        &self,
        row: &mut [f32],
        scale: f32,
        mask: Option<&[f32]>,
        valid: usize,
    ) -> f32 {
        scale_mask_max(row, scale, mask, valid)
    }

    fn exp_sum(&self, row: &mut [f32], m: f32) -> f32 {
        exp_sum(row, m)
    }

    fn probs(&self, row: &mut [f32], scale: f32, mask: Option<&[f32]>, lse: f32, valid: usize) {
        probs(row, scale, mask, lse, valid)
    }
}

pub(crate) fn scale_mask_max(
    row: &mut [f32],
    scale: f32,
    mask: Option<&[f32]>,
    valid: usize,
) -> f32 {
    let valid = valid.min(row.len());
    let sc = f32x8::splat(scale);
    let mut mx = f32x8::splat(f32::NEG_INFINITY);
    let mut j = 0;
    while j + W <= valid {
        let add = mask.map_or(f32x8::ZERO, |m| ld(m, j));
        let y = ld(row, j).mul_add(sc, add);
        st(row, j, y);
        mx = mx.max(y);
        j += W;
    }
    let mut m = mx
        .to_array()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let tail =
        super::scale_mask_max_scalar(&mut row[j..], scale, mask.map(|mk| &mk[j..]), valid - j);
    m = m.max(tail);
    m
}

pub(crate) fn exp_sum(row: &mut [f32], m: f32) -> f32 {
    let mv = f32x8::splat(m);
    let mut s = f32x8::ZERO;
    let mut j = 0;
    while j + W <= row.len() {
        let e = (ld(row, j) - mv).exp();
        st(row, j, e);
        s += e;
        j += W;
    }
    let mut sum = s.reduce_add();
    for x in &mut row[j..] {
        *x = (*x - m).exp();
        sum += *x;
    }
    sum
}

pub(crate) fn probs(row: &mut [f32], scale: f32, mask: Option<&[f32]>, lse: f32, valid: usize) {
    let valid = valid.min(row.len());
    let sc = f32x8::splat(scale);
    let lv = f32x8::splat(lse);
    let mut j = 0;
    while j + W <= valid {
        let add = mask.map_or(f32x8::ZERO, |m| ld(m, j));
        st(row, j, (ld(row, j).mul_add(sc, add) - lv).exp());
        j += W;
    }
    super::probs_scalar(
        &mut row[j..],
        scale,
        mask.map(|mk| &mk[j..]),
        lse,
        valid - j,
    );
}
