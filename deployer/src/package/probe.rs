//! Facts about the source tree and the toolchain that go into a package.
//!
//! Owns the small, read-only commands `stv3ctl package` runs before it plans:
//! `cargo metadata --no-deps` (workspace root, target dir, version, `bin`
//! targets), `git rev-parse`/`git status`/`git log -1 --format=%ct` (sha,
//! dirty flag, commit time), `rustc -vV` and `rustup target list --installed`.
//! Parsing of their output is pure and unit-tested here.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::manifest::{GitInfo, RustcInfo};
use super::PackageError;

/// What `cargo metadata` says about the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// Workspace root (holds `templates/`, `roles/`, `core/`, `Cargo.toml`).
    pub root: PathBuf,
    /// Cargo's target directory.
    pub target_dir: PathBuf,
    /// Version of the `stv3ctl` package (the workspace version).
    pub version: String,
    /// Names of every `bin` target of the workspace members, sorted.
    pub bins: Vec<String>,
}

impl Workspace {
    /// Run `cargo metadata --format-version 1 --no-deps` in `dir`.
    pub fn load(dir: &Path) -> Result<Workspace, PackageError> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let text = run(Command::new(&cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(dir))?;
        parse_metadata(&text).map_err(|detail| PackageError::Command {
            command: "cargo metadata --format-version 1 --no-deps".into(),
            detail,
        })
    }
}

/// Parse `cargo metadata --format-version 1 --no-deps` JSON.
pub fn parse_metadata(text: &str) -> Result<Workspace, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("output is not JSON: {e}"))?;
    let str_field = |key: &str| {
        v.get(key)
            .and_then(|x| x.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("field {key:?} missing"))
    };
    let root = PathBuf::from(str_field("workspace_root")?);
    let target_dir = PathBuf::from(str_field("target_directory")?);
    let members: Vec<&str> = v
        .get("workspace_members")
        .and_then(|m| m.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    let packages = v
        .get("packages")
        .and_then(|p| p.as_array())
        .ok_or("field \"packages\" missing")?;
    let mut bins = Vec::new();
    let mut version = None;
    let mut first_version = None;
    for p in packages {
        let id = p.get("id").and_then(|x| x.as_str()).unwrap_or("");
        if !members.is_empty() && !members.contains(&id) {
            continue;
        }
        let name = p.get("name").and_then(|x| x.as_str()).unwrap_or("");
        let pv = p
            .get("version")
            .and_then(|x| x.as_str())
            .map(str::to_string);
        if name == "stv3ctl" {
            version = pv.clone();
        }
        if first_version.is_none() {
            first_version = pv;
        }
        for t in p
            .get("targets")
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
        {
            let is_bin = t
                .get("kind")
                .and_then(|k| k.as_array())
                .is_some_and(|k| k.iter().any(|x| x.as_str() == Some("bin")));
            if is_bin {
                if let Some(n) = t.get("name").and_then(|x| x.as_str()) {
                    bins.push(n.to_string());
                }
            }
        }
    }
    bins.sort();
    bins.dedup();
    let version = version
        .or(first_version)
        .ok_or("no workspace package has a version")?;
    Ok(Workspace {
        root,
        target_dir,
        version,
        bins,
    })
}

/// Git sha and dirty flag of `root`; `unknown`/dirty outside a git checkout
/// or before the first commit.
pub fn git_info(root: &Path) -> GitInfo {
    let sha = git(root, &["rev-parse", "HEAD"]);
    match sha {
        Some(sha) => {
            let dirty = git(root, &["status", "--porcelain", "--untracked-files=no"])
                .is_none_or(|s| !s.is_empty());
            GitInfo { sha, dirty }
        }
        None => GitInfo {
            sha: "unknown".into(),
            dirty: true,
        },
    }
}

/// Commit time of `HEAD` (`git log -1 --format=%ct`).
pub fn commit_time(root: &Path) -> Option<u64> {
    git(root, &["log", "-1", "--format=%ct"]).and_then(|s| s.parse().ok())
}

