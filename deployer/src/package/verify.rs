//! `stv3ctl package verify`: is this tarball exactly what its manifest says?
//!
//! Owns [`verify_tarball`], which `deploy` calls before it uses a package. It
//! checks, and reports every failure rather than the first:
//!
//! * the `.sha256` sidecar exists, is one `sha256sum` line, names this file
//!   and matches the tarball's sha256;
//! * the tarball is readable, has one top directory `<name>-<version>/` and
//!   only directories and regular files, owned by uid/gid 0, no unsafe paths
//!   and no duplicates;
//! * `MANIFEST.json` is present and valid, and its name/version/target match
//!   the file name and top directory;
//! * every manifest entry is in the tarball with the same size, sha256 and
//!   mode, and every file in the tarball is in the manifest.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::archive::{parse_sidecar, sha256_of};
use super::manifest::{Manifest, Mode, MANIFEST_NAME, SCHEMA_VERSION};

/// A package that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPackage {
    pub path: PathBuf,
    /// sha256 of the tarball (equal to the sidecar's).
    pub sha256: String,
    /// Size of the tarball in bytes.
    pub size: u64,
    pub manifest: Manifest,
}

/// Why a tarball is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    // `error` is not a `source`: the message already contains it, and
    // anyhow's `{:#}` would print it twice.
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("{}: verification failed ({} problem{}):\n{}", path.display(), problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Failed {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One precise verification failure. `file` paths are relative to the top
/// directory, as in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    SidecarMissing {
        sidecar: PathBuf,
    },
    SidecarMalformed {
        sidecar: PathBuf,
        reason: String,
    },
    SidecarNamesOtherFile {
        sidecar: PathBuf,
        named: String,
        actual: String,
    },
    ChecksumMismatch {
        expected: String,
        actual: String,
    },
    Unreadable {
        reason: String,
    },
    UnsafePath {
        entry: String,
    },
    OutsideTopDir {
        entry: String,
        top: String,
    },
    UnexpectedEntryType {
        entry: String,
        kind: String,
    },
    NotOwnedByRoot {
        entry: String,
        uid: u64,
        gid: u64,
    },
    DuplicateEntry {
        entry: String,
    },
    ManifestMissing,
    ManifestInvalid {
        reason: String,
    },
    UnsupportedSchema {
        schema: u32,
    },
    TopDirMismatch {
        expected: String,
        actual: String,
    },
    FileNameMismatch {
        expected: String,
        actual: String,
    },
    SizeMismatch {
        file: String,
        expected: u64,
        actual: u64,
    },
    Sha256Mismatch {
        file: String,
        expected: String,
        actual: String,
    },
    ModeMismatch {
        file: String,
        expected: Mode,
        actual: Mode,
    },
    MissingFromTarball {
        file: String,
    },
    NotInManifest {
        file: String,
        size: u64,
    },
    /// The tarball could not be read to the end; these manifest entries
    /// were never reached.
    NotChecked {
        count: usize,
        first: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::SidecarMissing { sidecar } => {
                write!(f, "checksum file {} is missing", sidecar.display())
            }
            Problem::SidecarMalformed { sidecar, reason } => {
                write!(
                    f,
                    "checksum file {} is not a sha256sum line: {reason}",
                    sidecar.display()
                )
            }
            Problem::SidecarNamesOtherFile {
                sidecar,
                named,
                actual,
            } => {
                write!(
                    f,
                    "checksum file {} is for {named:?}, not {actual:?}",
                    sidecar.display()
                )
            }
            Problem::ChecksumMismatch { expected, actual } => {
                write!(
                    f,
                    "tarball sha256 mismatch: sidecar says {expected}, file is {actual}"
                )
            }
            Problem::Unreadable { reason } => {
                write!(f, "tarball is not a readable tar.gz: {reason}")
            }
            Problem::UnsafePath { entry } => {
                write!(f, "entry {entry:?} has an absolute or `..` path")
            }
            Problem::OutsideTopDir { entry, top } => {
                write!(f, "entry {entry:?} is outside the top directory {top:?}")
            }
            Problem::UnexpectedEntryType { entry, kind } => {
                write!(
                    f,
                    "entry {entry:?} is a {kind}; only directories and regular files are allowed"
                )
            }
            Problem::NotOwnedByRoot { entry, uid, gid } => {
                write!(f, "entry {entry:?} is owned by {uid}:{gid}, expected 0:0")
            }
            Problem::DuplicateEntry { entry } => {
                write!(f, "entry {entry:?} appears more than once")
            }
            Problem::ManifestMissing => write!(f, "{MANIFEST_NAME} is missing"),
            Problem::ManifestInvalid { reason } => {
                write!(f, "{MANIFEST_NAME} is invalid: {reason}")
            }
            Problem::UnsupportedSchema { schema } => {
                write!(f, "{MANIFEST_NAME} schema {schema} is newer than this stv3ctl understands ({SCHEMA_VERSION})")
            }
            Problem::TopDirMismatch { expected, actual } => {
                write!(f, "top directory is {actual:?}, manifest says {expected:?}")
            }
            Problem::FileNameMismatch { expected, actual } => {
                write!(f, "file is named {actual:?}, manifest says {expected:?}")
            }
            Problem::SizeMismatch {
                file,
                expected,
                actual,
            } => {
                write!(f, "{file}: size {actual}, manifest says {expected}")
            }
            Problem::Sha256Mismatch {
                file,
                expected,
                actual,
            } => {
                write!(f, "{file}: sha256 {actual}, manifest says {expected}")
            }
            Problem::ModeMismatch {
                file,
                expected,
                actual,
            } => write!(f, "{file}: mode {actual}, manifest says {expected}"),
            Problem::MissingFromTarball { file } => {
                write!(f, "{file}: in the manifest but not in the tarball")
            }
            Problem::NotInManifest { file, size } => write!(
                f,
                "{file}: in the tarball ({size} bytes) but not in the manifest"
            ),
            Problem::NotChecked { count, first } => write!(
                f,
                "{count} manifest file(s) not checked: the tarball is unreadable from {first} on"
            ),
        }
    }
}

