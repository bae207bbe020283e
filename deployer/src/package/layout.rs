//! What goes where in the tarball: the package layout.
//!
//! Owns [`CORE_BINARIES`] (the one list of binaries a package ships), the
//! selection of binaries from what is actually available, the mapping of
//! repository folders to `share/…`, and the mode rules (0755 for `bin/` and
//! directories, 0644 for everything else). Apart from [`collect_share`],
//! which walks the repository, everything here is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::manifest::Mode;
use super::PackageError;

/// The core binaries a package ships, in `bin/`. The build discovers which of
/// them exist in the workspace (`cargo metadata`), so a name listed here that
/// no crate defines yet is reported as missing instead of breaking the build.
pub const CORE_BINARIES: &[&str] = &[
    "yagi-event",
    "pipeline-worker",
    "winchester-db",
    "stv3-api",
    "klugman",
    "notigen",
    "distiller",
    "archive-read",
    "stv3ctl",
];

/// Repository folders copied under `share/`: (source relative to the repo
/// root, destination relative to the top directory, required).
pub const SHARE_DIRS: &[(&str, &str, bool)] = &[
    ("templates", "share/templates", true),
    ("roles", "share/roles", true),
    ("core/winchester/migrations", "share/migrations", true),
    ("examples", "share/examples", false),
];

/// Directories that always exist in a package, even when empty.
pub const FIXED_DIRS: &[&str] = &[
    "bin",
    "share",
    "share/examples",
    "share/migrations",
    "share/roles",
    "share/templates",
];

/// The result of matching [`CORE_BINARIES`] against what is available.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BinarySelection {
    /// Core binaries that are available: these are packaged (sorted).
    pub include: Vec<String>,
    /// Core binaries that are not available (yet).
    pub missing: Vec<String>,
    /// Available names that are not core binaries: not packaged.
    pub ignored: Vec<String>,
}

/// Match the available binary names (workspace `bin` targets, or the files of
/// a `--from-dir`) against [`CORE_BINARIES`].
pub fn select_binaries<S: AsRef<str>>(available: &[S]) -> BinarySelection {
    let available: BTreeSet<&str> = available.iter().map(AsRef::as_ref).collect();
    let core: BTreeSet<&str> = CORE_BINARIES.iter().copied().collect();
    BinarySelection {
        include: core
            .intersection(&available)
            .map(|s| s.to_string())
            .collect(),
        missing: core.difference(&available).map(|s| s.to_string()).collect(),
        ignored: available.difference(&core).map(|s| s.to_string()).collect(),
    }
}

/// The normalised mode of a file at `path` (relative to the top directory).
pub fn file_mode(path: &str) -> Mode {
    if path.starts_with("bin/") {
        Mode::EXEC
    } else {
        Mode::DATA
    }
}

/// One regular file to pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Path relative to the top directory (`share/roles/worker.yaml`).
    pub path: String,
    /// Where the content is read from.
    pub source: PathBuf,
}

/// The files of `bin/`: one per selected binary, read from `bin_dir`.
pub fn binary_files(bin_dir: &Path, names: &[String]) -> Vec<PlannedFile> {
    names
        .iter()
        .map(|n| PlannedFile {
            path: format!("bin/{n}"),
            source: bin_dir.join(n),
        })
        .collect()
}

/// Walk the repository folders that go under `share/` ([`SHARE_DIRS`] plus
/// every `core/<crate>/etc/`, which lands in `share/examples/<crate>/`).
/// Hidden files and editor backups (`*~`) are skipped; symlinks are followed.
pub fn collect_share(repo_root: &Path) -> Result<Vec<PlannedFile>, PackageError> {
    let mut out = Vec::new();
    for (src, dst, required) in SHARE_DIRS {
        let dir = repo_root.join(src);
        if !dir.is_dir() {
            if *required {
                return Err(PackageError::MissingShareDir { dir });
            }
            continue;
        }
        walk(&dir, dst, &mut out)?;
    }
    let core = repo_root.join("core");
    if let Ok(entries) = fs::read_dir(&core) {
        let mut crates: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        crates.sort();
        for krate in crates {
            let etc = krate.join("etc");
            if etc.is_dir() {
                let name = krate
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                walk(&etc, &format!("share/examples/{name}"), &mut out)?;
            }
        }
    }
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<PlannedFile>) -> Result<(), PackageError> {
    let io = |error| PackageError::Io {
        path: dir.to_path_buf(),
        error,
    };
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let path = entry.path();
        let meta = fs::metadata(&path).map_err(|error| PackageError::Io {
            path: path.clone(),
            error,
        })?;
        let rel = format!("{prefix}/{name}");
        if meta.is_dir() {
            walk(&path, &rel, out)?;
        } else if meta.is_file() {
            out.push(PlannedFile {
                path: rel,
                source: path,
            });
        }
    }
    Ok(())
}

