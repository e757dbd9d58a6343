//! Readers for labelled data: TSV with a header (GLUE, the registry-built tasks), header-less
//! TSV by column index (CoLA), JSON lines, and CoNLL-style token tagging.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// One labelled example. `label` is a class index (classification) or, for regression tasks
/// such as STS-B, use [`Example::score`].
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// The first (or only) text.
    pub text_a: String,
    /// The second text of a pair.
    pub text_b: Option<String>,
    /// The class index (0 for regression examples).
    pub label: usize,
    /// The raw label for regression tasks.
    pub score: Option<f32>,
}

/// Where a task's fields are in its TSV file.
#[derive(Clone, Debug, PartialEq)]
pub struct TsvSpec {
    /// Whether the first line names the columns.
    pub header: bool,
    /// Column of the first text (a header name, or a 0-based index when there is no header).
    pub text_a: String,
    /// Column of the second text of a pair task.
    pub text_b: Option<String>,
    /// Column of the label (or score).
    pub label: String,
    /// Label strings in class order (e.g. `["not_entailment", "entailment"]`); `None` when the
    /// label column already holds class indices.
    pub label_names: Option<Vec<String>>,
    /// Labels are real scores (regression).
    pub regression: bool,
    /// Number of classes of the task; a class index outside `0..num_labels` is an error
    /// naming the line. `None` accepts any index below [`MAX_LABELS`].
    pub num_labels: Option<usize>,
}

/// Largest number of classes accepted from data or `--num-labels` (a label of 10⁹ would
/// otherwise size a classifier of 10⁹ rows).
pub const MAX_LABELS: usize = 1 << 16;

/// Checks a class index read from line `line` of `path` against the task's class count.
fn check_label(path: &Path, line: usize, label: usize, num_labels: Option<usize>) -> Result<()> {
    let limit = num_labels.unwrap_or(MAX_LABELS);
    if label >= limit {
        let why = match num_labels {
            Some(n) => format!("the task has {n} classes (0..={})", n - 1),
            None => format!("class indices must be below {MAX_LABELS}"),
        };
        return Err(fmt_err(
            path,
            format!("line {line}: label {label} is out of range: {why}"),
        ));
    }
    Ok(())
}

impl TsvSpec {
    fn new(text_a: &str, text_b: Option<&str>, label: &str) -> TsvSpec {
        TsvSpec {
            header: true,
            text_a: text_a.into(),
            text_b: text_b.map(Into::into),
            label: label.into(),
            label_names: None,
            regression: false,
            // every classification task known here is binary
            num_labels: Some(2),
        }
    }

    /// The layout of a known task: `sst-2`, `mrpc`, `rte`, `cola`, `qnli`, `mnli` (also
    /// `mnli-m` / `mnli-mm`: the matched and mismatched dev files share the layout), `sts-b`
    /// (regression), `mr-vader`, `wn-wic`, `wn-glossmatch`, `bible-para`.
    pub fn for_task(task: &str) -> Result<TsvSpec> {
        let names = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        Ok(match task.to_ascii_lowercase().as_str() {
            "sst-2" | "sst2" => TsvSpec::new("sentence", None, "label"),
            "mrpc" => TsvSpec::new("#1 String", Some("#2 String"), "Quality"),
            "rte" => TsvSpec {
                label_names: names(&["not_entailment", "entailment"]),
                ..TsvSpec::new("sentence1", Some("sentence2"), "label")
            },
            "qnli" => TsvSpec {
                label_names: names(&["not_entailment", "entailment"]),
                ..TsvSpec::new("question", Some("sentence"), "label")
            },
            "cola" => TsvSpec {
                header: false,
                ..TsvSpec::new("3", None, "1")
            },
            // GLUE's MNLI: train.tsv, dev_matched.tsv and dev_mismatched.tsv share this layout
            "mnli" | "mnli-m" | "mnli-mm" => TsvSpec {
                label_names: names(&["contradiction", "entailment", "neutral"]),
                ..TsvSpec::new("sentence1", Some("sentence2"), "gold_label")
            },
            "sts-b" | "stsb" => TsvSpec {
                regression: true,
                num_labels: None,
                ..TsvSpec::new("sentence1", Some("sentence2"), "score")
            },
            "mr-vader" => TsvSpec::new("sentence", None, "label"),
            "wn-wic" | "bible-para" => TsvSpec::new("sentence1", Some("sentence2"), "label"),
            "wn-glossmatch" => TsvSpec::new("sentence", Some("gloss"), "label"),
            other => {
                return Err(Error::Invalid {
                    op: "TsvSpec::for_task",
                    detail: format!("unknown task {other:?}; known: sst-2, mrpc, rte, cola, qnli, mnli, sts-b, mr-vader, wn-wic, wn-glossmatch, bible-para"),
                })
            }
        })
    }
}

fn fmt_err(path: &Path, detail: String) -> Error {
    Error::Format {
        path: path.display().to_string(),
        detail,
    }
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let upto = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..upto].iter().filter(|&&b| b == b'\n').count() + 1;
        fmt_err(path, format!("line {line}: invalid UTF-8"))
    })
}

