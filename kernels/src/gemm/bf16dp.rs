//! bf16 × bf16 GEMM on `vdpbf16ps` (AVX512-BF16), f32 accumulation.
//!
//! k is taken in pairs: a packed B panel holds, per k pair, NR lanes of (b[p][j], b[p+1][j]) as
//! two bf16 in one 32-bit lane; an A panel holds, per k pair, MR such pairs
//! (a[i][p], a[i][p+1]). One `vdpbf16ps` adds `a[i][p]·b[p][j] + a[i][p+1]·b[p+1][j]` to 16
//! accumulators (bf16 products are exact in f32); a 12×32 tile lives in 24 zmm registers as in
//! the f32 kernel. An odd k is padded with a zero pair on both sides. The instruction flushes
//! subnormal inputs and results to zero, which f32 FMAs would not do.
//!
//! Blocking and threading follow `driver::run` (k blocks in increasing order, C split into
//! whole tiles: one band per thread when each dimension allows, as there), so results are
//! bit-identical for any thread count.

use super::driver::{CPtr, Split, MAX_TILE, PAR_MIN_WORK};
use super::x86_tile::{in_place_k_loop, store_rows};
use super::Gemm;
use half::bf16;
use rayon::prelude::*;
use std::arch::x86_64::*;

const MR: usize = 12;
const NR: usize = 32;
/// k pairs per block (768 k values).
const KP: usize = 192;
/// Rows per task.
const MC: usize = 16 * MR;

/// Whether this CPU can run the `vdpbf16ps` path.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bf16")
}

fn a_at(g: &Gemm, a: &[bf16], i: usize, p: usize) -> u16 {
    if p >= g.k {
        return 0;
    }
    if g.trans_a {
        a[p * g.lda + i].to_bits()
    } else {
        a[i * g.lda + p].to_bits()
    }
}

fn b_at(g: &Gemm, b: &[bf16], p: usize, j: usize) -> u16 {
    if p >= g.k {
        return 0;
    }
    if g.trans_b {
        b[j * g.ldb + p].to_bits()
    } else {
        b[p * g.ldb + j].to_bits()
    }
}

/// Packs B panel columns `j0..j0+NR` for pairs `pp0..pp0+kp`: `dst[(pp·NR + jj)·2 + t]`.
fn pack_b(g: &Gemm, b: &[bf16], dst: &mut [u16], pp0: usize, kp: usize, j0: usize) {
    let nr = NR.min(g.n - j0);
    let dst = &mut dst[..kp * NR * 2];
    // Pairs whose both k indices are < k; a last pair with p + 1 == k takes the slow path.
    let full = kp.min((g.k / 2).saturating_sub(pp0));
    if g.trans_b {
        // op(B)[p][j] = b[j·ldb + p]: the pair is two adjacent elements of row j of b.
        dst[..full * NR * 2].fill(0);
        for jj in 0..nr {
            let row = &b[(j0 + jj) * g.ldb + 2 * pp0..][..2 * full];
            for (pp, two) in row.chunks_exact(2).enumerate() {
                dst[(pp * NR + jj) * 2] = two[0].to_bits();
                dst[(pp * NR + jj) * 2 + 1] = two[1].to_bits();
            }
        }
    } else {
        // op(B)[p][j] = b[p·ldb + j]: rows p and p+1 of b, interleaved.
        for pp in 0..full {
            let p = 2 * (pp0 + pp);
            let r0 = &b[p * g.ldb + j0..][..nr];
            let r1 = &b[(p + 1) * g.ldb + j0..][..nr];
            let d = &mut dst[pp * NR * 2..(pp + 1) * NR * 2];
            for ((x, &lo), &hi) in d.chunks_exact_mut(2).zip(r0).zip(r1) {
                x[0] = lo.to_bits();
                x[1] = hi.to_bits();
            }
            d[2 * nr..].fill(0);
        }
    }
    for pp in full..kp {
        let p = 2 * (pp0 + pp);
        let d = &mut dst[pp * NR * 2..(pp + 1) * NR * 2];
        for jj in 0..nr {
            d[2 * jj] = b_at(g, b, p, j0 + jj);
            d[2 * jj + 1] = b_at(g, b, p + 1, j0 + jj);
        }
        d[2 * nr..].fill(0);
    }
}

