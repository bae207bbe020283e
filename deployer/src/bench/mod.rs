//! `stv3ctl bench`: a whole region on this machine under load, measured as an
//! operator would see it.
//!
//! Phases, in order (each one's numbers land in `result.json`):
//! 1. **raw**: the same notifications through the same broker with a plain
//!    consumer per cell queue (basic.consume, prefetch, one multiple-ack per
//!    batch, no work): the ceiling yagi-event is compared against.
//! 2. **region**: a scratch MariaDB database, the configs a deploy renders
//!    (via the sandbox renderer), migrations once, then the API, `--workers`
//!    pipeline-workers and one yagi-event per cell.
//! 3. **load**: one confirming publisher per cell at `--rate` (or as fast as the
//!    broker confirms) for `--count` notifications or `--duration` seconds;
//!    every k-th message is timed until the API returns its event. A sampler
//!    records published/acked/stored/fired, queue depths and per-process CPU
//!    and RSS every `--interval`.
//! 4. **drain**: until every notification is acked and no stream is left ready
//!    to fire or expire.
//! 5. **original** (`--original N`): N notifications of the same workload
//!    through the original Python StackTach.v3 on the same broker and server.
//!
//! Then `result.json`, `plot.png` and a summary table. With `--duration` the
//! run is also a soak: each process's RSS level in the first window after
//! `--warmup` against its level in the last window ([`report::soak`]).

pub mod cli;
pub mod load;
pub mod original;
pub mod plot;
pub mod probe;
pub mod report;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sqlx::mysql::MySqlPoolOptions;
use stv3_amqp::AmqpSettings;

use crate::sandbox::supervisor::{signal, Signal, Supervisor};
use crate::sandbox::{self, SandboxOptions};
use cli::BenchArgs;
use report::{BenchResult, Sample};

/// Counters scraped from the yagi-event processes, in this order.
const INGEST_METRICS: &[&str] = &[
    "stv3_ingest_acked_total",
    "stv3_ingest_events_stored_total",
    "stv3_ingest_archived_total",
    "stv3_ingest_duplicates_total",
    "stv3_ingest_quarantined_total",
];
/// Counters scraped from the pipeline workers (summed: streams done).
const PIPELINE_METRICS: &[&str] = &[
    "stv3_pipeline_streams_fired_total",
    "stv3_pipeline_streams_expired_total",
];
/// Servers on this machine whose CPU belongs in the picture.
const SERVERS: &[(&str, &str)] = &[("rabbitmq", "beam.smp"), ("mariadb", "mariadbd")];

