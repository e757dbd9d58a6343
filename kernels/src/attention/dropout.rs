//! The dropout mask of attention: a counter-based hash of `(seed, flat index)`, shared by the
//! fused kernel, its reference and the engine's unfused op (no mask is stored; the backward
//! pass regenerates it).

/// splitmix64 finaliser.
pub(super) fn splitmix64(mut z: u64) -> u64 {
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

pub(super) fn threshold(p: f32) -> u32 {
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

    /// The arguments of `Simd::dropout_select` for indices sharing the high half of `start`:
    /// `(k0, high half ^ k1, threshold)`.
    pub(crate) fn hash_keys(&self, start: u64) -> (u32, u32, u32) {
        (self.0.k0, (start >> 32) as u32 ^ self.0.k1, self.0.thr)
    }
}
