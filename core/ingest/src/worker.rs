//! One `yagi-event` process: builds a chain and a source per consumer of the config
//! (one cell or several), runs them concurrently, logs the original's periodic stats
//! ("Sent N messages from <queue>", "Messages per second"), rolls idle archives, serves
//! `/health` + `/metrics`, and stops cleanly on shutdown (finish the batch, ack, close).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stv3_amqp::Publisher;
use tokio::sync::watch;

use crate::chain::{self, Chain, Counters, EventSink, RawArchive, RetryPolicy, Source, Stopped};
use crate::config::{App, ConsumerConfig, YagiConfig};
use crate::dedupe::RecentIds;
use crate::handlers::{ShoeboxArchive, WinchesterSink};
use crate::parse::Wrap;
use crate::payload_filter::PayloadFilter;
use crate::quarantine::Quarantine;
use crate::source::amqp::AmqpSource;
use crate::source::file::FileSource;

/// Where messages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// Every consumer on its broker.
    Amqp,
    /// JSON lines from a file, checkpointed in `[stv3] state_dir`.
    File { path: PathBuf, follow: bool },
    /// JSON lines from stdin (no checkpoint).
    Stdin,
}

impl std::str::FromStr for SourceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "amqp" => Ok(SourceSpec::Amqp),
            "stdin" | "-" => Ok(SourceSpec::Stdin),
            _ => match s.strip_prefix("file:") {
                Some(p) if !p.is_empty() => Ok(SourceSpec::File {
                    path: PathBuf::from(p),
                    follow: false,
                }),
                _ => Err(format!("{s:?}: expected amqp, stdin or file:PATH")),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub source: SourceSpec,
    /// For file/stdin: the consumer whose chain to use (default: the first).
    pub consumer: Option<String>,
    pub retry: RetryPolicy,
}

/// Per-consumer counters, for callers and tests.
pub type Report = BTreeMap<String, Arc<Counters>>;

/// Build the chain of consumer `c` (sinks shared through `sinks`).
pub async fn build_chain(
    cfg: &YagiConfig,
    c: &ConsumerConfig,
    amqp_quarantine: bool,
    sinks: &mut BTreeMap<PathBuf, Arc<WinchesterSink>>,
) -> anyhow::Result<(Chain, Option<ShoeboxArchive>)> {
    let mut filters = Vec::new();
    for f in &c.filters {
        filters.push(
            PayloadFilter::load(&f.method, &f.map_file)
                .map_err(|e| anyhow::anyhow!("[filter:{}] {e}", f.name))?,
        );
    }
    let store: Option<Arc<dyn EventSink>> = match &c.winchester {
        Some(w) => {
            let sink = match sinks.get(&w.config_file) {
                Some(s) => s.clone(),
                None => {
                    let s = Arc::new(WinchesterSink::open(&w.config_file).await?);
                    sinks.insert(w.config_file.clone(), s.clone());
                    s
                }
            };
            Some(sink as Arc<dyn EventSink>)
        }
        None => None,
    };
    let archive = match &c.shoebox {
        Some(s) => Some(ShoeboxArchive::open(s, &c.name)?),
        None => None,
    };
    let quarantine = if amqp_quarantine {
        let p = Publisher::lazy(&c.broker.amqp, &format!("yagi-event {} quarantine", c.name))
            .with_topology(Quarantine::topology(&c.queue));
        Quarantine::with_publisher(&cfg.stv3.quarantine_dir, p)
    } else {
        Quarantine::file_only(&cfg.stv3.quarantine_dir)
    };
    let handle = archive.as_ref().map(|a| a.share());
    let archive_box: Option<Box<dyn RawArchive>> =
        archive.map(|a| Box::new(a) as Box<dyn RawArchive>);
    let mut chain = Chain {
        consumer: c.name.clone(),
        queue: c.queue.clone(),
        archive: archive_box,
        archive_filter: c.filter_for(App::Shoebox),
        // The archive writer wraps (region/cell); the chain hands it the bare notification.
        wrap: Wrap::default(),
        store,
        store_filter: c.filter_for(App::Winchester),
        payload_filters: filters,
        quarantine,
        max_payload_bytes: cfg.stv3.max_payload_bytes,
        recent: RecentIds::new(cfg.stv3.dedupe_window),
        counters: Arc::new(Counters::default()),
        store_inflight: c.store_inflight,
    };
    if chain.archive.is_some() {
        let seeded = chain.seed_recent()?;
        tracing::info!(consumer = %c.name, seeded, "dedupe set seeded from the archive tail");
    }
    Ok((chain, handle))
}

