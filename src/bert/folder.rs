//! The settings an HF / sentence-transformers model folder carries besides `config.json`:
//!
//! - `tokenizer_config.json`: `do_lower_case` (default `true`, uncased BERT), `strip_accents`,
//!   `model_max_length`;
//! - `sentence_bert_config.json`: `max_seq_length` (sentence-transformers truncates to it);
//! - `1_Pooling/config.json` (the folder `modules.json` names for the `Pooling` module):
//!   mean, `[CLS]` or max pooling;
//! - `modules.json`: whether a `Normalize` module follows the pooling.
//!
//! Missing files mean "not set". Callers let their own flags override these values.
//!
//! ```
//! use cloze::bert::folder::{FolderSettings, Pooling};
//! let dir = std::env::temp_dir().join(format!("cloze-folder-doc-{}", std::process::id()));
//! std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
//! std::fs::write(dir.join("tokenizer_config.json"), r#"{"do_lower_case": false}"#).unwrap();
//! std::fs::write(dir.join("1_Pooling/config.json"), r#"{"pooling_mode_cls_token": true}"#).unwrap();
//! let s = FolderSettings::read(&dir).unwrap();
//! assert!(!s.lowercase());
//! assert_eq!(s.pooling, Some(Pooling::Cls));
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

#![warn(missing_docs)]

use crate::bert::BertConfig;
use crate::error::{invalid, Error, Result};
use crate::tokenizer::{BasicTokenizer, Tokenizer, Vocab};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// How token vectors become one sentence vector (sentence-transformers' pooling modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Pooling {
    /// Mean of the token vectors over the attention mask.
    #[default]
    Mean,
    /// The `[CLS]` (first) token's vector.
    Cls,
    /// Element-wise maximum over the unmasked tokens.
    Max,
}

impl Pooling {
    /// Parses `mean`, `cls` or `max`.
    pub fn parse(name: &str) -> Result<Pooling> {
        match name.to_ascii_lowercase().as_str() {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            "max" => Ok(Pooling::Max),
            other => Err(Error::Invalid {
                op: "Pooling::parse",
                detail: format!("unknown pooling mode {other:?}; expected mean, cls or max"),
            }),
        }
    }
}

/// Settings read from a model folder; `None` where the folder does not say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FolderSettings {
    /// `tokenizer_config.json` `do_lower_case`.
    pub do_lower_case: Option<bool>,
    /// `tokenizer_config.json` `strip_accents` (`null` = follow `do_lower_case`).
    pub strip_accents: Option<bool>,
    /// `tokenizer_config.json` `model_max_length` (HF's "no limit" placeholder, 1e30, is
    /// ignored).
    pub model_max_length: Option<usize>,
    /// `sentence_bert_config.json` `max_seq_length`.
    pub max_seq_length: Option<usize>,
    /// The pooling module's mode.
    pub pooling: Option<Pooling>,
    /// Whether `modules.json` lists a `Normalize` module (`None` without `modules.json`).
    pub normalize: Option<bool>,
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Format {
                path: path.display().to_string(),
                detail: format!("not valid JSON: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn bad(path: &Path, detail: String) -> Error {
    Error::Format {
        path: path.display().to_string(),
        detail,
    }
}

/// `obj[key]` as a bool, `None` when absent or null.
fn opt_bool(path: &Path, obj: &Value, key: &str) -> Result<Option<bool>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(bad(path, format!("{key} must be true or false, got {v}"))),
    }
}

/// `obj[key]` as a positive count, `None` when absent or null.
fn opt_count(path: &Path, obj: &Value, key: &str) -> Result<Option<usize>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n as usize)),
            _ => Err(bad(
                path,
                format!("{key} must be a positive integer, got {v}"),
            )),
        },
    }
}

