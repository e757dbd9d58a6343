//! One full pre-training step (forward, backward, AdamW) of BertForPreTraining on synthetic
//! data, timed: prints one JSON line with ms/step, tokens/s and the process's peak memory.
//!
//! cargo run --release --example train_step -- CONFIG BATCH [STEPS] [PRECISION]
//!   CONFIG: tiny (L2 H128 A2), mini (L4 H256 A4) or base (L12 H768 A12), each at vocabulary
//!           30,522, sequence 128, 20 masked positions per sequence, dropout 0.1 (BERT's);
//!           or repro: paper-repro's pre-training shape (L2 H128 A2, vocabulary 8,192,
//!           sequence 64, 26 masked positions per sequence, dropout 0)
//!   BATCH:  sequences per step
//!   PRECISION: f32 (default) or bf16 (matrix-product operands in bf16, f32 accumulation)
//!
//! The MLM head runs on the masked positions only (as the reference implementation gathers
//! them). Used by benches/train_step.sh, which runs PyTorch on the same
//! configs in the same session.

use cloze::bert::model::{BertForPreTraining, BertInput, ForwardOptions};
use cloze::bert::BertConfig;
use cloze::optim::adamw::bert_decays;
use cloze::optim::{AdamW, AdamWConfig};
use cloze::{ParamStore, Tape};
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() -> cloze::Result<()> {
    if let Err(msg) = cloze::kernels::dispatch::select_from_env() {
        eprintln!("{msg}");
        std::process::exit(2);
    }
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(String::as_str).unwrap_or("mini");
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let steps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let precision = match args.get(4).map(String::as_str) {
        None | Some("f32") => cloze::Precision::F32,
        Some("bf16") => cloze::Precision::Bf16,
        Some(other) => {
            eprintln!("PRECISION must be f32 or bf16, got {other:?}");
            std::process::exit(2);
        }
    };
    let (cfg, seq, per_seq) = if name == "repro" {
        let mut cfg = BertConfig::tiny();
        cfg.vocab_size = 8192;
        cfg.hidden_dropout_prob = 0.0;
        cfg.attention_probs_dropout_prob = 0.0;
        (cfg, 64, 26)
    } else {
        (BertConfig::preset(name)?, 128, 20)
    };
    let mut store = ParamStore::new();
    let model = BertForPreTraining::new(&cfg, &mut store, 1)?;
    let mut opt = AdamW::new(AdamWConfig::bert(), &store, bert_decays)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let ids: Vec<u32> = (0..batch * seq)
        .map(|_| rng.random_range(1000..cfg.vocab_size as u32))
        .collect();
    let types: Vec<u32> = (0..batch * seq)
        .map(|i| u32::from(i % seq >= seq / 2))
        .collect();
    let mask = vec![1u32; batch * seq];
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for b in 0..batch {
        for j in 0..per_seq {
            let p = 1 + j * (seq - 2) / per_seq;
            rows.push((b * seq + p) as u32);
            labels.push(ids[b * seq + p] as i32);
        }
    }
    let nsp: Vec<i32> = (0..batch).map(|b| (b % 2) as i32).collect();
    let mut tape = Tape::new();
    tape.set_precision(precision);
    let mut times = Vec::new();
    for step in 0..=steps {
        let t0 = Instant::now();
        tape.reset();
        store.zero_grads();
        let input = BertInput::new(&ids, batch, seq)
            .with_token_types(&types)
            .with_attention_mask(&mask);
        let out = model.forward(
            &mut tape,
            &store,
            &input,
            &rows,
            &ForwardOptions {
                seed: step as u64,
                output_hidden_states: false,
            },
        )?;
        let loss = model.loss(&mut tape, &out, &labels, &nsp)?;
        let grads = tape.backward(&loss)?;
        store.accumulate(&grads)?;
        store.clip_grad_norm(1.0)?;
        opt.step(&mut store, 1e-4)?;
        if step > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = times[times.len() / 2];
    println!(
        "{}",
        serde_json::json!({
            "impl": "cloze", "isa": cloze::kernels::dispatch::active().name(), "config": name, "precision": serde_json::to_value(precision).unwrap_or_default(), "batch": batch, "seq": seq,
            "threads": rayon::current_num_threads(),
            "ms_per_step": median * 1e3, "tokens_per_s": (batch * seq) as f64 / median,
            "peak_rss_mib": peak_rss_mib(), "steps_timed": times.len(),
        })
    );
    Ok(())
}
