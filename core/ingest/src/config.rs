//! yagi.conf: the original yagi ini format, loaded unchanged, into typed settings.
//!
//! Every key of core-spec §5.2 is read. Differences from the original (documented in
//! `docs/ingest.md` too):
//! * Booleans accept `True/False/true/false/yes/no/on/off/1/0`; anything else is an error
//!   (the original treated everything but the exact string `True` as false).
//! * `apps` must name handlers we have built in: `winchester.yagi_handler.WinchesterHandler`
//!   (short: `winchester`) = distill + store + stream matching, and
//!   `yagi.handler.shoebox_handler.ShoeboxHandler` (short: `shoebox`) = raw archive.
//!   Any other app is an error, not a silent skip.
//! * Handler sections may be specialised per consumer: `[rabbit_broker:NAME]`,
//!   `[winchester:NAME]`, `[shoebox:NAME]`, `[stv3:NAME]` override the plain section key
//!   by key (the original did this for handler sections only). That is how one process
//!   serves several cells (each consumer on its own broker and archive).
//! * `[consumer:NAME] queue` (ours) names the queue when it differs from NAME, and
//!   `routing_keys` (ours) binds several keys; `routing_key` still works.
//! * Relative paths (`[winchester] config_file`, `[shoebox]` directories, `[stv3]`
//!   directories, filter map files) are resolved against the directory of yagi.conf.
//! * `[shoebox]` is read raw (no `%` interpolation), like the original; it always
//!   writes the JSON-lines + gzip format (`WritingJSONRollManager`).
//!
//! Our own keys live in `[stv3]` (all optional):
//! `amqp_url` (instead of the `[rabbit_broker]` parts), `state_dir` (file-source
//! checkpoints; default `.`), `quarantine_dir` (default `<state_dir>/quarantine`),
//! `ops_address` (host:port for `/health` and `/metrics`; none = off), `prefetch`
//! (default (store_inflight + 2) × max_messages), `store_inflight` (default 2: batches
//! whose store transaction may run at once; acks stay in order), `linger_ms` (default 50: how long a partial batch
//! waits for more), `max_payload_bytes` (default 4194304: larger bodies are quarantined),
//! `dedupe_window` (default 65536: how many recently archived message_ids are remembered).
//!
//! Errors name the file, line, section and key, and all of them are collected.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stv3_amqp::AmqpSettings;

use crate::ini::Ini;

/// One config problem, pointing at the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub section: Option<String>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ":")?;
        if let Some(s) = &self.section {
            write!(f, " [{s}]")?;
        }
        if let Some(k) = &self.key {
            write!(f, " {k}:")?;
        }
        write!(f, " {}", self.message)
    }
}

/// All the problems found in one file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        write!(f, "{}", lines.join("\n"))
    }
}

/// A built-in handler named by `apps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum App {
    /// `winchester.yagi_handler.WinchesterHandler`: distill, store, match triggers.
    Winchester,
    /// `yagi.handler.shoebox_handler.ShoeboxHandler`: archive the raw notification.
    Shoebox,
}

impl App {
    pub fn from_name(name: &str) -> Option<App> {
        match name {
            "winchester.yagi_handler.WinchesterHandler"
            | "winchester.yagi_handler:WinchesterHandler"
            | "winchester"
            | "WinchesterHandler" => Some(App::Winchester),
            "yagi.handler.shoebox_handler.ShoeboxHandler"
            | "yagi.handler.shoebox_handler:ShoeboxHandler"
            | "shoebox"
            | "ShoeboxHandler" => Some(App::Shoebox),
            _ => None,
        }
    }

    /// The handler's config section (`CONFIG_SECTION`), also the key in `[filters]`.
    pub fn section(self) -> &'static str {
        match self {
            App::Winchester => "winchester",
            App::Shoebox => "shoebox",
        }
    }
}

