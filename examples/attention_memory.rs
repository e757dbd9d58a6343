//! Peak memory of one attention forward + backward through the engine, fused
//! (`Tape::attention`) or unfused (`Tape::attention_unfused`), at BERT-base sizes (batch 8,
//! 12 heads, head dim 64, dropout 0.1, key-padding mask), measured as the growth of the
//! process's peak resident set (Linux `VmHWM`, reset through `/proc/self/clear_refs` just
//! before the call) over its resident set with the inputs built.
//!
//! The figure includes everything the call keeps or touches: the output, `dq`, `dk`, `dv`
//! (3 × B·H·T·d floats, the same for both paths), the fused kernel's tiles and log-sum-exp, or
//! the unfused path's `B·H·T·T` scores, probabilities and their gradients. Run one process per
//! measurement (buffers freed by an earlier call would be reused and hide the growth):
//!
//! `cargo run --release --example attention_memory -- fused 512`
//!
//! Prints one JSON line: `{"impl", "seq", "threads", "peak_extra_mib", "outputs_mib"}`, where
//! `outputs_mib` is what any implementation must hold: the output and the three input gradients.

#[path = "../benches/common/engine_attention.rs"]
mod engine_attention;

use cloze::Tape;
use engine_attention::{forward_backward, Workload, B_H_D};
use std::hint::black_box;

fn status_kib(field: &str) -> Result<u64, String> {
    let s = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    s.lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("no {field} line in /proc/self/status"))
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: attention_memory fused|unfused SEQ";
    let (fused, t) = match args.as_slice() {
        [which, seq] => {
            let fused = match which.as_str() {
                "fused" => true,
                "unfused" => false,
                other => return Err(format!("unknown path {other:?}; {usage}")),
            };
            let t: usize =
                seq.parse().ok().filter(|&t| t > 0).ok_or_else(|| {
                    format!("SEQ must be a positive integer, got {seq:?}; {usage}")
                })?;
            (fused, t)
        }
        _ => return Err(usage.to_string()),
    };
    let (b, h, d) = B_H_D;
    let Workload { q, k, v, r, opts } = Workload::new(t);
    // Start the thread pool (its stacks) before the baseline.
    rayon::join(|| (), || ());
    let mut tape = Tape::new();
    let base = status_kib("VmRSS:")?;
    std::fs::write("/proc/self/clear_refs", "5")
        .map_err(|e| format!("cannot reset the peak RSS (/proc/self/clear_refs): {e}"))?;
    let grads =
        forward_backward(&mut tape, [q, k, v, r], &opts, fused).map_err(|e| e.to_string())?;
    let peak = status_kib("VmHWM:")?;
    black_box(&grads);
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "{{\"impl\": \"{}\", \"seq\": {t}, \"threads\": {}, \"peak_extra_mib\": {:.1}, \"outputs_mib\": {:.1}}}",
        if fused { "fused" } else { "unfused" },
        rayon::current_num_threads(),
        mib(peak.saturating_sub(base)),
        (4 * b * h * t * d * 4) as f64 / (1 << 20) as f64,
    );
    Ok(())
}
