//! `winchester.yaml` (every key of §4.2) and `triggers.yaml` (§4.3) loaders.
//!
//! Every error names the file, the line and the key. Every timex expression is
//! parsed once, here; a config error never shows up halfway through processing.
//! `pipelines.yaml` and the handler registry belong to `stv3-pipeline`; this
//! module only exposes their raw settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::criteria::{Constant, Criteria, Criterion, Op};
use crate::timexpr::TimeExpr;
use crate::trigger::TriggerDefinition;
use crate::yaml::{Node, Value};

/// The largest number of seconds a setting may hold (about 31 years).
pub const MAX_SECONDS: f64 = 1e9;

/// A config error, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when unknown (e.g. the file could not be read).
    pub line: u32,
    /// The key (dotted path, e.g. `database.url` or `triggers[0].fire_criteria[1].traits.memory_mb`).
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// `database:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// The URL as written (SQLAlchemy form accepted, see [`crate::store::url`]).
    pub url: String,
    pub echo_sql: bool,
    /// `max_connections` (stv3's own key): the most connections each process
    /// opens to MySQL (default [`crate::store::DEFAULT_MAX_CONNECTIONS`]).
    pub max_connections: u32,
}

/// winchester.yaml.
#[derive(Debug, Clone)]
pub struct WinchesterConfig {
    /// The file this was loaded from.
    pub file: PathBuf,
    /// `config_path` (str or list), in order; the file's own directory is searched last.
    pub config_path: Vec<PathBuf>,
    pub database: DatabaseConfig,
    /// `distiller_config`, resolved through `config_path` (None if the key is absent).
    pub distiller_config: Option<PathBuf>,
    /// `distiller_trait_plugins` (`{name: "module:Class"}`), raw.
    pub distiller_trait_plugins: BTreeMap<String, String>,
    pub catch_all_notifications: bool,
    /// `trigger_definitions`, resolved (None: no triggers, events are only stored).
    pub trigger_definitions: Option<PathBuf>,
    pub time_sync_endpoint: Option<String>,
    /// Seconds between stats lines (default 10).
    pub statistics_period: f64,
    /// `pipeline_handlers` (`{name: "module:Class"}`), raw; the pipeline crate maps the names.
    pub pipeline_handlers: BTreeMap<String, String>,
    /// `pipeline_config`, resolved (required by the pipeline worker, checked there).
    pub pipeline_config: Option<PathBuf>,
    /// Max streams per fire pass and per expire pass (default 1000).
    pub pipeline_worker_batch_size: u32,
    /// Seconds to sleep when a loop did nothing (default 10).
    pub pipeline_worker_delay: f64,
    /// stv3 addition: seconds a worker's claim on a firing/expiring stream lasts (default 600).
    pub pipeline_worker_lease: f64,
    /// Delete completed streams (default true) instead of marking them completed.
    pub purge_completed_streams: bool,
    pub trim_events: bool,
    /// Default `$timestamp - 14d`. Parsed at load (an invalid one is a load error).
    pub trim_events_age: TimeExpr,
    pub trim_events_batch_size: u32,
    pub log_level: Option<String>,
    pub log_file: Option<String>,
    pub logging_config: Option<String>,
    /// The whole document, for keys other crates own.
    pub raw: Node,
}

