//! The blocked GEMM driver shared by every SIMD path: packing, cache blocking, threading.
//!
//! Layout (Goto/BLIS style, row-major C):
//! - op(B) is packed one block of KC rows × NC columns at a time into column panels of `NR`
//!   columns: panel `jp` at `jp·kc·NR`, element (p, jj) at `+ p·NR + jj`; columns past n are
//!   zero. All tasks share the packed block.
//! - each task takes a block of `MC` rows of op(A) for one k block. Kernels with
//!   `STRIDED_A` read f32 A in place (element (i, p) at `i·rsa + p·csa`); otherwise (and for a
//!   last partial panel, and for bf16) A is packed into row panels of `MR` rows: panel `ip` at
//!   `ip·kc·MR`, element (p, ii) at `+ p·MR + ii`; rows past m are zero.
//! - the micro-kernel computes one `MR×NR` tile of C from one A panel and one B panel, holding
//!   the tile in registers for the whole k block; packed and in-place A give the same
//!   arithmetic in the same order, so the choice never changes a result.
//!
//! Threads (rayon): a large product is split into one band of C per thread, along rows or
//! columns (whole MR or NR panels, chosen by a small cost model: a row split repeats B's
//! packing per band, a column split re-reads A), and each band runs the whole loop nest with
//! its own packed B, without barriers. When neither dimension has a panel per thread, the
//! shared scheme splits each k block's row blocks over tasks instead. Each C element is computed
//! by one task, accumulating k blocks in increasing order and, inside a block, p in increasing
//! order.
//! Tile boundaries sit on multiples of MR and NR whatever the split, so the result is
//! bit-identical for any number of threads.

use super::Gemm;
use rayon::prelude::*;
use std::cell::Cell;

/// An element type that can be packed into f32 panels.
pub(crate) trait Elem: Copy + Send + Sync {
    fn f32(self) -> f32;
    /// The slice itself when the elements already are f32 (kernels may read it unpacked).
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
}

impl Elem for f32 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self
    }
    fn as_f32(s: &[Self]) -> Option<&[f32]> {
        Some(s)
    }
}

impl Elem for half::bf16 {
    #[inline(always)]
    fn f32(self) -> f32 {
        self.to_f32()
    }
    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }
}

/// One register-blocked micro-kernel and the cache blocking that suits it.
pub(crate) trait MicroKernel {
    /// Rows of the C tile.
    const MR: usize;
    /// Columns of the C tile.
    const NR: usize;
    /// k block (A and B panels hold this many k steps).
    const KC: usize;
    /// Rows of op(A) packed together (a multiple of MR; the A block lives in L2).
    const MC: usize;

    /// `C[0..MR, 0..NR] = alpha·(A panel · B panel) + beta·C` (beta == 0: C is not read).
    ///
    /// # Safety
    /// `a` is readable for `kc·MR` f32, `b` for `kc·NR` f32, and `c` is readable and
    /// writable for `MR` rows of `NR` f32 at stride `ldc`; the CPU supports the kernel's ISA.
    unsafe fn tile(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        alpha: f32,
        beta: f32,
    );

    /// Packs one full panel of op(B) = Bᵀ: `dst[p·NR + jj] = b[jj·ldb + p]` for `p < kc`,
    /// `jj < NR`. Returns `false` (and writes nothing) when the kernel has no fast packer for
    /// this ISA, and the caller packs generically. Same values either way (a pure copy).
    fn pack_bt_panel(_b: &[f32], _ldb: usize, _kc: usize, _dst: &mut [f32]) -> bool {
        false
    }

    /// Packs `panels` full panels of `r` columns (`r` is MR or NR) from `kc` rows of `src` at
    /// stride `ld` (an untransposed B, or a transposed A):
    /// `dst[q·kc·r + p·r + x] = src[p·ld + q·r + x]` for `q < panels`, `p < kc`, `x < r`.
    /// Returns `false` (and writes nothing) when the kernel has no fast packer for this ISA, and
    /// the caller packs generically. Same values either way (a pure copy).
    fn pack_panels(
        _src: &[f32],
        _ld: usize,
        _r: usize,
        _panels: usize,
        _kc: usize,
        _dst: &mut [f32],
    ) -> bool {
        false
    }

    /// Whether [`MicroKernel::tile_strided`] takes fewer than MR rows.
    const EDGE_ROWS: bool = false;

