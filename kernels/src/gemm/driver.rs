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
//! - "k" above counts the kernel's k steps: one k value per 32-bit lane for the f32 kernels,
//!   a pair of bf16 k values per lane for the `vdpbf16ps` kernel (`KSTEP == 2`, see `pack`); an
//!   untransposed bf16 A is then read in place as 32-bit pairs.
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

use super::pack::{pack_a_range, pack_b_range, Elem, KSteps};
use super::Gemm;
use rayon::prelude::*;
use std::cell::Cell;

/// One micro-kernel call: the first `rows` rows (MR, or fewer with `EDGE_ROWS`) of an MR×NR
/// tile of C over `kc` k steps. A's lane (i, p) (32 bits: an f32, or a bf16 pair when
/// `KSTEP == 2`) is at byte `a + i·rsa + p·csa`; row p of the B panel (NR lanes) at
/// `b + p·rsb` lanes; row i of C at `c + i·ldc`. Packed panels have `rsa = 4`, `csa = 4·MR`,
/// `rsb = NR`. A non-null `bias` (kernels with `STORE_BIAS` only) holds NR f32, added to every
/// row of the tile as it is stored.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tile {
    pub(crate) rows: usize,
    pub(crate) kc: usize,
    pub(crate) a: *const u8,
    pub(crate) rsa: usize,
    pub(crate) csa: usize,
    pub(crate) b: *const f32,
    pub(crate) rsb: usize,
    pub(crate) c: *mut f32,
    pub(crate) ldc: usize,
    pub(crate) alpha: f32,
    pub(crate) beta: f32,
    pub(crate) bias: *const f32,
}

/// One register-blocked micro-kernel and the cache blocking that suits it.
pub(crate) trait MicroKernel {
    /// Rows of the C tile.
    const MR: usize;
    /// Columns of the C tile.
    const NR: usize;
    /// k block, in k steps (A and B panels hold this many k steps).
    const KC: usize;
    /// Rows of op(A) packed together (a multiple of MR; the A block lives in L2).
    const MC: usize;
    /// k values per k step (per 32-bit panel lane): 1 (f32), or 2 (bf16 pairs, bf16 operands
    /// only).
    const KSTEP: usize = 1;

    /// `C[0..MR, 0..NR] = alpha·(A panel · B panel) + beta·C` (beta == 0: C is not read) on
    /// packed panels (`t.rows == MR`, the packed strides).
    ///
    /// # Safety
    /// `t.a` is readable for `kc·MR` lanes, `t.b` for `kc·NR`, and `t.c` is readable and
    /// writable for `MR` rows of `NR` f32 at stride `ldc`; the CPU supports the kernel's ISA.
    unsafe fn tile(t: &Tile);

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

    /// Whether the kernels add a tile's `bias` as they store it (otherwise the driver adds it
    /// to C after the tile).
    const STORE_BIAS: bool = false;

    /// Whether [`MicroKernel::tile_strided`] takes fewer than MR rows.
    const EDGE_ROWS: bool = false;

    /// Whether [`MicroKernel::tile_strided`] exists.
    const STRIDED_A: bool = false;

    /// Whether an untransposed f32 B is read in place (full panels) when C is a single row
    /// block (needs `STRIDED_A` and `EDGE_ROWS`): the batched attention products meet each B
    /// panel once per k block, so packing B does not pay (measured on AVX-512). On AVX2 it
    /// lost 25–60% on a weight gradient (Aᵀ·B 128×128×2048, B rows 512 bytes apart), so it is
    /// off there.
    const B_IN_PLACE: bool = false;

    /// With `STRIDED_A`, an untransposed A is still packed when its block meets at least this
    /// many B panels: a packed panel is one contiguous stream read at constant offsets, which
    /// pays once it is reused this often. (A transposed A has its own thresholds, below.)
    const PACK_A_PANELS: usize = usize::MAX;

    /// With `STRIDED_A`, a transposed A is packed when its block meets at least this many B
    /// panels. Read in place, a transposed A's MR rows of one k step are contiguous, but each k
    /// step is a new cache line, `lda` floats on.
    const PACK_AT_PANELS: usize = 16;

