//! Load tool: how many streams per second one PipelineManager fires.
//!
//! Creates a scratch database (MariaDB URL without a db name, or a SQLite
//! file), ingests `--streams` ready-to-fire streams (one event each), then runs
//! fire passes with a `[logger]` pipeline until nothing is left, and prints
//! JSON figures. The scratch MariaDB database is dropped afterwards.
//!
//! cargo run --release -p stv3-pipeline --example pipeline_bench -- --db mysql://root@127.0.0.1:3306 --streams 20000

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use stv3_event::{parse_timestamp, Event, TraitValue};
use stv3_pipeline::config::{default_handler_map, PipelineConfig};
use stv3_pipeline::handlers::HandlerContext;
use stv3_pipeline::{ManagerSettings, PipelineManager, Registry};
use stv3_telemetry::{init_logging, LogArgs};
use stv3_winchester::store::ReadyKind;
use stv3_winchester::{AnyStore, Store, TriggerManager};

#[derive(Parser)]
struct Args {
    /// `mysql://user@host:port` (a scratch database is created) or a sqlite URL.
    #[arg(long)]
    db: String,
    #[arg(long, default_value_t = 20000)]
    streams: usize,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long, default_value_t = 1000)]
    batch_size: u32,
    /// Purge completed streams (winchester's default) instead of marking them completed.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    purge: bool,
    #[command(flatten)]
    log: LogArgs,
}

const TRIGGERS: &str = "- name: bench
  distinguished_by: [instance_id]
  expiration: \"$last + 1d\"
  fire_pipeline: log
  expire_pipeline: log
  match_criteria: [{event_type: \"bench.*\"}]
  fire_criteria: [{event_type: bench.fire}]
";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    init_logging(&a.log);
    let (url, scratch) = if a.db.starts_with("mysql") {
        use sqlx::Connection;
        let name = format!("stv3bench_{}", std::process::id());
        let mut c = sqlx::MySqlConnection::connect(&a.db).await?;
        sqlx::query(&format!("CREATE DATABASE `{name}`"))
            .execute(&mut c)
            .await?;
        (format!("{}/{name}", a.db.trim_end_matches('/')), Some(name))
    } else {
        (a.db.clone(), None)
    };
    let store = AnyStore::connect(&url).await?;
    store.migrate().await?;
    let triggers =
        stv3_winchester::config::parse_triggers(TRIGGERS, Path::new("bench-triggers.yaml"))?;
    let tm = Arc::new(TriggerManager::new(store.clone(), triggers));
    let t0 = parse_timestamp("2015-03-01 00:00:00")?;
    let events: Vec<Event> = (0..a.streams)
        .map(|i| {
            Event::new(
                format!("bench-{i}"),
                "bench.fire",
                t0 + chrono::Duration::milliseconds(i as i64),
            )
            .with_trait("instance_id", TraitValue::Text(format!("inst-{i}").into()))
        })
        .collect();
    let ti = Instant::now();
    for chunk in events.chunks(1000) {
        tm.add_events(chunk, t0).await?;
    }
    let ingest_s = ti.elapsed().as_secs_f64();

    let ctx = HandlerContext::offline();
    let pipelines = PipelineConfig::parse(
        "log: [logger]\n",
        Path::new("bench-pipelines.yaml"),
        &default_handler_map(),
        &Registry::builtin(),
        &ctx,
    )?;
    let settings = ManagerSettings {
        batch_size: a.batch_size,
        purge_completed_streams: a.purge,
        concurrency: a.concurrency,
        pipeline_timeout: Duration::from_secs(60),
        ..ManagerSettings::default()
    };
    let pm = PipelineManager::new(tm.clone(), pipelines, ctx, settings);
    let now = t0 + chrono::Duration::hours(1);
    let never = || false;
    let tf = Instant::now();
    let mut fired = 0;
    loop {
        let r = pm
            .process_ready_streams(ReadyKind::Fire, now, &never)
            .await?;
        fired += r.done;
        if r.loaded == 0 {
            break;
        }
    }
    let fire_s = tf.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "backend": store.backend(), "streams": a.streams, "fired": fired, "concurrency": a.concurrency,
            "purge": a.purge, "ingest_s": (ingest_s * 1000.0).round() / 1000.0,
            "fire_s": (fire_s * 1000.0).round() / 1000.0, "streams_per_s": (fired as f64 / fire_s).round(),
        })
    );
    if let Some(name) = scratch {
        use sqlx::Connection;
        let mut c = sqlx::MySqlConnection::connect(&a.db).await?;
        sqlx::query(&format!("DROP DATABASE `{name}`"))
            .execute(&mut c)
            .await?;
    }
    Ok(())
}
