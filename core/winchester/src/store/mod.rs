//! The event/stream store: the async [`Store`] trait, its query and report
//! types, and two sqlx implementations ([`SqliteStore`], the embedded default,
//! and [`MySqlStore`]). [`AnyStore`] picks one from a URL.
//!
//! Invariants kept here:
//! * every write of [`Store::ingest`] is one transaction, durable on return;
//! * events are idempotent on `message_id` (duplicates are reported, not errors);
//! * the active stream for a stream key is found or created under the
//!   `stream_key` row lock, so concurrent ingesters never split a stream;
//! * a worker claims a stream with the optimistic `state_serial_no` update plus a
//!   lease; completing or failing it requires the serial of the claim.

use std::collections::BTreeMap;
use std::future::Future;

use stv3_event::{Event, Timestamp, TraitValue};

use crate::stream::{DistTraits, DistValue, Stream, StreamState};

mod mysql;
mod sql;
mod sqlite;
mod sqlite_rows;
pub mod url;

pub use mysql::MySqlStore;
pub use sqlite::SqliteStore;
pub use sqlite_rows::SqliteRowError;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database url {url:?}: {reason}")]
    Url { url: String, reason: String },
    /// The schema is older than this build expects: run `winchester-db upgrade`.
    #[error("database schema is behind (applied {applied:?}, expected {expected}): run `winchester-db --config <winchester.yaml> upgrade`")]
    SchemaBehind { applied: Option<i64>, expected: i64 },
    /// The optimistic lock or the lease was lost (another worker has the stream).
    #[error("stream {stream_id}: lock lost (serial {serial} is stale)")]
    Locked { stream_id: i64, serial: i32 },
    #[error("stream {0} not found")]
    StreamNotFound(i64),
    /// A trigger rule failed while updating a stream (e.g. expiration not computable).
    #[error("stream update for trigger {trigger:?}, event {message_id}: {reason}")]
    Rule {
        trigger: String,
        message_id: String,
        reason: String,
    },
    #[error("invalid mark {0:?} (expected hex id, optionally prefixed by '+' or '-')")]
    BadMark(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// An error of the SQLite bulk-insert path (see `sqlite_rows`).
    #[error(transparent)]
    Sqlite(#[from] sqlite_rows::SqliteRowError),
}

/// An event read back from the store, with its row id (for `_mark` paging).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub event: Event,
}

/// What one call to [`Store::ingest`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Events handed in.
    pub received: usize,
    /// Events newly saved.
    pub saved: usize,
    /// message_ids that were already stored (or repeated within the batch); not processed further.
    pub duplicates: Vec<String>,
    /// Events dropped as invalid (e.g. no traits), with the reason.
    pub invalid: Vec<(String, String)>,
    /// Streams created.
    pub new_streams: usize,
    /// (stream, event) links added.
    pub stream_events: usize,
    /// Streams that became ready to fire.
    pub ready_to_fire: usize,
}

impl IngestReport {
    pub fn merge(&mut self, other: IngestReport) {
        self.received += other.received;
        self.saved += other.saved;
        self.duplicates.extend(other.duplicates);
        self.invalid.extend(other.invalid);
        self.new_streams += other.new_streams;
        self.stream_events += other.stream_events;
        self.ready_to_fire += other.ready_to_fire;
    }
}

/// One stream an event must join: the trigger (index into the rule set),
/// the stream key and the distinguishing traits.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamJoin {
    pub trigger: usize,
    pub key: String,
    pub dist: DistTraits,
}

/// The mutable aggregate of a stream that rules update on every added event.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAgg {
    pub first_event: Timestamp,
    pub last_event: Timestamp,
    pub expire_timestamp: Option<Timestamp>,
    pub fire_timestamp: Option<Timestamp>,
    pub event_count: i64,
    pub fire_counts: Option<String>,
}

/// The trigger rules as the store sees them during [`Store::ingest`]. Pure
/// callbacks: the store does the I/O, the rules decide.
pub trait IngestRules: Sync {
    /// The trigger's name (stored as `stream.name`).
    fn trigger_name(&self, trigger: usize) -> &str;
    /// The streams `event` must join, in trigger config order (one per trigger at most).
    fn plan(&self, event: &Event) -> Vec<StreamJoin>;
    /// Fold `event` into a stream's aggregate. `new_stream` is true when the
    /// stream was just created for this event (the aggregate is then seeded
    /// with first = last = event time, count 0). Returns true when the stream
    /// became ready to fire with this event.
    fn apply(
        &self,
        trigger: usize,
        agg: &mut StreamAgg,
        event: &Event,
        new_stream: bool,
        now: Timestamp,
    ) -> Result<bool, String>;
}

