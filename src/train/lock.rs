//! An exclusive lock on a run's output folder, so two runs never write into one folder.
//!
//! The lock is an advisory OS file lock (`flock` on Unix, `LockFileEx` on Windows, through
//! the `fs4` crate) on `<folder>/.cloze.lock`, held for the life of a [`RunLock`]. The OS
//! releases it when the process ends, however it ends, so a killed run never leaves a stale
//! lock behind. The file itself stays (deleting it would race with a run taking it).

use crate::error::{Error, Result};
use crate::fs::io_err;
use fs4::fs_std::FileExt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the lock file inside a locked folder.
pub const LOCK_FILE: &str = ".cloze.lock";

/// A held lock on an output folder; released on drop.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Creates `dir` if needed and locks it, or fails at once (no waiting) with an error
    /// naming the folder when another run holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        let locked = FileExt::try_lock_exclusive(&file).map_err(|e| io_err(&path, e))?;
        if !locked {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(Error::Invalid {
                op: "lock",
                detail: format!(
                    "output folder {} is in use by another cloze run ({}{}); wait for it to finish or choose another folder",
                    dir.display(),
                    path.display(),
                    match holder.trim() {
                        "" => String::new(),
                        h => format!(", held by {h}"),
                    }
                ),
            });
        }
        // who holds it, for the message above (informational only)
        let _ = file.set_len(0);
        let _ = writeln!(file, "pid {}", std::process::id());
        Ok(RunLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}
