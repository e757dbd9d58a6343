//! `cloze vocab`: learn a WordPiece vocabulary from text files.

use clap::Parser;
use cloze::tokenizer::{Trainer, TrainerConfig};
use std::path::PathBuf;

/// Arguments of `cloze vocab`.
#[derive(Parser, Debug)]
pub struct Args {
    /// Text files to learn from (any line-oriented text; the pre-training format works).
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    /// Where to write vocab.txt.
    #[arg(long)]
    output: PathBuf,
    /// Target size, special tokens included.
    #[arg(long, default_value_t = 30522)]
    vocab_size: usize,
    /// Merge a pair only if it occurs at least this often.
    #[arg(long, default_value_t = 2)]
    min_frequency: u64,
    /// Keep only the N most frequent characters.
    #[arg(long)]
    limit_alphabet: Option<usize>,
}

pub fn run(args: Args) -> Result<(), String> {
    let mut t = Trainer::new(TrainerConfig {
        vocab_size: args.vocab_size,
        min_frequency: args.min_frequency,
        limit_alphabet: args.limit_alphabet,
        progress: true,
        ..TrainerConfig::default()
    });
    t.feed_files(&args.input).map_err(|e| e.to_string())?;
    let (vocab, stats) = t.train_with_stats().map_err(|e| e.to_string())?;
    vocab.save(&args.output).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} tokens to {} ({stats:?})",
        vocab.len(),
        args.output.display()
    );
    Ok(())
}
