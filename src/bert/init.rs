//! Initialisation and seed derivation.
//!
//! Every parameter draws from its own ChaCha8 stream seeded by the model seed mixed with a hash
//! of the parameter's name, so a parameter's initial value does not depend on which other
//! parameters (heads, layers) were built before it. Dropout seeds are derived the same way
//! from a per-step seed, the layer index and the dropout site.

use crate::error::Result;
use crate::tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64 finaliser: a bijective 64-bit mix with good avalanche.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over the bytes of a name (stable across platforms and Rust versions).
pub fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The seed of one parameter's initialiser stream.
pub fn param_seed(model_seed: u64, name: &str) -> u64 {
    mix64(mix64(model_seed) ^ name_hash(name))
}

/// Where a dropout sits; part of its seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum DropoutSite {
    /// After the embedding LayerNorm.
    Embeddings = 1,
    /// On the attention probabilities.
    AttentionProbs = 2,
    /// After the attention output dense.
    AttentionOutput = 3,
    /// After the FFN output dense.
    FfnOutput = 4,
    /// Before the sequence classifier.
    Classifier = 5,
}

/// The seed of one dropout mask: a deterministic function of the step seed, the layer
/// (0 for sites outside the encoder layers) and the site. Different (layer, site) pairs give
/// unrelated masks; the same triple always gives the same mask.
pub fn dropout_seed(step_seed: u64, layer: usize, site: DropoutSite) -> u64 {
    mix64(mix64(step_seed) ^ mix64(((layer as u64) << 8) | site as u64))
}

/// Truncated normal (redrawn beyond 2σ, as TF's `truncated_normal_initializer`) with
/// σ = `std`, from the parameter's own stream.
pub fn trunc_normal(shape: &[usize], std: f32, model_seed: u64, name: &str) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(param_seed(model_seed, name));
    Tensor::trunc_normal(shape, std, &mut rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_seeds_differ_by_layer_and_site() {
        let a = dropout_seed(7, 0, DropoutSite::AttentionProbs);
        let b = dropout_seed(7, 1, DropoutSite::AttentionProbs);
        let c = dropout_seed(7, 0, DropoutSite::FfnOutput);
        let d = dropout_seed(8, 0, DropoutSite::AttentionProbs);
        assert!(a != b && a != c && a != d && b != c);
        assert_eq!(a, dropout_seed(7, 0, DropoutSite::AttentionProbs));
    }

    #[test]
    fn param_streams_depend_on_name_and_seed() {
        let a = trunc_normal(&[16], 0.02, 1, "x.weight").unwrap();
        let b = trunc_normal(&[16], 0.02, 1, "y.weight").unwrap();
        let c = trunc_normal(&[16], 0.02, 2, "x.weight").unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, trunc_normal(&[16], 0.02, 1, "x.weight").unwrap());
    }
}
