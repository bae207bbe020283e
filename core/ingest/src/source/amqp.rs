//! The RabbitMQ source: declare the consumer's topology, `basic.qos(prefetch)`,
//! `basic.consume`, hand out batches, multiple-ack after the chain is durable.
//!
//! When the broker goes away (restart, `rabbitmqctl close_all_connections`, network),
//! the source reconnects with backoff (`[rabbit_broker] reconnect_delay` doubling up to
//! `max_wait`), re-declares the topology and resumes; unacked deliveries of the lost
//! channel are redelivered by the broker and deduplicated by the chain. Delivery tags
//! are per channel, so a batch is only acked on the connection generation it came from.
//! `max_connection_age` forces a reconnect between batches, as the original did.

use std::time::{Duration, Instant};

use stv3_amqp::{lapin::Connection, AmqpSettings, Backoff, QueueConsumer, Topology};

use crate::chain::{BoxFut, CommitToken, RawMessage, Source, SourceBatch};
use crate::config::ConsumerConfig;

pub struct AmqpSource {
    name: String,
    settings: AmqpSettings,
    topology: Topology,
    queue: String,
    prefetch: u16,
    max: usize,
    linger: Duration,
    max_connection_age: Duration,
    backoff: Backoff,
    conn: Option<Connection>,
    consumer: Option<QueueConsumer>,
    connected_at: Instant,
    generation: u64,
    connections: u64,
    last_depth: Option<Instant>,
    /// Unhealthy while the broker cannot be reached.
    health: Option<stv3_telemetry::HealthComponent>,
    /// Deliveries taken by `ready_batch` that did not make a full batch yet (this
    /// connection generation; cleared on reconnect, the broker redelivers them).
    pending: Vec<stv3_amqp::Incoming>,
    pending_since: Option<tokio::time::Instant>,
    /// `try_next` saw the channel fail: reconnect at the next `next_batch`.
    broken: bool,
}

/// The topology of one `[consumer:NAME]`.
pub fn consumer_topology(c: &ConsumerConfig) -> Topology {
    let queue = stv3_amqp::QueueSpec {
        name: c.queue.clone(),
        durable: c.durable,
        auto_delete: c.auto_delete,
        arguments: vec![],
    };
    let exchange = c.exchange.as_ref().map(|e| stv3_amqp::ExchangeSpec {
        name: e.clone(),
        kind: c.exchange_type.clone(),
        durable: c.exchange_durable,
        auto_delete: c.exchange_auto_delete,
    });
    Topology::queue_on_exchange(queue, exchange, &c.routing_keys)
}

impl AmqpSource {
    pub fn new(c: &ConsumerConfig, linger: Duration) -> Self {
        AmqpSource {
            name: c.name.clone(),
            settings: c.broker.amqp.clone(),
            topology: consumer_topology(c),
            queue: c.queue.clone(),
            prefetch: c.prefetch,
            max: usize::from(c.max_messages),
            linger,
            max_connection_age: c.broker.max_connection_age,
            backoff: Backoff::new(
                c.broker.reconnect_delay.max(Duration::from_millis(100)),
                c.broker.max_wait,
            ),
            conn: None,
            consumer: None,
            connected_at: Instant::now(),
            generation: 0,
            connections: 0,
            last_depth: None,
            health: None,
            pending: Vec::new(),
            pending_since: None,
            broken: false,
        }
    }

    /// Report the broker connection in the process health (`/health`).
    pub fn with_health(mut self, h: stv3_telemetry::HealthComponent) -> Self {
        self.health = Some(h);
        self
    }

    /// Use a shorter first reconnect delay (tests).
    pub fn with_backoff(mut self, b: Backoff) -> Self {
        self.backoff = b;
        self
    }

    async fn connect_once(&mut self) -> anyhow::Result<()> {
        let conn = stv3_amqp::connect(&self.settings, &format!("yagi-event {}", self.name)).await?;
        let tag = format!(
            "yagi-event-{}-{}-{}",
            self.name,
            std::process::id(),
            self.generation + 1
        );
        let qc = QueueConsumer::start(
            &conn,
            &self.queue,
            self.prefetch,
            &tag,
            Some(&self.topology),
        )
        .await?;
        self.conn = Some(conn);
        self.consumer = Some(qc);
        self.generation += 1;
        self.connections += 1;
        self.connected_at = Instant::now();
        Ok(())
    }

    async fn ensure_connected(&mut self) {
        while self.consumer.is_none() {
            match self.connect_once().await {
                Ok(()) => {
                    self.backoff.reset();
                    if let Some(h) = &self.health {
                        h.ok();
                    }
                    tracing::info!(consumer = %self.name, queue = %self.queue, broker = %self.settings.redacted(),
                        prefetch = self.prefetch, generation = self.generation, "consuming");
                }
                Err(e) => {
                    if let Some(h) = &self.health {
                        h.fail(format!(
                            "cannot connect to the broker {}: {e:#}",
                            self.settings.redacted()
                        ));
                    }
                    let d = self.backoff.next_delay();
                    tracing::error!(consumer = %self.name, broker = %self.settings.redacted(), error = %format!("{e:#}"),
                        retry_in_ms = d.as_millis() as u64, "cannot connect; will retry");
                    tokio::time::sleep(d).await;
                }
            }
        }
    }

