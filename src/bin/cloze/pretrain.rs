//! `cloze pretrain`: pre-train a BERT from a TOML config (see README), resuming from the last
//! checkpoint in the run's output directory.

use clap::Parser;
use cloze::pretrain::config::PretrainConfig;
use cloze::pretrain::trainer::Pretrainer;
use std::path::PathBuf;

/// Arguments of `cloze pretrain`.
#[derive(Parser, Debug)]
pub struct Args {
    /// The run's config (TOML): model, data, optimisation. Copied next to the outputs.
    #[arg(long)]
    config: PathBuf,
    /// Ignore existing checkpoints and start from step 0 (the output directory is reused).
    #[arg(long)]
    fresh: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    let cfg = PretrainConfig::from_file(&args.config).map_err(|e| e.to_string())?;
    #[cfg(feature = "mpi")]
    {
        let comm = cloze::distributed::mpi_backend::MpiCollective::init()
            .ok_or("MPI was initialised twice")?;
        return run_with(cfg, args.fresh, &comm);
    }
    #[allow(unreachable_code)]
    run_with(cfg, args.fresh, &cloze::distributed::SingleProcess)
}

fn run_with(
    cfg: PretrainConfig,
    fresh: bool,
    comm: &dyn cloze::distributed::Collective,
) -> Result<(), String> {
    let rank0 = comm.rank() == 0;
    let mut t = Pretrainer::new(cfg, comm).map_err(|e| e.to_string())?;
    t.fresh = fresh;
    if rank0 {
        eprintln!(
            "pre-training: {} train / {} held-out instances, {} parameters, {} rank(s)",
            t.data.train.len(),
            t.data.heldout.len(),
            t.store.num_elements(),
            comm.size()
        );
    }
    if rank0 && t.data.heldout.is_empty() {
        eprintln!("warning: no held-out instances (NSP needs at least two held-out documents); evaluation is skipped");
    }
    let eval = t.run().map_err(|e| e.to_string())?;
    if rank0 && !t.data.heldout.is_empty() {
        eprintln!(
            "done at step {}: held-out LM loss {:.4} (perplexity {:.2}), LM accuracy {:.4}, NSP accuracy {:.4}",
            t.step,
            eval.lm_loss(),
            eval.lm_loss().exp(),
            eval.lm_accuracy(),
            eval.nsp_accuracy()
        );
    }
    Ok(())
}