/// Error context: the file being read.
struct Ctx<'a> {
    file: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, node: Option<&Node>, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: node.map(|n| n.line).unwrap_or(0),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn string(&self, node: &Node, key: &str) -> Result<String, ConfigError> {
        match &node.value {
            Value::Str(s) => Ok(s.clone()),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                Ok(node.scalar_string().unwrap_or_default())
            }
            _ => Err(self.err(
                Some(node),
                key,
                format!("expected a string, found {}", node.kind()),
            )),
        }
    }

    fn opt_string(&self, map: &Node, name: &str, key: &str) -> Result<Option<String>, ConfigError> {
        match map.get(name) {
            None => Ok(None),
            Some(n) if n.value == Value::Null => Ok(None),
            Some(n) => self.string(n, key).map(Some),
        }
    }

    fn boolean(&self, map: &Node, name: &str, default: bool) -> Result<bool, ConfigError> {
        match map.get(name) {
            None => Ok(default),
            Some(n) => match &n.value {
                Value::Null => Ok(default),
                Value::Bool(b) => Ok(*b),
                Value::Int(i) => Ok(*i != 0),
                Value::Str(s) => match s.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" => Ok(true),
                    "false" | "no" | "off" | "0" => Ok(false),
                    _ => Err(self.err(Some(n), name, format!("expected a boolean, found {s:?}"))),
                },
                _ => Err(self.err(
                    Some(n),
                    name,
                    format!("expected a boolean, found {}", n.kind()),
                )),
            },
        }
    }

    fn number(&self, node: &Node, key: &str) -> Result<f64, ConfigError> {
        match &node.value {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(f) => Ok(*f),
            Value::Str(s) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| self.err(Some(node), key, format!("expected a number, found {s:?}"))),
            _ => Err(self.err(
                Some(node),
                key,
                format!("expected a number, found {}", node.kind()),
            )),
        }
    }

    fn opt_number(&self, map: &Node, name: &str, default: f64) -> Result<f64, ConfigError> {
        match map.get(name) {
            None => Ok(default),
            Some(n) if n.value == Value::Null => Ok(default),
            Some(n) => {
                let v = self.number(n, name)?;
                // seconds: bounded so `Duration::from_secs_f64` at start-up cannot panic
                if !(0.0..=MAX_SECONDS).contains(&v) {
                    return Err(self.err(
                        Some(n),
                        name,
                        format!(
                            "must be a non-negative number of seconds, at most {MAX_SECONDS:e}"
                        ),
                    ));
                }
                Ok(v)
            }
        }
    }

    fn opt_count(&self, map: &Node, name: &str, default: u32) -> Result<u32, ConfigError> {
        match map.get(name) {
            None => Ok(default),
            Some(n) if n.value == Value::Null => Ok(default),
            Some(n) => match &n.value {
                Value::Int(i) if *i > 0 && *i <= u32::MAX as i64 => Ok(*i as u32),
                _ => Err(self.err(
                    Some(n),
                    name,
                    format!("expected a positive integer, found {}", n.kind()),
                )),
            },
        }
    }

    fn string_map(&self, map: &Node, name: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut out = BTreeMap::new();
        let Some(n) = map.get(name) else {
            return Ok(out);
        };
        if n.value == Value::Null {
            return Ok(out);
        }
        let entries = n.as_map().ok_or_else(|| {
            self.err(
                Some(n),
                name,
                format!("expected a mapping, found {}", n.kind()),
            )
        })?;
        for (k, v) in entries {
            let key = k
                .scalar_string()
                .ok_or_else(|| self.err(Some(k), name, "keys must be strings"))?;
            let value = self.string(v, &format!("{name}.{key}"))?;
            out.insert(key, value);
        }
        Ok(out)
    }

    fn timex(&self, node: &Node, key: &str) -> Result<TimeExpr, ConfigError> {
        let src = self.string(node, key)?;
        TimeExpr::parse(&src)
            .map_err(|e| self.err(Some(node), key, format!("invalid timex {src:?}: {e}")))
    }
}

fn read_yaml(path: &Path) -> Result<Node, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        key: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    parse_yaml(&text, path)
}

fn parse_yaml(text: &str, path: &Path) -> Result<Node, ConfigError> {
    crate::yaml::parse(text).map_err(|(line, message)| ConfigError {
        file: path.to_path_buf(),
        line,
        key: String::new(),
        message: format!("invalid YAML: {message}"),
    })
}

/// Only YAML loads (as the original, which advertised .json/.ini but had no loader for them).
fn check_extension(path: &Path) -> Result<(), ConfigError> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
    {
        Some(e) if e == "yaml" || e == "yml" => Ok(()),
        None => Ok(()),
        Some(e) => Err(ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: String::new(),
            message: format!("unknown config file type .{e} (only YAML is supported)"),
        }),
    }
}

