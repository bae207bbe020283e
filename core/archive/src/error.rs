//! Errors of the archive writer and readers. Every error names the file, and the
//! readers add the line and byte offset of the bad record.
use std::path::PathBuf;

use crate::binary_v1::BinaryError;

/// An archive error.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An I/O operation failed (disk full, permissions, ...).
    #[error("{path}: {op} failed: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is unusable.
    #[error("archive config: {0}")]
    Config(String),
    /// A record handed to the writer is not one JSON document.
    #[error("record {index} of the batch is not valid JSON: {reason}")]
    InvalidRecord { index: usize, reason: String },
    /// A JSON-lines archive holds a bad line (bad JSON, truncated gzip, ...).
    #[error("{path}: line {line} (uncompressed byte offset {offset}): {reason}")]
    BadLine {
        path: PathBuf,
        line: u64,
        offset: u64,
        reason: String,
    },
    /// A binary v1 archive is damaged.
    #[error("{path}: {source}")]
    Binary {
        path: PathBuf,
        #[source]
        source: BinaryError,
    },
}

impl ArchiveError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        ArchiveError::Io {
            path: path.into(),
            op,
            source,
        }
    }
}

pub(crate) trait IoContext<T> {
    fn ctx(self, path: &std::path::Path, op: &'static str) -> Result<T, ArchiveError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, path: &std::path::Path, op: &'static str) -> Result<T, ArchiveError> {
        self.map_err(|e| ArchiveError::io(path, op, e))
    }
}
