//! The notabene equivalent: publish JSON notifications with publisher confirms.
//!
//! * `confirm_select` once per channel; every message's confirm is awaited (in order,
//!   with up to `window` in flight); a nack is an error ([`AmqpError::Nacked`]).
//! * Body is the JSON text, `content_type=application/json`, `content_encoding=utf-8`,
//!   persistent (`delivery_mode=2`), optional `message_id` and string headers.
//! * When the connection drops, the publisher reconnects with [`Backoff`], re-declares
//!   its topology and re-publishes every message that was not yet confirmed
//!   (at-least-once: a message whose confirm was lost may arrive twice; consumers dedupe
//!   on `message_id`).
//! * [`Publisher::publish_at_rate`] paces an iterator at N messages per second.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, PublisherConfirm};

use crate::{connect, AmqpError, AmqpSettings, Backoff, Result, Topology};

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutMessage {
    pub exchange: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub message_id: Option<String>,
    /// String headers (e.g. `x-stv3-reason`).
    pub headers: Vec<(String, String)>,
}

impl OutMessage {
    /// A JSON message; `message_id` is taken from the top-level `message_id` key if present.
    pub fn json(exchange: &str, routing_key: &str, value: &serde_json::Value) -> Result<Self> {
        Ok(OutMessage {
            exchange: exchange.to_string(),
            routing_key: routing_key.to_string(),
            body: serde_json::to_vec(value)?,
            message_id: value
                .get("message_id")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            headers: Vec::new(),
        })
    }

    /// Raw bytes (already JSON, or a poison body being quarantined).
    pub fn raw(exchange: &str, routing_key: &str, body: Vec<u8>) -> Self {
        OutMessage {
            exchange: exchange.to_string(),
            routing_key: routing_key.to_string(),
            body,
            message_id: None,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    fn properties(&self) -> BasicProperties {
        let mut p = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_delivery_mode(2);
        if let Some(id) = &self.message_id {
            p = p.with_message_id(id.as_str().into());
        }
        if !self.headers.is_empty() {
            let mut t = FieldTable::default();
            for (k, v) in &self.headers {
                t.insert(
                    ShortString::from(k.as_str()),
                    AMQPValue::LongString(LongString::from(v.as_bytes())),
                );
            }
            p = p.with_headers(t);
        }
        p
    }
}

/// What a bulk publish did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishStats {
    pub published: u64,
    pub confirmed: u64,
    /// Messages sent again after a reconnect.
    pub republished: u64,
    pub reconnects: u64,
    pub elapsed: Duration,
}

impl PublishStats {
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.confirmed as f64 / s
        } else {
            0.0
        }
    }
}

/// A confirming publisher that owns its connection.
pub struct Publisher {
    settings: AmqpSettings,
    name: String,
    conn: Option<Connection>,
    channel: Option<Channel>,
    topology: Topology,
    /// Delay policy between connection attempts.
    pub backoff: Backoff,
    /// Connection attempts per outage before giving up ([`AmqpError::GaveUp`]).
    pub max_attempts: u32,
    /// Publish with `mandatory`, so an unroutable message is an error instead of vanishing.
    pub mandatory: bool,
    /// Confirms in flight in bulk publishing.
    pub window: usize,
    reconnects: u64,
    ever_connected: bool,
}

impl Publisher {
    /// Connect (with retries) and enable confirms.
    pub async fn connect(settings: &AmqpSettings, name: &str) -> Result<Self> {
        let mut p = Publisher::lazy(settings, name);
        p.channel().await?;
        Ok(p)
    }

    /// A publisher that connects on first use.
    pub fn lazy(settings: &AmqpSettings, name: &str) -> Self {
        Publisher {
            settings: settings.clone(),
            name: name.to_string(),
            conn: None,
            channel: None,
            topology: Topology::default(),
            backoff: Backoff::default(),
            max_attempts: 10,
            mandatory: false,
            window: 512,
            reconnects: 0,
            ever_connected: false,
        }
    }

