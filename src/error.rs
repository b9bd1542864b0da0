//! Errors are values: each names the input and what is allowed; `main` maps them to one line
//! on stderr and an exit code.

use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in bitrnn, with the exit code it maps to.
#[derive(Debug)]
pub enum Error {
    /// A flag or argument out of range (exit 2). The message names the flag, the value and
    /// what is allowed.
    Usage(String),
    /// A file that cannot be read or written (exit 1).
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file whose contents are not what they claim to be (exit 2: it is bad input).
    BadFile { path: PathBuf, reason: String },
    /// Training produced a non-finite loss or weight (exit 1).
    Diverged { step: usize, what: String },
    /// `verify` found errors above tolerance (exit 1).
    VerifyFailed(String),
    /// Stopped by SIGINT after writing the outputs (exit 130).
    Interrupted,
    /// Another MPI rank's error, as every rank reports it (`crate::distributed::agree`).
    Rank { code: i32, message: String },
}

impl Error {
    /// The process exit code for this error.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::BadFile { .. } => 2,
            Error::Io { .. } | Error::Diverged { .. } | Error::VerifyFailed(_) => 1,
            Error::Interrupted => 130,
            Error::Rank { code, .. } => *code,
        }
    }
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    /// A malformed file.
    pub fn bad_file(path: &Path, reason: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    /// One line, always: control characters quoted from the input (a newline in a file name
    /// or a tensor name, a terminal escape) are written as Rust escapes (`\n`, `\u{1b}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.raw().chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl Error {
    /// The message before escaping.
    fn raw(&self) -> String {
        match self {
            Error::Usage(m) => m.clone(),
            Error::Io { path, source } => format!("{}: {source}", path.display()),
            Error::BadFile { path, reason } => format!("{}: {reason}", path.display()),
            Error::Diverged { step, what } => {
                format!("training diverged at step {step}: {what}; try a smaller --lr")
            }
            Error::VerifyFailed(m) => format!("verify failed: {m}"),
            Error::Interrupted => "interrupted".into(),
            Error::Rank { message, .. } => message.clone(),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