const KNOWN_KEYS: &[&str] = &[
    "config_path",
    "database",
    "distiller_config",
    "distiller_trait_plugins",
    "catch_all_notifications",
    "trigger_definitions",
    "time_sync_endpoint",
    "statistics_period",
    "pipeline_handlers",
    "pipeline_config",
    "pipeline_worker_batch_size",
    "pipeline_worker_delay",
    "pipeline_worker_lease",
    "purge_completed_streams",
    "trim_events",
    "trim_events_age",
    "trim_events_batch_size",
    "log_level",
    "log_file",
    "logging_config",
];

impl WinchesterConfig {
    /// Load and validate winchester.yaml, resolving (not loading) the files it names.
    pub fn load(path: &Path) -> Result<WinchesterConfig, ConfigError> {
        check_extension(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Self::from_str(&text, path)
    }

    /// Parse winchester.yaml text (`file` is used for messages and relative lookups).
    pub fn from_str(text: &str, file: &Path) -> Result<WinchesterConfig, ConfigError> {
        let cx = Ctx { file };
        let root = parse_yaml(text, file)?;
        if root.as_map().is_none() {
            return Err(cx.err(
                Some(&root),
                "",
                format!("expected a mapping at the top, found {}", root.kind()),
            ));
        }
        for (k, _) in root.as_map().unwrap_or_default() {
            if let Some(name) = k.as_str() {
                if !KNOWN_KEYS.contains(&name) {
                    tracing::debug!(file = %file.display(), line = k.line, "unknown winchester.yaml key {name:?} (ignored)");
                }
            }
        }
        let config_path = match root.get("config_path") {
            None => vec![PathBuf::from(".")],
            Some(n) => match &n.value {
                Value::Null => vec![PathBuf::from(".")],
                Value::Seq(items) => items
                    .iter()
                    .map(|i| cx.string(i, "config_path").map(PathBuf::from))
                    .collect::<Result<_, _>>()?,
                _ => vec![PathBuf::from(cx.string(n, "config_path")?)],
            },
        };
        let db = root
            .get("database")
            .ok_or_else(|| cx.err(Some(&root), "database", "required key is missing"))?;
        if db.as_map().is_none() {
            return Err(cx.err(
                Some(db),
                "database",
                format!("expected a mapping, found {}", db.kind()),
            ));
        }
        let url_node = db
            .get("url")
            .ok_or_else(|| cx.err(Some(db), "database.url", "required key is missing"))?;
        let url = cx.string(url_node, "database.url")?;
        crate::store::url::DbUrl::parse(&url)
            .map_err(|e| cx.err(Some(url_node), "database.url", e.to_string()))?;
        let database = DatabaseConfig {
            url,
            echo_sql: cx.boolean(db, "echo_sql", false)?,
            max_connections: cx.opt_count(
                db,
                "max_connections",
                crate::store::DEFAULT_MAX_CONNECTIONS,
            )?,
        };

        let trim_events_age = match root.get("trim_events_age") {
            Some(n) if n.value != Value::Null => cx.timex(n, "trim_events_age")?,
            _ => TimeExpr::parse("$timestamp - 14d")
                .map_err(|e| cx.err(None, "trim_events_age", format!("default expression: {e}")))?,
        };

        let mut cfg = WinchesterConfig {
            file: file.to_path_buf(),
            config_path,
            database,
            distiller_config: None,
            distiller_trait_plugins: cx.string_map(&root, "distiller_trait_plugins")?,
            catch_all_notifications: cx.boolean(&root, "catch_all_notifications", false)?,
            trigger_definitions: None,
            time_sync_endpoint: cx.opt_string(&root, "time_sync_endpoint", "time_sync_endpoint")?,
            statistics_period: cx.opt_number(&root, "statistics_period", 10.0)?,
            pipeline_handlers: cx.string_map(&root, "pipeline_handlers")?,
            pipeline_config: None,
            pipeline_worker_batch_size: cx.opt_count(&root, "pipeline_worker_batch_size", 1000)?,
            pipeline_worker_delay: cx.opt_number(&root, "pipeline_worker_delay", 10.0)?,
            pipeline_worker_lease: cx.opt_number(&root, "pipeline_worker_lease", 600.0)?,
            purge_completed_streams: cx.boolean(&root, "purge_completed_streams", true)?,
            trim_events: cx.boolean(&root, "trim_events", false)?,
            trim_events_age,
            trim_events_batch_size: cx.opt_count(&root, "trim_events_batch_size", 100)?,
            log_level: cx.opt_string(&root, "log_level", "log_level")?,
            log_file: cx.opt_string(&root, "log_file", "log_file")?,
            logging_config: cx.opt_string(&root, "logging_config", "logging_config")?,
            raw: root.clone(),
        };
        for (key, slot) in [
            ("distiller_config", 0),
            ("trigger_definitions", 1),
            ("pipeline_config", 2),
        ] {
            let Some(name) = cx.opt_string(&root, key, key)? else {
                continue;
            };
            let resolved = cfg.resolve(&name).ok_or_else(|| {
                let searched: Vec<String> = cfg
                    .search_dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect();
                cx.err(
                    root.get(key),
                    key,
                    format!("file {name:?} not found (searched {})", searched.join(", ")),
                )
            })?;
            match slot {
                0 => cfg.distiller_config = Some(resolved),
                1 => cfg.trigger_definitions = Some(resolved),
                _ => cfg.pipeline_config = Some(resolved),
            }
        }
        Ok(cfg)
    }

    /// Directories searched for the files named in the config, in order:
    /// each `config_path` entry (as given, i.e. relative to the CWD; and, when
    /// relative, also relative to winchester.yaml's directory), then the
    /// directory of winchester.yaml.
    pub fn search_dirs(&self) -> Vec<PathBuf> {
        let base = self
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut dirs = Vec::new();
        for p in &self.config_path {
            dirs.push(p.clone());
            if p.is_relative() {
                dirs.push(base.join(p));
            }
        }
        dirs.push(if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        });
        dirs.dedup();
        dirs
    }

