//! Running the `cloze` binary in a test: one builder for the command line, and the two ways a
//! test reads the result (it succeeded: its stdout; it failed: its stderr).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A `cloze` command line being built: `cloze(sub).model(dir).input(file).ok()`.
#[derive(Debug)]
pub struct Cloze {
    global: Vec<OsString>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<PathBuf>,
}

/// The subcommand `sub` (e.g. `"predict"`), run with `RAYON_NUM_THREADS=1`.
pub fn cloze(sub: &str) -> Cloze {
    Cloze {
        global: Vec::new(),
        args: vec![sub.into()],
        env: Vec::new(),
        stdin: None,
    }
}

impl Cloze {
    /// `--threads n`, placed before the subcommand.
    pub fn threads(mut self, n: usize) -> Cloze {
        self.global.push("--threads".into());
        self.global.push(n.to_string().into());
        self
    }

    /// `--model dir`.
    pub fn model(self, dir: impl AsRef<Path>) -> Cloze {
        self.opt("--model", dir.as_ref())
    }

    /// `--input file`.
    pub fn input(self, file: impl AsRef<Path>) -> Cloze {
        self.opt("--input", file.as_ref())
    }

    /// `name value`, e.g. `.opt("--top-k", "4")`.
    pub fn opt(mut self, name: &str, value: impl Into<OsString>) -> Cloze {
        self.args.push(name.into());
        self.args.push(value.into());
        self
    }

    /// Further arguments as they are, e.g. `.args(["--vectors"])`.
    pub fn args<I, S>(mut self, args: I) -> Cloze
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets the environment variable `key` to `value` for the run.
    pub fn env(mut self, key: &str, value: &str) -> Cloze {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Reads standard input from `file`.
    pub fn stdin(mut self, file: impl AsRef<Path>) -> Cloze {
        self.stdin = Some(file.as_ref().to_path_buf());
        self
    }

    /// Runs the command to its end.
    pub fn output(self) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cloze"));
        c.args(&self.global)
            .args(&self.args)
            .env("RAYON_NUM_THREADS", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(f) = &self.stdin {
            c.stdin(std::fs::File::open(f).unwrap());
        }
        c.output().unwrap()
    }

    /// Runs it, asserts it succeeded and returns its stdout.
    pub fn ok(self) -> String {
        ok(&self.output())
    }

    /// Runs it, asserts it succeeded and returns its stdout as bytes.
    pub fn ok_bytes(self) -> Vec<u8> {
        let out = self.output();
        assert_success(&out);
        out.stdout
    }

    /// Runs it, asserts it failed and returns its stderr.
    pub fn err(self) -> String {
        err(&self.output())
    }

    /// Runs it, asserts it failed and that its stderr names each of `needles`.
    pub fn fails_naming(self, needles: &[&str]) {
        super::assert_mentions(&self.err(), needles);
    }

    /// Runs it with `RUST_BACKTRACE=1`, asserts it was refused as an error (exit code 1, no
    /// panic) and returns its stderr.
    pub fn refused(self) -> String {
        let what = format!("{self:?}");
        let out = self.env("RUST_BACKTRACE", "1").output();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{what}: {err}"
        );
        err
    }
}

/// Asserts `out` is a success, showing its stderr if not.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "cloze failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts `out` is a success and returns its stdout.
pub fn ok(out: &Output) -> String {
    assert_success(out);
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Asserts `out` is a failure and returns its stderr.
pub fn err(out: &Output) -> String {
    assert!(!out.status.success(), "cloze should have failed");
    String::from_utf8_lossy(&out.stderr).to_string()
}
