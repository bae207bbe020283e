//! The inventory: which hosts make up a region, their roles, the cells
//! (RabbitMQ brokers) they consume, the database, the API bind, retention.
//!
//! * [`raw`]: the YAML file as written (serde-saphyr, errors carry file,
//!   line and column).
//! * [`secrets`]: secret values (never in the inventory; from a secrets file
//!   or `STV3_SECRET_<NAME>` env vars), redacted everywhere.
//! * this module: [`load`] + [`resolve`] turn a file into the resolved
//!   [`Region`] model with defaults applied and, for every value, its
//!   [`Origin`] (file:line, default, secrets file or env var).

pub mod raw;
pub mod secrets;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use secrets::{Secret, SecretStore};

use raw::{InventoryFile, RegionRaw, S};

/// Errors loading or resolving an inventory. Each names the file and, where
/// known, the line and the key.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Yaml { path: PathBuf, message: String },
    #[error("{}:{line}: {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: u64,
        key: String,
        message: String,
    },
    #[error("{}: region `{region}` is not in the inventory (regions: {known})", path.display())]
    UnknownRegion {
        path: PathBuf,
        region: String,
        known: String,
    },
    #[error("secret `{name}` (needed by {used_by}) is missing: set {env} or add `{name}:` to the secrets file{}", file.as_ref().map(|f| format!(" ({})", f.display())).unwrap_or_else(|| " (--secrets FILE)".into()))]
    MissingSecret {
        name: String,
        used_by: String,
        env: String,
        file: Option<PathBuf>,
    },
    #[error("secret `{name}` from {origin} is a known default password; refusing (use --allow-insecure-defaults for a lab)")]
    InsecureSecret { name: String, origin: String },
}

/// Where a resolved value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The inventory file, at this line and column.
    Inventory {
        file: PathBuf,
        line: u64,
        column: u64,
    },
    /// A built-in default.
    Default,
    /// Derived from another value (explained in the text).
    Derived(String),
    /// The secrets file, key.
    SecretsFile(PathBuf, String),
    /// An environment variable.
    Env(String),
}

impl Serialize for Origin {
    fn serialize<Se: serde::Serializer>(&self, s: Se) -> Result<Se::Ok, Se::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Inventory { file, line, column } => {
                write!(f, "{}:{line}:{column}", file.display())
            }
            Origin::Default => f.write_str("default"),
            Origin::Derived(why) => write!(f, "derived: {why}"),
            Origin::SecretsFile(p, k) => write!(f, "secrets file {} key {k}", p.display()),
            Origin::Env(v) => write!(f, "env {v}"),
        }
    }
}

/// How services are managed on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InitKind {
    /// Detect at deploy time: systemd when `/run/systemd/system` exists, else SysV.
    Auto,
    Systemd,
    Sysv,
}

/// A host role. Roles are data in `roles/<name>.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    Db,
    Worker,
    Api,
}

impl RoleName {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleName::Db => "db",
            RoleName::Worker => "worker",
            RoleName::Api => "api",
        }
    }
}

/// Filesystem layout on the hosts. Overridable for tests; production uses the
/// defaults (`/opt/stv3`, `/etc/stv3`, `/var/log/stv3`, `/var/run/stv3`,
/// `/var/lib/stv3`, `/etc/init.d`, `/etc/systemd/system`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paths {
    pub opt: String,
    pub etc: String,
    pub log: String,
    pub run: String,
    pub lib: String,
    pub initd: String,
    pub systemd: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ssh {
    pub user: String,
    pub port: u16,
    #[serde(rename = "become")]
    pub sudo: bool,
    pub identity_file: Option<String>,
    pub known_hosts: Option<String>,
    pub connect_timeout_seconds: u64,
}

/// A `scheme://user@host:port/path` URL without password; the password is a secret.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceUrl {
    pub scheme: String,
    pub user: String,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub password: Secret,
    /// The URL as given, for URLs without credentials (`sqlite://...`).
    pub raw: Option<String>,
}

