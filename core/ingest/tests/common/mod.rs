//! Harness for the end-to-end tests: a scratch database (MariaDB or SQLite) with the
//! winchester schema, a yagi.conf with unique queue/exchange names, notifications shaped
//! like notigen's, the real `yagi-event` binary, and readers for what it produced.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stv3_amqp::{AmqpSettings, ExchangeSpec, OutMessage, Publisher, QueueSpec, Topology};
use stv3_winchester::{AnyStore, EventQuery, Store};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Db {
    MariaDb,
    Sqlite,
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub db: Db,
    pub db_name: String,
    pub db_url: String,
    pub amqp_url: String,
    pub queue: String,
    pub exchange: String,
    pub conf: PathBuf,
    spawned: usize,
}

pub fn mysql(sql: &str) -> String {
    let out = Command::new("mysql")
        .args(["-uroot", "-h127.0.0.1", "-N", "-B", "-e", sql])
        .output()
        .expect("run mysql client");
    assert!(
        out.status.success(),
        "mysql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Env {
    /// `amqp_url` None = file source only (no broker).
    pub async fn new(
        tag: &str,
        db: Db,
        amqp_url: Option<&str>,
        max_messages: u16,
        extra_conf: &str,
    ) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let name = stv3_testsupport::scratch_name(tag);
        let (db_name, db_url) = match db {
            Db::MariaDb => {
                mysql(&format!("CREATE DATABASE {name}"));
                (name.clone(), format!("mysql://root@127.0.0.1:3306/{name}"))
            }
            Db::Sqlite => {
                let p = dir.path().join("events.db");
                std::fs::File::create(&p).unwrap();
                (String::new(), format!("sqlite:///{}", p.display()))
            }
        };
        let store = AnyStore::connect(&db_url).await.unwrap();
        store.migrate().await.unwrap();
        drop(store);
        let queue = format!("{name}.q");
        let exchange = format!("{name}.x");
        std::fs::write(
            dir.path().join("winchester.yaml"),
            format!(
                "config_path: {FIXTURES}\ndatabase:\n  url: {db_url}\ndistiller_config: event_definitions.yaml\ntrigger_definitions: triggers.yaml\nstatistics_period: 10\n"
            ),
        )
        .unwrap();
        let amqp = amqp_url.unwrap_or("amqp://guest:guest@127.0.0.1:5672/%2f");
        let conf = dir.path().join("yagi.conf");
        std::fs::write(
            &conf,
            format!(
                "[global]\nupdate_timer = 1\n\n[consumers]\nqueues = {queue}\n\n[consumer:{queue}]\n\
                 apps = winchester.yagi_handler.WinchesterHandler, yagi.handler.shoebox_handler.ShoeboxHandler\n\
                 exchange = {exchange}\nexchange_type = topic\nrouting_key = monitor.info\ndurable = True\nmax_messages = {max_messages}\n\n\
                 [winchester]\nconfig_file = winchester.yaml\n\n\
                 [shoebox]\nworking_directory = events\ndestination_folder = archive\n\
                 filename_template = %Y%m%d-[[TIMESTAMP]]-region-cell1-stv3-[[CRC]].json\n\
                 roll_manager = shoebox.roll_manager:WritingJSONRollManager\nroll_size_mb = 1\n\
                 wrap_payload_with_region = True\nwrap_region = region\nwrap_cell = cell1\n\n\
                 [stv3]\namqp_url = {amqp}\nstate_dir = state\nlinger_ms = 20\n{extra_conf}\n"
            ),
        )
        .unwrap();
        Env {
            dir,
            name,
            db,
            db_name,
            db_url,
            amqp_url: amqp.to_string(),
            queue,
            exchange,
            conf,
            spawned: 0,
        }
    }

    pub fn settings(&self) -> AmqpSettings {
        AmqpSettings::from_url(&self.amqp_url).unwrap()
    }

    pub fn topology(&self) -> Topology {
        Topology::queue_on_exchange(
            QueueSpec {
                name: self.queue.clone(),
                durable: true,
                auto_delete: false,
                arguments: vec![],
            },
            Some(ExchangeSpec {
                name: self.exchange.clone(),
                kind: "topic".into(),
                durable: true,
                auto_delete: false,
            }),
            &["monitor.info".to_string()],
        )
    }

    /// Publish bodies (confirmed) to the consumer's exchange, declaring the queue first.
    pub async fn publish(&self, bodies: Vec<Vec<u8>>) {
        let mut p = Publisher::connect(&self.settings(), "e2e-publisher")
            .await
            .unwrap();
        p.declare(self.topology()).await.unwrap();
        let n = bodies.len() as u64;
        let msgs = bodies
            .into_iter()
            .map(|b| OutMessage::raw(&self.exchange, "monitor.info", b));
        let stats = p.publish_at_rate(msgs, None, None).await.unwrap();
        assert_eq!(stats.confirmed, n);
        p.close().await;
    }

    pub fn spawn(&mut self, args: &[&str]) -> Child {
        self.spawned += 1;
        let log = std::fs::File::create(
            self.dir
                .path()
                .join(format!("yagi-event-{}.log", self.spawned)),
        )
        .unwrap();
        Command::new(env!("CARGO_BIN_EXE_yagi-event"))
            .arg("--config")
            .arg(&self.conf)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn yagi-event")
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for i in 1..=self.spawned {
            s.push_str(
                &std::fs::read_to_string(self.dir.path().join(format!("yagi-event-{i}.log")))
                    .unwrap_or_default(),
            );
        }
        s
    }

    pub async fn stored(&self) -> u64 {
        let store = AnyStore::connect(&self.db_url).await.unwrap();
        store.count_events(&EventQuery::default()).await.unwrap()
    }

    /// Poll until `stored() >= n` or the timeout; returns the last count.
    pub async fn wait_stored(&self, n: u64, timeout: Duration) -> u64 {
        let start = Instant::now();
        loop {
            let c = self.stored().await;
            if c >= n || start.elapsed() > timeout {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Poll until the logs contain `needle` or the timeout; returns whether they do.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        loop {
            if self.logs().contains(needle) {
                return true;
            }
            if start.elapsed() > timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every message_id in the archive (working + finished files), with duplicates.
    pub fn archived_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for sub in ["events", "archive"] {
            let d = self.dir.path().join(sub);
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            files.sort();
            for f in files {
                if f.file_name().unwrap().to_string_lossy().starts_with('.') {
                    continue;
                }
                for line in stv3_archive::JsonlReader::open(&f).unwrap() {
                    let line = line.unwrap();
                    let text = String::from_utf8_lossy(&line.bytes);
                    let v: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{}: {e}: {text}", f.display()));
                    assert_eq!(v["cell"], "cell1", "region wrap applied");
                    ids.push(
                        stv3_ingest::dedupe::message_id_of_line(&text)
                            .expect("archived line has a message_id"),
                    );
                }
            }
        }
        ids
    }

    /// Exactly notifications `0..n` of this run: n events stored, each archived once.
    pub async fn assert_exactly_n(&self, n: usize, what: &str) {
        assert_eq!(
            self.stored().await,
            n as u64,
            "{what}: events stored\n{}",
            self.logs()
        );
        assert_exactly(&self.archived_ids(), &expected_ids(&self.name, n), what);
    }

    pub fn quarantine_path(&self) -> PathBuf {
        self.dir.path().join("state/quarantine/quarantine.jsonl")
    }

    pub async fn cleanup(self) {
        if let Ok(conn) = stv3_amqp::connect(&self.settings(), "e2e-cleanup").await {
            if let Ok(ch) = conn.create_channel().await {
                for q in [self.queue.clone(), format!("{}.quarantine", self.queue)] {
                    let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
                }
                let _ = ch
                    .exchange_delete(self.exchange.as_str().into(), Default::default())
                    .await;
            }
            let _ = conn.close(200, "bye".into()).await;
        }
        if self.db == Db::MariaDb {
            mysql(&format!("DROP DATABASE IF EXISTS {}", self.db_name));
        }
    }
}

/// "Now" for generated notifications, fixed per process: event time close to the wall
/// clock, as in production (events from 2015 would make every stream expire at once).
fn base_time() -> chrono::NaiveDateTime {
    static BASE: std::sync::OnceLock<chrono::NaiveDateTime> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| chrono::Utc::now().naive_utc())
}

/// A nova-shaped notification (the notigen template keys that matter here).
pub fn notification(run: &str, i: usize) -> Value {
    let ts = base_time() + chrono::Duration::milliseconds(i as i64);
    let instance = format!("{run}-inst-{}", i % 97);
    json!({
        "event_type": if i % 10 == 9 { "compute.instance.exists" } else { "compute.instance.update" },
        "message_id": format!("{run}-{i:08}"),
        "timestamp": ts.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        "priority": "INFO",
        "publisher_id": format!("compute.host-{}", i % 7),
        "_context_request_id": format!("req-{run}-{i}"),
        "payload": {
            "instance_id": instance,
            "tenant_id": format!("{}", 100000 + i % 13),
            "user_id": format!("{}", 200000 + i % 11),
            "memory_mb": 512,
            "state": "active",
            "launched_at": "2015-01-22 02:00:00.000000",
            "audit_period_beginning": format!("{} 00:00:00", base_time().date()),
            "audit_period_ending": format!("{} 00:00:00", base_time().date() + chrono::Duration::days(1)),
        }
    })
}

pub fn bodies(run: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| notification(run, i).to_string().into_bytes())
        .collect()
}

pub fn expected_ids(run: &str, n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("{run}-{i:08}")).collect()
}

pub fn sigterm(child: &Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("yagi-event did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn assert_exactly(ids: &[String], expected: &BTreeSet<String>, what: &str) {
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(
        ids.len(),
        set.len(),
        "{what}: {} duplicate line(s)",
        ids.len() - set.len()
    );
    let missing: Vec<_> = expected.difference(&set).take(5).collect();
    let extra: Vec<_> = set.difference(expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, extra {extra:?} (of {})",
        expected.len()
    );
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}
