//! The two sqlx implementations of [`ApiStore`](super::ApiStore). The SQL is
//! shared ([`super::sql`]); a macro stamps out the same code for the MySQL
//! and the SQLite pool types.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use sqlx::Row;
use stv3_event::stored::decode_traits;
use stv3_event::{from_micros, SmolStr, TraitValue};

use super::sql::{self, Bind, FilterStyle, Sql};
use super::url::SqliteTarget;
use super::{ApiStore, StoreError, StoreResult};
use crate::model::{
    DistValue, EventQuery, EventRow, ResetOutcome, StreamQuery, StreamRow, StreamState,
};

fn trait_value(
    kind: i64,
    s: Option<String>,
    f: Option<f64>,
    i: Option<i64>,
    dt: Option<i64>,
) -> Option<TraitValue> {
    match kind {
        1 => s.map(|s| TraitValue::Text(s.into())),
        2 => i.map(TraitValue::Int),
        3 => f.map(TraitValue::Float),
        4 => dt.map(|t| TraitValue::Datetime(from_micros(t))),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn dist_value(
    kind: i64,
    s: Option<String>,
    f: Option<f64>,
    i: Option<i64>,
    dt: Option<i64>,
    begin: Option<i64>,
    end: Option<i64>,
) -> DistValue {
    if kind == 5 {
        return DistValue::Range {
            begin: begin.map(from_micros),
            end: end.map(from_micros),
        };
    }
    trait_value(kind, s, f, i, dt)
        .map(DistValue::Value)
        .unwrap_or(DistValue::Null)
}

/// How long the ready indexed trait names are trusted. A stale list is still
/// correct: a name not known as ready is filtered through the index rows OR
/// the traits documents.
const READY_TTL: Duration = Duration::from_secs(5);

/// Cache of `indexed_trait` names with `ready <> 0`.
#[derive(Default)]
struct ReadyIndex {
    read_at: Option<Instant>,
    names: Arc<HashSet<String>>,
}

macro_rules! api_store {
    ($name:ident, $db:ty, $pool:ty, $backend:literal) => {
        /// [`ApiStore`] over a sqlx pool.
        #[derive(Clone)]
        pub struct $name {
            pool: $pool,
            style: FilterStyle,
            ready: Arc<Mutex<ReadyIndex>>,
        }

        impl $name {
            pub fn from_pool(pool: $pool, style: FilterStyle) -> Self {
                $name { pool, style, ready: Arc::default() }
            }

            /// The ready indexed trait names (re-read after `READY_TTL`).
            async fn ready_index(&self) -> StoreResult<Arc<HashSet<String>>> {
                {
                    let c = self.ready.lock().unwrap_or_else(|e| e.into_inner());
                    if c.read_at.is_some_and(|t| t.elapsed() < READY_TTL) {
                        return Ok(c.names.clone());
                    }
                }
                let rows = sqlx::query("SELECT name FROM indexed_trait WHERE ready <> 0").fetch_all(&self.pool).await?;
                let names = Arc::new(rows.iter().map(|r| Self::text(r, 0)).collect::<Result<HashSet<_>, _>>()?);
                let mut c = self.ready.lock().unwrap_or_else(|e| e.into_inner());
                c.read_at = Some(Instant::now());
                c.names = names.clone();
                Ok(names)
            }

            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            /// A query of the shared SQL. Only key lookups keep their prepared
            /// statement on MySQL/MariaDB ([`Self::REUSE_PREPARED`]).
            fn query<'q>(s: &'q Sql) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
                let mut q = sqlx::query(&s.text).persistent(Self::REUSE_PREPARED || s.by_key);
                for b in &s.binds {
                    q = match b {
                        Bind::I(v) => q.bind(*v),
                        Bind::F(v) => q.bind(*v),
                        Bind::S(v) => q.bind(v.as_str()),
                    };
                }
                q
            }

            /// The rows of a read. On MySQL/MariaDB a read that is not a key
            /// lookup goes as one text-protocol query with its values written
            /// in ([`Sql::inlined_mysql`]); everything else is a prepared
            /// statement ([`Self::query`]).
            async fn rows(&self, s: &Sql) -> Result<Vec<<$db as sqlx::Database>::Row>, sqlx::Error> {
                if Self::INLINE_READS && !s.by_key {
                    if let Some(text) = s.inlined_mysql() {
                        return sqlx::raw_sql(&text).fetch_all(&self.pool).await;
                    }
                }
                Self::query(s).fetch_all(&self.pool).await
            }

            /// The single number a count query returns.
            async fn count(&self, s: &Sql) -> StoreResult<u64> {
                let row = self.rows(s).await?.into_iter().next().ok_or(sqlx::Error::RowNotFound)?;
                let n: i64 = row.try_get(0)?;
                Ok(n.max(0) as u64)
            }

            /// Text columns: MySQL reports `utf8mb4_bin` columns as VARBINARY, so
            /// the column type is not checked; the bytes are read in place and
            /// must be UTF-8 (anything else is decoded lossily, never an error).
            fn opt_text(r: &<$db as sqlx::Database>::Row, idx: usize) -> Result<Option<String>, sqlx::Error> {
                match r.try_get_unchecked::<Option<&str>, _>(idx) {
                    Ok(s) => Ok(s.map(str::to_owned)),
                    Err(_) => r
                        .try_get_unchecked::<Option<&[u8]>, _>(idx)
                        .map(|b| b.map(|b| String::from_utf8_lossy(b).into_owned())),
                }
            }

            fn text(r: &<$db as sqlx::Database>::Row, idx: usize) -> Result<String, sqlx::Error> {
                Self::opt_text(r, idx)?.ok_or_else(|| sqlx::Error::ColumnDecode {
                    index: idx.to_string(),
                    source: "unexpected NULL in a text column".into(),
                })
            }

            fn stream_row(r: &<$db as sqlx::Database>::Row) -> Result<StreamRow, sqlx::Error> {
                Ok(StreamRow {
                    id: r.try_get(0)?,
                    name: Self::text(r, 1)?,
                    state: r.try_get(2)?,
                    first_event: from_micros(r.try_get(3)?),
                    last_event: from_micros(r.try_get(4)?),
                    fire_timestamp: r.try_get::<Option<i64>, _>(5)?.map(from_micros),
                    expire_timestamp: r.try_get::<Option<i64>, _>(6)?.map(from_micros),
                    dist_traits: Vec::new(),
                })
            }

            /// An event row; its traits come from its traits document, or are
            /// left to [`Self::fill_legacy_traits`] (`false`) when it has none.
            fn event_row(r: &<$db as sqlx::Database>::Row) -> Result<(EventRow, bool), sqlx::Error> {
                let message_id = Self::text(r, 1)?;
                let doc = Self::opt_text(r, 4)?;
                let traits = match &doc {
                    Some(d) => decode_traits(d)
                        .map_err(|e| sqlx::Error::Decode(format!("event {message_id}: {e}").into()))?
                        .into_iter()
                        .map(|(n, v)| (n, Some(v)))
                        .collect(),
                    None => Vec::new(),
                };
                Ok((
                    EventRow { id: r.try_get(0)?, message_id, generated: from_micros(r.try_get(2)?), event_type: Self::text(r, 3)?, traits },
                    doc.is_some(),
                ))
            }

            async fn fill_dist_traits(&self, rows: &mut [StreamRow]) -> StoreResult<()> {
                if rows.is_empty() {
                    return Ok(());
                }
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                let s = sql::dist_traits_for(&ids);
                let mut by_id: HashMap<i64, Vec<(String, DistValue)>> = HashMap::new();
                for r in self.rows(&s).await? {
                    let v = dist_value(
                        r.try_get(2)?,
                        Self::opt_text(&r, 3)?,
                        r.try_get(4)?,
                        r.try_get(5)?,
                        r.try_get(6)?,
                        r.try_get(7)?,
                        r.try_get(8)?,
                    );
                    by_id.entry(r.try_get(0)?).or_default().push((Self::text(&r, 1)?, v));
                }
                for row in rows.iter_mut() {
                    row.dist_traits = by_id.remove(&row.id).unwrap_or_default();
                }
                Ok(())
            }

            /// Traits from rows, for events stored before traits documents.
            async fn fill_legacy_traits(&self, rows: &mut [EventRow], legacy: &[i64]) -> StoreResult<()> {
                if legacy.is_empty() {
                    return Ok(());
                }
                let mut by_id: HashMap<i64, Vec<(SmolStr, Option<TraitValue>)>> = HashMap::new();
                for ids in legacy.chunks(1000) {
                    let s = sql::traits_for(ids);
                    for r in self.rows(&s).await? {
                        let v = trait_value(r.try_get(2)?, Self::opt_text(&r, 3)?, r.try_get(4)?, r.try_get(5)?, r.try_get(6)?);
                        by_id.entry(r.try_get(0)?).or_default().push((Self::text(&r, 1)?.into(), v));
                    }
                }
                for row in rows.iter_mut() {
                    if let Some(t) = by_id.remove(&row.id) {
                        row.traits = t;
                    }
                }
                Ok(())
            }

            async fn streams_impl(&self, q: &StreamQuery) -> StoreResult<Vec<StreamRow>> {
                if q.limit == 0 {
                    return Ok(Vec::new());
                }
                let s = match q.traits.first() {
                    None => sql::streams(q, false, self.style),
                    Some(f) => {
                        let ranges = match f.datetime {
                            Some(t) => {
                                let starts = self
                                    .rows(&sql::range_starts(&f.name, t))
                                    .await?
                                    .iter()
                                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                                    .collect::<Result<Vec<_>, sqlx::Error>>()?;
                                sql::ranges_containing(&starts, t)
                            }
                            None => Vec::new(),
                        };
                        sql::streams_page(q, self.style, &ranges, Self::DIALECT)
                    }
                };
                let mut rows = self
                    .rows(&s)
                    .await?
                    .iter()
                    .map(Self::stream_row)
                    .collect::<Result<Vec<_>, _>>()?;
                self.fill_dist_traits(&mut rows).await?;
                Ok(rows)
            }

            async fn count_streams_impl(&self, q: &StreamQuery) -> StoreResult<u64> {
                self.count(&sql::streams(q, true, self.style)).await
            }

            async fn get_stream_impl(&self, id: i64) -> StoreResult<Option<StreamRow>> {
                let s = sql::stream_by_id(id);
                let Some(r) = self.rows(&s).await?.into_iter().next() else { return Ok(None) };
                let mut rows = vec![Self::stream_row(&r)?];
                self.fill_dist_traits(&mut rows).await?;
                Ok(rows.pop())
            }

            async fn events_from(&self, s: &Sql) -> StoreResult<Vec<EventRow>> {
                let mut rows = Vec::new();
                let mut legacy = Vec::new();
                for r in self.rows(s).await? {
                    let (row, has_doc) = Self::event_row(&r)?;
                    if !has_doc {
                        legacy.push(row.id);
                    }
                    rows.push(row);
                }
                self.fill_legacy_traits(&mut rows, &legacy).await?;
                Ok(rows)
            }

            async fn events_impl(&self, q: &EventQuery) -> StoreResult<Vec<EventRow>> {
                if q.limit == 0 {
                    return Ok(Vec::new());
                }
                let ready = self.ready_index().await?;
                self.events_from(&sql::events(q, false, self.style, &ready, Self::DIALECT)).await
            }

            async fn count_events_impl(&self, q: &EventQuery) -> StoreResult<u64> {
                let ready = self.ready_index().await?;
                self.count(&sql::events(q, true, self.style, &ready, Self::DIALECT)).await
            }

            async fn get_event_impl(&self, message_id: &str) -> StoreResult<Option<EventRow>> {
                Ok(self.events_from(&sql::event_by_message_id(message_id)).await?.pop())
            }

            async fn delete_impl(&self, id: i64) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let key: Option<Option<String>> = sqlx::query("SELECT stream_key FROM stream WHERE id = ?")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| Self::opt_text(&r, 0))
                    .transpose()?;
                let Some(key) = key else {
                    tx.rollback().await?;
                    return Ok(false);
                };
                sqlx::query("DELETE FROM streamevent WHERE stream_id = ?").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM dist_trait WHERE stream_id = ?").bind(id).execute(&mut *tx).await?;
                if let Some(key) = key {
                    // The stream no longer exists: the ingest key must not point at it.
                    sqlx::query("UPDATE stream_key SET stream_id = NULL WHERE stream_key = ? AND stream_id = ?")
                        .bind(key)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                let n = sqlx::query("DELETE FROM stream WHERE id = ?").bind(id).execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(n == 1)
            }

            async fn reset_impl(&self, id: i64) -> StoreResult<ResetOutcome> {
                let Some(r) = sqlx::query("SELECT state, state_serial_no FROM stream WHERE id = ?")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                else {
                    return Ok(ResetOutcome::NotFound);
                };
                let state: i64 = r.try_get(0)?;
                let serial: i64 = r.try_get(1)?;
                let Some(target) = StreamState::from_code(state).and_then(StreamState::reset_target) else {
                    return Ok(ResetOutcome::Unchanged { state });
                };
                let n = sqlx::query(
                    "UPDATE stream SET state = ?, state_serial_no = state_serial_no + 1, lease_expires = NULL \
                     WHERE id = ? AND state_serial_no = ? AND state = ?",
                )
                .bind(target.code())
                .bind(id)
                .bind(serial)
                .bind(state)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(if n == 1 { ResetOutcome::Reset { from: state, to: i64::from(target.code()) } } else { ResetOutcome::Conflict })
            }
        }

        impl ApiStore for $name {
            fn backend(&self) -> &'static str {
                $backend
            }
            fn find_streams<'a>(&'a self, q: &'a StreamQuery) -> BoxFuture<'a, StoreResult<Vec<StreamRow>>> {
                self.streams_impl(q).boxed()
            }
            fn count_streams<'a>(&'a self, q: &'a StreamQuery) -> BoxFuture<'a, StoreResult<u64>> {
                self.count_streams_impl(q).boxed()
            }
            fn get_stream(&self, id: i64) -> BoxFuture<'_, StoreResult<Option<StreamRow>>> {
                self.get_stream_impl(id).boxed()
            }
            fn stream_events(&self, id: i64) -> BoxFuture<'_, StoreResult<Vec<EventRow>>> {
                async move { self.events_from(&sql::stream_events(id)).await }.boxed()
            }
            fn find_events<'a>(&'a self, q: &'a EventQuery) -> BoxFuture<'a, StoreResult<Vec<EventRow>>> {
                self.events_impl(q).boxed()
            }
            fn count_events<'a>(&'a self, q: &'a EventQuery) -> BoxFuture<'a, StoreResult<u64>> {
                self.count_events_impl(q).boxed()
            }
            fn get_event<'a>(&'a self, message_id: &'a str) -> BoxFuture<'a, StoreResult<Option<EventRow>>> {
                self.get_event_impl(message_id).boxed()
            }
            fn delete_stream(&self, id: i64) -> BoxFuture<'_, StoreResult<bool>> {
                self.delete_impl(id).boxed()
            }
            fn reset_stream(&self, id: i64) -> BoxFuture<'_, StoreResult<ResetOutcome>> {
                self.reset_impl(id).boxed()
            }
            fn ping(&self) -> BoxFuture<'_, StoreResult<()>> {
                async move {
                    sqlx::query("SELECT 1").execute(&self.pool).await?;
                    Ok(())
                }
                .boxed()
            }
        }
    };
}