/// Run the benchmark; returns the exit code (0 = every notification acked, every
/// latency sample seen, and the soak verdict, if any, passed).
pub fn run(assets: &crate::deploy::roles::Assets, args: BenchArgs) -> Result<i32> {
    let plan = args.plan()?;
    let sb = SandboxOptions {
        dir: args.out.join("region"),
        amqp: Some(args.amqp.clone()),
        db: Some(args.database_url(&args.database)),
        api_addr: args.api.clone(),
        cells: (1..=args.cells).map(|i| format!("cell{i}")).collect(),
        workers: args.workers,
        count: plan.per_cell,
        instances: args.instances as u64,
        release: !args.debug,
        no_build: args.no_build,
        // Queues named after the scratch database: two runs on one broker never share one.
        queue_prefix: format!("stv3.{}", args.database),
        // ... and bound to an exchange of their own: a topic exchange copies a message to
        // every queue bound with its key, so a shared one would mix two runs' traffic.
        exchange: format!("stv3.{}", args.database),
        ops_port_base: args.ops_port_base,
        ..SandboxOptions::default()
    };
    let bin_dir = sandbox::build_binaries(&sb)?;
    if sb.dir.exists() {
        std::fs::remove_dir_all(&sb.dir).with_context(|| format!("clear {}", sb.dir.display()))?;
    }
    std::fs::create_dir_all(&sb.dir)?;
    let dir = sb.dir.canonicalize()?;
    let rt = tokio::runtime::Runtime::new()?;
    let settings = AmqpSettings::from_url(&args.amqp)?;
    eprintln!("{}", plan.describe(&args));

    let raw = if args.raw_baseline {
        eprintln!("raw consume baseline ({} per cell)...", plan.raw_per_cell);
        let r = rt.block_on(original::raw_consume_rate(
            &settings,
            &format!("stv3.{}.raw", args.database),
            args.cells,
            plan.raw_per_cell,
            &plan,
            args.instances,
        ))?;
        eprintln!("  raw consume: {r:.0} msg/s");
        Some(r)
    } else {
        None
    };

    let admin = rt
        .block_on(
            MySqlPoolOptions::new()
                .max_connections(2)
                .connect(&args.mysql),
        )
        .with_context(|| format!("connect to {}", args.mysql))?;
    let db_server = rt.block_on(probe::db_server(&admin)).ok();
    if let Some(d) = &db_server {
        eprintln!("database server {}", d.describe());
    }
    rt.block_on(recreate_database(&admin, &args.database))?;
    // A run that was killed leaves its queues (and their messages) behind: start empty.
    let cell_queues: Vec<String> = sb
        .cells
        .iter()
        .map(|c| sandbox::configs::cell_queue(&sb, c))
        .collect();
    rt.block_on(original::delete_queues(&settings, &cell_queues))?;
    // Ctrl-C from here on stops the region and reports (see `drive`), never orphans it.
    sandbox::stop_flag();
    let mut sup = Supervisor::new(&dir)?;
    let region = sandbox::start_region(assets, &sb, &bin_dir, &dir, &mut sup)?;
    let judged: Vec<String> = sup.pids().into_iter().map(|(name, _)| name).collect();
    let outcome = rt
        .block_on(drive(&args, &plan, &settings, &region, &sup, &admin))
        .map(|(mut r, ok)| {
            r.db_server = db_server;
            (r, ok)
        });
    eprintln!("stopping the region...");
    sup.stop_all(Duration::from_secs(15));
    let (mut result, all_seen) = outcome?;
    result.raw_consume_rate = raw;
    result.pct_of_raw = raw.map(|r| 100.0 * result.end_to_end_rate / r.max(1e-9));

    if args.original > 0 {
        eprintln!(
            "original StackTach.v3 on {} notifications (at most {} s)...",
            args.original, args.original_timeout
        );
        match rt.block_on(original::run(&args, &plan, &settings, &dir)) {
            Ok(o) => {
                result.speedup_ingest = Some(result.ingest_rate / o.consume_rate.max(1e-9));
                result.speedup_end_to_end =
                    Some(result.end_to_end_rate / o.end_to_end_rate.max(1e-9));
                result.original = Some(o);
            }
            Err(e) => eprintln!("!! the original could not run: {e:#}"),
        }
    }
    rt.block_on(original::cleanup_queues(&settings, &region.layout))
        .unwrap_or_else(|e| eprintln!("!! queue cleanup: {e:#}"));

    if let Some(secs) = args.duration {
        // Warm-up ends after --warmup and 15 s after the pipelines began firing in bulk
        // (100 streams; a stray early fire does not count), so every stage has reached its
        // working set before RSS is the baseline.
        let first_fire = result
            .timeline
            .iter()
            .find(|s| s.fired >= 100)
            .map(|s| s.t + 15.0)
            .unwrap_or(f64::INFINITY);
        let backlog_drained = result
            .soak_backlog_s
            .map(|(_, to)| to + 15.0)
            .unwrap_or(0.0);
        let warmup = args
            .warmup
            .unwrap_or(secs as f64 * 0.25)
            .max(first_fire)
            .max(backlog_drained);
        result.soak = Some(report::soak(
            &result.timeline,
            warmup,
            args.max_growth_pct,
            &judged,
        ));
    }
    if args.drop_databases {
        for db in [args.database.clone(), format!("{}_orig", args.database)] {
            rt.block_on(sqlx::query(&format!("DROP DATABASE IF EXISTS `{db}`")).execute(&admin))
                .with_context(|| format!("drop {db}"))?;
        }
    }
    std::fs::create_dir_all(&args.out)?;
    let json_path = args.out.join("result.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&result)?)
        .with_context(|| format!("write {}", json_path.display()))?;
    let png = args.out.join("plot.png");
    let plotted = plot::draw(&result, &png);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", cli::summary(&result));
        println!("result: {}", json_path.display());
    }
    match plotted {
        Ok(()) => eprintln!("plot:   {}", png.display()),
        Err(e) => {
            eprintln!("!! {e:#}");
            return Ok(1);
        }
    }
    let ok = result.acked >= result.published
        && all_seen
        && result.soak.as_ref().map(|s| s.pass).unwrap_or(true);
    Ok(if ok { 0 } else { 1 })
}

