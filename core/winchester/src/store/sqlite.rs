//! The SQLite implementation of [`Store`](super::Store): the embedded default.
//!
//! WAL journal, `synchronous=FULL` (a returned ingest is durable), 16 KiB pages
//! for new databases (event rows carry a ~1 KB traits document), foreign keys
//! on, a 30 s busy timeout. Writes start with `BEGIN IMMEDIATE`, so the single
//! SQLite writer makes find-or-create of streams atomic without row locks.
//! An in-memory database (`sqlite://`) uses one connection and is migrated on
//! open (it has no other way to get a schema).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Sqlite, SqlitePool};
use stv3_event::{Event, Timestamp};

use super::sql::{Dialect, Inserted, Val};
use super::{
    EventQuery, IndexedTrait, IngestReport, IngestRules, Marked, ReadyKind, Store, StoreError,
    StoredEvent, StreamJoin, StreamQuery,
};
use crate::stream::{Stream, StreamState};

type Db = Sqlite;
type ThisStore = SqliteStore;
const DIALECT: Dialect = Dialect::Sqlite;
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    types: Arc<Mutex<HashMap<String, i64>>>,
    index: Arc<Mutex<super::IndexCache>>,
}

fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            let m = d.message();
            m.contains("database is locked") || m.contains("busy")
        }
        _ => false,
    }
}

/// The database file became unreachable mid-statement (SQLite has no server
/// to lose; only I/O errors and a dead worker thread leave the outcome unknown).
fn is_connection_lost(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed
    )
}

fn inserted_id(res: &SqliteQueryResult) -> i64 {
    res.last_insert_rowid()
}

impl SqliteStore {
    /// The id of the first row of a multi-row INSERT of `n` rows. The single
    /// SQLite writer assigns consecutive rowids in VALUES order.
    /// Whether [`Self::first_inserted_id`] answers for multi-row inserts.
    fn first_inserted_id_known(&self) -> bool {
        true
    }

    fn first_inserted_id(&self, res: &SqliteQueryResult, n: usize) -> Option<i64> {
        Some(res.last_insert_rowid() - n as i64 + 1)
    }
}

impl SqliteStore {
    /// Connect to an sqlx-form SQLite URL (see [`super::url`]). Creates the file
    /// if missing; does not migrate (except an in-memory database).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // Room for every statement shape of an ingest (see `shaped_chunks`).
            .statement_cache_capacity(STATEMENT_CACHE)
            // 64 MiB page cache per connection: a batch's index pages stay in memory.
            .page_size(16384)
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory");
        let opts = if memory {
            opts
        } else {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
        };
        let pool = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(opts)
                .await?
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await?
        };
        let store = SqliteStore {
            pool,
            types: Arc::default(),
            index: Arc::default(),
        };
        if memory {
            store.migrate().await?;
        }
        Ok(store)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Insert rows (`ncols` values each, flattened) with `head` (`INSERT
    /// [OR IGNORE] INTO t (cols)`) in the caller's transaction, one prepared
    /// statement stepped per row on the connection's handle ([`super::sqlite_rows`]).
    async fn insert_rows(
        &self,
        tx: &mut sqlx::Transaction<'static, Db>,
        head: &str,
        ncols: usize,
        rows: &[Val<'_>],
    ) -> Result<Inserted, StoreError> {
        if rows.is_empty() {
            return Ok(Inserted {
                affected: 0,
                ids: Some(Vec::new()),
            });
        }
        let mut handle = tx.lock_handle().await?;
        let db = handle.as_raw_handle();
        // SAFETY: the locked handle gives this thread the connection until it drops.
        let run = || unsafe { super::sqlite_rows::insert_rows(db, head, ncols, rows) };
        // The rows are written on this thread, not on the connection's worker:
        // on a multi-threaded runtime tell the scheduler this task blocks.
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let res = if multi {
            tokio::task::block_in_place(run)
        } else {
            run()
        };
        Ok(res?)
    }
}

include!("imp.rs");
