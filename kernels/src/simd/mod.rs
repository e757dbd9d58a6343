//! A small SIMD abstraction so each element-wise and row kernel is written once and compiled for
//! every instruction set.
//!
//! `Simd` is implemented by zero-sized tokens for AVX-512F, AVX2+FMA, the `wide` crate
//! (portable) and NEON. Its methods are `#[inline(always)] unsafe fn`s: they are only sound to
//! call from code compiled with the token's CPU features, on a CPU that has them. Generic kernel
//! bodies (also `#[inline(always)] unsafe fn`) are instantiated inside one
//! `#[target_feature]` entry point per instruction set by `dispatch`, which is the only place
//! that decides, after checking [`Isa::is_supported`], that a token may be used.
//!
//! The vector math here (`exp`, `erf`, the normal CDF `phi`) is shared by all paths, so every path
//! computes the same approximation; only the rounding of fused multiply-adds and the order of
//! horizontal reductions differ between instruction sets. The exception is GELU's `Φ`: tokens with
//! a one-instruction 32-entry table lookup (`Simd::FAST_LUT32`, AVX-512) use the piecewise
//! tables of `gelu_tables`, the others the logistic form `phi_logistic_e`; both are tested
//! against the same f64 reference and bound.

use crate::dispatch::Isa;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
mod gelu_tables;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
pub(crate) mod portable;

/// The widest vector of any token, in f32 lanes (for tail buffers).
pub(crate) const MAX_LANES: usize = 16;

/// One instruction set's f32 vector operations.
///
/// # Safety
/// Every method may only be called from code compiled with the implementing token's target
/// features, running on a CPU that has them. Pointer arguments must be valid for `LANES` f32.
pub(crate) unsafe trait Simd: Copy {
    /// A vector of `LANES` f32.
    type V: Copy;
    /// Lanes per vector.
    const LANES: usize;

