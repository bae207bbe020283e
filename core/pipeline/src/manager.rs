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
//! 4. save the new events of the whole chunk's pipelines through the
//!    [`TriggerManager`] in one `add_events` (saved + re-matched; one
//!    transaction instead of one per stream), outages waited out with backoff;
//!    if it still fails, the streams that made events are released for a retry
//!    (the deterministic UsageHandler ids make the retry dedupe);
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
use stv3_winchester::{Finish, Store, StoreError, Stream, StreamState, TriggerManager};

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
    /// Most streams claimed (and finished) per transaction.
    pub claim_batch: usize,
    /// Attempts at saving a chunk's new events (200 ms backoff, doubling up to
    /// 10 s) before the streams that made them are released for a retry.
    pub save_attempts: u32,
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
            claim_batch: 64,
            save_attempts: 12,
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

    /// One fire or expire pass at `now`. `stop` is polled before each chunk
    /// (graceful shutdown: streams already claimed finish). Streams are claimed
    /// and finished in chunks, one transaction each (`Store::claim_streams`/`finish_streams`); up to
    /// `concurrency` chunks are in flight.
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
        let conc = self.settings.concurrency.max(1);
        let chunk = streams
            .len()
            .div_ceil(conc)
            .clamp(1, self.settings.claim_batch.max(1));
        let chunks: Vec<Vec<Stream>> = streams.chunks(chunk).map(|c| c.to_vec()).collect();
        let results: Vec<Result<Vec<Outcome>, StoreError>> = futures::stream::iter(chunks)
            .map(|c| async move {
                if stop() {
                    return Ok(Vec::new());
                }
                self.process_chunk(c, kind, now).await
            })
            .buffered(conc)
            .collect()
            .await;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(outcomes) => {
                    for o in outcomes {
                        match o {
                            Outcome::Done { new_events } => {
                                report.done += 1;
                                report.emitted.extend(new_events);
                            }
                            Outcome::Locked => report.locked += 1,
                            Outcome::Failed { .. } => report.failed += 1,
                        }
                    }
                }
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

    /// Claim, run and finish one stream.
    pub async fn process_stream(
        &self,
        stream: Stream,
        kind: ReadyKind,
        now: Timestamp,
    ) -> Result<Outcome, StoreError> {
        let mut out = self.process_chunk(vec![stream], kind, now).await?;
        Ok(out.pop().unwrap_or(Outcome::Locked))
    }

    /// Claim a chunk in one transaction, run each claimed stream's pipeline,
    /// finish the chunk in one transaction.
    async fn process_chunk(
        &self,
        chunk: Vec<Stream>,
        kind: ReadyKind,
        now: Timestamp,
    ) -> Result<Vec<Outcome>, StoreError> {
        let store = self.tm.store();
        let (to, done_counter) = match kind {
            ReadyKind::Fire => (StreamState::Firing, "Streams fired"),
            ReadyKind::Expire => (StreamState::Expiring, "Streams expired"),
        };
        let lease_until = now
            + chrono::Duration::from_std(self.settings.lease)
                .unwrap_or(chrono::Duration::seconds(600));
        let claims = store.claim_streams(&chunk, to, lease_until).await?;
        let mut outcomes = Vec::with_capacity(chunk.len());
        let mut claimed_streams: Vec<(&Stream, Stream)> = Vec::with_capacity(chunk.len());
        for (stream, claim) in chunk.iter().zip(claims) {
            match claim {
                Some(claimed) => claimed_streams.push((stream, claimed)),
                None => {
                    tracing::debug!("Stream {} locked. Moving on...", stream.id);
                    self.stats.bump(&self.trigger_label(&stream.name), "Locked");
                    outcomes.push(Outcome::Locked);
                }
            }
        }
        // The claimed streams' pipelines run concurrently (their commits wait on
        // the broker's confirms and the database, not on this CPU); results keep
        // the chunk's order.
        let runs: Vec<Result<Outcome, StoreError>> = futures::stream::iter(&claimed_streams)
            .map(|(_, claimed)| self.run_claimed(claimed, kind))
            .buffered(self.settings.concurrency.max(1) * 4)
            .collect()
            .await;
        // The chunk's new events are saved in one transaction, before any of its
        // streams is finished; if that fails for good, the streams that made them
        // are given back (the save is idempotent on message_id, so a re-run is safe).
        let new_events: Vec<Event> = runs
            .iter()
            .filter_map(|r| match r {
                Ok(Outcome::Done { new_events }) => Some(new_events.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect();
        let saved = self.save_new_events(&new_events, now).await;
        let mut finishes: Vec<(Stream, Finish)> = Vec::new();
        let mut pending: Vec<(String, Outcome)> = Vec::new();
        for ((stream, claimed), run) in claimed_streams.into_iter().zip(runs) {
            let trigger = self.trigger_label(&stream.name);
            let outcome = match run {
                Ok(o) => o,
                Err(e) => {
                    // The store failed before the pipeline ran (e.g. the database
                    // went away while loading the events): give the stream back.
                    tracing::warn!(stream_id = claimed.id, error = %e, "stream not run; released for a retry");
                    finishes.push((claimed, Finish::Release { to: stream.state }));
                    pending.push((trigger, Outcome::Locked));
                    continue;
                }
            };
            if let (Outcome::Done { new_events }, Err(e)) = (&outcome, &saved) {
                if !new_events.is_empty() {
                    tracing::warn!(stream_id = claimed.id, error = %e, "the pipeline's new events were not saved; released for a retry");
                    finishes.push((claimed, Finish::Release { to: stream.state }));
                    pending.push((trigger, Outcome::Locked));
                    continue;
                }
            }
            let fin = match &outcome {
                Outcome::Failed { reason } => {
                    tracing::error!(stream_id = claimed.id, "{reason}");
                    Finish::Error
                }
                _ => Finish::Complete {
                    purge: self.settings.purge_completed_streams,
                },
            };
            finishes.push((claimed, fin));
            pending.push((trigger, outcome));
        }
        if !finishes.is_empty() {
            let held = store.finish_streams(&finishes).await?;
            for (((claimed, _), h), (trigger, outcome)) in finishes.iter().zip(held).zip(pending) {
                if !h {
                    tracing::error!(
                        "Stream {} locked while trying to finish it (lease lost?)",
                        claimed.id
                    );
                }
                if let Outcome::Done { .. } = &outcome {
                    self.stats.bump(&trigger, done_counter);
                    match kind {
                        ReadyKind::Fire => self.stats.fired(),
                        ReadyKind::Expire => self.stats.expired(),
                    }
                }
                outcomes.push(outcome);
            }
        }
        Ok(outcomes)
    }

    /// Save the new events of a chunk's pipelines (and feed them to the
    /// triggers). The pipelines have committed their side effects, so a store
    /// outage is waited out (with backoff, `save_attempts` times) rather than
    /// giving the streams back to be run again at once.
    async fn save_new_events(&self, new_events: &[Event], now: Timestamp) -> Result<(), String> {
        if new_events.is_empty() {
            return Ok(());
        }
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.tm.add_events(new_events, now).await {
                Ok(_) => return Ok(()),
                Err(e) if attempt < self.settings.save_attempts.max(1) => {
                    tracing::warn!(events = new_events.len(), error = %e, "saving the pipelines' new events; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    fn trigger_label(&self, name: &str) -> String {
        if self.tm.triggers().get(name).is_some() {
            name.to_string()
        } else {
            "n/a".to_string()
        }
    }

    /// Run the pipeline of a claimed stream (no state change here; its new
    /// events are saved by the caller, for the whole chunk at once).
    async fn run_claimed(&self, stream: &Stream, kind: ReadyKind) -> Result<Outcome, StoreError> {
        let verb = match kind {
            ReadyKind::Fire => "fire",
            ReadyKind::Expire => "expire",
        };
        let trigger = self.trigger_label(&stream.name);
        let Some(tdef) = self.tm.triggers().get(&stream.name) else {
            self.stats
                .bump(&trigger, &format!("Unknown trigger def '{}'", stream.name));
            return Ok(Outcome::Failed {
                reason: format!(
                    "Stream {} has unknown trigger definition {}",
                    stream.id, stream.name
                ),
            });
        };
        let pipeline_name = match kind {
            ReadyKind::Fire => tdef.fire_pipeline.clone(),
            ReadyKind::Expire => tdef.expire_pipeline.clone(),
        };
        let Some(pname) = pipeline_name else {
            tracing::debug!(
                "No {verb} pipeline for stream {}. Nothing to do.",
                stream.id
            );
            self.stats.bump(
                &trigger,
                &format!("No {verb} pipeline for '{}'", stream.name),
            );
            return Ok(Outcome::Done {
                new_events: Vec::new(),
            });
        };
        let Some(handlers) = self.pipelines.get(&pname) else {
            self.stats
                .bump(&trigger, &format!("Unknown pipeline '{pname}'"));
            return Ok(Outcome::Failed {
                reason: format!(
                    "Trigger {} for stream {} has unknown pipeline {pname} (not in {})",
                    stream.name,
                    stream.id,
                    self.pipelines.file.display()
                ),
            });
        };
        let events: Vec<Event> = self
            .tm
            .store()
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
        let new_events = match AssertUnwindSafe(pipeline::run(spec, &self.ctx, &self.stats, events))
            .catch_unwind()
            .await
        {
            Ok(Ok(evs)) => evs,
            Ok(Err(e)) => {
                return Ok(Outcome::Failed {
                    reason: format!(
                        "Exception in pipeline {pname} handling stream {}: {e}",
                        stream.id
                    ),
                })
            }
            Err(_) => {
                return Ok(Outcome::Failed {
                    reason: format!(
                        "pipeline {pname} panicked while committing stream {}",
                        stream.id
                    ),
                })
            }
        };
        Ok(Outcome::Done { new_events })
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
