//! PipelineManager behaviours (the original test_pipeline_manager.py, ported and
//! extended) on an in-memory SQLite store, table-driven.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use stv3_event::{parse_timestamp, Event, Timestamp, TraitValue};
use stv3_pipeline::config::{HandlerClass, HandlerMap, PipelineConfig};
use stv3_pipeline::handler::{Env, Handler, HandlerError, PipelineEvent, Registry};
use stv3_pipeline::handlers::HandlerContext;
use stv3_pipeline::{ManagerSettings, Outcome, PipelineManager};
use stv3_winchester::store::ReadyKind;
use stv3_winchester::{AnyStore, Store, StreamQuery, StreamState, TriggerManager};

fn t0() -> Timestamp {
    parse_timestamp("2015-03-01 12:00:00").unwrap()
}

/// A handler whose behaviour is its `mode` param.
struct Scripted(String);

impl Handler for Scripted {
    fn handle_events(
        &mut self,
        mut events: Vec<PipelineEvent>,
        env: &mut Env,
    ) -> Result<Vec<PipelineEvent>, HandlerError> {
        match self.0.as_str() {
            "fail" => Err(HandlerError::new("scripted failure")),
            "panic" => panic!("scripted panic"),
            "hang" => {
                std::thread::sleep(Duration::from_secs(10));
                Ok(events)
            }
            "add" => {
                let e = Event::new(format!("out-{}", env.stream_id), "out.event", t0()).with_trait(
                    "instance_id",
                    TraitValue::Text(format!("out-{}", env.stream_id).into()),
                );
                events.push(e);
                Ok(events)
            }
            _ => Ok(events),
        }
    }
    fn commit(&mut self) -> BoxFuture<'_, Result<(), HandlerError>> {
        let panic = self.0 == "commit_panic";
        Box::pin(async move {
            if panic {
                panic!("commit panic");
            }
            Ok(())
        })
    }
}

fn registry() -> (Registry, HandlerMap) {
    let mut r = Registry::builtin();
    r.register("scripted", &[], |p, _| {
        Ok(Box::new(Scripted(
            p.get("mode")
                .and_then(|v| v.as_str())
                .unwrap_or("pass")
                .to_string(),
        )))
    });
    let mut map = HandlerMap::new();
    for (n, c) in [("s", "scripted"), ("logger", "logging")] {
        map.insert(
            n.into(),
            HandlerClass {
                class: c.into(),
                file: PathBuf::new(),
                line: 0,
            },
        );
    }
    (r, map)
}

const PIPELINES: &str = "
ok: [logger, {name: s, params: {mode: pass}}]
fails: [logger, {name: s, params: {mode: fail}}]
panics: [{name: s, params: {mode: panic}}]
hangs: [{name: s, params: {mode: hang}}]
adds: [{name: s, params: {mode: add}}]
commit_panics: [{name: s, params: {mode: commit_panic}}]
";

fn trigger_yaml(name: &str, fire: Option<&str>, expire: Option<&str>) -> String {
    let mut y = format!(
        "- name: {name}\n  distinguished_by: [instance_id]\n  expiration: \"$last + 1h\"\n  match_criteria: [{{event_type: \"test.*\"}}]\n  fire_criteria: [{{event_type: test.fire}}]\n"
    );
    if let Some(f) = fire {
        y.push_str(&format!("  fire_pipeline: {f}\n"));
    }
    if let Some(e) = expire {
        y.push_str(&format!("  expire_pipeline: {e}\n"));
    }
    y
}

async fn manager(store: AnyStore, triggers: &str, purge: bool) -> PipelineManager<AnyStore> {
    manager_with(store, triggers, purge, ManagerSettings::default()).await
}

async fn manager_with(
    store: AnyStore,
    triggers: &str,
    purge: bool,
    base: ManagerSettings,
) -> PipelineManager<AnyStore> {
    let defs = stv3_winchester::config::parse_triggers(triggers, Path::new("triggers.yaml"))
        .expect("triggers");
    let (reg, map) = registry();
    let ctx = HandlerContext::offline();
    let pipelines =
        PipelineConfig::parse(PIPELINES, Path::new("pipelines.yaml"), &map, &reg, &ctx).unwrap();
    let settings = ManagerSettings {
        purge_completed_streams: purge,
        pipeline_timeout: Duration::from_secs(3),
        ..base
    };
    PipelineManager::new(
        Arc::new(TriggerManager::new(store, defs)),
        pipelines,
        ctx,
        settings,
    )
}

