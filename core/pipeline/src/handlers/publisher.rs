//! The AMQP publisher behind NotabeneHandler.
//!
//! [`Publisher`] is the seam: [`LapinPublisher`] (real, lapin with publisher
//! confirms), [`DryRunPublisher`] (logs only; replay) and [`RecordingPublisher`]
//! (tests). When `stv3-amqp` grows its publisher, it replaces `LapinPublisher`
//! behind the same trait.
//!
//! Topology as notabene's kombu driver: a durable exchange `exchange` of type
//! `exchange_type`, and a durable queue `queue_name` bound to it with routing key
//! `queue_name` (declared once per connection+exchange, "so we don't lose
//! events"). Messages are JSON, `application/json`, utf-8, persistent, published
//! with routing key `queue_name`. Connections are pooled by
//! (host, port, user, password, vhost) for the life of the process.
//!
//! At-least-once: when the connection is lost mid-commit (broker restart,
//! `rabbitmqctl close_all_connections`), [`LapinPublisher`] reconnects with
//! backoff and re-publishes every body whose confirm did not arrive, so a
//! body may reach the queue twice (byte-identical, same `message_id`, which
//! yagi-event dedupes on); only a longer outage, a nack or a channel-level
//! refusal fails the commit (`tests/notabene_broker_close.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

/// (host, port, user, password, vhost): the connection pool key.
type ConnKey = (String, u16, String, String, String);

/// Where a notabene handler publishes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AmqpTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
    pub exchange: String,
    pub exchange_type: String,
    pub queue_name: String,
}

impl AmqpTarget {
    /// `amqp://user:pass@host:port/vhost` (vhost percent-encoded).
    pub fn uri(&self) -> String {
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        };
        format!(
            "amqp://{}:{}@{}:{}/{}",
            enc(&self.user),
            enc(&self.password),
            self.host,
            self.port,
            enc(&self.vhost)
        )
    }

    fn connection_key(&self) -> ConnKey {
        (
            self.host.clone(),
            self.port,
            self.user.clone(),
            self.password.clone(),
            self.vhost.clone(),
        )
    }
}

/// A publish failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("AMQP publish to {target}: {message}")]
pub struct PublishError {
    pub target: String,
    pub message: String,
}

/// Publishes JSON bodies; resolves once the broker confirmed every one.
pub trait Publisher: Send + Sync {
    fn publish<'a>(
        &'a self,
        target: &'a AmqpTarget,
        bodies: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(), PublishError>>;
}

/// Logs instead of publishing.
#[derive(Debug, Default)]
pub struct DryRunPublisher;

impl Publisher for DryRunPublisher {
    fn publish<'a>(
        &'a self,
        target: &'a AmqpTarget,
        bodies: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(), PublishError>> {
        tracing::info!(exchange = %target.exchange, routing_key = %target.queue_name, n = bodies.len(), "dry run: not publishing");
        Box::pin(async { Ok(()) })
    }
}

/// Records what would be published (tests).
#[derive(Debug, Default)]
pub struct RecordingPublisher {
    pub sent: Mutex<Vec<(AmqpTarget, serde_json::Value)>>,
    /// When set, every publish fails with this message.
    pub fail_with: Mutex<Option<String>>,
}

impl Publisher for RecordingPublisher {
    fn publish<'a>(
        &'a self,
        target: &'a AmqpTarget,
        bodies: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            if let Some(msg) = self.fail_with.lock().expect("lock").clone() {
                return Err(PublishError {
                    target: target.uri(),
                    message: msg,
                });
            }
            let mut sent = self.sent.lock().expect("lock");
            for b in bodies {
                sent.push((
                    target.clone(),
                    serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
                ));
            }
            Ok(())
        })
    }
}

struct Pooled {
    connection: Connection,
    channel: Channel,
    declared: HashSet<(String, String, String)>,
}

/// lapin publisher with confirms and a connection pool.
#[derive(Default)]
pub struct LapinPublisher {
    pool: tokio::sync::Mutex<HashMap<ConnKey, Pooled>>,
}

