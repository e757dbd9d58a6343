//! Machine limits the GEMM is judged against, measured in the same conditions as the GEMM bench:
//! - FMA peak of one core (criterion "elem/s" = FLOP/s) for AVX-512 and AVX2, with
//!   `cloze_kernels::gemm::limits::FMA_CHAINS` independent accumulator chains (the `bench`
//!   feature of cloze-kernels);
//! - memory copy bandwidth ("bytes/s" counts bytes read + written) of a 64 MiB buffer (far
//!   beyond L3) on 1 and 2 threads.
//!
//! Run: `cargo bench --bench machine_limits`.

use cloze_kernels::gemm::limits;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Duration;

fn fma_peak(c: &mut Criterion) {
    let iters = 1 << 16;
    let mut g = c.benchmark_group("fma_peak_1core");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    if limits::fma_peak_avx512(1).is_some() {
        g.throughput(Throughput::Elements(limits::flops_avx512(iters)));
        g.bench_function("avx512", |b| {
            b.iter(|| limits::fma_peak_avx512(black_box(iters)))
        });
    }
    if limits::fma_peak_avx2(1).is_some() {
        g.throughput(Throughput::Elements(limits::flops_avx2(iters)));
        g.bench_function("avx2", |b| {
            b.iter(|| limits::fma_peak_avx2(black_box(iters)))
        });
    }
    g.finish();
}

fn copy_bandwidth(c: &mut Criterion) {
    let len = 16 << 20; // f32s: 64 MiB
    let src: Vec<f32> = (0..len).map(|i| i as f32).collect();
    let mut dst = vec![0.0f32; len];
    let mut g = c.benchmark_group("memcpy_64MiB");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Bytes((2 * 4 * len) as u64));
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        let chunk = len / threads;
        g.bench_function(format!("t{threads}"), |b| {
            b.iter(|| {
                pool.install(|| {
                    dst.par_chunks_mut(chunk)
                        .zip(src.par_chunks(chunk))
                        .for_each(|(d, s)| d.copy_from_slice(black_box(s)))
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, fma_peak, copy_bandwidth);
criterion_main!(benches);
