//! The bench result: plain data (serialised to `result.json`) and the pure
//! summaries computed from it (percentiles, rates, the soak memory verdict).

use serde::{Deserialize, Serialize};

/// One process at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {
    pub name: String,
    /// user + system CPU seconds since the process started.
    pub cpu_s: f64,
    pub rss_kb: u64,
    /// What malloc had handed out and not had back (the process's
    /// `stv3_process_heap_in_use_bytes`), for processes with a `/metrics`.
    /// RSS climbing while this stays flat is fragmentation, not live data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_kb: Option<u64>,
}

/// One timeline point (taken every `--interval`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the first publish.
    pub t: f64,
    /// Notifications handed to the broker so far (all cells).
    pub published: u64,
    /// Notifications acknowledged by the yagi-event processes (durably stored and archived).
    pub acked: u64,
    /// Events stored by the yagi-event processes.
    pub stored: u64,
    /// Streams fired or expired by the pipeline workers.
    pub fired: u64,
    /// Messages ready in each cell's queue.
    pub queue_depth: Vec<u64>,
    /// Publish-to-visible latencies (ms) of the samples that became visible in this interval.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub processes: Vec<ProcSample>,
}

/// Latency percentiles over a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub samples: usize,
    /// Samples never seen in the API before the end of the run.
    pub missing: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Whole-run figures of one process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcSummary {
    pub name: String,
    pub cpu_s: f64,
    /// Mean CPU over the measured window, percent of one core.
    pub cpu_pct: f64,
    pub peak_rss_kb: u64,
}

/// Memory flatness of a long run: each process's memory level in the first
/// window after warm-up against its level in the last window of the run
/// ([`soak`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Soak {
    pub warmup_s: f64,
    /// Length of the two compared windows.
    pub window_s: f64,
    pub max_growth_pct: f64,
    pub processes: Vec<SoakProc>,
    pub pass: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SoakProc {
    pub name: String,
    /// Highest RSS in the first window after warm-up.
    pub rss_first_window_kb: u64,
    /// Highest RSS in the last window of the run.
    pub rss_last_window_kb: u64,
    pub growth_pct: f64,
    /// The same for the live heap (malloc in use), when the process reports it:
    /// RSS growth with a flat heap is fragmentation, heap growth is live data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_first_window_kb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_last_window_kb: Option<u64>,
}

/// What the original Python StackTach.v3 did on its share of the workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Original {
    pub notifications: u64,
    pub consumed: u64,
    /// consumed / (last ack - first ack): comparable to stv3's `ingest_rate`.
    pub consume_rate: f64,
    /// consumed / (start until acked and no stream left ready): comparable to stv3's
    /// `end_to_end_rate`.
    pub end_to_end_rate: f64,
    pub timed_out: bool,
    /// The driver's own result document, as it wrote it.
    pub raw: serde_json::Value,
}

/// `result.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    pub version: String,
    pub started_at: String,
    pub command: String,
    pub cells: usize,
    pub workers: usize,
    /// Requested total publish rate (0 = as fast as the broker confirms).
    pub target_rate: f64,
    /// Queues filled with the consumers frozen, then drained (`--prefill`).
    pub prefill: bool,
    /// Seconds since the first publish when the measured window starts (the thaw, with
    /// `--prefill`; 0 otherwise). ingest_s and drained_s count from here.
    pub window_start_s: f64,
    /// Soak: (from, to) seconds the consumers were frozen during warm-up to build one
    /// backlog, so the largest batches happen before the RSS baseline.
    pub soak_backlog_s: Option<(f64, f64)>,
    pub published: u64,
    pub acked: u64,
    pub archived: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    pub events_in_db: u64,
    pub streams: u64,
    pub streams_fired: u64,
    /// Seconds from the first publish to the last publish confirm.
    pub publish_s: f64,
    /// Seconds from the window start until every notification was acked.
    pub ingest_s: f64,
    /// Seconds from the window start until every notification was acked and no stream was
    /// left ready to fire or expire.
    pub drained_s: f64,
    pub publish_rate: f64,
    /// published / ingest_s.
    pub ingest_rate: f64,
    /// published / drained_s: notifications in, events stored, ready streams fired.
    pub end_to_end_rate: f64,
    /// Highest acked/s over any 10 s window.
    pub peak_10s_rate: f64,
    pub latency: Latency,
    pub processes: Vec<ProcSummary>,
    pub db_bytes: u64,
    pub db_bytes_per_million_events: u64,
    /// Raw consume rate of the same broker and messages, one plain consumer per cell queue.
    pub raw_consume_rate: Option<f64>,
    pub pct_of_raw: Option<f64>,
    pub original: Option<Original>,
    /// stv3 ingest_rate / the original's consume_rate.
    pub speedup_ingest: Option<f64>,
    /// stv3 end_to_end_rate / the original's end_to_end_rate.
    pub speedup_end_to_end: Option<f64>,
    pub soak: Option<Soak>,
    /// The database server's version and the two InnoDB settings that bound its rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_server: Option<DbServer>,
    pub timeline: Vec<Sample>,
}

