//! `cargo build` of the core binaries for one target.
//!
//! Owns the exact cargo command line (one invocation per target, one `--bin`
//! per selected binary), where cargo puts the result (`<target-dir>/[<triple>/]
//! <profile dir>`), and how its output is shown: streamed unchanged when
//! stderr is not a terminal, or summarised on a spinner (and replayed in full
//! on failure) when it is.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use indicatif::ProgressBar;

use super::PackageError;

/// The directory cargo uses for a profile (`dev` → `debug`, `bench` → `release`).
pub fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

/// Where the binaries of `profile` for `target` land (`None`: host build
/// without `--target`).
pub fn output_dir(target_dir: &Path, target: Option<&str>, profile: &str) -> PathBuf {
    let mut dir = target_dir.to_path_buf();
    if let Some(t) = target {
        dir.push(t);
    }
    dir.push(profile_dir(profile));
    dir
}

/// The cargo arguments that build `bins` (without the `cargo` program).
pub fn cargo_args(
    manifest_path: &Path,
    target: Option<&str>,
    profile: &str,
    bins: &[String],
) -> Vec<String> {
    let mut args = vec![
        "build".to_string(),
        "--manifest-path".into(),
        manifest_path.display().to_string(),
        // Without --workspace cargo only looks at the root package (the
        // workspace root is itself the stv3ctl package).
        "--workspace".into(),
        "--profile".into(),
        profile.into(),
    ];
    if let Some(t) = target {
        args.push("--target".into());
        args.push(t.into());
    }
    for b in bins {
        args.push("--bin".into());
        args.push(b.clone());
    }
    args
}

/// Run cargo with `args`. `env` is added to cargo's environment (the git sha
/// stamp). With a visible `spinner`, cargo's stderr is captured and its
/// `Compiling …` lines shown as the spinner message.
pub fn run_cargo(
    args: &[String],
    env: &[(&str, String)],
    spinner: &ProgressBar,
) -> Result<(), PackageError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let command = format!("{cargo} {}", args.join(" "));
    let mut cmd = Command::new(&cargo);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let fail = |detail: String| PackageError::Command {
        command: command.clone(),
        detail,
    };
    if spinner.is_hidden() {
        cmd.stderr(Stdio::inherit());
        let status = cmd.status().map_err(|e| fail(e.to_string()))?;
        return if status.success() {
            Ok(())
        } else {
            Err(fail(format!("{status} (cargo's output is above)")))
        };
    }
    cmd.stderr(Stdio::piped())
        .env("CARGO_TERM_PROGRESS_WHEN", "never");
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    let mut log = Vec::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix("Compiling ") {
                spinner.set_message(format!("compiling {rest}"));
            }
            log.push(line);
        }
    }
    let status = child.wait().map_err(|e| fail(e.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        let tail: Vec<&str> = log
            .iter()
            .rev()
            .take(60)
            .rev()
            .map(String::as_str)
            .collect();
        Err(fail(format!("{status}; cargo said:\n{}", tail.join("\n"))))
    }
}

/// Run `bin --version` (host builds only) and return a warning unless the
/// output contains `stamp` (the git sha the build was given). Every stv3
/// binary is meant to print `<name> <version> (<sha>)`.
pub fn check_version_stamp(bin: &Path, stamp: &str) -> Option<String> {
    let name = bin
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // A just-written binary can be briefly "text file busy" when another
    // thread forked while it was open for writing: retry a few times.
    let mut attempt = 0;
    let mut child = loop {
        let spawned = Command::new(bin)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        match spawned {
            Ok(c) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempt < 5 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Some(format!("bin/{name}: cannot run --version: {e}")),
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Some(format!("bin/{name}: --version did not exit within 10 s"));
            }
        }
    }
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut out, &mut text);
    }
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if line.contains(stamp) {
        None
    } else {
        Some(format!(
            "bin/{name}: `--version` prints {line:?}, without the git sha {stamp}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_stamp_check() {
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            p
        };
        let good = script("good", "echo 'good 0.1.0 (abc123def456)'");
        let bad = script("bad", "echo 'bad 0.1.0'");
        assert_eq!(check_version_stamp(&good, "abc123def456"), None);
        let w = check_version_stamp(&bad, "abc123def456").unwrap();
        assert!(
            w.contains("bin/bad") && w.contains("\"bad 0.1.0\"") && w.contains("abc123def456"),
            "{w}"
        );
        let w = check_version_stamp(&dir.path().join("missing"), "x").unwrap();
        assert!(w.contains("cannot run"), "{w}");
    }

    #[test]
    fn output_dirs() {
        let t = Path::new("/w/target");
        let cases = [
            (None, "release", "/w/target/release"),
            (None, "dev", "/w/target/debug"),
            (
                Some("aarch64-unknown-linux-gnu"),
                "release",
                "/w/target/aarch64-unknown-linux-gnu/release",
            ),
            (None, "dist", "/w/target/dist"),
        ];
        for (target, profile, want) in cases {
            assert_eq!(
                output_dir(t, target, profile),
                PathBuf::from(want),
                "{target:?} {profile}"
            );
        }
    }

    #[test]
    fn cargo_command_line() {
        let args = cargo_args(
            Path::new("/w/Cargo.toml"),
            Some("x86_64-unknown-linux-musl"),
            "release",
            &["a".into(), "b".into()],
        );
        assert_eq!(
            args.join(" "),
            "build --manifest-path /w/Cargo.toml --workspace --profile release --target x86_64-unknown-linux-musl --bin a --bin b"
        );
        assert_eq!(
            cargo_args(Path::new("C"), None, "dev", &[]).join(" "),
            "build --manifest-path C --workspace --profile dev"
        );
    }
}
