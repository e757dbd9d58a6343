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
use crate::optim::AdamW;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory. A crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    with_temp_file(path, |tmp| {
        let mut f = File::create(tmp).map_err(|e| io(tmp, e))?;
        f.write_all(bytes).map_err(|e| io(tmp, e))
    })
}

/// Runs `write` on a fresh temporary path next to `path`, fsyncs it and renames it over
/// `path`; the temporary file is removed on failure.
pub fn with_temp_file(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::Format {
            path: path.display().to_string(),
            detail: "not a file path".into(),
        })?
        .to_string_lossy()
        .into_owned();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // The rename would replace a symlink, FIFO or device node with a regular file: refuse.
    if let Ok(md) = std::fs::symlink_metadata(path) {
        if !md.file_type().is_file() {
            let kind = if md.file_type().is_symlink() {
                "a symbolic link"
            } else if md.is_dir() {
                "a directory"
            } else {
                "not a regular file (a FIFO, socket or device?)"
            };
            return Err(Error::Format {
                path: path.display().to_string(),
                detail: format!(
                    "refusing to write over it: it is {kind}; remove it or choose another output"
                ),
            });
        }
    }
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write(&tmp)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| io(&tmp, e))
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // Persist the rename itself; not every platform lets a directory be opened, so this is
    // best effort.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The checksum manifest of a checkpoint directory: one `<sha256 hex>  <file name>` line per
/// file, sorted by name (the format of `sha256sum`, so `sha256sum -c` checks it too).
pub const MANIFEST: &str = "checksums.sha256";

/// SHA-256 of a file's bytes, as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = File::open(path).map_err(|e| io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| io(path, e))?;
    Ok(h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>())
}

/// Writes [`MANIFEST`] for every regular file of `dir`.
fn write_manifest(dir: &Path) -> Result<()> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
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
        Err(e) => return Err(io(&mp, e)),
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

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
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
        fs::create_dir_all(&root).map_err(|e| io(&root, e))?;
        Ok(CheckpointDir {
            root,
            keep: keep.max(1),
        })
    }

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
            fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        write(&tmp)?;
        write_manifest(&tmp)?;
        for entry in fs::read_dir(&tmp).map_err(|e| io(&tmp, e))? {
            let p = entry.map_err(|e| io(&tmp, e))?.path();
            File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| io(&p, e))?;
        }
        sync_dir(&tmp)?;
        let fin = self.step_dir(step);
        if fin.exists() {
            fs::remove_dir_all(&fin).map_err(|e| io(&fin, e))?;
        }
        fs::rename(&tmp, &fin).map_err(|e| io(&fin, e))?;
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
        for entry in fs::read_dir(&self.root).map_err(|e| io(&self.root, e))? {
            let path = entry.map_err(|e| io(&self.root, e))?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".tmp") && path.is_dir() {
                fs::remove_dir_all(&path).map_err(|e| io(&path, e))?;
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
            fs::remove_dir_all(&path).map_err(|e| io(&path, e))?;
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
    let bytes = fs::read(path).map_err(|e| io(path, e))?;
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
