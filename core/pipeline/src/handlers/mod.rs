//! The built-in pipeline handlers and the context they share.
//!
//! * [`logging`]: LoggingHandler (log and pass through).
//! * [`usage`]: UsageHandler (nova usage audit, U0–U8).
//! * [`notabene`]: NotabeneHandler (re-publish to RabbitMQ on commit, publisher confirms).
//! * [`atompub`]: AtomPubHandler (POST Atom entries on commit, bounded retries).
//! * [`journal`]: JournalHandler (stv3: append one JSON line per run to a file).
//!
//! [`HandlerContext`] holds what the original kept in process globals: the AMQP
//! publisher (connection pool) and the HTTP client with the AtomPub token cache.

pub mod atompub;
pub mod journal;
pub mod logging;
pub mod notabene;
pub mod publisher;
pub mod usage;

use std::sync::Arc;

pub use publisher::{AmqpTarget, DryRunPublisher, LapinPublisher, Publisher, RecordingPublisher};

/// Process-wide resources handed to every handler constructor.
#[derive(Clone)]
pub struct HandlerContext {
    /// Where NotabeneHandler publishes.
    pub publisher: Arc<dyn Publisher>,
    /// HTTP client for AtomPubHandler.
    pub http: reqwest::Client,
    /// AtomPub auth tokens, cached process-wide (the original cached them class-wide).
    pub atompub_tokens: Arc<atompub::TokenCache>,
}

impl HandlerContext {
    /// Real I/O: lapin publisher with confirms, reqwest client.
    pub fn live() -> Self {
        HandlerContext {
            publisher: Arc::new(LapinPublisher::new()),
            http: reqwest::Client::new(),
            atompub_tokens: Arc::default(),
        }
    }

    /// No AMQP I/O: NotabeneHandler only logs what it would publish (replay, config checks).
    pub fn offline() -> Self {
        HandlerContext {
            publisher: Arc::new(DryRunPublisher),
            http: reqwest::Client::new(),
            atompub_tokens: Arc::default(),
        }
    }

    /// Same context with another publisher.
    pub fn with_publisher(mut self, publisher: Arc<dyn Publisher>) -> Self {
        self.publisher = publisher;
        self
    }
}
