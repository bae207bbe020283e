//! The chain with fault-injecting fakes: ordering, retry without ack, exactly-once archive,
//! quarantine, filters, shutdown during retry.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use stv3_event::Event;
use stv3_ingest::chain::{
    self, BoxFut, Chain, Counters, EventSink, RawArchive, RawMessage, RetryPolicy, Stopped,
    StoreOutcome, VecSource,
};
use stv3_ingest::config::EventTypeFilter;
use stv3_ingest::dedupe::RecentIds;
use stv3_ingest::parse::Wrap;
use stv3_ingest::quarantine::{read_records, Quarantine};

/// Shared log of what reached "disk", in order.
#[derive(Default)]
struct World {
    archive: Vec<String>,
    stored: BTreeSet<String>,
    archive_failures: usize,
    store_failures: usize,
    ops: Vec<String>,
}

struct FakeArchive(Arc<Mutex<World>>, Vec<String>);
impl RawArchive for FakeArchive {
    fn write_batch(&mut self, lines: Vec<String>) -> BoxFut<'_, anyhow::Result<()>> {
        let w = self.0.clone();
        Box::pin(async move {
            let mut w = w.lock().unwrap();
            if w.archive_failures > 0 {
                w.archive_failures -= 1;
                anyhow::bail!("disk full (injected)");
            }
            w.ops.push(format!("archive {}", lines.len()));
            w.archive.extend(lines);
            Ok(())
        })
    }
    fn recent_lines(&mut self, _max: usize) -> anyhow::Result<Vec<String>> {
        Ok(self.1.clone())
    }
}

struct FakeSink(Arc<Mutex<World>>);
impl EventSink for FakeSink {
    fn distill(&self, n: &Value) -> Result<Option<Event>, String> {
        if n["event_type"] == "bad.distill" {
            return Err("cannot convert (injected)".into());
        }
        if n["event_type"] == "unknown" {
            return Ok(None);
        }
        Ok(Some(Event::new(
            n["message_id"].as_str().unwrap(),
            n["event_type"].as_str().unwrap(),
            stv3_event::now(),
        )))
    }
    fn add_events<'a>(&'a self, events: &'a [Event]) -> BoxFut<'a, anyhow::Result<StoreOutcome>> {
        let w = self.0.clone();
        Box::pin(async move {
            let mut w = w.lock().unwrap();
            if w.store_failures > 0 {
                w.store_failures -= 1;
                anyhow::bail!("database went away (injected)");
            }
            w.ops.push(format!("store {}", events.len()));
            let mut out = StoreOutcome::default();
            for e in events {
                if w.stored.insert(e.message_id.clone()) {
                    out.saved += 1;
                } else {
                    out.duplicates += 1;
                }
            }
            Ok(out)
        })
    }
}

fn msg(id: &str, et: &str) -> RawMessage {
    RawMessage {
        body: json!({"message_id": id, "event_type": et, "payload": {}})
            .to_string()
            .into_bytes(),
        exchange: "nova".into(),
        routing_key: "monitor.info".into(),
        tag: 0,
    }
}

fn raw(body: &[u8]) -> RawMessage {
    RawMessage {
        body: body.to_vec(),
        exchange: "nova".into(),
        routing_key: "monitor.info".into(),
        tag: 0,
    }
}

fn make_chain(world: &Arc<Mutex<World>>, qdir: &std::path::Path, seed: Vec<String>) -> Chain {
    Chain {
        consumer: "c1".into(),
        queue: "monitor.info".into(),
        archive: Some(Box::new(FakeArchive(world.clone(), seed))),
        archive_filter: EventTypeFilter::default(),
        wrap: Wrap::default(),
        store: Some(Arc::new(FakeSink(world.clone()))),
        store_filter: EventTypeFilter::default(),
        payload_filters: vec![],
        quarantine: Quarantine::file_only(qdir),
        max_payload_bytes: 10_000,
        recent: RecentIds::new(1000),
        counters: Arc::new(Counters::default()),
        store_inflight: 2,
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

async fn run_all(chain: &mut Chain, msgs: Vec<RawMessage>, batch: usize) -> VecSource {
    let mut src = VecSource::new(msgs, batch);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let stopped = chain::run(chain, &mut src, rx, fast(), None).await.unwrap();
    assert_eq!(stopped, Stopped::Exhausted);
    src
}

fn ids(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| stv3_ingest::dedupe::message_id_of_line(l).unwrap())
        .collect()
}

#[tokio::test]
async fn good_and_poison_flow_and_ack_comes_last() {
    let world = Arc::new(Mutex::new(World::default()));
    let q = tempfile::tempdir().unwrap();
    let mut chain = make_chain(&world, q.path(), vec![]);
    let msgs = vec![
        msg("a", "compute.instance.create.end"),
        raw(b"not json"),
        raw(&[0xff, 0xfe]),
        raw(br#"{"event_type":"x"}"#),
        msg("b", "bad.distill"),
        msg("c", "unknown"),
        msg("d", "compute.instance.update"),
    ];
    let src = run_all(&mut chain, msgs, 100).await;
    let w = world.lock().unwrap();
    assert_eq!(
        ids(&w.archive),
        vec!["a", "c", "d"],
        "poison is not archived; dropped-by-distiller still is"
    );
    assert_eq!(w.stored, ["a", "d"].iter().map(|s| s.to_string()).collect());
    assert_eq!(src.committed.len(), 1);
    assert_eq!(
        src.committed[0].last_tag, 7,
        "one multiple-ack up to the last tag"
    );
    let recs = read_records(&q.path().join("quarantine.jsonl")).unwrap();
    let reasons: Vec<&str> = recs.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "invalid_json",
            "not_utf8",
            "missing_message_id",
            "distill_error"
        ]
    );
    assert_eq!(recs[3].message_id.as_deref(), Some("b"));
    assert_eq!(
        recs[1].body,
        vec![0xff, 0xfe],
        "non-UTF-8 body kept byte-exact (base64)"
    );
    assert_eq!(Counters::get(&chain.counters.quarantined), 4);
    assert_eq!(Counters::get(&chain.counters.acked), 7);
}

