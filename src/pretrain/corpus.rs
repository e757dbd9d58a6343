//! Reading a corpus in BERT's pre-training format: one sentence per line, a blank line between
//! documents, UTF-8.

use crate::error::{Error, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// A document: its sentences, in order.
pub type Document = Vec<String>;

/// Streams documents from a reader. Invalid UTF-8 is an error naming `source` and the line.
pub fn read_documents(reader: impl std::io::Read, source: &str) -> Result<Vec<Document>> {
    let mut docs = Vec::new();
    let mut current: Document = Vec::new();
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(|e| Error::Io {
            path: source.to_string(),
            source: e,
        })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let line = std::str::from_utf8(&buf).map_err(|e| Error::Format {
            path: source.to_string(),
            detail: format!("line {line_no}: invalid UTF-8 at byte {}", e.valid_up_to()),
        })?;
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            if !current.is_empty() {
                docs.push(std::mem::take(&mut current));
            }
        } else {
            current.push(line.to_string());
        }
    }
    if !current.is_empty() {
        docs.push(current);
    }
    Ok(docs)
}

/// Reads a corpus file.
pub fn read_corpus_file(path: impl AsRef<Path>) -> Result<Vec<Document>> {
    let path = path.as_ref();
    let f = std::fs::File::open(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    read_documents(f, &path.display().to_string())
}

/// Splits documents into (train, held-out): every `every`-th document (counting from
/// `offset`) is held out. Whole documents only, so no held-out sentence has a neighbour in
/// training.
pub fn split_by_document(
    docs: Vec<Document>,
    every: usize,
    offset: usize,
) -> Result<(Vec<Document>, Vec<Document>)> {
    if every < 2 {
        return Err(Error::Invalid {
            op: "split_by_document",
            detail: format!("every = {every}: need at least 2 so both splits are non-empty"),
        });
    }
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for (i, d) in docs.into_iter().enumerate() {
        if i % every == offset % every {
            held.push(d);
        } else {
            train.push(d);
        }
    }
    Ok((train, held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_separate_documents() {
        let text = "A one.\nA two.\n\n\nB one.\n\nC one.\r\nC two.\n";
        let docs = read_documents(text.as_bytes(), "mem").unwrap();
        assert_eq!(
            docs,
            vec![
                vec!["A one.".to_string(), "A two.".into()],
                vec!["B one.".to_string()],
                vec!["C one.".to_string(), "C two.".into()],
            ]
        );
    }

    #[test]
    fn invalid_utf8_names_source_and_line() {
        let bytes = b"ok\nalso ok\nbad \xff here\n";
        let err = read_documents(&bytes[..], "corpus.txt")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("corpus.txt") && err.contains("line 3"),
            "{err}"
        );
    }

    #[test]
    fn split_keeps_whole_documents() {
        let docs: Vec<Document> = (0..10).map(|i| vec![format!("s{i}")]).collect();
        let (tr, ho) = split_by_document(docs, 5, 0).unwrap();
        assert_eq!(tr.len(), 8);
        assert_eq!(ho, vec![vec!["s0".to_string()], vec!["s5".to_string()]]);
        assert!(split_by_document(vec![], 1, 0).is_err());
    }
}
