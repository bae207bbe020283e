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

use crate::store::{AnyStore, IngestReport, Store, StoreError};
use crate::trigger::{TriggerDefinition, TriggerSet};

/// Converts a raw notification into an event (the distiller). `Ok(None)` = dropped.
pub trait NotificationConverter: Send + Sync {
    fn convert(&self, notification: &Value) -> Result<Option<Event>, String>;
}

/// Counters since the last stats line.
#[derive(Debug, Default)]
struct Stats {
    received: AtomicU64,
    saved: AtomicU64,
    duplicates: AtomicU64,
    dropped: AtomicU64,
}

/// Notifications/events in, streams out.
pub struct TriggerManager<S: Store = AnyStore> {
    store: S,
    triggers: TriggerSet,
    converter: Option<Box<dyn NotificationConverter>>,
    stats: Stats,
    statistics_period: Duration,
    last_stats: Mutex<Instant>,
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

    /// Distill one notification (no store access). `Ok(None)`: dropped (no definition matched).
    pub fn convert_notification(&self, notification: &Value) -> Result<Option<Event>, String> {
        let _ = notification;
        todo!()
    }

    /// Distill and add one notification.
    pub async fn add_notification(&self, notification: &Value, now: Timestamp) -> Result<IngestReport, StoreError> {
        let _ = (notification, now);
        todo!()
    }

    /// Distill and add a batch of notifications in one transaction.
    pub async fn add_notifications(&self, notifications: &[Value], now: Timestamp) -> Result<IngestReport, StoreError> {
        let _ = (notifications, now);
        todo!()
    }

    /// Save a batch of events and add them to streams, in one transaction.
    pub async fn add_events(&self, events: &[Event], now: Timestamp) -> Result<IngestReport, StoreError> {
        let _ = (events, now);
        todo!()
    }

    /// Add one event (a batch of one).
    pub async fn add_event(&self, event: &Event, now: Timestamp) -> Result<IngestReport, StoreError> {
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
        let _ = (&self.stats.received, &self.stats.saved, &self.stats.duplicates, &self.stats.dropped);
        let _ = Ordering::Relaxed;
        todo!()
    }
}