/// Reads a TSV task file (no quoting: GLUE and the task files keep tabs and newlines out of
/// cells).
pub fn read_tsv(path: impl AsRef<Path>, spec: &TsvSpec) -> Result<Vec<Example>> {
    let path = path.as_ref();
    let text = read_text(path)?;
    let mut lines = text.lines().enumerate();
    let col = |name: &str, header: &BTreeMap<String, usize>| -> Result<usize> {
        if spec.header {
            header.get(name).copied().ok_or_else(|| {
                fmt_err(
                    path,
                    format!(
                        "no column named {name:?}; columns: {:?}",
                        header.keys().collect::<Vec<_>>()
                    ),
                )
            })
        } else {
            name.parse()
                .map_err(|_| fmt_err(path, format!("column {name:?} is not an index")))
        }
    };
    let mut header = BTreeMap::new();
    if spec.header {
        let (_, first) = lines
            .next()
            .ok_or_else(|| fmt_err(path, "empty file: no header line".into()))?;
        for (i, name) in first.trim_start_matches('\u{feff}').split('\t').enumerate() {
            header.insert(name.trim().to_string(), i);
        }
    }
    let ca = col(&spec.text_a, &header)?;
    let cb = spec
        .text_b
        .as_deref()
        .map(|c| col(c, &header))
        .transpose()?;
    let cl = col(&spec.label, &header)?;
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split('\t').collect();
        let get = |c: usize| -> Result<&str> {
            cells.get(c).copied().ok_or_else(|| {
                fmt_err(
                    path,
                    format!("line {}: {} columns, need column {c}", i + 1, cells.len()),
                )
            })
        };
        let raw = get(cl)?.trim();
        let (label, score) = if spec.regression {
            let s: f32 = raw.parse().map_err(|_| {
                fmt_err(
                    path,
                    format!("line {}: score {raw:?} is not a number", i + 1),
                )
            })?;
            (0, Some(s))
        } else if let Some(names) = &spec.label_names {
            let l = names.iter().position(|n| n == raw).ok_or_else(|| {
                fmt_err(
                    path,
                    format!("line {}: label {raw:?} is not one of {names:?}", i + 1),
                )
            })?;
            (l, None)
        } else {
            let l: usize = raw.parse().map_err(|_| {
                fmt_err(
                    path,
                    format!("line {}: label {raw:?} is not a class index", i + 1),
                )
            })?;
            check_label(path, i + 1, l, spec.num_labels)?;
            (l, None)
        };
        out.push(Example {
            text_a: get(ca)?.to_string(),
            text_b: cb.map(get).transpose()?.map(str::to_string),
            label,
            score,
        });
    }
    Ok(out)
}

/// Reads JSON lines `{"text": .., "text_pair": .. (optional), "label": <int>}`.
pub fn read_jsonl(path: impl AsRef<Path>) -> Result<Vec<Example>> {
    let path = path.as_ref();
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| fmt_err(path, format!("line {}: {e}", i + 1)))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let text_a = s("text")
            .ok_or_else(|| fmt_err(path, format!("line {}: no string field \"text\"", i + 1)))?;
        let label = v.get("label").and_then(|x| x.as_u64()).ok_or_else(|| {
            fmt_err(
                path,
                format!("line {}: no non-negative integer field \"label\"", i + 1),
            )
        })?;
        let label = usize::try_from(label).unwrap_or(usize::MAX);
        check_label(path, i + 1, label, None)?;
        out.push(Example {
            text_a,
            text_b: s("text_pair"),
            label,
            score: None,
        });
    }
    Ok(out)
}

/// A tagged sentence: tokens and one tag per token.
#[derive(Clone, Debug, PartialEq)]
pub struct TaggedSentence {
    /// The words.
    pub tokens: Vec<String>,
    /// One tag per word.
    pub tags: Vec<String>,
}

/// Reads CoNLL-style tagging data: a header line naming the columns, one token per line,
/// a blank line between sentences; `tag_column` picks the tag (e.g. `upos`).
pub fn read_tagging(path: impl AsRef<Path>, tag_column: &str) -> Result<Vec<TaggedSentence>> {
    let path = path.as_ref();
    let text = read_text(path)?;
    let mut lines = text.lines().enumerate();
    let (_, head) = lines
        .next()
        .ok_or_else(|| fmt_err(path, "empty file".into()))?;
    let cols: Vec<&str> = head.split('\t').collect();
    let tc = cols
        .iter()
        .position(|c| *c == tag_column)
        .ok_or_else(|| fmt_err(path, format!("no column {tag_column:?}; columns: {cols:?}")))?;
    let mut out = Vec::new();
    let mut cur = TaggedSentence {
        tokens: vec![],
        tags: vec![],
    };
    for (i, line) in lines {
        if line.trim().is_empty() {
            if !cur.tokens.is_empty() {
                out.push(std::mem::replace(
                    &mut cur,
                    TaggedSentence {
                        tokens: vec![],
                        tags: vec![],
                    },
                ));
            }
            continue;
        }
        let cells: Vec<&str> = line.split('\t').collect();
        if cells.len() <= tc {
            return Err(fmt_err(
                path,
                format!("line {}: {} columns, need {}", i + 1, cells.len(), tc + 1),
            ));
        }
        cur.tokens.push(cells[0].to_string());
        cur.tags.push(cells[tc].to_string());
    }
    if !cur.tokens.is_empty() {
        out.push(cur);
    }
    Ok(out)
}
