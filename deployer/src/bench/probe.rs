//! What the bench reads while the region runs: `/proc` (CPU, RSS), the
//! processes' Prometheus `/metrics`, the broker's queue depths and the
//! database (counts, ready streams, size). Each reader is one small function.

use std::path::Path;

use anyhow::{Context, Result};
use sqlx::Row;

use super::report::ProcSample;
use crate::sandbox::status::{http_get, metric_sum};

/// CPU seconds (user + system) and current/peak RSS of a live process, from `/proc`.
pub fn proc_sample(name: &str, pid: u32) -> Option<(ProcSample, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let (cpu_s, rss_kb, hwm_kb) = parse_proc(&stat, &status, clock_ticks())?;
    Some((
        ProcSample {
            name: name.to_string(),
            cpu_s,
            rss_kb,
            heap_kb: None,
        },
        hwm_kb,
    ))
}

/// (cpu seconds, VmRSS kB, VmHWM kB) from the text of `/proc/PID/stat` and `/proc/PID/status`.
pub fn parse_proc(stat: &str, status: &str, ticks: f64) -> Option<(f64, u64, u64)> {
    // The command name (field 2) may hold spaces: fields after the last ')' are fixed.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((
        (utime + stime) / ticks,
        kb("VmRSS:")?,
        kb("VmHWM:").unwrap_or(0),
    ))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Pids of processes whose command name (`/proc/PID/comm`) is `comm`: the broker and
/// database servers, which share the machine and belong in the CPU picture.
pub fn pids_named(comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim() == comm)
                .unwrap_or(false)
        })
        .collect()
}

/// Sum of counters over the `/metrics` of `addrs`.
pub fn scrape(addrs: &[String], names: &[&str]) -> Vec<u64> {
    let bodies: Vec<String> = addrs.iter().filter_map(|a| metrics_text(a)).collect();
    sums(bodies.iter().map(String::as_str), names)
}

/// The `/metrics` text of the process at `addr`; None when it does not answer.
pub fn metrics_text(addr: &str) -> Option<String> {
    http_get(addr, "/metrics").ok().map(|(_, body)| body)
}

/// Each counter of `names` summed over the `/metrics` texts `bodies`.
pub fn sums<'a>(bodies: impl Iterator<Item = &'a str> + Clone, names: &[&str]) -> Vec<u64> {
    names
        .iter()
        .map(|n| bodies.clone().map(|b| metric_sum(b, n)).sum())
        .collect()
}

/// The live heap in a process's `/metrics` text, in kB
/// ([`stv3_telemetry::HEAP_IN_USE_METRIC`]); None when it does not report one.
pub fn heap_kb(body: &str) -> Option<u64> {
    let name = stv3_telemetry::HEAP_IN_USE_METRIC;
    body.lines()
        .any(|l| l.starts_with(name))
        .then(|| metric_sum(body, name) / 1024)
}

/// Database counts for the result.
pub struct DbCounts {
    pub events: u64,
    pub streams: u64,
    /// Streams in a final state (fired or expired, completed or error).
    pub streams_done: u64,
    /// Streams a worker should process now (ready to fire or expire, being processed, or retrying).
    pub ready: u64,
}

pub async fn db_counts(pool: &sqlx::MySqlPool) -> Result<DbCounts> {
    let now_us = chrono::Utc::now().timestamp_micros();
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM event), (SELECT COUNT(*) FROM stream), \
         (SELECT COUNT(*) FROM stream WHERE state IN (4, 5, 6)), \
         (SELECT COUNT(*) FROM stream WHERE state IN (2, 3, 7, 8) \
            OR (state = 1 AND (fire_timestamp <= ? OR expire_timestamp <= ?)))",
    )
    .bind(now_us)
    .bind(now_us)
    .fetch_one(pool)
    .await
    .context("count events and streams")?;
    let get = |i: usize| row.try_get::<i64, _>(i).map(|v| v.max(0) as u64);
    Ok(DbCounts {
        events: get(0)?,
        streams: get(1)?,
        streams_done: get(2)?,
        ready: get(3)?,
    })
}

/// The server's version and InnoDB buffer pool and redo log sizes.
pub async fn db_server(pool: &sqlx::MySqlPool) -> Result<super::report::DbServer> {
    let row = sqlx::query(
        "SELECT CAST(VERSION() AS CHAR), CAST(@@innodb_buffer_pool_size AS UNSIGNED), \
         CAST(@@innodb_log_file_size AS UNSIGNED)",
    )
    .fetch_one(pool)
    .await
    .context("read the server's version and InnoDB settings")?;
    Ok(super::report::DbServer {
        version: row.try_get(0)?,
        buffer_pool_bytes: row.try_get(1)?,
        redo_log_bytes: row.try_get(2)?,
    })
}

/// Data + index bytes of every table of `database` (after ANALYZE, so InnoDB's numbers are fresh).
pub async fn db_bytes(pool: &sqlx::MySqlPool, database: &str) -> Result<u64> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
    )
    .bind(database)
    .fetch_all(pool)
    .await?;
    for t in &tables {
        sqlx::query(&format!("ANALYZE TABLE `{database}`.`{t}`"))
            .execute(pool)
            .await?;
    }
    let bytes: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(data_length + index_length) AS SIGNED) FROM information_schema.tables \
         WHERE table_schema = ?",
    )
    .bind(database)
    .fetch_one(pool)
    .await?;
    Ok(bytes.unwrap_or(0).max(0) as u64)
}

/// Lines of `path` (a JSON-lines archive file or quarantine) — 0 when missing.
pub fn count_lines(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|b| b.iter().filter(|c| **c == b'\n').count() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_text_parses_with_spaces_in_the_name() {
        let stat = "1234 (yagi event) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 4 0 100 1000 200";
        let status = "Name:\tyagi\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\n";
        assert_eq!(parse_proc(stat, status, 100.0), Some((3.0, 10240, 20480)));
        assert_eq!(parse_proc("garbage", status, 100.0), None);
        assert_eq!(parse_proc(stat, "Name: x\n", 100.0), None);
    }

    #[test]
    fn this_process_is_readable() {
        let (s, hwm) = proc_sample("me", std::process::id()).expect("own /proc entry");
        assert!(s.rss_kb > 0 && hwm >= s.rss_kb, "{s:?} {hwm}");
    }
}