impl LapinPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Publish `bodies[i]` for every `i` in `unconfirmed` and wait for the
    /// confirms; `unconfirmed` keeps the ones the broker did not ack.
    async fn publish_inner(
        &self,
        target: &AmqpTarget,
        bodies: &[Vec<u8>],
        unconfirmed: &mut Vec<usize>,
    ) -> Result<(), Failure> {
        let mut pool = self.pool.lock().await;
        let key = target.connection_key();
        let stale = pool
            .get(&key)
            .map(|p| !p.connection.status().connected() || !p.channel.status().connected());
        if stale == Some(true) {
            pool.remove(&key);
        }
        if !pool.contains_key(&key) {
            let connection = Connection::connect(&target.uri(), ConnectionProperties::default())
                .await
                .map_err(|e| Failure::lapin("connect", e))?;
            let channel = connection
                .create_channel()
                .await
                .map_err(|e| Failure::lapin("channel", e))?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| Failure::lapin("confirm.select", e))?;
            pool.insert(
                key.clone(),
                Pooled {
                    connection,
                    channel,
                    declared: HashSet::new(),
                },
            );
        }
        let pooled = pool.get_mut(&key).expect("inserted above");
        let topo = (
            target.exchange.clone(),
            target.exchange_type.clone(),
            target.queue_name.clone(),
        );
        if !pooled.declared.contains(&topo) {
            let kind = match target.exchange_type.as_str() {
                "topic" => ExchangeKind::Topic,
                "direct" => ExchangeKind::Direct,
                "fanout" => ExchangeKind::Fanout,
                "headers" => ExchangeKind::Headers,
                other => ExchangeKind::Custom(other.to_string()),
            };
            let ch = &pooled.channel;
            ch.exchange_declare(
                target.exchange.as_str().into(),
                kind,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| Failure::lapin(format!("exchange.declare {}", target.exchange), e))?;
            ch.queue_declare(
                target.queue_name.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| Failure::lapin(format!("queue.declare {}", target.queue_name), e))?;
            ch.queue_bind(
                target.queue_name.as_str().into(),
                target.exchange.as_str().into(),
                target.queue_name.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| Failure::lapin("queue.bind", e))?;
            pooled.declared.insert(topo);
        }
        // Publish and wait for the confirms without holding the pool: concurrent
        // commits share the channel, and the broker confirms them together.
        let channel = pooled.channel.clone();
        drop(pool);
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_delivery_mode(2);
        let mut failure = None;
        let mut confirms = Vec::with_capacity(unconfirmed.len());
        for &i in unconfirmed.iter() {
            match channel
                .basic_publish(
                    target.exchange.as_str().into(),
                    target.queue_name.as_str().into(),
                    BasicPublishOptions::default(),
                    &bodies[i],
                    props.clone(),
                )
                .await
            {
                Ok(c) => confirms.push((i, c)),
                Err(e) => {
                    failure = Some(Failure::lapin("basic.publish", e));
                    break;
                }
            }
        }
        // Await every confirm of what went out, so only the unacked are sent again.
        let mut acked = HashSet::new();
        for (i, c) in confirms {
            match c.await {
                Ok(conf) if conf.is_nack() => {
                    failure.get_or_insert(Failure {
                        message: "broker nacked a message".into(),
                        retry: false,
                    });
                }
                Ok(_) => {
                    acked.insert(i);
                }
                Err(e) => {
                    failure.get_or_insert(Failure::lapin("confirm", e));
                }
            }
        }
        unconfirmed.retain(|i| !acked.contains(i));
        match failure {
            None => Ok(()),
            Some(f) => Err(f),
        }
    }
}

/// Connection attempts per commit before it fails: a broker restart or a
/// closed connection is re-published over a new one, an outage longer than the
/// backoff (about 6 s) fails the commit as before.
const ATTEMPTS: u32 = 8;

/// Why a publish attempt stopped; `retry` when a new connection may succeed.
struct Failure {
    message: String,
    retry: bool,
}

impl Failure {
    /// Channel-level refusals (precondition failed, access refused, not found)
    /// would fail again on a new connection; connection losses would not.
    fn lapin(what: impl std::fmt::Display, e: lapin::Error) -> Self {
        Failure {
            message: format!("{what}: {e}"),
            retry: !e.is_amqp_soft_error(),
        }
    }
}

impl Publisher for LapinPublisher {
    fn publish<'a>(
        &'a self,
        target: &'a AmqpTarget,
        bodies: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            if bodies.is_empty() {
                return Ok(());
            }
            // At-least-once: when the connection goes (broker restart,
            // close_all_connections), reconnect and re-publish every body
            // whose confirm did not arrive; a commit error loses the
            // notifications (the pipeline only logs it).
            let mut unconfirmed: Vec<usize> = (0..bodies.len()).collect();
            let mut delay = Duration::from_millis(50);
            let mut attempt = 1;
            loop {
                let Err(f) = self.publish_inner(target, &bodies, &mut unconfirmed).await else {
                    return Ok(());
                };
                // Drop the pooled connection so the next attempt reconnects.
                self.pool.lock().await.remove(&target.connection_key());
                if !f.retry || attempt >= ATTEMPTS {
                    return Err(PublishError {
                        target: format!("{}:{}/{}", target.host, target.port, target.exchange),
                        message: f.message,
                    });
                }
                tracing::warn!(exchange = %target.exchange, error = %f.message, attempt, unconfirmed = unconfirmed.len(),
                    "notabene publish interrupted; reconnecting to re-publish the unconfirmed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                attempt += 1;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_encodes_vhost_and_credentials() {
        let t = AmqpTarget {
            host: "localhost".into(),
            port: 5672,
            user: "guest".into(),
            password: "p@ss".into(),
            vhost: "/".into(),
            exchange: "nova".into(),
            exchange_type: "topic".into(),
            queue_name: "monitor.info".into(),
        };
        assert_eq!(t.uri(), "amqp://guest:p%40ss@localhost:5672/%2F");
    }
}
