//! `cloze embed`: sentence embeddings (mean pooling + L2 normalisation, as sentence-transformers
//! computes them) of JSON-lines input, written as safetensors.

use clap::Parser;
use cloze::bert::embed::Embedder;
use safetensors::tensor::{Dtype, TensorView};
use serde::Deserialize;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `cloze embed`.
#[derive(Parser, Debug)]
pub struct Args {
    /// HF-format model folder: config.json, model.safetensors, vocab.txt.
    #[arg(long)]
    model: PathBuf,
    /// JSON lines {"text": ..., "text_pair": ... (optional)}; `-` reads standard input.
    #[arg(long)]
    input: String,
    /// Output safetensors: `embedding.<i>` [H] for input line i (0-based, blank lines skipped),
    /// and with --hidden-states also `last_hidden_state.<i>` [T_i, H].
    #[arg(long)]
    output: PathBuf,
    /// Also write every input's last hidden states.
    #[arg(long)]
    hidden_states: bool,
    /// Truncate each input to this many tokens ([CLS]/[SEP] included).
    #[arg(long)]
    max_length: Option<usize>,
    /// Inputs per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

#[derive(Deserialize)]
struct Line {
    text: String,
    #[serde(default)]
    text_pair: Option<String>,
}

fn read_lines(input: &str) -> Result<Vec<Line>, String> {
    let reader: Box<dyn BufRead> = if input == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(input).map_err(|e| format!("{input}: {e}"))?,
        ))
    };
    let mut out = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{input}: line {}: {e}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| format!("{input}: line {}: {e}", n + 1))?);
    }
    Ok(out)
}

pub fn run(args: Args) -> Result<(), String> {
    if args.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    let lines = read_lines(&args.input)?;
    if lines.is_empty() {
        return Err(format!("{}: no input lines", args.input));
    }
    let emb = Embedder::load(&args.model).map_err(|e| e.to_string())?;
    let bar = if lines.len() > args.batch_size {
        indicatif::ProgressBar::new(lines.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let start = Instant::now();
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (k, chunk) in lines.chunks(args.batch_size).enumerate() {
        let texts: Vec<(&str, Option<&str>)> = chunk
            .iter()
            .map(|l| (l.text.as_str(), l.text_pair.as_deref()))
            .collect();
        let out = emb.embed_batch(&texts, args.max_length).map_err(|e| {
            format!(
                "inputs {}..{}: {e}",
                k * args.batch_size,
                k * args.batch_size + chunk.len()
            )
        })?;
        for (j, o) in out.into_iter().enumerate() {
            let i = k * args.batch_size + j;
            let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            tensors.push((
                format!("embedding.{i}"),
                bytes(&o.embedding),
                vec![o.embedding.len()],
            ));
            if args.hidden_states {
                tensors.push((
                    format!("last_hidden_state.{i}"),
                    bytes(o.last_hidden_state.data()),
                    o.last_hidden_state.shape().to_vec(),
                ));
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, b, s)| {
            Ok((
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).map_err(|e| e.to_string())?,
            ))
        })
        .collect::<Result<_, String>>()?;
    let bytes = safetensors::serialize(views, None).map_err(|e| e.to_string())?;
    cloze::train::checkpoint::write_atomic(&args.output, &bytes).map_err(|e| e.to_string())?;
    eprintln!(
        "embedded {} inputs in {secs:.2} s ({:.1} sentences/s, {} thread(s)) -> {}",
        lines.len(),
        lines.len() as f64 / secs,
        rayon::current_num_threads(),
        args.output.display()
    );
    Ok(())
}
