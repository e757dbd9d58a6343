//! The whole suite at toy scale on the tiny fixture corpus: every experiment runs, the report
//! and plots are written, finished jobs are not rerun, an interrupted suite resumes, and the
//! results do not depend on the number of workers.

#![forbid(unsafe_code)]

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
        "eval/sst-2-lr-on-dev.json",
        "eval/rte-lr-on-dev.json",
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
    assert!(shared.join("eval/pos-feature-lr-on-dev.json").exists());
    check_control_run(&runs.join("toy"));
    check_lr_picked_on_dev(&seed1.join("eval"));
    check_squad_eval(&seed1.join("eval"));
    assert!(runs
        .join("toy/table5/none/seed-2/eval/squad-lr-on-dev.json")
        .exists());
    assert!(
        !runs
            .join("toy/table8/mask100-same0-rnd0/seed-1/eval/squad-lr-on-dev.json")
            .exists(),
        "SQuAD is Table 5's column only"
    );
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
    // every verdict is one of the stated words (at toy scale pre-training does not beat the
    // control, so the verdicts are withheld)
    assert!(
        report.contains("within noise")
            || report.contains("reproduced")
            || report.contains("pre-training did not help at this scale")
    );
    check_controls_in_report(&report);
    check_squad_in_report(&report);
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
    std::fs::remove_file(seed1.join("eval/sst-2-lr-on-dev.json")).unwrap();
    std::fs::remove_file(runs.join("toy/table6/l2-h32-a2/seed-2/pretrain.json")).unwrap();
    let (ok, log) = run(&runs, &results, "1");
    assert!(ok, "{log}");
    assert!(log.contains(", 2 to run"), "{log}");
    assert_eq!(scores(&runs), first, "resumed results differ");
    // the wall time adds up the sittings that ran jobs (the second run above ran none)
    let sittings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs.join("toy/sittings.json")).unwrap())
            .unwrap();
    let jobs: Vec<u64> = sittings
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["jobs_run"].as_u64().unwrap())
        .collect();
    assert_eq!(jobs.len(), 2, "{sittings}");
    assert_eq!(jobs[1], 2, "{sittings}");
    let report = std::fs::read_to_string(results.join("REPORT.md")).unwrap();
    assert!(report.contains("over 2 sittings"), "{report}");

    // one worker from scratch gives the same numbers as two
    let runs1 = tmp.join("runs-1");
    let (ok, log) = run(&runs1, &tmp.join("results-1"), "1");
    assert!(ok, "{log}");
    assert_eq!(scores(&runs1), first, "1 worker and 2 workers disagree");

    check_finetune_study(&runs, &tmp.join("study.jsonl"));
    std::fs::remove_dir_all(&tmp).unwrap();
}

fn study(runs: &Path, out: &Path, task: &str) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_paper-repro"))
        .args(["finetune-study", "--scale", "toy", "--threads", "1"])
        .args(["--task", task, "--epochs", "1,2", "--lrs", "0.001"])
        .arg("--data")
        .arg(data_dir())
        .arg("--runs")
        .arg(runs)
        .arg("--out")
        .arg(out)
        .output()
        .expect("paper-repro runs");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// The fine-tuning study reproduces the suite's own dev score for the same settings, writes a