/// No triggers: events are only stored.
pub struct NoRules;

impl IngestRules for NoRules {
    fn trigger_name(&self, _trigger: usize) -> &str {
        ""
    }
    fn plan(&self, _event: &Event) -> Vec<StreamJoin> {
        Vec::new()
    }
    fn apply(
        &self,
        _: usize,
        _: &mut StreamAgg,
        _: &Event,
        _: bool,
        _: Timestamp,
    ) -> Result<bool, String> {
        Ok(false)
    }
}

/// Which ready-stream query to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyKind {
    /// `state IN (active, retry_fire) AND fire_timestamp < now`, plus `firing` with an expired lease.
    Fire,
    /// `state IN (active, retry_expire) AND expire_timestamp < now`, plus `expiring` with an expired lease.
    Expire,
}

/// Paging mark of §4.15: `"<hex>"` = DESC, `id < mark`; `"+<hex>"` = ASC, `id > mark`;
/// `"+"` alone = ASC from the start; `"-<hex>"` = DESC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub ascending: bool,
    pub id: Option<i64>,
}

impl Mark {
    pub fn parse(mark: &str) -> Result<Mark, StoreError> {
        let (ascending, rest) = if let Some(r) = mark.strip_prefix('+') {
            (true, r)
        } else if let Some(r) = mark.strip_prefix('-') {
            (false, r)
        } else {
            (false, mark)
        };
        let id = if rest.is_empty() {
            None
        } else {
            Some(i64::from_str_radix(rest, 16).map_err(|_| StoreError::BadMark(mark.to_string()))?)
        };
        Ok(Mark { ascending, id })
    }

    /// The `_mark` of a row with this id, in this direction (`%x` or `+%x`).
    pub fn render(&self, id: i64) -> String {
        if self.ascending {
            format!("+{id:x}")
        } else {
            format!("{id:x}")
        }
    }
}

/// Filters of `find_streams` (§4.15).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamQuery {
    pub stream_id: Option<i64>,
    pub state: Option<StreamState>,
    /// `first_event < older_than`
    pub older_than: Option<Timestamp>,
    /// `last_event > younger_than`
    pub younger_than: Option<Timestamp>,
    /// Trigger name.
    pub name: Option<String>,
    /// Typed equality on distinguishing traits (all must match).
    pub distinguishing_traits: Vec<(String, DistValue)>,
    pub mark: Option<String>,
    pub limit: Option<u32>,
}

/// Filters of `find_events` (§4.15).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    /// `generated > from`
    pub from_datetime: Option<Timestamp>,
    /// `generated <= to`
    pub to_datetime: Option<Timestamp>,
    pub event_name: Option<String>,
    /// Typed equality on traits (all must match).
    pub traits: Vec<(String, TraitValue)>,
    pub mark: Option<String>,
    pub limit: Option<u32>,
}

/// A row of `find_streams`/`find_events` with its `_mark`.
#[derive(Debug, Clone, PartialEq)]
pub struct Marked<T> {
    pub mark: String,
    pub item: T,
}

