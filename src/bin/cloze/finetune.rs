//! `cloze finetune` and `cloze eval`: sentence(-pair) classification with the paper's recipe.

use crate::input::PairTruncationArg;
use clap::Parser;
use cloze::bert::checkpoint::Checkpoint;
use cloze::finetune::data::{read_jsonl, read_tsv, Example, TsvSpec};
use cloze::finetune::trainer::{finetune_observed, write_scores, FinetuneConfig, FinetuneEvent};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `cloze finetune`.
#[derive(Parser, Debug)]
pub struct Args {
    /// Pre-trained model folder (config.json, model.safetensors, vocab.txt).
    #[arg(long)]
    model: PathBuf,
    /// Task layout of TSV files (sst-2, mrpc, rte, cola, qnli, mnli, sts-b (regression: MSE
    /// head, Pearson/Spearman on dev), mr-vader, wn-wic, wn-glossmatch, bible-para); JSON lines
    /// ({"text", "text_pair", "label"}) need no task.
    #[arg(long)]
    task: Option<String>,
    /// Training examples: a TSV file in the --task layout, or JSON lines (.jsonl/.json)
    /// {"text": ..., "text_pair": ... (optional), "label": class index}.
    #[arg(long)]
    train: PathBuf,
    /// Dev examples (same format as --train), scored after every epoch to pick the learning
    /// rate.
    #[arg(long)]
    dev: PathBuf,
    /// Number of classes (default: 1 + the largest training label).
    #[arg(long)]
    num_labels: Option<usize>,
    /// Learning rate; without it the paper's grid {5e-5, 3e-5, 2e-5} is tried and the best on
    /// dev kept.
    #[arg(long)]
    lr: Option<f32>,
    /// Passes over the training data.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Examples per optimiser step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Truncate each example to this many tokens ([CLS]/[SEP] included); saved as the output's
    /// tokenizer_config.json model_max_length.
    #[arg(long, default_value_t = 128)]
    max_seq_length: usize,
    #[command(flatten)]
    pair_truncation: PairTruncationArg,
    /// Seed of the classifier initialisation, data order and dropout.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Use at most this many training examples.
    #[arg(long)]
    max_train_examples: Option<usize>,
    /// Dropout probability of the encoder while fine-tuning (default: the model's config.json;
    /// the paper fine-tunes with 0.1).
    #[arg(long)]
    dropout: Option<f32>,
    /// Where to save the fine-tuned model (an HF BertForSequenceClassification folder),
    /// scores.json and log.jsonl (one JSON line per step: loss and learning rate; one per
    /// epoch: dev scores).
    #[arg(long)]
    output: PathBuf,
    /// Hide the progress bar (it is shown only on a terminal anyway).
    #[arg(long)]
    quiet: bool,
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
    let created = std::fs::symlink_metadata(&args.output).is_err();
    let lock = claim_output(&args.output, &args.model)?;
    let res = run_locked(&args);
    if res.is_err() && created {
        discard_if_unused(&args.output, &lock);
    }
    res
}

/// After a failed run that created `output`: removes the folder when it holds nothing but the
/// lock and an empty log, so a failure leaves no half-made model folder behind. A folder with
/// anything else in it (a log of steps run, a partial result) is kept for the user to read.
fn discard_if_unused(output: &Path, lock: &cloze::train::lock::RunLock) {
    let Ok(entries) = std::fs::read_dir(output) else {
        return;
    };
    let names: Vec<std::ffi::OsString> =
        entries.filter_map(|e| Some(e.ok()?.file_name())).collect();
    let log = output.join("log.jsonl");
    let unused = names.iter().all(|n| {
        n == cloze::train::lock::LOCK_FILE
            || (n == "log.jsonl" && std::fs::metadata(&log).is_ok_and(|m| m.len() == 0))
    });
    if unused {
        let _ = std::fs::remove_file(&log);
        let _ = std::fs::remove_file(lock.path());
        // fails (and keeps the folder) if another process put something there meanwhile
        let _ = std::fs::remove_dir(output);
    }
}

