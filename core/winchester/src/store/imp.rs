// The Store implementation shared by both backends. This file is `include!`d
// by `sqlite.rs` and `mysql.rs`, which define beforehand:
//   type Db; const DIALECT: Dialect; type ThisStore (fields pool, types, migrator);
//   fn is_retryable(&sqlx::Error) -> bool; fn inserted_id(&QueryResult) -> i64;
//   async fn ThisStore::begin_write(&self) -> Result<Transaction<'static, Db>, sqlx::Error>.
// The SQL is the same for both (backticks quote identifiers in SQLite too);
// dialect differences go through `DIALECT`.

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::{QueryBuilder, Row, Transaction};
use stv3_event::stored::{decode_traits, encode_traits, index_key, match_fragment};
use stv3_event::{from_micros, to_micros, Datatype, TraitValue};

use super::sql::{pair_groups, placeholders, shaped_chunks, MAX_BIND_PARAMS};
use super::{Finish, Mark, StreamAgg};
use crate::stream::{DistTraits, DistValue};

/// Rows per multi-row INSERT / ids per IN (...) list.
const CHUNK: usize = 500;
/// Prepared statements kept per connection: ~20 statement kinds, each in up
/// to log2(CHUNK) + 1 shapes.
const STATEMENT_CACHE: usize = 256;
/// Max attempts of one ingest transaction (deadlocks, concurrent duplicates).
const MAX_ATTEMPTS: u32 = 8;
/// How long stream claims and finishes wait out a lost database connection.
const OUTAGE_BUDGET: std::time::Duration = std::time::Duration::from_secs(600);

const STREAM_COLS: &str = "s.id, s.name, s.first_event, s.last_event, s.expire_timestamp, s.fire_timestamp, \
     s.state, s.state_serial_no, s.lease_expires, s.event_count, s.fire_counts, s.stream_key";

type DbRow = <Db as sqlx::Database>::Row;

/// Run a transaction attempt (an expression of type `Result<T, StoreError>`
/// future) again after a deadlock or lock timeout, with jittered backoff.
macro_rules! retry_on_conflict {
    ($attempt:expr) => {{
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match $attempt.await {
                Err(StoreError::Db(e)) if attempt < MAX_ATTEMPTS && is_retryable(&e) => {
                    tracing::debug!(attempt, "transaction retried: {e}");
                    let backoff = 5u64 * (1 << attempt.min(6)) + rand::random::<u64>() % 20;
                    tokio::time::sleep(std::time::Duration::from_millis(backoff)).await;
                }
                other => break other,
            }
        }
    }};
}

/// A text column. MySQL reports VARCHAR with a `_bin` collation as VARBINARY,
/// so fall back to bytes (always UTF-8 in our schema).
fn text_col(r: &DbRow, i: usize) -> Result<String, StoreError> {
    match r.try_get::<String, _>(i) {
        Ok(s) => Ok(s),
        Err(_) => {
            let b: Vec<u8> = r.try_get(i)?;
            String::from_utf8(b).map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
        }
    }
}

fn opt_text_col(r: &DbRow, i: usize) -> Result<Option<String>, StoreError> {
    match r.try_get::<Option<String>, _>(i) {
        Ok(s) => Ok(s),
        Err(_) => match r.try_get::<Option<Vec<u8>>, _>(i)? {
            None => Ok(None),
            Some(b) => String::from_utf8(b).map(Some).map_err(|e| StoreError::Corrupt(format!("column {i}: {e}"))),
        },
    }
}

fn stream_from_row(r: &DbRow) -> Result<Stream, StoreError> {
    let state: i64 = r.try_get(6)?;
    Ok(Stream {
        id: r.try_get(0)?,
        name: text_col(r, 1)?,
        first_event: from_micros(r.try_get(2)?),
        last_event: from_micros(r.try_get(3)?),
        expire_timestamp: r.try_get::<Option<i64>, _>(4)?.map(from_micros),
        fire_timestamp: r.try_get::<Option<i64>, _>(5)?.map(from_micros),
        state: StreamState::from_code(state as i32)
            .ok_or_else(|| StoreError::Corrupt(format!("stream state {state}")))?,
        state_serial_no: r.try_get::<i64, _>(7)? as i32,
        lease_expires: r.try_get::<Option<i64>, _>(8)?.map(from_micros),
        event_count: r.try_get(9)?,
        fire_counts: opt_text_col(r, 10)?,
        stream_key: opt_text_col(r, 11)?,
        distinguishing_traits: DistTraits::new(),
    })
}

/// (type, t_string, t_float, t_int, t_datetime) of a trait value. Strings are
/// capped at 255 characters (the column width).
fn trait_columns(v: &TraitValue) -> (i64, Option<&str>, Option<f64>, Option<i64>, Option<i64>) {
    let ty = v.datatype().code() as i64;
    match v {
        TraitValue::Text(s) => (ty, Some(cap_255(s)), None, None, None),
        TraitValue::Int(i) => (ty, None, None, Some(*i), None),
        TraitValue::Float(f) => (ty, None, Some(*f), None, None),
        TraitValue::Datetime(t) => (ty, None, None, None, Some(to_micros(t))),
    }
}

fn cap_255(s: &str) -> &str {
    match s.char_indices().nth(255) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn trait_from_row(r: &DbRow, base: usize) -> Result<Option<TraitValue>, StoreError> {
    let ty: i64 = r.try_get(base)?;
    Ok(match Datatype::from_code(ty as i32) {
        Some(Datatype::Text) => opt_text_col(r, base + 1)?.map(|s| TraitValue::Text(s.into())),
        Some(Datatype::Float) => r.try_get::<Option<f64>, _>(base + 2)?.map(TraitValue::Float),
        Some(Datatype::Int) => r.try_get::<Option<i64>, _>(base + 3)?.map(TraitValue::Int),
        Some(Datatype::Datetime) => r.try_get::<Option<i64>, _>(base + 4)?.map(|t| TraitValue::Datetime(from_micros(t))),
        _ => None,
    })
}

/// Push `AND EXISTS (...)` for a typed dist-trait equality.
fn push_dist_filter(qb: &mut QueryBuilder<'_, Db>, name: &str, value: &DistValue) {
    qb.push(" AND EXISTS (SELECT 1 FROM dist_trait d WHERE d.stream_id = s.id AND d.name = ");
    qb.push_bind(name.to_string());
    qb.push(" AND d.type = ");
    qb.push_bind(value.datatype().code() as i64);
    match value {
        DistValue::Trait(TraitValue::Text(s)) => {
            qb.push(" AND d.dt_string = ");
            qb.push_bind(cap_255(s).to_string());
        }
        DistValue::Trait(TraitValue::Int(i)) => {
            qb.push(" AND d.dt_int = ");
            qb.push_bind(*i);
        }
        DistValue::Trait(TraitValue::Float(f)) => {
            qb.push(" AND d.dt_float = ");
            qb.push_bind(*f);
        }
        DistValue::Trait(TraitValue::Datetime(t)) => {
            qb.push(" AND d.dt_datetime = ");
            qb.push_bind(to_micros(t));
        }
        DistValue::Range { begin, end } => {
            qb.push(" AND d.dt_timerange_begin = ");
            qb.push_bind(to_micros(begin));
            qb.push(" AND d.dt_timerange_end = ");
            qb.push_bind(to_micros(end));
        }
    }
    qb.push(")");
}

/// Push the condition for a typed trait equality. `indexed` (the name is a
/// ready indexed trait): `AND EXISTS (index row)`. Otherwise the index rows
/// (events stored before traits documents, or while the name was being
/// indexed) OR a match in the event's traits document.
fn push_trait_filter(qb: &mut QueryBuilder<'_, Db>, name: &str, value: &TraitValue, indexed: bool) {
    if indexed && DIALECT == Dialect::Sqlite {
        // The integer key, confirmed against the document (a key can collide;
        // events stored before documents have none and keys from their rows).
        qb.push(" AND EXISTS (SELECT 1 FROM trait_key k WHERE k.key = ");
        qb.push_bind(index_key(name, value));
        qb.push(" AND k.event_id = e.id) AND (e.traits IS NULL OR INSTR(e.traits, ");
        qb.push_bind(match_fragment(name, value));
        qb.push(") > 0)");
        return;
    }
    let (ty, s, f, i, d) = trait_columns(value);
    qb.push(if indexed { " AND (" } else { " AND ((" });
    qb.push("EXISTS (SELECT 1 FROM `trait` t WHERE t.event_id = e.id AND t.name = ");
    qb.push_bind(name.to_string());
    qb.push(" AND t.type = ");
    qb.push_bind(ty);
    // Along the MySQL value index (name, t_string, t_int, t_datetime, t_float):
    // a row sets one value column, the ones before it are NULL.
    if let Some(s) = s {
        qb.push(" AND t.t_string = ").push_bind(s.to_string());
    } else if let Some(i) = i {
        qb.push(" AND t.t_string IS NULL AND t.t_int = ").push_bind(i);
    } else if let Some(d) = d {
        qb.push(" AND t.t_string IS NULL AND t.t_int IS NULL AND t.t_datetime = ").push_bind(d);
    } else if let Some(f) = f {
        qb.push(" AND t.t_string IS NULL AND t.t_int IS NULL AND t.t_datetime IS NULL AND t.t_float = ")
            .push_bind(f);
    }
    qb.push(")");
    if !indexed {
        qb.push(") OR (e.traits IS NOT NULL AND INSTR(e.traits, ");
        qb.push_bind(match_fragment(name, value));
        qb.push(") > 0)");
    }
    qb.push(")");
}


/// In-memory state of one stream touched by an ingest batch.
struct Work {
    /// None until inserted.
    id: Option<i64>,
    trigger: usize,
    key: String,
    dist: DistTraits,
    agg: StreamAgg,
    state: StreamState,
    is_new: bool,
    dirty: bool,
    became_ready: bool,
}

impl Work {
    fn usable(&self, now: Timestamp) -> bool {
        self.state == StreamState::Active && self.agg.expire_timestamp.map(|e| e > now).unwrap_or(false)
    }
}

/// One validated event of a batch, with the pure work done before the
/// transaction opens: its traits document and the streams it joins. (With
/// several batches in flight, this overlaps another batch's transaction
/// instead of extending the writer's critical section; a retry reuses it.)
struct Valid<'a> {
    event: &'a Event,
    doc: String,
    joins: Vec<StreamJoin>,
}