impl FolderSettings {
    /// Reads the settings files of `dir` (any of them may be missing). A malformed file, or a
    /// pooling mode cloze does not implement, is an error naming the file and the value.
    pub fn read(dir: impl AsRef<Path>) -> Result<FolderSettings> {
        let dir = dir.as_ref();
        let mut s = FolderSettings::default();
        let p = dir.join("tokenizer_config.json");
        if let Some(v) = read_json(&p)? {
            s.do_lower_case = opt_bool(&p, &v, "do_lower_case")?;
            s.strip_accents = opt_bool(&p, &v, "strip_accents")?;
            // HF writes 1000000000000000019884624838656 for "no limit": not a u64, ignored.
            s.model_max_length = v
                .get("model_max_length")
                .and_then(Value::as_u64)
                .filter(|&n| n > 0 && n <= u32::MAX as u64)
                .map(|n| n as usize);
        }
        let p = dir.join("sentence_bert_config.json");
        if let Some(v) = read_json(&p)? {
            s.max_seq_length = opt_count(&p, &v, "max_seq_length")?;
        }
        let mut pooling_dir = PathBuf::from("1_Pooling");
        let p = dir.join("modules.json");
        if let Some(v) = read_json(&p)? {
            let modules = v
                .as_array()
                .ok_or_else(|| bad(&p, "expected a JSON list of modules".into()))?;
            let kind = |m: &Value| {
                m.get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            s.normalize = Some(modules.iter().any(|m| kind(m).ends_with(".Normalize")));
            if let Some(m) = modules.iter().find(|m| kind(m).ends_with(".Pooling")) {
                if let Some(path) = m.get("path").and_then(Value::as_str) {
                    pooling_dir = PathBuf::from(path);
                }
            }
        }
        let p = dir.join(pooling_dir).join("config.json");
        if let Some(v) = read_json(&p)? {
            let on = |key: &str| opt_bool(&p, &v, key).map(|b| b.unwrap_or(false));
            let mut modes = Vec::new();
            if on("pooling_mode_mean_tokens")? {
                modes.push(Pooling::Mean);
            }
            if on("pooling_mode_cls_token")? {
                modes.push(Pooling::Cls);
            }
            if on("pooling_mode_max_tokens")? {
                modes.push(Pooling::Max);
            }
            for unsupported in [
                "pooling_mode_mean_sqrt_len_tokens",
                "pooling_mode_weightedmean_tokens",
                "pooling_mode_lasttoken",
            ] {
                if on(unsupported)? {
                    return Err(bad(
                        &p,
                        format!("{unsupported} is not supported (cloze pools by mean, cls or max)"),
                    ));
                }
            }
            match modes.as_slice() {
                [] => {}
                [m] => s.pooling = Some(*m),
                _ => {
                    return Err(bad(
                        &p,
                        format!("several pooling modes are on ({modes:?}); cloze supports one"),
                    ))
                }
            }
        }
        Ok(s)
    }

    /// Whether to lower-case (and, unless `strip_accents` says otherwise, strip accents):
    /// `do_lower_case`, default `true`.
    pub fn lowercase(&self) -> bool {
        self.do_lower_case.unwrap_or(true)
    }

    /// The length inputs are truncated to: sentence-transformers' `max_seq_length` if set, else
    /// `model_max_length`.
    pub fn max_length(&self) -> Option<usize> {
        self.max_seq_length.or(self.model_max_length)
    }

    /// The basic (pre-WordPiece) tokenizer these settings describe.
    pub fn basic_tokenizer(&self) -> BasicTokenizer {
        let mut b = if self.lowercase() {
            BasicTokenizer::uncased()
        } else {
            BasicTokenizer::cased()
        };
        b.strip_accents = self.strip_accents;
        b
    }
}

/// The tokenizer of a model folder: its `vocab.txt` with the casing `tokenizer_config.json`
/// asks for (uncased BERT when the file is absent).
pub fn load_tokenizer(dir: impl AsRef<Path>) -> Result<Tokenizer> {
    let dir = dir.as_ref();
    let settings = FolderSettings::read(dir)?;
    let vocab = Vocab::load(dir.join("vocab.txt"))?;
    Ok(Tokenizer::with_basic(vocab, settings.basic_tokenizer()))
}

/// [`load_tokenizer`] for the model `config` describes: `vocab.txt` must hold exactly
/// `config.vocab_size` tokens, so that no id can fall outside the embedding table.
pub fn load_tokenizer_for(dir: impl AsRef<Path>, config: &BertConfig) -> Result<Tokenizer> {
    let tok = load_tokenizer(dir)?;
    if tok.vocab().len() != config.vocab_size {
        return invalid(
            "load",
            format!(
                "vocab.txt has {} tokens but config.json says vocab_size {}",
                tok.vocab().len(),
                config.vocab_size
            ),
        );
    }
    Ok(tok)
}

/// Writes `dir/tokenizer_config.json` describing `basic`'s casing (`do_lower_case`,
/// `strip_accents`; `null` means "follow `do_lower_case`") and, when given, the
/// `model_max_length` inputs are truncated to, so that HF's `BertTokenizer` and
/// [`load_tokenizer`] read the folder back with the same settings.
pub fn save_tokenizer_config(
    dir: impl AsRef<Path>,
    basic: &BasicTokenizer,
    model_max_length: Option<usize>,
) -> Result<()> {
    let mut tc = serde_json::json!({
        "do_lower_case": basic.lowercase,
        "strip_accents": basic.strip_accents,
        "tokenizer_class": "BertTokenizer",
    });
    if let Some(n) = model_max_length {
        tc["model_max_length"] = n.into();
    }
    crate::train::checkpoint::write_atomic(
        &dir.as_ref().join("tokenizer_config.json"),
        format!("{tc:#}\n").as_bytes(),
    )
}