    /// [`MicroKernel::PACK_AT_PANELS`] when A's stored rows are a page (4 KiB) or more apart:
    /// then every k step read in place is also a new page, which the hardware prefetchers do
    /// not cross (the decoder's `dlogitsᵀ·x` over a vocabulary of 8,192).
    const PACK_AT_FAR_PANELS: usize = 16;

    /// [`MicroKernel::tile`] with any strides (A read in place; B read in place has `rsb` =
    /// B's row stride) for `t.rows` rows: reads and writes only those rows of C. Same
    /// arithmetic per element, in the same order, as `tile` on packed panels.
    ///
    /// # Safety
    /// As for `tile`, with `rows == MR`, or `1 ≤ rows < MR` when the kernel has `EDGE_ROWS`;
    /// 4 bytes readable at every `a + i·rsa + p·csa`, `i < rows`, `p < kc`; NR f32 at every
    /// `b + p·rsb`; C for `rows` rows.
    unsafe fn tile_strided(_t: &Tile) {
        unreachable!("tile_strided called on a kernel without STRIDED_A")
    }
}

/// The length checks of every [`MicroKernel::pack_bt_panel`] (panels of `nr` columns): panics
/// naming the lengths unless `b` holds `nr` rows of `kc` values at stride `ldb ≥ kc` and `dst`
/// `kc·nr` lanes.
pub(crate) fn check_bt_panel(b: &[f32], ldb: usize, kc: usize, nr: usize, dst: &[f32]) {
    assert!(
        ldb >= kc && b.len() >= (nr - 1) * ldb + kc && dst.len() >= kc * nr,
        "pack_bt_panel: b {} (ldb {ldb}) or dst {} too short for kc {kc}",
        b.len(),
        dst.len()
    );
}

/// The length checks of every [`MicroKernel::pack_panels`] (`kc ≥ 1`): panics naming the
/// lengths unless `src` holds `kc` rows of `panels·r` values at stride `ld ≥ panels·r` and `dst`
/// `panels·kc·r` lanes.
pub(crate) fn check_panels(
    src: &[f32],
    ld: usize,
    (r, panels, kc): (usize, usize, usize),
    dst: &[f32],
) {
    assert!(
        ld >= panels * r && src.len() >= (kc - 1) * ld + panels * r && dst.len() >= panels * kc * r,
        "pack_panels: src {} (ld {ld}) or dst {} too short for {panels} panels of {r}, kc {kc}",
        src.len(),
        dst.len()
    );
}

/// Largest MR·NR of any kernel (stack buffer for edge tiles).
const MAX_TILE: usize = 16 * 64;

/// A raw C pointer shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
struct CPtr(*mut f32);
// SAFETY: tasks write pairwise disjoint rectangles of C (see `run`), so sharing the pointer across
// threads creates no data race; the pointer outlives the tasks (they finish before `run` returns).
unsafe impl Send for CPtr {}
// SAFETY: as above.
unsafe impl Sync for CPtr {}

