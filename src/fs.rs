//! File helpers shared by every writer: atomic writes, file checksums, directory syncs.
//!
//! They sit here, below `bert` and `train`, so that every module that writes a file uses them
//! without depending on another writer.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An [`Error::Io`] naming `path`.
pub(crate) fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory. A crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    with_temp_file(path, |tmp| {
        let mut f = File::create(tmp).map_err(|e| io_err(tmp, e))?;
        f.write_all(bytes).map_err(|e| io_err(tmp, e))
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
                .map_err(|e| io_err(&tmp, e))
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io_err(path, e)));
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

/// SHA-256 of a file's bytes, as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| io_err(path, e))?;
    Ok(h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>())
}

/// fsyncs a directory (persists the renames and creations inside it).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}
