//! The CLI guards of an output: one run per folder (a lock), no fine-tuning into the model it
//! reads, and no output written over a symlink, FIFO or device node. Every refusal is an
//! error (exit 1) naming the path, never a panic.

mod common;

use cloze::train::checkpoint::write_atomic;
use cloze::train::lock::RunLock;
use common::assert_mentions;
use common::cli::{cloze, Cloze};
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cloze-guards-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Asserts `c` is refused (exit 1, no panic) with `needle` in its message.
fn assert_refused(c: Cloze, needle: &str) {
    assert_mentions(&c.refused(), &[needle]);
}

/// `cloze finetune` from `model` into `output`, on data files that need not exist (the
/// output is checked before they are read).
fn finetune_into(model: &Path, output: &Path) -> Cloze {
    cloze("finetune")
        .model(model)
        .opt("--train", "t.jsonl")
        .opt("--dev", "d.jsonl")
        .opt("--output", output)
}

/// A small pretrain config; `model_extra` goes into `[model]`.
fn pretrain_toml(model_extra: &str, train: &str) -> String {
    format!(
        "output_dir = \"run\"\n[model]\npreset = \"tiny\"\n{model_extra}\n[data]\nvocab = \"vocab.txt\"\ntrain = \"{train}\"\nheldout_every = 2\nmax_seq_length = 16\nmax_predictions_per_seq = 2\n[train]\nobjective = \"mlm\"\nbatch_size = 2\nsteps = 1\nlearning_rate = 1e-3\nwarmup_steps = 0\nseed = 1\n"
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_locked_folder_refuses_a_second_run_until_released() {
    let dir = scratch("lock");
    let held = RunLock::acquire(&dir).unwrap();
    let e = RunLock::acquire(&dir).unwrap_err().to_string();
    assert_mentions(&e, &["in use by another cloze run", s(&dir)]);
    // the CLI refuses too (fine-tuning into the locked folder)
    let model = scratch("lock-model");
    assert_refused(finetune_into(&model, &dir), "in use by another cloze run");
    drop(held);
    RunLock::acquire(&dir).expect("released on drop");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&model).unwrap();
}

#[test]
fn finetune_output_equal_to_the_model_folder_is_refused_however_spelled() {
    let model = scratch("same");
    std::fs::write(model.join("vocab.txt"), "[PAD]\n").unwrap();
    std::fs::create_dir_all(model.join("sub")).unwrap();
    let spelled = model.join("sub").join("..");
    for output in [model.clone(), spelled] {
        assert_refused(finetune_into(&model, &output), "is the --model folder");
    }
    assert_eq!(
        std::fs::read_to_string(model.join("vocab.txt")).unwrap(),
        "[PAD]\n"
    );
    std::fs::remove_dir_all(&model).unwrap();
}

#[cfg(unix)]
#[test]
fn outputs_never_replace_a_symlink_or_fifo() {
    let dir = scratch("special");
    let target = dir.join("target.txt");
    std::fs::write(&target, "keep me").unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (p, kind) in [(&link, "symbolic link"), (&fifo, "not a regular file")] {
        let e = write_atomic(p, b"new").unwrap_err().to_string();
        assert_mentions(&e, &[s(p), kind]);
    }
    let md = std::fs::symlink_metadata(&link).unwrap();
    assert!(md.file_type().is_symlink(), "the symlink was replaced");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    // finetune --output naming a symlink or FIFO is refused before anything runs
    let model = scratch("special-model");
    for p in [&link, &fifo] {
        assert_refused(finetune_into(&model, p), "not a directory");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&model).unwrap();
}

/// A set of bad inputs across the commands: each is an error (exit 1) naming the bad value,
/// with no panic text.
#[test]
fn bad_inputs_across_the_cli_are_errors_not_panics() {
    let dir = scratch("bad-inputs");
    let vocab = dir.join("vocab.txt");
    std::fs::write(&vocab, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ncat\n").unwrap();
    let input = dir.join("in.jsonl");
    std::fs::write(&input, "{\"text\": \"cat\"}\n").unwrap();
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    let cfg = dir.join("p.toml");
    std::fs::write(
        &cfg,
        pretrain_toml("hidden_size = 1099511627776", "in.jsonl"),
    )
    .unwrap();
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let mut j: serde_json::Value =
        serde_json::from_str(&cloze::bert::BertConfig::tiny().to_json_string()).unwrap();
    j["hidden_size"] = serde_json::json!(1u64 << 62);
    std::fs::write(model.join("config.json"), j.to_string()).unwrap();
    let (o_st, missing) = (dir.join("o.st"), dir.join("missing.toml"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "tokenize",
                "--vocab",
                s(&vocab),
                "--input",
                s(&input),
                "--pad-to",
                "18446744073709551615",
            ],
            "18446744073709551615",
        ),
        (
            vec!["pretrain", "--config", s(&cfg)],
            "hidden_size 1099511627776",
        ),
        (
            vec![
                "embed",
                "--model",
                s(&model),
                "--input",
                s(&input),
                "--output",
                s(&o_st),
            ],
            "hidden_size 4611686018427387904",
        ),
        (
            vec!["eval", "--model", s(&model), "--data", s(&empty)],
            "no examples",
        ),
        (vec!["pretrain", "--config", s(&missing)], "missing.toml"),
    ];
    for (args, needle) in cases {
        assert_refused(cloze(args[0]).args(&args[1..]), needle);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pretrain_fresh_on_a_locked_folder_deletes_nothing() {
    let dir = scratch("fresh");
    std::fs::write(
        dir.join("vocab.txt"),
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ncat\n",
    )
    .unwrap();
    std::fs::write(dir.join("train.txt"), "cat cat.\ncat.\n\ncat.\ncat cat.\n").unwrap();
    let cfg = dir.join("p.toml");
    std::fs::write(&cfg, pretrain_toml("", "train.txt")).unwrap();
    let ck = dir.join("run/checkpoints/step-00000001");
    std::fs::create_dir_all(&ck).unwrap();
    std::fs::write(ck.join("marker"), "x").unwrap();
    let held = RunLock::acquire(&dir.join("run")).unwrap();
    assert_refused(
        cloze("pretrain").opt("--config", &cfg).args(["--fresh"]),
        "in use by another cloze run",
    );
    assert!(
        ck.join("marker").exists(),
        "--fresh deleted a locked run's checkpoints"
    );
    drop(held);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_finetune_leaves_no_folder_it_created() {
    let dir = scratch("failed-finetune");
    let model = dir.join("no-such-model");
    // missing data files, then a missing model: each fails after the output was locked
    let out = dir.join("out");
    assert_refused(finetune_into(&model, &out), "t.jsonl");
    assert!(!out.exists(), "a failed run left {}", out.display());
    std::fs::write(dir.join("t.jsonl"), "{\"text\": \"a\", \"label\": 0}\n").unwrap();
    std::fs::write(dir.join("d.jsonl"), "{\"text\": \"b\", \"label\": 1}\n").unwrap();
    let c = cloze("finetune")
        .model(&model)
        .opt("--train", dir.join("t.jsonl"))
        .opt("--dev", dir.join("d.jsonl"))
        .opt("--output", &out);
    assert_refused(c, "no-such-model");
    assert!(!out.exists(), "a failed run left {}", out.display());
    // a folder that existed before the run is the user's: it stays, with its files
    let kept = dir.join("kept");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(kept.join("notes.txt"), "mine").unwrap();
    assert_refused(finetune_into(&model, &kept), "t.jsonl");
    assert_eq!(
        std::fs::read_to_string(kept.join("notes.txt")).unwrap(),
        "mine"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
