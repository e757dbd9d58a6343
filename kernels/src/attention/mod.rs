//! Fused multi-head attention (flash-attention style), forward and backward.
//!
//! # Semantics
//! `q: [B, H, Tq, d]`, `k, v: [B, H, Tk, d]`, `out: [B, H, Tq, d]`, all contiguous row-major.
//! For batch `b`, head `h`, query `i`, key `j`:
//!
//! * `s[i, j] = scale · (q_i · k_j) + mask[b, j]` (the optional additive key-padding mask has
//!   shape `[B, Tk]`; it may hold `-inf`);
//! * if `causal`, key `j` is excluded from query `i` when `j > i + (Tk − Tq)` (bottom-right
//!   aligned; with `Tq == Tk` this is the usual `j > i`); an excluded key has weight exactly 0;
//! * `P = softmax_j(s)`; the per-row log-sum-exp `lse[b, h, i] = ln Σ_j exp(s[i, j])` is saved for
//!   the backward pass;
//! * dropout with probability `p`: `Pd[i, j] = P[i, j] · keep(b, h, i, j) / (1 − p)`, where the
//!   keep mask is [`dropout_keep`]`(seed, ((b·H + h)·Tq + i)·Tk + j, p)`, a counter-based hash
//!   (no mask is stored; the backward pass regenerates it);
//! * `out_i = Σ_j Pd[i, j] · v_j`.
//!
//! A row whose every key is excluded (all `-inf` mask, or causal with `i + Tk − Tq < 0`) gets
//! `out = 0`, `lse = -inf` and zero gradients. A row masked with `-10000` everywhere gets uniform
//! weights, exactly as a plain softmax gives. A NaN score makes its row's `out` and `lse` NaN,
//! as PyTorch does (it is never taken for a row without visible keys).
//!
//! The backward pass, given `dout`, recomputes `P` tile by tile from `q`, `k` and `lse`:
//! `dv = Pdᵀ·dout`, `dP = (dout·vᵀ) ⊙ keep / (1 − p)`, `D_i = Σ_c dout[i, c]·out[i, c]`,
//! `dS = P ⊙ (dP − D)`, `dq = scale · dS·k`, `dk = scale · dSᵀ·q`.
//!
//! # Memory and tiling
//! No `Tq × Tk` matrix is ever held. The forward pass transposes each head's keys once (`d × Tk`,
//! shared by that head's query blocks), splits the queries into blocks of [`BLOCK_Q`] rows (one
//! rayon task each) and walks the keys in tiles of [`BLOCK_K`] with an online softmax (running
//! max and sum); per task it holds one `BLOCK_Q × BLOCK_K` score tile and six row vectors
//! (running max and sum; the tile's maxima, shifts, rescale factors and sums).
//!
//! The backward pass runs one rayon task per `(b, h)`, so `dk` and `dv` need no cross-task
//! reduction: the outer loop walks key tiles (accumulating that tile's `dk`, `dv` in place), the
//! inner loop walks query blocks, recomputing scores and probabilities and adding into `dq`. Per
//! task it holds two transposed `d × BLOCK_K` tiles (`k`, `v`), two `BLOCK_Q × BLOCK_K` tiles
//! (`P`/`Pd` and `dP`/`dS`) and the `D` vector (`Tq`). See [`scratch_floats`].
//!
//! Every product inside a tile is a register-blocked micro-kernel `C (+)= A·B` over the tile
//! (4 rows × 64 columns of FMAs on AVX-512), with the softmax, dropout and `dS` steps as
//! vectorised row passes between them (see [`vector`]).
//!
//! # Determinism
//! Every output element is written by exactly one task, which accumulates in a fixed order, so
//! results do not depend on the number of threads.
//!
//! # Paths
//! `Isa::Scalar` runs the same tiled algorithm with plain loops (its reference for the tiling is
//! [`reference`](mod@reference), which materialises the full matrices in f64). `Avx512`, `Avx2`,
//! `Portable` (`wide`) and `Neon` replace the inner loops with one implementation over the
//! shared [`Simd`](crate::simd::Simd) layer ([`vector`]), instantiated per instruction set inside
//! one `#[target_feature]` entry per task by [`crate::simd::dispatch`].

// Register-blocked micro-kernels index `acc[r][v]` by row and vector on purpose.
#![allow(clippy::needless_range_loop)]

pub mod reference;
mod vector;

use crate::dispatch::{active, Isa};
use crate::simd::{dispatch, Kernel, Simd};
use rayon::prelude::*;
use vector::Vector;

/// Query rows per forward task / backward inner block.
pub const BLOCK_Q: usize = 64;
/// Keys per tile.
pub const BLOCK_K: usize = 64;