/// Packs A panel rows `i0..i0+MR` for pairs `pp0..pp0+kp`: `dst[pp·MR + ii]` = (lo p, hi p+1).
fn pack_a(g: &Gemm, a: &[bf16], dst: &mut [u32], pp0: usize, kp: usize, i0: usize) {
    let mr = MR.min(g.m - i0);
    let dst = &mut dst[..kp * MR];
    // Pairs whose both k indices are < k; a last pair with p + 1 == k takes the slow path.
    let full = kp.min((g.k / 2).saturating_sub(pp0));
    let pair = |lo: bf16, hi: bf16| lo.to_bits() as u32 | (hi.to_bits() as u32) << 16;
    if g.trans_a {
        // op(A)[i][p] = a[p·lda + i]: rows p and p+1 of a give the pair for every i.
        for pp in 0..full {
            let p = 2 * (pp0 + pp);
            let r0 = &a[p * g.lda + i0..][..mr];
            let r1 = &a[(p + 1) * g.lda + i0..][..mr];
            let d = &mut dst[pp * MR..(pp + 1) * MR];
            for ((x, &lo), &hi) in d.iter_mut().zip(r0).zip(r1) {
                *x = pair(lo, hi);
            }
            d[mr..].fill(0);
        }
    } else {
        // op(A)[i][p] = a[i·lda + p]: the pair is two adjacent elements of row i. Walk k
        // outermost so the panel is written contiguously.
        let mut rows: [&[bf16]; MR] = [&[]; MR];
        for (ii, row) in rows[..mr].iter_mut().enumerate() {
            *row = &a[(i0 + ii) * g.lda + 2 * pp0..][..2 * full];
        }
        for (pp, d) in dst[..full * MR].chunks_exact_mut(MR).enumerate() {
            for (x, row) in d[..mr].iter_mut().zip(&rows[..mr]) {
                *x = pair(row[2 * pp], row[2 * pp + 1]);
            }
            d[mr..].fill(0);
        }
    }
    for pp in full..kp {
        let p = 2 * (pp0 + pp);
        let d = &mut dst[pp * MR..(pp + 1) * MR];
        for (ii, x) in d[..mr].iter_mut().enumerate() {
            *x = a_at(g, a, i0 + ii, p) as u32 | (a_at(g, a, i0 + ii, p + 1) as u32) << 16;
        }
        d[mr..].fill(0);
    }
}

/// `C = alpha·op(A)·op(B) + beta·C` for bf16 A and B. Lengths must already be checked and
/// [`available`] must be true.
pub(crate) fn run(g: &Gemm, a: &[bf16], b: &[bf16], c: &mut [f32]) {
    assert!(available(), "gemm bf16: this CPU lacks avx512bf16");
    let (m, n, k) = (g.m, g.n, g.k);
    if m == 0 || n == 0 || k == 0 {
        // No products: the f32 driver's k == 0 handling (C = beta·C) applies.
        for i in 0..m {
            for x in &mut c[i * g.ldc..i * g.ldc + n] {
                *x = if g.beta == 0.0 { 0.0 } else { g.beta * *x };
            }
        }
        return;
    }
    let par = m * n * k >= PAR_MIN_WORK && rayon::current_num_threads() > 1;
    let cptr = CPtr(c.as_mut_ptr());
    let c_len = c.len();
    if par {
        // One band of C per thread, each sequential with its own packed B (see driver::Split).
        if let Some(split) = Split::choose_tiles(g, rayon::current_num_threads(), MR, NR) {
            split.for_each_band(g, a, b, cptr, c_len, |sub, a, b, c, _| {
                blocked(sub, a, b, c, false)
            });
            return;
        }
    }
    blocked(g, a, b, cptr, par);
}