    /// Find a file named in the config: absolute as is; else the first existing
    /// file in [`Self::search_dirs`].
    pub fn resolve(&self, name: &str) -> Option<PathBuf> {
        let p = Path::new(name);
        if p.is_absolute() {
            return p.exists().then(|| p.to_path_buf());
        }
        self.search_dirs()
            .into_iter()
            .map(|d| d.join(p))
            .find(|c| c.is_file())
    }

    /// The trim cutoff at `now` (`trim_events_age` with `$timestamp = now`).
    pub fn trim_cutoff(&self, now: stv3_event::Timestamp) -> Result<stv3_event::Timestamp, String> {
        self.trim_events_age.eval_at(now).map(|m| m.timestamp())
    }

    /// Load the trigger definitions (empty when `trigger_definitions` is absent).
    pub fn load_triggers(&self) -> Result<Vec<TriggerDefinition>, ConfigError> {
        match &self.trigger_definitions {
            None => Ok(Vec::new()),
            Some(p) => load_triggers(p),
        }
    }
}

/// Load triggers.yaml.
pub fn load_triggers(path: &Path) -> Result<Vec<TriggerDefinition>, ConfigError> {
    check_extension(path)?;
    let root = read_yaml(path)?;
    triggers_from_node(&root, path)
}

/// Parse triggers.yaml text (`file` for messages).
pub fn parse_triggers(text: &str, file: &Path) -> Result<Vec<TriggerDefinition>, ConfigError> {
    let root = parse_yaml(text, file)?;
    triggers_from_node(&root, file)
}

const TRIGGER_KEYS: &[&str] = &[
    "name",
    "debug_level",
    "distinguished_by",
    "expiration",
    "fire_pipeline",
    "expire_pipeline",
    "fire_delay",
    "fire_criteria",
    "match_criteria",
    "load_criteria",
];