/// Run every consumer of `cfg` (or one, for file/stdin) until shutdown or exhaustion.
pub async fn run(
    cfg: &YagiConfig,
    opts: WorkerOptions,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Report> {
    let health = stv3_telemetry::Health::healthy();
    if let Some(addr) = cfg.stv3.ops_address {
        stv3_telemetry::serve_ops("yagi-event", addr, health.clone()).await?;
    }
    let consumers: Vec<&ConsumerConfig> = match &opts.source {
        SourceSpec::Amqp => cfg.consumers.iter().collect(),
        _ => {
            let c = match &opts.consumer {
                Some(n) => cfg.consumer(n).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}: no consumer {n:?} in [consumers] queues",
                        cfg.path.display()
                    )
                })?,
                None => cfg
                    .consumers
                    .first()
                    .ok_or_else(|| anyhow::anyhow!("no consumers"))?,
            };
            vec![c]
        }
    };
    let mut sinks = BTreeMap::new();
    let mut report = Report::new();
    let mut tasks = Vec::new();
    let mut archives = Vec::new();
    for c in consumers {
        let amqp = opts.source == SourceSpec::Amqp;
        let (mut chain, archive) = build_chain(cfg, c, amqp, &mut sinks).await?;
        let mut source: Box<dyn Source> = match &opts.source {
            SourceSpec::Amqp => Box::new(
                AmqpSource::new(c, cfg.stv3.linger)
                    .with_health(health.component(format!("broker {}", c.name))),
            ),
            SourceSpec::File { path, follow } => Box::new(FileSource::open(
                path,
                &cfg.stv3.state_dir,
                usize::from(c.max_messages),
                *follow,
            )?),
            SourceSpec::Stdin => Box::new(FileSource::stdin(usize::from(c.max_messages))),
        };
        report.insert(c.name.clone(), chain.counters.clone());
        let sd = shutdown.clone();
        let retry = opts.retry.clone();
        let h = health.component(format!("consumer {}", c.name));
        let name = c.name.clone();
        if let Some(a) = archive {
            archives.push(a);
        }
        tasks.push(tokio::spawn(async move {
            let r = chain::run(&mut chain, source.as_mut(), sd, retry, Some(h)).await;
            match &r {
                Ok(Stopped::Exhausted) => tracing::info!(consumer = %name, "source exhausted"),
                Ok(Stopped::Shutdown) => tracing::info!(consumer = %name, "stopped"),
                Err(e) => {
                    tracing::error!(consumer = %name, error = %format!("{e:#}"), "consumer failed")
                }
            }
            drop(source);
            r
        }));
    }
    // Stats line and idle archive rolls.
    let stats_report = report.clone();
    let update_timer = cfg.update_timer.max(Duration::from_secs(1));
    let tickers: Vec<_> = archives.iter().map(|a| a.ticker()).collect();
    let stats = tokio::spawn(async move {
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        let mut since = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(5).min(update_timer));
        tick.tick().await;
        loop {
            tick.tick().await;
            for t in &tickers {
                let t = t.clone();
                let _ = tokio::task::spawn_blocking(move || t()).await;
            }
            if since.elapsed() < update_timer {
                continue;
            }
            let elapsed = since.elapsed().as_secs_f64();
            tracing::info!("Update timer elapsed: {} seconds", elapsed.round());
            let mut total = 0;
            for (name, c) in &stats_report {
                let now = c.acked.load(Ordering::Relaxed);
                let sent = now - last.get(name).copied().unwrap_or(0);
                last.insert(name.clone(), now);
                total += sent;
                tracing::info!(
                    consumer = %name,
                    quarantined = c.quarantined.load(Ordering::Relaxed),
                    archived = c.archived.load(Ordering::Relaxed),
                    stored = c.stored.load(Ordering::Relaxed),
                    duplicates = c.duplicates.load(Ordering::Relaxed),
                    reconnects = c.reconnects.load(Ordering::Relaxed),
                    "\tSent {sent} messages from {name}"
                );
            }
            tracing::info!("\tSent {total} total messages");
            if total > 0 {
                tracing::info!("\tMessages per second: {:.6}", total as f64 / elapsed);
            }
            since = Instant::now();
        }
    });
    let mut first_err = None;
    for t in tasks {
        match t.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(e) => {
                first_err = first_err.or(Some(anyhow::anyhow!("consumer task panicked: {e}")))
            }
        }
    }
    stats.abort();
    for a in &archives {
        let a = a.share();
        let _ = tokio::task::spawn_blocking(move || a.roll()).await;
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Default config locations of the original, in order.
pub fn find_config(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    for p in ["/etc/yagi/yagi.conf", "./yagi.conf", "/etc/yagi.conf"] {
        if Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    anyhow::bail!(
        "no --config given and none of /etc/yagi/yagi.conf, ./yagi.conf, /etc/yagi.conf exists"
    )
}
