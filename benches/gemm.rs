//! f32 GEMM throughput (criterion "elem/s" = FLOP/s, 2·m·n·k per product) of cloze-kernels'
//! `Gemm` on the active path, against `matrixmultiply::sgemm` and the `gemm` crate measured in
//! the same run, on 1 and 2 threads (rayon pools; the `gemm` crate gets `Parallelism::Rayon(2)`,
//! `matrixmultiply` is built without its threading feature so it runs only at 1 thread for
//! single products). Batched attention shapes split the batch over the pool for every library.
//!
//! Shapes are m×n×k; `nt` = A·Bᵀ, `tn` = Aᵀ·B: BERT-base's, and the three products of
//! paper-repro's MLM decoder (short k or short n, the small-model regime). Peak reference:
//! `benches/machine_limits.rs`.
//!
//! Also `gemm_bf16`: bf16 A and B (f32 accumulation) at 4096×768×768.
//!
//! Run: `cargo bench --bench gemm` (filter e.g. `-- 4096x768x768`).
//!
//! The peers are called through the safe wrappers in `cloze_kernels::peers` (the `bench`
//! feature of cloze-kernels), so no `unsafe` lives outside kernels/.

use cloze_kernels::gemm::{Gemm, Operand};
use cloze_kernels::peers;
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Duration;

#[derive(Clone, Copy)]
struct Shape {
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
}

impl Shape {
    /// A·B.
    fn nn(m: usize, n: usize, k: usize) -> Shape {
        Shape {
            m,
            n,
            k,
            ta: false,
            tb: false,
        }
    }
    /// A·Bᵀ.
    fn nt(m: usize, n: usize, k: usize) -> Shape {
        Shape {
            ta: false,
            tb: true,
            ..Shape::nn(m, n, k)
        }
    }
    /// Aᵀ·B.
    fn tn(m: usize, n: usize, k: usize) -> Shape {
        Shape {
            ta: true,
            tb: false,
            ..Shape::nn(m, n, k)
        }
    }
    fn label(&self) -> String {
        let t = match (self.ta, self.tb) {
            (false, false) => "",
            (false, true) => "_nt",
            (true, false) => "_tn",
            (true, true) => "_tt",
        };
        format!("{}x{}x{}{t}", self.m, self.n, self.k)
    }
    fn gemm(&self) -> Gemm {
        Gemm::new(self.m, self.n, self.k).transposes(self.ta, self.tb)
    }
}

fn data(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32
                / (1u32 << 24) as f32
                - 0.5
        })
        .collect()
}

fn mm_sgemm(s: &Shape, a: &[f32], b: &[f32], c: &mut [f32]) {
    peers::matrixmultiply_sgemm(s.m, s.n, s.k, s.ta, s.tb, a, b, c)
}

fn gemm_crate(s: &Shape, a: &[f32], b: &[f32], c: &mut [f32], threads: usize) {
    peers::gemm_crate(s.m, s.n, s.k, s.ta, s.tb, a, b, c, threads)
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

/// A benchmark group with the sampling every group here uses.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g
}

