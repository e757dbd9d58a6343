//! Crash-safe checkpoints.
//!
//! A checkpoint is a directory `<root>/step-<N>/`. It is written under a temporary name
//! (`step-<N>.tmp`), every file is synced, the directory is renamed into place, and only then
//! is `<root>/latest` replaced (itself written to a temporary file and renamed). A crash at any
//! moment therefore leaves `latest` naming the last complete checkpoint; leftover `.tmp`
//! directories are ignored and removed by the next save.
//!
//! Every file of a checkpoint is listed with its SHA-256 in [`MANIFEST`], written before the
//! rename; [`CheckpointDir::latest`] verifies them, so a flipped bit is an error naming the
//! file instead of a silently different resumed run.
//!
//! Optimiser state (AdamW moments and step) is stored as safetensors beside the model.

use crate::autodiff::params::ParamStore;
use crate::error::{Error, Result};
use crate::fs::{io_err, sync_dir};
// The file helpers moved to `crate::fs`; re-exported here so existing paths keep working.
pub use crate::fs::{sha256_file, with_temp_file, write_atomic};
use crate::optim::AdamW;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// The checksum manifest of a checkpoint directory: one `<sha256 hex>  <file name>` line per
/// file, sorted by name (the format of `sha256sum`, so `sha256sum -c` checks it too).
pub const MANIFEST: &str = "checksums.sha256";

/// Writes [`MANIFEST`] for every regular file of `dir`.
fn write_manifest(dir: &Path) -> Result<()> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != MANIFEST && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    let mut text = String::new();
    for name in names {
        text.push_str(&format!("{}  {name}\n", sha256_file(&dir.join(&name))?));
    }
    write_atomic(&dir.join(MANIFEST), text.as_bytes())
}

/// Checks every file listed in `dir`'s [`MANIFEST`] against its checksum; the error names the
/// file. A checkpoint written before manifests existed (no manifest) is accepted with a
/// warning.
pub fn verify_manifest(dir: &Path) -> Result<()> {
    let mp = dir.join(MANIFEST);
    let text = match fs::read_to_string(&mp) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "warning: checkpoint {} has no {MANIFEST}; its files cannot be verified",
                dir.display()
            );
            return Ok(());
        }
        Err(e) => return Err(io_err(&mp, e)),
    };
    let bad = |detail: String| Error::Format {
        path: mp.display().to_string(),
        detail,
    };
    for (i, line) in text.lines().enumerate() {
        let (want, name) = line
            .split_once("  ")
            .ok_or_else(|| bad(format!("line {}: expected `<sha256>  <file>`", i + 1)))?;
        if name.contains('/') || name.contains('\\') || name == ".." {
            return Err(bad(format!("line {}: {name:?} is not a file name", i + 1)));
        }
        let path = dir.join(name);
        let got = sha256_file(&path)?;
        if got != want {
            return Err(Error::Format {
                path: path.display().to_string(),
                detail: format!(
                    "checksum mismatch (sha256 {got}, the checkpoint's {MANIFEST} says {want}): the file is corrupt, refusing to resume from it"
                ),
            });
        }
    }
    Ok(())
}

/// The directory of checkpoints of one run.
pub struct CheckpointDir {
    root: PathBuf,
    keep: usize,
}

