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

    /// Run the single-row statement `sql` (`ncols` parameters) once per row
    /// of `rows` in the caller's transaction: a round trip per row, so the
    /// ingest uses multi-row statements on MySQL instead; this exists for the
    /// code shared with SQLite, which steps rows in process.
    async fn step_rows(
        &self,
        tx: &mut sqlx::Transaction<'static, Db>,
        sql: &str,
        ncols: usize,
        rows: &[Val<'_>],
    ) -> Result<Inserted, StoreError> {
        let mut affected = 0;
        for row in rows.chunks(ncols.max(1)) {
            let mut q = sqlx::query(sql);
            for v in row {
                q = match *v {
                    Val::Null => q.bind(None::<i64>),
                    Val::I(x) => q.bind(x),
                    Val::F(x) => q.bind(x),
                    Val::S(s) => q.bind(s.to_string()),
                };
            }
            affected += q.execute(&mut **tx).await?.rows_affected();
        }
        Ok(Inserted {
            affected,
            ids: None,
        })
    }
}

include!("imp.rs");
