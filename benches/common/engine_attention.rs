//! The engine attention workload that `benches/attention_engine.rs` times and
//! `examples/attention_memory.rs` measures: one forward + backward at BERT-base sizes (batch 8,
//! 12 heads, head dim 64), dropout 0.1, the last eighth of each sequence masked out.

use cloze::ops::attention::AttentionOptions;
use cloze::{Gradients, Tape, Tensor};

/// Batch, heads and head dimension.
pub const B_H_D: (usize, usize, usize) = (8, 12, 64);

/// The inputs at sequence length `t`: `q`, `k`, `v`, the gradient `r` fed to the backward, and
/// the options.
pub struct Workload {
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
    pub r: Tensor,
    pub opts: AttentionOptions,
}

impl Workload {
    pub fn new(t: usize) -> Workload {
        let (b, h, d) = B_H_D;
        let val =
            |salt: usize| move |i: usize| ((i * 2654435761 + salt) % 1000) as f32 / 500.0 - 1.0;
        let mask = Tensor::from_fn(&[b, t], |i| if i % t >= t - t / 8 { -10000.0 } else { 0.0 });
        Workload {
            q: Tensor::from_fn(&[b, h, t, d], val(1)),
            k: Tensor::from_fn(&[b, h, t, d], val(2)),
            v: Tensor::from_fn(&[b, h, t, d], val(3)),
            r: Tensor::from_fn(&[b, h, t, d], val(4)),
            opts: AttentionOptions {
                mask: Some(mask),
                dropout: 0.1,
                seed: 1,
                ..AttentionOptions::new(d)
            },
        }
    }
}

/// The forward through the fused op (`Tape::attention`) or the unfused one, then the backward
/// from `r`, on `tape` with the inputs as its leaves.
pub fn forward_backward(
    tape: &mut Tape,
    [q, k, v, r]: [Tensor; 4],
    opts: &AttentionOptions,
    fused: bool,
) -> cloze::Result<Gradients> {
    let (qv, kv, vv) = (tape.leaf(q), tape.leaf(k), tape.leaf(v));
    let out = if fused {
        tape.attention(&qv, &kv, &vv, opts)
    } else {
        tape.attention_unfused(&qv, &kv, &vv, opts)
    }?;
    tape.backward_with(&out, r)
}