/// What one regular file in the tarball turned out to be.
#[derive(Debug, Clone)]
struct Seen {
    mode: Mode,
    size: u64,
    sha256: String,
}

/// Largest `MANIFEST.json` we read into memory.
const MANIFEST_LIMIT: u64 = 64 << 20;

/// Verify `path` against its `<path>.sha256` sidecar and its manifest.
pub fn verify_tarball(path: impl AsRef<Path>) -> Result<VerifiedPackage, VerifyError> {
    let path = path.as_ref();
    let io_err = |error| VerifyError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut problems = Vec::new();
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();

    let (sha256, size) =
        sha256_of(BufReader::new(File::open(path).map_err(io_err)?)).map_err(io_err)?;
    let sidecar = PathBuf::from(format!("{}.sha256", path.display()));
    match std::fs::read_to_string(&sidecar) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            problems.push(Problem::SidecarMissing { sidecar })
        }
        Err(e) => {
            return Err(VerifyError::Io {
                path: sidecar,
                error: e,
            })
        }
        Ok(text) => match parse_sidecar(&text) {
            Err(reason) => problems.push(Problem::SidecarMalformed { sidecar, reason }),
            Ok((expected, named)) => {
                if named != file_name {
                    problems.push(Problem::SidecarNamesOtherFile {
                        sidecar,
                        named,
                        actual: file_name.clone(),
                    });
                }
                if expected != sha256 {
                    problems.push(Problem::ChecksumMismatch {
                        expected,
                        actual: sha256.clone(),
                    });
                }
            }
        },
    }

    let file = File::open(path).map_err(io_err)?;
    let mut contents = read_contents(BufReader::new(file), &mut problems);
    let manifest = match contents.manifest.take() {
        None => {
            problems.push(Problem::ManifestMissing);
            None
        }
        Some(text) => match Manifest::from_json(&text) {
            Err(e) => {
                problems.push(Problem::ManifestInvalid {
                    reason: e.to_string(),
                });
                None
            }
            Ok(m) => Some(m),
        },
    };
    if let Some(m) = &manifest {
        check_against_manifest(m, &file_name, &contents, &mut problems);
    }
    match (manifest, problems.is_empty()) {
        (Some(manifest), true) => Ok(VerifiedPackage {
            path: path.to_path_buf(),
            sha256,
            size,
            manifest,
        }),
        _ => Err(VerifyError::Failed {
            path: path.to_path_buf(),
            problems,
        }),
    }
}

