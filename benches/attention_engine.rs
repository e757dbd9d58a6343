//! The engine's attention op, fused (`Tape::attention`, the flash-style kernel) against the
//! unfused path (`Tape::attention_unfused`: batched GEMMs + softmax with the `[B, H, T, T]`
//! probabilities kept for the backward), forward + backward at BERT-base sizes: batch 8,
//! 12 heads, head dim 64, seq 128 and 512, dropout 0.1, key-padding mask.
//!
//! Run: `cargo bench --bench attention_engine`.

#[path = "common/engine_attention.rs"]
mod engine_attention;

use cloze::Tape;
use criterion::{criterion_group, criterion_main, Criterion};
use engine_attention::{forward_backward, Workload};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    for t in [128usize, 512] {
        let w = Workload::new(t);
        let mut g = c.benchmark_group(format!("attention_engine_b8_h12_d64_t{t}"));
        g.sample_size(10);
        for fused in [true, false] {
            let name = if fused {
                "fused_fwd_bwd"
            } else {
                "unfused_fwd_bwd"
            };
            g.bench_function(name, |bch| {
                let mut tape = Tape::new();
                bch.iter(|| {
                    tape.reset();
                    let inputs = [w.q.clone(), w.k.clone(), w.v.clone(), w.r.clone()];
                    black_box(forward_backward(&mut tape, inputs, &w.opts, fused).unwrap());
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
