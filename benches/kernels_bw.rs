//! Memory bandwidth of the element-wise and row kernels, in bytes actually read + written per
//! second, beside a plain copy moving the same number of bytes (half read, half written): with
//! ordinary stores (`copy_1t`, `copy_from_slice`: each destination line is also read for
//! ownership) and with streaming stores (`copy_stream_1t`), the fair reference for kernels whose
//! output is large enough to be streamed (`simd::stream_output`).
//!
//! Arrays are far larger than L2 (1 MiB per core) and, but for the `_cached` cross-entropy group
//! (just under L3), together larger than L3, so these are memory-bound numbers. Each kernel runs on the scalar reference and on the active path (the best this CPU
//! has, or the one `CLOZE_KERNEL` names: `CLOZE_KERNEL=avx2` measures AVX2 on an AVX-512 CPU), on 1 thread (a 1-thread rayon pool) and on the default pool.
//!
//! `cargo bench --bench kernels_bw` (filter e.g. `-- gelu_fwd`).

use cloze_kernels::dispatch::{self, Isa};
use cloze_kernels::gelu::{self, GeluKind};
use cloze_kernels::{adamw, cross_entropy, layer_norm, simd};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

/// Elements per array for the element-wise kernels: 32 MiB of f32.
const N: usize = 8 << 20;
/// LayerNorm rows of BERT-base's hidden size.
const LN_COLS: usize = 768;
/// Cross-entropy rows over BERT's vocabulary: 256 rows (62.5 MB read and written, so the
/// gradient is streamed) and, in `softmax_cross_entropy_30522_cached`, the largest row count
/// whose gradient is written with ordinary stores (still far larger than L2).
const VOCAB: usize = 30522;
const CE_ROWS: usize = 256;

fn data(n: usize, seed: u32) -> Vec<f32> {
    // A cheap deterministic spread over [-4, 4).
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 8.0 - 4.0
        })
        .collect()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

/// The variants each kernel is measured in: (label, path, pool; `None` = the default pool).
fn variants() -> Vec<(String, Isa, Option<rayon::ThreadPool>)> {
    let best = dispatch::active();
    vec![
        ("scalar_1t".to_string(), Isa::Scalar, Some(pool(1))),
        (format!("{best}_1t"), best, Some(pool(1))),
        (format!("{best}_all"), best, None),
    ]
}

/// A copy of `bytes / 2` bytes (so `bytes` move in all), on 1 thread, with ordinary and with
/// streaming stores.
fn copy_baseline(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, bytes: usize) {
    let n = bytes / 2 / 4;
    let src = data(n, 99);
    let mut dst = vec![0.0f32; n];
    g.throughput(Throughput::Bytes((2 * n * 4) as u64));
    g.bench_function("copy_1t", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });
    g.bench_function("copy_stream_1t", |b| {
        b.iter(|| {
            simd::stream_copy(black_box(&src), &mut dst);
            black_box(&mut dst);
        })
    });
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g
}

/// Runs `f` in `p`, or in the default pool when `p` is `None`.
fn run_in<R: Send>(p: &Option<rayon::ThreadPool>, f: impl FnOnce() -> R + Send) -> R {
    match p {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// The group `name`: the copy baseline moving `bytes`, then `kernel` on each path and pool
/// of [`variants`], with the throughput counted as `bytes` read and written.
fn bench_kernel<R: Send>(
    c: &mut Criterion,
    name: &str,
    bytes: usize,
    mut kernel: impl FnMut(Isa) -> R + Send,
) {
    let mut g = group(c, name);
    copy_baseline(&mut g, bytes);
    g.throughput(Throughput::Bytes(bytes as u64));
    for (label, isa, p) in variants() {
        g.bench_function(&label, |b| b.iter(|| black_box(run_in(&p, || kernel(isa)))));
    }
    g.finish();
}

fn bench_gelu(c: &mut Criterion) {
    let x = data(N, 1);
    let dy = data(N, 2);
    let mut y = vec![0.0f32; N];
    bench_kernel(c, "gelu_fwd", 8 * N, |isa| {
        gelu::forward_with(isa, GeluKind::Erf, &x, &mut y)
    });
    bench_kernel(c, "gelu_bwd", 12 * N, |isa| {
        gelu::backward_with(isa, GeluKind::Erf, &x, &dy, &mut y)
    });
}

fn bench_layer_norm(c: &mut Criterion) {
    let rows = N / LN_COLS;
    let n = rows * LN_COLS;
    let x = data(n, 3);
    let dy = data(n, 4);
    let gamma = data(LN_COLS, 5);
    let beta = data(LN_COLS, 6);
    let (mut y, mut dx) = (vec![0.0f32; n], vec![0.0f32; n]);
    let (mut mean, mut rstd) = (vec![0.0f32; rows], vec![0.0f32; rows]);
    let (mut dg, mut db) = (vec![0.0f32; LN_COLS], vec![0.0f32; LN_COLS]);
    // Forward: x in, y out, mean/rstd out; backward: dy, x in, dx out (mean/rstd in).
    let bytes = 4 * (2 * n + 2 * rows) + 4 * (3 * n + 2 * rows);
    bench_kernel(c, "layernorm_fwd_bwd", bytes, |isa| {
        layer_norm::forward_with(isa, &x, &gamma, &beta, 1e-12, &mut y, &mut mean, &mut rstd);
        layer_norm::backward_with(
            isa, &dy, &x, &gamma, &mean, &rstd, &mut dx, &mut dg, &mut db,
        );
    });
}

fn bench_cross_entropy(c: &mut Criterion) {
    // The last row count whose call stays under the streaming threshold (ordinary stores).
    let cached_rows = (simd::STREAM_MIN_BYTES / 8 - 1) / VOCAB;
    assert!(!simd::stream_output(
        cached_rows * VOCAB,
        cached_rows * VOCAB
    ));
    for (name, rows) in [
        ("softmax_cross_entropy_30522", CE_ROWS),
        ("softmax_cross_entropy_30522_cached", cached_rows),
    ] {
        let n = rows * VOCAB;
        let logits: Vec<f32> = data(n, 7).into_iter().map(|v| v * 2.0).collect();
        let labels: Vec<i32> = (0..rows as i32)
            .map(|r| {
                if r % 7 == 3 {
                    -100
                } else {
                    (r * 997) % VOCAB as i32
                }
            })
            .collect();
        let mut d = vec![0.0f32; n];
        // Logits read, gradient written.
        bench_kernel(c, name, 8 * n, |isa| {
            cross_entropy::cross_entropy_with(isa, &logits, VOCAB, &labels, -100, Some(&mut d))
        });
    }
}

fn bench_adamw(c: &mut Criterion) {
    let h = adamw::AdamW {
        lr: 1e-4,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-6,
        weight_decay: 0.01,
        bias_correction: false,
    };
    let grad = data(N, 8);
    let mut param = data(N, 9);
    let mut m = vec![0.0f32; N];
    let mut v = vec![0.0f32; N];
    // p, grad, m, v read; p, m, v written.
    bench_kernel(c, "adamw", 28 * N, |isa| {
        adamw::step_with(isa, &h, 10, &mut param, &grad, &mut m, &mut v)
    });
}

criterion_group!(
    benches,
    bench_gelu,
    bench_layer_norm,
    bench_cross_entropy,
    bench_adamw
);
criterion_main!(benches);
