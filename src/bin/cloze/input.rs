//! Input and output shared by the subcommands: JSON lines or plain text in, files or standard
//! output out.

use cloze::tokenizer::PairTruncation;
use serde::Deserialize;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};

/// One input line: `{"text": ..., "text_pair": ... (optional)}`.
#[derive(Deserialize)]
pub struct Line {
    pub text: String,
    #[serde(default)]
    pub text_pair: Option<String>,
}

/// How `--input` is read.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputFormat {
    /// JSON lines if the first non-blank line starts with `{`, else plain text.
    #[default]
    Auto,
    /// One JSON object per line: {"text": ..., "text_pair": ... (optional)}.
    Jsonl,
    /// One text per line (no pairs).
    Text,
}

/// Opens `--input` (`-` is standard input); returns the reader and the name errors use.
pub fn open(input: &str) -> Result<(Box<dyn BufRead>, String), String> {
    if input == "-" {
        Ok((
            Box::new(BufReader::new(io::stdin().lock())),
            "<stdin>".into(),
        ))
    } else {
        let f = File::open(input).map_err(|e| format!("cannot open --input {input}: {e}"))?;
        Ok((Box::new(BufReader::new(f)), input.into()))
    }
}

/// Reads every non-blank line of `--input` as a [`Line`]; errors name the file and line.
pub fn read_lines(input: &str, format: InputFormat) -> Result<Vec<Line>, String> {
    let (reader, name) = open(input)?;
    let mut format = format;
    let mut out = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{name}: line {}: {e}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        if format == InputFormat::Auto {
            format = if line.trim_start().starts_with('{') {
                InputFormat::Jsonl
            } else {
                InputFormat::Text
            };
        }
        out.push(match format {
            InputFormat::Text => Line {
                text: line,
                text_pair: None,
            },
            _ => serde_json::from_str(&line).map_err(|e| {
                format!(
                    "{name}: line {}: not a JSON object {{\"text\": ..., \"text_pair\": ...}}: {e} \
                     (use --input-format text for plain text)",
                    n + 1
                )
            })?,
        });
    }
    if out.is_empty() {
        return Err(format!("{name}: no input lines"));
    }
    Ok(out)
}

/// Writes `bytes` to `output` atomically, or to standard output when it is `-`.
pub fn write_output(output: &str, bytes: &[u8]) -> Result<(), String> {
    if output == "-" {
        let mut out = io::stdout().lock();
        out.write_all(bytes)
            .and_then(|_| out.flush())
            .map_err(|e| format!("cannot write to standard output: {e}"))
    } else {
        cloze::train::checkpoint::write_atomic(std::path::Path::new(output), bytes)
            .map_err(|e| e.to_string())
    }
}

/// `--pair-truncation`, shared by every command that cuts text pairs to a length.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct PairTruncationArg {
    /// How a pair is cut when both texts must lose tokens: `python` (the slow BertTokenizer:
    /// the first text keeps the odd token) or `fast` (HF `tokenizers`: the longer keeps it).
    #[arg(long, value_enum, default_value_t = PairRule::Python)]
    pair_truncation: PairRule,
}

/// `--pair-truncation` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum PairRule {
    /// The Python (slow) BertTokenizer's longest_first.
    Python,
    /// The Rust tokenizers (fast) LongestFirst.
    Fast,
}

impl PairTruncationArg {
    /// The library's rule for the chosen value.
    pub fn rule(self) -> PairTruncation {
        match self.pair_truncation {
            PairRule::Python => PairTruncation::Python,
            PairRule::Fast => PairTruncation::Fast,
        }
    }
}
