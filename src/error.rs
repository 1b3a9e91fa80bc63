//! One error type for the whole crate; the C layer maps each variant to a status code.

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// A caller passed something unusable (bad shape, NaN, zero count, unknown name).
    InvalidArgument(String),
    /// Reading or writing a file failed.
    Io(std::io::Error),
    /// A model file is malformed, inconsistent or from an unknown format version.
    Format(String),
    /// The request is valid but this build or machine cannot do it (e.g. CUDA without a GPU).
    Unsupported(String),
    /// A progress callback or a cancel token asked to stop.
    Cancelled,
    /// A buffer the call needs could not be allocated.
    OutOfMemory(String),
    /// An internal invariant broke (a bug); carries what was caught.
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Format(m) => write!(f, "model format error: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Cancelled => write!(f, "cancelled"),
            Error::OutOfMemory(m) => write!(f, "out of memory: {m}"),
            Error::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// Shorthand for argument checks.
pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::InvalidArgument(msg.into()))
}