    unsafe fn splat(x: f32) -> Self::V;
    /// Unaligned load of `LANES` values.
    unsafe fn load(p: *const f32) -> Self::V;
    /// Unaligned store of `LANES` values.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Store of `LANES` values that bypasses the caches where the ISA has such a store (no
    /// read-for-ownership of the destination line); `p` must be aligned to `LANES·4` bytes.
    /// Callers issue [`Simd::fence`] after their last streaming store. The default is `store`.
    #[inline(always)]
    unsafe fn stream(p: *mut f32, v: Self::V) {
        Self::store(p, v)
    }
    /// Orders earlier streaming stores before later stores (a no-op where `stream` is `store`).
    #[inline(always)]
    unsafe fn fence() {}
    /// Hints that the 64-byte line holding `p` will be read soon (a no-op by default). `p` must
    /// point into a live allocation.
    #[inline(always)]
    unsafe fn prefetch(_p: *const f32) {}
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c` (fused where the ISA has FMA; the portable path on SSE2 rounds twice).
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lane maximum; which operand wins when one is NaN is unspecified.
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// Lane minimum; which operand wins when one is NaN is unspecified.
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sqrt(a: Self::V) -> Self::V;
    unsafe fn abs(a: Self::V) -> Self::V;
    /// Round to the nearest integer, ties to even.
    unsafe fn round(a: Self::V) -> Self::V;
    /// `2ⁿ` for lanes holding integers `n` in `-126..=127` (anything else gives an unspecified
    /// finite, infinite or NaN value).
    unsafe fn pow2i(n: Self::V) -> Self::V;
    /// `a > b ? t : f` per lane (ordered: NaN compares false).
    unsafe fn select_gt(a: Self::V, b: Self::V, t: Self::V, f: Self::V) -> Self::V;
    /// `a < b ? t : f` per lane (ordered: NaN compares false).
    unsafe fn select_lt(a: Self::V, b: Self::V, t: Self::V, f: Self::V) -> Self::V;
    /// Sum of the lanes (a fixed order per ISA).
    unsafe fn reduce_sum(a: Self::V) -> f32;
    /// Maximum of the lanes (NaN lanes may be ignored or propagated).
    unsafe fn reduce_max(a: Self::V) -> f32;
    /// Round down to an integer.
    #[inline(always)]
    unsafe fn floor(a: Self::V) -> Self::V {
        let r = Self::round(a);
        Self::select_gt(r, a, Self::sub(r, Self::splat(1.0)), r)
    }
    /// Whether [`Simd::lut32`] is one instruction (AVX-512's `vpermt2ps`); kernels choose a
    /// table-driven formula only then.
    const FAST_LUT32: bool = false;
    /// `t[i]` per lane, for lanes `i` holding integers in `0..32` (as f32). The default goes
    /// through memory (correct, slow).
    #[inline(always)]
    unsafe fn lut32(i: Self::V, t: &[f32; 32]) -> Self::V {
        let mut b = [0.0f32; MAX_LANES];
        Self::store(b.as_mut_ptr(), i);
        for v in &mut b[..Self::LANES] {
            *v = t[(*v as usize) & 31];
        }
        Self::load(b.as_ptr())
    }
    /// `2ᵗ` per lane with relative error about 2e-8 plus rounding (see [`exp2_generic`]); a
    /// token may replace the generic version.
    #[inline(always)]
    unsafe fn exp2(t: Self::V) -> Self::V {
        exp2_generic::<Self>(t)
    }
    /// `eˣ` per lane (see [`exp`]); a token may replace the generic version.
    #[inline(always)]
    unsafe fn exp(x: Self::V) -> Self::V {
        exp_generic::<Self>(x)
    }
    /// Vector registers of the instruction set (to choose register-blocked tile shapes).
    const REGISTERS: usize = 16;
    /// Loads the first `n ≤ LANES` values at `p` (only those are read); the other lanes are
    /// `pad`. The default goes through a buffer; tokens with masked loads replace it.
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, n: usize, pad: f32) -> Self::V {
        let mut b = [pad; MAX_LANES];
        std::ptr::copy_nonoverlapping(p, b.as_mut_ptr(), n.min(Self::LANES));
        Self::load(b.as_ptr())
    }
    /// Stores the first `n ≤ LANES` lanes of `v` at `p` (only those are written). The default
    /// goes through a buffer; tokens with masked stores replace it.
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, n: usize, v: Self::V) {
        let mut b = [0.0f32; MAX_LANES];
        Self::store(b.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(b.as_ptr(), p, n.min(Self::LANES));
    }
    /// The attention dropout test on `LANES` consecutive counters: lane `i` is `t` when
    /// [`dropout_hash`]`(lo + i, k0, hk) ≥ thr` (unsigned; `lo + i` wraps in 32 bits) and `f`
    /// otherwise. The default hashes lane by lane; tokens with 32-bit integer lanes replace it.
    #[inline(always)]
    unsafe fn dropout_select(
        lo: u32,
        k0: u32,
        hk: u32,
        thr: u32,
        t: Self::V,
        f: Self::V,
    ) -> Self::V {
        // 1 in kept lanes, 0 in dropped ones
        let mut keep = [0.0f32; MAX_LANES];
        for (i, k) in keep.iter_mut().take(Self::LANES).enumerate() {
            *k = (dropout_hash(lo.wrapping_add(i as u32), k0, hk) >= thr) as u32 as f32;
        }
        Self::select_gt(Self::load(keep.as_ptr()), Self::splat(0.5), t, f)
    }
}

/// A 32-bit bijective mixer ("lowbias32", C. Wellons).
#[inline(always)]
pub(crate) fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^ (x >> 16)
}

/// The counter hash of attention dropout: `mix32(mix32(lo ^ k0) ^ hk)`, where `lo` is the low
/// half of the flat index and `hk` its high half xor the second key (see
/// `attention::dropout_keep`). The vector versions of [`Simd::dropout_select`] compute exactly
/// this per lane.
#[inline(always)]
pub(crate) fn dropout_hash(lo: u32, k0: u32, hk: u32) -> u32 {
    mix32(mix32(lo ^ k0) ^ hk)
}

/// A kernel body generic over the instruction set; [`dispatch`] runs it on one.
pub(crate) trait Kernel {
    type Out;
    /// Runs the body with token `S`.
    ///
    /// # Safety
    /// Only from inside a `#[target_feature]` function enabling `S`'s features, on a CPU that
    /// has them ([`dispatch`] is that function).
    unsafe fn run<S: Simd>(self) -> Self::Out;
}

