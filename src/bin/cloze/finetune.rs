//! `cloze finetune` and `cloze eval`: sentence(-pair) classification with the paper's recipe.

use clap::Parser;
use cloze::bert::checkpoint::Checkpoint;
use cloze::finetune::data::{read_jsonl, read_tsv, Example, TsvSpec};
use cloze::finetune::trainer::{finetune, scores, write_scores, FinetuneConfig};
use std::path::{Path, PathBuf};

/// Arguments of `cloze finetune`.
#[derive(Parser, Debug)]
pub struct Args {
    /// Pre-trained model folder (config.json, model.safetensors, vocab.txt).
    #[arg(long)]
    model: PathBuf,
    /// Task layout of TSV files (sst-2, mrpc, rte, cola, qnli, mr-vader, wn-wic, wn-glossmatch,
    /// bible-para); JSON lines ({"text", "text_pair", "label"}) need no task.
    #[arg(long)]
    task: Option<String>,
    #[arg(long)]
    train: PathBuf,
    #[arg(long)]
    dev: PathBuf,
    /// Number of classes (default: 1 + the largest training label).
    #[arg(long)]
    num_labels: Option<usize>,
    /// Learning rate; without it the paper's grid {5e-5, 3e-5, 2e-5} is tried and the best on
    /// dev kept.
    #[arg(long)]
    lr: Option<f32>,
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 128)]
    max_seq_length: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Use at most this many training examples.
    #[arg(long)]
    max_train_examples: Option<usize>,
    /// Where to save the fine-tuned model and scores.json.
    #[arg(long)]
    output: PathBuf,
}

pub fn read_examples(path: &Path, task: Option<&str>) -> Result<Vec<Example>, String> {
    let is_jsonl = path
        .extension()
        .is_some_and(|e| e == "jsonl" || e == "json");
    if is_jsonl {
        read_jsonl(path).map_err(|e| e.to_string())
    } else {
        let task = task.ok_or_else(|| {
            format!(
                "{}: a TSV file needs --task to say which columns to read",
                path.display()
            )
        })?;
        let spec = TsvSpec::for_task(task).map_err(|e| e.to_string())?;
        if spec.regression {
            return Err(format!(
                "task {task} is a regression task; only classification is supported"
            ));
        }
        read_tsv(path, &spec).map_err(|e| e.to_string())
    }
}

/// Refuses an `--output` folder that is the `--model` folder (however spelled) or that exists
/// as anything but a real directory, then locks it for this run.
fn claim_output(output: &Path, model: &Path) -> Result<cloze::train::lock::RunLock, String> {
    if let Ok(md) = std::fs::symlink_metadata(output) {
        if !md.is_dir() {
            return Err(format!(
                "--output {}: exists and is not a directory (a file, symlink, FIFO or device); refusing to write into it",
                output.display()
            ));
        }
    }
    if let (Ok(o), Ok(m)) = (std::fs::canonicalize(output), std::fs::canonicalize(model)) {
        if o == m {
            return Err(format!(
                "--output {} is the --model folder {}: fine-tuning would overwrite the model it reads; choose another folder",
                output.display(),
                model.display()
            ));
        }
    }
    cloze::train::lock::RunLock::acquire(output).map_err(|e| e.to_string())
}

pub fn run(args: Args) -> Result<(), String> {
    let _lock = claim_output(&args.output, &args.model)?;
    let train = read_examples(&args.train, args.task.as_deref())?;
    let dev = read_examples(&args.dev, args.task.as_deref())?;
    let num_labels = args
        .num_labels
        .unwrap_or_else(|| train.iter().map(|e| e.label).max().unwrap_or(0) + 1)
        .max(2);
    let cfg = FinetuneConfig {
        learning_rates: args
            .lr
            .map(|l| vec![l])
            .unwrap_or_else(|| vec![5e-5, 3e-5, 2e-5]),
        epochs: args.epochs,
        batch_size: args.batch_size,
        max_seq_length: args.max_seq_length,
        seed: args.seed,
        max_train_examples: args.max_train_examples,
        ..FinetuneConfig::paper(&args.model, num_labels)
    };
    let (clf, all) = finetune(&cfg, &train, &dev).map_err(|e| e.to_string())?;
    for s in &all {
        eprintln!(
            "lr {:e}: dev accuracy {:.4}, F1 {:.4}",
            s.learning_rate, s.accuracy, s.f1
        );
    }
    let config = cloze::bert::BertConfig::from_file(args.model.join("config.json"))
        .map_err(|e| e.to_string())?;
    cloze::bert::save_pretrained(&args.output, &config, &clf.store).map_err(|e| e.to_string())?;
    let vocab_path = args.model.join("vocab.txt");
    let vocab = std::fs::read(&vocab_path).map_err(|e| format!("{}: {e}", vocab_path.display()))?;
    cloze::train::checkpoint::write_atomic(&args.output.join("vocab.txt"), &vocab)
        .map_err(|e| e.to_string())?;
    write_scores(&args.output.join("scores.json"), &all).map_err(|e| e.to_string())?;
    Ok(())
}

/// Arguments of `cloze eval`.
#[derive(Parser, Debug)]
pub struct EvalArgs {
    /// A model saved by `cloze finetune`.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    task: Option<String>,
    /// Labelled examples to score.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value_t = 128)]
    max_seq_length: usize,
}

pub fn eval(args: EvalArgs) -> Result<(), String> {
    let data = read_examples(&args.data, args.task.as_deref())?;
    if data.is_empty() {
        return Err(format!(
            "{}: no examples to evaluate (an accuracy over nothing would be meaningless)",
            args.data.display()
        ));
    }
    let ckpt = Checkpoint::read(args.model.join("model.safetensors")).map_err(|e| e.to_string())?;
    let w = ckpt.get("classifier.weight").ok_or_else(|| {
        format!(
            "{} has no classifier: fine-tune it first",
            args.model.display()
        )
    })?;
    let num_labels = w.shape()[0];
    let (config, ckpt) = cloze::bert::load_pretrained(&args.model).map_err(|e| e.to_string())?;
    let mut store = cloze::ParamStore::new();
    let model =
        cloze::bert::model::BertForSequenceClassification::new(&config, &mut store, num_labels, 0)
            .map_err(|e| e.to_string())?;
    ckpt.load_into(&mut store).map_err(|e| e.to_string())?;
    let clf = cloze::finetune::trainer::Classifier {
        model,
        store,
        tokenizer: cloze::tokenizer::Tokenizer::from_vocab_file(args.model.join("vocab.txt"))
            .map_err(|e| e.to_string())?,
        max_seq_length: args.max_seq_length,
    };
    let gold = cloze::finetune::trainer::gold_labels(&data, num_labels, "eval")
        .map_err(|e| format!("{}: {e}", args.data.display()))?;
    let pred = clf.predict(&data, 32).map_err(|e| e.to_string())?;
    let (acc, f1) = scores(&pred, &gold, num_labels);
    println!(
        "{}",
        serde_json::json!({ "examples": data.len(), "accuracy": acc, "f1": f1 })
    );
    Ok(())
}