impl CPtr {
    /// The pointer (a method, so closures capture the whole `CPtr`, not its raw field).
    fn ptr(self) -> *mut f32 {
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

/// `C = beta·C` for k == 0 (beta == 0 overwrites), then the bias added to every row.
fn scale_c(g: &Gemm, c: &mut [f32], bias: Option<&[f32]>) {
    for i in 0..g.m {
        let row = &mut c[i * g.ldc..i * g.ldc + g.n];
        for x in row.iter_mut() {
            *x = if g.beta == 0.0 { 0.0 } else { g.beta * *x };
        }
        if let Some(bias) = bias {
            add_bias(row, &bias[..g.n]);
        }
    }
}

/// `row[j] += bias[j]`: the bias epilogue, one f32 add per element, the same as adding the
/// bias to the finished product afterwards.
#[inline]
pub(crate) fn add_bias(row: &mut [f32], bias: &[f32]) {
    for (x, b) in row.iter_mut().zip(bias) {
        *x += *b;
    }
}

/// Minimum multiply-adds before threads are used (below this rayon's overhead dominates).
const PAR_MIN_WORK: usize = 1 << 21;

/// Columns of op(B) packed together (a multiple of every NR): the packed B block (KC×NC) stays
/// in L3 while every A block of the rows passes over it.
const NC: usize = 2048;

/// Runs `g` with micro-kernel `K`. Lengths must already be checked ([`Gemm::check`]; a bias
/// holds at least n values). `par`: use rayon's current pool. `bias`: added to every row of C
/// once its product is complete (after the last k block of each tile, while the tile is in
/// L1), which gives exactly the values of a separate add afterwards.
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
    bias: Option<&[f32]>,
) {
    let (m, n, k) = (g.m, g.n, g.k);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        scale_c(g, c, bias);
        return;
    }
    let par = par && m * n * k >= PAR_MIN_WORK && rayon::current_num_threads() > 1;
    let cptr = CPtr(c.as_mut_ptr());
    let c_len = c.len();
    if par {
        if let Some(split) = Split::choose::<K>(g, rayon::current_num_threads()) {
            split.for_each_band(g, a, b, bias, cptr, c_len, |sub, a, b, bias, c, c_len| {
                blocked::<K, TA, TB>(sub, a, b, bias, c, c_len, false)
            });
            return;
        }
    }
    blocked::<K, TA, TB>(g, a, b, bias, cptr, c_len, par);
}

/// A static split of C into one band per thread, along rows (whole MR panels) or columns (whole
/// NR panels). Each thread runs the whole blocked loop nest on its band with its own packed B,
/// so there is no barrier between k blocks and no load imbalance from a short last row block.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Split {
    /// Split along columns (else rows).
    cols: bool,
    /// Rows or columns per band (a multiple of MR or NR).
    per: usize,
    /// Number of bands.
    parts: usize,
}

impl Split {
    /// The split for `threads` threads, or `None` when neither dimension has a panel per thread.
    ///
    /// Cost model (multiply-adds of the slowest band): a row split repeats the packing of B in
    /// every band (about 32 multiply-adds' time per packed element), a column split re-reads A
    /// in every band (cheaper: A is read in place, about 8 per element).
    fn choose<K: MicroKernel>(g: &Gemm, threads: usize) -> Option<Split> {
        let (m, n, k, mr, nr) = (g.m, g.n, g.k, K::MR, K::NR);
        let (mp, np) = (m.div_ceil(mr), n.div_ceil(nr));
        // One band per thread of whole panels (`panels` of `unit` rows or columns, `len` in all).
        let band = |cols: bool, panels: usize, unit: usize, len: usize| {
            if panels < threads {
                return None;
            }
            let per = panels.div_ceil(threads) * unit;
            let parts = len.div_ceil(per);
            Some(Split { cols, per, parts })
        };
        let by_rows = band(false, mp, mr, m).map(|s| (s.per * n * k + 32 * k * n, s));
        let by_cols = band(true, np, nr, n).map(|s| (s.per * m * k + 8 * m * k, s));
        match (by_rows, by_cols) {
            (Some(r), Some(c)) => Some(if c.0 <= r.0 { c.1 } else { r.1 }),
            (r, c) => r.or(c).map(|x| x.1),
        }
    }

    /// Calls `f(sub-problem, A, B, bias, C, C length)` for each band, one rayon task per band.
    #[allow(clippy::too_many_arguments)]
    fn for_each_band<TA: Sync, TB: Sync>(
        self,
        g: &Gemm,
        a: &[TA],
        b: &[TB],
        bias: Option<&[f32]>,
        cptr: CPtr,
        c_len: usize,
        f: impl Fn(&Gemm, &[TA], &[TB], Option<&[f32]>, CPtr, usize) + Sync,
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
            let bias = bias.map(|v| if self.cols { &v[s0..] } else { v });
            f(&sub, &a[aoff..], &b[boff..], bias, c, c_len - coff);
        };
        (0..self.parts)
            .into_par_iter()
            .with_max_len(1)
            .for_each(band);
    }
}

