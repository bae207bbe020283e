//! The `pipeline-worker` main loop: fire pass, expire pass, trim pass, stats,
//! sleep when idle; database errors back off (1 s doubling to 30 s) and the
//! loop carries on, so a lost database never crash-loops the process. A
//! shutdown signal stops the loop between streams (streams in flight finish).

use std::time::{Duration, Instant};

use stv3_event::Timestamp;
use stv3_telemetry::Health;
use stv3_winchester::store::ReadyKind;

use tokio::sync::watch;

use crate::manager::PipelineManager;

/// Trim settings: the cutoff function (`trim_events_age` at now) and the batch size.
pub struct Trim {
    pub cutoff: Box<dyn Fn(Timestamp) -> Result<Timestamp, String> + Send + Sync>,
    pub batch_size: u32,
}

pub struct LoopOptions {
    /// `pipeline_worker_delay`.
    pub delay: Duration,
    /// `statistics_period`.
    pub statistics_period: Duration,
    pub trim: Option<Trim>,
    /// Exit after the first idle loop (tests, benchmarks, cron-style runs).
    pub once: bool,
    /// Clock (wall clock normally).
    pub clock: fn() -> Timestamp,
}

/// Totals over a whole run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoopTotals {
    pub fired: usize,
    pub expired: usize,
    pub failed: usize,
    pub locked: usize,
    pub trimmed: u64,
    pub db_errors: usize,
}

async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) {
    if *stop.borrow() {
        return;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
}

/// Run until `stop` turns true (or, with `once`, until a loop finds nothing to do).
pub async fn run_loop<S: stv3_winchester::Store + 'static>(
    pm: &PipelineManager<S>,
    opts: &LoopOptions,
    health: &Health,
    mut stop: watch::Receiver<bool>,
) -> LoopTotals {
    let mut totals = LoopTotals::default();
    let mut backoff = Duration::from_secs(1);
    let mut last_stats = Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        let now = (opts.clock)();
        let stop_rx = stop.clone();
        let should_stop = move || *stop_rx.borrow();
        let result = async {
            let fire = pm
                .process_ready_streams(ReadyKind::Fire, now, &should_stop)
                .await?;
            let expire = pm
                .process_ready_streams(ReadyKind::Expire, now, &should_stop)
                .await?;
            let trimmed = match &opts.trim {
                None => 0,
                Some(t) => match (t.cutoff)(now) {
                    Ok(cutoff) => pm.trim_events(cutoff, t.batch_size).await?,
                    Err(e) => {
                        tracing::warn!("trim_events_age: {e}; not trimming");
                        0
                    }
                },
            };
            Ok::<_, stv3_winchester::StoreError>((fire, expire, trimmed))
        }
        .await;
        let idle = match result {
            Ok((fire, expire, trimmed)) => {
                health.set(true);
                backoff = Duration::from_secs(1);
                totals.fired += fire.done;
                totals.expired += expire.done;
                totals.failed += fire.failed + expire.failed;
                totals.locked += fire.locked + expire.locked;
                totals.trimmed += trimmed;
                fire.loaded == 0 && expire.loaded == 0 && trimmed == 0
            }
            Err(e) => {
                totals.db_errors += 1;
                health.set(false);
                tracing::warn!("database error: {e}; retrying in {}s", backoff.as_secs());
                metrics::counter!("stv3_pipeline_db_errors_total").increment(1);
                sleep_or_stop(backoff, &mut stop).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        if last_stats.elapsed() >= opts.statistics_period {
            pm.log_statistics();
            last_stats = Instant::now();
        }
        if idle {
            if opts.once {
                break;
            }
            tracing::debug!("No streams to fire or expire. Sleeping...");
            sleep_or_stop(opts.delay, &mut stop).await;
        }
    }
    pm.log_statistics();
    totals
}
