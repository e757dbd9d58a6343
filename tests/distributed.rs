//! Data-parallel pre-training under `mpirun` (built with `--features mpi`; run by `.ci/mpi.sh`):
//! 2 and 4 ranks give the losses and parameters of 1 rank for the same global batch and seed,
//! and killing a rank ends the job with a clear message while the last checkpoint resumes.
//!
//! Tolerance: with the same global batch, ranks change only the order in which per-example
//! gradient contributions are summed (per-rank partial sums, then the all-reduce) and the
//! rounding of the per-rank loss scale factors. Each step therefore differs by f32 rounding
//! (relative ~1e-7 to 1e-6 of a gradient), and over 20 Adam steps the losses drift by at most a
//! few 1e-7 relative (measured here: 8e-8 for 2 ranks, 3e-7 for 4; parameters 2e-7). We allow
//! 1e-5 relative on each logged loss and 1e-5·(1 + |w|) on each parameter: 30× the measured
//! drift, and far below any real difference (a different batch or a missing gradient term
//! moves the loss by 1e-2 or more).
#![cfg(feature = "mpi")]

mod common;

use common::pretrain::{setup_with, workdir};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn setup(dir: &Path, steps: u64) {
    // dropout off: masks are laid out per local batch tensor, so they would differ by rank count
    setup_with(
        dir,
        steps,
        "hidden_dropout_prob = 0.0\nattention_probs_dropout_prob = 0.0\n",
        "seed = 5\nlog_every = 1\neval_every = 0\ncheckpoint_every = 5\n",
    );
}

fn mpirun(dir: &Path, ranks: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        &ranks.to_string(),
    ])
    .arg(env!("CARGO_BIN_EXE_cloze"))
    .args(["pretrain", "--config"])
    .arg(dir.join("pretrain.toml"))
    .current_dir(dir)
    .env("RAYON_NUM_THREADS", "1");
    c
}

fn metrics(dir: &Path) -> Vec<(u64, f64, f64)> {
    std::fs::read_to_string(dir.join("run/metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Some((
                v["step"].as_u64()?,
                v.get("lm_loss")?.as_f64()?,
                v["nsp_loss"].as_f64()?,
            ))
        })
        .collect()
}

fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(dir.join("run/final/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| {
            (
                n,
                t.data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn two_and_four_ranks_match_one_rank() {
    // 1, 2 and 4 ranks with the reduction overlapped with the backward, and 2 ranks reducing
    // after the backward (CLOZE_MPI_OVERLAP=0)
    let mut runs = Vec::new();
    for (ranks, overlap) in [(1usize, "1"), (2, "1"), (4, "1"), (2, "0")] {
        let d = workdir(&format!("mpi-np{ranks}-ov{overlap}"));
        setup(&d, 20);
        let out = mpirun(&d, ranks)
            .env("CLOZE_MPI_OVERLAP", overlap)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mpirun -np {ranks} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        runs.push((ranks, d));
    }
    let base = metrics(&runs[0].1);
    assert_eq!(base.len(), 20);
    let base_w = weights(&runs[0].1);
    for (ranks, d) in &runs[1..] {
        let m = metrics(d);
        assert_eq!(m.len(), base.len());
        let mut worst = 0.0f64;
        for (a, b) in base.iter().zip(&m) {
            assert_eq!(a.0, b.0);
            for (x, y) in [(a.1, b.1), (a.2, b.2)] {
                let rel = (x - y).abs() / x.abs().max(1e-12);
                worst = worst.max(rel);
                assert!(
                    rel <= 1e-5,
                    "{ranks} ranks, step {}: loss {y} vs {x} with 1 rank",
                    a.0
                );
            }
        }
        let mut worst_w = 0.0f32;
        for ((na, wa), (nb, wb)) in base_w.iter().zip(&weights(d)) {
            assert_eq!(na, nb);
            for (x, y) in wa.iter().zip(wb) {
                let e = (x - y).abs() / (1.0 + x.abs());
                worst_w = worst_w.max(e);
                assert!(e <= 1e-5, "{ranks} ranks: {na} differs: {y} vs {x}");
            }
        }
        eprintln!("{ranks} ranks vs 1: worst relative loss difference {worst:.2e}, worst parameter difference {worst_w:.2e}");
    }
    for (_, d) in runs {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn killing_a_rank_ends_the_job_and_the_checkpoint_resumes() {
    let reference = workdir("mpi-ref");
    setup(&reference, 20);
    assert!(mpirun(&reference, 2).status().unwrap().success());

    let d = workdir("mpi-kill");
    setup(&d, 20);
    let job = mpirun(&d, 2)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait for the first complete checkpoint, then kill one rank (not mpirun) with SIGKILL
    let latest = d.join("run/checkpoints/latest");
    common::wait_for(&latest, Duration::from_secs(300), "no checkpoint appeared");
    let pids = String::from_utf8(
        Command::new("pgrep")
            .args(["-P", &job.id().to_string()])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mut ranks: Vec<u32> = pids
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    ranks.sort();
    let victim = *ranks.last().expect("mpirun has rank processes");
    assert!(Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap()
        .success());
    let out = job.wait_with_output().unwrap();
    assert!(!out.status.success(), "the job must fail when a rank dies");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("signal 9") || text.contains("Killed") || text.contains("exited on signal"),
        "mpirun's message should name the dead rank's signal:\n{text}"
    );
    eprintln!(
        "mpirun said: {}",
        text.lines()
            .filter(|l| l.contains("signal") || l.contains("Killed"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    // the last complete checkpoint loads and the run resumes to the same result
    assert!(
        mpirun(&d, 2).status().unwrap().success(),
        "resume after the killed rank failed"
    );
    let (a, b) = (metrics(&reference), metrics(&d));
    let steps_a: Vec<u64> = a.iter().map(|m| m.0).collect();
    assert_eq!(steps_a, (1..=20).collect::<Vec<_>>());
    assert_eq!(a, b, "resumed run differs from the uninterrupted one");
    std::fs::remove_dir_all(reference).unwrap();
    std::fs::remove_dir_all(d).unwrap();
}
