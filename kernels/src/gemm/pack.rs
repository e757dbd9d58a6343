//! Packing of op(A) and op(B) into the micro-kernels' panels (see `driver` for the layout).
//!
//! A panel lane is 32 bits: one f32 (kernels with `KSTEP == 1`; bf16 operands are widened
//! exactly), or two bf16 of consecutive k values, `lo | hi << 16` (`KSTEP == 2`, the
//! `vdpbf16ps` kernel; a k pair past k is zero). Every packer writes zero lanes past the
//! operand's edge, so a partial panel runs through the full kernel.

use super::driver::MicroKernel;
use super::Gemm;

/// An element type that can be packed into panels.
pub(crate) trait Elem: Copy + Send + Sync {
    fn f32(self) -> f32;
    /// The bf16 bits of the value (exact for bf16; f32 is rounded, but only bf16 operands
    /// reach the pair kernels, see `bf16.rs`).
    fn bf16_bits(self) -> u16;
    /// The slice itself when the elements already are f32 (kernels may read it unpacked).
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
    /// Whether the elements are bf16 (pair kernels may read them unpacked).
    const BF16: bool;
}

impl Elem for f32 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self
    }
    fn bf16_bits(self) -> u16 {
        half::bf16::from_f32(self).to_bits()
    }
    fn as_f32(s: &[Self]) -> Option<&[f32]> {
        Some(s)
    }
    const BF16: bool = false;
}

impl Elem for half::bf16 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self.to_f32()
    }
    fn bf16_bits(self) -> u16 {
        self.to_bits()
    }
    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }
    const BF16: bool = true;
}

/// The pair lane `lo | hi << 16` of two bf16 (hi absent past k: zero), as f32 bits.
#[inline(always)]
fn pair<T: Elem>(lo: T, hi: Option<T>) -> f32 {
    let hi = hi.map_or(0, |h| h.bf16_bits() as u32);
    f32::from_bits(lo.bf16_bits() as u32 | hi << 16)
}

/// A block of packed k steps `p0..p0 + kc`: k values `KSTEP·p0..` (`len` of them, fewer than
/// `KSTEP·kc` only when k is odd on a pair kernel).
#[derive(Clone, Copy, Debug)]
pub(super) struct KSteps {
    pub(super) p0: usize,
    pub(super) kc: usize,
}

impl KSteps {
    /// (first k value, number of k values) for a kernel of `kstep` k values per step.
    fn values(self, k: usize, kstep: usize) -> (usize, usize) {
        let k0 = kstep * self.p0;
        (k0, (kstep * self.kc).min(k - k0))
    }
}

/// [`interleave_dyn`] for pair lanes: lane (pp, r) = pair of `src[r][2pp]`, `src[r][2pp + 1]`
/// (`src[r]` holds the block's k values, at most `2·kc`). (Unrolling it for the bf16 kernel's
/// 12 and 32 lanes, as `interleave` is, measured no faster on the mini bf16 step.)
fn interleave_pairs<T: Elem>(src: &[&[T]], r: usize, kc: usize, dst: &mut [f32]) {
    let dst = &mut dst[..kc * r];
    dst.fill(0.0);
    for (i, row) in src.iter().enumerate() {
        for (pp, two) in row.chunks(2).enumerate() {
            dst[pp * r + i] = pair(two[0], two.get(1).copied());
        }
    }
}

/// The transposing packers' shared loop: panels of `r` lanes from `n` source slices (rows of
/// op(A) read along k, or columns of op(B)), slice `i` given by `slice(i)`, each panel laid out
/// by `lanes(slices, r, kc, panel)`.
fn gather_panels<'a, T: Elem + 'a>(
    n: usize,
    r: usize,
    kc: usize,
    dst: &mut [f32],
    slice: impl Fn(usize) -> &'a [T],
    lanes: fn(&[&[T]], usize, usize, &mut [f32]),
) {
    for (q, panel) in dst[..n.div_ceil(r) * kc * r].chunks_mut(kc * r).enumerate() {
        let first = q * r;
        let count = r.min(n - first);
        let mut src: [&[T]; 64] = [&[]; 64];
        for (x, s) in src[..count].iter_mut().enumerate() {
            *s = slice(first + x);
        }
        lanes(&src[..count], r, kc, panel);
    }
}

