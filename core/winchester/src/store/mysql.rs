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

use super::sql::Dialect;
use super::{
    EventQuery, IndexedTrait, IngestReport, IngestRules, Marked, ReadyKind, Store, StoreError, StoredEvent,
    StreamJoin, StreamQuery,
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

fn inserted_id(res: &MySqlQueryResult) -> i64 {
    res.last_insert_id() as i64
}

impl MySqlStore {
    /// Connect to a `mysql://` URL. Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let opts = MySqlConnectOptions::from_str(url)?;
        let pool = MySqlPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .await?;
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        Ok(MySqlStore {
            pool,
            types: Arc::default(),
            index: Arc::default(),
        })
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        self.pool.begin().await
    }
}

include!("imp.rs");
