//! The MySQL/MariaDB implementation of [`Store`](super::Store).
//!
//! Sessions run at READ COMMITTED (no gap locks); find-or-create of streams
//! locks the `stream_key` rows with `SELECT ... FOR UPDATE` in key order, and an
//! ingest transaction that hits a deadlock or a lock wait timeout is retried.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlQueryResult};
use sqlx::{Executor, MySql, MySqlPool};
use stv3_event::{Event, Timestamp};

use super::sql::{Dialect, Inserted, Val};
use super::{
    EventQuery, IndexedTrait, IngestReport, IngestRules, Marked, ReadyKind, Store, StoreError,
    StoredEvent, StreamJoin, StreamQuery,
};
use crate::stream::{Stream, StreamState};

type Db = MySql;
type ThisStore = MySqlStore;
const DIALECT: Dialect = Dialect::MySql;
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

/// The MySQL/MariaDB store.
#[derive(Clone, Debug)]
pub struct MySqlStore {
    pool: MySqlPool,
    types: Arc<Mutex<HashMap<String, i64>>>,
    index: Arc<Mutex<super::IndexCache>>,
    /// `innodb_autoinc_lock_mode` <= 1: multi-row inserts get consecutive ids.
    consecutive_ids: bool,
}

fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => match d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            // 1213 deadlock, 1205 lock wait timeout
            Some(m) => matches!(m.number(), 1213 | 1205),
            None => false,
        },
        _ => false,
    }
}

/// The server or the connection went away: the outcome of the statement in
/// flight is unknown (shutdown in progress, connection killed, gone, lost).
fn is_connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(d) => d
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .is_some_and(|m| matches!(m.number(), 1053 | 1927 | 2006 | 2013)),
        _ => false,
    }
}

fn inserted_id(res: &MySqlQueryResult) -> i64 {
    res.last_insert_id() as i64
}

impl MySqlStore {
    /// The id of the first row of a multi-row INSERT of `n` rows: LAST_INSERT_ID,
    /// when `innodb_autoinc_lock_mode` (0 or 1) makes the ids of a simple
    /// multi-row insert consecutive. None with mode 2 (interleaved): re-read them.
    /// Whether [`Self::first_inserted_id`] answers for multi-row inserts.
    fn first_inserted_id_known(&self) -> bool {
        self.consecutive_ids
    }

    fn first_inserted_id(&self, res: &MySqlQueryResult, _n: usize) -> Option<i64> {
        self.consecutive_ids.then(|| res.last_insert_id() as i64)
    }
}

