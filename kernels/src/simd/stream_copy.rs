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