/// Sizes of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape {
    pub batch: usize,
    pub heads: usize,
    /// Query length.
    pub tq: usize,
    /// Key/value length.
    pub tk: usize,
    /// Head dimension.
    pub d: usize,
}

impl AttnShape {
    /// `q`/`out`/`dq`/`dout` elements.
    pub fn q_len(&self) -> usize {
        self.batch * self.heads * self.tq * self.d
    }
    /// `k`/`v`/`dk`/`dv` elements.
    pub fn kv_len(&self) -> usize {
        self.batch * self.heads * self.tk * self.d
    }
    /// `lse` elements.
    pub fn lse_len(&self) -> usize {
        self.batch * self.heads * self.tq
    }
    /// Mask elements (`[B, Tk]`).
    pub fn mask_len(&self) -> usize {
        self.batch * self.tk
    }
}

/// Scalars of one attention call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnParams {
    /// Multiplies `q·k` (usually `1/sqrt(d)`).
    pub scale: f32,
    /// Exclude keys `j > i + (Tk − Tq)`.
    pub causal: bool,
    /// Dropout probability on the attention weights, in `[0, 1)`.
    pub dropout: f32,
    /// Seed of the dropout mask.
    pub seed: u64,
}

impl AttnParams {
    /// `scale = 1/sqrt(d)`, not causal, no dropout.
    pub fn new(d: usize) -> AttnParams {
        AttnParams {
            scale: 1.0 / (d as f32).sqrt(),
            causal: false,
            dropout: 0.0,
            seed: 0,
        }
    }
}

/// Extra floats the fused path allocates for one call (all tasks of `threads` workers alive at
/// once), excluding its inputs and outputs but including `lse`: `(forward, backward)`.
/// Compare with the unfused path, which holds at least `B·H·Tq·Tk` probabilities (plus as many
/// scores/gradients in the backward pass).
pub fn scratch_floats(shape: &AttnShape, threads: usize) -> (usize, usize) {
    let d = shape.d;
    // kᵀ and the score tile (each padded for alignment, see `aligned_zeros`) and six row vectors
    let fwd_task = d * shape.tk + BLOCK_Q * BLOCK_K + 2 * ALIGN_PAD + 6 * BLOCK_Q;
    // kᵀ, vᵀ, P and dP tiles (padded) and D
    let bwd_task = 2 * d * BLOCK_K + 2 * BLOCK_Q * BLOCK_K + 4 * ALIGN_PAD + shape.tq;
    (
        shape.lse_len() + threads * fwd_task,
        shape.lse_len() + threads * bwd_task,
    )
}

// ---------------------------------------------------------------------------------------------
// Dropout mask: a counter-based hash of (seed, flat index).

/// splitmix64 finaliser.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Precomputed dropout constants of one call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Drop {
    pub k0: u32,
    pub k1: u32,
    /// Keep iff `hash >= thr`.
    pub thr: u32,
    /// `1 / (1 − p)`.
    pub inv: f32,
}

impl Drop {
    pub fn new(seed: u64, p: f32) -> Drop {
        let s = splitmix64(seed);
        Drop {
            k0: s as u32,
            k1: (s >> 32) as u32,
            thr: threshold(p),
            inv: 1.0 / (1.0 - p),
        }
    }

    /// The hash of a flat index; `lo`, `hi` are its two 32-bit halves.
    #[inline(always)]
    pub fn hash(&self, lo: u32, hi: u32) -> u32 {
        crate::simd::dropout_hash(lo, self.k0, hi ^ self.k1)
    }

    #[inline(always)]
    pub fn keep(&self, flat: u64) -> bool {
        self.hash(flat as u32, (flat >> 32) as u32) >= self.thr
    }
}

fn threshold(p: f32) -> u32 {
    assert!(
        (0.0..1.0).contains(&p),
        "attention: dropout probability {p} is not in [0, 1)"
    );
    ((p as f64) * 4294967296.0).round().min(u32::MAX as f64) as u32
}

/// Whether dropout keeps the attention weight with flat index
/// `((b·H + h)·Tq + i)·Tk + j` for `seed` and drop probability `p` (in `[0, 1)`).
///
/// The fused kernel, its reference and the engine's unfused op all use this one function, so
/// they drop the same weights. `p == 0` keeps everything.
///
/// # Panics
/// If `p` is not in `[0, 1)`.
pub fn dropout_keep(seed: u64, flat_index: u64, p: f32) -> bool {
    Drop::new(seed, p).keep(flat_index)
}

/// [`dropout_keep`] for many indices of one `(seed, p)`: the seed is mixed once.
#[derive(Clone, Copy, Debug)]
pub struct DropoutMask(Drop);

impl DropoutMask {
    /// # Panics
    /// If `p` is not in `[0, 1)`.
    pub fn new(seed: u64, p: f32) -> DropoutMask {
        DropoutMask(Drop::new(seed, p))
    }

