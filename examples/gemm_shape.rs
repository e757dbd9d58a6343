//! Times one GEMM shape on the active kernel path and prints one JSON line (best and median
//! GFLOP/s over the repetitions). Meant for paired old-vs-new runs of kernel changes
//! (`benches/ab.sh`), where whole processes alternate; the criterion benches cover the
//! shapes against the peer libraries.
//!
//! cargo run --release --example gemm_shape -- OP M N K [REPS] [BATCH]
//!   OP: nn (A·B), nt (A·Bᵀ), tn (Aᵀ·B) or tt; sizes m×n×k of the product
//!   REPS: timed repetitions (default 20; one untimed warm-up first)
//!   BATCH: a strided batch of that many products (attention's per-head products), default 1
//!
//! Threads: RAYON_NUM_THREADS; kernel path: CLOZE_KERNEL.

use cloze::kernels::gemm::Gemm;
use std::process::exit;
use std::time::Instant;

fn usage(msg: &str) -> ! {
    eprintln!("{msg}\nusage: gemm_shape OP M N K [REPS] [BATCH]   (OP: nn, nt, tn or tt)");
    exit(2)
}

fn arg(args: &[String], i: usize, name: &str, default: Option<usize>) -> usize {
    match args.get(i) {
        None => default.unwrap_or_else(|| usage(&format!("missing {name}"))),
        Some(s) => match s.parse::<usize>() {
            Ok(v) if v > 0 && v <= 1 << 16 => v,
            _ => usage(&format!(
                "{name} must be an integer in 1..=65536, got {s:?}"
            )),
        },
    }
}

fn main() {
    if let Err(msg) = cloze::kernels::dispatch::select_from_env() {
        eprintln!("{msg}");
        exit(2);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let op = args.first().map(String::as_str).unwrap_or("");
    let (ta, tb) = match op {
        "nn" => (false, false),
        "nt" => (false, true),
        "tn" => (true, false),
        "tt" => (true, true),
        _ => usage(&format!("OP must be nn, nt, tn or tt, got {op:?}")),
    };
    let (m, n, k) = (
        arg(&args, 1, "M", None),
        arg(&args, 2, "N", None),
        arg(&args, 3, "K", None),
    );
    let reps = arg(&args, 4, "REPS", Some(20));
    let batch = arg(&args, 5, "BATCH", Some(1));
    let elems = [m * k, k * n, m * n].map(|e| e * batch);
    if elems.iter().any(|&e| e > 1 << 30) {
        usage(&format!(
            "{m}×{n}×{k} × batch {batch} needs more than 2^30 elements per operand"
        ));
    }
    let g = Gemm::new(m, n, k).transposes(ta, tb);
    // Deterministic operands in [-1, 1).
    let fill = |len: usize, seed: u32| -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    };
    let (a, b) = (fill(elems[0], 1), fill(elems[1], 2));
    let mut c = vec![0.0f32; elems[2]];
    let (sa, sb, sc) = (m * k, k * n, m * n);
    let once = |c: &mut [f32]| {
        if batch == 1 {
            g.run(&a, &b, c)
        } else {
            g.run_batched(batch, &a, sa, &b, sb, c, sc)
        }
    };
    once(&mut c);
    let mut secs: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            once(&mut c);
            t.elapsed().as_secs_f64()
        })
        .collect();
    secs.sort_by(f64::total_cmp);
    let flop = 2.0 * (m * n * k * batch) as f64;
    let gflops = |s: f64| flop / s / 1e9;
    let checksum: f64 = c.iter().map(|&x| x as f64).sum();
    println!(
        "{{\"op\":\"{op}\",\"m\":{m},\"n\":{n},\"k\":{k},\"batch\":{batch},\"isa\":\"{}\",\"threads\":{},\"reps\":{reps},\"gflops_best\":{:.2},\"gflops_median\":{:.2},\"checksum\":{checksum:.6e}}}",
        cloze::kernels::dispatch::active(),
        rayon::current_num_threads(),
        gflops(secs[0]),
        gflops(secs[secs.len() / 2]),
    );
}