fn triggers_from_node(root: &Node, file: &Path) -> Result<Vec<TriggerDefinition>, ConfigError> {
    let cx = Ctx { file };
    let items = match &root.value {
        Value::Null => return Ok(Vec::new()),
        Value::Seq(items) => items,
        _ => {
            return Err(cx.err(
                Some(root),
                "",
                format!("expected a list of triggers, found {}", root.kind()),
            ))
        }
    };
    let mut out: Vec<TriggerDefinition> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let t = trigger_from_node(&cx, item, &format!("[{i}]"))?;
        if out.iter().any(|o| o.name == t.name) {
            return Err(cx.err(
                item.get("name"),
                &format!("[{i}].name"),
                format!("duplicate trigger name {:?}", t.name),
            ));
        }
        out.push(t);
    }
    Ok(out)
}

fn trigger_from_node(
    cx: &Ctx<'_>,
    node: &Node,
    at: &str,
) -> Result<TriggerDefinition, ConfigError> {
    if node.as_map().is_none() {
        return Err(cx.err(
            Some(node),
            at,
            format!("a trigger must be a mapping, found {}", node.kind()),
        ));
    }
    let key = |k: &str| format!("{at}.{k}");
    for (k, _) in node.as_map().unwrap_or_default() {
        if let Some(name) = k.as_str() {
            if !TRIGGER_KEYS.contains(&name) {
                tracing::warn!(file = %cx.file.display(), line = k.line, "trigger key {name:?} is unknown and ignored");
            }
        }
    }
    let required = |k: &str| {
        node.get(k)
            .ok_or_else(|| cx.err(Some(node), &key(k), "required key is missing"))
    };
    let name = cx.string(required("name")?, &key("name"))?;
    let at = format!("{at}({name})");
    let key = |k: &str| format!("{at}.{k}");
    let debug_level = match node.get("debug_level") {
        None => 0,
        Some(n) => {
            let v = cx.number(n, &key("debug_level"))?;
            if !(0.0..=255.0).contains(&v) {
                return Err(cx.err(Some(n), &key("debug_level"), "must be 0, 1 or 2"));
            }
            v as u8
        }
    };
    let mut distinguished_by = Vec::new();
    if let Some(n) = node.get("distinguished_by") {
        let items = match &n.value {
            Value::Null => &[][..],
            Value::Seq(items) => items.as_slice(),
            _ => {
                return Err(cx.err(
                    Some(n),
                    &key("distinguished_by"),
                    format!("expected a list, found {}", n.kind()),
                ))
            }
        };
        for (j, d) in items.iter().enumerate() {
            let k = format!("{}[{j}]", key("distinguished_by"));
            match &d.value {
                Value::Map(m) => {
                    if m.len() != 1 {
                        return Err(cx.err(
                            Some(d),
                            &k,
                            "only one trait allowed in a distinguishing expression ({trait: \"<timex>\"})",
                        ));
                    }
                    let (tn, te) = &m[0];
                    let tname = cx.string(tn, &k)?;
                    let expr = cx.timex(te, &format!("{k}.{tname}"))?;
                    distinguished_by.push(crate::trigger::DistSpec {
                        name: tname,
                        expr: Some(expr),
                    });
                }
                _ => distinguished_by.push(crate::trigger::DistSpec {
                    name: cx.string(d, &k)?,
                    expr: None,
                }),
            }
        }
    }
    let expiration = cx.timex(required("expiration")?, &key("expiration"))?;
    let fire_pipeline = cx
        .opt_string(node, "fire_pipeline", &key("fire_pipeline"))?
        .filter(|s| !s.is_empty());
    let expire_pipeline = cx
        .opt_string(node, "expire_pipeline", &key("expire_pipeline"))?
        .filter(|s| !s.is_empty());
    if fire_pipeline.is_none() && expire_pipeline.is_none() {
        return Err(cx.err(
            Some(node),
            &at,
            "at least one of 'fire_pipeline' or 'expire_pipeline' must be specified",
        ));
    }
    let fire_delay = match node.get("fire_delay") {
        None => chrono::Duration::zero(),
        Some(n) => {
            let secs = cx.number(n, &key("fire_delay"))?;
            // bounded: `now + fire_delay` overflowed (a panic) for 1e300
            if !(0.0..=MAX_SECONDS).contains(&secs) {
                return Err(cx.err(
                    Some(n),
                    &key("fire_delay"),
                    format!("must be a non-negative number of seconds, at most {MAX_SECONDS:e}"),
                ));
            }
            chrono::Duration::microseconds((secs * 1e6).round() as i64)
        }
    };
    let fire_criteria = criteria_list(cx, required("fire_criteria")?, &key("fire_criteria"), true)?;
    let match_criteria = criteria_list(
        cx,
        required("match_criteria")?,
        &key("match_criteria"),
        false,
    )?;
    let load_criteria = match node.get("load_criteria") {
        None => Vec::new(),
        Some(n) => criteria_list(cx, n, &key("load_criteria"), false)?,
    };
    Ok(TriggerDefinition {
        name,
        debug_level,
        distinguished_by,
        expiration,
        fire_pipeline,
        expire_pipeline,
        fire_delay,
        fire_criteria,
        match_criteria,
        load_criteria,
        line: node.line,
    })
}

