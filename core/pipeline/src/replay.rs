//! `winchester replay`: run notifications through triggers and pipelines on a
//! scratch database, with the clock driven by the notifications themselves,
//! and print the resulting streams and the events the pipelines emitted.
//!
//! 1. Ingest every JSON-lines notification in file order; the clock is each
//!    notification's own `timestamp` (the original's yagi + TimeSync replay).
//! 2. Move the clock to the newest timestamp + `advance`.
//! 3. Run fire passes then expire passes (sequentially, no shuffle) until a
//!    round finds nothing ready (at most `max_rounds`).
//! 4. Output `{"streams":[…],"emitted":[…]}` (keys sorted; canonical datetimes):
//!    streams in creation order as `{name, state, distinguishing_traits,
//!    first_event, last_event, event_count, events:[message_id…]}`; emitted =
//!    every new event a pipeline returned, as flat JSON, in processing order.
//!
//! Files ending in `.gz` are read through gzip. NotabeneHandler runs with a dry-run publisher (nothing leaves the process).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use stv3_event::{format_timestamp, parse_timestamp, Event, Timestamp};
use stv3_winchester::store::{AnyStore, ReadyKind};
use stv3_winchester::{Store, StreamQuery, TriggerManager, WinchesterConfig};

use crate::handler::Registry;
use crate::handlers::HandlerContext;
use crate::manager::{ManagerSettings, PipelineManager};
use crate::setup;

/// Replay settings.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// How far past the newest notification the clock moves before the pipeline phase.
    pub advance: chrono::Duration,
    /// Keep completed streams (state `completed`) instead of purging them.
    pub keep_completed: bool,
    /// Scratch database (default: in-memory SQLite). Migrated before use.
    pub db_url: String,
    pub max_rounds: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            advance: chrono::Duration::days(2),
            keep_completed: false,
            db_url: "sqlite::memory:".into(),
            max_rounds: 100,
        }
    }
}

/// Replay failures (each names the file and line, or the component).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Config(String),
    #[error("{file}:{line}: {message}")]
    Input {
        file: String,
        line: usize,
        message: String,
    },
    #[error("database: {0}")]
    Store(#[from] stv3_winchester::StoreError),
}