    /// Whether element `flat_index` is kept; equals `dropout_keep(seed, flat_index, p)`.
    #[inline]
    pub fn keep(&self, flat_index: u64) -> bool {
        self.0.keep(flat_index)
    }
}

// ---------------------------------------------------------------------------------------------
// Checks.

fn check_common(
    shape: &AttnShape,
    params: &AttnParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
) {
    let s = shape;
    assert!(
        s.batch > 0 && s.heads > 0 && s.tq > 0 && s.tk > 0 && s.d > 0,
        "attention: every dimension must be positive, got {s:?}"
    );
    assert!(
        params.scale.is_finite(),
        "attention: scale {} is not finite",
        params.scale
    );
    threshold(params.dropout);
    assert_eq!(
        q.len(),
        s.q_len(),
        "attention: q has {} elements, shape {s:?} needs B·H·Tq·d = {}",
        q.len(),
        s.q_len()
    );
    assert_eq!(
        k.len(),
        s.kv_len(),
        "attention: k has {} elements, shape {s:?} needs B·H·Tk·d = {}",
        k.len(),
        s.kv_len()
    );
    assert_eq!(
        v.len(),
        s.kv_len(),
        "attention: v has {} elements, shape {s:?} needs B·H·Tk·d = {}",
        v.len(),
        s.kv_len()
    );
    if let Some(m) = mask {
        assert_eq!(
            m.len(),
            s.mask_len(),
            "attention: mask has {} elements, shape {s:?} needs B·Tk = {}",
            m.len(),
            s.mask_len()
        );
    }
}

fn check_len(name: &str, got: usize, want: usize, what: &str, shape: &AttnShape) {
    assert_eq!(
        got, want,
        "attention: {name} has {got} elements, shape {shape:?} needs {what} = {want}"
    );
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn check_forward(
    shape: &AttnShape,
    params: &AttnParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    out: &[f32],
    lse: &[f32],
) {
    check_common(shape, params, q, k, v, mask);
    check_len("out", out.len(), shape.q_len(), "B·H·Tq·d", shape);
    check_len("lse", lse.len(), shape.lse_len(), "B·H·Tq", shape);
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn check_backward(
    shape: &AttnShape,
    params: &AttnParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    dq: &[f32],
    dk: &[f32],
    dv: &[f32],
) {
    check_forward(shape, params, q, k, v, mask, out, lse);
    check_len("dout", dout.len(), shape.q_len(), "B·H·Tq·d", shape);
    check_len("dq", dq.len(), shape.q_len(), "B·H·Tq·d", shape);
    check_len("dk", dk.len(), shape.kv_len(), "B·H·Tk·d", shape);
    check_len("dv", dv.len(), shape.kv_len(), "B·H·Tk·d", shape);
}

fn check_isa(isa: Isa) {
    assert!(
        isa.is_supported(),
        "attention: kernel path {isa} is not supported on this CPU"
    );
}

// ---------------------------------------------------------------------------------------------
// Public entry points.

/// Fused forward on the active path: writes `out` (`[B,H,Tq,d]`) and `lse` (`[B,H,Tq]`).
///
/// # Panics
/// On a length that does not match `shape` (the message names the slice), a zero dimension, a
/// non-finite scale or a dropout probability outside `[0, 1)`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    shape: AttnShape,
    params: AttnParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    out: &mut [f32],
    lse: &mut [f32],
) {
    forward_with(active(), shape, params, q, k, v, mask, out, lse)
}

/// [`forward`] on a chosen path.
///
/// # Panics
/// As [`forward`], and if this CPU cannot run `isa`.
#[allow(clippy::too_many_arguments)]
pub fn forward_with(
    isa: Isa,
    shape: AttnShape,
    params: AttnParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    out: &mut [f32],
    lse: &mut [f32],
) {
    check_forward(&shape, &params, q, k, v, mask, out, lse);
    check_isa(isa);
    let args = Fwd {
        shape,
        params,
        q,
        k,
        v,
        mask,
    };
    run_forward(isa, &args, out, lse)
}

/// Fused backward on the active path: writes `dq`, `dk`, `dv` (overwritten) from the forward's
/// inputs, its `out` and `lse`, and `dout`.
///
/// # Panics
/// As [`forward`], naming whichever of the twelve slices has the wrong length.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    shape: AttnShape,
    params: AttnParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    backward_with(
        active(),
        shape,
        params,
        q,
        k,
        v,
        mask,
        out,
        lse,
        dout,
        dq,
        dk,
        dv,
    )
}

