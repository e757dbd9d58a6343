//! Dropout over a flat array: `y[i] = x[i] / (1 − p)` where element `i` is kept, `0` where it
//! is dropped. Element `i` is kept when the counter-based hash of `(seed, i)` is at least
//! `round(p·2³²)`: the mask of [`crate::attention::dropout_keep`], so the engine's dropout op,
//! the unfused attention and the fused attention kernel all drop the same elements for one seed.
//! The mask is never stored: the backward pass calls the same function on the output gradient
//! and regenerates it.
//!
//! The division is a true division by `1 − p` (as f32 computes it), on every path, so a kept
//! value is exactly `x / (1 − p)` whatever the path, the thread count or the alignment.
//!
//! Vector paths hash one vector of consecutive indices at a time (`Simd::dropout_select`:
//! 16 lanes of 32-bit integer mixing on AVX-512, 8 on AVX2). Inputs of at least
//! [`simd::PAR_MIN_ELEMS`] elements are split over rayon in fixed chunks. The scalar reference
//! is [`apply_with`] on [`Isa::Scalar`]: the per-element [`DropoutMask::keep`].
//!
//! This file holds the API and the scalar reference; the vector kernel is in `vector`.

mod vector;

use crate::attention::DropoutMask;
use crate::dispatch::{active, Isa};
use crate::simd::{self, dispatch};
use rayon::prelude::*;
use vector::Apply;

/// `y[i] = x[i] / (1 − p)` where dropout with `(seed, p)` keeps element `i`, else `0`.
///
/// # Panics
/// If `p` is not in `[0, 1)` or the lengths differ.
pub fn apply(seed: u64, p: f32, x: &[f32], y: &mut [f32]) {
    apply_with(active(), seed, p, x, y)
}

/// [`apply`] on a chosen path ([`Isa::Scalar`]: the reference, one hash per element).
pub fn apply_with(isa: Isa, seed: u64, p: f32, x: &[f32], y: &mut [f32]) {
    assert!(
        (0.0..1.0).contains(&p),
        "dropout: probability p = {p} is not in [0, 1)"
    );
    assert_eq!(
        x.len(),
        y.len(),
        "dropout: x has {} elements, y {}",
        x.len(),
        y.len()
    );
    let mask = DropoutMask::new(seed, p);
    let keep = 1.0 - p;
    // Chunk starts are multiples of the chunk size, a divisor of 2³², so no chunk's indices
    // cross a multiple of 2³² (the vector hash takes one high half per call).
    if simd::parallel(x.len()) {
        x.par_chunks(simd::PAR_CHUNK_ELEMS)
            .zip(y.par_chunks_mut(simd::PAR_CHUNK_ELEMS))
            .enumerate()
            .for_each(|(c, (x, y))| {
                chunk(isa, mask, keep, (c * simd::PAR_CHUNK_ELEMS) as u64, x, y)
            });
    } else {
        // One chunk per 2³² elements, for the same reason.
        const SPAN: usize = 1 << 32;
        for (c, (x, y)) in x.chunks(SPAN).zip(y.chunks_mut(SPAN)).enumerate() {
            chunk(isa, mask, keep, (c as u64) << 32, x, y);
        }
    }
}

/// One chunk on `isa`; the scalar path (`dispatch` returns the kernel back) is the reference,
/// one hash per element.
fn chunk(isa: Isa, mask: DropoutMask, keep: f32, start: u64, x: &[f32], y: &mut [f32]) {
    let k = Apply {
        mask,
        keep,
        start,
        x,
        y,
    };
    if let Err(k) = dispatch(isa, k) {
        for (i, (o, &v)) in k.y.iter_mut().zip(k.x).enumerate() {
            *o = if mask.keep(start + i as u64) {
                v / keep
            } else {
                0.0
            };
        }
    }
}