    /// Whether [`MicroKernel::tile_strided`] exists.
    const STRIDED_A: bool = false;

    /// [`MicroKernel::tile`] for the first `rows` rows of the tile, reading A unpacked: element
    /// (i, p) of the A panel at `a[i·rsa + p·csa]`, and row p of the B panel at `b[p·rsb..][..NR]`
    /// (`rsb = NR` for a packed panel, B's row stride when read in place). Reads and writes only
    /// those rows of C. Same arithmetic per element, in the same order, as `tile` on packed
    /// panels.
    ///
    /// # Safety
    /// As for `tile`, with `rows == MR`, or `1 ≤ rows < MR` when the kernel has `EDGE_ROWS`;
    /// `a` readable at every `i·rsa + p·csa`, `i < rows`, `p < kc`; `b` for NR f32 at every
    /// `p·rsb`; C for `rows` rows.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_strided(
        _rows: usize,
        _kc: usize,
        _a: *const f32,
        _rsa: usize,
        _csa: usize,
        _b: *const f32,
        _rsb: usize,
        _c: *mut f32,
        _ldc: usize,
        _alpha: f32,
        _beta: f32,
    ) {
        unreachable!("tile_strided called on a kernel without STRIDED_A")
    }
}

/// Largest MR·NR of any kernel (stack buffer for edge tiles).
pub(super) const MAX_TILE: usize = 16 * 64;

/// A raw C pointer shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
pub(super) struct CPtr(pub(super) *mut f32);
// SAFETY: tasks write pairwise disjoint rectangles of C (see `run`), so sharing the pointer across
// threads creates no data race; the pointer outlives the tasks (they finish before `run` returns).
unsafe impl Send for CPtr {}
// SAFETY: as above.
unsafe impl Sync for CPtr {}

impl CPtr {
    /// The pointer (a method, so closures capture the whole `CPtr`, not its raw field).
    pub(super) fn ptr(self) -> *mut f32 {
        self.0
    }
}

