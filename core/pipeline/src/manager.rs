//! `PipelineManager`: the pipeline worker's passes (spec §4.9), made robust.
//!
//! One **pass** loads up to `batch_size` ready streams ([`ReadyKind::Fire`] or
//! [`ReadyKind::Expire`]; the store's query also returns `firing`/`expiring`
//! streams whose lease ran out, so a crashed worker's stream is retried), and
//! for each (up to `concurrency` at a time):
//! 1. claim it (optimistic `state_serial_no` update + lease); lost race: "Locked", skip;
//! 2. unknown trigger: "Unknown trigger def '<n>'", stream to error/expire_error;
//!    no pipeline configured on the trigger: "No fire/expire pipeline for '<n>'", complete;
//!    pipeline not in pipelines.yaml: "Unknown pipeline '<p>'", stream to error,
//!    and the worker carries on (the original crashed, §9.2 item 12);
//! 3. run the pipeline ([`crate::pipeline::run`]: panic-safe, timeout-bounded);
//!    failure: stream to error/expire_error with the reason logged;
//! 4. save the new events through the [`TriggerManager`] (saved + re-matched);
//!    a DB error here leaves the stream claimed, so it is retried after the
//!    lease (the deterministic UsageHandler ids make the retry dedupe);
//! 5. complete (purge, or state `completed`), "Streams fired"/"Streams expired".
//!
//! Everything takes `now` explicitly: the wall clock in the worker, event time in replay.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use rand::seq::SliceRandom;
use stv3_event::{Event, Timestamp};
use stv3_winchester::store::ReadyKind;
use stv3_winchester::{Store, StoreError, Stream, StreamState, TriggerManager};

use crate::config::PipelineConfig;
use crate::handlers::HandlerContext;
use crate::pipeline::{self, RunSpec};
use crate::stats::Stats;

/// Worker tuning (from winchester.yaml plus CLI flags).
#[derive(Debug, Clone)]
pub struct ManagerSettings {
    /// `pipeline_worker_batch_size`.
    pub batch_size: u32,
    /// `purge_completed_streams`.
    pub purge_completed_streams: bool,
    /// `pipeline_worker_lease`: how long a claim lasts.
    pub lease: Duration,
    /// Per-stream pipeline timeout (must be well under the lease).
    pub pipeline_timeout: Duration,
    /// Streams processed concurrently within one pass.
    pub concurrency: usize,
    /// Shuffle the ready streams (less lock contention between workers); off for replay.
    pub shuffle: bool,
}

impl Default for ManagerSettings {
    fn default() -> Self {
        ManagerSettings {
            batch_size: 1000,
            purge_completed_streams: true,
            lease: Duration::from_secs(600),
            pipeline_timeout: Duration::from_secs(300),
            concurrency: 1,
            shuffle: true,
        }
    }
}

/// What happened to one stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Pipeline ran (or there was none); the stream is completed/purged.
    Done { new_events: Vec<Event> },
    /// Another worker holds it.
    Locked,
    /// The stream went to error/expire_error.
    Failed { reason: String },
}

/// Totals of one pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassReport {
    pub loaded: usize,
    pub done: usize,
    pub locked: usize,
    pub failed: usize,
    /// New events returned by the pipelines, in completion order.
    pub emitted: Vec<Event>,
}

/// The processing side of winchester.
pub struct PipelineManager<S: Store> {
    tm: Arc<TriggerManager<S>>,
    pipelines: Arc<PipelineConfig>,
    ctx: HandlerContext,
    stats: Arc<Stats>,
    settings: ManagerSettings,
}

