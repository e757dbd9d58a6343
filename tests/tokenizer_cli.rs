//! `cloze tokenize` end to end: the built binary on a small vocabulary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

/// A fresh scratch folder for one test, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("cloze-tok-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// ids: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 the=5 cat=6 sat=7 on=8 mat=9 ##s=10 .=11
const VOCAB: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\non\nmat\n##s\n.\n";

fn run(dir: &Scratch, input: &str, extra: &[&str], stdin: bool) -> Output {
    let dir: &Path = &dir.0;
    let vocab = dir.join("vocab.txt");
    std::fs::write(&vocab, VOCAB).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloze"));
    cmd.arg("tokenize").arg("--vocab").arg(&vocab);
    if stdin {
        cmd.args(["--input", "-"]).stdin(Stdio::piped());
    } else {
        let path = dir.join("in.jsonl");
        std::fs::write(&path, input).unwrap();
        cmd.arg("--input").arg(&path).stdin(Stdio::null());
    }
    cmd.args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run the cloze binary");
    if stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "cloze failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("output line is JSON"))
        .collect()
}

/// Asserts each named field of an output line.
fn assert_fields<const N: usize>(line: &Value, want: [(&str, Value); N]) {
    for (field, value) in want {
        assert_eq!(line[field], value, "{field} of {line}");
    }
}

const INPUT: &str = "{\"text\": \"The cats sat.\"}\n\n{\"text\": \"the cat\", \"text_pair\": \"on the MAT\", \"id\": 7}\n";

#[test]
fn tokenize_file_singles_and_pairs() {
    let dir = scratch("file");
    let got = lines(&run(&dir, INPUT, &[], false));
    assert_eq!(got.len(), 2, "blank line skipped");
    assert_fields(
        &got[0],
        [
            ("input_ids", json!([2, 5, 6, 10, 7, 11, 3])),
            (
                "tokens",
                json!(["[CLS]", "the", "cat", "##s", "sat", ".", "[SEP]"]),
            ),
            ("token_type_ids", json!([0, 0, 0, 0, 0, 0, 0])),
            ("attention_mask", json!([1, 1, 1, 1, 1, 1, 1])),
        ],
    );
    assert_fields(
        &got[1],
        [
            ("input_ids", json!([2, 5, 6, 3, 8, 5, 9, 3])),
            ("token_type_ids", json!([0, 0, 0, 0, 1, 1, 1, 1])),
        ],
    );
}

#[test]
fn tokenize_stdin_with_truncation_and_padding() {
    let dir = scratch("stdin");
    let out = run(
        &dir,
        INPUT,
        &["--max-length", "6", "--truncation", "--pad-to", "7"],
        true,
    );
    let got = lines(&out);
    // Single: [CLS] + first 4 pieces + [SEP], one [PAD].
    assert_fields(
        &got[0],
        [
            ("input_ids", json!([2, 5, 6, 10, 7, 3, 0])),
            ("attention_mask", json!([1, 1, 1, 1, 1, 1, 0])),
        ],
    );
    // Pair 2 + 3 pieces + 3 specials = 8 > 6: the longer second text loses 1, then on the
    // 2-2 tie the second again.
    assert_fields(
        &got[1],
        [
            ("input_ids", json!([2, 5, 6, 3, 8, 3, 0])),
            ("token_type_ids", json!([0, 0, 0, 0, 1, 1, 0])),
        ],
    );
}

#[test]
fn bad_json_line_names_the_line() {
    let dir = scratch("badjson");
    let out = run(&dir, "{\"text\": \"ok\"}\n{\"text\": oops}\n", &[], false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "stderr: {err}");
    let out = run(&dir, "{\"txt\": \"no text field\"}\n", &[], false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("line 1") && err.contains("text"),
        "stderr: {err}"
    );
}

#[test]
fn too_long_without_truncation_and_tiny_max_length_are_errors() {
    let dir = scratch("limits");
    let out = run(&dir, INPUT, &["--max-length", "5"], false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("line 1") && err.contains("max_length 5"),
        "stderr: {err}"
    );
    let out = run(&dir, INPUT, &["--max-length", "1", "--truncation"], false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("max_length 1"),
        "stderr: {err}"
    );
    // --truncation without --max-length is refused by the argument parser.
    let out = run(&dir, INPUT, &["--truncation"], false);
    assert!(!out.status.success());
}

#[test]
fn oversized_pad_to_is_an_error_naming_the_value_not_an_abort() {
    let dir = scratch("padto");
    for v in ["1000000000", &usize::MAX.to_string()] {
        let out = run(&dir, INPUT, &["--pad-to", v], false);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{v}: stderr {err}");
        assert!(err.contains("--pad-to") && err.contains(v), "{v}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("memory allocation"),
            "{err}"
        );
    }
}

#[test]
fn a_bad_cloze_kernel_value_is_an_error_at_startup_not_a_panic() {
    let dir = scratch("kernel");
    let vocab = dir.0.join("vocab.txt");
    std::fs::write(&vocab, VOCAB).unwrap();
    let input = dir.0.join("in.jsonl");
    std::fs::write(&input, INPUT).unwrap();
    for bad in ["sse9", "AVX-9000"] {
        let out = Command::new(env!("CARGO_BIN_EXE_cloze"))
            .args(["tokenize", "--vocab"])
            .arg(&vocab)
            .arg("--input")
            .arg(&input)
            .env("CLOZE_KERNEL", bad)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {err}");
        assert!(
            err.to_lowercase().contains(&bad.to_lowercase()) && err.contains("CLOZE_KERNEL"),
            "{err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "work was done before the check");
    }
}
