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
//! vectorised row passes between them (see `vector`).
//!
//! # Determinism
//! Every output element is written by exactly one task, which accumulates in a fixed order, so
//! results do not depend on the number of threads.
//!
//! # Paths
//! `Isa::Scalar` runs the same tiled algorithm with plain loops (its reference for the tiling is
//! [`reference`](mod@reference), which materialises the full matrices in f64). `Avx512`, `Avx2`,
//! `Portable` (`wide`) and `Neon` replace the inner loops with one implementation over the
//! shared `Simd` layer (`vector`), instantiated per instruction set inside
//! one `#[target_feature]` entry per task by `crate::simd::dispatch`.

// Register-blocked micro-kernels index `acc[r][v]` by row and vector on purpose.
#![allow(clippy::needless_range_loop)]

mod backward;
mod check;
mod dropout;
mod forward;
mod prims;
pub mod reference;
#[cfg(test)]
mod tests;
mod vector;

use crate::dispatch::{active, Isa};
use backward::run_backward;
use check::{check_backward, check_forward, check_isa};
pub(crate) use dropout::Drop;
pub use dropout::{dropout_keep, DropoutMask};
use forward::run_forward;
use prims::ALIGN_PAD;

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

/// What the forward pass reads: the call's sizes and scalars, `q` (`[B,H,Tq,d]`), `k`, `v`
/// (`[B,H,Tk,d]`) and the optional additive key mask (`[B,Tk]`).
#[derive(Clone, Copy, Debug)]
pub struct AttnInputs<'a> {
    pub shape: AttnShape,
    pub params: AttnParams,
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub mask: Option<&'a [f32]>,
}

/// What the backward pass reads besides the forward's inputs: the forward's `out`
/// (`[B,H,Tq,d]`) and `lse` (`[B,H,Tq]`), and the output gradient `dout` (`[B,H,Tq,d]`).
#[derive(Clone, Copy, Debug)]
pub struct AttnSaved<'a> {
    pub out: &'a [f32],
    pub lse: &'a [f32],
    pub dout: &'a [f32],
}

/// The gradients the backward pass writes (overwritten): `dq` (`[B,H,Tq,d]`), `dk`, `dv`
/// (`[B,H,Tk,d]`).
#[derive(Debug)]
pub struct AttnGrads<'a> {
    pub dq: &'a mut [f32],
    pub dk: &'a mut [f32],
    pub dv: &'a mut [f32],
}

// ---------------------------------------------------------------------------------------------
// Public entry points.

/// Fused forward on the active path: writes `out` (`[B,H,Tq,d]`) and `lse` (`[B,H,Tq]`).
///
/// # Panics
/// On a length that does not match `inputs.shape` (the message names the slice), a zero
/// dimension, a non-finite scale or a dropout probability outside `[0, 1)`.
pub fn forward(inputs: &AttnInputs, out: &mut [f32], lse: &mut [f32]) {
    forward_with(active(), inputs, out, lse)
}

/// [`forward`] on a chosen path.
///
/// # Panics
/// As [`forward`], and if this CPU cannot run `isa`.
pub fn forward_with(isa: Isa, inputs: &AttnInputs, out: &mut [f32], lse: &mut [f32]) {
    check_forward(inputs, out, lse);
    check_isa(isa);
    run_forward(isa, inputs, out, lse)
}

/// Fused backward on the active path: writes `grads` (`dq`, `dk`, `dv`, overwritten) from the
/// forward's inputs, its `out` and `lse`, and `dout` (all in `saved`).
///
/// # Panics
/// As [`forward`], naming whichever slice has the wrong length.
pub fn backward(inputs: &AttnInputs, saved: &AttnSaved, grads: AttnGrads) {
    backward_with(active(), inputs, saved, grads)
}

/// [`backward`] on a chosen path.
pub fn backward_with(isa: Isa, inputs: &AttnInputs, saved: &AttnSaved, grads: AttnGrads) {
    check_backward(inputs, saved, &grads);
    check_isa(isa);
    run_backward(isa, inputs, saved, grads)
}
