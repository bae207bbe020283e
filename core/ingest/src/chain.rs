//! The handler chain: one batch of raw messages in, durable effects, then one ack.
//!
//! For each batch (up to `max_messages`, from any [`Source`]):
//! 1. **prepare** (pure): parse each body ([`crate::parse`]); poison becomes a quarantine
//!    record; good notifications go through the payload filters, then to each handler
//!    whose event-type filter admits them: shoebox gets the archive line, winchester
//!    gets the distilled event (a distiller error is poison too).
//! 2. **quarantine**: write + publish the poison records (durable).
//! 3. **archive**: append the lines of notifications not archived before (durable),
//!    concurrently with
//! 4. **store**: `add_events` (one transaction, durable, idempotent on message_id).
//! 5. **ack**: one multiple-ack up to the batch's last delivery tag (or checkpoint the
//!    file offset).
//!
//! A failure in 2-4 leaves the batch unacked; the runner backs off and retries the
//! stages not yet done, forever (the process never crash-loops); on shutdown during a
//! retry the batch is nacked with requeue. An ack failure (connection lost) is harmless:
//! the broker redelivers and everything downstream is idempotent.
//!
//! **Exactly the published set in the archive.** The DB dedupes on message_id. The
//! archive is append-only, so the chain remembers recently archived message_ids
//! ([`RecentIds`]) and skips them: a redelivery (after a reconnect, or a retry after a
//! DB error) is not archived again. After a crash the set is seeded from the archive's
//! own tail ([`RawArchive::recent_lines`]) — the messages a crash can cause to be
//! redelivered are exactly the unacked ones, which are the newest lines — so a
//! kill -9 between "archive durable" and "ack" does not duplicate either. The window
//! (`[stv3] dedupe_window`, default 65536) must exceed prefetch × consumers sharing the
//! archive; a producer that re-publishes an old message_id beyond the window gets a
//! second archive line (the DB still stores one event).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use stv3_amqp::Backoff;
use stv3_event::Event;
use tokio::sync::watch;

use crate::config::EventTypeFilter;
use crate::dedupe::{message_id_of_line, RecentIds};
use crate::parse::{self, Poison, Reason, Wrap};
use crate::payload_filter::PayloadFilter;
use crate::quarantine::{Quarantine, QuarantineRecord};

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One raw message from a source.
#[derive(Debug, Clone, PartialEq)]
pub struct RawMessage {
    pub body: Vec<u8>,
    pub exchange: String,
    pub routing_key: String,
    /// Delivery tag (AMQP) or end offset (file).
    pub tag: u64,
}

/// What [`Source::commit`] needs to acknowledge a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitToken {
    /// Connection generation the batch came from (tags are per channel).
    pub generation: u64,
    pub last_tag: u64,
}

pub struct SourceBatch {
    pub messages: Vec<RawMessage>,
    pub token: CommitToken,
}

/// Where batches come from and where acks go.
pub trait Source: Send {
    /// The next batch; `Ok(None)` when the source is exhausted (file without --follow).
    fn next_batch(&mut self) -> BoxFut<'_, anyhow::Result<Option<SourceBatch>>>;
    /// Acknowledge everything up to the token (after the batch is durable).
    fn commit(&mut self, token: CommitToken) -> BoxFut<'_, anyhow::Result<()>>;
    /// Give the batch back (nack + requeue) when shutting down before it is durable.
    fn abort(&mut self, token: CommitToken) -> BoxFut<'_, ()>;
    /// Connection count beyond the first (metrics).
    fn reconnects(&self) -> u64 {
        0
    }
    /// A full batch that has already arrived, taken without waiting, so the chain can
    /// prepare it while the previous batch is made durable. `None` when there is none,
    /// or when the source wants no batch in flight (e.g. a reconnect is due).
    fn ready_batch(&mut self) -> Option<SourceBatch> {
        None
    }
}