thread_local! {
    static A_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static B_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on a 64-byte aligned scratch slice of `len` f32 taken from a thread-local buffer.
/// The buffer is taken out of its cell while in use, so a re-entrant call (rayon work stealing
/// inside `f`) just allocates a fresh one.
fn with_scratch<R>(
    key: &'static std::thread::LocalKey<Cell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    let mut v = key.with(|c| c.take());
    if v.len() < len + 16 {
        v = vec![0.0; len + 16];
    }
    let off = v.as_ptr().align_offset(64).min(15);
    let r = f(&mut v[off..off + len]);
    key.with(|c| c.set(v));
    r
}

/// `C = beta·C` for k == 0 (beta == 0 overwrites).
fn scale_c(g: &Gemm, c: &mut [f32]) {
    for i in 0..g.m {
        for x in &mut c[i * g.ldc..i * g.ldc + g.n] {
            *x = if g.beta == 0.0 { 0.0 } else { g.beta * *x };
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

/// Packs columns `j0..j0+w` of op(B), k rows `p0..p0+kc`, into panels of `nr` columns
/// (`nr == K::NR`).
#[allow(clippy::too_many_arguments)]
fn pack_b_range<K: MicroKernel, T: Elem>(
    g: &Gemm,
    b: &[T],
    dst: &mut [f32],
    nr: usize,
    p0: usize,
    kc: usize,
    j0: usize,
    w: usize,
) {
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
                        nr,
                        p0,
                        kc,
                        j0 + done * nr,
                        w - done * nr,
                    );
                }
                return;
            }
        }

        // op(B)[p][j] = b[j·ldb + p]: column j of op(B) is a contiguous row of b.
        for (q, panel) in dst[..w.div_ceil(nr) * kc * nr]
            .chunks_mut(kc * nr)
            .enumerate()
        {
            let jq = j0 + q * nr;
            let cols_n = nr.min(j0 + w - jq);
            let mut cols: [&[T]; 64] = [&[]; 64];
            for (jj, col) in cols[..cols_n].iter_mut().enumerate() {
                *col = &b[(jq + jj) * g.ldb + p0..][..kc];
            }
            interleave_dyn(&cols[..cols_n], nr, kc, panel);
        }
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

/// Packs rows `i0..i0+h` of op(A), k columns `p0..p0+kc`, into panels of `mr` rows.
#[allow(clippy::too_many_arguments)]
fn pack_a_range<K: MicroKernel, T: Elem>(
    g: &Gemm,
    a: &[T],
    dst: &mut [f32],
    mr: usize,
    p0: usize,
    kc: usize,
    i0: usize,
    h: usize,
) {
    if g.trans_a {
        // op(A)[i][p] = a[p·lda + i]: column p of op(A) is a contiguous row of a.
        pack_rows_panels_fast::<K, T>(&a[p0 * g.lda + i0..], g.lda, h, mr, kc, dst);
    } else {
        for (q, panel) in dst[..h.div_ceil(mr) * kc * mr]
            .chunks_mut(kc * mr)
            .enumerate()
        {
            let iq = i0 + q * mr;
            let rows_n = mr.min(i0 + h - iq);
            let mut rows: [&[T]; 64] = [&[]; 64];
            for (ii, row) in rows[..rows_n].iter_mut().enumerate() {
                *row = &a[(iq + ii) * g.lda + p0..][..kc];
            }
            interleave_dyn(&rows[..rows_n], mr, kc, panel);
        }
    }
}

/// Minimum multiply-adds before threads are used (below this rayon's overhead dominates).
pub(super) const PAR_MIN_WORK: usize = 1 << 21;

/// Columns of op(B) packed together (a multiple of every NR): the packed B block (KC×NC) stays
/// in L3 while every A block of the rows passes over it.
const NC: usize = 2048;

/// Runs `g` with micro-kernel `K`. Lengths must already be checked ([`Gemm::check`]).
/// `par`: use rayon's current pool.
///
/// Loops: column blocks of NC, then k blocks of KC (B block packed once, shared by all tasks),
/// then tasks = row blocks of MC (× column splits when there are few row blocks), each packing
/// its A block and running the micro-kernel over its B panels (outer) and A panels (inner), so
/// one B panel stays in L1 while the A block streams from L2.
pub(crate) fn run<K: MicroKernel, TA: Elem, TB: Elem>(
    g: &Gemm,
    a: &[TA],
    b: &[TB],
    c: &mut [f32],
    par: bool,
) {
    let (m, n, k) = (g.m, g.n, g.k);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        scale_c(g, c);
        return;
    }
    let par = par && m * n * k >= PAR_MIN_WORK && rayon::current_num_threads() > 1;
    let cptr = CPtr(c.as_mut_ptr());
    let c_len = c.len();
    if par {
        if let Some(split) = Split::choose::<K>(g, rayon::current_num_threads()) {
            split.run::<K, TA, TB>(g, a, b, cptr, c_len);
            return;
        }
    }
    blocked::<K, TA, TB>(g, a, b, cptr, c_len, par);
}

/// A static split of C into one band per thread, along rows (whole MR panels) or columns (whole
/// NR panels). Each thread runs the whole blocked loop nest on its band with its own packed B,
/// so there is no barrier between k blocks and no load imbalance from a short last row block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Split {
    /// Split along columns (else rows).
    pub(super) cols: bool,
    /// Rows or columns per band (a multiple of MR or NR).
    pub(super) per: usize,
    /// Number of bands.
    pub(super) parts: usize,
}

impl Split {
    /// The split for `threads` threads, or `None` when neither dimension has a panel per thread.
    ///
    /// Cost model (multiply-adds of the slowest band): a row split repeats the packing of B in
    /// every band (about 32 multiply-adds' time per packed element), a column split re-reads A
    /// in every band (cheaper: A is read in place, about 8 per element).
    pub(super) fn choose<K: MicroKernel>(g: &Gemm, threads: usize) -> Option<Split> {
        Split::choose_tiles(g, threads, K::MR, K::NR)
    }

