//! paper-repro: reruns the BERT paper's ablations (Tables 5, 6, 8 and Figure 5) at small scale
//! with cloze's public API, and writes a report beside the paper's numbers.
//!
//! ```text
//! cargo run --release -p paper-repro -- all --scale quick     # Table 5 + Figure 5 with controls, about an hour on 2 cores
//! cargo run --release -p paper-repro -- run table8 --scale quick
//! cargo run --release -p paper-repro -- report --scale quick  # regenerate REPORT.md from the runs
//! cargo run --release -p paper-repro -- plan --scale full     # print what a scale would run
//! ```

#![forbid(unsafe_code)]

mod corpus;
mod paper;
mod plan;
mod plots;
mod report;
mod runner;
mod scale;
mod squad;
mod stats;
mod tasks;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use plan::Experiment;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "paper-repro",
    about = "Rerun the BERT paper's ablations at small scale with cloze"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// toy (seconds, for tests), quick (about an hour on 2 cores) or full (hours).
    #[arg(long, default_value = "quick")]
    scale: String,
    /// The data folder (glue/, tasks/, pretrain-en/, wikipedia/, fixtures/). Default:
    /// $CLOZE_DATA, else ../shared/data from the current folder or from the repository.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The paper's numbers (bert-facts.md). Default: $CLOZE_REFERENCE, else
    /// `<data>/../reference/bert-facts.md`.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Where runs are kept (a folder per scale inside). Default: paper-repro/runs.
    #[arg(long)]
    runs: Option<PathBuf>,
    /// Where REPORT.md and the plots go. Default: `paper-repro/results/<scale>`.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Jobs run at once (default: 2 when there are at least 2 cores, else 1).
    #[arg(long)]
    workers: Option<usize>,
    /// Threads per job (default: cores / workers).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the scale's experiments (all of them at toy and full), then write the report.
    All(Common),
    /// Run some experiments (table5, table8, figure5, table6), then write the report.
    Run {
        #[arg(required = true)]
        experiments: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Write the report from the runs that exist (no training).
    Report(Common),
    /// Print the scale's settings and the jobs it would run.
    Plan(Common),
    /// The lock-step engine check's cloze side (paper-repro/pytorch/lockstep.sh runs it):
    /// `stream` writes the default row's batches, `train` trains from PyTorch's initialisation.
    Lockstep {
        #[arg(value_parser = ["stream", "train"])]
        what: String,
        /// Steps to write or train (from step 0).
        #[arg(long)]
        steps: u64,
        /// `train`: the transformers folder holding the initial weights.
        #[arg(long)]
        init: Option<PathBuf>,
        /// The file to write: the JSON-lines stream, or `step lm_loss nsp_loss grad_norm` lines.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// The fine-tuning study: fine-tunes Table 5 rows' final models on one task with each
    /// epoch count and learning rate (and restarts), scoring dev after every epoch; never
    /// reads the evaluation split. Appends JSON lines to --out and skips runs already there.
    FinetuneStudy {
        /// rte, qnli, mrpc or sst-2.
        #[arg(long)]
        task: String,
        /// Table 5 rows (folders of `runs/<scale>/table5/`), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "mlm-nsp,none")]
        rows: Vec<String>,
        /// Epoch counts of the schedules to try, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "3,10")]
        epochs: Vec<usize>,
        /// Learning rates, comma-separated (default: the scale's grid).
        #[arg(long, value_delimiter = ',')]
        lrs: Vec<f32>,
        /// Fine-tuning seeds per model (the pre-training seed, then + 1000 each).
        #[arg(long, default_value_t = 1)]
        restarts: u64,
        /// Pre-training seeds, comma-separated (default: the scale's).
        #[arg(long, value_delimiter = ',')]
        seeds: Vec<u64>,
        /// Fine-tuning dropout (default: the pre-trained model's own).
        #[arg(long)]
        dropout: Option<f32>,
        /// The JSON-lines file to append to.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        common: Common,
    },
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn find_data(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = flag.or_else(|| std::env::var_os("CLOZE_DATA").map(PathBuf::from)) {
        if !d.is_dir() {
            bail!("the data folder {} does not exist", d.display());
        }
        return Ok(d);
    }
    let candidates = [
        PathBuf::from("../shared/data"),
        manifest_dir().join("../../shared/data"),
    ];
    candidates
        .iter()
        .find(|d| d.is_dir())
        .cloned()
        .with_context(|| {
            format!(
                "no data folder: pass --data or set CLOZE_DATA (tried {}). README.md says how to assemble one.",
                candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })
}

fn setup(common: &Common) -> Result<(runner::Ctx, Option<paper::Paper>, PathBuf)> {
    let scale = scale::Scale::by_name(&common.scale)
        .with_context(|| format!("unknown scale {:?}: use toy, quick or full", common.scale))?;
    let data = find_data(common.data.clone())?;
    let reference = common
        .reference
        .clone()
        .or_else(|| std::env::var_os("CLOZE_REFERENCE").map(PathBuf::from))
        .unwrap_or_else(|| data.join("../reference/bert-facts.md"));
    let paper = match paper::load(&reference) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("warning: the paper's numbers are unavailable ({e:#}); the report's paper columns will be empty");
            None
        }
    };
    let runs = common
        .runs
        .clone()
        .unwrap_or_else(|| manifest_dir().join("runs"))
        .join(&scale.name);
    let results = common
        .results
        .clone()
        .unwrap_or_else(|| manifest_dir().join("results").join(&scale.name));
    eprintln!("{}", scale.describe());
    eprintln!(
        "data: {}\nruns: {}\nresults: {}",
        data.display(),
        runs.display(),
        results.display()
    );
    check_settings(&scale, &runs)?;
    eprintln!("preparing the pre-training corpus and vocabulary …");
    let corpus = corpus::prepare(&scale, &data, &runs.join("data"))?;
    let c = &corpus.stats;
    eprintln!(
        "corpus: {} training documents, {} words; {} held-out documents, {} words; vocabulary {}",
        c.train_documents, c.train_words, c.heldout_documents, c.heldout_words, c.vocab_size
    );
    let unigram = corpus::unigram(&corpus)?;
    eprintln!(
        "unigram entropy of the held-out text: {:.3} nats (perplexity {:.1}) over {} wordpieces",
        unigram.entropy, unigram.perplexity, unigram.heldout_wordpieces
    );
    Ok((
        runner::Ctx::new(scale, data, runs, corpus, unigram),
        paper,
        results,
    ))
}

/// Runs made with other settings of the same scale name are never mixed with new ones: the
/// scale's settings are kept in `runs/<scale>/scale.json` and must match.
fn check_settings(scale: &scale::Scale, runs: &std::path::Path) -> Result<()> {
    let path = runs.join("scale.json");
    let now = serde_json::to_value(scale)?;
    if let Ok(text) = std::fs::read_to_string(&path) {
        let saved: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        if saved != now {
            bail!(
                "the runs in {} were made with other settings of scale {:?}:\n  saved: {}\n  now:   {}\nDelete that folder or pass --runs to start elsewhere.",
                runs.display(),
                scale.name,
                saved,
                now
            );
        }
        return Ok(());
    }
    std::fs::create_dir_all(runs).with_context(|| format!("creating {}", runs.display()))?;
    cloze::train::checkpoint::write_atomic(&path, serde_json::to_string_pretty(&now)?.as_bytes())?;
    Ok(())
}

fn print_baselines(ctx: &runner::Ctx) -> Result<report::Baselines> {
    let b = report::baselines(ctx)?;
    eprintln!("task baselines (evaluation set):");
    for (t, (_, [ntr, _, nev], bl)) in &b {
        let s: Vec<String> = bl
            .iter()
            .map(|b| match b.exact_match {
                Some(em) => format!(
                    "{} F1 {:.1}% EM {:.1}%",
                    b.name,
                    100.0 * b.score,
                    100.0 * em
                ),
                None => format!("{} {:.1}%", b.name, 100.0 * b.score),
            })
            .collect();
        eprintln!(
            "  {:<20} {ntr:>6} train / {nev:>5} eval   {}",
            t.label(),
            s.join("; ")
        );
    }
    Ok(b)
}

fn workers_threads(common: &Common) -> (usize, usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = common
        .workers
        .unwrap_or(if cores >= 2 { 2 } else { 1 })
        .max(1);
    let threads = common.threads.unwrap_or((cores / workers).max(1)).max(1);
    (workers, threads)
}

/// Runs `experiments` (default: the scale's), then writes the report.
fn run(common: &Common, experiments: Option<&[Experiment]>) -> Result<()> {
    let (ctx, paper, results) = setup(common)?;
    let baselines = print_baselines(&ctx)?;
    let (workers, threads) = workers_threads(common);
    let experiments = experiments.map_or_else(|| ctx.scale.experiments.clone(), <[_]>::to_vec);
    let failures = runner::run(&ctx, &experiments, workers, threads)?;
    let path = report::write(&ctx, paper.as_ref(), &results, &baselines)?;
    eprintln!("report: {}", path.display());
    if !failures.is_empty() {
        for (j, e) in &failures {
            eprintln!("failed: {j}: {e}");
        }
        bail!(
            "{} job(s) failed; rerun the same command to retry them (finished jobs are kept)",
            failures.len()
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::All(c) => run(&c, None),
        Command::Run {
            experiments,
            common,
        } => {
            let exps = experiments
                .iter()
                .map(|e| {
                    Experiment::from_slug(e).with_context(|| {
                        format!("unknown experiment {e:?}: use table5, table8, figure5 or table6")
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            run(&common, Some(&exps))
        }
        Command::Report(c) => {
            let (ctx, paper, results) = setup(&c)?;
            let baselines = print_baselines(&ctx)?;
            let path = report::write(&ctx, paper.as_ref(), &results, &baselines)?;
            eprintln!("report: {}", path.display());
            Ok(())
        }
        Command::Lockstep {
            what,
            steps,
            init,
            out,
            common,
        } => {
            let (ctx, _, _) = setup(&common)?;
            if what == "stream" {
                runner::lockstep::write_stream(&ctx, steps, &out)
            } else {
                let init =
                    init.context("lockstep train needs --init (PyTorch's saved initialisation)")?;
                runner::lockstep::train_from(&ctx, steps, &init, &out)
            }
        }
        Command::FinetuneStudy {
            task,
            rows,
            epochs,
            lrs,
            restarts,
            seeds,
            dropout,
            out,
            common,
        } => {
            let task = runner::ftstudy::parse_task(&task)?;
            let (ctx, _, _) = setup(&common)?;
            let study = runner::ftstudy::Study {
                task,
                rows,
                epochs,
                learning_rates: if lrs.is_empty() {
                    ctx.scale.finetune.learning_rates.clone()
                } else {
                    lrs
                },
                restarts,
                seeds: (!seeds.is_empty()).then_some(seeds),
                dropout,
            };
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(common.threads.unwrap_or(1).max(1))
                .build()?;
            pool.install(|| runner::ftstudy::run(&ctx, &study, &out))
        }
        Command::Plan(c) => {
            let (ctx, _, _) = setup(&c)?;
            let jobs = runner::jobs(&ctx, &ctx.scale.experiments);
            let pre = jobs
                .iter()
                .filter(|j| matches!(j, runner::Job::Pretrain { .. }))
                .count();
            println!(
                "{} jobs: {} pre-trainings, {} fine-tunings",
                jobs.len(),
                pre,
                jobs.len() - pre
            );
            for j in &jobs {
                println!("  {}", runner::describe(&ctx, j));
            }
            Ok(())
        }
    }
}
