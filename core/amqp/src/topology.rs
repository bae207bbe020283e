//! Exchanges, queues and bindings as data, declared idempotently on a channel
//! (re-run after every reconnect). Mirrors yagi's `NotQuiteSoStupidConsumer.declare`:
//! queue first, then the exchange (its own durable/auto_delete flags, falling back to
//! the queue's), then one binding per routing key. For a `headers` exchange the
//! routing key is not used for matching (the binding gets no header arguments).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::{AmqpError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeSpec {
    pub name: String,
    /// `topic`, `direct`, `fanout`, `headers`, or a plugin type.
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    /// Optional `x-*` string arguments (e.g. `x-dead-letter-exchange`).
    pub arguments: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub queue: String,
    pub exchange: String,
    pub routing_key: String,
}

/// Everything one consumer (or publisher) needs to exist on the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    pub exchanges: Vec<ExchangeSpec>,
    pub queues: Vec<QueueSpec>,
    pub bindings: Vec<Binding>,
}

pub fn exchange_kind(kind: &str) -> ExchangeKind {
    match kind {
        "topic" => ExchangeKind::Topic,
        "direct" => ExchangeKind::Direct,
        "fanout" => ExchangeKind::Fanout,
        "headers" => ExchangeKind::Headers,
        other => ExchangeKind::Custom(other.to_string()),
    }
}

impl Topology {
    /// The usual shape: one queue bound to one exchange with several routing keys.
    pub fn queue_on_exchange(
        queue: QueueSpec,
        exchange: Option<ExchangeSpec>,
        routing_keys: &[String],
    ) -> Self {
        let mut t = Topology::default();
        if let Some(ex) = exchange {
            for rk in routing_keys {
                t.bindings.push(Binding {
                    queue: queue.name.clone(),
                    exchange: ex.name.clone(),
                    routing_key: rk.clone(),
                });
            }
            t.exchanges.push(ex);
        }
        t.queues.push(queue);
        t
    }

    /// Declare everything (idempotent when the flags match what exists).
    pub async fn declare(&self, ch: &Channel) -> Result<()> {
        for q in &self.queues {
            let mut args = FieldTable::default();
            for (k, v) in &q.arguments {
                args.insert(
                    ShortString::from(k.as_str()),
                    AMQPValue::LongString(LongString::from(v.as_bytes())),
                );
            }
            ch.queue_declare(
                q.name.as_str().into(),
                QueueDeclareOptions {
                    durable: q.durable,
                    auto_delete: q.auto_delete,
                    ..Default::default()
                },
                args,
            )
            .await
            .map_err(|e| AmqpError::lapin(format!("queue.declare {:?}", q.name), e))?;
        }
        for ex in &self.exchanges {
            if ex.name.is_empty() || ex.name.starts_with("amq.") {
                continue; // the default and predeclared exchanges cannot be declared
            }
            ch.exchange_declare(
                ex.name.as_str().into(),
                exchange_kind(&ex.kind),
                ExchangeDeclareOptions {
                    durable: ex.durable,
                    auto_delete: ex.auto_delete,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                AmqpError::lapin(format!("exchange.declare {:?} ({})", ex.name, ex.kind), e)
            })?;
        }
        for b in &self.bindings {
            if b.exchange.is_empty() {
                continue; // every queue is implicitly bound to the default exchange
            }
            ch.queue_bind(
                b.queue.as_str().into(),
                b.exchange.as_str().into(),
                b.routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                AmqpError::lapin(
                    format!(
                        "queue.bind {:?} to {:?} with {:?}",
                        b.queue, b.exchange, b.routing_key
                    ),
                    e,
                )
            })?;
        }
        Ok(())
    }
}