    /// [`Split::choose`] for an MR×NR tile given at run time.
    pub(super) fn choose_tiles(g: &Gemm, threads: usize, mr: usize, nr: usize) -> Option<Split> {
        let (m, n, k) = (g.m, g.n, g.k);
        let (mp, np) = (m.div_ceil(mr), n.div_ceil(nr));
        let band = |panels: usize, unit: usize, len: usize| {
            if panels < threads {
                return None;
            }
            let per = panels.div_ceil(threads) * unit;
            Some((per, len.div_ceil(per)))
        };
        let by_rows = band(mp, mr, m).map(|(per, parts)| {
            let cost = per * n * k + 32 * k * n;
            (
                cost,
                Split {
                    cols: false,
                    per,
                    parts,
                },
            )
        });
        let by_cols = band(np, nr, n).map(|(per, parts)| {
            let cost = per * m * k + 8 * m * k;
            (
                cost,
                Split {
                    cols: true,
                    per,
                    parts,
                },
            )
        });
        match (by_rows, by_cols) {
            (Some(r), Some(c)) => Some(if c.0 <= r.0 { c.1 } else { r.1 }),
            (r, c) => r.or(c).map(|x| x.1),
        }
    }

    /// Runs `g` band by band, one rayon task per band, each band sequential.
    fn run<K: MicroKernel, TA: Elem, TB: Elem>(
        self,
        g: &Gemm,
        a: &[TA],
        b: &[TB],
        cptr: CPtr,
        c_len: usize,
    ) {
        self.for_each_band(g, a, b, cptr, c_len, |sub, a, b, c, c_len| {
            blocked::<K, TA, TB>(sub, a, b, c, c_len, false)
        });
    }

    /// Calls `f(sub-problem, A, B, C, C length)` for each band, one rayon task per band.
    pub(super) fn for_each_band<TA: Sync, TB: Sync>(
        self,
        g: &Gemm,
        a: &[TA],
        b: &[TB],
        cptr: CPtr,
        c_len: usize,
        f: impl Fn(&Gemm, &[TA], &[TB], CPtr, usize) + Sync,
    ) {
        let band = |t: usize| {
            let s0 = t * self.per;
            let mut sub = *g;
            let (aoff, boff, coff) = if self.cols {
                sub.n = self.per.min(g.n - s0);
                let boff = if g.trans_b { s0 * g.ldb } else { s0 };
                (0, boff, s0)
            } else {
                sub.m = self.per.min(g.m - s0);
                let aoff = if g.trans_a { s0 } else { s0 * g.lda };
                (aoff, 0, s0 * g.ldc)
            };
            // SAFETY: coff < c_len (row or column s0 < m or n lies inside C); bands write
            // pairwise disjoint rows or columns of C.
            let c = CPtr(unsafe { cptr.ptr().add(coff) });
            f(&sub, &a[aoff..], &b[boff..], c, c_len - coff);
        };
        (0..self.parts)
            .into_par_iter()
            .with_max_len(1)
            .for_each(band);
    }
}