/// Runs `k` on `isa`. Returns `Err(k)` for [`Isa::Scalar`] (the caller runs its own reference).
///
/// # Panics
/// If `isa` is not supported by this CPU (or not compiled for this architecture).
pub(crate) fn dispatch<K: Kernel>(isa: Isa, k: K) -> Result<K::Out, K> {
    assert!(
        isa.is_supported(),
        "kernel path {isa} is not supported on this CPU"
    );
    match isa {
        Isa::Scalar => Err(k),
        // SAFETY: `wide` compiles to the baseline target features, which every CPU running this
        // binary has; the portable token needs nothing more.
        Isa::Portable => Ok(unsafe { k.run::<portable::Portable>() }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn go<K: Kernel>(k: K) -> K::Out {
                k.run::<avx2::Avx2>()
            }
            // SAFETY: `is_supported` checked avx2 and fma above; `go` enables exactly them.
            Ok(unsafe { go(k) })
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn go<K: Kernel>(k: K) -> K::Out {
                k.run::<avx512::Avx512>()
            }
            // SAFETY: `is_supported` checked avx512f, avx2 and fma above; `go` enables them.
            Ok(unsafe { go(k) })
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => {
            #[target_feature(enable = "neon")]
            unsafe fn go<K: Kernel>(k: K) -> K::Out {
                k.run::<neon::Neon>()
            }
            // SAFETY: `is_supported` checked neon above; `go` enables it.
            Ok(unsafe { go(k) })
        }
        #[allow(unreachable_patterns)]
        other => unreachable!("{other} passed is_supported on an architecture without it"),
    }
}

// ---------------------------------------------------------------------------------------------
// Threading over fixed chunks.

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

// ---------------------------------------------------------------------------------------------
// Vector math.

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split so that n·LN2_HI is exact for |n| ≤ 2⁹ (Cody–Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Above this `exp` overflows f32.
const EXP_HI: f32 = 88.376_26;
/// Below this `exp` is returned as 0 (the true value is below f32's smallest normal).
const EXP_LO: f32 = -87.336_54;

/// `eˣ` per lane, within about 2 ulp for normal results; +∞ above 88.376 and 0 below −103.98;
/// results in f32's subnormal range may be flushed to 0 (the generic version does so below
/// −87.337); NaN stays NaN.
///
/// `x = n·ln2 + r`, `|r| ≤ ln2/2`, `eʳ = 1 + r + r²·P(r)` with the degree-5 minimax `P` of the
/// Cephes `expf` ([`exp_reduced`]), then scaled by `2ⁿ`.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn exp<S: Simd>(x: S::V) -> S::V {
    S::exp(x)
}

/// `(n, eʳ)` with `x = n·ln2 + r`, `|r| ≤ ln2/2`: the part of [`exp`] before scaling by `2ⁿ`.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn exp_reduced<S: Simd>(x: S::V) -> (S::V, S::V) {
    let n = S::round(S::mul(x, S::splat(LOG2E)));
    let r = S::fma(n, S::splat(-LN2_HI), x);
    let r = S::fma(n, S::splat(-LN2_LO), r);
    let mut p = S::splat(1.987_569_1e-4);
    p = S::fma(p, r, S::splat(1.398_199_9e-3));
    p = S::fma(p, r, S::splat(8.333_452e-3));
    p = S::fma(p, r, S::splat(4.166_579_6e-2));
    p = S::fma(p, r, S::splat(1.666_666_5e-1));
    p = S::fma(p, r, S::splat(0.5));
    let r2 = S::mul(r, r);
    (n, S::add(S::fma(p, r2, r), S::splat(1.0)))
}

