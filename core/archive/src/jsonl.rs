//! Readers of the JSON-lines archives: finished `.json.gz` files (gzip, possibly
//! multi-member) and plain working `.json` files, auto-detected by the gzip magic.
//! Records stream one by one with their line number and uncompressed byte offset.
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{ArchiveError, IoContext};

/// The first two bytes of a gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// One line of a JSON-lines archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the line in the uncompressed stream.
    pub offset: u64,
    /// The line without its trailing newline.
    pub bytes: Vec<u8>,
}

/// Streams the lines of a `.json.gz` or `.json` archive. A final line without a
/// newline is returned as well (a working file cut by a crash may end that way;
/// `parse_json` then tells whether it is complete).
pub struct JsonlReader {
    path: PathBuf,
    inner: Box<dyn BufRead + Send>,
    line: u64,
    offset: u64,
    failed: bool,
}

impl JsonlReader {
    /// Open `path`, detecting gzip by its magic bytes.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ArchiveError> {
        let path = path.as_ref();
        let mut file = File::open(path).ctx(path, "open")?;
        let mut magic = [0u8; 2];
        let n = read_up_to(&mut file, &mut magic).ctx(path, "read")?;
        let file = File::open(path).ctx(path, "open")?;
        let inner: Box<dyn BufRead + Send> = if n == 2 && magic == GZIP_MAGIC {
            Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(file)))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, file))
        };
        Ok(Self::from_reader(path, inner))
    }

    /// Read lines from an already decompressed stream (`path` is used in errors only).
    pub fn from_reader(path: impl Into<PathBuf>, inner: Box<dyn BufRead + Send>) -> Self {
        JsonlReader {
            path: path.into(),
            inner,
            line: 0,
            offset: 0,
            failed: false,
        }
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Parse one line as JSON, with the file, line and offset in the error.
    pub fn parse_json(&self, line: &Line) -> Result<serde_json::Value, ArchiveError> {
        serde_json::from_slice(&line.bytes).map_err(|e| ArchiveError::BadLine {
            path: self.path.clone(),
            line: line.line,
            offset: line.offset,
            reason: format!("not valid JSON: {e}"),
        })
    }

    /// Iterate the records as parsed JSON values.
    pub fn values(self) -> impl Iterator<Item = Result<serde_json::Value, ArchiveError>> {
        let mut reader = self;
        std::iter::from_fn(move || match reader.next()? {
            Ok(line) => Some(reader.parse_json(&line)),
            Err(e) => Some(Err(e)),
        })
    }
}

impl Iterator for JsonlReader {
    type Item = Result<Line, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let mut buf = Vec::new();
        match self.inner.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(n) => {
                self.line += 1;
                let offset = self.offset;
                self.offset += n as u64;
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                }
                Some(Ok(Line {
                    line: self.line,
                    offset,
                    bytes: buf,
                }))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(ArchiveError::BadLine {
                    path: self.path.clone(),
                    line: self.line + 1,
                    offset: self.offset,
                    reason: format!("read failed (damaged or truncated gzip?): {e}"),
                }))
            }
        }
    }
}

/// Read every record of a `.json.gz` (or plain `.json`) archive as JSON values, in order.
pub fn read_jsonl_gz(path: impl AsRef<Path>) -> Result<Vec<serde_json::Value>, ArchiveError> {
    JsonlReader::open(path)?.values().collect()
}

pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