/// The raw archive (shoebox handler).
pub trait RawArchive: Send {
    /// Append the lines; Ok means they are on disk (fsynced).
    fn write_batch(&mut self, lines: Vec<String>) -> BoxFut<'_, anyhow::Result<()>>;
    /// The newest lines written before this process started (to seed the dedupe set).
    fn recent_lines(&mut self, max: usize) -> anyhow::Result<Vec<String>>;
}

/// What the store did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOutcome {
    pub saved: usize,
    pub duplicates: usize,
    pub invalid: Vec<(String, String)>,
}

/// Distill + store (winchester handler).
pub trait EventSink: Send + Sync {
    /// Pure: `Ok(None)` = the distiller drops it; `Err` = poison.
    fn distill(&self, notification: &Value) -> Result<Option<Event>, String>;
    /// Save and add to streams in one transaction; Ok means committed. The events
    /// are borrowed: a retry hands the same batch again, nothing is copied.
    fn add_events<'a>(&'a self, events: &'a [Event]) -> BoxFut<'a, anyhow::Result<StoreOutcome>>;
}

/// Counters shared with the stats line and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub consumed: AtomicU64,
    pub acked: AtomicU64,
    pub quarantined: AtomicU64,
    pub archived: AtomicU64,
    pub archive_skipped: AtomicU64,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub dropped: AtomicU64,
    pub batches: AtomicU64,
    pub retries: AtomicU64,
    pub reconnects: AtomicU64,
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A batch after the pure step, with the durable stages still to do.
#[derive(Debug, Default)]
pub struct Prepared {
    pub quarantine: Vec<QuarantineRecord>,
    pub archive: Vec<(String, String)>,
    pub events: Vec<Event>,
    pub dropped: usize,
    pub consumed: usize,
    quarantined_done: bool,
    archived_done: bool,
}

/// One consumer's chain.
pub struct Chain {
    pub consumer: String,
    pub queue: String,
    pub archive: Option<Box<dyn RawArchive>>,
    pub archive_filter: EventTypeFilter,
    pub wrap: Wrap,
    pub store: Option<Arc<dyn EventSink>>,
    pub store_filter: EventTypeFilter,
    pub payload_filters: Vec<PayloadFilter>,
    pub quarantine: Quarantine,
    pub max_payload_bytes: usize,
    pub recent: RecentIds,
    pub counters: Arc<Counters>,
    /// Batches whose store transaction may be in flight at once (at least 1). Acks
    /// stay in delivery order: a batch is acked only when it and every batch before
    /// it are durable.
    pub store_inflight: usize,
}

/// The pure step of a [`Chain`]: parse, filter, distill, shape archive lines.
#[derive(Clone)]
pub struct Preparer {
    consumer: String,
    queue: String,
    archive: bool,
    archive_filter: EventTypeFilter,
    wrap: Wrap,
    store: Option<Arc<dyn EventSink>>,
    store_filter: EventTypeFilter,
    payload_filters: Vec<PayloadFilter>,
    max_payload_bytes: usize,
}

impl Preparer {
    fn poison(&self, m: &RawMessage, p: Poison) -> QuarantineRecord {
        tracing::warn!(consumer = %self.consumer, queue = %self.queue, reason = p.reason.code(),
            message_id = p.message_id.as_deref().unwrap_or("-"), detail = %p.detail, "quarantined poison message");
        metrics::counter!("stv3_ingest_quarantined_total", "consumer" => self.consumer.clone(), "reason" => p.reason.code())
            .increment(1);
        QuarantineRecord::new(
            &self.consumer,
            &self.queue,
            &m.exchange,
            &m.routing_key,
            &m.body,
            &p,
        )
    }

