//! `pipeline-worker`: fire and expire ready streams through their pipelines.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use stv3_pipeline::handlers::HandlerContext;
use stv3_pipeline::worker::{run_loop, LoopOptions, Trim};
use stv3_pipeline::{setup, ManagerSettings, PipelineManager, Registry};
use stv3_telemetry::{init_logging, serve_ops, version_string, Health, LogArgs};
use stv3_winchester::TriggerManager;

/// Fire and expire ready winchester streams through their pipelines.
#[derive(Parser, Debug)]
#[command(name = "pipeline-worker", version = version_string(env!("CARGO_PKG_VERSION")))]
struct Args {
    /// winchester.yaml.
    #[arg(short, long, default_value = "winchester.yaml")]
    config: PathBuf,
    /// Worker name, used in logs.
    #[arg(short, long, default_value = "pipeline_worker")]
    name: String,
    /// Address for /health and /metrics.
    #[arg(long, default_value = "127.0.0.1:0")]
    ops_addr: SocketAddr,
    /// Do not serve /health and /metrics.
    #[arg(long)]
    no_ops: bool,
    /// Streams processed concurrently within one pass.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seconds one pipeline run may take before the stream goes to error
    /// (default: min(300, pipeline_worker_lease / 2)).
    #[arg(long)]
    pipeline_timeout: Option<f64>,
    /// Most streams claimed and finished per database transaction.
    #[arg(long, default_value_t = 64)]
    claim_batch: usize,
    /// Exit when a loop finds nothing to do (instead of sleeping).
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    stv3_telemetry::tune_allocator();
    stv3_telemetry::spawn_heap_trimmer();
    init_logging(&args.log);
    let cfg = setup::load_config(&args.config)?;
    let registry = Registry::builtin();
    let ctx = HandlerContext::live();
    let pipelines = setup::load_pipelines(&cfg, &registry, &ctx)?;
    let health = Health::healthy();
    if !args.no_ops {
        serve_ops("pipeline-worker", args.ops_addr, health.clone()).await?;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("shutdown requested: finishing the streams in flight");
        let _ = stop_tx.send(true);
    });

    // The database may not be up yet: retry with backoff instead of crash-looping.
    let mut backoff = Duration::from_secs(1);
    let tm = loop {
        match TriggerManager::from_config(&cfg).await {
            Ok(tm) => break tm,
            Err(stv3_winchester::trigger_manager::SetupError::Store(e)) => {
                health.set(false);
                tracing::warn!(
                    "{}: database not available ({e}); retrying in {}s",
                    args.name,
                    backoff.as_secs()
                );
                if *stop_rx.borrow() {
                    return Ok(());
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(anyhow::anyhow!("{e}")).context("loading winchester config"),
        }
    };
    health.set(true);
    for w in setup::missing_pipelines(&tm.triggers().triggers, &pipelines) {
        tracing::warn!("{w}: its streams will go to error");
    }
    let lease = Duration::from_secs_f64(cfg.pipeline_worker_lease.max(1.0));
    let timeout = args
        .pipeline_timeout
        .unwrap_or((lease.as_secs_f64() / 2.0).min(300.0));
    let settings = ManagerSettings {
        batch_size: cfg.pipeline_worker_batch_size.max(1),
        purge_completed_streams: cfg.purge_completed_streams,
        lease,
        pipeline_timeout: Duration::from_secs_f64(timeout.max(0.001)),
        concurrency: args.concurrency.max(1),
        shuffle: true,
        claim_batch: args.claim_batch.max(1),
        ..ManagerSettings::default()
    };
    let trim = cfg.trim_events.then(|| {
        let c = cfg.clone();
        Trim {
            cutoff: Box::new(move |now| c.trim_cutoff(now)),
            batch_size: cfg.trim_events_batch_size.max(1),
        }
    });
    let opts = LoopOptions {
        delay: Duration::from_secs_f64(cfg.pipeline_worker_delay.max(0.0)),
        statistics_period: Duration::from_secs_f64(cfg.statistics_period.max(0.001)),
        trim,
        once: args.once,
        clock: stv3_event::now,
    };
    tracing::info!(name = %args.name, "pipeline worker started");
    let pm = PipelineManager::new(Arc::new(tm), pipelines, ctx, settings);
    let totals = run_loop(&pm, &opts, &health, stop_rx).await;
    tracing::info!(name = %args.name, ?totals, "pipeline worker stopped");
    // Do not wait for abandoned (timed-out) handler threads when the runtime shuts down.
    std::process::exit(0)
}