impl ThisStore {
    /// The embedded migrations of this dialect.
    pub fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    /// The newest migration version this build knows.
    pub fn expected_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    async fn load_dist_traits(&self, streams: &mut [Stream]) -> Result<(), StoreError> {
        if streams.is_empty() {
            return Ok(());
        }
        let mut by_id: HashMap<i64, usize> = HashMap::new();
        for (i, s) in streams.iter().enumerate() {
            by_id.insert(s.id, i);
        }
        let ids: Vec<i64> = streams.iter().map(|s| s.id).collect();
        for chunk in shaped_chunks(&ids, CHUNK) {
            let sql = format!(
                "SELECT stream_id, name, type, dt_string, dt_float, dt_int, dt_datetime, dt_timerange_begin, \
                 dt_timerange_end FROM dist_trait WHERE stream_id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                let sid: i64 = r.try_get(0)?;
                let name = text_col(&r, 1)?;
                let ty: i64 = r.try_get(2)?;
                let value = if ty == Datatype::Timerange.code() as i64 {
                    match (r.try_get::<Option<i64>, _>(7)?, r.try_get::<Option<i64>, _>(8)?) {
                        (Some(b), Some(e)) => Some(DistValue::Range { begin: from_micros(b), end: from_micros(e) }),
                        _ => None,
                    }
                } else {
                    // dist_trait has the same column order as trait from `type` on.
                    trait_from_row(&r, 2)?.map(DistValue::Trait)
                };
                if let (Some(v), Some(&i)) = (value, by_id.get(&sid)) {
                    streams[i].distinguishing_traits.insert(name, v);
                }
            }
        }
        Ok(())
    }

    /// Streams by a WHERE clause with binds already pushed; dist traits loaded.
    async fn fetch_streams(&self, mut qb: QueryBuilder<'_, Db>) -> Result<Vec<Stream>, StoreError> {
        let rows = qb.build().fetch_all(&self.pool).await?;
        let mut out = rows.iter().map(stream_from_row).collect::<Result<Vec<_>, _>>()?;
        self.load_dist_traits(&mut out).await?;
        Ok(out)
    }

