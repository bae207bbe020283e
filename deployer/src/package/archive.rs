//! The reproducible `.tar.gz` writer and the `.sha256` sidecar format.
//!
//! Owns the byte-level rules that make two packages of the same inputs
//! identical: entries in strictly increasing path order (enforced here), GNU
//! tar headers with a fixed mtime, uid/gid 0 and empty user/group names, the
//! caller's normalised mode, and a gzip stream with mtime 0, no file name, OS
//! byte 255 and the fixed [`COMPRESSION_LEVEL`]. Everything is done in-process
//! (`tar` + `flate2`); nothing shells out to `tar` or `gzip`.

use std::io::{self, Read, Write};

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use super::manifest::Mode;

/// gzip level of every package (a fixed level is part of reproducibility).
pub const COMPRESSION_LEVEL: u32 = 6;

/// Writes a deterministic tar.gz to `W`.
pub struct TarGzWriter<W: Write> {
    builder: tar::Builder<GzEncoder<W>>,
    mtime: u64,
    last: Option<String>,
}

impl<W: Write> TarGzWriter<W> {
    /// Start a tar.gz stream whose entries all get `mtime`.
    pub fn new(out: W, mtime: u64) -> Self {
        let gz = GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(out, Compression::new(COMPRESSION_LEVEL));
        let mut builder = tar::Builder::new(gz);
        builder.follow_symlinks(false);
        TarGzWriter {
            builder,
            mtime,
            last: None,
        }
    }

