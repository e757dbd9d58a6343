//! The loops every kernel shares and the threading policy.
//!
//! Threading: inputs of at least [`PAR_MIN_ELEMS`] elements are split over rayon in fixed chunks
//! ([`PAR_CHUNK_ELEMS`], or [`rows_per_chunk`] rows), independent of the number of threads, so
//! every element is computed by the same code whatever the pool size.
//!
//! Loops: [`map1`]/[`map2`] and the [`vec_loop`]/[`vec_loop_out`] macros run a vector body over a
//! slice with its tail through the same vector code (padded buffers), optionally writing the
//! output with streaming stores ([`stream_output`]); [`sum`], [`sum_dev`] and [`max`] are the
//! row reductions.

use super::{Simd, MAX_LANES};

/// Element-wise kernels split inputs of at least this many elements across rayon tasks.
pub const PAR_MIN_ELEMS: usize = 1 << 17;
/// Fixed chunk size (elements) of those tasks: independent of the number of threads, so every
/// element is computed by the same code whatever the pool size.
pub const PAR_CHUNK_ELEMS: usize = 1 << 15;

/// Rows per task for a row kernel with `cols` columns (fixed for a given `cols`).
pub fn rows_per_chunk(cols: usize) -> usize {
    (PAR_CHUNK_ELEMS / cols.max(1)).max(1)
}

/// Whether a kernel over `elems` elements should use rayon.
pub(crate) fn parallel(elems: usize) -> bool {
    elems >= PAR_MIN_ELEMS && rayon::current_num_threads() > 1
}

// ---------------------------------------------------------------------------------------------
// Loops with tails.

/// A one-input vector function for [`map1`]. A trait rather than a closure so that its body is
/// inlined into the `#[target_feature]` entry point (a closure would be compiled as its own
/// function without the CPU features, turning every intrinsic into a call).
pub(crate) trait Map1: Copy {
    /// # Safety
    /// As for [`Simd`] methods.
    unsafe fn f<S: Simd>(self, x: S::V) -> S::V;
}

/// A two-input vector function for [`map2`] (see [`Map1`]).
pub(crate) trait Map2: Copy {
    /// # Safety
    /// As for [`Simd`] methods.
    unsafe fn f<S: Simd>(self, a: S::V, b: S::V) -> S::V;
}

/// A kernel call whose reads and writes together cover at least this many bytes (32 MiB, the
/// size of this machine's L3) writes its output with streaming stores (`Simd::stream`): by the
/// time the call ends, the traffic it made has pushed the start of its output out of the cache,
/// so the output would not stay cached until its reader anyway, and skipping the
/// read-for-ownership of each destination line saves a third of a copy-like kernel's traffic.
/// Smaller calls keep their output cached for the matmul that reads it next (a BERT-base hidden
/// state of batch 32 × 128 is 12.6 MB, 25 MB read and written by a LayerNorm). Streaming changes
/// only how a value is stored, never the value.
pub const STREAM_MIN_BYTES: usize = 32 << 20;

/// Whether a call that reads `read` and writes `written` f32 elements in all should write its
/// output with streaming stores (see [`STREAM_MIN_BYTES`]).
pub fn stream_output(read: usize, written: usize) -> bool {
    (read + written).saturating_mul(4) >= STREAM_MIN_BYTES
}

/// Elements before `p` reaches `LANES·4`-byte alignment (0 when already aligned).
#[inline(always)]
pub(crate) fn misalign<S: Simd>(p: *const f32) -> usize {
    let a = S::LANES * 4;
    ((a - (p as usize) % a) % a) / 4
}

/// Stores `v` at `q`, streaming when `stream` (then `q` must be `LANES·4`-byte aligned).
#[inline(always)]
pub(crate) unsafe fn put<S: Simd>(q: *mut f32, v: S::V, stream: bool) {
    if stream {
        S::stream(q, v)
    } else {
        S::store(q, v)
    }
}

/// `op` over `x[lo..hi]` into `y[lo..hi]` (at most `LANES` elements) through padded buffers.
#[inline(always)]
unsafe fn map1_part<S: Simd, F: Map1>(x: &[f32], y: &mut [f32], lo: usize, hi: usize, op: F) {
    if lo < hi {
        let mut bx = [0.0f32; MAX_LANES];
        bx[..hi - lo].copy_from_slice(&x[lo..hi]);
        let r = op.f::<S>(S::load(bx.as_ptr()));
        S::store(bx.as_mut_ptr(), r);
        y[lo..hi].copy_from_slice(&bx[..hi - lo]);
    }
}

