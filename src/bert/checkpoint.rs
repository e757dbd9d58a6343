//! HF-format checkpoints: `model.safetensors` + `config.json` (the caller copies `vocab.txt`).
//!
//! Reading accepts names with or without the `bert.` prefix HF uses for task models
//! (`BertForPreTraining`, `BertForSequenceClassification`, …) and the legacy LayerNorm
//! `gamma`/`beta` names, converts F16/BF16/F64 to f32,
//! skips integer buffers such as `embeddings.position_ids`, and treats the tied MLM decoder
//! (`cls.predictions.decoder.weight` / `.bias`) as the aliases they are. Loading into a
//! [`ParamStore`] requires an exact match: every missing, unexpected or mis-shaped tensor is
//! named in the error with both shapes.
//!
//! Writing uses the HF layout: F32, `Linear` weights `[out, in]`, the `bert.` prefix on the
//! encoder's tensors when the store has task heads (`cls.*`, `classifier.*`), as HF's
//! `save_pretrained` does; the tied decoder matrix is not written (HF's safetensors writer drops
//! tied duplicates too). Files are written atomically: a temporary file in the same folder,
//! fsync, rename.

use super::config::BertConfig;
use crate::autodiff::params::ParamStore;
use crate::error::{Error, Result};
pub use crate::fs::write_atomic;
use crate::fs::{io_err, with_temp_file};
use crate::tensor::Tensor;
use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The prefix HF puts on the encoder's tensors in task models.
pub const BERT_PREFIX: &str = "bert.";
/// Tied alias of `embeddings.word_embeddings.weight` in MLM checkpoints.
pub const DECODER_WEIGHT: &str = "cls.predictions.decoder.weight";
/// Tied alias of `cls.predictions.bias` in MLM checkpoints.
pub const DECODER_BIAS: &str = "cls.predictions.decoder.bias";
/// The weights file inside a model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The HF config file inside a model folder ([`crate::bert::BertConfig`] in JSON).
pub const CONFIG_FILE: &str = "config.json";

fn fmt_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::Format {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// Decodes little-endian tensor bytes of a float dtype into f32.
fn decode(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

fn is_integer(dtype: Dtype) -> bool {
    matches!(
        dtype,
        Dtype::BOOL
            | Dtype::U8
            | Dtype::I8
            | Dtype::I16
            | Dtype::U16
            | Dtype::I32
            | Dtype::U32
            | Dtype::I64
            | Dtype::U64
    )
}

/// A file name as a [`ParamStore`] name: without the `bert.` prefix, and with the legacy
/// TF-converted LayerNorm names `LayerNorm.gamma` / `LayerNorm.beta` (as in the original
/// `bert-base-uncased` upload) renamed to `weight` / `bias`, as HF's loader does.
pub fn canonical_name(raw: &str) -> String {
    let name = raw.strip_prefix(BERT_PREFIX).unwrap_or(raw);
    if name.contains("LayerNorm.") {
        if let Some(stem) = name.strip_suffix(".gamma") {
            return format!("{stem}.weight");
        }
        if let Some(stem) = name.strip_suffix(".beta") {
            return format!("{stem}.bias");
        }
    }
    name.to_string()
}

/// What to tolerate when the checkpoint and the model differ (for fine-tuning from a
/// pre-trained checkpoint: new heads missing, old heads unused). Strict by default.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Model parameters whose name starts with one of these may be absent from the file
    /// (they keep their current value).
    pub allow_missing: Vec<String>,
    /// File tensors whose name starts with one of these may have no model parameter.
    pub allow_unused: Vec<String>,
}

/// What [`Checkpoint::load_into`] did.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Parameters given a value from the file.
    pub loaded: Vec<String>,
    /// Parameters absent from the file but allowed to be.
    pub missing: Vec<String>,
    /// File tensors left unused but allowed to be.
    pub unused: Vec<String>,
}

/// The float tensors of one safetensors file, names without the `bert.` prefix.
pub struct Checkpoint {
    path: PathBuf,
    tensors: BTreeMap<String, Tensor>,
    /// Integer buffers that were skipped, with their dtype.
    buffers: BTreeMap<String, Dtype>,
    /// `cls.predictions.decoder.weight` if present (tied; only its shape is checked).
    decoder_weight: Option<Tensor>,
}