fn criteria_list(
    cx: &Ctx<'_>,
    node: &Node,
    key: &str,
    fire: bool,
) -> Result<Vec<Criteria>, ConfigError> {
    let items = match &node.value {
        Value::Seq(items) => items,
        Value::Null => return Ok(Vec::new()),
        _ => {
            return Err(cx.err(
                Some(node),
                key,
                format!("expected a list of criteria, found {}", node.kind()),
            ))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, c)| criteria_from_node(cx, c, &format!("{key}[{i}]"), fire))
        .collect()
}

const CRITERIA_KEYS: &[&str] = &[
    "event_type",
    "number",
    "timestamp",
    "map_distinguished_by",
    "traits",
];

fn criteria_from_node(
    cx: &Ctx<'_>,
    node: &Node,
    at: &str,
    fire: bool,
) -> Result<Criteria, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    let mut c = Criteria {
        line: node.line,
        ..Criteria::default()
    };
    let entries = match &node.value {
        Value::Map(m) => m.as_slice(),
        Value::Null => &[][..],
        _ => {
            return Err(cx.err(
                Some(node),
                at,
                format!("a criteria must be a mapping, found {}", node.kind()),
            ))
        }
    };
    for (k, v) in entries {
        let Some(name) = k.as_str() else {
            return Err(cx.err(Some(k), at, "criteria keys must be strings"));
        };
        match name {
            "event_type" => {
                let types: Vec<String> = match &v.value {
                    Value::Seq(items) => items
                        .iter()
                        .map(|t| cx.string(t, &key("event_type")))
                        .collect::<Result<_, _>>()?,
                    _ => vec![cx.string(v, &key("event_type"))?],
                };
                c.set_event_types(&types);
            }
            "number" => {
                let n = match &v.value {
                    Value::Int(i) if *i >= 0 && *i <= u32::MAX as i64 => *i as u32,
                    _ => {
                        return Err(cx.err(
                            Some(v),
                            &key("number"),
                            format!("expected a count, found {}", v.kind()),
                        ))
                    }
                };
                if !fire {
                    tracing::debug!(file = %cx.file.display(), line = v.line, "'number' only matters in fire_criteria");
                }
                c.number = n;
            }
            "timestamp" => c.timestamp = Some(cx.timex(v, &key("timestamp"))?),
            "map_distinguished_by" | "map_distingushed_by" => {
                if name == "map_distingushed_by" {
                    tracing::warn!(
                        file = %cx.file.display(),
                        line = k.line,
                        "{}: misspelled key 'map_distingushed_by' accepted as 'map_distinguished_by' \
                         (the original silently ignored it)",
                        key(name)
                    );
                }
                let m = v.as_map().ok_or_else(|| {
                    cx.err(
                        Some(v),
                        &key(name),
                        format!("expected a mapping, found {}", v.kind()),
                    )
                })?;
                for (dk, dv) in m {
                    let dn = cx.string(dk, &key(name))?;
                    let src = cx.string(dv, &format!("{}.{dn}", key(name)))?;
                    c.map_distinguished_by.insert(dn, src);
                }
            }
            "traits" => {
                let m = match &v.value {
                    Value::Map(m) => m.as_slice(),
                    Value::Null => &[][..],
                    _ => {
                        return Err(cx.err(
                            Some(v),
                            &key("traits"),
                            format!("expected a mapping, found {}", v.kind()),
                        ))
                    }
                };
                for (tk, tv) in m {
                    let tname = cx.string(tk, &key("traits"))?;
                    let crit = criterion_from_node(cx, tv, &format!("{}.{tname}", key("traits")))?;
                    c.traits.push((tname, crit));
                }
            }
            other => {
                if !CRITERIA_KEYS.contains(&other) {
                    tracing::warn!(file = %cx.file.display(), line = k.line, "criteria key {other:?} is unknown and ignored");
                }
            }
        }
    }
    Ok(c)
}