impl MySqlStore {
    /// Connect to a `mysql://` URL with a pool of at most `max_connections`.
    /// Does not migrate.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        // Room for every statement shape of an ingest (see `shaped_chunks`).
        let opts = MySqlConnectOptions::from_str(url)?.statement_cache_capacity(STATEMENT_CACHE);
        let pool = MySqlPoolOptions::new()
            .max_connections(max_connections.max(1))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .await?;
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        // MySQL/MariaDB only; other servers (no such variable) re-read ids.
        let lock_mode: Option<i64> =
            sqlx::query_scalar("SELECT CAST(@@innodb_autoinc_lock_mode AS SIGNED)")
                .fetch_one(&pool)
                .await
                .ok();
        Ok(MySqlStore {
            pool,
            types: Arc::default(),
            index: Arc::default(),
            consecutive_ids: matches!(lock_mode, Some(0 | 1)),
        })
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        self.pool.begin().await
    }

    /// Lock (`FOR UPDATE`) and read the stream_key rows of `keys` into `out`.
    async fn select_keys(
        &self,
        tx: &mut sqlx::Transaction<'static, Db>,
        keys: &[String],
        out: &mut HashMap<String, Option<i64>>,
    ) -> Result<(), StoreError> {
        for chunk in shaped_chunks(keys, CHUNK) {
            let sql = format!(
                "SELECT stream_key, stream_id FROM stream_key WHERE stream_key IN ({}) ORDER BY stream_key{}",
                placeholders(chunk.len()),
                DIALECT.for_update()
            );
            let mut q = sqlx::query(&sql);
            for k in chunk {
                q = q.bind(k.clone());
            }
            for r in q.fetch_all(&mut **tx).await? {
                out.insert(text_col(&r, 0)?, r.try_get(1)?);
            }
        }
        Ok(())
    }

    /// Insert rows (`ncols` values each, flattened) with `head` (`INSERT
    /// [IGNORE] INTO t (cols)`) in the caller's transaction, as multi-row
    /// statements of [`shaped_chunks`] sizes. The ids are known only when
    /// every row went in and the server hands out consecutive ids.
    async fn insert_rows(
        &self,
        tx: &mut sqlx::Transaction<'static, Db>,
        head: &str,
        ncols: usize,
        rows: &[Val<'_>],
    ) -> Result<Inserted, StoreError> {
        let ncols = ncols.max(1);
        let all: Vec<&[Val<'_>]> = rows.chunks(ncols).collect();
        let mut out = Inserted {
            affected: 0,
            ids: Some(Vec::with_capacity(all.len())),
        };
        for chunk in shaped_chunks(&all, CHUNK) {
            let mut qb: QueryBuilder<'_, Db> = QueryBuilder::new(format!("{head} "));
            qb.push_values(chunk, |mut b, row| {
                for v in row.iter() {
                    match *v {
                        Val::Null => b.push_bind(None::<i64>),
                        Val::I(x) => b.push_bind(x),
                        Val::F(x) => b.push_bind(x),
                        Val::S(s) => b.push_bind(s.to_string()),
                    };
                }
            });
            let res = qb.build().execute(&mut **tx).await?;
            out.affected += res.rows_affected();
            match (&mut out.ids, self.first_inserted_id(&res, chunk.len())) {
                (Some(ids), Some(first)) if res.rows_affected() == chunk.len() as u64 => {
                    ids.extend((0..chunk.len() as i64).map(|i| first + i));
                }
                _ => out.ids = None,
            }
        }
        Ok(out)
    }

    /// Write the batch's stream changes: point each key of `pointers` at its
    /// new stream, and store the aggregates of the existing streams in `dirty`.
    async fn write_stream_updates(
        &self,
        tx: &mut sqlx::Transaction<'static, Db>,
        pointers: &[(&str, i64)],
        dirty: &[&Work],
    ) -> Result<(), StoreError> {
        // Over the network: one statement per chunk, `SET col = CASE key WHEN ? THEN ? ... END`.
        for chunk in shaped_chunks(pointers, CHUNK) {
            let mut qb: QueryBuilder<'_, Db> =
                QueryBuilder::new("UPDATE stream_key SET stream_id = CASE stream_key");
            for (k, id) in chunk {
                qb.push(" WHEN ");
                qb.push_bind(k.to_string());
                qb.push(" THEN ");
                qb.push_bind(*id);
            }
            qb.push(" END WHERE stream_key IN (");
            let mut sep = qb.separated(", ");
            for (k, _) in chunk {
                sep.push_bind(k.to_string());
            }
            qb.push(")");
            qb.build().execute(&mut **tx).await?;
        }
        for chunk in shaped_chunks(dirty, CHUNK / 4) {
            let mut qb: QueryBuilder<'_, Db> = QueryBuilder::new("UPDATE stream SET ");
            let columns: [(&str, StreamColumn); 5] = [
                ("first_event", |w| Some(to_micros(&w.agg.first_event))),
                ("last_event", |w| Some(to_micros(&w.agg.last_event))),
                ("expire_timestamp", |w| {
                    w.agg.expire_timestamp.map(|t| to_micros(&t))
                }),
                ("fire_timestamp", |w| {
                    w.agg.fire_timestamp.map(|t| to_micros(&t))
                }),
                ("event_count", |w| Some(w.agg.event_count)),
            ];
            for (col, value) in columns {
                qb.push(col);
                qb.push(" = CASE id");
                for w in chunk {
                    qb.push(" WHEN ")
                        .push_bind(w.id.unwrap_or(0))
                        .push(" THEN ")
                        .push_bind(value(w));
                }
                qb.push(" END, ");
            }
            qb.push("fire_counts = CASE id");
            for w in chunk {
                qb.push(" WHEN ")
                    .push_bind(w.id.unwrap_or(0))
                    .push(" THEN ")
                    .push_bind(w.agg.fire_counts.clone());
            }
            qb.push(" END WHERE id IN (");
            let mut sep = qb.separated(", ");
            for w in chunk {
                sep.push_bind(w.id.unwrap_or(0));
            }
            qb.push(")");
            qb.build().execute(&mut **tx).await?;
        }
        Ok(())
    }
}

/// A stream column's new value, read from the batch's in-memory stream.
type StreamColumn = fn(&Work) -> Option<i64>;

include!("imp.rs");
