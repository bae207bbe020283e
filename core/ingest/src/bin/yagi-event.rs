//! `yagi-event`: the stv3 ingest worker (yagi's event worker, rebuilt).
//!
//! `yagi-event --config yagi.conf` consumes every queue of the config from RabbitMQ;
//! `--source file:PATH [--follow]` or `--source stdin` runs the same chain on JSON lines.
//! `yagi-event check-config` validates the file; `yagi-event replay-quarantine`
//! re-publishes (or re-runs) quarantined messages once their cause is fixed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use stv3_ingest::chain::{self, RawMessage, RetryPolicy, VecSource};
use stv3_ingest::config::YagiConfig;
use stv3_ingest::quarantine::read_records;
use stv3_ingest::worker::{self, SourceSpec, WorkerOptions};

#[derive(Parser, Debug)]
#[command(name = "yagi-event", version = stv3_telemetry::version_string(env!("CARGO_PKG_VERSION")),
    about = "Consume OpenStack notifications: quarantine poison, archive raw, distill + store, then ack")]
struct Cli {
    /// yagi.conf (default: the first of /etc/yagi/yagi.conf, ./yagi.conf, /etc/yagi.conf).
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    /// Where messages come from: amqp (the brokers of the config), file:PATH or stdin (JSON lines).
    #[arg(long, default_value = "amqp")]
    source: String,
    /// With --source file:PATH: keep reading as the file grows.
    #[arg(long)]
    follow: bool,
    /// With --source file/stdin: the consumer whose chain to use (default: the first in [consumers] queues).
    #[arg(long)]
    consumer: Option<String>,
    /// Override [stv3] ops_address (host:port for /health and /metrics).
    #[arg(long)]
    ops_address: Option<std::net::SocketAddr>,
    #[command(flatten)]
    log: stv3_telemetry::LogArgs,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Load and validate yagi.conf, print what would run, exit 0 (or 1 with every error).
    CheckConfig,
    /// Re-publish quarantined messages to their original exchange and routing key
    /// (or run them through the chain with --through-chain) and set the file aside.
    ReplayQuarantine {
        /// Quarantine file (default: <quarantine_dir>/quarantine.jsonl).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Feed them through this process's chain instead of the broker (no broker needed).
        #[arg(long)]
        through_chain: bool,
        /// Only list what would be replayed.
        #[arg(long)]
        dry_run: bool,
    },
}

fn load(cli: &Cli) -> anyhow::Result<YagiConfig> {
    let path = worker::find_config(cli.config.as_deref())?;
    let mut cfg = YagiConfig::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(a) = cli.ops_address {
        cfg.stv3.ops_address = Some(a);
    }
    Ok(cfg)
}

fn shutdown_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let term = async {
            #[cfg(unix)]
            {
                if let Ok(mut s) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    s.recv().await;
                    return;
                }
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing the current batch, then stopping"),
            _ = term => tracing::info!("SIGTERM: finishing the current batch, then stopping"),
        }
        let _ = tx.send(true);
    });
    rx
}