/// [`exp`] from the [`Simd`] primitives: `2ⁿ` built from exponent bits, out-of-range inputs
/// fixed by selects (which keep NaN).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn exp_generic<S: Simd>(x: S::V) -> S::V {
    let (n, e) = exp_reduced::<S>(x);
    let y = S::mul(e, S::pow2i(n));
    let y = S::select_gt(x, S::splat(EXP_HI), S::splat(f32::INFINITY), y);
    S::select_lt(x, S::splat(EXP_LO), S::splat(0.0), y)
}

/// `2ᶠ` on `|f| ≤ ½`: degree-6 fit of the relative error (Lawson, f64; coefficients rounded to
/// f32, lowest degree first): max relative error 1.6e-8.
const EXP2_P: [f32; 7] = [
    1.0,
    std::f32::consts::LN_2,
    0.24022646,
    0.055503286,
    0.009618489,
    0.0013399932,
    0.00015345811,
];

/// `(n, 2ᶠ)` with `t = n + f`, `n = round(t)`, `|f| ≤ ½` (`f` exact), the polynomial by
/// Estrin's scheme (chain of 4 operations after the reduction).
#[inline(always)]
pub(crate) unsafe fn exp2_reduced<S: Simd>(t: S::V) -> (S::V, S::V) {
    let n = S::round(t);
    let f = S::sub(t, n);
    let k = |i: usize| S::splat(EXP2_P[i]);
    let f2 = S::mul(f, f);
    let f4 = S::mul(f2, f2);
    let p01 = S::fma(k(1), f, k(0));
    let p23 = S::fma(k(3), f, k(2));
    let p45 = S::fma(k(5), f, k(4));
    let q1 = S::fma(k(6), f2, p45);
    let q0 = S::fma(p23, f2, p01);
    (n, S::fma(q1, f4, q0))
}

/// Largest `t` for which the generic [`exp2`](Simd::exp2) scales by `2ⁿ` directly.
const EXP2_HI: f32 = 126.0;

/// `2ᵗ`: `t` clamped to `±126` for the reduction, `+∞` above 126, and below −126 a value at most
/// `2⁻¹²⁶` (not the true tiny or zero result: callers only add it to 1). NaN gives an
/// unspecified value (callers combine it with the NaN input elsewhere).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn exp2_generic<S: Simd>(t: S::V) -> S::V {
    let hi = S::splat(EXP2_HI);
    let tc = S::max(S::min(t, hi), S::splat(-EXP2_HI));
    let (n, p) = exp2_reduced::<S>(tc);
    S::select_gt(t, hi, S::splat(f32::INFINITY), S::mul(p, S::pow2i(n)))
}

/// Where erf switches from the odd polynomial to `1 − erfc`.
const ERF_SPLIT: f32 = 1.0;
/// erfc's fit covers `ERF_SPLIT..=ERFC_CLAMP`; beyond, `g` is held at its end value (erfc is
/// below 2e-17 there, so erf is exactly ±1 in f32 and only erfc's relative accuracy suffers).
const ERFC_CLAMP: f32 = 6.0;

/// `erf(z) − z` divided by `z`, as a polynomial in `w = z²` on `|z| ≤ 1` (weighted least squares
/// on Chebyshev nodes, coefficients rounded to f32; highest degree first).
const ERF_P: [f32; 7] = [
    7.889_462e-5,
    -8.020_952e-4,
    5.189_549e-3,
    -2.685_445_4e-2,
    1.128_36e-1,
    -3.761_262_6e-1,
    1.283_791_7e-1,
];

/// `g(z) = ln erfc(z) + z²` as a polynomial in `z` on `1 ≤ z ≤ 6` (same fit; highest first).
const ERFC_G: [f32; 10] = [
    -8.295_373e-8,
    3.325_018_5e-6,
    -6.042_498e-5,
    6.624_482_3e-4,
    -4.929_172_3e-3,
    2.664_831_3e-2,
    -1.101_516_5e-1,
    3.679_737_7e-1,
    -1.129_981_4,
    2.292_772_3e-4,
];

#[inline(always)]
unsafe fn horner<S: Simd>(c: &[f32], t: S::V) -> S::V {
    let mut acc = S::splat(c[0]);
    for &ci in &c[1..] {
        acc = S::fma(acc, t, S::splat(ci));
    }
    acc
}

