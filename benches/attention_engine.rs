//! The engine's attention op, fused (`Tape::attention`, the flash-style kernel) against the
//! unfused path (`Tape::attention_unfused`: batched GEMMs + softmax with the `[B, H, T, T]`
//! probabilities kept for the backward), forward + backward at BERT-base sizes: batch 8,
//! 12 heads, head dim 64, seq 128 and 512, dropout 0.1, key-padding mask.
//!
//! Run: `cargo bench --bench attention_engine`.

use cloze::ops::attention::AttentionOptions;
use cloze::{Tape, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    for t in [128usize, 512] {
        let (b, h, d) = (8, 12, 64);
        let val =
            |salt: usize| move |i: usize| ((i * 2654435761 + salt) % 1000) as f32 / 500.0 - 1.0;
        let q = Tensor::from_fn(&[b, h, t, d], val(1));
        let k = Tensor::from_fn(&[b, h, t, d], val(2));
        let v = Tensor::from_fn(&[b, h, t, d], val(3));
        let r = Tensor::from_fn(&[b, h, t, d], val(4));
        let mask = Tensor::from_fn(&[b, t], |i| if i % t >= t - t / 8 { -10000.0 } else { 0.0 });
        let opts = AttentionOptions {
            mask: Some(mask),
            dropout: 0.1,
            seed: 1,
            ..AttentionOptions::new(d)
        };
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
                    let (qv, kv, vv) = (
                        tape.leaf(q.clone()),
                        tape.leaf(k.clone()),
                        tape.leaf(v.clone()),
                    );
                    let out = if fused {
                        tape.attention(&qv, &kv, &vv, &opts)
                    } else {
                        tape.attention_unfused(&qv, &kv, &vv, &opts)
                    }
                    .unwrap();
                    black_box(tape.backward_with(&out, r.clone()).unwrap());
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