    /// The pure step.
    pub fn prepare(&self, messages: &[RawMessage]) -> Prepared {
        let mut p = Prepared {
            consumed: messages.len(),
            ..Default::default()
        };
        for m in messages {
            let mut n = match parse::parse(&m.body, self.max_payload_bytes) {
                Ok(n) => n,
                Err(poison) => {
                    p.quarantine.push(self.poison(m, poison));
                    continue;
                }
            };
            let rewritten = !self.payload_filters.is_empty();
            for f in &self.payload_filters {
                f.apply(&mut n.value);
            }
            let mut event = None;
            if let Some(store) = &self.store {
                if self.store_filter.admits(&n.event_type) {
                    match store.distill(&n.value) {
                        Ok(Some(e)) => event = Some(e),
                        Ok(None) => p.dropped += 1,
                        Err(e) => {
                            let poison = Poison {
                                reason: Reason::Distill,
                                detail: e,
                                message_id: Some(n.message_id.clone()),
                            };
                            p.quarantine.push(self.poison(m, poison));
                            continue;
                        }
                    }
                }
            }
            if self.archive && self.archive_filter.admits(&n.event_type) {
                p.archive.push((
                    n.message_id.clone(),
                    parse::archive_line(&m.body, &n, &self.wrap, rewritten),
                ));
            }
            if let Some(e) = event {
                p.events.push(e);
            }
        }
        p
    }
}

impl Chain {
    /// Seed the dedupe set from the archive's tail (call once at start).
    pub fn seed_recent(&mut self) -> anyhow::Result<usize> {
        let Some(a) = self.archive.as_mut() else {
            return Ok(0);
        };
        let lines = a.recent_lines(self.recent.cap())?;
        let mut n = 0;
        for l in lines {
            if let Some(id) = message_id_of_line(&l) {
                self.recent.insert(&id);
                n += 1;
            }
        }
        Ok(n)
    }

    /// What the pure step needs, detached from the chain so it can run on another
    /// thread while the previous batch is made durable.
    pub fn preparer(&self) -> Preparer {
        Preparer {
            consumer: self.consumer.clone(),
            queue: self.queue.clone(),
            archive: self.archive.is_some(),
            archive_filter: self.archive_filter.clone(),
            wrap: self.wrap.clone(),
            store: self.store.clone(),
            store_filter: self.store_filter.clone(),
            payload_filters: self.payload_filters.clone(),
            max_payload_bytes: self.max_payload_bytes,
        }
    }

    /// The local durable stages not yet done: quarantine, then the archive. Ok means
    /// both are durable; each is marked done on its own, so a retry redoes only
    /// what failed. The store stage runs in its own task ([`store_until_durable`]),
    /// concurrently with these and with the stages of the batches around it.
    pub async fn commit_local(&mut self, p: &mut Prepared) -> anyhow::Result<()> {
        if !p.quarantined_done {
            self.quarantine
                .put(&p.quarantine)
                .await
                .map_err(|e| e.context("quarantine"))?;
            p.quarantined_done = true;
            self.counters
                .quarantined
                .fetch_add(p.quarantine.len() as u64, Ordering::Relaxed);
        }
        if !p.archived_done {
            if let Some(a) = self.archive.as_mut() {
                let (archived, archive_s) = timed(archive_batch(
                    a.as_mut(),
                    &mut self.recent,
                    &self.counters,
                    &self.consumer,
                    &p.archive,
                ))
                .await;
                tracing::debug!(consumer = %self.consumer, archive_ms = archive_s * 1e3, "batch archived");
                archived?;
            }
            p.archived_done = true;
        }
        Ok(())
    }
}

/// A future's output and how long it took, in seconds.
async fn timed<T>(f: impl Future<Output = T>) -> (T, f64) {
    let t = Instant::now();
    let r = f.await;
    (r, t.elapsed().as_secs_f64())
}

