//! AMQP plumbing on lapin 4 shared by the stv3 processes.
//!
//! * [`settings`]: where the broker is (URL, or yagi-style host/port/user/password/vhost).
//! * [`topology`]: exchanges, queues and bindings, declared idempotently.
//! * [`publisher`]: the notabene equivalent, a JSON publisher with publisher confirms
//!   (every confirm awaited, a nack is an error), reconnect with backoff, and a
//!   rate-limited bulk helper.
//! * [`consumer`]: `basic.qos` + `basic.consume` (push, never polling), batches of
//!   deliveries, manual multiple-ack / nack.
//! * [`backoff`]: the reconnect delay policy (pure).
//!
//! lapin is re-exported as [`lapin`] so dependants need no direct dependency.

pub mod backoff;
pub mod consumer;
pub mod publisher;
pub mod settings;
pub mod topology;

pub use backoff::Backoff;
pub use consumer::{Incoming, QueueConsumer};
pub use lapin;
pub use publisher::{OutMessage, PublishStats, Publisher};
pub use settings::AmqpSettings;
pub use topology::{Binding, ExchangeSpec, QueueSpec, Topology};

/// Errors of the AMQP layer. Each names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("invalid AMQP URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("AMQP {op} failed: {source}")]
    Lapin {
        op: String,
        #[source]
        source: lapin::Error,
    },
    #[error("the broker nacked the message published to exchange {exchange:?} with routing key {routing_key:?}")]
    Nacked {
        exchange: String,
        routing_key: String,
    },
    #[error("the broker returned the mandatory message published to exchange {exchange:?} with routing key {routing_key:?}: {reply}")]
    Returned {
        exchange: String,
        routing_key: String,
        reply: String,
    },
    #[error("cannot serialize the message as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("gave up after {attempts} connection attempts to {target}: {last}")]
    GaveUp {
        attempts: u32,
        target: String,
        last: String,
    },
}

impl AmqpError {
    pub(crate) fn lapin(op: impl Into<String>, source: lapin::Error) -> Self {
        AmqpError::Lapin {
            op: op.into(),
            source,
        }
    }

    /// True when the error means the connection or channel is gone (retry after reconnect),
    /// false for errors that a reconnect would not fix (nack, bad URL, JSON).
    pub fn is_connection_error(&self) -> bool {
        matches!(self, AmqpError::Lapin { .. } | AmqpError::GaveUp { .. })
    }
}

pub type Result<T> = std::result::Result<T, AmqpError>;

/// Open a connection (tokio runtime) with a connection name shown in the management UI.
pub async fn connect(settings: &AmqpSettings, name: &str) -> Result<lapin::Connection> {
    let props =
        lapin::ConnectionProperties::default().with_connection_name(name.to_string().into());
    lapin::Connection::connect(&settings.uri(), props)
        .await
        .map_err(|e| AmqpError::lapin(format!("connect to {}", settings.redacted()), e))
}