/// [`pack_rows_panels`] for pair lanes: k step pp takes source rows `2pp` and `2pp + 1` (the
/// latter only while below `len` k values).
fn pack_rows_pairs<T: Elem>(
    src: &[T],
    ld: usize,
    w: usize,
    r: usize,
    ks: (usize, usize),
    dst: &mut [f32],
) {
    let (kc, len) = ks;
    let npan = w.div_ceil(r);
    let full = w / r;
    let dst = &mut dst[..npan * kc * r];
    for pp in 0..kc {
        let r0 = &src[2 * pp * ld..][..w];
        let r1 = (2 * pp + 1 < len).then(|| &src[(2 * pp + 1) * ld..][..w]);
        // Full panels: straight runs of r lanes, with the pair's presence decided once per
        // k step, so the loop over lanes is branch-free.
        for q in 0..full {
            let d = &mut dst[q * kc * r + pp * r..][..r];
            let lo = &r0[q * r..][..r];
            match r1 {
                Some(r1) => {
                    for ((v, &l), &h) in d.iter_mut().zip(lo).zip(&r1[q * r..][..r]) {
                        *v = pair(l, Some(h));
                    }
                }
                None => {
                    for (v, &l) in d.iter_mut().zip(lo) {
                        *v = pair(l, None);
                    }
                }
            }
        }
        // The last, partial panel: lanes past w are zero.
        if full < npan {
            let d = &mut dst[full * kc * r + pp * r..][..r];
            for (x, v) in d.iter_mut().enumerate() {
                let j = full * r + x;
                *v = if j < w {
                    pair(r0[j], r1.map(|r1| r1[j]))
                } else {
                    0.0
                };
            }
        }
    }
}

/// `dst[p·R + r] = src[r][p]` for `p < kc`, `r < src.len() ≤ R`; lanes `r ≥ src.len()` are zero.
/// Each `src[r]` holds at least kc elements.
#[inline(always)]
fn interleave<T: Elem, const R: usize>(src: &[&[T]], kc: usize, dst: &mut [f32]) {
    let dst = &mut dst[..kc * R];
    if src.len() == R {
        let s: [&[T]; R] = std::array::from_fn(|r| &src[r][..kc]);
        for (p, d) in dst.chunks_exact_mut(R).enumerate() {
            for r in 0..R {
                d[r] = s[r][p].f32();
            }
        }
    } else {
        dst.fill(0.0);
        for (r, row) in src.iter().enumerate() {
            for (p, &v) in row[..kc].iter().enumerate() {
                dst[p * R + r] = v.f32();
            }
        }
    }
}

/// [`interleave`] with R chosen at run time among the kernels' tile sizes.
fn interleave_dyn<T: Elem>(src: &[&[T]], r: usize, kc: usize, dst: &mut [f32]) {
    match r {
        6 => interleave::<T, 6>(src, kc, dst),
        8 => interleave::<T, 8>(src, kc, dst),
        12 => interleave::<T, 12>(src, kc, dst),
        16 => interleave::<T, 16>(src, kc, dst),
        32 => interleave::<T, 32>(src, kc, dst),
        _ => {
            let dst = &mut dst[..kc * r];
            dst.fill(0.0);
            for (i, row) in src.iter().enumerate() {
                for (p, &v) in row[..kc].iter().enumerate() {
                    dst[p * r + i] = v.f32();
                }
            }
        }
    }
}

/// Packs `w` consecutive columns of the `kc` rows `src[p·ld..p·ld + w]` into panels of `r`
/// columns: panel q at `q·kc·r`, element (p, cc) at `+ p·r + cc`, zero past w. Reads each
/// source row once, contiguously (kind to the TLB and the prefetcher for large `ld`).
fn pack_rows_panels<T: Elem>(src: &[T], ld: usize, w: usize, r: usize, kc: usize, dst: &mut [f32]) {
    // Fixed widths let the compiler copy a panel row with a few vector moves (no memcpy call).
    match r {
        6 => pack_rows_panels_n::<T, 6>(src, ld, w, kc, dst),
        8 => pack_rows_panels_n::<T, 8>(src, ld, w, kc, dst),
        12 => pack_rows_panels_n::<T, 12>(src, ld, w, kc, dst),
        16 => pack_rows_panels_n::<T, 16>(src, ld, w, kc, dst),
        32 => pack_rows_panels_n::<T, 32>(src, ld, w, kc, dst),
        _ => {
            let npan = w.div_ceil(r);
            let dst = &mut dst[..npan * kc * r];
            for p in 0..kc {
                let row = &src[p * ld..p * ld + w];
                for (q, s) in row.chunks(r).enumerate() {
                    let d = &mut dst[q * kc * r + p * r..][..r];
                    for (x, &v) in d.iter_mut().zip(s) {
                        *x = v.f32();
                    }
                    d[s.len()..].fill(0.0);
                }
            }
        }
    }
}