/// The database server a run measured against ([`crate::bench::probe::db_server`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DbServer {
    pub version: String,
    pub buffer_pool_bytes: u64,
    pub redo_log_bytes: u64,
}

/// Below this InnoDB buffer pool the database, not stv3, sets a bench's rate.
pub const SMALL_BUFFER_POOL_BYTES: u64 = 1 << 30;

impl DbServer {
    /// One line for people: the server and its settings, with a warning and the
    /// settings BENCHMARKS.md uses when the buffer pool is small.
    pub fn describe(&self) -> String {
        let mib = |b: u64| b / (1 << 20);
        let mut line = format!(
            "{}: InnoDB buffer pool {} MiB, redo log {} MiB",
            self.version,
            mib(self.buffer_pool_bytes),
            mib(self.redo_log_bytes)
        );
        if self.buffer_pool_bytes < SMALL_BUFFER_POOL_BYTES {
            line.push_str(
                " (small: the database will set the rate; BENCHMARKS.md runs with \
                 SET GLOBAL innodb_buffer_pool_size=8589934592; SET GLOBAL innodb_log_file_size=1073741824)",
            );
        }
        line
    }
}

/// The `q`-quantile (0..=1) of `values` (nearest rank); 0 for no values.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = (q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize;
    v[rank.saturating_sub(1).min(v.len() - 1)]
}

/// Percentiles of a run's latencies (ms).
pub fn latency(values: &[f64], missing: usize) -> Latency {
    Latency {
        samples: values.len(),
        missing,
        p50_ms: percentile(values, 0.50),
        p90_ms: percentile(values, 0.90),
        p99_ms: percentile(values, 0.99),
        max_ms: percentile(values, 1.0),
    }
}

/// `n / secs`, 0 when no time passed.
pub fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// Highest increase of `acked` per second over any window of `window_s` seconds
/// that starts at or after `from_s` (the measured window: in a prefill run the
/// consumers are frozen before it, and a window across the freeze understates the
/// peak). When less than `window_s` was measured, the whole measured span counts.
pub fn peak_rate(timeline: &[Sample], window_s: f64, from_s: f64) -> f64 {
    // The last sample at or before `from_s` is where the measured window begins.
    let first = timeline.iter().rposition(|s| s.t <= from_s).unwrap_or(0);
    let measured = &timeline[first..];
    let per_s = |a: &Sample, b: &Sample| (b.acked - a.acked.min(b.acked)) as f64 / (b.t - a.t);
    let mut best = 0.0f64;
    for (i, a) in measured.iter().enumerate() {
        if let Some(b) = measured[i..].iter().find(|b| b.t - a.t >= window_s) {
            best = best.max(per_s(a, b));
        }
    }
    match (measured.first(), measured.last()) {
        (Some(a), Some(b)) if best == 0.0 && b.t > a.t => per_s(a, b),
        _ => best,
    }
}

/// Per-process CPU and peak RSS from the first and last samples (and the highest RSS seen).
pub fn process_summaries(timeline: &[Sample], peak_rss: &[(String, u64)]) -> Vec<ProcSummary> {
    let (Some(first), Some(last)) = (timeline.first(), timeline.last()) else {
        return Vec::new();
    };
    let span = (last.t - first.t).max(1e-9);
    last.processes
        .iter()
        .map(|p| {
            let start = first
                .processes
                .iter()
                .find(|q| q.name == p.name)
                .map(|q| q.cpu_s)
                .unwrap_or(0.0);
            let seen = timeline
                .iter()
                .flat_map(|s| s.processes.iter().filter(|q| q.name == p.name))
                .map(|q| q.rss_kb)
                .max()
                .unwrap_or(0);
            let hwm = peak_rss
                .iter()
                .find(|(n, _)| *n == p.name)
                .map(|(_, k)| *k)
                .unwrap_or(0);
            ProcSummary {
                name: p.name.clone(),
                cpu_s: p.cpu_s - start,
                cpu_pct: 100.0 * (p.cpu_s - start) / span,
                peak_rss_kb: seen.max(hwm),
            }
        })
        .collect()
}

