//! Fault: MariaDB is restarted (a real shutdown and start of the server) while
//! two `pipeline-worker` processes fire streams on it. The workers neither crash
//! nor lose or repeat work: they retry, reconnect and finish, and every stream's
//! pipeline ran exactly once. One test in its own binary: it takes the shared
//! server away, so nothing else may run beside it.

mod common;

use common::*;
use stv3_testsupport::mariadb_outage::{restart, BringBack};
use stv3_testsupport::{require, Service};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restart_mid_pass_runs_every_stream_exactly_once() {
    let test = "mariadb_restart_mid_pass";
    let Some(base) = require(Service::MariaDb, test) else {
        return;
    };
    if require(Service::Mount, test).is_none() {
        return;
    }
    let _guard = BringBack;
    const N: usize = 3000;
    // 5 ms per stream: the pass lasts long enough to be cut in the middle.
    let run = CountRun::new(
        &base,
        "piperestart",
        N,
        ", sleep: 0.005",
        "purge_completed_streams: false\npipeline_worker_batch_size: 200\n",
    )
    .await;
    let (config, journal) = (run.config.clone(), run.journal.clone());
    let workers: Vec<_> = (0..2)
        .map(|_| worker(&config, &["--once", "--concurrency", "2"]))
        .collect();
    let lines = || {
        std::fs::read_to_string(&journal)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while lines() < N / 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "workers made no progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let at_restart = lines();
    restart();
    assert!(
        at_restart < N,
        "restarted mid-pass ({at_restart} of {N} done)"
    );
    for w in workers {
        wait_ok(w, 300);
    }
    let counts = journal_counts(&journal);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "streams run more than once: {twice:?}");
    assert_eq!(counts.len(), N, "every stream ran");
    assert_eq!(run.completed().await, N);
    run.drop_db().await;
}