impl ServiceUrl {
    /// The URL with the password filled in (percent-encoded).
    pub fn with_password(&self) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        format!(
            "{}://{}:{}@{}:{}{}",
            self.scheme,
            pct(&self.user),
            pct(self.password.expose()),
            self.host,
            self.port,
            self.path
        )
    }
    /// The URL with the password shown as `<redacted>`.
    pub fn redacted(&self) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        format!(
            "{}://{}:{}@{}:{}{}",
            self.scheme,
            self.user,
            secrets::REDACTED,
            self.host,
            self.port,
            self.path
        )
    }
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct Queue {
    pub name: String,
    pub routing_key: String,
    pub durable: bool,
    /// yagi-event batch size for this queue (one archive fsync, one DB transaction and
    /// one multiple-ack per batch; prefetch is (store_inflight + 2) times this, 4 by default).
    pub max_messages: u16,
}

/// Default `max_messages` per queue: large batches amortise the fsync and the commit
/// (the original polled 100 at a time; see BENCHMARKS.md "Ingest").
pub const DEFAULT_MAX_MESSAGES: u16 = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub name: String,
    /// Position in the region's cell list (stable; used for ops ports).
    pub index: usize,
    pub rabbit: ServiceUrl,
    pub vhost: String,
    pub exchange: String,
    pub queues: Vec<Queue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    #[serde(rename = "become")]
    pub sudo: bool,
    pub init: InitKind,
    pub roles: Vec<RoleName>,
    /// `None` = one per core, probed on the host at deploy time.
    pub pipeline_workers: Option<u32>,
    pub ops_port_base: u16,
}

