//! The sqlite implementation of [`Store`](super::Store).

use std::collections::BTreeMap;

use sqlx::SqlitePool;
use stv3_event::{Event, Timestamp};

use super::{EventQuery, IngestReport, IngestRules, Marked, ReadyKind, Store, StoreError, StoredEvent, StreamQuery};
use crate::stream::{Stream, StreamState};

/// The sqlite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Connect to an sqlx-form URL (see [`super::url`]). Does not migrate.
    pub async fn connect(_url: &str) -> Result<Self, StoreError> {
        todo!()
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[allow(unused_variables)]
impl Store for SqliteStore {
    async fn check_schema(&self) -> Result<(), StoreError> {
        todo!()
    }
    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        todo!()
    }
    async fn migration_history(&self) -> Result<Vec<(i64, String)>, StoreError> {
        todo!()
    }
    async fn ingest(&self, events: &[Event], rules: &dyn IngestRules, now: Timestamp) -> Result<IngestReport, StoreError> {
        todo!()
    }
    async fn event_type_ids(&self, names: &[String]) -> Result<BTreeMap<String, i64>, StoreError> {
        todo!()
    }
    async fn get_event_by_message_id(&self, message_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        todo!()
    }
    async fn get_stream_by_id(&self, id: i64) -> Result<Option<Stream>, StoreError> {
        todo!()
    }
    async fn get_active_stream(&self, key: &str, now: Timestamp) -> Result<Option<Stream>, StoreError> {
        todo!()
    }
    async fn get_stream_events(&self, stream_id: i64) -> Result<Vec<StoredEvent>, StoreError> {
        todo!()
    }
    async fn ready_streams(&self, kind: ReadyKind, now: Timestamp, limit: u32) -> Result<Vec<Stream>, StoreError> {
        todo!()
    }
    async fn claim_stream(&self, stream: &Stream, to: StreamState, lease_until: Timestamp) -> Result<Stream, StoreError> {
        todo!()
    }
    async fn renew_lease(&self, claimed: &Stream, lease_until: Timestamp) -> Result<(), StoreError> {
        todo!()
    }
    async fn complete_stream(&self, claimed: &Stream, purge: bool) -> Result<(), StoreError> {
        todo!()
    }
    async fn error_stream(&self, claimed: &Stream) -> Result<(), StoreError> {
        todo!()
    }
    async fn set_stream_state(&self, stream: &Stream, to: StreamState) -> Result<Stream, StoreError> {
        todo!()
    }
    async fn reset_stream(&self, id: i64) -> Result<Stream, StoreError> {
        todo!()
    }
    async fn purge_stream(&self, id: i64) -> Result<bool, StoreError> {
        todo!()
    }
    async fn find_older_events(&self, before: Timestamp, limit: u32) -> Result<Vec<i64>, StoreError> {
        todo!()
    }
    async fn purge_events(&self, ids: &[i64]) -> Result<u64, StoreError> {
        todo!()
    }
    async fn find_streams(&self, q: &StreamQuery) -> Result<Vec<Marked<Stream>>, StoreError> {
        todo!()
    }
    async fn count_streams(&self, q: &StreamQuery) -> Result<u64, StoreError> {
        todo!()
    }
    async fn find_events(&self, q: &EventQuery) -> Result<Vec<Marked<StoredEvent>>, StoreError> {
        todo!()
    }
    async fn count_events(&self, q: &EventQuery) -> Result<u64, StoreError> {
        todo!()
    }
}
