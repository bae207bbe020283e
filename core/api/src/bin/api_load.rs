//! `api-load`: a small HTTP load generator for stv3-api.
//! `--concurrency` clients share one keep-alive pool and issue requests
//! from weighted scenarios (path templates) for `--duration` seconds; prints
//! requests/s and p50/p90/p99/max latency per scenario and overall.
//!
//! Closed loop by default (each client sends its next request as soon as the
//! last one returns: the server's saturation). With `--client-rate R` each
//! client sends R requests/s on a fixed schedule (random phase), and latency is
//! counted from the scheduled time, so a client that falls behind reports the
//! queueing too (no coordinated omission).
//!
//! Placeholders (matching `api-bulkload`'s data): `{instance}` = random
//! `inst-%08x` below `--instances`, `{tenant}` = `tenant-%04d` below 1000,
//! `{stream_id}` = random id below `--instances`, `{day}` = a random
//! 2015-03-01..03 hour as `2015-03-0DTHH:00:00`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rand::Rng;

#[derive(Debug, Parser)]
#[command(
    name = "api-load",
    version,
    about = "Closed-loop or paced load generator for stv3-api"
)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Seconds to run (after warm-up).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Seconds of warm-up (not measured).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Number of instances/streams in the data set.
    #[arg(long, default_value_t = 100_000)]
    instances: u64,
    /// Scenario `name=weight=/path?query` (repeatable); default: the built-in filtered list mix.
    #[arg(long = "scenario")]
    scenarios: Vec<String>,
    /// Bearer token.
    #[arg(long, env = "STV3_API_TOKEN")]
    token: Option<String>,
    /// Requests per second per client on a fixed schedule; 0 = closed loop.
    #[arg(long, default_value_t = 0.0)]
    client_rate: f64,
}

const DEFAULT: &[(&str, u32, &str)] = &[
    ("streams_newest", 1, "/v1/streams?limit=20"),
    ("streams_state_error", 1, "/v1/streams?state=error&limit=50"),
    (
        "streams_trigger_state",
        1,
        "/v1/streams?trigger_name=usage&state=active&limit=50",
    ),
    (
        "streams_by_dtrait",
        2,
        "/v1/streams?distinguishing_traits=instance_id:{instance}",
    ),
    (
        "streams_by_dtrait_range",
        1,
        "/v1/streams?distinguishing_traits=timestamp:{day}&trigger_name=usage&limit=50",
    ),
    ("stream_details", 1, "/v1/streams/{stream_id}?details=true"),
    (
        "events_by_instance",
        2,
        "/v1/events?traits=instance_id:{instance}",
    ),
    (
        "events_by_type",
        1,
        "/v1/events?event_name=compute.instance.exists&limit=50",
    ),
    (
        "events_tenant_int",
        1,
        "/v1/events?traits=tenant_id:{tenant};memory_mb:2048&limit=50",
    ),
    (
        "events_unselective_text",
        1,
        "/v1/events?traits=state:deleted&limit=50",
    ),
    (
        "events_time_window",
        1,
        "/v1/events?from_datetime={day}&to_datetime={day}:30:00&limit=100",
    ),
];

struct Scenario {
    name: String,
    weight: u32,
    template: String,
}

