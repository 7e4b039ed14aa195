//! The engine's error type.
//!
//! One enum for everything the engine can fail at as a whole operation. Per-file
//! problems during indexing are not errors of the run: they are reported in
//! [`crate::index::IndexReport::skipped`] with a [`crate::dicom::ScanError`] message.

use std::path::PathBuf;

/// An engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The SQLite index failed.
    #[error("index database: {0}")]
    Database(#[from] rusqlite::Error),
    /// The index was written by a newer sia, or is not a sia index.
    #[error("index schema: {0}")]
    Schema(String),
    /// An argument was invalid.
    #[error("{0}")]
    InvalidInput(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
