//! `stream_copy` (feature `bench`): the memory-bound reference of the benches.

use super::{dispatch, map1, Kernel, Map1, Simd};

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
