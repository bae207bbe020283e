//! Four real `pipeline-worker` processes on one MariaDB over thousands of
//! streams: every stream's pipeline runs exactly once (counted by the journal
//! handler), and a worker killed mid-pipeline is retried by another after the lease.

mod common;

use common::*;
use stv3_testsupport::{require, scratch_name, Service};
use stv3_winchester::{
    AnyStore, Store, StreamQuery, StreamState, TriggerManager, WinchesterConfig,
};

async fn scratch_db(base: &str, tag: &str) -> (String, String) {
    use sqlx::Connection;
    let name = scratch_name(tag);
    let mut c = sqlx::MySqlConnection::connect(base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE `{name}`"))
        .execute(&mut c)
        .await
        .unwrap();
    (format!("{}/{name}", base.trim_end_matches('/')), name)
}

async fn drop_db(base: &str, name: &str) {
    use sqlx::Connection;
    let mut c = sqlx::MySqlConnection::connect(base).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
        .execute(&mut c)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_run_each_stream_exactly_once() {
    let Some(base) = require(
        Service::MariaDb,
        "four_workers_run_each_stream_exactly_once",
    ) else {
        return;
    };
    const N: usize = 3000;
    let run = CountRun::new(
        &base,
        "pipemw",
        N,
        "",
        "purge_completed_streams: false\npipeline_worker_batch_size: 500\n",
    )
    .await;
    let (config, journal) = (run.config.clone(), run.journal.clone());

    let workers: Vec<_> = (0..4)
        .map(|_| worker(&config, &["--once", "--concurrency", "4"]))
        .collect();
    for w in workers {
        wait_ok(w, 300);
    }

    let counts = journal_counts(&journal);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "streams run more than once: {twice:?}");
    assert_eq!(counts.len(), N, "every stream ran");
    let pids: std::collections::BTreeSet<i64> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["pid"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert!(pids.len() >= 2, "work was shared between workers: {pids:?}");
    assert_eq!(run.completed().await, N);
    run.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_is_retried_after_the_lease() {
    let Some(base) = require(Service::MariaDb, "killed_worker_is_retried_after_the_lease") else {
        return;
    };
    let (url, name) = scratch_db(&base, "pipelease").await;
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("journal.jsonl");
    // Worker A: a pipeline that takes 60 s; lease 2 s.
    let dir_a = tmp.path().join("a");
    std::fs::create_dir(&dir_a).unwrap();
    let slow = format!(
        "count: [{{name: journal, params: {{path: \"{}\", sleep: 60}}}}]\n",
        journal.display()
    );
    let config_a = write_config(
        &dir_a,
        &url,
        COUNT_TRIGGERS,
        &slow,
        "pipeline_worker_lease: 2\npurge_completed_streams: false\n",
    );
    // Worker B: same store and triggers, fast pipeline.
    let dir_b = tmp.path().join("b");
    std::fs::create_dir(&dir_b).unwrap();
    let fast = format!(
        "count: [{{name: journal, params: {{path: \"{}\"}}}}]\n",
        journal.display()
    );
    let config_b = write_config(
        &dir_b,
        &url,
        COUNT_TRIGGERS,
        &fast,
        "pipeline_worker_lease: 2\npurge_completed_streams: false\n",
    );

    AnyStore::connect(&url)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    let cfg = WinchesterConfig::load(&config_a).unwrap();
    let tm = TriggerManager::new(
        AnyStore::open(&url).await.unwrap(),
        cfg.load_triggers().unwrap(),
    );
    tm.add_events(&synthetic_events(2)[1..], t0())
        .await
        .unwrap(); // one test.fire stream
    let store = tm.store();

    let mut a = worker(&config_a, &["--pipeline-timeout", "120"]);
    // Wait until A has claimed the stream.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = store.find_streams(&StreamQuery::default()).await.unwrap();
        if s[0].item.state == StreamState::Firing {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "worker A never claimed the stream"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    a.kill().unwrap(); // SIGKILL mid-pipeline
    a.wait().unwrap();
    assert!(journal_counts(&journal).is_empty(), "A never committed");

    // Within the lease, B leaves it alone ...
    wait_ok(worker(&config_b, &["--once"]), 60);
    let s = store.find_streams(&StreamQuery::default()).await.unwrap();
    if s[0].item.state == StreamState::Firing {
        assert!(journal_counts(&journal).is_empty());
    }
    // ... after the lease, B retries and completes it.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    wait_ok(worker(&config_b, &["--once"]), 60);
    let s = store.find_streams(&StreamQuery::default()).await.unwrap();
    assert_eq!(s[0].item.state, StreamState::Completed);
    assert_eq!(
        journal_counts(&journal)
            .values()
            .copied()
            .collect::<Vec<_>>(),
        [1]
    );
    drop_db(&base, &name).await;
}

/// Workers killed with SIGKILL at random moments, again and again, with a short
/// lease: no stream is lost (all complete in the end), and a stream's pipeline
/// runs more than once only when its worker died between the pipeline's
/// commit and the finish (at most the streams in flight per kill).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_repeatedly_lose_no_stream() {
    let Some(base) = require(Service::MariaDb, "workers_killed_repeatedly_lose_no_stream") else {
        return;
    };
    const N: usize = 2000;
    let run = CountRun::new(
        &base,
        "pipekills",
        N,
        ", sleep: 0.002",
        "purge_completed_streams: false\npipeline_worker_lease: 2\npipeline_worker_batch_size: 200\n",
    )
    .await;
    let (config, journal) = (run.config.clone(), run.journal.clone());
    const CONCURRENCY: usize = 2;
    const CLAIM_BATCH: usize = 64;
    let mut kills = 0;
    for _ in 0..5 {
        let mut workers: Vec<_> = (0..2)
            .map(|_| worker(&config, &["--concurrency", &CONCURRENCY.to_string()]))
            .collect();
        std::thread::sleep(stv3_testsupport::random_moment(200, 800));
        for w in workers.iter_mut() {
            w.kill().unwrap(); // SIGKILL
            w.wait().unwrap();
            kills += 1;
        }
    }
    let ran_before = journal_counts(&journal).len();
    assert!(ran_before > 0, "the killed workers had done some work");
    // Let the leases of the killed workers run out, then finish the rest.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    wait_ok(worker(&config, &["--once"]), 300);
    assert_eq!(run.completed().await, N, "every stream completed");
    let counts = journal_counts(&journal);
    assert_eq!(counts.len(), N, "every stream's pipeline ran");
    let repeated = counts.values().filter(|n| **n > 1).count();
    assert!(
        repeated <= kills * CONCURRENCY * CLAIM_BATCH,
        "{repeated} streams ran twice after {kills} kills"
    );
    eprintln!("{ran_before} of {N} streams ran before the last worker; {repeated} ran twice after {kills} kills");
    run.drop_db().await;
}
