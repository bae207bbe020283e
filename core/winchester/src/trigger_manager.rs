//! The ingest side of winchester: notifications -> events -> store -> streams.
//!
//! `add_events(batch, now)` saves a batch and adds every new event to the
//! streams of every matching trigger, in ONE store transaction; when it
//! returns Ok the batch is durable (ack after this). The clock is passed in:
//! wall clock normally, event time when replaying.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use stv3_event::{Event, Timestamp};

use crate::config::{ConfigError, WinchesterConfig};
use crate::store::{AnyStore, IngestReport, Store, StoreError};
use crate::trigger::{TriggerDefinition, TriggerSet};

/// The ingest clock for a batch read from a live source: the earliest event
/// time in the batch, but never later than the wall clock. Live traffic is a
/// little behind the wall clock, so this is close to it; a backlog or a replay
/// of old archives is grouped by its own time, so its streams are not born
/// expired (the original mixed the two clocks; core-spec §9.2 item 10). The
/// earliest time (not the latest) keeps a stream open for every event of the
/// batch that belongs to it.
pub fn ingest_clock(events: &[Event], wall: Timestamp) -> Timestamp {
    events
        .iter()
        .map(|e| e.generated)
        .min()
        .map_or(wall, |t| t.min(wall))
}

/// Converts a raw notification into an event (the distiller). `Ok(None)` = dropped.
pub trait NotificationConverter: Send + Sync {
    fn convert(&self, notification: &Value) -> Result<Option<Event>, String>;
}