fn expand(t: &str, instances: u64, rng: &mut impl Rng) -> String {
    let mut s = t.to_string();
    if s.contains("{instance}") {
        s = s.replace(
            "{instance}",
            &format!("inst-{:08x}", rng.gen_range(0..instances)),
        );
    }
    if s.contains("{tenant}") {
        s = s.replace("{tenant}", &format!("tenant-{:04}", rng.gen_range(0..1000)));
    }
    if s.contains("{stream_id}") {
        s = s.replace("{stream_id}", &rng.gen_range(1..=instances).to_string());
    }
    if s.contains("{day}") {
        let d = rng.gen_range(1..=3);
        let h = rng.gen_range(0..24);
        // `{day}:30:00` forms a later bound in the same hour.
        s = s.replace("{day}:30:00", &format!("2015-03-{d:02}T{h:02}:30:00"));
        s = s.replace("{day}", &format!("2015-03-{d:02}T{h:02}:00:00"));
    }
    s
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let scenarios: Vec<Scenario> = if a.scenarios.is_empty() {
        DEFAULT
            .iter()
            .map(|(n, w, t)| Scenario {
                name: n.to_string(),
                weight: *w,
                template: t.to_string(),
            })
            .collect()
    } else {
        a.scenarios
            .iter()
            .map(|s| {
                let mut it = s.splitn(3, '=');
                let (n, w, t) = (it.next(), it.next(), it.next());
                match (n, w.and_then(|w| w.parse().ok()), t) {
                    (Some(n), Some(w), Some(t)) => Ok(Scenario {
                        name: n.into(),
                        weight: w,
                        template: t.into(),
                    }),
                    _ => anyhow::bail!("--scenario {s:?}: expected name=weight=/path"),
                }
            })
            .collect::<anyhow::Result<_>>()?
    };
    let scenarios = Arc::new(scenarios);
    let total_weight: u32 = scenarios.iter().map(|s| s.weight).sum();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency)
        .build()?;
    // Connectivity check.
    client
        .get(format!("{}/health", a.url))
        .send()
        .await
        .with_context(|| format!("cannot reach {}", a.url))?;

    let start = Instant::now();
    let measure_from = start + Duration::from_secs(a.warmup);
    let deadline = measure_from + Duration::from_secs(a.duration);
    let mut handles = Vec::new();
    for w in 0..a.concurrency {
        let client = client.clone();
        let scenarios = scenarios.clone();
        let base = a.url.clone();
        let token = a.token.clone();
        let instances = a.instances;
        let interval = (a.client_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / a.client_rate));
        handles.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64_compat(w as u64);
            let mut lat: Vec<Vec<u64>> = vec![Vec::new(); scenarios.len()];
            let mut errors = vec![0u64; scenarios.len()];
            // Paced: the next scheduled send (a random phase within the first interval).
            let mut next = start
                + interval
                    .map(|i| i.mul_f64(rng.gen::<f64>()))
                    .unwrap_or_default();
            loop {
                if let Some(i) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += i;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let mut pick = rng.gen_range(0..total_weight);
                let mut idx = 0;
                for (i, s) in scenarios.iter().enumerate() {
                    if pick < s.weight {
                        idx = i;
                        break;
                    }
                    pick -= s.weight;
                }
                let path = expand(&scenarios[idx].template, instances, &mut rng);
                // Paced: from the scheduled time (a late send counts its wait).
                let t = match interval {
                    Some(i) => next - i,
                    None => Instant::now(),
                };
                let mut req = client.get(format!("{base}{path}"));
                if let Some(tok) = &token {
                    req = req.bearer_auth(tok);
                }
                let ok = match req.send().await {
                    Ok(r) => {
                        let good = r.status().is_success();
                        let _ = r.bytes().await;
                        good
                    }
                    Err(_) => false,
                };
                let us = t.elapsed().as_micros() as u64;
                if t >= measure_from {
                    lat[idx].push(us);
                    if !ok {
                        errors[idx] += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(); scenarios.len()];
    let mut errors = vec![0u64; scenarios.len()];
    for h in handles {
        let (l, e) = h.await?;
        for i in 0..scenarios.len() {
            lat[i].extend(&l[i]);
            errors[i] += e[i];
        }
    }
    let secs = a.duration as f64;
    let mode = if a.client_rate > 0.0 {
        format!("paced {} req/s per client", a.client_rate)
    } else {
        "closed loop".to_string()
    };
    println!(
        "url={} concurrency={} duration={}s {mode}",
        a.url, a.concurrency, a.duration
    );
    println!(
        "{:<26} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "scenario", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
    );
    let mut all: Vec<u64> = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        let mut v = lat[i].clone();
        v.sort_unstable();
        println!(
            "{:<26} {:>8} {:>8.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6}",
            s.name,
            v.len(),
            v.len() as f64 / secs,
            pct(&v, 0.5),
            pct(&v, 0.9),
            pct(&v, 0.99),
            pct(&v, 1.0),
            errors[i]
        );
        all.extend(v);
    }
    all.sort_unstable();
    println!(
        "{:<26} {:>8} {:>8.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6}",
        "ALL",
        all.len(),
        all.len() as f64 / secs,
        pct(&all, 0.5),
        pct(&all, 0.9),
        pct(&all, 0.99),
        pct(&all, 1.0),
        errors.iter().sum::<u64>()
    );
    Ok(())
}

/// `StdRng::seed_from_u64` under a local name (keeps the import list short).
trait SeedCompat {
    fn seed_from_u64_compat(seed: u64) -> Self;
}

impl SeedCompat for rand::rngs::StdRng {
    fn seed_from_u64_compat(seed: u64) -> Self {
        <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed)
    }
}