/// erf on the small branch: `z + z·P(z²)` (odd, so correct for either sign).
#[inline(always)]
unsafe fn erf_small<S: Simd>(z: S::V) -> S::V {
    let p = horner::<S>(&ERF_P, S::mul(z, z));
    S::fma(z, p, z)
}

/// erfc(a) for `a ≥ 1`: `exp(g(min(a, 6)) − a²)`.
#[inline(always)]
unsafe fn erfc_large<S: Simd>(a: S::V) -> S::V {
    let g = horner::<S>(&ERFC_G, S::min(a, S::splat(ERFC_CLAMP)));
    exp::<S>(S::sub(g, S::mul(a, a)))
}

/// `erf(z)` per lane, absolute error below 1e-7 (measured in the `erf_accuracy` test).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn erf<S: Simd>(z: S::V) -> S::V {
    let a = S::abs(z);
    let small = erf_small::<S>(z);
    let big = S::sub(S::splat(1.0), erfc_large::<S>(a));
    let big = S::select_lt(z, S::splat(0.0), S::sub(S::splat(0.0), big), big);
    S::select_gt(a, S::splat(ERF_SPLIT), big, small)
}

/// The standard normal CDF `Φ(x) = ½(1 + erf(x/√2))`, with the lower tail computed as
/// `½·erfc(|x|/√2)` so it keeps its relative accuracy for negative `x` (down to about −8.5).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn phi<S: Simd>(x: S::V) -> S::V {
    let z = S::mul(x, S::splat(std::f32::consts::FRAC_1_SQRT_2));
    let a = S::abs(z);
    let half = S::splat(0.5);
    let small = S::fma(half, erf_small::<S>(z), half);
    let h = S::mul(half, erfc_large::<S>(a));
    let big = S::select_lt(x, S::splat(0.0), h, S::sub(S::splat(1.0), h));
    S::select_gt(a, S::splat(ERF_SPLIT), big, small)
}

/// `Φ(x)` is written as a logistic `σ(x·s(x²))`, `s(x²) = logit(Φ(x))/x`, which is smooth and
/// even; this is `−s·log₂e` as a polynomial in `w = x²` on `|x| ≤ 5.6` (weighted Lawson fit in
/// f64 minimising the absolute error of `Φ`, times log₂e, coefficients rounded to f32; highest
/// degree first). Max fit error in `Φ` 1.4e-8; in f32 arithmetic (with a correctly rounded
/// exp) 5e-8.
const PHI_NEG_S_LOG2E: [f32; 11] = [
    6.597516e-15,
    -9.740212e-13,
    5.904599e-11,
    -1.8242252e-09,
    2.58413e-08,
    8.6482316e-08,
    -9.859083e-06,
    0.000155015,
    0.00010055298,
    -0.10483892,
    -2.3022087,
];
/// `w = x²` is clamped to `GELU_X²` for the polynomial: beyond, `σ(x·s(GELU_X²))` stays
/// between `Φ(±GELU_X)` and `0`/`1`, and `Φ(−5.6) = 1.1e-8`.
const PHI_W_CLAMP: f32 = 5.6 * 5.6;

/// A degree-10 polynomial (coefficients highest first, as for [`horner`]) by Estrin's scheme:
/// the same 10 fused multiply-adds plus 3 multiplies for the powers of `t`, but a dependency
/// chain of 5 operations instead of 10, so the vectors of an unrolled loop overlap better.
#[inline(always)]
unsafe fn estrin10<S: Simd>(c: &[f32; 11], t: S::V) -> S::V {
    let k = |i: usize| S::splat(c[10 - i]);
    let t2 = S::mul(t, t);
    let t4 = S::mul(t2, t2);
    let t8 = S::mul(t4, t4);
    let p01 = S::fma(k(1), t, k(0));
    let p23 = S::fma(k(3), t, k(2));
    let p45 = S::fma(k(5), t, k(4));
    let p67 = S::fma(k(7), t, k(6));
    let p89 = S::fma(k(9), t, k(8));
    let q0 = S::fma(p23, t2, p01);
    let q1 = S::fma(p67, t2, p45);
    let q2 = S::fma(k(10), t2, p89);
    S::fma(q2, t8, S::fma(q1, t4, q0))
}