#[tokio::test]
async fn store_failure_retries_without_ack_and_without_archiving_twice() {
    let world = Arc::new(Mutex::new(World {
        store_failures: 3,
        ..Default::default()
    }));
    let q = tempfile::tempdir().unwrap();
    let mut chain = make_chain(&world, q.path(), vec![]);
    let msgs: Vec<_> = (0..10).map(|i| msg(&format!("m{i}"), "x.y")).collect();
    let src = run_all(&mut chain, msgs, 5).await;
    let w = world.lock().unwrap();
    assert_eq!(
        w.archive.len(),
        10,
        "archive written once per message despite 3 store failures"
    );
    assert_eq!(w.stored.len(), 10);
    assert_eq!(w.ops, vec!["archive 5", "store 5", "archive 5", "store 5"]);
    assert_eq!(src.committed.len(), 2);
    assert_eq!(Counters::get(&chain.counters.retries), 3);
}

#[tokio::test]
async fn archive_failure_retries_only_the_archive_and_acks_after_both() {
    let world = Arc::new(Mutex::new(World {
        archive_failures: 2,
        ..Default::default()
    }));
    let q = tempfile::tempdir().unwrap();
    let mut chain = make_chain(&world, q.path(), vec![]);
    let src = run_all(&mut chain, vec![msg("a", "x"), msg("b", "x")], 10).await;
    let w = world.lock().unwrap();
    // Archive and store run concurrently; the store succeeded at once and is
    // not redone while the archive is retried; one ack once both are durable.
    let mut ops = w.ops.clone();
    ops.sort();
    assert_eq!(ops, vec!["archive 2", "store 2"]);
    assert_eq!(Counters::get(&chain.counters.retries), 2);
    assert_eq!(src.committed.len(), 1);
}

#[tokio::test]
async fn redelivery_is_archived_and_stored_once() {
    let world = Arc::new(Mutex::new(World::default()));
    let q = tempfile::tempdir().unwrap();
    let mut chain = make_chain(&world, q.path(), vec![]);
    // a, b, then the broker redelivers a and b (lost ack), plus a duplicate inside one batch
    let msgs = vec![
        msg("a", "x"),
        msg("b", "x"),
        msg("a", "x"),
        msg("b", "x"),
        msg("c", "x"),
        msg("c", "x"),
    ];
    run_all(&mut chain, msgs, 2).await;
    let w = world.lock().unwrap();
    assert_eq!(ids(&w.archive), vec!["a", "b", "c"]);
    assert_eq!(w.stored.len(), 3);
    assert_eq!(Counters::get(&chain.counters.archive_skipped), 3);
    assert_eq!(Counters::get(&chain.counters.duplicates), 3);
}

#[tokio::test]
async fn seeded_from_the_archive_tail_after_a_crash() {
    let world = Arc::new(Mutex::new(World::default()));
    let q = tempfile::tempdir().unwrap();
    // The previous process archived a and b, then died before the ack.
    let tail = vec![
        json!({"message_id": "a", "event_type": "x"}).to_string(),
        json!({"region": "r", "cell": "c", "notification": {"message_id": "b", "event_type": "x"}})
            .to_string(),
    ];
    let mut chain = make_chain(&world, q.path(), tail);
    assert_eq!(chain.seed_recent().unwrap(), 2);
    run_all(
        &mut chain,
        vec![msg("a", "x"), msg("b", "x"), msg("c", "x")],
        10,
    )
    .await;
    let w = world.lock().unwrap();
    assert_eq!(
        ids(&w.archive),
        vec!["c"],
        "redelivered a and b are not archived again"
    );
    assert_eq!(
        w.stored.len(),
        3,
        "but they are stored (the DB dedupes on its own)"
    );
}

