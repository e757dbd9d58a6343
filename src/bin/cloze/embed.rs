//! `cloze embed`: sentence embeddings as sentence-transformers computes them (the folder's
//! pooling mode, L2 normalisation, its `max_seq_length`), written as one `[N, H]` matrix in
//! safetensors or `.npy`.

use crate::input::{read_lines, write_output, InputFormat, PairTruncationArg};
use clap::Parser;
use cloze::bert::embed::Embedder;
use cloze::bert::folder::Pooling;
use safetensors::tensor::{Dtype, TensorView};
use std::time::Instant;

/// Arguments of `cloze embed`.
#[derive(Parser, Debug)]
pub struct Args {
    /// HF / sentence-transformers model folder: config.json, model.safetensors, vocab.txt, and
    /// optionally tokenizer_config.json, sentence_bert_config.json, modules.json, 1_Pooling/.
    #[arg(long)]
    model: std::path::PathBuf,
    /// Input file (`-` reads standard input): JSON lines {"text": ..., "text_pair": ...} or
    /// plain text, one input per line (see --input-format). Blank lines are skipped.
    #[arg(long)]
    input: String,
    /// How to read --input.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    input_format: InputFormat,
    /// Output file, or `-` for standard output. A name ending in `.npy` gets a NumPy float32
    /// [N, H] array; anything else a safetensors file with `embeddings` [N, H] (row i = input
    /// line i, blank lines skipped) and, with --hidden-states, `last_hidden_state.<i>` [T_i, H].
    #[arg(long)]
    output: String,
    /// Write safetensors or npy regardless of the --output name.
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// Also write every input's last hidden states (safetensors only).
    #[arg(long)]
    hidden_states: bool,
    /// Truncate each input to this many tokens ([CLS]/[SEP] included). Overrides the folder's
    /// sentence_bert_config.json max_seq_length / tokenizer_config.json model_max_length.
    #[arg(long)]
    max_length: Option<usize>,
    #[command(flatten)]
    pair_truncation: PairTruncationArg,
    /// Pooling (mean, cls or max). Overrides the folder's 1_Pooling/config.json (mean without
    /// one).
    #[arg(long)]
    pooling: Option<String>,
    /// Do not L2-normalise (by default vectors are normalised unless the folder's modules.json
    /// lists no Normalize module).
    #[arg(long)]
    no_normalize: bool,
    /// Inputs per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

/// Output file formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// safetensors with an `embeddings` [N, H] tensor.
    Safetensors,
    /// NumPy `.npy`, float32 [N, H], C order.
    Npy,
}

/// A NumPy v1.0 `.npy` file of a little-endian float32 `[rows, cols]` matrix.
pub fn npy_f32(data: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for x in data {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

pub fn run(args: Args) -> Result<(), String> {
    if args.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    let format = args.format.unwrap_or(if args.output.ends_with(".npy") {
        OutputFormat::Npy
    } else {
        OutputFormat::Safetensors
    });
    if format == OutputFormat::Npy && args.hidden_states {
        return Err("--hidden-states needs safetensors output (.npy holds one matrix)".into());
    }
    let lines = read_lines(&args.input, args.input_format)?;
    let mut emb = Embedder::load(&args.model).map_err(|e| e.to_string())?;
    if let Some(p) = &args.pooling {
        emb.pooling = Pooling::parse(p).map_err(|e| format!("--pooling: {e}"))?;
    }
    if args.no_normalize {
        emb.normalize = false;
    }
    emb.pair_truncation = args.pair_truncation.rule();
    // Check every input in input order first: an error inside a length-sorted batch would
    // otherwise name the input's place in that batch.
    let mut tokens = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        let enc = emb
            .encode_checked(&l.text, l.text_pair.as_deref(), args.max_length)
            .map_err(|e| format!("{}: input {i}: {e}", args.input))?;
        tokens.push(enc.input_ids.len());
    }
    let bar = if lines.len() > args.batch_size && args.output != "-" {
        indicatif::ProgressBar::new(lines.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let start = Instant::now();
    // Batch inputs of similar token counts together (less padding), longest first (as
    // sentence-transformers does; each later batch then fits in the buffers of the one before);
    // outputs keep the input order.
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(tokens[i]));
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
    let results: Vec<_> = results
        .into_iter()
        .map(|o| o.expect("every input was embedded"))
        .collect();
    let h = emb.config.hidden_size;
    let matrix: Vec<f32> = results
        .iter()
        .flat_map(|o| o.embedding.iter().copied())
        .collect();
    let bytes = match format {
        OutputFormat::Npy => npy_f32(&matrix, results.len(), h),
        OutputFormat::Safetensors => {
            let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> =
                vec![("embeddings".into(), le(&matrix), vec![results.len(), h])];
            if args.hidden_states {
                for (i, o) in results.iter().enumerate() {
                    tensors.push((
                        format!("last_hidden_state.{i}"),
                        le(o.last_hidden_state.data()),
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
            safetensors::serialize(views, None).map_err(|e| e.to_string())?
        }
    };
    write_output(&args.output, &bytes)?;
    eprintln!(
        "embedded {} inputs in {secs:.2} s ({:.1} sentences/s, {} thread(s), {:?} pooling) -> {}",
        lines.len(),
        lines.len() as f64 / secs,
        rayon::current_num_threads(),
        emb.pooling,
        if args.output == "-" {
            "<stdout>"
        } else {
            &args.output
        }
    );
    Ok(())
}
