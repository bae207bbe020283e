//! yagi: the ingest worker (`yagi-event`).
//!
//! * [`ini`], [`config`]: yagi.conf (the original ini format) into typed settings.
//! * [`parse`]: poison detection and the archive line (pure).
//! * [`payload_filter`]: yagi's `[filter:NAME]` payload rewrites (pure).
//! * [`chain`]: the handler chain (quarantine → archive → store → ack) and its runner,
//!   with the [`chain::Source`], [`chain::RawArchive`] and [`chain::EventSink`] traits.
//! * [`dedupe`]: recently archived message_ids (archive exactly-once).
//! * [`quarantine`]: poison messages to `quarantine.jsonl` and `<queue>.quarantine`.
//! * [`source`]: the AMQP source and the file/stdin source.
//! * [`handlers`]: the real archive (stv3-archive) and store (stv3-winchester) adapters.
//! * [`worker`]: builds and runs every consumer of a config in one process.

pub mod chain;
pub mod config;
pub mod dedupe;
pub mod handlers;
pub mod ini;
pub mod parse;
pub mod payload_filter;
pub mod quarantine;
pub mod source;
pub mod worker;