impl CheckpointDir {
    /// `keep`: how many complete checkpoints to keep (older ones are deleted after a save).
    pub fn new(root: impl Into<PathBuf>, keep: usize) -> Result<CheckpointDir> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| io_err(&root, e))?;
        Ok(CheckpointDir {
            root,
            keep: keep.max(1),
        })
    }

    /// The folder holding the `step-*` checkpoints and the `latest` pointer.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn step_dir(&self, step: u64) -> PathBuf {
        self.root.join(format!("step-{step:08}"))
    }

    /// Writes a checkpoint: `write(dir)` fills a fresh temporary directory; it becomes
    /// `step-<N>` and `latest` only after everything is on disk.
    pub fn save(&self, step: u64, write: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
        let tmp = self.root.join(format!("step-{step:08}.tmp"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        write(&tmp)?;
        write_manifest(&tmp)?;
        for entry in fs::read_dir(&tmp).map_err(|e| io_err(&tmp, e))? {
            let p = entry.map_err(|e| io_err(&tmp, e))?.path();
            File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_err(&p, e))?;
        }
        sync_dir(&tmp)?;
        let fin = self.step_dir(step);
        if fin.exists() {
            fs::remove_dir_all(&fin).map_err(|e| io_err(&fin, e))?;
        }
        fs::rename(&tmp, &fin).map_err(|e| io_err(&fin, e))?;
        sync_dir(&self.root)?;
        write_atomic(
            &self.root.join("latest"),
            format!("step-{step:08}\n").as_bytes(),
        )?;
        self.prune()?;
        Ok(fin)
    }

    /// The last complete checkpoint, if any.
    pub fn latest(&self) -> Result<Option<(u64, PathBuf)>> {
        let p = self.root.join("latest");
        let Ok(text) = fs::read_to_string(&p) else {
            return Ok(None);
        };
        let name = text.trim();
        let step = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| Error::Format {
                path: p.display().to_string(),
                detail: format!("expected `step-<N>`, found {name:?}"),
            })?;
        let dir = self.root.join(name);
        if !dir.is_dir() {
            return Err(Error::Format {
                path: p.display().to_string(),
                detail: format!("names {name} but {} does not exist", dir.display()),
            });
        }
        verify_manifest(&dir)?;
        Ok(Some((step, dir)))
    }

    /// Deletes leftover temporary directories and all but the newest `keep` checkpoints.
    fn prune(&self) -> Result<()> {
        let mut steps = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(|e| io_err(&self.root, e))? {
            let path = entry.map_err(|e| io_err(&self.root, e))?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".tmp") && path.is_dir() {
                fs::remove_dir_all(&path).map_err(|e| io_err(&path, e))?;
            } else if let Some(s) = name
                .strip_prefix("step-")
                .and_then(|s| s.parse::<u64>().ok())
            {
                steps.push((s, path));
            }
        }
        steps.sort();
        let n = steps.len();
        for (_, path) in steps.into_iter().take(n.saturating_sub(self.keep)) {
            fs::remove_dir_all(&path).map_err(|e| io_err(&path, e))?;
        }
        Ok(())
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes the optimiser's moments (`<param>.m`, `<param>.v`) and step count to a safetensors
/// file.
pub fn save_optimizer(path: &Path, store: &ParamStore, opt: &AdamW) -> Result<()> {
    let mut buffers = Vec::new();
    for id in store.ids() {
        let (m, v) = opt.moments(id);
        buffers.push((
            format!("{}.m", store.name(id)),
            f32_bytes(m),
            store.value(id).shape().to_vec(),
        ));
        buffers.push((
            format!("{}.v", store.name(id)),
            f32_bytes(v),
            store.value(id).shape().to_vec(),
        ));
    }
    let views: Vec<(String, TensorView)> = buffers
        .iter()
        .map(|(n, b, s)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|t| (n.clone(), t))
                .map_err(|e| Error::Format {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })
        })
        .collect::<Result<_>>()?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("step".to_string(), opt.steps().to_string());
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| Error::Format {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Restores what [`save_optimizer`] wrote; every parameter's moments must be present with the
/// parameter's shape.
pub fn load_optimizer(path: &Path, store: &ParamStore, opt: &mut AdamW) -> Result<()> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    let fmt = |detail: String| Error::Format {
        path: path.display().to_string(),
        detail,
    };
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| fmt(e.to_string()))?;
    let step: u64 = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("step"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| fmt("no `step` in the metadata".into()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| fmt(e.to_string()))?;
    for id in store.ids() {
        let read = |suffix: &str| -> Result<Vec<f32>> {
            let name = format!("{}.{suffix}", store.name(id));
            let t = st
                .tensor(&name)
                .map_err(|_| fmt(format!("missing optimiser tensor {name}")))?;
            if t.dtype() != Dtype::F32 || t.shape() != store.value(id).shape() {
                return Err(fmt(format!(
                    "{name}: {:?} {:?}, expected F32 {:?}",
                    t.dtype(),
                    t.shape(),
                    store.value(id).shape()
                )));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let (m, v) = (read("m")?, read("v")?);
        opt.restore(step, id, &m, &v)?;
    }
    Ok(())
}
