//! Helpers shared by the process-level tests.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use stv3_event::{parse_timestamp, Event, Timestamp, TraitValue};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/usage")
}

/// The first `n` fixture notifications.
pub fn notifications(n: usize) -> Vec<Value> {
    let mut s = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(fixtures().join("notifications.jsonl.gz")).unwrap(),
    )
    .read_to_string(&mut s)
    .unwrap();
    s.lines()
        .take(n)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Write a winchester.yaml (plus triggers/pipelines given as text) into `dir`.
pub fn write_config(
    dir: &Path,
    db_url: &str,
    triggers: &str,
    pipelines: &str,
    extra: &str,
) -> PathBuf {
    std::fs::write(dir.join("triggers.yaml"), triggers).unwrap();
    std::fs::write(dir.join("pipelines.yaml"), pipelines).unwrap();
    std::fs::copy(
        fixtures().join("event_definitions.yaml"),
        dir.join("event_definitions.yaml"),
    )
    .unwrap();
    let cfg = format!(
        "database: {{url: \"{db_url}\"}}\ndistiller_config: event_definitions.yaml\ntrigger_definitions: triggers.yaml\npipeline_config: pipelines.yaml\npipeline_worker_delay: 0.2\nstatistics_period: 1\npipeline_handlers:\n  logger: winchester.pipeline_handler:LoggingHandler\n  usage: winchester.pipeline_handler:UsageHandler\n  journal: journal\n{extra}"
    );
    let p = dir.join("winchester.yaml");
    std::fs::write(&p, cfg).unwrap();
    p
}

/// Start `pipeline-worker` with `args`.
pub fn worker(config: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pipeline-worker"))
        .arg("--config")
        .arg(config)
        .args(["--no-ops", "--log-level", "warn"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pipeline-worker")
}

/// Wait for a child with a deadline; panics with its stderr if it fails or hangs.
pub fn wait_ok(mut child: Child, secs: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            assert!(status.success(), "pipeline-worker failed: {status}\n{err}");
            return;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("pipeline-worker did not finish in {secs}s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn t0() -> Timestamp {
    parse_timestamp("2015-03-01 12:00:00").unwrap()
}

/// `n` synthetic streams: event `i` of type `test.fire` (every stream whose index
/// is not divisible by 3) or `test.other`, instance `inst-i`.
pub fn synthetic_events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let t = if i % 3 == 0 {
                "test.other"
            } else {
                "test.fire"
            };
            Event::new(
                format!("mw-{i}"),
                t,
                t0() + chrono::Duration::milliseconds(i as i64),
            )
            .with_trait("instance_id", TraitValue::Text(format!("inst-{i}").into()))
        })
        .collect()
}

pub const COUNT_TRIGGERS: &str = "- name: mw
  distinguished_by: [instance_id]
  expiration: \"$last + 1h\"
  fire_pipeline: count
  expire_pipeline: count
  match_criteria: [{event_type: \"test.*\"}]
  fire_criteria: [{event_type: test.fire}]
";

/// Journal lines -> stream_id counts.
pub fn journal_counts(path: &Path) -> std::collections::BTreeMap<i64, usize> {
    let mut counts = std::collections::BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(path) {
        for l in text.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            *counts.entry(v["stream_id"].as_i64().unwrap()).or_default() += 1;
        }
    }
    counts
}

/// A scratch MariaDB database with [`COUNT_TRIGGERS`], a `count` pipeline
/// (logger + journal) and `n` synthetic streams ingested; dropped by [`Self::drop_db`].
pub struct CountRun {
    pub base: String,
    pub name: String,
    pub url: String,
    pub config: PathBuf,
    pub journal: PathBuf,
    pub tm: stv3_winchester::TriggerManager,
    _tmp: tempfile::TempDir,
}

impl CountRun {
    /// `journal_params`: extra journal handler params (`", sleep: 0.005"`);
    /// `extra`: extra winchester.yaml lines.
    pub async fn new(
        base: &str,
        tag: &str,
        n: usize,
        journal_params: &str,
        extra: &str,
    ) -> CountRun {
        use sqlx::Connection;
        use stv3_winchester::{AnyStore, Store, TriggerManager, WinchesterConfig};
        let name = stv3_testsupport::scratch_name(tag);
        let mut c = sqlx::MySqlConnection::connect(base).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE `{name}`"))
            .execute(&mut c)
            .await
            .unwrap();
        let url = format!("{}/{name}", base.trim_end_matches('/'));
        let tmp = tempfile::tempdir().unwrap();
        let journal = tmp.path().join("journal.jsonl");
        let pipelines = format!(
            "count: [logger, {{name: journal, params: {{path: \"{}\"{journal_params}}}}}]\n",
            journal.display()
        );
        let config = write_config(tmp.path(), &url, COUNT_TRIGGERS, &pipelines, extra);
        let cfg = WinchesterConfig::load(&config).unwrap();
        AnyStore::connect(&url)
            .await
            .unwrap()
            .migrate()
            .await
            .unwrap();
        let tm = TriggerManager::new(
            AnyStore::open(&url).await.unwrap(),
            cfg.load_triggers().unwrap(),
        );
        for chunk in synthetic_events(n).chunks(500) {
            tm.add_events(chunk, t0()).await.unwrap();
        }
        CountRun {
            base: base.to_string(),
            name,
            url,
            config,
            journal,
            tm,
            _tmp: tmp,
        }
    }

    /// Streams now in state `completed`.
    pub async fn completed(&self) -> usize {
        use stv3_winchester::{Store, StreamQuery, StreamState};
        let q = StreamQuery {
            state: Some(StreamState::Completed),
            ..Default::default()
        };
        self.tm.store().count_streams(&q).await.unwrap() as usize
    }

    pub async fn drop_db(self) {
        use sqlx::Connection;
        let mut c = sqlx::MySqlConnection::connect(&self.base).await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS `{}`", self.name))
            .execute(&mut c)
            .await
            .unwrap();
    }
}