    fn header(&self, kind: tar::EntryType, mode: Mode, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode.0);
        h.set_size(size);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        // new_gnu() leaves user/group names empty; set them explicitly anyway
        // so the rule is visible here.
        let _ = h.set_username("");
        let _ = h.set_groupname("");
        h
    }

    fn check_order(&mut self, path: &str) -> io::Result<()> {
        if let Some(last) = &self.last {
            if path <= last.as_str() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("tar entries out of order: {path:?} after {last:?}"),
                ));
            }
        }
        self.last = Some(path.to_string());
        Ok(())
    }

    /// Add a directory (`path` without trailing slash), mode 0755.
    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        let with_slash = format!("{path}/");
        self.check_order(&with_slash)?;
        let mut h = self.header(tar::EntryType::Directory, Mode::EXEC, 0);
        self.builder.append_data(&mut h, &with_slash, io::empty())
    }

    /// Add a regular file of exactly `size` bytes read from `data`.
    pub fn file(&mut self, path: &str, mode: Mode, size: u64, data: impl Read) -> io::Result<()> {
        self.check_order(path)?;
        let mut h = self.header(tar::EntryType::Regular, mode, size);
        // A source that is shorter or longer than `size` would corrupt the
        // archive silently; `take` + the length check below make it an error.
        let mut counted = CountingReader {
            inner: data.take(size),
            count: 0,
        };
        self.builder.append_data(&mut h, path, &mut counted)?;
        if counted.count != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{path}: expected {size} bytes, read {} (file changed while packing?)",
                    counted.count
                ),
            ));
        }
        Ok(())
    }

    /// Write the tar trailer, finish the gzip stream and return the output.
    pub fn finish(self) -> io::Result<W> {
        let gz = self.builder.into_inner()?;
        gz.finish()
    }
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes (sha256) and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// (inner writer, lower-case hex sha256, byte count).
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// sha256 (hex) and size of everything `data` yields.
pub fn sha256_of(mut data: impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = data.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// The sidecar line in `sha256sum` format: `<hex>  <file name>\n`.
pub fn sidecar_line(sha256: &str, file_name: &str) -> String {
    format!("{sha256}  {file_name}\n")
}

/// Parse a sidecar: one `sha256sum` line (`<hex>  <name>` or `<hex> *<name>`).
/// Returns (hex, file name), or a description of what is wrong.
pub fn parse_sidecar(text: &str) -> Result<(String, String), String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let line = lines.next().ok_or("the file is empty")?;
    if lines.next().is_some() {
        return Err("more than one line".into());
    }
    let (hash, rest) = line
        .split_once(' ')
        .ok_or("no space between hash and file name")?;
    let name = rest
        .strip_prefix(' ')
        .or_else(|| rest.strip_prefix('*'))
        .ok_or("expected two spaces after the hash")?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{hash:?} is not a 64-digit hex sha256"));
    }
    if name.is_empty() {
        return Err("no file name".into());
    }
    Ok((hash.to_ascii_lowercase(), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(mtime: u64) -> Vec<u8> {
        let mut w = TarGzWriter::new(Vec::new(), mtime);
        w.dir("top").unwrap();
        w.file("top/a", Mode::DATA, 3, &b"abc"[..]).unwrap();
        w.dir("top/bin").unwrap();
        w.file("top/bin/x", Mode::EXEC, 1, &b"x"[..]).unwrap();
        w.finish().unwrap()
    }

    /// (path, mode, mtime, uid, gid, user name, group name) of a tar entry.
    type HeaderFields = (String, u32, u64, u64, u64, Vec<u8>, Vec<u8>);

    #[test]
    fn output_is_deterministic_and_normalised() {
        let a = pack(1_700_000_000);
        assert_eq!(a, pack(1_700_000_000));
        assert_ne!(a, pack(1_700_000_001));
        // gzip header: magic, CM=8, FLG=0 (no name), MTIME=0, XFL, OS=255.
        assert_eq!(&a[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        assert_eq!(a[9], 255);
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&a[..]));
        let got: Vec<HeaderFields> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.username_bytes().unwrap_or_default().to_vec(),
                    h.groupname_bytes().unwrap_or_default().to_vec(),
                )
            })
            .collect();
        let t = 1_700_000_000;
        assert_eq!(
            got,
            vec![
                ("top/".into(), 0o755, t, 0, 0, vec![], vec![]),
                ("top/a".into(), 0o644, t, 0, 0, vec![], vec![]),
                ("top/bin/".into(), 0o755, t, 0, 0, vec![], vec![]),
                ("top/bin/x".into(), 0o755, t, 0, 0, vec![], vec![]),
            ]
        );
    }

    #[test]
    fn rejects_unsorted_entries_and_wrong_sizes() {
        let mut w = TarGzWriter::new(Vec::new(), 0);
        w.file("b", Mode::DATA, 1, &b"b"[..]).unwrap();
        let err = w
            .file("a", Mode::DATA, 1, &b"a"[..])
            .unwrap_err()
            .to_string();
        assert!(err.contains("out of order"), "{err}");
        let mut w = TarGzWriter::new(Vec::new(), 0);
        let err = w
            .file("short", Mode::DATA, 5, &b"abc"[..])
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected 5 bytes, read 3"), "{err}");
    }

    fn check_sidecar(text: &str, expected: Result<(&str, &str), &str>) {
        let got = parse_sidecar(text);
        match expected {
            Ok((h, n)) => assert_eq!(got, Ok((h.to_string(), n.to_string())), "{text:?}"),
            Err(part) => {
                let e = got.expect_err(text);
                assert!(e.contains(part), "{text:?}: {e}");
            }
        }
    }

    #[test]
    fn sidecar_format() {
        let h = "a".repeat(64);
        assert_eq!(sidecar_line(&h, "x.tar.gz"), format!("{h}  x.tar.gz\n"));
        check_sidecar(&format!("{h}  x.tar.gz\n"), Ok((&h, "x.tar.gz")));
        check_sidecar(
            &format!("{}  x.tar.gz", "A".repeat(64)),
            Ok((&h, "x.tar.gz")),
        );
        check_sidecar(&format!("{h} *x.tar.gz\n"), Ok((&h, "x.tar.gz")));
        check_sidecar("", Err("empty"));
        check_sidecar(&format!("{h}  a\n{h}  b\n"), Err("more than one line"));
        check_sidecar("abc  x.tar.gz", Err("not a 64-digit hex"));
        check_sidecar(&format!("{h}x.tar.gz"), Err("no space"));
        check_sidecar(&format!("{h} x.tar.gz"), Err("two spaces"));
    }

    #[test]
    fn hashing_writer_matches_sha256_of() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello world").unwrap();
        let (out, hash, n) = w.finish();
        assert_eq!(out, b"hello world");
        assert_eq!(n, 11);
        assert_eq!(hash, sha256_of(&b"hello world"[..]).unwrap().0);
        assert_eq!(
            hash,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }
}
