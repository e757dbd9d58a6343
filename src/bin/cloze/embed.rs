//! `cloze embed`: sentence embeddings (mean pooling + L2 normalisation, as sentence-transformers
//! computes them) of JSON-lines input, written as safetensors.

use crate::input::Line;
use clap::Parser;
use cloze::bert::embed::Embedder;
use safetensors::tensor::{Dtype, TensorView};
use std::io::BufRead;
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

fn read_lines(input: &str) -> Result<Vec<Line>, String> {
    let (reader, name) = crate::input::open(input)?;
    let mut out = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{name}: line {}: {e}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| format!("{name}: line {}: {e}", n + 1))?);
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
    // Check every input in input order first: an error inside a length-sorted batch would
    // otherwise name the input's place in that batch.
    for (i, l) in lines.iter().enumerate() {
        emb.encode_checked(&l.text, l.text_pair.as_deref(), args.max_length)
            .map_err(|e| format!("{}: input {i}: {e}", args.input))?;
    }
    let bar = if lines.len() > args.batch_size {
        indicatif::ProgressBar::new(lines.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let start = Instant::now();
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    // Batch inputs of similar length together (less padding); outputs keep the input order.
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order
        .sort_by_key(|&i| lines[i].text.len() + lines[i].text_pair.as_ref().map_or(0, String::len));
    let mut results: Vec<Option<cloze::bert::embed::Embedded>> = vec![None; lines.len()];
    for chunk in order.chunks(args.batch_size) {
        let texts: Vec<(&str, Option<&str>)> = chunk
            .iter()
            .map(|&i| (lines[i].text.as_str(), lines[i].text_pair.as_deref()))
            .collect();
        let out = emb.embed_batch(&texts, args.max_length).map_err(|e| {
            let mut ids = chunk.to_vec();
            ids.sort_unstable();
            format!("in the batch of inputs {ids:?}: {e}")
        })?;
        for (&i, o) in chunk.iter().zip(out) {
            results[i] = Some(o);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for (i, o) in results.into_iter().enumerate() {
        let o = o.expect("every input was embedded");
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