/// [`backward`] on a chosen path.
#[allow(clippy::too_many_arguments)]
pub fn backward_with(
    isa: Isa,
    shape: AttnShape,
    params: AttnParams,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    check_backward(&shape, &params, q, k, v, mask, out, lse, dout, dq, dk, dv);
    check_isa(isa);
    let args = Bwd {
        f: Fwd {
            shape,
            params,
            q,
            k,
            v,
            mask,
        },
        out,
        lse,
        dout,
    };
    run_backward(isa, &args, dq, dk, dv)
}

// ---------------------------------------------------------------------------------------------
// The inner loops: plain ones here (`Scalar`), vector ones in `vector`.

/// Whether a product overwrites `C` or adds to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acc {
    Set,
    Add,
}

/// The inner loops each path provides. Slice lengths are the callers' responsibility only for
/// correctness of results: the vector implementation checks the bounds it relies on.
pub(crate) trait Prims: Sync {
    /// `C[m×n] += A·B` ([`Acc::Add`]) or `C[m×n] = A·B` ([`Acc::Set`], C's old contents
    /// ignored) with `A(i, p) = a[i·a_rs + p·a_cs]`, `B(p, j) = b[p·ldb + j]`,
    /// `C(i, j) = c[i·ldc + j]`; accumulation along `p` in increasing order.
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &self,
        acc: Acc,
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
    );

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
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    ldb: usize,
    c: &[f32],
    ldc: usize,
) -> bool {
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
    fn matmul(
        &self,
        acc: Acc,
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
// The tiled algorithm, shared by every path.

struct Fwd<'a> {
    shape: AttnShape,
    params: AttnParams,
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    mask: Option<&'a [f32]>,
}

struct Bwd<'a> {
    f: Fwd<'a>,
    out: &'a [f32],
    lse: &'a [f32],
    dout: &'a [f32],
}

/// Keys of a tile starting at `j0` (width `bc`) that query `i` may see: a prefix of the tile.
#[inline]
fn valid_keys(causal: bool, tq: usize, tk: usize, i: usize, j0: usize, bc: usize) -> usize {
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
fn aligned_zeros(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    *buf = vec![0.0f32; len + ALIGN_PAD];
    let off = buf.as_ptr().align_offset(64).min(ALIGN_PAD);
    &mut buf[off..off + len]
}

/// Floats [`aligned_zeros`] may skip to reach a 64-byte boundary.
const ALIGN_PAD: usize = 64 / std::mem::size_of::<f32>() - 1;

/// Transposes rows `[j0, j0+bc)` of a `[T, d]` matrix into `dst[d × bc]`.
///
/// Walks blocks of 16 source rows so that each destination row segment written is one cache line
/// and the 16 source rows stay in L1 (a plain row-by-row scatter with a power-of-two `bc` thrashes
/// a few cache sets).
fn transpose_tile(src: &[f32], d: usize, j0: usize, bc: usize, dst: &mut [f32]) {
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

/// One forward task: query rows `[i0, i0 + lse_out.len())` of head `bh` (see [`forward_block`]).
struct FwdTask<'a, 'b> {
    a: &'b Fwd<'a>,
    kth: &'b [f32],
    bh: usize,
    i0: usize,
    acc: &'b mut [f32],
    lse_out: &'b mut [f32],
}

impl FwdTask<'_, '_> {
    #[inline(always)]
    fn run_on<P: Prims>(self, p: &P) {
        let b = self.bh / self.a.shape.heads;
        forward_block(
            p,
            self.a,
            self.kth,
            self.bh,
            b,
            self.i0,
            self.acc,
            self.lse_out,
        )
    }
}

impl Kernel for FwdTask<'_, '_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        // SAFETY: `run`'s contract: we are inside `dispatch`'s `#[target_feature]` entry for `S`
        // on a CPU that has its features.
        self.run_on(&unsafe { Vector::<S>::new() })
    }
}

/// Runs a task on `isa`: the vector paths through [`dispatch`] (one `#[target_feature]` entry
/// per task), the scalar path directly.
fn run_task<K: Kernel<Out = ()>>(isa: Isa, task: K, scalar: impl FnOnce(K)) {
    if let Err(task) = dispatch(isa, task) {
        scalar(task)
    }
}

fn run_forward(isa: Isa, a: &Fwd<'_>, out: &mut [f32], lse: &mut [f32]) {
    let AttnShape { tq, tk, d, .. } = a.shape;
    out.par_chunks_mut(tq * d)
        .zip(lse.par_chunks_mut(tq))
        .enumerate()
        .for_each(|(bh, (o, l))| {
            // kᵀ of this head, d × Tk, shared by its query blocks
            let mut kth_buf = Vec::new();
            let kth = aligned_zeros(&mut kth_buf, d * tk);
            transpose_tile(&a.k[bh * tk * d..(bh + 1) * tk * d], d, 0, tk, kth);
            let kth = &*kth;
            o.par_chunks_mut(BLOCK_Q * d)
                .zip(l.par_chunks_mut(BLOCK_Q))
                .enumerate()
                .for_each(|(blk, (acc, lse_out))| {
                    let task = FwdTask {
                        a,
                        kth,
                        bh,
                        i0: blk * BLOCK_Q,
                        acc,
                        lse_out,
                    };
                    run_task(isa, task, |t| t.run_on(&Scalar))
                })
        });
}

