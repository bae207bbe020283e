//! Push consumption: `basic.qos(prefetch)` then `basic.consume` with manual acks (never
//! `basic.get` polling as the original yagi did). Deliveries are read in batches (up to
//! `max` messages, waiting at most `linger` after the first) and acknowledged with one
//! multiple-ack up to the last delivery tag of the batch.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};

use crate::{AmqpError, Result, Topology};

/// One delivered message, detached from lapin.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub tag: u64,
    pub body: Vec<u8>,
    pub exchange: String,
    pub routing_key: String,
    pub redelivered: bool,
    /// The AMQP `message_id` property, if the publisher set one.
    pub message_id: Option<String>,
    /// String-valued headers.
    pub headers: Vec<(String, String)>,
}

impl From<lapin::message::Delivery> for Incoming {
    fn from(d: lapin::message::Delivery) -> Self {
        let headers = d
            .properties
            .headers()
            .as_ref()
            .map(|t| {
                t.inner()
                    .iter()
                    .filter_map(|(k, v)| match v {
                        AMQPValue::LongString(s) => Some((
                            k.to_string(),
                            String::from_utf8_lossy(s.as_bytes()).into_owned(),
                        )),
                        AMQPValue::ShortString(s) => Some((k.to_string(), s.to_string())),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Incoming {
            tag: d.delivery_tag,
            exchange: d.exchange.to_string(),
            routing_key: d.routing_key.to_string(),
            redelivered: d.redelivered,
            message_id: d.properties.message_id().as_ref().map(|s| s.to_string()),
            headers,
            body: d.data,
        }
    }
}

/// A consumer on one channel.
pub struct QueueConsumer {
    channel: Channel,
    consumer: lapin::Consumer,
    queue: String,
}

impl QueueConsumer {
    /// Open a channel, declare `topology` (if any), set the prefetch and start consuming.
    pub async fn start(
        conn: &Connection,
        queue: &str,
        prefetch: u16,
        tag: &str,
        topology: Option<&Topology>,
    ) -> Result<Self> {
        let channel = conn
            .create_channel()
            .await
            .map_err(|e| AmqpError::lapin("channel.open", e))?;
        if let Some(t) = topology {
            t.declare(&channel).await?;
        }
        channel
            .basic_qos(prefetch, BasicQosOptions { global: false })
            .await
            .map_err(|e| AmqpError::lapin(format!("basic.qos {prefetch}"), e))?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                tag.into(),
                BasicConsumeOptions {
                    no_ack: false,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| AmqpError::lapin(format!("basic.consume {queue:?}"), e))?;
        Ok(QueueConsumer {
            channel,
            consumer,
            queue: queue.to_string(),
        })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Wait for the next delivery, then gather more until `max` or until `linger` has
    /// passed since the first. `Ok(None)` means the consumer was cancelled.
    pub async fn next_batch(
        &mut self,
        max: usize,
        linger: Duration,
    ) -> Result<Option<Vec<Incoming>>> {
        self.fill_batch(Vec::new(), None, max, linger).await
    }

    /// As [`QueueConsumer::next_batch`], continuing `batch` (deliveries taken earlier
    /// with [`QueueConsumer::try_next`]); `first_at` is when its first one arrived, from
    /// which `linger` counts.
    pub async fn fill_batch(
        &mut self,
        mut batch: Vec<Incoming>,
        first_at: Option<tokio::time::Instant>,
        max: usize,
        linger: Duration,
    ) -> Result<Option<Vec<Incoming>>> {
        let first_at = match first_at {
            Some(t) if !batch.is_empty() => t,
            _ => {
                let first = match self.consumer.next().await {
                    None if batch.is_empty() => return Ok(None),
                    None => return Ok(Some(batch)),
                    Some(Err(e)) => return Err(self.consume_error(e)),
                    Some(Ok(d)) => d,
                };
                batch.reserve(max.min(4096));
                batch.push(Incoming::from(first));
                tokio::time::Instant::now()
            }
        };
        let deadline = first_at + linger;
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, self.consumer.next()).await {
                Err(_) => break, // linger over
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    // The deliveries already gathered were never acked: the broker redelivers them.
                    return Err(self.consume_error(e));
                }
                Ok(Some(Ok(d))) => batch.push(Incoming::from(d)),
            }
        }
        Ok(Some(batch))
    }

    fn consume_error(&self, e: lapin::Error) -> AmqpError {
        AmqpError::lapin(format!("consume {:?}", self.queue), e)
    }

    /// A delivery that has already arrived, without waiting: `None` when there is none.
    pub fn try_next(&mut self) -> Option<Result<Incoming>> {
        use futures::FutureExt;
        match self.consumer.next().now_or_never()? {
            None => None,
            Some(Err(e)) => Some(Err(self.consume_error(e))),
            Some(Ok(d)) => Some(Ok(Incoming::from(d))),
        }
    }

    /// Ack every delivery up to and including `tag`.
    pub async fn ack_up_to(&self, tag: u64) -> Result<()> {
        self.channel
            .basic_ack(tag, BasicAckOptions { multiple: true })
            .await
            .map_err(|e| AmqpError::lapin(format!("basic.ack up to {tag}"), e))
    }

    /// Nack every delivery up to and including `tag`.
    pub async fn nack_up_to(&self, tag: u64, requeue: bool) -> Result<()> {
        self.channel
            .basic_nack(
                tag,
                BasicNackOptions {
                    multiple: true,
                    requeue,
                },
            )
            .await
            .map_err(|e| AmqpError::lapin(format!("basic.nack up to {tag}"), e))
    }

    /// Close the channel (unacked deliveries go back to the queue).
    pub async fn close(self) {
        let _ = self.channel.close(200, "bye".into()).await;
    }
}

/// Messages ready in `queue` (passive declare on a short-lived channel, so a missing
/// queue does not close a consuming channel).
pub async fn queue_depth(conn: &Connection, queue: &str) -> Result<u32> {
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| AmqpError::lapin("channel.open", e))?;
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| AmqpError::lapin(format!("queue.declare passive {queue:?}"), e))?;
    let _ = ch.close(200, "bye".into()).await;
    Ok(q.message_count())
}