/// Sort the files by path and reject two sources for one path.
pub fn finish_files(mut files: Vec<PlannedFile>) -> Result<Vec<PlannedFile>, PackageError> {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for pair in files.windows(2) {
        if pair[0].path == pair[1].path {
            return Err(PackageError::DuplicatePath {
                path: pair[0].path.clone(),
                first: pair[0].source.clone(),
                second: pair[1].source.clone(),
            });
        }
    }
    Ok(files)
}

/// Every directory the tarball needs (relative to the top directory, without
/// trailing slash): [`FIXED_DIRS`] plus every parent of a file. Sorted.
pub fn directories<'a>(files: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut dirs: BTreeMap<String, ()> = FIXED_DIRS.iter().map(|d| (d.to_string(), ())).collect();
    for file in files {
        let mut path = file;
        while let Some((parent, _)) = path.rsplit_once('/') {
            dirs.insert(parent.to_string(), ());
            path = parent;
        }
    }
    dirs.into_keys().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_select(available: &[&str], include: &[&str], missing: &[&str], ignored: &[&str]) {
        let got = select_binaries(available);
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(got.include, s(include), "include for {available:?}");
        assert_eq!(got.missing, s(missing), "missing for {available:?}");
        assert_eq!(got.ignored, s(ignored), "ignored for {available:?}");
    }

    #[test]
    fn selects_core_binaries() {
        let all_but = |skip: &[&str]| {
            let mut v: Vec<&str> = CORE_BINARIES
                .iter()
                .copied()
                .filter(|b| !skip.contains(b))
                .collect();
            v.sort();
            v
        };
        check_select(CORE_BINARIES, &all_but(&[]), &[], &[]);
        check_select(&["stv3ctl"], &["stv3ctl"], &all_but(&["stv3ctl"]), &[]);
        check_select(
            &["stv3ctl", "load-tool", "notigen"],
            &["notigen", "stv3ctl"],
            &all_but(&["stv3ctl", "notigen"]),
            &["load-tool"],
        );
        check_select(&[], &[], &all_but(&[]), &[]);
    }

    #[test]
    fn modes_are_normalised() {
        for (path, mode) in [
            ("bin/yagi-event", Mode::EXEC),
            ("share/templates/yagi.conf.j2", Mode::DATA),
            ("share/examples/ingest/yagi.conf", Mode::DATA),
            ("binary", Mode::DATA),
        ] {
            assert_eq!(file_mode(path), mode, "{path}");
        }
    }

    #[test]
    fn directories_include_fixed_and_parents() {
        let dirs = directories([
            "bin/a",
            "share/roles/x/y.yaml",
            "share/examples/ingest/yagi.conf",
        ]);
        assert_eq!(
            dirs,
            [
                "bin",
                "share",
                "share/examples",
                "share/examples/ingest",
                "share/migrations",
                "share/roles",
                "share/roles/x",
                "share/templates"
            ]
        );
    }

    #[test]
    fn duplicate_paths_are_rejected() {
        let f = |p: &str, s: &str| PlannedFile {
            path: p.into(),
            source: s.into(),
        };
        let err = finish_files(vec![
            f("share/examples/a", "/x/a"),
            f("bin/b", "/b"),
            f("share/examples/a", "/y/a"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("share/examples/a") && err.contains("/x/a") && err.contains("/y/a"),
            "{err}"
        );
        let ok = finish_files(vec![f("share/z", "/z"), f("bin/a", "/a")]).unwrap();
        assert_eq!(
            ok.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            ["bin/a", "share/z"]
        );
    }
}
