//! The task readers on the real files in ../shared/data (counts from the data's own README and
//! summary.json), and their errors on malformed input.

mod common;

use cloze::finetune::data::*;
use common::assert_mentions;
use std::path::PathBuf;

fn data_dir() -> PathBuf {
    common::shared_path("data")
}

#[test]
fn task_files_read_with_the_documented_row_counts() {
    let d = data_dir();
    // rows per split from tasks/summary.json
    let cases = [
        ("mr-vader", "dev.tsv", 1057),
        ("wn-wic", "dev.tsv", 1462),
        ("wn-glossmatch", "dev.tsv", 6610),
        ("bible-para", "dev.tsv", 7344),
    ];
    for (task, file, rows) in cases {
        let ex = read_tsv(
            d.join("tasks").join(task).join(file),
            &TsvSpec::for_task(task).unwrap(),
        )
        .unwrap();
        assert_eq!(ex.len(), rows, "{task}");
        assert!(ex.iter().all(|e| e.label <= 1));
        assert_eq!(ex[0].text_b.is_some(), task != "mr-vader");
    }
}

#[test]
fn glue_files_read() {
    let d = data_dir().join("glue");
    let rte = read_tsv(d.join("RTE/dev.tsv"), &TsvSpec::for_task("rte").unwrap()).unwrap();
    assert_eq!(rte.len(), 277);
    assert_eq!(rte[0].label, 0, "first RTE dev example is not_entailment");
    let mrpc = read_tsv(d.join("MRPC/dev.tsv"), &TsvSpec::for_task("mrpc").unwrap()).unwrap();
    assert_eq!(mrpc.len(), 408);
    let cola = read_tsv(d.join("CoLA/dev.tsv"), &TsvSpec::for_task("cola").unwrap()).unwrap();
    assert_eq!(cola.len(), 1043);
    assert_eq!(
        cola[0].text_a,
        "The sailors rode the breeze clear of the rocks."
    );
    let sst = read_tsv(
        d.join("SST-2/dev.tsv"),
        &TsvSpec::for_task("sst-2").unwrap(),
    )
    .unwrap();
    assert_eq!(sst.len(), 872);
    let sts = read_tsv(
        d.join("STS-B/dev.tsv"),
        &TsvSpec::for_task("sts-b").unwrap(),
    )
    .unwrap();
    assert_eq!(sts[0].score, Some(5.0));
}

#[test]
fn tagging_file_reads_sentences() {
    let s = read_tagging(data_dir().join("tasks/brown-pos/dev.tsv"), "upos").unwrap();
    let tokens: usize = s.iter().map(|x| x.tokens.len()).sum();
    assert_eq!(tokens, 119_675, "token count from the data README");
    assert_eq!(s[0].tokens[0], "If");
    assert_eq!(s[0].tags[0], "ADP");
}

#[test]
fn malformed_files_give_errors_naming_the_line() {
    let dir = std::env::temp_dir().join(format!("cloze-ft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.tsv");
    std::fs::write(&p, "sentence\tlabel\ngood\t1\nbad\tpositive\n").unwrap();
    let err = read_tsv(&p, &TsvSpec::for_task("sst-2").unwrap())
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["line 3", "positive"]);
    std::fs::write(&p, "text\tlabel\nx\t1\n").unwrap();
    let err = read_tsv(&p, &TsvSpec::for_task("sst-2").unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("sentence"), "{err}");
    let j = dir.join("bad.jsonl");
    std::fs::write(&j, "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\"}\n").unwrap();
    let err = read_jsonl(&j).unwrap_err().to_string();
    assert_mentions(&err, &["line 2", "label"]);
    // MNLI is a known layout now; an unknown task is an error naming it and the known ones
    assert!(TsvSpec::for_task("mnli").is_ok());
    let err = TsvSpec::for_task("snli").unwrap_err().to_string();
    assert_mentions(&err, &["\"snli\"", "mnli"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn labels_out_of_the_task_range_are_errors_naming_the_line_and_value() {
    let dir = std::env::temp_dir().join(format!("cloze-ft-labels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // SST-2 is binary: a 7 on line 3 is an error, not an 8-class model
    let tsv = dir.join("sst.tsv");
    std::fs::write(&tsv, "sentence\tlabel\ngood film\t1\nodd film\t7\n").unwrap();
    let spec = TsvSpec::for_task("sst-2").unwrap();
    let e = read_tsv(&tsv, &spec).unwrap_err().to_string();
    assert_mentions(&e, &["line 3", "label 7"]);
    // JSON lines: a label of 10^9 (or beyond u64's usize range) is refused
    for big in ["1000000000", "18446744073709551615"] {
        let jl = dir.join("big.jsonl");
        std::fs::write(
            &jl,
            format!("{{\"text\": \"a\", \"label\": 0}}\n\n{{\"text\": \"b\", \"label\": {big}}}\n"),
        )
        .unwrap();
        let e = read_jsonl(&jl).unwrap_err().to_string();
        assert_mentions(&e, &["line 3", &format!("label {big}")]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scoring_refuses_no_examples_and_labels_the_model_cannot_predict() {
    use cloze::finetune::trainer::gold_labels;
    let ex = |label| Example {
        text_a: "x".into(),
        text_b: None,
        label,
        score: None,
    };
    let e = gold_labels(&[], 2, "eval").unwrap_err().to_string();
    assert!(e.contains("no eval examples"), "{e}");
    let e = gold_labels(&[ex(0), ex(1), ex(5)], 2, "dev")
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["dev example 2", "label 5"]);
    assert_eq!(gold_labels(&[ex(1), ex(0)], 2, "dev").unwrap(), vec![1, 0]);
}
