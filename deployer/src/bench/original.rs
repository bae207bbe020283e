//! The two comparisons of a bench run, on the same broker and server:
//! the raw consume rate (a plain consumer per queue, no work) and the original
//! Python StackTach.v3 (yagi's consume loop + stackdistiller + winchester,
//! driven by `deployer/bench/original_region.py` in the oracle venv).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use stv3_amqp::lapin::options::{QueueDeleteOptions, QueuePurgeOptions};
use stv3_amqp::{AmqpSettings, Publisher, QueueConsumer, QueueSpec, Topology};

use super::cli::BenchArgs;
use super::load::{notifications, CellLoad};
use super::report::Original;
use super::Plan;
use crate::sandbox::configs::Layout;

/// The driver script, embedded so `stv3ctl bench` works from an installed binary.
const ORIGINAL_DRIVER: &str = include_str!("../../bench/original_region.py");

/// Declare one durable queue per cell (`<prefix>.cellN`), fill each with `per_cell`
/// notifications through the default exchange, and return the queue names.
async fn fill_queues(
    settings: &AmqpSettings,
    prefix: &str,
    cells: usize,
    per_cell: u64,
    plan: &Plan,
    instances: usize,
) -> Result<Vec<String>> {
    let mut p = Publisher::connect(settings, "stv3-bench-fill").await?;
    let mut queues = Vec::new();
    for i in 0..cells {
        let q = format!("{prefix}.cell{}", i + 1);
        let ch = p.channel().await?;
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
        p.declare(Topology {
            queues: vec![QueueSpec {
                name: q.clone(),
                durable: true,
                auto_delete: false,
                arguments: vec![],
            }],
            ..Default::default()
        })
        .await?;
        let cell = CellLoad {
            exchange: String::new(),
            routing_key: q.clone(),
            seed: crate::sandbox::cell_seed(7_000_000, i),
            count: per_cell,
        };
        p.publish_at_rate(
            notifications(&cell, instances, plan.sim_start, plan.ops_per_hour),
            None,
            None,
        )
        .await
        .with_context(|| format!("fill {q}"))?;
        queues.push(q);
    }
    p.close().await;
    Ok(queues)
}

pub async fn delete_queues(settings: &AmqpSettings, queues: &[String]) -> Result<()> {
    tidy_queues(settings, queues, &[]).await
}

/// Delete the region's cell queues and empty the usage pipeline's re-publish queue
/// (purged, not deleted: another region on the broker may be publishing to it).
pub async fn cleanup_queues(settings: &AmqpSettings, layout: &Layout) -> Result<()> {
    let queues: Vec<String> = layout.cells.iter().map(|c| c.queue.clone()).collect();
    tidy_queues(settings, &queues, &["monitor.info"]).await
}

/// On one connection: delete `delete` and purge `purge` (missing queues are fine).
async fn tidy_queues(settings: &AmqpSettings, delete: &[String], purge: &[&str]) -> Result<()> {
    let conn = stv3_amqp::connect(settings, "stv3-bench-cleanup").await?;
    for q in delete {
        // A channel each: a failed operation closes its channel.
        let ch = conn.create_channel().await?;
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for q in purge {
        let ch = conn.create_channel().await?;
        let _ = ch
            .queue_purge((*q).into(), QueuePurgeOptions::default())
            .await;
    }
    let _ = conn.close(200, "bye".into()).await;
    Ok(())
}

/// Raw consume rate: `per_cell` messages in each of `cells` full queues, drained at
/// once by one plain consumer per queue (prefetch 2000, batches of 1000, one
/// multiple-ack per batch: yagi-event's consumer without the work). Messages/s overall.
pub async fn raw_consume_rate(
    settings: &AmqpSettings,
    prefix: &str,
    cells: usize,
    per_cell: u64,
    plan: &Plan,
    instances: usize,
) -> Result<f64> {
    let queues = fill_queues(settings, prefix, cells, per_cell, plan, instances).await?;
    let conn = stv3_amqp::connect(settings, "stv3-bench-raw").await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for q in &queues {
        let mut c = QueueConsumer::start(&conn, q, 2000, "raw", None).await?;
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while n < per_cell {
                let Some(batch) = c.next_batch(1000, Duration::from_millis(50)).await? else {
                    break;
                };
                n += batch.len() as u64;
                if let Some(last) = batch.last() {
                    c.ack_up_to(last.tag).await?;
                }
            }
            c.close().await;
            Ok::<u64, stv3_amqp::AmqpError>(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.context("raw consumer task")??;
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = conn.close(200, "bye".into()).await;
    delete_queues(settings, &queues).await?;
    Ok(super::report::rate(total, secs))
}

/// Fill one queue per cell with `args.original` notifications in all and let the
/// original drain them into a scratch database on the same server.
pub async fn run(
    args: &BenchArgs,
    plan: &Plan,
    settings: &AmqpSettings,
    dir: &Path,
) -> Result<Original> {
    if !args.original_python.exists() {
        bail!(
            "{} not found: build the original's venv with `bash ../shared/oracle/setup.sh` \
             and `/tmp/stv3-oracle-venv/bin/pip install PyMySQL`",
            args.original_python.display()
        );
    }
    let per_cell = (args.original / args.cells as u64).max(1);
    let queues = fill_queues(
        settings,
        &format!("stv3.{}.orig", args.database),
        args.cells,
        per_cell,
        plan,
        args.instances,
    )
    .await?;
    let script = dir.join("original_region.py");
    std::fs::write(&script, ORIGINAL_DRIVER)?;
    let out = dir.join("original-result.json");
    let etc = dir.join("etc");
    let db = args
        .database_url(&format!("{}_orig", args.database))
        .replacen("mysql://", "mysql+pymysql://", 1);
    let log = std::fs::File::create(dir.join("logs").join("original.log"))?;
    let status = tokio::process::Command::new(&args.original_python)
        .arg(&script)
        .args(["--amqp", &args.amqp])
        .args(["--queues", &queues.join(",")])
        .args(["--db", &db])
        .arg("--event-definitions")
        .arg(etc.join("event_definitions.yaml"))
        .arg("--triggers")
        .arg(etc.join("triggers.yaml"))
        .arg("--pipelines")
        .arg(etc.join("pipelines.yaml"))
        .args(["--expect", &(per_cell * args.cells as u64).to_string()])
        .args(["--timeout", &args.original_timeout.to_string()])
        .args(["--workers", &args.workers.to_string()])
        .arg("--out")
        .arg(&out)
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .await
        .context("start the original's driver")?;
    delete_queues(settings, &queues).await?;
    // Exit 5 (a child crashed) still writes the partial result; anything else has none.
    let partial = status.code() == Some(5) && out.exists();
    if !status.success() && !partial {
        bail!(
            "the original's driver failed ({status}); see {}",
            dir.join("logs/original.log").display()
        );
    }
    let raw: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&out).with_context(|| format!("read {}", out.display()))?,
    )?;
    Ok(Original {
        notifications: per_cell * args.cells as u64,
        consumed: raw["consumed"].as_u64().unwrap_or(0),
        consume_rate: raw["consume_rate"].as_f64().unwrap_or(0.0),
        end_to_end_rate: super::report::rate(
            raw["consumed"].as_u64().unwrap_or(0),
            raw["elapsed_s"].as_f64().unwrap_or(0.0),
        ),
        timed_out: raw["timed_out"].as_bool().unwrap_or(false),
        raw,
    })
}