impl Checkpoint {
    /// Reads a safetensors file. A truncated or corrupt file, an unsupported dtype or a name
    /// that occurs twice (with and without `bert.`) is an error naming the file.
    pub fn read(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses safetensors bytes; `path` names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            fmt_err(
                path,
                format!(
                    "not a valid safetensors file ({} bytes; truncated or corrupt?): {e}",
                    bytes.len()
                ),
            )
        })?;
        let mut tensors = BTreeMap::new();
        let mut buffers = BTreeMap::new();
        let mut decoder_weight = None;
        let mut decoder_bias = None;
        let mut seen: HashMap<String, String> = HashMap::new();
        for (raw, view) in st.iter() {
            let name = canonical_name(raw);
            if let Some(prev) = seen.insert(name.clone(), raw.to_string()) {
                return Err(fmt_err(
                    path,
                    format!("tensor {name:?} occurs twice (as {prev:?} and {raw:?})"),
                ));
            }
            if is_integer(view.dtype()) {
                buffers.insert(name, view.dtype());
                continue;
            }
            let data = decode(view.dtype(), view.data()).ok_or_else(|| {
                fmt_err(
                    path,
                    format!(
                        "tensor {raw:?} has dtype {:?}; only F32, F16, BF16 and F64 are supported",
                        view.dtype()
                    ),
                )
            })?;
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(fmt_err(
                    path,
                    format!(
                        "tensor {raw:?} holds a non-finite value ({} at flat index {i}); the weights are corrupt or diverged",
                        data[i]
                    ),
                ));
            }
            let t = Tensor::from_vec(data, view.shape())
                .map_err(|e| fmt_err(path, format!("tensor {raw:?}: {e}")))?;
            match name.as_str() {
                DECODER_WEIGHT => decoder_weight = Some(t),
                DECODER_BIAS => decoder_bias = Some(t),
                _ => {
                    tensors.insert(name, t);
                }
            }
        }
        // Old checkpoints may carry only the decoder's copy of the output bias.
        if let Some(b) = decoder_bias {
            tensors
                .entry("cls.predictions.bias".to_string())
                .or_insert(b);
        }
        Ok(Checkpoint {
            path: path.to_path_buf(),
            tensors,
            buffers,
            decoder_weight,
        })
    }

    /// The file this came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a float tensor of that (prefix-free) name is present.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// A tensor by (prefix-free) name.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Names of the float tensors, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Names of the skipped integer buffers (e.g. `embeddings.position_ids`).
    pub fn skipped_buffers(&self) -> impl Iterator<Item = &str> {
        self.buffers.keys().map(String::as_str)
    }

    /// Loads every parameter of `store` from the file, requiring an exact match.
    pub fn load_into(&self, store: &mut ParamStore) -> Result<LoadReport> {
        self.load_into_with(store, &LoadOptions::default())
    }

    /// [`Self::load_into`] tolerating the prefixes in `opts`. Nothing is changed unless the
    /// whole check passes.
    pub fn load_into_with(&self, store: &mut ParamStore, opts: &LoadOptions) -> Result<LoadReport> {
        let allowed =
            |list: &[String], name: &str| list.iter().any(|p| name.starts_with(p.as_str()));
        let mut problems = Vec::new();
        let mut report = LoadReport::default();
        let mut assign = Vec::new();
        for id in store.ids() {
            let name = store.name(id);
            let want = store.value(id).shape();
            match self.tensors.get(name) {
                Some(t) if t.shape() == want => {
                    assign.push((id, t.clone()));
                    report.loaded.push(name.to_string());
                }
                Some(t) => problems.push(format!(
                    "tensor {name:?} has shape {:?} in the file but {:?} in the model",
                    t.shape(),
                    want
                )),
                None if allowed(&opts.allow_missing, name) => report.missing.push(name.to_string()),
                None => match self.buffers.get(name) {
                    Some(dtype) => problems.push(format!(
                        "tensor {name:?} (model shape {want:?}) is stored as {dtype:?}, not as a float tensor"
                    )),
                    None => problems.push(format!(
                        "missing tensor {name:?} (model shape {want:?}; not in the file)"
                    )),
                },
            }
        }
        for (name, t) in &self.tensors {
            if store.id(name).is_none() {
                if allowed(&opts.allow_unused, name) {
                    report.unused.push(name.clone());
                } else {
                    problems.push(format!(
                        "unexpected tensor {name:?} (file shape {:?}; the model has no such parameter)",
                        t.shape()
                    ));
                }
            }
        }
        if let Some(dw) = &self.decoder_weight {
            let emb = "embeddings.word_embeddings.weight";
            match store.id(emb) {
                Some(id) if store.value(id).shape() != dw.shape() => problems.push(format!(
                    "tensor {DECODER_WEIGHT:?} (tied to {emb:?}) has shape {:?} in the file but {:?} in the model",
                    dw.shape(),
                    store.value(id).shape()
                )),
                _ => {}
            }
        }
        if !problems.is_empty() {
            let n = problems.len();
            const SHOW: usize = 12;
            let mut detail = format!("checkpoint does not match the model ({n} problem(s)): ");
            detail.push_str(&problems[..n.min(SHOW)].join("; "));
            if n > SHOW {
                detail.push_str(&format!("; … and {} more", n - SHOW));
            }
            return Err(fmt_err(&self.path, detail));
        }
        for (id, t) in assign {
            store.set_value(id, t)?;
        }
        Ok(report)
    }
}

