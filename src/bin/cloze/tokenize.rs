//! `cloze tokenize`: one JSON line of ids per input line.

use std::io::{self, BufRead, BufWriter, Write};
use std::path::PathBuf;

use crate::input::{Line, PairTruncationArg};
use clap::Parser;
use cloze::tokenizer::{BasicTokenizer, EncodeOptions, Padding, Tokenizer, Vocab};
use rayon::prelude::*;

/// Arguments of `cloze tokenize`.
#[derive(Parser, Debug)]
pub struct Args {
    /// WordPiece vocabulary, one token per line (id = line number).
    #[arg(long)]
    vocab: PathBuf,
    /// JSON-lines input, each line {"text": ..., "text_pair": ...} (text_pair optional);
    /// `-` reads standard input. Blank lines are skipped.
    #[arg(long)]
    input: String,
    /// Maximum length including [CLS]/[SEP]; longer inputs are an error unless --truncation.
    #[arg(long)]
    max_length: Option<usize>,
    /// Truncate to --max-length: longest first, from the end. For pairs see --pair-truncation.
    #[arg(long, requires = "max_length")]
    truncation: bool,
    #[command(flatten)]
    pair_truncation: PairTruncationArg,
    /// Right-pad every sequence with [PAD] to this length (attention_mask 0).
    #[arg(long)]
    pad_to: Option<usize>,
    /// Keep case and accents (for cased vocabularies); the default is uncased BERT.
    #[arg(long)]
    cased: bool,
}

/// Lines encoded in parallel per chunk; output order is the input order.
const CHUNK: usize = 4096;

pub fn run(args: Args) -> Result<(), String> {
    if let Some(n) = args.pad_to {
        cloze::tokenizer::encode::check_pad_length(n).map_err(|e| format!("--pad-to: {e}"))?;
    }
    let vocab = Vocab::load(&args.vocab).map_err(|e| e.to_string())?;
    let basic = if args.cased {
        BasicTokenizer::cased()
    } else {
        BasicTokenizer::uncased()
    };
    let tok = Tokenizer::with_basic(vocab, basic);
    let opts = EncodeOptions {
        max_length: args.max_length,
        truncation: args.truncation,
        padding: args.pad_to.map_or(Padding::None, Padding::Fixed),
        pair_truncation: args.pair_truncation.rule(),
    };
    let (reader, name) = crate::input::open(&args.input)?;
    let name = name.as_str();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut chunk: Vec<(usize, String)> = Vec::with_capacity(CHUNK);
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{name}: line {}: read error: {e}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        chunk.push((n + 1, line));
        if chunk.len() == CHUNK {
            flush(&tok, &opts, name, &chunk, &mut out)?;
            chunk.clear();
        }
    }
    flush(&tok, &opts, name, &chunk, &mut out)?;
    out.flush().map_err(|e| format!("write error: {e}"))
}

fn flush(
    tok: &Tokenizer,
    opts: &EncodeOptions,
    name: &str,
    chunk: &[(usize, String)],
    out: &mut impl Write,
) -> Result<(), String> {
    let encoded: Vec<Result<String, String>> = chunk
        .par_iter()
        .map(|(n, line)| {
            let l: Line = serde_json::from_str(line)
                .map_err(|e| format!("{name}: line {n}: bad JSON line: {e}"))?;
            let e = tok
                .encode_with(&l.text, l.text_pair.as_deref(), opts)
                .map_err(|e| format!("{name}: line {n}: {e}"))?;
            serde_json::to_string(&e).map_err(|e| format!("{name}: line {n}: {e}"))
        })
        .collect();
    for r in encoded {
        writeln!(out, "{}", r?).map_err(|e| format!("write error: {e}"))?;
    }
    Ok(())
}