/// One block of query rows `[i0, i0 + lb.len())` of head `bh`; `kth` is the head's kᵀ.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_block<P: Prims>(
    p: &P,
    a: &Fwd<'_>,
    kth: &[f32],
    bh: usize,
    b: usize,
    i0: usize,
    acc: &mut [f32],
    lse_out: &mut [f32],
) {
    let AttnShape { tq, tk, d, .. } = a.shape;
    let AttnParams {
        scale,
        causal,
        dropout,
        seed,
    } = a.params;
    let br = lse_out.len();
    let qb = &a.q[(bh * tq + i0) * d..(bh * tq + i0 + br) * d];
    let vh = &a.v[bh * tk * d..(bh + 1) * tk * d];
    let maskb = a.mask.map(|m| &m[b * tk..(b + 1) * tk]);
    let drop = (dropout > 0.0).then(|| Drop::new(seed, dropout));

    let mut s_buf = Vec::new();
    let s = aligned_zeros(&mut s_buf, br * BLOCK_K);
    let mut mrow = vec![f32::NEG_INFINITY; br];
    let mut lrow = vec![0.0f32; br];
    let mut tmax = vec![0.0f32; br];
    let mut meff = vec![0.0f32; br];
    let mut alpha = vec![0.0f32; br];
    let mut sums = vec![0.0f32; br];
    acc.fill(0.0);

    let last_i = i0 + br - 1;
    let mut j0 = 0;
    while j0 < tk {
        let bc = BLOCK_K.min(tk - j0);
        if valid_keys(causal, tq, tk, last_i, j0, bc) == 0 {
            break; // this and every later tile is hidden from every row of the block
        }
        let st = &mut s[..br * bc];
        p.matmul(Acc::Set, br, bc, d, qb, d, 1, &kth[j0..], tk, st, bc);
        let mt = maskb.map(|m| &m[j0..j0 + bc]);
        let valid = Valid::new(causal, tq, tk, i0, j0);
        p.scale_mask_max_tile(st, bc, scale, mt, valid, &mut tmax);
        for r in 0..br {
            let m_new = mrow[r].max(tmax[r]);
            if m_new == f32::NEG_INFINITY {
                // nothing visible yet: the row is all −inf and exp(−inf − 0) = 0
                meff[r] = 0.0;
                alpha[r] = 1.0;
            } else {
                meff[r] = m_new;
                alpha[r] = (mrow[r] - m_new).exp();
            }
        }
        let rd = drop.as_ref().map(|dr| RowDrop {
            drop: dr,
            flat0: ((bh * tq + i0) * tk + j0) as u64,
            stride: tk as u64,
        });
        p.exp_tile(st, bc, &meff, &mut sums, rd);
        for r in 0..br {
            if alpha[r] != 1.0 {
                p.scale_row(&mut acc[r * d..(r + 1) * d], alpha[r]);
            }
            lrow[r] = lrow[r] * alpha[r] + sums[r];
            mrow[r] = mrow[r].max(tmax[r]);
        }
        p.matmul(
            Acc::Add,
            br,
            d,
            bc,
            st,
            bc,
            1,
            &vh[j0 * d..(j0 + bc) * d],
            d,
            acc,
            d,
        );
        j0 += bc;
    }
    for r in 0..br {
        let row = &mut acc[r * d..(r + 1) * d];
        if lrow[r] > 0.0 {
            p.scale_row(row, 1.0 / lrow[r]);
            lse_out[r] = mrow[r] + lrow[r].ln();
        } else if lrow[r].is_nan() {
            // A NaN score reaches the row sum through exp (every path's exp propagates NaN),
            // even where the running maximum skipped it: the row is NaN, as in PyTorch, not
            // a row with no visible key.
            row.fill(f32::NAN);
            lse_out[r] = f32::NAN;
        } else {
            row.fill(0.0);
            lse_out[r] = f32::NEG_INFINITY;
        }
    }
}

/// One backward task: head `bh` (see [`backward_head`]).
struct BwdTask<'a, 'b> {
    a: &'b Bwd<'a>,
    bh: usize,
    dqh: &'b mut [f32],
    dkh: &'b mut [f32],
    dvh: &'b mut [f32],
}

