//! yagi-event with the embedded file/stdin source on SQLite (no broker): the offset is
//! checkpointed only after durable, so kill -9 and restart gives exactly N; /metrics works.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use stv3_testsupport::free_port;

const T: Duration = Duration::from_secs(120);

fn write_lines(
    path: &std::path::Path,
    run: &str,
    range: std::ops::Range<usize>,
    poison_every: Option<usize>,
) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in range {
        writeln!(f, "{}", notification(run, i)).unwrap();
        if poison_every.is_some_and(|k| i % k == 0) {
            writeln!(f, "{{broken json line {i}").unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_kill_9_and_resume_exactly_n() {
    let mut env = Env::new("ingfile", Db::Sqlite, None, 200, "").await;
    let input = env.dir.path().join("notifications.jsonl");
    let n = 12000;
    write_lines(&input, &env.name, 0..n / 2, Some(1000));
    let src = format!("file:{}", input.display());
    // --follow: keeps tailing; append the second half while it runs, then kill -9.
    let mut child = env.spawn(&["--source", &src, "--follow"]);
    env.wait_stored(n as u64 / 8, T).await;
    write_lines(&input, &env.name, n / 2..n, Some(1000));
    let before = env.wait_stored(n as u64 / 3, T).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(before < n as u64, "killed mid-run ({before} of {n} stored)");
    // Restart without --follow: resumes at the checkpoint and exits at EOF.
    let mut child = env.spawn(&["--source", &src]);
    let status = wait_exit(&mut child, T);
    assert!(status.success(), "{status}\n{}", env.logs());
    env.assert_exactly_n(n, "archive after kill -9 on the file source")
        .await;
    let q = stv3_ingest::quarantine::read_records(&env.quarantine_path()).unwrap();
    let distinct: std::collections::BTreeSet<_> = q
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(
        distinct.len(),
        n / 1000,
        "each broken line quarantined (a line redone after the kill may appear twice)"
    );
    assert!(q.iter().all(|r| r.reason == "invalid_json"));
    // A third run has nothing left to do.
    let mut child = env.spawn(&["--source", &src]);
    assert!(wait_exit(&mut child, T).success());
    assert_eq!(env.stored().await, n as u64);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_source_and_metrics() {
    let env = Env::new("ingstdin", Db::Sqlite, None, 50, "").await;
    let port = free_port();
    let n = 300;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_yagi-event"))
        .arg("--config")
        .arg(&env.conf)
        .args([
            "--source",
            "stdin",
            "--ops-address",
            &format!("127.0.0.1:{port}"),
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..n {
        writeln!(stdin, "{}", notification(&env.name, i)).unwrap();
    }
    writeln!(stdin, "[1, 2, 3]").unwrap();
    stdin.flush().unwrap();
    assert_eq!(env.wait_stored(n as u64, T).await, n as u64);
    let body = reqwest_get(&format!("http://127.0.0.1:{port}/metrics")).await;
    for m in [
        "stv3_ingest_consumed_total",
        "stv3_ingest_acked_total",
        "stv3_ingest_events_stored_total",
        "stv3_ingest_archived_total",
    ] {
        assert!(body.contains(m), "{m} missing from /metrics:\n{body}");
    }
    let health = reqwest_get(&format!("http://127.0.0.1:{port}/health")).await;
    assert!(health.contains("\"ok\""), "{health}");
    drop(stdin); // EOF: the process finishes and exits
    assert!(wait_exit(&mut child, T).success());
    assert_exactly(
        &env.archived_ids(),
        &expected_ids(&env.name, n),
        "archive from stdin",
    );
    let q = stv3_ingest::quarantine::read_records(&env.quarantine_path()).unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].reason, "not_an_object");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_unhealthy_while_the_broker_is_unreachable() {
    // A port nothing listens on: connecting is refused, as with a broker that is down.
    let dead = free_port();
    let amqp = format!("amqp://guest:guest@127.0.0.1:{dead}/%2f");
    let mut env = Env::new("inghealth", Db::Sqlite, Some(&amqp), 50, "").await;
    let port = free_port();
    let mut child = env.spawn(&["--ops-address", &format!("127.0.0.1:{port}")]);
    let url = format!("http://127.0.0.1:{port}/health");
    let health = wait_unhealthy(&url, &env).await;
    assert!(
        health.contains(&format!("broker {}", env.queue)),
        "{health}"
    );
    assert!(health.contains("cannot connect to the broker"), "{health}");
    assert!(
        !health.contains("guest:guest"),
        "password redacted: {health}"
    );
    sigterm(&child);
    let _ = wait_exit(&mut child, T);
    env.cleanup().await;
}

/// kill -9 at random moments, again and again: every restart resumes from the
/// last durable checkpoint, and the end result is exactly the input, once, in
/// the DB and in the archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_survives_repeated_kill_9_at_random_moments() {
    let mut env = Env::new("ingkills", Db::Sqlite, None, 100, "").await;
    let input = env.dir.path().join("notifications.jsonl");
    // Enough input that a run outlasts the latest kill moment (900 ms).
    let n = 40000;
    write_lines(&input, &env.name, 0..n, None);
    let src = format!("file:{}", input.display());
    let mut kills = 0;
    for round in 0..6 {
        let mut child = env.spawn(&["--source", &src]);
        std::thread::sleep(stv3_testsupport::random_moment(150, 900));
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "round {round}: {status}\n{}", env.logs());
                break;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
            }
        }
    }
    assert!(kills >= 2, "the process was killed mid-run ({kills} times)");
    let mut child = env.spawn(&["--source", &src]);
    assert!(wait_exit(&mut child, T).success(), "{}", env.logs());
    env.assert_exactly_n(n, "archive after repeated kill -9")
        .await;
    env.cleanup().await;
}