/// Event-type filters for one handler (`[filters]`, `[exclude_filters]`, `[discard_filters]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTypeFilter {
    /// When set, only these event types reach the handler.
    pub include: Option<Vec<String>>,
    pub exclude: Vec<String>,
    /// Skipped by the handler (still acknowledged).
    pub discard: Vec<String>,
}

impl EventTypeFilter {
    pub fn admits(&self, event_type: &str) -> bool {
        if let Some(inc) = &self.include {
            if !inc.iter().any(|t| t == event_type) {
                return false;
            }
        }
        !self.exclude.iter().any(|t| t == event_type)
            && !self.discard.iter().any(|t| t == event_type)
    }
}

/// `[filter:NAME]`: a payload rewrite filter (map_file + method).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFilterConfig {
    pub name: String,
    pub map_file: PathBuf,
    /// FilterMessage, FilterMessageMatch or FilterMessageTimestamp.
    pub method: String,
}

/// `[rabbit_broker]` (possibly specialised per consumer).
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    pub amqp: AmqpSettings,
    /// Unused by stv3 (push consumption); kept for reference.
    pub poll_delay: f64,
    pub reconnect_delay: Duration,
    pub max_wait: Duration,
    /// Forced reconnect age (0 = never).
    pub max_connection_age: Duration,
    /// Unused by the original as well.
    pub exchange_name: Option<String>,
}

/// `[winchester]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinchesterConfig {
    pub config_file: PathBuf,
}

/// `[shoebox]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShoeboxConfig {
    pub working_directory: PathBuf,
    pub destination_folder: PathBuf,
    pub filename_template: String,
    pub roll_size_mb: u64,
    /// Ours (the original could not set it from yagi): roll after this many minutes.
    pub roll_minutes: u64,
    pub wrap_payload_with_region: bool,
    pub wrap_region: String,
    pub wrap_cell: String,
}

/// One `[consumer:NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerConfig {
    pub name: String,
    pub queue: String,
    pub apps: Vec<App>,
    pub exchange: Option<String>,
    pub exchange_type: String,
    pub routing_keys: Vec<String>,
    pub durable: bool,
    pub auto_delete: bool,
    pub exchange_durable: bool,
    pub exchange_auto_delete: bool,
    pub max_messages: u16,
    pub prefetch: u16,
    /// Batches whose store transaction may be in flight at once (acks stay in order).
    pub store_inflight: usize,
    pub filters: Vec<PayloadFilterConfig>,
    pub event_filters: BTreeMap<App, EventTypeFilter>,
    pub broker: BrokerConfig,
    pub winchester: Option<WinchesterConfig>,
    pub shoebox: Option<ShoeboxConfig>,
}

impl ConsumerConfig {
    pub fn has(&self, app: App) -> bool {
        self.apps.contains(&app)
    }

    pub fn filter_for(&self, app: App) -> EventTypeFilter {
        self.event_filters.get(&app).cloned().unwrap_or_default()
    }
}

/// `[stv3]` (global part).
#[derive(Debug, Clone, PartialEq)]
pub struct Stv3Config {
    pub state_dir: PathBuf,
    pub quarantine_dir: PathBuf,
    pub ops_address: Option<SocketAddr>,
    pub linger: Duration,
    pub max_payload_bytes: usize,
    pub dedupe_window: usize,
}

/// The whole yagi.conf.
#[derive(Debug, Clone, PartialEq)]
pub struct YagiConfig {
    pub path: PathBuf,
    pub verbose: bool,
    pub debug: bool,
    pub update_timer: Duration,
    pub event_driver: String,
    pub daemonize: bool,
    pub pidfile: String,
    pub logfile: Option<String>,
    pub log_level: Option<String>,
    pub stats_enabled: bool,
    pub consumers: Vec<ConsumerConfig>,
    pub stv3: Stv3Config,
}

