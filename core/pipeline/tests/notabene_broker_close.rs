//! Fault (#9): the notabene re-publisher when the broker closes its connections.
//!
//! One stream per commit, as the pipeline runs them: `handle_events` + `commit`
//! on a NotabeneHandler over the real `LapinPublisher`, while `rabbitmqctl
//! close_all_connections` hits the test's own vhost at random moments. The
//! pipeline logs a commit error and completes the stream anyway, so a commit
//! that fails is a lost notification: every commit must succeed. The
//! publisher's contract is at-least-once (a message whose confirm was lost in
//! the close is published again), so every notification is in the queue at
//! least once, a duplicate is byte-identical (same `message_id`, which
//! yagi-event dedupes on), and duplicates come only from the commits the
//! closes interrupted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use stv3_pipeline::handler::Env;
use stv3_pipeline::handlers::{notabene, HandlerContext, LapinPublisher};
use stv3_testsupport::{rabbitmqctl, random_moment, require, scratch_name, Service};

/// Deletes the scratch vhost (and with it the test's exchange and queue) even when the test panics.
struct Vhost(String);

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.0])
            .output();
    }
}

/// Notifications per commit (one pipeline run's `usage_notifications`).
const PER_COMMIT: usize = 10;
/// Broker-side closes during the run.
const CLOSES: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notabene_loses_nothing_when_the_broker_closes_connections() {
    let test = "notabene_loses_nothing_when_the_broker_closes_connections";
    let Some(_) = require(Service::RabbitMq, test) else {
        return;
    };
    // A vhost of our own, so close_all_connections only hits this test's connections.
    let vhost = Vhost(scratch_name("nbclose"));
    rabbitmqctl(&["add_vhost", &vhost.0]);
    rabbitmqctl(&["set_permissions", "-p", &vhost.0, "guest", ".*", ".*", ".*"]);
    let (exchange, queue) = ("stv3test.nb.x".to_string(), "stv3test.nb.q".to_string());

    let ctx = HandlerContext::offline().with_publisher(Arc::new(LapinPublisher::new()));
    let params: serde_json::Map<String, serde_json::Value> =
        serde_json::from_value(serde_json::json!({
            "host": "127.0.0.1", "port": 5672, "user": "guest", "password": "guest",
            "vhost": vhost.0, "exchange": exchange, "exchange_type": "topic",
            "queue_name": queue, "env_keys": ["usage_notifications"],
        }))
        .unwrap();
    let mut h = notabene::construct(&params, &ctx).unwrap();

    // The closer: CLOSES broker-side closes at random moments while the commits run.
    let started = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicUsize::new(0));
    let closer = {
        let (vhost, started, committed) = (vhost.0.clone(), started.clone(), committed.clone());
        std::thread::spawn(move || {
            while !started.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let mut at = Vec::new();
            for _ in 0..CLOSES {
                std::thread::sleep(random_moment(50, 400));
                let before = committed.load(Ordering::SeqCst);
                let out = rabbitmqctl(&[
                    "close_all_connections",
                    "--vhost",
                    &vhost,
                    "stv3 test: broker went away",
                ]);
                at.push((before, committed.load(Ordering::SeqCst), out));
            }
            at
        })
    };

    let mut n = 0usize;
    let mut failures = Vec::new();
    let t0 = Instant::now();
    started.store(true, Ordering::SeqCst);
    let mut tail = 0;
    // Commit until the closer is done, then a few more (the publisher must still work after the last close).
    while tail < 20 {
        if closer.is_finished() {
            tail += 1;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "closer did not finish"
        );
        let stream = n / PER_COMMIT;
        let batch: Vec<serde_json::Value> = (n..n + PER_COMMIT)
            .map(|i| {
                serde_json::json!({
                    "event_type": "compute.instance.exists.verified",
                    "message_id": format!("nb-{i:06}"),
                    "n": i,
                })
            })
            .collect();
        let mut env = Env::new(stream as i64, "usage_trigger");
        env.data.insert(
            "usage_notifications".into(),
            serde_json::Value::Array(batch),
        );
        h.handle_events(vec![], &mut env).unwrap();
        // The pipeline runs commit once per stream and only logs an error: an error here is a loss.
        if let Err(e) = h.commit().await {
            failures.push(format!("stream {stream}: {e}"));
        }
        n += PER_COMMIT;
        committed.store(n, Ordering::SeqCst);
        // A little pacing keeps the run near a few thousand notifications.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let closes = closer.join().unwrap();
    for (before, after, out) in &closes {
        assert!(
            after > before,
            "commits ran while rabbitmqctl closed the connections ({before}..{after} of {n}): {out}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} commits failed (each is a lost notification batch in a pipeline run):\n{}",
        failures.len(),
        n / PER_COMMIT,
        failures.join("\n")
    );

    // Every confirmed message is in the durable queue now: read them all.
    let url = format!("amqp://guest:guest@127.0.0.1:5672/{}", vhost.0);
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let depth = ch
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count() as usize;
    ch.basic_qos(1000, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = ch
        .basic_consume(
            queue.as_str().into(),
            "check".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut seen: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for _ in 0..depth {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("a delivery within 10 s")
            .expect("consumer open")
            .expect("delivery");
        assert_eq!(d.routing_key.as_str(), queue);
        let v: serde_json::Value = serde_json::from_slice(&d.data).unwrap();
        let id = v["message_id"].as_str().unwrap().to_string();
        seen.entry(id).or_default().push(d.data.clone());
    }
    // Nothing beyond the counted depth.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), consumer.next())
            .await
            .is_err(),
        "more messages than the queue depth"
    );

    let expected: Vec<String> = (0..n).map(|i| format!("nb-{i:06}")).collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {n} notifications lost, first {:?} (closes at {:?})",
        missing.len(),
        &missing[..missing.len().min(10)],
        closes.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>()
    );
    assert_eq!(
        seen.len(),
        n,
        "only the published message_ids arrive: {:?}",
        seen.keys()
            .filter(|k| !expected.contains(k))
            .take(5)
            .collect::<Vec<_>>()
    );
    let dups: usize = seen.values().map(|v| v.len() - 1).sum();
    for (id, copies) in &seen {
        assert!(
            copies.iter().all(|c| c == &copies[0]),
            "{id}: duplicates differ: {copies:?}"
        );
    }
    // A re-publish repeats at most the one interrupted commit per close.
    assert!(
        dups <= CLOSES * PER_COMMIT,
        "{dups} duplicates after {CLOSES} closes of at most {PER_COMMIT} in flight"
    );
    eprintln!(
        "{n} notifications in {} commits, {CLOSES} broker closes at {:?}, {dups} duplicates, {:.1}s",
        n / PER_COMMIT,
        closes.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>(),
        t0.elapsed().as_secs_f64()
    );
    let _ = ch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = ch
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
    let _ = conn.close(200, "bye".into()).await;
}
