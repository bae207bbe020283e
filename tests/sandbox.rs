//! End-to-end: `stv3ctl sandbox` on the embedded default (SQLite, file source,
//! no servers) shows streams through klugman within 30 s, and some of them are
//! completed by the usage pipeline; stopping it leaves no process behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
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

/// The sandboxes of this file share the default ops ports: one at a time.
static ONE_SANDBOX: Mutex<()> = Mutex::new(());

/// Build what the sandbox needs first, so no clock of a test runs during the build.
fn build_sandbox_binaries() {
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
}

/// `stv3ctl sandbox --no-build` on the embedded default, in `dir`.
fn spawn_sandbox(dir: &Path, api: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_stv3ctl"))
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
            api,
        ])
        .arg("--dir")
        .arg(dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// One sandbox at a time: (its turn, its directory, its API address, the process).
fn start_sandbox() -> (MutexGuard<'static, ()>, tempfile::TempDir, String, Child) {
    let one = ONE_SANDBOX.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    build_sandbox_binaries();
    let child = spawn_sandbox(dir.path(), &api);
    (one, dir, api, child)
}

#[test]
fn sandbox_shows_fired_streams_within_30s_and_stops_cleanly() {
    let (_one, dir, api, mut child) = start_sandbox();

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

/// The pid files in `dir/pids` (name -> pid), added to `seen`.
fn collect_pids(dir: &Path, seen: &mut BTreeMap<String, u32>) {
    for f in std::fs::read_dir(dir.join("pids"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = f
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".pid")
            .to_string();
        if let Some(pid) = std::fs::read_to_string(f.path())
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            seen.insert(name, pid);
        }
    }
}

/// A process that exists and is not a zombie.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Ctrl-C while the region is still starting: the services already started
/// are stopped, not orphaned (the stop flag is set before anything starts).
#[test]
fn sandbox_interrupted_during_start_up_leaves_nothing_behind() {
    let (_one, dir, _api, mut child) = start_sandbox();
    // Wait for the first long-running service (one-shots: migrations, notigen).
    let mut seen = BTreeMap::new();
    let start = Instant::now();
    let one_shot = |n: &str| n.starts_with("winchester-db") || n.starts_with("notigen");
    while !seen.keys().any(|n: &String| !one_shot(n)) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no service started within 60 s: {seen:?}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "sandbox exited during start-up"
        );
        collect_pids(dir.path(), &mut seen);
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe_sigint(child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        collect_pids(dir.path(), &mut seen);
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let left: Vec<(&String, &u32)> = seen.iter().filter(|(_, &pid)| running(pid)).collect();
    for (_, &pid) in &left {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(
        status.is_some(),
        "sandbox did not exit after SIGINT\n{stdout}\n{stderr}"
    );
    assert!(
        left.is_empty(),
        "left running after SIGINT during start-up: {left:?}\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("stopped."), "{stdout}\n{stderr}");
}

fn unsafe_sigint(pid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}