impl Host {
    pub fn has(&self, role: RoleName) -> bool {
        self.roles.contains(&role)
    }
    /// True for hosts reached without SSH.
    pub fn is_local(&self) -> bool {
        self.address == "localhost" || self.address == "local"
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Republish {
    pub cell: String,
    pub exchange: String,
    pub routing_key: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Retention {
    pub archive_days: u32,
    pub log_days: u32,
    pub trim_events_age: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// Seconds a process must stay alive after (re)start.
    pub settle_seconds: u64,
    /// Seconds to wait for `/health` to answer 200.
    pub timeout_seconds: u64,
}

/// The database administrator account the db role uses to create the
/// database and the least-privilege app user, and to run migrations (D8).
#[derive(Debug, Clone, Serialize)]
pub struct DbAdmin {
    pub user: String,
    pub password: Secret,
}

/// One resolved region: everything a deploy needs, defaults applied.
#[derive(Debug, Clone, Serialize)]
pub struct Region {
    pub name: String,
    pub inventory: PathBuf,
    pub ssh: Ssh,
    pub init: InitKind,
    pub keep_releases: u32,
    pub paths: Paths,
    /// The app's database URL: its user is the least-privilege account the
    /// workers and the API connect with.
    pub database: ServiceUrl,
    /// `None`: nobody provisions the database; migrations use the app user.
    pub database_admin: Option<DbAdmin>,
    /// MySQL host patterns (`'user'@'<pattern>'`) the app user is created for.
    pub database_clients: Vec<String>,
    /// `database.install_server`: the db role installs (apt) and starts the
    /// database server package on its host when it is missing or down.
    pub database_install_server: bool,
    pub api_bind: String,
    pub ops_bind: String,
    pub retention: Retention,
    pub republish: Republish,
    pub health: Health,
    pub log_level: String,
    pub cells: Vec<Cell>,
    pub hosts: Vec<Host>,
    /// (key, shown value, origin) for every resolved value, in file order.
    pub provenance: Vec<Provenance>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

impl Region {
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
    pub fn cell(&self, name: &str) -> Option<&Cell> {
        self.cells.iter().find(|c| c.name == name)
    }
    /// Where the resolved value of `key` came from.
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.provenance
            .iter()
            .find(|p| p.key == key)
            .map(|p| &p.origin)
    }
}

/// `stv3ctl inventory show`: the resolved model as a table of key, value and
/// origin (secrets shown as `<redacted>`), or as JSON.
pub fn show(region: &Region, json: bool) -> String {
    if json {
        return serde_json::to_string_pretty(region).unwrap_or_default();
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(vec!["key", "value", "from"]);
    for p in &region.provenance {
        t.add_row(vec![p.key.clone(), p.value.clone(), p.origin.to_string()]);
    }
    let mut out = format!(
        "region {} ({})\n{t}\n",
        region.name,
        region.inventory.display()
    );
    for h in &region.hosts {
        out.push_str(&format!(
            "host {:<12} {}@{}:{} roles={} init={:?}{}\n",
            h.name,
            h.user,
            h.address,
            h.port,
            h.roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(","),
            h.init,
            if h.sudo { " (sudo)" } else { "" }
        ));
    }
    out
}

/// A parsed inventory file (all regions, unresolved).
#[derive(Debug)]
pub struct Inventory {
    pub path: PathBuf,
    pub file: InventoryFile,
}

impl Inventory {
    pub fn region_names(&self) -> Vec<String> {
        self.file.regions.keys().cloned().collect()
    }
}

/// Read and parse an inventory file.
pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|e| InventoryError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    parse(path, &text)
}

/// Parse inventory text; `path` is used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
    let file: InventoryFile = serde_saphyr::from_str(text).map_err(|e| InventoryError::Yaml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(Inventory {
        path: path.to_path_buf(),
        file,
    })
}

struct Resolver<'a> {
    path: &'a Path,
    prov: Vec<Provenance>,
}

impl Resolver<'_> {
    fn origin<T>(&self, s: &S<T>) -> Origin {
        Origin::Inventory {
            file: self.path.to_path_buf(),
            line: s.referenced.line(),
            column: s.referenced.column(),
        }
    }
    fn invalid<T>(&self, s: &S<T>, key: &str, message: impl Into<String>) -> InventoryError {
        InventoryError::Invalid {
            path: self.path.to_path_buf(),
            line: s.referenced.line(),
            key: key.to_string(),
            message: message.into(),
        }
    }
    fn record(&mut self, key: &str, value: impl fmt::Display, origin: Origin) {
        self.prov.push(Provenance {
            key: key.to_string(),
            value: value.to_string(),
            origin,
        });
    }
    /// Take an optional spanned value or a default, recording where it came from.
    fn pick<T: Clone + fmt::Display>(&mut self, key: &str, v: Option<&S<T>>, default: T) -> T {
        match v {
            Some(s) => {
                let o = self.origin(s);
                self.record(key, &s.value, o);
                s.value.clone()
            }
            None => {
                self.record(key, &default, Origin::Default);
                default
            }
        }
    }
}

/// Resolve region `name`: apply defaults, parse URLs, fetch secrets, and
/// check the whole thing (unique names, roles present, no passwords in URLs).
pub fn resolve(
    inv: &Inventory,
    name: &str,
    secrets: &SecretStore,
) -> Result<Region, InventoryError> {
    let Some(raw) = inv.file.regions.get(name) else {
        return Err(InventoryError::UnknownRegion {
            path: inv.path.clone(),
            region: name.to_string(),
            known: inv.region_names().join(", "),
        });
    };
    let mut r = Resolver {
        path: &inv.path,
        prov: Vec::new(),
    };
    resolve_region(&mut r, name, raw, secrets).map(|mut region| {
        region.provenance = std::mem::take(&mut r.prov);
        region
    })
}

fn resolve_region(
    r: &mut Resolver,
    name: &str,
    raw: &RegionRaw,
    secrets: &SecretStore,
) -> Result<Region, InventoryError> {
    let path = r.path.to_path_buf();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(InventoryError::Invalid {
            path,
            line: 0,
            key: format!("regions.{name}"),
            message:
                "a region name is letters, digits, '-' and '_' (it goes into archive file names)"
                    .into(),
        });
    }
    r.record(
        "region",
        name,
        Origin::Derived("a key of `regions:`".into()),
    );
    let ssh_raw = raw.ssh.clone().unwrap_or_default();
    let ssh = Ssh {
        user: r.pick("ssh.user", ssh_raw.user.as_ref(), "root".to_string()),
        port: r.pick("ssh.port", ssh_raw.port.as_ref(), 22),
        sudo: r.pick("ssh.become", ssh_raw.sudo.as_ref(), false),
        identity_file: ssh_raw.identity_file.as_ref().map(|s| {
            let o = r.origin(s);
            r.record("ssh.identity_file", &s.value, o);
            s.value.clone()
        }),
        known_hosts: ssh_raw.known_hosts.as_ref().map(|s| {
            let o = r.origin(s);
            r.record("ssh.known_hosts", &s.value, o);
            s.value.clone()
        }),
        connect_timeout_seconds: r.pick(
            "ssh.connect_timeout_seconds",
            ssh_raw.connect_timeout_seconds.as_ref(),
            10,
        ),
    };
    let init = match &raw.init {
        Some(s) => {
            let o = r.origin(s);
            r.record("init", &s.value, o);
            parse_init(&s.value)
                .ok_or_else(|| r.invalid(s, "init", "expected auto, systemd or sysv"))?
        }
        None => {
            r.record("init", "auto", Origin::Default);
            InitKind::Auto
        }
    };
    let keep_releases = r.pick("keep_releases", raw.keep_releases.as_ref(), 5u32);
    if let Some(s) = &raw.keep_releases {
        if s.value < 2 {
            return Err(r.invalid(
                s,
                "keep_releases",
                "keep at least 2 releases (the current one and one to roll back to)",
            ));
        }
    }
    let p = raw.paths.as_ref();
    let paths = Paths {
        opt: r.pick(
            "paths.opt",
            p.and_then(|p| p.opt.as_ref()),
            "/opt/stv3".into(),
        ),
        etc: r.pick(
            "paths.etc",
            p.and_then(|p| p.etc.as_ref()),
            "/etc/stv3".into(),
        ),
        log: r.pick(
            "paths.log",
            p.and_then(|p| p.log.as_ref()),
            "/var/log/stv3".into(),
        ),
        run: r.pick(
            "paths.run",
            p.and_then(|p| p.run.as_ref()),
            "/var/run/stv3".into(),
        ),
        lib: r.pick(
            "paths.lib",
            p.and_then(|p| p.lib.as_ref()),
            "/var/lib/stv3".into(),
        ),
        initd: r.pick(
            "paths.initd",
            p.and_then(|p| p.initd.as_ref()),
            "/etc/init.d".into(),
        ),
        systemd: r.pick(
            "paths.systemd",
            p.and_then(|p| p.systemd.as_ref()),
            "/etc/systemd/system".into(),
        ),
    };
    if let Some(p) = p {
        for (k, v) in [
            ("opt", &p.opt),
            ("etc", &p.etc),
            ("log", &p.log),
            ("run", &p.run),
            ("lib", &p.lib),
        ] {
            if let Some(v) = v {
                if !v.value.starts_with('/') || v.value.contains(char::is_whitespace) {
                    return Err(r.invalid(
                        v,
                        &format!("paths.{k}"),
                        "must be an absolute path without spaces",
                    ));
                }
            }
        }
    }

