//! clap front end for `stv3ctl bench`, the plan it makes of the arguments,
//! and the summary table printed at the end.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{ArgAction, Args};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::report::BenchResult;
use super::Plan;

/// `stv3ctl bench`: a whole region on this machine (RabbitMQ + MariaDB) under load.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// RabbitMQ URL.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp: String,
    /// MariaDB/MySQL server URL, without a database.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    pub mysql: String,
    /// Scratch database on that server: dropped and created by the run.
    #[arg(long, default_value = "stv3bench")]
    pub database: String,
    /// Notifications to publish over all cells (ignored with --duration).
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Publish for this many seconds at --rate instead (a soak; needs --rate).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Total publish rate, notifications/s (0 = as fast as the broker confirms).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Fill the queues first with the yagi-events frozen (SIGSTOP), then thaw them and time
    /// the drain: the same setting as the raw-consume baseline and the original (no
    /// publisher competing for the CPU; no latency samples).
    #[arg(long, conflicts_with = "duration")]
    pub prefill: bool,
    /// Cells (one queue and one yagi-event each).
    #[arg(long, default_value_t = 2)]
    pub cells: usize,
    /// pipeline-worker processes.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Simulated instances per cell.
    #[arg(long, default_value_t = 200)]
    pub instances: usize,
    /// notigen seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Publish-to-visible latency samples per second of publishing.
    #[arg(long, default_value_t = 20.0)]
    pub samples_per_sec: f64,
    /// Seconds between timeline samples.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Give up this many seconds after the last publish if not drained.
    #[arg(long, default_value_t = 300)]
    pub drain_timeout: u64,
    /// Output directory: result.json, plot.png, region/ (configs, logs, archives).
    #[arg(long, default_value = "target/stv3-bench")]
    pub out: PathBuf,
    /// API address the region serves on.
    #[arg(long, default_value = "127.0.0.1:18800")]
    pub api: String,
    /// First port of the processes' /health + /metrics addresses.
    #[arg(long, default_value_t = 18810)]
    pub ops_port_base: u16,
    /// Measure the raw consume rate of the same broker first.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub raw_baseline: bool,
    /// Also run the original Python StackTach.v3 on this many notifications (0 = skip).
    #[arg(long, default_value_t = 0)]
    pub original: u64,
    /// Seconds the original gets at most.
    #[arg(long, default_value_t = 300)]
    pub original_timeout: u64,
    /// Python of the original's venv (built by ../shared/oracle/setup.sh).
    #[arg(long, default_value = "/tmp/stv3-oracle-venv/bin/python")]
    pub original_python: PathBuf,
    /// Soak: seconds of warm-up before RSS is taken as the baseline (default: a quarter of
    /// --duration; never before 15 s after the first stream fired, nor before 15 s after
    /// the warm-up backlog: at 5 s the yagi-events are frozen until twice a full batch has
    /// queued, then thawed, so the largest batches come before the baseline).
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Soak: the most any process's RSS may grow after warm-up, percent.
    #[arg(long, default_value_t = 10.0)]
    pub max_growth_pct: f64,
    /// Run debug binaries (default: release).
    #[arg(long)]
    pub debug: bool,
    /// Use already-built binaries.
    #[arg(long)]
    pub no_build: bool,
    /// Drop the scratch database(s) at the end (kept by default, for queries).
    #[arg(long)]
    pub drop_databases: bool,
    /// Print result.json on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    /// `--mysql` with `database` as its path.
    pub fn database_url(&self, database: &str) -> String {
        format!("{}/{database}", self.mysql.trim_end_matches('/'))
    }

    /// Turn the arguments into numbers, refusing combinations that cannot run.
    pub fn plan(&self) -> Result<Plan> {
        if self.cells == 0 || self.workers == 0 {
            bail!("--cells and --workers must be at least 1");
        }
        if self.rate < 0.0 || !self.rate.is_finite() {
            bail!("--rate must be a number >= 0");
        }
        let total = match self.duration {
            Some(_) if self.rate == 0.0 => {
                bail!("--duration needs --rate (a soak publishes at a fixed rate)")
            }
            Some(secs) => (self.rate * secs as f64).round() as u64,
            None => self.count,
        };
        if total < self.cells as u64 {
            bail!(
                "nothing to publish: {total} notification(s) over {} cell(s)",
                self.cells
            );
        }
        let per_cell = total / self.cells as u64;
        let rate_per_cell = (self.rate > 0.0).then(|| self.rate / self.cells as f64);
        // Samples: about samples_per_sec over the whole publish, at least one per cell.
        let expected_secs = match rate_per_cell {
            Some(r) => per_cell as f64 / r,
            None => per_cell as f64 / 5_000.0,
        }
        .max(1.0);
        let per_cell_samples = (self.samples_per_sec * expected_secs / self.cells as f64).max(1.0);
        // With --prefill nothing is visible until the thaw: no latency samples.
        let sample_every = if self.prefill {
            0
        } else {
            ((per_cell as f64 / per_cell_samples).floor() as u64).max(1)
        };
        // The simulated clock ends about now, so usage streams fire and old ones expire
        // during the run (as in the sandbox: ~20 notifications per operation over 48 h).
        let sim_start = chrono::Utc::now().naive_utc() - chrono::Duration::hours(48);
        let ops_per_hour = (per_cell as f64 / 20.0 / 48.0).max(1.0);
        Ok(Plan {
            per_cell,
            rate_per_cell,
            raw_per_cell: per_cell.min(50_000),
            sample_every,
            sim_start,
            ops_per_hour,
        })
    }
}

