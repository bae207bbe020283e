//! The API's own read layer over the winchester schema: the [`ApiStore`]
//! trait (reads plus the two admin writes, delete = purge and reset) and its
//! sqlx implementations for MySQL/MariaDB and SQLite. It never writes on a
//! read path (the original inserted unknown event names on GET).

mod backend;
pub mod sql;
pub mod url;

use std::sync::Arc;

use futures::future::BoxFuture;

pub use backend::{MySqlApiStore, SqliteApiStore};
pub use sql::FilterStyle;

use crate::model::{EventQuery, EventRow, ResetOutcome, StreamQuery, StreamRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("invalid database URL {url:?}: {reason}")]
    Url { url: String, reason: String },
}

impl StoreError {
    /// The database cannot be reached (→ 503 rather than 500).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Sql(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            )
        )
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the REST layer asks of the database.
pub trait ApiStore: Send + Sync {
    /// `mysql` or `sqlite`.
    fn backend(&self) -> &'static str;
    fn find_streams<'a>(&'a self, q: &'a StreamQuery)
        -> BoxFuture<'a, StoreResult<Vec<StreamRow>>>;
    fn count_streams<'a>(&'a self, q: &'a StreamQuery) -> BoxFuture<'a, StoreResult<u64>>;
    fn get_stream(&self, id: i64) -> BoxFuture<'_, StoreResult<Option<StreamRow>>>;
    /// A stream's events ordered by `generated` ascending.
    fn stream_events(&self, id: i64) -> BoxFuture<'_, StoreResult<Vec<EventRow>>>;
    fn find_events<'a>(&'a self, q: &'a EventQuery) -> BoxFuture<'a, StoreResult<Vec<EventRow>>>;
    fn count_events<'a>(&'a self, q: &'a EventQuery) -> BoxFuture<'a, StoreResult<u64>>;
    fn get_event<'a>(&'a self, message_id: &'a str)
        -> BoxFuture<'a, StoreResult<Option<EventRow>>>;
    /// Purge a stream with its dist_trait and streamevent rows (events are kept).
    /// `false` when there is no such stream.
    fn delete_stream(&self, id: i64) -> BoxFuture<'_, StoreResult<bool>>;
    /// error → retry_fire, expire_error → retry_expire, by optimistic lock on `state_serial_no`.
    fn reset_stream(&self, id: i64) -> BoxFuture<'_, StoreResult<ResetOutcome>>;
    /// A trivial round trip (readiness).
    fn ping(&self) -> BoxFuture<'_, StoreResult<()>>;
}

/// Open the store a URL names. Accepts sqlx URLs and the original
/// SQLAlchemy forms (`mysql://`, `mysql+pymysql://`, `sqlite:///rel`, `sqlite:////abs`).
pub async fn connect(
    raw_url: &str,
    max_connections: u32,
    style: FilterStyle,
) -> StoreResult<Arc<dyn ApiStore>> {
    match url::normalize(raw_url)? {
        url::DbUrl::MySql(u) => Ok(Arc::new(
            MySqlApiStore::connect(&u, max_connections, style).await?,
        )),
        url::DbUrl::Sqlite(target) => Ok(Arc::new(
            SqliteApiStore::connect(&target, max_connections, style).await?,
        )),
    }
}