    let Some(db) = &raw.database else {
        return Err(InventoryError::Invalid {
            path,
            line: 0,
            key: format!("regions.{name}.database"),
            message: "missing: every region needs `database: {url: mysql://user@host/db}`".into(),
        });
    };
    let database = if db.url.value.trim().starts_with("sqlite://") {
        // A file database (sandbox, single-host labs): no user, no password.
        let text = db.url.value.trim().to_string();
        let o = r.origin(&db.url);
        r.record("database.url", &text, o);
        ServiceUrl {
            scheme: "sqlite".into(),
            user: String::new(),
            host: String::new(),
            port: 0,
            path: text["sqlite://".len()..].to_string(),
            password: Secret::new("none", ""),
            raw: Some(text),
        }
    } else {
        let db_secret_name = r.pick(
            "database.password_secret",
            db.password_secret.as_ref(),
            "database".to_string(),
        );
        let (db_pw, db_origin) = secrets.get(&db_secret_name, "database.url")?;
        r.record("database.password", secrets::REDACTED, db_origin);
        parse_url(
            r,
            &db.url,
            "database.url",
            &["mysql", "mariadb"],
            3306,
            db_pw,
        )?
    };

    let database_admin = if database.scheme == "sqlite" {
        None
    } else {
        let user = r.pick(
            "database.admin_user",
            db.admin_user.as_ref(),
            "root".to_string(),
        );
        let secret_name = r.pick(
            "database.admin_password_secret",
            db.admin_password_secret.as_ref(),
            "database_admin".to_string(),
        );
        match secrets.get_optional(&secret_name)? {
            Some((password, origin)) => {
                r.record("database.admin_password", secrets::REDACTED, origin);
                Some(DbAdmin { user, password })
            }
            None => {
                r.record(
                    "database.admin_password",
                    "(not set: the database and its user are not provisioned)",
                    Origin::Derived(format!(
                        "secret `{secret_name}` is in neither {} nor the secrets file",
                        secrets::env_var_name(&secret_name)
                    )),
                );
                None
            }
        }
    };