/// line per epoch, and skips the runs a file already holds.
fn check_finetune_study(runs: &Path, out: &Path) {
    let (ok, log) = study(runs, out, "sst-2");
    assert!(ok, "{log}");
    let text = std::fs::read_to_string(out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // rows mlm-nsp and none × 2 seeds × (1 + 2 epoch lines)
    assert_eq!(lines.len(), 12, "{text}");
    // the 1-epoch run of seed 1 is the suite's own fine-tuning at that rate (toy: 1 epoch)
    let suite: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(runs.join("toy/table5/mlm-nsp/seed-1/eval/sst-2-lr-on-dev.json"))
            .unwrap(),
    )
    .unwrap();
    let want = suite["dev_scores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| (d["learning_rate"].as_f64().unwrap() - 1e-3).abs() < 1e-9)
        .expect("the toy grid holds 1e-3")["accuracy"]
        .as_f64()
        .unwrap();
    let got = lines
        .iter()
        .find(|l| l["row"] == "mlm-nsp" && l["seed"] == 1 && l["epochs"] == 1)
        .unwrap()["dev_accuracy"]
        .as_f64()
        .unwrap();
    assert_eq!(
        got, want,
        "study and suite disagree on the same fine-tuning"
    );
    // a second call finds every run done
    let (ok, log) = study(runs, out, "sst-2");
    assert!(ok, "{log}");
    assert_eq!(std::fs::read_to_string(out).unwrap(), text);
    let (ok, log) = study(runs, out, "squad");
    assert!(!ok && log.contains("--task \"squad\""), "{log}");
}

/// The no-pre-training control: one run (Table 5's folder) saved like a pre-training's final
/// model, linked from the other tables, with its held-out loss and no training steps.
fn check_control_run(runs: &Path) {
    let own = runs.join("table5/none/seed-1");
    for f in ["config.json", "model.safetensors", "vocab.txt"] {
        assert!(
            own.join("pretrain/final").join(f).exists(),
            "control lacks {f}"
        );
    }
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(own.join("pretrain.json")).unwrap()).unwrap();
    assert_eq!(p["steps"], 0);
    // a random model's MLM loss is about ln(vocabulary) (toy vocabulary: 400)
    let loss = p["heldout_lm_loss"].as_f64().unwrap();
    assert!((loss - 400f64.ln()).abs() < 0.5, "{loss}");
    for e in ["table8", "figure5", "table6"] {
        let l = runs.join(e).join("none/seed-1");
        assert!(
            std::fs::symlink_metadata(&l)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{e}'s control shares Table 5's run"
        );
    }
    assert!(runs
        .join("table5/none/seed-2/eval/qnli-lr-on-dev.json")
        .exists());
}

/// Each eval JSON has one test score, one dev score per learning rate of the grid, and the
/// chosen rate is the best on dev (the first on ties).
fn check_lr_picked_on_dev(eval: &Path) {
    for (task, grid) in [("sst-2", [3e-4, 1e-3]), ("pos-feature", [3e-3, 1e-2])] {
        let path = eval.join(format!("{task}-lr-on-dev.json"));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(v["score"].is_f64(), "one test score: {v}");
        let dev = v["dev_scores"].as_array().unwrap();
        assert_eq!(dev.len(), grid.len(), "{v}");
        for (d, lr) in dev.iter().zip(grid) {
            assert!(
                (d["learning_rate"].as_f64().unwrap() - lr).abs() < 1e-9,
                "{v}"
            );
        }
        let acc: Vec<f64> = dev
            .iter()
            .map(|d| d["accuracy"].as_f64().unwrap())
            .collect();
        let best = (0..acc.len()).fold(0, |b, i| if acc[i] > acc[b] { i } else { b });
        assert!(
            (v["learning_rate"].as_f64().unwrap() - grid[best]).abs() < 1e-9,
            "{v}"
        );
        assert!(v["dev_examples"].as_u64().unwrap() > 0);
    }
}