fn check_against_manifest(
    m: &Manifest,
    file_name: &str,
    contents: &Contents,
    problems: &mut Vec<Problem>,
) {
    let (top, files) = (contents.top.as_deref(), &contents.files);
    if m.schema > SCHEMA_VERSION {
        problems.push(Problem::UnsupportedSchema { schema: m.schema });
    }
    if let Some(top) = top {
        if top != m.top_dir() {
            problems.push(Problem::TopDirMismatch {
                expected: m.top_dir(),
                actual: top.to_string(),
            });
        }
    }
    if file_name != m.tarball_name() {
        problems.push(Problem::FileNameMismatch {
            expected: m.tarball_name(),
            actual: file_name.to_string(),
        });
    }
    let mut listed = BTreeMap::new();
    for e in &m.files {
        if listed.insert(e.path.as_str(), e).is_some() {
            problems.push(Problem::ManifestInvalid {
                reason: format!("{} is listed twice", e.path),
            });
        }
    }
    let mut unreached = Vec::new();
    for (path, e) in &listed {
        let Some(seen) = files.get(*path) else {
            // Entries are sorted: after a read error, what sorts after the
            // last entry read was simply never reached.
            match &contents.broken_after {
                Some(last) if *path > last.as_str() => unreached.push(path.to_string()),
                _ => problems.push(Problem::MissingFromTarball {
                    file: path.to_string(),
                }),
            }
            continue;
        };
        if seen.size != e.size {
            problems.push(Problem::SizeMismatch {
                file: path.to_string(),
                expected: e.size,
                actual: seen.size,
            });
        }
        if seen.sha256 != e.sha256 {
            problems.push(Problem::Sha256Mismatch {
                file: path.to_string(),
                expected: e.sha256.clone(),
                actual: seen.sha256.clone(),
            });
        }
        if seen.mode != e.mode {
            problems.push(Problem::ModeMismatch {
                file: path.to_string(),
                expected: e.mode,
                actual: seen.mode,
            });
        }
    }
    if let Some(first) = unreached.first() {
        problems.push(Problem::NotChecked {
            count: unreached.len(),
            first: first.clone(),
        });
    }
    for (path, seen) in files {
        if !listed.contains_key(path.as_str()) {
            problems.push(Problem::NotInManifest {
                file: path.clone(),
                size: seen.size,
            });
        }
    }
}

#[derive(Default)]
struct Contents {
    top: Option<String>,
    manifest: Option<String>,
    files: BTreeMap<String, Seen>,
    /// Set when reading stopped early: the relative path of the last entry
    /// read ("" if none).
    broken_after: Option<String>,
}