/// The archive stage: append the lines not archived recently (durable on Ok).
async fn archive_batch(
    archive: &mut dyn RawArchive,
    recent: &mut RecentIds,
    counters: &Counters,
    consumer: &str,
    batch: &[(String, String)],
) -> anyhow::Result<()> {
    let mut lines = Vec::with_capacity(batch.len());
    let mut ids: Vec<&String> = Vec::with_capacity(batch.len());
    let mut seen = std::collections::HashSet::with_capacity(batch.len());
    let mut skipped = 0u64;
    for (id, line) in batch {
        if recent.contains(id) || !seen.insert(id) {
            skipped += 1;
            continue;
        }
        ids.push(id);
        lines.push(line.clone());
    }
    let n = lines.len() as u64;
    if n > 0 {
        archive
            .write_batch(lines)
            .await
            .map_err(|e| e.context("archive"))?;
    }
    for id in ids {
        recent.insert(id);
    }
    counters.archived.fetch_add(n, Ordering::Relaxed);
    counters
        .archive_skipped
        .fetch_add(skipped, Ordering::Relaxed);
    metrics::counter!("stv3_ingest_archived_total", "consumer" => consumer.to_string())
        .increment(n);
    Ok(())
}

/// The store stage: distilled events into the store (one durable transaction).
async fn store_batch(
    store: &dyn EventSink,
    counters: &Counters,
    consumer: &str,
    events: &[Event],
) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let out = store
        .add_events(events)
        .await
        .map_err(|e| e.context("store"))?;
    for (id, why) in &out.invalid {
        tracing::warn!(consumer = %consumer, message_id = %id, reason = %why, "event not stored (invalid)");
    }
    counters
        .stored
        .fetch_add(out.saved as u64, Ordering::Relaxed);
    counters
        .duplicates
        .fetch_add(out.duplicates as u64, Ordering::Relaxed);
    metrics::counter!("stv3_ingest_events_stored_total", "consumer" => consumer.to_string())
        .increment(out.saved as u64);
    metrics::counter!("stv3_ingest_duplicates_total", "consumer" => consumer.to_string())
        .increment(out.duplicates as u64);
    Ok(())
}

/// How the runner retries a failing batch.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The source has no more messages.
    Exhausted,
    /// Shutdown was requested.
    Shutdown,
}