/// A read in place for the k steps `ks`: (byte pointer to lane (0, ks.p0), rsa, csa in bytes),
/// when the kernel reads A unpacked: an f32 A (`STRIDED_A`), or on a pair kernel an
/// untransposed bf16 A whose block has no half pair (each pair is one unaligned 32-bit read).
fn a_in_place<K: MicroKernel, TA: Elem>(
    g: &Gemm,
    a: &[TA],
    ks: KSteps,
) -> Option<(*const u8, usize, usize)> {
    let fits = match K::KSTEP {
        1 => TA::as_f32(a).is_some(),
        _ => TA::BF16 && !g.trans_a && K::KSTEP * (ks.p0 + ks.kc) <= g.k,
    };
    if !K::STRIDED_A || !fits {
        return None;
    }
    let e = std::mem::size_of::<TA>();
    let (rsa, csa) = if g.trans_a {
        (e, e * g.lda)
    } else {
        (e * g.lda, e * K::KSTEP)
    };
    // Byte offset ks.p0·csa is inside A (k step p0 < the k steps of op(A)).
    Some((a.as_ptr().cast::<u8>().wrapping_add(ks.p0 * csa), rsa, csa))
}

/// The blocked loop nest of [`run`] on C at `cptr` (`c_len` elements, checked by the caller),
/// m, n, k > 0. `par`: split each k block's row blocks over rayon tasks (shared packed B).
/// `bias` (n values): added to each tile after its last k block.
fn blocked<K: MicroKernel, TA: Elem, TB: Elem>(
    g: &Gemm,
    a: &[TA],
    b: &[TB],
    bias: Option<&[f32]>,
    cptr: CPtr,
    c_len: usize,
    par: bool,
) {
    let (m, n) = (g.m, g.n);
    let (mr, nr, kcb, mcb) = (K::MR, K::NR, K::KC, K::MC);
    assert!(
        mr * nr <= MAX_TILE && mr <= 64 && nr <= 64 && mcb / mr * mr == mcb && NC / nr * nr == NC
    );
    assert!(
        K::KSTEP == 1 || (TA::BF16 && TB::BF16),
        "pair kernels take bf16 operands"
    );
    let steps = g.k.div_ceil(K::KSTEP);
    let threads = if par { rayon::current_num_threads() } else { 1 };
    let mb = m.div_ceil(mcb);
    let edge_rows = K::EDGE_ROWS;
    // A single row block (batched attention products) meets each B panel once per k block, so
    // packing B does not pay: an untransposed f32 B is read in place (full panels; a last
    // partial one is packed), with A read in place and the edge-row kernels.
    let b_direct = match (TA::as_f32(a), TB::as_f32(b)) {
        (Some(_), Some(b32))
            if K::STRIDED_A
                && K::B_IN_PLACE
                && K::KSTEP == 1
                && edge_rows
                && !g.trans_b
                && m <= mcb
                && !par =>
        {
            Some(b32)
        }
        _ => None,
    };

    with_scratch(&B_BUF, kcb * NC.min(n.div_ceil(nr) * nr), |bpack| {
        for j0 in (0..n).step_by(NC) {
            let np = NC.min(n - j0).div_ceil(nr);
            for (q, p0) in (0..steps).step_by(kcb).enumerate() {
                let ks = KSteps {
                    p0,
                    kc: kcb.min(steps - p0),
                };
                let kc = ks.kc;
                let bblk = &mut bpack[..np * kc * nr];
                let ncols = NC.min(n - j0);
                // Each thread packs a run of whole panels, row by row.
                let ppt = if par { np.div_ceil(threads) } else { np };
                let pack = |(t, chunk): (usize, &mut [f32])| {
                    let js = t * ppt * nr;
                    pack_b_range::<K, TB>(g, b, chunk, ks, j0 + js, (ppt * nr).min(ncols - js))
                };
                if b_direct.is_some() {
                    if ncols % nr != 0 {
                        let js = (np - 1) * nr;
                        let last = &mut bblk[js * kc..];
                        pack_b_range::<K, TB>(g, b, last, ks, j0 + js, ncols - js);
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
                // The bias goes on after the last k block.
                let bias = bias.filter(|_| p0 + kc == steps);

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
                    // A is read in place when the kernel can (measured on AVX-512: never slower
                    // than packing an untransposed A, and much faster when an A panel meets few
                    // B panels, as in attention; AVX2 packs it from PACK_A_PANELS on); a last
                    // partial panel is packed unless the kernel has EDGE_ROWS (a kernel for
                    // fewer rows, which then also writes C directly).
                    // A transposed A is read along its columns (a new cache line, and a new
                    // page every few k steps); when its block meets many B panels, packing it
                    // costs less than the kernel loses (measured: the Aᵀ·B weight gradients).
                    // (B read in place needs A in place.)
                    let pack_from = match (g.trans_a, 4 * g.lda >= 4096) {
                        (true, true) => K::PACK_AT_FAR_PANELS,
                        (true, false) => K::PACK_AT_PANELS,
                        (false, _) => K::PACK_A_PANELS,
                    };
                    let a_direct = a_in_place::<K, TA>(g, a, ks)
                        .filter(|_| b_direct.is_some() || jp1 - jp0 < pack_from);
                    with_scratch(&A_BUF, mcb * kcb, |apack| {
                        if a_direct.is_none() {
                            pack_a_range::<K, TA>(g, a, apack, ks, i0, mc);
                        } else if mc % mr != 0 && !edge_rows {
                            let last = mpanels - 1;
                            let dst = &mut apack[last * kc * mr..];
                            pack_a_range::<K, TA>(g, a, dst, ks, i0 + last * mr, mc - last * mr);
                        }
                        for jp in jp0..jp1 {
                            let bpanel = &bblk[jp * kc * nr..][..kc * nr];
                            let j = j0 + jp * nr;
                            let nr_eff = nr.min(n - j);
                            // Row p of this B panel at bp + p·rsb.
                            let (bp, rsb) = match b_direct {
                                Some(b32) if nr_eff == nr => {
                                    (b32[ks.p0 * g.ldb + j..].as_ptr(), g.ldb)
                                }
                                _ => (bpanel.as_ptr(), nr),
                            };
                            for ip in 0..mpanels {
                                let apanel = &apack[ip * kc * mr..][..kc * mr];
                                let i = i0 + ip * mr;
                                let mr_eff = mr.min(m - i);
                                let strided = a_direct.filter(|_| mr_eff == mr || edge_rows);
                                let t = match strided {
                                    Some((a0, rsa, csa)) => Tile {
                                        rows: mr_eff,
                                        kc,
                                        a: a0.wrapping_add(i * rsa),
                                        rsa,
                                        csa,
                                        b: bp,
                                        rsb,
                                        c: cptr.ptr(),
                                        ldc: g.ldc,
                                        alpha: g.alpha,
                                        beta,
                                        bias: std::ptr::null(),
                                    },
                                    None => Tile {
                                        rows: mr,
                                        kc,
                                        a: apanel.as_ptr().cast(),
                                        rsa: 4,
                                        csa: 4 * mr,
                                        b: bpanel.as_ptr(),
                                        rsb: nr,
                                        c: cptr.ptr(),
                                        ldc: g.ldc,
                                        alpha: g.alpha,
                                        beta,
                                        bias: std::ptr::null(),
                                    },
                                };
                                let off = i * g.ldc + j;
                                let rows_ok = mr_eff == mr || strided.is_some();
                                let whole = rows_ok && nr_eff == nr;
                                // A whole tile takes the bias as it is stored, when the
                                // kernel can; otherwise it is added after the tile.
                                let (t, bias) = match bias {
                                    Some(v) if whole && K::STORE_BIAS => (
                                        Tile {
                                            bias: v[j..j + nr].as_ptr(),
                                            ..t
                                        },
                                        None,
                                    ),
                                    _ => (t, bias),
                                };
                                // The kernel on C at `c` with row stride `ldc`.
                                let tile = |c: *mut f32, ldc: usize| {
                                    let t = Tile { c, ldc, ..t };
                                    if strided.is_some() {
                                        debug_assert!(
                                            (i * t.rsa + (ks.p0 + kc) * t.csa)
                                                <= std::mem::size_of_val(a) + t.csa
                                        );
                                        // SAFETY: rows i..i+mr_eff (all < m; fewer than MR only
                                        // with EDGE_ROWS) and k steps p0..p0+kc of op(A) lie
                                        // inside A (checked by Gemm::check; a pair kernel reads
                                        // in place only blocks without a half pair); bp holds NR
                                        // f32 at p·rsb for p < kc (a packed panel, or rows of B
                                        // read in place, columns j..j+NR ≤ n); c as below, for
                                        // mr_eff rows; a bias only on a whole tile (NR values,
                                        // columns j..j+NR ≤ n); K has STRIDED_A.
                                        unsafe { K::tile_strided(&t) }
                                    } else {
                                        // SAFETY: the panels hold kc·MR and kc·NR lanes (sliced
                                        // above; A is packed here, so B is too: b_direct needs A
                                        // in place and edge rows); c and the bias as above.
                                        unsafe { K::tile(&t) }
                                    }
                                };
                                if whole {
                                    debug_assert!(off + (mr_eff - 1) * g.ldc + nr <= c_len);
                                    // Rows i..i+mr_eff (MR, or fewer with EDGE_ROWS), columns
                                    // j..j+NR lie inside C (m×n at stride ldc, checked by
                                    // Gemm::check) and belong to this task alone; the caller
                                    // picked K for an ISA the CPU supports.
                                    // SAFETY: off is inside C (see above).
                                    tile(unsafe { cptr.ptr().add(off) }, g.ldc);
                                } else {
                                    edge_tile(cptr, off, g.ldc, (mr_eff, nr_eff), nr, tile);
                                }
                                if let Some(bias) = bias {
                                    let bias = &bias[j..j + nr_eff];
                                    for ii in 0..mr_eff {
                                        // SAFETY: row i + ii, columns j..j+nr_eff of C lie
                                        // inside C and belong to this task (as for the tile
                                        // above); no other reference to them is live.
                                        let row = unsafe {
                                            std::slice::from_raw_parts_mut(
                                                cptr.ptr().add(off + ii * g.ldc),
                                                nr_eff,
                                            )
                                        };
                                        add_bias(row, bias);
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

/// An edge tile of `rows × cols` elements of C at `cptr + off` (row stride `ldc`, owned by the
/// caller's task): runs the full kernel `tile` on a stack copy (MR rows of `nr` at stride `nr`),
/// then copies back the valid part, so edge elements get the same arithmetic as interior ones.
fn edge_tile(
    cptr: CPtr,
    off: usize,
    ldc: usize,
    (rows, cols): (usize, usize),
    nr: usize,
    tile: impl Fn(*mut f32, usize),
) {
    let mut tmp = [0.0f32; MAX_TILE];
    for ii in 0..rows {
        for jj in 0..cols {
            // SAFETY: (ii, jj) of the tile is inside C, owned by this task.
            tmp[ii * nr + jj] = unsafe { *cptr.ptr().add(off + ii * ldc + jj) };
        }
    }
    tile(tmp.as_mut_ptr(), nr);
    for ii in 0..rows {
        for jj in 0..cols {
            // SAFETY: as for the read above.
            unsafe { *cptr.ptr().add(off + ii * ldc + jj) = tmp[ii * nr + jj] };
        }
    }
}

/// A strided batch: `n` products, the i-th reading A at `i·sa`, B at `i·sb`, writing C at
/// `i·sc`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Batch {
    pub(crate) n: usize,
    pub(crate) sa: usize,
    pub(crate) sb: usize,
    pub(crate) sc: usize,
}

/// `batch` products through [`run`]: the batch is split over threads, each product runs on one
/// thread. Lengths and strides must already be checked; `sc ≥` C's extent when n > 1.
pub(crate) fn run_batched<K: MicroKernel, TA: Elem, TB: Elem>(
    g: &Gemm,
    batch: Batch,
    a: &[TA],
    b: &[TB],
    c: &mut [f32],
) {
    let Batch {
        n: batch,
        sa,
        sb,
        sc,
    } = batch;
    let threads = rayon::current_num_threads();
    if batch == 1 || batch < threads || sc == 0 {
        for i in 0..batch {
            run::<K, TA, TB>(g, &a[i * sa..], &b[i * sb..], &mut c[i * sc..], true, None);
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
            run::<K, TA, TB>(g, &a[i * sa..], &b[i * sb..], ci, false, None);
        });
}