fn run_locked(args: &Args) -> Result<(), String> {
    let train = read_examples(&args.train, args.task.as_deref())?;
    let dev = read_examples(&args.dev, args.task.as_deref())?;
    let regression = is_regression(args.task.as_deref())?;
    let num_labels = if regression {
        if args.num_labels.is_some_and(|n| n != 1) {
            return Err("a regression task has one output; drop --num-labels".into());
        }
        1
    } else {
        args.num_labels
            .unwrap_or_else(|| train.iter().map(|e| e.label).max().unwrap_or(0) + 1)
            .max(2)
    };
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
        pair_truncation: args.pair_truncation.rule(),
        dropout: args.dropout,
        ..FinetuneConfig::paper(&args.model, num_labels)
    };
    std::fs::create_dir_all(&args.output)
        .map_err(|e| format!("cannot create --output {}: {e}", args.output.display()))?;
    let log_path = args.output.join("log.jsonl");
    let mut log = std::io::BufWriter::new(
        std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?,
    );
    let mut bar = indicatif::ProgressBar::hidden();
    let mut log_err: Option<String> = None;
    let quiet = args.quiet;
    let mut observe = |ev: &FinetuneEvent| {
        if let Err(e) = serde_json::to_writer(&mut log, ev)
            .and_then(|_| writeln!(log).map_err(serde_json::Error::io))
        {
            log_err.get_or_insert_with(|| format!("cannot write {}: {e}", log_path.display()));
        }
        match ev {
            FinetuneEvent::Start {
                learning_rate,
                total_steps,
            } => {
                bar = if quiet {
                    indicatif::ProgressBar::hidden()
                } else {
                    indicatif::ProgressBar::new(*total_steps)
                };
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} steps ({eta}) {msg}",
                    )
                    .expect("a valid template"),
                );
                bar.set_prefix(format!("lr {learning_rate:e}"));
            }
            FinetuneEvent::Step { loss, .. } => {
                bar.set_message(format!("loss {loss:.4}"));
                bar.inc(1);
            }
            FinetuneEvent::Epoch {
                epoch,
                dev_accuracy,
                dev_f1,
                dev_pearson,
                dev_spearman,
                ..
            } => {
                bar.println(match (dev_pearson, dev_spearman) {
                    (Some(p), Some(r)) => {
                        format!("epoch {}: dev Pearson {p:.4}, Spearman {r:.4}", epoch + 1)
                    }
                    _ => format!(
                        "epoch {}: dev accuracy {dev_accuracy:.4}, F1 {dev_f1:.4}",
                        epoch + 1
                    ),
                });
            }
        }
    };
    let (clf, all) =
        finetune_observed(&cfg, &train, &dev, &mut observe).map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    if let Some(e) = log_err {
        return Err(e);
    }
    log.flush()
        .map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
    for s in &all {
        match (s.pearson, s.spearman) {
            (Some(p), Some(r)) => eprintln!(
                "lr {:e}: dev Pearson {p:.4}, Spearman {r:.4}",
                s.learning_rate
            ),
            _ => eprintln!(
                "lr {:e}: dev accuracy {:.4}, F1 {:.4}",
                s.learning_rate, s.accuracy, s.f1
            ),
        }
    }
    let names = label_names(&args.train, args.task.as_deref(), num_labels)?;
    clf.save_pretrained(&args.output, &names)
        .map_err(|e| e.to_string())?;
    write_scores(&args.output.join("scores.json"), &all).map_err(|e| e.to_string())?;
    Ok(())
}

/// Whether `task` is a regression task (STS-B).
fn is_regression(task: Option<&str>) -> Result<bool, String> {
    match task {
        Some(t) => Ok(TsvSpec::for_task(t).map_err(|e| e.to_string())?.regression),
        None => Ok(false),
    }
}

/// Class names for the saved config: the task's label strings when its TSV layout has them
/// and the count matches, else none (`LABEL_i`).
fn label_names(path: &Path, task: Option<&str>, num_labels: usize) -> Result<Vec<String>, String> {
    let is_jsonl = path
        .extension()
        .is_some_and(|e| e == "jsonl" || e == "json");
    if is_jsonl {
        return Ok(Vec::new());
    }
    let spec = match task {
        Some(t) => TsvSpec::for_task(t).map_err(|e| e.to_string())?,
        None => return Ok(Vec::new()),
    };
    Ok(spec
        .label_names
        .filter(|n| n.len() == num_labels)
        .unwrap_or_default())
}

/// Arguments of `cloze eval`.
#[derive(Parser, Debug)]
pub struct EvalArgs {
    /// A model saved by `cloze finetune`.
    #[arg(long)]
    model: PathBuf,
    /// Task layout of a TSV --data file (sst-2, mrpc, rte, cola, qnli, mnli, sts-b, mr-vader,
    /// wn-wic, wn-glossmatch, bible-para); JSON lines need none. For MNLI score
    /// dev_matched.tsv and dev_mismatched.tsv in two runs.
    #[arg(long)]
    task: Option<String>,
    /// Labelled examples to score.
    #[arg(long)]
    data: PathBuf,
    /// Truncate each example to this many tokens ([CLS]/[SEP] included).
    #[arg(long, default_value_t = 128)]
    max_seq_length: usize,
    #[command(flatten)]
    pair_truncation: PairTruncationArg,
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
        tokenizer: cloze::bert::folder::load_tokenizer(&args.model).map_err(|e| e.to_string())?,
        max_seq_length: args.max_seq_length,
        pair_truncation: args.pair_truncation.rule(),
    };
    let s =
        cloze::finetune::trainer::dev_scores(&clf, &data, 32, 0.0).map_err(|e| e.to_string())?;
    let out = match (s.pearson, s.spearman) {
        (Some(p), Some(r)) => {
            serde_json::json!({ "examples": data.len(), "pearson": p, "spearman": r })
        }
        _ => serde_json::json!({ "examples": data.len(), "accuracy": s.accuracy, "f1": s.f1 }),
    };
    println!("{out}");
    Ok(())
}
