//! The FMA peak of one core on the selected kernel path (`CLOZE_KERNEL`, or the best the CPU
//! has among AVX-512 and AVX2), measured the way `benches/machine_limits.rs` measures it:
//! independent accumulator chains, best of several timed runs. Prints one JSON line.
//!
//! benches/train_step.sh runs it in the same session as the training steps, so the step rows
//! can be read as a fraction of this machine's peak at that moment (a shared host's peak
//! drops when a neighbour is busy).
//!
//! cargo run --release --example fma_peak

use cloze_kernels::gemm::limits;
use std::time::Instant;

fn main() {
    let isa = match cloze::kernels::dispatch::select_from_env() {
        Ok(isa) => isa,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    type PeakLoop = fn(usize) -> Option<f32>;
    type Flops = fn(usize) -> u64;
    let (name, run, flops): (_, PeakLoop, Flops) = match isa.name() {
        "avx512" => ("avx512", limits::fma_peak_avx512, limits::flops_avx512),
        "avx2" => ("avx2", limits::fma_peak_avx2, limits::flops_avx2),
        other => {
            eprintln!("no FMA peak loop for kernel path {other} (only avx512 and avx2)");
            std::process::exit(2);
        }
    };
    let iters = 1 << 22;
    let mut best = f64::INFINITY;
    let mut sink = 0.0f32;
    for _ in 0..15 {
        let t0 = Instant::now();
        sink += run(std::hint::black_box(iters)).unwrap_or(0.0);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        serde_json::json!({
            "impl": "fma-peak", "isa": name,
            "gflops_per_core": flops(iters) as f64 / best / 1e9,
            "sink": sink,
        })
    );
}
