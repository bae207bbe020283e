//! End-to-end: `stv3ctl sandbox` on the embedded default (SQLite, file source,
//! no servers) shows streams through klugman within 30 s, and some of them are
//! completed by the usage pipeline; stopping it leaves no process behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stv3_testsupport::free_port;

fn target_bin(name: &str) -> PathBuf {
    // stv3ctl sits next to the other binaries of the workspace.
    Path::new(env!("CARGO_BIN_EXE_stv3ctl")).with_file_name(name)
}

fn klugman_json(api: &str, args: &[&str]) -> Option<serde_json::Value> {
    let out = Command::new(target_bin("klugman"))
        .args(["--url", &format!("http://{api}"), "--json"])
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn sandbox_shows_fired_streams_within_30s_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    // Build what the sandbox needs first, so the 30 s clock starts after the build.
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--workspace",
            "--bin",
            "yagi-event",
            "--bin",
            "pipeline-worker",
            "--bin",
            "winchester-db",
        ])
        .args(["--bin", "stv3-api", "--bin", "notigen", "--bin", "klugman"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success(), "cargo build failed");

    let mut child = Command::new(env!("CARGO_BIN_EXE_stv3ctl"))
        .args([
            "sandbox",
            "--no-build",
            "--seconds",
            "90",
            "--count",
            "4000",
            "--instances",
            "60",
            "--api",
            &api,
        ])
        .arg("--dir")
        .arg(dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let start = Instant::now();
    let mut seen_streams = 0usize;
    let mut completed = 0usize;
    while start.elapsed() < Duration::from_secs(30) {
        if let Some(v) = klugman_json(&api, &["streams", "--all"]) {
            let streams = v.as_array().cloned().unwrap_or_default();
            seen_streams = streams.len();
            completed = streams
                .iter()
                .filter(|s| matches!(s["state"].as_str(), Some("completed")))
                .count();
            if seen_streams > 0 && completed > 0 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let elapsed = start.elapsed();

    // Stop it the way an operator would (Ctrl-C = SIGINT).
    unsafe_sigint(child.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut exited = None;
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            exited = Some(st);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if exited.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert!(
        seen_streams > 0 && completed > 0,
        "after {elapsed:?}: {seen_streams} streams, {completed} completed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        exited.is_some(),
        "sandbox did not stop on SIGINT\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("stopped."), "{stdout}");
    // Every process it started is gone: the pid files were removed.
    let pids = dir.path().join("pids");
    let left: Vec<_> = std::fs::read_dir(&pids)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "pid files left behind: {left:?}");
    // Logs are kept per process, prefixed.
    let log = std::fs::read_to_string(dir.path().join("logs/yagi-cell1.log")).unwrap();
    assert!(
        log.lines().all(|l| l.starts_with("[yagi-cell1] ")),
        "unprefixed line in yagi log"
    );
}

fn unsafe_sigint(pid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}
