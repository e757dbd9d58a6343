//! Fused attention (best path on this CPU) against the plain f64 reference that materialises
//! the T×T matrices, at BERT-base sizes: batch 8, 12 heads, head dim 64, seq 128 and 512,
//! forward and forward+backward (dropout 0.1, key-padding mask).
//!
//! Before timing it prints the peak extra memory of each: the fused path's `lse` plus per-task
//! tiles (from `attention::scratch_floats`) against the unfused path's `B·H·T·T` matrices
//! (forward: scores and probabilities; backward adds dP and dS).
//!
//! The reference runs at seq 128; at seq 512 (16× the work per iteration: several seconds for a
//! forward, over ten for forward+backward) only when `CLOZE_BENCH_SLOW_REFERENCE=1` is set.
//! Run: `cargo bench --bench attention` (add `CLOZE_BENCH_SLOW_REFERENCE=1` for the full table).

use cloze_kernels::attention::{
    self, reference, AttnGrads, AttnInputs, AttnParams, AttnSaved, AttnShape,
};
use cloze_kernels::dispatch;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

struct Data {
    shape: AttnShape,
    params: AttnParams,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    mask: Vec<f32>,
    dout: Vec<f32>,
}

fn data(t: usize) -> Data {
    let shape = AttnShape {
        batch: 8,
        heads: 12,
        tq: t,
        tk: t,
        d: 64,
    };
    let mut s = 0x1234_5678u64;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let q = (0..shape.q_len()).map(|_| next()).collect();
    let k = (0..shape.kv_len()).map(|_| next()).collect();
    let v = (0..shape.kv_len()).map(|_| next()).collect();
    let dout = (0..shape.q_len()).map(|_| next()).collect();
    // last eighth of each sequence padded
    let mask = (0..shape.mask_len())
        .map(|i| if i % t >= t - t / 8 { -10000.0 } else { 0.0 })
        .collect();
    Data {
        shape,
        params: AttnParams {
            dropout: 0.1,
            seed: 1,
            ..AttnParams::new(64)
        },
        q,
        k,
        v,
        mask,
        dout,
    }
}

fn report_memory(t: usize) {
    let shape = data(1).shape;
    let shape = AttnShape {
        tq: t,
        tk: t,
        ..shape
    };
    let threads = rayon::current_num_threads();
    let (f, b) = attention::scratch_floats(&shape, threads);
    let tt = shape.batch * shape.heads * t * t;
    let mib = |floats: usize| floats as f64 * 4.0 / (1 << 20) as f64;
    eprintln!(
        "seq {t}, {threads} threads: fused extra memory fwd {:.2} MiB, bwd {:.2} MiB; \
         unfused T×T matrices fwd ≥ {:.1} MiB (scores + probs), bwd ≥ {:.1} MiB (+ dP, dS)",
        mib(f),
        mib(b),
        mib(2 * tt),
        mib(4 * tt)
    );
}

/// A forward and a backward (the fused kernel's, or the reference's).
type Forward = fn(&AttnInputs, &mut [f32], &mut [f32]);
type Backward = fn(&AttnInputs, &AttnSaved, AttnGrads);

fn bench(c: &mut Criterion) {
    eprintln!("attention bench on path {}", dispatch::active());
    let slow_ok = std::env::var("CLOZE_BENCH_SLOW_REFERENCE").is_ok_and(|v| v == "1");
    for t in [128usize, 512] {
        report_memory(t);
        let d = data(t);
        let s = d.shape;
        let mut out = vec![0.0f32; s.q_len()];
        let mut lse = vec![0.0f32; s.lse_len()];
        let mut dq = vec![0.0f32; s.q_len()];
        let mut dk = vec![0.0f32; s.kv_len()];
        let mut dv = vec![0.0f32; s.kv_len()];
        let inputs = AttnInputs {
            shape: s,
            params: d.params,
            q: &d.q,
            k: &d.k,
            v: &d.v,
            mask: Some(&d.mask),
        };
        let mut g = c.benchmark_group(format!("attention_b8_h12_d64_t{t}"));
        g.sample_size(10);
        let paths: [(&str, Forward, Backward); 2] = [
            ("fused", attention::forward, attention::backward),
            ("reference", reference::forward, reference::backward),
        ];
        for (name, forward, backward) in paths {
            if name == "reference" && t > 128 && !slow_ok {
                continue;
            }
            g.bench_function(format!("{name}_fwd"), |b| {
                b.iter(|| {
                    forward(&inputs, &mut out, &mut lse);
                    black_box(&out);
                })
            });
            g.bench_function(format!("{name}_fwd_bwd"), |b| {
                b.iter(|| {
                    forward(&inputs, &mut out, &mut lse);
                    let saved = AttnSaved {
                        out: &out,
                        lse: &lse,
                        dout: &d.dout,
                    };
                    let grads = AttnGrads {
                        dq: &mut dq,
                        dk: &mut dk,
                        dv: &mut dv,
                    };
                    backward(&inputs, &saved, grads);
                    black_box((&dq, &dk, &dv));
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