/// Parse `2d`, `36h`, `90m`, `3600s` or plain seconds.
pub fn parse_advance(s: &str) -> Result<chrono::Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (e.g. 2d, 36h, 90m, 3600s)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(format!("invalid duration unit in {s:?} (use s, m, h or d)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(chrono::Duration::microseconds((secs * 1e6) as i64))
}

fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> =
                m.into_iter().map(|(k, v)| (k, sort_keys(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect::<Map<String, Value>>())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// Run a replay and return the output document.
pub async fn replay(
    cfg: &WinchesterConfig,
    files: &[PathBuf],
    opts: &ReplayOptions,
) -> Result<Value, ReplayError> {
    let registry = Registry::builtin();
    let ctx = HandlerContext::offline();
    let pipelines = setup::load_pipelines(cfg, &registry, &ctx)
        .map_err(|e| ReplayError::Config(e.to_string()))?;
    let triggers = cfg
        .load_triggers()
        .map_err(|e| ReplayError::Config(e.to_string()))?;
    for w in setup::missing_pipelines(&triggers, &pipelines) {
        tracing::warn!("{w}");
    }
    let store = AnyStore::connect(&opts.db_url).await?;
    store.migrate().await?;
    let mut tm = TriggerManager::new(store, triggers);
    if let Some(p) = &cfg.distiller_config {
        let d = stv3_distiller::Distiller::from_file(p, cfg.catch_all_notifications)
            .map_err(|e| ReplayError::Config(format!("{}: {e}", p.display())))?;
        tm = tm.with_converter(Box::new(d));
    } else {
        return Err(ReplayError::Config(format!(
            "{}: distiller_config is required for replay",
            cfg.file.display()
        )));
    }
    let tm = Arc::new(tm);

    let mut clock: Option<Timestamp> = None;
    let mut newest: Option<Timestamp> = None;
    for file in files {
        ingest_file(&tm, file, &mut clock, &mut newest).await?;
    }
    let now = newest
        .map(|t| t + opts.advance)
        .unwrap_or_else(stv3_event::now);

    let settings = ManagerSettings {
        batch_size: 1000,
        purge_completed_streams: !opts.keep_completed,
        concurrency: 1,
        shuffle: false,
        ..ManagerSettings::default()
    };
    let pm = PipelineManager::new(tm.clone(), pipelines, ctx, settings);
    let never = || false;
    let mut emitted: Vec<Event> = Vec::new();
    for _ in 0..opts.max_rounds {
        let fire = pm
            .process_ready_streams(ReadyKind::Fire, now, &never)
            .await?;
        let expire = pm
            .process_ready_streams(ReadyKind::Expire, now, &never)
            .await?;
        let idle = fire.loaded == 0 && expire.loaded == 0;
        emitted.extend(fire.emitted);
        emitted.extend(expire.emitted);
        if idle {
            break;
        }
    }
    pm.log_statistics();

    let store = tm.store();
    let q = StreamQuery {
        mark: Some("+".into()),
        ..Default::default()
    };
    let mut streams = Vec::new();
    for marked in store.find_streams(&q).await? {
        let s = marked.item;
        let events: Vec<Value> = store
            .get_stream_events(s.id)
            .await?
            .into_iter()
            .map(|e| Value::String(e.event.message_id))
            .collect();
        let dist: Map<String, Value> = s
            .distinguishing_traits
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        streams.push(serde_json::json!({
            "name": s.name,
            "state": s.state.name(),
            "distinguishing_traits": dist,
            "first_event": format_timestamp(&s.first_event),
            "last_event": format_timestamp(&s.last_event),
            "event_count": events.len(),
            "events": events,
        }));
    }
    let emitted: Vec<Value> = emitted.iter().map(|e| e.to_flat_json()).collect();
    Ok(sort_keys(
        serde_json::json!({"streams": streams, "emitted": emitted}),
    ))
}

async fn ingest_file<S: Store>(
    tm: &TriggerManager<S>,
    file: &Path,
    clock: &mut Option<Timestamp>,
    newest: &mut Option<Timestamp>,
) -> Result<(), ReplayError> {
    let input_err = |line: usize, message: String| ReplayError::Input {
        file: file.display().to_string(),
        line,
        message,
    };
    let f = std::fs::File::open(file).map_err(|e| input_err(0, e.to_string()))?;
    let reader: Box<dyn BufRead> = if file.extension().is_some_and(|e| e == "gz") {
        Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
            f,
        )))
    } else {
        Box::new(std::io::BufReader::new(f))
    };
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| input_err(i + 1, e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let n: Value = serde_json::from_str(&line)
            .map_err(|e| input_err(i + 1, format!("invalid JSON: {e}")))?;
        if let Some(ts) = n.get("timestamp").and_then(|v| v.as_str()) {
            let t = parse_timestamp(ts).map_err(|e| input_err(i + 1, e.to_string()))?;
            *clock = Some(t);
            if newest.is_none_or(|m| t > m) {
                *newest = Some(t);
            }
        }
        let now = clock.unwrap_or_else(stv3_event::now);
        tm.add_notification(&n, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_parsing() {
        let check = |s: &str, secs: Option<i64>| {
            assert_eq!(parse_advance(s).ok().map(|d| d.num_seconds()), secs, "{s}")
        };
        check("2d", Some(172800));
        check("36h", Some(129600));
        check("90m", Some(5400));
        check("3600s", Some(3600));
        check("10", Some(10));
        check("1.5h", Some(5400));
        check("2w", None);
        check("-1d", None);
        check("x", None);
    }
}