/// `e^(−x·s(x²))` with `Φ(x) = 1/(1 + e^(−x·s(x²)))`: the logistic form of `Φ` used by GELU,
/// cheaper than [`phi`] (one `2ᵗ` and 16 fused multiply-adds, no second branch). Its absolute
/// error in `Φ` is below 1e-7 on every path: fit plus evaluation 5e-8, and the `2ᵗ`'s relative
/// error (≤ 1.6e-8 plus 2 roundings) enters scaled by `σ(1−σ) ≤ ¼`. It is only an absolute bound: the lower tail has no relative accuracy
/// (`Φ` for `x < −5.6` is below 1.1e-8 and returned as something between that and 0).
/// `x = −∞` gives `+∞` (so `x·Φ = −∞/∞` is NaN, as the reference's `−∞·0`), `+∞` gives 0,
/// NaN gives NaN.
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn phi_logistic_e<S: Simd>(x: S::V) -> S::V {
    // NaN in w may become the clamp value; x·(…) below is NaN anyway.
    let w = S::min(S::mul(x, x), S::splat(PHI_W_CLAMP));
    let ns = estrin10::<S>(&PHI_NEG_S_LOG2E, w);
    S::exp2(S::mul(x, ns))
}

/// Evaluates one of the [`gelu_tables`] piecewise polynomials: `x` clamped to `[−8, 8)`,
/// interval `i = ⌊2x + 16⌋`, local variable `g = 2x + 16 − i` formed with one rounding (`2x` and
/// `16 − i` are exact), then a degree-6 Horner in `g ∈ [0, 1)` with the coefficients looked up
/// per lane. 7 operations for the reduction, 7 lookups and 6 fused multiply-adds. NaN gives an
/// unspecified value (callers multiply by the NaN input).
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
unsafe fn pw_poly<S: Simd>(x: S::V, c: &[[f32; 32]; 7]) -> S::V {
    // 8 − 2 ulp: 2x + 16 then stays below 32 after rounding.
    let xc = S::max(S::splat(-8.0), S::min(S::splat(7.999_999), x));
    let two = S::splat(2.0);
    let i = S::floor(S::fma(xc, two, S::splat(16.0)));
    let g = S::fma(xc, two, S::sub(S::splat(16.0), i));
    let mut acc = S::lut32(i, &c[6]);
    for k in (0..6).rev() {
        acc = S::fma(acc, g, S::lut32(i, &c[k]));
    }
    acc
}

/// `Φ(x)` from [`gelu_tables::PHI_PW`]: absolute error ≤ 6e-8 (measured, see there), exactly 0
/// for `x ≤ −8` (so `x·Φ(x)` is NaN at `−∞` like the reference's `−∞·0`) and 1 for `x ≥ 8`.
/// Only fast where [`Simd::FAST_LUT32`].
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn phi_pw<S: Simd>(x: S::V) -> S::V {
    pw_poly::<S>(x, &gelu_tables::PHI_PW)
}

/// `Φ(x) + x·φ(x)` (GELU's derivative) from [`gelu_tables::DGELU_PW`]: absolute error ≤ 1.1e-7
/// (measured, see there), exactly 0 for `x ≤ −8` and 1 for `x ≥ 8`. Only fast where
/// [`Simd::FAST_LUT32`].
///
/// # Safety
/// As for [`Simd`] methods.
#[inline(always)]
pub(crate) unsafe fn dgelu_pw<S: Simd>(x: S::V) -> S::V {
    pw_poly::<S>(x, &gelu_tables::DGELU_PW)
}

/// Applies a vector function to a slice (for tests of the vector math).
pub(crate) struct MapFn<'a> {
    pub x: &'a [f32],
    pub y: &'a mut [f32],
    pub which: MathFn,
}

/// Which vector function [`MapFn`] applies.
#[derive(Clone, Copy, Debug)]
pub(crate) enum MathFn {
    Exp,
    Erf,
    Phi,
}

