//! `MANIFEST.json`: the machine-readable description of one package.
//!
//! Owns the serde types written by `stv3ctl package` and read back by
//! `package verify`, `package inspect` and (later) `deploy`. The manifest
//! describes every regular file of the tarball except itself, with paths
//! relative to the top directory (`stv3-<version>/`). It never contains a
//! wall-clock time, a host name or a user name, so it is reproducible.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Current manifest schema version. Bump when a field changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// File name of the manifest inside the top directory.
pub const MANIFEST_NAME: &str = "MANIFEST.json";

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema: u32,
    /// Product name; also the prefix of the tarball and its top directory.
    pub name: String,
    /// Workspace version (`Cargo.toml` `[workspace.package] version`).
    pub version: String,
    /// The commit the package was made from.
    pub git: GitInfo,
    /// Target triple of every binary in `bin/`.
    pub target: String,
    /// The compiler (`rustc -vV`) on the packaging host.
    pub rustc: RustcInfo,
    /// Cargo profile the binaries were built with (`release` by default).
    pub profile: String,
    /// `cargo` when `stv3ctl package` built the binaries, `from-dir` when they
    /// were taken prebuilt from a directory.
    pub built_from: BuiltFrom,
    /// Mtime of every tar entry (seconds since the epoch): `SOURCE_DATE_EPOCH`
    /// or the commit time.
    pub source_date_epoch: u64,
    /// Names of the binaries in `bin/`, sorted.
    pub binaries: Vec<String>,
    /// Every regular file of the tarball except `MANIFEST.json`, sorted by path.
    pub files: Vec<FileEntry>,
}

/// Git state of the source tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitInfo {
    /// Full commit sha of `HEAD`, or `unknown` outside a git checkout.
    pub sha: String,
    /// True when tracked files differed from `HEAD` at packaging time.
    pub dirty: bool,
}

/// The parsed output of `rustc -vV`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RustcInfo {
    /// First line, e.g. `rustc 1.95.0 (59807616e 2026-04-14)`.
    pub version: String,
    /// `release:` line, e.g. `1.95.0`.
    pub release: String,
    /// `commit-hash:` line.
    pub commit_hash: String,
    /// `host:` line (the compiler's host triple).
    pub host: String,
    /// `LLVM version:` line.
    pub llvm_version: String,
}

impl RustcInfo {
    /// Parse `rustc -vV` output. Missing lines become empty strings; an empty
    /// first line is an error.
    pub fn parse(text: &str) -> Option<RustcInfo> {
        let mut lines = text.lines();
        let version = lines.next()?.trim().to_string();
        if !version.starts_with("rustc ") {
            return None;
        }
        let mut info = RustcInfo {
            version,
            release: String::new(),
            commit_hash: String::new(),
            host: String::new(),
            llvm_version: String::new(),
        };
        for line in lines {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim().to_string();
            match key.trim() {
                "release" => info.release = value,
                "commit-hash" => info.commit_hash = value,
                "host" => info.host = value,
                "LLVM version" => info.llvm_version = value,
                _ => {}
            }
        }
        Some(info)
    }
}

/// Where the binaries came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltFrom {
    Cargo,
    FromDir,
}

impl fmt::Display for BuiltFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BuiltFrom::Cargo => "cargo",
            BuiltFrom::FromDir => "from-dir",
        })
    }
}

/// One regular file of the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path relative to the top directory, `/`-separated (`bin/yagi-event`).
    pub path: String,
    /// Permission bits as in the tar header.
    pub mode: Mode,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex sha256 of the content.
    pub sha256: String,
}

/// Unix permission bits, written as an octal string (`"0755"`) in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mode(pub u32);

impl Mode {
    /// Executables and directories.
    pub const EXEC: Mode = Mode(0o755);
    /// Everything else.
    pub const DATA: Mode = Mode(0o644);
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        u32::from_str_radix(&text, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .map(Mode)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "mode {text:?} is not an octal permission like \"0755\""
                ))
            })
    }
}

impl Manifest {
    /// Pretty JSON with a trailing newline (the exact bytes in the tarball).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("manifest serialises");
        text.push('\n');
        text
    }

    /// Parse the JSON form.
    pub fn from_json(text: &str) -> Result<Manifest, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Look a file up by its relative path.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    /// The top directory inside the tarball: `<name>-<version>`.
    pub fn top_dir(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    /// The tarball file name: `<name>-<version>-<target>.tar.gz`.
    pub fn tarball_name(&self) -> String {
        tarball_name(&self.name, &self.version, &self.target)
    }
}

/// `<name>-<version>-<target>.tar.gz`.
pub fn tarball_name(name: &str, version: &str, target: &str) -> String {
    format!("{name}-{version}-{target}.tar.gz")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_round_trips_as_octal_string() {
        for (mode, text) in [
            (Mode::EXEC, "\"0755\""),
            (Mode::DATA, "\"0644\""),
            (Mode(0o4755), "\"4755\""),
        ] {
            assert_eq!(serde_json::to_string(&mode).unwrap(), text);
            assert_eq!(serde_json::from_str::<Mode>(text).unwrap(), mode);
        }
        for bad in ["\"755x\"", "\"99999\"", "\"\""] {
            let err = serde_json::from_str::<Mode>(bad).unwrap_err().to_string();
            assert!(err.contains("octal"), "{bad}: {err}");
        }
    }

    #[test]
    fn parses_rustc_vv() {
        let text = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\ncommit-hash: 59807616e1fa\ncommit-date: 2026-04-14\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";
        let info = RustcInfo::parse(text).unwrap();
        assert_eq!(info.version, "rustc 1.95.0 (59807616e 2026-04-14)");
        assert_eq!(info.release, "1.95.0");
        assert_eq!(info.commit_hash, "59807616e1fa");
        assert_eq!(info.host, "x86_64-unknown-linux-gnu");
        assert_eq!(info.llvm_version, "22.1.2");
        assert!(RustcInfo::parse("").is_none());
        assert!(RustcInfo::parse("cargo 1.0").is_none());
    }
}