/// Applies `op` to each vector of `x` into `y`, handling the tail through a padded buffer so the
/// tail goes through the same vector code as the body. With `stream`, the first elements up to
/// `y`'s vector alignment also go through the padded buffer and the aligned body is written with
/// streaming stores (each element is still computed by the same vector code, so the result does
/// not depend on `stream` or on alignment).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn map1<S: Simd, F: Map1>(x: &[f32], y: &mut [f32], op: F, stream: bool) {
    debug_assert_eq!(x.len(), y.len());
    let n = x.len().min(y.len());
    let l = S::LANES;
    let head = if stream {
        misalign::<S>(y.as_ptr()).min(n)
    } else {
        0
    };
    map1_part::<S, F>(x, y, 0, head, op);
    let body = head + (n - head) / l * l;
    let mut i = head;
    // Four independent vectors per step: the polynomial chains are latency-bound.
    while i + 4 * l <= body {
        let (p, q) = (x.as_ptr().add(i), y.as_mut_ptr().add(i));
        let r0 = op.f::<S>(S::load(p));
        let r1 = op.f::<S>(S::load(p.add(l)));
        let r2 = op.f::<S>(S::load(p.add(2 * l)));
        let r3 = op.f::<S>(S::load(p.add(3 * l)));
        put::<S>(q, r0, stream);
        put::<S>(q.add(l), r1, stream);
        put::<S>(q.add(2 * l), r2, stream);
        put::<S>(q.add(3 * l), r3, stream);
        i += 4 * l;
    }
    while i < body {
        put::<S>(
            y.as_mut_ptr().add(i),
            op.f::<S>(S::load(x.as_ptr().add(i))),
            stream,
        );
        i += l;
    }
    map1_part::<S, F>(x, y, body, n, op);
    if stream {
        S::fence();
    }
}

/// `op` over `a[lo..hi]`, `b[lo..hi]` into `y[lo..hi]` (at most `LANES` elements) through
/// padded buffers.
#[inline(always)]
unsafe fn map2_part<S: Simd, F: Map2>(
    a: &[f32],
    b: &[f32],
    y: &mut [f32],
    lo: usize,
    hi: usize,
    op: F,
) {
    if lo < hi {
        let k = hi - lo;
        let mut ba = [0.0f32; MAX_LANES];
        let mut bb = [0.0f32; MAX_LANES];
        ba[..k].copy_from_slice(&a[lo..hi]);
        bb[..k].copy_from_slice(&b[lo..hi]);
        let r = op.f::<S>(S::load(ba.as_ptr()), S::load(bb.as_ptr()));
        S::store(ba.as_mut_ptr(), r);
        y[lo..hi].copy_from_slice(&ba[..k]);
    }
}

/// Like [`map1`] with two inputs.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn map2<S: Simd, F: Map2>(
    a: &[f32],
    b: &[f32],
    y: &mut [f32],
    op: F,
    stream: bool,
) {
    let n = a.len().min(b.len()).min(y.len());
    let l = S::LANES;
    let head = if stream {
        misalign::<S>(y.as_ptr()).min(n)
    } else {
        0
    };
    map2_part::<S, F>(a, b, y, 0, head, op);
    let body = head + (n - head) / l * l;
    let mut i = head;
    while i + 2 * l <= body {
        let (pa, pb, q) = (a.as_ptr().add(i), b.as_ptr().add(i), y.as_mut_ptr().add(i));
        let r0 = op.f::<S>(S::load(pa), S::load(pb));
        let r1 = op.f::<S>(S::load(pa.add(l)), S::load(pb.add(l)));
        put::<S>(q, r0, stream);
        put::<S>(q.add(l), r1, stream);
        i += 2 * l;
    }
    while i < body {
        let r = op.f::<S>(S::load(a.as_ptr().add(i)), S::load(b.as_ptr().add(i)));
        put::<S>(y.as_mut_ptr().add(i), r, stream);
        i += l;
    }
    map2_part::<S, F>(a, b, y, body, n, op);
    if stream {
        S::fence();
    }
}

/// Runs `$body` for `$j` = 0, l, 2l, … below `$n`: the full vectors in one loop and the partial
/// one after it, so the length checks of [`load_or_pad`] and [`store_part`] fold away in the main
/// loop. The body is expanded twice.
macro_rules! vec_loop {
    ($j:ident in $n:expr, $l:expr => $body:block) => {{
        let (n, l) = ($n, $l);
        let mut $j = 0;
        while $j + l <= n {
            $body
            $j += l;
        }
        if $j < n $body
    }};
}
pub(crate) use vec_loop;

/// Like [`vec_loop`] for a loop whose `$body` yields the vector for `$y[$j..$j+LANES]`, which
/// the macro stores: with `$stream`, the elements before `$y`'s vector alignment are stored from
/// the vector computed at `$j = 0` (only those lanes) and the aligned body with streaming stores.
/// The caller issues [`Simd::fence`] after its last use. The body is expanded three times.
macro_rules! vec_loop_out {
    ($S:ty, $j:ident in $y:expr, $stream:expr => $body:block) => {{
        let y: &mut [f32] = $y;
        let stream: bool = $stream;
        let (n, l) = (y.len(), <$S as $crate::simd::Simd>::LANES);
        let head = if stream {
            $crate::simd::misalign::<$S>(y.as_ptr()).min(n)
        } else {
            0
        };
        if head > 0 {
            let $j = 0usize;
            let v = $body;
            $crate::simd::store_first::<$S>(y, head, v);
        }
        let mut $j = head;
        while $j + l <= n {
            let v = $body;
            $crate::simd::put::<$S>(y.as_mut_ptr().add($j), v, stream);
            $j += l;
        }
        if $j < n {
            let v = $body;
            $crate::simd::store_part::<$S>(y, $j, v);
        }
    }};
}
pub(crate) use vec_loop_out;

