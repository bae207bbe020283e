//! NotabeneHandler against a real RabbitMQ: declare exchange + durable queue,
//! publish with confirms on commit, and the messages are in the queue.

use std::sync::Arc;

use lapin::options::{BasicGetOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use stv3_pipeline::handler::Env;
use stv3_pipeline::handlers::{notabene, HandlerContext, LapinPublisher};
use stv3_testsupport::{require, Service};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notabene_publishes_env_notifications_with_confirms() {
    let Some(url) = require(
        Service::RabbitMq,
        "notabene_publishes_env_notifications_with_confirms",
    ) else {
        return;
    };
    let tag = format!(
        "stv3test.{}.{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let (exchange, queue) = (format!("{tag}.x"), format!("{tag}.q"));
    let ctx = HandlerContext::offline().with_publisher(Arc::new(LapinPublisher::new()));
    let params: serde_json::Map<String, serde_json::Value> =
        serde_json::from_value(serde_json::json!({
            "host": "127.0.0.1", "port": 5672, "user": "guest", "password": "guest", "vhost": "/",
            "exchange": exchange, "exchange_type": "topic", "queue_name": queue,
            "env_keys": ["usage_notifications"],
        }))
        .unwrap();
    let mut h = notabene::construct(&params, &ctx).unwrap();
    let mut env = Env::new(5, "usage_trigger");
    env.data.insert(
        "usage_notifications".into(),
        serde_json::json!([{"event_type": "compute.instance.exists.verified", "n": 1}, {"event_type": "compute.instance.exists.failed", "n": 2}]),
    );
    h.handle_events(vec![], &mut env).unwrap();
    h.commit().await.expect("published and confirmed");

    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = ch
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("message in the queue");
        let v: serde_json::Value = serde_json::from_slice(&m.delivery.data).unwrap();
        got.push(v["n"].as_i64().unwrap());
        assert_eq!(m.delivery.routing_key.as_str(), queue);
    }
    assert_eq!(got, [1, 2]);
    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    ch.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
}
