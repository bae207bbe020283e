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
    /// The connection of write transactions ([`Self::begin_write`]): always the
    /// same one, so its page cache stays warm (in WAL mode a connection drops
    /// its cache when another connection wrote since it last read).
    writer: SqlitePool,
    /// Held by every clone; the background checkpointer stops when the last one drops.
    alive: Arc<()>,
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

/// WAL pages after which a commit checkpoints by itself (SQLite's default is
/// 1,000). The background checkpointer keeps the WAL far below this; the
/// limit bounds the WAL should it fall behind.
const WAL_AUTOCHECKPOINT_PAGES: &str = "16384";
/// How often the background checkpointer copies committed WAL frames into
/// the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Checkpoint the WAL (PASSIVE: never blocks the writer or readers) on a pool
/// connection every [`CHECKPOINT_EVERY`], off the writer's commit path: with
/// SQLite's automatic checkpoints the committing ingest paid for copying the
/// WAL into the database file and syncing it.
fn spawn_checkpointer(pool: SqlitePool, alive: std::sync::Weak<()>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if alive.strong_count() == 0 {
                break;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::debug!(error = %e, "background WAL checkpoint failed; retried next tick");
            }
        }
    });
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
                .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
        };
        let one = || {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        };
        let (pool, writer) = if memory {
            let pool = one().connect_with(opts).await?;
            (pool.clone(), pool)
        } else {
            let writer = one().connect_with(opts.clone()).await?;
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await?;
            (pool, writer)
        };
        let store = SqliteStore {
            pool,
            writer,
            types: Arc::default(),
            index: Arc::default(),
            alive: Arc::new(()),
        };
        if memory {
            store.migrate().await?;
        } else {
            spawn_checkpointer(store.pool.clone(), Arc::downgrade(&store.alive));
        }
        Ok(store)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    /// Read the stream_key rows of `keys` into `out` (one indexed lookup per
    /// key on the connection's handle; the writer lock of `BEGIN IMMEDIATE`
    /// already keeps other writers out).
    async fn select_keys(
        &self,
        tx: &mut sqlx::Transaction<'static, Db>,
        keys: &[String],
        out: &mut HashMap<String, Option<i64>>,
    ) -> Result<(), StoreError> {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let found = Self::on_handle(tx, |db| {
            // SAFETY: `db` is the locked handle of `on_handle`.
            unsafe {
                super::sqlite_rows::lookup_ids(
                    db,
                    "SELECT stream_id FROM stream_key WHERE stream_key = ?",
                    &refs,
                )
            }
        })
        .await?;
        for (k, f) in keys.iter().zip(found) {
            if let Some(id) = f {
                out.insert(k.clone(), id);
            }
        }
        Ok(())
    }

    /// Run `f` on the raw handle of the transaction's connection, on this
    /// thread (telling a multi-threaded runtime that the task blocks).
    async fn on_handle<T>(
        tx: &mut sqlx::Transaction<'static, Db>,
        f: impl FnOnce(std::ptr::NonNull<libsqlite3_sys::sqlite3>) -> Result<T, super::SqliteRowError>,
    ) -> Result<T, StoreError> {
        let mut handle = tx.lock_handle().await?;
        let db = handle.as_raw_handle();
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let res = if multi {
            tokio::task::block_in_place(|| f(db))
        } else {
            f(db)
        };
        Ok(res?)
    }

    /// Insert rows (`ncols` values each, flattened) with `head` (`INSERT
    /// [OR IGNORE] INTO t (cols)`) in the caller's transaction: the single-row
    /// `head VALUES (?, ...)` stepped per row ([`Self::step_rows`]).
    async fn insert_rows(
        &self,
        tx: &mut sqlx::Transaction<'static, Db>,
        head: &str,
        ncols: usize,
        rows: &[Val<'_>],
    ) -> Result<Inserted, StoreError> {
        let sql = format!("{head} VALUES ({})", super::sql::placeholders(ncols.max(1)));
        self.step_rows(tx, &sql, ncols, rows).await
    }

    /// Write the batch's stream changes: point each key of `pointers` at its
    /// new stream, and store the aggregates of the existing streams in `dirty`.
    async fn write_stream_updates(
        &self,
        tx: &mut sqlx::Transaction<'static, Db>,
        pointers: &[(&str, i64)],
        dirty: &[&Work],
    ) -> Result<(), StoreError> {
        // In process: one prepared single-row UPDATE per row (see `step_rows`).
        let vals: Vec<Val<'_>> = pointers
            .iter()
            .flat_map(|(k, id)| [Val::I(*id), Val::S(k)])
            .collect();
        self.step_rows(
            tx,
            "UPDATE stream_key SET stream_id = ? WHERE stream_key = ?",
            2,
            &vals,
        )
        .await?;
        let mut vals: Vec<Val<'_>> = Vec::with_capacity(dirty.len() * 7);
        for w in dirty {
            vals.extend([
                Val::I(to_micros(&w.agg.first_event)),
                Val::I(to_micros(&w.agg.last_event)),
                Val::opt_i(w.agg.expire_timestamp.map(|t| to_micros(&t))),
                Val::opt_i(w.agg.fire_timestamp.map(|t| to_micros(&t))),
                Val::I(w.agg.event_count),
                Val::opt_s(w.agg.fire_counts.as_deref()),
                Val::I(w.id.unwrap_or(0)),
            ]);
        }
        self.step_rows(
            tx,
            "UPDATE stream SET first_event = ?, last_event = ?, expire_timestamp = ?, fire_timestamp = ?, \
             event_count = ?, fire_counts = ? WHERE id = ?",
            7,
            &vals,
        )
        .await?;
        Ok(())
    }

    /// Run the single-row statement `sql` (`ncols` parameters) once per row
    /// of `rows` in the caller's transaction, prepared once and stepped on
    /// the connection's handle: in process, a row costs no round trip, so
    /// this beats one large multi-row statement (whose `CASE id WHEN ...`
    /// lists SQLite scans once per updated row).
    async fn step_rows(
        &self,
        tx: &mut sqlx::Transaction<'static, Db>,
        sql: &str,
        ncols: usize,
        rows: &[Val<'_>],
    ) -> Result<Inserted, StoreError> {
        if rows.is_empty() {
            return Ok(Inserted {
                affected: 0,
                ids: Some(Vec::new()),
            });
        }
        // SAFETY: `db` is the locked handle of `on_handle`.
        Self::on_handle(tx, |db| unsafe {
            super::sqlite_rows::execute_rows(db, sql, ncols, rows)
        })
        .await
    }
}

include!("imp.rs");
