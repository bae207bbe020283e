//! End to end on SQLite: notifications -> distiller -> TriggerManager -> streams
//! -> the `pipeline-worker` binary (UsageHandler) -> verified/failed events in the DB.
//! The verdict ids are deterministic, so they must equal what `replay` emits for
//! the same notifications.

mod common;

use std::collections::BTreeSet;

use common::*;
use stv3_event::parse_timestamp;
use stv3_pipeline::replay::{replay, ReplayOptions};
use stv3_winchester::store::ReadyKind;
use stv3_winchester::{
    AnyStore, EventQuery, Store, StreamQuery, StreamState, TriggerManager, WinchesterConfig,
};

const PIPELINES: &str = "usage_pipeline: [logger, usage]\nusage_expire_pipeline: [logger]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_to_verdicts_through_the_worker_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("w.db");
    let url = format!("sqlite:///{}", db.display());
    let triggers = std::fs::read_to_string(fixtures().join("triggers_usage.yaml")).unwrap();
    let config = write_config(
        tmp.path(),
        &url,
        &triggers,
        PIPELINES,
        "purge_completed_streams: false\n",
    );
    let cfg = WinchesterConfig::load(&config).unwrap();
    AnyStore::connect(&cfg.database.url)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();

    // Ingest like yagi-event in replay mode: the clock is each notification's timestamp.
    let notifications = notifications(600);
    {
        let tm = TriggerManager::from_config(&cfg).await.unwrap();
        for n in &notifications {
            let now = parse_timestamp(n["timestamp"].as_str().unwrap()).unwrap();
            tm.add_notification(n, now).await.unwrap();
        }
        let ready = tm
            .store()
            .ready_streams(ReadyKind::Fire, stv3_event::now(), 1000)
            .await
            .unwrap();
        assert!(!ready.is_empty(), "some usage streams are ready to fire");
    }

    wait_ok(worker(&config, &["--once", "--concurrency", "2"]), 120);

    let store = AnyStore::open(&cfg.database.url).await.unwrap();
    let mut in_db = BTreeSet::new();
    for t in [
        "compute.instance.exists.verified",
        "compute.instance.exists.failed",
        "compute.instance.exists.warnings",
    ] {
        let q = EventQuery {
            event_name: Some(t.into()),
            ..Default::default()
        };
        for e in store.find_events(&q).await.unwrap() {
            in_db.insert(e.item.event.message_id.clone());
        }
    }
    // notigen's templates contain some .exists.verified notifications of their own: not ours.
    let input_ids: BTreeSet<String> = notifications
        .iter()
        .map(|n| n["message_id"].as_str().unwrap().to_string())
        .collect();
    let in_db: BTreeSet<String> = in_db.difference(&input_ids).cloned().collect();
    assert!(!in_db.is_empty());
    // Nothing left active, firing or in error.
    for s in store.find_streams(&StreamQuery::default()).await.unwrap() {
        assert_eq!(
            s.item.state,
            StreamState::Completed,
            "stream {} ({})",
            s.item.id,
            s.item.name
        );
    }

    // Same verdicts (same deterministic ids) as replay over the same notifications.
    let input = tmp.path().join("n.jsonl");
    std::fs::write(
        &input,
        notifications
            .iter()
            .map(|n| format!("{n}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let doc = replay(&cfg, &[input], &ReplayOptions::default())
        .await
        .unwrap();
    let replayed: BTreeSet<String> = doc["emitted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(in_db, replayed);
}
