//! Publisher and consumer against the real RabbitMQ (gated by stv3_testsupport::require).

use std::time::Duration;

use serde_json::json;
use stv3_amqp::lapin::options::QueueDeleteOptions;
use stv3_amqp::{
    AmqpError, AmqpSettings, ExchangeSpec, OutMessage, Publisher, QueueConsumer, QueueSpec,
    Topology,
};
use stv3_testsupport::{require, scratch_name, Service};

fn topo(queue: &str, exchange: &str, args: Vec<(String, String)>) -> Topology {
    Topology::queue_on_exchange(
        QueueSpec {
            name: queue.into(),
            durable: false,
            auto_delete: false,
            arguments: args,
        },
        Some(ExchangeSpec {
            name: exchange.into(),
            kind: "topic".into(),
            durable: false,
            auto_delete: true,
        }),
        &["monitor.info".to_string()],
    )
}

async fn cleanup(settings: &AmqpSettings, queue: &str) {
    let conn = stv3_amqp::connect(settings, "cleanup").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let _ = ch
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "bye".into()).await;
}

#[tokio::test]
async fn publish_confirmed_then_consume_in_batches() {
    let Some(url) = require(
        Service::RabbitMq,
        "publish_confirmed_then_consume_in_batches",
    ) else {
        return;
    };
    let settings = AmqpSettings::from_url(&url).unwrap();
    let q = scratch_name("amqpq");
    let ex = scratch_name("amqpx");
    let mut p = Publisher::connect(&settings, "test-publisher")
        .await
        .unwrap();
    p.declare(topo(&q, &ex, vec![])).await.unwrap();
    p.mandatory = true;
    let msgs = (0..250).map(|i| {
        OutMessage::json(
            &ex,
            "monitor.info",
            &json!({"message_id": format!("m{i}"), "n": i}),
        )
        .unwrap()
    });
    let stats = p
        .publish_at_rate(msgs, Some(5000.0), Some(200))
        .await
        .unwrap();
    assert_eq!((stats.published, stats.confirmed), (200, 200));
    assert!(
        stats.elapsed >= Duration::from_millis(30),
        "rate limit paced the publish: {:?}",
        stats.elapsed
    );

    // unroutable + mandatory is an error
    let err = p
        .publish(OutMessage::raw(&ex, "nobody.listens", b"{}".to_vec()))
        .await
        .unwrap_err();
    assert!(matches!(err, AmqpError::Returned { .. }), "{err}");

    let conn = stv3_amqp::connect(&settings, "test-consumer")
        .await
        .unwrap();
    let mut c = QueueConsumer::start(&conn, &q, 64, "t", None)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 200 {
        let batch = c
            .next_batch(50, Duration::from_millis(100))
            .await
            .unwrap()
            .unwrap();
        assert!(batch.len() <= 50);
        for d in &batch {
            let v: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
            seen.push(v["n"].as_i64().unwrap());
            assert_eq!(d.message_id.as_deref(), v["message_id"].as_str());
        }
        c.ack_up_to(batch.last().unwrap().tag).await.unwrap();
    }
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
    assert_eq!(
        stv3_amqp::consumer::queue_depth(&conn, &q).await.unwrap(),
        0
    );
    c.close().await;
    let _ = conn.close(200, "bye".into()).await;
    p.close().await;
    cleanup(&settings, &q).await;
}

#[tokio::test]
async fn a_nack_is_an_error() {
    let Some(url) = require(Service::RabbitMq, "a_nack_is_an_error") else {
        return;
    };
    let settings = AmqpSettings::from_url(&url).unwrap();
    let q = scratch_name("amqpnack");
    let ex = scratch_name("amqpnackx");
    let mut p = Publisher::connect(&settings, "test-nack").await.unwrap();
    // A full queue that rejects publishes makes the broker nack: a real fault, no mock needed.
    let mut t = topo(&q, &ex, vec![]);
    t.queues.clear();
    t.bindings.clear();
    p.declare(t).await.unwrap();
    let conn = stv3_amqp::connect(&settings, "declare").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut args = stv3_amqp::lapin::types::FieldTable::default();
    args.insert(
        "x-max-length".into(),
        stv3_amqp::lapin::types::AMQPValue::LongInt(0),
    );
    args.insert(
        "x-overflow".into(),
        stv3_amqp::lapin::types::AMQPValue::LongString("reject-publish".into()),
    );
    ch.queue_declare(q.as_str().into(), Default::default(), args)
        .await
        .unwrap();
    ch.queue_bind(
        q.as_str().into(),
        ex.as_str().into(),
        "monitor.info".into(),
        Default::default(),
        Default::default(),
    )
    .await
    .unwrap();
    let err = p
        .publish_json(&ex, "monitor.info", &json!({"message_id": "x"}))
        .await
        .unwrap_err();
    assert!(matches!(err, AmqpError::Nacked { .. }), "{err}");
    let _ = conn.close(200, "bye".into()).await;
    p.close().await;
    cleanup(&settings, &q).await;
}

#[tokio::test]
async fn gives_up_on_an_unreachable_broker() {
    // No service needed: nothing listens on port 1.
    let settings = AmqpSettings::from_url("amqp://guest:guest@127.0.0.1:1/%2f").unwrap();
    let mut p = Publisher::lazy(&settings, "nowhere");
    p.max_attempts = 2;
    p.backoff = stv3_amqp::Backoff::new(Duration::from_millis(10), Duration::from_millis(10));
    let err = p.publish_json("x", "y", &json!({})).await.unwrap_err();
    assert!(
        matches!(err, AmqpError::GaveUp { attempts: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}
