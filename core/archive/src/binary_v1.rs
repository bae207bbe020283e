//! The ORIGINAL shoebox binary archive format, version 1 (spec §6.2): a sequence of
//! records `preamble(magic i32 = 0x69867884, version i16) header(meta_len i32,
//! raw_len i32, EOR i32 = 0) metadata(C i32 = 4*pairs, 2*pairs lengths, key/value bytes)
//! raw(len i32, payload)`, little-endian. Reader (streaming, with byte offsets) and,
//! for tests and fixtures, a writer (`encode_record`, feature `testing`).
use std::collections::BTreeMap;
use std::io::{self, Read};

/// `0x69867884` ("EVNT"), the beginning-of-record marker.
pub const MAGIC: i32 = 0x6986_7884;
/// The only version the original ever wrote.
pub const VERSION: i16 = 1;
/// The first 4 bytes of a binary v1 file (the magic, little-endian).
pub const MAGIC_BYTES: [u8; 4] = MAGIC.to_le_bytes();

/// Metadata pairs (all strings) and the raw payload (the notification JSON).
pub type Record = (BTreeMap<String, String>, Vec<u8>);

/// Why a binary v1 record could not be read; `offset` is the byte offset in the file
/// of the start of the bad record (for `Io`: where the failed read began).
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    /// Bad beginning-of-record magic or a non-zero end-of-record marker.
    #[error("byte offset {offset}: out of sync: {reason}")]
    OutOfSync { offset: u64, reason: String },
    /// A version other than 1.
    #[error("byte offset {offset}: invalid version {version} (only 1 is known)")]
    InvalidVersion { offset: u64, version: i16 },
    /// The file ends in the middle of a record.
    #[error("byte offset {offset}: end of file in the middle of a record (wanted {wanted} bytes, got {got})")]
    EndOfFile {
        offset: u64,
        wanted: usize,
        got: usize,
    },
    /// Lengths that do not add up, or metadata that is not UTF-8.
    #[error("byte offset {offset}: corrupt record: {reason}")]
    Corrupt { offset: u64, reason: String },
    /// Reading failed.
    #[error("byte offset {offset}: read failed: {source}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
}

impl BinaryError {
    /// The byte offset the error refers to.
    pub fn offset(&self) -> u64 {
        match self {
            BinaryError::OutOfSync { offset, .. }
            | BinaryError::InvalidVersion { offset, .. }
            | BinaryError::EndOfFile { offset, .. }
            | BinaryError::Corrupt { offset, .. }
            | BinaryError::Io { offset, .. } => *offset,
        }
    }
}

/// Reads binary v1 records one by one from any `Read`.
pub struct BinaryV1Reader<R> {
    inner: R,
    offset: u64,
    done: bool,
}

/// Largest block we are willing to allocate for one record (sanity bound: 1 GiB).
const MAX_BLOCK: usize = 1 << 30;

impl<R: Read> BinaryV1Reader<R> {
    pub fn new(inner: R) -> Self {
        BinaryV1Reader {
            inner,
            offset: 0,
            done: false,
        }
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Read up to `buf.len()` bytes; returns how many were read (short only at EOF).
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, BinaryError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(BinaryError::Io {
                        offset: self.offset + got as u64,
                        source,
                    })
                }
            }
        }
        Ok(got)
    }

    fn exact(&mut self, len: usize, record_start: u64) -> Result<Vec<u8>, BinaryError> {
        if len > MAX_BLOCK {
            return Err(BinaryError::Corrupt {
                offset: record_start,
                reason: format!("block length {len} is larger than {MAX_BLOCK}"),
            });
        }
        let mut buf = vec![0u8; len];
        let got = self.fill(&mut buf)?;
        self.offset += got as u64;
        if got < len {
            return Err(BinaryError::EndOfFile {
                offset: record_start,
                wanted: len,
                got,
            });
        }
        Ok(buf)
    }

    /// The next record; `Ok(None)` at a clean end of file (between records).
    pub fn read_record(&mut self) -> Result<Option<Record>, BinaryError> {
        if self.done {
            return Ok(None);
        }
        let start = self.offset;
        let mut preamble = [0u8; 6];
        let got = self.fill(&mut preamble)?;
        self.offset += got as u64;
        if got == 0 {
            self.done = true;
            return Ok(None);
        }
        if got < preamble.len() {
            return Err(BinaryError::EndOfFile {
                offset: start,
                wanted: 6,
                got,
            });
        }
        let magic = i32::from_le_bytes([preamble[0], preamble[1], preamble[2], preamble[3]]);
        if magic != MAGIC {
            return Err(BinaryError::OutOfSync {
                offset: start,
                reason: format!(
                    "expected the beginning-of-record marker 0x69867884, found {magic:#010x}"
                ),
            });
        }
        let version = i16::from_le_bytes([preamble[4], preamble[5]]);
        if version != VERSION {
            return Err(BinaryError::InvalidVersion {
                offset: start,
                version,
            });
        }
        let header = self.exact(12, start)?;
        let meta_len = le_i32(&header, 0);
        let raw_len = le_i32(&header, 4);
        let eor = le_i32(&header, 8);
        if eor != 0 {
            return Err(BinaryError::OutOfSync {
                offset: start,
                reason: format!("expected the end-of-record marker 0, found {eor}"),
            });
        }
        let meta_len = block_len(meta_len, "metadata block", start)?;
        let raw_len = block_len(raw_len, "raw block", start)?;
        let meta = self.exact(meta_len, start)?;
        let metadata = decode_metadata(&meta, start)?;
        let raw = self.exact(raw_len, start)?;
        if raw.len() < 4 {
            return Err(corrupt(start, "raw block shorter than its length field"));
        }
        let payload_len = block_len(le_i32(&raw, 0), "payload", start)?;
        let Some(payload) = raw.get(4..4 + payload_len) else {
            return Err(corrupt(start, "payload longer than the raw block"));
        };
        Ok(Some((metadata, payload.to_vec())))
    }
}