impl Plan {
    pub fn describe(&self, a: &BenchArgs) -> String {
        format!(
            "stv3 bench: {} notification(s) per cell x {} cell(s), {}, {} pipeline-worker(s), \
             {}; out {}",
            self.per_cell,
            a.cells,
            match self.rate_per_cell {
                Some(r) => format!("{:.0}/s per cell", r),
                None => "as fast as the broker confirms".into(),
            },
            a.workers,
            match self.sample_every {
                0 => "queues filled first, then drained (--prefill)".to_string(),
                n => format!("one latency sample every {n} message(s)"),
            },
            a.out.display()
        )
    }
}

/// The human summary of a run.
pub fn summary(r: &BenchResult) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec!["measure", "value"]);
    let mut row = |k: &str, v: String| {
        t.add_row(vec![k.to_string(), v]);
    };
    row(
        "published / acked / archived",
        format!("{} / {} / {}", r.published, r.acked, r.archived),
    );
    row(
        "events stored (metric / db), duplicates, quarantined",
        format!(
            "{} / {}, {}, {}",
            r.stored, r.events_in_db, r.duplicates, r.quarantined
        ),
    );
    row(
        "streams (fired or expired)",
        format!("{} ({})", r.streams, r.streams_fired),
    );
    row(
        "publish rate",
        format!("{:.0}/s over {:.1} s", r.publish_rate, r.publish_s),
    );
    row(
        "ingest rate (all acked)",
        format!("{:.0}/s over {:.1} s", r.ingest_rate, r.ingest_s),
    );
    row(
        "end to end (acked + ready streams fired)",
        format!("{:.0}/s over {:.1} s", r.end_to_end_rate, r.drained_s),
    );
    row("peak 10 s acked rate", format!("{:.0}/s", r.peak_10s_rate));
    row(
        "publish -> visible in API",
        format!(
            "p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} samples, {} missing)",
            r.latency.p50_ms,
            r.latency.p90_ms,
            r.latency.p99_ms,
            r.latency.max_ms,
            r.latency.samples,
            r.latency.missing
        ),
    );
    row(
        "database size",
        format!(
            "{:.1} MB ({:.0} MB per million events)",
            r.db_bytes as f64 / 1e6,
            r.db_bytes_per_million_events as f64 / 1e6
        ),
    );
    if let Some(d) = &r.db_server {
        row("database server", d.describe());
    }
    if let Some(raw) = r.raw_consume_rate {
        row(
            "raw broker consume (same run)",
            format!(
                "{raw:.0}/s; end to end is {:.0} %",
                r.pct_of_raw.unwrap_or(0.0)
            ),
        );
    }
    if let Some(o) = &r.original {
        row(
            "original StackTach.v3 (same run)",
            format!(
                "ingest {:.1}/s, end to end {:.1}/s ({} of {} consumed{}); stv3 is {:.0}x / {:.0}x",
                o.consume_rate,
                o.end_to_end_rate,
                o.consumed,
                o.notifications,
                if o.timed_out { ", timed out" } else { "" },
                r.speedup_ingest.unwrap_or(0.0),
                r.speedup_end_to_end.unwrap_or(0.0)
            ),
        );
    }
    for p in &r.processes {
        row(
            &format!("process {}", p.name),
            format!(
                "cpu {:.1} s ({:.0} % of a core), peak RSS {:.1} MB",
                p.cpu_s,
                p.cpu_pct,
                p.peak_rss_kb as f64 / 1024.0
            ),
        );
    }
    if let Some(s) = &r.soak {
        for p in &s.processes {
            row(
                &format!("soak RSS {}", p.name),
                format!(
                    "{:.1} MB in the first {:.0} s after {:.0} s warm-up, {:.1} MB in the last ({:+.1} %){}",
                    p.rss_first_window_kb as f64 / 1024.0,
                    s.window_s,
                    s.warmup_s,
                    p.rss_last_window_kb as f64 / 1024.0,
                    p.growth_pct,
                    match (p.heap_first_window_kb, p.heap_last_window_kb) {
                        (Some(a), Some(b)) => format!(
                            "; heap in use {:.1} -> {:.1} MB",
                            a as f64 / 1024.0,
                            b as f64 / 1024.0
                        ),
                        _ => String::new(),
                    }
                ),
            );
        }
        row(
            "soak verdict",
            format!(
                "{} (limit {:.0} % growth from the first to the last window after warm-up)",
                if s.pass { "PASS" } else { "FAIL" },
                s.max_growth_pct
            ),
        );
    }
    format!("{t}\n")
}