/// Run one consumer until the source is exhausted or `shutdown` becomes true.
/// Never returns an error for a batch failure (it retries); only a source that cannot
/// be read at all (e.g. a file source whose checkpoint is invalid) ends it with Err.
///
/// Each batch's store transaction runs in its own task while the loop archives it
/// and goes on to the next batch already delivered, so up to `store_inflight`
/// transactions overlap (the database does their work on several cores; concurrent
/// ingests of the same stream serialize on its stream-key lock). Acks stay in
/// delivery order: the oldest batch is acked once it is durable, and only then the
/// next. Before waiting on the source for a new batch, every batch in flight is
/// finished and acked, so nothing durable waits for traffic to be acknowledged.
pub async fn run(
    chain: &mut Chain,
    source: &mut dyn Source,
    mut shutdown: watch::Receiver<bool>,
    retry: RetryPolicy,
    health: Option<stv3_telemetry::HealthComponent>,
) -> anyhow::Result<Stopped> {
    let consumer = chain.consumer.clone();
    let preparer = Arc::new(chain.preparer());
    let window = chain.store_inflight.max(1);
    // The next batch, taken while the current one was made durable, and its prepare
    // running on a blocking thread meanwhile.
    let mut ahead: Option<Ahead> = None;
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    loop {
        let stopping = *shutdown.borrow();
        if stopping {
            // a batch taken ahead was never acked: the broker requeues it on close
            settle(chain, source, &mut inflight, 0, &health).await?;
            return Ok(Stopped::Shutdown);
        }
        let (token, n, mut prepared, started, wait_s, prepare_s) = match ahead.take() {
            Some(a) => {
                let started = Instant::now();
                let prepared = a
                    .prepared
                    .await
                    .map_err(|e| anyhow::anyhow!("prepare task: {e}"))?;
                // only the part of the prepare the durable stage did not hide
                let prepare_s = started.elapsed().as_secs_f64();
                (a.token, a.n, prepared, started, 0.0, prepare_s)
            }
            None => {
                // Nothing delivered ahead: finish what is in flight before waiting.
                if !settle(chain, source, &mut inflight, 0, &health).await? {
                    return Ok(Stopped::Shutdown);
                }
                let waited = Instant::now();
                let next = tokio::select! {
                    biased;
                    _ = shutdown.changed() => return Ok(Stopped::Shutdown),
                    b = source.next_batch() => b?,
                };
                let wait_s = waited.elapsed().as_secs_f64();
                let Some(batch) = next else {
                    return Ok(Stopped::Exhausted);
                };
                let started = Instant::now();
                let n = batch.messages.len() as u64;
                count_consumed(chain, &consumer, n);
                let prepared = preparer.prepare(&batch.messages);
                let prepare_s = started.elapsed().as_secs_f64();
                (batch.token, n, prepared, started, wait_s, prepare_s)
            }
        };
        if let Some(next) = source.ready_batch() {
            let n = next.messages.len() as u64;
            count_consumed(chain, &consumer, n);
            let p = preparer.clone();
            ahead = Some(Ahead {
                token: next.token,
                n,
                prepared: tokio::task::spawn_blocking(move || p.prepare(&next.messages)),
            });
        }
        let store = match &chain.store {
            Some(st) if !prepared.events.is_empty() => Some(tokio::spawn(store_until_durable(
                st.clone(),
                chain.counters.clone(),
                consumer.clone(),
                std::mem::take(&mut prepared.events),
                prepared.dropped,
                retry.clone(),
                shutdown.clone(),
                health.clone(),
            ))),
            _ => {
                chain
                    .counters
                    .dropped
                    .fetch_add(prepared.dropped as u64, Ordering::Relaxed);
                None
            }
        };
        inflight.push_back(InFlight {
            token,
            n,
            started,
            wait_s,
            prepare_s,
            store,
            local_done: false,
        });
        let mut backoff = Backoff::new(retry.initial, retry.max);
        loop {
            match chain.commit_local(&mut prepared).await {
                Ok(()) => break,
                Err(e) => {
                    let delay = backoff.next_delay();
                    let stop = batch_failed(
                        &chain.counters,
                        &consumer,
                        &health,
                        &e,
                        delay,
                        &mut shutdown,
                    )
                    .await;
                    if stop {
                        tracing::warn!(consumer = %consumer, "shutdown during retry: returning the batch to the queue");
                        // The batches before this one may still become durable and
                        // be acked; this one and any left are given back.
                        inflight.pop_back();
                        if settle(chain, source, &mut inflight, 0, &health).await? {
                            source.abort(token).await;
                        }
                        return Ok(Stopped::Shutdown);
                    }
                }
            }
        }
        if let Some(b) = inflight.back_mut() {
            b.local_done = true;
        }
        metrics::gauge!("stv3_ingest_store_inflight", "consumer" => consumer.clone())
            .set(inflight.len() as f64);
        if !settle(chain, source, &mut inflight, window - 1, &health).await? {
            return Ok(Stopped::Shutdown);
        }
    }
}

/// A batch whose local stages are done (or running) and whose store may be in flight.
struct InFlight {
    token: CommitToken,
    n: u64,
    started: Instant,
    wait_s: f64,
    prepare_s: f64,
    store: Option<tokio::task::JoinHandle<bool>>,
    local_done: bool,
}

/// Count, report and wait out one failed attempt of a durable stage. Returns true
/// when shutdown was requested meanwhile (the caller gives the batch back).
async fn batch_failed(
    counters: &Counters,
    consumer: &str,
    health: &Option<stv3_telemetry::HealthComponent>,
    e: &anyhow::Error,
    delay: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    note_failure(counters, consumer, health, e, delay);
    let stop = tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = shutdown.changed() => true,
    };
    stop || *shutdown.borrow()
}