impl<R: Read> Iterator for BinaryV1Reader<R> {
    type Item = Result<Record, BinaryError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.read_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => None,
            Err(e) => {
                // stop after the first error: the stream position is unknown
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

fn le_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_le_bytes(a)
}

fn corrupt(offset: u64, reason: &str) -> BinaryError {
    BinaryError::Corrupt {
        offset,
        reason: reason.to_string(),
    }
}

fn block_len(v: i32, what: &str, offset: u64) -> Result<usize, BinaryError> {
    usize::try_from(v).map_err(|_| BinaryError::Corrupt {
        offset,
        reason: format!("negative {what} length {v}"),
    })
}

fn decode_metadata(meta: &[u8], start: u64) -> Result<BTreeMap<String, String>, BinaryError> {
    if meta.len() < 4 {
        return Err(corrupt(
            start,
            "metadata block shorter than its count field",
        ));
    }
    let entries = block_len(le_i32(meta, 0), "metadata count", start)?;
    // C = 4 * pairs: 2 lengths + 2 strings per pair; the original reads C/2 lengths
    let n_lengths = entries / 2;
    if entries % 4 != 0 {
        return Err(corrupt(start, "metadata count is not a multiple of 4"));
    }
    let lengths_end = n_lengths
        .checked_mul(4)
        .and_then(|n| n.checked_add(4))
        .filter(|end| *end <= meta.len())
        .ok_or_else(|| corrupt(start, "metadata lengths run past the metadata block"))?;
    let mut pos = lengths_end;
    let mut strings = Vec::with_capacity(n_lengths);
    for i in 0..n_lengths {
        let len = block_len(le_i32(meta, 4 + 4 * i), "metadata string", start)?;
        let end = pos
            .checked_add(len)
            .filter(|end| *end <= meta.len())
            .ok_or_else(|| corrupt(start, "metadata strings run past the metadata block"))?;
        let s = std::str::from_utf8(&meta[pos..end])
            .map_err(|_| corrupt(start, "metadata string is not UTF-8"))?;
        strings.push(s.to_string());
        pos = end;
    }
    let mut out = BTreeMap::new();
    let mut it = strings.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.insert(k, v);
    }
    Ok(out)
}

/// Encode one binary v1 record (the original `pack_notification`), for tests and fixtures.
#[cfg(any(test, feature = "testing"))]
pub fn encode_record(metadata: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let n = metadata.len() as i32;
    let mut meta = Vec::new();
    meta.extend_from_slice(&(n * 4).to_le_bytes());
    for (k, v) in metadata {
        meta.extend_from_slice(&(k.len() as i32).to_le_bytes());
        meta.extend_from_slice(&(v.len() as i32).to_le_bytes());
    }
    for (k, v) in metadata {
        meta.extend_from_slice(k.as_bytes());
        meta.extend_from_slice(v.as_bytes());
    }
    let mut raw = Vec::new();
    raw.extend_from_slice(&(payload.len() as i32).to_le_bytes());
    raw.extend_from_slice(payload);
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(meta.len() as i32).to_le_bytes());
    out.extend_from_slice(&(raw.len() as i32).to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&raw);
    out
}
