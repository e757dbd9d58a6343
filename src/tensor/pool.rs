//! A process-wide pool of f32 buffers, keyed by size class (8 per power of two).
//!
//! Training repeats nearly the same shapes every step, so the buffers a step frees are the ones
//! the next step asks for; the size classes let a batch whose longest sequence or masked-position
//! count differs a little reuse them (keyed by exact length, a pre-training run of the quick
//! scale grew to 4 GiB of buffers of distinct lengths that were never asked for again). Buffers below [`MIN_POOLED`] elements are left to the allocator, and
//! the pool holds at most [`capacity`] bytes (default 4 GiB; set with
//! [`set_capacity`]), dropping what does not fit. It only ever holds buffers that were live
//! at once, so it does not raise a training step's peak memory; with a smaller cap, large
//! buffers go back to the OS and come back as fresh zeroed pages every step (measured: a
//! BERT-base step on 2 threads took 2.1 s with a 1 GiB cap, 1.6 s with 4 GiB).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Buffers shorter than this are not pooled.
pub const MIN_POOLED: usize = 1024;

static CAPACITY: AtomicUsize = AtomicUsize::new(4 << 30);
static POOL: Mutex<Option<Pool>> = Mutex::new(None);

#[derive(Default)]
struct Pool {
    free: HashMap<usize, Vec<Vec<f32>>>,
    bytes: usize,
}

/// Largest number of bytes the pool keeps.
pub fn capacity() -> usize {
    CAPACITY.load(Ordering::Relaxed)
}

/// Sets the pool's byte limit (0 disables pooling) and drops what is over it.
pub fn set_capacity(bytes: usize) {
    CAPACITY.store(bytes, Ordering::Relaxed);
    if let Ok(mut guard) = POOL.lock() {
        if let Some(pool) = guard.as_mut() {
            if pool.bytes > bytes {
                pool.free.clear();
                pool.bytes = 0;
            }
        }
    }
}

/// Bytes currently held by the pool.
pub fn held_bytes() -> usize {
    POOL.lock()
        .ok()
        .and_then(|g| g.as_ref().map(|p| p.bytes))
        .unwrap_or(0)
}

/// The capacity a pooled buffer of `len` elements gets: `len` rounded up to one of 8 sizes per
/// power of two (at most 12.5% over), so that the slightly different shapes of successive
/// steps (a batch's longest sequence, its number of masked positions) share buffers instead of
/// each keeping its own. `None` below [`MIN_POOLED`].
fn size_class(len: usize) -> Option<usize> {
    if len < MIN_POOLED {
        return None;
    }
    let octave = usize::BITS - 1 - len.leading_zeros();
    let step = 1usize << (octave - 3);
    len.checked_next_multiple_of(step)
}

/// A buffer of exactly `len` elements (its capacity may be a larger class, up to twice `len`:
/// it goes back to that class when recycled). Its contents are unspecified (a reused buffer
/// keeps old values): callers overwrite all of it.
pub fn take(len: usize) -> Vec<f32> {
    let Some(class) = size_class(len) else {
        return vec![0.0; len];
    };
    if let Ok(mut guard) = POOL.lock() {
        if let Some(pool) = guard.as_mut() {
            // The request's own class, else the next larger ones up to twice its size: a run
            // of shrinking shapes (inference batches sorted longest first, a last short batch)
            // reuses the buffers of the larger ones instead of faulting in fresh pages.
            let mut c = class;
            while c <= 2 * class {
                if let Some(mut v) = pool.free.get_mut(&c).and_then(Vec::pop) {
                    pool.bytes -= c * 4;
                    v.truncate(len);
                    return v;
                }
                c = size_class(c + 1).unwrap_or(usize::MAX);
            }
        }
    }
    let mut v = vec![0.0; class];
    v.truncate(len);
    v
}

/// Gives a buffer back. Only buffers whose capacity is a size class are kept (those from
/// [`take`], and others that happen to fit one).
pub fn recycle(mut v: Vec<f32>) {
    let cap = v.capacity();
    if size_class(cap) != Some(cap) {
        return;
    }
    if let Ok(mut guard) = POOL.lock() {
        let pool = guard.get_or_insert_with(Pool::default);
        if pool.bytes + cap * 4 <= capacity() {
            pool.bytes += cap * 4;
            // back to its full length (writes only the part past the old length)
            v.resize(cap, 0.0);
            pool.free.entry(cap).or_default().push(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_are_at_most_an_eighth_over_and_stable() {
        assert_eq!(size_class(MIN_POOLED - 1), None);
        for len in (MIN_POOLED..300_000)
            .step_by(37)
            .chain([1 << 20, (1 << 20) + 1])
        {
            let c = size_class(len).unwrap();
            assert!(c >= len && c - len <= len / 8, "{len} -> {c}");
            assert_eq!(size_class(c), Some(c), "a class is its own class: {c}");
            let v = take(len);
            // its own class, or a larger one (at most twice) that another test left in the pool
            assert!(
                v.len() == len && v.capacity() >= c && v.capacity() <= 2 * c,
                "{len}: capacity {}",
                v.capacity()
            );
            recycle(v);
        }
    }

    #[test]
    fn a_smaller_request_reuses_a_larger_buffer_up_to_twice_its_size() {
        // sizes no other test uses, so the shared pool holds nothing else of these classes
        let big = size_class(5_000_011).unwrap();
        let mut v = take(big);
        v[0] = 1.0;
        recycle(v);
        // 3,000,017 rounds to a class more than half of `big`: served by it
        let w = take(3_000_017);
        assert_eq!((w.len(), w.capacity()), (3_000_017, big));
        recycle(w);
        // 2,000,003's class is less than half of `big`: a fresh buffer of its own class
        let x = take(2_000_003);
        assert_eq!(x.capacity(), size_class(2_000_003).unwrap());
        // and the big buffer is still there for a request of its own size
        let y = take(big);
        assert_eq!(y.capacity(), big);
    }
}