fn note_failure(
    counters: &Counters,
    consumer: &str,
    health: &Option<stv3_telemetry::HealthComponent>,
    e: &anyhow::Error,
    delay: Duration,
) {
    counters.retries.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("stv3_ingest_batch_failures_total", "consumer" => consumer.to_string())
        .increment(1);
    if let Some(h) = health {
        h.fail(format!("batch not durable: {e:#}"));
    }
    tracing::error!(consumer = %consumer, error = %format!("{e:#}"), retry_in_ms = delay.as_millis() as u64,
        "batch not durable; not acking, will retry");
}

/// The store stage of one batch, retried with backoff until it is durable (true) or
/// shutdown is requested during a retry (false).
#[allow(clippy::too_many_arguments)]
async fn store_until_durable(
    store: Arc<dyn EventSink>,
    counters: Arc<Counters>,
    consumer: String,
    events: Vec<Event>,
    dropped: usize,
    retry: RetryPolicy,
    mut shutdown: watch::Receiver<bool>,
    health: Option<stv3_telemetry::HealthComponent>,
) -> bool {
    let mut backoff = Backoff::new(retry.initial, retry.max);
    loop {
        let (stored, store_s) =
            timed(store_batch(store.as_ref(), &counters, &consumer, &events)).await;
        tracing::debug!(consumer = %consumer, store_ms = store_s * 1e3, "batch stored");
        match stored {
            Ok(()) => {
                counters
                    .dropped
                    .fetch_add(dropped as u64, Ordering::Relaxed);
                return true;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                note_failure(&counters, &consumer, &health, &e, delay);
                let stop = tokio::select! {
                    _ = tokio::time::sleep(delay) => false,
                    _ = shutdown.changed() => true,
                };
                if stop || *shutdown.borrow() {
                    return false;
                }
            }
        }
    }
}

/// Finish the oldest batches in flight, in order, until at most `keep` are left:
/// wait for each one's store, then ack it. Returns false when a store gave up
/// (shutdown during its retry): that batch and every one after it are given back
/// (nack with requeue up to the newest), and nothing after it is acked. A store
/// task that panicked is an error (nothing after it is acked either).
async fn settle(
    chain: &mut Chain,
    source: &mut dyn Source,
    inflight: &mut VecDeque<InFlight>,
    keep: usize,
    health: &Option<stv3_telemetry::HealthComponent>,
) -> anyhow::Result<bool> {
    while inflight.len() > keep {
        let Some(mut b) = inflight.pop_front() else {
            break;
        };
        let durable = b.local_done
            && match b.store.take() {
                None => true,
                Some(task) => task.await.map_err(|e| {
                    anyhow::anyhow!("store task of consumer {}: {e}", chain.consumer)
                })?,
            };
        if !durable {
            tracing::warn!(consumer = %chain.consumer, "shutdown during retry: returning the batch to the queue");
            let last = inflight.back().map(|l| l.token).unwrap_or(b.token);
            for rest in inflight.drain(..) {
                if let Some(t) = rest.store {
                    let _ = t.await;
                }
            }
            source.abort(last).await;
            return Ok(false);
        }
        ack(chain, source, &b, health).await;
    }
    Ok(true)
}