/// [`pack_rows_panels`] for a compile-time panel width `R`.
#[inline(always)]
fn pack_rows_panels_n<T: Elem, const R: usize>(
    src: &[T],
    ld: usize,
    w: usize,
    kc: usize,
    dst: &mut [f32],
) {
    let npan = w.div_ceil(R);
    let full = w / R;
    let dst = &mut dst[..npan * kc * R];
    for p in 0..kc {
        let row = &src[p * ld..p * ld + w];
        for q in 0..full {
            let s: &[T; R] = row[q * R..(q + 1) * R].try_into().expect("R elements");
            let d: &mut [f32; R] = (&mut dst[q * kc * R + p * R..][..R])
                .try_into()
                .expect("R lanes");
            for (x, &v) in d.iter_mut().zip(s) {
                *x = v.f32();
            }
        }
        if full < npan {
            let s = &row[full * R..];
            let d = &mut dst[full * kc * R + p * R..][..R];
            for (x, &v) in d.iter_mut().zip(s) {
                *x = v.f32();
            }
            d[s.len()..].fill(0.0);
        }
    }
}

/// Packs columns `j0..j0+w` of op(B), k steps `ks`, into panels of `K::NR` columns.
pub(super) fn pack_b_range<K: MicroKernel, T: Elem>(
    g: &Gemm,
    b: &[T],
    dst: &mut [f32],
    ks: KSteps,
    j0: usize,
    w: usize,
) {
    let (nr, p0, kc) = (K::NR, ks.p0, ks.kc);
    if K::KSTEP == 2 {
        let (k0, len) = ks.values(g.k, 2);
        if g.trans_b {
            let col = |j: usize| &b[(j0 + j) * g.ldb + k0..][..len];
            gather_panels(w, nr, kc, dst, col, interleave_pairs);
        } else {
            pack_rows_pairs(&b[k0 * g.ldb + j0..], g.ldb, w, nr, (kc, len), dst);
        }
        return;
    }
    if g.trans_b {
        if let Some(b32) = T::as_f32(b) {
            // Full panels through the kernel's transposing packer, if it has one.
            let full = w / nr;
            let mut done = 0;
            while done < full
                && K::pack_bt_panel(
                    &b32[(j0 + done * nr) * g.ldb + p0..],
                    g.ldb,
                    kc,
                    &mut dst[done * kc * nr..(done + 1) * kc * nr],
                )
            {
                done += 1;
            }
            if done > 0 {
                if done * nr < w {
                    pack_b_range::<K, T>(
                        g,
                        b,
                        &mut dst[done * kc * nr..],
                        ks,
                        j0 + done * nr,
                        w - done * nr,
                    );
                }
                return;
            }
        }

        // op(B)[p][j] = b[j·ldb + p]: column j of op(B) is a contiguous row of b.
        let col = |j: usize| &b[(j0 + j) * g.ldb + p0..][..kc];
        gather_panels(w, nr, kc, dst, col, interleave_dyn);
    } else {
        pack_rows_panels_fast::<K, T>(&b[p0 * g.ldb + j0..], g.ldb, w, nr, kc, dst);
    }
}

/// [`pack_rows_panels`] through the kernel's [`MicroKernel::pack_panels`] for the full panels
/// when it has one.
fn pack_rows_panels_fast<K: MicroKernel, T: Elem>(
    src: &[T],
    ld: usize,
    w: usize,
    r: usize,
    kc: usize,
    dst: &mut [f32],
) {
    let full = w / r;
    let fast = full > 0
        && match T::as_f32(src) {
            Some(s32) => K::pack_panels(s32, ld, r, full, kc, dst),
            None => false,
        };
    let done = if fast { full * r } else { 0 };
    if done < w {
        pack_rows_panels(&src[done..], ld, w - done, r, kc, &mut dst[done * kc..]);
    }
}

/// Packs rows `i0..i0+h` of op(A), k steps `ks`, into panels of `K::MR` rows.
pub(super) fn pack_a_range<K: MicroKernel, T: Elem>(
    g: &Gemm,
    a: &[T],
    dst: &mut [f32],
    ks: KSteps,
    i0: usize,
    h: usize,
) {
    let (mr, p0, kc) = (K::MR, ks.p0, ks.kc);
    if K::KSTEP == 2 {
        let (k0, len) = ks.values(g.k, 2);
        if g.trans_a {
            pack_rows_pairs(&a[k0 * g.lda + i0..], g.lda, h, mr, (kc, len), dst);
        } else {
            let row = |i: usize| &a[(i0 + i) * g.lda + k0..][..len];
            gather_panels(h, mr, kc, dst, row, interleave_pairs);
        }
        return;
    }
    if g.trans_a {
        // op(A)[i][p] = a[p·lda + i]: column p of op(A) is a contiguous row of a.
        pack_rows_panels_fast::<K, T>(&a[p0 * g.lda + i0..], g.lda, h, mr, kc, dst);
    } else {
        let row = |i: usize| &a[(i0 + i) * g.lda + p0..][..kc];
        gather_panels(h, mr, kc, dst, row, interleave_dyn);
    }
}