impl<S: Store + 'static> PipelineManager<S> {
    pub fn new(
        tm: Arc<TriggerManager<S>>,
        pipelines: PipelineConfig,
        ctx: HandlerContext,
        settings: ManagerSettings,
    ) -> Self {
        PipelineManager {
            tm,
            pipelines: Arc::new(pipelines),
            ctx,
            stats: Arc::new(Stats::new()),
            settings,
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn trigger_manager(&self) -> &TriggerManager<S> {
        &self.tm
    }

    pub fn settings(&self) -> &ManagerSettings {
        &self.settings
    }

    /// One fire or expire pass at `now`. `stop` is polled before each stream
    /// (graceful shutdown: streams already started finish).
    pub async fn process_ready_streams(
        &self,
        kind: ReadyKind,
        now: Timestamp,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<PassReport, StoreError> {
        let mut streams = self
            .tm
            .store()
            .ready_streams(kind, now, self.settings.batch_size)
            .await?;
        if self.settings.shuffle {
            streams.shuffle(&mut rand::thread_rng());
        }
        let mut report = PassReport {
            loaded: streams.len(),
            ..Default::default()
        };
        self.stats.loaded(streams.len() as u64);
        let results: Vec<Result<Outcome, StoreError>> = futures::stream::iter(streams)
            .filter(|_| std::future::ready(!stop()))
            .map(|s| self.process_stream(s, kind, now))
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(Outcome::Done { new_events }) => {
                    report.done += 1;
                    report.emitted.extend(new_events);
                }
                Ok(Outcome::Locked) => report.locked += 1,
                Ok(Outcome::Failed { .. }) => report.failed += 1,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Fire, claim and run one stream.
    pub async fn process_stream(
        &self,
        stream: Stream,
        kind: ReadyKind,
        now: Timestamp,
    ) -> Result<Outcome, StoreError> {
        let store = self.tm.store();
        let (to, verb, done_counter) = match kind {
            ReadyKind::Fire => (StreamState::Firing, "fire", "Streams fired"),
            ReadyKind::Expire => (StreamState::Expiring, "expire", "Streams expired"),
        };
        let tdef = self.tm.triggers().get(&stream.name).cloned();
        let trigger = if tdef.is_some() {
            stream.name.clone()
        } else {
            "n/a".to_string()
        };
        let lease_until = now
            + chrono::Duration::from_std(self.settings.lease)
                .unwrap_or(chrono::Duration::seconds(600));
        let claimed = match store.claim_stream(&stream, to, lease_until).await {
            Ok(c) => c,
            Err(StoreError::Locked { .. }) => {
                tracing::debug!("Stream {} locked. Moving on...", stream.id);
                self.stats.bump(&trigger, "Locked");
                return Ok(Outcome::Locked);
            }
            Err(e) => return Err(e),
        };
        let Some(tdef) = tdef else {
            self.stats
                .bump(&trigger, &format!("Unknown trigger def '{}'", stream.name));
            let reason = format!(
                "Stream {} has unknown trigger definition {}",
                stream.id, stream.name
            );
            return self.fail(&claimed, reason).await;
        };
        let pipeline_name = match kind {
            ReadyKind::Fire => tdef.fire_pipeline.clone(),
            ReadyKind::Expire => tdef.expire_pipeline.clone(),
        };
        let mut new_events = Vec::new();
        match pipeline_name {
            None => {
                tracing::debug!(
                    "No {verb} pipeline for stream {}. Nothing to do.",
                    stream.id
                );
                self.stats.bump(
                    &trigger,
                    &format!("No {verb} pipeline for '{}'", stream.name),
                );
            }
            Some(pname) => {
                let Some(handlers) = self.pipelines.get(&pname) else {
                    self.stats
                        .bump(&trigger, &format!("Unknown pipeline '{pname}'"));
                    let reason = format!(
                        "Trigger {} for stream {} has unknown pipeline {pname} (not in {})",
                        stream.name,
                        stream.id,
                        self.pipelines.file.display()
                    );
                    return self.fail(&claimed, reason).await;
                };
                let events: Vec<Event> = store
                    .get_stream_events(stream.id)
                    .await?
                    .into_iter()
                    .map(|s| s.event)
                    .collect();
                let spec = RunSpec {
                    pipeline: &pname,
                    handlers,
                    stream_id: stream.id,
                    stream_name: &stream.name,
                    trigger: &trigger,
                    timeout: self.settings.pipeline_timeout,
                };
                let run = AssertUnwindSafe(pipeline::run(spec, &self.ctx, &self.stats, events))
                    .catch_unwind()
                    .await;
                match run {
                    Ok(Ok(evs)) => new_events = evs,
                    Ok(Err(e)) => {
                        let reason = format!(
                            "Exception in pipeline {pname} handling stream {}: {e}",
                            stream.id
                        );
                        return self.fail(&claimed, reason).await;
                    }
                    Err(_) => {
                        let reason = format!(
                            "pipeline {pname} panicked while committing stream {}",
                            stream.id
                        );
                        return self.fail(&claimed, reason).await;
                    }
                }
                if !new_events.is_empty() {
                    self.tm.add_events(&new_events, now).await?;
                }
            }
        }
        match store
            .complete_stream(&claimed, self.settings.purge_completed_streams)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Locked { .. }) => {
                tracing::error!(
                    "Stream {} locked while trying to complete it (lease lost?)",
                    stream.id
                );
            }
            Err(e) => return Err(e),
        }
        self.stats.bump(&trigger, done_counter);
        match kind {
            ReadyKind::Fire => self.stats.fired(),
            ReadyKind::Expire => self.stats.expired(),
        }
        Ok(Outcome::Done { new_events })
    }

    async fn fail(&self, claimed: &Stream, reason: String) -> Result<Outcome, StoreError> {
        tracing::error!(stream_id = claimed.id, "{reason}");
        match self.tm.store().error_stream(claimed).await {
            Ok(()) | Err(StoreError::Locked { .. }) => Ok(Outcome::Failed { reason }),
            Err(e) => Err(e),
        }
    }

    /// Delete up to `batch` events older than `cutoff`. Returns how many.
    pub async fn trim_events(&self, cutoff: Timestamp, batch: u32) -> Result<u64, StoreError> {
        let store = self.tm.store();
        let ids = store.find_older_events(cutoff, batch).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let n = store.purge_events(&ids).await?;
        metrics::counter!("stv3_pipeline_events_trimmed_total").increment(n);
        Ok(n)
    }

    /// Log the stats lines (and the trigger debuggers) and reset them.
    pub fn log_statistics(&self) -> Vec<String> {
        let mut lines = self.stats.take_report();
        lines.extend(self.tm.triggers().dump_debug());
        for l in &lines {
            tracing::info!("{l}");
        }
        lines
    }
}
