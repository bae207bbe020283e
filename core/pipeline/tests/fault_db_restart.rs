//! Fault: MariaDB is restarted (a real shutdown and start of the server) while
//! two `pipeline-worker` processes fire streams on it. The workers neither crash
//! nor lose or repeat work: they retry, reconnect and finish, and every stream's
//! pipeline ran exactly once. One test in its own binary: it takes the shared
//! server away, so nothing else may run beside it.

mod common;

use common::*;
use stv3_testsupport::mariadb_outage::{restart, BringBack};
use stv3_testsupport::{require, scratch_name, Service};
use stv3_winchester::{
    AnyStore, Store, StreamQuery, StreamState, TriggerManager, WinchesterConfig,
};

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
    let name = scratch_name("piperestart");
    {
        use sqlx::Connection;
        let mut c = sqlx::MySqlConnection::connect(&base).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE `{name}`"))
            .execute(&mut c)
            .await
            .unwrap();
    }
    let url = format!("{}/{name}", base.trim_end_matches('/'));
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("journal.jsonl");
    // 5 ms per stream: the pass lasts long enough to be cut in the middle.
    let pipelines = format!(
        "count: [{{name: journal, params: {{path: \"{}\", sleep: 0.005}}}}]\n",
        journal.display()
    );
    let config = write_config(
        tmp.path(),
        &url,
        COUNT_TRIGGERS,
        &pipelines,
        "purge_completed_streams: false\npipeline_worker_batch_size: 200\n",
    );
    let cfg = WinchesterConfig::load(&config).unwrap();
    AnyStore::connect(&url)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    const N: usize = 3000;
    {
        let tm = TriggerManager::new(
            AnyStore::open(&url).await.unwrap(),
            cfg.load_triggers().unwrap(),
        );
        for chunk in synthetic_events(N).chunks(500) {
            tm.add_events(chunk, t0()).await.unwrap();
        }
    }
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
    let store = AnyStore::open(&url).await.unwrap();
    let done = store
        .count_streams(&StreamQuery {
            state: Some(StreamState::Completed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(done as usize, N);
    use sqlx::Connection;
    let mut c = sqlx::MySqlConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
        .execute(&mut c)
        .await
        .unwrap();
}