impl YagiConfig {
    pub fn load(path: &Path) -> Result<YagiConfig, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.display().to_string(),
                line: None,
                section: None,
                key: None,
                message: format!("cannot read: {e}"),
            }])
        })?;
        Self::parse(&text, path)
    }

    /// Parse `text` as if read from `path` (relative paths resolve against its directory).
    pub fn parse(text: &str, path: &Path) -> Result<YagiConfig, ConfigErrors> {
        let file = path.display().to_string();
        let ini = Ini::parse(text).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line: Some(e.line),
                section: None,
                key: None,
                message: e.message,
            }])
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut r = Reader {
            ini: &ini,
            file,
            base,
            errors: Vec::new(),
        };
        let cfg = r.config(path);
        if r.errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(r.errors))
        }
    }

    pub fn consumer(&self, name: &str) -> Option<&ConsumerConfig> {
        self.consumers.iter().find(|c| c.name == name)
    }
}

struct Reader<'a> {
    ini: &'a Ini,
    file: String,
    base: PathBuf,
    errors: Vec<ConfigError>,
}

impl Reader<'_> {
    fn err(
        &mut self,
        line: Option<usize>,
        section: &str,
        key: Option<&str>,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            section: Some(section.to_string()),
            key: key.map(str::to_string),
            message: message.into(),
        });
    }

    /// Look `key` up in `[section:name]` then `[section]`; returns (value, line, section found in).
    fn lookup(
        &mut self,
        section: &str,
        name: Option<&str>,
        key: &str,
        raw: bool,
    ) -> Option<(String, usize, String)> {
        let mut candidates = Vec::new();
        if let Some(n) = name {
            candidates.push(format!("{section}:{n}"));
        }
        candidates.push(section.to_string());
        for sec in candidates {
            if raw {
                if let Some(e) = self.ini.raw(&sec, key) {
                    return Some((e.value.clone(), e.line, sec));
                }
            } else if let Some(res) = self.ini.get(&sec, key) {
                match res {
                    Ok((v, l)) => return Some((v, l, sec)),
                    Err(e) => {
                        self.err(Some(e.line), &sec, Some(key), e.message);
                        return None;
                    }
                }
            }
        }
        None
    }

    fn string(&mut self, section: &str, name: Option<&str>, key: &str, default: &str) -> String {
        self.lookup(section, name, key, false)
            .map(|(v, _, _)| v)
            .unwrap_or_else(|| default.to_string())
    }

    fn opt_string(&mut self, section: &str, name: Option<&str>, key: &str) -> Option<String> {
        self.lookup(section, name, key, false)
            .map(|(v, _, _)| v)
            .filter(|v| !v.is_empty())
    }

    fn parsed<T: std::str::FromStr>(
        &mut self,
        section: &str,
        name: Option<&str>,
        key: &str,
        what: &str,
        raw: bool,
    ) -> Option<T> {
        let (v, line, sec) = self.lookup(section, name, key, raw)?;
        match v.trim().parse::<T>() {
            Ok(x) => Some(x),
            Err(_) => {
                self.err(Some(line), &sec, Some(key), format!("{v:?} is not {what}"));
                None
            }
        }
    }

    fn boolean(
        &mut self,
        section: &str,
        name: Option<&str>,
        key: &str,
        default: bool,
        raw: bool,
    ) -> bool {
        self.opt_boolean(section, name, key, raw).unwrap_or(default)
    }

    /// `Default`/`None`/empty mean "not set" (yagi's `confbool`).
    fn opt_boolean(
        &mut self,
        section: &str,
        name: Option<&str>,
        key: &str,
        raw: bool,
    ) -> Option<bool> {
        let (v, line, sec) = self.lookup(section, name, key, raw)?;
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            "" | "default" | "none" => None,
            _ => {
                self.err(
                    Some(line),
                    &sec,
                    Some(key),
                    format!("{v:?} is not a boolean (True or False)"),
                );
                None
            }
        }
    }

    fn seconds(&mut self, section: &str, name: Option<&str>, key: &str, default: f64) -> Duration {
        let v: f64 = self
            .parsed(section, name, key, "a number of seconds", false)
            .unwrap_or(default);
        if !(0.0..1e9).contains(&v) {
            // only a value that was read can be out of range: point at it
            let (line, sec) = self
                .lookup(section, name, key, false)
                .map_or((None, section.to_string()), |(_, l, s)| (Some(l), s));
            self.err(
                line,
                &sec,
                Some(key),
                format!("{v} seconds is out of range"),
            );
            return Duration::from_secs_f64(default);
        }
        Duration::from_secs_f64(v)
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    fn list(v: &str) -> Vec<String> {
        v.split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn config(&mut self, path: &Path) -> YagiConfig {
        for (name, sec) in &self.ini.sections {
            let known = [
                "global",
                "event_worker",
                "rabbit_broker",
                "consumers",
                "filters",
                "exclude_filters",
                "discard_filters",
                "logging",
                "stats",
                "winchester",
                "shoebox",
                "stv3",
                "event_feed",
            ];
            let head = name.split(':').next().unwrap_or("");
            if !known.contains(&name.as_str())
                && ![
                    "consumer",
                    "filter",
                    "rabbit_broker",
                    "winchester",
                    "shoebox",
                    "stv3",
                ]
                .contains(&head)
            {
                tracing::debug!(section = %name, line = sec.line, "section not used by yagi-event");
            }
        }
        let update_timer = self.seconds("global", None, "update_timer", 300.0);
        let verbose = self.boolean("global", None, "verbose", true, false);
        let debug = self.boolean("global", None, "debug", false, false);
        let event_driver = self.string(
            "event_worker",
            None,
            "event_driver",
            "yagi.broker.rabbit.Broker",
        );
        if event_driver != "yagi.broker.rabbit.Broker" && event_driver != "rabbit" {
            let line = self.ini.raw("event_worker", "event_driver").map(|e| e.line);
            self.err(
                line,
                "event_worker",
                Some("event_driver"),
                format!("{event_driver:?} is not supported (only yagi.broker.rabbit.Broker)"),
            );
        }
        let daemonize = self.boolean("event_worker", None, "daemonize", false, false);
        let pidfile = self.string("event_worker", None, "pidfile", "yagi_event_worker.pid");
        let logfile = self.opt_string("logging", None, "logfile");
        let log_level = self.opt_string("logging", None, "default_level");
        let stats_enabled = self.boolean("stats", None, "enabled", false, false);

        let state_dir = self.string("stv3", None, "state_dir", ".");
        let state_dir = self.path(&state_dir);
        let quarantine_dir = match self.opt_string("stv3", None, "quarantine_dir") {
            Some(q) => self.path(&q),
            None => state_dir.join("quarantine"),
        };
        let ops_address = self.parsed::<SocketAddr>(
            "stv3",
            None,
            "ops_address",
            "a host:port socket address",
            false,
        );
        let linger_ms: u64 = self
            .parsed("stv3", None, "linger_ms", "a number of milliseconds", false)
            .unwrap_or(50);
        let max_payload_bytes = self
            .parsed("stv3", None, "max_payload_bytes", "a byte count", false)
            .unwrap_or(4 << 20);
        let dedupe_window = self
            .parsed("stv3", None, "dedupe_window", "a count", false)
            .unwrap_or(65536);
        let stv3 = Stv3Config {
            state_dir,
            quarantine_dir,
            ops_address,
            linger: Duration::from_millis(linger_ms),
            max_payload_bytes,
            dedupe_window,
        };

        let mut consumers = Vec::new();
        match self.ini.raw("consumers", "queues").cloned() {
            None => {
                let line = self.ini.section("consumers").map(|s| s.line);
                self.err(
                    line,
                    "consumers",
                    Some("queues"),
                    "missing: list the consumers (queue names) to serve",
                );
            }
            Some(e) => {
                let names = Self::list(&e.value);
                if names.is_empty() {
                    self.err(Some(e.line), "consumers", Some("queues"), "is empty");
                }
                for (i, n) in names.iter().enumerate() {
                    if names[..i].contains(n) {
                        self.err(
                            Some(e.line),
                            "consumers",
                            Some("queues"),
                            format!("{n:?} is listed twice"),
                        );
                        continue;
                    }
                    if let Some(c) = self.consumer(n, e.line) {
                        consumers.push(c);
                    }
                }
                let mut queues: Vec<(&str, &str)> = Vec::new();
                for c in &consumers {
                    let key = (c.broker.amqp.host.as_str(), c.queue.as_str());
                    if queues.contains(&key) {
                        self.err(
                            Some(e.line),
                            "consumers",
                            Some("queues"),
                            format!("two consumers read queue {:?} on the same broker", c.queue),
                        );
                    }
                    queues.push(key);
                }
            }
        }
        YagiConfig {
            path: path.to_path_buf(),
            verbose,
            debug,
            update_timer,
            event_driver,
            daemonize,
            pidfile,
            logfile,
            log_level,
            stats_enabled,
            consumers,
            stv3,
        }
    }

    fn broker(&mut self, name: Option<&str>) -> BrokerConfig {
        let amqp = if let Some((url, line, sec)) = self.lookup("stv3", name, "amqp_url", false) {
            match AmqpSettings::from_url(&url) {
                Ok(s) => s,
                Err(e) => {
                    self.err(Some(line), &sec, Some("amqp_url"), e.to_string());
                    AmqpSettings::default()
                }
            }
        } else {
            let host = self.string("rabbit_broker", name, "host", "localhost");
            let port = self
                .parsed(
                    "rabbit_broker",
                    name,
                    "port",
                    "a port number 0-65535",
                    false,
                )
                .unwrap_or(5672);
            let user = self.string("rabbit_broker", name, "user", "guest");
            let password = self.string("rabbit_broker", name, "password", "guest");
            let vhost = self.string("rabbit_broker", name, "vhost", "/");
            let tls = self.boolean("rabbit_broker", name, "ssl", false, false);
            AmqpSettings::from_parts(&host, port, &user, &password, &vhost, tls)
        };
        BrokerConfig {
            amqp,
            poll_delay: self
                .parsed(
                    "rabbit_broker",
                    name,
                    "poll_delay",
                    "a number of seconds",
                    false,
                )
                .unwrap_or(1.0),
            reconnect_delay: self.seconds("rabbit_broker", name, "reconnect_delay", 5.0),
            max_wait: self.seconds("rabbit_broker", name, "max_wait", 600.0),
            max_connection_age: self.seconds("rabbit_broker", name, "max_connection_age", 14400.0),
            exchange_name: self.opt_string("rabbit_broker", name, "exchange_name"),
        }
    }

    fn consumer(&mut self, name: &str, queues_line: usize) -> Option<ConsumerConfig> {
        let section = format!("consumer:{name}");
        let Some(sec_line) = self.ini.section(&section).map(|s| s.line) else {
            self.err(
                Some(queues_line),
                "consumers",
                Some("queues"),
                format!("{name:?} has no [{section}] section"),
            );
            return None;
        };
        let s = section.as_str();
        let mut apps = Vec::new();
        match self.ini.raw(s, "apps").cloned() {
            None => self.err(
                Some(sec_line),
                s,
                Some("apps"),
                "missing: name the handlers (e.g. winchester.yagi_handler.WinchesterHandler)",
            ),
            Some(e) => {
                for a in Self::list(&e.value) {
                    match App::from_name(&a) {
                        Some(app) if apps.contains(&app) => self.err(Some(e.line), s, Some("apps"), format!("{a:?} is listed twice")),
                        Some(app) => apps.push(app),
                        None => self.err(
                            Some(e.line),
                            s,
                            Some("apps"),
                            format!("unknown app {a:?} (built in: winchester.yagi_handler.WinchesterHandler, yagi.handler.shoebox_handler.ShoeboxHandler)"),
                        ),
                    }
                }
                if apps.is_empty()
                    && !Self::list(&e.value)
                        .iter()
                        .any(|a| App::from_name(a).is_none())
                {
                    self.err(Some(e.line), s, Some("apps"), "is empty");
                }
            }
        }
        let max_messages: Option<u16> = match self.ini.raw(s, "max_messages").cloned() {
            None => {
                self.err(
                    Some(sec_line),
                    s,
                    Some("max_messages"),
                    "missing (the batch size, e.g. 100)",
                );
                None
            }
            Some(e) => match e.value.trim().parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    self.err(
                        Some(e.line),
                        s,
                        Some("max_messages"),
                        format!("{:?} is not a whole number 1-65535", e.value),
                    );
                    None
                }
            },
        };
        let queue = self
            .opt_string(s, None, "queue")
            .unwrap_or_else(|| name.to_string());
        let exchange = self.opt_string(s, None, "exchange");
        let exchange_type = self.string(s, None, "exchange_type", "topic");
        if !["topic", "direct", "fanout", "headers"].contains(&exchange_type.as_str()) {
            let line = self.ini.raw(s, "exchange_type").map(|e| e.line);
            self.err(
                line,
                s,
                Some("exchange_type"),
                format!("{exchange_type:?} is not topic, direct, fanout or headers"),
            );
        }
        let mut routing_keys = Vec::new();
        if let Some(rk) = self.ini.raw(s, "routing_key") {
            routing_keys.push(rk.value.trim().to_string());
        }
        if let Some(rks) = self.opt_string(s, None, "routing_keys") {
            for k in Self::list(&rks) {
                if !routing_keys.contains(&k) {
                    routing_keys.push(k);
                }
            }
        }
        if exchange.is_some() && routing_keys.is_empty() {
            routing_keys.push(if exchange_type == "fanout" || exchange_type == "headers" {
                String::new()
            } else {
                queue.clone()
            });
        }
        let durable = self.boolean(s, None, "durable", false, false);
        let auto_delete = self.boolean(s, None, "auto_delete", false, false);
        let exchange_durable = self
            .opt_boolean(s, None, "exchange_durable", false)
            .unwrap_or(durable);
        let exchange_auto_delete = self
            .opt_boolean(s, None, "exchange_auto_delete", false)
            .unwrap_or(auto_delete);
        let mut filters = Vec::new();
        if let Some((names, line, _)) = self.lookup(s, None, "filters", false) {
            for f in Self::list(&names) {
                let fsec = format!("filter:{f}");
                if !self.ini.has_section(&fsec) {
                    self.err(
                        Some(line),
                        s,
                        Some("filters"),
                        format!("filter {f:?} has no [{fsec}] section"),
                    );
                    continue;
                }
                let map_file = self.opt_string(&fsec, None, "map_file");
                let method = self.opt_string(&fsec, None, "method");
                let fline = self.ini.section(&fsec).map(|x| x.line);
                match (map_file, method) {
                    (Some(m), Some(meth)) => {
                        if !crate::payload_filter::METHODS.contains(&meth.as_str()) {
                            let l = self.ini.raw(&fsec, "method").map(|e| e.line);
                            self.err(
                                l,
                                &fsec,
                                Some("method"),
                                format!(
                                    "{meth:?} is not one of {:?}",
                                    crate::payload_filter::METHODS
                                ),
                            );
                        }
                        filters.push(PayloadFilterConfig {
                            name: f,
                            map_file: self.path(&m),
                            method: meth,
                        });
                    }
                    (None, _) => self.err(fline, &fsec, Some("map_file"), "missing"),
                    (_, None) => self.err(fline, &fsec, Some("method"), "missing"),
                }
            }
        }
        let mut event_filters = BTreeMap::new();
        for app in [App::Winchester, App::Shoebox] {
            let key = app.section();
            let include = self.ini.raw("filters", key).map(|e| Self::list(&e.value));
            let exclude = self
                .ini
                .raw("exclude_filters", key)
                .map(|e| Self::list(&e.value))
                .unwrap_or_default();
            let discard = self
                .ini
                .raw("discard_filters", key)
                .map(|e| Self::list(&e.value))
                .unwrap_or_default();
            let f = EventTypeFilter {
                include,
                exclude,
                discard,
            };
            if f != EventTypeFilter::default() {
                event_filters.insert(app, f);
            }
        }
        let store_inflight = self
            .parsed::<u8>(
                "stv3",
                Some(name),
                "store_inflight",
                "a whole number 1-255",
                false,
            )
            .unwrap_or(2)
            .max(1);
        // the batches being made durable, one prepared ahead, one arriving
        let prefetch_default = max_messages
            .unwrap_or(100)
            .saturating_mul(u16::from(store_inflight).saturating_add(2))
            .max(1);
        let prefetch = self
            .parsed::<u16>(
                "stv3",
                Some(name),
                "prefetch",
                "a whole number 1-65535",
                false,
            )
            .unwrap_or(prefetch_default);
        let broker = self.broker(Some(name));
        let winchester = if apps.contains(&App::Winchester) {
            let f = self.string("winchester", Some(name), "config_file", "winchester.yaml");
            Some(WinchesterConfig {
                config_file: self.path(&f),
            })
        } else {
            None
        };
        let shoebox = if apps.contains(&App::Shoebox) {
            Some(self.shoebox(name))
        } else {
            None
        };
        Some(ConsumerConfig {
            name: name.to_string(),
            queue,
            apps,
            exchange,
            exchange_type,
            routing_keys,
            durable,
            auto_delete,
            exchange_durable,
            exchange_auto_delete,
            max_messages: max_messages.unwrap_or(1),
            prefetch: prefetch.max(1),
            store_inflight: usize::from(store_inflight),
            filters,
            event_filters,
            broker,
            winchester,
            shoebox,
        })
    }

    fn shoebox(&mut self, name: &str) -> ShoeboxConfig {
        let raw = |r: &mut Self, key: &str| r.lookup("shoebox", Some(name), key, true);
        let working = raw(self, "working_directory")
            .map(|x| x.0)
            .unwrap_or_else(|| ".".into());
        let dest = raw(self, "destination_folder")
            .map(|x| x.0)
            .unwrap_or_else(|| ".".into());
        let filename_template = raw(self, "filename_template")
            .map(|x| x.0)
            .unwrap_or_else(|| "events_%Y_%m_%d_%X_%f.dat".into());
        if let Some((rm, line, sec)) = raw(self, "roll_manager") {
            if !rm.contains("WritingJSONRollManager") {
                self.err(Some(line), &sec, Some("roll_manager"), format!("{rm:?} is not supported: stv3 writes shoebox.roll_manager:WritingJSONRollManager (JSON lines + gzip)"));
            }
        }
        for key in ["roll_checker", "callback"] {
            if let Some((v, line, sec)) = raw(self, key) {
                tracing::warn!(file = %self.file, line, section = %sec, key, value = %v, "ignored: the JSON roll manager rolls by size/time and gzips to destination_folder itself");
            }
        }
        ShoeboxConfig {
            working_directory: self.path(&working),
            destination_folder: self.path(&dest),
            filename_template,
            roll_size_mb: self
                .parsed(
                    "shoebox",
                    Some(name),
                    "roll_size_mb",
                    "a whole number of MB",
                    true,
                )
                .unwrap_or(1000),
            roll_minutes: self
                .parsed(
                    "shoebox",
                    Some(name),
                    "roll_minutes",
                    "a whole number of minutes",
                    true,
                )
                .unwrap_or(60),
            wrap_payload_with_region: self.boolean(
                "shoebox",
                Some(name),
                "wrap_payload_with_region",
                false,
                true,
            ),
            wrap_region: raw(self, "wrap_region")
                .map(|x| x.0)
                .unwrap_or_else(|| "n/a".into()),
            wrap_cell: raw(self, "wrap_cell")
                .map(|x| x.0)
                .unwrap_or_else(|| "n/a".into()),
        }
    }
}
