//! Load tool: ingest of distilled events into streams (TriggerManager::add_events),
//! single process, batched, on SQLite and/or MariaDB.
//!
//! ```sh
//! cargo bench -p stv3-winchester --bench ingest -- \
//!     --events /tmp/wbench/events.jsonl --triggers /work/shared/oracle/configs/triggers_usage.yaml \
//!     --backend sqlite --backend mariadb --batch 1000 --runs 3
//! ```
//! Events are canonical JSON lines (`distill.py` output). The clock is the
//! replay clock: each batch runs with now = the earliest event time in the batch.
//! `--inflight N` keeps N batches in flight at once, each its own task on a
//! two-thread runtime, as yagi-event does per consumer (`[stv3] store_inflight`,
//! default 2). On SQLite the writer is one connection, so in-flight batches
//! overlap only their work outside the write transaction.
//! Each run uses a fresh database (SQLite file in a temp dir, or a MariaDB
//! scratch database that is dropped afterwards).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use sqlx::Executor;
use stv3_event::{parse_timestamp, Event, TraitValue};
use stv3_winchester::config::load_triggers;
use stv3_winchester::store::{AnyStore, Store, StreamQuery};
use stv3_winchester::TriggerManager;

#[derive(Parser, Debug)]
struct Args {
    /// Canonical event JSON lines.
    #[arg(long, default_value = "/tmp/wbench/events.jsonl")]
    events: PathBuf,
    #[arg(
        long,
        default_value = "/work/shared/oracle/configs/triggers_usage.yaml"
    )]
    triggers: PathBuf,
    /// sqlite | mariadb (repeatable).
    #[arg(long, default_values_t = vec!["sqlite".to_string()])]
    backend: Vec<String>,
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Batches in flight at once (each its own task and transaction; SQLite
    /// serializes writers, so there only the work before the transaction overlaps).
    #[arg(long, default_value_t = 1)]
    inflight: usize,
    /// Use only the first N events.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    mysql_root: String,
    /// Ignored (cargo bench passes it).
    #[arg(long, hide = true)]
    bench: bool,
}

fn parse_event(line: &str) -> anyhow::Result<Event> {
    let v: serde_json::Value = serde_json::from_str(line)?;
    let s = |k: &str| v[k].as_str().ok_or_else(|| anyhow!("missing {k}"));
    let mut e = Event::new(
        s("message_id")?,
        s("event_type")?,
        parse_timestamp(s("generated")?)?,
    );
    for t in v["traits"].as_array().ok_or_else(|| anyhow!("no traits"))? {
        let name = t["name"].as_str().ok_or_else(|| anyhow!("trait name"))?;
        let val = &t["value"];
        let tv = match t["type"].as_str() {
            Some("text") => TraitValue::Text(val.as_str().unwrap_or_default().into()),
            Some("int") => TraitValue::Int(val.as_i64().ok_or_else(|| anyhow!("int {name}"))?),
            Some("float") => {
                TraitValue::Float(val.as_f64().ok_or_else(|| anyhow!("float {name}"))?)
            }
            Some("datetime") => {
                TraitValue::Datetime(parse_timestamp(val.as_str().unwrap_or_default())?)
            }
            other => return Err(anyhow!("trait {name}: type {other:?}")),
        };
        e.traits.insert(name.into(), tv);
    }
    Ok(e)
}

async fn run_once(
    args: &Args,
    backend: &str,
    events: &Arc<Vec<Event>>,
) -> anyhow::Result<(f64, u64)> {
    let dir = tempfile::tempdir()?;
    let mut scratch: Option<String> = None;
    let url = match backend {
        "sqlite" => format!("sqlite:///{}", dir.path().join("bench.db").display()),
        "mariadb" => {
            let name = stv3_testsupport::scratch_name("bench");
            let pool = sqlx::MySqlPool::connect(&args.mysql_root).await?;
            pool.execute(
                format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
                    .as_str(),
            )
            .await?;
            pool.close().await;
            scratch = Some(name.clone());
            format!("{}/{name}", args.mysql_root.trim_end_matches('/'))
        }
        other => return Err(anyhow!("unknown backend {other}")),
    };
    let store = AnyStore::connect(&url).await?;
    store.migrate().await?;
    let tm = Arc::new(TriggerManager::new(
        store.clone(),
        load_triggers(&args.triggers)?,
    ));
    let start = Instant::now();
    let batch = args.batch.max(1);
    futures::stream::iter((0..events.len()).step_by(batch))
        .map(|from| {
            let (tm, events) = (tm.clone(), events.clone());
            tokio::spawn(async move {
                let chunk = &events[from..(from + batch).min(events.len())];
                let now = chunk.iter().map(|e| e.generated).min().unwrap_or_default();
                tm.add_events(chunk, now).await.map(|_| ())
            })
        })
        .buffered(args.inflight.max(1))
        .map(|joined| -> anyhow::Result<()> { Ok(joined??) })
        .try_collect::<Vec<_>>()
        .await?;
    let secs = start.elapsed().as_secs_f64();
    let streams = store.count_streams(&StreamQuery::default()).await?;
    if let Some(name) = scratch {
        let pool = sqlx::MySqlPool::connect(&args.mysql_root).await?;
        pool.execute(format!("DROP DATABASE `{name}`").as_str())
            .await?;
    }
    Ok((secs, streams))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.events)
        .with_context(|| format!("{}", args.events.display()))?;
    let mut events: Vec<Event> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| parse_event(l).with_context(|| format!("line {}", i + 1)))
        .collect::<Result<_, _>>()?;
    if let Some(n) = args.limit {
        events.truncate(n);
    }
    let events = Arc::new(events);
    for backend in &args.backend {
        let mut rates = Vec::new();
        for run in 1..=args.runs {
            let (secs, streams) = run_once(&args, backend, &events).await?;
            let rate = events.len() as f64 / secs;
            println!(
                "{{\"backend\":\"{backend}\",\"run\":{run},\"events\":{},\"batch\":{},\"secs\":{secs:.3},\"events_per_s\":{rate:.0},\"streams\":{streams}}}",
                events.len(),
                args.batch
            );
            rates.push(rate);
        }
        rates.sort_by(|a, b| a.total_cmp(b));
        println!(
            "# {backend}: min {:.0} / median {:.0} / max {:.0} events/s",
            rates[0],
            rates[rates.len() / 2],
            rates[rates.len() - 1]
        );
    }
    Ok(())
}
