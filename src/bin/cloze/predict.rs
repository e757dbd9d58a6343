//! `cloze fill-mask` and `cloze predict`: JSON lines of predictions, one per input line.

use crate::input::{read_lines, write_output, InputFormat, PairTruncationArg};
use clap::Parser;
use cloze::bert::predict::{FillMask, Predictor};
use std::path::PathBuf;

/// Arguments of `cloze fill-mask`.
#[derive(Parser, Debug)]
pub struct FillMaskArgs {
    /// Model folder with its masked-LM head (cls.predictions.*), e.g. a `cloze pretrain`
    /// output or an HF BertForMaskedLM / BertForPreTraining folder.
    #[arg(long)]
    model: PathBuf,
    /// Input file (`-` reads standard input): JSON lines {"text": ..., "text_pair": ...} or
    /// plain text, one input per line, each with at least one [MASK].
    #[arg(long, default_value = "-")]
    input: String,
    /// How to read --input.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    input_format: InputFormat,
    /// Candidates per [MASK].
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Truncate inputs to this many tokens. Overrides the folder's tokenizer_config.json
    /// model_max_length.
    #[arg(long)]
    max_length: Option<usize>,
    #[command(flatten)]
    pair_truncation: PairTruncationArg,
    /// Output JSON lines ({"text", "masks": [{"position", "candidates": [{"token", "id",
    /// "score"}]}]}); `-` is standard output.
    #[arg(long, default_value = "-")]
    output: String,
}

pub fn fill_mask(args: FillMaskArgs) -> Result<(), String> {
    let lines = read_lines(&args.input, args.input_format)?;
    let mut fm = FillMask::load(&args.model).map_err(|e| e.to_string())?;
    if args.max_length.is_some() {
        fm.max_length = args.max_length;
    }
    fm.pair_truncation = args.pair_truncation.rule();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let masks = fm
            .fill(&l.text, l.text_pair.as_deref(), args.top_k)
            .map_err(|e| format!("input {}: {e}", i + 1))?;
        let mut o = serde_json::json!({ "text": l.text, "masks": masks });
        if let Some(p) = &l.text_pair {
            o["text_pair"] = p.as_str().into();
        }
        out += &o.to_string();
        out.push('\n');
    }
    write_output(&args.output, out.as_bytes())
}

/// Arguments of `cloze predict`.
#[derive(Parser, Debug)]
pub struct PredictArgs {
    /// A fine-tuned classifier folder (`cloze finetune` output or HF
    /// BertForSequenceClassification); label names come from its config.json id2label.
    #[arg(long)]
    model: PathBuf,
    /// Input file (`-` reads standard input): JSON lines {"text": ..., "text_pair": ...} or
    /// plain text, one input per line.
    #[arg(long)]
    input: String,
    /// How to read --input.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    input_format: InputFormat,
    /// Truncate inputs to this many tokens. Overrides the folder's tokenizer_config.json
    /// model_max_length (which `cloze finetune` sets to its --max-seq-length).
    #[arg(long)]
    max_length: Option<usize>,
    #[command(flatten)]
    pair_truncation: PairTruncationArg,
    /// Also output each input's [CLS] hidden state (`cls`) and pooler output (`pooled`).
    #[arg(long)]
    vectors: bool,
    /// Inputs per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Output JSON lines ({"label", "label_id", "probabilities", "logits"}, one per input
    /// line); `-` is standard output.
    #[arg(long, default_value = "-")]
    output: String,
}

pub fn predict(args: PredictArgs) -> Result<(), String> {
    if args.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    let lines = read_lines(&args.input, args.input_format)?;
    let mut p = Predictor::load(&args.model).map_err(|e| e.to_string())?;
    if args.max_length.is_some() {
        p.max_length = args.max_length;
    }
    p.pair_truncation = args.pair_truncation.rule();
    let mut out = String::new();
    for (b, chunk) in lines.chunks(args.batch_size).enumerate() {
        let texts: Vec<(&str, Option<&str>)> = chunk
            .iter()
            .map(|l| (l.text.as_str(), l.text_pair.as_deref()))
            .collect();
        let preds = p.predict(&texts, args.vectors).map_err(|e| {
            let first = b * args.batch_size + 1;
            format!("inputs {first}..={}: {e}", first + chunk.len() - 1)
        })?;
        for pr in preds {
            out += &serde_json::to_string(&pr).map_err(|e| e.to_string())?;
            out.push('\n');
        }
    }
    write_output(&args.output, out.as_bytes())
}