/// What the arguments mean in numbers.
#[derive(Debug, Clone)]
pub struct Plan {
    pub per_cell: u64,
    pub rate_per_cell: Option<f64>,
    pub raw_per_cell: u64,
    pub sample_every: u64,
    /// notigen's simulated clock (see `sandbox::sim_clock_args`).
    pub sim_start: chrono::NaiveDateTime,
    pub ops_per_hour: f64,
}

async fn recreate_database(admin: &sqlx::MySqlPool, db: &str) -> Result<()> {
    if !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("--database {db:?}: use letters, digits and _ only");
    }
    for sql in [
        format!("DROP DATABASE IF EXISTS `{db}`"),
        format!("CREATE DATABASE `{db}`"),
    ] {
        sqlx::query(&sql)
            .execute(admin)
            .await
            .with_context(|| sql.clone())?;
    }
    Ok(())
}

/// Wait for the region, run the load, sample until drained. Returns the result and
/// whether every latency sample became visible.
async fn drive(
    args: &BenchArgs,
    plan: &Plan,
    settings: &AmqpSettings,
    region: &sandbox::Region,
    sup: &Supervisor,
    admin: &sqlx::MySqlPool,
) -> Result<(BenchResult, bool)> {
    let db = MySqlPoolOptions::new()
        .max_connections(2)
        .connect(&args.database_url(&args.database))
        .await?;
    let yagi: Vec<String> = ops_of(region, "yagi");
    wait_ready(region, settings, Duration::from_secs(60)).await?;

    // --prefill: freeze the consumers while the queues fill (their connections stay open).
    let yagi_pids: Vec<u32> = sup
        .pids()
        .into_iter()
        .filter(|(name, _)| name.starts_with("yagi"))
        .map(|(_, pid)| pid)
        .collect();
    let freeze = |sig: Signal| {
        for pid in &yagi_pids {
            signal(*pid, sig);
        }
    };
    if args.prefill {
        freeze(Signal::Stop);
    }
    let state = load::LoadState::new();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let prober = tokio::spawn(load::probe_latencies(
        args.api.clone(),
        rx,
        Arc::clone(&state),
        Duration::from_secs(args.drain_timeout),
    ));
    let mut publishers = Vec::new();
    for (i, cell) in region.layout.cells.iter().enumerate() {
        let c = load::CellLoad {
            exchange: cell.exchange.clone(),
            routing_key: cell.routing_key.clone(),
            seed: sandbox::cell_seed(args.seed, i),
            count: plan.per_cell,
        };
        let msgs = load::notifications(&c, args.instances, plan.sim_start, plan.ops_per_hour);
        publishers.push(tokio::spawn(load::publish_cell(
            settings.clone(),
            msgs,
            plan.rate_per_cell,
            plan.sample_every,
            Arc::clone(&state),
            tx.clone(),
        )));
    }
    drop(tx);

    let pids: Vec<(String, u32)> = sup
        .pids()
        .into_iter()
        .chain([("bench-publisher".to_string(), std::process::id())])
        .chain(SERVERS.iter().flat_map(|(n, comm)| {
            probe::pids_named(comm)
                .into_iter()
                .map(|p| (n.to_string(), p))
        }))
        .collect();
    let queues: Vec<String> = region
        .layout
        .cells
        .iter()
        .map(|c| c.queue.clone())
        .collect();
    let conn = stv3_amqp::connect(settings, "stv3-bench-sampler").await?;
    let total = plan.per_cell * region.layout.cells.len() as u64;
    let interval = Duration::from_secs_f64(args.interval);
    let mut timeline: Vec<Sample> = Vec::new();
    let mut hwm: Vec<(String, u64)> = Vec::new();
    let mut lat_seen = 0usize;
    let (mut publish_s, mut ingest_s, mut drained_s) = (None, None, None);
    let mut last_print = Instant::now();
    let deadline_after_publish = Duration::from_secs(args.drain_timeout);
    let mut published_at: Option<Instant> = None;
    let mut window_start = 0.0f64;
    let mut burst_done: Option<(f64, f64)> = None;
    let interrupted = sandbox::stop_flag();
    // Soak: one backlog during warm-up (consumers frozen long enough for twice a full
    // batch to queue up), so every process reaches the working set of its largest batch
    // before RSS is taken as the baseline; a steady low rate alone only ever sees small ones.
    let mut burst = match (args.duration, plan.rate_per_cell) {
        (Some(_), Some(r)) if !args.prefill => {
            let freeze =
                (2.0 * f64::from(crate::inventory::DEFAULT_MAX_MESSAGES) / r).clamp(2.0, 30.0);
            Some((5.0, 5.0 + freeze))
        }
        _ => None,
    };
    let mut frozen = false;
    loop {
        tokio::time::sleep(interval).await;
        let t = state.start.elapsed().as_secs_f64();
        // Freeze and thaw on time, before anything below can wait on a stopped process.
        if let Some((from, to)) = burst {
            if !frozen && t >= from {
                freeze(Signal::Stop);
                frozen = true;
            } else if frozen && t >= to {
                freeze(Signal::Cont);
                frozen = false;
                burst_done = Some((from, t));
                burst = None;
            }
        }
        // Each process's /metrics, once this round. A stopped yagi-event cannot answer
        // (each try would block this loop, and the publishers on its runtime, for the
        // read timeout, and keep the consumers stopped past the broker's heartbeat):
        // it is skipped, and its last counts kept.
        let metrics: Vec<(&str, String)> = region
            .ops
            .iter()
            .filter(|(name, _)| !(frozen && name.starts_with("yagi")))
            .filter_map(|(name, addr)| Some((name.as_str(), probe::metrics_text(addr)?)))
            .collect();
        let of = |kind: &'static str| {
            metrics
                .iter()
                .filter(move |(name, _)| name.starts_with(kind))
                .map(|(_, body)| body.as_str())
        };
        let ing = match timeline.last() {
            Some(last) if frozen => vec![last.acked, last.stored],
            _ => probe::sums(of("yagi"), INGEST_METRICS),
        };
        let fired: u64 = probe::sums(of("pipeline"), PIPELINE_METRICS).iter().sum();
        let mut depth = Vec::new();
        for q in &queues {
            depth.push(
                stv3_amqp::consumer::queue_depth(&conn, q)
                    .await
                    .map(u64::from)
                    .unwrap_or(0),
            );
        }
        let mut procs = Vec::new();
        for (name, pid) in &pids {
            if let Some((mut p, peak)) = probe::proc_sample(name, *pid) {
                match hwm.iter_mut().find(|(n, _)| n == name) {
                    Some(h) => h.1 = h.1.max(peak),
                    None => hwm.push((name.clone(), peak)),
                }
                p.heap_kb = metrics
                    .iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, body)| probe::heap_kb(body));
                procs.push(p);
            }
        }
        let new_lat: Vec<f64> = {
            let l = state.latencies.lock().expect("latencies");
            let v = l[lat_seen..].iter().map(|x| x.1).collect();
            lat_seen = l.len();
            v
        };
        let published = state.published.load(Ordering::Relaxed);
        timeline.push(Sample {
            t,
            published,
            acked: ing[0],
            stored: ing[1],
            fired,
            queue_depth: depth.clone(),
            latency_p50_ms: (!new_lat.is_empty()).then(|| report::percentile(&new_lat, 0.5)),
            latency_p99_ms: (!new_lat.is_empty()).then(|| report::percentile(&new_lat, 0.99)),
            processes: procs,
        });
        if publish_s.is_none() && publishers.iter().all(|p| p.is_finished()) {
            publish_s = Some(t);
            published_at = Some(Instant::now());
            for p in publishers.drain(..) {
                p.await.context("publisher task")??;
            }
            if args.prefill {
                window_start = state.start.elapsed().as_secs_f64();
                freeze(Signal::Cont);
            }
        }
        if publish_s.is_some() && ingest_s.is_none() && ing[0] >= total {
            ingest_s = Some(t);
        }
        if ingest_s.is_some() && drained_s.is_none() {
            let c = probe::db_counts(&db).await?;
            if c.ready == 0 && depth.iter().all(|d| *d == 0) {
                drained_s = Some(t);
            }
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            last_print = Instant::now();
            eprintln!(
                "  t={t:>6.0}s published {published:>9} acked {:>9} fired {fired:>7} queues {depth:?}",
                ing[0]
            );
        }
        if drained_s.is_some() {
            break;
        }
        if interrupted.load(Ordering::SeqCst) {
            eprintln!("!! interrupted: stopping the region and reporting what was measured");
            for p in &publishers {
                p.abort();
            }
            break;
        }
        if let Some(at) = published_at {
            if at.elapsed() > deadline_after_publish {
                eprintln!(
                    "!! not drained {} s after the last publish; giving up",
                    args.drain_timeout
                );
                break;
            }
        }
    }
    if frozen {
        freeze(Signal::Cont);
    }
    // Samples published before the drain get a little longer to show up, then count as missing.
    let mut prober = prober;
    if tokio::time::timeout(Duration::from_secs(10), &mut prober)
        .await
        .is_err()
    {
        state.stop.store(true, Ordering::Relaxed);
        let _ = prober.await;
    }
    let counts = probe::db_counts(&db).await?;
    let db_bytes = probe::db_bytes(admin, &args.database).await.unwrap_or(0);
    let last = timeline.last().cloned().unwrap_or_default();
    let ing = probe::scrape(&yagi, INGEST_METRICS);
    let latencies: Vec<f64> = state
        .latencies
        .lock()
        .expect("latencies")
        .iter()
        .map(|x| x.1)
        .collect();
    let missing = state.missing.load(Ordering::Relaxed) as usize;
    let published = state.published.load(Ordering::Relaxed);
    let ingest_s = ingest_s.unwrap_or(last.t) - window_start;
    let drained_s = drained_s.unwrap_or(last.t) - window_start;
    let publish_s = publish_s.unwrap_or(last.t);
    let result = BenchResult {
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        cells: region.layout.cells.len(),
        workers: args.workers,
        target_rate: args.rate,
        prefill: args.prefill,
        window_start_s: window_start,
        soak_backlog_s: burst_done,
        published,
        acked: ing[0],
        stored: ing[1],
        archived: ing[2],
        duplicates: ing[3],
        quarantined: ing[4],
        events_in_db: counts.events,
        streams: counts.streams,
        streams_fired: last.fired,
        publish_s,
        ingest_s,
        drained_s,
        publish_rate: report::rate(published, publish_s),
        ingest_rate: report::rate(published, ingest_s),
        end_to_end_rate: report::rate(published, drained_s),
        peak_10s_rate: report::peak_rate(&timeline, 10.0, window_start),
        latency: report::latency(&latencies, missing),
        processes: report::process_summaries(&timeline, &hwm),
        db_bytes,
        db_bytes_per_million_events: if counts.events > 0 {
            (db_bytes as f64 * 1e6 / counts.events as f64) as u64
        } else {
            0
        },
        timeline,
        ..BenchResult::default()
    };
    Ok((result, missing == 0))
}

fn ops_of(region: &sandbox::Region, kind: &str) -> Vec<String> {
    region
        .ops
        .iter()
        .filter(|(name, _)| name.starts_with(kind))
        .map(|(_, addr)| addr.clone())
        .collect()
}

/// Every service answers `/health` 200 and every cell queue exists (yagi-event
/// declares it), so no published message is unroutable.
async fn wait_ready(
    region: &sandbox::Region,
    settings: &AmqpSettings,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let conn = stv3_amqp::connect(settings, "stv3-bench-wait").await?;
    loop {
        let mut waiting = Vec::new();
        for (name, addr) in &region.ops {
            if !matches!(
                crate::sandbox::status::http_get(addr, "/health"),
                Ok((200, _))
            ) {
                waiting.push(name.clone());
            }
        }
        for c in &region.layout.cells {
            if stv3_amqp::consumer::queue_depth(&conn, &c.queue)
                .await
                .is_err()
            {
                waiting.push(format!("queue {}", c.queue));
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "not ready after {} s: {} (see the region's logs/)",
                timeout.as_secs(),
                waiting.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