impl BwdTask<'_, '_> {
    #[inline(always)]
    fn run_on<P: Prims>(self, p: &P) {
        let b = self.bh / self.a.f.shape.heads;
        backward_head(p, self.a, self.bh, b, self.dqh, self.dkh, self.dvh)
    }
}

impl Kernel for BwdTask<'_, '_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        // SAFETY: `run`'s contract: we are inside `dispatch`'s `#[target_feature]` entry for `S`
        // on a CPU that has its features.
        self.run_on(&unsafe { Vector::<S>::new() })
    }
}

fn run_backward(isa: Isa, a: &Bwd<'_>, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
    let AttnShape { tq, tk, d, .. } = a.f.shape;
    dq.par_chunks_mut(tq * d)
        .zip(dk.par_chunks_mut(tk * d))
        .zip(dv.par_chunks_mut(tk * d))
        .enumerate()
        .for_each(|(bh, ((dqh, dkh), dvh))| {
            let task = BwdTask {
                a,
                bh,
                dqh,
                dkh,
                dvh,
            };
            run_task(isa, task, |t| t.run_on(&Scalar))
        });
}

#[inline(always)]
fn backward_head<P: Prims>(
    p: &P,
    a: &Bwd<'_>,
    bh: usize,
    b: usize,
    dqh: &mut [f32],
    dkh: &mut [f32],
    dvh: &mut [f32],
) {
    let AttnShape { tq, tk, d, .. } = a.f.shape;
    let AttnParams {
        scale,
        causal,
        dropout,
        seed,
    } = a.f.params;
    let qh = &a.f.q[bh * tq * d..(bh + 1) * tq * d];
    let oh = &a.out[bh * tq * d..(bh + 1) * tq * d];
    let doh = &a.dout[bh * tq * d..(bh + 1) * tq * d];
    let lseh = &a.lse[bh * tq..(bh + 1) * tq];
    let kh = &a.f.k[bh * tk * d..(bh + 1) * tk * d];
    let vh = &a.f.v[bh * tk * d..(bh + 1) * tk * d];
    let maskb = a.f.mask.map(|m| &m[b * tk..(b + 1) * tk]);
    let drop = (dropout > 0.0).then(|| Drop::new(seed, dropout));

    // D_i = dout_i · out_i (a plain loop: a closure would not inline the vector dot)
    let mut dsum = vec![0.0f32; tq];
    for (i, ds) in dsum.iter_mut().enumerate() {
        *ds = p.dot(&doh[i * d..(i + 1) * d], &oh[i * d..(i + 1) * d]);
    }
    let mut bufs: [Vec<f32>; 4] = Default::default();
    let [kt, vt, s, dp] = &mut bufs;
    let kt = aligned_zeros(kt, d * BLOCK_K);
    let vt = aligned_zeros(vt, d * BLOCK_K);
    let s = aligned_zeros(s, BLOCK_Q * BLOCK_K);
    let dp = aligned_zeros(dp, BLOCK_Q * BLOCK_K);
    dqh.fill(0.0);
    dkh.fill(0.0);
    dvh.fill(0.0);

    let mut j0 = 0;
    while j0 < tk {
        let bc = BLOCK_K.min(tk - j0);
        transpose_tile(kh, d, j0, bc, kt);
        transpose_tile(vh, d, j0, bc, vt);
        let ktile = &kh[j0 * d..(j0 + bc) * d];
        let dkt = &mut dkh[j0 * d..(j0 + bc) * d];
        let dvt = &mut dvh[j0 * d..(j0 + bc) * d];
        let mt = maskb.map(|m| &m[j0..j0 + bc]);
        let mut i0 = 0;
        while i0 < tq {
            let br = BLOCK_Q.min(tq - i0);
            if valid_keys(causal, tq, tk, i0 + br - 1, j0, bc) == 0 {
                i0 += br;
                continue;
            }
            let qb = &qh[i0 * d..(i0 + br) * d];
            let dob = &doh[i0 * d..(i0 + br) * d];
            let st = &mut s[..br * bc];
            let dpt = &mut dp[..br * bc];
            p.matmul(Acc::Set, br, bc, d, qb, d, 1, &kt[..d * bc], bc, st, bc);
            p.matmul(Acc::Set, br, bc, d, dob, d, 1, &vt[..d * bc], bc, dpt, bc);
            let valid = Valid::new(causal, tq, tk, i0, j0);
            p.probs_tile(st, bc, scale, mt, &lseh[i0..i0 + br], valid);
            // dP ← dP ⊙ keep/(1−p) ; dS = P ⊙ (dP − D) ; P ← Pd
            let rd = drop.as_ref().map(|dr| RowDrop {
                drop: dr,
                flat0: ((bh * tq + i0) * tk + j0) as u64,
                stride: tk as u64,
            });
            p.grads_tile(st, dpt, bc, &dsum[i0..i0 + br], rd);
            // dv += Pdᵀ·dout
            p.matmul(Acc::Add, bc, d, br, st, 1, bc, dob, d, dvt, d);
            // dq += dS·k ; dk += dSᵀ·q   (scaled once at the end)
            p.matmul(
                Acc::Add,
                br,
                d,
                bc,
                dpt,
                bc,
                1,
                ktile,
                d,
                &mut dqh[i0 * d..(i0 + br) * d],
                d,
            );
            p.matmul(Acc::Add, bc, d, br, dpt, 1, bc, qb, d, dkt, d);
            i0 += br;
        }
        p.scale_row(dkt, scale);
        j0 += bc;
    }
    p.scale_row(dqh, scale);
}

