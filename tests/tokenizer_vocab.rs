//! Loading `vocab.txt`: ids and the errors for bad files.

mod common;

use common::assert_mentions;
use std::path::PathBuf;

use cloze::tokenizer::Vocab;
use cloze::Error;

fn write(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("cloze-tok-vocab-{}-{name}.txt", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

fn load_err(name: &str, text: &str) -> String {
    let p = write(name, text);
    let e = Vocab::load(&p).unwrap_err();
    std::fs::remove_file(&p).unwrap();
    assert!(matches!(e, Error::Format { .. }), "{e:?}");
    e.to_string()
}

#[test]
fn ids_are_line_numbers() {
    let p = write("ok", "[PAD]\r\n[UNK]\n[CLS]\n[SEP]\nhello\n##lo\n");
    let v = Vocab::load(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    assert_eq!(v.len(), 6);
    assert_eq!(v.id("[PAD]"), Some(0), "CRLF line ending dropped");
    assert_eq!(v.id("hello"), Some(4));
    assert_eq!(v.token(5), Some("##lo"));
    assert_eq!(v.token(6), None);
    assert_eq!(
        (v.pad_id(), v.unk_id(), v.cls_id(), v.sep_id()),
        (0, 1, 2, 3)
    );
    assert_eq!(v.mask_id(), None);
    assert_eq!(v.max_token_chars(), 5);
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let e = Vocab::load("/definitely/not/here/vocab.txt").unwrap_err();
    common::assert_io_error_naming(&e, "/definitely/not/here/vocab.txt");
}

#[test]
fn empty_vocab_is_an_error() {
    assert!(load_err("empty", "").contains("empty"));
}

#[test]
fn duplicate_token_is_an_error_naming_it() {
    let e = load_err("dup", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\nthe\n");
    assert_mentions(&e, &["\"the\"", "line 6", "line 5"]);
}

#[test]
fn missing_specials_are_named() {
    let e = load_err("nospecial", "[PAD]\n[CLS]\nthe\n");
    assert_mentions(&e, &["[UNK]", "[SEP]"]);
    assert!(
        !e.contains("[CLS]") && !e.contains("[PAD]"),
        "only the missing ones: {e}"
    );
}

#[test]
fn save_then_load_round_trips() {
    let v = Vocab::from_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "é", "##x"]).unwrap();
    let p = write("roundtrip", "");
    v.save(&p).unwrap();
    let w = Vocab::load(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    assert_eq!(v.tokens(), w.tokens());
}

#[test]
fn save_refuses_a_token_with_a_line_break() {
    let v = Vocab::from_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a\nb"]).unwrap();
    let p = std::env::temp_dir().join(format!("cloze-tok-vocab-{}-nl.txt", std::process::id()));
    let e = v.save(&p).unwrap_err().to_string();
    let _ = std::fs::remove_file(&p);
    assert_mentions(&e, &["id 4", "line break"]);
}

#[test]
fn non_utf8_vocab_names_the_line() {
    let p = std::env::temp_dir().join(format!("cloze-vocab-utf8-{}.txt", std::process::id()));
    std::fs::write(&p, b"[PAD]\n[UNK]\nca\xfft\n[CLS]\n[SEP]\n").unwrap();
    let e = cloze::tokenizer::Vocab::load(&p).unwrap_err().to_string();
    assert_mentions(&e, &["line 3, column 3", "UTF-8"]);
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn a_byte_order_mark_is_named_when_it_hides_the_first_special_token() {
    let e = load_err("bom", "\u{feff}[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    assert_mentions(&e, &["[PAD]", "byte-order mark"]);
    // without one, the same tokens load
    let ok = write("no-bom", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    Vocab::load(ok).unwrap();
}