    let database_install_server = match &db.install_server {
        Some(s) => {
            let on = parse_bool(&s.value).ok_or_else(|| {
                r.invalid(
                    s,
                    "database.install_server",
                    format!("expected true or false, not `{}`", s.value),
                )
            })?;
            if on && database.scheme == "sqlite" {
                return Err(r.invalid(
                    s,
                    "database.install_server",
                    "a sqlite database.url has no server to install",
                ));
            }
            let o = r.origin(s);
            r.record("database.install_server", on, o);
            on
        }
        None => {
            r.record("database.install_server", false, Origin::Default);
            false
        }
    };

    let api = raw.api.as_ref();
    let api_bind = r.pick(
        "api.bind",
        api.and_then(|a| a.bind.as_ref()),
        "0.0.0.0:8000".to_string(),
    );
    if let Some(b) = api.and_then(|a| a.bind.as_ref()) {
        if b.value
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(r.invalid(b, "api.bind", "expected HOST:PORT"));
        }
    }
    let ops = raw.ops.as_ref();
    let ops_bind = r.pick(
        "ops.bind",
        ops.and_then(|o| o.bind.as_ref()),
        "127.0.0.1".to_string(),
    );
    let ops_base = r.pick(
        "ops.port_base",
        ops.and_then(|o| o.port_base.as_ref()),
        9300u16,
    );

    let ret = raw.retention.as_ref();
    let retention = Retention {
        archive_days: r.pick(
            "retention.archive_days",
            ret.and_then(|x| x.archive_days.as_ref()),
            30,
        ),
        log_days: r.pick(
            "retention.log_days",
            ret.and_then(|x| x.log_days.as_ref()),
            14,
        ),
        trim_events_age: ret.and_then(|x| x.trim_events_age.as_ref()).map(|s| {
            let o = r.origin(s);
            r.record("retention.trim_events_age", &s.value, o);
            s.value.clone()
        }),
    };
    let h = raw.health.as_ref();
    let health = Health {
        settle_seconds: r.pick(
            "health.settle_seconds",
            h.and_then(|x| x.settle_seconds.as_ref()),
            2,
        ),
        timeout_seconds: r.pick(
            "health.timeout_seconds",
            h.and_then(|x| x.timeout_seconds.as_ref()),
            20,
        ),
    };
    let log_level = r.pick("log_level", raw.log_level.as_ref(), "info".to_string());

    // Cells.
    let mut cells = Vec::new();
    for (i, c) in raw.cells.iter().enumerate() {
        let key = format!("cells[{i}]");
        let cname = &c.name.value;
        if cname.is_empty()
            || !cname
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            return Err(r.invalid(
                &c.name,
                &format!("{key}.name"),
                "a cell name is letters, digits, '-' and '_'",
            ));
        }
        if cells.iter().any(|x: &Cell| &x.name == cname) {
            return Err(r.invalid(
                &c.name,
                &format!("{key}.name"),
                format!("duplicate cell `{cname}`"),
            ));
        }
        let o = r.origin(&c.name);
        r.record(&format!("{key}.name"), cname, o);
        let secret_name = r.pick(
            &format!("{key}.rabbit.password_secret"),
            c.rabbit.password_secret.as_ref(),
            format!("rabbit_{cname}"),
        );
        let (pw, po) = secrets.get(&secret_name, &format!("{key}.rabbit.url"))?;
        r.record(&format!("{key}.rabbit.password"), secrets::REDACTED, po);
        let rabbit = parse_url(
            r,
            &c.rabbit.url,
            &format!("{key}.rabbit.url"),
            &["amqp", "amqps"],
            5672,
            pw,
        )?;
        let vhost = r.pick(
            &format!("{key}.rabbit.vhost"),
            c.rabbit.vhost.as_ref(),
            "/".to_string(),
        );
        let exchange = r.pick(
            &format!("{key}.exchange"),
            c.exchange.as_ref(),
            "nova".to_string(),
        );
        let queues = match &c.queues {
            Some(qs) => {
                let mut out = Vec::new();
                for (j, q) in qs.iter().enumerate() {
                    let qk = format!("{key}.queues[{j}]");
                    let name = r.pick(&format!("{qk}.name"), Some(&q.name), String::new());
                    let routing_key = r.pick(
                        &format!("{qk}.routing_key"),
                        Some(&q.routing_key),
                        String::new(),
                    );
                    let durable = r.pick(&format!("{qk}.durable"), q.durable.as_ref(), true);
                    let max_messages = r.pick(
                        &format!("{qk}.max_messages"),
                        q.max_messages.as_ref(),
                        DEFAULT_MAX_MESSAGES,
                    );
                    if let Some(m) = q
                        .max_messages
                        .as_ref()
                        .filter(|m| !(1..=20_000).contains(&m.value))
                    {
                        return Err(r.invalid(
                            m,
                            &format!("{qk}.max_messages"),
                            "max_messages is 1 to 20000 (prefetch is four times it, at most 65535)",
                        ));
                    }
                    if name.is_empty() || name.contains([',', ' ']) {
                        return Err(r.invalid(
                            &q.name,
                            &format!("{qk}.name"),
                            "a queue name is non-empty, without ',' or spaces",
                        ));
                    }
                    out.push(Queue {
                        name,
                        routing_key,
                        durable,
                        max_messages,
                    });
                }
                out
            }
            None => {
                r.record(
                    &format!("{key}.queues"),
                    "monitor.info3 (monitor.info), monitor.error3 (monitor.error)",
                    Origin::Default,
                );
                vec![
                    Queue {
                        name: "monitor.info3".into(),
                        routing_key: "monitor.info".into(),
                        durable: true,
                        max_messages: DEFAULT_MAX_MESSAGES,
                    },
                    Queue {
                        name: "monitor.error3".into(),
                        routing_key: "monitor.error".into(),
                        durable: true,
                        max_messages: DEFAULT_MAX_MESSAGES,
                    },
                ]
            }
        };
        cells.push(Cell {
            name: cname.clone(),
            index: i,
            rabbit,
            vhost,
            exchange,
            queues,
        });
    }
    if cells.is_empty() {
        return Err(InventoryError::Invalid {
            path: r.path.to_path_buf(),
            line: 0,
            key: format!("regions.{name}.cells"),
            message: "a region needs at least one cell".into(),
        });
    }

    let rp = raw.republish.as_ref();
    let republish = Republish {
        cell: r.pick(
            "republish.cell",
            rp.and_then(|x| x.cell.as_ref()),
            cells[0].name.clone(),
        ),
        exchange: r.pick(
            "republish.exchange",
            rp.and_then(|x| x.exchange.as_ref()),
            "nova".to_string(),
        ),
        routing_key: r.pick(
            "republish.routing_key",
            rp.and_then(|x| x.routing_key.as_ref()),
            "monitor.info".to_string(),
        ),
    };
    if let Some(c) = rp.and_then(|x| x.cell.as_ref()) {
        if !cells.iter().any(|x| x.name == c.value) {
            return Err(r.invalid(c, "republish.cell", format!("no cell named `{}`", c.value)));
        }
    }

    // Hosts.
    let mut hosts: Vec<Host> = Vec::new();
    for (i, h) in raw.hosts.iter().enumerate() {
        let key = format!("hosts[{i}]");
        let hname = h.name.value.clone();
        if hname.is_empty() || hosts.iter().any(|x| x.name == hname) {
            return Err(r.invalid(
                &h.name,
                &format!("{key}.name"),
                format!("empty or duplicate host name `{hname}`"),
            ));
        }
        let o = r.origin(&h.name);
        r.record(&format!("{key}.name"), &hname, o);
        let address = r.pick(&format!("{key}.address"), h.address.as_ref(), hname.clone());
        let port = r.pick(&format!("{key}.port"), h.port.as_ref(), ssh.port);
        let user = r.pick(&format!("{key}.user"), h.user.as_ref(), ssh.user.clone());
        let sudo = r.pick(&format!("{key}.become"), h.sudo.as_ref(), ssh.sudo);
        let hinit = match &h.init {
            Some(s) => {
                let o = r.origin(s);
                r.record(&format!("{key}.init"), &s.value, o);
                parse_init(&s.value).ok_or_else(|| {
                    r.invalid(s, &format!("{key}.init"), "expected auto, systemd or sysv")
                })?
            }
            None => init,
        };
        let mut roles = Vec::new();
        for role in &h.roles.value {
            let rn = match role.as_str() {
                "db" => RoleName::Db,
                "worker" => RoleName::Worker,
                "api" => RoleName::Api,
                other => {
                    return Err(r.invalid(
                        &h.roles,
                        &format!("{key}.roles"),
                        format!("unknown role `{other}` (expected worker, api, db)"),
                    ))
                }
            };
            if !roles.contains(&rn) {
                roles.push(rn);
            }
        }
        roles.sort();
        if roles.is_empty() {
            return Err(r.invalid(
                &h.roles,
                &format!("{key}.roles"),
                "a host needs at least one role",
            ));
        }
        let o = r.origin(&h.roles);
        r.record(
            &format!("{key}.roles"),
            roles
                .iter()
                .map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(","),
            o,
        );
        let pipeline_workers = match &h.pipeline_workers {
            Some(s) => {
                if s.value == 0 {
                    return Err(r.invalid(
                        s,
                        &format!("{key}.pipeline_workers"),
                        "must be at least 1 (omit it for one per core)",
                    ));
                }
                let o = r.origin(s);
                r.record(&format!("{key}.pipeline_workers"), s.value, o);
                Some(s.value)
            }
            None => {
                if roles.contains(&RoleName::Worker) {
                    r.record(
                        &format!("{key}.pipeline_workers"),
                        "auto",
                        Origin::Derived("host core count (probed at deploy)".into()),
                    );
                }
                None
            }
        };
        let ops_port_base = r.pick(
            &format!("{key}.ops_port_base"),
            h.ops_port_base.as_ref(),
            ops_base,
        );
        hosts.push(Host {
            name: hname,
            address,
            port,
            user,
            sudo,
            init: hinit,
            roles,
            pipeline_workers,
            ops_port_base,
        });
    }
    let database_clients = match &db.client_hosts {
        Some(list) => {
            if list.value.is_empty()
                || list
                    .value
                    .iter()
                    .any(|h| h.is_empty() || h.contains(['\'', '"', '\\', '`']))
            {
                return Err(r.invalid(
                    list,
                    "database.client_hosts",
                    "a non-empty list of MySQL host patterns (e.g. 10.20.0.%) without quotes",
                ));
            }
            let o = r.origin(list);
            r.record("database.client_hosts", list.value.join(","), o);
            list.value.clone()
        }
        None if database.scheme == "sqlite" => Vec::new(),
        None => {
            let clients = default_db_clients(&hosts);
            r.record(
                "database.client_hosts",
                clients.join(","),
                Origin::Derived("the addresses of the worker and api hosts".into()),
            );
            clients
        }
    };
    for role in [RoleName::Db, RoleName::Worker, RoleName::Api] {
        if !hosts.iter().any(|h| h.has(role)) {
            return Err(InventoryError::Invalid {
                path: r.path.to_path_buf(),
                line: 0,
                key: format!("regions.{name}.hosts"),
                message: format!("no host has role `{}`", role.as_str()),
            });
        }
    }

    Ok(Region {
        name: name.to_string(),
        inventory: r.path.to_path_buf(),
        ssh,
        init,
        keep_releases,
        paths,
        database,
        database_admin,
        database_clients,
        database_install_server,
        api_bind,
        ops_bind,
        retention,
        republish,
        health,
        log_level,
        cells,
        hosts,
        provenance: Vec::new(),
    })
}