/// The tar mtime: `SOURCE_DATE_EPOCH` if set (it must be an integer), else
/// the commit time, else 0 (no commit yet).
pub fn source_date_epoch(
    env_value: Option<&str>,
    commit_time: Option<u64>,
) -> Result<u64, PackageError> {
    match env_value.map(str::trim) {
        Some(v) if !v.is_empty() => v.parse().map_err(|_| {
            PackageError::Invalid(format!(
                "SOURCE_DATE_EPOCH={v:?} is not a whole number of seconds"
            ))
        }),
        _ => Ok(commit_time.unwrap_or(0)),
    }
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// `rustc -vV` (honours `RUSTC`).
pub fn rustc_info() -> Result<RustcInfo, PackageError> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let text = run(Command::new(&rustc).arg("-vV"))?;
    RustcInfo::parse(&text).ok_or_else(|| PackageError::Command {
        command: format!("{rustc} -vV"),
        detail: format!("unexpected output: {:?}", text.lines().next().unwrap_or("")),
    })
}

/// `rustup target list --installed`.
pub fn installed_targets() -> Result<Vec<String>, PackageError> {
    let text = run(Command::new("rustup").args(["target", "list", "--installed"]))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// Every requested target must be installed; the error names the exact
/// `rustup target add` line for the first one that is not.
pub fn check_targets(requested: &[String], installed: &[String]) -> Result<(), PackageError> {
    match requested.iter().find(|t| !installed.contains(t)) {
        Some(t) => Err(PackageError::TargetNotInstalled {
            target: t.clone(),
            installed: installed.to_vec(),
        }),
        None => Ok(()),
    }
}

/// Run a command and return its stdout; a spawn failure or a non-zero exit is
/// an error carrying stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<String, PackageError> {
    let command = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd.output().map_err(|e| PackageError::Command {
        command: command.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(PackageError::Command {
            command,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cargo_metadata() {
        let json = r#"{
          "workspace_root": "/w", "target_directory": "/w/target",
          "workspace_members": ["path+file:///w#stv3ctl@0.2.0", "path+file:///w/core/a#a@0.2.0"],
          "packages": [
            {"id": "path+file:///w/core/a#a@0.2.0", "name": "a", "version": "0.2.0", "targets": [
              {"name": "a", "kind": ["lib"]}, {"name": "yagi-event", "kind": ["bin"]}, {"name": "bench", "kind": ["bench"]}]},
            {"id": "path+file:///w#stv3ctl@0.2.0", "name": "stv3ctl", "version": "0.2.0", "targets": [
              {"name": "stv3ctl", "kind": ["bin"]}, {"name": "build-script-build", "kind": ["custom-build"]}]},
            {"id": "registry+x#dep@1.0.0", "name": "dep", "version": "1.0.0", "targets": [{"name": "dep-tool", "kind": ["bin"]}]}
          ]}"#;
        let ws = parse_metadata(json).unwrap();
        assert_eq!(
            ws,
            Workspace {
                root: "/w".into(),
                target_dir: "/w/target".into(),
                version: "0.2.0".into(),
                bins: vec!["stv3ctl".into(), "yagi-event".into()],
            }
        );
        for (bad, part) in [
            ("nope", "not JSON"),
            ("{}", "workspace_root"),
            (
                r#"{"workspace_root":"/w","target_directory":"/t"}"#,
                "packages",
            ),
        ] {
            let err = parse_metadata(bad).unwrap_err();
            assert!(err.contains(part), "{bad}: {err}");
        }
    }

    #[test]
    fn source_date_epoch_precedence() {
        type Case<'a> = (Option<&'a str>, Option<u64>, Result<u64, &'a str>);
        let cases: &[Case] = &[
            (Some("1700000000"), Some(5), Ok(1_700_000_000)),
            (None, Some(5), Ok(5)),
            (Some(""), Some(5), Ok(5)),
            (None, None, Ok(0)),
            (
                Some("yesterday"),
                Some(5),
                Err("SOURCE_DATE_EPOCH=\"yesterday\""),
            ),
        ];
        for (env, commit, expected) in cases {
            match (source_date_epoch(*env, *commit), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{env:?} {commit:?}"),
                (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{e}"),
                (got, want) => panic!("{env:?} {commit:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn missing_target_names_the_rustup_line() {
        let installed = vec!["x86_64-unknown-linux-gnu".to_string()];
        assert!(check_targets(&installed, &installed).is_ok());
        assert!(check_targets(&[], &installed).is_ok());
        let err = check_targets(
            &[
                "x86_64-unknown-linux-gnu".into(),
                "aarch64-unknown-linux-gnu".into(),
            ],
            &installed,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("rustup target add aarch64-unknown-linux-gnu"),
            "{err}"
        );
    }
}