#[cfg(test)]
mod tests {
    //! Tight checks of each path's inner loops against plain f64 loops (the end-to-end tests in
    //! `kernels/tests/attention.rs` use a normwise tolerance for whole attention calls).
    use super::*;

    /// Runs `f` on every path this CPU supports: the vector ones with a `Vector` token made
    /// inside `dispatch` (called through `dyn`, so slow but the same arithmetic).
    fn each_path(mut f: impl FnMut(Isa, &dyn Prims)) {
        struct WithPrims<'f>(&'f mut dyn FnMut(&dyn Prims));
        impl Kernel for WithPrims<'_> {
            type Out = ();
            unsafe fn run<S: Simd>(self) {
                // SAFETY: `run`'s contract: the CPU has `S`'s features.
                (self.0)(&unsafe { Vector::<S>::new() })
            }
        }
        f(Isa::Scalar, &Scalar);
        for isa in crate::dispatch::supported() {
            if isa != Isa::Scalar {
                let mut g = |p: &dyn Prims| f(isa, p);
                assert!(dispatch(isa, WithPrims(&mut g)).is_ok());
            }
        }
    }

    fn data(n: usize, seed: u64) -> Vec<f32> {
        (0..n)
            .map(|i| (splitmix64(seed ^ i as u64) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
            .collect()
    }

    #[test]
    fn vector_exp_is_within_a_few_ulp() {
        // Inputs from −87 to 0 (what the kernels feed it) plus −inf; the vector exp is a
        // degree-6 polynomial after exact-ish range reduction: ≤ 2 ulp of the f32 result, +1 for
        // the rounding of x itself to f32 before the f64 exp it is compared with (|x| ≤ 87 would
        // make that 87·u relative, so inputs are f32 values and the f64 exp uses them exactly).
        let mut xs: Vec<f32> = (0..4001).map(|i| -87.0 * i as f32 / 4000.0).collect();
        xs.push(f32::NEG_INFINITY);
        xs.push(-100.0);
        each_path(|isa, p| {
            let mut row = xs.clone();
            let sum = p.exp_sum(&mut row, 0.0);
            let mut want_sum = 0.0f64;
            for (&x, &y) in xs.iter().zip(&row) {
                let want = (x as f64).exp();
                want_sum += want;
                if x < -87.3 {
                    assert!(y.abs() < 1.2e-38, "{isa}: exp({x}) = {y}");
                    continue;
                }
                let rel = ((y as f64) - want).abs() / want;
                assert!(
                    rel <= 3.0 * f32::EPSILON as f64,
                    "{isa}: exp({x}) = {y}, want {want}"
                );
            }
            // sum of n = 4003 terms in f32: ≤ n·u relative
            let tol = 4003.0 * f32::EPSILON as f64 * want_sum;
            assert!(
                ((sum as f64) - want_sum).abs() <= tol,
                "{isa}: sum {sum} vs {want_sum}"
            );
        });
    }

    #[test]
    fn matmul_matches_f64_on_ragged_sizes() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 17, 5),
            (64, 64, 64),
            (7, 33, 64),
            (65, 31, 3),
            (4, 80, 9),
        ] {
            for trans in [false, true] {
                let (a_rs, a_cs) = if trans { (1, m) } else { (k, 1) };
                let a = data(m * k, 1);
                let b = data(k * (n + 2), 2);
                let c0 = data(m * (n + 3), 3);
                let ldb = n + 2;
                let ldc = n + 3;
                for acc in [Acc::Add, Acc::Set] {
                    each_path(|isa, p| {
                        let mut c = c0.clone();
                        p.matmul(acc, m, n, k, &a, a_rs, a_cs, &b, ldb, &mut c, ldc);
                        for i in 0..m {
                            for j in 0..ldc {
                                let got = c[i * ldc + j] as f64;
                                if j >= n {
                                    assert_eq!(got, c0[i * ldc + j] as f64, "{isa}: wrote past n");
                                    continue;
                                }
                                let mut want = match acc {
                                    Acc::Add => c0[i * ldc + j] as f64,
                                    Acc::Set => 0.0,
                                };
                                let mut mag = want.abs();
                                for q in 0..k {
                                    let t = a[i * a_rs + q * a_cs] as f64 * b[q * ldb + j] as f64;
                                    want += t;
                                    mag += t.abs();
                                }
                                // k+1 roundings of a sum of magnitude ≤ mag
                                let tol = (k as f64 + 1.0) * f32::EPSILON as f64 / 2.0 * mag;
                                assert!(
                                    (got - want).abs() <= tol,
                                    "{isa} {acc:?} {m}x{n}x{k}: {got} vs {want}"
                                );
                            }
                        }
                    });
                }
            }
        }
    }

    #[test]
    fn row_ops_match_scalar() {
        let drop = Drop::new(17, 0.3);
        for n in [1usize, 7, 16, 17, 40, 64] {
            let x = data(n, 9);
            let mask = data(n, 10);
            for valid in [0, n / 2, n] {
                each_path(|isa, p| {
                    let mut a = x.clone();
                    let mut b = x.clone();
                    let ma = p.scale_mask_max(&mut a, 0.3, Some(&mask), valid);
                    let mb = scale_mask_max_scalar(&mut b, 0.3, Some(&mask), valid);
                    // the scalar loop fuses the multiply-add; `wide` without FMA rounds the
                    // product first: one extra rounding of |0.3·x| ≤ 0.3, which can move the
                    // rounded sum z by one more ulp: ≤ u·0.3 + 2u·|z|
                    let u = f32::EPSILON / 2.0;
                    let close =
                        |y: f32, z: f32| y == z || (y - z).abs() <= u * (0.3 + 2.0 * z.abs());
                    assert!(close(ma, mb), "{isa} max {ma} vs {mb}");
                    for (j, (&y, &z)) in a.iter().zip(&b).enumerate() {
                        assert!(close(y, z), "{isa} scale_mask at {j}: {y} vs {z}");
                    }
                    let mut a = x.clone();
                    let mut b = x.clone();
                    p.probs(&mut a, 0.3, Some(&mask), 0.5, valid);
                    probs_scalar(&mut b, 0.3, Some(&mask), 0.5, valid);
                    for (y, z) in a.iter().zip(&b) {
                        assert!((y - z).abs() <= 3.0 * f32::EPSILON * z.abs(), "{isa} probs");
                    }
                });
            }
            // dropout: exactly the scalar mask, for low halves near 2^32 too
            for flat0 in [0u64, 12345, (1 << 32) - 5, (3 << 32) + 77] {
                each_path(|isa, p| {
                    let mut a = x.clone();
                    let mut b = x.clone();
                    p.dropout(&mut a, &drop, flat0);
                    dropout_scalar(&mut b, &drop, flat0);
                    assert_eq!(a, b, "{isa} dropout at {flat0}");
                    // fused exp + dropout: the same zeros, values within the exp tolerance
                    let mut a = x.clone();
                    let mut b = x.clone();
                    let sa = p.exp_sum_dropout(&mut a, 0.5, &drop, flat0);
                    let sb = Scalar.exp_sum(&mut b, 0.5);
                    dropout_scalar(&mut b, &drop, flat0);
                    let tol = 3.0 * f32::EPSILON;
                    assert!(
                        (sa - sb).abs() <= tol * n as f32 * sb,
                        "{isa} sum {sa} vs {sb}"
                    );
                    for (y, z) in a.iter().zip(&b) {
                        assert!(
                            (y - z).abs() <= tol * z.abs(),
                            "{isa} exp dropout {y} vs {z}"
                        );
                        assert_eq!(*y == 0.0, *z == 0.0, "{isa} exp dropout mask");
                    }
                    for dr in [None, Some((&drop, flat0))] {
                        let (mut pa, mut pb) = (x.clone(), x.clone());
                        let (mut ga, mut gb) = (mask.clone(), mask.clone());
                        p.grads_row(&mut pa, &mut ga, 0.25, dr);
                        grads_row_scalar(&mut pb, &mut gb, 0.25, dr);
                        assert_eq!(pa, pb, "{isa} grads_row Pd at {flat0}");
                        // dS = P·(g·inv − D): a fused multiply-add may skip the rounding of
                        // g·inv (≤ u·|g·inv| ≤ 1.5u, times |P| ≤ 1), plus one ulp of dS
                        for (y, z) in ga.iter().zip(&gb) {
                            let tol = f32::EPSILON * (1.0 + z.abs());
                            assert!((y - z).abs() <= tol, "{isa} grads_row dS: {y} vs {z}");
                        }
                    }
                });
            }
        }
    }
}