    /// Declare `topology` on every (re)connect, starting with the next one (no I/O now).
    pub fn with_topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    /// Declare this topology now and again after every reconnect.
    pub async fn declare(&mut self, topology: Topology) -> Result<()> {
        self.topology = topology;
        let ch = self.channel().await?;
        self.topology.declare(&ch).await
    }

    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The confirming channel, (re)connecting with backoff when needed.
    pub async fn channel(&mut self) -> Result<Channel> {
        if let Some(ch) = &self.channel {
            if ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        self.channel = None;
        self.conn = None;
        let mut last = String::new();
        for attempt in 0..self.max_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.backoff.next_delay()).await;
            }
            match self.open().await {
                Ok(ch) => {
                    if self.ever_connected {
                        self.reconnects += 1;
                        tracing::info!(publisher = %self.name, broker = %self.settings.redacted(), "publisher reconnected");
                    }
                    self.ever_connected = true;
                    self.backoff.reset();
                    self.channel = Some(ch.clone());
                    return Ok(ch);
                }
                Err(e) => {
                    tracing::warn!(publisher = %self.name, error = %e, attempt, "publisher connect failed");
                    last = e.to_string();
                }
            }
        }
        Err(AmqpError::GaveUp {
            attempts: self.max_attempts.max(1),
            target: self.settings.redacted(),
            last,
        })
    }

    async fn open(&mut self) -> Result<Channel> {
        let conn = connect(&self.settings, &self.name).await?;
        let ch = conn
            .create_channel()
            .await
            .map_err(|e| AmqpError::lapin("channel.open", e))?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| AmqpError::lapin("confirm.select", e))?;
        self.topology.declare(&ch).await?;
        self.conn = Some(conn);
        Ok(ch)
    }

    fn drop_connection(&mut self, why: &AmqpError) {
        tracing::warn!(publisher = %self.name, error = %why, "publisher connection lost; will reconnect and re-publish unconfirmed messages");
        self.channel = None;
        self.conn = None;
    }

    async fn send(&mut self, m: &OutMessage) -> Result<PublisherConfirm> {
        let ch = self.channel().await?;
        ch.basic_publish(
            m.exchange.as_str().into(),
            m.routing_key.as_str().into(),
            BasicPublishOptions {
                mandatory: self.mandatory,
                ..Default::default()
            },
            &m.body,
            m.properties(),
        )
        .await
        .map_err(|e| AmqpError::lapin(format!("basic.publish to {:?}", m.exchange), e))
    }

    /// Publish one message and wait for its confirm.
    pub async fn publish(&mut self, m: OutMessage) -> Result<()> {
        self.publish_at_rate(std::iter::once(m), None, None)
            .await
            .map(|_| ())
    }

    /// Publish one JSON value and wait for its confirm.
    pub async fn publish_json(
        &mut self,
        exchange: &str,
        routing_key: &str,
        value: &serde_json::Value,
    ) -> Result<()> {
        self.publish(OutMessage::json(exchange, routing_key, value)?)
            .await
    }

    /// Publish up to `count` messages from `iter` (all when `None`), at most `rate_per_sec`
    /// per second (unlimited when `None` or <= 0), awaiting every confirm with up to
    /// `self.window` in flight. Returns when every message is confirmed.
    pub async fn publish_at_rate<I>(
        &mut self,
        iter: I,
        rate_per_sec: Option<f64>,
        count: Option<u64>,
    ) -> Result<PublishStats>
    where
        I: IntoIterator<Item = OutMessage>,
    {
        self.publish_observed(iter, rate_per_sec, count, |_| {})
            .await
    }

    /// [`Publisher::publish_at_rate`], calling `on_send` with each fresh message just
    /// before it is handed to the broker (load tools time publish-to-visible latency from it).
    pub async fn publish_observed<I>(
        &mut self,
        iter: I,
        rate_per_sec: Option<f64>,
        count: Option<u64>,
        mut on_send: impl FnMut(&OutMessage),
    ) -> Result<PublishStats>
    where
        I: IntoIterator<Item = OutMessage>,
    {
        let start = Instant::now();
        let reconnects0 = self.reconnects;
        let mut stats = PublishStats::default();
        let mut iter = iter
            .into_iter()
            .take(count.map(|c| c as usize).unwrap_or(usize::MAX));
        let rate = rate_per_sec.filter(|r| *r > 0.0 && r.is_finite());
        let window = self.window.max(1);
        let mut fresh: u64 = 0;
        let mut resend: VecDeque<OutMessage> = VecDeque::new();
        let mut pending: VecDeque<(OutMessage, PublisherConfirm)> = VecDeque::new();
        loop {
            if pending.len() < window {
                let next = if let Some(m) = resend.pop_front() {
                    stats.republished += 1;
                    Some(m)
                } else if let Some(m) = iter.next() {
                    if let Some(r) = rate {
                        let due = start + Duration::from_secs_f64(fresh as f64 / r);
                        let now = Instant::now();
                        if due > now + Duration::from_millis(1) {
                            tokio::time::sleep(due - now).await;
                        }
                    }
                    fresh += 1;
                    stats.published += 1;
                    on_send(&m);
                    Some(m)
                } else {
                    None
                };
                if let Some(m) = next {
                    match self.send(&m).await {
                        Ok(c) => pending.push_back((m, c)),
                        Err(e) if matches!(e, AmqpError::Lapin { .. }) => {
                            self.drop_connection(&e);
                            let mut again: VecDeque<OutMessage> =
                                pending.drain(..).map(|(m, _)| m).collect();
                            again.push_back(m);
                            again.extend(resend.drain(..));
                            resend = again;
                        }
                        Err(e) => return Err(e),
                    }
                    continue;
                }
                if pending.is_empty() {
                    break;
                }
            }
            let Some((m, confirm)) = pending.pop_front() else {
                continue;
            };
            match confirm.await {
                Ok(Confirmation::Ack(returned)) => {
                    if let Some(ret) = returned {
                        if self.mandatory {
                            return Err(AmqpError::Returned {
                                exchange: m.exchange,
                                routing_key: m.routing_key,
                                reply: format!("{} {}", ret.reply_code, ret.reply_text),
                            });
                        }
                    }
                    stats.confirmed += 1;
                }
                Ok(Confirmation::NotRequested) => stats.confirmed += 1,
                Ok(Confirmation::Nack(_)) => {
                    return Err(AmqpError::Nacked {
                        exchange: m.exchange,
                        routing_key: m.routing_key,
                    });
                }
                Err(e) => {
                    let e = AmqpError::lapin("publisher confirm", e);
                    self.drop_connection(&e);
                    let mut again: VecDeque<OutMessage> = VecDeque::from([m]);
                    again.extend(pending.drain(..).map(|(m, _)| m));
                    again.extend(resend.drain(..));
                    resend = again;
                }
            }
        }
        stats.elapsed = start.elapsed();
        stats.reconnects = self.reconnects - reconnects0;
        Ok(stats)
    }

    /// Close the connection cleanly.
    pub async fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close(200, "bye".into()).await;
        }
    }
}