fn single(c: &mut Criterion) {
    let shapes = [
        Shape::nn(4096, 768, 768),
        Shape::nn(4096, 3072, 768),
        Shape::nn(4096, 768, 3072),
        Shape::nt(4096, 768, 3072),
        Shape::tn(768, 3072, 4096),
        Shape::nn(1024, 1024, 1024),
        // paper-repro's MLM decoder (832 masked positions, hidden 128, vocabulary 8,192): the
        // logits against the tied embeddings, then the two gradients
        Shape::nt(832, 8192, 128),
        Shape::nn(832, 128, 8192),
        Shape::tn(8192, 128, 832),
    ];
    let mut g = group(c, "gemm");
    for s in shapes {
        let a = data(s.m * s.k, 1);
        let b = data(s.k * s.n, 2);
        let mut out = vec![0.0f32; s.m * s.n];
        g.throughput(Throughput::Elements((2 * s.m * s.n * s.k) as u64));
        for threads in [1usize, 2] {
            let p = pool(threads);
            let id = |lib: &str| BenchmarkId::new(format!("{lib}/t{threads}"), s.label());
            let gm = s.gemm();
            g.bench_function(id("cloze"), |bch| {
                bch.iter(|| p.install(|| gm.run(black_box(&a), black_box(&b), &mut out)))
            });
            if threads == 1 {
                g.bench_function(id("matrixmultiply"), |bch| {
                    bch.iter(|| mm_sgemm(&s, black_box(&a), black_box(&b), &mut out))
                });
            }
            g.bench_function(id("gemm_crate"), |bch| {
                bch.iter(|| {
                    p.install(|| gemm_crate(&s, black_box(&a), black_box(&b), &mut out, threads))
                })
            });
        }
    }
    g.finish();
}

fn batched(c: &mut Criterion) {
    let batch = 96;
    // Q·Kᵀ (scores) and P·V (context) of 96 heads × 128 tokens × 64 dims.
    let shapes = [Shape::nt(128, 128, 64), Shape::nn(128, 64, 128)];
    let mut g = group(c, "gemm_batched96");
    for s in shapes {
        let (sa, sb, sc) = (s.m * s.k, s.k * s.n, s.m * s.n);
        let a = data(batch * sa, 3);
        let b = data(batch * sb, 4);
        let mut out = vec![0.0f32; batch * sc];
        g.throughput(Throughput::Elements((batch * 2 * s.m * s.n * s.k) as u64));
        for threads in [1usize, 2] {
            let p = pool(threads);
            let id = |lib: &str| BenchmarkId::new(format!("{lib}/t{threads}"), s.label());
            let gm = s.gemm();
            g.bench_function(id("cloze"), |bch| {
                bch.iter(|| {
                    p.install(|| {
                        gm.run_batched(batch, black_box(&a), sa, black_box(&b), sb, &mut out, sc)
                    })
                })
            });
            g.bench_function(id("matrixmultiply"), |bch| {
                bch.iter(|| {
                    p.install(|| {
                        out.par_chunks_mut(sc).enumerate().for_each(|(i, ci)| {
                            mm_sgemm(&s, &a[i * sa..][..sa], &b[i * sb..][..sb], ci)
                        })
                    })
                })
            });
            g.bench_function(id("gemm_crate"), |bch| {
                bch.iter(|| {
                    p.install(|| {
                        out.par_chunks_mut(sc).enumerate().for_each(|(i, ci)| {
                            gemm_crate(&s, &a[i * sa..][..sa], &b[i * sb..][..sb], ci, 1)
                        })
                    })
                })
            });
        }
    }
    g.finish();
}

fn bf16(c: &mut Criterion) {
    // bf16 A and B, f32 accumulation (vdpbf16ps where the CPU has AVX512-BF16).
    let s = Shape::nn(4096, 768, 768);
    let a: Vec<half::bf16> = data(s.m * s.k, 5)
        .into_iter()
        .map(half::bf16::from_f32)
        .collect();
    let b: Vec<half::bf16> = data(s.k * s.n, 6)
        .into_iter()
        .map(half::bf16::from_f32)
        .collect();
    let mut out = vec![0.0f32; s.m * s.n];
    let mut g = group(c, "gemm_bf16");
    g.throughput(Throughput::Elements((2 * s.m * s.n * s.k) as u64));
    for threads in [1usize, 2] {
        let p = pool(threads);
        let gm = s.gemm();
        g.bench_function(
            BenchmarkId::new(format!("cloze/t{threads}"), s.label()),
            |bch| {
                bch.iter(|| {
                    p.install(|| {
                        gm.run_mixed(
                            Operand::Bf16(black_box(&a)),
                            Operand::Bf16(black_box(&b)),
                            &mut out,
                        )
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, single, batched, bf16);
criterion_main!(benches);
