//! `cloze`: the command-line front end of the cloze library.
//!
//! Each subcommand lives in its own module next to this file and exposes an `Args` struct
//! (clap) and a `run(args) -> Result<(), String>`; add a new one by adding a module and a
//! variant of [`Command`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod embed;
mod finetune;
mod input;
mod predict;
mod pretrain;
mod tokenize;
mod vocab;

#[derive(Parser, Debug)]
#[command(
    name = "cloze",
    version,
    about = "Train and use BERT-style models on CPUs"
)]
struct Cli {
    /// Worker threads for the compute kernels (rayon); default: all cores. Overrides
    /// RAYON_NUM_THREADS.
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Tokenize JSON lines ({"text": ..., "text_pair": ...}) with a WordPiece vocab.txt.
    Tokenize(tokenize::Args),
    /// Sentence embeddings (the folder's pooling + L2 norm) as one [N, H] matrix.
    Embed(embed::Args),
    /// Top-k tokens and probabilities for each [MASK], with the model's masked-LM head.
    FillMask(predict::FillMaskArgs),
    /// Per-example label, probabilities and optionally [CLS]/pooled vectors of a classifier.
    Predict(predict::PredictArgs),
    /// Learn a WordPiece vocabulary (vocab.txt) from text files.
    Vocab(vocab::Args),
    /// Fine-tune a pre-trained model on sentence(-pair) classification.
    Finetune(finetune::Args),
    /// Score a fine-tuned model on labelled data (prints accuracy and F1 as JSON).
    Eval(finetune::EvalArgs),
    /// Pre-train a BERT from a TOML config, resuming from its last checkpoint.
    Pretrain(pretrain::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Checked before any work: a bad CLOZE_KERNEL would otherwise panic at the first kernel
    // call, after the model had loaded.
    if let Err(msg) = cloze_kernels::dispatch::select_from_env() {
        eprintln!("cloze: error: {msg}");
        return ExitCode::FAILURE;
    }
    if let Some(n) = cli.threads {
        if n == 0 {
            eprintln!("cloze: error: --threads 0: need at least 1 thread");
            return ExitCode::FAILURE;
        }
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("cloze: error: --threads {n}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Tokenize(args) => tokenize::run(args),
        Command::Vocab(args) => vocab::run(args),
        Command::Embed(args) => embed::run(args),
        Command::FillMask(args) => predict::fill_mask(args),
        Command::Predict(args) => predict::predict(args),
        Command::Finetune(args) => finetune::run(args),
        Command::Eval(args) => finetune::eval(args),
        Command::Pretrain(args) => pretrain::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("cloze: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