/// The blocked loop nest of [`run`] on C at `cptr` (`c_len` elements, checked by the caller),
/// m, n, k > 0. `par`: split each k block's row blocks over rayon tasks (shared packed B).
fn blocked<K: MicroKernel, TA: Elem, TB: Elem>(
    g: &Gemm,
    a: &[TA],
    b: &[TB],
    cptr: CPtr,
    c_len: usize,
    par: bool,
) {
    let (m, n, k) = (g.m, g.n, g.k);
    let (mr, nr, kcb, mcb) = (K::MR, K::NR, K::KC, K::MC);
    assert!(
        mr * nr <= MAX_TILE && mr <= 64 && nr <= 64 && mcb / mr * mr == mcb && NC / nr * nr == NC
    );
    let threads = if par { rayon::current_num_threads() } else { 1 };
    let mb = m.div_ceil(mcb);
    let edge_rows = K::EDGE_ROWS;
    // A single row block (batched attention products) meets each B panel once per k block, so
    // packing B does not pay: an untransposed f32 B is read in place (full panels; a last
    // partial one is packed), with A read in place and the edge-row kernels.
    let b_direct = match (TA::as_f32(a), TB::as_f32(b)) {
        (Some(_), Some(b32)) if K::STRIDED_A && edge_rows && !g.trans_b && m <= mcb && !par => {
            Some(b32)
        }
        _ => None,
    };

    with_scratch(&B_BUF, kcb * NC.min(n.div_ceil(nr) * nr), |bpack| {
        for j0 in (0..n).step_by(NC) {
            let np = NC.min(n - j0).div_ceil(nr);
            for (q, p0) in (0..k).step_by(kcb).enumerate() {
                let kc = kcb.min(k - p0);
                let bblk = &mut bpack[..np * kc * nr];
                let ncols = NC.min(n - j0);
                // Each thread packs a run of whole panels, row by row.
                let ppt = if par { np.div_ceil(threads) } else { np };
                let pack = |(t, chunk): (usize, &mut [f32])| {
                    let js = t * ppt * nr;
                    pack_b_range::<K, TB>(
                        g,
                        b,
                        chunk,
                        nr,
                        p0,
                        kc,
                        j0 + js,
                        (ppt * nr).min(ncols - js),
                    )
                };
                if b_direct.is_some() {
                    if ncols % nr != 0 {
                        let js = (np - 1) * nr;
                        pack_b_range::<K, TB>(
                            g,
                            b,
                            &mut bblk[js * kc..],
                            nr,
                            p0,
                            kc,
                            j0 + js,
                            ncols - js,
                        );
                    }
                } else if par {
                    bblk.par_chunks_mut(ppt * kc * nr)
                        .enumerate()
                        .for_each(pack);
                } else {
                    bblk.chunks_mut(ppt * kc * nr).enumerate().for_each(pack);
                }
                let bblk: &[f32] = bblk;
                let beta = if q == 0 { g.beta } else { 1.0 };

                // Split C into row blocks and, if that gives too few tasks, column blocks.
                let want = if par { 4 * threads } else { 1 };
                let nb = if mb >= want {
                    1
                } else {
                    want.div_ceil(mb).min(np)
                };
                let panels_per_nb = np.div_ceil(nb);
                let nb = np.div_ceil(panels_per_nb);

                let task = |t: usize| {
                    let (ib, jb) = (t / nb, t % nb);
                    let i0 = ib * mcb;
                    let mc = mcb.min(m - i0);
                    let mpanels = mc.div_ceil(mr);
                    let jp0 = jb * panels_per_nb;
                    let jp1 = np.min(jp0 + panels_per_nb);
                    // f32 A is read in place when the kernel can (measured: never slower than
                    // packing an untransposed A, and much faster when an A panel meets few B
                    // panels, as in attention); a last partial panel is packed unless the kernel has
                    // EDGE_ROWS (a kernel for fewer rows, which then also writes C directly).
                    // A transposed A is read along its columns (a new cache line, and a new
                    // page every few k steps); when its block meets many B panels, packing it
                    // costs less than the kernel loses (measured: the Aᵀ·B weight gradients).
                    // (B read in place needs A in place.)
                    let a_direct = match TA::as_f32(a) {
                        Some(a32)
                            if K::STRIDED_A
                                && (b_direct.is_some() || !g.trans_a || jp1 - jp0 < 16) =>
                        {
                            Some(a32)
                        }
                        _ => None,
                    };
                    let (rsa, csa) = if g.trans_a { (1, g.lda) } else { (g.lda, 1) };
                    with_scratch(&A_BUF, mcb * kcb, |apack| {
                        if a_direct.is_none() {
                            pack_a_range::<K, TA>(g, a, apack, mr, p0, kc, i0, mc);
                        } else if mc % mr != 0 && !edge_rows {
                            let last = mpanels - 1;
                            pack_a_range::<K, TA>(
                                g,
                                a,
                                &mut apack[last * kc * mr..],
                                mr,
                                p0,
                                kc,
                                i0 + last * mr,
                                mc - last * mr,
                            );
                        }
                        for jp in jp0..jp1 {
                            let bpanel = &bblk[jp * kc * nr..][..kc * nr];
                            let j = j0 + jp * nr;
                            let nr_eff = nr.min(n - j);
                            // Row p of this B panel at bp + p·rsb.
                            let (bp, rsb) = match b_direct {
                                Some(b32) if nr_eff == nr => {
                                    (b32[p0 * g.ldb + j..].as_ptr(), g.ldb)
                                }
                                _ => (bpanel.as_ptr(), nr),
                            };
                            for ip in 0..mpanels {
                                let apanel = &apack[ip * kc * mr..][..kc * mr];
                                let i = i0 + ip * mr;
                                let mr_eff = mr.min(m - i);
                                let off = i * g.ldc + j;
                                let tile = |c: *mut f32, ldc: usize| match a_direct {
                                    Some(a32) if mr_eff == mr || edge_rows => {
                                        let a_off = i * rsa + p0 * csa;
                                        debug_assert!(
                                            a_off + (mr_eff - 1) * rsa + (kc - 1) * csa < a32.len()
                                        );
                                        // SAFETY: rows i..i+mr_eff (all < m; fewer than MR only
                                        // with EDGE_ROWS) and columns p0..p0+kc (≤ k) of op(A)
                                        // lie inside A (checked by Gemm::check); bp holds NR f32
                                        // at p·rsb for p < kc (a packed panel, or rows
                                        // p0..p0+kc, columns j..j+NR ≤ n of B read in place); c
                                        // as below, for mr_eff rows; K has STRIDED_A.
                                        unsafe {
                                            K::tile_strided(
                                                mr_eff,
                                                kc,
                                                a32.as_ptr().add(a_off),
                                                rsa,
                                                csa,
                                                bp,
                                                rsb,
                                                c,
                                                ldc,
                                                g.alpha,
                                                beta,
                                            )
                                        }
                                    }
                                    // SAFETY: the panels hold kc·MR and kc·NR f32 (sliced above;
                                    // A is packed here, so B is too: b_direct needs A in place
                                    // and edge rows); c as below.
                                    _ => unsafe {
                                        K::tile(
                                            kc,
                                            apanel.as_ptr(),
                                            bpanel.as_ptr(),
                                            c,
                                            ldc,
                                            g.alpha,
                                            beta,
                                        )
                                    },
                                };
                                let rows_ok = mr_eff == mr || (a_direct.is_some() && edge_rows);
                                if rows_ok && nr_eff == nr {
                                    debug_assert!(off + (mr_eff - 1) * g.ldc + nr <= c_len);
                                    // Rows i..i+mr_eff (MR, or fewer with EDGE_ROWS), columns j..j+NR lie inside C (m×n at stride
                                    // ldc, checked by Gemm::check) and belong to this task alone;
                                    // the caller picked K for an ISA the CPU supports.
                                    // SAFETY: off is inside C (see above).
                                    tile(unsafe { cptr.ptr().add(off) }, g.ldc);
                                } else {
                                    // Edge tile: run the full kernel on a stack copy, then copy
                                    // back the valid part, so edge elements get the same
                                    // arithmetic as interior ones.
                                    let mut tmp = [0.0f32; MAX_TILE];
                                    for ii in 0..mr_eff {
                                        for jj in 0..nr_eff {
                                            // SAFETY: (i+ii, j+jj) is inside C, owned by this task.
                                            tmp[ii * nr + jj] =
                                                unsafe { *cptr.ptr().add(off + ii * g.ldc + jj) };
                                        }
                                    }
                                    // tmp holds MR rows of NR at stride NR.
                                    tile(tmp.as_mut_ptr(), nr);
                                    for ii in 0..mr_eff {
                                        for jj in 0..nr_eff {
                                            // SAFETY: as for the read above.
                                            unsafe {
                                                *cptr.ptr().add(off + ii * g.ldc + jj) =
                                                    tmp[ii * nr + jj]
                                            };
                                        }
                                    }
                                }
                            }
                        }
                    });
                };
                let tasks = mb * nb;
                if par && tasks > 1 {
                    (0..tasks).into_par_iter().with_max_len(1).for_each(task);
                } else {
                    (0..tasks).for_each(task);
                }
            }
        }
    });
}

/// `batch` products through [`run`]: the batch is split over threads, each product runs on one
/// thread. Lengths and strides must already be checked; `stride_c ≥` C's extent when batch > 1.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_batched<K: MicroKernel, TA: Elem, TB: Elem>(
    g: &Gemm,
    batch: usize,
    a: &[TA],
    sa: usize,
    b: &[TB],
    sb: usize,
    c: &mut [f32],
    sc: usize,
) {
    let threads = rayon::current_num_threads();
    if batch == 1 || batch < threads || sc == 0 {
        for i in 0..batch {
            run::<K, TA, TB>(g, &a[i * sa..], &b[i * sb..], &mut c[i * sc..], true);
        }
        return;
    }
    // Runs of consecutive products per task (a few tasks per thread, so a delayed thread can
    // still be helped), instead of one task per product.
    let per = batch.div_ceil(4 * threads);
    c.par_chunks_mut(sc)
        .take(batch)
        .enumerate()
        .with_min_len(per)
        .for_each(|(i, ci)| {
            run::<K, TA, TB>(g, &a[i * sa..], &b[i * sb..], ci, false);
        });
}