#[tokio::test]
async fn shutdown_during_retry_returns_the_batch() {
    let world = Arc::new(Mutex::new(World {
        store_failures: usize::MAX,
        ..Default::default()
    }));
    let q = tempfile::tempdir().unwrap();
    let mut chain = make_chain(&world, q.path(), vec![]);
    let mut src = VecSource::new(vec![msg("a", "x")], 10);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let slow = RetryPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(20),
    };
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(true).unwrap();
        tx
    });
    let stopped = chain::run(&mut chain, &mut src, rx, slow, None)
        .await
        .unwrap();
    let _tx = stopper.await.unwrap();
    assert_eq!(stopped, Stopped::Shutdown);
    assert!(src.committed.is_empty(), "never acked");
    assert_eq!(src.aborted.len(), 1, "nacked with requeue");
}

#[tokio::test]
async fn event_type_filters_per_handler() {
    let world = Arc::new(Mutex::new(World::default()));
    let q = tempfile::tempdir().unwrap();
    let mut chain = make_chain(&world, q.path(), vec![]);
    chain.store_filter = EventTypeFilter {
        include: Some(vec!["keep".into()]),
        ..Default::default()
    };
    chain.archive_filter = EventTypeFilter {
        exclude: vec!["noisy".into()],
        discard: vec!["gone".into()],
        ..Default::default()
    };
    let src = run_all(
        &mut chain,
        vec![
            msg("a", "keep"),
            msg("b", "noisy"),
            msg("c", "other"),
            msg("d", "gone"),
        ],
        10,
    )
    .await;
    let w = world.lock().unwrap();
    assert_eq!(ids(&w.archive), vec!["a", "c"]);
    assert_eq!(w.stored, ["a"].iter().map(|s| s.to_string()).collect());
    assert_eq!(
        src.committed[0].last_tag, 4,
        "filtered messages are still acked"
    );
}

/// A source that logs its acks into the world, next to the stores.
struct LoggedSource(VecSource, Arc<Mutex<World>>);
impl chain::Source for LoggedSource {
    fn next_batch(&mut self) -> BoxFut<'_, anyhow::Result<Option<chain::SourceBatch>>> {
        self.0.next_batch()
    }
    fn ready_batch(&mut self) -> Option<chain::SourceBatch> {
        self.0.ready_batch()
    }
    fn commit(&mut self, token: chain::CommitToken) -> BoxFut<'_, anyhow::Result<()>> {
        self.1
            .lock()
            .unwrap()
            .ops
            .push(format!("ack {}", token.last_tag));
        self.0.commit(token)
    }
    fn abort(&mut self, token: chain::CommitToken) -> BoxFut<'_, ()> {
        self.0.abort(token)
    }
}

/// A store whose first batch waits (up to 500 ms) until the second batch's
/// transaction has begun, so it finishes after it: the second batch is durable
/// first only when the two were in flight at once.
struct GatedSink(Arc<Mutex<World>>, Arc<tokio::sync::Notify>);
impl EventSink for GatedSink {
    fn distill(&self, n: &Value) -> Result<Option<Event>, String> {
        FakeSink(self.0.clone()).distill(n)
    }
    fn add_events<'a>(&'a self, events: &'a [Event]) -> BoxFut<'a, anyhow::Result<StoreOutcome>> {
        let (w, gate) = (self.0.clone(), self.1.clone());
        Box::pin(async move {
            let first = events[0].message_id.clone();
            w.lock().unwrap().ops.push(format!("begin {first}"));
            if first == "m0" {
                let _ = tokio::time::timeout(Duration::from_millis(500), gate.notified()).await;
            } else {
                gate.notify_one();
            }
            let mut w = w.lock().unwrap();
            w.ops.push(format!("end {first}"));
            w.stored.extend(events.iter().map(|e| e.message_id.clone()));
            Ok(StoreOutcome::default())
        })
    }
}

#[tokio::test]
async fn stores_overlap_within_the_window_and_acks_stay_in_order() {
    async fn check(window: usize, expected: &[&str]) {
        let world = Arc::new(Mutex::new(World::default()));
        let q = tempfile::tempdir().unwrap();
        let mut chain = make_chain(&world, q.path(), vec![]);
        chain.archive = None;
        chain.store = Some(Arc::new(GatedSink(
            world.clone(),
            Arc::new(tokio::sync::Notify::new()),
        )));
        chain.store_inflight = window;
        let msgs: Vec<_> = (0..4).map(|i| msg(&format!("m{i}"), "x.y")).collect();
        let mut src = LoggedSource(VecSource::new(msgs, 2).read_ahead(), world.clone());
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let stopped = chain::run(&mut chain, &mut src, rx, fast(), None)
            .await
            .unwrap();
        assert_eq!(stopped, Stopped::Exhausted);
        let w = world.lock().unwrap();
        assert_eq!(w.ops, expected, "window {window}");
        assert_eq!(w.stored.len(), 4);
        assert_eq!(Counters::get(&chain.counters.acked), 4);
    }
    // One in flight: the first batch waits out its gate alone, then the second runs.
    check(
        1,
        &["begin m0", "end m0", "ack 2", "begin m2", "end m2", "ack 4"],
    )
    .await;
    // Two in flight: the second begins (and ends) while the first is open, but is
    // acked only after the first.
    check(
        2,
        &["begin m0", "begin m2", "end m2", "end m0", "ack 2", "ack 4"],
    )
    .await;
}
