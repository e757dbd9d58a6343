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

use cloze::ops::attention::AttentionOptions;
use cloze::{Tape, Tensor};
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
    let (b, h, d) = (8, 12, 64);
    let val = |salt: usize| move |i: usize| ((i * 2654435761 + salt) % 1000) as f32 / 500.0 - 1.0;
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
    // Start the thread pool (its stacks) before the baseline.
    rayon::join(|| (), || ());
    let mut tape = Tape::new();
    let base = status_kib("VmRSS:")?;
    std::fs::write("/proc/self/clear_refs", "5")
        .map_err(|e| format!("cannot reset the peak RSS (/proc/self/clear_refs): {e}"))?;
    let (qv, kv, vv) = (tape.leaf(q), tape.leaf(k), tape.leaf(v));
    let out = if fused {
        tape.attention(&qv, &kv, &vv, &opts)
    } else {
        tape.attention_unfused(&qv, &kv, &vv, &opts)
    }
    .map_err(|e| e.to_string())?;
    let grads = tape.backward_with(&out, r).map_err(|e| e.to_string())?;
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