/// One f32 tensor as a safetensors [`View`].
struct F32View<'a>(&'a Tensor);

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.0.shape()
    }
    fn data(&self) -> Cow<'_, [u8]> {
        let mut out = Vec::with_capacity(self.0.len() * 4);
        for v in self.0.data() {
            out.extend_from_slice(&v.to_le_bytes());
        }
        Cow::Owned(out)
    }
    fn data_len(&self) -> usize {
        self.0.len() * 4
    }
}

/// Whether a store holds task heads (and so is saved with the `bert.` prefix).
pub fn has_task_heads(store: &ParamStore) -> bool {
    store.ids().any(|id| {
        let n = store.name(id);
        n.starts_with("cls.") || n.starts_with("classifier.") || n.starts_with("qa_outputs.")
    })
}

/// The name a parameter gets in the file.
fn file_name(name: &str, prefix: bool) -> String {
    let encoder = ["embeddings.", "encoder.", "pooler."];
    if prefix && encoder.iter().any(|p| name.starts_with(p)) {
        format!("{BERT_PREFIX}{name}")
    } else {
        name.to_string()
    }
}

/// Writes every parameter of `store` as F32 in the HF layout (see the module docs), atomically.
pub fn save_safetensors(path: impl AsRef<Path>, store: &ParamStore) -> Result<()> {
    save_safetensors_with(path, store, has_task_heads(store))
}

/// [`save_safetensors`] choosing the `bert.` prefix explicitly.
pub fn save_safetensors_with(
    path: impl AsRef<Path>,
    store: &ParamStore,
    bert_prefix: bool,
) -> Result<()> {
    let path = path.as_ref();
    if let Some(bad) = store.first_non_finite_value() {
        return Err(fmt_err(
            path,
            format!(
                "refusing to write: parameter {bad} holds a non-finite value (NaN or infinity)"
            ),
        ));
    }
    let items: Vec<(String, F32View<'_>)> = store
        .ids()
        .map(|id| {
            (
                file_name(store.name(id), bert_prefix),
                F32View(store.value(id)),
            )
        })
        .collect();
    let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    with_temp_file(path, |tmp| {
        safetensors::serialize_to_file(items, Some(meta), tmp)
            .map_err(|e| fmt_err(path, format!("cannot write safetensors: {e}")))
    })
}

/// Writes `config.json` and `model.safetensors` into `dir` (created if needed).
pub fn save_pretrained(
    dir: impl AsRef<Path>,
    config: &BertConfig,
    store: &ParamStore,
) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    config.save(dir.join(CONFIG_FILE))?;
    save_safetensors(dir.join(WEIGHTS_FILE), store)
}

/// Reads `config.json` and `model.safetensors` from `dir`. Build the model from the config,
/// then [`Checkpoint::load_into`] its store.
///
/// A folder with only PyTorch weights (`pytorch_model.bin`) is an error that says how to
/// convert them to safetensors.
pub fn load_pretrained(dir: impl AsRef<Path>) -> Result<(BertConfig, Checkpoint)> {
    let dir = dir.as_ref();
    let config = BertConfig::from_file(dir.join(CONFIG_FILE))?;
    check_weights_format(dir)?;
    let ckpt = Checkpoint::read(dir.join(WEIGHTS_FILE))?;
    Ok((config, ckpt))
}

/// An error naming the conversion command when `dir` has `pytorch_model.bin` but no
/// `model.safetensors` (cloze reads safetensors only).
pub fn check_weights_format(dir: &Path) -> Result<()> {
    let st = dir.join(WEIGHTS_FILE);
    let bin = dir.join("pytorch_model.bin");
    if !st.exists() && bin.exists() {
        return Err(fmt_err(
            &st,
            format!(
                "missing, but {} is there: cloze reads safetensors only. Convert it once with \
                 python -c \"import torch; from safetensors.torch import save_file; \
                 sd = torch.load('{b}', map_location='cpu', weights_only=True); \
                 save_file({{k: v.clone().contiguous() for k, v in sd.items()}}, '{s}', metadata={{'format': 'pt'}})\"",
                bin.display(),
                b = bin.display(),
                s = st.display()
            ),
        ));
    }
    Ok(())
}