    /// Events by id, in the order given (missing ids are skipped).
    async fn events_by_ids(&self, ids: &[i64]) -> Result<Vec<StoredEvent>, StoreError> {
        let mut found: HashMap<i64, StoredEvent> = HashMap::with_capacity(ids.len());
        for chunk in shaped_chunks(ids, CHUNK) {
            let sql = format!(
                "SELECT e.id, e.message_id, e.generated, et.`desc`, e.traits FROM event e \
                 JOIN event_type et ON et.id = e.event_type_id WHERE e.id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            // Events stored before traits documents keep their traits in rows only.
            let mut legacy: Vec<i64> = Vec::new();
            for r in q.fetch_all(&self.pool).await? {
                let id: i64 = r.try_get(0)?;
                let mid = text_col(&r, 1)?;
                let generated: i64 = r.try_get(2)?;
                let etype = text_col(&r, 3)?;
                let mut event = Event::new(mid, etype, from_micros(generated));
                match opt_text_col(&r, 4)? {
                    Some(doc) => {
                        event.traits = decode_traits(&doc)
                            .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", event.message_id)))?
                    }
                    None => legacy.push(id),
                }
                found.insert(id, StoredEvent { id, event });
            }
            for (id, name, v) in self.legacy_traits(&legacy, None).await? {
                if let Some(e) = found.get_mut(&id) {
                    e.event.traits.insert(name.into(), v);
                }
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// The traits of events stored before traits documents, from their
    /// `trait` rows: (event id, name, value); just trait `only` when given.
    async fn legacy_traits(&self, ids: &[i64], only: Option<&str>) -> Result<Vec<(i64, String, TraitValue)>, StoreError> {
        let mut out = Vec::new();
        for chunk in shaped_chunks(ids, CHUNK) {
            let sql = format!(
                "SELECT event_id, name, type, t_string, t_float, t_int, t_datetime FROM `trait` WHERE event_id IN ({}){}",
                placeholders(chunk.len()),
                if only.is_some() { " AND name = ?" } else { "" }
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            if let Some(name) = only {
                q = q.bind(name.to_string());
            }
            for r in q.fetch_all(&self.pool).await? {
                if let Some(v) = trait_from_row(&r, 2)? {
                    out.push((r.try_get(0)?, text_col(&r, 1)?, v));
                }
            }
        }
        Ok(out)
    }

    async fn ids(&self, mut qb: QueryBuilder<'_, Db>) -> Result<Vec<i64>, StoreError> {
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter().map(|r| r.try_get::<i64, _>(0).map_err(StoreError::from)).collect()
    }

    fn stream_where<'a>(qb: &mut QueryBuilder<'a, Db>, q: &'a StreamQuery, mark: &Mark) {
        qb.push(" WHERE 1=1");
        if let Some(id) = mark.id {
            qb.push(if mark.ascending { " AND s.id > " } else { " AND s.id < " });
            qb.push_bind(id);
        }
        if let Some(id) = q.stream_id {
            qb.push(" AND s.id = ");
            qb.push_bind(id);
        }
        if let Some(st) = q.state {
            qb.push(" AND s.state = ");
            qb.push_bind(st.code() as i64);
        }
        if let Some(t) = q.older_than {
            qb.push(" AND s.first_event < ");
            qb.push_bind(to_micros(&t));
        }
        if let Some(t) = q.younger_than {
            qb.push(" AND s.last_event > ");
            qb.push_bind(to_micros(&t));
        }
        if let Some(n) = &q.name {
            qb.push(" AND s.name = ");
            qb.push_bind(n.clone());
        }
        for (name, v) in &q.distinguishing_traits {
            push_dist_filter(qb, name, v);
        }
    }

    fn event_where<'a>(qb: &mut QueryBuilder<'a, Db>, q: &'a EventQuery, mark: &Mark, ready: &HashSet<String>) {
        qb.push(" WHERE 1=1");
        if let Some(id) = mark.id {
            qb.push(if mark.ascending { " AND e.id > " } else { " AND e.id < " });
            qb.push_bind(id);
        }
        if let Some(t) = q.from_datetime {
            qb.push(" AND e.generated > ");
            qb.push_bind(to_micros(&t));
        }
        if let Some(t) = q.to_datetime {
            qb.push(" AND e.generated <= ");
            qb.push_bind(to_micros(&t));
        }
        if let Some(n) = &q.event_name {
            qb.push(" AND e.event_type_id = (SELECT et.id FROM event_type et WHERE et.`desc` = ");
            qb.push_bind(n.clone());
            qb.push(")");
        }
        for (name, v) in &q.traits {
            push_trait_filter(qb, name, v, ready.contains(name));
        }
    }

    /// The indexed trait names, read inside an ingest transaction under a
    /// shared lock on `trait_index_gen` (so `add_trait_index` waits for this
    /// transaction, and every later one sees its name). Cached per generation.
    async fn index_names(&self, tx: &mut Transaction<'static, Db>) -> Result<Arc<HashSet<String>>, StoreError> {
        let sql = format!("SELECT gen FROM trait_index_gen WHERE id = 1{}", DIALECT.share_lock());
        let gen: i64 = sqlx::query(&sql).fetch_one(&mut **tx).await?.try_get(0)?;
        {
            let cache = self.index.lock().unwrap_or_else(|e| e.into_inner());
            if cache.gen == Some(gen) {
                return Ok(cache.names.clone());
            }
        }
        let rows = sqlx::query("SELECT name, ready FROM indexed_trait").fetch_all(&mut **tx).await?;
        let mut names = HashSet::new();
        let mut ready = HashSet::new();
        for r in rows {
            let name = text_col(&r, 0)?;
            if r.try_get::<i64, _>(1)? != 0 {
                ready.insert(name.clone());
            }
            names.insert(name);
        }
        let names = Arc::new(names);
        let mut cache = self.index.lock().unwrap_or_else(|e| e.into_inner());
        cache.gen = Some(gen);
        cache.names = names.clone();
        cache.ready = Arc::new(ready);
        cache.ready_read_at = Some(std::time::Instant::now());
        Ok(names)
    }

    /// The ready indexed names, for filters (re-read after `READY_TTL`).
    async fn ready_index(&self) -> Result<Arc<HashSet<String>>, StoreError> {
        {
            let cache = self.index.lock().unwrap_or_else(|e| e.into_inner());
            if cache.ready_read_at.is_some_and(|t| t.elapsed() < super::READY_TTL) {
                return Ok(cache.ready.clone());
            }
        }
        let rows = sqlx::query("SELECT name FROM indexed_trait WHERE ready <> 0").fetch_all(&self.pool).await?;
        let ready = Arc::new(rows.iter().map(|r| text_col(r, 0)).collect::<Result<HashSet<_>, _>>()?);
        let mut cache = self.index.lock().unwrap_or_else(|e| e.into_inner());
        cache.ready = ready.clone();
        cache.ready_read_at = Some(std::time::Instant::now());
        Ok(ready)
    }

    /// Lock (MySQL: `FOR UPDATE`) the stream_key rows of `keys`, creating missing
    /// ones. Returns key -> current stream id.
    async fn lock_keys(
        &self,
        tx: &mut Transaction<'static, Db>,
        keys: &[String],
    ) -> Result<HashMap<String, Option<i64>>, StoreError> {
        let mut out: HashMap<String, Option<i64>> = HashMap::with_capacity(keys.len());
        self.select_keys(tx, keys, &mut out).await?;
        let missing: Vec<String> = keys.iter().filter(|k| !out.contains_key(*k)).cloned().collect();
        if missing.is_empty() {
            return Ok(out);
        }
        let vals: Vec<Val<'_>> = missing.iter().flat_map(|k| [Val::S(k), Val::Null]).collect();
        let head = format!("{} INTO stream_key (stream_key, stream_id)", DIALECT.insert_ignore());
        let inserted = self.insert_rows(tx, &head, 2, &vals).await?.affected;
        drop(vals);
        if inserted == missing.len() as u64 {
            for k in missing {
                out.insert(k, None);
            }
        } else {
            // Another ingester created some of them meanwhile: lock and read them.
            self.select_keys(tx, &missing, &mut out).await?;
            for k in missing {
                out.entry(k).or_insert(None);
            }
        }
        Ok(out)
    }

    /// One attempt of an ingest transaction. `Ok(None)`: retry (one of our
    /// message_ids is already stored: with `precheck` false, or a concurrent
    /// writer inserted it meanwhile). With `precheck` false the stored
    /// duplicates are not looked up first: redeliveries are rare, and the
    /// event INSERT IGNORE reports them anyway (fewer rows than asked).
    async fn ingest_tx(
        &self,
        valid: &[Valid<'_>],
        type_ids: &BTreeMap<String, i64>,
        rules: &dyn IngestRules,
        now: Timestamp,
        precheck: bool,
    ) -> Result<Option<IngestReport>, StoreError> {
        let mut report = IngestReport::default();
        let mut tx = self.begin_write().await?;
        let indexed = self.index_names(&mut tx).await?;

        // 1. Duplicates already stored (looked up only with `precheck`).
        let mut existing: HashSet<String> = HashSet::new();
        let to_check: &[Valid<'_>] = if precheck { valid } else { &[] };
        for chunk in shaped_chunks(to_check, CHUNK) {
            let sql = format!("SELECT message_id FROM event WHERE message_id IN ({})", placeholders(chunk.len()));
            let mut q = sqlx::query(&sql);
            for v in chunk {
                q = q.bind(v.event.message_id.clone());
            }
            for r in q.fetch_all(&mut *tx).await? {
                existing.insert(text_col(&r, 0)?);
            }
        }
        let fresh: Vec<&Valid<'_>> = valid.iter().filter(|v| !existing.contains(&v.event.message_id)).collect();
        report.duplicates.extend(valid.iter().filter(|v| existing.contains(&v.event.message_id)).map(|v| v.event.message_id.clone()));
        if fresh.is_empty() {
            tx.commit().await?;
            return Ok(Some(report));
        }

        // 2. Events (ids from the insert, or re-read by message_id).
        let mut vals: Vec<Val<'_>> = Vec::with_capacity(fresh.len() * 4);
        for Valid { event: e, doc, .. } in fresh.iter().copied() {
            vals.extend([
                Val::S(&e.message_id),
                Val::I(to_micros(&e.generated)),
                Val::I(type_ids.get(&e.event_type).copied().unwrap_or(0)),
                Val::S(doc),
            ]);
        }
        let head = format!("{} INTO event (message_id, generated, event_type_id, traits)", DIALECT.insert_ignore());
        let inserted = self.insert_rows(&mut tx, &head, 4, &vals).await?;
        drop(vals);
        if inserted.affected != fresh.len() as u64 {
            tx.rollback().await?;
            return Ok(None);
        }
        let mut event_ids: HashMap<&str, i64> = HashMap::with_capacity(fresh.len());
        match inserted.ids {
            Some(ids) => event_ids.extend(fresh.iter().map(|v| v.event.message_id.as_str()).zip(ids)),
            None => {
                for chunk in shaped_chunks(&fresh, CHUNK) {
                    let sql = format!("SELECT id, message_id FROM event WHERE message_id IN ({})", placeholders(chunk.len()));
                    let mut q = sqlx::query(&sql);
                    for v in chunk {
                        q = q.bind(v.event.message_id.clone());
                    }
                    let rows = q.fetch_all(&mut *tx).await?;
                    let mut by_mid: HashMap<String, i64> = HashMap::with_capacity(rows.len());
                    for r in rows {
                        by_mid.insert(text_col(&r, 1)?, r.try_get(0)?);
                    }
                    for Valid { event: e, .. } in chunk.iter().copied() {
                        let id = by_mid
                            .get(&e.message_id)
                            .copied()
                            .ok_or_else(|| StoreError::Corrupt(format!("event {} vanished after insert", e.message_id)))?;
                        event_ids.insert(e.message_id.as_str(), id);
                    }
                }
            }
        }
        report.saved = fresh.len();

        // 3. Index rows of the indexed traits (all traits are in the document).
        let trait_rows: Vec<(i64, &str, &TraitValue)> = fresh
            .iter()
            .flat_map(|v| {
                let e = v.event;
                let id = event_ids[e.message_id.as_str()];
                let indexed = &indexed;
                e.traits.iter().filter(move |(n, _)| indexed.contains(n.as_str())).map(move |(n, v)| (id, n.as_str(), v))
            })
            .collect();
        self.write_index_rows(&mut tx, &trait_rows, false).await?;

        // 4. Streams.
        let plans: Vec<(&Event, &[StreamJoin])> =
            fresh.iter().map(|v| (v.event, v.joins.as_slice())).filter(|(_, j)| !j.is_empty()).collect();
        if !plans.is_empty() {
            let keys: Vec<String> =
                plans.iter().flat_map(|(_, js)| js.iter().map(|j| j.key.clone())).collect::<BTreeSet<_>>().into_iter().collect();
            let key_rows = self.lock_keys(&mut tx, &keys).await?;
            // Load the streams the keys point at.
            let ids: Vec<i64> = key_rows.values().flatten().copied().collect();
            let mut current: HashMap<i64, Stream> = HashMap::new();
            for chunk in shaped_chunks(&ids, CHUNK) {
                let sql = format!("SELECT {STREAM_COLS} FROM stream s WHERE s.id IN ({})", placeholders(chunk.len()));
                let mut q = sqlx::query(&sql);
                for id in chunk {
                    q = q.bind(*id);
                }
                for r in q.fetch_all(&mut *tx).await? {
                    let s = stream_from_row(&r)?;
                    current.insert(s.id, s);
                }
            }
            let mut works: Vec<Work> = Vec::new();
            let mut by_key: HashMap<String, usize> = HashMap::new();
            let mut links: Vec<(usize, i64)> = Vec::new();
            for (event, joins) in &plans {
                let event_id = event_ids[event.message_id.as_str()];
                for j in joins.iter() {
                    let idx = match by_key.get(&j.key) {
                        Some(&i) if works[i].usable(now) => Some(i),
                        Some(_) => None,
                        None => {
                            let existing = key_rows.get(&j.key).copied().flatten().and_then(|id| current.remove(&id));
                            match existing {
                                Some(s) => {
                                    let w = Work {
                                        id: Some(s.id),
                                        trigger: j.trigger,
                                        key: j.key.clone(),
                                        dist: j.dist.clone(),
                                        agg: StreamAgg {
                                            first_event: s.first_event,
                                            last_event: s.last_event,
                                            expire_timestamp: s.expire_timestamp,
                                            fire_timestamp: s.fire_timestamp,
                                            event_count: s.event_count,
                                            fire_counts: s.fire_counts.clone(),
                                        },
                                        state: s.state,
                                        is_new: false,
                                        dirty: false,
                                        became_ready: false,
                                    };
                                    works.push(w);
                                    by_key.insert(j.key.clone(), works.len() - 1);
                                    if works[works.len() - 1].usable(now) {
                                        Some(works.len() - 1)
                                    } else {
                                        None
                                    }
                                }
                                None => None,
                            }
                        }
                    };
                    let (idx, new_stream) = match idx {
                        Some(i) => (i, false),
                        None => {
                            works.push(Work {
                                id: None,
                                trigger: j.trigger,
                                key: j.key.clone(),
                                dist: j.dist.clone(),
                                agg: StreamAgg {
                                    first_event: event.generated,
                                    last_event: event.generated,
                                    expire_timestamp: None,
                                    fire_timestamp: None,
                                    event_count: 0,
                                    fire_counts: None,
                                },
                                state: StreamState::Active,
                                is_new: true,
                                dirty: true,
                                became_ready: false,
                            });
                            by_key.insert(j.key.clone(), works.len() - 1);
                            (works.len() - 1, true)
                        }
                    };
                    let w = &mut works[idx];
                    let ready = rules.apply(w.trigger, &mut w.agg, event, new_stream, now).map_err(|reason| {
                        StoreError::Rule {
                            trigger: rules.trigger_name(w.trigger).to_string(),
                            message_id: event.message_id.clone(),
                            reason,
                        }
                    })?;
                    w.dirty = true;
                    w.became_ready |= ready;
                    links.push((idx, event_id));
                }
            }

            // New streams: multi-row inserts when the ids are predictable, else one by one.
            let new_idx: Vec<usize> = (0..works.len()).filter(|&i| works[i].is_new).collect();
            for chunk in shaped_chunks(&new_idx, CHUNK) {
                let rows: Vec<&Work> = chunk.iter().map(|&i| &works[i]).collect();
                let one_by_one = rows.len() > 1 && !self.first_inserted_id_known();
                let groups: Vec<&[&Work]> = if one_by_one { rows.chunks(1).collect() } else { vec![&rows[..]] };
                let mut ids: Vec<i64> = Vec::with_capacity(rows.len());
                for group in groups {
                    let mut qb: QueryBuilder<'_, Db> = QueryBuilder::new(
                        "INSERT INTO stream (first_event, last_event, expire_timestamp, fire_timestamp, name, state, \
                         state_serial_no, event_count, fire_counts, stream_key) ",
                    );
                    qb.push_values(group, |mut b, w| {
                        b.push_bind(to_micros(&w.agg.first_event))
                            .push_bind(to_micros(&w.agg.last_event))
                            .push_bind(w.agg.expire_timestamp.map(|t| to_micros(&t)))
                            .push_bind(w.agg.fire_timestamp.map(|t| to_micros(&t)))
                            .push_bind(rules.trigger_name(w.trigger).to_string())
                            .push_bind(StreamState::Active.code() as i64)
                            .push_bind(0i64)
                            .push_bind(w.agg.event_count)
                            .push_bind(w.agg.fire_counts.clone())
                            .push_bind(w.key.clone());
                    });
                    let res = qb.build().execute(&mut *tx).await?;
                    let first = match self.first_inserted_id(&res, group.len()) {
                        Some(f) => f,
                        None => inserted_id(&res),
                    };
                    ids.extend((0..group.len() as i64).map(|i| first + i));
                }
                for (&i, id) in chunk.iter().zip(ids) {
                    works[i].id = Some(id);
                }
                report.new_streams += chunk.len();
            }
            let dist_rows: Vec<(i64, &str, &DistValue)> = works
                .iter()
                .filter(|w| w.is_new)
                .flat_map(|w| w.dist.iter().map(move |(n, v)| (w.id.unwrap_or(0), n.as_str(), v)))
                .collect();
            let mut vals: Vec<Val<'_>> = Vec::with_capacity(dist_rows.len() * 9);
            for (sid, name, v) in &dist_rows {
                vals.extend([Val::I(*sid), Val::S(name)]);
                match v {
                    DistValue::Trait(tv) => {
                        let (ty, s, f, i, d) = trait_columns(tv);
                        vals.extend([Val::I(ty), Val::opt_s(s), Val::opt_f(f), Val::opt_i(i), Val::opt_i(d), Val::Null, Val::Null]);
                    }
                    DistValue::Range { begin, end } => vals.extend([
                        Val::I(Datatype::Timerange.code() as i64),
                        Val::Null,
                        Val::Null,
                        Val::Null,
                        Val::Null,
                        Val::I(to_micros(begin)),
                        Val::I(to_micros(end)),
                    ]),
                }
            }
            self.insert_rows(
                &mut tx,
                "INSERT INTO dist_trait (stream_id, name, type, dt_string, dt_float, dt_int, dt_datetime, \
                 dt_timerange_begin, dt_timerange_end)",
                9,
                &vals,
            )
            .await?;
            drop(vals);
            // Point each key at its newest stream.
            let pointers: Vec<(&str, i64)> = by_key
                .iter()
                .filter(|(_, &i)| works[i].is_new)
                .map(|(k, &i)| (k.as_str(), works[i].id.unwrap_or(0)))
                .collect();
            // Existing streams touched by the batch.
            let dirty: Vec<&Work> = works.iter().filter(|w| !w.is_new && w.dirty).collect();
            self.write_stream_updates(&mut tx, &pointers, &dirty).await?;
            report.ready_to_fire = works.iter().filter(|w| w.became_ready).count();
            // Links.
            report.stream_events = links.len();
            let vals: Vec<Val<'_>> =
                links.iter().flat_map(|(idx, eid)| [Val::I(works[*idx].id.unwrap_or(0)), Val::I(*eid)]).collect();
            let head = format!("{} INTO streamevent (stream_id, event_id)", DIALECT.insert_ignore());
            self.insert_rows(&mut tx, &head, 2, &vals).await?;
        }
        tx.commit().await?;
        Ok(Some(report))
    }

    async fn finish_claimed(&self, claimed: &Stream, to: Option<StreamState>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let res = sqlx::query(
            "UPDATE stream SET state = ?, state_serial_no = state_serial_no + 1, lease_expires = NULL \
             WHERE id = ? AND state_serial_no = ?",
        )
        .bind(to.unwrap_or(StreamState::Completed).code() as i64)
        .bind(claimed.id)
        .bind(claimed.state_serial_no as i64)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() != 1 {
            tx.rollback().await?;
            return Err(StoreError::Locked { stream_id: claimed.id, serial: claimed.state_serial_no });
        }
        if to.is_none() {
            Self::delete_stream(&mut tx, claimed.id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One attempt of [`Store::claim_streams`]: rows are locked in id order
    /// (fewer deadlocks between workers); results in input order.
    async fn claim_streams_tx(
        &self,
        streams: &[Stream],
        to: StreamState,
        lease_until: Timestamp,
    ) -> Result<Vec<Option<Stream>>, StoreError> {
        let mut order: Vec<usize> = (0..streams.len()).collect();
        order.sort_by_key(|&i| streams[i].id);
        let mut out = vec![None; streams.len()];
        let mut tx = self.begin_write().await?;
        for i in order {
            let s = &streams[i];
            let res = sqlx::query(
                "UPDATE stream SET state = ?, state_serial_no = state_serial_no + 1, lease_expires = ? \
                 WHERE id = ? AND state_serial_no = ?",
            )
            .bind(to.code() as i64)
            .bind(to_micros(&lease_until))
            .bind(s.id)
            .bind(s.state_serial_no as i64)
            .execute(&mut *tx)
            .await?;
            if res.rows_affected() == 1 {
                let mut c = s.clone();
                c.state = to;
                c.state_serial_no += 1;
                c.lease_expires = Some(lease_until);
                out[i] = Some(c);
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// After a claim whose commit outcome is unknown: the streams that carry
    /// this claim's state, next serial and lease token are ours.
    async fn read_back_claims(
        &self,
        streams: &[Stream],
        to: StreamState,
        lease: Timestamp,
    ) -> Result<Vec<Option<Stream>>, StoreError> {
        let mut now: HashMap<i64, (i64, i64, Option<i64>)> = HashMap::new();
        for chunk in shaped_chunks(streams, CHUNK) {
            let sql = format!(
                "SELECT id, state, state_serial_no, lease_expires FROM stream WHERE id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for s in chunk {
                q = q.bind(s.id);
            }
            for r in q.fetch_all(&self.pool).await? {
                now.insert(r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
            }
        }
        let token = to_micros(&lease);
        Ok(streams
            .iter()
            .map(|s| {
                let ours = now.get(&s.id).is_some_and(|&(state, serial, l)| {
                    state == to.code() as i64 && serial == s.state_serial_no as i64 + 1 && l == Some(token)
                });
                ours.then(|| {
                    let mut c = s.clone();
                    c.state = to;
                    c.state_serial_no += 1;
                    c.lease_expires = Some(lease);
                    c
                })
            })
            .collect())
    }

    /// One attempt of [`Store::finish_streams`] (id order, like claims).
    async fn finish_streams_tx(&self, items: &[(Stream, Finish)]) -> Result<Vec<bool>, StoreError> {
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| items[i].0.id);
        let mut held = vec![false; items.len()];
        let mut purge: Vec<i64> = Vec::new();
        let mut tx = self.begin_write().await?;
        for i in order {
            let (claimed, fin) = &items[i];
            let res = sqlx::query(
                "UPDATE stream SET state = ?, state_serial_no = state_serial_no + 1, lease_expires = NULL \
                 WHERE id = ? AND state_serial_no = ?",
            )
            .bind(fin.target(claimed).code() as i64)
            .bind(claimed.id)
            .bind(claimed.state_serial_no as i64)
            .execute(&mut *tx)
            .await?;
            held[i] = res.rows_affected() == 1;
            if held[i] && matches!(fin, Finish::Complete { purge: true }) {
                purge.push(claimed.id);
            }
        }
        for chunk in shaped_chunks(&purge, CHUNK) {
            let list = placeholders(chunk.len());
            for sql in [
                format!("DELETE FROM streamevent WHERE stream_id IN ({list})"),
                format!("DELETE FROM dist_trait WHERE stream_id IN ({list})"),
                format!("DELETE FROM stream WHERE id IN ({list})"),
            ] {
                let mut q = sqlx::query(&sql);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(held)
    }

    /// Write the value-index entries of `rows` (event id, indexed trait name,
    /// value) in the caller's transaction. SQLite: one integer key per row in
    /// `trait_key` ([`index_key`]; a colliding key of the same event is one
    /// entry). MySQL: a typed `trait` row (`ignore`: skip rows already there).
    /// Returns the entries written.
    async fn write_index_rows(
        &self,
        tx: &mut Transaction<'static, Db>,
        rows: &[(i64, &str, &TraitValue)],
        ignore: bool,
    ) -> Result<u64, StoreError> {
        let inserted = match DIALECT {
            Dialect::Sqlite => {
                let vals: Vec<Val<'_>> =
                    rows.iter().flat_map(|(id, name, v)| [Val::I(index_key(name, v)), Val::I(*id)]).collect();
                let head = format!("{} INTO trait_key (key, event_id)", DIALECT.insert_ignore());
                self.insert_rows(tx, &head, 2, &vals).await?
            }
            Dialect::MySql => {
                let mut vals: Vec<Val<'_>> = Vec::with_capacity(rows.len() * 7);
                for (id, name, v) in rows {
                    let (ty, s, f, i, d) = trait_columns(v);
                    vals.extend([Val::I(*id), Val::S(name), Val::I(ty), Val::opt_s(s), Val::opt_f(f), Val::opt_i(i), Val::opt_i(d)]);
                }
                let head = format!(
                    "{} INTO `trait` (event_id, name, type, t_string, t_float, t_int, t_datetime)",
                    if ignore { DIALECT.insert_ignore() } else { "INSERT" }
                );
                self.insert_rows(tx, &head, 7, &vals).await?
            }
        };
        Ok(inserted.affected)
    }

    /// The traits of stored events, for their index entries. `rows` are rows
    /// of `SELECT id, traits FROM event`; an event stored before documents has
    /// its traits read from its `trait` rows on SQLite (on MySQL those rows
    /// are its index entries already, so it is skipped). `only`: just that
    /// trait name. An undecodable document (not written by stv3) is logged
    /// with its event id and the event returned apart, never an error: one
    /// bad row must not stop a purge or an upgrade for good.
    async fn index_traits(
        &self,
        rows: &[DbRow],
        only: Option<&str>,
    ) -> Result<(Vec<(i64, String, TraitValue)>, Vec<i64>), StoreError> {
        let mut out = Vec::new();
        let mut undecodable = Vec::new();
        let mut legacy = Vec::new();
        for r in rows {
            let id: i64 = r.try_get(0)?;
            match opt_text_col(r, 1)? {
                Some(doc) => match decode_traits(&doc) {
                    Ok(traits) => out.extend(
                        traits
                            .into_iter()
                            .filter(|(n, _)| only.is_none_or(|o| o == n.as_str()))
                            .map(|(n, v)| (id, n.to_string(), v)),
                    ),
                    Err(e) => {
                        tracing::warn!(event_id = id, error = %e, "undecodable traits document: no index entries from its traits");
                        undecodable.push(id);
                    }
                },
                None if DIALECT == Dialect::Sqlite => legacy.push(id),
                None => {}
            }
        }
        out.extend(self.legacy_traits(&legacy, only).await?);
        Ok((out, undecodable))
    }

    /// Delete SQLite's `trait_key` entries of events about to be purged, in
    /// the caller's transaction: `pairs` (key, event id) are the keys of all
    /// their traits (a name indexed once and no longer still has entries).
    /// Each statement deletes `key IN (K) AND event_id IN (I)` with keys and
    /// ids of purged events only, so it deletes nothing else
    /// ([`pair_groups`]). Events whose traits are unknown (`unknown`: an
    /// undecodable document) lose their entries by a scan of `trait_key`.
    async fn delete_index_keys(
        &self,
        tx: &mut Transaction<'static, Db>,
        pairs: Vec<(i64, i64)>,
        unknown: &[i64],
    ) -> Result<(), StoreError> {
        if DIALECT != Dialect::Sqlite {
            return Ok(());
        }
        for (keys, ids) in pair_groups(pairs, MAX_BIND_PARAMS) {
            let sql = format!(
                "DELETE FROM trait_key WHERE key IN ({}) AND event_id IN ({})",
                placeholders(keys.len()),
                placeholders(ids.len())
            );
            let mut q = sqlx::query(&sql);
            for k in keys.into_iter().chain(ids) {
                q = q.bind(k);
            }
            q.execute(&mut **tx).await?;
        }
        for chunk in shaped_chunks(unknown, CHUNK) {
            let sql = format!("DELETE FROM trait_key WHERE event_id IN ({})", placeholders(chunk.len()));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Write the index entries of trait `name` for every event stored so far
    /// (idempotent), then mark the name ready. Returns the entries written.
    async fn backfill_index(&self, name: &str) -> Result<u64, StoreError> {
        let mut after = 0i64;
        let mut added = 0u64;
        loop {
            let page = sqlx::query("SELECT id, traits FROM event WHERE id > ? ORDER BY id LIMIT 2000")
                .bind(after)
                .fetch_all(&self.pool)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.try_get(0)?;
            let (values, _undecodable) = self.index_traits(&page, Some(name)).await?;
            let entries: Vec<(i64, &str, &TraitValue)> = values.iter().map(|(id, n, v)| (*id, n.as_str(), v)).collect();
            let mut tx = self.begin_write().await?;
            added += self.write_index_rows(&mut tx, &entries, true).await?;
            tx.commit().await?;
        }
        // Ready: filters on it use the index alone.
        sqlx::query("UPDATE indexed_trait SET ready = 1 WHERE name = ?").bind(name.to_string()).execute(&self.pool).await?;
        self.index.lock().unwrap_or_else(|e| e.into_inner()).ready_read_at = None;
        Ok(added)
    }

    async fn delete_stream(tx: &mut Transaction<'static, Db>, id: i64) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM streamevent WHERE stream_id = ?").bind(id).execute(&mut **tx).await?;
        sqlx::query("DELETE FROM dist_trait WHERE stream_id = ?").bind(id).execute(&mut **tx).await?;
        let n = sqlx::query("DELETE FROM stream WHERE id = ?").bind(id).execute(&mut **tx).await?.rows_affected();
        Ok(n > 0)
    }
}

impl Store for ThisStore {
    async fn check_schema(&self) -> Result<(), StoreError> {
        let expected = Self::expected_version();
        let applied = match sqlx::query("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&self.pool)
            .await
        {
            Ok(r) => r.try_get::<Option<i64>, _>(0)?,
            Err(sqlx::Error::Database(_)) => None, // no migrations table: never migrated
            Err(e) => return Err(e.into()),
        };
        if applied.unwrap_or(0) < expected {
            return Err(StoreError::SchemaBehind { applied, expected });
        }
        Ok(())
    }

    async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let before: HashSet<i64> = self.migration_history().await.unwrap_or_default().into_iter().map(|(v, _)| v).collect();
        Self::migrator().run(&self.pool).await?;
        // Indexed names that a migration (or an interrupted `add_trait_index`)
        // left not ready get their entries now, once, as part of the upgrade.
        let pending =
            sqlx::query("SELECT name FROM indexed_trait WHERE ready = 0 ORDER BY name").fetch_all(&self.pool).await?;
        for r in &pending {
            let name = text_col(r, 0)?;
            let added = self.backfill_index(&name).await?;
            tracing::info!(trait_name = %name, entries = added, "trait index backfilled");
        }
        let after = self.migration_history().await?;
        Ok(after.into_iter().map(|(v, _)| v).filter(|v| !before.contains(v)).collect())
    }

    async fn migration_history(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = match sqlx::query("SELECT version, CAST(description AS CHAR) FROM _sqlx_migrations WHERE success = TRUE ORDER BY version")
            .fetch_all(&self.pool)
            .await
        {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        rows.iter().map(|r| Ok((r.try_get(0)?, text_col(r, 1)?))).collect()
    }

    async fn ingest(&self, events: &[Event], rules: &dyn IngestRules, now: Timestamp) -> Result<IngestReport, StoreError> {
        let mut report = IngestReport { received: events.len(), ..Default::default() };
        let mut seen: HashSet<&str> = HashSet::with_capacity(events.len());
        let mut valid: Vec<Valid<'_>> = Vec::with_capacity(events.len());
        for e in events {
            if e.message_id.is_empty() || e.message_id.chars().count() > 50 {
                report.invalid.push((e.message_id.clone(), "message_id must be 1 to 50 characters".into()));
                continue;
            }
            if e.event_type.is_empty() || e.event_type.chars().count() > 255 {
                report.invalid.push((e.message_id.clone(), "event_type must be 1 to 255 characters".into()));
                continue;
            }
            if !seen.insert(e.message_id.as_str()) {
                report.duplicates.push(e.message_id.clone());
                continue;
            }
            valid.push(Valid {
                event: e,
                doc: encode_traits(&e.traits),
                joins: rules.plan(e),
            });
        }
        if valid.is_empty() {
            return Ok(report);
        }
        let names: Vec<String> =
            valid.iter().map(|v| v.event.event_type.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let type_ids = self.event_type_ids(&names).await?;
        let mut attempt = 0;
        let mut precheck = false;
        loop {
            attempt += 1;
            let res = self.ingest_tx(&valid, &type_ids, rules, now, precheck).await;
            match res {
                Ok(Some(r)) => {
                    report.merge(IngestReport { received: 0, ..r });
                    return Ok(report);
                }
                // Stored duplicates: look them up this time, at once.
                Ok(None) if !precheck => {
                    precheck = true;
                    continue;
                }
                Ok(None) if attempt < MAX_ATTEMPTS => {}
                Err(StoreError::Db(e)) if attempt < MAX_ATTEMPTS && is_retryable(&e) => {
                    tracing::debug!(attempt, "ingest transaction retried: {e}");
                }
                Ok(None) => {
                    return Err(StoreError::Corrupt("ingest kept colliding with concurrent duplicates".into()))
                }
                Err(e) => return Err(e),
            }
            let backoff = 5u64 * (1 << attempt.min(6)) + rand::random::<u64>() % 20;
            tokio::time::sleep(std::time::Duration::from_millis(backoff)).await;
        }
    }

    async fn event_type_ids(&self, names: &[String]) -> Result<BTreeMap<String, i64>, StoreError> {
        let mut out = BTreeMap::new();
        let mut missing: Vec<String> = Vec::new();
        {
            let cache = self.types.lock().unwrap_or_else(|e| e.into_inner());
            for n in names {
                match cache.get(n) {
                    Some(id) => {
                        out.insert(n.clone(), *id);
                    }
                    None => missing.push(n.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        missing.sort();
        missing.dedup();
        for chunk in shaped_chunks(&missing, CHUNK) {
            // Get-or-create that never fails on a concurrent insert of the same
            // name: INSERT IGNORE (autocommit), then SELECT.
            let mut qb: QueryBuilder<'_, Db> =
                QueryBuilder::new(format!("{} INTO event_type (`desc`) ", DIALECT.insert_ignore()));
            qb.push_values(chunk, |mut b, n| {
                b.push_bind(n.clone());
            });
            qb.build().execute(&self.pool).await?;
            let sql = format!("SELECT id, `desc` FROM event_type WHERE `desc` IN ({})", placeholders(chunk.len()));
            let mut q = sqlx::query(&sql);
            for n in chunk {
                q = q.bind(n.clone());
            }
            let rows = q.fetch_all(&self.pool).await?;
            let mut cache = self.types.lock().unwrap_or_else(|e| e.into_inner());
            for r in rows {
                let id: i64 = r.try_get(0)?;
                let name = text_col(&r, 1)?;
                cache.insert(name.clone(), id);
                out.insert(name, id);
            }
        }
        for n in names {
            if !out.contains_key(n) {
                return Err(StoreError::Corrupt(format!("event type {n:?} missing after insert")));
            }
        }
        Ok(out)
    }

    async fn get_event_by_message_id(&self, message_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let row = sqlx::query("SELECT id FROM event WHERE message_id = ?").bind(message_id).fetch_optional(&self.pool).await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(self.events_by_ids(&[r.try_get(0)?]).await?.into_iter().next()),
        }
    }

    async fn get_stream_by_id(&self, id: i64) -> Result<Option<Stream>, StoreError> {
        let mut qb: QueryBuilder<'_, Db> = QueryBuilder::new(format!("SELECT {STREAM_COLS} FROM stream s WHERE s.id = "));
        qb.push_bind(id);
        Ok(self.fetch_streams(qb).await?.into_iter().next())
    }

    async fn get_active_stream(&self, key: &str, now: Timestamp) -> Result<Option<Stream>, StoreError> {
        let mut qb: QueryBuilder<'_, Db> = QueryBuilder::new(format!(
            "SELECT {STREAM_COLS} FROM stream_key k JOIN stream s ON s.id = k.stream_id WHERE k.stream_key = "
        ));
        qb.push_bind(key.to_string());
        qb.push(" AND s.state = ");
        qb.push_bind(StreamState::Active.code() as i64);
        qb.push(" AND s.expire_timestamp > ");
        qb.push_bind(to_micros(&now));
        Ok(self.fetch_streams(qb).await?.into_iter().next())
    }

    async fn get_stream_events(&self, stream_id: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let mut qb: QueryBuilder<'_, Db> = QueryBuilder::new(
            "SELECT e.id FROM streamevent se JOIN event e ON e.id = se.event_id WHERE se.stream_id = ",
        );
        qb.push_bind(stream_id);
        qb.push(" ORDER BY e.generated, e.id");
        let ids = self.ids(qb).await?;
        self.events_by_ids(&ids).await
    }

    async fn ready_streams(&self, kind: ReadyKind, now: Timestamp, limit: u32) -> Result<Vec<Stream>, StoreError> {
        let n = to_micros(&now);
        let (retry, claimed, col) = match kind {
            ReadyKind::Fire => (StreamState::RetryFire, StreamState::Firing, "fire_timestamp"),
            ReadyKind::Expire => (StreamState::RetryExpire, StreamState::Expiring, "expire_timestamp"),
        };
        let mut qb: QueryBuilder<'_, Db> = QueryBuilder::new(format!("SELECT {STREAM_COLS} FROM stream s WHERE ((s.state IN ("));
        qb.push_bind(StreamState::Active.code() as i64);
        qb.push(", ");
        qb.push_bind(retry.code() as i64);
        qb.push(format!(") AND s.{col} < "));
        qb.push_bind(n);
        qb.push(") OR (s.state = ");
        qb.push_bind(claimed.code() as i64);
        // A claimed stream without a lease (written by an older tool, or by hand) is reclaimable too.
        qb.push(" AND (s.lease_expires IS NULL OR s.lease_expires < ");
        qb.push_bind(n);
        qb.push(format!("))) ORDER BY s.{col}, s.id LIMIT "));
        qb.push_bind(limit as i64);
        self.fetch_streams(qb).await
    }

    async fn claim_stream(&self, stream: &Stream, to: StreamState, lease_until: Timestamp) -> Result<Stream, StoreError> {
        let res = sqlx::query(
            "UPDATE stream SET state = ?, state_serial_no = state_serial_no + 1, lease_expires = ? \
             WHERE id = ? AND state_serial_no = ?",
        )
        .bind(to.code() as i64)
        .bind(to_micros(&lease_until))
        .bind(stream.id)
        .bind(stream.state_serial_no as i64)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() != 1 {
            return Err(StoreError::Locked { stream_id: stream.id, serial: stream.state_serial_no });
        }
        let mut s = stream.clone();
        s.state = to;
        s.state_serial_no += 1;
        s.lease_expires = Some(lease_until);
        Ok(s)
    }

    async fn claim_streams(
        &self,
        streams: &[Stream],
        to: StreamState,
        lease_until: Timestamp,
    ) -> Result<Vec<Option<Stream>>, StoreError> {
        // Sub-millisecond jitter makes this claim's lease value its own token, so
        // when the connection is lost mid-commit the outcome can be read back
        // (retrying the claim instead would leave a committed claim orphaned
        // until its lease ran out).
        let lease = lease_until + chrono::Duration::microseconds(i64::from(rand::random::<u32>() % 1_000));
        match retry_on_conflict!(self.claim_streams_tx(streams, to, lease)) {
            Err(StoreError::Db(e)) if is_connection_lost(&e) => {
                tracing::warn!("claim of {} streams: connection lost ({e}); reading the outcome back", streams.len());
                let started = std::time::Instant::now();
                let mut delay = std::time::Duration::from_millis(100);
                loop {
                    tokio::time::sleep(delay).await;
                    match self.read_back_claims(streams, to, lease).await {
                        Err(StoreError::Db(e)) if is_connection_lost(&e) && started.elapsed() < OUTAGE_BUDGET => {
                            delay = (delay * 2).min(std::time::Duration::from_secs(5));
                        }
                        other => return other,
                    }
                }
            }
            other => other,
        }
    }

    async fn finish_streams(&self, items: &[(Stream, Finish)]) -> Result<Vec<bool>, StoreError> {
        // Finishing is safe to repeat (the serial check): retry through an
        // outage rather than leave finished work to be redone after the lease.
        let started = std::time::Instant::now();
        let mut delay = std::time::Duration::from_millis(100);
        loop {
            match retry_on_conflict!(self.finish_streams_tx(items)) {
                Err(StoreError::Db(e)) if is_connection_lost(&e) && started.elapsed() < OUTAGE_BUDGET => {
                    tracing::warn!("finish of {} streams: connection lost ({e}); retrying in {delay:?}", items.len());
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    async fn renew_lease(&self, claimed: &Stream, lease_until: Timestamp) -> Result<(), StoreError> {
        let res = sqlx::query("UPDATE stream SET lease_expires = ? WHERE id = ? AND state_serial_no = ?")
            .bind(to_micros(&lease_until))
            .bind(claimed.id)
            .bind(claimed.state_serial_no as i64)
            .execute(&self.pool)
            .await?;
        if res.rows_affected() != 1 {
            return Err(StoreError::Locked { stream_id: claimed.id, serial: claimed.state_serial_no });
        }
        Ok(())
    }

    async fn complete_stream(&self, claimed: &Stream, purge: bool) -> Result<(), StoreError> {
        self.finish_claimed(claimed, if purge { None } else { Some(StreamState::Completed) }).await
    }

    async fn error_stream(&self, claimed: &Stream) -> Result<(), StoreError> {
        let to = match claimed.state {
            StreamState::Expiring | StreamState::RetryExpire | StreamState::ExpireError => StreamState::ExpireError,
            _ => StreamState::Error,
        };
        self.finish_claimed(claimed, Some(to)).await
    }

    async fn set_stream_state(&self, stream: &Stream, to: StreamState) -> Result<Stream, StoreError> {
        let res = sqlx::query(
            "UPDATE stream SET state = ?, state_serial_no = state_serial_no + 1, lease_expires = NULL \
             WHERE id = ? AND state_serial_no = ?",
        )
        .bind(to.code() as i64)
        .bind(stream.id)
        .bind(stream.state_serial_no as i64)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() != 1 {
            return Err(StoreError::Locked { stream_id: stream.id, serial: stream.state_serial_no });
        }
        self.get_stream_by_id(stream.id).await?.ok_or(StoreError::StreamNotFound(stream.id))
    }

    async fn reset_stream(&self, id: i64) -> Result<Stream, StoreError> {
        let s = self.get_stream_by_id(id).await?.ok_or(StoreError::StreamNotFound(id))?;
        match s.state {
            StreamState::Error => self.set_stream_state(&s, StreamState::RetryFire).await,
            StreamState::ExpireError => self.set_stream_state(&s, StreamState::RetryExpire).await,
            _ => Ok(s),
        }
    }

    async fn purge_stream(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let found = Self::delete_stream(&mut tx, id).await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn find_older_events(&self, before: Timestamp, limit: u32) -> Result<Vec<i64>, StoreError> {
        let mut qb: QueryBuilder<'_, Db> = QueryBuilder::new("SELECT id FROM event WHERE generated < ");
        qb.push_bind(to_micros(&before));
        qb.push(" ORDER BY generated, id LIMIT ");
        qb.push_bind(limit as i64);
        self.ids(qb).await
    }

    async fn purge_events(&self, ids: &[i64]) -> Result<u64, StoreError> {
        // SQLite's index keys are computed from the events' traits.
        let mut pairs: Vec<(i64, i64)> = Vec::new();
        let mut unknown: Vec<i64> = Vec::new();
        if DIALECT == Dialect::Sqlite {
            for chunk in shaped_chunks(ids, CHUNK) {
                let sql = format!("SELECT id, traits FROM event WHERE id IN ({})", placeholders(chunk.len()));
                let mut q = sqlx::query(&sql);
                for id in chunk {
                    q = q.bind(*id);
                }
                let rows = q.fetch_all(&self.pool).await?;
                let (traits, bad) = self.index_traits(&rows, None).await?;
                pairs.extend(traits.iter().map(|(id, n, v)| (index_key(n, v), *id)));
                unknown.extend(bad);
            }
        }
        let mut tx = self.begin_write().await?;
        self.delete_index_keys(&mut tx, pairs, &unknown).await?;
        let mut n = 0;
        for chunk in shaped_chunks(ids, CHUNK) {
            let list = placeholders(chunk.len());
            for sql in [
                format!("DELETE FROM streamevent WHERE event_id IN ({list})"),
                format!("DELETE FROM `trait` WHERE event_id IN ({list})"),
                format!("DELETE FROM event WHERE id IN ({list})"),
            ] {
                let mut q = sqlx::query(&sql);
                for id in chunk {
                    q = q.bind(*id);
                }
                let res = q.execute(&mut *tx).await?;
                if sql.starts_with("DELETE FROM event ") {
                    n += res.rows_affected();
                }
            }
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn find_streams(&self, q: &StreamQuery) -> Result<Vec<Marked<Stream>>, StoreError> {
        let mark = match &q.mark {
            Some(m) => Mark::parse(m)?,
            None => Mark::default(),
        };
        let mut qb: QueryBuilder<'_, Db> = QueryBuilder::new(format!("SELECT {STREAM_COLS} FROM stream s"));
        Self::stream_where(&mut qb, q, &mark);
        qb.push(if mark.ascending { " ORDER BY s.id ASC" } else { " ORDER BY s.id DESC" });
        if let Some(l) = q.limit {
            qb.push(" LIMIT ");
            qb.push_bind(l as i64);
        }
        let streams = self.fetch_streams(qb).await?;
        Ok(streams.into_iter().map(|s| Marked { mark: mark.render(s.id), item: s }).collect())
    }

    async fn count_streams(&self, q: &StreamQuery) -> Result<u64, StoreError> {
        let mut qb: QueryBuilder<'_, Db> = QueryBuilder::new("SELECT COUNT(*) FROM stream s");
        let mark = match &q.mark {
            Some(m) => Mark::parse(m)?,
            None => Mark::default(),
        };
        Self::stream_where(&mut qb, q, &mark);
        let n: i64 = qb.build().fetch_one(&self.pool).await?.try_get(0)?;
        Ok(n as u64)
    }

    async fn find_events(&self, q: &EventQuery) -> Result<Vec<Marked<StoredEvent>>, StoreError> {
        let mark = match &q.mark {
            Some(m) => Mark::parse(m)?,
            None => Mark::default(),
        };
        let ready = self.ready_index().await?;
        let mut qb: QueryBuilder<'_, Db> = QueryBuilder::new("SELECT e.id FROM event e");
        Self::event_where(&mut qb, q, &mark, &ready);
        qb.push(if mark.ascending { " ORDER BY e.id ASC" } else { " ORDER BY e.id DESC" });
        if let Some(l) = q.limit {
            qb.push(" LIMIT ");
            qb.push_bind(l as i64);
        }
        let ids = self.ids(qb).await?;
        let events = self.events_by_ids(&ids).await?;
        Ok(events.into_iter().map(|e| Marked { mark: mark.render(e.id), item: e }).collect())
    }

    async fn count_events(&self, q: &EventQuery) -> Result<u64, StoreError> {
        let mark = match &q.mark {
            Some(m) => Mark::parse(m)?,
            None => Mark::default(),
        };
        let ready = self.ready_index().await?;
        let mut qb: QueryBuilder<'_, Db> = QueryBuilder::new("SELECT COUNT(*) FROM event e");
        Self::event_where(&mut qb, q, &mark, &ready);
        let n: i64 = qb.build().fetch_one(&self.pool).await?.try_get(0)?;
        Ok(n as u64)
    }

    async fn trait_index(&self) -> Result<Vec<IndexedTrait>, StoreError> {
        let rows = sqlx::query("SELECT name, ready FROM indexed_trait ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok(IndexedTrait { name: text_col(r, 0)?, ready: r.try_get::<i64, _>(1)? != 0 }))
            .collect()
    }

    async fn add_trait_index(&self, name: &str) -> Result<u64, StoreError> {
        if name.is_empty() || name.chars().count() > 100 {
            return Err(StoreError::Corrupt(format!("trait name {name:?}: must be 1 to 100 characters")));
        }
        // 1. Register the name and bump the generation: waits for in-flight
        //    ingests (they hold the shared lock); later ones write its rows.
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE trait_index_gen SET gen = gen + 1 WHERE id = 1").execute(&mut *tx).await?;
        let sql = format!("{} INTO indexed_trait (name, ready) VALUES (?, 0)", DIALECT.insert_ignore());
        sqlx::query(&sql).bind(name.to_string()).execute(&mut *tx).await?;
        tx.commit().await?;
        // 2. Backfill the events stored before; 3. ready.
        self.backfill_index(name).await
    }
}