/// The hosts the app user may connect from when the inventory does not say:
/// the address of every worker and api host. A loopback address becomes both
/// `localhost` and `127.0.0.1` (MySQL sees a local TCP client as either).
fn default_db_clients(hosts: &[Host]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in hosts
        .iter()
        .filter(|h| h.has(RoleName::Worker) || h.has(RoleName::Api))
    {
        let names: Vec<&str> = match h.address.as_str() {
            "localhost" | "local" | "127.0.0.1" | "::1" => vec!["localhost", "127.0.0.1"],
            a => vec![a],
        };
        for n in names {
            if !out.iter().any(|x| x == n) {
                out.push(n.to_string());
            }
        }
    }
    out
}

/// `true` or `false`, in any case.
fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn parse_init(s: &str) -> Option<InitKind> {
    match s {
        "auto" => Some(InitKind::Auto),
        "systemd" => Some(InitKind::Systemd),
        "sysv" => Some(InitKind::Sysv),
        _ => None,
    }
}

/// Parse `scheme://user@host[:port][/path]`; a password in the URL is an error.
fn parse_url(
    r: &mut Resolver,
    s: &S<String>,
    key: &str,
    schemes: &[&str],
    default_port: u16,
    password: Secret,
) -> Result<ServiceUrl, InventoryError> {
    let text = s.value.trim();
    let (scheme, rest) = text.split_once("://").ok_or_else(|| {
        r.invalid(
            s,
            key,
            format!("expected {}://user@host[:port]/...", schemes[0]),
        )
    })?;
    if !schemes.contains(&scheme) {
        return Err(r.invalid(
            s,
            key,
            format!("scheme `{scheme}` is not one of {}", schemes.join(", ")),
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (userinfo, hostport) = authority.rsplit_once('@').ok_or_else(|| {
        r.invalid(
            s,
            key,
            "the URL needs a user (user@host); the password comes from the secrets",
        )
    })?;
    if userinfo.contains(':') {
        return Err(r.invalid(
            s,
            key,
            format!(
                "passwords do not belong in the inventory; remove it and set secret `{}` instead",
                password.name()
            ),
        ));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| r.invalid(s, key, format!("bad port `{p}`")))?,
        ),
        None => (hostport, default_port),
    };
    if host.is_empty() || userinfo.is_empty() {
        return Err(r.invalid(s, key, "empty user or host"));
    }
    let o = r.origin(s);
    r.record(key, text, o);
    Ok(ServiceUrl {
        scheme: scheme.to_string(),
        user: userinfo.to_string(),
        host: host.to_string(),
        port,
        path: path.to_string(),
        password,
        raw: None,
    })
}

#[cfg(test)]
mod tests;