/// Longest window [`soak`] compares: five minutes.
pub const SOAK_WINDOW_MAX_S: f64 = 300.0;

/// The soak verdict. After `warmup_s`, the run is cut into a first and a last
/// window, each a quarter of what is left, at most [`SOAK_WINDOW_MAX_S`]. For
/// each process named in `judged`, its level in a window is its highest RSS
/// there; the process passes when the last window's level is at most
/// `max_growth_pct` above the first one's. Levels, not single samples: a
/// process whose RSS saws between two bounds with every batch (a pipeline
/// worker at 24-35 MB) is flat, and a single sample taken in a trough would
/// call its next peak growth. A steady climb still shows as the whole
/// difference between the two windows. Fails when either window has no
/// sample. (The broker and database servers are sampled but not judged:
/// their caches are meant to fill.)
pub fn soak(timeline: &[Sample], warmup_s: f64, max_growth_pct: f64, judged: &[String]) -> Soak {
    let end = timeline.last().map(|s| s.t).unwrap_or(0.0);
    let window_s = ((end - warmup_s) / 4.0).clamp(0.0, SOAK_WINDOW_MAX_S);
    let first: Vec<&Sample> = timeline
        .iter()
        .filter(|s| s.t >= warmup_s && s.t <= warmup_s + window_s)
        .collect();
    let last: Vec<&Sample> = timeline
        .iter()
        .filter(|s| s.t >= warmup_s && s.t >= end - window_s)
        .collect();
    let level = |window: &[&Sample], name: &str, of: fn(&ProcSample) -> Option<u64>| {
        window
            .iter()
            .flat_map(|s| s.processes.iter().filter(|p| p.name == name))
            .filter_map(of)
            .max()
    };
    let mut processes = Vec::new();
    if !first.is_empty() && !last.is_empty() {
        for name in judged {
            let (Some(a), Some(b)) = (
                level(&first, name, |p| Some(p.rss_kb)),
                level(&last, name, |p| Some(p.rss_kb)),
            ) else {
                continue;
            };
            let growth_pct = if a > 0 {
                100.0 * (b as f64 - a as f64) / a as f64
            } else {
                0.0
            };
            processes.push(SoakProc {
                name: name.clone(),
                rss_first_window_kb: a,
                rss_last_window_kb: b,
                growth_pct,
                heap_first_window_kb: level(&first, name, |p| p.heap_kb),
                heap_last_window_kb: level(&last, name, |p| p.heap_kb),
            });
        }
    }
    let pass = !processes.is_empty() && processes.iter().all(|p| p.growth_pct <= max_growth_pct);
    Soak {
        warmup_s,
        window_s,
        max_growth_pct,
        processes,
        pass,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_percentile(values: &[f64], q: f64, want: f64) {
        assert_eq!(percentile(values, q), want, "{values:?} q={q}");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        check_percentile(&[], 0.5, 0.0);
        check_percentile(&[7.0], 0.99, 7.0);
        check_percentile(&hundred, 0.5, 50.0);
        check_percentile(&hundred, 0.99, 99.0);
        check_percentile(&hundred, 1.0, 100.0);
        check_percentile(&[3.0, 1.0, 2.0], 0.0, 1.0);
    }

    fn at(t: f64, acked: u64, rss: &[(&str, u64)]) -> Sample {
        Sample {
            t,
            acked,
            processes: rss
                .iter()
                .map(|(n, k)| ProcSample {
                    name: n.to_string(),
                    cpu_s: t / 2.0,
                    rss_kb: *k,
                    heap_kb: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn peak_rate_takes_the_best_window() {
        let tl = [
            at(0.0, 0, &[]),
            at(5.0, 100, &[]),
            at(10.0, 1100, &[]),
            at(15.0, 2100, &[]),
            at(20.0, 2200, &[]),
        ];
        check_peak(&tl, 0.0, 200.0);
        check_peak(&tl[..1], 0.0, 0.0);
        // Prefill: frozen until t = 10; from there only 10 s measured (1,100 acked).
        check_peak(&tl, 10.0, 110.0);
        // Less than a window measured: the whole measured span (100 acked in 5 s).
        check_peak(&tl, 15.0, 20.0);
        // The freeze itself never counts: acked 0 -> 100 before t = 5 is not a window here.
        check_peak(&tl, 5.0, 200.0);
    }

    fn check_peak(tl: &[Sample], from_s: f64, expected: f64) {
        assert_eq!(peak_rate(tl, 10.0, from_s), expected, "from {from_s}");
    }

    fn check_soak(rss: &[u64], warmup: f64, pass: bool, growth: f64) {
        let tl: Vec<Sample> = rss
            .iter()
            .enumerate()
            .map(|(i, k)| at(i as f64 * 10.0, 0, &[("yagi-event-cell1", *k)]))
            .collect();
        let s = soak(&tl, warmup, 10.0, &["yagi-event-cell1".to_string()]);
        assert_eq!(s.pass, pass, "{rss:?}: {s:?}");
        assert!((s.processes[0].growth_pct - growth).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn soak_compares_the_first_and_last_windows_after_warm_up() {
        // Samples every 10 s. Growth during warm-up does not count; a climb after it does.
        check_soak(
            &[10, 50, 100, 100, 100, 100, 104, 108, 112, 116, 120],
            20.0,
            false,
            20.0,
        );
        // 10 % is the limit.
        check_soak(&[100, 100, 100, 100, 110], 0.0, true, 10.0);
        check_soak(&[100, 100, 100, 100, 111], 0.0, false, 11.0);
        // A shrink is fine.
        check_soak(&[100, 100, 90, 80], 0.0, true, -20.0);
        // A sawtooth is flat, even when warm-up ends in a trough (70 -> 100 is no growth).
        check_soak(
            &[10, 100, 70, 100, 70, 100, 70, 100, 70, 100, 70],
            20.0,
            true,
            0.0,
        );
        // Windows are at most five minutes: a spike mid-run that goes away is not growth,
        // and the level at the end is what counts.
        let mut long = vec![100u64; 301];
        long[150] = 200;
        check_soak(&long, 0.0, true, 0.0);
        long[280] = 115;
        check_soak(&long, 0.0, false, 15.0);
    }

    #[test]
    fn a_small_buffer_pool_is_named_with_the_settings_to_use() {
        let server = |pool: u64| DbServer {
            version: "10.11.19-MariaDB".into(),
            buffer_pool_bytes: pool,
            redo_log_bytes: 96 << 20,
        };
        let small = server(128 << 20).describe();
        assert!(
            small.starts_with(
                "10.11.19-MariaDB: InnoDB buffer pool 128 MiB, redo log 96 MiB (small"
            ),
            "{small}"
        );
        assert!(
            small.contains("SET GLOBAL innodb_buffer_pool_size=8589934592"),
            "{small}"
        );
        assert_eq!(
            server(8 << 30).describe(),
            "10.11.19-MariaDB: InnoDB buffer pool 8192 MiB, redo log 96 MiB"
        );
    }

    #[test]
    fn soak_reports_the_live_heap_of_the_same_windows() {
        let tl: Vec<Sample> = [(100, 40), (120, 40), (130, 41), (140, 41)]
            .iter()
            .enumerate()
            .map(|(i, (rss, heap))| {
                let mut s = at(i as f64 * 10.0, 0, &[("api", *rss)]);
                s.processes[0].heap_kb = Some(*heap);
                s
            })
            .collect();
        let s = soak(&tl, 0.0, 50.0, &["api".to_string()]);
        let p = &s.processes[0];
        assert_eq!(
            (p.rss_first_window_kb, p.rss_last_window_kb),
            (100, 140),
            "{s:?}"
        );
        assert_eq!(
            (p.heap_first_window_kb, p.heap_last_window_kb),
            (Some(40), Some(41)),
            "{s:?}"
        );
    }

    #[test]
    fn soak_without_samples_after_warm_up_fails() {
        let tl = [at(0.0, 0, &[("api", 10)])];
        assert!(!soak(&tl, 60.0, 10.0, &["api".to_string()]).pass);
        // Processes not judged (the servers) do not count.
        let tl = [
            at(0.0, 0, &[("mariadb", 10)]),
            at(10.0, 0, &[("mariadb", 99)]),
        ];
        assert!(
            !soak(&tl, 0.0, 10.0, &["api".to_string()]).pass,
            "nothing judged"
        );
    }

    #[test]
    fn process_summary_uses_the_cpu_delta_and_the_highest_rss() {
        let tl = [
            at(0.0, 0, &[("api", 100)]),
            at(10.0, 0, &[("api", 300)]),
            at(20.0, 0, &[("api", 200)]),
        ];
        let s = process_summaries(&tl, &[("api".into(), 250)]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].cpu_s, 10.0);
        assert_eq!(s[0].cpu_pct, 50.0);
        assert_eq!(s[0].peak_rss_kb, 300);
    }
}