    fn reconnect_due(&self) -> bool {
        self.consumer.is_some()
            && !self.max_connection_age.is_zero()
            && self.connected_at.elapsed() > self.max_connection_age
    }

    fn to_batch(&self, deliveries: Vec<stv3_amqp::Incoming>) -> SourceBatch {
        let last_tag = deliveries.last().map(|d| d.tag).unwrap_or(0);
        let messages = deliveries
            .into_iter()
            .map(|d| RawMessage {
                body: d.body,
                exchange: d.exchange,
                routing_key: d.routing_key,
                tag: d.tag,
            })
            .collect();
        SourceBatch {
            messages,
            token: CommitToken {
                generation: self.generation,
                last_tag,
            },
        }
    }

    async fn drop_connection(&mut self) {
        self.pending.clear();
        self.pending_since = None;
        self.broken = false;
        if let Some(c) = self.consumer.take() {
            c.close().await;
        }
        if let Some(conn) = self.conn.take() {
            let _ = conn.close(200, "reconnect".into()).await;
        }
    }

    async fn update_depth(&mut self) {
        if self
            .last_depth
            .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
        {
            return;
        }
        self.last_depth = Some(Instant::now());
        if let Some(conn) = &self.conn {
            match stv3_amqp::consumer::queue_depth(conn, &self.queue).await {
                Ok(d) => metrics::gauge!("stv3_ingest_queue_depth", "consumer" => self.name.clone(), "queue" => self.queue.clone())
                    .set(f64::from(d)),
                Err(e) => tracing::debug!(error = %e, "queue depth unavailable"),
            }
        }
    }
}

impl Source for AmqpSource {
    fn next_batch(&mut self) -> BoxFut<'_, anyhow::Result<Option<SourceBatch>>> {
        Box::pin(async move {
            loop {
                if self.reconnect_due() {
                    tracing::info!(consumer = %self.name, "maximum AMQP connection age reached; reconnecting");
                    self.drop_connection().await;
                }
                if self.broken {
                    tracing::warn!(consumer = %self.name, "connection lost; reconnecting");
                    self.drop_connection().await;
                }
                self.ensure_connected().await;
                self.update_depth().await;
                let pending = std::mem::take(&mut self.pending);
                let since = self.pending_since.take();
                let qc = self.consumer.as_mut().expect("connected above");
                match qc.fill_batch(pending, since, self.max, self.linger).await {
                    Ok(Some(deliveries)) => return Ok(Some(self.to_batch(deliveries))),
                    Ok(None) => {
                        tracing::warn!(consumer = %self.name, queue = %self.queue, "consumer cancelled by the broker; reconnecting");
                    }
                    Err(e) => {
                        tracing::warn!(consumer = %self.name, error = %e, "connection lost; reconnecting");
                    }
                }
                self.drop_connection().await;
            }
        })
    }

    fn ready_batch(&mut self) -> Option<SourceBatch> {
        if self.broken || self.reconnect_due() {
            return None;
        }
        let qc = self.consumer.as_mut()?;
        while self.pending.len() < self.max {
            match qc.try_next() {
                None => break,
                Some(Ok(d)) => {
                    if self.pending.is_empty() {
                        self.pending_since = Some(tokio::time::Instant::now());
                    }
                    self.pending.push(d);
                }
                Some(Err(e)) => {
                    tracing::warn!(consumer = %self.name, error = %e, "connection lost while reading ahead");
                    self.broken = true;
                    return None;
                }
            }
        }
        if self.pending.len() < self.max {
            return None;
        }
        self.pending_since = None;
        let deliveries = std::mem::take(&mut self.pending);
        Some(self.to_batch(deliveries))
    }

    fn commit(&mut self, token: CommitToken) -> BoxFut<'_, anyhow::Result<()>> {
        Box::pin(async move {
            if token.generation != self.generation {
                anyhow::bail!(
                    "the channel of this batch is gone (generation {} != {})",
                    token.generation,
                    self.generation
                );
            }
            let Some(qc) = &self.consumer else {
                anyhow::bail!("not connected")
            };
            if let Err(e) = qc.ack_up_to(token.last_tag).await {
                self.drop_connection().await;
                return Err(e.into());
            }
            Ok(())
        })
    }

    fn abort(&mut self, token: CommitToken) -> BoxFut<'_, ()> {
        Box::pin(async move {
            if token.generation == self.generation {
                if let Some(qc) = &self.consumer {
                    if let Err(e) = qc.nack_up_to(token.last_tag, true).await {
                        tracing::warn!(error = %e, "nack failed (the broker requeues on close anyway)");
                    }
                }
            }
            self.drop_connection().await;
        })
    }

    fn reconnects(&self) -> u64 {
        self.connections.saturating_sub(1)
    }
}

impl AmqpSource {
    /// Close cleanly (after the last batch was acked).
    pub async fn close(&mut self) {
        self.drop_connection().await;
    }
}