/// Acknowledge one durable batch and record its timings.
async fn ack(
    chain: &mut Chain,
    source: &mut dyn Source,
    b: &InFlight,
    health: &Option<stv3_telemetry::HealthComponent>,
) {
    let consumer = &chain.consumer;
    if let Some(h) = health {
        h.ok();
    }
    let durable_s = b.started.elapsed().as_secs_f64() - b.prepare_s;
    let acking = Instant::now();
    if let Err(e) = source.commit(b.token).await {
        // The batch is durable; the source will see it again and the chain dedupes it.
        tracing::warn!(consumer = %consumer, error = %format!("{e:#}"), "ack failed after the batch was durable (it will be redelivered and deduplicated)");
    } else {
        chain.counters.acked.fetch_add(b.n, Ordering::Relaxed);
        metrics::counter!("stv3_ingest_acked_total", "consumer" => consumer.clone()).increment(b.n);
    }
    chain.counters.batches.fetch_add(1, Ordering::Relaxed);
    chain
        .counters
        .reconnects
        .store(source.reconnects(), Ordering::Relaxed);
    let ack_s = acking.elapsed().as_secs_f64();
    metrics::histogram!("stv3_ingest_batch_seconds", "consumer" => consumer.clone())
        .record(b.started.elapsed().as_secs_f64());
    for (stage, secs) in [
        ("wait", b.wait_s),
        ("prepare", b.prepare_s),
        ("durable", durable_s),
        ("ack", ack_s),
    ] {
        metrics::histogram!("stv3_ingest_stage_seconds", "consumer" => consumer.clone(), "stage" => stage)
            .record(secs);
    }
    tracing::debug!(consumer = %consumer, messages = b.n, wait_ms = b.wait_s * 1e3, prepare_ms = b.prepare_s * 1e3,
        durable_ms = durable_s * 1e3, ack_ms = ack_s * 1e3, "batch done");
    metrics::gauge!("stv3_ingest_reconnects", "consumer" => consumer.clone())
        .set(source.reconnects() as f64);
}

/// A batch taken ahead (see [`Source::ready_batch`]) and its prepare in flight.
struct Ahead {
    token: CommitToken,
    n: u64,
    prepared: tokio::task::JoinHandle<Prepared>,
}

fn count_consumed(chain: &Chain, consumer: &str, n: u64) {
    chain.counters.consumed.fetch_add(n, Ordering::Relaxed);
    metrics::counter!("stv3_ingest_consumed_total", "consumer" => consumer.to_string())
        .increment(n);
}

/// A source over messages already in memory (replay through the chain, tests).
pub struct VecSource {
    batches: std::collections::VecDeque<Vec<RawMessage>>,
    pub committed: Vec<CommitToken>,
    pub aborted: Vec<CommitToken>,
    next_tag: u64,
    read_ahead: bool,
}

impl VecSource {
    pub fn new(messages: Vec<RawMessage>, batch: usize) -> Self {
        let mut batches = std::collections::VecDeque::new();
        let mut it = messages.into_iter().peekable();
        while it.peek().is_some() {
            batches.push_back(it.by_ref().take(batch.max(1)).collect());
        }
        VecSource {
            batches,
            committed: Vec::new(),
            aborted: Vec::new(),
            next_tag: 0,
            read_ahead: false,
        }
    }

    /// Offer the next batch as already delivered ([`Source::ready_batch`]), as a
    /// broker with a backlog does, so the chain keeps several batches in flight.
    pub fn read_ahead(mut self) -> Self {
        self.read_ahead = true;
        self
    }

    fn take(&mut self) -> Option<SourceBatch> {
        let mut messages = self.batches.pop_front()?;
        for m in &mut messages {
            self.next_tag += 1;
            m.tag = self.next_tag;
        }
        Some(SourceBatch {
            messages,
            token: CommitToken {
                generation: 0,
                last_tag: self.next_tag,
            },
        })
    }
}

impl Source for VecSource {
    fn next_batch(&mut self) -> BoxFut<'_, anyhow::Result<Option<SourceBatch>>> {
        let b = self.take();
        Box::pin(async move { Ok(b) })
    }

    fn ready_batch(&mut self) -> Option<SourceBatch> {
        if self.read_ahead {
            self.take()
        } else {
            None
        }
    }

    fn commit(&mut self, token: CommitToken) -> BoxFut<'_, anyhow::Result<()>> {
        self.committed.push(token);
        Box::pin(async { Ok(()) })
    }

    fn abort(&mut self, token: CommitToken) -> BoxFut<'_, ()> {
        self.aborted.push(token);
        Box::pin(async {})
    }
}