/// Stores the first `k ≤ LANES` lanes of `v` to `y[..k]`.
///
/// # Safety
/// As for [`Simd`] methods; `k ≤ y.len()`.
#[inline(always)]
pub(crate) unsafe fn store_first<S: Simd>(y: &mut [f32], k: usize, v: S::V) {
    let mut b = [0.0f32; MAX_LANES];
    S::store(b.as_mut_ptr(), v);
    y[..k].copy_from_slice(&b[..k]);
}

/// Prefetches the line of `ahead[j]` if `j` is inside `ahead` (to overlap the memory reads of a
/// later row with the computation on the current one).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn prefetch_at<S: Simd>(ahead: &[f32], j: usize) {
    if j < ahead.len() {
        S::prefetch(ahead.as_ptr().add(j));
    }
}

/// Loads `x[i..i+LANES]`, or the tail padded with `pad` when fewer remain.
///
/// # Safety
/// As for [`Simd`] methods; `i < x.len()`.
#[inline(always)]
pub(crate) unsafe fn load_or_pad<S: Simd>(x: &[f32], i: usize, pad: f32) -> S::V {
    if i + S::LANES <= x.len() {
        S::load(x.as_ptr().add(i))
    } else {
        let mut b = [pad; MAX_LANES];
        b[..x.len() - i].copy_from_slice(&x[i..]);
        S::load(b.as_ptr())
    }
}

/// Stores `v` to `y[i..i+LANES]`, or only the lanes that fit.
///
/// # Safety
/// As for [`Simd`] methods; `i < y.len()`.
#[inline(always)]
pub(crate) unsafe fn store_part<S: Simd>(y: &mut [f32], i: usize, v: S::V) {
    if i + S::LANES <= y.len() {
        S::store(y.as_mut_ptr().add(i), v)
    } else {
        let mut b = [0.0f32; MAX_LANES];
        S::store(b.as_mut_ptr(), v);
        let k = y.len() - i;
        y[i..].copy_from_slice(&b[..k]);
    }
}

/// Σ x in f32 with four vector accumulators (tail padded with 0): the adds of a row overlap
/// instead of waiting on one accumulator.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn sum<S: Simd>(x: &[f32]) -> f32 {
    let l = S::LANES;
    let mut a = [S::splat(0.0); 4];
    let mut i = 0;
    while i + 4 * l <= x.len() {
        for (k, ak) in a.iter_mut().enumerate() {
            *ak = S::add(*ak, S::load(x.as_ptr().add(i + k * l)));
        }
        i += 4 * l;
    }
    while i < x.len() {
        a[0] = S::add(a[0], load_or_pad::<S>(x, i, 0.0));
        i += l;
    }
    S::reduce_sum(S::add(S::add(a[0], a[1]), S::add(a[2], a[3])))
}

/// `(Σ d, Σ d²)` with `d = x − c`, four vector accumulators each (tail padded with `c`, so
/// `d = 0` there).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn sum_dev<S: Simd>(x: &[f32], c: f32) -> (f32, f32) {
    let l = S::LANES;
    let cv = S::splat(c);
    let mut a = [S::splat(0.0); 4];
    let mut b = [S::splat(0.0); 4];
    let mut i = 0;
    while i + 4 * l <= x.len() {
        for k in 0..4 {
            let d = S::sub(S::load(x.as_ptr().add(i + k * l)), cv);
            a[k] = S::add(a[k], d);
            b[k] = S::fma(d, d, b[k]);
        }
        i += 4 * l;
    }
    while i < x.len() {
        let d = S::sub(load_or_pad::<S>(x, i, c), cv);
        a[0] = S::add(a[0], d);
        b[0] = S::fma(d, d, b[0]);
        i += l;
    }
    (
        S::reduce_sum(S::add(S::add(a[0], a[1]), S::add(a[2], a[3]))),
        S::reduce_sum(S::add(S::add(b[0], b[1]), S::add(b[2], b[3]))),
    )
}

/// max x (tail padded with −∞); −∞ for an empty slice.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn max<S: Simd>(x: &[f32]) -> f32 {
    let l = S::LANES;
    let mut a0 = S::splat(f32::NEG_INFINITY);
    let mut a1 = S::splat(f32::NEG_INFINITY);
    let mut i = 0;
    while i + 2 * l <= x.len() {
        a0 = S::max(a0, S::load(x.as_ptr().add(i)));
        a1 = S::max(a1, S::load(x.as_ptr().add(i + l)));
        i += 2 * l;
    }
    while i < x.len() {
        a0 = S::max(a0, load_or_pad::<S>(x, i, f32::NEG_INFINITY));
        i += l;
    }
    S::reduce_max(S::max(a0, a1))
}