/// The blocked loop nest of [`run`] on C at `cptr` (lengths checked by the caller), m, n, k > 0.
/// `par`: split each k block's row blocks over rayon tasks (shared packed B).
fn blocked(g: &Gemm, a: &[bf16], b: &[bf16], cptr: CPtr, par: bool) {
    let (m, n, k) = (g.m, g.n, g.k);
    let pairs = k.div_ceil(2);
    let np = n.div_ceil(NR);
    let mb = m.div_ceil(MC);
    let threads = if par { rayon::current_num_threads() } else { 1 };
    let want = if par { 4 * threads } else { 1 };
    let nb = if mb >= want {
        1
    } else {
        want.div_ceil(mb).min(np)
    };
    let ppn = np.div_ceil(nb);
    let nb = np.div_ceil(ppn);
    let mut bpack = vec![0u16; np * KP.min(pairs) * NR * 2];

    for (q, pp0) in (0..pairs).step_by(KP).enumerate() {
        let kp = KP.min(pairs - pp0);
        let bblk = &mut bpack[..np * kp * NR * 2];
        let pack = |(jp, panel): (usize, &mut [u16])| pack_b(g, b, panel, pp0, kp, jp * NR);
        if par {
            bblk.par_chunks_mut(kp * NR * 2).enumerate().for_each(pack);
        } else {
            bblk.chunks_mut(kp * NR * 2).enumerate().for_each(pack);
        }
        let bblk: &[u16] = bblk;
        let beta = if q == 0 { g.beta } else { 1.0 };
        let task = |t: usize| {
            let (ib, jb) = (t / nb, t % nb);
            let i0 = ib * MC;
            let mpanels = MC.min(m - i0).div_ceil(MR);
            // A (not transposed) already holds each k pair as one 32-bit lane of its row: full
            // panels read it in place when the block has no half pair; others are packed.
            let a_direct = !g.trans_a && 2 * (pp0 + kp) <= k;
            // Panels from `packed_from` on are packed (all, or only a last partial one).
            let packed_from = if a_direct { (MC.min(m - i0)) / MR } else { 0 };
            let mut apack = vec![0u32; (mpanels - packed_from) * kp * MR];
            for (q, panel) in apack.chunks_mut(kp * MR).enumerate() {
                pack_a(g, a, panel, pp0, kp, i0 + (packed_from + q) * MR);
            }
            for jp in jb * ppn..np.min((jb + 1) * ppn) {
                let bpanel = &bblk[jp * kp * NR * 2..][..kp * NR * 2];
                let j = jp * NR;
                let nr_eff = NR.min(n - j);
                for ip in 0..mpanels {
                    let apanel: &[u32] = match ip.checked_sub(packed_from) {
                        Some(q) => &apack[q * kp * MR..][..kp * MR],
                        None => &[],
                    };
                    let i = i0 + ip * MR;
                    let mr_eff = MR.min(m - i);
                    let off = i * g.ldc + j;
                    if mr_eff == MR && nr_eff == NR && a_direct {
                        let a_off = i * g.lda + 2 * pp0;
                        debug_assert!(a_off + (MR - 1) * g.lda + 2 * kp <= a.len());
                        // SAFETY: rows i..i+MR (< m) and k columns 2·pp0..2·(pp0+kp) (≤ k) of A
                        // lie inside A (checked by Gemm::check); b and C as below.
                        unsafe {
                            tile_in_place(
                                kp,
                                a.as_ptr().add(a_off) as *const u8,
                                2 * g.lda,
                                bpanel.as_ptr(),
                                cptr.ptr().add(off),
                                g.ldc,
                                g.alpha,
                                beta,
                            )
                        };
                    } else if mr_eff == MR && nr_eff == NR {
                        assert_eq!(apanel.len(), kp * MR, "bf16 A panel {ip} not packed");
                        // SAFETY: panels hold kp·MR pairs and kp·NR·2 bf16 (sliced above); rows
                        // i..i+MR, columns j..j+NR lie inside C (checked by Gemm::check) and
                        // belong to this task alone; avx512bf16 was checked by the caller.
                        unsafe {
                            tile(
                                kp,
                                apanel.as_ptr(),
                                bpanel.as_ptr(),
                                cptr.ptr().add(off),
                                g.ldc,
                                g.alpha,
                                beta,
                            )
                        };
                    } else {
                        let mut tmp = [0.0f32; MAX_TILE];
                        for ii in 0..mr_eff {
                            for jj in 0..nr_eff {
                                // SAFETY: (i+ii, j+jj) is inside C, owned by this task.
                                tmp[ii * NR + jj] =
                                    unsafe { *cptr.ptr().add(off + ii * g.ldc + jj) };
                            }
                        }
                        if mr_eff == MR && a_direct {
                            // SAFETY: A as for the in-place tile above; tmp holds MR rows of NR
                            // at stride NR.
                            unsafe {
                                tile_in_place(
                                    kp,
                                    a.as_ptr().add(i * g.lda + 2 * pp0) as *const u8,
                                    2 * g.lda,
                                    bpanel.as_ptr(),
                                    tmp.as_mut_ptr(),
                                    NR,
                                    g.alpha,
                                    beta,
                                )
                            };
                        } else {
                            assert_eq!(apanel.len(), kp * MR, "bf16 A panel {ip} not packed");
                            // SAFETY: panels as above (this panel was packed: it is partial or
                            // A is not read in place); tmp holds MR rows of NR at stride NR.
                            unsafe {
                                tile(
                                    kp,
                                    apanel.as_ptr(),
                                    bpanel.as_ptr(),
                                    tmp.as_mut_ptr(),
                                    NR,
                                    g.alpha,
                                    beta,
                                )
                            };
                        }
                        for ii in 0..mr_eff {
                            for jj in 0..nr_eff {
                                // SAFETY: as for the read above.
                                unsafe {
                                    *cptr.ptr().add(off + ii * g.ldc + jj) = tmp[ii * NR + jj]
                                };
                            }
                        }
                    }
                }
            }
        };
        let tasks = mb * nb;
        if par && tasks > 1 {
            (0..tasks).into_par_iter().with_max_len(1).for_each(task);
        } else {
            (0..tasks).for_each(task);
        }
    }
}