api_store!(MySqlApiStore, sqlx::MySql, sqlx::MySqlPool, "mysql");
api_store!(SqliteApiStore, sqlx::Sqlite, sqlx::SqlitePool, "sqlite");

impl MySqlApiStore {
    const DIALECT: sql::Dialect = sql::Dialect::MySql;
    /// MariaDB plans a prepared statement well when it first runs and, for the
    /// API's derived-table pages and the loose-scan range lookup, worse on every
    /// re-execution (measured on 1 M events: a tenant's page 1.7 ms, then 20 ms;
    /// the range lookup 0.9 ms, then 85 ms). So no read reuses a plan: reads
    /// go inlined ([`Self::INLINE_READS`]; a prepared statement is made and
    /// closed only when a value has no literal), except key lookups
    /// (`Sql::by_key`: one plan whatever the values), which the latency
    /// prober and the page fills repeat thousands of times.
    const REUSE_PREPARED: bool = false;
    /// Reads other than key lookups go as text-protocol queries with their
    /// values inlined: one round trip, no statement to prepare and close
    /// (see [`Sql::inlined_mysql`]).
    const INLINE_READS: bool = true;
}

impl SqliteApiStore {
    const DIALECT: sql::Dialect = sql::Dialect::Sqlite;
    const REUSE_PREPARED: bool = true;
    /// SQLite runs in process: prepared statements cost no round trip.
    const INLINE_READS: bool = false;
}

impl MySqlApiStore {
    pub async fn connect(url: &str, max_connections: u32, style: FilterStyle) -> StoreResult<Self> {
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // An index-merge intersection of (state, id) and (name, id) plus a
                    // filesort is far slower than walking one index in id order.
                    sqlx::Executor::execute(
                        &mut *conn,
                        "SET SESSION optimizer_switch = 'index_merge_intersection=off'",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        Ok(Self::from_pool(pool, style))
    }
}

impl SqliteApiStore {
    pub async fn connect(
        target: &SqliteTarget,
        max_connections: u32,
        style: FilterStyle,
    ) -> StoreResult<Self> {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
        let (opts, max) = match target {
            SqliteTarget::Memory => (SqliteConnectOptions::new().in_memory(true), 1),
            SqliteTarget::File(path) => {
                if !path.exists() {
                    return Err(StoreError::Url {
                        url: format!("sqlite:{}", path.display()),
                        reason: "no such database file".into(),
                    });
                }
                (
                    SqliteConnectOptions::new().filename(path),
                    max_connections.max(1),
                )
            }
        };
        let opts = opts.foreign_keys(true).busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(opts)
            .await?;
        Ok(Self::from_pool(pool, style))
    }
}