impl Map1 for MathFn {
    #[inline(always)]
    unsafe fn f<S: Simd>(self, v: S::V) -> S::V {
        match self {
            MathFn::Exp => exp::<S>(v),
            MathFn::Erf => erf::<S>(v),
            MathFn::Phi => phi::<S>(v),
        }
    }
}

impl Kernel for MapFn<'_> {
    type Out = ();
    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        // One instantiation per function so the match is outside the loop.
        match self.which {
            MathFn::Exp => map1::<S, _>(self.x, self.y, MathFn::Exp, false),
            MathFn::Erf => map1::<S, _>(self.x, self.y, MathFn::Erf, false),
            MathFn::Phi => map1::<S, _>(self.x, self.y, MathFn::Phi, false),
        }
    }
}

/// The vector `exp`, `erf` or `Φ` applied to `x` on `isa` (exposed for accuracy tests; the scalar
/// path uses `libm` in f64).
pub fn math_with(isa: Isa, which: &str, x: &[f32], y: &mut [f32]) {
    assert_eq!(
        x.len(),
        y.len(),
        "math_with: x {} elements, y {}",
        x.len(),
        y.len()
    );
    let f = match which {
        "exp" => MathFn::Exp,
        "erf" => MathFn::Erf,
        "phi" => MathFn::Phi,
        other => panic!("math_with: unknown function {other:?}; use exp, erf or phi"),
    };
    if let Err(k) = dispatch(isa, MapFn { x, y, which: f }) {
        for (yi, &xi) in k.y.iter_mut().zip(k.x) {
            let v = xi as f64;
            *yi = match f {
                MathFn::Exp => v.exp(),
                MathFn::Erf => libm::erf(v),
                MathFn::Phi => 0.5 * libm::erfc(-v * std::f64::consts::FRAC_1_SQRT_2),
            } as f32;
        }
    }
}

/// `dst = src` on the best vector path of this CPU with streaming stores (`map1` with the
/// identity, on the calling thread): the memory-bound reference that benches set beside kernels
/// whose output is streamed (`copy_from_slice` writes through the cache, which costs a
/// read-for-ownership of every destination line).
///
/// # Panics
/// If the lengths differ.
pub fn stream_copy(src: &[f32], dst: &mut [f32]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "stream_copy: src {} elements, dst {}",
        src.len(),
        dst.len()
    );
    #[derive(Clone, Copy)]
    struct Id;
    impl Map1 for Id {
        #[inline(always)]
        unsafe fn f<S: Simd>(self, x: S::V) -> S::V {
            x
        }
    }
    struct CopyK<'a> {
        src: &'a [f32],
        dst: &'a mut [f32],
    }
    impl Kernel for CopyK<'_> {
        type Out = ();
        #[inline(always)]
        unsafe fn run<S: Simd>(self) {
            map1::<S, Id>(self.src, self.dst, Id, true)
        }
    }
    if let Err(k) = dispatch(crate::dispatch::best(), CopyK { src, dst }) {
        k.dst.copy_from_slice(k.src);
    }
}

#[cfg(test)]
mod stream_copy_tests {
    #[test]
    fn stream_copy_copies_every_length_and_alignment() {
        // Lengths around the vector widths and every start offset of the destination within a
        // 64-byte line (head, aligned body and tail all occur); NaN payloads must survive.
        let src: Vec<f32> = (0..300)
            .map(|i| i as f32 * 1.25 - 150.5)
            .chain([f32::from_bits(0x7fc0_1234), f32::NEG_INFINITY])
            .collect();
        for n in [0, 1, 7, 15, 16, 17, 33, 64, 129, 302] {
            for off in 0..16 {
                let mut buf = vec![0.0f32; n + off];
                let s = &src[src.len() - n..];
                super::stream_copy(s, &mut buf[off..]);
                let a: Vec<u32> = s.iter().map(|v| v.to_bits()).collect();
                let b: Vec<u32> = buf[off..].iter().map(|v| v.to_bits()).collect();
                assert!(a == b, "stream_copy: {n} elements at offset {off}");
            }
        }
    }
}
