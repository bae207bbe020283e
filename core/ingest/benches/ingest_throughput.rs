//! Ingest throughput load tool (not criterion: it drives real services).
//!
//! Fills a RabbitMQ queue with N notifications, then measures in the same run:
//! 1. the raw lapin consume rate of that queue (basic.consume, prefetch, multiple-ack,
//!    no processing): the ceiling;
//! 2. one `yagi-event` process draining an identical full queue into MariaDB, archive on;
//! 3. the same into SQLite, archive on.
//!
//! `cargo bench -p stv3-ingest --bench ingest_throughput -- [N] [max_messages]`
//! (defaults 50000, 1000). Needs RabbitMQ and MariaDB (see stv3_testsupport).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;

async fn fill(env: &Env, n: usize) -> f64 {
    let t = Instant::now();
    env.publish(bodies(&env.name, n)).await;
    n as f64 / t.elapsed().as_secs_f64()
}

async fn raw_consume(env: &Env, n: usize, batch: usize) -> f64 {
    let conn = stv3_amqp::connect(&env.settings(), "bench-raw")
        .await
        .unwrap();
    let mut qc =
        stv3_amqp::QueueConsumer::start(&conn, &env.queue, (batch * 2) as u16, "raw", None)
            .await
            .unwrap();
    let t = Instant::now();
    let mut got = 0;
    while got < n {
        let b = qc
            .next_batch(batch, Duration::from_millis(20))
            .await
            .unwrap()
            .unwrap();
        got += b.len();
        qc.ack_up_to(b.last().unwrap().tag).await.unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    qc.close().await;
    let _ = conn.close(200, "bye".into()).await;
    rate
}

async fn through_yagi(env: &mut Env, n: usize) -> (f64, Duration) {
    let t = Instant::now();
    let mut child = env.spawn(&[]);
    let got = env.wait_stored(n as u64, Duration::from_secs(1800)).await;
    let elapsed = t.elapsed();
    sigterm(&child);
    wait_exit(&mut child, Duration::from_secs(60));
    assert_eq!(got, n as u64, "{}", env.logs());
    let archived = env.archived_ids().len();
    assert_eq!(archived, n, "archive holds every notification");
    (n as f64 / elapsed.as_secs_f64(), elapsed)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let batch: u16 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let Some(amqp) =
        stv3_testsupport::require(stv3_testsupport::Service::RabbitMq, "ingest_throughput")
    else {
        return;
    };
    if stv3_testsupport::require(stv3_testsupport::Service::MariaDb, "ingest_throughput").is_none()
    {
        return;
    }
    println!(
        "ingest throughput: N={n} notifications, max_messages={batch}, prefetch={}",
        u32::from(batch) * 2
    );

    let raw_env = Env::new("benchraw", Db::MariaDb, Some(&amqp), batch, "").await;
    let pub_rate = fill(&raw_env, n).await;
    let raw = raw_consume(&raw_env, n, usize::from(batch)).await;
    println!("publish (confirms, window 512)         {pub_rate:>10.0} msg/s");
    println!("raw lapin consume (ceiling)            {raw:>10.0} msg/s");
    raw_env.cleanup().await;

    let mut my = Env::new("benchmy", Db::MariaDb, Some(&amqp), batch, "").await;
    fill(&my, n).await;
    let (rate, el) = through_yagi(&mut my, n).await;
    println!("yagi-event -> MariaDB + archive        {rate:>10.0} msg/s   ({n} in {:.2} s, incl. start-up)", el.as_secs_f64());
    my.cleanup().await;

    let mut lite = Env::new("benchlite", Db::Sqlite, Some(&amqp), batch, "").await;
    fill(&lite, n).await;
    let (rate, el) = through_yagi(&mut lite, n).await;
    println!("yagi-event -> SQLite + archive         {rate:>10.0} msg/s   ({n} in {:.2} s, incl. start-up)", el.as_secs_f64());
    lite.cleanup().await;
    println!("original yagi ceiling (max_messages=100, poll_delay=1 s): ~100 msg/s per queue (core-spec 5.1)");
}
