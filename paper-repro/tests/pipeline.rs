//! The whole suite at toy scale on the tiny fixture corpus: every experiment runs, the report
//! and plots are written, finished jobs are not rerun, an interrupted suite resumes, and the
//! results do not depend on the number of workers.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CLOZE_DATA") {
        return PathBuf::from(d);
    }
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    assert!(
        d.join("fixtures/tiny-corpus.txt").exists(),
        "the shared data folder is missing at {} (set CLOZE_DATA)",
        d.display()
    );
    d
}

fn run(runs: &Path, results: &Path, workers: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paper-repro"))
        .args([
            "all",
            "--scale",
            "toy",
            "--workers",
            workers,
            "--threads",
            "1",
        ])
        .arg("--data")
        .arg(data_dir())
        .arg("--runs")
        .arg(runs)
        .arg("--results")
        .arg(results)
        .output()
        .expect("paper-repro runs");
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.success(), text)
}

/// Every eval result as (relative path, score), sorted.
fn scores(root: &Path) -> Vec<(String, f64)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, f64)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                continue;
            }
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.parent().unwrap().ends_with("eval") {
                let v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.push((rel, v["score"].as_f64().unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn toy_suite_end_to_end() {
    let tmp = std::env::temp_dir().join(format!("paper-repro-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (runs, results) = (tmp.join("runs"), tmp.join("results"));

    let (ok, log) = run(&runs, &results, "2");
    assert!(ok, "first run failed:\n{log}");
    assert!(log.contains("0 already done"), "{log}");

    // the run layout: runs/<scale>/<experiment>/<row>/seed-N with config, metrics, checkpoints
    let seed1 = runs.join("toy/table5/mlm-nsp/seed-1");
    for f in [
        "pretrain/config.toml",
        "pretrain/metrics.jsonl",
        "pretrain/final/model.safetensors",
        "pretrain/final/config.json",
        "pretrain/final/vocab.txt",
        "pretrain.json",
        "eval/sst-2.json",
        "eval/rte.json",
    ] {
        assert!(seed1.join(f).exists(), "missing {f}");
    }
    assert!(
        runs.join("toy/table5/no-nsp/seed-2/pretrain/checkpoints")
            .is_dir(),
        "Figure 5 needs the intermediate checkpoints"
    );
    // shared rows are links to the run they share
    let shared = runs.join("toy/table8/mask80-same10-rnd10/seed-1");
    assert!(std::fs::symlink_metadata(&shared)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(shared.join("eval/pos-feature.json").exists());
    // the LTR model was saved causal, so fine-tuning keeps left-only attention
    let cfg =
        std::fs::read_to_string(runs.join("toy/table5/ltr/seed-1/pretrain/final/config.json"))
            .unwrap();
    assert!(cfg.contains("\"is_decoder\": true"), "{cfg}");

    let report = std::fs::read_to_string(results.join("REPORT.md")).unwrap();
    for h in [
        "## Table 5: pre-training tasks",
        "## Table 8: masking strategies",
        "## Figure 5: MLM vs LTR over pre-training",
        "## Table 6: model size",
        "## Downstream tasks and their simple baselines",
    ] {
        assert!(report.contains(h), "report lacks {h}");
    }
    // the paper's numbers sit beside ours (read from the reference facts)
    assert!(
        report.contains("| 84.4 |") || report.contains("| 84.4"),
        "paper's Table 5 value missing"
    );
    assert!(report.contains("LTR & No NSP"));
    // every verdict is one of the stated words
    assert!(report.contains("within noise") || report.contains("reproduced"));
    for stem in [
        "table5-pretraining-loss",
        "figure5-mlm-vs-ltr",
        "table6-perplexity",
    ] {
        let svg = results.join(format!("{stem}.svg"));
        let png = results.join(format!("{stem}.png"));
        assert!(
            svg.exists() && png.exists() || report.contains(&format!("Plot {stem} not drawn")),
            "{stem}: neither a plot nor a note"
        );
    }

    // a second run recomputes nothing
    let before = std::fs::metadata(seed1.join("pretrain.json"))
        .unwrap()
        .modified()
        .unwrap();
    let (ok, log) = run(&runs, &results, "2");
    assert!(ok, "{log}");
    assert!(log.contains(", 0 to run"), "{log}");
    let after = std::fs::metadata(seed1.join("pretrain.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);

    // an interrupted suite resumes: lost results are recomputed, identically
    let first = scores(&runs);
    assert!(first.len() > 50, "{} eval results", first.len());
    std::fs::remove_file(seed1.join("eval/sst-2.json")).unwrap();
    std::fs::remove_file(runs.join("toy/table6/l2-h32-a2/seed-2/pretrain.json")).unwrap();
    let (ok, log) = run(&runs, &results, "1");
    assert!(ok, "{log}");
    assert!(log.contains(", 2 to run"), "{log}");
    assert_eq!(scores(&runs), first, "resumed results differ");

    // one worker from scratch gives the same numbers as two
    let runs1 = tmp.join("runs-1");
    let (ok, log) = run(&runs1, &tmp.join("results-1"), "1");
    assert!(ok, "{log}");
    assert_eq!(scores(&runs1), first, "1 worker and 2 workers disagree");

    std::fs::remove_dir_all(&tmp).unwrap();
}