/// SQuAD-dev-split's eval JSON: one test F1 and EM, and an F1 (and EM) on dev per learning
/// rate of the toy grid, the chosen rate being the best on dev F1.
fn check_squad_eval(eval: &Path) {
    let path = eval.join("squad-lr-on-dev.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["task"], "Squad", "{v}");
    for k in ["score", "exact_match"] {
        let x = v[k].as_f64().unwrap_or_else(|| panic!("no test {k}: {v}"));
        assert!((0.0..=1.0).contains(&x), "{v}");
    }
    let grid = [3e-4, 1e-3];
    let dev = v["dev_scores"].as_array().unwrap();
    assert_eq!(dev.len(), grid.len(), "one dev score per rate: {v}");
    let f1: Vec<f64> = dev
        .iter()
        .zip(grid)
        .map(|(d, lr)| {
            assert!(
                (d["learning_rate"].as_f64().unwrap() - lr).abs() < 1e-9,
                "{v}"
            );
            assert!(d["exact_match"].is_f64(), "{v}");
            d["f1"].as_f64().unwrap()
        })
        .collect();
    let best = (0..f1.len()).fold(0, |b, i| if f1[i] > f1[b] { i } else { b });
    assert!(
        (v["learning_rate"].as_f64().unwrap() - grid[best]).abs() < 1e-9,
        "{v}"
    );
    assert_eq!(v["settings"]["label"], "SQuAD-dev-split");
    for k in ["train_examples", "dev_examples", "eval_examples"] {
        assert!(v[k].as_u64().unwrap() > 0, "{v}");
    }
}

/// Table 5 has the SQuAD-dev-split column with F1 (EM) numbers for the default and the
/// control rows, the difference and minimum-detectable-difference cells, and its baseline.
fn check_squad_in_report(report: &str) {
    let start = report.find("## Table 5: pre-training tasks").unwrap();
    let t5 = &report[start..];
    let t5 = &t5[..t5[3..].find("\n## ").map_or(t5.len(), |i| i + 3)];
    let cells = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let header = t5
        .lines()
        .find(|l| l.starts_with("| row |"))
        .expect("Table 5's value table");
    let col = cells(header)
        .iter()
        .position(|c| c == "SQuAD-dev-split F1 (EM) ours")
        .unwrap_or_else(|| panic!("no SQuAD column: {header}"));
    assert_eq!(cells(header)[col + 1], "paper SQuAD F1");
    let number = regex::Regex::new(r"^\d+\.\d ± \d+\.\d \(EM \d+\.\d ± \d+\.\d\)$").unwrap();
    for row in ["| BERT (MLM+NSP) |", "| No pre-training (random init) |"] {
        let line = t5.lines().find(|l| l.starts_with(row)).unwrap();
        let c = &cells(line)[col];
        assert!(number.is_match(c), "{row} SQuAD cell {c:?}");
    }
    let baseline = t5
        .lines()
        .find(|l| l.starts_with("| *best simple baseline*"))
        .unwrap();
    assert!(
        cells(baseline)[col].starts_with("F1 ") && cells(baseline)[col].contains(" / EM "),
        "{baseline}"
    );
    let mdd = t5
        .lines()
        .find(|l| l.starts_with("| *minimum detectable difference*"))
        .unwrap();
    assert!(!cells(mdd)[col].is_empty(), "{mdd}");
    assert!(t5.contains("SQuAD-dev-split F1 Δ ours [95% CI] → verdict"));
    let vs_none = t5
        .lines()
        .find(|l| l.starts_with("**Pre-training vs none**"))
        .unwrap();
    assert!(vs_none.contains("SQuAD-dev-split F1 "), "{vs_none}");
    // the baselines table lists it, and nothing calls it SQuAD v1.1 dev F1
    assert!(report.contains("| SQuAD-dev-split |"));
    assert!(!report.contains("SQuAD v1.1 dev F1"));
    assert!(!report.contains("Not run: the optional \"+ BiLSTM\" row of Table 5, and SQuAD"));
}

/// The control row in every table, and the headline.
fn check_controls_in_report(report: &str) {
    let section = |h: &str| {
        let start = report.find(h).unwrap_or_else(|| panic!("no {h}"));
        let rest = &report[start + h.len()..];
        &rest[..rest.find("\n## ").unwrap_or(rest.len())]
    };
    for h in [
        "## Table 5: pre-training tasks",
        "## Table 8: masking strategies",
        "## Table 6: model size",
    ] {
        let s = section(h);
        assert!(
            s.lines()
                .any(|l| l.starts_with("| No pre-training (random init)")),
            "{h} lacks the no-pre-training row"
        );
        assert!(s.contains("**Pre-training vs none**"), "{h}");
        assert!(s.contains("*minimum detectable difference*"), "{h}");
    }
    let f5 = section("## Figure 5: MLM vs LTR over pre-training");
    assert!(
        f5.contains("| 0 (no pre-training) |"),
        "Figure 5 lacks its step-0 point"
    );
    assert!(f5.contains("supervised tokens"));
    let headline =
        regex::Regex::new(r"^default row: held-out MLM loss \d+\.\d\d nats; unigram entropy of the same held-out text \d+\.\d\d nats$")
            .unwrap();
    let lines: Vec<&str> = report.lines().filter(|l| headline.is_match(l)).collect();
    assert_eq!(lines.len(), 1, "the headline line");
    let pos = report.find(lines[0]).unwrap();
    assert!(
        pos < report.find("## Setup").unwrap(),
        "the headline is near the top"
    );
    assert!(report.contains("## Engine check: the same recipe in PyTorch"));
    assert!(report.contains("Not run"));
}
