//! `/v2/archives`: list and fetch the gzip JSON-lines archive files that
//! core/archive (shoebox) writes into one directory tree. Ids are paths
//! relative to the archive directory; anything that would leave it is refused.

use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use serde_json::{json, Value};
use stv3_event::Timestamp;

use crate::error::ApiError;

pub const SUFFIX: &str = ".json.gz";

#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveEntry {
    /// Path relative to the archive directory, `/`-separated.
    pub id: String,
    pub size: u64,
    pub mtime: Timestamp,
}

impl ArchiveEntry {
    pub fn filename(&self) -> &str {
        self.id.rsplit('/').next().unwrap_or(&self.id)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "filename": self.filename(),
            "size": self.size,
            "mtime": crate::wire::datetime(&self.mtime),
        })
    }
}

fn mtime(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    stv3_event::from_micros(d.as_micros() as i64)
}

/// Every `*.json.gz` under `dir` (recursively), sorted by id.
pub fn list(dir: &Path) -> std::io::Result<Vec<ArchiveEntry>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            let path = entry.path();
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() && entry.file_name().to_string_lossy().ends_with(SUFFIX) {
                let meta = entry.metadata()?;
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                let id = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(ArchiveEntry {
                    id,
                    size: meta.len(),
                    mtime: mtime(meta.modified()?),
                });
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Map an archive id to a file inside `dir`, refusing traversal, absolute
/// paths and anything that is not a `.json.gz` file.
pub fn resolve(dir: &Path, id: &str) -> Result<PathBuf, ApiError> {
    let bad = |why: &str| ApiError::bad("archive_id", format!("{id:?}: {why}"));
    if id.is_empty() || id.contains('\\') || id.contains('\0') {
        return Err(bad("not a valid archive id"));
    }
    let rel = Path::new(id);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad("path traversal refused"));
    }
    if !id.ends_with(SUFFIX) {
        return Err(bad("only .json.gz archives can be fetched"));
    }
    let candidate = dir.join(rel);
    let not_found = || ApiError::NotFound(format!("no archive {id:?}"));
    let real = candidate.canonicalize().map_err(|_| not_found())?;
    let root = dir.canonicalize().map_err(|_| not_found())?;
    if !real.starts_with(&root) {
        return Err(bad("path traversal refused"));
    }
    if !real.is_file() {
        return Err(not_found());
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_resolves() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("b.json.gz"), b"xx").unwrap();
        std::fs::write(d.path().join("sub/a.json.gz"), b"xyz").unwrap();
        std::fs::write(d.path().join("working.json"), b"x").unwrap();
        let l = list(d.path()).unwrap();
        let ids: Vec<(&str, u64)> = l.iter().map(|e| (e.id.as_str(), e.size)).collect();
        assert_eq!(ids, vec![("b.json.gz", 2), ("sub/a.json.gz", 3)]);
        assert_eq!(l[1].filename(), "a.json.gz");

        let check = |id: &str, status: Option<u16>| {
            let got = resolve(d.path(), id)
                .map(|_| ())
                .map_err(|e| e.status().as_u16())
                .err();
            assert_eq!(got, status, "{id}");
        };
        check("b.json.gz", None);
        check("sub/a.json.gz", None);
        check("../b.json.gz", Some(400));
        check("sub/../../etc/passwd.json.gz", Some(400));
        check("/etc/passwd", Some(400));
        check("working.json", Some(400));
        check("missing.json.gz", Some(404));
        check("sub", Some(400));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_out_of_the_directory_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.json.gz"), b"s").unwrap();
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.json.gz"),
            d.path().join("link.json.gz"),
        )
        .unwrap();
        let e = resolve(d.path(), "link.json.gz").unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
    }
}