/// A backlog of old notifications (a replay of 2015 archives) is grouped by
/// its own time: one stream per instance-day, not one stream per event born
/// already expired against the wall clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_notifications_form_streams_on_their_own_clock() {
    let mut env = Env::new("ingold", Db::Sqlite, None, 200, "").await;
    let input = env.dir.path().join("old.jsonl");
    let n = 970;
    let t0 = stv3_event::parse_timestamp("2015-03-01T18:00:00Z").unwrap();
    {
        let mut f = std::fs::File::create(&input).unwrap();
        for i in 0..n {
            let mut v = notification(&env.name, i);
            let ts = t0 + chrono::Duration::seconds(i as i64);
            v["timestamp"] = ts.format("%Y-%m-%d %H:%M:%S%.6f").to_string().into();
            v["payload"]["audit_period_beginning"] = "2015-03-01 00:00:00".into();
            writeln!(f, "{v}").unwrap();
        }
    }
    let src = format!("file:{}", input.display());
    let mut child = env.spawn(&["--source", &src]);
    assert!(wait_exit(&mut child, T).success(), "{}", env.logs());
    assert_eq!(env.stored().await, n as u64);
    let store = stv3_winchester::AnyStore::open(&env.db_url).await.unwrap();
    use stv3_winchester::Store;
    let streams = store.count_streams(&Default::default()).await.unwrap();
    assert_eq!(streams, 97, "one stream per instance for the day");
    env.cleanup().await;
}

/// A tmpfs mounted over a directory for the life of the value (unmounted on drop,
/// also when the test panics).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The archive's disk fills up mid-run: ingestion pauses (nothing acked past the
/// last durable batch, /health names the archive), loses nothing, and resumes by
/// itself once there is space again, leaving exactly the input in DB and archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_on_the_archive_pauses_without_loss_and_resumes() {
    if stv3_testsupport::require(stv3_testsupport::Service::Mount, "disk_full_on_the_archive")
        .is_none()
    {
        return;
    }
    let mut env = Env::new("ingfull", Db::Sqlite, None, 100, "").await;
    // The archive's working directory on a 64 KiB tmpfs: ~60 archived lines fit.
    let disk = Tmpfs::mount(&env.dir.path().join("events"), "64k");
    let input = env.dir.path().join("notifications.jsonl");
    let n = 1500;
    write_lines(&input, &env.name, 0..n, None);
    let port = free_port();
    let src = format!("file:{}", input.display());
    let mut child = env.spawn(&[
        "--source",
        &src,
        "--ops-address",
        &format!("127.0.0.1:{port}"),
    ]);
    let url = format!("http://127.0.0.1:{port}/health");
    let health = wait_unhealthy(&url, &env).await;
    assert!(
        health.contains("batch not durable") && health.contains("archive"),
        "{health}"
    );
    // Stalled, not exited, and not past the disk: the file offset is not checkpointed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running while the disk is full"
    );
    assert!(env.logs().contains("batch not durable"), "alarm in the log");
    disk.resize("64m");
    let status = wait_exit(&mut child, T);
    assert!(status.success(), "{status}\n{}", env.logs());
    env.assert_exactly_n(n, "archive after a full disk").await;
    drop(disk);
    env.cleanup().await;
}

/// Poll `/health` until it reports unhealthy; the whole response.
async fn wait_unhealthy(url: &str, env: &Env) -> String {
    let deadline = std::time::Instant::now() + T;
    loop {
        if let Ok(h) = try_get(url).await {
            if h.contains("unhealthy") {
                return h;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never unhealthy; logs:\n{}",
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Minimal HTTP GET (no client dependency): the whole response.
async fn try_get(url: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (hostport, path) = rest.split_once('/').unwrap();
    let mut s = tokio::net::TcpStream::connect(hostport).await?;
    s.write_all(format!("GET /{path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await?;
    Ok(buf)
}

/// Minimal HTTP GET (no client dependency): the response body.
async fn reqwest_get(url: &str) -> String {
    let buf = try_get(url).await.unwrap();
    buf.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(buf)
}