async fn replay(
    cfg: &YagiConfig,
    file: Option<PathBuf>,
    through_chain: bool,
    dry_run: bool,
) -> anyhow::Result<()> {
    let path = file.unwrap_or_else(|| cfg.stv3.quarantine_dir.join("quarantine.jsonl"));
    if !path.exists() {
        println!("nothing to replay: {} does not exist", path.display());
        return Ok(());
    }
    if dry_run {
        let recs = read_records(&path)?;
        for r in &recs {
            println!(
                "{}\t{}\t{}\t{}\t{}",
                r.ts,
                r.consumer,
                r.reason,
                r.message_id.as_deref().unwrap_or("-"),
                r.detail
            );
        }
        println!("{} record(s) in {}", recs.len(), path.display());
        return Ok(());
    }
    // Set the file aside first: records that are still poison are quarantined again into a new file.
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
    let replaying = path.with_file_name(format!(
        "{}.replaying-{stamp}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("quarantine.jsonl")
    ));
    std::fs::rename(&path, &replaying).with_context(|| format!("rename {}", path.display()))?;
    let recs = read_records(&replaying)?;
    let mut by_consumer: std::collections::BTreeMap<String, Vec<_>> = Default::default();
    for r in recs {
        by_consumer.entry(r.consumer.clone()).or_default().push(r);
    }
    let mut total = 0;
    for (consumer, recs) in by_consumer {
        let c = cfg
            .consumer(&consumer)
            .or_else(|| cfg.consumers.first())
            .ok_or_else(|| anyhow::anyhow!("no consumers in the config"))?;
        total += recs.len();
        if through_chain {
            let mut sinks = Default::default();
            let (mut ch, archive) = worker::build_chain(cfg, c, false, &mut sinks).await?;
            let msgs = recs
                .iter()
                .map(|r| RawMessage {
                    body: r.body.clone(),
                    exchange: r.exchange.clone(),
                    routing_key: r.routing_key.clone(),
                    tag: 0,
                })
                .collect();
            let mut src = VecSource::new(msgs, usize::from(c.max_messages));
            let (_tx, rx) = tokio::sync::watch::channel(false);
            chain::run(&mut ch, &mut src, rx, RetryPolicy::default(), None).await?;
            if let Some(a) = archive {
                a.roll();
            }
            let q = ch
                .counters
                .quarantined
                .load(std::sync::atomic::Ordering::Relaxed);
            println!(
                "{consumer}: {} replayed through the chain, {q} still poison (re-quarantined)",
                recs.len()
            );
        } else {
            let mut p =
                stv3_amqp::Publisher::connect(&c.broker.amqp, "yagi-event replay-quarantine")
                    .await?;
            let msgs: Vec<_> = recs
                .iter()
                .map(|r| {
                    // No exchange (file source): publish straight to the consumer's queue.
                    let (ex, rk) = if r.exchange.is_empty() {
                        ("", c.queue.as_str())
                    } else {
                        (r.exchange.as_str(), r.routing_key.as_str())
                    };
                    let mut m = stv3_amqp::OutMessage::raw(ex, rk, r.body.clone());
                    m.message_id = r.message_id.clone();
                    m
                })
                .collect();
            let stats = p.publish_at_rate(msgs, None, None).await?;
            p.close().await;
            println!("{consumer}: {} re-published with confirms", stats.confirmed);
        }
    }
    let done = replaying.with_file_name(
        replaying
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("q")
            .replace(".replaying-", ".replayed-"),
    );
    std::fs::rename(&replaying, &done)?;
    println!(
        "{total} record(s) replayed; {} kept as {}",
        replaying.display(),
        done.display()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    stv3_telemetry::tune_allocator();
    stv3_telemetry::spawn_heap_trimmer();
    stv3_telemetry::init_logging(&cli.log);
    match real_main(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yagi-event: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    let cfg = load(&cli)?;
    match &cli.cmd {
        Some(Cmd::CheckConfig) => {
            println!("{}: OK", cfg.path.display());
            for c in &cfg.consumers {
                let apps: Vec<&str> = c.apps.iter().map(|a| a.section()).collect();
                println!(
                    "  consumer {} queue {} on {} exchange {:?} ({}) keys {:?} apps {:?} max_messages {} prefetch {}",
                    c.name, c.queue, c.broker.amqp.redacted(), c.exchange.as_deref().unwrap_or(""), c.exchange_type,
                    c.routing_keys, apps, c.max_messages, c.prefetch
                );
            }
            return Ok(());
        }
        Some(Cmd::ReplayQuarantine {
            file,
            through_chain,
            dry_run,
        }) => {
            return replay(&cfg, file.clone(), *through_chain, *dry_run).await;
        }
        None => {}
    }
    let mut source: SourceSpec = cli
        .source
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--source {e}"))?;
    if let SourceSpec::File { follow, .. } = &mut source {
        *follow = cli.follow;
    } else if cli.follow {
        anyhow::bail!("--follow only applies to --source file:PATH");
    }
    if cfg.daemonize {
        tracing::warn!("[event_worker] daemonize = True is ignored: run yagi-event under systemd");
    }
    if cfg.stats_enabled {
        tracing::warn!(
            "[stats] StatsD is not supported: scrape /metrics ([stv3] ops_address) instead"
        );
    }
    tracing::info!(config = %cfg.path.display(), consumers = cfg.consumers.len(), "Initializing yagi-event");
    let shutdown = shutdown_signal();
    let opts = WorkerOptions {
        source,
        consumer: cli.consumer.clone(),
        retry: RetryPolicy {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
        },
    };
    let report = worker::run(&cfg, opts, shutdown).await?;
    for (name, c) in report {
        let g = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        tracing::info!(consumer = %name, consumed = g(&c.consumed), acked = g(&c.acked), quarantined = g(&c.quarantined),
            archived = g(&c.archived), stored = g(&c.stored), duplicates = g(&c.duplicates), "done");
    }
    Ok(())
}
