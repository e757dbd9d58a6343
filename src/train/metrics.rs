//! A JSON-lines metrics log: one object per line, flushed line by line so a crash loses at
//! most the line being written.

use crate::error::{Error, Result};
use crate::fs::io_err;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Appends JSON objects to a file, one per line.
pub struct MetricsLog {
    file: File,
    path: PathBuf,
}

impl MetricsLog {
    /// Opens `path` for appending (created if missing).
    pub fn append(path: impl AsRef<Path>) -> Result<MetricsLog> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        Ok(MetricsLog { file, path })
    }

    /// Writes one record and flushes it.
    pub fn write(&mut self, record: &serde_json::Value) -> Result<()> {
        let mut line = serde_json::to_string(record).map_err(|e| Error::Format {
            path: self.path.display().to_string(),
            detail: e.to_string(),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| io_err(&self.path, e))
    }

    /// Drops every record with `"step"` greater than `step` (used when resuming from a
    /// checkpoint older than the log's end, so the log matches the resumed run).
    pub fn truncate_after_step(path: impl AsRef<Path>, step: u64) -> Result<()> {
        let path = path.as_ref();
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(());
        };
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                    .is_some_and(|s| s <= step)
            })
            .collect();
        let mut body = kept.join("\n");
        if !body.is_empty() {
            body.push('\n');
        }
        crate::fs::write_atomic(path, body.as_bytes())
    }
}
