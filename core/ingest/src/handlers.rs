//! The real handlers behind the chain's traits:
//! * [`ShoeboxArchive`]: `yagi.handler.shoebox_handler.ShoeboxHandler` on
//!   `stv3_archive::ArchiveWriter` (one writer per consumer, `writer_id` = the consumer
//!   name, so consumers may share a working directory). Blocking file I/O runs on the
//!   blocking pool. The dedupe seed is read from the archives the writer recovered at
//!   start-up plus the newest finished archives in the destination folder.
//! * [`WinchesterSink`]: `winchester.yagi_handler.WinchesterHandler` on
//!   `stv3_winchester::TriggerManager` (distill + one transaction per batch), shared by
//!   the consumers that name the same winchester.yaml.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use stv3_archive::{ArchiveConfig, ArchiveWriter, JsonlReader, RegionWrap};
use stv3_event::Event;
use stv3_winchester::{TriggerManager, WinchesterConfig};

use crate::chain::{BoxFut, EventSink, RawArchive, StoreOutcome};
use crate::config::ShoeboxConfig;

/// How many of the newest finished archives in the destination folder seed the dedupe set.
const SEED_FILES: usize = 3;

pub struct ShoeboxArchive {
    writer: Arc<Mutex<ArchiveWriter>>,
    seed: Vec<PathBuf>,
}

/// A writer id made of `[A-Za-z0-9_.-]` without `--`.
pub fn writer_id(consumer: &str) -> String {
    let mut id: String = consumer
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    while id.contains("--") {
        id = id.replace("--", "-");
    }
    if id.is_empty() {
        "shoebox".into()
    } else {
        id
    }
}

impl ShoeboxArchive {
    pub fn open(cfg: &ShoeboxConfig, consumer: &str) -> anyhow::Result<Self> {
        let mut ac = ArchiveConfig::new(&cfg.working_directory, &cfg.destination_folder);
        ac.filename_template = cfg.filename_template.clone();
        ac.roll_size_bytes = cfg.roll_size_mb.saturating_mul(1 << 20).max(1);
        ac.roll_minutes = cfg.roll_minutes;
        ac.writer_id = writer_id(consumer);
        if cfg.wrap_payload_with_region {
            ac.wrap = Some(RegionWrap {
                region: cfg.wrap_region.clone(),
                cell: cfg.wrap_cell.clone(),
            });
        }
        // gzip of a full working file (30 MB: ~0.5 s) must not hold up the batch being acked
        let writer = ArchiveWriter::open(ac)
            .map_err(|e| anyhow::anyhow!("archive for consumer {consumer}: {e}"))?
            .with_background_rolls();
        let mut seed: Vec<PathBuf> = writer.recovered().to_vec();
        for p in newest_files(&cfg.destination_folder, SEED_FILES) {
            if !seed.contains(&p) {
                seed.push(p);
            }
        }
        Ok(ShoeboxArchive {
            writer: Arc::new(Mutex::new(writer)),
            seed,
        })
    }

    /// Another handle on the same writer.
    pub fn share(&self) -> ShoeboxArchive {
        ShoeboxArchive {
            writer: self.writer.clone(),
            seed: Vec::new(),
        }
    }

    /// Roll an idle working file past its age (call periodically).
    pub fn ticker(&self) -> Arc<dyn Fn() + Send + Sync + 'static> {
        let w = self.writer.clone();
        Arc::new(move || {
            if let Ok(mut w) = w.lock() {
                if let Err(e) = w.tick() {
                    tracing::warn!(error = %e, "archive roll failed (retried later)");
                }
            }
        })
    }

    /// Roll the working file now (shutdown).
    pub fn roll(&self) {
        if let Ok(mut w) = self.writer.lock() {
            if let Err(e) = w.roll() {
                tracing::warn!(error = %e, "archive roll at shutdown failed (the working file is recovered at the next start)");
            }
        }
    }
}

fn newest_files(dir: &Path, n: usize) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort();
    files.into_iter().rev().take(n).map(|(_, p)| p).collect()
}

impl RawArchive for ShoeboxArchive {
    fn write_batch(&mut self, lines: Vec<String>) -> BoxFut<'_, anyhow::Result<()>> {
        let w = self.writer.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
                let mut w = w
                    .lock()
                    .map_err(|_| anyhow::anyhow!("archive writer poisoned by a panic"))?;
                w.write_batch(&refs).map_err(anyhow::Error::from)
            })
            .await
            .map_err(|e| anyhow::anyhow!("archive task: {e}"))?
        })
    }

    fn recent_lines(&mut self, max: usize) -> anyhow::Result<Vec<String>> {
        let mut out: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        // oldest first so the newest survive the cap
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = self
            .seed
            .iter()
            .filter_map(|p| Some((std::fs::metadata(p).ok()?.modified().ok()?, p.clone())))
            .collect();
        files.sort();
        for (_, p) in files {
            let r = match JsonlReader::open(&p) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(file = %p.display(), error = %e, "cannot read archive for dedupe seeding");
                    continue;
                }
            };
            for line in r {
                let Ok(line) = line else { break };
                out.push_back(String::from_utf8_lossy(&line.bytes).into_owned());
                if out.len() > max {
                    out.pop_front();
                }
            }
        }
        Ok(out.into())
    }
}

/// Distill + store through winchester.
pub struct WinchesterSink {
    tm: Arc<TriggerManager>,
}

impl WinchesterSink {
    /// Load the config and connect. A config error fails at once; a database
    /// that cannot be reached yet (e.g. starting before MySQL at boot) is
    /// retried with backoff instead of exiting, like pipeline-worker does.
    pub async fn open(config_file: &Path) -> anyhow::Result<Self> {
        let cfg = WinchesterConfig::load(config_file).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut delay = std::time::Duration::from_millis(500);
        loop {
            match TriggerManager::from_config(&cfg).await {
                Ok(tm) => return Ok(WinchesterSink { tm: Arc::new(tm) }),
                Err(stv3_winchester::trigger_manager::SetupError::Store(
                    stv3_winchester::store::StoreError::Db(e),
                )) => {
                    tracing::warn!(error = %e, retry_in = ?delay, config = %config_file.display(), "database not reachable yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(30));
                }
                Err(e) => return Err(anyhow::anyhow!("{}: {e}", config_file.display())),
            }
        }
    }

    pub fn manager(&self) -> &Arc<TriggerManager> {
        &self.tm
    }
}

impl EventSink for WinchesterSink {
    fn distill(&self, notification: &Value) -> Result<Option<Event>, String> {
        self.tm.convert_notification(notification)
    }

    fn add_events<'a>(&'a self, events: &'a [Event]) -> BoxFut<'a, anyhow::Result<StoreOutcome>> {
        Box::pin(async move {
            let now = stv3_winchester::ingest_clock(events, stv3_event::now());
            let r = self.tm.add_events(events, now).await?;
            Ok(StoreOutcome {
                saved: r.saved,
                duplicates: r.duplicates.len(),
                invalid: r.invalid,
            })
        })
    }
}