/// Ingest one stream's events (`types`) for instance `inst` at t0.
async fn ingest(pm: &PipelineManager<AnyStore>, inst: &str, types: &[&str]) {
    let events: Vec<Event> = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Event::new(
                format!("{inst}-{i}"),
                *t,
                t0() + chrono::Duration::seconds(i as i64),
            )
            .with_trait("instance_id", TraitValue::Text(inst.into()))
        })
        .collect();
    pm.trigger_manager()
        .add_events(&events, t0())
        .await
        .unwrap();
}

async fn stream_states(store: &AnyStore) -> Vec<(String, String)> {
    let q = StreamQuery {
        mark: Some("+".into()),
        ..Default::default()
    };
    let mut out = Vec::new();
    for s in store.find_streams(&q).await.unwrap() {
        let inst = match s.item.distinguishing_traits.get("instance_id") {
            Some(stv3_winchester::DistValue::Trait(TraitValue::Text(t))) => t.to_string(),
            _ => "?".into(),
        };
        out.push((inst, s.item.state.name().to_string()));
    }
    out
}

struct Case {
    name: &'static str,
    fire: Option<&'static str>,
    expire: Option<&'static str>,
    /// Event types of the stream (test.fire makes it ready to fire).
    events: &'static [&'static str],
    purge: bool,
    /// Final state of the stream (None: purged).
    state: Option<&'static str>,
    /// A counter that must be 1.
    counter: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_expire_cases() {
    let cases = [
        Case {
            name: "fire ok, keep",
            fire: Some("ok"),
            expire: None,
            events: &["test.fire"],
            purge: false,
            state: Some("completed"),
            counter: "Streams fired",
        },
        Case {
            name: "fire ok, purge",
            fire: Some("ok"),
            expire: None,
            events: &["test.fire"],
            purge: true,
            state: None,
            counter: "Streams fired",
        },
        Case {
            name: "expire ok",
            fire: None,
            expire: Some("ok"),
            events: &["test.x"],
            purge: false,
            state: Some("completed"),
            counter: "Streams expired",
        },
        Case {
            name: "no fire pipeline",
            fire: None,
            expire: Some("ok"),
            events: &["test.fire"],
            purge: false,
            state: Some("completed"),
            counter: "No fire pipeline for 't'",
        },
        Case {
            name: "no expire pipeline",
            fire: Some("ok"),
            expire: None,
            events: &["test.x"],
            purge: false,
            state: Some("completed"),
            counter: "No expire pipeline for 't'",
        },
        Case {
            name: "fire error",
            fire: Some("fails"),
            expire: None,
            events: &["test.fire"],
            purge: true,
            state: Some("error"),
            counter: "Pipeline error",
        },
        Case {
            name: "expire error",
            fire: None,
            expire: Some("fails"),
            events: &["test.x"],
            purge: true,
            state: Some("expire_error"),
            counter: "Pipeline error",
        },
        Case {
            name: "unknown fire pipeline",
            fire: Some("nope"),
            expire: None,
            events: &["test.fire"],
            purge: true,
            state: Some("error"),
            counter: "Unknown pipeline 'nope'",
        },
        Case {
            name: "unknown expire pipeline",
            fire: None,
            expire: Some("nope"),
            events: &["test.x"],
            purge: true,
            state: Some("expire_error"),
            counter: "Unknown pipeline 'nope'",
        },
        Case {
            name: "panicking handler",
            fire: Some("panics"),
            expire: None,
            events: &["test.fire"],
            purge: true,
            state: Some("error"),
            counter: "Pipeline error",
        },
        Case {
            name: "hung handler",
            fire: Some("hangs"),
            expire: None,
            events: &["test.fire"],
            purge: true,
            state: Some("error"),
            counter: "Pipeline error",
        },
        Case {
            name: "panicking commit",
            fire: Some("commit_panics"),
            expire: None,
            events: &["test.fire"],
            purge: true,
            state: Some("error"),
            counter: "Pre-commit successful",
        },
    ];
    for c in cases {
        let store = AnyStore::connect("sqlite::memory:").await.unwrap();
        let pm = manager(store.clone(), &trigger_yaml("t", c.fire, c.expire), c.purge).await;
        // Two streams: the one under test and a healthy neighbour on another trigger-less path.
        ingest(&pm, "a", c.events).await;
        let never = || false;
        let fire = pm
            .process_ready_streams(
                ReadyKind::Fire,
                t0() + chrono::Duration::seconds(10),
                &never,
            )
            .await
            .unwrap();
        let expire = pm
            .process_ready_streams(ReadyKind::Expire, t0() + chrono::Duration::hours(2), &never)
            .await
            .unwrap();
        assert_eq!(fire.loaded + expire.loaded, 1, "{}: loaded", c.name);
        let states = stream_states(&store).await;
        match c.state {
            None => assert!(states.is_empty(), "{}: {states:?}", c.name),
            Some(s) => assert_eq!(states, [("a".to_string(), s.to_string())], "{}", c.name),
        }
        assert_eq!(
            pm.stats().get("t", c.counter),
            1,
            "{}: counter {:?}",
            c.name,
            c.counter
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_streams_do_not_stop_the_pass() {
    let store = AnyStore::connect("sqlite::memory:").await.unwrap();
    let yaml = format!(
        "{}{}{}",
        trigger_yaml("good", Some("ok"), None),
        trigger_yaml("bad", Some("nope"), None)
            .replace("test.*", "bad.*")
            .replace("test.fire", "bad.fire"),
        trigger_yaml("boom", Some("panics"), None)
            .replace("test.*", "boom.*")
            .replace("test.fire", "boom.fire"),
    );
    let pm = manager(store.clone(), &yaml, false).await;
    ingest(&pm, "g1", &["test.fire"]).await;
    ingest(&pm, "b1", &["bad.fire"]).await;
    ingest(&pm, "x1", &["boom.fire"]).await;
    ingest(&pm, "g2", &["test.fire"]).await;
    let never = || false;
    let r = pm
        .process_ready_streams(
            ReadyKind::Fire,
            t0() + chrono::Duration::seconds(10),
            &never,
        )
        .await
        .unwrap();
    assert_eq!((r.loaded, r.done, r.failed), (4, 2, 2));
    let mut states = stream_states(&store).await;
    states.sort();
    assert_eq!(
        states,
        [
            ("b1".into(), "error".into()),
            ("g1".into(), "completed".into()),
            ("g2".into(), "completed".into()),
            ("x1".into(), "error".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_trigger_goes_to_error() {
    let store = AnyStore::connect("sqlite::memory:").await.unwrap();
    // Streams made under trigger "old", then a worker that only knows "t".
    let ingest_pm = manager(
        store.clone(),
        &trigger_yaml("old", Some("ok"), Some("ok")),
        false,
    )
    .await;
    ingest(&ingest_pm, "a", &["test.fire"]).await;
    ingest(&ingest_pm, "b", &["test.x"]).await;
    let pm = manager(
        store.clone(),
        &trigger_yaml("t", Some("ok"), None).replace("test.*", "zzz"),
        false,
    )
    .await;
    let never = || false;
    pm.process_ready_streams(
        ReadyKind::Fire,
        t0() + chrono::Duration::seconds(10),
        &never,
    )
    .await
    .unwrap();
    pm.process_ready_streams(ReadyKind::Expire, t0() + chrono::Duration::hours(2), &never)
        .await
        .unwrap();
    assert_eq!(
        stream_states(&store).await,
        [
            ("a".into(), "error".into()),
            ("b".into(), "expire_error".into())
        ]
    );
    assert_eq!(pm.stats().get("n/a", "Unknown trigger def 'old'"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_events_are_saved_and_fed_back() {
    let store = AnyStore::connect("sqlite::memory:").await.unwrap();
    // "out.*" events open streams of trigger "out" (expire only).
    let yaml = format!(
        "{}{}",
        trigger_yaml("t", Some("adds"), None),
        trigger_yaml("out", None, Some("ok")).replace("test.*", "out.*")
    );
    let pm = manager(store.clone(), &yaml, false).await;
    ingest(&pm, "a", &["test.fire"]).await;
    let never = || false;
    let r = pm
        .process_ready_streams(
            ReadyKind::Fire,
            t0() + chrono::Duration::seconds(10),
            &never,
        )
        .await
        .unwrap();
    assert_eq!(
        r.emitted
            .iter()
            .map(|e| e.message_id.as_str())
            .collect::<Vec<_>>(),
        ["out-1"]
    );
    assert!(
        store
            .get_event_by_message_id("out-1")
            .await
            .unwrap()
            .is_some(),
        "saved"
    );
    assert_eq!(
        stream_states(&store).await,
        [
            ("a".into(), "completed".into()),
            ("out-1".into(), "active".into())
        ]
    );
    // Re-running the same output (e.g. after a lease retry) dedupes on message_id.
    let rep = pm
        .trigger_manager()
        .add_events(&r.emitted, t0())
        .await
        .unwrap();
    assert_eq!(rep.duplicates, ["out-1"]);
}

/// The database refuses the pipeline's new events (a real SQLite trigger
/// aborting their insert): the stream is not finished but released, ready to
/// fire again; once the database takes them, the retry completes it and saves
/// the events once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsaved_new_events_release_the_stream_for_a_retry() {
    let store = AnyStore::connect("sqlite::memory:").await.unwrap();
    let yaml = format!(
        "{}{}",
        trigger_yaml("t", Some("adds"), None),
        trigger_yaml("out", None, Some("ok")).replace("test.*", "out.*")
    );
    let settings = ManagerSettings {
        save_attempts: 2,
        ..ManagerSettings::default()
    };
    let pm = manager_with(store.clone(), &yaml, false, settings).await;
    ingest(&pm, "a", &["test.fire"]).await;
    let AnyStore::Sqlite(sq) = &store else {
        unreachable!()
    };
    sqlx::query(
        "CREATE TRIGGER refuse_out BEFORE INSERT ON event WHEN NEW.message_id LIKE 'out-%' \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .execute(sq.pool())
    .await
    .unwrap();
    let never = || false;
    let now = t0() + chrono::Duration::seconds(10);
    let r = pm
        .process_ready_streams(ReadyKind::Fire, now, &never)
        .await
        .unwrap();
    assert_eq!(
        (r.done, r.locked, r.failed),
        (0, 1, 0),
        "released, not done"
    );
    assert!(store
        .get_event_by_message_id("out-1")
        .await
        .unwrap()
        .is_none());
    assert_eq!(stream_states(&store).await, [("a".into(), "active".into())]);
    assert_eq!(
        store
            .ready_streams(ReadyKind::Fire, now, 10)
            .await
            .unwrap()
            .len(),
        1,
        "ready to fire again"
    );

    sqlx::query("DROP TRIGGER refuse_out")
        .execute(sq.pool())
        .await
        .unwrap();
    let r = pm
        .process_ready_streams(ReadyKind::Fire, now, &never)
        .await
        .unwrap();
    assert_eq!((r.done, r.locked, r.failed), (1, 0, 0));
    assert!(store
        .get_event_by_message_id("out-1")
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        stream_states(&store).await,
        [
            ("a".into(), "completed".into()),
            ("out-1".into(), "active".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_and_lease_expiry() {
    let store = AnyStore::connect("sqlite::memory:").await.unwrap();
    let pm = manager(store.clone(), &trigger_yaml("t", Some("ok"), None), false).await;
    ingest(&pm, "a", &["test.fire"]).await;
    let now = t0() + chrono::Duration::seconds(10);
    let ready = store.ready_streams(ReadyKind::Fire, now, 10).await.unwrap();
    assert_eq!(ready.len(), 1);
    // Another worker claims it first (and then "dies"): our stale copy is Locked.
    let lease = now + chrono::Duration::seconds(600);
    store
        .claim_stream(&ready[0], StreamState::Firing, lease)
        .await
        .unwrap();
    let out = pm
        .process_stream(ready[0].clone(), ReadyKind::Fire, now)
        .await
        .unwrap();
    assert_eq!(out, Outcome::Locked);
    assert_eq!(pm.stats().get("t", "Locked"), 1);
    // Before the lease runs out nobody else picks it up...
    let never = || false;
    let r = pm
        .process_ready_streams(ReadyKind::Fire, now + chrono::Duration::seconds(60), &never)
        .await
        .unwrap();
    assert_eq!(r.loaded, 0);
    // ... after it, the stream is retried and completed.
    let r = pm
        .process_ready_streams(
            ReadyKind::Fire,
            lease + chrono::Duration::seconds(1),
            &never,
        )
        .await
        .unwrap();
    assert_eq!((r.loaded, r.done), (1, 1));
    assert_eq!(
        stream_states(&store).await,
        [("a".into(), "completed".into())]
    );
}