#[cfg(feature = "distiller")]
impl NotificationConverter for stv3_distiller::Distiller {
    fn convert(&self, notification: &Value) -> Result<Option<Event>, String> {
        match self.distill(notification) {
            Ok(outcome) => {
                for d in outcome.dropped_traits() {
                    tracing::debug!(message_id = %outcome.message_id(), "trait {} dropped: {}", d.name, d.reason);
                }
                Ok(outcome.into_event())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Building a TriggerManager from winchester.yaml failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}: {error}", path.display())]
    Distiller {
        path: std::path::PathBuf,
        error: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counters since the last stats line.
#[derive(Debug, Default)]
struct Stats {
    received: AtomicU64,
    saved: AtomicU64,
    duplicates: AtomicU64,
    dropped: AtomicU64,
}

/// Notifications/events in, streams out. Methods take `&self`: one manager can
/// be shared by tasks (the store serializes what must be serialized).
pub struct TriggerManager<S: Store = AnyStore> {
    store: S,
    triggers: TriggerSet,
    converter: Option<Box<dyn NotificationConverter>>,
    stats: Stats,
    statistics_period: Duration,
    last_stats: Mutex<Instant>,
}

impl TriggerManager<AnyStore> {
    /// Everything from winchester.yaml: the store (schema checked, never
    /// migrated), the triggers and, if `distiller_config` is set, the distiller.
    pub async fn from_config(cfg: &WinchesterConfig) -> Result<Self, SetupError> {
        let triggers = cfg.load_triggers()?;
        let converter: Option<Box<dyn NotificationConverter>> = match &cfg.distiller_config {
            None => None,
            #[cfg(feature = "distiller")]
            Some(p) => Some(Box::new(
                stv3_distiller::Distiller::from_file(p, cfg.catch_all_notifications).map_err(
                    |e| SetupError::Distiller {
                        path: p.clone(),
                        error: e.to_string(),
                    },
                )?,
            )),
            #[cfg(not(feature = "distiller"))]
            Some(p) => {
                return Err(SetupError::Distiller {
                    path: p.clone(),
                    error: "stv3-winchester was built without the `distiller` feature".into(),
                })
            }
        };
        let store = AnyStore::open_pooled(&cfg.database.url, cfg.database.max_connections).await?;
        let mut tm = TriggerManager::new(store, triggers)
            .with_statistics_period(Duration::from_secs_f64(cfg.statistics_period.max(0.001)));
        tm.converter = converter;
        Ok(tm)
    }
}

impl<S: Store> TriggerManager<S> {
    pub fn new(store: S, triggers: Vec<TriggerDefinition>) -> Self {
        TriggerManager {
            store,
            triggers: TriggerSet::new(triggers),
            converter: None,
            stats: Stats::default(),
            statistics_period: Duration::from_secs(10),
            last_stats: Mutex::new(Instant::now()),
        }
    }

    /// Use `converter` (normally the distiller) for [`Self::add_notification`].
    pub fn with_converter(mut self, converter: Box<dyn NotificationConverter>) -> Self {
        self.converter = Some(converter);
        self
    }

    pub fn with_statistics_period(mut self, period: Duration) -> Self {
        self.statistics_period = period;
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn triggers(&self) -> &TriggerSet {
        &self.triggers
    }

    /// Distill one notification (no store access). `Ok(None)`: dropped (no
    /// definition matched, or no distiller configured). `Err`: unusable notification.
    pub fn convert_notification(&self, notification: &Value) -> Result<Option<Event>, String> {
        match &self.converter {
            None => Ok(None),
            Some(c) => c.convert(notification),
        }
    }

    /// Distill and add one notification.
    pub async fn add_notification(
        &self,
        notification: &Value,
        now: Timestamp,
    ) -> Result<IngestReport, StoreError> {
        self.add_notifications(std::slice::from_ref(notification), now)
            .await
    }

    /// Distill and add a batch of notifications in one transaction. Dropped and
    /// unconvertible notifications are logged and counted, not errors.
    pub async fn add_notifications(
        &self,
        notifications: &[Value],
        now: Timestamp,
    ) -> Result<IngestReport, StoreError> {
        self.stats
            .received
            .fetch_add(notifications.len() as u64, Ordering::Relaxed);
        let mut events = Vec::with_capacity(notifications.len());
        for n in notifications {
            match self.convert_notification(n) {
                Ok(Some(e)) => events.push(e),
                Ok(None) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        "Dropping unconverted {} notification {}",
                        n.get("event_type").and_then(|v| v.as_str()).unwrap_or("?"),
                        n.get("message_id").and_then(|v| v.as_str()).unwrap_or("?")
                    );
                }
                Err(e) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("Received invalid notification: {e}");
                }
            }
        }
        let mut report = self.ingest(&events, now).await?;
        report.received = notifications.len();
        Ok(report)
    }

    /// Save a batch of events and add them to streams, in one transaction.
    pub async fn add_events(
        &self,
        events: &[Event],
        now: Timestamp,
    ) -> Result<IngestReport, StoreError> {
        self.stats
            .received
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        self.ingest(events, now).await
    }

    async fn ingest(&self, events: &[Event], now: Timestamp) -> Result<IngestReport, StoreError> {
        let report = self.store.ingest(events, &self.triggers, now).await?;
        self.stats
            .saved
            .fetch_add(report.saved as u64, Ordering::Relaxed);
        self.stats
            .duplicates
            .fetch_add(report.duplicates.len() as u64, Ordering::Relaxed);
        for d in &report.duplicates {
            tracing::info!("Received duplicate event {d}, Ignoring.");
        }
        for (m, why) in &report.invalid {
            tracing::warn!("Received invalid event {m}: {why}");
        }
        metrics::counter!("winchester_events_saved_total").increment(report.saved as u64);
        metrics::counter!("winchester_events_duplicate_total")
            .increment(report.duplicates.len() as u64);
        metrics::counter!("winchester_streams_created_total").increment(report.new_streams as u64);
        metrics::counter!("winchester_streams_ready_total").increment(report.ready_to_fire as u64);
        self.maybe_log_statistics();
        Ok(report)
    }

    /// Add one event (a batch of one).
    pub async fn add_event(
        &self,
        event: &Event,
        now: Timestamp,
    ) -> Result<IngestReport, StoreError> {
        self.add_events(std::slice::from_ref(event), now).await
    }

    /// Add trigger definitions at runtime (duplicate names ignored).
    pub fn add_trigger_definitions(&mut self, defs: Vec<TriggerDefinition>) {
        self.triggers.add(defs);
    }

    /// Remove a trigger definition by name.
    pub fn delete_trigger_definition(&mut self, name: &str) -> bool {
        self.triggers.remove(name)
    }

    /// If `statistics_period` has elapsed: log "Received N notifications. Saved M events."
    /// and the trigger debug dump, reset the counters, and return the lines.
    pub fn maybe_log_statistics(&self) -> Option<Vec<String>> {
        {
            let mut last = self.last_stats.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < self.statistics_period {
                return None;
            }
            *last = Instant::now();
        }
        Some(self.log_statistics())
    }

    /// Log and reset the stats and debug counters now; returns the lines logged.
    pub fn log_statistics(&self) -> Vec<String> {
        let received = self.stats.received.swap(0, Ordering::Relaxed);
        let saved = self.stats.saved.swap(0, Ordering::Relaxed);
        let dups = self.stats.duplicates.swap(0, Ordering::Relaxed);
        let dropped = self.stats.dropped.swap(0, Ordering::Relaxed);
        let mut lines = vec![format!(
            "Received {received} notifications. Saved {saved} events."
        )];
        if dups > 0 || dropped > 0 {
            lines.push(format!("Duplicates {dups}. Dropped {dropped}."));
        }
        lines.extend(self.triggers.dump_debug());
        for l in &lines {
            tracing::info!("{l}");
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(generated: &[&str], wall: &str, expected: &str) {
        let ts = |s: &str| stv3_event::parse_timestamp(s).unwrap();
        let events: Vec<Event> = generated
            .iter()
            .enumerate()
            .map(|(i, g)| Event::new(format!("m{i}"), "x", ts(g)))
            .collect();
        assert_eq!(
            ingest_clock(&events, ts(wall)),
            ts(expected),
            "{generated:?} at {wall}"
        );
    }

    #[test]
    fn ingest_clock_is_the_earliest_event_time_capped_at_the_wall_clock() {
        let wall = "2026-11-25T12:00:00Z";
        check(&[], wall, wall);
        check(
            &["2026-11-25T11:59:59Z", "2026-11-25T11:59:58Z"],
            wall,
            "2026-11-25T11:59:58Z",
        );
        // A replay of old archives runs on their own time.
        check(
            &["2015-03-01T18:01:00Z", "2015-03-01T18:00:00Z"],
            wall,
            "2015-03-01T18:00:00Z",
        );
        // A producer whose clock runs ahead cannot move the clock past the wall.
        check(&["2027-01-01T00:00:00Z"], wall, wall);
    }
}