/// Walk the tar.gz once: hash every regular file, keep the manifest text,
/// record structural problems. A read error ends the walk with `Unreadable`.
fn read_contents(input: impl Read, problems: &mut Vec<Problem>) -> Contents {
    let mut out = Contents::default();
    let mut archive = tar::Archive::new(GzDecoder::new(input));
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => {
            problems.push(Problem::Unreadable {
                reason: e.to_string(),
            });
            return out;
        }
    };
    let mut seen_entries = std::collections::BTreeSet::new();
    let mut last = String::new();
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let after = if last.is_empty() {
                    "at the start".to_string()
                } else {
                    format!("after {last}")
                };
                problems.push(Problem::Unreadable {
                    reason: format!("{e} ({after})"),
                });
                let rel = last.split_once('/').map(|(_, r)| r.to_string());
                out.broken_after = Some(rel.unwrap_or_default());
                return out;
            }
        };
        let raw = String::from_utf8_lossy(&entry.path_bytes()).to_string();
        let name = raw.trim_end_matches('/').to_string();
        last = name.clone();
        if !seen_entries.insert(name.clone()) {
            problems.push(Problem::DuplicateEntry { entry: raw.clone() });
        }
        if name.starts_with('/')
            || name.split('/').any(|c| c == ".." || c == ".")
            || name.is_empty()
        {
            problems.push(Problem::UnsafePath { entry: raw });
            continue;
        }
        let header = entry.header();
        let (uid, gid) = (
            header.uid().unwrap_or(u64::MAX),
            header.gid().unwrap_or(u64::MAX),
        );
        if uid != 0 || gid != 0 {
            problems.push(Problem::NotOwnedByRoot {
                entry: raw.clone(),
                uid,
                gid,
            });
        }
        let mode = Mode(header.mode().unwrap_or(0) & 0o7777);
        let kind = header.entry_type();
        let (first, rest) = match name.split_once('/') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (name.clone(), None),
        };
        let top = out.top.get_or_insert_with(|| first.clone()).clone();
        if first != top {
            problems.push(Problem::OutsideTopDir { entry: raw, top });
            continue;
        }
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            problems.push(Problem::UnexpectedEntryType {
                entry: raw,
                kind: format!("{kind:?}").to_lowercase(),
            });
            continue;
        }
        let Some(rel) = rest else {
            problems.push(Problem::OutsideTopDir { entry: raw, top });
            continue;
        };
        if rel == MANIFEST_NAME {
            let mut text = String::new();
            match (&mut entry).take(MANIFEST_LIMIT).read_to_string(&mut text) {
                Ok(_) => out.manifest = Some(text),
                Err(e) => problems.push(Problem::ManifestInvalid {
                    reason: e.to_string(),
                }),
            }
            continue;
        }
        match sha256_of(&mut entry) {
            Ok((sha256, size)) => {
                out.files.insert(rel, Seen { mode, size, sha256 });
            }
            Err(e) => {
                problems.push(Problem::Unreadable {
                    reason: format!("{raw}: {e}"),
                });
                out.broken_after = Some(rel);
                return out;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_read_precisely() {
        let cases: Vec<(Problem, &str)> = vec![
            (
                Problem::Sha256Mismatch {
                    file: "bin/notigen".into(),
                    expected: "aa".into(),
                    actual: "bb".into(),
                },
                "bin/notigen: sha256 bb, manifest says aa",
            ),
            (
                Problem::ModeMismatch {
                    file: "bin/x".into(),
                    expected: Mode::EXEC,
                    actual: Mode::DATA,
                },
                "bin/x: mode 0644, manifest says 0755",
            ),
            (
                Problem::MissingFromTarball {
                    file: "share/roles/a.yaml".into(),
                },
                "share/roles/a.yaml: in the manifest but not in the tarball",
            ),
            (
                Problem::NotInManifest {
                    file: "bin/evil".into(),
                    size: 3,
                },
                "bin/evil: in the tarball (3 bytes) but not in the manifest",
            ),
            (
                Problem::SizeMismatch {
                    file: "f".into(),
                    expected: 1,
                    actual: 2,
                },
                "f: size 2, manifest says 1",
            ),
        ];
        for (p, text) in cases {
            assert_eq!(p.to_string(), text);
        }
    }
}