/// One 12×32 tile over `kp` k pairs.
///
/// # Safety
/// `a` readable for kp·MR u32, `b` for kp·NR·2 u16, `c` MR rows of NR f32 at stride ldc;
/// the CPU has AVX512F and AVX512-BF16.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile(
    kp: usize,
    a: *const u32,
    b: *const u16,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    let mut lo = [_mm512_setzero_ps(); MR];
    let mut hi = [_mm512_setzero_ps(); MR];
    let (mut a, mut b) = (a, b);
    for _ in 0..kp {
        // SAFETY: each step reads NR·2 bf16 at b and MR pairs at a, within the caller's bounds.
        unsafe {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b as *const __m512i));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(32) as *const __m512i));
            for i in 0..MR {
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(i) as i32));
                lo[i] = _mm512_dpbf16_ps(lo[i], av, b0);
                hi[i] = _mm512_dpbf16_ps(hi[i], av, b1);
            }
            a = a.add(MR);
            b = b.add(NR * 2);
        }
    }
    // SAFETY: forwarded contract for C.
    unsafe { store(&lo, &hi, c, ldc, alpha, beta) }
}

/// [`tile`] reading A in place: the pair (i, pp) is the 32-bit value at byte `a + i·rsa + 4·pp`
/// (two adjacent bf16 of row i). Same arithmetic in the same order as `tile` on a packed panel.
///
/// # Safety
/// As for `tile`, with 4 readable bytes at `a + i·rsa + 4·pp` for i < MR, pp < kp.
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_in_place(
    kp: usize,
    a: *const u8,
    rsa: usize,
    b: *const u16,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    let mut lo = [_mm512_setzero_ps(); MR];
    let mut hi = [_mm512_setzero_ps(); MR];
    let mut b = b;
    // Pair (i, pp) of row i at a + i·rsa + 4·pp, rows through four bases (as in the f32 kernel).
    macro_rules! row {
        ($i:expr, $ptr:expr, ($b0:ident, $b1:ident)) => {
            let v = ($ptr as *const i32).read_unaligned();
            let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(v));
            lo[$i] = _mm512_dpbf16_ps(lo[$i], av, $b0);
            hi[$i] = _mm512_dpbf16_ps(hi[$i], av, $b1);
        };
    }
    in_place_k_loop! {
        kc: kp, a: a, rsa: rsa, step: 4,
        bases: [g0: 0 1 2, g1: 3 4 5, g2: 6 7 8, g3: 9 10 11],
        each: {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b as *const __m512i));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(32) as *const __m512i));
        },
        row: row(b0, b1),
        then: { b = b.add(NR * 2); }
    }
    // SAFETY: forwarded contract for C.
    unsafe { store(&lo, &hi, c, ldc, alpha, beta) }
}

/// `C[i] = alpha·(lo[i], hi[i]) + beta·C[i]` for the MR rows (beta == 0: C is not read).
///
/// # Safety
/// MR rows of NR writable (and, if beta ≠ 0, readable) f32 at `c`, stride ldc; AVX512F.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store(
    lo: &[__m512; MR],
    hi: &[__m512; MR],
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    store_rows! {
        rows: MR, lo: lo, hi: hi, c: c, ldc: ldc, alpha: alpha, beta: beta, lanes: 16,
        set1: _mm512_set1_ps, load: _mm512_loadu_ps, store: _mm512_storeu_ps,
        mul: _mm512_mul_ps, fmadd: _mm512_fmadd_ps
    }
}
