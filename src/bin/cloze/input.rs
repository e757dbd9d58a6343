//! The JSON-lines input shared by `cloze tokenize` and `cloze embed`.

use serde::Deserialize;
use std::fs::File;
use std::io::{self, BufRead, BufReader};

/// One input line: `{"text": ..., "text_pair": ... (optional)}`.
#[derive(Deserialize)]
pub struct Line {
    pub text: String,
    #[serde(default)]
    pub text_pair: Option<String>,
}

/// Opens `--input` (`-` is standard input); returns the reader and the name errors use.
pub fn open(input: &str) -> Result<(Box<dyn BufRead>, String), String> {
    if input == "-" {
        Ok((
            Box::new(BufReader::new(io::stdin().lock())),
            "<stdin>".into(),
        ))
    } else {
        let f = File::open(input).map_err(|e| format!("cannot open --input {input}: {e}"))?;
        Ok((Box::new(BufReader::new(f)), input.into()))
    }
}
