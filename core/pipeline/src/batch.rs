//! Batched claim/finish of streams: the same optimistic lock and lease as
//! `Store::claim_stream` / `complete_stream` / `error_stream`, but many streams
//! per transaction, so one commit (one fsync) covers a whole chunk. On MariaDB
//! with `innodb_flush_log_at_trx_commit=1` a commit costs milliseconds; per-stream
//! commits cap a worker at a few hundred streams/s.
//!
//! This belongs in `stv3-winchester`'s `Store` trait (`claim_streams`,
//! `finish_streams`); until it is there, [`BatchStore`] implements it for
//! [`AnyStore`] over the store's pool, with the same SQL and semantics.

use std::future::Future;

use stv3_event::{to_micros, Timestamp};
use stv3_winchester::{AnyStore, Store, StoreError, Stream, StreamState};

/// How a claimed stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Pipeline done: purge (delete stream, dist traits, links) or state `completed`.
    Complete { purge: bool },
    /// Pipeline failed: `error` (from firing) or `expire_error` (from expiring).
    Error,
}

/// Many-streams-per-transaction claim and finish.
pub trait BatchStore: Store {
    /// Claim each stream (serial check) in ONE transaction. Per stream: the claimed
    /// stream, or `None` if another worker holds it.
    fn claim_many(
        &self,
        streams: &[Stream],
        to: StreamState,
        lease_until: Timestamp,
    ) -> impl Future<Output = Result<Vec<Option<Stream>>, StoreError>> + Send;

    /// Finish claimed streams in ONE transaction. Returns, per stream, whether the
    /// claim was still held (false: the lease was lost and someone else has it).
    fn finish_many(
        &self,
        items: &[(Stream, Finish)],
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;
}

fn error_state(claimed: &Stream) -> StreamState {
    match claimed.state {
        StreamState::Expiring | StreamState::RetryExpire | StreamState::ExpireError => {
            StreamState::ExpireError
        }
        _ => StreamState::Error,
    }
}

macro_rules! batch_impl {
    ($pool:expr, $begin:expr, $streams_or_items:ident, claim, $to:expr, $lease:expr) => {{
        let mut tx = $begin;
        let mut out = Vec::with_capacity($streams_or_items.len());
        for s in $streams_or_items {
            let res = sqlx::query(
                "UPDATE stream SET state = ?, state_serial_no = state_serial_no + 1, lease_expires = ? \
                 WHERE id = ? AND state_serial_no = ?",
            )
            .bind($to.code() as i64)
            .bind(to_micros(&$lease))
            .bind(s.id)
            .bind(s.state_serial_no as i64)
            .execute(&mut *tx)
            .await?;
            out.push((res.rows_affected() == 1).then(|| {
                let mut c = s.clone();
                c.state = $to;
                c.state_serial_no += 1;
                c.lease_expires = Some($lease);
                c
            }));
        }
        tx.commit().await?;
        Ok(out)
    }};
    ($pool:expr, $begin:expr, $items:ident, finish) => {{
        let mut tx = $begin;
        let mut out = Vec::with_capacity($items.len());
        let mut purge_ids = Vec::new();
        for (claimed, fin) in $items {
            let to = match fin {
                Finish::Complete { .. } => StreamState::Completed,
                Finish::Error => error_state(claimed),
            };
            let res = sqlx::query(
                "UPDATE stream SET state = ?, state_serial_no = state_serial_no + 1, lease_expires = NULL \
                 WHERE id = ? AND state_serial_no = ?",
            )
            .bind(to.code() as i64)
            .bind(claimed.id)
            .bind(claimed.state_serial_no as i64)
            .execute(&mut *tx)
            .await?;
            let held = res.rows_affected() == 1;
            if held && matches!(fin, Finish::Complete { purge: true }) {
                purge_ids.push(claimed.id);
            }
            out.push(held);
        }
        if !purge_ids.is_empty() {
            let list = purge_ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
            for table_col in ["streamevent WHERE stream_id", "dist_trait WHERE stream_id", "stream WHERE id"] {
                sqlx::query(&format!("DELETE FROM {table_col} IN ({list})")).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(out)
    }};
}

impl BatchStore for AnyStore {
    async fn claim_many(
        &self,
        streams: &[Stream],
        to: StreamState,
        lease_until: Timestamp,
    ) -> Result<Vec<Option<Stream>>, StoreError> {
        match self {
            AnyStore::MySql(s) => batch_impl!(
                s.pool(),
                s.pool().begin().await?,
                streams,
                claim,
                to,
                lease_until
            ),
            AnyStore::Sqlite(s) => {
                batch_impl!(
                    s.pool(),
                    s.pool().begin_with("BEGIN IMMEDIATE").await?,
                    streams,
                    claim,
                    to,
                    lease_until
                )
            }
        }
    }

    async fn finish_many(&self, items: &[(Stream, Finish)]) -> Result<Vec<bool>, StoreError> {
        match self {
            AnyStore::MySql(s) => batch_impl!(s.pool(), s.pool().begin().await?, items, finish),
            AnyStore::Sqlite(s) => batch_impl!(
                s.pool(),
                s.pool().begin_with("BEGIN IMMEDIATE").await?,
                items,
                finish
            ),
        }
    }
}