fn constant(cx: &Ctx<'_>, node: &Node, key: &str) -> Result<Constant, ConfigError> {
    Ok(match &node.value {
        Value::Str(s) => Constant::Text(s.clone()),
        Value::Int(i) => Constant::Int(*i),
        Value::Float(f) => Constant::Float(*f),
        Value::Bool(b) => Constant::Bool(*b),
        _ => {
            return Err(cx.err(
                Some(node),
                key,
                format!("expected a scalar value, found {}", node.kind()),
            ))
        }
    })
}

fn criterion_from_node(cx: &Ctx<'_>, node: &Node, key: &str) -> Result<Criterion, ConfigError> {
    let Value::Map(m) = &node.value else {
        return Ok(Criterion::Equals(constant(cx, node, key)?));
    };
    if m.len() != 1 {
        return Err(cx.err(Some(node), key, "exactly one type of match is allowed per criterion ({int|float|string|text|datetime: ...})"));
    }
    let (tk, tv) = &m[0];
    let ctype = cx.string(tk, key)?;
    let key = format!("{key}.{ctype}");
    match ctype.as_str() {
        "string" | "text" => Ok(Criterion::Equals(constant(cx, tv, &key)?)),
        "datetime" => Ok(Criterion::Time(cx.timex(tv, &key)?)),
        "int" | "float" => {
            let is_int = ctype == "int";
            let bad = || {
                cx.err(
                    Some(tv),
                    &key,
                    format!(
                        "invalid numeric criterion {:?} (expected e.g. \"> 4096\")",
                        tv.scalar_string().unwrap_or_default()
                    ),
                )
            };
            match &tv.value {
                Value::Int(i) => Ok(Criterion::Compare {
                    op: Op::Eq,
                    value: if is_int {
                        Constant::Int(*i)
                    } else {
                        Constant::Float(*i as f64)
                    },
                }),
                Value::Float(f) => Ok(Criterion::Compare {
                    op: Op::Eq,
                    value: Constant::Float(*f),
                }),
                Value::Str(s) => {
                    let parts: Vec<&str> = s.split_whitespace().collect();
                    let (op, value) = match parts.as_slice() {
                        [v] => (Op::Eq, *v),
                        [op, rest @ ..] if !rest.is_empty() => {
                            let op = Op::parse(op).ok_or_else(|| {
                                cx.err(
                                    Some(tv),
                                    &key,
                                    format!("unknown operator {op:?} (use =, !=, >, >=, <, <=)"),
                                )
                            })?;
                            (op, s.trim_start().split_at(parts[0].len()).1.trim())
                        }
                        _ => return Err(bad()),
                    };
                    let value = if is_int {
                        Constant::Int(value.parse::<i64>().map_err(|_| bad())?)
                    } else {
                        Constant::Float(value.parse::<f64>().map_err(|_| bad())?)
                    };
                    Ok(Criterion::Compare { op, value })
                }
                _ => Err(bad()),
            }
        }
        other => Err(cx.err(
            Some(tk),
            &key,
            format!(
                "unknown criterion type {other:?} (expected int, float, string, text or datetime)"
            ),
        )),
    }
}
