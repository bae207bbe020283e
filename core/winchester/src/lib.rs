//! winchester: triggers, streams and pipelines over a SQL event store (MySQL/MariaDB or SQLite).
//!
//! * [`config`]: `winchester.yaml` and `triggers.yaml` loaders (every error names file, line and key).
//! * [`criteria`], [`trigger`]: pure trigger logic (matching, distinguishing traits,
//!   expiration, incremental fire criteria).
//! * [`debugger`]: per-trigger debug counters with the original names (§4.13).
//! * [`stream`]: stream states, rows and the stream key.
//! * [`store`]: the async [`store::Store`] trait and its sqlx SQLite and MySQL implementations.
//! * [`trigger_manager`]: the ingest side (`add_notification`, `add_events`).

pub mod config;
pub mod criteria;
pub mod debugger;
pub mod store;
pub mod stream;
pub mod timexpr;
pub mod trigger;
pub mod trigger_manager;
pub mod yaml;

pub use config::{ConfigError, DatabaseConfig, WinchesterConfig};
pub use store::{
    AnyStore, EventQuery, Finish, IngestReport, Store, StoreError, StoredEvent, StreamQuery,
};
pub use stream::{DistTraits, DistValue, Stream, StreamState};
pub use trigger::{TriggerDefinition, TriggerSet};
pub use trigger_manager::{ingest_clock, NotificationConverter, TriggerManager};
