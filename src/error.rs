//! The one error type of cloze.

use thiserror::Error;

/// Everything that can go wrong in cloze, each naming the bad value.
#[derive(Debug, Error)]
pub enum Error {
    /// Operand shapes do not fit an op.
    #[error("{op}: shape mismatch: {detail}")]
    Shape {
        /// The op or function that refused the shapes.
        op: &'static str,
        /// The shapes it got and what it needs.
        detail: String,
    },
    /// An argument is out of range or otherwise invalid.
    #[error("{op}: {detail}")]
    Invalid {
        /// The op or function that refused the argument.
        op: &'static str,
        /// The bad value and what was expected.
        detail: String,
    },
    /// A gradient was asked of an op that cannot record one.
    #[error("{op}: input requires a gradient but this op has no backward; run it under no_grad or detach the input")]
    NotDifferentiable {
        /// The op without a backward.
        op: &'static str,
    },
    /// A `Var` from an earlier (reset) tape, or from another tape, was used.
    #[error("{op}: variable belongs to a tape that has since been reset (generation {var_gen}, tape is at {tape_gen})")]
    StaleVar {
        /// The op that was handed the stale variable.
        op: &'static str,
        /// The tape generation the variable was recorded in.
        var_gen: u64,
        /// The tape's current generation (one more per reset).
        tape_gen: u64,
    },
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file's contents are malformed.
    #[error("{path}: {detail}")]
    Format {
        /// The file (or, for in-memory text, the name the caller gave it).
        path: String,
        /// What is wrong, with the offending key or value.
        detail: String,
    },
}

/// `Result` with cloze's [`Error`](enum@Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds an [`Error::Shape`].
pub(crate) fn shape_err<T>(op: &'static str, detail: impl Into<String>) -> Result<T> {
    Err(Error::Shape {
        op,
        detail: detail.into(),
    })
}

/// Builds an [`Error::Invalid`].
pub(crate) fn invalid<T>(op: &'static str, detail: impl Into<String>) -> Result<T> {
    Err(Error::Invalid {
        op,
        detail: detail.into(),
    })
}

/// Checks that every `(name, value)` is non-zero; the error names the first that is not.
pub(crate) fn require_positive(op: &'static str, values: &[(&str, usize)]) -> Result<()> {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => invalid(op, format!("{name} must be positive, got 0")),
        None => Ok(()),
    }
}

/// Reads a UTF-8 text file; invalid UTF-8 is an [`Error::Format`] naming the line and column
/// (1-based, column in bytes) of the first bad byte.
pub fn read_utf8(path: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let upto = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..upto];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let col = upto
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        Error::Format {
            path: path.display().to_string(),
            detail: format!(
                "line {line}, column {col}: invalid UTF-8 (byte 0x{:02x})",
                e.as_bytes()[upto]
            ),
        }
    })
}