/// The store. Every method is one transaction (or a plain read).
pub trait Store: Send + Sync {
    /// Refuse to run on a schema older than this build's migrations.
    fn check_schema(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Apply pending migrations (the admin tool; tests). Returns the versions applied.
    fn migrate(&self) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;

    /// Applied migration versions with their descriptions, oldest first.
    fn migration_history(
        &self,
    ) -> impl Future<Output = Result<Vec<(i64, String)>, StoreError>> + Send;

    /// Save a batch of events and add them to their streams, in ONE transaction,
    /// durable when this returns Ok. Duplicates (by message_id) are reported
    /// and not added to streams. `now` is the clock (wall clock, or event time in replay).
    fn ingest(
        &self,
        events: &[Event],
        rules: &dyn IngestRules,
        now: Timestamp,
    ) -> impl Future<Output = Result<IngestReport, StoreError>> + Send;

    /// Save events without stream processing.
    fn save_events(
        &self,
        events: &[Event],
    ) -> impl Future<Output = Result<IngestReport, StoreError>> + Send {
        self.ingest(events, &NoRules, stv3_event::now())
    }

    /// Get-or-create event type ids (never fails on a concurrent insert of the same name).
    fn event_type_ids(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, i64>, StoreError>> + Send;

    fn get_event_by_message_id(
        &self,
        message_id: &str,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send;

    fn get_stream_by_id(
        &self,
        id: i64,
    ) -> impl Future<Output = Result<Option<Stream>, StoreError>> + Send;

    /// The active stream for a key (state active, expire_timestamp > now), if any.
    fn get_active_stream(
        &self,
        key: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Stream>, StoreError>> + Send;

    /// A stream's events ordered by `generated` (then id).
    fn get_stream_events(
        &self,
        stream_id: i64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Streams ready to fire or expire at `now`, ordered by fire/expire time then id, at most `limit`.
    fn ready_streams(
        &self,
        kind: ReadyKind,
        now: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Stream>, StoreError>> + Send;

    /// Claim `stream` for a worker: `UPDATE ... SET state = to, state_serial_no + 1,
    /// lease_expires = lease_until WHERE id AND state_serial_no = stream.state_serial_no`.
    /// Returns the claimed stream (new serial) or [`StoreError::Locked`].
    fn claim_stream(
        &self,
        stream: &Stream,
        to: StreamState,
        lease_until: Timestamp,
    ) -> impl Future<Output = Result<Stream, StoreError>> + Send;

    /// Claim many streams in ONE transaction (one commit for the chunk), with
    /// the optimistic lock of [`Store::claim_stream`] per stream. Per stream,
    /// in order: the claimed stream, or `None` if another worker has it.
    /// Deadlocks are retried.
    fn claim_streams(
        &self,
        streams: &[Stream],
        to: StreamState,
        lease_until: Timestamp,
    ) -> impl Future<Output = Result<Vec<Option<Stream>>, StoreError>> + Send;

    /// Finish many claimed streams in ONE transaction. Per stream, in order:
    /// whether the claim was still held (false: the lease ran out and another
    /// worker has it; nothing was changed for that stream). Deadlocks are retried.
    fn finish_streams(
        &self,
        items: &[(Stream, Finish)],
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;

    /// Extend the lease of a claimed stream (long pipelines). Locked if the claim was lost.
    fn renew_lease(
        &self,
        claimed: &Stream,
        lease_until: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Finish a claimed stream successfully: delete it (purge) or mark it completed.
    /// Locked if the claim was lost (someone else re-claimed after the lease ran out).
    fn complete_stream(
        &self,
        claimed: &Stream,
        purge: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Put a claimed stream into `error` (from firing) or `expire_error` (from expiring).
    fn error_stream(&self, claimed: &Stream)
        -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Set a stream's state with the optimistic lock (the original `set_stream_state`).
    fn set_stream_state(
        &self,
        stream: &Stream,
        to: StreamState,
    ) -> impl Future<Output = Result<Stream, StoreError>> + Send;

    /// error -> retry_fire, expire_error -> retry_expire; other states unchanged. Returns the stream.
    fn reset_stream(&self, id: i64) -> impl Future<Output = Result<Stream, StoreError>> + Send;

    /// Delete a stream with its dist traits and links (events stay). Returns false if absent.
    fn purge_stream(&self, id: i64) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Ids of events with `generated < before`, oldest first, at most `limit`.
    fn find_older_events(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;

    /// Delete events (their traits and stream links too). Returns the number deleted.
    fn purge_events(&self, ids: &[i64]) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn find_streams(
        &self,
        q: &StreamQuery,
    ) -> impl Future<Output = Result<Vec<Marked<Stream>>, StoreError>> + Send;

    fn count_streams(
        &self,
        q: &StreamQuery,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn find_events(
        &self,
        q: &EventQuery,
    ) -> impl Future<Output = Result<Vec<Marked<StoredEvent>>, StoreError>> + Send;

    fn count_events(&self, q: &EventQuery) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The trait names that get index rows in the `trait` table (the others
    /// live only in the event's traits document), with their readiness.
    fn trait_index(&self) -> impl Future<Output = Result<Vec<IndexedTrait>, StoreError>> + Send;

    /// Index trait `name`: every ingest from now on writes its rows, then rows
    /// are backfilled for the events already stored, then it is marked ready
    /// (filters use the index alone). Idempotent. Returns the rows backfilled.
    fn add_trait_index(&self, name: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// How a claimed stream ends ([`Store::finish_streams`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Pipeline done: purge (delete the stream, its dist traits and links) or state `completed`.
    Complete { purge: bool },
    /// Pipeline failed: `error` (from firing) or `expire_error` (from expiring).
    Error,
    /// Not run (the store failed while preparing it): give the stream back in
    /// state `to` (its state before the claim), so any worker can claim it again
    /// at once instead of after the lease.
    Release { to: StreamState },
}

impl Finish {
    /// The state a claimed stream moves to.
    pub fn target(self, claimed: &Stream) -> StreamState {
        match self {
            Finish::Complete { .. } => StreamState::Completed,
            Finish::Release { to } => to,
            Finish::Error => match claimed.state {
                StreamState::Expiring | StreamState::RetryExpire | StreamState::ExpireError => {
                    StreamState::ExpireError
                }
                _ => StreamState::Error,
            },
        }
    }
}

/// A trait name with index rows. `ready`: every stored event that has the
/// trait has its row, so a filter on it can use the index alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedTrait {
    pub name: String,
    pub ready: bool,
}

/// How long a store trusts its cached list of ready indexed traits for
/// filters. A stale list is still correct: a name not (yet) known as ready is
/// filtered through the index rows OR the traits document.
const READY_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// The store's cache of `indexed_trait`, keyed by `trait_index_gen.gen`.
#[derive(Debug, Default)]
pub(crate) struct IndexCache {
    /// The generation `names` was read at (None: never read).
    gen: Option<i64>,
    /// Every indexed name (ingest writes rows for these).
    names: std::sync::Arc<std::collections::HashSet<String>>,
    /// The ready names (filters trust the index alone for these).
    ready: std::sync::Arc<std::collections::HashSet<String>>,
    ready_read_at: Option<std::time::Instant>,
}

/// Either store, chosen by URL. Implements [`Store`] by delegation.
#[derive(Clone, Debug)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    MySql(MySqlStore),
}

/// Connections a process's MySQL pool may open unless winchester.yaml says
/// otherwise (`database.max_connections`). The pool opens them as concurrent
/// work needs them.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

impl AnyStore {
    /// Connect using a winchester `database.url` (SQLAlchemy form or sqlx form),
    /// with a pool of [`DEFAULT_MAX_CONNECTIONS`].
    /// Does not run migrations (except for in-memory SQLite, which starts empty).
    pub async fn connect(url: &str) -> Result<AnyStore, StoreError> {
        Self::connect_pooled(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// [`Self::connect`] with a pool of at most `max_connections` on MySQL
    /// (SQLite keeps its one writer and four readers).
    pub async fn connect_pooled(url: &str, max_connections: u32) -> Result<AnyStore, StoreError> {
        match url::DbUrl::parse(url)? {
            url::DbUrl::Sqlite(u) => Ok(AnyStore::Sqlite(SqliteStore::connect(&u).await?)),
            url::DbUrl::MySql(u) => Ok(AnyStore::MySql(
                MySqlStore::connect(&u, max_connections).await?,
            )),
        }
    }

    /// `connect` then `check_schema`: what every process does on start.
    pub async fn open(url: &str) -> Result<AnyStore, StoreError> {
        Self::open_pooled(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// [`Self::open`] with a pool of at most `max_connections` (see [`Self::connect_pooled`]).
    pub async fn open_pooled(url: &str, max_connections: u32) -> Result<AnyStore, StoreError> {
        let s = Self::connect_pooled(url, max_connections).await?;
        s.check_schema().await?;
        Ok(s)
    }

    /// Run a raw SQL script (several statements). For the admin tool and tests.
    pub async fn execute_script(&self, sql: &str) -> Result<(), StoreError> {
        match self {
            AnyStore::Sqlite(s) => {
                sqlx::raw_sql(sql).execute(s.pool()).await?;
            }
            AnyStore::MySql(s) => {
                sqlx::raw_sql(sql).execute(s.pool()).await?;
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::MySql(_) => "mysql",
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $e.await,
            AnyStore::MySql($s) => $e.await,
        }
    };
}

impl Store for AnyStore {
    async fn check_schema(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.check_schema())
    }
    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        delegate!(self, s => s.migrate())
    }
    async fn migration_history(&self) -> Result<Vec<(i64, String)>, StoreError> {
        delegate!(self, s => s.migration_history())
    }
    async fn ingest(
        &self,
        events: &[Event],
        rules: &dyn IngestRules,
        now: Timestamp,
    ) -> Result<IngestReport, StoreError> {
        delegate!(self, s => s.ingest(events, rules, now))
    }
    async fn event_type_ids(&self, names: &[String]) -> Result<BTreeMap<String, i64>, StoreError> {
        delegate!(self, s => s.event_type_ids(names))
    }
    async fn get_event_by_message_id(
        &self,
        message_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        delegate!(self, s => s.get_event_by_message_id(message_id))
    }
    async fn get_stream_by_id(&self, id: i64) -> Result<Option<Stream>, StoreError> {
        delegate!(self, s => s.get_stream_by_id(id))
    }
    async fn get_active_stream(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<Stream>, StoreError> {
        delegate!(self, s => s.get_active_stream(key, now))
    }
    async fn get_stream_events(&self, stream_id: i64) -> Result<Vec<StoredEvent>, StoreError> {
        delegate!(self, s => s.get_stream_events(stream_id))
    }
    async fn ready_streams(
        &self,
        kind: ReadyKind,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Stream>, StoreError> {
        delegate!(self, s => s.ready_streams(kind, now, limit))
    }
    async fn claim_stream(
        &self,
        stream: &Stream,
        to: StreamState,
        lease_until: Timestamp,
    ) -> Result<Stream, StoreError> {
        delegate!(self, s => s.claim_stream(stream, to, lease_until))
    }
    async fn renew_lease(
        &self,
        claimed: &Stream,
        lease_until: Timestamp,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.renew_lease(claimed, lease_until))
    }
    async fn claim_streams(
        &self,
        streams: &[Stream],
        to: StreamState,
        lease_until: Timestamp,
    ) -> Result<Vec<Option<Stream>>, StoreError> {
        delegate!(self, s => s.claim_streams(streams, to, lease_until))
    }
    async fn finish_streams(&self, items: &[(Stream, Finish)]) -> Result<Vec<bool>, StoreError> {
        delegate!(self, s => s.finish_streams(items))
    }
    async fn complete_stream(&self, claimed: &Stream, purge: bool) -> Result<(), StoreError> {
        delegate!(self, s => s.complete_stream(claimed, purge))
    }
    async fn error_stream(&self, claimed: &Stream) -> Result<(), StoreError> {
        delegate!(self, s => s.error_stream(claimed))
    }
    async fn set_stream_state(
        &self,
        stream: &Stream,
        to: StreamState,
    ) -> Result<Stream, StoreError> {
        delegate!(self, s => s.set_stream_state(stream, to))
    }
    async fn reset_stream(&self, id: i64) -> Result<Stream, StoreError> {
        delegate!(self, s => s.reset_stream(id))
    }
    async fn purge_stream(&self, id: i64) -> Result<bool, StoreError> {
        delegate!(self, s => s.purge_stream(id))
    }
    async fn find_older_events(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<i64>, StoreError> {
        delegate!(self, s => s.find_older_events(before, limit))
    }
    async fn purge_events(&self, ids: &[i64]) -> Result<u64, StoreError> {
        delegate!(self, s => s.purge_events(ids))
    }
    async fn find_streams(&self, q: &StreamQuery) -> Result<Vec<Marked<Stream>>, StoreError> {
        delegate!(self, s => s.find_streams(q))
    }
    async fn count_streams(&self, q: &StreamQuery) -> Result<u64, StoreError> {
        delegate!(self, s => s.count_streams(q))
    }
    async fn find_events(&self, q: &EventQuery) -> Result<Vec<Marked<StoredEvent>>, StoreError> {
        delegate!(self, s => s.find_events(q))
    }
    async fn count_events(&self, q: &EventQuery) -> Result<u64, StoreError> {
        delegate!(self, s => s.count_events(q))
    }
    async fn trait_index(&self) -> Result<Vec<IndexedTrait>, StoreError> {
        delegate!(self, s => s.trait_index())
    }
    async fn add_trait_index(&self, name: &str) -> Result<u64, StoreError> {
        delegate!(self, s => s.add_trait_index(name))
    }
}
