//! The CLI guards of an output: one run per folder (a lock), no fine-tuning into the model it
//! reads, and no output written over a symlink, FIFO or device node. Every refusal is an
//! error (exit 1) naming the path, never a panic.

use cloze::train::checkpoint::write_atomic;
use cloze::train::lock::RunLock;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cloze-guards-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cloze(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloze"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

fn assert_refused(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_locked_folder_refuses_a_second_run_until_released() {
    let dir = scratch("lock");
    let held = RunLock::acquire(&dir).unwrap();
    let e = RunLock::acquire(&dir).unwrap_err().to_string();
    assert!(
        e.contains("in use by another cloze run") && e.contains(s(&dir)),
        "{e}"
    );
    // the CLI refuses too (fine-tuning into the locked folder)
    let model = scratch("lock-model");
    let out = cloze(&[
        "finetune",
        "--model",
        s(&model),
        "--train",
        "t.jsonl",
        "--dev",
        "d.jsonl",
        "--output",
        s(&dir),
    ]);
    assert_refused(&out, &["in use by another cloze run"]);
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
        let out = cloze(&[
            "finetune",
            "--model",
            s(&model),
            "--train",
            "t.jsonl",
            "--dev",
            "d.jsonl",
            "--output",
            s(&output),
        ]);
        assert_refused(&out, &["is the --model folder"]);
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
        assert!(e.contains(s(p)) && e.contains(kind), "{e}");
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
        let out = cloze(&[
            "finetune",
            "--model",
            s(&model),
            "--train",
            "t.jsonl",
            "--dev",
            "d.jsonl",
            "--output",
            s(p),
        ]);
        assert_refused(&out, &["not a directory"]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&model).unwrap();
}
